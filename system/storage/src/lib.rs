//! Crash-consistent storage for the Raft-replicated KV store.
//!
//! # What this crate is for
//!
//! * [`Dir`], [`FsDir`], [`SimDir`] (re-exported from `hostio`, which gives
//!   every simulated host its disk): a directory of named files with an
//!   explicit durability model. `append` is buffered (visible to `read`,
//!   *not* durable) until `sync`; `truncate`, `write_atomic` and `remove`
//!   are durable on return. [`SimDir::crash`] really loses everything that
//!   was not synced, optionally keeping a torn (and possibly corrupted)
//!   prefix of one file's unsynced tail.
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
//! The CRC covers the length, so a zero-filled frame is detected as corrupt. A log
//! is a *prefix*: replay stops at the first torn or corrupt frame. What follows
//! it tells two failures apart:
//!
//! * Nothing valid follows: a torn or corrupt *tail*, the last writes before a
//!   crash, never synced. It is cut off (the file is truncated durably).
//! * Valid frames follow (found by scanning forward byte by byte): data the
//!   disk had synced was damaged (a rotten bit, a lost or misdirected write).
//!   The frames after the damage are returned apart
//!   ([`Recovery::after_damage`]), never as part of the log, and the file is
//!   left as it is: the caller must [`Wal::rewrite`] it before appending.
//!   What the lost records held is the caller's problem (the Raft store keeps
//!   enough in every record to vote and recover safely, see `system/src/store.rs`).
//!
//! # Checked file format
//!
//! ```text
//! [b"SCK1"][u64 payload_len LE][u32 crc32(len_le_bytes ++ payload) LE][payload]
//! ```

use std::fmt;
use std::io;
use std::sync::Arc;

pub use hostio::disk::{CrashFaults, Damage, Dir, FsDir, IoFault, SimDir};

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
    decode_records_with(bytes, true)
}

/// [`decode_records`], with `verify: false` taking a record whose checksum
/// does not match as it is (planted bug `wal-no-checksum`: only a torn and
/// corrupt tail shows it).
pub fn decode_records_with(bytes: &[u8], verify: bool) -> (Vec<Vec<u8>>, usize, Option<String>) {
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
        if verify && crc_with_len(len_bytes, &body[..len]) != crc {
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
    /// Bytes cut off the end of the file (torn or corrupt frame and everything
    /// after it), or, after damage, the bytes from the damage on.
    pub truncated_bytes: u64,
    /// Why bytes were cut, `None` if the whole file was valid.
    pub reason: Option<String>,
    /// Valid records found after the first bad frame, in file order: synced
    /// data was damaged (empty for a torn tail). The file is left uncut.
    pub after_damage: Vec<Vec<u8>>,
}

/// How [`Wal::open_with`] replays a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayOpts {
    /// Check each frame's checksum (`false`: planted bug `wal-no-checksum`).
    pub verify: bool,
    /// Take a zero-filled frame header as the clean end of the log, as for
    /// preallocated space, without looking further (planted bug
    /// `zeros-end-log`: a lost write then cuts every later record silently).
    pub zero_frame_ends_log: bool,
}

impl Default for ReplayOpts {
    fn default() -> Self {
        ReplayOpts {
            verify: true,
            zero_frame_ends_log: false,
        }
    }
}

/// The valid frames of `bytes` from `from` on, scanning forward byte by byte
/// past anything that is not one (a frame must fit and match its checksum).
pub fn scan_records(bytes: &[u8], from: usize) -> Vec<Vec<u8>> {
    let mut found = Vec::new();
    let mut pos = from;
    while pos + WAL_FRAME_HEADER <= bytes.len() {
        let len_bytes = &bytes[pos..pos + 4];
        let len = u32::from_le_bytes(len_bytes.try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().expect("4 bytes"));
        let body = &bytes[pos + WAL_FRAME_HEADER..];
        if len <= body.len() && crc_with_len(len_bytes, &body[..len]) == crc {
            found.push(body[..len].to_vec());
            pos += WAL_FRAME_HEADER + len;
        } else {
            pos += 1;
        }
    }
    found
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
    /// A torn or corrupt tail is cut off (the file is truncated durably) and
    /// reported in [`Recovery`], never returned. Everything returned is durable
    /// when this returns (unsynced-but-visible data is synced). After damage to
    /// synced data (valid frames follow the bad one) nothing is cut: the frames
    /// after it are in [`Recovery::after_damage`] and the log refuses appends
    /// until [`Wal::rewrite`].
    pub fn open(dir: Arc<dyn Dir>, name: &str) -> io::Result<(Wal, Vec<Vec<u8>>, Recovery)> {
        Wal::open_with(dir, name, ReplayOpts::default())
    }

    /// [`Wal::open`] with planted bugs (see [`ReplayOpts`]).
    pub fn open_with(
        dir: Arc<dyn Dir>,
        name: &str,
        opts: ReplayOpts,
    ) -> io::Result<(Wal, Vec<Vec<u8>>, Recovery)> {
        let bytes = match dir.read(name)? {
            Some(b) => b,
            None => {
                dir.write_atomic(name, &[])?;
                Vec::new()
            }
        };
        let (records, valid, mut reason) = decode_records_with(&bytes, opts.verify);
        let cut = bytes.len() - valid;
        let zeros = bytes[valid..]
            .iter()
            .take(WAL_FRAME_HEADER)
            .all(|&b| b == 0);
        let after_damage = if cut == 0 || (opts.zero_frame_ends_log && zeros) {
            Vec::new()
        } else {
            scan_records(&bytes, valid + 1)
        };
        hostio::coverage::sometimes(
            after_damage.is_empty()
                && reason
                    .as_deref()
                    .is_some_and(|r| r.starts_with("checksum mismatch")),
            "storage: a corrupt WAL record cut on recovery",
        );
        hostio::coverage::sometimes(
            !after_damage.is_empty(),
            "storage: damaged synced WAL data found (valid records after it)",
        );
        let failed = if !after_damage.is_empty() {
            let r = reason.take().unwrap_or_default();
            reason = Some(format!(
                "{r}, followed by {} valid records: synced data damaged",
                after_damage.len()
            ));
            Some("the log is damaged: rewrite it before appending".to_string())
        } else {
            if cut > 0 {
                dir.truncate(name, valid as u64)?;
            } else {
                dir.sync(name)?;
            }
            None
        };
        let (records_n, len, truncated_bytes) = (records.len(), valid as u64, cut as u64);
        let recovery = Recovery {
            records: records_n,
            truncated_bytes,
            reason,
            after_damage,
        };
        let wal = Wal {
            dir,
            name: name.to_string(),
            len,
            failed,
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
    write_checked_with(dir, name, payload.len(), |buf| {
        buf.extend_from_slice(payload)
    })
}

/// [`write_checked`] of a payload that `build` appends to the file's
/// buffer (`size`: its expected length, for the buffer's capacity): a large
/// payload (a snapshot) is written without copies of its own.
pub fn write_checked_with(
    dir: &dyn Dir,
    name: &str,
    size: usize,
    build: impl FnOnce(&mut Vec<u8>),
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(CHECKED_HEADER + size);
    buf.resize(CHECKED_HEADER, 0);
    build(&mut buf);
    let len_bytes = ((buf.len() - CHECKED_HEADER) as u64).to_le_bytes();
    let crc = crc_with_len(&len_bytes, &buf[CHECKED_HEADER..]);
    buf[0..4].copy_from_slice(CHECKED_MAGIC);
    buf[4..12].copy_from_slice(&len_bytes);
    buf[12..16].copy_from_slice(&crc.to_le_bytes());
    dir.write_atomic_owned(name, buf)
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
