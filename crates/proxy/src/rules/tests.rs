//! Golden tests: the rendered rulesets, as `nft -f` text, for each kind of Service.

use super::*;
use serde_json::{Value, json};

fn svc(v: Value) -> Service {
    serde_json::from_value(v).expect("service")
}

fn slice(v: Value) -> EndpointSlice {
    serde_json::from_value(v).expect("slice")
}

fn view() -> NodeView {
    NodeView {
        node_name: "node-a".into(),
        cluster_cidr: Some("10.42.0.0/16".parse().unwrap()),
        service_cidr: Some("10.43.0.0/16".parse().unwrap()),
        masquerade_local_pods: None,
        zone: Some("zone-a".into()),
    }
}

/// A ClusterIP Service `ns/web` on 10.43.0.10 port 80 (`http`), with `spec` merged in.
fn web(spec: Value) -> Service {
    let mut s = json!({"clusterIP": "10.43.0.10", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]});
    for (k, v) in spec.as_object().unwrap() {
        s[k] = v.clone();
    }
    svc(json!({"metadata": {"name": "web", "namespace": "ns"}, "spec": s}))
}

/// An endpoint on `node` with the given conditions.
fn ep(ip: &str, node: &str, ready: bool, serving: bool, terminating: bool) -> Value {
    json!({"addresses": [ip], "nodeName": node, "conditions": {"ready": ready, "serving": serving, "terminating": terminating}})
}

/// A slice of `ns/web` with port `http` → 8080.
fn web_slice(endpoints: Vec<Value>) -> EndpointSlice {
    slice(json!({
        "metadata": {"name": "web-abc", "namespace": "ns", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints,
    }))
}

/// The lines a ruleset adds to the empty one (the fixed part left out), table `t`.
fn specific(services: &[Service], slices: &[EndpointSlice]) -> String {
    let node = view();
    let empty = desired([], [], &node).render("t");
    let base: std::collections::HashSet<&str> = empty.lines().collect();
    desired(services, slices, &node)
        .render("t")
        .lines()
        .filter(|l| !base.contains(l))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn two_ready() -> Vec<EndpointSlice> {
    vec![web_slice(vec![ep("10.42.1.5", "node-a", true, true, false), ep("10.42.2.7", "node-b", true, true, false)])]
}

#[test]
fn the_fixed_part_of_the_table() {
    let got = desired([], [], &view()).render("rudder_proxy_x");
    let want = "\
add table inet rudder_proxy_x
delete table inet rudder_proxy_x
add table inet rudder_proxy_x
add chain inet rudder_proxy_x cluster-ips-check
add chain inet rudder_proxy_x filter-forward { type filter hook forward priority -110; policy accept; }
add chain inet rudder_proxy_x filter-input { type filter hook input priority -110; policy accept; }
add chain inet rudder_proxy_x filter-output { type filter hook output priority -110; policy accept; }
add chain inet rudder_proxy_x filter-output-post-dnat { type filter hook output priority -90; policy accept; }
add chain inet rudder_proxy_x filter-prerouting { type filter hook prerouting priority -110; policy accept; }
add chain inet rudder_proxy_x firewall-check
add chain inet rudder_proxy_x mark-for-masquerade
add chain inet rudder_proxy_x masquerading
add chain inet rudder_proxy_x nat-output { type nat hook output priority -100; policy accept; }
add chain inet rudder_proxy_x nat-postrouting { type nat hook postrouting priority 100; policy accept; }
add chain inet rudder_proxy_x nat-prerouting { type nat hook prerouting priority -100; policy accept; }
add chain inet rudder_proxy_x nodeport-endpoints-check
add chain inet rudder_proxy_x reject-chain
add chain inet rudder_proxy_x service-endpoints-check
add chain inet rudder_proxy_x services
add set inet rudder_proxy_x cluster-ips { type ipv4_addr; }
add map inet rudder_proxy_x firewall-ips { type ipv4_addr . inet_proto . inet_service : verdict; }
add set inet rudder_proxy_x hairpin-endpoints { type ipv4_addr . ipv4_addr; }
add map inet rudder_proxy_x no-endpoint-nodeports { type inet_proto . inet_service : verdict; }
add map inet rudder_proxy_x no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict; }
add map inet rudder_proxy_x service-ips { type ipv4_addr . inet_proto . inet_service : verdict; }
add map inet rudder_proxy_x service-nodeports { type inet_proto . inet_service : verdict; }
add rule inet rudder_proxy_x cluster-ips-check ip daddr @cluster-ips reject
add rule inet rudder_proxy_x cluster-ips-check ip daddr 10.43.0.0/16 drop
add rule inet rudder_proxy_x filter-forward ct state new jump service-endpoints-check
add rule inet rudder_proxy_x filter-forward ct state new jump cluster-ips-check
add rule inet rudder_proxy_x filter-input ct state new jump nodeport-endpoints-check
add rule inet rudder_proxy_x filter-input ct state new jump service-endpoints-check
add rule inet rudder_proxy_x filter-output ct state new jump service-endpoints-check
add rule inet rudder_proxy_x filter-output ct state new jump firewall-check
add rule inet rudder_proxy_x filter-output-post-dnat ct state new jump cluster-ips-check
add rule inet rudder_proxy_x filter-prerouting ct state new jump firewall-check
add rule inet rudder_proxy_x firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips
add rule inet rudder_proxy_x mark-for-masquerade meta mark set meta mark | 0x4000
add rule inet rudder_proxy_x masquerading ct status dnat ip saddr . ip daddr @hairpin-endpoints jump mark-for-masquerade
add rule inet rudder_proxy_x masquerading meta mark & 0x4000 == 0 return
add rule inet rudder_proxy_x masquerading meta mark set meta mark ^ 0x4000
add rule inet rudder_proxy_x masquerading masquerade fully-random
add rule inet rudder_proxy_x nat-output jump services
add rule inet rudder_proxy_x nat-postrouting jump masquerading
add rule inet rudder_proxy_x nat-prerouting jump services
add rule inet rudder_proxy_x nodeport-endpoints-check fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports
add rule inet rudder_proxy_x reject-chain meta l4proto tcp reject with tcp reset
add rule inet rudder_proxy_x reject-chain reject
add rule inet rudder_proxy_x service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services
add rule inet rudder_proxy_x services ip daddr . meta l4proto . th dport vmap @service-ips
add rule inet rudder_proxy_x services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports
";
    assert_eq!(got, want);
}

#[test]
fn cluster_ip_with_two_endpoints() {
    let got = specific(&[web(json!({}))], &two_ready());
    let want = "\
add chain inet t service-MGCYC3RX-ns/web/tcp/http
add element inet t cluster-ips { 10.43.0.10 }
add element inet t hairpin-endpoints { 10.42.1.5 . 10.42.1.5, 10.42.2.7 . 10.42.2.7 }
add element inet t service-ips { 10.43.0.10 . tcp . 80 : goto service-MGCYC3RX-ns/web/tcp/http }
add rule inet t service-MGCYC3RX-ns/web/tcp/http ip daddr 10.43.0.10 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade
add rule inet t service-MGCYC3RX-ns/web/tcp/http meta l4proto tcp dnat ip to numgen random mod 2 map { 0 : 10.42.1.5 . 8080, 1 : 10.42.2.7 . 8080 }
";
    assert_eq!(got, want);
}

/// A ready endpoint on `node` with zone hints (none when `zones` is empty).
fn hinted(ip: &str, node: &str, zones: &[&str]) -> Value {
    let mut e = ep(ip, node, true, true, false);
    if !zones.is_empty() {
        e["hints"] = json!({"forZones": zones.iter().map(|z| json!({"name": z})).collect::<Vec<_>>()});
    }
    e
}

#[test]
fn zone_hints_keep_cluster_traffic_in_the_zone_when_every_ready_endpoint_has_them() {
    // The node is in zone-a: only the endpoint hinted for zone-a serves it.
    let slices = vec![web_slice(vec![
        hinted("10.42.1.5", "node-a", &["zone-a"]),
        hinted("10.42.2.7", "node-b", &["zone-b"]),
        hinted("10.42.2.8", "node-b", &["zone-b", "zone-a"]),
        // Not ready: its missing hints do not count.
        ep("10.42.3.9", "node-c", false, false, false),
    ])];
    let got = specific(&[web(json!({}))], &slices);
    let want = "\
add chain inet t service-MGCYC3RX-ns/web/tcp/http
add element inet t cluster-ips { 10.43.0.10 }
add element inet t hairpin-endpoints { 10.42.1.5 . 10.42.1.5, 10.42.2.8 . 10.42.2.8 }
add element inet t service-ips { 10.43.0.10 . tcp . 80 : goto service-MGCYC3RX-ns/web/tcp/http }
add rule inet t service-MGCYC3RX-ns/web/tcp/http ip daddr 10.43.0.10 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade
add rule inet t service-MGCYC3RX-ns/web/tcp/http meta l4proto tcp dnat ip to numgen random mod 2 map { 0 : 10.42.1.5 . 8080, 1 : 10.42.2.8 . 8080 }
";
    assert_eq!(got, want);
    // All endpoints, as without hints, when a ready endpoint lacks hints, when none is hinted
    // for this zone, or when the node has no zone.
    let everything = specific(&[web(json!({}))], &two_ready());
    let missing = vec![web_slice(vec![hinted("10.42.1.5", "node-a", &["zone-a"]), hinted("10.42.2.7", "node-b", &[])])];
    assert_eq!(specific(&[web(json!({}))], &missing), everything);
    let elsewhere =
        vec![web_slice(vec![hinted("10.42.1.5", "node-a", &["zone-b"]), hinted("10.42.2.7", "node-b", &["zone-c"])])];
    assert_eq!(specific(&[web(json!({}))], &elsewhere), everything);
    let zoneless = NodeView { zone: None, ..view() };
    let hinted_here =
        vec![web_slice(vec![hinted("10.42.1.5", "node-a", &["zone-a"]), hinted("10.42.2.7", "node-b", &["zone-b"])])];
    let base: std::collections::HashSet<String> =
        desired([], [], &zoneless).render("t").lines().map(String::from).collect();
    let got: String = desired(&[web(json!({}))], &hinted_here, &zoneless)
        .render("t")
        .lines()
        .filter(|l| !base.contains(*l))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(got, everything);
    // Local traffic policy ignores hints: this node's endpoints, whatever their zone.
    let local = web(json!({"internalTrafficPolicy": "Local"}));
    let remote_hint =
        vec![web_slice(vec![hinted("10.42.1.5", "node-a", &["zone-b"]), hinted("10.42.2.7", "node-b", &["zone-a"])])];
    assert!(specific(&[local], &remote_hint).contains("dnat ip to 10.42.1.5:8080"));
}

#[test]
fn no_endpoints_are_rejected_not_routed() {
    let got = specific(&[web(json!({}))], &[]);
    let want = "\
add element inet t cluster-ips { 10.43.0.10 }
add element inet t no-endpoint-services { 10.43.0.10 . tcp . 80 : goto reject-chain }
";
    assert_eq!(got, want);
}

#[test]
fn node_port_masquerades_and_goes_cluster_wide() {
    let svc = web(json!({"type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}));
    let got = specific(&[svc], &two_ready());
    let want = "\
add chain inet t external-MGCYC3RX-ns/web/tcp/http
add chain inet t service-MGCYC3RX-ns/web/tcp/http
add element inet t cluster-ips { 10.43.0.10 }
add element inet t hairpin-endpoints { 10.42.1.5 . 10.42.1.5, 10.42.2.7 . 10.42.2.7 }
add element inet t service-ips { 10.43.0.10 . tcp . 80 : goto service-MGCYC3RX-ns/web/tcp/http }
add element inet t service-nodeports { tcp . 30080 : goto external-MGCYC3RX-ns/web/tcp/http }
add rule inet t external-MGCYC3RX-ns/web/tcp/http jump mark-for-masquerade
add rule inet t external-MGCYC3RX-ns/web/tcp/http goto service-MGCYC3RX-ns/web/tcp/http
add rule inet t service-MGCYC3RX-ns/web/tcp/http ip daddr 10.43.0.10 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade
add rule inet t service-MGCYC3RX-ns/web/tcp/http meta l4proto tcp dnat ip to numgen random mod 2 map { 0 : 10.42.1.5 . 8080, 1 : 10.42.2.7 . 8080 }
";
    assert_eq!(got, want);
}

#[test]
fn client_ip_affinity_remembers_sources_per_endpoint() {
    let svc =
        web(json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}));
    let got = specific(&[svc], &two_ready());
    let want = "\
add chain inet t endpoint-CLMYKA6F-ns/web/tcp/http__10.42.1.5/8080
add chain inet t endpoint-XXIKNWAM-ns/web/tcp/http__10.42.2.7/8080
add chain inet t service-MGCYC3RX-ns/web/tcp/http
add set inet t affinity-CLMYKA6F-ns/web/tcp/http__10.42.1.5/8080 { type ipv4_addr; flags dynamic,timeout; timeout 60s; }
add set inet t affinity-XXIKNWAM-ns/web/tcp/http__10.42.2.7/8080 { type ipv4_addr; flags dynamic,timeout; timeout 60s; }
add element inet t cluster-ips { 10.43.0.10 }
add element inet t hairpin-endpoints { 10.42.1.5 . 10.42.1.5, 10.42.2.7 . 10.42.2.7 }
add element inet t service-ips { 10.43.0.10 . tcp . 80 : goto service-MGCYC3RX-ns/web/tcp/http }
add rule inet t endpoint-CLMYKA6F-ns/web/tcp/http__10.42.1.5/8080 update @affinity-CLMYKA6F-ns/web/tcp/http__10.42.1.5/8080 { ip saddr }
add rule inet t endpoint-CLMYKA6F-ns/web/tcp/http__10.42.1.5/8080 meta l4proto tcp dnat ip to 10.42.1.5:8080
add rule inet t endpoint-XXIKNWAM-ns/web/tcp/http__10.42.2.7/8080 update @affinity-XXIKNWAM-ns/web/tcp/http__10.42.2.7/8080 { ip saddr }
add rule inet t endpoint-XXIKNWAM-ns/web/tcp/http__10.42.2.7/8080 meta l4proto tcp dnat ip to 10.42.2.7:8080
add rule inet t service-MGCYC3RX-ns/web/tcp/http ip daddr 10.43.0.10 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade
add rule inet t service-MGCYC3RX-ns/web/tcp/http ip saddr @affinity-CLMYKA6F-ns/web/tcp/http__10.42.1.5/8080 goto endpoint-CLMYKA6F-ns/web/tcp/http__10.42.1.5/8080
add rule inet t service-MGCYC3RX-ns/web/tcp/http ip saddr @affinity-XXIKNWAM-ns/web/tcp/http__10.42.2.7/8080 goto endpoint-XXIKNWAM-ns/web/tcp/http__10.42.2.7/8080
add rule inet t service-MGCYC3RX-ns/web/tcp/http numgen random mod 2 vmap { 0 : goto endpoint-CLMYKA6F-ns/web/tcp/http__10.42.1.5/8080, 1 : goto endpoint-XXIKNWAM-ns/web/tcp/http__10.42.2.7/8080 }
";
    assert_eq!(got, want);
}

#[test]
fn external_traffic_policy_local_uses_local_endpoints_for_outside_traffic() {
    let svc = web(
        json!({"type": "NodePort", "externalTrafficPolicy": "Local", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}),
    );
    let got = specific(&[svc], &two_ready());
    let want = "\
add chain inet t external-MGCYC3RX-ns/web/tcp/http
add chain inet t local-MGCYC3RX-ns/web/tcp/http
add chain inet t service-MGCYC3RX-ns/web/tcp/http
add element inet t cluster-ips { 10.43.0.10 }
add element inet t hairpin-endpoints { 10.42.1.5 . 10.42.1.5, 10.42.2.7 . 10.42.2.7 }
add element inet t service-ips { 10.43.0.10 . tcp . 80 : goto service-MGCYC3RX-ns/web/tcp/http }
add element inet t service-nodeports { tcp . 30080 : goto external-MGCYC3RX-ns/web/tcp/http }
add rule inet t external-MGCYC3RX-ns/web/tcp/http ip saddr 10.42.0.0/16 goto service-MGCYC3RX-ns/web/tcp/http
add rule inet t external-MGCYC3RX-ns/web/tcp/http fib saddr type local jump mark-for-masquerade
add rule inet t external-MGCYC3RX-ns/web/tcp/http fib saddr type local goto service-MGCYC3RX-ns/web/tcp/http
add rule inet t external-MGCYC3RX-ns/web/tcp/http goto local-MGCYC3RX-ns/web/tcp/http
add rule inet t local-MGCYC3RX-ns/web/tcp/http meta l4proto tcp dnat ip to 10.42.1.5:8080
add rule inet t service-MGCYC3RX-ns/web/tcp/http ip daddr 10.43.0.10 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade
add rule inet t service-MGCYC3RX-ns/web/tcp/http meta l4proto tcp dnat ip to numgen random mod 2 map { 0 : 10.42.1.5 . 8080, 1 : 10.42.2.7 . 8080 }
";
    assert_eq!(got, want);
}

#[test]
fn headless_and_external_name_services_are_ignored() {
    let headless = web(json!({"clusterIP": "None"}));
    let external = svc(json!({"metadata": {"name": "ext", "namespace": "ns"},
        "spec": {"type": "ExternalName", "externalName": "example.com", "ports": [{"port": 80}]}}));
    let other_proxy = svc(json!({"metadata": {"name": "web", "namespace": "ns",
        "labels": {"service.kubernetes.io/service-proxy-name": "other"}},
        "spec": {"clusterIP": "10.43.0.10", "ports": [{"name": "http", "port": 80}]}}));
    assert_eq!(specific(&[headless], &two_ready()), "");
    assert_eq!(specific(&[external], &[]), "");
    assert_eq!(specific(&[other_proxy], &two_ready()), "");
}

#[test]
fn named_target_ports_come_from_the_slice_ports() {
    // The Service names its target port; the slice carries the number each pod resolved it
    // to, under the Service port's name. A port the slice does not list has no endpoints.
    let svc = web(json!({"ports": [
        {"name": "web", "port": 80, "targetPort": "http"},
        {"name": "metrics", "port": 9100, "protocol": "UDP", "targetPort": "metrics"},
    ]}));
    let s = slice(json!({
        "metadata": {"name": "web-xyz", "namespace": "ns", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "web", "port": 9090, "protocol": "TCP"}],
        "endpoints": [ep("10.42.1.5", "node-a", true, true, false)],
    }));
    let got = specific(&[svc], &[s]);
    let want = "\
add chain inet t service-KWLNTBT7-ns/web/tcp/web
add element inet t cluster-ips { 10.43.0.10 }
add element inet t hairpin-endpoints { 10.42.1.5 . 10.42.1.5 }
add element inet t no-endpoint-services { 10.43.0.10 . udp . 9100 : goto reject-chain }
add element inet t service-ips { 10.43.0.10 . tcp . 80 : goto service-KWLNTBT7-ns/web/tcp/web }
add rule inet t service-KWLNTBT7-ns/web/tcp/web ip daddr 10.43.0.10 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade
add rule inet t service-KWLNTBT7-ns/web/tcp/web meta l4proto tcp dnat ip to 10.42.1.5:9090
";
    assert_eq!(got, want);
}

#[test]
fn terminating_endpoints_serve_only_when_nothing_is_ready() {
    let one_ready = vec![web_slice(vec![
        ep("10.42.1.5", "node-a", true, true, false),
        ep("10.42.2.7", "node-b", false, true, true),
        ep("10.42.2.8", "node-b", false, false, false),
    ])];
    let got = specific(&[web(json!({}))], &one_ready);
    assert!(got.contains("service-MGCYC3RX-ns/web/tcp/http meta l4proto tcp dnat ip to 10.42.1.5:8080\n"), "{got}");
    let none_ready = vec![web_slice(vec![
        ep("10.42.2.7", "node-b", false, true, true),
        ep("10.42.2.8", "node-b", false, false, true),
        ep("10.42.2.9", "node-b", false, false, false),
    ])];
    let got = specific(&[web(json!({}))], &none_ready);
    assert!(
        got.contains("dnat ip to 10.42.2.7:8080") && !got.contains("10.42.2.8:") && !got.contains("10.42.2.9:"),
        "{got}"
    );
    // Missing conditions mean ready (upstream's reading of a nil `ready`).
    let bare = vec![web_slice(vec![json!({"addresses": ["10.42.3.3"]})])];
    assert!(specific(&[web(json!({}))], &bare).contains("dnat ip to 10.42.3.3:8080"));
}

#[test]
fn internal_traffic_policy_local_without_local_endpoints_drops() {
    let svc = web(json!({"internalTrafficPolicy": "Local"}));
    let remote_only = vec![web_slice(vec![ep("10.42.2.7", "node-b", true, true, false)])];
    let got = specific(std::slice::from_ref(&svc), &remote_only);
    assert_eq!(
        got,
        "add element inet t cluster-ips { 10.43.0.10 }\n\
         add element inet t no-endpoint-services { 10.43.0.10 . tcp . 80 : drop }\n"
    );
    let got = specific(&[svc], &two_ready());
    assert!(
        got.contains("add element inet t service-ips { 10.43.0.10 . tcp . 80 : goto local-MGCYC3RX-ns/web/tcp/http }"),
        "{got}"
    );
    assert!(
        got.contains("add rule inet t local-MGCYC3RX-ns/web/tcp/http meta l4proto tcp dnat ip to 10.42.1.5:8080\n"),
        "{got}"
    );
    assert!(!got.contains("10.42.2.7:8080"), "the remote endpoint is not used: {got}");
}

#[test]
fn load_balancer_ingress_and_external_ips_are_served_like_the_node_port() {
    let svc = svc(json!({
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.10", "externalIPs": ["192.0.2.9"],
                 "ports": [{"name": "http", "port": 80, "nodePort": 30080}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1", "ipMode": "VIP"}, {"ip": "192.0.2.2", "ipMode": "Proxy"}, {"hostname": "lb.example"}]}},
    }));
    let got = specific(std::slice::from_ref(&svc), &two_ready());
    assert!(got.contains("add element inet t service-ips { 10.43.0.10 . tcp . 80 : goto service-MGCYC3RX-ns/web/tcp/http, 192.0.2.1 . tcp . 80 : goto external-MGCYC3RX-ns/web/tcp/http, 192.0.2.9 . tcp . 80 : goto external-MGCYC3RX-ns/web/tcp/http }"), "{got}");
    assert!(!got.contains("192.0.2.2"), "ipMode Proxy is not captured: {got}");
    assert!(got.contains("service-nodeports { tcp . 30080 : goto external-MGCYC3RX-ns/web/tcp/http }"), "{got}");
    // Without endpoints every entry point rejects.
    let got = specific(&[svc], &[]);
    assert!(got.contains("add element inet t no-endpoint-nodeports { tcp . 30080 : goto reject-chain }"), "{got}");
    assert!(got.contains("192.0.2.1 . tcp . 80 : goto reject-chain"), "{got}");
}

#[test]
fn load_balancer_source_ranges_drop_other_sources_to_the_load_balancer_ips_only() {
    let svc = svc(json!({
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.10", "externalIPs": ["192.0.2.9"],
                 "loadBalancerSourceRanges": ["198.51.100.0/24", " 203.0.113.7/32 ", "2001:db8::/64", "junk"],
                 "ports": [{"name": "http", "port": 80, "nodePort": 30080}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1", "ipMode": "VIP"}, {"ip": "192.0.2.2", "ipMode": "Proxy"}]}},
    }));
    let got = specific(std::slice::from_ref(&svc), &two_ready());
    let firewall: String = got.lines().filter(|l| l.contains("firewall")).map(|l| format!("{l}\n")).collect();
    let want = "\
add chain inet t firewall-MGCYC3RX-ns/web/tcp/http
add element inet t firewall-ips { 192.0.2.1 . tcp . 80 : goto firewall-MGCYC3RX-ns/web/tcp/http }
add rule inet t firewall-MGCYC3RX-ns/web/tcp/http ip saddr != { 198.51.100.0/24, 203.0.113.7/32 } drop
";
    assert_eq!(firewall, want);
    // The node port and external IPs are served as without ranges.
    let mut open = svc.clone();
    open.spec.as_mut().unwrap().load_balancer_source_ranges = None;
    let without = specific(&[open], &two_ready());
    let rest: String = got.lines().filter(|l| !l.contains("firewall")).map(|l| format!("{l}\n")).collect();
    assert_eq!(rest, without);
    // The ranges apply without endpoints too (the firewall comes before the reject).
    assert!(specific(std::slice::from_ref(&svc), &[]).contains("firewall-ips { 192.0.2.1 . tcp . 80"));
    // No LoadBalancer IP yet: nothing to filter.
    let mut pending = svc;
    pending.status = None;
    assert!(!specific(&[pending], &two_ready()).contains("firewall"));
}

#[test]
fn local_pods_are_masqueraded_to_local_endpoints_without_bridge_netfilter() {
    let node = NodeView { masquerade_local_pods: Some("10.42.7.0/24".parse().unwrap()), ..view() };
    let got = desired([], [], &node).render("t");
    assert!(got.contains("add rule inet t masquerading ct status dnat ip saddr 10.42.7.0/24 ip daddr 10.42.7.0/24 jump mark-for-masquerade"), "{got}");
}

#[test]
fn output_is_deterministic_whatever_the_input_order() {
    let a = web(json!({}));
    let mut b = web(json!({"clusterIP": "10.43.0.11"}));
    b.metadata.name = Some("api".into());
    let mut slices = two_ready();
    slices[0].endpoints.reverse();
    let one = desired([&a, &b], &slices, &view()).render("t");
    let two = desired([&b, &a], &two_ready(), &view()).render("t");
    assert_eq!(one, two);
}

#[test]
fn bad_input_is_skipped_not_fatal() {
    let bad = svc(json!({"metadata": {"name": "web", "namespace": "ns"},
        "spec": {"clusterIP": "not-an-ip", "ports": [{"port": 70000}, {"port": 80, "protocol": "ICMP"}]}}));
    let slice = web_slice(vec![json!({"addresses": ["fe80::1"]}), json!({"addresses": []})]);
    let got = specific(&[bad, web(json!({"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}))], &[slice]);
    assert_eq!(
        got,
        "add element inet t cluster-ips { 10.43.0.10 }\nadd element inet t no-endpoint-services { 10.43.0.10 . tcp . 80 : goto reject-chain }\n"
    );
}

#[test]
fn updates_touch_only_what_changed() {
    let node = view();
    let before = desired(&[web(json!({}))], &two_ready(), &node);
    assert_eq!(before.render_update(&before, "t"), Update::Unchanged);
    // One endpoint replaced by another.
    let moved = vec![web_slice(vec![
        ep("10.42.1.5", "node-a", true, true, false),
        ep("10.42.2.8", "node-b", true, true, false),
    ])];
    let after = desired(&[web(json!({}))], &moved, &node);
    let Update::Script(got) = after.render_update(&before, "t") else { panic!("a script") };
    let want = "\
delete element inet t hairpin-endpoints { 10.42.2.7 . 10.42.2.7 }
flush chain inet t service-MGCYC3RX-ns/web/tcp/http
add rule inet t service-MGCYC3RX-ns/web/tcp/http ip daddr 10.43.0.10 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade
add rule inet t service-MGCYC3RX-ns/web/tcp/http meta l4proto tcp dnat ip to numgen random mod 2 map { 0 : 10.42.1.5 . 8080, 1 : 10.42.2.8 . 8080 }
add element inet t hairpin-endpoints { 10.42.2.8 . 10.42.2.8 }
";
    assert_eq!(got, want);
    // Losing all endpoints: the map entry moves to the reject map, chains go.
    let gone = desired(&[web(json!({}))], &[], &node);
    let Update::Script(got) = gone.render_update(&after, "t") else { panic!("a script") };
    assert!(got.contains("delete element inet t service-ips { 10.43.0.10 . tcp . 80 }"), "{got}");
    assert!(
        got.contains("add element inet t no-endpoint-services { 10.43.0.10 . tcp . 80 : goto reject-chain }"),
        "{got}"
    );
    assert!(got.ends_with("delete chain inet t service-MGCYC3RX-ns/web/tcp/http\n"), "{got}");
    // A new affinity timeout recreates the sets, emptying and refilling the chains using them.
    let a60 = desired(
        &[web(json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}))],
        &two_ready(),
        &node,
    );
    let a90 = desired(
        &[web(json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 90}}}))],
        &two_ready(),
        &node,
    );
    let Update::Script(got) = a90.render_update(&a60, "t") else { panic!("a script") };
    let flush = got.find("flush chain inet t service-MGCYC3RX").expect("service chain flushed");
    let delete = got.find("delete set inet t affinity-CLMYKA6F").expect("set deleted");
    let add = got.find("add set inet t affinity-CLMYKA6F-ns/web/tcp/http__10.42.1.5/8080 { type ipv4_addr; flags dynamic,timeout; timeout 90s; }").expect("set re-added");
    let refill = got.find("add rule inet t service-MGCYC3RX").expect("service chain refilled");
    assert!(flush < delete && delete < add && add < refill, "{got}");
    // A changed hook needs a new table.
    let mut hooked = before.clone();
    hooked.chains.get_mut("nat-output").unwrap().base =
        Some("type nat hook output priority -50; policy accept;".into());
    assert_eq!(hooked.render_update(&before, "t"), Update::Replace);
}

#[test]
fn cidrs_parse_and_contain() {
    let c: Cidr = "10.42.3.7/16".parse().unwrap();
    assert_eq!(c.to_string(), "10.42.0.0/16");
    assert!(c.contains("10.42.200.1".parse().unwrap()) && !c.contains("10.43.0.1".parse().unwrap()));
    assert!("10.42.0.0".parse::<Cidr>().is_err() && "10.42.0.0/40".parse::<Cidr>().is_err());
    assert_eq!("0.0.0.0/0".parse::<Cidr>().unwrap().to_string(), "0.0.0.0/0");
}

/// Every golden ruleset is accepted by the real `nft` (a dry run, `nft -c`: nothing is
/// committed). Needs root and nftables; skipped otherwise.
#[test]
fn nft_accepts_the_rulesets() {
    let root = std::fs::read_to_string("/proc/self/status")
        .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")));
    if !root || std::process::Command::new("nft").arg("--version").output().is_err() {
        eprintln!("skipped: needs root and nft");
        return;
    }
    let lb = svc(json!({
        "metadata": {"name": "lb", "namespace": "ns"},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.12", "externalTrafficPolicy": "Local",
                 "loadBalancerSourceRanges": ["198.51.100.0/24", "203.0.113.7/32"],
                 "sessionAffinity": "ClientIP", "ports": [{"name": "http", "port": 80, "nodePort": 30081}, {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30082}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}},
    }));
    let mut none = web(
        json!({"clusterIP": "10.43.0.13", "type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": 30083}]}),
    );
    none.metadata.name = Some("none".into());
    let node = NodeView { masquerade_local_pods: Some("10.42.1.0/24".parse().unwrap()), ..view() };
    let table = format!("rudder_proxy_test_{}", std::process::id());
    let before = desired([&web(json!({}))], &two_ready(), &node);
    let after = desired([&web(json!({"internalTrafficPolicy": "Local"})), &lb, &none], &two_ready(), &node);
    let Update::Script(update) = after.render_update(&before, &table) else { panic!("a script") };
    // The dry run checks the update against the table as the full script leaves it.
    let script = format!("{}{}delete table inet {table}\n", before.render(&table), update);
    let mut child = std::process::Command::new("nft")
        .args(["-c", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "nft -c: {}\n{script}", String::from_utf8_lossy(&out.stderr));
}

/// Gives `o` a resourceVersion, as the API would on every change.
fn versioned<T: kube::Resource>(mut o: T, rv: u64) -> T {
    o.meta_mut().resource_version = Some(rv.to_string());
    o
}

#[test]
fn the_assembly_recomputes_changed_services_only() {
    let node = view();
    let a = versioned(web(json!({})), 1);
    let mut b = versioned(web(json!({"clusterIP": "10.43.0.11"})), 2);
    b.metadata.name = Some("api".into());
    let mut slices = vec![versioned(two_ready()[0].clone(), 3)];
    let mut assembly = Assembly::default();
    let first = assembly.update([&a, &b], &slices, &node, true);
    assert!(first.rebuilt && first.recomputed == 2);
    assert_eq!(first.render("t"), Update::Replace);
    assert_eq!(assembly.table(), &desired([&a, &b], &slices, &node));
    // Same versions: nothing is recomputed, nothing to send.
    let again = assembly.update([&a, &b], &slices, &node, true);
    assert_eq!((again.rebuilt, again.recomputed), (false, 0));
    assert_eq!(again.render("t"), Update::Unchanged);
    // A slice changes (new resourceVersion): only that Service is recomputed.
    let before = assembly.table().clone();
    slices[0].endpoints.pop();
    slices[0].metadata.resource_version = Some("4".into());
    let changed = assembly.update([&a, &b], &slices, &node, true);
    assert_eq!(changed.recomputed, 1);
    assert_eq!(assembly.table(), &desired([&a, &b], &slices, &node));
    assert_eq!(changed.render("t"), assembly.table().render_update(&before, "t"));
    // Objects without versions are recomputed every time; gone Services leave the table.
    let unversioned = web(json!({"clusterIP": "10.43.0.12"}));
    let mut c = unversioned.clone();
    c.metadata.name = Some("c".into());
    assembly.update([&b, &c], &slices, &node, true);
    assert_eq!(assembly.update([&b, &c], &slices, &node, true).recomputed, 1);
    assert_eq!(assembly.table(), &desired([&b, &c], &slices, &node));
    // A new node view rebuilds everything.
    let other = NodeView { node_name: "node-b".into(), ..view() };
    let rebuilt = assembly.update([&b, &c], &slices, &other, true);
    assert!(rebuilt.rebuilt && rebuilt.recomputed == 2);
    assert_eq!(assembly.table(), &desired([&b, &c], &slices, &other));
}

/// Random-ish sequences of changes: after every update the assembled table is the table
/// computed from scratch, and the difference it renders is the one between the two whole
/// tables, including elements several Services share (hairpin pairs, a claimed external IP)
/// and affinity sets whose timeout changes.
#[test]
fn the_assembly_matches_the_whole_computation_through_changes() {
    let node = view();
    let service = |name: &str, ip: &str, extra: Value| -> Service {
        let mut s = web(extra);
        s.metadata.name = Some(name.into());
        s.spec.as_mut().unwrap().cluster_ip = Some(ip.into());
        s
    };
    let slice_of = |svc: &str, n: usize, ips: &[&str]| -> EndpointSlice {
        let eps = ips.iter().map(|ip| ep(ip, if ip.ends_with('5') { "node-a" } else { "node-b" }, true, true, false));
        let mut s = web_slice(eps.collect());
        s.metadata.name = Some(format!("{svc}-{n}"));
        s.metadata.labels.as_mut().unwrap().insert(SERVICE_NAME_LABEL.into(), svc.into());
        s
    };
    let mut rv = 0u64;
    let mut next = || {
        rv += 1;
        rv
    };
    let mut services = vec![
        versioned(service("a", "10.43.0.20", json!({})), next()),
        versioned(service("b", "10.43.0.21", json!({"externalIPs": ["192.0.2.9"]})), next()),
        versioned(
            service(
                "c",
                "10.43.0.22",
                json!({"externalIPs": ["192.0.2.9"], "type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": 30100}]}),
            ),
            next(),
        ),
        versioned(service("d", "10.43.0.23", json!({"sessionAffinity": "ClientIP"})), next()),
    ];
    let mut slices = vec![
        versioned(slice_of("a", 1, &["10.42.1.5", "10.42.2.7"]), next()),
        versioned(slice_of("b", 1, &["10.42.1.5"]), next()),
        versioned(slice_of("c", 1, &["10.42.2.8", "10.42.2.9"]), next()),
        versioned(slice_of("c", 2, &["10.42.1.15"]), next()),
        versioned(slice_of("d", 1, &["10.42.2.7", "10.42.3.5"]), next()),
    ];
    let mut assembly = Assembly::default();
    assembly.update(&services, &slices, &node, true);
    type Step<'a> = Box<dyn Fn(&mut Vec<Service>, &mut Vec<EndpointSlice>) + 'a>;
    let steps: Vec<Step> = vec![
        // b loses the endpoint it shares with a: the hairpin pair stays for a.
        Box::new(|_, sl| sl[1].endpoints.clear()),
        // a goes away: the pair goes too, d's 10.42.2.7 pair stays.
        Box::new(|sv, _| {
            sv.remove(0);
        }),
        // The external IP moves from c (which won, last in order) to b alone.
        Box::new(|sv, _| sv[1].spec.as_mut().unwrap().external_ips = None),
        // c loses one of its two slices; d's affinity timeout changes.
        Box::new(|sv, sl| {
            sl.remove(3);
            sv[2].spec.as_mut().unwrap().session_affinity_config =
                Some(serde_json::from_value(json!({"clientIP": {"timeoutSeconds": 60}})).unwrap());
        }),
        // a comes back with a new endpoint; b's slice gets one back.
        Box::new(|sv, sl| {
            sv.insert(0, service("a", "10.43.0.20", json!({})));
            sl[0].endpoints.push(serde_json::from_value(ep("10.42.2.9", "node-b", true, true, false)).unwrap());
            sl[1].endpoints.push(serde_json::from_value(ep("10.42.2.8", "node-b", true, false, false)).unwrap());
        }),
        // Nothing at all.
        Box::new(|_, _| {}),
        // Everything goes.
        Box::new(|sv, sl| {
            sv.clear();
            sl.clear();
        }),
    ];
    for (i, step) in steps.iter().enumerate() {
        let before = desired(&services, &slices, &node);
        let (old_services, old_slices) = (services.clone(), slices.clone());
        step(&mut services, &mut slices);
        // As the API: what changed gets a new resourceVersion.
        for (new, old) in [(&mut services, &old_services)] {
            for s in new.iter_mut() {
                let same = old.iter().find(|o| o.metadata.name == s.metadata.name);
                if same.is_none_or(|o| o.spec != s.spec) || s.metadata.resource_version.is_none() {
                    s.metadata.resource_version = Some(next().to_string());
                }
            }
        }
        for s in slices.iter_mut() {
            let same = old_slices.iter().find(|o| o.metadata.name == s.metadata.name);
            if same.is_none_or(|o| o.endpoints != s.endpoints) {
                s.metadata.resource_version = Some(next().to_string());
            }
        }
        let changes = assembly.update(&services, &slices, &node, true);
        let after = desired(&services, &slices, &node);
        assert_eq!(assembly.table(), &after, "step {i}");
        assert_eq!(changes.render("t"), after.render_update(&before, "t"), "step {i}");
    }
}
