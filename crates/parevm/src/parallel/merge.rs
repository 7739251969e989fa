//! Where results are merged: once every transaction is executed and
//! validated, the final incarnations' write sets are folded in block order
//! into the block's state changes (resolving commutative increments), and
//! receipts are built with cumulative gas.

use super::{
    types::{Lifecycle, Location, WriteValue},
    vm::Executed,
};
use crate::{
    changes::{AccountChange, AccountState, StateChanges},
    state::{StateError, StateSource},
};
use alloy_consensus::{ReceiptEnvelope, TxType};
use alloy_primitives::{Address, B256, U256, map::HashMap};
use revm::{bytecode::Bytecode, primitives::KECCAK_EMPTY};
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

/// Folds write sets, in block order, into state changes.
#[derive(Default)]
pub(crate) struct StateAccumulator {
    accounts: HashMap<Address, AccountWrites>,
}

impl StateAccumulator {
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

    /// The accumulated changes relative to `base`.
    pub(crate) fn finish(self, base: &dyn StateSource) -> Result<StateChanges, StateError> {
        let mut changes = StateChanges::default();
        for (address, writes) in self.accounts {
            let before = base.account(&address)?;
            let balance = writes
                .balance
                .unwrap_or_else(|| before.as_ref().map_or(U256::ZERO, |b| b.balance))
                .wrapping_add(writes.increments);
            let nonce = writes
                .nonce
                .unwrap_or_else(|| before.as_ref().map_or(0, |b| b.nonce));
            let code_hash = match &writes.code {
                Some((hash, _)) => *hash,
                None => before.as_ref().map_or(KECCAK_EMPTY, |b| b.code_hash),
            };
            let empty = balance.is_zero() && nonce == 0 && code_hash == KECCAK_EMPTY;
            let exists = match writes.lifecycle {
                Some(Lifecycle::CreatedEmpty) => true,
                Some(Lifecycle::Destroyed) => !empty,
                None => before.is_some() || !empty,
            };
            if let Some((hash, code)) = &writes.code
                && *hash != KECCAK_EMPTY
            {
                changes.codes.insert(*hash, code.clone());
            }
            let info = exists.then(|| AccountState {
                balance,
                nonce,
                code_hash,
                code: writes.code.map(|(_, code)| code),
            });
            changes.accounts.insert(
                address,
                AccountChange {
                    info,
                    storage_wiped: writes.destroyed,
                    storage: writes.storage,
                },
            );
        }
        Ok(changes)
    }
}

/// A transaction's receipt (the bloom was computed by the worker).
pub(crate) fn build_receipt(
    tx_type: TxType,
    executed: Executed,
    cumulative_gas_used: u64,
) -> ReceiptEnvelope {
    let success = executed.result.is_success();
    let logs = executed.result.into_logs();
    crate::receipt::receipt_envelope(
        tx_type,
        success,
        cumulative_gas_used,
        logs,
        executed.logs_bloom,
    )
}
