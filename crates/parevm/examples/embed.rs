//! Embedding parevm in a node: the node's own state behind [`StateSource`],
//! two blocks executed in parallel one after the other, each checked, and
//! each block's state changes applied before the next.
//!
//! `cargo run --release -p parevm --example embed`

use alloy_consensus::{Header, SignableTransaction, TxEip1559, TxEnvelope};
use alloy_primitives::{Address, B256, Bytes, Signature, TxKind, U256, map::HashMap};
use parevm::{
    BlockInput, ChainSpec, ParallelConfig, StateChanges, StateError, StateSource, execute_parallel,
    execute_sequential,
};
use revm::{bytecode::Bytecode, primitives::KECCAK_EMPTY, state::AccountInfo};
use std::sync::Arc;

/// Worker threads allocate at a high rate: use a thread-caching allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A node's view of the state before a block: immutable while the block
/// runs, so the workers read it without locks. A node would serve this from
/// its database (with a cache in front); what matters is that reads are
/// `Sync` and cheap.
#[derive(Debug, Default, Clone)]
struct Snapshot {
    /// Accounts without their code (contracts' code is in `codes`).
    accounts: HashMap<Address, AccountInfo>,
    codes: HashMap<B256, Bytecode>,
    storage: HashMap<(Address, U256), U256>,
    block_hashes: HashMap<u64, B256>,
}

impl StateSource for Snapshot {
    fn account(&self, address: &Address) -> Result<Option<AccountInfo>, StateError> {
        Ok(self.accounts.get(address).cloned())
    }
    fn code_by_hash(&self, code_hash: &B256) -> Result<Bytecode, StateError> {
        if *code_hash == KECCAK_EMPTY {
            return Ok(Bytecode::default());
        }
        self.codes
            .get(code_hash)
            .cloned()
            .ok_or(StateError::MissingCode(*code_hash))
    }
    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError> {
        Ok(self
            .storage
            .get(&(*address, *slot))
            .copied()
            .unwrap_or_default())
    }
    fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        self.block_hashes
            .get(&number)
            .copied()
            .ok_or(StateError::MissingBlockHash(number))
    }
}

impl Snapshot {
    /// The state after a block: this one with the block's changes applied,
    /// as a node writes them to its database.
    fn apply(&mut self, changes: &StateChanges) {
        self.codes
            .extend(changes.codes.iter().map(|(h, c)| (*h, c.clone())));
        for (address, change) in &changes.accounts {
            if change.storage_wiped || change.info.is_none() {
                self.storage.retain(|(owner, _), _| owner != address);
            }
            for (slot, value) in &change.storage {
                match value.is_zero() {
                    true => self.storage.remove(&(*address, *slot)),
                    false => self.storage.insert((*address, *slot), *value),
                };
            }
            match &change.info {
                Some(after) => {
                    let mut info = AccountInfo::new(
                        after.balance,
                        after.nonce,
                        after.code_hash,
                        Bytecode::default(),
                    );
                    // The code stays in `codes`, by hash.
                    info.code = None;
                    self.accounts.insert(*address, info);
                }
                None => {
                    self.accounts.remove(address);
                }
            }
        }
    }
}

/// A block of plain transfers: each of `senders` pays an account of its own.
fn block(number: u64, senders: &[Address], snapshot: &Snapshot) -> BlockInput {
    let transactions = senders
        .iter()
        .enumerate()
        .map(|(i, &sender)| {
            let nonce = snapshot.accounts.get(&sender).map_or(0, |a| a.nonce);
            let tx = TxEip1559 {
                chain_id: 1,
                nonce,
                gas_limit: 21_000,
                max_fee_per_gas: 20_000_000_000,
                max_priority_fee_per_gas: 1_000_000_000,
                to: TxKind::Call(Address::left_padding_from(
                    &(1_000_000 + i as u64).to_be_bytes(),
                )),
                value: U256::from(1_000 + i),
                access_list: Default::default(),
                input: Bytes::new(),
            };
            // The signer travels with the transaction (recovered once, when
            // the node received it); parevm does not recover it again.
            let signed = tx.into_signed(Signature::new(U256::from(1), U256::from(1), false));
            alloy_consensus::transaction::Recovered::new_unchecked(
                TxEnvelope::Eip1559(signed),
                sender,
            )
        })
        .collect();
    BlockInput {
        header: Header {
            number,
            timestamp: 1_700_000_000 + 12 * number,
            beneficiary: Address::repeat_byte(0xfe),
            gas_limit: 30_000_000,
            base_fee_per_gas: Some(10_000_000_000),
            withdrawals_root: Some(alloy_consensus::constants::EMPTY_WITHDRAWALS),
            ..Default::default()
        },
        transactions,
        ommers: Vec::new(),
        withdrawals: Some(Vec::new()),
        chain: Arc::new(ChainSpec::with_fork_from_genesis(
            1,
            alloy_hardforks::EthereumHardfork::Shanghai,
        )),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let senders: Vec<Address> = (1..=500u64)
        .map(|i| Address::left_padding_from(&i.to_be_bytes()))
        .collect();
    let mut snapshot = Snapshot::default();
    for &sender in &senders {
        let info = AccountInfo::from_balance(U256::from(10u128.pow(18)));
        snapshot.accounts.insert(sender, info);
    }
    let config = ParallelConfig::default();
    for number in 1..=2 {
        let block = block(number, &senders, &snapshot);
        let result = execute_parallel(&block, &snapshot, &config)?;
        // A node in its first weeks with parevm might shadow it with the
        // sequential executor; the two must agree byte for byte.
        let sequential = execute_sequential(&block, &snapshot)?;
        if let Some(difference) = sequential.first_difference(&result) {
            return Err(format!("block {number}: {difference}").into());
        }
        println!(
            "block {number}: {} transactions, {} gas, path {}, {} receipts, {} accounts changed",
            block.transactions.len(),
            result.gas_used,
            result.path.as_str(),
            result.receipts().count(),
            result.state.accounts.len(),
        );
        snapshot.apply(&result.state);
    }
    Ok(())
}
