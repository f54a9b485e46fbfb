//! The server over real TLS with a fake runtime: authentication, logs, and the upgrade proxy
//! against a local fake streaming server.

use super::*;
use crate::cri::types as api;
use async_trait::async_trait;
use http_body_util::Empty;
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, SanType};
use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A runtime that knows one pod `ns/web` (uid `u1`) with a running container `app` and an
/// exited container `old`; exec and attach answer with `url`.
struct FakeRuntime {
    url: String,
}

fn labels(container: Option<&str>) -> HashMap<String, String> {
    let mut l = HashMap::from([
        (layout::LABEL_POD_NAMESPACE.to_string(), "ns".to_string()),
        (layout::LABEL_POD_NAME.to_string(), "web".to_string()),
        (layout::LABEL_POD_UID.to_string(), "u1".to_string()),
    ]);
    if let Some(c) = container {
        l.insert(layout::LABEL_CONTAINER_NAME.to_string(), c.to_string());
    }
    l
}

fn unsupported<T>() -> anyhow::Result<T> {
    anyhow::bail!("not supported by the fake runtime")
}

#[async_trait]
impl Runtime for FakeRuntime {
    async fn version(&self) -> anyhow::Result<api::VersionResponse> {
        unsupported()
    }
    async fn run_pod_sandbox(&self, _: api::PodSandboxConfig) -> anyhow::Result<String> {
        unsupported()
    }
    async fn stop_pod_sandbox(&self, _: &str) -> anyhow::Result<()> {
        unsupported()
    }
    async fn remove_pod_sandbox(&self, _: &str) -> anyhow::Result<()> {
        unsupported()
    }
    async fn pod_sandbox_status(&self, _: &str) -> anyhow::Result<Option<api::PodSandboxStatus>> {
        unsupported()
    }
    async fn list_pod_sandboxes(&self) -> anyhow::Result<Vec<api::PodSandbox>> {
        Ok(vec![api::PodSandbox {
            id: "sb1".into(),
            state: api::PodSandboxState::SandboxReady as i32,
            labels: labels(None),
            ..Default::default()
        }])
    }
    async fn create_container(
        &self,
        _: &str,
        _: api::ContainerConfig,
        _: api::PodSandboxConfig,
    ) -> anyhow::Result<String> {
        unsupported()
    }
    async fn start_container(&self, _: &str) -> anyhow::Result<()> {
        unsupported()
    }
    async fn stop_container(&self, _: &str, _: i64) -> anyhow::Result<()> {
        unsupported()
    }
    async fn remove_container(&self, _: &str) -> anyhow::Result<()> {
        unsupported()
    }
    async fn list_containers(&self) -> anyhow::Result<Vec<api::Container>> {
        let c = |id: &str, name: &str, state: api::ContainerState| api::Container {
            id: id.into(),
            pod_sandbox_id: "sb1".into(),
            state: state as i32,
            labels: labels(Some(name)),
            annotations: HashMap::from([(layout::ANNOTATION_RESTART_COUNT.to_string(), "1".to_string())]),
            ..Default::default()
        };
        Ok(vec![
            c("c-app", "app", api::ContainerState::ContainerRunning),
            c("c-old", "old", api::ContainerState::ContainerExited),
        ])
    }
    async fn container_status(&self, _: &str) -> anyhow::Result<Option<api::ContainerStatus>> {
        unsupported()
    }
    async fn exec_sync(&self, _: &str, _: Vec<String>, _: i64) -> anyhow::Result<api::ExecSyncResponse> {
        unsupported()
    }
    async fn exec(&self, r: api::ExecRequest) -> anyhow::Result<String> {
        assert_eq!(r.container_id, "c-app");
        assert_eq!(r.cmd, vec!["sh", "-c", "echo hi"]);
        Ok(self.url.clone())
    }
    async fn attach(&self, _: api::AttachRequest) -> anyhow::Result<String> {
        Ok(self.url.clone())
    }
    async fn port_forward(&self, r: api::PortForwardRequest) -> anyhow::Result<String> {
        assert_eq!(r.pod_sandbox_id, "sb1");
        Ok(self.url.clone())
    }
    async fn list_container_stats(&self) -> anyhow::Result<Vec<api::ContainerStats>> {
        Ok(Vec::new())
    }
    async fn image_status(&self, _: &str) -> anyhow::Result<Option<api::Image>> {
        unsupported()
    }
    async fn pull_image(
        &self,
        _: &str,
        _: Option<api::AuthConfig>,
        _: Option<api::PodSandboxConfig>,
    ) -> anyhow::Result<String> {
        unsupported()
    }
    async fn list_images(&self) -> anyhow::Result<Vec<api::Image>> {
        unsupported()
    }
    async fn image_fs_info(&self) -> anyhow::Result<api::ImageFsInfoResponse> {
        unsupported()
    }
}

struct Certs {
    server: ServerTls,
    ca_pem: String,
    apiserver: (String, String),
    stranger: (String, String),
}

fn certs() -> Certs {
    let ca_key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "test-ca");
    p.distinguished_name = dn;
    let ca = p.self_signed(&ca_key).unwrap();
    let ca_pem = ca.pem();
    let issuer = Issuer::new(p, ca_key);
    let leaf = |cn: &str, org: Option<&str>, server: bool| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        if let Some(o) = org {
            dn.push(DnType::OrganizationName, o);
        }
        p.distinguished_name = dn;
        if server {
            p.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
        }
        (p.signed_by(&key, &issuer).unwrap().pem(), key.serialize_pem())
    };
    let (cert_pem, key_pem) = leaf("system:node:n1", Some("system:nodes"), true);
    Certs {
        server: ServerTls { cert_pem, key_pem, client_ca_pem: ca_pem.clone() },
        ca_pem,
        apiserver: leaf(API_SERVER_CLIENT_CN, Some("system:masters"), false),
        stranger: leaf("bob", None, false),
    }
}

fn client_config(ca_pem: &str, identity: Option<&(String, String)>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match identity {
        Some((cert, key)) => {
            let certs = rustls_pemfile::certs(&mut cert.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
            let key = rustls_pemfile::private_key(&mut key.as_bytes()).unwrap().unwrap();
            b.with_client_auth_cert(certs, key).unwrap()
        }
        None => b.with_no_client_auth(),
    })
}

/// Sends one request over a fresh TLS connection.
async fn request(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Response<Incoming> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let stream = tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn.with_upgrades());
    let mut b = Request::builder().method(method).uri(path).header(header::HOST, "127.0.0.1");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    sender.send_request(b.body(Empty::<Bytes>::new()).unwrap()).await.unwrap()
}

async fn body_text(resp: Response<Incoming>) -> String {
    String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

/// A streaming server that switches protocols (to SPDY `v4.channel.k8s.io`) and echoes what
/// it reads; its task gives the request head it received.
async fn fake_streaming_server() -> (String, tokio::task::JoinHandle<String>) {
    fake_streaming_server_answering("v4.channel.k8s.io").await
}

/// `fake_streaming_server`, choosing `protocol`.
async fn fake_streaming_server_answering(protocol: &'static str) -> (String, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/exec/tok", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {protocol}\r\n\r\n"
        );
        s.write_all(answer.as_bytes()).await.unwrap();
        let mut buf = [0u8; 64];
        loop {
            let n = s.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            s.write_all(&buf[..n]).await.unwrap();
        }
        String::from_utf8(head).unwrap()
    });
    (url, task)
}

async fn start(
    url: String,
    logs_root: PathBuf,
) -> (SocketAddr, Certs, watch::Sender<bool>, tokio::task::JoinHandle<Result<()>>) {
    let certs = certs();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = watch::channel(false);
    let runtime: Arc<dyn Runtime> = Arc::new(FakeRuntime { url });
    let server = tokio::spawn(serve(listener, certs.server.clone(), runtime, logs_root, rx));
    (addr, certs, tx, server)
}

#[tokio::test]
async fn authenticates_and_serves_logs() {
    let logs = tempfile::tempdir().unwrap();
    let dir = layout::pod_log_dir(logs.path(), "ns", "web", "u1").join("app");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("0.log"), "2024-05-01T10:00:00Z stdout F first run\n").unwrap();
    std::fs::write(dir.join("1.log"), "2024-05-01T10:01:00Z stdout F second\n2024-05-01T10:01:01Z stderr F run\n")
        .unwrap();
    let (addr, certs, stop, server) = start("http://127.0.0.1:1/unused".into(), logs.path().to_path_buf()).await;
    let anonymous = client_config(&certs.ca_pem, None);
    let apiserver = client_config(&certs.ca_pem, Some(&certs.apiserver));
    let stranger = client_config(&certs.ca_pem, Some(&certs.stranger));

    let r = request(addr, anonymous.clone(), Method::GET, "/healthz", &[]).await;
    assert_eq!((r.status(), body_text(r).await.as_str()), (StatusCode::OK, "ok"));
    let r = request(addr, anonymous, Method::GET, "/containerLogs/ns/web/app", &[]).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = request(addr, stranger, Method::GET, "/containerLogs/ns/web/app", &[]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(body_text(r).await, "Forbidden (user=bob, verb=get, resource=nodes, subresource(s)=[log])");

    let r = request(addr, apiserver.clone(), Method::GET, "/containerLogs/ns/web/app", &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body_text(r).await, "second\nrun\n");
    let r =
        request(addr, apiserver.clone(), Method::GET, "/containerLogs/ns/web/app?previous=true&timestamps=true", &[])
            .await;
    assert_eq!(body_text(r).await, "2024-05-01T10:00:00Z first run\n");
    let r = request(addr, apiserver.clone(), Method::GET, "/containerLogs/ns/web/app?tailLines=1", &[]).await;
    assert_eq!(body_text(r).await, "run\n");
    // The container is running as restart 1: following ends only when told to stop.
    let r = request(addr, apiserver.clone(), Method::GET, "/containerLogs/ns/web/app?follow=true", &[]).await;
    let mut body = r.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"second\nrun\n");
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("1.log"))
        .unwrap()
        .write_all(b"2024-05-01T10:01:02Z stdout F more\n")
        .unwrap();
    let more = tokio::time::timeout(Duration::from_secs(5), body.frame()).await.unwrap().unwrap().unwrap();
    assert_eq!(&more.into_data().unwrap()[..], b"more\n");
    // A newer run's file ends the stream.
    std::fs::write(dir.join("2.log"), "").unwrap();
    assert!(tokio::time::timeout(Duration::from_secs(5), body.frame()).await.unwrap().is_none());

    let r = request(addr, apiserver.clone(), Method::GET, "/containerLogs/ns/web/old?previous=1", &[]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(body_text(r).await, r#"previous terminated container "old" in pod "web" not found"#);
    let r = request(addr, apiserver.clone(), Method::GET, "/containerLogs/ns/nope/app", &[]).await;
    assert_eq!((r.status(), body_text(r).await.as_str()), (StatusCode::NOT_FOUND, r#"pod "nope" does not exist"#));
    let r = request(addr, apiserver.clone(), Method::GET, "/containerLogs/ns/web/app?tailLines=-2", &[]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = request(addr, apiserver.clone(), Method::DELETE, "/containerLogs/ns/web/app", &[]).await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let r = request(addr, apiserver, Method::GET, "/nothing", &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn proxies_upgrades_to_the_runtime() {
    let logs = tempfile::tempdir().unwrap();
    let (url, streaming) = fake_streaming_server().await;
    let (addr, certs, _stop, _server) = start(url, logs.path().to_path_buf()).await;
    let apiserver = client_config(&certs.ca_pem, Some(&certs.apiserver));

    let r = request(
        addr,
        apiserver.clone(),
        Method::POST,
        "/exec/ns/web/app?command=sh&command=-c&command=echo%20hi&stdin=1&stdout=1",
        &[
            ("connection", "Upgrade"),
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "v4.channel.k8s.io"),
            ("x-stream-protocol-version", "v3.channel.k8s.io"),
            ("authorization", "Bearer not-for-the-runtime"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(r.headers().get("x-stream-protocol-version").unwrap(), "v4.channel.k8s.io");
    let mut io = TokioIo::new(hyper::upgrade::on(r).await.unwrap());
    io.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    io.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    drop(io);
    let head = tokio::time::timeout(Duration::from_secs(5), streaming).await.unwrap().unwrap().to_lowercase();
    assert!(
        head.starts_with("post /exec/tok?command=sh&command=-c&command=echo%20hi&stdin=1&stdout=1 http/1.1\r\n"),
        "{head}"
    );
    assert!(head.contains("x-stream-protocol-version: v4.channel.k8s.io\r\n"), "{head}");
    assert!(head.contains("x-stream-protocol-version: v3.channel.k8s.io\r\n"), "{head}");
    assert!(head.contains("upgrade: spdy/3.1\r\n"), "{head}");
    assert!(!head.contains("authorization"), "{head}");

    // Errors before the runtime is asked, as upstream's kubelet.
    let r = request(addr, apiserver.clone(), Method::POST, "/exec/ns/web/old?command=ls&stdout=1", &[]).await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body_text(r).await, r#"container not found ("old")"#);
    let r = request(addr, apiserver.clone(), Method::POST, "/exec/ns/gone/app?command=ls&stdout=1", &[]).await;
    assert_eq!((r.status(), body_text(r).await.as_str()), (StatusCode::NOT_FOUND, "pod does not exist"));
    let r = request(addr, apiserver.clone(), Method::POST, "/exec/ns/web/app?command=ls", &[]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = request(addr, apiserver, Method::POST, "/portForward/ns/web?port=http", &[]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn passes_runtime_refusals_through() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/portforward/tok", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).await;
        s.write_all(
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nbad handshake!",
        )
        .await
        .unwrap();
    });
    let logs = tempfile::tempdir().unwrap();
    let (addr, certs, _stop, _server) = start(url, logs.path().to_path_buf()).await;
    let apiserver = client_config(&certs.ca_pem, Some(&certs.apiserver));
    let r = request(
        addr,
        apiserver,
        Method::GET,
        "/portForward/ns/web",
        &[("upgrade", "websocket"), ("connection", "Upgrade")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(body_text(r).await, "bad handshake!");
}

#[tokio::test]
async fn tunnels_port_forward_websockets_to_spdy() {
    use super::ws::{Message, MessageReader, accept_key, encode_frame, op};
    let logs = tempfile::tempdir().unwrap();
    let (url, streaming) = fake_streaming_server_answering("portforward.k8s.io").await;
    let (addr, certs, _stop, _server) = start(url, logs.path().to_path_buf()).await;
    let apiserver = client_config(&certs.ca_pem, Some(&certs.apiserver));
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let r = request(
        addr,
        apiserver,
        Method::GET,
        "/portForward/ns/web?port=8080",
        &[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", key),
            ("sec-websocket-protocol", "SPDY/3.1+portforward.k8s.io"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(r.headers().get(header::SEC_WEBSOCKET_PROTOCOL).unwrap(), "SPDY/3.1+portforward.k8s.io");
    assert_eq!(r.headers().get(header::SEC_WEBSOCKET_ACCEPT).unwrap(), accept_key(key).as_str());
    assert_eq!(r.headers().get(header::UPGRADE).unwrap(), "websocket");
    let io = TokioIo::new(hyper::upgrade::on(r).await.unwrap());
    let (r, mut w) = tokio::io::split(io);
    let mut messages = MessageReader::new(r);
    // SPDY bytes in binary messages reach the runtime as they are, and come back so.
    w.write_all(&encode_frame(op::BINARY, b"\x80\x03\x00\x06ping", Some([9, 8, 7, 6]))).await.unwrap();
    let mut back = Vec::new();
    while back.len() < 8 {
        match messages.next().await.unwrap() {
            Some(Message::Data(op::BINARY, p)) => back.extend(p),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(back, b"\x80\x03\x00\x06ping");
    w.write_all(&encode_frame(op::CLOSE, &1000u16.to_be_bytes(), Some([1, 1, 1, 1]))).await.unwrap();
    assert_eq!(messages.next().await.unwrap(), Some(Message::Close(1000u16.to_be_bytes().to_vec())));
    let head = tokio::time::timeout(Duration::from_secs(5), streaming).await.unwrap().unwrap().to_lowercase();
    assert!(head.starts_with("post /exec/tok?port=8080 http/1.1\r\n"), "{head}");
    assert!(head.contains("connection: upgrade\r\n"), "{head}");
    assert!(head.contains("upgrade: spdy/3.1\r\n"), "{head}");
    assert!(head.contains("x-stream-protocol-version: portforward.k8s.io\r\n"), "{head}");
    assert!(!head.contains("sec-websocket"), "{head}");
}
