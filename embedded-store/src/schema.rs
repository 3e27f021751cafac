//! Key layout of `hq.redb`, version 1.
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | `"schema_version"` | `u64` |
//! | `users` | username | JSON `UserRecord` (password hash, current key) |
//! | `key_index` | API key value | username (lookup by key; one entry per live value) |
//! | `sessions` | SHA-256 of the session token (32 bytes) | JSON `Session` |
//! | `fulfillments` | UUIDv7 (16 bytes, so keys sort by time) | JSON `Fulfillment` |
//! | `totals` | username | JSON `UserTotals` without `minutes` (updated in the same commit as each record) |
//! | `minutes` | (minute since the epoch, username) | `u32` fulfillments in that minute (same commit) |
//! | `rates` | topic name | JSON `Rate` |
//!
//! Values are JSON so that a new optional field needs no migration (serde
//! defaults). A change that does need one bumps [`SCHEMA_VERSION`] and adds a step
//! to [`migrate`], run on open inside one write transaction. A database written
//! by a newer HQ is refused rather than misread.

use redb::{Database, ReadableTable, TableDefinition};

use crate::err;
use hq_core::StoreError;

pub const SCHEMA_VERSION: u64 = 1;

pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
pub(crate) const KEY_INDEX: TableDefinition<&str, &str> = TableDefinition::new("key_index");
pub(crate) const SESSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sessions");
pub(crate) const FULFILLMENTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("fulfillments");
pub(crate) const TOTALS: TableDefinition<&str, &[u8]> = TableDefinition::new("totals");
pub(crate) const MINUTES: TableDefinition<(i64, &str), u32> = TableDefinition::new("minutes");
pub(crate) const RATES: TableDefinition<&str, &[u8]> = TableDefinition::new("rates");

const VERSION_KEY: &str = "schema_version";

/// Creates every table and brings an older layout up to date.
pub(crate) fn prepare(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(err)?;
    {
        let mut meta = txn.open_table(META).map_err(err)?;
        let found = meta.get(VERSION_KEY).map_err(err)?.map(|v| v.value());
        match found {
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError(format!(
                    "the data dir was written by a newer HQ (schema {v}, this build knows {SCHEMA_VERSION})"
                )))
            }
            Some(v) => migrate(&txn, v)?,
            None => {}
        }
        meta.insert(VERSION_KEY, SCHEMA_VERSION).map_err(err)?;
    }
    txn.open_table(USERS).map_err(err)?;
    txn.open_table(KEY_INDEX).map_err(err)?;
    txn.open_table(SESSIONS).map_err(err)?;
    txn.open_table(FULFILLMENTS).map_err(err)?;
    txn.open_table(TOTALS).map_err(err)?;
    txn.open_table(MINUTES).map_err(err)?;
    txn.open_table(RATES).map_err(err)?;
    crate::subscriptions::open_tables(&txn)?;
    txn.commit().map_err(err)
}

/// One step per version: `from` is the version found on disk.
fn migrate(_txn: &redb::WriteTransaction, from: u64) -> Result<(), StoreError> {
    #[allow(clippy::match_single_binding)]
    match from {
        // 1 is current; the next layout change adds `1 => { ... }` here.
        _ => Ok(()),
    }
}

/// Reads the version stamped in the database.
pub fn version(db: &Database) -> Result<Option<u64>, StoreError> {
    let txn = db.begin_read().map_err(err)?;
    let meta = txn.open_table(META).map_err(err)?;
    let v = meta.get(VERSION_KEY).map_err(err)?.map(|v| v.value());
    Ok(v)
}

/// Empties a table by deleting and recreating it (one write transaction).
pub(crate) fn recreate<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<(), StoreError> {
    txn.delete_table(table).map_err(err)?;
    txn.open_table(table).map_err(err)?;
    Ok(())
}
