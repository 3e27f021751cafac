//! Group commit: one writer thread turns every fulfillment that arrives while the
//! previous group is being made durable into the next group, written to the
//! [journal](crate::journal) with one `fdatasync`.
//!
//! A request waits for the sync of the group that holds its record, so each 200
//! is durable, while many concurrent requests share one sync. Once synced, a
//! group's records are visible to reads (the *overlay*) and counted on the
//! leaderboard, and an applier thread moves them into redb in large
//! transactions, each with the totals and per-minute rows of its records, so
//! redb's tables always agree with each other. The queue is bounded: when the
//! disk cannot keep up, senders wait (backpressure) rather than memory growing.

use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;

use hq_core::domain::Fulfillment;
use hq_core::StoreError;
use parking_lot::{Condvar, Mutex, RwLock};
use redb::Database;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::aggregates::Aggregates;
use crate::blocks::{self, Block, MAX_BLOCK};
use crate::err;
use crate::journal::{Journal, SiblingBusy};
use crate::overlay::{Overlay, Records};

/// The most records one group takes; bounds a request's wait under load. A
/// group becomes one block in redb.
const MAX_BATCH: usize = MAX_BLOCK;
/// Records that may wait for the writer.
const QUEUE: usize = 8192;
/// How long the applier gathers groups into one redb transaction.
const APPLY_EVERY: Duration = Duration::from_millis(50);
/// Pause before retrying a failed apply (the records stay in the journal).
const APPLY_RETRY: Duration = Duration::from_secs(1);

/// What reads share with the writer and the applier.
pub(crate) struct Shared {
    /// Groups synced to the journal and not yet in redb.
    pub(crate) overlay: Mutex<Overlay>,
    /// Held for writing by the applier from its commit until its records have
    /// left the overlay; reads hold it so that they see each record once.
    pub(crate) gate: RwLock<()>,
    pub(crate) aggregates: Mutex<Aggregates>,
}

struct Job {
    fulfillment: Fulfillment,
    /// The id the record is stored under, once durable.
    done: oneshot::Sender<Result<Uuid, String>>,
}

enum Msg {
    Record(Job),
    /// Empty the ledger between two groups.
    Clear(oneshot::Sender<Result<(), String>>),
    /// Sync what is queued, apply everything, then stop.
    Close(oneshot::Sender<()>),
}

/// One synced group, on its way to redb.
struct Group {
    seq: u64,
    records: Records,
    /// The records' JSON as journaled (see [`crate::journal::records_of`]),
    /// stored as is as the group's block.
    payload: Vec<u8>,
}

enum Apply {
    Group(Group),
    /// Apply everything received so far, then answer.
    Drain(std_mpsc::SyncSender<()>),
}

/// The highest group sequence in redb, for the writer waiting to reuse a segment.
#[derive(Default)]
struct Applied {
    seq: Mutex<u64>,
    changed: Condvar,
}

impl Applied {
    fn get(&self) -> u64 {
        *self.seq.lock()
    }

    fn set(&self, seq: u64) {
        *self.seq.lock() = seq;
        self.changed.notify_all();
    }

    fn wait_for(&self, seq: u64) {
        let mut applied = self.seq.lock();
        while *applied < seq {
            self.changed
                .wait_for(&mut applied, Duration::from_millis(100));
        }
    }
}

#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Msg>,
    thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl Writer {
    /// `last_id`: the highest id stored; the writer numbers records above it.
    pub(crate) fn start(
        db: Arc<Database>,
        journal: Journal,
        shared: Arc<Shared>,
        last_id: Option<Uuid>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let last_id = last_id.unwrap_or_default();
        let thread = std::thread::Builder::new()
            .name("hq-group-commit".into())
            .spawn(move || run(db, journal, shared, last_id, rx))
            .expect("spawning the group-commit thread");
        Self {
            tx,
            thread: Arc::new(Mutex::new(Some(thread))),
        }
    }

    /// Queues a record and waits until its group is durable; answers the id the
    /// writer gave it.
    pub(crate) async fn record(&self, fulfillment: Fulfillment) -> Result<Uuid, StoreError> {
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

    /// Syncs and applies everything queued and stops; later records fail.
    /// Returns once the threads are gone (and with them their database handles).
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

/// The writer loop. Ends when every sender is gone (the store was dropped) or
/// on `Close`, after syncing and applying whatever was queued.
fn run(
    db: Arc<Database>,
    journal: Journal,
    shared: Arc<Shared>,
    last_id: Uuid,
    mut rx: mpsc::Receiver<Msg>,
) {
    let applied = Arc::new(Applied::default());
    let (apply_tx, apply_rx) = std_mpsc::channel();
    let applier = std::thread::Builder::new()
        .name("hq-ledger-apply".into())
        .spawn({
            let (db, shared, applied) = (db.clone(), shared.clone(), applied.clone());
            move || apply_loop(&db, &shared, &applied, apply_rx)
        })
        .expect("spawning the ledger applier");
    let mut w = GroupWriter {
        db,
        journal,
        shared,
        applied,
        apply_tx,
        seq: 0,
        last_id,
    };
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
                }
            }
            w.flush(&mut batch);
            w.finish(applier);
            let _ = done.send(());
            return;
        }
    }
    w.finish(applier);
}

struct GroupWriter {
    db: Arc<Database>,
    journal: Journal,
    shared: Arc<Shared>,
    applied: Arc<Applied>,
    apply_tx: std_mpsc::Sender<Apply>,
    seq: u64,
    /// The last id given to a record.
    last_id: Uuid,
}

impl GroupWriter {
    /// Syncs the batch to the journal, makes it visible and counted, then tells
    /// each waiting request the outcome: a 200 is durable and on the leaderboard.
    fn flush(&mut self, batch: &mut Vec<Job>) {
        if batch.is_empty() {
            return;
        }
        self.seq += 1;
        // The records move on as one group to the overlay and the applier; the
        // requests keep only their answer channels.
        let mut records = Vec::with_capacity(batch.len());
        let mut waiting = Vec::with_capacity(batch.len());
        for mut job in batch.drain(..) {
            self.last_id = next_id(self.last_id);
            job.fulfillment.id = self.last_id;
            waiting.push((job.done, job.fulfillment.id));
            records.push(job.fulfillment);
        }
        let outcome = self.sync(&records).map_err(|e| e.to_string());
        match &outcome {
            Ok(()) => {
                let records = Arc::new(records);
                self.shared.overlay.lock().push(self.seq, records.clone());
                {
                    let mut agg = self.shared.aggregates.lock();
                    for r in records.iter() {
                        agg.add(r);
                    }
                }
                let _ = self.apply_tx.send(Apply::Group(Group {
                    seq: self.seq,
                    records,
                    payload: self.journal.last_payload().to_vec(),
                }));
            }
            Err(e) => tracing::error!(error = %e, records = waiting.len(), "journal write failed"),
        }
        for (done, id) in waiting {
            let _ = done.send(outcome.clone().map(|()| id));
        }
    }

    fn sync(&mut self, records: &[Fulfillment]) -> std::io::Result<()> {
        let records: Vec<&Fulfillment> = records.iter().collect();
        loop {
            match self
                .journal
                .append(self.seq, &records, self.applied.get())?
            {
                Ok(()) => return Ok(()),
                // The applier is behind by a whole segment: wait for it.
                Err(SiblingBusy) => self.applied.wait_for(self.journal.sibling_last_seq()),
            }
        }
    }

    /// Waits until the applier has put every synced group into redb.
    fn drain(&self) {
        let (done, wait) = std_mpsc::sync_channel(1);
        if self.apply_tx.send(Apply::Drain(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    /// Empties records, totals and minutes. The journal is emptied first: its
    /// groups are all in redb by then, and a crash between the two steps must
    /// not bring cleared records back.
    fn clear(&mut self) -> Result<(), StoreError> {
        self.drain();
        self.journal.reset().map_err(err)?;
        let txn = self.db.begin_write().map_err(err)?;
        blocks::clear(&txn)?;
        let _gate = self.shared.gate.write();
        txn.commit().map_err(err)?;
        self.shared.overlay.lock().clear();
        self.shared.aggregates.lock().clear();
        Ok(())
    }

    /// Applies everything, stops the applier and empties the journal, so a
    /// clean stop leaves nothing to recover.
    fn finish(self, applier: std::thread::JoinHandle<()>) {
        self.drain();
        let Self {
            mut journal,
            apply_tx,
            shared,
            ..
        } = self;
        drop(apply_tx);
        let _ = applier.join();
        if shared.overlay.lock().is_empty() {
            if let Err(e) = journal.reset() {
                tracing::warn!(error = %e, "emptying the journal at shutdown");
            }
        }
    }
}

/// Ids in commit order: a UUIDv7 of now, or just above `last` if the clock has
/// not moved on (or went back), so that blocks never overlap.
fn next_id(last: Uuid) -> Uuid {
    let now = Uuid::now_v7();
    if now > last {
        now
    } else {
        // The low bits are v7's random part: one more keeps version and
        // variant and orders after the last id.
        Uuid::from_u128(last.as_u128() + 1)
    }
}

/// The applier: gathers synced groups for [`APPLY_EVERY`] and writes them to
/// redb in one durable transaction, then drops them from the overlay.
fn apply_loop(db: &Database, shared: &Shared, applied: &Applied, rx: std_mpsc::Receiver<Apply>) {
    let mut pending: Vec<Group> = Vec::new();
    let mut drains = Vec::new();
    loop {
        if pending.is_empty() {
            // Idle: one wake-up for the first group.
            match rx.recv() {
                Ok(m) => take(m, &mut pending, &mut drains),
                Err(_) => return,
            }
        }
        // Then let groups gather without a wake-up each (the writer sends one
        // per sync); a drain, queued behind the groups it covers, is answered
        // within one interval.
        std::thread::sleep(APPLY_EVERY);
        let mut closed = false;
        loop {
            match rx.try_recv() {
                Ok(m) => take(m, &mut pending, &mut drains),
                Err(std_mpsc::TryRecvError::Empty) => break,
                Err(std_mpsc::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        if !pending.is_empty() {
            match apply(db, shared, &pending) {
                Ok(()) => {
                    let seq = pending.last().map_or(0, |g| g.seq);
                    pending.clear();
                    applied.set(seq);
                }
                Err(e) => {
                    // Still journaled and in the overlay: nothing is lost.
                    tracing::error!(error = %e, "applying the journal to the database failed; retrying");
                    std::thread::sleep(APPLY_RETRY);
                    continue;
                }
            }
        }
        for d in drains.drain(..) {
            let _ = d.send(());
        }
        if closed {
            return;
        }
    }
}

fn take(m: Apply, pending: &mut Vec<Group>, drains: &mut Vec<std_mpsc::SyncSender<()>>) {
    match m {
        Apply::Group(g) => pending.push(g),
        Apply::Drain(d) => drains.push(d),
    }
}

/// One transaction: a block per group, with the records' totals and minute rows.
fn apply(db: &Database, shared: &Shared, groups: &[Group]) -> Result<(), StoreError> {
    let blocks: Vec<Block<'_>> = groups
        .iter()
        .map(|g| Block {
            records: g.records.iter().collect(),
            framed: &g.payload,
        })
        .collect();
    let txn = db.begin_write().map_err(err)?;
    blocks::store(&txn, &blocks, true)?;
    let _gate = shared.gate.write();
    txn.commit().map_err(err)?;
    if let Some(last) = groups.last() {
        shared.overlay.lock().applied(last.seq);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Recovery: whatever was or was not applied when the process stopped, a
    //! reopened store holds every synced record once, and its aggregates equal
    //! its records.

    use super::*;
    use crate::EmbeddedStore;
    use hq_core::domain::{Amounts, KeyId, UserTotals, Username};
    use hq_core::ports::Ledger;

    fn record(user: &str, iridium: u32) -> Fulfillment {
        Fulfillment {
            id: Uuid::now_v7(),
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

    fn sorted(mut t: Vec<UserTotals>) -> Vec<UserTotals> {
        t.sort_by(|a, b| a.username.cmp(&b.username));
        t
    }

    /// Journals records the way the writer does, without applying them, as if
    /// the process died right after their 200s.
    fn journal_only(dir: &std::path::Path, records: &[Fulfillment]) {
        let (mut j, _) = Journal::open(dir).unwrap();
        let refs: Vec<&Fulfillment> = records.iter().collect();
        j.append(1, &refs, 0).unwrap().unwrap();
    }

    #[test]
    fn ids_increase_even_when_the_clock_goes_back() {
        let now = Uuid::now_v7();
        assert!(next_id(now) > now);
        // The last id came from a clock an hour ahead of this one.
        let ahead = Uuid::from_u128(now.as_u128() + (3_600_000u128 << 80));
        let next = next_id(ahead);
        assert_eq!(next.as_u128(), ahead.as_u128() + 1);
        assert_eq!(next.get_version_num(), 7);
        assert!(next_id(next) > next);
    }

    #[tokio::test]
    async fn synced_records_not_yet_applied_are_recovered_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let mut a = record("ann", 2);
        a.id = store.record(a.clone()).await.unwrap();
        store.close().await;
        drop(store);
        // Two more records reached the journal only; `a` is there again, as a
        // group applied just before a crash would be. The writer numbers
        // records in commit order: later records have higher ids.
        let (mut b, mut c) = (record("ann", 3), record("bob", 5));
        b.id = Uuid::from_u128(a.id.as_u128() + 1);
        c.id = Uuid::from_u128(a.id.as_u128() + 2);
        journal_only(dir.path(), &[a.clone(), b.clone(), c.clone()]);
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(store.count().await.unwrap(), 3);
        assert_eq!(store.get(b.id).await.unwrap(), Some(b.clone()));
        let totals = sorted(store.totals().await.unwrap());
        assert_eq!((totals[0].total, totals[0].iridium), (2, 5));
        assert_eq!((totals[1].total, totals[1].iridium), (1, 5));
        store.close().await;
        drop(store);
        // Recovery emptied the journal: a second reopen changes nothing.
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(store.count().await.unwrap(), 3);
        assert_eq!(sorted(store.totals().await.unwrap()), totals);
    }

    #[tokio::test]
    async fn reads_see_each_record_once_while_groups_are_applied() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let mut ids = Vec::new();
        for round in 0..20u32 {
            let mut tasks = Vec::new();
            for i in 0..25 {
                let (store, f) = (store.clone(), record("ann", round * 25 + i));
                tasks.push(tokio::spawn(async move { store.record(f).await }));
            }
            for t in tasks {
                ids.push(t.await.unwrap().unwrap());
            }
            // Every acknowledged record is readable at once, counted once.
            let n = ids.len() as u64;
            assert_eq!(store.count().await.unwrap(), n);
            let listed = store.list(None, 10_000).await.unwrap();
            assert_eq!(listed.len() as u64, n);
            assert!(listed.windows(2).all(|w| w[0].id < w[1].id));
            let last = *ids.last().unwrap();
            assert_eq!(store.get(last).await.unwrap().map(|f| f.id), Some(last));
        }
        let page = store.list(Some(ids[9]), 5).await.unwrap();
        let mut sorted_ids = ids.clone();
        sorted_ids.sort();
        let at = sorted_ids.iter().position(|i| *i == ids[9]).unwrap();
        let expected: Vec<Uuid> = sorted_ids[at + 1..].iter().take(5).copied().collect();
        assert_eq!(page.iter().map(|f| f.id).collect::<Vec<_>>(), expected);
        store.close().await;
    }

    #[tokio::test]
    async fn cleared_records_do_not_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store.record(record("ann", 1)).await.unwrap();
        store.clear().await.unwrap();
        assert_eq!(store.count().await.unwrap(), 0);
        assert!(store.totals().await.unwrap().is_empty());
        let mut b = record("bob", 1);
        b.id = store.record(b.clone()).await.unwrap();
        // What a crash now would recover: the journal no longer holds the
        // cleared record.
        let (_, journaled) = Journal::open(dir.path()).unwrap();
        assert_eq!(journaled, vec![b.clone()]);
        store.close().await;
        drop(store);
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(store.list(None, 10).await.unwrap(), vec![b]);
        assert_eq!(store.totals().await.unwrap().len(), 1);
    }
}
