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
//! end (`executor.rs`). The final write sets are then folded into the
//! block's results in order (`merge.rs`).
//!
//! Beneficiary fees, plain-transfer credits and every other balance change
//! the EVM does not observe (`balance_watch.rs`) are commutative increments
//! (`vm.rs`, `fee_credit.rs`), which removes the conflict every Ethereum
//! transaction would otherwise have on the block's beneficiary, and those
//! of WETH deposits, forwarded ETH and tips.
//!
//! Before any of that, a block whose transactions are predicted to touch
//! disjoint state (`partition.rs`, with `reach.rs` for contract calls) runs
//! as independent partitions, several per thread, without multi-version
//! memory (`partitioned.rs`), each checked as it runs (`footprint.rs`); if the prediction proves wrong, the block
//! runs on Block-STM after all.

mod balance_watch;
mod executor;
mod fee_credit;
mod footprint;
mod helpers;
mod merge;
mod mv_memory;
mod partition;
mod partitioned;
mod payout;
mod prediction;
mod reach;
mod scheduler;
mod types;
mod vm;
mod write_filter;

pub use prediction::{Prediction, predicted_gas};
pub use types::{
    Incarnation, Lifecycle, Location, ReadEntry, ReadSet, ReadValue, TxAccessTrace, TxIdx, Version,
    WriteSet, WriteValue,
};

use crate::{
    BlockInput, BlockResult, ExecutionError, ExecutionPath, ExecutionStats, FallbackReason,
    StateChanges, StateSource, TxOutcome, TxResult,
    evm::outcome_of,
    state::OverlayState,
    system::{has_pre_block_calls, post_block_changes, post_block_increments, pre_block_changes},
};
use alloy_consensus::{Transaction, Typed2718};
use executor::{TxExecution, Workers};
use merge::{FoldedPart, StateAccumulator, build_receipt};
use mv_memory::{MvMemory, PooledMvMemory};
use vm::VmContext;

/// Configuration of the parallel executor, including the fallback rule: a
/// block runs sequentially when parallelism is predicted not to pay.
#[derive(Debug, Clone)]
pub struct ParallelConfig {
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Blocks with fewer transactions run sequentially: starting and
    /// joining worker threads costs more than they could save.
    pub min_parallel_txs: usize,
    /// Blocks whose transactions' [predicted gas](predicted_gas) sums to
    /// less than this run sequentially, for the same reason.
    pub min_parallel_gas: u64,
    /// Blocks whose [`Prediction::bound`] at the configured threads is below
    /// this run sequentially: their same-sender chains leave too little to
    /// run side by side to pay for the parallel machinery.
    pub min_predicted_speedup: f64,
    /// While running, early (between max(64, txs/64) and txs/2
    /// executions): once the threads times the share of executions not
    /// wasted (aborted by validation, or blocked on a dependency other than
    /// the previous transaction of the sender's chain) falls below
    /// this, the block is given up and re-run sequentially. Blocks where
    /// nearly every transaction conflicts (one hot pool or slot) cannot be
    /// predicted from the block alone; this bounds their loss to the
    /// executions before detection. A chain wastes (threads - 1) / threads
    /// of its executions, so the share of waste that gives a block up grows
    /// with the threads: at the default 1.0, half at 2 threads, 87.5% at 8.
    /// (1.25, 37.5% at 2 threads, gave up mainnet fixture 18085863 after 28
    /// wasted of its first 67 executions; it runs at 1.37x.)
    pub min_useful_speedup: f64,
    /// What Block-STM costs per transaction (scheduling, multi-version
    /// memory, validation), in gas of execution that takes as long. A block
    /// that does not run as partitions runs sequentially when its mean
    /// [predicted gas](predicted_gas) per transaction times (threads - 1)
    /// is below this: `threads` workers then gain less than the overhead
    /// costs (`threads * work / (work + overhead) < 1`). The default,
    /// 40,000, is what the mainnet fixtures and synthetic blocks measured on
    /// the 2-core VM: blocks of plain transfers averaging 26,000 and 31,000
    /// ran at 0.74x and 0.58x, `bump()` calls at 50,000 at 1.1x.
    pub tx_overhead_gas: u64,
    /// A block whose transactions split into partitions predicted to be
    /// independent runs as those partitions, without Block-STM, when they
    /// keep at least this share of the threads busy (the partitions' gas
    /// over the heaviest one's, divided by the threads). Above 1 disables
    /// partitioning.
    pub min_partition_balance: f64,
    /// Predict every contract call (and creation) as touching only its
    /// sender and target, so that blocks with them can run as partitions
    /// too. Without it, only calls into code whose reach is bounded are
    /// predicted (by what the code can reach). Off by default: on mainnet,
    /// calls into different contracts meet in shared ones (WETH, pools
    /// behind routers) often enough that the partitions failed validation
    /// and the block paid for both runs. For blocks whose contracts keep to
    /// themselves.
    pub partition_contract_calls: bool,
}

impl ParallelConfig {
    /// With `threads` workers and the default fallback rule.
    pub fn with_threads(threads: usize) -> Self {
        Self {
            threads: threads.max(1),
            ..Self::default()
        }
    }

    /// Always Block-STM (for tests of the parallel machinery itself), unless
    /// there is only one thread or transaction.
    pub fn never_fall_back(threads: usize) -> Self {
        Self {
            threads: threads.max(1),
            min_parallel_txs: 2,
            min_parallel_gas: 0,
            min_predicted_speedup: 0.0,
            min_useful_speedup: 0.0,
            tx_overhead_gas: 0,
            min_partition_balance: f64::INFINITY,
            partition_contract_calls: false,
        }
    }

    /// As partitions whenever the block splits at all, contract calls
    /// included, else Block-STM (for tests of partitioned execution and its
    /// validation).
    pub fn partitioned(threads: usize) -> Self {
        Self {
            min_partition_balance: 0.0,
            partition_contract_calls: true,
            ..Self::never_fall_back(threads)
        }
    }

    /// The share of wasted executions above which a block running on
    /// `threads` workers is given up ([`Self::min_useful_speedup`]).
    fn max_waste(&self, threads: usize) -> f64 {
        1.0 - self.min_useful_speedup / threads.max(1) as f64
    }

    /// Whether `prediction`'s transactions are too cheap for Block-STM at
    /// `threads` workers ([`Self::tx_overhead_gas`]).
    pub fn too_cheap_for_block_stm(&self, prediction: &Prediction, threads: usize) -> bool {
        let mean = prediction.work / prediction.transactions.max(1) as u64;
        mean.saturating_mul(threads.saturating_sub(1) as u64) < self.tx_overhead_gas
    }

    /// Why `block` should run sequentially, if the block alone tells. The
    /// executor also falls back later: on [`Self::too_cheap_for_block_stm`]
    /// once the block did not run as partitions (which needs the state),
    /// and on conflicts while running.
    pub fn fallback_reason(&self, prediction: &Prediction) -> Option<FallbackReason> {
        let threads = self.threads.min(prediction.transactions);
        if threads < 2 {
            Some(FallbackReason::OneThread)
        } else if prediction.transactions < self.min_parallel_txs.max(2) {
            Some(FallbackReason::FewTransactions)
        } else if prediction.work < self.min_parallel_gas {
            Some(FallbackReason::LittleGas)
        } else if prediction.bound(threads) < self.min_predicted_speedup {
            Some(FallbackReason::DependencyChain)
        } else {
            None
        }
    }
}

impl Default for ParallelConfig {
    /// Thresholds measured on the 49 mainnet fixture blocks at 2 threads
    /// (see the README's "Fallback rule").
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            min_parallel_txs: 16,
            min_parallel_gas: 4_000_000,
            min_predicted_speedup: 1.45,
            min_useful_speedup: 1.0,
            tx_overhead_gas: 40_000,
            min_partition_balance: 0.85,
            partition_contract_calls: false,
        }
    }
}

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
    let threads = config.threads.min(block.transactions.len());
    let (prediction, chains, plan) = match predict_and_plan(block, state, threads, config) {
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
    if !config.too_cheap_for_block_stm(&prediction, threads) {
        helpers::wake_helpers(threads.saturating_sub(1));
    }
    let pre = if has_pre_block_calls(block) {
        pre_block_changes(block, state)?
    } else {
        StateChanges::default()
    };
    let base = OverlayState::new(state, &pre);
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
    if config.too_cheap_for_block_stm(&prediction, threads) {
        return fallback_after(block, state, FallbackReason::CheapTransactions, stats);
    }
    let mv = PooledMvMemory::take(block.transactions.len(), block.header.beneficiary);
    let chains = chains.unwrap_or_else(|| prediction::predict(block).1);
    seed_sender_chains(&chains.links, &mv);
    let vm = vm_context(block, &base, &mv);
    let successors = chains.links.iter().map(|link| (link.tx, link.next));
    let workers = Workers::new(
        &vm,
        block.transactions.len(),
        successors,
        chains.start_first(threads),
        config.max_waste(threads),
    );
    // Once the block is done, the state changes are folded in two halves
    // (address ranges) side by side: one on a helper thread, which then frees the
    // multi-version memory, the other here after the receipts.
    let fold = |part| fold_state(state, &pre, &mv, part, increments.as_deref());
    let helper_half = std::sync::Mutex::new(None);
    let mut receipts = None;
    let mut main_half = None;
    workers.run(
        threads,
        || {
            *mv_memory::lock(&helper_half) = Some(fold(Part::Even));
            mv.clear();
        },
        || {
            let results = workers.take_results().map_err(ExecutionError::Internal);
            receipts = Some(results.and_then(|r| collect_receipts(block, r)));
            main_half = Some(fold(Part::Odd));
        },
    );
    let stats = ExecutionStats {
        partitions_discarded,
        ..workers.stats.snapshot()
    };
    if workers.gave_up() {
        drop(vm);
        return fallback_after(block, state, FallbackReason::Conflicts, stats);
    }
    let receipts = receipts.ok_or_else(|| ExecutionError::Internal("no receipts".into()))?;
    let Some((transactions, gas_used)) = receipts? else {
        // A transaction exceeded the block's remaining gas in sequence, so it
        // is invalid and its speculative writes must not count.
        return fallback_after(block, state, FallbackReason::GasLimitExceeded, stats);
    };
    let missing = || ExecutionError::Internal("state changes were not folded".into());
    let helper_half = helper_half.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut changes = StateChanges::from_parts(
        helper_half.ok_or_else(missing)??,
        main_half.ok_or_else(missing)??,
    );
    if increments.is_none() {
        run_post_block_calls(block, state, &transactions, &mut changes)?;
    }
    Ok(BlockResult {
        transactions,
        gas_used,
        state: changes,
        path: ExecutionPath::Parallel,
        stats,
    })
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
        let balance = base.account(&payout.address)?.map(|a| a.balance);
        if balance.is_none_or(|balance| balance < payout.max_spending) {
            return Ok(PartitionAttempt::NotTried);
        }
    }
    let planned = match plan.planned {
        Some(planned) => planned,
        None => plan_partitions(block, state, threads, config),
    };
    let Some(partitions) = planned? else {
        return Ok(PartitionAttempt::NotTried);
    };
    if partitions.bound < config.min_predicted_speedup {
        // Every transaction's accesses are known, and they chain: Block-STM
        // would only find the same conflicts by aborting.
        return fallback(block, state, FallbackReason::DependencyChain).map(ran);
    }
    let balanced = partitions.bound >= config.min_partition_balance * threads as f64;
    if partitions.txs.len() < 2 || !balanced || !partitioned::supports(block, &base)? {
        return Ok(PartitionAttempt::NotTried);
    }
    let credits = increments.unwrap_or_default();
    let receipts = |results: partitioned::InBlockOrder<'_>| collect_receipts(block, results);
    let settlement = partitioned::Settlement { credits, payout };
    let Some((receipts, mut changes)) = partitioned::execute(
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
    if increments.is_none() {
        run_post_block_calls(block, state, &transactions, &mut changes)?;
    }
    Ok(ran(BlockResult {
        transactions,
        gas_used,
        state: changes,
        path: ExecutionPath::Partitioned,
        stats,
    }))
}

/// What planning a block's partitions came to (see [`plan_partitions`]).
type Planned = Result<Option<partition::Partitions>, ExecutionError>;

/// What is known of a block's partitions before it runs.
#[derive(Default)]
struct PartitionPlan {
    /// The partitions, if planned already (`None`: not planned yet).
    planned: Option<Planned>,
    /// The block's payout sender, if it has one; its partitions are then
    /// planned already, with its transfers keyed apart ([`plan_payouts`]).
    /// If they do not run, the block is judged again with the sender's
    /// chain.
    payout: Option<payout::PayoutSender>,
}

/// Blocks with at least this many transactions are planned on the calling
/// thread and a helper together (see [`predict_and_plan`]): alone, the
/// caller took 2.0 ms to plan 10,000 transfers and 7.6 ms for 5,000 AMM
/// swaps, which reads each pair's token slots. Below it, waking a helper
/// (tens of microseconds) costs more than it saves.
const PLAN_ALONGSIDE_MIN_TXS: usize = 1024;

/// Transactions of a large block predicted on the caller alone before a
/// helper joins the plan (see [`partition::Planner::probe`]): few enough
/// to cost a block that partitions about ten microseconds.
const PROBE_TXS: usize = 16;

/// The block's [`Prediction`], its sender chains if they were computed,
/// and, for large blocks, its partitions (`None`: not planned yet); or why
/// it runs sequentially, when that is already certain.
///
/// A large block is planned on the caller and a helper at once. If it
/// partitions, the plan's components give its prediction (every chain of
/// one sender's transactions lies within a component), and the sender
/// chains, which only Block-STM needs, are left for later: the caller's
/// separate pass over the transactions took 0.8-1.4 ms of the 1.7 ms before
/// 10,000 transfers started. If it does not, it is predicted as a small
/// block is, unless it is too cheap for Block-STM as well
/// ([`ParallelConfig::too_cheap_for_block_stm`]): it then runs sequentially
/// whatever its sender chains, and their pass is skipped (about 40 us of
/// fixture 14396881's 1,346 transactions, which ran at 0.94-0.99x).
fn predict_and_plan<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
    threads: usize,
    config: &ParallelConfig,
) -> Result<(Prediction, Option<prediction::Chains>, PartitionPlan), FallbackReason> {
    let opener = opening_sender(block);
    if let Some(sender) = opener {
        // A hot wallet's chain is usually told by its own gas, without the
        // pass over every sender (on 5,000 transfers from one sender, that
        // pass was 2.4% of running them). If it pays out, it may partition.
        if let Some(reason) = config.fallback_reason(&prediction::chain_of(block, sender)) {
            return plan_payouts(block, state, threads, config, sender).ok_or(reason);
        }
    }
    if block.transactions.len() < PLAN_ALONGSIDE_MIN_TXS
        || threads < 2
        || config.min_partition_balance > 1.0
        || opener.is_some()
    {
        let (prediction, chains) = prediction::predict(block);
        return Ok((prediction, Some(chains), PartitionPlan::default()));
    }
    let planner = partition::Planner::new(block, threads, config.partition_contract_calls);
    let mut main_result = planner.probe(state, PROBE_TXS);
    let helper_error = std::sync::Mutex::new(None);
    if main_result.is_ok() && !planner.stopped() {
        helpers::run_with_helpers(
            1,
            |_| {
                if let Err(error) = planner.predict(state) {
                    *mv_memory::lock(&helper_error) = Some(error);
                }
            },
            || main_result = planner.predict(state),
        );
    }
    let helper_error = helper_error.into_inner().unwrap_or_else(|e| e.into_inner());
    let planned = |planned| PartitionPlan {
        planned: Some(planned),
        payout: None,
    };
    if let Some(error) = main_result.err().or(helper_error) {
        let (prediction, chains) = prediction::predict(block);
        return Ok((prediction, Some(chains), planned(Err(error.into()))));
    }
    match planner.finish() {
        Some((partitions, prediction)) => Ok((prediction, None, planned(Ok(Some(partitions))))),
        None => {
            let sums = prediction::sums(block);
            if config.fallback_reason(&sums).is_none()
                && config.too_cheap_for_block_stm(&sums, threads)
            {
                return Err(FallbackReason::CheapTransactions);
            }
            let (prediction, chains) = prediction::predict(block);
            Ok((prediction, Some(chains), planned(Ok(None))))
        }
    }
}

/// The plan of a block whose chain of `sender`'s transactions would run it
/// sequentially, with `sender` as its payout sender
/// ([`payout::PayoutSender`]), if its transactions qualify and the block
/// then splits into partitions. Planned first, on the calling thread: on
/// the mainnet payout blocks, some transaction (a payout into a contract,
/// a call into code of unbounded reach) cannot be predicted, and the plan
/// stops there within microseconds; checking the sender's transactions
/// first took 10-15 us of their 0.5-0.9 ms. A state error leaves the block
/// to the sequential executor's checks.
fn plan_payouts<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
    threads: usize,
    config: &ParallelConfig,
    sender: alloy_primitives::Address,
) -> Option<(Prediction, Option<prediction::Chains>, PartitionPlan)> {
    if threads < 2 || config.min_partition_balance > 1.0 {
        return None;
    }
    let planner = partition::Planner::new(block, threads, config.partition_contract_calls)
        .with_payout_sender(sender);
    planner.predict(state).ok()?;
    let (partitions, prediction) = planner.finish()?;
    let payout = payout::PayoutSender::find(block, state, sender).ok()??;
    let plan = PartitionPlan {
        planned: Some(Ok(Some(partitions))),
        payout: Some(payout),
    };
    Some((prediction, None, plan))
}

/// The sender of most of `block`'s first transactions, if one is: the
/// block is then likely one sender's chain (a hot wallet's), which the
/// prediction sends to the sequential executor, and a helper woken to plan
/// its partitions meanwhile would only cost time: 5,000 transfers from one
/// sender ran 5-8% slower with one.
fn opening_sender(block: &BlockInput) -> Option<alloy_primitives::Address> {
    const OPENING: usize = 64;
    let opening = &block.transactions[..block.transactions.len().min(OPENING)];
    // Boyer-Moore majority vote, then a count of the candidate.
    let mut candidate = None;
    let mut votes = 0usize;
    for tx in opening {
        if votes == 0 {
            candidate = Some(tx.signer());
            votes = 1;
        } else if candidate == Some(tx.signer()) {
            votes += 1;
        } else {
            votes -= 1;
        }
    }
    let count = opening
        .iter()
        .filter(|tx| Some(tx.signer()) == candidate)
        .count();
    candidate.filter(|_| count * 2 > opening.len())
}

/// Splits `block` into partitions predicted to be independent, if every
/// transaction's accesses can be predicted (see [`partition::Planner`]),
/// on the calling thread. Reads code and storage from the pre-block
/// `state`: the pre-block system calls change only their own contracts'
/// storage, so at worst a prediction of a call into those reads a stale
/// slot, which validation catches like any wrong prediction.
fn plan_partitions<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
    threads: usize,
    config: &ParallelConfig,
) -> Planned {
    let planner = partition::Planner::new(block, threads, config.partition_contract_calls);
    planner.predict(state)?;
    Ok(planner.finish().map(|(partitions, _)| partitions))
}

/// Applies the system calls after the block (Prague's requests), which need
/// the receipts, to `changes`, and normalizes them.
fn run_post_block_calls<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
    transactions: &[TxResult],
    changes: &mut StateChanges,
) -> Result<(), ExecutionError> {
    let receipts = transactions.iter().filter_map(|t| t.receipt.clone());
    let post = post_block_changes(
        block,
        &OverlayState::new(state, changes),
        receipts.collect(),
    )?;
    changes.extend(post);
    changes.normalize(&state)?;
    Ok(())
}

/// Executes `block` in order, recording each transaction's read and write
/// locations exactly as the parallel executor sees them. Where the block
/// runs as partitions with a payout sender ([`payout`]), that sender's
/// transfers are recorded without their read of its nonce, which is the one
/// they carry, whatever ran before them.
pub fn trace_block<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
) -> Result<Vec<TxAccessTrace>, ExecutionError> {
    let pre = pre_block_changes(block, state)?;
    let base = OverlayState::new(state, &pre);
    let payout = partitioned_payout_sender(block, &base)?;
    let mv = MvMemory::new(block.transactions.len(), block.header.beneficiary);
    let vm = vm_context(block, &base, &mv);
    let mut traces = Vec::with_capacity(block.transactions.len());
    let results =
        executor::run_in_order(&vm, block.transactions.len(), |tx, reads, writes, nanos| {
            let mut trace = TxAccessTrace {
                execution_nanos: nanos,
                ..Default::default()
            };
            let known_nonce = payout
                .filter(|payout| block.transactions[tx].signer() == *payout)
                .map(Location::Nonce);
            for read in reads {
                match read.value {
                    _ if Some(read.location) == known_nonce => {}
                    ReadValue::BalanceAtLeast(_) => trace.bounds.push(read.location),
                    _ => trace.reads.push(read.location),
                }
            }
            for (location, value) in writes {
                match value {
                    WriteValue::BalanceIncrement(_) => trace.increments.push(*location),
                    _ => trace.writes.push(*location),
                }
            }
            traces.push(trace);
        })
        .map_err(ExecutionError::Internal)?;
    for (trace, result) in traces.iter_mut().zip(results) {
        trace.gas_used = match result {
            Some(Ok(r)) => r.result.tx_gas_used(),
            _ => 0,
        };
    }
    Ok(traces)
}

/// The payout sender of `block` ([`payout::PayoutSender`]), if it has one
/// and the block splits into partitions with it (on two threads, with the
/// default predictions): its chain is then no dependency.
fn partitioned_payout_sender<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
) -> Result<Option<alloy_primitives::Address>, ExecutionError> {
    let Some(payout) = payout_sender_of(block, state)? else {
        return Ok(None);
    };
    let planner = partition::Planner::new(block, 2, false).with_payout_sender(payout.address);
    planner.predict(state)?;
    Ok(planner.finish().map(|_| payout.address))
}

/// Which of `block`'s transactions the partition planner predicts the
/// accesses of, each on its own, from the block and the pre-block `state`
/// (with the default predictions): plain transfers to accounts without
/// code, ERC-20 `transfer`s, and calls into code whose reach is bounded,
/// none naming the beneficiary (or a payout sender, whose own transfers
/// are keyed by their recipients, see [`payout`]). A block runs as
/// partitions only if all are; `parevm analyze` reports the share.
pub fn predictable_transactions<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
) -> Result<Vec<bool>, crate::state::StateError> {
    let mut planner = partition::Planner::new(block, 1, false);
    if let Some(payout) = payout_sender_of(block, state)? {
        planner = planner.with_payout_sender(payout.address);
    }
    planner.predictable(state)
}

/// The sender opening `block`, if it is a payout sender (for analysis: the
/// executor asks only where that sender's chain would otherwise decide).
fn payout_sender_of<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
) -> Result<Option<payout::PayoutSender>, crate::state::StateError> {
    match opening_sender(block) {
        Some(sender) => payout::PayoutSender::find(block, state, sender),
        None => Ok(None),
    }
}

/// What is known of `block`'s parallelism before executing it (see
/// [`Prediction`]).
pub fn predict(block: &BlockInput) -> Prediction {
    prediction::predict(block).0
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

/// Each transaction's outcome and receipt, with the block's gas; `None` if a
/// transaction does not fit in the block's remaining gas.
fn collect_receipts(
    block: &BlockInput,
    results: impl IntoIterator<Item = TxExecution>,
) -> Result<Option<(Vec<TxResult>, u64)>, ExecutionError> {
    let tx_gas_cap = revm::context_interface::Cfg::tx_gas_limit_cap(&block.evm_env().cfg_env);
    let mut transactions = Vec::with_capacity(block.transactions.len());
    let mut cumulative_gas = 0u64;
    for (index, (tx, result)) in block.transactions.iter().zip(results).enumerate() {
        let executed = match result {
            Ok(executed) => executed,
            Err(invalid) => {
                transactions.push(TxResult {
                    outcome: TxOutcome::Invalid {
                        reason: invalid.to_string(),
                    },
                    receipt: None,
                });
                continue;
            }
        };
        if tx.gas_limit().min(tx_gas_cap) > block.header.gas_limit - cumulative_gas {
            return Ok(None);
        }
        cumulative_gas += executed.result.tx_gas_used();
        let outcome = outcome_of(&executed.result);
        let tx_type = alloy_consensus::TxType::try_from(tx.ty())
            .map_err(|e| ExecutionError::Internal(format!("transaction {index}: {e}")))?;
        transactions.push(TxResult {
            outcome,
            receipt: Some(build_receipt(tx_type, executed, cumulative_gas)),
        });
    }
    Ok(Some((transactions, cumulative_gas)))
}

/// One half of the accounts, for folding state changes on two threads: by
/// the parity of the address's digest, so that the halves take equal work
/// whatever the addresses. (Halves by address range were uneven: the
/// synthetic AMM block's pools and tokens all fell in one, which took 21 ms
/// against the other's 3 ms.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Even,
    Odd,
}

impl Part {
    fn holds(self, address: &alloy_primitives::Address) -> bool {
        let odd = partition::address_digest(address) & 1 == 1;
        odd == (self == Self::Odd)
    }
}

/// The block's state changes to the accounts of `part`: the pre-block system
/// calls' (`pre`), then the final write sets in `mv` and the rewards and
/// withdrawals (`increments`), relative to the pre-block `state`; normalized
/// unless post-block system calls (no `increments`) still have to run.
/// Accounts are independent, so the two parts together are the whole.
fn fold_state<S: StateSource + ?Sized>(
    state: &S,
    pre: &StateChanges,
    mv: &MvMemory,
    part: Part,
    increments: Option<&[(alloy_primitives::Address, alloy_primitives::U256)]>,
) -> Result<FoldedPart, ExecutionError> {
    // Each half sees about one distinct account per transaction.
    let mut accumulator = StateAccumulator::with_capacity(mv.block_size());
    mv.for_each_write_set(|writes| {
        accumulator.apply(writes.iter().filter(|(l, _)| part.holds(&l.address())));
    });
    if let Some(increments) = increments {
        let writes = increments.iter().filter(|(a, _)| part.holds(a));
        accumulator.apply(
            writes
                .map(|(a, v)| (Location::Balance(*a), WriteValue::BalanceIncrement(*v)))
                .collect::<Vec<_>>()
                .iter(),
        );
    }
    let holds = |address: &alloy_primitives::Address| part.holds(address);
    Ok(accumulator.finish(state, pre, holds, increments.is_some())?)
}

#[cfg(test)]
mod tests {
    use super::ParallelConfig;

    #[test]
    fn the_waste_that_gives_a_block_up_grows_with_the_threads() {
        let config = ParallelConfig::with_threads(2);
        assert_eq!(config.max_waste(2), 0.5);
        assert_eq!(config.max_waste(8), 0.875);
        // Never giving up: no share of waste exceeds 1.
        assert_eq!(ParallelConfig::never_fall_back(2).max_waste(2), 1.0);
    }

    #[test]
    fn cheap_transactions_pay_for_block_stm_only_with_more_threads() {
        let transfers = super::Prediction {
            transactions: 100,
            gas: 2_100_000,
            critical_gas: 21_000,
            work: 2_100_000,
        };
        let config = ParallelConfig::default();
        assert!(config.too_cheap_for_block_stm(&transfers, 2));
        // 3 * 21,000 > 40,000: four threads gain more than the overhead.
        assert!(!config.too_cheap_for_block_stm(&transfers, 4));
        let calls = super::Prediction {
            work: 5_000_000,
            ..transfers
        };
        assert!(!config.too_cheap_for_block_stm(&calls, 2));
        assert!(!ParallelConfig::never_fall_back(2).too_cheap_for_block_stm(&transfers, 2));
    }
}
