//! The embedded durable backend: every version of every key in one redb file.
//!
//! Table `versions` maps `(key, revision)` to `create_revision (8 bytes, little endian) ·
//! tag (1 byte: 0 tombstone, 1 value) · value`. Table `meta` keeps the newest and the compacted
//! revision. Each engine batch is one write transaction with immediate durability, so an
//! acknowledged write survives a crash; compaction deletes the versions it drops, and redb
//! reuses their pages, so the file stays bounded under steady churn.

use crate::engine::{Loaded, Persist, Record};
use crate::{Error, Result, Revision};
use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::Arc;

const VERSIONS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("versions");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const META_REVISION: &str = "revision";
const META_COMPACTED: &str = "compacted";

fn backend<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> Error {
    move |e| Error::Backend(format!("{what}: {e}"))
}

/// The redb file and its handle.
pub(crate) struct RedbPersist {
    db: Database,
}

impl RedbPersist {
    /// Opens or creates the database file, making sure both tables exist.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::Backend(format!("cannot create {}: {e}", dir.display())))?;
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
        Ok(RedbPersist { db })
    }
}

fn encode(rec: &Record) -> Vec<u8> {
    let value = rec.value.as_deref().unwrap_or_default();
    let mut buf = Vec::with_capacity(9 + value.len());
    buf.extend_from_slice(&rec.create_revision.to_le_bytes());
    buf.push(u8::from(rec.value.is_some()));
    buf.extend_from_slice(value);
    buf
}

fn decode(key: &str, revision: Revision, raw: &[u8]) -> Result<Record> {
    if raw.len() < 9 {
        return Err(Error::Backend(format!("corrupt record for {key} at revision {revision}")));
    }
    let create_revision = u64::from_le_bytes(raw[..8].try_into().expect("eight bytes"));
    let value = (raw[8] == 1).then(|| Bytes::copy_from_slice(&raw[9..]));
    Ok(Record { key: Arc::from(key), revision, create_revision, value })
}

impl Persist for RedbPersist {
    fn load(&mut self) -> Result<Loaded> {
        let tx = self.db.begin_read().map_err(backend("begin read"))?;
        let meta = tx.open_table(META).map_err(backend("open meta"))?;
        let get = |name: &str| -> Result<u64> {
            Ok(meta.get(name).map_err(backend("read meta"))?.map(|v| v.value()).unwrap_or(0))
        };
        let mut loaded = Loaded { revision: get(META_REVISION)?.max(1), compacted: get(META_COMPACTED)?, records: Vec::new() };
        let versions = tx.open_table(VERSIONS).map_err(backend("open versions"))?;
        for row in versions.iter().map_err(backend("scan versions"))? {
            let (k, v) = row.map_err(backend("scan versions"))?;
            let (key, revision) = k.value();
            loaded.records.push(decode(key, revision, v.value())?);
        }
        Ok(loaded)
    }

    fn commit(&mut self, records: &[Record], revision: Revision) -> Result<()> {
        let tx = self.db.begin_write().map_err(backend("begin write"))?;
        {
            let mut versions = tx.open_table(VERSIONS).map_err(backend("open versions"))?;
            for rec in records {
                versions.insert((&*rec.key, rec.revision), encode(rec).as_slice()).map_err(backend("write version"))?;
            }
            let mut meta = tx.open_table(META).map_err(backend("open meta"))?;
            meta.insert(META_REVISION, revision).map_err(backend("write meta"))?;
        }
        tx.commit().map_err(backend("commit"))
    }

    fn compact(&mut self, removed: &[(Arc<str>, Revision)], compacted: Revision) -> Result<()> {
        let tx = self.db.begin_write().map_err(backend("begin write"))?;
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
}
