//! Runs every Ethereum Foundation test under `shared/fixtures/ethereum-tests`
//! (GeneralStateTests and BlockchainTests) through parevm's executors and
//! requires that none fails.

use parevm_ethtests::{RunConfig, run_paths};
use std::path::PathBuf;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/fixtures/ethereum-tests"
);

#[test]
fn ethereum_tests() {
    let root = PathBuf::from(FIXTURES);
    if !root.is_dir() {
        println!(
            "SKIPPED: ethereum-tests fixtures at {} absent",
            root.display()
        );
        return;
    }
    let config = RunConfig::default();
    let start = std::time::Instant::now();
    let report = run_paths(&[root], &config).expect("fixtures readable");
    for failure in &report.failures {
        println!("{failure}");
    }
    for (reason, count) in &report.skipped {
        println!("skipped {count}: {reason}");
    }
    println!(
        "{} ({:.1}s)",
        report.summary(),
        start.elapsed().as_secs_f64()
    );
    assert!(report.passed > 0, "no test ran");
    assert_eq!(report.failed(), 0, "{}", report.summary());
}
