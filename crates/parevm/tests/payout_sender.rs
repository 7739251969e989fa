//! A payout sender (one account paying many recipients, as pools and
//! exchange hot wallets do) runs as partitions: each of its transfers is
//! served the sender at the nonce it carries, and its payments are summed.
//! Every way the premise can break (a nonce out of line, a balance that
//! does not cover every transfer, another transaction observing or paying
//! the sender, a payout reaching code that reads its balance, calls the
//! plan could not predict meeting the other partitions, or reading the
//! beneficiary's balance, or paying a beneficiary that was empty) must
//! leave the sequential result. Calls paying the beneficiary through
//! `COINBASE` run as partitions, their payments summed with the fees.

mod support;

use alloy_hardforks::EthereumHardfork;
use alloy_primitives::Address;
use parevm::{
    BlockInput, ExecutionPath, FallbackReason, InMemoryState, ParallelConfig, execute_sequential,
};
use support::*;

const PAYOUT: u64 = 0x9a;
const PROBE: u64 = 0x9b;
/// Recipients of payouts: fresh accounts from here on.
const RECIPIENTS: u64 = 0x1000;
/// Senders of other transfers, and their recipients.
const OTHERS: u64 = 0x2000;

fn u(n: u64) -> Address {
    addr(n)
}

/// What a payout block that does not run as partitions takes: its
/// sender's chain, as in any block (under [`small_block_rule`], too).
const CHAIN: ExecutionPath = ExecutionPath::SequentialFallback(FallbackReason::DependencyChain);

/// [`assert_runs`], asserting that every run took `path`.
fn assert_path(
    block: &BlockInput,
    state: &InMemoryState,
    config: impl Fn(usize) -> ParallelConfig,
    path: ExecutionPath,
) {
    assert_runs(block, state, config, |actual, at| {
        assert_eq!(actual.path, path, "{at}");
    });
}

/// [`assert_runs`], asserting that every run took the sender's chain to the
/// sequential executor without running partitions: the plan refused.
fn assert_not_planned(block: &BlockInput, state: &InMemoryState) {
    assert_runs(block, state, small_block_rule, |actual, at| {
        assert_eq!(actual.path, CHAIN, "{at}");
        assert!(!actual.stats.partitions_discarded, "{at}");
    });
}

/// [`assert_runs`] under the default rule, asserting that each run ran as
/// partitions, which were discarded (the plan could not rule out what
/// running caught), and then took the sender's chain to the sequential
/// executor.
fn assert_discarded_for_the_chain(block: &BlockInput, state: &InMemoryState) {
    assert_runs(block, state, small_block_rule, |actual, at| {
        assert!(actual.stats.partitions_discarded, "{at}: {:?}", actual.path);
        assert_eq!(actual.path, CHAIN, "{at}");
    });
}

/// `payouts` transfers from `sender` (nonce 7, `balance` wei) to fresh
/// recipients, with 20 unrelated transfers in between.
fn payout_block(
    fork: EthereumHardfork,
    sender: Address,
    balance: u128,
    payouts: u64,
) -> BlockBuilder {
    let mut b = BlockBuilder::new(fork);
    b.account(sender, balance, 7, None, &[]);
    b.fund_all((0..20).map(|i| u(OTHERS + i)));
    for i in 0..payouts {
        b.transfer(sender, u(RECIPIENTS + i), 1_000 + i as u128);
        if i % 3 == 0 && i / 3 < 20 {
            let other = u(OTHERS + i / 3);
            b.transfer(other, u(OTHERS + 100 + i), 5);
        }
    }
    b
}

/// What `payouts` transfers of `payout_block` cost at most.
fn cover(payouts: u64) -> u128 {
    (0..payouts as u128)
        .map(|i| 21_000 * MAX_FEE + 1_000 + i)
        .sum()
}

#[test]
fn payouts_run_as_partitions_on_every_fork_with_partitions() {
    for fork in [
        EthereumHardfork::SpuriousDragon,
        EthereumHardfork::Berlin,
        EthereumHardfork::London,
        EthereumHardfork::Cancun,
    ] {
        // Exactly covered: the last transfer leaves the sender with nothing.
        let (block, state) = payout_block(fork, u(PAYOUT), cover(60), 60).build();
        assert_path(&block, &state, small_block_rule, ExecutionPath::Partitioned);
    }
}

#[test]
fn payouts_from_the_beneficiary_run_as_partitions() {
    // A mining pool paying out from its coinbase: each transfer pays the
    // fee to its own sender, and the other transactions' fees add to it.
    for fork in [EthereumHardfork::Byzantium, EthereumHardfork::London] {
        let (block, state) = payout_block(fork, COINBASE, cover(60), 60).build();
        assert_path(&block, &state, small_block_rule, ExecutionPath::Partitioned);
    }
}

#[test]
fn a_few_payouts_from_the_beneficiary_opening_the_block_run_as_partitions() {
    // A pool paying out from its coinbase at the top of its block (as
    // fixture 14396881's does), then 60 other transfers: too few payouts
    // to make the beneficiary the block's opening sender, but as a chain
    // from the beneficiary they would keep the block from partitioning.
    let mut b = BlockBuilder::new(EthereumHardfork::Cancun);
    b.account(COINBASE, cover(5), 7, None, &[]);
    b.fund_all((0..60).map(|i| u(OTHERS + i)));
    for i in 0..5 {
        b.transfer(COINBASE, u(RECIPIENTS + i), 1_000 + i as u128);
    }
    for i in 0..60 {
        b.transfer(u(OTHERS + i), u(OTHERS + 100 + i), 5);
    }
    let (block, state) = b.build();
    assert_path(&block, &state, small_block_rule, ExecutionPath::Partitioned);
}

#[test]
fn payouts_too_few_for_the_fallback_rule_still_run_as_partitions() {
    // 30 payouts and 20 other transfers, one after each of the first 20
    // payouts: the sender's chain holds 60% of the gas. That bounds the
    // speedup at 1.67x, above the rule's threshold, but it would keep
    // partitions keyed by the sender from balancing, and Block-STM runs it
    // in order (10,000 such transfers ran at 0.45x there).
    let mut b = BlockBuilder::new(EthereumHardfork::Cancun);
    b.account(u(PAYOUT), cover(30), 7, None, &[]);
    b.fund_all((0..20).map(|i| u(OTHERS + i)));
    for i in 0..30 {
        b.transfer(u(PAYOUT), u(RECIPIENTS + i), 1_000 + i as u128);
        if i < 20 {
            b.transfer(u(OTHERS + i), u(OTHERS + 100 + i), 5);
        }
    }
    let (block, state) = b.build();
    assert_path(&block, &state, small_block_rule, ExecutionPath::Partitioned);
}

#[test]
fn a_large_payout_block_runs_as_partitions_by_default() {
    let (block, state) = payout_block(EthereumHardfork::Cancun, u(PAYOUT), RICH, 400).build();
    assert_path(
        &block,
        &state,
        ParallelConfig::with_threads,
        ExecutionPath::Partitioned,
    );
}

#[test]
fn a_balance_short_of_every_transfer_is_no_payout() {
    // One wei short of covering all 60 at their highest cost (though in
    // sequence, with the base fee below the highest, every transfer still
    // goes through).
    let short = cover(60) - 1;
    let (block, state) = payout_block(EthereumHardfork::Cancun, u(PAYOUT), short, 60).build();
    assert_path(&block, &state, small_block_rule, CHAIN);
}

#[test]
fn nonces_out_of_line_are_no_payout() {
    let mut b = payout_block(EthereumHardfork::Cancun, u(PAYOUT), RICH, 60);
    // A gap: this transfer and every later one of the sender are invalid.
    let nonce = b.take_nonce(u(PAYOUT)) + 1;
    b.tx(TxSpec {
        gas_limit: 21_000,
        nonce: Some(nonce),
        ..TxSpec::call(u(PAYOUT), u(RECIPIENTS + 500), 1, Vec::new())
    });
    b.transfer(u(PAYOUT), u(RECIPIENTS + 501), 1);
    let (block, state) = b.build();
    let expected = execute_sequential(&block, &state).expect("sequential executes");
    let last = &expected.transactions[block.transactions.len() - 1];
    assert!(last.outcome.is_invalid());
    assert_path(&block, &state, small_block_rule, CHAIN);
}

#[test]
fn a_transfer_to_the_payout_sender_keeps_the_block_sequential() {
    let mut b = payout_block(EthereumHardfork::Cancun, u(PAYOUT), RICH, 60);
    b.transfer(u(OTHERS), u(PAYOUT), 3);
    b.transfer(u(PAYOUT), u(RECIPIENTS + 500), 1);
    let (block, state) = b.build();
    assert_path(&block, &state, small_block_rule, CHAIN);
}

#[test]
fn payouts_into_code_that_reads_no_balance_run_as_partitions() {
    // A deposit contract that records its sender and the value, and one
    // that reads its own balance, both ways compilers write it.
    let own_balance = Asm::new()
        .op(&[op::ADDRESS, op::BALANCE])
        .store_top(0)
        .op(&[op::SELFBALANCE])
        .store_top(1)
        .op(&[op::STOP])
        .build();
    let mut b = payout_block(EthereumHardfork::Cancun, u(PAYOUT), RICH, 60);
    b.contract(u(PROBE), store_caller_value());
    b.contract(u(PROBE + 1), own_balance);
    for i in 0..3 {
        b.transfer(u(PAYOUT), u(PROBE), 9 + i);
        b.transfer(u(PAYOUT), u(PROBE + 1), 9 + i);
    }
    let (block, state) = b.build();
    assert_path(&block, &state, small_block_rule, ExecutionPath::Partitioned);
}

#[test]
fn a_payout_into_code_that_reads_a_balance_is_caught_while_running() {
    // Its caller's balance: the sender's, which a partition serves as it
    // expects it, not as it is in sequence. The plan cannot rule it out,
    // so the payout is unpredicted; the partition sees the read.
    let caller_balance = Asm::new()
        .op(&[op::CALLER, op::BALANCE])
        .store_top(0)
        .op(&[op::STOP])
        .build();
    let mut b = payout_block(EthereumHardfork::Cancun, u(PAYOUT), RICH, 60);
    b.contract(u(PROBE), caller_balance);
    b.tx(TxSpec {
        gas_limit: 100_000,
        ..TxSpec::call(u(PAYOUT), u(PROBE), 9, Vec::new())
    });
    let (block, state) = b.build();
    assert_discarded_for_the_chain(&block, &state);
}

#[test]
fn payouts_into_code_of_unbounded_reach_run_as_partitions() {
    // Code calling an address it computes: the plan cannot bound what the
    // payouts reach, so they run unpredicted, together, in one partition.
    let mut b = payout_block(EthereumHardfork::Cancun, u(PAYOUT), RICH, 200);
    b.contract(u(PROBE), calls_an_unknown_account());
    for value in [9, 10] {
        b.tx(TxSpec {
            gas_limit: 100_000,
            ..TxSpec::call(u(PAYOUT), u(PROBE), value, Vec::new())
        });
    }
    let (block, state) = b.build();
    assert_path(&block, &state, small_block_rule, ExecutionPath::Partitioned);
}

#[test]
fn a_payout_into_code_reached_through_proxies_is_caught_while_running() {
    // A proxy delegating to a proxy delegating to code that reads the
    // caller's balance: the plan reads the recipient's code and the first
    // proxy's, which read none; the partition running the payout sees the
    // code that does, and discards the run. With code at the end that
    // stores the caller instead, the block runs as partitions.
    let reads_caller_balance = Asm::new()
        .op(&[op::CALLER, op::BALANCE])
        .store_top(0)
        .op(&[op::STOP])
        .build();
    let delegate_to = |target: Address| {
        Asm::new()
            .push(0)
            .push(0)
            .push(0)
            .push(0)
            .push_addr(target)
            .op(&[op::GAS, op::DELEGATECALL, op::POP, op::STOP])
            .build()
    };
    for (end, reads) in [(store_caller_value(), false), (reads_caller_balance, true)] {
        let mut b = payout_block(EthereumHardfork::Cancun, u(PAYOUT), RICH, 200);
        b.contract(u(PROBE + 2), end);
        b.contract(u(PROBE + 1), delegate_to(u(PROBE + 2)));
        b.contract(u(PROBE), delegate_to(u(PROBE + 1)));
        b.tx(TxSpec {
            gas_limit: 100_000,
            ..TxSpec::call(u(PAYOUT), u(PROBE), 9, Vec::new())
        });
        let (block, state) = b.build();
        let path = if reads {
            CHAIN
        } else {
            ExecutionPath::Partitioned
        };
        assert_runs(&block, &state, small_block_rule, |actual, at| {
            assert_eq!(actual.stats.partitions_discarded, reads, "{at}");
            assert_eq!(actual.path, path, "{at}");
        });
    }
}

#[test]
fn a_payout_creating_code_that_reads_the_sender_is_caught_while_running() {
    // Init code runs from memory, in no account's code: the plan cannot
    // read it, but the partition sees its `BALANCE(ORIGIN)` run.
    const ORIGIN: u8 = 0x32;
    let init = [ORIGIN, op::BALANCE, op::PUSH1, 0, op::SSTORE, op::STOP];
    let creates = Asm::new()
        .push_u256(alloy_primitives::U256::from_be_slice(&init))
        .push(0)
        .op(&[op::MSTORE])
        .push(init.len() as u64)
        .push(32 - init.len() as u64)
        .push(0)
        .op(&[op::CREATE, op::POP, op::STOP])
        .build();
    let delegating = Asm::new()
        .push(0)
        .push(0)
        .push(0)
        .push(0)
        .push_addr(u(PROBE + 1))
        .op(&[op::GAS, op::DELEGATECALL, op::POP, op::STOP])
        .build();
    let mut b = payout_block(EthereumHardfork::Cancun, u(PAYOUT), RICH, 200);
    b.contract(u(PROBE + 1), creates);
    b.contract(u(PROBE), delegating);
    b.tx(TxSpec {
        gas_limit: 200_000,
        ..TxSpec::call(u(PAYOUT), u(PROBE), 9, Vec::new())
    });
    let (block, state) = b.build();
    assert_discarded_for_the_chain(&block, &state);
}

/// A payout block of 200 payouts and 20 other transfers, with `calls`
/// calls from other senders into `code`, which runs at `PROBE`.
fn payouts_with_calls_into(code: Vec<u8>, calls: u64) -> (BlockInput, InMemoryState) {
    let mut b = payout_block(EthereumHardfork::Cancun, u(PAYOUT), RICH, 200);
    b.contract(u(PROBE), code);
    for i in 0..calls {
        b.tx(TxSpec {
            gas_limit: 100_000,
            ..TxSpec::call(u(OTHERS + 50 + i), u(PROBE), 0, Vec::new())
        });
    }
    b.fund_all((0..calls).map(|i| u(OTHERS + 50 + i)));
    b.build()
}

#[test]
fn a_few_unpredicted_calls_in_a_payout_block_run_as_partitions() {
    // Calls whose reach the plan cannot tell, one in 64 transactions at
    // most: they run together, in one partition.
    let (block, state) = payouts_with_calls_into(calls_an_unknown_account(), 3);
    assert_path(&block, &state, small_block_rule, ExecutionPath::Partitioned);
}

#[test]
fn more_unpredicted_calls_keep_a_payout_block_sequential() {
    let (block, state) = payouts_with_calls_into(calls_an_unknown_account(), 4);
    assert_not_planned(&block, &state);
}

#[test]
fn an_unpredicted_call_reading_the_beneficiary_balance_is_caught_while_running() {
    // The partitions serve the beneficiary without the fees summed apart.
    let (block, state) = payouts_with_calls_into(coinbase_balance_probe(), 1);
    assert_discarded_for_the_chain(&block, &state);
}

/// A payout block from `sender`, the beneficiary existing before it with
/// `beneficiary_balance` wei (or not at all, with `None`), and three
/// unpredicted transactions into code paying the beneficiary: two calls
/// from other senders, and a payout.
fn payouts_with_calls_paying_the_beneficiary(
    fork: EthereumHardfork,
    sender: Address,
    beneficiary_balance: Option<u128>,
) -> (BlockInput, InMemoryState) {
    let mut b = payout_block(fork, sender, RICH, 200);
    if let Some(balance) = beneficiary_balance.filter(|_| sender != COINBASE) {
        b.account(COINBASE, balance, 0, None, &[]);
    }
    b.account(u(PROBE), 1_000, 1, Some(pays_the_beneficiary()), &[]);
    for from in [u(OTHERS + 50), sender, u(OTHERS + 51)] {
        b.tx(TxSpec {
            gas_limit: 100_000,
            ..TxSpec::call(from, u(PROBE), 0, Vec::new())
        });
    }
    b.fund_all((0..2).map(|i| u(OTHERS + 50 + i)));
    b.build()
}

#[test]
fn unpredicted_calls_paying_the_beneficiary_run_as_partitions() {
    // What they pay is summed with the fees, as the beneficiary is served
    // to them as it was before the block; cold before Shanghai, warm after.
    for fork in [EthereumHardfork::London, EthereumHardfork::Cancun] {
        for sender in [u(PAYOUT), COINBASE] {
            let (block, state) = payouts_with_calls_paying_the_beneficiary(fork, sender, Some(5));
            assert_path(&block, &state, small_block_rule, ExecutionPath::Partitioned);
        }
    }
}

#[test]
fn a_call_paying_a_beneficiary_empty_before_the_block_is_caught_while_running() {
    // In sequence the fees before the call may have made the beneficiary
    // exist, which changes what sending it value costs: a partition cannot
    // serve it.
    let (block, state) =
        payouts_with_calls_paying_the_beneficiary(EthereumHardfork::Cancun, u(PAYOUT), None);
    assert!(state.get(&COINBASE).is_none());
    assert_discarded_for_the_chain(&block, &state);
}

#[test]
fn unpredicted_calls_meeting_another_partition_are_caught_while_running() {
    // The unpredicted calls bump a counter that predicted calls bump too,
    // in other partitions.
    const COUNTER: u64 = 0x9c;
    let bumps = call_to(Asm::new(), &[op::CALLER, op::PUSH1, 0, op::ADD]);
    let bumps = call_to(bumps, &Asm::new().push_addr(u(COUNTER)).build())
        .op(&[op::STOP])
        .build();
    let mut b = payout_block(EthereumHardfork::Cancun, u(PAYOUT), RICH, 200);
    b.contract(u(PROBE), bumps);
    b.contract(u(COUNTER), counter());
    b.fund_all((0..6).map(|i| u(OTHERS + 50 + i)));
    for i in 0..3 {
        b.tx(TxSpec {
            gas_limit: 100_000,
            ..TxSpec::call(u(OTHERS + 50 + i), u(COUNTER), 0, Vec::new())
        });
        b.tx(TxSpec {
            gas_limit: 100_000,
            ..TxSpec::call(u(OTHERS + 53 + i), u(PROBE), 0, Vec::new())
        });
    }
    let (block, state) = b.build();
    assert_discarded_for_the_chain(&block, &state);
}

#[test]
fn the_payout_sender_observed_by_a_call_is_caught_while_running() {
    // With calls keyed by their target only, the plan misses that the probe
    // reads the sender's balance: the partitions must catch it.
    // Enough payouts that their chain alone would send the block to the
    // sequential executor, at every thread count.
    let mut b = payout_block(EthereumHardfork::Cancun, u(PAYOUT), RICH, 200);
    b.contract(u(PROBE), balance_probe());
    for i in 0..5 {
        let input = calldata(&[addr_word(u(PAYOUT)), word(2 * i)]);
        b.tx(TxSpec {
            gas_limit: 80_000,
            ..TxSpec::call(u(OTHERS + i), u(PROBE), 0, input)
        });
        b.transfer(u(PAYOUT), u(RECIPIENTS + 500 + i), 1);
    }
    let (block, state) = b.build();
    assert_caught_while_running(&block, &state);
}

#[test]
fn a_payout_to_code_deployed_in_the_block_is_caught_while_running() {
    // A contract created in the block at an address that was empty before
    // it; a payout then reaches its code, which reads the payout sender's
    // balance. The plan saw an empty recipient.
    let mut b = payout_block(EthereumHardfork::Cancun, u(PAYOUT), RICH, 200);
    let runtime = Asm::new()
        .push_addr(u(PAYOUT))
        .op(&[op::BALANCE])
        .store_top(0)
        .op(&[op::STOP])
        .build();
    // Funded by its creator first, so that the plan puts the creation, the
    // funding and the payout to it in one partition, where only the
    // partition's own check can tell the payout ran code.
    let creator = u(OTHERS + 1);
    let future = creator.create(b.peek_nonce(creator) + 1);
    b.transfer(creator, future, 1);
    let created = b.create(creator, 0, init_code(Vec::new(), &runtime));
    assert_eq!(created, future);
    for i in 0..10 {
        b.transfer(u(PAYOUT), u(RECIPIENTS + 500 + i), 1);
    }
    // With gas for the code to run: it reads the sender's balance.
    b.tx(TxSpec {
        gas_limit: 100_000,
        ..TxSpec::call(u(PAYOUT), created, 1, Vec::new())
    });
    let (block, state) = b.build();
    assert_caught_while_running(&block, &state);
}

#[test]
fn a_sender_reaching_the_last_nonce_is_no_payout() {
    // 60 payouts from nonce 2^64 - 61: the last one carries nonce 2^64 - 1,
    // which no transaction may (EIP-2681).
    let mut b = BlockBuilder::new(EthereumHardfork::Cancun);
    b.account(u(PAYOUT), RICH, u64::MAX - 60, None, &[]);
    b.fund_all((0..20).map(|i| u(OTHERS + i)));
    for i in 0..61 {
        b.transfer(u(PAYOUT), u(RECIPIENTS + i), 1);
    }
    b.transfer(u(OTHERS), u(OTHERS + 1), 1);
    let (block, state) = b.build();
    let expected = execute_sequential(&block, &state).expect("sequential executes");
    assert!(expected.transactions[60].outcome.is_invalid());
    assert_path(&block, &state, small_block_rule, CHAIN);
}

/// A forwarder: without calldata it sends the value on to the address in
/// its slot 0; with calldata it delegates to an address read from memory,
/// which the plan cannot tell.
fn forwarder() -> Vec<u8> {
    let with_calldata = Asm::new().push(0).push(0).push(0).push(0).push(0x40).op(&[
        op::MLOAD,
        op::GAS,
        op::DELEGATECALL,
        op::STOP,
    ]);
    let forward = Asm::new()
        .push(0)
        .push(0)
        .push(0)
        .push(0)
        .op(&[op::CALLVALUE])
        .push(0)
        .op(&[op::SLOAD, op::GAS, op::CALL, op::POP, op::STOP]);
    // CALLDATASIZE ISZERO PUSH1 <forward> JUMPI, then the two paths.
    let head = [0x36, 0x15, op::PUSH1, 0, 0x57];
    let with_calldata = with_calldata.build();
    let mut code = head.to_vec();
    code[3] = (head.len() + with_calldata.len()) as u8;
    code.extend(with_calldata);
    code.push(0x5b);
    code.extend(forward.build());
    code
}

#[test]
fn payouts_into_forwarders_run_as_partitions_with_their_destinations() {
    // Two forwarders to one destination, which another transaction pays
    // too: the plan keys each payout by the forwarder and the destination
    // it reads from the forwarder's storage (the path without calldata),
    // so the three run in one partition and the run stands.
    const DESTINATION: u64 = 0x9d;
    let mut b = payout_block(EthereumHardfork::Cancun, u(PAYOUT), RICH, 200);
    for forwarder_at in [PROBE, PROBE + 1] {
        b.account(
            u(forwarder_at),
            0,
            1,
            Some(forwarder()),
            &[(0, DESTINATION)],
        );
    }
    b.fund(u(OTHERS + 60), RICH);
    for i in 0..3 {
        for forwarder_at in [PROBE, PROBE + 1] {
            b.tx(TxSpec {
                gas_limit: 100_000,
                ..TxSpec::call(u(PAYOUT), u(forwarder_at), 7 + i, Vec::new())
            });
        }
        b.transfer(u(OTHERS + 60), u(DESTINATION), 3);
    }
    let (block, state) = b.build();
    assert_runs(&block, &state, small_block_rule, |actual, at| {
        assert_eq!(actual.path, ExecutionPath::Partitioned, "{at}");
        assert!(!actual.stats.partitions_discarded, "{at}");
    });
}

#[test]
fn payouts_into_proxies_of_one_implementation_run_apart() {
    // A hundred proxies delegating to the implementation in their slot 0:
    // the payouts only run its code, so it joins none of them (keyed, it
    // would make one component of them all, too heavy to partition).
    const IMPLEMENTATION: u64 = 0x9e;
    let delegates_to_slot_zero = Asm::new()
        .push(0)
        .push(0)
        .push(0)
        .push(0)
        .push(0)
        .op(&[op::SLOAD, op::GAS, op::DELEGATECALL, op::POP, op::STOP])
        .build();
    let mut b = payout_block(EthereumHardfork::Cancun, u(PAYOUT), RICH, 200);
    b.contract(u(IMPLEMENTATION), store_caller_value());
    for i in 0..100 {
        let proxy = u(PROBE + 0x100 + i);
        b.account(
            proxy,
            0,
            1,
            Some(delegates_to_slot_zero.clone()),
            &[(0, IMPLEMENTATION)],
        );
        b.tx(TxSpec {
            gas_limit: 100_000,
            ..TxSpec::call(u(PAYOUT), proxy, 5, Vec::new())
        });
    }
    let (block, state) = b.build();
    assert_path(&block, &state, small_block_rule, ExecutionPath::Partitioned);
}
