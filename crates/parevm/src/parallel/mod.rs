//! The Block-STM parallel executor. (The files named below are this
//! module's private parts, in `src/parallel/`.)
//!
//! On Block-STM (`block_stm.rs`), a block runs optimistically on N threads
//! over a multi-version memory (`mv_memory/`): every incarnation of a transaction records its read
//! set and write set (`vm.rs`); validation re-checks the read set against
//! lower transactions' latest writes and aborts the incarnation on a
//! mismatch; an aborted incarnation's writes become ESTIMATE markers that
//! make readers wait instead of failing later; a collaborative scheduler
//! (`scheduler.rs`) hands out execution and validation tasks and detects the
//! end (`executor.rs`); idle workers help hash a large receipt's bloom
//! (`shared_bloom.rs`). The workers other than the caller are helper
//! threads from a pool (`helpers.rs`), kept off the caller's core
//! (`placement.rs`). Then every worker takes a share of assembling the
//! block (`merge.rs`): the final write sets folded in order into the
//! block's state changes, and the receipts, counted against the block's
//! gas as the sequential executor counts it (`block_gas.rs`).
//!
//! Beneficiary fees, plain-transfer credits and every other balance change
//! the EVM does not observe (`balance_watch.rs`) are commutative increments
//! (`vm.rs`, `fee_credit.rs`), which removes the conflict every Ethereum
//! transaction would otherwise have on the block's beneficiary, and those
//! of WETH deposits, forwarded ETH and tips. A sum of such credits that
//! would overflow a balance sends the block to the sequential executor
//! (`credit.rs`).
//!
//! Before any of that, the block's dependencies are predicted and its
//! partitions planned (`planning.rs`, `prediction.rs`), and the fallback
//! rule (`config.rs`) decides whether parallelism can pay at all. A block
//! whose transactions are predicted to touch disjoint state runs as
//! independent partitions, several per thread, without multi-version
//! memory, each checked as it runs (`partitions/`, whose files are listed
//! in its `mod.rs`); if the prediction proves wrong, the block runs on
//! Block-STM after all. `digest.rs` holds the address digests that both
//! paths key their maps by, and `own_code.rs` the codes whose reference
//! counts are a worker's or a partition's own, so that threads running
//! the same code do not write one count. `analysis.rs` shows researchers
//! what the executor sees of a block.

mod analysis;
mod balance_watch;
mod block_gas;
mod block_stm;
mod config;
mod credit;
mod digest;
mod executor;
mod fee_credit;
mod helpers;
mod merge;
mod mv_memory;
mod own_code;
mod partitions;
mod placement;
mod planning;
mod prediction;
mod result_slots;
mod scheduler;
mod shared_bloom;
mod types;
mod vm;
mod write_filter;

pub use analysis::{predict, predictable_transactions, trace_block};
pub use config::ParallelConfig;
pub use prediction::{Prediction, predicted_gas};
pub use types::{
    Incarnation, Lifecycle, Location, ReadEntry, ReadSet, ReadValue, TxAccessTrace, TxIdx, Version,
    WriteSet, WriteValue,
};

use crate::{
    BlockInput, BlockResult, ExecutionError, ExecutionPath, ExecutionStats, FallbackReason,
    StateChanges, StateSource, TxResult,
    state::OverlayState,
    system::{
        has_pre_block_calls, post_block_changes, post_block_increments, pre_block_changes,
        requests_of,
    },
};
use alloy_eips::eip7685::Requests;
use alloy_primitives::{Address, U256};
use partitions::PartitionAttempt;
use planning::{Judged, Planning, predict_and_plan};
use std::time::Instant;

/// Executes `block` on `state` in parallel, with exactly the sequential result.
///
/// Falls back to the sequential executor (reporting
/// [`ExecutionPath::SequentialFallback`] with the reason) when parallelism is
/// predicted not to pay (see [`ParallelConfig::fallback_reason`]).
///
/// The path is decided in order: the fallback rule on the block's
/// predicted dependencies; independent partitions, if its transactions
/// split into them and the split holds as they run; otherwise Block-STM,
/// unless the block is too cheap for it. [`BlockResult::path`] says which
/// ran.
///
/// A read of `state` that fails while the block runs in parallel sends it
/// to the sequential executor too ([`FallbackReason::StateReadFailed`]):
/// speculative executions read more than execution in order does (a
/// witness for stateless validation holds only what the latter reads), so
/// only the sequential executor can tell whether the block itself fails,
/// and with which error. (A read that fails while the partitions are
/// planned only leaves a transaction unpredicted.)
pub fn execute_parallel<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
    config: &ParallelConfig,
) -> Result<BlockResult, ExecutionError> {
    let started = Instant::now();
    block.check()?;
    let attempt = match judge(block, state, config) {
        Ok(judged) => run_in_parallel(block, state, config, judged, started),
        Err(reason) => Ok(Attempt::Fallback(reason, ExecutionStats::default())),
    };
    let (reason, stats) = match attempt {
        Ok(Attempt::Ran(result)) => return Ok(*result),
        Ok(Attempt::Fallback(reason, stats)) => (reason, stats),
        // Perhaps a read that execution in order never makes: the
        // sequential executor tells (see `FallbackReason::StateReadFailed`).
        Err(error) if error.state_error().is_some() => {
            tracing::debug!(%error, "a state read failed in parallel");
            (FallbackReason::StateReadFailed, ExecutionStats::default())
        }
        Err(error) => return Err(error),
    };
    fallback(block, state, reason, stats)
}

/// How an attempt to run a block in parallel ended.
pub(super) enum Attempt {
    /// It ran in parallel: as partitions, or on Block-STM.
    Ran(Box<BlockResult>),
    /// It must run sequentially, for this reason; the counters of the
    /// parallel run given up, if one started.
    Fallback(FallbackReason, ExecutionStats),
}

/// Runs a block that [`judge`] let run in parallel: as partitions, if they
/// run and hold; otherwise on Block-STM, unless it is too cheap for it.
fn run_in_parallel<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
    config: &ParallelConfig,
    (prediction, chains, plan): Judged,
    started: Instant,
) -> Result<Attempt, ExecutionError> {
    let threads = config.threads.min(block.transactions.len());
    // The block runs in parallel, as partitions or on Block-STM: where
    // Block-STM may run, the helpers wake while this thread plans the
    // partitions. Not for a block too cheap for it, which runs as partitions
    // (they wake their helpers as they start) or sequentially: waking costs
    // this thread about 20 us, which a sequential run does not win back
    // (mainnet fixture 3356896, 0.35 ms: 0.91x with the wake, 0.97x without).
    // Since Block-STM's cost per block counts, small blocks of transfers are
    // too cheap for it, and those that partition wake their helpers late:
    // 300 and 500 independent transfers read 0.91x and 1.03x, against 0.94x
    // and 1.08x woken here (medians of 6 interleaved runs), a loss taken for
    // blocks such as 3356896, which do not partition.
    if !config.too_cheap_for_block_stm(&prediction) {
        helpers::wake_helpers(threads.saturating_sub(1));
    }
    let pre = if has_pre_block_calls(block) {
        pre_block_changes(block, state)?
    } else {
        StateChanges::default()
    };
    let increments = post_block_increments(block);
    let summed_payouts = plan.payout.is_some();
    let run = BlockRun {
        block,
        state,
        pre: &pre,
        increments: increments.as_deref(),
        started,
    };
    let partitions_discarded = match partitions::attempt(&run, threads, config, plan)? {
        PartitionAttempt::Decided(decided) => return Ok(decided),
        PartitionAttempt::NotTried => false,
        PartitionAttempt::Discarded => true,
    };
    let stats = ExecutionStats {
        partitions_discarded,
        ..Default::default()
    };
    let chains = match judge_for_block_stm(block, config, prediction, chains, summed_payouts) {
        Ok(chains) => chains,
        Err(reason) => return Ok(Attempt::Fallback(reason, stats)),
    };
    run.on_block_stm(threads, config, &chains, partitions_discarded)
}

/// A block being run in parallel, as partitions or on Block-STM: the
/// block, the pre-block state and system calls' changes (`pre`), and the
/// rewards and withdrawals after it (`increments`; `None` if post-block
/// system calls run instead).
pub(super) struct BlockRun<'a, S: ?Sized> {
    pub block: &'a BlockInput,
    pub state: &'a S,
    pub pre: &'a StateChanges,
    pub increments: Option<&'a [(Address, U256)]>,
    /// When the caller asked for the block (for
    /// [`PhaseTimes::before`](crate::PhaseTimes::before)).
    pub started: Instant,
}

/// What the block runs as ([`predict_and_plan`], after the fallback rule's
/// judgement of its size and prediction).
fn judge<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
    config: &ParallelConfig,
) -> Planning {
    if let Some(reason) = config.count_fallback_reason(block.transactions.len()) {
        return Err(reason);
    }
    let (prediction, chains, plan) = predict_and_plan(block, state, config)?;
    match config.fallback_reason(&prediction) {
        Some(reason) => Err(reason),
        None => Ok((prediction, chains, plan)),
    }
}

/// The sender chains Block-STM follows, for a block that partitions did not
/// run (judged by [`judge`] as `prediction`, with its `chains` if they were
/// computed); or why it runs sequentially after all. Only partitions sum a
/// payout sender's transfers (`summed_payouts`): for Block-STM its chain is
/// back, and the block is judged with it.
fn judge_for_block_stm(
    block: &BlockInput,
    config: &ParallelConfig,
    prediction: Prediction,
    chains: Option<prediction::Chains>,
    summed_payouts: bool,
) -> Result<prediction::Chains, FallbackReason> {
    let (prediction, chains) = match summed_payouts {
        true => {
            let (prediction, chains) = prediction::predict(block);
            if let Some(reason) = config.fallback_reason(&prediction) {
                return Err(reason);
            }
            (prediction, Some(chains))
        }
        false => (prediction, chains),
    };
    if config.too_cheap_for_block_stm(&prediction) {
        return Err(FallbackReason::CheapTransactions);
    }
    Ok(chains.unwrap_or_else(|| prediction::predict(block).1))
}

/// Applies the system calls after the block (Prague's requests), which need
/// the receipts, to `changes`, and normalizes them; returns the block's
/// requests. Nothing to do where the block ends in balance `increments`
/// alone, which the executors folded in already: such a block has no
/// requests.
fn post_block_calls<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
    increments: Option<&[(Address, U256)]>,
    transactions: &[TxResult],
    changes: &mut StateChanges,
) -> Result<Option<Requests>, ExecutionError> {
    if increments.is_some() {
        return Ok(requests_of(block, Requests::default()));
    }
    let receipts = transactions.iter().filter_map(|t| t.receipt.clone());
    let (post, requests) = post_block_changes(
        block,
        &OverlayState::new(state, changes),
        receipts.collect(),
    )?;
    changes.extend(post);
    changes.normalize(&state)?;
    Ok(requests)
}

/// Runs `block`, which [`execute_parallel`] checked, on the sequential
/// executor, reporting why, with the `stats` of the parallel run given up.
/// The one place the parallel executor runs a block sequentially.
fn fallback<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
    reason: FallbackReason,
    stats: ExecutionStats,
) -> Result<BlockResult, ExecutionError> {
    tracing::debug!(
        transactions = block.transactions.len(),
        reason = reason.as_str(),
        "sequential fallback"
    );
    let mut result = crate::sequential::execute_checked(block, state)?;
    result.path = ExecutionPath::SequentialFallback(reason);
    result.stats = stats;
    Ok(result)
}
