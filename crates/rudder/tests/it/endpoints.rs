//! Endpoints and EndpointSlices: the controllers follow a Deployment behind a Service on
//! simulated nodes (addresses, readiness, scaling, deletion, zone hints), the Endpoints of Services without
//! a selector are mirrored into EndpointSlices, the API server keeps the `kubernetes` Service
//! and its endpoints, and Service updates allocate and release cluster IPs and node ports.
//!
//! No traffic is sent anywhere: simulated pods have addresses but no network.

use crate::common::{TestServer, raw_json};
use crate::kubectl::must;
use crate::node::wait_for;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

fn deployment(replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                    "ports": [{"name": "http", "containerPort": 8080}]}]},
            },
        },
    }))
    .expect("deployment")
}

fn service() -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "labels": {"team": "blue"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }))
    .expect("service")
}

/// (ready addresses, not-ready addresses) of the Endpoints, as `ip` strings.
fn addresses(ep: &Endpoints) -> (Vec<String>, Vec<String>) {
    let subsets = ep.subsets.clone().unwrap_or_default();
    let ips = |f: fn(&k8s_openapi::api::core::v1::EndpointSubset) -> Option<&Vec<_>>| {
        subsets
            .iter()
            .flat_map(|s| f(s).cloned().unwrap_or_default())
            .map(|a: k8s_openapi::api::core::v1::EndpointAddress| a.ip)
            .collect::<Vec<_>>()
    };
    (ips(|s| s.addresses.as_ref()), ips(|s| s.not_ready_addresses.as_ref()))
}

/// Every endpoint of the Service's slices with its `ready` condition.
async fn slice_endpoints(slices: &Api<EndpointSlice>) -> Vec<(String, bool)> {
    let lp = ListParams::default().labels("kubernetes.io/service-name=web");
    let list = slices.list(&lp).await.expect("list slices");
    list.items
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .map(|e| (e.addresses[0].clone(), e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false)))
        .collect()
}

#[tokio::test]
async fn endpoints_and_slices_follow_a_deployment() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let server = TestServer::start_in(dir, &["--simulate-nodes", "2"]).await;
    let client = server.client().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    deployments.create(&pp, &deployment(3)).await.expect("create deployment");
    services.create(&pp, &service()).await.expect("create service");

    // Three ready addresses on port 8080 (the pods' `http` port), each naming its pod and node.
    let ep = wait_for("3 ready addresses", LIMIT, || async {
        let ep = endpoints.get_opt("web").await.expect("get endpoints")?;
        (addresses(&ep).0.len() == 3).then_some(ep)
    })
    .await;
    let subset = &ep.subsets.as_ref().expect("subsets")[0];
    assert_eq!(subset.ports.as_ref().expect("ports")[0].port, 8080);
    assert_eq!(subset.ports.as_ref().expect("ports")[0].name.as_deref(), Some("http"));
    for a in subset.addresses.iter().flatten() {
        assert!(a.node_name.as_deref().is_some_and(|n| !n.is_empty()), "node name");
        let target = a.target_ref.as_ref().expect("targetRef");
        assert_eq!(target.kind.as_deref(), Some("Pod"));
        let pod = pods.get(target.name.as_deref().expect("pod name")).await.expect("the pod exists");
        assert_eq!(pod.status.and_then(|s| s.pod_ip).as_deref(), Some(a.ip.as_str()));
    }
    let labels = ep.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("team").map(String::as_str), Some("blue"));
    assert_eq!(labels.get("endpoints.kubernetes.io/managed-by").map(String::as_str), Some("endpoint-controller"));
    let annotations = ep.metadata.annotations.clone().unwrap_or_default();
    assert!(annotations.contains_key("endpoints.kubernetes.io/last-change-trigger-time"), "{annotations:?}");

    // The slices: three ready endpoints, owned by the Service, with zone and pod references.
    wait_for("3 ready slice endpoints", LIMIT, || async {
        let eps = slice_endpoints(&slices).await;
        (eps.len() == 3 && eps.iter().all(|(_, ready)| *ready)).then_some(())
    })
    .await;
    let lp = ListParams::default().labels("kubernetes.io/service-name=web");
    let list = slices.list(&lp).await.expect("list slices").items;
    assert_eq!(list.len(), 1);
    let slice = &list[0];
    assert_eq!(slice.address_type, "IPv4");
    let labels = slice.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels["endpointslice.kubernetes.io/managed-by"], "endpointslice-controller.k8s.io");
    let owner = &slice.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.controller), ("Service", "web", Some(true)));
    let ports = slice.ports.as_ref().expect("slice ports");
    assert_eq!(
        (ports[0].name.as_deref(), ports[0].port, ports[0].protocol.as_deref()),
        (Some("http"), Some(8080), Some("TCP"))
    );
    for e in &slice.endpoints {
        assert!(e.zone.as_deref().is_some_and(|z| z.starts_with("zone-")), "zone of {e:?}");
        assert!(e.node_name.is_some() && e.target_ref.is_some());
        let c = e.conditions.as_ref().expect("conditions");
        assert_eq!((c.ready, c.serving, c.terminating), (Some(true), Some(true), Some(false)));
    }

    // kubectl prints both.
    let out = must(&server, &["get", "endpoints", "web"]).await;
    assert!(out.contains(":8080"), "{out}");
    let out = must(&server, &["get", "endpointslices", "-l", "kubernetes.io/service-name=web"]).await;
    assert!(
        out.contains("IPv4")
            && out.contains("8080")
            && out.contains(&ep.subsets.as_ref().expect("subsets")[0].addresses.as_ref().expect("addresses")[0].ip),
        "{out}"
    );

    // Scale to one: both follow (terminating pods leave the Endpoints at once).
    deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 1}})))
        .await
        .expect("scale");
    let ep = wait_for("1 address", LIMIT, || async {
        let ep = endpoints.get("web").await.expect("get endpoints");
        let (ready, not_ready) = addresses(&ep);
        (ready.len() == 1 && not_ready.is_empty()).then_some(ep)
    })
    .await;
    wait_for("1 slice endpoint", LIMIT, || async { (slice_endpoints(&slices).await.len() == 1).then_some(()) }).await;

    // The remaining pod turns not ready: a not-ready address, and ready=false in the slice.
    let name = ep.subsets.as_ref().expect("subsets")[0].addresses.as_ref().expect("addresses")[0]
        .target_ref
        .as_ref()
        .and_then(|t| t.name.clone())
        .expect("pod name");
    let not_ready =
        json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "ReadinessProbeFailed"}]}});
    pods.patch_status(&name, &PatchParams::default(), &Patch::Strategic(not_ready)).await.expect("mark not ready");
    wait_for("a not-ready address", LIMIT, || async {
        let (ready, not_ready) = addresses(&endpoints.get("web").await.expect("get endpoints"));
        (ready.is_empty() && not_ready.len() == 1).then_some(())
    })
    .await;
    wait_for("ready=false in the slice", LIMIT, || async {
        let eps = slice_endpoints(&slices).await;
        (eps.len() == 1 && !eps[0].1).then_some(())
    })
    .await;
    let out = must(&server, &["get", "endpoints", "web", "-o", "jsonpath={.subsets[0].notReadyAddresses[0].ip}"]).await;
    let pod_ip = pods.get(&name).await.expect("pod").status.and_then(|s| s.pod_ip).expect("pod IP");
    assert_eq!(out, pod_ip);

    // The Service goes: so do its Endpoints and slices.
    services.delete("web", &DeleteParams::default()).await.expect("delete service");
    wait_for("endpoints and slices gone", LIMIT, || async {
        let ep = endpoints.get_opt("web").await.expect("get endpoints");
        let lp = ListParams::default().labels("kubernetes.io/service-name=web");
        let left = slices.list(&lp).await.expect("list slices").items.len();
        (ep.is_none() && left == 0).then_some(())
    })
    .await;
}

/// (zone, hinted zones) of every ready endpoint of the Service's slices.
async fn zone_hints(slices: &Api<EndpointSlice>) -> Vec<(String, Vec<String>)> {
    let lp = ListParams::default().labels("kubernetes.io/service-name=web");
    let list = slices.list(&lp).await.expect("list slices");
    list.items
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
        .map(|e| {
            let hinted = e.hints.as_ref().and_then(|h| h.for_zones.clone()).unwrap_or_default();
            (e.zone.clone().unwrap_or_default(), hinted.into_iter().map(|z| z.name).collect())
        })
        .collect()
}

/// Topology aware routing on three simulated nodes, one per zone with the same CPU:
/// `trafficDistribution: PreferClose` hints every endpoint for its own zone; the
/// `topology-mode: Auto` annotation spreads them two per zone, whatever zones the pods are in,
/// and gives no hints with fewer endpoints than zones; without either, hints go away.
#[tokio::test]
async fn endpoint_slices_carry_zone_hints() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let server = TestServer::start_in(dir, &["--simulate-nodes", "3"]).await;
    let client = server.client().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    deployments.create(&pp, &deployment(6)).await.expect("create deployment");
    let mut svc = service();
    svc.spec.as_mut().expect("spec").traffic_distribution = Some("PreferClose".into());
    services.create(&pp, &svc).await.expect("create service");

    let got = wait_for("6 endpoints hinted for their zone", LIMIT, || async {
        let eps = zone_hints(&slices).await;
        (eps.len() == 6 && eps.iter().all(|(z, h)| z.starts_with("zone-") && h == &vec![z.clone()])).then_some(eps)
    })
    .await;
    assert_eq!(got.len(), 6);

    // Auto: the annotation wins; each zone's share (a third of the CPU) is two endpoints.
    let auto = json!({"metadata": {"annotations": {"service.kubernetes.io/topology-mode": "Auto"}}});
    services.patch("web", &PatchParams::default(), &Patch::Merge(auto)).await.expect("annotate");
    let per_zone = wait_for("two endpoints hinted per zone", LIMIT, || async {
        let eps = zone_hints(&slices).await;
        let mut count = std::collections::BTreeMap::<String, usize>::new();
        for (_, hinted) in &eps {
            if let [zone] = hinted.as_slice() {
                *count.entry(zone.clone()).or_default() += 1;
            }
        }
        (eps.len() == 6 && count.values().sum::<usize>() == 6 && count.len() == 3 && count.values().all(|n| *n == 2))
            .then_some(count)
    })
    .await;
    assert_eq!(per_zone.keys().map(String::as_str).collect::<Vec<_>>(), ["zone-a", "zone-b", "zone-c"]);

    // Two endpoints for three zones: upstream's safeguard, no hints at all.
    deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 2}})))
        .await
        .expect("scale");
    wait_for("no hints with fewer endpoints than zones", LIMIT, || async {
        let eps = zone_hints(&slices).await;
        (eps.len() == 2 && eps.iter().all(|(_, h)| h.is_empty())).then_some(())
    })
    .await;

    // Neither the annotation nor trafficDistribution: no hints either.
    deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 3}})))
        .await
        .expect("scale");
    let off = json!({"metadata": {"annotations": {"service.kubernetes.io/topology-mode": null}},
                     "spec": {"trafficDistribution": null}});
    services.patch("web", &PatchParams::default(), &Patch::Merge(off)).await.expect("turn off");
    wait_for("3 endpoints without hints", LIMIT, || async {
        let eps = zone_hints(&slices).await;
        (eps.len() == 3 && eps.iter().all(|(_, h)| h.is_empty())).then_some(())
    })
    .await;
}

#[tokio::test]
async fn selectorless_services_are_left_alone() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let server = TestServer::start_in(dir, &["--simulate-nodes", "1"]).await;
    let client = server.client().await;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "ext"}, "spec": {"ports": [{"port": 80}]}}))
        .expect("service");
    services.create(&pp, &svc).await.expect("create");
    let manual: Endpoints = serde_json::from_value(json!({"metadata": {"name": "ext"},
        "subsets": [{"addresses": [{"ip": "192.0.2.7"}], "ports": [{"port": 80}]}]}))
    .expect("endpoints");
    endpoints.create(&pp, &manual).await.expect("create endpoints");
    // A Service with a selector but no pods gets empty Endpoints and a placeholder slice.
    let empty: Service = serde_json::from_value(json!({"metadata": {"name": "none"},
        "spec": {"selector": {"app": "nothing"}, "ports": [{"port": 80}]}}))
    .expect("service");
    services.create(&pp, &empty).await.expect("create");
    wait_for("empty endpoints and a placeholder slice", LIMIT, || async {
        let ep = endpoints.get_opt("none").await.expect("get")?;
        let lp = ListParams::default().labels("kubernetes.io/service-name=none");
        let list = slices.list(&lp).await.expect("list").items;
        (ep.subsets.is_none() && list.len() == 1 && list[0].endpoints.is_empty()).then_some(())
    })
    .await;
    // The manual Endpoints are untouched.
    let ep = endpoints.get("ext").await.expect("get");
    assert_eq!(addresses(&ep).0, ["192.0.2.7"]);
    assert!(ep.metadata.labels.is_none_or(|l| !l.contains_key("endpoints.kubernetes.io/managed-by")));
}

/// The slices the mirroring controller made for `name`.
async fn mirrored(slices: &Api<EndpointSlice>, name: &str) -> Vec<EndpointSlice> {
    let lp = ListParams::default().labels(&format!(
        "kubernetes.io/service-name={name},endpointslice.kubernetes.io/managed-by=endpointslicemirroring-controller.k8s.io"
    ));
    slices.list(&lp).await.expect("list slices").items
}

#[tokio::test]
async fn endpoints_of_selectorless_services_are_mirrored() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let server = TestServer::start_in(dir, &[]).await;
    let client = server.client().await;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    let svc: Service =
        serde_json::from_value(json!({"metadata": {"name": "ext"}, "spec": {"ports": [{"name": "http", "port": 80}]}}))
            .expect("service");
    services.create(&pp, &svc).await.expect("create");
    let manual = |ready: &[&str], not_ready: &[&str], labels: Value| -> Endpoints {
        let list = |ips: &[&str]| ips.iter().map(|ip| json!({"ip": ip, "nodeName": "n1"})).collect::<Vec<_>>();
        serde_json::from_value(json!({
            "metadata": {"name": "ext", "labels": labels, "annotations": {"example.com/note": "kept"}},
            "subsets": [{"addresses": list(ready), "notReadyAddresses": list(not_ready),
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}],
        }))
        .expect("endpoints")
    };
    let ep = endpoints
        .create(&pp, &manual(&["192.0.2.7", "192.0.2.8"], &["192.0.2.9"], json!({"team": "a"})))
        .await
        .expect("create endpoints");

    // One slice with the three addresses, their readiness, the Endpoints' labels and annotations,
    // owned by the Endpoints.
    let slice = wait_for("a mirrored slice", LIMIT, || async {
        let list = mirrored(&slices, "ext").await;
        (list.len() == 1 && list[0].endpoints.len() == 3).then(|| list[0].clone())
    })
    .await;
    let mut got: Vec<(String, bool)> = slice
        .endpoints
        .iter()
        .map(|e| (e.addresses[0].clone(), e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false)))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [("192.0.2.7".to_string(), true), ("192.0.2.8".to_string(), true), ("192.0.2.9".to_string(), false)]
    );
    assert_eq!(slice.endpoints[0].node_name.as_deref(), Some("n1"));
    let port = &slice.ports.as_ref().expect("ports")[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("http"), Some(8080)));
    assert_eq!(slice.metadata.labels.as_ref().expect("labels")["team"], "a");
    assert_eq!(slice.metadata.annotations.as_ref().expect("annotations")["example.com/note"], "kept");
    let owner = &slice.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Endpoints", "ext"));
    assert_eq!(Some(&owner.uid), ep.metadata.uid.as_ref());
    // The real kubectl lists it with its endpoints.
    let out = must(&server, &["get", "endpointslices", "-l", "kubernetes.io/service-name=ext"]).await;
    assert!(out.contains("192.0.2.7") && out.contains("8080"), "{out}");

    // An update is followed in the same slice.
    let mut changed = manual(&["192.0.2.10"], &[], json!({"team": "a"}));
    changed.metadata.resource_version = None;
    endpoints.replace("ext", &pp, &changed).await.expect("replace endpoints");
    wait_for("the slice follows", LIMIT, || async {
        let list = mirrored(&slices, "ext").await;
        (list.len() == 1 && list[0].endpoints.len() == 1 && list[0].endpoints[0].addresses == ["192.0.2.10"])
            .then_some(())
    })
    .await;
    assert_eq!(mirrored(&slices, "ext").await[0].metadata.name, slice.metadata.name);

    // `skip-mirror` removes the slices; without it they come back.
    let skip = json!({"metadata": {"labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}}});
    endpoints.patch("ext", &PatchParams::default(), &Patch::Merge(&skip)).await.expect("label");
    wait_for("no slices while skipped", LIMIT, || async { mirrored(&slices, "ext").await.is_empty().then_some(()) })
        .await;
    let unskip = json!({"metadata": {"labels": {"endpointslice.kubernetes.io/skip-mirror": null}}});
    endpoints.patch("ext", &PatchParams::default(), &Patch::Merge(&unskip)).await.expect("unlabel");
    wait_for("slices again", LIMIT, || async { (mirrored(&slices, "ext").await.len() == 1).then_some(()) }).await;

    // More than 1000 addresses in a subset: 1000 are mirrored, and a warning says so.
    let many: Vec<String> = (0..1001).map(|i| format!("198.51.{}.{}", 100 + i / 250, i % 250 + 1)).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let mut big = manual(&many, &[], json!({"team": "a"}));
    big.metadata.resource_version = None;
    endpoints.replace("ext", &pp, &big).await.expect("replace endpoints");
    wait_for("1000 mirrored endpoints", LIMIT, || async {
        let list = mirrored(&slices, "ext").await;
        (list.len() == 1 && list[0].endpoints.len() == 1000).then_some(())
    })
    .await;
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    wait_for("the TooManyAddressesToMirror warning", LIMIT, || async {
        let list = events.list(&ListParams::default()).await.expect("events").items;
        list.iter()
            .any(|e| {
                e.reason.as_deref() == Some("TooManyAddressesToMirror")
                    && e.involved_object.name.as_deref() == Some("ext")
            })
            .then_some(())
    })
    .await;

    // A selector hands the Service to the endpoints controllers: the mirrored slices go.
    let selector = json!({"spec": {"selector": {"app": "ext"}}});
    services.patch("ext", &PatchParams::default(), &Patch::Merge(&selector)).await.expect("selector");
    wait_for("no mirrored slices with a selector", LIMIT, || async {
        mirrored(&slices, "ext").await.is_empty().then_some(())
    })
    .await;

    // Endpoints that go take their slices along; the API server's own are never mirrored.
    services
        .create(
            &pp,
            &serde_json::from_value(json!({"metadata": {"name": "gone"}, "spec": {"ports": [{"port": 80}]}}))
                .expect("svc"),
        )
        .await
        .expect("create");
    let mut gone = manual(&["192.0.2.20"], &[], json!({}));
    gone.metadata.name = Some("gone".into());
    endpoints.create(&pp, &gone).await.expect("create endpoints");
    wait_for("a slice for gone", LIMIT, || async { (mirrored(&slices, "gone").await.len() == 1).then_some(()) }).await;
    endpoints.delete("gone", &DeleteParams::default()).await.expect("delete endpoints");
    wait_for("its slice goes", LIMIT, || async { mirrored(&slices, "gone").await.is_empty().then_some(()) }).await;
    assert!(mirrored(&slices, "kubernetes").await.is_empty());
}

#[tokio::test]
async fn the_kubernetes_service_points_at_the_api_server() {
    let server = TestServer::start().await;
    // The server listens everywhere and advertises the machine's node address, which pods reach.
    let advertised = rudder_kubelet::node::default_ip().map(|ip| ip.to_string()).unwrap_or("127.0.0.1".into());
    let advertised = advertised.as_str();
    let client = server.client().await;
    let port: u16 = server.addr.rsplit(':').next().and_then(|p| p.parse().ok()).expect("server port");
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc =
        wait_for("the kubernetes service", LIMIT, || async { services.get_opt("kubernetes").await.expect("get") })
            .await;
    let spec = svc.spec.expect("spec");
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.43.0.1"));
    assert!(spec.selector.is_none());
    let p = &spec.ports.expect("ports")[0];
    assert_eq!((p.name.as_deref(), p.port), (Some("https"), 443));
    assert_eq!(p.target_port, Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i32::from(port))));
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let ep =
        wait_for("kubernetes endpoints", LIMIT, || async { endpoints.get_opt("kubernetes").await.expect("get") }).await;
    let subset = &ep.subsets.expect("subsets")[0];
    assert_eq!(subset.addresses.as_ref().expect("addresses")[0].ip, advertised);
    assert_eq!(subset.ports.as_ref().expect("ports")[0].port, i32::from(port));
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let slice =
        wait_for("kubernetes slice", LIMIT, || async { slices.get_opt("kubernetes").await.expect("get") }).await;
    assert_eq!(slice.metadata.labels.expect("labels")["kubernetes.io/service-name"], "kubernetes");
    assert_eq!(slice.endpoints[0].addresses, [advertised]);
    assert_eq!(slice.ports.expect("ports")[0].port, Some(i32::from(port)));
    let out = must(&server, &["get", "endpoints", "kubernetes"]).await;
    assert!(out.contains(&format!("{advertised}:{port}")), "{out}");

    // Nobody else gets its address.
    let (status, body) = post(
        &client,
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "thief"},
            "spec": {"clusterIP": "10.43.0.1", "ports": [{"port": 80}]}}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["message"].as_str().unwrap_or("").contains("provided IP is already allocated"), "{body}");

    // Deleted, it comes back (the API server repairs it every 10 s).
    services.delete("kubernetes", &DeleteParams::default()).await.expect("delete");
    let svc = wait_for("the kubernetes service again", Duration::from_secs(25), || async {
        services.get_opt("kubernetes").await.expect("get")
    })
    .await;
    assert_eq!(svc.spec.and_then(|s| s.cluster_ip).as_deref(), Some("10.43.0.1"));
}

async fn patch(client: &kube::Client, name: &str, body: Value) -> (u16, Value) {
    let path = format!("/api/v1/namespaces/default/services/{name}");
    raw_json(client, "PATCH", &path, Some("application/merge-patch+json"), body).await
}

async fn post(client: &kube::Client, body: Value) -> (u16, Value) {
    raw_json(client, "POST", "/api/v1/namespaces/default/services", Some("application/json"), body).await
}

#[tokio::test]
async fn service_updates_allocate_and_release() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    let make = |v: Value| -> Service { serde_json::from_value(v).expect("service") };
    let a = services
        .create(&pp, &make(json!({"metadata": {"name": "a"}, "spec": {"ports": [{"port": 80}]}})))
        .await
        .expect("a");
    let ip_a = a.spec.as_ref().and_then(|s| s.cluster_ip.clone()).expect("cluster IP");

    // ClusterIP → NodePort: the requested node port is allocated, the cluster IP stays.
    let (status, body) =
        patch(&client, "a", json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["spec"]["ports"][0]["nodePort"], 30080);
    assert_eq!(body["spec"]["clusterIP"], ip_a.as_str());

    // Another service asking for it: 422 as upstream words it.
    services
        .create(&pp, &make(json!({"metadata": {"name": "b"}, "spec": {"ports": [{"port": 80}]}})))
        .await
        .expect("b");
    let (status, body) =
        patch(&client, "b", json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["message"],
        "Service \"b\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
    );
    // Without a request, one is picked.
    let (status, body) = patch(&client, "b", json!({"spec": {"type": "NodePort"}})).await;
    assert_eq!(status, 200, "{body}");
    let picked = body["spec"]["ports"][0]["nodePort"].as_u64().expect("node port");
    assert!((30000..=32767).contains(&picked) && picked != 30080);

    // NodePort → ClusterIP releases the port: b can have it now.
    let (status, body) = patch(&client, "a", json!({"spec": {"type": "ClusterIP"}})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["spec"]["ports"][0].get("nodePort").is_none(), "{body}");
    assert!(body["spec"].get("externalTrafficPolicy").is_none(), "{body}");
    let (status, body) = patch(&client, "b", json!({"spec": {"ports": [{"port": 80, "nodePort": 30080}]}})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["spec"]["ports"][0]["nodePort"], 30080);
    // …and b's old port is free again.
    let (status, body) =
        patch(&client, "a", json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": picked}]}})).await;
    assert_eq!(status, 200, "{body}");

    // The cluster IP cannot change.
    let (status, body) = patch(&client, "a", json!({"spec": {"clusterIP": "10.43.99.99"}})).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["message"].as_str().unwrap_or("").contains("spec.clusterIPs[0]"), "{body}");
    assert!(body["message"].as_str().unwrap_or("").contains("may not change once set"), "{body}");

    // → ExternalName: no cluster IP (released), no node ports; back: a new one is allocated.
    let (status, body) =
        patch(&client, "a", json!({"spec": {"type": "ExternalName", "externalName": "example.com"}})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["spec"].get("clusterIP").is_none() && body["spec"].get("clusterIPs").is_none(), "{body}");
    assert!(body["spec"]["ports"][0].get("nodePort").is_none(), "{body}");
    // The released address can be asked for by another service.
    let c = services
        .create(&pp, &make(json!({"metadata": {"name": "c"}, "spec": {"clusterIP": ip_a, "ports": [{"port": 80}]}})))
        .await
        .expect("c gets a's old address");
    assert_eq!(c.spec.and_then(|s| s.cluster_ip), Some(ip_a.clone()));
    let (status, body) = patch(&client, "a", json!({"spec": {"type": "ClusterIP", "externalName": null}})).await;
    assert_eq!(status, 200, "{body}");
    let new_ip = body["spec"]["clusterIP"].as_str().expect("a new cluster IP");
    assert!(new_ip.starts_with("10.43.") && new_ip != ip_a, "{body}");

    // A headless service stays headless through updates.
    services
        .create(&pp, &make(json!({"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}})))
        .await
        .expect("h");
    let (status, body) = patch(&client, "h", json!({"metadata": {"labels": {"x": "y"}}})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["spec"]["clusterIP"], "None");

    // A PUT without the allocated values keeps them.
    let mut b = services.get("b").await.expect("b");
    let spec = b.spec.as_mut().expect("spec");
    let ip_b = spec.cluster_ip.take();
    spec.cluster_ips = None;
    for p in spec.ports.iter_mut().flatten() {
        p.node_port = None;
    }
    b.metadata.resource_version = None;
    let b = services.replace("b", &pp, &b).await.expect("replace b");
    assert_eq!(b.spec.as_ref().and_then(|s| s.cluster_ip.clone()), ip_b);
    assert_eq!(b.spec.as_ref().and_then(|s| s.ports.as_ref()).expect("ports")[0].node_port, Some(30080));

    // Out of range on create: upstream's message.
    let (status, body) = post(
        &client,
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "far"},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["message"].as_str().unwrap_or("").contains("is not in the valid range"), "{body}");
}
