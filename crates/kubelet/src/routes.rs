//! Routes to the other nodes' pods (host-gw, as flannel's backend of that name): for every other
//! node with a pod CIDR and an InternalIP on a network this node is directly attached to, a route
//! `<pod CIDR> via <node IP>`, so pods talk across nodes without encapsulation.
//!
//! The node's egress guard drops cluster ranges on the uplinks; pod CIDRs routed to a node are
//! let through it (the guard's `routed` set), nothing else is. Nodes whose address is not on a
//! connected network (other subnets, simulated nodes) get no route: host-gw needs one L2
//! network, and a route through a remote gateway would send pod traffic off the machine.
//!
//! Routes this node installed are remembered in a state file, so a restart removes the ones
//! whose node went away; routes stay while the kubelet is down (pods keep running).

use crate::network::{Cidr, nft_apply};
use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use tokio::sync::watch;

/// Routes: destination pod CIDR → the node address it goes through.
pub type RouteTable = BTreeMap<String, Ipv4Addr>;

/// The networks this host reaches without a gateway, from `/proc/net/route` text: rows with a
/// zero gateway and a non-zero mask.
pub fn connected_networks(proc_net_route: &str) -> Vec<Cidr> {
    proc_net_route
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 || f[2] != "00000000" {
                return None;
            }
            let dest = u32::from_str_radix(f[1], 16).ok()?.swap_bytes();
            let mask = u32::from_str_radix(f[7], 16).ok()?.swap_bytes();
            (mask != 0).then(|| Cidr { addr: Ipv4Addr::from(dest & mask), prefix: mask.count_ones() as u8 })
        })
        .collect()
}

fn contains(net: &Cidr, ip: Ipv4Addr) -> bool {
    let mask = if net.prefix == 0 { 0 } else { u32::MAX << (32 - net.prefix) };
    u32::from(ip) & mask == u32::from(net.addr)
}

/// The routes this node wants: one per other node whose InternalIP is on a connected network
/// (and not inside a pod CIDR, which would loop), to each of its IPv4 pod CIDRs.
pub fn desired(nodes: &[Node], own: &str, connected: &[Cidr], pod_ranges: &[Cidr]) -> RouteTable {
    let mut table = RouteTable::new();
    for node in nodes {
        if node.name_any() == own {
            continue;
        }
        let ip = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
            .and_then(|a| a.address.parse::<Ipv4Addr>().ok());
        let Some(ip) = ip else { continue };
        if !connected.iter().any(|n| contains(n, ip)) || pod_ranges.iter().any(|n| contains(n, ip)) {
            continue;
        }
        let spec = node.spec.as_ref();
        let mut cidrs: Vec<String> = spec.and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
        if cidrs.is_empty() {
            cidrs.extend(spec.and_then(|s| s.pod_cidr.clone()));
        }
        for cidr in cidrs {
            if let Ok(c) = cidr.parse::<Cidr>() {
                table.insert(c.to_string(), ip);
            }
        }
    }
    table
}

/// The nftables commands that make the guard's `routed` set hold exactly `routes`' CIDRs.
pub fn guard_set_update(table: &str, routes: &RouteTable) -> String {
    let mut s = format!("flush set inet {table} routed\n");
    if !routes.is_empty() {
        let list = routes.keys().cloned().collect::<Vec<_>>().join(", ");
        s.push_str(&format!("add element inet {table} routed {{ {list} }}\n"));
    }
    s
}

fn ip(args: &[&str]) -> Result<()> {
    let out =
        std::process::Command::new("ip").args(args).output().context("cannot run ip (apt-get install -y iproute2)")?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// The node's route keeper.
struct Keeper {
    own: String,
    guard_table: String,
    state_file: PathBuf,
    pod_ranges: Vec<Cidr>,
    installed: RouteTable,
    /// Routes the kernel refused, not retried until they change.
    refused: RouteTable,
}

impl Keeper {
    fn load(state_file: &Path) -> RouteTable {
        std::fs::read(state_file).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    fn save(&self) {
        let tmp = self.state_file.with_extension("tmp");
        let ok = serde_json::to_vec(&self.installed)
            .ok()
            .and_then(|b| std::fs::write(&tmp, b).ok())
            .and_then(|_| std::fs::rename(&tmp, &self.state_file).ok());
        if ok.is_none() {
            tracing::warn!("cannot record the node's routes in {}", self.state_file.display());
        }
    }

    /// Brings the routes and the guard's set to `want`.
    fn sync(&mut self, want: &RouteTable) {
        let mut changed = false;
        let stale: Vec<(String, Ipv4Addr)> = self
            .installed
            .iter()
            .filter(|(cidr, via)| want.get(*cidr) != Some(via))
            .map(|(c, v)| (c.clone(), *v))
            .collect();
        for (cidr, via) in stale {
            if let Err(e) = ip(&["-4", "route", "del", &cidr, "via", &via.to_string()]) {
                tracing::debug!("removing the route to {cidr}: {e:#}");
            }
            self.installed.remove(&cidr);
            changed = true;
        }
        self.refused.retain(|cidr, via| want.get(cidr) == Some(via));
        for (cidr, via) in want {
            if self.installed.get(cidr) == Some(via) || self.refused.get(cidr) == Some(via) {
                continue;
            }
            match ip(&["-4", "route", "replace", cidr, "via", &via.to_string()]) {
                Ok(()) => {
                    tracing::info!("pods of {cidr} are routed through {via}");
                    self.installed.insert(cidr.clone(), *via);
                    changed = true;
                }
                Err(e) => {
                    tracing::warn!("cannot route {cidr} through {via}: {e:#}");
                    self.refused.insert(cidr.clone(), *via);
                }
            }
        }
        if changed {
            if !self.installed.is_empty() {
                // The receiving side forwards from its uplink to its pod bridge.
                if let Err(e) = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1") {
                    tracing::warn!("cannot turn on IPv4 forwarding: {e}");
                }
            }
            self.save();
        }
        if let Err(e) = nft_apply(&guard_set_update(&self.guard_table, &self.installed)) {
            tracing::warn!("cannot let routed pod CIDRs through the egress guard: {e:#}");
        }
    }
}

/// Keeps this node's routes to the other nodes' pods until `shutdown` turns true.
pub async fn run(
    client: Client,
    own: String,
    guard_table: String,
    state_file: PathBuf,
    pod_ranges: Vec<Cidr>,
    mut shutdown: watch::Receiver<bool>,
) {
    let installed = Keeper::load(&state_file);
    let mut keeper = Keeper { own, guard_table, state_file, pod_ranges, installed, refused: RouteTable::new() };
    let mut nodes: HashMap<String, Node> = HashMap::new();
    let mut listing: HashMap<String, Node> = HashMap::new();
    let mut stream = watcher::watcher(Api::<Node>::all(client), watcher::Config::default()).default_backoff().boxed();
    let mut synced = false;
    let mut last: Option<RouteTable> = None;
    loop {
        let event = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            event = stream.next() => event,
        };
        match event {
            None => return,
            Some(Ok(Event::Init)) => listing.clear(),
            Some(Ok(Event::InitApply(n))) => {
                listing.insert(n.name_any(), n);
            }
            Some(Ok(Event::InitDone)) => {
                nodes = std::mem::take(&mut listing);
                synced = true;
            }
            Some(Ok(Event::Apply(n))) => {
                nodes.insert(n.name_any(), n);
            }
            Some(Ok(Event::Delete(n))) => {
                nodes.remove(&n.name_any());
            }
            Some(Err(e)) => {
                tracing::debug!("node watch for routes: {e}");
                continue;
            }
        }
        if !synced {
            continue;
        }
        let connected = connected_networks(&std::fs::read_to_string("/proc/net/route").unwrap_or_default());
        let all: Vec<Node> = nodes.values().cloned().collect();
        let want = desired(&all, &keeper.own, &connected, &keeper.pod_ranges);
        if last.as_ref() != Some(&want) {
            keeper.sync(&want);
            last = Some(want);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PROC_NET_ROUTE: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
cni0\t00002A0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth1\t0000A8C0\t0100A8C0\t0003\t0\t0\t0\t0000FFFF\t0\t0\t0
";

    fn node(name: &str, ip: &str, cidr: Option<&str>) -> Node {
        serde_json::from_value(json!({
            "metadata": { "name": name },
            "spec": cidr.map(|c| json!({ "podCIDR": c, "podCIDRs": [c] })).unwrap_or(json!({})),
            "status": { "addresses": [
                { "type": "Hostname", "address": name },
                { "type": "InternalIP", "address": ip },
            ] },
        }))
        .unwrap()
    }

    #[test]
    fn connected_networks_skip_the_default_route_and_gateways() {
        let nets: Vec<String> = connected_networks(PROC_NET_ROUTE).iter().map(|c| c.to_string()).collect();
        assert_eq!(nets, ["192.0.2.0/24", "10.42.0.0/24"]);
    }

    #[test]
    fn routes_go_to_other_nodes_on_connected_networks_only() {
        let connected = connected_networks(PROC_NET_ROUTE);
        let pods: Vec<Cidr> = vec!["10.42.0.0/16".parse().unwrap()];
        let nodes = [
            node("me", "192.0.2.2", Some("10.42.0.0/24")),
            node("b", "192.0.2.3", Some("10.42.1.0/24")),
            node("no-cidr", "192.0.2.4", None),
            node("far", "198.51.100.7", Some("10.42.3.0/24")),
            node("sim-1", "10.200.0.2", Some("10.244.1.0/24")),
            node("inside-pods", "10.42.0.9", Some("10.42.4.0/24")),
        ];
        let want = desired(&nodes, "me", &connected, &pods);
        assert_eq!(want, RouteTable::from([("10.42.1.0/24".to_string(), "192.0.2.3".parse().unwrap())]));
    }

    #[test]
    fn the_guard_set_follows_the_routes() {
        let mut t = RouteTable::new();
        assert_eq!(guard_set_update("g", &t), "flush set inet g routed\n");
        t.insert("10.42.1.0/24".into(), "192.0.2.3".parse().unwrap());
        t.insert("10.42.2.0/24".into(), "192.0.2.4".parse().unwrap());
        assert_eq!(
            guard_set_update("g", &t),
            "flush set inet g routed\nadd element inet g routed { 10.42.1.0/24, 10.42.2.0/24 }\n"
        );
    }
}
