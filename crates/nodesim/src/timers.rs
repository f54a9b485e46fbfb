//! The one timer queue shared by every node and pod: keys with due times, at most one pending
//! entry per key (the earliest wins), and heartbeat phases spread over the interval.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Due times per key; a key is either waiting, in flight (being worked on) or neither.
#[derive(Debug)]
pub struct Timers<K> {
    due: BTreeMap<(Instant, u64), K>,
    pending: HashMap<K, (Instant, u64)>,
    seq: u64,
}

impl<K: Clone + Eq + Hash> Default for Timers<K> {
    fn default() -> Self {
        Timers { due: BTreeMap::new(), pending: HashMap::new(), seq: 0 }
    }
}

impl<K: Clone + Eq + Hash> Timers<K> {
    /// Schedules `key` at `at`, unless it is already due earlier. Returns true when the earliest
    /// due time of the whole queue may have moved earlier (the loop should wake up).
    pub fn schedule(&mut self, key: K, at: Instant) -> bool {
        if let Some(&(existing, seq)) = self.pending.get(&key) {
            if existing <= at {
                return false;
            }
            self.due.remove(&(existing, seq));
        }
        self.seq += 1;
        let slot = (at, self.seq);
        let earliest = self.due.keys().next().is_none_or(|first| *first > slot);
        self.due.insert(slot, key.clone());
        self.pending.insert(key, slot);
        earliest
    }

    /// Forgets `key`.
    pub fn cancel(&mut self, key: &K) {
        if let Some(slot) = self.pending.remove(key) {
            self.due.remove(&slot);
        }
    }

    /// The earliest due time.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.keys().next().map(|(at, _)| *at)
    }

    /// Removes and returns the keys due at or before `now`, earliest first, at most `max`.
    pub fn pop_due(&mut self, now: Instant, max: usize) -> Vec<K> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(entry) = self.due.first_entry() else { break };
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            self.pending.remove(&key);
            out.push(key);
        }
        out
    }

    /// How many keys are waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// The phase of node `index` of `count` within one heartbeat interval: nodes are spread evenly so
/// that a thousand nodes renewing every 10 s write a steady hundred Leases a second rather than a
/// thousand at once.
pub fn spread(index: usize, count: usize, interval: Duration) -> Duration {
    if count == 0 {
        return Duration::ZERO;
    }
    let nanos = interval.as_nanos() * (index % count) as u128 / count as u128;
    Duration::from_nanos(nanos.min(u64::MAX as u128) as u64)
}

/// The next due time of a periodic job that was due at `last_due`: one interval later, keeping
/// its phase; if that is already past (the engine fell behind), `now` plus a small slack rather
/// than a burst of catch-up writes.
pub fn next_period(last_due: Instant, interval: Duration, now: Instant) -> Instant {
    let next = last_due + interval;
    if next >= now { next } else { now + interval.min(Duration::from_millis(50)) }
}

/// The due time to keep after a periodic job ran at `now`: its current `due` when the run was an
/// extra one ahead of schedule (a resume, a registration), else the next period.
pub fn advance(due: Instant, interval: Duration, now: Instant) -> Instant {
    if due > now + Duration::from_millis(20) { due } else { next_period(due, interval, now) }
}

/// Exponential backoff for retries: 200 ms doubling per failure, capped at `cap`.
pub fn backoff(failures: u32, cap: Duration) -> Duration {
    let base = Duration::from_millis(200);
    let factor = 1u32 << failures.min(16);
    base.saturating_mul(factor).min(cap).max(Duration::from_millis(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_schedule_wins_and_pops_in_order() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        assert!(t.schedule("a", t0 + Duration::from_secs(5)));
        assert!(t.schedule("b", t0 + Duration::from_secs(3)));
        assert!(!t.schedule("a", t0 + Duration::from_secs(9)), "a later time does not replace");
        assert!(t.schedule("a", t0 + Duration::from_secs(1)), "an earlier time does");
        assert_eq!(t.len(), 2);
        assert_eq!(t.next_due(), Some(t0 + Duration::from_secs(1)));
        assert!(t.pop_due(t0, 10).is_empty());
        assert_eq!(t.pop_due(t0 + Duration::from_secs(4), 10), vec!["a", "b"]);
        assert!(t.is_empty());
        assert_eq!(t.next_due(), None);
    }

    #[test]
    fn pop_respects_the_limit_and_cancel_forgets() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        for i in 0..5 {
            t.schedule(i, t0);
        }
        t.cancel(&3);
        assert_eq!(t.pop_due(t0, 2), vec![0, 1]);
        assert_eq!(t.pop_due(t0, 10), vec![2, 4]);
    }

    #[test]
    fn phases_are_spread_over_the_interval() {
        let interval = Duration::from_secs(10);
        assert_eq!(spread(0, 1000, interval), Duration::ZERO);
        assert_eq!(spread(1, 1000, interval), Duration::from_millis(10));
        assert_eq!(spread(500, 1000, interval), Duration::from_secs(5));
        assert!(spread(999, 1000, interval) < interval);
        assert_eq!(spread(3, 0, interval), Duration::ZERO);
        // At most a few nodes share any 100 ms window.
        let mut buckets = [0usize; 100];
        for i in 0..1000 {
            buckets[(spread(i, 1000, interval).as_millis() / 100) as usize] += 1;
        }
        assert!(buckets.iter().all(|b| *b == 10), "{buckets:?}");
    }

    #[test]
    fn periods_keep_phase_and_do_not_burst() {
        let t0 = Instant::now();
        let i = Duration::from_secs(10);
        assert_eq!(next_period(t0, i, t0 + Duration::from_secs(1)), t0 + i);
        let late = t0 + Duration::from_secs(25);
        assert_eq!(next_period(t0, i, late), late + Duration::from_millis(50));
    }

    #[test]
    fn extra_runs_keep_the_schedule() {
        let t0 = Instant::now();
        let i = Duration::from_secs(10);
        let due = t0 + Duration::from_secs(10);
        assert_eq!(advance(due, i, t0 + Duration::from_secs(3)), due, "an early run keeps the next due time");
        assert_eq!(advance(due, i, due), due + i);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let cap = Duration::from_secs(7);
        assert_eq!(backoff(0, cap), Duration::from_millis(200));
        assert_eq!(backoff(1, cap), Duration::from_millis(400));
        assert_eq!(backoff(3, cap), Duration::from_millis(1600));
        assert_eq!(backoff(10, cap), cap);
        assert_eq!(backoff(u32::MAX, cap), cap);
    }
}
