//! Container probes (exec, httpGet, tcpSocket, grpc) run the way upstream's prober runs them,
//! with upstream's failure messages, and [`ProbeState`], the bookkeeping of when a probe is
//! due and when its thresholds flip the container's readiness/liveness/startup result.

use crate::cri::Runtime;
use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Container, HTTPGetAction, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The version reported in the probes' `User-Agent: kube-probe/<version>`.
pub const PROBE_USER_AGENT: &str = "kube-probe/1.33";
/// Redirects an HTTP probe follows (to the same host) before giving up.
const MAX_REDIRECTS: usize = 10;

/// The result of running a probe once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The container passed.
    Success,
    /// The container failed; the message says why (upstream's wording).
    Failure(String),
}

impl ProbeOutcome {
    /// Whether this is a success.
    pub fn is_success(&self) -> bool {
        matches!(self, ProbeOutcome::Success)
    }
}

/// What a probe runs against.
pub struct ProbeTarget<'a> {
    /// The pod's IP, the default host of network probes.
    pub pod_ip: Option<&'a str>,
    /// The container's spec (named ports, env for exec command expansion).
    pub container: &'a Container,
    /// The runtime's id of the container (for exec probes).
    pub container_id: &'a str,
    /// The runtime (for exec probes).
    pub runtime: &'a dyn Runtime,
}

/// The probe's timeout (`timeoutSeconds`, default and minimum 1s).
pub fn probe_timeout(probe: &Probe) -> Duration {
    Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64)
}

/// Runs `probe` once against `ctx`, bounded by its `timeoutSeconds`.
pub async fn probe(probe: &Probe, ctx: &ProbeTarget<'_>) -> ProbeOutcome {
    let timeout = probe_timeout(probe);
    if let Some(exec) = &probe.exec {
        exec_probe(exec.command.as_deref().unwrap_or_default(), timeout, ctx).await
    } else if let Some(action) = &probe.http_get {
        http_probe(action, timeout, ctx).await
    } else if let Some(action) = &probe.tcp_socket {
        let host = match action.host.as_deref().filter(|h| !h.is_empty()).or(ctx.pod_ip) {
            Some(host) => host,
            None => return ProbeOutcome::Failure("pod has no IP address yet".into()),
        };
        match resolve_port(&action.port, ctx.container) {
            Ok(port) => tcp_probe(host, port, timeout).await,
            Err(message) => ProbeOutcome::Failure(message),
        }
    } else if let Some(action) = &probe.grpc {
        let Some(host) = ctx.pod_ip else {
            return ProbeOutcome::Failure("pod has no IP address yet".into());
        };
        let Ok(port) = u16::try_from(action.port) else {
            return ProbeOutcome::Failure(format!("invalid port number: {}", action.port));
        };
        grpc_probe(host, port, action.service.as_deref().unwrap_or(""), timeout).await
    } else {
        ProbeOutcome::Failure("missing probe handler".into())
    }
}

/// The port a probe names: a number, or the name of one of the container's ports.
fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(name) => match name.parse::<i64>() {
            Ok(n) => n,
            Err(_) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| i64::from(p.container_port))
                .ok_or_else(|| format!("couldn't find port: {name} in {}", container.name))?,
        },
    };
    u16::try_from(number).ok().filter(|n| *n > 0).ok_or_else(|| format!("invalid port number: {number}"))
}

/// `host:port`, with IPv6 literals bracketed.
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// Go's wording of an OS error: `connection refused`, `no route to host`, ...
fn os_error_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error ") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Upstream's message for a failed TCP dial.
fn dial_error(addr: &str, e: &std::io::Error) -> String {
    if e.raw_os_error().is_some() {
        format!("dial tcp {addr}: connect: {}", os_error_text(e))
    } else {
        format!("dial tcp {addr}: {}", os_error_text(e))
    }
}

/// Connects to `host:port` within `timeout`, with upstream's error wording.
async fn dial(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let addr = join_host_port(host, port);
    match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(dial_error(&addr, &e)),
        Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
    }
}

/// A tcpSocket probe: success when a connection opens.
pub async fn tcp_probe(host: &str, port: u16, timeout: Duration) -> ProbeOutcome {
    match dial(host, port, timeout).await {
        Ok(_) => ProbeOutcome::Success,
        Err(message) => ProbeOutcome::Failure(message),
    }
}

/// An exec probe: the command (with `$(VAR)` expanded from the container's literal env) run by
/// the runtime; a non-zero exit fails with the command's output.
async fn exec_probe(command: &[String], timeout: Duration, ctx: &ProbeTarget<'_>) -> ProbeOutcome {
    let env: Vec<(String, String)> =
        ctx.container.env.iter().flatten().map(|v| (v.name.clone(), v.value.clone().unwrap_or_default())).collect();
    let command: Vec<String> = command.iter().map(|c| crate::env::expand(c, &env)).collect();
    let timed_out = || ProbeOutcome::Failure(format!("command {:?} timed out", command.join(" ")));
    // The runtime enforces the timeout itself; a little grace covers a runtime that does not.
    let call = ctx.runtime.exec_sync(ctx.container_id, command.clone(), timeout.as_secs() as i64);
    match tokio::time::timeout(timeout + Duration::from_secs(2), call).await {
        Err(_) => timed_out(),
        Ok(Err(e)) => {
            let message = format!("{e:#}");
            if message.contains("DeadlineExceeded")
                || message.contains("deadline exceeded")
                || message.contains("timeout")
            {
                timed_out()
            } else {
                ProbeOutcome::Failure(message)
            }
        }
        Ok(Ok(response)) if response.exit_code == 0 => ProbeOutcome::Success,
        Ok(Ok(response)) => {
            let mut output = response.stdout;
            output.extend_from_slice(&response.stderr);
            ProbeOutcome::Failure(String::from_utf8_lossy(&output).into_owned())
        }
    }
}

/// Where an HTTP probe request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HttpTarget {
    https: bool,
    host: String,
    port: u16,
    /// Path and query, starting with `/` (or empty for the root).
    path: String,
}

impl HttpTarget {
    fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }

    fn authority(&self) -> String {
        join_host_port(&self.host, self.port)
    }

    fn url(&self) -> String {
        format!("{}://{}{}", self.scheme(), self.authority(), self.path)
    }

    /// The target a `Location` header points at, relative to this one.
    fn follow(&self, location: &str) -> Option<HttpTarget> {
        if location.contains("://") {
            let uri: Uri = location.parse().ok()?;
            let https = match uri.scheme_str()? {
                "http" => false,
                "https" => true,
                _ => return None,
            };
            let host = uri.host()?.trim_start_matches('[').trim_end_matches(']').to_string();
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            let path = uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
            return Some(HttpTarget { https, host, port, path });
        }
        if let Some(rest) = location.strip_prefix("//") {
            return self.follow(&format!("{}://{rest}", self.scheme()));
        }
        let path = if location.starts_with('/') {
            location.to_string()
        } else {
            let current = self.path.split('?').next().unwrap_or("");
            let dir = current.rfind('/').map(|i| &current[..=i]).unwrap_or("/");
            format!("{dir}{location}")
        };
        Some(HttpTarget { path, ..self.clone() })
    }
}

/// An httpGet probe: status 200-399 passes; redirects to the same host are followed, a redirect
/// elsewhere counts as success (upstream's warning case).
async fn http_probe(action: &HTTPGetAction, timeout: Duration, ctx: &ProbeTarget<'_>) -> ProbeOutcome {
    let host = match action.host.as_deref().filter(|h| !h.is_empty()).or(ctx.pod_ip) {
        Some(host) => host.to_string(),
        None => return ProbeOutcome::Failure("pod has no IP address yet".into()),
    };
    let port = match resolve_port(&action.port, ctx.container) {
        Ok(port) => port,
        Err(message) => return ProbeOutcome::Failure(message),
    };
    let https = action.scheme.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("HTTPS"));
    let mut path = action.path.clone().unwrap_or_default();
    if !path.is_empty() && !path.starts_with('/') {
        path.insert(0, '/');
    }
    let target = HttpTarget { https, host, port, path };
    let headers: Vec<(String, String)> =
        action.http_headers.iter().flatten().map(|h| (h.name.clone(), h.value.clone())).collect();
    let first_url = target.url();
    match tokio::time::timeout(timeout, http_get_following(target, &headers, timeout)).await {
        Ok(outcome) => outcome,
        Err(_) => ProbeOutcome::Failure(format!(
            "Get {first_url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
    }
}

async fn http_get_following(first: HttpTarget, headers: &[(String, String)], timeout: Duration) -> ProbeOutcome {
    let mut target = first.clone();
    for hop in 0..=MAX_REDIRECTS {
        let url = target.url();
        let response = match http_get_once(&target, headers, timeout).await {
            Ok(response) => response,
            Err(message) => return ProbeOutcome::Failure(format!("Get {url:?}: {message}")),
        };
        let status = response.status();
        if status.is_redirection() {
            let next = response
                .headers()
                .get(http::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| target.follow(l));
            if let Some(next) = next {
                if next.host != first.host {
                    // Not followed: the redirect itself counts as a (warning) success.
                    return ProbeOutcome::Success;
                }
                if hop == MAX_REDIRECTS {
                    break;
                }
                target = next;
                continue;
            }
        }
        let code = status.as_u16();
        return if (200..400).contains(&code) {
            ProbeOutcome::Success
        } else {
            ProbeOutcome::Failure(format!("HTTP probe failed with statuscode: {code}"))
        };
    }
    ProbeOutcome::Failure(format!("Get {:?}: stopped after {MAX_REDIRECTS} redirects", target.url()))
}

/// One GET request on a fresh connection; the error is the part after `Get "<url>": `.
async fn http_get_once(
    target: &HttpTarget,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<http::Response<hyper::body::Incoming>, String> {
    let path = if target.path.is_empty() { "/" } else { target.path.as_str() };
    let mut request = Request::get(path);
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    if !has("host") {
        request = request.header(http::header::HOST, target.authority());
    }
    if !has("user-agent") {
        request = request.header(http::header::USER_AGENT, PROBE_USER_AGENT);
    }
    if !has("accept") {
        request = request.header(http::header::ACCEPT, "*/*");
    }
    request = request.header(http::header::CONNECTION, "close");
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request.body(Empty::<Bytes>::new()).map_err(|e| format!("invalid request: {e}"))?;
    let stream = dial(&target.host, target.port, timeout).await?;
    if target.https {
        let connector = tokio_rustls::TlsConnector::from(insecure_tls_config());
        let name = rustls::pki_types::ServerName::try_from(target.host.clone())
            .map_err(|e| format!("invalid server name {:?}: {e}", target.host))?;
        let tls = connector.connect(name, stream).await.map_err(|e| format!("tls: {e}"))?;
        send(tls, request).await
    } else {
        send(stream, request).await
    }
}

async fn send<T>(io: T, request: Request<Empty<Bytes>>) -> Result<http::Response<hyper::body::Incoming>, String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(|e| error_chain(&e))?;
    tokio::spawn(async move {
        // The connection ends when the response is dropped or the peer closes; errors after the
        // status line do not matter to a probe.
        let _ = connection.await;
    });
    sender.send_request(request).await.map_err(|e| error_chain(&e))
}

/// An error and its sources joined by `: `.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// A TLS client config that accepts any server certificate, like upstream's HTTPS probes
/// (`InsecureSkipVerify`).
fn insecure_tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let verifier = Arc::new(AcceptAnyCert(provider.clone()));
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        })
        .clone()
}

/// Certificate "verification" that accepts everything, but still checks handshake signatures
/// so the session keys belong to whoever presented the certificate.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckRequest {
    /// The service to check; empty for the server as a whole.
    #[prost(string, tag = "1")]
    pub service: String,
}

/// `grpc.health.v1.HealthCheckResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckResponse {
    /// 0 UNKNOWN, 1 SERVING, 2 NOT_SERVING, 3 SERVICE_UNKNOWN.
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// The name of a `HealthCheckResponse.ServingStatus` value.
fn serving_status_name(status: i32) -> String {
    match status {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        other => other.to_string(),
    }
}

/// Go's `time.Duration` text for whole seconds (`1s`, `1m30s`, `1h0m0s`).
fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, min, sec) => format!("{min}m{sec}s"),
        (h, min, sec) => format!("{h}h{min}m{sec}s"),
    }
}

/// A grpc probe: `grpc.health.v1.Health/Check` with `service`; SERVING passes.
pub async fn grpc_probe(host: &str, port: u16, service: &str, timeout: Duration) -> ProbeOutcome {
    let addr = join_host_port(host, port);
    let within = go_duration(timeout);
    let call = async {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| format!("error: failed to connect service at {addr:?}: {e}"))?
            .connect_timeout(timeout)
            .timeout(timeout);
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("error: failed to connect service at {addr:?}: {}", error_chain(&e)))?;
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.map_err(|e| format!("error: failed to connect service at {addr:?}: {}", error_chain(&e)))?;
        let path = http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Check");
        let codec = tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default();
        let request = tonic::Request::new(HealthCheckRequest { service: service.to_string() });
        grpc.unary(request, path, codec).await.map(tonic::Response::into_inner).map_err(|status| match status.code() {
            tonic::Code::Unimplemented => format!(
                "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
                status.message()
            ),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                format!("timeout: health rpc did not complete within {within}")
            }
            _ => format!(
                "error: health rpc probe failed: rpc error: code = {:?} desc = {}",
                status.code(),
                status.message()
            ),
        })
    };
    match tokio::time::timeout(timeout, call).await {
        Err(_) => ProbeOutcome::Failure(format!("timeout: health rpc did not complete within {within}")),
        Ok(Err(message)) => ProbeOutcome::Failure(message),
        Ok(Ok(response)) if response.status == 1 => ProbeOutcome::Success,
        Ok(Ok(response)) => ProbeOutcome::Failure(format!(
            "service unhealthy (responded with {:?})",
            serving_status_name(response.status)
        )),
    }
}

/// When a probe runs and what its thresholds make of the results: the container's result
/// is set only after `successThreshold` successes or `failureThreshold` failures in a row.
/// The initial result is provisional: the first threshold reached is always reported, even
/// when it agrees with it (so a startup probe that never passes reports `false`), and after
/// that only changes are.
#[derive(Debug, Clone)]
pub struct ProbeState {
    period: Duration,
    success_threshold: u32,
    failure_threshold: u32,
    next: Instant,
    result: bool,
    settled: bool,
    last: Option<bool>,
    streak: u32,
}

impl ProbeState {
    /// The state of `probe` for a container that started at `started`, with `initial` as the
    /// result until a threshold is reached (upstream: readiness and startup false, liveness
    /// true). The first run is due `initialDelaySeconds` after the start, then every
    /// `periodSeconds` (default 10); thresholds default to 1 success and 3 failures.
    pub fn new(probe: &Probe, started: Instant, initial: bool) -> Self {
        let seconds = |v: Option<i32>, default: i32| Duration::from_secs(v.unwrap_or(default).max(0) as u64);
        ProbeState {
            period: seconds(probe.period_seconds, 10).max(Duration::from_secs(1)),
            success_threshold: probe.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: probe.failure_threshold.unwrap_or(3).max(1) as u32,
            next: started + seconds(probe.initial_delay_seconds, 0),
            result: initial,
            settled: false,
            last: None,
            streak: 0,
        }
    }

    /// Whether a run is due at `now`. A `true` claims the run: the next one is then due a
    /// period later, so the caller must run the probe and [`record`](Self::record) it.
    pub fn due(&mut self, now: Instant) -> bool {
        if now < self.next {
            return false;
        }
        self.next = now + self.period;
        true
    }

    /// When the next run is due.
    pub fn next_due(&self) -> Instant {
        self.next
    }

    /// The current result (ready / alive / started).
    pub fn result(&self) -> bool {
        self.result
    }

    /// Counts a run's outcome; `Some(result)` when a threshold is reached for the first time
    /// or flips the result.
    pub fn record(&mut self, outcome: &ProbeOutcome) -> Option<bool> {
        let success = outcome.is_success();
        if self.last == Some(success) {
            self.streak = self.streak.saturating_add(1);
        } else {
            self.last = Some(success);
            self.streak = 1;
        }
        let threshold = if success { self.success_threshold } else { self.failure_threshold };
        if self.streak < threshold || (self.settled && self.result == success) {
            return None;
        }
        self.settled = true;
        self.result = success;
        Some(success)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cri::types as api;
    use anyhow::Result;
    use async_trait::async_trait;
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A runtime that only answers ExecSync with a canned response.
    struct FakeExec {
        exit_code: i32,
        delay: Duration,
        seen: parking_lot::Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Runtime for FakeExec {
        async fn version(&self) -> Result<api::VersionResponse> {
            unimplemented!()
        }
        async fn run_pod_sandbox(&self, _: api::PodSandboxConfig) -> Result<String> {
            unimplemented!()
        }
        async fn stop_pod_sandbox(&self, _: &str) -> Result<()> {
            unimplemented!()
        }
        async fn remove_pod_sandbox(&self, _: &str) -> Result<()> {
            unimplemented!()
        }
        async fn pod_sandbox_status(&self, _: &str) -> Result<Option<api::PodSandboxStatus>> {
            unimplemented!()
        }
        async fn list_pod_sandboxes(&self) -> Result<Vec<api::PodSandbox>> {
            unimplemented!()
        }
        async fn create_container(&self, _: &str, _: api::ContainerConfig, _: api::PodSandboxConfig) -> Result<String> {
            unimplemented!()
        }
        async fn start_container(&self, _: &str) -> Result<()> {
            unimplemented!()
        }
        async fn stop_container(&self, _: &str, _: i64) -> Result<()> {
            unimplemented!()
        }
        async fn remove_container(&self, _: &str) -> Result<()> {
            unimplemented!()
        }
        async fn list_containers(&self) -> Result<Vec<api::Container>> {
            unimplemented!()
        }
        async fn container_status(&self, _: &str) -> Result<Option<api::ContainerStatus>> {
            unimplemented!()
        }
        async fn exec_sync(&self, id: &str, cmd: Vec<String>, timeout: i64) -> Result<api::ExecSyncResponse> {
            self.seen.lock().push(format!("{id} {timeout} {}", cmd.join(" ")));
            tokio::time::sleep(self.delay).await;
            Ok(api::ExecSyncResponse { stdout: b"out;".to_vec(), stderr: b"err".to_vec(), exit_code: self.exit_code })
        }
        async fn exec(&self, _: api::ExecRequest) -> Result<String> {
            unimplemented!()
        }
        async fn attach(&self, _: api::AttachRequest) -> Result<String> {
            unimplemented!()
        }
        async fn port_forward(&self, _: api::PortForwardRequest) -> Result<String> {
            unimplemented!()
        }
        async fn list_container_stats(&self) -> Result<Vec<api::ContainerStats>> {
            unimplemented!()
        }
        async fn image_status(&self, _: &str) -> Result<Option<api::Image>> {
            unimplemented!()
        }
        async fn pull_image(
            &self,
            _: &str,
            _: Option<api::AuthConfig>,
            _: Option<api::PodSandboxConfig>,
        ) -> Result<String> {
            unimplemented!()
        }
        async fn list_images(&self) -> Result<Vec<api::Image>> {
            unimplemented!()
        }
        async fn image_fs_info(&self) -> Result<api::ImageFsInfoResponse> {
            unimplemented!()
        }
    }

    fn fake(exit_code: i32) -> FakeExec {
        FakeExec { exit_code, delay: Duration::ZERO, seen: Default::default() }
    }

    fn container() -> Container {
        serde_json::from_value(json!({
            "name": "app",
            "env": [{"name": "FILE", "value": "/tmp/healthy"}],
            "ports": [{"name": "web", "containerPort": 8080}]
        }))
        .unwrap()
    }

    fn probe_of(value: serde_json::Value) -> Probe {
        serde_json::from_value(value).unwrap()
    }

    async fn run(p: &Probe, pod_ip: Option<&str>, runtime: &dyn Runtime) -> ProbeOutcome {
        let c = container();
        probe(p, &ProbeTarget { pod_ip, container: &c, container_id: "cid", runtime }).await
    }

    #[tokio::test]
    async fn exec_probes() {
        let p = probe_of(json!({"exec": {"command": ["cat", "$(FILE)"]}, "timeoutSeconds": 3}));
        let ok = fake(0);
        assert_eq!(run(&p, None, &ok).await, ProbeOutcome::Success);
        assert_eq!(ok.seen.lock().as_slice(), ["cid 3 cat /tmp/healthy"]);
        assert_eq!(run(&p, None, &fake(1)).await, ProbeOutcome::Failure("out;err".into()));
        let slow = FakeExec { exit_code: 0, delay: Duration::from_secs(60), seen: Default::default() };
        let p = probe_of(json!({"exec": {"command": ["sleep", "9"]}}));
        assert_eq!(run(&p, None, &slow).await, ProbeOutcome::Failure("command \"sleep 9\" timed out".into()));
    }

    /// Serves canned HTTP/1.1 responses, one per connection: `responses(path)` gives status
    /// line tail and extra headers. Returns the port and the recorded request heads.
    async fn http_server(responses: fn(&str) -> (u16, String)) -> (u16, Arc<parking_lot::Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else { return };
                let log = log.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        let n = socket.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        head.extend_from_slice(&buf[..n]);
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                    log.lock().push(head);
                    let (code, extra) = responses(&path);
                    let reply = format!("HTTP/1.1 {code} X\r\ncontent-length: 2\r\nconnection: close\r\n{extra}\r\nok");
                    let _ = socket.write_all(reply.as_bytes()).await;
                });
            }
        });
        (port, seen)
    }

    fn routes(path: &str) -> (u16, String) {
        match path {
            "/healthz" => (200, String::new()),
            "/bad" => (500, String::new()),
            "/moved" => (302, "location: /healthz\r\n".into()),
            "/away" => (301, "location: http://example.invalid/x\r\n".into()),
            "/loop" => (302, "location: /loop\r\n".into()),
            "/slow" => (200, String::new()),
            _ => (404, String::new()),
        }
    }

    #[tokio::test]
    async fn http_probes() {
        let (port, seen) = http_server(routes).await;
        let runtime = fake(0);
        let get = |path: &str, port: serde_json::Value| {
            probe_of(json!({"httpGet": {"path": path, "port": port,
                "httpHeaders": [{"name": "X-Custom", "value": "yes"}]}}))
        };
        assert_eq!(run(&get("/healthz", json!(port)), Some("127.0.0.1"), &runtime).await, ProbeOutcome::Success);
        let head = seen.lock()[0].to_lowercase();
        assert!(head.starts_with("get /healthz http/1.1\r\n"), "{head}");
        assert!(head.contains("user-agent: kube-probe/1.33"), "{head}");
        assert!(head.contains("x-custom: yes"), "{head}");
        assert!(head.contains(&format!("host: 127.0.0.1:{port}")), "{head}");
        assert_eq!(
            run(&get("/bad", json!(port)), Some("127.0.0.1"), &runtime).await,
            ProbeOutcome::Failure("HTTP probe failed with statuscode: 500".into())
        );
        assert_eq!(run(&get("/moved", json!(port)), Some("127.0.0.1"), &runtime).await, ProbeOutcome::Success);
        assert!(seen.lock().iter().any(|h| h.starts_with("GET /moved")));
        assert_eq!(run(&get("/away", json!(port)), Some("127.0.0.1"), &runtime).await, ProbeOutcome::Success);
        assert_eq!(
            run(&get("/loop", json!(port)), Some("127.0.0.1"), &runtime).await,
            ProbeOutcome::Failure(format!("Get \"http://127.0.0.1:{port}/loop\": stopped after 10 redirects"))
        );
        // A named port that the container does not have.
        assert_eq!(
            run(&get("/healthz", json!("metrics")), Some("127.0.0.1"), &runtime).await,
            ProbeOutcome::Failure("couldn't find port: metrics in app".into())
        );
        // Nobody listens on a just-closed port.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
        assert_eq!(
            run(&get("/healthz", json!(closed)), Some("127.0.0.1"), &runtime).await,
            ProbeOutcome::Failure(format!(
                "Get \"http://127.0.0.1:{closed}/healthz\": dial tcp 127.0.0.1:{closed}: connect: connection refused"
            ))
        );
    }

    #[tokio::test]
    async fn http_probe_times_out_on_silent_server() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let p = probe_of(json!({"httpGet": {"path": "/h", "port": port}, "timeoutSeconds": 1}));
        assert_eq!(
            run(&p, Some("127.0.0.1"), &fake(0)).await,
            ProbeOutcome::Failure(format!(
                "Get \"http://127.0.0.1:{port}/h\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            ))
        );
    }

    #[tokio::test]
    async fn https_probe_skips_verification() {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let Ok(mut tls) = acceptor.accept(socket).await else { continue };
                let mut buf = [0u8; 1024];
                let _ = tls.read(&mut buf).await;
                let _ = tls.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n").await;
                let _ = tls.shutdown().await;
            }
        });
        let p = probe_of(json!({"httpGet": {"scheme": "HTTPS", "path": "/", "port": "web", "host": "127.0.0.1"}}));
        let c: Container =
            serde_json::from_value(json!({"name": "app", "ports": [{"name": "web", "containerPort": port}]})).unwrap();
        let runtime = fake(0);
        let outcome =
            probe(&p, &ProbeTarget { pod_ip: None, container: &c, container_id: "x", runtime: &runtime }).await;
        assert_eq!(outcome, ProbeOutcome::Success);
    }

    #[tokio::test]
    async fn tcp_probes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let p = probe_of(json!({"tcpSocket": {"port": port}}));
        assert_eq!(run(&p, Some("127.0.0.1"), &fake(0)).await, ProbeOutcome::Success);
        drop(listener);
        assert_eq!(
            run(&p, Some("127.0.0.1"), &fake(0)).await,
            ProbeOutcome::Failure(format!("dial tcp 127.0.0.1:{port}: connect: connection refused"))
        );
        assert_eq!(run(&p, None, &fake(0)).await, ProbeOutcome::Failure("pod has no IP address yet".into()));
    }

    /// A gRPC health server answering every Check with a fixed status.
    #[derive(Clone)]
    struct Health(i32);

    impl tonic::server::NamedService for Health {
        const NAME: &'static str = "grpc.health.v1.Health";
    }

    struct Check(i32);

    impl tonic::server::UnaryService<HealthCheckRequest> for Check {
        type Response = HealthCheckResponse;
        type Future = futures::future::Ready<Result<tonic::Response<HealthCheckResponse>, tonic::Status>>;
        fn call(&mut self, request: tonic::Request<HealthCheckRequest>) -> Self::Future {
            futures::future::ready(if request.get_ref().service == "unknown" {
                Err(tonic::Status::not_found("unknown service"))
            } else {
                Ok(tonic::Response::new(HealthCheckResponse { status: self.0 }))
            })
        }
    }

    impl tower::Service<http::Request<tonic::body::Body>> for Health {
        type Response = http::Response<tonic::body::Body>;
        type Error = std::convert::Infallible;
        type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

        fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
            let status = self.0;
            Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.unary(Check(status), request).await)
            })
        }
    }

    async fn grpc_server(status: i32) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tokio::spawn(tonic::transport::Server::builder().add_service(Health(status)).serve_with_incoming(incoming));
        port
    }

    #[tokio::test]
    async fn grpc_probes() {
        let serving = grpc_server(1).await;
        let not_serving = grpc_server(2).await;
        let runtime = fake(0);
        let p = |port: u16, service: &str| probe_of(json!({"grpc": {"port": port, "service": service}}));
        assert_eq!(run(&p(serving, ""), Some("127.0.0.1"), &runtime).await, ProbeOutcome::Success);
        assert_eq!(
            run(&p(not_serving, ""), Some("127.0.0.1"), &runtime).await,
            ProbeOutcome::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
        );
        assert_eq!(
            run(&p(serving, "unknown"), Some("127.0.0.1"), &runtime).await,
            ProbeOutcome::Failure(
                "error: health rpc probe failed: rpc error: code = NotFound desc = unknown service".into()
            )
        );
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
        let ProbeOutcome::Failure(message) = run(&p(closed, ""), Some("127.0.0.1"), &runtime).await else {
            panic!("probe of a closed port succeeded")
        };
        assert!(
            message.starts_with(&format!("error: failed to connect service at \"127.0.0.1:{closed}\"")),
            "{message}"
        );
    }

    #[test]
    fn redirect_targets() {
        let t = HttpTarget { https: false, host: "10.0.0.1".into(), port: 80, path: "/a/b?x=1".into() };
        assert_eq!(t.follow("/c").unwrap().url(), "http://10.0.0.1:80/c");
        assert_eq!(t.follow("c").unwrap().url(), "http://10.0.0.1:80/a/c");
        assert_eq!(t.follow("https://[fd00::1]/z").unwrap().url(), "https://[fd00::1]:443/z");
        assert_eq!(t.follow("//other:81/q").unwrap().url(), "http://other:81/q");
        assert_eq!(go_duration(Duration::from_secs(1)), "1s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
    }

    #[test]
    fn thresholds_and_schedule() {
        let p = probe_of(
            json!({"initialDelaySeconds": 5, "periodSeconds": 2, "successThreshold": 2, "failureThreshold": 2,
                                 "exec": {"command": ["true"]}}),
        );
        let start = Instant::now();
        let mut state = ProbeState::new(&p, start, false);
        assert!(!state.due(start));
        assert!(!state.due(start + Duration::from_secs(4)));
        assert!(state.due(start + Duration::from_secs(5)));
        assert!(!state.due(start + Duration::from_secs(6)));
        assert!(state.due(start + Duration::from_secs(7)));
        assert_eq!(state.next_due(), start + Duration::from_secs(9));

        let fail = ProbeOutcome::Failure("no".into());
        assert!(!state.result());
        assert_eq!(state.record(&ProbeOutcome::Success), None);
        assert_eq!(state.record(&fail), None);
        assert_eq!(state.record(&ProbeOutcome::Success), None);
        assert_eq!(state.record(&ProbeOutcome::Success), Some(true));
        assert!(state.result());
        assert_eq!(state.record(&ProbeOutcome::Success), None);
        assert_eq!(state.record(&fail), None);
        assert_eq!(state.record(&fail), Some(false));
        assert_eq!(state.record(&fail), None);

        // Defaults: period 10s, one success, three failures. A startup probe (initially
        // false) that keeps failing reports false once.
        let p = probe_of(json!({"tcpSocket": {"port": 80}}));
        let mut state = ProbeState::new(&p, start, false);
        assert!(state.due(start));
        assert_eq!(state.next_due(), start + Duration::from_secs(10));
        assert_eq!(state.record(&fail), None);
        assert_eq!(state.record(&fail), None);
        assert_eq!(state.record(&fail), Some(false));
        assert_eq!(state.record(&fail), None);
        assert_eq!(state.record(&ProbeOutcome::Success), Some(true));
        // Liveness (initially true): failures flip it.
        let mut live = ProbeState::new(&p, start, true);
        assert_eq!(live.record(&fail), None);
        assert_eq!(live.record(&fail), None);
        assert_eq!(live.record(&fail), Some(false));
    }
}
