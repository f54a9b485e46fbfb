//! The node's pod network as the kubelet sets it up: the CNI network config the CRI plugin uses
//! for every sandbox (bridge + host-local from the node's pod CIDR, portmap for hostPort), and
//! the egress guard that keeps traffic for cluster ranges from ever leaving through the uplink.

use anyhow::{Context, Result, bail};
use serde_json::json;
use std::net::Ipv4Addr;
use std::path::Path;

/// An IPv4 CIDR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// Network address.
    pub addr: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let (a, p) = s.split_once('/').with_context(|| format!("{s:?} is not a CIDR (like 10.42.0.0/24)"))?;
        let addr: Ipv4Addr = a.parse().with_context(|| format!("{s:?} is not an IPv4 CIDR"))?;
        let prefix: u8 = p.parse().with_context(|| format!("{s:?} has a bad prefix length"))?;
        if prefix > 32 {
            bail!("{s:?} has a prefix length over 32");
        }
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
        Ok(Cidr { addr: Ipv4Addr::from(u32::from(addr) & mask), prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cidr {
    /// The first host address: the bridge's (gateway's) address.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) + 1)
    }
}

/// The CNI network config list for a node: one bridge, addresses from `pod_cidr`, a default route
/// through the bridge, hairpin so a pod reaches itself through a Service, portmap for hostPort.
pub fn conflist(network: &str, bridge: &str, pod_cidr: Cidr, ipam_dir: &Path) -> serde_json::Value {
    json!({
        "cniVersion": "1.0.0",
        "name": network,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": pod_cidr.to_string(), "gateway": pod_cidr.gateway().to_string() }]],
                    "routes": [{ "dst": "0.0.0.0/0" }],
                    "dataDir": ipam_dir.display().to_string(),
                }
            },
            { "type": "portmap", "capabilities": { "portMappings": true }, "snat": true }
        ]
    })
}

/// Writes the conflist into `conf_dir` (atomically: the CRI plugin watches the directory).
pub fn write_conflist(conf_dir: &Path, config: &serde_json::Value) -> Result<()> {
    std::fs::create_dir_all(conf_dir)?;
    let tmp = conf_dir.join(".10-rudder.conflist.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(config)?)?;
    std::fs::rename(&tmp, conf_dir.join("10-rudder.conflist"))?;
    Ok(())
}

/// Interfaces that carry the default route (the uplinks), from `/proc/net/route`.
pub fn uplinks() -> Vec<String> {
    let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let mut out: Vec<String> = routes
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 7 && f[1] == "00000000" && f[7] == "00000000").then(|| f[0].to_string())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The nftables ruleset of the egress guard: packets for the cluster ranges that would leave
/// through an uplink are dropped in postrouting (after any Service DNAT, so correctly translated
/// traffic passes), except for other nodes' pod CIDRs this node routes to them (the `routed`
/// set, kept by [`crate::routes`]). With the node's pod CIDR known, pod traffic to anything
/// outside the cluster ranges (the host's network, the API server, the internet) leaves with the
/// node's address (masquerade, as flannel does); traffic between pods keeps its source.
pub fn guard_ruleset(table: &str, uplinks: &[String], ranges: &[Cidr], pod_cidr: Option<Cidr>) -> String {
    let ifs = uplinks.iter().map(|i| format!("\"{i}\"")).collect::<Vec<_>>().join(", ");
    let nets = ranges.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", ");
    let mut s = format!("table inet {table} {{}}\ndelete table inet {table}\ntable inet {table} {{\n");
    s.push_str("  set routed {\n    type ipv4_addr; flags interval;\n  }\n");
    s.push_str("  chain post {\n    type filter hook postrouting priority 100; policy accept;\n");
    if !ifs.is_empty() && !nets.is_empty() {
        s.push_str(&format!("    oifname {{ {ifs} }} ip daddr {{ {nets} }} ip daddr != @routed counter drop\n"));
    }
    if let Some(pods) = pod_cidr.filter(|_| !nets.is_empty()) {
        s.push_str("  }\n  chain pods_out {\n    type nat hook postrouting priority srcnat; policy accept;\n");
        s.push_str(&format!("    ip saddr {pods} ip daddr != {{ {nets} }} masquerade\n"));
    }
    s.push_str("  }\n}\n");
    s
}

/// Applies an nftables ruleset with `nft -f -`.
pub fn nft_apply(ruleset: &str) -> Result<()> {
    use std::io::Write;
    let mut child = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("cannot run nft (apt-get install -y nftables)")?;
    child.stdin.take().expect("piped").write_all(ruleset.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("nft refused the ruleset: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Removes an nftables table if present.
pub fn nft_delete_table(table: &str) {
    let _ = std::process::Command::new("nft")
        .args(["delete", "table", "inet", table])
        .stderr(std::process::Stdio::null())
        .status();
}

/// A short stable suffix for names derived from `seed` (bridges are limited to 15 bytes).
pub fn short_hash(seed: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in seed.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")[..6].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_normalise() {
        let c: Cidr = "10.42.3.7/24".parse().unwrap();
        assert_eq!(c.to_string(), "10.42.3.0/24");
        assert_eq!(c.gateway(), Ipv4Addr::new(10, 42, 3, 1));
        assert!("10.42.0.0".parse::<Cidr>().is_err());
        assert!("10.42.0.0/33".parse::<Cidr>().is_err());
    }

    #[test]
    fn conflist_uses_the_pod_cidr_and_portmap() {
        let c = conflist("rudder-abc", "rudder-abc", "10.42.5.0/24".parse().unwrap(), Path::new("/d/ipam"));
        assert_eq!(c["plugins"][0]["ipam"]["ranges"][0][0]["subnet"], "10.42.5.0/24");
        assert_eq!(c["plugins"][0]["ipam"]["ranges"][0][0]["gateway"], "10.42.5.1");
        assert_eq!(c["plugins"][0]["bridge"], "rudder-abc");
        assert_eq!(c["plugins"][1]["type"], "portmap");
    }

    #[test]
    fn nft_accepts_the_guard() {
        let root = std::fs::read_to_string("/proc/self/status")
            .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")));
        if !root || std::process::Command::new("nft").arg("--version").output().is_err() {
            eprintln!("skipped: needs root and nft");
            return;
        }
        let table = format!("rudder_guard_test_{}", std::process::id());
        let ranges = ["10.42.0.0/16".parse().unwrap(), "10.43.0.0/16".parse().unwrap()];
        let ruleset = guard_ruleset(&table, &["eth0".into()], &ranges, Some("10.42.7.0/24".parse().unwrap()));
        let update = crate::routes::guard_set_update(
            &table,
            &[("10.42.8.0/24".to_string(), "192.0.2.3".parse().unwrap())].into(),
        );
        // Checked only (`-c`): nothing is installed.
        let script = format!("{ruleset}{update}delete table inet {table}\n");
        let mut child = std::process::Command::new("nft")
            .args(["-c", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), script.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}\n{script}", String::from_utf8_lossy(&out.stderr));
    }

    #[test]
    fn guard_drops_cluster_ranges_on_uplinks_only() {
        let r = guard_ruleset(
            "rudder_guard_x",
            &["eth0".into()],
            &["10.42.0.0/16".parse().unwrap(), "10.43.0.0/16".parse().unwrap()],
            Some("10.42.7.0/24".parse().unwrap()),
        );
        assert!(r.contains("hook postrouting priority 100"));
        assert!(r.contains(
            r#"oifname { "eth0" } ip daddr { 10.42.0.0/16, 10.43.0.0/16 } ip daddr != @routed counter drop"#
        ));
        assert!(r.starts_with("table inet rudder_guard_x {}\ndelete table inet rudder_guard_x\n"));
        assert!(r.contains("ip saddr 10.42.7.0/24 ip daddr != { 10.42.0.0/16, 10.43.0.0/16 } masquerade"), "{r}");
        let without = guard_ruleset("g", &[], &["10.42.0.0/16".parse().unwrap()], None);
        assert!(!without.contains("masquerade") && !without.contains("drop"), "{without}");
    }
}
