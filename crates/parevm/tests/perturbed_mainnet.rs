//! Real blocks, perturbed: mainnet fixtures whose header, pre-state or
//! transaction list was changed at random must execute in parallel exactly
//! as they execute sequentially, at several thread counts and on every
//! path, including when the change makes transactions invalid in sequence
//! or the whole block fail, and neither executor may panic.
//!
//! The generated blocks of `parallel_proptest.rs` have controlled conflict
//! patterns over hand-written contracts; these keep mainnet's contracts
//! (tokens, AMMs, routers, proxies) and bend what they run on: senders that
//! can no longer pay, nonces out of step, a beneficiary that is also a
//! sender or a contract, a block gas limit that runs out, contracts whose
//! code or storage changed (to code that reads, probes or pays the
//! beneficiary or a call's argument, creates accounts or self-destructs),
//! transactions dropped, swapped or replayed,
//! ommers and withdrawals that credit the block's own senders, recipients
//! or beneficiary, a beneficiary that is a system contract, a precompile
//! or an account that does not exist yet, payments injected to senders that could not pay before,
//! a blob gas price that senders cannot pay, balances so near
//! `2^256` that credits overflow, and nonces that run out.

mod common;
mod support;

use alloy_consensus::{
    Header, Signed, Transaction, TxEip4844, TxEnvelope, TxLegacy, transaction::Recovered,
};
use alloy_eips::eip4895::Withdrawal;
use alloy_hardforks::EthereumHardfork;
use alloy_primitives::{Address, TxKind, U256};
use parevm::{
    BlockInput, BlockResult, ChainSpec, ExecutionError, InMemoryAccount, InMemoryState,
    ParallelConfig, execute_parallel, execute_sequential, fixture::MainnetFixture,
};
use proptest::prelude::*;
use revm::bytecode::Bytecode;
use std::sync::{Arc, OnceLock};
use support::{Asm, op, proptest_config};

/// The shared mainnet blocks with transactions, loaded once per test binary.
fn fixtures() -> Option<&'static [MainnetFixture]> {
    static FIXTURES: OnceLock<Option<Vec<MainnetFixture>>> = OnceLock::new();
    FIXTURES
        .get_or_init(|| {
            common::mainnet_blocks().map(|blocks| {
                blocks
                    .filter(|f| !f.block.transactions.is_empty())
                    .collect()
            })
        })
        .as_deref()
}

/// One change to a real block or its pre-state. A `tx` picks a transaction
/// modulo the block's current length.
#[derive(Debug, Clone)]
enum Perturbation {
    /// The transaction's sender holds `percent`% of the transaction's
    /// upfront cost (gas limit times maximum fee, plus value).
    Underfund { tx: usize, percent: u32 },
    /// The sender's pre-block nonce is one higher (or lower): its
    /// transactions' nonces are too low (or leave a gap).
    ShiftNonce { tx: usize, up: bool },
    /// The beneficiary is the transaction's sender.
    BeneficiaryIsSender { tx: usize },
    /// The beneficiary is the transaction's sender and holds `percent`% of
    /// its upfront cost: whether the transaction is valid depends on the
    /// fees the transactions before it credited.
    BeneficiaryLivesOnFees { tx: usize, percent: u32 },
    /// The beneficiary is the transaction's recipient (often a contract).
    BeneficiaryIsRecipient { tx: usize },
    /// The block gas limit is `percent`% of the gas the block used.
    GasLimit { percent: u64 },
    /// The base fee (London and later) is scaled by `quarters / 4`.
    BaseFee { quarters: u64 },
    /// The recipient's code is replaced by `program`.
    Code { tx: usize, program: Program },
    /// Every listed storage slot of the recipient is zeroed or replaced by
    /// a small value derived from `seed`.
    Storage { tx: usize, seed: u64 },
    /// The recipient has no balance, nonce, code or storage.
    Empty { tx: usize },
    /// Two transactions trade places.
    Swap { a: usize, b: usize },
    /// A transaction is sent again, at position `at`.
    Replay { tx: usize, at: usize },
    /// A transaction is left out.
    Drop { tx: usize },
    /// The block runs under `fork`'s rules (the fork active from genesis).
    Rules { fork: EthereumHardfork },
    /// An ommer `depth` blocks below the block (refused outside 1 to 6,
    /// and after the merge), mined by `miner`.
    Ommer { depth: u64, miner: Party },
    /// A withdrawal of `gwei` (Shanghai and later) to `to`.
    Withdrawal { gwei: u64, to: Party },
    /// `who` holds `2^256 - 1 - 10^digits` wei: the block's credits may
    /// overflow it.
    NearMaxBalance { who: Party, digits: u32 },
    /// The beneficiary is `who`.
    Beneficiary { who: Party },
    /// A fresh, rich account sends `ether` to `to` at position `at`: a
    /// sender it pays may only then afford its own transactions.
    Inject { at: usize, to: Party, ether: u64 },
    /// The blob gas price's excess (Cancun and later) is `excess`.
    ExcessBlobGas { excess: u64 },
    /// The transaction's sender starts at nonce `2^64 - 1 - below`, and its
    /// transactions are renumbered from there: the one at `2^64 - 1` and
    /// those after it are invalid (EIP-2681).
    NonceNearMax { tx: usize, below: u64 },
}

/// An account a perturbation singles out.
#[derive(Debug, Clone, Copy)]
enum Party {
    /// A transaction's sender.
    Sender(usize),
    /// A transaction's recipient.
    Recipient(usize),
    /// The block's beneficiary.
    Beneficiary,
    /// One of [`SPECIAL_ACCOUNTS`] (modulo their number).
    Special(usize),
    /// One of four accounts no state holds: empty until the block
    /// credits them.
    Fresh(u64),
}

/// Accounts every block may touch outside its transactions: the system
/// contracts that pre- and post-block calls write (EIP-4788, EIP-2935,
/// EIP-7002), precompiles and the zero address.
const SPECIAL_ACCOUNTS: [Address; 6] = [
    alloy_eips::eip4788::BEACON_ROOTS_ADDRESS,
    alloy_eips::eip2935::HISTORY_STORAGE_ADDRESS,
    alloy_eips::eip7002::WITHDRAWAL_REQUEST_PREDEPLOY_ADDRESS,
    Address::with_last_byte(1),
    Address::with_last_byte(0x0a),
    Address::ZERO,
];

/// Replacement code for a recipient: each exercises a case that breaks
/// parallel executors.
#[derive(Debug, Clone, Copy)]
enum Program {
    /// Stores `BALANCE(COINBASE)`: reads the lazily credited beneficiary.
    StoreCoinbaseBalance,
    /// `SELFDESTRUCT(COINBASE)`.
    SelfdestructToCoinbase,
    /// Forwards the call's value to the beneficiary.
    ForwardValueToCoinbase,
    /// Stores `BALANCE(CALLER)`: reads a sender's balance mid-block.
    StoreCallerBalance,
    /// Increments slot 0: one hot slot for every call.
    BumpSlotZero,
    /// Reverts.
    Revert,
    /// Loops until out of gas.
    Spin,
    /// Stores `EXTCODEHASH(COINBASE)`: whether the lazily credited
    /// beneficiary exists (empty or not) at that point.
    StoreCoinbaseCodehash,
    /// Sends 1 wei to the beneficiary: the call costs more if the
    /// beneficiary is empty at that point.
    PayCoinbaseOneWei,
    /// Stores `BALANCE` of the call's first argument (an ERC-20
    /// recipient, say): a balance other transactions credit.
    StoreArgBalance,
    /// Stores `EXTCODEHASH` of the call's first argument.
    StoreArgCodehash,
    /// Sends 1 wei to the call's first argument, perhaps creating it.
    PayArgOneWei,
    /// `CREATE`s an empty account with the call's value: a new address
    /// (from the contract's nonce) every call.
    CreateChild,
    /// `CREATE2`s an empty account at one fixed address: every call after
    /// the first collides.
    Create2Fixed,
    /// `SELFDESTRUCT(CALLER)`.
    SelfdestructToCaller,
    /// Stores `SELFBALANCE`.
    StoreSelfBalance,
}

impl Program {
    fn code(self) -> Vec<u8> {
        let asm = Asm::new();
        match self {
            Self::StoreCoinbaseBalance => asm.op(&[op::COINBASE, op::BALANCE]).store_top(0),
            Self::SelfdestructToCoinbase => asm.op(&[op::COINBASE, op::SELFDESTRUCT]),
            // CALL(gas, coinbase, callvalue, 0, 0, 0, 0)
            Self::ForwardValueToCoinbase => asm
                .push(0)
                .push(0)
                .push(0)
                .push(0)
                .op(&[op::CALLVALUE, op::COINBASE, op::GAS, op::CALL])
                .store_top(1),
            Self::StoreCallerBalance => asm.op(&[op::CALLER, op::BALANCE]).store_top(2),
            Self::BumpSlotZero => asm
                .push(0)
                .op(&[op::SLOAD])
                .push(1)
                .op(&[op::ADD])
                .store_top(0),
            Self::Revert => asm.push(0).push(0).op(&[op::REVERT]),
            Self::Spin => asm.op(&[op::JUMPDEST]).push(0).op(&[op::JUMP]),
            Self::StoreCoinbaseCodehash => asm.op(&[op::COINBASE, op::EXTCODEHASH]).store_top(3),
            // CALL(gas, coinbase, 1, 0, 0, 0, 0)
            Self::PayCoinbaseOneWei => asm
                .push(0)
                .push(0)
                .push(0)
                .push(0)
                .push(1)
                .op(&[op::COINBASE, op::GAS, op::CALL])
                .store_top(5),
            Self::StoreArgBalance => asm
                .push(4)
                .op(&[op::CALLDATALOAD, op::BALANCE])
                .store_top(7),
            Self::StoreArgCodehash => asm
                .push(4)
                .op(&[op::CALLDATALOAD, op::EXTCODEHASH])
                .store_top(8),
            // CALL(gas, calldata[4..36], 1, 0, 0, 0, 0)
            Self::PayArgOneWei => asm
                .push(0)
                .push(0)
                .push(0)
                .push(0)
                .push(1)
                .push(4)
                .op(&[op::CALLDATALOAD, op::GAS, op::CALL])
                .store_top(6),
            // CREATE(callvalue, 0, 0)
            Self::CreateChild => asm
                .push(0)
                .push(0)
                .op(&[op::CALLVALUE, op::CREATE])
                .store_top(4),
            // CREATE2(0, 0, 0, salt 0)
            Self::Create2Fixed => asm
                .push(0)
                .push(0)
                .push(0)
                .push(0)
                .op(&[op::CREATE2])
                .store_top(10),
            Self::SelfdestructToCaller => asm.op(&[op::CALLER, op::SELFDESTRUCT]),
            Self::StoreSelfBalance => asm.op(&[op::SELFBALANCE]).store_top(9),
        }
        .op(&[op::STOP])
        .build()
    }
}

/// `fixture` with `perturbations` applied in order.
fn perturbed(
    fixture: &MainnetFixture,
    perturbations: &[Perturbation],
) -> (BlockInput, InMemoryState) {
    let mut block = fixture.block.clone();
    let mut state = fixture.state.clone();
    for perturbation in perturbations {
        apply(perturbation, &mut block, &mut state);
    }
    (block, state)
}

fn apply(perturbation: &Perturbation, block: &mut BlockInput, state: &mut InMemoryState) {
    let txs = &mut block.transactions;
    if txs.is_empty() {
        return;
    }
    let pick = |i: usize| i % txs.len();
    let sender = |i: usize| txs[pick(i)].signer();
    let recipient = |i: usize| txs[pick(i)].to().unwrap_or_else(|| sender(i));
    let beneficiary = block.header.beneficiary;
    let party = |party: Party| match party {
        Party::Sender(tx) => sender(tx),
        Party::Recipient(tx) => recipient(tx),
        Party::Beneficiary => beneficiary,
        Party::Special(index) => SPECIAL_ACCOUNTS[index % SPECIAL_ACCOUNTS.len()],
        Party::Fresh(n) => Address::with_last_byte(0xfd).create(n % 4),
    };
    match *perturbation {
        Perturbation::Underfund { tx, percent } => {
            underfund(state, &txs[pick(tx)], percent);
        }
        Perturbation::BeneficiaryLivesOnFees { tx, percent } => {
            block.header.beneficiary = sender(tx);
            underfund(state, &txs[pick(tx)], percent);
        }
        Perturbation::ShiftNonce { tx, up } => edit(state, sender(tx), |account| {
            let nonce = &mut account.info.nonce;
            *nonce = if up {
                nonce.saturating_add(1)
            } else {
                nonce.saturating_sub(1)
            };
        }),
        Perturbation::BeneficiaryIsSender { tx } => block.header.beneficiary = sender(tx),
        Perturbation::BeneficiaryIsRecipient { tx } => block.header.beneficiary = recipient(tx),
        Perturbation::GasLimit { percent } => {
            block.header.gas_limit = block.header.gas_used.saturating_mul(percent) / 100;
        }
        Perturbation::BaseFee { quarters } => {
            if let Some(fee) = block.header.base_fee_per_gas.as_mut() {
                *fee = fee.saturating_mul(quarters) / 4;
            }
        }
        Perturbation::Code { tx, program } => edit(state, recipient(tx), |account| {
            account.info.code = Some(Bytecode::new_raw(program.code().into()));
        }),
        Perturbation::Storage { tx, seed } => edit(state, recipient(tx), |account| {
            for (slot, value) in account.storage.iter_mut() {
                let mixed = splitmix(seed ^ slot.as_limbs()[0]);
                *value = U256::from(if mixed.is_multiple_of(3) {
                    0
                } else {
                    mixed % 1_000_000
                });
            }
        }),
        Perturbation::Empty { tx } => {
            state.insert_account(recipient(tx), InMemoryAccount::default());
        }
        Perturbation::Swap { a, b } => {
            let (a, b) = (pick(a), pick(b));
            txs.swap(a, b);
        }
        Perturbation::Replay { tx, at } => {
            let copy = txs[pick(tx)].clone();
            let at = at % (txs.len() + 1);
            txs.insert(at, copy);
        }
        Perturbation::Drop { tx } => {
            let tx = pick(tx);
            txs.remove(tx);
        }
        Perturbation::Rules { fork } => {
            block.chain = Arc::new(ChainSpec::with_fork_from_genesis(1, fork));
        }
        Perturbation::Ommer { depth, miner } => {
            let mut ommer = block.header.clone();
            ommer.number = ommer.number.wrapping_sub(depth);
            ommer.beneficiary = party(miner);
            block.ommers.push(ommer);
        }
        Perturbation::NearMaxBalance { who, digits } => edit(state, party(who), |account| {
            account.info.balance = U256::MAX - U256::from(10u64).pow(U256::from(digits));
        }),
        Perturbation::Beneficiary { who } => block.header.beneficiary = party(who),
        Perturbation::Inject { at, to, ether } => {
            let to = party(to);
            let payment = injected_payment(&block.header, txs.len(), state, to, ether);
            let at = at % (txs.len() + 1);
            txs.insert(at, payment);
        }
        Perturbation::ExcessBlobGas { excess } => {
            if let Some(header_excess) = block.header.excess_blob_gas.as_mut() {
                *header_excess = excess;
            }
        }
        Perturbation::NonceNearMax { tx, below } => {
            let who = sender(tx);
            let first = u64::MAX - below;
            edit(state, who, |account| account.info.nonce = first);
            let mut next = first;
            for tx in txs.iter_mut().filter(|tx| tx.signer() == who) {
                set_nonce(tx.inner_mut(), next);
                next = next.saturating_add(1);
            }
        }
        Perturbation::Withdrawal { gwei, to } => {
            let withdrawals = block.withdrawals.get_or_insert_default();
            withdrawals.push(Withdrawal {
                index: withdrawals.len() as u64,
                validator_index: 0,
                address: party(to),
                amount: gwei,
            });
        }
    }
}

/// A payment of `ether` to `to` from a fresh account funded for it, at a
/// gas price any base fee up to 3 times this block's admits (legacy, so
/// valid under every fork).
/// Its payer is the `nth` injected one.
fn injected_payment(
    header: &Header,
    nth: usize,
    state: &mut InMemoryState,
    to: Address,
    ether: u64,
) -> Recovered<TxEnvelope> {
    let payer = Address::with_last_byte(0xee).create(nth as u64);
    let gas_price = u128::from(header.base_fee_per_gas.unwrap_or(1)) * 3 + 1;
    let value = U256::from(ether) * U256::from(10u64).pow(U256::from(18));
    let tx = TxLegacy {
        chain_id: None,
        nonce: 0,
        gas_price,
        gas_limit: 100_000,
        to: TxKind::Call(to),
        value,
        input: Default::default(),
    };
    edit(state, payer, |account| {
        account.info.balance = value + U256::from(gas_price * 100_000)
    });
    let signed = Signed::new_unchecked(tx, support::placeholder_signature(), Default::default());
    Recovered::new_unchecked(TxEnvelope::Legacy(signed), payer)
}

/// Gives `tx` another nonce (its signature no longer matches, but the
/// executors take the sender as recovered).
fn set_nonce(tx: &mut TxEnvelope, nonce: u64) {
    match tx {
        TxEnvelope::Legacy(signed) => signed.tx_mut().nonce = nonce,
        TxEnvelope::Eip2930(signed) => signed.tx_mut().nonce = nonce,
        TxEnvelope::Eip1559(signed) => signed.tx_mut().nonce = nonce,
        TxEnvelope::Eip4844(signed) => {
            AsMut::<TxEip4844>::as_mut(signed.tx_mut()).nonce = nonce;
        }
        TxEnvelope::Eip7702(signed) => signed.tx_mut().nonce = nonce,
    }
}

/// Leaves `tx`'s sender `percent`% of the transaction's upfront cost.
fn underfund(state: &mut InMemoryState, tx: &Recovered<TxEnvelope>, percent: u32) {
    let cost = U256::from(tx.gas_limit()) * U256::from(tx.max_fee_per_gas()) + tx.value();
    let balance = cost * U256::from(percent) / U256::from(100);
    edit(state, tx.signer(), |account| account.info.balance = balance);
}

/// Changes the account at `address` (an empty one if absent).
fn edit(state: &mut InMemoryState, address: Address, change: impl FnOnce(&mut InMemoryAccount)) {
    let mut account = state.get(&address).cloned().unwrap_or_default();
    change(&mut account);
    state.insert_account(address, account);
}

/// A well-mixed 64-bit value from `x` (SplitMix64's finaliser).
fn splitmix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The parallel executor's settings a perturbed block runs under: the
/// default rule (which may fall back), Block-STM always, and partitions
/// wherever the block splits.
fn configs() -> [ParallelConfig; 4] {
    [
        ParallelConfig::with_threads(2),
        ParallelConfig::never_fall_back(2),
        ParallelConfig::never_fall_back(4),
        ParallelConfig::partitioned(3),
    ]
}

/// Runs the perturbed block sequentially and under every [`configs`]
/// setting, and fails unless each parallel run agrees with the sequential
/// one: the same result, or the same error.
fn check(fixture: &MainnetFixture, perturbations: &[Perturbation]) -> Result<(), TestCaseError> {
    let (block, state) = perturbed(fixture, perturbations);
    let expected = execute_sequential(&block, &state);
    if std::env::var_os("PAREVM_PROPTEST_VERBOSE").is_some() {
        eprintln!("{}: {}", block.header.number, summary(&expected));
    }
    for config in configs() {
        let actual = execute_parallel(&block, &state, &config);
        if let Some(difference) = common::disagreement(&expected, &actual) {
            return Err(TestCaseError::fail(format!(
                "block {} ({} txs), {} threads, {:?}: {difference}",
                block.header.number,
                block.transactions.len(),
                config.threads,
                actual.as_ref().map(|r| r.path),
            )));
        }
    }
    Ok(())
}

/// What the sequential executor made of a perturbed block, in a few words.
fn summary(result: &Result<BlockResult, ExecutionError>) -> String {
    match result {
        Ok(result) => {
            let invalid = result
                .transactions
                .iter()
                .filter(|tx| tx.outcome.is_invalid());
            format!(
                "{} of {} transactions invalid",
                invalid.count(),
                result.transactions.len()
            )
        }
        Err(error) => format!("error: {error}"),
    }
}

fn tx() -> impl Strategy<Value = usize> {
    any::<usize>()
}

fn program() -> impl Strategy<Value = Program> {
    prop_oneof![
        Just(Program::StoreCoinbaseBalance),
        Just(Program::SelfdestructToCoinbase),
        Just(Program::ForwardValueToCoinbase),
        Just(Program::StoreCallerBalance),
        Just(Program::BumpSlotZero),
        Just(Program::Revert),
        Just(Program::Spin),
        Just(Program::StoreCoinbaseCodehash),
        Just(Program::PayCoinbaseOneWei),
        Just(Program::StoreArgBalance),
        Just(Program::StoreArgCodehash),
        Just(Program::PayArgOneWei),
        Just(Program::CreateChild),
        Just(Program::Create2Fixed),
        Just(Program::SelfdestructToCaller),
        Just(Program::StoreSelfBalance),
    ]
}

/// Around 100% of the upfront cost most often: that is where the
/// sufficiency check flips.
fn percent_of_cost() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0), 50u32..100, 99u32..=101, 102u32..200]
}

fn party() -> impl Strategy<Value = Party> {
    prop_oneof![
        tx().prop_map(Party::Sender),
        tx().prop_map(Party::Recipient),
        Just(Party::Beneficiary),
        any::<usize>().prop_map(Party::Special),
        any::<u64>().prop_map(Party::Fresh),
    ]
}

fn perturbation() -> impl Strategy<Value = Perturbation> {
    prop_oneof![
        3 => (tx(), percent_of_cost()).prop_map(|(tx, percent)| Perturbation::Underfund { tx, percent }),
        2 => (tx(), any::<bool>()).prop_map(|(tx, up)| Perturbation::ShiftNonce { tx, up }),
        2 => tx().prop_map(|tx| Perturbation::BeneficiaryIsSender { tx }),
        2 => (tx(), percent_of_cost())
            .prop_map(|(tx, percent)| Perturbation::BeneficiaryLivesOnFees { tx, percent }),
        2 => tx().prop_map(|tx| Perturbation::BeneficiaryIsRecipient { tx }),
        1 => (25u64..=100).prop_map(|percent| Perturbation::GasLimit { percent }),
        1 => (0u64..=12).prop_map(|quarters| Perturbation::BaseFee { quarters }),
        5 => (tx(), program()).prop_map(|(tx, program)| Perturbation::Code { tx, program }),
        2 => (tx(), any::<u64>()).prop_map(|(tx, seed)| Perturbation::Storage { tx, seed }),
        1 => tx().prop_map(|tx| Perturbation::Empty { tx }),
        2 => (tx(), tx()).prop_map(|(a, b)| Perturbation::Swap { a, b }),
        1 => (tx(), tx()).prop_map(|(tx, at)| Perturbation::Replay { tx, at }),
        1 => tx().prop_map(|tx| Perturbation::Drop { tx }),
        1 => prop::sample::select(EthereumHardfork::VARIANTS)
            .prop_map(|fork| Perturbation::Rules { fork }),
        1 => (0u64..=8, party()).prop_map(|(depth, miner)| Perturbation::Ommer { depth, miner }),
        1 => (0u64..=40_000_000_000, party()).prop_map(|(gwei, to)| Perturbation::Withdrawal { gwei, to }),
        1 => (party(), 0u32..=24).prop_map(|(who, digits)| Perturbation::NearMaxBalance { who, digits }),
        1 => (tx(), 0u64..=3).prop_map(|(tx, below)| Perturbation::NonceNearMax { tx, below }),
        2 => party().prop_map(|who| Perturbation::Beneficiary { who }),
        2 => (tx(), party(), 0u64..=50).prop_map(|(at, to, ether)| Perturbation::Inject { at, to, ether }),
        1 => (0u64..=(1 << 28)).prop_map(|excess| Perturbation::ExcessBlobGas { excess }),
    ]
}

proptest! {
    #![proptest_config(proptest_config(96))]

    /// One to four perturbations of a random shared mainnet block.
    #[test]
    fn perturbed_blocks_run_alike(
        which in any::<usize>(),
        perturbations in prop::collection::vec(perturbation(), 1..=4),
    ) {
        let Some(fixtures) = fixtures() else {
            return Ok(());
        };
        check(&fixtures[which % fixtures.len()], &perturbations)?;
    }
}
