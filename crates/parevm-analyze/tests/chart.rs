//! The SVG charts are written and look like SVG.

use parevm::parallel::{Location, TxAccessTrace};
use parevm_analyze::{
    BlockDag,
    chart::{Curve, schedule_chart, speedup_chart},
};
use std::path::PathBuf;

fn out(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("parevm-analyze-charts");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn assert_svg(path: &PathBuf) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let trimmed = text.trim_start();
    assert!(
        trimmed.starts_with("<svg"),
        "starts with {:?}",
        &trimmed[..20.min(trimmed.len())]
    );
    assert!(text.trim_end().ends_with("</svg>"));
    assert_eq!(text.matches('<').count(), text.matches('>').count());
    text
}

fn traces() -> Vec<TxAccessTrace> {
    let hot = Location::Balance(alloy_primitives::Address::repeat_byte(1));
    (0..30)
        .map(|i| TxAccessTrace {
            reads: if i % 3 == 0 { vec![hot] } else { vec![] },
            writes: if i % 3 == 0 { vec![hot] } else { vec![] },
            increments: vec![],
            bounds: vec![],
            gas_used: 21_000 + i * 1000,
            execution_nanos: 10_000 + i * 500,
            shared_nanos: 0,
        })
        .collect()
}

#[test]
fn speedup_chart_is_svg() {
    let dag = BlockDag::new(&traces());
    let bound = Curve {
        label: "ideal bound".into(),
        points: (1..=32)
            .map(|t| (t as f64, dag.bounded_speedup(t)))
            .collect(),
    };
    let measured = Curve {
        label: "measured".into(),
        points: vec![(1.0, 0.9), (2.0, 1.7)],
    };
    let path = out("speedup.svg");
    speedup_chart(&path, "test block", &[bound], &[measured]).unwrap();
    let text = assert_svg(&path);
    assert!(text.contains("threads"));
    assert!(text.contains("ideal bound"));
}

#[test]
fn schedule_chart_is_svg() {
    let dag = BlockDag::new(&traces());
    let schedule = dag.schedule(4);
    let path = out("schedule.svg");
    schedule_chart(&path, "schedule", &schedule, &dag.critical_path().1).unwrap();
    let text = assert_svg(&path);
    assert!(text.contains("<rect"));
}

/// Workers beyond one per transaction never run one: the chart has a row
/// per transaction, however many workers were asked for (a count that
/// overflowed the height's arithmetic before).
#[test]
fn a_schedule_on_more_workers_than_transactions_draws_a_row_per_transaction() {
    let dag = BlockDag::new(&traces());
    for workers in [30, 31, usize::MAX] {
        let schedule = dag.schedule(workers);
        assert_eq!(schedule.busy_workers(), 30);
        let path = out(&format!("schedule-{workers}.svg"));
        schedule_chart(&path, "schedule", &schedule, &[]).unwrap();
        // 140 pixels of margins and labels, 36 a row.
        assert!(assert_svg(&path).contains(r#"height="1220""#));
    }
    assert_eq!(BlockDag::new(&[]).schedule(usize::MAX).busy_workers(), 1);
}

#[test]
fn empty_block_charts() {
    let dag = BlockDag::new(&[]);
    let path = out("empty-schedule.svg");
    schedule_chart(&path, "empty", &dag.schedule(4), &[]).unwrap();
    assert_svg(&path);
    let path = out("empty-speedup.svg");
    speedup_chart(&path, "empty", &[], &[]).unwrap();
    assert_svg(&path);
}

#[test]
fn unwritable_path_is_an_error() {
    let path = PathBuf::from("/nonexistent-dir/x/chart.svg");
    assert!(speedup_chart(&path, "t", &[], &[]).is_err());
}
