//! A read-through cache in front of a [`StateSource`] whose reads are slow
//! (a node's database).
//!
//! The sequential executor reads each pre-block account and slot about once
//! per block: revm's `State` caches what it read. The parallel executor
//! cannot share one such cache between transactions that may run in any
//! order, so every incarnation reads the pre-block values it needs afresh,
//! and validation and the block's assembly read some again. On the 29
//! mainnet fixtures that run on Block-STM it asks the source for 3.2x the
//! accounts and 1.8x the slots the sequential executor asks for, and
//! 6,800 codes by hash where the sequential executor, given the code
//! inline, asked for none (`examples/state_latency.rs`). Against an
//! in-memory source a cache costs more than it saves; against a database
//! the extra reads eat the speedup (at 3 us a read, 2 threads on 2 cores:
//! 1.11-1.16x of sequential, and 1.32-1.37x behind this cache).
//! [`CachedState`] reads each value from the source once and serves every
//! later read, from any thread, from memory.

use super::{StateError, StateSource};
use alloy_primitives::{Address, B256, U256, map::DefaultHashBuilder};
use dashmap::DashMap;
use revm::{bytecode::Bytecode, primitives::KECCAK_EMPTY, state::AccountInfo};
use std::hash::Hash;

/// An account's fields as cached: `None` if it does not exist.
type Fields = Option<AccountInfo>;

/// `inner` with every value it returned kept in memory, so that it is read
/// from `inner` once however many transactions and threads ask for it.
///
/// A cache holds one pre-block state: build one per block (or
/// [`clear`](Self::clear) it) once the state below it changes. Errors are
/// not cached: a read that failed is asked of `inner` again. Accounts are
/// kept without their code, which is kept once per code hash, so that
/// [`StateSource::account_fields`] never copies it.
#[derive(Debug)]
pub struct CachedState<S> {
    inner: S,
    accounts: DashMap<Address, Fields, DefaultHashBuilder>,
    storage: DashMap<(Address, U256), U256, DefaultHashBuilder>,
    codes: DashMap<B256, Bytecode, DefaultHashBuilder>,
    block_hashes: DashMap<u64, B256, DefaultHashBuilder>,
}

impl<S: StateSource> CachedState<S> {
    /// An empty cache in front of `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            accounts: sharded(),
            storage: sharded(),
            codes: sharded(),
            block_hashes: DashMap::default(),
        }
    }

    /// The source behind the cache.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Forgets everything read, for a source whose state has changed.
    pub fn clear(&mut self) {
        self.accounts.clear();
        self.storage.clear();
        self.codes.clear();
        self.block_hashes.clear();
    }

    /// The account's fields, read from `inner` on the first ask. Its code,
    /// if `inner` returns it inline, goes to the code cache.
    fn fields(&self, address: &Address) -> Result<Fields, StateError> {
        read_through(&self.accounts, address, || {
            let account = self.inner.account(address)?;
            Ok(account.map(|mut account| {
                if let Some(code) = account.code.take()
                    && account.code_hash != KECCAK_EMPTY
                {
                    self.codes.entry(account.code_hash).or_insert(code);
                }
                account
            }))
        })
    }
}

/// The value at `key` in `map`, or, the first time, what `read` returns,
/// kept there (an error is returned, not kept).
fn read_through<K: Eq + Hash + Clone, V: Clone>(
    map: &DashMap<K, V, DefaultHashBuilder>,
    key: &K,
    read: impl FnOnce() -> Result<V, StateError>,
) -> Result<V, StateError> {
    if let Some(value) = map.get(key) {
        return Ok(value.clone());
    }
    let value = read()?;
    map.insert(key.clone(), value.clone());
    Ok(value)
}

/// Shards per map: many, so that threads reading different values rarely
/// share a shard's lock, whose every read takes its cache line. (DashMap's
/// default is four per core.)
const SHARDS: usize = 128;

fn sharded<K: Eq + Hash, V>() -> DashMap<K, V, DefaultHashBuilder> {
    DashMap::with_hasher_and_shard_amount(DefaultHashBuilder::default(), SHARDS)
}

impl<S: StateSource> StateSource for CachedState<S> {
    fn account(&self, address: &Address) -> Result<Option<AccountInfo>, StateError> {
        let Some(mut account) = self.fields(address)? else {
            return Ok(None);
        };
        if account.code_hash != KECCAK_EMPTY {
            account.code = Some(self.code_by_hash(&account.code_hash)?);
        }
        Ok(Some(account))
    }

    fn account_fields(&self, address: &Address) -> Result<Option<AccountInfo>, StateError> {
        self.fields(address)
    }

    fn code_hash(&self, address: &Address) -> Result<Option<B256>, StateError> {
        Ok(self.fields(address)?.map(|account| account.code_hash))
    }

    fn code_by_hash(&self, code_hash: &B256) -> Result<Bytecode, StateError> {
        if *code_hash == KECCAK_EMPTY {
            return Ok(Bytecode::default());
        }
        read_through(&self.codes, code_hash, || {
            self.inner.code_by_hash(code_hash)
        })
    }

    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError> {
        read_through(&self.storage, &(*address, *slot), || {
            self.inner.storage(address, slot)
        })
    }

    fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        read_through(&self.block_hashes, &number, || {
            self.inner.block_hash(number)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{InMemoryAccount, InMemoryState};
    use std::sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    };

    /// A source that counts its reads and fails those it is told to.
    #[derive(Debug, Default)]
    struct Counted {
        state: InMemoryState,
        reads: AtomicUsize,
        failing: Mutex<Option<Address>>,
    }

    impl StateSource for Counted {
        fn account(&self, address: &Address) -> Result<Option<AccountInfo>, StateError> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            if *self.failing.lock().unwrap() == Some(*address) {
                return Err(StateError::Other("disk on fire".into()));
            }
            self.state.account(address)
        }
        fn code_by_hash(&self, code_hash: &B256) -> Result<Bytecode, StateError> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            self.state.code_by_hash(code_hash)
        }
        fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            self.state.storage(address, slot)
        }
        fn block_hash(&self, number: u64) -> Result<B256, StateError> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            self.state.block_hash(number)
        }
    }

    fn source() -> (Counted, Address, Address) {
        let (eoa, contract) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let mut state = InMemoryState::default();
        let account = |balance: u64, nonce, code| InMemoryAccount {
            info: AccountInfo {
                balance: U256::from(balance),
                nonce,
                code,
                ..Default::default()
            },
            storage: Default::default(),
        };
        state.insert_account(eoa, account(7, 3, None));
        let code = Bytecode::new_raw(vec![0x60, 0x00, 0x54, 0x00].into());
        let mut with_code = account(0, 1, Some(code));
        with_code.storage.insert(U256::from(5), U256::from(9));
        state.insert_account(contract, with_code);
        let counted = Counted {
            state,
            ..Default::default()
        };
        (counted, eoa, contract)
    }

    /// Every read returns what the source returns, and only the first of
    /// each goes to the source.
    #[test]
    fn serves_repeated_reads_from_memory() {
        let (counted, eoa, contract) = source();
        let expected_eoa = counted.state.account(&eoa).unwrap();
        let expected_contract = counted.state.account(&contract).unwrap();
        let cached = CachedState::new(counted);
        for _ in 0..3 {
            assert_eq!(cached.account(&eoa).unwrap(), expected_eoa);
            let account = cached.account(&contract).unwrap();
            assert_eq!(account, expected_contract);
            let code = account.and_then(|a| a.code).map(|c| c.original_bytes());
            assert_eq!(code, Some(vec![0x60, 0x00, 0x54, 0x00].into()));
            let fields = cached.account_fields(&contract).unwrap().unwrap();
            assert!(fields.code.is_none());
            assert_eq!(
                fields.code_hash,
                expected_contract.as_ref().unwrap().code_hash
            );
            assert_eq!(
                cached.storage(&contract, &U256::from(5)).unwrap(),
                U256::from(9)
            );
            assert_eq!(
                cached.storage(&contract, &U256::from(6)).unwrap(),
                U256::ZERO
            );
            assert_eq!(cached.account(&Address::repeat_byte(3)).unwrap(), None);
        }
        // Three accounts and two slots; the contract's code came inline.
        assert_eq!(cached.inner().reads.load(Ordering::Relaxed), 5);
    }

    /// A failed read is not remembered: the next one asks the source again.
    #[test]
    fn does_not_cache_errors() {
        let (counted, eoa, _) = source();
        *counted.failing.lock().unwrap() = Some(eoa);
        let cached = CachedState::new(counted);
        assert!(cached.account(&eoa).is_err());
        *cached.inner().failing.lock().unwrap() = None;
        assert_eq!(
            cached.account(&eoa).unwrap().map(|a| a.balance),
            Some(U256::from(7))
        );
    }

    /// After `clear`, reads go to the source again.
    #[test]
    fn clear_forgets() {
        let (counted, eoa, _) = source();
        let mut cached = CachedState::new(counted);
        cached.account(&eoa).unwrap();
        cached.clear();
        cached.account(&eoa).unwrap();
        assert_eq!(cached.inner().reads.load(Ordering::Relaxed), 2);
    }
}
