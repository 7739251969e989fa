//! The balances of accounts with code, summed across partitions: WETH
//! takes deposits in one partition and pays out withdrawals in another.
//!
//! A contract's balance is observed in few places (see `balance_watch.rs`):
//! `BALANCE`, `SELFBALANCE`, `SELFDESTRUCT`, and the check that it covers a
//! value it sends. Its emptiness never depends on it (it has code), and it
//! sends no transaction (EIP-3607; a delegated account that sends one
//! changes its nonce). So two partitions that only add to and send from it
//! need not see each other's changes, only:
//! - no partition observes the balance in full while another changes it
//!   (`footprint.rs`: [`Access::Balance`](super::footprint::Access) read
//!   against another partition's sum);
//! - every value a partition sends from it is still covered in sequence,
//!   where the other partitions' sends may come first: the least margin by
//!   which its balance covered a value sent covers all the values the other
//!   partitions sent from it ([`bounds_hold`]; their credits only raise
//!   it);
//! - the block's balance is the pre-block one plus every partition's change
//!   ([`ContractBalances::take_sums`], settled by `merge.rs` with the other
//!   sums).
//!
//! Only balances below 2^128 are summed, and only in transactions that
//! move no value of 2^128 or more (as Block-STM watches only such
//! balances, `balance_watch.rs`): a partition's view of a summed balance
//! then differs from the sequential one by far less than 2^256, so no
//! credit overflows in one and not the other. (Every value code moves
//! goes through the wrappers; one it destroys itself for is observed.)
//!
//! An account with code that a partition changes otherwise (its nonce, by
//! `CREATE`; its code; destroyed) is a write of the account, which every
//! other partition that loaded it conflicts with: that partition's account
//! is the block's, and its balance is not summed.

use crate::{
    AccountChange,
    parallel::{balance_watch::WatchedBalances, credit::Deltas},
    state::{StateError, StateSource},
};
use alloy_primitives::{Address, U256};
use std::collections::HashMap;

/// What one partition did to the balances of accounts with code.
#[derive(Default)]
pub(super) struct ContractBalances {
    /// The accounts with code whose balance alone the partition changed
    /// (`true`), or that it also changed otherwise (`false`: not summed).
    changed: HashMap<Address, bool>,
    /// The accounts it sent value from, each with what covered it.
    bounds: Vec<Bound>,
    /// The transaction now running moved a value of 2^128 or more: it
    /// sums no balance.
    large_value: bool,
}

/// An account's sends in one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Bound {
    pub(super) address: Address,
    /// The least its balance exceeded a value it sent by, in the
    /// partition's view.
    pub(super) least_margin: U256,
    /// The values it sent, summed (saturating: more than any balance only
    /// fails the other partitions' bounds, never passes them).
    pub(super) sent: U256,
}

impl ContractBalances {
    /// A transaction sending `value` from its sender starts.
    pub(super) fn start_tx(&mut self, value: U256) {
        self.large_value = !WatchedBalances::may_watch(value);
    }

    /// Whether the transaction now running may sum a balance that went
    /// from `before` to `after` in it (see the module docs).
    pub(super) fn may_sum(&self, before: U256, after: U256) -> bool {
        !self.large_value && WatchedBalances::may_watch(before) && WatchedBalances::may_watch(after)
    }

    /// A transaction changed `address`'s balance alone.
    pub(super) fn summed(&mut self, address: Address) {
        self.changed.entry(address).or_insert(true);
    }

    /// A transaction changed more of `address`, an account with code, than
    /// its balance.
    pub(super) fn written(&mut self, address: Address) {
        self.changed.insert(address, false);
    }

    /// `address`, holding `balance` in the partition's view, sends `value`,
    /// which that covers.
    pub(super) fn require(&mut self, address: Address, balance: U256, value: U256) {
        self.large_value |= !WatchedBalances::may_watch(value);
        let margin = balance.saturating_sub(value);
        match self.bounds.iter_mut().find(|b| b.address == address) {
            Some(bound) => {
                bound.least_margin = bound.least_margin.min(margin);
                bound.sent = bound.sent.saturating_add(value);
            }
            None => self.bounds.push(Bound {
                address,
                least_margin: margin,
                sent: value,
            }),
        }
    }

    /// Takes the summed accounts' changes to their balances out of
    /// `accounts` (the partition's, normalized, in address order): each
    /// account is left with the balance it had before the block (in
    /// `base`), which the merge settles with every partition's change.
    pub(super) fn take_sums<S: StateSource + ?Sized>(
        &self,
        base: &S,
        accounts: &mut [(Address, AccountChange)],
    ) -> Result<Vec<(Address, Deltas)>, StateError> {
        let mut sums = Vec::new();
        for (address, _) in self.changed.iter().filter(|(_, summed)| **summed) {
            let Ok(at) = accounts.binary_search_by_key(address, |(a, _)| *a) else {
                continue; // changed and changed back
            };
            let Some(info) = accounts[at].1.info.as_mut() else {
                continue; // unreachable: a destroyed account was written
            };
            let before = base
                .account_fields(address)?
                .map_or(U256::ZERO, |a| a.balance);
            sums.push((*address, Deltas::between(before, info.balance)));
            info.balance = before;
        }
        Ok(sums)
    }

    /// The partition's bounds.
    pub(super) fn into_bounds(self) -> Vec<Bound> {
        self.bounds
    }
}

/// Whether every partition's sends (`bounds`, one list per partition) are
/// covered in sequence: for each account, each partition's least margin
/// covers what the other partitions sent from it.
pub(super) fn bounds_hold(bounds: &[Vec<Bound>]) -> bool {
    let mut sent: HashMap<Address, U256> = HashMap::new();
    for bound in bounds.iter().flatten() {
        let total = sent.entry(bound.address).or_default();
        *total = total.saturating_add(bound.sent);
    }
    bounds.iter().flatten().all(|bound| {
        let others = sent[&bound.address].saturating_sub(bound.sent);
        bound.least_margin >= others
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WETH: Address = Address::repeat_byte(0xee);

    fn sends(sends: &[(u64, u64)]) -> Vec<Bound> {
        let mut balances = ContractBalances::default();
        for &(balance, value) in sends {
            balances.require(WETH, U256::from(balance), U256::from(value));
        }
        balances.into_bounds()
    }

    #[test]
    fn margins_cover_the_other_partitions_sends() {
        // One partition sent 3 and 4 with at least 10 to spare; another 5
        // with 20 to spare.
        let covered = [sends(&[(20, 3), (14, 4)]), sends(&[(25, 5)])];
        assert!(bounds_hold(&covered));
        assert_eq!(covered[0][0].least_margin, U256::from(10));
        assert_eq!(covered[0][0].sent, U256::from(7));
    }

    #[test]
    fn a_margin_short_of_the_others_sends_fails() {
        // 8 to spare in one partition; the others sent 5 + 4.
        let short = [sends(&[(10, 2)]), sends(&[(25, 5)]), sends(&[(30, 4)])];
        assert!(!bounds_hold(&short));
    }

    #[test]
    fn a_partitions_own_sends_are_in_its_margin() {
        assert!(bounds_hold(&[sends(&[(10, 10), (5, 5)]), Vec::new()]));
    }
}
