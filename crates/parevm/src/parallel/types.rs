//! The vocabulary of Block-STM: transaction indices, incarnations, versions,
//! memory locations, and the read and write sets of one incarnation.

use alloy_primitives::{Address, B256, U256};
use revm::bytecode::Bytecode;

/// Position of a transaction in its block.
pub type TxIdx = usize;
/// How many times a transaction has been (re-)executed; 0 for the first run.
pub type Incarnation = usize;

/// A transaction incarnation: the unit whose writes live in multi-version memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version {
    /// The transaction.
    pub tx_idx: TxIdx,
    /// Which execution of it.
    pub incarnation: Incarnation,
}

/// One unit of state that transactions read and write. Conflicts are tracked
/// per location, so per account field and per storage slot, not per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Location {
    /// An account's balance.
    Balance(Address),
    /// An account's nonce.
    Nonce(Address),
    /// An account's code (and code hash).
    Code(Address),
    /// Whether an account was destroyed (or created empty) at this point:
    /// written only when existence changes in a way its fields do not show,
    /// and wipes the account's storage below it.
    Lifecycle(Address),
    /// One storage slot.
    Storage(Address, U256),
}

impl Location {
    /// A well-mixed 64-bit hash, cheap enough for every read of a block.
    /// Addresses and hashed storage keys are already random, so folding
    /// their words and one multiply mix them enough for hash tables. The four
    /// fields of one account hash to four consecutive values, so that the
    /// write filter (`write_filter.rs`) keeps them on one
    /// cache line.
    #[inline]
    pub fn fast_hash(&self) -> u64 {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let bytes = &self.address_ref().0.0;
        let (low, rest) = bytes.split_at(8);
        let (middle, high) = rest.split_at(8);
        let low = u64::from_le_bytes(low.try_into().unwrap_or_default());
        let middle = u64::from_le_bytes(middle.try_into().unwrap_or_default());
        let high = u32::from_le_bytes(high.try_into().unwrap_or_default());
        // Bytes 12..20, assembled from the words already loaded: an 8-byte
        // load of them overlapped the two stores the compiler had just
        // made of the address, and waited for both to reach the cache
        // (a failed store forward; a quarter of `versions_below`'s samples).
        let word12 = (middle >> 32) | (u64::from(high) << 32);
        let mut x = low ^ middle.rotate_left(23) ^ word12.rotate_left(47);
        let field = match self {
            Self::Balance(_) => 0,
            Self::Nonce(_) => 1,
            Self::Code(_) => 2,
            Self::Lifecycle(_) => 3,
            Self::Storage(_, slot) => {
                let [l0, l1, l2, l3] = *slot.as_limbs();
                x ^= (l0 ^ l1.rotate_left(13) ^ l2.rotate_left(29) ^ l3.rotate_left(43))
                    .wrapping_mul(K);
                4
            }
        };
        let product = u128::from(x) * u128::from(K);
        let mixed = (product as u64) ^ ((product >> 64) as u64);
        if field == 4 {
            mixed
        } else {
            (mixed & !3) | field
        }
    }

    /// The account this location belongs to.
    pub fn address(&self) -> Address {
        *self.address_ref()
    }

    /// The account, in place: hashing reads it without a copy.
    fn address_ref(&self) -> &Address {
        match self {
            Self::Balance(a) | Self::Nonce(a) | Self::Code(a) | Self::Lifecycle(a) => a,
            Self::Storage(a, _) => a,
        }
    }
}

impl std::hash::Hash for Location {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.fast_hash());
    }
}

/// Hashes a [`Location`] by passing its [`Location::fast_hash`] through.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LocationHasher(u64);

impl std::hash::Hasher for LocationHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only reached for keys other than `Location`; fold them in.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// How an account's existence changed, for [`Location::Lifecycle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Destroyed (SELFDESTRUCT, or removed as a touched empty account).
    Destroyed,
    /// Brought into existence while empty (possible before EIP-161 only).
    CreatedEmpty,
}

/// A value written to a location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteValue {
    /// A new balance.
    Balance(U256),
    /// A commutative balance increment (fees to the beneficiary, value to a
    /// plain recipient, a watched balance that grew): it does not depend on
    /// the balance before it.
    BalanceIncrement(U256),
    /// A commutative balance decrement (a watched balance that shrank, from
    /// a balance the transaction saw cover it).
    BalanceDecrement(U256),
    /// A new nonce.
    Nonce(u64),
    /// New code.
    Code(B256, Bytecode),
    /// An existence change.
    Lifecycle(Lifecycle),
    /// A new storage value.
    Storage(U256),
}

/// What a read observed, compared again at validation. Reads are validated by
/// value: execution is a deterministic function of the values it reads, so an
/// incarnation whose reads all still return the same values is still valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadValue {
    /// A resolved balance (increments summed).
    Balance(U256),
    /// A resolved balance at least this high: all the incarnation needed
    /// (it only sent value, or paid for itself as the sender, from a balance
    /// that covered it).
    BalanceAtLeast(U256),
    /// A nonce.
    Nonce(u64),
    /// A code hash.
    Code(B256),
    /// The latest existence change, if any.
    Lifecycle(Option<Lifecycle>),
    /// A storage value.
    Storage(U256),
}

/// One read of an incarnation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadEntry {
    /// Where.
    pub location: Location,
    /// What it saw.
    pub value: ReadValue,
    /// Whether the value came from the pre-block state (no lower transaction
    /// had written it): if that is still so, validation needs no comparison.
    pub from_base: bool,
}

/// Everything one incarnation read, in order of first read.
pub type ReadSet = Vec<ReadEntry>;
/// Everything one incarnation wrote.
pub type WriteSet = Vec<(Location, WriteValue)>;

/// The locations one transaction read and wrote in its final (committed)
/// incarnation, with its gas and time: the raw material of dependency analysis.
#[derive(Debug, Clone, Default)]
pub struct TxAccessTrace {
    /// Locations read in full. Balances the EVM did not observe are not
    /// among them (fee and transfer credits, deposits into contracts):
    /// those the transaction changed are `increments`. Nor is the nonce of
    /// a payout sender whose block partitions, read by its own transfers
    /// ([`trace_block`](super::trace_block)).
    pub reads: Vec<Location>,
    /// Balances only required to cover what the transaction sent or paid
    /// from them: they depend on earlier writers only if those could bring
    /// the balance below that, which the block's own order did not.
    pub bounds: Vec<Location>,
    /// Locations written with a value that depends on what was there before.
    pub writes: Vec<Location>,
    /// Locations only incremented commutatively (no dependency on earlier
    /// writers, none for later readers other than through `reads`).
    pub increments: Vec<Location>,
    /// Gas charged.
    pub gas_used: u64,
    /// Wall time of the transaction's execution, in nanoseconds.
    pub execution_nanos: u64,
    /// Of `execution_nanos`, the part that Block-STM's idle workers share
    /// with the transaction's own: hashing the logs bloom of a receipt with
    /// 512 logs or more. Zero for nearly every transaction.
    pub shared_nanos: u64,
}

/// A value alone on its cache line: the element type of the arrays with
/// one lock per transaction (the scheduler's state and dependants, which
/// share one line, the multi-version memory's read and write sets and
/// balance columns, the result slots), and of the workers' task counts.
///
/// Two workers run neighbouring transactions at the same moment, so with
/// the locks packed (2 to 5 of them to a line) each took its neighbour's
/// line from the other core at every lock, a cache-line round trip a
/// time. Padded, mainnet fixtures 14396881, 12522062, 6137495 and 7280000
/// on Block-STM ran 0.6-2.2% faster together (three interleaved rounds of
/// 21 runs, quiet phases of the 2-core AMD VM), 14396881's 1,346 cheap
/// transactions the most (1.33-1.38x of sequential against 1.31-1.33x).
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct Padded<T>(pub T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::ops::DerefMut for Padded<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Neighbours in an array of padded locks never share a cache line.
    #[test]
    fn padded_locks_of_neighbours_lie_on_lines_of_their_own() {
        let locks: Vec<Padded<Mutex<WriteSet>>> = (0..3).map(|_| Padded::default()).collect();
        for pair in locks.windows(2) {
            let (a, b) = (
                &*pair[0] as *const _ as usize,
                &*pair[1] as *const _ as usize,
            );
            assert_eq!(a % 64, 0);
            assert!(b - a >= 64);
        }
    }
}
