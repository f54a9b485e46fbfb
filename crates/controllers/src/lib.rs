//! The controller manager: level-triggered control loops that run inside `rudder server` as API
//! clients (kube-runtime watchers and controllers over `k8s-openapi` types), like
//! kube-controller-manager.
//!
//! [`run`] starts every controller and returns when `shutdown` turns true.

use kube::Client;
use tokio::sync::watch;

pub mod certificates;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod endpointslicemirroring;
pub mod gc;
pub mod informers;
pub mod leader;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podgc;
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
    /// How long a node may go without a heartbeat before the node lifecycle controller marks it
    /// `Unknown` and taints it; `None` is upstream's default ([`nodelifecycle::DEFAULT_GRACE_PERIOD`]).
    pub node_monitor_grace_period: Option<std::time::Duration>,
    /// The cluster CA certificate and key (PEM) that sign approved node certificate requests;
    /// `None` leaves approved requests unsigned.
    pub signing_ca: Option<(String, String)>,
    /// The cluster's pod network, cut into a block per node by the node IPAM controller;
    /// `None` is [`nodeipam::DEFAULT_CLUSTER_CIDR`].
    pub cluster_cidr: Option<String>,
    /// Terminated pods the pod garbage collector keeps at most (0: all); `None` is upstream's
    /// 12500.
    pub terminated_pod_gc_threshold: Option<usize>,
    /// Node taint rates and zone thresholds of the node lifecycle controller.
    pub eviction: nodelifecycle::EvictionRates,
}

/// Runs every controller while this process holds the `kube-system/kube-controller-manager`
/// Lease ([`leader`]), until `shutdown` turns true. The controllers follow pods, nodes and
/// Services through `shared`, which outlives a term of leadership.
pub async fn run(
    client: Client,
    options: Options,
    shared: informers::Informers,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let identity = leader::default_identity();
    let (ns, lease) = (leader::LEASE_NAMESPACE, leader::CONTROLLER_MANAGER_LEASE);
    leader::run_while_leading(client.clone(), ns, lease, &identity, shutdown, move |leading| {
        run_controllers(client.clone(), options.clone(), shared.clone(), leading)
    })
    .await
}

/// Runs every controller until `shutdown` turns true.
async fn run_controllers(
    client: Client,
    options: Options,
    shared: informers::Informers,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let results = futures::future::join_all([
        tokio::spawn(replicaset::run(client.clone(), shared.clone(), shutdown.clone())),
        tokio::spawn(deployment::run(client.clone(), shutdown.clone())),
        tokio::spawn(disruption::run(client.clone(), shared.clone(), shutdown.clone())),
        tokio::spawn(gc::run(client.clone(), shutdown.clone())),
        tokio::spawn(namespace::run(client.clone(), shutdown.clone())),
        tokio::spawn(serviceaccount::run(client.clone(), shutdown.clone())),
        tokio::spawn(rootca::run(client.clone(), options.root_ca_pem.clone(), shutdown.clone())),
        tokio::spawn(nodelifecycle::run(
            client.clone(),
            shared.clone(),
            node_lifecycle_config(&options),
            shutdown.clone(),
        )),
        tokio::spawn(podgc::run(client.clone(), shared.clone(), pod_gc_config(&options), shutdown.clone())),
        tokio::spawn(endpoints::run(client.clone(), shared.clone(), shutdown.clone())),
        tokio::spawn(endpointslice::run(client.clone(), shared.clone(), shutdown.clone())),
        tokio::spawn(endpointslicemirroring::run(client.clone(), shutdown.clone())),
        tokio::spawn(certificates::run(client.clone(), options.signing_ca.clone(), shutdown.clone())),
        tokio::spawn(nodeipam::run(client.clone(), shared.clone(), node_ipam_config(&options), shutdown.clone())),
    ])
    .await;
    for r in results {
        r??;
    }
    Ok(())
}

fn grace_period(options: &Options) -> std::time::Duration {
    options.node_monitor_grace_period.unwrap_or(nodelifecycle::DEFAULT_GRACE_PERIOD)
}

fn node_lifecycle_config(options: &Options) -> nodelifecycle::Config {
    nodelifecycle::Config { rates: options.eviction, ..nodelifecycle::Config::new(grace_period(options)) }
}

fn pod_gc_config(options: &Options) -> podgc::Config {
    let mut config = podgc::Config::for_grace_period(grace_period(options));
    if let Some(threshold) = options.terminated_pod_gc_threshold {
        config.terminated_threshold = threshold;
    }
    config
}

fn node_ipam_config(options: &Options) -> nodeipam::Config {
    let default = nodeipam::Config::default();
    nodeipam::Config { cluster_cidr: options.cluster_cidr.clone().unwrap_or(default.cluster_cidr), ..default }
}
