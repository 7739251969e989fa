//! Where results are merged: once every transaction is executed and
//! validated, every worker takes a share of assembling the block
//! ([`Assembly`]): the final incarnations' write sets are folded in block
//! order into the block's state changes (resolving commutative
//! increments), one share of the accounts per thread ([`Part`]), a large
//! block's write sets first walked in ranges of transactions that sort
//! their writes into the shares, while the receipts the workers built get
//! their cumulative gas.

use super::{
    block_gas::BlockGas,
    credit::Deltas,
    digest,
    helpers::{Claims, Idle},
    mv_memory::{MvMemory, lock},
    types::{Lifecycle, Location, TxIdx, WriteValue},
    vm::FinishedTx,
};
use crate::{
    BlockInput, ExecutionError, FallbackReason, TxResult,
    changes::{AccountChange, AccountChanges, AccountState, SlotChanges, StateChanges, codes_of},
    state::{OverlayState, StateError, StateSource},
};
use alloy_consensus::Transaction;
use alloy_primitives::{
    Address, B256, U256,
    map::{Entry, HashMap},
};
use revm::{bytecode::Bytecode, primitives::KECCAK_EMPTY, state::AccountInfo};
use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

/// Each transaction's result and receipt, with the block's gas used; or why
/// the block must run sequentially (a transaction does not fit in the
/// block's remaining gas).
pub(super) type Receipts = Result<(Vec<TxResult>, u64), FallbackReason>;

/// An assembled block: its transactions' results, its gas used and its
/// state changes.
pub(super) type Assembled = (Vec<TxResult>, u64, StateChanges);

/// What one task of an [`Assembly`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AssemblyTask {
    /// Walk the final write sets of one range of transactions, sorting
    /// their writes into the shares of the accounts.
    Walk(TxRange),
    /// Thread the cumulative gas through the receipts: one task, as it
    /// runs through them in order.
    Receipts,
    /// Fold the state changes of one share of the accounts: from every
    /// range's walk (which it waits for), or, without ranges, from its own
    /// walk of the whole block.
    Fold(Part),
}

/// Assembling a Block-STM block's results once its transactions are done,
/// by every worker: the write sets walked in one range of transactions per
/// thread that can run at once (where [`walks_in_ranges`]), the receipts,
/// and the state changes folded in one share of the accounts per such
/// thread. Tasks are claimed, not assigned ([`Claims`]), in
/// that order: a fold waits for every walk, which were all claimed before
/// it.
///
/// Walked in ranges, each write is walked once; folding a share can also
/// walk every write set itself, keeping its own accounts' writes, so that
/// with `n` shares the block's writes are walked `n` times. On 2 threads
/// the walk is half of a share's fold on mainnet fixture 14396881 (300 of
/// 530 us), and the ranges' assembly took 5-15% less there and on
/// 14029313; on blocks of 100-250 transactions, whose walks are short, it
/// took 30-60 us more (the folds wait for the other thread's walk, and
/// read the maps it wrote). So a block is walked in ranges when that
/// saves more than one walk ([`walks_in_ranges`]).
pub(super) struct Assembly {
    claims: Claims,
    /// Transactions in the block.
    transactions: usize,
    /// Each range's walk: its writes in one accumulator per share; none if
    /// each fold walks the block for its share.
    walked: Vec<Mutex<Vec<StateAccumulator>>>,
    /// Walks finished (or abandoned by a panic), for the folds to wait on.
    walks_done: AtomicUsize,
    receipts: Mutex<Option<Result<Receipts, ExecutionError>>>,
    folded: Vec<Mutex<Option<Result<FoldedPart, ExecutionError>>>>,
}

impl Assembly {
    /// An assembly of a block of `transactions`, folded in `parts` shares
    /// (at least one), and walked in as many ranges if
    /// [`walks_in_ranges`].
    pub(super) fn new(transactions: usize, parts: usize) -> Self {
        let parts = parts.max(1);
        let ranges = match walks_in_ranges(transactions, parts) {
            true => parts,
            false => 0,
        };
        Self {
            claims: Claims::new(ranges + 1 + parts),
            transactions,
            walked: (0..ranges).map(|_| Mutex::default()).collect(),
            walks_done: AtomicUsize::new(0),
            receipts: Mutex::default(),
            folded: (0..parts).map(|_| Mutex::default()).collect(),
        }
    }

    /// Runs the tasks this thread claims, until none is left: `walk` walks
    /// one range of transactions into one accumulator per share (or, given
    /// a share, into that share's alone), `receipts` builds the receipts,
    /// `fold` folds one share's accumulated writes.
    pub(super) fn run(
        &self,
        walk: impl Fn(TxRange, usize, Option<usize>) -> Vec<StateAccumulator>,
        receipts: impl Fn() -> Result<Receipts, ExecutionError>,
        fold: impl Fn(Part, StateAccumulator) -> Result<FoldedPart, ExecutionError>,
    ) {
        let parts = self.folded.len();
        self.claims.run(|index| match self.task(index) {
            AssemblyTask::Walk(range) => {
                let _done = WalkDone(&self.walks_done);
                *lock(&self.walked[range.index]) = walk(range, parts, None);
            }
            AssemblyTask::Receipts => *lock(&self.receipts) = Some(receipts()),
            AssemblyTask::Fold(part) => {
                let walk_all = || walk(TxRange::whole(self.transactions), parts, Some(part.index));
                let writes = match self.walked.is_empty() {
                    true => walk_all().pop().ok_or_else(missing_walk),
                    false => self.gather(part),
                };
                *lock(&self.folded[part.index]) = Some(writes.and_then(|w| fold(part, w)));
            }
        });
    }

    /// Task `index`, below the count of claims: the walks, the receipts,
    /// then the folds.
    fn task(&self, index: usize) -> AssemblyTask {
        let (ranges, parts) = (self.walked.len(), self.folded.len());
        match index {
            i if i < ranges => AssemblyTask::Walk(TxRange {
                index: i,
                count: ranges,
                transactions: self.transactions,
            }),
            i if i == ranges => AssemblyTask::Receipts,
            i => AssemblyTask::Fold(Part {
                index: i - ranges - 1,
                count: parts,
            }),
        }
    }

    /// `part`'s writes from every range, in block order, once every walk
    /// is done. Waits as an idle worker does: the walks were claimed
    /// before this fold, so they are running or done.
    fn gather(&self, part: Part) -> Result<StateAccumulator, ExecutionError> {
        let mut idle = Idle::default();
        while self.walks_done.load(Ordering::Acquire) < self.walked.len() {
            idle.wait();
        }
        let mut gathered = StateAccumulator::default();
        for range in &self.walked {
            let walked = lock(range).get_mut(part.index).map(std::mem::take);
            gathered.then(walked.ok_or_else(missing_walk)?);
        }
        Ok(gathered)
    }

    /// The receipts and the block's state changes, once every task ran;
    /// or why the block must run sequentially: a transaction does not fit
    /// in the block's gas, or a balance's lazy deltas could overflow.
    pub(super) fn finish(self) -> Result<Result<Assembled, FallbackReason>, ExecutionError> {
        let missing = |what: &str| ExecutionError::Internal(format!("{what} were not assembled"));
        let receipts = into_inner(self.receipts).ok_or_else(|| missing("receipts"))?;
        let (transactions, gas_used) = match receipts? {
            Ok(receipts) => receipts,
            Err(reason) => return Ok(Err(reason)),
        };
        let parts = self
            .folded
            .into_iter()
            .map(|slot| into_inner(slot).ok_or_else(|| missing("state changes"))?)
            .collect::<Result<Vec<_>, _>>()?;
        if parts.iter().any(|part| part.overflowed) {
            return Ok(Err(FallbackReason::BalanceOverflow));
        }
        Ok(Ok((
            transactions,
            gas_used,
            StateChanges::from_parts(parts),
        )))
    }
}

/// Whether a block of `transactions` folded in `parts` shares is walked
/// in ranges (see [`Assembly`]): always with more than 2 shares, which
/// would each walk it, and with 2 from [`RANGES_FROM_TXS`] transactions.
fn walks_in_ranges(transactions: usize, parts: usize) -> bool {
    parts > 2 || (parts == 2 && transactions >= RANGES_FROM_TXS)
}

/// Transactions from which a block folded in 2 shares is walked in ranges:
/// the mainnet fixtures' blocks of 100-250 transactions lost 30-60 us to
/// them, the two of 724 and 1,346 gained 50-100 us.
const RANGES_FROM_TXS: usize = 512;

fn missing_walk() -> ExecutionError {
    ExecutionError::Internal("a walk of the write sets failed".into())
}

/// Counts a walk as done when dropped, even by a panic, so that no fold
/// waits for it forever (the fold then finds its accumulators missing).
struct WalkDone<'a>(&'a AtomicUsize);

impl Drop for WalkDone<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}

/// What a task left in `slot`, however the task ended.
fn into_inner<T>(slot: Mutex<T>) -> T {
    slot.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// One of `count` shares of the accounts, by the address's digest, so that
/// the shares take equal work whatever the addresses. (Halves by address
/// range were uneven: the synthetic AMM block's pools and tokens all fell
/// in one, which took 21 ms against the other's 3 ms.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Part {
    index: usize,
    count: usize,
}

impl Part {
    /// The share of `count` that holds `address`.
    fn of(address: &Address, count: usize) -> usize {
        // The digest scaled to `0..count`: its high bits pick the share.
        let digest = u128::from(digest::address_digest(address));
        ((digest * count as u128) >> 64) as usize
    }

    /// Whether `address` is in this share.
    fn holds(self, address: &Address) -> bool {
        Self::of(address, self.count) == self.index
    }
}

/// One of `count` ranges of a block's `transactions`, about equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TxRange {
    index: usize,
    count: usize,
    transactions: usize,
}

impl TxRange {
    /// The whole block of `transactions`, as one range.
    fn whole(transactions: usize) -> Self {
        Self {
            index: 0,
            count: 1,
            transactions,
        }
    }

    /// The transactions of this range.
    fn range(self) -> std::ops::Range<TxIdx> {
        let bound = |index: usize| self.transactions * index / self.count;
        bound(self.index)..bound(self.index + 1)
    }
}

/// The final write sets in `mv` of the transactions of `range`, in block
/// order, sorted into `shares` accumulators by the share of the accounts
/// that holds each write's account; only into share `only`'s, if given.
pub(super) fn walk_writes(
    mv: &MvMemory,
    range: TxRange,
    shares: usize,
    only: Option<usize>,
) -> Vec<StateAccumulator> {
    let shares = shares.max(1);
    let range = range.range();
    let kept = if only.is_some() { 1 } else { shares };
    // The block sees about two distinct accounts per transaction.
    let accounts = 2 * range.len() / shares;
    let mut accumulators: Vec<_> = (0..kept)
        .map(|_| StateAccumulator::with_capacity(accounts))
        .collect();
    mv.for_each_write_set(range, |writes| {
        // A write set lists each account's writes together (see
        // `VmDb::write_set`): one share and one lookup per account.
        for run in writes.chunk_by(|(a, _), (b, _)| a.address() == b.address()) {
            let address = run[0].0.address();
            let share = Part::of(&address, shares);
            let slot = match only {
                None => share,
                Some(only) if only == share => 0,
                Some(_) => continue,
            };
            accumulators[slot].apply(address, run);
        }
    });
    accumulators
}

/// The block's state changes to the accounts of `part`: the pre-block system
/// calls' (`pre`), then the final writes in the block (`writes`, gathered
/// from every range's walk) and the rewards and withdrawals
/// (`increments`), relative to the pre-block `state`; normalized unless
/// post-block system calls (no `increments`) still have to run. Accounts
/// are independent, so the parts together are the whole.
pub(super) fn fold_state<S: StateSource + ?Sized>(
    state: &S,
    pre: &StateChanges,
    part: Part,
    mut writes: StateAccumulator,
    increments: Option<&[(Address, U256)]>,
) -> Result<FoldedPart, ExecutionError> {
    for (address, value) in increments.into_iter().flatten() {
        if part.holds(address) {
            let increment = (
                Location::Balance(*address),
                WriteValue::BalanceIncrement(*value),
            );
            writes.apply(*address, std::slice::from_ref(&increment));
        }
    }
    let holds = |address: &Address| part.holds(address);
    Ok(writes.finish(state, pre, holds, increments.is_some())?)
}

/// Each transaction's outcome and receipt, its receipt's cumulative gas
/// filled in, with the block's gas used; a fallback if a transaction does
/// not fit in the block's remaining gas ([`BlockGas`]). Sequential
/// execution checks the fit before anything else, so an invalid
/// transaction that does not fit is invalid for that reason, not for its
/// own: a fallback then too.
pub(super) fn collect_receipts(
    block: &BlockInput,
    results: impl IntoIterator<Item = Result<FinishedTx, String>>,
) -> Result<Receipts, ExecutionError> {
    let mut budget = BlockGas::new(block.header.gas_limit, &block.evm_env().cfg_env);
    let mut transactions = Vec::with_capacity(block.transactions.len());
    for (tx, finished) in block.transactions.iter().zip(results) {
        let finished = finished.map_err(ExecutionError::Internal)?;
        if !budget.fits(tx.gas_limit()) {
            return Ok(Err(FallbackReason::GasLimitExceeded));
        }
        // Pushed before its cumulative gas is set, in place: a result is
        // 400 bytes, and setting it first cost a copy more (the hand-over
        // of 5,000 transfers took 405-413 us instead of 373).
        let gas = finished.gas;
        transactions.push(finished.result);
        if let Some(pushed) = transactions.last_mut() {
            budget.charge_result(pushed, gas);
        }
    }
    if transactions.len() != block.transactions.len() {
        return Err(ExecutionError::Internal(format!(
            "{} results for {} transactions",
            transactions.len(),
            block.transactions.len()
        )));
    }
    Ok(Ok((transactions, budget.header_gas_used())))
}

/// One account's writes folded together.
#[derive(Debug, Default, PartialEq)]
struct AccountWrites {
    /// The last full balance written.
    balance: Option<U256>,
    /// The balance deltas since then (or since the block began).
    deltas: Deltas,
    /// The deltas before the first full balance written, if one was: they
    /// took the pre-block balance, which the fold checks them against.
    leading: Option<Deltas>,
    /// The deltas between two full balances could have overflowed the
    /// first (see `credit.rs`).
    overflowed: bool,
    nonce: Option<u64>,
    code: Option<(B256, Bytecode)>,
    lifecycle: Option<Lifecycle>,
    destroyed: bool,
    storage: BTreeMap<U256, U256>,
}

/// The state changes of one part of the accounts, sorted by address, so
/// that the parts merge into the block's changes in one pass
/// ([`StateChanges::from_parts`]).
pub(crate) struct FoldedPart {
    pub accounts: Vec<(Address, AccountChange)>,
    pub codes: BTreeMap<B256, Bytecode>,
    /// A balance's lazy deltas could overflow (see `credit.rs`): the block
    /// must run sequentially.
    pub overflowed: bool,
}

impl StateChanges {
    /// The changes of `parts`, which hold different accounts, each in
    /// ascending order.
    pub(crate) fn from_parts(parts: Vec<FoldedPart>) -> Self {
        let mut codes = BTreeMap::new();
        let mut accounts = Vec::with_capacity(parts.iter().map(|p| p.accounts.len()).sum());
        for part in parts {
            codes.extend(part.codes);
            accounts.extend(part.accounts);
        }
        // A stable sort merges the sorted runs it finds.
        accounts.sort_by_key(|(address, _)| *address);
        Self {
            accounts: AccountChanges::from_sorted(accounts),
            codes,
        }
    }
}

/// Folds write sets, in block order, into state changes.
#[derive(Default)]
pub(crate) struct StateAccumulator {
    accounts: HashMap<Address, AccountWrites>,
}

impl StateAccumulator {
    /// An accumulator expecting about `accounts` distinct accounts.
    pub(crate) fn with_capacity(accounts: usize) -> Self {
        Self {
            accounts: HashMap::with_capacity_and_hasher(accounts, Default::default()),
        }
    }

    /// Applies the next writes to `address`, which are all to that account.
    pub(crate) fn apply(&mut self, address: Address, writes: &[(Location, WriteValue)]) {
        let account = self.accounts.entry(address).or_default();
        for (location, value) in writes {
            account.apply(location, value);
        }
    }

    /// Applies `later`'s writes, which all came after these.
    pub(crate) fn then(&mut self, later: StateAccumulator) {
        if self.accounts.is_empty() {
            *self = later;
            return;
        }
        for (address, writes) in later.accounts {
            match self.accounts.entry(address) {
                Entry::Occupied(mut earlier) => earlier.get_mut().then(writes),
                Entry::Vacant(slot) => {
                    slot.insert(writes);
                }
            }
        }
    }

    /// The accumulated changes composed onto `pre` (the changes of the
    /// pre-block system calls to the accounts that `part` holds), relative
    /// to the pre-block `state`; in canonical form when `normalize` (else
    /// later changes still follow). One pass: each account's pre-block
    /// value is read once, for both its fields and its normalization.
    pub(crate) fn finish<S: StateSource + ?Sized>(
        self,
        state: &S,
        pre: &StateChanges,
        part: impl Fn(&Address) -> bool,
        normalize: bool,
    ) -> Result<FoldedPart, StateError> {
        let mut codes = pre.codes.clone();
        let mut accounts = Vec::with_capacity(self.accounts.len());
        for (address, change) in pre.accounts.iter().filter(|(a, _)| part(a)) {
            if !self.accounts.contains_key(address) {
                accounts.push((*address, change.clone(), state.account_fields(address)?));
            }
        }
        let base = OverlayState::new(state, pre);
        let mut overflowed = false;
        for (address, writes) in self.accounts {
            if let Some((hash, code)) = &writes.code
                && *hash != KECCAK_EMPTY
            {
                codes.insert(*hash, code.clone());
            }
            let original = state.account_fields(&address)?;
            let (change, overflows) = writes.onto(&address, original.as_ref(), pre, &base)?;
            overflowed |= overflows;
            accounts.push((address, change, original));
        }
        let mut changes = Vec::with_capacity(accounts.len());
        for (address, change, original) in accounts {
            if !normalize {
                changes.push((address, change));
            } else if let Some(change) =
                change.normalized(&address, original.as_ref(), &state, &codes)?
            {
                changes.push((address, change));
            }
        }
        let changes = crate::changes::sorted_by_address(changes);
        let codes = if normalize {
            codes_of(changes.iter().map(|(_, change)| change))
        } else {
            codes
        };
        Ok(FoldedPart {
            accounts: changes,
            codes,
            overflowed,
        })
    }
}

impl AccountWrites {
    /// Applies `later`, this account's writes that came after these: as if
    /// its writes had been applied one by one.
    fn then(&mut self, later: AccountWrites) {
        match later.balance {
            Some(balance) => {
                // Later's leading deltas continue this account's last run.
                self.deltas.then(later.leading.unwrap_or_default());
                self.new_balance(balance);
                self.deltas = later.deltas;
            }
            None => self.deltas.then(later.deltas),
        }
        self.overflowed |= later.overflowed;
        self.nonce = later.nonce.or(self.nonce);
        if later.code.is_some() {
            self.code = later.code;
        }
        self.lifecycle = later.lifecycle.or(self.lifecycle);
        if later.destroyed {
            // Destroyed after these: only the slots written since survive.
            self.destroyed = true;
            self.storage = later.storage;
        } else {
            self.storage.extend(later.storage);
        }
    }

    /// Applies one write to this account, after the earlier ones.
    fn apply(&mut self, location: &Location, value: &WriteValue) {
        match (location, value) {
            (_, WriteValue::Balance(b)) => self.new_balance(*b),
            (_, WriteValue::BalanceIncrement(d)) => self.deltas.increase(*d),
            (_, WriteValue::BalanceDecrement(d)) => self.deltas.decrease(*d),
            (_, WriteValue::Nonce(n)) => self.nonce = Some(*n),
            (_, WriteValue::Code(hash, code)) => self.code = Some((*hash, code.clone())),
            (_, WriteValue::Lifecycle(l)) => {
                self.lifecycle = Some(*l);
                if *l == Lifecycle::Destroyed {
                    self.destroyed = true;
                    self.storage.clear();
                }
            }
            (Location::Storage(_, slot), WriteValue::Storage(v)) => {
                self.storage.insert(*slot, *v);
            }
            (_, WriteValue::Storage(_)) => {}
        }
    }

    /// A full balance written after the deltas so far, which end their run:
    /// checked against the balance before them (or, for the first run,
    /// kept to check against the pre-block balance).
    fn new_balance(&mut self, balance: U256) {
        let run = std::mem::take(&mut self.deltas);
        match self.balance {
            Some(start) => self.overflowed |= run.onto(start).1,
            None => self.leading = Some(run),
        }
        self.balance = Some(balance);
    }

    /// The change of the account at `address` after these writes: on top
    /// of its pre-block fields (`original`), or, if a pre-block system call
    /// changed it, composed onto that change (`pre`; `base` is the
    /// pre-block state with the calls' changes). Also whether its balance
    /// deltas could overflow (see `credit.rs`).
    fn onto<S: StateSource + ?Sized>(
        self,
        address: &Address,
        original: Option<&AccountInfo>,
        pre: &StateChanges,
        base: &OverlayState<'_, S>,
    ) -> Result<(AccountChange, bool), StateError> {
        let Some(pre_change) = pre.accounts.get(address) else {
            return Ok(self.into_change(original));
        };
        let overlaid = base.account_fields(address)?;
        let mut composed = pre_change.clone();
        let (change, overflowed) = self.into_change(overlaid.as_ref());
        composed.then(change);
        Ok((composed, overflowed))
    }

    /// The account after these writes, on top of `before`, and whether its
    /// balance deltas could overflow.
    fn into_change(self, before: Option<&AccountInfo>) -> (AccountChange, bool) {
        let pre_block = before.map_or(U256::ZERO, |b| b.balance);
        let leading_overflowed = self.leading.is_some_and(|run| run.onto(pre_block).1);
        let (balance, last_overflowed) = self.deltas.onto(self.balance.unwrap_or(pre_block));
        let overflowed = self.overflowed || leading_overflowed || last_overflowed;
        let nonce = self.nonce.unwrap_or_else(|| before.map_or(0, |b| b.nonce));
        let code_hash = match &self.code {
            Some((hash, _)) => *hash,
            None => before.map_or(KECCAK_EMPTY, |b| b.code_hash),
        };
        let empty = balance.is_zero() && nonce == 0 && code_hash == KECCAK_EMPTY;
        let exists = match self.lifecycle {
            Some(Lifecycle::CreatedEmpty) => true,
            Some(Lifecycle::Destroyed) => !empty,
            None => before.is_some() || !empty,
        };
        let info = exists.then(|| AccountState {
            balance,
            nonce,
            code_hash,
            code: self.code.map(|(_, code)| code),
        });
        let change = AccountChange {
            info,
            storage_wiped: self.destroyed,
            storage: SlotChanges::from_sorted(self.storage.into_iter().collect()),
        };
        (change, overflowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(n: u64) -> Address {
        let mut bytes = [0u8; 20];
        bytes[12..].copy_from_slice(&n.to_be_bytes());
        Address::from(bytes)
    }

    /// Writes split into consecutive runs, each applied on its own and then
    /// chained with `then`, leave an account as applying them one by one
    /// does: wherever the splits fall among balances, increments, slots
    /// and destructions.
    #[test]
    fn chained_runs_fold_like_one_run() {
        let account = address(1);
        let balance = Location::Balance(account);
        let slot = |n: u64| Location::Storage(account, U256::from(n));
        let writes = [
            (balance, WriteValue::BalanceIncrement(U256::from(5))),
            (slot(1), WriteValue::Storage(U256::from(10))),
            (balance, WriteValue::Balance(U256::from(100))),
            (slot(2), WriteValue::Storage(U256::from(20))),
            (balance, WriteValue::BalanceIncrement(U256::from(7))),
            (Location::Nonce(account), WriteValue::Nonce(3)),
            (
                Location::Lifecycle(account),
                WriteValue::Lifecycle(Lifecycle::Destroyed),
            ),
            (balance, WriteValue::Balance(U256::ZERO)),
            (slot(3), WriteValue::Storage(U256::from(30))),
            (balance, WriteValue::BalanceIncrement(U256::from(9))),
            (slot(1), WriteValue::Storage(U256::from(11))),
            (
                Location::Lifecycle(account),
                WriteValue::Lifecycle(Lifecycle::CreatedEmpty),
            ),
            (balance, WriteValue::BalanceDecrement(U256::from(1))),
        ];
        let applied = |writes: &[(Location, WriteValue)]| {
            let mut accumulator = StateAccumulator::default();
            accumulator.apply(account, writes);
            accumulator
        };
        let whole = applied(&writes);
        for first in 0..=writes.len() {
            for second in first..=writes.len() {
                let mut chained = applied(&writes[..first]);
                chained.then(applied(&writes[first..second]));
                chained.then(applied(&writes[second..]));
                assert_eq!(
                    chained.accounts, whole.accounts,
                    "split at {first} and {second}"
                );
            }
        }
    }

    /// Every run of deltas is checked against the full balance before it,
    /// also where a later full balance replaced the run's result, and
    /// wherever the writes are split.
    #[test]
    fn runs_of_deltas_that_could_overflow_are_caught() {
        let account = address(1);
        let balance = Location::Balance(account);
        let near_max = U256::MAX - U256::from(5);
        let cases = [
            (U256::ZERO, vec![WriteValue::Balance(near_max)], false),
            (
                U256::ZERO,
                vec![
                    WriteValue::Balance(near_max),
                    WriteValue::BalanceIncrement(U256::from(10)),
                    WriteValue::BalanceDecrement(U256::from(20)),
                    WriteValue::Balance(U256::from(7)),
                ],
                true,
            ),
            (
                near_max,
                vec![
                    WriteValue::BalanceIncrement(U256::from(6)),
                    WriteValue::Balance(U256::from(7)),
                    WriteValue::BalanceIncrement(U256::from(1)),
                ],
                true,
            ),
            (
                near_max,
                vec![
                    WriteValue::BalanceDecrement(U256::from(6)),
                    WriteValue::BalanceIncrement(U256::from(5)),
                ],
                false,
            ),
        ];
        for (pre_block, values, overflows) in cases {
            let writes: Vec<_> = values.into_iter().map(|v| (balance, v)).collect();
            let before = AccountInfo::from_balance(pre_block);
            for split in 0..=writes.len() {
                let mut first = AccountWrites::default();
                let mut second = AccountWrites::default();
                for (location, value) in &writes[..split] {
                    first.apply(location, value);
                }
                for (location, value) in &writes[split..] {
                    second.apply(location, value);
                }
                first.then(second);
                let (_, overflowed) = first.into_change(Some(&before));
                assert_eq!(overflowed, overflows, "{writes:?} split at {split}");
            }
        }
    }

    /// Ranges of transactions cover the block once, in order, about evenly.
    #[test]
    fn ranges_cover_the_block_in_order() {
        for (transactions, count) in [(0, 2), (1, 2), (7, 3), (1_000, 16)] {
            let ranges: Vec<_> = (0..count)
                .map(|index| {
                    TxRange {
                        index,
                        count,
                        transactions,
                    }
                    .range()
                })
                .collect();
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges[count - 1].end, transactions);
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].end, pair[1].start);
                assert!(pair[0].len().abs_diff(pair[1].len()) <= 1);
            }
        }
    }

    /// Every account is in exactly one share, and the shares are about even.
    #[test]
    fn each_account_is_in_one_share() {
        for count in [1, 2, 3, 8, 16] {
            let mut sizes = vec![0usize; count];
            for n in 0..4_000 {
                let holders: Vec<usize> = (0..count)
                    .filter(|&index| Part { index, count }.holds(&address(n)))
                    .collect();
                assert_eq!(holders.len(), 1, "address {n} with {count} shares");
                sizes[holders[0]] += 1;
            }
            let even = 4_000 / count;
            assert!(sizes.iter().all(|&size| size > even * 3 / 4), "{sizes:?}");
        }
    }

    /// Parts merge into one map in address order, whatever their number.
    #[test]
    fn parts_merge_in_address_order() {
        let change = |balance: u64| AccountChange {
            info: Some(AccountState {
                balance: U256::from(balance),
                nonce: 0,
                code_hash: KECCAK_EMPTY,
                code: None,
            }),
            storage_wiped: false,
            storage: SlotChanges::default(),
        };
        let count = 5;
        let parts: Vec<FoldedPart> = (0..count)
            .map(|index| {
                let mut accounts: Vec<_> = (0..300)
                    .map(address)
                    .filter(|a| Part { index, count }.holds(a))
                    .map(|a| (a, change(a.0[19].into())))
                    .collect();
                accounts.sort_by_key(|(a, _)| *a);
                FoldedPart {
                    accounts,
                    codes: BTreeMap::new(),
                    overflowed: false,
                }
            })
            .collect();
        let changes = StateChanges::from_parts(parts);
        let merged: Vec<Address> = changes.accounts.keys().copied().collect();
        assert_eq!(merged, (0..300).map(address).collect::<Vec<_>>());
        assert_eq!(changes.accounts[&address(7)], change(7));
    }
}
