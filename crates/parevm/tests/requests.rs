//! EIP-7685 requests (Prague and later): transactions queue withdrawal and
//! consolidation requests in the EIP-7002 and EIP-7251 system contracts,
//! the system calls after the block collect them, and the header carries
//! their hash. Both executors return them, and the header check compares
//! their hash.

mod support;

use alloy_eips::{
    eip7002::WITHDRAWAL_REQUEST_PREDEPLOY_ADDRESS,
    eip7251::CONSOLIDATION_REQUEST_PREDEPLOY_ADDRESS,
    eip7685::{EMPTY_REQUESTS_HASH, Requests},
};
use alloy_hardforks::EthereumHardfork;
use alloy_primitives::{Address, B256};
use parevm::{
    BlockInput, BlockResult, TxOutcome,
    verify::{VerifyError, verify_against_header},
};
use support::*;

/// A validator's public key, for the requests.
fn pubkey(byte: u8) -> [u8; 48] {
    [byte; 48]
}

/// A Prague block whose transactions request a withdrawal and a
/// consolidation (1 wei each, the fee while the contracts' queues are
/// empty) among plain transfers; with the sequential result.
fn block_with_requests() -> (BlockInput, BlockResult, Address) {
    let mut b = BlockBuilder::new(EthereumHardfork::Prague);
    b.fund_all((1..=6).map(addr));
    let requester = addr(1);
    let mut withdrawal = pubkey(0xaa).to_vec();
    withdrawal.extend_from_slice(&32_000_000_000u64.to_be_bytes());
    let mut consolidation = pubkey(0xbb).to_vec();
    consolidation.extend_from_slice(&pubkey(0xcc));
    b.transfer(addr(2), addr(3), 5);
    b.call(
        requester,
        WITHDRAWAL_REQUEST_PREDEPLOY_ADDRESS,
        1,
        withdrawal,
    );
    b.transfer(addr(4), addr(5), 5);
    b.call(
        requester,
        CONSOLIDATION_REQUEST_PREDEPLOY_ADDRESS,
        1,
        consolidation,
    );
    b.transfer(addr(6), addr(2), 5);
    let (block, state) = b.build();
    let result = assert_parallel_matches(&block, &state);
    (block, result, requester)
}

/// Both executors return the requests the system calls collected: one
/// withdrawal request (type 1: source, public key, amount) and one
/// consolidation request (type 2: source, two public keys).
#[test]
fn both_executors_return_the_blocks_requests() {
    let (_, result, requester) = block_with_requests();
    for (index, tx) in result.transactions.iter().enumerate() {
        assert!(
            matches!(tx.outcome, TxOutcome::Success { .. }),
            "tx {index}: {:?}",
            tx.outcome
        );
    }
    let requests = result.requests.expect("a Prague block has requests");
    let requests: Vec<_> = requests.iter().collect();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let (withdrawal, consolidation) = (&requests[0], &requests[1]);
    assert_eq!(withdrawal[0], 0x01);
    assert_eq!(&withdrawal[1..21], requester.as_slice());
    assert_eq!(&withdrawal[21..69], &pubkey(0xaa));
    assert_eq!(consolidation[0], 0x02);
    assert_eq!(&consolidation[1..21], requester.as_slice());
    assert_eq!(&consolidation[21..69], &pubkey(0xbb));
    assert_eq!(&consolidation[69..117], &pubkey(0xcc));
}

/// A block without requests still has them (none) from Prague on, and no
/// requests at all before.
#[test]
fn requests_start_at_prague() {
    for (fork, expected) in [
        (EthereumHardfork::Cancun, None),
        (EthereumHardfork::Prague, Some(Requests::default())),
    ] {
        let result = two_transfers(BlockBuilder::new(fork));
        assert_eq!(result.requests, expected, "{fork}");
    }
}

/// Two independent transfers in `b`'s block, run on both executors: the
/// sequential result.
fn two_transfers(mut b: BlockBuilder) -> BlockResult {
    b.fund_all((1..=4).map(addr));
    b.transfer(addr(1), addr(2), 5);
    b.transfer(addr(3), addr(4), 5);
    let (block, state) = b.build();
    assert_parallel_matches(&block, &state)
}

/// The header check compares the requests hash: the block's own passes,
/// any other fails, and so does a header that expects requests from a
/// result without them.
#[test]
fn the_header_check_compares_the_requests_hash() {
    let (mut block, result, _) = block_with_requests();
    let receipts: Vec<_> = result.receipts().cloned().collect();
    block.header.gas_used = result.gas_used;
    block.header.logs_bloom = result.logs_bloom();
    block.header.receipts_root = alloy_consensus::proofs::calculate_receipt_root(&receipts);
    let actual = result.requests.as_ref().expect("requests").requests_hash();
    assert_ne!(actual, EMPTY_REQUESTS_HASH);
    block.header.requests_hash = Some(actual);
    assert_eq!(verify_against_header(&block, &result), Ok(()));
    block.header.requests_hash = Some(EMPTY_REQUESTS_HASH);
    assert_eq!(
        verify_against_header(&block, &result),
        Err(VerifyError::RequestsHash {
            expected: EMPTY_REQUESTS_HASH,
            actual: Some(actual),
        })
    );
    let without = BlockResult {
        requests: None,
        ..result.clone()
    };
    block.header.requests_hash = Some(B256::repeat_byte(7));
    assert!(matches!(
        verify_against_header(&block, &without),
        Err(VerifyError::RequestsHash { actual: None, .. })
    ));
    // A Prague header must commit to the requests, even to none.
    block.header.requests_hash = None;
    assert_eq!(
        verify_against_header(&block, &result),
        Err(VerifyError::MissingRequestsHash)
    );
}

/// A pre-state without the system contracts, as the mainnet fixtures'
/// (they list only the accounts the transactions touch): the system calls
/// meet empty accounts, which return nothing, so a block from Cancun on
/// runs on both executors alike, and from Prague on has no requests, whose
/// hash is the one a header of a block without requests carries.
#[test]
fn a_pre_state_without_the_system_contracts_has_no_requests() {
    for fork in [
        EthereumHardfork::Cancun,
        EthereumHardfork::Prague,
        EthereumHardfork::Osaka,
    ] {
        let result = two_transfers(BlockBuilder::without_system_contracts(fork));
        let hash = result.requests.as_ref().map(Requests::requests_hash);
        match fork {
            EthereumHardfork::Cancun => assert_eq!(hash, None),
            _ => assert_eq!(hash, Some(EMPTY_REQUESTS_HASH), "{fork}"),
        }
    }
}
