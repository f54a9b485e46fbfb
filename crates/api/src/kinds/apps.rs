//! `apps/v1` kinds: Deployment, ReplicaSet, StatefulSet and DaemonSet.
//!
//! Defaults follow upstream's `SetDefaults_Deployment`, `SetDefaults_ReplicaSet`,
//! `SetDefaults_StatefulSet` and `SetDefaults_DaemonSet` plus the pod template defaults;
//! validation follows apps validation. The selector-immutability rule that upstream keeps in the
//! REST strategies (for `apps/v1`) is part of `validate_update` here.
//!
//! A `selector` missing from the request decodes as an empty selector, so an empty selector is
//! treated as the missing one upstream sees (`spec.selector: Required value`).

use super::ApiKind;
use super::pod::{
    default_pod_template, immutable, invalid_each, nonnegative, percent, selector_is_empty, selector_matches,
    set_if_empty, st, template_labels, to_value, validate_annotations, validate_label_selector, validate_labels,
    validate_template_for_controller,
};
use crate::validation::{FieldError, FieldErrors, FieldPath};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

fn percent_value(v: &IntOrString) -> Option<i64> {
    match v {
        IntOrString::String(s) if percent(s).is_empty() => s[..s.len() - 1].parse().ok(),
        _ => None,
    }
}

/// `getIntOrPercentValue`: the number, or the percentage, or 0 for anything unparsable.
fn int_or_percent_value(v: &IntOrString) -> i64 {
    match (percent_value(v), v) {
        (Some(p), _) => p,
        (None, IntOrString::Int(n)) => i64::from(*n),
        (None, IntOrString::String(s)) => s.parse().unwrap_or(0),
    }
}

/// `ValidatePositiveIntOrPercent`.
fn validate_int_or_percent(v: &IntOrString, path: &FieldPath) -> FieldErrors {
    match v {
        IntOrString::String(s) => invalid_each(path, to_value(v), percent(s)),
        IntOrString::Int(n) => nonnegative(i64::from(*n), path),
    }
}

/// `IsNotMoreThan100Percent`.
fn not_over_100_percent(v: &IntOrString, path: &FieldPath) -> FieldErrors {
    match percent_value(v) {
        Some(p) if p > 100 => vec![FieldError::invalid(path, to_value(v), "must not be greater than 100%")],
        _ => Vec::new(),
    }
}

/// The selector checks shared by Deployment and ReplicaSet (`ValidateDeploymentSpec` /
/// `ValidateReplicaSetSpec`), followed by the template checks when the selector is usable.
fn validate_selector_and_template(
    sel: &LabelSelector,
    tpl: &PodTemplateSpec,
    kind: &str,
    sp: &FieldPath,
) -> FieldErrors {
    let mut errs = Vec::new();
    let selp = sp.child("selector");
    let missing = selector_is_empty(sel);
    if missing {
        errs.push(FieldError::required(&selp, ""));
    }
    let sel_errs = validate_label_selector(Some(sel), &selp);
    if !sel_errs.is_empty() {
        errs.extend(sel_errs);
        errs.push(FieldError::invalid(&selp, to_value(sel), "invalid label selector"));
        return errs;
    }
    // A missing selector selects nothing, so it cannot match the template.
    let matches = !missing && selector_matches(sel, template_labels(tpl));
    errs.extend(validate_template_for_controller(tpl, Some(matches), kind, &sp.child("template")));
    errs
}

// ---------------------------------------------------------------------------------------------
// Deployment
// ---------------------------------------------------------------------------------------------

/// Deployment. Defaults: `replicas: 1`, strategy `RollingUpdate` with `maxSurge` and
/// `maxUnavailable` of 25%, `revisionHistoryLimit: 10`, `progressDeadlineSeconds: 600`, and the
/// template defaults. Validation per `ValidateDeploymentSpec`; on update the selector is
/// immutable.
impl ApiKind for Deployment {
    fn set_defaults(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        spec.replicas.get_or_insert(1);
        let strategy = spec.strategy.get_or_insert_with(Default::default);
        set_if_empty(&mut strategy.type_, "RollingUpdate");
        if st(&strategy.type_) == "RollingUpdate" {
            let ru = strategy.rolling_update.get_or_insert_with(Default::default);
            ru.max_unavailable.get_or_insert_with(|| IntOrString::String("25%".to_string()));
            ru.max_surge.get_or_insert_with(|| IntOrString::String("25%".to_string()));
        }
        spec.revision_history_limit.get_or_insert(10);
        spec.progress_deadline_seconds.get_or_insert(600);
        default_pod_template(&mut spec.template);
    }

    fn validate(&self) -> FieldErrors {
        let spec = self.spec.clone().unwrap_or_default();
        let sp = FieldPath::root("spec");
        let mut errs = nonnegative(i64::from(spec.replicas.unwrap_or(0)), &sp.child("replicas"));
        errs.extend(validate_selector_and_template(&spec.selector, &spec.template, "ReplicaSet", &sp));
        let strategy = spec.strategy.clone().unwrap_or_default();
        let stp = sp.child("strategy");
        match st(&strategy.type_) {
            "Recreate" => {
                if strategy.rolling_update.is_some() {
                    errs.push(FieldError::forbidden(
                        &stp.child("rollingUpdate"),
                        "may not be specified when strategy `type` is 'Recreate'",
                    ));
                }
            }
            "RollingUpdate" => match &strategy.rolling_update {
                None => errs.push(FieldError::required(
                    &stp.child("rollingUpdate"),
                    "this should be defaulted and never be nil",
                )),
                Some(ru) => {
                    let rp = stp.child("rollingUpdate");
                    let zero = IntOrString::Int(0);
                    let mu = ru.max_unavailable.as_ref().unwrap_or(&zero);
                    let ms = ru.max_surge.as_ref().unwrap_or(&zero);
                    errs.extend(validate_int_or_percent(mu, &rp.child("maxUnavailable")));
                    errs.extend(validate_int_or_percent(ms, &rp.child("maxSurge")));
                    if int_or_percent_value(mu) == 0 && int_or_percent_value(ms) == 0 {
                        errs.push(FieldError::invalid(
                            &rp.child("maxUnavailable"),
                            to_value(mu),
                            "may not be 0 when `maxSurge` is 0",
                        ));
                    }
                    errs.extend(not_over_100_percent(mu, &rp.child("maxUnavailable")));
                }
            },
            _ => errs.push(FieldError::not_supported(&stp, to_value(&strategy), &["Recreate", "RollingUpdate"])),
        }
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        errs.extend(nonnegative(i64::from(min_ready), &sp.child("minReadySeconds")));
        if let Some(r) = spec.revision_history_limit {
            errs.extend(nonnegative(i64::from(r), &sp.child("revisionHistoryLimit")));
        }
        if let Some(p) = spec.progress_deadline_seconds {
            errs.extend(nonnegative(i64::from(p), &sp.child("progressDeadlineSeconds")));
            if p <= min_ready {
                errs.push(FieldError::invalid(
                    &sp.child("progressDeadlineSeconds"),
                    p,
                    "must be greater than minReadySeconds",
                ));
            }
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> FieldErrors {
        let sel = |d: &Deployment| d.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
        immutable(&sel(self), &sel(old), &FieldPath::root("spec").child("selector"))
    }
}

// ---------------------------------------------------------------------------------------------
// ReplicaSet
// ---------------------------------------------------------------------------------------------

/// ReplicaSet. Defaults: `replicas: 1` and the template defaults. Validation per
/// `ValidateReplicaSetSpec`; on update the selector is immutable.
impl ApiKind for ReplicaSet {
    fn set_defaults(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        spec.replicas.get_or_insert(1);
        default_pod_template(spec.template.get_or_insert_with(Default::default));
    }

    fn validate(&self) -> FieldErrors {
        let spec = self.spec.clone().unwrap_or_default();
        let sp = FieldPath::root("spec");
        let mut errs = nonnegative(i64::from(spec.replicas.unwrap_or(0)), &sp.child("replicas"));
        errs.extend(nonnegative(i64::from(spec.min_ready_seconds.unwrap_or(0)), &sp.child("minReadySeconds")));
        let template = spec.template.clone().unwrap_or_default();
        errs.extend(validate_selector_and_template(&spec.selector, &template, "ReplicaSet", &sp));
        errs
    }

    fn validate_update(&self, old: &Self) -> FieldErrors {
        let sel = |r: &ReplicaSet| r.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
        immutable(&sel(self), &sel(old), &FieldPath::root("spec").child("selector"))
    }
}

// ---------------------------------------------------------------------------------------------
// StatefulSet
// ---------------------------------------------------------------------------------------------

/// StatefulSet. Defaults: `podManagementPolicy: OrderedReady`, update strategy `RollingUpdate`
/// with `partition: 0`, PVC retention `Retain`/`Retain`, `replicas: 1`,
/// `revisionHistoryLimit: 10`, the template defaults, and for each volume claim template
/// `volumeMode: Filesystem` and `status.phase: Pending`. `serviceName` is optional (as upstream
/// since 1.32). Like upstream, the template's pod spec is not validated in full (only its
/// labels, annotations, restart policy and deadline). On update only `replicas`, `ordinals`,
/// `template`, `updateStrategy`, `persistentVolumeClaimRetentionPolicy` and `minReadySeconds`
/// may change.
impl ApiKind for StatefulSet {
    fn set_defaults(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        set_if_empty(&mut spec.pod_management_policy, "OrderedReady");
        let us = spec.update_strategy.get_or_insert_with(Default::default);
        if st(&us.type_).is_empty() {
            us.type_ = Some("RollingUpdate".to_string());
            us.rolling_update.get_or_insert_with(Default::default);
        }
        if st(&us.type_) == "RollingUpdate"
            && let Some(ru) = &mut us.rolling_update
        {
            ru.partition.get_or_insert(0);
        }
        let policy = spec.persistent_volume_claim_retention_policy.get_or_insert_with(Default::default);
        set_if_empty(&mut policy.when_deleted, "Retain");
        set_if_empty(&mut policy.when_scaled, "Retain");
        spec.replicas.get_or_insert(1);
        spec.revision_history_limit.get_or_insert(10);
        default_pod_template(&mut spec.template);
        for pvc in spec.volume_claim_templates.iter_mut().flatten() {
            set_if_empty(&mut pvc.status.get_or_insert_with(Default::default).phase, "Pending");
            set_if_empty(&mut pvc.spec.get_or_insert_with(Default::default).volume_mode, "Filesystem");
        }
    }

    fn validate(&self) -> FieldErrors {
        let spec = self.spec.clone().unwrap_or_default();
        let sp = FieldPath::root("spec");
        let mut errs = Vec::new();
        match st(&spec.pod_management_policy) {
            "" => errs.push(FieldError::required(&sp.child("podManagementPolicy"), "")),
            "OrderedReady" | "Parallel" => {}
            other => errs.push(FieldError::invalid(
                &sp.child("podManagementPolicy"),
                other,
                "must be 'OrderedReady' or 'Parallel'",
            )),
        }
        let us = spec.update_strategy.clone().unwrap_or_default();
        let up = sp.child("updateStrategy");
        match st(&us.type_) {
            "" => errs.push(FieldError::required(&up, "")),
            "OnDelete" => {
                if let Some(ru) = &us.rolling_update {
                    errs.push(FieldError::invalid(
                        &up.child("rollingUpdate"),
                        to_value(ru),
                        "only allowed for updateStrategy 'RollingUpdate'",
                    ));
                }
            }
            "RollingUpdate" => {
                if let Some(ru) = &us.rolling_update {
                    let rp = up.child("rollingUpdate");
                    errs.extend(nonnegative(i64::from(ru.partition.unwrap_or(0)), &rp.child("partition")));
                    if let Some(mu) = &ru.max_unavailable {
                        let mp = rp.child("maxUnavailable");
                        errs.extend(validate_int_or_percent(mu, &mp));
                        if int_or_percent_value(mu) == 0 {
                            errs.push(FieldError::invalid(&mp, to_value(mu), "cannot be 0"));
                        }
                        errs.extend(not_over_100_percent(mu, &mp));
                    }
                }
            }
            _ => errs.push(FieldError::invalid(&up, to_value(&us), "must be 'RollingUpdate' or 'OnDelete'")),
        }
        if let Some(policy) = &spec.persistent_volume_claim_retention_policy {
            let pp = sp.child("persistentVolumeClaimRetentionPolicy");
            for (v, name) in [(&policy.when_deleted, "whenDeleted"), (&policy.when_scaled, "whenScaled")] {
                let v = st(v);
                if v != "Retain" && v != "Delete" {
                    errs.push(FieldError::not_supported(&pp.child(name), v, &["Retain", "Delete"]));
                }
            }
        }
        errs.extend(nonnegative(i64::from(spec.replicas.unwrap_or(0)), &sp.child("replicas")));
        errs.extend(nonnegative(i64::from(spec.min_ready_seconds.unwrap_or(0)), &sp.child("minReadySeconds")));
        if let Some(o) = &spec.ordinals {
            errs.extend(nonnegative(i64::from(o.start.unwrap_or(0)), &sp.child("ordinals.start")));
        }
        let selp = sp.child("selector");
        let missing = selector_is_empty(&spec.selector);
        if missing {
            errs.push(FieldError::required(&selp, ""));
        }
        let sel_errs = validate_label_selector(Some(&spec.selector), &selp);
        let tp = sp.child("template");
        if !sel_errs.is_empty() {
            errs.extend(sel_errs);
            errs.push(FieldError::invalid(&selp, to_value(&spec.selector), ""));
        } else {
            if missing || !selector_matches(&spec.selector, template_labels(&spec.template)) {
                errs.push(FieldError::invalid(
                    &tp.child("metadata").child("labels"),
                    to_value(&template_labels(&spec.template)),
                    "`selector` does not match template `labels`",
                ));
            }
            let meta = spec.template.metadata.as_ref();
            errs.extend(validate_labels(meta.and_then(|m| m.labels.as_ref()), &tp.child("labels")));
            errs.extend(validate_annotations(meta.and_then(|m| m.annotations.as_ref()), &tp.child("annotations")));
        }
        let rp = super::pod::template_restart_policy(&spec.template);
        if rp != "Always" {
            errs.push(FieldError::not_supported(&tp.child("spec").child("restartPolicy"), rp, &["Always"]));
        }
        if spec.template.spec.as_ref().is_some_and(|s| s.active_deadline_seconds.is_some()) {
            errs.push(FieldError::forbidden(
                &tp.child("spec").child("activeDeadlineSeconds"),
                "activeDeadlineSeconds in StatefulSet is not Supported",
            ));
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> FieldErrors {
        let new = self.spec.clone().unwrap_or_default();
        let old = old.spec.clone().unwrap_or_default();
        let mut masked = new;
        masked.replicas = old.replicas;
        masked.template = old.template.clone();
        masked.update_strategy = old.update_strategy.clone();
        masked.min_ready_seconds = old.min_ready_seconds;
        masked.ordinals = old.ordinals.clone();
        masked.persistent_volume_claim_retention_policy = old.persistent_volume_claim_retention_policy.clone();
        if to_value(&masked) != to_value(&old) {
            return vec![FieldError::forbidden(
                &FieldPath::root("spec"),
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            )];
        }
        Vec::new()
    }
}

// ---------------------------------------------------------------------------------------------
// DaemonSet
// ---------------------------------------------------------------------------------------------

/// DaemonSet. Defaults: update strategy `RollingUpdate` with `maxUnavailable: 1` and
/// `maxSurge: 0`, `revisionHistoryLimit: 10`, and the template defaults. Validation per
/// `ValidateDaemonSetSpec` (upstream has no "required" error for the selector: a missing one
/// simply matches no template); on update the selector is immutable.
impl ApiKind for DaemonSet {
    fn set_defaults(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        let us = spec.update_strategy.get_or_insert_with(Default::default);
        set_if_empty(&mut us.type_, "RollingUpdate");
        if st(&us.type_) == "RollingUpdate" {
            let ru = us.rolling_update.get_or_insert_with(Default::default);
            ru.max_unavailable.get_or_insert(IntOrString::Int(1));
            ru.max_surge.get_or_insert(IntOrString::Int(0));
        }
        spec.revision_history_limit.get_or_insert(10);
        default_pod_template(&mut spec.template);
    }

    fn validate(&self) -> FieldErrors {
        let spec = self.spec.clone().unwrap_or_default();
        let sp = FieldPath::root("spec");
        let selp = sp.child("selector");
        let sel_errs = validate_label_selector(Some(&spec.selector), &selp);
        let converts = sel_errs.is_empty();
        let mut errs = sel_errs;
        let missing = selector_is_empty(&spec.selector);
        let matches = converts && !missing && selector_matches(&spec.selector, template_labels(&spec.template));
        // The template checks are the controller ones, except that a selector that does not
        // convert is not reported as a mismatch.
        let check = if converts { Some(matches) } else { None };
        errs.extend(validate_template_for_controller(&spec.template, check, "DaemonSet", &sp.child("template")));
        errs.extend(nonnegative(i64::from(spec.min_ready_seconds.unwrap_or(0)), &sp.child("minReadySeconds")));
        let us = spec.update_strategy.clone().unwrap_or_default();
        let up = sp.child("updateStrategy");
        match st(&us.type_) {
            "OnDelete" => {}
            "RollingUpdate" => match &us.rolling_update {
                None => errs.push(FieldError::required(&up.child("rollingUpdate"), "")),
                Some(ru) => {
                    let rp = up.child("rollingUpdate");
                    let zero = IntOrString::Int(0);
                    let mu = ru.max_unavailable.as_ref().unwrap_or(&zero);
                    let ms = ru.max_surge.as_ref().unwrap_or(&zero);
                    errs.extend(validate_int_or_percent(mu, &rp.child("maxUnavailable")));
                    errs.extend(validate_int_or_percent(ms, &rp.child("maxSurge")));
                    errs.extend(not_over_100_percent(mu, &rp.child("maxUnavailable")));
                    errs.extend(not_over_100_percent(ms, &rp.child("maxSurge")));
                    match (int_or_percent_value(mu) != 0, int_or_percent_value(ms) != 0) {
                        (true, true) => errs.push(FieldError::invalid(
                            &rp.child("maxSurge"),
                            to_value(ms),
                            "may not be set when maxUnavailable is non-zero",
                        )),
                        (false, false) => errs
                            .push(FieldError::required(&rp.child("maxUnavailable"), "cannot be 0 when maxSurge is 0")),
                        _ => {}
                    }
                }
            },
            _ => errs.push(FieldError::not_supported(&up, to_value(&us), &["RollingUpdate", "OnDelete"])),
        }
        if let Some(r) = spec.revision_history_limit {
            errs.extend(nonnegative(i64::from(r), &sp.child("revisionHistoryLimit")));
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> FieldErrors {
        let sel = |d: &DaemonSet| d.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
        immutable(&sel(self), &sel(old), &FieldPath::root("spec").child("selector"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::pod::has;
    use crate::validation::ErrorType;
    use serde_json::{Value, json};

    fn prep<T: ApiKind>(v: Value) -> T {
        let mut t: T = serde_json::from_value(v).unwrap();
        t.set_defaults();
        t
    }

    fn template(labels: Value) -> Value {
        json!({"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    }

    /// A valid spec for the kind, with `patch` merged over it.
    fn with(base: &Value, patch: Value) -> Value {
        let mut v = base.clone();
        for (k, val) in patch.as_object().unwrap() {
            v["spec"][k] = val.clone();
        }
        v
    }

    fn base() -> Value {
        json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template(json!({"app": "x"}))}})
    }

    fn check<T: ApiKind>(cases: Vec<(&str, Value, ErrorType, &str)>) {
        for (name, patch, ty, field) in cases {
            let t: T = prep(with(&base(), patch));
            let errs = t.validate();
            assert!(has(&errs, ty, field), "{name}: wanted {ty:?} at {field}, got {errs:?}");
        }
    }

    fn strings(errs: &FieldErrors) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn deployment_defaults() {
        let d: Deployment = prep(base());
        let v = to_value(&d);
        assert_eq!(v["spec"]["replicas"], 1);
        assert_eq!(
            v["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
        );
        assert_eq!(v["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(v["spec"]["progressDeadlineSeconds"], 600);
        assert_eq!(v["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(v["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert!(d.validate().is_empty(), "{:?}", d.validate());
        let recreate: Deployment = prep(with(&base(), json!({"strategy": {"type": "Recreate"}})));
        assert!(to_value(&recreate)["spec"]["strategy"].get("rollingUpdate").is_none());
        assert!(recreate.validate().is_empty());
    }

    #[test]
    fn deployment_validation() {
        check::<Deployment>(vec![
            ("replicas", json!({"replicas": -1}), ErrorType::Invalid, "spec.replicas"),
            ("no selector", json!({"selector": {}}), ErrorType::Required, "spec.selector"),
            ("no selector mismatch", json!({"selector": {}}), ErrorType::Invalid, "spec.template.metadata.labels"),
            (
                "mismatch",
                json!({"selector": {"matchLabels": {"app": "y"}}}),
                ErrorType::Invalid,
                "spec.template.metadata.labels",
            ),
            (
                "bad selector",
                json!({"selector": {"matchExpressions": [{"key": "a", "operator": "Nope"}]}}),
                ErrorType::Invalid,
                "spec.selector",
            ),
            (
                "restart",
                json!({"template": {"metadata": {"labels": {"app": "x"}}, "spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "x"}]}}}),
                ErrorType::NotSupported,
                "spec.template.spec.restartPolicy",
            ),
            (
                "template containers",
                json!({"template": {"metadata": {"labels": {"app": "x"}}}}),
                ErrorType::Required,
                "spec.template.spec.containers",
            ),
            (
                "both zero",
                json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}),
                ErrorType::Invalid,
                "spec.strategy.rollingUpdate.maxUnavailable",
            ),
            (
                "percent",
                json!({"strategy": {"rollingUpdate": {"maxSurge": "x%"}}}),
                ErrorType::Invalid,
                "spec.strategy.rollingUpdate.maxSurge",
            ),
            (
                "over 100",
                json!({"strategy": {"rollingUpdate": {"maxUnavailable": "110%"}}}),
                ErrorType::Invalid,
                "spec.strategy.rollingUpdate.maxUnavailable",
            ),
            (
                "recreate with rolling",
                json!({"strategy": {"type": "Recreate", "rollingUpdate": {}}}),
                ErrorType::Forbidden,
                "spec.strategy.rollingUpdate",
            ),
            ("strategy type", json!({"strategy": {"type": "Blue"}}), ErrorType::NotSupported, "spec.strategy"),
            ("progress", json!({"minReadySeconds": 700}), ErrorType::Invalid, "spec.progressDeadlineSeconds"),
            ("history", json!({"revisionHistoryLimit": -1}), ErrorType::Invalid, "spec.revisionHistoryLimit"),
        ]);
        let d: Deployment = prep(with(&base(), json!({"selector": {"matchLabels": {"app": "y"}}})));
        assert_eq!(
            strings(&d.validate()),
            vec![
                "spec.template.metadata.labels: Invalid value: {\"app\":\"x\"}: `selector` does not match template `labels`"
            ]
        );
    }

    #[test]
    fn deployment_updates() {
        let old: Deployment = prep(base());
        let scaled: Deployment = prep(with(&base(), json!({"replicas": 5})));
        assert!(scaled.validate_update(&old).is_empty());
        let moved: Deployment = prep(with(&base(), json!({"selector": {"matchLabels": {"app": "x", "tier": "a"}}})));
        assert_eq!(
            strings(&moved.validate_update(&old)),
            vec!["spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"x\",\"tier\":\"a\"}}: field is immutable"]
        );
    }

    #[test]
    fn replica_sets() {
        let rs: ReplicaSet = prep(base());
        assert_eq!(to_value(&rs)["spec"]["replicas"], 1);
        assert!(rs.validate().is_empty(), "{:?}", rs.validate());
        check::<ReplicaSet>(vec![
            ("min ready", json!({"minReadySeconds": -1}), ErrorType::Invalid, "spec.minReadySeconds"),
            ("no selector", json!({"selector": {}}), ErrorType::Required, "spec.selector"),
            (
                "deadline",
                json!({"template": {"metadata": {"labels": {"app": "x"}}, "spec": {"activeDeadlineSeconds": 3, "containers": [{"name": "c", "image": "x"}]}}}),
                ErrorType::Forbidden,
                "spec.template.spec.activeDeadlineSeconds",
            ),
        ]);
        let moved: ReplicaSet = prep(with(&base(), json!({"selector": {"matchLabels": {"app": "z"}}})));
        assert!(has(&moved.validate_update(&rs), ErrorType::Invalid, "spec.selector"));
    }

    #[test]
    fn stateful_sets() {
        let mut b = base();
        b["spec"]["volumeClaimTemplates"] =
            json!([{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]);
        let s: StatefulSet = prep(b.clone());
        let v = to_value(&s);
        assert_eq!(v["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(v["spec"]["updateStrategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
        assert_eq!(
            v["spec"]["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(v["spec"]["replicas"], 1);
        assert_eq!(v["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(v["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"], "Filesystem");
        assert_eq!(v["spec"]["volumeClaimTemplates"][0]["status"]["phase"], "Pending");
        assert!(s.validate().is_empty(), "{:?}", s.validate());
        check::<StatefulSet>(vec![
            ("policy", json!({"podManagementPolicy": "Random"}), ErrorType::Invalid, "spec.podManagementPolicy"),
            ("strategy", json!({"updateStrategy": {"type": "Blue"}}), ErrorType::Invalid, "spec.updateStrategy"),
            (
                "on delete",
                json!({"updateStrategy": {"type": "OnDelete", "rollingUpdate": {"partition": 1}}}),
                ErrorType::Invalid,
                "spec.updateStrategy.rollingUpdate",
            ),
            (
                "partition",
                json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": -1}}}),
                ErrorType::Invalid,
                "spec.updateStrategy.rollingUpdate.partition",
            ),
            (
                "max unavailable",
                json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}}}),
                ErrorType::Invalid,
                "spec.updateStrategy.rollingUpdate.maxUnavailable",
            ),
            (
                "retention",
                json!({"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Keep"}}),
                ErrorType::NotSupported,
                "spec.persistentVolumeClaimRetentionPolicy.whenDeleted",
            ),
            ("ordinals", json!({"ordinals": {"start": -1}}), ErrorType::Invalid, "spec.ordinals.start"),
            ("selector", json!({"selector": {}}), ErrorType::Required, "spec.selector"),
            (
                "mismatch",
                json!({"selector": {"matchLabels": {"app": "y"}}}),
                ErrorType::Invalid,
                "spec.template.metadata.labels",
            ),
            (
                "restart",
                json!({"template": {"metadata": {"labels": {"app": "x"}}, "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}),
                ErrorType::NotSupported,
                "spec.template.spec.restartPolicy",
            ),
        ]);
        let ok = [
            json!({"replicas": 3}),
            json!({"minReadySeconds": 5}),
            json!({"updateStrategy": {"type": "OnDelete"}}),
            json!({"template": template(json!({"app": "x", "v": "2"}))}),
        ];
        for patch in ok {
            let n: StatefulSet = prep(with(&b, patch.clone()));
            assert!(n.validate_update(&s).is_empty(), "{patch}");
        }
        let n: StatefulSet = prep(with(&b, json!({"serviceName": "other"})));
        assert_eq!(
            strings(&n.validate_update(&s)),
            vec![
                "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
            ]
        );
    }

    #[test]
    fn daemon_sets() {
        let d: DaemonSet = prep(base());
        let v = to_value(&d);
        assert_eq!(
            v["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(v["spec"]["revisionHistoryLimit"], 10);
        assert!(d.validate().is_empty(), "{:?}", d.validate());
        check::<DaemonSet>(vec![
            (
                "mismatch",
                json!({"selector": {"matchLabels": {"app": "y"}}}),
                ErrorType::Invalid,
                "spec.template.metadata.labels",
            ),
            ("no selector", json!({"selector": {}}), ErrorType::Invalid, "spec.template.metadata.labels"),
            (
                "both",
                json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}}}),
                ErrorType::Invalid,
                "spec.updateStrategy.rollingUpdate.maxSurge",
            ),
            (
                "neither",
                json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}}),
                ErrorType::Required,
                "spec.updateStrategy.rollingUpdate.maxUnavailable",
            ),
            ("type", json!({"updateStrategy": {"type": "Blue"}}), ErrorType::NotSupported, "spec.updateStrategy"),
            (
                "restart",
                json!({"template": {"metadata": {"labels": {"app": "x"}}, "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}),
                ErrorType::NotSupported,
                "spec.template.spec.restartPolicy",
            ),
        ]);
        let moved: DaemonSet = prep(with(&base(), json!({"selector": {"matchLabels": {"app": "z"}}})));
        assert!(has(&moved.validate_update(&d), ErrorType::Invalid, "spec.selector"));
    }
}
