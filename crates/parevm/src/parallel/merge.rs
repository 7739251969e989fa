//! Where results are merged: once every transaction is executed and
//! validated, the final incarnations' write sets are folded in block order
//! into the block's state changes (resolving commutative increments), and
//! receipts are built with cumulative gas.

use super::{
    types::{Lifecycle, Location, WriteValue},
    vm::Executed,
};
use crate::{
    changes::{AccountChange, AccountState, StateChanges, codes_of},
    state::{OverlayState, StateError, StateSource},
};
use alloy_consensus::{ReceiptEnvelope, TxType};
use alloy_primitives::{Address, B256, U256, map::HashMap};
use revm::{bytecode::Bytecode, primitives::KECCAK_EMPTY, state::AccountInfo};
use std::collections::BTreeMap;

/// One account's writes folded together.
#[derive(Default)]
struct AccountWrites {
    balance: Option<U256>,
    increments: U256,
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
}

impl StateChanges {
    /// The changes of parts `a` and `b`, which hold different accounts,
    /// each in ascending order.
    pub(crate) fn from_parts(a: FoldedPart, b: FoldedPart) -> Self {
        let mut codes = a.codes;
        codes.extend(b.codes);
        let mut accounts = Vec::with_capacity(a.accounts.len() + b.accounts.len());
        let mut b = b.accounts.into_iter().peekable();
        for entry in a.accounts {
            while let Some(lower) = b.next_if(|(address, _)| *address < entry.0) {
                accounts.push(lower);
            }
            accounts.push(entry);
        }
        accounts.extend(b);
        // Sorted, so collecting checks the order in one pass and bulk-builds
        // the map.
        Self {
            accounts: accounts.into_iter().collect(),
            codes,
        }
    }
}

/// Folds write sets, in block order, into state changes.
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

    /// Applies the next transaction's writes.
    pub(crate) fn apply<'w>(&mut self, writes: impl Iterator<Item = &'w (Location, WriteValue)>) {
        for (location, value) in writes {
            let account = self.accounts.entry(location.address()).or_default();
            match (location, value) {
                (_, WriteValue::Balance(b)) => {
                    account.balance = Some(*b);
                    account.increments = U256::ZERO;
                }
                (_, WriteValue::BalanceIncrement(d)) => {
                    account.increments = account.increments.wrapping_add(*d)
                }
                (_, WriteValue::Nonce(n)) => account.nonce = Some(*n),
                (_, WriteValue::Code(hash, code)) => account.code = Some((*hash, code.clone())),
                (_, WriteValue::Lifecycle(l)) => {
                    account.lifecycle = Some(*l);
                    if *l == Lifecycle::Destroyed {
                        account.destroyed = true;
                        account.storage.clear();
                    }
                }
                (Location::Storage(_, slot), WriteValue::Storage(v)) => {
                    account.storage.insert(*slot, *v);
                }
                (_, WriteValue::Storage(_)) => {}
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
                accounts.push((*address, change.clone(), state.account(address)?));
            }
        }
        let base = OverlayState::new(state, pre);
        for (address, writes) in self.accounts {
            let original = state.account(&address)?;
            let pre_change = pre.accounts.get(&address);
            let overlaid;
            let before = match pre_change {
                None => original.as_ref(),
                Some(_) => {
                    overlaid = base.account(&address)?;
                    overlaid.as_ref()
                }
            };
            if let Some((hash, code)) = &writes.code
                && *hash != KECCAK_EMPTY
            {
                codes.insert(*hash, code.clone());
            }
            let change = writes.into_change(before);
            let change = match pre_change {
                None => change,
                Some(pre_change) => {
                    let mut composed = pre_change.clone();
                    composed.then(change);
                    composed
                }
            };
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
        changes.sort_unstable_by_key(|(address, _)| *address);
        let codes = if normalize {
            codes_of(changes.iter().map(|(_, change)| change))
        } else {
            codes
        };
        Ok(FoldedPart {
            accounts: changes,
            codes,
        })
    }
}

impl AccountWrites {
    /// The account after these writes, on top of `before`.
    fn into_change(self, before: Option<&AccountInfo>) -> AccountChange {
        let balance = self
            .balance
            .unwrap_or_else(|| before.map_or(U256::ZERO, |b| b.balance))
            .wrapping_add(self.increments);
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
        AccountChange {
            info,
            storage_wiped: self.destroyed,
            storage: self.storage,
        }
    }
}

/// A transaction's receipt (the bloom was computed by the worker).
pub(crate) fn build_receipt(
    tx_type: TxType,
    executed: Executed,
    cumulative_gas_used: u64,
) -> ReceiptEnvelope {
    let success = executed.result.is_success();
    let logs_bloom = executed.logs_bloom();
    let logs = executed.result.into_logs();
    crate::receipt::receipt_envelope(tx_type, success, cumulative_gas_used, logs, logs_bloom)
}
