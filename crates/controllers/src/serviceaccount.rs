//! The service account controller: every namespace that is not being deleted has a
//! ServiceAccount named `default`, made again when it is deleted.
//!
//! As upstream's: one reconcile per namespace, triggered by namespace events and by events on
//! any `default` ServiceAccount; a namespace that is terminating (or gone) is left alone.

use crate::Shutdown;
use crate::support::{ReconcileError, is_already_exists, is_namespace_gone, stopped};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

/// The name of the service account every namespace gets.
pub const DEFAULT_NAME: &str = "default";

/// Whether the controller should make sure `ns` has its service accounts.
pub fn wants_accounts(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_none()
        && ns.status.as_ref().and_then(|s| s.phase.as_deref()).is_none_or(|p| p != "Terminating")
}

struct Ctx {
    client: Client,
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    if !wants_accounts(&ns) {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &name);
    if api.get_opt(DEFAULT_NAME).await?.is_some() {
        return Ok(Action::await_change());
    }
    let sa = ServiceAccount {
        metadata: ObjectMeta { name: Some(DEFAULT_NAME.into()), ..Default::default() },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &sa).await {
        Ok(_) => tracing::debug!(namespace = %name, "created the default service account"),
        Err(e) if is_already_exists(&e) || is_namespace_gone(&e) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}

fn error_policy(ns: Arc<Namespace>, e: &ReconcileError, _: Arc<Ctx>) -> Action {
    tracing::warn!(namespace = %ns.name_any(), "service account controller: {e}");
    Action::requeue(Duration::from_secs(1))
}

/// Runs the controller until `shutdown` turns true.
pub async fn run(client: Client, shutdown: Shutdown) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let accounts: Api<ServiceAccount> = Api::all(client.clone());
    Controller::new(namespaces, watcher::Config::default())
        .watches(accounts, watcher::Config::default(), |sa: ServiceAccount| {
            let ns = sa.namespace().filter(|_| sa.metadata.name.as_deref() == Some(DEFAULT_NAME));
            ns.map(|ns| ObjectRef::<Namespace>::new(&ns))
        })
        .graceful_shutdown_on(stopped(shutdown))
        .run(reconcile, error_policy, Arc::new(Ctx { client }))
        .for_each(|_| async {})
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    #[test]
    fn terminating_namespaces_get_no_accounts() {
        let mut ns = Namespace::default();
        assert!(wants_accounts(&ns));
        ns.status = Some(NamespaceStatus { phase: Some("Terminating".into()), ..Default::default() });
        assert!(!wants_accounts(&ns));
        ns.status = None;
        ns.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        assert!(!wants_accounts(&ns));
    }
}
