//! State-access scheduling: a block whose transactions are predicted to
//! touch disjoint state runs as independent partitions, each start to
//! finish on one thread over a plain revm `State` cache of the pre-block
//! state (as the sequential executor runs a whole block), with no
//! multi-version memory and nothing shared while it runs.
//!
//! - `plan.rs`: which transactions share state, predicted from the block
//!   alone, and the partitions packed from them;
//! - `reach.rs`: what a call into code can reach, read from the code;
//! - `payout.rs`: a payout sender, whose transfers partitions run apart;
//! - `observation.rs`: whether code can read another account's balance
//!   (a payout into code that cannot runs apart too) or name the
//!   beneficiary;
//! - `code_cache.rs`: what the plan learnt of codes, kept for the process;
//! - `db.rs`: where a partition reads state, recording what it fetched;
//! - `run.rs`: running the partitions, each checked as it runs;
//! - `footprint.rs`: the check that no partition read what another wrote;
//! - `contract_balances.rs`: the balances of accounts with code, which
//!   partitions change apart and sum;
//! - `results.rs`: where the partitions leave their transactions' results,
//!   in place in the block's;
//! - `merge.rs`: where the partitions' changes are merged into the block's.
//!
//! The partitions were only predicted to be independent, so each records
//! every location it fetched from the pre-block state and every location its
//! transactions wrote. The run stands only if no partition read what another
//! wrote. Then every transaction saw exactly what it sees in sequence (every
//! write to what it read came from its own partition, in block order), and
//! every location's final value came from the one partition that wrote it.
//! Otherwise the caller runs the block on Block-STM instead.
//!
//! The beneficiary's fees are summed per partition and credited at the end
//! (see [`fee_credit`](super::fee_credit)); a transaction that observes the
//! beneficiary any other way invalidates the run. So are a payout sender's
//! payments ([`payout`]): each of its transfers is served the sender at the
//! nonce it carries, and anything else observing the sender invalidates the
//! run, as does a payout running code that could read the sender's balance
//! ([`observation`]). And so are the credits of a hot recipient, which many
//! plain transfers pay ([`Planner::with_hot_recipient`]): served as it was
//! before the block, observing it any other way invalidates the run.

mod code_cache;
mod contract_balances;
mod db;
mod footprint;
mod merge;
mod observation;
mod payout;
mod plan;
mod reach;
mod results;
mod run;

pub(crate) use payout::PayoutSender;
pub(crate) use plan::{Partitions, Planner};
use results::{PlacedResults, ResultSlots};

use super::{
    Attempt, BlockRun, ParallelConfig,
    block_gas::TxGas,
    credit::Deltas,
    mv_memory::lock,
    planning::{PartitionPlan, plan_partitions},
    post_block_calls,
};
use crate::{
    AccountChange, BlockInput, BlockResult, ExecutionError, ExecutionPath, ExecutionStats,
    FallbackReason, PhaseTimes, StateChanges, StateSource, state::OverlayState,
};
use alloy_primitives::{Address, U256};
use revm::primitives::hardfork::SpecId;
use std::{
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

/// What a partition produced, besides its transactions' results (which it
/// left in their slots, see `results.rs`).
struct PartitionOutput {
    /// The gas its transactions charged, in its order.
    gas: Vec<TxGas>,
    /// The beneficiary's fees from its transactions.
    fees: Deltas,
    /// The change to the payout sender's balance (it pays).
    paid: Deltas,
    /// What its transactions credited the hot recipient.
    credited: Deltas,
    /// Its changes to the balances of accounts with code that partitions
    /// sum (see `contract_balances.rs`); `accounts` holds them at their
    /// pre-block balances.
    balance_sums: Vec<(Address, Deltas)>,
    /// The values it sent from accounts with code, and what covered them.
    bounds: Vec<contract_balances::Bound>,
    /// Its accounts' changes relative to the pre-block state, normalized,
    /// in address order, split into the context's shares of the accounts.
    accounts: Vec<Vec<(Address, AccountChange)>>,
}

/// The block-wide inputs of every partition.
struct PartitionContext<'a, S: ?Sized> {
    block: &'a BlockInput,
    /// The pre-block state.
    state: &'a S,
    /// The pre-block system calls' changes.
    pre: &'a StateChanges,
    /// Set once the run cannot stand (a partition observed the beneficiary
    /// or failed), so that the others stop early.
    failed: AtomicBool,
    /// Where each partition splits its account changes, for merging them
    /// in shares side by side ([`share_bounds`](merge::share_bounds)):
    /// share `i` holds the addresses from bound `i - 1` (from zero, for the
    /// first) up to bound `i` (excluded; up to the last address, for the
    /// last).
    bounds: Vec<Address>,
    /// The block's payout sender, if its payments are summed.
    payout: Option<Address>,
    /// The block's hot recipient, if its credits are summed
    /// ([`Planner::with_hot_recipient`]).
    hot_recipient: Option<Address>,
    /// Where the workers' time went, if measured
    /// ([`ParallelConfig::phase_times`]).
    phases: Option<&'a Mutex<PhaseTimes>>,
}

impl<S: ?Sized> PartitionContext<'_, S> {
    fn fail(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }

    fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }
}

/// What trying to run a block as partitions came to.
pub(crate) enum PartitionAttempt {
    /// The block ran as partitions, or must run sequentially (a predicted
    /// chain, or a transaction that does not fit in the block's gas).
    Decided(Attempt),
    /// Not tried: the block does not split, or not evenly enough.
    NotTried,
    /// Tried and discarded: the partitions were not independent.
    Discarded,
}

/// Runs `block` as independent partitions if its transactions split into
/// partitions balanced enough (see [`ParallelConfig::min_partition_balance`])
/// and the split holds; sequentially if the accesses predicted for every
/// transaction make one chain of most of the block; otherwise Block-STM
/// should run it.
pub(crate) fn attempt<S: StateSource + ?Sized>(
    run: &BlockRun<'_, S>,
    threads: usize,
    config: &ParallelConfig,
    plan: PartitionPlan,
) -> Result<PartitionAttempt, ExecutionError> {
    let (block, state, pre) = (run.block, run.state, run.pre);
    if config.min_partition_balance > 1.0 {
        return Ok(PartitionAttempt::NotTried);
    }
    let base = OverlayState::new(state, pre);
    let payout = plan.payout.as_ref();
    if let Some(payout) = payout
        && !payout.covered_by(&base)?
    {
        return Ok(PartitionAttempt::NotTried);
    }
    let judged = config.judged_threads(block.transactions.len());
    let planned = match plan.planned {
        Some(planned) => planned,
        None => plan_partitions(block, state, judged, config),
    };
    let Some(partitions) = planned else {
        return Ok(PartitionAttempt::NotTried);
    };
    if partitions.bound < config.min_predicted_speedup && !partitions.unpredicted {
        // Every transaction's accesses are known, and they chain: Block-STM
        // would only find the same conflicts by aborting.
        let reason = FallbackReason::DependencyChain;
        return Ok(PartitionAttempt::Decided(Attempt::Fallback(
            reason,
            Default::default(),
        )));
    }
    let balanced = partitions.bound >= config.min_partition_balance * judged as f64;
    if partitions.txs.len() < 2 || !balanced || !supports(block, &base)? {
        return Ok(PartitionAttempt::NotTried);
    }
    let threads = Threads {
        workers: threads,
        at_once: judged,
    };
    let phases = config.phase_times.then(Mutex::default);
    run_block(run, &partitions, threads, payout, phases.as_ref())
}

/// Runs the block as `partitions`, then settles the payout sender's
/// payments and the balance increments after the block (rewards,
/// withdrawals; or, without them, runs the post-block system calls);
/// discarded if the partitions were not independent. Where the time went
/// is summed into `phases`, if given.
fn run_block<S: StateSource + ?Sized>(
    run: &BlockRun<'_, S>,
    partitions: &Partitions,
    threads: Threads,
    payout: Option<&PayoutSender>,
    phases: Option<&Mutex<PhaseTimes>>,
) -> Result<PartitionAttempt, ExecutionError> {
    let BlockRun {
        block,
        state,
        increments,
        ..
    } = *run;
    let settlement = Settlement {
        credits: increments.unwrap_or_default(),
        payout,
    };
    let receipts = |results: PlacedResults<'_>| results.receipts(block);
    let executed = execute(run, threads, partitions, settlement, receipts, phases)?;
    let stopped = Instant::now();
    let Some((receipts, mut changes)) = executed else {
        tracing::debug!(
            transactions = block.transactions.len(),
            partitions = partitions.txs.len(),
            "partitions were not independent, or a credit could overflow; running Block-STM"
        );
        return Ok(PartitionAttempt::Discarded);
    };
    let mut stats = ExecutionStats {
        executions: block.transactions.len(),
        partitions: partitions.txs.len(),
        ..Default::default()
    };
    let (transactions, gas_used) = match receipts? {
        Ok(receipts) => receipts,
        Err(reason) => return Ok(PartitionAttempt::Decided(Attempt::Fallback(reason, stats))),
    };
    let requests = post_block_calls(block, state, increments, &transactions, &mut changes)?;
    stats.phases = phases.map(|phases| PhaseTimes {
        after: stopped.elapsed(),
        ..*lock(phases)
    });
    let result = BlockResult {
        transactions,
        gas_used,
        state: changes,
        requests,
        path: ExecutionPath::Partitioned,
        stats,
    };
    Ok(PartitionAttempt::Decided(Attempt::Ran(Box::new(result))))
}

/// Whether `block` may run as partitions at all: after EIP-161 (so that a
/// zero fee leaves an existing beneficiary alone) and with a beneficiary
/// that is not an existing empty account (which a zero fee would delete).
fn supports<S: StateSource + ?Sized>(
    block: &BlockInput,
    base: &OverlayState<'_, S>,
) -> Result<bool, ExecutionError> {
    if !block.spec().is_enabled_in(SpecId::SPURIOUS_DRAGON) {
        return Ok(false);
    }
    let beneficiary = base.account_fields(&block.header.beneficiary)?;
    Ok(!beneficiary.is_some_and(|b| b.is_empty()))
}

/// What the assembly of a partitioned block settles besides the
/// partitions' own changes.
struct Settlement<'a> {
    /// Balance credits after the transactions (rewards, withdrawals).
    pub credits: &'a [(Address, U256)],
    /// The block's payout sender, if its payments are summed (the
    /// partitions must have been planned with it).
    pub payout: Option<&'a PayoutSender>,
}

/// The threads a partitioned block runs on.
#[derive(Debug, Clone, Copy)]
struct Threads {
    /// The workers that run partitions (and assemble the block).
    pub workers: usize,
    /// The threads that can run at once: the assembly merges the accounts
    /// in as many shares.
    pub at_once: usize,
}

/// Runs `block` as `partitions` on `threads`, and settles the credits and
/// the payout sender's payments of `settlement` after it. Each partition is
/// validated as it runs ([`run`]), and leaves its transactions' results in
/// their slots ([`results`]); then, while the state changes are assembled
/// ([`merge`]), the results are passed to `on_results`. Returns what
/// `on_results` returned and the state changes (not yet including
/// post-block system calls), or `None` if the partitions turned out not to
/// be independent, or their credits could overflow a balance (which
/// Block-STM then checks for itself).
fn execute<S: StateSource + ?Sized, T: Send>(
    run: &BlockRun<'_, S>,
    threads: Threads,
    partitions: &Partitions,
    settlement: Settlement<'_>,
    on_results: impl FnOnce(PlacedResults<'_>) -> T + Send,
    phases: Option<&Mutex<PhaseTimes>>,
) -> Result<Option<(T, StateChanges)>, ExecutionError> {
    let slots = ResultSlots::new(partitions, run.block.transactions.len())?;
    let ctx = PartitionContext {
        block: run.block,
        state: run.state,
        pre: run.pre,
        failed: AtomicBool::new(false),
        bounds: merge::share_bounds(run.block, threads.at_once),
        payout: settlement.payout.map(|p| p.address),
        hot_recipient: partitions.hot_recipient,
        phases,
    };
    let running_since = Instant::now();
    let before = running_since - run.started;
    let outputs = run::run_partitions(&ctx, threads.workers, partitions, &slots)?;
    if ctx.failed() {
        return Ok(None);
    }
    let assembled = merge::assemble(
        &ctx,
        outputs,
        settlement,
        threads.workers,
        slots,
        on_results,
    );
    if let Some(phases) = phases {
        let mut phases = lock(phases);
        // The workers that ran partitions (the merge may take fewer).
        phases.threads = threads.workers.min(partitions.txs.len());
        phases.before = before;
        phases.running = running_since.elapsed();
    }
    assembled
}
