//! Gas targets: a block generated for `gas` uses about that much gas.

use parevm::{TxOutcome, execute_sequential};
use parevm_workloads::{WorkloadConfig, WorkloadKind, generate};

fn per_tx_gas(kind: WorkloadKind, hot_ratio: f64) -> Vec<u64> {
    use alloy_consensus::Transaction;
    let mut config = WorkloadConfig::new(kind);
    config.transactions = Some(20);
    config.hot_ratio = hot_ratio;
    let w = generate(&config).unwrap();
    let result = execute_sequential(&w.block, &w.state).unwrap();
    result
        .transactions
        .iter()
        .zip(&w.block.transactions)
        .map(|(t, tx)| match &t.outcome {
            TxOutcome::Success { gas_used, .. } => {
                let calldata: u64 = tx
                    .input()
                    .iter()
                    .map(|b| if *b == 0 { 4 } else { 16 })
                    .sum();
                *gas_used - 21_000 - calldata
            }
            other => panic!("{kind}: {other:?}"),
        })
        .collect()
}

/// Execution gas per transaction (beyond intrinsic and calldata), the
/// source of the generator's estimates.
#[test]
fn print_gas_per_transaction() {
    for kind in WorkloadKind::ALL {
        for hot in [0.0, 1.0] {
            let gas = per_tx_gas(kind, hot);
            println!("{kind} hot={hot}: {gas:?}");
        }
    }
}

#[test]
fn gas_target_is_met_closely() {
    for kind in WorkloadKind::ALL {
        for hot_ratio in [0.0, 0.5, 1.0] {
            let target = 3_000_000;
            let mut config = WorkloadConfig::new(kind);
            config.transactions = None;
            config.gas = Some(target);
            config.hot_ratio = hot_ratio;
            let w = generate(&config).unwrap();
            let result = execute_sequential(&w.block, &w.state).unwrap();
            let used = result.gas_used as f64;
            let error = (used - target as f64) / target as f64;
            println!(
                "{kind} hot={hot_ratio}: {} txs, {} gas ({:+.2}%)",
                w.block.transactions.len(),
                result.gas_used,
                error * 100.0
            );
            // Reaches the target (estimates are within 0.1%) and overshoots
            // by less than one transaction.
            assert!(
                used >= target as f64 * 0.999 && used < target as f64 + 91_000.0,
                "{kind} hot={hot_ratio}: target {target}, used {used}"
            );
            assert!(w.block.header.gas_limit >= w.block.gas_limit_sum());
        }
    }
}
