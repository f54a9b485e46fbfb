//! Fixture tests for the deployment controller's pure parts.

use super::*;
use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStrategy, ReplicaSetStatus, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{Container, PodSpec};

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta { labels: Some(labels(&[("app", "web")])), ..Default::default() }),
        spec: Some(PodSpec {
            containers: vec![Container { name: "main".into(), image: Some(image.into()), ..Default::default() }],
            ..Default::default()
        }),
    }
}

fn deploy(replicas: i32, surge: Option<IntOrString>, unavail: Option<IntOrString>) -> Deployment {
    Deployment {
        metadata: ObjectMeta { name: Some("web".into()), generation: Some(1), ..Default::default() },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector { match_labels: Some(labels(&[("app", "web")])), ..Default::default() },
            template: template("nginx:1"),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment { max_surge: surge, max_unavailable: unavail }),
            }),
            ..Default::default()
        }),
        status: None,
    }
}

fn rs(name: &str, created: i64, replicas: i32, available: i32) -> ReplicaSet {
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            creation_timestamp: Some(Time(Timestamp::from_second(created).unwrap())),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec { replicas: Some(replicas), ..Default::default() }),
        status: Some(ReplicaSetStatus {
            replicas,
            ready_replicas: Some(available),
            available_replicas: Some(available),
            observed_generation: Some(0),
            ..Default::default()
        }),
    }
}

fn pct(s: &str) -> Option<IntOrString> {
    Some(IntOrString::String(s.into()))
}

#[test]
fn template_hash_is_stable_and_ignores_its_own_label() {
    let t = template("nginx:1");
    let h = template_hash(&t, None);
    assert_eq!(h, template_hash(&t.clone(), None));
    assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)), "{h}");
    assert!(!h.is_empty() && h.len() <= 10);
    let mut labelled = t.clone();
    labelled.metadata.as_mut().unwrap().labels.as_mut().unwrap().insert(HASH_LABEL.into(), h.clone());
    assert_eq!(template_hash(&labelled, None), h);
    assert!(templates_equal(&labelled, &t));
    assert_ne!(template_hash(&template("nginx:2"), None), h);
    assert!(!templates_equal(&template("nginx:2"), &t));
    assert_ne!(template_hash(&t, Some(1)), h);
    // Empty structs and lists are the same as absent ones.
    let mut with_empty = t.clone();
    with_empty.spec.as_mut().unwrap().containers[0].resources = Some(Default::default());
    with_empty.spec.as_mut().unwrap().volumes = Some(Vec::new());
    assert!(templates_equal(&with_empty, &t));
    assert_eq!(template_hash(&with_empty, None), h);
    // A fixed value guards against accidental changes to the hash inputs.
    assert_eq!(h, "55cc6b6ff");
}

#[test]
fn surge_rounds_up_and_unavailable_rounds_down() {
    assert_eq!(scaled_value(&IntOrString::String("25%".into()), 10, true).unwrap(), 3);
    assert_eq!(scaled_value(&IntOrString::String("25%".into()), 10, false).unwrap(), 2);
    assert_eq!(scaled_value(&IntOrString::Int(4), 10, false).unwrap(), 4);
    assert!(scaled_value(&IntOrString::String("x".into()), 10, false).is_err());
    assert_eq!(fenceposts(&deploy(10, None, None)), (3, 2));
    assert_eq!(fenceposts(&deploy(3, None, None)), (1, 0));
    // Both zero: one pod may be unavailable so the rollout can move.
    assert_eq!(fenceposts(&deploy(3, pct("0%"), Some(IntOrString::Int(0)))), (0, 1));
    assert_eq!(max_unavailable(&deploy(1, Some(IntOrString::Int(0)), Some(IntOrString::Int(5)))), 1);
    let mut recreate = deploy(3, None, None);
    recreate.spec.as_mut().unwrap().strategy =
        Some(DeploymentStrategy { type_: Some("Recreate".into()), rolling_update: None });
    assert_eq!((max_surge(&recreate), max_unavailable(&recreate)), (0, 0));
}

#[test]
fn new_replica_set_grows_within_the_surge() {
    let d = deploy(3, None, None); // surge 1, unavailable 0
    let old = rs("old", 1, 3, 3);
    assert_eq!(new_rs_replicas(&d, std::slice::from_ref(&old), None), 1);
    let new = rs("new", 2, 1, 0);
    assert_eq!(new_rs_replicas(&d, &[old.clone(), new.clone()], Some(&new)), 1);
    // Old went down to 2: one more new.
    let old2 = rs("old", 1, 2, 2);
    assert_eq!(new_rs_replicas(&d, &[old2, new.clone()], Some(&new)), 2);
    // Never above the desired count.
    let big = rs("new", 2, 3, 3);
    assert_eq!(new_rs_replicas(&d, std::slice::from_ref(&big), Some(&big)), 3);
}

#[test]
fn old_replica_sets_shrink_while_keeping_minimum_available() {
    let d = deploy(3, None, None); // surge 1, unavailable 0 → min available 3
    let old = vec![rs("old", 1, 3, 3)];
    // New has 1 replica not yet available: nothing may go.
    assert!(old_scale_down_plan(&d, &old, Some(&rs("new", 2, 1, 0))).is_empty());
    // New pod available: 4 available, one old may go.
    assert_eq!(old_scale_down_plan(&d, &old, Some(&rs("new", 2, 1, 1))), vec![(0, 2)]);
    // Unhealthy old pods go first even without spare availability.
    let sick = vec![rs("older", 0, 1, 0), rs("old", 1, 3, 3)];
    assert_eq!(old_scale_down_plan(&d, &sick, Some(&rs("new", 2, 0, 0))), vec![(0, 0)]);
    assert!(old_scale_down_plan(&d, &[rs("old", 1, 0, 0)], None).is_empty());
}

#[test]
fn proportional_scaling_spreads_by_size() {
    // 10 replicas, surge 3 → annotated max 13; scale to 20 (max 20+5=25) with 8 new + 5 old.
    let mut d = deploy(20, None, None);
    d.status = Some(DeploymentStatus { replicas: Some(13), ..Default::default() });
    let mut a = rs("new", 2, 8, 0);
    let mut b = rs("old", 1, 5, 5);
    for r in [&mut a, &mut b] {
        r.metadata.annotations = Some(labels(&[(MAX_REPLICAS, "13")]));
    }
    let sizes = proportional_sizes(&d, &[a.clone(), b.clone()]);
    assert_eq!(sizes.iter().sum::<i32>(), 25);
    assert_eq!(sizes, vec![15, 10]);
    // Scale to zero: everything goes.
    let mut zero = deploy(0, None, None);
    zero.status = d.status.clone();
    assert_eq!(proportional_sizes(&zero, &[a, b]), vec![0, 0]);
}

#[test]
fn status_and_conditions_follow_the_replica_sets() {
    let now = Timestamp::from_second(10_000).unwrap();
    let d = deploy(3, None, None);
    let new = rs("web-new", 2, 3, 3);
    let old = rs("web-old", 1, 0, 0);
    let all = vec![old, new.clone()];
    let (s, wait) = rollout_status(&d, &all, Some(&new), Vec::new(), now);
    assert_eq!(
        (s.replicas, s.updated_replicas, s.ready_replicas, s.available_replicas, s.unavailable_replicas),
        (Some(3), Some(3), Some(3), Some(3), Some(0))
    );
    assert_eq!(s.observed_generation, Some(1));
    let conds = s.conditions.clone().unwrap();
    let avail = conds.iter().find(|c| c.type_ == "Available").unwrap();
    assert_eq!((avail.status.as_str(), avail.reason.as_deref()), ("True", Some("MinimumReplicasAvailable")));
    let prog = conds.iter().find(|c| c.type_ == "Progressing").unwrap();
    assert_eq!(prog.reason.as_deref(), Some("NewReplicaSetAvailable"));
    assert_eq!(prog.message.as_deref(), Some("ReplicaSet \"web-new\" has successfully progressed."));
    assert!(wait.is_none());
    assert!(conds.iter().all(|c| c.type_ != "ReplicaFailure"));

    // A replica set failing to create pods shows on the deployment.
    let mut failing = new.clone();
    failing.status.as_mut().unwrap().conditions = Some(vec![k8s_openapi::api::apps::v1::ReplicaSetCondition {
        type_: "ReplicaFailure".into(),
        status: "True".into(),
        reason: Some("FailedCreate".into()),
        message: Some("Error creating: quota".into()),
        last_transition_time: None,
    }]);
    let s = compute_status(&d, std::slice::from_ref(&failing), Some(&failing), conds, now);
    let f = s.conditions.as_ref().unwrap().iter().find(|c| c.type_ == "ReplicaFailure").unwrap();
    assert_eq!((f.reason.as_deref(), f.message.as_deref()), (Some("FailedCreate"), Some("Error creating: quota")));

    // Under way with no progress past the deadline: ProgressDeadlineExceeded.
    let mut stuck = deploy(3, None, None);
    stuck.spec.as_mut().unwrap().progress_deadline_seconds = Some(60);
    let half = rs("web-new", 2, 3, 1);
    let (s1, _) = rollout_status(&stuck, std::slice::from_ref(&half), Some(&half), Vec::new(), now);
    stuck.status = Some(s1.clone());
    let prog = s1.conditions.as_ref().unwrap().iter().find(|c| c.type_ == "Progressing").unwrap();
    assert_eq!(prog.reason.as_deref(), Some("ReplicaSetUpdated"));
    let later = Timestamp::from_second(10_000 + 61).unwrap();
    let (s2, _) =
        rollout_status(&stuck, std::slice::from_ref(&half), Some(&half), s1.conditions.clone().unwrap(), later);
    let prog = s2.conditions.as_ref().unwrap().iter().find(|c| c.type_ == "Progressing").unwrap();
    assert_eq!((prog.status.as_str(), prog.reason.as_deref()), ("False", Some("ProgressDeadlineExceeded")));
    let avail = s2.conditions.as_ref().unwrap().iter().find(|c| c.type_ == "Available").unwrap();
    assert_eq!(avail.reason.as_deref(), Some("MinimumReplicasUnavailable"));
    // Before the deadline it asks to come back.
    let soon = Timestamp::from_second(10_000 + 20).unwrap();
    let (_, wait) = rollout_status(&stuck, std::slice::from_ref(&half), Some(&half), s1.conditions.unwrap(), soon);
    assert_eq!(wait, Some(40));
}

#[test]
fn revisions_and_history_cleanup() {
    let mut a = rs("a", 1, 0, 0);
    a.metadata.annotations = Some(labels(&[(REVISION, "1")]));
    let mut b = rs("b", 2, 0, 0);
    b.metadata.annotations = Some(labels(&[(REVISION, "3")]));
    let mut c = rs("c", 3, 2, 2);
    c.metadata.annotations = Some(labels(&[(REVISION, "2")]));
    assert_eq!(revision(&b.metadata), 3);
    assert_eq!(revision(&rs("x", 0, 0, 0).metadata), 0);
    let mut d = deploy(3, None, None);
    d.spec.as_mut().unwrap().revision_history_limit = Some(1);
    let old = vec![b.clone(), a.clone(), c.clone()];
    let names: Vec<_> = history_to_delete(&d, &old).iter().map(|r| r.name_any()).collect();
    // Three old, limit one: the two at zero go, lowest revision first; `c` still has pods.
    assert_eq!(names, ["a", "b"]);
    d.spec.as_mut().unwrap().revision_history_limit = Some(10);
    assert!(history_to_delete(&d, &old).is_empty());
}
