//! Generated blocks: deterministic, valid, every transaction succeeds, and the
//! parallel executor reproduces the sequential result.

use alloy_consensus::Transaction;
use alloy_primitives::{Address, U256};
use parevm::{InMemoryState, ParallelConfig, TxOutcome, execute_parallel, execute_sequential};
use parevm_workloads::{
    Workload, WorkloadConfig, WorkloadError, WorkloadKind, erc20_balance_slot, generate,
};
use std::collections::{BTreeMap, BTreeSet};

const HOT_RATIOS: [f64; 3] = [0.0, 0.5, 1.0];

fn config(kind: WorkloadKind, transactions: usize, hot_ratio: f64) -> WorkloadConfig {
    let mut config = WorkloadConfig::new(kind);
    config.transactions = Some(transactions);
    config.hot_ratio = hot_ratio;
    config
}

/// The state as a sorted, comparable map.
fn dump(state: &InMemoryState) -> BTreeMap<Address, String> {
    state
        .accounts()
        .map(|(a, acc)| {
            let storage: BTreeMap<_, _> = acc.storage.iter().collect();
            (
                *a,
                format!(
                    "{} {} {} {:?}",
                    acc.info.balance, acc.info.nonce, acc.info.code_hash, storage
                ),
            )
        })
        .collect()
}

fn assert_all_succeed(w: &Workload, what: &str) {
    let result = execute_sequential(&w.block, &w.state).unwrap();
    assert_eq!(result.transactions.len(), w.block.transactions.len());
    for (index, tx) in result.transactions.iter().enumerate() {
        assert!(
            matches!(tx.outcome, TxOutcome::Success { .. }),
            "{what}: tx {index}: {:?}",
            tx.outcome
        );
    }
    assert!(
        w.block.header.gas_limit >= w.block.gas_limit_sum(),
        "{what}"
    );
    assert!(result.gas_used <= w.block.header.gas_limit, "{what}");
}

#[test]
fn same_seed_same_block() {
    for kind in WorkloadKind::ALL {
        let c = config(kind, 200, 0.3);
        let (a, b) = (generate(&c).unwrap(), generate(&c).unwrap());
        assert_eq!(a.block.header, b.block.header, "{kind}");
        assert_eq!(a.block.transactions, b.block.transactions, "{kind}");
        assert_eq!(a.block.withdrawals, b.block.withdrawals, "{kind}");
        assert_eq!(dump(&a.state), dump(&b.state), "{kind}");

        let mut other = c.clone();
        other.seed += 1;
        let d = generate(&other).unwrap();
        assert_ne!(
            a.block.transactions, d.block.transactions,
            "{kind}: seed ignored"
        );
    }
}

#[test]
fn every_transaction_succeeds() {
    for kind in WorkloadKind::ALL {
        for hot_ratio in HOT_RATIOS {
            let w = generate(&config(kind, 150, hot_ratio)).unwrap();
            assert_all_succeed(&w, &format!("{kind} hot={hot_ratio}"));
        }
        // A pool smaller than the block: senders, recipients, pools and
        // HotSlot instances are reused.
        let mut small = config(kind, 150, 0.3);
        small.accounts = 7;
        assert_all_succeed(&generate(&small).unwrap(), &format!("{kind} accounts=7"));
    }
}

#[test]
fn parallel_equals_sequential() {
    for kind in WorkloadKind::ALL {
        for hot_ratio in HOT_RATIOS {
            for accounts in [100_000, 13] {
                let mut c = config(kind, 300, hot_ratio);
                c.accounts = accounts;
                let w = generate(&c).unwrap();
                let sequential = execute_sequential(&w.block, &w.state).unwrap();
                for threads in [1, 2, 4] {
                    let parallel = execute_parallel(
                        &w.block,
                        &w.state,
                        &ParallelConfig::never_fall_back(threads),
                    )
                    .unwrap();
                    assert_eq!(
                        sequential.first_difference(&parallel),
                        None,
                        "{kind} hot={hot_ratio} accounts={accounts} threads={threads}"
                    );
                }
            }
        }
    }
}

/// Larger blocks, more threads than cores, several runs: races in the
/// parallel executor show up as differences here.
#[test]
fn parallel_equals_sequential_repeatedly() {
    for kind in WorkloadKind::ALL {
        for hot_ratio in [0.05, 0.5] {
            let w = generate(&config(kind, 1_500, hot_ratio)).unwrap();
            let sequential = execute_sequential(&w.block, &w.state).unwrap();
            for round in 0..3 {
                let threads = [2, 4, 8][round];
                let parallel = execute_parallel(
                    &w.block,
                    &w.state,
                    &ParallelConfig::never_fall_back(threads),
                )
                .unwrap();
                assert_eq!(
                    sequential.first_difference(&parallel),
                    None,
                    "{kind} hot={hot_ratio} threads={threads}"
                );
            }
        }
    }
}

/// Large blocks that are one chain on a hot token holder, counter or pool
/// run sequentially, which a sample of their transactions tells before the
/// plan of every one; half as hot, they are left to the plan, and
/// partition. Either way the result is the sequential one.
#[test]
fn a_sample_tells_one_chain_from_a_half_hot_block() {
    use parevm::{ExecutionPath, FallbackReason};
    let two_threads = ParallelConfig {
        cores: 2,
        ..ParallelConfig::with_threads(2)
    };
    for kind in [
        WorkloadKind::Erc20Transfers,
        WorkloadKind::HotSlot,
        WorkloadKind::AmmSwaps,
    ] {
        for (hot_ratio, expected) in [
            (
                1.0,
                ExecutionPath::SequentialFallback(FallbackReason::DependencyChain),
            ),
            (0.5, ExecutionPath::Partitioned),
        ] {
            let w = generate(&config(kind, 1_500, hot_ratio)).unwrap();
            let sequential = execute_sequential(&w.block, &w.state).unwrap();
            let parallel = execute_parallel(&w.block, &w.state, &two_threads).unwrap();
            assert_eq!(parallel.path, expected, "{kind} hot={hot_ratio}");
            assert_eq!(
                sequential.first_difference(&parallel),
                None,
                "{kind} hot={hot_ratio}"
            );
        }
    }
}

/// The default bench's independent blocks (5,000 transactions among
/// 100,000 accounts) run as partitions on 2 threads: a prediction or
/// validation that took them apart needlessly (two generated addresses
/// sharing a digest did) would leave them to Block-STM, still identical,
/// and only the speedup would show it.
#[test]
fn the_default_independent_blocks_partition() {
    use parevm::ExecutionPath;
    let two_threads = ParallelConfig {
        cores: 2,
        ..ParallelConfig::with_threads(2)
    };
    for kind in WorkloadKind::ALL {
        let w = generate(&config(kind, 5_000, 0.0)).unwrap();
        let parallel = execute_parallel(&w.block, &w.state, &two_threads).unwrap();
        assert_eq!(parallel.path, ExecutionPath::Partitioned, "{kind}");
    }
}

#[test]
fn hot_ratio_is_exact_and_spread() {
    for hot_ratio in [0.0, 0.1, 0.25, 0.5, 0.9, 1.0] {
        let n = 1000;
        let w = generate(&config(WorkloadKind::RawTransfers, n, hot_ratio)).unwrap();
        // Hot raw transfers all come from one sender, which therefore has
        // the largest nonce.
        let mut per_sender: BTreeMap<Address, usize> = BTreeMap::new();
        for tx in &w.block.transactions {
            *per_sender.entry(tx.signer()).or_default() += 1;
        }
        let hot = per_sender.values().copied().max().unwrap_or(0);
        let expected = n as f64 * hot_ratio;
        let hot = if hot_ratio == 0.0 { 0 } else { hot };
        assert!(
            (hot as f64 - expected).abs() <= 1.0,
            "hot={hot_ratio}: {hot} hot transactions of {n}"
        );
        if hot_ratio == 0.0 {
            assert_eq!(per_sender.len(), n, "cold senders are all distinct");
        }
    }
}

#[test]
fn nonces_are_consecutive_per_sender() {
    for kind in WorkloadKind::ALL {
        let mut c = config(kind, 100, 0.5);
        c.accounts = 5;
        let w = generate(&c).unwrap();
        let mut next: BTreeMap<Address, u64> = BTreeMap::new();
        for tx in &w.block.transactions {
            let nonce = next.entry(tx.signer()).or_default();
            assert_eq!(tx.nonce(), *nonce, "{kind}");
            *nonce += 1;
            assert!(w.state.get(&tx.signer()).is_some_and(|a| a.info.nonce == 0));
        }
    }
}

#[test]
fn token_supply_matches_balances() {
    for kind in [
        WorkloadKind::Erc20Transfers,
        WorkloadKind::AmmSwaps,
        WorkloadKind::Mixed,
    ] {
        let w = generate(&config(kind, 100, 0.5)).unwrap();
        // Every address the block names: accounts, senders, callees and the
        // first argument of each call (a transfer's recipient).
        let mut candidates: BTreeSet<Address> = w.state.accounts().map(|(a, _)| *a).collect();
        for tx in &w.block.transactions {
            candidates.insert(tx.signer());
            candidates.extend(tx.to());
            if tx.input().len() >= 36 {
                candidates.insert(Address::from_slice(&tx.input()[16..36]));
            }
        }
        let mut tokens = 0;
        for (address, account) in w.state.accounts() {
            let Some(supply) = account.storage.get(&U256::from(2)) else {
                continue;
            };
            if account.storage.contains_key(&U256::from(0)) {
                continue; // an AMM pair (slot 0 = token0), not a token
            }
            tokens += 1;
            let sum = candidates
                .iter()
                .filter_map(|h| account.storage.get(&erc20_balance_slot(*h)))
                .fold(U256::ZERO, |a, b| a + *b);
            assert_eq!(sum, *supply, "{kind}: token {address}");
        }
        assert!(tokens > 0, "{kind}");
    }
}

#[test]
fn hot_slot_counter_counts_hot_bumps() {
    let n = 120;
    let w = generate(&config(WorkloadKind::HotSlot, n, 1.0)).unwrap();
    let result = execute_sequential(&w.block, &w.state).unwrap();
    // bump() returns the new counter; the shared one starts at 1.
    let TxOutcome::Success { output, .. } = &result.transactions[n - 1].outcome else {
        panic!("last bump failed");
    };
    assert_eq!(U256::from_be_slice(output), U256::from(n + 1));
}

#[test]
fn bad_knobs_are_rejected() {
    let base = WorkloadConfig::new(WorkloadKind::Erc20Transfers);
    type Tweak = Box<dyn Fn(&mut WorkloadConfig)>;
    let cases: Vec<(Tweak, WorkloadError)> = vec![
        (
            Box::new(|c| c.hot_ratio = 1.5),
            WorkloadError::HotRatio(1.5),
        ),
        (
            Box::new(|c| c.hot_ratio = -0.1),
            WorkloadError::HotRatio(-0.1),
        ),
        (Box::new(|c| c.accounts = 0), WorkloadError::ZeroAccounts),
        (
            Box::new(|c| c.gas = Some(1_000_000)),
            WorkloadError::BothSizes,
        ),
        (Box::new(|c| c.transactions = None), WorkloadError::NoSize),
        (
            Box::new(|c| c.transactions = Some(0)),
            WorkloadError::ZeroTransactions,
        ),
        (
            Box::new(|c| {
                c.transactions = None;
                c.gas = Some(0)
            }),
            WorkloadError::ZeroGas,
        ),
        (
            Box::new(|c| c.transactions = Some(usize::MAX)),
            WorkloadError::TooLarge,
        ),
    ];
    for (tweak, expected) in cases {
        let mut c = base.clone();
        tweak(&mut c);
        let error = generate(&c).unwrap_err();
        assert_eq!(error, expected);
        assert!(!error.to_string().is_empty());
    }
    let mut nan = base.clone();
    nan.hot_ratio = f64::NAN;
    assert!(matches!(generate(&nan), Err(WorkloadError::HotRatio(_))));
}

#[test]
fn kinds_parse_from_their_names() {
    let names: Vec<_> = WorkloadKind::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(
        names,
        [
            "raw-transfers",
            "erc20-transfers",
            "amm-swaps",
            "hot-slot",
            "mixed"
        ]
    );
    for kind in WorkloadKind::ALL {
        assert_eq!(kind.name().parse::<WorkloadKind>().unwrap(), kind);
    }
    let error = "uniswap".parse::<WorkloadKind>().unwrap_err().to_string();
    for name in names {
        assert!(error.contains(name), "{error}");
    }
}
