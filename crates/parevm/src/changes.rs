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
    pub storage: BTreeMap<U256, U256>,
}

/// Every account a block changed, ordered by address.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StateChanges {
    /// Changed accounts.
    pub accounts: BTreeMap<Address, AccountChange>,
    /// Code deployed in the block, by hash.
    pub codes: BTreeMap<B256, Bytecode>,
}

impl StateChanges {
    /// Reads the changes out of a revm bundle (a `State`'s merged
    /// transitions). Call [`Self::normalize`] afterwards.
    pub fn from_bundle(bundle: &BundleState) -> Self {
        let mut changes = Self::default();
        for (address, account) in &bundle.state {
            let change = AccountChange::from_revm(
                account.info.as_ref(),
                &account.storage,
                account.status.was_destroyed(),
            );
            changes.accounts.insert(*address, change);
        }
        for (hash, code) in &bundle.contracts {
            changes.codes.insert(*hash, code.clone());
        }
        changes
    }

    /// Reads the changes out of revm's transitions (what a `State` with
    /// bundle updates accumulated, before merging them into a bundle): the
    /// same as [`Self::from_bundle`] of one merge, without building the
    /// bundle. Call [`Self::normalize`] afterwards.
    pub fn from_transitions(transitions: &TransitionState) -> Self {
        let mut changes = Self::default();
        for (address, account) in &transitions.transitions {
            if let Some((hash, code)) = account.has_new_contract() {
                changes.codes.insert(hash, code.clone());
            }
            let change = AccountChange::from_revm(
                account.info.as_ref(),
                &account.storage,
                account.status.was_destroyed(),
            );
            changes.accounts.insert(*address, change);
        }
        changes
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
        accounts.sort_unstable_by_key(|(address, _)| *address);
        // In address order: the map is bulk-built, not inserted into.
        let accounts: BTreeMap<Address, AccountChange> = accounts.into_iter().collect();
        let codes = codes_of(accounts.values());
        Ok(Self { accounts, codes })
    }

    /// Composes `later` (changes relative to `self` applied to the pre-state)
    /// onto `self`. Call [`Self::normalize`] afterwards.
    pub fn extend(&mut self, later: StateChanges) {
        for (address, change) in later.accounts {
            self.accounts.entry(address).or_default().then(change);
        }
        self.codes.extend(later.codes);
    }

    /// Reduces the changes to what differs from `pre`, the pre-block state: the
    /// canonical form in which both executors' results are compared.
    pub fn normalize(&mut self, pre: &dyn StateSource) -> Result<(), StateError> {
        let mut keep = Vec::with_capacity(self.accounts.len());
        for (address, change) in std::mem::take(&mut self.accounts) {
            let before = pre.account(&address)?;
            if let Some(change) = change.normalized(&address, before.as_ref(), pre, &self.codes)? {
                keep.push((address, change));
            }
        }
        // Already in address order: the map is bulk-built, not inserted into.
        self.accounts = keep.into_iter().collect();
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
            .find(|a| !self.accounts.contains_key(*a))
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
        let before = pre.account(address)?;
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
        let storage: BTreeMap<U256, U256> = account
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
            let mut unchanged = Vec::new();
            for (slot, value) in &self.storage {
                if pre.storage(address, slot)? == *value {
                    unchanged.push(*slot);
                }
            }
            for slot in unchanged {
                self.storage.remove(&slot);
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
