//! What a slow [`StateSource`] (a node's database) costs each executor, and
//! what [`CachedState`] in front of it saves: the mainnet fixtures run
//! sequentially and in parallel over a source that counts its reads, then
//! over one that takes `--latency-ns` (default 1000) per read, with and
//! without a cache (a fresh one per run, as a node would keep one per
//! block).
//!
//! `cargo run --release -p parevm --example state_latency -- ../shared/fixtures/mainnet [--latency-ns N] [--threads N] [--repeat K]`

use alloy_primitives::{Address, B256, U256};
use parevm::{
    BlockInput, CachedState, ParallelConfig, StateError, StateSource, execute_parallel,
    execute_sequential, fixture,
};
use revm::{bytecode::Bytecode, state::AccountInfo};
use std::{
    process::ExitCode,
    sync::atomic::{AtomicUsize, Ordering::Relaxed},
    time::{Duration, Instant},
};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `inner`, counting its reads (account, storage, code) and taking
/// `latency` for each.
#[derive(Debug)]
struct Slow<S> {
    inner: S,
    latency: Duration,
    reads: [AtomicUsize; 3],
}

impl<S> Slow<S> {
    fn read(&self, kind: usize) {
        self.reads[kind].fetch_add(1, Relaxed);
        if self.latency.is_zero() {
            return;
        }
        let start = Instant::now();
        while start.elapsed() < self.latency {
            std::hint::spin_loop();
        }
    }

    fn take_reads(&self) -> [usize; 3] {
        self.reads.each_ref().map(|count| count.swap(0, Relaxed))
    }
}

impl<S: StateSource> StateSource for Slow<S> {
    fn account(&self, address: &Address) -> Result<Option<AccountInfo>, StateError> {
        self.read(0);
        self.inner.account(address)
    }
    fn account_fields(&self, address: &Address) -> Result<Option<AccountInfo>, StateError> {
        self.read(0);
        self.inner.account_fields(address)
    }
    fn code_hash(&self, address: &Address) -> Result<Option<B256>, StateError> {
        self.read(0);
        self.inner.code_hash(address)
    }
    fn code_by_hash(&self, code_hash: &B256) -> Result<Bytecode, StateError> {
        self.read(2);
        self.inner.code_by_hash(code_hash)
    }
    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError> {
        self.read(1);
        self.inner.storage(address, slot)
    }
    fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        self.inner.block_hash(number)
    }
}

struct Args {
    paths: Vec<String>,
    latency: Duration,
    threads: usize,
    repeat: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        paths: Vec::new(),
        latency: Duration::from_nanos(1000),
        threads: 2,
        repeat: 5,
    };
    let mut raw = std::env::args().skip(1);
    while let Some(arg) = raw.next() {
        let mut number = |flag: &str| -> Result<u64, String> {
            let value = raw.next().ok_or(format!("{flag} needs a value"))?;
            value
                .parse()
                .map_err(|_| format!("{flag}: not a number: {value}"))
        };
        match arg.as_str() {
            "--latency-ns" => args.latency = Duration::from_nanos(number(&arg)?),
            "--threads" => args.threads = number(&arg)?.max(1) as usize,
            "--repeat" => args.repeat = number(&arg)?.max(1) as usize,
            _ => args.paths.push(arg),
        }
    }
    if args.paths.is_empty() {
        return Err(
            "usage: state_latency <block dirs> [--latency-ns N] [--threads N] [--repeat K]".into(),
        );
    }
    Ok(args)
}

/// How long `f` took, in milliseconds.
fn time_ms(f: impl FnOnce() -> Result<(), String>) -> Result<f64, String> {
    let start = Instant::now();
    f()?;
    Ok(start.elapsed().as_secs_f64() * 1e3)
}

/// Per block: the reads of each executor, then its times on the slow
/// source, alone and behind a fresh cache.
fn run(args: &Args) -> Result<(), String> {
    let config = ParallelConfig::with_threads(args.threads);
    let (mut reads_seq, mut reads_par) = ([0usize; 3], [0usize; 3]);
    let mut totals = [0.0f64; 4];
    for path in &args.paths {
        for dir in fixture::block_dirs(path.as_ref()).map_err(|e| e.to_string())? {
            let f = fixture::load_mainnet_block(&dir).map_err(|e| e.to_string())?;
            let slow = Slow {
                inner: f.state,
                latency: Duration::ZERO,
                reads: Default::default(),
            };
            let block = &f.block;
            let seq = |state: &dyn StateSource| execute_sequential(block, &state).map(drop);
            let par = |state: &dyn StateSource| execute_parallel(block, &state, &config).map(drop);
            let err = |e: parevm::ExecutionError| format!("block {}: {e}", block.header.number);
            seq(&slow).map_err(err)?;
            let s = slow.take_reads();
            par(&slow).map_err(err)?;
            let p = slow.take_reads();
            for kind in 0..3 {
                reads_seq[kind] += s[kind];
                reads_par[kind] += p[kind];
            }
            let slow = Slow {
                latency: args.latency,
                ..slow
            };
            let times = time_block(args.repeat, block, &slow, &config)?;
            for (total, time) in totals.iter_mut().zip(times) {
                *total += time;
            }
            println!(
                "{:>9} {:>5} txs  reads seq {s:?} par {p:?}  ms: seq {:.2} par {:.2} | cached: seq {:.2} par {:.2}",
                block.header.number,
                block.transactions.len(),
                times[0],
                times[1],
                times[2],
                times[3],
            );
        }
    }
    let [seq, par, seq_cached, par_cached] = totals;
    println!("reads (accounts, slots, codes): sequential {reads_seq:?}, parallel {reads_par:?}");
    println!(
        "at {} ns a read, {} threads: parallel {:.3}x of sequential; behind a cache {:.3}x (the cache alone: sequential {:.3}x)",
        args.latency.as_nanos(),
        args.threads,
        seq / par,
        seq / par_cached,
        seq / seq_cached,
    );
    Ok(())
}

/// Median times of one block: sequential and parallel on `slow`, then each
/// behind a fresh cache; the four interleaved, run after run.
fn time_block(
    repeat: usize,
    block: &BlockInput,
    slow: &Slow<parevm::InMemoryState>,
    config: &ParallelConfig,
) -> Result<[f64; 4], String> {
    let err = |e: parevm::ExecutionError| format!("block {}: {e}", block.header.number);
    let mut times = [const { Vec::new() }; 4];
    for _ in 0..repeat {
        let runs: [&dyn Fn() -> Result<(), String>; 4] = [
            &|| execute_sequential(block, slow).map(drop).map_err(err),
            &|| execute_parallel(block, slow, config).map(drop).map_err(err),
            &|| {
                execute_sequential(block, &CachedState::new(slow))
                    .map(drop)
                    .map_err(err)
            },
            &|| {
                execute_parallel(block, &CachedState::new(slow), config)
                    .map(drop)
                    .map_err(err)
            },
        ];
        for (run, times) in runs.iter().zip(times.iter_mut()) {
            times.push(time_ms(run)?);
        }
    }
    Ok(times.map(|mut t| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    }))
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|args| run(&args));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
