//! The beneficiary's fee as a commutative credit instead of a read.
//!
//! Every transaction pays the block's beneficiary, so reading its balance to
//! add the fee would make every transaction depend on the one before. Both
//! parallel paths run revm's mainnet handler with one change: the database is
//! told when revm is crediting the fee, so that it can serve the beneficiary
//! without making its balance part of the transaction's reads.

use revm::{
    Database,
    context::result::{EVMError, HaltReason},
    context_interface::{ContextTr, JournalTr, Transaction as _},
    handler::{FrameResult, Handler, MainnetContext, MainnetEvm, post_execution},
    primitives::hardfork::SpecId,
};
use std::marker::PhantomData;

/// A database that serves the beneficiary differently while revm credits
/// its fee.
pub(crate) trait FeeCreditDb: Database {
    /// Called with the tip per gas just before revm credits the fee, and with
    /// `None` just after.
    fn crediting_fee(&mut self, tip: Option<u128>);
}

/// revm's mainnet handler, with the beneficiary's fee credited while the
/// database knows it (see [`FeeCreditDb`]).
pub(crate) struct LazyBeneficiary<DB>(PhantomData<DB>);

impl<DB> LazyBeneficiary<DB> {
    pub(crate) fn new() -> Self {
        Self(PhantomData)
    }
}

impl<DB: FeeCreditDb> Handler for LazyBeneficiary<DB>
where
    DB::Error: revm::database_interface::DBErrorMarker,
{
    type Evm = MainnetEvm<MainnetContext<DB>>;
    type Error = EVMError<DB::Error>;
    type HaltReason = HaltReason;

    fn reward_beneficiary(
        &self,
        evm: &mut Self::Evm,
        exec_result: &mut FrameResult,
    ) -> Result<(), Self::Error> {
        let basefee = evm.ctx.block.basefee as u128;
        let price = evm.ctx.tx.effective_gas_price(basefee);
        let tip = if evm.ctx.cfg.spec.is_enabled_in(SpecId::LONDON) {
            price.saturating_sub(basefee)
        } else {
            price
        };
        evm.ctx.journal_mut().db_mut().crediting_fee(Some(tip));
        let result =
            post_execution::reward_beneficiary(&mut evm.ctx, exec_result.gas()).map_err(From::from);
        evm.ctx.journal_mut().db_mut().crediting_fee(None);
        result
    }
}
