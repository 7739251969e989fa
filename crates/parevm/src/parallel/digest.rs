//! Digests of addresses and keys: cheap, well-mixed 64-bit hashes that
//! partitioning, prediction and validation key their maps by, and that
//! split accounts between threads when results are merged.

use alloy_primitives::Address;
use std::hash::Hasher;

/// A well-mixed 64-bit digest of an address: its words folded, then
/// [`fmix64`]. What partitioning, prediction and validation key addresses
/// by, and what splits accounts between threads when results are merged.
pub(crate) fn address_digest(address: &Address) -> u64 {
    fmix64(fold_address(address))
}

/// An address's words folded into one (generated addresses can differ in a
/// byte or two only, so every byte counts).
///
/// The words are read where an address is usually stored, 16 bytes and
/// then 4: an address just written (a key the planner had built) was read
/// back at bytes 12-20, across the two stores, which the CPU cannot forward
/// to the load. Reading the last word at 16 took the plan's key digesting
/// from 393 and 404 perf samples to 312 and 337 (300 runs of 5,000
/// transfers, AMD VM).
pub(crate) fn fold_address(address: &Address) -> u64 {
    let bytes = &address.0.0;
    // The slices have the arrays' lengths: the defaults are never used.
    let word = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap_or_default());
    let tail = u32::from_le_bytes(bytes[16..].try_into().unwrap_or_default());
    word(0) ^ word(8).rotate_left(23) ^ u64::from(tail).rotate_left(47)
}

/// MurmurHash3's 64-bit finalizer: every input bit affects every output bit.
pub(crate) fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// A hasher for keys that are digests (or hashes) already.
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
