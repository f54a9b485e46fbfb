//! WebSocket `v5.channel.k8s.io` for exec and attach, which kubectl 1.30+ offers first and
//! containerd 1.6's streaming server does not speak: the kubelet ends the client's WebSocket
//! itself and opens a `v4.channel.k8s.io` WebSocket to the runtime, relaying messages.
//!
//! Both protocols frame every message as `[channel, data...]` (0 stdin, 1 stdout, 2 stderr,
//! 3 error/status, 4 resize); v5 adds channel 255, `[255, n]`, which closes channel `n`, e.g.
//! the end of stdin. v4 has no way to say that, so the bridge drops it: only sessions that
//! need no end of stdin are bridged (no stdin, or a TTY, where the user ends the session with
//! the terminal); others are proxied as they are, the runtime refuses v5 and the client falls
//! back to SPDY, which can half-close stdin.
//!
//! The WebSocket framing (RFC 6455) is implemented here: messages are reassembled from
//! fragments and sent whole, pings are answered on each side, close frames are passed on.

use super::{Body, State, full, shutting_down, text};
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::io;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;

/// The protocol kubectl prefers for exec and attach.
pub const V5: &str = "v5.channel.k8s.io";
/// The newest protocol containerd's streaming server speaks.
pub const V4: &str = "v4.channel.k8s.io";
/// The largest message relayed (a resize or a chunk of stdin is far smaller).
const MAX_MESSAGE: usize = 16 << 20;
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `101 Switching Protocols` answer to a WebSocket handshake with `client_key`, naming
/// `protocol` when one was agreed.
pub(crate) fn switching_protocols(client_key: &str, protocol: Option<&str>) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept_key(client_key)) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(v) = protocol.and_then(|p| HeaderValue::from_str(p).ok()) {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
    }
    resp
}

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key.trim().as_bytes());
    ctx.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(ctx.finish())
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Whether a request is a WebSocket (version 13) upgrade with a key.
pub(crate) fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    header_has_token(headers, header::UPGRADE, "websocket")
        && header_has_token(headers, header::CONNECTION, "upgrade")
        && headers.contains_key(header::SEC_WEBSOCKET_KEY)
        && headers.get(header::SEC_WEBSOCKET_VERSION).is_some_and(|v| v == "13")
}

/// The protocol the kubelet serves itself for this request: `Some(V5)` for a WebSocket
/// upgrade that offers `v5.channel.k8s.io`, `None` for everything else (proxied).
pub(crate) fn bridged_protocol(headers: &HeaderMap) -> Option<&'static str> {
    (is_websocket_upgrade(headers) && header_has_token(headers, header::SEC_WEBSOCKET_PROTOCOL, V5)).then_some(V5)
}

/// Frame opcodes.
pub(crate) mod op {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;
}

/// One whole message, or a control frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text or binary message: its opcode and payload.
    Data(u8, Vec<u8>),
    /// A ping with its payload.
    Ping(Vec<u8>),
    /// A pong.
    Pong,
    /// A close frame with its payload (status code and reason).
    Close(Vec<u8>),
}

/// Encodes one final frame; `mask` is required from clients, forbidden from servers.
pub fn encode_frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | opcode);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// Reads whole messages from one side of a WebSocket, reassembling fragments.
pub struct MessageReader<R> {
    inner: R,
    partial: Option<(u8, Vec<u8>)>,
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    /// Reads from `inner`.
    pub fn new(inner: R) -> Self {
        MessageReader { inner, partial: None }
    }

    /// The next message; `None` when the connection ends between frames.
    pub async fn next(&mut self) -> io::Result<Option<Message>> {
        loop {
            let mut head = [0u8; 2];
            match self.inner.read_exact(&mut head[..1]).await {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(e),
            }
            self.inner.read_exact(&mut head[1..]).await?;
            let fin = head[0] & 0x80 != 0;
            let opcode = head[0] & 0x0F;
            let masked = head[1] & 0x80 != 0;
            let len = match head[1] & 0x7F {
                126 => u64::from(self.inner.read_u16().await?),
                127 => self.inner.read_u64().await?,
                n => u64::from(n),
            };
            let so_far = self.partial.as_ref().map_or(0, |(_, p)| p.len());
            if len > (MAX_MESSAGE - so_far.min(MAX_MESSAGE)) as u64 {
                return Err(invalid("WebSocket message too large"));
            }
            let mut key = [0u8; 4];
            if masked {
                self.inner.read_exact(&mut key).await?;
            }
            let mut payload = vec![0u8; len as usize];
            self.inner.read_exact(&mut payload).await?;
            if masked {
                for (i, b) in payload.iter_mut().enumerate() {
                    *b ^= key[i % 4];
                }
            }
            match opcode {
                op::CLOSE => return Ok(Some(Message::Close(payload))),
                op::PING => return Ok(Some(Message::Ping(payload))),
                op::PONG => return Ok(Some(Message::Pong)),
                op::TEXT | op::BINARY => {
                    if self.partial.is_some() {
                        return Err(invalid("WebSocket message started inside another"));
                    }
                    if fin {
                        return Ok(Some(Message::Data(opcode, payload)));
                    }
                    self.partial = Some((opcode, payload));
                }
                op::CONTINUATION => {
                    let Some((_, buf)) = self.partial.as_mut() else {
                        return Err(invalid("WebSocket continuation without a message"));
                    };
                    buf.extend_from_slice(&payload);
                    if fin {
                        let (opcode, buf) = self.partial.take().expect("checked above");
                        return Ok(Some(Message::Data(opcode, buf)));
                    }
                }
                _ => return Err(invalid("unknown WebSocket opcode")),
            }
        }
    }
}

/// Writes frames to one side; frames towards the runtime (we are its client) are masked.
pub(crate) struct FrameWriter<W> {
    inner: Mutex<W>,
    masked: bool,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Writes to `inner`, masking every frame when `masked` (we are the client).
    pub(crate) fn new(inner: W, masked: bool) -> Self {
        FrameWriter { inner: Mutex::new(inner), masked }
    }

    /// Sends one final frame and flushes it.
    pub(crate) async fn send(&self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        let mask = self.masked.then(rand::random::<[u8; 4]>);
        let frame = encode_frame(opcode, payload, mask);
        let mut w = self.inner.lock().await;
        w.write_all(&frame).await?;
        w.flush().await
    }

    /// Shuts the underlying stream down (errors are of no interest then).
    pub(crate) async fn shutdown(&self) {
        let _ = self.inner.lock().await.shutdown().await;
    }
}

/// What a client's message becomes towards the runtime: v5's close-channel messages have no
/// v4 equivalent and are dropped, everything else goes as it is.
pub fn to_runtime<'a>(protocol: &str, msg: &'a [u8]) -> Option<&'a [u8]> {
    if protocol == V5 && msg.first() == Some(&255) {
        return None;
    }
    Some(msg)
}

/// What a runtime's message becomes towards the client: itself.
fn pass(msg: &[u8]) -> Option<&[u8]> {
    Some(msg)
}

/// Relays messages from `from` to `to` until a close frame or the end of the connection;
/// pings are answered on `from`'s own writer (`reply`).
async fn relay<R, W1, W2>(
    mut from: MessageReader<R>,
    reply: Arc<FrameWriter<W1>>,
    to: Arc<FrameWriter<W2>>,
    filter: impl Fn(&[u8]) -> Option<&[u8]>,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W1: AsyncWrite + Unpin,
    W2: AsyncWrite + Unpin,
{
    loop {
        match from.next().await? {
            None => {
                to.send(op::CLOSE, &1000u16.to_be_bytes()).await?;
                return Ok(());
            }
            Some(Message::Data(opcode, payload)) => {
                if let Some(p) = filter(&payload) {
                    to.send(opcode, p).await?;
                }
            }
            Some(Message::Ping(p)) => reply.send(op::PONG, &p).await?,
            Some(Message::Pong) => {}
            Some(Message::Close(p)) => {
                to.send(op::CLOSE, &p).await?;
                return Ok(());
            }
        }
    }
}

/// Opens the `v4.channel.k8s.io` WebSocket to the runtime's streaming URL and, once the
/// runtime agreed, answers the client's v5 upgrade and relays between the two.
pub(crate) async fn bridge(
    state: &Arc<State>,
    mut req: Request<Incoming>,
    url: &str,
    protocol: &'static str,
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
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
    let mut headers = HeaderMap::new();
    let set = |h: &mut HeaderMap, name: header::HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set(&mut headers, header::HOST, &host);
    set(&mut headers, header::UPGRADE, "websocket");
    set(&mut headers, header::CONNECTION, "Upgrade");
    set(&mut headers, header::SEC_WEBSOCKET_KEY, &key);
    set(&mut headers, header::SEC_WEBSOCKET_VERSION, "13");
    set(&mut headers, header::SEC_WEBSOCKET_PROTOCOL, V4);
    let path = super::stream::target_path(&target, None);
    let upstream = match super::stream::dial(url, http::Method::GET, path, headers).await {
        Ok(u) => u.response,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    };
    let agreed = upstream.status() == StatusCode::SWITCHING_PROTOCOLS
        && upstream.headers().get(header::SEC_WEBSOCKET_ACCEPT).is_some_and(|v| v == accept_key(&key).as_str())
        && upstream.headers().get(header::SEC_WEBSOCKET_PROTOCOL).is_some_and(|v| v == V4);
    if !agreed {
        return text(
            StatusCode::BAD_GATEWAY,
            format!("the runtime's streaming server did not accept a {V4} WebSocket ({})", upstream.status()),
        );
    }
    let resp = switching_protocols(&client_key, Some(protocol));
    let client = hyper::upgrade::on(&mut req);
    let runtime = hyper::upgrade::on(upstream);
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        let (client, runtime) = match tokio::try_join!(client, runtime) {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "WebSocket upgrade failed");
                return;
            }
        };
        tokio::select! {
            _ = run(TokioIo::new(client), TokioIo::new(runtime), protocol) => {}
            _ = shutting_down(shutdown) => {}
        }
    });
    resp
}

/// Relays between the client's and the runtime's WebSocket until either side closes.
pub async fn run<C, R>(client: C, runtime: R, protocol: &'static str)
where
    C: AsyncRead + AsyncWrite + Unpin,
    R: AsyncRead + AsyncWrite + Unpin,
{
    let (client_r, client_w) = tokio::io::split(client);
    let (runtime_r, runtime_w) = tokio::io::split(runtime);
    let client_w = Arc::new(FrameWriter::new(client_w, false));
    let runtime_w = Arc::new(FrameWriter::new(runtime_w, true));
    let up = relay(MessageReader::new(client_r), client_w.clone(), runtime_w.clone(), |m| to_runtime(protocol, m));
    let down = relay(MessageReader::new(runtime_r), runtime_w.clone(), client_w.clone(), pass);
    // The runtime closing (the process ended, its status sent) ends the session; the client
    // closing ends it too.
    tokio::select! {
        r = up => if let Err(e) = r { tracing::debug!(error = %e, "client WebSocket ended") },
        r = down => if let Err(e) = r { tracing::debug!(error = %e, "runtime WebSocket ended") },
    }
    client_w.shutdown().await;
    runtime_w.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computes_the_accept_key() {
        // RFC 6455's example.
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn picks_v5_websockets_only() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        h.insert(header::SEC_WEBSOCKET_KEY, HeaderValue::from_static("k"));
        h.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("v5.channel.k8s.io, v4.channel.k8s.io"));
        assert_eq!(bridged_protocol(&h), Some(V5));
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("v4.channel.k8s.io"));
        assert_eq!(bridged_protocol(&h), None);
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("v5.channel.k8s.io"));
        h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        assert_eq!(bridged_protocol(&h), None);
    }

    #[test]
    fn drops_v5_close_signals_only() {
        assert_eq!(to_runtime(V5, &[255, 0]), None);
        assert_eq!(to_runtime(V5, &[0, b'x']), Some(&[0, b'x'][..]));
        assert_eq!(to_runtime(V5, &[4, b'{']), Some(&[4, b'{'][..]));
        assert_eq!(to_runtime(V4, &[255, 0]), Some(&[255, 0][..]));
    }

    #[tokio::test]
    async fn frames_round_trip() {
        for len in [0usize, 5, 125, 126, 65535, 65536, 70000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            for mask in [None, Some([1, 2, 3, 4])] {
                let bytes = encode_frame(op::BINARY, &payload, mask);
                let mut r = MessageReader::new(&bytes[..]);
                assert_eq!(r.next().await.unwrap(), Some(Message::Data(op::BINARY, payload.clone())));
                assert_eq!(r.next().await.unwrap(), None);
            }
        }
    }

    #[tokio::test]
    async fn reassembles_fragments_around_control_frames() {
        let mut bytes = vec![op::BINARY, 2, 1, b'a']; // not final
        bytes.extend(encode_frame(op::PING, b"hb", Some([9, 9, 9, 9])));
        bytes.extend([op::CONTINUATION, 1, b'b']); // not final
        bytes.extend([0x80 | op::CONTINUATION, 1, b'c']);
        bytes.extend(encode_frame(op::CLOSE, &1000u16.to_be_bytes(), None));
        let mut r = MessageReader::new(&bytes[..]);
        assert_eq!(r.next().await.unwrap(), Some(Message::Ping(b"hb".to_vec())));
        assert_eq!(r.next().await.unwrap(), Some(Message::Data(op::BINARY, vec![1, b'a', b'b', b'c'])));
        assert_eq!(r.next().await.unwrap(), Some(Message::Close(vec![3, 232])));
        // A continuation out of nowhere, a truncated frame.
        assert!(MessageReader::new(&[0x80u8, 0][..]).next().await.is_err());
        assert!(MessageReader::new(&[0x82u8, 5, 1][..]).next().await.is_err());
    }

    /// The bridge between a v5 client and a v4 runtime, over in-memory pipes.
    #[tokio::test]
    async fn bridges_channels() {
        let (client, client_far) = tokio::io::duplex(1 << 16);
        let (runtime, runtime_far) = tokio::io::duplex(1 << 16);
        let bridge = tokio::spawn(run(client_far, runtime_far, V5));
        let (client_r, mut client_w) = tokio::io::split(client);
        let (runtime_r, mut runtime_w) = tokio::io::split(runtime);
        let mut client_r = MessageReader::new(client_r);
        let mut runtime_r = MessageReader::new(runtime_r);

        // Client → runtime: stdin and resize pass, masked; the stdin close signal is dropped.
        client_w.write_all(&encode_frame(op::BINARY, b"\x00ls\n", Some([7, 7, 7, 7]))).await.unwrap();
        client_w.write_all(&encode_frame(op::BINARY, &[255, 0], Some([1, 1, 1, 1]))).await.unwrap();
        client_w.write_all(&encode_frame(op::BINARY, b"\x04{\"Width\":80}", Some([2, 2, 2, 2]))).await.unwrap();
        assert_eq!(runtime_r.next().await.unwrap(), Some(Message::Data(op::BINARY, b"\x00ls\n".to_vec())));
        assert_eq!(runtime_r.next().await.unwrap(), Some(Message::Data(op::BINARY, b"\x04{\"Width\":80}".to_vec())));
        // The client's heartbeat is answered by the bridge.
        client_w.write_all(&encode_frame(op::PING, b"hb", Some([3, 3, 3, 3]))).await.unwrap();
        assert_eq!(client_r.next().await.unwrap(), Some(Message::Pong));

        // Runtime → client: output and status, then the close.
        runtime_w.write_all(&encode_frame(op::BINARY, b"\x01file\n", None)).await.unwrap();
        let status = br#"{"metadata":{},"status":"Success"}"#;
        let mut msg = vec![3];
        msg.extend_from_slice(status);
        runtime_w.write_all(&encode_frame(op::BINARY, &msg, None)).await.unwrap();
        runtime_w.write_all(&encode_frame(op::CLOSE, &1000u16.to_be_bytes(), None)).await.unwrap();
        assert_eq!(client_r.next().await.unwrap(), Some(Message::Data(op::BINARY, b"\x01file\n".to_vec())));
        assert_eq!(client_r.next().await.unwrap(), Some(Message::Data(op::BINARY, msg)));
        assert_eq!(client_r.next().await.unwrap(), Some(Message::Close(1000u16.to_be_bytes().to_vec())));
        tokio::time::timeout(std::time::Duration::from_secs(5), bridge).await.unwrap().unwrap();
        assert_eq!(client_r.next().await.unwrap(), None);
    }
}
