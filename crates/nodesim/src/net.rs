//! Addresses of simulated nodes and their pods: a node InternalIP, a /24 pod CIDR per node and a
//! per-node pod IP allocator. Pure logic, no I/O.

use std::collections::HashMap;
use std::net::Ipv4Addr;

/// The most nodes one engine can address: 3072 pod /24s in 10.244.0.0–10.255.255.0, then 4096
/// in 172.16.0.0/12.
pub const MAX_NODES: usize = 3072 + 4096;

/// The node's InternalIP: 10.200.0.1 upwards (10.200.0.0/16). Nothing is ever routed there.
pub fn node_ip(index: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 200, 0, 1)) + index as u32)
}

/// The node's pod CIDR, a /24: `10.244.<index>.0/24` for the first 256 nodes, continuing through
/// 10.255.255.0/24 and then 172.16.0.0/12. `None` past [`MAX_NODES`].
pub fn pod_cidr(index: usize) -> Option<PodCidr> {
    let base = if index < 3072 {
        u32::from(Ipv4Addr::new(10, 244, 0, 0)) + ((index as u32) << 8)
    } else if index < MAX_NODES {
        u32::from(Ipv4Addr::new(172, 16, 0, 0)) + (((index - 3072) as u32) << 8)
    } else {
        return None;
    };
    Some(PodCidr { network: Ipv4Addr::from(base) })
}

/// A /24 pod network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodCidr {
    /// The network address (last octet 0).
    pub network: Ipv4Addr,
}

impl PodCidr {
    /// Parses `a.b.c.0/24`; other prefix lengths are refused.
    pub fn parse(text: &str) -> Option<PodCidr> {
        let (addr, len) = text.split_once('/')?;
        let addr: Ipv4Addr = addr.parse().ok()?;
        if len != "24" || addr.octets()[3] != 0 {
            return None;
        }
        Some(PodCidr { network: addr })
    }

    /// The address with host part `host`.
    pub fn host(&self, host: u8) -> Ipv4Addr {
        let [a, b, c, _] = self.network.octets();
        Ipv4Addr::new(a, b, c, host)
    }

    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        ip.octets()[..3] == self.network.octets()[..3]
    }
}

impl std::fmt::Display for PodCidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/24", self.network)
    }
}

/// First and last host numbers handed to pods: .1 is the bridge's gateway, .255 broadcast.
const FIRST_HOST: u8 = 2;
const LAST_HOST: u8 = 254;

/// Pod IPs of one node, like a host-local IPAM: each pod (by uid) keeps its address until
/// released; new addresses are handed out round-robin so a freed one is not reused at once.
#[derive(Debug)]
pub struct IpAllocator {
    cidr: PodCidr,
    used: [bool; 256],
    by_pod: HashMap<String, u8>,
    next: u8,
}

impl IpAllocator {
    /// An empty allocator over `cidr`.
    pub fn new(cidr: PodCidr) -> IpAllocator {
        IpAllocator { cidr, used: [false; 256], by_pod: HashMap::new(), next: FIRST_HOST }
    }

    /// The network this allocator hands addresses from.
    pub fn cidr(&self) -> PodCidr {
        self.cidr
    }

    /// Records that `pod` already holds `ip` (seen on restart). Returns false when the address is
    /// outside the network or held by another pod.
    pub fn reserve(&mut self, pod: &str, ip: Ipv4Addr) -> bool {
        if !self.cidr.contains(ip) {
            return false;
        }
        let host = ip.octets()[3];
        if !(FIRST_HOST..=LAST_HOST).contains(&host) {
            return false;
        }
        match self.by_pod.get(pod) {
            Some(h) if *h == host => return true,
            Some(_) => return false,
            None => {}
        }
        if self.used[host as usize] {
            return false;
        }
        self.used[host as usize] = true;
        self.by_pod.insert(pod.to_string(), host);
        true
    }

    /// The address of `pod`, allocating one if it has none. `None` when the network is full.
    pub fn allocate(&mut self, pod: &str) -> Option<Ipv4Addr> {
        if let Some(h) = self.by_pod.get(pod) {
            return Some(self.cidr.host(*h));
        }
        let span = (LAST_HOST - FIRST_HOST) as usize + 1;
        for step in 0..span {
            let host = FIRST_HOST + ((self.next - FIRST_HOST) as usize + step).rem_euclid(span) as u8;
            if !self.used[host as usize] {
                self.used[host as usize] = true;
                self.by_pod.insert(pod.to_string(), host);
                self.next = if host == LAST_HOST { FIRST_HOST } else { host + 1 };
                return Some(self.cidr.host(host));
            }
        }
        None
    }

    /// Frees the address of `pod`, if it has one.
    pub fn release(&mut self, pod: &str) {
        if let Some(h) = self.by_pod.remove(pod) {
            self.used[h as usize] = false;
        }
    }

    /// How many addresses are held.
    pub fn in_use(&self) -> usize {
        self.by_pod.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_are_distinct_and_private() {
        assert_eq!(pod_cidr(0).unwrap().to_string(), "10.244.0.0/24");
        assert_eq!(pod_cidr(1).unwrap().to_string(), "10.244.1.0/24");
        assert_eq!(pod_cidr(256).unwrap().to_string(), "10.245.0.0/24");
        assert_eq!(pod_cidr(3071).unwrap().to_string(), "10.255.255.0/24");
        assert_eq!(pod_cidr(3072).unwrap().to_string(), "172.16.0.0/24");
        assert_eq!(pod_cidr(MAX_NODES - 1).unwrap().to_string(), "172.31.255.0/24");
        assert!(pod_cidr(MAX_NODES).is_none());
        let mut seen = std::collections::HashSet::new();
        for i in 0..MAX_NODES {
            assert!(seen.insert(pod_cidr(i).unwrap().network), "node {i}");
        }
        assert_eq!(node_ip(0), Ipv4Addr::new(10, 200, 0, 1));
        assert_eq!(node_ip(255), Ipv4Addr::new(10, 200, 1, 0));
        assert_eq!(node_ip(MAX_NODES - 1).octets()[..2], [10, 200]);
    }

    #[test]
    fn parse_round_trips() {
        let c = pod_cidr(7).unwrap();
        assert_eq!(PodCidr::parse(&c.to_string()), Some(c));
        assert_eq!(PodCidr::parse("10.244.7.0/16"), None);
        assert_eq!(PodCidr::parse("10.244.7.5/24"), None);
        assert_eq!(PodCidr::parse("nonsense"), None);
    }

    #[test]
    fn allocation_is_stable_unique_and_round_robin() {
        let cidr = pod_cidr(3).unwrap();
        let mut a = IpAllocator::new(cidr);
        let x = a.allocate("x").unwrap();
        assert_eq!(x, Ipv4Addr::new(10, 244, 3, 2));
        assert_eq!(a.allocate("x"), Some(x), "same pod, same address");
        let y = a.allocate("y").unwrap();
        assert_ne!(x, y);
        a.release("x");
        let z = a.allocate("z").unwrap();
        assert_ne!(z, x, "a freed address is not reused at once");
        assert!(cidr.contains(z));
        assert_eq!(a.in_use(), 2);
    }

    #[test]
    fn network_fills_up_and_wraps() {
        let mut a = IpAllocator::new(pod_cidr(0).unwrap());
        let mut all = std::collections::HashSet::new();
        for i in 0..253 {
            let ip = a.allocate(&format!("p{i}")).unwrap();
            assert!((2..=254).contains(&ip.octets()[3]));
            assert!(all.insert(ip));
        }
        assert_eq!(a.allocate("one-too-many"), None);
        a.release("p10");
        assert_eq!(a.allocate("again"), Some(Ipv4Addr::new(10, 244, 0, 12)));
    }

    #[test]
    fn reservations_are_honoured() {
        let mut a = IpAllocator::new(pod_cidr(1).unwrap());
        assert!(a.reserve("old", Ipv4Addr::new(10, 244, 1, 2)));
        assert!(a.reserve("old", Ipv4Addr::new(10, 244, 1, 2)), "idempotent");
        assert!(!a.reserve("other", Ipv4Addr::new(10, 244, 1, 2)), "taken");
        assert!(!a.reserve("foreign", Ipv4Addr::new(10, 244, 9, 2)), "outside the network");
        assert!(!a.reserve("gw", Ipv4Addr::new(10, 244, 1, 1)), "the gateway");
        assert_eq!(a.allocate("new"), Some(Ipv4Addr::new(10, 244, 1, 3)));
    }
}
