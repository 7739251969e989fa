//! Dependency prediction before execution: what a block's transactions will
//! conflict on, known from the block alone, and whether running it in
//! parallel can pay.
//!
//! The surest dependency visible without executing is the sender: a
//! transaction's successor from the same sender reads the nonce and balance
//! it writes. An exchange hot wallet sending hundreds of transactions makes
//! a block one long chain, where parallel execution can only lose. Calls
//! alike (same contract, function and first argument, [`call_links`]) are
//! a likelier one than not, which only Block-STM's scheduler acts on.

use super::{
    digest::{Digested, address_digest, fmix64},
    types::TxIdx,
};
use crate::BlockInput;
use alloy_consensus::Transaction;
use alloy_primitives::Address;
use smallvec::SmallVec;
use std::{collections::HashMap, hash::BuildHasherDefault};

/// What is known about a block's parallelism before executing it.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Transactions in the block.
    pub transactions: usize,
    /// Sum of the transactions' gas limits.
    pub gas: u64,
    /// Gas limits along the heaviest chain of same-sender transactions (a
    /// single transaction is a chain of one): no schedule can be shorter.
    /// Limits, not [`predicted_gas`], on both sides of the bound: a hot
    /// wallet's chain of transfers counted at 21,000 each against calls
    /// counted at their (generous) limits looked short enough to run in
    /// parallel on fixture 12520364, which then lost (0.63-0.75x).
    pub critical_gas: u64,
    /// Sum of the transactions' [`predicted_gas`]: how much execution there
    /// is, as far as the block alone tells.
    pub work: u64,
}

impl Prediction {
    /// The speedup `threads` workers could reach if the sender chains were
    /// the only conflicts: `gas / max(critical_gas, gas / threads)`.
    pub fn bound(&self, threads: usize) -> f64 {
        let per_thread = self.gas as f64 / threads.max(1) as f64;
        let span = (self.critical_gas as f64).max(per_thread);
        if span == 0.0 {
            1.0
        } else {
            self.gas as f64 / span
        }
    }
}

/// The gas a transaction is predicted to use: its gas limit, except that a
/// call without calldata (a plain value transfer, almost always) counts at
/// most the 21,000 it costs. Wallets long sent those with limits of 90,000
/// and more, which made blocks of cheap transfers look heavy: on the mainnet
/// fixtures, 116525 and 6196166 carried 7.2M and 10.6M of gas limits for
/// 3.6M of such work, and lost to sequential when run in parallel.
pub fn predicted_gas(tx: &impl Transaction) -> u64 {
    if tx.input().is_empty() && tx.kind().is_call() {
        tx.gas_limit().min(21_000)
    } else {
        tx.gas_limit()
    }
}

/// A predicted dependency: `tx` writes the sender's nonce and balance that a
/// later transaction of the same sender reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SenderLink {
    /// The earlier transaction.
    pub tx: TxIdx,
    /// The sender's next transaction after it.
    pub next: TxIdx,
}

/// Predicts `block`'s parallelism, with its sender links, in one pass.
///
/// Senders are keyed by a 64-bit digest of the address rather than by the
/// address: on 10,000 independent transfers the pass fell from 0.5-1.1 ms
/// to about 0.4 ms on the 2-core VM.
pub(crate) fn predict(block: &BlockInput) -> (Prediction, Chains) {
    let mut chains = SenderChains::new(block.transactions.len());
    let mut recipients = HotRecipients::default();
    let mut gas = 0u64;
    let mut work = 0u64;
    let mut beneficiary_walk = 0u64;
    let mut largest_calldata: (usize, TxIdx) = (0, 0);
    for (index, tx) in block.transactions.iter().enumerate() {
        chains.add(block, index, tx.signer(), tx.gas_limit());
        if tx.input().len() > largest_calldata.0 {
            largest_calldata = (tx.input().len(), index);
        }
        if tx.signer() == block.header.beneficiary {
            beneficiary_walk = beneficiary_walk.saturating_add(index as u64);
        }
        if let Some(to) = tx.to()
            && !tx.value().is_zero()
        {
            recipients.add(to);
        }
        gas = gas.saturating_add(tx.gas_limit());
        work = work.saturating_add(predicted_gas(tx.inner()));
    }
    let prediction = Prediction {
        transactions: block.transactions.len(),
        gas,
        critical_gas: chains.critical_gas,
        work,
    };
    // A recipient that sends too reads its balance at each send, which a
    // column would walk down to its last full balance (see `Credited`).
    let mut hot_recipients = recipients.hot(block.transactions.len());
    hot_recipients.retain(|address| !chains.sends(address));
    // The map is dropped here, before the block runs: kept alive through
    // the run (in a trial), it cost a block that then ran sequentially 2-3%.
    let (calldata, index) = largest_calldata;
    let chains = Chains {
        heavy: chains.heaviest(),
        heavy_calldata: (calldata >= HEAVY_CALLDATA).then_some(index),
        links: chains.links,
        gas,
        hot_recipients,
        beneficiary_column: column_pays(beneficiary_walk, block.transactions.len()),
    };
    (prediction, chains)
}

/// Slots per transaction of the block that the beneficiary's own
/// transactions may walk down its balance's column in all, for it to keep
/// one ([`Chains::beneficiary_column`]). A step down the column (a lock and
/// a slot, on reading and on every validation) costs some 10-20 ns; a
/// credit published into the map instead, a contended lock and line,
/// about 500 ns on the 2-core VM (see `Credited`).
const BENEFICIARY_WALK_PER_TX: u64 = 16;

/// Whether a column pays for a balance that the block's own transactions
/// read by walking `walk` slots in all (their positions summed: each reads
/// down to the block's start, every credit above it a delta), against
/// one contended credit per transaction of `transactions`.
fn column_pays(walk: u64, transactions: usize) -> bool {
    walk <= BENEFICIARY_WALK_PER_TX.saturating_mul(transactions as u64)
}

/// `block`'s gas limits and [`predicted_gas`] summed, without the pass over
/// its sender chains: a [`Prediction`] whose `critical_gas` is not known
/// (zero), for decisions that do not depend on it.
pub(crate) fn sums(block: &BlockInput) -> Prediction {
    summed(block, None)
}

/// [`sums`], with the gas limits of `sender`'s transactions as the critical
/// path: a lower bound of [`predict`]'s, so a block this [`Prediction`]
/// already bounds below a speedup is bounded so by the full one too. One
/// comparison per transaction instead of a map of every sender.
pub(crate) fn chain_of(block: &BlockInput, sender: Address) -> Prediction {
    summed(block, Some(sender))
}

fn summed(block: &BlockInput, chain_sender: Option<Address>) -> Prediction {
    let mut prediction = Prediction {
        transactions: block.transactions.len(),
        gas: 0,
        critical_gas: 0,
        work: 0,
    };
    for tx in &block.transactions {
        prediction.gas = prediction.gas.saturating_add(tx.gas_limit());
        prediction.work = prediction.work.saturating_add(predicted_gas(tx.inner()));
        if chain_sender == Some(tx.signer()) {
            prediction.critical_gas = prediction.critical_gas.saturating_add(tx.gas_limit());
        }
    }
    prediction
}

/// Predicted dependencies between calls from different senders: each
/// `(tx, next)` says that `next` is the next call after `tx` to the same
/// function of the same contract with the same first argument. ERC-20
/// transfers to one recipient all credit its balance (mainnet fixture
/// 12522062 has 55 USDT transfers to one address), and calls alike in their
/// first argument mostly meet in the same storage (10760440: 10 swaps
/// through one aggregator with one executor). Run side by side, each read
/// what the other was about to change, and all but the first ran twice.
///
/// Bare calls to one account, without value or calldata, are linked too:
/// they reach a contract's fallback, which does the same each time. Mainnet
/// fixture 6137495 holds 33 to one contract, and 6196166 49 to one and 30
/// to another, airdrops that count their claims; on Block-STM, 17 and 46
/// of their incarnations were aborted, and none once linked.
///
/// Approvals are left out: their first argument is a spender, and each
/// owner's allowance is its own. So are calls whose first word is where a
/// dynamic argument starts (a small multiple of 32), the same in every
/// call to the function: linked by it, Uniswap's Universal Router chained
/// eight of mainnet fixture 18085863's swaps through different pools, and
/// the block lost 5%.
pub(crate) fn call_links<'t, T: Transaction + 't>(
    transactions: impl IntoIterator<Item = &'t T>,
) -> Vec<(TxIdx, TxIdx)> {
    let mut last = HashMap::<u64, (TxIdx, CallHead<'t>), BuildHasherDefault<Digested>>::default();
    let mut links = Vec::new();
    for (index, tx) in transactions.into_iter().enumerate() {
        let Some(head) = call_head(tx) else {
            continue;
        };
        let digest = call_digest(&head);
        // Two calls sharing a digest are compared, though a wrong link would
        // only make a transaction wait until the earlier one first ran.
        if let Some((previous, previous_head)) = last.insert(digest, (index, head))
            && previous_head == head
        {
            links.push((previous, index));
        }
    }
    links
}

/// A call's target, and its selector and first argument.
type CallHead<'t> = (Address, &'t [u8]);

/// The length of a call's selector and first argument.
const CALL_HEAD: usize = 4 + 32;

/// `approve(address,uint256)` and `setApprovalForAll(address,bool)`.
const APPROVALS: [[u8; 4]; 2] = [[0x09, 0x5e, 0xa7, 0xb3], [0xa2, 0x2c, 0xb4, 0x65]];

/// The called account and the selector and first argument of a call with
/// one, other than an approval or a dynamic argument's offset; or nothing
/// after the account of a bare call.
fn call_head<T: Transaction>(tx: &T) -> Option<CallHead<'_>> {
    let to = tx.to()?;
    if tx.input().is_empty() && tx.value().is_zero() {
        return Some((to, &[]));
    }
    let head = tx.input().get(..CALL_HEAD)?;
    let approval = APPROVALS.iter().any(|a| head.starts_with(a));
    (!approval && !is_offset(&head[4..])).then_some((to, head))
}

/// Whether an ABI word reads as the offset of a dynamic argument: below
/// 2^16 and a multiple of 32.
fn is_offset(word: &[u8]) -> bool {
    let (high, low) = word.split_at(word.len() - 2);
    high.iter().all(|b| *b == 0) && low[1] % 32 == 0
}

fn call_digest((to, head): &CallHead<'_>) -> u64 {
    let mut digest = address_digest(to);
    for word in head.chunks(8) {
        let mut bytes = [0u8; 8];
        bytes[..word.len()].copy_from_slice(word);
        digest = fmix64(digest ^ u64::from_le_bytes(bytes));
    }
    digest
}

/// A block's chains of same-sender transactions, as Block-STM uses them.
pub(crate) struct Chains {
    /// Every transaction that a later one of its sender follows.
    pub links: Vec<SenderLink>,
    /// The [`MAX_STARTS`] heaviest chains (a chain may be one transaction),
    /// heaviest first.
    heavy: SmallVec<[HeavyChain; MAX_STARTS]>,
    /// The transaction with the most calldata, if it has at least
    /// [`HEAVY_CALLDATA`].
    heavy_calldata: Option<TxIdx>,
    /// The block's gas limits.
    gas: u64,
    /// Accounts that many of the block's transactions send value to
    /// ([`HotRecipients`]), and that send none of them, which may keep
    /// their balances' versions in columns
    /// ([`Credited`](super::mv_memory::Credited)).
    pub hot_recipients: SmallVec<[Address; HOT_CANDIDATES]>,
    /// Whether the beneficiary's balance keeps its versions in a column
    /// ([`Credited`](super::mv_memory::Credited)). Not where the
    /// beneficiary sends many of the block's transactions itself, spread
    /// through it (a mining pool paying its miners): each reads its balance
    /// by walking the column down to the block's start, every credit on
    /// the way a delta. Fixture 12520364, whose beneficiary sends 650 of
    /// its 660 transactions, ran at 0.35x on Block-STM with the column and
    /// at 1.07-1.09x without (its machinery on one thread: 0.58x against
    /// 0.82-0.83x).
    beneficiary_column: bool,
}

/// Candidates for [`Chains::hot_recipients`].
const HOT_CANDIDATES: usize = 4;

/// Transactions that must send value to an account, at least, for it to be
/// a hot recipient; and at least one in [`HOT_SHARE`] of the block's. Its
/// column costs a slot per transaction to fit and scrub, a few nanoseconds
/// each, and saves a contended publish (hundreds of nanoseconds on the
/// 2-core VM) per credit.
const HOT_MIN_CREDITS: u32 = 16;

/// See [`HOT_MIN_CREDITS`].
const HOT_SHARE: usize = 128;

/// The accounts most paid by a block's transactions, counted in the
/// prediction's pass as a Misra-Gries summary: [`HOT_CANDIDATES`] counters,
/// each an account's count less what others' decrements took from it. Any
/// account paid by more than `1 / (HOT_CANDIDATES + 1)` of the
/// transactions keeps a counter, and no counter exceeds its account's count.
#[derive(Default)]
struct HotRecipients {
    counters: [(Address, u32); HOT_CANDIDATES],
}

impl HotRecipients {
    /// Counts a transaction sending value to `to`.
    fn add(&mut self, to: Address) {
        if let Some((_, count)) = self.counters.iter_mut().find(|(a, c)| *a == to && *c > 0) {
            *count += 1;
        } else if let Some(free) = self.counters.iter_mut().find(|(_, c)| *c == 0) {
            *free = (to, 1);
        } else {
            self.counters.iter_mut().for_each(|(_, c)| *c -= 1);
        }
    }

    /// The accounts paid by enough of a block of `transactions`, most
    /// paid first.
    fn hot(&self, transactions: usize) -> SmallVec<[Address; HOT_CANDIDATES]> {
        let share = u32::try_from(transactions / HOT_SHARE).unwrap_or(u32::MAX);
        let least = HOT_MIN_CREDITS.max(share);
        let mut counters = self.counters;
        counters.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
        counters
            .iter()
            .filter(|(_, count)| *count >= least)
            .map(|(address, _)| *address)
            .collect()
    }
}

/// The most chains Block-STM starts ahead of block order.
const MAX_STARTS: usize = 8;

/// How far a chain other than the heaviest must run past the end of a
/// block taken in order to be started ahead of it: a tenth of a thread's
/// share of the block. Each such start takes a worker from the block's
/// front, where the transactions it would have run wait.
const OTHER_START_MARGIN: u64 = 10;

/// Calldata that makes a transaction start ahead of block order where no
/// chain does ([`Chains::starts`]): a rollup's batch or proof, whose work
/// its gas limit understates. Mainnet fixture 18988207's transaction 23
/// carries 94 KB, a limit of 5M of the block's 38M (it used 1.4M of 12.4M),
/// and runs 3.7 of the block's 7.3 ms, mostly in the BN254 precompiles;
/// taken in order, it started after 1.2 ms and ended the block alone.
/// Started first, the block ran in 4.32-4.53 ms against 5.14-5.31 ms (4
/// interleaved rounds on the 2-core VM). 16146267's and 14029313's largest
/// calls, of 31 KB each, are left in order: started first, their blocks
/// gained nothing or lost 1-2% (16146267's ends with two heavy calls, and
/// starting one left the other last).
const HEAVY_CALLDATA: usize = 32 * 1024;

/// One of a block's heaviest chains.
#[derive(Debug, Clone, Copy, Default)]
struct HeavyChain {
    start: ChainStart,
    /// The gas limits of its transactions.
    gas: u64,
}

/// Where a chain starts: its first transaction and the gas limits of the
/// transactions before it.
#[derive(Debug, Clone, Copy, Default)]
struct ChainStart {
    first: TxIdx,
    gas_before: u64,
}

impl Chains {
    /// Whether the beneficiary's balance keeps its versions in a column
    /// ([`Credited`](super::mv_memory::Credited)): unless its own
    /// transactions would walk the column too far.
    pub(crate) fn beneficiary_column(&self) -> bool {
        self.beneficiary_column
    }

    /// The first transactions of the heavy chains that would finish last
    /// when `threads` threads take the block in order, one per worker to
    /// start with, heaviest first: the threads reach a chain's start after
    /// about a `threads`-th of the gas before it, and then it runs one
    /// transaction after another. Started at once instead, it overlaps
    /// everything before it.
    ///
    /// Mainnet fixture 4370000 has a chain of 31 of its 97 transactions and
    /// 48% of its gas limits, from the 40th transaction to the last; taken
    /// in order, the chain started only after 0.3 of its 1.4 ms. A chain of
    /// one transaction is started first alike: 19929064's 92nd transaction
    /// (of 103) runs 1.8 of the block's 4.8 ms, and started after the
    /// others' first half it ended the block alone. Other chains than the
    /// heaviest start ahead only if they would end the block
    /// [`OTHER_START_MARGIN`] later: 19426587's last transaction runs 2.0 of
    /// its 3.6 ms, while the heaviest limit (3M of 7.4M) is another's; each
    /// started first on its own worker, the block went from 1.11x to 1.61x
    /// (medians of 8 interleaved rounds on the 2-core VM).
    ///
    /// Where no chain starts ahead, the transaction with the most calldata
    /// does, if it has [`HEAVY_CALLDATA`] and is its sender's first.
    ///
    /// A chain whose first transaction's target an earlier transaction
    /// calls does not start ahead ([`target_called_before`]), which is
    /// only looked up for the transactions heavy enough to start.
    pub(crate) fn starts(&self, block: &BlockInput, threads: usize) -> SmallVec<[TxIdx; 2]> {
        self.starts_where(threads, |first| !target_called_before(block, first))
    }

    /// [`Self::starts`], with `may_start` telling which chain may start ahead.
    fn starts_where(
        &self,
        threads: usize,
        may_start: impl Fn(TxIdx) -> bool,
    ) -> SmallVec<[TxIdx; 2]> {
        let threads = threads.max(1);
        let mut starts = SmallVec::new();
        for (rank, chain) in self.heavy.iter().enumerate() {
            // Where the chain ends taken in order, in gas counted `threads`
            // times over, as the margin and the block's gas are.
            let in_order_end = chain
                .gas
                .saturating_mul(threads as u64)
                .saturating_add(chain.start.gas_before);
            let margin = if rank == 0 {
                0
            } else {
                self.gas / OTHER_START_MARGIN
            };
            if in_order_end > self.gas.saturating_add(margin) && may_start(chain.start.first) {
                starts.push(chain.start.first);
                if starts.len() == threads {
                    break;
                }
            }
        }
        if starts.is_empty()
            && threads > 1
            && let Some(tx) = self.heavy_calldata
            && !self.links.iter().any(|link| link.next == tx)
            && may_start(tx)
        {
            starts.push(tx);
        }
        starts
    }
}

/// Whether a transaction before `first` calls the account `first` calls
/// (or `first` creates one): a chain started ahead of them would likely
/// read what they write and be run again. On mainnet fixture 9069000, one
/// sender's seven calls to a contract, started first, all read it before
/// another sender's call to it five transactions earlier, and the block
/// fell from 1.25x to 1.02x.
fn target_called_before(block: &BlockInput, first: TxIdx) -> bool {
    let target = block.transactions[first].to();
    target.is_none()
        || block.transactions[..first]
            .iter()
            .any(|tx| tx.to() == target)
}

/// The chains of transactions from one sender, as they are found.
struct SenderChains {
    /// Each sender's last transaction so far and its chain's gas limits, by
    /// the sender's digest.
    chains: HashMap<u64, Chain, BuildHasherDefault<Digested>>,
    links: Vec<SenderLink>,
    critical_gas: u64,
    /// Gas limits of the transactions added so far.
    gas: u64,
}

#[derive(Default)]
struct Chain {
    last: Option<TxIdx>,
    start: ChainStart,
    gas: u64,
}

impl SenderChains {
    fn new(transactions: usize) -> Self {
        Self {
            chains: HashMap::with_capacity_and_hasher(transactions, Default::default()),
            links: Vec::new(),
            critical_gas: 0,
            gas: 0,
        }
    }

    /// Whether `address` (or an address sharing its digest) sends any
    /// transaction added so far.
    fn sends(&self, address: &Address) -> bool {
        self.chains.contains_key(&address_digest(address))
    }

    /// Adds transaction `index` of `block`, from `sender`.
    fn add(&mut self, block: &BlockInput, index: TxIdx, sender: Address, gas_limit: u64) {
        let chain = self.chains.entry(address_digest(&sender)).or_default();
        // Two senders sharing a digest share a chain: the bound only gets
        // more cautious. The link is checked, though a wrong one would only
        // make a transaction wait until the earlier one first runs.
        let previous = chain.last.replace(index);
        if let Some(previous) = previous
            && block.transactions[previous].signer() == sender
        {
            self.links.push(SenderLink {
                tx: previous,
                next: index,
            });
        }
        if previous.is_none() {
            chain.start = ChainStart {
                first: index,
                gas_before: self.gas,
            };
        }
        self.gas = self.gas.saturating_add(gas_limit);
        chain.gas = chain.gas.saturating_add(gas_limit);
        self.critical_gas = self.critical_gas.max(chain.gas);
    }

    /// The [`MAX_STARTS`] heaviest chains, heaviest first (the earlier of
    /// two as heavy).
    fn heaviest(&self) -> SmallVec<[HeavyChain; MAX_STARTS]> {
        let mut heavy = SmallVec::<[HeavyChain; MAX_STARTS]>::new();
        let heavier = |a: &HeavyChain, b: &Chain| (a.gas, b.start.first) > (b.gas, a.start.first);
        for chain in self.chains.values() {
            let at = heavy.partition_point(|h| heavier(h, chain));
            if at < MAX_STARTS {
                if heavy.len() == MAX_STARTS {
                    heavy.pop();
                }
                let (start, gas) = (chain.start, chain.gas);
                heavy.insert(at, HeavyChain { start, gas });
            }
        }
        heavy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chains of a block of 13M gas: `(first, gas_before, gas)` each.
    fn heavy_chains(heavy: &[(TxIdx, u64, u64)]) -> Chains {
        let chain = |&(first, gas_before, gas)| HeavyChain {
            start: ChainStart { first, gas_before },
            gas,
        };
        Chains {
            links: Vec::new(),
            heavy: heavy.iter().map(chain).collect(),
            heavy_calldata: None,
            gas: 13_000_000,
            hot_recipients: SmallVec::new(),
            beneficiary_column: true,
        }
    }

    /// The beneficiary keeps its column unless its own transactions, spread
    /// through the block, would walk it far: a pool's payouts opening a
    /// block (fixture 8038679) keep it, a pool paying out all block long
    /// (12520364) does not, and a builder paying the proposer last does.
    #[test]
    fn the_beneficiary_keeps_its_column_unless_its_sends_walk_it_far() {
        let walk = |sends: std::ops::Range<u64>| sends.sum::<u64>();
        assert!(column_pays(0, 200));
        assert!(column_pays(walk(0..34), 237));
        assert!(column_pays(walk(472..473), 473));
        assert!(!column_pays(walk(10..660), 660));
    }

    /// Accounts paid by many transactions are found, most paid first, and
    /// those paid by few are not, however the payments interleave.
    #[test]
    fn hot_recipients_are_the_accounts_paid_most() {
        let (deposit, exchange) = (Address::repeat_byte(0xd0), Address::repeat_byte(0xe0));
        let mut recipients = HotRecipients::default();
        for i in 0..200u8 {
            match i % 4 {
                0 | 1 => recipients.add(deposit),
                2 => recipients.add(exchange),
                _ => recipients.add(Address::repeat_byte(i)),
            }
        }
        assert_eq!(recipients.hot(200).as_slice(), &[deposit, exchange]);
        // At one in 128 of a larger block, 40 payments are too few.
        let mut recipients = HotRecipients::default();
        (0..40).for_each(|_| recipients.add(exchange));
        assert_eq!(recipients.hot(40).as_slice(), &[exchange]);
        assert!(recipients.hot(128 * 41).is_empty());
        let mut recipients = HotRecipients::default();
        (0..15).for_each(|_| recipients.add(exchange));
        assert!(recipients.hot(15).is_empty());
    }

    #[test]
    fn a_chain_starts_first_only_if_it_would_finish_last() {
        let starts = |gas_before, gas, threads| {
            heavy_chains(&[(40, gas_before, gas)])
                .starts_where(threads, |_| true)
                .to_vec()
        };
        // Reached after 2M of gas per thread, then 6M more: past 6.5M.
        assert_eq!(starts(4_000_000, 6_000_000, 2), vec![40]);
        // At the block's start it runs alongside everything else.
        assert_eq!(starts(0, 6_000_000, 2), Vec::<TxIdx>::new());
        // One thread takes the block in order whatever starts first.
        assert_eq!(starts(4_000_000, 6_000_000, 1), Vec::<TxIdx>::new());
        // Light enough to finish with the rest.
        assert_eq!(starts(4_000_000, 1_000_000, 2), Vec::<TxIdx>::new());
        assert_eq!(
            heavy_chains(&[]).starts_where(2, |_| true).to_vec(),
            Vec::<TxIdx>::new()
        );
    }

    #[test]
    fn lighter_chains_start_first_if_they_would_end_the_block_well_after_it() {
        // The heaviest, and one ending the block in order 0.8M (of 6.5M a
        // thread) after the rest: both start first, heaviest first.
        let heavy = [(20, 4_000_000, 5_000_000), (90, 11_000_000, 1_800_000)];
        assert_eq!(
            heavy_chains(&heavy).starts_where(2, |_| true).to_vec(),
            vec![20, 90]
        );
        // 0.5M after the rest: within the margin.
        let heavy = [(20, 4_000_000, 5_000_000), (90, 11_000_000, 1_500_000)];
        assert_eq!(
            heavy_chains(&heavy).starts_where(2, |_| true).to_vec(),
            vec![20]
        );
        // No more starts than threads.
        let heavy = [(20, 4_000_000, 5_000_000), (90, 11_000_000, 1_800_000)];
        assert_eq!(
            heavy_chains(&heavy).starts_where(1, |_| true).to_vec(),
            Vec::<TxIdx>::new()
        );
        // A chain that may not start ahead leaves the next its place, but
        // not its margin.
        let chains = heavy_chains(&[(20, 4_000_000, 5_000_000), (90, 12_000_000, 510_000)]);
        let starts = chains.starts_where(2, |first| first != 20);
        assert_eq!(starts.to_vec(), Vec::<TxIdx>::new());
    }

    #[test]
    fn the_largest_call_starts_first_where_no_chain_does() {
        let mut chains = heavy_chains(&[(20, 4_000_000, 5_000_000)]);
        chains.heavy_calldata = Some(60);
        // A chain starts: the call waits its turn.
        assert_eq!(chains.starts_where(2, |_| true).to_vec(), vec![20]);
        // None does: the call starts, unless it may not, or there is one
        // thread, or its sender sends before it.
        assert_eq!(chains.starts_where(2, |tx| tx != 20).to_vec(), vec![60]);
        assert_eq!(
            chains.starts_where(2, |tx| tx != 20 && tx != 60).to_vec(),
            Vec::<TxIdx>::new()
        );
        assert_eq!(
            chains.starts_where(1, |tx| tx != 20).to_vec(),
            Vec::<TxIdx>::new()
        );
        chains.links.push(SenderLink { tx: 30, next: 60 });
        assert_eq!(
            chains.starts_where(2, |tx| tx != 20).to_vec(),
            Vec::<TxIdx>::new()
        );
    }

    #[test]
    fn bound_is_limited_by_threads_and_by_the_heaviest_chain() {
        let p = |gas, critical_gas| Prediction {
            transactions: 10,
            gas,
            critical_gas,
            work: gas,
        };
        assert_eq!(p(100, 10).bound(2), 2.0);
        assert_eq!(p(100, 10).bound(4), 4.0);
        assert_eq!(p(100, 50).bound(4), 2.0);
        assert_eq!(p(100, 100).bound(8), 1.0);
        assert_eq!(p(0, 0).bound(2), 1.0);
    }

    #[test]
    fn calls_alike_in_function_and_first_argument_are_linked() {
        use alloy_consensus::TxLegacy;
        use alloy_primitives::{Bytes, TxKind, U256};
        let word = |last: u16| {
            let mut word = [0u8; 32];
            word[30..].copy_from_slice(&last.to_be_bytes());
            word
        };
        let call_with = |to: u8, selector: [u8; 4], first: [u8; 32]| {
            let mut input = selector.to_vec();
            input.extend(first);
            input.extend([7; 32]);
            TxLegacy {
                to: TxKind::Call(Address::repeat_byte(to)),
                input: Bytes::from(input),
                ..Default::default()
            }
        };
        let call = |to: u8, selector: [u8; 4], arg: u8| call_with(to, selector, [arg; 32]);
        let transfer = [0xa9, 0x05, 0x9c, 0xbb];
        let txs = [
            call(1, transfer, 5),
            call(1, transfer, 6),
            // Another token, another recipient, another function.
            call(2, transfer, 5),
            call(1, transfer, 5),
            call(1, [1, 2, 3, 4], 5),
            // Approvals of one spender by different owners.
            call(1, APPROVALS[0], 5),
            call(1, APPROVALS[0], 5),
            // A dynamic argument's offset, and a small number that is none.
            call_with(1, [5, 6, 7, 8], word(0x60)),
            call_with(1, [5, 6, 7, 8], word(0x60)),
            call_with(1, [5, 6, 7, 8], word(0x11e5)),
            call_with(1, [5, 6, 7, 8], word(0x11e5)),
            // Too short to have a first argument, and a transfer of value.
            TxLegacy {
                input: Bytes::from_static(&[0xa9, 0x05, 0x9c, 0xbb]),
                ..call(1, transfer, 5)
            },
            TxLegacy {
                input: Bytes::new(),
                value: U256::from(1),
                ..call(1, transfer, 5)
            },
            call(1, transfer, 5),
            // Bare calls (no value, no calldata) to one contract, and a
            // transfer of value between them.
            TxLegacy {
                input: Bytes::new(),
                ..call(3, transfer, 5)
            },
            TxLegacy {
                input: Bytes::new(),
                value: U256::from(1),
                ..call(3, transfer, 5)
            },
            TxLegacy {
                input: Bytes::new(),
                ..call(3, transfer, 5)
            },
        ];
        assert_eq!(call_links(&txs), vec![(0, 3), (9, 10), (3, 13), (14, 16)]);
    }

    #[test]
    fn calls_without_calldata_count_at_most_a_transfer() {
        use alloy_consensus::TxLegacy;
        use alloy_primitives::{Bytes, TxKind};
        let tx = |to, input: &'static [u8], gas_limit| TxLegacy {
            to,
            input: Bytes::from_static(input),
            gas_limit,
            ..Default::default()
        };
        let to = TxKind::Call(Address::repeat_byte(1));
        assert_eq!(predicted_gas(&tx(to, b"", 90_000)), 21_000);
        assert_eq!(predicted_gas(&tx(to, b"", 20_000)), 20_000);
        assert_eq!(predicted_gas(&tx(to, b"\x01", 90_000)), 90_000);
        assert_eq!(predicted_gas(&tx(TxKind::Create, b"", 90_000)), 90_000);
    }
}
