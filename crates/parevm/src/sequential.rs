//! The sequential executor: every transaction in order on revm, exactly as a
//! node executes a block. It is the reference the parallel executor must
//! match byte for byte.

use crate::{
    block::BlockInput,
    error::ExecutionError,
    evm::{EthExecutor, classify_tx_error, eth_executor, outcome_of, with_state_cache_normalized},
    result::{BlockResult, ExecutionPath, TxResult},
    state::StateSource,
    system::requests_of,
};
use alloy_evm::block::BlockExecutor;

/// Executes `block` on `state` one transaction after another.
pub fn execute_sequential<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
) -> Result<BlockResult, ExecutionError> {
    block.check()?;
    execute_checked(block, state)
}

/// [`execute_sequential`] for a block already [checked](BlockInput::check):
/// the parallel executor's fallback, which checked it before deciding, and
/// on a 10 us block (mainnet fixture 19910734, empty) a second check is 1-2%
/// of the run.
pub(crate) fn execute_checked<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
) -> Result<BlockResult, ExecutionError> {
    let txs = block.transactions.len();
    let ((transactions, gas_used, requests), changes) =
        with_state_cache_normalized(state, txs, |db| {
            let mut executor = eth_executor(block, db);
            executor
                .apply_pre_execution_changes()
                .map_err(block_error)?;
            let mut transactions = Vec::with_capacity(block.transactions.len());
            for (index, tx) in block.transactions.iter().enumerate() {
                transactions.push(execute_one(&mut executor, index, tx)?);
            }
            let (_, output) = executor.finish().map_err(block_error)?;
            attach_receipts(&mut transactions, output.receipts)?;
            let requests = requests_of(block, output.requests);
            Ok((transactions, output.gas_used, requests))
        })?;
    Ok(BlockResult {
        transactions,
        gas_used,
        state: changes,
        requests,
        path: ExecutionPath::Sequential,
        stats: Default::default(),
    })
}

/// Executes and commits one transaction; an invalid one changes nothing.
/// Its receipt stays with the executor until [`attach_receipts`].
fn execute_one<DB: revm::Database + revm::DatabaseCommit + core::fmt::Debug>(
    executor: &mut EthExecutor<'_, DB>,
    index: usize,
    tx: &alloy_consensus::transaction::Recovered<alloy_consensus::TxEnvelope>,
) -> Result<TxResult, ExecutionError> {
    match executor.execute_transaction_without_commit(tx.as_recovered_ref()) {
        Ok(output) => {
            let outcome = outcome_of(&output.result.result);
            executor.commit_transaction(output);
            Ok(TxResult {
                outcome,
                receipt: None,
            })
        }
        Err(error) => Ok(TxResult {
            outcome: classify_tx_error(index, error)?,
            receipt: None,
        }),
    }
}

/// Gives each valid transaction its receipt, moved out of the executor's
/// (one per valid transaction, in order) instead of cloned per transaction.
fn attach_receipts(
    transactions: &mut [TxResult],
    receipts: Vec<alloy_consensus::ReceiptEnvelope>,
) -> Result<(), ExecutionError> {
    let mut valid: Vec<&mut TxResult> = transactions
        .iter_mut()
        .filter(|tx| !tx.outcome.is_invalid())
        .collect();
    if valid.len() != receipts.len() {
        return Err(ExecutionError::Block(format!(
            "{} receipts for {} valid transactions",
            receipts.len(),
            valid.len()
        )));
    }
    for (tx, receipt) in valid.iter_mut().zip(receipts) {
        tx.receipt = Some(receipt);
    }
    Ok(())
}

pub(crate) fn block_error(error: alloy_evm::block::BlockExecutionError) -> ExecutionError {
    ExecutionError::Block(error.to_string())
}
