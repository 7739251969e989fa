//! How parallel is a block, really?
//!
//! From per-transaction access traces ([`parevm::parallel::trace_block`]) this
//! crate builds the block's dependency DAG ([`BlockDag`]) and derives what
//! bounds any parallel executor: the critical path, the ideal speedup with
//! unlimited workers, the speedup of a greedy list schedule on N workers, the
//! share of independent transactions and the locations that serialise the
//! block most. [`chart`] draws speedup curves and schedules as SVG.
//!
//! Speedups are computed on measured execution times; when no transaction has
//! a measured time they fall back to gas, and when there is no gas either to
//! one unit per transaction ([`WeightBasis`]). Every speedup is at least 1 and
//! at most the number of transactions (1 for empty blocks).

pub mod chart;
mod dag;

pub use dag::{BlockDag, LocationStats, Schedule, Slot, WeightBasis};

use parevm::{
    BlockInput, ExecutionError, StateSource,
    parallel::{Location, TxAccessTrace, trace_block},
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Worker counts reported in [`BlockAnalysis::bounded_speedup`].
pub const THREAD_COUNTS: [usize; 5] = [2, 4, 8, 16, 32];

/// Hot locations reported by default.
pub const DEFAULT_HOT_LOCATIONS: usize = 5;

/// Transactions reported in [`BlockAnalysis::heaviest_transactions`].
pub const HEAVIEST_TRANSACTIONS: usize = 3;

/// Why a block could not be analysed or a chart not drawn.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// Tracing the block failed.
    #[error("tracing the block: {0}")]
    Execution(#[from] ExecutionError),
    /// The trace count does not match the block's transactions.
    #[error("{traces} traces for {transactions} transactions")]
    TraceCount {
        /// Traces received.
        traces: usize,
        /// Transactions in the block.
        transactions: usize,
    },
    /// Drawing a chart failed.
    #[error("chart {path}: {message}")]
    Chart {
        /// The chart file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// A location that serialises transactions (see [`LocationStats`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HotLocation {
    /// Human-readable form: `balance:0x…`, `nonce:0x…`, `code:0x…`,
    /// `lifecycle:0x…` or `storage:0x…:0x<slot>`.
    pub location: String,
    /// `balance`, `nonce`, `code`, `lifecycle` or `storage`.
    pub kind: String,
    /// The account.
    pub address: String,
    /// The storage slot, for storage locations.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub slot: Option<String>,
    /// Transactions that read this location after an earlier transaction of
    /// the block wrote or incremented it (so had to wait for it): the number
    /// of transactions this location serialises. Sorted on this.
    pub dependent_transactions: usize,
    /// Dependency edges attributed to the location (a read of an incremented
    /// balance counts one edge per incrementer it sums).
    pub dependency_edges: usize,
    /// Distinct transactions that wrote or incremented it.
    pub writers: usize,
}

/// One of a block's heaviest transactions (see
/// [`BlockAnalysis::heaviest_transactions`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeavyTransaction {
    /// Its index in the block.
    pub index: usize,
    /// Its share of the block's work, on the [`BlockAnalysis::weight`]
    /// basis: no schedule ends before its worker has done that much.
    pub work_share: f64,
    /// Gas it used.
    pub gas_used: u64,
    /// Its share of the gas the block used (0 for a block that used none):
    /// well below its work share where gas underprices its time.
    pub gas_share: f64,
}

impl HotLocation {
    /// Describes `stats`.
    pub fn new(stats: &LocationStats) -> Self {
        let (kind, slot) = match stats.location {
            Location::Balance(_) => ("balance", None),
            Location::Nonce(_) => ("nonce", None),
            Location::Code(_) => ("code", None),
            Location::Lifecycle(_) => ("lifecycle", None),
            Location::Storage(_, slot) => ("storage", Some(format!("{slot:#x}"))),
        };
        let address = format!("{:#x}", stats.location.address());
        let location = match &slot {
            Some(slot) => format!("{kind}:{address}:{slot}"),
            None => format!("{kind}:{address}"),
        };
        Self {
            location,
            kind: kind.into(),
            address,
            slot,
            dependent_transactions: stats.dependents,
            dependency_edges: stats.edges,
            writers: stats.writers,
        }
    }
}

/// The parallelism profile of one block; serialises to the `--json` shape of
/// `parevm analyze`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockAnalysis {
    /// Block number.
    pub number: u64,
    /// Transactions.
    pub transactions: usize,
    /// Gas used by all transactions (sum over the traces).
    pub gas_used: u64,
    /// Gas along the heaviest (by gas) path of the dependency DAG.
    pub critical_path_gas: u64,
    /// Measured time along the heaviest (by time) path of the DAG, in ms (0
    /// when no time was measured).
    pub critical_path_ms: f64,
    /// Total work / critical path on the [`Self::weight`] basis: the speedup
    /// with unlimited workers and free scheduling. In `[1, transactions]`.
    pub ideal_speedup: f64,
    /// Total work / makespan of a greedy list schedule on N workers, for N in
    /// [`THREAD_COUNTS`] (keys are N as strings in JSON).
    pub bounded_speedup: BTreeMap<usize, f64>,
    /// Share of transactions that depend on no earlier transaction (1 for an
    /// empty block).
    pub independent_share: f64,
    /// The locations that serialise most transactions, most first.
    pub hot_locations: Vec<HotLocation>,
    /// What the speedups are computed on: `time`, `gas` (no times measured) or
    /// `unit` (neither times nor gas).
    pub weight: WeightBasis,
    /// Sum of measured transaction times, in ms.
    pub total_time_ms: f64,
    /// Dependency edges in the DAG.
    pub dependency_edges: usize,
    /// Transactions on the critical path used for `ideal_speedup`.
    pub critical_path_transactions: usize,
    /// Share of transactions that neither depend on an earlier transaction
    /// nor have a later one depend on them.
    pub isolated_share: f64,
    /// The [`HEAVIEST_TRANSACTIONS`] transactions that take the most work,
    /// heaviest first. One transaction's share bounds the speedup at its
    /// inverse on any number of workers; measured in time, it shows where
    /// gas misjudges the work (on mainnet block 18,988,207, a transaction
    /// whose precompile pairings took about half of the block's time used
    /// 11% of its gas).
    #[serde(default)]
    pub heaviest_transactions: Vec<HeavyTransaction>,
}

impl BlockAnalysis {
    /// Analyses a block from its traces, reporting `hot` hot locations.
    pub fn from_dag(number: u64, dag: &BlockDag, hot: usize) -> Self {
        let n = dag.len();
        let share = |count: usize| if n == 0 { 1.0 } else { count as f64 / n as f64 };
        let time_path = if dag.basis == WeightBasis::Time {
            dag.critical_path().0
        } else {
            dag.critical_path_with(&dag.nanos).0
        };
        Self {
            number,
            transactions: n,
            gas_used: dag.gas.iter().sum(),
            critical_path_gas: dag.critical_path_with(&dag.gas).0,
            critical_path_ms: time_path as f64 / 1e6,
            ideal_speedup: dag.ideal_speedup(),
            bounded_speedup: THREAD_COUNTS
                .iter()
                .map(|&t| (t, dag.bounded_speedup(t)))
                .collect(),
            independent_share: share(dag.independent_count()),
            hot_locations: dag
                .locations
                .iter()
                .take(hot)
                .map(HotLocation::new)
                .collect(),
            weight: dag.basis,
            total_time_ms: dag.nanos.iter().sum::<u64>() as f64 / 1e6,
            dependency_edges: dag.edge_count(),
            critical_path_transactions: dag.critical_path().1.len(),
            isolated_share: share(dag.isolated_count()),
            heaviest_transactions: heaviest_transactions(dag),
        }
    }

    /// Analyses a block from its traces, reporting the default number of hot locations.
    pub fn from_traces(number: u64, traces: &[TxAccessTrace]) -> Self {
        Self::from_dag(number, &BlockDag::new(traces), DEFAULT_HOT_LOCATIONS)
    }
}

/// The [`HEAVIEST_TRANSACTIONS`] transactions of `dag` with the most work
/// (their own and what others may share of it), heaviest first; the earlier
/// of two as heavy.
fn heaviest_transactions(dag: &BlockDag) -> Vec<HeavyTransaction> {
    let work = |tx: usize| dag.weights[tx] + dag.shared[tx];
    let (total_work, total_gas) = (dag.total_work(), dag.gas.iter().sum::<u64>());
    let share = |part: u64, whole: u64| match whole {
        0 => 0.0,
        whole => part as f64 / whole as f64,
    };
    let mut order: Vec<usize> = (0..dag.len()).collect();
    order.sort_by_key(|&tx| (std::cmp::Reverse(work(tx)), tx));
    order
        .into_iter()
        .take(HEAVIEST_TRANSACTIONS)
        .map(|index| HeavyTransaction {
            index,
            work_share: share(work(index), total_work),
            gas_used: dag.gas[index],
            gas_share: share(dag.gas[index], total_gas),
        })
        .collect()
}

/// Traces `block` on `state` once and analyses it.
pub fn analyze_block<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
) -> Result<BlockAnalysis, AnalyzeError> {
    analyze_block_runs(block, state, 1)
}

/// Traces `block` on `state` `runs` times, takes per-transaction median times
/// ([`trace_block_median`]) and analyses it.
pub fn analyze_block_runs<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
    runs: usize,
) -> Result<BlockAnalysis, AnalyzeError> {
    let traces = trace_block_median(block, state, runs)?;
    Ok(BlockAnalysis::from_traces(block.header.number, &traces))
}

/// Traces `block` `runs` times (at least once) and returns the traces of the
/// first run with each transaction's `execution_nanos` and `shared_nanos`
/// replaced by their medians over the runs: one preempted or cache-cold
/// transaction then no longer passes for the critical path. The access sets
/// of every run are the same (execution is deterministic), so only the
/// times are combined.
pub fn trace_block_median<S: StateSource + ?Sized>(
    block: &BlockInput,
    state: &S,
    runs: usize,
) -> Result<Vec<TxAccessTrace>, AnalyzeError> {
    let mut traces = trace_block(block, state)?;
    if traces.len() != block.transactions.len() {
        return Err(AnalyzeError::TraceCount {
            traces: traces.len(),
            transactions: block.transactions.len(),
        });
    }
    if runs <= 1 {
        return Ok(traces);
    }
    let time = |t: &TxAccessTrace| (t.execution_nanos, t.shared_nanos);
    let mut times: Vec<Vec<(u64, u64)>> = traces.iter().map(|t| vec![time(t)]).collect();
    for _ in 1..runs {
        let again = trace_block(block, state)?;
        if again.len() != traces.len() {
            return Err(AnalyzeError::TraceCount {
                traces: again.len(),
                transactions: block.transactions.len(),
            });
        }
        for (all, trace) in times.iter_mut().zip(&again) {
            all.push(time(trace));
        }
    }
    let median = |mut values: Vec<u64>| {
        values.sort_unstable();
        values[values.len() / 2]
    };
    for (trace, all) in traces.iter_mut().zip(times) {
        trace.execution_nanos = median(all.iter().map(|t| t.0).collect());
        trace.shared_nanos = median(all.iter().map(|t| t.1).collect());
    }
    Ok(traces)
}

/// The ideal speedup of the block with `traces` on `threads` workers (0 counts
/// as 1): total work / makespan of the greedy list schedule. In
/// `[1, min(threads, transactions)]`; divide a measured speedup by it for the
/// executor's efficiency against the bound.
pub fn bounded_speedup(traces: &[TxAccessTrace], threads: usize) -> f64 {
    BlockDag::new(traces).bounded_speedup(threads)
}

/// The ideal speedup of the block with `traces` with unlimited workers.
pub fn ideal_speedup(traces: &[TxAccessTrace]) -> f64 {
    BlockDag::new(traces).ideal_speedup()
}
