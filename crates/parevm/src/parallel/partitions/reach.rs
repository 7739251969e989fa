//! What a call into code can reach, read from the code before it runs: the
//! accounts other than the caller and the called account that its
//! instructions can name, so that a transaction calling it can be keyed by
//! them ([`plan`](super::plan)) instead of being left to
//! Block-STM.
//!
//! Two answers, a quick one and a thorough one:
//! - [`runs_alone`]: the code has no instruction that names another account
//!   at all (a plain token, a counter).
//! - [`reach_within`]: the code is explored along every path from its entry, with
//!   each stack value tracked abstractly: a constant, a word of the call's
//!   input, the value of a fixed slot of the called account's storage, the
//!   caller, the account itself, or unknown. Every instruction that names an
//!   account (`CALL` and its kin, `BALANCE`, `EXTCODE*`) must name it by one
//!   of the first three, which the transaction and the pre-block state then
//!   resolve; anything else (an unknown address, a jump to an unknown
//!   target, a creation, `SELFDESTRUCT`, too many paths) leaves the reach
//!   unbounded. A Uniswap-V2-style pair calling the tokens stored in its
//!   slots, or one named in its input, has a bounded reach; a router that
//!   computes pair addresses does not. A call without input (a plain
//!   transfer, a payout) is explored along its paths without input only
//!   ([`Input::Empty`]): the branches that test the input's size or words
//!   are decided, so a proxy or forwarder whose functions reach anything
//!   is bounded by what its receive path reaches.
//!
//! The answer is a prediction, never trusted for correctness: the slots it
//! resolves may change during the block, and partition validation checks
//! every access anyway. It is sound in the sense that matters for speed:
//! every path is explored, so a bounded reach lists every account the code
//! can name, given its storage as it was.

use super::{code_cache::CodeCache, observation};
use crate::parallel::digest::Digested;
use crate::state::{StateError, StateSource};
use alloy_primitives::{Address, B256, U256, map::HashMap};
use revm::{
    bytecode::opcode::{self, OPCODE_INFO},
    primitives::KECCAK_EMPTY,
};
use smallvec::SmallVec;
use std::{
    collections::HashSet,
    hash::{BuildHasher, BuildHasherDefault},
    rc::Rc,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

/// The accounts a call reaches besides its sender and target.
type Reached = SmallVec<[Address; 4]>;

/// What the exploration of a code knows of the call's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Input {
    /// Any input: every path from the entry may be taken.
    Any,
    /// None, as in a plain transfer: `CALLDATASIZE` and every word of the
    /// input are zero, so the branches that test them are decided (a
    /// proxy that only accepts value without calldata never reaches its
    /// `DELEGATECALL`).
    Empty,
}

impl Input {
    /// What an input of `bytes` is taken for.
    fn of(bytes: &[u8]) -> Self {
        match bytes.is_empty() {
            true => Self::Empty,
            false => Self::Any,
        }
    }
}

/// What calls reach in one block's pre-block state, each code analysed once.
pub(crate) struct Reaches<'s, S: ?Sized> {
    state: &'s S,
    /// Instructions the block may still interpret analysing codes not
    /// analysed before, shared by the threads predicting it (see
    /// [`BLOCK_STEPS`]).
    budget: &'s AtomicUsize,
    by_code: HashMap<(B256, Input), Rc<Reach>>,
    /// Whether each code asked about reads a foreign balance
    /// ([`Self::reads_foreign_balance`]).
    observed: HashMap<B256, bool>,
    /// What an account without code reaches: nothing.
    no_code: Rc<Reach>,
    /// The last target asked about: a run of calls into one contract looks
    /// it up once.
    last: Option<(Address, Input, Rc<Reach>)>,
}

impl<'s, S: StateSource + ?Sized> Reaches<'s, S> {
    /// For a block running on `state`, analysing at most `budget` more
    /// instructions (a budget to share starts at [`BLOCK_STEPS`]).
    pub(crate) fn new(state: &'s S, budget: &'s AtomicUsize) -> Self {
        Self {
            state,
            budget,
            by_code: HashMap::default(),
            observed: HashMap::default(),
            no_code: Rc::new(Reach::Alone),
            last: None,
        }
    }

    /// The accounts a call into `to` with `input` reaches besides its
    /// sender and `to`, or `None` if that is unbounded. Each account reached
    /// must itself run alone: what it reaches in turn is not followed.
    pub(crate) fn of_call(
        &mut self,
        to: &Address,
        input: &[u8],
    ) -> Result<Option<Reached>, StateError> {
        let known_input = Input::of(input);
        let target = match &self.last {
            Some((known, known_for, reach)) if known == to && *known_for == known_input => {
                reach.clone()
            }
            _ => {
                let reach = self.of_account(to, known_input)?;
                self.last = Some((*to, known_input, reach.clone()));
                reach
            }
        };
        let sources = match &*target {
            Reach::Alone => return Ok(Some(Reached::new())),
            Reach::Unbounded => return Ok(None),
            Reach::Through { sources, .. } => sources,
        };
        let mut reached = Reached::new();
        for source in sources {
            let address = source.resolve(input, |slot| self.state.storage(to, slot))?;
            if address == *to || reached.contains(&address) {
                continue;
            }
            if !self.runs_alone(&address)? {
                return Ok(None);
            }
            reached.push(address);
        }
        Ok(Some(reached))
    }

    /// Whether `address` has code (a plain transfer to it runs that code).
    pub(crate) fn has_code(&self, address: &Address) -> Result<bool, StateError> {
        Ok(self
            .state
            .code_hash(address)?
            .is_some_and(|hash| hash != KECCAK_EMPTY))
    }

    /// The accounts a payout into `to` may pay or change besides its
    /// sender and `to` (a forwarder's destination), or `None` if it can
    /// read a balance other than that of the code running
    /// ([`observation`]): its own code can, or the code of an account it
    /// names by a constant or a slot of its storage (a proxy's
    /// implementation, a forwarder's destination), or it names accounts
    /// that cannot be told before it runs. A payout carries no calldata,
    /// so only the code's paths without input count. Codes further on are
    /// checked as the payout runs.
    pub(crate) fn of_payout(&mut self, to: &Address) -> Result<Option<Reached>, StateError> {
        let code_hash = match self.state.code_hash(to)? {
            Some(hash) if hash != KECCAK_EMPTY => hash,
            // Most payouts: into an account without code.
            _ => return Ok(Some(Reached::new())),
        };
        if self.code_reads_foreign_balance(code_hash)? {
            return Ok(None);
        }
        let reach = self.of_account(to, Input::Empty)?;
        let (sources, called) = match &*reach {
            Reach::Alone => return Ok(Some(Reached::new())),
            Reach::Unbounded => return Ok(None),
            Reach::Through { sources, called } => (sources, *called),
        };
        let mut reached = Reached::new();
        for (index, source) in sources.iter().enumerate() {
            let address = source.resolve(&[], |slot| self.state.storage(to, slot))?;
            if self.reads_foreign_balance(&address)? {
                return Ok(None);
            }
            // Keyed only if the payout may change it: code it merely reads
            // or runs as its own (a proxy's implementation, which every
            // proxy of it shares) joins nothing.
            let may_change = index >= 64 || called & (1 << index) != 0;
            if may_change && address != *to && !reached.contains(&address) {
                reached.push(address);
            }
        }
        Ok(Some(reached))
    }

    /// Whether the code of `address` can read a balance not its own
    /// ([`observation::reads_foreign_balance`]), scanned once per code (and
    /// remembered for the process: [`observation::scanned`]); false without
    /// code.
    fn reads_foreign_balance(&mut self, address: &Address) -> Result<bool, StateError> {
        match self.state.code_hash(address)? {
            Some(hash) if hash != KECCAK_EMPTY => self.code_reads_foreign_balance(hash),
            _ => Ok(false),
        }
    }

    /// Whether the code with `code_hash` can read a balance not its own.
    fn code_reads_foreign_balance(&mut self, code_hash: B256) -> Result<bool, StateError> {
        if let Some(&known) = self.observed.get(&code_hash) {
            return Ok(known);
        }
        let known = match observation::scanned(&code_hash) {
            Some(known) => known,
            None => {
                let code = self.state.code_by_hash(&code_hash)?;
                observation::scan(&code_hash, code.original_byte_slice())
            }
        };
        self.observed.insert(code_hash, known);
        Ok(known)
    }

    /// Whether a call into `address` reaches nothing else. Not remembered
    /// per address, only per code: a token many calls reach has its code
    /// hash in cache, and on 5,000 swaps each with tokens of its own, a
    /// map of the answers grew to 10,000 entries that no call asked again
    /// (the plan took 3.55-3.68 ms with it, 3.07-3.22 ms without).
    fn runs_alone(&mut self, address: &Address) -> Result<bool, StateError> {
        Ok(*self.of_account(address, Input::Any)? == Reach::Alone)
    }

    /// What a call into `address` with `input` reaches; an account
    /// without code runs nothing.
    fn of_account(&mut self, address: &Address, input: Input) -> Result<Rc<Reach>, StateError> {
        let code_hash = match self.state.code_hash(address)? {
            Some(hash) if hash != KECCAK_EMPTY => hash,
            _ => return Ok(self.no_code.clone()),
        };
        if let Some(known) = self.by_code.get(&(code_hash, input)) {
            return Ok(known.clone());
        }
        let known = match ANALYSED.get(&(code_hash, input)) {
            // A copy of this thread's own: the shared one's reference count
            // would bounce between the threads predicting.
            Some(known) => Reach::clone(&known),
            None => self.analyse(&code_hash, input)?,
        };
        let known = Rc::new(known);
        self.by_code.insert((code_hash, input), known.clone());
        Ok(known)
    }

    /// Analyses the code with `code_hash` for `input` within what is left
    /// of the block's budget, and remembers the answer for the process
    /// unless the budget, not the code, cut it short.
    fn analyse(&self, code_hash: &B256, input: Input) -> Result<Reach, StateError> {
        let left = self.budget.load(Ordering::Relaxed);
        if left == 0 {
            return Ok(Reach::Unbounded);
        }
        let code = self.state.code_by_hash(code_hash)?;
        let limit = left.min(MAX_STEPS);
        let (known, steps) = reach_within(code.original_byte_slice(), input, limit);
        // Another thread may have spent some meanwhile: saturate at zero.
        let _ = self
            .budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                Some(left.saturating_sub(steps))
            });
        if limit == MAX_STEPS || steps <= limit {
            ANALYSED.insert((*code_hash, input), Arc::new(known.clone()));
        }
        Ok(known)
    }
}

/// What a call into some code can reach besides its caller and itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Nothing: it names no other account.
    Alone,
    /// The accounts these sources name, and nothing else.
    Through {
        /// Where each account named takes its address from.
        sources: Vec<Source>,
        /// Which of them a `CALL` names (bit `i`: `sources[i]`; every one
        /// from the 64th on counts as called): the accounts the code can
        /// pay or change. It only reads the others, or runs their code as
        /// its own (`DELEGATECALL`, `CALLCODE`, `STATICCALL`, `BALANCE`,
        /// `EXTCODE*`).
        called: u64,
    },
    /// Accounts that cannot be told before running it.
    Unbounded,
}

/// Where a call reached through [`Reach::Through`] takes its address from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Source {
    /// An address written in the code.
    Constant(Address),
    /// The 32-byte word of the call's input at this offset.
    Input(usize),
    /// The called account's storage slot.
    Slot(U256),
}

impl Source {
    /// The address this source names for a call with `input`, reading the
    /// called account's storage with `slot`.
    pub(crate) fn resolve<E>(
        &self,
        input: &[u8],
        slot: impl FnOnce(&U256) -> Result<U256, E>,
    ) -> Result<Address, E> {
        Ok(match self {
            Self::Constant(address) => *address,
            Self::Input(offset) => {
                // Input past its end reads as zeros, as `CALLDATALOAD` does.
                let mut word = [0u8; 32];
                if let Some(tail) = input.get(*offset..) {
                    let len = tail.len().min(32);
                    word[..len].copy_from_slice(&tail[..len]);
                }
                Address::from_word(word.into())
            }
            Self::Slot(key) => Address::from_word(slot(key)?.into()),
        })
    }
}

/// Reaches of the codes analysed in this process, by code hash and what
/// was known of the input: analysing a large one takes up to a few tenths
/// of a millisecond. At most 16,384: about a megabyte.
static ANALYSED: CodeCache<(B256, Input), Arc<Reach>> = CodeCache::new(16_384);

/// The most distinct (position, stack) states explored in one code: a
/// large contract's functions each take tens; past this the reach is
/// given up as unbounded.
const MAX_STATES: usize = 1024;

/// The most instructions interpreted in one code, bounding the time an
/// analysis takes.
const MAX_STEPS: usize = 20_000;

/// How many states a position is explored in with every constant kept,
/// before small ones are forgotten ([`Explorer::widen`]).
const PRECISE_CONTEXTS: u8 = 4;

/// Constants below this are taken for amounts and offsets, not addresses,
/// and forgotten at jumps unless they are jump targets (see
/// [`Explorer::widen`]).
const WIDEST_SMALL_CONSTANT: U256 = U256::from_limbs([0, 1, 0, 0]);

/// The deepest stack explored: compiled code stays far below it, and each
/// branch copies the stack, so a path built to grow it would otherwise
/// make every step expensive.
const MAX_STACK: usize = 128;

/// The highest address taken for a precompile: calls to those touch no state
/// that another transaction writes, so they key nothing.
const LAST_PRECOMPILE: u64 = 0x1ff;

/// Instructions one block may interpret analysing codes it is the first to
/// call (a few milliseconds' worth): without a limit, a block calling a
/// thousand fresh contracts each built to take [`MAX_STEPS`] would spend
/// most of a second predicting. Codes past it are taken as unbounded.
pub(crate) const BLOCK_STEPS: usize = 100_000;

/// What `code` can reach when called with any input (see the module docs).
#[cfg(test)]
pub(crate) fn reach(code: &[u8]) -> Reach {
    reach_within(code, Input::Any, MAX_STEPS).0
}

/// What `code` can reach when called with `input`, interpreting at most
/// `max_steps` instructions (unbounded past them); with the instructions
/// interpreted.
fn reach_within(code: &[u8], input: Input, max_steps: usize) -> (Reach, usize) {
    if code.first() == Some(&0xef) {
        return (Reach::Unbounded, 0);
    }
    if runs_alone(code) {
        return (Reach::Alone, 0);
    }
    let mut explorer = Explorer::new(code, input, max_steps);
    let reach = match explorer.run() {
        Err(Unbounded) => Reach::Unbounded,
        Ok(()) if explorer.sources.is_empty() => Reach::Alone,
        Ok(()) => Reach::Through {
            sources: std::mem::take(&mut explorer.sources),
            called: explorer.called,
        },
    };
    (reach, explorer.steps)
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
fn runs_alone(code: &[u8]) -> bool {
    if code.first() == Some(&0xef) {
        return false;
    }
    let code = without_solidity_metadata(code);
    let mut pc = 0;
    while let Some(&op) = code.get(pc) {
        if names_account(op) {
            return false;
        }
        pc += 1 + push_size(op);
    }
    true
}

/// Whether `op` names an account other than the running one: `BALANCE`,
/// `EXTCODESIZE`, `EXTCODECOPY`, `EXTCODEHASH`, `CREATE`, `CALL`,
/// `CALLCODE`, `DELEGATECALL`, `CREATE2`, `STATICCALL`, `SELFDESTRUCT`.
fn names_account(op: u8) -> bool {
    matches!(
        op,
        0x31 | 0x3b | 0x3c | 0x3f | 0xf0 | 0xf1 | 0xf2 | 0xf4 | 0xf5 | 0xfa | 0xff
    )
}

/// The bytes `op` pushes after itself (`PUSH1`..`PUSH32`), else 0.
fn push_size(op: u8) -> usize {
    match op {
        opcode::PUSH1..=opcode::PUSH32 => usize::from(op - opcode::PUSH0),
        _ => 0,
    }
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

/// The exploration met something it cannot bound.
struct Unbounded;

/// A stack value, as far as the exploration knows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Value {
    Unknown,
    Constant(U256),
    /// `CALLDATALOAD` at a constant offset.
    Input(usize),
    /// `SLOAD` of a constant slot.
    Slot(U256),
    /// `CALLER`: the transaction's sender, keyed already.
    Caller,
    /// `ADDRESS`: the called account, keyed already.
    Own,
}

/// The low 160 bits: what `AND` keeps of an address.
const ADDRESS_MASK: U256 = U256::from_limbs([u64::MAX, u64::MAX, u32::MAX as u64, 0]);

/// A depth-first walk over every path of one code.
struct Explorer<'c> {
    code: &'c [u8],
    input: Input,
    jump_dests: Vec<bool>,
    /// Jump targets already queued, with the stack they were reached with,
    /// as 64-bit hashes (a collision, at most a few thousand states, is
    /// about as likely as a cosmic ray, and would only skip one path of a
    /// prediction that validation checks anyway).
    seen: HashSet<u64, BuildHasherDefault<Digested>>,
    hasher: alloy_primitives::map::foldhash::fast::FixedState,
    /// How many states each position was queued with.
    contexts: Vec<u8>,
    pending: Vec<(usize, Vec<Value>)>,
    sources: Vec<Source>,
    /// Which of `sources` a `CALL` names ([`Reach::Through`]).
    called: u64,
    steps: usize,
    max_steps: usize,
}

impl<'c> Explorer<'c> {
    fn new(code: &'c [u8], input: Input, max_steps: usize) -> Self {
        let mut jump_dests = vec![false; code.len()];
        let mut pc = 0;
        while let Some(&op) = code.get(pc) {
            jump_dests[pc] = op == opcode::JUMPDEST;
            pc += 1 + push_size(op);
        }
        Self {
            code,
            input,
            jump_dests,
            seen: HashSet::default(),
            hasher: alloy_primitives::map::foldhash::fast::FixedState::default(),
            contexts: vec![0; code.len()],
            pending: vec![(0, Vec::new())],
            sources: Vec::new(),
            called: 0,
            steps: 0,
            max_steps,
        }
    }

    /// Collects into `sources` every source the code's instructions name
    /// an account by.
    fn run(&mut self) -> Result<(), Unbounded> {
        while let Some((pc, stack)) = self.pending.pop() {
            self.walk(pc, stack)?;
        }
        Ok(())
    }

    /// Follows one path from `pc` until it ends or jumps; jumps are queued.
    fn walk(&mut self, mut pc: usize, mut stack: Vec<Value>) -> Result<(), Unbounded> {
        loop {
            self.steps += 1;
            if self.steps > self.max_steps {
                return Err(Unbounded);
            }
            // Past the end the EVM reads `STOP`.
            let op = self.code.get(pc).copied().unwrap_or(opcode::STOP);
            if stack.len() > MAX_STACK {
                return Err(Unbounded);
            }
            match op {
                opcode::JUMP => {
                    let Some(target) = stack.pop() else {
                        return Ok(());
                    };
                    return self.jump(target, stack);
                }
                opcode::JUMPI => {
                    let (Some(target), Some(condition)) = (stack.pop(), stack.pop()) else {
                        return Ok(());
                    };
                    // A condition the exploration knows takes one way only.
                    match condition {
                        Value::Constant(c) if c.is_zero() => {}
                        Value::Constant(_) => return self.jump(target, stack),
                        _ => self.jump(target, stack.clone())?,
                    }
                }
                opcode::PUSH0..=opcode::PUSH32 => {
                    let size = push_size(op);
                    let mut word = [0u8; 32];
                    for (i, byte) in (pc + 1..pc + 1 + size).enumerate() {
                        word[32 - size + i] = self.code.get(byte).copied().unwrap_or(0);
                    }
                    stack.push(Value::Constant(U256::from_be_bytes(word)));
                    pc += size;
                }
                opcode::DUP1..=opcode::DUP16 => {
                    let depth = usize::from(op - opcode::DUP1) + 1;
                    let Some(value) = stack.len().checked_sub(depth).map(|i| stack[i].clone())
                    else {
                        return Ok(());
                    };
                    stack.push(value);
                }
                opcode::SWAP1..=opcode::SWAP16 => {
                    let depth = usize::from(op - opcode::SWAP1) + 1;
                    // Too few values halts the path, as in the EVM.
                    let Some(other) = stack.len().checked_sub(depth + 1) else {
                        return Ok(());
                    };
                    let top = stack.len() - 1;
                    stack.swap(top, other);
                }
                opcode::CREATE | opcode::CREATE2 | opcode::SELFDESTRUCT => return Err(Unbounded),
                // Stack instructions with immediates (EIP-8024): not modelled.
                opcode::DUPN | opcode::SWAPN | opcode::EXCHANGE => return Err(Unbounded),
                _ => {
                    if !self.step(op, &mut stack)? {
                        return Ok(());
                    }
                }
            }
            if OPCODE_INFO[usize::from(op)].is_some_and(|info| info.is_terminating()) {
                return Ok(());
            }
            pc += 1;
        }
    }

    /// Applies an instruction without immediates or control flow to
    /// `stack`; `false` if it halts the path (undefined, or too few values).
    fn step(&mut self, op: u8, stack: &mut Vec<Value>) -> Result<bool, Unbounded> {
        let Some(info) = OPCODE_INFO[usize::from(op)] else {
            return Ok(false);
        };
        let inputs = usize::from(info.inputs());
        let Some(base) = stack.len().checked_sub(inputs) else {
            return Ok(false);
        };
        let args = &stack[base..];
        // Arguments are listed top first.
        let arg = |i: usize| &args[inputs - 1 - i];
        let named = match op {
            opcode::CALL | opcode::CALLCODE | opcode::DELEGATECALL | opcode::STATICCALL => {
                Some(arg(1))
            }
            opcode::BALANCE | opcode::EXTCODESIZE | opcode::EXTCODECOPY | opcode::EXTCODEHASH => {
                Some(arg(0))
            }
            _ => None,
        };
        if let Some(named) = named {
            self.name(named, op == opcode::CALL)?;
        }
        let result = match (op, inputs) {
            (opcode::CALLDATALOAD | opcode::CALLDATASIZE, _) if self.input == Input::Empty => {
                Value::Constant(U256::ZERO)
            }
            (opcode::CALLDATALOAD, _) => match arg(0) {
                Value::Constant(offset) => usize::try_from(*offset)
                    .map(Value::Input)
                    .unwrap_or(Value::Unknown),
                _ => Value::Unknown,
            },
            (opcode::SLOAD, _) => match arg(0) {
                Value::Constant(key) => Value::Slot(*key),
                _ => Value::Unknown,
            },
            (opcode::CALLER, _) => Value::Caller,
            (opcode::ADDRESS, _) => Value::Own,
            (opcode::AND, _) => and(arg(0), arg(1)),
            // Solidity reads an address at offset 0 of a slot as
            // `sload(slot) / 0x100 ** 0`.
            (opcode::DIV, _) if *arg(1) == Value::Constant(U256::from(1)) => arg(0).clone(),
            (_, 1) | (_, 2) => fold(op, args).unwrap_or(Value::Unknown),
            _ => Value::Unknown,
        };
        stack.truncate(base);
        if info.outputs() > 0 {
            stack.push(result);
        }
        Ok(true)
    }

    /// Queues the jump to `target` with `stack`, unless already explored.
    fn jump(&mut self, target: Value, mut stack: Vec<Value>) -> Result<(), Unbounded> {
        let Value::Constant(target) = target else {
            return Err(Unbounded);
        };
        let Some(pc) = usize::try_from(target)
            .ok()
            .filter(|pc| self.jump_dests.get(*pc) == Some(&true))
        else {
            // An invalid jump halts the path.
            return Ok(());
        };
        if self.seen.len() >= MAX_STATES {
            return Err(Unbounded);
        }
        if self.contexts[pc] >= PRECISE_CONTEXTS {
            self.widen(&mut stack);
        }
        if self.seen.insert(self.hasher.hash_one((pc, &stack))) {
            self.contexts[pc] = self.contexts[pc].saturating_add(1);
            self.pending.push((pc, stack));
        }
        Ok(())
    }

    /// Forgets the small constants on `stack` that cannot be jump targets
    /// (amounts, memory offsets, lengths), once a position was reached in
    /// [`PRECISE_CONTEXTS`] states: the paths into one internal function
    /// from many call sites then meet in a few states. They differ mostly in
    /// such constants, while what the exploration needs across a jump is
    /// return addresses (jump targets) and addresses (large, or not
    /// constants at all). The first contexts keep their constants: an input
    /// offset is one, passed to the ABI decoder's functions.
    fn widen(&self, stack: &mut [Value]) {
        for value in stack {
            if let Value::Constant(c) = value
                && *c < WIDEST_SMALL_CONSTANT
                && usize::try_from(*c)
                    .ok()
                    .and_then(|pc| self.jump_dests.get(pc))
                    != Some(&true)
            {
                *value = Value::Unknown;
            }
        }
    }

    /// Notes that an instruction names the account `value` (a `CALL`, if
    /// `called`).
    fn name(&mut self, value: &Value, called: bool) -> Result<(), Unbounded> {
        let source = match value {
            Value::Constant(word) => {
                let address = Address::from_word((*word).into());
                if U256::from_be_slice(address.as_slice()) <= U256::from(LAST_PRECOMPILE) {
                    return Ok(());
                }
                Source::Constant(address)
            }
            Value::Input(offset) => Source::Input(*offset),
            Value::Slot(key) => Source::Slot(*key),
            Value::Caller | Value::Own => return Ok(()),
            Value::Unknown => return Err(Unbounded),
        };
        let index = match self.sources.iter().position(|s| *s == source) {
            Some(index) => index,
            None => {
                self.sources.push(source);
                self.sources.len() - 1
            }
        };
        if called && index < 64 {
            self.called |= 1 << index;
        }
        Ok(())
    }
}

/// `AND` of two values: masking an address to its 160 bits keeps it.
fn and(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Constant(x), Value::Constant(y)) => Value::Constant(x & y),
        (Value::Constant(mask), other) | (other, Value::Constant(mask))
            if mask & ADDRESS_MASK == ADDRESS_MASK =>
        {
            other.clone()
        }
        _ => Value::Unknown,
    }
}

/// Folds the constant arithmetic Solidity builds masks and jump targets
/// with (`SUB`, `EXP`, `SHL`, `SHR`, `OR`, `NOT`), and selects a function
/// by (`DIV`, `ISZERO`, `EQ`, `LT`, `GT`: with no input, every selector
/// test is decided); `None` otherwise. `ADD` is left out on purpose: a
/// loop counter would take a new value each turn.
fn fold(op: u8, args: &[Value]) -> Option<Value> {
    let constant = |i: usize| match args.get(args.len().checked_sub(1 + i)?) {
        Some(Value::Constant(c)) => Some(*c),
        _ => None,
    };
    // Shifts of 256 bits or more give zero, which `U256`'s shifts do too.
    let shift = |by: U256| usize::try_from(by).unwrap_or(usize::MAX).min(256);
    let value = match op {
        opcode::NOT => !constant(0)?,
        opcode::SUB => constant(0)?.wrapping_sub(constant(1)?),
        opcode::EXP => constant(0)?.wrapping_pow(constant(1)?),
        opcode::OR => constant(0)? | constant(1)?,
        opcode::SHL => constant(1)? << shift(constant(0)?),
        opcode::SHR => constant(1)? >> shift(constant(0)?),
        opcode::DIV => constant(0)?.checked_div(constant(1)?).unwrap_or_default(),
        opcode::ISZERO => U256::from(constant(0)?.is_zero()),
        opcode::EQ => U256::from(constant(0)? == constant(1)?),
        opcode::LT => U256::from(constant(0)? < constant(1)?),
        opcode::GT => U256::from(constant(0)? > constant(1)?),
        _ => return None,
    };
    Some(Value::Constant(value))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(reach(&delegation), Reach::Unbounded);
        // Solidity's metadata is not code: a CALL byte in its hash is ignored.
        let mut with_metadata = vec![0x00, 0xfe, 0xa1, 0x41, 0xf1];
        with_metadata.extend_from_slice(&3u16.to_be_bytes());
        assert!(runs_alone(&with_metadata));
        assert!(!runs_alone(&with_metadata[..5]));
        // Without the INVALID before it, it is not taken for metadata.
        with_metadata[1] = 0x00;
        assert!(!runs_alone(&with_metadata));
    }

    /// `CALL(gas, target, 0, 0, 0, 0, 0)` with `target` pushed by `target`.
    fn call(target: &[u8]) -> Vec<u8> {
        let mut code = vec![0x5f, 0x5f, 0x5f, 0x5f, 0x5f];
        code.extend_from_slice(target);
        code.extend_from_slice(&[0x5a, 0xf1, 0x50]);
        code
    }

    #[test]
    fn calls_to_input_slot_and_constant_addresses_are_bounded() {
        // CALLDATALOAD(4), masked by PUSH20 0xff..ff AND.
        let mut input = vec![0x60, 0x04, 0x35, 0x73];
        input.extend_from_slice(&[0xff; 20]);
        input.push(0x16);
        // SLOAD(1), masked by Solidity's `1 << 160 - 1`.
        let slot = [
            0x60, 0x01, 0x54, 0x60, 0x01, 0x60, 0x01, 0x60, 0xa0, 0x1b, 0x03, 0x16,
        ];
        let mut constant = vec![0x73];
        constant.extend_from_slice(&[0x42; 20]);
        let mut code = call(&input);
        code.extend(call(&slot));
        code.extend(call(&constant));
        // The caller and a precompile name nothing new.
        code.extend(call(&[0x33]));
        code.extend(call(&[0x60, 0x01]));
        code.push(0x00);
        assert_eq!(
            reach(&code),
            Reach::Through {
                sources: vec![
                    Source::Input(4),
                    Source::Slot(U256::from(1)),
                    Source::Constant(Address::repeat_byte(0x42)),
                ],
                called: 0b111,
            }
        );
    }

    #[test]
    fn every_branch_is_explored() {
        // PUSH1 0 CALLDATALOAD PUSH1 :target JUMPI STOP; target: JUMPDEST <call slot 7> STOP
        let mut code = vec![0x5f, 0x35, 0x60, 0x06, 0x57, 0x00, 0x5b];
        code.extend(call(&[0x60, 0x07, 0x54]));
        code.push(0x00);
        assert_eq!(
            reach(&code),
            Reach::Through {
                sources: vec![Source::Slot(U256::from(7))],
                called: 1,
            }
        );
        // An unreachable call does not count.
        let mut unreachable = vec![0x00];
        unreachable.extend(call(&[0x5a]));
        assert_eq!(reach(&unreachable), Reach::Alone);
    }

    #[test]
    fn unknown_targets_leave_the_reach_unbounded() {
        // A target from memory, from a computed slot, or a jump to a
        // computed place.
        for target in [&[0x5f, 0x51][..], &[0x5f, 0x35, 0x54], &[0x5a]] {
            assert_eq!(reach(&call(target)), Reach::Unbounded, "{target:x?}");
        }
        let mut computed_jump = vec![0x5f, 0x35, 0x56, 0x5b];
        computed_jump.extend(call(&[0x33]));
        assert_eq!(reach(&computed_jump), Reach::Unbounded);
        // Creations and SELFDESTRUCT, even to a known beneficiary.
        assert_eq!(reach(&[0x33, 0xff]), Reach::Unbounded);
        assert_eq!(reach(&[0x5f, 0x5f, 0x5f, 0xf0]), Reach::Unbounded);
    }

    #[test]
    fn too_few_stack_values_halt_the_path() {
        // SWAP1 and DUP1 on an empty stack, JUMP and JUMPI without a target,
        // a CALL short of arguments: each halts there, so the CALL after
        // the first of them is never reached.
        for start in [0x90, 0x80, 0x56, 0x57, 0xf1] {
            assert_eq!(
                reach(&[start, 0x33, 0x5a, 0xf1]),
                Reach::Alone,
                "{start:#x}"
            );
        }
        // With one value, SWAP1 still halts; DUP1 goes on to a call whose
        // target is unknown.
        let mut swap = vec![0x5f, 0x90];
        swap.extend(call(&[0x5a]));
        assert_eq!(reach(&swap), Reach::Alone);
        let mut dup = vec![0x5f, 0x80];
        dup.extend(call(&[0x5a]));
        assert_eq!(reach(&dup), Reach::Unbounded);
    }

    #[test]
    fn loops_end_and_endless_paths_are_cut_off() {
        // PUSH0; loop: JUMPDEST PUSH1 1 ADD PUSH1 :loop JUMP. The counter is
        // unknown after one turn, so the loop's states repeat and it ends.
        let adding = [0x5f, 0x5b, 0x60, 0x01, 0x01, 0x60, 0x01, 0x56];
        assert_eq!(reach(&adding), Reach::Alone);
        // PUSH1 1; loop: JUMPDEST PUSH1 1 SWAP1 SUB PUSH1 :loop JUMP: a
        // counter folded as a constant takes a new value each turn, until
        // the exploration gives up.
        let counting = [
            0x60, 0x01, 0x5b, 0x60, 0x01, 0x90, 0x03, 0x60, 0x02, 0x56, 0xf1,
        ];
        assert_eq!(reach(&counting), Reach::Unbounded);
        // A loop that grows the stack each turn is cut off at its limit.
        let growing = [0x5b, 0x5a, 0x5f, 0x56, 0xf1];
        assert_eq!(reach(&growing), Reach::Unbounded);
    }

    #[test]
    fn shifts_and_masks_fold_like_the_evm() {
        let c = |v: u64| Value::Constant(U256::from(v));
        // Arguments top last, as on the stack.
        assert_eq!(fold(opcode::SHL, &[c(1), c(4)]), Some(c(16)));
        assert_eq!(fold(opcode::SHR, &[c(16), c(300)]), Some(c(0)));
        assert_eq!(fold(opcode::SUB, &[c(1), c(3)]), Some(c(2)));
        assert_eq!(fold(opcode::SHL, &[Value::Unknown, c(4)]), None);
        assert_eq!(and(&c(0xff), &Value::Caller), Value::Unknown);
        let mask = Value::Constant(ADDRESS_MASK);
        assert_eq!(and(&mask, &Value::Input(4)), Value::Input(4));
    }

    #[test]
    fn a_spent_budget_leaves_new_codes_unbounded_and_unremembered() {
        use crate::state::{InMemoryAccount, InMemoryState};
        use revm::{bytecode::Bytecode, state::AccountInfo};
        // Calls the contract in slot 7; the trailing bytes make the code
        // (and its hash) this test's own.
        let mut code = call(&[0x60, 0x07, 0x54]);
        code.extend_from_slice(&[0x00, 0x5e, 0x5e, 0xd5]);
        let target = Address::repeat_byte(0x77);
        let mut state = InMemoryState::new();
        let info = AccountInfo {
            code: Some(Bytecode::new_raw(code.into())),
            ..Default::default()
        };
        let storage = Default::default();
        state.insert_account(target, InMemoryAccount { info, storage });
        let spent = AtomicUsize::new(0);
        assert_eq!(Reaches::new(&state, &spent).of_call(&target, &[]), Ok(None));
        let budget = AtomicUsize::new(BLOCK_STEPS);
        let reached = Reaches::new(&state, &budget).of_call(&target, &[]);
        // Slot 7 is empty: the call reaches the zero address, which has no code.
        assert_eq!(
            reached.map(|r| r.map(|r| r.to_vec())),
            Ok(Some(vec![Address::ZERO]))
        );
        assert!(budget.into_inner() < BLOCK_STEPS);
        assert_eq!(
            reach_within(&call(&[0x33]), Input::Any, 3),
            (Reach::Unbounded, 4)
        );
    }

    #[test]
    fn input_words_resolve_past_the_end_as_zeros() {
        let mut input = vec![0u8; 4];
        input.extend_from_slice(&[0u8; 12]);
        input.extend_from_slice(&[0x11; 20]);
        let slot = |_: &U256| Ok::<_, ()>(U256::from(0x22));
        assert_eq!(
            Source::Input(4).resolve(&input, slot),
            Ok(Address::repeat_byte(0x11))
        );
        assert_eq!(Source::Input(40).resolve(&input, slot), Ok(Address::ZERO));
        assert_eq!(
            Source::Slot(U256::ZERO).resolve(&input, slot),
            Ok(Address::with_last_byte(0x22))
        );
    }

    /// A forwarder: without calldata it sends the value on to the address
    /// in its slot 0; with calldata it delegates to an address it reads
    /// from memory, which no analysis can tell.
    fn forwarder() -> Vec<u8> {
        let mut code = vec![0x36, 0x15, 0x60, 0x0f, 0x57]; // CALLDATASIZE ISZERO PUSH1 15 JUMPI
        code.extend_from_slice(&[0x5f, 0x5f, 0x5f, 0x5f, 0x60, 0x40, 0x51]); // .., MLOAD(0x40)
        code.extend_from_slice(&[0x5a, 0xf4, 0x00]); // GAS DELEGATECALL STOP
        code.extend_from_slice(&[0x5b, 0x5f, 0x5f, 0x5f, 0x5f, 0x34]); // 15: JUMPDEST .. CALLVALUE
        code.extend_from_slice(&[0x5f, 0x54, 0x5a, 0xf1, 0x50, 0x00]); // SLOAD(0) GAS CALL POP STOP
        code
    }

    #[test]
    fn without_input_only_the_paths_without_input_count() {
        let code = forwarder();
        assert_eq!(reach(&code), Reach::Unbounded);
        let (without_input, _) = reach_within(&code, Input::Empty, MAX_STEPS);
        assert_eq!(
            without_input,
            Reach::Through {
                sources: vec![Source::Slot(U256::ZERO)],
                called: 1,
            }
        );
    }

    #[test]
    fn a_selector_test_without_input_is_decided() {
        // PUSH1 0 CALLDATALOAD PUSH1 0xe0 SHR PUSH4 sel EQ PUSH1 dest JUMPI
        // STOP; dest: JUMPDEST, a call to an address read from memory.
        let mut code = vec![0x60, 0x00, 0x35, 0x60, 0xe0, 0x1c];
        code.extend_from_slice(&[0x63, 0xa9, 0x05, 0x9c, 0xbb, 0x14, 0x60, 0x11, 0x57, 0x00]);
        assert_eq!(code.len(), 0x10);
        code.push(0x00);
        code.push(0x5b);
        code.extend(call(&[0x60, 0x40, 0x51]));
        assert_eq!(reach(&code), Reach::Unbounded);
        assert_eq!(reach_within(&code, Input::Empty, MAX_STEPS).0, Reach::Alone);
    }

    #[test]
    fn an_address_at_offset_zero_of_a_slot_is_the_slot() {
        // SLOAD(0) / 0x100 ** 0, as older Solidity reads it.
        let target = [0x5f, 0x54, 0x60, 0x00, 0x61, 0x01, 0x00, 0x0a, 0x90, 0x04];
        assert_eq!(
            reach(&call(&target)),
            Reach::Through {
                sources: vec![Source::Slot(U256::ZERO)],
                called: 1,
            }
        );
    }

    #[test]
    fn only_what_a_call_names_counts_as_called() {
        // DELEGATECALL to slot 0, STATICCALL and BALANCE of slot 1, CALL
        // to slot 1.
        let mut code = vec![0x5f, 0x5f, 0x5f, 0x5f, 0x5f, 0x54, 0x5a, 0xf4, 0x50];
        code.extend_from_slice(&[0x5f, 0x5f, 0x5f, 0x5f, 0x60, 0x01, 0x54, 0x5a, 0xfa, 0x50]);
        code.extend_from_slice(&[0x60, 0x01, 0x54, 0x31, 0x50]);
        code.extend(call(&[0x60, 0x01, 0x54]));
        code.push(0x00);
        assert_eq!(
            reach(&code),
            Reach::Through {
                sources: vec![Source::Slot(U256::ZERO), Source::Slot(U256::from(1))],
                called: 0b10,
            }
        );
    }
}
