//! What code can observe of the two accounts whose changes partitions
//! sum apart instead of ordering: the payout sender ([`payout`](super::payout))
//! and the beneficiary. The plan reads it from the code before it runs, to
//! predict; the partitions watch it as the code runs, to be sure.
//!
//! A payout sender has no code, so code running in its transfer learns
//! nothing of it but its balance: its nonce is not readable, its code hash
//! and size are those of any account without code whatever ran before, it
//! exists and is warm either way, and a value sent to it is summed with its
//! payments as they are. `BALANCE` is the one instruction that reads
//! another account's balance (`SELFBALANCE` reads the running account's
//! own, which is never the sender). So a payout into code that reads no
//! balance but its own leaves every other partition's view of the sender
//! true, and runs apart as a transfer into an account without code does.
//! The partitions' EVM runs `BALANCE` through the wrapper Block-STM uses
//! too, which tells the database which account it reads
//! (`balance_watch::install`); a payout that reads the
//! sender's fails the run. Before that, [`reads_foreign_balance`] predicts
//! it from the code: it reads every instruction in order, with each stack
//! value tracked within a straight run of code as the running account's
//! address, a constant, or unknown (everything below the run's start is
//! unknown). A `BALANCE` whose operand is not the running account's
//! address counts as a foreign read, whether or not any path reaches it:
//! compilers read their own balance as `ADDRESS BALANCE`, older ones
//! masking the address first (`ADDRESS PUSH20 0xff..ff AND BALANCE`, or a
//! mask computed as `2^160 - 1`).
//!
//! The beneficiary is watched as the code runs only: a partition serves it
//! to a call paying it as it was before the block and sums what the call
//! paid it with the fees (see `db.rs`), and `BALANCE` reading it fails the
//! run. Trading bots pay the block's builder that way.

use super::code_cache::CodeCache;
use alloy_primitives::{B256, U256};
use revm::bytecode::opcode::{self, OPCODE_INFO};

/// Whether each code scanned in this process reads a foreign balance
/// ([`reads_foreign_balance`]), by code hash: scanning a large contract
/// (24 KB) takes microseconds. At most 16,384: about a megabyte.
static SCANNED: CodeCache<B256, bool> = CodeCache::new(16_384);

/// Whether the code with `hash` reads a foreign balance, if scanned before
/// in this process.
pub(crate) fn scanned(hash: &B256) -> Option<bool> {
    SCANNED.get(hash)
}

/// Scans `code` (whose hash is `hash`) for a foreign balance read, and
/// remembers the answer for the process.
pub(crate) fn scan(hash: &B256, code: &[u8]) -> bool {
    let reads = reads_foreign_balance(code);
    SCANNED.insert(*hash, reads);
    reads
}

/// A stack value, as far as a straight run of code tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    /// The running account's address (`ADDRESS`, perhaps masked).
    This,
    /// A constant the run computed.
    Constant(U256),
    /// Anything else.
    Unknown,
}

/// The low 160 bits: a mask that leaves an address as it is.
const ADDRESS_MASK: U256 = U256::from_limbs([u64::MAX, u64::MAX, u32::MAX as u64, 0]);

/// Whether `code` has a `BALANCE` instruction whose operand is not
/// provably the running account's own address (see the module docs).
/// Bytes that are not instructions (push data, metadata past the end) are
/// read as the EVM reads them. A false answer holds for this code only:
/// the code it calls or creates is code of its own.
pub(crate) fn reads_foreign_balance(code: &[u8]) -> bool {
    let mut stack = Stack::default();
    let mut pc = 0;
    while let Some(&op) = code.get(pc) {
        pc += 1;
        match op {
            opcode::PUSH0 => stack.push(Value::Constant(U256::ZERO)),
            opcode::PUSH1..=opcode::PUSH32 => {
                let len = usize::from(op - opcode::PUSH1) + 1;
                stack.push(push_value(code.get(pc..pc + len)));
                pc += len;
            }
            opcode::BALANCE => {
                if stack.pop() != Value::This {
                    return true;
                }
                stack.push(Value::Unknown);
            }
            opcode::JUMPDEST => stack.clear(),
            _ => stack.apply(op),
        }
    }
    false
}

/// Whether the code after `op` runs only after a jump to it.
fn ends_run(op: u8) -> bool {
    OPCODE_INFO[usize::from(op)].is_none_or(|info| info.is_terminating()) || op == opcode::JUMP
}

/// The value a push of `data` puts on the stack; unknown if the code ends
/// within it.
fn push_value(data: Option<&[u8]>) -> Value {
    data.map_or(Value::Unknown, |data| {
        Value::Constant(U256::from_be_slice(data))
    })
}

/// The stack of a straight run of code, with unknown values below what the
/// run pushed.
#[derive(Default)]
struct Stack(Vec<Value>);

impl Stack {
    fn push(&mut self, value: Value) {
        self.0.push(value);
    }

    fn pop(&mut self) -> Value {
        self.0.pop().unwrap_or(Value::Unknown)
    }

    fn clear(&mut self) {
        self.0.clear();
    }

    /// The stack, at least `depth` values deep (unknowns filled in below).
    fn deep(&mut self, depth: usize) -> &mut Vec<Value> {
        if self.0.len() < depth {
            let missing = depth - self.0.len();
            self.0
                .splice(0..0, std::iter::repeat_n(Value::Unknown, missing));
        }
        &mut self.0
    }

    /// Applies instruction `op` (not a push, `BALANCE` or `JUMPDEST`).
    fn apply(&mut self, op: u8) {
        match op {
            opcode::ADDRESS => self.push(Value::This),
            opcode::DUP1..=opcode::DUP16 => {
                let n = usize::from(op - opcode::DUP1) + 1;
                let stack = self.deep(n);
                stack.push(stack[stack.len() - n]);
            }
            opcode::SWAP1..=opcode::SWAP16 => {
                let n = usize::from(op - opcode::SWAP1) + 1;
                let stack = self.deep(n + 1);
                let top = stack.len() - 1;
                stack.swap(top, top - n);
            }
            opcode::AND | opcode::OR | opcode::ADD | opcode::SUB | opcode::MUL => {
                let (a, b) = (self.pop(), self.pop());
                self.push(binary(op, a, b));
            }
            opcode::EXP | opcode::SHL | opcode::SHR => {
                let (a, b) = (self.pop(), self.pop());
                self.push(binary(op, a, b));
            }
            opcode::NOT => match self.pop() {
                Value::Constant(a) => self.push(Value::Constant(!a)),
                _ => self.push(Value::Unknown),
            },
            _ => self.apply_opaque(op),
        }
    }

    /// Applies an instruction whose results are not tracked: its inputs
    /// popped, unknown outputs pushed. One that is not an instruction, or
    /// ends the run, clears the stack: what follows runs only after a jump,
    /// to a `JUMPDEST`, which clears it anyway.
    fn apply_opaque(&mut self, op: u8) {
        let Some(info) = OPCODE_INFO[usize::from(op)].filter(|_| !ends_run(op)) else {
            self.clear();
            return;
        };
        for _ in 0..info.inputs() {
            self.pop();
        }
        for _ in 0..info.outputs() {
            self.push(Value::Unknown);
        }
    }
}

/// The result of binary instruction `op` with `a` on top of the stack and
/// `b` below it.
fn binary(op: u8, a: Value, b: Value) -> Value {
    match (op, a, b) {
        (opcode::AND, Value::This, Value::Constant(mask))
        | (opcode::AND, Value::Constant(mask), Value::This)
            if mask & ADDRESS_MASK == ADDRESS_MASK =>
        {
            Value::This
        }
        (_, Value::Constant(a), Value::Constant(b)) => Value::Constant(match op {
            opcode::AND => a & b,
            opcode::OR => a | b,
            opcode::ADD => a.wrapping_add(b),
            opcode::SUB => a.wrapping_sub(b),
            opcode::MUL => a.wrapping_mul(b),
            opcode::EXP => a.wrapping_pow(b),
            // The shift on top, the value below it.
            opcode::SHL => shift(b, a, |v, s| v << s),
            opcode::SHR => shift(b, a, |v, s| v >> s),
            _ => return Value::Unknown,
        }),
        _ => Value::Unknown,
    }
}

/// `value` shifted by `by` bits with `shift` (zero from 256 bits on).
fn shift(value: U256, by: U256, shift: impl Fn(U256, usize) -> U256) -> U256 {
    match usize::try_from(by) {
        Ok(by) if by < 256 => shift(value, by),
        _ => U256::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opcode::*;

    fn push20(byte: u8) -> Vec<u8> {
        let mut code = vec![PUSH20];
        code.extend([byte; 20]);
        code
    }

    #[test]
    fn the_own_balance_is_no_foreign_read() {
        assert!(!reads_foreign_balance(&[ADDRESS, BALANCE, POP, STOP]));
        assert!(!reads_foreign_balance(&[SELFBALANCE, POP, STOP]));
    }

    #[test]
    fn the_own_address_masked_is_still_its_own() {
        // solc: `ADDRESS PUSH20 0xff..ff AND BALANCE`.
        let mut code = vec![ADDRESS];
        code.extend(push20(0xff));
        code.extend([AND, BALANCE]);
        assert!(!reads_foreign_balance(&code));
        // Older solc: the mask computed as 2^160 - 1, kept below.
        let code = [
            PUSH1, 1, PUSH1, 0xa0, PUSH1, 2, EXP, SUB, SWAP1, DUP2, AND, SWAP1, ADDRESS, AND,
            BALANCE,
        ];
        assert!(!reads_foreign_balance(&code));
    }

    #[test]
    fn other_balances_are_foreign_reads() {
        assert!(reads_foreign_balance(&[CALLER, BALANCE]));
        assert!(reads_foreign_balance(&[ORIGIN, BALANCE]));
        let mut constant = push20(0x9a);
        constant.push(BALANCE);
        assert!(reads_foreign_balance(&constant));
        // A mask that drops bits of the own address could name another.
        let mut narrowed = vec![ADDRESS];
        narrowed.extend(push20(0x7f));
        narrowed.extend([AND, BALANCE]);
        assert!(reads_foreign_balance(&narrowed));
    }

    #[test]
    fn the_own_balance_replaces_the_address_on_the_stack() {
        // BALANCE(ADDRESS) leaves the balance where the address was, and
        // A below it: A (unknown) is what the swap brings up.
        assert!(reads_foreign_balance(&[
            ADDRESS, CALLER, ADDRESS, BALANCE, SWAP1, BALANCE
        ]));
        assert!(!reads_foreign_balance(&[
            ADDRESS, CALLER, ADDRESS, BALANCE, POP, POP, BALANCE
        ]));
    }

    #[test]
    fn a_jump_destination_forgets_the_own_address() {
        // Another path may jump here with anything on the stack.
        assert!(reads_foreign_balance(&[ADDRESS, JUMPDEST, BALANCE]));
        assert!(reads_foreign_balance(&[BALANCE]));
    }

    #[test]
    fn swaps_and_dups_reach_below_the_run() {
        // The own address swapped below an unknown, which is then read.
        assert!(reads_foreign_balance(&[ADDRESS, SWAP1, BALANCE]));
        assert!(!reads_foreign_balance(&[ADDRESS, SWAP1, SWAP1, BALANCE]));
        assert!(!reads_foreign_balance(&[ADDRESS, CALLER, DUP2, BALANCE]));
    }

    #[test]
    fn push_data_is_no_instruction() {
        assert!(!reads_foreign_balance(&[PUSH2, BALANCE, BALANCE, STOP]));
        // A push cut off by the end of the code.
        assert!(!reads_foreign_balance(&[PUSH32, BALANCE]));
    }
}
