//! The dependency graph of a block and what can be computed from it: critical
//! path, greedy list schedules on a fixed number of workers, ideal speedups.

use parevm::parallel::{Location, TxAccessTrace};
use serde::{Deserialize, Serialize};
use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
};

/// What the weight of a transaction (its cost in the DAG) is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightBasis {
    /// Measured execution time in nanoseconds (the normal case).
    Time,
    /// Gas used: the fallback when no transaction has a measured time.
    Gas,
    /// One per transaction: the fallback when neither times nor gas are known
    /// (speedups then count transactions, not work).
    Unit,
}

impl WeightBasis {
    /// Picks the basis for `traces`: time if any transaction has a measured
    /// time, else gas if any used gas, else unit weights.
    pub fn for_traces(traces: &[TxAccessTrace]) -> Self {
        if traces.iter().any(|t| t.execution_nanos > 0) {
            Self::Time
        } else if traces.iter().any(|t| t.gas_used > 0) {
            Self::Gas
        } else {
            Self::Unit
        }
    }

    /// The weight of one transaction under this basis: its own work,
    /// without what any idle worker can share ([`Self::shared`]).
    pub fn weight(self, trace: &TxAccessTrace) -> u64 {
        match self {
            Self::Time => trace.execution_nanos.saturating_sub(trace.shared_nanos),
            Self::Gas => trace.gas_used,
            Self::Unit => 1,
        }
    }

    /// The work of one transaction that idle workers share once it has
    /// executed (a large receipt's bloom; measured in time only).
    pub fn shared(self, trace: &TxAccessTrace) -> u64 {
        match self {
            Self::Time => trace.shared_nanos.min(trace.execution_nanos),
            Self::Gas | Self::Unit => 0,
        }
    }

    /// Name of the unit, for axis labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Time => "time",
            Self::Gas => "gas",
            Self::Unit => "unit",
        }
    }
}

/// How much one location serialises the block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationStats {
    /// The location.
    pub location: Location,
    /// Transactions that read the location after an earlier transaction of the
    /// block wrote or incremented it, and therefore depend on that transaction:
    /// how many transactions this location forces to wait.
    pub dependents: usize,
    /// Dependency edges attributed to this location: for each dependent, the
    /// number of earlier transactions whose value it read here (the last full
    /// writer plus every incrementer since). An edge caused by several
    /// locations is attributed to each of them.
    pub edges: usize,
    /// Distinct transactions that wrote or incremented the location.
    pub writers: usize,
}

/// Per-location state while walking the block in order.
#[derive(Default)]
struct LocationState {
    last_writer: Option<usize>,
    incrementers: Vec<usize>,
    dependents: usize,
    edges: usize,
    writers: usize,
}

/// The dependency DAG of a block: edges point from a transaction to earlier
/// transactions whose writes it read.
#[derive(Debug, Clone)]
pub struct BlockDag {
    /// `dependencies[j]`: the earlier transactions `j` depends on, ascending
    /// and distinct.
    pub dependencies: Vec<Vec<usize>>,
    /// `dependents[i]`: the later transactions that depend on `i`, ascending.
    pub dependents: Vec<Vec<usize>>,
    /// The weight of each transaction, in [`Self::basis`] units: the work
    /// only its own worker can do.
    pub weights: Vec<u64>,
    /// The work of each transaction that any idle worker can share once
    /// it has executed ([`WeightBasis::shared`]).
    pub shared: Vec<u64>,
    /// What the weights measure.
    pub basis: WeightBasis,
    /// Gas used by each transaction.
    pub gas: Vec<u64>,
    /// Measured time of each transaction, in nanoseconds.
    pub nanos: Vec<u64>,
    /// Every location that caused at least one dependency, most serialising
    /// first (by dependents, then edges, then location).
    pub locations: Vec<LocationStats>,
}

/// One transaction placed on a worker by [`BlockDag::schedule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The transaction.
    pub tx: usize,
    /// The worker (0-based).
    pub worker: usize,
    /// Start, in weight units.
    pub start: u64,
    /// End, in weight units.
    pub end: u64,
}

/// A greedy list schedule of a block's DAG on a fixed number of workers.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Number of workers.
    pub workers: usize,
    /// One slot per transaction, in transaction order.
    pub slots: Vec<Slot>,
    /// When the last transaction ends.
    pub makespan: u64,
    /// Sum of all weights and shared work.
    pub total_work: u64,
    /// What the times are measured in.
    pub basis: WeightBasis,
}

impl Schedule {
    /// The workers that can have run a transaction: one per transaction at
    /// most (the greedy schedule never uses more), at least one. A chart
    /// draws these rows, not `workers`, which may be any count.
    pub fn busy_workers(&self) -> usize {
        self.workers.min(self.slots.len()).max(1)
    }

    /// Total work / makespan: at least 1 and at most `min(workers, transactions)`.
    pub fn speedup(&self) -> f64 {
        ratio(self.total_work, self.makespan, self.slots.len())
    }
}

/// `work / span`, clamped into `[1, max(n, 1)]` (it is in that range by
/// construction; the clamp only guards rounding), and 1 for empty work.
fn ratio(work: u64, span: u64, n: usize) -> f64 {
    if work == 0 || span == 0 {
        return 1.0;
    }
    (work as f64 / span as f64).clamp(1.0, n.max(1) as f64)
}

/// Sorted, distinct copy of `locations`.
fn distinct(locations: &[Location]) -> Vec<Location> {
    let mut v = locations.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

impl BlockDag {
    /// Builds the DAG of `traces` (one per transaction, in block order), with
    /// weights on the basis [`WeightBasis::for_traces`] picks.
    pub fn new(traces: &[TxAccessTrace]) -> Self {
        Self::with_basis(traces, WeightBasis::for_traces(traces))
    }

    /// Builds the DAG of `traces` with weights on the given basis.
    ///
    /// Transaction `j` depends on an earlier `i` when `j` reads a location
    /// whose value `i` contributed to: the last transaction before `j` that
    /// wrote it (`writes`), and every transaction that incremented it
    /// (`increments`) after that write and before `j`, since a read of an
    /// incremented balance sums those increments. Increments read nothing, so
    /// they depend on nobody through the incremented location, and two
    /// increments of one location commute. Writes without reads depend on
    /// nobody either (multi-version memory keeps every version). Nor do
    /// `bounds`, balances a transaction only needs to cover what it sends or
    /// pays: the block's own order covered it, and balances dwarf that.
    pub fn with_basis(traces: &[TxAccessTrace], basis: WeightBasis) -> Self {
        let n = traces.len();
        let mut states: HashMap<Location, LocationState> = HashMap::new();
        let mut dependencies = Vec::with_capacity(n);
        for (j, trace) in traces.iter().enumerate() {
            let mut deps = Vec::new();
            for location in distinct(&trace.reads) {
                let Some(state) = states.get_mut(&location) else {
                    continue;
                };
                let before = deps.len();
                deps.extend(state.last_writer);
                deps.extend_from_slice(&state.incrementers);
                let added = deps.len() - before;
                if added > 0 {
                    state.dependents += 1;
                    state.edges += added;
                }
            }
            deps.sort_unstable();
            deps.dedup();
            dependencies.push(deps);

            let writes = distinct(&trace.writes);
            for &location in &writes {
                let state = states.entry(location).or_default();
                state.last_writer = Some(j);
                state.incrementers.clear();
                state.writers += 1;
            }
            for location in distinct(&trace.increments) {
                if writes.binary_search(&location).is_ok() {
                    continue; // a full write of the same location supersedes it
                }
                let state = states.entry(location).or_default();
                state.incrementers.push(j);
                state.writers += 1;
            }
        }
        let mut dependents = vec![Vec::new(); n];
        for (j, deps) in dependencies.iter().enumerate() {
            for &i in deps {
                dependents[i].push(j);
            }
        }
        let mut locations: Vec<LocationStats> = states
            .into_iter()
            .filter(|(_, s)| s.dependents > 0)
            .map(|(location, s)| LocationStats {
                location,
                dependents: s.dependents,
                edges: s.edges,
                writers: s.writers,
            })
            .collect();
        locations.sort_by(|a, b| {
            (Reverse(a.dependents), Reverse(a.edges), a.location).cmp(&(
                Reverse(b.dependents),
                Reverse(b.edges),
                b.location,
            ))
        });
        Self {
            dependencies,
            dependents,
            weights: traces.iter().map(|t| basis.weight(t)).collect(),
            shared: traces.iter().map(|t| basis.shared(t)).collect(),
            basis,
            gas: traces.iter().map(|t| t.gas_used).collect(),
            nanos: traces.iter().map(|t| t.execution_nanos).collect(),
            locations,
        }
    }

    /// Number of transactions.
    pub fn len(&self) -> usize {
        self.dependencies.len()
    }

    /// Whether the block has no transactions.
    pub fn is_empty(&self) -> bool {
        self.dependencies.is_empty()
    }

    /// Number of dependency edges.
    pub fn edge_count(&self) -> usize {
        self.dependencies.iter().map(Vec::len).sum()
    }

    /// Sum of all weights and shared work.
    pub fn total_work(&self) -> u64 {
        self.weights.iter().sum::<u64>() + self.shared.iter().sum::<u64>()
    }

    /// Transactions that depend on no earlier transaction.
    pub fn independent_count(&self) -> usize {
        self.dependencies.iter().filter(|d| d.is_empty()).count()
    }

    /// Transactions that neither depend on an earlier one nor have a later
    /// one depend on them.
    pub fn isolated_count(&self) -> usize {
        (0..self.len())
            .filter(|&i| self.dependencies[i].is_empty() && self.dependents[i].is_empty())
            .count()
    }

    /// The heaviest path through the DAG under [`Self::weights`]: its total
    /// weight and its transactions in order.
    pub fn critical_path(&self) -> (u64, Vec<usize>) {
        self.critical_path_with(&self.weights)
    }

    /// The heaviest path through the DAG under the given per-transaction weights.
    pub fn critical_path_with(&self, weights: &[u64]) -> (u64, Vec<usize>) {
        let n = self.len();
        let mut finish = vec![0u64; n];
        let mut previous = vec![None; n];
        for j in 0..n {
            let mut best: Option<(u64, usize)> = None;
            for &i in &self.dependencies[j] {
                if best.is_none_or(|(f, _)| finish[i] > f) {
                    best = Some((finish[i], i));
                }
            }
            finish[j] = best.map_or(0, |(f, _)| f) + weights[j];
            previous[j] = best.map(|(_, i)| i);
        }
        let Some(last) = (0..n).max_by_key(|&j| (finish[j], Reverse(j))) else {
            return (0, Vec::new());
        };
        let mut path = vec![last];
        while let Some(p) = previous[*path.last().expect("non-empty")] {
            path.push(p);
        }
        path.reverse();
        (finish[last], path)
    }

    /// Total work / critical path: the speedup with unlimited workers, at least
    /// 1 and at most the number of transactions. Shared work is off the
    /// critical path: unlimited workers share it out.
    pub fn ideal_speedup(&self) -> f64 {
        ratio(self.total_work(), self.critical_path().0, self.len())
    }

    /// Greedy list schedule on `workers` workers (0 counts as 1): whenever a
    /// worker is free, the ready transaction (all dependencies finished) with
    /// the lowest index starts on the free worker with the lowest number.
    /// A transaction occupies its worker for its weight plus its share of
    /// its shared work (divided among all workers), and the makespan is at
    /// least the total work divided among them.
    pub fn schedule(&self, workers: usize) -> Schedule {
        let workers = workers.max(1);
        let n = self.len();
        let mut waiting: Vec<usize> = self.dependencies.iter().map(Vec::len).collect();
        let mut ready: BinaryHeap<Reverse<usize>> =
            (0..n).filter(|&j| waiting[j] == 0).map(Reverse).collect();
        // At most one worker per transaction is ever busy: the pool beyond
        // that would idle (and a huge count would not fit in memory).
        let pool = workers.min(n.max(1));
        let mut free: BinaryHeap<Reverse<usize>> = (0..pool).map(Reverse).collect();
        let mut running: BinaryHeap<Reverse<(u64, usize, usize)>> = BinaryHeap::new();
        let mut slots = vec![
            Slot {
                tx: 0,
                worker: 0,
                start: 0,
                end: 0
            };
            n
        ];
        let mut now = 0u64;
        loop {
            while !free.is_empty() && !ready.is_empty() {
                let Reverse(tx) = ready.pop().expect("non-empty");
                let Reverse(worker) = free.pop().expect("non-empty");
                let end = now + self.weights[tx] + self.shared[tx] / workers as u64;
                slots[tx] = Slot {
                    tx,
                    worker,
                    start: now,
                    end,
                };
                running.push(Reverse((end, worker, tx)));
            }
            let Some(&Reverse((end, _, _))) = running.peek() else {
                break;
            };
            now = end;
            while let Some(&Reverse((end, worker, tx))) = running.peek() {
                if end != now {
                    break;
                }
                running.pop();
                free.push(Reverse(worker));
                for &d in &self.dependents[tx] {
                    waiting[d] -= 1;
                    if waiting[d] == 0 {
                        ready.push(Reverse(d));
                    }
                }
            }
        }
        let spread = self.total_work().div_ceil(workers as u64);
        Schedule {
            workers,
            makespan: slots.iter().map(|s| s.end).max().unwrap_or(0).max(spread),
            slots,
            total_work: self.total_work(),
            basis: self.basis,
        }
    }

    /// Total work / makespan of [`Self::schedule`] on `workers` workers: at
    /// least 1, at most `min(workers, transactions)` and at most the ideal speedup.
    pub fn bounded_speedup(&self, workers: usize) -> f64 {
        let schedule = self.schedule(workers);
        ratio(
            schedule.total_work,
            schedule.makespan,
            self.len().min(workers.max(1)),
        )
    }
}
