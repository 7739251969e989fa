//! The EVM both parallel paths run, and the beneficiary's fee in it as a
//! commutative credit instead of a read.
//!
//! Every transaction pays the block's beneficiary, so reading its balance to
//! add the fee would make every transaction depend on the one before. Both
//! parallel paths run revm's mainnet handler with one change: the database is
//! told when revm is crediting the fee, so that it can serve the beneficiary
//! without making its balance part of the transaction's reads.

use alloy_evm::precompiles::PrecompilesMap;
use revm::{
    Database, MainBuilder,
    context::{
        Evm,
        result::{EVMError, HaltReason},
    },
    context_interface::{ContextTr, JournalTr, Transaction as _},
    handler::{
        EthFrame, FrameResult, Handler, MainnetContext, instructions::EthInstructions,
        post_execution,
    },
    interpreter::interpreter::EthInterpreter,
    precompile::{PrecompileSpecId, Precompiles},
    primitives::hardfork::SpecId,
};
use std::marker::PhantomData;

/// revm's mainnet EVM with alloy-evm's precompile provider, as the
/// sequential executor (alloy-evm's block executor) runs it: revm's own
/// provider reports a failed top-level precompile call with the failure's
/// message (`PrecompileErrorWithContext`), alloy-evm's without.
pub(crate) type ParallelEvm<DB> = Evm<
    MainnetContext<DB>,
    (),
    EthInstructions<EthInterpreter, MainnetContext<DB>>,
    PrecompilesMap,
    EthFrame<EthInterpreter>,
>;

/// `context` in a [`ParallelEvm`], with the precompiles of its spec.
pub(crate) fn parallel_evm<DB: Database>(context: MainnetContext<DB>) -> ParallelEvm<DB> {
    let spec = PrecompileSpecId::from_spec_id(context.cfg.spec);
    let precompiles = PrecompilesMap::from_static(Precompiles::new(spec));
    context.build_mainnet().with_precompiles(precompiles)
}

/// A database that serves the beneficiary differently while revm credits
/// its fee.
pub(crate) trait FeeCreditDb: alloy_evm::Database {
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
    type Evm = ParallelEvm<DB>;
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
