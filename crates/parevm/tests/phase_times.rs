//! `ParallelConfig::phase_times`: a block run on Block-STM or as
//! partitions reports where its time went, and its parts add up; nothing
//! is measured unless asked, or for a block that runs sequentially.

mod support;

use alloy_hardforks::EthereumHardfork;
use parevm::{BlockInput, ExecutionPath, InMemoryState, ParallelConfig, execute_parallel};
use support::*;

/// Calls to one counter interleaved with independent transfers: conflicts
/// that Block-STM resolves, at any thread count.
fn calls_and_transfers() -> (BlockInput, InMemoryState) {
    let counter_address = addr(0x71);
    let mut b = BlockBuilder::new(EthereumHardfork::Cancun);
    b.contract(counter_address, counter());
    b.fund_all((1..=40).map(addr));
    for i in 1..=40 {
        match i % 4 {
            0 => b.call(addr(i), counter_address, 0, Vec::new()),
            _ => b.transfer(addr(i), addr(500 + i), 7),
        };
    }
    b.build()
}

fn measured(threads: usize) -> ParallelConfig {
    ParallelConfig {
        phase_times: true,
        ..ParallelConfig::never_fall_back(threads)
    }
}

#[test]
fn a_block_stm_run_reports_phases_that_add_up() {
    let (block, state) = calls_and_transfers();
    for threads in THREADS {
        let result = execute_parallel(&block, &state, &measured(threads)).expect("executes");
        assert_eq!(result.path, ExecutionPath::Parallel);
        assert_adds_up(result.stats.phases.expect("measured"), threads);
    }
}

/// Fails unless `phases` are of `threads` workers that executed, and every
/// task ran within the workers' wall time, on one of them.
fn assert_adds_up(phases: parevm::PhaseTimes, threads: usize) {
    assert_eq!(phases.threads, threads);
    assert!(!phases.executing.is_zero(), "{phases:?}");
    assert!(!phases.before.is_zero() && !phases.running.is_zero());
    let tasks = phases.executing + phases.validating + phases.waiting + phases.assembling;
    assert!(tasks <= phases.running * threads as u32, "{phases:?}");
}

#[test]
fn nothing_is_measured_unless_asked() {
    let (block, state) = calls_and_transfers();
    let config = ParallelConfig::never_fall_back(2);
    let result = execute_parallel(&block, &state, &config).expect("executes");
    assert_eq!(result.path, ExecutionPath::Parallel);
    assert_eq!(result.stats.phases, None);
}

#[test]
fn a_partitioned_run_reports_phases_without_validation() {
    let mut b = BlockBuilder::new(EthereumHardfork::Cancun);
    b.fund_all((1..=40).map(addr));
    for i in 1..=40 {
        b.transfer(addr(i), addr(500 + i), 7);
    }
    let (block, state) = b.build();
    for threads in THREADS {
        let config = ParallelConfig {
            phase_times: true,
            ..ParallelConfig::partitioned(threads)
        };
        let result = execute_parallel(&block, &state, &config).expect("executes");
        assert_eq!(result.path, ExecutionPath::Partitioned);
        let phases = result.stats.phases.expect("measured");
        assert_adds_up(phases, threads);
        // Checked as they run: no validation, nothing to wait for.
        assert!(phases.validating.is_zero() && phases.waiting.is_zero());
        assert!(!phases.assembling.is_zero(), "{phases:?}");
    }
}

#[test]
fn sequential_runs_have_no_phases() {
    // Too few transactions for the default rule: sequential.
    let mut b = BlockBuilder::new(EthereumHardfork::Cancun);
    b.fund_all([addr(1)]);
    b.transfer(addr(1), addr(2), 7);
    let (block, state) = b.build();
    let config = ParallelConfig {
        phase_times: true,
        ..ParallelConfig::default()
    };
    let result = execute_parallel(&block, &state, &config).expect("executes");
    assert!(matches!(result.path, ExecutionPath::SequentialFallback(_)));
    assert_eq!(result.stats.phases, None);
}
