//! The collaborative scheduler of Block-STM: threads take execution and
//! validation tasks from two shared counters, lowest transaction first, so no
//! thread idles while work exists; the block is done when both counters have
//! passed the last transaction and no task is in flight.
//!
//! Invariants (Gelashvili et al. 2022, section 4):
//! - `execution_idx` / `validation_idx` only move down through
//!   `decrease_*_idx`, which also bumps `decrease_cnt`, so `check_done` can
//!   tell that nothing moved while it looked.
//! - `num_active_tasks` counts tasks handed out and not yet finished; a task
//!   returned directly to its thread (re-execution after abort, validation
//!   after execution) keeps its count.
//! - A transaction's dependants are only ever added while holding its
//!   `dependants` lock and after checking it is not `Executed`, and
//!   `finish_execution` sets `Executed` before taking that lock: no wake-up is
//!   lost. That holds for every way of becoming a dependant: an execution
//!   that read an ESTIMATE (`add_dependency`), a validation that met one
//!   (`finish_validation_waiting`), and an incarnation waiting for its
//!   predicted predecessor (`waits_for_predecessor`).
//! - A dependant waits (`Aborting`, its task released) only on a lower
//!   transaction that is not `Executed`: one with a task in flight, one the
//!   execution counter has yet to reach or was sent back to, or one waiting
//!   in turn on a still lower one. So waits never form a cycle, and the
//!   block is not declared done while anything waits.
//! - A transaction run ahead of `execution_idx` (a chain's successor, or
//!   one of the `starts`) is counted in `num_active_tasks` before it is
//!   claimed, and claimed only while `execution_idx` has not passed it.
//!   Claiming takes the transaction's state lock (`ReadyToExecute ->
//!   Executing`) like any execution, so it runs once even if the counter
//!   reaches it meanwhile, and a thread whose counter finds it `Executing`
//!   has taken that lock after the claim's count: its `check_done` sees the
//!   count, and the block is not declared done under the claim.
//! - A dependant resumed by `finish_execution` may be carried by the thread
//!   that finished the execution it waited for, instead of going back to
//!   the execution counter: it moves from `Aborting` straight to
//!   `Executing` under its state lock, which no one else takes it out of
//!   `Aborting` under (it was in one dependants list, now emptied), and the
//!   finished execution's count in `num_active_tasks` passes to it.

use super::{
    mv_memory::lock,
    types::{Incarnation, Padded, TxIdx, Version},
};
use smallvec::SmallVec;
use std::sync::{
    Mutex,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

/// A unit of work for a worker thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Task {
    /// Run this incarnation.
    Execution(Version),
    /// Check this incarnation's read set.
    Validation(Version),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    ReadyToExecute,
    Executing,
    Executed,
    Aborting,
}

#[derive(Debug)]
struct TxState {
    incarnation: Incarnation,
    status: Status,
}

/// One transaction's scheduling state and its dependants, on one line:
/// finishing an execution takes both locks, so apart they cost the worker
/// two lines to fetch from the core that last scheduled the transaction.
#[derive(Debug)]
struct TxSlot {
    state: Mutex<TxState>,
    dependants: Mutex<Vec<TxIdx>>,
}

// One line: see `Padded`.
const _: () = assert!(std::mem::size_of::<TxSlot>() <= 64);

impl Default for TxSlot {
    fn default() -> Self {
        Self {
            state: Mutex::new(TxState {
                incarnation: 0,
                status: Status::ReadyToExecute,
            }),
            dependants: Mutex::default(),
        }
    }
}

/// Hands out tasks and detects completion.
pub(crate) struct Scheduler {
    block_size: usize,
    execution_idx: AtomicUsize,
    validation_idx: AtomicUsize,
    decrease_cnt: AtomicUsize,
    num_active_tasks: AtomicUsize,
    done_marker: AtomicBool,
    txs: Vec<Padded<TxSlot>>,
    /// Each transaction's successor in its sender's chain ([`NO_TX`]
    /// if none); empty if the block has no chains.
    successors: Vec<u32>,
    /// The transactions the first workers start with, ahead of block
    /// order, one each; and how many of them workers have claimed.
    starts: SmallVec<[TxIdx; 2]>,
    starts_claimed: AtomicUsize,
    /// Each transaction's predicted predecessor (its sender's previous
    /// transaction, or the previous call alike,
    /// [`call_links`](super::prediction::call_links)), which its
    /// incarnations wait for while it has not executed; [`NO_TX`] if none.
    /// Empty if the block has none.
    predecessors: Vec<u32>,
}

/// No transaction: in `successors`, a sender sending nothing after it; in
/// `predecessors`, nothing to wait for.
const NO_TX: u32 = u32::MAX;

impl Scheduler {
    /// A scheduler of `block_size` transactions, where each `(tx, next)` of
    /// `chains` says that `next` is the next transaction of `tx`'s sender,
    /// and the first workers start with the transactions of `starts`, one
    /// each (the starts of chains that would otherwise finish last).
    pub(crate) fn new(
        block_size: usize,
        chains: impl Iterator<Item = (TxIdx, TxIdx)>,
        starts: &[TxIdx],
    ) -> Self {
        let chains: Vec<(TxIdx, TxIdx)> = chains.collect();
        let mut successors = Vec::new();
        for &(tx, next) in &chains {
            if successors.is_empty() {
                successors = vec![NO_TX; block_size];
            }
            if let (Some(slot), Ok(next)) = (successors.get_mut(tx), u32::try_from(next)) {
                *slot = next;
            }
        }
        let scheduler = Self {
            block_size,
            execution_idx: AtomicUsize::new(0),
            validation_idx: AtomicUsize::new(0),
            decrease_cnt: AtomicUsize::new(0),
            num_active_tasks: AtomicUsize::new(0),
            done_marker: AtomicBool::new(block_size == 0),
            txs: (0..block_size).map(|_| Padded::default()).collect(),
            successors,
            starts: SmallVec::from_slice(starts),
            starts_claimed: AtomicUsize::new(0),
            predecessors: Vec::new(),
        };
        // A chain's next transaction would read its sender's nonce before
        // the previous one wrote it, and run again: waiting for its turn
        // costs less than starting (mainnet fixture 8038679 opens with 34
        // payouts from one pool, and each but the first started once for
        // nothing).
        scheduler.with_predecessors(&chains)
    }

    /// Makes each incarnation of each `next` of `links` wait until its `tx`
    /// has executed (the latest such `tx`, if several): predicted to
    /// read what `tx` writes, it would run again otherwise. A wrong
    /// prediction costs parallelism, never correctness, and each `tx` is
    /// below its `next`, so nothing waits in a cycle.
    pub(crate) fn with_predecessors(mut self, links: &[(TxIdx, TxIdx)]) -> Self {
        for &(tx, next) in links {
            if self.predecessors.is_empty() {
                self.predecessors = vec![NO_TX; self.block_size];
            }
            if let (Some(slot), Ok(tx)) = (self.predecessors.get_mut(next), u32::try_from(tx))
                && (tx as TxIdx) < next
                && (*slot == NO_TX || *slot < tx)
            {
                *slot = tx;
            }
        }
        self
    }

    /// The execution a worker starts with: the next of the scheduler's
    /// `starts` no worker has claimed yet, claimed as by
    /// [`Self::next_in_chain`].
    pub(crate) fn claim_start(&self) -> Option<Version> {
        if self.starts.is_empty() {
            return None;
        }
        let start = *self
            .starts
            .get(self.starts_claimed.fetch_add(1, Ordering::AcqRel))?;
        self.claim_ahead(start)
    }

    /// Whether every transaction is executed and validated.
    pub(crate) fn done(&self) -> bool {
        self.done_marker.load(Ordering::Acquire)
    }

    /// Stops all workers (after a fatal error).
    pub(crate) fn halt(&self) {
        self.done_marker.store(true, Ordering::Release);
    }

    /// The next task, validation first when it lags behind execution.
    /// Passes over the transactions it cannot claim (running, waiting, or
    /// not executed yet for a validation) until a counter reaches the end:
    /// a worker handed nothing backs off, and one that backed off once per
    /// transaction passed stayed behind a chain of waiting calls while the
    /// rest of the block was left to do (mainnet fixture 12522062, whose 55
    /// USDT transfers to one address wait each for the last: 1.82-1.92 ms
    /// before, 1.72-1.82 ms after, on the 2-core VM).
    pub(crate) fn next_task(&self) -> Option<Task> {
        loop {
            let validation_idx = self.validation_idx.load(Ordering::Acquire);
            let execution_idx = self.execution_idx.load(Ordering::Acquire);
            let task = if validation_idx < execution_idx {
                self.next_version_to_validate().map(Task::Validation)
            } else {
                self.next_version_to_execute().map(Task::Execution)
            };
            if task.is_some() || validation_idx.min(execution_idx) >= self.block_size {
                return task;
            }
        }
    }

    /// Records that `tx` read an ESTIMATE of `blocking`. Returns false if
    /// `blocking` has executed meanwhile (then re-execute `tx` at once).
    pub(crate) fn add_dependency(&self, tx: TxIdx, blocking: TxIdx) -> bool {
        let mut dependants = lock(&self.txs[blocking].dependants);
        if lock(&self.txs[blocking].state).status == Status::Executed {
            return false;
        }
        lock(&self.txs[tx].state).status = Status::Aborting;
        dependants.push(tx);
        drop(dependants);
        self.num_active_tasks.fetch_sub(1, Ordering::AcqRel);
        true
    }

    /// Marks an incarnation executed, wakes its dependants, and returns the
    /// validation of it if the validation counter has already passed it;
    /// otherwise the execution of its lowest dependant, carried by this
    /// thread (see the invariants above), if it has one. Sent back to the
    /// counter instead, each call of a chain alike that waited for the last
    /// (see [`call_links`](super::prediction::call_links)) moved the
    /// counter back to it, and the workers walked the block's waiting rest
    /// again after every one.
    pub(crate) fn finish_execution(
        &self,
        tx: TxIdx,
        incarnation: Incarnation,
        wrote_new_location: bool,
    ) -> Option<Task> {
        lock(&self.txs[tx].state).status = Status::Executed;
        let dependants = std::mem::take(&mut *lock(&self.txs[tx].dependants));
        let passed = self.validation_idx.load(Ordering::Acquire) > tx;
        let validate_now = passed && !wrote_new_location;
        let carried = self.resume_dependencies(dependants, !validate_now);
        if passed {
            if validate_now {
                return Some(Task::Validation(Version {
                    tx_idx: tx,
                    incarnation,
                }));
            }
            self.decrease_validation_idx(tx);
        }
        if let Some(carried) = carried {
            // The task's count passes to the carried execution.
            return Some(Task::Execution(carried));
        }
        self.num_active_tasks.fetch_sub(1, Ordering::AcqRel);
        None
    }

    /// The execution of the next transaction of `tx`'s sender, for the
    /// thread that has just executed `tx`, if the execution counter has not
    /// reached it yet and it is ready.
    ///
    /// Block-STM hands executions out in block order, so a chain of one
    /// sender's transactions at the end of a block ran one by one after
    /// everything else, each waiting for its predecessor (mainnet fixture
    /// 4370000 ends with 22 transactions from one sender, and ran at
    /// 0.87-0.90x). Following the chain, the thread that starts it carries
    /// it while the others take the rest of the block in order. A successor
    /// run ahead reads what lower transactions have not written yet like any
    /// speculative execution: validation catches it.
    pub(crate) fn next_in_chain(&self, tx: TxIdx) -> Option<Version> {
        let next = *self.successors.get(tx)? as TxIdx;
        self.claim_ahead(next)
    }

    /// Whether `next` is the transaction after `tx` in its sender's chain: a
    /// dependency the prediction saw coming, which its incarnations wait
    /// for.
    pub(crate) fn is_chain_link(&self, tx: TxIdx, next: TxIdx) -> bool {
        self.successors.get(tx).is_some_and(|&s| s as TxIdx == next)
    }

    /// Claims the execution of `tx` if the execution counter has not reached
    /// it yet and it is ready (see the invariants above).
    fn claim_ahead(&self, tx: TxIdx) -> Option<Version> {
        if tx >= self.block_size || tx < self.execution_idx.load(Ordering::Acquire) {
            return None;
        }
        self.num_active_tasks.fetch_add(1, Ordering::AcqRel);
        if tx < self.execution_idx.load(Ordering::Acquire) {
            // The counter passed it meanwhile: its threads will claim it.
            self.num_active_tasks.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        self.try_incarnate(tx)
    }

    /// Claims the right to abort an incarnation that failed validation; only
    /// the first validator of that incarnation succeeds.
    pub(crate) fn try_validation_abort(&self, tx: TxIdx, incarnation: Incarnation) -> bool {
        let mut state = lock(&self.txs[tx].state);
        if state.incarnation == incarnation && state.status == Status::Executed {
            state.status = Status::Aborting;
            true
        } else {
            false
        }
    }

    /// Ends a validation; after an abort, returns the re-execution task if the
    /// execution counter has already passed the transaction.
    pub(crate) fn finish_validation(&self, tx: TxIdx, aborted: bool) -> Option<Task> {
        if aborted {
            self.set_ready_status(tx);
            self.decrease_validation_idx(tx + 1);
            if self.execution_idx.load(Ordering::Acquire) > tx {
                if let Some(version) = self.try_incarnate(tx) {
                    return Some(Task::Execution(version));
                }
                // try_incarnate already released the task.
                return None;
            }
        }
        self.num_active_tasks.fetch_sub(1, Ordering::AcqRel);
        None
    }

    /// Ends a validation that aborted `tx` on an ESTIMATE of `writer`: `tx`
    /// re-executes once `writer` has executed again, as a transaction whose
    /// execution read that ESTIMATE would ([`Self::add_dependency`]), or at
    /// once if `writer` has executed meanwhile. Re-executed at once, it
    /// would meet the same ESTIMATE, and a read that does not wait for one
    /// (a balance only bounded) finished only to fail validation again:
    /// mainnet fixture 18988207's transaction 5 ran 5 times.
    pub(crate) fn finish_validation_waiting(&self, tx: TxIdx, writer: TxIdx) -> Option<Task> {
        let mut dependants = lock(&self.txs[writer].dependants);
        if lock(&self.txs[writer].state).status == Status::Executed {
            drop(dependants);
            return self.finish_validation(tx, true);
        }
        // `tx` stays `Aborting` (see `try_validation_abort`) until resumed.
        dependants.push(tx);
        drop(dependants);
        self.decrease_validation_idx(tx + 1);
        self.num_active_tasks.fetch_sub(1, Ordering::AcqRel);
        None
    }

    /// A transaction's scheduling state and what it waits on, for error reports.
    pub(crate) fn describe(&self, tx: TxIdx) -> String {
        let mut out = String::new();
        let mut current = Some(tx);
        // Bounded: a corrupted dependency list could hold a cycle.
        for _ in 0..8 {
            let Some(tx) = current else { break };
            let (status, incarnation) = {
                let state = lock(&self.txs[tx].state);
                (state.status, state.incarnation)
            };
            current = (0..self.block_size).find(|i| lock(&self.txs[*i].dependants).contains(&tx));
            out +=
                &format!("tx {tx}: {status:?} incarnation {incarnation} waiting on {current:?}; ");
        }
        out + &format!(
            "execution_idx {}, validation_idx {}, active {}",
            self.execution_idx.load(Ordering::Acquire),
            self.validation_idx.load(Ordering::Acquire),
            self.num_active_tasks.load(Ordering::Acquire)
        )
    }

    /// Makes `dependants` ready to execute again, and the lowest of them
    /// this thread's next execution if it may `carry` one.
    fn resume_dependencies(&self, mut dependants: Vec<TxIdx>, carry: bool) -> Option<Version> {
        let lowest = (0..dependants.len()).min_by_key(|&i| dependants[i])?;
        let carried = carry.then(|| dependants.swap_remove(lowest));
        for &tx in &dependants {
            self.set_ready_status(tx);
        }
        if let Some(&min) = dependants.iter().min() {
            self.decrease_execution_idx(min);
        }
        carried.map(|tx| {
            let mut state = lock(&self.txs[tx].state);
            state.incarnation += 1;
            state.status = Status::Executing;
            Version {
                tx_idx: tx,
                incarnation: state.incarnation,
            }
        })
    }

    fn set_ready_status(&self, tx: TxIdx) {
        let mut state = lock(&self.txs[tx].state);
        state.incarnation += 1;
        state.status = Status::ReadyToExecute;
    }

    fn decrease_execution_idx(&self, target: TxIdx) {
        self.execution_idx.fetch_min(target, Ordering::AcqRel);
        self.decrease_cnt.fetch_add(1, Ordering::AcqRel);
    }

    fn decrease_validation_idx(&self, target: TxIdx) {
        self.validation_idx.fetch_min(target, Ordering::AcqRel);
        self.decrease_cnt.fetch_add(1, Ordering::AcqRel);
    }

    fn check_done(&self) {
        let observed = self.decrease_cnt.load(Ordering::Acquire);
        if self
            .execution_idx
            .load(Ordering::Acquire)
            .min(self.validation_idx.load(Ordering::Acquire))
            >= self.block_size
            && self.num_active_tasks.load(Ordering::Acquire) == 0
            && observed == self.decrease_cnt.load(Ordering::Acquire)
        {
            self.done_marker.store(true, Ordering::Release);
        }
    }

    /// Moves `tx` from ready to executing; releases the task if it cannot,
    /// or if `tx` waits for its predecessor instead.
    fn try_incarnate(&self, tx: TxIdx) -> Option<Version> {
        if tx < self.block_size && !self.waits_for_predecessor(tx) {
            let mut state = lock(&self.txs[tx].state);
            if state.status == Status::ReadyToExecute {
                state.status = Status::Executing;
                return Some(Version {
                    tx_idx: tx,
                    incarnation: state.incarnation,
                });
            }
        }
        self.num_active_tasks.fetch_sub(1, Ordering::AcqRel);
        None
    }

    /// Whether `tx`, ready to execute, now waits for its predicted
    /// predecessor (its sender's previous transaction, or the previous call
    /// alike), which has not executed: it becomes that predecessor's
    /// dependant, as on reading its ESTIMATE ([`Self::add_dependency`],
    /// whose lock order this keeps).
    ///
    /// Every incarnation waits, not only the first: when the predecessor
    /// failed validation, its successor usually fails too, and re-executed
    /// beside the predecessor's re-execution it read what that had yet to
    /// write, and failed again. On mainnet fixture 10760440, four swaps
    /// through one aggregator each ran three times (the second beside its
    /// predecessor's second); waiting, the block ran in 2.80 ms against
    /// 2.88 ms (medians of 8 interleaved rounds on the 2-core VM).
    fn waits_for_predecessor(&self, tx: TxIdx) -> bool {
        let Some(&predecessor) = self.predecessors.get(tx) else {
            return false;
        };
        if predecessor == NO_TX {
            return false;
        }
        let predecessor = predecessor as TxIdx;
        let mut dependants = lock(&self.txs[predecessor].dependants);
        if lock(&self.txs[predecessor].state).status == Status::Executed {
            return false;
        }
        let mut state = lock(&self.txs[tx].state);
        if state.status != Status::ReadyToExecute {
            return false;
        }
        state.status = Status::Aborting;
        dependants.push(tx);
        true
    }

    fn next_version_to_execute(&self) -> Option<Version> {
        if self.execution_idx.load(Ordering::Acquire) >= self.block_size {
            self.check_done();
            return None;
        }
        self.num_active_tasks.fetch_add(1, Ordering::AcqRel);
        let tx = self.execution_idx.fetch_add(1, Ordering::AcqRel);
        self.try_incarnate(tx)
    }

    fn next_version_to_validate(&self) -> Option<Version> {
        if self.validation_idx.load(Ordering::Acquire) >= self.block_size {
            self.check_done();
            return None;
        }
        self.num_active_tasks.fetch_add(1, Ordering::AcqRel);
        let tx = self.validation_idx.fetch_add(1, Ordering::AcqRel);
        if tx < self.block_size {
            let state = lock(&self.txs[tx].state);
            if state.status == Status::Executed {
                return Some(Version {
                    tx_idx: tx,
                    incarnation: state.incarnation,
                });
            }
        }
        self.num_active_tasks.fetch_sub(1, Ordering::AcqRel);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(tx_idx: TxIdx, incarnation: Incarnation) -> Version {
        Version {
            tx_idx,
            incarnation,
        }
    }

    /// Runs `task` and whatever follows from it: executions write no new
    /// location and validations succeed. Returns the executions run.
    fn run(scheduler: &Scheduler, task: Task) -> Vec<TxIdx> {
        let mut executed = Vec::new();
        let mut next = Some(task);
        while let Some(task) = next {
            next = match task {
                Task::Execution(v) => {
                    executed.push(v.tx_idx);
                    scheduler.finish_execution(v.tx_idx, v.incarnation, false)
                }
                Task::Validation(v) => scheduler.finish_validation(v.tx_idx, false),
            };
        }
        executed
    }

    /// Runs the tasks `scheduler` hands out until it has none left (some
    /// may still be running elsewhere); returns the executions run.
    fn drain(scheduler: &Scheduler) -> Vec<TxIdx> {
        let mut executed = Vec::new();
        for _ in 0..100 {
            if let Some(task) = scheduler.next_task() {
                executed.extend(run(scheduler, task));
            }
        }
        executed
    }

    /// The next execution `scheduler` hands out, running the validations
    /// before it.
    fn next_execution(scheduler: &Scheduler) -> Option<Version> {
        for _ in 0..100 {
            match scheduler.next_task() {
                Some(Task::Execution(v)) => return Some(v),
                Some(task) => assert!(run(scheduler, task).is_empty()),
                None => {}
            }
        }
        None
    }

    #[test]
    fn a_chain_successor_ahead_of_the_counter_runs_once() {
        let scheduler = Scheduler::new(6, [(0, 3)].into_iter(), &[]);
        assert_eq!(next_execution(&scheduler), Some(version(0, 0)));
        assert_eq!(scheduler.finish_execution(0, 0, false), None);
        assert_eq!(scheduler.next_in_chain(0), Some(version(3, 0)));
        // The counters pass 3 while it runs: it is not run twice, and the
        // block is not done without it.
        assert_eq!(drain(&scheduler), vec![1, 2, 4, 5]);
        assert!(!scheduler.done());
        assert_eq!(run(&scheduler, Task::Execution(version(3, 0))), vec![3]);
        drain(&scheduler);
        assert!(scheduler.done());
    }

    #[test]
    fn a_successor_the_counter_passed_is_left_to_it() {
        let scheduler = Scheduler::new(3, [(0, 2)].into_iter(), &[]);
        assert_eq!(next_execution(&scheduler), Some(version(0, 0)));
        let validation = scheduler.finish_execution(0, 0, false);
        assert_eq!(next_execution(&scheduler), Some(version(1, 0)));
        assert_eq!(next_execution(&scheduler), Some(version(2, 0)));
        assert_eq!(scheduler.next_in_chain(0), None);
        if let Some(task) = validation {
            run(&scheduler, task);
        }
        assert_eq!(run(&scheduler, Task::Execution(version(1, 0))), vec![1]);
        assert_eq!(run(&scheduler, Task::Execution(version(2, 0))), vec![2]);
        drain(&scheduler);
        assert!(scheduler.done());
    }

    #[test]
    fn a_successor_waits_for_its_turn_then_is_followed() {
        let scheduler = Scheduler::new(3, [(0, 1)].into_iter(), &[]);
        assert_eq!(next_execution(&scheduler), Some(version(0, 0)));
        // 1 waits for 0 instead of starting: the counter passes it.
        assert_eq!(next_execution(&scheduler), Some(version(2, 0)));
        let validation = scheduler.finish_execution(0, 0, false);
        assert_eq!(scheduler.next_in_chain(0), Some(version(1, 1)));
        if let Some(task) = validation {
            run(&scheduler, task);
        }
        assert_eq!(run(&scheduler, Task::Execution(version(1, 1))), vec![1]);
        assert_eq!(run(&scheduler, Task::Execution(version(2, 0))), vec![2]);
        drain(&scheduler);
        assert!(scheduler.done());
    }

    #[test]
    fn the_first_transaction_is_claimed_once_then_its_chain_followed() {
        let scheduler = Scheduler::new(5, [(2, 4)].into_iter(), &[2]);
        assert_eq!(scheduler.claim_start(), Some(version(2, 0)));
        assert_eq!(scheduler.claim_start(), None);
        assert_eq!(scheduler.finish_execution(2, 0, false), None);
        assert_eq!(scheduler.next_in_chain(2), Some(version(4, 0)));
        assert_eq!(scheduler.finish_execution(4, 0, false), None);
        assert_eq!(drain(&scheduler), vec![0, 1, 3]);
        assert!(scheduler.done());
    }

    #[test]
    fn a_validation_aborted_on_an_estimate_waits_for_its_writer() {
        let scheduler = Scheduler::new(2, std::iter::empty(), &[]);
        assert_eq!(scheduler.next_task(), Some(Task::Execution(version(0, 0))));
        assert_eq!(scheduler.finish_execution(0, 0, false), None);
        let validation_of_0 = scheduler.next_task();
        assert_eq!(validation_of_0, Some(Task::Validation(version(0, 0))));
        assert_eq!(scheduler.next_task(), Some(Task::Execution(version(1, 0))));
        assert_eq!(scheduler.finish_execution(1, 0, false), None);
        // 0 fails validation and runs again; 1's validation meets its ESTIMATE.
        assert!(scheduler.try_validation_abort(0, 0));
        let rerun = scheduler.finish_validation(0, true);
        assert_eq!(rerun, Some(Task::Execution(version(0, 1))));
        assert_eq!(scheduler.next_task(), Some(Task::Validation(version(1, 0))));
        assert!(scheduler.try_validation_abort(1, 0));
        assert_eq!(scheduler.finish_validation_waiting(1, 0), None);
        // 1 is not handed out while 0 runs, and the block is not done.
        assert_eq!(drain(&scheduler), Vec::<TxIdx>::new());
        assert!(!scheduler.done());
        assert_eq!(run(&scheduler, Task::Execution(version(0, 1))), vec![0]);
        assert_eq!(next_execution(&scheduler), Some(version(1, 1)));
        assert_eq!(run(&scheduler, Task::Execution(version(1, 1))), vec![1]);
        drain(&scheduler);
        assert!(scheduler.done());
    }

    #[test]
    fn a_validation_waiting_on_an_executed_writer_reruns_at_once() {
        let scheduler = Scheduler::new(2, std::iter::empty(), &[]);
        assert_eq!(drain(&scheduler), vec![0, 1]);
        scheduler.decrease_validation_idx(1);
        assert_eq!(scheduler.next_task(), Some(Task::Validation(version(1, 0))));
        assert!(scheduler.try_validation_abort(1, 0));
        let rerun = scheduler.finish_validation_waiting(1, 0);
        assert_eq!(rerun, Some(Task::Execution(version(1, 1))));
        assert_eq!(run(&scheduler, rerun.unwrap()), vec![1]);
        drain(&scheduler);
        assert!(scheduler.done());
    }

    #[test]
    fn a_call_waits_for_its_predecessor_once() {
        let scheduler = Scheduler::new(3, std::iter::empty(), &[]).with_predecessors(&[(0, 2)]);
        assert_eq!(next_execution(&scheduler), Some(version(0, 0)));
        assert_eq!(next_execution(&scheduler), Some(version(1, 0)));
        // 2 waits for 0, which runs: nothing to execute meanwhile.
        assert_eq!(next_execution(&scheduler), None);
        assert_eq!(run(&scheduler, Task::Execution(version(1, 0))), vec![1]);
        assert_eq!(run(&scheduler, Task::Execution(version(0, 0))), vec![0]);
        assert_eq!(next_execution(&scheduler), Some(version(2, 1)));
        assert_eq!(run(&scheduler, Task::Execution(version(2, 1))), vec![2]);
        drain(&scheduler);
        assert!(scheduler.done());
    }

    #[test]
    fn a_re_execution_waits_for_its_predecessor_re_executing() {
        let scheduler = Scheduler::new(2, std::iter::empty(), &[]).with_predecessors(&[(0, 1)]);
        assert_eq!(drain(&scheduler), vec![0, 1]);
        // Both fail validation; 0 is back at the counter, not executed.
        assert!(scheduler.try_validation_abort(0, 0));
        assert_eq!(
            scheduler.finish_validation(0, true),
            Some(Task::Execution(version(0, 1)))
        );
        assert!(scheduler.try_validation_abort(1, 0));
        // 1 waits for 0's re-execution instead of running beside it.
        assert_eq!(scheduler.finish_validation(1, true), None);
        assert_eq!(run(&scheduler, Task::Execution(version(0, 1))), vec![0]);
        assert_eq!(next_execution(&scheduler), Some(version(1, 2)));
        assert_eq!(run(&scheduler, Task::Execution(version(1, 2))), vec![1]);
        drain(&scheduler);
        assert!(scheduler.done());
    }

    #[test]
    fn a_call_whose_predecessor_executed_runs_at_once() {
        let scheduler = Scheduler::new(2, std::iter::empty(), &[]).with_predecessors(&[(0, 1)]);
        assert_eq!(drain(&scheduler), vec![0, 1]);
        assert!(scheduler.done());
    }

    /// Five transactions, the middle three calls each linked to the one
    /// before, with 0 handed out to run.
    fn linked_calls_with_the_first_running() -> Scheduler {
        let links = [(0, 1), (1, 2), (2, 3)];
        let scheduler = Scheduler::new(5, std::iter::empty(), &[]).with_predecessors(&links);
        assert_eq!(scheduler.next_task(), Some(Task::Execution(version(0, 0))));
        scheduler
    }

    #[test]
    fn the_counters_pass_what_cannot_be_claimed_yet() {
        let scheduler = linked_calls_with_the_first_running();
        // 0 cannot be validated yet, and 1, 2 and 3 wait in turn: one call
        // hands out 4.
        assert_eq!(scheduler.next_task(), Some(Task::Execution(version(4, 0))));
        assert_eq!(scheduler.next_task(), None);
        assert!(!scheduler.done());
    }

    #[test]
    fn waiting_transactions_are_carried_by_the_thread_they_waited_for() {
        let scheduler = linked_calls_with_the_first_running();
        assert_eq!(scheduler.next_task(), Some(Task::Execution(version(4, 0))));
        assert_eq!(run(&scheduler, Task::Execution(version(4, 0))), vec![4]);
        // 0 wrote what its validation had not seen: no validation is due
        // now, so its thread runs 1, then 2 and 3, each waiting for the last.
        let carried = scheduler.finish_execution(0, 0, true);
        assert_eq!(carried, Some(Task::Execution(version(1, 1))));
        assert_eq!(
            run(&scheduler, Task::Execution(version(1, 1))),
            vec![1, 2, 3]
        );
        // None of them went back to the execution counter.
        assert_eq!(drain(&scheduler), Vec::<TxIdx>::new());
        assert!(scheduler.done());
    }

    #[test]
    fn transactions_without_successors_are_not_followed() {
        let scheduler = Scheduler::new(4, [(1, 3)].into_iter(), &[]);
        assert_eq!(next_execution(&scheduler), Some(version(0, 0)));
        assert_eq!(scheduler.finish_execution(0, 0, false), None);
        assert_eq!(scheduler.next_in_chain(0), None);
        assert_eq!(scheduler.next_in_chain(3), None);
        let without_chains = Scheduler::new(4, std::iter::empty(), &[]);
        assert_eq!(without_chains.next_in_chain(0), None);
        drain(&scheduler);
        assert!(scheduler.done());
    }
}
