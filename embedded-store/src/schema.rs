//! Key layout of `hq.redb`, version 2.
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | `"schema_version"` | `u64` |
//! | `users` | username | JSON `UserRecord` (password hash, current key) |
//! | `key_index` | API key value | username (lookup by key; one entry per live value) |
//! | `sessions` | SHA-256 of the session token (32 bytes) | JSON `Session` |
//! | `fulfillments` | UUIDv7 (16 bytes, so keys sort by time) | JSON `Fulfillment` |
//! | `totals` | username | 32 bytes, little-endian: total, iridium, magnesite (u64), last fulfilled at (i64 ms, `i64::MIN` = never); written in the same transaction as the records |
//! | `minutes` | (minute since the epoch, username) | `u32` fulfillments in that minute (same transaction) |
//!
//! Beside `hq.redb`, `ledger.journal-0` and `ledger.journal-1` hold fulfillments
//! that are durable but not yet applied to these tables ([`crate::journal`]);
//! opening the store applies them.
//! | `rates` | topic name | JSON `Rate` |
//!
//! Values are JSON so that a new optional field needs no migration (serde
//! defaults), except the totals rows, kept small and fixed-size
//! ([`encode_totals`]). A change that does need one bumps [`SCHEMA_VERSION`] and adds a step
//! to [`migrate`], run on open inside one write transaction. A database written
//! by a newer HQ is refused rather than misread.
//!
//! History: version 1 committed each group of records to redb directly;
//! version 2 syncs groups to the journal first. The tables are unchanged, so the
//! step from 1 has nothing to rewrite; the new stamp keeps an older HQ, which
//! would ignore the journal, from opening the data dir.

use redb::{Database, ReadableTable, TableDefinition};

use crate::err;
use hq_core::domain::{UserTotals, Username};
use hq_core::StoreError;

pub const SCHEMA_VERSION: u64 = 2;

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
    // 1 -> 2: same tables (see the history above); the next layout change adds
    // its step here, e.g. `if from < 3 { ... }`.
    let _ = from;
    Ok(())
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

/// Size of an encoded totals row.
const TOTALS_LEN: usize = 32;

/// Encodes the counters of a totals row (the username is the key; per-minute
/// counts live in `minutes`).
pub(crate) fn encode_totals(t: &UserTotals) -> [u8; TOTALS_LEN] {
    let mut out = [0u8; TOTALS_LEN];
    out[0..8].copy_from_slice(&t.total.to_le_bytes());
    out[8..16].copy_from_slice(&t.iridium.to_le_bytes());
    out[16..24].copy_from_slice(&t.magnesite.to_le_bytes());
    out[24..32].copy_from_slice(&t.last_fulfilled_at.unwrap_or(i64::MIN).to_le_bytes());
    out
}

pub(crate) fn decode_totals(username: &str, b: &[u8]) -> Result<UserTotals, StoreError> {
    let username = Username::parse(username).map_err(StoreError)?;
    let field = |i: usize| -> Result<[u8; 8], StoreError> {
        b.get(i * 8..i * 8 + 8)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| {
                StoreError(format!(
                    "totals row of {username} is {} bytes, not {TOTALS_LEN}",
                    b.len()
                ))
            })
    };
    let last = i64::from_le_bytes(field(3)?);
    Ok(UserTotals {
        total: u64::from_le_bytes(field(0)?),
        iridium: u64::from_le_bytes(field(1)?),
        magnesite: u64::from_le_bytes(field(2)?),
        last_fulfilled_at: (last != i64::MIN).then_some(last),
        minutes: Vec::new(),
        username,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A data dir written by version 1 (no journal, stamp 1) opens under
    /// version 2 with its records and leaderboard intact, and is restamped.
    #[tokio::test]
    async fn a_version_1_data_dir_is_upgraded_in_place() {
        use crate::EmbeddedStore;
        use hq_core::domain::{Amounts, Fulfillment, KeyId};
        use hq_core::ports::Ledger;

        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let f = Fulfillment {
            id: uuid::Uuid::now_v7(),
            username: Username::parse("ann").unwrap(),
            key_id: KeyId("k".into()),
            at: hq_core::clock::now_millis(),
            amounts: Amounts {
                iridium: 2,
                magnesite: 1,
            },
            request_id: "r".into(),
            trace_id: None,
        };
        store.record(f.clone()).await.unwrap();
        store.close().await;
        drop(store);
        // What version 1 left: the same tables, stamp 1, no journal files.
        let path = dir.path().join(crate::DB_FILE);
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(VERSION_KEY, 1)
                .unwrap();
            txn.commit().unwrap();
        }
        for i in 0..2 {
            std::fs::remove_file(crate::journal::segment_path(dir.path(), i)).unwrap();
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(store.list(None, 10).await.unwrap(), vec![f]);
        let totals = store.totals().await.unwrap();
        assert_eq!(
            (totals.len(), totals[0].total, totals[0].iridium),
            (1, 1, 2)
        );
        store.close().await;
        drop(store);
        let db = Database::create(&path).unwrap();
        assert_eq!(version(&db).unwrap(), Some(SCHEMA_VERSION));
    }

    #[test]
    fn stamps_the_version_and_refuses_a_newer_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        {
            let db = Database::create(&path).unwrap();
            prepare(&db).unwrap();
            assert_eq!(version(&db).unwrap(), Some(SCHEMA_VERSION));
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(VERSION_KEY, SCHEMA_VERSION + 1)
                .unwrap();
            txn.commit().unwrap();
        }
        let db = Database::create(&path).unwrap();
        let e = prepare(&db).unwrap_err();
        assert!(e.0.contains("newer HQ"), "{e}");
    }

    #[test]
    fn totals_rows_round_trip() {
        let mut t = UserTotals::new(Username::parse("ann").unwrap());
        assert_eq!(decode_totals("ann", &encode_totals(&t)).unwrap(), t);
        t.count(
            hq_core::domain::Amounts {
                iridium: 3,
                magnesite: 1,
            },
            1_700_000_000_000,
        );
        assert_eq!(decode_totals("ann", &encode_totals(&t)).unwrap(), t);
        assert!(decode_totals("ann", &[1, 2, 3]).is_err());
    }
}
