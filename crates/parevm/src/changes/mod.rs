//! The state changes of a block, in one canonical form.
//!
//! Both executors produce [`StateChanges`], and parallel must equal sequential
//! exactly. To make equality meaningful the form is canonical: it holds only what
//! differs from the pre-block state ([`StateChanges::normalize`]).

use crate::state::{StateError, StateSource};
use alloy_primitives::{Address, B256, U256};
use revm::{
    bytecode::Bytecode,
    database::{BundleState, StorageWithOriginalValues, TransitionAccount, TransitionState},
    primitives::KECCAK_EMPTY,
    state::AccountInfo,
};
use std::collections::BTreeMap;

mod sorted;

pub use sorted::SortedMap;
use sorted::is_canonical;

/// An account as it is after the block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    /// Balance in wei.
    pub balance: U256,
    /// Nonce.
    pub nonce: u64,
    /// Hash of the code ([`KECCAK_EMPTY`] for none).
    pub code_hash: B256,
    /// The code, present only when it is new in this block.
    pub code: Option<Bytecode>,
}

/// How one account changed in a block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountChange {
    /// The account after the block; `None` if it does not exist then.
    pub info: Option<AccountState>,
    /// The account was destroyed during the block, so every pre-block slot not
    /// listed in `storage` is zero.
    pub storage_wiped: bool,
    /// Slots whose value after the block differs from before (or, when
    /// `storage_wiped`, every non-zero slot written after the wipe).
    pub storage: SlotChanges,
}

/// Every account a block changed, ordered by address.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StateChanges {
    /// Changed accounts.
    pub accounts: AccountChanges,
    /// Code deployed in the block, by hash.
    pub codes: BTreeMap<B256, Bytecode>,
}

/// Changed accounts, each once, in address order: a sorted vector, looked
/// up by binary search.
///
/// A map of a gigagas block's 35,000 accounts took 5 ms to build on one
/// thread after its partitions ran (as a `BTreeMap`, bulk-built), and the
/// sequential run of the mainnet fixtures is 1.3% faster without them; a
/// vector is appended to by each share of the accounts in turn, and it is
/// already the order in which a trie is built.
pub type AccountChanges = SortedMap<Address, AccountChange>;

/// One account's changed slots, each once, in slot order: a sorted
/// vector, as [`AccountChanges`] is. A token's slots, changed by many
/// partitions, are joined by appending them and sorting. As `BTreeMap`s,
/// walked into a vector, sorted and bulk-built into one, they made the
/// assembly take 1.6-1.7 times its CPU time now (2-core AMD VM, `bench
/// --phases`: 1.53-1.57 ms against 0.92-0.93 ms on 5,000 ERC-20
/// transfers, 6.6-7.2 against 4.4-4.5 ms on a gigagas of them), the join
/// on one thread while the other waited.
pub type SlotChanges = SortedMap<U256, U256>;

/// `accounts` in ascending address order (each address once). Sorts the
/// addresses with their positions, then moves each change into its place
/// along the permutation's cycles, in the same vector: sorting the changes
/// themselves, over 100 bytes each, spent most of its time moving them (a
/// third of turning 10,000 transfers' revm transitions into changes), and
/// moving them into a new vector took that vector's fresh pages.
pub(crate) fn sorted_by_address(
    mut accounts: Vec<(Address, AccountChange)>,
) -> Vec<(Address, AccountChange)> {
    if is_canonical(&accounts) {
        return accounts;
    }
    let mut order: Vec<(Address, usize)> = accounts
        .iter()
        .enumerate()
        .map(|(at, (address, _))| (*address, at))
        .collect();
    order.sort_unstable();
    // `order[to].1` is where the change that belongs at `to` is. Each cycle
    // is walked once: a swap brings the change wanted at `hole` there, and
    // leaves the cycle's first change at the next hole, until the hole is
    // where the first change belongs. A placed position points at itself.
    for start in 0..order.len() {
        let mut hole = start;
        loop {
            let from = std::mem::replace(&mut order[hole].1, hole);
            if from == start {
                break;
            }
            accounts.swap(hole, from);
            hole = from;
        }
    }
    accounts
}

impl StateChanges {
    /// Reads the changes out of a revm bundle (a `State`'s merged
    /// transitions). Call [`Self::normalize`] afterwards.
    pub fn from_bundle(bundle: &BundleState) -> Self {
        let accounts = bundle.state.iter().map(|(address, account)| {
            let change = AccountChange::from_revm(
                account.info.as_ref(),
                &account.storage,
                account.status.was_destroyed(),
            );
            (*address, change)
        });
        Self {
            accounts: accounts.collect(),
            codes: bundle
                .contracts
                .iter()
                .map(|(hash, code)| (*hash, code.clone()))
                .collect(),
        }
    }

    /// Reads the changes out of revm's transitions (what a `State` with
    /// bundle updates accumulated, before merging them into a bundle): the
    /// same as [`Self::from_bundle`] of one merge, without building the
    /// bundle. Call [`Self::normalize`] afterwards.
    pub fn from_transitions(transitions: &TransitionState) -> Self {
        let accounts = transitions.transitions.iter().map(|(address, account)| {
            let change = AccountChange::from_revm(
                account.info.as_ref(),
                &account.storage,
                account.status.was_destroyed(),
            );
            (*address, change)
        });
        Self {
            accounts: accounts.collect(),
            codes: new_codes(transitions),
        }
    }

    /// Reads the changes out of the transitions of a revm cache that loaded
    /// every value from `pre`, reduced to what differs from `pre`: what
    /// [`Self::from_transitions`] and then [`Self::normalize`] give, but
    /// comparing with the values the cache first loaded wherever the
    /// transitions tell them, and looking `pre` up only where they do not.
    pub fn from_transitions_normalized(
        transitions: &TransitionState,
        pre: &dyn StateSource,
    ) -> Result<Self, StateError> {
        let codes = new_codes(transitions);
        let mut accounts = Vec::with_capacity(transitions.transitions.len());
        for (address, account) in &transitions.transitions {
            if let Some(change) = AccountChange::from_transition(address, account, pre, &codes)? {
                accounts.push((*address, change));
            }
        }
        let accounts = AccountChanges::from_sorted(sorted_by_address(accounts));
        let codes = codes_of(accounts.values());
        Ok(Self { accounts, codes })
    }

    /// Composes `later` (changes relative to `self` applied to the pre-state)
    /// onto `self`. Call [`Self::normalize`] afterwards.
    pub fn extend(&mut self, later: StateChanges) {
        // An account new here is `later`'s change composed onto no change;
        // composing that onto an existing change is the same as composing
        // `later`'s own.
        let later_accounts = later.accounts.into_iter().map(|(address, change)| {
            let mut composed = AccountChange::default();
            composed.then(change);
            (address, composed)
        });
        self.accounts
            .merge_sorted(later_accounts.collect(), |existing, later| {
                existing.then(later)
            });
        self.codes.extend(later.codes);
    }

    /// Reduces the changes to what differs from `pre`, the pre-block state: the
    /// canonical form in which both executors' results are compared.
    pub fn normalize(&mut self, pre: &dyn StateSource) -> Result<(), StateError> {
        let mut keep = Vec::with_capacity(self.accounts.len());
        for (address, change) in std::mem::take(&mut self.accounts) {
            let before = pre.account_fields(&address)?;
            if let Some(change) = change.normalized(&address, before.as_ref(), pre, &self.codes)? {
                keep.push((address, change));
            }
        }
        self.accounts = AccountChanges::from_sorted(keep);
        self.codes = codes_of(self.accounts.values());
        Ok(())
    }

    /// A short description of the first difference from `other`, if any.
    pub fn first_difference(&self, other: &StateChanges) -> Option<String> {
        for (address, mine) in &self.accounts {
            match other.accounts.get(address) {
                None => return Some(format!("account {address} changed only on one side")),
                Some(theirs) if theirs != mine => {
                    return Some(format!("account {address}: {mine:?} != {theirs:?}"));
                }
                Some(_) => {}
            }
        }
        other
            .accounts
            .keys()
            .find(|a| !self.accounts.contains_key(a))
            .map(|a| format!("account {a} changed only on one side"))
    }
}

impl AccountChange {
    /// An account as revm's bundle or transition state holds it: `info`
    /// after the block, every touched slot, and whether it was destroyed.
    pub(crate) fn from_revm(
        info: Option<&AccountInfo>,
        storage: &StorageWithOriginalValues,
        destroyed: bool,
    ) -> Self {
        Self {
            info: info.map(|info| AccountState {
                balance: info.balance,
                nonce: info.nonce,
                code_hash: info.code_hash,
                code: info.code.clone(),
            }),
            storage_wiped: destroyed,
            storage: storage
                .iter()
                .map(|(slot, value)| (*slot, value.present_value))
                .collect(),
        }
    }

    /// The change of revm's transition of the account at `address`, in a
    /// cache that loaded it from `pre`, reduced to what differs from `pre`
    /// (`None` if nothing does). `codes` holds code deployed in the block.
    pub(crate) fn from_transition(
        address: &Address,
        account: &TransitionAccount,
        pre: &dyn StateSource,
        codes: &BTreeMap<B256, Bytecode>,
    ) -> Result<Option<Self>, StateError> {
        if let Some(change) = Self::normalized_from_transition(account) {
            return Ok(change);
        }
        let change = Self::from_revm(
            account.info.as_ref(),
            &account.storage,
            account.status.was_destroyed(),
        );
        let before = pre.account_fields(address)?;
        change.normalized(address, before.as_ref(), pre, codes)
    }

    /// The change of one of revm's transitions, reduced to what differs
    /// from the values its account and slots had when first loaded (its
    /// `previous_info` and each slot's original value), which must be the
    /// pre-block state's; `None` if nothing differs. The outer `None` is for
    /// what the transition alone cannot tell, where [`Self::normalized`]
    /// must look at the pre-block state: an account destroyed or deleted,
    /// or new code that is not inline.
    ///
    /// Saves the pre-block lookups of every touched account and slot that
    /// [`Self::normalized`] makes.
    fn normalized_from_transition(account: &TransitionAccount) -> Option<Option<Self>> {
        if account.storage_was_destroyed || account.status.was_destroyed() {
            return None;
        }
        let info = account.info.as_ref()?;
        let before = account.previous_info.as_ref();
        let code_is_new = before.map_or(info.code_hash != KECCAK_EMPTY, |b| {
            b.code_hash != info.code_hash
        });
        let code = if code_is_new {
            Some(info.code.clone()?)
        } else {
            None
        };
        let storage: SlotChanges = account
            .storage
            .iter()
            .filter(|(_, slot)| slot.present_value != slot.previous_or_original_value)
            .map(|(key, slot)| (*key, slot.present_value))
            .collect();
        let same_info = before.is_some_and(|b| {
            b.balance == info.balance && b.nonce == info.nonce && b.code_hash == info.code_hash
        });
        if same_info && storage.is_empty() {
            return Some(None);
        }
        Some(Some(Self {
            info: Some(AccountState {
                balance: info.balance,
                nonce: info.nonce,
                code_hash: info.code_hash,
                code,
            }),
            storage_wiped: false,
            storage,
        }))
    }

    /// This change reduced to what differs from `before`, the account in the
    /// pre-block state `pre`; `None` if nothing does. `codes` holds code
    /// deployed in the block, for a new code hash whose code is not inline.
    pub(crate) fn normalized(
        mut self,
        address: &Address,
        before: Option<&AccountInfo>,
        pre: &dyn StateSource,
        codes: &BTreeMap<B256, Bytecode>,
    ) -> Result<Option<Self>, StateError> {
        if before.is_none() {
            // Nothing existed to wipe.
            self.storage_wiped = false;
        }
        match &mut self.info {
            None => {
                if before.is_none() {
                    return Ok(None);
                }
                self.storage.clear();
                self.storage_wiped = true;
            }
            Some(info) => {
                let code_is_new = before.map_or(info.code_hash != KECCAK_EMPTY, |b| {
                    b.code_hash != info.code_hash
                });
                if !code_is_new {
                    info.code = None;
                } else if info.code.is_none() {
                    info.code = codes.get(&info.code_hash).cloned();
                }
            }
        }
        if self.storage_wiped {
            self.storage.retain(|_, value| !value.is_zero());
        } else {
            // In one pass: removing slots one by one moves those above each.
            let mut failed = None;
            self.storage
                .retain(|slot, value| match pre.storage(address, slot) {
                    Ok(before) => before != *value,
                    Err(error) => {
                        failed.get_or_insert(error);
                        true
                    }
                });
            if let Some(error) = failed {
                return Err(error);
            }
        }
        let same_info = match (before, &self.info) {
            (Some(b), Some(a)) => {
                b.balance == a.balance && b.nonce == a.nonce && b.code_hash == a.code_hash
            }
            _ => false,
        };
        if same_info && !self.storage_wiped && self.storage.is_empty() {
            return Ok(None);
        }
        Ok(Some(self))
    }

    /// Composes `later` (this account's change relative to the state after
    /// `self`) onto `self`.
    pub(crate) fn then(&mut self, later: AccountChange) {
        if later.storage_wiped || later.info.is_none() {
            self.storage_wiped = true;
            self.storage = later.storage;
        } else {
            self.storage.extend(later.storage);
        }
        self.info = later.info;
    }
}

/// The code every transition in `transitions` deployed, by hash.
pub(crate) fn new_codes(transitions: &TransitionState) -> BTreeMap<B256, Bytecode> {
    transitions
        .transitions
        .values()
        .filter_map(|account| account.has_new_contract())
        .map(|(hash, code)| (hash, code.clone()))
        .collect()
}

/// The code of every account whose code is new, by hash.
pub(crate) fn codes_of<'a>(
    accounts: impl IntoIterator<Item = &'a AccountChange>,
) -> BTreeMap<B256, Bytecode> {
    accounts
        .into_iter()
        .filter_map(|c| {
            c.info
                .as_ref()?
                .code
                .as_ref()
                .map(|code| (code.hash_slow(), code.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(n: u8) -> Address {
        Address::with_last_byte(n)
    }

    /// A change recognizable by its balance.
    fn change(balance: u64) -> AccountChange {
        AccountChange {
            info: Some(AccountState {
                balance: U256::from(balance),
                nonce: 0,
                code_hash: KECCAK_EMPTY,
                code: None,
            }),
            ..Default::default()
        }
    }

    fn balances(changes: &AccountChanges) -> Vec<(u8, u64)> {
        changes
            .iter()
            .map(|(a, c)| (a.0[19], c.info.as_ref().map_or(0, |i| i.balance.to())))
            .collect()
    }

    /// Collected in any order, the accounts come out sorted, and of an
    /// address given twice the later change stands, as in a map.
    #[test]
    fn collecting_sorts_and_keeps_the_later_change() {
        let changes: AccountChanges = [(5, 1), (1, 2), (5, 3), (3, 4), (1, 5)]
            .map(|(a, b)| (address(a), change(b)))
            .into_iter()
            .collect();
        assert_eq!(balances(&changes), vec![(1, 5), (3, 4), (5, 3)]);
        assert_eq!(changes[&address(3)], change(4));
        assert!(changes.get(&address(2)).is_none());
    }

    /// Merging in place gives what a map would, wherever the new accounts
    /// fall among the old.
    #[test]
    fn merging_in_place_equals_a_map() {
        let mut seed = 7u64;
        let mut next = move |below: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % below
        };
        for _ in 0..200 {
            let mut expected = BTreeMap::new();
            let mut old: Vec<(Address, AccountChange)> = Vec::new();
            for _ in 0..next(20) {
                let (a, b) = (next(60) as u8, next(1000));
                expected.insert(address(a), change(b));
                old.retain(|(x, _)| *x != address(a));
                old.push((address(a), change(b)));
            }
            let mut changes: AccountChanges = old.into_iter().collect();
            let mut more = BTreeMap::new();
            for _ in 0..next(8) {
                more.insert(address(next(60) as u8), change(next(1000)));
            }
            for (a, c) in &more {
                expected.insert(*a, c.clone());
            }
            changes.merge_sorted(more.into_iter().collect(), |old, new| *old = new);
            assert_eq!(changes.as_slice(), expected.into_iter().collect::<Vec<_>>());
        }
    }

    /// Extending composes each later change onto the existing one, or onto
    /// no change, as a map's `entry().or_default().then()` does: for
    /// deletions, wipes and plain changes alike.
    #[test]
    fn extending_composes_as_a_map_would() {
        let with_slot = |balance: u64, wiped: bool| AccountChange {
            storage_wiped: wiped,
            storage: [(U256::from(balance), U256::from(1))].into(),
            ..change(balance)
        };
        let deleted = AccountChange::default();
        let earlier = [
            (1, with_slot(1, false)),
            (3, with_slot(3, true)),
            (5, change(5)),
        ];
        let later = [
            (1, deleted.clone()),
            (2, deleted),
            (3, with_slot(7, false)),
            (4, with_slot(4, true)),
            (5, with_slot(8, false)),
        ];
        let mut expected: BTreeMap<Address, AccountChange> = earlier
            .iter()
            .map(|(a, c)| (address(*a), c.clone()))
            .collect();
        for (a, c) in &later {
            expected.entry(address(*a)).or_default().then(c.clone());
        }
        let mut changes = StateChanges {
            accounts: earlier.map(|(a, c)| (address(a), c)).into_iter().collect(),
            codes: BTreeMap::new(),
        };
        changes.extend(StateChanges {
            accounts: later.map(|(a, c)| (address(a), c)).into_iter().collect(),
            codes: BTreeMap::new(),
        });
        assert_eq!(
            changes.accounts.as_slice(),
            expected.into_iter().collect::<Vec<_>>()
        );
    }

    /// Sorting by address moves each change with its own address.
    #[test]
    fn sorting_by_address_keeps_each_change_with_its_address() {
        let shuffled = [7, 2, 9, 1, 5]
            .map(|n| (address(n), change(n.into())))
            .to_vec();
        let sorted = sorted_by_address(shuffled);
        let expected = [1, 2, 5, 7, 9].map(|n| (address(n), change(n.into())));
        assert_eq!(sorted, expected.to_vec());
    }

    /// Every permutation's cycles are walked: fixed points, swaps, long
    /// cycles, several at once.
    #[test]
    fn sorting_by_address_places_every_permutation() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for len in 0..48u64 {
            for _ in 0..8 {
                let mut numbers: Vec<u64> = (1..=len).collect();
                // A Fisher-Yates shuffle from a xorshift generator.
                for at in (1..numbers.len()).rev() {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    numbers.swap(at, (seed % (at as u64 + 1)) as usize);
                }
                let shuffled = numbers
                    .iter()
                    .map(|&n| (address(n as u8), change(n)))
                    .collect();
                let expected: Vec<_> = (1..=len).map(|n| (address(n as u8), change(n))).collect();
                assert_eq!(sorted_by_address(shuffled), expected);
            }
        }
    }

    #[test]
    fn inserts_removals_and_merges_keep_the_order() {
        let mut changes: AccountChanges = [(2, 1), (4, 1), (6, 1)]
            .map(|(a, b)| (address(a), change(b)))
            .into_iter()
            .collect();
        assert_eq!(changes.insert(address(3), change(2)), None);
        assert_eq!(changes.insert(address(4), change(2)), Some(change(1)));
        assert_eq!(changes.remove(&address(6)), Some(change(1)));
        assert_eq!(changes.remove(&address(6)), None);
        changes.merge_sorted(
            vec![
                (address(1), change(3)),
                (address(4), change(3)),
                (address(9), change(3)),
            ],
            |existing, new| *existing = new,
        );
        assert_eq!(
            balances(&changes),
            vec![(1, 3), (2, 1), (3, 2), (4, 3), (9, 3)]
        );
        changes.retain(|a, _| a.0[19] % 2 == 1);
        assert_eq!(balances(&changes), vec![(1, 3), (3, 2), (9, 3)]);
        assert_eq!(changes.len(), 3);
    }
}
