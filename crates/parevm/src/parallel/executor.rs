//! Where transactions are scheduled: worker threads pull tasks from the
//! [`Scheduler`], execute incarnations with [`VmContext`], publish them to
//! [`MvMemory`](super::mv_memory::MvMemory) and validate them, until the block is done.

use super::{
    mv_memory::{BaseReader, Validation, lock},
    result_slots::ResultSlots,
    scheduler::{Scheduler, Task},
    shared_bloom::SharedBloom,
    types::{Padded, TxIdx, Version},
    vm::{Executed, FatalError, FinishedTx, Vm, VmContext, VmOutcome},
};
use crate::{ExecutionError, PhaseTimes, state::StateSource};
use alloy_consensus::Typed2718;
use alloy_primitives::{Address, B256, U256};
use revm::context::result::ExecutionResult;
use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

/// Shared by the workers of one block.
pub(crate) struct Workers<'v, 'a, S: ?Sized> {
    pub vm: &'v VmContext<'a, S>,
    pub scheduler: Scheduler,
    /// Each transaction's result, as its latest incarnation left it.
    results: ResultSlots,
    /// The first error that stops the block (see [`FatalError`]).
    pub fatal: Mutex<Option<ExecutionError>>,
    pub stats: Stats,
    /// A large receipt's bloom, hashed by every worker without a task.
    blooms: SharedBloom,
    /// Above this share of wasted executions (aborted, or blocked other
    /// than on the sender's chain), the block is given up for sequential
    /// execution.
    max_waste: f64,
    gave_up: AtomicBool,
    /// The workers' time per kind of task, summed, if measured
    /// ([`Self::with_phase_times`]).
    phases: Option<Mutex<PhaseTimes>>,
}

/// Executions before the conflict ratio is trusted: a block's first
/// transactions alone may conflict by chance.
const MIN_EXECUTIONS_FOR_CONFLICT_RATIO: usize = 64;

/// Counters of one parallel run, for diagnosis and for researchers.
#[derive(Debug)]
pub(crate) struct Stats {
    /// Each worker's counts of its tasks, on its own line: counted in one
    /// shared counter, every task took that line from the other core.
    per_worker: Vec<Padded<TaskCounts>>,
    /// The rare events, shared: read together to judge the conflicts.
    pub aborts: std::sync::atomic::AtomicUsize,
    pub blocked: std::sync::atomic::AtomicUsize,
    /// Of `blocked`, those that waited for the previous transaction of
    /// their sender's chain: predicted, and not counted as waste.
    pub chain_waits: std::sync::atomic::AtomicUsize,
}

/// The tasks one worker ran.
#[derive(Debug, Default)]
pub(crate) struct TaskCounts {
    executions: std::sync::atomic::AtomicUsize,
    validations: std::sync::atomic::AtomicUsize,
}

impl TaskCounts {
    fn count(counter: &std::sync::atomic::AtomicUsize) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl Stats {
    /// Counters for `workers` workers.
    fn new(workers: usize) -> Self {
        Self {
            per_worker: (0..workers.max(1)).map(|_| Padded::default()).collect(),
            aborts: Default::default(),
            blocked: Default::default(),
            chain_waits: Default::default(),
        }
    }

    /// The counts of worker `index` (the caller is worker 0).
    fn worker(&self, index: usize) -> &TaskCounts {
        &self.per_worker[index % self.per_worker.len()]
    }

    /// Executions so far, of all workers.
    fn executions(&self) -> usize {
        self.total(|counts| &counts.executions)
    }

    /// Validations so far, of all workers.
    fn validations(&self) -> usize {
        self.total(|counts| &counts.validations)
    }

    /// One of the workers' counters, summed over them.
    fn total(&self, counter: impl Fn(&TaskCounts) -> &std::sync::atomic::AtomicUsize) -> usize {
        let each = |counts: &Padded<TaskCounts>| counter(counts).load(Ordering::Relaxed);
        self.per_worker.iter().map(each).sum()
    }

    /// Reports the counters as a `tracing` debug event (`RUST_LOG=parevm=debug`
    /// with the `parevm` binary): how much work the block took beyond one
    /// execution and one validation per transaction.
    fn trace(&self, transactions: usize) {
        let stats = self.snapshot();
        tracing::debug!(
            transactions,
            executions = stats.executions,
            validations = stats.validations,
            aborts = stats.aborts,
            blocked = stats.blocked,
            "parallel block done"
        );
    }

    /// The counters, once the workers are done.
    pub(crate) fn snapshot(&self) -> crate::ExecutionStats {
        let load = |counter: &std::sync::atomic::AtomicUsize| counter.load(Ordering::Relaxed);
        crate::ExecutionStats {
            executions: self.executions(),
            validations: self.validations(),
            aborts: load(&self.aborts),
            blocked: load(&self.blocked),
            ..Default::default()
        }
    }
}

impl<'v, 'a, S: StateSource + ?Sized> Workers<'v, 'a, S> {
    /// `threads` workers for a block of `block_size` transactions, with its sender
    /// chains' `successors`, the first workers starting at `starts` (see
    /// [`Scheduler::new`]), and its `call_links` (see
    /// [`Scheduler::with_predecessors`]).
    pub(crate) fn new(
        vm: &'v VmContext<'a, S>,
        threads: usize,
        block_size: usize,
        successors: impl Iterator<Item = (TxIdx, TxIdx)>,
        starts: &[TxIdx],
        call_links: &[(TxIdx, TxIdx)],
        max_waste: f64,
    ) -> Self {
        Self {
            vm,
            scheduler: Scheduler::new(block_size, successors, starts).with_predecessors(call_links),
            results: ResultSlots::take(block_size),
            fatal: Mutex::default(),
            stats: Stats::new(threads),
            blooms: SharedBloom::default(),
            max_waste,
            gave_up: AtomicBool::new(false),
            phases: None,
        }
    }

    /// Workers that measure their time per kind of task, if `measure`
    /// ([`ParallelConfig::phase_times`](super::ParallelConfig::phase_times)).
    pub(crate) fn with_phase_times(mut self, measure: bool) -> Self {
        self.phases = measure.then(Mutex::default);
        self
    }

    /// The workers' time per kind of task, summed over them (the other
    /// fields zero), if measured.
    pub(crate) fn phase_times(&self) -> Option<PhaseTimes> {
        self.phases.as_ref().map(|phases| *lock(phases))
    }

    /// Whether the block was given up for too many conflicts.
    pub(crate) fn gave_up(&self) -> bool {
        self.gave_up.load(Ordering::Acquire)
    }

    /// Gives the block up once most executions are wasted: a block that is
    /// one long dependency chain (everyone trading on one pool) runs slower
    /// in parallel than in sequence, and no prediction from the block alone
    /// saw it coming. Checked after every wasted execution.
    fn check_conflicts(&self, block_size: usize) {
        let executions = self.stats.executions();
        // Only early: a block given up late pays for most of its parallel
        // run and then for the whole sequential one.
        if executions < MIN_EXECUTIONS_FOR_CONFLICT_RATIO.max(block_size / 64)
            || executions > block_size / 2
        {
            return;
        }
        // A wait for the sender's previous transaction is no waste: the
        // prediction that let the block run here counted its chain, and the
        // execution stopped at its first read. Mainnet fixture 8038679 opens
        // with 34 payouts from one pool; the second worker stopped at each of
        // them while the first ran the chain, and the block was given up at
        // 0.94x where it runs at 1.2x.
        let wasted = (self.stats.aborts.load(Ordering::Relaxed)
            + self.stats.blocked.load(Ordering::Relaxed))
        .saturating_sub(self.stats.chain_waits.load(Ordering::Relaxed));
        if wasted as f64 > executions as f64 * self.max_waste {
            self.gave_up.store(true, Ordering::Release);
            self.scheduler.halt();
        }
    }

    /// Runs `threads` workers to completion; the calling thread is one of
    /// them. Once the block is done, every worker runs `epilogue` (the
    /// block's assembly, see [`Assembly`](super::merge::Assembly)), so that
    /// assembling the results is parallel too without starting threads
    /// again. A block given up runs none.
    pub(crate) fn run(&self, threads: usize, epilogue: impl Fn() + Sync) {
        let work = |worker: usize| {
            self.work_guarded(self.stats.worker(worker));
            if !self.gave_up() {
                super::helpers::timed_phase(self.phases.as_ref(), |p| &mut p.assembling, &epilogue);
            }
        };
        let helper = |index: usize| work(index + 1);
        let then = super::helpers::Then::Release;
        super::helpers::run_with_helpers(threads.saturating_sub(1), then, helper, || work(0));
    }

    /// Works until done; a panic (a bug) fails the block instead of the process.
    fn work_guarded(&self, counts: &TaskCounts) {
        // Measuring or not is decided once, so that the loop that does not
        // measure has no trace of the clock.
        let work = || match self.phases.is_some() {
            true => self.work::<true>(counts),
            false => self.work::<false>(counts),
        };
        if let Err(panic) = catch_unwind(AssertUnwindSafe(work)) {
            let message = super::helpers::panic_message(panic.as_ref());
            self.fail_internal(format!("worker panicked: {message}"));
        }
    }

    /// Runs tasks until the block is done, timing them if `TIMED`.
    fn work<const TIMED: bool>(&self, counts: &TaskCounts) {
        let mut vm = Vm::new(self.vm);
        vm.share_large_blooms();
        let mut task = self.scheduler.claim_start().map(Task::Execution);
        let mut idle = super::helpers::Idle::default();
        let mut clock = TaskClock::<TIMED>::default();
        while !self.scheduler.done() {
            let timed = clock.start(&task);
            task = match task {
                Some(Task::Execution(version)) => self.try_execute(&mut vm, version, counts),
                Some(Task::Validation(version)) => self.validate(version, counts),
                None => match self.scheduler.next_task() {
                    None if self.blooms.help(vm.blooms()) => {
                        idle.reset();
                        None
                    }
                    None => {
                        idle.wait();
                        None
                    }
                    found => {
                        idle.reset();
                        found
                    }
                },
            };
            clock.stop(timed);
        }
        if let Some(phases) = &self.phases {
            clock.add_to(&mut lock(phases));
        }
    }

    fn try_execute(
        &self,
        vm: &mut Vm<'v, 'a, S>,
        version: Version,
        counts: &TaskCounts,
    ) -> Option<Task> {
        let tx = version.tx_idx;
        loop {
            TaskCounts::count(&counts.executions);
            match vm.execute(tx) {
                Err(FatalError::State(error)) => {
                    self.fail(ExecutionError::TxState { index: tx, error });
                    return None;
                }
                Err(FatalError::Other(message)) => {
                    self.fail_internal(format!("transaction {tx}: {message}"));
                    return None;
                }
                Ok(VmOutcome::Blocked(blocking)) => {
                    if self.scheduler.is_chain_link(blocking, tx) {
                        self.stats.chain_waits.fetch_add(1, Ordering::Relaxed);
                    }
                    self.stats.blocked.fetch_add(1, Ordering::Relaxed);
                    self.check_conflicts(self.results.len());
                    if self.scheduler.add_dependency(tx, blocking) {
                        return None;
                    }
                }
                Ok(VmOutcome::Done {
                    mut result,
                    reads,
                    writes,
                }) => {
                    let (wrote_new_location, spare) = self.vm.mv.record(version, reads, writes);
                    vm.recycle_reads(spare);
                    if let Ok(executed) = &mut result
                        && executed.logs_bloom.is_none()
                        && !self.hash_bloom(executed, vm)
                    {
                        return None;
                    }
                    let finished = match FinishedTx::of(result, self.vm.transactions[tx].ty()) {
                        Ok(finished) => finished,
                        Err(message) => {
                            self.fail_internal(format!("transaction {tx}: {message}"));
                            return None;
                        }
                    };
                    *lock(&self.results[tx]) = Some(finished);
                    let scheduler = &self.scheduler;
                    return scheduler
                        .finish_execution(tx, version.incarnation, wrote_new_location)
                        .or_else(|| scheduler.next_in_chain(tx).map(Task::Execution));
                }
            }
        }
    }

    /// Hashes a large receipt's bloom with the workers that have nothing
    /// else to do; `false` if the block was halted meanwhile. After the
    /// incarnation's writes are published, so that higher transactions can
    /// read them meanwhile, but before its execution is finished: until
    /// then its task keeps the block from ending without the bloom.
    fn hash_bloom(&self, executed: &mut Executed, vm: &mut Vm<'v, 'a, S>) -> bool {
        let logs = match &mut executed.result {
            ExecutionResult::Success { logs, .. } => std::mem::take(logs),
            // Only a success has logs.
            _ => return true,
        };
        let mut idle = super::helpers::Idle::default();
        let hashed = self.blooms.hash(logs, vm.blooms(), || {
            idle.wait();
            self.scheduler.done()
        });
        let Some((logs, bloom)) = hashed else {
            return false;
        };
        if let ExecutionResult::Success { logs: slot, .. } = &mut executed.result {
            *slot = logs;
        }
        executed.logs_bloom = Some(bloom);
        true
    }

    fn validate(&self, version: Version, counts: &TaskCounts) -> Option<Task> {
        let tx = version.tx_idx;
        let validation = self.vm.mv.validate_read_set(tx, &Base(self.vm.base));
        let aborted = validation != Validation::Valid
            && self.scheduler.try_validation_abort(tx, version.incarnation);
        TaskCounts::count(&counts.validations);
        if aborted {
            self.stats
                .aborts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.check_conflicts(self.results.len());
            self.vm.mv.convert_writes_to_estimates(tx);
            if let Validation::WaitFor(writer) = validation {
                return self.scheduler.finish_validation_waiting(tx, writer);
            }
        }
        self.scheduler.finish_validation(tx, aborted)
    }

    /// Stops the block with `error`, unless it was stopped already.
    fn fail(&self, error: ExecutionError) {
        lock(&self.fatal).get_or_insert(error);
        self.scheduler.halt();
    }

    fn fail_internal(&self, message: String) {
        self.fail(ExecutionError::Internal(message));
    }

    /// Takes the results in block order, once the block is done: each as
    /// it is iterated, so that building the receipts moves each result
    /// once (the results of 1,346 transactions are about 600 KB). A
    /// transaction without one is a bug, reported as an error in its place.
    pub(crate) fn take_results(
        &self,
    ) -> Result<impl Iterator<Item = Result<FinishedTx, String>> + '_, ExecutionError> {
        self.stats.trace(self.results.len());
        if let Some(error) = lock(&self.fatal).take() {
            return Err(error);
        }
        Ok(self.results.iter().enumerate().map(|(tx, slot)| {
            lock(slot).take().ok_or_else(|| {
                format!(
                    "transaction {tx} never executed ({})",
                    self.scheduler.describe(tx)
                )
            })
        }))
    }
}

/// A worker's time per kind of task, if `TIMED` (see [`PhaseTimes`]).
#[derive(Default)]
struct TaskClock<const TIMED: bool> {
    executing: Duration,
    validating: Duration,
    waiting: Duration,
}

/// What a worker's loop did in one turn: its task, or looking for one.
#[derive(Clone, Copy)]
enum Turn {
    Executing,
    Validating,
    Waiting,
}

impl<const TIMED: bool> TaskClock<TIMED> {
    /// The start of a turn with `task`; `None` if not measuring.
    fn start(&self, task: &Option<Task>) -> Option<(Turn, Instant)> {
        if !TIMED {
            return None;
        }
        let turn = match task {
            Some(Task::Execution(_)) => Turn::Executing,
            Some(Task::Validation(_)) => Turn::Validating,
            None => Turn::Waiting,
        };
        Some((turn, Instant::now()))
    }

    fn stop(&mut self, started: Option<(Turn, Instant)>) {
        let Some((turn, start)) = started else { return };
        let elapsed = start.elapsed();
        match turn {
            Turn::Executing => self.executing += elapsed,
            Turn::Validating => self.validating += elapsed,
            Turn::Waiting => self.waiting += elapsed,
        }
    }

    fn add_to(&self, phases: &mut PhaseTimes) {
        phases.executing += self.executing;
        phases.validating += self.validating;
        phases.waiting += self.waiting;
    }
}

/// One transaction's time in [`run_in_order`], in nanoseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TxTime {
    /// All of it.
    pub nanos: u64,
    /// Of that, the part Block-STM's workers share: hashing the bloom of a
    /// large receipt ([`SharedBloom`]).
    pub shared_nanos: u64,
}

/// Executes every transaction once, in order, on one thread: no conflicts
/// can arise, so each runs exactly once. Returns each transaction's result
/// with its execution time.
pub(crate) fn run_in_order<S: StateSource + ?Sized>(
    vm: &VmContext<'_, S>,
    block_size: usize,
    mut on_tx: impl FnMut(TxIdx, &super::types::ReadSet, &super::types::WriteSet, TxTime),
) -> Result<Vec<Option<FinishedTx>>, String> {
    let mut results = Vec::with_capacity(block_size);
    let mut evm = Vm::new(vm);
    evm.share_large_blooms();
    for tx in 0..block_size {
        let start = std::time::Instant::now();
        match evm
            .execute(tx)
            .map_err(|error| format!("transaction {tx}: {error}"))?
        {
            VmOutcome::Blocked(blocking) => {
                return Err(format!(
                    "transaction {tx} blocked by {blocking} in sequential order"
                ));
            }
            VmOutcome::Done {
                mut result,
                reads,
                writes,
            } => {
                let mut shared_nanos = 0;
                if let Ok(done) = &mut result
                    && done.logs_bloom.is_none()
                {
                    let start = std::time::Instant::now();
                    done.logs_bloom = Some(evm.blooms().logs_bloom(done.result.logs()));
                    shared_nanos = start.elapsed().as_nanos() as u64;
                }
                // Its receipt too, which Block-STM's workers build.
                let finished = FinishedTx::of(result, vm.transactions[tx].ty())
                    .map_err(|message| format!("transaction {tx}: {message}"))?;
                let time = TxTime {
                    nanos: start.elapsed().as_nanos() as u64,
                    shared_nanos,
                };
                on_tx(tx, &reads, &writes, time);
                results.push(Some(finished));
                let (_, spare) = vm.mv.record(
                    Version {
                        tx_idx: tx,
                        incarnation: 0,
                    },
                    reads,
                    writes,
                );
                evm.recycle_reads(spare);
            }
        }
    }
    Ok(results)
}

/// Pre-block values for validation: fields only, never the code, whose
/// copy would write the reference count the executing threads share.
struct Base<'a, S: ?Sized>(&'a S);

impl<S: StateSource + ?Sized> BaseReader for Base<'_, S> {
    fn balance(&self, address: &Address) -> Option<U256> {
        let account = self.0.account_fields(address).ok()?;
        Some(account.map_or(U256::ZERO, |a| a.balance))
    }
    fn nonce(&self, address: &Address) -> Option<u64> {
        Some(self.0.account_fields(address).ok()?.map_or(0, |a| a.nonce))
    }
    fn code_hash(&self, address: &Address) -> Option<B256> {
        let hash = self.0.code_hash(address).ok()?;
        Some(hash.unwrap_or(revm::primitives::KECCAK_EMPTY))
    }
    fn storage(&self, address: &Address, slot: &U256) -> Option<U256> {
        self.0.storage(address, slot).ok()
    }
}
