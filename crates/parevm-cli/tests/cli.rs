//! The `parevm` binary end to end: the `--json` schemas that scripts rely
//! on, and bad input answered with a message and a non-zero exit, never a
//! panic.

use serde_json::Value;
use std::{
    path::PathBuf,
    process::{Command, Output, Stdio},
};

fn parevm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_parevm"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the parevm binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Fails unless `args` exit non-zero with an error that mentions `expected`
/// (on either stream: `replay` reports each block that failed on stdout)
/// and no panic.
fn refuses(args: &[&str], expected: &str) {
    let output = parevm(args);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        stderr(&output)
    );
    assert!(!output.status.success(), "{args:?} succeeded");
    assert!(!said.contains("panicked"), "{args:?} panicked: {said}");
    assert!(said.contains(expected), "{args:?}: {said}");
}

/// `bench --json` on blocks of 200 transactions, one round each
/// (`--min-time 0`: not 1.5 s of them), with `extra` arguments.
fn quick_bench(extra: &[&str]) -> Value {
    let mut args = vec![
        "bench",
        "--txs",
        "200",
        "--repeat",
        "1",
        "--min-time",
        "0",
        "--json",
    ];
    args.extend_from_slice(extra);
    let output = parevm(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).expect("bench --json is JSON")
}

#[test]
fn bench_json_reports_every_workload_identical() {
    let report = quick_bench(&[]);
    let workloads = report["workloads"].as_array().expect("a workloads array");
    let runs: Vec<_> = workloads
        .iter()
        .map(|w| (w["workload"].as_str(), w["hot_ratio"].as_f64()))
        .collect();
    let names = [
        "raw-transfers",
        "erc20-transfers",
        "amm-swaps",
        "hot-slot",
        "mixed",
    ];
    // By default, every workload at each hot ratio of the sweep.
    let expected: Vec<_> = [0.0, 0.1, 1.0]
        .iter()
        .flat_map(|&hot| names.map(|name| (Some(name), Some(hot))))
        .collect();
    assert_eq!(runs, expected);
    for workload in workloads {
        assert_eq!(workload["identical"], Value::Bool(true), "{workload}");
        assert_eq!(workload["transactions"], 200, "{workload}");
        for field in [
            "hot_ratio",
            "gas",
            "threads",
            "sequential_ms",
            "parallel_ms",
            "speedup",
        ] {
            assert!(workload[field].is_number(), "{field} in {workload}");
        }
        assert!(workload["runs"].as_u64() >= Some(1), "{workload}");
    }
}

#[test]
fn bench_refuses_bad_arguments() {
    refuses(&["bench", "--workload", "nope"], "valid workloads");
    refuses(&["bench", "--hot-ratio", "1.5"], "hot");
    refuses(&["bench", "--hot-ratio", "0,1.5"], "hot");
    refuses(&["bench", "--hot-ratio", "0,,1"], "--hot-ratio");
    refuses(&["bench", "--txs", "-3"], "-3");
    refuses(&["bench", "--threads", "0"], "--threads");
    refuses(&["bench", "--threads", "5000"], "1 to 1024");
    refuses(&["bench", "--idle", "99999"], "--idle");
}

#[test]
fn replay_refuses_missing_and_malformed_blocks() {
    refuses(
        &["replay", "/nonexistent/parevm-blocks"],
        "/nonexistent/parevm-blocks",
    );
    let dir = temp_folder("parevm-cli-junk-");
    std::fs::write(dir.path().join("block.json"), "{ not json").expect("writes");
    std::fs::write(dir.path().join("pre_state.json"), "{}").expect("writes");
    refuses(
        &["replay", dir.path().to_str().expect("utf-8 path")],
        "block.json",
    );
    refuses(
        &["replay", "/nonexistent/parevm-blocks", "--idle", "99999"],
        "--idle",
    );
    // Phases are the parallel executor's: not of a sequential replay.
    refuses(
        &["replay", "/nonexistent/parevm-blocks", "--phases"],
        "--phases needs --mode parallel or both",
    );
}

#[test]
fn statetest_refuses_a_missing_path_or_a_folder_without_tests() {
    refuses(
        &["statetest", "/nonexistent/parevm-tests"],
        "/nonexistent/parevm-tests",
    );
    // A folder without tests is a wrong path, not a pass of nothing.
    let dir = temp_folder("parevm-cli-no-tests-");
    std::fs::create_dir_all(dir.path().join("sub")).expect("temp folder");
    std::fs::write(dir.path().join("sub/notes.txt"), "not a test").expect("writes");
    refuses(
        &["statetest", dir.path().to_str().expect("utf-8 path")],
        "no .json files here or in any sub-folder",
    );
}

/// A temporary folder named from `prefix`, removed when dropped (also
/// after a failed assertion).
fn temp_folder(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp folder")
}

/// The shared mainnet fixture block `number`, or `None` (said on stderr)
/// when the fixtures are absent.
fn shared_block(number: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/mainnet");
    if !dir.is_dir() {
        eprintln!("SKIPPED: {} is absent", dir.display());
        return None;
    }
    Some(dir.join(number))
}

/// `replay --mode both --json` on one shared mainnet block (after idle
/// time): verified, with the fields the issue asks for.
#[test]
fn replay_json_has_the_speedup_fields() {
    let Some(block) = shared_block("4864590") else {
        return;
    };
    // Idle time before each run changes the timing, nothing else.
    let args = [
        "replay",
        block.to_str().expect("utf-8 path"),
        "--mode",
        "both",
        "--idle",
        "1",
        "--json",
    ];
    let output = parevm(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).expect("replay --json is JSON");
    assert!(report["aggregate_speedup"].is_number(), "{report}");
    let block = &report["blocks"][0];
    assert_eq!(block["verified"], Value::Bool(true), "{block}");
    for field in ["parallel_ms", "speedup", "threads"] {
        assert!(block[field].is_number(), "{field} in {block}");
    }
    assert!(block["path"].is_string(), "{block}");
}

/// A block's line says what was checked: the header alone under one
/// executor, the state as well under `--mode both`.
#[test]
fn replay_says_what_it_verified() {
    let Some(block) = shared_block("4864590") else {
        return;
    };
    let block = block.to_str().expect("utf-8 path");
    for (mode, header_only) in [("sequential", true), ("parallel", true), ("both", false)] {
        let output = parevm(&["replay", block, "--mode", mode, "--repeat", "1"]);
        assert!(output.status.success(), "{}", stderr(&output));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout.lines().next().unwrap_or_default();
        assert!(
            line.ends_with("  verified") || line.ends_with("  header verified"),
            "{line}"
        );
        assert_eq!(
            line.ends_with("  header verified"),
            header_only,
            "{mode}: {line}"
        );
    }
}

/// `replay --ceiling --json`: per block, what the machine allows (its
/// ceiling, and with two cores what a cache line's round trip between them
/// costs), and the aggregate it allows.
#[test]
fn replay_json_with_the_ceiling_has_what_the_machine_allows() {
    let Some(block) = shared_block("4864590") else {
        return;
    };
    let path = block.to_str().expect("utf-8 path");
    let args = ["replay", path, "--mode", "both", "--ceiling", "--json"];
    let output = parevm(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).expect("replay --json is JSON");
    assert!(report["achievable_speedup"].is_number(), "{report}");
    // The aggregate by path: the one block's path, all of the time.
    let path = &report["by_path"][0];
    assert_eq!(path["path"], report["blocks"][0]["path"], "{report}");
    assert_eq!(path["share_of_sequential"], 1.0, "{path}");
    assert!(path["achievable_speedup"].is_number(), "{path}");
    let block = &report["blocks"][0];
    assert!(block["ceiling_speedup"].is_number(), "{block}");
    let two_cores = std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
    if two_cores {
        assert!(block["line_round_trip_ns"].is_number(), "{block}");
    }
}

/// `replay --phases --json` on a block that runs on Block-STM: where its
/// time went, in microseconds, and the workers' time adds up.
#[test]
fn replay_json_with_phases_says_where_the_time_went() {
    let Some(block) = shared_block("4864590") else {
        return;
    };
    let path = block.to_str().expect("utf-8 path");
    let args = ["replay", path, "--mode", "parallel", "--phases", "--json"];
    let output = parevm(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).expect("replay --json is JSON");
    let block = &report["blocks"][0];
    assert_eq!(block["path"], "parallel", "{block}");
    let phases = &block["phases"];
    let micros = |field: &str| {
        phases[field]
            .as_f64()
            .unwrap_or_else(|| panic!("{field}: {phases}"))
    };
    let tasks: f64 = [
        "executing_us",
        "validating_us",
        "waiting_us",
        "assembling_us",
    ]
    .map(micros)
    .iter()
    .sum();
    let threads = phases["threads"].as_f64().expect("threads");
    assert!(micros("executing_us") > 0.0, "{phases}");
    assert!(
        micros("before_us") > 0.0 && micros("after_us") >= 0.0,
        "{phases}"
    );
    assert!(tasks <= micros("running_us") * threads + 1.0, "{phases}");
    // Once, in `phases`: the kept run's stats do not repeat them.
    assert_eq!(block["stats"]["phases"], Value::Null, "{block}");
}

/// `bench --phases --json`: a workload run in parallel says where its time
/// went (partitions: no validating or waiting); one run sequentially has no
/// phases.
#[test]
fn bench_json_with_phases_says_where_the_time_went() {
    let report = quick_bench(&["--workload", "raw-transfers", "--phases"]);
    let workload = &report["workloads"][0];
    let phases = &workload["phases"];
    match workload["path"].as_str() {
        Some("partitioned") => {
            assert!(phases["executing_us"].as_f64() > Some(0.0), "{workload}");
            assert_eq!(phases["validating_us"], 0.0, "{workload}");
        }
        Some("parallel") => assert!(phases["executing_us"].as_f64() > Some(0.0), "{workload}"),
        _ => assert_eq!(*phases, Value::Null, "{workload}"),
    }
}

/// A reader that stops reading (`parevm analyze … | head`) ends the
/// command quietly, as Unix tools end on SIGPIPE: `println!` would panic on
/// the closed pipe.
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_parevm"))
        .args(["analyze", "--workload", "raw-transfers", "--txs", "50"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the parevm binary runs");
    // The reader is gone before the first line is written.
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("the parevm binary ends");
    let said = stderr(&output);
    assert!(!said.contains("panicked"), "panicked: {said}");
    assert!(output.status.success(), "{:?}: {said}", output.status);
}
