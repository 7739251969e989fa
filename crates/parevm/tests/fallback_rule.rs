//! The fallback rule: blocks predicted (or found) not to profit from parallel
//! execution run sequentially, say why, and still give the sequential result.

mod support;

use alloy_hardforks::EthereumHardfork;
use alloy_primitives::Address;
use parevm::{
    ExecutionPath, FallbackReason, ParallelConfig, execute_parallel, execute_sequential,
    parallel::predict,
};
use support::*;

const HOT: Address = Address::repeat_byte(0x0c);

fn run(
    block: &parevm::BlockInput,
    state: &parevm::InMemoryState,
    config: &ParallelConfig,
) -> ExecutionPath {
    let expected = execute_sequential(block, state).expect("sequential");
    let actual = execute_parallel(block, state, config).expect("parallel");
    if let Some(difference) = expected.first_difference(&actual) {
        panic!("fallback result differs from sequential: {difference}");
    }
    actual.path
}

/// The default rule at `threads`, on a core each whatever the machine,
/// except for blocks' total gas and Block-STM's cost per block: the test
/// blocks are small.
fn any_gas(threads: usize) -> ParallelConfig {
    ParallelConfig {
        min_parallel_gas: 0,
        block_overhead_gas: 0,
        cores: threads,
        ..ParallelConfig::with_threads(threads)
    }
}

#[test]
fn one_sender_chain_runs_sequentially() {
    // Each with a byte of calldata: plain transfers from one sender would
    // be a payout sender's, which partitions (tests/payout_sender.rs).
    let chain = |calldata: &[u8]| {
        let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
        b.fund_all((1..=40).map(addr));
        for i in 0..40 {
            let to = addr(2 + i % 30);
            b.tx(TxSpec {
                gas_limit: 30_000,
                ..TxSpec::call(addr(1), to, 1_000 + u128::from(i), calldata.to_vec())
            });
        }
        b.build()
    };
    let (block, state) = chain(&[1]);
    let prediction = predict(&block);
    assert_eq!(prediction.transactions, 40);
    assert!(prediction.bound(2) < 1.01, "one chain: {prediction:?}");
    let config = any_gas(2);
    assert_eq!(
        run(&block, &state, &config),
        ExecutionPath::SequentialFallback(FallbackReason::DependencyChain)
    );
    let (payouts, state) = chain(&[]);
    assert_eq!(run(&payouts, &state, &config), ExecutionPath::Partitioned);
}

/// A large block (planned on two threads) whose sender chain only shows
/// after its opening: the plan's heaviest component, which holds the chain,
/// bounds the prediction, and the block runs sequentially.
#[test]
fn a_chain_after_a_varied_opening_runs_sequentially() {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    b.fund_all((1..=100).map(addr));
    for i in 0..100 {
        b.transfer(addr(1 + i), addr(200 + i), 1_000);
    }
    for i in 0..1_100 {
        b.transfer(addr(1), addr(400 + i % 50), 1_000);
    }
    let (block, state) = b.build();
    for threads in THREADS {
        assert_eq!(
            run(&block, &state, &any_gas(threads)),
            ExecutionPath::SequentialFallback(FallbackReason::DependencyChain),
            "threads {threads}"
        );
    }
}

/// A block that opens with one sender's light chain, which alone would let
/// it run in parallel, and later carries another sender's heavy chain: the
/// opening sender's chain is only a first look, and the heavy chain still
/// sends the block to the sequential executor; without it, the block runs
/// in parallel.
#[test]
fn an_opening_chain_does_not_hide_a_heavier_one() {
    let build = |heavy_chain: bool| {
        let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
        b.fund_all((1..=200).map(addr));
        for i in 0..40 {
            b.transfer(addr(1), addr(300 + i), 1_000);
        }
        for i in 0..60 {
            let from = if heavy_chain { addr(2) } else { addr(10 + i) };
            b.tx(TxSpec {
                gas_limit: 1_000_000,
                ..TxSpec::call(from, addr(400 + i), 1_000, vec![1])
            });
        }
        b.build()
    };
    let (block, state) = build(true);
    assert_eq!(
        run(&block, &state, &any_gas(2)),
        ExecutionPath::SequentialFallback(FallbackReason::DependencyChain)
    );
    let (block, state) = build(false);
    assert_eq!(
        run(&block, &state, &ParallelConfig::partitioned(2)),
        ExecutionPath::Partitioned
    );
}

#[test]
fn small_blocks_run_sequentially() {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    b.fund_all((1..=8).map(addr));
    for i in 1..=3 {
        b.transfer(addr(i), addr(i + 4), 1_000);
    }
    let (block, state) = b.build();
    let path = run(&block, &state, &ParallelConfig::with_threads(2));
    assert_eq!(
        path,
        ExecutionPath::SequentialFallback(FallbackReason::FewTransactions)
    );
    let one_thread = run(&block, &state, &ParallelConfig::with_threads(1));
    assert_eq!(
        one_thread,
        ExecutionPath::SequentialFallback(FallbackReason::OneThread)
    );
}

#[test]
fn transfers_count_their_cost_not_their_gas_limit() {
    // 100 transfers sent with a 90,000 limit, as wallets long did: 9M of
    // limits, but 2.1M of work, below the default 4M.
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    b.fund_all((1..=200).map(addr));
    for i in 1..=100 {
        b.tx(TxSpec {
            gas_limit: 90_000,
            ..TxSpec::call(addr(i), addr(i + 100), 1_000, Vec::new())
        });
    }
    let (block, state) = b.build();
    let prediction = predict(&block);
    assert_eq!(prediction.gas, 9_000_000);
    assert_eq!(prediction.work, 2_100_000);
    assert_eq!(
        run(&block, &state, &ParallelConfig::with_threads(2)),
        ExecutionPath::SequentialFallback(FallbackReason::LittleGas)
    );
}

#[test]
fn independent_senders_run_in_parallel() {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    b.fund_all((1..=120).map(addr));
    for i in 1..=60 {
        b.transfer(addr(i), addr(i + 60), 1_000);
    }
    let (block, state) = b.build();
    let config = any_gas(2);
    assert_eq!(predict(&block).bound(2), 2.0);
    // Independent as far as the transactions show: partitions, which hold.
    assert_eq!(run(&block, &state, &config), ExecutionPath::Partitioned);
    let block_stm = ParallelConfig {
        min_partition_balance: f64::INFINITY,
        tx_overhead_gas: 0,
        ..config
    };
    assert_eq!(run(&block, &state, &block_stm), ExecutionPath::Parallel);
}

/// A block opening with one sender's chain (as mainnet fixture 8038679
/// opens with a pool's payouts) runs on Block-STM to the end: the second
/// worker stops at each link of the chain while the first runs it, and
/// those waits were predicted, so they are not conflicts to give up on.
#[test]
fn an_opening_chain_is_not_given_up_as_conflicts() {
    let unbounded = addr(50_000);
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    b.contract(unbounded, calls_an_unknown_account());
    b.fund_all((1..=300).map(addr));
    for i in 0..60 {
        b.tx(TxSpec {
            gas_limit: 30_000,
            ..TxSpec::call(addr(1), addr(1_000 + i), 1_000, vec![1])
        });
    }
    // Unpredictable, so the block does not run as partitions.
    b.call(addr(2), unbounded, 0, vec![]);
    for i in 3..=150 {
        b.transfer(addr(i), addr(2_000 + i), 1_000);
    }
    let (block, state) = b.build();
    let config = ParallelConfig {
        tx_overhead_gas: 0,
        ..any_gas(2)
    };
    for _ in 0..20 {
        assert_eq!(run(&block, &state, &config), ExecutionPath::Parallel);
    }
}

/// Asserts that `block` runs sequentially at 2 threads by default, as too
/// cheap for Block-STM (30,000 gas per transaction), and on it with the
/// overhead of a machine where Block-STM costs 18,000; and on Block-STM at
/// 4 threads unless they share 2 cores.
fn assert_too_cheap_at_two_threads_not_four(
    block: &parevm::BlockInput,
    state: &parevm::InMemoryState,
) {
    let too_cheap = ExecutionPath::SequentialFallback(FallbackReason::CheapTransactions);
    assert_eq!(run(block, state, &any_gas(2)), too_cheap);
    let faster = ParallelConfig {
        tx_overhead_gas: 18_000,
        ..any_gas(2)
    };
    assert_eq!(run(block, state, &faster), ExecutionPath::Parallel);
    assert_eq!(run(block, state, &any_gas(4)), ExecutionPath::Parallel);
    // Four threads on two cores take turns: judged at two.
    let four_on_two_cores = ParallelConfig {
        cores: 2,
        ..any_gas(4)
    };
    assert_eq!(run(block, state, &four_on_two_cores), too_cheap);
}

/// 60 transactions from as many senders, the last paying the beneficiary,
/// so that they do not partition: plain transfers, or with `call_limit`,
/// calls with a byte of calldata and that gas limit.
fn sixty_paying_the_beneficiary_last(
    call_limit: Option<u64>,
) -> (parevm::BlockInput, parevm::InMemoryState) {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    b.fund_all((1..=120).map(addr));
    for i in 1..=60 {
        let to = if i == 60 { COINBASE } else { addr(i + 60) };
        let (gas_limit, input) = match call_limit {
            None => (21_000, vec![]),
            Some(limit) => (limit, vec![1]),
        };
        b.tx(TxSpec {
            gas_limit,
            ..TxSpec::call(addr(i), to, 1_000, input)
        });
    }
    b.build()
}

/// Plain transfers that do not partition (one pays the beneficiary) are too
/// cheap for Block-STM at 2 threads, not at 4.
#[test]
fn cheap_transactions_run_sequentially_unless_partitioned() {
    let (block, state) = sixty_paying_the_beneficiary_last(None);
    assert_too_cheap_at_two_threads_not_four(&block, &state);
}

/// The same block, with Block-STM's default cost per block, is too small
/// to win it back: at 2 threads its 1.26M gas of work would gain that
/// much against 1.8M for its transactions and twice 1.5M for the block.
/// Calls as many, predicted at their limits of 100,000 gas, win it back.
#[test]
fn small_cheap_blocks_run_sequentially_unless_they_win_back_the_block_cost() {
    let (block, state) = sixty_paying_the_beneficiary_last(None);
    let with_block_cost = ParallelConfig {
        block_overhead_gas: ParallelConfig::default().block_overhead_gas,
        ..any_gas(2)
    };
    assert_eq!(
        run(&block, &state, &with_block_cost),
        ExecutionPath::SequentialFallback(FallbackReason::CheapTransactions)
    );
    let (block, state) = sixty_paying_the_beneficiary_last(Some(100_000));
    assert_eq!(
        run(&block, &state, &with_block_cost),
        ExecutionPath::Parallel
    );
}

/// The same for a block large enough to be planned on two threads: its
/// first transaction cannot be predicted, so it does not partition, and it
/// runs sequentially as too cheap (without its sender-chain pass).
#[test]
fn large_cheap_blocks_that_do_not_partition_run_sequentially() {
    let unbounded = addr(50_000);
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    b.contract(unbounded, calls_an_unknown_account());
    b.fund_all((1..=1_100).map(addr));
    b.call(addr(1), unbounded, 0, vec![]);
    for i in 2..=1_100 {
        b.transfer(addr(i), addr(2_000 + i), 1_000);
    }
    let (block, state) = b.build();
    assert_too_cheap_at_two_threads_not_four(&block, &state);
}

/// ERC-20 transfers from many senders to one holder: every transaction's
/// accesses are predicted, and they chain on the holder's balance, so the
/// block runs sequentially without trying.
#[test]
fn a_predicted_chain_on_one_holder_runs_sequentially() {
    let token = addr(0x70);
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    b.contract(token, counter());
    b.fund_all((1..=40).map(addr));
    let mut input = vec![0xa9, 0x05, 0x9c, 0xbb];
    input.extend_from_slice(&addr_word(addr(0x99)));
    input.extend_from_slice(&word(1));
    for i in 1..=40 {
        b.call(addr(i), token, 0, input.clone());
    }
    let (block, state) = b.build();
    let config = any_gas(2);
    assert_eq!(
        run(&block, &state, &config),
        ExecutionPath::SequentialFallback(FallbackReason::DependencyChain)
    );
}

/// Calls from many senders into one counter whose code reaches no other
/// account: every transaction's accesses are predicted (sender and
/// counter), and they chain on the counter, so the block runs sequentially
/// without trying Block-STM first.
#[test]
fn calls_into_one_contract_that_runs_alone_run_sequentially() {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    b.contract(HOT, counter());
    b.fund_all((1..=40).map(addr));
    for i in 1..=40 {
        b.call(addr(i), HOT, 0, vec![1]);
    }
    let (block, state) = b.build();
    assert_eq!(
        run(&block, &state, &any_gas(2)),
        ExecutionPath::SequentialFallback(FallbackReason::DependencyChain)
    );
}

/// A block where every transaction increments one slot is given up once
/// conflicts dominate; whenever that happens mid-way, the sequential re-run
/// must still be exact.
#[test]
fn conflict_heavy_blocks_are_given_up_exactly() {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    b.contract(HOT, counter());
    b.fund_all((1..=600).map(addr));
    for i in 1..=600 {
        b.call(addr(i), HOT, 0, vec![]);
    }
    let (block, state) = b.build();
    let config = ParallelConfig {
        min_predicted_speedup: 0.0,
        min_useful_speedup: f64::INFINITY,
        tx_overhead_gas: 0,
        ..any_gas(2)
    };
    for _ in 0..10 {
        match run(&block, &state, &config) {
            ExecutionPath::Parallel
            | ExecutionPath::SequentialFallback(FallbackReason::Conflicts) => {}
            other => panic!("unexpected path {other:?}"),
        }
    }
}

/// Calls into pair-like contracts that all reach one token: their accesses
/// are predicted (each pair's code names the token in its storage), and
/// they chain on the token, so the block runs sequentially at once.
#[test]
fn calls_reaching_one_token_run_sequentially() {
    let (block, state) = calls_into_pairs(40, |_| addr(700));
    assert_eq!(
        run(&block, &state, &any_gas(2)),
        ExecutionPath::SequentialFallback(FallbackReason::DependencyChain)
    );
}
