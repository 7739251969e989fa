//! Timing helpers: medians of repeated runs.

use std::time::{Duration, Instant};

/// Runs `f` `repeat` times and returns the last result and the median time.
pub fn median_of<T, E>(
    repeat: usize,
    mut f: impl FnMut() -> Result<T, E>,
) -> Result<(T, Duration), E> {
    let mut times = Vec::with_capacity(repeat.max(1));
    let mut last = None;
    for _ in 0..repeat.max(1) {
        let start = Instant::now();
        let value = f()?;
        times.push(start.elapsed());
        last = Some(value);
    }
    times.sort();
    let median = times[times.len() / 2];
    Ok((last.expect("at least one run"), median))
}

/// Milliseconds as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
