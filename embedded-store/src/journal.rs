//! The fulfillment journal: where a record is made durable before its 200.
//!
//! A redb commit rewrites a dozen B-tree and allocator pages however few records
//! it holds (~400 µs with its fsync for a group of 26 on the project's machine),
//! and the ingest path paid that per group. The journal is two preallocated
//! segment files written sequentially: one `pwrite` of the group and one
//! `fdatasync` of pages whose blocks already exist (~120 µs idle; under the
//! ingest benchmark the write takes 90–113 µs and the flush 64–82). The records are
//! then applied to redb in large transactions by the
//! [applier](crate::group_commit) and each segment is reused once everything in
//! it is in redb.
//!
//! Frame: `magic u32 | epoch u64 | seq u64 | len u32 | crc32 u32 | payload`,
//! little-endian; the payload is the group's records, each `len u32 | JSON`
//! (empty in the frame a reset leaves at the start of each segment). Frames
//! (magic `HQJ2`) start at multiples of 4 KiB, zero-padded, and on Linux are
//! written with `O_DIRECT`: no page-cache copy and writeback per group, and no
//! page shared by two groups (−2 µs of CPU per request in the ingest benchmark,
//! 20.2–21.5 against 21.2–26.0). Where the filesystem refuses `O_DIRECT`
//! (tmpfs on older kernels, some network filesystems) and on other systems the
//! same frames go through the page cache. Frames of schema 2 (magic `HQJ1`)
//! follow each other unpadded; they are still read, for the upgrade.
//! A segment holds the frames of one epoch from offset 0 on; reading stops at
//! the first frame that is torn (bad magic, length or checksum) or of another
//! epoch (left from the segment's previous use). A group whose frame is torn
//! was never acknowledged: its `fdatasync` had not returned.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use hq_core::domain::Fulfillment;

/// Size of each of the two segments. At 50,000 records/s a segment lasts ~0.4 s
/// (groups of ~16 records, padded to 4 KiB),
/// while the applier empties it every ~50 ms (smaller applies keep their
/// fsyncs short: the journal's syncs queue behind them on the same disk).
pub(crate) const SEGMENT_BYTES: u64 = 8 << 20;
/// Magic of the frames written now: padded to [`ALIGN`].
const MAGIC: u32 = 0x4851_4a32; // "HQJ2"
/// Magic of schema 2's frames, unpadded (read for the upgrade).
const MAGIC_UNPADDED: u32 = 0x4851_4a31; // "HQJ1"
const HEADER: usize = 28;

pub(crate) fn segment_path(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("ledger.journal-{i}"))
}

/// A group that did not fit in the active segment, whose sibling still holds
/// records not yet applied: the caller waits for the applier and retries.
#[derive(Debug)]
pub(crate) struct SiblingBusy;

pub(crate) struct Journal {
    active: usize,
    /// Where the next frame goes in the active segment.
    offset: u64,
    /// Epoch of the active segment's frames; each (re)start of a segment takes
    /// the next one, so leftover frames of an earlier use are recognised.
    epoch: u64,
    /// Highest group sequence written to each segment (0: none).
    last_seq: [u64; 2],
    buf: Vec<u8>,
    /// Where frames are written: the segments opened with `O_DIRECT` where the
    /// system allows it, else plain handles (through the page cache).
    writers: [File; 2],
    /// Room for one frame at a 4 KiB-aligned address (`O_DIRECT` needs it).
    aligned: Vec<u8>,
}

/// Frames start at multiples of this, and `O_DIRECT` writes cover whole units.
const ALIGN: u64 = 4096;

fn align_up(n: u64) -> u64 {
    n.div_ceil(ALIGN) * ALIGN
}

impl Journal {
    /// Opens (creating and zero-filling if needed) both segments and returns
    /// the records they hold, oldest epoch first. The caller applies them
    /// (idempotently) and then calls [`Journal::reset`].
    pub(crate) fn open(dir: &Path) -> io::Result<(Self, Vec<Fulfillment>)> {
        Self::open_with(dir, true)
    }

    /// [`Journal::open`], writing through the page cache unless `direct`.
    fn open_with(dir: &Path, direct: bool) -> io::Result<(Self, Vec<Fulfillment>)> {
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
        let writers = [
            open_for_writing(dir, 0, &segments[0], direct)?,
            open_for_writing(dir, 1, &segments[1], direct)?,
        ];
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
            active: 0,
            offset: 0,
            epoch: max_epoch,
            last_seq: [0, 0],
            buf: Vec::with_capacity(64 * 1024),
            writers,
            aligned: Vec::new(),
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
        for i in 0..2 {
            let block = aligned_copy(&mut self.aligned, &empty);
            self.writers[i].write_all_at(block, 0)?;
            self.writers[i].sync_data()?;
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
        let frame_len = align_up(self.buf.len() as u64);
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
        let (active, offset) = (self.active, self.offset);
        let block = aligned_copy(&mut self.aligned, &self.buf);
        self.writers[active].write_all_at(block, offset)?;
        self.writers[active].sync_data()?;
        self.offset += frame_len;
        self.last_seq[self.active] = seq;
        Ok(Ok(()))
    }
}

/// Segment `i` opened with `O_DIRECT` (Linux), or a second handle on `file`
/// where that is refused. Some filesystems accept the flag at open and refuse
/// the writes, so the first block is written back once through the new handle
/// (same bytes: harmless if torn) before it is trusted.
fn open_for_writing(dir: &Path, i: usize, file: &File, direct: bool) -> io::Result<File> {
    #[cfg(target_os = "linux")]
    if direct {
        use std::os::unix::fs::OpenOptionsExt;
        let probe = |handle: &File| -> io::Result<()> {
            let mut first = vec![0u8; ALIGN as usize];
            file.read_exact_at(&mut first, 0)?;
            handle.write_all_at(aligned_copy(&mut Vec::new(), &first), 0)
        };
        let opened = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(segment_path(dir, i));
        match opened.and_then(|handle| probe(&handle).map(|()| handle)) {
            Ok(handle) => return Ok(handle),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::info!(dir = %dir.display(), "the filesystem refuses O_DIRECT; the journal goes through the page cache");
            }
            Err(e) => return Err(e),
        }
    }
    let _ = (dir, i, direct);
    file.try_clone()
}

/// `bytes` zero-padded to whole [`ALIGN`] units at an aligned address in `room`.
fn aligned_copy<'a>(room: &'a mut Vec<u8>, bytes: &[u8]) -> &'a [u8] {
    let len = align_up(bytes.len() as u64) as usize;
    if room.len() < len + ALIGN as usize {
        *room = vec![0; len + ALIGN as usize];
    }
    let start = room.as_ptr().align_offset(ALIGN as usize);
    let out = &mut room[start..start + len];
    out[..bytes.len()].copy_from_slice(bytes);
    out[bytes.len()..].fill(0);
    out
}

fn header(epoch: u64, seq: u64, payload: &[u8]) -> [u8; HEADER] {
    header_with(MAGIC, epoch, seq, payload)
}

fn header_with(magic: u32, epoch: u64, seq: u64, payload: &[u8]) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0..4].copy_from_slice(&magic.to_le_bytes());
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
        let padded = match word(0..4) {
            m if m == MAGIC as u64 => true,
            m if m == MAGIC_UNPADDED as u64 => false,
            _ => break,
        };
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
        let end = offset + HEADER as u64 + len;
        offset = if padded { align_up(end) } else { end };
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

    /// What schema 2 left after an unclean stop: unpadded `HQJ1` frames back
    /// to back. All of them are read (the upgrade takes them in); frames
    /// written now start at 4 KiB multiples.
    #[test]
    fn schema_2_frames_are_read_and_new_frames_are_aligned() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path()).unwrap();
        j.reset().unwrap();
        drop(j);
        let (a, b, c) = (record(1), record(2), record(3));
        let frame = |seq: u64, records: &[&Fulfillment]| {
            let mut payload = Vec::new();
            for f in records {
                let json = serde_json::to_vec(f).unwrap();
                payload.extend_from_slice(&(json.len() as u32).to_le_bytes());
                payload.extend_from_slice(&json);
            }
            let mut out = header_with(MAGIC_UNPADDED, 7, seq, &payload).to_vec();
            out.extend_from_slice(&payload);
            out
        };
        let mut old = frame(1, &[&a, &b]);
        old.extend(frame(2, &[&c]));
        let f = OpenOptions::new()
            .write(true)
            .open(segment_path(dir.path(), 0))
            .unwrap();
        f.write_all_at(&old, 0).unwrap();
        drop(f);
        let (mut j, found) = Journal::open(dir.path()).unwrap();
        assert_eq!(found, vec![a.clone(), b.clone(), c.clone()]);
        j.reset().unwrap();
        j.append(1, &[&a], 0).unwrap().unwrap();
        assert_eq!(j.offset % ALIGN, 0);
        assert!(j.offset > 0);
        j.append(2, &[&b, &c], 0).unwrap().unwrap();
        assert_eq!(j.offset % ALIGN, 0);
        drop(j);
        let (_, found) = Journal::open(dir.path()).unwrap();
        assert_eq!(found, vec![a, b, c]);
    }

    /// Where `O_DIRECT` is refused the same frames go through the page cache;
    /// either way of writing reads back the other's frames.
    #[test]
    fn buffered_and_direct_frames_are_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (record(1), record(2));
        let (mut j, _) = Journal::open_with(dir.path(), false).unwrap();
        j.append(1, &[&a], 0).unwrap().unwrap();
        assert_eq!(j.offset, ALIGN);
        drop(j);
        let (mut j, found) = Journal::open_with(dir.path(), true).unwrap();
        assert_eq!(found, vec![a.clone()]);
        j.offset = ALIGN;
        j.append(2, &[&b], 0).unwrap().unwrap();
        drop(j);
        let (_, found) = Journal::open_with(dir.path(), false).unwrap();
        assert_eq!(found, vec![a, b]);
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
