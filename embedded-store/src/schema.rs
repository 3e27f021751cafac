//! Key layout of `hq.redb`, version 3.
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | `"schema_version"`; `"fulfillment_count"` | `u64`; records stored (updated with every block) |
//! | `users` | username | JSON `UserRecord` (password hash, current key) |
//! | `key_index` | API key value | username (lookup by key; one entry per live value) |
//! | `sessions` | SHA-256 of the session token (32 bytes) | JSON `Session` |
//! | `fulfillment_blocks` | UUIDv7 of the block's first record (16 bytes, so keys sort by time) | the block's records, each `len u32 (LE) | JSON Fulfillment`, ids ascending; blocks never overlap ([`crate::blocks`]) |
//! | `totals` | username | 32 bytes, little-endian: total, iridium, magnesite (u64), last fulfilled at (i64 ms, `i64::MIN` = never); written in the same transaction as the records |
//! | `minutes` | (minute since the epoch, username) | `u32` fulfillments in that minute (same transaction) |
//! | `rates` | topic name | JSON `Rate` |
//!
//! Beside `hq.redb`, `ledger.journal-0` and `ledger.journal-1` hold fulfillments
//! that are durable but not yet applied to these tables ([`crate::journal`]);
//! opening the store applies them.
//!
//! Values are JSON so that a new optional field needs no migration (serde
//! defaults), except the totals rows, kept small and fixed-size
//! ([`encode_totals`]). A change that does need one bumps [`SCHEMA_VERSION`] and adds a step
//! to [`migrate`], run on open inside one write transaction. A database written
//! by a newer HQ is refused rather than misread.
//!
//! History: version 1 committed each group of records to redb directly, one
//! row per record in `fulfillments` (UUIDv7 -> JSON). Version 2 synced groups
//! to the journal first (same tables; the stamp kept an older HQ, which would
//! ignore the journal, from opening the data dir). Version 3 stores records in
//! blocks: the step from 1 or 2 moves the rows into blocks of up to 1,024,
//! together with whatever an unclean stop of version 2 left in the journal.

use redb::{Database, ReadableTable, TableDefinition};

use crate::err;
use hq_core::domain::{Fulfillment, UserTotals, Username};
use hq_core::StoreError;

pub const SCHEMA_VERSION: u64 = 3;

pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
pub(crate) const KEY_INDEX: TableDefinition<&str, &str> = TableDefinition::new("key_index");
pub(crate) const SESSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sessions");
pub(crate) const BLOCKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("fulfillment_blocks");
/// Versions 1 and 2: one row per record (read only by the migration).
const RECORDS_V2: TableDefinition<&[u8], &[u8]> = TableDefinition::new("fulfillments");
pub(crate) const TOTALS: TableDefinition<&str, &[u8]> = TableDefinition::new("totals");
pub(crate) const MINUTES: TableDefinition<(i64, &str), u32> = TableDefinition::new("minutes");
pub(crate) const RATES: TableDefinition<&str, &[u8]> = TableDefinition::new("rates");

const VERSION_KEY: &str = "schema_version";
pub(crate) const RECORD_COUNT_KEY: &str = "fulfillment_count";

/// Creates every table and brings an older layout up to date. `journaled` is
/// what the journal holds: an older layout takes it in during its migration
/// (its ids were not numbered in commit order).
pub(crate) fn prepare(db: &Database, journaled: &[Fulfillment]) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(err)?;
    let found = {
        let meta = txn.open_table(META).map_err(err)?;
        let v = meta.get(VERSION_KEY).map_err(err)?.map(|v| v.value());
        v
    };
    match found {
        Some(v) if v > SCHEMA_VERSION => {
            return Err(StoreError(format!(
                "the data dir was written by a newer HQ (schema {v}, this build knows {SCHEMA_VERSION})"
            )))
        }
        Some(v) => migrate(&txn, v, journaled)?,
        None => {}
    }
    txn.open_table(META)
        .map_err(err)?
        .insert(VERSION_KEY, SCHEMA_VERSION)
        .map_err(err)?;
    txn.open_table(USERS).map_err(err)?;
    txn.open_table(KEY_INDEX).map_err(err)?;
    txn.open_table(SESSIONS).map_err(err)?;
    txn.open_table(BLOCKS).map_err(err)?;
    txn.open_table(TOTALS).map_err(err)?;
    txn.open_table(MINUTES).map_err(err)?;
    txn.open_table(RATES).map_err(err)?;
    crate::subscriptions::open_tables(&txn)?;
    txn.commit().map_err(err)
}

/// One step per version: `from` is the version found on disk.
fn migrate(
    txn: &redb::WriteTransaction,
    from: u64,
    journaled: &[Fulfillment],
) -> Result<(), StoreError> {
    // 1 -> 2: same tables (see the history above).
    if from < 3 {
        // Rows to blocks. The journal's records that the rows lack were never
        // counted in the totals either.
        let mut records: Vec<Fulfillment> = Vec::new();
        {
            let rows = txn.open_table(RECORDS_V2).map_err(err)?;
            for row in rows.iter().map_err(err)? {
                let (_, v) = row.map_err(err)?;
                records.push(crate::from_json(v.value())?);
            }
        }
        let stored: std::collections::HashSet<uuid::Uuid> = records.iter().map(|f| f.id).collect();
        let mut fresh: Vec<Fulfillment> = journaled
            .iter()
            .filter(|f| !stored.contains(&f.id))
            .cloned()
            .collect();
        fresh.sort_by_key(|f| f.id);
        fresh.dedup_by_key(|f| f.id);
        crate::aggregates::add_rows(txn, &fresh.iter().collect::<Vec<_>>())?;
        records.extend(fresh);
        records.sort_by_key(|f| f.id);
        crate::blocks::store_records(txn, &records, false)?;
        txn.delete_table(RECORDS_V2).map_err(err)?;
    }
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

    fn fulfillment(user: &str, iridium: u32) -> Fulfillment {
        Fulfillment {
            id: uuid::Uuid::now_v7(),
            username: Username::parse(user).unwrap(),
            key_id: hq_core::domain::KeyId("k".into()),
            at: hq_core::clock::now_millis(),
            amounts: hq_core::domain::Amounts {
                iridium,
                magnesite: 1,
            },
            request_id: "r".into(),
            trace_id: None,
        }
    }

    /// What versions 1 and 2 left: one row per record and totals rows written
    /// with them, stamped `version`.
    fn write_rows_layout(path: &std::path::Path, version: u64, rows: &[Fulfillment]) {
        let db = Database::create(path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert(VERSION_KEY, version)
            .unwrap();
        {
            let mut t = txn.open_table(RECORDS_V2).unwrap();
            for f in rows {
                let json = serde_json::to_vec(f).unwrap();
                t.insert(f.id.as_bytes().as_slice(), json.as_slice())
                    .unwrap();
            }
        }
        crate::aggregates::add_rows(&txn, &rows.iter().collect::<Vec<_>>()).unwrap();
        txn.commit().unwrap();
    }

    /// A version 2 data dir stopped uncleanly: rows in `fulfillments` and one
    /// more record only in the journal. Opening it moves both into blocks in
    /// id order, counts the journal's record in the totals once, drops the old
    /// table and restamps; a second open changes nothing.
    #[tokio::test]
    async fn a_version_2_data_dir_moves_into_blocks_with_its_journal() {
        use crate::EmbeddedStore;
        use hq_core::ports::Ledger;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::DB_FILE);
        let rows: Vec<Fulfillment> = (0..1500).map(|i| fulfillment("ann", i % 3)).collect();
        write_rows_layout(&path, 2, &rows);
        let leftover = fulfillment("bob", 4);
        {
            let (mut j, _) = crate::journal::Journal::open(dir.path()).unwrap();
            // A group whose first record was also applied, as a crash between
            // apply and reset leaves it.
            j.append(1, &[&rows[1499], &leftover], 0).unwrap().unwrap();
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(store.count().await.unwrap(), 1501);
        let mut expected = rows.clone();
        expected.push(leftover.clone());
        assert_eq!(store.list(None, 10_000).await.unwrap(), expected);
        // Paging and lookups cross block boundaries (blocks hold up to 1,024).
        let page = store.list(Some(rows[1020].id), 10).await.unwrap();
        assert_eq!(page, rows[1021..1031].to_vec());
        assert!(store.list(None, 0).await.unwrap().is_empty());
        let found = store.get(rows[1030].id).await.unwrap();
        assert_eq!(found, Some(rows[1030].clone()));
        let mut totals = store.totals().await.unwrap();
        totals.sort_by(|a, b| a.username.cmp(&b.username));
        let summary: Vec<(u64, u64)> = totals.iter().map(|t| (t.total, t.iridium)).collect();
        assert_eq!(summary, vec![(1500, 1500), (1, 4)]);
        // New records are numbered above the migrated ones.
        let id = store.record(fulfillment("cyd", 1)).await.unwrap();
        assert!(id > leftover.id);
        store.close().await;
        drop(store);

        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(store.count().await.unwrap(), 1502);
        let all = store.list(None, 10_000).await.unwrap();
        assert_eq!(all.last().map(|f| f.id), Some(id));
        assert_eq!(store.totals().await.unwrap().len(), 3);
        store.close().await;
        drop(store);
        let db = Database::create(&path).unwrap();
        assert_eq!(version(&db).unwrap(), Some(SCHEMA_VERSION));
        let txn = db.begin_read().unwrap();
        assert!(txn.open_table(RECORDS_V2).is_err(), "old table dropped");
    }

    /// Version 1 had the same tables as version 2 and no journal.
    #[tokio::test]
    async fn a_version_1_data_dir_is_upgraded_in_place() {
        use crate::EmbeddedStore;
        use hq_core::ports::Ledger;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::DB_FILE);
        let f = fulfillment("ann", 2);
        write_rows_layout(&path, 1, std::slice::from_ref(&f));
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(store.list(None, 10).await.unwrap(), vec![f.clone()]);
        assert_eq!(store.get(f.id).await.unwrap(), Some(f));
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
            prepare(&db, &[]).unwrap();
            assert_eq!(version(&db).unwrap(), Some(SCHEMA_VERSION));
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(VERSION_KEY, SCHEMA_VERSION + 1)
                .unwrap();
            txn.commit().unwrap();
        }
        let db = Database::create(&path).unwrap();
        let e = prepare(&db, &[]).unwrap_err();
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
