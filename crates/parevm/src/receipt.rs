//! Receipts, built the same way by both executors.

use alloy_consensus::{
    Eip658Value, Receipt, ReceiptEnvelope, ReceiptWithBloom, TxEnvelope, TxType,
};
use alloy_evm::{
    Evm,
    eth::receipt_builder::{ReceiptBuilder, ReceiptBuilderCtx},
};
use alloy_primitives::{Address, B256, Bloom, BloomInput, Log, map::HashSet};

/// The logs bloom of a receipt, equal to alloy's `logs_bloom`. Accruing is
/// idempotent and a transaction's logs repeat the same contract addresses
/// and event topics over and over (a batch transfer emits thousands of
/// identical `Transfer` signatures), so each distinct input is hashed once.
pub fn logs_bloom(logs: &[Log]) -> Bloom {
    let mut bloom = Bloom::ZERO;
    if logs.len() < 4 {
        for log in logs {
            bloom.accrue_log(log);
        }
        return bloom;
    }
    let mut addresses: HashSet<Address> = HashSet::default();
    let mut topics: HashSet<B256> = HashSet::default();
    for log in logs {
        if addresses.insert(log.address) {
            bloom.accrue(BloomInput::Raw(log.address.as_slice()));
        }
        for topic in log.topics() {
            if topics.insert(*topic) {
                bloom.accrue(BloomInput::Raw(topic.as_slice()));
            }
        }
    }
    bloom
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

/// alloy-evm's receipt builder with [`logs_bloom`].
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct EthReceiptBuilder;

impl ReceiptBuilder for EthReceiptBuilder {
    type Transaction = TxEnvelope;
    type Receipt = ReceiptEnvelope;

    fn build_receipt<E: Evm>(&self, ctx: ReceiptBuilderCtx<'_, TxType, E>) -> ReceiptEnvelope {
        let success = ctx.result.is_success();
        let logs = ctx.result.into_logs();
        let bloom = logs_bloom(&logs);
        receipt_envelope(ctx.tx_type, success, ctx.cumulative_gas_used, logs, bloom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{Bytes, LogData};

    #[test]
    fn deduplicated_bloom_equals_alloys() {
        let a = Address::repeat_byte(0xaa);
        let b = Address::repeat_byte(0xbb);
        // A topic equal to a padded address must still be hashed as a topic.
        let topics = [B256::repeat_byte(1), a.into_word(), B256::repeat_byte(2)];
        let logs: Vec<Log> = (0..40)
            .map(|i| Log {
                address: if i % 3 == 0 { a } else { b },
                data: LogData::new_unchecked(
                    topics[..1 + i % 3].to_vec(),
                    Bytes::from(vec![i as u8]),
                ),
            })
            .collect();
        for n in [0, 1, 3, 4, 40] {
            assert_eq!(
                logs_bloom(&logs[..n]),
                alloy_primitives::logs_bloom(&logs[..n])
            );
        }
    }
}
