//! The Ethereum Foundation's consensus tests run through parevm's executors.
//!
//! - GeneralStateTests ([`state_test`]): every case (fork, data / gas / value
//!   index) runs its transaction as a one-transaction block through both
//!   [`parevm::execute_sequential`] and [`parevm::execute_parallel`]; the two
//!   must agree, and the post-state root and logs hash must match the test's.
//! - BlockchainTests ([`blockchain_test`]): the blocks run in order with
//!   [`parevm::execute_parallel`] (checked against the sequential executor),
//!   each verified against its header (state root, receipts root, logs bloom,
//!   gas used), and the final state against `postState` / `postStateHash`.
//!
//! [`run_paths`] takes files or folders (searched recursively for `.json`),
//! tells the two kinds apart by their shape, and runs the files in parallel.

pub mod blockchain_test;
pub mod common;
pub mod state_test;

use rayon::prelude::*;
use serde::Serialize;
use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
};

/// How to run the tests.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Worker threads of the parallel executor.
    pub threads: usize,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// One failed test case.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// The file it came from.
    pub file: String,
    /// The test's name.
    pub test: String,
    /// The fork (state tests) or network (blockchain tests).
    pub fork: String,
    /// Which case: `d<data>g<gas>v<value>` for state tests, the block for
    /// blockchain tests.
    pub case: Option<String>,
    /// What differed.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FAIL {} [{}", self.test, self.fork)?;
        if let Some(case) = &self.case {
            write!(f, " {case}")?;
        }
        write!(f, "] ({}): {}", self.file, self.message)
    }
}

/// Counts of a run, with the failures and the skips by reason.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed.
    pub failures: Vec<Failure>,
    /// Skipped cases by reason.
    pub skipped: BTreeMap<String, usize>,
}

impl Report {
    /// Number of failed cases.
    pub fn failed(&self) -> usize {
        self.failures.len()
    }

    /// Number of skipped cases.
    pub fn skipped_total(&self) -> usize {
        self.skipped.values().sum()
    }

    /// Records `count` cases skipped for `reason`.
    pub fn skip(&mut self, reason: impl Into<String>, count: usize) {
        if count > 0 {
            *self.skipped.entry(reason.into()).or_default() += count;
        }
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: Report) {
        self.passed += other.passed;
        self.failures.extend(other.failures);
        for (reason, count) in other.skipped {
            self.skip(reason, count);
        }
    }

    /// The summary line: `N passed, N failed, N skipped`.
    pub fn summary(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.passed,
            self.failed(),
            self.skipped_total()
        )
    }

    fn failure(&mut self, file: &str, test: &str, fork: &str, message: String) {
        self.failures.push(Failure {
            file: file.to_string(),
            test: test.to_string(),
            fork: fork.to_string(),
            case: None,
            message,
        });
    }
}

/// Every `.json` file under `paths` (files are taken as they are, folders
/// searched recursively), sorted. A path that does not exist, or a folder
/// holding no `.json` file, is an error.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
        let entries =
            std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.is_dir() {
                walk(&path, out)?;
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let found = files.len();
            walk(path, &mut files)?;
            if files.len() == found {
                // A wrong folder would otherwise pass, having run nothing.
                let path = path.display();
                return Err(format!("{path}: no .json files here or in any sub-folder"));
            }
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            return Err(format!("{} does not exist", path.display()));
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// Why a file found in a folder is skipped, or a file named on its own
/// fails: it holds JSON, but no test.
const NOT_A_TEST: &str = "file is neither a state nor a blockchain test";

/// Runs every test file under `paths`, files in parallel (rayon). A file
/// named in `paths` that holds no test fails, where one found in a folder
/// (a fixture's index, say) is skipped.
pub fn run_paths(paths: &[PathBuf], config: &RunConfig) -> Result<Report, String> {
    let files = collect_files(paths)?;
    let named = |file: &PathBuf| paths.contains(file);
    let mut report = files
        .par_iter()
        .map(|file| {
            let mut report = run_file(file, config);
            if named(file) && report.skipped.remove(NOT_A_TEST).is_some() {
                let file = file.display().to_string();
                report.failure(&file, "-", "-", NOT_A_TEST.to_string());
            }
            report
        })
        .reduce(Report::default, |mut a, b| {
            a.merge(b);
            a
        });
    report.failures.sort_by(|a, b| {
        (&a.file, &a.test, &a.fork, &a.case).cmp(&(&b.file, &b.test, &b.fork, &b.case))
    });
    Ok(report)
}

/// What kind of test a file holds, judged by the shape of its first test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestKind {
    /// A GeneralStateTests file (`env`, `pre`, `transaction`, `post`).
    State,
    /// A BlockchainTests file (`blocks`, `pre`, `network`).
    Blockchain,
}

/// The kind of test in `json`, if it is one.
pub fn detect(json: &serde_json::Value) -> Option<TestKind> {
    let first = json.as_object()?.values().next()?.as_object()?;
    if first.contains_key("blocks") && first.contains_key("network") {
        Some(TestKind::Blockchain)
    } else if first.contains_key("transaction") && first.contains_key("post") {
        Some(TestKind::State)
    } else {
        None
    }
}

/// Runs one test file.
pub fn run_file(path: &Path, config: &RunConfig) -> Report {
    let mut report = Report::default();
    let file = path.display().to_string();
    let json: serde_json::Value = match std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
    {
        Ok(json) => json,
        Err(e) => {
            report.failure(&file, "-", "-", format!("cannot read the file: {e}"));
            return report;
        }
    };
    match detect(&json) {
        Some(TestKind::State) => match state_test::parse_suite(json) {
            Ok(suite) => state_test::run_suite(&file, &suite, config, &mut report),
            Err(e) => report.failure(&file, "-", "-", format!("cannot parse the state test: {e}")),
        },
        Some(TestKind::Blockchain) => match serde_json::from_value(json) {
            Ok(suite) => blockchain_test::run_suite(&file, &suite, config, &mut report),
            Err(e) => report.failure(
                &file,
                "-",
                "-",
                format!("cannot parse the blockchain test: {e}"),
            ),
        },
        None => report.skip(NOT_A_TEST, 1),
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    /// JSON that holds no test fails when named, and is skipped when found
    /// in a folder.
    #[test]
    fn a_named_file_without_tests_fails_and_a_found_one_is_skipped() {
        let temp = tempfile::Builder::new()
            .prefix("parevm-not-a-test-")
            .tempdir()
            .unwrap();
        let dir = temp.path().to_path_buf();
        let file = dir.join("index.json");
        std::fs::write(&file, r#"{"x": "y"}"#).unwrap();
        let config = RunConfig::default();
        let named = run_paths(std::slice::from_ref(&file), &config).unwrap();
        assert_eq!((named.failed(), named.skipped_total()), (1, 0));
        assert!(named.failures[0].message.contains(NOT_A_TEST));
        let found = run_paths(std::slice::from_ref(&dir), &config).unwrap();
        assert_eq!((found.failed(), found.skipped_total()), (0, 1));
    }
}
