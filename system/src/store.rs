//! Durable Raft state on a [`storage::Dir`]: a write-ahead log of hard-state
//! and entry records, and a snapshot file. Real files with fsync in
//! production, a crash-simulating directory in the simulator.
//!
//! Files: `raft.wal` (records: `WalRecord` protobufs in the storage crate's
//! checksummed frames) and `snapshot` (a checked `Snapshot` protobuf). An
//! `entries` record replaces the stored suffix from its first index. After a
//! snapshot the WAL is rewritten to hold only what follows it.

use crate::convert::*;
use crate::pb::{self, wal_record::Record};
use prost::Message;
use raft::{Entry, HardState, Persisted, Snapshot};
use std::io;
use std::sync::Arc;
use storage::{read_checked, write_checked, Dir, Recovery, Wal};

const WAL: &str = "raft.wal";
const SNAPSHOT: &str = "snapshot";

pub struct RaftStore {
    dir: Arc<dyn Dir>,
    wal: Wal,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl RaftStore {
    /// Opens the store and recovers what a restarted node starts from. A
    /// torn or corrupt WAL tail is cut off (reported in `Recovery`).
    pub fn open(dir: Arc<dyn Dir>) -> io::Result<(RaftStore, Persisted, Recovery)> {
        RaftStore::open_with(dir, true)
    }

    /// [`RaftStore::open`]; `verify_wal: false` takes WAL records without
    /// checking their checksums (planted bug `wal-no-checksum`).
    pub fn open_with(
        dir: Arc<dyn Dir>,
        verify_wal: bool,
    ) -> io::Result<(RaftStore, Persisted, Recovery)> {
        let snapshot = match read_checked(dir.as_ref(), SNAPSHOT)? {
            Some(b) => Some(snapshot_from_pb(
                pb::Snapshot::decode(b.as_slice())
                    .map_err(|e| invalid(format!("snapshot: {e}")))?,
            )),
            None => None,
        };
        let (wal, records, recovery) = Wal::open_with(dir.clone(), WAL, verify_wal)?;
        let mut hard_state = HardState::default();
        let mut entries: Vec<Entry> = Vec::new();
        for r in records {
            let rec = pb::WalRecord::decode(r.as_slice())
                .map_err(|e| invalid(format!("wal record: {e}")))?;
            match rec.record {
                Some(Record::HardState(h)) => hard_state = hard_state_from_pb(h),
                Some(Record::Entries(b)) => {
                    if let Some(first) = b.entries.first() {
                        entries.retain(|e| e.index < first.index);
                    }
                    entries.extend(b.entries.into_iter().map(entry_from_pb));
                }
                None => {}
            }
        }
        let snap_index = snapshot.as_ref().map_or(0, |s| s.index);
        entries.retain(|e| e.index > snap_index);
        if let Some(first) = entries.first() {
            if first.index != snap_index + 1 {
                return Err(invalid(format!(
                    "log starts at {} but the snapshot ends at {snap_index}",
                    first.index
                )));
            }
        }
        Ok((
            RaftStore { dir, wal },
            Persisted {
                hard_state,
                snapshot,
                entries,
            },
            recovery,
        ))
    }

    pub fn append_hard_state(&mut self, hs: &HardState) -> io::Result<()> {
        let rec = pb::WalRecord {
            record: Some(Record::HardState(hard_state_to_pb(hs))),
        };
        self.wal.append(&rec.encode_to_vec())
    }

    pub fn append_entries(&mut self, entries: &[Entry]) -> io::Result<()> {
        let batch = pb::EntryBatch {
            entries: entries.iter().cloned().map(entry_to_pb).collect(),
        };
        let rec = pb::WalRecord {
            record: Some(Record::Entries(batch)),
        };
        self.wal.append(&rec.encode_to_vec())
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
        write_checked(
            self.dir.as_ref(),
            SNAPSHOT,
            &snapshot_to_pb(snap.clone()).encode_to_vec(),
        )?;
        let mut records = vec![pb::WalRecord {
            record: Some(Record::HardState(hard_state_to_pb(hs))),
        }
        .encode_to_vec()];
        if !rest.is_empty() {
            let batch = pb::EntryBatch {
                entries: rest.iter().cloned().map(entry_to_pb).collect(),
            };
            records.push(
                pb::WalRecord {
                    record: Some(Record::Entries(batch)),
                }
                .encode_to_vec(),
            );
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
}
