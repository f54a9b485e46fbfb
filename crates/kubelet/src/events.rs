//! Events the kubelet records about pods (`Pulled`, `Created`, `Started`, `Killing`, `BackOff`,
//! `Unhealthy`, ...), written as core/v1 Events with the kubelet as source. Fire and forget: a
//! failed event write is logged, never retried, and never blocks a pod.

use chrono::Utc;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;

/// Writes events for one node's kubelet.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    node: String,
}

impl Recorder {
    /// A recorder reporting as the kubelet of `node`.
    pub fn new(client: Client, node: String) -> Recorder {
        Recorder { client, node }
    }

    /// Records a `Normal` event about `pod`; `field_path` names a container
    /// (`spec.containers{name}`) when the event is about one.
    pub fn normal(&self, pod: &Pod, field_path: Option<String>, reason: &str, message: String) {
        self.record(pod, field_path, "Normal", reason, message);
    }

    /// Records a `Warning` event about `pod`.
    pub fn warning(&self, pod: &Pod, field_path: Option<String>, reason: &str, message: String) {
        self.record(pod, field_path, "Warning", reason, message);
    }

    fn record(&self, pod: &Pod, field_path: Option<String>, kind: &str, reason: &str, message: String) {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let now = Utc::now();
        let stamp = now.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let mut involved = json!({
            "apiVersion": "v1", "kind": "Pod", "name": name, "namespace": namespace,
            "uid": pod.metadata.uid, "resourceVersion": pod.metadata.resource_version,
        });
        if let Some(path) = field_path {
            involved["fieldPath"] = json!(path);
        }
        let event = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": format!("{name}.{:x}", now.timestamp_nanos_opt().unwrap_or_default()),
                "namespace": namespace,
            },
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": kind,
            "source": { "component": "kubelet", "host": self.node },
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "reportingComponent": "kubelet",
            "reportingInstance": self.node,
        });
        let Ok(event) = serde_json::from_value::<Event>(event) else { return };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        tokio::spawn(async move {
            if let Err(e) = api.create(&PostParams::default(), &event).await {
                tracing::debug!("event not recorded: {e}");
            }
        });
    }
}

/// The field path of a container in events: `spec.containers{name}` or
/// `spec.initContainers{name}`.
pub fn container_path(init: bool, name: &str) -> Option<String> {
    Some(if init { format!("spec.initContainers{{{name}}}") } else { format!("spec.containers{{{name}}}") })
}
