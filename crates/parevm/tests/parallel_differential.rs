//! Differential test: the parallel executor must produce exactly what the
//! sequential executor produces (outcomes, receipts, gas, state changes) on
//! every shared mainnet block, at several thread counts, repeated to shake
//! out races.

mod common;

use parevm::{
    ExecutionPath, ParallelConfig, execute_parallel, execute_sequential,
    verify::verify_against_header,
};

const THREADS: [usize; 5] = [1, 2, 3, 4, 8];
/// Runs of each block per thread count.
const REPEATS: usize = 20;
/// Runs of each block forced to try partitions, per thread count.
const PARTITIONED_REPEATS: usize = 5;

/// `default` runs, or `PAREVM_SOAK` times as many for a longer hunt for
/// races (`PAREVM_SOAK=10 cargo test --release --test parallel_differential`).
/// A value that is not a whole number stops the test rather than quietly
/// running the default.
fn runs(default: usize) -> usize {
    let soak = std::env::var("PAREVM_SOAK").ok().map(|n| {
        n.parse::<usize>()
            .unwrap_or_else(|_| panic!("PAREVM_SOAK={n:?}: expected a whole number"))
    });
    default * soak.unwrap_or(1).max(1)
}

#[test]
fn parallel_equals_sequential_on_mainnet_blocks() {
    let Some(blocks) = common::mainnet_blocks() else {
        return;
    };
    let mut failures = Vec::new();
    for fixture in blocks {
        let (block, state) = (&fixture.block, &fixture.state);
        let expected = execute_sequential(block, state).expect("sequential executes");
        for threads in THREADS {
            let config = ParallelConfig::never_fall_back(threads);
            for run in 0..runs(REPEATS) {
                let actual = execute_parallel(block, state, &config).expect("parallel executes");
                if let Some(difference) = expected.first_difference(&actual) {
                    failures.push(format!(
                        "block {} threads {threads} run {run}: {difference}",
                        block.header.number
                    ));
                    break;
                }
                if run == 0
                    && let Err(error) = verify_against_header(block, &actual)
                {
                    failures.push(format!(
                        "block {} threads {threads}: {error}",
                        block.header.number
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "parallel diverged:\n{}",
        failures.join("\n")
    );
}

/// The same, with every block that splits at all tried as partitions: real
/// blocks are where the prediction is most often wrong, so most of them
/// exercise validation and the switch to Block-STM.
#[test]
fn partitioned_equals_sequential_on_mainnet_blocks() {
    let Some(blocks) = common::mainnet_blocks() else {
        return;
    };
    let mut failures = Vec::new();
    let mut partitioned = 0;
    for fixture in blocks {
        let (block, state) = (&fixture.block, &fixture.state);
        let expected = execute_sequential(block, state).expect("sequential executes");
        for threads in THREADS {
            let config = ParallelConfig::partitioned(threads);
            for run in 0..runs(PARTITIONED_REPEATS) {
                let actual = execute_parallel(block, state, &config).expect("parallel executes");
                partitioned += usize::from(actual.path == ExecutionPath::Partitioned);
                if let Some(difference) = expected.first_difference(&actual) {
                    failures.push(format!(
                        "block {} threads {threads} run {run} ({}): {difference}",
                        block.header.number,
                        actual.path.as_str()
                    ));
                    break;
                }
            }
        }
    }
    eprintln!("{partitioned} runs held as partitions");
    assert!(
        failures.is_empty(),
        "partitioned diverged:\n{}",
        failures.join("\n")
    );
}
