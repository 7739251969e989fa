//! Test support for the parallel executor's differential tests: a small block
//! builder, hand-assembled EVM bytecode, and [`assert_parallel_matches`].
#![allow(dead_code)]

use alloy_consensus::{
    Header, Signed, TxEip1559, TxEip4844, TxEip4844Variant, TxEip7702, TxEnvelope, TxLegacy,
    transaction::Recovered,
};
use alloy_eips::{
    eip2930::AccessList,
    eip7702::{Authorization, SignedAuthorization},
};
use alloy_hardforks::EthereumHardfork;
use alloy_primitives::{Address, B256, Bytes, Signature, TxKind, U256, map::HashMap};
use parevm::{
    BlockInput, BlockResult, ChainSpec, ExecutionPath, InMemoryAccount, InMemoryState,
    ParallelConfig, TxOutcome, execute_parallel, execute_sequential,
};
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};
use revm::{bytecode::Bytecode, state::AccountInfo};
use std::sync::Arc;

/// Thread counts every comparison runs at.
pub const THREADS: [usize; 4] = [2, 3, 4, 8];

/// The block's beneficiary.
pub const COINBASE: Address = Address::repeat_byte(0xcb);
/// Base fee of London-and-later blocks (wei).
pub const BASE_FEE: u64 = 1_000;
/// `max_fee_per_gas` (or legacy gas price) of built transactions (wei).
pub const MAX_FEE: u128 = 2_000;
/// `max_priority_fee_per_gas` of built transactions (wei).
pub const PRIORITY_FEE: u128 = 100;
/// Gas limit of built transactions unless given.
pub const TX_GAS: u64 = 300_000;
/// Balance [`BlockBuilder::fund`] gives by default: 1000 ether.
pub const RICH: u128 = 1_000_000_000_000_000_000_000;

/// `default_cases` cases per property, or `PROPTEST_CASES` of them for a
/// longer soak (`PROPTEST_CASES=1000 cargo test --release --test
/// parallel_proptest`).
pub fn proptest_config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        // Cases are cheap to regenerate; keep the tree clean.
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    }
}

/// A deterministic address for test actor `n` (never a precompile or system address).
pub fn addr(n: u64) -> Address {
    let mut bytes = [0u8; 20];
    bytes[0] = 0xa0;
    bytes[12..].copy_from_slice(&n.to_be_bytes());
    Address::from(bytes)
}

/// Runs `block` sequentially once and in parallel at [`THREADS`], `repeats`
/// times each, and asserts identical results. Unless `allow_invalid`, also
/// asserts that sequential execution found no invalid transaction. Returns
/// the sequential result.
pub fn assert_parallel_matches_with(
    block: &BlockInput,
    state: &InMemoryState,
    repeats: usize,
    allow_invalid: bool,
) -> BlockResult {
    let expected = execute_sequential(block, state).expect("sequential executes");
    if !allow_invalid {
        for (index, tx) in expected.transactions.iter().enumerate() {
            assert!(
                !tx.outcome.is_invalid(),
                "sequential: tx {index} is invalid: {:?}",
                tx.outcome
            );
        }
    }
    for threads in THREADS {
        // Block-STM, never falling back; then partitioned whenever the
        // block splits at all: where the split holds, the partitions'
        // result; where it does not, Block-STM's.
        let runs = [
            (
                ParallelConfig::never_fall_back(threads),
                &[ExecutionPath::Parallel][..],
            ),
            (
                ParallelConfig::partitioned(threads),
                &[ExecutionPath::Partitioned, ExecutionPath::Parallel][..],
            ),
        ];
        for (config, paths) in runs {
            for run in 0..repeats {
                let actual = match execute_parallel(block, state, &config) {
                    Ok(actual) => actual,
                    Err(error) => {
                        panic!("{paths:?} failed (threads {threads}, run {run}): {error}")
                    }
                };
                // Invalid transactions may legitimately send a block back
                // to the sequential executor (a gas-limit overrun);
                // otherwise a parallel executor itself must have produced
                // the result.
                if !allow_invalid && block.transactions.len() >= 2 {
                    assert!(
                        paths.contains(&actual.path),
                        "threads {threads}: {:?} ran, not one of {paths:?}",
                        actual.path
                    );
                }
                assert_same(&expected, &actual, threads, run);
            }
        }
    }
    expected
}

fn assert_same(expected: &BlockResult, actual: &BlockResult, threads: usize, run: usize) {
    if let Some(difference) = expected.first_difference(actual) {
        panic!(
            "parallel != sequential (threads {threads}, run {run}, path {}): {difference}\n\
             sequential outcomes: {:#?}\nparallel outcomes: {:#?}",
            actual.path.as_str(),
            outcomes(expected),
            outcomes(actual),
        );
    }
}

/// The default rule at `threads`, on a core each whatever the machine,
/// except for blocks' total gas: the test blocks are small.
pub fn small_block_rule(threads: usize) -> ParallelConfig {
    ParallelConfig {
        min_parallel_gas: 0,
        cores: threads,
        ..ParallelConfig::with_threads(threads)
    }
}

/// [`small_block_rule`], with every contract call predicted by its target
/// alone: the partition plan then misses what a call touches, and only the
/// partitions' own checks can catch it.
pub fn small_block_rule_keying_calls_by_target(threads: usize) -> ParallelConfig {
    ParallelConfig {
        partition_contract_calls: true,
        ..small_block_rule(threads)
    }
}

/// Runs `block` with `config(threads)` at [`THREADS`], 10 times each,
/// asserts the sequential result every time, and hands each run to
/// `check` with where it ran.
pub fn assert_runs(
    block: &BlockInput,
    state: &InMemoryState,
    config: impl Fn(usize) -> ParallelConfig,
    check: impl Fn(&BlockResult, &str),
) {
    let expected = execute_sequential(block, state).expect("sequential executes");
    for threads in THREADS {
        for run in 0..10 {
            let actual = execute_parallel(block, state, &config(threads)).expect("runs");
            if let Some(difference) = expected.first_difference(&actual) {
                panic!("threads {threads} run {run}: {difference}");
            }
            check(&actual, &format!("threads {threads} run {run}"));
        }
    }
}

/// [`assert_runs`] with every contract call keyed by its target, asserting
/// that each run ran as partitions, which were discarded (the plan missed
/// what running caught), before it ran another way.
pub fn assert_caught_while_running(block: &BlockInput, state: &InMemoryState) {
    assert_runs(
        block,
        state,
        small_block_rule_keying_calls_by_target,
        |actual, at| {
            assert!(actual.stats.partitions_discarded, "{at}: {:?}", actual.path);
            assert_ne!(actual.path, ExecutionPath::Partitioned, "{at}");
        },
    );
}

/// [`assert_parallel_matches_with`] with 5 repeats and no invalid transactions allowed.
pub fn assert_parallel_matches(block: &BlockInput, state: &InMemoryState) -> BlockResult {
    assert_parallel_matches_with(block, state, 5, false)
}

fn outcomes(result: &BlockResult) -> Vec<&TxOutcome> {
    result.transactions.iter().map(|t| &t.outcome).collect()
}

/// The output of transaction `index`, which must have succeeded.
pub fn success_output(result: &BlockResult, index: usize) -> Bytes {
    match &result.transactions[index].outcome {
        TxOutcome::Success { output, .. } => output.clone(),
        other => panic!("tx {index} did not succeed: {other:?}"),
    }
}

/// The post-block value of `slot` of `address` according to `result` and `pre`.
pub fn storage_after(
    result: &BlockResult,
    pre: &InMemoryState,
    address: Address,
    slot: U256,
) -> U256 {
    let mut post = pre.clone();
    post.apply(&result.state);
    post.get(&address)
        .and_then(|a| a.storage.get(&slot).copied())
        .unwrap_or_default()
}

/// The post-block account at `address`, if it exists.
pub fn account_after(
    result: &BlockResult,
    pre: &InMemoryState,
    address: Address,
) -> Option<InMemoryAccount> {
    let mut post = pre.clone();
    post.apply(&result.state);
    post.get(&address).cloned()
}

/// Builds a block and its pre-state.
pub struct BlockBuilder {
    /// The fork active from genesis.
    pub fork: EthereumHardfork,
    /// The pre-block state.
    pub state: InMemoryState,
    /// The transactions so far.
    pub txs: Vec<Recovered<TxEnvelope>>,
    /// Next nonce per sender, as the builder tracks it.
    pub nonces: HashMap<Address, u64>,
    /// The beneficiary.
    pub coinbase: Address,
    /// Blob gas used by the blob transactions so far.
    pub blob_gas_used: u64,
    /// The header's gas limit; default: the larger of 30M and the sum of the
    /// transactions' gas limits.
    pub block_gas_limit: Option<u64>,
}

/// One transaction to add with [`BlockBuilder::tx`].
#[derive(Debug, Clone)]
pub struct TxSpec {
    pub from: Address,
    pub to: TxKind,
    pub value: U256,
    pub input: Vec<u8>,
    pub gas_limit: u64,
    /// `None`: the builder's next nonce for `from` (which it then advances).
    pub nonce: Option<u64>,
    /// `(max_fee_per_gas, max_priority_fee_per_gas)` (legacy: gas price =
    /// max fee); `None`: [`MAX_FEE`], [`PRIORITY_FEE`].
    pub fees: Option<(u128, u128)>,
}

impl TxSpec {
    /// A call with the default gas limit.
    pub fn call(from: Address, to: Address, value: u128, input: Vec<u8>) -> Self {
        Self {
            from,
            to: TxKind::Call(to),
            value: U256::from(value),
            input,
            gas_limit: TX_GAS,
            nonce: None,
            fees: None,
        }
    }
}

impl BlockBuilder {
    /// An empty block of `fork` (all earlier forks active from genesis). For
    /// Cancun and later the EIP-4788 beacon roots contract is deployed, for
    /// Prague and later the EIP-2935, EIP-7002 and EIP-7251 system contracts.
    pub fn new(fork: EthereumHardfork) -> Self {
        let mut builder = Self::without_system_contracts(fork);
        if fork >= EthereumHardfork::Cancun {
            builder.contract(
                alloy_eips::eip4788::BEACON_ROOTS_ADDRESS,
                alloy_eips::eip4788::BEACON_ROOTS_CODE.to_vec(),
            );
        }
        if fork >= EthereumHardfork::Prague {
            builder.contract(
                alloy_eips::eip2935::HISTORY_STORAGE_ADDRESS,
                alloy_eips::eip2935::HISTORY_STORAGE_CODE.to_vec(),
            );
            builder.contract(
                alloy_eips::eip7002::WITHDRAWAL_REQUEST_PREDEPLOY_ADDRESS,
                alloy_eips::eip7002::WITHDRAWAL_REQUEST_PREDEPLOY_CODE.to_vec(),
            );
            builder.contract(
                alloy_eips::eip7251::CONSOLIDATION_REQUEST_PREDEPLOY_ADDRESS,
                alloy_eips::eip7251::CONSOLIDATION_REQUEST_PREDEPLOY_CODE.to_vec(),
            );
        }
        builder
    }

    /// An empty block of `fork` whose pre-state lacks the system contracts,
    /// as the mainnet fixtures' pre-state does (it lists the accounts the
    /// transactions touch).
    pub fn without_system_contracts(fork: EthereumHardfork) -> Self {
        Self {
            fork,
            state: InMemoryState::new(),
            txs: Vec::new(),
            nonces: HashMap::default(),
            coinbase: COINBASE,
            blob_gas_used: 0,
            block_gas_limit: None,
        }
    }

    fn london(&self) -> bool {
        self.fork >= EthereumHardfork::London
    }

    /// Gives `address` (an EOA) `balance` wei, replacing the account.
    pub fn fund(&mut self, address: Address, balance: u128) -> &mut Self {
        self.account(address, balance, 0, None, &[]);
        self
    }

    /// Gives each address [`RICH`].
    pub fn fund_all(&mut self, addresses: impl IntoIterator<Item = Address>) -> &mut Self {
        for address in addresses {
            self.fund(address, RICH);
        }
        self
    }

    /// Deploys `code` at `address` (nonce 1, no balance, no storage).
    pub fn contract(&mut self, address: Address, code: Vec<u8>) -> &mut Self {
        self.account(address, 0, 1, Some(code), &[]);
        self
    }

    /// Inserts an arbitrary account.
    pub fn account(
        &mut self,
        address: Address,
        balance: u128,
        nonce: u64,
        code: Option<Vec<u8>>,
        storage: &[(u64, u64)],
    ) -> &mut Self {
        self.state.insert_account(
            address,
            InMemoryAccount {
                info: AccountInfo {
                    balance: U256::from(balance),
                    nonce,
                    code: code.map(|c| Bytecode::new_raw(c.into())),
                    ..Default::default()
                },
                storage: storage
                    .iter()
                    .map(|(k, v)| (U256::from(*k), U256::from(*v)))
                    .collect(),
            },
        );
        if nonce > 0 {
            self.nonces.entry(address).or_insert(nonce);
        }
        self
    }

    /// The nonce [`Self::take_nonce`] would give `sender` next.
    pub fn next_nonce(&self, sender: Address) -> u64 {
        self.nonces.get(&sender).copied().unwrap_or_else(|| {
            self.state
                .get(&sender)
                .map_or(0, |account| account.info.nonce)
        })
    }

    /// The nonce the next transaction of `sender` gets (and advances it).
    pub fn take_nonce(&mut self, sender: Address) -> u64 {
        let pre = self
            .state
            .get(&sender)
            .map_or(0, |account| account.info.nonce);
        let nonce = self.nonces.entry(sender).or_insert(pre);
        let current = *nonce;
        // Wraps as a release build does: a test takes the last nonce,
        // 2^64 - 1 (EIP-2681), and a debug build's check panicked there.
        *nonce = current.wrapping_add(1);
        current
    }

    /// The nonce the next transaction of `sender` would get.
    pub fn peek_nonce(&self, sender: Address) -> u64 {
        self.nonces.get(&sender).copied().unwrap_or_else(|| {
            self.state
                .get(&sender)
                .map_or(0, |account| account.info.nonce)
        })
    }

    /// Adds a transaction: EIP-1559 from London on, legacy before (with a
    /// chain id from Spurious Dragon on).
    pub fn tx(&mut self, spec: TxSpec) -> &mut Self {
        let nonce = match spec.nonce {
            Some(nonce) => nonce,
            None => self.take_nonce(spec.from),
        };
        let (max_fee, priority_fee) = spec.fees.unwrap_or((MAX_FEE, PRIORITY_FEE));
        let envelope = if self.london() {
            TxEnvelope::Eip1559(Signed::new_unchecked(
                TxEip1559 {
                    chain_id: 1,
                    nonce,
                    gas_limit: spec.gas_limit,
                    max_fee_per_gas: max_fee,
                    max_priority_fee_per_gas: priority_fee,
                    to: spec.to,
                    value: spec.value,
                    access_list: AccessList::default(),
                    input: spec.input.into(),
                },
                placeholder_signature(),
                B256::ZERO,
            ))
        } else {
            TxEnvelope::Legacy(Signed::new_unchecked(
                TxLegacy {
                    chain_id: (self.fork >= EthereumHardfork::SpuriousDragon).then_some(1),
                    nonce,
                    gas_price: max_fee,
                    gas_limit: spec.gas_limit,
                    to: spec.to,
                    value: spec.value,
                    input: spec.input.into(),
                },
                placeholder_signature(),
                B256::ZERO,
            ))
        };
        self.push(envelope, spec.from)
    }

    /// Adds an already built envelope from `sender`.
    pub fn push(&mut self, envelope: TxEnvelope, sender: Address) -> &mut Self {
        self.txs.push(Recovered::new_unchecked(envelope, sender));
        self
    }

    /// A call from `from` to `to` with `value` wei and `input`.
    pub fn call(&mut self, from: Address, to: Address, value: u128, input: Vec<u8>) -> &mut Self {
        self.tx(TxSpec::call(from, to, value, input))
    }

    /// A plain value transfer (21000 gas).
    pub fn transfer(&mut self, from: Address, to: Address, value: u128) -> &mut Self {
        self.tx(TxSpec {
            gas_limit: 21_000,
            ..TxSpec::call(from, to, value, Vec::new())
        })
    }

    /// A contract creation transaction; returns the address it creates.
    pub fn create(&mut self, from: Address, value: u128, init_code: Vec<u8>) -> Address {
        let nonce = self.take_nonce(from);
        self.tx(TxSpec {
            from,
            to: TxKind::Create,
            value: U256::from(value),
            input: init_code,
            gas_limit: TX_GAS,
            nonce: Some(nonce),
            fees: None,
        });
        from.create(nonce)
    }

    /// A type-3 (blob) transaction calling `to` with `blobs` versioned hashes.
    pub fn blob_tx(
        &mut self,
        from: Address,
        to: Address,
        value: u128,
        input: Vec<u8>,
        blobs: usize,
    ) -> &mut Self {
        let nonce = self.take_nonce(from);
        let hashes = (0..blobs)
            .map(|i| {
                let mut hash = B256::repeat_byte(i as u8 + 1);
                hash.0[0] = 0x01; // VERSIONED_HASH_VERSION_KZG
                hash
            })
            .collect();
        self.blob_gas_used += blobs as u64 * alloy_eips::eip4844::DATA_GAS_PER_BLOB;
        let tx = TxEip4844 {
            chain_id: 1,
            nonce,
            gas_limit: TX_GAS,
            max_fee_per_gas: MAX_FEE,
            max_priority_fee_per_gas: PRIORITY_FEE,
            to,
            value: U256::from(value),
            access_list: AccessList::default(),
            blob_versioned_hashes: hashes,
            max_fee_per_blob_gas: 10,
            input: input.into(),
        };
        self.push(
            TxEnvelope::Eip4844(Signed::new_unchecked(
                TxEip4844Variant::TxEip4844(tx),
                placeholder_signature(),
                B256::ZERO,
            )),
            from,
        )
    }

    /// A type-4 (EIP-7702) transaction calling `to` with `authorizations`.
    pub fn set_code_tx(
        &mut self,
        from: Address,
        to: Address,
        value: u128,
        input: Vec<u8>,
        authorizations: Vec<SignedAuthorization>,
    ) -> &mut Self {
        let nonce = self.take_nonce(from);
        let tx = TxEip7702 {
            chain_id: 1,
            nonce,
            gas_limit: TX_GAS,
            max_fee_per_gas: MAX_FEE,
            max_priority_fee_per_gas: PRIORITY_FEE,
            to,
            value: U256::from(value),
            access_list: AccessList::default(),
            authorization_list: authorizations,
            input: input.into(),
        };
        self.push(
            TxEnvelope::Eip7702(Signed::new_unchecked(
                tx,
                placeholder_signature(),
                B256::ZERO,
            )),
            from,
        )
    }

    /// The block (number 1) and its pre-state.
    pub fn build(&self) -> (BlockInput, InMemoryState) {
        let gas_sum: u64 = {
            use alloy_consensus::Transaction;
            self.txs.iter().map(|t| t.gas_limit()).sum()
        };
        let merged = self.fork >= EthereumHardfork::Paris;
        let shanghai = self.fork >= EthereumHardfork::Shanghai;
        let cancun = self.fork >= EthereumHardfork::Cancun;
        let header = Header {
            number: 1,
            timestamp: 1_700_000_000,
            beneficiary: self.coinbase,
            gas_limit: self.block_gas_limit.unwrap_or(gas_sum.max(30_000_000)),
            base_fee_per_gas: self.london().then_some(BASE_FEE),
            difficulty: if merged {
                U256::ZERO
            } else {
                U256::from(131_072)
            },
            mix_hash: B256::repeat_byte(0x42),
            withdrawals_root: shanghai.then_some(alloy_consensus::constants::EMPTY_WITHDRAWALS),
            parent_beacon_block_root: cancun.then_some(B256::repeat_byte(0x11)),
            blob_gas_used: cancun.then_some(self.blob_gas_used),
            excess_blob_gas: cancun.then_some(0),
            ..Default::default()
        };
        let block = BlockInput {
            header,
            transactions: self.txs.clone(),
            ommers: Vec::new(),
            withdrawals: shanghai.then(Vec::new),
            chain: Arc::new(self.chain()),
        };
        (block, self.state.clone())
    }

    /// The chain: [`Self::fork`] from genesis; BPO forks after BPO2 (whose
    /// parameters mainnet has not set) keep BPO2's blob parameters.
    fn chain(&self) -> ChainSpec {
        let later_bpos = [
            EthereumHardfork::Bpo3,
            EthereumHardfork::Bpo4,
            EthereumHardfork::Bpo5,
        ];
        later_bpos.into_iter().filter(|bpo| *bpo <= self.fork).fold(
            ChainSpec::with_fork_from_genesis(1, self.fork),
            |chain, bpo| chain.with_blob_params(bpo, alloy_eips::eip7840::BlobParams::bpo2()),
        )
    }
}

/// The placeholder signature of built transactions; execution uses the
/// recovered sender only.
pub fn placeholder_signature() -> Signature {
    Signature::new(U256::from(1), U256::from(1), false)
}

/// An EIP-7702 authorization delegating to `delegate`, with a valid-looking
/// signature, and the authority it recovers to (an account nobody holds the
/// key of, which is fine: execution only needs the recovery). `seed` picks
/// different authorities.
pub fn authorization(delegate: Address, nonce: u64, seed: u64) -> (SignedAuthorization, Address) {
    let inner = Authorization {
        chain_id: U256::from(1),
        address: delegate,
        nonce,
    };
    // r = x coordinate of the generator point: always on the curve.
    let r = U256::from_be_bytes(alloy_primitives::hex!(
        "79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798"
    ));
    let signed = SignedAuthorization::new_unchecked(inner, 0, r, U256::from(1000 + seed));
    let authority = signed
        .recover_authority()
        .expect("authorization signature recovers");
    (signed, authority)
}

/// The signing key numbered `key` (its secret is `key + 1`, big-endian).
fn signing_key(key: u8) -> k256::ecdsa::SigningKey {
    let mut secret = [0u8; 32];
    secret[31] = key;
    secret[30] = 1;
    k256::ecdsa::SigningKey::from_slice(&secret).expect("a secret below the curve's order")
}

/// The account of [`signing_key`] `key`.
pub fn key_address(key: u8) -> Address {
    Address::from_private_key(&signing_key(key))
}

/// An EIP-7702 authorization by the account of [`signing_key`] `key`,
/// delegating to `delegate` (none: `Address::ZERO`) at `nonce`, truly
/// signed: unlike [`authorization`], its authority stays the same whatever
/// it delegates to.
pub fn signed_authorization(key: u8, delegate: Address, nonce: u64) -> SignedAuthorization {
    let authorization = Authorization {
        chain_id: U256::from(1),
        address: delegate,
        nonce,
    };
    let hash = authorization.signature_hash();
    let (signature, recovery) = signing_key(key)
        .sign_prehash_recoverable(hash.as_slice())
        .expect("signs");
    let signed = authorization.into_signed(Signature::from((signature, recovery)));
    debug_assert_eq!(signed.recover_authority().ok(), Some(key_address(key)));
    signed
}

// ---------------------------------------------------------------------------
// Bytecode
// ---------------------------------------------------------------------------

/// EVM opcodes used by the hand-assembled contracts.
pub mod op {
    pub const STOP: u8 = 0x00;
    pub const ADD: u8 = 0x01;
    pub const SUB: u8 = 0x03;
    pub const GT: u8 = 0x11;
    pub const ISZERO: u8 = 0x15;
    pub const ADDRESS: u8 = 0x30;
    pub const BALANCE: u8 = 0x31;
    pub const CALLER: u8 = 0x33;
    pub const CALLVALUE: u8 = 0x34;
    pub const CALLDATALOAD: u8 = 0x35;
    pub const CALLDATASIZE: u8 = 0x36;
    pub const CALLDATACOPY: u8 = 0x37;
    pub const CODECOPY: u8 = 0x39;
    pub const EXTCODESIZE: u8 = 0x3b;
    pub const RETURNDATASIZE: u8 = 0x3d;
    pub const EXTCODEHASH: u8 = 0x3f;
    pub const COINBASE: u8 = 0x41;
    pub const NUMBER: u8 = 0x43;
    pub const SELFBALANCE: u8 = 0x47;
    pub const POP: u8 = 0x50;
    pub const MLOAD: u8 = 0x51;
    pub const MSTORE: u8 = 0x52;
    pub const SLOAD: u8 = 0x54;
    pub const SSTORE: u8 = 0x55;
    pub const JUMP: u8 = 0x56;
    pub const JUMPI: u8 = 0x57;
    pub const GAS: u8 = 0x5a;
    pub const JUMPDEST: u8 = 0x5b;
    pub const PUSH1: u8 = 0x60;
    pub const PUSH2: u8 = 0x61;
    pub const PUSH20: u8 = 0x73;
    pub const PUSH32: u8 = 0x7f;
    pub const DUP1: u8 = 0x80;
    pub const SWAP1: u8 = 0x90;
    pub const CREATE: u8 = 0xf0;
    pub const CALL: u8 = 0xf1;
    pub const RETURN: u8 = 0xf3;
    pub const DELEGATECALL: u8 = 0xf4;
    pub const CREATE2: u8 = 0xf5;
    pub const STATICCALL: u8 = 0xfa;
    pub const REVERT: u8 = 0xfd;
    pub const SELFDESTRUCT: u8 = 0xff;
}

/// A tiny assembler (no PUSH0, so the code runs on every fork).
#[derive(Debug, Clone, Default)]
pub struct Asm(pub Vec<u8>);

impl Asm {
    pub fn new() -> Self {
        Self::default()
    }
    /// Appends opcodes.
    pub fn op(mut self, ops: &[u8]) -> Self {
        self.0.extend_from_slice(ops);
        self
    }
    /// Pushes `value` with the shortest PUSHn (at least PUSH1).
    pub fn push(self, value: u64) -> Self {
        self.push_u256(U256::from(value))
    }
    /// Pushes a 256-bit `value` with the shortest PUSHn (at least PUSH1).
    pub fn push_u256(mut self, value: U256) -> Self {
        let bytes = value.to_be_bytes::<32>();
        let skip = bytes.iter().take_while(|b| **b == 0).count().min(31);
        let data = &bytes[skip..];
        self.0.push(op::PUSH1 + data.len() as u8 - 1);
        self.0.extend_from_slice(data);
        self
    }
    /// PUSH20 an address.
    pub fn push_addr(mut self, address: Address) -> Self {
        self.0.push(op::PUSH20);
        self.0.extend_from_slice(address.as_slice());
        self
    }
    /// SSTORE(slot, <top of stack>).
    pub fn store_top(self, slot: u64) -> Self {
        self.push(slot).op(&[op::SSTORE])
    }
    /// Returns the top of the stack as one word.
    pub fn return_top(self) -> Self {
        self.push(0)
            .op(&[op::MSTORE])
            .push(32)
            .push(0)
            .op(&[op::RETURN])
    }
    /// The current code offset.
    pub fn pc(&self) -> usize {
        self.0.len()
    }
    /// PUSH2 placeholder for a jump target; returns where to patch it.
    pub fn push_label(mut self, at: &mut usize) -> Self {
        self.0.push(op::PUSH2);
        *at = self.0.len();
        self.0.extend_from_slice(&[0, 0]);
        self
    }
    /// Patches a label placeholder to point at `target`.
    pub fn patch(mut self, at: usize, target: usize) -> Self {
        self.0[at..at + 2].copy_from_slice(&(target as u16).to_be_bytes());
        self
    }
    pub fn build(self) -> Vec<u8> {
        self.0
    }
}

/// Init code that runs `constructor` and then returns `runtime` as the code.
pub fn init_code(constructor: Vec<u8>, runtime: &[u8]) -> Vec<u8> {
    // constructor, PUSH2 len, PUSH2 offset, PUSH1 0, CODECOPY, PUSH2 len, PUSH1 0, RETURN
    let offset = constructor.len() + 3 + 3 + 2 + 1 + 3 + 2 + 1;
    let len = runtime.len() as u16;
    let mut code = constructor;
    code.push(op::PUSH2);
    code.extend_from_slice(&len.to_be_bytes());
    code.push(op::PUSH2);
    code.extend_from_slice(&(offset as u16).to_be_bytes());
    code.extend_from_slice(&[op::PUSH1, 0, op::CODECOPY, op::PUSH2]);
    code.extend_from_slice(&len.to_be_bytes());
    code.extend_from_slice(&[op::PUSH1, 0, op::RETURN]);
    assert_eq!(code.len(), offset);
    code.extend_from_slice(runtime);
    code
}

/// `SSTORE(0, CALLER); SSTORE(1, CALLVALUE)`.
pub fn store_caller_value() -> Vec<u8> {
    Asm::new()
        .op(&[op::CALLER])
        .store_top(0)
        .op(&[op::CALLVALUE])
        .store_top(1)
        .op(&[op::STOP])
        .build()
}

/// Increments slot 0 and returns the new value (a hot slot).
pub fn counter() -> Vec<u8> {
    Asm::new()
        .push(0)
        .op(&[op::SLOAD])
        .push(1)
        .op(&[op::ADD, op::DUP1])
        .store_top(0)
        .return_top()
        .build()
}

/// `SELFDESTRUCT(beneficiary)`.
pub fn selfdestruct_to(beneficiary: Address) -> Vec<u8> {
    Asm::new()
        .push_addr(beneficiary)
        .op(&[op::SELFDESTRUCT])
        .build()
}

/// `SELFDESTRUCT(CALLER)`.
pub fn selfdestruct_to_caller() -> Vec<u8> {
    vec![op::CALLER, op::SELFDESTRUCT]
}

/// Stores `BALANCE(COINBASE)` at the slot given by calldata word 0.
pub fn coinbase_balance_probe() -> Vec<u8> {
    Asm::new()
        .op(&[op::COINBASE, op::BALANCE])
        .push(0)
        .op(&[op::CALLDATALOAD, op::SSTORE, op::STOP])
        .build()
}

/// Pays the beneficiary 1 wei of its own, `block.coinbase.transfer(1)`
/// (`CALL(gas, COINBASE, 1, 0, 0, 0, 0)`), as trading bots pay builders.
pub fn pays_the_beneficiary() -> Vec<u8> {
    pays_one_wei(&[op::COINBASE])
}

/// Pays 1 wei of its own to the address `target` pushes:
/// `CALL(gas, <target>, 1, 0, 0, 0, 0)`.
pub fn pays_one_wei(target: &[u8]) -> Vec<u8> {
    Asm::new()
        .push(0)
        .push(0)
        .push(0)
        .push(0)
        .push(1)
        .op(target)
        .op(&[op::GAS, op::CALL, op::POP, op::STOP])
        .build()
}

/// Stores `BALANCE(calldata word 0)` at the slot given by calldata word 1,
/// and `EXTCODESIZE` of it at that slot + 1.
pub fn balance_probe() -> Vec<u8> {
    Asm::new()
        .push(0)
        .op(&[op::CALLDATALOAD, op::BALANCE])
        .push(32)
        .op(&[op::CALLDATALOAD, op::SSTORE])
        .push(0)
        .op(&[op::CALLDATALOAD, op::EXTCODESIZE])
        .push(32)
        .op(&[op::CALLDATALOAD])
        .push(1)
        .op(&[op::ADD, op::SSTORE, op::STOP])
        .build()
}

/// Calls the address in calldata word 0 with the value in word 1 (gas 0, so
/// only the stipend), and stores the gas the CALL cost at the slot given by
/// word 2, and EXTCODESIZE of the target at that slot + 1.
pub fn call_probe() -> Vec<u8> {
    Asm::new()
        .op(&[op::GAS])
        .push(0) // ret size
        .push(0) // ret offset
        .push(0) // args size
        .push(0) // args offset
        .push(32)
        .op(&[op::CALLDATALOAD]) // value
        .push(0)
        .op(&[op::CALLDATALOAD]) // target
        .push(0) // gas
        .op(&[op::CALL, op::POP, op::GAS, op::SWAP1, op::SUB])
        .push(64)
        .op(&[op::CALLDATALOAD, op::SSTORE])
        .push(0)
        .op(&[op::CALLDATALOAD, op::EXTCODESIZE])
        .push(64)
        .op(&[op::CALLDATALOAD])
        .push(1)
        .op(&[op::ADD, op::SSTORE, op::STOP])
        .build()
}

/// Calls `target` with the whole calldata as input, stores the success flag
/// at slot `target + 100`, the first returned word at slot `target`, and
/// RETURNDATASIZE at slot `target + 200`.
pub fn precompile_caller(target: Address) -> Vec<u8> {
    let key = U256::from_be_slice(target.as_slice());
    Asm::new()
        .op(&[op::CALLDATASIZE])
        .push(0)
        .push(0)
        .op(&[op::CALLDATACOPY])
        .push(32) // ret size
        .push(0) // ret offset
        .op(&[op::CALLDATASIZE]) // args size
        .push(0) // args offset
        .push(0) // value
        .push_addr(target)
        .op(&[op::GAS, op::CALL])
        .push_u256(key + U256::from(100))
        .op(&[op::SSTORE])
        .push(0)
        .op(&[op::MLOAD])
        .push_u256(key)
        .op(&[op::SSTORE, op::RETURNDATASIZE])
        .push_u256(key + U256::from(200))
        .op(&[op::SSTORE, op::STOP])
        .build()
}

/// A factory: CREATE2 (salt 0) of the calldata as init code, forwarding
/// CALLVALUE; stores the new address (or 0) at slot 0 and returns it.
pub fn create2_factory() -> Vec<u8> {
    factory(true)
}

/// A factory like [`create2_factory`] but with CREATE (address by the
/// factory's nonce).
pub fn create_factory() -> Vec<u8> {
    factory(false)
}

fn factory(create2: bool) -> Vec<u8> {
    let mut asm = Asm::new()
        .op(&[op::CALLDATASIZE])
        .push(0)
        .push(0)
        .op(&[op::CALLDATACOPY]);
    if create2 {
        asm = asm.push(0); // salt
    }
    asm.op(&[op::CALLDATASIZE])
        .push(0)
        .op(&[
            op::CALLVALUE,
            if create2 { op::CREATE2 } else { op::CREATE },
        ])
        .op(&[op::DUP1])
        .store_top(0)
        .return_top()
        .build()
}

/// The runtime of the "child" contract: called with calldata it
/// SELFDESTRUCTs to the caller; called without it returns slots 1 and 2.
pub fn child_runtime() -> Vec<u8> {
    let mut label = 0;
    let asm = Asm::new()
        .op(&[op::CALLDATASIZE])
        .push_label(&mut label)
        .op(&[op::JUMPI])
        .push(1)
        .op(&[op::SLOAD])
        .push(0)
        .op(&[op::MSTORE])
        .push(2)
        .op(&[op::SLOAD])
        .push(32)
        .op(&[op::MSTORE])
        .push(64)
        .push(0)
        .op(&[op::RETURN]);
    let target = asm.pc();
    asm.patch(label, target)
        .op(&[op::JUMPDEST, op::CALLER, op::SELFDESTRUCT])
        .build()
}

/// Init code of the child: stores CALLVALUE at slot 1 and CALLVALUE + 1 at
/// slot 2, then returns [`child_runtime`].
pub fn child_init() -> Vec<u8> {
    let constructor = Asm::new()
        .op(&[op::CALLVALUE])
        .store_top(1)
        .op(&[op::CALLVALUE])
        .push(1)
        .op(&[op::ADD])
        .store_top(2)
        .build();
    init_code(constructor, &child_runtime())
}

/// Init code whose constructor SELFDESTRUCTs to the caller at once.
pub fn selfdestructing_init() -> Vec<u8> {
    selfdestruct_to_caller()
}

/// The address [`create2_factory`] at `factory` gives `init`.
pub fn create2_address(factory: Address, init: &[u8]) -> Address {
    factory.create2_from_code(B256::ZERO, init)
}

/// A 32-byte big-endian word.
pub fn word(value: u64) -> [u8; 32] {
    U256::from(value).to_be_bytes()
}

/// An address as a 32-byte word.
pub fn addr_word(address: Address) -> [u8; 32] {
    U256::from_be_slice(address.as_slice()).to_be_bytes()
}

/// Concatenated words as calldata.
pub fn calldata(words: &[[u8; 32]]) -> Vec<u8> {
    words.concat()
}

/// Stores `EXTCODEHASH(calldata word 0)` at the slot given by calldata word 1
/// (0 for an account that does not exist, keccak("") for an empty one).
pub fn exists_probe() -> Vec<u8> {
    Asm::new()
        .push(0)
        .op(&[op::CALLDATALOAD, op::EXTCODEHASH])
        .push(32)
        .op(&[op::CALLDATALOAD, op::SSTORE, op::STOP])
        .build()
}

/// `CALL(gas, <target pushed by target>, 0, 0, 0, 0, 0)`, its result dropped.
pub fn call_to(code: Asm, target: &[u8]) -> Asm {
    code.push(0)
        .push(0)
        .push(0)
        .push(0)
        .push(0)
        .op(target)
        .op(&[op::GAS, op::CALL, op::POP])
}

/// Counts in transient storage: `TSTORE(0, TLOAD(0) + 1)`, then stores
/// the count at the caller's slot and returns it. A transaction that
/// calls it once sees 1; a second call in the same transaction, 2.
pub fn transient_counter() -> Vec<u8> {
    const TLOAD: u8 = 0x5c;
    const TSTORE: u8 = 0x5d;
    Asm::new()
        .push(0)
        .op(&[TLOAD])
        .push(1)
        .op(&[op::ADD, op::DUP1])
        .push(0)
        .op(&[TSTORE, op::DUP1, op::CALLER, op::SSTORE])
        .return_top()
        .build()
}

/// A WETH-like vault: accepts value without calldata; with calldata, sends
/// word 0 wei to the caller (stipend only) and stores the success flag at
/// the slot in word 1.
pub fn vault() -> Vec<u8> {
    let mut withdraw = 0;
    let asm = Asm::new()
        .op(&[op::CALLDATASIZE])
        .push_label(&mut withdraw)
        .op(&[op::JUMPI, op::STOP]);
    let target = asm.pc();
    sends(
        asm.patch(withdraw, target).op(&[op::JUMPDEST]),
        op::CALL,
        &[op::CALLER],
        &[op::PUSH1, 0, op::CALLDATALOAD],
    )
    .push(32)
    .op(&[op::CALLDATALOAD, op::SSTORE, op::STOP])
    .build()
}

/// `opcode(0, to, value, 0, 0, 0, 0)` with `to` and `value` pushed by the
/// given code; leaves the success flag on the stack.
pub fn sends(code: Asm, opcode: u8, to: &[u8], value: &[u8]) -> Asm {
    code.push(0)
        .push(0)
        .push(0)
        .push(0)
        .op(value)
        .op(to)
        .push(0)
        .op(&[opcode])
}

/// Forwards CALLVALUE to the address in word 0.
pub fn forwarder() -> Vec<u8> {
    let to = [op::PUSH1, 0, op::CALLDATALOAD];
    sends(Asm::new(), op::CALL, &to, &[op::CALLVALUE])
        .op(&[op::POP, op::STOP])
        .build()
}

/// Calls the caller's address plus zero: arithmetic the reach analysis does
/// not follow, so a call into this code cannot be predicted.
pub fn calls_an_unknown_account() -> Vec<u8> {
    let unknown_target = [op::CALLER, op::PUSH1, 0, op::ADD];
    call_to(Asm::new(), &unknown_target).op(&[op::STOP]).build()
}

/// A pair-like contract: calls the contract in its slot 0, then the address
/// in the input's first word.
pub fn calls_slot_zero_and_input() -> Vec<u8> {
    let code = call_to(Asm::new(), &[op::PUSH1, 0, op::SLOAD]);
    call_to(code, &[op::PUSH1, 0, op::CALLDATALOAD])
        .op(&[op::STOP])
        .build()
}

/// Deploys `code` at `pair`, with `token` in its slot 0.
pub fn deploy_pair(b: &mut BlockBuilder, pair: Address, code: Vec<u8>, token: Address) {
    b.contract(pair, code);
    let mut account = b.state.get(&pair).cloned().expect("just deployed");
    account
        .storage
        .insert(U256::ZERO, U256::from_be_slice(token.as_slice()));
    b.state.insert_account(pair, account);
}

/// `count` calls into pair-like contracts ([`calls_slot_zero_and_input`]),
/// the `i`th pointing at `token(i)` (running [`counter`]), each from its own
/// sender and with a recipient of its own in the input.
pub fn calls_into_pairs(count: u64, token: impl Fn(u64) -> Address) -> (BlockInput, InMemoryState) {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    b.fund_all((1..=count).map(addr));
    for i in 1..=count {
        let pair = addr(500 + i);
        deploy_pair(&mut b, pair, calls_slot_zero_and_input(), token(i));
        b.contract(token(i), counter());
        b.call(addr(i), pair, 0, addr_word(addr(900 + i)).to_vec());
    }
    b.build()
}
