//! Balances of accounts with code or a nonce are read in full only where
//! the EVM observes them (`BALANCE`, `SELFBALANCE`, `SELFDESTRUCT`, a value
//! sent that they cannot cover, being the sender), and only bounded below
//! where they cover a value sent from them; elsewhere a transaction's change
//! to them is a commutative increment. Each way of observing a balance is
//! exercised between increments, in parallel at several thread counts, and
//! must match sequential execution.

mod support;

use alloy_hardforks::EthereumHardfork;
use alloy_primitives::{Address, U256};
use parevm::parallel::{Location, trace_block};
use revm::bytecode::opcode as op;
use support::*;

fn u(n: u64) -> Address {
    addr(n)
}

const VAULT: u64 = 0x100;
const FORWARDER: u64 = 0x101;
const BALANCE_PROBE: u64 = 0x102;
const DESTRUCTOR: u64 = 0x103;
const PIGGY: u64 = 0x104;
const FACTORY: u64 = 0x105;
const CALLCODER: u64 = 0x106;
/// An EOA that has sent transactions before (nonce 1).
const USED_EOA: u64 = 0x107;

/// Stores SELFBALANCE at the slot in word 0.
fn piggy() -> Vec<u8> {
    Asm::new()
        .op(&[op::SELFBALANCE])
        .push(0)
        .op(&[op::CALLDATALOAD, op::SSTORE, op::STOP])
        .build()
}

/// CALLCODEs the address in word 0 with word 1 wei (from itself to itself)
/// and stores the success flag at the slot numbered by that value.
fn callcoder() -> Vec<u8> {
    let to = [op::PUSH1, 0, op::CALLDATALOAD];
    let value = [op::PUSH1, 32, op::CALLDATALOAD];
    sends(Asm::new(), op::CALLCODE, &to, &value)
        .op(&value)
        .op(&[op::SSTORE, op::STOP])
        .build()
}

fn withdraw(amount: u64, slot: u64) -> Vec<u8> {
    calldata(&[word(amount), word(slot)])
}

/// A Cancun block where the vault, a builder-style beneficiary (nonce 3) and
/// a used EOA are credited by increments and observed in every way in
/// between. Returns the block and its pre-state.
fn block() -> (parevm::BlockInput, parevm::InMemoryState) {
    let mut b = BlockBuilder::new(EthereumHardfork::Cancun);
    let vault_address = u(VAULT);
    b.contract(vault_address, vault());
    b.contract(u(FORWARDER), forwarder());
    b.contract(u(BALANCE_PROBE), balance_probe());
    b.account(
        u(DESTRUCTOR),
        777,
        1,
        Some(selfdestruct_to(vault_address)),
        &[],
    );
    b.contract(u(PIGGY), piggy());
    b.contract(u(FACTORY), create_factory());
    b.contract(u(CALLCODER), callcoder());
    b.account(COINBASE, 1_000_000, 3, None, &[]);
    // Enough for its transfer's gas and 100 wei: the 120 wei it sends need
    // the 50 it is forwarded first.
    let gas_money = 21_000 * MAX_FEE;
    b.account(u(USED_EOA), gas_money + 100, 1, None, &[]);
    b.fund_all((1..=16).map(u));

    let forward = |to: Address| addr_word(to).to_vec();
    let probe = |slot: u64| calldata(&[addr_word(vault_address), word(slot)]);
    b.call(u(1), vault_address, 5, vec![]); // 0: deposit
    b.call(u(2), vault_address, 0, withdraw(3, 10)); // 1: withdraw, succeeds
    b.call(u(3), vault_address, 0, withdraw(5, 11)); // 2: withdraw, fails (2 left)
    b.call(u(4), u(FORWARDER), 10, forward(vault_address)); // 3: deposit via a contract
    b.call(u(5), vault_address, 0, withdraw(5, 12)); // 4: withdraw, succeeds (12)
    b.call(u(6), u(BALANCE_PROBE), 0, probe(20)); // 5: BALANCE = 7
    b.call(u(7), u(DESTRUCTOR), 0, vec![]); // 6: SELFDESTRUCT pays the vault 777
    b.call(u(8), u(BALANCE_PROBE), 0, probe(21)); // 7: BALANCE = 784
    b.call(u(9), u(FORWARDER), 1_000, forward(COINBASE)); // 8: a tip to the builder
    b.call(
        u(10),
        u(BALANCE_PROBE),
        0,
        calldata(&[addr_word(COINBASE), word(22)]),
    ); // 9
    b.call(u(11), u(FORWARDER), 50, forward(u(USED_EOA))); // 10
    b.transfer(u(USED_EOA), u(12), 120); // 11: valid only after tx 10
    b.call(u(13), u(PIGGY), 3, word(0).to_vec()); // 12: SELFBALANCE = 3
    b.call(u(14), u(PIGGY), 4, word(1).to_vec()); // 13: SELFBALANCE = 7
    b.call(u(15), u(FACTORY), 9, child_init()); // 14: CREATE with value
    b.call(u(16), u(CALLCODER), 5, vec![]); // 15: funds the callcoder (value 0 sent)
    let callcode = calldata(&[addr_word(vault_address), word(4)]);
    b.call(u(1), u(CALLCODER), 0, callcode); // 16: CALLCODE of 4 wei, funded
    b.call(u(2), u(VAULT), 0, withdraw(784, 13)); // 17: withdraws everything
    b.transfer(u(5), u(6), 1_000); // 18: paid for from a covering balance
    let probe_sender = calldata(&[addr_word(u(5)), word(24)]);
    b.call(u(7), u(BALANCE_PROBE), 0, probe_sender); // 19: BALANCE of that sender
    b.build()
}

#[test]
fn every_way_of_observing_a_balance_matches_sequential() {
    let (block, state) = block();
    let result = assert_parallel_matches_with(&block, &state, 10, false);

    let slot = |contract: u64, s: u64| storage_after(&result, &state, u(contract), U256::from(s));
    let vault_slot = |s: u64| slot(VAULT, s);
    assert_eq!(vault_slot(10), U256::from(1), "tx 1 withdraws 3 of 5");
    assert_eq!(vault_slot(11), U256::ZERO, "tx 2 cannot withdraw 5 of 2");
    assert_eq!(vault_slot(12), U256::from(1), "tx 4 withdraws 5 of 12");
    assert_eq!(slot(BALANCE_PROBE, 20), U256::from(7));
    assert_eq!(slot(BALANCE_PROBE, 21), U256::from(784));
    assert_eq!(vault_slot(13), U256::from(1), "tx 17 empties the vault");
    assert_eq!(slot(PIGGY, 0), U256::from(3));
    assert_eq!(slot(PIGGY, 1), U256::from(7));
    assert_eq!(
        slot(CALLCODER, 4),
        U256::from(1),
        "tx 16's CALLCODE is funded"
    );
    let paid = |tx: usize| {
        let gas = result.transactions[tx].outcome.gas_used() as u128;
        U256::from(gas * (BASE_FEE as u128 + PRIORITY_FEE))
    };
    // u5 withdrew 5 wei in tx 4, and sent 1,000 in tx 18.
    let sender_after = U256::from(RICH) - paid(4) - paid(18) + U256::from(5) - U256::from(1_000);
    assert_eq!(slot(BALANCE_PROBE, 24), sender_after);
    let vault_after = account_after(&result, &state, u(VAULT)).expect("the vault exists");
    assert_eq!(vault_after.info.balance, U256::ZERO);
}

/// How a transaction's final incarnation depends on a balance.
#[derive(Debug, PartialEq, Eq)]
enum Access {
    /// Read in full: any earlier change to it is a conflict.
    Read,
    /// Required to cover a value sent from it, and changed by increment.
    Bound,
    /// Only changed by increment.
    Increment,
    /// Not at all (or changed by nothing, as by a contract forwarding
    /// exactly the value it was sent).
    None,
}

fn access(trace: &parevm::parallel::TxAccessTrace, location: Location) -> Access {
    if trace.reads.contains(&location) {
        Access::Read
    } else if trace.bounds.contains(&location) {
        Access::Bound
    } else if trace.increments.contains(&location) {
        Access::Increment
    } else {
        Access::None
    }
}

#[test]
fn balances_are_read_only_where_observed_and_bounded_where_spent() {
    let (block, state) = block();
    let traces = trace_block(&block, &state).expect("traces");
    let balance = |n: u64| Location::Balance(u(n));
    let of = |tx: usize, location: Location| access(&traces[tx], location);
    let cases = [
        // Deposits, directly, through a contract or by SELFDESTRUCT, only add.
        (0, balance(VAULT), Access::Increment),
        (3, balance(VAULT), Access::Increment),
        (6, balance(VAULT), Access::Increment),
        // Withdrawals the vault covers need it to stay high enough; the one
        // it cannot cover observes it, as BALANCE does.
        (1, balance(VAULT), Access::Bound),
        (2, balance(VAULT), Access::Read),
        (4, balance(VAULT), Access::Bound),
        (17, balance(VAULT), Access::Bound),
        (5, balance(VAULT), Access::Read),
        (7, balance(VAULT), Access::Read),
        // A tip sent from a contract to a beneficiary that has a nonce; the
        // contract forwards exactly what it was sent.
        (8, Location::Balance(COINBASE), Access::Increment),
        (8, balance(FORWARDER), Access::None),
        // A used EOA credited from a contract, then its own sender: its
        // balance must cover the most the transaction can take.
        (10, balance(USED_EOA), Access::Increment),
        (11, balance(USED_EOA), Access::Bound),
        // SELFBALANCE observes; CREATE with the value just received needs
        // nothing; CALLCODE of 4 wei from 5 received earlier needs 4.
        (12, balance(PIGGY), Access::Read),
        (14, balance(FACTORY), Access::None),
        (15, balance(CALLCODER), Access::Increment),
        (16, balance(CALLCODER), Access::Bound),
        // The self-destructing contract's balance moves in full.
        (6, balance(DESTRUCTOR), Access::Read),
        // A sender that can pay; BALANCE of it later resolves its payments.
        (18, balance(5), Access::Bound),
        (19, balance(5), Access::Read),
    ];
    for (tx, location, expected) in cases {
        assert_eq!(of(tx, location), expected, "tx {tx}, {location:?}");
    }
}

/// The fee credit is a transaction's last touch of the beneficiary and reads
/// nothing of it, so a beneficiary that sends transactions itself (a pool
/// paying out in its own block) is no dependency of later transactions.
#[test]
fn fee_credits_read_nothing_of_the_beneficiary() {
    let mut b = BlockBuilder::new(EthereumHardfork::Cancun);
    b.account(COINBASE, RICH, 3, None, &[]);
    b.fund_all((1..=4).map(u));
    b.transfer(COINBASE, u(1), 1_000); // 0: the beneficiary's own payout
    b.transfer(u(2), u(3), 1_000); // 1
    b.call(u(4), u(3), 0, vec![]); // 2: a zero-value transfer still pays a fee
    let (block, state) = b.build();
    assert_parallel_matches(&block, &state);
    let traces = trace_block(&block, &state).expect("traces");
    for tx in [1, 2] {
        let touched = traces[tx]
            .reads
            .iter()
            .chain(&traces[tx].bounds)
            .filter(|location| location.address() == COINBASE)
            .collect::<Vec<_>>();
        assert!(touched.is_empty(), "tx {tx} reads {touched:?}");
        assert!(traces[tx].increments.contains(&Location::Balance(COINBASE)));
    }
}
