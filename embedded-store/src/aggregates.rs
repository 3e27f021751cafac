//! The leaderboard's aggregates in memory: the `totals` and `minutes` rows as
//! loaded at open, plus every record synced since. redb's rows are written by
//! the applier in the same transaction as their records, so at open the rows
//! equal the records; each synced record is then added here before its 200.

use std::collections::HashMap;

use hq_core::clock::{minute_of, now_millis};
use hq_core::domain::{Fulfillment, UserTotals, Username, WINDOW_MINUTES};
use hq_core::StoreError;
use redb::{Database, ReadableTable, WriteTransaction};

use crate::err;
use crate::schema::{decode_totals, encode_totals};
use crate::schema::{MINUTES, TOTALS};

pub(crate) struct Aggregates {
    users: HashMap<Username, UserTotals>,
}

impl Aggregates {
    /// Loads every owner's totals and the last hour of per-minute counts.
    pub(crate) fn load(db: &Database) -> Result<Self, StoreError> {
        let mut users = HashMap::new();
        let txn = db.begin_read().map_err(err)?;
        for row in txn.open_table(TOTALS).map_err(err)?.iter().map_err(err)? {
            let (k, v) = row.map_err(err)?;
            let t = decode_totals(k.value(), v.value())?;
            users.insert(t.username.clone(), t);
        }
        let first_minute = minute_of(now_millis()) - WINDOW_MINUTES as i64 + 1;
        let minutes = txn.open_table(MINUTES).map_err(err)?;
        for row in minutes.range((first_minute, "")..).map_err(err)? {
            let (k, v) = row.map_err(err)?;
            let (minute, user) = k.value();
            if let Some(t) = users.get_mut(user) {
                t.minutes.push((minute, v.value()));
            }
        }
        Ok(Self { users })
    }

    /// Counts one synced record.
    pub(crate) fn add(&mut self, f: &Fulfillment) {
        // Looked up by `&str`: no copy of the name per record, only per new owner.
        match self.users.get_mut(f.username.as_str()) {
            Some(t) => t.add(f.amounts, f.at),
            None => {
                let mut t = UserTotals::new(f.username.clone());
                t.add(f.amounts, f.at);
                self.users.insert(f.username.clone(), t);
            }
        }
    }

    /// Every owner's totals with recent minutes, as the ledger answers them.
    pub(crate) fn totals(&self) -> Vec<UserTotals> {
        self.users.values().cloned().collect()
    }

    pub(crate) fn clear(&mut self) {
        self.users.clear();
    }
}

/// Adds records to the `totals` and `minutes` rows inside the transaction that
/// stores them. Rows are read, added to and written once per owner and minute.
pub(crate) fn add_rows(txn: &WriteTransaction, records: &[&Fulfillment]) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let mut per_user: HashMap<&str, Vec<&Fulfillment>> = HashMap::new();
    let mut per_minute: std::collections::BTreeMap<(i64, &str), u32> = Default::default();
    for f in records {
        per_user.entry(f.username.as_str()).or_default().push(f);
        *per_minute
            .entry((minute_of(f.at), f.username.as_str()))
            .or_default() += 1;
    }
    let mut totals = txn.open_table(TOTALS).map_err(err)?;
    for (user, fs) in per_user {
        let mut t = match totals.get(user).map_err(err)? {
            Some(v) => decode_totals(user, v.value())?,
            None => UserTotals::new(fs[0].username.clone()),
        };
        for f in fs {
            t.count(f.amounts, f.at);
        }
        totals
            .insert(user, encode_totals(&t).as_slice())
            .map_err(err)?;
    }
    let mut minutes = txn.open_table(MINUTES).map_err(err)?;
    for (key, n) in per_minute {
        let current = minutes.get(key).map_err(err)?.map_or(0, |v| v.value());
        minutes.insert(key, current + n).map_err(err)?;
    }
    Ok(())
}
