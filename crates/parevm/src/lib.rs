//! # parevm
//!
//! A parallel EVM block execution engine that produces exactly what sequential
//! execution produces.
//!
//! - [`block`]: the block input model ([`BlockInput`], [`ChainSpec`]).
//! - [`state`]: the pre-block state seam ([`StateSource`], [`InMemoryState`],
//!   and [`CachedState`] in front of a slow source).
//! - [`sequential`]: the reference executor.
//! - [`parallel`]: the parallel executor (Block-STM, and independent
//!   partitions where the block splits).
//! - [`result`], [`changes`]: what execution produces.
//! - [`verify`]: checking a result against the block header.
//! - [`fixture`]: loading blocks from files.

pub mod block;
pub mod changes;
pub mod error;
mod evm;
pub mod fixture;
pub mod parallel;
pub mod receipt;
pub mod result;
pub mod sequential;
pub mod state;
mod system;
pub mod verify;

pub use block::{BlockInput, ChainSpec, InvalidOmmers, UnknownBlobParams};
pub use changes::{
    AccountChange, AccountChanges, AccountState, SlotChanges, SortedMap, StateChanges,
};
pub use error::ExecutionError;
pub use parallel::{ParallelConfig, execute_parallel};
pub use result::{
    BlockResult, ExecutionPath, ExecutionStats, FallbackReason, PhaseTimes, TxOutcome, TxResult,
};
pub use sequential::execute_sequential;
pub use state::{CachedState, InMemoryAccount, InMemoryState, StateError, StateSource};
