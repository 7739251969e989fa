//! State-access scheduling: splitting a block into partitions predicted to
//! touch disjoint state, so that each runs start to finish on one thread
//! with a plain revm cache and no multi-version memory, as Solana and Sui
//! schedule transactions by the accounts they declare.
//!
//! Ethereum transactions declare nothing, so the accesses are predicted from
//! the transaction alone and checked while it runs
//! ([`partitioned`](super::partitioned)). Three kinds of transaction are
//! predicted, because their accesses are known without running them: a
//! plain value transfer to an account without code (sender and recipient),
//! an ERC-20 `transfer` (sender, and the sender's and recipient's balances
//! in the token), and a call into code that cannot reach any other account
//! ([`runs_alone`]: sender and target). Any other transaction runs code
//! whose reach is unknown: on mainnet blocks, calls into different
//! contracts met in shared ones (WETH deposits, pools behind routers) often
//! enough that trying partitions there lost more than it won, so by default
//! a block with any such transaction is left to Block-STM. An embedder that
//! knows its contracts keep to themselves (an app-specific rollup) can have
//! every call keyed by its target instead
//! ([`ParallelConfig::partition_contract_calls`](super::ParallelConfig::partition_contract_calls)).
//!
//! Transactions sharing a predicted key are joined into components
//! (union-find); whole components are then packed into partitions, heaviest
//! first. There are [`PARTITIONS_PER_THREAD`] partitions per thread, claimed
//! by whichever thread is free: with exactly one each, a thread slowed down
//! (a core taken by another process or the hypervisor) held up the block,
//! which measured as low as half the sequential speed on the 2-core VM.

use super::types::TxIdx;
use crate::BlockInput;
use alloy_consensus::Transaction;
use alloy_primitives::Address;
use std::{
    collections::{HashMap, hash_map::Entry},
    hash::{BuildHasherDefault, Hasher},
};

/// Partitions per thread, so that a fast thread can take over work from a
/// slow one: the last partition to finish, which a thread that is done
/// already waits for, is a small share of the block.
pub(crate) const PARTITIONS_PER_THREAD: usize = 4;

/// How often, in transactions, [`partition`] asks whether it was abandoned.
const ABANDON_CHECK: usize = 256;

/// The selector of ERC-20 `transfer(address,uint256)`.
const ERC20_TRANSFER: [u8; 4] = [0xa9, 0x05, 0x9c, 0xbb];

/// A unit of state a transaction is predicted to read and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    /// An account: its balance, nonce, code and storage.
    Account(Address),
    /// One holder's balance in an ERC-20 token: the token contract itself is
    /// only read by a `transfer`, so it joins nothing.
    Holder { token: Address, holder: Address },
}

impl Key {
    /// A well-mixed 64-bit digest, cheap enough for every key of a block:
    /// the address words folded, then a 64-bit finalizer (generated
    /// addresses can differ in a byte or two only). Two keys sharing a
    /// digest only join their components needlessly (validation, not the
    /// prediction, guards correctness), so the union-find map holds
    /// digests: a quarter of the memory of keys.
    fn digest(&self) -> u64 {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        match self {
            Self::Account(address) => address_digest(address),
            // The token mixed first: folding is linear, so generated token
            // and holder addresses could cancel out (as slots did in
            // `footprint.rs`).
            Self::Holder { token, holder } => {
                fmix64(address_digest(token) ^ fold_address(holder) ^ K)
            }
        }
    }
}

/// A well-mixed 64-bit digest of an address: its words folded, then
/// [`fmix64`]. What partitioning, prediction and validation key addresses
/// by, and what splits accounts between threads when results are merged.
pub(crate) fn address_digest(address: &Address) -> u64 {
    fmix64(fold_address(address))
}

/// An address's words folded into one (generated addresses can differ in a
/// byte or two only, so every byte counts).
fn fold_address(address: &Address) -> u64 {
    let bytes = &address.0.0;
    let word = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap_or_default());
    word(0) ^ word(8).rotate_left(23) ^ word(12).rotate_left(47)
}

/// MurmurHash3's 64-bit finalizer: every input bit affects every output bit.
pub(crate) fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// A hasher for keys that are digests already.
#[derive(Default)]
pub(crate) struct Digested(u64);

impl Hasher for Digested {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in rather than panic.
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }
    fn write_u64(&mut self, digest: u64) {
        self.0 = digest;
    }
}

/// A block split into partitions predicted to be independent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Partitions {
    /// Each partition's transactions, in block order.
    pub txs: Vec<Vec<TxIdx>>,
    /// Each transaction's partition (an index into `txs`).
    pub partition_of: Vec<u32>,
    /// The speedup the split allows at the threads asked for:
    /// `gas / max(heaviest partition's gas, gas / threads)`.
    pub bound: f64,
}

/// Splits `block` into partitions for `threads` threads, or `None` if some
/// transaction's accesses are not predictable (see [`Partitioner::add`]
/// and [`Partitioner::finish`]; `has_code` tells which accounts run code,
/// `runs_alone` whether an account's code [runs alone](runs_alone)), or
/// once `abandoned` (asked every [`ABANDON_CHECK`] transactions).
pub(crate) fn partition<E>(
    block: &BlockInput,
    threads: usize,
    contract_calls: bool,
    abandoned: &dyn Fn() -> bool,
    mut runs_alone: impl FnMut(&Address) -> Result<bool, E>,
    has_code: impl Fn(&Address) -> Result<bool, E>,
) -> Result<Option<Partitions>, E> {
    let mut partitioner = Partitioner::new(block, contract_calls);
    for (index, tx) in block.transactions.iter().enumerate() {
        if index % ABANDON_CHECK == 0 && abandoned() {
            return Ok(None);
        }
        if !partitioner.add(index, tx.inner(), tx.signer(), &mut runs_alone)? {
            return Ok(None);
        }
    }
    partitioner.finish(block, threads, has_code)
}

/// Builds a block's [`Partitions`], one transaction at a time, in block
/// order.
struct Partitioner {
    beneficiary: Key,
    contract_calls: bool,
    components: UnionFind,
    /// The first transaction to touch each key, by the key's digest.
    owners: HashMap<u64, u32, BuildHasherDefault<Digested>>,
    /// The recipients of plain transfers, which must have no code.
    recipients: Vec<Address>,
}

impl Partitioner {
    /// For `block`, with `contract_calls` predicted by their target too.
    fn new(block: &BlockInput, contract_calls: bool) -> Self {
        let txs = block.transactions.len();
        Self {
            beneficiary: Key::Account(block.header.beneficiary),
            contract_calls,
            components: UnionFind::new(txs),
            owners: HashMap::with_capacity_and_hasher(txs * 3, Default::default()),
            recipients: Vec::new(),
        }
    }

    /// Joins transaction `index` (`tx`) to the components of the keys it is
    /// predicted to touch; `false` if they cannot be predicted, and then the
    /// block does not partition: the transaction is neither a plain
    /// transfer (to an account without code, checked by
    /// [`Self::finish`]) nor an ERC-20 `transfer` nor a call into code that
    /// runs alone (per `runs_alone`; with `contract_calls`, any call or
    /// creation), or it names the beneficiary, whose balance every
    /// transaction changes.
    fn add<E>(
        &mut self,
        index: TxIdx,
        tx: &(impl Transaction + ?Sized),
        sender: Address,
        runs_alone: &mut impl FnMut(&Address) -> Result<bool, E>,
    ) -> Result<bool, E> {
        if tx.authorization_list().is_some_and(|list| !list.is_empty()) {
            return Ok(false);
        }
        let to = tx.kind().to().copied();
        let keys = match keys(
            sender,
            to,
            tx.input(),
            self.contract_calls,
            &mut self.recipients,
        ) {
            Predicted::Keys(keys) => keys,
            Predicted::Call(to) if runs_alone(&to)? => {
                [Some(Key::Account(sender)), Some(Key::Account(to)), None]
            }
            Predicted::Call(_) | Predicted::Unknown => return Ok(false),
        };
        for key in keys.into_iter().flatten() {
            if key == self.beneficiary {
                return Ok(false);
            }
            match self.owners.entry(key.digest()) {
                Entry::Occupied(owner) => self.components.union(index, *owner.get() as TxIdx),
                Entry::Vacant(slot) => {
                    slot.insert(index as u32);
                }
            }
        }
        Ok(true)
    }

    /// The partitions for `threads` threads, once every transaction of
    /// `block` was added; `None` if a plain transfer's recipient runs code
    /// (per `has_code`). The recipients are checked last, so that a block
    /// that turns out unpredictable never looks them up in the state.
    fn finish<E>(
        mut self,
        block: &BlockInput,
        threads: usize,
        has_code: impl Fn(&Address) -> Result<bool, E>,
    ) -> Result<Option<Partitions>, E> {
        for recipient in &self.recipients {
            if has_code(recipient)? {
                return Ok(None);
            }
        }
        Ok(Some(pack(block, &mut self.components, threads.max(1))))
    }
}

/// What a transaction is predicted to touch, from the transaction alone.
#[derive(Debug, PartialEq)]
enum Predicted {
    /// These keys.
    Keys([Option<Key>; 3]),
    /// Its sender and the account it calls, if that account's code
    /// [runs alone](runs_alone).
    Call(Address),
    /// Nothing that can be predicted.
    Unknown,
}

/// What a transaction from `sender` to `to` with `input` is predicted to
/// touch (see [`Partitioner::add`]). A plain transfer's recipient is added
/// to `recipients`, which must turn out to have no code.
fn keys(
    sender: Address,
    to: Option<Address>,
    input: &[u8],
    contract_calls: bool,
    recipients: &mut Vec<Address>,
) -> Predicted {
    let sender_key = Some(Key::Account(sender));
    let Some(to) = to else {
        // A creation's address follows from the sender's nonce.
        return match contract_calls {
            true => Predicted::Keys([sender_key, None, None]),
            false => Predicted::Unknown,
        };
    };
    if input.len() == 68 && input[..4] == ERC20_TRANSFER {
        let recipient = Address::from_slice(&input[16..36]);
        let holder = |holder| Some(Key::Holder { token: to, holder });
        return Predicted::Keys([sender_key, holder(sender), holder(recipient)]);
    }
    if contract_calls || input.is_empty() {
        if !contract_calls {
            recipients.push(to);
        }
        return Predicted::Keys([sender_key, Some(Key::Account(to)), None]);
    }
    Predicted::Call(to)
}

/// Whether `code` can touch no account but its own (and so a call into it
/// only its caller and itself): it has none of the instructions that reach
/// another account (calls, creations, `SELFDESTRUCT`, `BALANCE`,
/// `EXTCODE*`), and is neither an EOF container nor an EIP-7702 delegation
/// (both start with `0xEF` and run other code). Bytes after the code that
/// merely look like such instructions (data) make the answer a cautious
/// `false`. Only a contract crafted to hide such an instruction in what
/// looks like Solidity's metadata gets a wrong `true`, and validation then
/// catches it like any wrong prediction.
pub(crate) fn runs_alone(code: &[u8]) -> bool {
    if code.first() == Some(&0xef) {
        return false;
    }
    let code = without_solidity_metadata(code);
    let mut pc = 0;
    while let Some(&op) = code.get(pc) {
        match op {
            // BALANCE, EXTCODESIZE, EXTCODECOPY, EXTCODEHASH, CREATE, CALL,
            // CALLCODE, DELEGATECALL, CREATE2, STATICCALL, SELFDESTRUCT.
            0x31 | 0x3b | 0x3c | 0x3f | 0xf0 | 0xf1 | 0xf2 | 0xf4 | 0xf5 | 0xfa | 0xff => {
                return false;
            }
            // PUSH1..PUSH32: skip the pushed bytes.
            0x60..=0x7f => pc += usize::from(op - 0x5f),
            _ => {}
        }
        pc += 1;
    }
    true
}

/// `code` without the CBOR metadata Solidity appends after an `INVALID`
/// (its length in the last two bytes, the map's first byte
/// `0xa1`..`0xa5`), whose hash bytes would otherwise read as instructions.
fn without_solidity_metadata(code: &[u8]) -> &[u8] {
    let Some([high, low]) = code.last_chunk::<2>() else {
        return code;
    };
    let length = usize::from(u16::from_be_bytes([*high, *low]));
    match code.len().checked_sub(length + 2) {
        Some(start)
            if start > 0 && code[start - 1] == 0xfe && matches!(code[start], 0xa1..=0xa5) =>
        {
            &code[..start]
        }
        _ => code,
    }
}

/// Packs the components of `components` into partitions for `threads`
/// threads, heaviest component first into the lightest partition (by gas
/// limit).
fn pack(block: &BlockInput, components: &mut UnionFind, threads: usize) -> Partitions {
    let bins = threads * PARTITIONS_PER_THREAD;
    let txs = &block.transactions;
    let mut gas_of_root = vec![0u64; txs.len()];
    let mut total = 0u64;
    for (index, tx) in txs.iter().enumerate() {
        let root = components.find(index);
        gas_of_root[root] = gas_of_root[root].saturating_add(tx.gas_limit());
        total = total.saturating_add(tx.gas_limit());
    }
    let mut roots: Vec<TxIdx> = (0..txs.len())
        .filter(|&i| components.find(i) == i)
        .collect();
    roots.sort_unstable_by_key(|&root| std::cmp::Reverse(gas_of_root[root]));
    let mut loads = vec![0u64; bins];
    // Reuses the per-root gas vector for each root's partition.
    let mut partition_of_root = gas_of_root;
    for &root in &roots {
        let mut lightest = 0;
        for (index, load) in loads.iter().enumerate() {
            if *load < loads[lightest] {
                lightest = index;
            }
        }
        loads[lightest] = loads[lightest].saturating_add(partition_of_root[root]);
        partition_of_root[root] = lightest as u64;
    }
    // Fewer components than partitions leave some empty: drop those.
    let mut sizes = vec![0usize; bins];
    for &root in &roots {
        sizes[partition_of_root[root] as usize] += 1;
    }
    let mut renumbered = vec![0u32; bins];
    let mut used = 0;
    for (old, size) in sizes.iter().enumerate() {
        if *size > 0 {
            renumbered[old] = used as u32;
            used += 1;
        }
    }
    let mut partitions = vec![Vec::with_capacity(txs.len() / used.max(1) + 1); used];
    let mut partition_of = Vec::with_capacity(txs.len());
    for index in 0..txs.len() {
        let root = components.find(index);
        let partition = renumbered[partition_of_root[root] as usize];
        partitions[partition as usize].push(index);
        partition_of.push(partition);
    }
    let heaviest = loads.into_iter().max().unwrap_or(0);
    let span = (heaviest as f64).max(total as f64 / threads as f64);
    Partitions {
        txs: partitions,
        partition_of,
        bound: if span == 0.0 {
            1.0
        } else {
            total as f64 / span
        },
    }
}

/// Disjoint sets of transactions, with path halving.
struct UnionFind {
    parent: Vec<TxIdx>,
}

impl UnionFind {
    fn new(len: usize) -> Self {
        Self {
            parent: (0..len).collect(),
        }
    }

    fn find(&mut self, mut x: TxIdx) -> TxIdx {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn union(&mut self, a: TxIdx, b: TxIdx) {
        let (a, b) = (self.find(a), self.find(b));
        // The lower index stays the root, which keeps roots stable.
        if a < b {
            self.parent[b] = a;
        } else {
            self.parent[a] = b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_transfers_key_sender_and_recipient() {
        let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let mut recipients = Vec::new();
        let predicted = keys(a, Some(b), &[], false, &mut recipients);
        assert_eq!(
            predicted,
            Predicted::Keys([Some(Key::Account(a)), Some(Key::Account(b)), None])
        );
        // The recipient must turn out to have no code.
        assert_eq!(recipients, [b]);
    }

    #[test]
    fn erc20_transfers_key_the_two_holders_not_the_token() {
        let (sender, token, to) = (
            Address::repeat_byte(1),
            Address::repeat_byte(2),
            Address::repeat_byte(3),
        );
        let mut input = ERC20_TRANSFER.to_vec();
        input.extend_from_slice(&[0; 12]);
        input.extend_from_slice(to.as_slice());
        input.extend_from_slice(&[0; 32]);
        let mut recipients = Vec::new();
        let predicted = keys(sender, Some(token), &input, false, &mut recipients);
        let holder = |holder| Some(Key::Holder { token, holder });
        assert_eq!(
            predicted,
            Predicted::Keys([Some(Key::Account(sender)), holder(sender), holder(to)])
        );
        // Any other call depends on the target's code; a creation is only
        // predicted on request.
        input[0] = 0;
        assert_eq!(
            keys(sender, Some(token), &input, false, &mut recipients),
            Predicted::Call(token)
        );
        assert!(matches!(
            keys(sender, Some(token), &input, true, &mut recipients),
            Predicted::Keys(_)
        ));
        assert_eq!(
            keys(sender, None, &[], false, &mut recipients),
            Predicted::Unknown
        );
        assert!(recipients.is_empty());
    }

    #[test]
    fn code_runs_alone_without_instructions_that_reach_other_accounts() {
        // SLOAD, ADD, SSTORE, STOP; and a CALL (0xf1) only as PUSH2 data.
        assert!(runs_alone(&[0x54, 0x01, 0x55, 0x00]));
        assert!(runs_alone(&[0x61, 0xf1, 0xf1, 0x00]));
        assert!(runs_alone(&[]));
        for reach in [
            0x31, 0x3b, 0x3c, 0x3f, 0xf0, 0xf1, 0xf2, 0xf4, 0xf5, 0xfa, 0xff,
        ] {
            assert!(!runs_alone(&[0x60, 0x00, reach]), "{reach:#x}");
        }
        // An EIP-7702 delegation runs its delegate's code.
        let mut delegation = vec![0xef, 0x01, 0x00];
        delegation.extend_from_slice(&[0x11; 20]);
        assert!(!runs_alone(&delegation));
        // Solidity's metadata is not code: a CALL byte in its hash is ignored.
        let mut with_metadata = vec![0x00, 0xfe, 0xa1, 0x41, 0xf1];
        with_metadata.extend_from_slice(&3u16.to_be_bytes());
        assert!(runs_alone(&with_metadata));
        assert!(!runs_alone(&with_metadata[..5]));
        // Without the INVALID before it, it is not taken for metadata.
        with_metadata[1] = 0x00;
        assert!(!runs_alone(&with_metadata));
    }

    #[test]
    fn union_find_joins_transitively() {
        let mut sets = UnionFind::new(5);
        sets.union(0, 3);
        sets.union(3, 4);
        assert_eq!(sets.find(4), sets.find(0));
        assert_ne!(sets.find(1), sets.find(0));
        assert_ne!(sets.find(1), sets.find(2));
    }

    #[test]
    fn digests_of_nearby_addresses_differ() {
        let digests: std::collections::HashSet<u64> = (0u8..=255)
            .map(|i| {
                let mut bytes = [0u8; 20];
                bytes[19] = i;
                Key::Account(Address::from(bytes)).digest()
            })
            .collect();
        assert_eq!(digests.len(), 256);
    }
}
