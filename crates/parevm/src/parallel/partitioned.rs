//! Running a block as independent partitions ([`partition`](super::partition)):
//! each partition runs on its own thread, in block order, over a plain revm
//! `State` cache of the pre-block state (as the sequential executor runs a
//! whole block), with no multi-version memory and nothing shared while it
//! runs.
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
//! payments ([`payout`](super::payout)): each of its transfers is served the
//! sender at the nonce it carries, and anything else observing the sender
//! invalidates the run.

use super::{
    fee_credit::{FeeCreditDb, LazyBeneficiary},
    footprint::{Access, Validation},
    helpers::{Claims, panic_message, run_with_helpers},
    mv_memory::lock,
    partition::Partitions,
    payout::PayoutSender,
    types::TxIdx,
    vm::{Executed, FinishedTx},
};
use crate::{
    AccountChange, AccountChanges, AccountState, BlockInput, ExecutionError, StateChanges,
    StateSource,
    receipt::BloomMemo,
    state::{OverlayState, StateError},
};
use alloy_consensus::{Transaction as _, Typed2718};
use alloy_evm::FromRecoveredTx;
use alloy_primitives::{Address, B256, U256};
use revm::{
    Database, DatabaseCommit,
    bytecode::Bytecode,
    context::{Context, TxEnv, result::EVMError},
    context_interface::{ContextSetters, ContextTr, JournalTr},
    database::{State, TransitionState},
    database_interface::bal::EvmDatabaseError,
    handler::{Handler, MainBuilder, MainContext, MainnetContext, MainnetEvm},
    primitives::{KECCAK_EMPTY, hardfork::SpecId},
    state::{AccountInfo, EvmState},
};
use std::{
    collections::{BTreeMap, btree_map::Entry},
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

/// The pre-block state as a partition's cache sees it, recording every
/// location fetched.
struct Recording<'s, S: ?Sized> {
    source: &'s S,
    reads: Vec<Access>,
}

impl<S: StateSource + ?Sized> Database for Recording<'_, S> {
    type Error = StateError;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, StateError> {
        self.reads.push(Access::Account(address));
        self.source.account(&address)
    }
    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, StateError> {
        self.source.code_by_hash(&code_hash)
    }
    fn storage(&mut self, address: Address, slot: U256) -> Result<U256, StateError> {
        self.reads.push(Access::Slot(address, slot));
        self.source.storage(&address, &slot)
    }
    fn block_hash(&mut self, number: u64) -> Result<B256, StateError> {
        self.source.block_hash(number)
    }
}

/// An account's fields as a transaction first loaded them.
struct Loaded {
    address: Address,
    balance: U256,
    nonce: u64,
    code_hash: B256,
}

/// The database of one partition's EVM: its cache, with the beneficiary
/// served as a zero-balance placeholder while revm credits a fee, and the
/// payout sender served to its own transfers at their nonces.
struct PartitionDb<'s, S: ?Sized> {
    cache: State<Recording<'s, S>>,
    beneficiary: Address,
    crediting_fee: bool,
    /// The block's payout sender, if it has one.
    payout: Option<Address>,
    /// The nonce of the payout sender's transfer now running, if one is.
    payout_nonce: Option<u64>,
    /// The payout sender's balance as served to its transfer now running.
    payout_served: U256,
    /// A transaction read the beneficiary other than to credit its fee, or
    /// the payout sender other than as the sender of its own transfer.
    observed: bool,
    /// The accounts the current transaction loaded, to tell which it changed.
    loaded: Vec<Loaded>,
}

impl<S: StateSource + ?Sized> FeeCreditDb for PartitionDb<'_, S> {
    fn crediting_fee(&mut self, tip: Option<u128>) {
        // Even a zero fee is served the placeholder: after EIP-161 touching
        // an existing beneficiary with nothing changes nothing (the caller
        // rules out an existing empty one).
        self.crediting_fee = tip.is_some();
    }
}

impl<S: StateSource + ?Sized> Database for PartitionDb<'_, S> {
    type Error = StateError;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, StateError> {
        let info = self.cache.basic(address).map_err(state_error)?;
        if Some(address) == self.payout
            && let Some(nonce) = self.payout_nonce
        {
            // Its own transfer: the nonce it carries is the sender's in
            // sequence, and the balance covers it (see `payout`); what it
            // pays is summed from the balance served.
            let mut served = info.unwrap_or_default();
            served.nonce = nonce;
            self.payout_served = served.balance;
            return Ok(Some(served));
        }
        self.observed |= Some(address) == self.payout && address != self.beneficiary;
        if address == self.beneficiary {
            if self.crediting_fee {
                // Never observed, only credited: the credit is the fee.
                let mut placeholder = info.unwrap_or_default();
                placeholder.balance = U256::ZERO;
                return Ok(Some(placeholder));
            }
            self.observed = true;
        }
        if let Some(info) = &info {
            self.loaded.push(Loaded {
                address,
                balance: info.balance,
                nonce: info.nonce,
                code_hash: info.code_hash,
            });
        }
        Ok(info)
    }
    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, StateError> {
        self.cache.code_by_hash(code_hash).map_err(state_error)
    }
    fn storage(&mut self, address: Address, slot: U256) -> Result<U256, StateError> {
        self.observed |= address == self.beneficiary || Some(address) == self.payout;
        self.cache.storage(address, slot).map_err(state_error)
    }
    fn block_hash(&mut self, number: u64) -> Result<B256, StateError> {
        self.cache.block_hash(number).map_err(state_error)
    }
}

/// The pre-block state's error out of the cache's wrapper of it.
fn state_error(error: EvmDatabaseError<StateError>) -> StateError {
    match error {
        EvmDatabaseError::Database(error) => error,
        EvmDatabaseError::Bal(error) => StateError::Other(error.to_string()),
    }
}

/// What a partition produced.
struct PartitionOutput {
    /// Its transactions' results, in its order.
    results: Vec<FinishedTx>,
    /// The beneficiary's fees from its transactions.
    fees: U256,
    /// The change to the payout sender's balance (a wrapping sum: it pays).
    paid: U256,
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
    /// Where each partition splits its account changes, for merging them in
    /// shares side by side ([`share_bounds`]): share `i` holds the
    /// addresses from bound `i - 1` (from zero, for the first) up to bound
    /// `i` (excluded; up to the last address, for the last).
    bounds: Vec<Address>,
    /// The block's payout sender, if its payments are summed.
    payout: Option<Address>,
}

impl<S: ?Sized> PartitionContext<'_, S> {
    fn fail(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }

    fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }
}

/// Whether `block` may run as partitions at all: after EIP-161 (so that a
/// zero fee leaves an existing beneficiary alone) and with a beneficiary
/// that is not an existing empty account (which a zero fee would delete).
pub(crate) fn supports<S: StateSource + ?Sized>(
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
pub(crate) struct Settlement<'a> {
    /// Balance credits after the transactions (rewards, withdrawals).
    pub credits: &'a [(Address, U256)],
    /// The block's payout sender, if its payments are summed (the
    /// partitions must have been planned with it).
    pub payout: Option<&'a PayoutSender>,
}

/// The threads a partitioned block runs on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Threads {
    /// The workers that run partitions (and assemble the block).
    pub workers: usize,
    /// The threads that can run at once: the assembly merges the accounts
    /// in as many shares.
    pub at_once: usize,
}

/// Runs `block` as `partitions` on `threads`, and settles the credits and the payout
/// sender's payments of `settlement` after it. Each partition is validated
/// as it runs; then, while
/// the state changes are assembled, the transactions' results are passed
/// in block order to `on_results` (see [`Assembly`]). Returns what
/// `on_results` returned and the state changes (not yet including
/// post-block system calls), or `None` if the partitions turned out not to
/// be independent.
pub(crate) fn execute<S: StateSource + ?Sized, T: Send>(
    block: &BlockInput,
    state: &S,
    pre: &StateChanges,
    threads: Threads,
    partitions: &Partitions,
    settlement: Settlement<'_>,
    on_results: impl FnOnce(InBlockOrder<'_>) -> T + Send,
) -> Result<Option<(T, StateChanges)>, ExecutionError> {
    let Settlement { credits, payout } = settlement;
    let ctx = PartitionContext {
        block,
        state,
        pre,
        failed: AtomicBool::new(false),
        bounds: share_bounds(block, threads.at_once),
        payout: payout.map(|p| p.address),
    };
    let threads = threads.workers;
    let outputs = run_partitions(&ctx, threads, &partitions.txs)?;
    if ctx.failed() {
        return Ok(None);
    }
    let mut results = Vec::with_capacity(outputs.len());
    let mut shares: Vec<Vec<_>> = (0..=ctx.bounds.len()).map(|_| Vec::new()).collect();
    let (mut fees, mut paid) = (U256::ZERO, U256::ZERO);
    for output in outputs {
        results.push(output.results.into_iter());
        for (share, accounts) in shares.iter_mut().zip(output.accounts) {
            share.push(accounts);
        }
        fees = fees.wrapping_add(output.fees);
        paid = paid.wrapping_add(output.paid);
    }
    // The partitions were validated as they ran; the assembly's tasks are
    // left (see `Assembly`). The first share's merge makes room for the
    // others, which the build appends to it, and for the accounts only the
    // pre-block calls and the credits change (the beneficiary, the payout
    // sender, withdrawals), which it merges in.
    let lengths = shares
        .iter()
        .map(|runs| runs.iter().map(Vec::len).sum::<usize>());
    let settled = pre.accounts.len() + credits.len() + 2;
    let others = lengths.skip(1).sum::<usize>() + settled;
    let merges: Vec<Merge> = shares
        .into_iter()
        .enumerate()
        .map(|(index, runs)| Merge::new(runs, if index == 0 { others } else { 0 }))
        .collect();
    let assembly = Assembly {
        block,
        state,
        pre,
        credits,
        fees,
        payout: payout.map(|p| (p.address, paid, p.final_nonce)),
        hand_over_input: Mutex::new(Some((
            InBlockOrder {
                partition_of: &partitions.partition_of,
                next: 0,
                results,
            },
            on_results,
        ))),
        handed_over: Mutex::new(None),
        claims: Claims::new(merges.len() + 1),
        merges,
        build_claimed: AtomicBool::new(false),
        built: Mutex::new(None),
    };
    let assemble = || assembly.run();
    let helpers = threads.min(assembly.merges.len() + 1).saturating_sub(1);
    run_with_helpers(helpers, |_| assemble(), assemble);
    let missing = || ExecutionError::Internal("partitioned run did not finish".into());
    let handed_over = assembly.handed_over.into_inner();
    let built = assembly.built.into_inner();
    let output = handed_over
        .unwrap_or_else(|e| e.into_inner())
        .ok_or_else(missing)?;
    let changes = built
        .unwrap_or_else(|e| e.into_inner())
        .ok_or_else(missing)??;
    Ok(Some((output, changes)))
}

/// Merged accounts, in address order, and whether any carries code.
type Merged = (Vec<(Address, AccountChange)>, bool);

/// One share's account changes from each partition, in address order, and
/// the spare room its merge leaves (for the other shares, appended to it).
type ShareRuns = (Vec<Vec<(Address, AccountChange)>>, usize);

/// Merging one share of the accounts (see `PartitionContext::bounds`): its
/// runs until a thread claims them, then what they merged into, and
/// whether that is done.
struct Merge {
    runs: Mutex<Option<ShareRuns>>,
    merged: Mutex<Option<Merged>>,
    done: AtomicBool,
}

impl Merge {
    /// A merge of `runs` leaving `spare` more room.
    fn new(runs: Vec<Vec<(Address, AccountChange)>>, spare: usize) -> Self {
        Self {
            runs: Mutex::new(Some((runs, spare))),
            merged: Mutex::new(None),
            done: AtomicBool::new(false),
        }
    }
}

/// Assembling a partitioned block once its partitions ran, on the caller
/// and helpers, as many threads as can run at once. Its tasks: merging
/// each share of the accounts, handing the results over in block order
/// (`on_results`: the receipts), and, once every share is merged,
/// building the state changes from them. Each is claimed once, by
/// whichever thread gets to it, the merges first: the thread that finishes
/// its merge first hands over while the others merge, and the last to
/// finish a merge builds. (With the caller building after both merges of
/// two halves, it sat idle while the helper merged a token's thousands of
/// slots, then the helper handed over alone: 1.5 ms of assembly on 5,000
/// ERC-20 transfers.) A helper that never starts leaves every task to the
/// caller, and a merge marks itself done even if it panics, so no thread
/// waits forever.
struct Assembly<'a, S: ?Sized, R, T> {
    block: &'a BlockInput,
    state: &'a S,
    pre: &'a StateChanges,
    credits: &'a [(Address, U256)],
    /// The fees the partitions owe the beneficiary.
    fees: U256,
    /// The payout sender, the change to its balance (a wrapping sum) and
    /// its nonce after the block.
    payout: Option<(Address, U256, u64)>,
    hand_over_input: Mutex<Option<(InBlockOrder<'a>, R)>>,
    handed_over: Mutex<Option<T>>,
    /// The merges, then handing over.
    claims: Claims,
    /// Each share's merge, in address order.
    merges: Vec<Merge>,
    build_claimed: AtomicBool,
    built: Mutex<Option<Result<StateChanges, ExecutionError>>>,
}

impl<S: StateSource + ?Sized, R: FnOnce(InBlockOrder<'_>) -> T, T> Assembly<'_, S, R, T> {
    /// Runs the tasks this thread claims, then builds the state changes
    /// unless another thread does.
    fn run(&self) {
        self.claims.run(|index| match self.merges.get(index) {
            Some(merge) => Self::merge(merge),
            None => self.hand_over(),
        });
        self.build();
    }

    /// Merges one share of the accounts.
    fn merge(merge: &Merge) {
        let Some((runs, spare)) = lock(&merge.runs).take() else {
            return;
        };
        let _done = SetOnDrop(&merge.done);
        *lock(&merge.merged) = Some(merge_accounts(runs, spare));
    }

    /// Hands the results over.
    fn hand_over(&self) {
        let Some((results, on_results)) = lock(&self.hand_over_input).take() else {
            return;
        };
        *lock(&self.handed_over) = Some(on_results(results));
    }

    /// Builds the state changes once every share is merged, unless another
    /// thread has claimed it.
    fn build(&self) {
        // Every merge is claimed by now: this thread claimed past them.
        for merge in &self.merges {
            wait_for(&merge.done);
        }
        if self.build_claimed.swap(true, Ordering::AcqRel) {
            return;
        }
        let merged: Option<Vec<Merged>> =
            self.merges.iter().map(|m| lock(&m.merged).take()).collect();
        *lock(&self.built) = merged.map(|shares| {
            let mut shares = shares.into_iter();
            let (mut accounts, mut code) = shares.next().unwrap_or_default();
            for (more, more_code) in shares {
                accounts.extend(more);
                code |= more_code;
            }
            let beneficiary = [(self.block.header.beneficiary, self.fees)];
            let payout = self.payout.map(|(address, paid, _)| (address, paid));
            let credits = beneficiary
                .iter()
                .chain(payout.as_slice())
                .chain(self.credits)
                .filter(|(_, v)| !v.is_zero());
            let nonce = self.payout.map(|(address, _, nonce)| (address, nonce));
            // The shares in turn: in address order.
            let accounts = (AccountChanges::from_sorted(accounts), code);
            finish_changes(self.state, self.pre, accounts, credits, nonce)
        });
    }
}

/// Yields until `flag` is set.
fn wait_for(flag: &AtomicBool) {
    while !flag.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
}

/// The transactions' results in block order, drawn from the partitions'.
pub(crate) struct InBlockOrder<'a> {
    partition_of: &'a [u32],
    next: TxIdx,
    results: Vec<std::vec::IntoIter<FinishedTx>>,
}

impl Iterator for InBlockOrder<'_> {
    type Item = FinishedTx;

    fn next(&mut self) -> Option<FinishedTx> {
        let partition = *self.partition_of.get(self.next)? as usize;
        self.next += 1;
        self.results.get_mut(partition)?.next()
    }
}

/// Runs every partition on `threads` threads; `Err` if any failed.
fn run_partitions<S: StateSource + ?Sized>(
    ctx: &PartitionContext<'_, S>,
    threads: usize,
    partitions: &[Vec<TxIdx>],
) -> Result<Vec<PartitionOutput>, ExecutionError> {
    let outputs: Vec<Mutex<Option<Result<PartitionOutput, ExecutionError>>>> =
        partitions.iter().map(|_| Mutex::new(None)).collect();
    // Each partition is validated while it runs, by the thread that runs it
    // (see `run_partition`): a conflict stops every partition early.
    let validation = Validation::new(partitions.iter().map(Vec::len).sum());
    let run = |index: usize| {
        // A panic (a bug) fails the block instead of the process.
        let output = catch_unwind(AssertUnwindSafe(|| {
            run_partition(ctx, &validation, index, &partitions[index])
        }))
        .unwrap_or_else(|panic| {
            let message = panic_message(panic.as_ref());
            Err(ExecutionError::Internal(format!(
                "partition panicked: {message}"
            )))
        });
        if output.is_err() {
            ctx.fail();
        }
        *lock(&outputs[index]) = Some(output);
    };
    let claims = Claims::new(partitions.len());
    let claim_and_run = || claims.run(&run);
    run_with_helpers(
        threads.min(partitions.len()).saturating_sub(1),
        |_| claim_and_run(),
        claim_and_run,
    );
    outputs
        .into_iter()
        .map(|o| o.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect::<Option<Result<Vec<_>, _>>>()
        .ok_or_else(|| ExecutionError::Internal("a partition did not run".into()))?
}

/// Merges the partitions' account changes (each run in address order) into
/// one run, with `spare` more capacity, and tells whether any change
/// carries code. Validation showed that partitions changing one account
/// changed only different slots of it (any other change is a write of the
/// account, which the others' storage accesses would have read).
fn merge_accounts(
    runs: Vec<Vec<(Address, AccountChange)>>,
    spare: usize,
) -> (Vec<(Address, AccountChange)>, bool) {
    let mut any_code = false;
    let mut merged: Vec<(Address, AccountChange)> =
        Vec::with_capacity(runs.iter().map(Vec::len).sum::<usize>() + spare);
    let mut runs: Vec<_> = runs.into_iter().map(|r| r.into_iter().peekable()).collect();
    let mut shared_storage = Vec::new();
    loop {
        let mut next: Option<(usize, Address)> = None;
        for (index, run) in runs.iter_mut().enumerate() {
            if let Some((address, _)) = run.peek()
                && next.is_none_or(|(_, lowest)| *address < lowest)
            {
                next = Some((index, *address));
            }
        }
        let Some((address, change)) = next.and_then(|(index, _)| runs[index].next()) else {
            break;
        };
        any_code |= has_code(&change);
        match merged.last_mut() {
            Some((last, existing)) if *last == address => {
                shared_storage.push((merged.len() - 1, change.storage));
            }
            _ => merged.push((address, change)),
        }
    }
    join_storage(&mut merged, shared_storage);
    (merged, any_code)
}

/// The bounds between `count` shares of about as many of the accounts
/// `block` changes each: quantiles of the senders and recipients of up to
/// 128 of its transactions, evenly spaced. (Generated addresses are not
/// hashes: a fixed split at `0x80..` left one half empty on the synthetic
/// workloads.)
fn share_bounds(block: &BlockInput, count: usize) -> Vec<Address> {
    let txs = &block.transactions;
    let step = txs.len().div_ceil(128).max(1);
    let mut sample: Vec<Address> = txs
        .iter()
        .step_by(step)
        .flat_map(|tx| {
            [
                Some(tx.signer()),
                alloy_consensus::Transaction::to(tx.inner()),
            ]
        })
        .flatten()
        .collect();
    sample.sort_unstable();
    let count = count.clamp(1, sample.len().max(1));
    let mut bounds: Vec<Address> = (1..count)
        .map(|i| sample[i * sample.len() / count])
        .collect();
    // A repeated address (a hot sender) leaves an empty share, not a wrong one.
    bounds.dedup();
    bounds
}

/// `accounts` (in address order) split at `bounds` into their shares.
fn split_into_shares(
    mut accounts: Vec<(Address, AccountChange)>,
    bounds: &[Address],
) -> Vec<Vec<(Address, AccountChange)>> {
    let mut shares = Vec::with_capacity(bounds.len() + 1);
    for bound in bounds.iter().rev() {
        let at = accounts.partition_point(|(address, _)| address < bound);
        shares.push(accounts.split_off(at));
    }
    shares.push(accounts);
    shares.reverse();
    shares
}

/// Sets its flag when dropped.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Adds to `merged`'s accounts the slots other partitions changed in them
/// (`shared`: an index into `merged` and the slots). Inserting them one by
/// one cost an ERC-20 token's 5,000 slots from 8 partitions about 1 ms on
/// the 2-core VM; each account's runs are instead concatenated, sorted
/// (runs are cheap to sort) and bulk-built.
fn join_storage(
    merged: &mut [(Address, AccountChange)],
    shared: Vec<(usize, BTreeMap<U256, U256>)>,
) {
    let mut shared = shared.into_iter().peekable();
    while let Some((index, first)) = shared.next() {
        let storage = &mut merged[index].1.storage;
        let mut slots: Vec<(U256, U256)> = std::mem::take(storage).into_iter().collect();
        slots.extend(first);
        while let Some((_, more)) = shared.next_if(|(next, _)| *next == index) {
            slots.extend(more);
        }
        slots.sort_by_key(|(slot, _)| *slot);
        *storage = slots.into_iter().collect();
    }
}

/// Accesses a partition gathers before checking them against the others':
/// a few transactions' worth. Checking after every transaction would take
/// the validation's lock thousands of times a block; checking only at the
/// partition's end let a block whose prediction was wrong (on mainnet, calls
/// into different contracts meeting in a shared one) run its partitions to
/// the end before Block-STM started over.
const CHECK_BATCH: usize = 64;

/// Runs partition `me`'s transactions in order and returns what they
/// produced, checking what they read and wrote against the other partitions
/// as it goes (failing the run, and stopping, on a conflict).
fn run_partition<S: StateSource + ?Sized>(
    ctx: &PartitionContext<'_, S>,
    validation: &Validation,
    me: usize,
    txs: &[TxIdx],
) -> Result<PartitionOutput, ExecutionError> {
    let base = OverlayState::new(ctx.state, ctx.pre);
    let mut run = PartitionRun::new(ctx, &base, txs.len());
    for &index in txs {
        if ctx.failed() || run.execute(ctx, index)? == Step::Stop {
            break;
        }
        if run.accesses() >= CHECK_BATCH && !run.check(ctx, validation, me) {
            break;
        }
    }
    if !ctx.failed() {
        run.check(ctx, validation, me);
    }
    run.finish(ctx)
}

/// Whether a partition goes on after a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Go on with the partition's next transaction.
    Next,
    /// The run cannot stand (the context is failed): stop.
    Stop,
}

/// One partition's run: its EVM over its own cache of the pre-block state
/// (`B`), and what its transactions produced so far.
struct PartitionRun<'b, B: StateSource + ?Sized> {
    evm: MainnetEvm<MainnetContext<PartitionDb<'b, B>>>,
    handler: LazyBeneficiary<PartitionDb<'b, B>>,
    spec: SpecId,
    results: Vec<FinishedTx>,
    /// What the transactions since the last check wrote.
    writes: Vec<Access>,
    /// The beneficiary's fees so far.
    fees: U256,
    /// The change to the payout sender's balance so far.
    paid: U256,
    blooms: BloomMemo,
}

impl<'b, B: StateSource + ?Sized> PartitionRun<'b, B> {
    /// A run of `txs` transactions of `ctx`'s block over `base`.
    fn new<S: ?Sized>(ctx: &PartitionContext<'_, S>, base: &'b B, txs: usize) -> Self {
        let block = ctx.block;
        let db = PartitionDb {
            cache: crate::evm::state_cache(
                Recording {
                    source: base,
                    reads: Vec::with_capacity(CHECK_BATCH * 2),
                },
                txs,
            ),
            beneficiary: block.header.beneficiary,
            crediting_fee: false,
            payout: ctx.payout,
            payout_nonce: None,
            payout_served: U256::ZERO,
            observed: false,
            loaded: Vec::new(),
        };
        let env = block.evm_env();
        let spec = env.cfg_env.spec;
        let evm = Context::mainnet()
            .with_db(db)
            .with_block(env.block_env)
            .with_cfg(env.cfg_env)
            .build_mainnet();
        Self {
            evm,
            handler: LazyBeneficiary::new(),
            spec,
            results: Vec::with_capacity(txs),
            writes: Vec::with_capacity(CHECK_BATCH * 2),
            fees: U256::ZERO,
            paid: U256::ZERO,
            blooms: BloomMemo::new(),
        }
    }

    /// Executes transaction `index` of the block and commits it to the
    /// partition's cache; [`Step::Stop`] (with the context failed) if the
    /// partition's view of the state cannot stand for it.
    fn execute<S: ?Sized>(
        &mut self,
        ctx: &PartitionContext<'_, S>,
        index: TxIdx,
    ) -> Result<Step, ExecutionError> {
        let tx = &ctx.block.transactions[index];
        let db = self.evm.ctx.journal_mut().db_mut();
        db.loaded.clear();
        db.payout_nonce = (Some(tx.signer()) == db.payout).then(|| tx.nonce());
        self.evm
            .ctx
            .set_tx(TxEnv::from_recovered_tx(tx.inner(), tx.signer()));
        let result = self.handler.run(&mut self.evm);
        let mut state = self.evm.ctx.journal_mut().finalize();
        let db = self.evm.ctx.journal_mut().db_mut();
        if db.observed {
            // This partition's view of the beneficiary lacks the others'
            // fees: the run cannot stand, so stop every partition now.
            return Ok(stop(ctx));
        }
        let result = match result {
            Ok(result) => result,
            Err(EVMError::Transaction(_)) if db.payout_nonce.is_some() => {
                // The payout sender's transfers were to be valid whatever
                // ran before them; this one is not, so the nonces the
                // others were served may be wrong.
                return Ok(stop(ctx));
            }
            Err(EVMError::Transaction(invalid)) => {
                self.results.push(FinishedTx::invalid(&invalid));
                return Ok(Step::Next);
            }
            Err(EVMError::Database(error)) => return Err(error.into()),
            Err(other) => {
                return Err(ExecutionError::Evm {
                    index,
                    message: other.to_string(),
                });
            }
        };
        // What the summed accounts gained (or paid) over what they were served.
        let payout_served = db.payout_nonce.map(|_| db.payout_served);
        if payout_served.is_some() && ran_code(&state, tx.kind().to()) {
            // A payout to code (deployed in the block, before it in this
            // partition): the code could have observed the sender.
            return Ok(stop(ctx));
        }
        if let Some(beneficiary) = state.remove(&db.beneficiary) {
            let served = match payout_served {
                Some(served) if db.payout == Some(db.beneficiary) => served,
                _ => U256::ZERO,
            };
            self.fees = self
                .fees
                .wrapping_add(beneficiary.info.balance.wrapping_sub(served));
        }
        if let (Some(served), Some(payout)) = (payout_served, db.payout)
            && let Some(sender) = state.remove(&payout)
        {
            self.paid = self
                .paid
                .wrapping_add(sender.info.balance.wrapping_sub(served));
        }
        record_writes(&state, &db.loaded, self.spec, &mut self.writes);
        db.cache.commit(state);
        let executed = Executed::new(result, &mut self.blooms);
        let finished = FinishedTx::executed(executed, tx.ty()).map_err(|message| {
            ExecutionError::Internal(format!("transaction {index}: {message}"))
        })?;
        self.results.push(finished);
        Ok(Step::Next)
    }

    /// Reads and writes gathered since the last check.
    fn accesses(&mut self) -> usize {
        let reads = &self.evm.ctx.journal_mut().db_mut().cache.database.reads;
        reads.len() + self.writes.len()
    }

    /// [`check`]s the accesses gathered since the last check.
    fn check<S: ?Sized>(
        &mut self,
        ctx: &PartitionContext<'_, S>,
        validation: &Validation,
        me: usize,
    ) -> bool {
        let reads = &mut self.evm.ctx.journal_mut().db_mut().cache.database.reads;
        check(ctx, validation, me, reads, &mut self.writes)
    }

    /// What the partition produced: its results, fees and payouts, and its
    /// changes (unless the run failed, which discards them).
    fn finish<S: StateSource + ?Sized>(
        mut self,
        ctx: &PartitionContext<'_, S>,
    ) -> Result<PartitionOutput, ExecutionError> {
        let db = self.evm.ctx.journal_mut().db_mut();
        let transitions = db.cache.transition_state.take().unwrap_or_default();
        let accounts = if ctx.failed() {
            Default::default()
        } else {
            split_into_shares(normalized(ctx, &transitions)?, &ctx.bounds)
        };
        Ok(PartitionOutput {
            results: self.results,
            fees: self.fees,
            paid: self.paid,
            accounts,
        })
    }
}

/// Fails the run: [`Step::Stop`].
fn stop<S: ?Sized>(ctx: &PartitionContext<'_, S>) -> Step {
    ctx.fail();
    Step::Stop
}

/// Checks partition `me`'s accesses since its last check against the other
/// partitions' and forgets them; on a conflict fails the run and returns
/// false.
fn check<S: ?Sized>(
    ctx: &PartitionContext<'_, S>,
    validation: &Validation,
    me: usize,
    reads: &mut Vec<Access>,
    writes: &mut Vec<Access>,
) -> bool {
    let conflict = validation.conflicts(me, reads, writes);
    reads.clear();
    writes.clear();
    if conflict {
        ctx.fail();
    }
    !conflict
}

/// Whether `to` holds code after a transaction (per revm's `state` of it),
/// or cannot be told to hold none (it is missing from it).
fn ran_code(state: &EvmState, to: Option<&Address>) -> bool {
    to.and_then(|to| state.get(to))
        .is_none_or(|account| account.info.code_hash != KECCAK_EMPTY)
}

/// Adds what one transaction wrote (per revm's `state` of it; `loaded` as
/// it first read each account) to `writes`.
fn record_writes(state: &EvmState, loaded: &[Loaded], spec: SpecId, writes: &mut Vec<Access>) {
    for (address, account) in state {
        if !account.is_touched() {
            continue;
        }
        let info = &account.info;
        let unchanged = loaded
            .iter()
            .find(|l| l.address == *address)
            .is_some_and(|l| {
                l.balance == info.balance
                    && l.nonce == info.nonce
                    && l.code_hash == info.code_hash
                    && !account.is_selfdestructed()
                    && !(account.is_empty() && spec.is_enabled_in(SpecId::SPURIOUS_DRAGON))
            });
        if !unchanged {
            writes.push(Access::Account(*address));
        }
        for (slot, value) in &account.storage {
            if value.is_changed() {
                writes.push(Access::Slot(*address, *slot));
            }
        }
    }
}

/// A partition's changes (revm's `transitions`) composed onto the pre-block
/// system calls' and reduced to what differs from the pre-block state, in
/// address order.
fn normalized<S: StateSource + ?Sized>(
    ctx: &PartitionContext<'_, S>,
    transitions: &TransitionState,
) -> Result<Vec<(Address, AccountChange)>, ExecutionError> {
    let codes = crate::changes::new_codes(transitions);
    let mut kept = Vec::with_capacity(transitions.transitions.len());
    for (address, account) in &transitions.transitions {
        let change = match ctx.pre.accounts.get(address) {
            // First loaded from the pre-block state itself (no system call
            // changed it), so the transition knows what it was.
            None => AccountChange::from_transition(address, account, &ctx.state, &codes)?,
            Some(pre) => {
                let mut composed = pre.clone();
                composed.then(AccountChange::from_revm(
                    account.info.as_ref(),
                    &account.storage,
                    account.status.was_destroyed(),
                ));
                let before = ctx.state.account_fields(address)?;
                composed.normalized(address, before.as_ref(), &ctx.state, &codes)?
            }
        };
        kept.extend(change.map(|change| (*address, change)));
    }
    Ok(crate::changes::sorted_by_address(kept))
}

/// The block's state changes: the partitions' `accounts` (with whether
/// any carries code), the pre-block system calls' changes to accounts no
/// partition touched, the balance `credits` (wrapping: a payout sender's
/// is what it paid) and the payout sender's `nonce` after the block,
/// normalized against the pre-block `state`.
fn finish_changes<'c, S: StateSource + ?Sized>(
    state: &S,
    pre: &StateChanges,
    (mut accounts, any_code): (AccountChanges, bool),
    credits: impl Iterator<Item = &'c (Address, U256)>,
    nonce: Option<(Address, u64)>,
) -> Result<StateChanges, ExecutionError> {
    // The few accounts no partition changed are gathered apart and added in
    // one pass: each insert would move every account above it.
    let mut added = BTreeMap::new();
    let mut revisit: Vec<Address> = Vec::new();
    for (address, change) in &pre.accounts {
        if !accounts.contains_key(address) {
            added.insert(*address, change.clone());
            revisit.push(*address);
        }
    }
    let mut settle = |address: Address, settle: &dyn Fn(AccountChange) -> AccountChange| {
        let change = match accounts.get_mut(&address) {
            Some(change) => change,
            None => match added.entry(address) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => entry.insert(unchanged(state, &address)?),
            },
        };
        *change = settle(std::mem::take(change));
        revisit.push(address);
        Ok::<_, ExecutionError>(())
    };
    for (address, amount) in credits {
        settle(*address, &|change| credited(change, *amount))?;
    }
    if let Some((address, nonce)) = nonce {
        settle(address, &|mut change| {
            // The sender exists: it had to cover its transfers.
            if let Some(info) = &mut change.info {
                info.nonce = nonce;
            }
            change
        })?;
    }
    accounts.merge_sorted(added.into_iter().collect(), |_, _| {});
    revisit.sort_unstable();
    revisit.dedup();
    // Scanning every account for code costs about as much as merging them
    // (0.25 ms each time on 10,000 transfers): only when some change has code.
    let any_code = any_code
        || revisit
            .iter()
            .any(|a| accounts.get(a).is_some_and(has_code));
    let codes_of = |accounts: &AccountChanges| match any_code {
        true => crate::changes::codes_of(accounts.values()),
        false => BTreeMap::new(),
    };
    let codes = codes_of(&accounts);
    let mut unchanged_now = Vec::new();
    for address in revisit {
        let Some(change) = accounts.get_mut(&address) else {
            continue;
        };
        let before = state.account_fields(&address)?;
        match std::mem::take(change).normalized(&address, before.as_ref(), &state, &codes)? {
            Some(normalized) => *change = normalized,
            None => unchanged_now.push(address),
        }
    }
    if !unchanged_now.is_empty() {
        accounts.retain(|address, _| unchanged_now.binary_search(address).is_err());
    }
    let codes = codes_of(&accounts);
    Ok(StateChanges { accounts, codes })
}

/// Whether `change` carries code (deployed in the block).
fn has_code(change: &AccountChange) -> bool {
    change.info.as_ref().is_some_and(|info| info.code.is_some())
}

/// An account as it is in `state`, as a change that changes nothing.
fn unchanged<S: StateSource + ?Sized>(
    state: &S,
    address: &Address,
) -> Result<AccountChange, ExecutionError> {
    Ok(AccountChange {
        info: state.account_fields(address)?.map(|info| AccountState {
            balance: info.balance,
            nonce: info.nonce,
            code_hash: info.code_hash,
            code: None,
        }),
        ..Default::default()
    })
}

/// `change` with `amount` more wei (creating the account if it is gone).
fn credited(mut change: AccountChange, amount: U256) -> AccountChange {
    match &mut change.info {
        Some(info) => info.balance = info.balance.wrapping_add(amount),
        None => {
            change.info = Some(AccountState {
                balance: amount,
                nonce: 0,
                code_hash: KECCAK_EMPTY,
                code: None,
            })
        }
    }
    change
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(n: u8) -> Address {
        Address::with_last_byte(n)
    }

    /// Each account lands in the share its bounds give, in order, with
    /// empty shares where bounds leave no account.
    #[test]
    fn accounts_split_at_the_bounds() {
        let accounts: Vec<_> = [1, 3, 5, 7, 9]
            .map(|n| (address(n), AccountChange::default()))
            .to_vec();
        let bounds = [address(3), address(4), address(8)];
        let shares = split_into_shares(accounts, &bounds);
        let addresses: Vec<Vec<u8>> = shares
            .iter()
            .map(|share| share.iter().map(|(a, _)| a.0[19]).collect())
            .collect();
        assert_eq!(addresses, vec![vec![1], vec![3], vec![5, 7], vec![9]]);
        assert_eq!(split_into_shares(Vec::new(), &[]), vec![Vec::new()]);
    }
}
