//! The embedded durable backend: a redb file holding every version of every key, and a
//! write-ahead log beside it (`<file>-wal`, as SQLite's WAL mode keeps one).
//!
//! A batch is durable once its log frame is written and `fdatasync`ed: one small sequential
//! write per batch, whatever its size. After a checkpoint the log is written again from its
//! start over the blocks it already has (as etcd preallocates its WAL): overwriting allocated
//! blocks spares `fdatasync` the file-size update that appending costs (0.12 ms against 0.25 ms
//! per sync here). The same batch also goes into redb in a transaction
//! without its own flush, which costs little. Every [`CHECKPOINT_BYTES`] of log or
//! [`CHECKPOINT_INTERVAL`], one flushing redb commit makes all of those transactions durable at
//! once and the log starts over. On open, redb comes back at its last flushed commit and the
//! log's frames after it are replayed; a frame torn by a crash fails its checksum and ends the
//! replay (its batch was never acknowledged, as acknowledgement waits for the flush). Frames
//! left from before the last checkpoint hold revisions redb already has and are skipped.
//!
//! redb layout: table `versions` maps `(key, revision)` to `create_revision (8 bytes LE) · tag
//! (1 byte: 0 tombstone, 1 value) · value`; table `meta` keeps the newest and the compacted
//! revision. Compaction deletes dropped versions and redb reuses their pages, so the file stays
//! bounded under steady churn.

use crate::engine::{Loaded, Persist, Record};
use crate::{Error, Result, Revision};
use bytes::Bytes;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const VERSIONS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("versions");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const META_REVISION: &str = "revision";
const META_COMPACTED: &str = "compacted";

/// Log size after which redb is flushed and the log restarted.
const CHECKPOINT_BYTES: u64 = 64 << 20;
/// How much the log grows at a time.
const WAL_CHUNK: u64 = 4 << 20;
/// Longest time between checkpoints while writes keep coming.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(30);
/// How long the applier gathers durable batches into one redb transaction. Batches are in the
/// log already and reads come from memory, so this only delays the file, which a checkpoint or
/// compaction waits for anyway; one transaction per gathering costs far less than one per batch.
const APPLY_GATHER: Duration = Duration::from_millis(50);
/// Most records written in one gathered transaction.
const APPLY_MAX_RECORDS: usize = 256;

fn backend<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> Error {
    move |e| Error::Backend(format!("{what}: {e}"))
}

/// Work for the applier thread, done in the order sent.
enum Job {
    /// Writes an already-durable batch into redb without flushing.
    Write(Vec<Record>, Revision),
    /// Flushes redb once everything sent before is written; answers when done.
    Flush(std::sync::mpsc::Sender<Result<()>>),
    /// Deletes compacted versions; answers when done.
    Compact(Vec<(Arc<str>, Revision)>, Revision, std::sync::mpsc::Sender<Result<()>>),
}

/// The redb file, its log, and checkpoint bookkeeping.
///
/// The log sync is what makes a batch durable, so the redb write of a batch happens on an
/// applier thread, after the batch is acknowledged and in batch order; checkpoints and
/// compaction go through the same thread and wait for it. (Writing redb on the commit path
/// halved the store's throughput at 16 concurrent writers.)
pub(crate) struct RedbPersist {
    db: Arc<Database>,
    applier: Option<(std::sync::mpsc::Sender<Job>, std::thread::JoinHandle<()>)>,
    /// The first error of the applier, reported by the next commit.
    failed: Arc<parking_lot::Mutex<Option<Error>>>,
    wal: File,
    wal_path: PathBuf,
    /// Where the next frame goes; also how much has been written since the last checkpoint.
    wal_bytes: u64,
    /// How long the log file is: blocks up to here exist and are overwritten in place.
    wal_allocated: u64,
    last_checkpoint: Instant,
}

fn encode_value(rec: &Record) -> Vec<u8> {
    let value = rec.value.as_deref().unwrap_or_default();
    let mut buf = Vec::with_capacity(9 + value.len());
    buf.extend_from_slice(&rec.create_revision.to_le_bytes());
    buf.push(u8::from(rec.value.is_some()));
    buf.extend_from_slice(value);
    buf
}

fn decode_value(key: &str, revision: Revision, raw: &[u8]) -> Result<Record> {
    if raw.len() < 9 {
        return Err(Error::Backend(format!("corrupt record for {key} at revision {revision}")));
    }
    let create_revision = u64::from_le_bytes(raw[..8].try_into().expect("eight bytes"));
    let value = (raw[8] == 1).then(|| Bytes::copy_from_slice(&raw[9..]));
    Ok(Record { key: Arc::from(key), revision, create_revision, value })
}

/// FNV-1a, 64 bits: enough to tell a torn frame from a whole one.
fn checksum(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// One log frame: `len u32 · checksum u64 · payload`, payload = `count u32` then per record
/// `key_len u32 · key · revision u64 · create_revision u64 · tag u8 · value_len u32 · value`.
fn encode_frame(records: &[Record]) -> Vec<u8> {
    let size: usize = records.iter().map(|r| 25 + r.key.len() + r.value.as_ref().map_or(0, |v| v.len())).sum();
    let mut payload = Vec::with_capacity(4 + size);
    payload.extend_from_slice(&(records.len() as u32).to_le_bytes());
    for r in records {
        payload.extend_from_slice(&(r.key.len() as u32).to_le_bytes());
        payload.extend_from_slice(r.key.as_bytes());
        payload.extend_from_slice(&r.revision.to_le_bytes());
        payload.extend_from_slice(&r.create_revision.to_le_bytes());
        payload.push(u8::from(r.value.is_some()));
        let v = r.value.as_deref().unwrap_or_default();
        payload.extend_from_slice(&(v.len() as u32).to_le_bytes());
        payload.extend_from_slice(v);
    }
    let mut frame = Vec::with_capacity(12 + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&checksum(&payload).to_le_bytes());
    frame.extend_from_slice(&payload);
    frame
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes(b.try_into().expect("four bytes")))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|b| u64::from_le_bytes(b.try_into().expect("eight bytes")))
    }
}

fn decode_payload(payload: &[u8]) -> Option<Vec<Record>> {
    let mut c = Cursor(payload);
    let count = c.u32()? as usize;
    let mut out = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let key_len = c.u32()? as usize;
        let key = std::str::from_utf8(c.take(key_len)?).ok()?;
        let revision = c.u64()?;
        let create_revision = c.u64()?;
        let tag = c.take(1)?[0];
        let len = c.u32()? as usize;
        let value = c.take(len)?;
        out.push(Record {
            key: Arc::from(key),
            revision,
            create_revision,
            value: (tag == 1).then(|| Bytes::copy_from_slice(value)),
        });
    }
    Some(out)
}

/// Reads whole frames from the start of the log; stops at the first torn or corrupt one.
fn read_frames(bytes: &[u8]) -> Vec<Record> {
    let mut c = Cursor(bytes);
    let mut out = Vec::new();
    while let Some(len) = c.u32() {
        let Some(sum) = c.u64() else { break };
        let Some(payload) = c.take(len as usize) else { break };
        if checksum(payload) != sum {
            break;
        }
        match decode_payload(payload) {
            Some(records) => out.extend(records),
            None => break,
        }
    }
    out
}

impl RedbPersist {
    /// Opens or creates the database file and its log, making sure both tables exist.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Backend(format!("cannot create {}: {e}", dir.display())))?;
        }
        let db = Database::builder()
            .set_cache_size(16 << 20)
            .create(path)
            .map_err(|e| Error::Backend(format!("cannot open the store file {}: {e}", path.display())))?;
        let tx = db.begin_write().map_err(backend("begin write"))?;
        {
            tx.open_table(VERSIONS).map_err(backend("open versions"))?;
            tx.open_table(META).map_err(backend("open meta"))?;
        }
        tx.commit().map_err(backend("commit"))?;
        let mut wal_path = path.as_os_str().to_owned();
        wal_path.push("-wal");
        let wal_path = PathBuf::from(wal_path);
        let wal = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&wal_path)
            .map_err(|e| Error::Backend(format!("cannot open the store log {}: {e}", wal_path.display())))?;
        let wal_allocated = wal.metadata().map_err(backend("inspect the store log"))?.len();
        let db = Arc::new(db);
        let failed = Arc::new(parking_lot::Mutex::new(None));
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let (apply_db, apply_failed) = (db.clone(), failed.clone());
        let handle = std::thread::Builder::new()
            .name("store-applier".into())
            .spawn(move || {
                let mut next = None;
                loop {
                    let job = match next.take() {
                        Some(job) => job,
                        None => match rx.recv() {
                            Ok(job) => job,
                            Err(_) => break,
                        },
                    };
                    match job {
                        Job::Write(mut records, mut revision) => {
                            // Later batches join this transaction, in order, until the gathering
                            // time is up or another kind of job arrives (it runs right after).
                            // The thread sleeps between looks at the queue rather than waiting on
                            // it, so a batch sent meanwhile costs its sender no wake-up; jobs that
                            // someone waits for unpark it (`send`).
                            let until = Instant::now() + APPLY_GATHER;
                            'gather: while records.len() < APPLY_MAX_RECORDS {
                                match rx.try_recv() {
                                    Ok(Job::Write(more, rev)) => {
                                        records.extend(more);
                                        revision = rev;
                                    }
                                    Ok(other) => {
                                        next = Some(other);
                                        break 'gather;
                                    }
                                    Err(std::sync::mpsc::TryRecvError::Disconnected) => break 'gather,
                                    Err(std::sync::mpsc::TryRecvError::Empty) => {
                                        let now = Instant::now();
                                        if now >= until {
                                            break 'gather;
                                        }
                                        std::thread::park_timeout(until - now);
                                    }
                                }
                            }
                            if let Err(e) = write_to_db(&apply_db, &records, revision, Durability::None) {
                                apply_failed.lock().get_or_insert(e);
                            }
                        }
                        Job::Flush(reply) => {
                            let res = match apply_failed.lock().clone() {
                                Some(e) => Err(e),
                                None => flush(&apply_db),
                            };
                            let _ = reply.send(res);
                        }
                        Job::Compact(removed, compacted, reply) => {
                            let _ =
                                reply.send(compact_db(&apply_db, &removed, compacted).and_then(|_| flush(&apply_db)));
                        }
                    }
                }
            })
            .map_err(|e| Error::Backend(format!("cannot start the store applier thread: {e}")))?;
        Ok(RedbPersist {
            db,
            applier: Some((tx, handle)),
            failed,
            wal,
            wal_path,
            wal_bytes: 0,
            wal_allocated,
            last_checkpoint: Instant::now(),
        })
    }

    fn send(&self, job: Job) -> Result<()> {
        match &self.applier {
            Some((tx, handle)) => {
                let wake = !matches!(job, Job::Write(..));
                tx.send(job).map_err(|_| Error::Backend("the store applier thread stopped".into()))?;
                if wake {
                    // The applier may be sleeping through a gathering (see its loop).
                    handle.thread().unpark();
                }
                Ok(())
            }
            None => Err(Error::Closed),
        }
    }

    /// Sends a job that answers, and waits for the answer.
    fn call(&self, job: impl FnOnce(std::sync::mpsc::Sender<Result<()>>) -> Job) -> Result<()> {
        let (reply, answer) = std::sync::mpsc::channel();
        self.send(job(reply))?;
        answer.recv().map_err(|_| Error::Backend("the store applier thread stopped".into()))?
    }
}

impl Drop for RedbPersist {
    fn drop(&mut self) {
        // Lets the applier finish what was sent, so the file is closed when this returns.
        if let Some((tx, handle)) = self.applier.take() {
            drop(tx);
            handle.thread().unpark();
            let _ = handle.join();
        }
    }
}

/// Flushes redb: every earlier unflushed commit becomes durable.
fn flush(db: &Database) -> Result<()> {
    let tx = db.begin_write().map_err(backend("begin write"))?;
    tx.commit().map_err(backend("checkpoint commit"))
}

fn compact_db(db: &Database, removed: &[(Arc<str>, Revision)], compacted: Revision) -> Result<()> {
    let mut tx = db.begin_write().map_err(backend("begin write"))?;
    tx.set_durability(Durability::None).map_err(backend("set durability"))?;
    {
        let mut versions = tx.open_table(VERSIONS).map_err(backend("open versions"))?;
        for (key, revision) in removed {
            versions.remove((&**key, *revision)).map_err(backend("remove version"))?;
        }
        let mut meta = tx.open_table(META).map_err(backend("open meta"))?;
        meta.insert(META_COMPACTED, compacted).map_err(backend("write meta"))?;
    }
    tx.commit().map_err(backend("commit"))
}

fn write_to_db(db: &Database, records: &[Record], revision: Revision, durability: Durability) -> Result<()> {
    {
        let mut tx = db.begin_write().map_err(backend("begin write"))?;
        tx.set_durability(durability).map_err(backend("set durability"))?;
        {
            let mut versions = tx.open_table(VERSIONS).map_err(backend("open versions"))?;
            for rec in records {
                versions
                    .insert((&*rec.key, rec.revision), encode_value(rec).as_slice())
                    .map_err(backend("write version"))?;
            }
            let mut meta = tx.open_table(META).map_err(backend("open meta"))?;
            meta.insert(META_REVISION, revision).map_err(backend("write meta"))?;
        }
        tx.commit().map_err(backend("commit"))
    }
}

impl RedbPersist {
    /// Flushes redb once the applier has written everything sent before; the log is then
    /// written again from its start.
    fn checkpoint(&mut self) -> Result<()> {
        self.call(Job::Flush)?;
        self.wal_bytes = 0;
        self.last_checkpoint = Instant::now();
        Ok(())
    }
}

impl Persist for RedbPersist {
    fn load(&mut self) -> Result<Loaded> {
        let mut loaded = {
            let tx = self.db.begin_read().map_err(backend("begin read"))?;
            let meta = tx.open_table(META).map_err(backend("open meta"))?;
            let get = |name: &str| -> Result<u64> {
                Ok(meta.get(name).map_err(backend("read meta"))?.map(|v| v.value()).unwrap_or(0))
            };
            let mut loaded =
                Loaded { revision: get(META_REVISION)?.max(1), compacted: get(META_COMPACTED)?, records: Vec::new() };
            let versions = tx.open_table(VERSIONS).map_err(backend("open versions"))?;
            for row in versions.iter().map_err(backend("scan versions"))? {
                let (k, v) = row.map_err(backend("scan versions"))?;
                let (key, revision) = k.value();
                loaded.records.push(decode_value(key, revision, v.value())?);
            }
            loaded
        };
        // Replays acknowledged batches that redb had not flushed yet.
        let mut bytes = Vec::new();
        let mut f = File::open(&self.wal_path).map_err(backend("open the store log"))?;
        f.read_to_end(&mut bytes).map_err(backend("read the store log"))?;
        let replay: Vec<Record> = read_frames(&bytes).into_iter().filter(|r| r.revision > loaded.revision).collect();
        if let Some(newest) = replay.iter().map(|r| r.revision).max() {
            write_to_db(&self.db, &replay, newest, Durability::Immediate)?;
            loaded.revision = newest;
            loaded.records.extend(replay);
        }
        self.checkpoint()?;
        Ok(loaded)
    }

    fn commit(&mut self, records: &[Record], revision: Revision) -> Result<()> {
        // A failed redb write stops further writes before they reach the log.
        if let Some(e) = self.failed.lock().clone() {
            return Err(e);
        }
        let frame = encode_frame(records);
        let end = self.wal_bytes + frame.len() as u64;
        if end > self.wal_allocated {
            // Grows the log ahead of the writes in zeroed chunks (a zero frame header fails its
            // checksum, so replay stops there), so most syncs only overwrite existing blocks.
            let chunk = (end - self.wal_allocated).max(WAL_CHUNK);
            let zeros = vec![0u8; chunk as usize];
            self.wal.write_all_at(&zeros, self.wal_allocated).map_err(backend("grow the store log"))?;
            self.wal_allocated += chunk;
        }
        self.wal.write_all_at(&frame, self.wal_bytes).map_err(backend("write to the store log"))?;
        self.wal.sync_data().map_err(backend("sync the store log"))?;
        self.wal_bytes += frame.len() as u64;
        self.send(Job::Write(records.to_vec(), revision))?;
        if self.wal_bytes >= CHECKPOINT_BYTES || self.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL {
            self.checkpoint()?;
        }
        Ok(())
    }

    fn compact(&mut self, removed: &[(Arc<str>, Revision)], compacted: Revision) -> Result<()> {
        // Compaction need not be in the log: losing it in a crash only keeps history longer.
        // The applier deletes and then flushes, after every batch sent before: a checkpoint.
        self.call(|reply| Job::Compact(removed.to_vec(), compacted, reply))?;
        self.wal_bytes = 0;
        self.last_checkpoint = Instant::now();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(key: &str, revision: u64, value: Option<&str>) -> Record {
        Record {
            key: Arc::from(key),
            revision,
            create_revision: 1,
            value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
        }
    }

    #[test]
    fn log_frames_round_trip_and_stop_at_a_torn_frame() {
        let a = encode_frame(&[rec("/a", 2, Some("x")), rec("/b", 3, None)]);
        let b = encode_frame(&[rec("/c", 4, Some("yy"))]);
        let mut log = [a.clone(), b.clone()].concat();
        let all = read_frames(&log);
        assert_eq!(
            all.iter().map(|r| (r.key.to_string(), r.revision)).collect::<Vec<_>>(),
            [("/a".into(), 2), ("/b".into(), 3), ("/c".into(), 4)]
        );
        assert_eq!(all[1].value, None);
        log.truncate(a.len() + b.len() - 1);
        assert_eq!(read_frames(&log).len(), 2, "a torn last frame is dropped");
        let mut flipped = [a.clone(), b].concat();
        let at = a.len() + 15;
        flipped[at] ^= 0xff;
        assert_eq!(read_frames(&flipped).len(), 2, "a corrupt frame ends the replay");
    }

    #[test]
    fn unflushed_batches_come_back_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let mut p = RedbPersist::open(&path).unwrap();
            p.load().unwrap();
            p.commit(&[rec("/k", 2, Some("v2"))], 2).unwrap();
            p.commit(&[rec("/k", 3, Some("v3")), rec("/j", 4, Some("j"))], 4).unwrap();
            // Dropped without a checkpoint: redb's last flushed commit predates both batches.
        }
        let mut p = RedbPersist::open(&path).unwrap();
        let loaded = p.load().unwrap();
        assert_eq!(loaded.revision, 4);
        let mut got: Vec<_> = loaded.records.iter().map(|r| (r.key.to_string(), r.revision)).collect();
        got.sort();
        assert_eq!(got, [("/j".into(), 4), ("/k".into(), 2), ("/k".into(), 3)]);
        drop(p);
        // The frames stay in the log, but redb has them now: nothing is replayed twice.
        let mut p = RedbPersist::open(&path).unwrap();
        assert_eq!(p.load().unwrap().records.len(), 3);
    }

    #[test]
    fn frames_only_in_the_log_are_replayed_into_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let mut p = RedbPersist::open(&path).unwrap();
            p.load().unwrap();
            p.commit(&[rec("/k", 2, Some("v2"))], 2).unwrap();
            p.checkpoint().unwrap();
        }
        // A batch that reached the log but not the file, as after a crash: after the checkpoint
        // the log is written from its start again.
        let frame = encode_frame(&[rec("/k", 3, None), rec("/n", 5, Some("new"))]);
        let wal = std::fs::OpenOptions::new().write(true).open(dir.path().join("state.db-wal")).unwrap();
        wal.write_all_at(&frame, 0).unwrap();
        {
            let mut p = RedbPersist::open(&path).unwrap();
            let loaded = p.load().unwrap();
            assert_eq!(loaded.revision, 5);
            assert_eq!(loaded.records.len(), 3);
        }
        // After the replay the file itself holds them.
        let mut p = RedbPersist::open(&path).unwrap();
        let loaded = p.load().unwrap();
        assert_eq!(loaded.revision, 5);
        assert!(loaded.records.iter().any(|r| &*r.key == "/n" && r.value.as_deref() == Some(&b"new"[..])));
        assert!(loaded.records.iter().any(|r| &*r.key == "/k" && r.revision == 3 && r.value.is_none()));
    }
}
