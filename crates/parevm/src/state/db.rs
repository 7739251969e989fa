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

/// A database that remembers the first error its source returned.
/// alloy-evm reports a system call, reward or withdrawal whose read failed
/// as a message; the executors hand the caller the source's own error
/// instead ([`ExecutionError::State`](crate::ExecutionError::State)),
/// which a node acts on (it fetches what was missing and runs the block
/// again).
#[derive(Debug)]
pub(crate) struct FirstFailure<DB> {
    database: DB,
    failure: Option<StateError>,
}

impl<DB> FirstFailure<DB> {
    /// `database`, with no failure yet.
    pub(crate) fn new(database: DB) -> Self {
        Self {
            database,
            failure: None,
        }
    }

    /// The first error the database returned, if it returned one.
    pub(crate) fn take_failure(&mut self) -> Option<StateError> {
        self.failure.take()
    }

    /// Passes `result` on, remembering its error if it is the first.
    fn noted<T>(&mut self, result: Result<T, StateError>) -> Result<T, StateError> {
        if let Err(error) = &result
            && self.failure.is_none()
        {
            self.failure = Some(error.clone());
        }
        result
    }
}

impl<DB: Database<Error = StateError>> Database for FirstFailure<DB> {
    type Error = StateError;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, StateError> {
        let result = self.database.basic(address);
        self.noted(result)
    }
    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, StateError> {
        let result = self.database.code_by_hash(code_hash);
        self.noted(result)
    }
    fn storage(&mut self, address: Address, index: StorageKey) -> Result<U256, StateError> {
        let result = self.database.storage(address, index);
        self.noted(result)
    }
    fn block_hash(&mut self, number: u64) -> Result<B256, StateError> {
        let result = self.database.block_hash(number);
        self.noted(result)
    }
}
