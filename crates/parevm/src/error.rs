//! Errors of block execution.

use crate::{
    block::{InvalidOmmers, UnknownBlobParams},
    state::StateError,
};

/// Why a block could not be executed at all. (A transaction that is merely
/// invalid is not an error: it is reported as [`crate::TxOutcome::Invalid`].)
/// New kinds of failure may be told apart later, so a match needs a
/// wildcard arm; [`Self::state_error`] tells the state source's failures.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ExecutionError {
    /// The state source failed outside any transaction: in a system call,
    /// reward or withdrawal (which alloy-evm reports as a message; the
    /// executors hand on the source's own error instead), or reading the
    /// pre-block values that the block's changes are told against.
    #[error("state: {0}")]
    State(#[from] StateError),
    /// The state source failed while transaction `index` ran (in order:
    /// a read that parallel execution alone made sends the block to the
    /// sequential executor, which reports only what execution in order
    /// reads).
    #[error("transaction {index}: state: {error}")]
    TxState {
        /// Index of the transaction in the block.
        index: usize,
        /// What the source said.
        error: StateError,
    },
    /// The chain's blob fee parameters at the block are unknown.
    #[error(transparent)]
    UnknownBlobParams(#[from] UnknownBlobParams),
    /// The block's ommers cannot be rewarded.
    #[error("ommers: {0}")]
    InvalidOmmers(#[from] InvalidOmmers),
    /// Block-level processing (system calls, rewards, withdrawals) failed
    /// for a reason other than the state source's.
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

impl ExecutionError {
    /// The state source's error, if the state source failed, in a
    /// transaction or outside one (a system call's read included): a node
    /// may fetch what was missing and run the block again.
    pub fn state_error(&self) -> Option<&StateError> {
        match self {
            Self::State(error) | Self::TxState { error, .. } => Some(error),
            _ => None,
        }
    }
}
