//! The sequential executor: every transaction in order on revm, exactly as a
//! node executes a block. It is the reference the parallel executor must
//! match byte for byte.

use crate::{
    block::BlockInput,
    error::ExecutionError,
    evm::{EthExecutor, classify_tx_error, eth_executor, outcome_of, with_state_cache_normalized},
    result::{BlockResult, ExecutionPath, TxResult},
    state::StateSource,
};
use alloy_evm::block::BlockExecutor;

/// Executes `block` on `state` one transaction after another.
pub fn execute_sequential<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
) -> Result<BlockResult, ExecutionError> {
    let ((transactions, gas_used), changes) = with_state_cache_normalized(state, |db| {
        let mut executor = eth_executor(block, db);
        executor
            .apply_pre_execution_changes()
            .map_err(block_error)?;
        let mut transactions = Vec::with_capacity(block.transactions.len());
        for (index, tx) in block.transactions.iter().enumerate() {
            transactions.push(execute_one(&mut executor, index, tx)?);
        }
        let gas_used = executor.cumulative_tx_gas_used;
        executor.finish().map_err(block_error)?;
        Ok((transactions, gas_used))
    })?;
    Ok(BlockResult {
        transactions,
        gas_used,
        state: changes,
        path: ExecutionPath::Sequential,
        stats: Default::default(),
    })
}

/// Executes and commits one transaction; an invalid one changes nothing.
fn execute_one<DB: revm::Database + revm::DatabaseCommit + core::fmt::Debug>(
    executor: &mut EthExecutor<'_, DB>,
    index: usize,
    tx: &alloy_consensus::transaction::Recovered<alloy_consensus::TxEnvelope>,
) -> Result<TxResult, ExecutionError> {
    match executor.execute_transaction_without_commit(tx.as_recovered_ref()) {
        Ok(output) => {
            let outcome = outcome_of(&output.result.result);
            executor.commit_transaction(output);
            let receipt = executor.receipts.last().cloned();
            Ok(TxResult { outcome, receipt })
        }
        Err(error) => Ok(TxResult {
            outcome: classify_tx_error(index, error)?,
            receipt: None,
        }),
    }
}

pub(crate) fn block_error(error: alloy_evm::block::BlockExecutionError) -> ExecutionError {
    ExecutionError::Block(error.to_string())
}
