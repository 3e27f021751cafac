//! The all-in-one mode's storage: a single [redb] file under the data dir.
//!
//! redb is a pure-Rust, crash-safe (copy-on-write B-trees, checksummed commits)
//! embedded database: nothing to install, and a committed transaction survives a
//! crash the next instant. Fulfillments go through a [group commit](group_commit)
//! writer so that many concurrent requests share one sync of a
//! [journal](journal), and reach redb in large transactions; the leaderboard's
//! aggregates are kept in memory as well ([`aggregates`]).
//!
//! The key layout is in [`schema`]; it is versioned and migrated on open.

mod accounts;
mod aggregates;
mod blocks;
mod group_commit;
mod journal;
mod ledger;
mod overlay;
mod rates;
pub mod schema;
mod subscriptions;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hq_core::domain::Fulfillment;
use hq_core::StoreError;
use redb::Database;
use uuid::Uuid;

pub use schema::SCHEMA_VERSION;

/// The store. Cheap to clone; all clones share one database and one writer.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    writer: group_commit::Writer,
    ledger: Arc<group_commit::Shared>,
    path: PathBuf,
}

/// File name of the database inside the data dir.
pub const DB_FILE: &str = "hq.redb";

impl EmbeddedStore {
    /// Opens (or creates) the database in `data_dir`, migrating it to the current
    /// schema. Fails if another process has it open.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError(format!("creating {}: {e}", data_dir.display())))?;
        let path = data_dir.join(DB_FILE);
        let db = Database::create(&path)
            .map_err(|e| StoreError(format!("opening {}: {e}", path.display())))?;
        let journaled = |e: std::io::Error| {
            StoreError(format!(
                "reading the journal in {}: {e}",
                data_dir.display()
            ))
        };
        let (mut journal, leftover) = journal::Journal::open(data_dir).map_err(journaled)?;
        schema::prepare(&db, &leftover)?;
        let last_id = recover(&db, leftover)?;
        journal.reset().map_err(journaled)?;
        let ledger = Arc::new(group_commit::Shared {
            overlay: Default::default(),
            gate: Default::default(),
            aggregates: parking_lot::Mutex::new(aggregates::Aggregates::load(&db)?),
        });
        let db = Arc::new(db);
        let writer = group_commit::Writer::start(db.clone(), journal, ledger.clone(), last_id);
        Ok(Self {
            db,
            writer,
            ledger,
            path,
        })
    }

    /// Commits whatever is queued and stops the writer (graceful shutdown).
    pub async fn close(&self) {
        self.writer.close().await;
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs a blocking database call off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(StoreError::new)?
    }
}

/// Stores what the journal held that redb lacks (records synced before a crash
/// or kill; the caller then empties the journal) and returns the highest id
/// stored. The applier stores groups in order, so the records redb lacks are
/// exactly those above its highest id.
fn recover(db: &Database, mut journaled: Vec<Fulfillment>) -> Result<Option<Uuid>, StoreError> {
    let txn = db.begin_write().map_err(err)?;
    let last = blocks::last_id(&txn.open_table(schema::BLOCKS).map_err(err)?)?;
    journaled.retain(|f| last.is_none_or(|last| f.id > last));
    if journaled.is_empty() {
        return Ok(last);
    }
    journaled.sort_by_key(|f| f.id);
    blocks::store_records(&txn, &journaled, true)?;
    txn.commit().map_err(err)?;
    tracing::info!(
        records = journaled.len(),
        "applied the journal left by the last run"
    );
    Ok(journaled.last().map(|f| f.id))
}

pub(crate) fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::new(e)
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(err)
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(b).map_err(err)
}
