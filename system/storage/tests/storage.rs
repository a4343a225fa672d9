use std::io;
use std::sync::Arc;

use proptest::prelude::*;
use storage::{
    decode_records, encode_record, read_checked, write_checked, CrashFaults, Dir, FsDir, IoFault,
    SimDir, Wal,
};

const LOG: &str = "raft.wal";

fn rec(i: usize) -> Vec<u8> {
    // Distinct, variable-length records (including an empty one for i == 0).
    (0..i * 7 % 50).map(|j| (i * 31 + j) as u8).collect()
}

fn sim() -> (SimDir, Arc<dyn Dir>) {
    let s = SimDir::new();
    let d: Arc<dyn Dir> = Arc::new(s.clone());
    (s, d)
}

fn frames_len(records: &[Vec<u8>]) -> u64 {
    records.iter().map(|r| 8 + r.len() as u64).sum()
}

fn file_len(dir: &dyn Dir, name: &str) -> u64 {
    dir.read(name).unwrap().map_or(0, |b| b.len() as u64)
}

fn write_raw(dir: &dyn Dir, records: &[Vec<u8>]) -> Vec<u8> {
    let mut all = Vec::new();
    for r in records {
        all.extend(encode_record(r).unwrap());
    }
    dir.write_atomic(LOG, &all).unwrap();
    all
}

fn round_trip(dir: Arc<dyn Dir>) {
    let (mut wal, recs, rec0) = Wal::open(dir.clone(), LOG).unwrap();
    assert!(recs.is_empty());
    assert_eq!(rec0.truncated_bytes, 0);
    let expected: Vec<Vec<u8>> = (0..20).map(rec).collect();
    for r in &expected {
        wal.append(r).unwrap();
    }
    wal.sync().unwrap();
    assert_eq!(wal.len_bytes(), frames_len(&expected));
    drop(wal);
    let (wal, recs, recovery) = Wal::open(dir.clone(), LOG).unwrap();
    assert_eq!(recs, expected);
    assert_eq!(recovery.records, 20);
    assert_eq!(recovery.truncated_bytes, 0);
    assert_eq!(recovery.reason, None);
    assert_eq!(wal.len_bytes(), file_len(&*dir, LOG));
}

#[test]
fn wal_round_trip_sim() {
    round_trip(sim().1);
}

#[test]
fn wal_round_trip_fs() {
    let tmp = tempfile::tempdir().unwrap();
    round_trip(Arc::new(FsDir::open(tmp.path().join("node1")).unwrap()));
    // A fresh FsDir on the same path (process restart) sees the same log.
    let dir: Arc<dyn Dir> = Arc::new(FsDir::open(tmp.path().join("node1")).unwrap());
    let (_, recs, _) = Wal::open(dir, LOG).unwrap();
    assert_eq!(recs.len(), 20);
}

#[test]
fn fs_dir_semantics() {
    let tmp = tempfile::tempdir().unwrap();
    let d = FsDir::open(tmp.path()).unwrap();
    assert_eq!(d.read("a").unwrap(), None);
    d.append("a", b"abc").unwrap();
    assert_eq!(d.read("a").unwrap().unwrap(), b"abc");
    // write_atomic must replace the file and drop the cached append handle.
    d.write_atomic("a", b"xyz").unwrap();
    d.append("a", b"1").unwrap();
    d.sync("a").unwrap();
    assert_eq!(d.read("a").unwrap().unwrap(), b"xyz1");
    d.truncate("a", 2).unwrap();
    d.append("a", b"!").unwrap();
    assert_eq!(d.read("a").unwrap().unwrap(), b"xy!");
    d.write_atomic("b", b"").unwrap();
    std::fs::write(tmp.path().join("stale.tmp"), b"junk").unwrap();
    assert_eq!(d.list().unwrap(), vec!["a", "b"]);
    d.remove("b").unwrap();
    d.remove("b").unwrap();
    assert_eq!(d.list().unwrap(), vec!["a"]);
    assert_eq!(
        d.append("../x", b"").unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    drop(d);
    FsDir::open(tmp.path()).unwrap();
    assert!(!tmp.path().join("stale.tmp").exists());
}

#[test]
fn sim_dir_semantics() {
    let (s, d) = sim();
    d.append("a", b"12").unwrap();
    d.sync("a").unwrap();
    d.append("a", b"345").unwrap();
    assert_eq!((s.synced_bytes("a"), s.unsynced_bytes("a")), (2, 3));
    assert_eq!(d.read("a").unwrap().unwrap(), b"12345");
    d.append("never_synced", b"x").unwrap();
    d.write_atomic("w", b"atomic").unwrap();
    d.write_atomic("t", b"").unwrap();
    d.append("t", b"abcdef").unwrap();
    d.truncate("t", 4).unwrap(); // durable, including the appended part
    s.crash(CrashFaults::default());
    assert_eq!(d.read("a").unwrap().unwrap(), b"12");
    assert_eq!(d.read("w").unwrap().unwrap(), b"atomic");
    assert_eq!(d.read("t").unwrap().unwrap(), b"abcd");
    assert_eq!(
        d.read("never_synced").unwrap(),
        None,
        "creation never synced"
    );
    assert_eq!(d.list().unwrap(), vec!["a", "t", "w"]);
    d.remove("w").unwrap();
    s.crash(CrashFaults::default());
    assert_eq!(d.list().unwrap(), vec!["a", "t"]);
}

#[test]
fn sim_crash_loses_exactly_unsynced() {
    let (s, d) = sim();
    let (mut wal, _, _) = Wal::open(d.clone(), LOG).unwrap();
    for i in 0..5 {
        wal.append(&rec(i)).unwrap();
    }
    wal.sync().unwrap();
    for i in 5..9 {
        wal.append(&rec(i)).unwrap();
    }
    assert!(s.unsynced_bytes(LOG) > 0);
    s.crash(CrashFaults {
        seed: 7,
        ..Default::default()
    });
    let (_, recs, recovery) = Wal::open(d, LOG).unwrap();
    assert_eq!(recs, (0..5).map(rec).collect::<Vec<_>>());
    assert_eq!(recovery.truncated_bytes, 0);
}

#[test]
fn torn_write_keeps_only_whole_records() {
    let all: Vec<Vec<u8>> = (0..8).map(rec).collect();
    let (mut saw_cut, mut saw_extra) = (false, false);
    for seed in 0..300 {
        let (s, d) = sim();
        let (mut wal, _, _) = Wal::open(d.clone(), LOG).unwrap();
        for r in &all[..3] {
            wal.append(r).unwrap();
        }
        wal.sync().unwrap();
        for r in &all[3..] {
            wal.append(r).unwrap();
        }
        s.crash(CrashFaults {
            seed,
            torn_write: true,
            corrupt: false,
            damage: None,
        });
        let len_before = file_len(&*d, LOG);
        assert!(len_before >= frames_len(&all[..3]));
        let (wal, recs, recovery) = Wal::open(d.clone(), LOG).unwrap();
        assert!(recs.len() >= 3, "seed {seed}: lost synced records");
        assert_eq!(recs[..], all[..recs.len()], "seed {seed}: not a prefix");
        let good = frames_len(&recs);
        assert_eq!(
            file_len(&*d, LOG),
            good,
            "seed {seed}: file not cut to good prefix"
        );
        assert_eq!(wal.len_bytes(), good);
        assert_eq!(recovery.truncated_bytes, len_before - good, "seed {seed}");
        assert_eq!(recovery.reason.is_some(), recovery.truncated_bytes > 0);
        saw_cut |= recovery.truncated_bytes > 0;
        saw_extra |= recs.len() > 3;
    }
    assert!(saw_cut, "no seed produced a torn record");
    assert!(saw_extra, "no seed kept a complete unsynced record");
}

#[test]
fn corrupt_last_record_is_cut() {
    let (_, d) = sim();
    let recs: Vec<Vec<u8>> = (1..4).map(rec).collect();
    let mut raw = write_raw(&*d, &recs);
    let last_start = frames_len(&recs[..2]) as usize;
    let mid = last_start + 8 + recs[2].len() / 2;
    raw[mid] ^= 0x40;
    d.write_atomic(LOG, &raw).unwrap();
    let (_, got, recovery) = Wal::open(d.clone(), LOG).unwrap();
    assert_eq!(got, recs[..2]);
    assert_eq!(recovery.truncated_bytes, 8 + recs[2].len() as u64);
    assert!(recovery.reason.unwrap().contains("checksum"));
    assert_eq!(file_len(&*d, LOG), last_start as u64);
}

#[test]
fn damage_in_the_middle_is_reported_with_what_follows_and_nothing_is_cut() {
    // A log is a prefix: good-looking frames after a corrupt one are not part
    // of it, but they tell synced data was damaged, and are handed over apart.
    for flip in [8, 0, 5] {
        // a payload byte of record #2, its length, its checksum
        let (_, d) = sim();
        let recs: Vec<Vec<u8>> = (1..6).map(rec).collect();
        let mut raw = write_raw(&*d, &recs);
        let start = frames_len(&recs[..2]) as usize;
        raw[start + flip] ^= 1;
        d.write_atomic(LOG, &raw).unwrap();
        let (mut wal, got, recovery) = Wal::open(d.clone(), LOG).unwrap();
        assert_eq!(got, recs[..2]);
        assert_eq!(recovery.after_damage, recs[3..], "flip {flip}");
        assert!(recovery.reason.unwrap().contains("synced data damaged"));
        assert_eq!(file_len(&*d, LOG), raw.len() as u64, "nothing cut");
        assert!(wal.append(b"x").is_err(), "appends refused until rewritten");
        wal.rewrite(&got).unwrap();
        wal.append(b"x").unwrap();
    }
}

#[test]
fn torn_header_and_zero_fill_are_cut() {
    let (_, d) = sim();
    let recs = vec![b"hello".to_vec()];
    write_raw(&*d, &recs);
    d.append(LOG, &[1, 2, 3]).unwrap(); // 3 bytes of a header
    let (_, got, r) = Wal::open(d.clone(), LOG).unwrap();
    assert_eq!((got, r.truncated_bytes), (recs.clone(), 3));
    d.append(LOG, &[0; 32]).unwrap(); // zero-filled tail (len 0, crc 0)
    let (_, got, r) = Wal::open(d.clone(), LOG).unwrap();
    assert_eq!((got, r.truncated_bytes), (recs.clone(), 32));
    // Length field pointing past the end.
    d.append(LOG, &[100, 0, 0, 0, 0, 0, 0, 0, 9]).unwrap();
    let (_, got, r) = Wal::open(d, LOG).unwrap();
    assert_eq!((got, r.truncated_bytes), (recs, 9));
    assert!(r.reason.unwrap().contains("torn record"));
}

#[test]
fn wal_rewrite_replaces_log() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, simd) = sim();
    for d in [
        Arc::new(FsDir::open(tmp.path()).unwrap()) as Arc<dyn Dir>,
        simd,
    ] {
        let (mut wal, _, _) = Wal::open(d.clone(), LOG).unwrap();
        for i in 0..10 {
            wal.append(&rec(i)).unwrap();
        }
        let kept: Vec<Vec<u8>> = (7..10).map(rec).collect();
        wal.rewrite(&kept).unwrap();
        assert_eq!(wal.len_bytes(), frames_len(&kept));
        wal.append(b"after").unwrap();
        wal.sync().unwrap();
        let mut expected = kept.clone();
        expected.push(b"after".to_vec());
        s.crash(CrashFaults::default());
        let (_, got, r) = Wal::open(d, LOG).unwrap();
        assert_eq!(got, expected);
        assert_eq!(r.truncated_bytes, 0);
    }
}

#[test]
fn io_fault_poisons_wal_until_reopen() {
    let (s, d) = sim();
    let (mut wal, _, _) = Wal::open(d.clone(), LOG).unwrap();
    wal.append(b"a").unwrap();
    wal.sync().unwrap();
    wal.append(b"b").unwrap();
    s.set_fault(IoFault::FailNextSync);
    assert!(wal.sync().is_err());
    assert_eq!(
        s.unsynced_bytes(LOG),
        0,
        "a failed sync drops the dirty tail"
    );
    assert!(
        wal.append(b"c").is_err(),
        "WAL must refuse use after an I/O error"
    );
    assert!(wal.sync().is_err());
    s.crash(CrashFaults::default());
    let (mut wal, got, _) = Wal::open(d.clone(), LOG).unwrap();
    assert_eq!(got, vec![b"a".to_vec()]);
    s.set_fault(IoFault::FailNextAppend);
    assert!(wal.append(b"x").is_err());
    assert_eq!(s.unsynced_bytes(LOG), 0, "failed append wrote nothing");
    s.set_fault(IoFault::FailNextWrite);
    assert!(d.write_atomic("other", b"x").is_err());
    assert_eq!(d.read("other").unwrap(), None);
    s.set_fault(IoFault::NoSpace);
    let e = d.append("other", b"x").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "{e}");
    assert_eq!(d.read("other").unwrap(), None);
    d.append("other", b"y").unwrap();
}

#[test]
fn checked_round_trip_and_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = FsDir::open(tmp.path()).unwrap();
    let simd = SimDir::new();
    for d in [&fs as &dyn Dir, &simd] {
        assert_eq!(read_checked(d, "snap").unwrap(), None);
        let payload: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        write_checked(d, "snap", &payload).unwrap();
        assert_eq!(read_checked(d, "snap").unwrap().unwrap(), payload);
        write_checked(d, "empty", b"").unwrap();
        assert_eq!(read_checked(d, "empty").unwrap().unwrap(), b"");

        let good = d.read("snap").unwrap().unwrap();
        let mut cases: Vec<(Vec<u8>, &str)> = Vec::new();
        let mut flipped = good.clone();
        flipped[500] ^= 0x08;
        cases.push((flipped, "checksum"));
        cases.push((good[..good.len() - 1].to_vec(), "length"));
        cases.push((good[..10].to_vec(), "too short"));
        let mut magic = good.clone();
        magic[0] = b'X';
        cases.push((magic, "magic"));
        for (bytes, msg) in cases {
            d.write_atomic("snap", &bytes).unwrap();
            let err = read_checked(d, "snap").unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert!(err.to_string().contains(msg), "{err} should mention {msg}");
        }
    }
}

fn crash_scenario(seed: u64) -> Vec<(String, Vec<u8>)> {
    let (s, d) = sim();
    for f in ["a.wal", "b.wal", "c.wal"] {
        d.append(f, &[1; 10]).unwrap();
        d.sync(f).unwrap();
        d.append(f, &(0..200u8).collect::<Vec<_>>()).unwrap();
    }
    s.crash(CrashFaults {
        seed,
        torn_write: true,
        corrupt: true,
        damage: None,
    });
    d.list()
        .unwrap()
        .into_iter()
        .map(|n| {
            let b = d.read(&n).unwrap().unwrap();
            (n, b)
        })
        .collect()
}

#[test]
fn crash_is_deterministic_per_seed() {
    let mut distinct = std::collections::BTreeSet::new();
    for seed in 0..20 {
        let a = crash_scenario(seed);
        assert_eq!(a, crash_scenario(seed), "seed {seed}");
        // Synced prefixes are never touched.
        assert!(a.iter().all(|(_, b)| b[..10] == [1; 10]));
        distinct.insert(a);
    }
    assert!(
        distinct.len() > 10,
        "seed has (almost) no effect on the crash"
    );
}

#[test]
fn decode_reports_valid_len() {
    let mut raw = encode_record(b"x").unwrap();
    raw.extend(encode_record(b"yz").unwrap());
    assert_eq!(
        decode_records(&raw),
        (vec![b"x".to_vec(), b"yz".to_vec()], 19, None)
    );
}

#[derive(Debug, Clone)]
enum Step {
    Append(Vec<u8>),
    Sync,
    Crash {
        seed: u64,
        torn: bool,
        corrupt: bool,
    },
    Reopen,
    Rewrite(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Step::Append),
        3 => Just(Step::Sync),
        2 => (any::<u64>(), any::<bool>(), any::<bool>())
            .prop_map(|(seed, torn, corrupt)| Step::Crash { seed, torn, corrupt }),
        1 => Just(Step::Reopen),
        1 => (0usize..10).prop_map(Step::Rewrite),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn recovered_log_is_prefix_containing_synced(steps in proptest::collection::vec(step(), 1..60)) {
        let (s, d) = sim();
        let (mut wal, _, _) = Wal::open(d.clone(), LOG).unwrap();
        let mut appended: Vec<Vec<u8>> = Vec::new(); // what the current log should hold
        let mut synced = 0usize; // how many of them are durable
        let mut counter = 0u32;
        for st in steps {
            match st {
                Step::Append(mut body) => {
                    // Unique prefix so "prefix of appended" is a strong check.
                    counter += 1;
                    body.splice(0..0, counter.to_le_bytes());
                    wal.append(&body).unwrap();
                    appended.push(body);
                }
                Step::Sync => {
                    wal.sync().unwrap();
                    synced = appended.len();
                }
                Step::Rewrite(n) => {
                    appended.truncate(n);
                    wal.rewrite(&appended).unwrap();
                    synced = appended.len();
                }
                Step::Reopen | Step::Crash { .. } => {
                    drop(wal);
                    let crashed = matches!(st, Step::Crash { .. });
                    if let Step::Crash { seed, torn, corrupt } = st {
                        s.crash(CrashFaults { seed, torn_write: torn, corrupt, damage: None });
                    }
                    let len_before = file_len(&*d, LOG);
                    let (w, recs, r) = Wal::open(d.clone(), LOG).unwrap();
                    wal = w;
                    prop_assert!(recs.len() <= appended.len());
                    prop_assert_eq!(&recs[..], &appended[..recs.len()], "not a prefix");
                    prop_assert!(recs.len() >= synced, "lost synced records");
                    if !crashed {
                        prop_assert_eq!(recs.len(), appended.len(), "clean reopen lost data");
                    }
                    prop_assert_eq!(wal.len_bytes(), frames_len(&recs));
                    prop_assert_eq!(file_len(&*d, LOG), frames_len(&recs));
                    prop_assert_eq!(r.truncated_bytes, len_before - frames_len(&recs));
                    prop_assert_eq!(s.unsynced_bytes(LOG), 0, "open must leave nothing unsynced");
                    appended = recs;
                    synced = appended.len();
                }
            }
        }
    }
}

/// A corrupt torn write reaches the disk whole with one byte flipped; the
/// WAL's checksum finds it on recovery and cuts it, keeping what was synced.
#[test]
fn a_corrupt_torn_write_is_kept_whole_damaged_and_cut_by_the_checksum() {
    for seed in 0..20 {
        let (s, d) = sim();
        let (mut wal, _, _) = Wal::open(d.clone(), "log").unwrap();
        wal.append(b"synced").unwrap();
        wal.sync().unwrap();
        let synced = d.read("log").unwrap().unwrap();
        wal.append(b"never synced").unwrap();
        let written = d.read("log").unwrap().unwrap();
        s.crash(CrashFaults {
            seed,
            torn_write: true,
            corrupt: true,
            damage: None,
        });
        let after = d.read("log").unwrap().unwrap();
        assert_eq!(
            after.len(),
            written.len(),
            "seed {seed}: the whole write is kept"
        );
        let differing = after.iter().zip(&written).filter(|(a, b)| a != b).count();
        assert_eq!(differing, 1, "seed {seed}: one byte flipped");
        assert_eq!(
            &after[..synced.len()],
            &synced[..],
            "synced bytes untouched"
        );
        let (_, records, recovery) = Wal::open(d.clone(), "log").unwrap();
        assert_eq!(records, vec![b"synced".to_vec()], "seed {seed}");
        assert!(recovery.truncated_bytes > 0, "seed {seed}");
    }
}
