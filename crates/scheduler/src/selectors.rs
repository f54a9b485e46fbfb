//! Label selectors (`matchLabels` + `matchExpressions`) and affinity-term namespaces.

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

/// Whether `selector` selects an object with `labels`. An empty selector selects
/// everything; an unknown operator selects nothing.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let exact = selector.match_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    exact
        && selector.match_expressions.iter().flatten().all(|r| {
            let values = r.values.as_deref().unwrap_or_default();
            let value = labels.get(&r.key);
            match r.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

fn labels(pod: &Pod) -> &BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    pod.metadata.labels.as_ref().unwrap_or(&EMPTY)
}

/// Whether an affinity term declared by a pod in `owner_namespace` selects `candidate`:
/// same namespace by default, the listed `namespaces`, or all of them with an empty
/// `namespaceSelector`. (A non-empty `namespaceSelector` would need namespace labels, which
/// this scheduler does not watch; such terms only use the listed namespaces.)
pub fn term_selects(term: &PodAffinityTerm, owner_namespace: &str, candidate: &Pod) -> bool {
    let Some(selector) = &term.label_selector else { return false };
    let ns = candidate.metadata.namespace.as_deref().unwrap_or("");
    let listed = term.namespaces.as_deref().unwrap_or_default();
    let ns_ok = match &term.namespace_selector {
        Some(sel)
            if sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
                && sel.match_expressions.as_ref().is_none_or(|e| e.is_empty()) =>
        {
            true
        }
        Some(_) => listed.iter().any(|n| n == ns),
        None if listed.is_empty() => ns == owner_namespace,
        None => listed.iter().any(|n| n == ns),
    };
    ns_ok && selector_matches(selector, labels(candidate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors() {
        let labels: BTreeMap<String, String> = [("app".into(), "web".into()), ("tier".into(), "1".into())].into();
        let cases = [
            (json!({}), true),
            (json!({"matchLabels": {"app": "web"}}), true),
            (json!({"matchLabels": {"app": "db"}}), false),
            (json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "db"]}]}), true),
            (json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}), false),
            (json!({"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]}), true),
            (json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}], "matchLabels": {"app": "db"}}), false),
        ];
        for (sel, want) in cases {
            let sel: LabelSelector = serde_json::from_value(sel.clone()).unwrap();
            assert_eq!(selector_matches(&sel, &labels), want, "{sel:?}");
        }
    }
}
