//! Fulfillments in redb as blocks: one row per journaled group, keyed by the
//! group's first record id, holding the group's records exactly as the journal
//! framed them (`len u32 | JSON`, ids ascending).
//!
//! A row per record cost the applier one B-tree insert per record (~3.5 µs of
//! CPU per request in the ingest benchmark); a row per group of ~20 costs one
//! insert and a copy. The writer numbers records in commit order, so blocks
//! never overlap: the block holding an id is the last one whose key is not
//! greater than it, and reading blocks in key order reads records in id order.

use hq_core::domain::Fulfillment;
use hq_core::StoreError;
use redb::{ReadableTable, WriteTransaction};
use uuid::Uuid;

use crate::aggregates::add_rows;
use crate::journal::records_of;
use crate::schema::{BLOCKS, META, RECORD_COUNT_KEY};
use crate::{err, from_json};

/// The most records one block holds when blocks are built outside the writer
/// (recovery, migration); the writer's groups are bounded the same way.
pub(crate) const MAX_BLOCK: usize = 1024;

/// The records of one block, in id order.
pub(crate) fn decode(block: &[u8]) -> Result<Vec<Fulfillment>, StoreError> {
    records_of(block)
        .map(|json| from_json(json.ok_or_else(broken)?))
        .collect()
}

fn broken() -> StoreError {
    StoreError("a block of fulfillments lost its framing".into())
}

fn key(id: Uuid) -> [u8; 16] {
    *id.as_bytes()
}

/// The record with this id, if stored.
pub(crate) fn find(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    id: Uuid,
) -> Result<Option<Fulfillment>, StoreError> {
    let k = key(id);
    let Some(row) = table.range(..=k.as_slice()).map_err(err)?.next_back() else {
        return Ok(None);
    };
    let (_, block) = row.map_err(err)?;
    Ok(decode(block.value())?.into_iter().find(|f| f.id == id))
}

/// Up to `limit` records with ids greater than `after`, in id order.
pub(crate) fn list(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    after: Option<Uuid>,
    limit: usize,
) -> Result<Vec<Fulfillment>, StoreError> {
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    // Start at the block holding `after` (the last key not above it).
    let start = match after {
        Some(a) => {
            let k = key(a);
            let first = table.range(..=k.as_slice()).map_err(err)?.next_back();
            match first {
                Some(row) => row.map_err(err)?.0.value().to_vec(),
                None => Vec::new(),
            }
        }
        None => Vec::new(),
    };
    for row in table.range(start.as_slice()..).map_err(err)? {
        let (_, block) = row.map_err(err)?;
        for f in decode(block.value())? {
            if after.is_some_and(|a| f.id <= a) {
                continue;
            }
            out.push(f);
            if out.len() >= limit {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// The highest stored id (the last record of the last block).
pub(crate) fn last_id(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
) -> Result<Option<Uuid>, StoreError> {
    let Some(row) = table.iter().map_err(err)?.next_back() else {
        return Ok(None);
    };
    let (_, block) = row.map_err(err)?;
    Ok(decode(block.value())?.last().map(|f| f.id))
}

/// How many records are stored (kept in `meta`, updated with every block).
pub(crate) fn count(meta: &impl ReadableTable<&'static str, u64>) -> Result<u64, StoreError> {
    Ok(meta
        .get(RECORD_COUNT_KEY)
        .map_err(err)?
        .map_or(0, |v| v.value()))
}

/// One group, framed as the journal frames it, ready to be a block.
pub(crate) struct Block<'a> {
    pub(crate) records: Vec<&'a Fulfillment>,
    /// `len u32 | JSON` per record, in the order of `records`.
    pub(crate) framed: &'a [u8],
}

/// Stores blocks (each already in id order, every id above those stored)
/// and the record count, and with `count_totals` their totals and minute rows,
/// in `txn`.
pub(crate) fn store(
    txn: &WriteTransaction,
    blocks: &[Block<'_>],
    count_totals: bool,
) -> Result<(), StoreError> {
    let mut added = 0u64;
    {
        let mut table = txn.open_table(BLOCKS).map_err(err)?;
        for b in blocks {
            let Some(first) = b.records.first() else {
                continue;
            };
            table
                .insert(key(first.id).as_slice(), b.framed)
                .map_err(err)?;
            added += b.records.len() as u64;
        }
    }
    if count_totals {
        let all: Vec<&Fulfillment> = blocks
            .iter()
            .flat_map(|b| b.records.iter().copied())
            .collect();
        add_rows(txn, &all)?;
    }
    let mut meta = txn.open_table(META).map_err(err)?;
    let n = count(&meta)?;
    meta.insert(RECORD_COUNT_KEY, n + added).map_err(err)?;
    Ok(())
}

/// Frames records (sorted by id, above every stored id) into blocks of at most
/// [`MAX_BLOCK`] and stores them: recovery and migration, not the hot path.
pub(crate) fn store_records(
    txn: &WriteTransaction,
    records: &[Fulfillment],
    count_totals: bool,
) -> Result<(), StoreError> {
    let mut framed = Vec::new();
    for chunk in records.chunks(MAX_BLOCK) {
        let mut buf = Vec::new();
        for f in chunk {
            let json = crate::to_json(f)?;
            buf.extend_from_slice(&(json.len() as u32).to_le_bytes());
            buf.extend_from_slice(&json);
        }
        framed.push(buf);
    }
    let blocks: Vec<Block<'_>> = records
        .chunks(MAX_BLOCK)
        .zip(&framed)
        .map(|(chunk, buf)| Block {
            records: chunk.iter().collect(),
            framed: buf,
        })
        .collect();
    store(txn, &blocks, count_totals)
}

/// Empties the blocks, totals, minutes and the record count.
pub(crate) fn clear(txn: &WriteTransaction) -> Result<(), StoreError> {
    crate::schema::recreate(txn, BLOCKS)?;
    crate::schema::recreate(txn, crate::schema::TOTALS)?;
    crate::schema::recreate(txn, crate::schema::MINUTES)?;
    txn.open_table(META)
        .map_err(err)?
        .insert(RECORD_COUNT_KEY, 0)
        .map_err(err)?;
    Ok(())
}
