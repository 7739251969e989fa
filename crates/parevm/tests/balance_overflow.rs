//! Balances near `2^256`: sequential execution drops a fee that would
//! overflow the beneficiary's balance, halts a transfer that would overflow
//! its recipient's, and saturates a withdrawal. The parallel paths credit
//! such balances lazily, so where the credits could overflow they must
//! notice and run the block sequentially, and where they fit, stay
//! parallel. No real chain holds such balances; test chains do (a faucet
//! funded with `U256::MAX`).

mod support;

use alloy_eips::eip4895::Withdrawal;
use alloy_hardforks::EthereumHardfork;
use alloy_primitives::{Address, U256};
use parevm::{
    BlockInput, ExecutionPath, FallbackReason, InMemoryAccount, InMemoryState, ParallelConfig,
    TxOutcome, execute_parallel, execute_sequential,
};
use support::*;

/// Twenty plain transfers of 1 wei from different senders to `recipient`.
fn transfers_to(fork: EthereumHardfork, recipient: impl Fn(u64) -> Address) -> BlockInput {
    let mut builder = BlockBuilder::new(fork);
    for i in 0..20 {
        builder.fund(addr(100 + i), RICH);
        builder.transfer(addr(100 + i), recipient(i), 1);
    }
    builder.build().0
}

/// The block's senders funded, and `address` holding `balance`.
fn state_with(block: &BlockInput, address: Address, balance: U256) -> InMemoryState {
    let mut state = InMemoryState::new();
    for tx in &block.transactions {
        let mut sender = InMemoryAccount::default();
        sender.info.balance = U256::from(RICH);
        state.insert_account(tx.signer(), sender);
    }
    let mut account = InMemoryAccount::default();
    account.info.balance = balance;
    state.insert_account(address, account);
    state
}

/// Every parallel setting gives the sequential result; those that never
/// fall back on their own take `path`.
fn assert_runs_alike(block: &BlockInput, state: &InMemoryState, path: ExecutionPath) {
    let expected = execute_sequential(block, state).expect("sequential executes");
    for threads in THREADS {
        let configs = [
            (ParallelConfig::never_fall_back(threads), true),
            (
                ParallelConfig::partitioned(threads),
                path != ExecutionPath::Parallel,
            ),
            (ParallelConfig::with_threads(threads), false),
        ];
        for (config, takes_path) in configs {
            let actual = execute_parallel(block, state, &config).expect("parallel executes");
            if let Some(difference) = expected.first_difference(&actual) {
                panic!("{threads} threads, {:?}: {difference}", actual.path);
            }
            if takes_path {
                assert_eq!(actual.path, path, "{threads} threads");
            }
        }
    }
}

const OVERFLOW: ExecutionPath = ExecutionPath::SequentialFallback(FallbackReason::BalanceOverflow);

#[test]
fn fees_that_would_overflow_the_beneficiary_run_sequentially() {
    for fork in [EthereumHardfork::Byzantium, EthereumHardfork::Cancun] {
        let block = transfers_to(fork, |i| addr(200 + i));
        let state = state_with(&block, COINBASE, U256::MAX - U256::from(10));
        assert_runs_alike(&block, &state, OVERFLOW);
    }
}

#[test]
fn transfers_that_would_overflow_their_recipient_run_sequentially() {
    for fork in [EthereumHardfork::Byzantium, EthereumHardfork::Cancun] {
        let block = transfers_to(fork, |_| addr(7));
        let state = state_with(&block, addr(7), U256::MAX - U256::from(5));
        let result = execute_sequential(&block, &state).expect("sequential executes");
        // Five transfers fill the balance; the fifteen after them halt.
        let halted = result
            .transactions
            .iter()
            .filter(|tx| matches!(tx.outcome, TxOutcome::Halt { .. }));
        assert_eq!(halted.count(), 15);
        assert_runs_alike(&block, &state, OVERFLOW);
    }
}

#[test]
fn withdrawals_that_would_overflow_run_sequentially() {
    let mut block = transfers_to(EthereumHardfork::Cancun, |i| addr(200 + i));
    block.withdrawals = Some(vec![Withdrawal {
        index: 0,
        validator_index: 0,
        address: addr(7),
        amount: 1,
    }]);
    let state = state_with(&block, addr(7), U256::MAX - U256::from(5));
    assert_runs_alike(&block, &state, OVERFLOW);
}

#[test]
fn credits_that_fit_a_high_balance_stay_parallel() {
    let block = transfers_to(EthereumHardfork::Cancun, |_| addr(7));
    let high = U256::MAX - U256::from(RICH);
    for address in [COINBASE, addr(7)] {
        let state = state_with(&block, address, high);
        assert_runs_alike(&block, &state, ExecutionPath::Parallel);
    }
}
