//! `coordination.k8s.io/v1` Lease: upstream's `ValidateLeaseSpec` (no defaults).

use super::ApiKind;
use super::pod::{qualified_name, st, to_value};
use crate::validation::{FieldError, FieldErrors, FieldPath};
use k8s_openapi::api::coordination::v1::Lease;

/// Strategies without a `/` that upstream knows.
const LEASE_STRATEGIES: &[&str] = &["OldestEmulationVersion"];

/// Lease: `leaseDurationSeconds` above 0 and `leaseTransitions` at least 0 when set; a known
/// or prefixed `strategy` (reported, as upstream does, at `spec.strategy.strategy`); and
/// `preferredHolder` only together with a strategy. The same checks run on update.
impl ApiKind for Lease {
    fn validate(&self) -> FieldErrors {
        let mut errs = Vec::new();
        let Some(spec) = &self.spec else { return errs };
        let sp = FieldPath::root("spec");
        if let Some(d) = spec.lease_duration_seconds.filter(|d| *d <= 0) {
            errs.push(FieldError::invalid(&sp.child("leaseDurationSeconds"), d, "must be greater than 0"));
        }
        if let Some(t) = spec.lease_transitions.filter(|t| *t < 0) {
            errs.push(FieldError::invalid(&sp.child("leaseTransitions"), t, "must be greater than or equal to 0"));
        }
        if let Some(strategy) = &spec.strategy {
            let p = sp.child("strategy").child("strategy");
            if !strategy.contains('/') {
                if !LEASE_STRATEGIES.contains(&strategy.as_str()) {
                    errs.push(FieldError::not_supported(&p, strategy.as_str(), LEASE_STRATEGIES));
                }
            } else {
                for msg in qualified_name(strategy) {
                    errs.push(FieldError::invalid(&p, to_value(strategy), &msg));
                }
            }
        }
        if !st(&spec.preferred_holder).is_empty() && st(&spec.strategy).is_empty() {
            errs.push(FieldError::forbidden(
                &sp.child("preferredHolder"),
                "may only be specified if `strategy` is defined",
            ));
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::ErrorType;
    use serde_json::json;

    fn lease(spec: serde_json::Value) -> Lease {
        let mut l: Lease = serde_json::from_value(json!({"metadata": {"name": "l"}, "spec": spec})).unwrap();
        l.set_defaults();
        l
    }

    #[test]
    fn lease_rules() {
        assert!(
            lease(json!({"holderIdentity": "a", "leaseDurationSeconds": 15, "leaseTransitions": 0}))
                .validate()
                .is_empty()
        );
        assert!(lease(json!({"strategy": "OldestEmulationVersion", "preferredHolder": "a"})).validate().is_empty());
        assert!(lease(json!({"strategy": "example.com/custom"})).validate().is_empty());
        let cases = [
            (
                json!({"leaseDurationSeconds": 0}),
                ErrorType::Invalid,
                "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
            ),
            (
                json!({"leaseTransitions": -1}),
                ErrorType::Invalid,
                "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                json!({"strategy": "Newest"}),
                ErrorType::NotSupported,
                "spec.strategy.strategy: Unsupported value: \"Newest\": supported values: \"OldestEmulationVersion\"",
            ),
            (
                json!({"preferredHolder": "a"}),
                ErrorType::Forbidden,
                "spec.preferredHolder: Forbidden: may only be specified if `strategy` is defined",
            ),
        ];
        for (spec, ty, text) in cases {
            let errs = lease(spec.clone()).validate();
            assert_eq!(errs.len(), 1, "{spec}: {errs:?}");
            assert_eq!(errs[0].error_type, ty);
            assert_eq!(errs[0].to_string(), text);
        }
        let errs = lease(json!({"strategy": "a/b/c"})).validate();
        assert_eq!(errs[0].field, "spec.strategy.strategy");
        // Update runs the same checks (validate); nothing is immutable.
        assert!(
            lease(json!({"holderIdentity": "b"})).validate_update(&lease(json!({"holderIdentity": "a"}))).is_empty()
        );
    }
}
