//! Helper threads for one block, borrowed from a pool that outlives blocks.
//!
//! Starting an OS thread costs about 40 µs on the 2-core VM this was
//! measured on, and its first allocations fault in a fresh allocator heap:
//! the helper joined a 0.4 ms mainnet block 120 µs late. A parked pool
//! thread joined it about 34 µs late, with its heap still warm. Each
//! block borrows its helpers once and keeps them for everything parallel in
//! it: execution, then assembling results.

use rayon::{ThreadPool, ThreadPoolBuilder};
use std::sync::{Arc, Mutex};

/// The pool, replaced by a larger one when a block asks for more helpers
/// than it has (blocks still running on the old one keep it alive).
static POOL: Mutex<Option<Arc<ThreadPool>>> = Mutex::new(None);

/// A pool with at least `threads` threads, or `None` if none can be started.
fn pool(threads: usize) -> Option<Arc<ThreadPool>> {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(existing) = pool.as_ref().filter(|p| p.current_num_threads() >= threads) {
        return Some(existing.clone());
    }
    let built = ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("parevm-helper-{i}"))
        .build()
        .ok()?;
    Some(pool.insert(Arc::new(built)).clone())
}

/// Runs `main` on the calling thread while `helpers` more threads run
/// `helper(index)`; returns when all have finished. The caller takes part,
/// so `helpers + 1` threads work.
///
/// Every task is collaborative (any one thread can finish the block), so a
/// helper that starts late, or not at all because no thread could be
/// started, costs speed, never correctness.
pub(crate) fn run_with_helpers(helpers: usize, helper: impl Fn(usize) + Sync, main: impl FnOnce()) {
    let Some(pool) = (helpers > 0).then(|| pool(helpers)).flatten() else {
        // No helpers: the caller does all the work, and then the helpers'
        // share (an epilogue) too.
        main();
        (0..helpers).for_each(&helper);
        return;
    };
    pool.in_place_scope(|scope| {
        let helper = &helper;
        for index in 0..helpers {
            scope.spawn(move |_| helper(index));
        }
        main();
    });
}

/// What a caught panic said, for an error message.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "no message".into())
}
