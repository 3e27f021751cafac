//! The leaderboard's aggregates: kept in memory, made durable by checkpoints.
//!
//! The `fulfillments` table is the source of truth. Writing each owner's totals
//! and per-minute rows in every group commit rewrote some 12 of the ~17 pages a
//! commit wrote (totals of 500 attendees spread over every leaf). Instead the
//! writer thread folds each committed batch into memory and, at most once a
//! [`CHECKPOINT_EVERY`], writes the changed rows with a *watermark*: the highest
//! record id they include. On open the checkpoint is loaded and the records
//! above the watermark are replayed, so after any crash the aggregates equal the
//! records again.
//!
//! A record whose id is at or below the watermark when it is committed (its id
//! was made before the checkpoint, its commit came after: rare) is "late": replay
//! would miss it, so its totals and minute rows are updated in its own commit,
//! as every record's were before.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use hq_core::clock::{minute_of, now_millis};
use hq_core::domain::{Fulfillment, UserTotals, Username, WINDOW_MINUTES};
use hq_core::StoreError;
use redb::{Database, ReadableTable, WriteTransaction};
use uuid::Uuid;

use crate::err;
use crate::schema::{decode_totals, encode_totals};
use crate::schema::{CHECKPOINT, FULFILLMENTS, MINUTES, TOTALS, WATERMARK_KEY};

/// How stale the durable aggregates may get while records keep coming; bounds
/// what a restart after a crash replays (about a second of traffic).
pub(crate) const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Records read per replay transaction step, so replay memory stays bounded.
const REPLAY_CHUNK: usize = 4096;

pub(crate) struct Aggregates {
    users: HashMap<Username, UserTotals>,
    /// Highest record id in the durable aggregates (`None`: none yet).
    watermark: Option<Uuid>,
    /// Highest record id committed (and so in memory).
    newest: Option<Uuid>,
    /// Owners whose totals changed since the checkpoint.
    dirty_users: BTreeSet<Username>,
    /// Per-minute counts not yet in the `minutes` rows: (minute, owner) -> added.
    dirty_minutes: BTreeMap<(i64, Username), u32>,
    last_checkpoint: Instant,
}

impl Aggregates {
    fn empty() -> Self {
        Self {
            users: HashMap::new(),
            watermark: None,
            newest: None,
            dirty_users: BTreeSet::new(),
            dirty_minutes: BTreeMap::new(),
            last_checkpoint: Instant::now(),
        }
    }

    /// Loads the checkpoint and replays the records committed after it.
    pub(crate) fn load(db: &Database) -> Result<Self, StoreError> {
        let mut agg = Self::empty();
        let txn = db.begin_read().map_err(err)?;
        agg.watermark = txn
            .open_table(CHECKPOINT)
            .map_err(err)?
            .get(WATERMARK_KEY)
            .map_err(err)?
            .map(|v| Uuid::from_u128(v.value()));
        agg.newest = agg.watermark;
        for row in txn.open_table(TOTALS).map_err(err)?.iter().map_err(err)? {
            let (k, v) = row.map_err(err)?;
            let t = decode_totals(k.value(), v.value())?;
            agg.users.insert(t.username.clone(), t);
        }
        let first_minute = minute_of(now_millis()) - WINDOW_MINUTES as i64 + 1;
        let minutes = txn.open_table(MINUTES).map_err(err)?;
        for row in minutes.range((first_minute, "")..).map_err(err)? {
            let (k, v) = row.map_err(err)?;
            let (minute, user) = k.value();
            if let Some(t) = agg.users.get_mut(user) {
                t.minutes.push((minute, v.value()));
            }
        }
        drop(minutes);
        let records = txn.open_table(FULFILLMENTS).map_err(err)?;
        let mut after = agg.watermark.map(|w| *w.as_bytes());
        loop {
            let start = after.unwrap_or([0; 16]);
            let mut chunk = Vec::with_capacity(REPLAY_CHUNK);
            for row in records.range(start.as_slice()..).map_err(err)? {
                let (k, v) = row.map_err(err)?;
                if after.is_some_and(|a| k.value() == a.as_slice()) {
                    continue;
                }
                chunk.push(crate::from_json::<Fulfillment>(v.value())?);
                if chunk.len() == REPLAY_CHUNK {
                    break;
                }
            }
            let Some(last) = chunk.last() else { break };
            after = Some(*last.id.as_bytes());
            for f in &chunk {
                agg.add(f, false);
            }
        }
        Ok(agg)
    }

    /// Whether `f` must have its aggregate rows written in its own commit.
    pub(crate) fn is_late(&self, f: &Fulfillment) -> bool {
        self.watermark.is_some_and(|w| f.id <= w)
    }

    /// Folds one committed record in. `late` records are already in the rows.
    pub(crate) fn add(&mut self, f: &Fulfillment, late: bool) {
        let t = self
            .users
            .entry(f.username.clone())
            .or_insert_with(|| UserTotals::new(f.username.clone()));
        t.add(f.amounts, f.at);
        self.dirty_users.insert(f.username.clone());
        if !late {
            *self
                .dirty_minutes
                .entry((minute_of(f.at), f.username.clone()))
                .or_default() += 1;
        }
        if self.newest.is_none_or(|n| f.id > n) {
            self.newest = Some(f.id);
        }
    }

    /// The aggregates as the ledger answers them: every owner, recent minutes.
    pub(crate) fn totals(&self) -> Vec<UserTotals> {
        self.users.values().cloned().collect()
    }

    pub(crate) fn checkpoint_due(&self) -> bool {
        self.is_dirty() && self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY
    }

    pub(crate) fn is_dirty(&self) -> bool {
        !self.dirty_users.is_empty() || self.newest != self.watermark
    }

    /// Writes the changed rows and the new watermark in one transaction.
    pub(crate) fn checkpoint(&mut self, db: &Database) -> Result<(), StoreError> {
        let txn = db.begin_write().map_err(err)?;
        {
            let mut totals = txn.open_table(TOTALS).map_err(err)?;
            for user in &self.dirty_users {
                if let Some(t) = self.users.get(user) {
                    totals
                        .insert(user.as_str(), encode_totals(t).as_slice())
                        .map_err(err)?;
                }
            }
            let mut minutes = txn.open_table(MINUTES).map_err(err)?;
            for ((minute, user), n) in &self.dirty_minutes {
                let key = (*minute, user.as_str());
                let current = minutes.get(key).map_err(err)?.map_or(0, |v| v.value());
                minutes.insert(key, current + n).map_err(err)?;
            }
            if let Some(newest) = self.newest {
                txn.open_table(CHECKPOINT)
                    .map_err(err)?
                    .insert(WATERMARK_KEY, newest.as_u128())
                    .map_err(err)?;
            }
        }
        txn.commit().map_err(err)?;
        self.watermark = self.newest;
        self.dirty_users.clear();
        self.dirty_minutes.clear();
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    /// Forgets everything (the tables were emptied in the same step).
    pub(crate) fn clear(&mut self) {
        *self = Self::empty();
    }
}

/// Adds late records to the durable totals and minute rows inside the commit
/// that stores them (read, add, write: the rows may lag the memory).
pub(crate) fn add_late(txn: &WriteTransaction, late: &[&Fulfillment]) -> Result<(), StoreError> {
    if late.is_empty() {
        return Ok(());
    }
    let mut totals = txn.open_table(TOTALS).map_err(err)?;
    let mut minutes = txn.open_table(MINUTES).map_err(err)?;
    for f in late {
        let user = f.username.as_str();
        let mut t = match totals.get(user).map_err(err)? {
            Some(v) => decode_totals(user, v.value())?,
            None => UserTotals::new(f.username.clone()),
        };
        t.count(f.amounts, f.at);
        totals
            .insert(user, encode_totals(&t).as_slice())
            .map_err(err)?;
        let key = (minute_of(f.at), user);
        let current = minutes.get(key).map_err(err)?.map_or(0, |v| v.value());
        minutes.insert(key, current + 1).map_err(err)?;
    }
    Ok(())
}
