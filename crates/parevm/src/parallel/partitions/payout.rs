//! A payout sender: one account paying out to many recipients in a block,
//! as mining pools (often from the beneficiary itself) and exchange hot
//! wallets do. Its transactions chain through its nonce and balance, so to
//! any executor that reads them the block is one long dependency chain: on
//! the mainnet fixtures, four blocks of 380 to 1,414 transactions are such
//! payouts, and ran sequentially.
//!
//! Yet a plain transfer needs only two things of its sender: that its nonce
//! is the next one, and that the balance covers the transfer at its highest
//! cost. When the sender's transactions carry consecutive nonces from its
//! pre-block nonce, and its pre-block balance covers all of them at their
//! highest cost, every one of them passes both checks in sequence, whatever
//! ran before it (nobody else can lower an account without code). So the
//! partitioned executor ([`run`](super::run)) serves each
//! such transaction its sender as it expects it, sums what the sender paid
//! per partition, as it sums the beneficiary's fees, and fails the run if
//! anything else observes the sender, or a transfer into code runs code
//! that could read the sender's balance
//! ([`observation`](super::observation)): the one thing of the sender
//! that code can observe.

use crate::{
    BlockInput,
    state::{OverlayState, StateError, StateSource},
};
use alloy_consensus::Transaction;
use alloy_primitives::{Address, U256};
use revm::primitives::{KECCAK_EMPTY, hardfork::SpecId};

/// The intrinsic gas of a plain transfer: what it costs before any code.
const TRANSFER_GAS: u64 = 21_000;

/// A sender whose transactions in the block can run apart (see the module
/// docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PayoutSender {
    /// The sender.
    pub address: Address,
    /// Its nonce after the block: its pre-block nonce plus its transactions.
    pub final_nonce: u64,
    /// What its transactions can cost at most together: gas limit times the
    /// highest gas price, plus value, summed.
    pub max_spending: U256,
}

impl PayoutSender {
    /// Whether the sender's balance in `base` (the pre-block state with the
    /// system calls' changes) covers the most its transfers can take. It
    /// was found against the pre-block state: the system calls before the
    /// block could only have moved the balance in theory.
    pub(crate) fn covered_by<S: StateSource + ?Sized>(
        &self,
        base: &OverlayState<'_, S>,
    ) -> Result<bool, StateError> {
        let balance = base.account_fields(&self.address)?.map(|a| a.balance);
        Ok(balance.is_some_and(|balance| balance >= self.max_spending))
    }

    /// `sender`, if its transactions in `block` can run apart: every one a
    /// plain transfer (no calldata, access list, blobs or authorizations)
    /// to another account, with a gas limit of at least a transfer's and
    /// consecutive nonces from its nonce in `state`; the sender an account
    /// without code whose balance in `state` covers them all; and no
    /// transaction in the block delegating code (EIP-7702), which could
    /// give the sender code or a new nonce.
    pub(crate) fn find<S: StateSource + ?Sized>(
        block: &BlockInput,
        state: &S,
        sender: Address,
    ) -> Result<Option<Self>, StateError> {
        // Partitions need EIP-161; the rule is for blocks of transfers.
        if !block.spec().is_enabled_in(SpecId::SPURIOUS_DRAGON) {
            return Ok(None);
        }
        let Some(account) = state.account_fields(&sender)? else {
            return Ok(None);
        };
        if account.code_hash != KECCAK_EMPTY {
            return Ok(None);
        }
        let mut nonce = account.nonce;
        let mut max_spending = U256::ZERO;
        for tx in &block.transactions {
            if tx.authorization_list().is_some() {
                return Ok(None);
            }
            if tx.signer() != sender {
                continue;
            }
            let Some(spending) = plain_transfer_spending(tx.inner(), sender, nonce) else {
                return Ok(None);
            };
            let Some(total) = max_spending.checked_add(spending) else {
                return Ok(None);
            };
            max_spending = total;
            // A transaction at the last nonce is invalid (EIP-2681).
            let Some(next) = nonce.checked_add(1) else {
                return Ok(None);
            };
            nonce = next;
        }
        let transactions = nonce - account.nonce;
        let covered = max_spending <= account.balance;
        Ok((transactions >= 2 && covered).then_some(Self {
            address: sender,
            final_nonce: nonce,
            max_spending,
        }))
    }
}

/// The most `tx` (from `sender`, expected at `nonce`) can take from its
/// sender, if it is a plain transfer to another account at that nonce.
fn plain_transfer_spending(tx: &impl Transaction, sender: Address, nonce: u64) -> Option<U256> {
    let to = tx.kind().to().copied()?;
    let plain = to != sender
        && tx.input().is_empty()
        && tx.access_list().is_none_or(|list| list.is_empty())
        && tx.blob_versioned_hashes().is_none()
        && tx.nonce() == nonce
        && tx.gas_limit() >= TRANSFER_GAS;
    if !plain {
        return None;
    }
    let gas = U256::from(tx.gas_limit()).checked_mul(U256::from(tx.max_fee_per_gas()))?;
    gas.checked_add(tx.value())
}
