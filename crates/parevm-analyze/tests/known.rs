//! Blocks whose parallelism is known by construction, as hand-made traces.

use alloy_primitives::{Address, U256};
use parevm::parallel::{Location, TxAccessTrace};
use parevm_analyze::{BlockAnalysis, BlockDag, WeightBasis, bounded_speedup, ideal_speedup};

fn addr(n: u8) -> Address {
    Address::repeat_byte(n)
}

fn slot(n: u8, s: u64) -> Location {
    Location::Storage(addr(n), U256::from(s))
}

fn tx(
    reads: &[Location],
    writes: &[Location],
    increments: &[Location],
    nanos: u64,
) -> TxAccessTrace {
    TxAccessTrace {
        reads: reads.to_vec(),
        writes: writes.to_vec(),
        increments: increments.to_vec(),
        bounds: Vec::new(),
        gas_used: 21_000,
        execution_nanos: nanos,
        shared_nanos: 0,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// A chain: each transaction reads what the previous one wrote.
fn chain(n: usize) -> Vec<TxAccessTrace> {
    (0..n)
        .map(|_| tx(&[slot(1, 0)], &[slot(1, 0)], &[], 1000))
        .collect()
}

/// Independent transfers between disjoint accounts, all paying the beneficiary.
fn independent(n: usize) -> Vec<TxAccessTrace> {
    let coinbase = Location::Balance(addr(0xcb));
    (0..n)
        .map(|i| {
            let from = Address::with_last_byte(i as u8 + 1);
            let to = Address::left_padding_from(&[0xee, i as u8]);
            tx(
                &[Location::Balance(from), Location::Nonce(from)],
                &[Location::Balance(from), Location::Nonce(from)],
                &[Location::Balance(to), coinbase],
                1000,
            )
        })
        .collect()
}

#[test]
fn chain_has_ideal_speedup_one() {
    for n in [1, 2, 10, 100] {
        let traces = chain(n);
        let dag = BlockDag::new(&traces);
        assert_eq!(dag.edge_count(), n - 1);
        assert_eq!(dag.critical_path().1, (0..n).collect::<Vec<_>>());
        assert!(close(ideal_speedup(&traces), 1.0));
        for t in [1, 2, 4, 32] {
            assert!(close(bounded_speedup(&traces, t), 1.0));
        }
        let a = BlockAnalysis::from_traces(7, &traces);
        assert_eq!(a.critical_path_gas, 21_000 * n as u64);
        assert!(close(a.critical_path_ms, n as f64 * 1e-3));
        assert!(close(a.independent_share, 1.0 / n as f64));
        if n > 1 {
            assert_eq!(
                a.hot_locations[0].location,
                format!("storage:{:#x}:0x0", addr(1))
            );
            assert_eq!(a.hot_locations[0].dependent_transactions, n - 1);
        } else {
            assert!(a.hot_locations.is_empty());
        }
    }
}

/// A chain whose second transaction's receipt bloom (8 of its 9 us) is
/// hashed by every idle worker: off the critical path with unlimited
/// workers, split among the workers of a bounded schedule.
#[test]
fn shared_work_leaves_the_critical_path() {
    let mut traces = chain(4);
    traces[1].execution_nanos = 9000;
    traces[1].shared_nanos = 8000;
    let dag = BlockDag::new(&traces);
    assert_eq!(dag.total_work(), 12_000);
    assert_eq!(dag.critical_path().0, 4000);
    assert!(close(ideal_speedup(&traces), 3.0));
    assert!(close(bounded_speedup(&traces, 1), 1.0));
    // 1 + (1 + 8 / 2) + 1 + 1 us.
    assert!(close(bounded_speedup(&traces, 2), 12.0 / 8.0));
    // 1 + (1 + 2) + 1 + 1 us, at least 12 / 4.
    assert!(close(bounded_speedup(&traces, 4), 12.0 / 6.0));
}

#[test]
fn independent_transactions_have_ideal_speedup_n() {
    for n in [1, 2, 7, 40] {
        let traces = independent(n);
        let dag = BlockDag::new(&traces);
        assert_eq!(dag.edge_count(), 0);
        assert!(close(ideal_speedup(&traces), n as f64));
        for t in [1, 2, 4, 8, 16, 32] {
            // Equal weights: ceil(n / t) rounds of t transactions.
            let expected = n as f64 / n.div_ceil(t) as f64;
            assert!(close(bounded_speedup(&traces, t), expected), "n={n} t={t}");
        }
        let a = BlockAnalysis::from_traces(1, &traces);
        assert!(close(a.independent_share, 1.0));
        assert!(a.hot_locations.is_empty());
    }
}

#[test]
fn diamond_has_ideal_speedup_two() {
    // 0 writes A and B; 1 reads A, writes C; 2 reads B, writes D; 3 reads C and D.
    let (a, b, c, d) = (slot(1, 1), slot(1, 2), slot(1, 3), slot(1, 4));
    let traces = vec![
        tx(&[], &[a, b], &[], 1000),
        tx(&[a], &[c], &[], 1000),
        tx(&[b], &[d], &[], 1000),
        tx(&[c, d], &[], &[], 1000),
    ];
    let dag = BlockDag::new(&traces);
    assert_eq!(dag.dependencies, vec![vec![], vec![0], vec![0], vec![1, 2]]);
    // Work 4, critical path 3 (0, 1 or 2, 3) ... with equal weights the
    // middle pair runs together: 4 / 3. Make the ends free to get exactly 2.
    assert!(close(ideal_speedup(&traces), 4.0 / 3.0));
    let mut traces = traces;
    traces[0].execution_nanos = 0;
    traces[3].execution_nanos = 0;
    assert!(close(ideal_speedup(&traces), 2.0));
    assert!(close(bounded_speedup(&traces, 2), 2.0));
    assert!(close(bounded_speedup(&traces, 1), 1.0));
}

#[test]
fn increments_only_on_the_beneficiary_are_independent() {
    let coinbase = Location::Balance(addr(0xcb));
    let traces: Vec<_> = (0..20).map(|_| tx(&[], &[], &[coinbase], 500)).collect();
    let dag = BlockDag::new(&traces);
    assert_eq!(dag.edge_count(), 0);
    assert!(close(ideal_speedup(&traces), 20.0));
    assert!(close(bounded_speedup(&traces, 4), 4.0));
}

#[test]
fn read_of_incremented_balance_depends_on_all_earlier_incrementers() {
    let coinbase = Location::Balance(addr(0xcb));
    let mut traces = vec![
        tx(&[], &[], &[coinbase], 1000),         // 0: increment
        tx(&[coinbase], &[coinbase], &[], 1000), // 1: full write (reads then writes)
        tx(&[], &[], &[coinbase], 1000),         // 2: increment
        tx(&[], &[], &[coinbase], 1000),         // 3: increment
        tx(&[slot(5, 5)], &[], &[], 1000),       // 4: unrelated
        tx(&[coinbase], &[], &[coinbase], 1000), // 5: reads the sum, increments
        tx(&[], &[], &[coinbase], 1000),         // 6: increment
        tx(&[coinbase], &[], &[], 1000),         // 7: reads
    ];
    let dag = BlockDag::new(&traces);
    assert_eq!(dag.dependencies[1], vec![0]);
    assert_eq!(dag.dependencies[2], Vec::<usize>::new());
    assert_eq!(dag.dependencies[5], vec![1, 2, 3]);
    assert_eq!(dag.dependencies[7], vec![1, 2, 3, 5, 6]);
    let hot = &dag.locations[0];
    assert_eq!(hot.location, coinbase);
    assert_eq!(hot.dependents, 3);
    assert_eq!(hot.edges, 1 + 3 + 5);
    assert_eq!(hot.writers, 6);
    // An increment does not depend on earlier writes.
    traces.push(tx(&[], &[], &[coinbase], 1000));
    assert!(BlockDag::new(&traces).dependencies[8].is_empty());
}

#[test]
fn writes_without_reads_do_not_depend() {
    let traces: Vec<_> = (0..5).map(|_| tx(&[], &[slot(1, 0)], &[], 10)).collect();
    assert!(close(ideal_speedup(&traces), 5.0));
}

#[test]
fn weights_fall_back_to_gas_then_unit() {
    let mut traces = independent(4);
    traces.extend(chain(4)); // 4..8 chain, 4 reads nothing written before
    for t in &mut traces {
        t.execution_nanos = 0;
    }
    let dag = BlockDag::new(&traces);
    assert_eq!(dag.basis, WeightBasis::Gas);
    // 8 transactions of equal gas, critical path 4 of them.
    assert!(close(dag.ideal_speedup(), 2.0));
    for t in &mut traces {
        t.gas_used = 0;
    }
    let dag = BlockDag::new(&traces);
    assert_eq!(dag.basis, WeightBasis::Unit);
    assert!(close(dag.ideal_speedup(), 2.0));
    let a = BlockAnalysis::from_dag(0, &dag, 3);
    assert_eq!(a.critical_path_ms, 0.0);
    assert_eq!(a.critical_path_transactions, 4);
}

#[test]
fn empty_and_single_blocks() {
    assert!(close(ideal_speedup(&[]), 1.0));
    assert!(close(bounded_speedup(&[], 4), 1.0));
    let a = BlockAnalysis::from_traces(0, &[]);
    assert_eq!(a.transactions, 0);
    assert!(close(a.independent_share, 1.0));
    let one = [TxAccessTrace::default()];
    assert!(close(ideal_speedup(&one), 1.0));
    assert!(close(bounded_speedup(&one, 0), 1.0));
    assert!(close(bounded_speedup(&one, 32), 1.0));
}

#[test]
fn greedy_schedule_picks_lowest_ready_index_on_first_free_worker() {
    // 0 (long) and 1 (short) independent; 2 depends on 1; 3 independent.
    let traces = vec![
        tx(&[], &[slot(1, 0)], &[], 30),
        tx(&[], &[slot(1, 1)], &[], 10),
        tx(&[slot(1, 1)], &[], &[], 10),
        tx(&[], &[], &[], 10),
    ];
    let dag = BlockDag::new(&traces);
    let s = dag.schedule(2);
    let at = |tx: usize| (s.slots[tx].worker, s.slots[tx].start, s.slots[tx].end);
    assert_eq!(at(0), (0, 0, 30));
    assert_eq!(at(1), (1, 0, 10));
    // At 10, both 2 and 3 are ready: 2 (lower index) goes first.
    assert_eq!(at(2), (1, 10, 20));
    assert_eq!(at(3), (1, 20, 30));
    assert_eq!(s.makespan, 30);
    assert!(close(s.speedup(), 2.0));
}

#[test]
fn speedups_are_bounded_on_pseudo_random_blocks() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    for _ in 0..200 {
        let n = next(60) as usize;
        let traces: Vec<_> = (0..n)
            .map(|_| {
                let locs = |k: u64, next: &mut dyn FnMut(u64) -> u64| {
                    (0..k).map(|_| slot(1, next(12))).collect::<Vec<_>>()
                };
                let r = next(4);
                let reads = locs(r, &mut next);
                let w = next(3);
                let writes = locs(w, &mut next);
                let i = next(3);
                let increments = locs(i, &mut next);
                let nanos = next(5) * 1000;
                tx(&reads, &writes, &increments, nanos)
            })
            .collect();
        let dag = BlockDag::new(&traces);
        let ideal = dag.ideal_speedup();
        assert!(ideal >= 1.0 && ideal <= n.max(1) as f64);
        let mut previous = 1.0;
        for t in 1..=40 {
            let b = dag.bounded_speedup(t);
            assert!(
                b >= 1.0 && b <= t.min(n.max(1)) as f64 + 1e-9,
                "t={t} b={b}"
            );
            assert!(b <= ideal + 1e-9);
            if t == 1 {
                assert!(close(b, 1.0));
            }
            let _ = previous;
            previous = b;
            // Every dependency finishes before its dependent starts, and no
            // worker runs two transactions at once.
            let s = dag.schedule(t);
            for (j, deps) in dag.dependencies.iter().enumerate() {
                for &i in deps {
                    assert!(s.slots[i].end <= s.slots[j].start);
                }
            }
            let mut by_worker = s.slots.clone();
            by_worker.sort_by_key(|s| (s.worker, s.start, s.end));
            for w in by_worker.windows(2) {
                if w[0].worker == w[1].worker {
                    assert!(w[0].end <= w[1].start);
                }
            }
        }
    }
}

#[test]
fn json_shape() {
    let a = BlockAnalysis::from_traces(42, &chain(3));
    let v = serde_json::to_value(&a).unwrap();
    for key in [
        "number",
        "transactions",
        "gas_used",
        "critical_path_gas",
        "critical_path_ms",
        "ideal_speedup",
        "bounded_speedup",
        "independent_share",
        "hot_locations",
        "heaviest_transactions",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    let bounded = v["bounded_speedup"].as_object().unwrap();
    let keys: Vec<_> = bounded.keys().cloned().collect();
    for k in ["2", "4", "8", "16", "32"] {
        assert!(keys.contains(&k.to_string()));
    }
    let back: BlockAnalysis = serde_json::from_value(v).unwrap();
    assert_eq!(back, a);
}

/// A transaction slow for its gas (precompile pairings, say) is reported
/// with its share of the time beside its share of the gas, heaviest first.
#[test]
fn heaviest_transactions_by_time_beside_their_gas() {
    let mut traces = independent(6);
    traces[4].execution_nanos = 4_000;
    traces[2].execution_nanos = 2_000;
    let heaviest = BlockAnalysis::from_traces(1, &traces).heaviest_transactions;
    let indices: Vec<usize> = heaviest.iter().map(|h| h.index).collect();
    // Ties go to the earlier transaction.
    assert_eq!(indices, [4, 2, 0]);
    assert!(close(heaviest[0].work_share, 0.4));
    assert!(close(heaviest[1].work_share, 0.2));
    assert!(close(heaviest[0].gas_share, 1.0 / 6.0));
    assert_eq!(heaviest[0].gas_used, 21_000);
    // Fewer transactions than reported: all of them; none for an empty block.
    assert_eq!(
        BlockAnalysis::from_traces(1, &chain(2))
            .heaviest_transactions
            .len(),
        2
    );
    assert!(
        BlockAnalysis::from_traces(1, &[])
            .heaviest_transactions
            .is_empty()
    );
}
