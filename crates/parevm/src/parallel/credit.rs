//! Lazy credits and the one way they could differ from sequential
//! execution: overflow.
//!
//! Both parallel paths sum the balance credits nobody observes (the
//! beneficiary's fees, plain transfers' values, rewards and withdrawals)
//! apart, and add them to the balance only when it is read or the block
//! ends. In sequence no credit wraps: revm drops a fee that would overflow
//! the beneficiary's balance and halts a transfer that would overflow its
//! recipient's, and alloy-evm's rewards and withdrawals saturate. So a lazy
//! sum that could overflow is caught here, and the block runs sequentially
//! ([`FallbackReason::BalanceOverflow`](crate::FallbackReason)).
//!
//! Only what the block commits counts: a speculative incarnation may see a
//! balance below zero (wrapped), where a lower transaction's decrease was
//! made on a credit since withdrawn, and one whose read is only a lower
//! bound stays valid whatever it saw. So on Block-STM the check is made on
//! the committed write sets as they are folded into the block's changes
//! (`merge.rs`): each run of deltas against the full balance before it
//! (written by a transaction that read the balance, or the pre-block one).
//! A committed read of a balance that overflowed lies within such a run.
//! The partitions check their summed fees and payouts as they settle them
//! (`partitions/merge.rs`).
//!
//! Only a balance within the block's credits of `2^256` overflows, which no
//! real chain holds; a state that does (a test chain's faucet at
//! `U256::MAX`) loses parallelism, never exactness.

use alloy_primitives::U256;

/// Commutative changes to one balance, summed: their net change (wrapping,
/// so that a decrease is exact too) and the increases alone. Increases
/// first is the highest any order of them could take the balance, so if
/// the balance before them plus the increases fits, no partial sum
/// overflowed (decreases are covered by the balance: the watch that made
/// them lazy checked it, see `balance_watch.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Deltas {
    net: U256,
    increases: U256,
    /// The increases alone overflowed.
    overflowed: bool,
}

impl Deltas {
    /// No change at all.
    pub(crate) fn is_zero(&self) -> bool {
        self.net.is_zero() && self.increases.is_zero()
    }

    /// An increase of `amount` alone.
    pub(crate) fn increase_of(amount: U256) -> Self {
        let mut deltas = Self::default();
        deltas.increase(amount);
        deltas
    }

    /// The change from `before` to `after`.
    pub(crate) fn between(before: U256, after: U256) -> Self {
        let mut deltas = Self::default();
        match after >= before {
            true => deltas.increase(after - before),
            false => deltas.decrease(before - after),
        }
        deltas
    }

    /// Adds an increase of `amount`.
    pub(crate) fn increase(&mut self, amount: U256) {
        self.net = self.net.wrapping_add(amount);
        self.increase_only(amount);
    }

    /// Adds a decrease of `amount`.
    pub(crate) fn decrease(&mut self, amount: U256) {
        self.net = self.net.wrapping_sub(amount);
    }

    /// Adds `later`, the deltas after these.
    pub(crate) fn then(&mut self, later: Deltas) {
        self.net = self.net.wrapping_add(later.net);
        self.increase_only(later.increases);
        self.overflowed |= later.overflowed;
    }

    fn increase_only(&mut self, amount: U256) {
        let (increases, overflowed) = self.increases.overflowing_add(amount);
        self.increases = increases;
        self.overflowed |= overflowed;
    }

    /// `balance` with these deltas, and whether that could have overflowed
    /// in some order of them (then the sum only stands in until the block
    /// runs sequentially).
    pub(crate) fn onto(self, balance: U256) -> (U256, bool) {
        let overflowed = self.overflowed || balance.checked_add(self.increases).is_none();
        (balance.wrapping_add(self.net), overflowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deltas(changes: &[i64]) -> Deltas {
        let mut deltas = Deltas::default();
        for &change in changes {
            match change >= 0 {
                true => deltas.increase(U256::from(change)),
                false => deltas.decrease(U256::from(change.unsigned_abs())),
            }
        }
        deltas
    }

    #[test]
    fn decreases_are_exact_and_never_overflow() {
        assert_eq!(
            deltas(&[5, -8, 4]).onto(U256::from(10)),
            (U256::from(11), false)
        );
        assert_eq!(
            deltas(&[-3]).onto(U256::MAX),
            (U256::MAX - U256::from(3), false)
        );
    }

    #[test]
    fn increases_that_could_overflow_in_some_order_are_caught() {
        let near_max = U256::MAX - U256::from(10);
        assert_eq!(deltas(&[10]).onto(near_max), (U256::MAX, false));
        // The net change fits, but the increase first would not have.
        assert!(deltas(&[11, -5]).onto(near_max).1);
        let mut halves = deltas(&[]);
        halves.increase(U256::MAX);
        halves.then(deltas(&[1]));
        assert!(halves.onto(U256::ZERO).1);
    }

    #[test]
    fn the_change_between_two_balances_is_signed() {
        let (low, high) = (U256::from(3), U256::from(9));
        assert_eq!(Deltas::between(low, high).onto(low), (high, false));
        assert_eq!(Deltas::between(high, low).onto(high), (low, false));
        assert!(Deltas::between(low, low).is_zero());
    }
}
