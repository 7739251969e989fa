//! A block's body against the roots its header commits to
//! (`verify::verify_body`), as a body received apart from its header is
//! checked before it executes.

mod support;

use alloy_hardforks::EthereumHardfork;
use alloy_primitives::Address;
use parevm::verify::{VerifyError, verify_body};
use support::*;

#[test]
fn a_body_must_be_the_one_its_header_commits_to() {
    let mut b = BlockBuilder::new(EthereumHardfork::Shanghai);
    b.fund_all((1..=2).map(addr));
    b.transfer(addr(1), addr(3), 5);
    b.transfer(addr(2), addr(4), 6);
    let (mut block, _) = b.build();
    let envelopes: Vec<_> = block.transactions.iter().map(|tx| tx.inner()).collect();
    let root = alloy_consensus::proofs::calculate_transaction_root(&envelopes);
    block.header.transactions_root = root;
    assert_eq!(verify_body(&block), Ok(()));

    let mut fewer = block.clone();
    fewer.transactions.pop();
    assert!(matches!(
        verify_body(&fewer),
        Err(VerifyError::TransactionsRoot { expected, .. }) if expected == root
    ));

    let mut paid = block.clone();
    paid.withdrawals = Some(vec![alloy_eips::eip4895::Withdrawal {
        index: 0,
        validator_index: 1,
        address: Address::repeat_byte(9),
        amount: 1,
    }]);
    assert!(matches!(
        verify_body(&paid),
        Err(VerifyError::WithdrawalsRoot { .. })
    ));

    let mut without = block.clone();
    without.withdrawals = None;
    assert_eq!(
        verify_body(&without),
        Err(VerifyError::WithdrawalsRoot {
            expected: block.header.withdrawals_root,
            actual: None,
        })
    );
}
