//! The Block-STM parallel executor.
//!
//! Being written: for now it delegates to the sequential executor.

mod types;

pub use types::{
    Incarnation, Lifecycle, Location, ReadSet, ReadValue, TxAccessTrace, TxIdx, Version, WriteSet,
    WriteValue,
};

use crate::{BlockInput, BlockResult, ExecutionError, StateSource};

/// Configuration of the parallel executor.
#[derive(Debug, Clone)]
pub struct ParallelConfig {
    /// Worker threads.
    pub threads: usize,
}

impl ParallelConfig {
    /// With `threads` workers.
    pub fn with_threads(threads: usize) -> Self {
        Self { threads }
    }
}

impl Default for ParallelConfig {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// Executes `block` on `state` in parallel.
pub fn execute_parallel<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
    _config: &ParallelConfig,
) -> Result<BlockResult, ExecutionError> {
    crate::execute_sequential(block, state)
}

/// Executes `block` in order, recording each transaction's read and write
/// locations exactly as the parallel executor sees them.
pub fn trace_block<S: StateSource + ?Sized>(
    block: &BlockInput,
    _state: &S,
) -> Result<Vec<TxAccessTrace>, ExecutionError> {
    Ok(vec![TxAccessTrace::default(); block.transactions.len()])
}
