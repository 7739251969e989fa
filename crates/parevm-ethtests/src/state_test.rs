//! GeneralStateTests: each case's transaction runs as a one-transaction block
//! through both of parevm's executors.

use crate::{
    Failure, Report, RunConfig,
    common::{self, chain_spec, logs_hash, state_root},
};
use alloy_consensus::{
    Header, ReceiptEnvelope, Signed, TxEip1559, TxEip2930, TxEip4844, TxEip4844Variant, TxEip7702,
    TxEnvelope, TxLegacy, transaction::Recovered,
};
use alloy_eips::eip2930::AccessList;
use alloy_primitives::{Address, Bytes, Signature, TxKind, U256, keccak256, map::AddressMap};
use parevm::{
    AccountChange, AccountState, BlockInput, BlockResult, ChainSpec, InMemoryState, ParallelConfig,
    StateChanges, TxOutcome, execute_parallel, execute_sequential,
};
use revm::primitives::{KECCAK_EMPTY, hardfork::SpecId};
use revm_statetest_types::{AccountInfo, SpecName, Test, TestSuite, TestUnit, TransactionParts};
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

/// A parsed state test file.
#[derive(Debug)]
pub struct StateSuite {
    /// The tests by name.
    pub tests: TestSuite,
    /// For each test whose transaction has a number too large for its field
    /// (written `0x:bigint ...`), where.
    pub oversized: HashMap<String, Oversized>,
}

/// The transaction fields of a test that hold numbers beyond 256 bits (or
/// beyond what the transaction format allows). No transaction with them can
/// be encoded, so every case using them must expect an exception.
#[derive(Debug, Default)]
pub struct Oversized {
    /// A scalar field (nonce, gas price, ...) is oversized: every case.
    pub all: bool,
    /// Oversized `data` entries.
    pub data: HashSet<usize>,
    /// Oversized `gasLimit` entries.
    pub gas: HashSet<usize>,
    /// Oversized `value` entries.
    pub value: HashSet<usize>,
}

impl Oversized {
    fn applies(&self, case: &Test) -> bool {
        let idx = &case.indexes;
        self.all
            || self.data.contains(&idx.data)
            || self.gas.contains(&idx.gas)
            || self.value.contains(&idx.value)
    }
}

const BIGINT: &str = "0x:bigint ";

/// Parses a state test file. Numbers written `0x:bigint ...` (too large for
/// any transaction) are replaced by zero and recorded in
/// [`StateSuite::oversized`].
pub fn parse_suite(mut json: serde_json::Value) -> Result<StateSuite, String> {
    let mut oversized = HashMap::new();
    if let Some(tests) = json.as_object_mut() {
        for (name, test) in tests.iter_mut() {
            let Some(tx) = test.get_mut("transaction").and_then(|t| t.as_object_mut()) else {
                continue;
            };
            let mut found = Oversized::default();
            let mut any = false;
            for (field, value) in tx.iter_mut() {
                let indices = match field.as_str() {
                    "data" => Some(&mut found.data),
                    "gasLimit" => Some(&mut found.gas),
                    "value" => Some(&mut found.value),
                    _ => None,
                };
                match (value, indices) {
                    (serde_json::Value::Array(items), Some(indices)) => {
                        for (i, item) in items.iter_mut().enumerate() {
                            if item.as_str().is_some_and(|s| s.starts_with(BIGINT)) {
                                *item = "0x00".into();
                                indices.insert(i);
                                any = true;
                            }
                        }
                    }
                    (item, _) => {
                        if item.as_str().is_some_and(|s| s.starts_with(BIGINT)) {
                            *item = "0x00".into();
                            found.all = true;
                            any = true;
                        }
                    }
                }
            }
            if any {
                oversized.insert(name.clone(), found);
            }
        }
    }
    let tests = serde_json::from_value(json).map_err(|e| e.to_string())?;
    Ok(StateSuite { tests, oversized })
}

/// State tests of EIP-7610 (contract creation must fail on an address with
/// pre-existing storage). Such an address cannot arise on Ethereum (it would
/// need a keccak collision), and revm checks only code and nonce, as do the
/// other revm-based runners (revme skips these files).
const EIP7610_TESTS: &[&str] = &[
    "InitCollision",
    "InitCollisionParis",
    "RevertInCreateInInit",
    "RevertInCreateInInit_Paris",
    "RevertInCreateInInitCreate2",
    "RevertInCreateInInitCreate2Paris",
    "create2collisionStorage",
    "create2collisionStorageParis",
    "dynamicAccountOverwriteEmpty",
    "dynamicAccountOverwriteEmpty_Paris",
];

/// Runs every case of a parsed state test file.
pub fn run_suite(file: &str, suite: &StateSuite, config: &RunConfig, report: &mut Report) {
    for (name, unit) in &suite.tests.0 {
        if EIP7610_TESTS.contains(&name.as_str()) {
            let cases = unit.post.values().map(Vec::len).sum();
            report.skip(
                "EIP-7610 (creation collides with pre-existing storage; revm checks code and nonce only)",
                cases,
            );
            continue;
        }
        run_unit(file, name, unit, suite.oversized.get(name), config, report);
    }
}

fn run_unit(
    file: &str,
    name: &str,
    unit: &TestUnit,
    oversized: Option<&Oversized>,
    config: &RunConfig,
    report: &mut Report,
) {
    let chain_id = unit
        .env
        .current_chain_id
        .map_or(1, |id| id.try_into().unwrap_or(u64::MAX));
    let pre = pre_state(unit);
    for (spec_name, cases) in &unit.post {
        let fork = format!("{spec_name:?}");
        if *spec_name == SpecName::Unknown {
            report.skip("unknown fork name", cases.len());
            continue;
        }
        let Some(chain) = chain_spec(&fork, chain_id) else {
            report.skip(common::unsupported_network(&fork), cases.len());
            continue;
        };
        let chain = Arc::new(chain);
        for case in cases {
            let idx = &case.indexes;
            let result = if oversized.is_some_and(|o| o.applies(case)) {
                // No such transaction can be encoded, let alone executed.
                match case.expect_exception {
                    Some(_) => Ok(()),
                    None => Err(
                        "a transaction field exceeds its size but no exception is expected".into(),
                    ),
                }
            } else {
                run_case(unit, case, &pre, &chain, config)
            };
            match result {
                Ok(()) => report.passed += 1,
                Err(message) => report.failures.push(Failure {
                    file: file.to_string(),
                    test: name.to_string(),
                    fork: fork.clone(),
                    case: Some(format!("d{}g{}v{}", idx.data, idx.gas, idx.value)),
                    message,
                }),
            }
        }
    }
}

/// The pre-state, with the block hashes the reference runners use for
/// `BLOCKHASH`: `keccak256` of the block number in decimal.
fn pre_state(unit: &TestUnit) -> InMemoryState {
    let mut state = in_memory(&unit.pre);
    let number: u64 = unit.env.current_number.saturating_to();
    for n in number.saturating_sub(256)..number {
        state.insert_block_hash(n, keccak256(n.to_string().as_bytes()));
    }
    state
}

fn header(unit: &TestUnit, spec: SpecId) -> Header {
    let env = &unit.env;
    let mut header = Header {
        parent_hash: env.previous_hash.unwrap_or_default(),
        beneficiary: env.current_coinbase,
        difficulty: env.current_difficulty,
        number: env.current_number.saturating_to(),
        gas_limit: env.current_gas_limit.saturating_to(),
        timestamp: env.current_timestamp.saturating_to(),
        ..Default::default()
    };
    if spec.is_enabled_in(SpecId::LONDON) {
        header.base_fee_per_gas = Some(env.current_base_fee.unwrap_or_default().saturating_to());
    }
    if spec.is_enabled_in(SpecId::MERGE) {
        header.mix_hash = env.current_random.unwrap_or_default();
    }
    if spec.is_enabled_in(SpecId::SHANGHAI) {
        header.withdrawals_root = Some(alloy_trie::EMPTY_ROOT_HASH);
    }
    if spec.is_enabled_in(SpecId::CANCUN) {
        header.excess_blob_gas = Some(
            env.current_excess_blob_gas
                .unwrap_or_default()
                .saturating_to(),
        );
        header.blob_gas_used = Some(0);
        header.parent_beacon_block_root = Some(env.current_beacon_root.unwrap_or_default());
    }
    header
}

/// The block reward a pre-merge block pays its beneficiary. State tests have
/// none (they check the state after the transaction alone), so it is taken
/// off again.
fn block_reward(spec: SpecId) -> Option<U256> {
    const ETH: u128 = 1_000_000_000_000_000_000;
    if spec.is_enabled_in(SpecId::MERGE) {
        None
    } else if spec.is_enabled_in(SpecId::PETERSBURG) {
        Some(U256::from(2 * ETH))
    } else if spec.is_enabled_in(SpecId::BYZANTIUM) {
        Some(U256::from(3 * ETH))
    } else {
        Some(U256::from(5 * ETH))
    }
}

fn run_case(
    unit: &TestUnit,
    case: &Test,
    pre: &InMemoryState,
    chain: &Arc<ChainSpec>,
    config: &RunConfig,
) -> Result<(), String> {
    let header = header(unit, SpecId::FRONTIER);
    let spec = chain.spec_at(header.number, header.timestamp);
    let header = self::header(unit, spec);
    let expects_exception = case.expect_exception.is_some();

    let tx = match transaction(&unit.transaction, case, chain.chain_id)? {
        Some(tx) => tx,
        None if expects_exception => return Ok(()),
        None => return Err("the transaction's fields make no valid transaction type".into()),
    };
    let block = BlockInput {
        header,
        transactions: vec![tx],
        ommers: Vec::new(),
        withdrawals: spec.is_enabled_in(SpecId::SHANGHAI).then(Vec::new),
        chain: chain.clone(),
    };
    // Both executors at once: a few cases run for a minute or more.
    let (sequential, parallel) = rayon::join(
        || execute_sequential(&block, pre),
        || {
            execute_parallel(
                &block,
                pre,
                &ParallelConfig::never_fall_back(config.threads),
            )
        },
    );
    let sequential = sequential.map_err(|e| format!("sequential: {e}"))?;
    let parallel = parallel.map_err(|e| format!("parallel: {e}"))?;
    if let Some(diff) = sequential.first_difference(&parallel) {
        return Err(format!("parallel differs from sequential: {diff}"));
    }
    check_result(&block, case, pre, &sequential, spec)
}

fn check_result(
    block: &BlockInput,
    case: &Test,
    pre: &InMemoryState,
    result: &BlockResult,
    spec: SpecId,
) -> Result<(), String> {
    let tx = &result.transactions[0];
    match (&case.expect_exception, &tx.outcome) {
        (Some(_), TxOutcome::Invalid { .. }) => {}
        (Some(expected), outcome) => {
            return Err(format!(
                "expected exception {expected}, got {}",
                outcome_name(outcome)
            ));
        }
        (None, TxOutcome::Invalid { reason }) => {
            return Err(format!("transaction rejected: {reason}"));
        }
        (None, _) => {}
    }

    let mut post = pre.clone();
    post.apply(&result.state);
    if let Some(reward) = block_reward(spec) {
        remove_reward(&mut post, block.header.beneficiary, reward, spec);
    }
    let root = state_root(&post);
    if root != case.hash {
        let mut message = format!("state root {root} != expected {}", case.hash);
        if !case.post_state.is_empty() {
            let expected = expected_state(case);
            if let Some(diff) = common::first_account_difference(&post, &expected) {
                message.push_str(&format!(" ({diff})"));
            }
        }
        return Err(message);
    }
    let logs: Vec<_> = tx
        .receipt
        .as_ref()
        .map(|r: &ReceiptEnvelope| r.logs().to_vec())
        .unwrap_or_default();
    let logs_hash = logs_hash(&logs);
    if logs_hash != case.logs {
        return Err(format!(
            "logs hash {logs_hash} != expected {} ({} logs)",
            case.logs,
            logs.len()
        ));
    }
    Ok(())
}

fn expected_state(case: &Test) -> InMemoryState {
    in_memory(&case.post_state)
}

/// A test's `pre` or `postState` accounts as a state.
fn in_memory(accounts: &AddressMap<AccountInfo>) -> InMemoryState {
    let mut state = InMemoryState::new();
    for (address, account) in accounts {
        let storage = account.storage.iter().map(|(k, v)| (*k, *v)).collect();
        let account = common::account(account.balance, account.nonce, &account.code, storage);
        state.insert_account(*address, account);
    }
    state
}

/// Takes the block reward off the beneficiary again. What remains is the
/// beneficiary as the reference runners leave it: touched with a zero-value
/// transfer, so an empty one is deleted from Spurious Dragon on.
fn remove_reward(post: &mut InMemoryState, beneficiary: Address, reward: U256, spec: SpecId) {
    let Some(account) = post.get(&beneficiary) else {
        return;
    };
    let balance = account.info.balance.saturating_sub(reward);
    let empty =
        balance.is_zero() && account.info.nonce == 0 && account.info.code_hash == KECCAK_EMPTY;
    let info = if empty && spec.is_enabled_in(SpecId::SPURIOUS_DRAGON) {
        None
    } else {
        Some(AccountState {
            balance,
            nonce: account.info.nonce,
            code_hash: account.info.code_hash,
            code: None,
        })
    };
    let mut changes = StateChanges::default();
    changes.accounts.insert(
        beneficiary,
        AccountChange {
            info,
            storage_wiped: false,
            storage: Default::default(),
        },
    );
    post.apply(&changes);
}

fn outcome_name(outcome: &TxOutcome) -> String {
    match outcome {
        TxOutcome::Success { .. } => "success".into(),
        TxOutcome::Revert { .. } => "revert".into(),
        TxOutcome::Halt { reason, .. } => format!("halt ({reason})"),
        TxOutcome::Invalid { reason } => format!("invalid ({reason})"),
    }
}

/// The case's transaction as an envelope of its type, with its sender. The
/// signature is a placeholder: execution uses only the sender, and the tests
/// give it (or the secret key it derives from). `Ok(None)` if the fields make
/// no valid transaction type (e.g. a blob transaction without a recipient).
fn transaction(
    parts: &TransactionParts,
    case: &Test,
    chain_id: u64,
) -> Result<Option<Recovered<TxEnvelope>>, String> {
    let sender = match (parts.sender, parts.secret_key) {
        (Some(sender), _) => sender,
        (None, Some(key)) => revm_statetest_types::recover_address(key.as_slice())
            .ok_or_else(|| format!("cannot derive the sender from secret key {key}"))?,
        (None, None) => return Ok(None),
    };
    let Some(tx_type) = parts.tx_type(case.indexes.data) else {
        return Ok(None);
    };
    let fields = Fields::of(parts, case, chain_id)?;
    let envelope = envelope(tx_type, fields, parts)?;
    Ok(envelope.map(|envelope| Recovered::new_unchecked(envelope, sender)))
}

/// The fields every transaction type shares, as the case picks them.
struct Fields {
    nonce: u64,
    gas_limit: u64,
    value: U256,
    input: Bytes,
    kind: TxKind,
    access_list: AccessList,
    /// The legacy gas price (or the fee cap, for typed cases without one).
    gas_price: u128,
    max_fee_per_gas: u128,
    max_priority_fee_per_gas: u128,
    /// The chain id as given (a legacy transaction may have none).
    chain_id: Option<u64>,
    /// The chain id of a typed transaction: as given, else the chain's.
    typed_chain_id: u64,
}

impl Fields {
    fn of(parts: &TransactionParts, case: &Test, chain_id: u64) -> Result<Self, String> {
        let idx = &case.indexes;
        let tx_chain_id = parts.chain_id.map(|id| id.saturating_to());
        Ok(Self {
            nonce: parts.nonce.saturating_to(),
            gas_limit: parts
                .gas_limit
                .get(idx.gas)
                .ok_or("gas index out of range")?
                .saturating_to(),
            value: *parts
                .value
                .get(idx.value)
                .ok_or("value index out of range")?,
            input: parts
                .data
                .get(idx.data)
                .cloned()
                .ok_or("data index out of range")?,
            kind: parts.to.map_or(TxKind::Create, TxKind::Call),
            access_list: parts
                .access_lists
                .get(idx.data)
                .cloned()
                .flatten()
                .unwrap_or_default(),
            gas_price: parts
                .gas_price
                .or(parts.max_fee_per_gas)
                .unwrap_or_default()
                .saturating_to(),
            max_fee_per_gas: parts.max_fee_per_gas.unwrap_or_default().saturating_to(),
            max_priority_fee_per_gas: parts
                .max_priority_fee_per_gas
                .unwrap_or_default()
                .saturating_to(),
            chain_id: tx_chain_id,
            typed_chain_id: tx_chain_id.unwrap_or(chain_id),
        })
    }
}

/// `fields` as a transaction of `tx_type`, with a placeholder signature;
/// `None` for a blob or set-code transaction without a recipient.
fn envelope(
    tx_type: revm::context::TransactionType,
    f: Fields,
    parts: &TransactionParts,
) -> Result<Option<TxEnvelope>, String> {
    use revm::context::TransactionType;
    let signature = Signature::new(U256::from(1), U256::from(1), false);
    Ok(Some(match tx_type {
        TransactionType::Legacy => TxEnvelope::Legacy(Signed::new_unhashed(
            TxLegacy {
                chain_id: f.chain_id,
                nonce: f.nonce,
                gas_price: f.gas_price,
                gas_limit: f.gas_limit,
                to: f.kind,
                value: f.value,
                input: f.input,
            },
            signature,
        )),
        TransactionType::Eip2930 => TxEnvelope::Eip2930(Signed::new_unhashed(
            TxEip2930 {
                chain_id: f.typed_chain_id,
                nonce: f.nonce,
                gas_price: f.gas_price,
                gas_limit: f.gas_limit,
                to: f.kind,
                value: f.value,
                access_list: f.access_list,
                input: f.input,
            },
            signature,
        )),
        TransactionType::Eip1559 => TxEnvelope::Eip1559(Signed::new_unhashed(
            TxEip1559 {
                chain_id: f.typed_chain_id,
                nonce: f.nonce,
                gas_limit: f.gas_limit,
                max_fee_per_gas: f.max_fee_per_gas,
                max_priority_fee_per_gas: f.max_priority_fee_per_gas,
                to: f.kind,
                value: f.value,
                access_list: f.access_list,
                input: f.input,
            },
            signature,
        )),
        TransactionType::Eip4844 => return Ok(blob_envelope(f, parts, signature)),
        TransactionType::Eip7702 => return Ok(delegation_envelope(f, parts, signature)),
        other => return Err(format!("transaction type {other:?} not supported")),
    }))
}

/// A blob transaction (EIP-4844), which cannot create a contract: `None`
/// for a creation.
fn blob_envelope(f: Fields, parts: &TransactionParts, signature: Signature) -> Option<TxEnvelope> {
    let TxKind::Call(to) = f.kind else {
        return None;
    };
    let tx = TxEip4844 {
        chain_id: f.typed_chain_id,
        nonce: f.nonce,
        gas_limit: f.gas_limit,
        max_fee_per_gas: f.max_fee_per_gas,
        max_priority_fee_per_gas: f.max_priority_fee_per_gas,
        to,
        value: f.value,
        access_list: f.access_list,
        blob_versioned_hashes: parts.blob_versioned_hashes.clone(),
        max_fee_per_blob_gas: parts
            .max_fee_per_blob_gas
            .unwrap_or_default()
            .saturating_to(),
        input: f.input,
    };
    let tx = TxEip4844Variant::TxEip4844(tx);
    Some(TxEnvelope::Eip4844(Signed::new_unhashed(tx, signature)))
}

/// A transaction setting delegations (EIP-7702), which cannot create a
/// contract: `None` for a creation.
fn delegation_envelope(
    f: Fields,
    parts: &TransactionParts,
    signature: Signature,
) -> Option<TxEnvelope> {
    let TxKind::Call(to) = f.kind else {
        return None;
    };
    let authorization_list = parts.authorization_list.clone().unwrap_or_default();
    let tx = TxEip7702 {
        chain_id: f.typed_chain_id,
        nonce: f.nonce,
        gas_limit: f.gas_limit,
        max_fee_per_gas: f.max_fee_per_gas,
        max_priority_fee_per_gas: f.max_priority_fee_per_gas,
        to,
        value: f.value,
        access_list: f.access_list,
        authorization_list: authorization_list.into_iter().map(Into::into).collect(),
        input: f.input,
    };
    Some(TxEnvelope::Eip7702(Signed::new_unhashed(tx, signature)))
}
