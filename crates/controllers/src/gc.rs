//! The garbage collector: deletes objects whose owners are gone, and carries out foreground and
//! orphan deletion of owners.
//!
//! Design (as upstream's, in outline):
//!
//! - **Monitors.** Discovery lists every resource with `list`, `watch` and `delete` (events
//!   excepted); one metadata-only watch per resource (`PartialObjectMetadata`) feeds the graph.
//!   Discovery is repeated every [`REDISCOVER`], and new resources get monitors.
//! - **Graph** ([`Graph`]). One node per object uid with its owner references, and the reverse
//!   edges (dependents). An owner referenced before (or without) being seen gets a *virtual*
//!   node, verified against the API.
//! - **Work** ([`Work`]). Graph changes queue work: `Attempt(uid)` asks "should this object go,
//!   or lose some owner references, or (being deleted in the foreground) lose its finalizer?";
//!   `Orphan(uid)` strips an owner being deleted with `orphan` from its dependents. Workers
//!   start once every monitor has listed, and always decide from live reads, never from the
//!   graph alone.
//!
//! Decisions for a dependent, from the live state of each owner ([`decide`]): an owner that
//! exists with the referenced uid is *solid*; a missing one (404, or another uid under that
//! name) is *dangling*; one being deleted in the foreground is *waiting*. With a solid owner the
//! dependent stays, losing its dangling and waiting references; otherwise it is deleted (in the
//! foreground when a waiting owner must wait for its own dependents first).

use crate::Shutdown;
use crate::support::{WorkQueue, is_conflict, is_not_found, stopped};
use anyhow::{Context as _, anyhow};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ObjectMeta, Patch, PatchParams, Preconditions, PropagationPolicy};
use kube::core::PartialObjectMeta;
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope, verbs};
use kube::runtime::{WatchStreamExt, watcher};
use parking_lot::{Mutex, RwLock};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// The finalizer for foreground deletion: the owner stays until its blocking dependents are gone.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer for orphan deletion: the owner stays until its dependents no longer point at it.
pub const ORPHAN: &str = "orphan";

/// How often discovery is repeated to find new resources.
const REDISCOVER: Duration = Duration::from_secs(30);
/// How long workers wait for the monitors' first lists before starting anyway.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// Workers processing the queue.
const WORKERS: usize = 4;

/// A queued question about one object.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Work {
    /// Should the object go, lose owner references, or lose its `foregroundDeletion` finalizer?
    Attempt(String),
    /// Strip the (orphan-deleted) object from its dependents' owner references.
    Orphan(String),
}

/// One object in the graph.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Node {
    pub api_version: String,
    pub kind: String,
    /// For virtual nodes: the dependent's namespace (the owner's if it is namespaced).
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
    pub owners: Vec<OwnerReference>,
    /// Uids of the objects whose owner references name this one.
    pub dependents: BTreeSet<String>,
    /// Seen by a watch; false for a virtual node known only from an owner reference.
    pub observed: bool,
    /// Has `deletionTimestamp`.
    pub deleting: bool,
    /// Has `deletionTimestamp` and the `foregroundDeletion` finalizer.
    pub deleting_dependents: bool,
    /// Has `deletionTimestamp` and the `orphan` finalizer.
    pub orphaning: bool,
}

fn has_finalizer(meta: &ObjectMeta, f: &str) -> bool {
    meta.finalizers.iter().flatten().any(|x| x == f)
}

fn blocks(r: &OwnerReference) -> bool {
    r.block_owner_deletion == Some(true)
}

/// The owner/dependent graph over every watched object.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
}

impl Graph {
    pub fn node(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn dependents(&self, uid: &str) -> Vec<String> {
        self.nodes.get(uid).map(|n| n.dependents.iter().cloned().collect()).unwrap_or_default()
    }

    /// Dependents whose reference to `owner` has `blockOwnerDeletion`: a foreground deletion of
    /// `owner` waits for these.
    pub fn blocking_dependents(&self, owner: &str) -> Vec<String> {
        let Some(n) = self.nodes.get(owner) else { return Vec::new() };
        n.dependents
            .iter()
            .filter(|d| self.nodes.get(*d).is_some_and(|dep| dep.owners.iter().any(|r| r.uid == owner && blocks(r))))
            .cloned()
            .collect()
    }

    /// Records an object seen by a watch (added or changed); returns the work this causes.
    pub fn observe(&mut self, api_version: &str, kind: &str, meta: &ObjectMeta) -> Vec<Work> {
        let Some(uid) = meta.uid.clone().filter(|u| !u.is_empty()) else { return Vec::new() };
        let mut work = Vec::new();
        let owners = meta.owner_references.clone().unwrap_or_default();
        let deleting = meta.deletion_timestamp.is_some();
        let deleting_dependents = deleting && has_finalizer(meta, FOREGROUND);
        let orphaning = deleting && has_finalizer(meta, ORPHAN);
        let namespace = meta.namespace.clone().filter(|n| !n.is_empty());
        let node = self.nodes.entry(uid.clone()).or_default();
        let old_owners = std::mem::replace(&mut node.owners, owners.clone());
        *node = Node {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
            uid: uid.clone(),
            owners: owners.clone(),
            dependents: std::mem::take(&mut node.dependents),
            observed: true,
            deleting,
            deleting_dependents,
            orphaning,
        };
        let dependents: Vec<String> = node.dependents.iter().cloned().collect();

        // Owners no longer referenced, or no longer blocked on: an owner waiting for its
        // dependents may now be free to go.
        for old in &old_owners {
            let still = owners.iter().find(|r| r.uid == old.uid);
            if still.is_none()
                && let Some(o) = self.nodes.get_mut(&old.uid)
            {
                o.dependents.remove(&uid);
            }
            let unblocked = blocks(old) && !still.is_some_and(blocks);
            if (still.is_none() || unblocked) && self.nodes.get(&old.uid).is_some_and(|o| o.deleting_dependents) {
                work.push(Work::Attempt(old.uid.clone()));
            }
        }
        // New owners: link them, and have unknown ones verified.
        for r in owners.iter().filter(|r| !old_owners.iter().any(|o| o.uid == r.uid)) {
            match self.nodes.get_mut(&r.uid) {
                Some(o) => {
                    o.dependents.insert(uid.clone());
                    if o.deleting_dependents {
                        work.push(Work::Attempt(uid.clone()));
                    }
                }
                None => {
                    self.nodes.insert(
                        r.uid.clone(),
                        Node {
                            api_version: r.api_version.clone(),
                            kind: r.kind.clone(),
                            namespace: namespace.clone(),
                            name: r.name.clone(),
                            uid: r.uid.clone(),
                            dependents: BTreeSet::from([uid.clone()]),
                            ..Default::default()
                        },
                    );
                    work.push(Work::Attempt(r.uid.clone()));
                }
            }
        }
        if orphaning {
            work.push(Work::Orphan(uid.clone()));
        }
        if deleting_dependents {
            work.push(Work::Attempt(uid.clone()));
            work.extend(dependents.into_iter().map(Work::Attempt));
        }
        work
    }

    /// Removes an object that is gone (or a virtual node found absent); returns the work this
    /// causes: its dependents lost an owner, and its owners may be waiting for it.
    pub fn remove(&mut self, uid: &str) -> Vec<Work> {
        let Some(node) = self.nodes.remove(uid) else { return Vec::new() };
        let mut work: Vec<Work> = node.dependents.iter().cloned().map(Work::Attempt).collect();
        for r in &node.owners {
            if let Some(o) = self.nodes.get_mut(&r.uid) {
                o.dependents.remove(uid);
                if o.deleting_dependents {
                    work.push(Work::Attempt(r.uid.clone()));
                }
                // A virtual owner with nothing left pointing at it is no longer needed.
                if !o.observed && o.dependents.is_empty() {
                    self.nodes.remove(&r.uid);
                }
            }
        }
        work
    }
}

/// What an owner reference points at, read live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerState {
    /// Exists with the referenced uid and is not being deleted in the foreground.
    Solid,
    /// Absent: not found, or another object (another uid) has the name now.
    Dangling,
    /// Exists and is being deleted in the foreground: waiting for its dependents.
    Waiting,
}

/// What to do with an object that has owner references.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    Keep,
    /// Remove the owner references with these uids.
    Strip(Vec<String>),
    /// Delete the object with this propagation policy.
    Delete(PropagationPolicy),
}

/// The decision for an object given the live state of each owner (by uid), whether it has
/// dependents of its own, and its finalizers.
pub fn decide(owners: &[(String, OwnerState)], has_dependents: bool, finalizers: &[String]) -> Decision {
    if owners.is_empty() {
        return Decision::Keep;
    }
    if owners.iter().any(|(_, s)| *s == OwnerState::Solid) {
        let strip: Vec<String> =
            owners.iter().filter(|(_, s)| *s != OwnerState::Solid).map(|(u, _)| u.clone()).collect();
        return if strip.is_empty() { Decision::Keep } else { Decision::Strip(strip) };
    }
    // Every owner is gone or going.
    if has_dependents && owners.iter().any(|(_, s)| *s == OwnerState::Waiting) {
        // A foreground owner waits for this one, which must first wait for its own dependents.
        return Decision::Delete(PropagationPolicy::Foreground);
    }
    let has = |f: &str| finalizers.iter().any(|x| x == f);
    if has(ORPHAN) {
        Decision::Delete(PropagationPolicy::Orphan)
    } else if has(FOREGROUND) {
        Decision::Delete(PropagationPolicy::Foreground)
    } else {
        Decision::Delete(PropagationPolicy::Background)
    }
}

/// `refs` without the references to `uids`; `None` when nothing would change.
pub fn without_owners(refs: &[OwnerReference], uids: &[String]) -> Option<Vec<OwnerReference>> {
    let kept: Vec<OwnerReference> = refs.iter().filter(|r| !uids.contains(&r.uid)).cloned().collect();
    (kept.len() != refs.len()).then_some(kept)
}

/// The resource an `apiVersion` and `kind` are served as (at the group's preferred version), and
/// whether it is namespaced.
#[derive(Default)]
struct Mapper {
    by_kind: HashMap<(String, String), (ApiResource, bool)>,
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

impl Mapper {
    fn resolve(&self, api_version: &str, kind: &str) -> Option<(ApiResource, bool)> {
        self.by_kind.get(&(group_of(api_version).to_string(), kind.to_string())).cloned()
    }
}

/// Whether the collector watches a resource.
fn monitored(ar: &ApiResource, caps: &ApiCapabilities) -> bool {
    let events = ar.plural == "events" && (ar.group.is_empty() || ar.group == "events.k8s.io");
    !events && [verbs::LIST, verbs::WATCH, verbs::DELETE].iter().all(|v| caps.supports_operation(v))
}

/// An object to read or write: its resource, namespace (if namespaced), name and uid.
struct Target {
    api: Api<DynamicObject>,
    name: String,
    uid: String,
}

struct Gc {
    client: Client,
    graph: Mutex<Graph>,
    mapper: RwLock<Mapper>,
    queue: WorkQueue<Work>,
}

impl Gc {
    fn enqueue(&self, work: Vec<Work>) {
        for w in work {
            self.queue.add(w);
        }
    }

    /// Where an object of this kind lives; `namespace` is used if the resource is namespaced.
    fn target(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        uid: &str,
    ) -> anyhow::Result<Target> {
        let (ar, namespaced) = self
            .mapper
            .read()
            .resolve(api_version, kind)
            .ok_or_else(|| anyhow!("no resource serves {kind} in {api_version}"))?;
        let api = match (namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &ar),
            (true, None) => return Err(anyhow!("{kind} {name} is namespaced but no namespace is known")),
            (false, _) => Api::all_with(self.client.clone(), &ar),
        };
        Ok(Target { api, name: name.into(), uid: uid.into() })
    }

    /// The live metadata of `t`, or `None` if it is gone (or the name now has another uid).
    async fn read(&self, t: &Target) -> anyhow::Result<Option<PartialObjectMeta<DynamicObject>>> {
        let live = t.api.get_metadata_opt(&t.name).await?;
        Ok(live.filter(|m| m.metadata.uid.as_deref() == Some(t.uid.as_str())))
    }

    /// Merge-patches `t`'s metadata with what `change` makes of its live metadata, guarded by
    /// its uid and resourceVersion; `Ok(false)` when `t` is gone or `change` wants nothing.
    async fn update_meta(&self, t: &Target, change: impl Fn(&ObjectMeta) -> Option<Value>) -> anyhow::Result<bool> {
        let Some(live) = self.read(t).await? else { return Ok(false) };
        let Some(mut fields) = change(&live.metadata) else { return Ok(false) };
        fields["uid"] = json!(t.uid);
        fields["resourceVersion"] = json!(live.metadata.resource_version);
        let patch = json!({ "metadata": fields });
        match t.api.patch(&t.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn remove_finalizer(&self, t: &Target, finalizer: &str) -> anyhow::Result<bool> {
        self.update_meta(t, |m| {
            let fins: Vec<String> = m.finalizers.iter().flatten().cloned().collect();
            fins.iter().any(|f| f == finalizer).then(|| {
                let kept: Vec<&String> = fins.iter().filter(|f| *f != finalizer).collect();
                json!({ "finalizers": kept })
            })
        })
        .await
    }

    async fn strip_owners(&self, t: &Target, uids: &[String]) -> anyhow::Result<bool> {
        self.update_meta(t, |m| {
            let refs = m.owner_references.clone().unwrap_or_default();
            without_owners(&refs, uids).map(|kept| {
                if kept.is_empty() { json!({ "ownerReferences": null }) } else { json!({ "ownerReferences": kept }) }
            })
        })
        .await
    }

    async fn owner_state(&self, dependent_ns: Option<&str>, r: &OwnerReference) -> anyhow::Result<OwnerState> {
        let namespaced_owner =
            self.mapper.read().resolve(&r.api_version, &r.kind).is_some_and(|(_, namespaced)| namespaced);
        if namespaced_owner && dependent_ns.is_none() {
            // As upstream: a cluster-scoped object cannot be owned by a namespaced one; such a
            // reference cannot be resolved and never makes the object collectable.
            tracing::warn!(owner = %r.name, kind = %r.kind, "cluster-scoped object refers to a namespaced owner; ignored");
            return Ok(OwnerState::Solid);
        }
        let t = self.target(&r.api_version, &r.kind, dependent_ns, &r.name, &r.uid)?;
        Ok(match self.read(&t).await? {
            None => OwnerState::Dangling,
            Some(o) if o.metadata.deletion_timestamp.is_some() && has_finalizer(&o.metadata, FOREGROUND) => {
                OwnerState::Waiting
            }
            Some(_) => OwnerState::Solid,
        })
    }

    async fn process(&self, work: &Work) -> anyhow::Result<()> {
        match work {
            Work::Attempt(uid) => self.attempt(uid).await,
            Work::Orphan(uid) => self.orphan(uid).await,
        }
    }

    async fn attempt(&self, uid: &str) -> anyhow::Result<()> {
        let Some(node) = self.graph.lock().node(uid).cloned() else { return Ok(()) };
        let t = self.target(&node.api_version, &node.kind, node.namespace.as_deref(), &node.name, uid)?;
        let Some(live) = self.read(&t).await? else {
            // Gone (or never there, for a virtual owner): its dependents lost an owner.
            let work = self.graph.lock().remove(uid);
            self.enqueue(work);
            return Ok(());
        };
        if !node.observed {
            // A virtual owner that exists: its monitor will report it.
            return Ok(());
        }
        let meta = &live.metadata;
        if meta.deletion_timestamp.is_some() {
            if has_finalizer(meta, FOREGROUND) {
                return self.finish_foreground(&t).await;
            }
            return Ok(());
        }
        let refs = meta.owner_references.clone().unwrap_or_default();
        if refs.is_empty() {
            return Ok(());
        }
        let mut states = Vec::with_capacity(refs.len());
        for r in &refs {
            states.push((r.uid.clone(), self.owner_state(meta.namespace.as_deref(), r).await?));
        }
        let has_dependents = !self.graph.lock().dependents(uid).is_empty();
        let finalizers: Vec<String> = meta.finalizers.clone().unwrap_or_default();
        match decide(&states, has_dependents, &finalizers) {
            Decision::Keep => {}
            Decision::Strip(uids) => {
                tracing::debug!(kind = %node.kind, name = %node.name, ?uids, "removing references to absent owners");
                self.strip_owners(&t, &uids).await?;
            }
            Decision::Delete(policy) => {
                tracing::debug!(kind = %node.kind, name = %node.name, ?policy, "deleting an object whose owners are gone");
                let dp = DeleteParams {
                    propagation_policy: Some(policy),
                    preconditions: Some(Preconditions { uid: Some(uid.to_string()), resource_version: None }),
                    ..Default::default()
                };
                match t.api.delete(&t.name, &dp).await {
                    Ok(_) => {}
                    // Gone already, or replaced by another object of that name.
                    Err(e) if is_not_found(&e) || is_conflict(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    /// An owner deleted in the foreground: its dependents go first; once none that blocks it
    /// is left, its `foregroundDeletion` finalizer goes and the API server removes it.
    async fn finish_foreground(&self, owner: &Target) -> anyhow::Result<()> {
        let (blocking, pending): (Vec<String>, Vec<String>) = {
            let g = self.graph.lock();
            let blocking = g.blocking_dependents(&owner.uid);
            let pending = g
                .dependents(&owner.uid)
                .into_iter()
                .filter(|d| g.node(d).is_some_and(|n| !n.deleting || n.deleting_dependents))
                .collect();
            (blocking, pending)
        };
        if blocking.is_empty() {
            tracing::debug!(name = %owner.name, "foreground deletion: no blocking dependents left");
            self.remove_finalizer(owner, FOREGROUND).await?;
        }
        self.enqueue(pending.into_iter().map(Work::Attempt).collect());
        Ok(())
    }

    /// An owner deleted with `orphan`: every dependent loses its reference, then the finalizer
    /// goes and the API server removes the owner.
    async fn orphan(&self, uid: &str) -> anyhow::Result<()> {
        let Some(node) = self.graph.lock().node(uid).cloned() else { return Ok(()) };
        let owner = self.target(&node.api_version, &node.kind, node.namespace.as_deref(), &node.name, uid)?;
        let Some(live) = self.read(&owner).await? else { return Ok(()) };
        if live.metadata.deletion_timestamp.is_none() || !has_finalizer(&live.metadata, ORPHAN) {
            return Ok(());
        }
        let dependents: Vec<Node> = {
            let g = self.graph.lock();
            g.dependents(uid).iter().filter_map(|d| g.node(d).cloned()).filter(|n| n.observed).collect()
        };
        let me = vec![uid.to_string()];
        for d in &dependents {
            let t = self.target(&d.api_version, &d.kind, d.namespace.as_deref(), &d.name, &d.uid)?;
            self.strip_owners(&t, &me).await.with_context(|| format!("cannot orphan {} {}", d.kind, d.name))?;
        }
        tracing::debug!(kind = %node.kind, name = %node.name, n = dependents.len(), "orphaned dependents");
        self.remove_finalizer(&owner, ORPHAN).await?;
        Ok(())
    }
}

/// Follows one resource and keeps the graph up to date. `synced` is sent once, after the first
/// complete list.
async fn monitor(gc: Arc<Gc>, ar: ApiResource, synced: Option<tokio::sync::oneshot::Sender<()>>) {
    let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(gc.client.clone(), &ar);
    let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
    let mut synced = synced;
    // Uids this monitor has put in the graph, to notice objects deleted while a watch was down.
    let mut known: HashSet<String> = HashSet::new();
    let mut relisted: HashSet<String> = HashSet::new();
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(resource = %ar.plural, "garbage collector watch: {e}");
                continue;
            }
        };
        let uid_of = |m: &ObjectMeta| m.uid.clone().unwrap_or_default();
        let work = match event {
            watcher::Event::Apply(o) => {
                known.insert(uid_of(&o.metadata));
                gc.graph.lock().observe(&ar.api_version, &ar.kind, &o.metadata)
            }
            watcher::Event::Delete(o) => {
                let uid = uid_of(&o.metadata);
                known.remove(&uid);
                gc.graph.lock().remove(&uid)
            }
            watcher::Event::Init => {
                relisted.clear();
                Vec::new()
            }
            watcher::Event::InitApply(o) => {
                relisted.insert(uid_of(&o.metadata));
                gc.graph.lock().observe(&ar.api_version, &ar.kind, &o.metadata)
            }
            watcher::Event::InitDone => {
                let gone: Vec<String> = known.difference(&relisted).cloned().collect();
                known = std::mem::take(&mut relisted);
                if let Some(tx) = synced.take() {
                    let _ = tx.send(());
                }
                let mut g = gc.graph.lock();
                gone.iter().flat_map(|u| g.remove(u)).collect()
            }
        };
        gc.enqueue(work);
    }
}

/// Discovers the resources to watch and refreshes the mapper; returns the monitored ones.
async fn discover(gc: &Gc) -> anyhow::Result<Vec<ApiResource>> {
    let discovery: Discovery = crate::namespace::discover(&gc.client).await?;
    let mut mapper = Mapper::default();
    let mut watched = Vec::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            mapper.by_kind.insert((ar.group.clone(), ar.kind.clone()), (ar.clone(), caps.scope == Scope::Namespaced));
            if monitored(&ar, &caps) {
                watched.push(ar);
            }
        }
    }
    *gc.mapper.write() = mapper;
    Ok(watched)
}

async fn worker(gc: Arc<Gc>) {
    while let Some(work) = gc.queue.next().await {
        match gc.process(&work).await {
            Ok(()) => gc.queue.forget(&work),
            Err(e) => {
                tracing::debug!(?work, "garbage collector: {e:#}");
                gc.queue.retry(work.clone());
            }
        }
        gc.queue.done(&work);
    }
}

/// Runs the garbage collector until `shutdown` turns true.
pub async fn run(client: Client, shutdown: Shutdown) -> anyhow::Result<()> {
    let gc = Arc::new(Gc {
        client,
        graph: Mutex::new(Graph::default()),
        mapper: RwLock::new(Mapper::default()),
        queue: WorkQueue::new(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    let body = {
        let gc = gc.clone();
        async move {
            let mut watched: HashSet<(String, String)> = HashSet::new();
            let mut workers_started = false;
            loop {
                match discover(&gc).await {
                    Ok(resources) => {
                        let mut syncs = Vec::new();
                        for ar in resources {
                            if watched.insert((ar.group.clone(), ar.plural.clone())) {
                                let (tx, rx) = tokio::sync::oneshot::channel();
                                syncs.push(rx);
                                tasks.spawn(monitor(gc.clone(), ar, Some(tx)));
                            }
                        }
                        if !workers_started {
                            // Decisions need a complete graph: wait for the first lists.
                            let all = futures::future::join_all(syncs);
                            if tokio::time::timeout(SYNC_TIMEOUT, all).await.is_err() {
                                tracing::warn!(
                                    "garbage collector: some resources did not list in time; starting anyway"
                                );
                            }
                            for _ in 0..WORKERS {
                                tasks.spawn(worker(gc.clone()));
                            }
                            workers_started = true;
                        }
                    }
                    Err(e) => tracing::warn!("garbage collector: {e:#}"),
                }
                let wait = if workers_started { REDISCOVER } else { Duration::from_secs(1) };
                tokio::time::sleep(wait).await;
            }
        }
    };
    tokio::select! {
        _ = body => {}
        _ = stopped(shutdown) => {}
    }
    gc.queue.close();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn owner_ref(uid: &str, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: format!("cm-{uid}"),
            uid: uid.into(),
            block_owner_deletion: block.then_some(true),
            ..Default::default()
        }
    }

    fn meta(uid: &str, owners: &[OwnerReference]) -> ObjectMeta {
        ObjectMeta {
            name: Some(format!("cm-{uid}")),
            namespace: Some("ns".into()),
            uid: Some(uid.into()),
            owner_references: (!owners.is_empty()).then(|| owners.to_vec()),
            ..Default::default()
        }
    }

    fn deleting(mut m: ObjectMeta, finalizer: &str) -> ObjectMeta {
        m.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
        m.finalizers = Some(vec![finalizer.into()]);
        m
    }

    #[test]
    fn unknown_owners_become_virtual_and_are_verified() {
        let mut g = Graph::default();
        let work = g.observe("v1", "ConfigMap", &meta("d", &[owner_ref("o", false)]));
        assert_eq!(work, vec![Work::Attempt("o".into())]);
        let o = g.node("o").unwrap();
        assert!(!o.observed);
        assert_eq!(o.namespace.as_deref(), Some("ns"));
        assert_eq!(g.dependents("o"), vec!["d".to_string()]);
        // Seen for real later: same node, dependents kept, nothing to do.
        assert!(g.observe("v1", "ConfigMap", &meta("o", &[])).is_empty());
        assert!(g.node("o").unwrap().observed);
        assert_eq!(g.dependents("o"), vec!["d".to_string()]);
    }

    #[test]
    fn a_removed_owner_queues_its_dependents() {
        let mut g = Graph::default();
        g.observe("v1", "ConfigMap", &meta("o1", &[]));
        g.observe("v1", "ConfigMap", &meta("o2", &[]));
        g.observe("v1", "ConfigMap", &meta("d", &[owner_ref("o1", false), owner_ref("o2", false)]));
        assert_eq!(g.remove("o1"), vec![Work::Attempt("d".into())]);
        assert_eq!(g.dependents("o2"), vec!["d".to_string()]);
        // The dependent goes: its remaining owner forgets it.
        assert!(g.remove("d").is_empty());
        assert!(g.dependents("o2").is_empty());
    }

    #[test]
    fn changed_references_move_edges() {
        let mut g = Graph::default();
        g.observe("v1", "ConfigMap", &meta("o1", &[]));
        g.observe("v1", "ConfigMap", &meta("o2", &[]));
        g.observe("v1", "ConfigMap", &meta("d", &[owner_ref("o1", false)]));
        g.observe("v1", "ConfigMap", &meta("d", &[owner_ref("o2", false)]));
        assert!(g.dependents("o1").is_empty());
        assert_eq!(g.dependents("o2"), vec!["d".to_string()]);
    }

    #[test]
    fn foreground_owner_queues_itself_and_dependents_and_is_unblocked() {
        let mut g = Graph::default();
        g.observe("v1", "ConfigMap", &meta("o", &[]));
        g.observe("v1", "ConfigMap", &meta("blocker", &[owner_ref("o", true)]));
        g.observe("v1", "ConfigMap", &meta("other", &[owner_ref("o", false)]));
        let mut work = g.observe("v1", "ConfigMap", &deleting(meta("o", &[]), FOREGROUND));
        work.sort_by_key(|w| format!("{w:?}"));
        assert_eq!(
            work,
            vec![Work::Attempt("blocker".into()), Work::Attempt("o".into()), Work::Attempt("other".into())]
        );
        assert!(g.node("o").unwrap().deleting_dependents);
        assert_eq!(g.blocking_dependents("o"), vec!["blocker".to_string()]);
        // The blocker goes: the owner is looked at again and nothing blocks it any more.
        assert_eq!(g.remove("blocker"), vec![Work::Attempt("o".into())]);
        assert!(g.blocking_dependents("o").is_empty());
        // Dropping blockOwnerDeletion also unblocks.
        g.observe("v1", "ConfigMap", &meta("b2", &[owner_ref("o", true)]));
        assert_eq!(
            g.observe("v1", "ConfigMap", &meta("b2", &[owner_ref("o", false)])),
            vec![Work::Attempt("o".into())]
        );
        assert!(g.blocking_dependents("o").is_empty());
    }

    #[test]
    fn orphaning_owner_queues_orphan_work() {
        let mut g = Graph::default();
        g.observe("v1", "ConfigMap", &meta("o", &[]));
        assert_eq!(g.observe("v1", "ConfigMap", &deleting(meta("o", &[]), ORPHAN)), vec![Work::Orphan("o".into())]);
    }

    #[test]
    fn virtual_owner_dropped_with_its_last_dependent() {
        let mut g = Graph::default();
        g.observe("v1", "ConfigMap", &meta("d", &[owner_ref("ghost", false)]));
        g.remove("d");
        assert!(g.node("ghost").is_none());
        assert!(g.is_empty());
    }

    fn states(s: &[(&str, OwnerState)]) -> Vec<(String, OwnerState)> {
        s.iter().map(|(u, st)| (u.to_string(), *st)).collect()
    }

    #[test]
    fn decisions() {
        use OwnerState::*;
        assert_eq!(decide(&[], false, &[]), Decision::Keep);
        assert_eq!(decide(&states(&[("a", Solid)]), false, &[]), Decision::Keep);
        // Several owners: only goes once all are gone.
        assert_eq!(decide(&states(&[("a", Solid), ("b", Dangling)]), false, &[]), Decision::Strip(vec!["b".into()]));
        assert_eq!(
            decide(&states(&[("a", Dangling), ("b", Dangling)]), false, &[]),
            Decision::Delete(PropagationPolicy::Background)
        );
        // A solid owner keeps it, even when another waits for it in the foreground.
        assert_eq!(decide(&states(&[("a", Solid), ("w", Waiting)]), true, &[]), Decision::Strip(vec!["w".into()]));
        assert_eq!(decide(&states(&[("w", Waiting)]), false, &[]), Decision::Delete(PropagationPolicy::Background));
        assert_eq!(decide(&states(&[("w", Waiting)]), true, &[]), Decision::Delete(PropagationPolicy::Foreground));
        assert_eq!(
            decide(&states(&[("a", Dangling)]), true, &[ORPHAN.to_string()]),
            Decision::Delete(PropagationPolicy::Orphan)
        );
    }

    #[test]
    fn stripping_references() {
        let refs = vec![owner_ref("a", true), owner_ref("b", false)];
        assert_eq!(without_owners(&refs, &["a".into()]), Some(vec![owner_ref("b", false)]));
        assert_eq!(without_owners(&refs, &["zzz".into()]), None);
        assert_eq!(without_owners(&refs, &["a".into(), "b".into()]), Some(vec![]));
    }

    #[test]
    fn resolves_kinds_by_group() {
        let mut m = Mapper::default();
        let ar = ApiResource {
            group: "apps".into(),
            version: "v1".into(),
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            plural: "replicasets".into(),
        };
        m.by_kind.insert(("apps".into(), "ReplicaSet".into()), (ar, true));
        assert!(m.resolve("apps/v1beta2", "ReplicaSet").is_some());
        assert!(m.resolve("v1", "ReplicaSet").is_none());
        assert_eq!(group_of("v1"), "");
    }
}
