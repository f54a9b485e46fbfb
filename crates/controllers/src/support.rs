//! Small pieces shared by the garbage collector, namespace, service account and root CA
//! controllers: an error type kube-runtime's `Controller` accepts, shutdown as a future, API
//! error classification, and a keyed work queue with deduplication and per-key backoff for the
//! controllers that do not fit `Controller` (the garbage collector works over every resource).

use crate::Shutdown;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// A reconcile failure; kube-runtime wants a `std::error::Error`, which `anyhow::Error` is not.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct ReconcileError(pub anyhow::Error);

impl From<kube::Error> for ReconcileError {
    fn from(e: kube::Error) -> Self {
        Self(e.into())
    }
}

impl From<anyhow::Error> for ReconcileError {
    fn from(e: anyhow::Error) -> Self {
        Self(e)
    }
}

/// Resolves once `shutdown` turns true (or its sender is gone).
pub async fn stopped(mut shutdown: Shutdown) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// The HTTP status of an API error answer, if `e` is one.
pub fn api_status(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

pub fn is_not_found(e: &kube::Error) -> bool {
    api_status(e) == Some(404)
}

pub fn is_conflict(e: &kube::Error) -> bool {
    api_status(e) == Some(409)
}

/// Whether a create failed because the object is there already (409 `AlreadyExists`), as
/// opposed to a namespace that is terminating (also 409, or 403 upstream).
pub fn is_already_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists")
}

/// Whether a create was refused because its namespace is going away or gone; the controllers
/// that fill namespaces give up on those.
pub fn is_namespace_gone(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => {
            s.code == 404
                || (matches!(s.code, 403 | 409)
                    && (s.message.contains("terminat") || s.reason == "NamespaceTerminating"))
        }
        _ => false,
    }
}

/// Exponential backoff for a key that failed `failures` times in a row: 50 ms doubling, at
/// most 60 s.
pub fn backoff(failures: u32) -> Duration {
    let ms = 50u64.saturating_mul(1u64 << failures.min(20));
    Duration::from_millis(ms.min(60_000))
}

struct QueueState<K> {
    /// Keys waiting for a worker, in order.
    ready: VecDeque<K>,
    /// The keys in `ready`.
    queued: HashSet<K>,
    /// Keys a worker holds now.
    active: HashSet<K>,
    /// Active keys added again meanwhile: queued again when their worker finishes.
    dirty: HashSet<K>,
    /// Consecutive failures per key.
    failures: HashMap<K, u32>,
    closed: bool,
}

/// A work queue in the manner of client-go's: a key is queued at most once, a key is never
/// handed to two workers at the same time (a key added while being worked on is queued again
/// once its worker is done), and failed keys come back after a per-key exponential backoff.
pub struct WorkQueue<K> {
    state: Arc<Mutex<QueueState<K>>>,
    notify: Arc<Notify>,
}

impl<K> Clone for WorkQueue<K> {
    fn clone(&self) -> Self {
        Self { state: self.state.clone(), notify: self.notify.clone() }
    }
}

impl<K: Clone + Eq + Hash + Send + Sync + 'static> Default for WorkQueue<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone + Eq + Hash + Send + Sync + 'static> WorkQueue<K> {
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(QueueState {
                ready: VecDeque::new(),
                queued: HashSet::new(),
                active: HashSet::new(),
                dirty: HashSet::new(),
                failures: HashMap::new(),
                closed: false,
            })),
            notify: Arc::new(Notify::new()),
        }
    }

    /// Queues `key` unless it is queued already.
    pub fn add(&self, key: K) {
        let mut s = self.state.lock();
        if s.closed || s.queued.contains(&key) {
            return;
        }
        if s.active.contains(&key) {
            s.dirty.insert(key);
            return;
        }
        s.queued.insert(key.clone());
        s.ready.push_back(key);
        drop(s);
        self.notify.notify_one();
    }

    /// Queues `key` after `delay`.
    pub fn add_after(&self, key: K, delay: Duration) {
        let q = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            q.add(key);
        });
    }

    /// Queues `key` again after its backoff, counting one more failure.
    pub fn retry(&self, key: K) {
        let failures = {
            let mut s = self.state.lock();
            let f = s.failures.entry(key.clone()).or_insert(0);
            *f += 1;
            *f
        };
        self.add_after(key, backoff(failures));
    }

    /// Clears `key`'s failure count.
    pub fn forget(&self, key: &K) {
        self.state.lock().failures.remove(key);
    }

    /// Marks the worker on `key` finished.
    pub fn done(&self, key: &K) {
        let again = {
            let mut s = self.state.lock();
            s.active.remove(key);
            s.dirty.remove(key)
        };
        if again {
            self.add(key.clone());
        }
    }

    /// Stops handing out keys; waiting workers get `None`.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.notify.notify_waiters();
    }

    /// The next key to work on, held until [`WorkQueue::done`]; `None` once closed.
    pub async fn next(&self) -> Option<K> {
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.state.lock();
                if s.closed {
                    return None;
                }
                if let Some(key) = s.ready.pop_front() {
                    s.queued.remove(&key);
                    s.active.insert(key.clone());
                    let more = !s.ready.is_empty();
                    drop(s);
                    if more {
                        // Another worker may be parked while keys remain.
                        self.notify.notify_one();
                    }
                    return Some(key);
                }
            }
            notified.await;
        }
    }

    /// The number of keys waiting.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.state.lock().ready.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dedups_and_requeues_dirty_keys() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let k = q.next().await.unwrap();
        assert_eq!(k, "a");
        // Added while active: not handed out twice, queued again when done.
        q.add("a");
        assert_eq!(q.len(), 1);
        assert_eq!(q.next().await.unwrap(), "b");
        q.done(&"b");
        q.done(&"a");
        assert_eq!(q.len(), 1);
        assert_eq!(q.next().await.unwrap(), "a");
        q.done(&"a");
        q.close();
        assert_eq!(q.next().await, None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(50));
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert!(backoff(10) <= Duration::from_secs(60));
        assert_eq!(backoff(30), Duration::from_secs(60));
    }
}
