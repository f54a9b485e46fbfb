//! The root CA publisher: every namespace has a ConfigMap `kube-root-ca.crt` whose `ca.crt` is
//! the cluster CA certificate (PEM), so pods can verify the API server. An edited ConfigMap is
//! put back, a deleted one made again.
//!
//! As upstream's publisher: one reconcile per namespace, triggered by namespace events and by
//! events on any ConfigMap of that name; namespaces being deleted are skipped (the API server
//! refuses new content there anyway).

use crate::Shutdown;
use crate::support::{ReconcileError, is_already_exists, is_namespace_gone, stopped};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The ConfigMap's name.
pub const CONFIGMAP_NAME: &str = "kube-root-ca.crt";
/// The key holding the certificate.
pub const CA_KEY: &str = "ca.crt";
/// The annotation upstream puts on the ConfigMap, and its value.
pub const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
pub const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal \
                               endpoints such as the internal service IP or kubernetes.default.svc. No other usage is \
                               guaranteed across distributions of Kubernetes clusters.";

/// The data the ConfigMap must hold.
fn wanted_data(ca_pem: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(CA_KEY.to_string(), ca_pem.to_string())])
}

/// Whether `cm` already says what it should: exactly the CA under `ca.crt`, nothing binary, and
/// the description annotation.
pub fn is_current(cm: &ConfigMap, ca_pem: &str) -> bool {
    let data_ok = cm.data.as_ref().is_some_and(|d| *d == wanted_data(ca_pem));
    let binary_ok = cm.binary_data.as_ref().is_none_or(BTreeMap::is_empty);
    let note_ok = cm.annotations().get(DESCRIPTION_ANNOTATION).is_some_and(|v| v == DESCRIPTION);
    data_ok && binary_ok && note_ok
}

/// `cm` brought back to what it should say, keeping its other metadata.
pub fn corrected(mut cm: ConfigMap, ca_pem: &str) -> ConfigMap {
    cm.data = Some(wanted_data(ca_pem));
    cm.binary_data = None;
    cm.annotations_mut().insert(DESCRIPTION_ANNOTATION.into(), DESCRIPTION.into());
    cm
}

fn wants_configmap(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_none()
        && ns.status.as_ref().and_then(|s| s.phase.as_deref()).is_none_or(|p| p != "Terminating")
}

struct Ctx {
    client: Client,
    ca_pem: String,
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    if !wants_configmap(&ns) {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &name);
    match api.get_opt(CONFIGMAP_NAME).await? {
        None => {
            let cm = corrected(
                ConfigMap {
                    metadata: ObjectMeta { name: Some(CONFIGMAP_NAME.into()), ..Default::default() },
                    ..Default::default()
                },
                &ctx.ca_pem,
            );
            match api.create(&PostParams::default(), &cm).await {
                Ok(_) => tracing::debug!(namespace = %name, "published the root CA"),
                // Made meanwhile: its event brings us back if it is wrong.
                Err(e) if is_already_exists(&e) || is_namespace_gone(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Some(cm) if is_current(&cm, &ctx.ca_pem) => {}
        Some(cm) => {
            // The update carries the resourceVersion read: a concurrent change is a conflict,
            // retried by the error policy.
            match api.replace(CONFIGMAP_NAME, &PostParams::default(), &corrected(cm, &ctx.ca_pem)).await {
                Ok(_) => tracing::debug!(namespace = %name, "restored the root CA ConfigMap"),
                Err(e) if crate::support::is_not_found(&e) => return Ok(Action::requeue(Duration::ZERO)),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(Action::await_change())
}

fn error_policy(ns: Arc<Namespace>, e: &ReconcileError, _: Arc<Ctx>) -> Action {
    tracing::warn!(namespace = %ns.name_any(), "root CA publisher: {e}");
    Action::requeue(Duration::from_millis(500))
}

/// Runs the publisher until `shutdown` turns true. `ca_pem` is the cluster CA certificate; without
/// it there is nothing to publish and the publisher does not run.
pub async fn run(client: Client, ca_pem: Option<String>, shutdown: Shutdown) -> anyhow::Result<()> {
    let Some(ca_pem) = ca_pem.filter(|p| !p.trim().is_empty()) else {
        tracing::warn!("root CA publisher: no cluster CA certificate given; kube-root-ca.crt is not published");
        return Ok(());
    };
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let configmaps: Api<ConfigMap> = Api::all(client.clone());
    let only_ours = watcher::Config::default().fields(&format!("metadata.name={CONFIGMAP_NAME}"));
    Controller::new(namespaces, watcher::Config::default())
        .watches(configmaps, only_ours, |cm: ConfigMap| {
            let ns = cm.namespace().filter(|_| cm.metadata.name.as_deref() == Some(CONFIGMAP_NAME));
            ns.map(|ns| ObjectRef::<Namespace>::new(&ns))
        })
        .graceful_shutdown_on(stopped(shutdown))
        .run(reconcile, error_policy, Arc::new(Ctx { client, ca_pem }))
        .for_each(|_| async {})
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn edits_are_detected_and_undone() {
        let fresh = corrected(ConfigMap::default(), PEM);
        assert!(is_current(&fresh, PEM));
        let mut edited = fresh.clone();
        edited.data.as_mut().unwrap().insert("extra".into(), "x".into());
        assert!(!is_current(&edited, PEM));
        let mut edited_ca = fresh.clone();
        edited_ca.data.as_mut().unwrap().insert(CA_KEY.into(), "not a CA".into());
        assert!(!is_current(&edited_ca, PEM));
        let mut no_note = fresh.clone();
        no_note.metadata.annotations = None;
        assert!(!is_current(&no_note, PEM));
        let mut with_labels = edited;
        with_labels.labels_mut().insert("keep".into(), "me".into());
        let fixed = corrected(with_labels, PEM);
        assert!(is_current(&fixed, PEM));
        assert_eq!(fixed.labels().get("keep").map(String::as_str), Some("me"));
    }
}
