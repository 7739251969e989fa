//! What a block applies around its transactions (system calls, block and
//! ommer rewards, withdrawals, requests), run through alloy-evm's block
//! executor so both executors follow its conventions exactly. The parallel
//! executor applies these before and after its parallel phase.

use crate::{
    block::BlockInput,
    changes::StateChanges,
    error::ExecutionError,
    evm::{eth_executor, with_state_cache},
    sequential::block_error,
    state::StateSource,
};
use alloy_consensus::ReceiptEnvelope;
use alloy_eips::eip7685::Requests;
use alloy_evm::block::{BlockExecutor, state_changes::post_block_balance_increments};
use alloy_hardforks::{EthereumHardfork, EthereumHardforks};
use alloy_primitives::{Address, U256};
use revm::primitives::hardfork::SpecId;

/// Whether the block has pre-transaction system calls (Cancun and later).
pub(crate) fn has_pre_block_calls(block: &BlockInput) -> bool {
    block.spec().is_enabled_in(SpecId::CANCUN)
}

/// The block's post-transaction changes when they are nothing but balance
/// increments (rewards, withdrawals): before Prague's request system calls,
/// and not the DAO fork block. Increments commute, so the parallel executor
/// folds them in without running an EVM. `None` when the block needs more.
pub(crate) fn post_block_increments(block: &BlockInput) -> Option<Vec<(Address, U256)>> {
    let number = block.header.number;
    if block.spec().is_enabled_in(SpecId::PRAGUE)
        || block
            .chain
            .ethereum_fork_activation(EthereumHardfork::Dao)
            .transitions_at_block(number)
    {
        return None;
    }
    let block_env = block.evm_env().block_env;
    let increments = post_block_balance_increments(
        &*block.chain,
        &block_env,
        &block.ommers,
        block.withdrawals.as_deref(),
    );
    // A zero increment only touches the account, a no-op after EIP-161 (and
    // rewards, the only increments before it, are never zero).
    Some(
        increments
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .map(|(a, v)| (a, U256::from(v)))
            .collect(),
    )
}

/// The changes of the pre-transaction system calls (EIP-4788 beacon root,
/// EIP-2935 block hashes), relative to `state`.
pub(crate) fn pre_block_changes<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
) -> Result<StateChanges, ExecutionError> {
    let ((), changes) = with_state_cache(state, |db| {
        let mut executor = eth_executor(block, db);
        executor.apply_pre_execution_changes().map_err(block_error)
    })?;
    Ok(changes)
}

/// The changes after the transactions (requests, rewards, withdrawals, the
/// DAO fork), relative to `state`, the state after the transactions, and the
/// block's requests (see [`requests_of`]).
pub(crate) fn post_block_changes<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
    receipts: Vec<ReceiptEnvelope>,
) -> Result<(StateChanges, Option<Requests>), ExecutionError> {
    let (requests, changes) = with_state_cache(state, |db| {
        let mut executor = eth_executor(block, db);
        executor.receipts = receipts;
        let (_, output) = executor.finish().map_err(block_error)?;
        Ok(requests_of(block, output.requests))
    })?;
    Ok((changes, requests))
}

/// The requests alloy-evm's block executor collected, from Prague on (before,
/// it collects none and the header has no requests hash).
pub(crate) fn requests_of(block: &BlockInput, requests: Requests) -> Option<Requests> {
    let prague = block
        .chain
        .is_prague_active_at_timestamp(block.header.timestamp);
    prague.then_some(requests)
}
