//! Adapter from [`StateSource`] to revm's database traits.

use super::{StateError, StateSource};
use alloy_primitives::{Address, B256, U256};
use revm::{Database, DatabaseRef, bytecode::Bytecode, primitives::StorageKey, state::AccountInfo};

/// A [`StateSource`] seen through revm's [`Database`] and [`DatabaseRef`].
#[derive(Debug, Clone, Copy)]
pub struct StateDb<S>(pub S);

impl<S: StateSource> DatabaseRef for StateDb<S> {
    type Error = StateError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, StateError> {
        self.0.account(&address)
    }
    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, StateError> {
        self.0.code_by_hash(&code_hash)
    }
    fn storage_ref(&self, address: Address, index: StorageKey) -> Result<U256, StateError> {
        self.0.storage(&address, &index)
    }
    fn block_hash_ref(&self, number: u64) -> Result<B256, StateError> {
        self.0.block_hash(number)
    }
}

impl<S: StateSource> Database for StateDb<S> {
    type Error = StateError;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, StateError> {
        self.basic_ref(address)
    }
    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, StateError> {
        self.code_by_hash_ref(code_hash)
    }
    fn storage(&mut self, address: Address, index: StorageKey) -> Result<U256, StateError> {
        self.storage_ref(address, index)
    }
    fn block_hash(&mut self, number: u64) -> Result<B256, StateError> {
        self.block_hash_ref(number)
    }
}
