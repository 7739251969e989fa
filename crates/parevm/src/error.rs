//! Errors of block execution.

use crate::{
    block::{InvalidOmmers, UnknownBlobParams},
    state::StateError,
};

/// Why a block could not be executed at all. (A transaction that is merely
/// invalid is not an error: it is reported as [`crate::TxOutcome::Invalid`].)
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExecutionError {
    /// The state source failed.
    #[error("state: {0}")]
    State(#[from] StateError),
    /// The chain's blob fee parameters at the block are unknown.
    #[error(transparent)]
    UnknownBlobParams(#[from] UnknownBlobParams),
    /// The block's ommers cannot be rewarded.
    #[error("ommers: {0}")]
    InvalidOmmers(#[from] InvalidOmmers),
    /// Block-level processing (system calls, rewards, withdrawals) failed.
    #[error("block processing: {0}")]
    Block(String),
    /// The EVM failed for a reason that is not the transaction's fault.
    #[error("transaction {index}: {message}")]
    Evm {
        /// Index of the transaction in the block.
        index: usize,
        /// What went wrong.
        message: String,
    },
    /// A worker thread panicked (a bug in parevm or revm).
    #[error("internal error: {0}")]
    Internal(String),
}
