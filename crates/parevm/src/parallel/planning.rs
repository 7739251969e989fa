//! What the executor decides before running a block: its dependency
//! prediction, its partition plan (on every thread that can run at once,
//! for large blocks), and whether its opening sender is a payout sender.

use super::{
    ParallelConfig, Prediction, helpers,
    partitions::{Partitions, PayoutSender, Planner},
    prediction,
};
use crate::{BlockInput, FallbackReason, StateSource};
use alloy_primitives::Address;

/// The block's predicted dependencies, its sender chains if they were
/// computed, and what is known of its partitions.
pub(super) type Judged = (Prediction, Option<prediction::Chains>, PartitionPlan);

/// What the block runs as in parallel, or why it runs sequentially (see
/// [`predict_and_plan`]).
pub(super) type Planning = Result<Judged, FallbackReason>;

/// What is known of a block's partitions before it runs.
#[derive(Default)]
pub(super) struct PartitionPlan {
    /// The partitions, if planned already (`None`: not planned yet;
    /// `Some(None)`: the block does not partition).
    pub planned: Option<Option<Partitions>>,
    /// The block's payout sender, if it has one; its partitions are then
    /// planned already, with its transfers keyed apart ([`plan_payouts`]).
    /// If they do not run, the block is judged again with the sender's
    /// chain.
    pub payout: Option<PayoutSender>,
}

/// Blocks with at least this many transactions are planned on the calling
/// thread and helpers together (see [`predict_and_plan`]): alone, the
/// caller took 2.0 ms to plan 10,000 transfers and 7.6 ms for 5,000 AMM
/// swaps, which reads each pair's token slots. Below it, waking a helper
/// (tens of microseconds) costs more than it saves.
const PLAN_ALONGSIDE_MIN_TXS: usize = 1024;

/// Transactions of a large block predicted on the caller alone before
/// helpers join the plan (see [`Planner::probe`]): few enough
/// to cost a block that partitions about ten microseconds.
const PROBE_TXS: usize = 16;

/// The block's [`Prediction`], its sender chains if they were computed,
/// and, for large blocks, its partitions (`None`: not planned yet); or why
/// it runs sequentially, when that is already certain.
///
/// A large block that a sample of its transactions already shows to be one
/// chain runs sequentially without a plan ([`sampled_chain`]). Otherwise it
/// is planned on the caller and helpers at once, as many as
/// can run at once (up to one per chunk of transactions). If it
/// partitions, the plan's components give its prediction (every chain of
/// one sender's transactions lies within a component), and the sender
/// chains, which only Block-STM needs, are left for later: the caller's
/// separate pass over the transactions took 0.8-1.4 ms of the 1.7 ms before
/// 10,000 transfers started. If it does not, its gas limits are summed
/// after all (the plan may have stopped before it read them), and it is
/// predicted as a small block is, unless it is too cheap for Block-STM as
/// well ([`ParallelConfig::too_cheap_for_block_stm`]): it then runs
/// sequentially whatever its sender chains, and their pass is skipped
/// (about 40 us of fixture 14396881's 1,346 transactions, when they were
/// too cheap).
///
/// A block that is not planned alongside helpers (small, or opened by one
/// sender) is first judged by one pass over its gas limits, before the map
/// of its senders: on the 30 us fixture 930196 that map was most of the
/// fallback's cost. If those sums show it too cheap for Block-STM, the map
/// is skipped too: it runs as partitions, whose plan tells its chains, or
/// sequentially. A large block skips that pass: its plan sums the gas
/// limits as it predicts them, on every thread (the pass took 100 us of
/// 5,000 transfers and 245 us of 10,000 on the caller alone, before the
/// helpers joined).
///
/// The number of transactions has passed the fallback rule already
/// ([`ParallelConfig::count_fallback_reason`]). Plans are made for the
/// threads that can run at once ([`ParallelConfig::judged_threads`]).
pub(super) fn predict_and_plan<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
    config: &ParallelConfig,
) -> Planning {
    let threads = config.judged_threads(block.transactions.len());
    let opener = opening_sender(block);
    let sums = match opener {
        // A hot wallet's chain is usually told by its own gas, without the
        // pass over every sender (on 5,000 transfers from one sender, that
        // pass was 2.4% of running them).
        Some(sender) => Some(prediction::chain_of(block, sender)),
        None if plans_alongside(block, threads, config) => None,
        None => Some(prediction::sums(block)),
    };
    match sums {
        Some(sums) => plan_from_sums(block, state, config, threads, opener, sums),
        None => plan_alongside(block, state, config, threads),
    }
}

/// What a block runs as once its chains were summed on the caller: a
/// fallback, a payout plan, partitions judged too cheap for Block-STM, or
/// Block-STM steered by its predicted chains.
fn plan_from_sums<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
    config: &ParallelConfig,
    threads: usize,
    opener: Option<Address>,
    sums: Prediction,
) -> Planning {
    match (config.fallback_reason(&sums), opener) {
        // If the hot wallet pays out, the block may partition.
        (Some(FallbackReason::DependencyChain), Some(sender)) => {
            return plan_payouts(block, state, threads, config, sender)
                .ok_or(FallbackReason::DependencyChain);
        }
        (Some(reason), _) => return Err(reason),
        // A chain that holds more than a thread's share of the gas
        // would also keep partitions from balancing, and on Block-STM
        // it runs in order: a payout sender's transfers run apart. So do
        // a pool's payouts from its coinbase, however few: as a chain
        // from the beneficiary they would keep the block from partitioning.
        (None, Some(sender))
            if sums.bound(threads) < threads as f64 || sender == block.header.beneficiary =>
        {
            if let Some(planned) = plan_payouts(block, state, threads, config, sender) {
                return Ok(planned);
            }
        }
        (None, _) => {}
    }
    // A block whose every access is predicted may still be one chain
    // through a key other than a sender: its plan would show it, but
    // only after the helpers woke (200 `bump()`s on one slot ran at
    // 0.83-0.87x, falling back after the plan); a sample shows it first.
    if opener.is_none() && may_partition(threads, config) {
        let planner = planner(block, state, threads, config, None);
        if let Some(reason) = sampled_chain(&planner, state, config) {
            return Err(reason);
        }
    }
    // Too cheap for Block-STM, the block runs in parallel only as
    // partitions, whose plan tells its chains: the pass over its
    // senders took 6 of the 9.5 us before mainnet fixture 3356896
    // (0.29 ms) ran sequentially, which read 0.94-0.97x.
    if config.too_cheap_for_block_stm(&sums) {
        return Ok((sums, None, PartitionPlan::default()));
    }
    let (prediction, chains) = prediction::predict(block);
    Ok((prediction, Some(chains), PartitionPlan::default()))
}

/// A large block planned as partitions on the caller and the helpers at
/// once ([`plans_alongside`]); where it does not split, Block-STM's
/// prediction, unless it is too cheap for Block-STM.
fn plan_alongside<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
    config: &ParallelConfig,
    threads: usize,
) -> Planning {
    let planner = planner(block, state, threads, config, None);
    if let Some(reason) = sampled_chain(&planner, state, config) {
        return Err(reason);
    }
    let planned = |planned| PartitionPlan {
        planned: Some(planned),
        payout: None,
    };
    predict_alongside(&planner, state, threads);
    match planner.finish() {
        Some((partitions, prediction)) => Ok((prediction, None, planned(Some(partitions)))),
        None => {
            if config.too_cheap_for_block_stm(&prediction::sums(block)) {
                return Err(FallbackReason::CheapTransactions);
            }
            let (prediction, chains) = prediction::predict(block);
            Ok((prediction, Some(chains), planned(None)))
        }
    }
}

/// Whether `block` is planned on the caller and helpers at once (see
/// [`predict_and_plan`]): it is large, and may run as partitions on
/// `threads`.
fn plans_alongside(block: &BlockInput, threads: usize, config: &ParallelConfig) -> bool {
    block.transactions.len() >= PLAN_ALONGSIDE_MIN_TXS && may_partition(threads, config)
}

/// Whether a block judged at `threads` may run as partitions at all.
fn may_partition(threads: usize, config: &ParallelConfig) -> bool {
    threads >= 2 && config.min_partition_balance <= 1.0
}

/// Predicts every transaction's keys for `planner`: a probe of the first
/// few on the calling thread, then, unless the plan stopped there, the
/// rest on the caller and every other thread that can run at once (up to
/// one per chunk of transactions), the caller packing them.
fn predict_alongside<S: StateSource + ?Sized>(planner: &Planner<'_>, state: &S, threads: usize) {
    planner.probe(state, PROBE_TXS);
    if planner.stopped() {
        return;
    }
    let helpers = (threads - 1).min(planner.chunk_count().saturating_sub(1));
    // The partitions, or Block-STM, usually follow the plan at once. A block
    // that then runs sequentially (too cheap for Block-STM) leaves the
    // helper spinning on another core until `Then::NextCall` gives up.
    helpers::run_with_helpers(
        helpers,
        helpers::Then::NextCall,
        |_| planner.help_predict(state),
        || planner.predict(state),
    );
}

/// Transactions sampled before a large block is planned, to tell a block
/// that is one chain without planning it ([`sampled_chain`]).
const CHAIN_SAMPLES: usize = 64;

/// How much less of the gas than its sample shows the heaviest component
/// is taken to hold when the sample alone decides ([`sampled_chain`]): a
/// sample of 64 misjudges a share by this much only for blocks laid out
/// against it.
const SAMPLE_MARGIN: f64 = 0.15;

/// [`FallbackReason::DependencyChain`] if a sample of the block's
/// transactions already shows one component heavy enough for the
/// fallback rule, with [`SAMPLE_MARGIN`] to spare
/// ([`Planner::sampled_heaviest_share`]); the plan of every
/// transaction, and the prediction of every sender chain after it, are
/// then skipped.
fn sampled_chain<S: StateSource + ?Sized>(
    planner: &Planner<'_>,
    state: &S,
    config: &ParallelConfig,
) -> Option<FallbackReason> {
    let share = planner.sampled_heaviest_share(state, CHAIN_SAMPLES)?;
    // The bound depends on the heaviest component's share of the gas
    // alone, so the block is estimated at a nominal gas (the plan sums the
    // real one); only a dependency chain is told here.
    const NOMINAL_GAS: u64 = 1 << 40;
    let estimated = Prediction {
        transactions: planner.transactions(),
        gas: NOMINAL_GAS,
        critical_gas: (NOMINAL_GAS as f64 * (share - SAMPLE_MARGIN).max(0.0)) as u64,
        work: NOMINAL_GAS,
    };
    config
        .fallback_reason(&estimated)
        .filter(|reason| *reason == FallbackReason::DependencyChain)
}

/// The plan of a block whose chain of `sender`'s transactions would run it
/// sequentially, or holds more than a thread's share of its gas, with
/// `sender` as its payout sender
/// ([`PayoutSender`]), if its transactions qualify and the block
/// then splits into partitions. Planned first: on most mainnet payout
/// blocks some transaction (a payout into code that may read a foreign
/// balance, a bot paying the builder) cannot be predicted, and the plan
/// stops there within microseconds; checking the sender's transactions
/// first took 10-15 us of their 0.5-0.9 ms. Planned on the calling thread
/// alone, but for large blocks, whose plan the helpers share after a probe
/// ([`predict_alongside`]): fixture 13287210 (1,414 transactions) spent
/// 0.17 ms before its partitions started, planned alone, and 0.14 ms
/// planned alongside. A state error leaves the block to the sequential
/// executor's checks.
pub(super) fn plan_payouts<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
    threads: usize,
    config: &ParallelConfig,
    sender: alloy_primitives::Address,
) -> Option<Judged> {
    if !may_partition(threads, config) {
        return None;
    }
    let planner = planner(block, state, threads, config, Some(sender));
    match block.transactions.len() >= PLAN_ALONGSIDE_MIN_TXS {
        true => predict_alongside(&planner, state, threads),
        false => planner.predict(state),
    }
    let (partitions, prediction) = planner.finish()?;
    // Unpredicted transactions' weight in the plan is no known chain.
    if partitions.unpredicted && config.fallback_reason(&prediction).is_some() {
        return None;
    }
    let payout = PayoutSender::find(block, state, sender).ok()??;
    let plan = PartitionPlan {
        planned: Some(Some(partitions)),
        payout: Some(payout),
    };
    Some((prediction, None, plan))
}

/// The sender of most of `block`'s first transactions, if one is: the
/// block is then likely one sender's chain (a hot wallet's), which the
/// prediction sends to the sequential executor, and a helper woken to plan
/// its partitions meanwhile would only cost time: 5,000 transfers from one
/// sender ran 5-8% slower with one. Otherwise the beneficiary, if it sends
/// the first transaction: a pool paying out from its coinbase at the top of
/// its block (fixture 14396881: 23 payouts, then 1,323 other transactions),
/// which may run apart as a payout sender's.
pub(super) fn opening_sender(block: &BlockInput) -> Option<alloy_primitives::Address> {
    const OPENING: usize = 64;
    let opening = &block.transactions[..block.transactions.len().min(OPENING)];
    let first = opening.first()?.signer();
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
    let beneficiary = block.header.beneficiary;
    match candidate.filter(|_| count * 2 > opening.len()) {
        None if first == beneficiary => Some(beneficiary),
        majority => majority,
    }
}

/// Splits `block` into partitions predicted to be independent, if every
/// transaction's accesses can be predicted (see [`Planner`]),
/// on the calling thread. Reads code and storage from the pre-block
/// `state`: the pre-block system calls change only their own contracts'
/// storage, so at worst a prediction of a call into those reads a stale
/// slot, which validation catches like any wrong prediction.
pub(super) fn plan_partitions<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
    threads: usize,
    config: &ParallelConfig,
) -> Option<Partitions> {
    let planner = planner(block, state, threads, config, None);
    planner.predict(state);
    planner.finish().map(|(partitions, _)| partitions)
}

/// A plan for `block` on `threads`, with `payout` as its payout sender if
/// given, and its hot recipient if it has one
/// ([`Planner::with_hot_recipient`]).
fn planner<'b, S: StateSource + ?Sized>(
    block: &'b BlockInput,
    state: &S,
    threads: usize,
    config: &ParallelConfig,
    payout: Option<Address>,
) -> Planner<'b> {
    let mut planner = Planner::new(block, threads, config.partition_contract_calls);
    if let Some(payout) = payout {
        planner = planner.with_payout_sender(payout);
    }
    planner.with_hot_recipient(state)
}

/// The sender opening `block`, if it is a payout sender (for analysis: the
/// executor asks only where that sender's chain would otherwise decide).
pub(super) fn payout_sender_of<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
) -> Result<Option<PayoutSender>, crate::state::StateError> {
    match opening_sender(block) {
        Some(sender) => PayoutSender::find(block, state, sender),
        None => Ok(None),
    }
}
