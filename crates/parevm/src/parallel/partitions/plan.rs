//! State-access scheduling: splitting a block into partitions predicted to
//! touch disjoint state, so that each runs start to finish on one thread
//! with a plain revm cache and no multi-version memory, as Solana and Sui
//! schedule transactions by the accounts they declare.
//!
//! Ethereum transactions declare nothing, so the accesses are predicted from
//! the transaction alone and checked while it runs
//! ([`run`](super::run)). Three kinds of transaction are
//! predicted, because their accesses are known without running them: a
//! plain value transfer to an account without code (sender and recipient),
//! an ERC-20 `transfer` (sender, and the sender's and recipient's balances
//! in the token), and a call into code whose reach is bounded
//! ([`reach`]: sender, target, and the accounts its code can
//! name, read from the transaction's input and the target's storage). Any
//! other transaction runs code whose reach is unknown: on mainnet blocks,
//! calls into different
//! contracts met in shared ones (WETH deposits, pools behind routers) often
//! enough that trying partitions there lost more than it won, so by default
//! a block with any such transaction is left to Block-STM. An embedder that
//! knows its contracts keep to themselves (an app-specific rollup) can have
//! every call keyed by its target instead
//! ([`ParallelConfig::partition_contract_calls`](crate::parallel::ParallelConfig::partition_contract_calls)).
//!
//! A payout sender's transfers ([`payout`](super::payout)) are keyed by
//! their recipients, and the accounts a recipient's code calls without
//! calldata (a forwarder's destination), not by the sender: the partitions
//! sum what the sender pays. A recipient with code must not read a
//! balance not its own ([`observation`](super::observation)), the
//! sender's among them. Conversely, plain transfers into a block's hot
//! recipient ([`Planner::with_hot_recipient`]) are keyed by their senders
//! alone: the partitions sum what they credit it.
//!
//! Transactions sharing a predicted key are joined into components
//! (union-find); whole components are then packed into partitions, heaviest
//! first. There are several partitions per thread, of decreasing size
//! ([`capacities`]), claimed in order by whichever thread is free: with
//! exactly one each, a thread slowed down (a core taken by another process
//! or the hypervisor) held up the block, which measured as low as half the
//! sequential speed on the 2-core VM.

use super::reach::{self, Reaches};
use crate::parallel::{
    digest::{Digested, address_digest, fmix64, fold_address},
    helpers::{Idle, panic_message},
    mv_memory::lock,
    prediction::{Prediction, predicted_gas},
    types::TxIdx,
};
use crate::{
    BlockInput,
    state::{StateError, StateSource},
};
use alloy_consensus::{Transaction, TxEnvelope, transaction::Recovered};
use alloy_primitives::Address;
use revm::primitives::KECCAK_EMPTY;
use smallvec::SmallVec;
use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap, hash_map::Entry},
    hash::BuildHasherDefault,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

/// Partitions per thread for a block of `txs` transactions, were they all
/// of the largest size ([`capacities`]). Each partition costs a few
/// microseconds to set up and merge, so larger blocks get more: on the
/// 2-core VM, 300 transfers in equal partitions ran 0.93x / 0.91x / 0.83x
/// of sequential with 4 / 8 / 16 per thread, and 5,000 AMM swaps
/// 1.74x / 1.81x / 1.79x.
fn partitions_per_thread(txs: usize) -> usize {
    (txs / 512).clamp(4, 16)
}

/// The smallest partitions, claimed last, are this many times smaller
/// than the largest, but no smaller than [`SMALLEST_GAS`], nor larger than
/// half the largest.
const SMALLEST_SHARE: u64 = 8;

/// The least gas of the smallest partitions, unless the largest are
/// smaller than twice this: each partition costs a few microseconds to set
/// up and merge (on the 2-core VM, 300 transfers ran at 0.93x in 8 equal
/// partitions and at 0.83x in 32), and 1,000,000 gas is 48 transfers,
/// about 0.15 ms.
const SMALLEST_GAS: u64 = 1_000_000;

/// Partitions at the end of the block are packed to this share of the gas
/// not yet packed, per thread (guided self-scheduling), until they reach
/// the smallest size.
const GUIDED_SHARE: u64 = 2;

/// The gas each partition is packed to, in the order threads claim them:
/// the largest size ([`partitions_per_thread`]) until the gas left is
/// `GUIDED_SHARE` such partitions per thread; then each takes
/// `1 / (GUIDED_SHARE * threads)` of the gas left, down to the smallest
/// size ([`SMALLEST_SHARE`]), and the last the rest (no less than half the
/// smallest).
///
/// So a thread that finds no partition left waits for at most a small one:
/// with equal partitions it waited for up to a whole one (5,000 AMM swaps
/// ran in 18 partitions of 6 ms on the 2-core VM, and one thread finished
/// up to 1.5 ms before the other). With the smallest at half the largest,
/// the threads of 5,000 AMM swaps still spent 2.8-5.2 ms between
/// partitions (both together, most of it the last wait) on the 2-core AMD
/// VM; at an eighth, 1.2-3.2 ms. Partitions are not made larger instead:
/// a partition's state cache grows with it, and at a quarter of 5,000
/// transfers per partition, running them took 10% longer than at 1/18.
fn capacities(total: u64, threads: usize, txs: usize) -> Vec<u64> {
    let threads = threads.max(1) as u64;
    let largest = (total / (threads * partitions_per_thread(txs) as u64)).max(1);
    let smallest = (largest / SMALLEST_SHARE)
        .max(SMALLEST_GAS)
        .min(largest.div_ceil(2));
    let mut capacities = Vec::new();
    let mut left = total;
    while left > 0 {
        let mut capacity = (left / (GUIDED_SHARE * threads)).clamp(smallest, largest);
        if left.saturating_sub(capacity) < smallest / 2 {
            // No crumb of a partition after this one.
            capacity = left;
        }
        capacities.push(capacity);
        left -= capacity;
    }
    if capacities.is_empty() {
        // No gas at all: one partition takes everything.
        capacities.push(1);
    }
    capacities
}

/// A partition being packed, ordered by how full it is (`load / capacity`),
/// then by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bin {
    load: u64,
    capacity: u64,
    index: usize,
}

impl Ord for Bin {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let mine = u128::from(self.load) * u128::from(other.capacity);
        let theirs = u128::from(other.load) * u128::from(self.capacity);
        mine.cmp(&theirs).then(self.index.cmp(&other.index))
    }
}

impl PartialOrd for Bin {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Transactions per chunk of [`Planner::predict`]: the unit threads claim,
/// and how often each asks whether the plan was abandoned.
const CHUNK: usize = 256;

/// The selector of ERC-20 `transfer(address,uint256)`.
const ERC20_TRANSFER: [u8; 4] = [0xa9, 0x05, 0x9c, 0xbb];

/// At most one in this many of a payout block's transactions
/// ([`Planner::with_payout_sender`]) may be unpredicted: calls whose reach
/// is unbounded, and payouts into code that may read a foreign balance or
/// whose reach is unbounded. A call is keyed by its sender and target, a
/// payout by its recipient (its sender is summed), and each by one key they
/// all share, so they run together, in one partition, in block order; only
/// the partitions' own checks tell whether they kept off the others' state,
/// the payout sender's balance and the beneficiary's (a trading bot paying
/// the builder is summed with the fees, see `db.rs`). Such a block runs
/// sequentially otherwise, its sender's chain holding most of it: mainnet
/// fixture 13287210 (1,414 transactions, three unpredicted: a trading bot's
/// two calls around a router's swap) runs as partitions at 1.3-1.75x
/// instead; 12520364 (a bot paying the builder, a payout into a forwarder
/// whose code reads a balance on a path its storage rules out) and 11814555
/// (eight payouts into such forwarders) at 1.22-1.37x, where they ran
/// sequentially at 0.97-1.01x. Other blocks plan none: they run on
/// Block-STM when they do not partition, and a partition run that is then
/// discarded would only delay it.
const MAX_UNPREDICTED_SHARE: usize = 64;

/// How a transaction's keys were predicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyed {
    /// From what it is (a transfer, a token `transfer`, a call of bounded
    /// reach).
    Predicted,
    /// As its sender, its target and [`Key::Unpredicted`]: what else it
    /// touches is not known ([`MAX_UNPREDICTED_SHARE`]).
    Unpredicted,
    /// Not at all: it delegates code, creates a contract, or is predicted
    /// to touch the beneficiary or the payout sender (see
    /// [`Planner::predict_chunk`]). The block does not partition.
    Never,
}

/// A unit of state a transaction is predicted to read and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    /// An account: its balance, nonce, code and storage.
    Account(Address),
    /// One holder's balance in an ERC-20 token: the token contract itself is
    /// only read by a `transfer`, so it joins nothing.
    Holder { token: Address, holder: Address },
    /// Whatever the block's unpredicted transactions touch: one key for
    /// them all, so that they run in one partition, in block order
    /// ([`MAX_UNPREDICTED_SHARE`]).
    Unpredicted,
}

impl Key {
    /// A well-mixed 64-bit digest, cheap enough for every key of a block:
    /// the address words folded, then a 64-bit finalizer (generated
    /// addresses can differ in a byte or two only). Two keys sharing a
    /// digest only join their components needlessly (validation, not the
    /// prediction, guards correctness), so the union-find map holds
    /// digests: a quarter of the memory of keys.
    fn digest(&self) -> u64 {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        match self {
            Self::Account(address) => address_digest(address),
            // The token mixed first: folding is linear, so generated token
            // and holder addresses could cancel out (as slots did in
            // `footprint.rs`).
            Self::Holder { token, holder } => {
                fmix64(address_digest(token) ^ fold_address(holder) ^ K)
            }
            Self::Unpredicted => fmix64(K),
        }
    }
}

/// A block split into partitions predicted to be independent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Partitions {
    /// Each partition's transactions, in block order.
    pub txs: Vec<Vec<TxIdx>>,
    /// Each transaction's partition (an index into `txs`).
    pub partition_of: Vec<u32>,
    /// The speedup the split allows at the threads asked for:
    /// `gas / max(heaviest partition's gas, gas / threads)`.
    pub bound: f64,
    /// Whether some transactions were [unpredicted](MAX_UNPREDICTED_SHARE):
    /// their partition's weight, and `bound`, are then no dependency the
    /// block is known to have.
    pub unpredicted: bool,
    /// The block's [hot recipient](Planner::with_hot_recipient), if the
    /// plan keyed transfers into it by their senders alone: the partitions
    /// must sum what they credit it.
    pub hot_recipient: Option<Address>,
    /// The first transaction predicted to touch each key, by the key's
    /// digest: with `partition_of`, the partition that owns an account
    /// (see [`Ownership`](super::footprint::Ownership)). Empty where some
    /// keys were guessed (see [`Joined::pack`]): no account is owned then.
    pub owners: Owners,
    /// Each transaction's key digests, where `owners` holds them: every
    /// account among them is its partition's.
    pub keys: TxKeys,
}

/// Each transaction's predicted key digests, as the plan's chunks held
/// them (moved, not copied: the plan is on the block's critical path).
///
/// A partition asks them which accounts its transaction now running owns
/// (see `db.rs`): a digest among them is that transaction's key, so the
/// first transaction to have it, which owns the account
/// ([`Ownership`](super::footprint::Ownership)), is in the same
/// component, and so the same partition. The answer is the one
/// `Ownership` gives, found in the transaction's own two or three digests,
/// read in block order, instead of a miss in the block's map of keys (2.4%
/// of the CPU samples of 5,000 raw transfers on 2 threads), and the access
/// is not recorded at all. In-process A/B runs against recording them
/// (2-core AMD VM, medians of 61-301 pairs' ratios) read 5,000 raw
/// transfers 1.036 times as fast (a tenth hot 1.044), a gigagas of them
/// 1.090 (its map of keys far outgrows the caches), 5,000 ERC-20
/// transfers 1.015 (a gigagas 1.025), AMM swaps 1.016, the mixed block
/// 1.021 and hot-slot calls 1.027.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct TxKeys {
    /// Each chunk's digests, and where each of its transactions' digests
    /// end in them.
    chunks: Vec<(Vec<u64>, Vec<u32>)>,
}

impl TxKeys {
    /// Transaction `tx`'s key digests; none if the plan kept none.
    pub(crate) fn of(&self, tx: TxIdx) -> &[u64] {
        let Some((digests, ends)) = self.chunks.get(tx / CHUNK) else {
            return &[];
        };
        let index = tx % CHUNK;
        let start = match index {
            0 => 0,
            _ => ends.get(index - 1).map_or(0, |&end| end as usize),
        };
        let end = ends.get(index).map_or(start, |&end| end as usize);
        digests.get(start..end).unwrap_or_default()
    }
}

/// Plans a block's partitions in two steps. First every transaction's
/// keys are predicted ([`Self::predict`], [`Self::help_predict`]), in
/// chunks that any number of threads claim: for calls into contracts that
/// step reads the state (the target's code and storage, the reached
/// accounts' code), about a microsecond per transaction on a large block
/// whose accounts are not in cache, so a large block shares it out. The
/// thread that called [`Self::predict`] joins the keys into components in
/// block order as their chunks come in ([`Joined`]), then packs them.
pub(crate) struct Planner<'b> {
    block: &'b BlockInput,
    threads: usize,
    contract_calls: bool,
    /// The beneficiary's key digest: every transaction changes its balance.
    beneficiary: u64,
    /// The block's payout sender, if it has one, and its key digest: its
    /// transfers are keyed by their recipients (and the accounts their
    /// code calls), not by it, and no other transaction may name it.
    payout: Option<(Address, u64)>,
    /// The block's hot recipient, if it has one, and its key digest: plain
    /// transfers into it are keyed by their senders alone, and no other
    /// transaction may name it ([`Self::with_hot_recipient`]).
    hot_recipient: Option<(Address, u64)>,
    next_chunk: AtomicUsize,
    /// Set once some transaction turned out unpredictable, or the plan was
    /// abandoned: the block will not partition.
    stopped: AtomicBool,
    chunks: Vec<Mutex<Option<ChunkKeys>>>,
    planned: Mutex<Option<(Partitions, Prediction)>>,
    /// Instructions left for analysing codes ([`reach::BLOCK_STEPS`]).
    analysis_budget: AtomicUsize,
    /// The most [`Keyed::Unpredicted`] transactions the block may hold
    /// ([`MAX_UNPREDICTED_SHARE`]), and how many its chunks held so far.
    max_unpredicted: usize,
    unpredicted: AtomicUsize,
}

/// The predicted keys of one chunk's transactions, as digests, and their
/// gas for the block's [`Prediction`].
#[derive(Default)]
struct ChunkKeys {
    digests: Vec<u64>,
    /// Where each transaction's digests end in `digests`.
    ends: Vec<u32>,
    /// Each transaction's [`predicted_gas`], for packing without reading
    /// the transactions again.
    gas: Vec<u64>,
    /// How many of them are [`Keyed::Unpredicted`].
    unpredicted: usize,
}

impl<'b> Planner<'b> {
    /// A plan for `block` on `threads` threads, with `contract_calls`
    /// predicted by their target too.
    pub(crate) fn new(block: &'b BlockInput, threads: usize, contract_calls: bool) -> Self {
        let chunks = block.transactions.len().div_ceil(CHUNK);
        Self {
            block,
            threads: threads.max(1),
            contract_calls,
            beneficiary: Key::Account(block.header.beneficiary).digest(),
            payout: None,
            hot_recipient: None,
            next_chunk: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
            chunks: (0..chunks).map(|_| Mutex::new(None)).collect(),
            planned: Mutex::new(None),
            analysis_budget: AtomicUsize::new(reach::BLOCK_STEPS),
            max_unpredicted: 0,
            unpredicted: AtomicUsize::new(0),
        }
    }

    /// Plans with `payout` as the block's payout sender
    /// ([`PayoutSender`](super::payout::PayoutSender)): its transfers, which
    /// must all be to accounts without code or with code that reads no
    /// balance but its own, are keyed by their recipients (and the
    /// accounts their code calls without calldata), not by the sender;
    /// and a few other transactions may be unpredicted
    /// ([`MAX_UNPREDICTED_SHARE`]).
    pub(crate) fn with_payout_sender(mut self, payout: Address) -> Self {
        self.payout = Some((payout, Key::Account(payout).digest()));
        self.max_unpredicted = self.block.transactions.len() / MAX_UNPREDICTED_SHARE;
        self
    }

    /// Plans with the block's hot recipient, if it has one: an account
    /// without code, not empty, that plain transfers from at least one in
    /// [`HOT_RECIPIENT_SHARE`] of [`HOT_RECIPIENT_SAMPLES`] transactions
    /// spread over the block pay, and that sends none of the block's
    /// transactions (as an exchange's deposit addresses sweep into its hot
    /// wallet). Keyed by it, they would be one component: fixture
    /// 14396881's 1,197 transfers into one account hold 84% of its gas.
    /// Keyed by their senders alone, the partitions sum what they credit
    /// it, as they sum the beneficiary's fees (`db.rs`): an account without
    /// code that sends nothing only gains balance, and only its balance
    /// can be observed, which fails the run. No other transaction may be
    /// predicted to name it.
    pub(crate) fn with_hot_recipient<S: StateSource + ?Sized>(mut self, state: &S) -> Self {
        let Some(hot) = hot_recipient(self.block) else {
            return self;
        };
        let summable = state
            .account_fields(&hot)
            .ok()
            .flatten()
            .is_some_and(|account| account.code_hash == KECCAK_EMPTY && !account.is_empty());
        // Sending, it would pay and be observed: the plan would stop there.
        let sends = || self.block.transactions.iter().any(|tx| tx.signer() == hot);
        if summable && Some(hot) != self.payout.map(|(payout, _)| payout) && !sends() {
            self.hot_recipient = Some((hot, Key::Account(hot).digest()));
        }
        self
    }

    /// Whether `digest` is the key of an account whose balance the
    /// partitions sum rather than own: the beneficiary's, or the hot
    /// recipient's.
    fn is_summed(&self, digest: u64) -> bool {
        digest == self.beneficiary || self.is_hot_recipient(digest)
    }

    /// Whether `digest` is the hot recipient's key.
    fn is_hot_recipient(&self, digest: u64) -> bool {
        self.hot_recipient.is_some_and(|(_, hot)| hot == digest)
    }

    /// How many transactions the plan is for.
    pub(crate) fn transactions(&self) -> usize {
        self.block.transactions.len()
    }

    /// How many chunks of transactions the plan predicts: at most this
    /// many threads find work in [`Self::predict`].
    pub(crate) fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Gives the plan up: the block will not partition.
    pub(crate) fn abandon(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// Whether the plan was given up.
    pub(crate) fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    /// Predicts chunks of transactions until none is left, with the other
    /// threads that [help](Self::help_predict), joining the keys of the
    /// chunks predicted so far between its own; then waits for the chunks
    /// still being predicted, joins them and packs the partitions, unless
    /// the plan stopped. A transaction that cannot be predicted stops the
    /// plan, as does a read of `state` that fails ([`Self::push_digests`]).
    ///
    /// The thread that calls this joins and packs, rather than whichever
    /// thread predicted the last chunk: a helper that packed 5,000
    /// transfers took about twice as long as the caller did (250-500 us
    /// instead of 110-190 us to join the keys), and the caller, waiting
    /// for it, went back to work 80-100 us after it finished. Joining
    /// between its own chunks, it leaves more of them to the helpers: after
    /// all were predicted, joining 5,000 transfers' keys took 140-230 us
    /// more.
    pub(crate) fn predict<S: StateSource + ?Sized>(&self, state: &S) {
        let _abandon_on_panic = AbandonOnPanic(self);
        let reaches = &mut Reaches::new(state, &self.analysis_budget);
        let mut joined = Joined::new(self.block.transactions.len());
        while !self.stopped() {
            joined.join_ready(&self.chunks);
            if !self.predict_next_chunk(reaches) {
                break;
            }
        }
        let mut idle = Idle::default();
        while !joined.join_ready(&self.chunks) && !self.stopped() {
            idle.wait();
        }
        if !self.stopped() {
            let (mut partitions, prediction) = joined.pack(self.threads, self.contract_calls);
            partitions.hot_recipient = self.hot_recipient.map(|(hot, _)| hot);
            *lock(&self.planned) = Some((partitions, prediction));
        }
    }

    /// Predicts chunks of transactions until none is left, asking `state`
    /// what calls reach and which accounts have code, for the thread that
    /// joins them ([`Self::predict`]).
    pub(crate) fn help_predict<S: StateSource + ?Sized>(&self, state: &S) {
        // A panic here (a bug) must not leave the packing thread waiting
        // for a chunk that will never be predicted.
        let _abandon_on_panic = AbandonOnPanic(self);
        let reaches = &mut Reaches::new(state, &self.analysis_budget);
        while !self.stopped() && self.predict_next_chunk(reaches) {}
    }

    /// Claims the next chunk of transactions and leaves its keys in its
    /// slot; false if none was left. Unpredictable keys stop the plan
    /// instead (see [`Self::predict_guarded`]), so that the joining thread
    /// stops waiting for them.
    fn predict_next_chunk<S: StateSource + ?Sized>(&self, state: &mut Reaches<'_, S>) -> bool {
        let chunk = self.next_chunk.fetch_add(1, Ordering::Relaxed);
        let Some(slot) = self.chunks.get(chunk) else {
            return false;
        };
        let start = chunk * CHUNK;
        let end = (start + CHUNK).min(self.block.transactions.len());
        if let Some(keys) = self.predict_guarded(start..end, state) {
            let before = self
                .unpredicted
                .fetch_add(keys.unpredicted, Ordering::Relaxed);
            if before + keys.unpredicted > self.max_unpredicted {
                self.abandon();
            }
            *lock(slot) = Some(keys);
        }
        true
    }

    /// Predicts the block's first `transactions` alone, before any helper
    /// joins, and gives the plan up if one of them cannot be predicted (their
    /// keys are predicted again with their chunk). A block that does not
    /// partition usually shows it at once: on mainnet, a call whose reach is
    /// unbounded. Fixture 14396881 (1,346 transactions) has one first; with
    /// a helper woken for the plan, it waited up to 70 us for the helper
    /// to find the plan given up, and ran sequentially at 0.92-0.95x.
    pub(crate) fn probe<S: StateSource + ?Sized>(&self, state: &S, transactions: usize) {
        let state = &mut Reaches::new(state, &self.analysis_budget);
        let end = transactions.min(self.block.transactions.len());
        self.predict_guarded(0..end, state);
    }

    /// The share of the gas (by [`predicted_gas`]) that the heaviest component of
    /// `samples` transactions, spread evenly over the block, holds among
    /// them: joined by the keys they share, as [`pack`] joins the
    /// whole block. `None` if one of them cannot be predicted (the plan
    /// stops on it anyway) or predicting it panicked. A block whose samples
    /// all share one key (every transfer moves the same token holder's
    /// balance, every call the same contract's slot) is one chain, which
    /// the plan of every transaction would only confirm: on 5,000 such
    /// ERC-20 transfers that plan took 0.7 ms before they ran sequentially.
    /// Sampled transactions only join through shared keys of their own, so
    /// the share tends to understate the block's heaviest component.
    pub(crate) fn sampled_heaviest_share<S: StateSource + ?Sized>(
        &self,
        state: &S,
        samples: usize,
    ) -> Option<f64> {
        let txs = &self.block.transactions;
        let samples = samples.min(txs.len());
        let sampled = |sample: usize| &txs[sample * txs.len() / samples.max(1)];
        let state = &mut Reaches::new(state, &self.analysis_budget);
        let mut components = UnionFind::new(samples);
        let mut owners = Owners::with_capacity_and_hasher(samples * 3, Default::default());
        let mut digests = Vec::new();
        for sample in 0..samples {
            digests.clear();
            let predicted = catch_unwind(AssertUnwindSafe(|| {
                self.push_digests(sampled(sample), state, &mut digests)
            }));
            // Never predictable, or a panic (a bug): the plan decides.
            if matches!(predicted, Ok(Keyed::Never) | Err(_)) {
                return None;
            }
            components.join_keys(&mut owners, sample, &digests);
        }
        let mut gas = vec![0u64; samples];
        for sample in 0..samples {
            let root = components.find(sample);
            gas[root] = gas[root].saturating_add(predicted_gas(sampled(sample).inner()));
        }
        let total: u64 = gas.iter().fold(0, |sum, g| sum.saturating_add(*g));
        let heaviest = gas.iter().copied().max().unwrap_or(0);
        (total > 0).then(|| heaviest as f64 / total as f64)
    }

    /// [`Self::predict_chunk`], giving the plan up if it returns no keys or
    /// panics. The prediction is optional: a panic in it (a bug, say in
    /// reading some contract's code) gives the plan up, and the block runs
    /// on Block-STM, rather than failing the block.
    fn predict_guarded<S: StateSource + ?Sized>(
        &self,
        range: std::ops::Range<TxIdx>,
        state: &mut Reaches<'_, S>,
    ) -> Option<ChunkKeys> {
        let predicted = catch_unwind(AssertUnwindSafe(|| self.predict_chunk(range, state)))
            .unwrap_or_else(|panic| {
                let message = panic_message(panic.as_ref());
                tracing::warn!(message, "predicting partitions panicked");
                None
            });
        if predicted.is_none() {
            self.abandon();
        }
        predicted
    }

    /// The keys of the transactions in `range`; `None` if one cannot be
    /// predicted: it is neither a plain transfer to an account without
    /// code, nor an ERC-20 `transfer`, nor a call into code whose reach is
    /// bounded (with `contract_calls`, any call or creation), and no more
    /// may be [unpredicted](MAX_UNPREDICTED_SHARE); or a key it is
    /// predicted by is the beneficiary's, whose balance every transaction
    /// changes, or the payout sender's (other than as the sender of its
    /// own transfers).
    ///
    /// On 5,000 AMM swaps this costs about 7 ms of CPU a block, mostly
    /// misses in the pre-state's maps (each pool's code hash and token
    /// slots, each token's code hash). Looking up every call target's code
    /// hash first, so that a chunk's misses could overlap, saved nothing
    /// on the 2-core AMD VM (perf, 35 runs: 259 and 233 ms against 264
    /// and 254 ms with it).
    fn predict_chunk<S: StateSource + ?Sized>(
        &self,
        range: std::ops::Range<TxIdx>,
        state: &mut Reaches<'_, S>,
    ) -> Option<ChunkKeys> {
        let mut chunk = ChunkKeys {
            digests: Vec::with_capacity(range.len() * 3),
            ends: Vec::with_capacity(range.len()),
            gas: Vec::with_capacity(range.len()),
            ..Default::default()
        };
        for tx in &self.block.transactions[range] {
            chunk.gas.push(predicted_gas(tx.inner()));
            match self.push_digests(tx, state, &mut chunk.digests) {
                Keyed::Predicted => {}
                Keyed::Unpredicted if chunk.unpredicted < self.max_unpredicted => {
                    chunk.unpredicted += 1;
                }
                Keyed::Unpredicted | Keyed::Never => return None,
            }
            chunk.ends.push(chunk.digests.len() as u32);
        }
        Some(chunk)
    }

    /// Pushes the digests of `tx`'s predicted keys onto `digests`, and says
    /// how they were predicted ([`Keyed::Never`] if they cannot be, see
    /// [`Self::predict_chunk`], with some digests perhaps pushed). A read
    /// of the pre-block state that fails leaves them unpredicted too: the prediction reads what execution in
    /// order may never read (the code of every account a call could reach,
    /// on paths not taken as well), which a witness for stateless
    /// validation need not hold, and the block then runs on Block-STM.
    fn push_digests<S: StateSource + ?Sized>(
        &self,
        tx: &Recovered<TxEnvelope>,
        state: &mut Reaches<'_, S>,
        digests: &mut Vec<u64>,
    ) -> Keyed {
        self.try_push_digests(tx, state, digests)
            .unwrap_or(Keyed::Never)
    }

    /// [`Self::push_digests`], with the state's errors.
    fn try_push_digests<S: StateSource + ?Sized>(
        &self,
        tx: &Recovered<TxEnvelope>,
        state: &mut Reaches<'_, S>,
        digests: &mut Vec<u64>,
    ) -> Result<Keyed, StateError> {
        if tx.authorization_list().is_some_and(|list| !list.is_empty()) {
            return Ok(Keyed::Never);
        }
        let (sender, input) = (tx.signer(), tx.input());
        let payout = self
            .payout
            .map(|(address, digest)| (sender == address, digest));
        if let Some((true, payout_digest)) = payout {
            return self.push_payout_digests(tx, payout_digest, state, digests);
        }
        let payout_digest = payout.map(|(_, digest)| digest);
        let to = tx.kind().to().copied();
        let predicted = match self.hot_recipient {
            // Its sender alone: the partitions sum what they credit it.
            Some((hot, _)) if to == Some(hot) && input.is_empty() => {
                Predicted::Keys([Some(Key::Account(sender)), None, None])
            }
            _ => keys(sender, to, input, self.contract_calls),
        };
        // Digested as they are found: keys gathered first and digested
        // after were read back across the stores that wrote them, which
        // stalled the plan (perf annotate, AMD VM).
        let start = digests.len();
        let account = |address: Address| Key::Account(address).digest();
        let keyed = match predicted {
            Predicted::Keys(keys) => {
                digests.extend(keys.iter().flatten().map(Key::digest));
                Keyed::Predicted
            }
            Predicted::Transfer(to) if !state.has_code(&to)? => {
                digests.extend([account(sender), account(to)]);
                Keyed::Predicted
            }
            Predicted::Transfer(to) | Predicted::Call(to) => match state.of_call(&to, input)? {
                Some(reached) => {
                    digests.extend([sender, to].into_iter().chain(reached).map(account));
                    Keyed::Predicted
                }
                None => Keyed::Unpredicted,
            },
            Predicted::Unknown => Keyed::Unpredicted,
        };
        if keyed == Keyed::Unpredicted {
            let Some(to) = to.filter(|_| self.max_unpredicted > 0) else {
                return Ok(Keyed::Never);
            };
            digests.extend([account(sender), account(to), Key::Unpredicted.digest()]);
        }
        // The beneficiary's key, or the payout sender's: see `predict_chunk`.
        let forbidden = |digest: &u64| self.is_summed(*digest) || Some(*digest) == payout_digest;
        Ok(match digests[start..].iter().any(forbidden) {
            true => Keyed::Never,
            false => keyed,
        })
    }

    /// [`Self::try_push_digests`] for a transaction of the payout sender
    /// (`payout_digest`): a plain transfer (see `PayoutSender::find`),
    /// keyed by its recipient and the accounts the recipient's code calls
    /// without calldata (a forwarder's destination); the sender is summed,
    /// and so is the hot recipient, if one of them is it.
    /// Into code that may read a balance other than its own (the sender's
    /// would be the one this partition served, not the one in sequence),
    /// or whose reach is unbounded, it is
    /// [unpredicted](MAX_UNPREDICTED_SHARE): keyed by its recipient and the
    /// key all unpredicted transactions share, and watched as it runs.
    fn push_payout_digests<S: StateSource + ?Sized>(
        &self,
        tx: &Recovered<TxEnvelope>,
        payout_digest: u64,
        state: &mut Reaches<'_, S>,
        digests: &mut Vec<u64>,
    ) -> Result<Keyed, StateError> {
        let Some(to) = tx.kind().to().copied().filter(|_| tx.input().is_empty()) else {
            return Ok(Keyed::Never);
        };
        let (keys, keyed): (SmallVec<[Key; 6]>, _) = match state.of_payout(&to)? {
            Some(reached) => {
                let accounts = std::iter::once(to).chain(reached);
                (accounts.map(Key::Account).collect(), Keyed::Predicted)
            }
            None => {
                let keys = SmallVec::from_slice(&[Key::Account(to), Key::Unpredicted]);
                (keys, Keyed::Unpredicted)
            }
        };
        for key in keys {
            let digest = key.digest();
            if self.is_hot_recipient(digest) {
                // A payout only credits it (into code, code that reads no
                // balance but its own): summed, as the sender's payments.
                continue;
            }
            if self.is_summed(digest) || digest == payout_digest {
                return Ok(Keyed::Never);
            }
            digests.push(digest);
        }
        Ok(keyed)
    }

    /// Which of the block's transactions have keys that can be predicted,
    /// each on its own (a diagnosis: the plan needs them all).
    pub(crate) fn predictable<S: StateSource + ?Sized>(&self, state: &S) -> Vec<bool> {
        let state = &mut Reaches::new(state, &self.analysis_budget);
        let mut digests = Vec::new();
        let txs = &self.block.transactions;
        txs.iter()
            .map(|tx| {
                digests.clear();
                self.push_digests(tx, state, &mut digests) == Keyed::Predicted
            })
            .collect()
    }

    /// The partitions and the block's prediction, once [`Self::predict`]
    /// has returned on every thread that ran it; `None` if the block does
    /// not partition.
    pub(crate) fn finish(self) -> Option<(Partitions, Prediction)> {
        if self.stopped.into_inner() {
            return None;
        }
        self.planned.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

/// The keys of a plan's chunks joined so far, in block order, by the
/// thread that packs them ([`Planner::predict`]).
struct Joined {
    components: UnionFind,
    /// The first transaction to touch each key, by the key's digest.
    owners: Owners,
    /// Each joined transaction's key digests.
    keys: TxKeys,
    /// How many chunks were joined.
    chunks: usize,
    /// The first transaction not joined yet.
    next_tx: TxIdx,
    /// Each joined transaction's [`predicted_gas`].
    gas: Vec<u64>,
    /// Whether a joined transaction was [`Keyed::Unpredicted`].
    unpredicted: bool,
}

impl Joined {
    fn new(txs: usize) -> Self {
        Self {
            components: UnionFind::new(txs),
            owners: Owners::default(),
            keys: TxKeys::default(),
            chunks: 0,
            next_tx: 0,
            gas: Vec::with_capacity(txs),
            unpredicted: false,
        }
    }

    /// Joins the chunks predicted since the last call, in order, up to the
    /// first not predicted yet; whether every chunk is joined.
    fn join_ready(&mut self, chunks: &[Mutex<Option<ChunkKeys>>]) -> bool {
        while let Some(slot) = chunks.get(self.chunks) {
            let Some(keys) = lock(slot).take() else {
                return false;
            };
            if self.chunks == 0 {
                // Sized for as many digests in every chunk as in the
                // first: growing the map rehashes it.
                self.owners.reserve(keys.digests.len() * chunks.len());
            }
            self.join(keys);
            self.chunks += 1;
        }
        true
    }

    /// Joins each of the chunk's transactions with the first to share one
    /// of its keys.
    fn join(&mut self, keys: ChunkKeys) {
        self.gas.extend_from_slice(&keys.gas);
        self.unpredicted |= keys.unpredicted > 0;
        let mut start = 0;
        for &end in &keys.ends {
            let digests = &keys.digests[start..end as usize];
            self.components
                .join_keys(&mut self.owners, self.next_tx, digests);
            start = end as usize;
            self.next_tx += 1;
        }
        self.keys.chunks.push((keys.digests, keys.ends));
    }

    /// Packs the components of every chunk, joined, for `threads`; with
    /// them, the block's [`Prediction`], its critical path the heaviest
    /// component (which holds every chain of one sender's transactions).
    /// The keys' owners go with the partitions unless some keys were
    /// guessed: for unpredicted transactions, or for calls keyed by their
    /// target alone (`contract_calls`).
    fn pack(mut self, threads: usize, contract_calls: bool) -> (Partitions, Prediction) {
        let (mut partitions, critical_gas) = pack(&self.gas, &mut self.components, threads);
        partitions.unpredicted = self.unpredicted;
        if !self.unpredicted && !contract_calls {
            partitions.owners = self.owners;
            partitions.keys = self.keys;
        }
        let gas = self.gas.iter().fold(0u64, |sum, g| sum.saturating_add(*g));
        let prediction = Prediction {
            transactions: self.next_tx,
            gas,
            critical_gas,
            work: gas,
        };
        (partitions, prediction)
    }
}

/// Gives its plan up if dropped while its thread panics.
struct AbandonOnPanic<'p, 'b>(&'p Planner<'b>);

impl Drop for AbandonOnPanic<'_, '_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.abandon();
        }
    }
}

/// Transactions sampled, spread over the block, for its hot recipient
/// ([`hot_recipient`]).
const HOT_RECIPIENT_SAMPLES: usize = 64;

/// At least one in this many sampled transactions are plain transfers into
/// a block's hot recipient ([`hot_recipient`]): a component of an eighth of
/// the gas already keeps the partitions of 8 threads from balancing.
const HOT_RECIPIENT_SHARE: usize = 8;

/// The account that plain transfers (without calldata) from at least one
/// in [`HOT_RECIPIENT_SHARE`] of [`HOT_RECIPIENT_SAMPLES`] transactions
/// spread over `block` pay, the most often paid if several are, other than
/// the beneficiary (see [`Planner::with_hot_recipient`]).
fn hot_recipient(block: &BlockInput) -> Option<Address> {
    let txs = &block.transactions;
    let samples = HOT_RECIPIENT_SAMPLES.min(txs.len());
    let mut paid: SmallVec<[Address; HOT_RECIPIENT_SAMPLES]> = (0..samples)
        .map(|sample| &txs[sample * txs.len() / samples])
        .filter(|tx| tx.input().is_empty())
        .filter_map(|tx| tx.kind().to().copied())
        .filter(|to| *to != block.header.beneficiary)
        .collect();
    paid.sort_unstable();
    let (hot, times) = paid
        .chunk_by(|a, b| a == b)
        .map(|run| (run[0], run.len()))
        .max_by_key(|(_, times)| *times)?;
    (times >= 2 && times * HOT_RECIPIENT_SHARE >= samples).then_some(hot)
}

/// What a transaction is predicted to touch, from the transaction alone.
#[derive(Debug, PartialEq)]
enum Predicted {
    /// These keys.
    Keys([Option<Key>; 3]),
    /// Its sender and this recipient, if the recipient has no code; else
    /// as a [`Predicted::Call`] (without calldata, say to a WETH-style
    /// deposit).
    Transfer(Address),
    /// Its sender, the account it calls and what that account's code
    /// [reaches](super::reach), if that is bounded.
    Call(Address),
    /// Nothing that can be predicted.
    Unknown,
}

/// What a transaction from `sender` to `to` with `input` is predicted to
/// touch (see [`Planner::predict_chunk`]).
fn keys(sender: Address, to: Option<Address>, input: &[u8], contract_calls: bool) -> Predicted {
    let sender_key = Some(Key::Account(sender));
    let Some(to) = to else {
        // A creation's address follows from the sender's nonce.
        return match contract_calls {
            true => Predicted::Keys([sender_key, None, None]),
            false => Predicted::Unknown,
        };
    };
    if input.len() == 68 && input[..4] == ERC20_TRANSFER {
        let recipient = Address::from_slice(&input[16..36]);
        let holder = |holder| Some(Key::Holder { token: to, holder });
        return Predicted::Keys([sender_key, holder(sender), holder(recipient)]);
    }
    if contract_calls {
        return Predicted::Keys([sender_key, Some(Key::Account(to)), None]);
    }
    if input.is_empty() {
        return Predicted::Transfer(to);
    }
    Predicted::Call(to)
}

/// Packs the components of `components` into partitions for `threads`
/// threads, heaviest component first into the partition least full for
/// its [capacity](capacities) (by the transactions' predicted `gas`; the
/// smallest in one pass, see [`Bins::load`]), the heaviest partitions
/// first; with the heaviest component's gas.
///
/// A transaction weighs its [`predicted_gas`], not its gas limit: wallets
/// sent plain transfers with limits of 90,000 and more, so partitions of
/// them looked heavier than a partition holding one large call, which
/// threads then claimed last. On fixture 12520364 a partition of 16
/// transactions, one of them 43% of the block's time, ran 1.08 ms after
/// four partitions of 92 transfers of 0.12-0.16 ms each, and the block ran
/// at 1.22-1.25x; claimed first, at 1.55x.
fn pack(gas: &[u64], components: &mut UnionFind, threads: usize) -> (Partitions, u64) {
    let txs = gas.len();
    // Each component's gas and transactions, at its root.
    let mut gas_of_root = vec![0u64; txs];
    let mut txs_of_root = vec![0u32; txs];
    let mut roots: Vec<TxIdx> = Vec::with_capacity(txs);
    let mut total = 0u64;
    for (index, &gas) in gas.iter().enumerate() {
        let root = components.find(index);
        if root == index {
            roots.push(root);
        }
        gas_of_root[root] = gas_of_root[root].saturating_add(gas);
        txs_of_root[root] += 1;
        total = total.saturating_add(gas);
    }
    roots.sort_unstable_by_key(|&root| Reverse(gas_of_root[root]));
    let heaviest_component = roots.first().map_or(0, |&root| gas_of_root[root]);
    let capacities = capacities(total, threads, txs);
    let crumb = capacities
        .iter()
        .max()
        .map_or(0, |c| c / (2 * CRUMBS_PER_PARTITION));
    let large = roots.partition_point(|&root| gas_of_root[root] > crumb);
    // Reuses the per-root gas vector for each root's partition.
    let mut bins = Bins {
        partition_of_root: gas_of_root,
        txs_of_root: &txs_of_root,
        txs_of_bin: vec![0usize; capacities.len()],
    };
    let loads = bins.load(&roots[..large], &roots[large..], capacities);
    let Bins {
        partition_of_root,
        txs_of_bin,
        ..
    } = bins;
    let bins = loads.len();
    // Threads claim partitions in order: the heaviest first (a heavy
    // component may have outgrown its partition's capacity), and among
    // equals as packed. Empty ones (fewer components than partitions) go.
    let mut order: Vec<usize> = (0..bins).filter(|&bin| txs_of_bin[bin] > 0).collect();
    order.sort_by_key(|&bin| Reverse(loads[bin]));
    let mut renumbered = vec![0u32; bins];
    let mut partitions = Vec::with_capacity(order.len());
    for &old in &order {
        renumbered[old] = partitions.len() as u32;
        partitions.push(Vec::with_capacity(txs_of_bin[old]));
    }
    let mut partition_of = Vec::with_capacity(txs);
    for index in 0..txs {
        let root = components.find(index);
        let partition = renumbered[partition_of_root[root] as usize];
        partitions[partition as usize].push(index);
        partition_of.push(partition);
    }
    let heaviest = loads.into_iter().max().unwrap_or(0);
    let span = (heaviest as f64).max(total as f64 / threads as f64);
    let partitions = Partitions {
        txs: partitions,
        partition_of,
        bound: if span == 0.0 {
            1.0
        } else {
            total as f64 / span
        },
        unpredicted: false,
        hot_recipient: None,
        owners: Owners::default(),
        keys: TxKeys::default(),
    };
    (partitions, heaviest_component)
}

/// Components this many times smaller than half the largest partition are
/// crumbs ([`Bins::load`]).
const CRUMBS_PER_PARTITION: u64 = 32;

/// Partitions being loaded with components, by their roots.
struct Bins<'a> {
    /// Each root's gas, until it is loaded; then its partition.
    partition_of_root: Vec<u64>,
    txs_of_root: &'a [u32],
    txs_of_bin: Vec<usize>,
}

impl Bins<'_> {
    /// Loads the `large` components, heaviest first, each into the
    /// partition least full for its capacity, then the `crumbs` into the
    /// partitions in order of how full they are, each filled to its
    /// capacity before the next: much as the least full would take them,
    /// in one pass. Keeping every partition ordered by how full it is cost
    /// about 20 ns a component, 100 us of 5,000 transfers' 0.55 ms plan.
    /// Returns each partition's load.
    fn load(&mut self, large: &[TxIdx], crumbs: &[TxIdx], capacities: Vec<u64>) -> Vec<u64> {
        // The least full partition is loaded in place: one sift instead of
        // a pop and a push.
        let mut least_full: BinaryHeap<Reverse<Bin>> = capacities
            .into_iter()
            .enumerate()
            .map(|(index, capacity)| {
                Reverse(Bin {
                    load: 0,
                    capacity,
                    index,
                })
            })
            .collect();
        for &root in large {
            let Some(mut top) = least_full.peek_mut() else {
                break;
            };
            self.put(root, &mut top.0);
        }
        // Least full first.
        let mut bins: Vec<Bin> = least_full
            .into_sorted_vec()
            .into_iter()
            .map(|b| b.0)
            .collect();
        bins.reverse();
        let mut bin = 0;
        for &root in crumbs {
            while bin + 1 < bins.len() && bins[bin].load >= bins[bin].capacity {
                bin += 1;
            }
            self.put(root, &mut bins[bin]);
        }
        let mut loads = vec![0u64; bins.len()];
        for bin in bins {
            loads[bin.index] = bin.load;
        }
        loads
    }

    /// Loads the component at `root` into `bin`.
    fn put(&mut self, root: TxIdx, bin: &mut Bin) {
        bin.load = bin.load.saturating_add(self.partition_of_root[root]);
        self.partition_of_root[root] = bin.index as u64;
        self.txs_of_bin[bin.index] += self.txs_of_root[root] as usize;
    }
}

/// The first transaction to have each key, by the key's digest.
pub(crate) type Owners = HashMap<u64, u32, BuildHasherDefault<Digested>>;

/// Disjoint sets of transactions, with path halving.
struct UnionFind {
    parent: Vec<TxIdx>,
}

impl UnionFind {
    fn new(len: usize) -> Self {
        Self {
            parent: (0..len).collect(),
        }
    }

    fn find(&mut self, mut x: TxIdx) -> TxIdx {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    /// Joins `tx` with the first transaction to have each of its keys'
    /// `digests`, and makes it the first for the keys no one had.
    fn join_keys(&mut self, owners: &mut Owners, tx: TxIdx, digests: &[u64]) {
        for digest in digests {
            match owners.entry(*digest) {
                Entry::Occupied(owner) => self.union(tx, *owner.get() as TxIdx),
                Entry::Vacant(slot) => {
                    slot.insert(tx as u32);
                }
            }
        }
    }

    fn union(&mut self, a: TxIdx, b: TxIdx) {
        let (a, b) = (self.find(a), self.find(b));
        // The lower index stays the root, which keeps roots stable.
        if a < b {
            self.parent[b] = a;
        } else {
            self.parent[a] = b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_transfers_key_sender_and_recipient() {
        let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
        // The recipient must turn out to have no code.
        assert_eq!(keys(a, Some(b), &[], false), Predicted::Transfer(b));
        assert_eq!(
            keys(a, Some(b), &[], true),
            Predicted::Keys([Some(Key::Account(a)), Some(Key::Account(b)), None])
        );
    }

    #[test]
    fn erc20_transfers_key_the_two_holders_not_the_token() {
        let (sender, token, to) = (
            Address::repeat_byte(1),
            Address::repeat_byte(2),
            Address::repeat_byte(3),
        );
        let mut input = ERC20_TRANSFER.to_vec();
        input.extend_from_slice(&[0; 12]);
        input.extend_from_slice(to.as_slice());
        input.extend_from_slice(&[0; 32]);
        let predicted = keys(sender, Some(token), &input, false);
        let holder = |holder| Some(Key::Holder { token, holder });
        assert_eq!(
            predicted,
            Predicted::Keys([Some(Key::Account(sender)), holder(sender), holder(to)])
        );
        // Any other call depends on the target's code; a creation is only
        // predicted on request.
        input[0] = 0;
        assert_eq!(
            keys(sender, Some(token), &input, false),
            Predicted::Call(token)
        );
        assert!(matches!(
            keys(sender, Some(token), &input, true),
            Predicted::Keys(_)
        ));
        assert_eq!(keys(sender, None, &[], false), Predicted::Unknown);
    }

    #[test]
    fn capacities_sum_to_the_gas_and_shrink_at_the_end() {
        for (total, threads, txs) in [(1_000_000, 2, 300), (105_000_000, 2, 5_000), (7, 16, 3)] {
            let capacities = capacities(total, threads, txs);
            assert_eq!(capacities.iter().sum::<u64>(), total);
            let largest = total / (threads as u64 * partitions_per_thread(txs) as u64);
            let (last, others) = capacities.split_last().unwrap();
            assert!(others.windows(2).all(|w| w[0] >= w[1]), "{capacities:?}");
            assert!(
                others.iter().all(|&c| c <= largest.max(1)),
                "{capacities:?}"
            );
            assert!(*last <= largest.max(1) * 3 / 2 + 1, "{capacities:?}");
            if largest > 4 {
                // The partitions claimed last are smaller than the first.
                assert!(others.last().unwrap() < &largest, "{capacities:?}");
            }
        }
        assert_eq!(capacities(0, 2, 10), vec![1]);
    }

    #[test]
    fn large_blocks_end_in_partitions_an_eighth_of_the_largest_small_ones_in_halves() {
        // 5,000 AMM swaps: the last partitions shrink to an eighth.
        let capacities_of = |total: u64, txs: usize| {
            let capacities = capacities(total, 2, txs);
            let largest = total / (2 * partitions_per_thread(txs) as u64);
            let (_, others) = capacities.split_last().unwrap();
            (largest, *others.iter().min().unwrap())
        };
        let (largest, smallest) = capacities_of(450_000_000, 5_000);
        assert_eq!(smallest, largest / SMALLEST_SHARE);
        // 5,000 transfers: an eighth would be under SMALLEST_GAS.
        let (largest, smallest) = capacities_of(105_000_000, 5_000);
        assert!(largest / SMALLEST_SHARE < SMALLEST_GAS);
        assert_eq!(smallest, SMALLEST_GAS);
        // 380 payouts (fixture 5891667): half the largest, as before.
        let (largest, smallest) = capacities_of(7_980_000, 380);
        assert_eq!(smallest, largest.div_ceil(2));
    }

    /// Packs `gas`, joining each pair of `joined` transactions.
    fn packed(gas: &[u64], joined: &[(TxIdx, TxIdx)], threads: usize) -> Partitions {
        let mut components = UnionFind::new(gas.len());
        for &(a, b) in joined {
            components.union(a, b);
        }
        pack(gas, &mut components, threads).0
    }

    #[test]
    fn packing_puts_every_transaction_in_one_partition_heaviest_first() {
        let gas = vec![21_000; 5_000];
        let partitions = packed(&gas, &[], 2);
        let loads: Vec<usize> = partitions.txs.iter().map(Vec::len).collect();
        assert!(loads.windows(2).all(|w| w[0] >= w[1]), "{loads:?}");
        assert!(loads.last() < loads.first(), "{loads:?}");
        assert_eq!(loads.iter().sum::<usize>(), 5_000);
        for (partition, txs) in partitions.txs.iter().enumerate() {
            assert!(txs.is_sorted(), "partition {partition} out of block order");
            for &tx in txs {
                assert_eq!(partitions.partition_of[tx] as usize, partition);
            }
        }
        assert!(
            (partitions.bound - 2.0).abs() < 1e-9,
            "{}",
            partitions.bound
        );
    }

    #[test]
    fn a_heavy_component_is_claimed_first_and_bounds_the_speedup() {
        // Transactions 3, 5 and 7 (more than half the gas) form one
        // component.
        let mut gas = vec![10; 40];
        gas[3] = 200;
        gas[5] = 200;
        gas[7] = 100;
        let partitions = packed(&gas, &[(3, 5), (5, 7)], 2);
        assert_eq!(partitions.partition_of[3], 0);
        assert_eq!(partitions.partition_of[7], 0);
        let total: u64 = gas.iter().sum();
        assert!((partitions.bound - total as f64 / 500.0).abs() < 1e-9);
    }

    /// The keys' owners go with the partitions only where no key was
    /// guessed (see `footprint::Ownership`).
    #[test]
    fn guessed_keys_own_no_account() {
        let joined = |unpredicted| {
            let mut joined = Joined::new(2);
            joined.join(ChunkKeys {
                digests: vec![1, 2, 3, 4],
                ends: vec![2, 4],
                gas: vec![21_000; 2],
                unpredicted,
            });
            joined
        };
        let owners = |unpredicted, contract_calls| {
            let (partitions, _) = joined(unpredicted).pack(2, contract_calls);
            let keys = (0..2).map(|tx| partitions.keys.of(tx).len()).sum::<usize>();
            (partitions.owners.len(), keys)
        };
        assert_eq!(owners(0, false), (4, 4));
        assert_eq!(owners(1, false), (0, 0));
        assert_eq!(owners(0, true), (0, 0));
    }

    /// Each transaction's keys are found in its chunk, across chunks, and
    /// a transaction with none (or beyond the plan) has none.
    #[test]
    fn each_transaction_finds_its_own_keys() {
        let txs = CHUNK + 2;
        let mut joined = Joined::new(txs);
        let chunk = |range: std::ops::Range<usize>| {
            let mut keys = ChunkKeys::default();
            for tx in range {
                // Transaction 1 has no key; the others their index twice.
                if tx != 1 {
                    keys.digests.extend([tx as u64 * 2, tx as u64 * 2 + 1]);
                }
                keys.ends.push(keys.digests.len() as u32);
                keys.gas.push(21_000);
            }
            keys
        };
        joined.join(chunk(0..CHUNK));
        joined.join(chunk(CHUNK..txs));
        let (partitions, _) = joined.pack(2, false);
        assert_eq!(partitions.keys.of(0), [0, 1]);
        assert_eq!(partitions.keys.of(1), [] as [u64; 0]);
        assert_eq!(partitions.keys.of(2), [4, 5]);
        assert_eq!(partitions.keys.of(CHUNK - 1), [510, 511]);
        assert_eq!(partitions.keys.of(CHUNK + 1), [514, 515]);
        assert_eq!(partitions.keys.of(txs), [] as [u64; 0]);
    }

    #[test]
    fn union_find_joins_transitively() {
        let mut sets = UnionFind::new(5);
        sets.union(0, 3);
        sets.union(3, 4);
        assert_eq!(sets.find(4), sets.find(0));
        assert_ne!(sets.find(1), sets.find(0));
        assert_ne!(sets.find(1), sets.find(2));
    }

    #[test]
    fn digests_of_nearby_addresses_differ() {
        let digests: std::collections::HashSet<u64> = (0u8..=255)
            .map(|i| {
                let mut bytes = [0u8; 20];
                bytes[19] = i;
                Key::Account(Address::from(bytes)).digest()
            })
            .collect();
        assert_eq!(digests.len(), 256);
    }
}
