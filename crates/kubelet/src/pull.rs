//! Registry credentials for image pulls from a pod's `imagePullSecrets`
//! (`kubernetes.io/dockerconfigjson` and the older `kubernetes.io/dockercfg`).

use crate::cri::types::AuthConfig;
use base64::Engine;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Client;
use kube::api::Api;
use serde_json::Value;

/// The registry host an image reference pulls from (`docker.io` for short names).
pub fn registry_host(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => first.to_string(),
        _ => "docker.io".to_string(),
    }
}

/// The host a docker config key names: `https://index.docker.io/v1/` → `docker.io`,
/// `registry.example:5000/path` → `registry.example:5000`.
fn key_host(key: &str) -> String {
    let k = key.trim_start_matches("https://").trim_start_matches("http://");
    let host = k.split('/').next().unwrap_or("");
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        h => h.to_string(),
    }
}

/// Credentials for `host` in a docker config's `auths` map.
pub fn credentials(auths: &Value, host: &str) -> Option<AuthConfig> {
    let map = auths.as_object()?;
    let (_, entry) = map.iter().find(|(k, _)| key_host(k) == host)?;
    let mut username = entry.get("username").and_then(Value::as_str).unwrap_or("").to_string();
    let mut password = entry.get("password").and_then(Value::as_str).unwrap_or("").to_string();
    let auth = entry.get("auth").and_then(Value::as_str).unwrap_or("").to_string();
    if username.is_empty()
        && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(&auth)
        && let Some((u, p)) = String::from_utf8_lossy(&decoded).split_once(':')
    {
        username = u.to_string();
        password = p.to_string();
    }
    Some(AuthConfig { username, password, auth, server_address: host.to_string(), ..Default::default() })
}

/// Credentials for pulling `image` from the pod's pull secrets, if any matches.
pub async fn auth_for(client: &Client, pod: &Pod, image: &str) -> Option<AuthConfig> {
    let secrets = pod.spec.as_ref()?.image_pull_secrets.clone()?;
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let host = registry_host(image);
    let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    for reference in secrets {
        let Ok(Some(secret)) = api.get_opt(&reference.name).await else { continue };
        let data = secret.data.unwrap_or_default();
        let config = if let Some(raw) = data.get(".dockerconfigjson") {
            serde_json::from_slice::<Value>(&raw.0).ok().and_then(|v| v.get("auths").cloned())
        } else if let Some(raw) = data.get(".dockercfg") {
            serde_json::from_slice::<Value>(&raw.0).ok()
        } else {
            None
        };
        if let Some(found) = config.as_ref().and_then(|auths| credentials(auths, &host)) {
            return Some(found);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hosts_of_image_references() {
        assert_eq!(registry_host("busybox:latest"), "docker.io");
        assert_eq!(registry_host("library/busybox"), "docker.io");
        assert_eq!(registry_host("127.0.0.1:5000/app:1"), "127.0.0.1:5000");
        assert_eq!(registry_host("registry.example/a/b"), "registry.example");
        assert_eq!(registry_host("localhost/app"), "localhost");
    }

    #[test]
    fn credentials_from_auth_or_fields() {
        let auths = json!({
            "https://index.docker.io/v1/": {"auth": "dXNlcjpwYXNz"},
            "127.0.0.1:5000": {"username": "a", "password": "b"}
        });
        let d = credentials(&auths, "docker.io").unwrap();
        assert_eq!((d.username.as_str(), d.password.as_str()), ("user", "pass"));
        let l = credentials(&auths, "127.0.0.1:5000").unwrap();
        assert_eq!((l.username.as_str(), l.password.as_str()), ("a", "b"));
        assert!(credentials(&auths, "other.example").is_none());
    }
}
