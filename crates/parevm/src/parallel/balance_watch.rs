//! Which balances a transaction observes.
//!
//! revm loads an account's balance whenever it loads the account: calling a
//! contract such as WETH, or paying a builder's address from inside a
//! contract, reads a balance that the transaction only ever adds to. Recorded
//! as a read, that balance makes the transaction depend on every earlier one
//! that credited the account.
//!
//! Yet the EVM observes a balance in few places: the `BALANCE` and
//! `SELFBALANCE` opcodes, the sufficiency check of a value sent by `CALL`,
//! `CALLCODE`, `CREATE` or `CREATE2` (always from the executing account),
//! `SELFDESTRUCT` (which moves the whole balance), and the check that the
//! transaction's sender can pay for it (a sufficiency check too, which the
//! database makes itself, see `vm.rs`). Emptiness also depends on the
//! balance, but not for an account that has code or a nonce. [`install`]
//! wraps those opcodes so that the database is told which account's balance
//! they observe; for any other account the database can turn the
//! transaction's effect on the balance into a commutative increment.
//!
//! A value sent only needs the balance to cover it, so a sufficiency check
//! that passes is reported as the margin it passed by: the transaction then
//! depends on the balance only staying above a bound (WETH paying out a
//! withdrawal from its millions no longer waits for every deposit). A check
//! that fails observes the balance in full.
//!
//! The wrappers only look at the stack and then run revm's own instruction,
//! so gas and behaviour are unchanged. [`WatchedBalances`] keeps one
//! incarnation's account of what was served, observed and bounded.

use super::{
    mv_memory::Blocked,
    types::{Location, ReadEntry, ReadSet, ReadValue, TxIdx},
};
use revm::{
    bytecode::opcode,
    context_interface::{ContextTr, JournalTr},
    handler::{MainnetContext, instructions::EthInstructions},
    interpreter::{
        Instruction, InstructionContext, InstructionExecResult,
        instructions::{contract, host, utility::IntoAddress},
        interpreter::EthInterpreter,
        interpreter_types::InputsTr,
    },
    primitives::{Address, U256},
};

/// A database told which balances the EVM observes, by the wrappers
/// [`install`] puts around every opcode that observes one.
pub(crate) trait BalanceWatchDb: revm::Database {
    /// The EVM observed `address`'s balance in full: `BALANCE`,
    /// `SELFBALANCE`, `SELFDESTRUCT`, or a value sent from it that it did
    /// not cover.
    fn balance_observed(&mut self, address: Address);

    /// `address`, now holding `balance`, is about to send `value`, which
    /// `balance` covers: only a lower balance would change what happens.
    fn balance_required(&mut self, address: Address, balance: U256, value: U256);
}

/// Balances from this one up are read in full, never watched. Such a
/// balance is either far beyond any real one or a wrapped sum of decreases
/// whose matching increases this incarnation did not see yet: speculation
/// that only a read validation catches. Below it, the credits of one
/// transaction cannot overflow a balance, which a served balance that no
/// read records must not do (revm would halt, or saturate a fee credit).
const WATCH_LIMIT: U256 = U256::from_limbs([0, 0, 1, 0]);

/// One incarnation's watched balances: served to the EVM but not recorded
/// as read yet. Each is recorded in full if the EVM observed it, as a bound
/// if it only sent value the balance covered, and otherwise not at all: the
/// transaction's change to it then becomes an increment.
#[derive(Default)]
pub(crate) struct WatchedBalances {
    watched: Vec<WatchedBalance>,
    /// Accounts whose balance the EVM observed.
    observed: Vec<Address>,
}

struct WatchedBalance {
    address: Address,
    served: U256,
    from_base: bool,
    /// The resolution met this transaction's ESTIMATE, and `served` is a
    /// placeholder: harmless unless the EVM observed it.
    blocked_by: Option<TxIdx>,
    /// The least the balance exceeded a value sent from it by, if it sent
    /// any: then the balance must stay high enough to cover that value.
    least_margin: Option<U256>,
}

impl WatchedBalances {
    /// Whether a balance resolved as `balance` may be watched (see
    /// [`WATCH_LIMIT`]).
    pub(crate) fn may_watch(balance: U256) -> bool {
        balance < WATCH_LIMIT
    }

    /// Forgets the previous incarnation's.
    pub(crate) fn clear(&mut self) {
        self.watched.clear();
        self.observed.clear();
    }

    /// Watches `address`, whose balance was served as `served`.
    pub(crate) fn watch(
        &mut self,
        address: Address,
        served: U256,
        from_base: bool,
        blocked_by: Option<TxIdx>,
    ) {
        self.watched.push(WatchedBalance {
            address,
            served,
            from_base,
            blocked_by,
            least_margin: None,
        });
    }

    /// The EVM observed `address`'s balance: it decides what the
    /// transaction does.
    pub(crate) fn observe(&mut self, address: Address) {
        if !self.observed.contains(&address) {
            self.observed.push(address);
        }
    }

    /// `address`, now holding `balance`, is about to send `value`, which
    /// `balance` covers: only a lower balance would change what happens.
    pub(crate) fn require(&mut self, address: Address, balance: U256, value: U256) {
        // An account not watched had its balance read in full already.
        if let Some(watched) = self.watched.iter_mut().find(|w| w.address == address) {
            let margin = balance.saturating_sub(value);
            watched.least_margin = Some(watched.least_margin.map_or(margin, |m| m.min(margin)));
        }
    }

    /// Records, onto `reads`, the watched balances the EVM observed as read
    /// and those it sent value from as bounded; fails if an observed one was
    /// a placeholder for an ESTIMATE. (A bound holds whatever was served:
    /// the served value plus the transaction's change must cover what it
    /// sent, so the bound is what was sent minus that change.)
    pub(crate) fn settle(&self, reads: &mut ReadSet) -> Result<(), Blocked> {
        for watched in &self.watched {
            let value = if self.observed.contains(&watched.address) {
                if let Some(dep) = watched.blocked_by {
                    return Err(Blocked(dep));
                }
                ReadValue::Balance(watched.served)
            } else if let Some(margin) = watched.least_margin {
                let bound = watched.served.saturating_sub(margin);
                if bound.is_zero() {
                    continue;
                }
                ReadValue::BalanceAtLeast(bound)
            } else {
                continue;
            };
            reads.push(ReadEntry {
                location: Location::Balance(watched.address),
                value,
                from_base: watched.from_base,
            });
        }
        Ok(())
    }

    /// The balance served for `address` if it is watched and the EVM never
    /// observed it in full (it may have sent value from it).
    pub(crate) fn unobserved(&self, address: Address) -> Option<U256> {
        let watched = self.watched.iter().find(|w| w.address == address)?;
        (!self.observed.contains(&address)).then_some(watched.served)
    }
}

type Host<DB> = MainnetContext<DB>;
type Ctx<'a, DB> = InstructionContext<'a, Host<DB>, EthInterpreter>;
type Wrapper<DB> = fn(Ctx<'_, DB>) -> InstructionExecResult;

/// Replaces every balance-observing opcode of `instructions` with a wrapper
/// that reports the account before running revm's instruction.
pub(crate) fn install<DB: BalanceWatchDb>(
    instructions: &mut EthInstructions<EthInterpreter, Host<DB>>,
) {
    let wrappers: [(u8, Wrapper<DB>); 7] = [
        (opcode::BALANCE, balance::<DB>),
        (opcode::SELFBALANCE, selfbalance::<DB>),
        (opcode::CALL, call::<DB>),
        (opcode::CALLCODE, callcode::<DB>),
        (opcode::CREATE, create::<DB>),
        (opcode::CREATE2, create2::<DB>),
        (opcode::SELFDESTRUCT, selfdestruct::<DB>),
    ];
    for (op, wrapper) in wrappers {
        let gas = instructions.gas_table()[op as usize];
        instructions.insert_instruction(op, Instruction::new(wrapper), gas);
    }
}

fn observe<DB: BalanceWatchDb>(ctx: &mut Ctx<'_, DB>, address: Address) {
    ctx.host.journal_mut().db_mut().balance_observed(address);
}

/// Reports the executing account's sufficiency check if the stack item
/// `value_at` (from the top) is a non-zero value it is about to send.
fn check_own_balance<DB: BalanceWatchDb>(ctx: &mut Ctx<'_, DB>, value_at: usize) {
    // An underflow is left to revm's instruction to report.
    let Ok(value) = ctx.interpreter.stack.peek(value_at) else {
        return;
    };
    if value.is_zero() {
        return;
    }
    let me = ctx.interpreter.input.target_address();
    let journal = ctx.host.journal_mut();
    // The executing account is always loaded; read it without touching it.
    match journal.evm_state().get(&me).map(|a| a.info.balance) {
        Some(balance) if balance >= value => {
            journal.db_mut().balance_required(me, balance, value);
        }
        _ => observe(ctx, me),
    }
}

fn balance<DB: BalanceWatchDb>(mut ctx: Ctx<'_, DB>) -> InstructionExecResult {
    // An underflow is left to revm's instruction to report.
    if let Ok(word) = ctx.interpreter.stack.peek(0) {
        observe(&mut ctx, word.into_address());
    }
    host::balance(ctx)
}

fn selfbalance<DB: BalanceWatchDb>(mut ctx: Ctx<'_, DB>) -> InstructionExecResult {
    let me = ctx.interpreter.input.target_address();
    observe(&mut ctx, me);
    host::selfbalance(ctx)
}

/// `CALL gas to value ...`: the value is the third item.
fn call<DB: BalanceWatchDb>(mut ctx: Ctx<'_, DB>) -> InstructionExecResult {
    check_own_balance(&mut ctx, 2);
    contract::call::<{ opcode::CALL }, _, _>(ctx)
}

/// `CALLCODE gas to value ...`: checks the executing account's balance too.
fn callcode<DB: BalanceWatchDb>(mut ctx: Ctx<'_, DB>) -> InstructionExecResult {
    check_own_balance(&mut ctx, 2);
    contract::call::<{ opcode::CALLCODE }, _, _>(ctx)
}

/// `CREATE value ...`: the value is on top.
fn create<DB: BalanceWatchDb>(mut ctx: Ctx<'_, DB>) -> InstructionExecResult {
    check_own_balance(&mut ctx, 0);
    contract::create::<false, _, _>(ctx)
}

fn create2<DB: BalanceWatchDb>(mut ctx: Ctx<'_, DB>) -> InstructionExecResult {
    check_own_balance(&mut ctx, 0);
    contract::create::<true, _, _>(ctx)
}

fn selfdestruct<DB: BalanceWatchDb>(mut ctx: Ctx<'_, DB>) -> InstructionExecResult {
    let me = ctx.interpreter.input.target_address();
    observe(&mut ctx, me);
    host::selfdestruct(ctx)
}
