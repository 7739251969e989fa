//! Where results are merged: once every transaction is executed and
//! validated, every worker takes a share of assembling the block
//! ([`Assembly`]): the final incarnations' write sets are folded in block
//! order into the block's state changes (resolving commutative
//! increments), one share of the accounts per thread ([`Part`]), while
//! the receipts the workers built get their cumulative gas.

use super::{
    digest,
    helpers::Claims,
    mv_memory::{MvMemory, lock},
    types::{Lifecycle, Location, WriteValue},
    vm::FinishedTx,
};
use crate::{
    BlockInput, ExecutionError, TxResult,
    changes::{AccountChange, AccountChanges, AccountState, StateChanges, codes_of},
    state::{OverlayState, StateError, StateSource},
};
use alloy_consensus::Transaction;
use alloy_primitives::{Address, B256, U256, map::HashMap};
use revm::{bytecode::Bytecode, primitives::KECCAK_EMPTY, state::AccountInfo};
use std::{collections::BTreeMap, sync::Mutex};

/// Each transaction's result and receipt, with the block's gas used; `None`
/// if a transaction does not fit in the block's remaining gas.
pub(super) type Receipts = Option<(Vec<TxResult>, u64)>;

/// What one task of an [`Assembly`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AssemblyTask {
    /// Thread the cumulative gas through the receipts: one task, as it
    /// runs through them in order.
    Receipts,
    /// Fold the state changes of one share of the accounts.
    Fold(Part),
    /// Free the multi-version memory's versions and read sets, which the
    /// folds do not read, so that the caller does not pay for it later.
    FreeMemory,
}

/// Assembling a Block-STM block's results once its transactions are done,
/// by every worker: the receipts, the state changes folded in one share of
/// the accounts per thread that can run at once, and freeing memory. Tasks
/// are claimed, not assigned ([`Claims`]), longest first: the receipts,
/// which cannot be split, then the folds.
///
/// Folding in two halves alone (on the caller and one helper) took 35-460
/// us after the mainnet fixtures' transactions on 2 threads, 3-12% of
/// their parallel time, and would not have shrunk with more threads. In
/// shares, it does: on 14029313 (724 transactions) the larger half took
/// 375 us, the largest of 8 shares 108 us, all shares together about as
/// long as the halves.
pub(super) struct Assembly {
    claims: Claims,
    receipts: Mutex<Option<Result<Receipts, ExecutionError>>>,
    folded: Vec<Mutex<Option<Result<FoldedPart, ExecutionError>>>>,
}

impl Assembly {
    /// An assembly folding the state changes in `parts` shares (at least one).
    pub(super) fn new(parts: usize) -> Self {
        let parts = parts.max(1);
        Self {
            claims: Claims::new(parts + 2),
            receipts: Mutex::default(),
            folded: (0..parts).map(|_| Mutex::default()).collect(),
        }
    }

    /// Runs the tasks this thread claims, until none is left: `receipts`
    /// builds the receipts, `fold` folds one part of the state changes,
    /// `free` frees memory.
    pub(super) fn run(
        &self,
        receipts: impl Fn() -> Result<Receipts, ExecutionError>,
        fold: impl Fn(Part) -> Result<FoldedPart, ExecutionError>,
        free: impl Fn(),
    ) {
        self.claims.run(|index| match self.task(index) {
            AssemblyTask::Receipts => *lock(&self.receipts) = Some(receipts()),
            AssemblyTask::Fold(part) => *lock(&self.folded[part.index]) = Some(fold(part)),
            AssemblyTask::FreeMemory => free(),
        });
    }

    fn task(&self, index: usize) -> AssemblyTask {
        match index {
            0 => AssemblyTask::Receipts,
            i if i <= self.folded.len() => AssemblyTask::Fold(Part {
                index: i - 1,
                count: self.folded.len(),
            }),
            _ => AssemblyTask::FreeMemory,
        }
    }

    /// The receipts and the block's state changes, once every task ran;
    /// `None` if a transaction does not fit in the block's gas (then the
    /// state changes are not needed).
    pub(super) fn finish(
        self,
    ) -> Result<Option<(Vec<TxResult>, u64, StateChanges)>, ExecutionError> {
        let missing = |what: &str| ExecutionError::Internal(format!("{what} were not assembled"));
        let receipts = into_inner(self.receipts).ok_or_else(|| missing("receipts"))?;
        let Some((transactions, gas_used)) = receipts? else {
            return Ok(None);
        };
        let parts = self
            .folded
            .into_iter()
            .map(|slot| into_inner(slot).ok_or_else(|| missing("state changes"))?)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some((
            transactions,
            gas_used,
            StateChanges::from_parts(parts),
        )))
    }
}

/// What a task left in `slot`, however the task ended.
fn into_inner<T>(slot: Mutex<T>) -> T {
    slot.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// One of `count` shares of the accounts, by the address's digest, so that
/// the shares take equal work whatever the addresses. (Halves by address
/// range were uneven: the synthetic AMM block's pools and tokens all fell
/// in one, which took 21 ms against the other's 3 ms.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Part {
    index: usize,
    count: usize,
}

impl Part {
    /// Whether `address` is in this share.
    fn holds(self, address: &Address) -> bool {
        // The digest scaled to `0..count`: its high bits pick the share.
        let digest = u128::from(digest::address_digest(address));
        ((digest * self.count as u128) >> 64) as usize == self.index
    }
}

/// The block's state changes to the accounts of `part`: the pre-block system
/// calls' (`pre`), then the final write sets in `mv` and the rewards and
/// withdrawals (`increments`), relative to the pre-block `state`; normalized
/// unless post-block system calls (no `increments`) still have to run.
/// Accounts are independent, so the parts together are the whole.
pub(super) fn fold_state<S: StateSource + ?Sized>(
    state: &S,
    pre: &StateChanges,
    mv: &MvMemory,
    part: Part,
    increments: Option<&[(Address, U256)]>,
) -> Result<FoldedPart, ExecutionError> {
    // The block sees about two distinct accounts per transaction.
    let mut accumulator = StateAccumulator::with_capacity(2 * mv.block_size() / part.count);
    mv.for_each_write_set(|writes| {
        accumulator.apply(writes.iter().filter(|(l, _)| part.holds(&l.address())));
    });
    if let Some(increments) = increments {
        let writes = increments.iter().filter(|(a, _)| part.holds(a));
        accumulator.apply(
            writes
                .map(|(a, v)| (Location::Balance(*a), WriteValue::BalanceIncrement(*v)))
                .collect::<Vec<_>>()
                .iter(),
        );
    }
    let holds = |address: &Address| part.holds(address);
    Ok(accumulator.finish(state, pre, holds, increments.is_some())?)
}

/// Each transaction's outcome and receipt, its receipt's cumulative gas
/// filled in, with the block's gas; `None` if a transaction does not fit in
/// the block's remaining gas.
pub(super) fn collect_receipts(
    block: &BlockInput,
    results: impl IntoIterator<Item = FinishedTx>,
) -> Result<Receipts, ExecutionError> {
    let tx_gas_cap = revm::context_interface::Cfg::tx_gas_limit_cap(&block.evm_env().cfg_env);
    let mut transactions = Vec::with_capacity(block.transactions.len());
    let mut cumulative_gas = 0u64;
    for (tx, finished) in block.transactions.iter().zip(results) {
        let FinishedTx {
            mut result,
            gas_used,
        } = finished;
        if let Some(receipt) = &mut result.receipt {
            if tx.gas_limit().min(tx_gas_cap) > block.header.gas_limit - cumulative_gas {
                return Ok(None);
            }
            cumulative_gas += gas_used;
            if let Some(receipt) = receipt.as_receipt_with_bloom_mut() {
                receipt.receipt.cumulative_gas_used = cumulative_gas;
            }
        }
        transactions.push(result);
    }
    Ok(Some((transactions, cumulative_gas)))
}

/// One account's writes folded together.
#[derive(Default)]
struct AccountWrites {
    balance: Option<U256>,
    increments: U256,
    nonce: Option<u64>,
    code: Option<(B256, Bytecode)>,
    lifecycle: Option<Lifecycle>,
    destroyed: bool,
    storage: BTreeMap<U256, U256>,
}

/// The state changes of one part of the accounts, sorted by address, so
/// that the parts merge into the block's changes in one pass
/// ([`StateChanges::from_parts`]).
pub(crate) struct FoldedPart {
    pub accounts: Vec<(Address, AccountChange)>,
    pub codes: BTreeMap<B256, Bytecode>,
}

impl StateChanges {
    /// The changes of `parts`, which hold different accounts, each in
    /// ascending order.
    pub(crate) fn from_parts(parts: Vec<FoldedPart>) -> Self {
        let mut codes = BTreeMap::new();
        let mut accounts = Vec::with_capacity(parts.iter().map(|p| p.accounts.len()).sum());
        for part in parts {
            codes.extend(part.codes);
            accounts.extend(part.accounts);
        }
        // A stable sort merges the sorted runs it finds.
        accounts.sort_by_key(|(address, _)| *address);
        Self {
            accounts: AccountChanges::from_sorted(accounts),
            codes,
        }
    }
}

/// Folds write sets, in block order, into state changes.
pub(crate) struct StateAccumulator {
    accounts: HashMap<Address, AccountWrites>,
}

impl StateAccumulator {
    /// An accumulator expecting about `accounts` distinct accounts.
    pub(crate) fn with_capacity(accounts: usize) -> Self {
        Self {
            accounts: HashMap::with_capacity_and_hasher(accounts, Default::default()),
        }
    }

    /// Applies the next transaction's writes.
    pub(crate) fn apply<'w>(&mut self, writes: impl Iterator<Item = &'w (Location, WriteValue)>) {
        for (location, value) in writes {
            let account = self.accounts.entry(location.address()).or_default();
            match (location, value) {
                (_, WriteValue::Balance(b)) => {
                    account.balance = Some(*b);
                    account.increments = U256::ZERO;
                }
                (_, WriteValue::BalanceIncrement(d)) => {
                    account.increments = account.increments.wrapping_add(*d)
                }
                (_, WriteValue::Nonce(n)) => account.nonce = Some(*n),
                (_, WriteValue::Code(hash, code)) => account.code = Some((*hash, code.clone())),
                (_, WriteValue::Lifecycle(l)) => {
                    account.lifecycle = Some(*l);
                    if *l == Lifecycle::Destroyed {
                        account.destroyed = true;
                        account.storage.clear();
                    }
                }
                (Location::Storage(_, slot), WriteValue::Storage(v)) => {
                    account.storage.insert(*slot, *v);
                }
                (_, WriteValue::Storage(_)) => {}
            }
        }
    }

    /// The accumulated changes composed onto `pre` (the changes of the
    /// pre-block system calls to the accounts that `part` holds), relative
    /// to the pre-block `state`; in canonical form when `normalize` (else
    /// later changes still follow). One pass: each account's pre-block
    /// value is read once, for both its fields and its normalization.
    pub(crate) fn finish<S: StateSource + ?Sized>(
        self,
        state: &S,
        pre: &StateChanges,
        part: impl Fn(&Address) -> bool,
        normalize: bool,
    ) -> Result<FoldedPart, StateError> {
        let mut codes = pre.codes.clone();
        let mut accounts = Vec::with_capacity(self.accounts.len());
        for (address, change) in pre.accounts.iter().filter(|(a, _)| part(a)) {
            if !self.accounts.contains_key(address) {
                accounts.push((*address, change.clone(), state.account_fields(address)?));
            }
        }
        let base = OverlayState::new(state, pre);
        for (address, writes) in self.accounts {
            if let Some((hash, code)) = &writes.code
                && *hash != KECCAK_EMPTY
            {
                codes.insert(*hash, code.clone());
            }
            let original = state.account_fields(&address)?;
            let change = writes.onto(&address, original.as_ref(), pre, &base)?;
            accounts.push((address, change, original));
        }
        let mut changes = Vec::with_capacity(accounts.len());
        for (address, change, original) in accounts {
            if !normalize {
                changes.push((address, change));
            } else if let Some(change) =
                change.normalized(&address, original.as_ref(), &state, &codes)?
            {
                changes.push((address, change));
            }
        }
        let changes = crate::changes::sorted_by_address(changes);
        let codes = if normalize {
            codes_of(changes.iter().map(|(_, change)| change))
        } else {
            codes
        };
        Ok(FoldedPart {
            accounts: changes,
            codes,
        })
    }
}

impl AccountWrites {
    /// The change of the account at `address` after these writes: on top
    /// of its pre-block fields (`original`), or, if a pre-block system call
    /// changed it, composed onto that change (`pre`; `base` is the
    /// pre-block state with the calls' changes).
    fn onto<S: StateSource + ?Sized>(
        self,
        address: &Address,
        original: Option<&AccountInfo>,
        pre: &StateChanges,
        base: &OverlayState<'_, S>,
    ) -> Result<AccountChange, StateError> {
        let Some(pre_change) = pre.accounts.get(address) else {
            return Ok(self.into_change(original));
        };
        let overlaid = base.account_fields(address)?;
        let mut composed = pre_change.clone();
        composed.then(self.into_change(overlaid.as_ref()));
        Ok(composed)
    }

    /// The account after these writes, on top of `before`.
    fn into_change(self, before: Option<&AccountInfo>) -> AccountChange {
        let balance = self
            .balance
            .unwrap_or_else(|| before.map_or(U256::ZERO, |b| b.balance))
            .wrapping_add(self.increments);
        let nonce = self.nonce.unwrap_or_else(|| before.map_or(0, |b| b.nonce));
        let code_hash = match &self.code {
            Some((hash, _)) => *hash,
            None => before.map_or(KECCAK_EMPTY, |b| b.code_hash),
        };
        let empty = balance.is_zero() && nonce == 0 && code_hash == KECCAK_EMPTY;
        let exists = match self.lifecycle {
            Some(Lifecycle::CreatedEmpty) => true,
            Some(Lifecycle::Destroyed) => !empty,
            None => before.is_some() || !empty,
        };
        let info = exists.then(|| AccountState {
            balance,
            nonce,
            code_hash,
            code: self.code.map(|(_, code)| code),
        });
        AccountChange {
            info,
            storage_wiped: self.destroyed,
            storage: self.storage,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(n: u64) -> Address {
        let mut bytes = [0u8; 20];
        bytes[12..].copy_from_slice(&n.to_be_bytes());
        Address::from(bytes)
    }

    /// Every account is in exactly one share, and the shares are about even.
    #[test]
    fn each_account_is_in_one_share() {
        for count in [1, 2, 3, 8, 16] {
            let mut sizes = vec![0usize; count];
            for n in 0..4_000 {
                let holders: Vec<usize> = (0..count)
                    .filter(|&index| Part { index, count }.holds(&address(n)))
                    .collect();
                assert_eq!(holders.len(), 1, "address {n} with {count} shares");
                sizes[holders[0]] += 1;
            }
            let even = 4_000 / count;
            assert!(sizes.iter().all(|&size| size > even * 3 / 4), "{sizes:?}");
        }
    }

    /// Parts merge into one map in address order, whatever their number.
    #[test]
    fn parts_merge_in_address_order() {
        let change = |balance: u64| AccountChange {
            info: Some(AccountState {
                balance: U256::from(balance),
                nonce: 0,
                code_hash: KECCAK_EMPTY,
                code: None,
            }),
            storage_wiped: false,
            storage: BTreeMap::new(),
        };
        let count = 5;
        let parts: Vec<FoldedPart> = (0..count)
            .map(|index| {
                let mut accounts: Vec<_> = (0..300)
                    .map(address)
                    .filter(|a| Part { index, count }.holds(a))
                    .map(|a| (a, change(a.0[19].into())))
                    .collect();
                accounts.sort_by_key(|(a, _)| *a);
                FoldedPart {
                    accounts,
                    codes: BTreeMap::new(),
                }
            })
            .collect();
        let changes = StateChanges::from_parts(parts);
        let merged: Vec<Address> = changes.accounts.keys().copied().collect();
        assert_eq!(merged, (0..300).map(address).collect::<Vec<_>>());
        assert_eq!(changes.accounts[&address(7)], change(7));
    }
}
