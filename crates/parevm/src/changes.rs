//! The state changes of a block, in one canonical form.
//!
//! Both executors produce [`StateChanges`], and parallel must equal sequential
//! exactly. To make equality meaningful the form is canonical: it holds only what
//! differs from the pre-block state ([`StateChanges::normalize`]).

use crate::state::{StateError, StateSource};
use alloy_primitives::{Address, B256, U256};
use revm::{bytecode::Bytecode, database::BundleState, primitives::KECCAK_EMPTY};
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
    /// Reads the changes out of a revm bundle (the sequential executor's
    /// accumulated state). Call [`Self::normalize`] afterwards.
    pub fn from_bundle(bundle: &BundleState) -> Self {
        let mut changes = Self::default();
        for (address, account) in &bundle.state {
            let info = account.info.as_ref().map(|info| AccountState {
                balance: info.balance,
                nonce: info.nonce,
                code_hash: info.code_hash,
                code: info.code.clone(),
            });
            let storage = account
                .storage
                .iter()
                .map(|(slot, value)| (*slot, value.present_value))
                .collect();
            let change = AccountChange {
                info,
                storage_wiped: account.status.was_destroyed(),
                storage,
            };
            changes.accounts.insert(*address, change);
        }
        for (hash, code) in &bundle.contracts {
            changes.codes.insert(*hash, code.clone());
        }
        changes
    }

    /// Composes `later` (changes relative to `self` applied to the pre-state)
    /// onto `self`. Call [`Self::normalize`] afterwards.
    pub fn extend(&mut self, later: StateChanges) {
        for (address, change) in later.accounts {
            let entry = self.accounts.entry(address).or_default();
            if change.storage_wiped || change.info.is_none() {
                entry.storage_wiped = true;
                entry.storage = change.storage;
            } else {
                entry.storage.extend(change.storage);
            }
            entry.info = change.info;
        }
        self.codes.extend(later.codes);
    }

    /// Reduces the changes to what differs from `pre`, the pre-block state: the
    /// canonical form in which both executors' results are compared.
    pub fn normalize(&mut self, pre: &dyn StateSource) -> Result<(), StateError> {
        let mut keep = BTreeMap::new();
        for (address, mut change) in std::mem::take(&mut self.accounts) {
            let before = pre.account(&address)?;
            if before.is_none() {
                // Nothing existed to wipe.
                change.storage_wiped = false;
            }
            match &mut change.info {
                None => {
                    change.storage.clear();
                    change.storage_wiped = before.is_some();
                    if before.is_none() {
                        continue;
                    }
                }
                Some(info) => {
                    let code_is_new = before.as_ref().map_or(info.code_hash != KECCAK_EMPTY, |b| {
                        b.code_hash != info.code_hash
                    });
                    if code_is_new {
                        if info.code.is_none() {
                            info.code = self.codes.get(&info.code_hash).cloned();
                        }
                    } else {
                        info.code = None;
                    }
                }
            }
            if change.storage_wiped {
                change.storage.retain(|_, value| !value.is_zero());
            } else {
                let mut unchanged = Vec::new();
                for (slot, value) in &change.storage {
                    if pre.storage(&address, slot)? == *value {
                        unchanged.push(*slot);
                    }
                }
                for slot in unchanged {
                    change.storage.remove(&slot);
                }
            }
            let same_info = match (&before, &change.info) {
                (Some(b), Some(a)) => {
                    b.balance == a.balance && b.nonce == a.nonce && b.code_hash == a.code_hash
                }
                _ => false,
            };
            if same_info && !change.storage_wiped && change.storage.is_empty() {
                continue;
            }
            keep.insert(address, change);
        }
        self.accounts = keep;
        self.codes = self
            .accounts
            .values()
            .filter_map(|c| {
                c.info
                    .as_ref()?
                    .code
                    .as_ref()
                    .map(|code| (code.hash_slow(), code.clone()))
            })
            .collect();
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
