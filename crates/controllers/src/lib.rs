//! The controller manager: level-triggered control loops that run inside `rudder server` as API
//! clients (kube-runtime watchers and controllers over `k8s-openapi` types), like
//! kube-controller-manager.
//!
//! [`run`] starts every controller and returns when `shutdown` turns true.

use kube::Client;
use tokio::sync::watch;

pub mod deployment;
pub mod gc;
pub mod namespace;
pub mod pods;
pub mod replicaset;
pub mod rootca;
pub mod serviceaccount;
mod support;

/// Turns true when the server stops.
pub type Shutdown = watch::Receiver<bool>;

/// What the controllers need besides an API client.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The cluster CA certificate (PEM), published in every namespace as `kube-root-ca.crt`.
    pub root_ca_pem: Option<String>,
}

/// Runs every controller until `shutdown` turns true.
pub async fn run(client: Client, options: Options, shutdown: Shutdown) -> anyhow::Result<()> {
    let results = futures::future::join_all([
        tokio::spawn(replicaset::run(client.clone(), shutdown.clone())),
        tokio::spawn(deployment::run(client.clone(), shutdown.clone())),
        tokio::spawn(gc::run(client.clone(), shutdown.clone())),
        tokio::spawn(namespace::run(client.clone(), shutdown.clone())),
        tokio::spawn(serviceaccount::run(client.clone(), shutdown.clone())),
        tokio::spawn(rootca::run(client.clone(), options.root_ca_pem.clone(), shutdown.clone())),
    ])
    .await;
    for r in results {
        r??;
    }
    Ok(())
}
