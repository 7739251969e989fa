//! Timing helpers: medians of repeated runs.

use std::time::{Duration, Instant};

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
        sleep(idle);
        let start = Instant::now();
        let value = f()?;
        times.push(start.elapsed());
        last = Some(value);
    }
    times.sort();
    let median = times[times.len() / 2];
    Ok((last.expect("at least one run"), median))
}

/// A last result and the median time of its runs.
pub type Timed<T> = (T, Duration);

/// Below this much time in all, repeated measurements run on (up to
/// [`MAX_RUNS`]): the median of a handful of 0.1 ms runs is mostly noise.
const MIN_TOTAL: Duration = Duration::from_millis(50);
/// The most runs of each side when [`MIN_TOTAL`] extends a measurement.
const MAX_RUNS: usize = 500;

/// Sleeps for `idle`, if any: the time a node at the tip of the chain
/// sits idle between blocks (its cores asleep, its caches cooled).
pub fn sleep(idle: Duration) {
    if !idle.is_zero() {
        std::thread::sleep(idle);
    }
}

/// Whether a measurement asked for `repeat` runs goes on after `runs` of
/// them took `total`: up to `repeat`, and then, when `repeat` is above 1,
/// until they took [`MIN_TOTAL`] (at most [`MAX_RUNS`]).
pub fn more_runs(repeat: usize, runs: usize, total: Duration) -> bool {
    runs < repeat.max(1) || (repeat > 1 && total < MIN_TOTAL && runs < MAX_RUNS)
}

/// Runs `a` and `b` alternately `repeat` times each, after one untimed
/// warm-up of each, and returns their last results and median times.
/// Alternating exposes both to the same machine noise (other tenants, CPU
/// frequency), which matters when their ratio is the measurement. With
/// `repeat` above 1, short runs are repeated more, until both together
/// took [`MIN_TOTAL`]. Each timed run follows `idle` time asleep, which
/// counts towards that total.
pub fn interleaved_medians<A, B, E>(
    repeat: usize,
    idle: Duration,
    mut a: impl FnMut() -> Result<A, E>,
    mut b: impl FnMut() -> Result<B, E>,
) -> Result<(Timed<A>, Timed<B>), E> {
    let (mut last_a, mut last_b) = (a()?, b()?);
    let (mut times_a, mut times_b) = (Vec::new(), Vec::new());
    let mut total = Duration::ZERO;
    while more_runs(repeat, times_a.len(), total) {
        sleep(idle);
        let start = Instant::now();
        last_a = a()?;
        times_a.push(start.elapsed());
        sleep(idle);
        let start = Instant::now();
        last_b = b()?;
        times_b.push(start.elapsed());
        total += times_a[times_a.len() - 1] + times_b[times_b.len() - 1] + idle * 2;
    }
    times_a.sort();
    times_b.sort();
    let (median_a, median_b) = (times_a[times_a.len() / 2], times_b[times_b.len() / 2]);
    Ok(((last_a, median_a), (last_b, median_b)))
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
