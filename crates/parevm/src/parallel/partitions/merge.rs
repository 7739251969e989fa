//! Where the partitions' results are merged: once every partition ran,
//! the caller and helpers assemble the block ([`Assembly`]): each share of
//! the accounts merged from every partition's changes, the results (in
//! place already, see `results.rs`) handed over with their cumulative gas,
//! and the state changes built with the credits settled.

use super::{
    PartitionContext, PartitionOutput, Settlement, contract_balances,
    results::{PlacedResults, ResultSlots},
};
use crate::{
    AccountChange, AccountChanges, AccountState, BlockInput, ExecutionError, SlotChanges,
    StateChanges, StateSource,
    parallel::{
        credit::Deltas,
        helpers::{Claims, Then, run_with_helpers, timed_phase},
        mv_memory::lock,
    },
};
use alloy_primitives::{Address, B256, U256};
use revm::{bytecode::Bytecode, primitives::KECCAK_EMPTY};
use std::{
    cell::Cell,
    cmp::Reverse,
    collections::{BTreeMap, BinaryHeap, binary_heap::PeekMut, btree_map::Entry},
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

/// Assembles a partitioned block from its partitions' `outputs`, on
/// `workers` threads (see [`Assembly`]): the state changes, with the
/// credits and payouts of `settlement`, and `on_results` of the results
/// (in their `slots`). The partitions were validated as they ran. `None`
/// if a credit could overflow a balance (see `credit.rs`): the block must
/// run another way.
pub(super) fn assemble<'a, S: StateSource + ?Sized, T: Send>(
    ctx: &PartitionContext<'a, S>,
    outputs: Vec<PartitionOutput>,
    settlement: Settlement<'a>,
    workers: usize,
    slots: ResultSlots<'a>,
    on_results: impl FnOnce(PlacedResults<'_>) -> T + Send,
) -> Result<Option<(T, StateChanges)>, ExecutionError> {
    let Settlement { credits, payout } = settlement;
    let mut gas = Vec::with_capacity(outputs.len());
    let mut shares: Vec<Vec<_>> = (0..=ctx.bounds.len()).map(|_| Vec::new()).collect();
    let (mut fees, mut paid) = (Deltas::default(), Deltas::default());
    let mut credited = Deltas::default();
    let mut balance_sums: BTreeMap<Address, Deltas> = BTreeMap::new();
    let mut bounds = Vec::new();
    for output in outputs {
        gas.push(output.gas);
        for (share, accounts) in shares.iter_mut().zip(output.accounts) {
            share.push(accounts);
        }
        fees.then(output.fees);
        paid.then(output.paid);
        credited.then(output.credited);
        for (address, deltas) in output.balance_sums {
            balance_sums.entry(address).or_default().then(deltas);
        }
        bounds.push(output.bounds);
    }
    if !contract_balances::bounds_hold(&bounds) {
        return Ok(None);
    }
    let assembly = Assembly {
        block: ctx.block,
        state: ctx.state,
        pre: ctx.pre,
        credits,
        fees,
        payout: payout.map(|p| (p.address, paid, p.final_nonce)),
        hot_recipient: ctx.hot_recipient.map(|hot| (hot, credited)),
        balance_sums,
        hand_over_input: Mutex::new(Some((PlacedResults { slots, gas }, on_results))),
        handed_over: Mutex::new(None),
        claims: Claims::new(shares.len() + 1),
        merges: merges(shares, ctx.pre.accounts.len() + credits.len() + 3),
        build_claimed: AtomicBool::new(false),
        built: Mutex::new(None),
    };
    let run = || timed_phase(ctx.phases, |p| &mut p.assembling, || assembly.run());
    let helpers = workers.min(assembly.merges.len() + 1).saturating_sub(1);
    run_with_helpers(helpers, Then::Release, |_| run(), run);
    let missing = || ExecutionError::Internal("partitioned run did not finish".into());
    let handed_over = assembly.handed_over.into_inner();
    let built = assembly.built.into_inner();
    let output = handed_over
        .unwrap_or_else(|e| e.into_inner())
        .ok_or_else(missing)?;
    let changes = built
        .unwrap_or_else(|e| e.into_inner())
        .ok_or_else(missing)??;
    Ok(changes.map(|changes| (output, changes)))
}

/// One merge per share of the accounts. The first share's merge makes room
/// for the others, which the build appends to it, and for the `settled`
/// accounts only the pre-block calls and the credits change (the
/// beneficiary, the payout sender, the hot recipient, withdrawals), which
/// it merges in.
fn merges(shares: Vec<Vec<Vec<(Address, AccountChange)>>>, settled: usize) -> Vec<Merge> {
    let others = shares
        .iter()
        .skip(1)
        .map(|runs| runs.iter().map(Vec::len).sum::<usize>())
        .sum::<usize>()
        + settled;
    shares
        .into_iter()
        .enumerate()
        .map(|(index, runs)| Merge::new(runs, if index == 0 { others } else { 0 }))
        .collect()
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
/// each share of the accounts, handing the results over (`on_results`:
/// the receipts' cumulative gas threaded through them in block order),
/// and, once every share is merged, building the state changes from them.
/// Each is claimed once, by
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
    fees: Deltas,
    /// The payout sender, the change to its balance and its nonce after
    /// the block.
    payout: Option<(Address, Deltas, u64)>,
    /// The hot recipient and what the partitions credited it.
    hot_recipient: Option<(Address, Deltas)>,
    /// The changes partitions made to balances of accounts with code, each
    /// summed over the partitions (see `contract_balances.rs`).
    balance_sums: BTreeMap<Address, Deltas>,
    hand_over_input: Mutex<Option<(PlacedResults<'a>, R)>>,
    handed_over: Mutex<Option<T>>,
    /// The merges, then handing over.
    claims: Claims,
    /// Each share's merge, in address order.
    merges: Vec<Merge>,
    build_claimed: AtomicBool,
    /// The state changes; `None` if a balance's deltas could overflow.
    built: Mutex<Option<Result<Option<StateChanges>, ExecutionError>>>,
}

impl<'a, S: StateSource + ?Sized, R: FnOnce(PlacedResults<'a>) -> T, T> Assembly<'a, S, R, T> {
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
            let beneficiary = (self.block.header.beneficiary, self.fees);
            let payout = self.payout.map(|(address, paid, _)| (address, paid));
            let credits = (self.credits.iter())
                .map(|(address, amount)| (*address, Deltas::increase_of(*amount)));
            // A summed balance is settled even if its changes cancel out:
            // the partitions left its account at its pre-block balance.
            let sums = self.balance_sums.iter().map(|(a, d)| (*a, *d));
            let credits = std::iter::once(beneficiary)
                .chain(payout)
                .chain(self.hot_recipient)
                .chain(credits)
                .filter(|(_, deltas)| !deltas.is_zero())
                .chain(sums);
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

/// Merges the partitions' account changes (each run in address order) into
/// one run, with `spare` more capacity, and tells whether any change
/// carries code. Validation showed that partitions changing one account
/// changed only different slots of it (any other change is a write of the
/// account, which the others' storage accesses would have read).
///
/// The runs' next addresses wait in a heap, so that each account costs
/// a few comparisons however many partitions there are (about 9 a thread
/// on a 5,000-transaction block, more with the guided tail): scanning every
/// run for the lowest grows with them. In a throwaway driver on the 2-core
/// AMD VM, merging 10,000 accounts from 2, 30 and 300 runs took 1.0, 5.6
/// and 36.9 ms by scanning, and 1.3, 1.5 and 2.8 ms with the heap. (At 2
/// threads, 5,000 ERC-20 transfers merge in about 26 runs; there the
/// token's storage, joined from every partition, costs more than either.)
///
/// The heap orders [`OrderKey`]s, and the run just taken from has its next
/// key put in place at the top ([`PeekMut`]), one sift instead of a pop and
/// a push: merging 5,000 accounts of 168 bytes from 26 runs took 240 us
/// instead of 381 with addresses popped and pushed (throwaway driver, AMD
/// VM; a loser tree took 268).
fn merge_accounts(
    runs: Vec<Vec<(Address, AccountChange)>>,
    spare: usize,
) -> (Vec<(Address, AccountChange)>, bool) {
    let mut any_code = false;
    let mut merged: Vec<(Address, AccountChange)> =
        Vec::with_capacity(runs.iter().map(Vec::len).sum::<usize>() + spare);
    let mut runs: Vec<_> = runs.into_iter().map(|r| r.into_iter().peekable()).collect();
    // Lowest address first; of one address, the earliest partition's first.
    let mut next: BinaryHeap<Reverse<(OrderKey, usize)>> = runs
        .iter_mut()
        .enumerate()
        .filter_map(|(index, run)| {
            let (address, _) = run.peek()?;
            Some(Reverse((OrderKey::of(address), index)))
        })
        .collect();
    let mut shared_storage = Vec::new();
    while let Some(mut top) = next.peek_mut() {
        let index = top.0.1;
        // A run's head is in the heap only while it has one.
        let Some((address, change)) = runs[index].next() else {
            PeekMut::pop(top);
            continue;
        };
        match runs[index].peek() {
            Some((following, _)) => top.0.0 = OrderKey::of(following),
            None => {
                PeekMut::pop(top);
            }
        }
        any_code |= has_code(&change);
        match merged.last_mut() {
            Some((last, _)) if *last == address => {
                shared_storage.push((merged.len() - 1, change.storage));
            }
            _ => merged.push((address, change)),
        }
    }
    join_storage(&mut merged, shared_storage);
    (merged, any_code)
}

/// An address as integers in the same order (big-endian words), cheaper
/// to compare than its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct OrderKey(u64, u64, u32);

impl OrderKey {
    fn of(address: &Address) -> Self {
        // The slices have the arrays' lengths: the defaults are never used.
        let bytes = &address.0.0;
        let high = u64::from_be_bytes(bytes[..8].try_into().unwrap_or_default());
        let middle = u64::from_be_bytes(bytes[8..16].try_into().unwrap_or_default());
        let low = u32::from_be_bytes(bytes[16..].try_into().unwrap_or_default());
        Self(high, middle, low)
    }
}

/// The bounds between `count` shares of about as many of the accounts
/// `block` changes each: quantiles of the senders and recipients of up to
/// 128 of its transactions, evenly spaced. (Generated addresses are not
/// hashes: a fixed split at `0x80..` left one half empty on the synthetic
/// workloads.)
pub(super) fn share_bounds(block: &BlockInput, count: usize) -> Vec<Address> {
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
pub(super) fn split_into_shares(
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
/// (`shared`: an index into `merged` and the slots). Each account's runs
/// are concatenated, sized up front, and sorted (runs are cheap to sort):
/// inserting them one by one cost an ERC-20 token's 5,000 slots from 8
/// partitions about 1 ms on the 2-core VM, and a concatenation grown run
/// by run copied the slots over again at every doubling.
fn join_storage(merged: &mut [(Address, AccountChange)], shared: Vec<(usize, SlotChanges)>) {
    let mut shared = shared.into_iter().peekable();
    while let Some((index, first)) = shared.next() {
        let mut runs = vec![first];
        while let Some((_, more)) = shared.next_if(|(next, _)| *next == index) {
            runs.push(more);
        }
        let storage = &mut merged[index].1.storage;
        let len = storage.len() + runs.iter().map(SlotChanges::len).sum::<usize>();
        let mut slots: Vec<(U256, U256)> = Vec::with_capacity(len);
        slots.extend(std::mem::take(storage));
        for run in runs {
            slots.extend(run);
        }
        slots.sort_by_key(|(slot, _)| *slot);
        *storage = SlotChanges::from_sorted(slots);
    }
}

/// The block's state changes: the partitions' `accounts` (with whether
/// any carries code), the pre-block system calls' changes to accounts no
/// partition touched, the balance `credits` (a payout sender's is what it
/// paid) and the payout sender's `nonce` after the block, normalized
/// against the pre-block `state`; `None` if a credit could overflow a
/// balance (see `credit.rs`).
fn finish_changes<S: StateSource + ?Sized>(
    state: &S,
    pre: &StateChanges,
    (mut accounts, any_code): (AccountChanges, bool),
    credits: impl Iterator<Item = (Address, Deltas)>,
    nonce: Option<(Address, u64)>,
) -> Result<Option<StateChanges>, ExecutionError> {
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
    let overflowed = Cell::new(false);
    for (address, deltas) in credits {
        settle(address, &|change| {
            let (change, overflows) = credited(change, deltas);
            overflowed.set(overflowed.get() | overflows);
            change
        })?;
    }
    if overflowed.get() {
        return Ok(None);
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
    normalize_revisited(state, &mut accounts, &revisit, &codes)?;
    let codes = codes_of(&accounts);
    Ok(Some(StateChanges { accounts, codes }))
}

/// Normalizes the `revisit`ed accounts of `accounts` (in address order)
/// against the pre-block `state`, with the block's new `codes`, and drops
/// those the block leaves as they were.
fn normalize_revisited<S: StateSource + ?Sized>(
    state: &S,
    accounts: &mut AccountChanges,
    revisit: &[Address],
    codes: &BTreeMap<B256, Bytecode>,
) -> Result<(), ExecutionError> {
    let mut unchanged_now = Vec::new();
    for address in revisit {
        let Some(change) = accounts.get_mut(address) else {
            continue;
        };
        let before = state.account_fields(address)?;
        match std::mem::take(change).normalized(address, before.as_ref(), &state, codes)? {
            Some(normalized) => *change = normalized,
            None => unchanged_now.push(*address),
        }
    }
    if !unchanged_now.is_empty() {
        accounts.retain(|address, _| unchanged_now.binary_search(address).is_err());
    }
    Ok(())
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

/// `change` with `deltas` to its balance (creating the account if it is
/// gone), and whether they could overflow it (see `credit.rs`).
fn credited(mut change: AccountChange, deltas: Deltas) -> (AccountChange, bool) {
    let info = change.info.get_or_insert(AccountState {
        balance: U256::ZERO,
        nonce: 0,
        code_hash: KECCAK_EMPTY,
        code: None,
    });
    let (balance, overflowed) = deltas.onto(info.balance);
    info.balance = balance;
    (change, overflowed)
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

    /// Order keys compare as their addresses do, whichever byte differs.
    #[test]
    fn order_keys_keep_the_address_order() {
        let mut addresses = vec![Address::ZERO, Address::repeat_byte(0xff)];
        for byte in [0, 7, 8, 15, 16, 19] {
            for value in [1u8, 0x80] {
                let mut bytes = [0x11u8; 20];
                bytes[byte] = value;
                addresses.push(Address::from(bytes));
            }
        }
        for a in &addresses {
            for b in &addresses {
                assert_eq!(OrderKey::of(a).cmp(&OrderKey::of(b)), a.cmp(b), "{a} {b}");
            }
        }
    }

    /// The runs' accounts come out in address order, each once: an account
    /// several partitions changed (different slots of it) with their slots
    /// joined, the earliest partition's change kept for the rest.
    #[test]
    fn runs_merge_in_address_order_with_shared_storage_joined() {
        let change = |nonce: u64, slots: &[(u64, u64)]| AccountChange {
            info: Some(AccountState {
                balance: U256::ZERO,
                nonce,
                code_hash: KECCAK_EMPTY,
                code: None,
            }),
            storage_wiped: false,
            storage: slots
                .iter()
                .map(|&(slot, value)| (U256::from(slot), U256::from(value)))
                .collect(),
        };
        let runs = vec![
            vec![
                (address(2), change(0, &[(5, 1)])),
                (address(7), change(0, &[])),
            ],
            Vec::new(),
            vec![
                (address(1), change(1, &[])),
                (address(2), change(2, &[(3, 2)])),
            ],
            vec![
                (address(2), change(3, &[(9, 3)])),
                (address(9), change(3, &[])),
            ],
        ];
        let (merged, any_code) = merge_accounts(runs, 4);
        assert!(!any_code);
        let addresses: Vec<u8> = merged.iter().map(|(a, _)| a.0[19]).collect();
        assert_eq!(addresses, vec![1, 2, 7, 9]);
        assert_eq!(merged[1].1.info.as_ref().map(|i| i.nonce), Some(0));
        let slots: Vec<(U256, U256)> = merged[1].1.storage.clone().into_iter().collect();
        assert_eq!(
            slots,
            [(3, 2), (5, 1), (9, 3)].map(|(s, v)| (U256::from(s), U256::from(v)))
        );
        assert!(merged.capacity() >= 9);
    }
}
