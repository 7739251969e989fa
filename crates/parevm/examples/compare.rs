//! Runs fixture blocks sequentially and in parallel and prints both times:
//! `cargo run --release -p parevm --example compare -- <block dirs> [--threads N] [--repeat K]`.

use parevm::{ParallelConfig, execute_parallel, execute_sequential, fixture};
use std::time::Instant;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let take = |args: &mut Vec<String>, flag: &str, default: usize| -> usize {
        match args.iter().position(|a| a == flag) {
            Some(i) => {
                let v = args.remove(i + 1).parse().expect("number");
                args.remove(i);
                v
            }
            None => default,
        }
    };
    let threads = take(&mut args, "--threads", 2);
    let repeat = take(&mut args, "--repeat", 5);
    let only_parallel = take(&mut args, "--only-parallel", 0) == 1;
    // Time the parallel machinery on one thread, in order (no conflicts).
    let trace_only = take(&mut args, "--trace", 0) == 1;
    // Compare the sequential executor with plain revm instead of parallel.
    // 1: against a bare `transact_commit` loop; 2: against alloy-evm's block
    // executor with its own receipt builder and revm's bundle, as a node runs it.
    let plain = take(&mut args, "--plain", 0);
    // Always Block-STM (`ParallelConfig::never_fall_back`), to time it on
    // blocks the fallback rule keeps off it.
    let block_stm = take(&mut args, "--block-stm", 0) == 1;
    let config = match block_stm {
        true => ParallelConfig::never_fall_back(threads),
        false => ParallelConfig::with_threads(threads),
    };
    let (mut total_seq, mut total_par) = (0.0, 0.0);
    let (mut min_seq, mut min_par) = (0.0, 0.0);
    for path in args {
        for dir in fixture::block_dirs(path.as_ref()).expect("blocks") {
            let f = fixture::load_mainnet_block(&dir).expect("loads");
            let mut seq = Vec::new();
            let mut par = Vec::new();
            let mut path = "";
            for _ in 0..repeat {
                let t = Instant::now();
                let a = if only_parallel {
                    None
                } else {
                    Some(execute_sequential(&f.block, &f.state).expect("seq"))
                };
                seq.push(t.elapsed().as_secs_f64() * 1e3);
                if plain > 0 {
                    let t = Instant::now();
                    if plain == 1 {
                        plain_revm(&f.block, &f.state);
                    } else {
                        node_revm(&f.block, &f.state);
                    }
                    par.push(t.elapsed().as_secs_f64() * 1e3);
                    continue;
                }
                if trace_only {
                    let t = Instant::now();
                    parevm::parallel::trace_block(&f.block, &f.state).expect("trace");
                    par.push(t.elapsed().as_secs_f64() * 1e3);
                    continue;
                }
                let t = Instant::now();
                let b = execute_parallel(&f.block, &f.state, &config).expect("par");
                par.push(t.elapsed().as_secs_f64() * 1e3);
                path = b.path.as_str();
                if let Some(d) = a.and_then(|a| a.first_difference(&b)) {
                    panic!("block {}: {d}", f.block.header.number);
                }
            }
            seq.sort_by(f64::total_cmp);
            par.sort_by(f64::total_cmp);
            let (s, p) = (seq[repeat / 2], par[repeat / 2]);
            total_seq += s;
            total_par += p;
            min_seq += seq[0];
            min_par += par[0];
            let prediction = parevm::parallel::predict(&f.block);
            println!(
                "{:>9} {:>5} txs  seq {s:8.2} ms  par {p:8.2} ms  {:5.2}x  {path}  gas {} bound2 {:.2}",
                f.block.header.number,
                f.block.transactions.len(),
                s / p,
                prediction.gas,
                prediction.bound(2),
            );
        }
    }
    println!(
        "aggregate {:.3}x (of medians; of minima {:.3}x)",
        total_seq / total_par,
        min_seq / min_par
    );
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
fn node_revm(block: &parevm::BlockInput, state: &parevm::InMemoryState) {
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
    executor.apply_pre_execution_changes().expect("pre");
    for tx in &block.transactions {
        std::hint::black_box(executor.execute_transaction(tx.as_recovered_ref()).ok());
    }
    std::hint::black_box(executor.finish().expect("finish"));
    db.merge_transitions(BundleRetention::PlainState);
    std::hint::black_box(db.take_bundle());
}
