//! Validation of a partitioned run ([`partitioned`](super::partitioned)):
//! what each partition read and wrote, and the check that no partition read
//! what another wrote.
//!
//! Partitions are checked one at a time as they finish, against one map of
//! every location the finished ones touched, so the whole check costs one
//! map operation per location touched, however many partitions there are
//! (comparing every pair of partitions grows with their number).

use super::partition::{Digested, fmix64, fold_address};
use alloy_primitives::{Address, U256};
use std::{
    collections::{HashMap, hash_map::Entry},
    hash::BuildHasherDefault,
    sync::Mutex,
};

/// A location, as finely as validation tells them apart: account fields
/// change together in the transactions partitioning is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Access {
    Account(Address),
    Slot(Address, U256),
}

impl Access {
    /// A well-mixed 64-bit digest. Two locations sharing one only make
    /// validation fail needlessly (the block then runs on Block-STM), never
    /// pass wrongly, so the map holds digests: cheap to hash and to store.
    fn digest(&self) -> u64 {
        const SLOT: u64 = 0x2545_f491_4f6c_dd1d;
        let folded = match self {
            Self::Account(address) => fold_address(address),
            Self::Slot(address, slot) => {
                let [a, b, c, d] = *slot.as_limbs();
                fold_address(address).rotate_left(29)
                    ^ a
                    ^ b.rotate_left(17)
                    ^ c.rotate_left(31)
                    ^ d.rotate_left(43)
                    ^ SLOT
            }
        };
        fmix64(folded)
    }
}

/// What one partition fetched from the pre-block state and wrote.
#[derive(Debug, Default)]
pub(crate) struct Footprint {
    /// Every location fetched, once each (the partition's cache fetches a
    /// location only on its first read).
    pub reads: Vec<Access>,
    /// Every location written, possibly more than once.
    pub writes: Vec<Access>,
}

/// No partition, in [`Touched`].
const NONE: u32 = u32::MAX;
/// More than one partition, in [`Touched::reader`].
const MANY: u32 = u32::MAX - 1;

/// Which finished partitions touched one location.
#[derive(Clone, Copy)]
struct Touched {
    /// The partition that read it, or [`MANY`].
    reader: u32,
    /// The partition that wrote it, or [`NONE`].
    writer: u32,
}

/// The locations the partitions finished so far touched.
///
/// Invariant: a location's `writer` is set only when no other partition
/// has read it, and a partition's reads are recorded before its writes are
/// checked. So once every partition has finished without a conflict, no
/// partition read a location another wrote, whichever finished first.
pub(crate) struct Validation {
    touched: Mutex<HashMap<u64, Touched, BuildHasherDefault<Digested>>>,
}

impl Validation {
    /// For a block of `transactions`, about three locations each.
    pub(crate) fn new(transactions: usize) -> Self {
        Self {
            touched: Mutex::new(HashMap::with_capacity_and_hasher(
                transactions * 3,
                Default::default(),
            )),
        }
    }

    /// Adds finished `partition`'s footprint; whether it conflicts with a
    /// partition finished before it.
    pub(crate) fn conflicts(&self, partition: usize, footprint: &Footprint) -> bool {
        let me = partition as u32;
        let mut touched = self.touched.lock().unwrap_or_else(|e| e.into_inner());
        for read in &footprint.reads {
            match touched.entry(read.digest()) {
                Entry::Vacant(entry) => {
                    entry.insert(Touched {
                        reader: me,
                        writer: NONE,
                    });
                }
                Entry::Occupied(mut entry) => {
                    let seen = entry.get_mut();
                    if seen.writer != NONE && seen.writer != me {
                        return true; // read what another wrote
                    }
                    if seen.reader != me {
                        seen.reader = MANY;
                    }
                }
            }
        }
        for write in &footprint.writes {
            let seen = touched.entry(write.digest()).or_insert(Touched {
                reader: me,
                writer: NONE,
            });
            if seen.reader != me || (seen.writer != NONE && seen.writer != me) {
                return true; // wrote what another read or wrote
            }
            seen.writer = me;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn footprint(reads: &[Access], writes: &[Access]) -> Footprint {
        Footprint {
            reads: reads.to_vec(),
            writes: writes.to_vec(),
        }
    }

    const A: Access = Access::Account(Address::repeat_byte(0xaa));
    const B: Access = Access::Account(Address::repeat_byte(0xbb));
    const S: Access = Access::Slot(Address::repeat_byte(0xaa), U256::from_limbs([7, 0, 0, 0]));

    #[test]
    fn shared_reads_pass() {
        let validation = Validation::new(4);
        assert!(!validation.conflicts(0, &footprint(&[A, S], &[])));
        assert!(!validation.conflicts(1, &footprint(&[A, S, B], &[B])));
    }

    #[test]
    fn a_read_of_an_earlier_write_fails() {
        let validation = Validation::new(4);
        assert!(!validation.conflicts(0, &footprint(&[S], &[S])));
        assert!(validation.conflicts(1, &footprint(&[S], &[])));
    }

    #[test]
    fn a_write_of_an_earlier_read_fails() {
        let validation = Validation::new(4);
        assert!(!validation.conflicts(0, &footprint(&[A], &[])));
        assert!(validation.conflicts(1, &footprint(&[A], &[A])));
    }

    #[test]
    fn a_write_without_a_recorded_read_still_conflicts() {
        let validation = Validation::new(4);
        assert!(!validation.conflicts(0, &footprint(&[], &[S])));
        assert!(validation.conflicts(1, &footprint(&[S], &[])));
        let validation = Validation::new(4);
        assert!(!validation.conflicts(0, &footprint(&[S], &[])));
        assert!(validation.conflicts(1, &footprint(&[], &[S])));
    }

    #[test]
    fn an_account_and_its_slot_are_different_locations() {
        let validation = Validation::new(4);
        assert!(!validation.conflicts(0, &footprint(&[A], &[A])));
        assert!(!validation.conflicts(1, &footprint(&[S], &[S])));
        assert_ne!(A.digest(), S.digest());
    }
}
