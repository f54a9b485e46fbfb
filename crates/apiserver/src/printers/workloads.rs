//! Printers of workload controllers: deployments, replica sets, stateful sets, daemon sets,
//! controller revisions, jobs, cron jobs, horizontal pod autoscalers, disruption budgets.

use super::format::{
    age, at, bool_text, containers, format_selector, human_duration, int, int_opt, labels, list, map, name,
    scalar_text, selector, since, text, time,
};
use super::{AGE, CONTAINERS, Column, IMAGES, NAME, Printer, Row};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// The printer of a workload kind.
pub fn printer(group: &str, kind: &str) -> Option<&'static Printer> {
    Some(match (group, kind) {
        ("apps", "Deployment") => &DEPLOYMENT,
        ("apps", "ReplicaSet") => &REPLICA_SET,
        ("apps", "StatefulSet") => &STATEFUL_SET,
        ("apps", "DaemonSet") => &DAEMON_SET,
        ("apps", "ControllerRevision") => &CONTROLLER_REVISION,
        ("batch", "Job") => &JOB,
        ("batch", "CronJob") => &CRON_JOB,
        ("autoscaling", "HorizontalPodAutoscaler") => &HORIZONTAL_POD_AUTOSCALER,
        ("policy", "PodDisruptionBudget") => &POD_DISRUPTION_BUDGET,
        _ => return None,
    })
}

const SELECTOR: Column = Column::wide("Selector", "string", "Label selector of the pods the controller manages.");

/// Deployment columns.
pub static DEPLOYMENT: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Ready", "string", "Ready pods out of the desired number."),
        Column::new("Up-to-date", "string", "Pods that run the newest pod template."),
        Column::new("Available", "string", "Pods that have been ready for at least minReadySeconds."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    row: |d, now| {
        let (names, images) = containers(list(d, "/spec/template/spec/containers"));
        let sel = selector(at(d, "/spec/selector")).unwrap_or_else(|| "<invalid>".to_string());
        Row::cells(vec![
            name(d),
            json!(format!("{}/{}", int(d, "/status/readyReplicas"), int_opt(d, "/spec/replicas").unwrap_or(1))),
            json!(int(d, "/status/updatedReplicas")),
            json!(int(d, "/status/availableReplicas")),
            json!(age(d, now)),
            json!(names),
            json!(images),
            json!(sel),
        ])
    },
};

/// ReplicaSet columns.
pub static REPLICA_SET: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Desired", "integer", "Pods the replica set should run."),
        Column::new("Current", "integer", "Pods the replica set runs now."),
        Column::new("Ready", "integer", "Pods of the replica set that are ready."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    row: |rs, now| replicas_row(rs, now, format_selector(at(rs, "/spec/selector"))),
};

/// The row of a replica set or replication controller (they differ only in how the selector
/// is written).
pub(super) fn replicas_row(obj: &Value, now: DateTime<Utc>, selector: String) -> Row {
    let (names, images) = containers(list(obj, "/spec/template/spec/containers"));
    Row::cells(vec![
        name(obj),
        json!(int_opt(obj, "/spec/replicas").unwrap_or(1)),
        json!(int(obj, "/status/replicas")),
        json!(int(obj, "/status/readyReplicas")),
        json!(age(obj, now)),
        json!(names),
        json!(images),
        json!(selector),
    ])
}

/// StatefulSet columns.
pub static STATEFUL_SET: Printer = Printer {
    columns: &[NAME, Column::new("Ready", "string", "Ready pods out of the desired number."), AGE, CONTAINERS, IMAGES],
    row: |s, now| {
        let (names, images) = containers(list(s, "/spec/template/spec/containers"));
        Row::cells(vec![
            name(s),
            json!(format!("{}/{}", int(s, "/status/readyReplicas"), int_opt(s, "/spec/replicas").unwrap_or(1))),
            json!(age(s, now)),
            json!(names),
            json!(images),
        ])
    },
};

/// DaemonSet columns.
pub static DAEMON_SET: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Desired", "integer", "Nodes that should run the daemon pod."),
        Column::new("Current", "integer", "Nodes that run the daemon pod."),
        Column::new("Ready", "integer", "Nodes whose daemon pod is ready."),
        Column::new("Up-to-date", "integer", "Nodes that run the newest pod template."),
        Column::new("Available", "integer", "Nodes whose daemon pod is available."),
        Column::new("Node Selector", "string", "Labels a node needs to run the daemon pod."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    row: |ds, now| {
        let (names, images) = containers(list(ds, "/spec/template/spec/containers"));
        Row::cells(vec![
            name(ds),
            json!(int(ds, "/status/desiredNumberScheduled")),
            json!(int(ds, "/status/currentNumberScheduled")),
            json!(int(ds, "/status/numberReady")),
            json!(int(ds, "/status/updatedNumberScheduled")),
            json!(int(ds, "/status/numberAvailable")),
            json!(labels(map(ds, "/spec/template/spec/nodeSelector"))),
            json!(age(ds, now)),
            json!(names),
            json!(images),
            json!(format_selector(at(ds, "/spec/selector"))),
        ])
    },
};

/// ControllerRevision columns.
pub static CONTROLLER_REVISION: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Controller", "string", "The object that owns the revision (kind.group/name)."),
        Column::new("Revision", "string", "The revision number."),
        AGE,
    ],
    row: |cr, now| {
        let owner = list(cr, "/metadata/ownerReferences").iter().find(|o| at(o, "/controller").as_bool() == Some(true));
        let controller = match owner {
            Some(o) => {
                let group = text(o, "/apiVersion").rsplit_once('/').map(|(g, _)| g).unwrap_or("");
                let kind = text(o, "/kind");
                let qualified = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
                if qualified.is_empty() {
                    text(o, "/name").to_string()
                } else {
                    format!("{}/{}", qualified.to_lowercase(), text(o, "/name"))
                }
            }
            None => "<none>".to_string(),
        };
        Row::cells(vec![name(cr), json!(controller), json!(int(cr, "/revision")), json!(age(cr, now))])
    },
};

/// Job columns.
pub static JOB: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Status", "string", "Complete, Failed, Terminating, Suspended, FailureTarget or Running."),
        Column::new("Completions", "string", "Succeeded pods out of the completions the job needs."),
        Column::new("Duration", "string", "How long the job ran, or has been running."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    row: job,
};

/// Whether the first condition of this type is true (upstream's `hasJobCondition`).
fn job_condition(j: &Value, kind: &str) -> bool {
    list(j, "/status/conditions")
        .iter()
        .find(|c| text(c, "/type") == kind)
        .is_some_and(|c| text(c, "/status") == "True")
}

fn job(j: &Value, now: DateTime<Utc>) -> Row {
    let succeeded = int(j, "/status/succeeded");
    let completions = match int_opt(j, "/spec/completions") {
        Some(c) => format!("{succeeded}/{c}"),
        None => match int(j, "/spec/parallelism") {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let duration = match (time(at(j, "/status/startTime")), time(at(j, "/status/completionTime"))) {
        (None, _) => String::new(),
        (Some(start), None) => since(Some(start), now),
        (Some(start), Some(end)) => human_duration((end - start).num_milliseconds()),
    };
    let status = if job_condition(j, "Complete") {
        "Complete"
    } else if job_condition(j, "Failed") {
        "Failed"
    } else if !at(j, "/metadata/deletionTimestamp").is_null() {
        "Terminating"
    } else if job_condition(j, "Suspended") {
        "Suspended"
    } else if job_condition(j, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = containers(list(j, "/spec/template/spec/containers"));
    Row::cells(vec![
        name(j),
        json!(status),
        json!(completions),
        json!(duration),
        json!(age(j, now)),
        json!(names),
        json!(images),
        json!(format_selector(at(j, "/spec/selector"))),
    ])
}

/// CronJob columns.
pub static CRON_JOB: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Schedule", "string", "The cron schedule jobs are started on."),
        Column::new("Timezone", "string", "Time zone of the schedule."),
        Column::new("Suspend", "boolean", "Whether new runs are held back."),
        Column::new("Active", "integer", "Jobs of the cron job that are running."),
        Column::new("Last Schedule", "string", "Time since a job was last scheduled."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    row: |cj, now| {
        let last = match time(at(cj, "/status/lastScheduleTime")) {
            Some(t) => since(Some(t), now),
            None => "<none>".to_string(),
        };
        let (names, images) = containers(list(cj, "/spec/jobTemplate/spec/template/spec/containers"));
        Row::cells(vec![
            name(cj),
            json!(text(cj, "/spec/schedule")),
            json!(at(cj, "/spec/timeZone").as_str().unwrap_or("<none>")),
            json!(bool_text(at(cj, "/spec/suspend").as_bool())),
            json!(list(cj, "/status/active").len() as i64),
            json!(last),
            json!(age(cj, now)),
            json!(names),
            json!(images),
            json!(format_selector(at(cj, "/spec/jobTemplate/spec/selector"))),
        ])
    },
};

/// HorizontalPodAutoscaler columns (cells from the autoscaling/v2 shape).
pub static HORIZONTAL_POD_AUTOSCALER: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Reference", "string", "The scaled object (kind/name)."),
        Column::new("Targets", "string", "Current against target values of the metrics the autoscaler follows."),
        Column::new("MinPods", "string", "Fewest replicas the autoscaler sets."),
        Column::new("MaxPods", "string", "Most replicas the autoscaler sets."),
        Column::new("Replicas", "string", "Replicas the scaled object has now."),
        AGE,
    ],
    row: |h, now| {
        let reference = format!("{}/{}", text(h, "/spec/scaleTargetRef/kind"), text(h, "/spec/scaleTargetRef/name"));
        let min = match int_opt(h, "/spec/minReplicas") {
            Some(n) => n.to_string(),
            None => "<unset>".to_string(),
        };
        Row::cells(vec![
            name(h),
            json!(reference),
            json!(hpa_metrics(list(h, "/spec/metrics"), list(h, "/status/currentMetrics"))),
            json!(min),
            json!(int(h, "/spec/maxReplicas")),
            json!(int(h, "/status/currentReplicas")),
            json!(age(h, now)),
        ])
    },
};

/// One quantity of a metric target or current value, or `<unknown>`.
fn quantity(v: &Value, pointer: &str) -> String {
    scalar_text(at(v, pointer)).unwrap_or_else(|| "<unknown>".to_string())
}

/// Upstream's `formatHPAMetrics`: `current/target` per metric, at most two, then a count.
fn hpa_metrics(specs: &[Value], statuses: &[Value]) -> String {
    const MAX: usize = 2;
    if specs.is_empty() {
        return "<none>".to_string();
    }
    let mut out: Vec<String> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let status = statuses.get(i);
        // The status entry for this metric's source, if the autoscaler reported one.
        let current = |source: &str| status.map(|s| at(s, source)).filter(|v| v.is_object());
        let text_of =
            |source: &str, field: &str| current(source).and_then(|c| scalar_text(at(c, &format!("/current/{field}"))));
        let entry = match text(spec, "/type") {
            kind @ ("External" | "Object") => {
                let source = if kind == "External" { "/external" } else { "/object" };
                let target = at(spec, &format!("{source}/target"));
                if !at(target, "/averageValue").is_null() {
                    let cur = text_of(source, "averageValue").unwrap_or_else(|| "<unknown>".into());
                    format!("{cur}/{} (avg)", quantity(target, "/averageValue"))
                } else {
                    let cur = text_of(source, "value").unwrap_or_else(|| "<unknown>".into());
                    format!("{cur}/{}", quantity(target, "/value"))
                }
            }
            "Pods" => {
                let cur = text_of("/pods", "averageValue").unwrap_or_else(|| "<unknown>".into());
                format!("{cur}/{}", quantity(spec, "/pods/target/averageValue"))
            }
            kind @ ("Resource" | "ContainerResource") => {
                let source = if kind == "Resource" { "/resource" } else { "/containerResource" };
                let res_name = text(spec, &format!("{source}/name"));
                let target = at(spec, &format!("{source}/target"));
                if !at(target, "/averageValue").is_null() {
                    let cur = text_of(source, "averageValue").unwrap_or_else(|| "<unknown>".into());
                    format!("{res_name}: {cur}/{}", quantity(target, "/averageValue"))
                } else {
                    let cur = text_of(source, "averageUtilization")
                        .map(|u| format!("{u}%"))
                        .unwrap_or_else(|| "<unknown>".into());
                    let goal = match int_opt(target, "/averageUtilization") {
                        Some(u) => format!("{u}%"),
                        None => "<auto>".to_string(),
                    };
                    format!("{res_name}: {cur}/{goal}")
                }
            }
            _ => "<unknown type>".to_string(),
        };
        out.push(entry);
    }
    let total = out.len();
    if total > MAX {
        out.truncate(MAX);
        return format!("{} + {} more...", out.join(", "), total - MAX);
    }
    out.join(", ")
}

/// PodDisruptionBudget columns.
pub static POD_DISRUPTION_BUDGET: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Min Available", "string", "Pods that must stay available."),
        Column::new("Max Unavailable", "string", "Pods that may be unavailable."),
        Column::new("Allowed Disruptions", "integer", "Pods that may be disrupted right now."),
        AGE,
    ],
    row: |pdb, now| {
        let or_na = |pointer: &str| scalar_text(at(pdb, pointer)).unwrap_or_else(|| "N/A".to_string());
        Row::cells(vec![
            name(pdb),
            json!(or_na("/spec/minAvailable")),
            json!(or_na("/spec/maxUnavailable")),
            json!(int(pdb, "/status/disruptionsAllowed")),
            json!(age(pdb, now)),
        ])
    },
};

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn cells(p: &Printer, obj: Value) -> Vec<Value> {
        (p.row)(&obj, now()).cells
    }

    #[test]
    fn deployments() {
        let d = json!({
            "metadata": {"name": "web", "creationTimestamp": "2024-04-14T12:00:00Z"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]}},
            },
            "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
        });
        assert_eq!(
            cells(&DEPLOYMENT, d),
            json!(["web", "2/3", 3, 2, "17d", "app,log", "nginx:1.27,busybox", "app=web"]).as_array().unwrap().clone()
        );
        let fresh = json!({"metadata": {"name": "new"}, "spec": {"replicas": 0, "selector": {}}});
        assert_eq!(
            cells(&DEPLOYMENT, fresh),
            json!(["new", "0/0", 0, 0, "<unknown>", "", "", ""]).as_array().unwrap().clone()
        );
    }

    #[test]
    fn jobs_and_cron_jobs() {
        let j = json!({
            "metadata": {"name": "pi", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {"completions": 3, "selector": {"matchLabels": {"job-name": "pi"}}, "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}},
            "status": {"succeeded": 3, "startTime": "2024-05-01T11:00:05Z", "completionTime": "2024-05-01T11:02:15Z",
                       "conditions": [{"type": "Complete", "status": "True"}]},
        });
        assert_eq!(
            cells(&JOB, j),
            json!(["pi", "Complete", "3/3", "2m10s", "60m", "pi", "perl", "job-name=pi"]).as_array().unwrap().clone()
        );
        let running = json!({"metadata": {"name": "r"}, "spec": {"parallelism": 2}, "status": {"startTime": "2024-05-01T11:59:00Z"}});
        let c = cells(&JOB, running);
        assert_eq!((c[1].clone(), c[2].clone(), c[3].clone()), (json!("Running"), json!("0/1 of 2"), json!("60s")));
        let cj = json!({
            "metadata": {"name": "nightly", "creationTimestamp": "2024-04-30T12:00:00Z"},
            "spec": {"schedule": "0 2 * * *", "suspend": false, "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}},
            "status": {"active": [{"name": "nightly-1"}], "lastScheduleTime": "2024-05-01T02:00:00Z"},
        });
        assert_eq!(
            cells(&CRON_JOB, cj),
            json!(["nightly", "0 2 * * *", "<none>", "False", 1, "10h", "24h", "", "", "<none>"])
                .as_array()
                .unwrap()
                .clone()
        );
    }

    #[test]
    fn autoscalers_budgets_and_revisions() {
        let hpa = json!({
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5, "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}},
                {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}},
                {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
            ]},
            "status": {"currentReplicas": 2, "currentMetrics": [
                {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 35}}},
            ]},
        });
        let c = cells(&HORIZONTAL_POD_AUTOSCALER, hpa);
        assert_eq!(c[1], "Deployment/web");
        assert_eq!(c[2], "cpu: 35%/80%, <unknown>/1k + 1 more...");
        assert_eq!((c[3].clone(), c[4].clone(), c[5].clone()), (json!("<unset>"), json!(5), json!(2)));
        let pdb =
            json!({"metadata": {"name": "p"}, "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}});
        assert_eq!(cells(&POD_DISRUPTION_BUDGET, pdb)[1..4], [json!("50%"), json!("N/A"), json!(1)]);
        let cr = json!({"metadata": {"name": "web-5d", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": true}
        ]}, "revision": 2});
        assert_eq!(cells(&CONTROLLER_REVISION, cr)[1..3], [json!("statefulset.apps/web"), json!(2)]);
    }
}
