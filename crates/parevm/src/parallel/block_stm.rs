//! A block's run on Block-STM: the multi-version memory, the workers
//! (`executor.rs`) following the predicted sender chains until every
//! transaction is executed and validated, then the block assembled by
//! every worker (`merge.rs`). A block given up for conflicts, with a
//! transaction that does not fit in the block's gas, or with lazy credits
//! that could overflow a balance (`credit.rs`), runs sequentially.

use super::{
    Attempt, BlockRun, ParallelConfig,
    executor::Workers,
    merge::{Assembly, collect_receipts, fold_state, walk_writes},
    mv_memory::{Credited, MvMemory, PooledMvMemory},
    post_block_calls, prediction,
    vm::VmContext,
};
use crate::{
    BlockInput, BlockResult, ExecutionError, ExecutionPath, ExecutionStats, FallbackReason,
    PhaseTimes, StateSource, state::OverlayState,
};
use alloy_primitives::Address;
use revm::primitives::KECCAK_EMPTY;
use smallvec::SmallVec;
use std::time::Instant;

impl<S: StateSource + ?Sized> BlockRun<'_, S> {
    /// Runs the block on Block-STM with `threads` workers, following its
    /// sender `chains` (see [`Scheduler`](super::scheduler::Scheduler));
    /// sends it to the sequential executor if it is given up for conflicts,
    /// a transaction does not fit in its gas or a credit could overflow.
    pub(super) fn on_block_stm(
        &self,
        threads: usize,
        config: &ParallelConfig,
        chains: &prediction::Chains,
        partitions_discarded: bool,
    ) -> Result<Attempt, ExecutionError> {
        let Self {
            block,
            state,
            pre,
            increments,
            started,
        } = *self;
        let base = OverlayState::new(state, pre);
        let hot = hot_columns(block, &base, &chains.hot_recipients);
        let credited = Credited {
            beneficiary: chains
                .beneficiary_column()
                .then_some(block.header.beneficiary),
            hot: &hot,
        };
        let mv = PooledMvMemory::take(block.transactions.len(), credited);
        let vm = vm_context(block, &base, &mv);
        let workers = block_stm_workers(block, &vm, chains, threads, config);
        // Once the block is done, every worker assembles it (`Assembly`),
        // with the write sets walked in one range of transactions, and the
        // state changes folded in one share of the accounts, per thread
        // that can run at once.
        let parts = config.judged_threads(block.transactions.len());
        let assembly = Assembly::new(block.transactions.len(), parts);
        let walk = |range, shares, only| walk_writes(&mv, range, shares, only);
        let receipts = || {
            let results = workers.take_results()?;
            collect_receipts(block, results)
        };
        let fold = |part, writes| fold_state(state, pre, part, writes, increments);
        let before = started.elapsed();
        let running_since = Instant::now();
        workers.run(threads, || assembly.run(walk, receipts, fold));
        let stopped = Instant::now();
        let mut stats = ExecutionStats {
            partitions_discarded,
            ..workers.stats.snapshot()
        };
        if workers.gave_up() {
            return Ok(Attempt::Fallback(FallbackReason::Conflicts, stats));
        }
        let (transactions, gas_used, mut changes) = match assembly.finish()? {
            Ok(assembled) => assembled,
            // A transaction exceeded the block's remaining gas in sequence
            // (it is invalid, and its speculative writes must not count), or
            // a balance's lazy credits could overflow.
            Err(reason) => return Ok(Attempt::Fallback(reason, stats)),
        };
        let requests = post_block_calls(block, state, increments, &transactions, &mut changes)?;
        stats.phases = workers.phase_times().map(|sums| PhaseTimes {
            threads,
            before,
            running: stopped - running_since,
            after: stopped.elapsed(),
            ..sums
        });
        Ok(Attempt::Ran(Box::new(BlockResult {
            transactions,
            gas_used,
            state: changes,
            requests,
            path: ExecutionPath::Parallel,
            stats,
        })))
    }
}

/// Block-STM's workers for `block`, their scheduler steered by the
/// predicted sender `chains` and calls.
fn block_stm_workers<'v, 'a, S: StateSource + ?Sized>(
    block: &BlockInput,
    vm: &'v VmContext<'a, S>,
    chains: &prediction::Chains,
    threads: usize,
    config: &ParallelConfig,
) -> Workers<'v, 'a, S> {
    let successors = chains.links.iter().map(|link| (link.tx, link.next));
    // Judged at the workers, not at the cores: workers beyond the cores
    // take turns, each at a share of one, so a chain reached late runs
    // as much slower as everything around it. (Judged at 2 with 4
    // workers on the 2-core VM, 7280000, 6137495 and 12244000 left
    // their heaviest transaction in order and lost 10-20%.)
    Workers::new(
        vm,
        threads,
        block.transactions.len(),
        successors,
        &chains.starts(block, threads),
        &prediction::call_links(block.transactions.iter().map(|tx| tx.inner())),
        config.max_waste(block.transactions.len()),
    )
    .with_phase_times(config.phase_times)
}

pub(super) fn vm_context<'a, S: StateSource + ?Sized>(
    block: &'a BlockInput,
    base: &'a S,
    mv: &'a MvMemory,
) -> VmContext<'a, S> {
    let env = block.evm_env();
    VmContext {
        base,
        mv,
        block_env: env.block_env,
        cfg_env: env.cfg_env,
        transactions: &block.transactions,
    }
}

/// The hot recipients of `block` whose balances get columns in the
/// multi-version memory ([`Credited`]): those without code before the
/// block, other than the beneficiary (which has its own, if any). A column is
/// read by walking it down to the last full balance, so code reading its
/// own balance at every payment would read in quadratic time; an account
/// without code that sends nothing in the block (as hot recipients do not)
/// is read only by code asking for its balance. Where the pre-block state
/// cannot tell, no column.
fn hot_columns<S: StateSource + ?Sized>(
    block: &BlockInput,
    base: &S,
    hot_recipients: &[Address],
) -> SmallVec<[Address; 4]> {
    hot_recipients
        .iter()
        .filter(|address| **address != block.header.beneficiary)
        .filter(|address| {
            base.code_hash(address)
                .is_ok_and(|hash| hash.is_none_or(|hash| hash == KECCAK_EMPTY))
        })
        .copied()
        .collect()
}
