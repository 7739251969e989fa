//! BlockchainTests: the blocks of each test execute in order with
//! [`parevm::execute_parallel`], each checked against its header, and the
//! final state against the test's `postState` / `postStateHash`.

use crate::{Failure, Report, RunConfig, common};
use alloy_consensus::{Block, TxEnvelope, transaction::SignerRecoverable};
use alloy_primitives::{Address, B256, Bytes, U256, map::HashMap};
use alloy_rlp::Decodable;
use parevm::{
    BlockInput, ChainSpec, InMemoryState, ParallelConfig, execute_parallel, execute_sequential,
    verify::{verify_against_header, verify_body},
};
use serde::Deserialize;
use std::{collections::BTreeMap, sync::Arc};

/// A blockchain test file: tests by name.
#[derive(Debug, Deserialize)]
pub struct BlockchainSuite(pub BTreeMap<String, BlockchainTest>);

/// One blockchain test (the fields parevm uses).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockchainTest {
    /// The genesis header (its hash and state root are used).
    pub genesis_block_header: GenesisHeader,
    /// The blocks, in the order they are imported.
    pub blocks: Vec<TestBlock>,
    /// The accounts after the last block.
    pub post_state: Option<BTreeMap<Address, TestAccount>>,
    /// The state root after the last block, instead of `postState`.
    pub post_state_hash: Option<B256>,
    /// The genesis state.
    pub pre: BTreeMap<Address, TestAccount>,
    /// The head of the canonical chain after all blocks.
    pub lastblockhash: B256,
    /// The fork (or transition) network.
    pub network: String,
}

/// The genesis header fields parevm needs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenesisHeader {
    /// Block hash.
    pub hash: B256,
    /// State root.
    pub state_root: B256,
    /// Block number (0 in practice).
    #[serde(default)]
    pub number: U256,
}

/// A block of a blockchain test.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestBlock {
    /// The RLP-encoded block.
    pub rlp: Bytes,
    /// Set when the block is invalid and must be rejected.
    pub expect_exception: Option<String>,
}

/// An account of `pre` / `postState`.
#[derive(Debug, Deserialize)]
pub struct TestAccount {
    /// Balance.
    pub balance: U256,
    /// Code.
    pub code: Bytes,
    /// Nonce.
    pub nonce: U256,
    /// Storage.
    pub storage: BTreeMap<U256, U256>,
}

fn to_state(accounts: &BTreeMap<Address, TestAccount>) -> InMemoryState {
    let mut state = InMemoryState::new();
    for (address, account) in accounts {
        let storage: HashMap<U256, U256> = account.storage.iter().map(|(k, v)| (*k, *v)).collect();
        state.insert_account(
            *address,
            common::account(
                account.balance,
                account.nonce.saturating_to(),
                &account.code,
                storage,
            ),
        );
    }
    state
}

/// Runs every test of a parsed blockchain test file.
pub fn run_suite(file: &str, suite: &BlockchainSuite, config: &RunConfig, report: &mut Report) {
    for (name, test) in &suite.0 {
        if test.blocks.iter().any(|b| b.expect_exception.is_some()) {
            report.skip(
                "blockchain test with invalid blocks (header validation is outside parevm)",
                1,
            );
            continue;
        }
        let Some(chain) = common::chain_spec(&test.network, 1) else {
            report.skip(common::unsupported_network(&test.network), 1);
            continue;
        };
        match run_test(test, Arc::new(chain), config) {
            Ok(()) => report.passed += 1,
            Err((block, message)) => report.failures.push(Failure {
                file: file.to_string(),
                test: name.clone(),
                fork: test.network.clone(),
                case: block.map(|b| format!("block {b}")),
                message,
            }),
        }
    }
}

type TestError = (Option<u64>, String);

fn run_test(
    test: &BlockchainTest,
    chain: Arc<ChainSpec>,
    config: &RunConfig,
) -> Result<(), TestError> {
    let mut import = Import {
        states: HashMap::default(),
        chain,
        parallel: ParallelConfig::never_fall_back(config.threads),
    };
    import
        .states
        .insert(test.genesis_block_header.hash, Arc::new(genesis(test)?));
    for (index, test_block) in test.blocks.iter().enumerate() {
        import.block(index, test_block)?;
    }
    check_post_state(test, &import.states)
}

/// The genesis state, checked against the genesis header's state root.
fn genesis(test: &BlockchainTest) -> Result<InMemoryState, TestError> {
    let header = &test.genesis_block_header;
    let mut genesis = to_state(&test.pre);
    let root = common::state_root(&genesis);
    if root != header.state_root {
        return Err((
            Some(0),
            format!("genesis state root {root} != header {}", header.state_root),
        ));
    }
    genesis.insert_block_hash(header.number.saturating_to(), header.hash);
    Ok(genesis)
}

/// A test's chain as its blocks are imported.
struct Import {
    /// The state after each imported block, by block hash (side chains
    /// included: each block executes on its parent's state).
    states: HashMap<B256, Arc<InMemoryState>>,
    chain: Arc<ChainSpec>,
    parallel: ParallelConfig,
}

impl Import {
    /// Imports the test's block `index` onto its parent: executed in
    /// parallel and sequentially, which must agree, and verified against
    /// its header, state root included.
    fn block(&mut self, index: usize, test_block: &TestBlock) -> Result<(), TestError> {
        let invalid = |message: String| (Some(index as u64 + 1), message);
        let mut rlp = test_block.rlp.as_ref();
        let block = Block::<TxEnvelope>::decode(&mut rlp)
            .map_err(|e| invalid(format!("cannot decode block rlp: {e}")))?;
        if !rlp.is_empty() {
            return Err(invalid(format!(
                "block rlp has {} bytes after the block",
                rlp.len()
            )));
        }
        let ommers = alloy_consensus::proofs::calculate_ommers_root(&block.body.ommers);
        if ommers != block.header.ommers_hash {
            return Err(invalid(format!(
                "ommers root {ommers} != header {}",
                block.header.ommers_hash
            )));
        }
        let hash = block.header.hash_slow();
        let number = block.header.number;
        let fail = |message: String| (Some(number), message);
        let parent = self
            .states
            .get(&block.header.parent_hash)
            .cloned()
            .ok_or_else(|| fail(format!("unknown parent {}", block.header.parent_hash)))?;
        let input = self.input(block).map_err(fail)?;
        verify_body(&input).map_err(|e| fail(e.to_string()))?;
        let result = execute_parallel(&input, &*parent, &self.parallel)
            .map_err(|e| fail(format!("parallel execution failed: {e}")))?;
        let sequential = execute_sequential(&input, &*parent)
            .map_err(|e| fail(format!("sequential execution failed: {e}")))?;
        if let Some(diff) = sequential.first_difference(&result) {
            return Err(fail(format!("parallel differs from sequential: {diff}")));
        }
        verify_against_header(&input, &result).map_err(|e| fail(e.to_string()))?;
        let mut post = (*parent).clone();
        post.apply(&result.state);
        let root = common::state_root(&post);
        if root != input.header.state_root {
            return Err(fail(format!(
                "state root {root} != header {}",
                input.header.state_root
            )));
        }
        post.insert_block_hash(number, hash);
        self.states.insert(hash, Arc::new(post));
        Ok(())
    }

    /// The decoded block as the executors take it, its senders recovered.
    fn input(&self, block: Block<TxEnvelope>) -> Result<BlockInput, String> {
        let mut transactions = Vec::with_capacity(block.body.transactions.len());
        for (i, tx) in block.body.transactions.into_iter().enumerate() {
            let sender = tx
                .recover_signer()
                .map_err(|e| format!("tx {i}: cannot recover the sender: {e}"))?;
            transactions.push(alloy_consensus::transaction::Recovered::new_unchecked(
                tx, sender,
            ));
        }
        Ok(BlockInput {
            header: block.header,
            transactions,
            ommers: block.body.ommers,
            withdrawals: block.body.withdrawals.map(|w| w.into_inner()),
            chain: self.chain.clone(),
        })
    }
}

/// The state after the test's last block, against its `postState` (or
/// `postStateHash`).
fn check_post_state(
    test: &BlockchainTest,
    states: &HashMap<B256, Arc<InMemoryState>>,
) -> Result<(), TestError> {
    let last = states.get(&test.lastblockhash).ok_or_else(|| {
        (
            None,
            format!("last block {} was never imported", test.lastblockhash),
        )
    })?;
    let root = common::state_root(last);
    let expected_root = match (&test.post_state, test.post_state_hash) {
        (Some(expected), _) => {
            let expected = to_state(expected);
            if let Some(diff) = common::first_account_difference(last, &expected) {
                return Err((None, format!("post state differs: {diff}")));
            }
            common::state_root(&expected)
        }
        (None, Some(expected)) => expected,
        (None, None) => {
            return Err((
                None,
                "the test has neither postState nor postStateHash".into(),
            ));
        }
    };
    if root != expected_root {
        return Err((
            None,
            format!("post state root {root} != expected {expected_root}"),
        ));
    }
    Ok(())
}
