//! The namespace controller: empties a namespace being deleted, then lets it go.
//!
//! A namespace deleted through the API gets `deletionTimestamp` and phase `Terminating` and
//! stays while its `spec.finalizers` holds `kubernetes`. For such a namespace this controller,
//! as upstream's namespaced-resources deleter:
//!
//! 1. discovers every namespaced resource that can be listed and deleted;
//! 2. deletes each resource's objects in the namespace (`deletecollection` with background
//!    propagation where the resource has it, else one `delete` per object);
//! 3. lists again and counts what is left, and which finalizers hold it;
//! 4. records the outcome in the namespace's status conditions
//!    (`NamespaceDeletionDiscoveryFailure`, `NamespaceDeletionContentFailure`,
//!    `NamespaceContentRemaining`, `NamespaceFinalizersRemaining`);
//! 5. comes back later while anything is left (objects with finalizers, pods in their grace
//!    period), and once nothing is, removes `kubernetes` from `spec.finalizers` through
//!    `PUT /api/v1/namespaces/<name>/finalize`. The API server removes a deleted namespace whose
//!    finalizers are all gone.

use crate::Shutdown;
use crate::support::{ReconcileError, is_conflict, is_not_found, stopped};
use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope, verbs};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The finalizer in `spec.finalizers` this controller is responsible for.
pub const FINALIZER: &str = "kubernetes";

pub const DISCOVERY_FAILURE: &str = "NamespaceDeletionDiscoveryFailure";
pub const CONTENT_FAILURE: &str = "NamespaceDeletionContentFailure";
pub const CONTENT_REMAINING: &str = "NamespaceContentRemaining";
pub const FINALIZERS_REMAINING: &str = "NamespaceFinalizersRemaining";

/// How soon a namespace with content left is looked at again.
const RECHECK: Duration = Duration::from_secs(2);

/// What one pass over a terminating namespace found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pass {
    /// Discovery failed (nothing else was tried).
    pub discovery_error: Option<String>,
    /// Deletes or lists that failed, one line each.
    pub failures: Vec<String>,
    /// Objects left per resource (`plural` or `plural.group`).
    pub remaining: BTreeMap<String, usize>,
    /// Objects left per finalizer they carry.
    pub finalizers: BTreeMap<String, usize>,
}

impl Pass {
    /// Whether the namespace is empty and nothing went wrong: it may be finalized.
    pub fn done(&self) -> bool {
        self.discovery_error.is_none() && self.failures.is_empty() && self.remaining.is_empty()
    }

    /// The deletion conditions this pass leads to: (type, status, reason, message).
    pub fn conditions(&self) -> Vec<(&'static str, &'static str, &'static str, String)> {
        let summary = |m: &BTreeMap<String, usize>, what: &str| {
            let parts: Vec<String> = m.iter().map(|(k, n)| format!("{k} ({n} {what})")).collect();
            parts.join(", ")
        };
        let mut out = Vec::new();
        out.push(match &self.discovery_error {
            Some(e) => (DISCOVERY_FAILURE, "True", "DiscoveryFailed", format!("Discovery failed: {e}")),
            None => (DISCOVERY_FAILURE, "False", "ResourcesDiscovered", "All resources successfully discovered".into()),
        });
        out.push(if self.failures.is_empty() {
            (
                CONTENT_FAILURE,
                "False",
                "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization".into(),
            )
        } else {
            (
                CONTENT_FAILURE,
                "True",
                "ContentDeletionFailed",
                format!("Failed to delete all content: {}", self.failures.join("; ")),
            )
        });
        out.push(if self.remaining.is_empty() {
            (CONTENT_REMAINING, "False", "ContentRemoved", "All content successfully removed".into())
        } else {
            (
                CONTENT_REMAINING,
                "True",
                "SomeResourcesRemain",
                format!("Resources left: {}", summary(&self.remaining, "objects")),
            )
        });
        out.push(if self.finalizers.is_empty() {
            (
                FINALIZERS_REMAINING,
                "False",
                "ContentHasNoFinalizers",
                "All content-preserving finalizers finished".into(),
            )
        } else {
            (
                FINALIZERS_REMAINING,
                "True",
                "SomeFinalizersRemain",
                format!("Content held by finalizers: {}", summary(&self.finalizers, "objects")),
            )
        });
        out
    }
}

/// The namespace's conditions with this pass's deletion conditions merged in: conditions of
/// other types are kept, and a condition whose status does not change keeps its transition
/// time.
pub fn merged_conditions(existing: &[NamespaceCondition], pass: &Pass, now: &Time) -> Vec<NamespaceCondition> {
    let ours = pass.conditions();
    let mut out: Vec<NamespaceCondition> =
        existing.iter().filter(|c| !ours.iter().any(|(t, ..)| *t == c.type_)).cloned().collect();
    for (type_, status, reason, message) in ours {
        let previous = existing.iter().find(|c| c.type_ == type_);
        let since = match previous {
            Some(p) if p.status == status => p.last_transition_time.clone().unwrap_or_else(|| now.clone()),
            _ => now.clone(),
        };
        out.push(NamespaceCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message),
            last_transition_time: Some(since),
        });
    }
    out
}

/// Whether two condition lists say the same, ignoring transition times.
fn same_conditions(a: &[NamespaceCondition], b: &[NamespaceCondition]) -> bool {
    let key = |c: &NamespaceCondition| (c.type_.clone(), c.status.clone(), c.reason.clone(), c.message.clone());
    let mut x: Vec<_> = a.iter().map(key).collect();
    let mut y: Vec<_> = b.iter().map(key).collect();
    x.sort();
    y.sort();
    x == y
}

/// The name a resource goes by in messages: `plural` in the core group, else `plural.group`.
fn resource_name(ar: &ApiResource) -> String {
    if ar.group.is_empty() { ar.plural.clone() } else { format!("{}.{}", ar.plural, ar.group) }
}

/// Whether the namespace deleter handles this resource: namespaced, listable and deletable.
pub fn deletable(caps: &ApiCapabilities) -> bool {
    caps.scope == Scope::Namespaced
        && caps.supports_operation(verbs::LIST)
        && (caps.supports_operation(verbs::DELETE_COLLECTION) || caps.supports_operation(verbs::DELETE))
}

/// Discovery, aggregated where the server offers it.
pub(crate) async fn discover(client: &Client) -> anyhow::Result<Discovery> {
    match Discovery::new(client.clone()).run_aggregated().await {
        Ok(d) => Ok(d),
        Err(e) => {
            tracing::debug!("aggregated discovery failed ({e}); using the per-group documents");
            Discovery::new(client.clone()).run().await.context("discovery failed")
        }
    }
}

/// Deletes what one resource has in `namespace` and counts what is left.
async fn empty_resource(client: &Client, namespace: &str, ar: &ApiResource, caps: &ApiCapabilities, pass: &mut Pass) {
    let label = resource_name(ar);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, ar);
    let background = DeleteParams::background();
    let mut one_by_one = !caps.supports_operation(verbs::DELETE_COLLECTION);
    if !one_by_one {
        match api.delete_collection(&background, &ListParams::default()).await {
            Ok(_) => {}
            Err(e) if matches!(crate::support::api_status(&e), Some(404 | 405)) => one_by_one = true,
            Err(e) => pass.failures.push(format!("{label}: {e}")),
        }
    }
    let left = match api.list_metadata(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(e) => {
            pass.failures.push(format!("{label}: {e}"));
            return;
        }
    };
    let mut count = 0;
    for obj in left {
        if one_by_one && obj.metadata.deletion_timestamp.is_none() {
            match api.delete(&obj.name_any(), &background).await {
                Ok(either) if either.is_right() => continue, // removed at once
                Ok(_) => {}
                Err(e) if is_not_found(&e) => continue,
                Err(e) => pass.failures.push(format!("{label} {}: {e}", obj.name_any())),
            }
        }
        count += 1;
        for f in obj.metadata.finalizers.iter().flatten() {
            *pass.finalizers.entry(f.clone()).or_default() += 1;
        }
    }
    if count > 0 {
        pass.remaining.insert(label, count);
    }
}

/// One pass over a terminating namespace: delete everything, count what is left.
async fn delete_content(client: &Client, namespace: &str) -> Pass {
    let mut pass = Pass::default();
    let discovery = match discover(client).await {
        Ok(d) => d,
        Err(e) => {
            pass.discovery_error = Some(format!("{e:#}"));
            return pass;
        }
    };
    let resources: Vec<(ApiResource, ApiCapabilities)> =
        discovery.groups().flat_map(|g| g.recommended_resources()).filter(|(_, caps)| deletable(caps)).collect();
    for (ar, caps) in &resources {
        empty_resource(client, namespace, ar, caps, &mut pass).await;
    }
    pass
}

struct Ctx {
    client: Client,
}

fn is_terminating_with_our_finalizer(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_some()
        && ns.spec.as_ref().and_then(|s| s.finalizers.as_ref()).is_some_and(|f| f.iter().any(|x| x == FINALIZER))
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    if !is_terminating_with_our_finalizer(&ns) {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let pass = delete_content(&ctx.client, &name).await;

    // Record the outcome on the newest copy of the namespace.
    let Some(current) = api.get_opt(&name).await? else { return Ok(Action::await_change()) };
    let existing = current.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let conditions = merged_conditions(&existing, &pass, &now);
    if !same_conditions(&existing, &conditions) {
        let patch = json!({"status": {"conditions": conditions}});
        match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    if !pass.done() {
        tracing::debug!(namespace = %name, ?pass, "namespace not empty yet");
        return Ok(Action::requeue(RECHECK));
    }

    // Empty: give up our finalizer. The update carries the resourceVersion read, so a
    // concurrent change makes it a conflict and the next pass starts over.
    let Some(mut current) = api.get_opt(&name).await? else { return Ok(Action::await_change()) };
    if !is_terminating_with_our_finalizer(&current) {
        return Ok(Action::await_change());
    }
    if let Some(f) = current.spec.as_mut().and_then(|s| s.finalizers.as_mut()) {
        f.retain(|x| x != FINALIZER);
    }
    match api.replace_subresource("finalize", &name, &PostParams::default(), &current).await {
        Ok(_) => tracing::debug!(namespace = %name, "namespace emptied and finalized"),
        Err(e) if is_not_found(&e) => {}
        Err(e) if is_conflict(&e) => return Ok(Action::requeue(Duration::from_millis(100))),
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}

fn error_policy(ns: Arc<Namespace>, e: &ReconcileError, _: Arc<Ctx>) -> Action {
    tracing::warn!(namespace = %ns.name_any(), "namespace controller: {e}");
    Action::requeue(RECHECK)
}

/// Runs the controller until `shutdown` turns true.
pub async fn run(client: Client, shutdown: Shutdown) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    Controller::new(namespaces, watcher::Config::default())
        .graceful_shutdown_on(stopped(shutdown))
        .run(reconcile, error_policy, Arc::new(Ctx { client }))
        .for_each(|_| async {})
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of<'a>(c: &'a [NamespaceCondition], t: &str) -> &'a str {
        &c.iter().find(|c| c.type_ == t).unwrap().status
    }

    #[test]
    fn conditions_follow_what_is_left() {
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let mut pass = Pass::default();
        pass.remaining.insert("pods".into(), 2);
        pass.finalizers.insert("example.com/hold".into(), 1);
        assert!(!pass.done());
        let other = NamespaceCondition { type_: "Other".into(), status: "True".into(), ..Default::default() };
        let c = merged_conditions(std::slice::from_ref(&other), &pass, &now);
        assert_eq!(c.len(), 5);
        assert_eq!(status_of(&c, "Other"), "True");
        assert_eq!(status_of(&c, CONTENT_REMAINING), "True");
        assert_eq!(status_of(&c, FINALIZERS_REMAINING), "True");
        assert_eq!(status_of(&c, CONTENT_FAILURE), "False");
        assert_eq!(status_of(&c, DISCOVERY_FAILURE), "False");
        let msg = c.iter().find(|c| c.type_ == CONTENT_REMAINING).unwrap().message.clone().unwrap();
        assert!(msg.contains("pods (2 objects)"), "{msg}");

        // Same outcome later: same conditions, transition times kept.
        let later = Time(now.0 + k8s_openapi::jiff::SignedDuration::from_secs(5));
        let again = merged_conditions(&c, &pass, &later);
        assert!(same_conditions(&c, &again));
        assert_eq!(again, c);

        // Emptied: the remaining conditions turn False, with a new transition time.
        let empty = Pass::default();
        assert!(empty.done());
        let done = merged_conditions(&c, &empty, &later);
        assert_eq!(status_of(&done, CONTENT_REMAINING), "False");
        let t = done.iter().find(|c| c.type_ == CONTENT_REMAINING).unwrap().last_transition_time.clone();
        assert_eq!(t, Some(later));
        assert!(!same_conditions(&c, &done));
    }

    #[test]
    fn failures_block_finalizing() {
        let pass = Pass { failures: vec!["pods: boom".into()], ..Default::default() };
        assert!(!pass.done());
        let c = pass.conditions();
        assert!(c.iter().any(|(t, s, ..)| *t == CONTENT_FAILURE && *s == "True"));
        let d = Pass { discovery_error: Some("down".into()), ..Default::default() };
        assert!(!d.done());
    }
}
