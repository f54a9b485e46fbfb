//! The DNS server: UDP and TCP listeners (hickory-server) answering from the current
//! [`Index`] and relaying every other name to upstream resolvers.
//!
//! Names inside the cluster domain are always answered here (NXDOMAIN included, so a
//! search-path expansion like `web.ns.svc.cluster.local.ns.svc.cluster.local` fails fast without
//! leaving the node). Reverse names the index does not know, and names outside the domain, are
//! forwarded: the query's bytes go unchanged (but for a fresh ID) to each upstream in turn over
//! the client's protocol, until one answers within the timeout; none answering is SERVFAIL,
//! and no upstreams at all is REFUSED (the name is not ours). An ExternalName's CNAME target
//! outside the zone is resolved upstream and its records appended, as CoreDNS does.

use crate::records::{Index, Lookup};
use anyhow::{Context, Result};
use hickory_proto::op::{Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;

/// How long an idle TCP client connection is kept.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time budget of one forwarded query, over all upstreams.
pub const DEFAULT_FORWARD_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest DNS message over UDP.
const MAX_UDP: usize = 65535;

/// Relays queries to upstream resolvers.
#[derive(Debug, Clone)]
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
}

impl Forwarder {
    /// Tries `upstreams` in order; `timeout` bounds one forwarded query over all of them.
    pub fn new(upstreams: Vec<SocketAddr>, timeout: Duration) -> Forwarder {
        Forwarder { upstreams, timeout }
    }

    /// The upstream resolvers.
    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// Sends the wire-format `query` (its ID is replaced) to the upstreams over UDP or TCP and
    /// returns the first answer whose ID matches.
    pub async fn exchange(&self, query: &[u8], tcp: bool) -> Result<Message> {
        anyhow::ensure!(!self.upstreams.is_empty(), "no upstream resolvers");
        anyhow::ensure!(query.len() >= 12, "query shorter than a DNS header");
        let deadline = Instant::now() + self.timeout;
        // Each upstream gets an equal share, at least half a second, of what is left.
        let share =
            (self.timeout / u32::try_from(self.upstreams.len()).unwrap_or(u32::MAX)).max(Duration::from_millis(500));
        let mut last_error = anyhow::anyhow!("upstream timeout");
        for upstream in &self.upstreams {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let id: u16 = rand::random();
            let mut bytes = query.to_vec();
            bytes[..2].copy_from_slice(&id.to_be_bytes());
            let attempt = async {
                let raw = if tcp {
                    exchange_tcp(*upstream, &bytes).await?
                } else {
                    exchange_udp(*upstream, &bytes, id).await?
                };
                let message =
                    Message::from_vec(&raw).map_err(|e| anyhow::anyhow!("bad answer from {upstream}: {e}"))?;
                anyhow::ensure!(message.metadata.id == id, "answer ID mismatch from {upstream}");
                Ok(message)
            };
            match tokio::time::timeout(share.min(left), attempt).await {
                Ok(Ok(message)) => return Ok(message),
                Ok(Err(e)) => last_error = e,
                Err(_) => last_error = anyhow::anyhow!("upstream {upstream} timed out"),
            }
            tracing::debug!(%upstream, error = %last_error, "forward failed");
        }
        Err(last_error)
    }

    /// Asks the upstreams for `qtype` records of `name` (recursion desired), over UDP then TCP
    /// when the answer is truncated.
    pub async fn resolve(&self, name: &Name, qtype: RecordType) -> Result<Message> {
        let mut message = Message::query();
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(name.clone(), qtype));
        let bytes = message.to_vec().map_err(|e| anyhow::anyhow!("cannot encode query: {e}"))?;
        let answer = self.exchange(&bytes, false).await?;
        if answer.metadata.truncation { self.exchange(&bytes, true).await } else { Ok(answer) }
    }
}

async fn exchange_udp(upstream: SocketAddr, query: &[u8], id: u16) -> Result<Vec<u8>> {
    let local: SocketAddr =
        if upstream.is_ipv4() { (Ipv4Addr::UNSPECIFIED, 0).into() } else { (Ipv6Addr::UNSPECIFIED, 0).into() };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; MAX_UDP];
    loop {
        let n = socket.recv(&mut buf).await?;
        // Stray datagrams (late answers to someone else) are skipped.
        if n >= 12 && buf[..2] == id.to_be_bytes() {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn exchange_tcp(upstream: SocketAddr, query: &[u8]) -> Result<Vec<u8>> {
    let mut stream = TcpStream::connect(upstream).await?;
    let len = u16::try_from(query.len()).context("query too long")?;
    let mut out = Vec::with_capacity(query.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(query);
    stream.write_all(&out).await?;
    let n = stream.read_u16().await? as usize;
    let mut buf = vec![0u8; n];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

/// The nameservers of a resolv.conf text, port 53, without loopback ones (a resolver on the
/// host's loopback, e.g. systemd-resolved's 127.0.0.53, is not reachable from pods and would
/// loop back to us when we are the host's resolver).
pub fn nameservers_from_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut fields = line.split_whitespace();
            (fields.next() == Some("nameserver")).then(|| fields.next()).flatten()
        })
        // `fe80::1%eth0`: a zone index is not part of the address.
        .filter_map(|s| s.split('%').next().and_then(|s| s.parse::<IpAddr>().ok()))
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// The host's upstream resolvers: `/etc/resolv.conf`'s non-loopback nameservers, or, when it
/// only lists loopback ones (systemd-resolved's stub), those of
/// `/run/systemd/resolve/resolv.conf`.
pub fn host_upstreams() -> Vec<SocketAddr> {
    for path in ["/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"] {
        let Ok(text) = std::fs::read_to_string(Path::new(path)) else { continue };
        let found = nameservers_from_resolv_conf(&text);
        if !found.is_empty() {
            return found;
        }
    }
    Vec::new()
}

/// Answers requests from the current index, forwarding what is not ours.
pub struct Handler {
    index: watch::Receiver<Arc<Index>>,
    forwarder: Forwarder,
}

impl Handler {
    /// A handler reading the index from `index` (the sender swaps in new ones).
    pub fn new(index: watch::Receiver<Arc<Index>>, forwarder: Forwarder) -> Handler {
        Handler { index, forwarder }
    }
}

/// The EDNS of a response to a request that had one (RFC 6891: the same version, our payload
/// size, never below 512).
fn response_edns(request: &Request) -> Option<Edns> {
    request.edns.as_ref().map(|req| {
        let mut edns = Edns::new();
        edns.set_max_payload(req.max_payload().max(512));
        edns.set_version(0);
        edns
    })
}

fn failed(meta: Metadata) -> ResponseInfo {
    ResponseInfo::from(Header { metadata: meta, counts: HeaderCounts::default() })
}

async fn send<'a, R: ResponseHandler>(
    response: &mut R,
    builder: MessageResponseBuilder<'_>,
    meta: Metadata,
    answers: &'a [Record],
    authority: &'a [Record],
    additionals: &'a [Record],
) -> ResponseInfo {
    let message = builder.build(meta, answers.iter(), authority.iter(), std::iter::empty(), additionals.iter());
    match response.send_response(message).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!(error = %e, "cannot send DNS response");
            let mut m = meta;
            m.response_code = ResponseCode::ServFail;
            failed(m)
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, mut response: R) -> ResponseInfo {
        let edns = response_edns(request);
        let mut builder = MessageResponseBuilder::new(&request.queries, None);
        if let Some(edns) = edns.as_ref() {
            builder.edns(edns);
        }
        let mut meta = Metadata::response_from_request(&request.metadata);
        meta.recursion_available = true;
        if request.metadata.message_type != MessageType::Query || request.metadata.op_code != OpCode::Query {
            meta.response_code = ResponseCode::NotImp;
            return send(&mut response, builder, meta, &[], &[], &[]).await;
        }
        let Ok(info) = request.request_info() else {
            meta.response_code = ResponseCode::FormErr;
            return send(&mut response, builder, meta, &[], &[], &[]).await;
        };
        let qname = info.query.original().name().clone();
        let qtype = info.query.query_type();
        let index = self.index.borrow().clone();
        let lookup = if info.query.query_class() == DNSClass::IN {
            index.lookup(&qname, qtype)
        } else if index.in_zone(&qname) {
            meta.response_code = ResponseCode::Refused;
            return send(&mut response, builder, meta, &[], &[], &[]).await;
        } else {
            Lookup::Forward
        };
        match lookup {
            Lookup::Answer(mut answer) => {
                meta.authoritative = true;
                meta.response_code = answer.code;
                if let Some(target) = answer.chase.take()
                    && !self.forwarder.upstreams().is_empty()
                {
                    match self.forwarder.resolve(&target, qtype).await {
                        Ok(m) => {
                            answer.answers.extend(m.answers);
                            meta.response_code = m.metadata.response_code;
                        }
                        Err(e) => tracing::debug!(%target, error = %e, "cannot resolve CNAME target"),
                    }
                }
                send(&mut response, builder, meta, &answer.answers, &answer.authority, &answer.additionals).await
            }
            Lookup::Forward if self.forwarder.upstreams().is_empty() => {
                meta.response_code = ResponseCode::Refused;
                send(&mut response, builder, meta, &[], &[], &[]).await
            }
            Lookup::Forward => {
                let tcp = request.protocol() == Protocol::Tcp;
                match self.forwarder.exchange(request.as_slice(), tcp).await {
                    Ok(m) => {
                        meta.response_code = m.metadata.response_code;
                        meta.authoritative = m.metadata.authoritative;
                        meta.truncation = m.metadata.truncation;
                        meta.authentic_data = m.metadata.authentic_data;
                        meta.recursion_available = m.metadata.recursion_available;
                        send(&mut response, builder, meta, &m.answers, &m.authorities, &m.additionals).await
                    }
                    Err(e) => {
                        tracing::debug!(name = %qname, error = %e, "forwarding failed");
                        meta.response_code = ResponseCode::ServFail;
                        send(&mut response, builder, meta, &[], &[], &[]).await
                    }
                }
            }
        }
    }
}

/// A running DNS server.
pub struct DnsServer {
    server: hickory_server::Server<Handler>,
    addrs: Vec<SocketAddr>,
}

impl DnsServer {
    /// Binds UDP and TCP on every address of `listen` (the same port for both; port 0 picks
    /// one) and starts answering from `index`.
    pub async fn start(
        listen: &[SocketAddr],
        index: watch::Receiver<Arc<Index>>,
        forwarder: Forwarder,
    ) -> Result<DnsServer> {
        let mut server = hickory_server::Server::new(Handler::new(index, forwarder));
        let mut addrs = Vec::new();
        for addr in listen {
            let (udp, tcp) = bind_pair(*addr).await?;
            addrs.push(udp.local_addr()?);
            server.register_socket(udp);
            server.register_listener(tcp, TCP_IDLE_TIMEOUT, 32);
        }
        Ok(DnsServer { server, addrs })
    }

    /// The bound addresses (UDP and TCP share each).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Stops listening and waits for the listeners to end.
    pub async fn shutdown(mut self) -> Result<()> {
        self.server.shutdown_gracefully().await.map_err(|e| anyhow::anyhow!("DNS server shutdown: {e}"))
    }
}

/// A UDP socket and a TCP listener on the same address and port.
async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener)> {
    // With port 0 the TCP port picked for UDP's may be taken: try a few.
    let tries = if addr.port() == 0 { 16 } else { 1 };
    let mut last = None;
    for _ in 0..tries {
        let udp = UdpSocket::bind(addr).await.with_context(|| format!("cannot bind UDP {addr}"))?;
        let bound = udp.local_addr()?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(anyhow::anyhow!("cannot bind TCP {addr}: {}", last.map(|e| e.to_string()).unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{IndexBuilder, PodMode};
    use hickory_proto::rr::RData;
    use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn service(ns: &str, name: &str, ip: &str) -> Service {
        Service {
            metadata: ObjectMeta { name: Some(name.into()), namespace: Some(ns.into()), ..Default::default() },
            spec: Some(ServiceSpec {
                cluster_ip: Some(ip.into()),
                cluster_ips: Some(vec![ip.into()]),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    protocol: Some("TCP".into()),
                    port: 80,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn external(ns: &str, name: &str, target: &str) -> Service {
        Service {
            metadata: ObjectMeta { name: Some(name.into()), namespace: Some(ns.into()), ..Default::default() },
            spec: Some(ServiceSpec {
                type_: Some("ExternalName".into()),
                external_name: Some(target.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A fake upstream on 127.0.0.1 (UDP and TCP, same port): answers `example.com` A with
    /// 192.0.2.1, everything else NXDOMAIN; `big.example.com` over UDP comes back truncated.
    async fn fake_upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let (udp, tcp) = bind_pair("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = udp.local_addr().unwrap();
        fn answer(query: &[u8], tcp: bool) -> Option<Vec<u8>> {
            let q = Message::from_vec(query).ok()?;
            let mut m = Message::response(q.metadata.id, OpCode::Query);
            m.metadata.recursion_available = true;
            m.metadata.recursion_desired = q.metadata.recursion_desired;
            let question = q.queries.first()?.clone();
            let name = question.name().to_ascii().to_ascii_lowercase();
            m.add_query(question.clone());
            match name.as_str() {
                "example.com." | "target.example.net." => {
                    m.add_answer(Record::from_rdata(
                        question.name().clone(),
                        60,
                        RData::A(hickory_proto::rr::rdata::A("192.0.2.1".parse().unwrap())),
                    ));
                }
                "big.example.com." if !tcp => m.metadata.truncation = true,
                "big.example.com." => {
                    m.add_answer(Record::from_rdata(
                        question.name().clone(),
                        60,
                        RData::A(hickory_proto::rr::rdata::A("192.0.2.2".parse().unwrap())),
                    ));
                }
                _ => m.metadata.response_code = ResponseCode::NXDomain,
            }
            m.to_vec().ok()
        }
        let task = tokio::spawn(async move {
            let udp_loop = async {
                let mut buf = vec![0u8; 4096];
                while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
                    if let Some(out) = answer(&buf[..n], false) {
                        let _ = udp.send_to(&out, peer).await;
                    }
                }
            };
            let tcp_loop = async {
                while let Ok((mut s, _)) = tcp.accept().await {
                    tokio::spawn(async move {
                        let Ok(n) = s.read_u16().await else { return };
                        let mut buf = vec![0u8; n as usize];
                        if s.read_exact(&mut buf).await.is_err() {
                            return;
                        }
                        if let Some(out) = answer(&buf, true) {
                            let mut framed = (out.len() as u16).to_be_bytes().to_vec();
                            framed.extend(out);
                            let _ = s.write_all(&framed).await;
                        }
                    });
                }
            };
            tokio::join!(udp_loop, tcp_loop);
        });
        (addr, task)
    }

    async fn query(server: SocketAddr, name: &str, qtype: RecordType, tcp: bool) -> Message {
        let mut m = Message::query();
        m.metadata.id = rand::random();
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        let bytes = m.to_vec().unwrap();
        let raw = tokio::time::timeout(Duration::from_secs(5), async {
            if tcp { exchange_tcp(server, &bytes).await } else { exchange_udp(server, &bytes, m.metadata.id).await }
        })
        .await
        .expect("server answers in time")
        .expect("exchange");
        let answer = Message::from_vec(&raw).unwrap();
        assert_eq!(answer.metadata.id, m.metadata.id);
        assert_eq!(answer.metadata.message_type, MessageType::Response);
        answer
    }

    fn rdatas(m: &Message) -> Vec<String> {
        m.answers.iter().map(|r| format!("{} {}", r.record_type(), r.data)).collect()
    }

    #[tokio::test]
    async fn serves_the_index_over_udp_and_tcp_and_forwards_the_rest() {
        let (upstream, upstream_task) = fake_upstream().await;
        let mut b = IndexBuilder::new("cluster.local", PodMode::Insecure);
        b.service(&service("default", "web", "10.43.0.20"));
        b.service(&external("default", "ext", "target.example.net"));
        let (tx, rx) = watch::channel(Arc::new(b.build(7)));
        let server = DnsServer::start(
            &["127.0.0.1:0".parse().unwrap()],
            rx,
            Forwarder::new(vec![upstream], Duration::from_secs(2)),
        )
        .await
        .unwrap();
        let addr = server.local_addrs()[0];
        assert_ne!(addr.port(), 0);

        for tcp in [false, true] {
            let a = query(addr, "web.default.svc.cluster.local.", RecordType::A, tcp).await;
            assert_eq!(a.metadata.response_code, ResponseCode::NoError);
            assert!(a.metadata.authoritative);
            assert_eq!(rdatas(&a), ["A 10.43.0.20"]);
            assert_eq!(a.answers[0].ttl, 5);

            let srv = query(addr, "_http._tcp.web.default.svc.cluster.local.", RecordType::SRV, tcp).await;
            assert_eq!(rdatas(&srv), ["SRV 0 100 80 web.default.svc.cluster.local."]);
            assert_eq!(srv.additionals.len(), 1);

            let ptr = query(addr, "20.0.43.10.in-addr.arpa.", RecordType::PTR, tcp).await;
            assert_eq!(rdatas(&ptr), ["PTR web.default.svc.cluster.local."]);

            let nx = query(addr, "nope.default.svc.cluster.local.", RecordType::A, tcp).await;
            assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
            assert!(nx.answers.is_empty());
            assert_eq!(nx.authorities.len(), 1);
            assert_eq!(nx.authorities[0].record_type(), RecordType::SOA);

            let nodata = query(addr, "web.default.svc.cluster.local.", RecordType::AAAA, tcp).await;
            assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
            assert!(nodata.answers.is_empty());
            assert_eq!(nodata.authorities[0].record_type(), RecordType::SOA);

            // Forwarded to the fake upstream, over the client's protocol.
            let fwd = query(addr, "example.com.", RecordType::A, tcp).await;
            assert_eq!(fwd.metadata.response_code, ResponseCode::NoError);
            assert!(!fwd.metadata.authoritative);
            assert_eq!(rdatas(&fwd), ["A 192.0.2.1"]);
            let fwd_nx = query(addr, "missing.example.com.", RecordType::A, tcp).await;
            assert_eq!(fwd_nx.metadata.response_code, ResponseCode::NXDomain);

            // Unknown reverse names fall through to the upstream too.
            let rev = query(addr, "99.0.43.10.in-addr.arpa.", RecordType::PTR, tcp).await;
            assert_eq!(rev.metadata.response_code, ResponseCode::NXDomain);
            assert!(!rev.metadata.authoritative);

            // ExternalName: the CNAME, and the target's records from upstream.
            let ext = query(addr, "ext.default.svc.cluster.local.", RecordType::A, tcp).await;
            assert_eq!(rdatas(&ext), ["CNAME target.example.net.", "A 192.0.2.1"]);
        }
        // A truncated upstream answer is passed on over UDP; over TCP the client gets it whole.
        let tc = query(addr, "big.example.com.", RecordType::A, false).await;
        assert!(tc.metadata.truncation);
        let whole = query(addr, "big.example.com.", RecordType::A, true).await;
        assert_eq!(rdatas(&whole), ["A 192.0.2.2"]);

        // Swapping the index is seen by the next query.
        let mut b = IndexBuilder::new("cluster.local", PodMode::Insecure);
        b.service(&service("default", "web", "10.43.0.99"));
        tx.send(Arc::new(b.build(8))).unwrap();
        let a = query(addr, "web.default.svc.cluster.local.", RecordType::A, false).await;
        assert_eq!(rdatas(&a), ["A 10.43.0.99"]);

        server.shutdown().await.unwrap();
        upstream_task.abort();
    }

    #[tokio::test]
    async fn unreachable_upstreams_give_servfail_and_none_refused() {
        // A bound but silent UDP socket: queries to it time out.
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let index = Arc::new(IndexBuilder::new("cluster.local", PodMode::Insecure).build(1));
        let (_tx, rx) = watch::channel(index.clone());
        let server = DnsServer::start(
            &["127.0.0.1:0".parse().unwrap()],
            rx,
            Forwarder::new(vec![silent.local_addr().unwrap()], Duration::from_millis(300)),
        )
        .await
        .unwrap();
        let started = Instant::now();
        let m = query(server.local_addrs()[0], "example.com.", RecordType::A, false).await;
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        assert!(started.elapsed() < Duration::from_secs(2));
        // Cluster names do not depend on the upstreams.
        let m = query(server.local_addrs()[0], "x.default.svc.cluster.local.", RecordType::A, false).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        server.shutdown().await.unwrap();

        let (_tx, rx) = watch::channel(index);
        let server =
            DnsServer::start(&["127.0.0.1:0".parse().unwrap()], rx, Forwarder::new(vec![], Duration::from_secs(1)))
                .await
                .unwrap();
        let m = query(server.local_addrs()[0], "example.com.", RecordType::A, false).await;
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        server.shutdown().await.unwrap();
    }

    #[test]
    fn resolv_conf_nameservers_skip_loopback() {
        let text = "# comment\nnameserver 127.0.0.53\nnameserver 10.0.0.2 # corp\nnameserver ::1\n\
                    nameserver fe80::1%eth0\nsearch example.com\nnameserver bogus\noptions ndots:5\n";
        let found = nameservers_from_resolv_conf(text);
        assert_eq!(
            found,
            vec!["10.0.0.2:53".parse::<SocketAddr>().unwrap(), "[fe80::1]:53".parse::<SocketAddr>().unwrap()]
        );
        assert!(nameservers_from_resolv_conf("nameserver 127.0.0.1\n").is_empty());
    }
}
