//! The sequential executor: every transaction in order on revm, exactly as a
//! node executes a block. It is the reference the parallel executor must
//! match byte for byte.

use crate::{
    block::BlockInput,
    changes::StateChanges,
    error::ExecutionError,
    evm::{classify_tx_error, eth_executor, outcome_of},
    result::{BlockResult, ExecutionPath, TxResult},
    state::{StateDb, StateSource},
};
use alloy_evm::block::BlockExecutor;
use revm::database::{State, states::bundle_state::BundleRetention};

/// Executes `block` on `state` one transaction after another.
pub fn execute_sequential<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
) -> Result<BlockResult, ExecutionError> {
    let mut db = State::builder()
        .with_database(StateDb(state))
        .with_bundle_update()
        .build();
    let mut executor = eth_executor(block, &mut db);
    executor
        .apply_pre_execution_changes()
        .map_err(block_error)?;

    let mut transactions = Vec::with_capacity(block.transactions.len());
    for (index, tx) in block.transactions.iter().enumerate() {
        match executor.execute_transaction_without_commit(tx.as_recovered_ref()) {
            Ok(output) => {
                let outcome = outcome_of(&output.result.result);
                executor.commit_transaction(output);
                let receipt = executor.receipts.last().cloned();
                transactions.push(TxResult { outcome, receipt });
            }
            Err(error) => {
                let outcome = classify_tx_error(index, error)?;
                transactions.push(TxResult {
                    outcome,
                    receipt: None,
                });
            }
        }
    }
    let gas_used = executor.cumulative_tx_gas_used;
    executor.finish().map_err(block_error)?;

    db.merge_transitions(BundleRetention::PlainState);
    let mut changes = StateChanges::from_bundle(&db.take_bundle());
    changes.normalize(&state)?;
    Ok(BlockResult {
        transactions,
        gas_used,
        state: changes,
        path: ExecutionPath::Sequential,
    })
}

pub(crate) fn block_error(error: alloy_evm::block::BlockExecutionError) -> ExecutionError {
    ExecutionError::Block(error.to_string())
}
