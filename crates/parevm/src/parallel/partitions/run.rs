//! Running the partitions: each on whichever thread claims it, its
//! transactions in block order on its own EVM and cache
//! ([`PartitionRun`]), its reads and writes checked against the other
//! partitions' every few transactions, so that a wrong prediction stops
//! every partition early.

use super::{
    PartitionContext, PartitionOutput, Partitions,
    contract_balances::ContractBalances,
    db::{Loaded, PartitionDb, Recording, owns},
    footprint::{Access, Ownership, Validation},
    merge::split_into_shares,
    plan::TxKeys,
    results::{ResultSlots, SlotWriter},
};
use crate::{
    AccountChange, ExecutionError, StateSource,
    parallel::{
        balance_watch,
        block_gas::TxGas,
        credit::Deltas,
        fee_credit::{LazyBeneficiary, ParallelEvm, parallel_evm},
        helpers::{Claims, Then, panic_message, run_with_helpers, timed_phase},
        mv_memory::lock,
        types::TxIdx,
        vm::{Executed, FinishedTx},
    },
    receipt::BloomMemo,
    state::OverlayState,
};
use alloy_consensus::{Transaction as _, Typed2718};
use alloy_evm::FromRecoveredTx;
use alloy_primitives::{Address, U256};
use revm::{
    DatabaseCommit,
    context::{Context, TxEnv, result::EVMError},
    context_interface::{ContextSetters, ContextTr, JournalTr},
    database::TransitionState,
    handler::{Handler, MainContext},
    primitives::{KECCAK_EMPTY, hardfork::SpecId},
    state::EvmState,
};
use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::Mutex,
};

/// Runs every partition on `threads` threads, each writing its results
/// into its `slots`; `Err` if any failed.
pub(super) fn run_partitions<S: StateSource + ?Sized>(
    ctx: &PartitionContext<'_, S>,
    threads: usize,
    planned: &Partitions,
    slots: &ResultSlots<'_>,
) -> Result<Vec<PartitionOutput>, ExecutionError> {
    let partitions = &planned.txs;
    let outputs: Vec<Mutex<Option<Result<PartitionOutput, ExecutionError>>>> =
        partitions.iter().map(|_| Mutex::new(None)).collect();
    // Each partition is validated while it runs, by the thread that runs it
    // (see `run_partition`): a conflict stops every partition early.
    let transactions = partitions.iter().map(Vec::len).sum();
    let validation = Validation::new(transactions, Ownership::of(planned));
    let run = |index: usize| {
        // A panic (a bug) fails the block instead of the process.
        let output = catch_unwind(AssertUnwindSafe(|| {
            let slots = slots.writer(index).ok_or_else(|| {
                ExecutionError::Internal(format!("partition {index} claimed twice"))
            })?;
            let txs = &partitions[index];
            run_partition(ctx, &validation, index, txs, &planned.keys, slots)
        }))
        .unwrap_or_else(|panic| {
            let message = panic_message(panic.as_ref());
            Err(ExecutionError::Internal(format!(
                "partition panicked: {message}"
            )))
        });
        if output.is_err() {
            ctx.fail();
        }
        *lock(&outputs[index]) = Some(output);
    };
    let claims = Claims::new(partitions.len());
    let claim_and_run = || timed_phase(ctx.phases, |p| &mut p.executing, || claims.run(&run));
    // The assembly follows at once; if the run fails, Block-STM does, unless
    // the block is too cheap for it and runs sequentially.
    run_with_helpers(
        threads.min(partitions.len()).saturating_sub(1),
        Then::NextCall,
        |_| claim_and_run(),
        claim_and_run,
    );
    outputs
        .into_iter()
        .map(|o| o.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect::<Option<Result<Vec<_>, _>>>()
        .ok_or_else(|| ExecutionError::Internal("a partition did not run".into()))?
}

/// Accesses a partition gathers before checking them against the others':
/// a few transactions' worth. Checking after every transaction would take
/// the validation's lock thousands of times a block; checking only at the
/// partition's end let a block whose prediction was wrong (on mainnet, calls
/// into different contracts meeting in a shared one) run its partitions to
/// the end before Block-STM started over.
const CHECK_BATCH: usize = 64;

/// Runs partition `me`'s transactions in order and returns what they
/// produced, checking what they read and wrote against the other partitions
/// as it goes (failing the run, and stopping, on a conflict).
fn run_partition<S: StateSource + ?Sized>(
    ctx: &PartitionContext<'_, S>,
    validation: &Validation<'_>,
    me: usize,
    txs: &[TxIdx],
    keys: &TxKeys,
    slots: SlotWriter<'_>,
) -> Result<PartitionOutput, ExecutionError> {
    let base = OverlayState::new(ctx.state, ctx.pre);
    let mut run = PartitionRun::new(ctx, &base, slots, txs.len());
    for &index in txs {
        if ctx.failed() || run.execute(ctx, index, keys.of(index))? == Step::Stop {
            break;
        }
        if run.accesses() >= CHECK_BATCH && !run.check(ctx, validation, me) {
            break;
        }
    }
    if !ctx.failed() {
        run.check(ctx, validation, me);
    }
    run.finish(ctx)
}

/// Whether a partition goes on after a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Go on with the partition's next transaction.
    Next,
    /// The run cannot stand (the context is failed): stop.
    Stop,
}

/// One partition's run: its EVM over its own cache of the pre-block state
/// (`B`), and what its transactions produced so far.
struct PartitionRun<'b, 's, B: StateSource + ?Sized> {
    evm: ParallelEvm<PartitionDb<'b, B>>,
    handler: LazyBeneficiary<PartitionDb<'b, B>>,
    spec: SpecId,
    /// Where its transactions' results go, in place in the block's.
    slots: SlotWriter<'s>,
    /// The gas each of its transactions charged, in its order.
    gas: Vec<TxGas>,
    /// What the transactions since the last check wrote.
    writes: Vec<Access>,
    /// The balances of accounts with code that the transactions since the
    /// last check changed alone (see `contract_balances.rs`).
    sums: Vec<Access>,
    /// What the beneficiary was paid so far: fees, and value sent to it.
    fees: Deltas,
    /// The change to the payout sender's balance so far.
    paid: Deltas,
    /// What the hot recipient was credited so far.
    credited: Deltas,
    blooms: BloomMemo,
}

impl<'b, 's, B: StateSource + ?Sized> PartitionRun<'b, 's, B> {
    /// A run of `txs` transactions of `ctx`'s block over `base`, writing
    /// their results to `slots`.
    fn new<S: ?Sized>(
        ctx: &PartitionContext<'_, S>,
        base: &'b B,
        slots: SlotWriter<'s>,
        txs: usize,
    ) -> Self {
        let block = ctx.block;
        let db = PartitionDb {
            cache: crate::evm::state_cache(Recording::new(base, CHECK_BATCH * 2), txs),
            beneficiary: block.header.beneficiary,
            crediting_fee: false,
            beneficiary_served: U256::ZERO,
            sender: Address::ZERO,
            payout: ctx.payout,
            payout_nonce: None,
            payout_served: U256::ZERO,
            hot_recipient: ctx.hot_recipient,
            hot_served: U256::ZERO,
            observed: false,
            loaded: Vec::new(),
            contract_balances: ContractBalances::default(),
        };
        let env = block.evm_env();
        let spec = env.cfg_env.spec;
        let mut evm = parallel_evm(
            Context::mainnet()
                .with_db(db)
                .with_block(env.block_env)
                .with_cfg(env.cfg_env),
        );
        balance_watch::install(&mut evm.instruction);
        Self {
            evm,
            handler: LazyBeneficiary::new(),
            spec,
            slots,
            gas: Vec::with_capacity(txs),
            writes: Vec::with_capacity(CHECK_BATCH * 2),
            sums: Vec::new(),
            fees: Deltas::default(),
            paid: Deltas::default(),
            credited: Deltas::default(),
            blooms: BloomMemo::new(),
        }
    }

    /// Executes transaction `index` of the block, whose key digests are
    /// `own`, and commits it to the partition's cache; [`Step::Stop`] (with
    /// the context failed) if the partition's view of the state cannot
    /// stand for it.
    fn execute<S: ?Sized>(
        &mut self,
        ctx: &PartitionContext<'_, S>,
        index: TxIdx,
        own: &[u64],
    ) -> Result<Step, ExecutionError> {
        let tx = &ctx.block.transactions[index];
        let db = self.evm.ctx.journal_mut().db_mut();
        db.loaded.clear();
        db.cache.database.own.clear();
        db.cache.database.own.extend_from_slice(own);
        db.sender = tx.signer();
        db.beneficiary_served = U256::ZERO;
        db.hot_served = U256::ZERO;
        db.payout_nonce = (Some(db.sender) == db.payout).then(|| tx.nonce());
        db.contract_balances.start_tx(tx.value());
        self.evm
            .ctx
            .set_tx(TxEnv::from_recovered_tx(tx.inner(), tx.signer()));
        let result = self.handler.run(&mut self.evm);
        let mut state = self.evm.ctx.journal_mut().finalize();
        let db = self.evm.ctx.journal_mut().db_mut();
        if db.observed {
            // This partition's view of the beneficiary lacks the others'
            // fees, or of the payout sender the others' payouts: the run
            // cannot stand, so stop every partition now.
            return Ok(stop(ctx));
        }
        let result = match result {
            Ok(result) => result,
            Err(EVMError::Transaction(_)) if db.payout_nonce.is_some() => {
                // The payout sender's transfers were to be valid whatever
                // ran before them; this one is not, so the nonces the
                // others were served may be wrong.
                return Ok(stop(ctx));
            }
            Err(EVMError::Transaction(invalid)) => {
                self.push(FinishedTx::invalid(&invalid))?;
                return Ok(Step::Next);
            }
            Err(EVMError::Database(error)) => {
                return Err(ExecutionError::TxState { index, error });
            }
            Err(other) => {
                return Err(ExecutionError::Evm {
                    index,
                    message: other.to_string(),
                });
            }
        };
        // What the summed accounts gained (or paid) over what they were served.
        let payout_served = db.payout_nonce.map(|_| db.payout_served);
        let Some(summed) = take_summed(&mut state, db, payout_served) else {
            // Created at: more than its balance changed.
            return Ok(stop(ctx));
        };
        self.fees.then(summed.fees);
        self.paid.then(summed.paid);
        self.credited.then(summed.credited);
        let accesses = Accesses {
            writes: &mut self.writes,
            sums: &mut self.sums,
            balances: &mut db.contract_balances,
        };
        let own = &db.cache.database.own;
        record_writes(&state, &db.loaded, self.spec, db.sender, own, accesses);
        db.cache.commit(state);
        let executed = Executed::new(result, &mut self.blooms);
        let finished = FinishedTx::executed(executed, tx.ty()).map_err(|message| {
            ExecutionError::Internal(format!("transaction {index}: {message}"))
        })?;
        self.push(finished)?;
        Ok(Step::Next)
    }

    /// Keeps the next transaction's result: in its slot, and its gas here.
    fn push(&mut self, finished: FinishedTx) -> Result<(), ExecutionError> {
        self.gas.push(finished.gas);
        self.slots.push(finished.result)
    }

    /// Reads and writes gathered since the last check.
    fn accesses(&mut self) -> usize {
        let reads = &self.evm.ctx.journal_mut().db_mut().cache.database.reads;
        reads.len() + self.writes.len() + self.sums.len()
    }

    /// [`check`]s the accesses gathered since the last check.
    fn check<S: ?Sized>(
        &mut self,
        ctx: &PartitionContext<'_, S>,
        validation: &Validation<'_>,
        me: usize,
    ) -> bool {
        let reads = &mut self.evm.ctx.journal_mut().db_mut().cache.database.reads;
        check(ctx, validation, me, reads, &mut self.writes, &mut self.sums)
    }

    /// What the partition produced: its gas, fees and payouts, and its
    /// changes (unless the run failed, which discards them).
    fn finish<S: StateSource + ?Sized>(
        mut self,
        ctx: &PartitionContext<'_, S>,
    ) -> Result<PartitionOutput, ExecutionError> {
        let db = self.evm.ctx.journal_mut().db_mut();
        let transitions = db.cache.transition_state.take().unwrap_or_default();
        let balances = std::mem::take(&mut db.contract_balances);
        let (accounts, balance_sums) = if ctx.failed() {
            Default::default()
        } else {
            let mut accounts = normalized(ctx, &transitions)?;
            let base = OverlayState::new(ctx.state, ctx.pre);
            let sums = balances.take_sums(&base, &mut accounts)?;
            (split_into_shares(accounts, &ctx.bounds), sums)
        };
        Ok(PartitionOutput {
            gas: self.gas,
            fees: self.fees,
            paid: self.paid,
            credited: self.credited,
            balance_sums,
            bounds: balances.into_bounds(),
            accounts,
        })
    }
}

/// What a transaction changed of the accounts the partitions sum, each
/// over what the account was served.
#[derive(Default)]
struct Summed {
    /// What the beneficiary was paid: its fee, and any value sent to it.
    fees: Deltas,
    /// The change to the payout sender's balance, if the transaction is
    /// its transfer.
    paid: Deltas,
    /// What the hot recipient was credited.
    credited: Deltas,
}

/// Takes the summed accounts out of a transaction's `state` before it is
/// committed (the payout sender only from its own transfer, which was
/// served its balance as `payout_served`); `None` if the transaction
/// changed more than the beneficiary's or the hot recipient's balance (a
/// contract created at its address, where it had none of code and
/// nonce), which no other partition would see.
fn take_summed<S: ?Sized>(
    state: &mut EvmState,
    db: &PartitionDb<'_, S>,
    payout_served: Option<U256>,
) -> Option<Summed> {
    let mut summed = Summed {
        fees: take_credit(state, db.beneficiary, db.beneficiary_served)?,
        ..Summed::default()
    };
    if let (Some(served), Some(payout)) = (payout_served, db.payout)
        && let Some(sender) = state.remove(&payout)
    {
        summed.paid = Deltas::between(served, sender.info.balance);
    }
    if let Some(hot) = db.hot_recipient {
        summed.credited = take_credit(state, hot, db.hot_served)?;
    }
    Some(summed)
}

/// What `address`, served its balance as `served`, gained in a
/// transaction's `state` (nothing if it was not loaded, which set what
/// was served), taken out of it; `None` if a contract was created at it.
fn take_credit(state: &mut EvmState, address: Address, served: U256) -> Option<Deltas> {
    match state.remove(&address) {
        Some(account) if account.is_created() => None,
        Some(account) => Some(Deltas::between(served, account.info.balance)),
        None => Some(Deltas::default()),
    }
}

/// Fails the run: [`Step::Stop`].
fn stop<S: ?Sized>(ctx: &PartitionContext<'_, S>) -> Step {
    ctx.fail();
    Step::Stop
}

/// Checks partition `me`'s accesses since its last check against the other
/// partitions' and forgets them; on a conflict fails the run and returns
/// false.
fn check<S: ?Sized>(
    ctx: &PartitionContext<'_, S>,
    validation: &Validation<'_>,
    me: usize,
    reads: &mut Vec<Access>,
    writes: &mut Vec<Access>,
    sums: &mut Vec<Access>,
) -> bool {
    let conflict = validation.conflicts(me, reads, writes, sums);
    reads.clear();
    writes.clear();
    sums.clear();
    if conflict {
        ctx.fail();
    }
    !conflict
}

/// Where one transaction's changes are recorded.
struct Accesses<'a> {
    /// Accounts and slots written.
    writes: &'a mut Vec<Access>,
    /// Balances of accounts with code changed alone.
    sums: &'a mut Vec<Access>,
    /// Which accounts with code the partition changed, and how.
    balances: &'a mut ContractBalances,
}

/// Adds what one transaction (from `sender`, with key digests `own`)
/// wrote, per revm's `state` of it and `loaded` as it first read each
/// account, to `to`: the balance of an account with code that changed
/// alone as a sum, any other change to an account as a write of it; but
/// nothing of the accounts its partition owns.
fn record_writes(
    state: &EvmState,
    loaded: &[Loaded],
    spec: SpecId,
    sender: Address,
    own: &[u64],
    to: Accesses<'_>,
) {
    for (address, account) in state {
        if !account.is_touched() {
            continue;
        }
        // Its owner's accesses to an owned account need no record.
        let owned = owns(own, address);
        let record = |list: &mut Vec<Access>, access| {
            if !owned {
                list.push(access);
            }
        };
        let info = &account.info;
        let first = loaded.iter().find(|l| l.address == *address);
        let kept = |l: &&Loaded| {
            l.nonce == info.nonce
                && l.code_hash == info.code_hash
                && !account.is_selfdestructed()
                && !account.is_created()
        };
        match first.filter(kept) {
            Some(l) if l.balance == info.balance => {
                let emptied = account.is_empty() && spec.is_enabled_in(SpecId::SPURIOUS_DRAGON);
                if emptied {
                    record(to.writes, Access::Account(*address));
                }
            }
            Some(l)
                if l.code_hash != KECCAK_EMPTY
                    && *address != sender
                    && to.balances.may_sum(l.balance, info.balance) =>
            {
                record(to.sums, Access::Balance(*address));
                to.balances.summed(*address);
            }
            _ => {
                record(to.writes, Access::Account(*address));
                // Created here, or changed beyond its balance: the
                // partition's account is the block's.
                let code = first.map_or(info.code_hash, |l| l.code_hash);
                if code != KECCAK_EMPTY || info.code_hash != KECCAK_EMPTY {
                    to.balances.written(*address);
                }
            }
        }
        for (slot, value) in &account.storage {
            if value.is_changed() {
                record(to.writes, Access::Slot(*address, *slot));
            }
        }
    }
}

/// A partition's changes (revm's `transitions`) composed onto the pre-block
/// system calls' and reduced to what differs from the pre-block state, in
/// address order.
fn normalized<S: StateSource + ?Sized>(
    ctx: &PartitionContext<'_, S>,
    transitions: &TransitionState,
) -> Result<Vec<(Address, AccountChange)>, ExecutionError> {
    let codes = crate::changes::new_codes(transitions);
    let mut kept = Vec::with_capacity(transitions.transitions.len());
    for (address, account) in &transitions.transitions {
        let change = match ctx.pre.accounts.get(address) {
            // First loaded from the pre-block state itself (no system call
            // changed it), so the transition knows what it was.
            None => AccountChange::from_transition(address, account, &ctx.state, &codes)?,
            Some(pre) => {
                let mut composed = pre.clone();
                composed.then(AccountChange::from_revm(
                    account.info.as_ref(),
                    &account.storage,
                    account.status.was_destroyed(),
                ));
                let before = ctx.state.account_fields(address)?;
                composed.normalized(address, before.as_ref(), &ctx.state, &codes)?
            }
        };
        kept.extend(change.map(|change| (*address, change)));
    }
    Ok(crate::changes::sorted_by_address(kept))
}
