//! Ommers (the uncles of proof-of-work blocks): both executors pay their
//! rewards after the transactions alike, also to accounts the transactions
//! use, and both refuse ommers whose reward is undefined, with the same
//! error and no panic.

mod support;

use alloy_hardforks::EthereumHardfork;
use alloy_primitives::{Address, U256};
use parevm::{
    BlockInput, ExecutionError, InMemoryState, InvalidOmmers, ParallelConfig, execute_parallel,
    execute_sequential,
};
use support::*;

/// The block's number: high enough for ommers six below it.
const NUMBER: u64 = 100;

/// Byzantium's block reward: 3 ether.
const BLOCK_REWARD: u128 = 3_000_000_000_000_000_000;

/// Twenty transfers from `addr(1)` to `addr(2)` in a Byzantium block
/// [`NUMBER`], with an ommer `depth` blocks below it mined by `miner` for
/// each of `ommers`.
fn block_with_ommers(
    fork: EthereumHardfork,
    ommers: &[(u64, Address)],
) -> (BlockInput, InMemoryState) {
    let mut builder = BlockBuilder::new(fork);
    builder.fund(addr(1), RICH);
    for _ in 0..20 {
        builder.transfer(addr(1), addr(2), 1_000);
    }
    let (mut block, state) = builder.build();
    block.header.number = NUMBER;
    block.ommers = ommers
        .iter()
        .map(|&(depth, miner)| {
            let mut ommer = block.header.clone();
            ommer.number = NUMBER.wrapping_sub(depth);
            ommer.beneficiary = miner;
            ommer
        })
        .collect();
    (block, state)
}

#[test]
fn ommer_rewards_reach_senders_recipients_the_beneficiary_and_strangers() {
    let miners = [addr(1), addr(2), COINBASE, addr(9)];
    for depth in 1..=6 {
        for (first, second) in miners.iter().zip(miners.iter().rev()) {
            let (block, state) = block_with_ommers(
                EthereumHardfork::Byzantium,
                &[(depth, *first), (7 - depth, *second)],
            );
            let result = assert_parallel_matches(&block, &state);
            if *first == addr(9) {
                // An ommer `depth` blocks below earns (8 - depth) / 8 of the
                // block reward.
                let expected = BLOCK_REWARD * u128::from(8 - depth) / 8;
                let stranger = account_after(&result, &state, addr(9)).expect("rewarded");
                assert_eq!(stranger.info.balance, U256::from(expected), "depth {depth}");
            }
        }
    }
}

#[test]
fn ommers_whose_reward_is_undefined_are_refused_by_both_executors() {
    let byzantium = EthereumHardfork::Byzantium;
    let cases = [
        (byzantium, vec![(0, addr(9))], out_of_range(0, NUMBER)),
        (byzantium, vec![(7, addr(9))], out_of_range(0, NUMBER - 7)),
        // Alloy-evm's reward would underflow here.
        (
            byzantium,
            vec![(1, addr(9)), (90, addr(9))],
            out_of_range(1, NUMBER - 90),
        ),
        // Above the block.
        (
            byzantium,
            vec![(u64::MAX, addr(9))],
            out_of_range(0, NUMBER + 1),
        ),
        (
            byzantium,
            vec![(1, addr(9)); 3],
            InvalidOmmers::TooMany { count: 3 },
        ),
        (
            EthereumHardfork::Paris,
            vec![(1, addr(9))],
            InvalidOmmers::AfterMerge { block: NUMBER },
        ),
    ];
    for (fork, ommers, expected) in cases {
        let (block, state) = block_with_ommers(fork, &ommers);
        let results = [
            execute_sequential(&block, &state),
            execute_parallel(&block, &state, &ParallelConfig::never_fall_back(2)),
            execute_parallel(&block, &state, &ParallelConfig::with_threads(2)),
        ];
        for result in results {
            match result {
                Err(ExecutionError::InvalidOmmers(error)) => assert_eq!(error, expected),
                other => panic!("{ommers:?}: expected {expected:?}, got {other:?}"),
            }
        }
    }
}

fn out_of_range(index: usize, ommer: u64) -> InvalidOmmers {
    InvalidOmmers::OutOfRange {
        index,
        ommer,
        block: NUMBER,
    }
}
