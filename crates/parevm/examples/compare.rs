//! Runs fixture blocks sequentially and in parallel and prints both times:
//! `cargo run --release -p parevm --example compare -- <block dirs> [--threads N] [--repeat K]`.
//!
//! A developer's measuring tool: `--trace 1` times the parallel machinery
//! on one thread, in order; `--plain 1|2` times plain revm instead of the
//! parallel executor; `--block-stm 1` never falls back; `--stats 1` prints
//! each parallel run's counters and phase times to stderr (reading the
//! clock around every task slows cheap transactions a little); `--idle MS`
//! sleeps that long before every timed run, as a node at the tip of the
//! chain meets a block after idle time (cores asleep, caches cooled).

use parevm::{BlockResult, ParallelConfig, execute_parallel, execute_sequential, fixture};
use std::time::Instant;

/// `println!`, but a reader that stopped reading (`compare … | head`) ends
/// the run quietly instead of a panic on the closed pipe.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write;
        if let Err(error) = writeln!(std::io::stdout(), $($arg)*) {
            if error.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            eprintln!("error: writing to stdout: {error}");
            std::process::exit(1);
        }
    }};
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What to run against the sequential executor.
#[derive(Clone, Copy, PartialEq)]
enum Against {
    Parallel,
    /// Block-STM's machinery on one thread, in order (no conflicts).
    Trace,
    /// A bare `transact_commit` loop on revm.
    PlainRevm,
    /// alloy-evm's block executor with revm's bundle, as a node runs it.
    NodeRevm,
}

struct Options {
    paths: Vec<String>,
    repeat: usize,
    against: Against,
    config: ParallelConfig,
    only_parallel: bool,
    stats: bool,
    idle: std::time::Duration,
}

fn main() {
    if let Err(message) = options().and_then(|options| run(&options)) {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

fn options() -> Result<Options, String> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut take = |flag: &str, default: usize| -> Result<usize, String> {
        let Some(i) = args.iter().position(|a| a == flag) else {
            return Ok(default);
        };
        let value = args.get(i + 1).ok_or(format!("{flag} needs a number"))?;
        let value = value
            .parse()
            .map_err(|_| format!("{flag}: not a number: {value}"))?;
        args.drain(i..i + 2);
        Ok(value)
    };
    let threads = take("--threads", 2)?;
    let repeat = take("--repeat", 5)?.max(1);
    let only_parallel = take("--only-parallel", 0)? == 1;
    let trace = take("--trace", 0)? == 1;
    let plain = take("--plain", 0)?;
    // Always Block-STM, to time it on blocks the fallback rule keeps off it.
    let block_stm = take("--block-stm", 0)? == 1;
    let stats = take("--stats", 0)? == 1;
    let idle = std::time::Duration::from_millis(take("--idle", 0)? as u64);
    let against = match (trace, plain) {
        (true, _) => Against::Trace,
        (false, 0) => Against::Parallel,
        (false, 1) => Against::PlainRevm,
        (false, 2) => Against::NodeRevm,
        (false, other) => return Err(format!("--plain {other}: expected 1 or 2")),
    };
    let mut config = match block_stm {
        true => ParallelConfig::never_fall_back(threads),
        false => ParallelConfig::with_threads(threads),
    };
    // Where a Block-STM run's time goes, printed with its counters.
    config.phase_times = stats;
    if args.is_empty() {
        return Err("no block folders given".into());
    }
    Ok(Options {
        paths: args,
        repeat,
        against,
        config,
        only_parallel,
        stats,
        idle,
    })
}

fn run(options: &Options) -> Result<(), String> {
    let (mut total_seq, mut total_par) = (0.0, 0.0);
    let (mut min_seq, mut min_par) = (0.0, 0.0);
    for path in &options.paths {
        for dir in fixture::block_dirs(path.as_ref()).map_err(|e| e.to_string())? {
            let f = fixture::load_mainnet_block(&dir).map_err(|e| e.to_string())?;
            let (mut seq, mut par, path) = time_block(options, &f)?;
            seq.sort_by(f64::total_cmp);
            par.sort_by(f64::total_cmp);
            let (s, p) = (seq[seq.len() / 2], par[par.len() / 2]);
            total_seq += s;
            total_par += p;
            min_seq += seq[0];
            min_par += par[0];
            let prediction = parevm::parallel::predict(&f.block);
            outln!(
                "{:>9} {:>5} txs  seq {s:8.2} ms  par {p:8.2} ms  {:5.2}x  {path}  gas {} bound2 {:.2}",
                f.block.header.number,
                f.block.transactions.len(),
                s / p,
                prediction.gas,
                prediction.bound(2),
            );
        }
    }
    outln!(
        "aggregate {:.3}x (of medians; of minima {:.3}x)",
        total_seq / total_par,
        min_seq / min_par
    );
    Ok(())
}

/// The block's sequential and other times, in milliseconds, interleaved,
/// and the path the parallel executor took.
fn time_block(
    options: &Options,
    f: &fixture::MainnetFixture,
) -> Result<(Vec<f64>, Vec<f64>, &'static str), String> {
    let number = f.block.header.number;
    let fail = |e: &dyn std::fmt::Display| format!("block {number}: {e}");
    let (mut seq, mut par, mut path) = (Vec::new(), Vec::new(), "");
    for _ in 0..options.repeat {
        std::thread::sleep(options.idle);
        let t = Instant::now();
        let sequential = match options.only_parallel {
            true => None,
            false => Some(execute_sequential(&f.block, &f.state).map_err(|e| fail(&e))?),
        };
        seq.push(t.elapsed().as_secs_f64() * 1e3);
        std::thread::sleep(options.idle);
        let t = Instant::now();
        let parallel = match options.against {
            Against::Parallel => {
                Some(execute_parallel(&f.block, &f.state, &options.config).map_err(|e| fail(&e))?)
            }
            Against::Trace => {
                parevm::parallel::trace_block(&f.block, &f.state).map_err(|e| fail(&e))?;
                None
            }
            Against::PlainRevm => {
                plain_revm(&f.block, &f.state);
                None
            }
            Against::NodeRevm => {
                node_revm(&f.block, &f.state).map_err(|e| fail(&e))?;
                None
            }
        };
        par.push(t.elapsed().as_secs_f64() * 1e3);
        if let Some(parallel) = parallel {
            path = parallel.path.as_str();
            check(options, sequential.as_ref(), &parallel).map_err(|e| fail(&e))?;
        }
    }
    Ok((seq, par, path))
}

/// Prints the parallel run's counters if asked, and fails if it differs
/// from the sequential run.
fn check(
    options: &Options,
    sequential: Option<&BlockResult>,
    parallel: &BlockResult,
) -> Result<(), String> {
    if options.stats {
        eprintln!("{:?}", parallel.stats);
    }
    match sequential.and_then(|s| s.first_difference(parallel)) {
        Some(difference) => Err(format!("parallel differs from sequential: {difference}")),
        None => Ok(()),
    }
}

/// The transactions on plain revm: one EVM over revm's `State` cache,
/// `transact_commit` per transaction, no receipts, system calls or rewards.
fn plain_revm(block: &parevm::BlockInput, state: &parevm::InMemoryState) {
    use alloy_evm::FromRecoveredTx;
    use revm::{
        Context, ExecuteCommitEvm, MainBuilder, MainContext, context::TxEnv, database::State,
    };
    let env = block.evm_env();
    let db = State::builder()
        .with_database(parevm::state::StateDb(state))
        .with_bundle_update()
        .build();
    let mut evm = Context::mainnet()
        .with_db(db)
        .with_block(env.block_env)
        .with_cfg(env.cfg_env)
        .build_mainnet();
    for tx in &block.transactions {
        let tx_env = TxEnv::from_recovered_tx(tx.inner(), tx.signer());
        std::hint::black_box(evm.transact_commit(tx_env).ok());
    }
}

/// The block as a node executes it on revm: alloy-evm's block executor with
/// its own receipt builder (system calls, receipts, rewards), then revm's
/// bundle of the block's changes.
fn node_revm(
    block: &parevm::BlockInput,
    state: &parevm::InMemoryState,
) -> Result<(), alloy_evm::block::BlockExecutionError> {
    use alloy_evm::{
        EvmFactory,
        block::BlockExecutor,
        eth::{EthBlockExecutor, EthEvmFactory, receipt_builder::AlloyReceiptBuilder},
    };
    use revm::database::{State, states::bundle_state::BundleRetention};
    let mut db = State::builder()
        .with_database(parevm::state::StateDb(state))
        .with_bundle_update()
        .build();
    let evm = EthEvmFactory::default().create_evm(&mut db, block.evm_env());
    let mut executor = EthBlockExecutor::new(
        evm,
        block.execution_ctx(),
        &*block.chain,
        AlloyReceiptBuilder::default(),
    );
    executor.apply_pre_execution_changes()?;
    for tx in &block.transactions {
        std::hint::black_box(executor.execute_transaction(tx.as_recovered_ref()).ok());
    }
    std::hint::black_box(executor.finish()?);
    db.merge_transitions(BundleRetention::PlainState);
    std::hint::black_box(db.take_bundle());
    Ok(())
}
