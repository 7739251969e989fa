//! The parallel executor's configuration, and the fallback rule it holds:
//! when a block runs sequentially because parallelism would not pay.

use super::Prediction;
use crate::FallbackReason;

/// Configuration of the parallel executor, including the fallback rule: a
/// block runs sequentially when parallelism is predicted not to pay.
#[derive(Debug, Clone)]
pub struct ParallelConfig {
    /// Worker threads (at least 1).
    pub threads: usize,
    /// The cores the workers share. The fallback rule judges a block at
    /// [`Self::judged_threads`], at most this many: workers beyond the cores
    /// take turns on them rather than add speed. (On the 2-core VM at 4
    /// threads, fixture 14396881's 1,346 cheap transactions, kept off
    /// Block-STM at 2 threads, ran on it at 0.68x.)
    pub cores: usize,
    /// Blocks with fewer transactions run sequentially: starting and
    /// joining worker threads costs more than they could save.
    pub min_parallel_txs: usize,
    /// Blocks whose transactions' [predicted gas](super::predicted_gas) sums to
    /// less than this run sequentially, for the same reason.
    pub min_parallel_gas: u64,
    /// Blocks whose [`Prediction::bound`] at the configured threads is below
    /// this run sequentially: their same-sender chains leave too little to
    /// run side by side to pay for the parallel machinery.
    pub min_predicted_speedup: f64,
    /// While running, early (between max(64, txs/64) and txs/2
    /// executions): once the threads times the share of executions not
    /// wasted (aborted by validation, or blocked on a dependency other than
    /// the previous transaction of the sender's chain) falls below
    /// this, the block is given up and re-run sequentially. Blocks where
    /// nearly every transaction conflicts (one hot pool or slot) cannot be
    /// predicted from the block alone; this bounds their loss to the
    /// executions before detection. A chain wastes (threads - 1) / threads
    /// of its executions, so the share of waste that gives a block up grows
    /// with the threads: at the default 1.0, half at 2 threads, 87.5% at 8.
    /// (1.25, 37.5% at 2 threads, gave up mainnet fixture 18085863 after 28
    /// wasted of its first 67 executions; it runs at 1.37x.)
    pub min_useful_speedup: f64,
    /// What Block-STM costs per transaction (scheduling, multi-version
    /// memory, validation), in gas of execution that takes as long. A block
    /// that does not run as partitions runs sequentially when its mean
    /// [predicted gas](super::predicted_gas) per transaction times (threads - 1)
    /// is below this: `threads` workers then gain less than the overhead
    /// costs (`threads * work / (work + overhead) < 1`). The default,
    /// 30,000, is what Block-STM cost on the 2-core Xeon VM at 2 threads,
    /// from `2 * work / (work + overhead)`: blocks of 21,000-gas transfers
    /// kept off partitions ran at 0.75-0.83x (300, 1,000 and 5,000 of
    /// them; 32,000 gas each), 1,000 ERC-20 transfers of 51,000 gas at
    /// 1.26x (30,000), and mainnet fixture 14396881 (1,346 transactions
    /// averaging 25,600 gas) at 0.89-0.97x (29,500), where it runs
    /// sequentially at 0.97-1.0x now. It is the only fixture the rise from
    /// 18,000 sends off Block-STM (the next cheapest on it averages
    /// 59,800). 18,000 was measured on an AMD VM of 2 cores, where the
    /// transfers ran at 1.07-1.23x; 40,000 earlier, when Block-STM cost
    /// more. Plain transfers that split run as partitions whatever this
    /// is.
    pub tx_overhead_gas: u64,
    /// What Block-STM costs a block once, whatever its size, in gas of
    /// execution that takes as long: before the first worker runs, the
    /// caller wakes the helpers, takes the multi-version memory
    /// and builds the scheduler (about 75 us on mainnet fixture 3356896 on the
    /// 2-core VM, where its whole sequential run takes 0.45-0.6 ms), and
    /// the helpers join late and meet again for the assembly. With it, a
    /// block runs sequentially unless `threads` workers gain the per-block
    /// cost back at each thread: [`Self::too_cheap_for_block_stm`] compares
    /// the work's gain, (threads - 1) times the predicted gas, with
    /// [`Self::tx_overhead_gas`] per transaction plus `threads` times this.
    /// The default, 1,500,000, lies between the two smallest mainnet
    /// fixtures that run on Block-STM: 3356896 (176 transactions, mostly
    /// plain transfers, 5.5M predicted gas: the gain's margin over the
    /// per-transaction cost, 2.3M, is under 3M), which ran at 0.90-0.93x
    /// (medians of 90-300 runs on Block-STM; 0.97x sequentially), and
    /// 19923400 (24 calls, 4M predicted gas, a margin of 3.6M), which runs
    /// at 1.3-1.4x.
    pub block_overhead_gas: u64,
    /// A block whose transactions split into partitions predicted to be
    /// independent runs as those partitions, without Block-STM, when they
    /// keep at least this share of the threads busy (the partitions' gas
    /// over the heaviest one's, divided by the threads). Above 1 disables
    /// partitioning. At 2 threads the default, 0.7, admits a heaviest
    /// partition of up to 71% of the gas, where a chain bounds the speedup
    /// at 1.4x; the rule runs blocks so chained sequentially. With 0.85
    /// (59%), blocks of 5,000 ERC-20 transfers, AMM swaps or `bump()`s
    /// whose hot holder, pool or slot took 60-65% of them ran on Block-STM
    /// at 0.92-1.30x, and they run as partitions at 1.2-2.1x. A component
    /// is only as chained as its shared keys: calls sharing a contract but
    /// not its storage (approvals of one token) would run side by side on
    /// Block-STM, and in one partition here.
    pub min_partition_balance: f64,
    /// Predict every contract call (and creation) as touching only its
    /// sender and target, so that blocks with them can run as partitions
    /// too. Without it, only calls into code whose reach is bounded are
    /// predicted (by what the code can reach). Off by default: on mainnet,
    /// calls into different contracts meet in shared ones (WETH, pools
    /// behind routers) often enough that the partitions failed validation
    /// and the block paid for both runs. For blocks whose contracts keep to
    /// themselves.
    pub partition_contract_calls: bool,
    /// Measure where the time of a block run on Block-STM or as partitions
    /// goes ([`ExecutionStats::phases`](crate::ExecutionStats::phases)), for
    /// diagnosis. Off by default: on Block-STM it reads the clock twice per
    /// task, about 50 ns on a transaction of a few microseconds.
    pub phase_times: bool,
}

impl ParallelConfig {
    /// With `threads` workers and the default fallback rule.
    pub fn with_threads(threads: usize) -> Self {
        Self {
            threads: threads.max(1),
            ..Self::default()
        }
    }

    /// The workers a block of `transactions` is judged at by the fallback
    /// rule: the threads, but no more than the cores or the transactions.
    pub fn judged_threads(&self, transactions: usize) -> usize {
        self.threads.min(self.cores).min(transactions).max(1)
    }

    /// Always Block-STM (for tests of the parallel machinery itself), unless
    /// there is only one thread or transaction.
    pub fn never_fall_back(threads: usize) -> Self {
        Self {
            threads: threads.max(1),
            cores: usize::MAX,
            min_parallel_txs: 2,
            min_parallel_gas: 0,
            min_predicted_speedup: 0.0,
            min_useful_speedup: 0.0,
            tx_overhead_gas: 0,
            block_overhead_gas: 0,
            min_partition_balance: f64::INFINITY,
            partition_contract_calls: false,
            phase_times: false,
        }
    }

    /// As partitions whenever the block splits at all, contract calls
    /// included, else Block-STM (for tests of partitioned execution and its
    /// validation).
    pub fn partitioned(threads: usize) -> Self {
        Self {
            min_partition_balance: 0.0,
            partition_contract_calls: true,
            ..Self::never_fall_back(threads)
        }
    }

    /// The share of wasted executions above which a block of `transactions`
    /// is given up ([`Self::min_useful_speedup`], at
    /// [`Self::judged_threads`]).
    pub(crate) fn max_waste(&self, transactions: usize) -> f64 {
        1.0 - self.min_useful_speedup / self.judged_threads(transactions) as f64
    }

    /// Whether `prediction`'s transactions are too cheap for Block-STM, at
    /// [`Self::judged_threads`]: `threads` workers run the block's work and
    /// Block-STM's cost per transaction ([`Self::tx_overhead_gas`]) in a
    /// `threads`-th of the time, and then its cost per block
    /// ([`Self::block_overhead_gas`]), so they gain only if (threads - 1)
    /// times the work exceeds the transactions' cost plus `threads` times
    /// the block's.
    ///
    /// Workers beyond the cores take turns on them, and one descheduled
    /// while it holds a task holds up the others, so the cost per
    /// transaction is taken to grow with the square root of the workers per
    /// core. Fixture 14396881 (mean 25,600 gas) ran at 0.81x with 3 workers
    /// and 0.72x with 8 on the 2 cores of a VM where 2 ran it at
    /// 1.15-1.25x: cheap transactions lose to a little oversubscription.
    /// Heavier ones lose less: with 8 workers, fixture 4864590 (84,000 gas)
    /// ran at 1.33x, against 1.38x with 2, where growing the cost in
    /// proportion to the workers per core would have run it sequentially.
    /// So is the block's cost weighed, with a core per worker: added to the
    /// grown cost, it sent fixtures 4864590, 19923400, 19933122 and
    /// 19934116 off Block-STM at 8 workers on the 2 cores, where it ran
    /// them at 1.5-1.8x.
    pub fn too_cheap_for_block_stm(&self, prediction: &Prediction) -> bool {
        let threads = self.judged_threads(prediction.transactions) as u128;
        let workers = (self.threads.min(prediction.transactions) as u128).max(threads);
        // Saturating: the costs are the caller's settings, any u64.
        let per_tx = |workers: u128| {
            // tx_overhead * sqrt(workers / threads), to a thousandth.
            let root = workers
                .saturating_mul(threads)
                .saturating_mul(1_000_000)
                .isqrt();
            (u128::from(self.tx_overhead_gas).saturating_mul(root) / (threads * 1_000))
                .saturating_mul(prediction.transactions as u128)
        };
        let gain = u128::from(prediction.work) * (threads - 1);
        let per_block = u128::from(self.block_overhead_gas).saturating_mul(threads);
        gain < per_tx(workers) || gain < per_tx(threads).saturating_add(per_block)
    }

    /// The part of [`Self::fallback_reason`] that the number of
    /// transactions alone tells, before any pass over them.
    pub(crate) fn count_fallback_reason(&self, transactions: usize) -> Option<FallbackReason> {
        if self.judged_threads(transactions) < 2 {
            Some(FallbackReason::OneThread)
        } else if transactions < self.min_parallel_txs.max(2) {
            Some(FallbackReason::FewTransactions)
        } else {
            None
        }
    }

    /// Why `block` should run sequentially, if the block alone tells. The
    /// executor also falls back later: on [`Self::too_cheap_for_block_stm`]
    /// once the block did not run as partitions (which needs the state),
    /// and on conflicts while running.
    pub fn fallback_reason(&self, prediction: &Prediction) -> Option<FallbackReason> {
        let threads = self.judged_threads(prediction.transactions);
        if let Some(reason) = self.count_fallback_reason(prediction.transactions) {
            Some(reason)
        } else if prediction.work < self.min_parallel_gas {
            Some(FallbackReason::LittleGas)
        } else if prediction.bound(threads) < self.min_predicted_speedup {
            Some(FallbackReason::DependencyChain)
        } else {
            None
        }
    }
}

impl Default for ParallelConfig {
    /// Thresholds measured on the 49 mainnet fixture blocks at 2 threads
    /// (see the README's "How a block runs").
    fn default() -> Self {
        Self {
            threads: available_cores(),
            cores: available_cores(),
            min_parallel_txs: 16,
            min_parallel_gas: 4_000_000,
            min_predicted_speedup: 1.45,
            min_useful_speedup: 1.0,
            tx_overhead_gas: 30_000,
            block_overhead_gas: 1_500_000,
            min_partition_balance: 0.7,
            partition_contract_calls: false,
            phase_times: false,
        }
    }
}

/// The cores available to this process (its affinity and quota included),
/// looked up once.
fn available_cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

#[cfg(test)]
mod tests {
    use super::{ParallelConfig, Prediction};

    /// The default rule at `threads`, on a core each.
    fn rule(threads: usize) -> ParallelConfig {
        ParallelConfig {
            cores: threads,
            ..ParallelConfig::with_threads(threads)
        }
    }

    #[test]
    fn the_waste_that_gives_a_block_up_grows_with_the_threads() {
        assert_eq!(rule(2).max_waste(1_000), 0.5);
        assert_eq!(rule(8).max_waste(1_000), 0.875);
        // Never giving up: no share of waste exceeds 1.
        assert_eq!(ParallelConfig::never_fall_back(2).max_waste(1_000), 1.0);
    }

    #[test]
    fn blocks_are_judged_at_the_threads_that_can_run_at_once() {
        let config = ParallelConfig {
            cores: 2,
            ..ParallelConfig::with_threads(8)
        };
        assert_eq!(config.judged_threads(1_000), 2);
        assert_eq!(config.judged_threads(1), 1);
        let one_core = ParallelConfig { cores: 1, ..config };
        assert_eq!(one_core.judged_threads(1_000), 1);
        assert_eq!(ParallelConfig::never_fall_back(8).judged_threads(1_000), 8);
    }

    /// The default rule at `threads`, without Block-STM's cost per block.
    fn per_tx_rule(threads: usize) -> ParallelConfig {
        ParallelConfig {
            block_overhead_gas: 0,
            ..rule(threads)
        }
    }

    #[test]
    fn cheap_transactions_pay_for_block_stm_only_with_more_threads() {
        let transfers = Prediction {
            transactions: 100,
            gas: 2_100_000,
            critical_gas: 21_000,
            work: 2_100_000,
        };
        // By default plain transfers are too cheap at 2 threads (21,000
        // < 30,000), not at 4 (3 * 21,000 > 30,000), unless those 4 take
        // turns on 2 cores.
        assert!(per_tx_rule(2).too_cheap_for_block_stm(&transfers));
        assert!(!per_tx_rule(4).too_cheap_for_block_stm(&transfers));
        let four_on_two_cores = ParallelConfig {
            threads: 4,
            ..per_tx_rule(2)
        };
        assert!(four_on_two_cores.too_cheap_for_block_stm(&transfers));
        // A faster machine's overhead: 21,000 > 18,000.
        let faster = ParallelConfig {
            tx_overhead_gas: 18_000,
            ..per_tx_rule(2)
        };
        assert!(!faster.too_cheap_for_block_stm(&transfers));
        // Calls of 50,000 gas pay at 2 threads, and with 3 workers on the
        // 2 cores (30,000 * sqrt(1.5) < 50,000), not with 8 (60,000).
        let calls = Prediction {
            work: 5_000_000,
            ..transfers
        };
        assert!(!per_tx_rule(2).too_cheap_for_block_stm(&calls));
        let on_two_cores = |threads| ParallelConfig {
            threads,
            ..per_tx_rule(2)
        };
        assert!(!on_two_cores(3).too_cheap_for_block_stm(&calls));
        assert!(on_two_cores(8).too_cheap_for_block_stm(&calls));
        assert!(!ParallelConfig::never_fall_back(2).too_cheap_for_block_stm(&transfers));
    }

    /// Mainnet fixture 14396881 as predicted (1,346 transactions averaging
    /// 25,600 gas) runs sequentially at 2 threads, on Block-STM at 4.
    #[test]
    fn the_cheapest_mainnet_fixture_pays_for_block_stm_only_with_more_threads() {
        let cheap = Prediction {
            transactions: 1_346,
            gas: 40_000_000,
            critical_gas: 1_000_000,
            work: 34_484_520,
        };
        assert!(rule(2).too_cheap_for_block_stm(&cheap));
        assert!(!rule(4).too_cheap_for_block_stm(&cheap));
    }

    #[test]
    fn small_blocks_pay_for_block_stm_only_once_the_block_cost_is_won_back() {
        // Mainnet fixture 3356896 as predicted: 176 transactions, 5.46M gas.
        let small = Prediction {
            transactions: 176,
            gas: 7_836_121,
            critical_gas: 252_000,
            work: 5_455_788,
        };
        // At 2 threads its gain (5.46M) is above the transactions' cost
        // (5.28M) but below it plus twice the block's (3M); at 4 it is not.
        assert!(!per_tx_rule(2).too_cheap_for_block_stm(&small));
        assert!(rule(2).too_cheap_for_block_stm(&small));
        assert!(!rule(4).too_cheap_for_block_stm(&small));
        // Twice the work at 2 threads pays.
        let twice = Prediction {
            work: 2 * small.work,
            ..small
        };
        assert!(!rule(2).too_cheap_for_block_stm(&twice));
        // The block's cost is weighed with a core per worker: 8 workers on
        // 2 cores make expensive transactions no cheaper (mainnet fixture
        // 4864590: 195 transactions, 16.3M gas).
        let expensive = Prediction {
            transactions: 195,
            gas: 20_035_573,
            critical_gas: 1_000_000,
            work: 16_320_604,
        };
        let eight_on_two_cores = ParallelConfig {
            threads: 8,
            ..rule(2)
        };
        assert!(!eight_on_two_cores.too_cheap_for_block_stm(&expensive));
    }

    /// Costs at the top of their range make every block too cheap, without
    /// overflowing, however many workers and transactions.
    #[test]
    fn extreme_costs_saturate() {
        let huge = Prediction {
            transactions: usize::MAX,
            gas: u64::MAX,
            critical_gas: 0,
            work: u64::MAX,
        };
        let extreme = ParallelConfig {
            threads: usize::MAX,
            tx_overhead_gas: u64::MAX,
            block_overhead_gas: u64::MAX,
            ..rule(2)
        };
        assert!(extreme.too_cheap_for_block_stm(&huge));
    }
}
