//! Crash-consistent storage for the Raft-replicated KV store.
//!
//! # What this crate is for
//!
//! * [`Dir`]: a directory of named files with an explicit durability model.
//!   `append` is buffered (visible to `read`, *not* durable) until `sync`;
//!   `truncate`, `write_atomic` and `remove` are durable on return.
//! * [`FsDir`]: real files (`sync_data`, temp file + rename + directory fsync).
//! * [`SimDir`]: in-memory, for the deterministic simulator. Unlike madsim's fs,
//!   [`SimDir::crash`] really loses everything that was not synced, optionally
//!   keeping a torn (and possibly corrupted) prefix of one file's unsynced tail.
//! * [`Wal`]: a checksummed append-only log of opaque records.
//! * [`write_checked`] / [`read_checked`]: whole files with a checksum header
//!   (snapshots, small metadata), replaced atomically.
//!
//! # What it is not for
//!
//! It knows bytes and crashes, nothing about Raft: the Raft layer encodes its
//! entries / hard state into records. It is synchronous (no async, runtime,
//! threads, clocks or OS randomness); all randomness comes from the seed given to
//! [`SimDir::crash`]. It is not a database: no indexes, no concurrent writers to
//! one file, no caching. Files are small enough to be read whole.
//!
//! # File names
//!
//! Plain names only: non-empty, no `/`, `\` or NUL, not `.`/`..`, and not ending
//! in `.tmp` (reserved for `write_atomic`; stale ones are deleted by
//! [`FsDir::open`]). Other names get `ErrorKind::InvalidInput`.
//!
//! # WAL format
//!
//! A WAL file is a plain sequence of frames, no file header:
//!
//! ```text
//! [u32 len LE][u32 crc32(len_le_bytes ++ payload) LE][payload: len bytes]
//! ```
//!
//! The CRC covers the length, so a zero-filled tail is detected as corrupt. A log
//! is a *prefix*: replay stops at the first torn or corrupt frame and everything
//! from there on is cut off (the file is truncated durably), even if good-looking
//! frames follow, because a record after a hole cannot be trusted to be in order.
//! Corruption of synced data is therefore handled as data loss of the suffix;
//! detecting it is the job of higher layers (Raft re-replicates).
//!
//! # Checked file format
//!
//! ```text
//! [b"SCK1"][u64 payload_len LE][u32 crc32(len_le_bytes ++ payload) LE][payload]
//! ```

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::fmt;
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
    /// Deletes the file durably. Removing an absent file is not an error.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// File names, sorted.
    fn list(&self) -> io::Result<Vec<String>>;
}

const TMP_SUFFIX: &str = ".tmp";

fn check_name(name: &str) -> io::Result<()> {
    if matches!(name, "" | "." | "..")
        || name.ends_with(TMP_SUFFIX)
        || name.contains(['/', '\\', '\0'])
    {
        let msg = format!("invalid storage file name {name:?}");
        return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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
    /// Also XOR one byte of that kept prefix with a random non-zero value
    /// (only has an effect together with `torn_write`; synced bytes are never touched).
    pub corrupt: bool,
}

/// One-shot I/O error injected into the next matching [`SimDir`] operation.
/// The failing operation has no effect. A crash clears a pending fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoFault {
    /// The next `append` fails (nothing written).
    FailNextAppend,
    /// The next `sync` fails (nothing made durable; the data stays unsynced).
    FailNextSync,
    /// The next mutating call of any kind (append, sync, truncate, write_atomic, remove) fails.
    FailNextWrite,
}

#[derive(Debug, Default)]
struct SimFile {
    durable: Vec<u8>,
    unsynced: Vec<u8>,
    /// Whether the file's existence is durable (created by `append` and never synced: no).
    durable_exists: bool,
}

impl SimFile {
    fn durable(data: Vec<u8>) -> SimFile {
        SimFile {
            durable: data,
            unsynced: Vec::new(),
            durable_exists: true,
        }
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
        if faults.torn_write {
            let n_dirty = st.files.values().filter(|f| !f.unsynced.is_empty()).count();
            if n_dirty > 0 {
                let pick = rng.random_range(0..n_dirty);
                let mut dirty = st.files.values_mut().filter(|f| !f.unsynced.is_empty());
                let f = dirty.nth(pick).expect("counted");
                let keep = rng.random_range(0..=f.unsynced.len());
                let mut kept = f.unsynced[..keep].to_vec();
                if faults.corrupt && keep > 0 {
                    let i = rng.random_range(0..keep);
                    kept[i] ^= rng.random_range(1..=255u8);
                }
                f.durable.extend_from_slice(&kept);
                f.durable_exists |= keep > 0;
            }
        }
        for f in st.files.values_mut() {
            f.unsynced.clear();
        }
        st.files.retain(|_, f| f.durable_exists);
        st.fault = None;
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
        check_name(name)?;
        let mut st = lock(&self.inner);
        if st.fault == Some(kind) || st.fault == Some(IoFault::FailNextWrite) {
            st.fault = None;
            return Err(io::Error::other(format!(
                "injected I/O error (EIO): {kind:?}"
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
        let mut st = self.begin(name, IoFault::FailNextAppend)?;
        st.files
            .entry(name.to_string())
            .or_default()
            .unsynced
            .extend_from_slice(data);
        Ok(())
    }

    fn sync(&self, name: &str) -> io::Result<()> {
        let mut st = self.begin(name, IoFault::FailNextSync)?;
        if let Some(f) = st.files.get_mut(name) {
            let mut tail = std::mem::take(&mut f.unsynced);
            f.durable.append(&mut tail);
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
        *f = SimFile::durable(all);
        Ok(())
    }

    fn write_atomic(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let mut st = self.begin(name, IoFault::FailNextWrite)?;
        st.files
            .insert(name.to_string(), SimFile::durable(data.to_vec()));
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

/// Bytes of frame header before each WAL payload.
pub const WAL_FRAME_HEADER: usize = 8;

fn crc_with_len(len_bytes: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(len_bytes);
    h.update(payload);
    h.finalize()
}

/// Encodes one WAL frame (see the crate docs). Fails if the record exceeds `u32::MAX` bytes.
pub fn encode_record(payload: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(WAL_FRAME_HEADER + payload.len());
    encode_into(&mut out, payload)?;
    Ok(out)
}

fn encode_into(out: &mut Vec<u8>, payload: &[u8]) -> io::Result<()> {
    let too_big = || io::Error::new(io::ErrorKind::InvalidInput, "WAL record over 4 GiB");
    let len = u32::try_from(payload.len()).map_err(|_| too_big())?;
    let len_bytes = len.to_le_bytes();
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(&crc_with_len(&len_bytes, payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Decodes the longest valid prefix of a WAL file: `(records, valid_len, reason)`.
/// `reason` says why decoding stopped before the end, `None` if all bytes were valid.
pub fn decode_records(bytes: &[u8]) -> (Vec<Vec<u8>>, usize, Option<String>) {
    let (mut records, mut pos) = (Vec::new(), 0);
    let reason = loop {
        let rest = &bytes[pos..];
        if rest.is_empty() {
            break None;
        }
        if rest.len() < WAL_FRAME_HEADER {
            break Some(format!(
                "torn frame header at offset {pos}: {} bytes",
                rest.len()
            ));
        }
        let len_bytes = &rest[0..4];
        let len = u32::from_le_bytes(len_bytes.try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        let body = &rest[WAL_FRAME_HEADER..];
        if body.len() < len {
            break Some(format!(
                "torn record at offset {pos}: {len} bytes, {} present",
                body.len()
            ));
        }
        if crc_with_len(len_bytes, &body[..len]) != crc {
            break Some(format!(
                "checksum mismatch in record at offset {pos} (len {len})"
            ));
        }
        records.push(body[..len].to_vec());
        pos += WAL_FRAME_HEADER + len;
    };
    (records, pos, reason)
}

/// What [`Wal::open`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Valid records returned.
    pub records: usize,
    /// Bytes cut off the end of the file (torn or corrupt frame and everything after it).
    pub truncated_bytes: u64,
    /// Why bytes were cut, `None` if the whole file was valid.
    pub reason: Option<String>,
}

/// Checksummed write-ahead log of opaque records in one file of a [`Dir`].
///
/// After any I/O error the `Wal` refuses further `append`/`sync` (the file may
/// hold a partial frame or unknown durability); reopen it to recover. A
/// successful `rewrite` makes it usable again.
pub struct Wal {
    dir: Arc<dyn Dir>,
    name: String,
    len: u64,
    failed: Option<String>,
}

impl fmt::Debug for Wal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wal")
            .field("name", &self.name)
            .field("len", &self.len)
            .field("failed", &self.failed)
            .finish()
    }
}

impl Wal {
    /// Opens (creates if absent) and replays: returns the valid records in order.
    /// A torn or corrupt frame and everything after it is cut off (the file is
    /// truncated durably) and reported in [`Recovery`], never returned. Everything
    /// returned is durable when this returns (unsynced-but-visible data is synced).
    pub fn open(dir: Arc<dyn Dir>, name: &str) -> io::Result<(Wal, Vec<Vec<u8>>, Recovery)> {
        let bytes = match dir.read(name)? {
            Some(b) => b,
            None => {
                dir.write_atomic(name, &[])?;
                Vec::new()
            }
        };
        let (records, valid, reason) = decode_records(&bytes);
        let cut = bytes.len() - valid;
        if cut > 0 {
            dir.truncate(name, valid as u64)?;
        } else {
            dir.sync(name)?;
        }
        let (records_n, len, truncated_bytes) = (records.len(), valid as u64, cut as u64);
        let recovery = Recovery {
            records: records_n,
            truncated_bytes,
            reason,
        };
        let wal = Wal {
            dir,
            name: name.to_string(),
            len,
            failed: None,
        };
        Ok((wal, records, recovery))
    }

    fn check_usable(&self) -> io::Result<()> {
        match &self.failed {
            None => Ok(()),
            Some(e) => Err(io::Error::other(format!(
                "WAL {:?} unusable after earlier I/O error ({e}); reopen it",
                self.name
            ))),
        }
    }

    fn note<T>(&mut self, r: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &r {
            self.failed = Some(e.to_string());
        }
        r
    }

    /// Appends one record (buffered, not durable until [`Wal::sync`]).
    pub fn append(&mut self, record: &[u8]) -> io::Result<()> {
        self.check_usable()?;
        let frame = encode_record(record)?;
        let r = self.dir.append(&self.name, &frame);
        self.note(r)?;
        self.len += frame.len() as u64;
        Ok(())
    }

    /// Makes every appended record durable.
    pub fn sync(&mut self) -> io::Result<()> {
        self.check_usable()?;
        let r = self.dir.sync(&self.name);
        self.note(r)
    }

    /// Replaces the whole log with `records`, atomically and durably.
    pub fn rewrite(&mut self, records: &[Vec<u8>]) -> io::Result<()> {
        let mut buf = Vec::new();
        for r in records {
            encode_into(&mut buf, r)?;
        }
        let r = self.dir.write_atomic(&self.name, &buf);
        self.note(r)?;
        self.failed = None;
        self.len = buf.len() as u64;
        Ok(())
    }

    /// Length of the log file in bytes (valid frames, synced or not).
    pub fn len_bytes(&self) -> u64 {
        self.len
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

const CHECKED_MAGIC: &[u8; 4] = b"SCK1";
const CHECKED_HEADER: usize = 16;

/// Writes a whole file with a checksum header, atomically and durably.
pub fn write_checked(dir: &dyn Dir, name: &str, payload: &[u8]) -> io::Result<()> {
    let len_bytes = (payload.len() as u64).to_le_bytes();
    let mut buf = Vec::with_capacity(CHECKED_HEADER + payload.len());
    buf.extend_from_slice(CHECKED_MAGIC);
    buf.extend_from_slice(&len_bytes);
    buf.extend_from_slice(&crc_with_len(&len_bytes, payload).to_le_bytes());
    buf.extend_from_slice(payload);
    dir.write_atomic(name, &buf)
}

/// Reads a file written by [`write_checked`]. `None` if absent; `InvalidData`
/// if the magic, length or checksum does not match.
pub fn read_checked(dir: &dyn Dir, name: &str) -> io::Result<Option<Vec<u8>>> {
    let Some(bytes) = dir.read(name)? else {
        return Ok(None);
    };
    let bad = |msg: String| io::Error::new(io::ErrorKind::InvalidData, format!("{name:?}: {msg}"));
    if bytes.len() < CHECKED_HEADER {
        return Err(bad(format!("too short for header ({} bytes)", bytes.len())));
    }
    if &bytes[0..4] != CHECKED_MAGIC {
        return Err(bad("bad magic, not a checked file".to_string()));
    }
    let len_bytes = &bytes[4..12];
    let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
    let payload = &bytes[CHECKED_HEADER..];
    if payload.len() as u64 != len {
        return Err(bad(format!(
            "length mismatch: header {len}, has {}",
            payload.len()
        )));
    }
    if crc_with_len(len_bytes, payload) != crc {
        return Err(bad("checksum mismatch".to_string()));
    }
    Ok(Some(payload.to_vec()))
}
