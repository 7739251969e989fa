//! The block input model: everything needed to execute a block, independent of
//! where the block came from (an RPC node, a fixture, a test, a generator).

use crate::error::ExecutionError;
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
    /// Blob fee parameters by the fork that sets them, in fork order.
    blob_schedule: Vec<(EthereumHardfork, BlobParams)>,
}

/// Ethereum's blob fee parameters (EIP-7840), by the fork that sets them:
/// Cancun, Prague and Osaka, then the blob-parameter-only forks of EIP-7892
/// that have parameters (BPO1 and BPO2 on mainnet). Every chain of
/// [`ChainSpec`] starts from it.
pub fn ethereum_blob_schedule() -> Vec<(EthereumHardfork, BlobParams)> {
    vec![
        (EthereumHardfork::Cancun, BlobParams::cancun()),
        (EthereumHardfork::Prague, BlobParams::prague()),
        (EthereumHardfork::Osaka, BlobParams::osaka()),
        (EthereumHardfork::Bpo1, BlobParams::bpo1()),
        (EthereumHardfork::Bpo2, BlobParams::bpo2()),
    ]
}

impl ChainSpec {
    /// Ethereum mainnet.
    pub fn mainnet() -> Self {
        Self {
            chain_id: 1,
            hardforks: EthereumChainHardforks::mainnet(),
            deposit_contract: Some(alloy_eips::eip6110::MAINNET_DEPOSIT_CONTRACT_ADDRESS),
            blob_schedule: ethereum_blob_schedule(),
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
            blob_schedule: ethereum_blob_schedule(),
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
            blob_schedule: ethereum_blob_schedule(),
        }
    }

    /// The revm spec in force at a block with this number and timestamp.
    pub fn spec_at(&self, number: u64, timestamp: u64) -> SpecId {
        alloy_evm::spec_by_timestamp_and_block_number(self, timestamp, number)
    }

    /// Sets the blob fee parameters that `fork` brings (a later BPO fork
    /// of EIP-7892, or another chain's values), replacing any it had.
    pub fn with_blob_params(mut self, fork: EthereumHardfork, params: BlobParams) -> Self {
        self.blob_schedule.retain(|(f, _)| *f != fork);
        let at = self.blob_schedule.partition_point(|(f, _)| *f < fork);
        self.blob_schedule.insert(at, (fork, params));
        self
    }

    /// Blob fee parameters in force at `timestamp`: those of the latest
    /// fork of the blob schedule active then; `None` before Cancun.
    ///
    /// A BPO fork active at `timestamp` whose parameters the schedule lacks
    /// is not seen here: [`Self::check_blob_params_at`] refuses such blocks.
    pub fn blob_params_at(&self, timestamp: u64) -> Option<BlobParams> {
        self.scheduled_at(timestamp).map(|(_, params)| *params)
    }

    /// The latest fork of the blob schedule active at `timestamp`.
    fn scheduled_at(&self, timestamp: u64) -> Option<&(EthereumHardfork, BlobParams)> {
        self.blob_schedule
            .iter()
            .rev()
            .find(|(fork, _)| self.is_ethereum_fork_active_at_timestamp(*fork, timestamp))
    }

    /// Whether the blob fee parameters at `timestamp` are known: an error
    /// names a BPO fork active then, later than every fork of the blob
    /// schedule that is, whose parameters were never set (with
    /// [`Self::with_blob_params`]). Executing under the previous fork's
    /// parameters would charge blob gas at the wrong price, and
    /// `BLOBBASEFEE` would read it, without any header check noticing.
    pub fn check_blob_params_at(&self, timestamp: u64) -> Result<(), UnknownBlobParams> {
        let latest_known = self.scheduled_at(timestamp).map(|(fork, _)| *fork);
        let unknown = EthereumHardfork::bpo_variants().iter().rev().find(|fork| {
            latest_known.is_none_or(|known| **fork > known)
                && self.is_ethereum_fork_active_at_timestamp(**fork, timestamp)
        });
        match unknown {
            Some(fork) => Err(UnknownBlobParams {
                fork: *fork,
                timestamp,
            }),
            None => Ok(()),
        }
    }
}

/// A blob-parameter-only fork is active, but its blob fee parameters are
/// not known (see [`ChainSpec::check_blob_params_at`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{fork} is active at timestamp {timestamp}, but its blob fee parameters are unknown \
     (set them with ChainSpec::with_blob_params)"
)]
pub struct UnknownBlobParams {
    /// The fork.
    pub fork: EthereumHardfork,
    /// The block's timestamp.
    pub timestamp: u64,
}

/// A block has at most two ommers (Yellow Paper, section 11.1).
const MAX_OMMERS: usize = 2;

/// An ommer is at most six generations below the block that includes it.
const MAX_OMMER_DEPTH: u64 = 6;

/// A block's ommers cannot be rewarded (see [`BlockInput::check_ommers`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidOmmers {
    /// A proof-of-stake block has no ommers.
    #[error("block {block} is after the merge, but has ommers")]
    AfterMerge {
        /// The block's number.
        block: u64,
    },
    /// More than two.
    #[error("{count} ommers, but a block has at most {MAX_OMMERS}")]
    TooMany {
        /// How many the block has.
        count: usize,
    },
    /// An ommer not 1 to 6 blocks below the block.
    #[error(
        "ommer {index} is block {ommer}, not 1 to {MAX_OMMER_DEPTH} blocks below block {block}"
    )]
    OutOfRange {
        /// The ommer's position in the block.
        index: usize,
        /// The ommer's number.
        ommer: u64,
        /// The block's number.
        block: u64,
    },
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

    /// Refuses a block whose blob fee parameters are unknown (see
    /// [`ChainSpec::check_blob_params_at`]).
    pub fn check_blob_params(&self) -> Result<(), UnknownBlobParams> {
        self.chain.check_blob_params_at(self.header.timestamp)
    }

    /// Refuses ommers whose rewards are undefined: more than two, any
    /// after the merge, or one that is not 1 to 6 blocks below this block.
    /// alloy-evm pays an ommer `(8 + ommer - block) / 8` of the block
    /// reward, which underflows (a panic, or a wrapped and absurd reward)
    /// for an ommer more than 8 blocks below.
    pub fn check_ommers(&self) -> Result<(), InvalidOmmers> {
        let block = self.header.number;
        if self.ommers.is_empty() {
            Ok(())
        } else if self.chain.is_paris_active_at_block(block) {
            Err(InvalidOmmers::AfterMerge { block })
        } else if self.ommers.len() > MAX_OMMERS {
            Err(InvalidOmmers::TooMany {
                count: self.ommers.len(),
            })
        } else {
            let out_of_range = self.ommers.iter().position(|ommer| {
                !(1..=MAX_OMMER_DEPTH).contains(&block.wrapping_sub(ommer.number))
            });
            match out_of_range {
                Some(index) => Err(InvalidOmmers::OutOfRange {
                    index,
                    ommer: self.ommers[index].number,
                    block,
                }),
                None => Ok(()),
            }
        }
    }

    /// Refuses a block that cannot be executed as given (see
    /// [`Self::check_blob_params`] and [`Self::check_ommers`]); both
    /// executors ask first.
    pub fn check(&self) -> Result<(), ExecutionError> {
        self.check_blob_params()?;
        self.check_ommers()?;
        Ok(())
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
        self.transactions
            .iter()
            .fold(0u64, |sum, tx| sum.saturating_add(tx.gas_limit()))
    }
}
