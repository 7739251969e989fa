//! What executing a block produces.

use crate::changes::StateChanges;
use alloy_consensus::ReceiptEnvelope;
use alloy_eips::eip7685::Requests;
use alloy_primitives::{Bloom, Bytes};
use std::time::Duration;

/// How one transaction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxOutcome {
    /// Executed and succeeded.
    Success {
        /// Gas charged to the sender (after refunds).
        gas_used: u64,
        /// Return data (or the address of a created contract, as bytes).
        output: Bytes,
    },
    /// Executed and reverted; fees are still charged.
    Revert {
        /// Gas charged to the sender.
        gas_used: u64,
        /// Revert data.
        output: Bytes,
    },
    /// Executed and halted (out of gas, invalid opcode, ...); all gas is charged.
    Halt {
        /// Gas charged to the sender.
        gas_used: u64,
        /// Why it halted.
        reason: String,
    },
    /// Not executable in sequence (nonce, balance, gas limit, ...): it changes
    /// no state, has no receipt and makes the block invalid.
    Invalid {
        /// Why it was rejected.
        reason: String,
    },
}

impl TxOutcome {
    /// Gas charged (zero for an invalid transaction).
    pub fn gas_used(&self) -> u64 {
        match self {
            Self::Success { gas_used, .. }
            | Self::Revert { gas_used, .. }
            | Self::Halt { gas_used, .. } => *gas_used,
            Self::Invalid { .. } => 0,
        }
    }

    /// Whether the transaction was rejected.
    pub fn is_invalid(&self) -> bool {
        matches!(self, Self::Invalid { .. })
    }
}

/// Which executor produced a [`BlockResult`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionPath {
    /// The sequential executor.
    Sequential,
    /// The parallel (Block-STM) executor.
    Parallel,
    /// The parallel executor, as partitions predicted (and then checked) to
    /// touch disjoint state, claimed by the threads as they come free.
    Partitioned,
    /// The parallel executor was asked for, but the block ran sequentially.
    SequentialFallback(FallbackReason),
}

/// Why the parallel executor ran a block sequentially. New reasons come
/// with new rules, so a match needs a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum FallbackReason {
    /// Only one thread, core or transaction to run on.
    OneThread,
    /// Too few transactions to pay for starting threads.
    FewTransactions,
    /// Too little gas to pay for starting threads.
    LittleGas,
    /// Same-sender chains make most of the block one dependency chain.
    DependencyChain,
    /// The block did not partition, and its transactions are too cheap for
    /// Block-STM's cost per transaction to pay at the configured threads.
    CheapTransactions,
    /// Most executions were wasted on conflicts, so the block was given up
    /// mid-way and run sequentially.
    Conflicts,
    /// A transaction did not fit in the block's remaining gas: it is invalid
    /// in sequence, which only sequential execution reports exactly.
    GasLimitExceeded,
    /// A balance and the credits summed for it apart could exceed `2^256`,
    /// where sequential execution drops a fee or halts a transfer (see
    /// `parallel/credit.rs`): only in states no real chain holds.
    BalanceOverflow,
    /// A read of the pre-block state failed while the block ran in
    /// parallel. Speculative executions read more than execution in order
    /// does (an account or block hash that a stale value names), which a
    /// witness need not hold; the sequential executor reads only what
    /// execution in order reads, and returns the block's result, or the
    /// error if that read fails too.
    StateReadFailed,
}

impl FallbackReason {
    /// A short name for output.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::OneThread => "one-thread",
            Self::FewTransactions => "few-transactions",
            Self::LittleGas => "little-gas",
            Self::DependencyChain => "dependency-chain",
            Self::CheapTransactions => "cheap-transactions",
            Self::Conflicts => "conflicts",
            Self::GasLimitExceeded => "gas-limit-exceeded",
            Self::BalanceOverflow => "balance-overflow",
            Self::StateReadFailed => "state-read-failed",
        }
    }
}

impl ExecutionPath {
    /// A short name for output.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Sequential => "sequential",
            Self::Parallel => "parallel",
            Self::Partitioned => "partitioned",
            Self::SequentialFallback(_) => "sequential-fallback",
        }
    }

    /// Why the block ran sequentially, if it was a fallback.
    pub fn fallback_reason(&self) -> Option<FallbackReason> {
        match self {
            Self::SequentialFallback(reason) => Some(*reason),
            _ => None,
        }
    }
}

/// The result of one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxResult {
    /// How it ended.
    pub outcome: TxOutcome,
    /// Its receipt (`None` for an invalid transaction).
    pub receipt: Option<ReceiptEnvelope>,
}

/// The result of executing a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockResult {
    /// One entry per transaction, in block order.
    pub transactions: Vec<TxResult>,
    /// Gas used by the block, as its header states it: the sum over its
    /// valid transactions (from Amsterdam, EIP-8037, the larger of their
    /// regular gas before refunds and their state gas).
    pub gas_used: u64,
    /// Every account the block changed, system calls, rewards and withdrawals
    /// included.
    pub state: StateChanges,
    /// The block's EIP-7685 requests (deposits, withdrawal and consolidation
    /// requests), whose hash a Prague header carries; `None` before Prague.
    pub requests: Option<Requests>,
    /// Which executor ran.
    pub path: ExecutionPath,
    /// How much work the parallel executor did to get there.
    pub stats: ExecutionStats,
}

/// What the parallel executor did for one block: how far beyond one
/// execution per transaction the block's conflicts pushed it. All zero for
/// the sequential executor; a block the parallel executor gave up keeps the
/// counts of the attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExecutionStats {
    /// Transaction executions (Block-STM incarnations, or one per
    /// transaction in partitions), including those cut short by a
    /// dependency.
    pub executions: usize,
    /// Block-STM read-set validations.
    pub validations: usize,
    /// Incarnations that failed validation and were re-executed.
    pub aborts: usize,
    /// Executions that stopped at an ESTIMATE of a lower transaction and
    /// waited for it.
    pub blocked: usize,
    /// Partitions the block ran as (0 if it did not run as partitions).
    pub partitions: usize,
    /// A run as partitions was tried and discarded (the partitions were not
    /// independent) before the block ran another way.
    pub partitions_discarded: bool,
    /// Where the time of a block run on Block-STM or as partitions went,
    /// if [`ParallelConfig::phase_times`](crate::ParallelConfig::phase_times)
    /// asked for it.
    pub phases: Option<PhaseTimes>,
}

/// Where the time of a block run on Block-STM or as partitions went: the
/// caller's time before the workers start and after they stop, the
/// workers' wall time, and what the workers did meanwhile, summed over
/// them. The workers' wall time times their number, less the four sums, is
/// the time between tasks and before a helper joined. Partitions are
/// checked as they run, so their validating and waiting are zero and
/// their executing includes the checks. In JSON, each duration is in
/// microseconds (`before_us`, ...).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PhaseTimes {
    /// Worker threads, the caller included.
    pub threads: usize,
    /// From the call until the workers start: predicting and planning the
    /// block, preparing the multi-version memory and the scheduler.
    #[serde(rename = "before_us", serialize_with = "micros")]
    pub before: Duration,
    /// The workers' wall time, until the block is assembled.
    #[serde(rename = "running_us", serialize_with = "micros")]
    pub running: Duration,
    /// After the workers, until the result is returned (post-block system
    /// calls; dropping the block's working memory is not counted).
    #[serde(rename = "after_us", serialize_with = "micros")]
    pub after: Duration,
    /// Summed over the workers: executing incarnations (or partitions).
    #[serde(rename = "executing_us", serialize_with = "micros")]
    pub executing: Duration,
    /// Summed over the workers: validating read sets.
    #[serde(rename = "validating_us", serialize_with = "micros")]
    pub validating: Duration,
    /// Summed over the workers: without a task, waiting for a dependency or
    /// for the last transactions (or hashing another's large receipt bloom
    /// meanwhile).
    #[serde(rename = "waiting_us", serialize_with = "micros")]
    pub waiting: Duration,
    /// Summed over the workers: assembling the block once every transaction
    /// is done (write sets or partitions' changes merged into the block's,
    /// receipts).
    #[serde(rename = "assembling_us", serialize_with = "micros")]
    pub assembling: Duration,
}

fn micros<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64() * 1e6)
}

impl BlockResult {
    /// The receipts of the valid transactions, in order.
    pub fn receipts(&self) -> impl Iterator<Item = &ReceiptEnvelope> {
        self.transactions.iter().filter_map(|t| t.receipt.as_ref())
    }

    /// The block's logs bloom: the union of its receipts' blooms.
    pub fn logs_bloom(&self) -> Bloom {
        let mut bloom = Bloom::ZERO;
        for receipt in self.receipts() {
            bloom.accrue_bloom(receipt.logs_bloom());
        }
        bloom
    }

    /// The first place where `other` differs from `self`, or `None` if equal
    /// (the path and the stats are not compared).
    pub fn first_difference(&self, other: &BlockResult) -> Option<String> {
        if self.transactions.len() != other.transactions.len() {
            return Some("transaction counts differ".into());
        }
        for (index, (a, b)) in self
            .transactions
            .iter()
            .zip(&other.transactions)
            .enumerate()
        {
            if a.outcome != b.outcome {
                return Some(format!(
                    "tx {index}: outcome {:?} != {:?}",
                    a.outcome, b.outcome
                ));
            }
            if a.receipt != b.receipt {
                return Some(format!("tx {index}: receipts differ"));
            }
        }
        if self.gas_used != other.gas_used {
            return Some(format!("gas used {} != {}", self.gas_used, other.gas_used));
        }
        if self.requests != other.requests {
            return Some("requests differ".into());
        }
        self.state.first_difference(&other.state)
    }
}
