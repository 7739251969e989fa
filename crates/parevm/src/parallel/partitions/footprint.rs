//! Validation of a partitioned run ([`run`](super::run)):
//! what each partition read and wrote, and the check that no partition read
//! what another wrote.
//!
//! Partitions are checked as they run, a batch of accesses at a time,
//! against one map of every location the partitions touched so far, so the
//! whole check costs one map operation per location touched, however many
//! partitions there are (comparing every pair of partitions grows with
//! their number), and a conflict is found soon after its second access.
//!
//! Locations of an account that the plan predicted for one partition alone
//! stay out of that map ([`Ownership`]): any other partition's access to
//! them is a conflict at once, so their owner's accesses need no record.
//! Most never reach this check: a transaction's accesses to the accounts
//! of its own keys are not recorded at all ([`TxKeys`](super::plan::TxKeys)).

use super::plan::{Owners, Partitions};
use crate::parallel::digest::{Digested, address_digest, fmix64};
use alloy_primitives::{Address, U256};
use std::{
    collections::{HashMap, hash_map::Entry},
    hash::BuildHasherDefault,
    sync::Mutex,
};

/// A location, as finely as validation tells them apart: account fields
/// change together in the transactions partitioning is used for, but the
/// balance of an account with code is also a location of its own, which
/// partitions may change apart (see `contract_balances.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Access {
    /// An account: loading it (every field), or changing more of it than
    /// the balance of an account with code.
    Account(Address),
    /// A storage slot.
    Slot(Address, U256),
    /// An account's balance: observed in full (a read), or, for an account
    /// with code, changed alone (a sum).
    Balance(Address),
}

impl Access {
    /// The account the location belongs to.
    pub(crate) fn address(&self) -> &Address {
        match self {
            Self::Account(address) | Self::Slot(address, _) | Self::Balance(address) => address,
        }
    }

    /// A well-mixed 64-bit digest. Two locations sharing one only make
    /// validation fail needlessly (the block then runs on Block-STM), never
    /// pass wrongly, so the map holds digests: cheap to hash and to store.
    ///
    /// A slot's address is mixed before its slot is folded in: folding is
    /// linear, so with both folded first, slots 2 and 3 of two generated
    /// addresses a few indexes apart shared a digest (the synthetic `mixed`
    /// block's partitions then failed validation on a conflict that was not).
    ///
    /// `account` is the digest of the location's account, which
    /// [`Ownership`] looked up already.
    fn digest_in(&self, account: u64) -> u64 {
        const SLOT: u64 = 0x2545_f491_4f6c_dd1d;
        const BALANCE: u64 = 0x9e37_79b9_7f4a_7c15;
        match self {
            Self::Account(_) => account,
            Self::Balance(_) => fmix64(account ^ BALANCE),
            Self::Slot(_, slot) => {
                let [a, b, c, d] = *slot.as_limbs();
                fmix64(
                    account ^ a ^ b.rotate_left(17) ^ c.rotate_left(31) ^ d.rotate_left(43) ^ SLOT,
                )
            }
        }
    }
}

/// Which partition owns each account the plan keyed, if the partitions
/// are those it packed.
///
/// Every key is predicted for the transactions of one component, and so
/// of one partition, which owns an account keyed as such. Another
/// partition reaching it was mispredicted: a read, write or sum of any of
/// its locations by another partition is a conflict, however the owner
/// touched it, so the owner's own accesses to it need not be recorded. On
/// the 2-core AMD VM the map of every location cost 5,000 AMM swaps 3.5-4%
/// of their parallel time (in-process A/B against a run without checks),
/// more than its 1.5-2.3% of the CPU samples, most likely because its
/// lines move between the cores at every batch. Every location a swap
/// touches is owned, and owning them took 2-4% off the swaps' time.
///
/// It asks more than the map does: where a mispredicted partition only
/// read what the owner only read, the run used to stand and now fails
/// (the block then runs on Block-STM). A digest two addresses share, or an
/// address shares with a holder's key, only makes an account owned that
/// is not: the same conservative answer.
pub(crate) struct Ownership<'a> {
    owners: &'a Owners,
    partition_of: &'a [u32],
}

impl<'a> Ownership<'a> {
    /// The accounts the plan of `partitions` keyed, each owned by its
    /// partition; none where the plan guessed some keys (it then leaves
    /// `Partitions::owners` empty, see `Joined::pack` in `plan.rs`). Those
    /// transactions touch what their keys do not say, and a run stood
    /// though mispredicted where what they touched met only reads or
    /// sums of another partition: a router the plan could not see into
    /// withdraws from WETH, whose other holders' deposits run in another
    /// partition (see `contract_balances.rs`).
    pub(crate) fn of(partitions: &'a Partitions) -> Self {
        Self {
            owners: &partitions.owners,
            partition_of: &partitions.partition_of,
        }
    }

    /// The partition that owns the account with digest `account`, if one
    /// does.
    fn owner(&self, account: u64) -> Option<u32> {
        let first = *self.owners.get(&account)?;
        self.partition_of.get(first as usize).copied()
    }
}

/// Whose an access's account is, to the partition making the access.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Owned {
    /// Its own: the access needs no record.
    Mine,
    /// Another partition's: a conflict.
    Other,
    /// No partition's: recorded in the map.
    Shared,
}

/// Tells whose the accounts of one partition's accesses are, and their
/// digests, remembering the accounts asked about in a direct-mapped cache
/// keyed by the address's last byte. Accesses to the accounts of a
/// transaction's own keys go unrecorded ([`TxKeys`](super::plan::TxKeys)),
/// so it is asked mostly about accounts no partition owns, such as a
/// token, whose slots a batch's accesses keep coming back to.
///
/// Before those went unrecorded, it remembered only the last two
/// accounts, and every write of a sender asked [`Ownership`] again, a
/// cache miss in the map of the block's keys: 2% of the CPU samples of an
/// ERC-20 gigagas block. With the cache, in-process A/B runs (2-core AMD
/// VM, medians of 101-301 pairs' ratios) read 5,000 ERC-20 transfers
/// 1.011 times as fast, a gigagas of them 1.009, raw transfers 1.004, AMM
/// swaps, the mixed block and hot-slot calls 0.998-1.002. (Asking for
/// every access before taking the map's lock as well, so that the
/// threads' misses overlap, read 0.99-1.01: lock contention is not what
/// the map costs.)
struct OwnerLookup<'o, 'a> {
    ownership: &'o Ownership<'a>,
    me: u32,
    recent: [Option<(Address, Owned, u64)>; OWNER_WAYS],
}

/// The entries of [`OwnerLookup`]'s cache: more than the accounts of a
/// batch of accesses (see `CHECK_BATCH` in `run.rs`).
const OWNER_WAYS: usize = 32;

impl<'o, 'a> OwnerLookup<'o, 'a> {
    /// Tells partition `me` whose accounts are.
    fn new(ownership: &'o Ownership<'a>, me: u32) -> Self {
        Self {
            ownership,
            me,
            recent: [None; OWNER_WAYS],
        }
    }

    /// Whose `access`'s account is, and the account's digest.
    fn of(&mut self, access: &Access) -> (Owned, u64) {
        let address = access.address();
        let way = usize::from(address.0[19]) % OWNER_WAYS;
        if let Some((known, owned, digest)) = &self.recent[way]
            && known == address
        {
            return (*owned, *digest);
        }
        let (owned, digest) = self.look_up(address);
        self.recent[way] = Some((*address, owned, digest));
        (owned, digest)
    }

    /// Whose the account at `address` is, and its digest, from `Ownership`.
    fn look_up(&self, address: &Address) -> (Owned, u64) {
        let digest = address_digest(address);
        let owned = match self.ownership.owner(digest) {
            Some(owner) if owner == self.me => Owned::Mine,
            Some(_) => Owned::Other,
            None => Owned::Shared,
        };
        (owned, digest)
    }
}

/// No partition, in [`Touched`].
const NONE: u32 = u32::MAX;
/// More than one partition, in [`Touched::reader`].
const MANY: u32 = u32::MAX - 1;

/// Which finished partitions touched one location.
#[derive(Clone, Copy)]
struct Touched {
    /// The partition that read it, [`MANY`], or [`NONE`] (only summed).
    reader: u32,
    /// The partition that wrote it, or [`NONE`].
    writer: u32,
    /// The partition that summed a change to it, [`MANY`], or [`NONE`].
    summer: u32,
}

impl Touched {
    /// Touched by `partition` in one way.
    fn by(reader: u32, writer: u32, summer: u32) -> Self {
        Self {
            reader,
            writer,
            summer,
        }
    }
}

/// Whether `seen` (a reader, writer or summer) is no partition but `me`.
fn other(seen: u32, me: u32) -> bool {
    seen != NONE && seen != me
}

/// The locations the partitions touched so far, but for those of owned
/// accounts ([`Ownership`]).
///
/// Invariant: a location's `writer` is set only when no other partition
/// has read, written or summed it, its `summer` only when no other
/// partition has read or written it, and a partition's reads in a batch are
/// recorded before its writes and sums in that batch are checked. So once
/// every partition has added all its accesses without a conflict, no
/// partition read or summed a location another wrote, or read one another
/// summed, whichever came first; partitions may sum one location together.
/// Of an owned account's locations, no partition but the owner touched any.
pub(crate) struct Validation<'a> {
    /// Its lookups are cache misses: 5,000 AMM swaps touch some 65,000
    /// locations, written by both threads in turn, about 4.5 ms of CPU
    /// time a block (2% of the parallel run's) before their accounts were
    /// owned ([`Ownership`]); 5,000 token transfers still record every
    /// slot of their token, which no partition owns. Tried on the 2-core AMD
    /// VM (perf samples of 65 runs): an open-addressing map of 16-byte
    /// slots, one cache line a lookup, sized from the block's gas, took 18%
    /// more with each batch's lines loaded up front and twice as much
    /// without; `Touched` packed in one word, with the map sized for 13
    /// locations a transaction, changed nothing.
    touched: Mutex<HashMap<u64, Touched, BuildHasherDefault<Digested>>>,
    ownership: Ownership<'a>,
}

impl<'a> Validation<'a> {
    /// For a block of `transactions`, about three locations each, with
    /// the accounts of `ownership` owned.
    pub(crate) fn new(transactions: usize, ownership: Ownership<'a>) -> Self {
        Self {
            touched: Mutex::new(HashMap::with_capacity_and_hasher(
                transactions * 3,
                Default::default(),
            )),
            ownership,
        }
    }

    /// Adds what `partition` read (fetched from the pre-block state, once
    /// each; or balances observed), wrote and summed (see
    /// `contract_balances.rs`) since it was last called for it; whether that
    /// conflicts with what the other partitions added so far. Called as
    /// partitions run, so whichever of two conflicting accesses comes second
    /// finds the conflict.
    pub(crate) fn conflicts(
        &self,
        partition: usize,
        reads: &[Access],
        writes: &[Access],
        sums: &[Access],
    ) -> bool {
        let me = partition as u32;
        let mut owned = OwnerLookup::new(&self.ownership, me);
        let mut touched = self.touched.lock().unwrap_or_else(|e| e.into_inner());
        for read in reads {
            let account = match owned.of(read) {
                (Owned::Mine, _) => continue,
                (Owned::Other, _) => return true, // another partition's account
                (Owned::Shared, account) => account,
            };
            match touched.entry(read.digest_in(account)) {
                Entry::Vacant(entry) => {
                    entry.insert(Touched::by(me, NONE, NONE));
                }
                Entry::Occupied(mut entry) => {
                    let seen = entry.get_mut();
                    if other(seen.writer, me) || other(seen.summer, me) {
                        return true; // read what another wrote or summed
                    }
                    if seen.reader != me {
                        seen.reader = MANY;
                    }
                }
            }
        }
        for write in writes {
            let account = match owned.of(write) {
                (Owned::Mine, _) => continue,
                (Owned::Other, _) => return true,
                (Owned::Shared, account) => account,
            };
            let seen = touched
                .entry(write.digest_in(account))
                .or_insert(Touched::by(me, NONE, NONE));
            if other(seen.reader, me) || other(seen.writer, me) || other(seen.summer, me) {
                return true; // wrote what another read, wrote or summed
            }
            seen.writer = me;
        }
        for sum in sums {
            let account = match owned.of(sum) {
                (Owned::Mine, _) => continue,
                (Owned::Other, _) => return true,
                (Owned::Shared, account) => account,
            };
            let seen = touched
                .entry(sum.digest_in(account))
                .or_insert(Touched::by(NONE, NONE, NONE));
            if other(seen.reader, me) || other(seen.writer, me) {
                return true; // summed what another read or wrote
            }
            seen.summer = if other(seen.summer, me) { MANY } else { me };
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Access {
        /// The location's digest in the map.
        fn digest(&self) -> u64 {
            self.digest_in(address_digest(self.address()))
        }
    }

    /// A validation of partitions whose plan owned no account.
    fn unowned() -> Validation<'static> {
        static NONE: std::sync::LazyLock<Owners> = std::sync::LazyLock::new(Owners::default);
        Validation::new(
            4,
            Ownership {
                owners: &NONE,
                partition_of: &[],
            },
        )
    }

    const A: Access = Access::Account(Address::repeat_byte(0xaa));
    const B: Access = Access::Account(Address::repeat_byte(0xbb));
    const S: Access = Access::Slot(Address::repeat_byte(0xaa), U256::from_limbs([7, 0, 0, 0]));

    #[test]
    fn shared_reads_pass() {
        let validation = unowned();
        assert!(!validation.conflicts(0, &[A, S], &[], &[]));
        assert!(!validation.conflicts(1, &[A, S, B], &[B], &[]));
    }

    #[test]
    fn a_read_of_an_earlier_write_fails() {
        let validation = unowned();
        assert!(!validation.conflicts(0, &[S], &[S], &[]));
        assert!(validation.conflicts(1, &[S], &[], &[]));
    }

    #[test]
    fn a_write_of_an_earlier_read_fails() {
        let validation = unowned();
        assert!(!validation.conflicts(0, &[A], &[], &[]));
        assert!(validation.conflicts(1, &[A], &[A], &[]));
    }

    #[test]
    fn a_write_without_a_recorded_read_still_conflicts() {
        let validation = unowned();
        assert!(!validation.conflicts(0, &[], &[S], &[]));
        assert!(validation.conflicts(1, &[S], &[], &[]));
        let validation = unowned();
        assert!(!validation.conflicts(0, &[S], &[], &[]));
        assert!(validation.conflicts(1, &[], &[S], &[]));
    }

    /// Generated addresses differ in their index bytes only; the synthetic
    /// AMM pools' reserves (slots 2 and 3) once shared digests across pools.
    #[test]
    fn slots_of_generated_addresses_have_distinct_digests() {
        let mut digests = std::collections::HashSet::new();
        for index in 0u64..5_000 {
            let mut bytes = [0u8; 20];
            bytes[0] = 0xc1;
            bytes[12..].copy_from_slice(&index.to_be_bytes());
            let address = Address::from(bytes);
            for slot in 0..4u64 {
                assert!(digests.insert(Access::Slot(address, U256::from(slot)).digest()));
            }
            assert!(digests.insert(Access::Account(address).digest()));
        }
    }

    const BAL: Access = Access::Balance(Address::repeat_byte(0xaa));

    #[test]
    fn partitions_may_sum_one_balance_together() {
        let validation = unowned();
        assert!(!validation.conflicts(0, &[A], &[], &[BAL]));
        assert!(!validation.conflicts(1, &[A], &[], &[BAL]));
        assert!(!validation.conflicts(2, &[A], &[], &[BAL]));
    }

    #[test]
    fn a_balance_observed_while_another_partition_sums_it_fails() {
        let validation = unowned();
        assert!(!validation.conflicts(0, &[A], &[], &[BAL]));
        assert!(validation.conflicts(1, &[A, BAL], &[], &[]));
        let validation = unowned();
        assert!(!validation.conflicts(0, &[A, BAL], &[], &[]));
        assert!(validation.conflicts(1, &[A], &[], &[BAL]));
        // Its own sum and read do not conflict.
        let validation = unowned();
        assert!(!validation.conflicts(0, &[A, BAL], &[], &[BAL]));
    }

    #[test]
    fn a_write_of_an_account_another_partition_sums_fails() {
        let validation = unowned();
        assert!(!validation.conflicts(0, &[A], &[], &[BAL]));
        assert!(validation.conflicts(1, &[A], &[A], &[]));
        let validation = unowned();
        assert!(!validation.conflicts(0, &[], &[BAL], &[]));
        assert!(validation.conflicts(1, &[], &[], &[BAL]));
    }

    #[test]
    fn an_account_and_its_slot_are_different_locations() {
        let validation = unowned();
        assert!(!validation.conflicts(0, &[A], &[A], &[]));
        assert!(!validation.conflicts(1, &[S], &[S], &[]));
        assert_ne!(A.digest(), S.digest());
    }

    /// Accounts `A` owned by partition 0 and `B` by partition 1 (through
    /// transactions 0 and 1 that keyed them), `C` by none.
    fn owned(check: impl FnOnce(&Validation<'_>)) {
        let mut owners = Owners::default();
        owners.insert(address_digest(A.address()), 0);
        owners.insert(address_digest(B.address()), 1);
        let partition_of = [0, 1];
        check(&Validation::new(
            4,
            Ownership {
                owners: &owners,
                partition_of: &partition_of,
            },
        ));
    }

    const C: Access = Access::Account(Address::repeat_byte(0xcc));
    const C_SLOT: Access = Access::Slot(Address::repeat_byte(0xcc), U256::from_limbs([7, 0, 0, 0]));

    /// An owner touches its accounts as it likes, unrecorded: only another
    /// partition's access to them conflicts, even a read of what the owner
    /// only read.
    #[test]
    fn owned_accounts_are_their_owners_alone() {
        owned(|validation| {
            assert!(!validation.conflicts(0, &[A, S], &[A, S], &[BAL]));
            assert!(!validation.conflicts(1, &[B], &[B], &[]));
            assert!(!validation.conflicts(0, &[A], &[S], &[]));
        });
        for access in [A, S, BAL] {
            owned(|validation| {
                assert!(validation.conflicts(1, &[access], &[], &[]));
            });
            owned(|validation| {
                assert!(validation.conflicts(1, &[], &[access], &[]));
            });
            owned(|validation| {
                assert!(validation.conflicts(1, &[], &[], &[access]));
            });
        }
    }

    /// Accounts no partition owns are checked location by location, as
    /// when nothing is owned, alongside owned ones.
    #[test]
    fn unowned_accounts_are_checked_in_the_map() {
        owned(|validation| {
            assert!(!validation.conflicts(0, &[A, C, C_SLOT], &[A], &[]));
            assert!(!validation.conflicts(1, &[B, C], &[B], &[]));
            assert!(validation.conflicts(1, &[], &[C_SLOT], &[]));
        });
        owned(|validation| {
            assert!(!validation.conflicts(1, &[B], &[B, C_SLOT], &[]));
            assert!(validation.conflicts(0, &[A, C_SLOT], &[], &[]));
        });
    }

    /// Accounts that share the cache entry of [`OwnerLookup`] (their last
    /// byte) in one batch are told apart: one owned by another partition
    /// still conflicts, one nobody owns is still recorded.
    #[test]
    fn accounts_sharing_a_cache_entry_are_told_apart() {
        let sharing_entry_of = |owned: u8| {
            let mut address = [owned; 20];
            address[0] = 0x01;
            Access::Account(Address::from(address))
        };
        let (like_a, like_b) = (sharing_entry_of(0xaa), sharing_entry_of(0xbb));
        owned(|validation| {
            assert!(validation.conflicts(0, &[like_b, B], &[], &[]));
        });
        owned(|validation| {
            assert!(!validation.conflicts(1, &[B, like_b], &[like_b], &[]));
            assert!(validation.conflicts(0, &[like_b], &[], &[]));
        });
        owned(|validation| {
            assert!(!validation.conflicts(0, &[A, like_a], &[like_a], &[]));
            assert!(validation.conflicts(1, &[like_a], &[], &[]));
        });
    }
}
