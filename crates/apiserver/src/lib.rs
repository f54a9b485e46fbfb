//! The Rudder API server: the Kubernetes REST API over MVCC storage.
//!
//! Startup (one ordered function, [`start`]): data dir → certificates and tokens (`pki`) →
//! store (`rudder-store`) → default namespaces → watch cache (`cache`) → HTTPS listener
//! (`serve`) → the `kubernetes` Service and its endpoints (`kubernetes_service`, repaired
//! periodically) → admin kubeconfig, written only once the server is ready.
//!
//! Request path (`server`): panic recovery → route (`request`) → authentication (`authn`) →
//! verb handler (`handlers/`, one verb per file) → shared write pipeline (`registry`) → store.
//! Errors are `Status` objects (`status`). Authorization, admission and flow control slot in
//! between authentication and the handlers.

pub mod admission;
pub mod authn;
pub mod cache;
pub mod decode;
pub mod handlers;
pub mod jwt;
pub mod kubernetes_service;
pub mod local;
pub mod negotiate;
pub mod object;
pub mod openapi;
pub mod pki;
pub mod printers;
pub mod registry;
pub mod request;
pub mod serve;
pub mod server;
pub mod services;
pub mod status;

use anyhow::{Context, Result, bail};
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;

/// Settings of `rudder server`'s API server.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where state, certificates and the kubeconfig live.
    pub data_dir: PathBuf,
    /// Address to listen on.
    pub bind_address: IpAddr,
    /// Address other machines and pods reach the API at: the `kubernetes` Service's endpoint and
    /// a name in the serving certificate. `None` is the bind address, or loopback when that is
    /// unspecified.
    pub advertise_address: Option<IpAddr>,
    /// Port; 0 picks a free one.
    pub https_port: u16,
    /// An external datastore (etcd), when given.
    pub datastore_endpoint: Option<String>,
    /// How often old revisions are compacted.
    pub compaction_interval: Duration,
    /// How long shutdown waits for open requests.
    pub drain_timeout: Duration,
}

impl Config {
    /// Defaults for a data dir.
    pub fn new(data_dir: PathBuf) -> Self {
        Config {
            data_dir,
            bind_address: IpAddr::from([127, 0, 0, 1]),
            advertise_address: None,
            https_port: 6443,
            datastore_endpoint: None,
            compaction_interval: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// A started server.
pub struct Running {
    /// The address it listens on (with the real port).
    pub addr: SocketAddr,
    /// The address local clients use (the kubeconfig's; loopback when listening everywhere).
    pub local: SocketAddr,
    /// The advertise address with the real port.
    pub advertise: SocketAddr,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The admin bearer token.
    pub admin_token: String,
    shutdown: watch::Sender<bool>,
    api: Arc<server::ApiServer>,
    serving: tokio::task::JoinHandle<()>,
    compactor: tokio::task::JoinHandle<()>,
    repair: tokio::task::JoinHandle<()>,
}

impl Running {
    /// A client transport for this process's own components, as the admin kubeconfig's user,
    /// without TLS or a socket: `kube::Client::new(running.local_service(), "default")`.
    pub fn local_service(&self) -> local::LocalService {
        local::LocalService::new(self.api.clone())
    }

    /// Stops accepting, ends watches, drains open requests and returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.serving.await;
        self.compactor.abort();
        self.repair.abort();
    }
}

const DEFAULT_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

async fn bootstrap_namespaces(store: &dyn rudder_store::Storage) -> Result<()> {
    for ns in DEFAULT_NAMESPACES {
        let key = format!("/registry/namespaces/{ns}");
        if store.get(&key).await?.is_some() {
            continue;
        }
        let obj = json!({
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {
                "name": ns,
                "uid": registry::new_uid(),
                "creationTimestamp": object::now(),
                "labels": {"kubernetes.io/metadata.name": ns},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        match store.create(&key, object::to_bytes(&obj)).await {
            Ok(_) | Err(rudder_store::Error::AlreadyExists(_)) => {}
            Err(e) => return Err(e).context("cannot create the default namespaces"),
        }
    }
    Ok(())
}

/// Starts the API server and returns once it is ready to serve (kubeconfig written).
pub async fn start(config: Config) -> Result<Running> {
    if config.datastore_endpoint.is_some() {
        bail!(
            "--datastore-endpoint (etcd) is not supported yet; leave it out to use the embedded store in the data dir"
        );
    }
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!("cannot create the data dir {}; pass --data-dir to use another", config.data_dir.display())
    })?;
    let mut hosts = vec![config.bind_address.to_string(), services::first_service_ip().to_string()];
    hosts.extend(config.advertise_address.map(|a| a.to_string()));
    let pki = pki::ensure(&config.data_dir, &hosts)?;
    let db = config.data_dir.join("db").join("state.db");
    let store = rudder_store::open_embedded(&db, rudder_store::EngineConfig::default())
        .with_context(|| format!("cannot open the store {}", db.display()))?;
    let compactor = rudder_store::spawn_compactor(store.clone(), config.compaction_interval);
    bootstrap_namespaces(&*store).await?;
    let cache = cache::WatchCache::start(store.clone()).await.context("cannot fill the watch cache")?;

    let listener = tokio::net::TcpListener::bind(SocketAddr::new(config.bind_address, config.https_port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}:{}; is another server running? Use --https-port to pick another port (0 picks a free one)",
                config.bind_address, config.https_port
            )
        })?;
    let addr = listener.local_addr()?;
    let host = if config.bind_address.is_unspecified() { IpAddr::from([127, 0, 0, 1]) } else { config.bind_address };
    let local = SocketAddr::new(host, addr.port());
    let advertised = SocketAddr::new(config.advertise_address.unwrap_or(host), addr.port());
    let tls = serve::tls_config(&pki.serving_cert_pem, &pki.serving_key_pem, &pki.ca_cert_pem)?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let api = Arc::new(server::ApiServer {
        store,
        cache,
        authn: authn::Authenticator::from_token_file(&pki.token_file)?.with_signing_key(
            jwt::SigningKey::from_pkcs8(&pki.service_account_key)
                .context("the service-account signing key (tls/service-account.key) cannot be used")?,
        ),
        shutdown: shutdown_rx.clone(),
        ready: Default::default(),
        advertise: advertised.to_string(),
        kubelet_tls: Some(handlers::proxy::kubelet_tls(&pki)?),
        ca_cert_pem: pki.ca_cert_pem.clone(),
    });
    let handler: serve::Handler = {
        let api = api.clone();
        Arc::new(move |req, conn| Box::pin(api.clone().handle(req, conn)))
    };
    let serving = tokio::spawn(serve::serve(listener, tls, handler, shutdown_rx, config.drain_timeout));
    let endpoint = kubernetes_service::Endpoint { ip: advertised.ip(), port: addr.port() };
    if let Err(e) = kubernetes_service::reconcile(&api, endpoint).await {
        tracing::warn!("cannot make the kubernetes service: {}", e.message);
    }
    let repair = kubernetes_service::spawn(api.clone(), endpoint);
    api.ready.store(true, Ordering::Release);
    let kubeconfig = config.data_dir.join("admin.kubeconfig");
    pki::write_kubeconfig(&kubeconfig, &format!("https://{local}"), &pki)?;
    Ok(Running {
        addr,
        local,
        advertise: advertised,
        kubeconfig,
        admin_token: pki.admin_token,
        shutdown: shutdown_tx,
        api,
        serving,
        compactor,
        repair,
    })
}
