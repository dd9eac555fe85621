//! The channel lookups intake remembers: hits and misses, each for [`TTL`], within a bound.
//!
//! Webhook URLs carry a channel id and Messenger bodies a page id, both chosen by whoever posts:
//! remembering every miss would let a stream of random ids grow the cache without end. A full
//! cache first forgets its expired entries, then its misses; misses that still do not fit are not
//! remembered (they cost one store lookup each, like before the cache), and hits always are (they
//! are bounded by the real channels).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How long a lookup is trusted before the store is asked again. A stale hit is still used while
/// the store is unreachable, so intake keeps acknowledging through a short store outage.
pub(super) const TTL: Duration = Duration::from_secs(30);

/// Most entries one map keeps (hits beyond it are kept; misses are not).
pub(super) const MAX_ENTRIES: usize = 10_000;

/// Lookups by one kind of key: the value found (None: no such channel) and when.
pub(super) struct Lookups<K, V> {
    map: HashMap<K, (Option<V>, Instant)>,
}

impl<K, V> Default for Lookups<K, V> {
    fn default() -> Self {
        Self { map: HashMap::new() }
    }
}

impl<K: Hash + Eq, V: Clone> Lookups<K, V> {
    /// The remembered lookup of `key`, of any age, with when it was made.
    pub(super) fn get<Q>(&self, key: &Q) -> Option<(Option<V>, Instant)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key).cloned()
    }

    /// Remembers that `key` found `value` at `now`, within the bound.
    pub(super) fn remember(&mut self, key: K, value: Option<V>, now: Instant) {
        if self.map.len() >= MAX_ENTRIES && !self.map.contains_key(&key) {
            self.map.retain(|_, (_, at)| now.saturating_duration_since(*at) < TTL);
            if self.map.len() >= MAX_ENTRIES {
                self.map.retain(|_, (found, _)| found.is_some());
            }
            if self.map.len() >= MAX_ENTRIES && value.is_none() {
                return;
            }
        }
        self.map.insert(key, (value, now));
    }

    /// Forgets `key`.
    pub(super) fn forget(&mut self, key: &K) {
        self.map.remove(key);
    }

    /// Forgets everything.
    pub(super) fn clear(&mut self) {
        self.map.clear();
    }

    /// Entries kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_of_unknown_ids_stays_within_the_bound_and_known_channels_stay() {
        let mut lookups: Lookups<String, &str> = Lookups::default();
        let now = Instant::now();
        for known in 0..100 {
            lookups.remember(format!("known-{known}"), Some("route"), now);
        }
        for unknown in 0..3 * MAX_ENTRIES {
            lookups.remember(format!("random-{unknown}"), None, now);
            assert!(lookups.len() <= MAX_ENTRIES, "{} entries after {unknown} misses", lookups.len());
        }
        for known in 0..100 {
            assert_eq!(
                lookups.get(format!("known-{known}").as_str()).unwrap().0,
                Some("route"),
                "known channels are kept"
            );
        }
        // A real channel looked up now is remembered even when misses fill the cache.
        lookups.remember("new-channel".to_owned(), Some("route"), now);
        assert_eq!(lookups.get("new-channel").unwrap().0, Some("route"));
    }

    #[test]
    fn expired_entries_make_room_first() {
        let mut lookups: Lookups<u32, &str> = Lookups::default();
        let then = Instant::now();
        for id in 0..MAX_ENTRIES as u32 {
            lookups.remember(id, Some("old route"), then);
        }
        let later = then + TTL + Duration::from_secs(1);
        lookups.remember(u32::MAX, None, later);
        assert_eq!(lookups.len(), 1, "every expired entry went");
        assert_eq!(lookups.get(&u32::MAX).unwrap().0, None);
    }
}
