//! `parevm analyze`: how parallel is a block, really? Dependency graph,
//! critical path, ideal speedup bounds, hot locations, and SVG charts.

use crate::output::outln;
use crate::timing::{Interleaved, interleaved, median, ms};
use clap::{Args, ValueEnum};
use parevm::{
    BlockInput, InMemoryState, ParallelConfig, execute_parallel, execute_sequential,
    fixture::{block_dirs, load_mainnet_block},
};
use parevm_analyze::{
    BlockAnalysis, BlockDag, THREAD_COUNTS, WeightBasis,
    chart::{Curve, schedule_chart, speedup_chart},
    trace_block_median,
};
use parevm_workloads::{WorkloadConfig, WorkloadKind, generate};
use serde::Serialize;
use std::{collections::BTreeMap, path::PathBuf, process::ExitCode, time::Duration};

/// Threads up to which the ideal bound curve of `--chart` is drawn.
const CHART_THREADS: usize = 32;
/// Up to this many blocks, `--chart` draws one curve per block; beyond, only
/// the aggregate.
const CHART_BLOCK_CURVES: usize = 5;

/// Arguments of `parevm analyze`.
#[derive(Args)]
pub struct AnalyzeArgs {
    /// Block folders, or folders of block folders (mainnet fixture format).
    paths: Vec<PathBuf>,
    /// Analyse a synthetic workload instead (or as well): raw-transfers,
    /// erc20-transfers, amm-swaps, hot-slot, mixed, or all.
    #[arg(long, value_name = "NAME")]
    workload: Option<String>,
    /// Transactions in the synthetic block (default 1000).
    #[arg(long, value_name = "N")]
    txs: Option<usize>,
    /// Gas target of the synthetic block instead of a transaction count.
    #[arg(long, conflicts_with = "txs")]
    gas: Option<u64>,
    /// Share of hot (conflicting) transactions in the synthetic block, in
    /// [0, 1] (default 0.1); several, comma-separated, analyse each
    /// workload at each.
    #[arg(long, value_name = "R", value_delimiter = ',')]
    hot_ratio: Vec<f64>,
    /// Sender and recipient pool size of the synthetic block.
    #[arg(long)]
    accounts: Option<usize>,
    /// Seed of the synthetic block.
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// What transaction weights the bounds use: measured time (auto: falling
    /// back to gas, then to one per transaction, when nothing was measured),
    /// or gas, or unit weights.
    #[arg(long, value_enum, default_value = "auto")]
    weight: Weight,
    /// Hot locations reported per block.
    #[arg(long, default_value_t = parevm_analyze::DEFAULT_HOT_LOCATIONS)]
    top: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Write an SVG chart of speedup against threads: the ideal bound per
    /// block (or aggregated over many), and measured speedups with --measure.
    #[arg(long, value_name = "FILE.svg")]
    chart: Option<PathBuf>,
    /// Also measure: parallel execution with 1..=--max-threads threads, each
    /// interleaved with sequential runs, median of --repeat runs each (more
    /// for short blocks, until both took 50 ms).
    #[arg(long)]
    measure: bool,
    /// Runs per trace and per measurement; transaction and block times are
    /// the median.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Most threads measured with --measure (default: available cores).
    #[arg(long, value_name = "N", value_parser = crate::thread_count)]
    max_threads: Option<usize>,
    /// For a single block: write its greedy schedule on --workers workers as
    /// an SVG Gantt chart (critical path in red).
    #[arg(long, value_name = "FILE.svg")]
    schedule: Option<PathBuf>,
    /// Workers of the --schedule chart.
    #[arg(long, default_value_t = 4)]
    workers: usize,
}

/// `--weight`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Weight {
    /// Measured time, else gas, else unit.
    Auto,
    /// Measured time.
    Time,
    /// Gas used.
    Gas,
    /// One per transaction.
    Unit,
}

/// Where a block comes from.
enum Source {
    Fixture(PathBuf),
    /// A synthetic block, at the hot ratio given (or the default).
    Workload(WorkloadKind, Option<f64>),
}

impl Source {
    /// How reports name it: the folder, or the workload (with its hot
    /// ratio, if one was given).
    fn label(&self) -> String {
        match self {
            Self::Fixture(dir) => dir.display().to_string(),
            Self::Workload(kind, None) => kind.name().to_string(),
            Self::Workload(kind, Some(ratio)) => format!("{} (hot {ratio})", kind.name()),
        }
    }

    /// The synthetic block's hot ratio; `None` for a fixture.
    fn hot_ratio(&self) -> Option<f64> {
        match self {
            Self::Fixture(_) => None,
            Self::Workload(_, ratio) => Some(ratio.unwrap_or(WorkloadConfig::DEFAULT_HOT_RATIO)),
        }
    }
}

/// Measured execution of one block.
#[derive(Serialize)]
struct Measured {
    /// The median of the sequential medians measured beside each thread count.
    sequential_ms: f64,
    /// Median parallel time per thread count.
    parallel_ms: BTreeMap<usize, f64>,
    /// Sequential / parallel time per thread count, each against the
    /// sequential runs interleaved with its own.
    speedup: BTreeMap<usize, f64>,
    /// Measured speedup / ideal bound on as many workers, per thread count.
    efficiency: BTreeMap<usize, f64>,
}

#[derive(Serialize)]
struct BlockReport {
    /// Fixture folder or workload name.
    source: String,
    /// A synthetic block's hot ratio (absent for a fixture).
    #[serde(skip_serializing_if = "Option::is_none")]
    hot_ratio: Option<f64>,
    #[serde(flatten)]
    analysis: BlockAnalysis,
    /// Share of the transactions whose accesses the partition planner
    /// predicts (`parevm::parallel::predictable_transactions`): a block runs
    /// as partitions only if all are.
    predictable_share: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    measured: Option<Measured>,
    /// Total work and greedy makespans for 1..=CHART_THREADS workers (for the
    /// aggregate curve).
    #[serde(skip)]
    work: u64,
    #[serde(skip)]
    makespans: Vec<u64>,
}

#[derive(Serialize)]
struct Failure {
    source: String,
    error: String,
}

#[derive(Serialize)]
struct Report<'a> {
    blocks: &'a [BlockReport],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<Failure>,
    /// Over all blocks: total work / total makespan (blocks run one after another).
    aggregate_bounded_speedup: BTreeMap<usize, f64>,
    /// Over all blocks: total work / total critical path.
    aggregate_ideal_speedup: f64,
}

pub fn run(args: AnalyzeArgs) -> Result<ExitCode, String> {
    check_args(&args)?;
    let sources = sources(&args)?;
    let max_threads = args
        .max_threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if !args.json {
        print_header();
    }
    let (blocks, errors) = analyze_all(&sources, &args, max_threads);
    let aggregate = aggregate_bounds(&blocks);
    if let Some(path) = &args.chart {
        draw_speedup_chart(path, &blocks, &aggregate)?;
    }
    if args.json {
        print_json(&blocks, errors, &aggregate)
    } else {
        print_summary(&args, &blocks, &errors, &aggregate);
        Ok(exit_code(errors.is_empty()))
    }
}

/// Refuses arguments that cannot work, before any block is loaded.
fn check_args(args: &AnalyzeArgs) -> Result<(), String> {
    if args.repeat == 0 {
        return Err("--repeat must be at least 1".into());
    }
    if args.workers == 0 {
        return Err("--workers must be at least 1".into());
    }
    for (flag, path) in [("--chart", &args.chart), ("--schedule", &args.schedule)] {
        let Some(path) = path else { continue };
        if path.is_dir() {
            return Err(format!(
                "{flag} {}: a folder; give a file name, such as chart.svg",
                path.display()
            ));
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            return Err(format!(
                "{flag} {}: folder {} does not exist",
                path.display(),
                parent.display()
            ));
        }
    }
    let workload_given = args.txs.is_some()
        || args.gas.is_some()
        || !args.hot_ratio.is_empty()
        || args.accounts.is_some()
        || args.seed.is_some();
    if workload_given && args.workload.is_none() {
        return Err("--txs, --gas, --hot-ratio, --accounts and --seed need --workload".into());
    }
    Ok(())
}

/// The blocks to analyse: every block folder under the paths, then the
/// workloads asked for.
fn sources(args: &AnalyzeArgs) -> Result<Vec<Source>, String> {
    let mut sources = Vec::new();
    for path in &args.paths {
        let dirs = block_dirs(path).map_err(|e| e.to_string())?;
        if dirs.is_empty() {
            return Err(format!("{}: no block folders found", path.display()));
        }
        sources.extend(dirs.into_iter().map(Source::Fixture));
    }
    if let Some(name) = &args.workload {
        let kinds = match name.as_str() {
            "all" => WorkloadKind::ALL.to_vec(),
            name => vec![name.parse().map_err(|e| format!("--workload: {e}"))?],
        };
        let ratios = match args.hot_ratio.as_slice() {
            [] => vec![None],
            given => given.iter().copied().map(Some).collect(),
        };
        for ratio in ratios {
            sources.extend(kinds.iter().map(|&kind| Source::Workload(kind, ratio)));
        }
    }
    if sources.is_empty() {
        return Err("nothing to analyse: give block folders or --workload NAME".into());
    }
    if args.schedule.is_some() && sources.len() != 1 {
        return Err(format!(
            "--schedule draws one block, but {} were given",
            sources.len()
        ));
    }
    Ok(sources)
}

/// Analyses every source, printing each row as it comes (without
/// `--json`); the reports, and the sources that failed.
fn analyze_all(
    sources: &[Source],
    args: &AnalyzeArgs,
    max_threads: usize,
) -> (Vec<BlockReport>, Vec<Failure>) {
    let mut blocks = Vec::new();
    let mut errors = Vec::new();
    for source in sources {
        let label = source.label();
        match analyze_source(source, &label, args, max_threads) {
            Ok(report) => {
                if !args.json {
                    print_row(&report);
                }
                blocks.push(report);
            }
            Err(error) => {
                if !args.json {
                    outln!("{label}: error: {error}");
                }
                errors.push(Failure {
                    source: label,
                    error,
                });
            }
        }
    }
    (blocks, errors)
}

/// The `--json` report; failure if a source failed.
fn print_json(
    blocks: &[BlockReport],
    errors: Vec<Failure>,
    aggregate: &[f64],
) -> Result<ExitCode, String> {
    let ok = errors.is_empty();
    let report = Report {
        blocks,
        errors,
        aggregate_bounded_speedup: THREAD_COUNTS
            .iter()
            .filter_map(|&t| Some((t, *aggregate.get(t - 1)?)))
            .collect(),
        aggregate_ideal_speedup: aggregate_ideal(blocks),
    };
    outln!(
        "{}",
        serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
    );
    Ok(exit_code(ok))
}

/// The lines after the table: the aggregate bounds, the files written and
/// the failures.
fn print_summary(
    args: &AnalyzeArgs,
    blocks: &[BlockReport],
    errors: &[Failure],
    aggregate: &[f64],
) {
    if blocks.len() > 1 {
        outln!(
            "{} blocks: aggregate ideal {:.2}x, on 2/4/8/16/32 workers {}",
            blocks.len(),
            aggregate_ideal(blocks),
            THREAD_COUNTS
                .iter()
                .filter_map(|&t| aggregate.get(t - 1).map(|s| format!("{s:.2}x")))
                .collect::<Vec<_>>()
                .join(" / ")
        );
    }
    if let Some(path) = &args.chart {
        outln!("speedup chart written to {}", path.display());
    }
    // A schedule is of one block: if that failed, nothing was written.
    if let Some(path) = args.schedule.as_ref().filter(|_| errors.is_empty()) {
        outln!(
            "schedule on {} workers written to {}",
            args.workers,
            path.display()
        );
    }
    if !errors.is_empty() {
        outln!("{} block(s) failed", errors.len());
    }
}

fn exit_code(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn load(source: &Source, args: &AnalyzeArgs) -> Result<(BlockInput, InMemoryState), String> {
    match source {
        Source::Fixture(dir) => {
            let fixture = load_mainnet_block(dir).map_err(|e| e.to_string())?;
            Ok((fixture.block, fixture.state))
        }
        Source::Workload(kind, ratio) => {
            let mut config = WorkloadConfig::new(*kind);
            if let Some(gas) = args.gas {
                config.gas = Some(gas);
                config.transactions = None;
            }
            if let Some(txs) = args.txs {
                config.transactions = Some(txs);
            }
            if let Some(r) = ratio {
                config.hot_ratio = *r;
            }
            if let Some(a) = args.accounts {
                config.accounts = a;
            }
            if let Some(s) = args.seed {
                config.seed = s;
            }
            let workload = generate(&config).map_err(|e| e.to_string())?;
            Ok((workload.block, workload.state))
        }
    }
}

fn analyze_source(
    source: &Source,
    label: &str,
    args: &AnalyzeArgs,
    max_threads: usize,
) -> Result<BlockReport, String> {
    let (block, state) = load(source, args)?;
    let traces = trace_block_median(&block, &state, args.repeat).map_err(|e| e.to_string())?;
    let dag = match args.weight {
        Weight::Auto => BlockDag::new(&traces),
        Weight::Time => BlockDag::with_basis(&traces, WeightBasis::Time),
        Weight::Gas => BlockDag::with_basis(&traces, WeightBasis::Gas),
        Weight::Unit => BlockDag::with_basis(&traces, WeightBasis::Unit),
    };
    let analysis = BlockAnalysis::from_dag(block.header.number, &dag, args.top);
    let makespans: Vec<u64> = (1..=CHART_THREADS.max(max_threads))
        .map(|t| dag.schedule(t).makespan)
        .collect();
    if let Some(path) = &args.schedule {
        let schedule = dag.schedule(args.workers);
        let name = short_label(label);
        let name = if name == block.header.number.to_string() {
            format!("block {name}")
        } else {
            format!("{name} (block {})", block.header.number)
        };
        let title = format!(
            "{}: greedy schedule on {} workers, {:.2}x (ideal {:.2}x)",
            name,
            args.workers,
            schedule.speedup(),
            analysis.ideal_speedup
        );
        schedule_chart(path, &title, &schedule, &dag.critical_path().1)
            .map_err(|e| e.to_string())?;
    }
    let measured = if args.measure {
        Some(measure(&block, &state, args.repeat, max_threads, &dag)?)
    } else {
        None
    };
    let predictable = parevm::parallel::predictable_transactions(&block, &state)
        .map_err(|e| format!("predicting accesses: {e}"))?;
    let predictable_share = match predictable.len() {
        0 => 1.0,
        n => predictable.iter().filter(|p| **p).count() as f64 / n as f64,
    };
    Ok(BlockReport {
        source: label.to_string(),
        hot_ratio: source.hot_ratio(),
        analysis,
        predictable_share,
        measured,
        work: dag.total_work(),
        makespans,
    })
}

fn measure(
    block: &BlockInput,
    state: &InMemoryState,
    repeat: usize,
    max_threads: usize,
    dag: &BlockDag,
) -> Result<Measured, String> {
    let sequential =
        || execute_sequential(block, state).map_err(|e| format!("sequential execution: {e}"));
    let mut measured = Measured {
        sequential_ms: 0.0,
        parallel_ms: BTreeMap::new(),
        speedup: BTreeMap::new(),
        efficiency: BTreeMap::new(),
    };
    let mut sequential_times = Vec::with_capacity(max_threads);
    for threads in 1..=max_threads {
        // The engine itself, without the fallback rule.
        let config = ParallelConfig::never_fall_back(threads);
        let parallel = || {
            execute_parallel(block, state, &config)
                .map_err(|e| format!("parallel execution ({threads} threads): {e}"))
        };
        // Interleaved with sequential runs, as `replay` and `bench` measure,
        // so that both sides meet the same phase of the machine's noise.
        let Interleaved {
            a: (_, sequential_time),
            b: (_, parallel_time),
            speedup,
            ..
        } = interleaved(repeat, Duration::ZERO, sequential, parallel)?;
        sequential_times.push(sequential_time);
        measured.parallel_ms.insert(threads, ms(parallel_time));
        measured.speedup.insert(threads, speedup);
        measured
            .efficiency
            .insert(threads, speedup / dag.bounded_speedup(threads));
    }
    if !sequential_times.is_empty() {
        measured.sequential_ms = ms(median(&mut sequential_times));
    }
    Ok(measured)
}

/// Total work / total makespan over all blocks for 1..=CHART_THREADS workers
/// (when the blocks' weights differ in unit, the mean of their speedups).
fn aggregate_bounds(blocks: &[BlockReport]) -> Vec<f64> {
    let blocks = with_work(blocks);
    let blocks = blocks.as_slice();
    let threads = blocks.iter().map(|b| b.makespans.len()).min().unwrap_or(0);
    let same_basis = blocks
        .windows(2)
        .all(|w| w[0].analysis.weight == w[1].analysis.weight);
    (0..threads)
        .map(|t| {
            if same_basis {
                let work: u64 = blocks.iter().map(|b| b.work).sum();
                let span: u64 = blocks.iter().map(|b| b.makespans[t]).sum();
                if work == 0 || span == 0 {
                    1.0
                } else {
                    work as f64 / span as f64
                }
            } else {
                blocks
                    .iter()
                    .map(|b| ratio(b.work, b.makespans[t]))
                    .sum::<f64>()
                    / blocks.len() as f64
            }
        })
        .collect()
}

/// Total work / total critical path over all blocks (or the mean ideal
/// speedup when the blocks' weights differ in unit).
fn aggregate_ideal(blocks: &[BlockReport]) -> f64 {
    let blocks = with_work(blocks);
    let blocks = blocks.as_slice();
    if blocks.is_empty() {
        return 1.0;
    }
    let same_basis = blocks
        .windows(2)
        .all(|w| w[0].analysis.weight == w[1].analysis.weight);
    if same_basis {
        let work: u64 = blocks.iter().map(|b| b.work).sum();
        let span: f64 = blocks
            .iter()
            .map(|b| b.work as f64 / b.analysis.ideal_speedup)
            .sum();
        if span > 0.0 {
            return (work as f64 / span).max(1.0);
        }
        return 1.0;
    }
    blocks.iter().map(|b| b.analysis.ideal_speedup).sum::<f64>() / blocks.len() as f64
}

/// The blocks with some work (empty blocks add nothing to an aggregate, and
/// their unit weights would not match the others' basis).
fn with_work(blocks: &[BlockReport]) -> Vec<&BlockReport> {
    blocks.iter().filter(|b| b.work > 0).collect()
}

fn ratio(work: u64, span: u64) -> f64 {
    if work == 0 || span == 0 {
        1.0
    } else {
        work as f64 / span as f64
    }
}

fn short_label(label: &str) -> &str {
    label.rsplit('/').find(|s| !s.is_empty()).unwrap_or(label)
}

fn block_name(report: &BlockReport) -> String {
    if report.source.contains('/') || report.source.chars().all(|c| c.is_ascii_digit()) {
        report.analysis.number.to_string()
    } else {
        report.source.clone()
    }
}

fn draw_speedup_chart(
    path: &std::path::Path,
    blocks: &[BlockReport],
    aggregate: &[f64],
) -> Result<(), String> {
    let points = |values: &[f64]| -> Vec<(f64, f64)> {
        values
            .iter()
            .enumerate()
            .take(CHART_THREADS)
            .map(|(i, &s)| ((i + 1) as f64, s))
            .collect()
    };
    let mut bounds = Vec::new();
    let mut measured = Vec::new();
    if blocks.len() <= CHART_BLOCK_CURVES {
        for b in blocks {
            let speedups: Vec<f64> = b.makespans.iter().map(|&m| ratio(b.work, m)).collect();
            bounds.push(Curve {
                label: format!("{}: ideal bound", block_name(b)),
                points: points(&speedups),
            });
            if let Some(m) = &b.measured {
                measured.push(Curve {
                    label: format!("{}: measured", block_name(b)),
                    points: m.speedup.iter().map(|(&t, &s)| (t as f64, s)).collect(),
                });
            }
        }
    } else {
        bounds.push(Curve {
            label: format!("{} blocks: ideal bound", blocks.len()),
            points: points(aggregate),
        });
        let with: Vec<&Measured> = blocks.iter().filter_map(|b| b.measured.as_ref()).collect();
        if !with.is_empty() {
            let sequential: f64 = with.iter().map(|m| m.sequential_ms).sum();
            let threads = with[0].parallel_ms.keys().copied().collect::<Vec<_>>();
            measured.push(Curve {
                label: format!("{} blocks: measured", with.len()),
                points: threads
                    .iter()
                    .map(|&t| {
                        let parallel: f64 = with.iter().map(|m| m.parallel_ms[&t]).sum();
                        (t as f64, sequential / parallel.max(f64::MIN_POSITIVE))
                    })
                    .collect(),
            });
        }
    }
    let basis = blocks
        .first()
        .map_or(WeightBasis::Time, |b| b.analysis.weight);
    let title = format!(
        "speedup against threads (bounds from {} weights)",
        basis.as_str()
    );
    speedup_chart(path, &title, &bounds, &measured).map_err(|e| e.to_string())
}

fn print_header() {
    outln!(
        "{:>26} {:>6} {:>11} {:>11} {:>8} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>13}  hottest location (dependent txs)",
        "block",
        "txs",
        "gas",
        "cp gas",
        "cp ms",
        "ideal",
        "x2",
        "x4",
        "x8",
        "x16",
        "x32",
        "indep",
        "pred",
        "heaviest tx"
    );
}

fn print_row(report: &BlockReport) {
    let a = &report.analysis;
    let hottest = a
        .hot_locations
        .first()
        .map(|h| format!("{} ({})", h.location, h.dependent_transactions))
        .unwrap_or_else(|| "-".into());
    // The heaviest transaction and its share of the work.
    let heaviest = a
        .heaviest_transactions
        .first()
        .map(|h| format!("{} {:.0}%", h.index, h.work_share * 100.0))
        .unwrap_or_else(|| "-".into());
    let cp_ms = if a.weight == WeightBasis::Time {
        format!("{:.3}", a.critical_path_ms)
    } else {
        "-".into()
    };
    let bounded = THREAD_COUNTS
        .iter()
        .map(|t| format!("{:>6.2}", a.bounded_speedup[t]))
        .collect::<Vec<_>>()
        .join(" ");
    let suffix = if a.weight == WeightBasis::Time {
        String::new()
    } else {
        format!(" [{} weights]", a.weight.as_str())
    };
    outln!(
        "{:>26} {:>6} {:>11} {:>11} {:>8} {:>7.2} {} {:>5.1}% {:>5.1}% {:>13}  {}{}",
        block_name(report),
        a.transactions,
        a.gas_used,
        a.critical_path_gas,
        cp_ms,
        a.ideal_speedup,
        bounded,
        a.independent_share * 100.0,
        report.predictable_share * 100.0,
        heaviest,
        hottest,
        suffix
    );
    if let Some(m) = &report.measured {
        let cells = m
            .speedup
            .iter()
            .map(|(t, s)| format!("{t}t {s:.2}x ({:.0}% of bound)", m.efficiency[t] * 100.0))
            .collect::<Vec<_>>()
            .join(", ");
        outln!(
            "{:>26} measured: sequential {:.2} ms; {}",
            "",
            m.sequential_ms,
            cells
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: AnalyzeArgs,
    }

    fn run_with(argv: &[&str]) -> Result<ExitCode, String> {
        let cli = Cli::try_parse_from(std::iter::once("analyze").chain(argv.iter().copied()))
            .map_err(|e| e.to_string())?;
        run(cli.args)
    }

    /// A folder for a test's files, removed when dropped.
    fn tmp() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("parevm-analyze-cli-")
            .tempdir()
            .unwrap()
    }

    #[test]
    fn workload_with_charts() {
        let dir = tmp();
        let chart = dir.path().join("chart.svg");
        let schedule = dir.path().join("schedule.svg");
        let code = run_with(&[
            "--workload",
            "hot-slot",
            "--txs",
            "40",
            "--hot-ratio",
            "0.25",
            "--json",
            "--chart",
            chart.to_str().unwrap(),
            "--schedule",
            schedule.to_str().unwrap(),
            "--repeat",
            "1",
        ])
        .unwrap();
        assert_eq!(code, ExitCode::SUCCESS);
        for path in [chart, schedule] {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.trim_start().starts_with("<svg"));
        }
    }

    /// Several hot ratios analyse every workload at each, in that order,
    /// each named with its ratio; none given, the generator's default.
    #[test]
    fn hot_ratios_sweep_the_workloads() {
        let sources_of = |argv: &[&str]| {
            let argv = std::iter::once("analyze").chain(argv.iter().copied());
            let cli = Cli::try_parse_from(argv).unwrap();
            let sources = sources(&cli.args).unwrap();
            sources
                .iter()
                .map(|s| (s.label(), s.hot_ratio()))
                .collect::<Vec<_>>()
        };
        let swept = sources_of(&["--workload", "all", "--hot-ratio", "0,1"]);
        assert_eq!(swept.len(), 2 * WorkloadKind::ALL.len());
        assert_eq!(swept[0], ("raw-transfers (hot 0)".into(), Some(0.0)));
        assert_eq!(swept[swept.len() - 1], ("mixed (hot 1)".into(), Some(1.0)));
        // A ratio takes one value: the block folders after it stay folders.
        let dir = tmp();
        std::fs::create_dir_all(dir.path().join("7")).unwrap();
        std::fs::write(dir.path().join("7/block.json"), "{}").unwrap();
        let folder = dir.path().to_str().unwrap();
        let mixed = sources_of(&["--workload", "mixed", "--hot-ratio", "0.5", folder]);
        let block = dir.path().join("7").display().to_string();
        assert_eq!(
            mixed,
            [(block, None), ("mixed (hot 0.5)".into(), Some(0.5))]
        );
        let default = sources_of(&["--workload", "mixed"]);
        let ratio = WorkloadConfig::DEFAULT_HOT_RATIO;
        assert_eq!(default, [("mixed".into(), Some(ratio))]);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(run_with(&[]).is_err());
        assert!(run_with(&["/nonexistent/block"]).is_err());
        assert!(run_with(&["--workload", "nope"]).is_err());
        assert!(
            run_with(&["--workload", "mixed", "--hot-ratio", "2"])
                .is_ok_and(|c| c != ExitCode::SUCCESS)
        );
        assert!(run_with(&["--txs", "5"]).is_err());
        assert!(run_with(&["--workload", "all", "--schedule", "/tmp/x.svg"]).is_err());
        assert!(run_with(&["--workload", "mixed", "--chart", "/nonexistent/dir/c.svg"]).is_err());
        assert!(run_with(&["--workload", "mixed", "--workers", "0"]).is_err());
        let folder = std::env::temp_dir();
        let folder = folder.to_str().unwrap();
        let refused = run_with(&["--workload", "mixed", "--schedule", folder]).unwrap_err();
        assert!(refused.contains("a folder"), "{refused}");
        assert!(run_with(&["--workload", "mixed", "--max-threads", "100000000"]).is_err());
        assert!(run_with(&["--workload", "mixed", "--hot-ratio", "0,,1"]).is_err());
        assert!(
            run_with(&["--workload", "mixed", "--hot-ratio", "0,2", "--txs", "5"])
                .is_ok_and(|c| c != ExitCode::SUCCESS)
        );
    }

    /// A schedule on more workers than the block has transactions is the
    /// schedule on one worker per transaction, not an allocation per worker.
    #[test]
    fn a_schedule_on_absurdly_many_workers_is_drawn() {
        let dir = tmp();
        let schedule = dir.path().join("many-workers.svg");
        let many = usize::MAX.to_string();
        let args = [
            "--workload",
            "raw-transfers",
            "--txs",
            "20",
            "--schedule",
            schedule.to_str().unwrap(),
            "--workers",
            &many,
        ];
        assert_eq!(run_with(&args), Ok(ExitCode::SUCCESS));
        assert!(schedule.is_file());
    }
}
