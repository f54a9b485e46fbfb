//! Conversion between API versions that share one storage.
//!
//! Key item: [`convert`], which turns an object (or a list of them) from its `apiVersion`
//! into another. Known pairs:
//! - `autoscaling/v2` ⇄ `autoscaling/v1` `HorizontalPodAutoscaler` (stored as v2). What v1
//!   cannot express travels in the annotations upstream uses, so a v2 object read and
//!   written back through v1 keeps its metrics, behavior, current metrics and conditions:
//!   [`METRICS_ANNOTATION`], [`CURRENT_METRICS_ANNOTATION`], [`CONDITIONS_ANNOTATION`],
//!   [`BEHAVIOR_ANNOTATION`].
//! - `v1` ⇄ `events.k8s.io/v1` `Event` (stored as core/v1): field renames only.
//!
//! Everything works on `serde_json::Value`; fields a target version does not have are
//! dropped, as a typed conversion would drop them.

use serde_json::{Map, Value, json};

/// Annotation holding, on a v1 HPA, the v2 metrics other than a CPU utilization target
/// (a JSON list in the autoscaling/v1 `MetricSpec` shape).
pub const METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/metrics";
/// Annotation holding, on a v1 HPA, every v2 `status.currentMetrics` entry (a JSON list in
/// the autoscaling/v1 `MetricStatus` shape).
pub const CURRENT_METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
/// Annotation holding, on a v1 HPA, the v2 `status.conditions`.
pub const CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";
/// Annotation holding, on a v1 HPA, the v2 `spec.behavior`, with keys spelled as upstream's
/// internal Go fields (`ScaleUp`, `StabilizationWindowSeconds`, ...).
pub const BEHAVIOR_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/behavior";

const ROUND_TRIP_ANNOTATIONS: [&str; 4] =
    [METRICS_ANNOTATION, BEHAVIOR_ANNOTATION, CURRENT_METRICS_ANNOTATION, CONDITIONS_ANNOTATION];

/// The CPU utilization upstream assumes when a v1 HPA names no target.
pub const DEFAULT_CPU_UTILIZATION: i64 = 80;

const HPA_V1: &str = "autoscaling/v1";
const HPA_V2: &str = "autoscaling/v2";
const EVENTS_CORE: &str = "v1";
const EVENTS_NEW: &str = "events.k8s.io/v1";

/// Converts `obj` to `to_api_version`.
///
/// The source version and kind come from the object's `apiVersion` and `kind`. Objects
/// already at the target version come back unchanged. A `...List` with `items` has every
/// item converted (items without their own `apiVersion`/`kind` are taken to be of the
/// list's, and stay without them). The result carries `apiVersion` and `kind`.
///
/// Fails when the object has no `apiVersion`/`kind`, when no conversion between the two
/// versions is known for the kind, or when a round-trip annotation does not decode.
pub fn convert(obj: Value, to_api_version: &str) -> Result<Value, String> {
    let Value::Object(mut map) = obj else {
        return Err("object to convert is not a JSON object".to_string());
    };
    let from = match map.get("apiVersion") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err("object to convert has no apiVersion".to_string()),
    };
    let kind = match map.get("kind") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err("object to convert has no kind".to_string()),
    };

    if let Some(item_kind) = kind.strip_suffix("List")
        && map.get("items").is_some_and(Value::is_array)
    {
        let Some(Value::Array(items)) = map.remove("items") else { unreachable!() };
        let mut converted = Vec::with_capacity(items.len());
        for item in items {
            converted.push(convert_item(item, &from, item_kind, to_api_version)?);
        }
        map.insert("items".into(), Value::Array(converted));
        map.insert("apiVersion".into(), Value::String(to_api_version.to_string()));
        return Ok(Value::Object(map));
    }

    if from == to_api_version {
        return Ok(Value::Object(map));
    }
    let mut out = match (kind.as_str(), from.as_str(), to_api_version) {
        ("HorizontalPodAutoscaler", HPA_V2, HPA_V1) => hpa_v2_to_v1(&map)?,
        ("HorizontalPodAutoscaler", HPA_V1, HPA_V2) => hpa_v1_to_v2(&map)?,
        ("Event", EVENTS_CORE, EVENTS_NEW) => rename_fields(&map, CORE_TO_NEW_EVENT),
        ("Event", EVENTS_NEW, EVENTS_CORE) => rename_fields(&map, NEW_TO_CORE_EVENT),
        _ => {
            return Err(format!("no conversion is known for kind {kind} from {from} to {to_api_version}"));
        }
    };
    out.insert("apiVersion".into(), Value::String(to_api_version.to_string()));
    out.insert("kind".into(), Value::String(kind));
    Ok(Value::Object(out))
}

/// One list item; bare items borrow the list's version and kind for the conversion.
fn convert_item(item: Value, list_version: &str, item_kind: &str, to: &str) -> Result<Value, String> {
    let Value::Object(mut map) = item else {
        return Err("list item to convert is not a JSON object".to_string());
    };
    let bare = !map.contains_key("apiVersion") && !map.contains_key("kind");
    if bare {
        map.insert("apiVersion".into(), Value::String(list_version.to_string()));
        map.insert("kind".into(), Value::String(item_kind.to_string()));
    }
    let mut out = convert(Value::Object(map), to)?;
    if bare && let Some(m) = out.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Helpers on JSON maps
// ---------------------------------------------------------------------------------------

/// A present, non-null member.
fn member<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// A present, non-null member, with the key matched regardless of case when no exact
/// match exists (upstream decodes the annotations with Go's case-blind JSON decoder).
fn member_ci<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    let map = obj.as_object()?;
    map.get(key)
        .or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
        .filter(|v| !v.is_null())
}

fn copy(from: &Value, key: &str) -> Option<Value> {
    member(from, key).cloned()
}

fn copy_ci(from: &Value, key: &str) -> Option<Value> {
    member_ci(from, key).cloned()
}

/// A member of a member.
fn nested<'a>(obj: &'a Value, outer: &str, inner: &str) -> Option<&'a Value> {
    member(obj, outer).and_then(|o| member(o, inner))
}

/// Key ranks for annotation payloads, so they print in the field order of upstream's Go
/// structs (serde_json's maps are sorted by key). Unranked keys follow, sorted.
const GO_FIELD_ORDER: &[&str] = &[
    // MetricSpec / MetricStatus and the condition shape.
    "type",
    "status",
    "lastTransitionTime",
    "reason",
    "message",
    "object",
    "pods",
    "resource",
    "containerResource",
    "external",
    // The metric sources and statuses of autoscaling/v1.
    "target",
    "kind",
    "name",
    "apiVersion",
    "metricName",
    "metricSelector",
    "targetAverageUtilization",
    "currentAverageUtilization",
    "targetValue",
    "currentValue",
    "targetAverageValue",
    "currentAverageValue",
    "selector",
    "averageValue",
    "container",
    // Label selectors.
    "matchLabels",
    "matchExpressions",
    "key",
    "operator",
    "values",
    // The behavior annotation.
    "ScaleUp",
    "ScaleDown",
    "StabilizationWindowSeconds",
    "SelectPolicy",
    "Policies",
    "Tolerance",
    "Type",
    "Value",
    "PeriodSeconds",
];

/// Serializes with object keys in [`GO_FIELD_ORDER`].
fn to_go_json(v: &Value) -> String {
    let mut out = String::new();
    write_go_json(v, &mut out);
    out
}

fn write_go_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let rank = |k: &str| GO_FIELD_ORDER.iter().position(|x| *x == k).unwrap_or(usize::MAX);
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_go_json(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

// ---------------------------------------------------------------------------------------
// HorizontalPodAutoscaler
// ---------------------------------------------------------------------------------------

fn is_cpu_resource(metric: &Value) -> bool {
    member(metric, "type").and_then(Value::as_str) == Some("Resource")
        && nested(metric, "resource", "name").and_then(Value::as_str) == Some("cpu")
}

/// A v2 metric source (`spec.metrics[i]`) in the autoscaling/v1 annotation shape.
fn metric_spec_v2_to_v1(m: &Value) -> Value {
    let object = member(m, "object").map(|o| {
        json_obj([
            ("target", copy(o, "describedObject")),
            ("metricName", nested(o, "metric", "name").cloned()),
            ("targetValue", nested(o, "target", "value").cloned()),
            ("selector", nested(o, "metric", "selector").cloned()),
            ("averageValue", nested(o, "target", "averageValue").cloned()),
        ])
    });
    let pods = member(m, "pods").map(|p| {
        json_obj([
            ("metricName", nested(p, "metric", "name").cloned()),
            ("targetAverageValue", nested(p, "target", "averageValue").cloned()),
            ("selector", nested(p, "metric", "selector").cloned()),
        ])
    });
    let resource = member(m, "resource").map(|r| resource_source_v2_to_v1(r, false));
    let container = member(m, "containerResource").map(|r| resource_source_v2_to_v1(r, true));
    let external = member(m, "external").map(|e| {
        json_obj([
            ("metricName", nested(e, "metric", "name").cloned()),
            ("metricSelector", nested(e, "metric", "selector").cloned()),
            ("targetValue", nested(e, "target", "value").cloned()),
            ("targetAverageValue", nested(e, "target", "averageValue").cloned()),
        ])
    });
    json_obj([
        ("type", copy(m, "type")),
        ("object", object),
        ("pods", pods),
        ("resource", resource),
        ("containerResource", container),
        ("external", external),
    ])
}

fn resource_source_v2_to_v1(r: &Value, with_container: bool) -> Value {
    json_obj([
        ("name", copy(r, "name")),
        ("targetAverageUtilization", nested(r, "target", "averageUtilization").cloned()),
        ("targetAverageValue", nested(r, "target", "averageValue").cloned()),
        ("container", if with_container { copy(r, "container") } else { None }),
    ])
}

/// An autoscaling/v1 annotation metric source back in the v2 shape.
fn metric_spec_v1_to_v2(m: &Value) -> Value {
    let object = member_ci(m, "object").map(|o| {
        let average = copy_ci(o, "averageValue");
        let kind = if average.is_some() { "AverageValue" } else { "Value" };
        json_obj([
            ("describedObject", copy_ci(o, "target")),
            (
                "target",
                Some(json_obj([
                    ("type", Some(kind.into())),
                    ("value", copy_ci(o, "targetValue")),
                    ("averageValue", average),
                ])),
            ),
            ("metric", Some(metric_identifier(copy_ci(o, "metricName"), copy_ci(o, "selector")))),
        ])
    });
    let pods = member_ci(m, "pods").map(|p| {
        json_obj([
            ("metric", Some(metric_identifier(copy_ci(p, "metricName"), copy_ci(p, "selector")))),
            (
                "target",
                Some(json_obj([
                    ("type", Some("AverageValue".into())),
                    ("averageValue", copy_ci(p, "targetAverageValue")),
                ])),
            ),
        ])
    });
    let resource = member_ci(m, "resource").map(|r| resource_source_v1_to_v2(r, false));
    let container = member_ci(m, "containerResource").map(|r| resource_source_v1_to_v2(r, true));
    let external = member_ci(m, "external").map(|e| {
        let value = copy_ci(e, "targetValue");
        let kind = if value.is_some() { "Value" } else { "AverageValue" };
        json_obj([
            ("metric", Some(metric_identifier(copy_ci(e, "metricName"), copy_ci(e, "metricSelector")))),
            (
                "target",
                Some(json_obj([
                    ("type", Some(kind.into())),
                    ("value", value),
                    ("averageValue", copy_ci(e, "targetAverageValue")),
                ])),
            ),
        ])
    });
    json_obj([
        ("type", copy_ci(m, "type")),
        ("object", object),
        ("pods", pods),
        ("resource", resource),
        ("containerResource", container),
        ("external", external),
    ])
}

fn resource_source_v1_to_v2(r: &Value, with_container: bool) -> Value {
    let utilization = copy_ci(r, "targetAverageUtilization");
    let kind = if utilization.is_some() { "Utilization" } else { "AverageValue" };
    json_obj([
        ("name", copy_ci(r, "name")),
        (
            "target",
            Some(json_obj([
                ("type", Some(kind.into())),
                ("averageUtilization", utilization),
                ("averageValue", copy_ci(r, "targetAverageValue")),
            ])),
        ),
        ("container", if with_container { copy_ci(r, "container") } else { None }),
    ])
}

fn metric_identifier(name: Option<Value>, selector: Option<Value>) -> Value {
    json_obj([("name", name), ("selector", selector)])
}

/// A v2 `status.currentMetrics[i]` in the autoscaling/v1 annotation shape.
fn metric_status_v2_to_v1(m: &Value) -> Value {
    let object = member(m, "object").map(|o| {
        json_obj([
            ("target", copy(o, "describedObject")),
            ("metricName", nested(o, "metric", "name").cloned()),
            ("currentValue", nested(o, "current", "value").cloned()),
            ("selector", nested(o, "metric", "selector").cloned()),
            ("averageValue", nested(o, "current", "averageValue").cloned()),
        ])
    });
    let pods = member(m, "pods").map(|p| {
        json_obj([
            ("metricName", nested(p, "metric", "name").cloned()),
            ("currentAverageValue", nested(p, "current", "averageValue").cloned()),
            ("selector", nested(p, "metric", "selector").cloned()),
        ])
    });
    let resource = member(m, "resource").map(|r| resource_status_v2_to_v1(r, false));
    let container = member(m, "containerResource").map(|r| resource_status_v2_to_v1(r, true));
    let external = member(m, "external").map(|e| {
        json_obj([
            ("metricName", nested(e, "metric", "name").cloned()),
            ("metricSelector", nested(e, "metric", "selector").cloned()),
            ("currentValue", nested(e, "current", "value").cloned()),
            ("currentAverageValue", nested(e, "current", "averageValue").cloned()),
        ])
    });
    json_obj([
        ("type", copy(m, "type")),
        ("object", object),
        ("pods", pods),
        ("resource", resource),
        ("containerResource", container),
        ("external", external),
    ])
}

fn resource_status_v2_to_v1(r: &Value, with_container: bool) -> Value {
    json_obj([
        ("name", copy(r, "name")),
        ("currentAverageUtilization", nested(r, "current", "averageUtilization").cloned()),
        ("currentAverageValue", nested(r, "current", "averageValue").cloned()),
        ("container", if with_container { copy(r, "container") } else { None }),
    ])
}

/// An autoscaling/v1 annotation metric status back in the v2 shape.
fn metric_status_v1_to_v2(m: &Value) -> Value {
    let object = member_ci(m, "object").map(|o| {
        json_obj([
            ("describedObject", copy_ci(o, "target")),
            (
                "current",
                Some(json_obj([("value", copy_ci(o, "currentValue")), ("averageValue", copy_ci(o, "averageValue"))])),
            ),
            ("metric", Some(metric_identifier(copy_ci(o, "metricName"), copy_ci(o, "selector")))),
        ])
    });
    let pods = member_ci(m, "pods").map(|p| {
        json_obj([
            ("metric", Some(metric_identifier(copy_ci(p, "metricName"), copy_ci(p, "selector")))),
            ("current", Some(json_obj([("averageValue", copy_ci(p, "currentAverageValue"))]))),
        ])
    });
    let resource = member_ci(m, "resource").map(|r| resource_status_v1_to_v2(r, false));
    let container = member_ci(m, "containerResource").map(|r| resource_status_v1_to_v2(r, true));
    let external = member_ci(m, "external").map(|e| {
        json_obj([
            ("metric", Some(metric_identifier(copy_ci(e, "metricName"), copy_ci(e, "metricSelector")))),
            (
                "current",
                Some(json_obj([
                    ("value", copy_ci(e, "currentValue")),
                    ("averageValue", copy_ci(e, "currentAverageValue")),
                ])),
            ),
        ])
    });
    json_obj([
        ("type", copy_ci(m, "type")),
        ("object", object),
        ("pods", pods),
        ("resource", resource),
        ("containerResource", container),
        ("external", external),
    ])
}

fn resource_status_v1_to_v2(r: &Value, with_container: bool) -> Value {
    json_obj([
        ("name", copy_ci(r, "name")),
        (
            "current",
            Some(json_obj([
                ("averageUtilization", copy_ci(r, "currentAverageUtilization")),
                ("averageValue", copy_ci(r, "currentAverageValue")),
            ])),
        ),
        ("container", if with_container { copy_ci(r, "container") } else { None }),
    ])
}

/// Builds an object from the pairs whose value is present.
fn json_obj<const N: usize>(pairs: [(&str, Option<Value>); N]) -> Value {
    Value::Object(pairs.into_iter().filter_map(|(k, v)| v.map(|v| (k.to_string(), v))).collect())
}

/// A condition in either version (both spell it the same way).
fn condition(c: &Value) -> Value {
    json_obj([
        ("type", copy_ci(c, "type")),
        ("status", copy_ci(c, "status")),
        ("lastTransitionTime", copy_ci(c, "lastTransitionTime")),
        ("reason", copy_ci(c, "reason")),
        ("message", copy_ci(c, "message")),
    ])
}

/// `spec.behavior` of v2 in the annotation's spelling: every field of upstream's internal
/// struct is present, missing ones as `null`.
fn behavior_v2_to_annotation(b: &Value) -> Value {
    let rules = |r: Option<&Value>| -> Value {
        let Some(r) = r else { return Value::Null };
        let policies = member(r, "policies").and_then(Value::as_array).map(|ps| {
            Value::Array(
                ps.iter()
                    .map(|p| {
                        json!({
                            "Type": member(p, "type").cloned().unwrap_or_else(|| "".into()),
                            "Value": member(p, "value").cloned().unwrap_or_else(|| 0.into()),
                            "PeriodSeconds": member(p, "periodSeconds").cloned().unwrap_or_else(|| 0.into()),
                        })
                    })
                    .collect(),
            )
        });
        json!({
            "StabilizationWindowSeconds": copy(r, "stabilizationWindowSeconds"),
            "SelectPolicy": copy(r, "selectPolicy"),
            "Policies": policies,
            "Tolerance": copy(r, "tolerance"),
        })
    };
    json!({"ScaleUp": rules(member(b, "scaleUp")), "ScaleDown": rules(member(b, "scaleDown"))})
}

/// The behavior annotation back in the v2 spelling; `null` fields are left out.
fn behavior_annotation_to_v2(b: &Value) -> Result<Value, String> {
    if !b.is_object() {
        return Err(format!("annotation {BEHAVIOR_ANNOTATION}: expected a JSON object"));
    }
    let rules = |r: Option<&Value>| -> Option<Value> {
        let r = r?;
        let policies = member_ci(r, "Policies").and_then(Value::as_array).map(|ps| {
            Value::Array(
                ps.iter()
                    .map(|p| {
                        json_obj([
                            ("type", copy_ci(p, "Type")),
                            ("value", copy_ci(p, "Value")),
                            ("periodSeconds", copy_ci(p, "PeriodSeconds")),
                        ])
                    })
                    .collect(),
            )
        });
        Some(json_obj([
            ("stabilizationWindowSeconds", copy_ci(r, "StabilizationWindowSeconds")),
            ("selectPolicy", copy_ci(r, "SelectPolicy")),
            ("policies", policies),
            ("tolerance", copy_ci(r, "Tolerance")),
        ]))
    };
    Ok(json_obj([("scaleUp", rules(member_ci(b, "ScaleUp"))), ("scaleDown", rules(member_ci(b, "ScaleDown")))]))
}

fn cpu_utilization_metric(utilization: Value) -> Value {
    json!({
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": utilization}}
    })
}

/// `metadata` with its annotations map passed through `edit`. An annotations map left
/// empty is dropped (as Go leaves an empty map out); no metadata stays no metadata unless
/// `edit` added something.
fn edit_annotations(meta: Option<&Value>, edit: impl FnOnce(&mut Map<String, Value>)) -> Option<Value> {
    let mut meta = match meta {
        Some(Value::Object(m)) => Some(m.clone()),
        _ => None,
    };
    let mut annotations = match meta.as_mut().and_then(|m| m.remove("annotations")) {
        Some(Value::Object(a)) => a,
        _ => Map::new(),
    };
    edit(&mut annotations);
    if !annotations.is_empty() {
        meta.get_or_insert_with(Map::new).insert("annotations".into(), Value::Object(annotations));
    }
    meta.map(Value::Object)
}

fn hpa_v2_to_v1(src: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    let obj = Value::Object(src.clone());
    let empty = Value::Object(Map::new());
    let spec = member(&obj, "spec").unwrap_or(&empty);
    let metrics: &[Value] = member(spec, "metrics").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);

    // The first CPU resource metric decides the v1 target; only a utilization target maps.
    let target_cpu = metrics
        .iter()
        .find(|m| is_cpu_resource(m))
        .and_then(|m| m.pointer("/resource/target/averageUtilization"))
        .filter(|v| !v.is_null())
        .cloned();
    let other_metrics: Vec<Value> = metrics
        .iter()
        .filter(|m| {
            !(is_cpu_resource(m) && m.pointer("/resource/target/averageUtilization").is_some_and(|v| !v.is_null()))
        })
        .map(metric_spec_v2_to_v1)
        .collect();

    let mut out = Map::new();
    let mut annotations_to_add: Vec<(&str, String)> = Vec::new();
    if !other_metrics.is_empty() {
        annotations_to_add.push((METRICS_ANNOTATION, to_go_json(&Value::Array(other_metrics))));
    }
    if let Some(b) = member(spec, "behavior") {
        annotations_to_add.push((BEHAVIOR_ANNOTATION, to_go_json(&behavior_v2_to_annotation(b))));
    }

    let v1_spec = json_obj([
        ("scaleTargetRef", copy(spec, "scaleTargetRef")),
        ("minReplicas", copy(spec, "minReplicas")),
        ("maxReplicas", copy(spec, "maxReplicas")),
        ("targetCPUUtilizationPercentage", target_cpu),
    ]);

    let v1_status = member(&obj, "status").map(|status| {
        let current: &[Value] =
            member(status, "currentMetrics").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
        // The last CPU utilization reading wins, as upstream's loop leaves it.
        let current_cpu = current
            .iter()
            .filter(|m| is_cpu_resource(m))
            .filter_map(|m| m.pointer("/resource/current/averageUtilization"))
            .rfind(|v| !v.is_null())
            .cloned();
        if !current.is_empty() {
            let list = Value::Array(current.iter().map(metric_status_v2_to_v1).collect());
            annotations_to_add.push((CURRENT_METRICS_ANNOTATION, to_go_json(&list)));
        }
        if let Some(conds) = member(status, "conditions").and_then(Value::as_array).filter(|c| !c.is_empty()) {
            let list = Value::Array(conds.iter().map(condition).collect());
            annotations_to_add.push((CONDITIONS_ANNOTATION, to_go_json(&list)));
        }
        json_obj([
            ("observedGeneration", copy(status, "observedGeneration")),
            ("lastScaleTime", copy(status, "lastScaleTime")),
            // Both counts are required in v1.
            ("currentReplicas", Some(copy(status, "currentReplicas").unwrap_or_else(|| 0.into()))),
            ("desiredReplicas", Some(copy(status, "desiredReplicas").unwrap_or_else(|| 0.into()))),
            ("currentCPUUtilizationPercentage", current_cpu),
        ])
    });

    let meta = edit_annotations(member(&obj, "metadata"), |a| {
        // Whatever round-trip annotations the stored object carries are stale: only the
        // ones produced here may be served.
        for key in ROUND_TRIP_ANNOTATIONS {
            a.remove(key);
        }
        for (key, value) in annotations_to_add {
            a.insert(key.to_string(), Value::String(value));
        }
    });
    if let Some(meta) = meta {
        out.insert("metadata".into(), meta);
    }
    out.insert("spec".into(), v1_spec);
    if let Some(status) = v1_status {
        out.insert("status".into(), status);
    }
    Ok(out)
}

/// Decodes a JSON annotation, naming the annotation in the error.
fn decode_annotation(annotations: &Map<String, Value>, key: &str) -> Result<Option<Value>, String> {
    match annotations.get(key) {
        None => Ok(None),
        Some(Value::String(text)) => serde_json::from_str(text).map(Some).map_err(|e| format!("annotation {key}: {e}")),
        Some(_) => Err(format!("annotation {key}: not a string")),
    }
}

fn decode_list(annotations: &Map<String, Value>, key: &str) -> Result<Option<Vec<Value>>, String> {
    match decode_annotation(annotations, key)? {
        None | Some(Value::Null) => Ok(annotations.get(key).map(|_| Vec::new())),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(_) => Err(format!("annotation {key}: expected a JSON list")),
    }
}

fn hpa_v1_to_v2(src: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    let obj = Value::Object(src.clone());
    let empty = Value::Object(Map::new());
    let spec = member(&obj, "spec").unwrap_or(&empty);
    let annotations = obj.pointer("/metadata/annotations").and_then(Value::as_object).cloned().unwrap_or_default();

    let cpu = copy(spec, "targetCPUUtilizationPercentage").map(cpu_utilization_metric);
    let mut metrics: Vec<Value> = match decode_list(&annotations, METRICS_ANNOTATION)? {
        Some(others) => {
            // The CPU target v1 carries goes after the others, as upstream puts it.
            let mut m: Vec<Value> = others.iter().map(metric_spec_v1_to_v2).collect();
            m.extend(cpu);
            m
        }
        None => cpu.into_iter().collect(),
    };
    if metrics.is_empty() {
        metrics.push(cpu_utilization_metric(DEFAULT_CPU_UTILIZATION.into()));
    }
    let behavior = match decode_annotation(&annotations, BEHAVIOR_ANNOTATION)? {
        Some(Value::Null) | None => None,
        Some(b) => Some(behavior_annotation_to_v2(&b)?),
    };
    let v2_spec = json_obj([
        ("scaleTargetRef", copy(spec, "scaleTargetRef")),
        ("minReplicas", copy(spec, "minReplicas")),
        ("maxReplicas", copy(spec, "maxReplicas")),
        ("metrics", Some(Value::Array(metrics))),
        ("behavior", behavior),
    ]);

    let current_from_annotation = decode_list(&annotations, CURRENT_METRICS_ANNOTATION)?;
    let conditions = decode_list(&annotations, CONDITIONS_ANNOTATION)?;
    let status = member(&obj, "status");
    let v2_status = if status.is_some() || current_from_annotation.is_some() || conditions.is_some() {
        let status = status.unwrap_or(&empty);
        // The annotation says more than the single CPU figure, so it wins when present.
        let current = match current_from_annotation {
            Some(list) => Some(list.iter().map(metric_status_v1_to_v2).collect::<Vec<_>>()),
            None => copy(status, "currentCPUUtilizationPercentage").map(|u| {
                vec![json!({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": u}}})]
            }),
        };
        Some(json_obj([
            ("observedGeneration", copy(status, "observedGeneration")),
            ("lastScaleTime", copy(status, "lastScaleTime")),
            // v2 leaves a zero count out.
            ("currentReplicas", copy(status, "currentReplicas").filter(|v| v.as_i64() != Some(0))),
            ("desiredReplicas", Some(copy(status, "desiredReplicas").unwrap_or_else(|| 0.into()))),
            ("currentMetrics", current.filter(|c| !c.is_empty()).map(Value::Array)),
            (
                "conditions",
                conditions.filter(|c| !c.is_empty()).map(|c| Value::Array(c.iter().map(condition).collect())),
            ),
        ]))
    } else {
        None
    };

    let mut out = Map::new();
    let meta = edit_annotations(member(&obj, "metadata"), |a| {
        for key in ROUND_TRIP_ANNOTATIONS {
            a.remove(key);
        }
    });
    if let Some(meta) = meta {
        out.insert("metadata".into(), meta);
    }
    out.insert("spec".into(), v2_spec);
    if let Some(status) = v2_status {
        out.insert("status".into(), status);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Event
// ---------------------------------------------------------------------------------------

/// core/v1 field → events.k8s.io/v1 field.
const CORE_TO_NEW_EVENT: &[(&str, &str)] = &[
    ("metadata", "metadata"),
    ("involvedObject", "regarding"),
    ("related", "related"),
    ("message", "note"),
    ("reason", "reason"),
    ("type", "type"),
    ("action", "action"),
    ("eventTime", "eventTime"),
    ("series", "series"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
    ("reportingInstance", "reportingInstance"),
];

/// events.k8s.io/v1 field → core/v1 field.
const NEW_TO_CORE_EVENT: &[(&str, &str)] = &[
    ("metadata", "metadata"),
    ("regarding", "involvedObject"),
    ("related", "related"),
    ("note", "message"),
    ("reason", "reason"),
    ("type", "type"),
    ("action", "action"),
    ("eventTime", "eventTime"),
    ("series", "series"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingController", "reportingComponent"),
    ("reportingInstance", "reportingInstance"),
];

fn rename_fields(src: &Map<String, Value>, table: &[(&str, &str)]) -> Map<String, Value> {
    table
        .iter()
        .filter_map(|(from, to)| src.get(*from).filter(|v| !v.is_null()).map(|v| (to.to_string(), v.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotation(obj: &Value, key: &str) -> Value {
        let text = obj.pointer("/metadata/annotations").and_then(|a| a.get(key)).and_then(Value::as_str);
        serde_json::from_str(text.unwrap_or_else(|| panic!("annotation {key} missing"))).unwrap()
    }

    fn full_v2_hpa() -> Value {
        json!({
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default", "resourceVersion": "12",
                         "annotations": {"team": "a"}},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 2,
                "maxReplicas": 10,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "500Mi"}}},
                    {"type": "Pods", "pods": {"metric": {"name": "qps", "selector": {"matchLabels": {"a": "b"}}},
                                              "target": {"type": "AverageValue", "averageValue": "10"}}},
                    {"type": "Object", "object": {"describedObject": {"apiVersion": "v1", "kind": "Service", "name": "s"},
                                                  "metric": {"name": "hits"},
                                                  "target": {"type": "Value", "value": "2k"}}},
                    {"type": "External", "external": {"metric": {"name": "queue"},
                                                      "target": {"type": "AverageValue", "averageValue": "30"}}},
                    {"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "app",
                                                                        "target": {"type": "Utilization", "averageUtilization": 70}}},
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}
                ],
                "behavior": {
                    "scaleDown": {"stabilizationWindowSeconds": 300, "selectPolicy": "Min",
                                  "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}]},
                    "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                                "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                                             {"type": "Percent", "value": 100, "periodSeconds": 15}]}
                }
            },
            "status": {
                "observedGeneration": 3,
                "lastScaleTime": "2024-01-01T00:00:00Z",
                "currentReplicas": 3,
                "desiredReplicas": 4,
                "currentMetrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 55, "averageValue": "110m"}}},
                    {"type": "Pods", "pods": {"metric": {"name": "qps"}, "current": {"averageValue": "9"}}},
                    {"type": "External", "external": {"metric": {"name": "queue"}, "current": {"value": "25"}}}
                ],
                "conditions": [
                    {"type": "AbleToScale", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z",
                     "reason": "ReadyForNewScale", "message": "recommended size matches current size"},
                    {"type": "ScalingActive", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z",
                     "reason": "ValidMetricFound"}
                ]
            }
        })
    }

    #[test]
    fn hpa_v2_to_v1_maps_cpu_and_keeps_the_rest_in_annotations() {
        let v1 = convert(full_v2_hpa(), "autoscaling/v1").unwrap();
        assert_eq!(v1["apiVersion"], "autoscaling/v1");
        assert_eq!(v1["kind"], "HorizontalPodAutoscaler");
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 60);
        assert_eq!(v1["spec"]["minReplicas"], 2);
        assert_eq!(v1["spec"]["maxReplicas"], 10);
        assert_eq!(v1["spec"]["scaleTargetRef"]["name"], "web");
        assert!(v1["spec"].get("metrics").is_none());
        assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 55);
        assert_eq!(v1["status"]["currentReplicas"], 3);
        assert_eq!(v1["status"]["desiredReplicas"], 4);
        assert!(v1["status"].get("conditions").is_none());
        assert_eq!(v1["metadata"]["annotations"]["team"], "a");

        let metrics = annotation(&v1, METRICS_ANNOTATION);
        assert_eq!(metrics.as_array().unwrap().len(), 5, "all but the CPU utilization target");
        assert_eq!(
            metrics[0],
            json!({"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "500Mi"}})
        );
        assert_eq!(
            metrics[1],
            json!({"type": "Pods", "pods": {"metricName": "qps", "targetAverageValue": "10", "selector": {"matchLabels": {"a": "b"}}}})
        );
        assert_eq!(
            metrics[2],
            json!({"type": "Object", "object": {"target": {"apiVersion": "v1", "kind": "Service", "name": "s"},
                                                "metricName": "hits", "targetValue": "2k"}})
        );
        assert_eq!(
            metrics[3],
            json!({"type": "External", "external": {"metricName": "queue", "targetAverageValue": "30"}})
        );
        assert_eq!(
            metrics[4],
            json!({"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "app", "targetAverageUtilization": 70}})
        );

        let current = annotation(&v1, CURRENT_METRICS_ANNOTATION);
        assert_eq!(current.as_array().unwrap().len(), 3, "every current metric, CPU included");
        assert_eq!(
            current[0],
            json!({"type": "Resource", "resource": {"name": "cpu", "currentAverageUtilization": 55, "currentAverageValue": "110m"}})
        );
        assert_eq!(annotation(&v1, CONDITIONS_ANNOTATION).as_array().unwrap().len(), 2);

        let behavior = annotation(&v1, BEHAVIOR_ANNOTATION);
        assert_eq!(behavior["ScaleUp"]["SelectPolicy"], "Max");
        assert_eq!(behavior["ScaleUp"]["Policies"][1], json!({"Type": "Percent", "Value": 100, "PeriodSeconds": 15}));
        assert_eq!(behavior["ScaleDown"]["StabilizationWindowSeconds"], 300);
        assert_eq!(behavior["ScaleDown"]["Tolerance"], Value::Null);
    }

    #[test]
    fn annotation_text_follows_go_field_order() {
        let v1 = convert(full_v2_hpa(), "autoscaling/v1").unwrap();
        let text = v1["metadata"]["annotations"][BEHAVIOR_ANNOTATION].as_str().unwrap();
        assert!(
            text.starts_with(
                r#"{"ScaleUp":{"StabilizationWindowSeconds":0,"SelectPolicy":"Max","Policies":[{"Type":"Pods","Value":4,"PeriodSeconds":15}"#
            ),
            "{text}"
        );
        let metrics = v1["metadata"]["annotations"][METRICS_ANNOTATION].as_str().unwrap();
        assert!(
            metrics.starts_with(r#"[{"type":"Resource","resource":{"name":"memory","targetAverageValue":"500Mi"}}"#),
            "{metrics}"
        );
        let conditions = v1["metadata"]["annotations"][CONDITIONS_ANNOTATION].as_str().unwrap();
        assert!(
            conditions.starts_with(r#"[{"type":"AbleToScale","status":"True","lastTransitionTime":"#),
            "{conditions}"
        );
    }

    #[test]
    fn hpa_round_trips_v2_v1_v2() {
        let original = full_v2_hpa();
        let v1 = convert(original.clone(), "autoscaling/v1").unwrap();
        let back = convert(v1, "autoscaling/v2").unwrap();
        assert_eq!(back, original);
    }

    #[test]
    fn hpa_round_trip_without_extras_leaves_no_annotations() {
        let original = json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "minReplicas": 1, "maxReplicas": 5,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                                  "target": {"type": "Utilization", "averageUtilization": 50}}}]},
            "status": {"desiredReplicas": 0}
        });
        let v1 = convert(original.clone(), "autoscaling/v1").unwrap();
        assert!(v1["metadata"].get("annotations").is_none(), "{v1}");
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
        assert_eq!(v1["status"], json!({"currentReplicas": 0, "desiredReplicas": 0}));
        assert_eq!(convert(v1, "autoscaling/v2").unwrap(), original);
    }

    #[test]
    fn hpa_v1_to_v2_defaults_and_consumes_annotations() {
        let v1 = json!({
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "h", "annotations": {"keep": "me", CONDITIONS_ANNOTATION: "[]"}},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "d"}, "maxReplicas": 3}
        });
        let v2 = convert(v1, "autoscaling/v2").unwrap();
        assert_eq!(
            v2["spec"]["metrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}])
        );
        assert_eq!(v2["metadata"]["annotations"], json!({"keep": "me"}));
        assert!(v2["spec"].get("behavior").is_none());

        let with_cpu = json!({
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "h"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "d"}, "maxReplicas": 3,
                     "targetCPUUtilizationPercentage": 40},
            "status": {"currentReplicas": 1, "desiredReplicas": 1, "currentCPUUtilizationPercentage": 33}
        });
        let v2 = convert(with_cpu, "autoscaling/v2").unwrap();
        assert_eq!(v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 40);
        assert_eq!(
            v2["status"]["currentMetrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 33}}}])
        );
        assert_eq!(v2["status"]["currentReplicas"], 1);
    }

    #[test]
    fn hpa_v1_annotations_written_by_clients_are_read() {
        // Upstream's own spelling of the behavior annotation, and an external metric with a
        // plain target value.
        let v1 = json!({
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "h", "annotations": {
                BEHAVIOR_ANNOTATION: r#"{"ScaleUp":null,"ScaleDown":{"StabilizationWindowSeconds":60,"SelectPolicy":"Max","Policies":[{"Type":"Pods","Value":1,"PeriodSeconds":30}],"Tolerance":null}}"#,
                METRICS_ANNOTATION: r#"[{"type":"External","external":{"metricName":"q","targetValue":"5"}}]"#
            }},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "d"}, "maxReplicas": 3}
        });
        let v2 = convert(v1, "autoscaling/v2").unwrap();
        assert_eq!(
            v2["spec"]["behavior"],
            json!({"scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Max",
                                 "policies": [{"type": "Pods", "value": 1, "periodSeconds": 30}]}})
        );
        assert_eq!(
            v2["spec"]["metrics"],
            json!([{"type": "External", "external": {"metric": {"name": "q"}, "target": {"type": "Value", "value": "5"}}}])
        );
        assert!(v2["metadata"].get("annotations").is_none());

        let broken = json!({
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "h", "annotations": {METRICS_ANNOTATION: "not json"}},
            "spec": {"maxReplicas": 1}
        });
        let err = convert(broken, "autoscaling/v2").unwrap_err();
        assert!(err.starts_with("annotation autoscaling.alpha.kubernetes.io/metrics:"), "{err}");
    }

    #[test]
    fn stale_round_trip_annotations_are_not_served() {
        let mut stored = full_v2_hpa();
        stored["metadata"]["annotations"][METRICS_ANNOTATION] = json!("[]");
        stored["spec"]["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}]);
        stored["spec"].as_object_mut().unwrap().remove("behavior");
        let v1 = convert(stored, "autoscaling/v1").unwrap();
        let annotations = v1["metadata"]["annotations"].as_object().unwrap();
        assert!(!annotations.contains_key(METRICS_ANNOTATION));
        assert!(!annotations.contains_key(BEHAVIOR_ANNOTATION));
    }

    fn core_event() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "p.1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": "p", "uid": "u", "apiVersion": "v1",
                               "fieldPath": "spec.containers{c}"},
            "related": {"kind": "Node", "name": "n1"},
            "reason": "Pulled",
            "message": "Pulled image",
            "source": {"component": "kubelet", "host": "n1"},
            "firstTimestamp": "2024-01-01T00:00:00Z",
            "lastTimestamp": "2024-01-01T00:05:00Z",
            "count": 3,
            "type": "Normal",
            "eventTime": "2024-01-01T00:00:00.000001Z",
            "series": {"count": 2, "lastObservedTime": "2024-01-01T00:05:00.000000Z"},
            "action": "Pulling",
            "reportingComponent": "kubelet",
            "reportingInstance": "n1"
        })
    }

    #[test]
    fn core_event_to_events_v1() {
        let e = convert(core_event(), "events.k8s.io/v1").unwrap();
        assert_eq!(e["apiVersion"], "events.k8s.io/v1");
        assert_eq!(e["kind"], "Event");
        assert_eq!(e["regarding"]["name"], "p");
        assert_eq!(e["related"]["kind"], "Node");
        assert_eq!(e["note"], "Pulled image");
        assert_eq!(e["deprecatedSource"], json!({"component": "kubelet", "host": "n1"}));
        assert_eq!(e["deprecatedFirstTimestamp"], "2024-01-01T00:00:00Z");
        assert_eq!(e["deprecatedLastTimestamp"], "2024-01-01T00:05:00Z");
        assert_eq!(e["deprecatedCount"], 3);
        assert_eq!(e["series"]["count"], 2);
        assert_eq!(e["reportingController"], "kubelet");
        assert_eq!(e["reportingInstance"], "n1");
        assert_eq!(e["action"], "Pulling");
        assert_eq!(e["reason"], "Pulled");
        assert_eq!(e["type"], "Normal");
        for gone in
            ["involvedObject", "message", "source", "firstTimestamp", "lastTimestamp", "count", "reportingComponent"]
        {
            assert!(e.get(gone).is_none(), "{gone} should not appear in events.k8s.io/v1");
        }
    }

    #[test]
    fn events_round_trip() {
        let original = core_event();
        let new = convert(original.clone(), "events.k8s.io/v1").unwrap();
        assert_eq!(convert(new.clone(), "v1").unwrap(), original);
        assert_eq!(convert(convert(new.clone(), "v1").unwrap(), "events.k8s.io/v1").unwrap(), new);
    }

    #[test]
    fn same_version_lists_and_unknown_pairs() {
        let same = convert(core_event(), "v1").unwrap();
        assert_eq!(same, core_event());

        let list = json!({
            "apiVersion": "v1", "kind": "EventList", "metadata": {"resourceVersion": "5"},
            "items": [
                {"metadata": {"name": "a"}, "message": "m", "involvedObject": {"name": "x"}},
                core_event()
            ]
        });
        let out = convert(list, "events.k8s.io/v1").unwrap();
        assert_eq!(out["apiVersion"], "events.k8s.io/v1");
        assert_eq!(out["kind"], "EventList");
        assert_eq!(out["metadata"]["resourceVersion"], "5");
        assert_eq!(out["items"][0], json!({"metadata": {"name": "a"}, "note": "m", "regarding": {"name": "x"}}));
        assert_eq!(out["items"][1]["apiVersion"], "events.k8s.io/v1");

        let err = convert(json!({"apiVersion": "v1", "kind": "Pod"}), "apps/v1").unwrap_err();
        assert_eq!(err, "no conversion is known for kind Pod from v1 to apps/v1");
        assert!(convert(json!({"kind": "Pod"}), "v1").is_err());
        assert!(convert(json!({"apiVersion": "v1"}), "v1").is_err());
        assert!(convert(json!("x"), "v1").is_err());
    }
}
