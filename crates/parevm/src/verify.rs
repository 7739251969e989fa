//! Checking an execution result against the block header: the proof that
//! parevm executed a real block exactly as the network did.

use crate::{BlockInput, BlockResult};
use alloy_hardforks::EthereumHardforks;

/// A way in which a result disagrees with its header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A transaction was invalid, so the block is.
    #[error("transaction {index} is invalid: {reason}")]
    InvalidTransaction {
        /// Its index.
        index: usize,
        /// Why.
        reason: String,
    },
    /// Gas used differs.
    #[error("gas used {actual} != header {expected}{}", first_divergence.map(|i| format!(" (cumulative gas first diverges at transaction {i})")).unwrap_or_default())]
    GasUsed {
        /// From the header.
        expected: u64,
        /// From execution.
        actual: u64,
        /// The first transaction whose cumulative gas is off, when known.
        first_divergence: Option<usize>,
    },
    /// The receipts root differs.
    #[error("receipts root {actual} != header {expected}")]
    ReceiptsRoot {
        /// From the header.
        expected: alloy_primitives::B256,
        /// From execution.
        actual: alloy_primitives::B256,
    },
    /// The requests hash (EIP-7685, Prague and later) differs.
    #[error("requests hash {} != header {expected}", actual.map_or("(no requests)".to_string(), |a| a.to_string()))]
    RequestsHash {
        /// From the header.
        expected: alloy_primitives::B256,
        /// From execution: `None` if it produced no requests.
        actual: Option<alloy_primitives::B256>,
    },
    /// From Prague on a header commits to the block's requests (EIP-7685);
    /// this one has no requests hash.
    #[error("the header has no requests hash, which a block from Prague on has")]
    MissingRequestsHash,
    /// The logs bloom differs.
    #[error("logs bloom differs from header (first differing receipt: {first_receipt:?})")]
    LogsBloom {
        /// The first transaction whose logs hit a bit the header lacks.
        first_receipt: Option<usize>,
    },
    /// The transactions are not those the header commits to.
    #[error("transactions root {actual} != header {expected}")]
    TransactionsRoot {
        /// From the header.
        expected: alloy_primitives::B256,
        /// Of the block's transactions.
        actual: alloy_primitives::B256,
    },
    /// The withdrawals are not those the header commits to (`None`: no
    /// withdrawals list, or no root in the header).
    #[error("withdrawals root {} != header {}", show(actual), show(expected))]
    WithdrawalsRoot {
        /// From the header.
        expected: Option<alloy_primitives::B256>,
        /// Of the block's withdrawals.
        actual: Option<alloy_primitives::B256>,
    },
}

/// A root that may be absent, for an error message.
fn show(root: &Option<alloy_primitives::B256>) -> String {
    root.map_or_else(|| "(none)".to_string(), |root| root.to_string())
}

/// Checks that `block`'s transactions and withdrawals are those its header
/// commits to (its transactions and withdrawals roots), before executing
/// it: what a block body received apart from its header needs.
pub fn verify_body(block: &BlockInput) -> Result<(), VerifyError> {
    let envelopes: Vec<&alloy_consensus::TxEnvelope> =
        block.transactions.iter().map(|tx| tx.inner()).collect();
    let actual = alloy_consensus::proofs::calculate_transaction_root(&envelopes);
    if actual != block.header.transactions_root {
        return Err(VerifyError::TransactionsRoot {
            expected: block.header.transactions_root,
            actual,
        });
    }
    let actual = block
        .withdrawals
        .as_deref()
        .map(alloy_consensus::proofs::calculate_withdrawals_root);
    if actual != block.header.withdrawals_root {
        return Err(VerifyError::WithdrawalsRoot {
            expected: block.header.withdrawals_root,
            actual,
        });
    }
    Ok(())
}

/// Checks gas used, logs bloom, (from Byzantium on, when receipts carry a
/// status instead of a state root) the receipts root, and (from Prague on)
/// the requests hash.
pub fn verify_against_header(block: &BlockInput, result: &BlockResult) -> Result<(), VerifyError> {
    if let Some((index, reason)) =
        result
            .transactions
            .iter()
            .enumerate()
            .find_map(|(i, t)| match &t.outcome {
                crate::TxOutcome::Invalid { reason } => Some((i, reason.clone())),
                _ => None,
            })
    {
        return Err(VerifyError::InvalidTransaction { index, reason });
    }
    let header = &block.header;
    if result.gas_used != header.gas_used {
        return Err(VerifyError::GasUsed {
            expected: header.gas_used,
            actual: result.gas_used,
            first_divergence: first_gas_divergence(block, result),
        });
    }
    let bloom = result.logs_bloom();
    if bloom != header.logs_bloom {
        let first_receipt = result.transactions.iter().position(|t| {
            t.receipt.as_ref().is_some_and(|r| {
                let b = r.logs_bloom();
                (*b | header.logs_bloom) != header.logs_bloom
            })
        });
        return Err(VerifyError::LogsBloom { first_receipt });
    }
    if block.chain.is_byzantium_active_at_block(header.number) {
        let receipts: Vec<_> = result.receipts().cloned().collect();
        let root = alloy_consensus::proofs::calculate_receipt_root(&receipts);
        if root != header.receipts_root {
            return Err(VerifyError::ReceiptsRoot {
                expected: header.receipts_root,
                actual: root,
            });
        }
    }
    match header.requests_hash {
        Some(expected) => {
            let actual = result.requests.as_ref().map(|r| r.requests_hash());
            if actual != Some(expected) {
                return Err(VerifyError::RequestsHash { expected, actual });
            }
        }
        None if block.chain.is_prague_active_at_timestamp(header.timestamp) => {
            return Err(VerifyError::MissingRequestsHash);
        }
        None => {}
    }
    Ok(())
}

/// Where cumulative gas first goes wrong. Needs the network's receipts, which a
/// header alone does not have, so it can only tell when the block's total is
/// reached too early or never: the transaction at which the running sum
/// passes the header's total.
fn first_gas_divergence(block: &BlockInput, result: &BlockResult) -> Option<usize> {
    let mut cumulative = 0u64;
    for (index, tx) in result.transactions.iter().enumerate() {
        cumulative += tx.outcome.gas_used();
        if cumulative > block.header.gas_used {
            return Some(index);
        }
    }
    None
}
