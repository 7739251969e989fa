//! Deterministic synthetic block workloads for parevm.
//!
//! [`generate`] builds a [`Workload`]: a block ([`parevm::BlockInput`]) and
//! the pre-block state ([`parevm::InMemoryState`]) it executes on. Every
//! transaction of a generated block succeeds when executed in order, and the
//! same [`WorkloadConfig`] always yields the same block, byte for byte, on
//! every platform (the generator uses its own SplitMix64 generator, no
//! hashing-order or platform dependence).
//!
//! # Kinds
//!
//! | kind | transaction | hot transaction (share [`WorkloadConfig::hot_ratio`]) |
//! | --- | --- | --- |
//! | `raw-transfers` | ETH transfer from a pool sender to a pool recipient | sent by **one hot sender**: every hot transaction depends on the previous one through the sender's nonce and balance (to an executor that reads them; parevm runs such a payout sender's transfers apart) |
//! | `erc20-transfers` | `transfer` of one shared token from a pool sender to a fresh pool recipient | transfers **to one hot holder**: every hot transaction read-modify-writes the hot holder's `balanceOf` slot |
//! | `amm-swaps` | `swap` on the sender's own pool (each pool with its own two tokens) | swaps on **one hot pool**: every hot transaction read-modify-writes that pool's reserves and token balances |
//! | `hot-slot` | `bump()` on the sender's own `HotSlot` instance | `bump()` on **the one shared `HotSlot`**: every hot transaction read-modify-writes its slot 0 |
//! | `mixed` | each transaction is one of the four kinds above, picked by the seeded generator (uniformly) | as for its kind |
//!
//! Hot transactions are spread evenly through the block: transaction `i` is
//! hot when `floor((i + 1) * r + φ) > floor(i * r + φ)` for the hot ratio `r`
//! and a seeded phase `φ ∈ [0, 1)`, so exactly `⌊n·r⌋` or `⌈n·r⌉` of `n`
//! transactions are hot, `r = 0` means none and `r = 1` means all. With
//! `hot_ratio = 1.0` every transaction conflicts with the one before it of
//! its kind (for `mixed`: every transaction conflicts with the previous one
//! of the same kind).
//!
//! # Accounts
//!
//! [`WorkloadConfig::accounts`] is the size of the sender pool (and of the
//! recipient pool). Every transaction except a hot raw transfer takes the
//! next sender of the pool, round robin over the whole block; cold
//! transactions take the next recipient likewise. With `accounts` at least the
//! number of transactions no sender, recipient, pool or `HotSlot` instance is
//! used twice, so a block with `hot_ratio = 0` has **no conflicts at all**
//! (apart from the block's beneficiary collecting fees, and value credits to
//! recipients, which parevm treats as commutative). A smaller pool reuses
//! senders (nonce chains), recipients (ERC-20 balance slots) and, since a
//! cold pool or `HotSlot` instance belongs to a sender, pools and instances:
//! extra, realistic conflicts on top of the hot ones. Only the accounts a
//! block actually uses are in its pre-state.
//!
//! # Block
//!
//! A Shanghai block (chain id 1, every fork up to Shanghai active from
//! genesis, so no EIP-4788 beacon-root system call is needed) with number 1,
//! base fee [`BASE_FEE`], beneficiary [`COINBASE`], no withdrawals, and a gas
//! limit of at least 30M and at least the sum of its transactions' gas limits.
//! Transactions are EIP-1559 with correct nonces from funded senders. They
//! carry a **placeholder signature** (`r = s = 1`) that does not recover to
//! the sender: execution uses the sender stored in
//! [`Recovered`], as the block was
//! "recovered" by the generator.
//!
//! # Contracts
//!
//! The runtime bytecode of `contracts/{Erc20,AmmPair,HotSlot}.sol` (solc
//! 0.8.28, uses `PUSH0`, hence Shanghai or later) is embedded from
//! `contracts/build/*.hex`. Contracts have no constructors: the generator
//! writes their storage (balances, allowances, total supply, reserves)
//! straight into the pre-state following the layouts in `contracts/README.md`.

use alloy_consensus::{Header, SignableTransaction, TxEip1559, TxEnvelope, transaction::Recovered};
use alloy_eips::eip2930::AccessList;
use alloy_primitives::{
    Address, B256, Bytes, Signature, TxKind, U256, keccak256,
    map::{HashMap, HashSet},
};
use parevm::{BlockInput, ChainSpec, InMemoryAccount, InMemoryState};
use revm::{bytecode::Bytecode, state::AccountInfo};
use std::{fmt, str::FromStr, sync::Arc};

/// Runtime bytecode of `contracts/Erc20.sol`, as hex.
pub const ERC20_HEX: &str = include_str!("../contracts/build/Erc20.hex");
/// Runtime bytecode of `contracts/AmmPair.sol`, as hex.
pub const AMM_PAIR_HEX: &str = include_str!("../contracts/build/AmmPair.hex");
/// Runtime bytecode of `contracts/HotSlot.sol`, as hex.
pub const HOT_SLOT_HEX: &str = include_str!("../contracts/build/HotSlot.hex");

/// Base fee per gas of generated blocks.
pub const BASE_FEE: u64 = 7;
/// `max_fee_per_gas` of generated transactions.
pub const MAX_FEE_PER_GAS: u128 = 20;
/// `max_priority_fee_per_gas` of generated transactions.
pub const MAX_PRIORITY_FEE_PER_GAS: u128 = 2;
/// The beneficiary of generated blocks.
pub const COINBASE: Address = role_address(0xcb, 0);
/// The smallest header gas limit of a generated block.
pub const MIN_BLOCK_GAS_LIMIT: u64 = 30_000_000;
/// The most transactions [`generate`] accepts (directly or through `gas`).
pub const MAX_TRANSACTIONS: usize = 10_000_000;

/// Wei every sender starts with.
const SENDER_ETH: u128 = 1_000_000 * 10u128.pow(18);
/// Token units every holder starts with, per token it uses.
const HOLDER_TOKENS: u128 = 10u128.pow(24);
/// Reserves of each AMM pool, per side (the pool's token balance too).
const POOL_RESERVE: u128 = 10u128.pow(24);

const SEL_TRANSFER: [u8; 4] = [0xa9, 0x05, 0x9c, 0xbb];
const SEL_SWAP: [u8; 4] = [0x9f, 0x1d, 0x0f, 0x59];
const SEL_BUMP: [u8; 4] = [0x68, 0x11, 0x0b, 0x2f];

// Address roles: byte 0 of an address is its role, bytes 12..20 its index.
const ROLE_SENDER: u8 = 0x10;
const ROLE_HOT_SENDER: u8 = 0x11;
const ROLE_RECIPIENT: u8 = 0x20;
const ROLE_HOT_HOLDER: u8 = 0x21;
const ROLE_ERC20: u8 = 0xc0;
const ROLE_PAIR: u8 = 0xc1;
const ROLE_PAIR_TOKEN0: u8 = 0xc2;
const ROLE_PAIR_TOKEN1: u8 = 0xc3;
const ROLE_HOT_SLOT: u8 = 0xc4;

/// A readable address: `role` in byte 0, `index` big-endian in bytes 12..20.
const fn role_address(role: u8, index: u64) -> Address {
    let mut bytes = [0u8; 20];
    bytes[0] = role;
    let index = index.to_be_bytes();
    let mut i = 0;
    while i < 8 {
        bytes[12 + i] = index[i];
        i += 1;
    }
    Address::new(bytes)
}

/// The shape of a synthetic block. See the [crate documentation](crate) for
/// what each kind's transactions and hot transactions are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    /// Plain ETH transfers.
    RawTransfers,
    /// ERC-20 `transfer` calls on one token.
    Erc20Transfers,
    /// Uniswap-V2-style swaps.
    AmmSwaps,
    /// `HotSlot.bump()` calls.
    HotSlot,
    /// A seeded interleaving of the four other kinds.
    Mixed,
}

impl WorkloadKind {
    /// Every kind, in a fixed order.
    pub const ALL: [WorkloadKind; 5] = [
        Self::RawTransfers,
        Self::Erc20Transfers,
        Self::AmmSwaps,
        Self::HotSlot,
        Self::Mixed,
    ];

    /// The kind's name: `raw-transfers`, `erc20-transfers`, `amm-swaps`,
    /// `hot-slot` or `mixed`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::RawTransfers => "raw-transfers",
            Self::Erc20Transfers => "erc20-transfers",
            Self::AmmSwaps => "amm-swaps",
            Self::HotSlot => "hot-slot",
            Self::Mixed => "mixed",
        }
    }

    /// A rough gas cost of one transaction of this kind (the mean over
    /// kinds for `mixed`), intrinsic gas included.
    pub fn typical_gas(&self) -> u64 {
        match self {
            Self::Mixed => {
                let simple = [
                    Self::RawTransfers,
                    Self::Erc20Transfers,
                    Self::AmmSwaps,
                    Self::HotSlot,
                ];
                simple.iter().map(|k| k.typical_gas()).sum::<u64>() / 4
            }
            Self::RawTransfers => estimate_gas(SimpleKind::Raw, false, &[]),
            Self::Erc20Transfers => estimate_gas(SimpleKind::Erc20, false, &[0xff; 68]),
            Self::AmmSwaps => estimate_gas(SimpleKind::Amm, false, &[0xff; 100]),
            Self::HotSlot => estimate_gas(SimpleKind::HotSlot, false, &SEL_BUMP),
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for WorkloadKind {
    type Err = WorkloadError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| WorkloadError::UnknownKind(s.to_string()))
    }
}

fn kind_names() -> String {
    WorkloadKind::ALL.map(|k| k.name()).join(", ")
}

/// Why [`generate`] (or parsing a [`WorkloadKind`]) failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WorkloadError {
    /// Not a workload name.
    #[error("unknown workload `{0}` (valid: {names})", names = kind_names())]
    UnknownKind(String),
    /// `hot_ratio` is not a number in `[0, 1]`.
    #[error("hot ratio must be between 0 and 1, got {0}")]
    HotRatio(f64),
    /// `accounts` is zero.
    #[error("the number of accounts must be at least 1")]
    ZeroAccounts,
    /// Both `transactions` and `gas` are set.
    #[error("give either a number of transactions or a gas target, not both")]
    BothSizes,
    /// Neither `transactions` nor `gas` is set.
    #[error("give a number of transactions or a gas target")]
    NoSize,
    /// `transactions` is zero.
    #[error("the number of transactions must be at least 1")]
    ZeroTransactions,
    /// `gas` is zero.
    #[error("the gas target must be at least 1")]
    ZeroGas,
    /// The block would be too large.
    #[error("the block would have more than {max} transactions", max = MAX_TRANSACTIONS)]
    TooLarge,
    /// The embedded bytecode is not valid hex (a broken build).
    #[error("embedded bytecode of {0} is not valid hex")]
    BadBytecode(&'static str),
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadConfig {
    /// The kind of transactions.
    pub kind: WorkloadKind,
    /// Generate exactly this many transactions (exclusive with `gas`).
    pub transactions: Option<usize>,
    /// Generate transactions until the sum of their gas reaches this target
    /// (exclusive with `transactions`). The generator estimates each
    /// transaction's gas from measured per-kind costs: exact for transfers,
    /// HotSlot bumps and ERC-20 transfers, within 0.1% for swaps, as long as
    /// `accounts` is at least the number of transactions (a reused ERC-20
    /// recipient costs less than a fresh one, so smaller pools overshoot).
    pub gas: Option<u64>,
    /// Size of the sender pool and of the recipient pool (see the
    /// [crate documentation](crate#accounts)).
    pub accounts: usize,
    /// Share of hot (conflicting) transactions, in `[0, 1]`.
    pub hot_ratio: f64,
    /// Seed of amounts, swap directions, the `mixed` interleaving and the
    /// placement of hot transactions.
    pub seed: u64,
}

impl WorkloadConfig {
    /// Default transaction count of [`WorkloadConfig::new`].
    pub const DEFAULT_TRANSACTIONS: usize = 1_000;
    /// Default pool size of [`WorkloadConfig::new`].
    pub const DEFAULT_ACCOUNTS: usize = 100_000;
    /// Default hot ratio of [`WorkloadConfig::new`].
    pub const DEFAULT_HOT_RATIO: f64 = 0.1;
    /// Default seed of [`WorkloadConfig::new`].
    pub const DEFAULT_SEED: u64 = 0x5eed;

    /// 1,000 transactions of `kind`, a pool of 100,000 accounts (so no
    /// sender repeats), hot ratio 0.1, seed `0x5eed`.
    pub fn new(kind: WorkloadKind) -> Self {
        Self {
            kind,
            transactions: Some(Self::DEFAULT_TRANSACTIONS),
            gas: None,
            accounts: Self::DEFAULT_ACCOUNTS,
            hot_ratio: Self::DEFAULT_HOT_RATIO,
            seed: Self::DEFAULT_SEED,
        }
    }

    /// Checks the knobs.
    pub fn validate(&self) -> Result<(), WorkloadError> {
        if !(0.0..=1.0).contains(&self.hot_ratio) {
            return Err(WorkloadError::HotRatio(self.hot_ratio));
        }
        if self.accounts == 0 {
            return Err(WorkloadError::ZeroAccounts);
        }
        match (self.transactions, self.gas) {
            (Some(_), Some(_)) => Err(WorkloadError::BothSizes),
            (None, None) => Err(WorkloadError::NoSize),
            (Some(0), None) => Err(WorkloadError::ZeroTransactions),
            (Some(n), None) if n > MAX_TRANSACTIONS => Err(WorkloadError::TooLarge),
            (None, Some(0)) => Err(WorkloadError::ZeroGas),
            (None, Some(g)) if g / 21_000 > MAX_TRANSACTIONS as u64 => Err(WorkloadError::TooLarge),
            _ => Ok(()),
        }
    }
}

/// A generated block and the state it executes on.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The block.
    pub block: BlockInput,
    /// The pre-block state.
    pub state: InMemoryState,
}

/// Generates the block and pre-state that `config` describes.
pub fn generate(config: &WorkloadConfig) -> Result<Workload, WorkloadError> {
    config.validate()?;
    let mut generator = Generator::new(config)?;
    let mut index = 0usize;
    loop {
        let done = match (config.transactions, config.gas) {
            (Some(n), _) => generator.txs.len() >= n,
            (None, Some(target)) => generator.estimated_gas >= target,
            (None, None) => unreachable!("validated"),
        };
        if done {
            break;
        }
        if generator.txs.len() >= MAX_TRANSACTIONS {
            return Err(WorkloadError::TooLarge);
        }
        let hot = generator.is_hot(index);
        let kind = match config.kind {
            WorkloadKind::RawTransfers => SimpleKind::Raw,
            WorkloadKind::Erc20Transfers => SimpleKind::Erc20,
            WorkloadKind::AmmSwaps => SimpleKind::Amm,
            WorkloadKind::HotSlot => SimpleKind::HotSlot,
            WorkloadKind::Mixed => match generator.rng.below(4) {
                0 => SimpleKind::Raw,
                1 => SimpleKind::Erc20,
                2 => SimpleKind::Amm,
                _ => SimpleKind::HotSlot,
            },
        };
        generator.push(kind, hot);
        index += 1;
    }
    Ok(generator.finish())
}

/// SplitMix64: tiny, fast, and the same on every platform.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by rejection so it has no bias.
    fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next();
            if x < zone {
                return x % n;
            }
        }
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SimpleKind {
    Raw,
    Erc20,
    Amm,
    HotSlot,
}

/// Gas of one transaction: intrinsic (21,000 plus calldata) plus execution,
/// measured on the generated contracts and state (Shanghai).
fn estimate_gas(kind: SimpleKind, hot: bool, input: &[u8]) -> u64 {
    let calldata: u64 = input.iter().map(|b| if *b == 0 { 4 } else { 16 }).sum();
    let execution = match (kind, hot) {
        (SimpleKind::Raw, _) => 0,
        // Cold: fresh recipient slot (zero to non-zero); hot: the hot
        // holder's balance is non-zero before.
        (SimpleKind::Erc20, false) => ERC20_COLD_EXECUTION,
        (SimpleKind::Erc20, true) => ERC20_HOT_EXECUTION,
        (SimpleKind::Amm, _) => AMM_EXECUTION,
        (SimpleKind::HotSlot, _) => HOT_SLOT_EXECUTION,
    };
    21_000 + calldata + execution
}

// Execution gas (beyond intrinsic), measured with `tests/gas.rs` (a swap
// costs 68,555 or 68,618 depending on its direction).
const ERC20_COLD_EXECUTION: u64 = 29_860;
const ERC20_HOT_EXECUTION: u64 = 12_760;
const AMM_EXECUTION: u64 = 68_587;
const HOT_SLOT_EXECUTION: u64 = 29_175;

/// Gas limits of generated transactions, with headroom over their use.
fn gas_limit_of(kind: SimpleKind) -> u64 {
    match kind {
        SimpleKind::Raw => 21_000,
        SimpleKind::Erc20 => 80_000,
        SimpleKind::Amm => 150_000,
        SimpleKind::HotSlot => 80_000,
    }
}

fn word_address(address: Address) -> [u8; 32] {
    let mut word = [0u8; 32];
    word[12..].copy_from_slice(address.as_slice());
    word
}

fn word_u256(value: U256) -> [u8; 32] {
    value.to_be_bytes()
}

/// `keccak(w(key) ‖ w(slot))`: a mapping entry's slot.
fn mapping_slot(key: [u8; 32], slot: [u8; 32]) -> U256 {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(&key);
    buf[32..].copy_from_slice(&slot);
    U256::from_be_bytes(keccak256(buf).0)
}

/// `Erc20.balanceOf[holder]`.
pub fn erc20_balance_slot(holder: Address) -> U256 {
    mapping_slot(word_address(holder), word_u256(U256::ZERO))
}

/// `Erc20.allowance[owner][spender]`.
pub fn erc20_allowance_slot(owner: Address, spender: Address) -> U256 {
    let inner = mapping_slot(word_address(owner), word_u256(U256::from(1)));
    mapping_slot(word_address(spender), inner.to_be_bytes())
}

/// `HotSlot.lastBump[caller]`.
pub fn hot_slot_last_bump_slot(caller: Address) -> U256 {
    mapping_slot(word_address(caller), word_u256(U256::from(1)))
}

#[derive(Clone, Copy)]
enum Code {
    Erc20,
    AmmPair,
    HotSlot,
}

struct Generator<'a> {
    config: &'a WorkloadConfig,
    rng: SplitMix64,
    hot_phase: f64,
    erc20: Bytecode,
    amm_pair: Bytecode,
    hot_slot: Bytecode,
    txs: Vec<Recovered<TxEnvelope>>,
    estimated_gas: u64,
    gas_limit_sum: u64,
    nonces: HashMap<Address, u64>,
    contracts: HashMap<Address, Code>,
    storage: HashMap<Address, HashMap<U256, U256>>,
    /// Token units handed out per token, for `totalSupply`.
    supply: HashMap<Address, U256>,
    /// (token, holder) pairs with a starting balance.
    holders: HashSet<(Address, Address)>,
    next_sender: usize,
    next_recipient: usize,
}

impl<'a> Generator<'a> {
    fn new(config: &'a WorkloadConfig) -> Result<Self, WorkloadError> {
        let decode = |name: &'static str, hex: &str| {
            alloy_primitives::hex::decode(hex.trim())
                .map(|b| Bytecode::new_raw(Bytes::from(b)))
                .map_err(|_| WorkloadError::BadBytecode(name))
        };
        let mut rng = SplitMix64(config.seed);
        let hot_phase = rng.unit();
        Ok(Self {
            config,
            rng,
            hot_phase,
            erc20: decode("Erc20", ERC20_HEX)?,
            amm_pair: decode("AmmPair", AMM_PAIR_HEX)?,
            hot_slot: decode("HotSlot", HOT_SLOT_HEX)?,
            txs: Vec::new(),
            estimated_gas: 0,
            gas_limit_sum: 0,
            nonces: HashMap::default(),
            contracts: HashMap::default(),
            storage: HashMap::default(),
            supply: HashMap::default(),
            holders: HashSet::default(),
            next_sender: 0,
            next_recipient: 0,
        })
    }

    fn is_hot(&self, index: usize) -> bool {
        let r = self.config.hot_ratio;
        let i = index as f64;
        ((i + 1.0) * r + self.hot_phase).floor() > (i * r + self.hot_phase).floor()
    }

    /// The next sender of the pool and its index.
    fn take_sender(&mut self) -> (u64, Address) {
        let index = (self.next_sender % self.config.accounts) as u64;
        self.next_sender += 1;
        (index, role_address(ROLE_SENDER, index))
    }

    fn take_recipient(&mut self) -> Address {
        let index = (self.next_recipient % self.config.accounts) as u64;
        self.next_recipient += 1;
        role_address(ROLE_RECIPIENT, index)
    }

    fn set_slot(&mut self, contract: Address, slot: U256, value: U256) {
        self.storage
            .entry(contract)
            .or_default()
            .insert(slot, value);
    }

    /// Gives `holder` a starting balance of `amount` on `token`, once.
    fn fund_token(&mut self, token: Address, holder: Address, amount: U256) {
        if self.holders.insert((token, holder)) {
            self.set_slot(token, erc20_balance_slot(holder), amount);
            *self.supply.entry(token).or_default() += amount;
        }
    }

    fn deploy(&mut self, address: Address, code: Code) -> bool {
        self.contracts.insert(address, code).is_none()
    }

    /// Pool `p`'s pair and tokens, installed on first use.
    fn pool(&mut self, p: u64) -> (Address, Address, Address) {
        let pair = role_address(ROLE_PAIR, p);
        let token0 = role_address(ROLE_PAIR_TOKEN0, p);
        let token1 = role_address(ROLE_PAIR_TOKEN1, p);
        if self.deploy(pair, Code::AmmPair) {
            self.deploy(token0, Code::Erc20);
            self.deploy(token1, Code::Erc20);
            let reserve = U256::from(POOL_RESERVE);
            self.set_slot(
                pair,
                U256::from(0),
                U256::from_be_bytes(word_address(token0)),
            );
            self.set_slot(
                pair,
                U256::from(1),
                U256::from_be_bytes(word_address(token1)),
            );
            self.set_slot(pair, U256::from(2), reserve);
            self.set_slot(pair, U256::from(3), reserve);
            self.fund_token(token0, pair, reserve);
            self.fund_token(token1, pair, reserve);
        }
        (pair, token0, token1)
    }

    fn hot_slot_contract(&mut self, address: Address) -> Address {
        if self.deploy(address, Code::HotSlot) {
            // A non-zero counter, so every bump costs the same.
            self.set_slot(address, U256::ZERO, U256::from(1));
        }
        address
    }

    /// A plain value transfer: sender, recipient, value and (empty) input.
    fn raw_transfer(&mut self, hot: bool) -> Call {
        let sender = if hot {
            role_address(ROLE_HOT_SENDER, 0)
        } else {
            self.take_sender().1
        };
        let to = self.take_recipient();
        let value = self.amount(10u128.pow(12));
        (sender, to, value, Vec::new())
    }

    /// An ERC-20 `transfer`, to the hot holder if `hot`.
    fn erc20_transfer(&mut self, hot: bool) -> Call {
        let (_, sender) = self.take_sender();
        let token = role_address(ROLE_ERC20, 0);
        self.deploy(token, Code::Erc20);
        self.fund_token(token, sender, U256::from(HOLDER_TOKENS));
        let to = if hot {
            let holder = role_address(ROLE_HOT_HOLDER, 0);
            self.fund_token(token, holder, U256::from(HOLDER_TOKENS));
            holder
        } else {
            self.take_recipient()
        };
        let amount = self.amount(10u128.pow(15));
        let mut input = Vec::with_capacity(68);
        input.extend_from_slice(&SEL_TRANSFER);
        input.extend_from_slice(&word_address(to));
        input.extend_from_slice(&word_u256(amount));
        (sender, token, U256::ZERO, input)
    }

    /// A swap on the sender's own pool, or on the hot pool if `hot`.
    fn amm_swap(&mut self, hot: bool) -> Call {
        let (index, sender) = self.take_sender();
        // Pool 0 is the hot pool; sender k owns pool k + 1.
        let (pair, token0, token1) = self.pool(if hot { 0 } else { index + 1 });
        let token_in = if self.rng.below(2) == 0 {
            token0
        } else {
            token1
        };
        self.fund_token(token_in, sender, U256::from(HOLDER_TOKENS));
        self.set_slot(token_in, erc20_allowance_slot(sender, pair), U256::MAX);
        let amount = self.amount(10u128.pow(15));
        let mut input = Vec::with_capacity(100);
        input.extend_from_slice(&SEL_SWAP);
        input.extend_from_slice(&word_address(token_in));
        input.extend_from_slice(&word_u256(amount));
        input.extend_from_slice(&word_u256(U256::ZERO));
        (sender, pair, U256::ZERO, input)
    }

    /// A bump of the sender's own counter, or of the hot one if `hot`.
    fn hot_slot_bump(&mut self, hot: bool) -> Call {
        let (index, sender) = self.take_sender();
        let contract =
            self.hot_slot_contract(role_address(ROLE_HOT_SLOT, if hot { 0 } else { index + 1 }));
        (sender, contract, U256::ZERO, SEL_BUMP.to_vec())
    }

    /// An amount in `1..=1000` times `unit`.
    fn amount(&mut self, unit: u128) -> U256 {
        U256::from(1 + self.rng.below(1000)) * U256::from(unit)
    }

    /// Generates the next transaction of `kind` (touching the shared hot
    /// account, token, pool or slot if `hot`) and adds it to the block.
    fn push(&mut self, kind: SimpleKind, hot: bool) {
        let (sender, to, value, input) = match kind {
            SimpleKind::Raw => self.raw_transfer(hot),
            SimpleKind::Erc20 => self.erc20_transfer(hot),
            SimpleKind::Amm => self.amm_swap(hot),
            SimpleKind::HotSlot => self.hot_slot_bump(hot),
        };
        self.estimated_gas += estimate_gas(kind, hot, &input);
        let gas_limit = gas_limit_of(kind);
        self.gas_limit_sum += gas_limit;
        let nonce = self.nonces.entry(sender).or_default();
        let tx = TxEip1559 {
            chain_id: 1,
            nonce: *nonce,
            gas_limit,
            max_fee_per_gas: MAX_FEE_PER_GAS,
            max_priority_fee_per_gas: MAX_PRIORITY_FEE_PER_GAS,
            to: TxKind::Call(to),
            value,
            access_list: AccessList::default(),
            input: Bytes::from(input),
        };
        *nonce += 1;
        let signed = tx.into_signed(placeholder_signature());
        self.txs.push(Recovered::new_unchecked(
            TxEnvelope::Eip1559(signed),
            sender,
        ));
    }

    fn finish(self) -> Workload {
        let mut state = InMemoryState::new();
        // Senders start at nonce 0 with plenty of ether.
        for &address in self.nonces.keys() {
            state.insert_account(
                address,
                InMemoryAccount {
                    info: AccountInfo {
                        balance: U256::from(SENDER_ETH),
                        ..Default::default()
                    },
                    storage: Default::default(),
                },
            );
        }
        let mut storage = self.storage;
        for (token, supply) in &self.supply {
            storage
                .entry(*token)
                .or_default()
                .insert(U256::from(2), *supply);
        }
        for (&address, &code) in &self.contracts {
            let code = match code {
                Code::Erc20 => self.erc20.clone(),
                Code::AmmPair => self.amm_pair.clone(),
                Code::HotSlot => self.hot_slot.clone(),
            };
            state.insert_account(
                address,
                InMemoryAccount {
                    info: AccountInfo {
                        nonce: 1,
                        code: Some(code),
                        ..Default::default()
                    },
                    storage: storage.remove(&address).unwrap_or_default(),
                },
            );
        }
        debug_assert!(storage.is_empty(), "storage written outside contracts");

        let header = Header {
            number: 1,
            timestamp: 1_700_000_000,
            beneficiary: COINBASE,
            gas_limit: self.gas_limit_sum.max(MIN_BLOCK_GAS_LIMIT),
            base_fee_per_gas: Some(BASE_FEE),
            difficulty: U256::ZERO,
            mix_hash: B256::repeat_byte(0x42),
            withdrawals_root: Some(alloy_consensus::constants::EMPTY_WITHDRAWALS),
            ..Default::default()
        };
        let chain = Arc::new(ChainSpec::with_fork_from_genesis(
            1,
            alloy_hardforks::EthereumHardfork::Shanghai,
        ));
        Workload {
            block: BlockInput {
                header,
                transactions: self.txs,
                ommers: Vec::new(),
                withdrawals: Some(Vec::new()),
                chain,
            },
            state,
        }
    }
}

/// A generated call: sender, target, value and input.
type Call = (Address, Address, U256, Vec<u8>);

/// The placeholder signature of generated transactions (`r = s = 1`); it
/// does not recover to the sender, which the block carries instead.
fn placeholder_signature() -> Signature {
    Signature::new(U256::from(1), U256::from(1), false)
}
