//! `--phases` (`replay`, `bench`): where the time of blocks run on
//! Block-STM or as partitions went ([`PhaseTimes`]), per block and summed.

use parevm::PhaseTimes;
use std::time::Duration;

/// Each field's median over `runs` (a field's own median, not one run's);
/// `None` without runs.
pub fn median(runs: &[PhaseTimes]) -> Option<PhaseTimes> {
    let first = runs.first()?;
    let of = |field: fn(&PhaseTimes) -> Duration| {
        let mut values: Vec<Duration> = runs.iter().map(field).collect();
        values.sort_unstable();
        values[values.len() / 2]
    };
    Some(PhaseTimes {
        threads: first.threads,
        before: of(|p| p.before),
        running: of(|p| p.running),
        after: of(|p| p.after),
        executing: of(|p| p.executing),
        validating: of(|p| p.validating),
        waiting: of(|p| p.waiting),
        assembling: of(|p| p.assembling),
    })
}

/// The workers' time that no task accounts for: between tasks, and before
/// a helper joined.
fn between_tasks(p: &PhaseTimes) -> Duration {
    let tasks = p.executing + p.validating + p.waiting + p.assembling;
    (p.running * p.threads as u32).saturating_sub(tasks)
}

/// One block's phases, for the line under its own.
pub fn line(p: &PhaseTimes) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "    phases: before {:.3} ms, workers {:.3} ms on {} threads (executing {:.3}, \
         validating {:.3}, waiting {:.3}, assembling {:.3}, between tasks {:.3}), after {:.3} ms",
        ms(p.before),
        ms(p.running),
        p.threads,
        ms(p.executing),
        ms(p.validating),
        ms(p.waiting),
        ms(p.assembling),
        ms(between_tasks(p)),
        ms(p.after)
    )
}

/// The phases of `blocks` (run as `label` says), summed, as shares: of
/// the blocks' time on the caller (before, workers, after), and of the
/// workers' time (each worker's share of the workers' wall time).
pub fn summary<'a>(
    label: &str,
    blocks: impl IntoIterator<Item = &'a PhaseTimes>,
) -> Option<String> {
    let mut sum = PhaseTimes::default();
    let (mut count, mut workers, mut between) = (0, Duration::ZERO, Duration::ZERO);
    for p in blocks {
        count += 1;
        sum.before += p.before;
        sum.running += p.running;
        sum.after += p.after;
        sum.executing += p.executing;
        sum.validating += p.validating;
        sum.waiting += p.waiting;
        sum.assembling += p.assembling;
        workers += p.running * p.threads as u32;
        between += between_tasks(p);
    }
    let caller = sum.before + sum.running + sum.after;
    if count == 0 || caller.is_zero() || workers.is_zero() {
        return None;
    }
    let share = |d: Duration, of: Duration| d.as_secs_f64() / of.as_secs_f64() * 100.0;
    Some(format!(
        "phases over {count} blocks {label} ({:.1} ms): before the workers {:.1}%, \
         workers {:.1}%, after {:.1}%; of the workers' time: executing {:.1}%, validating \
         {:.1}%, waiting {:.1}%, assembling {:.1}%, between tasks {:.1}%",
        caller.as_secs_f64() * 1e3,
        share(sum.before, caller),
        share(sum.running, caller),
        share(sum.after, caller),
        share(sum.executing, workers),
        share(sum.validating, workers),
        share(sum.waiting, workers),
        share(sum.assembling, workers),
        share(between, workers)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phases(before_us: u64, executing_us: u64) -> PhaseTimes {
        let us = Duration::from_micros;
        PhaseTimes {
            threads: 2,
            before: us(before_us),
            running: us(100),
            after: us(10),
            executing: us(executing_us),
            validating: us(20),
            waiting: us(30),
            assembling: us(10),
        }
    }

    #[test]
    fn the_median_is_taken_field_by_field() {
        let runs = [phases(5, 100), phases(1, 300), phases(3, 200)];
        let median = median(&runs).expect("runs");
        assert_eq!(median.before, Duration::from_micros(3));
        assert_eq!(median.executing, Duration::from_micros(200));
        assert_eq!(median.threads, 2);
        assert_eq!(super::median(&[]), None);
    }

    #[test]
    fn time_between_tasks_is_the_workers_time_no_task_took() {
        // 2 threads for 100 us, of which 120 + 20 + 30 + 10 us in tasks.
        assert_eq!(between_tasks(&phases(0, 120)), Duration::from_micros(20));
        // Sums above the wall time (clock granularity) read as none.
        assert_eq!(between_tasks(&phases(0, 500)), Duration::ZERO);
    }

    #[test]
    fn the_summary_gives_shares_of_the_callers_and_the_workers_time() {
        let blocks = [phases(10, 120), phases(10, 120)];
        let line = summary("on Block-STM", &blocks).expect("blocks");
        // Caller: 20 us before, 200 running, 20 after, of 240 us.
        assert!(line.contains("before the workers 8.3%"), "{line}");
        assert!(line.contains("workers 83.3%"), "{line}");
        // Workers: 400 us, of which 240 executing and 40 between tasks.
        assert!(line.contains("executing 60.0%"), "{line}");
        assert!(line.contains("between tasks 10.0%"), "{line}");
        assert!(
            line.starts_with("phases over 2 blocks on Block-STM"),
            "{line}"
        );
        assert_eq!(summary("on Block-STM", &[]), None);
    }
}
