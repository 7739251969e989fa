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
