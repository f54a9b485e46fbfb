//! `batch/v1` kinds: Job and CronJob.
//!
//! Defaults follow upstream's `SetDefaults_Job` / `SetDefaults_CronJob` plus the pod template
//! defaults, and the selector generation of the Job create strategy; validation follows batch
//! validation, including the schedule syntax upstream takes from its cron library (five
//! fields or a `@descriptor`).

use super::ApiKind;
use super::pod::{
    default_pod_template, dns1123_subdomain, immutable, invalid_each, nonnegative, selector_matches, set_if_empty, st,
    template_labels, template_restart_policy, to_value, validate_label_selector, validate_pod_template_spec,
    validate_qualified_name,
};
use crate::validation::{ErrorType, FieldError, FieldErrors, FieldPath};
use k8s_openapi::api::batch::v1::{CronJob, Job, JobSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use std::collections::BTreeSet;

/// An `Invalid value` error without a value (upstream's `OmitValueType`).
fn invalid_no_value(path: &FieldPath, detail: &str) -> FieldError {
    FieldError { error_type: ErrorType::Invalid, field: path.to_string(), bad_value: None, detail: detail.to_string() }
}

/// Go's `%q` of a string list: `["a" "b"]`.
fn quoted_list(items: &[&str]) -> String {
    format!("[{}]", items.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(" "))
}

// ---------------------------------------------------------------------------------------------
// Job
// ---------------------------------------------------------------------------------------------

const LEGACY_UID_LABEL: &str = "controller-uid";
const LEGACY_NAME_LABEL: &str = "job-name";
const UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
const NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// The defaults every job spec gets (`SetDefaults_Job` minus the object labels).
fn default_job_spec(spec: &mut JobSpec) {
    if spec.completions.is_none() && spec.parallelism.is_none() {
        spec.completions = Some(1);
        spec.parallelism = Some(1);
    }
    spec.parallelism.get_or_insert(1);
    if spec.backoff_limit.is_none() {
        spec.backoff_limit = Some(if spec.backoff_limit_per_index.is_some() { i32::MAX } else { 6 });
    }
    set_if_empty(&mut spec.completion_mode, "NonIndexed");
    spec.suspend.get_or_insert(false);
    if spec.pod_replacement_policy.is_none() {
        let policy = if spec.pod_failure_policy.is_some() { "Failed" } else { "TerminatingOrFailed" };
        spec.pod_replacement_policy = Some(policy.to_string());
    }
    spec.manual_selector.get_or_insert(false);
    default_job_spec_types(spec);
}

/// The defaults that belong to types inside a job spec, so they also apply to a CronJob's job
/// template: pod failure condition patterns default to status `True`, and the pod template.
fn default_job_spec_types(spec: &mut JobSpec) {
    if let Some(pfp) = &mut spec.pod_failure_policy {
        for rule in &mut pfp.rules {
            for pattern in rule.on_pod_conditions.iter_mut().flatten() {
                if pattern.status.is_empty() {
                    pattern.status = "True".to_string();
                }
            }
        }
    }
    default_pod_template(&mut spec.template);
}

/// Upstream's `generateSelector` (Job create strategy): the template gets the job name and
/// uid labels (legacy and prefixed) unless it already has them, and the selector matches the
/// prefixed uid label. Idempotent, so it may run on every write.
fn generate_selector(meta: &ObjectMeta, spec: &mut JobSpec) {
    let name = meta.name.clone().unwrap_or_default();
    let uid = meta.uid.clone().unwrap_or_default();
    let labels =
        spec.template.metadata.get_or_insert_with(Default::default).labels.get_or_insert_with(Default::default);
    for key in [LEGACY_NAME_LABEL, NAME_LABEL] {
        labels.entry(key.to_string()).or_insert_with(|| name.clone());
    }
    for key in [LEGACY_UID_LABEL, UID_LABEL] {
        labels.entry(key.to_string()).or_insert_with(|| uid.clone());
    }
    let selector = spec.selector.get_or_insert_with(LabelSelector::default);
    selector.match_labels.get_or_insert_with(Default::default).entry(UID_LABEL.to_string()).or_insert(uid);
}

fn manual_selector(spec: &JobSpec) -> bool {
    spec.manual_selector == Some(true)
}

/// `validateGeneratedSelector`: the template carries the generated labels and the selector
/// selects them.
fn validate_generated_selector(meta: &ObjectMeta, spec: &JobSpec) -> FieldErrors {
    let mut errs = Vec::new();
    let Some(selector) = &spec.selector else { return errs };
    if manual_selector(spec) {
        return errs;
    }
    let uid = st(&meta.uid);
    let name = st(&meta.name);
    if uid.is_empty() {
        errs.push(FieldError::required(&FieldPath::root("metadata").child("uid"), ""));
    }
    let lp = FieldPath::root("spec").child("template").child("metadata").child("labels");
    let labels = template_labels(&spec.template);
    let mut expected = std::collections::BTreeMap::new();
    for (key, want) in [(LEGACY_UID_LABEL, uid), (LEGACY_NAME_LABEL, name), (UID_LABEL, uid), (NAME_LABEL, name)] {
        match labels.and_then(|l| l.get(key)) {
            None => errs.push(FieldError::required(&lp.key(key), &format!("must be '{want}'"))),
            Some(v) if v != want => {
                errs.push(FieldError::invalid(&lp.key(key), to_value(&labels), &format!("must be '{want}'")))
            }
            Some(_) => {}
        }
        expected.insert(key.to_string(), want.to_string());
    }
    if validate_label_selector(Some(selector), &FieldPath::root("spec").child("selector")).is_empty()
        && !selector_matches(selector, Some(&expected))
    {
        errs.push(FieldError::invalid(
            &FieldPath::root("spec").child("selector"),
            to_value(selector),
            "`selector` not auto-generated",
        ));
    }
    errs
}

/// `IsDomainPrefixedPath`.
fn domain_prefixed_path(v: &str, path: &FieldPath) -> FieldErrors {
    if v.is_empty() {
        return vec![FieldError::required(path, "")];
    }
    let Some((host, rest)) = v.split_once('/').filter(|(h, r)| !h.is_empty() && !r.is_empty()) else {
        return vec![FieldError::invalid(path, v, "must be a domain-prefixed path (such as \"acme.io/foo\")")];
    };
    let mut errs = invalid_each(path, host, dns1123_subdomain(host));
    let ok = rest.bytes().all(|c| c.is_ascii_alphanumeric() || b"/-._~%!$&'()*+,;=:".contains(&c));
    if !ok {
        errs.push(FieldError::invalid(
            path,
            rest,
            "Invalid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')",
        ));
    }
    errs
}

/// Parses an index list such as `1,3-5`, returning how many indexes it names.
fn indexes_count(s: &str, completions: i32) -> Result<i32, String> {
    if s.is_empty() {
        return Ok(0);
    }
    let mut last: Option<i32> = None;
    let mut total = 0i32;
    for interval in s.split(',') {
        let parts: Vec<&str> = interval.split('-').collect();
        if parts.len() > 2 {
            return Err(format!(
                "the fragment {interval:?} violates the requirement that an index interval can have at most two parts separated by '-'"
            ));
        }
        let parse = |p: &str| -> Result<i32, String> {
            let x: i64 = p.parse().map_err(|_| format!("cannot convert string to integer for index: {p:?}"))?;
            if x >= i64::from(completions) {
                return Err(format!("too large index: {p:?}"));
            }
            Ok(x as i32)
        };
        let x = parse(parts[0])?;
        let y = if parts.len() == 2 {
            let y = parse(parts[1])?;
            if x >= y {
                return Err(format!("non-increasing order, previous: {x}, current: {y}"));
            }
            y
        } else {
            x
        };
        if let Some(l) = last.filter(|l| *l >= x) {
            return Err(format!("non-increasing order, previous: {l}, current: {x}"));
        }
        total += y - x + 1;
        last = Some(y);
    }
    Ok(total)
}

/// `validateJobSpec`: everything but the selector.
fn validate_job_spec_body(spec: &JobSpec, sp: &FieldPath) -> FieldErrors {
    let mut errs = Vec::new();
    for (v, name) in [
        (spec.parallelism.map(i64::from), "parallelism"),
        (spec.completions.map(i64::from), "completions"),
        (spec.active_deadline_seconds, "activeDeadlineSeconds"),
        (spec.backoff_limit.map(i64::from), "backoffLimit"),
        (spec.ttl_seconds_after_finished.map(i64::from), "ttlSecondsAfterFinished"),
        (spec.backoff_limit_per_index.map(i64::from), "backoffLimitPerIndex"),
    ] {
        if let Some(v) = v {
            errs.extend(nonnegative(v, &sp.child(name)));
        }
    }
    if let Some(m) = spec.max_failed_indexes {
        errs.extend(nonnegative(i64::from(m), &sp.child("maxFailedIndexes")));
        if spec.backoff_limit_per_index.is_none() {
            errs.push(FieldError::required(&sp.child("backoffLimitPerIndex"), "when maxFailedIndexes is specified"));
        }
    }
    if let Some(m) = &spec.managed_by {
        errs.extend(domain_prefixed_path(m, &sp.child("managedBy")));
        if m.len() > 63 {
            errs.push(FieldError::too_long(&sp.child("managedBy"), 63));
        }
    }
    let mode = st(&spec.completion_mode);
    let indexed = mode == "Indexed";
    if spec.completion_mode.is_some() {
        if mode != "NonIndexed" && mode != "Indexed" {
            errs.push(FieldError::not_supported(&sp.child("completionMode"), mode, &["NonIndexed", "Indexed"]));
        }
        if indexed {
            if spec.completions.is_none() {
                errs.push(FieldError::required(&sp.child("completions"), "when completion mode is Indexed"));
            }
            if let Some(p) = spec.parallelism.filter(|p| *p > 100_000) {
                errs.push(FieldError::invalid(
                    &sp.child("parallelism"),
                    p,
                    "must be less than or equal to 100000 when completion mode is Indexed",
                ));
            }
            if let (Some(c), Some(m)) = (spec.completions, spec.max_failed_indexes)
                && m > c
            {
                errs.push(FieldError::invalid(
                    &sp.child("maxFailedIndexes"),
                    m,
                    "must be less than or equal to completions",
                ));
            }
            if let Some(m) = spec.max_failed_indexes.filter(|m| *m > 100_000) {
                errs.push(FieldError::invalid(
                    &sp.child("maxFailedIndexes"),
                    m,
                    "must be less than or equal to 100000",
                ));
            }
        }
    }
    if !indexed {
        if let Some(b) = spec.backoff_limit_per_index {
            errs.push(FieldError::invalid(&sp.child("backoffLimitPerIndex"), b, "requires indexed completion mode"));
        }
        if let Some(m) = spec.max_failed_indexes {
            errs.push(FieldError::invalid(&sp.child("maxFailedIndexes"), m, "requires indexed completion mode"));
        }
    }
    if let Some(pfp) = &spec.pod_failure_policy {
        errs.extend(validate_pod_failure_policy(spec, pfp, &sp.child("podFailurePolicy")));
    }
    if let Some(sp_) = &spec.success_policy {
        let pp = sp.child("successPolicy");
        if !indexed {
            errs.push(FieldError::invalid(&pp, to_value(sp_), "requires indexed completion mode"));
        } else {
            errs.extend(validate_success_policy(spec, sp_, &pp));
        }
    }
    if let Some(p) = spec.pod_replacement_policy.as_deref() {
        let rp = sp.child("podReplacementPolicy");
        if spec.pod_failure_policy.is_some() {
            if p != "Failed" {
                errs.push(FieldError::not_supported(&rp, p, &["Failed"]));
            }
        } else if p != "Failed" && p != "TerminatingOrFailed" {
            errs.push(FieldError::not_supported(&rp, p, &["Failed", "TerminatingOrFailed"]));
        }
    }
    let tp = sp.child("template");
    errs.extend(validate_pod_template_spec(&spec.template, &tp));
    let rpp = tp.child("spec").child("restartPolicy");
    match template_restart_policy(&spec.template) {
        "Always" | "" => errs.push(FieldError::required(&rpp, "valid values: \"OnFailure\", \"Never\"")),
        "OnFailure" | "Never" => {
            if spec.pod_failure_policy.is_some() && template_restart_policy(&spec.template) != "Never" {
                errs.push(FieldError::invalid(
                    &rpp,
                    "OnFailure",
                    "only \"Never\" is supported when podFailurePolicy is specified",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(&rpp, other, &["OnFailure", "Never"])),
    }
    errs
}

fn validate_pod_failure_policy(
    spec: &JobSpec,
    pfp: &k8s_openapi::api::batch::v1::PodFailurePolicy,
    path: &FieldPath,
) -> FieldErrors {
    let mut errs = Vec::new();
    let rp = path.child("rules");
    if pfp.rules.len() > 20 {
        errs.push(FieldError::too_many(&rp, pfp.rules.len(), 20));
    }
    let tspec = spec.template.spec.clone().unwrap_or_default();
    let names: BTreeSet<&str> =
        tspec.containers.iter().chain(tspec.init_containers.iter().flatten()).map(|c| c.name.as_str()).collect();
    const ACTIONS: &[&str] = &["Count", "FailIndex", "FailJob", "Ignore"];
    for (i, rule) in pfp.rules.iter().enumerate() {
        let p = rp.index(i);
        let ap = p.child("action");
        match rule.action.as_str() {
            "" => errs.push(FieldError::required(&ap, &format!("valid values: {}", quoted_list(ACTIONS)))),
            "FailIndex" if spec.backoff_limit_per_index.is_none() => {
                errs.push(FieldError::invalid(&ap, "FailIndex", "requires the backoffLimitPerIndex to be set"));
            }
            a if !ACTIONS.contains(&a) => errs.push(FieldError::not_supported(&ap, a, ACTIONS)),
            _ => {}
        }
        let conditions = rule.on_pod_conditions.as_deref().unwrap_or_default();
        if let Some(ec) = &rule.on_exit_codes {
            let ep = p.child("onExitCodes");
            match ec.operator.as_str() {
                "" => errs.push(FieldError::required(
                    &ep.child("operator"),
                    &format!("valid values: {}", quoted_list(&["In", "NotIn"])),
                )),
                "In" | "NotIn" => {}
                o => errs.push(FieldError::not_supported(&ep.child("operator"), o, &["In", "NotIn"])),
            }
            if let Some(c) = ec.container_name.as_deref()
                && !names.contains(c)
            {
                errs.push(FieldError::invalid(
                    &ep.child("containerName"),
                    c,
                    "must be one of the container or initContainer names in the pod template",
                ));
            }
            let vp = ep.child("values");
            if ec.values.is_empty() {
                errs.push(FieldError::invalid(&vp, to_value(&ec.values), "at least one value is required"));
            } else if ec.values.len() > 255 {
                errs.push(FieldError::too_many(&vp, ec.values.len(), 255));
            }
            let mut seen = BTreeSet::new();
            let mut ordered = true;
            for (j, v) in ec.values.iter().enumerate() {
                if ec.operator == "In" && *v == 0 {
                    errs.push(FieldError::invalid(&vp.index(j), *v, "must not be 0 for the In operator"));
                }
                if !seen.insert(*v) {
                    errs.push(FieldError::duplicate(&vp.index(j), *v));
                }
                if j > 0 && ec.values[j - 1] > *v {
                    ordered = false;
                }
            }
            if !ordered {
                errs.push(FieldError::invalid(&vp, to_value(&ec.values), "must be ordered"));
            }
        }
        if !conditions.is_empty() {
            let cp = p.child("onPodConditions");
            if conditions.len() > 20 {
                errs.push(FieldError::too_many(&cp, conditions.len(), 20));
            }
            for (j, pattern) in conditions.iter().enumerate() {
                let pp = cp.index(j);
                errs.extend(validate_qualified_name(&pattern.type_, &pp.child("type")));
                const STATUSES: &[&str] = &["False", "True", "Unknown"];
                match pattern.status.as_str() {
                    "" => errs.push(FieldError::required(
                        &pp.child("status"),
                        &format!("valid values: {}", quoted_list(STATUSES)),
                    )),
                    s if !STATUSES.contains(&s) => {
                        errs.push(FieldError::not_supported(&pp.child("status"), s, STATUSES))
                    }
                    _ => {}
                }
            }
        }
        match (rule.on_exit_codes.is_some(), !conditions.is_empty()) {
            (true, true) => {
                errs.push(invalid_no_value(&p, "specifying both OnExitCodes and OnPodConditions is not supported"))
            }
            (false, false) => {
                errs.push(invalid_no_value(&p, "specifying one of OnExitCodes and OnPodConditions is required"))
            }
            _ => {}
        }
    }
    errs
}

fn validate_success_policy(
    spec: &JobSpec,
    policy: &k8s_openapi::api::batch::v1::SuccessPolicy,
    path: &FieldPath,
) -> FieldErrors {
    let mut errs = Vec::new();
    let rp = path.child("rules");
    if policy.rules.is_empty() {
        errs.push(FieldError::required(
            &rp,
            "at least one rules must be specified when the successPolicy is specified",
        ));
    }
    if policy.rules.len() > 20 {
        errs.push(FieldError::too_many(&rp, policy.rules.len(), 20));
    }
    let completions = spec.completions.unwrap_or(0);
    for (i, rule) in policy.rules.iter().enumerate() {
        let p = rp.index(i);
        if rule.succeeded_count.is_none() && rule.succeeded_indexes.is_none() {
            errs.push(FieldError::required(&p, "at least one of succeededCount or succeededIndexes must be specified"));
        }
        let mut total = 0;
        if let Some(ix) = &rule.succeeded_indexes {
            let ip = p.child("succeededIndexes");
            if ix.len() > 64 * 1024 {
                errs.push(FieldError::too_long(&ip, 64 * 1024));
            }
            match indexes_count(ix, completions) {
                Ok(n) => total = n,
                Err(e) => {
                    errs.push(FieldError::invalid(&ip, ix.as_str(), &format!("error parsing succeededIndexes: {e}")))
                }
            }
        }
        if let Some(c) = rule.succeeded_count {
            let cp = p.child("succeededCount");
            errs.extend(nonnegative(i64::from(c), &cp));
            if c > completions {
                errs.push(FieldError::invalid(
                    &cp,
                    c,
                    &format!("must be less than or equal to {completions} (the number of specified completions)"),
                ));
            }
            if rule.succeeded_indexes.is_some() && c > total {
                errs.push(FieldError::invalid(
                    &cp,
                    c,
                    &format!("must be less than or equal to {total} (the number of indexes in the specified succeededIndexes field)"),
                ));
            }
        }
    }
    errs
}

/// Job.
///
/// Defaults: `completions` and `parallelism` 1 (when both unset), `backoffLimit: 6`,
/// `completionMode: NonIndexed`, `suspend: false`, `manualSelector: false`,
/// `podReplacementPolicy`, the template
/// defaults, unless `manualSelector` is set the generated selector and template labels of
/// upstream's create strategy, and object labels from the template labels when the object has
/// none. The generated selector needs `metadata.uid`, which the server assigns; when the
/// uid is not there yet, nothing is generated and a missing selector is not reported.
///
/// Update: `selector`, `template` (except the scheduling directives of a suspended job that
/// never started), `completionMode`, `podFailurePolicy`, `backoffLimitPerIndex`, `managedBy`
/// and `successPolicy` are immutable; `completions` only changes, in step with `parallelism`,
/// for Indexed jobs.
impl ApiKind for Job {
    fn set_defaults(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        default_job_spec(spec);
        if !manual_selector(spec) && !st(&self.metadata.uid).is_empty() {
            generate_selector(&self.metadata, spec);
        }
        // Upstream copies the labels when the stored object is read back, by which time the
        // generated labels are on the template; doing it after generation gives the same result.
        if let Some(labels) = template_labels(&spec.template).cloned()
            && self.metadata.labels.as_ref().is_none_or(|l| l.is_empty())
        {
            self.metadata.labels = Some(labels);
        }
    }

    fn validate(&self) -> FieldErrors {
        let spec = self.spec.clone().unwrap_or_default();
        let sp = FieldPath::root("spec");
        let mut errs = validate_generated_selector(&self.metadata, &spec);
        errs.extend(validate_job_spec_body(&spec, &sp));
        let awaiting_generation = !manual_selector(&spec) && st(&self.metadata.uid).is_empty();
        match &spec.selector {
            None if awaiting_generation => {}
            None => {
                errs.push(FieldError::required(&sp.child("selector"), ""));
                errs.push(mismatch(&spec, &sp));
            }
            Some(sel) => {
                let sel_errs = validate_label_selector(Some(sel), &sp.child("selector"));
                let converts = sel_errs.is_empty();
                errs.extend(sel_errs);
                if converts && !selector_matches(sel, template_labels(&spec.template)) {
                    errs.push(mismatch(&spec, &sp));
                }
            }
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> FieldErrors {
        let new = self.spec.clone().unwrap_or_default();
        let old_spec = old.spec.clone().unwrap_or_default();
        let sp = FieldPath::root("spec");
        let mut errs = Vec::new();
        let cp = sp.child("completions");
        if st(&new.completion_mode) != "Indexed" {
            errs.extend(immutable(&new.completions, &old_spec.completions, &cp));
        } else if new.completions != old_spec.completions
            && let Some(c) = new.completions
            && Some(c) != new.parallelism
        {
            errs.push(FieldError::invalid(&cp, c, "can only be modified in tandem with spec.parallelism"));
        }
        errs.extend(immutable(&new.selector, &old_spec.selector, &sp.child("selector")));
        // A suspended job that never started may change where its pods land.
        let mut old_template = old_spec.template.clone();
        let never_started = old.status.as_ref().is_none_or(|s| s.start_time.is_none());
        if old_spec.suspend == Some(true) && never_started {
            let nt = &new.template;
            let new_spec = nt.spec.clone().unwrap_or_default();
            let ot = old_template.spec.get_or_insert_with(Default::default);
            let new_node_affinity = new_spec.affinity.as_ref().and_then(|a| a.node_affinity.clone());
            match (&new_spec.affinity, &mut ot.affinity) {
                (None, Some(oa)) => {
                    oa.node_affinity = None;
                    if oa.pod_affinity.is_none() && oa.pod_anti_affinity.is_none() {
                        ot.affinity = None;
                    }
                }
                (Some(_), None) => {
                    ot.affinity = Some(k8s_openapi::api::core::v1::Affinity {
                        node_affinity: new_node_affinity,
                        ..Default::default()
                    })
                }
                (Some(_), Some(oa)) => oa.node_affinity = new_node_affinity,
                (None, None) => {}
            }
            ot.node_selector = new_spec.node_selector.clone();
            ot.tolerations = new_spec.tolerations.clone();
            ot.scheduling_gates = new_spec.scheduling_gates.clone();
            let om = old_template.metadata.get_or_insert_with(Default::default);
            om.annotations = nt.metadata.as_ref().and_then(|m| m.annotations.clone());
            om.labels = nt.metadata.as_ref().and_then(|m| m.labels.clone());
        }
        errs.extend(immutable(&new.template, &old_template, &sp.child("template")));
        errs.extend(immutable(&new.completion_mode, &old_spec.completion_mode, &sp.child("completionMode")));
        errs.extend(immutable(&new.pod_failure_policy, &old_spec.pod_failure_policy, &sp.child("podFailurePolicy")));
        errs.extend(immutable(
            &new.backoff_limit_per_index,
            &old_spec.backoff_limit_per_index,
            &sp.child("backoffLimitPerIndex"),
        ));
        errs.extend(immutable(&new.managed_by, &old_spec.managed_by, &sp.child("managedBy")));
        errs.extend(immutable(&new.success_policy, &old_spec.success_policy, &sp.child("successPolicy")));
        errs
    }
}

fn mismatch(spec: &JobSpec, sp: &FieldPath) -> FieldError {
    FieldError::invalid(
        &sp.child("template").child("metadata").child("labels"),
        to_value(&template_labels(&spec.template)),
        "`selector` does not match template `labels`",
    )
}

// ---------------------------------------------------------------------------------------------
// CronJob
// ---------------------------------------------------------------------------------------------

/// The bounds and names of one cron field.
struct CronField {
    min: u64,
    max: u64,
    names: &'static [(&'static str, u64)],
}

const MONTH_NAMES: &[(&str, u64)] = &[
    ("jan", 1),
    ("feb", 2),
    ("mar", 3),
    ("apr", 4),
    ("may", 5),
    ("jun", 6),
    ("jul", 7),
    ("aug", 8),
    ("sep", 9),
    ("oct", 10),
    ("nov", 11),
    ("dec", 12),
];
const DOW_NAMES: &[(&str, u64)] = &[("sun", 0), ("mon", 1), ("tue", 2), ("wed", 3), ("thu", 4), ("fri", 5), ("sat", 6)];

const CRON_FIELDS: [CronField; 5] = [
    CronField { min: 0, max: 59, names: &[] },
    CronField { min: 0, max: 23, names: &[] },
    CronField { min: 1, max: 31, names: &[] },
    CronField { min: 1, max: 12, names: MONTH_NAMES },
    CronField { min: 0, max: 6, names: DOW_NAMES },
];

/// Go's `strconv.Atoi` failure texts.
fn atoi(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!("strconv.Atoi: parsing {s:?}: invalid syntax"));
    }
    s.parse::<i64>().map_err(|_| format!("strconv.Atoi: parsing {s:?}: value out of range"))
}

fn cron_int(expr: &str) -> Result<u64, String> {
    let n = atoi(expr).map_err(|e| format!("failed to parse int from {expr}: {e}"))?;
    if n < 0 {
        return Err(format!("negative number ({n}) not allowed: {expr}"));
    }
    Ok(n as u64)
}

fn cron_int_or_name(expr: &str, f: &CronField) -> Result<u64, String> {
    let lower = expr.to_lowercase();
    if let Some((_, v)) = f.names.iter().find(|(n, _)| *n == lower) {
        return Ok(*v);
    }
    cron_int(expr)
}

fn cron_range(expr: &str, f: &CronField) -> Result<(), String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_high.len() == 1;
    let (start, mut end);
    if low_high[0] == "*" || low_high[0] == "?" {
        start = f.min;
        end = f.max;
    } else {
        start = cron_int_or_name(low_high[0], f)?;
        end = match low_high.len() {
            1 => start,
            2 => cron_int_or_name(low_high[1], f)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
    }
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = cron_int(range_and_step[1])?;
            if single {
                end = f.max;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < f.min {
        return Err(format!("beginning of range ({start}) below minimum ({}): {expr}", f.min));
    }
    if end > f.max {
        return Err(format!("end of range ({end}) above maximum ({}): {expr}", f.max));
    }
    if start > end {
        return Err(format!("beginning of range ({start}) beyond end of range ({end}): {expr}"));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    Ok(())
}

/// Go's `time.ParseDuration`, reduced to whether the text parses and Go's error text.
fn go_duration(s: &str) -> Result<(), String> {
    let orig = s;
    let invalid = || format!("time: invalid duration {orig:?}");
    let mut s = s.strip_prefix(['+', '-']).unwrap_or(s);
    if s == "0" {
        return Ok(());
    }
    if s.is_empty() {
        return Err(invalid());
    }
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let mut rest = &s[int_len..];
        let mut frac_len = 0;
        if let Some(r) = rest.strip_prefix('.') {
            frac_len = r.bytes().take_while(u8::is_ascii_digit).count();
            rest = &r[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return Err(invalid());
        }
        let unit_len = rest.bytes().take_while(|c| *c != b'.' && !c.is_ascii_digit()).count();
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {orig:?}"));
        }
        let unit = &rest[..unit_len];
        if !["ns", "us", "µs", "μs", "ms", "s", "m", "h"].contains(&unit) {
            return Err(format!("time: unknown unit {unit:?} in duration {orig:?}"));
        }
        s = &rest[unit_len..];
    }
    Ok(())
}

/// Parses a schedule the way upstream's cron library (standard parser) does; the error text
/// is the library's.
fn parse_cron_schedule(spec: &str) -> Result<(), String> {
    if spec.is_empty() {
        return Err("empty spec string".to_string());
    }
    let mut spec = spec;
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        // The zone itself is not looked up here (no time zone database); the schedule is.
        let i = spec.find(' ').unwrap_or(spec.len());
        spec = spec[i..].trim();
    }
    if spec.starts_with('@') {
        return match spec {
            "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@midnight" | "@hourly" => Ok(()),
            _ => match spec.strip_prefix("@every ") {
                Some(d) => go_duration(d).map_err(|e| format!("failed to parse duration {spec}: {e}")),
                None => Err(format!("unrecognized descriptor: {spec}")),
            },
        };
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!("expected exactly 5 fields, found {}: [{}]", fields.len(), fields.join(" ")));
    }
    for (field, bounds) in fields.iter().zip(CRON_FIELDS.iter()) {
        for part in field.split(',') {
            cron_range(part, bounds)?;
        }
    }
    Ok(())
}

fn validate_time_zone(tz: &str, path: &FieldPath) -> FieldErrors {
    if tz.is_empty() {
        return vec![FieldError::invalid(path, tz, "timeZone must be nil or non-empty string")];
    }
    for part in tz.split('/') {
        let ok = part != "."
            && part != ".."
            && !part.starts_with('-')
            && (1..=14).contains(&part.len())
            && part.bytes().all(|c| c.is_ascii_alphanumeric() || b".-_+".contains(&c));
        if !ok {
            return vec![FieldError::invalid(path, tz, &format!("unknown time zone {tz}"))];
        }
    }
    if tz.eq_ignore_ascii_case("Local") {
        return vec![FieldError::invalid(
            path,
            tz,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        )];
    }
    Vec::new()
}

/// CronJob. Defaults: `concurrencyPolicy: Allow`, `suspend: false`,
/// `successfulJobsHistoryLimit: 3`, `failedJobsHistoryLimit: 1`, and inside the job template
/// the pod template defaults and condition pattern status (upstream applies no other Job
/// defaults there). Validation: a required,
/// well-formed schedule without `TZ=`, the time zone name (its format only: there is no zone
/// database here), the concurrency policy, history limits, and the job template, whose
/// selector is generated later and so may not be set.
impl ApiKind for CronJob {
    fn set_defaults(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        set_if_empty(&mut spec.concurrency_policy, "Allow");
        spec.suspend.get_or_insert(false);
        spec.successful_jobs_history_limit.get_or_insert(3);
        spec.failed_jobs_history_limit.get_or_insert(1);
        default_job_spec_types(spec.job_template.spec.get_or_insert_with(Default::default));
    }

    fn validate(&self) -> FieldErrors {
        let spec = self.spec.clone().unwrap_or_default();
        let sp = FieldPath::root("spec");
        let mut errs = Vec::new();
        let schp = sp.child("schedule");
        if spec.schedule.is_empty() {
            errs.push(FieldError::required(&schp, ""));
        } else {
            if let Err(e) = parse_cron_schedule(&spec.schedule) {
                errs.push(FieldError::invalid(&schp, spec.schedule.as_str(), &e));
            }
            if spec.schedule.contains("TZ") {
                errs.push(FieldError::invalid(
                    &schp,
                    spec.schedule.as_str(),
                    "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
                ));
            }
        }
        if let Some(s) = spec.starting_deadline_seconds {
            errs.extend(nonnegative(s, &sp.child("startingDeadlineSeconds")));
        }
        if let Some(tz) = &spec.time_zone {
            errs.extend(validate_time_zone(tz, &sp.child("timeZone")));
        }
        match st(&spec.concurrency_policy) {
            "Allow" | "Forbid" | "Replace" => {}
            "" => errs.push(FieldError::required(&sp.child("concurrencyPolicy"), "")),
            other => errs.push(FieldError::not_supported(
                &sp.child("concurrencyPolicy"),
                other,
                &["Allow", "Forbid", "Replace"],
            )),
        }
        let jp = sp.child("jobTemplate");
        let job = spec.job_template.spec.clone().unwrap_or_default();
        errs.extend(validate_job_spec_body(&job, &jp.child("spec")));
        if let Some(sel) = &job.selector {
            errs.push(FieldError::invalid(
                &jp.child("spec").child("selector"),
                to_value(sel),
                "`selector` will be auto-generated",
            ));
        }
        if manual_selector(&job) {
            errs.push(FieldError::not_supported(&jp.child("spec").child("manualSelector"), true, &["nil", "false"]));
        }
        for (v, name) in [
            (spec.successful_jobs_history_limit, "successfulJobsHistoryLimit"),
            (spec.failed_jobs_history_limit, "failedJobsHistoryLimit"),
        ] {
            if let Some(v) = v {
                errs.extend(nonnegative(i64::from(v), &sp.child(name)));
            }
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::pod::has;
    use serde_json::{Value, json};

    fn prep<T: ApiKind>(v: Value) -> T {
        let mut t: T = serde_json::from_value(v).unwrap();
        t.set_defaults();
        t
    }

    fn strings(errs: &FieldErrors) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    fn job(spec: Value) -> Value {
        let mut base = json!({"metadata": {"name": "pi", "uid": "u-1"}, "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "perl"}]}}}});
        for (k, v) in spec.as_object().unwrap() {
            base["spec"][k] = v.clone();
        }
        base
    }

    #[test]
    fn job_defaults_and_generated_selector() {
        let j: Job = prep(job(json!({})));
        let v = to_value(&j);
        let spec = &v["spec"];
        assert_eq!(spec["completions"], 1);
        assert_eq!(spec["parallelism"], 1);
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(spec["manualSelector"], false);
        assert_eq!(spec["selector"], json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}));
        assert_eq!(
            spec["template"]["metadata"]["labels"],
            json!({"batch.kubernetes.io/controller-uid": "u-1", "batch.kubernetes.io/job-name": "pi", "controller-uid": "u-1", "job-name": "pi"})
        );
        assert_eq!(spec["template"]["spec"]["dnsPolicy"], "ClusterFirst");
        assert_eq!(v["metadata"]["labels"], spec["template"]["metadata"]["labels"]);
        assert!(j.validate().is_empty(), "{:?}", j.validate());
        // Running the defaults again changes nothing.
        let mut again = j.clone();
        again.set_defaults();
        assert_eq!(to_value(&again), to_value(&j));
        // Parallelism alone leaves completions unset.
        let p: Job = prep(job(json!({"parallelism": 3})));
        assert!(to_value(&p)["spec"].get("completions").is_none());
        // Without a uid nothing is generated and the missing selector is not reported yet.
        let mut no_uid = job(json!({}));
        no_uid["metadata"].as_object_mut().unwrap().remove("uid");
        let n: Job = prep(no_uid);
        assert!(n.spec.as_ref().unwrap().selector.is_none());
        assert!(n.validate().is_empty(), "{:?}", n.validate());
    }

    #[test]
    fn job_validation() {
        let cases: Vec<(&str, Value, ErrorType, &str)> = vec![
            (
                "restart default",
                json!({"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}),
                ErrorType::Required,
                "spec.template.spec.restartPolicy",
            ),
            ("parallelism", json!({"parallelism": -1}), ErrorType::Invalid, "spec.parallelism"),
            ("backoff", json!({"backoffLimit": -1}), ErrorType::Invalid, "spec.backoffLimit"),
            ("mode", json!({"completionMode": "Sometimes"}), ErrorType::NotSupported, "spec.completionMode"),
            (
                "indexed completions",
                json!({"completionMode": "Indexed", "parallelism": 2}),
                ErrorType::Required,
                "spec.completions",
            ),
            (
                "per index needs indexed",
                json!({"backoffLimitPerIndex": 1}),
                ErrorType::Invalid,
                "spec.backoffLimitPerIndex",
            ),
            ("manual no selector", json!({"manualSelector": true}), ErrorType::Required, "spec.selector"),
            (
                "manual mismatch",
                json!({"manualSelector": true, "selector": {"matchLabels": {"a": "b"}}}),
                ErrorType::Invalid,
                "spec.template.metadata.labels",
            ),
            (
                "generated tampered",
                json!({"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "other"}}}),
                ErrorType::Invalid,
                "spec.selector",
            ),
            (
                "pfp action",
                json!({"podFailurePolicy": {"rules": [{"action": "", "onExitCodes": {"operator": "In", "values": [1]}}]}}),
                ErrorType::Required,
                "spec.podFailurePolicy.rules[0].action",
            ),
            (
                "pfp zero",
                json!({"podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [0]}}]}}),
                ErrorType::Invalid,
                "spec.podFailurePolicy.rules[0].onExitCodes.values[0]",
            ),
            (
                "pfp neither",
                json!({"podFailurePolicy": {"rules": [{"action": "Ignore"}]}}),
                ErrorType::Invalid,
                "spec.podFailurePolicy.rules[0]",
            ),
            (
                "pfp restart",
                json!({"podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}, "template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "x"}]}}}),
                ErrorType::Invalid,
                "spec.template.spec.restartPolicy",
            ),
            (
                "success policy",
                json!({"successPolicy": {"rules": [{"succeededCount": 1}]}}),
                ErrorType::Invalid,
                "spec.successPolicy",
            ),
            (
                "replacement",
                json!({"podReplacementPolicy": "Sometimes"}),
                ErrorType::NotSupported,
                "spec.podReplacementPolicy",
            ),
            ("managed by", json!({"managedBy": "nope"}), ErrorType::Invalid, "spec.managedBy"),
        ];
        for (name, spec, ty, field) in cases {
            let j: Job = prep(job(spec));
            let errs = j.validate();
            assert!(has(&errs, ty, field), "{name}: wanted {ty:?} at {field}, got {errs:?}");
        }
        let j: Job = prep(job(json!({"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}})));
        assert_eq!(
            strings(&j.validate()),
            vec!["spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""]
        );
        let ok: Job = prep(job(
            json!({"completionMode": "Indexed", "completions": 3, "parallelism": 3, "backoffLimitPerIndex": 1, "successPolicy": {"rules": [{"succeededIndexes": "0-1", "succeededCount": 1}]}}),
        ));
        assert_eq!(to_value(&ok)["spec"]["backoffLimit"], i32::MAX);
        assert!(ok.validate().is_empty(), "{:?}", ok.validate());
        let pfp: Job = prep(job(
            json!({"podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}}),
        ));
        let v = to_value(&pfp);
        assert_eq!(v["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["status"], "True");
        assert_eq!(v["spec"]["podReplacementPolicy"], "Failed");
        assert!(pfp.validate().is_empty(), "{:?}", pfp.validate());
    }

    #[test]
    fn job_updates() {
        let old: Job = prep(job(json!({})));
        let mut v = to_value(&old);
        v["spec"]["parallelism"] = json!(5);
        v["spec"]["activeDeadlineSeconds"] = json!(60);
        let scaled: Job = prep(v);
        assert!(scaled.validate_update(&old).is_empty());
        let mut v = to_value(&old);
        v["spec"]["template"]["spec"]["containers"][0]["image"] = json!("other");
        v["spec"]["completions"] = json!(4);
        let changed: Job = prep(v);
        let errs = changed.validate_update(&old);
        assert!(has(&errs, ErrorType::Invalid, "spec.template"), "{errs:?}");
        assert!(has(&errs, ErrorType::Invalid, "spec.completions"), "{errs:?}");
        // A suspended job that never ran may move its pods.
        let sus: Job = prep(job(json!({"suspend": true})));
        let mut v = to_value(&sus);
        v["spec"]["template"]["spec"]["nodeSelector"] = json!({"zone": "a"});
        let moved: Job = prep(v);
        assert!(moved.validate_update(&sus).is_empty(), "{:?}", moved.validate_update(&sus));
        // Indexed jobs may change completions together with parallelism.
        let idx: Job = prep(job(json!({"completionMode": "Indexed", "completions": 3, "parallelism": 3})));
        let mut v = to_value(&idx);
        v["spec"]["completions"] = json!(5);
        let bad: Job = prep(v.clone());
        assert_eq!(
            strings(&bad.validate_update(&idx)),
            vec!["spec.completions: Invalid value: 5: can only be modified in tandem with spec.parallelism"]
        );
        v["spec"]["parallelism"] = json!(5);
        let good: Job = prep(v);
        assert!(good.validate_update(&idx).is_empty());
    }

    #[test]
    fn cron_schedules() {
        for ok in [
            "*/5 * * * *",
            "0 0 * * 0",
            "0 12 1-15/2 JAN-mar mon,FRI",
            "@hourly",
            "@every 1h30m",
            "5 4 * * ?",
            "0 0 31 12 6",
        ] {
            assert_eq!(parse_cron_schedule(ok), Ok(()), "{ok}");
        }
        let bad = [
            ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
            ("60 * * * *", "end of range (60) above maximum (59): 60"),
            ("0 0 0 * *", "beginning of range (0) below minimum (1): 0"),
            ("* * * * 7", "end of range (7) above maximum (6): 7"),
            ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
            ("*/0 * * * *", "step of range should be a positive number: */0"),
            ("x * * * *", "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax"),
            ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
            ("@often", "unrecognized descriptor: @often"),
            ("@every soon", "failed to parse duration @every soon: time: invalid duration \"soon\""),
        ];
        for (spec, msg) in bad {
            assert_eq!(parse_cron_schedule(spec), Err(msg.to_string()), "{spec}");
        }
    }

    fn cron(spec: Value) -> Value {
        let mut base = json!({"metadata": {"name": "c"}, "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}}}});
        for (k, v) in spec.as_object().unwrap() {
            base["spec"][k] = v.clone();
        }
        base
    }

    #[test]
    fn cron_jobs() {
        let c: CronJob = prep(cron(json!({})));
        let v = to_value(&c);
        assert_eq!(v["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(v["spec"]["suspend"], false);
        assert_eq!(v["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(v["spec"]["failedJobsHistoryLimit"], 1);
        assert_eq!(v["spec"]["jobTemplate"]["spec"]["template"]["spec"]["schedulerName"], "default-scheduler");
        assert!(v["spec"]["jobTemplate"]["spec"].get("backoffLimit").is_none());
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        let cases: Vec<(&str, Value, ErrorType, &str)> = vec![
            ("schedule", json!({"schedule": ""}), ErrorType::Required, "spec.schedule"),
            ("bad schedule", json!({"schedule": "every day"}), ErrorType::Invalid, "spec.schedule"),
            ("tz", json!({"schedule": "TZ=UTC 0 * * * *"}), ErrorType::Invalid, "spec.schedule"),
            ("time zone", json!({"timeZone": "Local"}), ErrorType::Invalid, "spec.timeZone"),
            ("policy", json!({"concurrencyPolicy": "Sometimes"}), ErrorType::NotSupported, "spec.concurrencyPolicy"),
            ("history", json!({"failedJobsHistoryLimit": -1}), ErrorType::Invalid, "spec.failedJobsHistoryLimit"),
            ("deadline", json!({"startingDeadlineSeconds": -1}), ErrorType::Invalid, "spec.startingDeadlineSeconds"),
            (
                "selector",
                json!({"jobTemplate": {"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}}}),
                ErrorType::Invalid,
                "spec.jobTemplate.spec.selector",
            ),
            (
                "restart",
                json!({"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}}}),
                ErrorType::Required,
                "spec.jobTemplate.spec.template.spec.restartPolicy",
            ),
            (
                "containers",
                json!({"jobTemplate": {}}),
                ErrorType::Required,
                "spec.jobTemplate.spec.template.spec.containers",
            ),
        ];
        for (name, spec, ty, field) in cases {
            let c: CronJob = prep(cron(spec));
            let errs = c.validate();
            assert!(has(&errs, ty, field), "{name}: wanted {ty:?} at {field}, got {errs:?}");
        }
        let c: CronJob = prep(cron(json!({"schedule": "61 * * * *"})));
        assert_eq!(
            strings(&c.validate()),
            vec!["spec.schedule: Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61"]
        );
    }
}
