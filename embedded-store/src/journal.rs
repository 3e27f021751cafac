//! The fulfillment journal: where a record is made durable before its 200.
//!
//! A redb commit rewrites a dozen B-tree and allocator pages however few records
//! it holds (~400 µs with its fsync for a group of 26 on the project's machine),
//! and the ingest path paid that per group. The journal is two preallocated
//! segment files written sequentially: one `pwrite` of the group and one
//! `fdatasync` of pages whose blocks already exist (~120 µs). The records are
//! then applied to redb in large transactions by the
//! [applier](crate::group_commit) and each segment is reused once everything in
//! it is in redb.
//!
//! Frame: `magic u32 | epoch u64 | seq u64 | len u32 | crc32 u32 | payload`,
//! little-endian; the payload is the group's records, each `len u32 | JSON`
//! (empty in the frame a reset leaves at the start of each segment).
//! A segment holds the frames of one epoch from offset 0 on; reading stops at
//! the first frame that is torn (bad magic, length or checksum) or of another
//! epoch (left from the segment's previous use). A group whose frame is torn
//! was never acknowledged: its `fdatasync` had not returned.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use hq_core::domain::Fulfillment;

/// Size of each of the two segments. At 50,000 records/s a segment lasts ~0.6 s,
/// while the applier empties it every ~50 ms (smaller applies keep their
/// fsyncs short: the journal's syncs queue behind them on the same disk).
pub(crate) const SEGMENT_BYTES: u64 = 8 << 20;
const MAGIC: u32 = 0x4851_4a31; // "HQJ1"
const HEADER: usize = 28;

pub(crate) fn segment_path(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("ledger.journal-{i}"))
}

/// A group that did not fit in the active segment, whose sibling still holds
/// records not yet applied: the caller waits for the applier and retries.
#[derive(Debug)]
pub(crate) struct SiblingBusy;

pub(crate) struct Journal {
    segments: [File; 2],
    active: usize,
    /// Where the next frame goes in the active segment.
    offset: u64,
    /// Epoch of the active segment's frames; each (re)start of a segment takes
    /// the next one, so leftover frames of an earlier use are recognised.
    epoch: u64,
    /// Highest group sequence written to each segment (0: none).
    last_seq: [u64; 2],
    buf: Vec<u8>,
}

impl Journal {
    /// Opens (creating and zero-filling if needed) both segments and returns
    /// the records they hold, oldest epoch first. The caller applies them
    /// (idempotently) and then calls [`Journal::reset`].
    pub(crate) fn open(dir: &Path) -> io::Result<(Self, Vec<Fulfillment>)> {
        let open = |i: usize| -> io::Result<File> {
            let path = segment_path(dir, i);
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)?;
            if file.metadata()?.len() < SEGMENT_BYTES {
                // Real zeros, not a hole: an fdatasync of a frame written here
                // later then carries no block allocation.
                let zeros = vec![0u8; 1 << 20];
                let mut at = file.metadata()?.len();
                while at < SEGMENT_BYTES {
                    let n = (SEGMENT_BYTES - at).min(zeros.len() as u64) as usize;
                    file.write_all_at(&zeros[..n], at)?;
                    at += n as u64;
                }
                file.sync_all()?;
            }
            Ok(file)
        };
        let segments = [open(0)?, open(1)?];
        // New files survive a crash only once their directory entry is synced.
        File::open(dir)?.sync_all()?;
        let mut found: Vec<(u64, Vec<Fulfillment>)> = Vec::new();
        let mut max_epoch = 0;
        for file in &segments {
            if let Some((epoch, records)) = read_segment(file)? {
                max_epoch = max_epoch.max(epoch);
                found.push((epoch, records));
            }
        }
        found.sort_by_key(|(epoch, _)| *epoch);
        let records = found.into_iter().flat_map(|(_, r)| r).collect();
        let journal = Self {
            segments,
            active: 0,
            offset: 0,
            epoch: max_epoch,
            last_seq: [0, 0],
            buf: Vec::with_capacity(64 * 1024),
        };
        Ok((journal, records))
    }

    /// Forgets both segments' contents (all applied, or the event was reset):
    /// each starts with an empty frame of a new epoch, synced, so a restart
    /// finds nothing, and the epoch count survives even if nothing is written
    /// before the next restart (stale frames always carry older epochs).
    pub(crate) fn reset(&mut self) -> io::Result<()> {
        self.epoch += 1;
        let empty = header(self.epoch, 0, &[]);
        for file in &self.segments {
            file.write_all_at(&empty, 0)?;
            file.sync_data()?;
        }
        self.active = 0;
        self.offset = 0;
        self.last_seq = [0, 0];
        Ok(())
    }

    /// The payload of the last frame appended: its records' JSON, which the
    /// applier stores as is.
    pub(crate) fn last_payload(&self) -> &[u8] {
        self.buf.get(HEADER..).unwrap_or_default()
    }

    /// The highest group sequence in the segment the next rotation would reuse.
    pub(crate) fn sibling_last_seq(&self) -> u64 {
        self.last_seq[1 - self.active]
    }

    /// Writes one group durably. `applied` is the highest group sequence the
    /// applier has made durable in redb; a rotation needs the sibling segment's
    /// groups all applied.
    pub(crate) fn append(
        &mut self,
        seq: u64,
        records: &[&Fulfillment],
        applied: u64,
    ) -> io::Result<Result<(), SiblingBusy>> {
        self.buf.clear();
        self.buf.resize(HEADER, 0);
        for f in records {
            let start = self.buf.len();
            self.buf.extend_from_slice(&[0; 4]);
            serde_json::to_writer(&mut self.buf, f).map_err(io::Error::other)?;
            let len = (self.buf.len() - start - 4) as u32;
            self.buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
        }
        let frame_len = self.buf.len() as u64;
        if frame_len > SEGMENT_BYTES {
            return Err(io::Error::other("a group is larger than a journal segment"));
        }
        if self.offset + frame_len > SEGMENT_BYTES {
            if self.sibling_last_seq() > applied {
                return Ok(Err(SiblingBusy));
            }
            self.active = 1 - self.active;
            self.offset = 0;
            self.epoch += 1;
        }
        let h = header(self.epoch, seq, &self.buf[HEADER..]);
        self.buf[..HEADER].copy_from_slice(&h);
        let file = &self.segments[self.active];
        file.write_all_at(&self.buf, self.offset)?;
        file.sync_data()?;
        self.offset += frame_len;
        self.last_seq[self.active] = seq;
        Ok(Ok(()))
    }
}

fn header(epoch: u64, seq: u64, payload: &[u8]) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    h[4..12].copy_from_slice(&epoch.to_le_bytes());
    h[12..20].copy_from_slice(&seq.to_le_bytes());
    h[20..24].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[24..28].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    h
}

/// The epoch and records of one segment, or `None` if it holds no frame.
fn read_segment(file: &File) -> io::Result<Option<(u64, Vec<Fulfillment>)>> {
    let mut offset = 0u64;
    let mut epoch = None;
    let mut records = Vec::new();
    let mut header = [0u8; HEADER];
    while offset + HEADER as u64 <= SEGMENT_BYTES {
        file.read_exact_at(&mut header, offset)?;
        let word = |r: std::ops::Range<usize>| -> u64 {
            let mut b = [0u8; 8];
            b[..r.len()].copy_from_slice(&header[r]);
            u64::from_le_bytes(b)
        };
        if word(0..4) != MAGIC as u64 {
            break;
        }
        let frame_epoch = word(4..12);
        if epoch.is_some_and(|e| e != frame_epoch) {
            break;
        }
        let len = word(20..24);
        if offset + HEADER as u64 + len > SEGMENT_BYTES {
            break;
        }
        let mut payload = vec![0u8; len as usize];
        file.read_exact_at(&mut payload, offset + HEADER as u64)?;
        if crc32fast::hash(&payload) as u64 != word(24..28) {
            break;
        }
        let Some(group) = decode(&payload) else { break };
        epoch = Some(frame_epoch);
        records.extend(group);
        offset += HEADER as u64 + len;
    }
    Ok(epoch.map(|e| (e, records)))
}

fn decode(payload: &[u8]) -> Option<Vec<Fulfillment>> {
    let mut out = Vec::new();
    for json in records_of(payload) {
        out.push(serde_json::from_slice(json?).ok()?);
    }
    Some(out)
}

/// The JSON of each record of a frame's payload, in order; `None` where the
/// framing is broken.
pub(crate) fn records_of(mut payload: &[u8]) -> impl Iterator<Item = Option<&[u8]>> {
    std::iter::from_fn(move || {
        if payload.is_empty() {
            return None;
        }
        let record = payload
            .get(..4)
            .and_then(|l| l.try_into().ok())
            .map(|l| u32::from_le_bytes(l) as usize)
            .and_then(|len| Some((payload.get(4..4 + len)?, 4 + len)));
        match record {
            Some((json, used)) => {
                payload = &payload[used..];
                Some(Some(json))
            }
            None => {
                payload = &[];
                Some(None)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hq_core::domain::{Amounts, KeyId, Username};

    fn record(i: u32) -> Fulfillment {
        Fulfillment {
            id: uuid::Uuid::now_v7(),
            username: Username::parse("ann").unwrap(),
            key_id: KeyId("k".into()),
            at: 1_700_000_000_000,
            amounts: Amounts {
                iridium: i,
                magnesite: 0,
            },
            request_id: "r".into(),
            trace_id: None,
        }
    }

    #[test]
    fn groups_come_back_after_a_reopen_and_not_after_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, found) = Journal::open(dir.path()).unwrap();
        assert!(found.is_empty());
        let (a, b, c) = (record(1), record(2), record(3));
        j.append(1, &[&a, &b], 0).unwrap().unwrap();
        j.append(2, &[&c], 0).unwrap().unwrap();
        drop(j);
        let (mut j, found) = Journal::open(dir.path()).unwrap();
        assert_eq!(found, vec![a, b, c]);
        j.reset().unwrap();
        drop(j);
        let (_, found) = Journal::open(dir.path()).unwrap();
        assert!(found.is_empty());
    }

    #[test]
    fn stale_frames_are_never_read_back_after_resets_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let open = || Journal::open(dir.path()).unwrap();
        // As the store does: every open is followed by a reset.
        let (mut j, _) = open();
        j.reset().unwrap();
        let (a, b, c) = (record(1), record(2), record(3));
        j.append(1, &[&a], 0).unwrap().unwrap();
        j.append(2, &[&b], 0).unwrap().unwrap();
        drop(j);
        let (mut j, found) = open();
        assert_eq!(found, vec![a, b.clone()]);
        j.reset().unwrap();
        drop(j);
        // A restart with nothing written since the reset.
        let (mut j, found) = open();
        assert!(found.is_empty());
        j.reset().unwrap();
        // `c` has the size of `a`: the next frame position is where `b` was.
        j.append(1, &[&c], 0).unwrap().unwrap();
        drop(j);
        let (_, found) = open();
        assert_eq!(found, vec![c], "a stale frame was read back");
    }

    #[test]
    fn a_torn_frame_ends_the_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path()).unwrap();
        let (a, b) = (record(1), record(2));
        j.append(1, &[&a], 0).unwrap().unwrap();
        let second_at = j.offset;
        j.append(2, &[&b], 0).unwrap().unwrap();
        drop(j);
        // Corrupt one payload byte of the second frame, as a torn write would.
        let f = OpenOptions::new()
            .write(true)
            .open(segment_path(dir.path(), 0))
            .unwrap();
        f.write_all_at(b"#", second_at + HEADER as u64 + 10)
            .unwrap();
        let (_, found) = Journal::open(dir.path()).unwrap();
        assert_eq!(found, vec![a]);
    }

    #[test]
    fn rotation_waits_for_the_sibling_to_be_applied() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path()).unwrap();
        let r = record(1);
        let group: Vec<&Fulfillment> = std::iter::repeat_n(&r, 2000).collect();
        let mut seq = 0;
        // Fill segment 0, rotate to 1 (0 was never used: free), fill 1.
        while j.active == 0 || j.offset + 600_000 < SEGMENT_BYTES {
            seq += 1;
            j.append(seq, &group, 0).unwrap().unwrap();
        }
        let filled = seq;
        // Segment 0 holds unapplied groups: the next rotation must wait.
        loop {
            seq += 1;
            match j.append(seq, &group, 0).unwrap() {
                Ok(()) => continue,
                Err(SiblingBusy) => break,
            }
        }
        assert!(seq > filled);
        let applied = j.sibling_last_seq();
        j.append(seq, &group, applied).unwrap().unwrap();
        assert_eq!(j.active, 0);
        drop(j);
        // After the rotation segment 0 has a newer epoch: only that frame and
        // segment 1's frames are read back.
        let (_, found) = Journal::open(dir.path()).unwrap();
        let segment1_groups = seq - 1 - applied;
        assert_eq!(found.len() as u64, (segment1_groups + 1) * 2000);
    }
}
