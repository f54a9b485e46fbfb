//! A pod's status from what the runtime shows: container statuses (state, last state, restart
//! count, readiness), the phase by upstream's rules and the kubelet's conditions. Pure: the
//! worker gathers the observations, this turns them into the API's shape.

use chrono::{DateTime, TimeZone, Utc};
use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{Value, json};
use std::collections::HashMap;

/// Runtime state of one container instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Created, not started.
    Created,
    /// Running.
    Running,
    /// Exited.
    Exited,
    /// The runtime does not know.
    Unknown,
}

/// One instance (run) of a container, as the runtime reports it.
#[derive(Clone, Debug)]
pub struct Instance {
    /// Runtime container id.
    pub id: String,
    /// Restart count it was started as.
    pub attempt: u32,
    /// Its state.
    pub state: State,
    /// Creation, start and finish times in Unix nanoseconds (0 when not yet).
    pub created_at: i64,
    /// See `created_at`.
    pub started_at: i64,
    /// See `created_at`.
    pub finished_at: i64,
    /// Exit code once exited.
    pub exit_code: i32,
    /// Runtime's reason once exited (`Completed`, `Error`, `OOMKilled`).
    pub reason: String,
    /// Termination message.
    pub message: String,
    /// Image reference (`imageID`).
    pub image_ref: String,
}

/// Why a container is waiting, when the kubelet knows better than "not created yet".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    /// e.g. `CrashLoopBackOff`, `ErrImagePull`, `CreateContainerConfigError`.
    pub reason: String,
    /// Human-readable detail.
    pub message: String,
}

/// What the worker observed of a pod.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// The sandbox is up with its network.
    pub sandbox_ready: bool,
    /// Pod IP from the sandbox.
    pub pod_ip: Option<String>,
    /// Node address.
    pub host_ip: String,
    /// Instances of each container by name, newest first.
    pub instances: HashMap<String, Vec<Instance>>,
    /// Waiting reasons the kubelet set.
    pub waiting: HashMap<String, Waiting>,
    /// Readiness probe results (absent = no probe yet run; containers without a probe are ready
    /// once running).
    pub ready: HashMap<String, bool>,
    /// Startup probe results (absent = started unless a startup probe exists).
    pub started: HashMap<String, bool>,
    /// When the kubelet first acted on the pod.
    pub start_time: Option<DateTime<Utc>>,
    /// The pod failed as a whole (e.g. rejected at admission, deadline exceeded).
    pub failed: Option<Waiting>,
    /// The pod was deleted and its containers have been stopped: nothing restarts any more,
    /// so the phase is final whatever the restart policy (upstream's terminal pod).
    pub terminated: bool,
}

fn time(nanos: i64) -> Value {
    if nanos <= 0 {
        return Value::Null;
    }
    let t = Utc.timestamp_nanos(nanos);
    json!(t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

fn terminated(i: &Instance) -> Value {
    let reason = if !i.reason.is_empty() {
        i.reason.clone()
    } else if i.exit_code == 0 {
        "Completed".into()
    } else {
        "Error".into()
    };
    let mut t = json!({
        "exitCode": i.exit_code,
        "reason": reason,
        "startedAt": time(i.started_at),
        "finishedAt": time(i.finished_at),
        "containerID": container_id(&i.id),
    });
    if !i.message.is_empty() {
        t["message"] = json!(i.message);
    }
    json!({ "terminated": t })
}

/// `containerd://<id>`, the form container IDs take in the API.
pub fn container_id(id: &str) -> String {
    format!("containerd://{id}")
}

fn has_startup_probe(c: &Container) -> bool {
    c.startup_probe.is_some()
}

/// One entry of `containerStatuses` / `initContainerStatuses`.
fn container_status(c: &Container, obs: &Observed, default_waiting: &str) -> Value {
    let list = obs.instances.get(&c.name).map(Vec::as_slice).unwrap_or(&[]);
    let newest = list.first();
    let image = c.image.clone().unwrap_or_default();
    let waiting = obs.waiting.get(&c.name);
    let mut st = json!({
        "name": c.name,
        "image": image,
        "imageID": newest.map(|i| i.image_ref.clone()).unwrap_or_default(),
        "restartCount": newest.map(|i| i.attempt).unwrap_or(0),
        "ready": false,
        "started": false,
    });
    let waiting_value = |w: Option<&Waiting>, fallback: &str| match w {
        Some(w) if w.message.is_empty() => json!({ "waiting": { "reason": w.reason } }),
        Some(w) => json!({ "waiting": { "reason": w.reason, "message": w.message } }),
        None => json!({ "waiting": { "reason": fallback } }),
    };
    match newest {
        None => st["state"] = waiting_value(waiting, default_waiting),
        Some(i) => {
            st["containerID"] = json!(container_id(&i.id));
            match i.state {
                State::Running => {
                    let started = !has_startup_probe(c) || obs.started.get(&c.name).copied().unwrap_or(false);
                    let ready = started && obs.ready.get(&c.name).copied().unwrap_or(c.readiness_probe.is_none());
                    st["state"] = json!({ "running": { "startedAt": time(i.started_at) } });
                    st["started"] = json!(started);
                    st["ready"] = json!(ready);
                    if let Some(prev) = list.get(1) {
                        st["lastState"] = terminated(prev);
                    }
                }
                State::Exited if waiting.is_some() => {
                    // Waiting to be restarted (back-off, config error): the run that ended is the
                    // last state.
                    st["state"] = waiting_value(waiting, "");
                    st["lastState"] = terminated(i);
                }
                State::Exited => {
                    st["state"] = terminated(i);
                    if let Some(prev) = list.get(1) {
                        st["lastState"] = terminated(prev);
                    }
                }
                State::Created | State::Unknown => {
                    st["state"] = waiting_value(waiting, default_waiting);
                    if let Some(prev) = list.get(1) {
                        st["lastState"] = terminated(prev);
                    }
                }
            }
        }
    }
    if st.get("lastState").is_none() {
        st["lastState"] = json!({});
    }
    st
}

fn exited_ok(list: Option<&Vec<Instance>>) -> bool {
    list.and_then(|l| l.first()).is_some_and(|i| i.state == State::Exited && i.exit_code == 0)
}

/// Init containers are done: each has a newest instance that exited 0.
pub fn initialized(pod: &Pod, obs: &Observed) -> bool {
    let spec = pod.spec.as_ref();
    spec.and_then(|s| s.init_containers.as_ref())
        .map(|l| l.iter().all(|c| exited_ok(obs.instances.get(&c.name))))
        .unwrap_or(true)
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always")
}

/// The phase by upstream's rules over the app containers' statuses.
fn phase(pod: &Pod, obs: &Observed, statuses: &[Value], init_failed: bool) -> &'static str {
    if obs.failed.is_some() || init_failed {
        return "Failed";
    }
    if !initialized(pod, obs) {
        return "Pending";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in statuses {
        let state = &s["state"];
        if state.get("running").is_some() {
            running += 1;
        } else if let Some(t) = state.get("terminated") {
            stopped += 1;
            if t["exitCode"] == 0 {
                succeeded += 1;
            }
        } else if s["lastState"].get("terminated").is_some() {
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    let policy = restart_policy(pod);
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 {
        if obs.terminated {
            if stopped == succeeded { "Succeeded" } else { "Failed" }
        } else if policy == "Always" {
            "Running"
        } else if stopped == succeeded {
            "Succeeded"
        } else if policy == "Never" {
            "Failed"
        } else {
            "Running"
        }
    } else {
        "Pending"
    }
}

fn condition(previous: Option<&Value>, t: &str, ok: bool, reason: &str, message: &str, now: &str) -> Value {
    let status = if ok { "True" } else { "False" };
    let old = previous
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .and_then(|l| l.iter().find(|c| c["type"] == t));
    let since = old
        .filter(|c| c["status"] == status)
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(now));
    let mut c = json!({ "type": t, "status": status, "lastProbeTime": null, "lastTransitionTime": since });
    if !ok && !reason.is_empty() {
        c["reason"] = json!(reason);
        c["message"] = json!(message);
    }
    c
}

/// The pod's new status. Conditions the kubelet does not own (PodScheduled, DisruptionTarget,
/// readiness gates) are kept from `previous`.
pub fn pod_status(pod: &Pod, obs: &Observed, now: DateTime<Utc>) -> Value {
    let previous = pod.status.as_ref().map(|s| serde_json::to_value(s).unwrap_or_default());
    let spec = pod.spec.clone().unwrap_or_default();
    let init_done = initialized(pod, obs);
    let init: Vec<Value> =
        spec.init_containers.iter().flatten().map(|c| container_status(c, obs, "PodInitializing")).collect();
    let init_failed = restart_policy(pod) == "Never"
        && spec.init_containers.iter().flatten().any(|c| {
            obs.instances
                .get(&c.name)
                .and_then(|l| l.first())
                .is_some_and(|i| i.state == State::Exited && i.exit_code != 0)
        });
    let default_app = if init_done { "ContainerCreating" } else { "PodInitializing" };
    let apps: Vec<Value> = spec.containers.iter().map(|c| container_status(c, obs, default_app)).collect();
    let phase = phase(pod, obs, &apps, init_failed);
    let now_s = now.format("%Y-%m-%dT%H:%M:%SZ").to_string();

    let incomplete: Vec<&str> = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| !exited_ok(obs.instances.get(&c.name)))
        .map(|c| c.name.as_str())
        .collect();
    let unready: Vec<&str> =
        spec.containers.iter().zip(&apps).filter(|(_, s)| s["ready"] != true).map(|(c, _)| c.name.as_str()).collect();
    let terminal = phase == "Succeeded" || phase == "Failed";
    let list = |v: &[&str]| format!("[{}]", v.join(" "));
    let mut conditions = vec![
        condition(previous.as_ref(), "PodReadyToStartContainers", obs.sandbox_ready, "", "", &now_s),
        if terminal && phase == "Succeeded" {
            let mut c = condition(previous.as_ref(), "Initialized", true, "", "", &now_s);
            c["reason"] = json!("PodCompleted");
            c
        } else {
            condition(
                previous.as_ref(),
                "Initialized",
                incomplete.is_empty(),
                "ContainersNotInitialized",
                &format!("containers with incomplete status: {}", list(&incomplete)),
                &now_s,
            )
        },
    ];
    let (ready_reason, ready_message) = if terminal {
        ("PodCompleted", String::new())
    } else if !incomplete.is_empty() {
        ("ContainersNotInitialized", format!("containers with incomplete status: {}", list(&incomplete)))
    } else {
        ("ContainersNotReady", format!("containers with unready status: {}", list(&unready)))
    };
    let all_ready = unready.is_empty() && init_done && !terminal;
    let mut containers_ready =
        condition(previous.as_ref(), "ContainersReady", all_ready, ready_reason, &ready_message, &now_s);
    if terminal {
        containers_ready["reason"] = json!("PodCompleted");
        containers_ready.as_object_mut().map(|o| o.remove("message"));
    }
    // Readiness gates: every gate's condition must be True for the pod to be Ready.
    let gates: Vec<String> = spec.readiness_gates.iter().flatten().map(|g| g.condition_type.clone()).collect();
    let gate_missing: Vec<&str> = gates
        .iter()
        .filter(|g| {
            !previous
                .as_ref()
                .and_then(|s| s["conditions"].as_array().cloned())
                .unwrap_or_default()
                .iter()
                .any(|c| c["type"] == g.as_str() && c["status"] == "True")
        })
        .map(String::as_str)
        .collect();
    let mut ready = if all_ready && !gate_missing.is_empty() {
        condition(
            previous.as_ref(),
            "Ready",
            false,
            "ReadinessGatesNotReady",
            &format!("corresponding condition of pod readiness gate {:?} does not exist.", gate_missing[0]),
            &now_s,
        )
    } else {
        condition(previous.as_ref(), "Ready", all_ready, ready_reason, &ready_message, &now_s)
    };
    if terminal {
        ready["reason"] = json!("PodCompleted");
        ready.as_object_mut().map(|o| o.remove("message"));
    }
    conditions.push(containers_ready);
    conditions.push(ready);
    // Keep the conditions others own.
    let ours = ["PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready"];
    if let Some(prev) = previous.as_ref().and_then(|s| s["conditions"].as_array()) {
        for c in prev {
            if !ours.contains(&c["type"].as_str().unwrap_or_default()) {
                conditions.push(c.clone());
            }
        }
    }

    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": obs.host_ip,
        "hostIPs": [{ "ip": obs.host_ip }],
        "containerStatuses": apps,
    });
    if !init.is_empty() {
        status["initContainerStatuses"] = Value::Array(init);
    }
    if let Some(ip) = &obs.pod_ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{ "ip": ip }]);
    }
    if let Some(t) = obs.start_time {
        status["startTime"] = json!(t.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    }
    if let Some(prev) = &previous {
        for k in ["qosClass", "nominatedNodeName", "startTime"] {
            if let Some(v) = prev.get(k).filter(|v| !v.is_null()) {
                status[k] = v.clone();
            }
        }
    }
    if let Some(f) = &obs.failed {
        status["reason"] = json!(f.reason);
        status["message"] = json!(f.message);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn inst(attempt: u32, state: State, exit_code: i32) -> Instance {
        Instance {
            id: format!("id{attempt}"),
            attempt,
            state,
            created_at: 1_700_000_000_000_000_000,
            started_at: 1_700_000_001_000_000_000,
            finished_at: if state == State::Exited { 1_700_000_002_000_000_000 } else { 0 },
            exit_code,
            reason: String::new(),
            message: String::new(),
            image_ref: "sha256:abc".into(),
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn cond<'a>(s: &'a Value, t: &str) -> &'a Value {
        s["conditions"].as_array().unwrap().iter().find(|c| c["type"] == t).unwrap()
    }

    #[test]
    fn running_container_makes_a_ready_running_pod() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            "status": {"qosClass": "BestEffort", "conditions": [{"type": "PodScheduled", "status": "True"}]}}));
        let mut obs = Observed {
            sandbox_ready: true,
            pod_ip: Some("10.42.0.5".into()),
            host_ip: "192.0.2.1".into(),
            ..Default::default()
        };
        obs.instances.insert("c".into(), vec![inst(0, State::Running, 0)]);
        let s = pod_status(&p, &obs, now());
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "10.42.0.5");
        assert_eq!(s["containerStatuses"][0]["ready"], true);
        assert_eq!(s["containerStatuses"][0]["containerID"], "containerd://id0");
        assert_eq!(cond(&s, "Ready")["status"], "True");
        assert_eq!(cond(&s, "PodScheduled")["status"], "True");
        assert_eq!(s["qosClass"], "BestEffort");
    }

    #[test]
    fn back_off_shows_waiting_with_the_last_run() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}));
        let mut obs = Observed::default();
        obs.instances.insert("c".into(), vec![inst(2, State::Exited, 1), inst(1, State::Exited, 1)]);
        obs.waiting.insert("c".into(), Waiting { reason: "CrashLoopBackOff".into(), message: "back-off 20s".into() });
        let s = pod_status(&p, &obs, now());
        let c = &s["containerStatuses"][0];
        assert_eq!(c["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(c["lastState"]["terminated"]["exitCode"], 1);
        assert_eq!(c["lastState"]["terminated"]["reason"], "Error");
        assert_eq!(c["restartCount"], 2);
        assert_eq!(s["phase"], "Running");
        assert_eq!(cond(&s, "Ready")["message"], "containers with unready status: [c]");
    }

    #[test]
    fn a_deleted_pod_ends_in_a_final_phase() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}}));
        let mut obs = Observed::default();
        obs.instances.insert("a".into(), vec![inst(0, State::Exited, 137)]);
        assert_eq!(pod_status(&p, &obs, now())["phase"], "Running");
        obs.terminated = true;
        assert_eq!(pod_status(&p, &obs, now())["phase"], "Failed");
        obs.instances.insert("a".into(), vec![inst(0, State::Exited, 0)]);
        assert_eq!(pod_status(&p, &obs, now())["phase"], "Succeeded");
    }

    #[test]
    fn phases_for_restart_policy_never() {
        let p = pod(
            json!({"metadata": {"name": "p"}, "spec": {"restartPolicy": "Never", "containers": [{"name": "a"}, {"name": "b"}]}}),
        );
        let mut obs = Observed::default();
        obs.instances.insert("a".into(), vec![inst(0, State::Exited, 0)]);
        obs.instances.insert("b".into(), vec![inst(0, State::Exited, 0)]);
        let s = pod_status(&p, &obs, now());
        assert_eq!(s["phase"], "Succeeded");
        assert_eq!(cond(&s, "Ready")["reason"], "PodCompleted");
        obs.instances.insert("b".into(), vec![inst(0, State::Exited, 3)]);
        assert_eq!(pod_status(&p, &obs, now())["phase"], "Failed");
        obs.instances.insert("b".into(), vec![inst(0, State::Running, 0)]);
        assert_eq!(pod_status(&p, &obs, now())["phase"], "Running");
    }

    #[test]
    fn init_containers_gate_the_app_containers() {
        let p = pod(
            json!({"metadata": {"name": "p"}, "spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "c"}]}}),
        );
        let mut obs = Observed::default();
        obs.instances.insert("i".into(), vec![inst(0, State::Running, 0)]);
        let s = pod_status(&p, &obs, now());
        assert_eq!(s["phase"], "Pending");
        assert_eq!(s["containerStatuses"][0]["state"]["waiting"]["reason"], "PodInitializing");
        assert_eq!(cond(&s, "Initialized")["message"], "containers with incomplete status: [i]");
        obs.instances.insert("i".into(), vec![inst(0, State::Exited, 0)]);
        let s = pod_status(&p, &obs, now());
        assert_eq!(cond(&s, "Initialized")["status"], "True");
        assert_eq!(s["containerStatuses"][0]["state"]["waiting"]["reason"], "ContainerCreating");
    }

    #[test]
    fn readiness_probe_gates_readiness_and_transition_times_stay() {
        let p = pod(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "readinessProbe": {"exec": {"command": ["true"]}}}]}}),
        );
        let mut obs = Observed::default();
        obs.instances.insert("c".into(), vec![inst(0, State::Running, 0)]);
        let s = pod_status(&p, &obs, now());
        assert_eq!(s["containerStatuses"][0]["ready"], false);
        obs.ready.insert("c".into(), true);
        let mut p2 = p.clone();
        p2.status = serde_json::from_value(s).unwrap();
        let later = now() + chrono::Duration::seconds(5);
        let s = pod_status(&p2, &obs, later);
        assert_eq!(cond(&s, "Ready")["status"], "True");
        assert_eq!(cond(&s, "Ready")["lastTransitionTime"], "2026-01-01T00:00:05Z");
        assert_eq!(cond(&s, "PodReadyToStartContainers")["lastTransitionTime"], "2026-01-01T00:00:00Z");
    }
}
