//! MVCC storage for the API server, with etcd's semantics: one global, strictly increasing
//! revision that every write takes and that becomes the object's `resourceVersion`.
//!
//! Key types: [`Storage`] (the trait every backend implements), [`KeyValue`], [`Event`],
//! [`ListOptions`] / [`ListResult`], [`Error`]. Backends: [`open_embedded`] (the durable
//! default: a redb file with its write-ahead log) and [`memory`] (for tests). Both run on the same in-memory MVCC
//! engine (`engine.rs`); the embedded backend makes every batch of writes durable with one
//! commit before acknowledging any of them (group commit). [`guaranteed_update`] is the
//! compare-and-swap retry loop the REST layer builds updates on.
//!
//! The conformance suite in `testing.rs` runs against every backend.

mod engine;
mod redb_backend;
#[cfg(test)]
mod testing;

use bytes::Bytes;
use futures::stream::BoxStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use engine::EngineConfig;

/// A revision of the whole store; every write takes the next one.
pub type Revision = u64;

/// A stored value with the revisions that describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The full key, e.g. `/registry/pods/default/web-0`.
    pub key: Arc<str>,
    /// The bytes stored.
    pub value: Bytes,
    /// The revision that created the key (since it last did not exist).
    pub create_revision: Revision,
    /// The revision of the last write to the key.
    pub mod_revision: Revision,
}

/// What happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// The key was created.
    Created,
    /// An existing key got a new value.
    Modified,
    /// The key was deleted.
    Deleted,
}

/// One change, as seen by a watcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub event_type: EventType,
    /// The state after the change; for deletions, the last value with `mod_revision` set to
    /// the deleting revision.
    pub kv: KeyValue,
    /// The value before the change, if the key existed.
    pub prev_value: Option<Bytes>,
}

/// Options of a range read.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// Only keys greater than or equal to this one (a continue token's start); `None` starts at
    /// the prefix.
    pub start_key: Option<String>,
    /// At most this many items; `0` means no limit.
    pub limit: usize,
    /// Read at this revision instead of the newest one.
    pub revision: Option<Revision>,
}

/// The answer of a range read.
#[derive(Clone, Debug, Default)]
pub struct ListResult {
    /// The items, in key order.
    pub items: Vec<KeyValue>,
    /// The revision the read was served at.
    pub revision: Revision,
    /// Whether more keys follow the last item.
    pub more: bool,
    /// How many keys follow the last item, when `more`.
    pub remaining: u64,
}

/// Storage errors.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// The key does not exist.
    #[error("key {0} not found")]
    NotFound(String),
    /// A create found the key present.
    #[error("key {0} already exists")]
    AlreadyExists(String),
    /// A compare-and-swap lost: the key has another revision now (or is gone).
    #[error("key {key} was modified (expected revision {expected}, found {found:?})")]
    Conflict {
        /// The key.
        key: String,
        /// The revision the caller expected.
        expected: Revision,
        /// The key's current state, if it still exists.
        found: Option<Box<KeyValue>>,
    },
    /// The requested revision has been compacted away.
    #[error("required revision {requested} has been compacted (oldest available is {compacted})")]
    Compacted {
        /// What was asked for.
        requested: Revision,
        /// The compaction point; revisions after it are available.
        compacted: Revision,
    },
    /// The requested revision is newer than the store's.
    #[error("revision {requested} is in the future (current is {current})")]
    FutureRevision {
        /// What was asked for.
        requested: Revision,
        /// The newest revision.
        current: Revision,
    },
    /// The store is shutting down or its writer stopped.
    #[error("storage is closed")]
    Closed,
    /// A watcher fell too far behind and was dropped; it must re-list.
    #[error("watcher fell behind and was dropped")]
    WatcherLagged,
    /// The backend failed to read or write.
    #[error("storage backend failed: {0}")]
    Backend(String),
}

/// Result alias for storage operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A stream of events from a watch, in revision order.
pub type WatchStream = BoxStream<'static, Result<Event>>;

/// etcd-like MVCC storage. Implementations must be safe to share between tasks.
#[async_trait::async_trait]
pub trait Storage: Send + Sync + 'static {
    /// The newest revision.
    fn current_revision(&self) -> Revision;

    /// The newest compacted revision: reads and watches must ask for later ones.
    fn compacted_revision(&self) -> Revision;

    /// Reads one key at the newest revision.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Creates a key; fails with [`Error::AlreadyExists`] if it exists. Returns the new state.
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue>;

    /// Replaces a key's value if its `mod_revision` is still `expected`; fails with
    /// [`Error::Conflict`] otherwise and [`Error::NotFound`] when the key is gone.
    async fn update(&self, key: &str, expected: Revision, value: Bytes) -> Result<KeyValue>;

    /// Deletes a key, if `expected` is given only when its `mod_revision` still matches.
    /// Returns the deleted value with `mod_revision` set to the deleting revision.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue>;

    /// Reads the keys under `prefix` in key order, paged, optionally at an older revision.
    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult>;

    /// Counts the keys under `prefix` at the newest revision.
    async fn count(&self, prefix: &str) -> Result<u64>;

    /// Streams every change under `prefix` with a revision greater than `after`.
    /// Fails with [`Error::Compacted`] when those changes are no longer kept.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;

    /// Forgets history up to and including `revision`: older versions of keys and deleted
    /// keys are dropped, and reads and watches at or before it fail with [`Error::Compacted`].
    async fn compact(&self, revision: Revision) -> Result<()>;
}

/// Why [`guaranteed_update`] gave up.
#[derive(Debug)]
pub enum UpdateError<E> {
    /// The store failed (including [`Error::NotFound`] when the key vanished).
    Store(Error),
    /// The update function refused.
    Aborted(E),
}

/// What the update function of [`guaranteed_update`] wants done.
pub enum Update {
    /// Write these bytes.
    Write(Bytes),
    /// Leave the key as it is (the answer is the current state).
    Unchanged,
}

/// Reads `key`, computes its new value with `f` and writes it with compare-and-swap,
/// retrying with the fresh value whenever another writer got there first.
pub async fn guaranteed_update<E, F>(store: &dyn Storage, key: &str, mut f: F) -> Result<KeyValue, UpdateError<E>>
where
    F: FnMut(&KeyValue) -> Result<Update, E> + Send,
{
    let mut current = match store.get(key).await {
        Ok(Some(kv)) => kv,
        Ok(None) => return Err(UpdateError::Store(Error::NotFound(key.to_string()))),
        Err(e) => return Err(UpdateError::Store(e)),
    };
    loop {
        let value = match f(&current).map_err(UpdateError::Aborted)? {
            Update::Write(v) => v,
            Update::Unchanged => return Ok(current),
        };
        match store.update(key, current.mod_revision, value).await {
            Ok(kv) => return Ok(kv),
            Err(Error::Conflict { found: Some(kv), .. }) => current = *kv,
            Err(Error::Conflict { found: None, .. }) => {
                return Err(UpdateError::Store(Error::NotFound(key.to_string())));
            }
            Err(e) => return Err(UpdateError::Store(e)),
        }
    }
}

/// Opens (or creates) the embedded durable store: a redb file at `path` and its log beside it.
pub fn open_embedded(path: &Path, config: EngineConfig) -> Result<Arc<dyn Storage>> {
    let persist = redb_backend::RedbPersist::open(path)?;
    Ok(engine::Engine::start(Box::new(persist), config)?)
}

/// A store that keeps everything in memory: for tests and throwaway servers.
pub fn memory() -> Arc<dyn Storage> {
    engine::Engine::start(Box::new(engine::NoPersist), EngineConfig::default()).expect("memory store starts")
}

/// A memory store with explicit engine settings.
pub fn memory_with(config: EngineConfig) -> Arc<dyn Storage> {
    engine::Engine::start(Box::new(engine::NoPersist), config).expect("memory store starts")
}

/// Runs compaction periodically: each tick compacts to the revision seen one tick earlier, so
/// at least one interval of history is always kept (as the upstream API server does).
pub fn spawn_compactor(store: Arc<dyn Storage>, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut previous: Option<Revision> = None;
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Some(rev) = previous
                && rev > store.compacted_revision()
                && let Err(e) = store.compact(rev).await
            {
                tracing::warn!(error = %e, revision = rev, "compaction failed");
            }
            previous = Some(store.current_revision());
        }
    })
}
