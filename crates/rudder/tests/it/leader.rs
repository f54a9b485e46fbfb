//! Leader election (`rudder_controllers::leader`) against a real server: candidates in this
//! process share one Lease; only one leads; a leader that stops renewing is replaced once the
//! lease runs out; a leader that shuts down hands over at once. Also the Leases `rudder server`
//! itself holds for its controller manager and scheduler.

use crate::common::TestServer;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use rudder_controllers::leader::{self, Timing};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

const TIMING: Timing = Timing {
    lease_duration: Duration::from_secs(3),
    renew_deadline: Duration::from_secs(2),
    retry_period: Duration::from_millis(200),
};

/// A candidate: its task, its shutdown, and how many of its terms are running now.
struct Candidate {
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    stop: watch::Sender<bool>,
    leading: Arc<AtomicUsize>,
}

fn candidate(client: &Client, identity: &str) -> Candidate {
    let (stop, shutdown) = watch::channel(false);
    let leading = Arc::new(AtomicUsize::new(0));
    let (client, identity, counter) = (client.clone(), identity.to_string(), leading.clone());
    let task = tokio::spawn(async move {
        leader::run_while_leading_with(client, "default", "test-lease", &identity, TIMING, shutdown, move |mut s| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = s.wait_for(|stop| *stop).await;
                counter.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .await
    });
    Candidate { task, stop, leading }
}

async fn wait_leading(c: &Candidate, limit: Duration) -> Duration {
    let start = Instant::now();
    while c.leading.load(Ordering::SeqCst) == 0 {
        assert!(start.elapsed() < limit, "no leadership within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

async fn holder(client: &Client) -> Option<String> {
    let lease = Api::<Lease>::namespaced(client.clone(), "default").get("test-lease").await.ok()?;
    lease.spec?.holder_identity
}

#[tokio::test]
async fn one_candidate_leads_and_another_takes_over() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let a = candidate(&client, "host_a");
    wait_leading(&a, Duration::from_secs(5)).await;
    assert_eq!(holder(&client).await.as_deref(), Some("host_a"));
    let b = candidate(&client, "host_b");
    // Several lease durations: b never leads while a renews.
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(b.leading.load(Ordering::SeqCst), 0, "two leaders at once");
        assert_eq!(a.leading.load(Ordering::SeqCst), 1);
    }

    // a is dropped without releasing: b waits for the lease to run out on its own clock.
    a.task.abort();
    let _ = a.task.await;
    let took = wait_leading(&b, Duration::from_secs(8)).await;
    assert!(took >= Duration::from_millis(2500), "took over after {took:?}, before the lease ran out");
    assert_eq!(a.leading.load(Ordering::SeqCst), 0, "a's work stopped when a was dropped");
    assert_eq!(holder(&client).await.as_deref(), Some("host_b"));
    let lease = Api::<Lease>::namespaced(client.clone(), "default").get("test-lease").await.unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.lease_duration_seconds, Some(3));
    assert_eq!(spec.lease_transitions, Some(1));

    // b shuts down and releases: c takes over at once, well within a lease duration.
    let c = candidate(&client, "host_c");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(c.leading.load(Ordering::SeqCst), 0);
    b.stop.send(true).unwrap();
    b.task.await.unwrap().unwrap();
    assert_eq!(b.leading.load(Ordering::SeqCst), 0);
    let took = wait_leading(&c, Duration::from_secs(2)).await;
    assert!(took < Duration::from_millis(1500), "handed over after {took:?}");
    assert_eq!(holder(&client).await.as_deref(), Some("host_c"));
    c.stop.send(true).unwrap();
    c.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_leader_that_loses_the_lease_stops_its_work() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let a = candidate(&client, "host_a");
    wait_leading(&a, Duration::from_secs(5)).await;
    // Someone else writes itself into the Lease (as a candidate that saw it expire would).
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    loop {
        let mut lease = leases.get("test-lease").await.unwrap();
        lease.spec.as_mut().unwrap().holder_identity = Some("intruder".into());
        match leases.replace("test-lease", &Default::default(), &lease).await {
            Ok(_) => break,
            // a renewed in between.
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => panic!("{e}"),
        }
    }
    let start = Instant::now();
    while a.leading.load(Ordering::SeqCst) != 0 {
        assert!(start.elapsed() < Duration::from_secs(3), "a kept working without the lease");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The intruder never renews: a gets the lease back after it runs out.
    wait_leading(&a, Duration::from_secs(8)).await;
    a.stop.send(true).unwrap();
    a.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_server_holds_the_control_plane_leases() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let server = TestServer::start_in(dir, &[]).await;
    let client = server.client().await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    for name in ["kube-controller-manager", "kube-scheduler"] {
        let start = Instant::now();
        let spec = loop {
            if let Ok(l) = leases.get(name).await
                && let Some(s) = l.spec.filter(|s| s.holder_identity.is_some())
            {
                break s;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "no {name} lease");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let holder = spec.holder_identity.unwrap();
        assert!(holder.contains('_'), "{holder}");
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert!(spec.renew_time.is_some() && spec.acquire_time.is_some());
    }
}
