//! Differential test: the parallel executor must produce exactly what the
//! sequential executor produces (outcomes, receipts, gas, state changes) on
//! every shared mainnet block, at several thread counts, repeated to shake
//! out races.

mod common;

use parevm::{
    ExecutionPath, ParallelConfig, execute_parallel, execute_sequential,
    verify::verify_against_header,
};

const THREADS: [usize; 5] = [1, 2, 3, 4, 8];
/// Runs of each block per thread count.
const REPEATS: usize = 20;
/// Runs of each block forced to try partitions, per thread count.
const PARTITIONED_REPEATS: usize = 5;

/// `default` runs, or `PAREVM_SOAK` times as many for a longer hunt for
/// races (`PAREVM_SOAK=10 cargo test --release --test parallel_differential`).
/// A value that is not a whole number stops the test rather than quietly
/// running the default.
fn runs(default: usize) -> usize {
    let soak = std::env::var("PAREVM_SOAK").ok().map(|n| {
        n.parse::<usize>()
            .unwrap_or_else(|_| panic!("PAREVM_SOAK={n:?}: expected a whole number"))
    });
    default * soak.unwrap_or(1).max(1)
}

#[test]
fn parallel_equals_sequential_on_mainnet_blocks() {
    let Some(blocks) = common::mainnet_blocks() else {
        return;
    };
    let mut failures = Vec::new();
    for fixture in blocks {
        let (block, state) = (&fixture.block, &fixture.state);
        let expected = execute_sequential(block, state).expect("sequential executes");
        for threads in THREADS {
            let config = ParallelConfig::never_fall_back(threads);
            for run in 0..runs(REPEATS) {
                let actual = execute_parallel(block, state, &config).expect("parallel executes");
                if let Some(difference) = expected.first_difference(&actual) {
                    failures.push(format!(
                        "block {} threads {threads} run {run}: {difference}",
                        block.header.number
                    ));
                    break;
                }
                if run == 0
                    && let Err(error) = verify_against_header(block, &actual)
                {
                    failures.push(format!(
                        "block {} threads {threads}: {error}",
                        block.header.number
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "parallel diverged:\n{}",
        failures.join("\n")
    );
}

/// The same, with every block that splits at all tried as partitions: real
/// blocks are where the prediction is most often wrong, so most of them
/// exercise validation and the switch to Block-STM.
#[test]
fn partitioned_equals_sequential_on_mainnet_blocks() {
    let Some(blocks) = common::mainnet_blocks() else {
        return;
    };
    let mut failures = Vec::new();
    let mut partitioned = 0;
    for fixture in blocks {
        let (block, state) = (&fixture.block, &fixture.state);
        let expected = execute_sequential(block, state).expect("sequential executes");
        for threads in THREADS {
            let config = ParallelConfig::partitioned(threads);
            for run in 0..runs(PARTITIONED_REPEATS) {
                let actual = execute_parallel(block, state, &config).expect("parallel executes");
                partitioned += usize::from(actual.path == ExecutionPath::Partitioned);
                if let Some(difference) = expected.first_difference(&actual) {
                    failures.push(format!(
                        "block {} threads {threads} run {run} ({}): {difference}",
                        block.header.number,
                        actual.path.as_str()
                    ));
                    break;
                }
            }
        }
    }
    eprintln!("{partitioned} runs held as partitions");
    assert!(
        failures.is_empty(),
        "partitioned diverged:\n{}",
        failures.join("\n")
    );
}

/// Blocks run from several threads at once, as a node validating one
/// block while building another does: the callers share the helper pool
/// and the pooled multi-version memories and result slots (kept for at
/// most four blocks at once), which each block then takes at another
/// block's size. Each caller runs every block in its own order, so blocks
/// of every size follow one another on every pooled memory.
#[test]
fn concurrent_callers_run_mainnet_blocks_alike() {
    let Some(blocks) = common::mainnet_blocks() else {
        return;
    };
    let fixtures: Vec<_> = blocks
        .filter(|f| f.block.transactions.len() >= 2)
        .map(|f| {
            let expected = execute_sequential(&f.block, &f.state).expect("sequential executes");
            (f, expected)
        })
        .collect();
    const CALLERS: usize = 6;
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for caller in 0..CALLERS {
            let (fixtures, failures) = (&fixtures, &failures);
            scope.spawn(move || {
                for round in 0..runs(2) {
                    for i in 0..fixtures.len() {
                        let at = (i + caller * 7 + round) % fixtures.len();
                        // Every block, in an order of the caller's own.
                        let at = match caller % 2 {
                            0 => at,
                            _ => fixtures.len() - 1 - at,
                        };
                        let (fixture, expected) = &fixtures[at];
                        let threads = 2 + (caller + i) % 3;
                        let config = match i % 2 {
                            0 => ParallelConfig::never_fall_back(threads),
                            _ => ParallelConfig::partitioned(threads),
                        };
                        let block = &fixture.block;
                        let actual = execute_parallel(block, &fixture.state, &config)
                            .expect("parallel executes");
                        if let Some(difference) = expected.first_difference(&actual) {
                            let number = block.header.number;
                            let failure = format!("caller {caller} block {number}: {difference}");
                            failures.lock().unwrap().push(failure);
                        }
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "concurrent runs diverged:\n{}",
        failures.join("\n")
    );
}
