//! [`SortedMap`]: the sorted vector the state changes keep their accounts
//! and each account's slots in.

use std::fmt::Debug;

/// A map kept as a vector of entries in strictly ascending key order,
/// looked up by binary search: what [`AccountChanges`](super::AccountChanges)
/// and [`SlotChanges`](super::SlotChanges) are.
///
/// The executors build each once, then look entries up or walk them in
/// order; a vector costs them one allocation where a `BTreeMap` allocates
/// a node per eleven entries, and vectors built apart (the shares of a
/// partitioned block's accounts, a token's slots from each partition) are
/// joined by appending them. Inserting or removing an entry moves the
/// entries above it: build with [`FromIterator`] or [`Self::merge_sorted`]
/// rather than one insert at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortedMap<K, V>(Vec<(K, V)>);

impl<K, V> Default for SortedMap<K, V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<K: Ord, V> SortedMap<K, V> {
    /// Entries the executors have put in strictly ascending key order.
    /// Checked, in one pass: a lookup in a vector out of order would miss
    /// silently, so one is sorted instead (a bug, caught in debug builds).
    pub(crate) fn from_sorted(entries: Vec<(K, V)>) -> Self {
        debug_assert!(is_canonical(&entries), "entries out of order");
        Self(canonical(entries))
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn position(&self, key: &K) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.cmp(key))
    }

    /// The value at `key`, if there is one.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.position(key).ok().map(|at| &self.0[at].1)
    }

    /// The value at `key`, mutably, if there is one.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.position(key).ok().map(|at| &mut self.0[at].1)
    }

    /// Whether there is a value at `key`.
    pub fn contains_key(&self, key: &K) -> bool {
        self.position(key).is_ok()
    }

    /// Sets the value at `key`, returning the one it replaces. Moves every
    /// entry above it.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.position(&key) {
            Ok(at) => Some(std::mem::replace(&mut self.0[at].1, value)),
            Err(at) => {
                self.0.insert(at, (key, value));
                None
            }
        }
    }

    /// Removes the value at `key`. Moves every entry above it.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.position(key).ok().map(|at| self.0.remove(at).1)
    }

    /// Keeps the entries for which `keep` holds.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.0.retain_mut(|(key, value)| keep(key, value));
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// The entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.into_iter()
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.0.iter().map(|(key, _)| key)
    }

    /// The values, in key order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, value)| value)
    }

    /// The entries in key order, as a slice.
    pub fn as_slice(&self) -> &[(K, V)] {
        &self.0
    }
}

impl<K: Ord + Default, V: Default> SortedMap<K, V> {
    /// Adds `more` (in strictly ascending key order): a key in both gets
    /// `combine(existing, new)`. In place, in one pass over the entries
    /// above the lowest new one, so a few entries added to many (a block's
    /// beneficiary and withdrawals) cost one move of what lies above them,
    /// not a copy of everything.
    pub fn merge_sorted(&mut self, more: Vec<(K, V)>, mut combine: impl FnMut(&mut V, V)) {
        let mut new = Vec::with_capacity(more.len());
        for (key, value) in more {
            match self.position(&key) {
                Ok(at) => combine(&mut self.0[at].1, value),
                Err(_) => new.push((key, value)),
            }
        }
        // Grow by a gap, then from the highest new entry down: the entries
        // above it move up past the gap, and it takes the gap's top slot.
        let mut read = self.0.len();
        self.0.resize_with(read + new.len(), Default::default);
        let mut write = self.0.len();
        for (key, value) in new.into_iter().rev() {
            let at = self.0[..read].partition_point(|(k, _)| *k < key);
            self.0[at..write].rotate_left(read - at);
            write -= read - at + 1;
            self.0[write] = (key, value);
            read = at;
        }
    }
}

/// Whether `entries` are in strictly ascending key order.
pub(crate) fn is_canonical<K: Ord, V>(entries: &[(K, V)]) -> bool {
    entries.windows(2).all(|w| w[0].0 < w[1].0)
}

/// `entries` in strictly ascending key order: sorted (a stable sort, cheap
/// on sorted runs) unless they are, and of a key given twice, the later
/// value, as in a map.
fn canonical<K: Ord, V>(mut entries: Vec<(K, V)>) -> Vec<(K, V)> {
    if !is_canonical(&entries) {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        // `dedup_by` keeps the first of equals: move the later into it.
        entries.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                std::mem::swap(later, earlier);
            }
            same
        });
    }
    entries
}

impl<K: Ord, V> FromIterator<(K, V)> for SortedMap<K, V> {
    /// Sorts the entries; of a key given twice, the later value stands, as
    /// in a map.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(canonical(iter.into_iter().collect()))
    }
}

impl<K: Ord, V> Extend<(K, V)> for SortedMap<K, V> {
    /// Adds the entries; of a key given twice (here or among them), the
    /// later value stands, as in a map.
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        self.0.extend(iter);
        self.0 = canonical(std::mem::take(&mut self.0));
    }
}

impl<K: Ord, V, const N: usize> From<[(K, V); N]> for SortedMap<K, V> {
    fn from(entries: [(K, V); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl<K, V> IntoIterator for SortedMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a, K, V> IntoIterator for &'a SortedMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (K, V)>, fn(&'a (K, V)) -> (&'a K, &'a V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(key, value)| (key, value))
    }
}

impl<K: Ord + Debug, V> std::ops::Index<&K> for SortedMap<K, V> {
    type Output = V;

    /// The value at `key`; panics if there is none.
    fn index(&self, key: &K) -> &V {
        self.get(key)
            .unwrap_or_else(|| panic!("no entry at {key:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extending_keeps_the_order_and_the_later_value() {
        let mut map: SortedMap<u8, u8> = [(5, 0), (1, 0), (3, 0)].into();
        map.extend([(4, 1), (3, 1), (0, 1), (4, 2)]);
        assert_eq!(map.as_slice(), &[(0, 1), (1, 0), (3, 1), (4, 2), (5, 0)]);
        assert_eq!(map.get(&3), Some(&1));
        assert_eq!(map[&4], 2);
        assert_eq!(map.get(&2), None);
    }

    #[test]
    fn retaining_and_clearing_keep_the_order() {
        let mut map: SortedMap<u8, u8> = (0..10).map(|k| (9 - k, k)).collect();
        map.retain(|key, value| {
            *value += 1;
            key % 3 != 0
        });
        assert_eq!(map.keys().copied().collect::<Vec<_>>(), [1, 2, 4, 5, 7, 8]);
        assert_eq!(
            map.values().copied().collect::<Vec<_>>(),
            [9, 8, 6, 5, 3, 2]
        );
        map.clear();
        assert!(map.is_empty());
    }
}
