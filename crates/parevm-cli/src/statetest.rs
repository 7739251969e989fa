//! `parevm statetest`: runs the Ethereum Foundation's state and blockchain
//! tests through parevm's executors.

use crate::output::outln;
use clap::Args;
use parevm_ethtests::{RunConfig, run_paths};
use std::{path::PathBuf, process::ExitCode, time::Instant};

/// Arguments of `parevm statetest`.
#[derive(Args)]
pub struct StatetestArgs {
    /// Test files, or folders searched recursively for `.json` files. State
    /// and blockchain tests are told apart by their content.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Worker threads of the parallel executor (default: all cores).
    #[arg(long, value_parser = crate::thread_count)]
    threads: Option<usize>,
    /// Print one JSON object (counts, failures, skip reasons) instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: StatetestArgs) -> Result<ExitCode, String> {
    let mut config = RunConfig::default();
    if let Some(threads) = args.threads {
        config.threads = threads;
    }
    let start = Instant::now();
    let report = run_paths(&args.paths, &config)?;
    let elapsed = start.elapsed();
    if args.json {
        let json = serde_json::json!({
            "passed": report.passed,
            "failed": report.failed(),
            "skipped": report.skipped_total(),
            "skip_reasons": report.skipped,
            "failures": report.failures,
            "threads": config.threads,
            "seconds": elapsed.as_secs_f64(),
        });
        outln!("{json}");
    } else {
        for failure in &report.failures {
            outln!("{failure}");
        }
        for (reason, count) in &report.skipped {
            outln!("skipped {count}: {reason}");
        }
        eprintln!("took {:.1}s", elapsed.as_secs_f64());
        outln!("{}", report.summary());
    }
    Ok(if report.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
