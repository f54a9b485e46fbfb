//! Port forwarding with SPDY tunnelled through a WebSocket, which kubectl 1.31+ tries first
//! (subprotocol `SPDY/3.1+portforward.k8s.io`) and containerd's streaming server does not
//! speak: the kubelet ends the client's WebSocket itself, opens a plain SPDY/3.1 upgrade to the
//! runtime's port-forward URL and relays between the two, as upstream's API server does with
//! its `TunnelingHandler`.
//!
//! The tunnel carries the SPDY connection's bytes as the payloads of binary WebSocket messages,
//! with no channel or stream prefix: the client writes each SPDY write as one message, and a
//! reader takes the payloads one after the other as a single byte stream. Message boundaries
//! mean nothing, so the runtime's bytes go out as one message per read. A text message is a
//! protocol error (upstream's reader fails with "invalid message type received"); pings are
//! answered; a close frame, or the runtime ending its connection, ends the session.

use super::ws::{FrameWriter, Message, MessageReader, is_websocket_upgrade, op};
use super::{Body, State, shutting_down, stream, text};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What a tunnelling WebSocket subprotocol starts with; the rest is the SPDY protocol.
pub const TUNNELING_PREFIX: &str = "SPDY/3.1+";
/// What every Kubernetes streaming protocol ends with.
const KUBERNETES_SUFFIX: &str = "k8s.io";
/// The header naming the streaming protocols of a SPDY upgrade.
const PROTOCOL_VERSION: &str = "x-stream-protocol-version";
/// How much of the runtime's output goes into one message at most.
const CHUNK: usize = 32 * 1024;

/// The SPDY protocols a request asks to tunnel: for a WebSocket upgrade, the offered
/// subprotocols `SPDY/3.1+<protocol>` whose protocol is a Kubernetes one, without the prefix,
/// in the client's order. Empty for anything else (which is proxied as it is).
pub fn tunneled_protocols(headers: &HeaderMap) -> Vec<String> {
    if !is_websocket_upgrade(headers) {
        return Vec::new();
    }
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter_map(|p| p.strip_prefix(TUNNELING_PREFIX))
        .filter(|p| p.ends_with(KUBERNETES_SUFFIX))
        .map(str::to_string)
        .collect()
}

/// The headers of the SPDY/3.1 upgrade request sent to the runtime at `host`, offering
/// `protocols`.
pub fn spdy_request_headers(host: &str, protocols: &[String]) -> HeaderMap {
    let mut out = HeaderMap::new();
    if let Ok(h) = HeaderValue::from_str(host) {
        out.insert(header::HOST, h);
    }
    out.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    out.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    for p in protocols {
        if let Ok(v) = HeaderValue::from_str(p) {
            out.append(PROTOCOL_VERSION, v);
        }
    }
    out
}

/// Checks the runtime's `101`: it must name the upgrade to SPDY/3.1. Gives the protocol the
/// runtime chose, if it named one.
pub fn runtime_protocol(headers: &HeaderMap) -> Result<Option<String>, String> {
    let lower = |name: header::HeaderName| {
        headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_ascii_lowercase).unwrap_or_default()
    };
    if !lower(header::CONNECTION).contains("upgrade") || !lower(header::UPGRADE).contains("spdy/3.1") {
        return Err("unable to upgrade: missing upgrade headers in response".to_string());
    }
    Ok(headers
        .get(PROTOCOL_VERSION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string))
}

/// The WebSocket subprotocol to answer with: the runtime's choice with the tunnelling prefix,
/// when the client offered it.
pub fn answered_subprotocol(chosen: Option<&str>, offered: &[String]) -> Option<String> {
    let chosen = chosen?;
    offered.iter().any(|p| p == chosen).then(|| format!("{TUNNELING_PREFIX}{chosen}"))
}

/// Serves a tunnelling WebSocket port-forward request: upgrades to SPDY at the runtime's `url`
/// offering `protocols` and, once it agreed, answers the client's WebSocket upgrade and relays.
/// A refusal of the runtime goes back as it is (the client then falls back to plain SPDY).
pub(crate) async fn tunnel(
    state: &std::sync::Arc<State>,
    mut req: Request<Incoming>,
    url: &str,
    protocols: Vec<String>,
) -> Response<Body> {
    let Some(client_key) =
        req.headers().get(header::SEC_WEBSOCKET_KEY).and_then(|v| v.to_str().ok()).map(str::to_string)
    else {
        return text(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
    };
    let target = match url.parse::<Uri>() {
        Ok(u) => u,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, format!("invalid streaming URL {url:?}: {e}")),
    };
    let host = target.authority().map(|a| a.as_str().to_string()).unwrap_or_default();
    let path = stream::target_path(&target, req.uri().query());
    let headers = spdy_request_headers(&host, &protocols);
    let upstream = match stream::dial(url, Method::POST, path, headers).await {
        Ok(u) => u.response,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    };
    if upstream.status() != StatusCode::SWITCHING_PROTOCOLS {
        return stream::refusal(upstream).await;
    }
    let chosen = match runtime_protocol(upstream.headers()) {
        Ok(p) => p,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let subprotocol = answered_subprotocol(chosen.as_deref(), &protocols);
    tracing::debug!(
        protocol = subprotocol.as_deref().unwrap_or(""),
        path = %req.uri().path(),
        "port forwarding: SPDY tunnelled through a WebSocket"
    );
    let resp = super::ws::switching_protocols(&client_key, subprotocol.as_deref());
    let client = hyper::upgrade::on(&mut req);
    let runtime = hyper::upgrade::on(upstream);
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        let (client, runtime) = match tokio::try_join!(client, runtime) {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "port-forward tunnel: upgrade failed");
                return;
            }
        };
        tokio::select! {
            _ = run(TokioIo::new(client), TokioIo::new(runtime)) => {}
            _ = shutting_down(shutdown) => {}
        }
    });
    resp
}

/// Relays between the client's tunnelling WebSocket (we are its server) and the runtime's
/// byte stream until either side ends.
pub async fn run<C, R>(client: C, runtime: R)
where
    C: AsyncRead + AsyncWrite + Unpin,
    R: AsyncRead + AsyncWrite + Unpin,
{
    let (client_r, client_w) = tokio::io::split(client);
    let (mut runtime_r, mut runtime_w) = tokio::io::split(runtime);
    let client_w = FrameWriter::new(client_w, false);
    let up = async {
        let mut messages = MessageReader::new(client_r);
        loop {
            match messages.next().await? {
                None => return Ok(()),
                Some(Message::Data(op::BINARY, payload)) => {
                    runtime_w.write_all(&payload).await?;
                    runtime_w.flush().await?;
                }
                Some(Message::Data(..)) => {
                    let mut close = 1003u16.to_be_bytes().to_vec();
                    close.extend_from_slice(b"invalid message type received");
                    client_w.send(op::CLOSE, &close).await?;
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "invalid message type received"));
                }
                Some(Message::Ping(p)) => client_w.send(op::PONG, &p).await?,
                Some(Message::Pong) => {}
                Some(Message::Close(p)) => {
                    // Answer with the client's status code, as RFC 6455 asks.
                    client_w.send(op::CLOSE, &p[..p.len().min(2)]).await?;
                    return Ok(());
                }
            }
        }
    };
    let down = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = runtime_r.read(&mut buf).await?;
            if n == 0 {
                client_w.send(op::CLOSE, &1000u16.to_be_bytes()).await?;
                return Ok::<_, io::Error>(());
            }
            client_w.send(op::BINARY, &buf[..n]).await?;
        }
    };
    tokio::select! {
        r = up => if let Err(e) = r { tracing::debug!(error = %e, "port-forward tunnel: client side ended") },
        r = down => if let Err(e) = r { tracing::debug!(error = %e, "port-forward tunnel: runtime side ended") },
    }
    client_w.shutdown().await;
    let _ = runtime_w.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::super::ws::encode_frame;
    use super::*;

    fn websocket(protocols: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::SEC_WEBSOCKET_KEY, HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="));
        h.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_str(protocols).unwrap());
        h
    }

    #[test]
    fn picks_tunnelling_websockets_only() {
        assert_eq!(tunneled_protocols(&websocket("SPDY/3.1+portforward.k8s.io")), vec!["portforward.k8s.io"]);
        assert_eq!(
            tunneled_protocols(&websocket("v4.channel.k8s.io, SPDY/3.1+portforward.k8s.io,SPDY/3.1+other")),
            vec!["portforward.k8s.io"]
        );
        assert!(tunneled_protocols(&websocket("portforward.k8s.io")).is_empty());
        let mut spdy = websocket("SPDY/3.1+portforward.k8s.io");
        spdy.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        assert!(tunneled_protocols(&spdy).is_empty());
        let mut old = websocket("SPDY/3.1+portforward.k8s.io");
        old.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
        assert!(tunneled_protocols(&old).is_empty());
    }

    #[test]
    fn asks_the_runtime_for_spdy() {
        let h = spdy_request_headers("127.0.0.1:4321", &["portforward.k8s.io".to_string()]);
        assert_eq!(h.get(header::HOST).unwrap(), "127.0.0.1:4321");
        assert_eq!(h.get(header::CONNECTION).unwrap(), "Upgrade");
        assert_eq!(h.get(header::UPGRADE).unwrap(), "SPDY/3.1");
        assert_eq!(h.get_all(PROTOCOL_VERSION).iter().collect::<Vec<_>>(), vec!["portforward.k8s.io"]);
        assert!(h.get(header::SEC_WEBSOCKET_KEY).is_none());
    }

    #[test]
    fn reads_the_runtime_answer() {
        let mut h = HeaderMap::new();
        assert!(runtime_protocol(&h).is_err());
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        assert_eq!(runtime_protocol(&h), Ok(None));
        h.insert(PROTOCOL_VERSION, HeaderValue::from_static("portforward.k8s.io"));
        assert_eq!(runtime_protocol(&h), Ok(Some("portforward.k8s.io".to_string())));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(runtime_protocol(&h).is_err());

        let offered = vec!["portforward.k8s.io".to_string()];
        assert_eq!(
            answered_subprotocol(Some("portforward.k8s.io"), &offered).as_deref(),
            Some("SPDY/3.1+portforward.k8s.io")
        );
        assert_eq!(answered_subprotocol(Some("v2.portforward.k8s.io"), &offered), None);
        assert_eq!(answered_subprotocol(None, &offered), None);
    }

    /// The relay over in-memory pipes: payloads form one byte stream whatever their framing,
    /// the runtime's bytes come back as binary messages, pings are answered, closes end it.
    #[tokio::test]
    async fn tunnels_bytes() {
        let (client, client_far) = tokio::io::duplex(1 << 16);
        let (runtime, runtime_far) = tokio::io::duplex(1 << 16);
        let relay = tokio::spawn(run(client_far, runtime_far));
        let (client_r, mut client_w) = tokio::io::split(client);
        let (mut runtime_r, mut runtime_w) = tokio::io::split(runtime);
        let mut client_r = MessageReader::new(client_r);

        // Client → runtime: payloads (one fragmented) concatenated, no prefix stripped.
        client_w.write_all(&encode_frame(op::BINARY, b"\x80\x03\x00\x01", Some([7, 7, 7, 7]))).await.unwrap();
        client_w.write_all(&[op::BINARY, 0x82, 1, 2, 3, 4, 0x01 ^ 1, 0x02 ^ 2]).await.unwrap(); // not final
        client_w.write_all(&encode_frame(op::PING, b"hb", Some([3, 3, 3, 3]))).await.unwrap();
        client_w.write_all(&[0x80 | op::CONTINUATION, 0x81, 0, 0, 0, 0, 0x03]).await.unwrap();
        let mut got = [0u8; 7];
        runtime_r.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [0x80, 0x03, 0x00, 0x01, 0x01, 0x02, 0x03]);
        assert_eq!(client_r.next().await.unwrap(), Some(Message::Pong));

        // Runtime → client: bytes as binary messages, unmasked.
        runtime_w.write_all(b"\x80\x03\x00\x02spdy").await.unwrap();
        let mut back = Vec::new();
        while back.len() < 8 {
            match client_r.next().await.unwrap() {
                Some(Message::Data(op::BINARY, p)) => back.extend(p),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(back, b"\x80\x03\x00\x02spdy");

        // The client's close is answered with its code and ends the session.
        let mut close = 1000u16.to_be_bytes().to_vec();
        close.extend_from_slice(b"bye");
        client_w.write_all(&encode_frame(op::CLOSE, &close, Some([5, 5, 5, 5]))).await.unwrap();
        assert_eq!(client_r.next().await.unwrap(), Some(Message::Close(1000u16.to_be_bytes().to_vec())));
        tokio::time::timeout(std::time::Duration::from_secs(5), relay).await.unwrap().unwrap();
        assert_eq!(client_r.next().await.unwrap(), None);
        let mut rest = Vec::new();
        runtime_r.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn runtime_end_and_text_messages_close_the_tunnel() {
        // The runtime ends its connection: a normal close.
        let (client, client_far) = tokio::io::duplex(1 << 16);
        let (runtime, runtime_far) = tokio::io::duplex(1 << 16);
        let relay = tokio::spawn(run(client_far, runtime_far));
        drop(runtime);
        let mut client_r = MessageReader::new(client);
        assert_eq!(client_r.next().await.unwrap(), Some(Message::Close(1000u16.to_be_bytes().to_vec())));
        tokio::time::timeout(std::time::Duration::from_secs(5), relay).await.unwrap().unwrap();

        // A text message is a protocol error: closed with 1003, nothing reaches the runtime.
        let (client, client_far) = tokio::io::duplex(1 << 16);
        let (runtime, runtime_far) = tokio::io::duplex(1 << 16);
        let relay = tokio::spawn(run(client_far, runtime_far));
        let (client_r, mut client_w) = tokio::io::split(client);
        client_w.write_all(&encode_frame(op::TEXT, b"hello", Some([1, 2, 3, 4]))).await.unwrap();
        let mut client_r = MessageReader::new(client_r);
        match client_r.next().await.unwrap() {
            Some(Message::Close(p)) => assert_eq!(p[..2], 1003u16.to_be_bytes()),
            other => panic!("unexpected {other:?}"),
        }
        tokio::time::timeout(std::time::Duration::from_secs(5), relay).await.unwrap().unwrap();
        let mut rest = Vec::new();
        let (mut runtime_r, _w) = tokio::io::split(runtime);
        runtime_r.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }
}
