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

    fn account_fields(&self, address: &Address) -> Result<Option<AccountInfo>, StateError> {
        if !self.changes.accounts.contains_key(address) {
            return self.base.account_fields(address);
        }
        // Changed by the block's system calls: few accounts, so the copy
        // of their code is no matter.
        Ok(self
            .account(address)?
            .map(|account| account.copy_without_code()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        changes::{AccountChange, AccountState},
        state::{InMemoryAccount, InMemoryState},
    };
    use revm::bytecode::Bytecode;

    /// `account_fields` is `account` without the code, for the in-memory
    /// state, an overlay's changed and destroyed accounts, and one it
    /// passes through; and absent accounts are absent.
    #[test]
    fn account_fields_are_the_account_without_its_code() {
        let (contract, plain, missing) = (
            Address::repeat_byte(1),
            Address::repeat_byte(2),
            Address::repeat_byte(3),
        );
        let mut state = InMemoryState::new();
        let code = Bytecode::new_raw(vec![0x60, 0x00, 0x56].into());
        state.insert_account(
            contract,
            InMemoryAccount {
                info: AccountInfo::new(U256::from(5), 1, B256::ZERO, code.clone()),
                ..Default::default()
            },
        );
        state.insert_account(
            plain,
            InMemoryAccount {
                info: AccountInfo::from_balance(U256::from(7)),
                ..Default::default()
            },
        );
        let mut changes = StateChanges::default();
        changes.accounts.insert(
            plain,
            AccountChange {
                info: Some(AccountState {
                    balance: U256::from(9),
                    nonce: 2,
                    code_hash: code.hash_slow(),
                    code: Some(code),
                }),
                ..Default::default()
            },
        );
        changes.accounts.insert(missing, AccountChange::default());
        let overlay = OverlayState::new(&state, &changes);
        let sources: [&dyn StateSource; 2] = [&state, &overlay];
        for source in sources {
            for address in [contract, plain, missing] {
                let fields = source.account_fields(&address).unwrap();
                let full = source.account(&address).unwrap();
                assert_eq!(
                    fields
                        .as_ref()
                        .map(|f| (f.balance, f.nonce, f.code_hash, f.code.is_none())),
                    full.map(|a| (a.balance, a.nonce, a.code_hash, true)),
                    "{address}"
                );
            }
        }
        assert_eq!(overlay.account_fields(&plain).unwrap().unwrap().nonce, 2);
    }
}
