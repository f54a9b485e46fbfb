//! The node-local address the DNS server listens on: the cluster DNS IP (e.g. `10.43.0.10/32`)
//! on a dummy link the node owns, so pods reach it through their default route to the host and
//! the packets are delivered locally (they never leave the node).
//!
//! Uses `ip` (iproute2) and needs root (CAP_NET_ADMIN).

use anyhow::{Context, Result, bail};
use std::net::IpAddr;
use std::process::Command;

/// Longest interface name Linux accepts (IFNAMSIZ − 1).
const MAX_LINK_NAME: usize = 15;

/// A dummy link name for `node`: `rdns-<8 hex digits of a hash of the name>`.
pub fn link_name_for(node: &str) -> String {
    // FNV-1a: stable across runs and builds, unlike std's hasher.
    let mut hash: u32 = 0x811c_9dc5;
    for b in node.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("rdns-{hash:08x}")
}

fn check_link_name(link: &str) -> Result<()> {
    let ok = !link.is_empty()
        && link.len() <= MAX_LINK_NAME
        && link.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !link.starts_with('-')
        && link != "."
        && link != "..";
    if !ok {
        bail!("invalid link name {link:?} (1–{MAX_LINK_NAME} characters of [A-Za-z0-9._-])");
    }
    Ok(())
}

fn ip_cmd(args: &[&str]) -> Result<std::process::Output> {
    Command::new("ip").args(args).output().with_context(|| format!("cannot run `ip {}`", args.join(" ")))
}

fn run_ip(args: &[&str]) -> Result<()> {
    let out = ip_cmd(args)?;
    if !out.status.success() {
        bail!("`ip {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn link_exists(link: &str) -> Result<bool> {
    Ok(ip_cmd(&["link", "show", "dev", link])?.status.success())
}

fn prefix(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(_) => format!("{ip}/32"),
        IpAddr::V6(_) => format!("{ip}/128"),
    }
}

/// The addresses on `link` (empty when it does not exist).
pub fn link_addresses(link: &str) -> Result<Vec<IpAddr>> {
    check_link_name(link)?;
    if !link_exists(link)? {
        return Ok(Vec::new());
    }
    let out = ip_cmd(&["-o", "addr", "show", "dev", link])?;
    if !out.status.success() {
        bail!("`ip -o addr show dev {link}` failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(parse_addresses(&String::from_utf8_lossy(&out.stdout)))
}

fn is_link_local(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
}

/// The addresses of `ip -o addr show` output (`2: eth0    inet 10.0.0.2/24 brd … scope …`).
fn parse_addresses(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            fields.find(|f| *f == "inet" || *f == "inet6")?;
            fields.next()?.split('/').next()?.parse().ok()
        })
        .collect()
}

/// Makes sure link `link` exists, is up and holds `ip` as a host address (/32 or /128).
/// The link is a dummy one, or, on kernels without the dummy driver ("Unknown device type"),
/// a bridge without ports (local delivery works the same). Idempotent. Fails when `link`
/// exists and is neither.
pub fn ensure_local_address(link: &str, ip: IpAddr) -> Result<()> {
    check_link_name(link)?;
    if link_exists(link)? {
        let out = ip_cmd(&["-d", "-o", "link", "show", "dev", link])?;
        if !String::from_utf8_lossy(&out.stdout).split_whitespace().any(|w| w == "dummy" || w == "bridge") {
            bail!("link {link} exists and is neither a dummy link nor a bridge");
        }
    } else if let Err(dummy) = run_ip(&["link", "add", link, "type", "dummy"]) {
        run_ip(&["link", "add", link, "type", "bridge"]).with_context(|| format!("no dummy link either: {dummy:#}"))?;
    }
    run_ip(&["link", "set", "dev", link, "up"])?;
    if !link_addresses(link)?.contains(&ip) {
        run_ip(&["addr", "add", &prefix(ip), "dev", link])?;
    }
    Ok(())
}

/// Removes `ip` from `link`, and the link itself once it holds no other address (IPv6
/// link-local ones, which the kernel adds on its own, do not count). Nothing to remove is not
/// an error.
pub fn remove_local_address(link: &str, ip: IpAddr) -> Result<()> {
    check_link_name(link)?;
    if !link_exists(link)? {
        return Ok(());
    }
    if link_addresses(link)?.contains(&ip) {
        run_ip(&["addr", "del", &prefix(ip), "dev", link])?;
    }
    if link_addresses(link)?.iter().all(is_link_local) {
        run_ip(&["link", "del", "dev", link])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_root() -> bool {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
            .unwrap_or(false)
            && Command::new("ip").arg("-V").output().is_ok()
    }

    #[test]
    fn link_names_are_stable_and_short() {
        let a = link_name_for("node-1");
        assert_eq!(a, link_name_for("node-1"));
        assert_ne!(a, link_name_for("node-2"));
        assert!(a.starts_with("rdns-") && a.len() == 13, "{a}");
        assert!(check_link_name(&a).is_ok());
        for bad in ["", "a b", "waytoolonglinkname", "-x", "x;rm", ".."] {
            assert!(check_link_name(bad).is_err(), "{bad:?}");
        }
        assert!(ensure_local_address("bad name", "10.43.255.253".parse().unwrap()).is_err());
    }

    #[test]
    fn parses_ip_addr_output() {
        let text = "5: rdns-x    inet 10.43.255.253/32 scope global rdns-x\\       valid_lft forever\n\
                    5: rdns-x    inet6 fe80::1/64 scope link \\       valid_lft forever\n";
        let addrs = parse_addresses(text);
        assert_eq!(addrs, vec!["10.43.255.253".parse::<IpAddr>().unwrap(), "fe80::1".parse().unwrap()]);
        assert!(!is_link_local(&addrs[0]) && is_link_local(&addrs[1]));
    }

    /// Adds a test address on a link of its own, serves DNS on it, and removes both.
    #[tokio::test]
    async fn local_address_on_a_dummy_link() {
        if !is_root() {
            eprintln!("skipped: needs root and iproute2");
            return;
        }
        let link = format!("rdnst{:05x}", std::process::id() & 0xfffff);
        // An address this test owns (not the product's 10.43.0.10).
        let ip: IpAddr = "10.43.255.253".parse().unwrap();
        let _ = remove_local_address(&link, ip);
        let result = async {
            ensure_local_address(&link, ip)?;
            ensure_local_address(&link, ip)?; // idempotent
            let addrs: Vec<IpAddr> = link_addresses(&link)?.into_iter().filter(|a| !is_link_local(a)).collect();
            anyhow::ensure!(addrs == vec![ip], "addresses: {addrs:?}");
            // The server binds it and answers: local delivery, never leaves the host.
            let mut b = crate::records::IndexBuilder::new("cluster.local", crate::records::PodMode::Insecure);
            b.namespace("default");
            let (_tx, rx) = tokio::sync::watch::channel(std::sync::Arc::new(b.build(1)));
            let server = crate::server::DnsServer::start(
                &[std::net::SocketAddr::new(ip, 0)],
                rx,
                crate::server::Forwarder::new(vec![], std::time::Duration::from_secs(1)),
            )
            .await?;
            let addr = server.local_addrs()[0];
            let sock = tokio::net::UdpSocket::bind("0.0.0.0:0").await?;
            // dns-version.cluster.local TXT, id 0x1234.
            let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
            for label in ["dns-version", "cluster", "local"] {
                q.push(label.len() as u8);
                q.extend_from_slice(label.as_bytes());
            }
            q.extend_from_slice(&[0, 0, 16, 0, 1]);
            sock.send_to(&q, addr).await?;
            let mut buf = [0u8; 512];
            let (n, from) = tokio::time::timeout(std::time::Duration::from_secs(3), sock.recv_from(&mut buf)).await??;
            anyhow::ensure!(from == addr, "answer from {from}");
            let m = hickory_proto::op::Message::from_vec(&buf[..n])?;
            anyhow::ensure!(m.metadata.id == 0x1234 && m.answers.len() == 1, "answer: {m:?}");
            anyhow::ensure!(m.answers[0].data.to_string() == "1.1.0", "answer: {}", m.answers[0].data);
            server.shutdown().await?;
            anyhow::Ok(())
        }
        .await;
        remove_local_address(&link, ip).unwrap();
        assert!(!link_exists(&link).unwrap(), "link {link} left behind");
        result.unwrap();
    }
}
