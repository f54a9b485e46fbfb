//! The watch cache: every object of the store, decoded once, plus a window of recent events.
//!
//! It serves `resourceVersion=0` and consistent lists and every watch without touching the
//! store, and fans each event out to all watchers through one broadcast channel. It follows the
//! store with a single watch from the revision of its initial list; each object is decoded once
//! on arrival, gets its `resourceVersion`, and keeps its labels and selectable fields ready for
//! filtering. Writers in this process announce what they write ([`WatchCache::prime`]), so
//! their writes are indexed from the objects they already hold instead of being decoded.
//!
//! Key types: [`WatchCache`], [`CachedObject`], [`CacheEvent`], [`Filter`].

use bytes::Bytes;
use futures::StreamExt;
use parking_lot::RwLock;
use rudder_api::catalog::{self, Resource};
use rudder_api::selectors::{self, FieldSelector, LabelSelector};
use rudder_store::{EventType, ListOptions, Storage};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// How many recent events the cache keeps for watches that start in the past.
const EVENT_WINDOW: usize = 20_000;
/// How many events of its resource a watcher may fall behind before it is ended (it then
/// resumes from its last revision, out of the window).
const WATCHER_BUFFER: usize = 8_192;

/// One object as the cache holds it.
#[derive(Debug)]
pub struct CachedObject {
    /// Its storage key.
    pub key: Arc<str>,
    /// Its `resourceVersion`.
    pub revision: u64,
    /// Its JSON as stored (shared with the store), without `resourceVersion`.
    raw: Bytes,
    /// Where `resourceVersion` goes into `raw`; `None` when `raw` already is the full JSON.
    meta_open: Option<usize>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// Selectable fields (`metadata.name`, `spec.nodeName`, ...).
    pub fields: Vec<(String, String)>,
}

impl CachedObject {
    /// Its JSON, `resourceVersion` included.
    pub fn json(&self) -> Bytes {
        match self.meta_open {
            Some(at) => crate::object::with_resource_version(&self.raw, at, self.revision),
            None => self.raw.clone(),
        }
    }

    /// Appends its JSON, `resourceVersion` included, to `out` (one copy, no allocation of its
    /// own: how lists are assembled).
    pub fn write_json(&self, out: &mut bytes::BytesMut) {
        match self.meta_open {
            Some(at) => {
                let rest = &self.raw[at + 1..];
                let empty = rest.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
                out.extend_from_slice(&self.raw[..=at]);
                out.extend_from_slice(b"\"resourceVersion\":\"");
                out.extend_from_slice(self.revision.to_string().as_bytes());
                out.extend_from_slice(if empty { b"\"" } else { b"\"," });
                out.extend_from_slice(rest);
            }
            None => out.extend_from_slice(&self.raw),
        }
    }

    /// How many bytes [`CachedObject::write_json`] appends, at most.
    pub fn json_len_hint(&self) -> usize {
        self.raw.len() + 48
    }

    /// Whether the encoded object (without `resourceVersion`) contains `needle`.
    pub fn raw_contains(&self, needle: &[u8]) -> bool {
        self.raw.windows(needle.len()).any(|w| w == needle)
    }

    /// Decodes the JSON.
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json()).unwrap_or(Value::Null)
    }
}

/// The type of a cache event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheEventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Deleted (the object is its last state, at the deleting revision).
    Deleted,
}

/// One change.
#[derive(Debug)]
pub struct CacheEvent {
    /// What happened.
    pub event_type: CacheEventType,
    /// The object after the change (for deletions, its last state).
    pub object: Arc<CachedObject>,
    /// The object before the change.
    pub prev: Option<Arc<CachedObject>>,
}

impl CacheEvent {
    /// The revision of the change.
    pub fn revision(&self) -> u64 {
        self.object.revision
    }
}

/// Which objects a list or watch wants.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Key prefix, e.g. `/registry/pods/default/`.
    pub prefix: String,
    /// Label selector.
    pub labels: Option<LabelSelector>,
    /// Field selector.
    pub fields: Option<FieldSelector>,
}

impl Filter {
    /// Whether an object passes.
    pub fn matches(&self, obj: &CachedObject) -> bool {
        obj.key.starts_with(&self.prefix)
            && self.labels.as_ref().is_none_or(|l| l.matches(&obj.labels))
            && self.fields.as_ref().is_none_or(|f| f.matches(&obj.fields))
    }

    /// Whether the filter narrows beyond the prefix.
    pub fn has_selectors(&self) -> bool {
        self.labels.as_ref().is_some_and(|l| !l.is_empty()) || self.fields.is_some()
    }
}

struct State {
    revision: u64,
    objects: BTreeMap<Arc<str>, Arc<CachedObject>>,
    events: VecDeque<Arc<CacheEvent>>,
    /// Every event after this revision is in `events`.
    horizon: u64,
    /// Live events of one resource (the key segment after `/registry/`), for its watchers
    /// only: an event wakes the watchers of its resource, not every watcher of the server.
    /// Made when the resource is first watched.
    senders: HashMap<Arc<str>, broadcast::Sender<Arc<CacheEvent>>>,
    /// Live events of every resource, for watches whose prefix names no single resource.
    everything: Option<broadcast::Sender<Arc<CacheEvent>>>,
}

/// The resource segment of a key or key prefix (`pods` of `/registry/pods/ns/name`), when the
/// prefix goes that far.
fn segment(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("/registry/")?;
    let (segment, _) = rest.split_once('/')?;
    (!segment.is_empty()).then_some(segment)
}

/// A page of a cached list.
pub struct CacheList {
    /// Matching objects in key order.
    pub items: Vec<Arc<CachedObject>>,
    /// The cache revision the list is at.
    pub revision: u64,
    /// Whether more matching objects follow.
    pub more: bool,
    /// How many objects follow (only counted when there are no selectors).
    pub remaining: u64,
}

/// Where a watch starts.
pub enum WatchStart {
    /// Now, after synthetic ADDED events for everything that matches.
    NowWithInitial,
    /// After this revision.
    After(u64),
}

/// A registered watch: what to send first, then the live channel.
pub struct CacheWatch {
    /// Synthetic ADDED objects (when starting now).
    pub initial: Vec<Arc<CachedObject>>,
    /// Events already in the window after the start revision.
    pub backlog: Vec<Arc<CacheEvent>>,
    /// The revision the watch is caught up to once `initial` and `backlog` are sent.
    pub revision: u64,
    /// Live events (may repeat backlog events; skip those at or below `revision`).
    pub receiver: broadcast::Receiver<Arc<CacheEvent>>,
}

/// Why a watch cannot start.
pub enum WatchError {
    /// The revision is older than the window (410).
    TooOld {
        /// Asked for.
        requested: u64,
        /// Oldest available.
        oldest: u64,
    },
}

/// The cache.
pub struct WatchCache {
    state: RwLock<State>,
    progress: tokio::sync::watch::Sender<u64>,
    by_storage: HashMap<&'static str, &'static Resource>,
    /// Objects about to be written, by key, as their writers know them ([`WatchCache::prime`]).
    primed: parking_lot::Mutex<HashMap<Arc<str>, Primed>>,
}

/// The filtering index of an object a writer is about to store, taken from the value it
/// encoded, so the write's event needs no decoding.
struct Primed {
    /// The encoding handed to the store; its event carries these very bytes.
    value: Bytes,
    labels: BTreeMap<String, String>,
    fields: Vec<(String, String)>,
}

/// Whether two buffers are one (the store passes a written value on without copying it). The
/// primed copy keeps its buffer alive, so no other value can sit at the same address.
fn same_buffer(a: &Bytes, b: &Bytes) -> bool {
    !a.is_empty() && a.as_ptr() == b.as_ptr() && a.len() == b.len()
}

fn storage_resources() -> HashMap<&'static str, &'static Resource> {
    let mut map = HashMap::new();
    for r in catalog::all() {
        if r.api_version() == r.storage_version {
            map.entry(r.storage_resource).or_insert(r);
        }
    }
    map
}

impl WatchCache {
    /// Lists the whole store, then follows it from that revision.
    pub async fn start(store: Arc<dyn Storage>) -> rudder_store::Result<Arc<WatchCache>> {
        let (progress, _) = tokio::sync::watch::channel(0);
        let cache = Arc::new(WatchCache {
            state: RwLock::new(State {
                revision: 0,
                objects: BTreeMap::new(),
                events: VecDeque::new(),
                horizon: 0,
                senders: HashMap::new(),
                everything: None,
            }),
            progress,
            by_storage: storage_resources(),
            primed: Default::default(),
        });
        let rev = cache.resync(&*store).await?;
        let weak = Arc::downgrade(&cache);
        tokio::spawn(async move {
            let mut from = rev;
            loop {
                let stream = store.watch("/registry/", from).await;
                let mut stream = match stream {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "watch cache lost the store; listing again");
                        let Some(cache) = weak.upgrade() else { return };
                        match cache.resync(&*store).await {
                            Ok(r) => from = r,
                            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                        }
                        continue;
                    }
                };
                while let Some(ev) = stream.next().await {
                    let Some(cache) = weak.upgrade() else { return };
                    match ev {
                        Ok(ev) => {
                            from = ev.kv.mod_revision;
                            cache.ingest(ev);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "watch cache stream failed; following again");
                            break;
                        }
                    }
                }
                if weak.strong_count() == 0 {
                    return;
                }
            }
        });
        Ok(cache)
    }

    fn decode(&self, key: &Arc<str>, value: &Bytes, revision: u64) -> Arc<CachedObject> {
        // The stored bytes are kept as they are (shared with the store); the revision is
        // inserted when the object is served.
        let meta_open = crate::object::metadata_object_start(value);
        if let (Some(Primed { value, labels, fields }), Some(_)) = (self.take_primed(key, value), meta_open) {
            return Arc::new(CachedObject { key: key.clone(), revision, raw: value, meta_open, labels, fields });
        }
        let mut obj: Value = serde_json::from_slice(value).unwrap_or(Value::Null);
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(revision.to_string()));
        }
        let (labels, fields) = self.index(key, &obj);
        let raw = match meta_open {
            Some(_) => value.clone(),
            None => crate::object::compact_json(&obj),
        };
        Arc::new(CachedObject { key: key.clone(), revision, raw, meta_open, labels, fields })
    }

    /// The labels and selectable fields of an object stored under `key`.
    fn index(&self, key: &str, obj: &Value) -> (BTreeMap<String, String>, Vec<(String, String)>) {
        let labels = obj
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect())
            .unwrap_or_default();
        let segment = key.strip_prefix("/registry/").and_then(|k| k.split('/').next()).unwrap_or_default();
        let fields = match self.by_storage.get(segment) {
            Some(r) => selectors::field_set(r.group, r.plural, obj),
            None => Vec::new(),
        };
        (labels, fields)
    }

    /// Tells the cache that `value`, the encoding of `obj` (as [`crate::object::to_bytes`]
    /// makes it), is about to be written under `key`: when the store reports that write, the
    /// cache indexes it from `obj` instead of decoding it. A writer whose write does not
    /// happen calls [`WatchCache::unprime`].
    pub fn prime(&self, key: &str, value: &Bytes, obj: &Value) {
        if value.is_empty() {
            return;
        }
        let (labels, fields) = self.index(key, obj);
        self.primed.lock().insert(Arc::from(key), Primed { value: value.clone(), labels, fields });
    }

    /// Forgets what [`WatchCache::prime`] was told about `value` under `key`.
    pub fn unprime(&self, key: &str, value: &Bytes) {
        let mut primed = self.primed.lock();
        if primed.get(key).is_some_and(|p| same_buffer(&p.value, value)) {
            primed.remove(key);
        }
    }

    /// How many primed writes wait for their events.
    #[cfg(test)]
    pub(crate) fn primed_count(&self) -> usize {
        self.primed.lock().len()
    }

    fn take_primed(&self, key: &str, value: &Bytes) -> Option<Primed> {
        let mut primed = self.primed.lock();
        if primed.is_empty() || !primed.get(key).is_some_and(|p| same_buffer(&p.value, value)) {
            return None;
        }
        primed.remove(key)
    }

    /// Replaces the contents with a fresh list of the store; ends every current watcher.
    async fn resync(&self, store: &dyn Storage) -> rudder_store::Result<u64> {
        let list = store.list("/registry/", ListOptions::default()).await?;
        let mut objects = BTreeMap::new();
        for kv in &list.items {
            objects.insert(kv.key.clone(), self.decode(&kv.key, &kv.value, kv.mod_revision));
        }
        let mut st = self.state.write();
        st.objects = objects;
        st.events.clear();
        st.revision = list.revision;
        st.horizon = list.revision;
        // Dropping the senders ends every current watcher.
        st.senders.clear();
        st.everything = None;
        drop(st);
        self.progress.send_replace(list.revision);
        Ok(list.revision)
    }

    fn ingest(&self, ev: rudder_store::Event) {
        let object = self.decode(&ev.kv.key, &ev.kv.value, ev.kv.mod_revision);
        let mut st = self.state.write();
        let prev = match ev.event_type {
            EventType::Deleted => st.objects.remove(&ev.kv.key),
            _ => st.objects.insert(ev.kv.key.clone(), object.clone()),
        };
        let event_type = match ev.event_type {
            EventType::Created => CacheEventType::Added,
            EventType::Modified => CacheEventType::Modified,
            EventType::Deleted => CacheEventType::Deleted,
        };
        let event = Arc::new(CacheEvent { event_type, object, prev });
        st.events.push_back(event.clone());
        while st.events.len() > EVENT_WINDOW {
            if let Some(old) = st.events.pop_front() {
                st.horizon = old.revision();
            }
        }
        st.revision = ev.kv.mod_revision;
        if let Some(sender) = segment(&ev.kv.key).and_then(|s| st.senders.get(s)) {
            let _ = sender.send(event.clone());
        }
        if let Some(sender) = &st.everything {
            let _ = sender.send(event);
        }
        drop(st);
        self.progress.send_replace(ev.kv.mod_revision);
    }

    /// The newest revision the cache has seen.
    pub fn revision(&self) -> u64 {
        self.state.read().revision
    }

    /// Waits until the cache has seen `revision`; false on timeout.
    pub async fn wait_for(&self, revision: u64, timeout: Duration) -> bool {
        let mut rx = self.progress.subscribe();
        let res = tokio::time::timeout(timeout, rx.wait_for(|r| *r >= revision)).await;
        matches!(res, Ok(Ok(_)))
    }

    /// One object by key.
    pub fn get(&self, key: &str) -> Option<Arc<CachedObject>> {
        self.state.read().objects.get(key).cloned()
    }

    /// A page of matching objects from `start` on (inclusive), at most `limit` (0: all).
    pub fn list(&self, filter: &Filter, start: Option<&str>, limit: usize) -> CacheList {
        let st = self.state.read();
        let from = start.filter(|s| *s > filter.prefix.as_str()).unwrap_or(&filter.prefix);
        let mut out = CacheList { items: Vec::new(), revision: st.revision, more: false, remaining: 0 };
        let count_rest = !filter.has_selectors();
        for (key, obj) in st.objects.range::<str, _>((std::ops::Bound::Included(from), std::ops::Bound::Unbounded)) {
            if !key.starts_with(&filter.prefix) {
                break;
            }
            if !filter.matches(obj) {
                continue;
            }
            if limit > 0 && out.items.len() >= limit {
                out.more = true;
                if !count_rest {
                    break;
                }
                out.remaining += 1;
                continue;
            }
            out.items.push(obj.clone());
        }
        out
    }

    /// Registers a watch.
    pub fn watch(&self, filter: &Filter, start: WatchStart) -> Result<CacheWatch, WatchError> {
        let resource = segment(&filter.prefix);
        // The subscription and the snapshot below happen under one read lock, so no event falls
        // between them. The resource's channel is made first if it has none yet.
        let (st, receiver) = loop {
            let st = self.state.read();
            let sender = match resource {
                Some(r) => st.senders.get(r),
                None => st.everything.as_ref(),
            };
            if let Some(receiver) = sender.map(broadcast::Sender::subscribe) {
                break (st, receiver);
            }
            drop(st);
            let mut st = self.state.write();
            match resource {
                Some(r) => {
                    st.senders.entry(Arc::from(r)).or_insert_with(|| broadcast::channel(WATCHER_BUFFER).0);
                }
                None => {
                    st.everything.get_or_insert_with(|| broadcast::channel(WATCHER_BUFFER).0);
                }
            }
        };
        match start {
            WatchStart::NowWithInitial => {
                let initial = st
                    .objects
                    .range::<str, _>((std::ops::Bound::Included(filter.prefix.as_str()), std::ops::Bound::Unbounded))
                    .take_while(|(k, _)| k.starts_with(&filter.prefix))
                    .filter(|(_, o)| filter.matches(o))
                    .map(|(_, o)| o.clone())
                    .collect();
                Ok(CacheWatch { initial, backlog: Vec::new(), revision: st.revision, receiver })
            }
            WatchStart::After(rev) => {
                if rev < st.horizon {
                    return Err(WatchError::TooOld { requested: rev, oldest: st.horizon + 1 });
                }
                let idx = st.events.partition_point(|e| e.revision() <= rev);
                let backlog = st.events.range(idx..).cloned().collect();
                Ok(CacheWatch { initial: Vec::new(), backlog, revision: st.revision.max(rev), receiver })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn cm(name: &str, labels: serde_json::Value) -> Bytes {
        Bytes::from(
            serde_json::to_vec(&serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "default", "labels": labels}
            }))
            .unwrap(),
        )
    }

    async fn settle(cache: &WatchCache, store: &dyn Storage) {
        assert!(cache.wait_for(store.current_revision(), Duration::from_secs(5)).await, "cache catches up");
    }

    #[tokio::test]
    async fn follows_the_store_and_filters() {
        let store = rudder_store::memory();
        store.create("/registry/configmaps/default/a", cm("a", serde_json::json!({"app": "x"}))).await.unwrap();
        let cache = WatchCache::start(store.clone()).await.unwrap();
        let b = store.create("/registry/configmaps/default/b", cm("b", serde_json::json!({"app": "y"}))).await.unwrap();
        store.create("/registry/configmaps/other/c", cm("c", serde_json::json!({}))).await.unwrap();
        settle(&cache, &*store).await;

        let all = cache.list(&Filter { prefix: "/registry/configmaps/".into(), ..Default::default() }, None, 0);
        assert_eq!(all.items.len(), 3);
        let obj = cache.get("/registry/configmaps/default/b").unwrap();
        assert_eq!(obj.revision, b.mod_revision);
        assert_eq!(obj.value()["metadata"]["resourceVersion"], b.mod_revision.to_string());
        let mut written = bytes::BytesMut::new();
        obj.write_json(&mut written);
        assert_eq!(&written[..], &obj.json()[..], "lists and single reads encode alike");

        let by_label = Filter {
            prefix: "/registry/configmaps/default/".into(),
            labels: Some(LabelSelector::parse("app=y").unwrap()),
            fields: None,
        };
        let page = cache.list(&by_label, None, 0);
        assert_eq!(
            page.items.iter().map(|o| o.key.to_string()).collect::<Vec<_>>(),
            ["/registry/configmaps/default/b"]
        );

        let by_name = Filter {
            prefix: "/registry/configmaps/".into(),
            labels: None,
            fields: Some(FieldSelector::parse("metadata.name=c").unwrap()),
        };
        assert_eq!(cache.list(&by_name, None, 0).items.len(), 1);

        let paged = cache.list(&Filter { prefix: "/registry/configmaps/".into(), ..Default::default() }, None, 2);
        assert_eq!((paged.items.len(), paged.more, paged.remaining), (2, true, 1));
    }

    #[tokio::test]
    async fn primed_writes_are_indexed_as_decoded_ones() {
        let store = rudder_store::memory();
        let cache = WatchCache::start(store.clone()).await.unwrap();
        let pod = |phase: &str| {
            serde_json::json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "default", "labels": {"app": "web"}, "resourceVersion": "3"},
                "spec": {"nodeName": "n1", "containers": [{"name": "c"}]},
                "status": {"phase": phase, "podIPs": [{"ip": "10.0.0.1"}]}})
        };
        let key = "/registry/pods/default/p";
        let index = |key: &str| {
            let o = cache.get(key).unwrap();
            (o.labels.clone(), o.fields.clone(), o.json())
        };

        // A primed write, and the same object written unprimed under another key.
        let running = crate::object::to_bytes(&pod("Running"));
        cache.prime(key, &running, &pod("Running"));
        store.create(key, running.clone()).await.unwrap();
        store.create("/registry/pods/default/q", Bytes::copy_from_slice(&running)).await.unwrap();
        settle(&cache, &*store).await;
        assert!(cache.primed.lock().is_empty(), "used up");
        let (labels, fields, json) = index(key);
        let (other_labels, mut other_fields, _) = index("/registry/pods/default/q");
        assert_eq!(labels, other_labels);
        assert_eq!(fields, other_fields);
        assert!(fields.contains(&("status.phase".into(), "Running".into())), "{fields:?}");
        let decoded: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(decoded["status"]["phase"], "Running");

        // What was primed for other bytes is not used, and is dropped when its write fails.
        let failed = crate::object::to_bytes(&pod("Failed"));
        cache.prime(key, &failed, &pod("Failed"));
        let succeeded = crate::object::to_bytes(&pod("Succeeded"));
        let current = store.get(key).await.unwrap().unwrap();
        store.update(key, current.mod_revision, succeeded).await.unwrap();
        settle(&cache, &*store).await;
        let (_, fields, _) = index(key);
        other_fields.retain(|(k, _)| k != "status.phase");
        other_fields.push(("status.phase".into(), "Succeeded".into()));
        let mut fields_sorted = fields.clone();
        fields_sorted.sort();
        other_fields.sort();
        assert_eq!(fields_sorted, other_fields);
        assert_eq!(cache.primed.lock().len(), 1);
        cache.unprime(key, &Bytes::copy_from_slice(&failed));
        assert_eq!(cache.primed.lock().len(), 1, "only the primed buffer itself unprimes");
        cache.unprime(key, &failed);
        assert!(cache.primed.lock().is_empty());
    }

    #[tokio::test]
    async fn live_events_reach_the_watchers_of_their_resource() {
        let store = rudder_store::memory();
        let cache = WatchCache::start(store.clone()).await.unwrap();
        let watch = |prefix: &str| {
            let filter = Filter { prefix: prefix.into(), ..Default::default() };
            let Ok(w) = cache.watch(&filter, WatchStart::NowWithInitial) else { panic!("now always works") };
            w.receiver
        };
        let (mut configmaps, mut one_namespace, mut secrets, mut everything) = (
            watch("/registry/configmaps/"),
            watch("/registry/configmaps/default/"),
            watch("/registry/secrets/"),
            watch("/registry/"),
        );
        let a = store.create("/registry/configmaps/default/a", cm("a", serde_json::json!({}))).await.unwrap();
        let s = store.create("/registry/secrets/default/s", cm("s", serde_json::json!({}))).await.unwrap();
        settle(&cache, &*store).await;
        let next = |rx: &mut broadcast::Receiver<Arc<CacheEvent>>| rx.try_recv().map(|e| e.revision()).ok();
        assert_eq!((next(&mut configmaps), next(&mut configmaps)), (Some(a.mod_revision), None));
        assert_eq!((next(&mut one_namespace), next(&mut one_namespace)), (Some(a.mod_revision), None));
        assert_eq!((next(&mut secrets), next(&mut secrets)), (Some(s.mod_revision), None));
        assert_eq!(
            (next(&mut everything), next(&mut everything), next(&mut everything)),
            (Some(a.mod_revision), Some(s.mod_revision), None)
        );
    }

    #[tokio::test]
    async fn watches_replay_the_window_and_refuse_older_revisions() {
        let store = rudder_store::memory();
        let cache = WatchCache::start(store.clone()).await.unwrap();
        let start = store.current_revision();
        let a = store.create("/registry/configmaps/default/a", cm("a", serde_json::json!({}))).await.unwrap();
        store
            .update("/registry/configmaps/default/a", a.mod_revision, cm("a", serde_json::json!({"v": "2"})))
            .await
            .unwrap();
        store.delete("/registry/configmaps/default/a", None).await.unwrap();
        settle(&cache, &*store).await;
        let filter = Filter { prefix: "/registry/configmaps/".into(), ..Default::default() };
        let Ok(w) = cache.watch(&filter, WatchStart::After(start)) else { panic!("window holds the start") };
        let kinds: Vec<_> = w.backlog.iter().map(|e| e.event_type).collect();
        assert_eq!(kinds, [CacheEventType::Added, CacheEventType::Modified, CacheEventType::Deleted]);
        assert!(w.backlog[1].prev.is_some());
        assert!(matches!(cache.watch(&filter, WatchStart::After(start - 1)), Err(WatchError::TooOld { .. })));

        let Ok(mut live) = cache.watch(&filter, WatchStart::NowWithInitial) else { panic!("now always works") };
        assert!(live.initial.is_empty());
        let b = store.create("/registry/configmaps/default/b", cm("b", serde_json::json!({}))).await.unwrap();
        let ev = tokio::time::timeout(Duration::from_secs(5), live.receiver.recv()).await.unwrap().unwrap();
        assert_eq!((ev.event_type, ev.revision()), (CacheEventType::Added, b.mod_revision));
    }
}
