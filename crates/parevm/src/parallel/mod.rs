//! The Block-STM parallel executor. (The files named below are this
//! module's private parts, in `src/parallel/`.)
//!
//! A block runs optimistically on N threads over a multi-version memory
//! (`mv_memory.rs`): every incarnation of a transaction records its read
//! set and write set (`vm.rs`); validation re-checks the read set against
//! lower transactions' latest writes and aborts the incarnation on a
//! mismatch; an aborted incarnation's writes become ESTIMATE markers that
//! make readers wait instead of failing later; a collaborative scheduler
//! (`scheduler.rs`) hands out execution and validation tasks and detects the
//! end (`executor.rs`); idle workers help hash a large receipt's bloom
//! (`shared_bloom.rs`). Then every worker takes a share of assembling the
//! block (`merge.rs`): the final write sets folded in order into the
//! block's state changes, and the receipts.
//!
//! Beneficiary fees, plain-transfer credits and every other balance change
//! the EVM does not observe (`balance_watch.rs`) are commutative increments
//! (`vm.rs`, `fee_credit.rs`), which removes the conflict every Ethereum
//! transaction would otherwise have on the block's beneficiary, and those
//! of WETH deposits, forwarded ETH and tips.
//!
//! Before any of that, the block's dependencies are predicted and its
//! partitions planned (`planning.rs`, `prediction.rs`), and the fallback
//! rule (`config.rs`) decides whether parallelism can pay at all. A block
//! whose transactions are predicted to touch disjoint state runs as
//! independent partitions, several per thread, without multi-version
//! memory, each checked as it runs (`partitions/`, whose files are listed
//! in its `mod.rs`); if the prediction proves wrong, the block runs on
//! Block-STM after all. `digest.rs` holds the address digests that both
//! paths key their maps by. `analysis.rs` shows researchers what the
//! executor sees of a block.

mod analysis;
mod balance_watch;
mod config;
mod digest;
mod executor;
mod fee_credit;
mod helpers;
mod merge;
mod mv_memory;
mod partitions;
mod planning;
mod prediction;
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
use executor::Workers;
use merge::{Assembly, collect_receipts, fold_state};
use mv_memory::{MvMemory, PooledMvMemory};
use planning::{PartitionPlan, plan_partitions, predict_and_plan};
use vm::VmContext;

/// Executes `block` on `state` in parallel, with exactly the sequential result.
///
/// Falls back to the sequential executor (reporting
/// [`ExecutionPath::SequentialFallback`] with the reason) when parallelism is
/// predicted not to pay (see [`ParallelConfig::fallback_reason`]).
pub fn execute_parallel<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
    config: &ParallelConfig,
) -> Result<BlockResult, ExecutionError> {
    block.check_blob_params()?;
    // A block too small to pay for threads is told by one pass over its gas
    // limits, before the map of its senders: on the 30 us fixture 930196
    // that map was most of the fallback's cost.
    let sums = prediction::sums(block);
    if let Some(reason) = config.fallback_reason(&sums) {
        return fallback(block, state, reason);
    }
    let threads = config.threads.min(block.transactions.len());
    let (prediction, chains, plan) = match predict_and_plan(block, state, &sums, config) {
        Ok(planning) => planning,
        Err(reason) => return fallback(block, state, reason),
    };
    if let Some(reason) = config.fallback_reason(&prediction) {
        return fallback(block, state, reason);
    }
    // The block runs in parallel, as partitions or on Block-STM: where
    // Block-STM may run, the helpers wake while this thread plans the
    // partitions. Not for a block too cheap for it, which runs as partitions
    // (they wake their helpers as they start) or sequentially: waking costs
    // this thread about 20 us, which a sequential run does not win back
    // (mainnet fixture 3356896, 0.35 ms: 0.91x with the wake, 0.97x without).
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
    let partitions_discarded = match execute_partitioned(
        block,
        state,
        &pre,
        threads,
        config,
        increments.as_deref(),
        plan,
    )? {
        PartitionAttempt::Ran(result) => return Ok(*result),
        PartitionAttempt::NotTried => false,
        PartitionAttempt::Discarded => true,
    };
    let stats = ExecutionStats {
        partitions_discarded,
        ..Default::default()
    };
    let (prediction, chains) = match summed_payouts {
        // Only partitions sum a payout sender's transfers: for Block-STM
        // its chain is back, and the block is judged with it.
        true => {
            let (prediction, chains) = prediction::predict(block);
            if let Some(reason) = config.fallback_reason(&prediction) {
                return fallback_after(block, state, reason, stats);
            }
            (prediction, Some(chains))
        }
        false => (prediction, chains),
    };
    if config.too_cheap_for_block_stm(&prediction) {
        return fallback_after(block, state, FallbackReason::CheapTransactions, stats);
    }
    let chains = chains.unwrap_or_else(|| prediction::predict(block).1);
    let run = BlockStmRun {
        block,
        state,
        pre: &pre,
        increments: increments.as_deref(),
    };
    run.execute(threads, config, &chains, partitions_discarded)
}

/// A block's run on Block-STM: the block, the pre-block state and system
/// calls' changes (`pre`), and the rewards and withdrawals after it
/// (`increments`; `None` if post-block system calls run instead).
struct BlockStmRun<'a, S: ?Sized> {
    block: &'a BlockInput,
    state: &'a S,
    pre: &'a StateChanges,
    increments: Option<&'a [(alloy_primitives::Address, alloy_primitives::U256)]>,
}

impl<S: StateSource + ?Sized> BlockStmRun<'_, S> {
    /// Runs the block on `threads` workers, with its sender `chains` seeded
    /// as ESTIMATEs; falls back to the sequential executor if the block is
    /// given up for conflicts or a transaction does not fit in its gas.
    fn execute(
        &self,
        threads: usize,
        config: &ParallelConfig,
        chains: &prediction::Chains,
        partitions_discarded: bool,
    ) -> Result<BlockResult, ExecutionError> {
        let Self {
            block,
            state,
            pre,
            increments,
        } = *self;
        let base = OverlayState::new(state, pre);
        let mv = PooledMvMemory::take(block.transactions.len(), block.header.beneficiary);
        seed_sender_chains(&chains.links, &mv);
        let vm = vm_context(block, &base, &mv);
        let successors = chains.links.iter().map(|link| (link.tx, link.next));
        let workers = Workers::new(
            &vm,
            block.transactions.len(),
            successors,
            chains.start_first(threads),
            config.max_waste(block.transactions.len()),
        );
        // Once the block is done, every worker assembles it (`Assembly`),
        // with the state changes in one share of the accounts per thread
        // that can run at once.
        let assembly = Assembly::new(config.judged_threads(block.transactions.len()));
        let receipts = || {
            let results = workers.take_results().map_err(ExecutionError::Internal)?;
            collect_receipts(block, results)
        };
        let fold = |part| fold_state(state, pre, &mv, part, increments);
        workers.run(threads, || assembly.run(receipts, fold, || mv.clear()));
        let stats = ExecutionStats {
            partitions_discarded,
            ..workers.stats.snapshot()
        };
        if workers.gave_up() {
            drop(vm);
            return fallback_after(block, state, FallbackReason::Conflicts, stats);
        }
        let Some((transactions, gas_used, mut changes)) = assembly.finish()? else {
            // A transaction exceeded the block's remaining gas in sequence, so
            // it is invalid and its speculative writes must not count.
            return fallback_after(block, state, FallbackReason::GasLimitExceeded, stats);
        };
        let requests = post_block_calls(block, state, increments, &transactions, &mut changes)?;
        Ok(BlockResult {
            transactions,
            gas_used,
            state: changes,
            requests,
            path: ExecutionPath::Parallel,
            stats,
        })
    }
}

/// What trying to run a block as partitions came to.
enum PartitionAttempt {
    /// The block ran: as partitions, or sequentially (a predicted chain).
    Ran(Box<BlockResult>),
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
fn execute_partitioned<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
    pre: &StateChanges,
    threads: usize,
    config: &ParallelConfig,
    increments: Option<&[(alloy_primitives::Address, alloy_primitives::U256)]>,
    plan: PartitionPlan,
) -> Result<PartitionAttempt, ExecutionError> {
    let ran = |result| PartitionAttempt::Ran(Box::new(result));
    if config.min_partition_balance > 1.0 {
        return Ok(PartitionAttempt::NotTried);
    }
    let base = OverlayState::new(state, pre);
    let payout = plan.payout.as_ref();
    if let Some(payout) = payout {
        // Found against the pre-block state: the system calls before the
        // block could only have moved the sender's balance in theory.
        let balance = base.account_fields(&payout.address)?.map(|a| a.balance);
        if balance.is_none_or(|balance| balance < payout.max_spending) {
            return Ok(PartitionAttempt::NotTried);
        }
    }
    let judged = config.judged_threads(block.transactions.len());
    let planned = match plan.planned {
        Some(planned) => planned,
        None => plan_partitions(block, state, judged, config),
    };
    let Some(partitions) = planned? else {
        return Ok(PartitionAttempt::NotTried);
    };
    if partitions.bound < config.min_predicted_speedup {
        // Every transaction's accesses are known, and they chain: Block-STM
        // would only find the same conflicts by aborting.
        return fallback(block, state, FallbackReason::DependencyChain).map(ran);
    }
    let balanced = partitions.bound >= config.min_partition_balance * judged as f64;
    if partitions.txs.len() < 2 || !balanced || !partitions::supports(block, &base)? {
        return Ok(PartitionAttempt::NotTried);
    }
    let credits = increments.unwrap_or_default();
    let receipts = |results: partitions::InBlockOrder<'_>| collect_receipts(block, results);
    let settlement = partitions::Settlement { credits, payout };
    let threads = partitions::Threads {
        workers: threads,
        at_once: judged,
    };
    let Some((receipts, mut changes)) = partitions::execute(
        block,
        state,
        pre,
        threads,
        &partitions,
        settlement,
        receipts,
    )?
    else {
        tracing::debug!(
            transactions = block.transactions.len(),
            partitions = partitions.txs.len(),
            "partitions were not independent; running Block-STM"
        );
        return Ok(PartitionAttempt::Discarded);
    };
    let stats = ExecutionStats {
        executions: block.transactions.len(),
        partitions: partitions.txs.len(),
        ..Default::default()
    };
    let Some((transactions, gas_used)) = receipts? else {
        return fallback_after(block, state, FallbackReason::GasLimitExceeded, stats).map(ran);
    };
    let requests = post_block_calls(block, state, increments, &transactions, &mut changes)?;
    Ok(ran(BlockResult {
        transactions,
        gas_used,
        state: changes,
        requests,
        path: ExecutionPath::Partitioned,
        stats,
    }))
}

/// Applies the system calls after the block (Prague's requests), which need
/// the receipts, to `changes`, and normalizes them; returns the block's
/// requests. Nothing to do where the block ends in balance `increments`
/// alone, which the executors folded in already: such a block has no
/// requests.
fn post_block_calls<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
    increments: Option<&[(alloy_primitives::Address, alloy_primitives::U256)]>,
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

/// Dependency prediction: a transaction followed in the block by another
/// from the same sender will write that sender's nonce and balance, which the
/// follower reads. Seeding those writes as ESTIMATEs makes the follower wait
/// instead of executing on a stale nonce and aborting, again and again along
/// a long chain.
fn seed_sender_chains(links: &[prediction::SenderLink], mv: &MvMemory) {
    for link in links {
        mv.seed_estimates(link.tx, &link.locations());
    }
}

fn fallback<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
    reason: FallbackReason,
) -> Result<BlockResult, ExecutionError> {
    tracing::debug!(
        transactions = block.transactions.len(),
        reason = reason.as_str(),
        "sequential fallback"
    );
    let mut result = crate::execute_sequential(block, state)?;
    result.path = ExecutionPath::SequentialFallback(reason);
    Ok(result)
}

/// [`fallback`] after a parallel attempt, whose `stats` the result keeps.
fn fallback_after<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
    reason: FallbackReason,
    stats: ExecutionStats,
) -> Result<BlockResult, ExecutionError> {
    let mut result = fallback(block, state, reason)?;
    result.stats = stats;
    Ok(result)
}

fn vm_context<'a, S: StateSource + ?Sized>(
    block: &'a BlockInput,
    base: &'a S,
    mv: &'a MvMemory,
) -> VmContext<'a, S> {
    let env = block.evm_env();
    VmContext {
        base,
        mv,
        block_env: env.block_env,
        cfg_env: env.cfg_env,
        transactions: &block.transactions,
    }
}
