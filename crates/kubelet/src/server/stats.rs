//! `GET /stats/summary`: a small subset of upstream's `statsapi.Summary`: the node's CPU and
//! memory (from `/proc`), and per pod its containers' CPU and memory as the runtime reports
//! them (`ListContainerStats`), with pod totals.

use super::{Body, State, full, text};
use crate::cri::types as api;
use crate::layout;
use chrono::{DateTime, TimeZone, Utc};
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Node-wide figures read from `/proc`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeUsage {
    /// CPU time spent by all cores, in nanoseconds.
    pub cpu_core_nanos: Option<u64>,
    /// `MemTotal`, bytes.
    pub memory_total: Option<u64>,
    /// `MemAvailable`, bytes.
    pub memory_available: Option<u64>,
    /// `MemFree`, bytes.
    pub memory_free: Option<u64>,
}

impl NodeUsage {
    /// Reads `/proc/stat` and `/proc/meminfo` as given.
    pub fn parse(stat: &str, meminfo: &str) -> NodeUsage {
        // Ticks are USER_HZ, 100 per second on every Linux architecture that matters.
        const NANOS_PER_TICK: u64 = 10_000_000;
        let cpu_core_nanos = stat.lines().find_map(|l| l.strip_prefix("cpu ")).map(|rest| {
            let v: Vec<u64> = rest.split_whitespace().filter_map(|n| n.parse().ok()).collect();
            // user nice system idle iowait irq softirq steal: everything but idle and iowait.
            let busy: u64 = v.iter().enumerate().filter(|(i, _)| *i != 3 && *i != 4 && *i < 8).map(|(_, n)| n).sum();
            busy * NANOS_PER_TICK
        });
        let kib = |key: &str| {
            meminfo.lines().find_map(|l| {
                let rest = l.strip_prefix(key)?.strip_prefix(':')?;
                rest.split_whitespace().next()?.parse::<u64>().ok().map(|n| n * 1024)
            })
        };
        NodeUsage {
            cpu_core_nanos,
            memory_total: kib("MemTotal"),
            memory_available: kib("MemAvailable"),
            memory_free: kib("MemFree"),
        }
    }
}

fn time(nanos: i64) -> String {
    Utc.timestamp_nanos(nanos).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn cpu(c: &api::CpuUsage) -> Value {
    let mut v = Map::new();
    v.insert("time".into(), json!(time(c.timestamp)));
    if let Some(n) = &c.usage_nano_cores {
        v.insert("usageNanoCores".into(), json!(n.value));
    }
    if let Some(n) = &c.usage_core_nano_seconds {
        v.insert("usageCoreNanoSeconds".into(), json!(n.value));
    }
    Value::Object(v)
}

fn memory(m: &api::MemoryUsage) -> Value {
    let mut v = Map::new();
    v.insert("time".into(), json!(time(m.timestamp)));
    for (key, val) in [
        ("availableBytes", &m.available_bytes),
        ("usageBytes", &m.usage_bytes),
        ("workingSetBytes", &m.working_set_bytes),
        ("rssBytes", &m.rss_bytes),
        ("pageFaults", &m.page_faults),
        ("majorPageFaults", &m.major_page_faults),
    ] {
        if let Some(n) = val {
            v.insert(key.into(), json!(n.value));
        }
    }
    Value::Object(v)
}

/// Sums the numeric fields of several `cpu`/`memory` objects (the latest time wins).
fn total(parts: &[&Value]) -> Option<Value> {
    if parts.is_empty() {
        return None;
    }
    let mut sum = Map::new();
    for p in parts {
        for (k, v) in p.as_object().into_iter().flatten() {
            match (k.as_str(), v) {
                ("time", t) => {
                    if sum.get("time").and_then(Value::as_str) < t.as_str() {
                        sum.insert("time".into(), t.clone());
                    }
                }
                // Available memory of a pod is not the sum of its containers'.
                ("availableBytes", _) => {}
                (_, n) => {
                    let acc = sum.get(k).and_then(Value::as_u64).unwrap_or(0);
                    sum.insert(k.clone(), json!(acc + n.as_u64().unwrap_or(0)));
                }
            }
        }
    }
    Some(Value::Object(sum))
}

/// Builds the summary from what the runtime reported.
pub fn build(
    node_name: &str,
    now: DateTime<Utc>,
    node: NodeUsage,
    sandboxes: &[api::PodSandbox],
    containers: &[api::Container],
    stats: &[api::ContainerStats],
) -> Value {
    let now_s = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut node_v = json!({"nodeName": node_name});
    let mut ncpu = json!({"time": now_s});
    if let Some(n) = node.cpu_core_nanos {
        ncpu["usageCoreNanoSeconds"] = json!(n);
    }
    node_v["cpu"] = ncpu;
    let mut nmem = json!({"time": now_s});
    if let (Some(total), Some(avail)) = (node.memory_total, node.memory_available) {
        nmem["availableBytes"] = json!(avail);
        nmem["workingSetBytes"] = json!(total.saturating_sub(avail));
    }
    if let (Some(total), Some(free)) = (node.memory_total, node.memory_free) {
        nmem["usageBytes"] = json!(total.saturating_sub(free));
    }
    node_v["memory"] = nmem;

    let ready = api::PodSandboxState::SandboxReady as i32;
    let running = api::ContainerState::ContainerRunning as i32;
    // Pods by (namespace, name, uid), from their ready sandboxes.
    let mut pods: BTreeMap<(String, String, String), (i64, Vec<Value>)> = BTreeMap::new();
    for s in sandboxes.iter().filter(|s| s.state == ready) {
        let Some(m) = &s.metadata else { continue };
        pods.insert((m.namespace.clone(), m.name.clone(), m.uid.clone()), (s.created_at, Vec::new()));
    }
    for st in stats {
        let Some(attrs) = &st.attributes else { continue };
        let Some(c) = containers.iter().find(|c| c.id == attrs.id && c.state == running) else { continue };
        let label = |k: &str| c.labels.get(k).cloned().unwrap_or_default();
        let key = (label(layout::LABEL_POD_NAMESPACE), label(layout::LABEL_POD_NAME), label(layout::LABEL_POD_UID));
        let Some((_, list)) = pods.get_mut(&key) else { continue };
        let name = c.labels.get(layout::LABEL_CONTAINER_NAME).cloned().unwrap_or_default();
        let mut cv = json!({"name": name, "startTime": time(c.created_at)});
        if let Some(u) = &st.cpu {
            cv["cpu"] = cpu(u);
        }
        if let Some(m) = &st.memory {
            cv["memory"] = memory(m);
        }
        list.push(cv);
    }
    let pods: Vec<Value> = pods
        .into_iter()
        .map(|((namespace, name, uid), (created, mut containers))| {
            containers.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
            let mut p = json!({
                "podRef": {"name": name, "namespace": namespace, "uid": uid},
                "startTime": time(created),
            });
            let cpus: Vec<&Value> = containers.iter().filter_map(|c| c.get("cpu")).collect();
            let mems: Vec<&Value> = containers.iter().filter_map(|c| c.get("memory")).collect();
            if let Some(c) = total(&cpus) {
                p["cpu"] = c;
            }
            if let Some(m) = total(&mems) {
                p["memory"] = m;
            }
            p["containers"] = Value::Array(containers);
            p
        })
        .collect();
    json!({"node": node_v, "pods": pods})
}

/// Serves `/stats/summary`.
pub(crate) async fn summary(state: &State) -> Response<Body> {
    let rt = state.runtime.as_ref();
    let (sandboxes, containers, stats) =
        match tokio::try_join!(rt.list_pod_sandboxes(), rt.list_containers(), rt.list_container_stats()) {
            Ok(x) => x,
            Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, format!("failed to get stats: {e:#}")),
        };
    let node = NodeUsage::parse(
        &std::fs::read_to_string("/proc/stat").unwrap_or_default(),
        &std::fs::read_to_string("/proc/meminfo").unwrap_or_default(),
    );
    let body = build(&crate::node::hostname(), Utc::now(), node, &sandboxes, &containers, &stats);
    let mut resp = Response::new(full(serde_json::to_vec(&body).unwrap_or_default()));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn reads_proc() {
        let stat = "cpu  100 5 50 1000 20 1 2 3 0 0\ncpu0 1 1 1 1\n";
        let meminfo = "MemTotal:        2000 kB\nMemFree:          500 kB\nMemAvailable:    1500 kB\n";
        let n = NodeUsage::parse(stat, meminfo);
        assert_eq!(n.cpu_core_nanos, Some(161 * 10_000_000));
        assert_eq!(
            (n.memory_total, n.memory_free, n.memory_available),
            (Some(2_048_000), Some(512_000), Some(1_536_000))
        );
        assert_eq!(NodeUsage::parse("", ""), NodeUsage::default());
    }

    fn labels(ns: &str, pod: &str, uid: &str, c: Option<&str>) -> HashMap<String, String> {
        let mut l = HashMap::from([
            (layout::LABEL_POD_NAMESPACE.to_string(), ns.to_string()),
            (layout::LABEL_POD_NAME.to_string(), pod.to_string()),
            (layout::LABEL_POD_UID.to_string(), uid.to_string()),
        ]);
        if let Some(c) = c {
            l.insert(layout::LABEL_CONTAINER_NAME.into(), c.into());
        }
        l
    }

    #[test]
    fn groups_containers_by_pod() {
        let sandbox = api::PodSandbox {
            id: "s1".into(),
            metadata: Some(api::PodSandboxMetadata {
                name: "web".into(),
                uid: "u1".into(),
                namespace: "ns".into(),
                attempt: 0,
            }),
            state: api::PodSandboxState::SandboxReady as i32,
            created_at: 1_700_000_000_000_000_000,
            labels: labels("ns", "web", "u1", None),
            ..Default::default()
        };
        let container = |id: &str, name: &str| api::Container {
            id: id.into(),
            pod_sandbox_id: "s1".into(),
            state: api::ContainerState::ContainerRunning as i32,
            created_at: 1_700_000_001_000_000_000,
            labels: labels("ns", "web", "u1", Some(name)),
            ..Default::default()
        };
        let stat = |id: &str, cpu: u64, mem: u64| api::ContainerStats {
            attributes: Some(api::ContainerAttributes { id: id.into(), ..Default::default() }),
            cpu: Some(api::CpuUsage {
                timestamp: 1_700_000_002_000_000_000,
                usage_core_nano_seconds: Some(api::UInt64Value { value: cpu }),
                usage_nano_cores: None,
            }),
            memory: Some(api::MemoryUsage {
                timestamp: 1_700_000_002_000_000_000,
                working_set_bytes: Some(api::UInt64Value { value: mem }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let now = Utc.timestamp_opt(1_700_000_003, 0).unwrap();
        let s = build(
            "n1",
            now,
            NodeUsage {
                cpu_core_nanos: Some(5),
                memory_total: Some(10),
                memory_available: Some(4),
                memory_free: Some(1),
            },
            &[sandbox],
            &[container("c1", "b"), container("c2", "a")],
            &[stat("c1", 100, 1000), stat("c2", 50, 24), stat("gone", 1, 1)],
        );
        assert_eq!(s["node"]["nodeName"], "n1");
        assert_eq!(s["node"]["memory"]["workingSetBytes"], 6);
        assert_eq!(s["node"]["memory"]["usageBytes"], 9);
        assert_eq!(s["node"]["cpu"]["usageCoreNanoSeconds"], 5);
        let pod = &s["pods"][0];
        assert_eq!(pod["podRef"], json!({"name": "web", "namespace": "ns", "uid": "u1"}));
        assert_eq!(pod["startTime"], "2023-11-14T22:13:20Z");
        assert_eq!(pod["containers"][0]["name"], "a");
        assert_eq!(pod["containers"][1]["cpu"]["usageCoreNanoSeconds"], 100);
        assert_eq!(pod["cpu"]["usageCoreNanoSeconds"], 150);
        assert_eq!(pod["memory"]["workingSetBytes"], 1024);
        assert_eq!(pod["memory"]["time"], "2023-11-14T22:13:22Z");
    }
}
