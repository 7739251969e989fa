//! Partitioned execution: blocks predicted to split into independent
//! partitions run that way, and every wrong prediction is caught by
//! validation and re-run on Block-STM, with the sequential result either way.

mod support;

use alloy_hardforks::EthereumHardfork;
use alloy_primitives::{Address, B256, keccak256};
use parevm::{
    BlockInput, ExecutionPath, InMemoryState, ParallelConfig, execute_parallel, execute_sequential,
};
use support::*;

/// The selector of ERC-20 `transfer(address,uint256)`.
const TRANSFER: [u8; 4] = [0xa9, 0x05, 0x9c, 0xbb];

/// Partitions whenever the block splits, with only the default predictions.
fn predicted_only(threads: usize) -> ParallelConfig {
    ParallelConfig {
        partition_contract_calls: false,
        ..ParallelConfig::partitioned(threads)
    }
}

/// Runs `block` partitioned at several thread counts, repeatedly (with
/// only the default predictions), and asserts the sequential result and
/// that every run took `path`.
fn assert_path(block: &BlockInput, state: &InMemoryState, path: ExecutionPath) {
    let expected = execute_sequential(block, state).expect("sequential executes");
    for threads in THREADS {
        for run in 0..10 {
            let config = predicted_only(threads);
            let actual = execute_parallel(block, state, &config).expect("parallel executes");
            assert_eq!(actual.path, path, "threads {threads} run {run}");
            if let Some(difference) = expected.first_difference(&actual) {
                panic!("threads {threads} run {run}: {difference}");
            }
        }
    }
}

/// `transfer(recipient, amount)` calldata.
fn transfer_call(recipient: Address, amount: u64) -> Vec<u8> {
    let mut input = TRANSFER.to_vec();
    input.extend_from_slice(&addr_word(recipient));
    input.extend_from_slice(&word(amount));
    input
}

/// A token-like contract: `SSTORE(calldata[4..36], CALLER)`, so each
/// recipient's slot is its own.
fn slot_per_recipient() -> Vec<u8> {
    Asm::new()
        .op(&[op::CALLER])
        .push(4)
        .op(&[op::CALLDATALOAD, op::SSTORE, op::STOP])
        .build()
}

/// 40 plain transfers between distinct accounts.
fn independent_transfers() -> (BlockInput, InMemoryState) {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    b.fund_all((1..=40).map(addr));
    for i in 1..=40 {
        b.transfer(addr(i), addr(100 + i), 1_000 + i as u128);
    }
    b.build()
}

/// 24 `transfer`-shaped calls into one counter that every call bumps: the
/// ERC-20 guess (distinct holders) is wrong.
fn transfers_into_a_counter() -> (BlockInput, InMemoryState) {
    let token = addr(0x71);
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    b.contract(token, counter());
    b.fund_all((1..=24).map(addr));
    for i in 1..=24 {
        b.call(addr(i), token, 0, transfer_call(addr(300 + i), 1));
    }
    b.build()
}

/// A hot holder taking 60% of the block's gas: a chain bounding the
/// speedup at 1.67x on 2 threads, above the fallback rule's threshold.
/// Its partition keeps only 83% of the threads busy, yet the block runs as
/// partitions by default: Block-STM, meeting the same chain by aborting,
/// ran such blocks at 0.92-1.30x.
#[test]
fn a_hot_holder_with_most_of_the_gas_still_partitions() {
    let (token, hot) = (addr(0x71), addr(0x72));
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    b.contract(token, slot_per_recipient());
    b.fund_all((1..=60).map(addr));
    for i in 1..=60 {
        let recipient = if i % 5 < 3 { hot } else { addr(300 + i) };
        b.call(addr(i), token, 0, transfer_call(recipient, 1));
    }
    let (block, state) = b.build();
    let expected = execute_sequential(&block, &state).expect("sequential executes");
    let config = ParallelConfig {
        min_parallel_gas: 0,
        cores: 2,
        ..ParallelConfig::with_threads(2)
    };
    for run in 0..10 {
        let actual = execute_parallel(&block, &state, &config).expect("parallel executes");
        assert_eq!(actual.path, ExecutionPath::Partitioned, "run {run}");
        if let Some(difference) = expected.first_difference(&actual) {
            panic!("run {run}: {difference}");
        }
    }
}

/// A block large enough to be planned on the caller and helpers together
/// (one per chunk of 256 transactions, up to the threads).
#[test]
fn large_blocks_are_planned_on_several_threads() {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    b.fund_all((1..=1_100).map(addr));
    for i in 1..=1_100 {
        b.transfer(addr(i), addr(2_000 + i), 1_000);
    }
    let (block, state) = b.build();
    assert_path(&block, &state, ExecutionPath::Partitioned);
}

/// Large blocks with one call whose reach is unbounded: first (the caller
/// gives the plan up alone, before a helper joins) or past the first chunk
/// (a helper is planning too). Neither partitions, both give the
/// sequential result.
#[test]
fn large_blocks_with_an_unpredictable_call_are_not_partitioned() {
    let code = calls_an_unknown_account();
    let contract = addr(50_000);
    for at in [0, 600] {
        let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
        b.contract(contract, code.clone());
        b.fund_all((1..=1_100).map(addr));
        for i in 1..=1_100 {
            match i - 1 == at {
                true => b.call(addr(i), contract, 0, vec![]),
                false => b.transfer(addr(i), addr(2_000 + i), 1_000),
            };
        }
        let (block, state) = b.build();
        assert_path(&block, &state, ExecutionPath::Parallel);
    }
}

/// What `predictable_transactions` reports, transaction by transaction.
#[test]
fn predictable_transactions_are_told_one_by_one() {
    let unbounded = addr(50_000);
    let (token, counter_address) = (addr(50_001), addr(50_002));
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    b.contract(unbounded, calls_an_unknown_account());
    b.contract(token, slot_per_recipient());
    b.contract(counter_address, counter());
    b.fund_all((1..=5).map(addr));
    b.transfer(addr(1), addr(100), 1);
    b.call(addr(2), token, 0, transfer_call(addr(101), 5));
    b.call(addr(3), unbounded, 0, vec![]);
    b.transfer(addr(4), COINBASE, 1);
    b.call(addr(5), counter_address, 0, vec![]); // a call, though without calldata
    let (block, state) = b.build();
    let predictable = parevm::parallel::predictable_transactions(&block, &state).expect("state");
    assert_eq!(predictable, [true, true, false, false, true]);
}

#[test]
fn independent_transfers_run_as_partitions() {
    let (block, state) = independent_transfers();
    assert_path(&block, &state, ExecutionPath::Partitioned);
}

/// Independent transfers, every fifth with a nonce from the future: the
/// partitions leave valid and invalid results in place, in block order,
/// and the valid ones' receipts count the block's gas past the invalid.
#[test]
fn partitions_leave_invalid_results_in_block_order() {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    b.fund_all((1..=40).map(addr));
    for i in 1..=40 {
        let nonce = (i % 5 == 0).then_some(7);
        b.tx(TxSpec {
            nonce,
            ..TxSpec::call(addr(i), addr(100 + i), 1_000 + i as u128, vec![])
        });
    }
    let (block, state) = b.build();
    assert_path(&block, &state, ExecutionPath::Partitioned);
    let result = execute_parallel(&block, &state, &predicted_only(2)).expect("executes");
    let invalid = |index: usize| result.transactions[index].outcome.is_invalid();
    assert!((0..40).all(|index| invalid(index) == (index % 5 == 4)));
    let last = result.transactions[38].receipt.as_ref().expect("valid");
    assert_eq!(last.cumulative_gas_used(), 32 * 21_000);
}

/// Independent transfers in a block whose gas runs out before the last:
/// the partitions ran it, but in sequence it does not fit, so the block
/// runs another way, with the sequential result, and the partitions'
/// results are dropped.
#[test]
fn a_transfer_past_the_blocks_gas_discards_the_partitions_results() {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    b.fund_all((1..=40).map(addr));
    for i in 1..=40 {
        b.transfer(addr(i), addr(100 + i), 1_000 + i as u128);
    }
    b.block_gas_limit = Some(39 * 21_000 + 20_999);
    let (block, state) = b.build();
    let expected = execute_sequential(&block, &state).expect("sequential executes");
    assert!(expected.transactions[39].outcome.is_invalid());
    for threads in THREADS {
        for run in 0..10 {
            let actual = execute_parallel(&block, &state, &predicted_only(threads)).expect("runs");
            assert_ne!(actual.path, ExecutionPath::Partitioned);
            if let Some(difference) = expected.first_difference(&actual) {
                panic!("threads {threads} run {run}: {difference}");
            }
        }
    }
}

/// Two partitions write different slots of one contract: its changes are
/// merged, not overwritten (Cancun, so the beacon-root system call's
/// changes are composed in too).
#[test]
fn partitions_writing_one_contract_merge_its_slots() {
    let token = addr(0x70);
    let mut b = BlockBuilder::new(EthereumHardfork::Cancun);
    b.contract(token, slot_per_recipient());
    b.fund_all((1..=24).map(addr));
    for i in 1..=24 {
        b.call(addr(i), token, 0, transfer_call(addr(200 + i), 5));
    }
    let (block, state) = b.build();
    assert_path(&block, &state, ExecutionPath::Partitioned);
}

/// A `transfer` that is not what it claims: every call bumps one counter,
/// so the predicted split is wrong and validation must catch it.
#[test]
fn a_wrong_erc20_guess_is_caught() {
    let (block, state) = transfers_into_a_counter();
    assert_path(&block, &state, ExecutionPath::Parallel);
}

/// Stores `BALANCE(calldata[4..36])` (the "recipient" of a
/// `transfer`-shaped call) at slot `CALLER`.
fn recipient_balance_probe() -> Vec<u8> {
    Asm::new()
        .push(4)
        .op(&[
            op::CALLDATALOAD,
            op::BALANCE,
            op::CALLER,
            op::SSTORE,
            op::STOP,
        ])
        .build()
}

/// On any call, `CREATE2` of an empty contract with salt 0.
fn empty_create2_factory() -> Vec<u8> {
    Asm::new()
        .push(0) // salt
        .push(0) // size
        .push(0) // offset
        .push(0) // value
        .op(&[op::CREATE2, op::STOP])
        .build()
}

/// A `transfer`-shaped call reads the balance of an account that plain
/// transfers in another partition credit: nothing in the transactions
/// shows it.
#[test]
fn a_hidden_balance_read_is_caught() {
    let probe = addr(0x72);
    let watched = addr(0x73);
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    b.contract(probe, recipient_balance_probe());
    b.fund_all((1..=20).map(addr));
    for i in 1..=10 {
        b.transfer(addr(i), watched, 1_000);
    }
    for i in 11..=20 {
        b.call(addr(i), probe, 0, transfer_call(watched, 1));
    }
    let (block, state) = b.build();
    assert_path(&block, &state, ExecutionPath::Parallel);
}

/// Reading the beneficiary's balance sees every earlier fee, so it cannot
/// run in a partition that only has its own.
#[test]
fn a_beneficiary_balance_read_is_caught() {
    let probe = addr(0x74);
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    b.contract(probe, coinbase_balance_probe());
    b.fund_all((1..=20).map(addr));
    for i in 1..=19 {
        b.transfer(addr(i), addr(400 + i), 1);
    }
    b.call(addr(20), probe, 0, transfer_call(addr(7), 1));
    let (block, state) = b.build();
    assert_path(&block, &state, ExecutionPath::Parallel);
}

/// A `transfer`-shaped call creates a contract at an address that plain
/// transfers in another partition fund, which the prediction cannot know.
#[test]
fn a_creation_funded_elsewhere_is_caught() {
    let factory = addr(0x75);
    let created = factory.create2(B256::ZERO, keccak256([]));
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    b.contract(factory, empty_create2_factory());
    b.fund_all((1..=20).map(addr));
    b.call(addr(1), factory, 0, transfer_call(addr(2), 1));
    for i in 2..=20 {
        b.transfer(addr(i), created, 1);
    }
    let (block, state) = b.build();
    assert_path(&block, &state, ExecutionPath::Parallel);
}

/// A creation (keyed by its sender, on request) lands on the beneficiary,
/// funded before the block but without code or nonce: the partitions,
/// which sum only its balance, must not lose the code and nonce it gets.
#[test]
fn a_creation_at_the_beneficiary_is_caught() {
    let creator = addr(0x76);
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    // Funded with nonce 0, its first creation lands there.
    b.coinbase = creator.create(0);
    b.fund(b.coinbase, 1);
    b.fund_all((1..=20).map(addr));
    b.fund(creator, RICH);
    for i in 1..=20 {
        b.transfer(addr(i), addr(400 + i), 1);
    }
    assert_eq!(
        b.create(creator, 0, init_code(Vec::new(), &counter())),
        b.coinbase
    );
    let (block, state) = b.build();
    let config = ParallelConfig::partitioned(2);
    let actual = execute_parallel(&block, &state, &config).expect("parallel executes");
    assert!(actual.stats.partitions_discarded, "{:?}", actual.stats);
    let expected = execute_sequential(&block, &state).expect("sequential executes");
    assert_eq!(expected.first_difference(&actual), None);
    // Block-STM, which credits the beneficiary lazily, at every thread count.
    assert_parallel_matches(&block, &state);
}

/// Transfers to the beneficiary make it part of the prediction, which
/// gives up partitioning before running.
#[test]
fn transfers_to_the_beneficiary_are_not_partitioned() {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    b.fund_all((1..=20).map(addr));
    for i in 1..=20 {
        b.transfer(addr(i), COINBASE, 1);
    }
    let (block, state) = b.build();
    assert_path(&block, &state, ExecutionPath::Parallel);
}

/// 20 calls, each into its own contract running `code`.
fn calls_into_own_contracts(code: Vec<u8>) -> (BlockInput, InMemoryState) {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    b.fund_all((1..=20).map(addr));
    for i in 1..=20 {
        b.contract(addr(500 + i), code.clone());
        b.call(addr(i), addr(500 + i), 0, vec![1, 2, 3]);
    }
    b.build()
}

/// A call into code without calls, creations or reads of other accounts
/// touches only its sender and target, so such calls run as partitions.
#[test]
fn calls_into_code_that_runs_alone_are_partitioned() {
    let (block, state) = calls_into_own_contracts(store_caller_value());
    assert_path(&block, &state, ExecutionPath::Partitioned);
}

/// A call into code that calls an address the prediction cannot know
/// before running (here one it computes) has an
/// unbounded reach, so by default a block with one is left to Block-STM;
/// keyed by their target on request, such calls run as partitions too.
#[test]
fn other_contract_calls_are_partitioned_only_on_request() {
    // The caller, but through arithmetic the prediction does not follow.
    let code = calls_an_unknown_account();
    let (block, state) = calls_into_own_contracts(code);
    assert_path(&block, &state, ExecutionPath::Parallel);
    let config = ParallelConfig::partitioned(2);
    let actual = execute_parallel(&block, &state, &config).expect("parallel executes");
    assert_eq!(actual.path, ExecutionPath::Partitioned);
    let expected = execute_sequential(&block, &state).expect("sequential executes");
    assert_eq!(expected.first_difference(&actual), None);
}

/// The code's reach is bounded: it calls only the token its storage names
/// and the recipient its input names, which key each call, so calls into
/// pairs with tokens of their own run as partitions.
#[test]
fn calls_with_a_bounded_reach_are_partitioned() {
    let (block, state) = calls_into_pairs(20, |i| addr(700 + i));
    assert_path(&block, &state, ExecutionPath::Partitioned);
}

/// A pair whose token slot is rewritten during the block calls a token the
/// prediction gave to another partition: validation catches it.
#[test]
fn a_reach_changed_during_the_block_is_caught() {
    // With a 32-byte input, `SSTORE(0, input)`; otherwise call slot 0's token.
    let mut set = 0;
    let code = Asm::new()
        .push(31)
        .op(&[op::CALLDATASIZE, op::GT])
        .push_label(&mut set)
        .op(&[op::JUMPI]);
    let code = call_to(code, &[op::PUSH1, 0, op::SLOAD]).op(&[op::STOP]);
    let target = code.pc();
    let code = code
        .op(&[op::JUMPDEST, op::PUSH1, 0, op::CALLDATALOAD])
        .store_top(0)
        .op(&[op::STOP])
        .patch(set, target)
        .build();
    let (pair_a, pair_b, token_a, token_b) = (addr(501), addr(502), addr(701), addr(702));
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    b.fund_all((1..=20).map(addr));
    for (pair, token) in [(pair_a, token_a), (pair_b, token_b)] {
        deploy_pair(&mut b, pair, code.clone(), token);
        b.contract(token, counter());
    }
    b.call(addr(1), pair_a, 0, addr_word(token_b).to_vec());
    b.call(addr(2), pair_a, 0, vec![1]);
    for i in 3..=20 {
        b.call(addr(i), pair_b, 0, vec![1]);
    }
    let (block, state) = b.build();
    assert_path(&block, &state, ExecutionPath::Parallel);
    let stats = execute_parallel(&block, &state, &predicted_only(2))
        .expect("parallel executes")
        .stats;
    assert!(stats.partitions_discarded, "{stats:?}");
}

/// Creations keyed by their senders (on request) run as partitions, and
/// the code they deploy reaches the block's changes.
#[test]
fn creations_run_as_partitions_with_their_code() {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    b.fund_all((1..=20).map(addr));
    for i in 1..=20 {
        b.create(addr(i), 0, init_code(Vec::new(), &counter()));
    }
    let (block, state) = b.build();
    let config = ParallelConfig::partitioned(2);
    let actual = execute_parallel(&block, &state, &config).expect("parallel executes");
    assert_eq!(actual.path, ExecutionPath::Partitioned);
    assert!(!actual.state.codes.is_empty());
    let expected = execute_sequential(&block, &state).expect("sequential executes");
    assert_eq!(expected.first_difference(&actual), None);
}

/// Blocks run from several threads at once share the helper pool, so some
/// helpers start late or only after their block is done: the partitions
/// are claimed by whichever thread is free, and every result still holds.
#[test]
fn concurrent_blocks_share_the_helpers() {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    b.fund_all((1..=64).map(addr));
    for i in 1..=64 {
        b.transfer(addr(i), addr(1000 + i), 7);
    }
    let (block, state) = b.build();
    let expected = execute_sequential(&block, &state).expect("sequential executes");
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..20 {
                    let config = ParallelConfig::partitioned(2);
                    let actual = execute_parallel(&block, &state, &config).expect("executes");
                    assert_eq!(actual.path, ExecutionPath::Partitioned);
                    assert_eq!(expected.first_difference(&actual), None);
                }
            });
        }
    });
}

/// The stats say how each block ran: partitions with one execution per
/// transaction, or a discarded partitioned run followed by Block-STM.
#[test]
fn stats_tell_how_the_block_ran() {
    let config = predicted_only(2);
    let (block, state) = independent_transfers();
    let sequential = execute_sequential(&block, &state).expect("sequential executes");
    assert_eq!(sequential.stats, parevm::ExecutionStats::default());
    let stats = execute_parallel(&block, &state, &config)
        .expect("parallel executes")
        .stats;
    assert_eq!(stats.executions, 40);
    assert!(stats.partitions >= 2, "{stats:?}");
    assert_eq!((stats.validations, stats.aborts), (0, 0));
    assert!(!stats.partitions_discarded);

    let (block, state) = transfers_into_a_counter();
    let result = execute_parallel(&block, &state, &config).expect("parallel executes");
    assert_eq!(result.path, ExecutionPath::Parallel);
    let stats = result.stats;
    assert!(stats.partitions_discarded, "{stats:?}");
    assert_eq!(stats.partitions, 0);
    assert!(
        stats.executions >= 24 && stats.validations >= 24,
        "{stats:?}"
    );
}
