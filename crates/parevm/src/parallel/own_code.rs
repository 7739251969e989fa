//! Codes with reference counts of a thread's own.
//!
//! A `Bytecode` is a reference-counted pointer, and revm clones an account's
//! code as it loads it (its original info, the frame that runs it) and
//! drops the clones after the transaction. Single-threaded that costs
//! nothing; when two threads run the same code, the count's cache line
//! moves between their cores at every clone and drop.
//!
//! - revm's `Bytecode::default()`, the code of every account without code,
//!   is a clone of one global count. Each Block-STM worker and each
//!   partition serves accounts without code an empty code of its own
//!   instead ([`own_empty_code`]). On mainnet fixture 14396881 (1,197 of
//!   its 1,346 transactions plain transfers) the workers' executing time
//!   fell by 6% and the block went from 0.93-0.97x to 0.98-1.01x of
//!   sequential (2-core VM, four interleaved rounds of 41 runs).
//! - A partition also copies each contract code it loads ([`own_copy`]),
//!   once per code (every account with it is served that copy), as its
//!   cache keeps the accounts: 5,000 transfers of one token
//!   went from 1.72-1.75x to 1.85-1.93x (three interleaved rounds of 21
//!   runs), 5,000 swaps on their own pools (whose pairs share one code)
//!   from 1.73-1.76x to 1.77-1.81x. Block-STM's workers load every
//!   account from the pre-block state afresh; a copy per worker, looked up
//!   by hash at every load, made five DeFi fixtures 1% slower.

use alloy_primitives::Bytes;
use revm::bytecode::{Bytecode, JumpTable, opcode::STOP};

/// An empty code equal to revm's `Bytecode::default()` (one STOP, no
/// original bytes, the empty code's hash) with a reference count of its
/// own: clones of it stay on the thread that made it.
pub(crate) fn own_empty_code() -> Bytecode {
    // SAFETY: `new_analyzed`'s contract: the bytecode is not empty and ends
    // in STOP (the padding revm's interpreter reads past the last
    // instruction), and the original length, zero, is within it and within
    // the (empty) jump table.
    unsafe { Bytecode::new_analyzed(Bytes::from_static(&[STOP]), 0, JumpTable::default()) }
}

/// A copy of `code` with a reference count of its own (its bytes and jump
/// table still shared with `code`), equal to it. Anything but an analyzed
/// legacy code whose parts meet `new_analyzed`'s checks is shared instead.
pub(crate) fn own_copy(code: &Bytecode) -> Bytecode {
    let bytes = code.bytecode();
    match code.legacy_jump_table() {
        Some(jump_table)
            if !bytes.is_empty() && code.len() <= bytes.len() && code.len() <= jump_table.len() =>
        {
            // SAFETY: the parts of an analyzed legacy code, checked above as
            // `new_analyzed` checks them; the bytes are those `code` runs,
            // padded as whoever made it had to pad them.
            unsafe { Bytecode::new_analyzed(bytes.clone(), code.len(), jump_table.clone()) }
        }
        _ => code.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use revm::primitives::KECCAK_EMPTY;

    #[test]
    fn an_own_empty_code_is_the_empty_code_apart() {
        let own = own_empty_code();
        let global = Bytecode::default();
        assert_eq!(own, global);
        assert_eq!(own.hash_slow(), KECCAK_EMPTY);
        assert!(own.is_empty());
        assert_eq!(own.bytecode(), global.bytecode());
        assert_eq!(own.kind(), global.kind());
        // Apart: not the global one, whose reference count every thread shares.
        assert!(!own.is_default());
    }

    #[test]
    fn an_own_copy_equals_its_code() {
        // PUSH1 4, JUMP, INVALID, JUMPDEST, STOP: a jump table to keep.
        let code = Bytecode::new_legacy(Bytes::from_static(&[0x60, 0x04, 0x56, 0xfe, 0x5b, 0x00]));
        let copy = own_copy(&code);
        assert_eq!(copy, code);
        assert_eq!(copy.hash_slow(), code.hash_slow());
        assert_eq!(copy.bytecode(), code.bytecode());
        assert_eq!(copy.len(), code.len());
        assert_eq!(copy.legacy_jump_table(), code.legacy_jump_table());
        let delegation = Bytecode::new_eip7702(alloy_primitives::Address::repeat_byte(7));
        assert_eq!(own_copy(&delegation), delegation);
        assert!(own_copy(&Bytecode::default()).is_empty());
    }
}
