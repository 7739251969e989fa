//! The Block-STM parallel executor.
//!
//! A block runs optimistically on N threads over a multi-version memory
//! ([`mv_memory`]): every incarnation of a transaction records its read set
//! and write set ([`vm`]); validation re-checks the read set against lower
//! transactions' latest writes and aborts the incarnation on a mismatch; an
//! aborted incarnation's writes become ESTIMATE markers that make readers wait
//! instead of failing later; a collaborative [`scheduler`] hands out execution
//! and validation tasks and detects the end ([`executor`]). The final write
//! sets are then folded into the block's results in order ([`merge`]).
//!
//! Beneficiary fees and plain-transfer credits are commutative increments
//! ([`vm`]), which removes the conflict every Ethereum transaction would
//! otherwise have on the block's beneficiary.

mod executor;
mod merge;
mod mv_memory;
mod scheduler;
mod types;
mod vm;

pub use types::{
    Incarnation, Lifecycle, Location, ReadEntry, ReadSet, ReadValue, TxAccessTrace, TxIdx, Version,
    WriteSet, WriteValue,
};

use crate::{
    BlockInput, BlockResult, ExecutionError, ExecutionPath, StateChanges, StateSource, TxOutcome,
    TxResult,
    evm::outcome_of,
    state::OverlayState,
    system::{has_pre_block_calls, post_block_changes, post_block_increments, pre_block_changes},
};
use alloy_consensus::{Transaction, Typed2718};
use alloy_evm::FromRecoveredTx;
use executor::{TxExecution, Workers};
use merge::{StateAccumulator, build_receipt};
use mv_memory::MvMemory;
use revm::context::TxEnv;
use vm::VmContext;

/// Configuration of the parallel executor.
#[derive(Debug, Clone)]
pub struct ParallelConfig {
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Blocks whose transactions' gas limits sum to less than this run
    /// sequentially: below it, starting threads costs more than it saves.
    pub min_parallel_gas: u64,
}

impl ParallelConfig {
    /// With `threads` workers and the default fallback rule.
    pub fn with_threads(threads: usize) -> Self {
        Self {
            threads: threads.max(1),
            ..Self::default()
        }
    }
}

impl Default for ParallelConfig {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            min_parallel_gas: 0,
        }
    }
}

/// Executes `block` on `state` in parallel, with exactly the sequential result.
///
/// Falls back to the sequential executor (reporting
/// [`ExecutionPath::SequentialFallback`]) when parallelism cannot pay: one
/// thread, fewer than two transactions, or too little gas.
pub fn execute_parallel<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
    config: &ParallelConfig,
) -> Result<BlockResult, ExecutionError> {
    let threads = config.threads.min(block.transactions.len());
    if threads < 2 || block.gas_limit_sum() < config.min_parallel_gas {
        return fallback(block, state);
    }
    let pre = if has_pre_block_calls(block) {
        pre_block_changes(block, state)?
    } else {
        StateChanges::default()
    };
    let base = OverlayState::new(state, &pre);
    let mv = MvMemory::new(block.transactions.len());
    predict_sender_chains(block, &mv);
    let vm = vm_context(block, &base, &mv);
    let workers = Workers::new(&vm, block.transactions.len());
    workers.run(threads);
    let results = workers.into_results().map_err(ExecutionError::Internal)?;
    drop(vm);
    match assemble(block, state, &base, &pre, results, mv.into_write_sets())? {
        Some(result) => Ok(result),
        // A transaction exceeded the block's remaining gas in sequence, so it
        // is invalid and its speculative writes must not count.
        None => fallback(block, state),
    }
}

/// Executes `block` in order, recording each transaction's read and write
/// locations exactly as the parallel executor sees them.
pub fn trace_block<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
) -> Result<Vec<TxAccessTrace>, ExecutionError> {
    let pre = pre_block_changes(block, state)?;
    let base = OverlayState::new(state, &pre);
    let mv = MvMemory::new(block.transactions.len());
    let vm = vm_context(block, &base, &mv);
    let mut traces = Vec::with_capacity(block.transactions.len());
    let results =
        executor::run_in_order(&vm, block.transactions.len(), |_, reads, writes, nanos| {
            let mut trace = TxAccessTrace {
                execution_nanos: nanos,
                ..Default::default()
            };
            trace.reads = reads.iter().map(|r| r.location).collect();
            for (location, value) in writes {
                match value {
                    WriteValue::BalanceIncrement(_) => trace.increments.push(*location),
                    _ => trace.writes.push(*location),
                }
            }
            traces.push(trace);
        })
        .map_err(ExecutionError::Internal)?;
    for (trace, result) in traces.iter_mut().zip(results) {
        trace.gas_used = match result {
            Some(Ok(r)) => r.tx_gas_used(),
            _ => 0,
        };
    }
    Ok(traces)
}

/// Dependency prediction: a transaction followed in the block by another
/// from the same sender will write that sender's nonce and balance, which the
/// follower reads. Seeding those writes as ESTIMATEs makes the follower wait
/// instead of executing on a stale nonce and aborting, again and again along
/// a long chain (exchange hot wallets send hundreds per block).
fn predict_sender_chains(block: &BlockInput, mv: &MvMemory) {
    let mut last_of_sender: alloy_primitives::map::HashMap<alloy_primitives::Address, TxIdx> =
        Default::default();
    for (index, tx) in block.transactions.iter().enumerate() {
        let sender = tx.signer();
        if let Some(previous) = last_of_sender.insert(sender, index) {
            mv.seed_estimates(
                previous,
                &[Location::Nonce(sender), Location::Balance(sender)],
            );
        }
    }
}

fn fallback<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
) -> Result<BlockResult, ExecutionError> {
    let mut result = crate::execute_sequential(block, state)?;
    result.path = ExecutionPath::SequentialFallback;
    Ok(result)
}

fn vm_context<'a, S: StateSource + ?Sized>(
    block: &BlockInput,
    base: &'a S,
    mv: &'a MvMemory,
) -> VmContext<'a, S> {
    let env = block.evm_env();
    let tx_envs: Vec<TxEnv> = block
        .transactions
        .iter()
        .map(|tx| TxEnv::from_recovered_tx(tx.inner(), tx.signer()))
        .collect();
    let lazy_recipients = tx_envs.iter().map(vm::lazy_recipient).collect();
    VmContext {
        base,
        mv,
        block_env: env.block_env,
        cfg_env: env.cfg_env,
        tx_envs,
        lazy_recipients,
    }
}

/// Builds the block result from the final incarnations, in block order.
/// Returns `None` if sequential semantics would reject a transaction for the
/// block's gas limit (then the caller re-executes sequentially).
fn assemble<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
    base: &OverlayState<'_, S>,
    pre: &StateChanges,
    results: Vec<Option<TxExecution>>,
    write_sets: Vec<WriteSet>,
) -> Result<Option<BlockResult>, ExecutionError> {
    let tx_gas_cap = revm::context_interface::Cfg::tx_gas_limit_cap(&block.evm_env().cfg_env);
    let increments = post_block_increments(block);
    let mut transactions = Vec::with_capacity(results.len());
    let mut receipts = Vec::with_capacity(results.len());
    let mut cumulative_gas = 0u64;
    for (index, (tx, result)) in block.transactions.iter().zip(results).enumerate() {
        let result = result.ok_or_else(|| {
            ExecutionError::Internal(format!("transaction {index} never executed"))
        })?;
        match result {
            Err(invalid) => {
                transactions.push(TxResult {
                    outcome: TxOutcome::Invalid {
                        reason: invalid.to_string(),
                    },
                    receipt: None,
                });
            }
            Ok(result) => {
                if tx.gas_limit().min(tx_gas_cap) > block.header.gas_limit - cumulative_gas {
                    return Ok(None);
                }
                cumulative_gas += result.tx_gas_used();
                let outcome = outcome_of(&result);
                let tx_type = alloy_consensus::TxType::try_from(tx.ty())
                    .map_err(|e| ExecutionError::Internal(format!("transaction {index}: {e}")))?;
                let receipt = build_receipt(tx_type, result, cumulative_gas);
                if increments.is_none() {
                    receipts.push(receipt.clone());
                }
                transactions.push(TxResult {
                    outcome,
                    receipt: Some(receipt),
                });
            }
        }
    }
    let mut accumulator = StateAccumulator::default();
    for writes in &write_sets {
        accumulator.apply(writes);
    }
    if let Some(increments) = &increments {
        let writes: WriteSet = increments
            .iter()
            .map(|(a, v)| (Location::Balance(*a), WriteValue::BalanceIncrement(*v)))
            .collect();
        accumulator.apply(&writes);
    }
    let mut changes = pre.clone();
    changes.extend(accumulator.finish(base)?);
    if increments.is_none() {
        let post = post_block_changes(block, &OverlayState::new(state, &changes), receipts)?;
        changes.extend(post);
    }
    changes.normalize(&state)?;
    Ok(Some(BlockResult {
        transactions,
        gas_used: cumulative_gas,
        state: changes,
        path: ExecutionPath::Parallel,
    }))
}
