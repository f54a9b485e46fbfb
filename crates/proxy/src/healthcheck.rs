//! Health check node ports, as kube-proxy's service health server (`pkg/proxy/healthcheck`).
//!
//! A `type: LoadBalancer` Service with `externalTrafficPolicy: Local` has a
//! `spec.healthCheckNodePort` (allocated by the API server). On that port every node answers
//! HTTP: `200` when it has ready endpoints of the Service (traffic sent there is served
//! locally), `503` otherwise, so a load balancer sends traffic only to nodes with endpoints.
//! Any path and method get the same answer, with upstream's headers (`Content-Type:
//! application/json`, `X-Content-Type-Options: nosniff`, `X-Load-Balancing-Endpoint-Weight:
//! <local endpoints>`) and body (indented with tabs, no final newline, as upstream's):
//!
//! ```text
//! {
//!     "service": {
//!         "namespace": "ns",
//!         "name": "web"
//!     },
//!     "localEndpoints": 1,
//!     "serviceProxyHealthy": true
//! }
//! ```
//!
//! `serviceProxyHealthy` is false (and the answer `503`) while the proxy's last sync failed.
//!
//! [`checks`] is the pure part (Services + EndpointSlices → ports and counts); [`HealthServer`]
//! opens and closes one listener per port as Services come and go, and serves the counts of the
//! last [`HealthServer::sync`]. [`run`] does both from its own watches, without a ruleset.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use parking_lot::RwLock;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

/// What one health check node port reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// Ready endpoints of the Service on this node (distinct addresses).
    pub local_endpoints: usize,
}

/// Upstream's `NeedsHealthCheck`: `type: LoadBalancer` with `externalTrafficPolicy: Local`.
pub fn needs_health_check(svc: &Service) -> bool {
    let Some(spec) = &svc.spec else { return false };
    spec.type_.as_deref() == Some("LoadBalancer") && spec.external_traffic_policy.as_deref() == Some("Local")
}

/// The health check node ports of `services` on node `node_name`, with their local ready
/// endpoint counts from `slices`.
pub fn checks<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    node_name: &str,
) -> BTreeMap<u16, Check> {
    let mut local: HashMap<(&str, &str), BTreeSet<&str>> = HashMap::new();
    for s in slices {
        let (Some(ns), Some(svc)) = (
            s.metadata.namespace.as_deref(),
            s.metadata.labels.as_ref().and_then(|l| l.get(crate::rules::SERVICE_NAME_LABEL)),
        ) else {
            continue;
        };
        for ep in &s.endpoints {
            let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            if ready && ep.node_name.as_deref() == Some(node_name) {
                local.entry((ns, svc.as_str())).or_default().extend(ep.addresses.first().map(String::as_str));
            }
        }
    }
    let mut out = BTreeMap::new();
    for svc in services {
        if !needs_health_check(svc) || !crate::rules::proxied(svc) {
            continue;
        }
        let Some(port) = svc.spec.as_ref().and_then(|s| s.health_check_node_port).and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        let (Some(ns), Some(name)) = (svc.metadata.namespace.as_deref(), svc.metadata.name.as_deref()) else {
            continue;
        };
        if port == 0 {
            continue;
        }
        let count = local.get(&(ns, name)).map_or(0, BTreeSet::len);
        out.insert(port, Check { namespace: ns.to_string(), name: name.to_string(), local_endpoints: count });
    }
    out
}

/// Quotes a string as JSON (Go's `%q` for these names).
fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// The HTTP answer for `check`: status code and body.
pub fn answer(check: &Check, proxy_healthy: bool) -> (u16, String) {
    let status = if check.local_endpoints != 0 && proxy_healthy { 200 } else { 503 };
    let body = format!(
        "{{\n\t\"service\": {{\n\t\t\"namespace\": {},\n\t\t\"name\": {}\n\t}},\n\t\"localEndpoints\": {},\n\t\"serviceProxyHealthy\": {}\n}}",
        quote(&check.namespace),
        quote(&check.name),
        check.local_endpoints,
        proxy_healthy
    );
    (status, body)
}

type Shared = Arc<RwLock<BTreeMap<u16, Check>>>;

/// The health check listeners of a node.
pub struct HealthServer {
    address: IpAddr,
    checks: Shared,
    healthy: Arc<AtomicBool>,
    listeners: BTreeMap<u16, tokio::task::JoinHandle<()>>,
}

impl HealthServer {
    /// Listens on `address` (upstream: every address of the node, `0.0.0.0`); `healthy` is the
    /// proxy's own health.
    pub fn new(address: IpAddr, healthy: Arc<AtomicBool>) -> Self {
        HealthServer { address, checks: Shared::default(), healthy, listeners: BTreeMap::new() }
    }

    /// Serves `checks` from now on: listeners for new ports are opened (a port that cannot be
    /// bound is tried again at the next sync), those of ports no longer wanted closed. Must run
    /// inside a Tokio runtime.
    pub fn sync(&mut self, checks: BTreeMap<u16, Check>) {
        self.listeners.retain(|port, task| {
            let keep = checks.contains_key(port) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for port in checks.keys() {
            if self.listeners.contains_key(port) {
                continue;
            }
            match bind(SocketAddr::new(self.address, *port)) {
                Ok(listener) => {
                    let task = tokio::spawn(serve(listener, *port, self.checks.clone(), self.healthy.clone()));
                    self.listeners.insert(*port, task);
                }
                Err(e) => {
                    let c = &checks[port];
                    tracing::warn!("cannot serve the health check node port {port} of {}/{}: {e}", c.namespace, c.name);
                }
            }
        }
        *self.checks.write() = checks;
    }

    /// The ports served now.
    pub fn ports(&self) -> Vec<u16> {
        self.listeners.keys().copied().collect()
    }
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        for task in self.listeners.values() {
            task.abort();
        }
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(listener)
}

async fn serve(listener: tokio::net::TcpListener, port: u16, checks: Shared, healthy: Arc<AtomicBool>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let (checks, healthy) = (checks.clone(), healthy.clone());
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), respond(stream, port, checks, healthy)).await;
        });
    }
}

/// Reads one request (up to the end of its headers) and answers it.
async fn respond(
    mut stream: tokio::net::TcpStream,
    port: u16,
    checks: Shared,
    healthy: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let check = checks.read().get(&port).cloned();
    let Some(check) = check else {
        // The Service went away while this listener was closing (upstream answers nothing).
        return Ok(());
    };
    let (status, body) = answer(&check, healthy.load(Ordering::Relaxed));
    let reason = if status == 200 { "OK" } else { "Service Unavailable" };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nX-Load-Balancing-Endpoint-Weight: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        check.local_endpoints,
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// Serves the health check node ports of `node_name` on `address` from its own watches of
/// Services and EndpointSlices, until `shutdown` turns true (for nodes whose proxy runs
/// elsewhere, and tests; [`crate::run`] serves them from its sync loop).
pub async fn run(
    client: kube::Client,
    node_name: String,
    address: IpAddr,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let notify = Arc::new(Notify::new());
    let (services, t1) = crate::reflect(Api::<Service>::all(client.clone()), notify.clone());
    let (slices, t2) = crate::reflect(Api::<EndpointSlice>::all(client), notify.clone());
    let mut server = HealthServer::new(address, Arc::new(AtomicBool::new(true)));
    loop {
        let (svcs, eps) = (services.state(), slices.state());
        server.sync(checks(svcs.iter().map(AsRef::as_ref), eps.iter().map(AsRef::as_ref), &node_name));
        tokio::select! {
            _ = notify.notified() => tokio::time::sleep(Duration::from_millis(50)).await,
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            _ = crate::stopped(&mut shutdown) => break,
        }
    }
    t1.abort();
    t2.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lb(name: &str, etp: &str, port: u16) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.10", "externalTrafficPolicy": etp,
                     "healthCheckNodePort": port, "ports": [{"port": 80, "nodePort": 30080}]},
        }))
        .unwrap()
    }

    fn slice(service: &str, endpoints: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"name": format!("{service}-x"), "namespace": "ns", "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "ports": [{"port": 8080}], "endpoints": endpoints,
        }))
        .unwrap()
    }

    #[test]
    fn counts_local_ready_endpoints_of_local_policy_load_balancers() {
        let services = [lb("web", "Local", 31000), lb("other", "Cluster", 0), lb("idle", "Local", 31001)];
        let slices = [slice(
            "web",
            json!([
                {"addresses": ["10.42.0.5"], "nodeName": "a", "conditions": {"ready": true}},
                {"addresses": ["10.42.0.6"], "nodeName": "a", "conditions": {"ready": false}},
                {"addresses": ["10.42.0.7"], "nodeName": "a"},
                {"addresses": ["10.42.1.5"], "nodeName": "b", "conditions": {"ready": true}},
            ]),
        )];
        let got = checks(&services, &slices, "a");
        assert_eq!(got.keys().copied().collect::<Vec<_>>(), [31000, 31001]);
        assert_eq!(got[&31000].local_endpoints, 2);
        assert_eq!(got[&31001].local_endpoints, 0);
        assert_eq!(checks(&services, &slices, "b")[&31000].local_endpoints, 1);
    }

    #[test]
    fn answers_have_upstreams_shape() {
        let check = Check { namespace: "ns".into(), name: "web".into(), local_endpoints: 2 };
        let (status, body) = answer(&check, true);
        assert_eq!(status, 200);
        assert_eq!(
            body,
            "{\n\t\"service\": {\n\t\t\"namespace\": \"ns\",\n\t\t\"name\": \"web\"\n\t},\n\t\"localEndpoints\": 2,\n\t\"serviceProxyHealthy\": true\n}"
        );
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["service"]["name"], "web");
        assert_eq!(answer(&check, false).0, 503);
        assert_eq!(answer(&Check { local_endpoints: 0, ..check }, true).0, 503);
    }

    async fn get(port: u16) -> String {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn listeners_follow_the_services() {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let healthy = Arc::new(AtomicBool::new(true));
        let mut server = HealthServer::new("127.0.0.1".parse().unwrap(), healthy.clone());
        let check = Check { namespace: "ns".into(), name: "web".into(), local_endpoints: 1 };
        server.sync(BTreeMap::from([(port, check.clone())]));
        assert_eq!(server.ports(), [port]);
        let reply = get(port).await;
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        assert!(reply.contains("\r\nContent-Type: application/json\r\n"), "{reply}");
        assert!(reply.contains("\r\nX-Load-Balancing-Endpoint-Weight: 1\r\n"), "{reply}");
        assert!(reply.ends_with("\"serviceProxyHealthy\": true\n}"), "{reply}");
        // No local endpoints: 503.
        server.sync(BTreeMap::from([(port, Check { local_endpoints: 0, ..check.clone() })]));
        assert!(get(port).await.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        // The proxy unhealthy: 503 too.
        server.sync(BTreeMap::from([(port, check)]));
        healthy.store(false, Ordering::Relaxed);
        let reply = get(port).await;
        assert!(reply.starts_with("HTTP/1.1 503") && reply.contains("\"serviceProxyHealthy\": false"), "{reply}");
        // The Service goes: the port closes.
        server.sync(BTreeMap::new());
        assert!(server.ports().is_empty());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err());
    }
}
