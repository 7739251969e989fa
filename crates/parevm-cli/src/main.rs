//! `parevm`: replay real blocks, run synthetic benchmarks, analyse parallelism.

mod analyze;
mod bench;
mod output;
mod phases;
mod replay;
mod statetest;
mod timing;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// The most worker threads a command takes: far past any machine's cores,
/// and short of spawning threads by the million on a slip of the keyboard.
const MAX_THREADS: usize = 1024;

/// Parses a thread count, 1 to [`MAX_THREADS`] (clap's `value_parser`).
fn thread_count(arg: &str) -> Result<usize, String> {
    match arg.parse::<usize>() {
        Ok(n @ 1..=MAX_THREADS) => Ok(n),
        _ => Err(format!("expected a whole number from 1 to {MAX_THREADS}")),
    }
}

/// Worker threads allocate and free write sets, results and receipts at a
/// high rate; glibc's allocator serialises them on arena locks, mimalloc
/// keeps per-thread heaps (as reth does with jemalloc).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "parevm",
    version,
    about = "Parallel EVM block execution, bit-identical to sequential"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Execute real blocks from fixture folders and verify them against their headers.
    Replay(replay::ReplayArgs),
    /// Run the Ethereum Foundation's state and blockchain tests.
    Statetest(statetest::StatetestArgs),
    /// Benchmark parallel against sequential execution on synthetic workloads.
    Bench(bench::BenchArgs),
    /// Measure how parallel blocks really are: dependency graph, critical path, ideal speedup.
    Analyze(analyze::AnalyzeArgs),
}

fn main() -> ExitCode {
    // Diagnostics on stderr, off unless asked for: `RUST_LOG=parevm=debug`
    // prints each parallel block's executions, validations, aborts and waits.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(args) => replay::run(args),
        Command::Statetest(args) => statetest::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Analyze(args) => analyze::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Warns when the workers outnumber the cores: they take turns on them, and
/// the fallback rule judges blocks at the cores
/// ([`parevm::ParallelConfig::cores`]).
fn warn_if_oversubscribed(config: &parevm::ParallelConfig) {
    if config.threads > config.cores {
        tracing::warn!(
            "{} threads share {} cores: they take turns, and blocks are judged as if on {} threads",
            config.threads,
            config.cores,
            config.cores
        );
    }
}
