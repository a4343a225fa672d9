//! A host's disk: a directory of named files with an explicit durability
//! model, real ([`FsDir`]: files with fsync) or simulated ([`SimDir`]: in
//! memory, and a crash really loses what was not synced, optionally keeping
//! a torn, possibly corrupt, prefix of one file's unsynced tail).
//!
//! `append` is buffered (visible to `read`, *not* durable) until `sync`;
//! `truncate`, `write_atomic` and `remove` are durable on return.
//!
//! File names are plain: non-empty, no `/`, `\\` or NUL, not `.`/`..`, and not
//! ending in `.tmp` (reserved for `write_atomic`; stale ones are deleted by
//! [`FsDir::open`]). Other names get `ErrorKind::InvalidInput`.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A directory of named files. Writes via `append` are buffered until `sync`;
/// `write_atomic` is durable on return (temp file + fsync + rename + dir fsync).
pub trait Dir: Send + Sync + 'static {
    /// Whole file contents as the node sees them (including unsynced writes), `None` if absent.
    fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>>;
    /// Appends to the file, creating it if absent. Not durable until [`Dir::sync`].
    fn append(&self, name: &str, data: &[u8]) -> io::Result<()>;
    /// Makes everything appended so far (and the file's existence) durable. No-op if absent.
    fn sync(&self, name: &str) -> io::Result<()>;
    /// Sets the length (zero-extends if longer); durable on return, including any earlier appends.
    fn truncate(&self, name: &str, len: u64) -> io::Result<()>;
    /// Replaces the file with `data`; durable and atomic (old or new contents, never a mix).
    fn write_atomic(&self, name: &str, data: &[u8]) -> io::Result<()>;
    /// [`Dir::write_atomic`] of a buffer the caller hands over (the
    /// simulated disk keeps it instead of copying it).
    fn write_atomic_owned(&self, name: &str, data: Vec<u8>) -> io::Result<()> {
        self.write_atomic(name, &data)
    }
    /// Deletes the file durably. Removing an absent file is not an error.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// File names, sorted.
    fn list(&self) -> io::Result<Vec<String>>;
}

const TMP_SUFFIX: &str = ".tmp";

pub fn check_name(name: &str) -> io::Result<()> {
    if matches!(name, "" | "." | "..")
        || name.ends_with(TMP_SUFFIX)
        || name.contains(['/', '\\', '\0'])
    {
        let msg = format!("invalid storage file name {name:?}");
        return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
    }
    Ok(())
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Real files in one directory. Keeps open append handles; `sync` is `sync_data`.
/// A file created by `append` gets its directory entry fsynced right away.
#[derive(Debug)]
pub struct FsDir {
    path: PathBuf,
    handles: Mutex<BTreeMap<String, File>>,
}

/// Maps `NotFound` to `None`.
fn absent_ok<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl FsDir {
    /// Opens (creating it if needed) the directory and deletes stale `*.tmp` files.
    pub fn open(path: impl AsRef<Path>) -> io::Result<FsDir> {
        let path = path.as_ref().to_path_buf();
        fs::create_dir_all(&path)?;
        let dir = FsDir {
            path,
            handles: Mutex::default(),
        };
        for name in dir.file_names()? {
            if name.ends_with(TMP_SUFFIX) {
                fs::remove_file(dir.path.join(name))?;
            }
        }
        dir.sync_dir()?;
        Ok(dir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Names of all regular files with UTF-8 names, unsorted.
    fn file_names(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.path)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.extend(entry.file_name().into_string().ok());
            }
        }
        Ok(names)
    }

    fn sync_dir(&self) -> io::Result<()> {
        #[cfg(unix)]
        File::open(&self.path)?.sync_all()?;
        Ok(())
    }
}

impl Dir for FsDir {
    fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        check_name(name)?;
        absent_ok(fs::read(self.path.join(name)))
    }

    fn append(&self, name: &str, data: &[u8]) -> io::Result<()> {
        check_name(name)?;
        let mut handles = lock(&self.handles);
        let file = match handles.entry(name.to_string()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let path = self.path.join(name);
                let existed = path.try_exists()?;
                let f = OpenOptions::new().append(true).create(true).open(&path)?;
                if !existed {
                    self.sync_dir()?;
                }
                e.insert(f)
            }
        };
        file.write_all(data)
    }

    fn sync(&self, name: &str) -> io::Result<()> {
        check_name(name)?;
        let handles = lock(&self.handles);
        match handles.get(name) {
            Some(f) => f.sync_data(),
            None => match absent_ok(OpenOptions::new().write(true).open(self.path.join(name)))? {
                Some(f) => f.sync_data(),
                None => Ok(()),
            },
        }
    }

    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        check_name(name)?;
        let mut handles = lock(&self.handles);
        handles.remove(name);
        let f = OpenOptions::new().write(true).open(self.path.join(name))?;
        f.set_len(len)?;
        f.sync_all()
    }

    fn write_atomic(&self, name: &str, data: &[u8]) -> io::Result<()> {
        check_name(name)?;
        let mut handles = lock(&self.handles);
        handles.remove(name);
        let tmp = self.path.join(format!("{name}{TMP_SUFFIX}"));
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, self.path.join(name))?;
        self.sync_dir()
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        check_name(name)?;
        lock(&self.handles).remove(name);
        match absent_ok(fs::remove_file(self.path.join(name)))? {
            Some(()) => self.sync_dir(),
            None => Ok(()),
        }
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = self.file_names()?;
        names.retain(|n| check_name(n).is_ok());
        names.sort();
        Ok(names)
    }
}

/// Faults applied by [`SimDir::crash`]. `Default` = clean crash (unsynced data lost).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrashFaults {
    /// Seed for every random choice made by the crash.
    pub seed: u64,
    /// Keep a random prefix (0..=all bytes) of the unsynced tail of one file.
    pub torn_write: bool,
    /// Instead of a prefix, keep the whole unsynced tail of that file with
    /// one byte of its last write XORed with a random non-zero value: the
    /// write in flight reached the disk damaged (only with `torn_write`;
    /// synced bytes are never touched).
    pub corrupt: bool,
    /// Damage to synced data, found when the node restarts (see [`Damage`]).
    pub damage: Option<Damage>,
}

/// Damage to data a disk had acknowledged as synced, as disks really fail
/// (TigerBeetle's storage faults). It strikes one synced `append` of a file
/// that a later synced `append` of the same file follows: a damaged last
/// write cannot be told from a torn one by the file alone, and whole-file
/// writes (`write_atomic`: snapshots, checked files) are not damaged (their
/// checksum makes a damaged one a clear error when read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// One bit of the write flipped (a sector that rots).
    Rot,
    /// The write never reached the platter: its range reads as zeros.
    LostWrite,
    /// The write landed at the offset of an earlier write of the same file
    /// (overwriting it), and its own range reads as zeros.
    MisdirectedWrite,
}

impl Damage {
    pub const ALL: [Damage; 3] = [Damage::Rot, Damage::LostWrite, Damage::MisdirectedWrite];

    /// Its name in a fault schedule.
    pub fn name(self) -> &'static str {
        match self {
            Damage::Rot => "rot",
            Damage::LostWrite => "lost-write",
            Damage::MisdirectedWrite => "misdirected-write",
        }
    }

    pub fn by_name(s: &str) -> Option<Damage> {
        Damage::ALL.into_iter().find(|d| d.name() == s)
    }
}

/// One-shot I/O error injected into the next matching [`SimDir`] operation.
/// The failing operation has no effect, except a failed `sync`. A crash
/// clears a pending fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoFault {
    /// The next `append` fails with EIO (nothing written).
    FailNextAppend,
    /// The next `sync` fails with EIO, and the file's unsynced bytes are
    /// gone: as on Linux, where a failed writeback marks the dirty pages
    /// clean and a later fsync succeeds without them ("fsyncgate").
    FailNextSync,
    /// The next mutating call of any kind (append, sync, truncate, write_atomic, remove) fails.
    FailNextWrite,
    /// The next `append` or `write_atomic` fails with ENOSPC (disk full;
    /// nothing written).
    NoSpace,
}

impl IoFault {
    /// Every kind, as a fault schedule may name them.
    pub const ALL: [IoFault; 4] = [
        IoFault::FailNextAppend,
        IoFault::FailNextSync,
        IoFault::FailNextWrite,
        IoFault::NoSpace,
    ];

    /// Its name in a fault schedule.
    pub fn name(self) -> &'static str {
        match self {
            IoFault::FailNextAppend => "append",
            IoFault::FailNextSync => "sync",
            IoFault::FailNextWrite => "write",
            IoFault::NoSpace => "nospace",
        }
    }

    pub fn by_name(s: &str) -> Option<IoFault> {
        IoFault::ALL.into_iter().find(|f| f.name() == s)
    }
}

#[derive(Debug, Default)]
struct SimFile {
    durable: Vec<u8>,
    unsynced: Vec<u8>,
    /// Whether the file's existence is durable (created by `append` and never synced: no).
    durable_exists: bool,
    /// Each `append` since the file was last replaced or truncated:
    /// (offset, length) in `contents()`, for [`Damage`].
    writes: Vec<(usize, usize)>,
}

impl SimFile {
    fn durable(data: Vec<u8>) -> SimFile {
        SimFile {
            durable: data,
            unsynced: Vec::new(),
            durable_exists: true,
            writes: Vec::new(),
        }
    }

    /// Damages one write that had been synced (it ends within `synced`
    /// bytes, what was durable before the crash added a torn tail) and
    /// that a later such write follows (see [`Damage`]); `false` if the
    /// file has none.
    fn damage(&mut self, damage: Damage, synced: usize, rng: &mut ChaCha8Rng) -> bool {
        let eligible: Vec<(usize, usize)> = self
            .writes
            .iter()
            .copied()
            .filter(|(off, len)| *len > 0 && off + len <= synced)
            .collect();
        // Misdirected: the target is an earlier write, so the first has none.
        let first = usize::from(damage == Damage::MisdirectedWrite);
        if eligible.len() < first + 2 {
            return false;
        }
        let i = rng.random_range(first..eligible.len() - 1);
        let (off, len) = eligible[i];
        match damage {
            Damage::Rot => {
                self.durable[off + rng.random_range(0..len)] ^= 1 << rng.random_range(0..8)
            }
            Damage::LostWrite => self.durable[off..off + len].fill(0),
            Damage::MisdirectedWrite => {
                let bytes = self.durable[off..off + len].to_vec();
                self.durable[off..off + len].fill(0);
                let target = eligible[rng.random_range(0..i)].0;
                let n = len.min(off - target);
                self.durable[target..target + n].copy_from_slice(&bytes[..n]);
            }
        }
        true
    }

    fn contents(&self) -> Vec<u8> {
        [self.durable.as_slice(), self.unsynced.as_slice()].concat()
    }
}

#[derive(Debug, Default)]
struct SimState {
    files: BTreeMap<String, SimFile>,
    fault: Option<IoFault>,
}

/// In-memory directory for the simulator: one per node, survives the node's
/// restart because the harness keeps a clone. Clones share state.
#[derive(Debug, Clone, Default)]
pub struct SimDir {
    inner: Arc<Mutex<SimState>>,
}

impl SimDir {
    pub fn new() -> Self {
        Self::default()
    }

    /// The node crashed: every byte not synced is lost (and files whose creation
    /// was never synced vanish). With `torn_write`, one file with unsynced data
    /// (chosen from the seed, files in sorted order) keeps a random prefix of its
    /// unsynced tail, which `corrupt` may damage. Deterministic for a given seed.
    pub fn crash(&self, faults: CrashFaults) {
        let mut st = lock(&self.inner);
        let mut rng = ChaCha8Rng::seed_from_u64(faults.seed);
        // What was synced before the crash (a torn tail is not).
        let synced: BTreeMap<String, usize> = st
            .files
            .iter()
            .map(|(n, f)| (n.clone(), f.durable.len()))
            .collect();
        if faults.torn_write {
            let n_dirty = st.files.values().filter(|f| !f.unsynced.is_empty()).count();
            if n_dirty > 0 {
                let pick = rng.random_range(0..n_dirty);
                let mut dirty = st.files.values_mut().filter(|f| !f.unsynced.is_empty());
                let f = dirty.nth(pick).expect("counted");
                // A corrupt write reached the disk whole, damaged.
                let keep = if faults.corrupt {
                    f.unsynced.len()
                } else {
                    rng.random_range(0..=f.unsynced.len())
                };
                let mut kept = f.unsynced[..keep].to_vec();
                if faults.corrupt && keep > 0 {
                    // The last write is the one in flight: the damaged one
                    // (damage to earlier ones is `Damage`).
                    let base = f.durable.len();
                    let last = f
                        .writes
                        .iter()
                        .rev()
                        .find(|(off, len)| *len > 0 && *off >= base)
                        .map_or(0, |(off, _)| off - base);
                    let i = rng.random_range(last..keep);
                    kept[i] ^= rng.random_range(1..=255u8);
                }
                f.durable.extend_from_slice(&kept);
                f.durable_exists |= keep > 0;
            }
        }
        for f in st.files.values_mut() {
            f.unsynced.clear();
            let durable = f.durable.len();
            f.writes.retain(|(off, len)| off + len <= durable);
        }
        st.files.retain(|_, f| f.durable_exists);
        st.fault = None;
        if let Some(damage) = faults.damage {
            // One file, among those with a write to damage, sorted by name.
            let mut rng = ChaCha8Rng::seed_from_u64(faults.seed ^ 0x00da_4a9e);
            let names: Vec<String> = st.files.keys().cloned().collect();
            let start = if names.is_empty() {
                0
            } else {
                rng.random_range(0..names.len())
            };
            for k in 0..names.len() {
                let name = &names[(start + k) % names.len()];
                let f = st.files.get_mut(name).expect("listed");
                if f.damage(damage, synced.get(name).copied().unwrap_or(0), &mut rng) {
                    crate::coverage::hit(match damage {
                        Damage::Rot => "disk: a bit of a synced write rotted",
                        Damage::LostWrite => "disk: a synced write lost",
                        Damage::MisdirectedWrite => "disk: a synced write misdirected",
                    });
                    break;
                }
            }
        }
    }

    /// Durable bytes of `name` (0 if absent).
    pub fn synced_bytes(&self, name: &str) -> usize {
        self.stat(name, |f| f.durable.len())
    }

    /// Appended but not yet synced bytes of `name` (0 if absent).
    pub fn unsynced_bytes(&self, name: &str) -> usize {
        self.stat(name, |f| f.unsynced.len())
    }

    fn stat(&self, name: &str, f: fn(&SimFile) -> usize) -> usize {
        lock(&self.inner).files.get(name).map_or(0, f)
    }

    /// Arms a one-shot I/O error (replacing any pending one).
    pub fn set_fault(&self, f: IoFault) {
        lock(&self.inner).fault = Some(f);
    }

    pub fn clear_fault(&self) {
        lock(&self.inner).fault = None;
    }

    /// Validates `name`, locks, and fails if a pending fault matches `kind`
    /// (`FailNextWrite` for operations other than append/sync).
    fn begin(&self, name: &str, kind: IoFault) -> io::Result<MutexGuard<'_, SimState>> {
        self.begin_with(name, kind, false)
    }

    /// [`SimDir::begin`] for an operation that takes space (`allocates`:
    /// a pending `NoSpace` fails it).
    fn begin_with(
        &self,
        name: &str,
        kind: IoFault,
        allocates: bool,
    ) -> io::Result<MutexGuard<'_, SimState>> {
        check_name(name)?;
        let mut st = lock(&self.inner);
        if st.fault == Some(IoFault::NoSpace) && allocates {
            st.fault = None;
            crate::coverage::hit("disk: ENOSPC returned to a write");
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!("injected I/O error (ENOSPC) on {name:?}: no space left on device"),
            ));
        }
        if st.fault == Some(kind) || st.fault == Some(IoFault::FailNextWrite) {
            st.fault = None;
            if kind == IoFault::FailNextSync {
                // The dirty pages are dropped.
                if let Some(f) = st.files.get_mut(name) {
                    f.unsynced.clear();
                    let durable = f.durable.len();
                    f.writes.retain(|(off, len)| off + len <= durable);
                }
            }
            crate::coverage::hit("disk: EIO returned to a write or sync");
            return Err(io::Error::other(format!(
                "injected I/O error (EIO) on {name:?}: {kind:?}"
            )));
        }
        Ok(st)
    }
}

impl Dir for SimDir {
    fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        check_name(name)?;
        Ok(lock(&self.inner).files.get(name).map(SimFile::contents))
    }

    fn append(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let mut st = self.begin_with(name, IoFault::FailNextAppend, !data.is_empty())?;
        let f = st.files.entry(name.to_string()).or_default();
        f.writes
            .push((f.durable.len() + f.unsynced.len(), data.len()));
        f.unsynced.extend_from_slice(data);
        Ok(())
    }

    fn sync(&self, name: &str) -> io::Result<()> {
        let mut st = self.begin(name, IoFault::FailNextSync)?;
        if let Some(f) = st.files.get_mut(name) {
            // `unsynced` keeps its buffer for the next appends.
            f.durable.extend_from_slice(&f.unsynced);
            f.unsynced.clear();
            f.durable_exists = true;
        }
        Ok(())
    }

    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| io::Error::other("length too large"))?;
        let mut st = self.begin(name, IoFault::FailNextWrite)?;
        let f = st.files.get_mut(name).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("no such file {name:?}"))
        })?;
        let mut all = f.contents();
        all.resize(len, 0);
        let mut writes = std::mem::take(&mut f.writes);
        writes.retain(|(off, l)| off + l <= len);
        *f = SimFile::durable(all);
        f.writes = writes;
        Ok(())
    }

    fn write_atomic(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.write_atomic_owned(name, data.to_vec())
    }

    fn write_atomic_owned(&self, name: &str, data: Vec<u8>) -> io::Result<()> {
        let mut st = self.begin_with(name, IoFault::FailNextWrite, true)?;
        st.files.insert(name.to_string(), SimFile::durable(data));
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.begin(name, IoFault::FailNextWrite)?.files.remove(name);
        Ok(())
    }

    fn list(&self) -> io::Result<Vec<String>> {
        Ok(lock(&self.inner).files.keys().cloned().collect())
    }
}
