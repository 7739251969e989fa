//! Shared helpers of the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared/fixtures/mainnet` beside the project root, if present.
pub fn mainnet_fixtures() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/mainnet");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: {} is absent (the shared fixtures live beside the project root)",
            dir.display()
        );
        None
    }
}

/// Every shared mainnet block, loaded one at a time, if the fixtures are
/// present (see [`mainnet_fixtures`]).
pub fn mainnet_blocks() -> Option<impl Iterator<Item = parevm::fixture::MainnetFixture>> {
    let dir = mainnet_fixtures()?;
    let dirs = parevm::fixture::block_dirs(&dir).expect("fixture folder lists blocks");
    Some(
        dirs.into_iter()
            .map(|dir| parevm::fixture::load_mainnet_block(&dir).expect("fixture loads")),
    )
}

/// How a parallel run's outcome differs from the sequential one, if it
/// does: both results alike, or both the same error.
pub fn disagreement(
    expected: &Result<parevm::BlockResult, parevm::ExecutionError>,
    actual: &Result<parevm::BlockResult, parevm::ExecutionError>,
) -> Option<String> {
    match (expected, actual) {
        (Ok(expected), Ok(actual)) => expected.first_difference(actual),
        (Err(expected), Err(actual)) if expected.to_string() == actual.to_string() => None,
        (expected, actual) => Some(format!(
            "sequential {:?}, parallel {:?}",
            expected.as_ref().err(),
            actual.as_ref().err()
        )),
    }
}
