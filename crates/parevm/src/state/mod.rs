//! Pre-block state: the read-only view of the world that a block executes on.
//!
//! [`StateSource`] is the seam between parevm and whatever stores state (a node's
//! database, a fixture file, a synthetic workload). The parallel executor reads it
//! from many threads at once, so implementations must be `Sync` and reads should
//! be cheap and lock-free.

mod cached;
mod db;
mod memory;
mod overlay;

pub use cached::CachedState;
pub(crate) use db::FirstFailure;
pub use db::StateDb;
pub use memory::{InMemoryAccount, InMemoryState};
pub use overlay::OverlayState;

use alloy_primitives::{Address, B256, U256};
use revm::{bytecode::Bytecode, database_interface::DBErrorMarker, state::AccountInfo};

/// An error raised by a [`StateSource`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The source has no hash for a block that `BLOCKHASH` asked for.
    #[error("block hash of block {0} is not available")]
    MissingBlockHash(u64),
    /// The source has no code for a code hash that an account refers to.
    #[error("bytecode with hash {0} is not available")]
    MissingCode(B256),
    /// Any other failure of the underlying store.
    #[error("state source failed: {0}")]
    Other(String),
}

impl DBErrorMarker for StateError {}

/// Read-only, thread-safe pre-block state.
///
/// An account that does not exist is `Ok(None)`; a storage slot never written
/// reads as zero. Implementations should return a contract's code inline in
/// [`AccountInfo::code`] where they can, which saves a second lookup, but
/// leave it `None` for an account without code: every empty `Bytecode`
/// shares one reference count, which each copy of the account would write.
pub trait StateSource: Sync + core::fmt::Debug {
    /// The account at `address`, or `None` if it does not exist.
    fn account(&self, address: &Address) -> Result<Option<AccountInfo>, StateError>;
    /// The account at `address` without its code (`code` is `None`), or
    /// `None` if it does not exist: for callers that need only its
    /// balance, nonce and code hash, such as the parallel executor's
    /// assembly, which asks for every account a block changed. Implement
    /// it without copying the code where the code is inline: a copy
    /// writes the code's shared reference count, whose cache line the
    /// threads that ran the code hold.
    fn account_fields(&self, address: &Address) -> Result<Option<AccountInfo>, StateError> {
        Ok(self
            .account(address)?
            .map(|account| account.copy_without_code()))
    }
    /// The code hash of the account at `address`, or `None` if it does not
    /// exist. Asked for every call a block's prediction looks at, by
    /// several threads at once: implement it without copying the code
    /// where the code is inline (a copy writes the code's shared reference
    /// count).
    fn code_hash(&self, address: &Address) -> Result<Option<B256>, StateError> {
        Ok(self.account(address)?.map(|account| account.code_hash))
    }
    /// The bytecode with the given hash.
    fn code_by_hash(&self, code_hash: &B256) -> Result<Bytecode, StateError>;
    /// The value of `slot` in the storage of `address`.
    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError>;
    /// The hash of the block with the given number (for `BLOCKHASH`).
    fn block_hash(&self, number: u64) -> Result<B256, StateError>;
}

impl<S: StateSource + ?Sized> StateSource for &S {
    fn account(&self, address: &Address) -> Result<Option<AccountInfo>, StateError> {
        (**self).account(address)
    }
    fn account_fields(&self, address: &Address) -> Result<Option<AccountInfo>, StateError> {
        (**self).account_fields(address)
    }
    fn code_hash(&self, address: &Address) -> Result<Option<B256>, StateError> {
        (**self).code_hash(address)
    }
    fn code_by_hash(&self, code_hash: &B256) -> Result<Bytecode, StateError> {
        (**self).code_by_hash(code_hash)
    }
    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError> {
        (**self).storage(address, slot)
    }
    fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        (**self).block_hash(number)
    }
}
