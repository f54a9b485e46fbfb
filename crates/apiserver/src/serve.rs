//! HTTPS serving: TLS with optional client certificates, HTTP/1.1 and HTTP/2 (by ALPN) on one
//! port, and graceful shutdown that stops accepting, ends watches and drains requests.

use crate::authn::{Authenticator, User};
use anyhow::{Context, Result};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// Builds the TLS server config: the serving chain, and client certificates verified against
/// the cluster CA when offered (requests without one must bring a token).
pub fn tls_config(cert_chain_pem: &str, key_pem: &str, ca_pem: &str) -> Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .context("cannot read the serving certificate")?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .context("cannot read the serving key")?
        .context("no private key in the serving key file")?;
    let mut roots = RootCertStore::empty();
    for ca in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(ca.context("cannot read the CA certificate")?).context("cannot trust the CA certificate")?;
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
        .context("the serving certificate and key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What a handler needs to know about the connection a request came on.
#[derive(Clone, Debug, Default)]
pub struct ConnInfo {
    /// The user of the verified client certificate, if one was presented.
    pub cert_user: Option<User>,
}

/// The request handler the server calls for every request.
pub type Handler = Arc<
    dyn Fn(
            http::Request<axum::body::Body>,
            Arc<ConnInfo>,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = http::Response<axum::body::Body>> + Send>>
        + Send
        + Sync,
>;

/// Accepts connections until `shutdown` turns true, then waits (up to `drain`) for open
/// requests to finish.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    handler: Handler,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = {
        let mut b = auto::Builder::new(TokioExecutor::new());
        b.http2().max_concurrent_streams(1000);
        Arc::new(b)
    };
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let (tcp, _peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let handler = handler.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let cert_user = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|certs| certs.first())
                        .and_then(|c| Authenticator::user_from_certificate(c.as_ref()));
                    let conn = Arc::new(ConnInfo { cert_user });
                    let svc = hyper::service::service_fn(move |req| {
                        let fut = handler(req.map(axum::body::Body::new), conn.clone());
                        async move { Ok::<_, std::convert::Infallible>(fut.await) }
                    });
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!("some connections were still open after the drain period");
    }
}
