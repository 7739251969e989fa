//! What the plan learnt of contract codes, kept for the process: the
//! contracts a block's plan asks about recur block after block, and reading
//! a large one (24 KB) again takes microseconds to tenths of a millisecond.
//! Keyed by code hash (with whatever else the answer depends on), so an
//! answer never goes stale; forgotten all at once when full, which bounds
//! the memory without bookkeeping per entry.

use alloy_primitives::map::HashMap;
use std::{hash::Hash, sync::Mutex};

/// A process-wide map from a code's key to what was learnt of it, holding
/// at most `capacity` answers.
pub(super) struct CodeCache<K, V> {
    answers: Mutex<Option<HashMap<K, V>>>,
    capacity: usize,
}

impl<K: Eq + Hash, V: Clone> CodeCache<K, V> {
    /// An empty cache of at most `capacity` answers (allocated on first use,
    /// so that it can be a `static`).
    pub(super) const fn new(capacity: usize) -> Self {
        Self {
            answers: Mutex::new(None),
            capacity,
        }
    }

    /// The answer for `key`, if learnt before in this process.
    pub(super) fn get(&self, key: &K) -> Option<V> {
        self.lock().as_ref()?.get(key).cloned()
    }

    /// Remembers `answer` for `key`, first forgetting every answer if the
    /// cache is full.
    pub(super) fn insert(&self, key: K, answer: V) {
        let mut answers = self.lock();
        let answers = answers.get_or_insert_with(HashMap::default);
        if answers.len() >= self.capacity {
            answers.clear();
        }
        answers.insert(key, answer);
    }

    /// The map, even if a thread panicked holding it: every answer in it
    /// was complete when inserted.
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<HashMap<K, V>>> {
        self.answers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::CodeCache;

    #[test]
    fn a_full_cache_forgets_everything_then_remembers_the_new_answer() {
        let cache = CodeCache::new(2);
        assert_eq!(cache.get(&1), None);
        cache.insert(1, 'a');
        cache.insert(2, 'b');
        assert_eq!((cache.get(&1), cache.get(&2)), (Some('a'), Some('b')));
        cache.insert(3, 'c');
        assert_eq!((cache.get(&1), cache.get(&2)), (None, None));
        assert_eq!(cache.get(&3), Some('c'));
    }
}
