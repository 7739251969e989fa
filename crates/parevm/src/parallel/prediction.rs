//! Dependency prediction before execution: what a block's transactions will
//! conflict on, known from the block alone, and whether running it in
//! parallel can pay.
//!
//! The one dependency visible without executing is the sender: a
//! transaction's successor from the same sender reads the nonce and balance
//! it writes. An exchange hot wallet sending hundreds of transactions makes
//! a block one long chain, where parallel execution can only lose.

use super::{
    partition::{Digested, address_digest},
    types::{Location, TxIdx},
};
use crate::BlockInput;
use alloy_consensus::Transaction;
use alloy_primitives::Address;
use std::{collections::HashMap, hash::BuildHasherDefault};

/// What is known about a block's parallelism before executing it.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Transactions in the block.
    pub transactions: usize,
    /// Sum of the transactions' gas limits.
    pub gas: u64,
    /// Gas limits along the heaviest chain of same-sender transactions (a
    /// single transaction is a chain of one): no schedule can be shorter.
    /// Limits, not [`predicted_gas`], on both sides of the bound: a hot
    /// wallet's chain of transfers counted at 21,000 each against calls
    /// counted at their (generous) limits looked short enough to run in
    /// parallel on fixture 12520364, which then lost (0.63-0.75x).
    pub critical_gas: u64,
    /// Sum of the transactions' [`predicted_gas`]: how much execution there
    /// is, as far as the block alone tells.
    pub work: u64,
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

/// The gas a transaction is predicted to use: its gas limit, except that a
/// call without calldata (a plain value transfer, almost always) counts at
/// most the 21,000 it costs. Wallets long sent those with limits of 90,000
/// and more, which made blocks of cheap transfers look heavy: on the mainnet
/// fixtures, 116525 and 6196166 carried 7.2M and 10.6M of gas limits for
/// 3.6M of such work, and lost to sequential when run in parallel.
pub fn predicted_gas(tx: &impl Transaction) -> u64 {
    if tx.input().is_empty() && tx.kind().is_call() {
        tx.gas_limit().min(21_000)
    } else {
        tx.gas_limit()
    }
}

/// A predicted dependency: `tx` writes the sender's nonce and balance that a
/// later transaction of the same sender reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SenderLink {
    /// The earlier transaction.
    pub tx: TxIdx,
    /// The sender's next transaction after it.
    pub next: TxIdx,
    /// Their sender.
    pub sender: Address,
}

impl SenderLink {
    /// The locations `tx` is predicted to write.
    pub(crate) fn locations(&self) -> [Location; 2] {
        [Location::Nonce(self.sender), Location::Balance(self.sender)]
    }
}

/// Predicts `block`'s parallelism, with its sender links, in one pass.
///
/// Senders are keyed by a 64-bit digest of the address rather than by the
/// address: on 10,000 independent transfers the pass fell from 0.5-1.1 ms
/// to about 0.4 ms on the 2-core VM.
pub(crate) fn predict(block: &BlockInput) -> (Prediction, Vec<SenderLink>) {
    let mut chains = SenderChains::new(block.transactions.len());
    let mut gas = 0u64;
    let mut work = 0u64;
    for (index, tx) in block.transactions.iter().enumerate() {
        chains.add(block, index, tx.signer(), tx.gas_limit());
        gas = gas.saturating_add(tx.gas_limit());
        work = work.saturating_add(predicted_gas(tx.inner()));
    }
    let prediction = Prediction {
        transactions: block.transactions.len(),
        gas,
        critical_gas: chains.critical_gas,
        work,
    };
    // The map is dropped here, before the block runs: kept alive through
    // the run (in a trial), it cost a block that then ran sequentially 2-3%.
    (prediction, chains.links)
}

/// The chains of transactions from one sender.
struct SenderChains {
    /// Each sender's last transaction so far and its chain's gas limits, by
    /// the sender's digest.
    chains: HashMap<u64, Chain, BuildHasherDefault<Digested>>,
    links: Vec<SenderLink>,
    critical_gas: u64,
}

#[derive(Default)]
struct Chain {
    last: Option<TxIdx>,
    gas: u64,
}

impl SenderChains {
    fn new(transactions: usize) -> Self {
        Self {
            chains: HashMap::with_capacity_and_hasher(transactions, Default::default()),
            links: Vec::new(),
            critical_gas: 0,
        }
    }

    /// Adds transaction `index` of `block`, from `sender`.
    fn add(&mut self, block: &BlockInput, index: TxIdx, sender: Address, gas_limit: u64) {
        let chain = self.chains.entry(address_digest(&sender)).or_default();
        // Two senders sharing a digest share a chain: the bound only gets
        // more cautious. The link is checked, though a wrong one would only
        // make a transaction wait until the earlier one first runs.
        if let Some(previous) = chain.last.replace(index)
            && block.transactions[previous].signer() == sender
        {
            self.links.push(SenderLink {
                tx: previous,
                next: index,
                sender,
            });
        }
        chain.gas = chain.gas.saturating_add(gas_limit);
        self.critical_gas = self.critical_gas.max(chain.gas);
    }
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
            work: gas,
        };
        assert_eq!(p(100, 10).bound(2), 2.0);
        assert_eq!(p(100, 10).bound(4), 4.0);
        assert_eq!(p(100, 50).bound(4), 2.0);
        assert_eq!(p(100, 100).bound(8), 1.0);
        assert_eq!(p(0, 0).bound(2), 1.0);
    }

    #[test]
    fn calls_without_calldata_count_at_most_a_transfer() {
        use alloy_consensus::TxLegacy;
        use alloy_primitives::{Bytes, TxKind};
        let tx = |to, input: &'static [u8], gas_limit| TxLegacy {
            to,
            input: Bytes::from_static(input),
            gas_limit,
            ..Default::default()
        };
        let to = TxKind::Call(Address::repeat_byte(1));
        assert_eq!(predicted_gas(&tx(to, b"", 90_000)), 21_000);
        assert_eq!(predicted_gas(&tx(to, b"", 20_000)), 20_000);
        assert_eq!(predicted_gas(&tx(to, b"\x01", 90_000)), 90_000);
        assert_eq!(predicted_gas(&tx(TxKind::Create, b"", 90_000)), 90_000);
    }
}
