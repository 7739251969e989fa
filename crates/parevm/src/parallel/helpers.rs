//! Helper threads for one block: scoped OS threads, started per block.
//!
//! A pool that parks its threads between blocks would save their start, but
//! waking a parked thread costs about as much on virtual machines, and pools
//! that spin while idle (rayon's do) steal the cores from whatever runs
//! between blocks. Each block therefore starts its helpers once and keeps
//! them for everything parallel in it: execution, then assembling results.

/// Runs `main` on the calling thread while `helpers` more threads run
/// `helper(index)`; returns when all have finished. The caller takes part,
/// so `helpers + 1` threads work.
pub(crate) fn run_with_helpers(helpers: usize, helper: impl Fn(usize) + Sync, main: impl FnOnce()) {
    std::thread::scope(|scope| {
        let helper = &helper;
        for index in 0..helpers {
            scope.spawn(move || helper(index));
        }
        main();
    });
}
