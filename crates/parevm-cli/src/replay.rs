//! `parevm replay`: execute fixture blocks and verify them against their headers.

use crate::output::outln;
use crate::timing::{MeasureArgs, ceiling_speedup, interleaved, line_round_trip, median_of, ms};
use clap::{Args, ValueEnum};
use parevm::{
    BlockResult, ExecutionError, ExecutionStats, ParallelConfig, PhaseTimes, execute_parallel,
    execute_sequential,
    fixture::{block_dirs, load_mainnet_block},
    verify::verify_against_header,
};
use serde::Serialize;
use std::{cmp::Ordering, path::PathBuf, process::ExitCode};

/// Which executors `replay` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Only the sequential executor.
    Sequential,
    /// Only the parallel executor.
    Parallel,
    /// Both, checking that they agree, and report the speedup.
    Both,
}

/// Arguments of `parevm replay`.
#[derive(Args)]
pub struct ReplayArgs {
    /// Block folders, or folders of block folders (mainnet fixture format).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Which executor(s) to run.
    #[arg(long, value_enum, default_value = "sequential")]
    mode: Mode,
    /// Worker threads for the parallel executor (default: available cores).
    #[arg(long, value_parser = crate::thread_count)]
    threads: Option<usize>,
    /// Runs per block and executor; times are the median. Default: 3 with
    /// `--mode both`, whose speedups one run per block misreads (the
    /// parallel side, on every core, meets more of the machine's noise),
    /// else 1. With `--mode both`, both first run untimed until they took
    /// 100 ms (at most 10 times each), and a short block runs more often (up
    /// to 500 times, to an odd count) until both executors together ran
    /// 50 ms, or 5 ms at a repeat of 1: one run of a 10 us block is noise.
    #[arg(long)]
    repeat: Option<usize>,
    #[command(flatten)]
    measure: MeasureArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs per block and executor at the default `--repeat`, by mode.
const DEFAULT_REPEAT_OF_BOTH: usize = 3;

impl ReplayArgs {
    /// Runs per block and executor: `--repeat`, or its default for the
    /// mode.
    fn repeat(&self) -> usize {
        match (self.repeat, self.mode) {
            (Some(repeat), _) => repeat,
            (None, Mode::Both) => DEFAULT_REPEAT_OF_BOTH,
            (None, _) => 1,
        }
    }
}

#[derive(Serialize, Default)]
struct BlockReport {
    number: Option<u64>,
    fork: Option<String>,
    transactions: usize,
    gas_used: u64,
    verified: bool,
    error: Option<String>,
    sequential_ms: Option<f64>,
    parallel_ms: Option<f64>,
    /// The median of the rounds' ratios, sequential time over parallel
    /// time of the same round (`timing::paired_speedup`); the aggregate
    /// and per-path speedups are ratios of summed median times.
    speedup: Option<f64>,
    threads: Option<usize>,
    path: Option<String>,
    /// Why the parallel executor ran the block sequentially, if it did.
    fallback_reason: Option<String>,
    /// Ideal speedup at `threads` from the block's dependency graph (`parevm analyze`).
    ideal_bound: Option<f64>,
    /// Measured speedup / ideal bound.
    efficiency: Option<f64>,
    /// This machine's speedup on perfectly parallel work: the block's
    /// sequential execution, as many copies at once as the threads that
    /// can run at once (`--ceiling`).
    ceiling_speedup: Option<f64>,
    /// With `--ceiling`: what moving a cache line to another core and back
    /// cost, measured right after the block's runs, in nanoseconds
    /// (Block-STM pays it on every line another worker wrote; see
    /// `line_round_trip`).
    line_round_trip_ns: Option<f64>,
    /// What the parallel executor did in the run whose result was kept
    /// (executions, validations, aborts, partitions, ...).
    stats: Option<ExecutionStats>,
    /// With `--phases`, for a block run on Block-STM or as partitions:
    /// where its time went, each field the median of the timed runs
    /// (`stats` then has none).
    phases: Option<PhaseTimes>,
    #[serde(skip)]
    source: String,
}

#[derive(Serialize)]
struct Report {
    blocks: Vec<BlockReport>,
    passed: usize,
    failed: usize,
    aggregate_speedup: Option<f64>,
    /// With `--ceiling`: the aggregate speedup the machine allows with the
    /// blocks' own dependencies (per block, the lower of `ceiling_speedup`
    /// and `ideal_bound`).
    achievable_speedup: Option<f64>,
    /// With `--mode both`: the blocks grouped by the executor that ran
    /// them, so that the aggregate can be read path by path.
    by_path: Vec<PathSummary>,
}

/// The blocks one executor ran (`path`, as in each block's report), with
/// `--mode both`.
#[derive(Serialize, Debug, PartialEq)]
struct PathSummary {
    path: String,
    blocks: usize,
    sequential_ms: f64,
    parallel_ms: f64,
    /// Their share of the sequential time of every block timed both ways.
    share_of_sequential: f64,
    speedup: f64,
    /// With `--ceiling`: what the machine allows these blocks (see
    /// `Report::achievable_speedup`).
    achievable_speedup: Option<f64>,
}

/// Runs `parevm replay`: every block, a line each (or one JSON object),
/// then the summary; fails if any block did not verify.
pub fn run(args: ReplayArgs) -> Result<ExitCode, String> {
    let config = check_args(&args)?;
    crate::warn_if_oversubscribed(&config);
    let report = Report::of(replay_all(&args, &config), &args);
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
    } else {
        print_summary(&report);
    }
    Ok(match report.failed {
        0 => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

/// The parallel executor's configuration, or why the arguments do not go
/// together.
fn check_args(args: &ReplayArgs) -> Result<ParallelConfig, String> {
    if args.repeat == Some(0) {
        return Err("--repeat must be at least 1".into());
    }
    if args.measure.ceiling && args.mode != Mode::Both {
        return Err("--ceiling needs --mode both".into());
    }
    if args.measure.phases && args.mode == Mode::Sequential {
        return Err("--phases needs --mode parallel or both".into());
    }
    let mut config = match args.threads {
        Some(n) => ParallelConfig::with_threads(n),
        None => ParallelConfig::default(),
    };
    config.partition_contract_calls = args.measure.partition_calls;
    config.phase_times = args.measure.phases;
    Ok(config)
}

/// Every block under the paths, replayed in order; a path that holds no
/// block is reported as a failed one. Prints each block's line as it goes,
/// unless the output is JSON.
fn replay_all(args: &ReplayArgs, config: &ParallelConfig) -> Vec<BlockReport> {
    let mut blocks = Vec::new();
    let mut report = |block: BlockReport| {
        if !args.json {
            print_line(&block, args.mode);
        }
        blocks.push(block);
    };
    for path in &args.paths {
        match block_dirs(path) {
            Ok(dirs) => dirs
                .iter()
                .for_each(|dir| report(replay_one(dir, args, config))),
            Err(error) => report(BlockReport {
                error: Some(error.to_string()),
                source: path.display().to_string(),
                ..Default::default()
            }),
        }
    }
    blocks
}

impl Report {
    /// The summary of `blocks`: how many verified, and with `--mode both`
    /// the aggregate speedup (and with `--ceiling` what the machine allows).
    fn of(blocks: Vec<BlockReport>, args: &ReplayArgs) -> Self {
        let passed = blocks.iter().filter(|b| b.verified).count();
        let (seq_total, par_total) = totals(&blocks);
        let aggregate_speedup =
            (args.mode == Mode::Both && par_total > 0.0).then(|| seq_total / par_total);
        let ceiling = args.measure.ceiling;
        Self {
            achievable_speedup: achievable(&blocks).filter(|_| ceiling),
            by_path: match aggregate_speedup {
                Some(_) => by_path(&blocks, ceiling),
                None => Vec::new(),
            },
            failed: blocks.len() - passed,
            blocks,
            passed,
            aggregate_speedup,
        }
    }

    /// The block with the lowest speedup, if any has one.
    fn worst(&self) -> Option<&BlockReport> {
        self.blocks
            .iter()
            .filter(|b| b.speedup.is_some())
            .min_by(|a, b| a.speedup.partial_cmp(&b.speedup).unwrap_or(Ordering::Equal))
    }
}

/// The sequential and the parallel times summed over the blocks timed both ways.
fn totals<'a>(blocks: impl IntoIterator<Item = &'a BlockReport>) -> (f64, f64) {
    blocks
        .into_iter()
        .filter_map(|b| Some((b.sequential_ms?, b.parallel_ms?)))
        .fold((0.0, 0.0), |(s, p), (a, b)| (s + a, p + b))
}

/// The blocks timed both ways, grouped by the executor that ran them,
/// the one with the most sequential time first; with what the machine
/// allows each group if its `ceiling` was measured.
fn by_path(blocks: &[BlockReport], ceiling: bool) -> Vec<PathSummary> {
    let timed = || blocks.iter().filter(|b| b.parallel_ms.is_some());
    let (seq_total, _) = totals(timed());
    let mut paths: Vec<&str> = timed().filter_map(|b| b.path.as_deref()).collect();
    paths.sort_unstable();
    paths.dedup();
    let mut summaries: Vec<PathSummary> = paths
        .into_iter()
        .filter_map(|path| {
            let of_path = || timed().filter(move |b| b.path.as_deref() == Some(path));
            let (sequential_ms, parallel_ms) = totals(of_path());
            (parallel_ms > 0.0).then(|| PathSummary {
                path: path.to_string(),
                blocks: of_path().count(),
                sequential_ms,
                parallel_ms,
                share_of_sequential: sequential_ms / seq_total.max(1e-12),
                speedup: sequential_ms / parallel_ms,
                achievable_speedup: achievable(of_path()).filter(|_| ceiling),
            })
        })
        .collect();
    summaries.sort_by(|a, b| b.sequential_ms.total_cmp(&a.sequential_ms));
    summaries
}

/// The lowest, median and highest of the blocks' line round trips.
fn round_trips(blocks: &[BlockReport]) -> Option<(f64, f64, f64)> {
    let mut trips: Vec<f64> = blocks.iter().filter_map(|b| b.line_round_trip_ns).collect();
    trips.sort_by(f64::total_cmp);
    Some((*trips.first()?, trips[trips.len() / 2], *trips.last()?))
}

/// The summary lines after the blocks' own.
fn print_summary(report: &Report) {
    if let Some(speedup) = report.aggregate_speedup {
        let (seq_total, par_total) = totals(&report.blocks);
        let worst = report.worst().map(|w| {
            format!(
                ", worst block {} at {:.2}x",
                w.number.unwrap_or_default(),
                w.speedup.unwrap_or_default()
            )
        });
        outln!(
            "aggregate speedup {speedup:.2}x (sequential {seq_total:.1} ms / parallel {par_total:.1} ms){}",
            worst.unwrap_or_default()
        );
        if let Some(achievable) = report.achievable_speedup {
            outln!(
                "this machine allows {achievable:.2}x with the blocks' dependencies: {:.0}% of it reached",
                speedup / achievable * 100.0
            );
        }
        for path in &report.by_path {
            print_path(path);
        }
        if let Some((low, median, high)) = round_trips(&report.blocks) {
            outln!(
                "a cache line's round trip between cores: median {median:.0} ns, {low:.0}-{high:.0} ns"
            );
        }
    }
    for (path, label) in [
        ("parallel", "on Block-STM"),
        ("partitioned", "as partitions"),
    ] {
        let of_path = report
            .blocks
            .iter()
            .filter(|b| b.path.as_deref() == Some(path));
        if let Some(phases) =
            crate::phases::summary(label, of_path.filter_map(|b| b.phases.as_ref()))
        {
            outln!("{phases}");
        }
    }
    outln!("{} passed, {} failed", report.passed, report.failed);
}

/// How long, at least, each copy runs a block to measure the ceiling.
const CEILING_MS: f64 = 50.0;

fn replay_one(dir: &std::path::Path, args: &ReplayArgs, config: &ParallelConfig) -> BlockReport {
    let mut report = BlockReport {
        source: dir.display().to_string(),
        ..Default::default()
    };
    let fixture = match load_mainnet_block(dir) {
        Ok(f) => f,
        Err(error) => {
            report.error = Some(error.to_string());
            return report;
        }
    };
    let block = &fixture.block;
    report.number = Some(block.header.number);
    report.fork = Some(block.fork_name().to_string());
    report.transactions = block.transactions.len();
    match execute_and_check(args, config, &fixture, &mut report) {
        Ok(result) => {
            report.gas_used = result.gas_used;
            match verify_against_header(block, &result) {
                Ok(()) => report.verified = true,
                Err(error) => report.error = Some(error.to_string()),
            }
        }
        Err(error) => report.error = Some(error),
    }
    report
}

fn execute_and_check(
    args: &ReplayArgs,
    config: &ParallelConfig,
    fixture: &parevm::fixture::MainnetFixture,
    report: &mut BlockReport,
) -> Result<BlockResult, String> {
    let (block, state) = (&fixture.block, &fixture.state);
    let err = |e: ExecutionError| e.to_string();
    let idle = args.measure.idle();
    if args.mode == Mode::Sequential {
        let (result, time) =
            median_of(args.repeat(), idle, || execute_sequential(block, state)).map_err(err)?;
        report.sequential_ms = Some(ms(time));
        report.path = Some(result.path.as_str().into());
        return Ok(result);
    }
    let mut phases = Vec::new();
    let run_parallel = || {
        let result = execute_parallel(block, state, config)?;
        phases.extend(result.stats.phases);
        Ok(result)
    };
    let (sequential, (parallel, time), timed_runs) = if args.mode == Mode::Both {
        let measured = interleaved(
            args.repeat(),
            idle,
            || execute_sequential(block, state),
            run_parallel,
        )
        .map_err(err)?;
        let (sequential, seq_time) = measured.a;
        report.sequential_ms = Some(ms(seq_time));
        report.speedup = Some(measured.speedup);
        (Some(sequential), measured.b, measured.runs)
    } else {
        let parallel = median_of(args.repeat(), idle, run_parallel).map_err(err)?;
        (None, parallel, usize::MAX)
    };
    report.parallel_ms = Some(ms(time));
    report.threads = Some(config.threads);
    report.path = Some(parallel.path.as_str().into());
    report.fallback_reason = parallel.path.fallback_reason().map(|r| r.as_str().into());
    // `interleaved` warms up with untimed runs first: only the
    // phases of the timed runs, the last ones, count.
    report.phases = crate::phases::median(&phases[phases.len().saturating_sub(timed_runs)..]);
    report.stats = Some(ExecutionStats {
        phases: None,
        ..parallel.stats
    });
    if let Some(sequential) = sequential {
        if let Some(difference) = sequential.first_difference(&parallel) {
            return Err(format!("parallel differs from sequential: {difference}"));
        }
        measure_bounds(args, config, fixture, report)?;
    }
    Ok(parallel)
}

/// What the block's dependencies allow (its ideal bound, and the share of
/// it reached) and, with `--ceiling`, what this machine allows: the
/// speedup of as many copies of its sequential run at once as can run.
fn measure_bounds(
    args: &ReplayArgs,
    config: &ParallelConfig,
    fixture: &parevm::fixture::MainnetFixture,
    report: &mut BlockReport,
) -> Result<(), String> {
    let (block, state) = (&fixture.block, &fixture.state);
    let threads = config.judged_threads(block.transactions.len());
    if let Ok(traces) = parevm::parallel::trace_block(block, state) {
        let bound = parevm_analyze::bounded_speedup(&traces, threads);
        report.ideal_bound = Some(bound);
        report.efficiency = report.speedup.map(|s| s / bound.max(1e-9));
    }
    if !args.measure.ceiling {
        return Ok(());
    }
    let seq_ms = report.sequential_ms.unwrap_or_default();
    let copies = config.judged_threads(usize::MAX);
    // As many runs as the sequential ones took, and 50 ms at least.
    let runs = args
        .repeat()
        .max((CEILING_MS / seq_ms.max(1e-3)) as usize)
        .min(5_000);
    let run = || execute_sequential(block, state);
    let ceiling = ceiling_speedup(runs, copies, run).map_err(|e| e.to_string())?;
    report.ceiling_speedup = Some(ceiling);
    report.line_round_trip_ns = line_round_trip().map(|t| t.as_secs_f64() * 1e9);
    Ok(())
}

/// The aggregate speedup the machine allows the blocks measured with
/// `--ceiling`: each block's sequential time over the lower of its
/// ceiling and its ideal bound, summed.
fn achievable<'a>(blocks: impl IntoIterator<Item = &'a BlockReport>) -> Option<f64> {
    let (mut sequential, mut best) = (0.0, 0.0);
    for block in blocks {
        let (Some(seq), Some(ceiling)) = (block.sequential_ms, block.ceiling_speedup) else {
            continue;
        };
        let bound = block
            .ideal_bound
            .map_or(ceiling, |ideal| ideal.min(ceiling));
        sequential += seq;
        best += seq / bound.max(1e-9);
    }
    (best > 0.0).then(|| sequential / best)
}

/// One line of the summary by path.
fn print_path(path: &PathSummary) {
    let allowed = path.achievable_speedup.map(|a| {
        format!(
            ", this machine allows {a:.2}x: {:.0}% of it reached",
            path.speedup / a * 100.0
        )
    });
    outln!(
        "  {:<20} {:>4} blocks, {:>3.0}% of the sequential time: {:.2}x ({:.1} ms / {:.1} ms){}",
        path.path,
        path.blocks,
        path.share_of_sequential * 100.0,
        path.speedup,
        path.sequential_ms,
        path.parallel_ms,
        allowed.unwrap_or_default()
    );
}

/// The executor that ran, with the fallback reason if there was one.
fn path_of(report: &BlockReport) -> String {
    let path = report.path.as_deref().unwrap_or("?");
    match &report.fallback_reason {
        Some(reason) => format!("{path}: {reason}"),
        None => path.to_string(),
    }
}

fn print_line(report: &BlockReport, mode: Mode) {
    let status = match &report.error {
        // One executor alone is checked against the header only, which
        // commits to the receipts but (with a partial pre-state) not to the
        // state: `--mode both` also compares the state with sequential
        // execution.
        None if report.verified && mode != Mode::Both => "header verified".to_string(),
        None if report.verified => "verified".to_string(),
        None => "not verified".to_string(),
        Some(error) => format!("FAILED: {error}"),
    };
    let Some(number) = report.number else {
        outln!("{}: {status}", report.source);
        return;
    };
    let times = match mode {
        Mode::Sequential => format!("{:.2} ms", report.sequential_ms.unwrap_or_default()),
        Mode::Parallel => format!(
            "{:.2} ms ({})",
            report.parallel_ms.unwrap_or_default(),
            path_of(report)
        ),
        Mode::Both => format!(
            "seq {:.2} ms, par {:.2} ms, {:.2}x of ideal {:.2}x ({:.0}%){} ({})",
            report.sequential_ms.unwrap_or_default(),
            report.parallel_ms.unwrap_or_default(),
            report.speedup.unwrap_or_default(),
            report.ideal_bound.unwrap_or_default(),
            report.efficiency.unwrap_or_default() * 100.0,
            report
                .ceiling_speedup
                .map(|c| format!(", ceiling {c:.2}x"))
                .unwrap_or_default()
                + &report
                    .line_round_trip_ns
                    .map(|ns| format!(", line {ns:.0} ns"))
                    .unwrap_or_default(),
            path_of(report)
        ),
    };
    outln!(
        "block {number} {:<16} {:>5} txs {:>10} gas  {times}  {status}",
        report.fork.as_deref().unwrap_or("?"),
        report.transactions,
        report.gas_used
    );
    if let Some(phases) = &report.phases {
        outln!("{}", crate::phases::line(phases));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ReplayArgs,
    }

    fn repeat_of(argv: &[&str]) -> usize {
        let argv = ["replay", "blocks"].iter().chain(argv);
        Cli::try_parse_from(argv)
            .expect("valid arguments")
            .args
            .repeat()
    }

    /// Speedups are medians of 3 unless asked otherwise; verifying alone
    /// runs each block once.
    #[test]
    fn repeat_defaults_by_mode() {
        assert_eq!(repeat_of(&["--mode", "both"]), 3);
        assert_eq!(repeat_of(&[]), 1);
        assert_eq!(repeat_of(&["--mode", "parallel"]), 1);
        assert_eq!(repeat_of(&["--mode", "both", "--repeat", "1"]), 1);
        assert_eq!(repeat_of(&["--repeat", "7"]), 7);
    }

    fn block(sequential_ms: f64, ceiling: f64, ideal: Option<f64>) -> BlockReport {
        BlockReport {
            sequential_ms: Some(sequential_ms),
            ceiling_speedup: Some(ceiling),
            ideal_bound: ideal,
            ..Default::default()
        }
    }

    #[test]
    fn the_achievable_speedup_takes_each_blocks_lower_bound() {
        // 6 ms at its ideal 1.5x, 4 ms at the machine's 2x: 10 ms in 6 ms.
        let blocks = [block(6.0, 1.9, Some(1.5)), block(4.0, 2.0, None)];
        let allowed = achievable(&blocks).expect("measured");
        assert!((allowed - 10.0 / 6.0).abs() < 1e-9, "{allowed}");
        // Blocks without a ceiling (not measured, or failed) do not count.
        let unmeasured = BlockReport {
            sequential_ms: Some(5.0),
            ..Default::default()
        };
        assert_eq!(achievable(&[unmeasured]), None);
    }

    fn timed(path: &str, sequential_ms: f64, parallel_ms: f64) -> BlockReport {
        BlockReport {
            path: Some(path.into()),
            parallel_ms: Some(parallel_ms),
            ceiling_speedup: Some(2.0),
            ..block(sequential_ms, 2.0, Some(1.5))
        }
    }

    #[test]
    fn the_summary_by_path_splits_the_aggregate() {
        let blocks = [
            timed("parallel", 6.0, 4.0),
            timed("sequential-fallback", 2.0, 2.0),
            timed("parallel", 3.0, 2.0),
            // Not timed in parallel: left out.
            block(5.0, 2.0, None),
        ];
        assert_eq!(by_path(&blocks, false)[0].achievable_speedup, None);
        let paths = by_path(&blocks, true);
        assert_eq!(paths.len(), 2);
        let (parallel, sequential) = (&paths[0], &paths[1]);
        assert_eq!((parallel.path.as_str(), parallel.blocks), ("parallel", 2));
        assert!((parallel.speedup - 1.5).abs() < 1e-9);
        assert!((parallel.share_of_sequential - 9.0 / 11.0).abs() < 1e-9);
        assert_eq!(parallel.achievable_speedup, Some(1.5));
        assert_eq!(sequential.path, "sequential-fallback");
        assert!((sequential.speedup - 1.0).abs() < 1e-9);
    }
}
