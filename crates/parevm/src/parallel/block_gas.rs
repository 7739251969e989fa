//! The block's gas budget, counted in block order as alloy-evm's block
//! executor counts it: before each transaction, whether its gas limit fits
//! in what the block has left (if not, the transaction is invalid, whatever
//! else is wrong with it); after it, what it charged.
//!
//! The parallel executor only knows each transaction's gas once all are
//! done, so the assembly replays this count over the finished results
//! ([`collect_receipts`](super::merge::collect_receipts)).

use crate::TxResult;
use revm::context::CfgEnv;

/// The gas one executed transaction charged the block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TxGas {
    /// Gas used as its receipt counts it (after refunds).
    pub used: u64,
    /// Regular gas before refunds (EIP-8037's execution dimension).
    pub regular: u64,
    /// State gas (EIP-8037's state dimension).
    pub state: u64,
}

impl TxGas {
    /// The gas of an executed transaction's result.
    pub(crate) fn of<H>(result: &revm::context::result::ExecutionResult<H>) -> Self {
        let gas = result.gas();
        Self {
            used: gas.tx_gas_used(),
            regular: gas.block_regular_gas_used(),
            state: gas.block_state_gas_used(),
        }
    }
}

/// What the block's transactions so far charged, against its gas limit.
#[derive(Debug, Clone)]
pub(crate) struct BlockGas {
    limit: u64,
    /// Osaka's cap on a transaction's gas limit (EIP-7825), if any: a
    /// transaction needs room for no more than that.
    tx_cap: u64,
    /// Amsterdam (EIP-8037): the budget counts regular gas before refunds,
    /// and state gas on a budget of its own; the header's gas used is the
    /// larger of the two.
    eip8037: bool,
    /// So far, the sum of [`TxGas`] over the valid transactions.
    charged: TxGas,
}

impl BlockGas {
    /// An empty budget of `limit` gas under `cfg`'s rules.
    pub(crate) fn new(limit: u64, cfg: &CfgEnv) -> Self {
        Self {
            limit,
            tx_cap: revm::context_interface::Cfg::tx_gas_limit_cap(cfg),
            eip8037: cfg.enable_amsterdam_eip8037,
            charged: TxGas::default(),
        }
    }

    /// Whether a transaction with `gas_limit` fits in what is left.
    pub(crate) fn fits(&self, gas_limit: u64) -> bool {
        let counted = match self.eip8037 {
            true => self.charged.regular,
            false => self.charged.used,
        };
        let regular_fits = gas_limit.min(self.tx_cap) <= self.limit.saturating_sub(counted);
        // The state dimension counts the full gas limit: state gas is drawn
        // from the reservoir above the cap, so the cap does not bound it.
        let state_fits =
            !self.eip8037 || gas_limit <= self.limit.saturating_sub(self.charged.state);
        regular_fits && state_fits
    }

    /// Adds a valid transaction's gas; returns the block's cumulative gas
    /// as receipts count it.
    pub(crate) fn charge(&mut self, gas: TxGas) -> u64 {
        self.charged.used += gas.used;
        self.charged.regular += gas.regular;
        self.charged.state += gas.state;
        self.charged.used
    }

    /// Charges a finished transaction's `gas` if it was valid (it has a
    /// receipt), and sets its receipt's cumulative gas: what both parallel
    /// paths' assemblies do for each result, in block order.
    pub(crate) fn charge_result(&mut self, result: &mut TxResult, gas: TxGas) {
        if let Some(receipt) = result.receipt.as_mut() {
            let cumulative_gas = self.charge(gas);
            if let Some(receipt) = receipt.as_receipt_with_bloom_mut() {
                receipt.receipt.cumulative_gas_used = cumulative_gas;
            }
        }
    }

    /// The block's gas used, as its header states it.
    pub(crate) fn header_gas_used(&self) -> u64 {
        match self.eip8037 {
            true => self.charged.regular.max(self.charged.state),
            false => self.charged.used,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use revm::primitives::hardfork::SpecId;

    fn gas(used: u64, regular: u64, state: u64) -> TxGas {
        TxGas {
            used,
            regular,
            state,
        }
    }

    #[test]
    fn before_amsterdam_the_gas_after_refunds_counts() {
        let mut budget = BlockGas::new(50_000, &CfgEnv::new_with_spec(SpecId::CANCUN));
        assert_eq!(budget.charge(gas(20_000, 25_000, 0)), 20_000);
        assert!(budget.fits(30_000));
        assert!(!budget.fits(30_001));
        assert_eq!(budget.header_gas_used(), 20_000);
    }

    #[test]
    fn from_amsterdam_regular_gas_before_refunds_and_state_gas_count_apart() {
        let mut budget = BlockGas::new(50_000, &CfgEnv::new_with_spec(SpecId::AMSTERDAM));
        assert_eq!(budget.charge(gas(20_000, 25_000, 10_000)), 20_000);
        assert!(budget.fits(25_000));
        assert!(!budget.fits(25_001));
        assert_eq!(budget.header_gas_used(), 25_000);
        budget.charge(gas(30_000, 0, 30_000));
        // 40,000 of state gas: a limit above the 10,000 left no longer fits.
        assert!(!budget.fits(10_001));
        assert_eq!(budget.header_gas_used(), 40_000);
    }
}
