//! Bad fixture input gives a clear error naming the file, never a panic.

use parevm::fixture::{block_dirs, load_mainnet_block};
use std::{fs, path::Path};

/// A block folder with `block` and `pre_state` (none if empty), removed
/// when dropped.
fn temp_block(name: &str, block: &str, pre_state: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(&format!("parevm-bad-input-{name}-"))
        .tempdir()
        .unwrap();
    fs::write(dir.path().join("block.json"), block).unwrap();
    if !pre_state.is_empty() {
        fs::write(dir.path().join("pre_state.json"), pre_state).unwrap();
    }
    dir
}

fn load_error(dir: &Path) -> String {
    load_mainnet_block(dir)
        .expect_err("bad input must not load")
        .to_string()
}

const HEADER: &str = r#""hash":"0x4e3a3754410177e6937ef1f84bba68ea139e8d1a2258c5f85db9f1cd715a1bdd","parentHash":"0x0000000000000000000000000000000000000000000000000000000000000000","sha3Uncles":"0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347","miner":"0x0000000000000000000000000000000000000000","stateRoot":"0x0000000000000000000000000000000000000000000000000000000000000000","transactionsRoot":"0x0000000000000000000000000000000000000000000000000000000000000000","receiptsRoot":"0x0000000000000000000000000000000000000000000000000000000000000000","logsBloom":"0x00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000","difficulty":"0x1","number":"0x1","gasLimit":"0x1000000","gasUsed":"0x0","timestamp":"0x1","extraData":"0x","mixHash":"0x0000000000000000000000000000000000000000000000000000000000000000","nonce":"0x0000000000000000","uncles":[]"#;

#[test]
fn missing_folder_is_reported() {
    let error = block_dirs(Path::new("/nonexistent/parevm"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("/nonexistent/parevm"), "{error}");
}

#[test]
fn malformed_block_json_names_the_file() {
    let dir = temp_block("malformed", "{ not json", "{}");
    let error = load_error(dir.path());
    assert!(
        error.contains("block.json") && error.contains("malformed JSON"),
        "{error}"
    );
}

#[test]
fn missing_pre_state_names_the_file() {
    let dir = temp_block("nostate", &format!("{{{HEADER},\"transactions\":[]}}"), "");
    let error = load_error(dir.path());
    assert!(
        error.contains("pre_state.json") && error.contains("cannot read"),
        "{error}"
    );
}

#[test]
fn malformed_pre_state_names_the_file() {
    let dir = temp_block(
        "badstate",
        &format!("{{{HEADER},\"transactions\":[]}}"),
        r#"{"0x01": {"balance": "zz"}}"#,
    );
    let error = load_error(dir.path());
    assert!(error.contains("pre_state.json"), "{error}");
}

/// A nonce is a number below 2^64, as a JSON number or in a string; the
/// error says what was given and what was expected.
#[test]
fn bad_nonce_is_described() {
    let header = format!("{{{HEADER},\"transactions\":[]}}");
    let account = "0x5df9b87991262f6ba471f09758cde1c0fc1de734";
    for (nonce, given) in [
        ("-1", "integer `-1`"),
        ("1.5", "floating point `1.5`"),
        ("\"0x1ffffffffffffffff\"", "string \"0x1ffffffffffffffff\""),
        ("\"12a\"", "string \"12a\""),
        ("null", "null"),
    ] {
        let state = format!(r#"{{"{account}": {{"balance": "0x0", "nonce": {nonce}}}}}"#);
        let error = load_error(temp_block("nonce", &header, &state).path());
        assert!(
            error.contains("pre_state.json")
                && error.contains(given)
                && error.contains("expected a number below 2^64"),
            "{nonce}: {error}"
        );
    }
}

/// Code starting 0xef01 is an EIP-7702 delegation, 23 bytes long: any
/// other length cannot be on chain, and revm's unchecked constructor
/// panicked on it.
#[test]
fn malformed_delegation_code_names_the_account() {
    let account = "0x5df9b87991262f6ba471f09758cde1c0fc1de734";
    for code in ["0xef01", "0xef0100aabbccdd"] {
        let dir = temp_block(
            "delegation",
            &format!("{{{HEADER},\"transactions\":[]}}"),
            &format!(r#"{{"{account}": {{"balance": "0x0", "nonce": "0x0", "code": "{code}"}}}}"#),
        );
        let error = load_error(dir.path()).to_lowercase();
        assert!(
            error.contains("pre_state.json") && error.contains(account) && error.contains("code"),
            "{error}"
        );
    }
}

/// A key given twice in `pre_state.json`, in spellings that parse alike,
/// is refused: a plain map kept whichever came last, without a word.
#[test]
fn account_or_slot_given_twice_is_refused() {
    let block = format!("{{{HEADER},\"transactions\":[]}}");
    let lower = "0x5df9b87991262f6ba471f09758cde1c0fc1de734";
    let checksummed = "0x5DF9B87991262F6BA471F09758CDE1C0FC1DE734";
    let accounts = format!(
        r#"{{"{lower}": {{"balance": "0x1", "nonce": "0x0"}}, "{checksummed}": {{"balance": "0x2", "nonce": "0x0"}}}}"#
    );
    let error = load_error(temp_block("twiceaccount", &block, &accounts).path());
    assert!(
        error.contains("pre_state.json") && error.contains(lower) && error.contains("twice"),
        "{error}"
    );
    let slots = format!(
        r#"{{"{lower}": {{"balance": "0x1", "nonce": "0x0", "storage": {{"0x1": "0x2", "0x01": "0x3"}}}}}}"#
    );
    let error = load_error(temp_block("twiceslot", &block, &slots).path());
    assert!(
        error.contains("pre_state.json") && error.contains("slot 0x1") && error.contains("twice"),
        "{error}"
    );
}

/// So is a block number given twice in `block_hashes.json`.
#[test]
fn block_hash_given_twice_is_refused() {
    let dir = temp_block(
        "twicehash",
        &format!("{{{HEADER},\"transactions\":[]}}"),
        "{}",
    );
    let (one, two) = (
        "0x".to_string() + &"11".repeat(32),
        "0x".to_string() + &"22".repeat(32),
    );
    let hashes = format!(r#"{{"7": "{one}", "07": "{two}"}}"#);
    fs::write(dir.path().join("block_hashes.json"), hashes).unwrap();
    let error = load_error(dir.path());
    assert!(
        error.contains("block_hashes.json") && error.contains("block number 7 is given twice"),
        "{error}"
    );
}

/// A header whose fields do not hash to its hash (a field missing or
/// altered: here every root is zero) is refused before any execution,
/// which would read the altered fields.
#[test]
fn header_whose_fields_do_not_hash_to_its_hash_is_refused() {
    let dir = temp_block(
        "headerhash",
        &format!("{{{HEADER},\"transactions\":[]}}"),
        "{}",
    );
    let error = load_error(dir.path());
    assert!(
        error.contains("block.json") && error.contains("hash to"),
        "{error}"
    );
}

#[test]
fn undecodable_transaction_is_reported() {
    let tx = r#"{"hash":"0x00","type":"0x7f","from":"0x0000000000000000000000000000000000000001"}"#;
    let dir = temp_block(
        "badtx",
        &format!("{{{HEADER},\"transactions\":[{tx}]}}"),
        "{}",
    );
    let error = load_error(dir.path());
    assert!(
        error.contains("block.json") && error.contains("transaction 0"),
        "{error}"
    );
}

#[test]
fn transaction_hashes_only_are_rejected() {
    let dir = temp_block(
        "hashes",
        &format!(
            "{{{HEADER},\"transactions\":[\"0x5c504ed432cb51138bcf09aa5e8a410dd4a1e204ef84bfed1be16dfba1b22060\"]}}"
        ),
        "{}",
    );
    let error = load_error(dir.path());
    assert!(error.contains("full objects"), "{error}");
}

/// The first transaction on mainnet (block 46147), whose hash is
/// [`FIRST_TX_HASH`] and sender 0xa1e4…63b4, as `block.json` would carry
/// it, with its `hash` and `from` fields as given.
fn first_mainnet_tx(hash: &str, from: &str) -> String {
    format!(
        r#"{{"hash":"{hash}","nonce":"0x0","blockHash":"0x4e3a3754410177e6937ef1f84bba68ea139e8d1a2258c5f85db9f1cd715a1bdd","blockNumber":"0x1","transactionIndex":"0x0","from":"{from}","to":"0x5df9b87991262f6ba471f09758cde1c0fc1de734","value":"0x7a69","gasPrice":"0x2d79883d2000","gas":"0x5208","input":"0x","r":"0x88ff6cf0fefd94db46111149ae4bfc179e9b94721fffd821d38d16464b3f71d0","s":"0x45e0aff800961cfce805daef7016b9b675c137a6a41a548f7b60a3484c06a33a","v":"0x1c","type":"0x0"}}"#
    )
}

const FIRST_TX_HASH: &str = "0x5c504ed432cb51138bcf09aa5e8a410dd4a1e204ef84bfed1be16dfba1b22060";

#[test]
fn forged_sender_is_rejected() {
    let tx = first_mainnet_tx(FIRST_TX_HASH, "0x0000000000000000000000000000000000000001");
    let dir = temp_block(
        "forged",
        &format!("{{{HEADER},\"transactions\":[{tx}]}}"),
        "{}",
    );
    let error = load_error(dir.path());
    assert!(
        error.contains("transaction 0") && error.contains("from"),
        "{error}"
    );
}

/// A transaction whose `hash` field is not its hash is refused: the
/// transactions root covers the content, not the field reports name it by.
#[test]
fn wrong_transaction_hash_is_rejected() {
    let zero = "0x0000000000000000000000000000000000000000000000000000000000000000";
    let tx = first_mainnet_tx(zero, "0xa1e4380a3b1f749673e270229993ee55f35663b4");
    let dir = temp_block(
        "txhash",
        &format!("{{{HEADER},\"transactions\":[{tx}]}}"),
        "{}",
    );
    let error = load_error(dir.path());
    assert!(
        error.contains("transaction 0") && error.contains(FIRST_TX_HASH),
        "{error}"
    );
}
