//! The versions of one location in the multi-version memory: each
//! transaction's latest entry there, sorted by transaction, and for a
//! balance written by many, what a read just above each entry resolves to
//! ([`Run`]).

use super::{BalanceRead, Blocked, lock};
use crate::parallel::{
    credit::Deltas,
    types::{Location, Padded, TxIdx, WriteValue},
};
use dashmap::mapref::one::Ref;
use smallvec::SmallVec;
use std::sync::Mutex;

/// What one transaction's latest incarnation left at a location.
#[derive(Debug, Clone)]
pub(super) enum Entry {
    /// Its incarnation was aborted.
    Estimate,
    /// Its incarnation wrote this.
    Write(WriteValue),
}

/// The writers of one location, sorted by transaction. Most locations have
/// one writer, kept inline: a block's every new location would otherwise
/// cost an allocation to publish and another to free.
#[derive(Debug, Default)]
pub(super) struct Versions {
    entries: SmallVec<[(TxIdx, Entry); 1]>,
    /// For a balance with at least [`RUNS_FROM`] writers, what a read just
    /// above each entry resolves to ([`Run`]), so that it costs one binary
    /// search instead of a walk down every delta to the last full balance:
    /// a hot sender's every transaction reads its balance, and walked, its
    /// 1,407 transactions of fixture 13287210 took Block-STM from 3.2 ms
    /// to 5.6 ms on one thread. Maintained by the writer
    /// ([`Self::reindex_runs`]), in O(1) for a write in block order.
    /// Boxed: one word in every location's versions, not three.
    #[allow(clippy::box_collection)]
    runs: Option<Box<Vec<Run>>>,
}

/// Writers of a balance from which its [`Run`]s are kept.
const RUNS_FROM: usize = 32;

/// What a balance read just above an entry resolves to: how far below it
/// is the last entry that is not a delta (a full balance or an ESTIMATE,
/// at or below it), if there is one, and the deltas above that one. Kept
/// as a distance, so that an entry inserted or removed below it changes
/// nothing above the next such entry.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    barrier: Option<u32>,
    deltas: Deltas,
}

impl Run {
    /// The run at an entry holding `entry`, above the run `below`.
    fn after(below: Option<&Run>, entry: &Entry) -> Run {
        if is_barrier(entry) {
            return Run {
                barrier: Some(0),
                deltas: Deltas::default(),
            };
        }
        let mut run = below.map_or_else(Run::default, |below| Run {
            barrier: below.barrier.map(|distance| distance + 1),
            deltas: below.deltas,
        });
        match entry {
            Entry::Write(WriteValue::BalanceIncrement(d)) => run.deltas.increase(*d),
            Entry::Write(WriteValue::BalanceDecrement(d)) => run.deltas.decrease(*d),
            _ => {}
        }
        run
    }
}

/// Whether a balance read walking down the entries stops at `entry`.
fn is_barrier(entry: &Entry) -> bool {
    matches!(
        entry,
        Entry::Estimate | Entry::Write(WriteValue::Balance(_))
    )
}

/// A change to a location's entries, at an index.
#[derive(Debug, Clone, Copy)]
pub(super) enum Edit {
    Replaced(usize),
    Inserted(usize),
    Removed(usize),
}

impl Versions {
    /// Sets `tx`'s entry.
    pub(super) fn insert(&mut self, tx: TxIdx, entry: Entry) -> Edit {
        let entries = &mut self.entries;
        // Transactions are mostly recorded in block order, so a new entry
        // usually goes last: one look at the last entry instead of a
        // binary search whose every probe of a long list (a hot sender's
        // nonce, a hot slot) missed the cache.
        if entries.last().is_none_or(|(last, _)| *last < tx) {
            entries.push((tx, entry));
            return Edit::Inserted(entries.len() - 1);
        }
        match entries.binary_search_by_key(&tx, |(i, _)| *i) {
            Ok(at) => {
                entries[at].1 = entry;
                Edit::Replaced(at)
            }
            Err(at) => {
                entries.insert(at, (tx, entry));
                Edit::Inserted(at)
            }
        }
    }

    /// Removes `tx`'s entry, if it has one.
    pub(super) fn remove(&mut self, tx: TxIdx) -> Option<Edit> {
        let at = self.entries.binary_search_by_key(&tx, |(i, _)| *i).ok()?;
        self.entries.remove(at);
        Some(Edit::Removed(at))
    }

    /// Turns `tx`'s entry, if it has one, into an ESTIMATE.
    pub(super) fn set_estimate(&mut self, tx: TxIdx) -> Option<Edit> {
        let at = self.entries.binary_search_by_key(&tx, |(i, _)| *i).ok()?;
        self.entries[at].1 = Entry::Estimate;
        Some(Edit::Replaced(at))
    }

    /// The entries of transactions below `tx`, highest first.
    pub(super) fn below(&self, tx: TxIdx) -> impl Iterator<Item = &(TxIdx, Entry)> {
        self.entries[..self.entries.partition_point(|(i, _)| *i < tx)]
            .iter()
            .rev()
    }

    /// Brings the runs up to date after `edit` (of a balance's versions):
    /// from the edited entry up to the next barrier, whose run depends on
    /// nothing below it. A sender chain's transactions write in order, each
    /// just below the next one's.
    pub(super) fn reindex_runs(&mut self, edit: Edit) {
        let entries = &self.entries;
        if entries.len() < RUNS_FROM {
            self.runs = None;
            return;
        }
        let Some(runs) = self.runs.as_mut() else {
            let mut runs = Vec::with_capacity(entries.len());
            for (_, entry) in entries {
                runs.push(Run::after(runs.last(), entry));
            }
            self.runs = Some(Box::new(runs));
            return;
        };
        let from = match edit {
            Edit::Replaced(at) => at,
            Edit::Inserted(at) => {
                runs.insert(at, Run::default());
                at
            }
            Edit::Removed(at) => {
                runs.remove(at);
                at
            }
        };
        for index in from..entries.len() {
            let entry = &entries[index].1;
            if index > from && is_barrier(entry) {
                break;
            }
            runs[index] = Run::after(index.checked_sub(1).map(|below| &runs[below]), entry);
        }
    }

    /// The balance below `tx` from the runs, if they are kept.
    pub(super) fn balance_below(&self, tx: TxIdx) -> Option<Result<BalanceRead, Blocked>> {
        let runs = self.runs.as_ref()?;
        let below = self.entries.partition_point(|(i, _)| *i < tx);
        let Some(top) = below.checked_sub(1) else {
            return Some(Ok(BalanceRead::default()));
        };
        let run = runs[top];
        let barrier = run
            .barrier
            .map(|distance| &self.entries[top - distance as usize]);
        let full = match barrier {
            None => None,
            Some((writer, Entry::Estimate)) => return Some(Err(Blocked(*writer))),
            Some((_, Entry::Write(WriteValue::Balance(full)))) => Some(*full),
            // Only the two above are barriers.
            Some((_, Entry::Write(_))) => None,
        };
        Some(Ok(BalanceRead {
            full,
            deltas: run.deltas,
        }))
    }
}

/// Versions of one location below a reader, wherever they are kept.
pub(super) enum VersionsRef<'a> {
    Map(Ref<'a, Location, Versions>),
    Column(&'a [Padded<Mutex<Option<Entry>>>]),
}

impl VersionsRef<'_> {
    /// Visits the entries below `tx`, highest first, until `visit` breaks.
    pub(super) fn visit_below<T>(
        &self,
        tx: TxIdx,
        mut visit: impl FnMut(TxIdx, &Entry) -> Option<T>,
    ) -> Option<T> {
        match self {
            Self::Map(versions) => versions.below(tx).find_map(|(idx, e)| visit(*idx, e)),
            Self::Column(column) => column[..tx.min(column.len())]
                .iter()
                .enumerate()
                .rev()
                .find_map(|(idx, slot)| lock(slot).as_ref().and_then(|e| visit(idx, e))),
        }
    }

    /// The latest write below `tx`, with its writer.
    pub(super) fn latest_below(&self, tx: TxIdx) -> Result<Option<(TxIdx, WriteValue)>, Blocked> {
        self.visit_below(tx, |idx, entry| {
            Some(match entry {
                Entry::Estimate => Err(Blocked(idx)),
                Entry::Write(value) => Ok((idx, value.clone())),
            })
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::U256;

    /// A location's versions stay sorted by transaction, one per
    /// transaction, whatever order they are recorded in.
    #[test]
    fn versions_stay_sorted_with_one_entry_per_transaction() {
        let mut versions = Versions::default();
        let nonce = |n| Entry::Write(WriteValue::Nonce(n));
        for (tx, n) in [(3, 0), (7, 1), (5, 2), (1, 3), (7, 4), (9, 5), (3, 6)] {
            versions.insert(tx, nonce(n));
        }
        let seen: Vec<_> = versions
            .entries
            .iter()
            .map(|(tx, e)| match e {
                Entry::Write(WriteValue::Nonce(n)) => (*tx, *n),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(seen, [(1, 3), (3, 6), (5, 2), (7, 4), (9, 5)]);
        versions.remove(5);
        assert_eq!(
            versions.below(9).map(|(tx, _)| *tx).collect::<Vec<_>>(),
            [7, 3, 1]
        );
    }

    /// What a balance read below `tx` resolves to, walking every entry.
    fn walked_balance(versions: &Versions, tx: TxIdx) -> Result<BalanceRead, Blocked> {
        let mut read = BalanceRead::default();
        for (writer, entry) in versions.below(tx) {
            match entry {
                Entry::Estimate => return Err(Blocked(*writer)),
                Entry::Write(WriteValue::Balance(full)) => {
                    read.full = Some(*full);
                    break;
                }
                Entry::Write(WriteValue::BalanceIncrement(d)) => read.deltas.increase(*d),
                Entry::Write(WriteValue::BalanceDecrement(d)) => read.deltas.decrease(*d),
                Entry::Write(_) => {}
            }
        }
        Ok(read)
    }

    /// One change to a balance's versions.
    #[derive(Debug, Clone)]
    enum Change {
        Write(TxIdx, u8, u64),
        Estimate(TxIdx),
        Remove(TxIdx),
    }

    fn change() -> impl proptest::strategy::Strategy<Value = Change> {
        use proptest::prelude::*;
        prop_oneof![
            8 => (0..80usize, 0..3u8, 0..1_000u64).prop_map(|(tx, kind, v)| Change::Write(tx, kind, v)),
            1 => (0..80usize).prop_map(Change::Estimate),
            1 => (0..80usize).prop_map(Change::Remove),
        ]
    }

    proptest::proptest! {
        // Cases are cheap to regenerate; keep the tree clean.
        #![proptest_config(proptest::prelude::ProptestConfig {
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// A balance's runs resolve every read as walking its entries
        /// does, whatever order its versions were written, turned into
        /// ESTIMATEs or removed in.
        #[test]
        fn runs_resolve_balances_as_walking_does(
            changes in proptest::collection::vec(change(), 1..300),
        ) {
            let mut versions = Versions::default();
            for change in changes {
                let edit = match change {
                    Change::Write(tx, kind, v) => {
                        let v = U256::from(v);
                        let value = match kind {
                            0 => WriteValue::Balance(v),
                            1 => WriteValue::BalanceIncrement(v),
                            _ => WriteValue::BalanceDecrement(v),
                        };
                        Some(versions.insert(tx, Entry::Write(value)))
                    }
                    Change::Estimate(tx) => versions.set_estimate(tx),
                    Change::Remove(tx) => versions.remove(tx),
                };
                if let Some(edit) = edit {
                    versions.reindex_runs(edit);
                }
                let kept = versions.runs.is_some();
                proptest::prop_assert_eq!(kept, versions.entries.len() >= RUNS_FROM);
                for tx in 0..=81 {
                    if let Some(read) = versions.balance_below(tx) {
                        proptest::prop_assert_eq!(read, walked_balance(&versions, tx), "tx {}", tx);
                    }
                }
            }
        }
    }
}
