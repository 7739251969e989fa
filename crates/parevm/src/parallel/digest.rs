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
/// byte or two only, so every byte counts): bytes 0-8, 8-16 and 12-20,
/// rotated apart, so that neither a generated address's first byte nor its
/// index bytes at the end cancel the others out.
///
/// Bytes 12-20 are put together from the loads at 8 and 16, where an
/// address is usually stored (16 bytes, then 4): an address just written (a
/// key the planner had built) and read back at 12 spans the two stores,
/// which the CPU cannot forward to the load. Three pairs of perf runs (300
/// parallel runs of 5,000 transfers each, AMD VM) read 595, 618 and 525
/// samples in the plan with the load at 12, 473, 448 and 483 without; in
/// validation 437, 468 and 400 against 376, 360 and 398. (Folding in the
/// last 4 bytes alone, rotated onto the first byte's bits, let generated
/// addresses of two families collide: 5,000 AMM swaps then failed
/// validation and ran on Block-STM.)
pub(crate) fn fold_address(address: &Address) -> u64 {
    let bytes = &address.0.0;
    // The slices have the arrays' lengths: the defaults are never used.
    let word = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap_or_default());
    let tail = u32::from_le_bytes(bytes[16..].try_into().unwrap_or_default());
    let (low, middle) = (word(0), word(8));
    let high = (middle >> 32) | (u64::from(tail) << 32);
    low ^ middle.rotate_left(23) ^ high.rotate_left(47)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// An address with `family` in byte 0 and `index` big-endian in bytes
    /// 12-20, as the synthetic workloads generate them.
    fn generated(family: u8, index: u64) -> Address {
        let mut bytes = [0u8; 20];
        bytes[0] = family;
        bytes[12..].copy_from_slice(&index.to_be_bytes());
        Address::from(bytes)
    }

    /// The fold is of the words at 0, 8 and 12, however they are loaded.
    #[test]
    fn the_fold_takes_the_words_at_0_8_and_12() {
        let word = |bytes: &[u8]| u64::from_le_bytes(bytes.try_into().unwrap());
        for address in [
            Address::repeat_byte(0x5a),
            generated(0xc1, 0x0102_0304_0506_0708),
            Address::from(std::array::from_fn::<u8, 20, _>(|i| i as u8 * 13 + 1)),
        ] {
            let bytes = address.as_slice();
            let expected = word(&bytes[..8])
                ^ word(&bytes[8..16]).rotate_left(23)
                ^ word(&bytes[12..]).rotate_left(47);
            assert_eq!(fold_address(&address), expected);
        }
    }

    /// Generated addresses of different families and indexes never share
    /// a digest: they would join partitions, or fail validation, needlessly.
    #[test]
    fn generated_addresses_have_distinct_digests() {
        let families = [0x10, 0x11, 0x20, 0x21, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4];
        let mut digests = HashSet::new();
        for family in families {
            for index in 0..20_000 {
                assert!(digests.insert(address_digest(&generated(family, index))));
            }
        }
    }
}
