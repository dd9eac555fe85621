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

/// How often the daemon loads every channel into the cache (`Intake::keep_routes_loaded`): well
/// inside [`TTL`], so a channel's entry is always fresh while the store answers.
pub(super) const PRELOAD_EVERY: Duration = Duration::from_secs(10);

/// After a refresh failed and a stale entry routed instead, how long that entry is used again
/// before the store is asked once more: through an outage longer than [`TTL`], one webhook per
/// channel every this long waits for the store, not every webhook.
pub(super) const STALE_RECHECK: Duration = Duration::from_secs(5);

/// The longest intake waits to refresh an entry it could fall back to: a store that is down can
/// take its driver's whole server selection timeout to say so.
pub(super) const STALE_LOOKUP_WAIT: Duration = Duration::from_millis(500);

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

    /// Keeps routing by a stale entry whose refresh failed at `now`: it counts as fresh for
    /// another [`STALE_RECHECK`], then the store is asked again.
    pub(super) fn keep_stale(&mut self, key: K, value: Option<V>, now: Instant) {
        let at = now.checked_sub(TTL.saturating_sub(STALE_RECHECK)).unwrap_or(now);
        self.map.insert(key, (value, at));
    }

    /// Forgets the found entries whose key `keep` refuses (a channel that no longer exists);
    /// misses stay.
    pub(super) fn forget_found_unless(&mut self, keep: impl Fn(&K) -> bool) {
        self.map.retain(|key, (found, _)| found.is_none() || keep(key));
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

    /// Found by the fault harness (tests/faults.rs): through a 30 s store outage, once the
    /// entries expired every webhook waited for the store before its stale entry routed it, and
    /// providers timed out. Now one refresh per channel per STALE_RECHECK is tried.
    #[test]
    fn a_stale_entry_whose_refresh_failed_routes_without_asking_again_for_a_while() {
        let mut lookups: Lookups<u32, &str> = Lookups::default();
        let then = Instant::now();
        lookups.remember(1, Some("route"), then);
        let expired = then + TTL + Duration::from_secs(1);
        let (_, at) = lookups.get(&1).unwrap();
        assert!(expired.saturating_duration_since(at) >= TTL, "expired: the store is asked");
        lookups.keep_stale(1, Some("route"), expired);
        let (route, at) = lookups.get(&1).unwrap();
        assert_eq!(route, Some("route"));
        let soon = expired + STALE_RECHECK - Duration::from_millis(100);
        assert!(soon.saturating_duration_since(at) < TTL, "within the recheck time it counts as fresh");
        let later = expired + STALE_RECHECK + Duration::from_millis(100);
        assert!(later.saturating_duration_since(at) >= TTL, "after it the store is asked again");
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
