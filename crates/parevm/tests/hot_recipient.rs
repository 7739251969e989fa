//! A hot recipient (one account without code that many senders pay, as an
//! exchange's deposit addresses sweep into its hot wallet) runs as
//! partitions: the transfers into it are keyed by their senders alone, and
//! what each partition credits it is summed, as the beneficiary's fees are.
//! Every way the premise can break (the recipient sends, is empty before
//! the block, has its balance read, or is created at) must leave the
//! sequential result, and where the plan cannot see it, the partitions'
//! own checks must catch it.

mod support;

use alloy_hardforks::EthereumHardfork;
use alloy_primitives::Address;
use parevm::{BlockInput, ExecutionPath, InMemoryState, ParallelConfig, execute_sequential};
use support::*;

const HOT: u64 = 0x7a;
const PROBE: u64 = 0x7b;
/// Senders into the hot recipient: fresh accounts from here on.
const SENDERS: u64 = 0x1000;
/// Senders of other transfers, and their recipients.
const OTHERS: u64 = 0x2000;

/// [`assert_runs`], asserting that every run ran as partitions.
fn assert_partitioned(
    block: &BlockInput,
    state: &InMemoryState,
    config: impl Fn(usize) -> ParallelConfig,
) {
    assert_runs(block, state, config, |actual, at| {
        assert_eq!(actual.path, ExecutionPath::Partitioned, "{at}");
    });
}

/// [`assert_runs`], asserting that no run ran as partitions, nor tried
/// to: the plan kept the transfers into the recipient together.
fn assert_not_planned(block: &BlockInput, state: &InMemoryState) {
    assert_runs(block, state, small_block_rule, |actual, at| {
        assert_ne!(actual.path, ExecutionPath::Partitioned, "{at}");
        assert!(!actual.stats.partitions_discarded, "{at}");
    });
}

/// 60 transfers from fresh senders into `hot` (which holds
/// `hot_balance` wei before the block, or does not exist, with `None`),
/// with 20 unrelated transfers in between.
fn sweep_block(fork: EthereumHardfork, hot: Address, hot_balance: Option<u128>) -> BlockBuilder {
    let mut b = BlockBuilder::new(fork);
    if let Some(balance) = hot_balance {
        b.fund(hot, balance);
    }
    b.fund_all((0..60).map(|i| addr(SENDERS + i)));
    b.fund_all((0..20).map(|i| addr(OTHERS + i)));
    for i in 0..60 {
        b.transfer(addr(SENDERS + i), hot, 1_000 + i as u128);
        if i % 3 == 0 {
            let other = addr(OTHERS + i / 3);
            b.transfer(other, addr(OTHERS + 100 + i), 5);
        }
    }
    b
}

#[test]
fn transfers_into_one_account_run_as_partitions_on_every_fork_with_partitions() {
    for fork in [
        EthereumHardfork::SpuriousDragon,
        EthereumHardfork::London,
        EthereumHardfork::Cancun,
    ] {
        let (block, state) = sweep_block(fork, addr(HOT), Some(1)).build();
        assert_partitioned(&block, &state, small_block_rule);
    }
}

#[test]
fn a_large_sweep_block_runs_as_partitions_by_default() {
    // Planned on the caller and helpers together (1,024 transactions or
    // more), under the default rule.
    let mut b = BlockBuilder::new(EthereumHardfork::Cancun);
    b.fund(addr(HOT), 1);
    b.fund_all((0..1_200).map(|i| addr(SENDERS + i)));
    for i in 0..1_200 {
        b.transfer(addr(SENDERS + i), addr(HOT), 1 + i as u128);
    }
    let (block, state) = b.build();
    assert_partitioned(&block, &state, ParallelConfig::with_threads);
}

#[test]
fn a_hot_recipient_that_sends_is_not_summed() {
    // Paying, it would observe its own balance: the plan keys the
    // transfers into it by it, as one chain.
    let mut b = sweep_block(EthereumHardfork::Cancun, addr(HOT), Some(RICH));
    b.transfer(addr(HOT), addr(OTHERS + 500), 1);
    let (block, state) = b.build();
    assert_not_planned(&block, &state);
}

#[test]
fn a_hot_recipient_empty_before_the_block_is_not_summed() {
    // Whether a later transfer finds it existing depends on the earlier
    // ones (before EIP-161 a transfer into an empty account costs more):
    // it cannot be served as it was before the block.
    let (block, state) = sweep_block(EthereumHardfork::Cancun, addr(HOT), None).build();
    assert!(state.get(&addr(HOT)).is_none());
    assert_not_planned(&block, &state);
}

#[test]
fn a_contract_paying_the_hot_recipient_runs_as_partitions() {
    // With calls keyed by their target, the plan does not see the payment;
    // the partitions serve the recipient as it was before the block and
    // sum what the call credits it with the transfers.
    let mut b = sweep_block(EthereumHardfork::Cancun, addr(HOT), Some(1));
    b.account(
        addr(PROBE),
        1_000,
        1,
        Some(pays_one_wei(&[op::PUSH1, 0, op::CALLDATALOAD])),
        &[],
    );
    b.fund_all((0..3).map(|i| addr(OTHERS + 300 + i)));
    for i in 0..3 {
        let input = calldata(&[addr_word(addr(HOT))]);
        b.tx(TxSpec {
            gas_limit: 100_000,
            ..TxSpec::call(addr(OTHERS + 300 + i), addr(PROBE), 0, input)
        });
    }
    let (block, state) = b.build();
    assert_partitioned(&block, &state, small_block_rule_keying_calls_by_target);
}

#[test]
fn a_call_reading_the_hot_recipients_balance_is_caught_while_running() {
    // In sequence the balance holds every earlier transfer into it; a
    // partition's holds its own only.
    let mut b = sweep_block(EthereumHardfork::Cancun, addr(HOT), Some(1));
    b.contract(addr(PROBE), balance_probe());
    b.fund(addr(OTHERS + 300), RICH);
    let input = calldata(&[addr_word(addr(HOT)), word(0)]);
    b.tx(TxSpec {
        gas_limit: 100_000,
        ..TxSpec::call(addr(OTHERS + 300), addr(PROBE), 0, input)
    });
    let (block, state) = b.build();
    assert_caught_while_running(&block, &state);
}

#[test]
fn a_contract_created_at_the_hot_recipient_is_caught_while_running() {
    // A funded account without code or nonce can still be created at: the
    // creation gives it code and a nonce, which the other partitions, and
    // the summed credits, would not know of.
    let creator = addr(OTHERS + 400);
    // Funded with nonce 0, its first creation lands here.
    let hot = creator.create(0);
    let mut b = sweep_block(EthereumHardfork::Cancun, hot, Some(1));
    b.fund(creator, RICH);
    assert_eq!(
        b.create(creator, 0, init_code(Vec::new(), &[op::STOP])),
        hot
    );
    for i in 0..3 {
        b.transfer(addr(OTHERS + i), hot, 7);
    }
    let (block, state) = b.build();
    let expected = execute_sequential(&block, &state).expect("sequential executes");
    let created = expected
        .state
        .accounts
        .get(&hot)
        .and_then(|c| c.info.as_ref());
    assert_eq!(created.map(|info| info.nonce), Some(1));
    assert_caught_while_running(&block, &state);
    // Block-STM, which keeps a hot recipient's balance in a column of
    // credits, at every thread count.
    assert_parallel_matches(&block, &state);
}

#[test]
fn a_payout_sender_paying_the_hot_recipient_runs_as_partitions() {
    // A hot wallet paying out, among others into the account the block's
    // sweeps pay: both sums meet in that payout, which needs no key.
    const PAYOUT: u64 = 0x7c;
    let mut b = BlockBuilder::new(EthereumHardfork::Cancun);
    b.fund(addr(PAYOUT), RICH);
    b.fund(addr(HOT), 1);
    b.fund_all((0..40).map(|i| addr(SENDERS + i)));
    for i in 0..40 {
        b.transfer(addr(PAYOUT), addr(OTHERS + i), 1_000 + i as u128);
        b.transfer(addr(SENDERS + i), addr(HOT), 7);
        if i % 4 == 0 {
            b.transfer(addr(PAYOUT), addr(HOT), 5);
        }
    }
    let (block, state) = b.build();
    assert_partitioned(&block, &state, small_block_rule);
}
