//! Multi-version memory: for every location, the value each transaction's
//! latest incarnation wrote, so that transaction `j` reads what the highest
//! transaction below `j` wrote, or the pre-block state if none did.
//!
//! Invariants:
//! - `data[loc]` holds an entry for `tx` iff `loc` is in `last_writes[tx]`
//!   (updated together under the same `record` call by the one thread that
//!   owns `tx`'s current incarnation).
//! - An entry is an ESTIMATE only between the abort of an incarnation and the
//!   `record` of the next: a reader that meets it waits for `tx` instead of
//!   running on to certain failure.

use super::types::{
    Incarnation, Lifecycle, Location, ReadEntry, ReadSet, ReadValue, TxIdx, Version, WriteSet,
    WriteValue,
};
use alloy_primitives::{Address, B256, U256, map::DefaultHashBuilder};
use dashmap::DashMap;
use revm::bytecode::Bytecode;
use std::{collections::BTreeMap, sync::Mutex};

/// A read met the ESTIMATE of this transaction: wait for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Blocked(pub TxIdx);

#[derive(Debug, Clone)]
enum EntryValue {
    Estimate,
    Write(WriteValue),
}

#[derive(Debug, Clone)]
struct Entry {
    #[allow(dead_code)] // kept for debugging; validation is by value
    incarnation: Incarnation,
    value: EntryValue,
}

/// What a balance read resolves to, before the pre-block value is added.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BalanceRead {
    /// The latest full balance below the reader, or `None` for the pre-block one.
    pub full: Option<U256>,
    /// Sum of the increments above that full balance.
    pub increments: U256,
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

type Versions = BTreeMap<TxIdx, Entry>;

/// The multi-version data structure of Block-STM.
pub(crate) struct MvMemory {
    data: DashMap<Location, Versions, DefaultHashBuilder>,
    /// Code deployed in the block, by hash; content-addressed, so unversioned.
    new_code: DashMap<B256, Bytecode, DefaultHashBuilder>,
    last_writes: Vec<Mutex<WriteSet>>,
    last_reads: Vec<Mutex<ReadSet>>,
}

impl MvMemory {
    pub(crate) fn new(block_size: usize) -> Self {
        Self {
            data: DashMap::with_capacity_and_hasher(block_size * 4, DefaultHashBuilder::default()),
            new_code: DashMap::default(),
            last_writes: (0..block_size).map(|_| Mutex::default()).collect(),
            last_reads: (0..block_size).map(|_| Mutex::default()).collect(),
        }
    }

    /// Publishes an incarnation's writes and read set. Returns whether it
    /// wrote a location the previous incarnation did not (then every higher
    /// transaction must be validated again).
    pub(crate) fn record(&self, version: Version, reads: ReadSet, writes: WriteSet) -> bool {
        let tx = version.tx_idx;
        for (location, value) in &writes {
            if let WriteValue::Code(hash, code) = value {
                self.new_code.entry(*hash).or_insert_with(|| code.clone());
            }
            let entry = Entry {
                incarnation: version.incarnation,
                value: EntryValue::Write(value.clone()),
            };
            self.data.entry(*location).or_default().insert(tx, entry);
        }
        let mut last = lock(&self.last_writes[tx]);
        let wrote_new_location = writes
            .iter()
            .any(|(l, _)| !last.iter().any(|(p, _)| p == l));
        for (stale, _) in last
            .iter()
            .filter(|(p, _)| !writes.iter().any(|(l, _)| l == p))
        {
            if let Some(mut versions) = self.data.get_mut(stale) {
                versions.remove(&tx);
            }
        }
        *last = writes;
        *lock(&self.last_reads[tx]) = reads;
        wrote_new_location
    }

    /// Predicts that `tx` will write `locations`: they start as ESTIMATEs, so
    /// higher transactions that read them wait for `tx` instead of running
    /// on stale values. `tx`'s first `record` replaces or removes them.
    pub(crate) fn seed_estimates(&self, tx: TxIdx, locations: &[Location]) {
        let mut last = lock(&self.last_writes[tx]);
        for location in locations {
            if last.iter().any(|(l, _)| l == location) {
                continue;
            }
            self.data.entry(*location).or_default().insert(
                tx,
                Entry {
                    incarnation: 0,
                    value: EntryValue::Estimate,
                },
            );
            // The value is a placeholder: only the location matters until `record`.
            last.push((*location, WriteValue::Nonce(0)));
        }
    }

    /// Marks an aborted incarnation's writes as ESTIMATEs.
    pub(crate) fn convert_writes_to_estimates(&self, tx: TxIdx) {
        for (location, _) in lock(&self.last_writes[tx]).iter() {
            if let Some(mut versions) = self.data.get_mut(location) {
                if let Some(entry) = versions.get_mut(&tx) {
                    entry.value = EntryValue::Estimate;
                }
            }
        }
    }

    /// Whether every read of `tx`'s last incarnation still returns what it saw.
    /// An ESTIMATE below `tx`, or a failing pre-block read, fails validation.
    pub(crate) fn validate_read_set(&self, tx: TxIdx, base: &dyn BaseReader) -> bool {
        let reads = lock(&self.last_reads[tx]);
        reads.iter().all(|read| {
            let ok = self.still_reads(read, tx, base) == Some(true);
            if !ok && std::env::var_os("PAREVM_DEBUG").is_some() {
                eprintln!("tx {tx}: invalid read {read:?}");
            }
            ok
        })
    }

    /// Whether `read` would see the same value now; `None` if it cannot tell.
    fn still_reads(&self, read: &ReadEntry, tx: TxIdx, base: &dyn BaseReader) -> Option<bool> {
        let location = read.location;
        let now = match location {
            Location::Balance(address) => {
                let resolved = self.read_balance(&location, tx).ok()?;
                let start = match resolved.full {
                    Some(full) => full,
                    None => base.balance(&address)?,
                };
                ReadValue::Balance(start.wrapping_add(resolved.increments))
            }
            Location::Nonce(address) => match self.read(&location, tx).ok()? {
                Some(WriteValue::Nonce(n)) => ReadValue::Nonce(n),
                _ if read.from_base => return Some(true),
                _ => ReadValue::Nonce(base.nonce(&address)?),
            },
            Location::Code(address) => match self.read(&location, tx).ok()? {
                Some(WriteValue::Code(hash, _)) => ReadValue::Code(hash),
                _ if read.from_base => return Some(true),
                _ => ReadValue::Code(base.code_hash(&address)?),
            },
            Location::Lifecycle(_) => {
                ReadValue::Lifecycle(self.read_lifecycle(&location, tx).ok()?)
            }
            Location::Storage(address, slot) => match self.read_storage(address, slot, tx).ok()? {
                StorageRead::Value(v) => ReadValue::Storage(v),
                StorageRead::Wiped => ReadValue::Storage(U256::ZERO),
                StorageRead::Base if read.from_base => return Some(true),
                StorageRead::Base => ReadValue::Storage(base.storage(&address, &slot)?),
            },
        };
        Some(now == read.value)
    }

    /// The latest write below `tx` at `location`.
    pub(crate) fn read(
        &self,
        location: &Location,
        tx: TxIdx,
    ) -> Result<Option<WriteValue>, Blocked> {
        let Some(versions) = self.data.get(location) else {
            return Ok(None);
        };
        match versions.range(..tx).next_back() {
            None => Ok(None),
            Some((
                idx,
                Entry {
                    value: EntryValue::Estimate,
                    ..
                },
            )) => Err(Blocked(*idx)),
            Some((
                _,
                Entry {
                    value: EntryValue::Write(value),
                    ..
                },
            )) => Ok(Some(value.clone())),
        }
    }

    /// The latest existence change below `tx`.
    pub(crate) fn read_lifecycle(
        &self,
        location: &Location,
        tx: TxIdx,
    ) -> Result<Option<Lifecycle>, Blocked> {
        Ok(match self.read(location, tx)? {
            Some(WriteValue::Lifecycle(l)) => Some(l),
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
        let mut increments = U256::ZERO;
        let Some(versions) = self.data.get(location) else {
            return Ok(BalanceRead {
                full: None,
                increments,
            });
        };
        for (idx, entry) in versions.range(..tx).rev() {
            match &entry.value {
                EntryValue::Estimate => return Err(Blocked(*idx)),
                EntryValue::Write(WriteValue::BalanceIncrement(d)) => {
                    increments = increments.wrapping_add(*d)
                }
                EntryValue::Write(WriteValue::Balance(b)) => {
                    return Ok(BalanceRead {
                        full: Some(*b),
                        increments,
                    });
                }
                EntryValue::Write(_) => {}
            }
        }
        Ok(BalanceRead {
            full: None,
            increments,
        })
    }

    /// Resolves a storage slot below `tx`, honouring wipes of the account.
    pub(crate) fn read_storage(
        &self,
        address: Address,
        slot: U256,
        tx: TxIdx,
    ) -> Result<StorageRead, Blocked> {
        let written = match self.data.get(&Location::Storage(address, slot)) {
            None => None,
            Some(versions) => match versions.range(..tx).next_back() {
                None => None,
                Some((
                    idx,
                    Entry {
                        value: EntryValue::Estimate,
                        ..
                    },
                )) => return Err(Blocked(*idx)),
                Some((
                    idx,
                    Entry {
                        value: EntryValue::Write(WriteValue::Storage(v)),
                        ..
                    },
                )) => Some((*idx, *v)),
                Some(_) => None,
            },
        };
        let wiped_at = match self.data.get(&Location::Lifecycle(address)) {
            None => None,
            Some(versions) => match versions.range(..tx).next_back() {
                None => None,
                Some((
                    idx,
                    Entry {
                        value: EntryValue::Estimate,
                        ..
                    },
                )) => return Err(Blocked(*idx)),
                Some((idx, _)) => Some(*idx),
            },
        };
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

    /// The final write set of every transaction (after the block is done).
    pub(crate) fn into_write_sets(self) -> Vec<WriteSet> {
        self.last_writes
            .into_iter()
            .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
            .collect()
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
