//! Exec, attach and port forwarding: the container (or sandbox) is found through the runtime by
//! its labels, the runtime is asked over CRI for a streaming URL (containerd serves it on
//! loopback), and the client's upgrade request (SPDY/3.1 or WebSocket) is proxied there: the
//! runtime's answer (`101 Switching Protocols` and its headers, or an error) goes back to the
//! client, then bytes are copied both ways until either side closes. Two kinds of WebSocket
//! the runtime does not speak are served here instead: exec/attach `v5.channel.k8s.io` (`ws`)
//! and port forwarding's SPDY-over-WebSocket tunnel (`tunnel`).

use super::{Body, State, full, labels_match, pod_containers, shutting_down, text, tunnel, ws};
use crate::cri::types as api;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;

/// What an exec or attach asks for (upstream's remotecommand options).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// Send the client's stdin to the process.
    pub stdin: bool,
    /// Send the process's stdout.
    pub stdout: bool,
    /// Send the process's stderr (never with a TTY).
    pub stderr: bool,
    /// Allocate a TTY.
    pub tty: bool,
    /// The command (exec only).
    pub command: Vec<String>,
}

fn flag(v: &str) -> bool {
    matches!(v, "1" | "true" | "True" | "TRUE" | "t" | "T")
}

impl StreamOptions {
    /// Reads the options from a raw query string; errors read as upstream's.
    pub fn from_query(query: Option<&str>) -> Result<StreamOptions, String> {
        let mut o = StreamOptions::default();
        for (k, v) in super::logs::form_urlencoded_pairs(query.unwrap_or("")) {
            match k.as_str() {
                "stdin" | "input" => o.stdin = flag(&v),
                "stdout" | "output" => o.stdout = flag(&v),
                "stderr" | "error" => o.stderr = flag(&v),
                "tty" => o.tty = flag(&v),
                "command" => o.command.push(v),
                _ => {}
            }
        }
        if o.tty && o.stderr {
            // A TTY merges stderr into stdout.
            o.stderr = false;
        }
        if !o.stdin && !o.stdout && !o.stderr {
            return Err("you must specify at least 1 of stdin, stdout, stderr".into());
        }
        Ok(o)
    }
}

/// The ports of a port-forward request (`port`/`ports`, repeated or comma-separated).
pub fn ports_from_query(query: Option<&str>) -> Result<Vec<i32>, String> {
    let mut ports = Vec::new();
    for (k, v) in super::logs::form_urlencoded_pairs(query.unwrap_or("")) {
        if k != "port" && k != "ports" {
            continue;
        }
        for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => ports.push(i32::from(n)),
                _ => return Err(format!("unable to parse {p:?} as a port: must be between 1 and 65535")),
            }
        }
    }
    Ok(ports)
}

/// The ready sandbox of a pod, newest first.
async fn ready_sandbox(state: &State, ns: &str, pod: &str) -> anyhow::Result<Option<api::PodSandbox>> {
    let ready = api::PodSandboxState::SandboxReady as i32;
    Ok(state
        .runtime
        .list_pod_sandboxes()
        .await?
        .into_iter()
        .filter(|s| s.state == ready && labels_match(&s.labels, ns, pod, None))
        .max_by_key(|s| s.created_at))
}

/// The id of the running container `container` of a pod, or the error response upstream's
/// kubelet gives.
async fn running_container(state: &State, ns: &str, pod: &str, container: &str) -> Result<String, Response<Body>> {
    let internal = |e: anyhow::Error| text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    if ready_sandbox(state, ns, pod).await.map_err(internal)?.is_none() {
        return Err(text(StatusCode::NOT_FOUND, "pod does not exist"));
    }
    let found = pod_containers(state.runtime.as_ref(), ns, pod, container).await.map_err(internal)?;
    match found.first() {
        Some(c) if c.state == api::ContainerState::ContainerRunning as i32 => Ok(c.id.clone()),
        _ => Err(text(StatusCode::INTERNAL_SERVER_ERROR, format!("container not found ({container:?})"))),
    }
}

/// Which streaming session a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Session {
    /// `/exec/{ns}/{pod}/{container}`: a new process in the container.
    Exec,
    /// `/attach/{ns}/{pod}/{container}`: the container's main process.
    Attach,
}

/// `/exec/...` and `/attach/...`: asks the runtime for a streaming URL for the running
/// container and hands the client's upgrade to it.
pub(crate) async fn session(
    state: &Arc<State>,
    req: Request<Incoming>,
    kind: Session,
    ns: &str,
    pod: &str,
    container: &str,
) -> Response<Body> {
    let opts = match StreamOptions::from_query(req.uri().query()) {
        Ok(o) => o,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let id = match running_container(state, ns, pod, container).await {
        Ok(id) => id,
        Err(resp) => return resp,
    };
    let url = match kind {
        Session::Exec => {
            let request = api::ExecRequest {
                container_id: id,
                cmd: opts.command.clone(),
                tty: opts.tty,
                stdin: opts.stdin,
                stdout: opts.stdout,
                stderr: opts.stderr,
            };
            state.runtime.exec(request).await
        }
        Session::Attach => {
            let request = api::AttachRequest {
                container_id: id,
                stdin: opts.stdin,
                tty: opts.tty,
                stdout: opts.stdout,
                stderr: opts.stderr,
            };
            state.runtime.attach(request).await
        }
    };
    match url {
        Ok(url) => upgrade(state, req, &url, &opts).await,
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `/portForward/{ns}/{pod}`.
pub(crate) async fn port_forward(state: &Arc<State>, req: Request<Incoming>, ns: &str, pod: &str) -> Response<Body> {
    let ports = match ports_from_query(req.uri().query()) {
        Ok(p) => p,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let sandbox = match ready_sandbox(state, ns, pod).await {
        Ok(Some(s)) => s,
        Ok(None) => return text(StatusCode::NOT_FOUND, "pod does not exist"),
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let request = api::PortForwardRequest { pod_sandbox_id: sandbox.id, port: ports };
    match state.runtime.port_forward(request).await {
        Ok(url) => {
            let tunneled = tunnel::tunneled_protocols(req.headers());
            if tunneled.is_empty() {
                proxy(state, req, &url).await
            } else {
                tunnel::tunnel(state, req, &url, tunneled).await
            }
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Exec and attach: WebSocket `v5.channel.k8s.io` is served here (see `ws`), everything else
/// is proxied. A v5 session that sends stdin without a TTY is proxied too: the runtime refuses
/// v5, and the client falls back to SPDY, which can tell the process about the end of stdin
/// (the v4 WebSocket protocol the bridge speaks to the runtime cannot).
async fn upgrade(state: &Arc<State>, req: Request<Incoming>, url: &str, opts: &StreamOptions) -> Response<Body> {
    if let Some(protocol) = ws::bridged_protocol(req.headers())
        && (!opts.stdin || opts.tty)
    {
        return ws::bridge(state, req, url, protocol).await;
    }
    proxy(state, req, url).await
}

/// Request headers that make up an upgrade and are passed on to the runtime.
fn forwarded(name: &HeaderName) -> bool {
    let n = name.as_str();
    n == "upgrade"
        || n == "connection"
        || n == "x-stream-protocol-version"
        || n.starts_with("sec-websocket-")
        || n == "user-agent"
}

/// The headers of the request sent to the runtime's streaming server at `host`: the client's
/// upgrade headers (every value, in order) and `Host`.
pub fn upgrade_request_headers(client: &HeaderMap, host: &str) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in client {
        if forwarded(name) {
            out.append(name.clone(), value.clone());
        }
    }
    if let Ok(h) = HeaderValue::from_str(host) {
        out.insert(header::HOST, h);
    }
    out
}

/// The headers of the runtime's `101` that go back to the client: all but the ones describing
/// a body.
pub fn upgrade_response_headers(runtime: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in runtime {
        if name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// The path and query to ask the runtime for: its URL's path, its query and the client's.
pub fn target_path(url: &Uri, client_query: Option<&str>) -> String {
    let query: Vec<&str> = [url.query(), client_query].into_iter().flatten().filter(|q| !q.is_empty()).collect();
    let path = if url.path().is_empty() { "/" } else { url.path() };
    if query.is_empty() { path.to_string() } else { format!("{path}?{}", query.join("&")) }
}

/// An upgrade request sent to the runtime's streaming server, and its answer.
pub(crate) struct Upstream {
    /// The runtime's response (its body unread).
    pub response: Response<Incoming>,
}

/// Sends an upgrade request to the runtime's streaming URL (plain HTTP on loopback).
pub(crate) async fn dial(
    url: &str,
    method: http::Method,
    path: String,
    headers: HeaderMap,
) -> anyhow::Result<Upstream> {
    use anyhow::Context;
    let uri: Uri = url.parse().with_context(|| format!("the runtime's streaming URL {url:?} is invalid"))?;
    if uri.scheme_str() != Some("http") {
        anyhow::bail!("the runtime's streaming URL {url:?} is not plain HTTP");
    }
    let authority = uri.authority().context("the runtime's streaming URL has no host")?;
    let addr = format!("{}:{}", authority.host().trim_matches(['[', ']']), authority.port_u16().unwrap_or(80));
    let tcp = tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect(&addr))
        .await
        .context("timed out connecting to the runtime's streaming server")?
        .with_context(|| format!("cannot connect to the runtime's streaming server at {addr}"))?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .context("cannot talk HTTP to the runtime's streaming server")?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let mut request = Request::builder().method(method).uri(path).body(Empty::<Bytes>::new())?;
    *request.headers_mut() = headers;
    let response = sender.send_request(request).await.context("the runtime's streaming server did not answer")?;
    Ok(Upstream { response })
}

/// Copies bytes both ways between two upgraded connections until either side closes or the
/// server shuts down.
pub(crate) fn splice(state: &State, client: hyper::upgrade::OnUpgrade, runtime: hyper::upgrade::OnUpgrade) {
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        let (client, runtime) = match tokio::try_join!(client, runtime) {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "stream upgrade failed");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut runtime = TokioIo::new(runtime);
        tokio::select! {
            r = tokio::io::copy_bidirectional(&mut client, &mut runtime) => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "stream ended with an error");
                }
            }
            _ = shutting_down(shutdown) => {}
        }
    });
}

/// The runtime's answer other than `101`, passed on as it is: status, content type and (up to
/// 64 KiB of) body.
pub(crate) async fn refusal(response: Response<Incoming>) -> Response<Body> {
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let body = match Limited::new(response.into_body(), 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    if let Some(ct) = content_type {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    resp
}

/// Proxies the client's upgrade request to `url` and, on `101`, splices the connections.
pub(crate) async fn proxy(state: &Arc<State>, mut req: Request<Incoming>, url: &str) -> Response<Body> {
    let target = match url.parse::<Uri>() {
        Ok(u) => u,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, format!("invalid streaming URL {url:?}: {e}")),
    };
    let host = target.authority().map(|a| a.as_str().to_string()).unwrap_or_default();
    let path = target_path(&target, req.uri().query());
    let headers = upgrade_request_headers(req.headers(), &host);
    let upstream = match dial(url, req.method().clone(), path, headers).await {
        Ok(u) => u,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    };
    let response = upstream.response;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return refusal(response).await;
    }
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *resp.headers_mut() = upgrade_response_headers(response.headers());
    splice(state, hyper::upgrade::on(&mut req), hyper::upgrade::on(response));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stream_options() {
        let o = StreamOptions::from_query(Some(
            "command=sh&command=-c&command=echo%20hi&stdin=1&stdout=true&tty=1&stderr=1",
        ))
        .unwrap();
        assert_eq!(o.command, vec!["sh", "-c", "echo hi"]);
        assert!(o.stdin && o.stdout && o.tty);
        // No stderr with a TTY.
        assert!(!o.stderr);
        assert_eq!(
            StreamOptions::from_query(Some("command=ls")).unwrap_err(),
            "you must specify at least 1 of stdin, stdout, stderr"
        );
        assert!(StreamOptions::from_query(None).is_err());
        assert!(StreamOptions::from_query(Some("stderr=1")).unwrap().stderr);
    }

    #[test]
    fn reads_ports() {
        assert_eq!(ports_from_query(Some("ports=8080&port=90,91")).unwrap(), vec![8080, 90, 91]);
        assert_eq!(ports_from_query(None).unwrap(), Vec::<i32>::new());
        assert!(ports_from_query(Some("ports=0")).is_err());
        assert!(ports_from_query(Some("ports=70000")).is_err());
        assert!(ports_from_query(Some("ports=http")).is_err());
    }

    #[test]
    fn forwards_only_upgrade_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        h.append("x-stream-protocol-version", HeaderValue::from_static("v4.channel.k8s.io"));
        h.append("x-stream-protocol-version", HeaderValue::from_static("v3.channel.k8s.io"));
        h.insert("sec-websocket-protocol", HeaderValue::from_static("v4.channel.k8s.io"));
        h.insert("sec-websocket-key", HeaderValue::from_static("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer secret"));
        h.insert(header::HOST, HeaderValue::from_static("node:10250"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        let out = upgrade_request_headers(&h, "127.0.0.1:4321");
        assert_eq!(out.get(header::HOST).unwrap(), "127.0.0.1:4321");
        assert_eq!(out.get(header::UPGRADE).unwrap(), "SPDY/3.1");
        assert_eq!(out.get(header::CONNECTION).unwrap(), "Upgrade");
        let versions: Vec<_> = out.get_all("x-stream-protocol-version").iter().collect();
        assert_eq!(versions, vec!["v4.channel.k8s.io", "v3.channel.k8s.io"]);
        assert_eq!(out.get("sec-websocket-key").unwrap(), "abc");
        assert_eq!(out.get("sec-websocket-protocol").unwrap(), "v4.channel.k8s.io");
        assert!(out.get(header::AUTHORIZATION).is_none());
        assert!(out.get(header::CONTENT_LENGTH).is_none());

        let mut r = HeaderMap::new();
        r.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        r.insert("x-stream-protocol-version", HeaderValue::from_static("v4.channel.k8s.io"));
        r.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        let back = upgrade_response_headers(&r);
        assert_eq!(back.len(), 2);
        assert_eq!(back.get("x-stream-protocol-version").unwrap(), "v4.channel.k8s.io");
    }

    #[test]
    fn joins_paths_and_queries() {
        let u: Uri = "http://127.0.0.1:4321/exec/AbC".parse().unwrap();
        assert_eq!(target_path(&u, None), "/exec/AbC");
        assert_eq!(target_path(&u, Some("command=ls&stdout=1")), "/exec/AbC?command=ls&stdout=1");
        let u: Uri = "http://127.0.0.1:4321/portforward/x?a=1".parse().unwrap();
        assert_eq!(target_path(&u, Some("ports=80")), "/portforward/x?a=1&ports=80");
        assert_eq!(target_path(&u, Some("")), "/portforward/x?a=1");
    }
}
