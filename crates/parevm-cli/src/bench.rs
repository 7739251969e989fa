//! `parevm bench`: parallel against sequential execution on synthetic
//! workloads, checking every run's result is identical.

use crate::output::outln;
use crate::timing::{
    MeasureArgs, ceiling_speedup, line_round_trip, median, more_runs_in_part, ms, paired_speedup,
    timed,
};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use parevm::{
    BlockResult, ExecutionStats, ParallelConfig, PhaseTimes, execute_parallel, execute_sequential,
};
use parevm_workloads::{Workload, WorkloadConfig, WorkloadKind, generate};
use serde::Serialize;
use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

/// Transactions per workload when neither `--txs` nor `--gas` is given.
const DEFAULT_TXS: usize = 5_000;

/// The hot ratios every workload runs at when `--hot-ratio` is not given:
/// no transaction conflicts, a tenth do, every one does. One run then shows
/// how each workload's speedup responds to contention, from the best case
/// (the peers' published benchmarks are independent) to the worst.
const DEFAULT_HOT_RATIOS: [f64; 3] = [0.0, 0.1, 1.0];

/// Arguments of `parevm bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Workload: raw-transfers, erc20-transfers, amm-swaps, hot-slot, mixed,
    /// or all.
    #[arg(long, value_name = "NAME", default_value = "all", value_parser = parse_workload)]
    workload: Selection,
    /// Transactions per block (default 5000 when --gas is not given).
    #[arg(long, value_name = "N", conflicts_with = "gas")]
    txs: Option<usize>,
    /// Total gas per block instead of a transaction count (e.g. 1000000000
    /// for a gigagas block).
    #[arg(long, value_name = "G")]
    gas: Option<u64>,
    /// Worker threads of the parallel executor (default: available cores).
    #[arg(long, value_name = "N", value_parser = crate::thread_count)]
    threads: Option<usize>,
    /// Share of hot (conflicting) transactions, in [0, 1]; several,
    /// comma-separated, run every workload at each. The default sweeps
    /// from independent transactions through a tenth hot to all conflicting.
    #[arg(
        long,
        value_name = "R",
        value_delimiter = ',',
        default_values_t = DEFAULT_HOT_RATIOS,
    )]
    hot_ratio: Vec<f64>,
    /// The least runs of each executor per workload (interleaved, after
    /// untimed warm-up runs of both until they took 100 ms, at most 10 of
    /// each; more with `--min-time`), spread over three passes over the
    /// workloads, so that a slow phase of the machine meets a few rounds of
    /// each rather than every round of one; times are medians, the speedup
    /// the median of the rounds' ratios. At 5, single invocations on the
    /// 2-core VM read the same workload anywhere from 1.3x to 2.1x. The
    /// default, 21, is what the expensive blocks run (AMM swaps, the mixed
    /// block); at 11, their medians scattered 1.7 times as widely (see
    /// `paired_speedup`), for 10 s less of the default run.
    #[arg(long, value_name = "K", default_value_t = 21, value_parser = clap::value_parser!(u64).range(1..=1000))]
    repeat: u64,
    /// Milliseconds each workload's timed runs of both executors take at
    /// least: a cheaper block runs more than `--repeat` times (to an odd
    /// count, up to 500), so that its speedup rests on as much time as an
    /// expensive one's. The default, 1500, gives 5,000 transfers (30 ms a
    /// round on 2 cores) about 50 rounds and leaves 5,000 AMM swaps (300 ms)
    /// at `--repeat`; the whole default run takes about 50 s on the 2-core
    /// VM. Of 11 rounds, one in 14 medians read a block that both sides ran
    /// sequentially below 0.95x there; of 21, one in 55.
    #[arg(long, value_name = "MS", default_value_t = 1500, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    min_time: u64,
    /// Sender and recipient pool size.
    #[arg(long, value_name = "N", default_value_t = WorkloadConfig::DEFAULT_ACCOUNTS)]
    accounts: usize,
    /// Seed of the generated blocks.
    #[arg(long, value_name = "S", default_value_t = WorkloadConfig::DEFAULT_SEED)]
    seed: u64,
    #[command(flatten)]
    measure: MeasureArgs,
    /// Print one JSON object instead of a table (and no progress bar).
    #[arg(long)]
    json: bool,
}

/// Which workloads to run.
#[derive(Clone, Debug)]
enum Selection {
    All,
    One(WorkloadKind),
}

fn parse_workload(s: &str) -> Result<Selection, String> {
    if s == "all" {
        return Ok(Selection::All);
    }
    s.parse::<WorkloadKind>().map(Selection::One).map_err(|_| {
        let names: Vec<_> = WorkloadKind::ALL.iter().map(|k| k.name()).collect();
        format!("valid workloads: {}, all", names.join(", "))
    })
}

/// One workload's measurement (the `--json` schema).
#[derive(Serialize)]
struct Row {
    workload: &'static str,
    hot_ratio: f64,
    transactions: usize,
    gas: u64,
    threads: usize,
    /// Median time of the sequential executor's timed runs.
    sequential_ms: f64,
    /// Median time of the parallel executor's timed runs.
    parallel_ms: f64,
    /// The median of the rounds' ratios, sequential time over parallel
    /// time of the same round (see `timing::paired_speedup`); close to,
    /// but not always, `sequential_ms / parallel_ms`.
    speedup: f64,
    identical: bool,
    /// Which path the parallel executor took.
    path: &'static str,
    /// Gas per second of the parallel executor (median time).
    gas_per_second: f64,
    /// Gas per second of the sequential executor (median time).
    sequential_gas_per_second: f64,
    /// `--repeat`: the least timed runs of each executor.
    repeat: usize,
    /// The timed runs of each executor (more than `repeat` for a block
    /// whose runs took less than `--min-time` in all).
    runs: usize,
    accounts: usize,
    seed: u64,
    /// Milliseconds spent generating the block.
    generate_ms: f64,
    /// What the parallel executor did in the last run (executions,
    /// validations, aborts, partitions, ...).
    stats: ExecutionStats,
    /// With `--phases`, if the block ran on Block-STM or as partitions:
    /// where its time went, each field the median of the timed runs
    /// (`stats` then has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    phases: Option<PhaseTimes>,
    /// This machine's speedup on the block as perfectly parallel work
    /// (`--ceiling`).
    #[serde(skip_serializing_if = "Option::is_none")]
    ceiling_speedup: Option<f64>,
    /// With `--ceiling`: what moving a cache line to another core and back
    /// cost, measured right after the workload's runs, in nanoseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    line_round_trip_ns: Option<f64>,
    /// The first difference, when a parallel result was not identical.
    #[serde(skip_serializing_if = "Option::is_none")]
    difference: Option<String>,
}

#[derive(Serialize)]
struct Report<'a> {
    workloads: &'a [Row],
}

pub fn run(args: BenchArgs) -> Result<ExitCode, String> {
    let configs = workload_configs(&args)?;
    let threads = args
        .threads
        .unwrap_or_else(|| ParallelConfig::default().threads);
    let repeat = args.repeat as usize;
    let bench = Bench {
        config: ParallelConfig {
            partition_contract_calls: args.measure.partition_calls,
            phase_times: args.measure.phases,
            ..ParallelConfig::with_threads(threads)
        },
        repeat,
        min_time: Duration::from_millis(args.min_time),
        ceiling: args.measure.ceiling,
        idle: args.measure.idle(),
        bar: progress_bar(configs.len() * (1 + 2 * repeat), args.json),
    };
    crate::warn_if_oversubscribed(&bench.config);
    let generated = configs
        .iter()
        .map(|config| bench.generate(config))
        .collect::<Result<Vec<_>, _>>()?;
    let mut runs: Vec<Runs> = generated.iter().map(|_| Runs::new(repeat)).collect();
    let parts = passes(repeat, generated.len());
    for part in 0..parts {
        for (workload, runs) in generated.iter().zip(&mut runs) {
            bench.pass(workload, runs, (part, parts))?;
        }
    }
    let rows = generated
        .iter()
        .zip(runs)
        .map(|(workload, runs)| bench.row(workload, runs))
        .collect::<Result<Vec<_>, _>>()?;
    bench.bar.finish_and_clear();
    report(&rows, args.json, threads)
}

/// Passes over the workloads, each running every workload for its share
/// of the rounds, so that a slow phase of the machine meets a few rounds
/// of every workload rather than all the rounds of one. The 2-core VM
/// slows down for seconds at a time: measured in one stretch each, one
/// binary read 5,000 raw transfers at 1.63x in one invocation and 1.86x
/// to 2.19x in the three after it, while the median of a workload's
/// rounds shrugs off a few slow ones. One workload, or one round, needs no
/// passes.
const PASSES: usize = 3;

/// How many passes [`PASSES`] makes of `workloads` at `repeat`.
fn passes(repeat: usize, workloads: usize) -> usize {
    match workloads {
        0 | 1 => 1,
        _ => PASSES.min(repeat).max(1),
    }
}

/// Each selected workload's generator settings, from the arguments: every
/// workload at the first hot ratio, then every one at the next.
fn workload_configs(args: &BenchArgs) -> Result<Vec<WorkloadConfig>, String> {
    let kinds: Vec<WorkloadKind> = match args.workload {
        Selection::All => WorkloadKind::ALL.to_vec(),
        Selection::One(kind) => vec![kind],
    };
    let runs = args
        .hot_ratio
        .iter()
        .flat_map(|&hot_ratio| kinds.iter().map(move |&kind| (kind, hot_ratio)));
    runs.map(|(kind, hot_ratio)| {
        let mut config = WorkloadConfig::new(kind);
        config.transactions = match args.gas {
            Some(_) => None,
            None => Some(args.txs.unwrap_or(DEFAULT_TXS)),
        };
        config.gas = args.gas;
        config.accounts = args.accounts;
        config.hot_ratio = hot_ratio;
        config.seed = args.seed;
        config.validate().map(|()| config)
    })
    .collect::<Result<Vec<_>, _>>()
    .map_err(|e| e.to_string())
}

/// Prints the rows (a table, or JSON), and names every workload whose
/// parallel result differed; failure if one did.
fn report(rows: &[Row], json: bool, threads: usize) -> Result<ExitCode, String> {
    if json {
        let report = Report { workloads: rows };
        outln!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
    } else {
        print_table(rows, threads);
    }
    for row in rows {
        if let Some(difference) = &row.difference {
            eprintln!(
                "error: {}: parallel result differs from sequential: {difference}",
                row.workload
            );
        }
    }
    Ok(match rows.iter().all(|r| r.identical) {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    })
}

/// How every workload is measured.
struct Bench {
    config: ParallelConfig,
    repeat: usize,
    /// The least time of each workload's timed runs (`--min-time`).
    min_time: Duration,
    ceiling: bool,
    /// Sleep before every timed run (`--idle`).
    idle: Duration,
    bar: ProgressBar,
}

/// A workload's generated block, and what generating it took.
struct Generated<'c> {
    config: &'c WorkloadConfig,
    workload: Workload,
    time: Duration,
}

/// What the timed runs of one workload gave.
struct Runs {
    sequential_times: Vec<Duration>,
    parallel_times: Vec<Duration>,
    /// The first difference between the executors' results, if any.
    difference: Option<String>,
    path: &'static str,
    stats: ExecutionStats,
    /// Each timed parallel run's phases, if measured.
    phases: Vec<PhaseTimes>,
    gas: u64,
}

impl Runs {
    /// No runs yet, room for `repeat`.
    fn new(repeat: usize) -> Self {
        Self {
            sequential_times: Vec::with_capacity(repeat),
            parallel_times: Vec::with_capacity(repeat),
            difference: None,
            path: "",
            stats: ExecutionStats::default(),
            phases: Vec::new(),
            gas: 0,
        }
    }

    /// How many rounds ran.
    fn rounds(&self) -> usize {
        self.sequential_times.len()
    }

    /// Notes a round's results: the first difference between them, if
    /// none was found before, what the parallel run reported (its path
    /// and counters) and the block's gas.
    fn record(&mut self, sequential: &BlockResult, parallel: &BlockResult) {
        if self.difference.is_none() {
            self.difference = sequential.first_difference(parallel);
        }
        self.path = parallel.path.as_str();
        self.stats = parallel.stats;
        self.phases.extend(parallel.stats.phases);
        self.gas = sequential.gas_used;
    }

    /// What the rounds took, both executors together.
    fn total(&self, idle: Duration) -> Duration {
        let both = self.sequential_times.iter().chain(&self.parallel_times);
        both.sum::<Duration>() + idle * 2 * self.rounds() as u32
    }
}

impl Bench {
    /// Generates the workload's block.
    fn generate<'c>(&self, config: &'c WorkloadConfig) -> Result<Generated<'c>, String> {
        let name = config.kind.name();
        self.bar.set_message(format!("{name}: generating"));
        let start = Instant::now();
        let workload = generate(config).map_err(|e| format!("{name}: {e}"))?;
        let time = start.elapsed();
        self.bar.inc(1);
        Ok(Generated {
            config,
            workload,
            time,
        })
    }

    /// The workload's row, from all its `runs` (and its ceiling, if asked).
    fn row(&self, generated: &Generated<'_>, runs: Runs) -> Result<Row, String> {
        let Generated {
            config,
            workload,
            time: generate_time,
        } = generated;
        let name = config.kind.name();
        let Runs {
            mut sequential_times,
            mut parallel_times,
            difference,
            path,
            stats,
            phases,
            gas,
        } = runs;
        let speedup = paired_speedup(&sequential_times, &parallel_times);
        let runs = sequential_times.len();
        let sequential = median(&mut sequential_times);
        let parallel = median(&mut parallel_times);
        let ceiling_speedup = match self.ceiling {
            true => Some(self.ceiling(name, workload)?),
            false => None,
        };
        let line_round_trip_ns = self
            .ceiling
            .then(line_round_trip)
            .flatten()
            .map(|t| t.as_secs_f64() * 1e9);
        Ok(Row {
            workload: name,
            hot_ratio: config.hot_ratio,
            transactions: workload.block.transactions.len(),
            gas,
            threads: self.config.threads,
            sequential_ms: ms(sequential),
            parallel_ms: ms(parallel),
            speedup,
            identical: difference.is_none(),
            path,
            gas_per_second: gas as f64 / parallel.as_secs_f64().max(1e-12),
            sequential_gas_per_second: gas as f64 / sequential.as_secs_f64().max(1e-12),
            repeat: self.repeat,
            runs,
            accounts: config.accounts,
            seed: config.seed,
            generate_ms: ms(*generate_time),
            stats: ExecutionStats {
                phases: None,
                ..stats
            },
            phases: crate::phases::median(&phases),
            ceiling_speedup,
            line_round_trip_ns,
            difference,
        })
    }

    /// Pass `part` of `parts` over the workload: its share of the rounds
    /// ([`Self::round`]), after untimed runs ([`Self::warm`]), added to
    /// `runs`.
    fn pass(
        &self,
        generated: &Generated<'_>,
        runs: &mut Runs,
        (part, parts): (usize, usize),
    ) -> Result<(), String> {
        self.warm(generated, part);
        while more_runs_in_part(
            self.repeat,
            runs.rounds(),
            runs.total(self.idle),
            self.min_time,
            (part, parts),
        ) {
            self.round(generated, runs)?;
        }
        Ok(())
    }

    /// Untimed runs of each executor before pass `part`'s rounds: the first
    /// runs after a block is generated fault in fresh memory (see
    /// `warm_up`); without them, single invocations reported the first
    /// workload anywhere from 1.3x to 3.2x. A later pass finds the memory
    /// faulted in, and only warms the caches that the other workloads
    /// cooled, with one round. Errors show in the timed runs.
    fn warm(&self, generated: &Generated<'_>, part: usize) {
        let Workload { block, state } = &generated.workload;
        let parallel = || execute_parallel(block, state, &self.config);
        let round = || drop((execute_sequential(block, state), parallel()));
        let name = generated.config.kind.name();
        self.bar.set_message(format!("{name}: warming up"));
        match part {
            0 => {
                let Ok(()) = crate::timing::warm_up(|| {
                    round();
                    Ok::<(), std::convert::Infallible>(())
                });
            }
            _ => round(),
        }
    }

    /// One timed round: the block run sequentially and in parallel, back to
    /// back, the first alternating from round to round so that neither
    /// always runs on caches the other warmed; the two results compared.
    fn round(&self, generated: &Generated<'_>, runs: &mut Runs) -> Result<(), String> {
        let name = generated.config.kind.name();
        let Workload { block, state } = &generated.workload;
        let done = runs.rounds();
        if done >= self.repeat {
            // A short block, run on until the runs add up (the bar's length
            // counted `repeat` rounds).
            self.bar.inc_length(2);
        }
        self.bar.set_message(format!(
            "{name}: {} txs, run {}/{}",
            block.transactions.len(),
            done + 1,
            self.repeat.max(done + 1)
        ));
        let sequential_run = || execute_sequential(block, state);
        let parallel_run = || execute_parallel(block, state, &self.config);
        let idle = self.idle;
        let (sequential, parallel) = if done.is_multiple_of(2) {
            let s = timed(&mut runs.sequential_times, idle, sequential_run);
            self.bar.inc(1);
            (s, timed(&mut runs.parallel_times, idle, parallel_run))
        } else {
            let p = timed(&mut runs.parallel_times, idle, parallel_run);
            self.bar.inc(1);
            (timed(&mut runs.sequential_times, idle, sequential_run), p)
        };
        self.bar.inc(1);
        let sequential = sequential.map_err(|e| format!("{name}: sequential: {e}"))?;
        let parallel = parallel.map_err(|e| format!("{name}: parallel: {e}"))?;
        runs.record(&sequential, &parallel);
        // Both results are dropped here, outside the timed calls.
        Ok(())
    }

    /// This machine's ceiling on the workload's block (`--ceiling`).
    fn ceiling(&self, name: &str, workload: &Workload) -> Result<f64, String> {
        self.bar.set_message(format!("{name}: ceiling"));
        let copies = self.config.judged_threads(usize::MAX);
        let run = || execute_sequential(&workload.block, &workload.state);
        ceiling_speedup(self.repeat, copies, run).map_err(|e| format!("{name}: sequential: {e}"))
    }
}

/// A progress bar on stderr that appears only once the work has taken more
/// than a second, and never with `--json`.
fn progress_bar(steps: usize, json: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::hidden());
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    if !json {
        let delayed = bar.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(1));
            if !delayed.is_finished() {
                delayed.set_draw_target(ProgressDrawTarget::stderr());
                delayed.enable_steady_tick(Duration::from_millis(200));
            }
        });
    }
    bar
}

fn print_table(rows: &[Row], threads: usize) {
    outln!(
        "parallel threads: {threads}; times: medians of `runs` runs of each executor, alternating; speedup: the median of the runs' ratios"
    );
    outln!(
        "{:<16} {:>5} {:>7} {:>14} {:>5} {:>10} {:>10} {:>8} {:>10} {:<20} identical",
        "workload",
        "hot",
        "txs",
        "gas",
        "runs",
        "seq ms",
        "par ms",
        "speedup",
        "Mgas/s",
        "path",
    );
    for r in rows {
        outln!(
            "{:<16} {:>5.2} {:>7} {:>14} {:>5} {:>10.2} {:>10.2} {:>7.2}x {:>10.1} {:<20} {}",
            r.workload,
            r.hot_ratio,
            r.transactions,
            r.gas,
            r.runs,
            r.sequential_ms,
            r.parallel_ms,
            r.speedup,
            r.gas_per_second / 1e6,
            r.path,
            if r.identical { "yes" } else { "NO" }
        );
        if let Some(ceiling) = r.ceiling_speedup {
            let line = r
                .line_round_trip_ns
                .map(|ns| format!(", a cache line's round trip between cores {ns:.0} ns"))
                .unwrap_or_default();
            outln!("{:<16} this machine's ceiling: {ceiling:.2}x{line}", "");
        }
        if let Some(phases) = &r.phases {
            outln!("{}", crate::phases::line(phases));
        }
    }
}
