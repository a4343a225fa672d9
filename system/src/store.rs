//! Durable Raft state on a [`storage::Dir`]: a write-ahead log of hard-state
//! and entry records, and a snapshot file. Real files with fsync in
//! production, a crash-simulating directory in the simulator.
//!
//! Files: `raft.wal` (records: `WalRecord` protobufs in the storage crate's
//! checksummed frames) and `snapshot` (a checked `Snapshot` protobuf). An
//! `entries` record replaces the stored suffix from its first index. After a
//! snapshot the WAL is rewritten to hold only what follows it.
//!
//! # Damaged synced data
//!
//! A torn tail (writes never synced, so never acknowledged) is cut. Damage to
//! synced records (a rotten bit, a lost or misdirected write: the storage
//! crate finds valid records after the bad one, or a record is out of place:
//! every record is numbered one more than the one before it) is
//! different: the node may have voted or acknowledged entries with what was
//! lost. Every record is therefore stamped with the node's term and the end
//! of its log (`last_term`, `last_index`), and recovery from damage:
//!
//! * keeps the log up to the damage (records after it are not trusted as
//!   log, only read for their stamps and terms);
//! * moves to a term above every term any record shows, with no vote: a vote
//!   lost with the damage was cast in one of those terms (it was followed by
//!   intact records, stamped with its term or a later one), so the node can
//!   never vote twice in a term;
//! * keeps the end of the log the last intact record shows as a *floor*
//!   ([`raft::Persisted::floor`]): the node votes as if its log still ended
//!   there and does not campaign until its log, repaired by a leader, is at
//!   least as up to date. So an entry it acknowledged and lost still counts
//!   in every election, as Raft's safety argument needs;
//! * clamps the commit index to the kept log;
//! * rewrites the WAL atomically (kept records and a hard-state record stamped
//!   with the floor), so the floor survives the next crash: every record keeps
//!   being stamped with it until the log reaches it.
//!
//! Entries are written before the hard state in each batch of writes (see
//! `node.rs`), so a commit index on disk never refers to entries that are not.

use crate::convert::*;
use crate::pb::{self, wal_record::Record};
use prost::Message;
use raft::{Entry, HardState, Persisted, Snapshot};
use std::io;
use std::sync::Arc;
use storage::{read_checked, write_checked_with, Dir, Recovery, ReplayOpts, Wal};

const WAL: &str = "raft.wal";
const SNAPSHOT: &str = "snapshot";

/// How the store reads its files (planted bugs; `Default`: none).
#[derive(Clone, Copy, Debug, Default)]
pub struct StoreOpts {
    /// Skip WAL checksums (planted bug `wal-no-checksum`).
    pub no_checksum: bool,
    /// A zero-filled frame ends the log (planted bug `zeros-end-log`).
    pub zero_frame_ends_log: bool,
    /// Take records as they come, without checking that each is numbered
    /// one more than the one before and that entries follow the log (planted
    /// bug `wal-no-order-check`: a misdirected write is read back in place).
    pub no_order_check: bool,
}

/// What recovery found, beyond the WAL's own report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreRecovery {
    pub wal: Recovery,
    /// Synced records were damaged: why (the WAL's reason or a record out
    /// of order), `None` if not.
    pub damaged: Option<String>,
}

pub struct RaftStore {
    dir: Arc<dyn Dir>,
    wal: Wal,
    /// The stamp of the next record.
    term: u64,
    /// The log's end (term, index).
    end: (u64, u64),
    /// The end of the log before damage, until the log reaches it.
    floor: Option<(u64, u64)>,
    /// The number of the next record.
    seq: u64,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Replays records into a hard state and a log.
struct Replay {
    hs: HardState,
    entries: Vec<Entry>,
    snap_index: u64,
    /// Highest term any record shows (stamps, hard states, entries).
    max_term: u64,
    /// The last record's stamp (term, last_term, last_index), if stamped.
    stamp: Option<(u64, u64, u64)>,
    /// The number of the last record applied (0 before any, or unnumbered).
    seq: u64,
    /// The highest record number seen anywhere in the file.
    max_seq: u64,
    /// A record written before records were stamped and numbered.
    unstamped: bool,
}

impl Replay {
    /// Applies one record; `Ok(Err)` (applying nothing) if its entries do not
    /// follow the log (a misdirected write). A record that passed its
    /// checksum but does not decode is no disk fault: the node refuses to
    /// start with that error.
    fn apply(&mut self, raw: &[u8], order_check: bool) -> io::Result<Result<(), String>> {
        let mut rec =
            pb::WalRecord::decode(raw).map_err(|e| invalid(format!("wal record: {e}")))?;
        if order_check && rec.seq != 0 && self.seq != 0 && rec.seq != self.seq + 1 {
            return Ok(Err(format!(
                "record {} where record {} belongs: out of place",
                rec.seq,
                self.seq + 1
            )));
        }
        self.seq = rec.seq;
        self.note_stamp(&rec);
        match rec.record.take() {
            Some(Record::HardState(h)) => {
                let h = hard_state_from_pb(h);
                self.max_term = self.max_term.max(h.term);
                // Terms only grow, a term's vote is never changed once cast,
                // the commit index only grows: the newest wins, whatever
                // the order of the records (a misdirected one may be early).
                if h.term > self.hs.term {
                    self.hs.term = h.term;
                    self.hs.vote = h.vote;
                } else if h.term == self.hs.term && self.hs.vote.is_none() {
                    self.hs.vote = h.vote;
                }
                self.hs.commit = self.hs.commit.max(h.commit);
            }
            Some(Record::Entries(b)) => {
                if let Some(first) = b.entries.first() {
                    let end = self.entries.last().map_or(self.snap_index, |e| e.index);
                    if order_check && first.index > end + 1 {
                        return Ok(Err(format!(
                            "entries from index {} follow a log that ends at {end}",
                            first.index
                        )));
                    }
                    self.entries.retain(|e| e.index < first.index);
                }
                for e in b.entries {
                    self.max_term = self.max_term.max(e.term);
                    self.entries.push(entry_from_pb(e));
                }
            }
            None => {}
        }
        Ok(Ok(()))
    }

    /// Notes a record's stamp: the stamp of the highest-numbered record is
    /// where the log really ended.
    fn note_stamp(&mut self, rec: &pb::WalRecord) {
        self.max_term = self.max_term.max(rec.term);
        if rec.seq == 0 {
            self.unstamped = true;
        } else if rec.seq >= self.max_seq {
            self.max_seq = rec.seq;
            self.stamp = Some((rec.term, rec.last_term, rec.last_index));
        }
    }

    /// Reads what a record after the damage tells: its terms and stamp.
    fn observe(&mut self, raw: &[u8]) {
        let Ok(rec) = pb::WalRecord::decode(raw) else {
            return;
        };
        match &rec.record {
            Some(Record::HardState(h)) => self.max_term = self.max_term.max(h.term),
            Some(Record::Entries(b)) => {
                for e in &b.entries {
                    self.max_term = self.max_term.max(e.term);
                }
            }
            None => {}
        }
        self.note_stamp(&rec);
    }
}

impl RaftStore {
    /// Opens the store and recovers what a restarted node starts from. A
    /// torn or corrupt WAL tail is cut off (reported in `Recovery`); damaged
    /// synced records are recovered from as the module docs say.
    pub fn open(dir: Arc<dyn Dir>) -> io::Result<(RaftStore, Persisted, StoreRecovery)> {
        RaftStore::open_with(dir, StoreOpts::default())
    }

    /// [`RaftStore::open`] with planted bugs.
    pub fn open_with(
        dir: Arc<dyn Dir>,
        opts: StoreOpts,
    ) -> io::Result<(RaftStore, Persisted, StoreRecovery)> {
        let snapshot = match read_checked(dir.as_ref(), SNAPSHOT)? {
            Some(b) => Some(snapshot_from_pb(
                pb::Snapshot::decode(b.as_slice())
                    .map_err(|e| invalid(format!("snapshot: {e}")))?,
            )),
            None => None,
        };
        let replay_opts = ReplayOpts {
            verify: !opts.no_checksum,
            zero_frame_ends_log: opts.zero_frame_ends_log,
        };
        let (wal, records, recovery) = Wal::open_with(dir.clone(), WAL, replay_opts)?;
        let snap_index = snapshot.as_ref().map_or(0, |s| s.index);
        let mut r = Replay {
            hs: HardState::default(),
            entries: Vec::new(),
            snap_index,
            max_term: snapshot.as_ref().map_or(0, |s| s.term),
            stamp: None,
            seq: 0,
            max_seq: 0,
            unstamped: false,
        };
        let mut damaged = (!recovery.after_damage.is_empty()).then(|| {
            recovery
                .reason
                .clone()
                .unwrap_or_else(|| "damaged WAL".to_string())
        });
        let mut rest = records.iter();
        for raw in rest.by_ref() {
            if let Err(why) = r.apply(raw, !opts.no_order_check)? {
                r.observe(raw);
                damaged = Some(why);
                break;
            }
        }
        // Kept log's end, before reading what follows the damage.
        r.entries.retain(|e| e.index > snap_index);
        if let Some(first) = r.entries.first() {
            if first.index != snap_index + 1 {
                return Err(invalid(format!(
                    "log starts at {} but the snapshot ends at {snap_index}",
                    first.index
                )));
            }
        }
        let end = r.entries.last().map_or_else(
            || (snapshot.as_ref().map_or(0, |s| s.term), snap_index),
            |e| (e.term, e.index),
        );
        let mut floor = None;
        let mut hard_state = r.hs.clone();
        if let Some(why) = &damaged {
            for raw in rest.chain(recovery.after_damage.iter()) {
                r.observe(raw);
            }
            if r.unstamped {
                return Err(invalid(format!(
                    "the WAL is damaged ({why}) and holds records written before records \
                     were stamped: this node cannot tell what it lost; give it a copy of \
                     a healthy replica's data directory"
                )));
            }
            hard_state = HardState {
                term: r.max_term.saturating_add(1),
                vote: None,
                commit: r.hs.commit.min(end.1),
            };
            floor = r.stamp.map(|(_, t, i)| (t, i)).filter(|&f| f > end);
            hostio::coverage::hit("raft store: recovered from damaged synced records");
            hostio::coverage::sometimes(
                floor.is_some(),
                "raft store: acknowledged entries lost to damage (a floor kept)",
            );
            tracing::warn!(
                "raft store: synced WAL records damaged ({why}); log kept to {end:?}, \
                 term {} (no vote), floor {floor:?}",
                hard_state.term
            );
        } else if let Some((_, t, i)) = r.stamp {
            // A floor stamped before a crash, still above the log.
            floor = Some((t, i)).filter(|&f| f > end);
        }
        let mut store = RaftStore {
            dir,
            wal,
            term: hard_state.term,
            end,
            floor,
            seq: r.max_seq + 1,
        };
        if damaged.is_some() {
            let mut records = vec![store.record(Record::HardState(hard_state_to_pb(&hard_state)))];
            if !r.entries.is_empty() {
                records.push(store.record(Record::Entries(pb::EntryBatch {
                    entries: r.entries.iter().cloned().map(entry_to_pb).collect(),
                })));
            }
            store.wal.rewrite(&records)?;
        }
        Ok((
            store,
            Persisted {
                hard_state,
                snapshot,
                entries: r.entries,
                floor,
            },
            StoreRecovery {
                wal: recovery,
                damaged,
            },
        ))
    }

    /// A record stamped with the node's term and its log's end (its floor
    /// while the log is below it).
    fn record(&mut self, record: Record) -> Vec<u8> {
        let (last_term, last_index) = self.floor.map_or(self.end, |f| f.max(self.end));
        self.seq += 1;
        pb::WalRecord {
            record: Some(record),
            term: self.term,
            last_index,
            last_term,
            seq: self.seq - 1,
        }
        .encode_to_vec()
    }

    /// The log now ends at `end`: the floor goes once the log reaches it
    /// (the same rule as Raft's).
    fn set_end(&mut self, end: (u64, u64)) {
        self.end = end;
        if self.floor.is_some_and(|f| end >= f) {
            self.floor = None;
        }
    }

    pub fn append_hard_state(&mut self, hs: &HardState) -> io::Result<()> {
        self.term = self.term.max(hs.term);
        let rec = self.record(Record::HardState(hard_state_to_pb(hs)));
        self.wal.append(&rec)
    }

    pub fn append_entries(&mut self, entries: &[Entry]) -> io::Result<()> {
        if let Some(last) = entries.last() {
            self.set_end((last.term, last.index));
        }
        let batch = pb::EntryBatch {
            entries: entries.iter().cloned().map(entry_to_pb).collect(),
        };
        let rec = self.record(Record::Entries(batch));
        self.wal.append(&rec)
    }

    pub fn sync(&mut self) -> io::Result<()> {
        self.wal.sync()
    }

    /// Makes `snap` durable and rewrites the WAL to hold `hs` and the
    /// entries after the snapshot.
    pub fn save_snapshot(
        &mut self,
        snap: &Snapshot,
        hs: &HardState,
        rest: &[Entry],
    ) -> io::Result<()> {
        write_checked_with(self.dir.as_ref(), SNAPSHOT, snapshot_pb_len(snap), |buf| {
            encode_snapshot_pb(snap, buf)
        })?;
        self.term = self.term.max(hs.term);
        self.set_end(
            rest.last()
                .map_or((snap.term, snap.index), |e| (e.term, e.index)),
        );
        let mut records = vec![self.record(Record::HardState(hard_state_to_pb(hs)))];
        if !rest.is_empty() {
            let batch = pb::EntryBatch {
                entries: rest.iter().cloned().map(entry_to_pb).collect(),
            };
            records.push(self.record(Record::Entries(batch)));
        }
        self.wal.rewrite(&records)
    }

    pub fn wal_bytes(&self) -> u64 {
        self.wal.len_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::{CrashFaults, SimDir};

    fn e(index: u64, term: u64) -> Entry {
        Entry {
            term,
            index,
            data: vec![index as u8],
        }
    }

    #[test]
    fn recovers_term_vote_and_log_and_loses_only_unsynced_data() {
        let disk = SimDir::new();
        let (mut s, p, _) = RaftStore::open(Arc::new(disk.clone())).unwrap();
        assert_eq!(p.hard_state, HardState::default());
        s.append_hard_state(&HardState {
            term: 3,
            vote: Some(2),
            commit: 0,
        })
        .unwrap();
        s.append_entries(&[e(1, 1), e(2, 1), e(3, 2)]).unwrap();
        s.sync().unwrap();
        s.append_entries(&[e(3, 3)]).unwrap(); // replaces index 3
        s.sync().unwrap();
        s.append_entries(&[e(4, 3)]).unwrap(); // never synced
        disk.crash(CrashFaults::default());
        let (_, p, _) = RaftStore::open(Arc::new(disk.clone())).unwrap();
        assert_eq!(
            p.hard_state,
            HardState {
                term: 3,
                vote: Some(2),
                commit: 0
            }
        );
        assert_eq!(p.entries, vec![e(1, 1), e(2, 1), e(3, 3)]);
    }

    #[test]
    fn snapshot_compacts_the_log() {
        let disk = SimDir::new();
        let (mut s, _, _) = RaftStore::open(Arc::new(disk.clone())).unwrap();
        s.append_entries(&[e(1, 1), e(2, 1), e(3, 1)]).unwrap();
        s.sync().unwrap();
        let snap = Snapshot {
            index: 2,
            term: 1,
            data: b"state".to_vec(),
        };
        let hs = HardState {
            term: 1,
            vote: None,
            commit: 3,
        };
        s.save_snapshot(&snap, &hs, &[e(3, 1)]).unwrap();
        disk.crash(CrashFaults::default());
        let (_, p, _) = RaftStore::open(Arc::new(disk)).unwrap();
        assert_eq!(p.snapshot, Some(snap));
        assert_eq!(p.entries, vec![e(3, 1)]);
        assert_eq!(p.hard_state, hs);
    }

    /// A node's history of writes, each synced: votes in rising terms and
    /// entries, some replacing a suffix. Returns the true log and hard state.
    fn write_history(s: &mut RaftStore) -> (Vec<Entry>, HardState) {
        let mut log: Vec<Entry> = Vec::new();
        let mut hs = HardState::default();
        for step in 1..=12u64 {
            let term = 1 + step / 3;
            if hs.term < term {
                hs = HardState {
                    term,
                    vote: Some(1 + step % 3),
                    commit: hs.commit,
                };
                s.append_hard_state(&hs).unwrap();
            }
            // Each new term's first batch replaces the last two entries (a
            // new leader), and a commit index covering them follows it.
            let from = if step % 3 == 0 {
                log.len() as u64 - 1
            } else {
                log.len() as u64 + 1
            };
            let batch: Vec<Entry> = (from..from + 2).map(|i| e(i, term)).collect();
            log.retain(|x| x.index < from);
            log.extend(batch.iter().cloned());
            s.append_entries(&batch).unwrap();
            hs.commit = log.len() as u64 - 2;
            s.append_hard_state(&hs).unwrap();
            s.sync().unwrap();
        }
        (log, hs)
    }

    /// Whatever synced write is damaged and however: no entry comes back
    /// that was not written, committed ones are the log's, the term is above every term
    /// the node had (so it cannot vote twice), the commit index is within
    /// the kept log, and if entries were lost the floor is the true end.
    #[test]
    fn damaged_synced_records_are_never_applied_and_what_was_lost_still_counts() {
        let mut seen = std::collections::BTreeSet::new();
        for damage in storage::Damage::ALL {
            for seed in 0..60 {
                let disk = SimDir::new();
                let (mut s, _, _) = RaftStore::open(Arc::new(disk.clone())).unwrap();
                let (log, hs) = write_history(&mut s);
                disk.crash(CrashFaults {
                    seed,
                    damage: Some(damage),
                    ..Default::default()
                });
                let (mut s2, p, rec) = RaftStore::open(Arc::new(disk.clone())).unwrap();
                // Kept entries were the log once (an earlier state of it):
                // each was written, and the committed ones are the log's.
                for x in &p.entries {
                    assert!(x.term <= hs.term && x.data == vec![x.index as u8]);
                    if x.index <= p.hard_state.commit {
                        assert_eq!(
                            Some(x),
                            log.get(x.index as usize - 1),
                            "{damage:?} seed {seed}"
                        );
                    }
                }
                let kept = p.entries.last().map_or((0, 0), |x| (x.term, x.index));
                let truth = log.last().map(|x| (x.term, x.index)).unwrap();
                if rec.damaged.is_some() {
                    seen.insert(damage.name());
                    assert!(p.hard_state.term > hs.term, "{damage:?} seed {seed}");
                    assert_eq!(p.hard_state.vote, None);
                    assert!(p.hard_state.commit <= kept.1);
                    if kept < truth {
                        assert_eq!(p.floor, Some(truth), "{damage:?} seed {seed}");
                    }
                } else {
                    assert_eq!(p.entries, log, "{damage:?} seed {seed}: undetected");
                    assert_eq!(p.hard_state, hs);
                }
                // The floor survives another crash, and goes once the log
                // reaches it.
                if let Some(floor) = p.floor {
                    disk.crash(CrashFaults::default());
                    let (_, p2, _) = RaftStore::open(Arc::new(disk.clone())).unwrap();
                    assert_eq!(p2.floor, Some(floor));
                    // A leader repairs the log from where it differs.
                    let same = p
                        .entries
                        .iter()
                        .zip(&log)
                        .take_while(|(a, b)| a == b)
                        .count();
                    s2.append_entries(&log[same..]).unwrap();
                    s2.append_hard_state(&p.hard_state).unwrap();
                    s2.sync().unwrap();
                    disk.crash(CrashFaults::default());
                    let (_, p3, _) = RaftStore::open(Arc::new(disk.clone())).unwrap();
                    assert_eq!(p3.floor, None);
                    assert_eq!(p3.entries, log);
                }
            }
        }
        assert_eq!(seen.len(), 3, "every kind of damage detected: {seen:?}");
    }

    /// The planted bug `zeros-end-log` takes a lost write for the end of
    /// the log: the records after it are cut without a word.
    #[test]
    fn a_zero_frame_taken_as_the_end_cuts_silently() {
        let mut silent = 0;
        for seed in 0..40 {
            let disk = SimDir::new();
            let (mut s, _, _) = RaftStore::open(Arc::new(disk.clone())).unwrap();
            let (log, _) = write_history(&mut s);
            disk.crash(CrashFaults {
                seed,
                damage: Some(storage::Damage::LostWrite),
                ..Default::default()
            });
            let opts = StoreOpts {
                zero_frame_ends_log: true,
                ..Default::default()
            };
            let (_, p, rec) = RaftStore::open_with(Arc::new(disk.clone()), opts).unwrap();
            if rec.damaged.is_none() && p.entries != log {
                silent += 1;
                assert_eq!(p.floor, None);
            }
        }
        assert!(silent > 10, "{silent}");
    }
}
