//! The committed bytecode matches a fresh compile of the sources.

use std::{path::PathBuf, process::Command};

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

#[test]
fn committed_bytecode_matches_the_sources() {
    if !on_path("node") {
        eprintln!("SKIPPED: node is not on PATH, cannot recompile the contracts");
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = Command::new("bash")
        .arg(root.join("scripts/build-contracts.sh"))
        .arg("--check")
        .current_dir(&root)
        .output()
        .expect("run scripts/build-contracts.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "scripts/build-contracts.sh --check failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    if stdout.contains("skipping") {
        eprintln!("SKIPPED: {}", stdout.trim());
    } else {
        assert!(stdout.contains("up to date"), "{stdout}\n{stderr}");
    }
}

#[test]
fn embedded_bytecode_is_clean_hex() {
    for (name, hex) in [
        ("Erc20", parevm_workloads::ERC20_HEX),
        ("AmmPair", parevm_workloads::AMM_PAIR_HEX),
        ("HotSlot", parevm_workloads::HOT_SLOT_HEX),
    ] {
        assert!(!hex.is_empty(), "{name}");
        assert!(
            hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "{name}: not bare hex (0x prefix or trailing newline?)"
        );
        assert_eq!(hex.len() % 2, 0, "{name}");
    }
}
