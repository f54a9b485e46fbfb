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

/// Labels of every namespace, by name (what `namespaceSelector`s are matched against).
pub type NamespaceLabels = std::collections::HashMap<String, BTreeMap<String, String>>;

/// Whether an affinity term declared by a pod in `owner_namespace` selects `candidate`:
/// same namespace by default, else the listed `namespaces` plus those the `namespaceSelector`
/// selects by their labels (an empty selector selects every namespace).
pub fn term_selects(
    term: &PodAffinityTerm,
    owner_namespace: &str,
    candidate: &Pod,
    namespaces: &NamespaceLabels,
) -> bool {
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
        Some(sel) => {
            static NONE: BTreeMap<String, String> = BTreeMap::new();
            listed.iter().any(|n| n == ns) || selector_matches(sel, namespaces.get(ns).unwrap_or(&NONE))
        }
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
    fn namespace_selectors_use_namespace_labels() {
        let term = |extra: serde_json::Value| -> PodAffinityTerm {
            let mut t = json!({"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "k"});
            t.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            serde_json::from_value(t).unwrap()
        };
        let pod_in = |ns: &str| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "p", "namespace": ns, "labels": {"app": "web"}}}))
                .unwrap()
        };
        let namespaces: NamespaceLabels = [
            ("prod".to_string(), [("env".to_string(), "prod".to_string())].into()),
            ("dev".to_string(), [("env".to_string(), "dev".to_string())].into()),
        ]
        .into();
        let prod_only = term(json!({"namespaceSelector": {"matchLabels": {"env": "prod"}}}));
        assert!(term_selects(&prod_only, "dev", &pod_in("prod"), &namespaces));
        assert!(!term_selects(&prod_only, "prod", &pod_in("dev"), &namespaces));
        assert!(!term_selects(&prod_only, "prod", &pod_in("unknown"), &namespaces));
        let listed_too = term(json!({"namespaceSelector": {"matchLabels": {"env": "prod"}}, "namespaces": ["dev"]}));
        assert!(term_selects(&listed_too, "x", &pod_in("dev"), &namespaces), "listed namespaces add to the selector");
        let all = term(json!({"namespaceSelector": {}}));
        assert!(term_selects(&all, "x", &pod_in("unknown"), &namespaces));
        let own = term(json!({}));
        assert!(
            term_selects(&own, "dev", &pod_in("dev"), &namespaces)
                && !term_selects(&own, "dev", &pod_in("prod"), &namespaces)
        );
    }

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
