//! The MVCC engine behind every local backend.
//!
//! All versions of all keys since the last compaction live in memory (`State`), together with
//! the event log watchers replay from. One writer thread owns every mutation: it takes all the
//! writes waiting in its queue as one batch, checks each against the state plus the batch's
//! earlier writes, hands the whole batch to the [`Persist`] backend in one durable commit, and
//! only then makes it visible, publishes the events and answers the callers (group commit).

use crate::{Error, Event, EventType, KeyValue, ListOptions, ListResult, Result, Revision, Storage, WatchStream};
use bytes::Bytes;
use futures::StreamExt;
use parking_lot::RwLock;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{broadcast, mpsc, oneshot};

/// Tuning of the engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The most writes committed together in one batch.
    pub max_batch: usize,
    /// How many committed batches a watcher may fall behind before it is dropped.
    pub watch_buffer: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { max_batch: 2048, watch_buffer: 8192 }
    }
}

/// One version of one key, as persisted.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    pub key: Arc<str>,
    pub revision: Revision,
    pub create_revision: Revision,
    /// `None` marks a deletion (a tombstone).
    pub value: Option<Bytes>,
}

/// Everything a backend holds, as loaded at start.
#[derive(Default)]
pub(crate) struct Loaded {
    pub revision: Revision,
    pub compacted: Revision,
    pub records: Vec<Record>,
}

/// Where the engine makes its writes durable.
pub(crate) trait Persist: Send + 'static {
    /// Reads everything back.
    fn load(&mut self) -> Result<Loaded>;
    /// Durably writes one batch; `revision` is the newest revision in it.
    fn commit(&mut self, records: &[Record], revision: Revision) -> Result<()>;
    /// Durably drops compacted versions.
    fn compact(&mut self, removed: &[(Arc<str>, Revision)], compacted: Revision) -> Result<()>;
}

/// Keeps nothing: the memory backend.
pub(crate) struct NoPersist;

impl Persist for NoPersist {
    fn load(&mut self) -> Result<Loaded> {
        Ok(Loaded { revision: 1, ..Loaded::default() })
    }
    fn commit(&mut self, _: &[Record], _: Revision) -> Result<()> {
        Ok(())
    }
    fn compact(&mut self, _: &[(Arc<str>, Revision)], _: Revision) -> Result<()> {
        Ok(())
    }
}

#[derive(Clone, Debug)]
struct Version {
    revision: Revision,
    create_revision: Revision,
    value: Option<Bytes>,
}

#[derive(Default)]
struct State {
    revision: Revision,
    compacted: Revision,
    keys: BTreeMap<Arc<str>, Vec<Version>>,
    log: VecDeque<Event>,
}

impl State {
    fn latest(&self, key: &str) -> Option<&Version> {
        self.keys.get(key).and_then(|v| v.last()).filter(|v| v.value.is_some())
    }

    fn at(versions: &[Version], revision: Revision) -> Option<&Version> {
        let idx = versions.partition_point(|v| v.revision <= revision);
        if idx == 0 { None } else { Some(&versions[idx - 1]).filter(|v| v.value.is_some()) }
    }

    fn apply(&mut self, rec: &Record) {
        let versions = self.keys.entry(rec.key.clone()).or_default();
        let prev = versions.last().and_then(|v| v.value.clone());
        let event_type = match (&rec.value, &prev) {
            (None, _) => EventType::Deleted,
            (Some(_), None) => EventType::Created,
            (Some(_), Some(_)) => EventType::Modified,
        };
        let value = rec.value.clone().or_else(|| prev.clone()).unwrap_or_default();
        versions.push(Version {
            revision: rec.revision,
            create_revision: rec.create_revision,
            value: rec.value.clone(),
        });
        self.log.push_back(Event {
            event_type,
            kv: KeyValue {
                key: rec.key.clone(),
                value,
                create_revision: rec.create_revision,
                mod_revision: rec.revision,
            },
            prev_value: prev,
        });
        self.revision = rec.revision;
    }
}

fn kv_of(key: &Arc<str>, v: &Version) -> KeyValue {
    KeyValue {
        key: key.clone(),
        value: v.value.clone().unwrap_or_default(),
        create_revision: v.create_revision,
        mod_revision: v.revision,
    }
}

enum Op {
    Create { key: Arc<str>, value: Bytes },
    Update { key: Arc<str>, expected: Revision, value: Bytes },
    Delete { key: Arc<str>, expected: Option<Revision> },
    Compact { revision: Revision },
}

struct Request {
    op: Op,
    reply: oneshot::Sender<Result<Option<KeyValue>>>,
}

/// The engine: shared state, the writer's queue and the event fan-out.
pub(crate) struct Engine {
    state: Arc<RwLock<State>>,
    revision: Arc<AtomicU64>,
    compacted: Arc<AtomicU64>,
    writer: mpsc::UnboundedSender<Request>,
    events: broadcast::Sender<Arc<Vec<Event>>>,
}

impl Engine {
    /// Loads the backend's contents and starts the writer thread.
    pub(crate) fn start(mut persist: Box<dyn Persist>, config: EngineConfig) -> Result<Arc<Engine>> {
        let loaded = persist.load()?;
        let mut state = State { revision: loaded.revision.max(1), compacted: loaded.compacted, ..State::default() };
        let mut records = loaded.records;
        records.sort_by_key(|r| r.revision);
        for rec in &records {
            state.apply(rec);
        }
        state.revision = state.revision.max(loaded.revision);
        // Versions at or before the compaction point are a base state, not events.
        while state.log.front().is_some_and(|e| e.kv.mod_revision <= state.compacted) {
            state.log.pop_front();
        }
        let revision = Arc::new(AtomicU64::new(state.revision));
        let compacted = Arc::new(AtomicU64::new(state.compacted));
        let state = Arc::new(RwLock::new(state));
        let (tx, rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(config.watch_buffer.max(16));
        let writer = Writer {
            state: state.clone(),
            revision: revision.clone(),
            compacted: compacted.clone(),
            events: events.clone(),
            persist,
            max_batch: config.max_batch.max(1),
        };
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| Error::Backend(format!("cannot start the store writer thread: {e}")))?;
        Ok(Arc::new(Engine { state, revision, compacted, writer: tx, events }))
    }

    async fn submit(&self, op: Op) -> Result<Option<KeyValue>> {
        let (reply, rx) = oneshot::channel();
        self.writer.send(Request { op, reply }).map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }
}

struct Writer {
    state: Arc<RwLock<State>>,
    revision: Arc<AtomicU64>,
    compacted: Arc<AtomicU64>,
    events: broadcast::Sender<Arc<Vec<Event>>>,
    persist: Box<dyn Persist>,
    max_batch: usize,
}

type Pending = (Revision, Revision, Option<Bytes>);

impl Writer {
    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Request>) {
        while let Some(first) = rx.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            let (compactions, writes): (Vec<Request>, Vec<Request>) =
                batch.into_iter().partition(|r| matches!(r.op, Op::Compact { .. }));
            if !writes.is_empty() {
                self.write_batch(writes);
            }
            for req in compactions {
                let Op::Compact { revision } = req.op else { unreachable!("partitioned on Compact") };
                let res = self.compact(revision).map(|_| None);
                let _ = req.reply.send(res);
            }
        }
    }

    fn write_batch(&mut self, batch: Vec<Request>) {
        let mut records = Vec::with_capacity(batch.len());
        let mut results: Vec<Result<Option<KeyValue>>> = Vec::with_capacity(batch.len());
        let mut rev;
        {
            let st = self.state.read();
            rev = st.revision;
            let mut overlay: HashMap<Arc<str>, Option<Pending>> = HashMap::new();
            for req in &batch {
                let key = match &req.op {
                    Op::Create { key, .. } | Op::Update { key, .. } | Op::Delete { key, .. } => key.clone(),
                    Op::Compact { .. } => unreachable!("compactions are handled apart"),
                };
                let current: Option<Pending> = match overlay.get(&key) {
                    Some(p) => p.clone(),
                    None => st.latest(&key).map(|v| (v.create_revision, v.revision, v.value.clone())),
                };
                let found = |c: &Option<Pending>| {
                    c.as_ref().map(|(cr, mr, v)| {
                        Box::new(KeyValue {
                            key: key.clone(),
                            value: v.clone().unwrap_or_default(),
                            create_revision: *cr,
                            mod_revision: *mr,
                        })
                    })
                };
                let outcome = match &req.op {
                    Op::Create { value, .. } => {
                        if current.is_some() {
                            Err(Error::AlreadyExists(key.to_string()))
                        } else {
                            rev += 1;
                            Ok((rev, Some(value.clone())))
                        }
                    }
                    Op::Update { expected, value, .. } => match &current {
                        None => Err(Error::NotFound(key.to_string())),
                        Some((_, mr, _)) if mr != expected => {
                            Err(Error::Conflict { key: key.to_string(), expected: *expected, found: found(&current) })
                        }
                        Some(_) => {
                            rev += 1;
                            Ok((rev, Some(value.clone())))
                        }
                    },
                    Op::Delete { expected, .. } => match &current {
                        None => Err(Error::NotFound(key.to_string())),
                        Some((_, mr, _)) if expected.is_some_and(|e| e != *mr) => Err(Error::Conflict {
                            key: key.to_string(),
                            expected: expected.unwrap_or_default(),
                            found: found(&current),
                        }),
                        Some(_) => {
                            rev += 1;
                            Ok((rev, None))
                        }
                    },
                    Op::Compact { .. } => unreachable!("compactions are handled apart"),
                };
                match outcome {
                    Err(e) => results.push(Err(e)),
                    Ok((new_rev, value)) => {
                        let create_revision = match (&current, &value) {
                            (Some((cr, _, _)), _) => *cr,
                            (None, _) => new_rev,
                        };
                        let answer_value = value.clone().or_else(|| current.as_ref().and_then(|c| c.2.clone()));
                        records.push(Record {
                            key: key.clone(),
                            revision: new_rev,
                            create_revision,
                            value: value.clone(),
                        });
                        results.push(Ok(Some(KeyValue {
                            key: key.clone(),
                            value: answer_value.unwrap_or_default(),
                            create_revision,
                            mod_revision: new_rev,
                        })));
                        overlay.insert(key, value.map(|v| (create_revision, new_rev, Some(v))));
                    }
                }
            }
        }
        if !records.is_empty() {
            if let Err(e) = self.persist.commit(&records, rev) {
                tracing::error!(error = %e, "store commit failed");
                for (req, res) in batch.into_iter().zip(results) {
                    let _ = req.reply.send(res.and(Err(e.clone())));
                }
                return;
            }
            let mut published = Vec::with_capacity(records.len());
            {
                let mut st = self.state.write();
                for rec in &records {
                    st.apply(rec);
                    published.push(st.log.back().expect("apply pushes an event").clone());
                }
                self.revision.store(st.revision, Ordering::Release);
            }
            let _ = self.events.send(Arc::new(published));
        }
        for (req, res) in batch.into_iter().zip(results) {
            let _ = req.reply.send(res);
        }
    }

    fn compact(&mut self, revision: Revision) -> Result<()> {
        let (removed, touched) = {
            let st = self.state.read();
            if revision <= st.compacted {
                return Ok(());
            }
            if revision > st.revision {
                return Err(Error::FutureRevision { requested: revision, current: st.revision });
            }
            let touched: HashSet<Arc<str>> =
                st.log.iter().take_while(|e| e.kv.mod_revision <= revision).map(|e| e.kv.key.clone()).collect();
            let mut removed = Vec::new();
            for key in &touched {
                let Some(versions) = st.keys.get(key) else { continue };
                let idx = versions.partition_point(|v| v.revision <= revision);
                if idx == 0 {
                    continue;
                }
                // Keep the newest version at or before the compaction point, unless it is a
                // tombstone: then the key is gone for good at that point.
                let keep_from = if versions[idx - 1].value.is_some() { idx - 1 } else { idx };
                removed.extend(versions[..keep_from].iter().map(|v| (key.clone(), v.revision)));
            }
            (removed, touched)
        };
        self.persist.compact(&removed, revision)?;
        let mut st = self.state.write();
        for key in touched {
            if let Some(versions) = st.keys.get_mut(&key) {
                let idx = versions.partition_point(|v| v.revision <= revision);
                if idx > 0 {
                    let keep_from = if versions[idx - 1].value.is_some() { idx - 1 } else { idx };
                    versions.drain(..keep_from);
                }
                if versions.is_empty() {
                    st.keys.remove(&key);
                }
            }
        }
        while st.log.front().is_some_and(|e| e.kv.mod_revision <= revision) {
            st.log.pop_front();
        }
        st.compacted = revision;
        self.compacted.store(revision, Ordering::Release);
        Ok(())
    }
}

#[async_trait::async_trait]
impl Storage for Engine {
    fn current_revision(&self) -> Revision {
        self.revision.load(Ordering::Acquire)
    }

    fn compacted_revision(&self) -> Revision {
        self.compacted.load(Ordering::Acquire)
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let st = self.state.read();
        Ok(st.keys.get_key_value(key).and_then(|(k, vs)| vs.last().filter(|v| v.value.is_some()).map(|v| kv_of(k, v))))
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        let kv = self.submit(Op::Create { key: key.into(), value }).await?;
        Ok(kv.expect("a create answers with the new state"))
    }

    async fn update(&self, key: &str, expected: Revision, value: Bytes) -> Result<KeyValue> {
        let kv = self.submit(Op::Update { key: key.into(), expected, value }).await?;
        Ok(kv.expect("an update answers with the new state"))
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue> {
        let kv = self.submit(Op::Delete { key: key.into(), expected }).await?;
        Ok(kv.expect("a delete answers with the deleted state"))
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        let st = self.state.read();
        let at = opts.revision.filter(|r| *r > 0).unwrap_or(st.revision);
        if at < st.compacted {
            return Err(Error::Compacted { requested: at, compacted: st.compacted });
        }
        if at > st.revision {
            return Err(Error::FutureRevision { requested: at, current: st.revision });
        }
        let start: &str = match &opts.start_key {
            Some(s) if s.as_str() > prefix => s.as_str(),
            _ => prefix,
        };
        let mut out = ListResult { revision: at, ..ListResult::default() };
        let range = st.keys.range::<str, _>((std::ops::Bound::Included(start), std::ops::Bound::Unbounded));
        for (key, versions) in range {
            if !key.starts_with(prefix) {
                break;
            }
            let Some(v) = State::at(versions, at) else { continue };
            if opts.limit > 0 && out.items.len() >= opts.limit {
                out.more = true;
                out.remaining += 1;
                continue;
            }
            out.items.push(kv_of(key, v));
        }
        Ok(out)
    }

    async fn count(&self, prefix: &str) -> Result<u64> {
        let st = self.state.read();
        let range = st.keys.range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded));
        Ok(range
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(_, vs)| vs.last().is_some_and(|v| v.value.is_some()))
            .count() as u64)
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let (backlog, rx) = {
            let st = self.state.read();
            if after < st.compacted {
                return Err(Error::Compacted { requested: after, compacted: st.compacted });
            }
            let rx = self.events.subscribe();
            let start = st.log.partition_point(|e| e.kv.mod_revision <= after);
            let backlog: Vec<Event> = st.log.range(start..).filter(|e| e.kv.key.starts_with(prefix)).cloned().collect();
            (backlog, rx)
        };
        let prefix: Arc<str> = prefix.into();
        let last = backlog.last().map(|e| e.kv.mod_revision).unwrap_or(after);
        let live = futures::stream::unfold(
            (rx, last, prefix, VecDeque::<Event>::new()),
            |(mut rx, mut last, prefix, mut queue)| async move {
                loop {
                    if let Some(ev) = queue.pop_front() {
                        last = ev.kv.mod_revision;
                        return Some((Ok(ev), (rx, last, prefix, queue)));
                    }
                    match rx.recv().await {
                        Ok(batch) => {
                            queue.extend(
                                batch
                                    .iter()
                                    .filter(|e| e.kv.mod_revision > last && e.kv.key.starts_with(&*prefix))
                                    .cloned(),
                            );
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            // Ends the stream after reporting: the watcher must start over.
                            let (_, dead) = broadcast::channel(1);
                            drop(std::mem::replace(&mut rx, dead));
                            return Some((Err(Error::WatcherLagged), (rx, u64::MAX, prefix, queue)));
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            },
        );
        Ok(futures::stream::iter(backlog.into_iter().map(Ok)).chain(live).boxed())
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.submit(Op::Compact { revision }).await.map(|_| ())
    }
}
