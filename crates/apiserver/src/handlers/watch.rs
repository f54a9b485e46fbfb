//! WATCH: newline-delimited JSON events from the watch cache.
//!
//! Start points as upstream: no `resourceVersion` or `0` → synthetic ADDED events for what
//! exists, then changes; `N` → changes after N (an ERROR event with 410 when N is older than the
//! cache's window); `sendInitialEvents=true` → ADDED events, then a BOOKMARK annotated
//! `k8s.io/initial-events-end`. Objects entering or leaving a selector show as ADDED/DELETED.
//! With `allowWatchBookmarks`, BOOKMARKs come periodically and about two seconds before
//! `timeoutSeconds` ends the stream.
//!
//! Event objects are the cached bytes unless the `Accept` header asks for a conversion: then
//! each object (bookmarks included, ERROR statuses excepted) becomes a one-row `Table`, whose
//! `columnDefinitions` only the first event carries, or a `PartialObjectMetadata`, as upstream's
//! watch encoder does.

use crate::cache::{CacheEvent, CacheEventType, CachedObject, Filter, WatchError, WatchStart};
use crate::handlers::list::build_filter;
use crate::negotiate::{self, Conversion, Endpoint, Negotiated};
use crate::object::{self, from_storage};
use crate::printers::TableOptions;
use crate::request::ResourceRequest;
use crate::server::{ApiServer, Ctx};
use crate::status::{ApiError, ApiResult};
use axum::body::Body;
use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, Response, header};
use rudder_api::catalog::Resource;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

/// How often a quiet watch gets a bookmark.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(60);

fn frame(event_type: &str, object: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(object.len() + 32);
    b.put_slice(b"{\"type\":\"");
    b.put_slice(event_type.as_bytes());
    b.put_slice(b"\",\"object\":");
    b.put_slice(object);
    b.put_slice(b"}\n");
    b.freeze()
}

/// The conversion event objects go through, when the client asked for one.
struct Transform {
    media: Negotiated,
    /// For Tables; `headers` turns false once the first event has been sent.
    table: Option<TableOptions>,
}

struct Watcher {
    res: &'static Resource,
    filter: Filter,
    bookmarks: bool,
    /// Every event up to this revision has been handled.
    revision: u64,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    transform: Option<Transform>,
}

impl Watcher {
    async fn send(&self, chunk: Bytes) -> bool {
        self.tx.send(Ok(chunk)).await.is_ok()
    }

    /// An event object as the client gets it: the cached bytes on the fast path.
    fn object_json(&mut self, obj: &CachedObject) -> Bytes {
        if self.transform.is_none() && self.res.api_version() == self.res.storage_version {
            return obj.json();
        }
        match from_storage(self.res, obj.value()) {
            Ok(v) => self.value_json(v),
            Err(_) => obj.json(),
        }
    }

    /// Encodes an event object (served version), converted as negotiated.
    fn value_json(&mut self, v: Value) -> Bytes {
        let v = match &mut self.transform {
            None => v,
            Some(t) => {
                let out = match t.media.conversion {
                    Conversion::PartialObjectMetadata(version) => negotiate::partial_object_metadata(&v, version),
                    Conversion::Table(version) => {
                        let opts = t.table.unwrap_or(TableOptions {
                            version,
                            include: crate::printers::IncludeObject::Metadata,
                            headers: true,
                        });
                        negotiate::object_table(self.res, &v, opts)
                    }
                    // A single object cannot become a list; upstream sends it unconverted.
                    Conversion::PartialObjectMetadataList(_) | Conversion::None => v,
                };
                if let Some(opts) = &mut t.table {
                    opts.headers = false;
                }
                out
            }
        };
        Bytes::from(serde_json::to_vec(&v).expect("JSON values encode"))
    }

    /// Sends one event if it concerns this watcher; false when the client is gone.
    async fn event(&mut self, ev: &CacheEvent) -> bool {
        let rev = ev.revision();
        if rev <= self.revision {
            return true;
        }
        self.revision = rev;
        let now = self.filter.matches(&ev.object);
        let before = ev.prev.as_ref().is_some_and(|p| self.filter.matches(p));
        let chunk = match (ev.event_type, before, now) {
            (CacheEventType::Added, _, true) => frame("ADDED", &self.object_json(&ev.object)),
            (CacheEventType::Modified, true, true) => frame("MODIFIED", &self.object_json(&ev.object)),
            (CacheEventType::Modified, false, true) => frame("ADDED", &self.object_json(&ev.object)),
            (CacheEventType::Modified, true, false) => {
                // Leaving the selection: the previous state at this event's revision.
                let prev = ev.prev.as_ref().expect("matched before, so there was a previous state");
                let mut v = prev.value();
                object::meta_mut(&mut v).insert("resourceVersion".into(), json!(rev.to_string()));
                let v = from_storage(self.res, v).unwrap_or(Value::Null);
                frame("DELETED", &self.value_json(v))
            }
            (CacheEventType::Deleted, _, true) => frame("DELETED", &self.object_json(&ev.object)),
            _ => return true,
        };
        self.send(chunk).await
    }

    fn bookmark_frame(&mut self, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": self.revision.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.res.kind, "apiVersion": self.res.api_version(), "metadata": meta});
        // Upstream converts bookmarks like any other event object.
        frame("BOOKMARK", &self.value_json(obj))
    }
}

fn error_frame(err: &ApiError) -> Bytes {
    frame("ERROR", &serde_json::to_vec(&err.to_status()).expect("JSON values encode"))
}

/// `GET ...?watch=true`.
pub async fn watch(srv: &ApiServer, req: &ResourceRequest, ctx: &Ctx) -> ApiResult<Response<Body>> {
    let res = req.resource;
    let q = &ctx.query;
    let media = negotiate::for_request(ctx, Endpoint::WATCH)?;
    let transform = if media.is_plain_json() {
        None
    } else {
        Some(Transform { media, table: negotiate::table_options(ctx, &media, true)? })
    };
    let filter = build_filter(req, ctx)?;
    let rv = match q.resource_version.as_deref() {
        None => None,
        Some(s) => Some(object::parse_rv(s)?),
    };
    crate::handlers::list::validate_list_options(&ctx.query, true)?;
    let send_initial = q.send_initial_events;
    let start = match (send_initial, rv) {
        (Some(true), Some(n)) if n > 0 => {
            if !srv.cache.wait_for(n, Duration::from_secs(3)).await {
                return Err(ApiError::timeout(format!(
                    "Too large resource version: {n}, current: {}",
                    srv.cache.revision()
                )));
            }
            WatchStart::NowWithInitial
        }
        (Some(true), _) => WatchStart::NowWithInitial,
        (Some(false), None) | (Some(false), Some(0)) => WatchStart::After(srv.cache.revision()),
        (_, None) | (_, Some(0)) => WatchStart::NowWithInitial,
        (_, Some(n)) => WatchStart::After(n),
    };
    let timeout = match q.timeout_seconds {
        Some(t) if t > 0 => Duration::from_secs(t as u64),
        _ => {
            use rand::Rng;
            Duration::from_secs(1800 + rand::rng().random_range(0..1800))
        }
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let mut resp = Response::new(Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));

    let registered = match srv.cache.watch(&filter, start) {
        Ok(w) => w,
        Err(WatchError::TooOld { requested, oldest }) => {
            let err = ApiError::expired(format!("too old resource version: {requested} ({oldest})"));
            let _ = tx.try_send(Ok(error_frame(&err)));
            return Ok(resp);
        }
    };
    let mut watcher =
        Watcher { res, filter, bookmarks: q.allow_watch_bookmarks, revision: registered.revision, tx, transform };
    let cache = srv.cache.clone();
    let mut shutdown = srv.shutdown.clone();
    tokio::spawn(async move {
        let deadline = Instant::now() + timeout;
        for obj in &registered.initial {
            let chunk = frame("ADDED", &watcher.object_json(obj));
            if !watcher.send(chunk).await {
                return;
            }
        }
        if send_initial == Some(true) {
            let chunk = watcher.bookmark_frame(true);
            if !watcher.send(chunk).await {
                return;
            }
        }
        // Backlog events carry revisions above `registered.revision` only when starting in
        // the past; start just below the first of them.
        if let Some(first) = registered.backlog.first() {
            watcher.revision = watcher.revision.min(first.revision() - 1);
        }
        for ev in &registered.backlog {
            if !watcher.event(ev).await {
                return;
            }
        }
        let mut receiver = registered.receiver;
        let final_bookmark = deadline.checked_sub(Duration::from_secs(2)).filter(|t| *t > Instant::now());
        let mut next_bookmark = Instant::now() + BOOKMARK_INTERVAL;
        if let Some(fb) = final_bookmark {
            next_bookmark = next_bookmark.min(fb);
        }
        let mut final_sent = false;
        // The timers live across events (made once, reset when due), not once per event.
        let bookmark_due = tokio::time::sleep_until(next_bookmark);
        let timed_out = tokio::time::sleep_until(deadline);
        tokio::pin!(bookmark_due, timed_out);
        loop {
            tokio::select! {
                ev = receiver.recv() => match ev {
                    Ok(ev) => if !watcher.event(&ev).await { return },
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Too slow to keep up: end the watch; the client resumes from its last revision.
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = &mut bookmark_due, if watcher.bookmarks => {
                    // Everything the cache had published by now is handled first, so the
                    // bookmark never runs ahead of an event this watcher still owes.
                    let seen = cache.revision();
                    loop {
                        match receiver.try_recv() {
                            Ok(ev) => if !watcher.event(&ev).await { return },
                            Err(broadcast::error::TryRecvError::Empty) => break,
                            Err(_) => return,
                        }
                    }
                    watcher.revision = watcher.revision.max(seen);
                    let chunk = watcher.bookmark_frame(false);
                    if !watcher.send(chunk).await { return }
                    if final_bookmark.is_some_and(|fb| next_bookmark >= fb) {
                        final_sent = true;
                    }
                    next_bookmark = Instant::now() + BOOKMARK_INTERVAL;
                    if let Some(fb) = final_bookmark.filter(|_| !final_sent) {
                        next_bookmark = next_bookmark.min(fb);
                    }
                    bookmark_due.as_mut().reset(next_bookmark);
                },
                _ = &mut timed_out => return,
                _ = shutdown.changed() => return,
                _ = watcher.tx.closed() => return,
            }
        }
    });
    Ok(resp)
}
