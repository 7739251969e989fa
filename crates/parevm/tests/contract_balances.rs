//! The balance of an account with code, summed across partitions: a vault
//! (WETH-like) takes deposits in one partition and pays withdrawals out
//! in others, through routers the plan cannot see into. The partitions may
//! change its balance apart only while none observes it in full, every
//! value sent from it stays covered in sequence, and nothing else of it
//! changes; else the run must be caught and the sequential result kept.

mod support;

use alloy_hardforks::EthereumHardfork;
use alloy_primitives::{Address, U256};
use parevm::{BlockInput, ExecutionPath, InMemoryState};
use support::*;

const VAULT: u64 = 0x5a;
/// Routers: `ROUTERS + n`.
const ROUTERS: u64 = 0x60;
/// Depositors, withdrawers and other senders: fresh accounts from here on.
const DEPOSITORS: u64 = 0x1000;
const WITHDRAWERS: u64 = 0x2000;
const OTHERS: u64 = 0x3000;

/// Transfers between other accounts, so that the block balances at every
/// thread count.
const TRANSFERS: u64 = 80;

/// The gas limit of deposits and withdrawals: the plan weighs calls by it.
const CALL_GAS: u64 = 40_000;

/// `XOR`: the routers compute their target, so the plan cannot read it.
const XOR: u8 = 0x18;

/// What a vault does with a deposit (a call without calldata) before it
/// stops.
#[derive(Clone, Copy)]
enum OnDeposit {
    /// Nothing: it only takes the value.
    Accept,
    /// Stores `SELFBALANCE` in slot 0: it observes its balance.
    StoreSelfBalance,
    /// Creates an empty contract: its nonce changes.
    Create,
}

impl OnDeposit {
    /// A deposit's gas limit: `CREATE` alone costs 32,000.
    fn gas_limit(self) -> u64 {
        match self {
            Self::Create => 100_000,
            _ => CALL_GAS,
        }
    }
}

/// A vault: a call without calldata deposits its value; a call with an
/// amount in calldata word 0 pays that amount to the caller
/// (`CALL(gas, CALLER, amount, 0, 0, 0, 0)`, which fails without the
/// funds, as in sequence).
fn vault(on_deposit: OnDeposit) -> Vec<u8> {
    let mut deposit = 0;
    let code = Asm::new()
        .op(&[op::CALLDATASIZE, op::ISZERO])
        .push_label(&mut deposit)
        .op(&[op::JUMPI])
        .push(0)
        .push(0)
        .push(0)
        .push(0)
        .push(0)
        .op(&[
            op::CALLDATALOAD,
            op::CALLER,
            op::GAS,
            op::CALL,
            op::POP,
            op::STOP,
        ]);
    let at = code.pc();
    let code = code.op(&[op::JUMPDEST]);
    let code = match on_deposit {
        OnDeposit::Accept => code,
        OnDeposit::StoreSelfBalance => code.op(&[op::SELFBALANCE]).store_top(0),
        OnDeposit::Create => code.push(0).push(0).push(0).op(&[op::CREATE, op::POP]),
    };
    code.op(&[op::STOP]).patch(deposit, at).build()
}

/// A router: with calldata (`vault ^ 1`, amount), asks the vault for the
/// amount (`CALL(gas, word0 ^ 1, 0, 0, 32, 0, 0)` with the amount in
/// memory); without, it takes the value paid to it.
fn router() -> Vec<u8> {
    let mut end = 0;
    let code = Asm::new()
        .op(&[op::CALLDATASIZE, op::ISZERO])
        .push_label(&mut end)
        .op(&[op::JUMPI])
        .push(32)
        .op(&[op::CALLDATALOAD])
        .push(0)
        .op(&[op::MSTORE])
        .push(0)
        .push(0)
        .push(32)
        .push(0)
        .push(0)
        .push(1)
        .push(0)
        .op(&[op::CALLDATALOAD, XOR, op::GAS, op::CALL, op::POP]);
    let at = code.pc();
    code.op(&[op::JUMPDEST, op::STOP]).patch(end, at).build()
}

/// A router's calldata asking `vault` for `amount`.
fn withdrawal(vault: Address, amount: u64) -> Vec<u8> {
    let mut target = addr_word(vault);
    target[31] ^= 1;
    let mut input = target.to_vec();
    input.extend_from_slice(&word(amount));
    input
}

/// A block with a vault holding `vault_balance` wei before it (to build
/// on): deposits
/// of `deposits` wei each from fresh senders, withdrawals of each of
/// `withdrawals` wei through router `n` for the `n`th of them (gas limits
/// [`CALL_GAS`]), and [`TRANSFERS`] transfers between other accounts.
fn vault_block(
    on_deposit: OnDeposit,
    vault_balance: u128,
    deposits: &[u128],
    withdrawals: &[u64],
) -> BlockBuilder {
    let mut b = BlockBuilder::new(EthereumHardfork::Cancun);
    let vault_address = addr(VAULT);
    b.account(
        vault_address,
        vault_balance,
        1,
        Some(vault(on_deposit)),
        &[],
    );
    for n in 0..withdrawals.len() as u64 {
        b.contract(addr(ROUTERS + n), router());
    }
    b.fund_all((0..deposits.len() as u64).map(|i| addr(DEPOSITORS + i)));
    b.fund_all((0..withdrawals.len() as u64).map(|i| addr(WITHDRAWERS + i)));
    b.fund_all((0..TRANSFERS).map(|i| addr(OTHERS + i)));
    for (i, value) in deposits.iter().enumerate() {
        let from = addr(DEPOSITORS + i as u64);
        b.tx(TxSpec {
            gas_limit: on_deposit.gas_limit(),
            ..TxSpec::call(from, vault_address, *value, Vec::new())
        });
    }
    for (n, amount) in withdrawals.iter().enumerate() {
        let (from, router) = (addr(WITHDRAWERS + n as u64), addr(ROUTERS + n as u64));
        let input = withdrawal(vault_address, *amount);
        b.tx(TxSpec {
            gas_limit: CALL_GAS,
            ..TxSpec::call(from, router, 0, input)
        });
    }
    for i in 0..TRANSFERS {
        b.transfer(addr(OTHERS + i), addr(OTHERS + 100 + i), 7);
    }
    b
}

/// The vault's balance after `block` runs sequentially.
fn vault_balance_after(block: &BlockInput, state: &InMemoryState) -> U256 {
    let result = parevm::execute_sequential(block, state).expect("sequential executes");
    account_after(&result, state, addr(VAULT)).map_or(U256::ZERO, |a| a.info.balance)
}

/// [`assert_runs`] with contract calls keyed by their target, asserting
/// that every run ran as partitions.
fn assert_partitioned(block: &BlockInput, state: &InMemoryState) {
    assert_runs(
        block,
        state,
        small_block_rule_keying_calls_by_target,
        |actual, at| {
            assert!(!actual.stats.partitions_discarded, "{at}");
            assert_eq!(actual.path, ExecutionPath::Partitioned, "{at}");
        },
    );
}

#[test]
fn deposits_and_withdrawals_in_different_partitions_run_as_partitions() {
    let deposits: Vec<u128> = (0..6).map(|i| 1_000 + i).collect();
    let (block, state) =
        vault_block(OnDeposit::Accept, 10_000, &deposits, &[600, 700, 800]).build();
    assert_partitioned(&block, &state);
    let deposited: u128 = deposits.iter().sum();
    let expected = U256::from(10_000 + deposited - 2_100);
    assert_eq!(vault_balance_after(&block, &state), expected);
}

#[test]
fn changes_that_cancel_out_leave_the_vault_unchanged() {
    let (block, state) = vault_block(OnDeposit::Accept, 10_000, &[100; 5], &[200, 300]).build();
    assert_partitioned(&block, &state);
    assert_eq!(vault_balance_after(&block, &state), U256::from(10_000));
}

#[test]
fn a_withdrawal_that_fails_in_sequence_is_caught() {
    // Either withdrawal alone is covered; in sequence the second is not.
    let (block, state) = vault_block(OnDeposit::Accept, 1_000, &[], &[600, 600]).build();
    assert_caught_while_running(&block, &state);
    assert_eq!(vault_balance_after(&block, &state), U256::from(400));
}

#[test]
fn a_withdrawal_only_deposits_cover_is_caught() {
    // The vault holds too little before the block; the deposits, in
    // another partition, cover the withdrawal in sequence.
    let (block, state) = vault_block(OnDeposit::Accept, 10, &[500; 4], &[1_500]).build();
    assert_caught_while_running(&block, &state);
    assert_eq!(vault_balance_after(&block, &state), U256::from(510));
}

#[test]
fn a_vault_observing_its_balance_is_caught() {
    let b = vault_block(OnDeposit::StoreSelfBalance, 10_000, &[100; 6], &[600]);
    let (block, state) = b.build();
    assert_caught_while_running(&block, &state);
}

#[test]
fn a_vault_whose_nonce_changes_is_caught() {
    let (block, state) = vault_block(OnDeposit::Create, 10_000, &[100; 2], &[600]).build();
    assert_caught_while_running(&block, &state);
}

#[test]
fn a_balance_read_of_the_vault_is_caught() {
    let mut b = vault_block(OnDeposit::Accept, 10_000, &[100; 6], &[600]);
    // A probe storing the vault's balance, in a component of its own.
    let (probe, prober) = (addr(0x7b), addr(0x7c));
    b.contract(probe, balance_probe()).fund(prober, 1 << 60);
    let mut input = addr_word(addr(VAULT)).to_vec();
    input.extend_from_slice(&word(5));
    b.call(prober, probe, 0, input);
    let (block, state) = b.build();
    assert_caught_while_running(&block, &state);
}

/// Sets `address`'s balance in the builder's pre-block state to `balance`.
fn set_balance(b: &mut BlockBuilder, address: Address, balance: U256) {
    let mut account = b.state.get(&address).cloned().expect("account exists");
    account.info.balance = balance;
    b.state.insert_account(address, account);
}

#[test]
fn a_vault_holding_2_pow_128_or_more_is_not_summed() {
    // Block-STM watches no balance that large either: a partition's view
    // of it could then overflow where the sequential one does not.
    let mut b = vault_block(OnDeposit::Accept, 0, &[100; 6], &[600]);
    set_balance(&mut b, addr(VAULT), U256::from(1) << 130);
    let (block, state) = b.build();
    assert_caught_while_running(&block, &state);
}

#[test]
fn a_deposit_of_2_pow_128_or_more_is_not_summed() {
    let mut b = vault_block(OnDeposit::Accept, 10_000, &[100; 5], &[600]);
    let whale = addr(DEPOSITORS + 100);
    b.fund(whale, 0);
    set_balance(&mut b, whale, U256::from(1) << 129);
    b.tx(TxSpec {
        gas_limit: CALL_GAS,
        value: U256::from(1) << 128,
        ..TxSpec::call(whale, addr(VAULT), 0, Vec::new())
    });
    let (block, state) = b.build();
    assert_caught_while_running(&block, &state);
}
