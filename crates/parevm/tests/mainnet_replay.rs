//! Replays every shared mainnet block sequentially and checks it against its
//! header (gas used, logs bloom, receipts root).

mod common;

use parevm::{execute_sequential, fixture, verify::verify_against_header};

#[test]
fn every_mainnet_fixture_verifies_sequentially() {
    let Some(dir) = common::mainnet_fixtures() else {
        return;
    };
    let dirs = fixture::block_dirs(&dir).expect("fixture folder lists blocks");
    assert!(
        dirs.len() >= 49,
        "expected the 49 shared blocks, found {}",
        dirs.len()
    );
    let mut failures = Vec::new();
    for dir in dirs {
        let fixture = fixture::load_mainnet_block(&dir).expect("fixture loads");
        let result = execute_sequential(&fixture.block, &fixture.state).expect("block executes");
        if let Err(error) = verify_against_header(&fixture.block, &result) {
            failures.push(format!("block {}: {error}", fixture.block.header.number));
        }
    }
    assert!(
        failures.is_empty(),
        "blocks failed verification:\n{}",
        failures.join("\n")
    );
}
