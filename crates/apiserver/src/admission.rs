//! Mutating admission on create, as upstream's `ServiceAccount` plugin does for pods: the pod
//! runs as `spec.serviceAccountName` (`default` when unset) and, unless the pod or its
//! ServiceAccount turns `automountServiceAccountToken` off, gets a projected volume
//! `kube-api-access-<suffix>` (a bound token that expires after 3607 s, the cluster CA from the
//! `kube-root-ca.crt` ConfigMap and the namespace) mounted read-only at
//! `/var/run/secrets/kubernetes.io/serviceaccount` in every container, so in-cluster clients
//! find their credentials where client libraries look.
//!
//! Unlike upstream, a missing ServiceAccount is not refused: the `default` one is made by the
//! controller manager, which a server may run without.

use crate::server::ApiServer;
use rand::Rng;
use serde_json::{Value, json};

/// Where in-cluster clients read the token, CA and namespace.
pub const SERVICE_ACCOUNT_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Upstream's lifetime of the token in the injected volume (an hour and seven seconds).
const TOKEN_SECONDS: i64 = 3607;

/// Applies the ServiceAccount admission to a pod being created in `namespace`.
pub async fn pod_service_account(srv: &ApiServer, namespace: &str, pod: &mut Value) {
    let Some(spec) = pod.get("spec").and_then(Value::as_object) else { return };
    let name = ["serviceAccountName", "serviceAccount"]
        .iter()
        .find_map(|k| spec.get(*k).and_then(Value::as_str).filter(|s| !s.is_empty()))
        .unwrap_or("default")
        .to_string();
    let account_automount = match srv.store.get(&format!("/registry/serviceaccounts/{namespace}/{name}")).await {
        Ok(Some(kv)) => serde_json::from_slice::<Value>(&kv.value)
            .ok()
            .and_then(|sa| sa.get("automountServiceAccountToken").and_then(Value::as_bool)),
        _ => None,
    };
    let suffix: String = {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut rng = rand::rng();
        (0..5).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
    };
    mutate(pod, &name, account_automount, &suffix);
}

/// The mutation itself: the account name, and the token volume and mounts when automounting.
pub fn mutate(pod: &mut Value, account: &str, account_automount: Option<bool>, suffix: &str) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else { return };
    spec.insert("serviceAccountName".into(), json!(account));
    let automount = spec.get("automountServiceAccountToken").and_then(Value::as_bool).or(account_automount);
    if automount == Some(false) {
        return;
    }
    let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
    let Some(volumes) = volumes.as_array_mut() else { return };
    let existing = volumes.iter().find_map(|v| {
        let name = v.get("name").and_then(Value::as_str)?;
        name.starts_with("kube-api-access-").then(|| name.to_string())
    });
    let volume = match existing {
        Some(name) => name,
        None => {
            let name = format!("kube-api-access-{suffix}");
            volumes.push(json!({
                "name": name,
                "projected": {
                    "defaultMode": 420,
                    "sources": [
                        { "serviceAccountToken": { "expirationSeconds": TOKEN_SECONDS, "path": "token" } },
                        { "configMap": { "name": "kube-root-ca.crt", "items": [{ "key": "ca.crt", "path": "ca.crt" }] } },
                        { "downwardAPI": { "items": [
                            { "path": "namespace", "fieldRef": { "apiVersion": "v1", "fieldPath": "metadata.namespace" } }
                        ] } },
                    ],
                },
            }));
            name
        }
    };
    for list in ["initContainers", "containers"] {
        for c in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            let Some(c) = c.as_object_mut() else { continue };
            let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
            let Some(mounts) = mounts.as_array_mut() else { continue };
            if mounts.iter().any(|m| m.get("mountPath").and_then(Value::as_str) == Some(SERVICE_ACCOUNT_MOUNT)) {
                continue;
            }
            mounts.push(json!({ "name": volume, "readOnly": true, "mountPath": SERVICE_ACCOUNT_MOUNT }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Value {
        json!({"metadata": {"name": "p"}, "spec": {
            "initContainers": [{"name": "i", "image": "x"}],
            "containers": [
                {"name": "a", "image": "x"},
                {"name": "b", "image": "x", "volumeMounts": [{"name": "own", "mountPath": SERVICE_ACCOUNT_MOUNT}]},
            ],
        }})
    }

    #[test]
    fn the_token_volume_is_mounted_in_every_container() {
        let mut p = pod();
        mutate(&mut p, "default", None, "abcde");
        let spec = &p["spec"];
        assert_eq!(spec["serviceAccountName"], "default");
        let volume = &spec["volumes"][0];
        assert_eq!(volume["name"], "kube-api-access-abcde");
        assert_eq!(volume["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"], 3607);
        assert_eq!(volume["projected"]["sources"][1]["configMap"]["name"], "kube-root-ca.crt");
        let mount = json!({"name": "kube-api-access-abcde", "readOnly": true, "mountPath": SERVICE_ACCOUNT_MOUNT});
        assert_eq!(spec["initContainers"][0]["volumeMounts"], json!([mount]));
        assert_eq!(spec["containers"][0]["volumeMounts"], json!([mount]));
        assert_eq!(spec["containers"][1]["volumeMounts"].as_array().unwrap().len(), 1, "its own mount stays");
        // Admitting again changes nothing.
        let before = p.clone();
        mutate(&mut p, "default", None, "zzzzz");
        assert_eq!(p, before);
    }

    #[test]
    fn automount_off_on_the_pod_or_the_account() {
        let mut p = pod();
        p["spec"]["automountServiceAccountToken"] = json!(false);
        p["spec"]["serviceAccountName"] = json!("robot");
        mutate(&mut p, "robot", Some(true), "abcde");
        assert!(p["spec"].get("volumes").is_none());
        assert_eq!(p["spec"]["serviceAccountName"], "robot");

        let mut p = pod();
        mutate(&mut p, "default", Some(false), "abcde");
        assert!(p["spec"].get("volumes").is_none());
        // The pod's own setting wins over the account's.
        let mut p = pod();
        p["spec"]["automountServiceAccountToken"] = json!(true);
        mutate(&mut p, "default", Some(false), "abcde");
        assert_eq!(p["spec"]["volumes"].as_array().unwrap().len(), 1);
    }
}
