//! Timing helpers: medians of repeated runs, and what this machine allows
//! (its ceiling for independent work, and what sharing a line costs).

use clap::Args;
use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

/// The options of a measurement that `replay` and `bench` share.
#[derive(Args)]
pub struct MeasureArgs {
    /// Also predict contract calls whose code's reach is unbounded (and
    /// creations) by their target, so that blocks with them may run as
    /// partitions (see `ParallelConfig::partition_contract_calls`).
    #[arg(long)]
    pub partition_calls: bool,
    /// Also measure this machine's ceiling for each block (with `replay`,
    /// under `--mode both`) or workload: as many copies of its sequential
    /// execution at once as can run at once (at most the cores), against
    /// one alone. Perfectly parallel work, sharing only caches and memory:
    /// no executor can beat it. `replay` then also gives the speedup the
    /// machine allows with the blocks' own dependencies: per block, the
    /// lower of the ceiling and the ideal bound. Also measured after each:
    /// what moving a cache line to another core and back costs, which
    /// parallel execution pays on every line another worker wrote, and the
    /// ceiling does not.
    #[arg(long)]
    pub ceiling: bool,
    /// Sleep this many milliseconds before every timed run, as a node at
    /// the tip of the chain meets each block after idle time: cores asleep
    /// (their wake-up is part of the parallel time) and caches cooled.
    #[arg(long, value_name = "MS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub idle: u64,
    /// Also measure where the time of each block run on Block-STM or as
    /// partitions goes (with `replay`, under `--mode parallel` or `both`):
    /// before the workers start, the workers executing, validating,
    /// waiting and assembling, and after them; each the median of the
    /// runs. Reading the clock around every Block-STM task costs cheap
    /// transactions a few percent.
    #[arg(long)]
    pub phases: bool,
}

impl MeasureArgs {
    /// The idle time before every timed run.
    pub fn idle(&self) -> Duration {
        Duration::from_millis(self.idle)
    }
}

/// Runs `f` `repeat` times, each after `idle` time asleep, and returns the
/// last result and the median time.
pub fn median_of<T, E>(
    repeat: usize,
    idle: Duration,
    mut f: impl FnMut() -> Result<T, E>,
) -> Result<(T, Duration), E> {
    let mut times = Vec::with_capacity(repeat.max(1));
    let mut last = None;
    for _ in 0..repeat.max(1) {
        last = Some(timed(&mut times, idle, &mut f)?);
    }
    Ok((last.expect("at least one run"), median(&mut times)))
}

/// The median of `times` (the slower of the middle two of an even count);
/// `times` must not be empty.
pub fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// The median over rounds of `before[i] / after[i]` (the lower of the
/// middle two of an even count): the speedup of a paired measurement, each
/// round timing both sides back to back.
///
/// The 2-core AMD VM slows down for seconds at a time, and by up to 15% run to
/// run, whatever runs: of 300 back-to-back pairs of the same sequential
/// work (ERC-20 transfers), windows of 11 read 0.99 +- 0.047 as the ratio
/// of the two sides' medians, and below 0.95 in 17% of them; the median of
/// the 11 rounds' ratios read 0.99 +- 0.024, below 0.95 in 7% (at 21
/// rounds, 0.034 and 13% against 0.014 and 2%). A slow phase lengthens
/// both runs of a round, so their ratio keeps; the two medians may come
/// from different phases.
///
/// `before` and `after` must have the same, non-zero, length.
pub fn paired_speedup(before: &[Duration], after: &[Duration]) -> f64 {
    let mut ratios: Vec<f64> = before
        .iter()
        .zip(after)
        .map(|(b, a)| b.as_secs_f64() / a.as_secs_f64().max(1e-12))
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios[(ratios.len() - 1) / 2]
}

/// A last result and the median time of its runs.
pub type Timed<T> = (T, Duration);

/// Below this much time in all, repeated measurements run on (up to
/// [`MAX_RUNS`]): the median of a handful of 0.1 ms runs is mostly noise.
const MIN_TOTAL: Duration = Duration::from_millis(50);
/// Below this much time in all, a measurement asked for one run runs on:
/// one run of a 10 us block read anywhere from 0.65x to 1.0x where both
/// sides run the same sequential executor.
const MIN_TOTAL_OF_ONE: Duration = Duration::from_millis(5);
/// The most runs of each side when [`MIN_TOTAL`] extends a measurement.
const MAX_RUNS: usize = 500;

/// Untimed warm-up rounds before a measurement run on at least until they
/// took this long (see [`warm_up`]).
const WARM_UP: Duration = Duration::from_millis(100);
/// The most untimed warm-up rounds before a measurement (see [`warm_up`]).
const MAX_WARM_UP_ROUNDS: usize = 10;

/// Runs `round` (one untimed run of each side of a measurement) until the
/// rounds took [`WARM_UP`], at most [`MAX_WARM_UP_ROUNDS`] times, at least
/// once. The first runs in a process fault in fresh memory, 2 MB huge
/// pages that took 1-2 ms each on the 2-core VM (10 faults in the first
/// sequential run of 5,000 transfers, 53 ms against 10 ms settled; 1-5 in
/// each of the next few runs of both sides, none once settled). One
/// warm-up run of each left up to four of eleven parallel runs stalled
/// (5.9 ms settled, 11-16 ms stalled), the parallel side's median then
/// resting on the stalled ones.
pub fn warm_up<E>(mut round: impl FnMut() -> Result<(), E>) -> Result<(), E> {
    let start = Instant::now();
    for _ in 0..MAX_WARM_UP_ROUNDS {
        round()?;
        if start.elapsed() >= WARM_UP {
            break;
        }
    }
    Ok(())
}

/// Sleeps for `idle`, if any: the time a node at the tip of the chain
/// sits idle between blocks (its cores asleep, its caches cooled).
pub fn sleep(idle: Duration) {
    if !idle.is_zero() {
        std::thread::sleep(idle);
    }
}

/// Whether a measurement asked for `repeat` runs goes on after `runs` of
/// them took `total`: up to `repeat`, and then until they took
/// [`MIN_TOTAL`] ([`MIN_TOTAL_OF_ONE`] when one run was asked for), at
/// most [`MAX_RUNS`]. A measurement run on beyond `repeat` stops at an odd
/// count, whose median is one of its runs rather than the slower of the
/// middle two.
pub fn more_runs(repeat: usize, runs: usize, total: Duration) -> bool {
    let min_total = if repeat <= 1 {
        MIN_TOTAL_OF_ONE
    } else {
        MIN_TOTAL
    };
    more_runs_until(repeat, runs, total, min_total)
}

/// [`more_runs`], running on past `repeat` until the runs took `min_total`.
pub fn more_runs_until(repeat: usize, runs: usize, total: Duration, min_total: Duration) -> bool {
    let repeat = repeat.max(1);
    runs < repeat
        || (runs < MAX_RUNS && (total < min_total || (runs > repeat && runs.is_multiple_of(2))))
}

/// [`more_runs_until`] for the first `part + 1` of `parts` passes of a
/// measurement spread over several (see `bench.rs`): up to that share of
/// `repeat`, of `min_total` and of [`MAX_RUNS`]; the last pass completes
/// the whole measurement, to an odd count where it ran on.
pub fn more_runs_in_part(
    repeat: usize,
    runs: usize,
    total: Duration,
    min_total: Duration,
    (part, parts): (usize, usize),
) -> bool {
    if part + 1 >= parts {
        return more_runs_until(repeat, runs, total, min_total);
    }
    let share = |n: usize| n * (part + 1) / parts;
    let time_share = min_total.mul_f64((part + 1) as f64 / parts as f64);
    runs < share(repeat.max(1)) || (runs < share(MAX_RUNS) && total < time_share)
}

/// What [`interleaved`] measured of two sides `a` and `b`.
pub struct Interleaved<A, B> {
    /// `a`'s last result and median time.
    pub a: Timed<A>,
    /// `b`'s last result and median time.
    pub b: Timed<B>,
    /// How many timed runs each had (the last of their runs).
    pub runs: usize,
    /// `a`'s time over `b`'s, round by round ([`paired_speedup`]).
    pub speedup: f64,
}

/// Runs `a` and `b` alternately `repeat` times each, after untimed warm-up
/// rounds ([`warm_up`]), and returns their last results, median times and
/// paired speedup.
/// Alternating exposes both to the same machine noise (other tenants, CPU
/// frequency), which matters when their ratio is the measurement; which
/// one goes first alternates too, so that neither always runs on caches
/// the other warmed. Short runs are repeated more, until both together
/// took [`MIN_TOTAL`] ([`MIN_TOTAL_OF_ONE`] at a `repeat` of 1; see
/// [`more_runs`]). Each timed run follows `idle` time asleep, which counts
/// towards that total.
pub fn interleaved<A, B, E>(
    repeat: usize,
    idle: Duration,
    mut a: impl FnMut() -> Result<A, E>,
    mut b: impl FnMut() -> Result<B, E>,
) -> Result<Interleaved<A, B>, E> {
    let mut warmed = None;
    warm_up(|| {
        warmed = Some((a()?, b()?));
        Ok(())
    })?;
    let (mut last_a, mut last_b) = warmed.expect("at least one warm-up round");
    let (mut times_a, mut times_b) = (Vec::new(), Vec::new());
    let mut total = Duration::ZERO;
    while more_runs(repeat, times_a.len(), total) {
        // Each result replaces the last only once timed: dropping a block's
        // result (its state changes and receipts) is not executing it.
        let a_first = times_a.len() % 2 == 0;
        if a_first {
            last_a = timed(&mut times_a, idle, &mut a)?;
        }
        last_b = timed(&mut times_b, idle, &mut b)?;
        if !a_first {
            last_a = timed(&mut times_a, idle, &mut a)?;
        }
        total += times_a[times_a.len() - 1] + times_b[times_b.len() - 1] + idle * 2;
    }
    let speedup = paired_speedup(&times_a, &times_b);
    Ok(Interleaved {
        runs: times_a.len(),
        speedup,
        a: (last_a, median(&mut times_a)),
        b: (last_b, median(&mut times_b)),
    })
}

/// Runs `f` after `idle` time asleep, recording how long it took.
pub fn timed<T>(times: &mut Vec<Duration>, idle: Duration, f: impl FnOnce() -> T) -> T {
    sleep(idle);
    let start = Instant::now();
    let value = f();
    times.push(start.elapsed());
    value
}

/// This machine's speedup on `copies` threads for perfectly parallel work:
/// `f` run `runs` times back to back on one thread, against `copies`
/// threads each doing the same at once (they share only caches and memory).
/// The one thread runs the same way, so that its caches are as warm.
pub fn ceiling_speedup<T, E: Send>(
    runs: usize,
    copies: usize,
    f: impl Fn() -> Result<T, E> + Sync,
) -> Result<f64, E> {
    let alone = time_per_run(runs, 1, &f)?;
    let together = time_per_run(runs, copies, &f)?;
    Ok(alone.as_secs_f64() / together.as_secs_f64().max(1e-12))
}

/// The wall time per run of `f` when `copies` threads each run it `runs`
/// times at once, back to back: the threads start once, so their start-up
/// (tens of microseconds, as long as a small block) is spread over the runs.
fn time_per_run<T, E: Send>(
    runs: usize,
    copies: usize,
    f: &(impl Fn() -> Result<T, E> + Sync),
) -> Result<Duration, E> {
    let each = || (0..runs).try_for_each(|_| f().map(drop));
    let start = Instant::now();
    std::thread::scope(|scope| {
        let others: Vec<_> = (1..copies).map(|_| scope.spawn(each)).collect();
        let mine = each();
        others
            .into_iter()
            .map(|other| {
                other
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            })
            .chain([mine])
            .collect::<Result<(), E>>()
    })?;
    Ok(start.elapsed() / u32::try_from((runs * copies).max(1)).unwrap_or(u32::MAX))
}

/// Milliseconds as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One cache line, alone on it and on the line the prefetcher pairs it
/// with.
#[repr(align(128))]
struct Line(AtomicU64);

/// Round trips per timed sample of [`line_round_trip`].
const TRIPS: u64 = 256;
/// Timed samples of [`line_round_trip`], of which it takes the median.
const SAMPLES: usize = 64;
/// Spins before a thread waiting for the line yields its core: far more
/// than a round trip takes between two running cores, so it only yields
/// where the two threads share one.
const SPINS_BEFORE_YIELD: u32 = 1 << 14;

/// What moving a cache line to another core and back costs on this
/// machine now: the median, over [`SAMPLES`] samples, of one round trip of
/// a line two threads write in turn, the calling thread on its core and
/// the other on another. Block-STM's workers pay this on every line the
/// other worker wrote (its write sets, the scheduler's counters), while
/// the ceiling, independent work, does not. On the 2-core VM the round
/// trip read 60-90 ns or 310-410 ns, switching within seconds (the host
/// moving its vCPUs, most likely), or about 30 ns (two hyperthreads of
/// one core, perhaps: the ceilings measured beside it read 0.9-1.2x).
/// Of 40 invocations on mainnet fixture 3356896 (176 cheap transactions
/// on Block-STM), 3 of the 26 with the 60-90 ns round trip before and
/// after ran below 0.8x of sequential, and 7 of the 14 with a 330-380 ns
/// one on either side. `None` if the two threads could not be put on two
/// cores.
pub fn line_round_trip() -> Option<Duration> {
    let cores = two_cores()?;
    let line = Line(AtomicU64::new(0));
    let wait_for = |value: u64| {
        let mut spins = 0u32;
        while line.0.load(Ordering::Acquire) != value {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(SPINS_BEFORE_YIELD) {
                std::thread::yield_now();
            }
            std::hint::spin_loop();
        }
    };
    let trips = TRIPS * SAMPLES as u64;
    let mut samples = Vec::with_capacity(SAMPLES);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            cores.pin_other();
            for trip in 0..trips {
                wait_for(2 * trip + 1);
                line.0.store(2 * trip + 2, Ordering::Release);
            }
        });
        cores.pin_caller();
        for sample in 0..SAMPLES as u64 {
            let start = Instant::now();
            for trip in sample * TRIPS..(sample + 1) * TRIPS {
                line.0.store(2 * trip + 1, Ordering::Release);
                wait_for(2 * trip + 2);
            }
            samples.push(start.elapsed() / TRIPS as u32);
        }
        cores.unpin_caller();
    });
    samples.sort();
    Some(samples[samples.len() / 2])
}

/// The calling thread's core and another it may run on, and the caller's
/// own cores to go back to.
#[cfg(target_os = "linux")]
struct TwoCores {
    caller: usize,
    others: rustix::thread::CpuSet,
    own: rustix::thread::CpuSet,
}

#[cfg(target_os = "linux")]
fn two_cores() -> Option<TwoCores> {
    use rustix::thread::{sched_getaffinity, sched_getcpu};
    let own = sched_getaffinity(None).ok()?;
    let caller = sched_getcpu();
    // A core past the set's capacity would index out of it.
    if caller >= rustix::thread::CpuSet::MAX_CPU {
        return None;
    }
    let mut others = own;
    others.unset(caller);
    (own.is_set(caller) && others.count() > 0).then_some(TwoCores {
        caller,
        others,
        own,
    })
}

#[cfg(target_os = "linux")]
impl TwoCores {
    fn pin_caller(&self) {
        let mut here = rustix::thread::CpuSet::new();
        here.set(self.caller);
        let _ = rustix::thread::sched_setaffinity(None, &here);
    }

    fn pin_other(&self) {
        let _ = rustix::thread::sched_setaffinity(None, &self.others);
    }

    fn unpin_caller(&self) {
        let _ = rustix::thread::sched_setaffinity(None, &self.own);
    }
}

/// Elsewhere than Linux the threads are not placed: two of them are
/// measured wherever the system runs them, if it has two cores.
#[cfg(not(target_os = "linux"))]
struct TwoCores;

#[cfg(not(target_os = "linux"))]
fn two_cores() -> Option<TwoCores> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores > 1).then_some(TwoCores)
}

#[cfg(not(target_os = "linux"))]
impl TwoCores {
    fn pin_caller(&self) {}
    fn pin_other(&self) {}
    fn unpin_caller(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many runs each side of a measurement gets, each run taking
    /// `each` (both sides together).
    fn runs(repeat: usize, each: Duration) -> usize {
        let mut runs = 0;
        while more_runs(repeat, runs, each * runs as u32) {
            runs += 1;
        }
        runs
    }

    #[test]
    fn short_blocks_run_on_to_an_odd_count_and_long_ones_as_asked() {
        let ms = Duration::from_millis;
        // One run asked for: a short block runs on until 5 ms, to an odd count.
        assert_eq!(runs(1, Duration::from_micros(20)), 251);
        assert_eq!(runs(1, ms(2)), 3);
        assert_eq!(runs(1, ms(5)), 1);
        // More asked for: until 50 ms, to an odd count.
        assert_eq!(runs(5, ms(9)), 7);
        assert_eq!(runs(5, ms(20)), 5);
        assert_eq!(runs(4, ms(20)), 4);
        // Never more than the cap.
        assert_eq!(runs(3, Duration::ZERO), MAX_RUNS);
    }

    #[test]
    fn a_floor_on_the_time_runs_cheap_blocks_on_to_an_odd_count() {
        let runs_until = |repeat: usize, each: Duration, floor: Duration| {
            let mut runs = 0;
            while more_runs_until(repeat, runs, each * runs as u32, floor) {
                runs += 1;
            }
            runs
        };
        let ms = Duration::from_millis;
        assert_eq!(runs_until(11, ms(30), ms(1500)), 51);
        assert_eq!(runs_until(11, ms(300), ms(1500)), 11);
        assert_eq!(runs_until(11, ms(1), Duration::ZERO), 11);
        assert_eq!(runs_until(11, Duration::ZERO, ms(1500)), MAX_RUNS);
    }

    /// Spread over passes, a measurement gets as many runs as in one, each
    /// pass about its share.
    #[test]
    fn passes_share_a_measurement_out() {
        let ms = Duration::from_millis;
        let passes = |repeat: usize, each: Duration, floor: Duration, parts: usize| {
            let mut runs = 0;
            let mut after = Vec::new();
            for part in 0..parts {
                while more_runs_in_part(repeat, runs, each * runs as u32, floor, (part, parts)) {
                    runs += 1;
                }
                after.push(runs);
            }
            after
        };
        assert_eq!(passes(21, ms(300), ms(1500), 3), [7, 14, 21]);
        assert_eq!(passes(21, ms(30), ms(1500), 3), [17, 34, 51]);
        assert_eq!(passes(21, ms(30), ms(1500), 1), [51]);
        assert_eq!(passes(1, ms(1), Duration::ZERO, 1), [1]);
        assert_eq!(passes(3, Duration::ZERO, ms(1500), 3), [166, 333, MAX_RUNS]);
    }

    /// A round that caught a slow phase (both its runs slow) moves the
    /// paired speedup no more than any other round; the ratio of the
    /// medians took its sides from different rounds.
    #[test]
    fn the_paired_speedup_is_the_median_of_the_rounds_ratios() {
        let ms = Duration::from_millis;
        let before = [ms(20), ms(40), ms(20), ms(40), ms(20)];
        let after = [ms(10), ms(20), ms(10), ms(20), ms(20)];
        assert_eq!(paired_speedup(&before, &after), 2.0);
        let (mut b, mut a) = (before, after);
        assert_eq!(
            median(&mut b).as_secs_f64() / median(&mut a).as_secs_f64(),
            1.0
        );
        // Of an even count, the lower of the middle two.
        assert_eq!(paired_speedup(&[ms(3), ms(1)], &[ms(1), ms(1)]), 1.0);
    }

    /// Quick rounds warm up to the cap, a round as long as the warm-up
    /// alone, and a failing round stops it.
    #[test]
    fn warm_up_runs_until_it_took_long_enough_and_stops_on_an_error() {
        let mut rounds = 0;
        let Ok(()) = warm_up(|| {
            rounds += 1;
            Ok::<(), std::convert::Infallible>(())
        });
        assert_eq!(rounds, MAX_WARM_UP_ROUNDS);
        rounds = 0;
        let Ok(()) = warm_up(|| {
            rounds += 1;
            std::thread::sleep(WARM_UP);
            Ok::<(), std::convert::Infallible>(())
        });
        assert_eq!(rounds, 1);
        rounds = 0;
        let failed = warm_up(|| {
            rounds += 1;
            Err("no")
        });
        assert_eq!((failed, rounds), (Err("no"), 1));
    }

    /// The measurement ends, and leaves the calling thread free to run
    /// wherever it could before.
    #[test]
    fn a_line_round_trip_leaves_the_caller_where_it_may_run() {
        #[cfg(target_os = "linux")]
        let before = rustix::thread::sched_getaffinity(None).expect("own affinity");
        if let Some(round_trip) = line_round_trip() {
            assert!(round_trip > Duration::ZERO);
        }
        #[cfg(target_os = "linux")]
        assert!(rustix::thread::sched_getaffinity(None).expect("own affinity") == before);
    }
}
