//! A [`CachedState`] in front of the pre-block state changes nothing: every
//! executor over it produces exactly what the sequential executor produces
//! over the state itself, on every shared mainnet block.

mod common;

use parevm::{
    CachedState, ParallelConfig, execute_parallel, execute_sequential,
    verify::verify_against_header,
};

#[test]
fn executors_behind_a_cache_equal_sequential_on_mainnet_blocks() {
    let Some(blocks) = common::mainnet_blocks() else {
        return;
    };
    let mut failures = Vec::new();
    for fixture in blocks {
        let (block, state) = (&fixture.block, &fixture.state);
        let expected = execute_sequential(block, state).expect("sequential executes");
        let configs = [
            ("sequential", None),
            ("default", Some(ParallelConfig::with_threads(2))),
            ("block-stm", Some(ParallelConfig::never_fall_back(3))),
            ("partitioned", Some(ParallelConfig::partitioned(4))),
        ];
        for (name, config) in configs {
            // A fresh cache per run, as a node keeps one per block.
            let cached = CachedState::new(state);
            let actual = match &config {
                None => execute_sequential(block, &cached),
                Some(config) => execute_parallel(block, &cached, config),
            }
            .expect("executes behind the cache");
            let number = block.header.number;
            if let Some(difference) = expected.first_difference(&actual) {
                failures.push(format!("block {number} {name}: {difference}"));
            } else if let Err(error) = verify_against_header(block, &actual) {
                failures.push(format!("block {number} {name}: {error}"));
            }
        }
    }
    assert!(failures.is_empty(), "diverged:\n{}", failures.join("\n"));
}
