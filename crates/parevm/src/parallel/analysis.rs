//! What the parallel executor would see of a block, for analysis
//! (`parevm analyze`): each transaction's accesses as Block-STM records
//! them, which transactions the partition planner can predict, and the
//! block's dependency prediction.

use super::mv_memory::{Credited, MvMemory};
use super::{
    Location, Prediction, ReadValue, TxAccessTrace, WriteValue, block_stm::vm_context, executor,
    partitions, planning::payout_sender_of, prediction,
};
use crate::{
    BlockInput, ExecutionError, StateSource, state::OverlayState, system::pre_block_changes,
};

/// Executes `block` in order, recording each transaction's read and write
/// locations exactly as the parallel executor sees them. Where the block
/// runs as partitions with a payout sender (`parallel/partitions/payout.rs`), that
/// sender's transfers are recorded without their read of its nonce, which
/// is the one they carry, whatever ran before them.
pub fn trace_block<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
) -> Result<Vec<TxAccessTrace>, ExecutionError> {
    block.check()?;
    let pre = pre_block_changes(block, state)?;
    let base = OverlayState::new(state, &pre);
    let payout = partitioned_payout_sender(block, &base)?;
    let credited = Credited {
        beneficiary: (super::prediction::predict(block).1)
            .beneficiary_column()
            .then_some(block.header.beneficiary),
        hot: &[],
    };
    let mv = MvMemory::new(block.transactions.len(), credited);
    let vm = vm_context(block, &base, &mv);
    let mut traces = Vec::with_capacity(block.transactions.len());
    let results =
        executor::run_in_order(&vm, block.transactions.len(), |tx, reads, writes, time| {
            let mut trace = TxAccessTrace {
                execution_nanos: time.nanos,
                shared_nanos: time.shared_nanos,
                ..Default::default()
            };
            let known_nonce = payout
                .filter(|payout| block.transactions[tx].signer() == *payout)
                .map(Location::Nonce);
            for read in reads {
                match read.value {
                    _ if Some(read.location) == known_nonce => {}
                    ReadValue::BalanceAtLeast(_) => trace.bounds.push(read.location),
                    _ => trace.reads.push(read.location),
                }
            }
            for (location, value) in writes {
                match value {
                    WriteValue::BalanceIncrement(_) | WriteValue::BalanceDecrement(_) => {
                        trace.increments.push(*location)
                    }
                    _ => trace.writes.push(*location),
                }
            }
            traces.push(trace);
        })
        .map_err(ExecutionError::Internal)?;
    for (trace, result) in traces.iter_mut().zip(results) {
        trace.gas_used = match result {
            Some(finished) => finished.gas.used,
            None => 0,
        };
    }
    Ok(traces)
}

/// The payout sender of `block`
/// ([`PayoutSender`](super::partitions::PayoutSender)), if it has one and the
/// block splits into partitions with it (on two threads, with the default
/// predictions): its chain is then no dependency.
fn partitioned_payout_sender<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
) -> Result<Option<alloy_primitives::Address>, ExecutionError> {
    let Some(payout) = payout_sender_of(block, state)? else {
        return Ok(None);
    };
    let planner = partitions::Planner::new(block, 2, false)
        .with_payout_sender(payout.address)
        .with_hot_recipient(state);
    planner.predict(state);
    Ok(planner.finish().map(|_| payout.address))
}

/// Which of `block`'s transactions the partition planner predicts the
/// accesses of, each on its own, from the block and the pre-block `state`
/// (with the default predictions): plain transfers to accounts without
/// code, ERC-20 `transfer`s, and calls into code whose reach is bounded,
/// none predicted to touch the beneficiary (or a payout sender, whose own
/// transfers are keyed by their recipients, see
/// `parallel/partitions/payout.rs`, or a hot recipient, whose transfers are
/// keyed by their senders). A block runs as partitions only if all
/// are, or, with a payout sender, all but at most one in 64; `parevm
/// analyze` reports the share.
pub fn predictable_transactions<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
) -> Result<Vec<bool>, crate::state::StateError> {
    let mut planner = partitions::Planner::new(block, 1, false);
    if let Some(payout) = payout_sender_of(block, state)? {
        planner = planner.with_payout_sender(payout.address);
    }
    Ok(planner.with_hot_recipient(state).predictable(state))
}

/// What is known of `block`'s parallelism before executing it (see
/// [`Prediction`]).
pub fn predict(block: &BlockInput) -> Prediction {
    prediction::predict(block).0
}
