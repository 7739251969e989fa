//! Sequential against parallel (2 threads) execution of every workload kind,
//! on blocks built as `parevm bench` builds them (here 1,000 transactions,
//! hot ratio 0.1, default seed).
//!
//! `cargo bench -p parevm-workloads`; `PAREVM_BENCH_TXS` changes the size.
//! Throughput is in gas: criterion's "elem/s" reads as gas per second.

// `criterion_group!` defines a public function without documentation.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use parevm::{ParallelConfig, execute_parallel, execute_sequential};
use parevm_workloads::{WorkloadConfig, WorkloadKind, generate};
use std::time::Duration;

const THREADS: usize = 2;

fn workloads(c: &mut Criterion) {
    let transactions = std::env::var("PAREVM_BENCH_TXS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let parallel = ParallelConfig::with_threads(THREADS);
    for kind in WorkloadKind::ALL {
        let mut config = WorkloadConfig::new(kind);
        config.transactions = Some(transactions);
        let w = generate(&config).expect("valid workload");
        let gas = execute_sequential(&w.block, &w.state)
            .expect("block executes")
            .gas_used;

        let mut group = c.benchmark_group(kind.name());
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3))
            .throughput(Throughput::Elements(gas));
        // `iter_with_large_drop`: a block's result (state changes, receipts)
        // is dropped outside the timing, since dropping it is not executing.
        group.bench_function(BenchmarkId::new("sequential", transactions), |b| {
            b.iter_with_large_drop(|| execute_sequential(&w.block, &w.state).unwrap())
        });
        group.bench_function(
            BenchmarkId::new(format!("parallel-{THREADS}"), transactions),
            |b| b.iter_with_large_drop(|| execute_parallel(&w.block, &w.state, &parallel).unwrap()),
        );
        group.finish();
    }
}

criterion_group!(benches, workloads);
criterion_main!(benches);
