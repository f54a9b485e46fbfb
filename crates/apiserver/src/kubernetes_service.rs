//! The `kubernetes` Service in `default`: how pods reach the API server.
//!
//! As upstream's controlplane reconcilers do, the API server makes sure at start (and every
//! [`REPAIR_PERIOD`] after) that
//!
//! - Service `default/kubernetes` exists with cluster IP [`services::first_service_ip`]
//!   (`10.43.0.1`, reserved through the service allocations so no other Service gets it), no
//!   selector, labels `component: apiserver` and `provider: kubernetes`, and port `https` 443
//!   → the API server's port;
//! - Endpoints `default/kubernetes` list the advertise address with that port (labelled
//!   `endpointslice.kubernetes.io/skip-mirror: "true"`, so the mirroring controller leaves it
//!   alone);
//! - EndpointSlice `default/kubernetes` (label `kubernetes.io/service-name: kubernetes`, no
//!   managed-by label, as upstream's endpoints adapter writes it) says the same.
//!
//! Writes go through the ordinary create and update paths (allocation, defaulting,
//! validation), and only happen when something differs.

use crate::handlers::{create, update};
use crate::request::{ResourceRequest, Verb};
use crate::server::ApiServer;
use crate::services;
use crate::status::{ApiError, ApiResult};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::time::Duration;

/// The namespace and name of the Service, its Endpoints and its EndpointSlice.
pub const NAMESPACE: &str = "default";
/// See [`NAMESPACE`].
pub const NAME: &str = "kubernetes";
/// How often the objects are checked again.
pub const REPAIR_PERIOD: Duration = Duration::from_secs(10);

/// Where the API server is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The advertise address.
    pub ip: IpAddr,
    /// The HTTPS port.
    pub port: u16,
}

fn request(group: &str, version: &str, plural: &str) -> ApiResult<ResourceRequest> {
    let resource = rudder_api::catalog::lookup(group, version, plural)
        .ok_or_else(|| ApiError::internal(format!("{plural} is not in the catalog")))?;
    Ok(ResourceRequest {
        verb: Verb::Update,
        resource,
        namespace: Some(NAMESPACE.to_string()),
        name: Some(NAME.to_string()),
        subresource: None,
    })
}

/// The Service as the API server wants it.
pub fn desired_service(ep: Endpoint) -> Value {
    let ip = services::first_service_ip().to_string();
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
            "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": ip,
            "clusterIPs": [ip],
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "sessionAffinity": "None",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": ep.port}],
        },
    })
}

/// The Endpoints as the API server wants them.
pub fn desired_endpoints(ep: Endpoint) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{
            "addresses": [{"ip": ep.ip.to_string()}],
            "ports": [{"name": "https", "port": ep.port, "protocol": "TCP"}],
        }],
    })
}

/// The EndpointSlice as the API server wants it.
pub fn desired_slice(ep: Endpoint) -> Value {
    let family = if ep.ip.is_ipv6() { "IPv6" } else { "IPv4" };
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
            "labels": {"kubernetes.io/service-name": NAME}},
        "addressType": family,
        "endpoints": [{"addresses": [ep.ip.to_string()], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": ep.port, "protocol": "TCP"}],
    })
}

/// What of the Service must match: the ports (the cluster IP cannot change).
fn service_needs_update(current: &Value, desired: &Value) -> bool {
    let ports = |v: &Value| {
        v.pointer("/spec/ports")
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .map(|p| (p.get("name").cloned(), p.get("port").cloned(), p.get("targetPort").cloned()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    ports(current) != ports(desired) || current.pointer("/spec/selector").is_some_and(|s| !s.is_null())
}

/// Whether `current` holds every field of `desired` (metadata: the labels only).
fn contains(current: &Value, desired: &Value) -> bool {
    match (current, desired) {
        (Value::Object(c), Value::Object(d)) => d.iter().all(|(k, dv)| {
            if k == "metadata" {
                return c
                    .get(k)
                    .and_then(|m| m.get("labels"))
                    .zip(dv.get("labels"))
                    .is_some_and(|(cl, dl)| contains(cl, dl));
            }
            c.get(k).is_some_and(|cv| contains(cv, dv))
        }),
        (Value::Array(c), Value::Array(d)) => c.len() == d.len() && c.iter().zip(d).all(|(cv, dv)| contains(cv, dv)),
        _ => current == desired,
    }
}

/// Creates `desired`, or replaces the object's content with it when `stale` says so.
async fn ensure(
    srv: &ApiServer,
    req: &ResourceRequest,
    desired: Value,
    stale: fn(&Value, &Value) -> bool,
) -> ApiResult<()> {
    let key = crate::object::key(req.resource, Some(NAMESPACE), NAME);
    let current = match srv.store.get(&key).await {
        Ok(Some(kv)) => Some(crate::object::from_storage(req.resource, crate::object::from_kv(&kv)?)?),
        Ok(None) => None,
        Err(e) => return Err(ApiError::internal(format!("cannot read {key}: {e}"))),
    };
    match current {
        None => match create::create_object(srv, req, desired, false).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == 409 => Ok(()),
            Err(e) => Err(e),
        },
        Some(current) if stale(&current, &desired) => {
            update::update_object(srv, req, false, |old| {
                let mut new = old.clone();
                let labels = desired.pointer("/metadata/labels").cloned().unwrap_or_else(|| json!({}));
                let meta = crate::object::meta_mut(&mut new);
                let mut merged = meta.get("labels").cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
                for (k, v) in labels.as_object().into_iter().flatten() {
                    merged[k] = v.clone();
                }
                meta.insert("labels".into(), merged);
                for (k, v) in desired.as_object().into_iter().flatten() {
                    if k == "spec" {
                        // The Service: ports and no selector; what the server allocated stays.
                        new["spec"]["ports"] = v["ports"].clone();
                        if let Some(spec) = new["spec"].as_object_mut() {
                            spec.remove("selector");
                        }
                    } else if !matches!(k.as_str(), "metadata" | "apiVersion" | "kind") {
                        new[k] = v.clone();
                    }
                }
                Ok(new)
            })
            .await
            .map(|_| ())
        }
        Some(_) => Ok(()),
    }
}

/// Makes sure the Service, its Endpoints and its EndpointSlice exist and point at `ep`.
pub async fn reconcile(srv: &ApiServer, ep: Endpoint) -> ApiResult<()> {
    let svc_key = crate::object::key(request("", "v1", "services")?.resource, Some(NAMESPACE), NAME);
    if matches!(srv.store.get(&svc_key).await, Ok(None)) {
        // A reservation this service left behind (a crash between reserving and storing) is
        // taken back; one held by another service is not, and the create reports it.
        let ip_key = services::ip_key(services::first_service_ip());
        if let Ok(Some(kv)) = srv.store.get(&ip_key).await
            && kv.value.as_ref() == format!("{NAMESPACE}/{NAME}").as_bytes()
        {
            let _ = srv.store.delete(&ip_key, Some(kv.mod_revision)).await;
        }
    }
    ensure(srv, &request("", "v1", "services")?, desired_service(ep), service_needs_update).await?;
    let not_contained = |c: &Value, d: &Value| !contains(c, d);
    ensure(srv, &request("", "v1", "endpoints")?, desired_endpoints(ep), not_contained).await?;
    ensure(srv, &request("discovery.k8s.io", "v1", "endpointslices")?, desired_slice(ep), not_contained).await
}

/// Reconciles every [`REPAIR_PERIOD`] (the first time after one period: the server reconciles
/// once itself before it is ready) until the server shuts down.
pub fn spawn(srv: std::sync::Arc<ApiServer>, ep: Endpoint) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut shutdown = srv.shutdown.clone();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(REPAIR_PERIOD) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            if let Err(e) = reconcile(&srv, ep).await {
                tracing::warn!("cannot reconcile the kubernetes service: {}", e.message);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desired_objects_point_at_the_server() {
        let ep = Endpoint { ip: "192.0.2.10".parse().unwrap(), port: 6443 };
        let svc = desired_service(ep);
        assert_eq!(svc["spec"]["clusterIP"], "10.43.0.1");
        assert_eq!(
            svc["spec"]["ports"][0],
            json!({"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443})
        );
        assert!(svc["spec"].get("selector").is_none());
        let eps = desired_endpoints(ep);
        assert_eq!(eps["subsets"][0]["addresses"][0]["ip"], "192.0.2.10");
        let slice = desired_slice(ep);
        assert_eq!(slice["metadata"]["labels"]["kubernetes.io/service-name"], "kubernetes");
        assert_eq!(slice["endpoints"][0]["conditions"]["ready"], true);
        assert_eq!(slice["ports"][0]["port"], 6443);
    }

    #[test]
    fn repairs_only_what_differs() {
        let ep = Endpoint { ip: "192.0.2.10".parse().unwrap(), port: 6443 };
        let mut stored = desired_endpoints(ep);
        stored["metadata"]["uid"] = json!("u");
        stored["metadata"]["labels"]["extra"] = json!("x");
        stored["subsets"][0]["ports"][0]["appProtocol"] = json!("https");
        assert!(contains(&stored, &desired_endpoints(ep)));
        let moved = Endpoint { port: 7443, ..ep };
        assert!(!contains(&stored, &desired_endpoints(moved)));
        let mut svc = desired_service(ep);
        svc["spec"]["internalTrafficPolicy"] = json!("Cluster");
        assert!(!service_needs_update(&svc, &desired_service(ep)));
        assert!(service_needs_update(&svc, &desired_service(moved)));
        svc["spec"]["selector"] = json!({"app": "x"});
        assert!(service_needs_update(&svc, &desired_service(ep)));
    }
}
