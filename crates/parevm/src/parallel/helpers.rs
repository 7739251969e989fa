//! Helper threads for one block, borrowed from a pool that outlives blocks,
//! how a thread without work waits for some ([`Idle`]), and the per-block
//! buffers kept from block to block ([`BufferPool`]).
//!
//! Starting an OS thread costs about 40 µs on the 2-core VM this was
//! measured on, and its first allocations fault in a fresh allocator heap:
//! the helper joined a 0.4 ms mainnet block 120 µs late. A parked pool
//! thread joined it about 34 µs late, with its heap still warm. A block on
//! Block-STM borrows its helpers once and keeps them for everything
//! parallel in it: execution, then assembling results. A partitioned
//! block borrows them for each step (planning, running the partitions,
//! assembling), and between steps they wait for the next one, awake
//! ([`Then::NextCall`]). Handing them work first keeps them off the
//! caller's core ([`Placement`]): after idle time the kernel queued them
//! behind it.

use super::{mv_memory, placement::Placement};
use rayon::{ThreadPool, ThreadPoolBuilder};
use std::{
    any::Any,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

/// The helper threads, and where they may run.
struct Pool {
    threads: ThreadPool,
    placement: Arc<Placement>,
}

/// The pool, replaced by a larger one when a block asks for more helpers
/// than it has (blocks still running on the old one keep it alive).
static POOL: Mutex<Option<Arc<Pool>>> = Mutex::new(None);

/// A pool with at least `threads` threads, or `None` if none can be
/// started; its threads are kept off the calling thread's core if they fit
/// on the others ([`Placement::steer_off`]), as `threads` helpers are
/// about to be handed work.
fn pool(threads: usize) -> Option<Arc<Pool>> {
    let pool = existing_or_new_pool(threads)?;
    pool.placement.steer_off(threads);
    Some(pool)
}

fn existing_or_new_pool(threads: usize) -> Option<Arc<Pool>> {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(existing) = pool
        .as_ref()
        .filter(|p| p.threads.current_num_threads() >= threads)
    {
        return Some(existing.clone());
    }
    let placement = Arc::new(Placement::default());
    let registry = placement.clone();
    let built = ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("parevm-helper-{i}"))
        .start_handler(move |_| registry.register_current())
        .build()
        .ok()?;
    let built = Pool {
        threads: built,
        placement,
    };
    Some(pool.insert(Arc::new(built)).clone())
}

/// Per-block buffers that finished blocks leave, emptied, for the next
/// blocks: up to [`POOLED`], as many as ran at once. A block then starts
/// with them allocated and mapped, instead of faulting in fresh pages
/// (which the kernel zeroes a huge page at a time) on the thread that
/// sets it up.
///
/// Invariant: every value in the pool is empty (as `empty` left it in
/// [`Self::give_back`]), so that taking one costs only fitting it.
pub(crate) struct BufferPool<T>(Mutex<Vec<T>>);

/// The most values a [`BufferPool`] keeps.
pub(crate) const POOLED: usize = 4;

impl<T> BufferPool<T> {
    /// An empty pool, for a `static`.
    pub(crate) const fn new() -> Self {
        Self(Mutex::new(Vec::new()))
    }

    /// A value a finished block left, if one is free.
    pub(crate) fn take(&self) -> Option<T> {
        mv_memory::lock(&self.0).pop()
    }

    /// Empties `value` with `empty` and keeps it, unless the pool is full
    /// (then it is dropped, not emptied).
    pub(crate) fn give_back(&self, mut value: T, empty: impl FnOnce(&mut T)) {
        if mv_memory::lock(&self.0).len() >= POOLED {
            return;
        }
        empty(&mut value);
        let mut pool = mv_memory::lock(&self.0);
        if pool.len() < POOLED {
            pool.push(value);
        }
    }
}

/// Counts the batches of work handed to the pool: a helper woken ahead of
/// work ([`wake_helpers`]) waits until it changes.
static POSTED: AtomicU64 = AtomicU64::new(0);

/// How long a helper woken ahead of work waits for it: longer than a
/// block's planning before Block-STM starts (13-150 us on the mainnet
/// fixtures), short enough that a block that ends up sequential keeps a
/// core busy for no more than that.
const WAKE_AHEAD_FOR: Duration = Duration::from_micros(300);

/// Wakes `helpers` pool threads now, for work that
/// [`run_with_helpers`] will hand them shortly. A parked thread took
/// 50-80 us to join a block once handed its work; woken while the caller
/// still plans the block, it is running when the work arrives. Each waits
/// at most [`WAKE_AHEAD_FOR`], spinning, then goes back to the pool.
pub(crate) fn wake_helpers(helpers: usize) {
    let Some(pool) = (helpers > 0).then(|| pool(helpers)).flatten() else {
        return;
    };
    let posted = POSTED.load(Ordering::Acquire);
    for _ in 0..helpers {
        pool.threads.spawn(move || wait_for_work_after(posted));
    }
}

/// Spins until work is posted after `posted` (see [`POSTED`]), for at most
/// [`WAKE_AHEAD_FOR`]; then the thread goes back to the pool, which runs
/// that work at once (it was queued before it was posted).
fn wait_for_work_after(posted: u64) {
    let (start, mut idle) = (Instant::now(), Idle::default());
    while POSTED.load(Ordering::Acquire) == posted && start.elapsed() < WAKE_AHEAD_FOR {
        idle.wait();
    }
}

/// Runs `job` on this worker and, if `phases` are measured
/// ([`ParallelConfig::phase_times`](super::ParallelConfig::phase_times)),
/// adds the time it took to the field of them that `field` picks.
pub(crate) fn timed_phase<R>(
    phases: Option<&Mutex<crate::PhaseTimes>>,
    field: fn(&mut crate::PhaseTimes) -> &mut Duration,
    job: impl FnOnce() -> R,
) -> R {
    let Some(phases) = phases else {
        return job();
    };
    let start = Instant::now();
    let result = job();
    *field(&mut mv_memory::lock(phases)) += start.elapsed();
    result
}

/// Runs `job` on a pool thread without waiting for it, if the pool runs;
/// else on the calling thread. For work whose result the caller does not
/// need, such as scrubbing a finished block's memory for the next block:
/// a helper, idle once the block is done, does it while the caller goes
/// on. A panic in it is dropped: rayon would abort the process on it.
pub(crate) fn run_detached(job: impl FnOnce() + Send + 'static) {
    let pool = POOL.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match pool {
        Some(pool) => pool.threads.spawn(move || {
            let _ = catch_unwind(AssertUnwindSafe(job));
        }),
        None => job(),
    }
}

/// What a block's helpers do once their share of one [`run_with_helpers`]
/// call is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Then {
    /// Go back to the pool: the block needs them no more.
    Release,
    /// Wait, spinning, for the block's next call (at most
    /// [`WAKE_AHEAD_FOR`]), as [`wake_helpers`] does: a helper back in the
    /// pool had to be woken again for it. On 5,000 transfers, planned,
    /// run as partitions and assembled in three calls, the caller spent
    /// 15-40 us waking the helper at each (a futex wake of an idle vCPU),
    /// and the helper started 20-35 us after that. If no call comes (the
    /// block turned out to run sequentially), the wait costs a core that
    /// the sequential run does not use, as a wake ahead does.
    NextCall,
}

/// Runs `main` on the calling thread while up to `helpers` more threads run
/// `helper(index)`; returns when `main` has, and every helper that started
/// has finished. The caller takes part, so up to `helpers + 1` threads work.
/// The helpers then do as `then` says.
///
/// Every task is collaborative (any one thread can finish the block), so a
/// helper that starts late, or not at all, costs speed, never correctness.
/// A helper that has not started when `main` returns is revoked
/// ([`Handoff`]): the caller no longer waits for the kernel to schedule a
/// thread that has nothing left to do. With a busy loop of equal priority
/// on the other core of the 2-core VM, mainnet fixture 3356896 waited for
/// its helper for about 3 ms after the caller had done the whole block
/// (0.21x of sequential).
pub(crate) fn run_with_helpers(
    helpers: usize,
    then: Then,
    helper: impl Fn(usize) + Sync,
    main: impl FnOnce(),
) {
    let Some(pool) = (helpers > 0).then(|| pool(helpers)).flatten() else {
        // No helpers: the caller does all the work, and then the helpers'
        // share (an epilogue) too.
        main();
        (0..helpers).for_each(&helper);
        return;
    };
    let helper: &(dyn Fn(usize) + Sync) = &helper;
    let handoff = Arc::new(Handoff::new(helpers, helper));
    // Revokes or waits for every helper on the way out, unwinding included.
    let guard = Revoke(&handoff);
    // This call's post (below): a helper told to wait for the next call
    // waits for a later one. (Another block's post ends its wait early.)
    let this_post = POSTED.load(Ordering::Acquire).wrapping_add(1);
    for index in 0..helpers {
        let handoff = handoff.clone();
        pool.threads.spawn(move || {
            handoff.run(index);
            if then == Then::NextCall {
                wait_for_work_after(this_post);
            }
        });
    }
    // After the spawns: a helper woken ahead then finds them queued.
    POSTED.fetch_add(1, Ordering::Release);
    main();
    drop(guard);
    if let Some(panic) = mv_memory::lock(&handoff.panic).take() {
        std::panic::resume_unwind(panic);
    }
}

/// A helper's share has not been started.
const POSTED_SHARE: u8 = 0;
/// A helper runs its share: the caller waits for it.
const RUNNING: u8 = 1;
/// A helper ran its share.
const DONE: u8 = 2;
/// The caller took the share back before any helper started it.
const REVOKED: u8 = 3;

/// The helpers' shares of one [`run_with_helpers`] call, which the caller
/// can take back until a helper starts them.
///
/// Invariant: `helper` is called only by a helper that moved its share from
/// [`POSTED_SHARE`] to [`RUNNING`], and the caller does not leave
/// `run_with_helpers` (returning or unwinding) while any share is
/// [`RUNNING`]: it moves each share from [`POSTED_SHARE`] to [`REVOKED`],
/// or waits for [`DONE`] ([`Revoke`]). The two moves out of
/// [`POSTED_SHARE`] are compare-and-swaps, so exactly one of them happens.
/// A helper that starts after its share was revoked finds it so and never
/// touches `helper`, which by then may point to a closure that is gone.
struct Handoff {
    shares: Vec<AtomicU8>,
    /// The caller's closure, with its lifetime erased (see the invariant).
    helper: *const (dyn Fn(usize) + Sync + 'static),
    /// The first panic of a helper's share, resumed on the caller.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

// SAFETY: `helper` points to a `Sync` closure, which any thread may call
// through a shared reference; it is only dereferenced under the invariant
// above, while the closure is alive.
unsafe impl Send for Handoff {}
// SAFETY: as for `Send`; the other fields are `Sync`.
unsafe impl Sync for Handoff {}

impl Handoff {
    fn new(helpers: usize, helper: &(dyn Fn(usize) + Sync)) -> Self {
        let helper: *const (dyn Fn(usize) + Sync + '_) = helper;
        Self {
            shares: (0..helpers).map(|_| AtomicU8::new(POSTED_SHARE)).collect(),
            // SAFETY: only the trait object's lifetime bound changes (the
            // layout is the same); the invariant keeps every use of the
            // pointer within the closure's life.
            helper: unsafe {
                std::mem::transmute::<
                    *const (dyn Fn(usize) + Sync + '_),
                    *const (dyn Fn(usize) + Sync + 'static),
                >(helper)
            },
            panic: Mutex::new(None),
        }
    }

    /// Runs share `index` on a helper, unless the caller revoked it.
    fn run(&self, index: usize) {
        let share = &self.shares[index];
        let started =
            share.compare_exchange(POSTED_SHARE, RUNNING, Ordering::Acquire, Ordering::Relaxed);
        if started.is_err() {
            return;
        }
        // SAFETY: the share is RUNNING, so the caller waits for DONE before
        // the closure can go away (the invariant on `Handoff`).
        let helper = unsafe { &*self.helper };
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| helper(index))) {
            mv_memory::lock(&self.panic).get_or_insert(panic);
        }
        // Release: the caller sees everything the share wrote.
        share.store(DONE, Ordering::Release);
    }
}

/// Revokes, when dropped, every share of its [`Handoff`] that no helper
/// started, and waits for the started ones to finish.
struct Revoke<'h>(&'h Handoff);

impl Drop for Revoke<'_> {
    fn drop(&mut self) {
        let mut idle = Idle::default();
        for share in &self.0.shares {
            let revoked =
                share.compare_exchange(POSTED_SHARE, REVOKED, Ordering::Acquire, Ordering::Acquire);
            if revoked.is_err() {
                while share.load(Ordering::Acquire) != DONE {
                    idle.wait();
                }
            }
        }
    }
}

/// Tasks `0..count`, each handed once to whichever thread asks first:
/// claimed, not assigned, so a helper that is slow or starts late (or not
/// at all, its pool busy with another block) leaves its share to the
/// threads that are free.
#[derive(Debug)]
pub(crate) struct Claims {
    next: AtomicUsize,
    count: usize,
}

impl Claims {
    /// Tasks `0..count`, none claimed yet.
    pub(crate) fn new(count: usize) -> Self {
        Self {
            next: AtomicUsize::new(0),
            count,
        }
    }

    /// The next unclaimed task, if any is left.
    pub(crate) fn claim(&self) -> Option<usize> {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        (index < self.count).then_some(index)
    }

    /// Runs `task` on each task this thread claims, until none is left.
    pub(crate) fn run(&self, mut task: impl FnMut(usize)) {
        while let Some(index) = self.claim() {
            task(index);
        }
    }

    /// How many tasks there are.
    pub(crate) fn count(&self) -> usize {
        self.count
    }
}

/// How a thread without work waits between polls of shared state: it
/// spins, backing off so that polling does not keep taking the state's cache
/// lines from the threads at work, and after [`SPIN_POLLS`] polls it also
/// yields its core at every poll.
///
/// Spinning alone suits a thread with a core of its own, but a node shares
/// its cores (networking, the database) and a caller may ask for more
/// threads than there are cores: a spinning thread then holds a core for
/// its whole time slice while the thread whose work it waits for is not
/// running. Mainnet fixtures at 8 threads on 2 cores ran at 0.45x of
/// sequential when idle workers only spun.
#[derive(Debug, Default)]
pub(crate) struct Idle {
    polls: u32,
}

/// Polls spent spinning before an idle thread starts yielding: about 20 µs,
/// longer than most waits for another worker's transaction to finish.
const SPIN_POLLS: u32 = 32;

/// The longest back-off between polls, 2^this spin-loop hints (about
/// 0.6 µs on the 2-core VM).
const MAX_BACKOFF_EXPONENT: u32 = 6;

impl Idle {
    /// Waits once before the next poll.
    pub(crate) fn wait(&mut self) {
        self.polls = self.polls.saturating_add(1);
        if self.polls > SPIN_POLLS {
            std::thread::yield_now();
        }
        for _ in 0..1u32 << self.polls.min(MAX_BACKOFF_EXPONENT) {
            std::hint::spin_loop();
        }
    }

    /// Found work: the next wait starts short again.
    pub(crate) fn reset(&mut self) {
        self.polls = 0;
    }
}

/// What a caught panic said, for an error message.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "no message".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// Runs three helpers and the caller, which waits (up to a generous
    /// limit) for all three to start, since it would revoke the shares of
    /// those that have not; returns which of them ran.
    fn run_all() -> Vec<usize> {
        let ran = Mutex::new(Vec::new());
        run_with_helpers(
            3,
            Then::Release,
            |index| ran.lock().unwrap().push(index),
            || {
                ran.lock().unwrap().push(usize::MAX);
                let start = Instant::now();
                while ran.lock().unwrap().len() < 4 && start.elapsed() < Duration::from_secs(10) {
                    std::thread::yield_now();
                }
            },
        );
        let mut ran = ran.into_inner().unwrap();
        ran.sort_unstable();
        ran
    }

    /// A caller done with the work does not wait for helpers that have not
    /// started (here: every pool thread is held by other work until the
    /// caller has returned), and a revoked share never runs, even once its
    /// thread is free.
    #[test]
    fn helpers_that_have_not_started_are_revoked() {
        // More threads than other tests ask for, so that the pool is not
        // replaced by a larger one while its threads are held.
        let pool = pool(16).expect("the pool starts");
        let released = Arc::new(AtomicBool::new(false));
        let timed_out = Arc::new(AtomicBool::new(false));
        let blockers = pool.threads.current_num_threads();
        let blocked = Arc::new(AtomicUsize::new(0));
        for _ in 0..blockers {
            let (released, timed_out) = (released.clone(), timed_out.clone());
            let blocked = blocked.clone();
            pool.threads.spawn(move || {
                blocked.fetch_add(1, Ordering::SeqCst);
                let start = Instant::now();
                while !released.load(Ordering::SeqCst) {
                    if start.elapsed() > Duration::from_secs(10) {
                        timed_out.store(true, Ordering::SeqCst);
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
        }
        while blocked.load(Ordering::SeqCst) < blockers {
            std::thread::yield_now();
        }
        let helpers_ran = Arc::new(AtomicUsize::new(0));
        let counted = helpers_ran.clone();
        run_with_helpers(
            3,
            Then::Release,
            move |_| {
                counted.fetch_add(1, Ordering::SeqCst);
            },
            || {},
        );
        // Returned while every pool thread was still held.
        released.store(true, Ordering::SeqCst);
        assert!(!timed_out.load(Ordering::SeqCst));
        // The revoked shares stay unrun once the threads are free.
        run_all();
        assert_eq!(helpers_ran.load(Ordering::SeqCst), 0);
    }

    /// A helper's panic reaches the caller, after the other helpers are done.
    #[test]
    fn a_helper_panic_reaches_the_caller() {
        let caught = catch_unwind(|| {
            run_with_helpers(
                1,
                Then::Release,
                |_| panic!("helper failed"),
                || std::thread::sleep(Duration::from_millis(50)),
            )
        });
        // The helper may not have started within the caller's 50 ms, and
        // was then revoked; if it ran, its panic is the caller's.
        if let Err(panic) = caught {
            assert_eq!(panic_message(panic.as_ref()), "helper failed");
        }
    }

    /// Every task runs once, whichever threads claim them.
    #[test]
    fn claimed_tasks_run_once_each() {
        let claims = Claims::new(100);
        let ran = Mutex::new(Vec::new());
        let claim = || claims.run(|task| ran.lock().unwrap().push(task));
        run_with_helpers(3, Then::Release, |_| claim(), claim);
        let mut ran = ran.into_inner().unwrap();
        ran.sort_unstable();
        assert_eq!(ran, (0..100).collect::<Vec<_>>());
    }

    /// Helpers woken ahead take the work handed to them next, and helpers
    /// whose work never came go back to the pool for later work.
    #[test]
    fn helpers_woken_ahead_take_work_or_go_back() {
        let everyone = vec![0, 1, 2, usize::MAX];
        wake_helpers(3);
        assert_eq!(run_all(), everyone);
        wake_helpers(3);
        std::thread::sleep(WAKE_AHEAD_FOR * 3);
        assert_eq!(run_all(), everyone);
        wake_helpers(0);
        assert_eq!(run_all(), everyone);
    }
}
