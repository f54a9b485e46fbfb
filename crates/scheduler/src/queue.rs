//! The scheduling queue: an active queue ordered by priority then arrival, a backoff queue
//! for pods that failed recently, and an unschedulable set parked until a cluster event may
//! help them (or until they have waited long enough).

use k8s_openapi::api::core::v1::Pod;
use parking_lot::Mutex;
use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Queue timings (upstream's defaults).
#[derive(Clone, Debug)]
pub struct QueueConfig {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// How long a pod may sit in the unschedulable set before it is retried anyway.
    pub max_unschedulable_stay: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            max_unschedulable_stay: Duration::from_secs(60),
        }
    }
}

/// Something that happened in the cluster which may make parked pods schedulable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterEvent {
    NodeAdd,
    NodeUpdate,
    AssignedPodDelete,
    AssignedPodAdd,
}

impl ClusterEvent {
    /// Whether a pod rejected by `plugin` may fit after this event.
    fn may_help(self, plugin: &str) -> bool {
        use crate::plugins::*;
        match self {
            ClusterEvent::NodeAdd | ClusterEvent::NodeUpdate => true,
            ClusterEvent::AssignedPodDelete => matches!(
                plugin,
                node_resources_fit::NAME | node_ports::NAME | inter_pod_affinity::NAME | pod_topology_spread::NAME
            ),
            ClusterEvent::AssignedPodAdd => matches!(plugin, inter_pod_affinity::NAME | pod_topology_spread::NAME),
        }
    }
}

/// Active-queue order: higher priority first, then older creation, then arrival.
type ActiveOrder = (Reverse<i32>, i128, u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Active(ActiveOrder),
    Backoff((Instant, u64)),
    Unschedulable(Instant),
    InFlight,
}

#[derive(Debug)]
struct Entry {
    pod: Arc<Pod>,
    place: Place,
    attempts: u32,
    /// When the pod last failed (backoff counts from here).
    last_failure: Option<Instant>,
    /// Plugins that rejected the pod in its last attempt.
    rejected_by: HashSet<&'static str>,
    /// Scheduling cycle in which the pod was last popped.
    cycle: u64,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    active: BTreeSet<(ActiveOrder, String)>,
    backoff: BTreeSet<((Instant, u64), String)>,
    seq: u64,
    cycle: u64,
    /// The scheduling cycle current when the last move event arrived: pods that failed in
    /// a cycle that started before it go to backoff rather than unschedulable.
    move_request_cycle: u64,
    closed: bool,
}

/// A pod handed out by [`SchedulingQueue::pop`].
#[derive(Debug, Clone)]
pub struct QueuedPod {
    pub pod: Arc<Pod>,
    pub key: String,
    pub attempts: u32,
    pub cycle: u64,
}

/// Sizes of the sub-queues, for tests and logs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct QueueLengths {
    pub active: usize,
    pub backoff: usize,
    pub unschedulable: usize,
    pub in_flight: usize,
}

/// The priority queue of pods waiting to be scheduled.
pub struct SchedulingQueue {
    inner: Mutex<Inner>,
    notify: Notify,
    config: QueueConfig,
}

fn creation_nanos(pod: &Pod) -> i128 {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0.as_nanosecond()).unwrap_or(0)
}

impl Inner {
    fn detach(&mut self, key: &str) {
        let Some(e) = self.entries.get(key) else { return };
        match e.place {
            Place::Active(order) => {
                self.active.remove(&(order, key.to_string()));
            }
            Place::Backoff(at) => {
                self.backoff.remove(&(at, key.to_string()));
            }
            Place::Unschedulable(_) | Place::InFlight => {}
        }
    }

    fn move_to_active(&mut self, key: &str) -> bool {
        self.detach(key);
        self.seq += 1;
        let seq = self.seq;
        let Some(e) = self.entries.get_mut(key) else { return false };
        let priority = e.pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
        let order = (Reverse(priority), creation_nanos(&e.pod), seq);
        e.place = Place::Active(order);
        self.active.insert((order, key.to_string()));
        true
    }

    fn move_to_backoff(&mut self, key: &str, ready: Instant) {
        self.detach(key);
        self.seq += 1;
        let at = (ready, self.seq);
        if let Some(e) = self.entries.get_mut(key) {
            e.place = Place::Backoff(at);
            self.backoff.insert((at, key.to_string()));
        }
    }
}

impl SchedulingQueue {
    pub fn new(config: QueueConfig) -> SchedulingQueue {
        SchedulingQueue { inner: Mutex::new(Inner::default()), notify: Notify::new(), config }
    }

    fn backoff_duration(&self, attempts: u32) -> Duration {
        let shift = attempts.saturating_sub(1).min(16);
        (self.config.initial_backoff * (1u32 << shift)).min(self.config.max_backoff)
    }

    fn backoff_ready(&self, e: &Entry) -> Option<Instant> {
        e.last_failure.map(|t| t + self.backoff_duration(e.attempts))
    }

    /// A new pending pod, or an update of one. Updates to a parked pod whose spec or labels
    /// changed move it back (the change may make it fit); other updates only refresh it.
    pub fn add_or_update(&self, key: &str, pod: Arc<Pod>, now: Instant) {
        let mut inner = self.inner.lock();
        let wake = match inner.entries.get_mut(key) {
            None => {
                inner.entries.insert(
                    key.to_string(),
                    Entry {
                        pod,
                        place: Place::InFlight,
                        attempts: 0,
                        last_failure: None,
                        rejected_by: HashSet::new(),
                        cycle: 0,
                    },
                );
                inner.move_to_active(key)
            }
            Some(e) => {
                let relevant = e.pod.spec != pod.spec || e.pod.metadata.labels != pod.metadata.labels;
                let uid_changed = e.pod.metadata.uid != pod.metadata.uid;
                e.pod = pod;
                if uid_changed {
                    e.attempts = 0;
                    e.last_failure = None;
                }
                match e.place {
                    Place::Unschedulable(_) if relevant || uid_changed => {
                        match self.backoff_ready(e).filter(|t| *t > now) {
                            Some(t) => {
                                inner.move_to_backoff(key, t);
                                false
                            }
                            None => inner.move_to_active(key),
                        }
                    }
                    _ => false,
                }
            }
        };
        drop(inner);
        if wake {
            self.notify.notify_one();
        }
    }

    /// A pod that left the queue's concern (deleted, bound, terminating).
    pub fn delete(&self, key: &str) {
        let mut inner = self.inner.lock();
        inner.detach(key);
        inner.entries.remove(key);
    }

    /// Waits for the next pod to schedule; `None` once the queue is closed.
    pub async fn pop(&self) -> Option<QueuedPod> {
        loop {
            if let Some(p) = self.try_pop() {
                return Some(p);
            }
            if self.inner.lock().closed {
                return None;
            }
            self.notify.notified().await;
        }
    }

    /// The next pod, if the active queue has one.
    pub fn try_pop(&self) -> Option<QueuedPod> {
        let mut inner = self.inner.lock();
        let first = inner.active.pop_first()?;
        inner.cycle += 1;
        let cycle = inner.cycle;
        let e = inner.entries.get_mut(&first.1).expect("active pods have entries");
        e.place = Place::InFlight;
        e.attempts += 1;
        e.cycle = cycle;
        Some(QueuedPod { pod: e.pod.clone(), key: first.1, attempts: e.attempts, cycle })
    }

    /// Stops [`SchedulingQueue::pop`] from waiting.
    pub fn close(&self) {
        self.inner.lock().closed = true;
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    /// A popped pod was assumed on a node: the queue forgets it.
    pub fn done(&self, key: &str) {
        self.delete(key);
    }

    /// A popped pod could not be scheduled: `Some(plugins)` that rejected it (empty: any
    /// cluster event may help, e.g. there were no nodes), or `None` for an error such as a
    /// failed binding. Unschedulable pods are parked until an event may help them, or go to
    /// backoff when such an event arrived while they were being scheduled; errors always
    /// go to backoff.
    pub fn requeue_failed(&self, key: &str, rejected_by: Option<HashSet<&'static str>>, now: Instant) {
        let mut inner = self.inner.lock();
        let move_request_cycle = inner.move_request_cycle;
        let Some(e) = inner.entries.get_mut(key) else { return };
        if e.place != Place::InFlight {
            return;
        }
        e.last_failure = Some(now);
        let error_only = rejected_by.is_none();
        e.rejected_by = rejected_by.unwrap_or_default();
        let ready = self.backoff_ready(e).unwrap_or(now);
        if error_only || e.cycle <= move_request_cycle {
            inner.move_to_backoff(key, ready);
        } else {
            e.place = Place::Unschedulable(now);
        }
    }

    /// Moves parked pods that `event` may help to active (or backoff while they back off).
    pub fn move_on_event(&self, event: ClusterEvent, now: Instant) {
        let mut inner = self.inner.lock();
        inner.move_request_cycle = inner.cycle;
        let candidates: Vec<String> = inner
            .entries
            .iter()
            .filter(|(_, e)| matches!(e.place, Place::Unschedulable(_)))
            .filter(|(_, e)| e.rejected_by.is_empty() || e.rejected_by.iter().any(|p| event.may_help(p)))
            .map(|(k, _)| k.clone())
            .collect();
        self.release(inner, candidates, now);
    }

    /// Moves pods whose backoff has ended to the active queue.
    pub fn flush_backoff_completed(&self, now: Instant) {
        let mut inner = self.inner.lock();
        let mut woke = false;
        while let Some(first) = inner.backoff.first().cloned() {
            if first.0.0 > now {
                break;
            }
            woke |= inner.move_to_active(&first.1);
        }
        drop(inner);
        if woke {
            self.notify.notify_one();
        }
    }

    /// Retries pods parked as unschedulable for longer than the configured stay.
    pub fn flush_unschedulable_leftover(&self, now: Instant) {
        let inner = self.inner.lock();
        let stale: Vec<String> = inner
            .entries
            .iter()
            .filter(|(_, e)| {
                matches!(e.place, Place::Unschedulable(since) if now.saturating_duration_since(since) >= self.config.max_unschedulable_stay)
            })
            .map(|(k, _)| k.clone())
            .collect();
        self.release(inner, stale, now);
    }

    /// Sends parked pods back: to the backoff queue while their backoff lasts, else to the
    /// active queue, waking the scheduler when one became active.
    fn release(&self, mut inner: parking_lot::MutexGuard<'_, Inner>, keys: Vec<String>, now: Instant) {
        let mut woke = false;
        for key in keys {
            let ready = inner.entries.get(&key).and_then(|e| self.backoff_ready(e));
            match ready.filter(|t| *t > now) {
                Some(t) => inner.move_to_backoff(&key, t),
                None => woke |= inner.move_to_active(&key),
            }
        }
        drop(inner);
        if woke {
            self.notify.notify_one();
        }
    }

    /// Keys of every pod the queue holds (any sub-queue or in flight).
    pub fn keys(&self) -> Vec<String> {
        self.inner.lock().entries.keys().cloned().collect()
    }

    pub fn lengths(&self) -> QueueLengths {
        let inner = self.inner.lock();
        let mut l = QueueLengths::default();
        for e in inner.entries.values() {
            match e.place {
                Place::Active(_) => l.active += 1,
                Place::Backoff(_) => l.backoff += 1,
                Place::Unschedulable(_) => l.unschedulable += 1,
                Place::InFlight => l.in_flight += 1,
            }
        }
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::{node_affinity, node_resources_fit};
    use serde_json::json;

    fn pod(name: &str, priority: i32, created: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "ns", "uid": name, "creationTimestamp": created},
                "spec": {"priority": priority, "containers": [{"name": "c"}]},
            }))
            .unwrap(),
        )
    }

    fn queue() -> SchedulingQueue {
        SchedulingQueue::new(QueueConfig::default())
    }

    fn set(p: &'static str) -> HashSet<&'static str> {
        [p].into_iter().collect()
    }

    #[test]
    fn orders_by_priority_then_creation() {
        let q = queue();
        let now = Instant::now();
        q.add_or_update("ns/late", pod("late", 0, "2024-01-01T00:00:02Z"), now);
        q.add_or_update("ns/early", pod("early", 0, "2024-01-01T00:00:01Z"), now);
        q.add_or_update("ns/high", pod("high", 100, "2024-01-01T00:00:09Z"), now);
        let order: Vec<String> = std::iter::from_fn(|| q.try_pop()).map(|p| p.key).collect();
        assert_eq!(order, ["ns/high", "ns/early", "ns/late"]);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let q = queue();
        assert_eq!(q.backoff_duration(1), Duration::from_secs(1));
        assert_eq!(q.backoff_duration(2), Duration::from_secs(2));
        assert_eq!(q.backoff_duration(4), Duration::from_secs(8));
        assert_eq!(q.backoff_duration(5), Duration::from_secs(10));
        assert_eq!(q.backoff_duration(50), Duration::from_secs(10));
    }

    #[test]
    fn binding_errors_back_off_then_return() {
        let q = queue();
        let t0 = Instant::now();
        q.add_or_update("ns/a", pod("a", 0, "2024-01-01T00:00:00Z"), t0);
        let p = q.try_pop().unwrap();
        assert_eq!(p.attempts, 1);
        q.requeue_failed("ns/a", None, t0);
        assert_eq!(q.lengths().backoff, 1);
        q.flush_backoff_completed(t0 + Duration::from_millis(500));
        assert!(q.try_pop().is_none(), "still backing off");
        q.flush_backoff_completed(t0 + Duration::from_secs(1));
        let p = q.try_pop().unwrap();
        assert_eq!(p.attempts, 2);
        // Second failure: two seconds.
        q.requeue_failed("ns/a", None, t0);
        q.flush_backoff_completed(t0 + Duration::from_millis(1500));
        assert!(q.try_pop().is_none());
        q.flush_backoff_completed(t0 + Duration::from_secs(2));
        assert!(q.try_pop().is_some());
    }

    #[test]
    fn unschedulable_pods_move_on_helpful_events_only() {
        let q = queue();
        let t0 = Instant::now();
        q.add_or_update("ns/fit", pod("fit", 0, "2024-01-01T00:00:00Z"), t0);
        q.add_or_update("ns/aff", pod("aff", 0, "2024-01-01T00:00:01Z"), t0);
        let a = q.try_pop().unwrap();
        let b = q.try_pop().unwrap();
        assert_eq!((a.key.as_str(), b.key.as_str()), ("ns/fit", "ns/aff"));
        q.requeue_failed("ns/fit", Some(set(node_resources_fit::NAME)), t0);
        q.requeue_failed("ns/aff", Some(set(node_affinity::NAME)), t0);
        assert_eq!(q.lengths().unschedulable, 2);

        // A pod deletion frees resources, not labels.
        let later = t0 + Duration::from_secs(5);
        q.move_on_event(ClusterEvent::AssignedPodDelete, later);
        assert_eq!(q.lengths(), QueueLengths { active: 1, backoff: 0, unschedulable: 1, in_flight: 0 });
        assert_eq!(q.try_pop().unwrap().key, "ns/fit");

        // A node add helps everyone; within the backoff window the pod waits in backoff.
        q.move_on_event(ClusterEvent::NodeAdd, t0 + Duration::from_millis(100));
        assert_eq!(q.lengths().backoff, 1);
        q.flush_backoff_completed(t0 + Duration::from_secs(1));
        assert_eq!(q.try_pop().unwrap().key, "ns/aff");
    }

    #[test]
    fn a_move_during_the_cycle_sends_the_failure_move_to_backoff() {
        let q = queue();
        let t0 = Instant::now();
        q.add_or_update("ns/a", pod("a", 0, "2024-01-01T00:00:00Z"), t0);
        q.try_pop().unwrap();
        q.move_on_event(ClusterEvent::NodeAdd, t0);
        q.requeue_failed("ns/a", Some(set(node_resources_fit::NAME)), t0);
        assert_eq!(q.lengths().backoff, 1, "the node added mid-cycle may fit the pod");
    }

    #[test]
    fn leftover_unschedulable_pods_are_flushed_and_deletes_are_forgotten() {
        let q = queue();
        let t0 = Instant::now();
        q.add_or_update("ns/a", pod("a", 0, "2024-01-01T00:00:00Z"), t0);
        q.try_pop().unwrap();
        q.requeue_failed("ns/a", Some(set(node_affinity::NAME)), t0);
        q.flush_unschedulable_leftover(t0 + Duration::from_secs(30));
        assert_eq!(q.lengths().unschedulable, 1);
        q.flush_unschedulable_leftover(t0 + Duration::from_secs(61));
        assert_eq!(q.lengths().active, 1);
        q.delete("ns/a");
        assert!(q.try_pop().is_none());
        assert_eq!(q.lengths(), QueueLengths::default());
    }

    #[test]
    fn spec_updates_move_a_parked_pod() {
        let q = queue();
        let t0 = Instant::now();
        q.add_or_update("ns/a", pod("a", 0, "2024-01-01T00:00:00Z"), t0);
        q.try_pop().unwrap();
        q.requeue_failed("ns/a", Some(set(node_affinity::NAME)), t0);
        q.add_or_update("ns/a", pod("a", 0, "2024-01-01T00:00:00Z"), t0 + Duration::from_secs(5));
        assert_eq!(q.lengths().unschedulable, 1, "an identical object changes nothing");
        q.add_or_update("ns/a", pod("a", 5, "2024-01-01T00:00:00Z"), t0 + Duration::from_secs(5));
        assert_eq!(q.lengths().active, 1);
    }

    #[tokio::test]
    async fn pop_waits_for_a_pod() {
        let q = Arc::new(queue());
        let q2 = q.clone();
        let waiter = tokio::spawn(async move { q2.pop().await.map(|p| p.key) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        q.add_or_update("ns/a", pod("a", 0, "2024-01-01T00:00:00Z"), Instant::now());
        assert_eq!(waiter.await.unwrap().as_deref(), Some("ns/a"));
    }

    #[test]
    fn failures_without_plugins_wait_for_any_event() {
        let q = queue();
        let t0 = Instant::now();
        q.add_or_update("ns/a", pod("a", 0, "2024-01-01T00:00:00Z"), t0);
        q.try_pop().unwrap();
        q.requeue_failed("ns/a", Some(HashSet::new()), t0);
        q.flush_backoff_completed(t0 + Duration::from_secs(20));
        assert_eq!(q.lengths().unschedulable, 1, "no retry loop while nothing changes");
        q.move_on_event(ClusterEvent::AssignedPodAdd, t0 + Duration::from_secs(20));
        assert_eq!(q.lengths().active, 1);
    }
}
