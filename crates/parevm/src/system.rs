//! What a block applies around its transactions (system calls, block and
//! ommer rewards, withdrawals, requests), run through alloy-evm's block
//! executor so both executors follow its conventions exactly. The parallel
//! executor applies these before and after its parallel phase.

use crate::{
    block::BlockInput,
    changes::StateChanges,
    error::ExecutionError,
    evm::eth_executor,
    sequential::block_error,
    state::{StateDb, StateSource},
};
use alloy_consensus::ReceiptEnvelope;
use alloy_evm::block::BlockExecutor;
use revm::database::{State, states::bundle_state::BundleRetention};

/// The changes of the pre-transaction system calls (EIP-4788 beacon root,
/// EIP-2935 block hashes), relative to `state`.
pub(crate) fn pre_block_changes<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
) -> Result<StateChanges, ExecutionError> {
    let mut db = State::builder()
        .with_database(StateDb(state))
        .with_bundle_update()
        .build();
    let mut executor = eth_executor(block, &mut db);
    executor
        .apply_pre_execution_changes()
        .map_err(block_error)?;
    drop(executor);
    db.merge_transitions(BundleRetention::PlainState);
    Ok(StateChanges::from_bundle(&db.take_bundle()))
}

/// The changes after the transactions (requests, rewards, withdrawals, the
/// DAO fork), relative to `state`, the state after the transactions.
pub(crate) fn post_block_changes<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
    receipts: Vec<ReceiptEnvelope>,
) -> Result<StateChanges, ExecutionError> {
    let mut db = State::builder()
        .with_database(StateDb(state))
        .with_bundle_update()
        .build();
    let mut executor = eth_executor(block, &mut db);
    executor.receipts = receipts;
    executor.finish().map_err(block_error)?;
    db.merge_transitions(BundleRetention::PlainState);
    Ok(StateChanges::from_bundle(&db.take_bundle()))
}
