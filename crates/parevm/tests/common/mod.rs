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
