//! A lock-free summary of which locations lower transactions have written.
//!
//! Most reads in a block hit locations no lower transaction wrote: the
//! sender's own account, a token balance nobody else moves. Asking the
//! multi-version map for them costs a shard lock whose cache line the other
//! cores keep stealing. The filter answers those reads with one load of a
//! read-mostly line: per bucket of location hashes, the lowest transaction
//! that has written any location in the bucket during this block.
//!
//! Invariants:
//! - A bucket only ever decreases (`fetch_min`), so "no writer below `tx`"
//!   seen at one moment held at every earlier moment.
//! - A writer lowers the bucket *before* it inserts into the map and before
//!   `finish_execution` publishes the incarnation through the scheduler's
//!   atomics; a validation that starts after that publication therefore sees
//!   the lowered bucket and goes to the map. A read that races with the
//!   writer may miss the write, exactly as a map read racing with the insert
//!   would, and validation catches it.
//! - Collisions only make the answer conservative ("maybe"), never wrong.

use super::types::TxIdx;
use std::sync::atomic::{AtomicU32, Ordering};

/// Smallest and largest bucket counts: enough that a block's written
/// locations rarely collide, small enough to stay in the L2 cache.
const MIN_BUCKETS: usize = 1 << 12;
const MAX_BUCKETS: usize = 1 << 18;

/// Lowest writer per bucket of location hashes.
pub(crate) struct WriteFilter {
    buckets: Box<[AtomicU32]>,
    mask: usize,
}

impl WriteFilter {
    /// A filter sized for a block of `block_size` transactions.
    pub(crate) fn new(block_size: usize) -> Self {
        let len = Self::buckets_for(block_size);
        Self {
            buckets: (0..len).map(|_| AtomicU32::new(u32::MAX)).collect(),
            mask: len - 1,
        }
    }

    /// Empties the filter, keeping its buckets.
    pub(crate) fn clear(&mut self) {
        for bucket in self.buckets.iter_mut() {
            *bucket.get_mut() = u32::MAX;
        }
    }

    /// Sizes an empty filter for a block of `block_size` transactions:
    /// new buckets only if the block needs another count of them.
    pub(crate) fn fit(&mut self, block_size: usize) {
        if self.buckets.len() != Self::buckets_for(block_size) {
            *self = Self::new(block_size);
        }
    }

    fn buckets_for(block_size: usize) -> usize {
        block_size
            .saturating_mul(32)
            .next_power_of_two()
            .clamp(MIN_BUCKETS, MAX_BUCKETS)
    }

    /// Notes that `tx` writes a location with hash `hash`.
    pub(crate) fn note_write(&self, hash: u64, tx: TxIdx) {
        let tx = u32::try_from(tx).unwrap_or(u32::MAX - 1).min(u32::MAX - 1);
        let bucket = self.bucket(hash);
        // Plain load first: a bucket already at or below `tx` needs no
        // read-modify-write, which would take the line from other cores.
        if bucket.load(Ordering::Relaxed) > tx {
            bucket.fetch_min(tx, Ordering::AcqRel);
        }
    }

    /// Whether some transaction below `tx` may have written a location with
    /// hash `hash`; `false` is certain.
    pub(crate) fn may_have_write_below(&self, hash: u64, tx: TxIdx) -> bool {
        let tx = u32::try_from(tx).unwrap_or(u32::MAX);
        self.bucket(hash).load(Ordering::Acquire) < tx
    }

    fn bucket(&self, hash: u64) -> &AtomicU32 {
        // The low bits, which keep an account's four fields together.
        &self.buckets[hash as usize & self.mask]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_below_and_at_or_above_the_lowest_writer() {
        let filter = WriteFilter::new(10);
        let hash = 0xdead_beef_0000_1234;
        assert!(!filter.may_have_write_below(hash, 5));
        filter.note_write(hash, 3);
        filter.note_write(hash, 7);
        assert!(!filter.may_have_write_below(hash, 3));
        assert!(filter.may_have_write_below(hash, 4));
        filter.note_write(hash, 1);
        assert!(filter.may_have_write_below(hash, 2));
        assert!(!filter.may_have_write_below(hash, 1));
    }
}
