//! Group commit: one writer thread turns every fulfillment that arrives while the
//! previous commit is being made durable into the next single transaction.
//!
//! A request waits for the commit that holds its record, so each 200 is durable,
//! while many concurrent requests share one fsync instead of paying one each.
//! The queue is bounded: when the disk cannot keep up, senders wait (backpressure)
//! rather than memory growing.

use std::collections::BTreeMap;
use std::sync::Arc;

use hq_core::clock::minute_of;
use hq_core::domain::{Fulfillment, UserTotals};
use hq_core::StoreError;
use redb::{Database, ReadableTable};
use tokio::sync::{mpsc, oneshot};

use crate::err;
use crate::schema::{decode_totals, encode_totals};
use crate::schema::{FULFILLMENTS, MINUTES, TOTALS};

/// The most records one transaction takes; bounds commit latency under load.
const MAX_BATCH: usize = 1024;
/// Records that may wait for the writer.
const QUEUE: usize = 8192;

struct Job {
    fulfillment: Fulfillment,
    done: oneshot::Sender<Result<(), String>>,
}

enum Msg {
    Record(Job),
    /// Empty the ledger tables between two batches.
    Clear(oneshot::Sender<Result<(), String>>),
    /// Commit what is queued, then stop.
    Close(oneshot::Sender<()>),
}

#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Msg>,
    thread: Arc<parking_lot::Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl Writer {
    pub(crate) fn start(db: Arc<Database>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("hq-group-commit".into())
            .spawn(move || run(db, rx))
            .expect("spawning the group-commit thread");
        Self {
            tx,
            thread: Arc::new(parking_lot::Mutex::new(Some(thread))),
        }
    }

    /// Queues a record and waits until its transaction is durable.
    pub(crate) async fn record(&self, fulfillment: Fulfillment) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Msg::Record(Job { fulfillment, done }))
            .await
            .map_err(|_| StoreError("the store is shutting down".into()))?;
        wait.await
            .map_err(|_| StoreError("the writer stopped before committing".into()))?
            .map_err(StoreError)
    }

    /// Empties the ledger (records, totals, minutes) in order with the records.
    pub(crate) async fn clear(&self) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Msg::Clear(done))
            .await
            .map_err(|_| StoreError("the store is shutting down".into()))?;
        wait.await
            .map_err(|_| StoreError("the writer stopped".into()))?
            .map_err(StoreError)
    }

    /// Commits everything queued and stops the writer; later records fail.
    /// Returns once the thread is gone (and with it its handle on the database).
    pub(crate) async fn close(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Close(done)).await.is_ok() {
            let _ = wait.await;
        }
        let thread = self.thread.lock().take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// The writer loop. Ends when every sender is gone (the store was dropped), after
/// committing whatever was queued.
fn run(db: Arc<Database>, mut rx: mpsc::Receiver<Msg>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut closing = None;
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Record(job) => batch.push(job),
                Msg::Close(done) => closing = Some(done),
                Msg::Clear(done) => {
                    flush(&db, &mut batch);
                    let _ = done.send(clear(&db).map_err(|e| e.0));
                }
            }
            if batch.len() < MAX_BATCH && closing.is_none() {
                next = rx.try_recv().ok();
            }
        }
        flush(&db, &mut batch);
        if let Some(done) = closing.take() {
            rx.close();
            // Anything that slipped in before the close is still committed.
            while let Ok(msg) = rx.try_recv() {
                match msg {
                    Msg::Record(job) => batch.push(job),
                    Msg::Clear(d) => {
                        let _ = d.send(Err("the store is shutting down".into()));
                    }
                    Msg::Close(d) => {
                        let _ = d.send(());
                    }
                }
            }
            flush(&db, &mut batch);
            let _ = done.send(());
            return;
        }
    }
}

/// Commits the batch and tells each waiting request the outcome.
fn flush(db: &Database, batch: &mut Vec<Job>) {
    if batch.is_empty() {
        return;
    }
    let outcome = commit(db, batch).map_err(|e| e.0);
    if let Err(e) = &outcome {
        tracing::error!(error = %e, records = batch.len(), "group commit failed");
    }
    for job in batch.drain(..) {
        let _ = job.done.send(outcome.clone());
    }
}

fn clear(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(err)?;
    crate::schema::recreate(&txn, FULFILLMENTS)?;
    crate::schema::recreate(&txn, TOTALS)?;
    crate::schema::recreate(&txn, MINUTES)?;
    txn.commit().map_err(err)
}

/// Writes the records, their owners' totals and per-minute counts in one durable
/// transaction. Totals rows are small and per-minute rows of one minute sit side by
/// side (the key starts with the minute), so a commit rewrites few pages.
fn commit(db: &Database, batch: &[Job]) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(err)?;
    {
        let mut records = txn.open_table(FULFILLMENTS).map_err(err)?;
        let mut totals_table = txn.open_table(TOTALS).map_err(err)?;
        let mut minutes_table = txn.open_table(MINUTES).map_err(err)?;
        // Sorted maps: rows are then written in key order, walking the trees once.
        let mut totals: BTreeMap<&str, UserTotals> = BTreeMap::new();
        let mut minutes: BTreeMap<(i64, &str), u32> = BTreeMap::new();
        let mut json = Vec::with_capacity(512);
        for job in batch {
            let f = &job.fulfillment;
            json.clear();
            serde_json::to_writer(&mut json, f).map_err(err)?;
            records
                .insert(f.id.as_bytes().as_slice(), json.as_slice())
                .map_err(err)?;
            let user = f.username.as_str();
            if !totals.contains_key(user) {
                let current = match totals_table.get(user).map_err(err)? {
                    Some(v) => decode_totals(user, v.value())?,
                    None => UserTotals::new(f.username.clone()),
                };
                totals.insert(user, current);
            }
            if let Some(t) = totals.get_mut(user) {
                t.count(f.amounts, f.at);
            }
            *minutes.entry((minute_of(f.at), user)).or_default() += 1;
        }
        for (user, t) in &totals {
            totals_table
                .insert(*user, encode_totals(t).as_slice())
                .map_err(err)?;
        }
        for ((minute, user), n) in minutes {
            let current = minutes_table
                .get((minute, user))
                .map_err(err)?
                .map_or(0, |v| v.value());
            minutes_table
                .insert((minute, user), current + n)
                .map_err(err)?;
        }
    }
    txn.commit().map_err(err)
}
