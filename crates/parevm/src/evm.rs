//! Glue between parevm's block model and revm / alloy-evm: the block
//! executor both paths use for system calls, rewards and withdrawals, and the
//! conversion of revm's results into [`TxOutcome`]s.

use crate::{
    block::{BlockInput, ChainSpec},
    changes::StateChanges,
    error::ExecutionError,
    receipt::EthReceiptBuilder,
    result::TxOutcome,
    state::{FirstFailure, StateDb, StateError, StateSource},
};
use alloy_evm::{
    Evm, EvmFactory,
    block::{BlockExecutionError, BlockValidationError},
    eth::{EthBlockExecutor, EthEvmFactory},
};
use revm::{
    Database, DatabaseCommit,
    context::result::{EVMError, ExecutionResult},
    database::{State, TransitionState},
    database_interface::bal::EvmDatabaseError,
};

/// alloy-evm's Ethereum block executor over database `DB`.
pub(crate) type EthExecutor<'a, DB> = EthBlockExecutor<
    'a,
    <EthEvmFactory as EvmFactory>::Evm<DB, revm::inspector::NoOpInspector>,
    &'a ChainSpec,
    EthReceiptBuilder,
>;

/// Builds alloy-evm's block executor for `block` over `db`. Both executors use
/// it for what surrounds the transactions (system calls, rewards,
/// withdrawals), so those follow alloy-evm's conventions exactly.
pub(crate) fn eth_executor<'a, DB: Database + DatabaseCommit + core::fmt::Debug>(
    block: &'a BlockInput,
    db: DB,
) -> EthExecutor<'a, DB> {
    let evm = EthEvmFactory::default().create_evm(db, block.evm_env());
    EthBlockExecutor::new(
        evm,
        block.execution_ctx(),
        &*block.chain,
        EthReceiptBuilder::default(),
    )
}

/// Runs `f` with a revm `State` cache of `state` (for alloy-evm's block
/// executor, [`eth_executor`]), then returns what `f` returned with the
/// state changes made through it (not yet normalized).
pub(crate) fn with_state_cache<S: StateSource + ?Sized, T>(
    state: &S,
    f: impl FnOnce(&mut State<SourceDb<'_, S>>) -> Result<T, ExecutionError>,
) -> Result<(T, StateChanges), ExecutionError> {
    let (value, transitions) = on_state_cache(state, 0, f)?;
    Ok((value, StateChanges::from_transitions(&transitions)))
}

/// [`with_state_cache`], with the state changes normalized against `state`
/// ([`StateChanges::from_transitions_normalized`]). The cache is sized for
/// the `transactions` that will run on it ([`state_cache`]).
pub(crate) fn with_state_cache_normalized<S: StateSource + ?Sized, T>(
    state: &S,
    transactions: usize,
    f: impl FnOnce(&mut State<SourceDb<'_, S>>) -> Result<T, ExecutionError>,
) -> Result<(T, StateChanges), ExecutionError> {
    let (value, transitions) = on_state_cache(state, transactions, f)?;
    Ok((
        value,
        StateChanges::from_transitions_normalized(&transitions, &state)?,
    ))
}

/// The database the executors' `State` caches read `S` through.
pub(crate) type SourceDb<'s, S> = FirstFailure<StateDb<&'s S>>;

/// Runs `f` on a revm `State` cache of `state` sized for `transactions`;
/// returns what it returned and the cache's transitions. If `f` failed
/// with alloy-evm's message for a block-level failure (a system call,
/// reward or withdrawal) and a read of `state` had failed, the error is
/// that read's ([`FirstFailure`]).
fn on_state_cache<S: StateSource + ?Sized, T>(
    state: &S,
    transactions: usize,
    f: impl FnOnce(&mut State<SourceDb<'_, S>>) -> Result<T, ExecutionError>,
) -> Result<(T, TransitionState), ExecutionError> {
    let mut db = state_cache(FirstFailure::new(StateDb(state)), transactions);
    let value = match f(&mut db) {
        Ok(value) => value,
        Err(ExecutionError::Block(message)) => {
            let failure = db.database.take_failure();
            return Err(failure.map_or(ExecutionError::Block(message), ExecutionError::State));
        }
        Err(error) => return Err(error),
    };
    Ok((value, db.transition_state.take().unwrap_or_default()))
}

/// A revm `State` cache over `database` that records transitions, its
/// account maps sized for `transactions` (about two accounts each, a
/// sender and a recipient). Grown from empty instead, the two maps
/// rehashed a dozen times on a block of 5,000 transfers, moving every
/// account each time into freshly faulted pages: a fifth of the
/// sequential run's profile.
pub(crate) fn state_cache<DB: revm::Database>(database: DB, transactions: usize) -> State<DB> {
    let mut cache = State::builder()
        .with_database(database)
        .with_bundle_update()
        .build();
    // At most about 260,000 accounts (a gigagas block of transfers touches
    // 95,000): reserved space is only touched as accounts arrive, but the
    // maps' control bytes are written up front.
    let accounts = transactions
        .saturating_mul(2)
        .saturating_add(16)
        .min(1 << 18);
    if transactions > 0 {
        cache.cache.accounts.reserve(accounts);
        if let Some(transitions) = cache.transition_state.as_mut() {
            transitions.transitions.reserve(accounts);
        }
    }
    cache
}

/// Converts revm's result of an executed transaction.
pub(crate) fn outcome_of<H: core::fmt::Debug>(result: &ExecutionResult<H>) -> TxOutcome {
    let gas_used = result.tx_gas_used();
    match result {
        ExecutionResult::Success { output, .. } => TxOutcome::Success {
            gas_used,
            output: output.data().clone(),
        },
        ExecutionResult::Revert { output, .. } => TxOutcome::Revert {
            gas_used,
            output: output.clone(),
        },
        ExecutionResult::Halt { reason, .. } => TxOutcome::Halt {
            gas_used,
            reason: format!("{reason:?}"),
        },
    }
}

/// Splits an alloy-evm error on one transaction into "the transaction is
/// invalid" (an outcome) and "execution itself failed" (an error).
pub(crate) fn classify_tx_error(
    index: usize,
    error: BlockExecutionError,
) -> Result<TxOutcome, ExecutionError> {
    match error {
        BlockExecutionError::Validation(BlockValidationError::InvalidTx { error, .. }) => {
            Ok(TxOutcome::Invalid {
                reason: error.to_string(),
            })
        }
        BlockExecutionError::Validation(
            e @ BlockValidationError::TransactionGasLimitMoreThanAvailableBlockGas { .. },
        ) => Ok(TxOutcome::Invalid {
            reason: e.to_string(),
        }),
        other => Err(match state_error(&other) {
            Some(error) => ExecutionError::TxState { index, error },
            None => ExecutionError::Evm {
                index,
                message: other.to_string(),
            },
        }),
    }
}

/// The state source's error that `error` wraps, if it does. The
/// sequential executor's database is a revm `State` over [`SourceDb`],
/// whose errors are [`StateError`]s inside revm's `EvmDatabaseError`
/// (which also carries block-access-list errors, never raised here: no
/// list is set).
fn state_error(error: &BlockExecutionError) -> Option<StateError> {
    let internal = error.as_internal()?;
    match internal.downcast_evm::<EVMError<EvmDatabaseError<StateError>>>()? {
        EVMError::Database(EvmDatabaseError::Database(error)) => Some(error.clone()),
        _ => None,
    }
}

/// Keeps the `Evm` trait in scope for callers of [`EthExecutor`].
#[allow(dead_code)]
fn _assert_evm<E: Evm>() {}
