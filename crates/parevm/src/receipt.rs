//! Receipts, built the same way by both executors.

use alloy_consensus::{
    Eip658Value, Receipt, ReceiptEnvelope, ReceiptWithBloom, TxEnvelope, TxType,
};
use alloy_evm::{
    Evm,
    eth::receipt_builder::{ReceiptBuilder, ReceiptBuilderCtx},
};
use alloy_primitives::{B256, Bloom, Log, keccak256};
use core::cell::RefCell;

/// Computes receipts' logs blooms, remembering the bloom bits of the log
/// addresses and topics it has hashed.
///
/// A block's logs repeat the same inputs across its transactions (token
/// and pool addresses, the `Transfer` signature, busy holders), and one
/// keccak per input was a tenth of sequential execution on the mainnet
/// fixtures. The memo is direct-mapped: a lookup is one comparison, and two
/// inputs that share a slot only evict each other. One lives for one
/// executor's block, so a benchmark that repeats a block does not find the
/// previous run's hashes.
#[derive(Debug, Default)]
pub struct BloomMemo {
    /// Empty until the first log, so executors without logs never allocate.
    slots: Vec<Slot>,
}

/// One remembered input: its bytes (an address left-aligned), what it was,
/// and the six hash bytes the bloom takes its three bits from.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    input: [u8; 32],
    kind: u8,
    bits: [u8; 6],
}

/// Inputs hashed as addresses (20 bytes) and as topics (32 bytes) differ
/// even where an address topic holds the same bytes; `0` marks an empty slot.
const ADDRESS: u8 = 1;
const TOPIC: u8 = 2;
const SLOTS_LOG2: u32 = 10;

impl BloomMemo {
    /// An empty memo.
    pub fn new() -> Self {
        Self::default()
    }

    /// The logs bloom of a receipt with `logs`, equal to alloy's `logs_bloom`.
    pub fn logs_bloom(&mut self, logs: &[Log]) -> Bloom {
        let mut bloom = Bloom::ZERO;
        for log in logs {
            self.accrue(&mut bloom, ADDRESS, log.address.as_slice());
            for topic in log.topics() {
                self.accrue(&mut bloom, TOPIC, topic.as_slice());
            }
        }
        bloom
    }

    fn accrue(&mut self, bloom: &mut Bloom, kind: u8, bytes: &[u8]) {
        if self.slots.is_empty() {
            self.slots = vec![Slot::default(); 1 << SLOTS_LOG2];
        }
        let mut input = [0u8; 32];
        input[..bytes.len()].copy_from_slice(bytes);
        let slot = &mut self.slots[slot_index(&input)];
        if slot.kind != kind || slot.input != input {
            let hash = keccak256(bytes);
            let mut bits = [0u8; 6];
            bits.copy_from_slice(&hash[..6]);
            *slot = Slot { input, kind, bits };
        }
        let mut hash = B256::ZERO;
        hash[..6].copy_from_slice(&slot.bits);
        bloom.m3_2048_hashed(&hash);
    }
}

/// The slot of an input: its four words folded and mixed, so that topics
/// holding a left-padded address or a small number spread as well as hashes.
fn slot_index(input: &[u8; 32]) -> usize {
    let word = |i: usize| u64::from_le_bytes(input[i..i + 8].try_into().unwrap_or_default());
    let folded =
        word(0) ^ word(8).rotate_left(16) ^ word(16).rotate_left(32) ^ word(24).rotate_left(48);
    (folded.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SLOTS_LOG2)) as usize
}

/// A receipt exactly as alloy-evm's `AlloyReceiptBuilder` makes it.
pub(crate) fn receipt_envelope(
    tx_type: TxType,
    success: bool,
    cumulative_gas_used: u64,
    logs: Vec<Log>,
    logs_bloom: Bloom,
) -> ReceiptEnvelope {
    let receipt = ReceiptWithBloom {
        receipt: Receipt {
            status: Eip658Value::Eip658(success),
            cumulative_gas_used,
            logs,
        },
        logs_bloom,
    };
    match tx_type {
        TxType::Legacy => ReceiptEnvelope::Legacy(receipt),
        TxType::Eip2930 => ReceiptEnvelope::Eip2930(receipt),
        TxType::Eip1559 => ReceiptEnvelope::Eip1559(receipt),
        TxType::Eip4844 => ReceiptEnvelope::Eip4844(receipt),
        TxType::Eip7702 => ReceiptEnvelope::Eip7702(receipt),
    }
}

/// alloy-evm's receipt builder with a [`BloomMemo`] for its block.
#[derive(Debug, Default)]
pub(crate) struct EthReceiptBuilder {
    blooms: RefCell<BloomMemo>,
}

impl ReceiptBuilder for EthReceiptBuilder {
    type Transaction = TxEnvelope;
    type Receipt = ReceiptEnvelope;

    fn build_receipt<E: Evm>(&self, ctx: ReceiptBuilderCtx<'_, TxType, E>) -> ReceiptEnvelope {
        let success = ctx.result.is_success();
        let logs = ctx.result.into_logs();
        let bloom = self.blooms.borrow_mut().logs_bloom(&logs);
        receipt_envelope(ctx.tx_type, success, ctx.cumulative_gas_used, logs, bloom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{Address, Bytes, LogData};

    #[test]
    fn memoized_bloom_equals_alloys() {
        let a = Address::repeat_byte(0xaa);
        let b = Address::repeat_byte(0xbb);
        // A topic holding an address, padded either way (the memo keys an
        // address left-aligned), must still be hashed as a topic.
        let topics = [
            B256::right_padding_from(a.as_slice()),
            a.into_word(),
            B256::repeat_byte(2),
        ];
        let logs: Vec<Log> = (0..40)
            .map(|i| Log {
                address: if i % 3 == 0 { a } else { b },
                data: LogData::new_unchecked(
                    topics[..1 + i % 3].to_vec(),
                    Bytes::from(vec![i as u8]),
                ),
            })
            .collect();
        let mut memo = BloomMemo::new();
        for n in [0, 1, 3, 4, 40, 40] {
            assert_eq!(
                memo.logs_bloom(&logs[..n]),
                alloy_primitives::logs_bloom(&logs[..n])
            );
        }
    }

    #[test]
    fn evicted_and_reused_slots_still_give_alloys_bloom() {
        // Far more distinct inputs than slots, each seen twice, so that
        // slots are evicted and refilled between receipts.
        let logs: Vec<Log> = (0u64..5000)
            .map(|i| Log {
                address: Address::left_padding_from(&(i % 3000).to_be_bytes()),
                data: LogData::new_unchecked(
                    vec![B256::left_padding_from(&(i % 2500).to_be_bytes())],
                    Bytes::new(),
                ),
            })
            .collect();
        let mut memo = BloomMemo::new();
        for chunk in logs.chunks(7).chain(logs.chunks(11)) {
            assert_eq!(memo.logs_bloom(chunk), alloy_primitives::logs_bloom(chunk));
        }
    }
}
