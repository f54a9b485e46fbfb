//! The pod worker's state machine driven against [`FakeRuntime`] and [`FakeApi`] on paused
//! tokio time: ordering of init and app containers, restart policies and back-off, image
//! pull failures, graceful deletion, a vanished pod, a dead sandbox and the statuses written on
//! the way.

use super::{INITIAL_BACKOFF, Shared, run};
use crate::cri::Runtime;
use crate::dns::ClusterDns;
use crate::env::NodeFacts;
use crate::events::Recorder;
use crate::fake::{Call, FakeApi, FakeRuntime, Journal};
use crate::volumes::Volumes;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const UID: &str = "0f6c-uid";
const IMAGE: &str = "busybox:1.36";

/// A pod `ns/web` with the given spec.
fn pod(spec: Value) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "ns", "uid": UID}, "spec": spec}))
        .expect("valid pod")
}

/// One worker over a fake runtime and a fake API server.
struct Harness {
    rt: Arc<FakeRuntime>,
    api: FakeApi,
    tx: watch::Sender<Option<Arc<Pod>>>,
    task: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
    shared: Arc<Shared>,
}

impl Harness {
    fn new() -> Harness {
        let journal = Journal::default();
        let rt = Arc::new(FakeRuntime::new(journal.clone()));
        let api = FakeApi::new(journal);
        let dir = tempfile::tempdir().expect("temp dir");
        let client = api.client();
        let shared = Arc::new(Shared {
            client: client.clone(),
            runtime: rt.clone(),
            volumes: Volumes::new(dir.path().join("pods")),
            node: NodeFacts {
                node_name: "node-1".into(),
                host_ip: "192.0.2.10".into(),
                pod_ips: Vec::new(),
                allocatable_cpu_millis: 2000,
                allocatable_memory_bytes: 4 << 30,
                allocatable_ephemeral_storage_bytes: 20 << 30,
            },
            logs_root: dir.path().join("logs"),
            cgroup_root: "/kubepods".into(),
            dns: ClusterDns { ip: None, domain: "cluster.local".into() },
            host_resolv: "nameserver 192.0.2.53\n".into(),
            events: Recorder::new(client, "node-1".into()),
        });
        let (tx, _) = watch::channel(None);
        Harness { rt, api, tx, task: None, _dir: dir, shared }
    }

    /// Starts the worker on `pod`.
    fn start(&mut self, pod: Pod) {
        self.tx.send_replace(Some(Arc::new(pod)));
        let rx = self.tx.subscribe();
        self.task = Some(tokio::spawn(run(self.shared.clone(), UID.into(), rx)));
    }

    /// Hands the worker a new version of the pod.
    fn update(&self, pod: Pod) {
        self.tx.send_replace(Some(Arc::new(pod)));
    }

    /// Waits (on the paused clock, at most ten minutes) until `done` holds.
    async fn until(&self, what: &str, mut done: impl FnMut(&Harness) -> bool) {
        for _ in 0..6000 {
            if done(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("timed out waiting for {what}\nactions: {:#?}\nstatus: {:#}", self.rt.actions(), self.status());
    }

    /// Waits until the worker returns.
    async fn finished(&mut self) {
        let task = self.task.take().expect("worker started");
        tokio::time::timeout(Duration::from_secs(600), task).await.expect("worker ends").expect("worker did not panic");
    }

    /// The newest status written.
    fn status(&self) -> Value {
        self.api.statuses().last().cloned().unwrap_or(Value::Null)
    }

    /// The newest status of container `name` (app containers, then init containers).
    fn container(&self, name: &str) -> Value {
        let status = self.status();
        ["containerStatuses", "initContainerStatuses"]
            .iter()
            .filter_map(|k| status[k].as_array())
            .flatten()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Containers created, as (name, attempt), in order.
    fn created(&self) -> Vec<(String, u32)> {
        self.rt
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::CreateContainer { name, attempt, id, .. } if !id.is_empty() => Some((name, attempt)),
                _ => None,
            })
            .collect()
    }

    fn was_created(&self, name: &str, attempt: u32) -> bool {
        self.created().iter().any(|(n, a)| n == name && *a == attempt)
    }

    /// Sandboxes run, as (attempt, id), in order.
    fn sandboxes_run(&self) -> Vec<(u32, String)> {
        self.rt
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::RunPodSandbox { attempt, id, .. } if !id.is_empty() => Some((attempt, id)),
                _ => None,
            })
            .collect()
    }

    fn phase(&self) -> String {
        self.status()["phase"].as_str().unwrap_or_default().to_string()
    }

    /// The reasons of the events recorded so far.
    fn event_reasons(&self) -> Vec<String> {
        self.api.events().iter().map(|e| e["reason"].as_str().unwrap_or_default().to_string()).collect()
    }

    /// Start and finish (Unix nanoseconds) of an instance.
    async fn times(&self, name: &str, attempt: u32) -> (i64, i64) {
        let id = self.rt.container_id(name, attempt).expect("instance exists");
        let st = self.rt.container_status(&id).await.expect("status").expect("container exists");
        (st.started_at, st.finished_at)
    }
}

fn condition(status: &Value, t: &str) -> Value {
    status["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == t).cloned().unwrap_or(Value::Null)
}

/// Index of the first call matching `f` in `calls`.
fn position(calls: &[Call], f: impl Fn(&Call) -> bool) -> usize {
    calls.iter().position(f).unwrap_or_else(|| panic!("call not found in {calls:#?}"))
}

#[tokio::test(start_paused = true)]
async fn init_containers_run_one_after_another_before_the_app_containers() {
    let mut h = Harness::new();
    h.start(pod(json!({
        "initContainers": [{"name": "i1", "image": IMAGE}, {"name": "i2", "image": IMAGE}],
        "containers": [{"name": "app", "image": IMAGE}],
    })));
    h.until("i1 to be created", |h| h.was_created("i1", 0)).await;
    h.until("a status", |h| h.container("i1")["state"].get("running").is_some()).await;
    let s = h.status();
    assert_eq!(s["phase"], "Pending");
    assert_eq!(s["podIP"], "10.42.0.2");
    assert_eq!(s["hostIP"], "192.0.2.10");
    assert_eq!(h.container("i2")["state"]["waiting"]["reason"], "PodInitializing");
    assert_eq!(h.container("app")["state"]["waiting"]["reason"], "PodInitializing");
    assert_eq!(condition(&s, "PodReadyToStartContainers")["status"], "True");
    let init = condition(&s, "Initialized");
    assert_eq!((init["status"].as_str(), init["reason"].as_str()), (Some("False"), Some("ContainersNotInitialized")));
    assert_eq!(init["message"], "containers with incomplete status: [i1 i2]");
    assert_eq!(condition(&s, "Ready")["reason"], "ContainersNotInitialized");

    // While i1 runs nothing else starts, however long it takes.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(h.created(), [("i1".to_string(), 0)]);
    assert!(h.rt.exit_now("i1", 0, ""));
    h.until("i2 to be created", |h| h.was_created("i2", 0)).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!h.was_created("app", 0));
    assert_eq!(h.container("i1")["state"]["terminated"]["reason"], "Completed");
    assert_eq!(condition(&h.status(), "Initialized")["message"], "containers with incomplete status: [i2]");

    assert!(h.rt.exit_now("i2", 0, ""));
    h.until("the pod to run", |h| h.phase() == "Running").await;
    let s = h.status();
    for t in ["PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready"] {
        assert_eq!(condition(&s, t)["status"], "True", "condition {t} in {s:#}");
    }
    let app = h.container("app");
    assert_eq!((app["ready"].as_bool(), app["started"].as_bool()), (Some(true), Some(true)));
    assert_eq!(app["restartCount"], 0);
    assert!(app["containerID"].as_str().unwrap().starts_with("containerd://ctr-"));

    // One sandbox; containers strictly in order, each started right after its creation.
    assert_eq!(h.sandboxes_run().len(), 1);
    let lifecycle: Vec<Call> = h
        .rt
        .actions()
        .into_iter()
        .filter(|c| matches!(c, Call::RunPodSandbox { .. } | Call::CreateContainer { .. } | Call::StartContainer(_)))
        .collect();
    let ids: Vec<String> = ["i1", "i2", "app"].iter().map(|n| h.rt.container_id(n, 0).unwrap()).collect();
    let expected: Vec<Call> = std::iter::once(h.rt.actions()[0].clone())
        .chain(["i1", "i2", "app"].iter().zip(&ids).flat_map(|(n, id)| {
            [
                Call::CreateContainer {
                    sandbox: h.sandboxes_run()[0].1.clone(),
                    name: n.to_string(),
                    attempt: 0,
                    id: id.clone(),
                },
                Call::StartContainer(id.clone()),
            ]
        }))
        .collect();
    assert_eq!(lifecycle, expected);
    assert!(!h.rt.actions().iter().any(|c| matches!(c, Call::StopContainer { .. } | Call::StopPodSandbox(_))));

    // The phases written: Pending, then Running, never back.
    let mut phases: Vec<String> = h.api.statuses().iter().map(|s| s["phase"].as_str().unwrap().to_string()).collect();
    phases.dedup();
    assert_eq!(phases, ["Pending", "Running"]);
    let reasons = h.event_reasons();
    assert!(reasons.iter().filter(|r| *r == "Started").count() == 3, "{reasons:?}");
}

#[tokio::test(start_paused = true)]
async fn restart_always_backs_off_with_a_doubling_delay() {
    let mut h = Harness::new();
    h.rt.exit_after("c", Duration::from_secs(2), 1, "");
    h.start(pod(json!({"containers": [{"name": "c", "image": IMAGE}]})));

    // The first crash restarts at once (upstream starts the back-off with it).
    h.until("the first restart", |h| h.was_created("c", 1)).await;
    let (_, finished0) = h.times("c", 0).await;
    let (started1, _) = h.times("c", 1).await;
    assert!(started1 - finished0 <= 1_100_000_000, "first restart after {}ns", started1 - finished0);

    // The second crash waits 10s, reported as CrashLoopBackOff with the run that ended.
    h.until("the back-off", |h| h.container("c")["state"]["waiting"]["reason"] == "CrashLoopBackOff").await;
    assert!(!h.was_created("c", 2));
    let c = h.container("c");
    assert_eq!(
        c["state"]["waiting"]["message"],
        format!("back-off 10s restarting failed container=c pod=web_ns({UID})")
    );
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 1);
    assert_eq!(c["lastState"]["terminated"]["reason"], "Error");
    assert_eq!(c["restartCount"], 1);
    assert_eq!(c["ready"], false);
    assert_eq!(h.phase(), "Running");
    assert_eq!(condition(&h.status(), "Ready")["message"], "containers with unready status: [c]");

    h.until("the second restart", |h| h.was_created("c", 2)).await;
    let (_, finished1) = h.times("c", 1).await;
    let (started2, _) = h.times("c", 2).await;
    let waited = Duration::from_nanos((started2 - finished1) as u64);
    assert!(waited >= INITIAL_BACKOFF && waited <= INITIAL_BACKOFF + Duration::from_millis(1100), "waited {waited:?}");

    // Then 20s.
    h.until("the longer back-off", |h| {
        h.container("c")["state"]["waiting"]["message"].as_str().is_some_and(|m| m.starts_with("back-off 20s"))
    })
    .await;
    h.until("the third restart", |h| h.was_created("c", 3)).await;
    let (_, finished2) = h.times("c", 2).await;
    let (started3, _) = h.times("c", 3).await;
    let waited = Duration::from_nanos((started3 - finished2) as u64);
    assert!(
        waited >= 2 * INITIAL_BACKOFF && waited <= 2 * INITIAL_BACKOFF + Duration::from_millis(1100),
        "waited {waited:?}"
    );
    assert_eq!(h.sandboxes_run().len(), 1);
    assert!(h.event_reasons().iter().any(|r| r == "BackOff"));
    // Old runs are pruned: the newest two instances are kept.
    h.until("pruning", |h| h.rt.container_id("c", 0).is_none()).await;
}

#[tokio::test(start_paused = true)]
async fn restart_never_fails_the_pod_and_stops_its_sandbox() {
    let mut h = Harness::new();
    h.rt.exit_after("c", Duration::from_secs(3), 3, "");
    h.start(pod(json!({"restartPolicy": "Never", "containers": [{"name": "c", "image": IMAGE}]})));
    h.until("the pod to fail", |h| h.phase() == "Failed").await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let c = h.container("c");
    assert_eq!(c["state"]["terminated"]["exitCode"], 3);
    assert_eq!(c["state"]["terminated"]["reason"], "Error");
    assert_eq!(c["restartCount"], 0);
    assert_eq!(h.created(), [("c".to_string(), 0)]);
    let stops: Vec<Call> = h.rt.actions().into_iter().filter(|c| matches!(c, Call::StopPodSandbox(_))).collect();
    assert_eq!(stops, [Call::StopPodSandbox(h.sandboxes_run()[0].1.clone())]);
    assert!(!h.rt.actions().iter().any(|c| matches!(c, Call::RemovePodSandbox(_))));
    let s = h.status();
    assert_eq!(condition(&s, "Ready")["reason"], "PodCompleted");
    assert_eq!(condition(&s, "PodReadyToStartContainers")["status"], "False");
    assert!(h.api.deletes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn restart_on_failure_restarts_failures_and_completes_on_success() {
    let mut h = Harness::new();
    h.rt.exit_after("done", Duration::from_secs(1), 0, "");
    h.start(pod(json!({"restartPolicy": "OnFailure", "containers": [
        {"name": "done", "image": IMAGE}, {"name": "flaky", "image": IMAGE}
    ]})));
    h.until("flaky to run", |h| h.container("flaky")["state"].get("running").is_some()).await;
    h.until("done to finish", |h| h.container("done")["state"]["terminated"]["exitCode"] == 0).await;
    assert_eq!(h.phase(), "Running");
    assert!(h.rt.exit_now("flaky", 2, ""));
    h.until("flaky to restart", |h| h.was_created("flaky", 1)).await;
    h.until("flaky to run again", |h| h.container("flaky")["restartCount"] == 1).await;
    assert!(h.rt.exit_now("flaky", 0, ""));
    h.until("the pod to succeed", |h| h.phase() == "Succeeded").await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(h.created().iter().filter(|(n, _)| n == "done").count(), 1);
    assert_eq!(h.created().iter().filter(|(n, _)| n == "flaky").count(), 2);
    let s = h.status();
    assert_eq!(condition(&s, "Ready")["reason"], "PodCompleted");
    assert_eq!(condition(&s, "Initialized")["reason"], "PodCompleted");
    assert_eq!(h.container("flaky")["lastState"]["terminated"]["exitCode"], 2);
}

#[tokio::test(start_paused = true)]
async fn pull_policy_never_with_a_missing_image_waits_without_creating() {
    let mut h = Harness::new();
    h.rt.set_image_present("local/app:1", false);
    h.start(pod(json!({"containers": [{"name": "c", "image": "local/app:1", "imagePullPolicy": "Never"}]})));
    h.until("the waiting reason", |h| h.container("c")["state"]["waiting"]["reason"] == "ErrImageNeverPull").await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(
        h.container("c")["state"]["waiting"]["message"],
        "Container image \"local/app:1\" is not present with pull policy of Never"
    );
    assert_eq!(h.phase(), "Pending");
    assert!(h.created().is_empty());
    assert!(!h.rt.calls().iter().any(|c| matches!(c, Call::PullImage(_))));
    assert!(h.event_reasons().iter().any(|r| r == "ErrImageNeverPull"));

    // Once the image is there, the container starts.
    h.rt.set_image_present("local/app:1", true);
    h.until("the pod to run", |h| h.phase() == "Running").await;
    assert_eq!(h.created(), [("c".to_string(), 0)]);
}

#[tokio::test(start_paused = true)]
async fn pull_failures_report_err_image_pull_then_back_off() {
    let mut h = Harness::new();
    let image = "registry.example/app:2";
    h.rt.set_image_present(image, false);
    h.rt.fail_pull(image, Some("failed to resolve reference: not found"));
    h.start(pod(json!({"containers": [{"name": "c", "image": image}]})));
    h.until("ImagePullBackOff", |h| h.container("c")["state"]["waiting"]["reason"] == "ImagePullBackOff").await;
    let reasons: Vec<String> = h
        .api
        .statuses()
        .iter()
        .filter_map(|s| s["containerStatuses"][0]["state"]["waiting"]["reason"].as_str().map(String::from))
        .collect();
    let first_error = reasons.iter().position(|r| r == "ErrImagePull").expect("ErrImagePull reported");
    assert!(reasons[first_error..].contains(&"ImagePullBackOff".to_string()));
    let err = h.api.statuses()[first_error..]
        .iter()
        .find(|s| s["containerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImagePull")
        .map(|s| s["containerStatuses"][0]["state"]["waiting"]["message"].clone())
        .unwrap();
    assert!(err.as_str().unwrap().starts_with(&format!("Failed to pull image \"{image}\": ")), "{err}");
    assert_eq!(h.container("c")["state"]["waiting"]["message"], format!("Back-off pulling image \"{image}\""));
    let pulls = |h: &Harness| h.rt.calls().iter().filter(|c| matches!(c, Call::PullImage(_))).count();
    assert_eq!(pulls(&h), 1);
    // The next pull comes after the back-off, not on every pass.
    tokio::time::sleep(INITIAL_BACKOFF).await;
    assert_eq!(pulls(&h), 2);
    assert!(h.created().is_empty());
    h.rt.fail_pull(image, None);
    h.until("the pod to run", |h| h.phase() == "Running").await;
    assert_eq!(pulls(&h), 3);
    assert!(h.event_reasons().iter().any(|r| r == "Failed"));
}

#[tokio::test(start_paused = true)]
async fn deletion_runs_pre_stop_then_stops_within_the_grace_and_removes_the_pod() {
    let mut h = Harness::new();
    h.rt.ignore_sigterm("c");
    let spec = json!({"containers": [{"name": "c", "image": IMAGE,
        "lifecycle": {"preStop": {"exec": {"command": ["/bin/sh", "-c", "echo bye"]}}}}]});
    h.start(pod(spec.clone()));
    h.until("the pod to run", |h| h.phase() == "Running").await;
    let id = h.rt.container_id("c", 0).unwrap();
    let sandbox = h.sandboxes_run()[0].1.clone();

    let mut deleting = pod(spec);
    deleting.metadata.deletion_timestamp =
        Some(serde_json::from_value(json!("2026-01-01T00:00:00Z")).expect("timestamp"));
    deleting.metadata.deletion_grace_period_seconds = Some(7);
    let asked = Instant::now();
    h.update(deleting);
    h.finished().await;
    // The container ignores SIGTERM: it is killed when the grace runs out, not before.
    assert!(
        asked.elapsed() >= Duration::from_secs(7) && asked.elapsed() < Duration::from_secs(9),
        "{:?}",
        asked.elapsed()
    );

    let calls = h.rt.calls();
    let hook = position(&calls, |c| matches!(c, Call::ExecSync { id: i, cmd } if *i == id && cmd[2] == "echo bye"));
    let stop = position(&calls, |c| matches!(c, Call::StopContainer { id: i, .. } if *i == id));
    let Call::StopContainer { timeout, .. } = &calls[stop] else { unreachable!() };
    assert!((1..=7).contains(timeout), "StopContainer got {timeout}");
    let stop_sandbox = position(&calls, |c| *c == Call::StopPodSandbox(sandbox.clone()));
    let remove_sandbox = position(&calls, |c| *c == Call::RemovePodSandbox(sandbox.clone()));
    let delete = position(
        &calls,
        |c| matches!(c, Call::Api { method, path } if method == "DELETE" && path == "/api/v1/namespaces/ns/pods/web"),
    );
    assert!(
        hook < stop && stop < stop_sandbox && stop_sandbox < remove_sandbox && remove_sandbox < delete,
        "{calls:#?}"
    );

    let deletes = h.api.deletes();
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].body["gracePeriodSeconds"], 0);
    assert_eq!(deletes[0].body["preconditions"]["uid"], UID);
    assert!(h.rt.sandboxes().is_empty());
    assert_eq!(h.rt.container_count(), 0);
    // The last status shows the container terminated by the kill.
    assert_eq!(h.container("c")["state"]["terminated"]["exitCode"], 137);
    assert!(h.event_reasons().iter().any(|r| r == "Killing"));
}

#[tokio::test(start_paused = true)]
async fn a_pod_gone_from_the_api_is_stopped_and_removed() {
    let mut h = Harness::new();
    h.start(pod(json!({"containers": [{"name": "a", "image": IMAGE}, {"name": "b", "image": IMAGE}]})));
    h.until("the pod to run", |h| h.phase() == "Running").await;
    let ids: Vec<String> = ["a", "b"].iter().map(|n| h.rt.container_id(n, 0).unwrap()).collect();
    let sandbox = h.sandboxes_run()[0].1.clone();
    h.tx.send_replace(None);
    h.finished().await;
    let actions = h.rt.actions();
    for id in &ids {
        let stop = position(&actions, |c| matches!(c, Call::StopContainer { id: i, timeout: 0 } if i == id));
        let remove = position(&actions, |c| *c == Call::RemoveContainer(id.clone()));
        assert!(stop < remove);
    }
    let stop_sandbox = position(&actions, |c| *c == Call::StopPodSandbox(sandbox.clone()));
    let remove_sandbox = position(&actions, |c| *c == Call::RemovePodSandbox(sandbox.clone()));
    assert!(stop_sandbox < remove_sandbox);
    assert!(h.rt.sandboxes().is_empty());
    assert_eq!(h.rt.container_count(), 0);
    assert!(h.api.deletes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_dead_sandbox_is_replaced_and_its_containers_restarted() {
    let mut h = Harness::new();
    h.start(pod(json!({"containers": [{"name": "c", "image": IMAGE}]})));
    h.until("the pod to run", |h| h.phase() == "Running").await;
    let old = h.sandboxes_run()[0].1.clone();
    let first = h.rt.container_id("c", 0).unwrap();
    assert!(h.rt.kill_sandbox(&old));
    h.until("a new sandbox", |h| h.sandboxes_run().len() == 2).await;
    let (attempt, new) = h.sandboxes_run()[1].clone();
    assert_eq!(attempt, 1);
    h.until("c to run in the new sandbox", |h| h.was_created("c", 1)).await;
    h.until("the status", |h| h.container("c")["restartCount"] == 1 && h.phase() == "Running").await;

    let actions = h.rt.actions();
    let kill = position(&actions, |c| *c == Call::StopContainer { id: first.clone(), timeout: 0 });
    let stop_old = position(&actions, |c| *c == Call::StopPodSandbox(old.clone()));
    let run_new = position(&actions, |c| matches!(c, Call::RunPodSandbox { id, .. } if *id == new));
    let create = position(&actions, |c| matches!(c, Call::CreateContainer { attempt: 1, .. }));
    assert!(kill < stop_old && stop_old < run_new && run_new < create, "{actions:#?}");
    let Call::CreateContainer { sandbox, .. } = &actions[create] else { unreachable!() };
    assert_eq!(sandbox, &new);
    assert_eq!(h.status()["podIP"], "10.42.0.3");
    assert_eq!(h.container("c")["lastState"]["terminated"]["exitCode"], 137);
    h.until("the event", |h| h.event_reasons().iter().any(|r| r == "SandboxChanged")).await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_sandbox_creation_is_retried() {
    let mut h = Harness::new();
    h.rt.fail_run_pod_sandbox(2, "failed to setup network for sandbox: plugin type=\"bridge\" failed");
    h.start(pod(json!({"containers": [{"name": "c", "image": IMAGE}]})));
    h.until("the failure to be reported", |h| h.container("c")["state"]["waiting"]["reason"] == "ContainerCreating")
        .await;
    assert_eq!(h.phase(), "Pending");
    assert_eq!(condition(&h.status(), "PodReadyToStartContainers")["status"], "False");
    h.until("the pod to run", |h| h.phase() == "Running").await;
    let attempts = h.rt.calls().iter().filter(|c| matches!(c, Call::RunPodSandbox { .. })).count();
    assert_eq!(attempts, 3);
    assert!(h.event_reasons().iter().any(|r| r == "FailedCreatePodSandBox"));
}

#[tokio::test(start_paused = true)]
async fn oom_killed_shows_in_the_status() {
    let mut h = Harness::new();
    h.start(pod(json!({"containers": [{"name": "c", "image": IMAGE}]})));
    h.until("the pod to run", |h| h.phase() == "Running").await;
    assert!(h.rt.exit_now("c", 137, "OOMKilled"));
    h.until("the restart", |h| h.container("c")["restartCount"] == 1).await;
    let c = h.container("c");
    assert!(c["state"].get("running").is_some(), "{c:#}");
    assert_eq!(c["lastState"]["terminated"]["reason"], "OOMKilled");
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 137);

    // With restartPolicy Never the run that was killed is the state.
    let mut h = Harness::new();
    h.start(pod(json!({"restartPolicy": "Never", "containers": [{"name": "c", "image": IMAGE}]})));
    h.until("the pod to run", |h| h.phase() == "Running").await;
    assert!(h.rt.exit_now("c", 137, "OOMKilled"));
    h.until("the pod to fail", |h| h.phase() == "Failed").await;
    assert_eq!(h.container("c")["state"]["terminated"]["reason"], "OOMKilled");
}

#[tokio::test(start_paused = true)]
async fn a_dead_sandbox_of_a_pod_that_never_restarts_is_not_replaced() {
    let mut h = Harness::new();
    h.start(pod(json!({"restartPolicy": "Never", "containers": [{"name": "c", "image": IMAGE}]})));
    h.until("the pod to run", |h| h.phase() == "Running").await;
    let old = h.sandboxes_run()[0].1.clone();
    assert!(h.rt.kill_sandbox(&old));
    h.until("the pod to fail", |h| h.phase() == "Failed").await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(h.sandboxes_run().len(), 1);
    assert_eq!(h.created(), [("c".to_string(), 0)]);
    assert_eq!(h.container("c")["state"]["terminated"]["exitCode"], 137);
    let id = h.rt.container_id("c", 0).unwrap();
    assert!(h.rt.actions().contains(&Call::StopContainer { id, timeout: 0 }));
}

#[tokio::test(start_paused = true)]
async fn a_failed_init_container_is_retried_with_back_off_and_gates_the_app() {
    let mut h = Harness::new();
    h.rt.exit_after("init", Duration::from_secs(1), 1, "");
    h.start(pod(json!({
        "initContainers": [{"name": "init", "image": IMAGE}],
        "containers": [{"name": "app", "image": IMAGE}],
    })));
    h.until("the back-off", |h| h.container("init")["state"]["waiting"]["reason"] == "CrashLoopBackOff").await;
    let init = h.container("init");
    assert_eq!(init["restartCount"], 1);
    assert_eq!(init["lastState"]["terminated"]["exitCode"], 1);
    assert_eq!(h.phase(), "Pending");
    assert_eq!(condition(&h.status(), "Initialized")["status"], "False");
    assert_eq!(h.container("app")["state"]["waiting"]["reason"], "PodInitializing");
    h.until("the third run", |h| h.was_created("init", 2)).await;
    assert!(h.created().iter().all(|(n, _)| n == "init"));
    let events = h.api.events();
    let back_off = events.iter().find(|e| e["reason"] == "BackOff").expect("a BackOff event");
    assert_eq!(back_off["involvedObject"]["fieldPath"], "spec.initContainers{init}");
    assert_eq!(back_off["type"], "Warning");

    // Once it succeeds the app starts.
    h.rt.exit_after("init", Duration::from_secs(1), 0, "");
    h.until("the app to start", |h| h.phase() == "Running").await;
    assert_eq!(h.container("init")["state"]["terminated"]["exitCode"], 0);
}

#[tokio::test(start_paused = true)]
async fn a_failed_init_container_of_a_pod_that_never_restarts_fails_the_pod() {
    let mut h = Harness::new();
    h.rt.exit_after("init", Duration::from_secs(1), 2, "");
    h.start(pod(json!({
        "restartPolicy": "Never",
        "initContainers": [{"name": "init", "image": IMAGE}],
        "containers": [{"name": "app", "image": IMAGE}],
    })));
    h.until("the pod to fail", |h| h.phase() == "Failed").await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(h.created(), [("init".to_string(), 0)]);
    assert_eq!(h.container("init")["state"]["terminated"]["exitCode"], 2);
    assert_eq!(h.container("app")["state"]["waiting"]["reason"], "PodInitializing");
    assert!(h.rt.actions().iter().any(|c| matches!(c, Call::StopPodSandbox(_))));
}
