//! A small, fast HTTPS client: one hyper connection (HTTP/1.1 or HTTP/2, chosen by ALPN)
//! over rustls with the ring provider, per benchmark client.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    H1,
    H2,
}

impl Proto {
    pub fn label(self) -> &'static str {
        match self {
            Proto::H1 => "HTTP/1.1",
            Proto::H2 => "HTTP/2",
        }
    }
}

/// Where and how to connect.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// `None` for plain HTTP.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub token: Option<Arc<str>>,
    pub proto: Proto,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn alpn(proto: Proto) -> Vec<Vec<u8>> {
    match proto {
        Proto::H1 => vec![b"http/1.1".to_vec()],
        Proto::H2 => vec![b"h2".to_vec()],
    }
}

/// TLS that trusts only the given CA (PEM).
pub fn tls_trusting(ca_pem: &[u8], proto: Proto) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &ca_pem[..]) {
        roots.add(cert.context("cannot read the CA certificate")?).context("cannot trust the CA certificate")?;
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn(proto);
    Ok(Arc::new(cfg))
}

/// Accepts any server certificate: only for probing `/readyz` of a server whose CA does not
/// exist yet when probing starts.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
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

pub fn tls_any_cert(proto: Proto) -> Result<Arc<rustls::ClientConfig>> {
    let p = provider();
    let mut cfg = rustls::ClientConfig::builder_with_provider(p.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(p)))
        .with_no_client_auth();
    cfg.alpn_protocols = alpn(proto);
    Ok(Arc::new(cfg))
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// One open connection.
pub struct Conn {
    sender: Sender,
    authority: String,
    scheme: &'static str,
    token: Option<Arc<str>>,
}

async fn handshake<I>(io: I, proto: Proto) -> Result<Sender>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    Ok(match proto {
        Proto::H1 => {
            let (sender, conn) = http1::handshake(TokioIo::new(io)).await.context("HTTP/1.1 handshake")?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Sender::H1(sender)
        }
        Proto::H2 => {
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .initial_stream_window_size(4 << 20)
                .initial_connection_window_size(8 << 20)
                .handshake(TokioIo::new(io))
                .await
                .context("HTTP/2 handshake")?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Sender::H2(sender)
        }
    })
}

impl Conn {
    pub async fn open(t: &Target) -> Result<Conn> {
        let tcp = TcpStream::connect(t.addr).await.with_context(|| format!("cannot connect to {}", t.addr))?;
        tcp.set_nodelay(true)?;
        let (sender, scheme) = match &t.tls {
            Some(cfg) => {
                let name = ServerName::IpAddress(t.addr.ip().into());
                let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                    .connect(name, tcp)
                    .await
                    .with_context(|| format!("TLS handshake with {}", t.addr))?;
                let negotiated = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                if t.proto == Proto::H2 && negotiated.as_deref() != Some(b"h2") {
                    bail!("the server at {} did not agree to HTTP/2", t.addr);
                }
                (handshake(tls, t.proto).await?, "https")
            }
            None => (handshake(tcp, t.proto).await?, "http"),
        };
        Ok(Conn { sender, authority: t.addr.to_string(), scheme, token: t.token.clone() })
    }

    /// Sends a request; the response body is left for the caller to read.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<Response<Incoming>> {
        let mut b = Request::builder().method(method);
        b = match self.sender {
            Sender::H1(_) => b.uri(path).header(header::HOST, &self.authority),
            Sender::H2(_) => b.uri(format!("{}://{}{}", self.scheme, self.authority, path)),
        };
        if let Some(t) = &self.token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(ct) = content_type {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        b = b.header(header::ACCEPT, "application/json");
        let req = b.body(Full::new(body))?;
        let resp = match &mut self.sender {
            Sender::H1(s) => {
                s.ready().await.context("connection closed")?;
                s.send_request(req).await?
            }
            Sender::H2(s) => {
                s.ready().await.context("connection closed")?;
                s.send_request(req).await?
            }
        };
        Ok(resp)
    }

    /// Sends a request and reads the whole response.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes)> {
        let resp = self.send(method, path, content_type, body).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.context("reading the response body")?.to_bytes();
        Ok((status, bytes))
    }

    /// A GET that must answer 200.
    pub async fn get_ok(&mut self, path: &str) -> Result<Bytes> {
        let (status, body) = self.call(Method::GET, path, None, Bytes::new()).await?;
        if status != StatusCode::OK {
            bail!("GET {path}: {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
        }
        Ok(body)
    }
}

/// The value of the first `"resourceVersion":"N"` in a JSON object (its own metadata comes
/// before anything nested that could carry one), without parsing the whole document.
pub fn first_resource_version(json: &[u8]) -> Option<u64> {
    const NEEDLE: &[u8] = b"\"resourceVersion\":\"";
    let at = json.windows(NEEDLE.len()).position(|w| w == NEEDLE)? + NEEDLE.len();
    let rest = &json[at..];
    let end = rest.iter().position(|&c| c == b'"')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// The `metadata.continue` token of a list, looked for only before `"items"`.
pub fn continue_token(list: &[u8]) -> Option<String> {
    let head_end = list.windows(8).position(|w| w == b"\"items\":").unwrap_or(list.len().min(4096));
    let head = &list[..head_end];
    const NEEDLE: &[u8] = b"\"continue\":\"";
    let at = head.windows(NEEDLE.len()).position(|w| w == NEEDLE)? + NEEDLE.len();
    let rest = &head[at..];
    let end = rest.iter().position(|&c| c == b'"')?;
    let token = std::str::from_utf8(&rest[..end]).ok()?.to_string();
    (!token.is_empty()).then_some(token)
}
