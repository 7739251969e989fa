//! Where Block-STM's workers leave each transaction's result: one slot per
//! transaction, holding what its latest incarnation produced, in slots kept
//! from block to block.
//!
//! A slot is 448 bytes, so a block's slots are one large allocation
//! (212 KB for 473 transactions), which the allocator may serve
//! from fresh pages that the calling thread then faults in (the kernel
//! zeroing a whole huge page) before any worker starts. Setting up the
//! workers of five mainnet fixture blocks of 178-473 transactions took
//! 16-74 us a block with fresh slots, the high end in processes whose
//! allocator handed out fresh pages, and 13-15 us with pooled ones, on the
//! 2-core VM.

use super::{helpers::BufferPool, types::Padded, vm::FinishedTx};
use std::sync::Mutex;

/// One slot per transaction; `None` until an incarnation of it finishes.
/// Padded like the other per-transaction locks (see [`Padded`]): unpadded,
/// a slot took 416 bytes, and every other pair of neighbours shared a line.
type Slots = Vec<Padded<Mutex<Option<FinishedTx>>>>;

/// Finished blocks' slots, every one emptied. Each keeps the capacity of
/// the largest block it served: 448 bytes per transaction.
static POOL: BufferPool<Slots> = BufferPool::new();

/// One empty slot per transaction of a block, on loan from [`POOL`], emptied
/// and returned when dropped.
pub(crate) struct ResultSlots(Slots);

impl ResultSlots {
    /// An empty slot for each of `block_size` transactions.
    pub(crate) fn take(block_size: usize) -> Self {
        let mut slots = POOL.take().unwrap_or_default();
        slots.truncate(block_size);
        slots.resize_with(block_size, Padded::default);
        Self(slots)
    }
}

impl std::ops::Deref for ResultSlots {
    type Target = [Padded<Mutex<Option<FinishedTx>>>];

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Drop for ResultSlots {
    /// Empties the slots (a block that completed left them so; one that
    /// failed or was given up may not have) and returns them to the pool,
    /// unless it is full.
    fn drop(&mut self) {
        POOL.give_back(std::mem::take(&mut self.0), |slots| {
            for slot in slots {
                *slot.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TxResult;
    use crate::parallel::mv_memory::lock;

    fn finished() -> FinishedTx {
        FinishedTx {
            result: TxResult {
                outcome: crate::TxOutcome::Invalid {
                    reason: "test".into(),
                },
                receipt: None,
            },
            gas: Default::default(),
        }
    }

    #[test]
    fn slots_come_back_empty_and_fitted() {
        for size in [3, 7, 2, 0, 5] {
            let slots = ResultSlots::take(size);
            assert_eq!(slots.len(), size);
            assert!(slots.iter().all(|slot| lock(slot).is_none()));
            // A block that fails leaves results behind.
            for slot in slots.iter() {
                *lock(slot) = Some(finished());
            }
        }
    }
}
