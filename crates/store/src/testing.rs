//! The storage conformance suite: one set of checks, run against every backend by the
//! `conformance!` macro at the bottom.

use crate::{Error, EventType, ListOptions, Storage, Update, guaranteed_update};
use bytes::Bytes;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub(crate) async fn create_get_and_revisions(s: &dyn Storage) {
    let r0 = s.current_revision();
    let a = s.create("/r/a", b("1")).await.unwrap();
    assert!(a.mod_revision > r0);
    assert_eq!(a.create_revision, a.mod_revision);
    assert_eq!(s.current_revision(), a.mod_revision);
    let got = s.get("/r/a").await.unwrap().unwrap();
    assert_eq!(got, a);
    assert_eq!(s.create("/r/a", b("2")).await.unwrap_err(), Error::AlreadyExists("/r/a".into()));
    let c = s.create("/r/c", b("3")).await.unwrap();
    assert!(c.mod_revision > a.mod_revision, "revisions strictly increase");
    assert!(s.get("/r/missing").await.unwrap().is_none());
}

pub(crate) async fn update_is_compare_and_swap(s: &dyn Storage) {
    let a = s.create("/r/a", b("1")).await.unwrap();
    let a2 = s.update("/r/a", a.mod_revision, b("2")).await.unwrap();
    assert_eq!(a2.create_revision, a.create_revision);
    assert!(a2.mod_revision > a.mod_revision);
    match s.update("/r/a", a.mod_revision, b("3")).await.unwrap_err() {
        Error::Conflict { found: Some(kv), .. } => assert_eq!(*kv, a2),
        e => panic!("expected a conflict, got {e:?}"),
    }
    assert_eq!(s.update("/r/none", 1, b("x")).await.unwrap_err(), Error::NotFound("/r/none".into()));
    assert_eq!(&s.get("/r/a").await.unwrap().unwrap().value[..], b"2");
}

pub(crate) async fn delete_with_preconditions(s: &dyn Storage) {
    let a = s.create("/r/a", b("1")).await.unwrap();
    assert!(matches!(s.delete("/r/a", Some(a.mod_revision + 100)).await, Err(Error::Conflict { .. })));
    let d = s.delete("/r/a", Some(a.mod_revision)).await.unwrap();
    assert_eq!(&d.value[..], b"1");
    assert!(d.mod_revision > a.mod_revision);
    assert!(s.get("/r/a").await.unwrap().is_none());
    assert_eq!(s.delete("/r/a", None).await.unwrap_err(), Error::NotFound("/r/a".into()));
    // A deleted key can be created again, with a new create revision.
    let again = s.create("/r/a", b("again")).await.unwrap();
    assert!(again.create_revision > d.mod_revision);
}

pub(crate) async fn list_paged_and_at_revision(s: &dyn Storage) {
    for i in 0..10 {
        s.create(&format!("/r/items/{i:02}"), b(&i.to_string())).await.unwrap();
    }
    s.create("/r/itemsx", b("outside")).await.unwrap();
    s.create("/r/other/1", b("other")).await.unwrap();
    let all = s.list("/r/items/", ListOptions::default()).await.unwrap();
    assert_eq!(all.items.len(), 10);
    assert!(!all.more);
    let page = s.list("/r/items/", ListOptions { limit: 4, ..Default::default() }).await.unwrap();
    assert_eq!(page.items.len(), 4);
    assert!(page.more);
    assert_eq!(page.remaining, 6);
    let at = page.revision;
    // Changes after the first page do not show in later pages read at its revision.
    s.delete("/r/items/05", None).await.unwrap();
    s.create("/r/items/99", b("new")).await.unwrap();
    let next_key = format!("{}\0", page.items.last().unwrap().key);
    let page2 =
        s.list("/r/items/", ListOptions { start_key: Some(next_key), limit: 100, revision: Some(at) }).await.unwrap();
    let keys: Vec<_> = page2.items.iter().map(|kv| kv.key.to_string()).collect();
    assert_eq!(keys.len(), 6);
    assert!(keys.contains(&"/r/items/05".to_string()));
    assert!(!keys.contains(&"/r/items/99".to_string()));
    let now = s.list("/r/items/", ListOptions::default()).await.unwrap();
    assert_eq!(now.items.len(), 10);
    assert_eq!(s.count("/r/items/").await.unwrap(), 10);
    let future = s.current_revision() + 10;
    assert!(matches!(
        s.list("/r/", ListOptions { revision: Some(future), ..Default::default() }).await,
        Err(Error::FutureRevision { .. })
    ));
}

pub(crate) async fn watch_from_revision(s: &dyn Storage) {
    let start = s.current_revision();
    let a = s.create("/w/a", b("1")).await.unwrap();
    s.create("/x/ignored", b("1")).await.unwrap();
    let a2 = s.update("/w/a", a.mod_revision, b("2")).await.unwrap();
    let mut w = s.watch("/w/", start).await.unwrap();
    s.delete("/w/a", None).await.unwrap();
    let e1 = w.next().await.unwrap().unwrap();
    assert_eq!((e1.event_type, &e1.kv.value[..]), (EventType::Created, &b"1"[..]));
    let e2 = w.next().await.unwrap().unwrap();
    assert_eq!(e2.event_type, EventType::Modified);
    assert_eq!(e2.kv, a2);
    assert_eq!(e2.prev_value.as_deref(), Some(&b"1"[..]));
    let e3 = w.next().await.unwrap().unwrap();
    assert_eq!(e3.event_type, EventType::Deleted);
    assert_eq!(&e3.kv.value[..], b"2", "a deletion carries the last value");
    assert!(e3.kv.mod_revision > a2.mod_revision);
    // A watch from the newest revision sees only later events.
    let mut w2 = s.watch("/w/", s.current_revision()).await.unwrap();
    let b1 = s.create("/w/b", b("b")).await.unwrap();
    let e = tokio::time::timeout(Duration::from_secs(5), w2.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(e.kv, b1);
}

pub(crate) async fn compaction_forgets_history(s: &dyn Storage) {
    let a = s.create("/c/a", b("1")).await.unwrap();
    let a2 = s.update("/c/a", a.mod_revision, b("2")).await.unwrap();
    let gone = s.create("/c/gone", b("x")).await.unwrap();
    s.delete("/c/gone", None).await.unwrap();
    let mid = s.current_revision();
    s.update("/c/a", a2.mod_revision, b("3")).await.unwrap();
    s.compact(mid).await.unwrap();
    assert_eq!(s.compacted_revision(), mid);
    assert!(matches!(
        s.list("/c/", ListOptions { revision: Some(gone.mod_revision), ..Default::default() }).await,
        Err(Error::Compacted { .. })
    ));
    assert!(matches!(s.watch("/c/", a.mod_revision).await, Err(Error::Compacted { .. })));
    // The state at the compaction point is still readable, and so is everything after it.
    let at_mid = s.list("/c/", ListOptions { revision: Some(mid), ..Default::default() }).await.unwrap();
    assert_eq!(at_mid.items.len(), 1);
    assert_eq!(&at_mid.items[0].value[..], b"2");
    let mut w = s.watch("/c/", mid).await.unwrap();
    let e = w.next().await.unwrap().unwrap();
    assert_eq!(&e.kv.value[..], b"3");
    assert_eq!(e.prev_value.as_deref(), Some(&b"2"[..]));
}

pub(crate) async fn guaranteed_update_retries(s: Arc<dyn Storage>) {
    s.create("/g/counter", b("0")).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                guaranteed_update::<(), _>(&*s, "/g/counter", |kv| {
                    let n: u64 = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
                    Ok(Update::Write(b(&(n + 1).to_string())))
                })
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(&s.get("/g/counter").await.unwrap().unwrap().value[..], b"200");
}

pub(crate) async fn concurrent_creates_get_distinct_revisions(s: Arc<dyn Storage>) {
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move { s.create(&format!("/p/{i}"), b("v")).await.unwrap().mod_revision }));
    }
    let mut revs = Vec::new();
    for t in tasks {
        revs.push(t.await.unwrap());
    }
    revs.sort();
    revs.dedup();
    assert_eq!(revs.len(), 200);
    assert_eq!(s.count("/p/").await.unwrap(), 200);
}

macro_rules! conformance {
    ($name:ident, $make:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test]
            async fn create_get_and_revisions() {
                let (s, _g) = $make;
                super::create_get_and_revisions(&*s).await;
            }
            #[tokio::test]
            async fn update_is_compare_and_swap() {
                let (s, _g) = $make;
                super::update_is_compare_and_swap(&*s).await;
            }
            #[tokio::test]
            async fn delete_with_preconditions() {
                let (s, _g) = $make;
                super::delete_with_preconditions(&*s).await;
            }
            #[tokio::test]
            async fn list_paged_and_at_revision() {
                let (s, _g) = $make;
                super::list_paged_and_at_revision(&*s).await;
            }
            #[tokio::test]
            async fn watch_from_revision() {
                let (s, _g) = $make;
                super::watch_from_revision(&*s).await;
            }
            #[tokio::test]
            async fn compaction_forgets_history() {
                let (s, _g) = $make;
                super::compaction_forgets_history(&*s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn guaranteed_update_retries() {
                let (s, _g) = $make;
                super::guaranteed_update_retries(s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_creates_get_distinct_revisions() {
                let (s, _g) = $make;
                super::concurrent_creates_get_distinct_revisions(s).await;
            }
        }
    };
}

conformance!(memory, (crate::memory(), ()));
conformance!(embedded, {
    let dir = tempfile::tempdir().unwrap();
    (crate::open_embedded(&dir.path().join("state.db"), Default::default()).unwrap(), dir)
});

/// Checks that only the durable backend has: data and revisions survive a reopen, and the
/// file stays bounded under churn when compacted.
mod embedded_durability {
    use super::*;

    #[tokio::test]
    async fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let (rev, compacted) = {
            let s = crate::open_embedded(&path, Default::default()).unwrap();
            let a = s.create("/d/a", b("1")).await.unwrap();
            s.update("/d/a", a.mod_revision, b("2")).await.unwrap();
            s.create("/d/b", b("b")).await.unwrap();
            s.delete("/d/b", None).await.unwrap();
            s.compact(a.mod_revision).await.unwrap();
            s.create("/d/c", b("c")).await.unwrap();
            (s.current_revision(), s.compacted_revision())
        };
        // The writer thread of the first handle ends when its queue closes; give it a moment.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let s = crate::open_embedded(&path, Default::default()).unwrap();
        assert_eq!(s.current_revision(), rev);
        assert_eq!(s.compacted_revision(), compacted);
        assert_eq!(&s.get("/d/a").await.unwrap().unwrap().value[..], b"2");
        assert!(s.get("/d/b").await.unwrap().is_none());
        let mut w = s.watch("/d/", compacted).await.unwrap();
        let mut seen = Vec::new();
        while let Ok(Some(Ok(e))) = tokio::time::timeout(Duration::from_millis(200), w.next()).await {
            seen.push((e.event_type, e.kv.key.to_string()));
        }
        assert_eq!(seen.last(), Some(&(EventType::Created, "/d/c".to_string())));
        let next = s.create("/d/d", b("d")).await.unwrap();
        assert!(next.mod_revision > rev);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn file_stays_bounded_under_churn() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let s = crate::open_embedded(&path, Default::default()).unwrap();
        let value = Bytes::from(vec![b'x'; 2048]);
        let mut sizes = Vec::new();
        for round in 0..12 {
            for i in 0..400 {
                let key = format!("/churn/{}", i % 20);
                match s.get(&key).await.unwrap() {
                    Some(kv) => s.update(&key, kv.mod_revision, value.clone()).await.unwrap(),
                    None => s.create(&key, value.clone()).await.unwrap(),
                };
            }
            s.compact(s.current_revision()).await.unwrap();
            sizes.push((round, std::fs::metadata(&path).unwrap().len()));
        }
        // 4,800 writes of 2 KiB would be about 10 MB without compaction; the live data is 40 KiB.
        // The file may double once (whenever a large gathered transaction needs fresh pages),
        // but never grows beyond that.
        let last = sizes.last().unwrap().1;
        assert!(last < 6 << 20, "store file grew to {last} bytes: {sizes:?}");
        assert!(sizes.iter().all(|(_, n)| *n <= sizes[0].1 * 2), "file keeps growing under churn: {sizes:?}");
    }
}
