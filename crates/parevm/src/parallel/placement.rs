//! Where the helper threads run: off the core of the thread that hands
//! them a block.
//!
//! Linux places a woken thread on the core of the thread that woke it when
//! it judges no other core idle. On the 2-vCPU KVM guest this was measured
//! on, a vCPU that sat idle for a millisecond or more was not judged idle
//! (most likely because the host descheduled it, and the guest skips a
//! vCPU the host reports preempted), so a helper woken for a block that
//! follows idle time (a node at the tip of the chain, one block every few
//! seconds) was queued behind the caller, busy running the block, until
//! the scheduler's tick moved it. A pool thread handed work after 5-50 ms
//! of idle time started 1.9-2.9 ms later (15-50 us when the caller slept
//! or yielded instead of running on, which shows where the helper was
//! queued); kept off the caller's core, 15-55 us later.
//! A mainnet-sized block of 1,000 transfers ran at about 1.0x of sequential
//! after 50 ms of idle time, against 1.5x back to back.
//!
//! So before a block hands its helpers work, each helper's affinity is set
//! to the cores it started with, less the caller's current core
//! ([`Placement::steer_off`]). Only when the helpers still fit on the
//! cores left: with more workers than cores they take turns on all of
//! them, as before. The masks change only when the caller's core does, so
//! a node whose executing thread stays put pays one `sched_getcpu` per
//! block. Two blocks run at once from callers on different cores steer
//! the same helpers in turn: that costs them speed, never correctness
//! (every parallel task is claimed, not assigned).
//!
//! Elsewhere than Linux nothing is steered.

#[cfg(target_os = "linux")]
use crate::parallel::mv_memory::lock;
#[cfg(target_os = "linux")]
use rustix::thread::{CpuSet, Pid, gettid, sched_getaffinity, sched_getcpu, sched_setaffinity};
#[cfg(target_os = "linux")]
use std::sync::Mutex;

/// The helper threads of one pool, and how they were last steered.
#[derive(Default)]
pub(crate) struct Placement {
    #[cfg(target_os = "linux")]
    steering: Mutex<Steering>,
}

#[cfg(target_os = "linux")]
#[derive(Default)]
struct Steering {
    /// Each helper's thread id and the cores it started with.
    helpers: Vec<(Pid, CpuSet)>,
    /// The last masks set: the caller's core they excluded (`None`: none),
    /// and how many helpers were registered then.
    steered: Option<(Option<usize>, usize)>,
}

impl Placement {
    /// Registers the calling thread, a helper that just started.
    pub(crate) fn register_current(&self) {
        #[cfg(target_os = "linux")]
        if let Ok(cores) = sched_getaffinity(None) {
            lock(&self.steering).helpers.push((gettid(), cores));
        }
    }

    /// Keeps the helpers off the calling thread's core, if `helpers` of
    /// them fit on the other cores they may run on; otherwise lets them
    /// run on all of those again. Errors leave a helper as it was: where
    /// it runs is a matter of speed only.
    pub(crate) fn steer_off(&self, helpers: usize) {
        #[cfg(target_os = "linux")]
        {
            let caller = sched_getcpu();
            if caller >= CpuSet::MAX_CPU {
                // Beyond what a mask holds (and what `register_current`
                // could have read): leave the helpers be.
                return;
            }
            let mut steering = lock(&self.steering);
            let fits = |cores: &CpuSet| cores.is_set(caller) && (cores.count() as usize) > helpers;
            let excluded = steering
                .helpers
                .first()
                .is_some_and(|(_, cores)| fits(cores))
                .then_some(caller);
            let wanted = Some((excluded, steering.helpers.len()));
            if steering.steered == wanted {
                return;
            }
            for (helper, cores) in &steering.helpers {
                let mut mask = *cores;
                if excluded.is_some() && fits(cores) {
                    mask.unset(caller);
                }
                let _ = sched_setaffinity(Some(*helper), &mask);
            }
            steering.steered = wanted;
        }
        #[cfg(not(target_os = "linux"))]
        let _ = helpers;
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// A helper is steered off the caller's core when the others can hold
    /// it, and given back its cores when they cannot.
    #[test]
    fn helpers_are_steered_off_the_callers_core_when_they_fit() {
        let placement = std::sync::Arc::new(Placement::default());
        let (started, stop) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
        let helper = {
            let placement = placement.clone();
            std::thread::spawn(move || {
                placement.register_current();
                started.0.send(gettid()).unwrap();
                let _ = stop.1.recv();
            })
        };
        let tid = started.1.recv().unwrap();
        let cores = sched_getaffinity(Some(tid)).unwrap();
        // The caller stays on one core while the test looks.
        let own = sched_getaffinity(None).unwrap();
        let caller = sched_getcpu();
        let mut here = CpuSet::new();
        here.set(caller);
        sched_setaffinity(None, &here).unwrap();
        placement.steer_off(1);
        let steered = sched_getaffinity(Some(tid)).unwrap();
        if cores.is_set(caller) && cores.count() > 1 {
            assert!(!steered.is_set(caller));
            assert_eq!(steered.count(), cores.count() - 1);
        } else {
            assert!(steered == cores);
        }
        // More helpers than the other cores: all of them again.
        placement.steer_off(cores.count() as usize);
        assert!(sched_getaffinity(Some(tid)).unwrap() == cores);
        sched_setaffinity(None, &own).unwrap();
        stop.0.send(()).unwrap();
        helper.join().unwrap();
    }
}
