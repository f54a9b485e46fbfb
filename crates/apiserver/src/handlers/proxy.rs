//! `pods/log`, `pods/exec`, `pods/attach` and `pods/portforward`: the API server checks the
//! request against the pod (container chosen and valid, node assigned, for logs a container
//! that has run) and relays it to the kubelet of the pod's node over HTTPS, presenting its
//! kubelet-client certificate and trusting the cluster CA.
//!
//! Logs stream through as the kubelet writes them. Exec, attach and port-forward are protocol
//! upgrades (SPDY/3.1 or WebSocket): the kubelet's `101 Switching Protocols` goes back to the
//! client and bytes are then copied both ways until either side closes. A kubelet's refusal
//! becomes a `Status` with its message. WebSockets pass through as they are, including
//! port-forward's SPDY tunnelled in a WebSocket (`SPDY/3.1+portforward.k8s.io`): the kubelet,
//! not the API server, ends those and speaks SPDY to the runtime.

use crate::object::{self, from_kv};
use crate::request::{ResourceRequest, Verb};
use crate::server::{ApiServer, Ctx};
use crate::status::{ApiError, ApiResult};
use anyhow::Context as _;
use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rudder_api::{FieldError, FieldPath};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The kubelet's port when the node does not report one.
pub const DEFAULT_KUBELET_PORT: u16 = 10250;

/// The TLS client config for talking to kubelets: the API server's kubelet-client certificate,
/// and the cluster CA as the only trusted root. HTTP/1.1 only (upgrades).
pub fn kubelet_tls(pki: &crate::pki::Pki) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    client_config(&pki.ca_cert_pem, &pki.kubelet_client_cert_pem, &pki.kubelet_client_key_pem)
}

/// A TLS client config trusting `ca_pem` and presenting `cert_pem`/`key_pem`.
pub fn client_config(ca_pem: &str, cert_pem: &str, key_pem: &str) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(ca.context("cannot read the CA certificate")?).context("cannot trust the CA certificate")?;
    }
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .context("cannot read the kubelet client certificate")?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .context("cannot read the kubelet client key")?
        .context("no private key in the kubelet client key")?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("cannot select TLS versions")?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .context("the kubelet client certificate and key do not match")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts any kubelet certificate (`insecureSkipTLSVerifyBackend=true` on logs); signatures
/// are still checked so the handshake is sound.
#[derive(Debug)]
struct SkipVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn skip_verify(config: &rustls::ClientConfig) -> Arc<rustls::ClientConfig> {
    let mut c = config.clone();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    c.dangerous().set_certificate_verifier(Arc::new(SkipVerify(provider)));
    Arc::new(c)
}

fn parse_bool(name: &str, v: &str) -> ApiResult<bool> {
    match v {
        "" | "1" | "t" | "T" | "true" | "True" | "TRUE" => Ok(true),
        "0" | "f" | "F" | "false" | "False" | "FALSE" => Ok(false),
        _ => Err(ApiError::bad_request(format!("invalid value {v:?} for query parameter {name}: not a boolean"))),
    }
}

fn parse_int(name: &str, v: &str) -> ApiResult<i64> {
    v.parse()
        .map_err(|_| ApiError::bad_request(format!("invalid value {v:?} for query parameter {name}: not an integer")))
}

/// Options of a `pods/log` request (upstream's `PodLogOptions`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// `container`.
    pub container: Option<String>,
    /// `follow`.
    pub follow: bool,
    /// `previous`.
    pub previous: bool,
    /// `timestamps`.
    pub timestamps: bool,
    /// `sinceSeconds`.
    pub since_seconds: Option<i64>,
    /// `sinceTime`, as given (RFC 3339).
    pub since_time: Option<String>,
    /// `tailLines`.
    pub tail_lines: Option<i64>,
    /// `limitBytes`.
    pub limit_bytes: Option<i64>,
    /// `insecureSkipTLSVerifyBackend`.
    pub insecure_skip_tls_verify_backend: bool,
}

impl LogOptions {
    /// Reads and validates the options of a pod `name`: 400 for unreadable values, 422 as
    /// upstream's `ValidatePodLogOptions`.
    pub fn parse(raw: Option<&str>, name: &str) -> ApiResult<LogOptions> {
        let mut o = LogOptions::default();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            match &*k {
                "container" => o.container = Some(v.into_owned()).filter(|c| !c.is_empty()),
                "follow" => o.follow = parse_bool(&k, &v)?,
                "previous" => o.previous = parse_bool(&k, &v)?,
                "timestamps" => o.timestamps = parse_bool(&k, &v)?,
                "insecureSkipTLSVerifyBackend" => o.insecure_skip_tls_verify_backend = parse_bool(&k, &v)?,
                "sinceSeconds" => o.since_seconds = Some(parse_int(&k, &v)?),
                "tailLines" => o.tail_lines = Some(parse_int(&k, &v)?),
                "limitBytes" => o.limit_bytes = Some(parse_int(&k, &v)?),
                "sinceTime" => {
                    chrono::DateTime::parse_from_rfc3339(&v).map_err(|_| {
                        ApiError::bad_request(format!(
                            "invalid value {v:?} for query parameter sinceTime: not an RFC3339 time"
                        ))
                    })?;
                    o.since_time = Some(v.into_owned());
                }
                _ => {}
            }
        }
        let mut errs = Vec::new();
        if let Some(n) = o.tail_lines.filter(|n| *n < 0) {
            errs.push(FieldError::invalid(&FieldPath::root("tailLines"), n, "must be greater than or equal to 0"));
        }
        if let Some(n) = o.limit_bytes.filter(|n| *n < 1) {
            errs.push(FieldError::invalid(&FieldPath::root("limitBytes"), n, "must be greater than 0"));
        }
        match (o.since_seconds, &o.since_time) {
            (Some(_), Some(_)) => errs.push(FieldError::forbidden(
                &FieldPath::root(""),
                "at most one of `sinceTime` or `sinceSeconds` may be specified",
            )),
            (Some(n), None) if n < 1 => {
                errs.push(FieldError::invalid(&FieldPath::root("sinceSeconds"), n, "must be greater than 0"))
            }
            _ => {}
        }
        if !errs.is_empty() {
            return Err(ApiError::invalid("", "PodLogOptions", name, &errs));
        }
        Ok(o)
    }

    /// The query for the kubelet's `/containerLogs`.
    fn kubelet_query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if self.follow {
            q.append_pair("follow", "true");
        }
        if self.previous {
            q.append_pair("previous", "true");
        }
        if self.timestamps {
            q.append_pair("timestamps", "true");
        }
        if let Some(n) = self.since_seconds {
            q.append_pair("sinceSeconds", &n.to_string());
        }
        if let Some(t) = &self.since_time {
            q.append_pair("sinceTime", t);
        }
        if let Some(n) = self.tail_lines {
            q.append_pair("tailLines", &n.to_string());
        }
        if let Some(n) = self.limit_bytes {
            q.append_pair("limitBytes", &n.to_string());
        }
        q.finish()
    }
}

/// Options of exec and attach (`PodExecOptions`, `PodAttachOptions`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// `container`.
    pub container: Option<String>,
    /// `stdin`.
    pub stdin: bool,
    /// `stdout`.
    pub stdout: bool,
    /// `stderr`.
    pub stderr: bool,
    /// `tty`.
    pub tty: bool,
    /// `command` (exec).
    pub command: Vec<String>,
}

impl StreamOptions {
    /// Reads the options from the raw query.
    pub fn parse(raw: Option<&str>) -> ApiResult<StreamOptions> {
        let mut o = StreamOptions::default();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            match &*k {
                "container" => o.container = Some(v.into_owned()).filter(|c| !c.is_empty()),
                "stdin" => o.stdin = parse_bool(&k, &v)?,
                "stdout" => o.stdout = parse_bool(&k, &v)?,
                "stderr" => o.stderr = parse_bool(&k, &v)?,
                "tty" => o.tty = parse_bool(&k, &v)?,
                "command" => o.command.push(v.into_owned()),
                _ => {}
            }
        }
        Ok(o)
    }

    /// The query for the kubelet, as upstream writes it (`1` for true flags).
    fn kubelet_query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (name, on) in [("stdin", self.stdin), ("stdout", self.stdout), ("stderr", self.stderr), ("tty", self.tty)] {
            if on {
                q.append_pair(name, "1");
            }
        }
        for c in &self.command {
            q.append_pair("command", c);
        }
        q.finish()
    }
}

/// The ports of a `pods/portforward` request, as the kubelet reads them (`port=80,443`).
fn port_forward_query(raw: Option<&str>) -> ApiResult<String> {
    let mut ports = Vec::new();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if k != "ports" {
            continue;
        }
        for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => ports.push(n.to_string()),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "invalid value {p:?} for query parameter ports: must be a port between 1 and 65535"
                    )));
                }
            }
        }
    }
    if ports.is_empty() {
        return Ok(String::new());
    }
    Ok(form_urlencoded::Serializer::new(String::new()).append_pair("port", &ports.join(",")).finish())
}

/// The names of a pod's containers of one kind (`containers`, `initContainers`, ...).
fn names(pod: &Value, field: &str) -> Vec<String> {
    pod.pointer(&format!("/spec/{field}"))
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(|c| c["name"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// The container a request is about: the one asked for, which must exist in the pod; else the
/// `kubectl.kubernetes.io/default-container` annotation's; else the only one. Errors read as
/// upstream's.
pub fn choose_container(pod: &Value, asked: Option<&str>, for_logs: bool) -> ApiResult<String> {
    let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let containers = names(pod, "containers");
    let init = names(pod, "initContainers");
    let ephemeral = names(pod, "ephemeralContainers");
    if let Some(c) = asked {
        if containers.iter().chain(&init).chain(&ephemeral).any(|n| n == c) {
            return Ok(c.to_string());
        }
        return Err(ApiError::bad_request(format!("container {c} is not valid for pod {name}")));
    }
    if let Some(d) =
        pod.pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container").and_then(Value::as_str)
        && containers.iter().any(|n| n == d)
    {
        return Ok(d.to_string());
    }
    match containers.as_slice() {
        [only] => Ok(only.clone()),
        [] => Err(ApiError::bad_request(format!("a container name must be specified for pod {name}"))),
        _ if for_logs => {
            let all: Vec<String> = init.iter().chain(&containers).chain(&ephemeral).cloned().collect();
            Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                all.join(" ")
            )))
        }
        _ => {
            let mut msg =
                format!("a container name must be specified for pod {name}, choose one of: [{}]", containers.join(" "));
            if !init.is_empty() {
                msg.push_str(&format!(" or one of the init containers: [{}]", init.join(" ")));
            }
            Err(ApiError::bad_request(msg))
        }
    }
}

/// Whether the container has logs to read, from the pod's status, as upstream's kubelet
/// decides (`validateContainerLogStatus`); the errors are its messages.
pub fn check_log_status(pod: &Value, container: &str, previous: bool) -> ApiResult<()> {
    let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let status = ["containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"]
        .iter()
        .filter_map(|f| pod.pointer(&format!("/status/{f}")).and_then(Value::as_array))
        .flatten()
        .find(|s| s["name"].as_str() == Some(container));
    let Some(status) = status else {
        return Err(ApiError::bad_request(format!("container {container:?} in pod {name:?} is not available")));
    };
    let id_of = |v: &Value| v["containerID"].as_str().filter(|s| !s.is_empty()).is_some();
    let last_terminated = status.pointer("/lastState/terminated");
    let state = &status["state"];
    let bad = |m: String| Err(ApiError::bad_request(m));
    if previous {
        return match last_terminated {
            Some(t) if id_of(t) => Ok(()),
            _ => bad(format!("previous terminated container {container:?} in pod {name:?} not found")),
        };
    }
    if state.get("running").is_some() {
        return Ok(());
    }
    if let Some(t) = state.get("terminated") {
        return if id_of(t) || last_terminated.is_some_and(id_of) {
            Ok(())
        } else {
            bad(format!("container {container:?} in pod {name:?} is terminated"))
        };
    }
    if let Some(t) = last_terminated {
        return if id_of(t) { Ok(()) } else { bad(format!("container {container:?} in pod {name:?} is terminated")) };
    }
    if let Some(w) = state.get("waiting") {
        let why = match w["reason"].as_str().unwrap_or_default() {
            "ErrImagePull" => "image can't be pulled".to_string(),
            "ImagePullBackOff" => "trying and failing to pull image".to_string(),
            other => other.to_string(),
        };
        return bad(format!("container {container:?} in pod {name:?} is waiting to start: {why}"));
    }
    bad(format!("container {container:?} in pod {name:?} is waiting to start - no logs yet"))
}

/// `host:port` of a node's kubelet: its InternalIP (else Hostname, else ExternalIP) and its
/// `daemonEndpoints.kubeletEndpoint.Port`.
pub fn kubelet_address(node: &Value) -> Option<(String, u16)> {
    let addresses = node.pointer("/status/addresses").and_then(Value::as_array)?;
    let find = |kind: &str| {
        addresses
            .iter()
            .find(|a| a["type"].as_str() == Some(kind))
            .and_then(|a| a["address"].as_str())
            .filter(|a| !a.is_empty())
    };
    let host = find("InternalIP").or_else(|| find("Hostname")).or_else(|| find("ExternalIP"))?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
        .unwrap_or(DEFAULT_KUBELET_PORT);
    Some((host.to_string(), port))
}

/// Serves the pod subresources that reach the kubelet.
pub async fn handle(srv: &ApiServer, req: &ResourceRequest, ctx: &mut Ctx, sub: &str) -> ApiResult<Response<Body>> {
    let allowed = match sub {
        "log" => matches!(req.verb, Verb::Get),
        _ => matches!(req.verb, Verb::Get | Verb::Create),
    };
    if !allowed {
        return Err(ApiError::method_not_allowed());
    }
    let pod = crate::handlers::get::load(srv, req).await?;
    let name = req.name.as_deref().unwrap_or_default();
    let namespace = req.namespace.as_deref().unwrap_or_default();
    let node = pod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("").to_string();
    let raw = ctx.raw_query.clone();
    let (path, query, insecure) = match sub {
        "log" => {
            let opts = LogOptions::parse(raw.as_deref(), name)?;
            let container = choose_container(&pod, opts.container.as_deref(), true)?;
            if node.is_empty() {
                // As upstream: a pod not yet on a node has no logs.
                return Ok(text_response(Bytes::new()));
            }
            check_log_status(&pod, &container, opts.previous)?;
            (
                format!("/containerLogs/{namespace}/{name}/{container}"),
                opts.kubelet_query(),
                opts.insecure_skip_tls_verify_backend,
            )
        }
        "exec" | "attach" => {
            let opts = StreamOptions::parse(raw.as_deref())?;
            let container = choose_container(&pod, opts.container.as_deref(), false)?;
            if node.is_empty() {
                return Err(ApiError::bad_request(format!("pod {name} does not have a host assigned")));
            }
            let mut opts = opts;
            if sub == "attach" {
                opts.command.clear();
            }
            (format!("/{sub}/{namespace}/{name}/{container}"), opts.kubelet_query(), false)
        }
        "portforward" => {
            let query = port_forward_query(raw.as_deref())?;
            if node.is_empty() {
                return Err(ApiError::bad_request(format!("pod {name} does not have a host assigned")));
            }
            (format!("/portForward/{namespace}/{name}"), query, false)
        }
        _ => return Err(ApiError::method_not_allowed()),
    };
    let (host, port) = node_address(srv, &node).await?;
    let Some(tls) = srv.kubelet_tls.clone() else {
        return Err(ApiError::unavailable(format!("no way to reach the kubelet of node {node:?} is configured")));
    };
    let tls = if insecure { skip_verify(&tls) } else { tls };
    let path = if query.is_empty() { path } else { format!("{path}?{query}") };
    let method = if sub == "log" { http::Method::GET } else { ctx_method(req) };
    let headers = if sub == "log" { HeaderMap::new() } else { upgrade_headers(&ctx.headers) };
    let resp = dial_kubelet(tls, &host, port, method, &path, headers)
        .await
        .map_err(|e| ApiError::internal(format!("error dialing backend: {e:#}")))?;
    let status = resp.status();
    if sub == "log" {
        if !status.is_success() {
            return Err(kubelet_error(resp, name).await);
        }
        return Ok(text_response(Body::new(resp.into_body())));
    }
    if status != StatusCode::SWITCHING_PROTOCOLS {
        return Err(kubelet_error(resp, name).await);
    }
    let Some(client_upgrade) = ctx.upgrade.take() else {
        return Err(ApiError::bad_request("the request cannot be upgraded"));
    };
    let mut out = Response::new(Body::empty());
    *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (k, v) in resp.headers() {
        if k != header::CONTENT_LENGTH && k != header::TRANSFER_ENCODING {
            out.headers_mut().append(k.clone(), v.clone());
        }
    }
    let kubelet_upgrade = hyper::upgrade::on(resp);
    let shutdown = srv.shutdown.clone();
    tokio::spawn(splice(client_upgrade, kubelet_upgrade, shutdown));
    Ok(out)
}

/// The method the client used, as the kubelet expects it.
fn ctx_method(req: &ResourceRequest) -> http::Method {
    if matches!(req.verb, Verb::Create) { http::Method::POST } else { http::Method::GET }
}

fn text_response(body: impl Into<Body>) -> Response<Body> {
    let mut resp = Response::new(body.into());
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

async fn node_address(srv: &ApiServer, node: &str) -> ApiResult<(String, u16)> {
    let res = rudder_api::catalog::lookup("", "v1", "nodes").ok_or_else(|| ApiError::internal("no nodes resource"))?;
    let key = object::key(res, None, node);
    let kv = crate::handlers::get::load_stored(srv, res, &key, node).await?;
    let obj = from_kv(&kv)?;
    kubelet_address(&obj).ok_or_else(|| ApiError::internal(format!("node {node:?} reports no address for its kubelet")))
}

/// Request headers that make an upgrade, passed on to the kubelet.
fn forwarded(name: &HeaderName) -> bool {
    let n = name.as_str();
    n == "upgrade" || n == "connection" || n == "x-stream-protocol-version" || n.starts_with("sec-websocket-")
}

/// The client's upgrade headers (every value, in order); nothing else (no credentials) goes
/// to the kubelet.
pub fn upgrade_headers(client: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (k, v) in client {
        if forwarded(k) {
            out.append(k.clone(), v.clone());
        }
    }
    out
}

/// Connects to a kubelet over TLS and sends one request; the connection stays open for the
/// body or the upgrade.
async fn dial_kubelet(
    tls: Arc<rustls::ClientConfig>,
    host: &str,
    port: u16,
    method: http::Method,
    path: &str,
    headers: HeaderMap,
) -> anyhow::Result<Response<Incoming>> {
    let server_name = ServerName::try_from(host.to_string()).context("the kubelet's address is not a valid name")?;
    let addr = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => std::net::SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{host}:{port}"),
    };
    let tcp = tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect(&addr))
        .await
        .with_context(|| format!("dial tcp {addr}: i/o timeout"))?
        .with_context(|| format!("dial tcp {addr}"))?;
    let _ = tcp.set_nodelay(true);
    let stream =
        tokio::time::timeout(Duration::from_secs(10), tokio_rustls::TlsConnector::from(tls).connect(server_name, tcp))
            .await
            .context("TLS handshake timeout")?
            .context("TLS handshake with the kubelet failed")?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let authority = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    let mut request = Request::builder().method(method).uri(path).body(Empty::<Bytes>::new())?;
    *request.headers_mut() = headers;
    request.headers_mut().insert(header::HOST, HeaderValue::from_str(&authority)?);
    Ok(sender.send_request(request).await?)
}

/// A kubelet's refusal as a Status: its own Status when it sent one, else its text with the
/// status code's reason.
async fn kubelet_error(resp: Response<Incoming>, name: &str) -> ApiError {
    let code = resp.status().as_u16();
    let body = match Limited::new(resp.into_body(), 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    if let Ok(v) = serde_json::from_slice::<Value>(&body)
        && v["kind"] == "Status"
    {
        let code = v["code"].as_u64().and_then(|c| u16::try_from(c).ok()).unwrap_or(code);
        let mut e = status_error(code, v["message"].as_str().unwrap_or_default().to_string());
        e.details = v.get("details").cloned();
        return e;
    }
    let text = String::from_utf8_lossy(&body).trim().to_string();
    let message = if text.is_empty() {
        format!(
            "the server responded with the status code {code} but did not return more information (get pods {name})"
        )
    } else {
        text
    };
    status_error(code, message)
}

/// An error with a kubelet's status code and message: 500 as upstream's internal errors,
/// others with the code's reason.
fn status_error(code: u16, message: String) -> ApiError {
    if code == 500 {
        return ApiError::internal(message);
    }
    let mut e = ApiError::bad_request(message);
    e.code = code;
    e.reason = reason_for(code);
    e
}

/// Upstream's Status reason for an HTTP status code.
fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

/// Copies bytes both ways between the client and the kubelet until either closes or the API
/// server shuts down.
async fn splice(
    client: hyper::upgrade::OnUpgrade,
    kubelet: hyper::upgrade::OnUpgrade,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let (client, kubelet) = match tokio::try_join!(client, kubelet) {
        Ok(x) => x,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade towards the kubelet failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut kubelet = TokioIo::new(kubelet);
    tokio::select! {
        r = tokio::io::copy_bidirectional(&mut client, &mut kubelet) => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "stream to the kubelet ended with an error");
            }
        }
        _ = shutdown.wait_for(|s| *s) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {
                "nodeName": "n1",
                "initContainers": [{"name": "init"}],
                "containers": [{"name": "a"}, {"name": "b"}],
            },
        })
    }

    #[test]
    fn chooses_the_container_as_upstream() {
        let mut p = pod();
        assert_eq!(choose_container(&p, Some("b"), false).unwrap(), "b");
        assert_eq!(choose_container(&p, Some("init"), true).unwrap(), "init");
        let e = choose_container(&p, Some("zz"), false).unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (400, "container zz is not valid for pod p"));
        let e = choose_container(&p, None, false).unwrap_err();
        assert_eq!(
            e.message,
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [init]"
        );
        let e = choose_container(&p, None, true).unwrap_err();
        assert_eq!(e.message, "a container name must be specified for pod p, choose one of: [init a b]");
        p["metadata"]["annotations"] = json!({"kubectl.kubernetes.io/default-container": "b"});
        assert_eq!(choose_container(&p, None, false).unwrap(), "b");
        let one = json!({"metadata": {"name": "q"}, "spec": {"containers": [{"name": "only"}]}});
        assert_eq!(choose_container(&one, None, true).unwrap(), "only");
    }

    #[test]
    fn checks_that_the_container_has_logs() {
        let mut p = pod();
        let e = check_log_status(&p, "a", false).unwrap_err();
        assert_eq!(e.message, r#"container "a" in pod "p" is not available"#);
        p["status"] = json!({"containerStatuses": [
            {"name": "a", "state": {"waiting": {"reason": "ContainerCreating"}}},
            {"name": "b", "state": {"running": {}}, "containerID": "containerd://1"},
        ]});
        let e = check_log_status(&p, "a", false).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, r#"container "a" in pod "p" is waiting to start: ContainerCreating"#)
        );
        assert!(check_log_status(&p, "b", false).is_ok());
        let e = check_log_status(&p, "b", true).unwrap_err();
        assert_eq!(e.message, r#"previous terminated container "b" in pod "p" not found"#);
        // A crash-looping container shows its last run.
        p["status"]["containerStatuses"][0] = json!({"name": "a",
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "containerID": "containerd://2"}}});
        assert!(check_log_status(&p, "a", false).is_ok());
        assert!(check_log_status(&p, "a", true).is_ok());
        p["status"]["containerStatuses"][0]["state"] = json!({"waiting": {"reason": "ImagePullBackOff"}});
        p["status"]["containerStatuses"][0]["lastState"] = json!({});
        assert_eq!(
            check_log_status(&p, "a", false).unwrap_err().message,
            r#"container "a" in pod "p" is waiting to start: trying and failing to pull image"#
        );
    }

    #[test]
    fn reads_and_validates_log_options() {
        let o = LogOptions::parse(
            Some("container=c&follow=true&tailLines=10&timestamps=1&limitBytes=5&sinceTime=2024-01-01T00:00:00Z"),
            "p",
        )
        .unwrap();
        assert_eq!(o.container.as_deref(), Some("c"));
        assert_eq!(
            o.kubelet_query(),
            "follow=true&timestamps=true&sinceTime=2024-01-01T00%3A00%3A00Z&tailLines=10&limitBytes=5"
        );
        let e = LogOptions::parse(Some("tailLines=-1"), "p").unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            r#"PodLogOptions "p" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0"#
        );
        let e = LogOptions::parse(Some("sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z"), "p").unwrap_err();
        assert_eq!(e.code, 422);
        assert!(e.message.contains("at most one of `sinceTime` or `sinceSeconds` may be specified"), "{}", e.message);
        assert_eq!(LogOptions::parse(Some("limitBytes=0"), "p").unwrap_err().code, 422);
        assert_eq!(LogOptions::parse(Some("follow=perhaps"), "p").unwrap_err().code, 400);
        assert_eq!(LogOptions::parse(Some("sinceTime=yesterday"), "p").unwrap_err().code, 400);
    }

    #[test]
    fn writes_stream_queries_as_upstream() {
        let o = StreamOptions::parse(Some(
            "command=sh&command=-c&command=echo+hi&stdin=true&stdout=true&tty=true&container=c",
        ))
        .unwrap();
        assert_eq!(o.container.as_deref(), Some("c"));
        assert_eq!(o.kubelet_query(), "stdin=1&stdout=1&tty=1&command=sh&command=-c&command=echo+hi");
        assert_eq!(port_forward_query(Some("ports=8080&ports=53,54")).unwrap(), "port=8080%2C53%2C54");
        assert_eq!(port_forward_query(None).unwrap(), "");
        assert_eq!(port_forward_query(Some("ports=0")).unwrap_err().code, 400);
    }

    #[test]
    fn turns_kubelet_refusals_into_statuses() {
        let e = status_error(400, "previous terminated container \"c\" in pod \"p\" not found".into());
        assert_eq!((e.code, e.reason), (400, "BadRequest"));
        let e = status_error(404, "pod \"p\" does not exist".into());
        assert_eq!((e.code, e.reason, e.message.as_str()), (404, "NotFound", "pod \"p\" does not exist"));
        let e = status_error(500, "container not found (\"c\")".into());
        assert_eq!((e.code, e.message.as_str()), (500, "Internal error occurred: container not found (\"c\")"));
        assert_eq!(status_error(403, String::new()).reason, "Forbidden");
        assert_eq!(status_error(418, String::new()).reason, "Unknown");
    }

    #[test]
    fn finds_the_kubelet() {
        let node = json!({"status": {
            "addresses": [{"type": "Hostname", "address": "h"}, {"type": "InternalIP", "address": "10.1.2.3"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10350}},
        }});
        assert_eq!(kubelet_address(&node), Some(("10.1.2.3".to_string(), 10350)));
        let node = json!({"status": {"addresses": [{"type": "Hostname", "address": "h"}]}});
        assert_eq!(kubelet_address(&node), Some(("h".to_string(), DEFAULT_KUBELET_PORT)));
        assert_eq!(kubelet_address(&json!({})), None);
    }

    #[test]
    fn forwards_upgrade_headers_only() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert("sec-websocket-protocol", HeaderValue::from_static("v5.channel.k8s.io"));
        h.append("x-stream-protocol-version", HeaderValue::from_static("v4.channel.k8s.io"));
        h.append("x-stream-protocol-version", HeaderValue::from_static("v3.channel.k8s.io"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        h.insert(header::COOKIE, HeaderValue::from_static("x=y"));
        let out = upgrade_headers(&h);
        assert_eq!(out.len(), 5);
        assert!(out.get(header::AUTHORIZATION).is_none());
        assert_eq!(out.get_all("x-stream-protocol-version").iter().count(), 2);
    }
}
