//! The ReplicaSet controller: keeps `spec.replicas` pods matching the selector, as upstream's
//! `pkg/controller/replicaset`. The same code runs the ReplicationController controller
//! (upstream's `pkg/controller/replication`, which also reuses the replica set logic).
//!
//! Each reconcile reads the replica set's namespace's pods from the process's shared pod
//! informer. As upstream, a cache may not show yet what the last reconcile did, so pods are
//! created or deleted only when the *expectations* of that reconcile are met: every pod it
//! created is in the cache (or the cache has passed the revision the create returned: the pod
//! came and went), and every pod it deleted is gone from the cache or terminating there. Until
//! then (at most five minutes, upstream's expectations timeout) the reconcile only writes
//! status. Then it
//!
//! - releases owned pods whose labels no longer match and adopts matching orphans (a strategic
//!   merge patch of `ownerReferences`);
//! - counts active pods (not terminating, not Succeeded/Failed);
//! - creates the missing ones from the template in slow-start batches (1, 2, 4, …; a failing
//!   batch stops the rest and sets the `ReplicaFailure` condition), or deletes the surplus in
//!   [`crate::pods::deletion_order`];
//! - writes `status` through the status subresource; requeues when a ready pod will become
//!   available after `minReadySeconds`.
//!
//! Reconciles are triggered by changes to replica sets and to pods (owned pods map to their
//! owner, orphans to every replica set whose selector matches them).

use crate::Shutdown;
use crate::informers::{Informers, SharedInformer};
use crate::pods::{self, Error};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetSpec, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{ObjectReference, Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference, Time};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use std::borrow::Borrow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a settled replica set is looked at again anyway.
const RESYNC: Duration = Duration::from_secs(300);

/// Most pods created or deleted in one reconcile (upstream's `BurstReplicas`).
const BURST: usize = 500;

/// Which kind of replica controller a reconcile is for: both share the logic below, the
/// replication controller (`v1`, a map selector) through a [`ReplicaSet`] view of itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `apps/v1` ReplicaSet.
    ReplicaSet,
    /// `v1` ReplicationController.
    ReplicationController,
}

impl Kind {
    /// The owner reference's `apiVersion`.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::ReplicaSet => "apps/v1",
            Kind::ReplicationController => "v1",
        }
    }

    /// The owner reference's `kind`.
    pub fn kind(self) -> &'static str {
        match self {
            Kind::ReplicaSet => "ReplicaSet",
            Kind::ReplicationController => "ReplicationController",
        }
    }

    fn owns(self, owner: &OwnerReference) -> bool {
        let group = owner.api_version.split_once('/').map_or("", |(g, _)| g);
        let my_group = self.api_version().split_once('/').map_or("", |(g, _)| g);
        owner.kind == self.kind() && group == my_group
    }
}

struct Ctx {
    client: Client,
    recorder: Recorder,
    kind: Kind,
    pods: Arc<SharedInformer<Pod>>,
    /// What the last reconcile of each replica set (`namespace/name`) wrote.
    expectations: Mutex<HashMap<String, Expectations>>,
}

/// How long a reconcile's expectations hold at most (upstream's `ExpectationsTimeout`).
const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(300);

/// The pods one reconcile of a replica set created and deleted, to be seen in the cache before
/// the next reconcile creates or deletes any.
#[derive(Debug)]
struct Expectations {
    /// The replica set's uid: a new replica set of the same name expects nothing.
    owner: String,
    /// Created pods: name, uid and the revision the create returned.
    adds: Vec<(String, String, u64)>,
    /// Deleted pods: name and uid.
    deletes: Vec<(String, String)>,
    since: Instant,
}

impl Expectations {
    /// Whether the cache shows everything these expect.
    fn met(&self, pods: &SharedInformer<Pod>, ns: &str) -> bool {
        if self.since.elapsed() >= EXPECTATIONS_TIMEOUT {
            return true;
        }
        let store = pods.store();
        let cached = |name: &str, uid: &str| {
            store.get(&ObjectRef::new(name).within(ns)).filter(|p| p.metadata.uid.as_deref() == Some(uid))
        };
        let progress = pods.progress();
        self.adds.iter().all(|(name, uid, rv)| progress >= *rv || cached(name, uid).is_some())
            && self
                .deletes
                .iter()
                .all(|(name, uid)| cached(name, uid).is_none_or(|p| p.metadata.deletion_timestamp.is_some()))
    }
}

impl Ctx {
    /// Whether the replica set `key` (uid `owner`) may create or delete pods now.
    fn may_manage(&self, key: &str, owner: &str, ns: &str) -> bool {
        let mut all = self.expectations.lock();
        let Some(e) = all.get(key) else { return true };
        if e.owner != owner || e.met(&self.pods, ns) {
            all.remove(key);
            return true;
        }
        false
    }

    fn expect(&self, key: String, e: Expectations) {
        let mut all = self.expectations.lock();
        // Those of replica sets deleted meanwhile go once they time out.
        all.retain(|_, old| old.since.elapsed() < EXPECTATIONS_TIMEOUT);
        if e.adds.is_empty() && e.deletes.is_empty() {
            all.remove(&key);
        } else {
            all.insert(key, e);
        }
    }
}

/// A replication controller as a replica set: same metadata, its map selector as
/// `matchLabels`, same template and status fields.
pub fn rc_view(rc: &ReplicationController) -> ReplicaSet {
    let spec = rc.spec.clone().unwrap_or_default();
    ReplicaSet {
        metadata: rc.metadata.clone(),
        spec: Some(ReplicaSetSpec {
            replicas: spec.replicas,
            min_ready_seconds: spec.min_ready_seconds,
            selector: LabelSelector { match_labels: spec.selector, match_expressions: None },
            template: spec.template,
        }),
        status: rc
            .status
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok())
            .and_then(|v| serde_json::from_value(v).ok()),
    }
}

/// Runs the ReplicaSet and ReplicationController controllers until `shutdown` turns true.
pub async fn run(client: Client, informers: Informers, shutdown: Shutdown) -> anyhow::Result<()> {
    let pods = &informers.pods;
    let rs = run_kind::<ReplicaSet>(client.clone(), pods, shutdown.clone(), Kind::ReplicaSet, |rs| rs.clone());
    let rc = run_kind::<ReplicationController>(client, pods, shutdown, Kind::ReplicationController, rc_view);
    futures::future::join(rs, rc).await;
    Ok(())
}

async fn run_kind<K>(
    client: Client,
    pods: &Arc<SharedInformer<Pod>>,
    mut shutdown: Shutdown,
    kind: Kind,
    view: fn(&K) -> ReplicaSet,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let controller = Controller::new(Api::<K>::all(client.clone()), watcher::Config::default());
    let store = controller.store();
    let reporter = match kind {
        Kind::ReplicaSet => "replicaset-controller",
        Kind::ReplicationController => "replication-controller",
    };
    let recorder = Recorder::new(client.clone(), Reporter { controller: reporter.into(), instance: None });
    // Nothing is created before the pods that exist are known.
    if !tokio::select! {
        listed = async { pods.listed().wait_for(|l| *l).await.is_ok() } => listed,
        _ = shutdown.wait_for(|stop| *stop) => false,
    } {
        return;
    }
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        recorder,
        kind,
        pods: pods.clone(),
        expectations: Mutex::new(HashMap::new()),
    });
    controller
        .watches_shared_stream(pods.objects(), move |pod: Arc<Pod>| {
            let ns = pod.namespace().unwrap_or_default();
            if let Some(owner) = pods::controller_of(&pod.metadata) {
                if kind.owns(owner) {
                    return vec![ObjectRef::new(&owner.name).within(&ns)];
                }
                return Vec::new();
            }
            // An orphan: every controller here that would adopt it.
            let labels = pod.labels();
            store
                .state()
                .iter()
                .filter(|o| o.meta().namespace.as_deref() == Some(ns.as_str()))
                .filter(|o| {
                    view(o).spec.as_ref().is_some_and(|s| {
                        !pods::selector_is_empty(&s.selector) && pods::selector_matches(&s.selector, labels)
                    })
                })
                .map(|o| ObjectRef::from_obj(o.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .run(move |obj: Arc<K>, ctx: Arc<Ctx>| reconcile(view(&obj), ctx), error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "replica controller reconcile");
            }
        })
        .await;
}

fn error_policy<K>(_obj: Arc<K>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::debug!(error = %err, "replica controller reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

fn object_ref(kind: Kind, rs: &ReplicaSet) -> ObjectReference {
    ObjectReference {
        api_version: Some(kind.api_version().into()),
        kind: Some(kind.kind().into()),
        name: rs.metadata.name.clone(),
        namespace: rs.metadata.namespace.clone(),
        uid: rs.metadata.uid.clone(),
        resource_version: rs.metadata.resource_version.clone(),
        ..Default::default()
    }
}

async fn event(ctx: &Ctx, rs: &ReplicaSet, type_: EventType, reason: &str, action: &str, note: String) {
    let ev = Event { type_, reason: reason.into(), note: Some(note), action: action.into(), secondary: None };
    if let Err(e) = ctx.recorder.publish(&ev, &object_ref(ctx.kind, rs)).await {
        tracing::debug!(error = %e, "recording a replica controller event");
    }
}

async fn reconcile(rs: ReplicaSet, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = rs.namespace().unwrap_or_default();
    let name = rs.name_any();
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    let Some(spec) = rs.spec.as_ref() else { return Ok(Action::await_change()) };
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let key = format!("{ns}/{name}");
    // Read before the cache: expectations met then hold for what is read after.
    let may_manage = ctx.may_manage(&key, &uid, &ns);
    let all: Vec<Arc<Pod>> =
        ctx.pods.store().state().into_iter().filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str())).collect();
    let deleting = rs.metadata.deletion_timestamp.is_some();

    // Claim: keep matching owned pods, release the rest, adopt matching orphans.
    let mut owned = Vec::new();
    for pod in all {
        let matches = pods::selector_matches(&spec.selector, pod.labels());
        match pods::controller_of(&pod.metadata) {
            Some(owner) if owner.uid == uid => {
                if matches || pod.metadata.deletion_timestamp.is_some() {
                    owned.push(pod);
                } else {
                    release(&pods_api, &pod, &uid).await;
                }
            }
            Some(_) => {}
            None => {
                if matches
                    && !deleting
                    && !pods::selector_is_empty(&spec.selector)
                    && pod.metadata.deletion_timestamp.is_none()
                {
                    let oref = pods::controller_ref(ctx.kind.api_version(), ctx.kind.kind(), &rs.metadata);
                    let patch = serde_json::json!({
                        "metadata": {"ownerReferences": [oref], "uid": pod.metadata.uid}
                    });
                    match pods_api.patch(&pod.name_any(), &PatchParams::default(), &Patch::Strategic(patch)).await {
                        Ok(p) => owned.push(Arc::new(p)),
                        Err(e) => tracing::debug!(error = %e, pod = %pod.name_any(), "adopting a pod"),
                    }
                }
            }
        }
    }
    let active: Vec<Arc<Pod>> = owned.into_iter().filter(|p| pods::is_active(p)).collect();

    let mut failure: Option<String> = None;
    let mut expected =
        Expectations { owner: uid.clone(), adds: Vec::new(), deletes: Vec::new(), since: Instant::now() };
    if !deleting && may_manage {
        let want = usize::try_from(spec.replicas.unwrap_or(1).max(0)).unwrap_or(0);
        if active.len() < want {
            failure = create_pods(&ctx, &rs, &pods_api, (want - active.len()).min(BURST), &mut expected.adds).await;
        } else if active.len() > want {
            let victims = pods::pods_to_delete(&active, (active.len() - want).min(BURST));
            let dp = DeleteParams::default();
            let results = futures::future::join_all(
                victims.iter().map(|p| pods_api.delete(p.metadata.name.as_deref().unwrap_or_default(), &dp)),
            )
            .await;
            for (pod, result) in victims.iter().zip(results) {
                let pname = pod.name_any();
                match result {
                    Ok(_) => {
                        expected.deletes.push((pname.clone(), pod.metadata.uid.clone().unwrap_or_default()));
                        let note = format!("Deleted pod: {pname}");
                        event(&ctx, &rs, EventType::Normal, "SuccessfulDelete", "Delete", note).await;
                    }
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => {
                        let msg = format!("Error deleting: {}", api_message(&e));
                        if failure.is_none() {
                            event(&ctx, &rs, EventType::Warning, "FailedDelete", "Delete", msg.clone()).await;
                            failure = Some(msg);
                        }
                    }
                }
            }
        }
    }

    let waiting = !deleting && !may_manage;
    ctx.expect(key, expected);
    let now = pods::now();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let status = compute_status(&rs, &active, failure.as_deref(), now);
    if rs.status.as_ref() != Some(&status) {
        let mut body = serde_json::json!({ "status": status });
        if status.conditions.is_none() {
            body["status"]["conditions"] = serde_json::Value::Null;
        }
        let pp = PatchParams::default();
        let result = match ctx.kind {
            Kind::ReplicaSet => Api::<ReplicaSet>::namespaced(ctx.client.clone(), &ns)
                .patch_status(&name, &pp, &Patch::Merge(body))
                .await
                .map(drop),
            Kind::ReplicationController => Api::<ReplicationController>::namespaced(ctx.client.clone(), &ns)
                .patch_status(&name, &pp, &Patch::Merge(body))
                .await
                .map(drop),
        };
        match result {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    if failure.is_some() {
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    if waiting {
        // The pod events that meet the expectations bring this replica set back; this is a
        // backstop.
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    // Come back when a ready pod becomes available.
    let wait = active.iter().filter_map(|p| pods::seconds_until_available(p, min_ready, now)).min();
    Ok(match wait {
        Some(s) => Action::requeue(Duration::from_secs(u64::try_from(s).unwrap_or(1).max(1))),
        // A periodic look, as upstream's informer resync, in case a change went unseen.
        None => Action::requeue(RESYNC),
    })
}

async fn release(api: &Api<Pod>, pod: &Pod, owner_uid: &str) {
    let patch = serde_json::json!({
        "metadata": {"ownerReferences": [{"$patch": "delete", "uid": owner_uid}], "uid": pod.metadata.uid}
    });
    if let Err(e) = api.patch(&pod.name_any(), &PatchParams::default(), &Patch::Strategic(patch)).await {
        tracing::debug!(error = %e, pod = %pod.name_any(), "releasing a pod");
    }
}

/// The pod the replica set's template describes, owned by the replica set.
pub fn pod_from_template(rs: &ReplicaSet, kind: Kind) -> Pod {
    let template = rs.spec.as_ref().and_then(|s| s.template.clone()).unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.name_any())),
            namespace: rs.namespace(),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![pods::controller_ref(kind.api_version(), kind.kind(), &rs.metadata)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// Creates `count` pods in slow-start batches; returns the first error's message, if any.
async fn create_pods(
    ctx: &Ctx,
    rs: &ReplicaSet,
    api: &Api<Pod>,
    count: usize,
    created: &mut Vec<(String, String, u64)>,
) -> Option<String> {
    let pod = pod_from_template(rs, ctx.kind);
    let pp = PostParams::default();
    for batch in pods::slow_start_batches(count) {
        let results = futures::future::join_all((0..batch).map(|_| api.create(&pp, &pod))).await;
        let mut failed = None;
        for r in results {
            match r {
                Ok(p) => {
                    let revision = p.metadata.resource_version.as_deref().and_then(|rv| rv.parse().ok());
                    created.push((
                        p.name_any(),
                        p.metadata.uid.clone().unwrap_or_default(),
                        revision.unwrap_or(u64::MAX),
                    ));
                    let note = format!("Created pod: {}", p.name_any());
                    event(ctx, rs, EventType::Normal, "SuccessfulCreate", "Create", note).await;
                }
                Err(e) => {
                    let msg = format!("Error creating: {}", api_message(&e));
                    if failed.is_none() {
                        event(ctx, rs, EventType::Warning, "FailedCreate", "Create", msg.clone()).await;
                        failed = Some(msg);
                    }
                }
            }
        }
        if failed.is_some() {
            return failed;
        }
    }
    None
}

fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// The status the replica set should have given its active owned pods; `failure` is a create
/// or delete error of this reconcile (sets the `ReplicaFailure` condition; cleared otherwise).
pub fn compute_status<P: Borrow<Pod>>(
    rs: &ReplicaSet,
    active: &[P],
    failure: Option<&str>,
    now: k8s_openapi::jiff::Timestamp,
) -> ReplicaSetStatus {
    let spec = rs.spec.as_ref();
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let template_labels = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let count = |f: &dyn Fn(&Pod) -> bool| {
        i32::try_from(active.iter().filter(|p| f((*p).borrow())).count()).unwrap_or(i32::MAX)
    };
    let fully_labeled = count(&|p: &Pod| template_labels.iter().all(|(k, v)| p.labels().get(k) == Some(v)));
    let ready = count(&pods::is_ready);
    let available = count(&|p: &Pod| pods::is_available(p, min_ready, now));
    let previous = rs.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    let mut conditions: Vec<ReplicaSetCondition> =
        previous.iter().filter(|c| c.type_ != "ReplicaFailure").cloned().collect();
    if let Some(msg) = failure {
        let old = previous.iter().find(|c| c.type_ == "ReplicaFailure");
        let reason = if msg.starts_with("Error deleting") { "FailedDelete" } else { "FailedCreate" };
        conditions.push(ReplicaSetCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some(msg.into()),
            last_transition_time: old
                .filter(|c| c.status == "True")
                .and_then(|c| c.last_transition_time.clone())
                .or(Some(Time(now))),
        });
    }
    ReplicaSetStatus {
        replicas: i32::try_from(active.len()).unwrap_or(i32::MAX),
        fully_labeled_replicas: Some(fully_labeled),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        observed_generation: rs.metadata.generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
        terminating_replicas: rs.status.as_ref().and_then(|s| s.terminating_replicas),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use k8s_openapi::jiff::Timestamp;
    use std::collections::BTreeMap;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn rs(min_ready: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("u1".into()),
                generation: Some(3),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(2),
                min_ready_seconds: Some(min_ready),
                selector: LabelSelector { match_labels: Some(labels(&[("app", "web")])), ..Default::default() },
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels(&[("app", "web"), ("tier", "fe")])),
                        ..Default::default()
                    }),
                    spec: None,
                }),
            }),
            status: None,
        }
    }

    fn pod(l: &[(&str, &str)], ready_at: Option<i64>) -> Pod {
        Pod {
            metadata: ObjectMeta { labels: Some(labels(l)), ..Default::default() },
            spec: None,
            status: Some(PodStatus {
                phase: Some("Running".into()),
                conditions: ready_at.map(|t| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(Timestamp::from_second(t).unwrap())),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }

    fn named(name: &str, uid: &str, rv: u64) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(uid.into()),
                resource_version: Some(rv.to_string()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn expectations_wait_for_the_cache_to_show_creations_and_deletions() {
        use crate::informers::{feed, offline};
        use kube::runtime::watcher::Event as W;
        let (inf, mut w) = offline();
        feed(&inf, &mut w, W::Init);
        feed(&inf, &mut w, W::InitApply(named("old", "u-old", 5)));
        feed(&inf, &mut w, W::InitDone);
        let expect = |adds: Vec<(String, String, u64)>, deletes: Vec<(String, String)>| Expectations {
            owner: "rs".into(),
            adds,
            deletes,
            since: Instant::now(),
        };
        let made = || vec![("a".to_string(), "u-a".to_string(), 10), ("b".to_string(), "u-b".to_string(), 11)];

        // Created pods: unmet until each is in the cache, or the cache has passed its revision.
        let e = expect(made(), Vec::new());
        assert!(!e.met(&inf, "ns"));
        feed(&inf, &mut w, W::Apply(named("a", "u-a", 10)));
        assert!(!e.met(&inf, "ns"), "b is not seen yet");
        // b came and went before the cache looked: a later revision stands for it.
        feed(&inf, &mut w, W::Apply(named("c", "u-c", 12)));
        assert!(e.met(&inf, "ns"));
        // Another namespace's pod of the same name is not the one created.
        let e = expect(vec![("z".into(), "u-z".into(), 99)], Vec::new());
        feed(
            &inf,
            &mut w,
            W::Apply(Pod {
                metadata: ObjectMeta { namespace: Some("other".into()), ..named("z", "u-z", 13).metadata },
                ..Default::default()
            }),
        );
        assert!(!e.met(&inf, "ns"));

        // Deleted pods: unmet while the cache shows them live.
        let e = expect(Vec::new(), vec![("old".into(), "u-old".into())]);
        assert!(!e.met(&inf, "ns"));
        let mut terminating = named("old", "u-old", 20);
        terminating.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        feed(&inf, &mut w, W::Apply(terminating.clone()));
        assert!(e.met(&inf, "ns"));
        feed(&inf, &mut w, W::Delete(terminating));
        assert!(e.met(&inf, "ns"));

        // They lapse after upstream's timeout.
        let mut stale = expect(vec![("never".into(), "u-never".into(), 1000)], Vec::new());
        assert!(!stale.met(&inf, "ns"));
        stale.since = Instant::now() - EXPECTATIONS_TIMEOUT;
        assert!(stale.met(&inf, "ns"));
    }

    #[test]
    fn pods_come_from_the_template_with_a_controller_reference() {
        let p = pod_from_template(&rs(0), Kind::ReplicaSet);
        assert_eq!(p.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(p.metadata.labels.as_ref().unwrap().get("tier").map(String::as_str), Some("fe"));
        let o = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (o.kind.as_str(), o.uid.as_str(), o.controller, o.block_owner_deletion),
            ("ReplicaSet", "u1", Some(true), Some(true))
        );
    }

    #[test]
    fn status_counts_labels_readiness_and_availability() {
        let now = Timestamp::from_second(1000).unwrap();
        let pods = vec![
            pod(&[("app", "web"), ("tier", "fe")], Some(995)),
            pod(&[("app", "web"), ("tier", "fe")], Some(900)),
            pod(&[("app", "web")], None),
        ];
        let s = compute_status(&rs(10), &pods, None, now);
        assert_eq!(s.replicas, 3);
        assert_eq!(s.fully_labeled_replicas, Some(2));
        assert_eq!(s.ready_replicas, Some(2));
        assert_eq!(s.available_replicas, Some(1));
        assert_eq!(s.observed_generation, Some(3));
        assert!(s.conditions.is_none());
        let s = compute_status(&rs(0), &pods, Some("Error creating: quota"), now);
        assert_eq!(s.available_replicas, Some(2));
        let c = &s.conditions.as_ref().unwrap()[0];
        assert_eq!((c.type_.as_str(), c.reason.as_deref()), ("ReplicaFailure", Some("FailedCreate")));
        // A later success clears it.
        let mut with = rs(0);
        with.status = Some(s);
        assert!(compute_status(&with, &pods, None, now).conditions.is_none());
    }
}
