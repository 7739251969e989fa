//! Fixture files mangled at random: a value replaced by an awkward one (a
//! negative number, a 257-bit one, odd or non-hex digits, a truncated
//! delegation, the wrong type), a member removed or renamed, the text cut
//! short or a bit of it flipped. Loading must then either fail with an
//! error that names the file, or succeed, and then the block must run
//! alike on both executors and verify (or fail to) without a panic.
//!
//! `perturbed_mainnet.rs` bends the blocks' meaning through the library;
//! this bends the bytes a user hands the loader, which is where a node's
//! or a researcher's bad data first meets parevm.

mod common;

use parevm::{
    ParallelConfig, execute_parallel, execute_sequential, fixture::load_mainnet_block,
    verify::verify_against_header,
};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::{
    fs,
    path::{Path, PathBuf},
};
use tempfile::TempDir;

mod support;

/// Small blocks from several forks (Frontier to Cancun), so that a case
/// costs milliseconds.
const BLOCKS: [&str; 6] = [
    "46147", "930196", "2462997", "2688148", "9068998", "19933122",
];

/// The files of a block folder a case may mangle (`block_hashes.json` is
/// read from beside the block folders).
const FILES: [&str; 3] = ["block.json", "pre_state.json", "../block_hashes.json"];

/// One change to a file's JSON, or to its text.
#[derive(Debug, Clone)]
enum Mangle {
    /// The `pick`-th value (depth first, modulo their count) becomes `with`.
    Replace { pick: usize, with: Value },
    /// The `pick`-th value other than the whole file is removed from its
    /// object or array.
    Remove { pick: usize },
    /// The member holding the `pick`-th value is renamed `to` (nothing, if
    /// that value is an array's element).
    Rename { pick: usize, to: String },
    /// The text ends after `per_mille` thousandths of it.
    Truncate { per_mille: u16 },
    /// Bit `bit` of the byte at `per_mille` thousandths of the text flips.
    Flip { per_mille: u16, bit: u8 },
}

/// Values a loader meets in bad files.
fn awkward_value() -> impl Strategy<Value = Value> {
    let max = "ff".repeat(32);
    prop_oneof![
        Just(Value::Null),
        Just(json!(true)),
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(u64::MAX)),
        Just(json!(1.5)),
        Just(json!([])),
        Just(json!({})),
        Just(json!("")),
        Just(json!("0x")),
        Just(json!("0x0")),
        Just(json!("0x123")),
        Just(json!("0xzz")),
        Just(json!("123")),
        Just(json!("0xef01")),
        Just(json!(format!("0xef0100{}", "00".repeat(20)))),
        Just(json!(format!("0x{max}"))),
        Just(json!(format!("0x1{max}"))),
        any::<u64>().prop_map(|n| json!(format!("{n:#x}"))),
    ]
}

/// Member names a loader meets in bad files.
fn awkward_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("0x".to_string()),
        Just("0x1".to_string()),
        Just("-1".to_string()),
        Just("zz".to_string()),
        Just(format!("0x{}", "00".repeat(20))),
        Just(format!("0x{}", "AB".repeat(20))),
        Just(format!("0x{}", "ff".repeat(33))),
        any::<u64>().prop_map(|n| n.to_string()),
    ]
}

fn mangle() -> impl Strategy<Value = Mangle> {
    prop_oneof![
        4 => (any::<usize>(), awkward_value()).prop_map(|(pick, with)| Mangle::Replace { pick, with }),
        2 => any::<usize>().prop_map(|pick| Mangle::Remove { pick }),
        2 => (any::<usize>(), awkward_name()).prop_map(|(pick, to)| Mangle::Rename { pick, to }),
        1 => (0u16..1000).prop_map(|per_mille| Mangle::Truncate { per_mille }),
        1 => (0u16..1000, 0u8..8).prop_map(|(per_mille, bit)| Mangle::Flip { per_mille, bit }),
    ]
}

/// The JSON pointers of every value in `value`, depth first.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(members) => {
            for (name, member) in members {
                let escaped = name.replace('~', "~0").replace('/', "~1");
                pointers(member, format!("{at}/{escaped}"), out);
            }
        }
        Value::Array(elements) => {
            for (index, element) in elements.iter().enumerate() {
                pointers(element, format!("{at}/{index}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// The pointer of the `pick`-th value, and of its parent with the member's
/// (escaped) name, unless it is the whole file.
fn picked(json: &Value, pick: usize) -> (String, Option<(String, String)>) {
    let mut all = Vec::new();
    pointers(json, String::new(), &mut all);
    let pointer = all[pick % all.len()].clone();
    let parent = pointer.rsplit_once('/').map(|(parent, name)| {
        (
            parent.to_string(),
            name.replace("~1", "/").replace("~0", "~"),
        )
    });
    (pointer, parent)
}

fn apply_to_json(json: &mut Value, mangle: &Mangle) {
    match mangle {
        Mangle::Replace { pick, with } => {
            let (pointer, _) = picked(json, *pick);
            if let Some(value) = json.pointer_mut(&pointer) {
                *value = with.clone();
            }
        }
        Mangle::Remove { pick } => {
            if let (_, Some((parent, name))) = picked(json, *pick) {
                match json.pointer_mut(&parent) {
                    Some(Value::Object(members)) => drop(members.remove(&name)),
                    Some(Value::Array(elements)) => drop(elements.remove(name.parse().unwrap())),
                    _ => {}
                }
            }
        }
        Mangle::Rename { pick, to } => {
            if let (_, Some((parent, name))) = picked(json, *pick)
                && let Some(Value::Object(members)) = json.pointer_mut(&parent)
                && let Some(value) = members.remove(&name)
            {
                members.insert(to.clone(), value);
            }
        }
        Mangle::Truncate { .. } | Mangle::Flip { .. } => {}
    }
}

fn apply_to_text(text: &mut Vec<u8>, mangle: &Mangle) {
    let at = |per_mille: u16| text.len() * usize::from(per_mille) / 1000;
    match *mangle {
        Mangle::Truncate { per_mille } => text.truncate(at(per_mille)),
        Mangle::Flip { per_mille, bit } if !text.is_empty() => {
            let index = at(per_mille).min(text.len() - 1);
            text[index] ^= 1 << bit;
        }
        _ => {}
    }
}

/// A fresh copy of block `name`'s folder (and the block hashes beside it)
/// in a temporary folder, removed when the returned handle drops (also
/// when a case panics), with `file` mangled; and the copy's path.
fn mangled_copy(fixtures: &Path, name: &str, file: &str, mangles: &[Mangle]) -> (TempDir, PathBuf) {
    let root = tempfile::Builder::new()
        .prefix("parevm-mangled-")
        .tempdir()
        .unwrap();
    let dir = root.path().join(name);
    fs::create_dir_all(&dir).unwrap();
    for original in FILES {
        let from = fixtures.join(name).join(original);
        fs::copy(&from, dir.join(original)).unwrap();
    }
    let path = dir.join(file);
    let mut json: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    for mangle in mangles {
        apply_to_json(&mut json, mangle);
    }
    let mut text = serde_json::to_vec(&json).unwrap();
    for mangle in mangles {
        apply_to_text(&mut text, mangle);
    }
    fs::write(&path, text).unwrap();
    (root, dir)
}

/// Loads the mangled block; if it loads, runs and verifies it on both
/// executors. A panic anywhere fails the case (proptest catches it).
fn check(dir: &Path, file: &str) -> Result<(), TestCaseError> {
    let fixture = match load_mainnet_block(dir) {
        Ok(fixture) => fixture,
        Err(error) => {
            if std::env::var_os("PAREVM_PROPTEST_VERBOSE").is_some() {
                eprintln!("refused: {}", error.message);
            }
            let named = dir.join(file);
            let named = named.file_name().unwrap().to_string_lossy();
            prop_assert!(
                error.to_string().contains(&*named) && !error.message.is_empty(),
                "the error does not name {named}: {error}"
            );
            return Ok(());
        }
    };
    let expected = execute_sequential(&fixture.block, &fixture.state);
    if std::env::var_os("PAREVM_PROPTEST_VERBOSE").is_some() {
        let verified = expected
            .as_ref()
            .map(|result| verify_against_header(&fixture.block, result).is_ok());
        eprintln!(
            "loaded {}: verified {verified:?}",
            fixture.block.header.number
        );
    }
    for threads in [1, 2, 4] {
        for config in [
            ParallelConfig::with_threads(threads),
            ParallelConfig::never_fall_back(threads),
            ParallelConfig::partitioned(threads),
        ] {
            let actual = execute_parallel(&fixture.block, &fixture.state, &config);
            if let Some(difference) = common::disagreement(&expected, &actual) {
                return Err(TestCaseError::fail(format!(
                    "{threads} threads: {difference}"
                )));
            }
        }
    }
    if let Ok(result) = &expected {
        // Verified or not, but without a panic.
        let _ = verify_against_header(&fixture.block, result);
    }
    Ok(())
}

proptest! {
    #![proptest_config(support::proptest_config(256))]

    /// One to three mangles of one file of a small mainnet block.
    #[test]
    fn mangled_fixtures_fail_clearly_or_run_alike(
        block in 0..BLOCKS.len(),
        file in 0..FILES.len(),
        mangles in prop::collection::vec(mangle(), 1..=3),
    ) {
        let Some(fixtures) = common::mainnet_fixtures() else {
            return Ok(());
        };
        let (_root, dir) = mangled_copy(&fixtures, BLOCKS[block], FILES[file], &mangles);
        check(&dir, FILES[file])?;
    }
}
