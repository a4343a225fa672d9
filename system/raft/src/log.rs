//! The in-memory Raft log: a snapshot followed by the entries after it, with
//! the commit index and the boundary between entries already handed to the
//! driver for persistence and those not yet handed out.

use crate::{Entry, Snapshot};

#[derive(Clone, Debug, Default)]
pub struct Log {
    snapshot: Snapshot,
    /// Entries `snapshot.index + 1 ..= last_index()`.
    entries: Vec<Entry>,
    committed: u64,
    /// Last index known to be durable.
    stable: u64,
    /// Last index handed to the driver by `take_unstable` (durable at `mark_stable`).
    handed: u64,
    /// First index not yet handed to the driver.
    unstable_from: u64,
}

impl Log {
    pub fn restore(snapshot: Option<Snapshot>, entries: Vec<Entry>, commit: u64) -> Log {
        let snapshot = snapshot.unwrap_or_default();
        let entries: Vec<Entry> = entries
            .into_iter()
            .filter(|e| e.index > snapshot.index)
            .collect();
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(
                e.index,
                snapshot.index + 1 + i as u64,
                "recovered log has a gap"
            );
        }
        let last = snapshot.index + entries.len() as u64;
        Log {
            committed: commit.max(snapshot.index).min(last),
            stable: last,
            handed: last,
            unstable_from: last + 1,
            snapshot,
            entries,
        }
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.index
    }

    pub fn last_index(&self) -> u64 {
        self.snapshot.index + self.entries.len() as u64
    }

    pub fn last_term(&self) -> u64 {
        self.entries.last().map_or(self.snapshot.term, |e| e.term)
    }

    pub fn committed(&self) -> u64 {
        self.committed
    }

    pub fn stable_index(&self) -> u64 {
        self.stable
    }

    /// The term of the entry at `index`, if the log still knows it.
    pub fn term(&self, index: u64) -> Option<u64> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        self.get(index).map(|e| e.term)
    }

    pub fn get(&self, index: u64) -> Option<&Entry> {
        if index <= self.snapshot.index {
            return None;
        }
        self.entries.get((index - self.snapshot.index - 1) as usize)
    }

    /// Appends entries that extend the log (leader side).
    pub fn append(&mut self, entries: Vec<Entry>) {
        for e in entries {
            debug_assert_eq!(e.index, self.last_index() + 1);
            self.entries.push(e);
        }
    }

    /// Merges entries received from the leader that follow a matching
    /// prefix: entries already present with the same term are kept (the
    /// message may be stale), the first conflicting one and everything after
    /// it are replaced.
    pub fn merge(&mut self, entries: Vec<Entry>) {
        for e in entries {
            match self.term(e.index) {
                Some(t) if t == e.term => continue,
                Some(_) => {
                    assert!(
                        e.index > self.committed,
                        "conflict at committed index {}",
                        e.index
                    );
                    self.truncate_from(e.index);
                    self.entries.push(e);
                }
                None if e.index == self.last_index() + 1 => self.entries.push(e),
                None => {
                    // Below the snapshot: already covered by it.
                    debug_assert!(
                        e.index <= self.snapshot.index,
                        "gap in merge at {}",
                        e.index
                    );
                }
            }
        }
    }

    /// Drops every entry after `index` (planted bug
    /// `truncate_on_stale_append`; never below the commit index).
    pub fn truncate_after(&mut self, index: u64) {
        assert!(index >= self.committed, "truncating committed entries");
        if index < self.last_index() {
            self.truncate_from(index + 1);
        }
    }

    fn truncate_from(&mut self, index: u64) {
        let keep = (index - self.snapshot.index - 1) as usize;
        self.entries.truncate(keep);
        self.stable = self.stable.min(index - 1);
        self.handed = self.handed.min(index - 1);
        self.unstable_from = self.unstable_from.min(index);
    }

    pub fn commit_to(&mut self, index: u64) {
        let index = index.min(self.last_index());
        if index > self.committed {
            self.committed = index;
        }
    }

    /// First index of the run of term `term` that contains `index`.
    pub fn first_index_of_term(&self, term: u64, index: u64) -> u64 {
        let mut i = index;
        while i > self.snapshot.index + 1 && self.term(i - 1) == Some(term) {
            i -= 1;
        }
        i
    }

    pub fn last_index_of_term(&self, term: u64) -> Option<u64> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.term == term)
            .map(|e| e.index)
            .or((self.snapshot.term == term && self.snapshot.index > 0)
                .then_some(self.snapshot.index))
    }

    /// At most `max` entries starting at `from`.
    pub fn slice(&self, from: u64, max: usize) -> Vec<Entry> {
        let hi = self.last_index().min(from + max as u64 - 1);
        self.entries_between(from, hi)
    }

    /// Entries `lo ..= hi` (empty if the range is empty or compacted).
    pub fn entries_between(&self, lo: u64, hi: u64) -> Vec<Entry> {
        if lo > hi || lo <= self.snapshot.index {
            return Vec::new();
        }
        let base = self.snapshot.index + 1;
        let hi = hi.min(self.last_index());
        self.entries[(lo - base) as usize..=(hi - base) as usize].to_vec()
    }

    pub fn has_unstable(&self) -> bool {
        self.unstable_from <= self.last_index()
    }

    pub fn take_unstable(&mut self) -> Vec<Entry> {
        let out = self.entries_between(self.unstable_from, self.last_index());
        self.handed = self.last_index();
        self.unstable_from = self.last_index() + 1;
        out
    }

    pub fn mark_stable(&mut self) {
        self.stable = self.handed;
    }

    /// Replaces the whole log by a snapshot received from the leader.
    pub fn install_snapshot(&mut self, snap: &Snapshot) {
        self.entries.clear();
        self.snapshot = snap.clone();
        self.committed = snap.index;
        self.stable = snap.index;
        self.handed = snap.index;
        self.unstable_from = snap.index + 1;
    }

    /// Drops entries up to `index`, which `data` now represents.
    pub fn compact(&mut self, index: u64, data: Vec<u8>) {
        let term = self.term(index).expect("compact index in log");
        let drop = (index - self.snapshot.index) as usize;
        self.entries.drain(..drop);
        self.snapshot = Snapshot { index, term, data };
    }
}
