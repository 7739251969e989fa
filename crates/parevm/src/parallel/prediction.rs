//! Dependency prediction before execution: what a block's transactions will
//! conflict on, known from the block alone, and whether running it in
//! parallel can pay.
//!
//! The one dependency visible without executing is the sender: a
//! transaction's successor from the same sender reads the nonce and balance
//! it writes. An exchange hot wallet sending hundreds of transactions makes
//! a block one long chain, where parallel execution can only lose.

use super::types::{Location, TxIdx};
use crate::BlockInput;
use alloy_consensus::Transaction;
use alloy_primitives::{Address, map::HashMap};

/// What is known about a block's parallelism before executing it.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Transactions in the block.
    pub transactions: usize,
    /// Sum of the transactions' gas limits: the work, as far as it is known.
    pub gas: u64,
    /// Gas limits along the heaviest chain of same-sender transactions (a
    /// single transaction is a chain of one): no schedule can be shorter.
    pub critical_gas: u64,
}

impl Prediction {
    /// The speedup `threads` workers could reach if the sender chains were
    /// the only conflicts: `gas / max(critical_gas, gas / threads)`.
    pub fn bound(&self, threads: usize) -> f64 {
        let per_thread = self.gas as f64 / threads.max(1) as f64;
        let span = (self.critical_gas as f64).max(per_thread);
        if span == 0.0 {
            1.0
        } else {
            self.gas as f64 / span
        }
    }
}

/// A predicted dependency: `tx` writes the sender's nonce and balance that a
/// later transaction of the same sender reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SenderLink {
    /// The earlier transaction.
    pub tx: TxIdx,
    /// Their sender.
    pub sender: Address,
}

impl SenderLink {
    /// The locations `tx` is predicted to write.
    pub(crate) fn locations(&self) -> [Location; 2] {
        [Location::Nonce(self.sender), Location::Balance(self.sender)]
    }
}

/// Predicts `block`'s parallelism and its sender links.
pub(crate) fn predict(block: &BlockInput) -> (Prediction, Vec<SenderLink>) {
    #[derive(Default)]
    struct Chain {
        last: Option<TxIdx>,
        gas: u64,
    }
    let mut chains: HashMap<Address, Chain> =
        HashMap::with_capacity_and_hasher(block.transactions.len(), Default::default());
    let mut links = Vec::new();
    let mut gas = 0u64;
    let mut critical_gas = 0u64;
    for (index, tx) in block.transactions.iter().enumerate() {
        let chain = chains.entry(tx.signer()).or_default();
        if let Some(previous) = chain.last.replace(index) {
            links.push(SenderLink {
                tx: previous,
                sender: tx.signer(),
            });
        }
        chain.gas = chain.gas.saturating_add(tx.gas_limit());
        critical_gas = critical_gas.max(chain.gas);
        gas = gas.saturating_add(tx.gas_limit());
    }
    let prediction = Prediction {
        transactions: block.transactions.len(),
        gas,
        critical_gas,
    };
    (prediction, links)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_is_limited_by_threads_and_by_the_heaviest_chain() {
        let p = |gas, critical_gas| Prediction {
            transactions: 10,
            gas,
            critical_gas,
        };
        assert_eq!(p(100, 10).bound(2), 2.0);
        assert_eq!(p(100, 10).bound(4), 4.0);
        assert_eq!(p(100, 50).bound(4), 2.0);
        assert_eq!(p(100, 100).bound(8), 1.0);
        assert_eq!(p(0, 0).bound(2), 1.0);
    }
}
