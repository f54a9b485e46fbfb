//! The scheduler: binds pods that name `default-scheduler` and no node to a node, as
//! kube-scheduler does. Runs inside `rudder server` as an API client.
//!
//! Layout: [`queue`] (active / backoff / unschedulable), [`cache`] (nodes and the pods that
//! count on them, assumed pods included), [`plugins`] (one filter or scorer per file),
//! [`algorithm`] (one decision over the cache) and [`scheduler`] (informers, the scheduling
//! loop, binding, status and events).

pub mod algorithm;
pub mod cache;
pub mod events;
pub mod framework;
pub mod plugins;
pub mod quantity;
pub mod queue;
pub mod resources;
pub mod scheduler;
pub mod selectors;

use kube::Client;
use rudder_controllers::informers::Informers;
use tokio::sync::watch;

/// The name pods use in `spec.schedulerName` to ask for this scheduler.
pub const SCHEDULER_NAME: &str = "default-scheduler";

/// Runs the scheduler while this process holds the `kube-system/kube-scheduler` Lease (leader
/// election as upstream's, through `rudder_controllers::leader`), until `shutdown` turns true.
/// A scheduler that loses the Lease stops; a new one (fresh caches) starts if it gets it back.
/// Pods and nodes come from the process's shared informers.
pub async fn run(client: Client, shared: Informers, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    use rudder_controllers::leader;
    let identity = leader::default_identity();
    leader::run_while_leading(client.clone(), leader::LEASE_NAMESPACE, leader::SCHEDULER_LEASE, &identity, shutdown, {
        move |leading| scheduler::Scheduler::new(client.clone(), shared.clone()).run(leading)
    })
    .await
}
