//! Group commit: one writer thread turns every fulfillment that arrives while the
//! previous commit is being made durable into the next single transaction.
//!
//! A request waits for the commit that holds its record, so each 200 is durable,
//! while many concurrent requests share one fsync instead of paying one each.
//! The queue is bounded: when the disk cannot keep up, senders wait (backpressure)
//! rather than memory growing.
//!
//! The same thread owns the leaderboard's [aggregates](crate::aggregates): each
//! committed batch is folded in before its requests are answered, and the
//! checkpoint is written between batches, so both follow commit order exactly.

use std::sync::Arc;

use hq_core::domain::Fulfillment;
use hq_core::StoreError;
use parking_lot::Mutex;
use redb::Database;
use tokio::sync::{mpsc, oneshot};

use crate::aggregates::{add_late, Aggregates, CHECKPOINT_EVERY};
use crate::err;
use crate::schema::{CHECKPOINT, FULFILLMENTS, MINUTES, TOTALS};

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
    /// Time passed: write the checkpoint if one is due (traffic may have stopped).
    Tick,
}

#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Msg>,
    thread: Arc<parking_lot::Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl Writer {
    pub(crate) fn start(db: Arc<Database>, aggregates: Arc<Mutex<Aggregates>>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("hq-group-commit".into())
            .spawn(move || run(db, aggregates, rx))
            .expect("spawning the group-commit thread");
        let ticks = tx.downgrade();
        std::thread::Builder::new()
            .name("hq-checkpoint-tick".into())
            .spawn(move || loop {
                std::thread::sleep(CHECKPOINT_EVERY);
                let Some(tx) = ticks.upgrade() else { return };
                if tx.is_closed() {
                    return;
                }
                // A full queue means the writer is busy and will check anyway.
                let _ = tx.try_send(Msg::Tick);
            })
            .expect("spawning the checkpoint ticker");
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
fn run(db: Arc<Database>, aggregates: Arc<Mutex<Aggregates>>, mut rx: mpsc::Receiver<Msg>) {
    let w = Committer { db, aggregates };
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut closing = None;
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Record(job) => batch.push(job),
                Msg::Close(done) => closing = Some(done),
                Msg::Clear(done) => {
                    w.flush(&mut batch);
                    let _ = done.send(w.clear().map_err(|e| e.0));
                }
                Msg::Tick => {}
            }
            if batch.len() < MAX_BATCH && closing.is_none() {
                next = rx.try_recv().ok();
            }
        }
        w.flush(&mut batch);
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
                    Msg::Tick => {}
                }
            }
            w.flush(&mut batch);
            // A clean stop leaves nothing to replay.
            w.checkpoint(true);
            let _ = done.send(());
            return;
        }
        w.checkpoint(false);
    }
    w.checkpoint(true);
}

struct Committer {
    db: Arc<Database>,
    aggregates: Arc<Mutex<Aggregates>>,
}

impl Committer {
    /// Commits the batch, folds it into the aggregates, then tells each waiting
    /// request the outcome: a 200 is durable and already on the leaderboard.
    fn flush(&self, batch: &mut Vec<Job>) {
        if batch.is_empty() {
            return;
        }
        // Only this thread moves the watermark, so the answer holds after unlocking.
        let late: Vec<bool> = {
            let agg = self.aggregates.lock();
            batch.iter().map(|j| agg.is_late(&j.fulfillment)).collect()
        };
        let outcome = commit(&self.db, batch, &late).map_err(|e| e.0);
        match &outcome {
            Ok(()) => {
                let mut agg = self.aggregates.lock();
                for (job, late) in batch.iter().zip(late) {
                    agg.add(&job.fulfillment, late);
                }
            }
            Err(e) => tracing::error!(error = %e, records = batch.len(), "group commit failed"),
        }
        for job in batch.drain(..) {
            let _ = job.done.send(outcome.clone());
        }
    }

    /// Writes the aggregates' checkpoint when one is due (or `now`, if dirty).
    fn checkpoint(&self, now: bool) {
        let mut agg = self.aggregates.lock();
        if !(agg.checkpoint_due() || now && agg.is_dirty()) {
            return;
        }
        if let Err(e) = agg.checkpoint(&self.db) {
            // The records are durable; a restart rebuilds the aggregates from them.
            tracing::error!(error = %e, "aggregates checkpoint failed");
        }
    }

    /// Empties the records, their aggregates and the checkpoint together.
    fn clear(&self) -> Result<(), StoreError> {
        let mut agg = self.aggregates.lock();
        let txn = self.db.begin_write().map_err(err)?;
        crate::schema::recreate(&txn, FULFILLMENTS)?;
        crate::schema::recreate(&txn, TOTALS)?;
        crate::schema::recreate(&txn, MINUTES)?;
        crate::schema::recreate(&txn, CHECKPOINT)?;
        txn.commit().map_err(err)?;
        agg.clear();
        Ok(())
    }
}

/// Writes the records in one durable transaction, with the aggregate rows of
/// the late ones (see [`crate::aggregates`]). Ids are time-ordered, so records
/// land on the right edge of the tree: a commit rewrites few pages.
fn commit(db: &Database, batch: &[Job], late: &[bool]) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(err)?;
    {
        let mut records = txn.open_table(FULFILLMENTS).map_err(err)?;
        let mut json = Vec::with_capacity(512);
        for job in batch {
            let f = &job.fulfillment;
            json.clear();
            serde_json::to_writer(&mut json, f).map_err(err)?;
            records
                .insert(f.id.as_bytes().as_slice(), json.as_slice())
                .map_err(err)?;
        }
    }
    let late: Vec<&Fulfillment> = batch
        .iter()
        .zip(late)
        .filter(|(_, l)| **l)
        .map(|(j, _)| &j.fulfillment)
        .collect();
    add_late(&txn, &late)?;
    txn.commit().map_err(err)
}

#[cfg(test)]
mod tests {
    //! Recovery of the aggregates: whatever was or was not checkpointed, a
    //! reopened store's aggregates equal its records.

    use super::*;
    use hq_core::domain::{Amounts, KeyId, UserTotals, Username};
    use uuid::Uuid;

    fn record(user: &str, id: Uuid, iridium: u32) -> Fulfillment {
        Fulfillment {
            id,
            username: Username::parse(user).unwrap(),
            key_id: KeyId("k".into()),
            at: hq_core::clock::now_millis(),
            amounts: Amounts {
                iridium,
                magnesite: 1,
            },
            request_id: "r".into(),
            trace_id: None,
        }
    }

    fn open() -> (tempfile::TempDir, Committer) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("db.redb")).unwrap();
        crate::schema::prepare(&db).unwrap();
        let aggregates = Arc::new(Mutex::new(Aggregates::load(&db).unwrap()));
        let db = Arc::new(db);
        (dir, Committer { db, aggregates })
    }

    /// Commits the records as one batch and checks every request got `Ok`.
    fn store(w: &Committer, records: Vec<Fulfillment>) {
        let (mut batch, mut waits) = (Vec::new(), Vec::new());
        for fulfillment in records {
            let (done, wait) = oneshot::channel();
            batch.push(Job { fulfillment, done });
            waits.push(wait);
        }
        w.flush(&mut batch);
        for mut wait in waits {
            assert_eq!(wait.try_recv().unwrap(), Ok(()));
        }
    }

    fn sorted(mut t: Vec<UserTotals>) -> Vec<UserTotals> {
        t.sort_by(|a, b| a.username.cmp(&b.username));
        t
    }

    fn reloaded(w: &Committer) -> Vec<UserTotals> {
        sorted(Aggregates::load(&w.db).unwrap().totals())
    }

    #[test]
    fn records_after_the_checkpoint_are_replayed_once() {
        let (_dir, w) = open();
        store(&w, vec![record("ann", Uuid::now_v7(), 2)]);
        w.checkpoint(true);
        store(
            &w,
            vec![
                record("ann", Uuid::now_v7(), 3),
                record("bob", Uuid::now_v7(), 5),
            ],
        );
        // No checkpoint after the second batch, as after a crash.
        let live = sorted(w.aggregates.lock().totals());
        assert_eq!(live[0].total, 2, "ann has two records in memory");
        assert_eq!(reloaded(&w), live);
        // A checkpoint now changes nothing about what a reload finds.
        w.checkpoint(true);
        assert_eq!(reloaded(&w), live);
        assert!(!w.aggregates.lock().is_dirty());
    }

    #[test]
    fn a_late_record_is_counted_in_its_own_commit() {
        let (_dir, w) = open();
        let early = Uuid::now_v7();
        store(&w, vec![record("ann", Uuid::now_v7(), 1)]);
        w.checkpoint(true);
        // Its id is older than the watermark: replay would skip it.
        assert!(w.aggregates.lock().is_late(&record("cat", early, 0)));
        store(&w, vec![record("cat", early, 7)]);
        let live = sorted(w.aggregates.lock().totals());
        assert_eq!(live.len(), 2);
        assert_eq!(reloaded(&w), live, "before the next checkpoint");
        w.checkpoint(true);
        assert_eq!(reloaded(&w), live, "after the next checkpoint");
    }

    #[test]
    fn clearing_forgets_records_aggregates_and_checkpoint() {
        let (_dir, w) = open();
        store(&w, vec![record("ann", Uuid::now_v7(), 1)]);
        w.checkpoint(true);
        w.clear().unwrap();
        assert!(w.aggregates.lock().totals().is_empty());
        assert!(reloaded(&w).is_empty());
        let early = Uuid::now_v7();
        store(&w, vec![record("bob", early, 1)]);
        assert!(!w.aggregates.lock().is_late(&record("bob", early, 1)));
        assert_eq!(reloaded(&w).len(), 1);
    }

    #[test]
    fn a_version_1_database_keeps_its_aggregates() {
        // Version 1 wrote the rows with every record and had no watermark.
        let (_dir, w) = open();
        store(&w, vec![record("ann", Uuid::now_v7(), 4)]);
        w.checkpoint(true);
        let expected = reloaded(&w);
        let txn = w.db.begin_write().unwrap();
        crate::schema::recreate(&txn, CHECKPOINT).unwrap();
        txn.open_table(crate::schema::META)
            .unwrap()
            .insert("schema_version", 1)
            .unwrap();
        txn.commit().unwrap();
        crate::schema::prepare(&w.db).unwrap();
        assert_eq!(reloaded(&w), expected, "not counted twice");
    }
}
