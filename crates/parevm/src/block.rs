//! The block input model: everything needed to execute a block, independent of
//! where the block came from (an RPC node, a fixture, a test, a generator).

use alloy_consensus::{Header, TxEnvelope, transaction::Recovered};
use alloy_eips::{eip4895::Withdrawal, eip7840::BlobParams};
use alloy_evm::{
    EvmEnv,
    eth::{EthBlockExecutionCtx, spec::EthExecutorSpec},
};
use alloy_hardforks::{EthereumChainHardforks, EthereumHardfork, EthereumHardforks, ForkCondition};
use alloy_primitives::Address;
use revm::primitives::hardfork::SpecId;
use std::{borrow::Cow, sync::Arc};

/// Hard-fork schedule of a chain, and the chain's constants that block
/// execution needs.
#[derive(Debug, Clone)]
pub struct ChainSpec {
    /// The chain id (1 for Ethereum mainnet).
    pub chain_id: u64,
    hardforks: EthereumChainHardforks,
    deposit_contract: Option<Address>,
}

impl ChainSpec {
    /// Ethereum mainnet.
    pub fn mainnet() -> Self {
        Self {
            chain_id: 1,
            hardforks: EthereumChainHardforks::mainnet(),
            deposit_contract: Some(alloy_eips::eip6110::MAINNET_DEPOSIT_CONTRACT_ADDRESS),
        }
    }

    /// A chain on which `fork` and all forks before it are active from genesis
    /// (as the Ethereum Foundation's tests assume).
    pub fn with_fork_from_genesis(chain_id: u64, fork: EthereumHardfork) -> Self {
        let forks = EthereumHardfork::VARIANTS
            .iter()
            .copied()
            .filter(|f| *f <= fork)
            .map(|f| {
                let condition = if f >= EthereumHardfork::Shanghai {
                    ForkCondition::Timestamp(0)
                } else if f == EthereumHardfork::Paris {
                    ForkCondition::TTD {
                        activation_block_number: 0,
                        fork_block: Some(0),
                        total_difficulty: alloy_primitives::U256::ZERO,
                    }
                } else {
                    ForkCondition::Block(0)
                };
                (f, condition)
            });
        Self {
            chain_id,
            hardforks: EthereumChainHardforks::new(forks),
            deposit_contract: Some(alloy_eips::eip6110::MAINNET_DEPOSIT_CONTRACT_ADDRESS),
        }
    }

    /// A chain with an explicit fork schedule (e.g. the transition networks of
    /// the Ethereum Foundation's tests, such as Shanghai to Cancun at
    /// timestamp 15000). Forks not listed never activate.
    pub fn with_forks(
        chain_id: u64,
        forks: impl IntoIterator<Item = (EthereumHardfork, ForkCondition)>,
    ) -> Self {
        Self {
            chain_id,
            hardforks: EthereumChainHardforks::new(forks),
            deposit_contract: Some(alloy_eips::eip6110::MAINNET_DEPOSIT_CONTRACT_ADDRESS),
        }
    }

    /// The revm spec in force at a block with this number and timestamp.
    pub fn spec_at(&self, number: u64, timestamp: u64) -> SpecId {
        alloy_evm::spec_by_timestamp_and_block_number(self, timestamp, number)
    }

    /// Blob fee parameters in force at `timestamp`, if blobs exist then.
    pub fn blob_params_at(&self, timestamp: u64) -> Option<BlobParams> {
        if self.is_osaka_active_at_timestamp(timestamp) {
            Some(BlobParams::osaka())
        } else if self.is_prague_active_at_timestamp(timestamp) {
            Some(BlobParams::prague())
        } else if self.is_cancun_active_at_timestamp(timestamp) {
            Some(BlobParams::cancun())
        } else {
            None
        }
    }
}

impl EthereumHardforks for ChainSpec {
    fn ethereum_fork_activation(&self, fork: EthereumHardfork) -> ForkCondition {
        self.hardforks.ethereum_fork_activation(fork)
    }
}

impl EthExecutorSpec for ChainSpec {
    fn deposit_contract_address(&self) -> Option<Address> {
        self.deposit_contract
    }
}

/// A block ready to execute: its header (the block environment: number,
/// timestamp, beneficiary, gas limit, base fee, difficulty / prevrandao, blob
/// gas, parent beacon root), its transactions with recovered senders, ommers,
/// withdrawals, and the chain it belongs to.
#[derive(Debug, Clone)]
pub struct BlockInput {
    /// The header. Execution reads the environment fields; verification
    /// compares the result with `gas_used`, `receipts_root` and `logs_bloom`.
    pub header: Header,
    /// Transactions of any type, each with its sender.
    pub transactions: Vec<Recovered<TxEnvelope>>,
    /// Ommer (uncle) headers, for pre-merge rewards.
    pub ommers: Vec<Header>,
    /// Withdrawals (Shanghai and later).
    pub withdrawals: Option<Vec<Withdrawal>>,
    /// The chain, which fixes the hard fork by number and timestamp.
    pub chain: Arc<ChainSpec>,
}

impl BlockInput {
    /// The revm spec (hard fork) of this block.
    pub fn spec(&self) -> SpecId {
        self.chain
            .spec_at(self.header.number, self.header.timestamp)
    }

    /// The hard fork's name, as in [`SpecId`] (e.g. `"Cancun"`).
    pub fn fork_name(&self) -> &'static str {
        self.spec().into()
    }

    /// The EVM's configuration and block environment for this block.
    pub fn evm_env(&self) -> EvmEnv {
        let blob_params = self.chain.blob_params_at(self.header.timestamp);
        EvmEnv::for_eth_block(&self.header, &*self.chain, self.chain.chain_id, blob_params)
    }

    /// alloy-evm's execution context for this block: what its block executor
    /// needs besides the EVM (parent hash and beacon root for the system
    /// calls, ommers and withdrawals for the rewards).
    pub fn execution_ctx(&self) -> EthBlockExecutionCtx<'_> {
        EthBlockExecutionCtx {
            parent_hash: self.header.parent_hash,
            parent_beacon_block_root: self.header.parent_beacon_block_root,
            ommers: &self.ommers,
            withdrawals: self.withdrawals.as_deref().map(Cow::Borrowed),
            extra_data: self.header.extra_data.clone(),
            tx_count_hint: Some(self.transactions.len()),
            slot_number: None,
        }
    }

    /// Total gas limit of all transactions, a cheap measure of block size.
    pub fn gas_limit_sum(&self) -> u64 {
        use alloy_consensus::Transaction;
        self.transactions.iter().map(|tx| tx.gas_limit()).sum()
    }
}
