//! The cluster's DNS records: a pure, immutable index built from Services, EndpointSlices
//! (discovery.k8s.io/v1), Namespaces and (optionally) Pods, answering queries the way
//! CoreDNS's `kubernetes` plugin does for the
//! [Kubernetes DNS-Based Service Discovery specification](https://github.com/kubernetes/dns/blob/master/docs/specification.md):
//!
//! - `<svc>.<ns>.svc.<domain>`: A/AAAA of the ClusterIP(s); for a headless service the
//!   addresses of its ready endpoints; an ExternalName service is a CNAME to its target.
//! - `<host>.<svc>.<ns>.svc.<domain>`: A/AAAA of an endpoint, where `<host>` is the endpoint's
//!   `hostname` (StatefulSet pods) or its address with dashes (`10-42-0-5`).
//! - `_<port>._<proto>.<svc>.<ns>.svc.<domain>`: SRV to the service name (ClusterIP) or to each
//!   endpoint's name (headless); the service name itself carries SRV records of every port.
//! - PTR (`in-addr.arpa` / `ip6.arpa`) for ClusterIPs and endpoint addresses.
//! - `<a-b-c-d>.<ns>.pod.<domain>`: A of a pod address (`pods insecure`, CoreDNS's default in
//!   Kubernetes, or `pods verified`: only addresses of existing pods of that namespace).
//! - `dns-version.<domain>` TXT `1.1.0`, SOA and NS at the apex.
//!
//! Names that do not exist are NXDOMAIN; names that exist (including empty non-terminals like
//! `<ns>.svc.<domain>` or `_tcp.<svc>.<ns>.svc.<domain>`) without records of the asked type are
//! NODATA (NOERROR, no answers). Both carry the zone's SOA in the authority section. Every
//! record has TTL [`TTL`] (CoreDNS's default). Reverse names that are not in the index are not
//! ours: like CoreDNS's default `fallthrough in-addr.arpa ip6.arpa` they are forwarded.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// TTL of every record, positive and negative (CoreDNS's kubernetes plugin default).
pub const TTL: u32 = 5;
/// The label of EndpointSlices naming their Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// What `dns-version.<domain>` answers (the specification's version).
pub const SCHEMA_VERSION: &str = "1.1.0";
/// Most CNAMEs followed inside the zone for one answer.
const MAX_CNAME_CHAIN: usize = 8;

/// How `<a-b-c-d>.<ns>.pod.<domain>` names are answered (CoreDNS's `pods` option).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PodMode {
    /// No pod records: every such name is NXDOMAIN.
    Disabled,
    /// Any well-formed address in an existing namespace answers (CoreDNS's default in
    /// Kubernetes' Corefile, kube-dns's behaviour).
    #[default]
    Insecure,
    /// Only addresses of pods that exist in that namespace answer; needs the pods.
    Verified,
}

/// What a query gets from the index.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// The index is authoritative for the name: this is the answer.
    Answer(Answer),
    /// Not ours: ask the upstream resolvers.
    Forward,
}

/// An authoritative answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// NOERROR (with or without answers) or NXDOMAIN.
    pub code: ResponseCode,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The authority section (the zone's SOA for negative answers).
    pub authority: Vec<Record>,
    /// The additional section (addresses of SRV targets).
    pub additionals: Vec<Record>,
    /// A CNAME target outside the index whose records of the asked type the server may add
    /// from upstream (CoreDNS resolves ExternalName targets the same way).
    pub chase: Option<Name>,
}

impl Answer {
    fn empty(code: ResponseCode) -> Answer {
        Answer { code, answers: Vec::new(), authority: Vec::new(), additionals: Vec::new(), chase: None }
    }

    /// Whether this is NODATA: NOERROR without answers.
    pub fn is_nodata(&self) -> bool {
        self.code == ResponseCode::NoError && self.answers.is_empty()
    }
}

/// The records at one name.
#[derive(Debug, Default, Clone)]
struct Node {
    a: Vec<Ipv4Addr>,
    aaaa: Vec<Ipv6Addr>,
    cname: Option<Name>,
    /// (port, target); weights are computed per answer.
    srv: Vec<(u16, Name)>,
    txt: Vec<String>,
}

impl Node {
    fn add_ip(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(v4) => self.a.push(v4),
            IpAddr::V6(v6) => self.aaaa.push(v6),
        }
    }

    fn finish(&mut self) {
        self.a.sort_unstable();
        self.a.dedup();
        self.aaaa.sort_unstable();
        self.aaaa.dedup();
        self.srv.sort_by(|x, y| x.0.cmp(&y.0).then_with(|| x.1.cmp(&y.1)));
        self.srv.dedup();
    }
}

/// A service as the index needs it.
#[derive(Debug, Clone)]
enum Kind {
    /// ClusterIP, NodePort or LoadBalancer: its cluster IPs (none yet allocated: empty).
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`.
    Headless,
    /// `type: ExternalName` with its target.
    ExternalName(String),
}

#[derive(Debug, Clone)]
struct SvcInfo {
    kind: Kind,
    /// (name, lowercase protocol, port).
    ports: Vec<(String, String, u16)>,
    publish_not_ready: bool,
}

#[derive(Debug, Clone)]
struct EndpointInfo {
    ip: IpAddr,
    hostname: Option<String>,
    ready: bool,
}

#[derive(Debug, Clone)]
struct SliceInfo {
    endpoints: Vec<EndpointInfo>,
    ports: Vec<(String, String, u16)>,
}

/// Collects cluster objects, then [`IndexBuilder::build`]s an [`Index`].
#[derive(Debug)]
pub struct IndexBuilder {
    domain: String,
    pod_mode: PodMode,
    namespaces: HashSet<String>,
    services: HashMap<(String, String), SvcInfo>,
    slices: HashMap<(String, String), Vec<SliceInfo>>,
    pods: HashSet<(String, IpAddr)>,
}

impl IndexBuilder {
    /// A builder for zone `domain` (e.g. `cluster.local`; case and trailing dot ignored).
    pub fn new(domain: &str, pod_mode: PodMode) -> IndexBuilder {
        IndexBuilder {
            domain: normalize(domain),
            pod_mode,
            namespaces: HashSet::new(),
            services: HashMap::new(),
            slices: HashMap::new(),
            pods: HashSet::new(),
        }
    }

    /// Records that a namespace exists (`<ns>.svc.<domain>` and `<ns>.pod.<domain>` are NODATA
    /// rather than NXDOMAIN). Namespaces of services and pods are added on their own.
    pub fn namespace(&mut self, name: &str) -> &mut Self {
        if !name.is_empty() {
            self.namespaces.insert(name.to_ascii_lowercase());
        }
        self
    }

    /// Adds a Service; one without a name or namespace is ignored.
    pub fn service(&mut self, svc: &Service) -> &mut Self {
        let (Some(name), Some(ns)) = (svc.metadata.name.as_deref(), svc.metadata.namespace.as_deref()) else {
            return self;
        };
        let Some(spec) = svc.spec.as_ref() else { return self };
        let kind = if spec.type_.as_deref() == Some("ExternalName") {
            Kind::ExternalName(spec.external_name.clone().unwrap_or_default())
        } else if spec.cluster_ip.as_deref() == Some("None") {
            Kind::Headless
        } else {
            let mut ips: Vec<IpAddr> =
                spec.cluster_ips.iter().flatten().filter_map(|ip| ip.parse::<IpAddr>().ok()).collect();
            if ips.is_empty() {
                ips.extend(spec.cluster_ip.as_deref().and_then(|ip| ip.parse::<IpAddr>().ok()));
            }
            Kind::ClusterIp(ips)
        };
        let ports = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                let port = u16::try_from(p.port).ok()?;
                let proto = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
                Some((p.name.clone().unwrap_or_default().to_ascii_lowercase(), proto, port))
            })
            .collect();
        let info = SvcInfo { kind, ports, publish_not_ready: spec.publish_not_ready_addresses.unwrap_or(false) };
        self.namespace(ns);
        self.services.insert((ns.to_ascii_lowercase(), name.to_ascii_lowercase()), info);
        self
    }

    /// Adds an EndpointSlice; one without the `kubernetes.io/service-name` label is ignored, and
    /// so are FQDN slices.
    pub fn endpoint_slice(&mut self, slice: &EndpointSlice) -> &mut Self {
        let Some(ns) = slice.metadata.namespace.as_deref() else { return self };
        let Some(svc) = slice.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)) else {
            return self;
        };
        if slice.address_type == "FQDN" {
            return self;
        }
        let endpoints = slice
            .endpoints
            .iter()
            .flat_map(|ep| {
                // "nil should be interpreted as ready" (the API's documentation of `ready`).
                let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                let hostname = ep.hostname.clone().filter(|h| !h.is_empty()).map(|h| h.to_ascii_lowercase());
                ep.addresses.iter().filter_map(move |a| {
                    let ip = a.parse::<IpAddr>().ok()?;
                    Some(EndpointInfo { ip, hostname: hostname.clone(), ready })
                })
            })
            .collect();
        let ports = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                let port = u16::try_from(p.port?).ok()?;
                let proto = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
                Some((p.name.clone().unwrap_or_default().to_ascii_lowercase(), proto, port))
            })
            .collect();
        self.slices
            .entry((ns.to_ascii_lowercase(), svc.to_ascii_lowercase()))
            .or_default()
            .push(SliceInfo { endpoints, ports });
        self
    }

    /// Adds a Pod's addresses (used by [`PodMode::Verified`]).
    pub fn pod(&mut self, pod: &Pod) -> &mut Self {
        let Some(ns) = pod.metadata.namespace.as_deref() else { return self };
        let Some(status) = pod.status.as_ref() else { return self };
        let ips = status.pod_ips.iter().flatten().map(|p| p.ip.as_str()).chain(status.pod_ip.as_deref());
        for ip in ips {
            if let Ok(ip) = ip.parse::<IpAddr>() {
                self.pods.insert((ns.to_ascii_lowercase(), ip));
            }
        }
        self.namespace(ns);
        self
    }

    /// The index; `serial` is the SOA serial (CoreDNS uses the time of the last change).
    pub fn build(self, serial: u32) -> Index {
        let domain = self.domain;
        let domain_name = fqdn(&domain).unwrap_or_else(Name::root);
        let mut nodes: HashMap<String, Node> = HashMap::new();
        let mut ptr: HashMap<String, Vec<Name>> = HashMap::new();

        // Apex, `svc`, `pod` and the schema version.
        nodes.entry(domain.clone()).or_default();
        nodes.entry(join(&["svc", &domain])).or_default();
        nodes.entry(join(&["pod", &domain])).or_default();
        nodes.entry(join(&["dns-version", &domain])).or_default().txt.push(SCHEMA_VERSION.to_string());
        for ns in &self.namespaces {
            nodes.entry(join(&[ns, "svc", &domain])).or_default();
        }

        for ((ns, name), svc) in &self.services {
            let svc_key = join(&[name, ns, "svc", &domain]);
            let Some(svc_name) = fqdn(&svc_key) else { continue };
            nodes.entry(svc_key.clone()).or_default();
            let headless = match &svc.kind {
                Kind::ExternalName(target) => {
                    // An IP as externalName is not a name: CoreDNS answers nothing for it.
                    if target.parse::<IpAddr>().is_err()
                        && let Some(target) = fqdn(&normalize(target))
                    {
                        nodes.entry(svc_key).or_default().cname = Some(target);
                    }
                    continue;
                }
                Kind::ClusterIp(ips) => {
                    let node = nodes.entry(svc_key.clone()).or_default();
                    for ip in ips {
                        node.add_ip(*ip);
                        ptr.entry(reverse_key(*ip)).or_default().push(svc_name.clone());
                    }
                    for (port_name, proto, port) in &svc.ports {
                        add_srv(&mut nodes, &svc_key, port_name, proto, *port, &svc_name);
                    }
                    false
                }
                Kind::Headless => true,
            };
            // Endpoints: their own names (any service, as CoreDNS answers endpoint queries for
            // all), PTRs, and for a headless service its addresses and SRV targets.
            for slice in self.slices.get(&(ns.clone(), name.clone())).into_iter().flatten() {
                for ep in slice.endpoints.iter().filter(|ep| ep.ready || svc.publish_not_ready) {
                    let host = ep.hostname.clone().unwrap_or_else(|| dashed(ep.ip));
                    let ep_key = join(&[&host, &svc_key]);
                    let Some(ep_name) = fqdn(&ep_key) else { continue };
                    nodes.entry(ep_key).or_default().add_ip(ep.ip);
                    ptr.entry(reverse_key(ep.ip)).or_default().push(ep_name.clone());
                    if headless {
                        nodes.entry(svc_key.clone()).or_default().add_ip(ep.ip);
                        for (port_name, proto, port) in &slice.ports {
                            add_srv(&mut nodes, &svc_key, port_name, proto, *port, &ep_name);
                        }
                    }
                }
            }
        }
        for node in nodes.values_mut() {
            node.finish();
        }
        for names in ptr.values_mut() {
            names.sort();
            names.dedup();
        }
        // Every ancestor of a name inside the zone exists (an empty non-terminal).
        let keys: Vec<String> = nodes.keys().cloned().collect();
        for key in keys {
            let mut rest = key.as_str();
            while let Some((_, parent)) = rest.split_once('.') {
                if parent.len() < domain.len() {
                    break;
                }
                nodes.entry(parent.to_string()).or_default();
                rest = parent;
            }
        }
        let soa = soa_record(&domain_name, serial);
        Index {
            domain,
            domain_name,
            pod_mode: self.pod_mode,
            namespaces: self.namespaces,
            pods: self.pods,
            nodes,
            ptr,
            soa,
        }
    }
}

/// Adds the SRV records of one port: at the service name, and at `_<port>._<proto>.<svc>` for a
/// named port.
fn add_srv(nodes: &mut HashMap<String, Node>, svc_key: &str, port_name: &str, proto: &str, port: u16, target: &Name) {
    nodes.entry(svc_key.to_string()).or_default().srv.push((port, target.clone()));
    if !port_name.is_empty() {
        let key = format!("_{port_name}._{proto}.{svc_key}");
        nodes.entry(key).or_default().srv.push((port, target.clone()));
    }
}

/// The cluster's records, immutable once built; swap a new one in on change.
#[derive(Debug, Clone)]
pub struct Index {
    domain: String,
    domain_name: Name,
    pod_mode: PodMode,
    namespaces: HashSet<String>,
    pods: HashSet<(String, IpAddr)>,
    /// Names inside the zone, lowercase without the trailing dot.
    nodes: HashMap<String, Node>,
    /// Reverse names (`d.c.b.a.in-addr.arpa`) → PTR targets.
    ptr: HashMap<String, Vec<Name>>,
    soa: Record,
}

impl Index {
    /// An index without services (the apex, `svc`, `pod` and `dns-version` only).
    pub fn empty(domain: &str, pod_mode: PodMode) -> Index {
        IndexBuilder::new(domain, pod_mode).build(0)
    }

    /// The zone, lowercase without the trailing dot.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The zone as a fully qualified name.
    pub fn zone_name(&self) -> &Name {
        &self.domain_name
    }

    /// How many names (including empty non-terminals) the zone holds.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the zone holds no names (never: the apex is always there).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Whether `name` is inside the zone.
    pub fn in_zone(&self, name: &Name) -> bool {
        in_zone(&key_of(name), &self.domain)
    }

    /// Answers `qtype` at `qname`, or says the name is not ours ([`Lookup::Forward`]).
    pub fn lookup(&self, qname: &Name, qtype: RecordType) -> Lookup {
        let key = key_of(qname);
        if in_zone(&key, &self.domain) {
            return Lookup::Answer(self.zone_answer(qname, &key, qtype, 0));
        }
        if let Some(apex) = reverse_apex(&key) {
            return match self.ptr.get(&key) {
                Some(targets) if matches!(qtype, RecordType::PTR | RecordType::ANY) => {
                    let mut answer = Answer::empty(ResponseCode::NoError);
                    answer.answers = targets
                        .iter()
                        .map(|t| Record::from_rdata(qname.clone(), TTL, RData::PTR(PTR(t.clone()))))
                        .collect();
                    Lookup::Answer(answer)
                }
                Some(_) => {
                    let mut answer = Answer::empty(ResponseCode::NoError);
                    let mut soa = self.soa.clone();
                    soa.name = Name::from_ascii(format!("{apex}.")).unwrap_or_else(|_| Name::root());
                    answer.authority.push(soa);
                    Lookup::Answer(answer)
                }
                None => Lookup::Forward,
            };
        }
        Lookup::Forward
    }

    fn negative(&self, code: ResponseCode) -> Answer {
        let mut answer = Answer::empty(code);
        answer.authority.push(self.soa.clone());
        answer
    }

    fn zone_answer(&self, qname: &Name, key: &str, qtype: RecordType, depth: usize) -> Answer {
        if let Some(rel) = key.strip_suffix(&self.domain).and_then(|r| r.strip_suffix(".pod.")) {
            return self.pod_answer(qname, rel, qtype);
        }
        let Some(node) = self.nodes.get(key) else {
            return self.negative(ResponseCode::NXDomain);
        };
        if let Some(target) = &node.cname {
            let cname = Record::from_rdata(qname.clone(), TTL, RData::CNAME(CNAME(target.clone())));
            if matches!(qtype, RecordType::CNAME | RecordType::ANY) {
                let mut answer = Answer::empty(ResponseCode::NoError);
                answer.answers.push(cname);
                return answer;
            }
            let target_key = key_of(target);
            let mut answer = if in_zone(&target_key, &self.domain) && depth < MAX_CNAME_CHAIN {
                self.zone_answer(target, &target_key, qtype, depth + 1)
            } else {
                let mut a = Answer::empty(ResponseCode::NoError);
                if !in_zone(&target_key, &self.domain) {
                    a.chase = Some(target.clone());
                }
                a
            };
            answer.answers.insert(0, cname);
            return answer;
        }
        let apex = key == self.domain;
        let mut answer = Answer::empty(ResponseCode::NoError);
        let want = |t: RecordType| qtype == t || qtype == RecordType::ANY;
        if want(RecordType::A) {
            answer.answers.extend(node.a.iter().map(|ip| Record::from_rdata(qname.clone(), TTL, RData::A(A(*ip)))));
        }
        if want(RecordType::AAAA) {
            answer
                .answers
                .extend(node.aaaa.iter().map(|ip| Record::from_rdata(qname.clone(), TTL, RData::AAAA(AAAA(*ip)))));
        }
        if want(RecordType::SRV) && !node.srv.is_empty() {
            // CoreDNS: every record has priority 0 and weight ⌊100 / count⌋.
            let weight = u16::try_from(100 / node.srv.len()).unwrap_or(0);
            for (port, target) in &node.srv {
                let srv = SRV::new(0, weight, *port, target.clone());
                answer.answers.push(Record::from_rdata(qname.clone(), TTL, RData::SRV(srv)));
            }
            let mut seen = HashSet::new();
            for (_, target) in &node.srv {
                if !seen.insert(target) {
                    continue;
                }
                if let Some(t) = self.nodes.get(&key_of(target)) {
                    answer
                        .additionals
                        .extend(t.a.iter().map(|ip| Record::from_rdata(target.clone(), TTL, RData::A(A(*ip)))));
                    answer.additionals.extend(
                        t.aaaa.iter().map(|ip| Record::from_rdata(target.clone(), TTL, RData::AAAA(AAAA(*ip)))),
                    );
                }
            }
        }
        if want(RecordType::TXT) && !node.txt.is_empty() {
            answer.answers.push(Record::from_rdata(qname.clone(), TTL, RData::TXT(TXT::new(node.txt.clone()))));
        }
        if apex && want(RecordType::SOA) {
            let mut soa = self.soa.clone();
            soa.name = qname.clone();
            answer.answers.push(soa);
        }
        if apex
            && want(RecordType::NS)
            && let Some(ns) = self.ns_name()
        {
            answer.answers.push(Record::from_rdata(qname.clone(), TTL, RData::NS(NS(ns))));
        }
        if answer.answers.is_empty() {
            answer.authority.push(self.soa.clone());
        }
        answer
    }

    fn ns_name(&self) -> Option<Name> {
        fqdn(&join(&["ns", "dns", &self.domain]))
    }

    /// `rel` is what precedes `.pod.<domain>` (or empty for `pod.<domain>` itself, which is
    /// handled as an ordinary node by the caller's strip failing).
    fn pod_answer(&self, qname: &Name, rel: &str, qtype: RecordType) -> Answer {
        let labels: Vec<&str> = rel.split('.').collect();
        match labels.as_slice() {
            [ns] => {
                if self.pod_mode != PodMode::Disabled && self.namespaces.contains(*ns) {
                    self.negative(ResponseCode::NoError)
                } else {
                    self.negative(ResponseCode::NXDomain)
                }
            }
            [host, ns] => {
                let exists = self.pod_mode != PodMode::Disabled && self.namespaces.contains(*ns);
                let Some(ip) = exists.then(|| undash(host)).flatten() else {
                    return self.negative(ResponseCode::NXDomain);
                };
                if self.pod_mode == PodMode::Verified && !self.pods.contains(&(ns.to_string(), ip)) {
                    return self.negative(ResponseCode::NXDomain);
                }
                let rdata = match ip {
                    IpAddr::V4(v4) if matches!(qtype, RecordType::A | RecordType::ANY) => RData::A(A(v4)),
                    IpAddr::V6(v6) if matches!(qtype, RecordType::AAAA | RecordType::ANY) => RData::AAAA(AAAA(v6)),
                    _ => return self.negative(ResponseCode::NoError),
                };
                let mut answer = Answer::empty(ResponseCode::NoError);
                answer.answers.push(Record::from_rdata(qname.clone(), TTL, rdata));
                answer
            }
            _ => self.negative(ResponseCode::NXDomain),
        }
    }
}

/// The zone's SOA as CoreDNS builds it: `ns.dns.<zone>. hostmaster.<zone>. <serial> 7200 1800
/// 86400 <ttl>`.
fn soa_record(zone: &Name, serial: u32) -> Record {
    let zone_s = zone.to_ascii();
    let zone_s = zone_s.trim_end_matches('.');
    let mname = fqdn(&join(&["ns", "dns", zone_s])).unwrap_or_else(Name::root);
    let rname = fqdn(&join(&["hostmaster", zone_s])).unwrap_or_else(Name::root);
    let soa = SOA::new(mname, rname, serial, 7200, 1800, 86400, TTL);
    Record::from_rdata(zone.clone(), TTL, RData::SOA(soa))
}

/// Lowercase, without a trailing dot.
fn normalize(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The lowercase key of a name (no trailing dot).
pub(crate) fn key_of(name: &Name) -> String {
    let mut s = name.to_ascii();
    if s.ends_with('.') {
        s.pop();
    }
    s.make_ascii_lowercase();
    s
}

fn in_zone(key: &str, domain: &str) -> bool {
    key == domain
        || (key.len() > domain.len() && key.ends_with(domain) && key.as_bytes()[key.len() - domain.len() - 1] == b'.')
}

/// The reverse zone (`in-addr.arpa` or `ip6.arpa`) a key is in.
fn reverse_apex(key: &str) -> Option<&'static str> {
    ["in-addr.arpa", "ip6.arpa"].into_iter().find(|apex| in_zone(key, apex))
}

fn join(parts: &[&str]) -> String {
    parts.iter().filter(|p| !p.is_empty()).copied().collect::<Vec<_>>().join(".")
}

/// A fully qualified name from a key; `None` when it is not a valid name.
fn fqdn(key: &str) -> Option<Name> {
    if key.is_empty() {
        return Some(Name::root());
    }
    Name::from_ascii(format!("{key}.")).ok()
}

/// `10.42.0.5` → `10-42-0-5`, `fd00::1` → `fd00--1` (CoreDNS's endpoint names).
fn dashed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

/// The inverse of [`dashed`], as CoreDNS parses pod names: three dashes and no `--` is IPv4,
/// anything else is tried as IPv6.
fn undash(label: &str) -> Option<IpAddr> {
    if label.matches('-').count() == 3 && !label.contains("--") {
        label.replace('-', ".").parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    } else {
        label.replace('-', ":").parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    }
}

/// The reverse-lookup key of an address (`5.0.42.10.in-addr.arpa`).
fn reverse_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodIP, PodStatus, ServicePort, ServiceSpec};
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn meta(ns: &str, name: &str) -> ObjectMeta {
        ObjectMeta { name: Some(name.into()), namespace: Some(ns.into()), ..Default::default() }
    }

    fn port(name: &str, proto: &str, port: i32) -> ServicePort {
        ServicePort { name: Some(name.into()), protocol: Some(proto.into()), port, ..Default::default() }
    }

    fn cluster_ip(ns: &str, name: &str, ips: &[&str], ports: Vec<ServicePort>) -> Service {
        Service {
            metadata: meta(ns, name),
            spec: Some(ServiceSpec {
                cluster_ip: ips.first().map(|s| s.to_string()),
                cluster_ips: Some(ips.iter().map(|s| s.to_string()).collect()),
                ports: Some(ports),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn headless(ns: &str, name: &str, ports: Vec<ServicePort>) -> Service {
        let mut s = cluster_ip(ns, name, &["None"], ports);
        s.spec.as_mut().unwrap().cluster_ips = Some(vec!["None".into()]);
        s
    }

    fn external(ns: &str, name: &str, target: &str) -> Service {
        Service {
            metadata: meta(ns, name),
            spec: Some(ServiceSpec {
                type_: Some("ExternalName".into()),
                external_name: Some(target.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// (address, hostname, ready)
    fn slice(
        ns: &str,
        svc: &str,
        eps: &[(&str, Option<&str>, Option<bool>)],
        ports: &[(&str, &str, i32)],
    ) -> EndpointSlice {
        let mut m = meta(ns, &format!("{svc}-abcde"));
        m.labels = Some([(SERVICE_NAME_LABEL.to_string(), svc.to_string())].into());
        EndpointSlice {
            metadata: m,
            address_type: "IPv4".into(),
            endpoints: eps
                .iter()
                .map(|(ip, host, ready)| Endpoint {
                    addresses: vec![ip.to_string()],
                    hostname: host.map(str::to_string),
                    conditions: Some(EndpointConditions { ready: *ready, ..Default::default() }),
                    ..Default::default()
                })
                .collect(),
            ports: Some(
                ports
                    .iter()
                    .map(|(name, proto, port)| EndpointPort {
                        name: Some(name.to_string()),
                        protocol: Some(proto.to_string()),
                        port: Some(*port),
                        ..Default::default()
                    })
                    .collect(),
            ),
        }
    }

    fn index(mode: PodMode) -> Index {
        let mut b = IndexBuilder::new("Cluster.Local.", mode);
        b.namespace("empty");
        b.service(&cluster_ip(
            "default",
            "web",
            &["10.43.0.20"],
            vec![port("http", "TCP", 80), port("dns", "UDP", 53)],
        ));
        b.service(&cluster_ip("default", "dual", &["10.43.0.21", "fd00:43::21"], vec![port("", "TCP", 8080)]));
        b.service(&headless("db", "pg", vec![port("sql", "TCP", 5432)]));
        b.service(&headless("db", "lonely", vec![]));
        b.service(&external("default", "ext", "Example.COM."));
        b.service(&external("default", "alias", "web.default.svc.cluster.local"));
        b.service(&external("default", "ipext", "192.0.2.1"));
        b.endpoint_slice(&slice(
            "db",
            "pg",
            &[
                ("10.42.1.5", Some("pg-0"), Some(true)),
                ("10.42.2.6", None, None),
                ("10.42.3.7", Some("pg-2"), Some(false)),
            ],
            &[("sql", "TCP", 15432)],
        ));
        b.endpoint_slice(&slice("default", "web", &[("10.42.1.9", None, Some(true))], &[("http", "TCP", 8080)]));
        b.pod(&Pod {
            metadata: meta("apps", "p"),
            status: Some(PodStatus {
                pod_ip: Some("10.42.7.7".into()),
                pod_ips: Some(vec![PodIP { ip: "10.42.7.7".into() }]),
                ..Default::default()
            }),
            ..Default::default()
        });
        b.build(42)
    }

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn answer(index: &Index, q: &str, t: RecordType) -> Answer {
        match index.lookup(&name(q), t) {
            Lookup::Answer(a) => a,
            Lookup::Forward => panic!("{q} {t} was forwarded"),
        }
    }

    fn rdatas(a: &Answer) -> Vec<String> {
        a.answers.iter().map(|r| format!("{} {}", r.record_type(), r.data)).collect()
    }

    fn assert_negative(a: &Answer, code: ResponseCode) {
        assert_eq!(a.code, code);
        assert!(a.answers.is_empty(), "{:?}", a.answers);
        assert_eq!(a.authority.len(), 1);
        let soa = &a.authority[0];
        assert_eq!(soa.record_type(), RecordType::SOA);
        assert_eq!(soa.name, name("cluster.local."));
        assert_eq!(soa.ttl, TTL);
        let RData::SOA(s) = &soa.data else { panic!("not a SOA") };
        assert_eq!(s.mname, name("ns.dns.cluster.local."));
        assert_eq!(s.rname, name("hostmaster.cluster.local."));
        assert_eq!(s.serial, 42);
        assert_eq!(s.minimum, TTL);
    }

    #[test]
    fn cluster_ip_a_aaaa_and_nodata() {
        let idx = index(PodMode::Insecure);
        let a = answer(&idx, "web.default.svc.cluster.local.", RecordType::A);
        assert_eq!(a.code, ResponseCode::NoError);
        assert_eq!(rdatas(&a), ["A 10.43.0.20"]);
        assert_eq!(a.answers[0].ttl, TTL);
        assert!(a.authority.is_empty());
        // IPv4-only service: AAAA is NODATA with the SOA.
        assert_negative(&answer(&idx, "web.default.svc.cluster.local.", RecordType::AAAA), ResponseCode::NoError);
        // MX of an existing name: NODATA.
        assert_negative(&answer(&idx, "web.default.svc.cluster.local.", RecordType::MX), ResponseCode::NoError);
        let d = answer(&idx, "dual.default.svc.cluster.local.", RecordType::AAAA);
        assert_eq!(rdatas(&d), ["AAAA fd00:43::21"]);
        assert_eq!(rdatas(&answer(&idx, "dual.default.svc.cluster.local.", RecordType::A)), ["A 10.43.0.21"]);
    }

    #[test]
    fn names_are_case_insensitive_and_keep_the_query_case() {
        let idx = index(PodMode::Insecure);
        let a = answer(&idx, "WEB.Default.SVC.cluster.LOCAL.", RecordType::A);
        assert_eq!(rdatas(&a), ["A 10.43.0.20"]);
        assert!(a.answers[0].name.eq_case(&name("WEB.Default.SVC.cluster.LOCAL.")));
    }

    #[test]
    fn nxdomain_vs_nodata() {
        let idx = index(PodMode::Insecure);
        assert_negative(&answer(&idx, "nope.default.svc.cluster.local.", RecordType::A), ResponseCode::NXDomain);
        assert_negative(&answer(&idx, "web.nope.svc.cluster.local.", RecordType::A), ResponseCode::NXDomain);
        // Empty non-terminals exist: namespaces (with services, or known), `svc`, the apex.
        assert_negative(&answer(&idx, "default.svc.cluster.local.", RecordType::A), ResponseCode::NoError);
        assert_negative(&answer(&idx, "empty.svc.cluster.local.", RecordType::A), ResponseCode::NoError);
        assert_negative(&answer(&idx, "svc.cluster.local.", RecordType::A), ResponseCode::NoError);
        assert_negative(&answer(&idx, "cluster.local.", RecordType::A), ResponseCode::NoError);
        assert_negative(&answer(&idx, "_tcp.web.default.svc.cluster.local.", RecordType::SRV), ResponseCode::NoError);
        // A search-path expansion of a full name is NXDOMAIN, answered here (not forwarded).
        assert_negative(
            &answer(&idx, "web.default.svc.cluster.local.default.svc.cluster.local.", RecordType::A),
            ResponseCode::NXDomain,
        );
        assert_negative(
            &answer(&idx, "google.com.default.svc.cluster.local.", RecordType::AAAA),
            ResponseCode::NXDomain,
        );
        // A headless service without endpoints exists: NODATA.
        assert_negative(&answer(&idx, "lonely.db.svc.cluster.local.", RecordType::A), ResponseCode::NoError);
    }

    #[test]
    fn srv_of_a_cluster_ip_service() {
        let idx = index(PodMode::Insecure);
        let a = answer(&idx, "_http._tcp.web.default.svc.cluster.local.", RecordType::SRV);
        assert_eq!(rdatas(&a), ["SRV 0 100 80 web.default.svc.cluster.local."]);
        assert_eq!(a.additionals.len(), 1);
        assert_eq!(a.additionals[0].name, name("web.default.svc.cluster.local."));
        assert_eq!(a.additionals[0].data, RData::A(A("10.43.0.20".parse().unwrap())));
        let u = answer(&idx, "_dns._udp.web.default.svc.cluster.local.", RecordType::SRV);
        assert_eq!(rdatas(&u), ["SRV 0 100 53 web.default.svc.cluster.local."]);
        // Wrong protocol: NXDOMAIN.
        assert_negative(
            &answer(&idx, "_http._udp.web.default.svc.cluster.local.", RecordType::SRV),
            ResponseCode::NXDomain,
        );
        // SRV at the service name: every port, weight split.
        let all = answer(&idx, "web.default.svc.cluster.local.", RecordType::SRV);
        assert_eq!(
            rdatas(&all),
            ["SRV 0 50 53 web.default.svc.cluster.local.", "SRV 0 50 80 web.default.svc.cluster.local."]
        );
        // The A query of the named-port name is NODATA (the name exists).
        assert_negative(
            &answer(&idx, "_http._tcp.web.default.svc.cluster.local.", RecordType::A),
            ResponseCode::NoError,
        );
    }

    #[test]
    fn headless_service_endpoints() {
        let idx = index(PodMode::Insecure);
        // Ready (true or unset) endpoints only.
        let a = answer(&idx, "pg.db.svc.cluster.local.", RecordType::A);
        assert_eq!(rdatas(&a), ["A 10.42.1.5", "A 10.42.2.6"]);
        // StatefulSet-style hostname, and the dashed address of one without a hostname.
        assert_eq!(rdatas(&answer(&idx, "pg-0.pg.db.svc.cluster.local.", RecordType::A)), ["A 10.42.1.5"]);
        assert_eq!(rdatas(&answer(&idx, "10-42-2-6.pg.db.svc.cluster.local.", RecordType::A)), ["A 10.42.2.6"]);
        // The not-ready one has no name.
        assert_negative(&answer(&idx, "pg-2.pg.db.svc.cluster.local.", RecordType::A), ResponseCode::NXDomain);
        let srv = answer(&idx, "_sql._tcp.pg.db.svc.cluster.local.", RecordType::SRV);
        assert_eq!(
            rdatas(&srv),
            ["SRV 0 50 15432 10-42-2-6.pg.db.svc.cluster.local.", "SRV 0 50 15432 pg-0.pg.db.svc.cluster.local."]
        );
        let extra: Vec<String> = srv.additionals.iter().map(|r| format!("{} {}", r.name, r.data)).collect();
        assert_eq!(extra, ["10-42-2-6.pg.db.svc.cluster.local. 10.42.2.6", "pg-0.pg.db.svc.cluster.local. 10.42.1.5"]);
    }

    #[test]
    fn publish_not_ready_addresses_includes_not_ready_endpoints() {
        let mut b = IndexBuilder::new("cluster.local", PodMode::Insecure);
        let mut svc = headless("db", "pg", vec![]);
        svc.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        b.service(&svc);
        b.endpoint_slice(&slice("db", "pg", &[("10.42.3.7", Some("pg-2"), Some(false))], &[]));
        let idx = b.build(1);
        assert_eq!(rdatas(&answer(&idx, "pg.db.svc.cluster.local.", RecordType::A)), ["A 10.42.3.7"]);
        assert_eq!(rdatas(&answer(&idx, "pg-2.pg.db.svc.cluster.local.", RecordType::A)), ["A 10.42.3.7"]);
    }

    #[test]
    fn ptr_for_cluster_ips_and_endpoints() {
        let idx = index(PodMode::Insecure);
        let p = answer(&idx, "20.0.43.10.in-addr.arpa.", RecordType::PTR);
        assert_eq!(rdatas(&p), ["PTR web.default.svc.cluster.local."]);
        assert_eq!(
            rdatas(&answer(&idx, "5.1.42.10.in-addr.arpa.", RecordType::PTR)),
            ["PTR pg-0.pg.db.svc.cluster.local."]
        );
        assert_eq!(
            rdatas(&answer(&idx, "9.1.42.10.in-addr.arpa.", RecordType::PTR)),
            ["PTR 10-42-1-9.web.default.svc.cluster.local."]
        );
        let v6 = format!("{}.", reverse_key("fd00:43::21".parse().unwrap()));
        assert!(v6.ends_with(".0.0.d.f.ip6.arpa."), "{v6}");
        assert_eq!(rdatas(&answer(&idx, &v6, RecordType::PTR)), ["PTR dual.default.svc.cluster.local."]);
        // A known address asked for another type: NODATA from the reverse zone.
        let n = answer(&idx, "20.0.43.10.in-addr.arpa.", RecordType::A);
        assert!(n.is_nodata());
        assert_eq!(n.authority[0].name, name("in-addr.arpa."));
        // Unknown addresses fall through to the upstreams, like CoreDNS's default Corefile.
        assert_eq!(idx.lookup(&name("99.0.43.10.in-addr.arpa."), RecordType::PTR), Lookup::Forward);
    }

    #[test]
    fn external_name_is_a_cname() {
        let idx = index(PodMode::Insecure);
        let a = answer(&idx, "ext.default.svc.cluster.local.", RecordType::A);
        assert_eq!(rdatas(&a), ["CNAME example.com."]);
        assert_eq!(a.chase, Some(name("example.com.")));
        let c = answer(&idx, "ext.default.svc.cluster.local.", RecordType::CNAME);
        assert_eq!(rdatas(&c), ["CNAME example.com."]);
        assert_eq!(c.chase, None);
        // A target inside the zone is followed here.
        let alias = answer(&idx, "alias.default.svc.cluster.local.", RecordType::A);
        assert_eq!(rdatas(&alias), ["CNAME web.default.svc.cluster.local.", "A 10.43.0.20"]);
        assert_eq!(alias.chase, None);
        // An IP as externalName gives no records, but the name exists.
        assert_negative(&answer(&idx, "ipext.default.svc.cluster.local.", RecordType::A), ResponseCode::NoError);
    }

    #[test]
    fn pod_records_insecure_verified_disabled() {
        let idx = index(PodMode::Insecure);
        let a = answer(&idx, "10-42-9-9.default.pod.cluster.local.", RecordType::A);
        assert_eq!(rdatas(&a), ["A 10.42.9.9"]);
        assert_negative(&answer(&idx, "10-42-9-9.default.pod.cluster.local.", RecordType::AAAA), ResponseCode::NoError);
        assert_eq!(rdatas(&answer(&idx, "fd00--9.default.pod.cluster.local.", RecordType::AAAA)), ["AAAA fd00::9"]);
        assert_negative(&answer(&idx, "not-an-ip.default.pod.cluster.local.", RecordType::A), ResponseCode::NXDomain);
        assert_negative(&answer(&idx, "10-42-9-9.nons.pod.cluster.local.", RecordType::A), ResponseCode::NXDomain);
        assert_negative(&answer(&idx, "default.pod.cluster.local.", RecordType::A), ResponseCode::NoError);
        assert_negative(&answer(&idx, "pod.cluster.local.", RecordType::A), ResponseCode::NoError);
        assert_negative(&answer(&idx, "a.10-42-9-9.default.pod.cluster.local.", RecordType::A), ResponseCode::NXDomain);

        let v = index(PodMode::Verified);
        assert_eq!(rdatas(&answer(&v, "10-42-7-7.apps.pod.cluster.local.", RecordType::A)), ["A 10.42.7.7"]);
        assert_negative(&answer(&v, "10-42-9-9.apps.pod.cluster.local.", RecordType::A), ResponseCode::NXDomain);
        assert_negative(&answer(&v, "10-42-7-7.default.pod.cluster.local.", RecordType::A), ResponseCode::NXDomain);

        let d = index(PodMode::Disabled);
        assert_negative(&answer(&d, "10-42-7-7.apps.pod.cluster.local.", RecordType::A), ResponseCode::NXDomain);
    }

    #[test]
    fn apex_soa_ns_and_version() {
        let idx = index(PodMode::Insecure);
        let soa = answer(&idx, "cluster.local.", RecordType::SOA);
        assert_eq!(soa.answers.len(), 1);
        assert_eq!(soa.answers[0].record_type(), RecordType::SOA);
        assert_eq!(rdatas(&answer(&idx, "cluster.local.", RecordType::NS)), ["NS ns.dns.cluster.local."]);
        assert_eq!(rdatas(&answer(&idx, "dns-version.cluster.local.", RecordType::TXT)), ["TXT 1.1.0"]);
    }

    #[test]
    fn outside_names_are_forwarded() {
        let idx = index(PodMode::Insecure);
        assert_eq!(idx.lookup(&name("example.com."), RecordType::A), Lookup::Forward);
        assert_eq!(idx.lookup(&name("local."), RecordType::A), Lookup::Forward);
        assert_eq!(idx.lookup(&name("notcluster.local."), RecordType::A), Lookup::Forward);
        assert!(!idx.in_zone(&name("xcluster.local.")));
        assert!(idx.in_zone(&name("a.cluster.local.")));
    }

    #[test]
    fn bad_objects_are_ignored() {
        let mut b = IndexBuilder::new("cluster.local", PodMode::Insecure);
        b.service(&Service::default());
        b.service(&cluster_ip("default", "bad", &["not-an-ip"], vec![port("p", "TCP", 70000)]));
        b.service(&cluster_ip("default", &"x".repeat(70), &["10.43.0.30"], vec![]));
        let mut s = slice("default", "bad", &[("garbage", None, Some(true))], &[]);
        s.metadata.labels = None;
        b.endpoint_slice(&s);
        b.endpoint_slice(&slice("default", "bad", &[("garbage", None, Some(true))], &[]));
        b.pod(&Pod::default());
        let idx = b.build(42);
        assert_negative(&answer(&idx, "bad.default.svc.cluster.local.", RecordType::A), ResponseCode::NoError);
        assert_negative(&answer(&idx, "bad.default.svc.cluster.local.", RecordType::SRV), ResponseCode::NoError);
    }

    #[test]
    fn dash_helpers_round_trip() {
        for ip in ["10.42.0.5", "fd00::1", "2001:db8::a:b"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(undash(&dashed(ip)), Some(ip));
        }
        assert_eq!(undash("1-2-3"), None);
        assert_eq!(reverse_key("10.42.0.5".parse().unwrap()), "5.0.42.10.in-addr.arpa");
    }
}
