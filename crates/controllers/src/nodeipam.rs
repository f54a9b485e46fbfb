//! The node IPAM controller (upstream's range allocator): every node without a pod CIDR gets the
//! next free block of the cluster CIDR (`/24`s of `10.42.0.0/16` by default) in `spec.podCIDR`
//! and `spec.podCIDRs`, and the block returns to the pool when the node is deleted.
//!
//! Blocks already written on nodes (by a kubelet's `--pod-cidr`, a simulated node or an earlier
//! run) are marked used when the node list arrives, before anything is handed out, so a restart
//! never gives one block to two nodes. A node whose CIDR lies outside the cluster CIDR is left
//! alone. When the pool is empty the node gets a `CIDRNotAvailable` event, as upstream.

use crate::Shutdown;
use crate::informers::Informers;
use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Node, ObjectReference};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher::Event as WatchEvent;
use kube::{Client, ResourceExt};
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

/// The cluster CIDR when none is configured (k3s's default).
pub const DEFAULT_CLUSTER_CIDR: &str = "10.42.0.0/16";
/// The size of each node's block (upstream's `--node-cidr-mask-size` for IPv4).
pub const DEFAULT_NODE_MASK_SIZE: u8 = 24;

/// An IPv4 network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Net {
    base: u32,
    prefix: u8,
}

impl Net {
    fn parse(text: &str) -> Option<Net> {
        let (addr, prefix) = text.trim().split_once('/')?;
        let addr: Ipv4Addr = addr.parse().ok()?;
        let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
        Some(Net { base: u32::from(addr) & mask(prefix), prefix })
    }

    /// The first and last address.
    fn range(&self) -> (u32, u32) {
        (self.base, self.base | !mask(self.prefix))
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) }
}

/// The pool of node blocks in the cluster CIDR: a bitmap, handed out round-robin from where the
/// last allocation stopped (as upstream's allocator does, so a released block is not reused at
/// once).
#[derive(Debug)]
pub struct Allocator {
    cluster: Net,
    node_prefix: u8,
    used: Vec<bool>,
    next: usize,
}

impl Allocator {
    /// A pool of `/node_prefix` blocks in `cluster_cidr`.
    pub fn new(cluster_cidr: &str, node_prefix: u8) -> Result<Allocator> {
        let cluster = Net::parse(cluster_cidr)
            .with_context(|| format!("cluster CIDR {cluster_cidr:?} is not an IPv4 CIDR like 10.42.0.0/16"))?;
        if node_prefix < cluster.prefix || node_prefix > 30 {
            bail!("node CIDR mask size /{node_prefix} must lie between the cluster CIDR's /{} and /30", cluster.prefix);
        }
        if node_prefix - cluster.prefix > 16 {
            bail!("cluster CIDR {cluster_cidr} holds more than 65536 /{node_prefix} blocks; use a larger mask size");
        }
        Ok(Allocator { cluster, node_prefix, used: vec![false; 1 << (node_prefix - cluster.prefix)], next: 0 })
    }

    fn block(&self, index: usize) -> String {
        let base = self.cluster.base + ((index as u32) << (32 - self.node_prefix));
        format!("{}/{}", Ipv4Addr::from(base), self.node_prefix)
    }

    /// The indexes of the blocks `cidr` overlaps; empty when it lies outside the cluster CIDR.
    fn covered(&self, cidr: &str) -> std::ops::Range<usize> {
        let Some(net) = Net::parse(cidr) else { return 0..0 };
        let (first, last) = net.range();
        let (lo, hi) = self.cluster.range();
        if last < lo || first > hi {
            return 0..0;
        }
        let shift = 32 - self.node_prefix;
        let start = ((first.max(lo) - lo) >> shift) as usize;
        let end = ((last.min(hi) - lo) >> shift) as usize + 1;
        start..end
    }

    /// Marks the blocks `cidr` overlaps as used; false when it lies outside the cluster CIDR.
    pub fn occupy(&mut self, cidr: &str) -> bool {
        let range = self.covered(cidr);
        let inside = !range.is_empty();
        for i in range {
            self.used[i] = true;
        }
        inside
    }

    /// Returns the blocks `cidr` overlaps to the pool.
    pub fn release(&mut self, cidr: &str) {
        for i in self.covered(cidr) {
            self.used[i] = false;
        }
    }

    /// The next free block, marked used; `None` when every block is taken.
    pub fn allocate(&mut self) -> Option<String> {
        let n = self.used.len();
        let index = (0..n).map(|k| (self.next + k) % n).find(|&i| !self.used[i])?;
        self.used[index] = true;
        self.next = (index + 1) % n;
        Some(self.block(index))
    }
}

/// How the controller hands out blocks.
#[derive(Clone, Debug)]
pub struct Config {
    /// The cluster's pod network.
    pub cluster_cidr: String,
    /// The prefix length of each node's block.
    pub node_mask_size: u8,
}

impl Default for Config {
    fn default() -> Self {
        Config { cluster_cidr: DEFAULT_CLUSTER_CIDR.into(), node_mask_size: DEFAULT_NODE_MASK_SIZE }
    }
}

/// The pod CIDRs a node has: `spec.podCIDRs`, else `spec.podCIDR`.
fn cidrs_of(node: &Node) -> Vec<String> {
    let Some(spec) = node.spec.as_ref() else { return Vec::new() };
    match spec.pod_cidrs.as_ref().filter(|v| !v.is_empty()) {
        Some(list) => list.clone(),
        None => spec.pod_cidr.iter().filter(|c| !c.is_empty()).cloned().collect(),
    }
}

/// What the controller knows: the pool, each node's blocks, and nodes waiting for one.
struct State {
    pool: Allocator,
    held: HashMap<String, Vec<String>>,
    waiting: BTreeSet<String>,
    /// Waiting nodes already told the pool is empty (one event each, not one per pass).
    told: BTreeSet<String>,
}

impl State {
    fn new(config: &Config) -> Result<State> {
        Ok(State {
            pool: Allocator::new(&config.cluster_cidr, config.node_mask_size)?,
            held: HashMap::new(),
            waiting: BTreeSet::new(),
            told: BTreeSet::new(),
        })
    }

    /// Takes in a node as seen now.
    fn observe(&mut self, node: &Node) {
        let name = node.name_any();
        let cidrs = cidrs_of(node);
        if cidrs.is_empty() {
            if !self.held.contains_key(&name) {
                self.waiting.insert(name);
            }
            return;
        }
        self.waiting.remove(&name);
        self.told.remove(&name);
        if self.held.get(&name) != Some(&cidrs) {
            if let Some(old) = self.held.remove(&name) {
                old.iter().for_each(|c| self.pool.release(c));
            }
            cidrs.iter().for_each(|c| {
                self.pool.occupy(c);
            });
            self.held.insert(name, cidrs);
        }
    }

    fn forget(&mut self, node: &Node) {
        let name = node.name_any();
        self.waiting.remove(&name);
        self.told.remove(&name);
        if let Some(old) = self.held.remove(&name) {
            old.iter().for_each(|c| self.pool.release(c));
        }
    }
}

/// Runs the controller until `shutdown` turns true.
pub async fn run(client: Client, informers: Informers, config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let mut state = State::new(&config)?;
    let nodes: Api<Node> = Api::all(client.clone());
    let recorder = Recorder::new(client, Reporter { controller: "cidrAllocator".into(), instance: None });
    let mut events = informers.nodes.subscribe();
    let mut synced = false;
    let stopped = crate::support::stopped(shutdown);
    tokio::pin!(stopped);
    loop {
        let event = tokio::select! {
            _ = &mut stopped => return Ok(()),
            event = events.recv() => event,
        };
        let Some(event) = event else { return Ok(()) };
        match event {
            WatchEvent::Init => {
                state = State::new(&config)?;
                synced = false;
            }
            WatchEvent::InitApply(node) => state.observe(&node),
            WatchEvent::InitDone => synced = true,
            WatchEvent::Apply(node) => state.observe(&node),
            WatchEvent::Delete(node) => state.forget(&node),
        }
        if synced {
            assign_waiting(&mut state, &nodes, &recorder).await;
        }
    }
}

/// Gives every waiting node a block; the ones left without stay waiting for a block to free.
async fn assign_waiting(state: &mut State, nodes: &Api<Node>, recorder: &Recorder) {
    let mut unplaced = Vec::new();
    while let Some(name) = state.waiting.pop_first() {
        let Some(cidr) = state.pool.allocate() else {
            unplaced.push(name.clone());
            if !state.told.insert(name.clone()) {
                continue;
            }
            tracing::warn!(node = %name, "no pod CIDR left in the cluster CIDR");
            let reference = ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(name.clone()),
                uid: Some(name.clone()),
                ..Default::default()
            };
            let event = Event {
                type_: EventType::Normal,
                reason: "CIDRNotAvailable".into(),
                note: Some(format!("Node {name} status is now: CIDRNotAvailable")),
                action: "CIDRAssignmentFailed".into(),
                secondary: None,
            };
            if let Err(e) = recorder.publish(&event, &reference).await {
                tracing::debug!("recording CIDRNotAvailable: {e}");
            }
            continue;
        };
        let patch = json!({ "spec": { "podCIDR": cidr, "podCIDRs": [cidr] } });
        match nodes.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await {
            Ok(node) => {
                tracing::info!(node = %name, %cidr, "assigned the node's pod CIDR");
                state.pool.release(&cidr);
                state.observe(&node);
            }
            Err(e) => {
                state.pool.release(&cidr);
                if !crate::support::is_not_found(&e) {
                    tracing::warn!(node = %name, "cannot assign a pod CIDR: {e}");
                    state.waiting.insert(name);
                    state.waiting.extend(unplaced);
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    return;
                }
            }
        }
    }
    state.waiting.extend(unplaced);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, cidr: Option<&str>) -> Node {
        serde_json::from_value(json!({
            "metadata": { "name": name },
            "spec": cidr.map(|c| json!({ "podCIDR": c, "podCIDRs": [c] })).unwrap_or(json!({})),
        }))
        .unwrap()
    }

    #[test]
    fn blocks_come_in_order_and_skip_used_ones() {
        let mut a = Allocator::new("10.42.0.0/16", 24).unwrap();
        assert!(a.occupy("10.42.1.0/24"));
        assert_eq!(a.allocate().as_deref(), Some("10.42.0.0/24"));
        assert_eq!(a.allocate().as_deref(), Some("10.42.2.0/24"));
        a.release("10.42.0.0/24");
        // Round-robin: a released block waits for its turn.
        assert_eq!(a.allocate().as_deref(), Some("10.42.3.0/24"));
    }

    #[test]
    fn outside_and_odd_sized_cidrs() {
        let mut a = Allocator::new("10.42.0.0/22", 24).unwrap();
        assert!(!a.occupy("10.244.0.0/24"), "outside the cluster CIDR");
        assert!(a.occupy("10.42.0.0/23"), "a bigger block covers two");
        assert!(a.occupy("10.42.2.128/25"), "a smaller one takes its whole block");
        assert_eq!(a.allocate().as_deref(), Some("10.42.3.0/24"));
        assert_eq!(a.allocate(), None, "the pool is empty");
        assert!(!a.occupy("not a cidr"));
    }

    #[test]
    fn bad_configuration_is_refused_with_a_reason() {
        assert!(Allocator::new("10.42.0.0", 24).unwrap_err().to_string().contains("not an IPv4 CIDR"));
        assert!(Allocator::new("10.42.0.0/16", 8).unwrap_err().to_string().contains("mask size"));
        assert!(Allocator::new("10.0.0.0/8", 30).unwrap_err().to_string().contains("more than 65536"));
    }

    #[test]
    fn state_tracks_nodes_and_frees_blocks_of_deleted_ones() {
        let config = Config { cluster_cidr: "10.42.0.0/23".into(), node_mask_size: 24 };
        let mut s = State::new(&config).unwrap();
        s.observe(&node("a", Some("10.42.0.0/24")));
        s.observe(&node("sim", Some("10.244.0.0/24")));
        s.observe(&node("b", None));
        assert_eq!(s.waiting.iter().cloned().collect::<Vec<_>>(), ["b"]);
        assert_eq!(s.pool.allocate().as_deref(), Some("10.42.1.0/24"));
        assert_eq!(s.pool.allocate(), None);
        s.pool.release("10.42.1.0/24");
        s.forget(&node("a", Some("10.42.0.0/24")));
        assert_eq!(s.pool.allocate().as_deref(), Some("10.42.0.0/24"));
        // A node seen again with the same block changes nothing.
        s.observe(&node("b", Some("10.42.0.0/24")));
        s.observe(&node("b", Some("10.42.0.0/24")));
        assert!(s.waiting.is_empty());
    }
}
