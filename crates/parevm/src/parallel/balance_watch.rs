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
//! so gas and behaviour are unchanged.

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

/// A database that is told which accounts' balances the EVM observes.
pub(crate) trait BalanceWatchDb: revm::Database {
    /// The balance of `address` decides what the transaction does.
    fn observe_balance(&mut self, address: Address);

    /// `address`, now holding `balance`, is about to send `value`, which
    /// `balance` covers: only a lower balance would change what happens.
    fn require_balance(&mut self, address: Address, balance: U256, value: U256);
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
    ctx.host.journal_mut().db_mut().observe_balance(address);
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
            journal.db_mut().require_balance(me, balance, value);
        }
        _ => observe(ctx, me),
    }
}

fn balance<DB: BalanceWatchDb>(mut ctx: Ctx<'_, DB>) -> InstructionExecResult {
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
