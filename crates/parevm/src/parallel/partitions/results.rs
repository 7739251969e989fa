//! Where the partitions leave their transactions' results: in place, in
//! the block's vector of results, each at its transaction's index. The
//! assembly then only threads the cumulative gas through the receipts in
//! block order ([`PlacedResults::receipts`]), where it used to move every
//! result into block order: a result is 400 bytes, and that move of
//! 5,000 transfers' results was the assembly's longest task (266 us of its
//! 480 on the 2-core VM).
//!
//! Safety rests on one invariant, checked when the slots are made
//! ([`ResultSlots::new`]): every transaction of the block is in exactly
//! one partition (the one its `partition_of` names), where they are in
//! block order. A partition's slots are written only through its one
//! [`SlotWriter`] (claimed at most once), in the partition's order, and
//! the writer counts them on a line of its own. So no slot is written
//! twice or by two threads, and the counts tell which slots hold a result
//! (the first `count` of each partition's transactions'): those are
//! dropped if the run is discarded, and the vector takes them all once
//! every partition wrote every one.

use super::Partitions;
use crate::{
    BlockInput, ExecutionError, TxResult,
    parallel::{
        block_gas::{BlockGas, TxGas},
        merge::Receipts,
        types::{Padded, TxIdx},
    },
};
use alloy_consensus::Transaction as _;
use std::{
    ptr::NonNull,
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
};

/// One slot per transaction of a block, in block order, written by the
/// partitions ([`SlotWriter`]).
pub(super) struct ResultSlots<'a> {
    /// Room for every transaction's result; its length stays zero until
    /// [`PlacedResults::receipts`] finds every slot written.
    buffer: Vec<TxResult>,
    /// The start of `buffer`'s allocation, where slot `i` is the `i`th.
    base: NonNull<TxResult>,
    /// The plan the slots were checked against: each partition's
    /// transactions in block order, and each transaction's partition (one
    /// per slot; the buffer's capacity may be larger).
    plan: &'a Partitions,
    /// How many of each partition's slots hold a result: those of its
    /// first transactions.
    written: Box<[Padded<AtomicUsize>]>,
    /// Whether each partition's writer was handed out.
    claimed: Box<[AtomicBool]>,
}

// SAFETY: the slots are only written through writers, each of which owns
// its partition's slots alone (see the module's invariant); everything else
// shared is atomic. A `TxResult` may move between threads (checked below).
unsafe impl Send for ResultSlots<'_> {}
// SAFETY: as for `Send`: `&ResultSlots` only hands out writers, each once.
unsafe impl Sync for ResultSlots<'_> {}

/// The results written on the partitions' threads are dropped or returned
/// on the caller's: sound only while a result may move between threads.
const _: fn() = || {
    fn movable_between_threads<T: Send>() {}
    movable_between_threads::<TxResult>();
};

impl<'a> ResultSlots<'a> {
    /// Slots for a block of `transactions`, to be written by `partitions`;
    /// an error unless every transaction is in exactly one partition, in
    /// block order. Checked without a map of its own: a transaction listed
    /// only in the partition its `partition_of` names, in ascending order
    /// within it, is listed once; listings that add up to the block's size
    /// then hold every transaction.
    pub(super) fn new(
        partitions: &'a Partitions,
        transactions: usize,
    ) -> Result<Self, ExecutionError> {
        let Partitions {
            txs, partition_of, ..
        } = partitions;
        let mut count = 0usize;
        for (partition, txs) in txs.iter().enumerate() {
            let listed_once = txs
                .iter()
                .all(|&index| partition_of.get(index).map(|&p| p as usize) == Some(partition));
            if !listed_once || !txs.is_sorted_by(|a, b| a < b) {
                return Err(not_a_partition());
            }
            count += txs.len();
        }
        if count != transactions || partition_of.len() != transactions {
            return Err(not_a_partition());
        }
        let mut buffer = Vec::with_capacity(transactions);
        let base = NonNull::new(buffer.as_mut_ptr()).unwrap_or(NonNull::dangling());
        Ok(Self {
            buffer,
            base,
            plan: partitions,
            written: txs.iter().map(|_| Padded::default()).collect(),
            claimed: txs.iter().map(|_| AtomicBool::new(false)).collect(),
        })
    }

    /// The writer of partition `partition`'s slots; `None` if it was
    /// handed out before (or there is no such partition).
    pub(super) fn writer(&self, partition: usize) -> Option<SlotWriter<'_>> {
        let claimed = self.claimed.get(partition)?;
        if claimed.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(SlotWriter {
            base: self.base,
            txs: &self.plan.txs[partition],
            written: &self.written[partition],
            next: 0,
        })
    }

    /// How many slots there are: the block's transactions.
    fn transactions(&self) -> usize {
        self.plan.partition_of.len()
    }

    /// Whether every slot holds a result.
    fn all_written(&self) -> bool {
        (self.plan.txs.iter())
            .zip(self.written.iter())
            .all(|(txs, written)| written.load(Ordering::Acquire) == txs.len())
    }

    /// The slot of transaction `index`, which holds a result.
    ///
    /// # Safety
    /// No writer may be alive, and slot `index` must hold a result.
    unsafe fn written_mut(&mut self, index: TxIdx) -> &mut TxResult {
        // SAFETY: per the caller, the slot is initialized and nothing else
        // refers to it; `&mut self` keeps it so.
        unsafe { &mut *self.base.as_ptr().add(index) }
    }

    /// The results in block order, once every slot holds one.
    ///
    /// # Safety
    /// No writer may be alive, and every slot must hold a result.
    unsafe fn into_vec(mut self) -> Vec<TxResult> {
        let mut buffer = std::mem::take(&mut self.buffer);
        // Nothing is left for `drop` to drop: the vector owns them now.
        for written in self.written.iter() {
            written.store(0, Ordering::Relaxed);
        }
        // SAFETY: per the caller, every slot up to the block's size is
        // initialized, and the buffer has room for them all.
        unsafe { buffer.set_len(self.transactions()) };
        buffer
    }
}

impl Drop for ResultSlots<'_> {
    /// Drops the results written so far (a run discarded or given up).
    fn drop(&mut self) {
        for (txs, written) in self.plan.txs.iter().zip(self.written.iter()) {
            for &index in &txs[..written.load(Ordering::Acquire).min(txs.len())] {
                // SAFETY: the partition's writer wrote this slot (its count
                // says so) and is gone (it borrowed `self`).
                unsafe { self.base.as_ptr().add(index).drop_in_place() };
            }
        }
    }
}

/// Writes one partition's results into their slots, in the partition's
/// order.
pub(super) struct SlotWriter<'s> {
    base: NonNull<TxResult>,
    txs: &'s [TxIdx],
    written: &'s AtomicUsize,
    /// The partition's next transaction, by its position in `txs`.
    next: usize,
}

impl SlotWriter<'_> {
    /// Writes the result of the partition's next transaction; an error if
    /// every one of them has one already.
    pub(super) fn push(&mut self, result: TxResult) -> Result<(), ExecutionError> {
        let &index = self.txs.get(self.next).ok_or_else(|| {
            ExecutionError::Internal("a partition finished more transactions than it has".into())
        })?;
        // SAFETY: `index` is this partition's alone (`ResultSlots::new`
        // checked that the partitions do not overlap, and this writer was
        // handed out once), is within the block's size (the buffer has room
        // for it), and is written once (`next` only grows).
        unsafe { self.base.as_ptr().add(index).write(result) };
        self.next += 1;
        self.written.store(self.next, Ordering::Release);
        Ok(())
    }
}

/// The partitions' results, in their slots, with the gas each charged (in
/// each partition's order), to be handed over as the block's receipts.
pub(crate) struct PlacedResults<'a> {
    pub(super) slots: ResultSlots<'a>,
    /// Each partition's transactions' gas, in its order.
    pub(super) gas: Vec<Vec<TxGas>>,
}

impl PlacedResults<'_> {
    /// The block's results in block order with their receipts' cumulative
    /// gas, and the block's gas used; a fallback if a transaction does not
    /// fit in the block's remaining gas (counted as `collect_receipts` in
    /// `parallel/merge.rs` counts it, with [`BlockGas`]).
    pub(crate) fn receipts(mut self, block: &BlockInput) -> Result<Receipts, ExecutionError> {
        let unfinished = || ExecutionError::Internal("a partition left results unwritten".into());
        let size = block.transactions.len();
        let same_block = self.slots.transactions() == size;
        if !same_block || !self.slots.all_written() {
            return Err(unfinished());
        }
        let mut budget = BlockGas::new(block.header.gas_limit, &block.evm_env().cfg_env);
        let mut next_of = vec![0usize; self.gas.len()];
        for (index, tx) in block.transactions.iter().enumerate() {
            if !budget.fits(tx.gas_limit()) {
                return Ok(Err(crate::FallbackReason::GasLimitExceeded));
            }
            let partition = self.slots.plan.partition_of[index] as usize;
            let (Some(gas), Some(next)) = (self.gas.get(partition), next_of.get_mut(partition))
            else {
                return Err(unfinished());
            };
            let gas = *gas.get(*next).ok_or_else(unfinished)?;
            *next += 1;
            // SAFETY: every slot of this block's size is written, and the
            // writers are gone (`self` is owned here).
            budget.charge_result(unsafe { self.slots.written_mut(index) }, gas);
        }
        // SAFETY: as above.
        let transactions = unsafe { self.slots.into_vec() };
        Ok(Ok((transactions, budget.header_gas_used())))
    }
}

fn not_a_partition() -> ExecutionError {
    ExecutionError::Internal("the partitions do not hold each transaction once".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TxOutcome;

    fn invalid(reason: &str) -> TxResult {
        TxResult {
            outcome: TxOutcome::Invalid {
                reason: reason.into(),
            },
            receipt: None,
        }
    }

    /// Partitions listing `txs`, each transaction's partition the last
    /// that lists it (`u32::MAX` for one none lists), over `size`.
    fn listed(txs: &[&[TxIdx]], size: usize) -> Partitions {
        let mut partition_of = vec![u32::MAX; size];
        for (partition, listed) in txs.iter().enumerate() {
            for &index in *listed {
                if let Some(p) = partition_of.get_mut(index) {
                    *p = partition as u32;
                }
            }
        }
        Partitions {
            txs: txs.iter().map(|t| t.to_vec()).collect(),
            partition_of,
            bound: 1.0,
            unpredicted: false,
            hot_recipient: None,
            owners: Default::default(),
            keys: Default::default(),
        }
    }

    #[test]
    fn slots_need_each_transaction_in_exactly_one_partition() {
        let slots = |txs: &[&[TxIdx]], size| ResultSlots::new(&listed(txs, size), size).is_ok();
        assert!(slots(&[&[0, 2], &[1]], 3));
        assert!(!slots(&[&[0, 1], &[1]], 3));
        assert!(!slots(&[&[0], &[1]], 3));
        assert!(!slots(&[&[0, 3], &[1]], 3));
        assert!(slots(&[], 0));
        // Listed twice in one partition, or out of block order.
        assert!(!slots(&[&[0, 0, 2], &[1]], 3));
        assert!(!slots(&[&[2, 0], &[1]], 3));
        // Listed where `partition_of` does not say.
        let mut crossed = listed(&[&[0, 2], &[1]], 3);
        crossed.partition_of.swap(0, 1);
        assert!(ResultSlots::new(&crossed, 3).is_err());
    }

    #[test]
    fn a_partition_has_one_writer_which_writes_only_its_slots() {
        let partitions = listed(&[&[0, 2], &[1]], 3);
        let slots = ResultSlots::new(&partitions, 3).expect("a partition");
        let mut writer = slots.writer(1).expect("first claim");
        assert!(slots.writer(1).is_none());
        assert!(slots.writer(2).is_none());
        writer.push(invalid("one")).expect("its slot");
        assert!(writer.push(invalid("two")).is_err());
    }

    /// A run given up halfway drops the results written so far (each
    /// holding a heap allocation here), and only those.
    #[test]
    fn dropping_slots_drops_what_was_written() {
        let partitions = listed(&[&[0, 2, 3], &[1, 4]], 5);
        let slots = ResultSlots::new(&partitions, 5).expect("a partition");
        let mut first = slots.writer(0).expect("claim");
        first.push(invalid("zero")).expect("slot");
        first.push(invalid("two")).expect("slot");
        let mut second = slots.writer(1).expect("claim");
        second.push(invalid("one")).expect("slot");
        assert!(!slots.all_written());
        drop(slots);
    }

    #[test]
    fn written_slots_become_the_results_in_block_order() {
        let partitions = listed(&[&[0, 2], &[1]], 3);
        let slots = ResultSlots::new(&partitions, 3).expect("a partition");
        let mut first = slots.writer(0).expect("claim");
        first.push(invalid("zero")).expect("slot");
        first.push(invalid("two")).expect("slot");
        slots
            .writer(1)
            .expect("claim")
            .push(invalid("one"))
            .expect("slot");
        assert!(slots.all_written());
        // SAFETY: every slot is written, and the writers are gone.
        let results = unsafe { slots.into_vec() };
        let reasons: Vec<_> = results
            .iter()
            .map(|r| match &r.outcome {
                TxOutcome::Invalid { reason } => reason.as_str(),
                _ => "",
            })
            .collect();
        assert_eq!(reasons, ["zero", "one", "two"]);
    }
}
