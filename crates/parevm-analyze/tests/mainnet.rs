//! Every shared mainnet block analyses to speedups within their bounds.

use parevm::fixture::{block_dirs, load_mainnet_block};
use parevm_analyze::{THREAD_COUNTS, analyze_block};
use std::path::Path;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/fixtures/mainnet"
);

#[test]
fn mainnet_speedups_are_bounded() {
    let root = Path::new(FIXTURES);
    if !root.exists() {
        eprintln!("SKIPPED: mainnet fixtures absent at {FIXTURES}");
        return;
    }
    let dirs = block_dirs(root).expect("listing fixtures");
    assert!(!dirs.is_empty());
    for dir in dirs {
        let fixture = load_mainnet_block(&dir).expect("loading fixture");
        let n = fixture.block.transactions.len();
        let a = analyze_block(&fixture.block, &fixture.state).expect("analysing");
        assert_eq!(a.transactions, n);
        assert_eq!(a.number, fixture.block.header.number);
        let max = n.max(1) as f64;
        assert!(
            a.ideal_speedup >= 1.0 && a.ideal_speedup <= max,
            "{}: {}",
            a.number,
            a.ideal_speedup
        );
        for t in THREAD_COUNTS {
            let b = a.bounded_speedup[&t];
            assert!(b >= 1.0 && b <= max.min(t as f64) && b <= a.ideal_speedup + 1e-9);
        }
        assert!((0.0..=1.0).contains(&a.independent_share));
        assert!(a.critical_path_gas <= a.gas_used);
        assert!(a.critical_path_ms <= a.total_time_ms + 1e-9);
        eprintln!(
            "block {} txs {} ideal {:.2} x4 {:.2} independent {:.0}% ({})",
            a.number,
            n,
            a.ideal_speedup,
            a.bounded_speedup[&4],
            a.independent_share * 100.0,
            a.weight.as_str()
        );
    }
}
