//! A state source that fails some reads, as a node's database can (an I/O
//! error) and as a witness does for what it does not hold (stateless
//! validation, a rollup's prover): the parallel executor must return
//! exactly what the sequential executor returns, the result where
//! execution in order never reads what fails, the same error where it
//! does. Speculative executions and the partition planner read more than
//! execution in order does; a failure there is not the block's.

mod common;
mod support;

use alloy_primitives::{Address, B256, U256};
use parevm::{
    BlockInput, BlockResult, ExecutionError, ExecutionPath, FallbackReason, InMemoryAccount,
    InMemoryState, ParallelConfig, StateError, StateSource, execute_parallel, execute_sequential,
};
use revm::{bytecode::Bytecode, state::AccountInfo};
use support::{Asm, BlockBuilder, TxSpec, addr, addr_word, calldata, op};

/// `inner`, failing every read of the `missing` accounts (their fields,
/// code and storage), slots and block hashes.
#[derive(Debug)]
struct Witness<S = InMemoryState> {
    inner: S,
    missing: Vec<Address>,
    missing_slots: Vec<(Address, U256)>,
    missing_hashes: Vec<u64>,
}

impl<S> Witness<S> {
    fn check(&self, address: &Address) -> Result<(), StateError> {
        match self.missing.contains(address) {
            true => Err(StateError::Other(format!(
                "{address} is not in the witness"
            ))),
            false => Ok(()),
        }
    }
}

impl<S: StateSource> StateSource for Witness<S> {
    fn account(&self, address: &Address) -> Result<Option<AccountInfo>, StateError> {
        self.check(address)?;
        self.inner.account(address)
    }
    fn account_fields(&self, address: &Address) -> Result<Option<AccountInfo>, StateError> {
        self.check(address)?;
        self.inner.account_fields(address)
    }
    fn code_hash(&self, address: &Address) -> Result<Option<B256>, StateError> {
        self.check(address)?;
        self.inner.code_hash(address)
    }
    fn code_by_hash(&self, code_hash: &B256) -> Result<Bytecode, StateError> {
        self.inner.code_by_hash(code_hash)
    }
    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError> {
        self.check(address)?;
        if self.missing_slots.contains(&(*address, *slot)) {
            let message = format!("slot {slot} of {address} is not in the witness");
            return Err(StateError::Other(message));
        }
        self.inner.storage(address, slot)
    }
    fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        match self.missing_hashes.contains(&number) {
            true => Err(StateError::MissingBlockHash(number)),
            false => self.inner.block_hash(number),
        }
    }
}

/// With calldata: burns gas for a while, then stores its first word at
/// slot 0 and 5 at slot 2. Without: stores `BALANCE(SLOAD(0))` at slot 1
/// and `BLOCKHASH(SLOAD(2))` at slot 3. A reader run beside a writer reads
/// the slots' pre-block values, which execution in order never reads.
fn slow_writer_or_reader() -> Vec<u8> {
    let mut reader = 0;
    let code = Asm::new()
        .op(&[op::CALLDATASIZE, op::ISZERO])
        .push_label(&mut reader)
        .op(&[op::JUMPI])
        .push(20_000);
    let top = code.pc();
    let code = code
        .op(&[op::JUMPDEST])
        .push(1)
        .op(&[op::SWAP1, op::SUB, op::DUP1])
        .push(top as u64)
        .op(&[op::JUMPI, op::POP])
        .push(0)
        .op(&[op::CALLDATALOAD])
        .push(0)
        .op(&[op::SSTORE])
        .push(5)
        .push(2)
        .op(&[op::SSTORE, op::STOP]);
    let at = code.pc();
    code.patch(reader, at)
        .op(&[op::JUMPDEST])
        .push(0)
        .op(&[op::SLOAD, op::BALANCE])
        .push(1)
        .op(&[op::SSTORE])
        .push(2)
        .op(&[op::SLOAD, BLOCKHASH])
        .push(3)
        .op(&[op::SSTORE, op::STOP])
        .build()
}

const BLOCKHASH: u8 = 0x40;

/// The contract of [`slow_writer_or_reader`], whose slot 0 names an
/// account the witness lacks (and slot 2 a block whose hash it lacks), a
/// writer that points it at one it holds, and readers after it: calling
/// it, or (`nested`) calling a contract that calls it, so that the read
/// fails in an inner frame.
fn writer_then_readers(readers: u64, nested: bool) -> (BlockInput, Witness) {
    let contract = addr(100);
    let (missing, present) = (addr(200), addr(201));
    let mut b = BlockBuilder::new(alloy_hardforks::EthereumHardfork::Cancun);
    let code = Bytecode::new_raw(slow_writer_or_reader().into());
    let info = AccountInfo {
        nonce: 1,
        code: Some(code),
        ..Default::default()
    };
    let storage = [(U256::ZERO, U256::from_be_slice(missing.as_slice()))];
    let storage = storage.into_iter().collect();
    b.state
        .insert_account(contract, InMemoryAccount { info, storage });
    b.fund(present, 7);
    b.fund(addr(1), support::RICH);
    b.tx(TxSpec {
        gas_limit: 1_000_000,
        ..TxSpec::call(addr(1), contract, 0, calldata(&[addr_word(present)]))
    });
    let proxy = addr(101);
    let mut push_contract = vec![op::PUSH20];
    push_contract.extend_from_slice(contract.as_slice());
    let calls_contract = support::call_to(Asm::new(), &push_contract).op(&[op::STOP]);
    b.contract(proxy, calls_contract.build());
    for reader in 0..readers {
        let sender = addr(10 + reader);
        b.fund(sender, support::RICH);
        b.call(sender, if nested { proxy } else { contract }, 0, Vec::new());
    }
    let (block, state) = b.build();
    let witness = Witness {
        inner: state,
        missing: vec![missing],
        missing_slots: Vec::new(),
        missing_hashes: vec![0],
    };
    (block, witness)
}

/// Runs `block` sequentially and in parallel with `config`, asserts that
/// both succeed alike, and returns the parallel result, whose path tells
/// whether a speculative read failed (the sequential executor ran it).
fn assert_matches_sequential(
    block: &BlockInput,
    state: &Witness<impl StateSource>,
    config: &ParallelConfig,
) -> BlockResult {
    let expected = execute_sequential(block, state)
        .expect("execution in order reads only what the witness holds");
    let actual = execute_parallel(block, state, config)
        .expect("a failed speculative read is not the block's");
    if let Some(difference) = expected.first_difference(&actual) {
        panic!("{} threads: parallel differs: {difference}", config.threads);
    }
    actual
}

/// A reader run beside the slow writer reads the slots' pre-block values
/// and asks the witness for what it lacks; execution in order never does.
/// In the outer frame, and in an inner one, whose failed read revm must
/// hand back before it resumes the outer frame.
#[test]
fn a_failed_speculative_read_is_not_the_blocks() {
    for nested in [false, true] {
        let (block, witness) = writer_then_readers(3, nested);
        assert_fails_over_speculative_reads(&block, &witness);
    }
}

/// Runs the block on Block-STM, where some runs' speculative reads fail,
/// and at least one does.
fn assert_fails_over_speculative_reads(block: &BlockInput, witness: &Witness) {
    let mut fell_back = 0;
    for threads in [2, 3, 4, 8] {
        for _ in 0..10 {
            let config = ParallelConfig::never_fall_back(threads);
            let result = assert_matches_sequential(block, witness, &config);
            match result.path {
                ExecutionPath::Parallel => {}
                ExecutionPath::SequentialFallback(FallbackReason::StateReadFailed) => {
                    fell_back += 1
                }
                other => panic!("{threads} threads: ran {other:?}"),
            }
        }
    }
    // The readers start beside the writer's 20,000-iteration loop.
    assert!(
        fell_back > 0,
        "no speculative read failed: the test shows nothing"
    );
}

/// Where execution in order reads what the witness lacks, the parallel
/// executor returns the sequential executor's error, which names the
/// transaction that read it (the first reader, after the writer).
#[test]
fn a_read_that_fails_in_order_fails_the_block_alike() {
    let (block, mut witness) = writer_then_readers(3, true);
    witness.missing.push(addr(201));
    let expected = execute_sequential(&block, &witness).expect_err("the read in order fails");
    assert!(
        matches!(expected, ExecutionError::TxState { index: 1, .. }),
        "{expected:?}"
    );
    assert!(expected.state_error().is_some());
    assert_every_executor_fails_alike(&block, &witness, &expected);
}

/// A read that the block's own processing makes and the witness lacks
/// (here the EIP-4788 beacon roots contract, which a Cancun block's
/// system call writes before any transaction) fails the block alike on
/// every executor, with the source's own error (alloy-evm reports a failed
/// system call as a message only).
#[test]
fn a_failed_read_of_a_system_call_fails_the_block_alike() {
    let (block, mut witness) = writer_then_readers(3, false);
    witness
        .missing
        .push(alloy_eips::eip4788::BEACON_ROOTS_ADDRESS);
    let expected = execute_sequential(&block, &witness).expect_err("the system call's read fails");
    assert!(matches!(expected, ExecutionError::State(_)), "{expected:?}");
    assert!(expected.state_error().is_some());
    assert!(expected.to_string().contains("is not in the witness"));
    assert_every_executor_fails_alike(&block, &witness, &expected);
}

/// A withdrawal to an account the witness lacks fails the block alike on
/// every executor, with the source's own error: alloy-evm reports the
/// failed balance increment as a message only, and the parallel executors
/// fold withdrawals in without an EVM.
#[test]
fn a_failed_read_of_a_withdrawal_fails_the_block_alike() {
    let (mut block, mut witness) = writer_then_readers(3, false);
    let recipient = addr(300);
    block.withdrawals = Some(vec![alloy_eips::eip4895::Withdrawal {
        index: 0,
        validator_index: 0,
        address: recipient,
        amount: 5,
    }]);
    witness.missing.push(recipient);
    let expected = execute_sequential(&block, &witness).expect_err("the withdrawal's read fails");
    assert!(expected.state_error().is_some(), "{expected:?}");
    assert!(expected.to_string().contains("is not in the witness"));
    assert_every_executor_fails_alike(&block, &witness, &expected);
}

/// Asserts that the parallel executor, as Block-STM, as partitions and
/// with its fallback rule, at 1, 2 and 4 threads, fails `block` on
/// `witness` with the sequential executor's error, `expected`.
fn assert_every_executor_fails_alike(
    block: &BlockInput,
    witness: &Witness,
    expected: &ExecutionError,
) {
    for threads in [1, 2, 4] {
        for config in [
            ParallelConfig::with_threads(threads),
            ParallelConfig::never_fall_back(threads),
            ParallelConfig::partitioned(threads),
        ] {
            let actual = execute_parallel(block, witness, &config).expect_err("the read fails");
            assert_eq!(
                actual.to_string(),
                expected.to_string(),
                "{threads} threads"
            );
        }
    }
}

/// Calls `target` only when called without input.
fn calls_without_input(target: Address) -> Vec<u8> {
    let mut skip = 0;
    let code = Asm::new()
        .op(&[op::CALLDATASIZE])
        .push_label(&mut skip)
        .op(&[op::JUMPI]);
    let mut push_target = vec![op::PUSH20];
    push_target.extend_from_slice(target.as_slice());
    let code = support::call_to(code, &push_target);
    let at = code.pc();
    code.patch(skip, at).op(&[op::JUMPDEST, op::STOP]).build()
}

/// The partition planner reads the code of every account a call may reach
/// along any path: here one the witness lacks, named in code that
/// execution with input skips. The call is then unpredicted, as a call
/// whose reach is unbounded, and the block runs on Block-STM, which never
/// reads the account.
#[test]
fn a_failed_read_while_planning_leaves_the_call_unpredicted() {
    let missing = addr(300);
    let mut b = BlockBuilder::new(alloy_hardforks::EthereumHardfork::Cancun);
    for i in 0..40 {
        let (sender, contract) = (addr(10 + i), addr(1_000 + i));
        b.fund(sender, support::RICH);
        b.contract(contract, calls_without_input(missing));
        b.call(sender, contract, 0, calldata(&[addr_word(sender)]));
    }
    let (block, state) = b.build();
    let witness = Witness {
        inner: state,
        missing: vec![missing],
        missing_slots: Vec::new(),
        missing_hashes: Vec::new(),
    };
    for threads in [2, 4] {
        // Calls predicted by what their code reaches.
        let config = ParallelConfig {
            partition_contract_calls: false,
            ..ParallelConfig::partitioned(threads)
        };
        let result = assert_matches_sequential(&block, &witness, &config);
        assert_eq!(result.path, ExecutionPath::Parallel);
    }
}

/// Mainnet blocks whose witness lacks some of the accounts or slots of
/// their pre-state: every executor returns what the sequential one does,
/// the block's result or the same error.
mod mainnet_witness {
    use super::*;
    use parevm::fixture::MainnetFixture;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn fixtures() -> Option<&'static [MainnetFixture]> {
        static FIXTURES: OnceLock<Option<Vec<MainnetFixture>>> = OnceLock::new();
        FIXTURES
            .get_or_init(|| {
                let blocks = common::mainnet_blocks()?;
                Some(blocks.filter(|f| f.block.transactions.len() >= 2).collect())
            })
            .as_deref()
    }

    /// The `picks` (modulo their count) of the fixture's accounts, and of
    /// its accounts' slots.
    fn holes<'f>(
        fixture: &'f MainnetFixture,
        picks: &[usize],
        slot_picks: &[usize],
    ) -> Witness<&'f InMemoryState> {
        let mut accounts: Vec<_> = fixture.state.accounts().collect();
        accounts.sort_by_key(|(address, _)| **address);
        let mut slots: Vec<_> = accounts
            .iter()
            .flat_map(|(address, account)| account.storage.keys().map(|slot| (**address, *slot)))
            .collect();
        slots.sort();
        let missing = picks
            .iter()
            .map(|p| *accounts[p % accounts.len()].0)
            .collect();
        let missing_slots = match slots.is_empty() {
            true => Vec::new(),
            false => slot_picks.iter().map(|p| slots[p % slots.len()]).collect(),
        };
        Witness {
            inner: &fixture.state,
            missing,
            missing_slots,
            missing_hashes: Vec::new(),
        }
    }

    proptest! {
        #![proptest_config(support::proptest_config(24))]

        #[test]
        fn mainnet_blocks_with_holes_in_their_witness_run_alike(
            which in any::<usize>(),
            picks in prop::collection::vec(any::<usize>(), 0..=2),
            slot_picks in prop::collection::vec(any::<usize>(), 0..=2),
        ) {
            let Some(fixtures) = fixtures() else {
                return Ok(());
            };
            let fixture = &fixtures[which % fixtures.len()];
            let witness = holes(fixture, &picks, &slot_picks);
            let block = &fixture.block;
            let expected = execute_sequential(block, &witness);
            for threads in [2, 4] {
                for config in [
                    ParallelConfig::with_threads(threads),
                    ParallelConfig::never_fall_back(threads),
                    ParallelConfig::partitioned(threads),
                ] {
                    let actual = execute_parallel(block, &witness, &config);
                    let difference = common::disagreement(&expected, &actual);
                    prop_assert!(
                        difference.is_none(),
                        "block {}, {threads} threads: {}",
                        block.header.number,
                        difference.unwrap_or_default()
                    );
                }
            }
        }
    }
}
