//! The kubelet's HTTPS server, the API server's way into the node: container logs, exec,
//! attach, port forwarding, stats and health, on upstream's paths.
//!
//! - `GET /healthz` → `ok` (no client certificate needed).
//! - `GET /containerLogs/{ns}/{pod}/{container}`: the CRI log files (`logs`).
//! - `GET|POST /exec/{ns}/{pod}[/{uid}]/{container}`, `/attach/...`, `/portForward/{ns}/{pod}[/{uid}]`:
//!   the runtime's streaming URL is asked for over CRI and the client's upgrade request is
//!   proxied to it (`stream`); WebSocket `v5.channel.k8s.io` sessions, which the runtime does not
//!   speak, are terminated here and bridged to the runtime's `v4.channel.k8s.io` (`ws`); so are
//!   port-forward WebSockets tunnelling SPDY (`SPDY/3.1+portforward.k8s.io`), relayed to a
//!   SPDY/3.1 upgrade at the runtime (`tunnel`).
//! - `GET /stats/summary`: node and container usage (`stats`).
//!
//! Every other path needs a client certificate signed by the configured client CA (401
//! otherwise) whose subject is in group `system:masters` or is the API server's
//! `kube-apiserver-kubelet-client` (403 otherwise).

pub mod logs;
pub mod stats;
pub mod stream;
pub mod tunnel;
pub mod ws;

use crate::cri::Runtime;
use crate::cri::types as api;
use crate::layout;
use anyhow::{Context, Result};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// The server's certificate and the CA its clients' certificates must be signed by, as PEM.
#[derive(Clone, Debug)]
pub struct ServerTls {
    /// Serving certificate chain.
    pub cert_pem: String,
    /// Serving key.
    pub key_pem: String,
    /// CA that signs the certificates clients (the API server) present.
    pub client_ca_pem: String,
}

/// The CN of the certificate the API server presents to kubelets.
pub const API_SERVER_CLIENT_CN: &str = "kube-apiserver-kubelet-client";

/// Response bodies of this server.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// What every request handler shares.
pub(crate) struct State {
    pub runtime: Arc<dyn Runtime>,
    pub logs_root: PathBuf,
    pub shutdown: watch::Receiver<bool>,
}

/// Resolves once `rx` turns true or its sender is gone.
pub(crate) async fn shutting_down(mut rx: watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Builds the TLS config: the serving chain, HTTP/1.1 only (upgrades), client certificates
/// verified against the client CA when offered (requests without one get 401).
pub fn tls_config(tls: &ServerTls) -> Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut tls.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .context("cannot read the kubelet serving certificate")?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut tls.key_pem.as_bytes())
        .context("cannot read the kubelet serving key")?
        .context("no private key in the kubelet serving key")?;
    let mut roots = RootCertStore::empty();
    for ca in rustls_pemfile::certs(&mut tls.client_ca_pem.as_bytes()) {
        roots.add(ca.context("cannot read the client CA certificate")?).context("cannot trust the client CA")?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .context("cannot build the client certificate verifier")?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("cannot select TLS versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .context("the kubelet serving certificate and key do not match")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Who a verified client certificate names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Client {
    /// Subject CN.
    pub name: String,
    /// Subject O values.
    pub groups: Vec<String>,
}

impl Client {
    /// Reads the subject of a DER certificate.
    pub fn from_certificate(der: &[u8]) -> Option<Client> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject();
        let name = subject.iter_common_name().next()?.as_str().ok()?.to_string();
        let groups = subject.iter_organization().filter_map(|o| o.as_str().ok().map(str::to_string)).collect();
        Some(Client { name, groups })
    }

    /// Whether this client may use the kubelet's API.
    pub fn allowed(&self) -> bool {
        self.name == API_SERVER_CLIENT_CN || self.groups.iter().any(|g| g == "system:masters")
    }
}

/// Serves the kubelet API on `listener` until `shutdown` turns true; open streams end then too.
pub async fn serve(
    listener: TcpListener,
    tls: ServerTls,
    runtime: Arc<dyn Runtime>,
    logs_root: PathBuf,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let acceptor = TlsAcceptor::from(tls_config(&tls)?);
    let state = Arc::new(State { runtime, logs_root, shutdown: shutdown.clone() });
    let mut conns = tokio::task::JoinSet::new();
    let stop = shutting_down(shutdown);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let (tcp, _) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "kubelet server: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let state = state.clone();
                conns.spawn(async move {
                    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "kubelet server: TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let client = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| Client::from_certificate(c.as_ref()));
                    let client = Arc::new(client);
                    let svc = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        let client = client.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(state, req, client.as_ref().as_ref()).await) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc);
                    if let Err(e) = conn.with_upgrades().await {
                        tracing::debug!(error = %e, "kubelet server: connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    conns.shutdown().await;
    Ok(())
}

/// A complete body.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// A plain-text response, as upstream's kubelet writes errors.
pub(crate) fn text(code: StatusCode, message: impl Into<String>) -> Response<Body> {
    let mut resp = Response::new(full(message.into()));
    *resp.status_mut() = code;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp.headers_mut().insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    resp
}

/// A body fed by a channel, for streamed answers.
pub(crate) fn channel_body(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Body {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(Frame::data(b)), rx))
    });
    BodyExt::boxed(StreamBody::new(stream))
}

async fn handle(state: Arc<State>, req: Request<Incoming>, client: Option<&Client>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segs == ["healthz"] {
        return text(StatusCode::OK, "ok");
    }
    let Some(client) = client else {
        return text(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    if !client.allowed() {
        let sub = match segs.first() {
            Some(&"containerLogs") => "log",
            Some(&"stats") => "stats",
            _ => "proxy",
        };
        let verb = if req.method() == Method::GET { "get" } else { "create" };
        return text(
            StatusCode::FORBIDDEN,
            format!("Forbidden (user={}, verb={verb}, resource=nodes, subresource(s)=[{sub}])", client.name),
        );
    }
    let method = req.method().clone();
    let resp = match (segs.as_slice(), &method) {
        (["containerLogs", ns, pod, container], &Method::GET) => {
            let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
            container_logs(&state, &ns, &pod, &container, req.uri().query()).await
        }
        (["exec", ns, pod, container] | ["exec", ns, pod, _, container], &Method::GET | &Method::POST) => {
            let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
            stream::session(&state, req, stream::Session::Exec, &ns, &pod, &container).await
        }
        (["attach", ns, pod, container] | ["attach", ns, pod, _, container], &Method::GET | &Method::POST) => {
            let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
            stream::session(&state, req, stream::Session::Attach, &ns, &pod, &container).await
        }
        (["portForward", ns, pod] | ["portForward", ns, pod, _], &Method::GET | &Method::POST) => {
            let (ns, pod) = (ns.to_string(), pod.to_string());
            stream::port_forward(&state, req, &ns, &pod).await
        }
        (["stats", "summary"], &Method::GET) => stats::summary(&state).await,
        (["containerLogs", ..] | ["exec", ..] | ["attach", ..] | ["portForward", ..] | ["stats", ..], _)
            if matches!(segs.len(), 3..=5) || segs == ["stats", "summary"] =>
        {
            text(StatusCode::METHOD_NOT_ALLOWED, "405: Method Not Allowed")
        }
        _ => text(StatusCode::NOT_FOUND, "404 page not found"),
    };
    tracing::debug!(%method, %path, status = resp.status().as_u16(), "kubelet request");
    resp
}

/// Whether a CRI object's labels name this pod (and container, when given).
pub(crate) fn labels_match(
    labels: &std::collections::HashMap<String, String>,
    ns: &str,
    pod: &str,
    container: Option<&str>,
) -> bool {
    labels.get(layout::LABEL_POD_NAMESPACE).map(String::as_str) == Some(ns)
        && labels.get(layout::LABEL_POD_NAME).map(String::as_str) == Some(pod)
        && container.is_none_or(|c| labels.get(layout::LABEL_CONTAINER_NAME).map(String::as_str) == Some(c))
}

/// The runtime's containers of a pod's container, the running one (newest) first, then the
/// others newest first.
pub(crate) async fn pod_containers(
    runtime: &dyn Runtime,
    ns: &str,
    pod: &str,
    container: &str,
) -> Result<Vec<api::Container>> {
    let mut found: Vec<api::Container> = runtime
        .list_containers()
        .await?
        .into_iter()
        .filter(|c| labels_match(&c.labels, ns, pod, Some(container)))
        .collect();
    let running = api::ContainerState::ContainerRunning as i32;
    found.sort_by_key(|c| (c.state != running, std::cmp::Reverse(c.created_at)));
    Ok(found)
}

/// The restart count a container was created with, from its annotation.
pub(crate) fn restart_count(c: &api::Container) -> Option<u32> {
    c.annotations.get(layout::ANNOTATION_RESTART_COUNT).and_then(|v| v.parse().ok())
}

/// The pod's log directory: the one of the pod UID the runtime knows (preferring a running
/// container), else the most recently changed `<ns>_<pod>_*` directory holding `container`.
async fn pod_log_dir(state: &State, ns: &str, pod: &str, container: &str) -> Option<(PathBuf, Option<String>)> {
    match pod_containers(state.runtime.as_ref(), ns, pod, container).await {
        Ok(found) => {
            for c in &found {
                if let Some(uid) = c.labels.get(layout::LABEL_POD_UID) {
                    let dir = layout::pod_log_dir(&state.logs_root, ns, pod, uid);
                    if dir.is_dir() {
                        return Some((dir, Some(uid.clone())));
                    }
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot list containers; looking for logs on disk only"),
    }
    let prefix = format!("{ns}_{pod}_");
    let entries = std::fs::read_dir(&state.logs_root).ok()?;
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let uid = name.strip_prefix(&prefix)?.to_string();
            let path = e.path();
            let changed = path.join(container).metadata().and_then(|m| m.modified()).ok()?;
            Some((changed, path, uid))
        })
        .max_by_key(|(changed, _, _)| *changed)
        .map(|(_, path, uid)| (path, Some(uid)))
}

async fn container_logs(
    state: &Arc<State>,
    ns: &str,
    pod: &str,
    container: &str,
    query: Option<&str>,
) -> Response<Body> {
    let opts = match logs::LogOptions::from_query(query, chrono::Utc::now()) {
        Ok(o) => o,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let Some((dir, uid)) = pod_log_dir(state, ns, pod, container).await else {
        return text(StatusCode::NOT_FOUND, format!("pod {pod:?} does not exist"));
    };
    let container_dir = dir.join(container);
    let runs = logs::runs(&container_dir);
    let chosen = if opts.previous { runs.len().checked_sub(2).map(|i| &runs[i]) } else { runs.last() };
    let Some((run, path)) = chosen.cloned() else {
        return if opts.previous {
            text(
                StatusCode::BAD_REQUEST,
                format!("previous terminated container {container:?} in pod {pod:?} not found"),
            )
        } else {
            text(StatusCode::NOT_FOUND, format!("container {container:?} not found in pod {pod:?}"))
        };
    };
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let runtime = state.runtime.clone();
    let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        let done = move || {
            let runtime = runtime.clone();
            let container_dir = container_dir.clone();
            let (ns, pod, container, uid) = (ns.clone(), pod.clone(), container.clone(), uid.clone());
            async move {
                if logs::runs(&container_dir).last().is_some_and(|(n, _)| *n > run) {
                    return true;
                }
                match pod_containers(runtime.as_ref(), &ns, &pod, &container).await {
                    Ok(found) => !found.iter().any(|c| {
                        c.state == api::ContainerState::ContainerRunning as i32
                            && restart_count(c).is_none_or(|n| n == run)
                            && uid.as_ref().is_none_or(|u| c.labels.get(layout::LABEL_POD_UID) == Some(u))
                    }),
                    // Keep following while the runtime cannot be asked.
                    Err(_) => false,
                }
            }
        };
        tokio::select! {
            r = logs::stream(path.clone(), opts, tx, done) => {
                if let Err(e) = r {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read a container log");
                }
            }
            _ = shutting_down(shutdown) => {}
        }
    });
    let mut resp = Response::new(channel_body(rx));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

#[cfg(test)]
mod tests;
