//! A [`StateSource`] with a block's worth of changes laid over it.

use super::{StateError, StateSource};
use crate::changes::StateChanges;
use alloy_primitives::{Address, B256, U256};
use revm::{bytecode::Bytecode, state::AccountInfo};

/// `base` with `changes` applied on top, without copying `base`.
///
/// Used for the system calls that run before and after a block's
/// transactions, and to chain blocks in blockchain tests.
#[derive(Debug)]
pub struct OverlayState<'a, S: ?Sized> {
    base: &'a S,
    changes: &'a StateChanges,
}

impl<'a, S: StateSource + ?Sized> OverlayState<'a, S> {
    /// Lays `changes` over `base`.
    pub fn new(base: &'a S, changes: &'a StateChanges) -> Self {
        Self { base, changes }
    }
}

impl<S: StateSource + ?Sized> StateSource for OverlayState<'_, S> {
    fn account(&self, address: &Address) -> Result<Option<AccountInfo>, StateError> {
        let Some(change) = self.changes.accounts.get(address) else {
            return self.base.account(address);
        };
        let Some(info) = &change.info else {
            return Ok(None);
        };
        let code = match &info.code {
            Some(code) => code.clone(),
            None => self.code_by_hash(&info.code_hash)?,
        };
        Ok(Some(AccountInfo::new(
            info.balance,
            info.nonce,
            info.code_hash,
            code,
        )))
    }

    fn code_hash(&self, address: &Address) -> Result<Option<B256>, StateError> {
        match self.changes.accounts.get(address) {
            Some(change) => Ok(change.info.as_ref().map(|info| info.code_hash)),
            None => self.base.code_hash(address),
        }
    }

    fn code_by_hash(&self, code_hash: &B256) -> Result<Bytecode, StateError> {
        match self.changes.codes.get(code_hash) {
            Some(code) => Ok(code.clone()),
            None => self.base.code_by_hash(code_hash),
        }
    }

    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError> {
        let Some(change) = self.changes.accounts.get(address) else {
            return self.base.storage(address, slot);
        };
        if let Some(value) = change.storage.get(slot) {
            return Ok(*value);
        }
        if change.storage_wiped || change.info.is_none() {
            return Ok(U256::ZERO);
        }
        self.base.storage(address, slot)
    }

    fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        self.base.block_hash(number)
    }
}
