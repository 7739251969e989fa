//! Where a partition reads state: its revm cache over the pre-block state,
//! recording every location fetched ([`Recording`]), with the beneficiary
//! served as a placeholder while a fee is credited, and as it was before
//! the block to the transactions it does not send (code paying it), and the
//! payout sender served to its own transfers at their nonces, and the hot
//! recipient served as it was before the block ([`PartitionDb`]).

use super::{contract_balances::ContractBalances, footprint::Access};
use crate::{
    parallel::{
        balance_watch::BalanceWatchDb,
        digest::address_digest,
        fee_credit::FeeCreditDb,
        own_code::{own_copy, own_empty_code},
    },
    state::{StateError, StateSource},
};
use alloy_primitives::{Address, B256, U256, map::B256Map};
use revm::{
    Database, bytecode::Bytecode, database::State, database_interface::bal::EvmDatabaseError,
    primitives::KECCAK_EMPTY, state::AccountInfo,
};

/// The pre-block state as a partition's cache sees it, recording every
/// location fetched, with codes of the partition's own (`own_code.rs`):
/// its empty code, and a copy of each contract code.
pub(super) struct Recording<'s, S: ?Sized> {
    source: &'s S,
    /// What was fetched since the partition's last check, but for the
    /// locations of accounts the partition owns ([`Self::own`]).
    pub(super) reads: Vec<Access>,
    /// The key digests of the transaction now running
    /// ([`TxKeys`](super::plan::TxKeys)): its partition owns their
    /// accounts, which no other partition may touch, so its own accesses
    /// to them need no record (see `footprint.rs`).
    pub(super) own: Vec<u64>,
    /// This partition's own empty code, served to accounts without code
    /// (see [`own_empty_code`]).
    empty_code: Bytecode,
    /// This partition's own copies of the contract codes it fetched, by
    /// hash (see [`Self::own_code`]).
    codes: B256Map<Bytecode>,
}

impl<'s, S: ?Sized> Recording<'s, S> {
    /// A recording of what a partition fetches from `source`, sized for
    /// `reads` locations.
    pub(super) fn new(source: &'s S, reads: usize) -> Self {
        Self {
            source,
            reads: Vec::with_capacity(reads),
            own: Vec::new(),
            empty_code: own_empty_code(),
            codes: B256Map::default(),
        }
    }

    /// Records `access`, unless its account is one the partition owns.
    pub(super) fn record(&mut self, access: Access) {
        if !owns(&self.own, access.address()) {
            self.reads.push(access);
        }
    }

    /// This partition's own copy of `code` (whose hash is `code_hash`),
    /// made when it first fetches the code and served to every account
    /// with that code after. A copy per account cost 5,000 AMM swaps on
    /// their own pools (the pools sharing one code, the tokens another)
    /// 15,000 allocations a block, each copy also counting a reference to
    /// the shared bytes and jump table, whose cache lines the two threads
    /// then took from each other. In-process A/B runs of the two (2-core
    /// AMD VM, the median of 41-101 pairs' ratios each) read the swaps
    /// 0.999, 1.003, 1.006, 1.046 times as fast with copies shared, a
    /// tenth of them hot 1.025, 5,000 ERC-20 transfers 1.015 and the mixed
    /// block 1.004.
    fn own_code(&mut self, code_hash: B256, code: &Bytecode) -> Bytecode {
        self.codes
            .entry(code_hash)
            .or_insert_with(|| own_copy(code))
            .clone()
    }
}

impl<S: StateSource + ?Sized> Database for Recording<'_, S> {
    type Error = StateError;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, StateError> {
        self.record(Access::Account(address));
        let mut info = self.source.account(&address)?;
        if let Some(info) = &mut info {
            info.code = match info.code.take() {
                Some(code) => Some(self.own_code(info.code_hash, &code)),
                None if info.code_hash == KECCAK_EMPTY => Some(self.empty_code.clone()),
                None => None,
            };
        }
        Ok(info)
    }
    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, StateError> {
        match code_hash {
            KECCAK_EMPTY => Ok(self.empty_code.clone()),
            _ => match self.codes.get(&code_hash) {
                Some(code) => Ok(code.clone()),
                None => {
                    let code = self.source.code_by_hash(&code_hash)?;
                    Ok(self.own_code(code_hash, &code))
                }
            },
        }
    }
    fn storage(&mut self, address: Address, slot: U256) -> Result<U256, StateError> {
        self.record(Access::Slot(address, slot));
        self.source.storage(&address, &slot)
    }
    fn block_hash(&mut self, number: u64) -> Result<B256, StateError> {
        self.source.block_hash(number)
    }
}

/// Whether `address` is the account of one of `own` key digests: one the
/// partition owns ([`TxKeys`](super::plan::TxKeys)).
pub(super) fn owns(own: &[u64], address: &Address) -> bool {
    !own.is_empty() && own.contains(&address_digest(address))
}

/// An account's fields as a transaction first loaded them.
pub(super) struct Loaded {
    pub(super) address: Address,
    pub(super) balance: U256,
    pub(super) nonce: u64,
    pub(super) code_hash: B256,
}

impl<S: ?Sized> std::fmt::Debug for PartitionDb<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionDb")
            .field("beneficiary", &self.beneficiary)
            .finish_non_exhaustive()
    }
}

/// The database of one partition's EVM: its cache, with the beneficiary
/// served as a zero-balance placeholder while revm credits a fee, and as
/// it was before the block to code that pays it (see [`Self::basic`]), and
/// the payout sender served to its own transfers at their nonces. (Debug
/// because alloy-evm's precompile provider asks for it.)
pub(super) struct PartitionDb<'s, S: ?Sized> {
    pub(super) cache: State<Recording<'s, S>>,
    pub(super) beneficiary: Address,
    pub(super) crediting_fee: bool,
    /// The beneficiary's balance as served to the transaction now running,
    /// if it loaded the beneficiary: what it paid the beneficiary is its
    /// final balance less this.
    pub(super) beneficiary_served: U256,
    /// The sender of the transaction now running.
    pub(super) sender: Address,
    /// The block's payout sender, if it has one.
    pub(super) payout: Option<Address>,
    /// The nonce of the payout sender's transfer now running, if one is.
    pub(super) payout_nonce: Option<u64>,
    /// The payout sender's balance as served to its transfer now running.
    pub(super) payout_served: U256,
    /// The block's hot recipient, if the plan keyed transfers into it by
    /// their senders alone (see `Planner::with_hot_recipient`): served as
    /// it was before the block, and what it gains summed, as the
    /// beneficiary's fees are.
    pub(super) hot_recipient: Option<Address>,
    /// The hot recipient's balance as served to the transaction now
    /// running, if it loaded the account.
    pub(super) hot_served: U256,
    /// A transaction observed the beneficiary (read its balance, sent from
    /// it, or loaded it when it could not be served, see
    /// [`Self::creditable`]), or loaded the payout sender other than as the
    /// sender of its own transfer, or the sender's transfer read its
    /// balance with `BALANCE` (which finds the sender already loaded:
    /// [`BalanceWatchDb`]), or observed the hot recipient so (or it was not
    /// an account without code, not empty).
    pub(super) observed: bool,
    /// The accounts the current transaction loaded, to tell which it changed.
    pub(super) loaded: Vec<Loaded>,
    /// What the partition did to the balances of accounts with code, which
    /// partitions sum.
    pub(super) contract_balances: ContractBalances,
}

impl<S: StateSource + ?Sized> FeeCreditDb for PartitionDb<'_, S> {
    fn crediting_fee(&mut self, tip: Option<u128>) {
        // Even a zero fee is served the placeholder: after EIP-161 touching
        // an existing beneficiary with nothing changes nothing (the caller
        // rules out an existing empty one).
        self.crediting_fee = tip.is_some();
    }
}

impl<S: StateSource + ?Sized> BalanceWatchDb for PartitionDb<'_, S> {
    fn balance_observed(&mut self, address: Address) {
        // Within the sender's own transfer the sender is loaded already, so
        // reading its balance loads nothing from here: flag it now. (In any
        // other transaction, loading the sender at all is flagged.)
        self.observed |= self.payout_nonce.is_some() && Some(address) == self.payout;
        // The beneficiary and the hot recipient are served as they were
        // before the block, without the fees and payments that other
        // partitions, and earlier transactions, sum apart.
        self.observed |= address == self.beneficiary || Some(address) == self.hot_recipient;
        // Another partition may sum the balance of an account with code.
        self.cache.database.record(Access::Balance(address));
    }
    fn balance_required(&mut self, address: Address, balance: U256, value: U256) {
        self.contract_balances.require(address, balance, value);
    }
}

impl<S: ?Sized> PartitionDb<'_, S> {
    /// Whether `address`, an account the partitions sum (the beneficiary,
    /// or the hot recipient), loaded as `info` (before the block), may be
    /// served so to a transaction it does not send: code calling it, or
    /// destroying a contract in its favour, only adds to its balance, which
    /// is then summed (`run.rs`), and `BALANCE` reading it fails the run
    /// ([`BalanceWatchDb`]). Else only its emptiness depends on its balance
    /// (a value sent into an empty account costs more gas), so it must be
    /// an account without code that is not empty: it then stays so through
    /// the block in sequence, its nonce only growing and its balance
    /// falling only by transactions it sends (the beneficiary's as the
    /// payout sender, served apart; the hot recipient sends none), unless a
    /// contract is created at it, which fails the run (`run.rs`). A credit
    /// that would overflow its balance in sequence is caught as the
    /// partitions settle their sums (`merge.rs`).
    fn creditable(&self, address: Address, info: &AccountInfo) -> bool {
        self.sender != address && info.is_empty_code_hash() && !info.is_empty()
    }
}

impl<S: StateSource + ?Sized> Database for PartitionDb<'_, S> {
    type Error = StateError;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, StateError> {
        let info = self.cache.basic(address).map_err(state_error)?;
        if Some(address) == self.payout
            && let Some(nonce) = self.payout_nonce
        {
            // Its own transfer: the nonce it carries is the sender's in
            // sequence, and the balance covers it (see `payout`); what it
            // pays is summed from the balance served.
            let mut served = info.unwrap_or_default();
            served.nonce = nonce;
            self.payout_served = served.balance;
            if address == self.beneficiary {
                // A pool paying from its coinbase: its fees are summed
                // over the same balance.
                self.beneficiary_served = served.balance;
            }
            return Ok(Some(served));
        }
        self.observed |= Some(address) == self.payout && address != self.beneficiary;
        if address == self.beneficiary {
            if self.crediting_fee {
                // Never observed, only credited: the credit is the fee.
                let mut placeholder = info.unwrap_or_default();
                placeholder.balance = U256::ZERO;
                self.beneficiary_served = U256::ZERO;
                return Ok(Some(placeholder));
            }
            if let Some(served) = info.as_ref().filter(|info| self.creditable(address, info)) {
                self.beneficiary_served = served.balance;
                return Ok(info);
            }
            self.observed = true;
        }
        if Some(address) == self.hot_recipient {
            // No earlier transaction, in any partition, changed more than
            // its balance, which the others' credits are summed with.
            match info.as_ref().filter(|info| self.creditable(address, info)) {
                Some(served) => self.hot_served = served.balance,
                None => self.observed = true,
            }
            return Ok(info);
        }
        if let Some(info) = &info {
            self.loaded.push(Loaded {
                address,
                balance: info.balance,
                nonce: info.nonce,
                code_hash: info.code_hash,
            });
        }
        Ok(info)
    }
    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, StateError> {
        self.cache.code_by_hash(code_hash).map_err(state_error)
    }
    fn storage(&mut self, address: Address, slot: U256) -> Result<U256, StateError> {
        self.observed |= address == self.beneficiary
            || Some(address) == self.payout
            || Some(address) == self.hot_recipient;
        self.cache.storage(address, slot).map_err(state_error)
    }
    fn block_hash(&mut self, number: u64) -> Result<B256, StateError> {
        self.cache.block_hash(number).map_err(state_error)
    }
}

/// The pre-block state's error out of the cache's wrapper of it.
fn state_error(error: EvmDatabaseError<StateError>) -> StateError {
    match error {
        EvmDatabaseError::Database(error) => error,
        EvmDatabaseError::Bal(error) => StateError::Other(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{InMemoryAccount, InMemoryState};
    use alloy_primitives::Bytes;

    /// Accounts sharing a code are served one copy of the partition's own,
    /// equal to the source's code, and fetching the code by hash serves it
    /// too.
    #[test]
    fn accounts_sharing_a_code_share_the_partitions_copy() {
        let code = Bytecode::new_legacy(Bytes::from_static(&[0x60, 0x04, 0x56, 0xfe, 0x5b, 0x00]));
        let mut state = InMemoryState::new();
        for byte in [1, 2] {
            let mut account = InMemoryAccount::default();
            account.info.code = Some(code.clone());
            state.insert_account(Address::repeat_byte(byte), account);
        }
        let mut recording = Recording::new(&state, 4);
        let served = |recording: &mut Recording<'_, InMemoryState>, byte| {
            let info = recording
                .basic(Address::repeat_byte(byte))
                .unwrap()
                .unwrap();
            info.code.unwrap()
        };
        let (first, second) = (served(&mut recording, 1), served(&mut recording, 2));
        let by_hash = recording.code_by_hash(code.hash_slow()).unwrap();
        let source = state.code_by_hash(&code.hash_slow()).unwrap();
        assert_eq!(first, source);
        assert!(std::ptr::eq(first.bytes_ref(), second.bytes_ref()));
        assert!(std::ptr::eq(first.bytes_ref(), by_hash.bytes_ref()));
        assert!(!std::ptr::eq(first.bytes_ref(), source.bytes_ref()));
    }
}
