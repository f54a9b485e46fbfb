//! What happens to a pod on a simulated node: the decision for its next step and the statuses a
//! kubelet would report. Pure functions, no I/O.

use crate::node::{stable_hex, time};
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod, PodCondition};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Pod annotation: the pod's containers run this many seconds (decimal allowed) and then exit,
/// for pods with `restartPolicy` `Never` or `OnFailure`.
pub const RUN_SECONDS_ANNOTATION: &str = "rudder.dev/simulate-run-seconds";
/// Pod annotation: the exit code of those containers (default 0; non-zero fails a `Never` pod).
pub const EXIT_CODE_ANNOTATION: &str = "rudder.dev/simulate-exit-code";
/// Exit code of containers stopped because their pod is deleted (SIGKILL after the grace period).
pub const KILLED_EXIT_CODE: i32 = 137;

/// Timings of the pod lifecycle.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Pending → Running.
    pub start_delay: Duration,
    /// How long a completing pod runs when it has no run-seconds annotation.
    pub run_duration: Duration,
    /// Upper bound on the wait for a deleted pod's grace period.
    pub deletion_cap: Duration,
}

/// The next step for one pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do until the pod changes.
    Idle,
    /// Look again at this time.
    At(Instant),
    /// Report it Running.
    Start,
    /// Report its containers exited with this code.
    Complete(i32),
    /// Its grace period is over: report its containers killed.
    Kill,
    /// Remove it from the API (DELETE with grace period 0).
    Remove,
}

/// What the engine knows about a pod besides the object.
#[derive(Clone, Copy, Debug)]
pub struct Seen {
    /// When the pod was first seen on the node.
    pub first: Instant,
    /// When its deletion was first seen.
    pub deletion: Option<Instant>,
}

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending")
}

/// Whether the pod is Succeeded or Failed.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata.annotations.as_ref().and_then(|a| a.get(key)).map(String::as_str)
}

/// How long the pod's containers run before they exit, and with what code; `None` for pods that
/// run until deleted. Pods that complete: `restartPolicy` other than `Always`, and owned by a Job
/// or carrying [`RUN_SECONDS_ANNOTATION`].
pub fn completion(pod: &Pod, default_run: Duration) -> Option<(Duration, i32)> {
    let policy = pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always");
    if policy == "Always" {
        return None;
    }
    let owned_by_job = pod.metadata.owner_references.as_ref().is_some_and(|refs| refs.iter().any(|r| r.kind == "Job"));
    let requested = annotation(pod, RUN_SECONDS_ANNOTATION);
    if !owned_by_job && requested.is_none() {
        return None;
    }
    let run = requested
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(1e9)))
        .unwrap_or(default_run);
    let mut code = annotation(pod, EXIT_CODE_ANNOTATION).and_then(|s| s.trim().parse::<i32>().ok()).unwrap_or(0);
    if policy == "OnFailure" {
        // The kubelet would restart a failing container forever; the simulation lets it succeed.
        code = 0;
    }
    Some((run, code))
}

/// A `metav1.Time` as chrono time.
fn chrono_time(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32)
}

fn start_time(pod: &Pod) -> Option<DateTime<Utc>> {
    pod.status.as_ref().and_then(|s| s.start_time.as_ref()).and_then(chrono_time)
}

/// The next step for `pod` at `now` (monotonic) / `wall` (its wall-clock equivalent).
pub fn decide(pod: &Pod, seen: Seen, timing: &Timing, now: Instant, wall: DateTime<Utc>) -> Decision {
    if pod.metadata.deletion_timestamp.is_some() {
        if is_terminal(pod) {
            return Decision::Remove;
        }
        let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(30).max(0) as u64;
        let due = seen.deletion.unwrap_or(now) + Duration::from_secs(grace).min(timing.deletion_cap);
        return if due <= now { Decision::Kill } else { Decision::At(due) };
    }
    match phase(pod) {
        "Succeeded" | "Failed" => Decision::Idle,
        "Running" => match completion(pod, timing.run_duration) {
            None => Decision::Idle,
            Some((run, code)) => {
                let started = start_time(pod).unwrap_or(wall);
                let end = started + chrono::Duration::from_std(run).unwrap_or(chrono::Duration::MAX);
                match (end - wall).to_std() {
                    Ok(left) if !left.is_zero() => Decision::At(now + left),
                    _ => Decision::Complete(code),
                }
            }
        },
        _ => {
            let due = seen.first + timing.start_delay;
            if due <= now { Decision::Start } else { Decision::At(due) }
        }
    }
}

/// `docker.io/library/busybox:1.36` for `busybox:1.36`, as container runtimes report images.
pub fn normalize_image(image: &str) -> String {
    let image = image.trim();
    let (first, _) = image.split_once('/').unwrap_or(("", image));
    let domain_like = image.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if domain_like {
        image.to_string()
    } else if image.contains('/') {
        format!("docker.io/{image}")
    } else {
        format!("docker.io/library/{image}")
    };
    let last = full.rsplit('/').next().unwrap_or("");
    if !last.contains(':') && !last.contains('@') {
        full.push_str(":latest");
    }
    full
}

/// A made-up but stable image digest reference, `repo@sha256:<64 hex>`.
pub fn image_id(image: &str) -> String {
    let full = normalize_image(image);
    let repo = match full.split_once('@') {
        Some((repo, _)) => repo.to_string(),
        None => {
            let slash = full.rfind('/').map(|i| i + 1).unwrap_or(0);
            match full[slash..].rfind(':') {
                Some(colon) => full[..slash + colon].to_string(),
                None => full.clone(),
            }
        }
    };
    format!("{repo}@sha256:{}", stable_hex(&["image", &full], 4))
}

/// `rudder-sim://<64 hex>`, stable for one pod, container and restart count.
pub fn container_id(pod_uid: &str, container: &str, restarts: i32) -> String {
    format!("rudder-sim://{}", stable_hex(&["container", pod_uid, container, &restarts.to_string()], 4))
}

fn existing_status<'a>(pod: &'a Pod, name: &str, init: bool) -> Option<&'a ContainerStatus> {
    let s = pod.status.as_ref()?;
    let list = if init { s.init_container_statuses.as_ref() } else { s.container_statuses.as_ref() }?;
    list.iter().find(|c| c.name == name)
}

fn running_since(pod: &Pod, name: &str, init: bool) -> Option<String> {
    existing_status(pod, name, init)
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.running.as_ref())
        .and_then(|r| r.started_at.as_ref())
        .and_then(chrono_time)
        .map(time)
}

fn base_status(pod: &Pod, c: &Container, init: bool) -> Value {
    let uid = pod.metadata.uid.as_deref().unwrap_or("");
    let image = c.image.as_deref().unwrap_or("");
    json!({
        "name": c.name,
        "image": normalize_image(image),
        "imageID": image_id(image),
        "containerID": container_id(uid, &c.name, 0),
        "restartCount": 0,
        "lastState": {},
        "ready": false,
        "started": false,
        "_init": init,
    })
}

fn strip(mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.remove("_init");
    }
    v
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// Conditions: `wanted` (type, status, reason) set over the pod's current ones; a condition whose
/// status is unchanged keeps its transition time, others the engine does not own are kept.
fn conditions(pod: &Pod, wanted: &[(&str, &str, Option<&str>)], now: &str) -> Value {
    let current: &[PodCondition] = pod.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or(&[]);
    let mut out: Vec<Value> = Vec::new();
    for (kind, status, reason) in wanted {
        let prev = current.iter().find(|c| c.type_ == *kind);
        let transition = prev
            .filter(|c| c.status == *status)
            .and_then(|c| c.last_transition_time.as_ref())
            .and_then(chrono_time)
            .map(time)
            .unwrap_or_else(|| now.to_string());
        let mut c = json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": transition});
        if let Some(r) = reason {
            c["reason"] = json!(r);
        }
        out.push(c);
    }
    for c in current {
        if !wanted.iter().any(|(k, _, _)| *k == c.type_) {
            out.push(serde_json::to_value(c).unwrap_or(Value::Null));
        }
    }
    out.retain(|c| !c.is_null());
    Value::Array(out)
}

/// The status patch (with the uid as precondition) that reports `pod` Running on the node at
/// `host_ip`, with `pod_ip`, at `now`.
pub fn running_patch(pod: &Pod, host_ip: &str, pod_ip: &str, now: DateTime<Utc>) -> Value {
    let now_text = time(now);
    let spec = pod.spec.as_ref();
    let started = start_time(pod).map(time).unwrap_or_else(|| now_text.clone());
    let containers: Vec<Value> = spec
        .map(|s| s.containers.as_slice())
        .unwrap_or(&[])
        .iter()
        .map(|c| {
            let mut s = base_status(pod, c, false);
            s["ready"] = json!(true);
            s["started"] = json!(true);
            s["state"] =
                json!({"running": {"startedAt": running_since(pod, &c.name, false).unwrap_or(now_text.clone())}});
            strip(s)
        })
        .collect();
    let init: Vec<Value> = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or(&[])
        .iter()
        .map(|c| {
            let mut s = base_status(pod, c, true);
            if is_sidecar(c) {
                s["ready"] = json!(true);
                s["started"] = json!(true);
                s["state"] =
                    json!({"running": {"startedAt": running_since(pod, &c.name, true).unwrap_or(started.clone())}});
            } else {
                s["ready"] = json!(true);
                s["state"] = json!({"terminated": {
                    "exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": started,
                    "containerID": s["containerID"],
                }});
            }
            strip(s)
        })
        .collect();
    let wanted = [
        ("PodReadyToStartContainers", "True", None),
        ("Initialized", "True", None),
        ("Ready", "True", None),
        ("ContainersReady", "True", None),
        ("PodScheduled", "True", None),
    ];
    let mut status = json!({
        "phase": "Running",
        "conditions": conditions(pod, &wanted, &now_text),
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": started,
        "containerStatuses": containers,
    });
    if !init.is_empty() {
        status["initContainerStatuses"] = Value::Array(init);
    }
    json!({"metadata": {"uid": pod.metadata.uid}, "status": status})
}

/// The status patch that reports every container of `pod` exited with `exit_code` (`killed`:
/// stopped because the pod is being deleted), and the pod Succeeded or Failed.
pub fn terminated_patch(pod: &Pod, exit_code: i32, killed: bool, now: DateTime<Utc>) -> Value {
    let now_text = time(now);
    let spec = pod.spec.as_ref();
    let started = start_time(pod).map(time);
    let reason = if exit_code == 0 { "Completed" } else { "Error" };
    let terminate = |c: &Container, init: bool| {
        let mut s = base_status(pod, c, init);
        let since = running_since(pod, &c.name, init).or(started.clone()).unwrap_or(now_text.clone());
        s["state"] = json!({"terminated": {
            "exitCode": exit_code, "reason": reason, "startedAt": since, "finishedAt": now_text,
            "containerID": s["containerID"],
        }});
        strip(s)
    };
    let containers: Vec<Value> =
        spec.map(|s| s.containers.as_slice()).unwrap_or(&[]).iter().map(|c| terminate(c, false)).collect();
    let init: Vec<Value> = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or(&[])
        .iter()
        .map(|c| {
            if is_sidecar(c) {
                terminate(c, true)
            } else {
                let mut s = base_status(pod, c, true);
                let at = started.clone().unwrap_or(now_text.clone());
                s["ready"] = json!(true);
                s["state"] = json!({"terminated": {
                    "exitCode": 0, "reason": "Completed", "startedAt": at, "finishedAt": at,
                    "containerID": s["containerID"],
                }});
                strip(s)
            }
        })
        .collect();
    let succeeded = exit_code == 0 && !killed;
    let (phase, why) = if succeeded { ("Succeeded", "PodCompleted") } else { ("Failed", "PodFailed") };
    let wanted = [
        ("PodReadyToStartContainers", "False", None),
        ("Initialized", "True", Some("PodCompleted")),
        ("Ready", "False", Some(why)),
        ("ContainersReady", "False", Some(why)),
        ("PodScheduled", "True", None),
    ];
    let mut status = json!({
        "phase": phase,
        "conditions": conditions(pod, &wanted, &now_text),
        "containerStatuses": containers,
    });
    if started.is_none() {
        status["startTime"] = json!(now_text);
    }
    if !init.is_empty() {
        status["initContainerStatuses"] = Value::Array(init);
    }
    json!({"metadata": {"uid": pod.metadata.uid}, "status": status})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(extra: Value) -> Pod {
        let mut v = json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "uid-1", "resourceVersion": "5"},
            "spec": {
                "nodeName": "sim-1",
                "containers": [{"name": "main", "image": "busybox:1.36"}, {"name": "side", "image": "ghcr.io/x/y"}],
            },
            "status": {"phase": "Pending", "qosClass": "BestEffort", "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
            ]},
        });
        merge(&mut v, extra);
        serde_json::from_value(v).unwrap()
    }

    fn merge(a: &mut Value, b: Value) {
        match (a, b) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    fn timing() -> Timing {
        Timing {
            start_delay: Duration::from_millis(100),
            run_duration: Duration::from_secs(2),
            deletion_cap: Duration::from_secs(1),
        }
    }

    fn wall() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z").unwrap().with_timezone(&Utc)
    }

    #[test]
    fn pending_pods_start_after_the_delay() {
        let t0 = Instant::now();
        let seen = Seen { first: t0, deletion: None };
        let p = pod(json!({}));
        assert_eq!(decide(&p, seen, &timing(), t0, wall()), Decision::At(t0 + Duration::from_millis(100)));
        assert_eq!(decide(&p, seen, &timing(), t0 + Duration::from_millis(100), wall()), Decision::Start);
    }

    #[test]
    fn running_status_is_complete() {
        let p = pod(json!({"spec": {"initContainers": [
            {"name": "init", "image": "busybox"},
            {"name": "sidecar", "image": "envoy", "restartPolicy": "Always"},
        ]}}));
        let patch = running_patch(&p, "10.200.0.2", "10.244.1.2", wall());
        assert_eq!(patch["metadata"]["uid"], "uid-1");
        let s = &patch["status"];
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "10.244.1.2");
        assert_eq!(s["podIPs"], json!([{"ip": "10.244.1.2"}]));
        assert_eq!(s["hostIP"], "10.200.0.2");
        assert_eq!(s["hostIPs"], json!([{"ip": "10.200.0.2"}]));
        assert_eq!(s["startTime"], "2026-01-02T03:04:05Z");
        assert!(s.get("qosClass").is_none(), "left to the server");
        let types: Vec<&str> =
            s["conditions"].as_array().unwrap().iter().map(|c| c["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]);
        assert!(s["conditions"].as_array().unwrap().iter().all(|c| c["status"] == "True"));
        assert_eq!(s["conditions"][4]["lastTransitionTime"], "2026-01-01T00:00:00Z", "kept");
        let main = &s["containerStatuses"][0];
        assert_eq!(main["name"], "main");
        assert_eq!(main["ready"], true);
        assert_eq!(main["started"], true);
        assert_eq!(main["restartCount"], 0);
        assert_eq!(main["image"], "docker.io/library/busybox:1.36");
        assert!(main["imageID"].as_str().unwrap().starts_with("docker.io/library/busybox@sha256:"));
        assert!(main["containerID"].as_str().unwrap().starts_with("rudder-sim://"));
        assert_eq!(main["state"]["running"]["startedAt"], "2026-01-02T03:04:05Z");
        assert!(main.get("_init").is_none());
        assert_eq!(s["containerStatuses"][1]["image"], "ghcr.io/x/y:latest");
        let init = &s["initContainerStatuses"];
        assert_eq!(init[0]["state"]["terminated"]["reason"], "Completed");
        assert_eq!(init[0]["state"]["terminated"]["exitCode"], 0);
        assert_eq!(init[1]["state"]["running"]["startedAt"], "2026-01-02T03:04:05Z");
        // The patch decodes as a PodStatus.
        let _: k8s_openapi::api::core::v1::PodStatus = serde_json::from_value(s.clone()).unwrap();
    }

    #[test]
    fn running_pods_run_until_deleted_unless_they_complete() {
        let t0 = Instant::now();
        let seen = Seen { first: t0, deletion: None };
        let running = json!({"status": {"phase": "Running", "startTime": "2026-01-02T03:04:05Z"}});
        assert_eq!(decide(&pod(running.clone()), seen, &timing(), t0, wall()), Decision::Idle);
        let mut job = running.clone();
        merge(
            &mut job,
            json!({"metadata": {"ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "j1", "controller": true}
            ]}, "spec": {"restartPolicy": "Never"}}),
        );
        let p = pod(job);
        assert_eq!(decide(&p, seen, &timing(), t0, wall()), Decision::At(t0 + Duration::from_secs(2)));
        let later = wall() + chrono::Duration::seconds(2);
        assert_eq!(decide(&p, seen, &timing(), t0, later), Decision::Complete(0));
        // A Job pod with restartPolicy Always (invalid for Jobs) never completes.
        let mut always = running.clone();
        merge(
            &mut always,
            json!({"metadata": {"ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "j1"}]}}),
        );
        assert_eq!(decide(&pod(always), seen, &timing(), t0, later), Decision::Idle);
    }

    #[test]
    fn annotations_ask_for_completion() {
        let p = pod(json!({
            "metadata": {"annotations": {RUN_SECONDS_ANNOTATION: "0.5", EXIT_CODE_ANNOTATION: "3"}},
            "spec": {"restartPolicy": "Never"},
        }));
        assert_eq!(completion(&p, Duration::from_secs(9)), Some((Duration::from_millis(500), 3)));
        let p = pod(json!({
            "metadata": {"annotations": {RUN_SECONDS_ANNOTATION: "1", EXIT_CODE_ANNOTATION: "3"}},
            "spec": {"restartPolicy": "OnFailure"},
        }));
        assert_eq!(completion(&p, Duration::from_secs(9)), Some((Duration::from_secs(1), 0)));
        let p = pod(json!({"metadata": {"annotations": {RUN_SECONDS_ANNOTATION: "1"}}}));
        assert_eq!(completion(&p, Duration::from_secs(9)), None, "restartPolicy Always");
        let p = pod(
            json!({"metadata": {"annotations": {RUN_SECONDS_ANNOTATION: "bad"}}, "spec": {"restartPolicy": "Never"}}),
        );
        assert_eq!(completion(&p, Duration::from_secs(9)), Some((Duration::from_secs(9), 0)));
    }

    #[test]
    fn completed_status() {
        let p = pod(json!({"status": {"phase": "Running", "startTime": "2026-01-02T03:04:00Z"}}));
        let s = &terminated_patch(&p, 0, false, wall())["status"];
        assert_eq!(s["phase"], "Succeeded");
        let t = &s["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(t["exitCode"], 0);
        assert_eq!(t["reason"], "Completed");
        assert_eq!(t["startedAt"], "2026-01-02T03:04:00Z");
        assert_eq!(t["finishedAt"], "2026-01-02T03:04:05Z");
        assert_eq!(s["containerStatuses"][0]["ready"], false);
        let ready = s["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["reason"], "PodCompleted");
        let _: k8s_openapi::api::core::v1::PodStatus = serde_json::from_value(s.clone()).unwrap();

        let s = &terminated_patch(&p, 2, false, wall())["status"];
        assert_eq!(s["phase"], "Failed");
        assert_eq!(s["containerStatuses"][0]["state"]["terminated"]["reason"], "Error");
        let s = &terminated_patch(&p, KILLED_EXIT_CODE, true, wall())["status"];
        assert_eq!(s["phase"], "Failed");
    }

    #[test]
    fn deletion_waits_for_the_capped_grace_period() {
        let t0 = Instant::now();
        let deleting = json!({"metadata": {"deletionTimestamp": "2026-01-02T03:04:05Z", "deletionGracePeriodSeconds": 30},
            "status": {"phase": "Running"}});
        let p = pod(deleting);
        let seen = Seen { first: t0, deletion: Some(t0) };
        assert_eq!(decide(&p, seen, &timing(), t0, wall()), Decision::At(t0 + Duration::from_secs(1)));
        assert_eq!(decide(&p, seen, &timing(), t0 + Duration::from_secs(1), wall()), Decision::Kill);
        let short =
            pod(json!({"metadata": {"deletionTimestamp": "2026-01-02T03:04:05Z", "deletionGracePeriodSeconds": 0}}));
        assert_eq!(decide(&short, seen, &timing(), t0, wall()), Decision::Kill);
        let done =
            pod(json!({"metadata": {"deletionTimestamp": "2026-01-02T03:04:05Z", "deletionGracePeriodSeconds": 30},
            "status": {"phase": "Succeeded"}}));
        assert_eq!(decide(&done, seen, &timing(), t0, wall()), Decision::Remove);
    }

    #[test]
    fn images_are_normalised() {
        assert_eq!(normalize_image("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(normalize_image("bitnami/redis:7"), "docker.io/bitnami/redis:7");
        assert_eq!(normalize_image("registry.k8s.io/pause:3.10"), "registry.k8s.io/pause:3.10");
        assert_eq!(normalize_image("localhost:5000/app"), "localhost:5000/app:latest");
        assert!(image_id("nginx:1.27").starts_with("docker.io/library/nginx@sha256:"));
        assert!(image_id("localhost:5000/app").starts_with("localhost:5000/app@sha256:"));
        assert_eq!(container_id("u", "c", 0), container_id("u", "c", 0));
        assert_ne!(container_id("u", "c", 0), container_id("u", "d", 0));
    }
}
