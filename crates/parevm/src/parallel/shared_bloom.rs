//! A large receipt's logs bloom, hashed in chunks by the worker that
//! executed the transaction and by every worker that has nothing else to do.
//!
//! A bloom hashes each log's address and topics; a memo ([`BloomMemo`])
//! saves the repeats, but a transaction whose logs are mostly distinct is
//! one long hashing job on one thread. Mainnet fixture 15537394 (the Merge)
//! holds a transaction with 10,001 logs whose bloom took 3.2 ms of the
//! block's 4.9 ms on two workers, while the other worker, done with the
//! rest of the block, waited for it.
//!
//! Invariants:
//! - Each chunk is claimed once (`chunks`), hashed by its claimer, and OR-ed
//!   into `bloom` before `finished` counts it; OR commutes, so the bloom is
//!   the same whoever hashes which chunk.
//! - The executing worker's task stays active until `finished` reaches
//!   `chunks`, so the block cannot end with a bloom half hashed.

use super::{
    helpers::{Claims, Idle},
    mv_memory::lock,
};
use crate::receipt::BloomMemo;
use alloy_primitives::{Bloom, Log};
use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

/// Logs per chunk: a few hundred microseconds of hashing at most.
const CHUNK_LOGS: usize = 256;

/// Receipts with at least this many logs share their bloom's hashing.
pub(crate) const SHARED_FROM_LOGS: usize = 2 * CHUNK_LOGS;

/// The logs whose bloom is being hashed, and its progress.
struct Job {
    logs: Vec<Log>,
    /// The chunks of `CHUNK_LOGS` logs, each hashed by whoever claims it.
    chunks: Claims,
    /// Chunks hashed and OR-ed into `bloom`.
    finished: AtomicUsize,
    bloom: Mutex<Bloom>,
}

impl Job {
    fn new(logs: Vec<Log>) -> Self {
        Self {
            chunks: Claims::new(logs.len().div_ceil(CHUNK_LOGS)),
            logs,
            finished: AtomicUsize::new(0),
            bloom: Mutex::new(Bloom::ZERO),
        }
    }

    /// Hashes unclaimed chunks until none is left; whether it hashed any.
    fn help(&self, memo: &mut BloomMemo) -> bool {
        let mut helped = false;
        self.chunks.run(|chunk| {
            let start = chunk * CHUNK_LOGS;
            let end = (start + CHUNK_LOGS).min(self.logs.len());
            let part = memo.logs_bloom(&self.logs[start..end]);
            *lock(&self.bloom) |= part;
            self.finished.fetch_add(1, Ordering::Release);
            helped = true;
        });
        helped
    }

    fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire) == self.chunks.count()
    }
}

/// The block's one posted bloom job, if any; shared by its workers.
#[derive(Default)]
pub(crate) struct SharedBloom {
    /// Whether a job is posted: idle workers poll this, not the lock.
    posted: AtomicBool,
    job: Mutex<Option<Arc<Job>>>,
}

impl SharedBloom {
    /// The bloom of `logs`, hashed with whichever workers call
    /// [`Self::help`] meanwhile; `wait` runs between polls for chunks
    /// others are still hashing, and says whether to stop waiting (the
    /// block was halted). Returns the logs with their bloom, or `None` if
    /// it stopped waiting. With another job posted, it hashes alone.
    pub(crate) fn hash(
        &self,
        logs: Vec<Log>,
        memo: &mut BloomMemo,
        wait: impl FnMut() -> bool,
    ) -> Option<(Vec<Log>, Bloom)> {
        self.hash_job(Arc::new(Job::new(logs)), memo, wait)
    }

    fn hash_job(
        &self,
        job: Arc<Job>,
        memo: &mut BloomMemo,
        mut wait: impl FnMut() -> bool,
    ) -> Option<(Vec<Log>, Bloom)> {
        let posted = self.post(&job);
        job.help(memo);
        let mut halted = false;
        while !job.is_finished() && !halted {
            halted = wait();
        }
        if posted {
            self.posted.store(false, Ordering::Release);
            *lock(&self.job) = None;
        }
        if halted {
            return None;
        }
        // Helpers drop their handles as soon as they find no chunk left; one
        // preempted before it does (more workers than cores) must get its
        // core back, so this waits as an idle worker does.
        let (mut job, mut idle) = (job, Idle::default());
        let job = loop {
            match Arc::try_unwrap(job) {
                Ok(job) => break job,
                Err(shared) => {
                    job = shared;
                    idle.wait();
                }
            }
        };
        let bloom = job.bloom.into_inner().unwrap_or_else(|e| e.into_inner());
        Some((job.logs, bloom))
    }

    fn post(&self, job: &Arc<Job>) -> bool {
        let mut slot = lock(&self.job);
        if slot.is_some() {
            return false;
        }
        *slot = Some(job.clone());
        self.posted.store(true, Ordering::Release);
        true
    }

    /// Hashes chunks of the posted job, if there is one; whether it did.
    pub(crate) fn help(&self, memo: &mut BloomMemo) -> bool {
        if !self.posted.load(Ordering::Acquire) {
            return false;
        }
        let Some(job) = lock(&self.job).clone() else {
            return false;
        };
        job.help(memo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{Address, B256, Bytes, LogData};

    fn logs(n: usize) -> Vec<Log> {
        (0..n)
            .map(|i| Log {
                address: Address::repeat_byte((i % 7) as u8),
                data: LogData::new_unchecked(
                    vec![B256::left_padding_from(&(i as u64).to_be_bytes())],
                    Bytes::new(),
                ),
            })
            .collect()
    }

    /// Hashed by two threads at once, the bloom is alloy's, and the logs
    /// come back unchanged.
    #[test]
    fn shared_bloom_equals_alloys() {
        let shared = SharedBloom::default();
        for n in [1, CHUNK_LOGS, SHARED_FROM_LOGS + 1, 10 * CHUNK_LOGS + 3] {
            let expected = logs(n);
            let stop = AtomicBool::new(false);
            let (logs, bloom) = std::thread::scope(|scope| {
                scope.spawn(|| {
                    let mut memo = BloomMemo::new();
                    while !stop.load(Ordering::Acquire) {
                        shared.help(&mut memo);
                    }
                });
                let hashed = shared.hash(logs(n), &mut BloomMemo::new(), || false);
                stop.store(true, Ordering::Release);
                hashed.expect("not halted")
            });
            assert_eq!(bloom, alloy_primitives::logs_bloom(&expected));
            assert_eq!(logs, expected);
        }
    }

    /// With another job posted, the bloom is hashed alone and still right.
    #[test]
    fn second_job_hashes_alone() {
        let shared = SharedBloom::default();
        assert!(shared.post(&Arc::new(Job::new(logs(SHARED_FROM_LOGS)))));
        let second = logs(SHARED_FROM_LOGS + 5);
        let (_, bloom) = shared
            .hash(second.clone(), &mut BloomMemo::new(), || false)
            .expect("not halted");
        assert_eq!(bloom, alloy_primitives::logs_bloom(&second));
        assert!(lock(&shared.job).is_some(), "the other job stays posted");
    }

    /// A halted block stops waiting for a chunk its claimer never hashes
    /// (as a worker that panicked mid-chunk would leave it).
    #[test]
    fn halted_wait_gives_up() {
        let shared = SharedBloom::default();
        let job = Job::new(logs(3 * CHUNK_LOGS));
        // Claimed and never hashed.
        assert_eq!(job.chunks.claim(), Some(0));
        let mut waits = 0;
        let hashed = shared.hash_job(Arc::new(job), &mut BloomMemo::new(), || {
            waits += 1;
            waits == 3
        });
        assert!(hashed.is_none());
        assert_eq!(waits, 3);
    }
}
