//! Multi-version memory: for every location, the value each transaction's
//! latest incarnation wrote, so that transaction `j` reads what the highest
//! transaction below `j` wrote, or the pre-block state if none did.
//!
//! Invariants:
//! - `data[loc]` (or, for a balance kept in a column, the column's slot
//!   `tx`) holds an entry for `tx` iff `loc` is in `last_writes[tx]`
//!   (updated together under the same `record` call by the one thread that
//!   owns `tx`'s current incarnation).
//! - An entry is an ESTIMATE only between the abort of an incarnation and the
//!   `record` of the next: a reader that meets it waits for `tx` instead of
//!   running on to certain failure.
//!
//! One location's versions, sorted by transaction, are `versions.rs`'s.

use super::{
    credit::Deltas,
    helpers::BufferPool,
    types::{
        Lifecycle, Location, LocationHasher, Padded, ReadEntry, ReadSet, ReadValue, TxIdx, Version,
        WriteSet, WriteValue,
    },
    write_filter::WriteFilter,
};
use alloy_primitives::{Address, B256, U256, map::DefaultHashBuilder};
use dashmap::DashMap;
use revm::bytecode::Bytecode;
use std::{hash::BuildHasherDefault, sync::Mutex};
use versions::{Entry, Versions, VersionsRef};

mod versions;

/// A read met the ESTIMATE of this transaction: wait for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Blocked(pub TxIdx);

/// The outcome of validating a transaction's read set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Validation {
    /// Every read still returns what it saw.
    Valid,
    /// A read changed: re-execute.
    Invalid,
    /// A read met this transaction's ESTIMATE: re-execute once it has
    /// executed again, since an execution now would meet the ESTIMATE too.
    WaitFor(TxIdx),
}

/// What a balance read resolves to, before the pre-block value is added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BalanceRead {
    /// The latest full balance below the reader, or `None` for the pre-block one.
    pub full: Option<U256>,
    /// The increments and decrements above that full balance.
    pub deltas: Deltas,
}

/// What a storage read resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StorageRead {
    /// A lower transaction wrote this value.
    Value(U256),
    /// The account's storage was wiped after the last write: zero.
    Wiped,
    /// Nothing below the reader touched it: read the pre-block state.
    Base,
}

/// The multi-version data structure of Block-STM.
pub(crate) struct MvMemory {
    data: DashMap<Location, Versions, BuildHasherDefault<LocationHasher>>,
    /// Balances credited by many of the block's transactions, the
    /// beneficiary's first ([`Credited`]): their versions live in columns
    /// with one slot per transaction, so that workers publishing credits
    /// never contend on one map entry. Read in full only by the rare
    /// transaction that observes such a balance.
    columns: Vec<Column>,
    /// Which buckets of locations lower transactions wrote: lets most reads
    /// skip `data` (see [`WriteFilter`]).
    filter: WriteFilter,
    /// Code deployed in the block, by hash; content-addressed, so unversioned.
    new_code: DashMap<B256, Bytecode, DefaultHashBuilder>,
    /// Each transaction's last incarnation's write set.
    last_writes: Vec<Padded<Mutex<WriteSet>>>,
    /// Each transaction's last incarnation's read set (on a line of its
    /// own: on one line with the write set, measured no faster, 031547c).
    last_reads: Vec<Padded<Mutex<ReadSet>>>,
}

/// Shards of the map: many, so two writers rarely share a lock.
const SHARDS: usize = 256;

/// The balances a block keeps in columns ([`MvMemory::columns`]): its
/// beneficiary's, which nearly every transaction credits (unless its own
/// transactions would walk the column too far,
/// [`Chains::beneficiary_column`](super::prediction::Chains::beneficiary_column)),
/// and those that many of its transactions send value to
/// ([`Chains::hot_recipients`](super::prediction::Chains::hot_recipients)).
/// Publishing into one map entry, both workers took its shard's lock and
/// its line of entries in turn: on mainnet fixture 14396881, whose 1,346
/// transactions pay one deposit address 1,197 times, the workers executed
/// for 5.0-5.5 ms, and for 4.3-4.6 ms with its column (sequential:
/// 3.1-3.2 ms), on the 2-core VM.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Credited<'a> {
    /// The block's beneficiary, if its balance gets a column.
    pub beneficiary: Option<Address>,
    /// Accounts that many of its transactions pay.
    pub hot: &'a [Address],
}

impl Credited<'_> {
    /// The accounts whose balances get columns, the beneficiary first.
    fn addresses(&self) -> impl Iterator<Item = &Address> {
        self.beneficiary.iter().chain(self.hot)
    }
}

/// The versions of one balance kept in a column: one slot per transaction.
struct Column {
    location: Location,
    slots: Vec<Padded<Mutex<Option<Entry>>>>,
}

impl Column {
    fn new(address: Address, block_size: usize) -> Self {
        Self {
            location: Location::Balance(address),
            slots: (0..block_size).map(|_| Padded::default()).collect(),
        }
    }
}

impl MvMemory {
    pub(crate) fn new(block_size: usize, credited: Credited<'_>) -> Self {
        let columns = credited
            .addresses()
            .map(|address| Column::new(*address, block_size))
            .collect();
        Self {
            data: DashMap::with_capacity_and_hasher_and_shard_amount(
                block_size * 4,
                BuildHasherDefault::default(),
                SHARDS,
            ),
            columns,
            filter: WriteFilter::new(block_size),
            new_code: DashMap::default(),
            last_writes: (0..block_size).map(|_| Padded::default()).collect(),
            last_reads: (0..block_size).map(|_| Padded::default()).collect(),
        }
    }

    /// Publishes an incarnation's writes and read set. Returns whether it
    /// wrote a location the previous incarnation did not (then every higher
    /// transaction must be validated again), and hands back the previous
    /// read set's buffer for reuse.
    pub(crate) fn record(
        &self,
        version: Version,
        reads: ReadSet,
        writes: WriteSet,
    ) -> (bool, ReadSet) {
        let tx = version.tx_idx;
        for (location, value) in &writes {
            if let WriteValue::Code(hash, code) = value {
                self.new_code.entry(*hash).or_insert_with(|| code.clone());
            }
            // The filter first: see its invariants.
            self.filter.note_write(location.fast_hash(), tx);
            self.put(location, tx, Entry::Write(value.clone()));
        }
        let mut last = lock(&self.last_writes[tx]);
        let wrote_new_location = writes
            .iter()
            .any(|(l, _)| !last.iter().any(|(p, _)| p == l));
        for (stale, _) in last
            .iter()
            .filter(|(p, _)| !writes.iter().any(|(l, _)| l == p))
        {
            self.remove(stale, tx);
        }
        *last = writes;
        drop(last);
        let mut previous = std::mem::replace(&mut *lock(&self.last_reads[tx]), reads);
        previous.clear();
        (wrote_new_location, previous)
    }

    /// Marks an aborted incarnation's writes as ESTIMATEs.
    pub(crate) fn convert_writes_to_estimates(&self, tx: TxIdx) {
        for (location, _) in lock(&self.last_writes[tx]).iter() {
            if let Some(column) = self.column(location) {
                if let Some(entry) = lock(&column[tx]).as_mut() {
                    *entry = Entry::Estimate;
                }
            } else if let Some(mut versions) = self.data.get_mut(location)
                && let Some(edit) = versions.set_estimate(tx)
                && matches!(location, Location::Balance(_))
            {
                versions.reindex_runs(edit);
            }
        }
    }

    /// The column of slots at `location`, if its versions are kept in one.
    fn column(&self, location: &Location) -> Option<&[Padded<Mutex<Option<Entry>>>]> {
        if !matches!(location, Location::Balance(_)) {
            return None;
        }
        let column = self.columns.iter().find(|c| c.location == *location)?;
        Some(&column.slots)
    }

    /// Sets `tx`'s entry at `location`.
    fn put(&self, location: &Location, tx: TxIdx, entry: Entry) {
        if let Some(column) = self.column(location) {
            *lock(&column[tx]) = Some(entry);
        } else {
            let mut versions = self.data.entry(*location).or_default();
            let edit = versions.insert(tx, entry);
            if matches!(location, Location::Balance(_)) {
                versions.reindex_runs(edit);
            }
        }
    }

    /// Removes `tx`'s entry at `location`.
    fn remove(&self, location: &Location, tx: TxIdx) {
        if let Some(column) = self.column(location) {
            *lock(&column[tx]) = None;
        } else if let Some(mut versions) = self.data.get_mut(location)
            && let Some(edit) = versions.remove(tx)
            && matches!(location, Location::Balance(_))
        {
            versions.reindex_runs(edit);
        }
    }

    /// Whether every read of `tx`'s last incarnation still returns what it
    /// saw. A failing pre-block read fails validation; so does an ESTIMATE
    /// below `tx`, whose writer the transaction should then wait for
    /// ([`Validation::WaitFor`]).
    pub(crate) fn validate_read_set(&self, tx: TxIdx, base: &dyn BaseReader) -> Validation {
        let reads = lock(&self.last_reads[tx]);
        for read in reads.iter() {
            match self.still_reads(read, tx, base) {
                Ok(true) => {}
                Err(Some(Blocked(writer))) => return Validation::WaitFor(writer),
                Ok(false) | Err(None) => return Validation::Invalid,
            }
        }
        Validation::Valid
    }

    /// Whether `read` would see the same value now; an error if it cannot
    /// tell: an ESTIMATE's writer, or `None` if the pre-block state failed.
    fn still_reads(
        &self,
        read: &ReadEntry,
        tx: TxIdx,
        base: &dyn BaseReader,
    ) -> Result<bool, Option<Blocked>> {
        let location = read.location;
        if read.from_base && !self.may_be_written_below(&location, tx) {
            // Still nothing below: the pre-block value it read is immutable.
            return Ok(true);
        }
        let now = match location {
            Location::Balance(address) => {
                let resolved = self.read_balance(&location, tx)?;
                let start = match resolved.full {
                    Some(full) => full,
                    None => base.balance(&address).ok_or(None)?,
                };
                // Wrapping where it overflows: the block's committed writes
                // are checked for that as they are folded (`credit.rs`).
                let (balance, _) = resolved.deltas.onto(start);
                if let ReadValue::BalanceAtLeast(bound) = read.value {
                    return Ok(balance >= bound);
                }
                ReadValue::Balance(balance)
            }
            Location::Nonce(address) => match self.read(&location, tx)? {
                Some(WriteValue::Nonce(n)) => ReadValue::Nonce(n),
                _ if read.from_base => return Ok(true),
                _ => ReadValue::Nonce(base.nonce(&address).ok_or(None)?),
            },
            Location::Code(address) => match self.read(&location, tx)? {
                Some(WriteValue::Code(hash, _)) => ReadValue::Code(hash),
                _ if read.from_base => return Ok(true),
                _ => ReadValue::Code(base.code_hash(&address).ok_or(None)?),
            },
            Location::Lifecycle(_) => ReadValue::Lifecycle(self.read_lifecycle(&location, tx)?),
            Location::Storage(address, slot) => match self.read_storage(address, slot, tx)? {
                StorageRead::Value(v) => ReadValue::Storage(v),
                StorageRead::Wiped => ReadValue::Storage(U256::ZERO),
                StorageRead::Base if read.from_base => return Ok(true),
                StorageRead::Base => ReadValue::Storage(base.storage(&address, &slot).ok_or(None)?),
            },
        };
        Ok(now == read.value)
    }

    /// Whether a transaction below `tx` may have written what a read of
    /// `location` depends on (for a slot, also its account's wipes).
    fn may_be_written_below(&self, location: &Location, tx: TxIdx) -> bool {
        let written = |l: &Location| self.filter.may_have_write_below(l.fast_hash(), tx);
        match location {
            Location::Storage(address, _) => {
                written(location) || written(&Location::Lifecycle(*address))
            }
            _ => written(location),
        }
    }

    /// The versions at `location`, unless the filter shows no writer below `tx`.
    fn versions_below(&self, location: &Location, tx: TxIdx) -> Option<VersionsRef<'_>> {
        if !self.filter.may_have_write_below(location.fast_hash(), tx) {
            return None;
        }
        if let Some(column) = self.column(location) {
            return Some(VersionsRef::Column(column));
        }
        self.data.get(location).map(VersionsRef::Map)
    }

    /// The latest write below `tx` at `location`.
    pub(crate) fn read(
        &self,
        location: &Location,
        tx: TxIdx,
    ) -> Result<Option<WriteValue>, Blocked> {
        let Some(versions) = self.versions_below(location, tx) else {
            return Ok(None);
        };
        Ok(versions.latest_below(tx)?.map(|(_, value)| value))
    }

    /// The latest existence change below `tx`.
    pub(crate) fn read_lifecycle(
        &self,
        location: &Location,
        tx: TxIdx,
    ) -> Result<Option<Lifecycle>, Blocked> {
        let Some(versions) = self.versions_below(location, tx) else {
            return Ok(None);
        };
        Ok(match versions.latest_below(tx)? {
            Some((_, WriteValue::Lifecycle(l))) => Some(l),
            _ => None,
        })
    }

    /// Resolves a balance below `tx`: the latest full write plus every
    /// increment above it.
    pub(crate) fn read_balance(
        &self,
        location: &Location,
        tx: TxIdx,
    ) -> Result<BalanceRead, Blocked> {
        let mut deltas = Deltas::default();
        let Some(versions) = self.versions_below(location, tx) else {
            return Ok(BalanceRead { full: None, deltas });
        };
        if let VersionsRef::Map(versions) = &versions
            && let Some(read) = versions.balance_below(tx)
        {
            return read;
        }
        let full = versions.visit_below(tx, |idx, entry| match entry {
            Entry::Estimate => Some(Err(Blocked(idx))),
            Entry::Write(WriteValue::BalanceIncrement(d)) => {
                deltas.increase(*d);
                None
            }
            Entry::Write(WriteValue::BalanceDecrement(d)) => {
                deltas.decrease(*d);
                None
            }
            Entry::Write(WriteValue::Balance(b)) => Some(Ok(*b)),
            Entry::Write(_) => None,
        });
        Ok(BalanceRead {
            full: full.transpose()?,
            deltas,
        })
    }

    /// Resolves a storage slot below `tx`, honouring wipes of the account.
    pub(crate) fn read_storage(
        &self,
        address: Address,
        slot: U256,
        tx: TxIdx,
    ) -> Result<StorageRead, Blocked> {
        let latest = |location: Location| -> Result<Option<(TxIdx, WriteValue)>, Blocked> {
            match self.versions_below(&location, tx) {
                None => Ok(None),
                Some(versions) => versions.latest_below(tx),
            }
        };
        let written = match latest(Location::Storage(address, slot))? {
            Some((idx, WriteValue::Storage(v))) => Some((idx, v)),
            _ => None,
        };
        let wiped_at = latest(Location::Lifecycle(address))?.map(|(idx, _)| idx);
        Ok(match (written, wiped_at) {
            // A transaction that recreates an account writes its slots after the wipe.
            (Some((w, value)), Some(d)) if w >= d => StorageRead::Value(value),
            (_, Some(_)) => StorageRead::Wiped,
            (Some((_, value)), None) => StorageRead::Value(value),
            (None, None) => StorageRead::Base,
        })
    }

    /// Code deployed earlier in the block.
    pub(crate) fn code(&self, hash: &B256) -> Option<Bytecode> {
        self.new_code.get(hash).map(|c| c.clone())
    }

    /// Visits the final write sets of the transactions in `range` (those
    /// in the block), in block order (after the block is done).
    pub(crate) fn for_each_write_set(
        &self,
        range: std::ops::Range<TxIdx>,
        mut visit: impl FnMut(&WriteSet),
    ) {
        let end = range.end.min(self.last_writes.len());
        for writes in &self.last_writes[range.start.min(end)..end] {
            visit(&lock(writes));
        }
    }

    /// Empties this finished block's memory, keeping what it allocated.
    /// Exclusive access, so no locks: on 5,000 transactions the locking
    /// `clear` was ~140 us of a ~340 us reset.
    fn scrub(&mut self) {
        fn clear_all<T>(slots: &mut [Padded<Mutex<T>>], clear: impl Fn(&mut T)) {
            for slot in slots {
                clear(slot.get_mut().unwrap_or_else(|e| e.into_inner()));
            }
        }
        self.clear_versions();
        self.new_code.clear();
        self.filter.clear();
        for column in &mut self.columns {
            clear_all(&mut column.slots, |entry| *entry = None);
        }
        clear_all(&mut self.last_writes, Vec::clear);
        clear_all(&mut self.last_reads, Vec::clear);
    }

    /// Sizes this empty memory for a block of `block_size` transactions
    /// crediting `credited`.
    fn fit(&mut self, block_size: usize, credited: Credited<'_>) {
        fn resize<T: Default>(slots: &mut Vec<T>, len: usize) {
            slots.truncate(len);
            slots.resize_with(len, T::default);
        }
        self.columns.truncate(credited.addresses().count());
        for (index, address) in credited.addresses().enumerate() {
            match self.columns.get_mut(index) {
                Some(column) => {
                    column.location = Location::Balance(*address);
                    resize(&mut column.slots, block_size);
                }
                None => self.columns.push(Column::new(*address, block_size)),
            }
        }
        self.filter.fit(block_size);
        resize(&mut self.last_writes, block_size);
        resize(&mut self.last_reads, block_size);
    }

    /// Empties the map of versions, keeping its capacity: each shard's
    /// table drops its entries, then marks every slot empty in one pass.
    /// `DashMap::clear` erases entry by entry instead, each erase probing
    /// its group and some leaving a tombstone that the next blocks' inserts
    /// and lookups step over. On fixture 14396881 (`perf`, 300 runs on 2
    /// threads) clearing took 87 us of CPU a run against 113 us.
    fn clear_versions(&self) {
        for shard in self.data.shards() {
            shard.write().clear();
        }
    }
}

/// Finished blocks' multi-version memories, scrubbed ([`MvMemory::scrub`]),
/// kept for the next blocks: a block then starts with its map and
/// per-transaction sets allocated and mapped, instead of faulting in fresh
/// pages while its transactions publish their first writes. Each keeps its
/// map's capacity for the process's life: about 128 bytes per location of
/// the largest block it ran.
static POOL: BufferPool<MvMemory> = BufferPool::new();

/// A multi-version memory on loan from [`POOL`], scrubbed and returned when
/// dropped.
pub(crate) struct PooledMvMemory(Option<MvMemory>);

impl PooledMvMemory {
    /// A memory for a block of `block_size` transactions crediting
    /// `credited`: a finished block's if one is free, else a new one.
    pub(crate) fn take(block_size: usize, credited: Credited<'_>) -> Self {
        Self(Some(match POOL.take() {
            Some(mut memory) => {
                memory.fit(block_size, credited);
                memory
            }
            None => MvMemory::new(block_size, credited),
        }))
    }
}

impl std::ops::Deref for PooledMvMemory {
    type Target = MvMemory;

    fn deref(&self) -> &MvMemory {
        // Only `drop` takes it out.
        self.0.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for PooledMvMemory {
    /// Scrubbing drops every version and read set of the block: 180 us of
    /// mainnet fixture 14396881's 5.6 ms on 2 threads, after its last
    /// transaction, where the caller waited for it. A helper scrubs the
    /// memory once the caller has the block's result, while the next
    /// block is planned on one core; the caller does it only if no helper
    /// pool runs.
    fn drop(&mut self) {
        if let Some(memory) = self.0.take() {
            super::helpers::run_detached(move || POOL.give_back(memory, MvMemory::scrub));
        }
    }
}

/// Pre-block values that validation compares against. `None` means the
/// read failed; validation then fails and re-execution surfaces the error.
pub(crate) trait BaseReader {
    fn balance(&self, address: &Address) -> Option<U256>;
    fn nonce(&self, address: &Address) -> Option<u64>;
    fn code_hash(&self, address: &Address) -> Option<B256>;
    fn storage(&self, address: &Address, slot: &U256) -> Option<U256>;
}

/// Locks a mutex, ignoring poisoning (a panicking worker aborts the block anyway).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block crediting only its `beneficiary` many times.
    fn credited(beneficiary: Address) -> Credited<'static> {
        Credited {
            beneficiary: Some(beneficiary),
            hot: &[],
        }
    }

    /// A hot recipient's balance, kept in a column, resolves as one kept in
    /// the map: the credits below a reader on top of the last full
    /// balance, an ESTIMATE blocking; and a memory fitted to another block
    /// keeps no column for it.
    #[test]
    fn a_hot_recipients_column_resolves_like_the_map() {
        let (beneficiary, hot) = (Address::repeat_byte(0xcb), Address::repeat_byte(0xd0));
        let balance = Location::Balance(hot);
        let hot_list = [hot];
        let mut memory = MvMemory::new(
            8,
            Credited {
                beneficiary: Some(beneficiary),
                hot: &hot_list,
            },
        );
        let version = |tx_idx| Version {
            tx_idx,
            incarnation: 0,
        };
        let credit = |n: u64| vec![(balance, WriteValue::BalanceIncrement(U256::from(n)))];
        memory.record(version(1), ReadSet::new(), credit(3));
        memory.record(version(2), ReadSet::new(), credit(4));
        let full = vec![(balance, WriteValue::Balance(U256::from(100)))];
        memory.record(version(4), ReadSet::new(), full);
        memory.record(version(6), ReadSet::new(), credit(5));
        let read = |memory: &MvMemory, tx| memory.read_balance(&balance, tx);
        let deltas = |n: u64| {
            let mut deltas = Deltas::default();
            deltas.increase(U256::from(n));
            deltas
        };
        assert_eq!(
            read(&memory, 4),
            Ok(BalanceRead {
                full: None,
                deltas: deltas(7),
            })
        );
        assert_eq!(
            read(&memory, 7),
            Ok(BalanceRead {
                full: Some(U256::from(100)),
                deltas: deltas(5),
            })
        );
        assert!(memory.data.get(&balance).is_none(), "kept in its column");
        memory.convert_writes_to_estimates(2);
        assert_eq!(read(&memory, 3), Err(Blocked(2)));
        memory.record(version(2), ReadSet::new(), Vec::new());
        assert_eq!(
            read(&memory, 3),
            Ok(BalanceRead {
                full: None,
                deltas: deltas(3),
            })
        );
        memory.scrub();
        memory.fit(8, credited(beneficiary));
        memory.record(version(1), ReadSet::new(), credit(3));
        assert!(memory.data.get(&balance).is_some(), "back in the map");
        assert_eq!(memory.columns.len(), 1);
    }

    /// Scrubbing, then fitting to another block, leaves nothing of the
    /// last block where any read, validation or walk could find it:
    /// versions, ESTIMATEs, the beneficiary's column, deployed code, the
    /// write filter, write sets and read sets.
    #[test]
    fn a_scrubbed_memory_holds_nothing_of_its_block() {
        let (beneficiary, next_beneficiary) =
            (Address::repeat_byte(0xcb), Address::repeat_byte(0xcc));
        let account = Address::repeat_byte(1);
        let (nonce, slot) = (Location::Nonce(account), U256::from(7));
        let fee = Location::Balance(beneficiary);
        let code = Bytecode::new_raw(alloy_primitives::Bytes::from_static(&[0x60, 0x00]));
        let hash = code.hash_slow();
        let version = |tx_idx| Version {
            tx_idx,
            incarnation: 0,
        };
        let hot = Address::repeat_byte(0xd0);
        let mut memory = MvMemory::new(
            8,
            Credited {
                beneficiary: Some(beneficiary),
                hot: &[hot],
            },
        );
        let read = ReadEntry {
            location: nonce,
            value: ReadValue::Nonce(0),
            from_base: true,
        };
        let writes = vec![
            (nonce, WriteValue::Nonce(1)),
            (
                Location::Storage(account, slot),
                WriteValue::Storage(U256::from(9)),
            ),
            (Location::Code(account), WriteValue::Code(hash, code)),
            (fee, WriteValue::BalanceIncrement(U256::from(5))),
            (
                Location::Balance(hot),
                WriteValue::BalanceIncrement(U256::from(6)),
            ),
        ];
        memory.record(version(1), vec![read], writes);
        let balance = (Location::Balance(account), WriteValue::Balance(U256::ONE));
        memory.record(version(3), ReadSet::new(), vec![balance]);
        memory.convert_writes_to_estimates(1);
        memory.convert_writes_to_estimates(3);

        memory.scrub();
        memory.fit(5, credited(next_beneficiary));

        assert!(!memory.may_be_written_below(&nonce, 5));
        assert!(matches!(memory.read(&nonce, 5), Ok(None)));
        assert_eq!(memory.read_storage(account, slot, 5), Ok(StorageRead::Base));
        assert_eq!(
            memory.read_balance(&Location::Balance(account), 5),
            Ok(BalanceRead::default())
        );
        assert_eq!(memory.read_balance(&fee, 5), Ok(BalanceRead::default()));
        assert!(memory.code(&hash).is_none());
        let mut sets = 0;
        memory.for_each_write_set(0..usize::MAX, |writes| {
            sets += 1;
            assert!(writes.is_empty());
        });
        assert_eq!(sets, 5);
        assert!(memory.last_reads.iter().all(|reads| lock(reads).is_empty()));
        assert_eq!(
            memory.read_balance(&Location::Balance(hot), 5),
            Ok(BalanceRead::default())
        );
        assert_eq!(memory.columns.len(), 1);
        let column = &memory.columns[0];
        assert_eq!(column.location, Location::Balance(next_beneficiary));
        assert_eq!(column.slots.len(), 5);
        assert!(column.slots.iter().all(|fee| lock(fee).is_none()));
        assert!(memory.data.iter().next().is_none());
    }

    /// A memory back from the pool remembers nothing of its last block.
    #[test]
    fn a_recycled_memory_starts_empty() {
        let (beneficiary, other) = (Address::repeat_byte(0xcb), Address::repeat_byte(0xcc));
        let nonce = Location::Nonce(Address::repeat_byte(1));
        let version = |tx_idx| Version {
            tx_idx,
            incarnation: 0,
        };
        let writes = |value| vec![(nonce, WriteValue::Nonce(value))];
        {
            let memory = PooledMvMemory::take(8, credited(beneficiary));
            memory.record(version(2), ReadSet::new(), writes(5));
            let balance = (Location::Balance(other), WriteValue::Balance(U256::ONE));
            memory.record(version(4), ReadSet::new(), vec![balance]);
            memory.convert_writes_to_estimates(4);
            assert!(matches!(
                memory.read(&nonce, 3),
                Ok(Some(WriteValue::Nonce(5)))
            ));
        }
        // Other tests may hold some of the pool's memories: take them all.
        let memories: Vec<_> = (0..crate::parallel::helpers::POOLED + 1)
            .map(|_| PooledMvMemory::take(3, credited(other)))
            .collect();
        for memory in &memories {
            assert!(matches!(memory.read(&nonce, 3), Ok(None)));
            let (mut sets, mut seen) = (0, 0);
            memory.for_each_write_set(0..usize::MAX, |w| {
                sets += 1;
                seen += w.len();
            });
            assert_eq!((sets, seen), (3, 0));
        }
    }
}
