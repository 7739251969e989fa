//! Executing one incarnation: revm runs the transaction against [`VmDb`],
//! which reads through multi-version memory and records the read set; the
//! resulting state diff becomes the write set.
//!
//! Three kinds of balance reads are made lazy, so they create no dependency:
//! - the beneficiary's fee: [`LazyBeneficiary`] lets revm credit the fee, but
//!   if that credit is the transaction's first touch of the beneficiary, the
//!   database serves a zero-balance placeholder and the credit becomes a
//!   [`WriteValue::BalanceIncrement`];
//! - the recipient of a plain value transfer (a call with value to an account
//!   without code, not in a 7702 transaction): its balance is never observed
//!   by the EVM, so it too is served as a placeholder and credited by increment;
//! - any other account with code or a nonce whose balance the EVM does not
//!   observe (see `balance_watch.rs`): it is served in full, since the EVM
//!   might still observe it, but recorded as read only if it did; if not,
//!   the transaction's change to it becomes an increment. Calling WETH or
//!   tipping a builder from a contract thus no longer waits for every
//!   earlier deposit or tip. If the account sent value, the read recorded
//!   is a lower bound ([`ReadValue::BalanceAtLeast`]): enough to cover it.
//!
//! The sender's balance is watched too: revm checks up front that it covers
//! the most the transaction can take, which is a bound like a value sent.
//!
//! A transaction that does observe such a balance (`BALANCE`, sending value
//! it cannot cover) reads it in full, resolving every increment below it,
//! and validation re-checks that full value.

use super::{
    balance_watch::{self, BalanceWatchDb, WatchedBalances},
    block_gas::TxGas,
    fee_credit::{FeeCreditDb, LazyBeneficiary, ParallelEvm, parallel_evm},
    mv_memory::{Blocked, MvMemory, StorageRead},
    own_code::own_empty_code,
    shared_bloom::SHARED_FROM_LOGS,
    types::{Lifecycle, Location, ReadEntry, ReadSet, ReadValue, TxIdx, WriteSet, WriteValue},
};
use crate::{
    TxOutcome, TxResult,
    evm::outcome_of,
    receipt::BloomMemo,
    state::{StateError, StateSource},
};
use alloy_consensus::{TxEnvelope, TxType, transaction::Recovered};
use alloy_evm::FromRecoveredTx;
use alloy_primitives::{Address, B256, Bloom, U256};
use revm::{
    Database,
    bytecode::Bytecode,
    context::{
        BlockEnv, CfgEnv, Context, TxEnv,
        result::{EVMError, ExecutionResult, InvalidTransaction},
    },
    context_interface::{ContextSetters, ContextTr, JournalTr, Transaction as _},
    database_interface::DBErrorMarker,
    handler::{Handler, MainContext},
    primitives::{KECCAK_EMPTY, TxKind, hardfork::SpecId},
    state::{Account, AccountInfo, EvmState},
};

/// Why a read could not complete.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum VmError {
    /// It met an ESTIMATE of a lower transaction.
    #[error("blocked by transaction {}", .0.0)]
    Blocked(Blocked),
    /// The pre-block state failed.
    #[error(transparent)]
    State(#[from] StateError),
}

impl DBErrorMarker for VmError {}

impl From<Blocked> for VmError {
    fn from(blocked: Blocked) -> Self {
        Self::Blocked(blocked)
    }
}

/// The block-wide inputs every incarnation needs.
pub(crate) struct VmContext<'a, S: ?Sized> {
    pub base: &'a S,
    pub mv: &'a MvMemory,
    pub block_env: BlockEnv,
    pub cfg_env: CfgEnv,
    /// The block's transactions; each incarnation converts its own to a
    /// [`TxEnv`], so that no thread converts the whole block up front.
    pub transactions: &'a [Recovered<TxEnvelope>],
}

/// A transaction's execution result with its receipt's logs bloom, computed
/// by the worker that executed it (hashing every log is too much work to
/// leave to the single thread that assembles the receipts).
pub(crate) struct Executed {
    pub result: ExecutionResult,
    /// `None` only until the executing worker has hashed a large receipt's
    /// bloom with the others ([`Vm::share_large_blooms`]).
    pub logs_bloom: Option<Bloom>,
}

impl Executed {
    pub(crate) fn new(result: ExecutionResult, blooms: &mut BloomMemo) -> Self {
        let logs_bloom = Some(blooms.logs_bloom(result.logs()));
        Self { result, logs_bloom }
    }

    /// The logs bloom, hashed now if it was left to be shared.
    pub(crate) fn logs_bloom(&self) -> Bloom {
        self.logs_bloom
            .unwrap_or_else(|| alloy_primitives::logs_bloom(self.result.logs()))
    }
}

/// A transaction's result as the block reports it, built by the thread
/// that executed it: its receipt's cumulative gas is left at zero for the
/// assembly to thread through the block in order
/// ([`collect_receipts`](super::merge::collect_receipts)), which is all
/// that is left to do there. (Building the receipts there took 357 us of
/// 5,000 transfers' assembly, on one thread.)
pub(crate) struct FinishedTx {
    /// The outcome and receipt (none if invalid).
    pub result: TxResult,
    /// Gas charged (zero if invalid).
    pub gas: TxGas,
}

impl FinishedTx {
    /// The result of an executed transaction of type `ty`.
    pub(crate) fn executed(executed: Executed, ty: u8) -> Result<Self, String> {
        let tx_type = TxType::try_from(ty).map_err(|e| e.to_string())?;
        let gas = TxGas::of(&executed.result);
        let outcome = outcome_of(&executed.result);
        let success = executed.result.is_success();
        let logs_bloom = executed.logs_bloom();
        let logs = executed.result.into_logs();
        let receipt = crate::receipt::receipt_envelope(tx_type, success, 0, logs, logs_bloom);
        Ok(Self {
            result: TxResult {
                outcome,
                receipt: Some(receipt),
            },
            gas,
        })
    }

    /// The result of a transaction invalid in sequence.
    pub(crate) fn invalid(invalid: &InvalidTransaction) -> Self {
        Self {
            result: TxResult {
                outcome: TxOutcome::Invalid {
                    reason: invalid.to_string(),
                },
                receipt: None,
            },
            gas: TxGas::default(),
        }
    }

    /// The result of a transaction of type `ty` as one incarnation left it.
    pub(crate) fn of(result: Result<Executed, InvalidTransaction>, ty: u8) -> Result<Self, String> {
        match result {
            Ok(executed) => Self::executed(executed, ty),
            Err(invalid) => Ok(Self::invalid(&invalid)),
        }
    }
}

/// How an incarnation ended.
// Moved once per incarnation; boxing the large variant would cost an
// allocation each time instead.
#[allow(clippy::large_enum_variant)]
pub(crate) enum VmOutcome {
    /// Executed (or found invalid); `writes` is empty for an invalid one.
    Done {
        result: Result<Executed, InvalidTransaction>,
        reads: ReadSet,
        writes: WriteSet,
    },
    /// Met the ESTIMATE of a lower transaction.
    Blocked(TxIdx),
}

/// Error of an incarnation that is not the transaction's fault.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FatalError {
    /// A read of the pre-block state failed: perhaps only because the
    /// incarnation read a stale value, so the block is not failed for it
    /// (see [`FallbackReason::StateReadFailed`](crate::FallbackReason)).
    #[error("state: {0}")]
    State(StateError),
    /// Anything else (a bug in parevm or revm).
    #[error("{0}")]
    Other(String),
}

impl From<String> for FatalError {
    fn from(message: String) -> Self {
        Self::Other(message)
    }
}

/// A worker's EVM, built once and reused for every incarnation it runs (as
/// the sequential executor reuses one EVM for the whole block): building
/// revm's journal, frame stack and memory per transaction would dominate
/// small transactions.
pub(crate) struct Vm<'c, 'a, S: StateSource + ?Sized> {
    evm: VmEvm<'c, 'a, S>,
    spec: SpecId,
    /// The bloom bits of the logs this worker has met in the block.
    blooms: BloomMemo,
    /// Whether receipts with [`SHARED_FROM_LOGS`] logs or more are left
    /// without their bloom, for the worker to hash with the others.
    share_large_blooms: bool,
}

type VmEvm<'c, 'a, S> = ParallelEvm<VmDb<'c, 'a, S>>;

impl<'c, 'a, S: StateSource + ?Sized> Vm<'c, 'a, S> {
    pub(crate) fn new(ctx: &'c VmContext<'a, S>) -> Self {
        let mut evm = parallel_evm(
            Context::mainnet()
                .with_db(VmDb::new(ctx))
                .with_block(ctx.block_env.clone())
                .with_cfg(ctx.cfg_env.clone()),
        );
        balance_watch::install(&mut evm.instruction);
        Self {
            evm,
            spec: ctx.cfg_env.spec,
            blooms: BloomMemo::new(),
            share_large_blooms: false,
        }
    }

    /// Leaves large receipts' blooms out of [`Executed`], for the caller to
    /// hash with other workers ([`super::shared_bloom`]).
    pub(crate) fn share_large_blooms(&mut self) {
        self.share_large_blooms = true;
    }

    /// This worker's memo of hashed log addresses and topics.
    pub(crate) fn blooms(&mut self) -> &mut BloomMemo {
        &mut self.blooms
    }

    /// Gives back a read-set buffer for the next incarnation to fill.
    pub(crate) fn recycle_reads(&mut self, reads: ReadSet) {
        let db = self.evm.ctx.journal_mut().db_mut();
        if reads.capacity() > db.reads.capacity() {
            db.reads = reads;
        }
    }

    /// Runs the latest incarnation of `tx`.
    pub(crate) fn execute(&mut self, tx: TxIdx) -> Result<VmOutcome, FatalError> {
        let transaction = &self.evm.ctx.journal_mut().db_mut().ctx.transactions[tx];
        let tx_env = TxEnv::from_recovered_tx(transaction.inner(), transaction.signer());
        let spec = self.spec;
        self.evm.ctx.journal_mut().db_mut().begin(tx, &tx_env, spec);
        // revm parks database errors in the context; one left by an earlier
        // incarnation on this reused EVM must not leak into this one.
        self.evm.ctx.error = Ok(());
        self.evm.ctx.set_tx(tx_env);
        let result = LazyBeneficiary::new().run(&mut self.evm);
        let state = self.evm.ctx.journal_mut().finalize();
        let db = self.evm.ctx.journal_mut().db_mut();
        let result = match result {
            Ok(result) if self.share_large_blooms && result.logs().len() >= SHARED_FROM_LOGS => {
                Ok(Executed {
                    result,
                    logs_bloom: None,
                })
            }
            Ok(result) => Ok(Executed::new(result, &mut self.blooms)),
            Err(EVMError::Transaction(invalid)) => Err(invalid),
            Err(EVMError::Database(VmError::Blocked(Blocked(dep)))) if dep < tx => {
                return Ok(VmOutcome::Blocked(dep));
            }
            Err(EVMError::Database(VmError::Blocked(Blocked(dep)))) => {
                let message = format!("read blocked by transaction {dep}, not below it");
                return Err(message.into());
            }
            Err(EVMError::Database(VmError::State(e))) => return Err(FatalError::State(e)),
            Err(other) => return Err(other.to_string().into()),
        };
        if let Err(Blocked(dep)) = db.balances.settle(&mut db.reads) {
            return Ok(VmOutcome::Blocked(dep));
        }
        db.reads_hint = db.reads.len();
        let writes = match &result {
            Ok(_) => db.write_set(state, self.spec),
            Err(_) => WriteSet::new(),
        };
        Ok(VmOutcome::Done {
            result,
            reads: std::mem::take(&mut db.reads),
            writes,
        })
    }
}

/// Decides per transaction whether its recipient's credit can be lazy: a call
/// with value to someone else, without a 7702 authorization list (which could
/// give the recipient code first), before Amsterdam: from then on (EIP-2780)
/// a transfer to an empty account pays for creating it, so its balance is
/// observed. Whether the recipient has code is only known when it is read.
fn lazy_recipient(tx: &TxEnv, spec: SpecId) -> Option<Address> {
    if spec.is_enabled_in(SpecId::AMSTERDAM) {
        return None;
    }
    match tx.kind {
        TxKind::Call(to)
            if !tx.value.is_zero() && to != tx.caller && tx.authorization_list.is_empty() =>
        {
            Some(to)
        }
        _ => None,
    }
}

/// Whether an incarnation may leave balances it does not observe unread:
/// not in a 7702 transaction (its authorities' emptiness is checked), nor
/// from Amsterdam on, whose changes around balances (transfer logs, delayed
/// clearing of destroyed accounts) `balance_watch.rs` does not cover yet.
fn watch_balances(tx: &TxEnv, spec: SpecId) -> bool {
    tx.authorization_list.is_empty() && !spec.is_enabled_in(SpecId::AMSTERDAM)
}

/// What [`VmDb::basic`] returned for an account, without its code: the
/// write set compares only the fields, and a copy of the code would write
/// its reference count, which every worker running the contract shares.
struct Observed {
    address: Address,
    info: AccountInfo,
}

impl<S: ?Sized> std::fmt::Debug for VmDb<'_, '_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmDb")
            .field("tx", &self.tx)
            .finish_non_exhaustive()
    }
}

/// The database one incarnation sees; reset by [`VmDb::begin`] for each.
/// (Debug because alloy-evm's precompile provider asks for it.)
struct VmDb<'c, 'a, S: ?Sized> {
    ctx: &'c VmContext<'a, S>,
    tx: TxIdx,
    coinbase: Address,
    /// Set while revm credits the beneficiary's fee.
    in_reward: bool,
    lazy_recipient: Option<Address>,
    lazy_recipient_used: bool,
    lazy_coinbase_used: bool,
    /// The transaction's sender.
    caller: Address,
    /// The most the transaction can take from its sender's balance (revm
    /// checks the balance covers it up front); `None` if that overflows.
    caller_max_spending: Option<U256>,
    /// Whether balances may be watched instead of read (`watch_balances`).
    watch: bool,
    balances: WatchedBalances,
    reads: ReadSet,
    /// The length of the last read set, to size the next buffer.
    reads_hint: usize,
    observed: Vec<Observed>,
    /// This worker's own empty code (see [`own_empty_code`]).
    empty_code: Bytecode,
}

impl<'c, 'a, S: StateSource + ?Sized> VmDb<'c, 'a, S> {
    fn new(ctx: &'c VmContext<'a, S>) -> Self {
        Self {
            ctx,
            tx: 0,
            coinbase: ctx.block_env.beneficiary,
            in_reward: false,
            lazy_recipient: None,
            lazy_recipient_used: false,
            lazy_coinbase_used: false,
            caller: Address::ZERO,
            caller_max_spending: None,
            watch: false,
            balances: WatchedBalances::default(),
            reads: Vec::new(),
            reads_hint: 0,
            observed: Vec::new(),
            empty_code: own_empty_code(),
        }
    }

    /// Prepares for an incarnation of `tx` under `spec`.
    fn begin(&mut self, tx: TxIdx, tx_env: &TxEnv, spec: SpecId) {
        self.tx = tx;
        self.in_reward = false;
        self.lazy_recipient = lazy_recipient(tx_env, spec);
        self.lazy_recipient_used = false;
        self.lazy_coinbase_used = false;
        self.caller = tx_env.caller;
        self.caller_max_spending = tx_env.max_balance_spending().ok();
        self.watch = watch_balances(tx_env, spec);
        self.balances.clear();
        self.reads.clear();
        // Without a recycled buffer, one allocation sized like the last
        // read set instead of growing from empty.
        self.reads.reserve(self.reads_hint);
        self.observed.clear();
    }

    fn record(&mut self, location: Location, value: ReadValue, from_base: bool) {
        self.reads.push(ReadEntry {
            location,
            value,
            from_base,
        });
    }

    /// Resolves an account: existence, nonce, code, and (unless lazy) balance.
    fn resolve(&mut self, address: Address) -> Result<Option<AccountInfo>, VmError> {
        let mut base = self.ctx.base.account(&address)?;
        if self.in_reward && address == self.coinbase {
            // The fee is the transaction's first touch of the beneficiary,
            // and the last thing it does: nothing of the account is
            // observed, so nothing is read (a pool or builder paying out from
            // the beneficiary changes its nonce mid-block).
            self.lazy_coinbase_used = true;
            let mut placeholder = base.unwrap_or_default();
            placeholder.balance = U256::ZERO;
            return Ok(Some(placeholder));
        }
        let (code_hash, code) = self.read_code(address, base.as_mut())?;
        if self.lazy_recipient == Some(address) && code_hash == KECCAK_EMPTY {
            // A plain transfer's credit, which no code can observe: only
            // whether the recipient has code matters.
            self.lazy_recipient_used = true;
            let nonce = base.as_ref().map_or(0, |b| b.nonce);
            return Ok(Some(AccountInfo::new(U256::ZERO, nonce, code_hash, code)));
        }
        let lifecycle = self
            .ctx
            .mv
            .read_lifecycle(&Location::Lifecycle(address), self.tx)?;
        self.record(
            Location::Lifecycle(address),
            ReadValue::Lifecycle(lifecycle),
            lifecycle.is_none(),
        );
        let nonce = self.read_nonce(address, base.as_ref())?;
        let balance = self.read_balance(address, base.as_ref(), nonce, code_hash)?;
        let empty = balance.is_zero() && nonce == 0 && code_hash == KECCAK_EMPTY;
        let exists = match lifecycle {
            Some(Lifecycle::CreatedEmpty) => true,
            Some(Lifecycle::Destroyed) => !empty,
            None => base.is_some() || !empty,
        };
        Ok(exists.then(|| AccountInfo::new(balance, nonce, code_hash, code)))
    }

    fn read_code(
        &mut self,
        address: Address,
        base: Option<&mut AccountInfo>,
    ) -> Result<(B256, Bytecode), VmError> {
        let code_loc = Location::Code(address);
        let (code_hash, code, from_base) = match self.ctx.mv.read(&code_loc, self.tx)? {
            Some(WriteValue::Code(hash, code)) => (hash, code, false),
            _ => match base {
                Some(b) => {
                    // Moved, not copied: the code's reference counts are
                    // shared by every worker loading the same contract.
                    let code = match b.code.take() {
                        Some(code) => code,
                        None => self.pre_block_code(b.code_hash)?,
                    };
                    (b.code_hash, code, true)
                }
                None => (KECCAK_EMPTY, self.empty_code.clone(), true),
            },
        };
        self.record(code_loc, ReadValue::Code(code_hash), from_base);
        Ok((code_hash, code))
    }

    /// The pre-block code with `hash`; the empty code is this worker's own.
    fn pre_block_code(&self, hash: B256) -> Result<Bytecode, VmError> {
        match hash {
            KECCAK_EMPTY => Ok(self.empty_code.clone()),
            _ => Ok(self.ctx.base.code_by_hash(&hash)?),
        }
    }

    fn read_nonce(&mut self, address: Address, base: Option<&AccountInfo>) -> Result<u64, VmError> {
        let nonce_loc = Location::Nonce(address);
        let (nonce, from_base) = match self.ctx.mv.read(&nonce_loc, self.tx)? {
            Some(WriteValue::Nonce(n)) => (n, false),
            _ => (base.map_or(0, |b| b.nonce), true),
        };
        self.record(nonce_loc, ReadValue::Nonce(nonce), from_base);
        Ok(nonce)
    }

    /// Resolves a balance, recording it as read unless it is watched.
    fn read_balance(
        &mut self,
        address: Address,
        base: Option<&AccountInfo>,
        nonce: u64,
        code_hash: B256,
    ) -> Result<U256, VmError> {
        let balance_loc = Location::Balance(address);
        let base_balance = base.map_or(U256::ZERO, |b| b.balance);
        // An account with code or a nonce is not empty whatever its balance;
        // nor is the sender once the transaction bumps its nonce.
        let is_caller = address == self.caller;
        let watchable = self.watch
            && if is_caller {
                self.caller_max_spending.is_some()
            } else {
                nonce != 0 || code_hash != KECCAK_EMPTY
            };
        let (balance, from_base, blocked_by) = match self.ctx.mv.read_balance(&balance_loc, self.tx)
        {
            Ok(resolved) => {
                let start = resolved.full.unwrap_or(base_balance);
                // Wrapping where it overflows: the block's committed writes
                // are checked for that as they are folded (`credit.rs`).
                let (balance, _) = resolved.deltas.onto(start);
                (balance, resolved.full.is_none(), None)
            }
            Err(Blocked(dep)) if watchable && WatchedBalances::may_watch(base_balance) => {
                (base_balance, true, Some(dep))
            }
            Err(blocked) => return Err(blocked.into()),
        };
        if watchable && WatchedBalances::may_watch(balance) {
            self.balances.watch(address, balance, from_base, blocked_by);
            if is_caller {
                self.require_up_front(balance);
            }
        } else {
            self.record(balance_loc, ReadValue::Balance(balance), from_base);
        }
        Ok(balance)
    }

    /// The sender's balance, `served`, must cover what the transaction can
    /// take from it, as revm checks before running it: a bound if it does,
    /// a full read if not (the transaction is invalid).
    fn require_up_front(&mut self, served: U256) {
        match self.caller_max_spending {
            Some(max) if served >= max => self.balances.require(self.caller, served, max),
            _ => self.balances.observe(self.caller),
        }
    }

    /// Converts revm's state diff into the write set.
    fn write_set(&self, state: EvmState, spec: SpecId) -> WriteSet {
        let mut writes = WriteSet::with_capacity(state.len() * 2);
        for (address, account) in state {
            if account.is_touched() {
                self.push_account_writes(&mut writes, address, account, spec);
            }
        }
        writes
    }

    /// Pushes what the transaction changed of one account it touched.
    fn push_account_writes(
        &self,
        writes: &mut WriteSet,
        address: Address,
        account: Account,
        spec: SpecId,
    ) {
        let lazy_recipient = self.lazy_recipient_used && self.lazy_recipient == Some(address);
        let lazy_coinbase = self.lazy_coinbase_used && address == self.coinbase;
        if lazy_recipient || lazy_coinbase {
            // Balance was served as zero, so it now holds exactly the credit.
            if !account.info.balance.is_zero() {
                writes.push((
                    Location::Balance(address),
                    WriteValue::BalanceIncrement(account.info.balance),
                ));
            }
            return;
        }
        let before = self
            .observed
            .iter()
            .find(|o| o.address == address)
            .map(|o| &o.info);
        let existed = before.is_some();
        let destroyed = account.is_selfdestructed()
            || (account.is_empty() && spec.is_enabled_in(SpecId::SPURIOUS_DRAGON));
        if destroyed {
            if existed {
                push_destruction(writes, address);
            }
            return;
        }
        if account.is_empty() && !existed {
            // Before EIP-161 touching a missing account creates it, empty
            // (a contract whose constructor returned no code may still
            // have written storage, so go on to the slots).
            writes.push((
                Location::Lifecycle(address),
                WriteValue::Lifecycle(Lifecycle::CreatedEmpty),
            ));
        }
        // Not `AccountInfo::default()`: its code is a clone of revm's one
        // global empty code (see `own_code.rs`).
        let (balance_before, nonce_before, code_hash_before) = before
            .map_or((U256::ZERO, 0, KECCAK_EMPTY), |b| {
                (b.balance, b.nonce, b.code_hash)
            });
        self.push_balance_write(writes, address, account.info.balance, balance_before);
        if account.info.nonce != nonce_before {
            writes.push((
                Location::Nonce(address),
                WriteValue::Nonce(account.info.nonce),
            ));
        }
        if account.info.code_hash != code_hash_before {
            let code = account.info.code.clone().unwrap_or_default();
            writes.push((
                Location::Code(address),
                WriteValue::Code(account.info.code_hash, code),
            ));
        }
        for (slot, value) in account.storage {
            if value.is_changed() {
                writes.push((
                    Location::Storage(address, slot),
                    WriteValue::Storage(value.present_value),
                ));
            }
        }
    }

    /// Pushes the change of `address`'s balance from `before` to `after`:
    /// an increment or decrement if the balance was watched and never
    /// observed, which commutes with other such deltas; else the new
    /// balance.
    fn push_balance_write(
        &self,
        writes: &mut WriteSet,
        address: Address,
        after: U256,
        before: U256,
    ) {
        let location = Location::Balance(address);
        match self.balances.unobserved(address) {
            Some(served) if after > served => {
                writes.push((location, WriteValue::BalanceIncrement(after - served)));
            }
            Some(served) if after < served => {
                writes.push((location, WriteValue::BalanceDecrement(served - after)));
            }
            Some(_) => {}
            None if after != before => writes.push((location, WriteValue::Balance(after))),
            None => {}
        }
    }
}

/// A destroyed account: gone, with zeroed fields and wiped storage.
fn push_destruction(writes: &mut WriteSet, address: Address) {
    writes.push((
        Location::Lifecycle(address),
        WriteValue::Lifecycle(Lifecycle::Destroyed),
    ));
    writes.push((Location::Balance(address), WriteValue::Balance(U256::ZERO)));
    writes.push((Location::Nonce(address), WriteValue::Nonce(0)));
    writes.push((
        Location::Code(address),
        WriteValue::Code(KECCAK_EMPTY, Bytecode::default()),
    ));
}

impl<S: StateSource + ?Sized> FeeCreditDb for VmDb<'_, '_, S> {
    fn crediting_fee(&mut self, tip: Option<u128>) {
        // A zero fee still touches the beneficiary (creating it before
        // EIP-161, deleting it if empty after), which only a real read gets
        // right; a non-zero fee is a pure commutative credit.
        self.in_reward = tip.is_some_and(|tip| tip != 0);
    }
}

impl<S: StateSource + ?Sized> BalanceWatchDb for VmDb<'_, '_, S> {
    fn balance_observed(&mut self, address: Address) {
        self.balances.observe(address);
    }
    fn balance_required(&mut self, address: Address, balance: U256, value: U256) {
        self.balances.require(address, balance, value);
    }
}

impl<S: StateSource + ?Sized> Database for VmDb<'_, '_, S> {
    type Error = VmError;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, VmError> {
        let info = self.resolve(address)?;
        if let Some(info) = &info {
            self.observed.push(Observed {
                address,
                info: info.copy_without_code(),
            });
        }
        Ok(info)
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, VmError> {
        // The empty code is not looked up among the block's new codes (a
        // shard lock): this worker's own serves it (`pre_block_code`).
        if code_hash != KECCAK_EMPTY
            && let Some(code) = self.ctx.mv.code(&code_hash)
        {
            return Ok(code);
        }
        self.pre_block_code(code_hash)
    }

    fn storage(&mut self, address: Address, slot: U256) -> Result<U256, VmError> {
        let (value, from_base) = match self.ctx.mv.read_storage(address, slot, self.tx)? {
            StorageRead::Value(v) => (v, false),
            StorageRead::Wiped => (U256::ZERO, false),
            StorageRead::Base => (self.ctx.base.storage(&address, &slot)?, true),
        };
        self.record(
            Location::Storage(address, slot),
            ReadValue::Storage(value),
            from_base,
        );
        Ok(value)
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, VmError> {
        Ok(self.ctx.base.block_hash(number)?)
    }
}
