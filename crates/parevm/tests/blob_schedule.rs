//! Blob fee parameters by fork: Cancun, Prague, Osaka and the
//! blob-parameter-only forks of EIP-7892, which change the blob base fee
//! without changing the EVM. A block executed under the wrong fork's
//! parameters charges blob gas at the wrong price, and nothing in its header
//! (receipts, bloom, gas used) would show it.

mod support;

use alloy_eips::eip7840::BlobParams;
use alloy_hardforks::{
    EthereumHardfork,
    mainnet::{
        MAINNET_BPO1_TIMESTAMP, MAINNET_BPO2_TIMESTAMP, MAINNET_CANCUN_TIMESTAMP,
        MAINNET_OSAKA_TIMESTAMP, MAINNET_PRAGUE_TIMESTAMP,
    },
};
use alloy_primitives::U256;
use parevm::{ChainSpec, ExecutionError, ParallelConfig, UnknownBlobParams};
use std::sync::Arc;
use support::*;

/// Mainnet's parameters follow its forks, the BPO forks included.
#[test]
fn mainnet_blob_params_follow_the_bpo_forks() {
    let chain = ChainSpec::mainnet();
    let at = |timestamp| chain.blob_params_at(timestamp);
    assert_eq!(at(MAINNET_CANCUN_TIMESTAMP - 1), None);
    assert_eq!(at(MAINNET_CANCUN_TIMESTAMP), Some(BlobParams::cancun()));
    assert_eq!(at(MAINNET_PRAGUE_TIMESTAMP), Some(BlobParams::prague()));
    assert_eq!(at(MAINNET_OSAKA_TIMESTAMP), Some(BlobParams::osaka()));
    assert_eq!(at(MAINNET_BPO1_TIMESTAMP - 1), Some(BlobParams::osaka()));
    assert_eq!(at(MAINNET_BPO1_TIMESTAMP), Some(BlobParams::bpo1()));
    assert_eq!(at(MAINNET_BPO2_TIMESTAMP), Some(BlobParams::bpo2()));
    for timestamp in [0, MAINNET_OSAKA_TIMESTAMP, MAINNET_BPO2_TIMESTAMP + 1] {
        assert_eq!(chain.check_blob_params_at(timestamp), Ok(()));
    }
}

/// The blob gas price of the excess used below, under each fork's update
/// fraction: different for each, so that each fork's fee tells which
/// parameters the block ran under.
const EXCESS_BLOB_GAS: u64 = 10_000_000;

/// A blob transaction pays its blob gas at the price its fork's update
/// fraction gives, in both executors.
#[test]
fn a_blob_transaction_pays_its_forks_blob_price() {
    let forks = [
        (EthereumHardfork::Osaka, BlobParams::osaka()),
        (EthereumHardfork::Bpo1, BlobParams::bpo1()),
        (EthereumHardfork::Bpo2, BlobParams::bpo2()),
    ];
    let prices: Vec<u128> = forks
        .iter()
        .map(|(_, params)| params.calc_blob_fee(EXCESS_BLOB_GAS))
        .collect();
    assert_eq!(
        prices,
        [7, 3, 2],
        "the fractions no longer tell the forks apart"
    );
    for ((fork, _), price) in forks.into_iter().zip(prices) {
        let mut b = BlockBuilder::new(fork);
        let counter_address = addr(0xc0);
        b.contract(counter_address, counter());
        b.fund_all((1..=3).map(addr));
        b.blob_tx(addr(1), counter_address, 0, vec![], 1);
        b.transfer(addr(2), addr(3), 5);
        let (mut block, state) = b.build();
        block.header.excess_blob_gas = Some(EXCESS_BLOB_GAS);
        let result = assert_parallel_matches(&block, &state);
        let receipt = result.transactions[0].receipt.as_ref().expect("a receipt");
        // The first transaction: its cumulative gas is its own.
        let gas_price = u128::from(BASE_FEE) + PRIORITY_FEE;
        let gas_fee = u128::from(receipt.cumulative_gas_used()) * gas_price;
        let blob_fee = u128::from(alloy_eips::eip4844::DATA_GAS_PER_BLOB) * price;
        let before = state.get(&addr(1)).expect("funded").info.balance;
        let after = account_after(&result, &state, addr(1)).expect("exists");
        assert_eq!(
            before - after.info.balance,
            U256::from(gas_fee + blob_fee),
            "{fork}: the sender paid another blob price than {price}"
        );
    }
}

/// A BPO fork whose parameters nobody set is refused, by both executors,
/// rather than run under BPO2's; once set, they are used.
#[test]
fn a_bpo_fork_without_parameters_is_refused() {
    let mut b = BlockBuilder::new(EthereumHardfork::Osaka);
    b.fund_all((1..=2).map(addr));
    b.transfer(addr(1), addr(2), 5);
    let (mut block, state) = b.build();
    let bpo3_at = block.header.timestamp;
    let chain = ChainSpec::with_fork_from_genesis(1, EthereumHardfork::Bpo3);
    let unknown = UnknownBlobParams {
        fork: EthereumHardfork::Bpo3,
        timestamp: bpo3_at,
    };
    assert_eq!(chain.check_blob_params_at(bpo3_at), Err(unknown.clone()));
    block.chain = Arc::new(chain.clone());
    let refused = |result: Result<parevm::BlockResult, ExecutionError>| matches!(result, Err(ExecutionError::UnknownBlobParams(e)) if e == unknown);
    assert!(refused(parevm::execute_sequential(&block, &state)));
    for threads in [1, 2] {
        let config = ParallelConfig::never_fall_back(threads);
        assert!(refused(parevm::execute_parallel(&block, &state, &config)));
    }
    let bpo3 = BlobParams {
        update_fraction: 13_000_000,
        ..BlobParams::bpo2()
    };
    let chain = chain.with_blob_params(EthereumHardfork::Bpo3, bpo3);
    assert_eq!(chain.blob_params_at(bpo3_at), Some(bpo3));
    assert_eq!(chain.check_blob_params_at(bpo3_at), Ok(()));
    block.chain = Arc::new(chain);
    assert_parallel_matches(&block, &state);
}
