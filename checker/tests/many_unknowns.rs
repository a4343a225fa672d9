//! Histories with many operations of unknown outcome (Jepsen `:info`,
//! crashed clients) are what makes a linearizability search blow up. They
//! must still end quickly: with a verdict, or `unknown` and the reason.

use std::time::{Duration, Instant};

use checker::formats;
use checker::linear::{check, Options, Verdict};
use checker::model::ModelKind;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

/// A Jepsen-style cas-register test as EDN: `slots` concurrent clients
/// run reads, writes and cas of values 0..5 against a real register; an
/// operation takes effect at some point between its invocation and its
/// completion. A write or cas is reported `:info` (and its client replaced
/// by a new process, as Jepsen does) with probability `p_info`. With
/// `bad_read`, one read in the middle reports a value never written.
fn jepsen_history(seed: u64, events: usize, slots: usize, p_info: f64, bad_read: bool) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut reg = 0i64;
    let mut procs: Vec<usize> = (0..slots).collect();
    let mut next_proc = slots;
    // Per slot: (f, value, applied?, result).
    let mut pending: Vec<Option<(&str, String, bool, String)>> = vec![None; slots];
    let mut out = Vec::new();
    let mut bad_read = bad_read;
    while out.len() < events {
        let s = rng.random_range(0..slots);
        let p = procs[s];
        match &mut pending[s] {
            None => {
                let (f, v) = match rng.random_range(0..3) {
                    0 => ("read", "nil".to_string()),
                    1 => ("write", rng.random_range(0..5).to_string()),
                    _ => (
                        "cas",
                        format!("[{} {}]", rng.random_range(0..5), rng.random_range(0..5)),
                    ),
                };
                out.push(format!(
                    "{{:process {p}, :type :invoke, :f :{f}, :value {v}}}"
                ));
                pending[s] = Some((f, v, false, String::new()));
            }
            Some((f, v, applied, result)) if !*applied => {
                *applied = true;
                *result = match *f {
                    "read" => reg.to_string(),
                    "write" => {
                        reg = v.parse().unwrap();
                        v.clone()
                    }
                    _ => {
                        let ab: Vec<i64> = v
                            .trim_matches(['[', ']'])
                            .split(' ')
                            .map(|x| x.parse().unwrap())
                            .collect();
                        if reg == ab[0] {
                            reg = ab[1];
                            "ok".into()
                        } else {
                            "fail".into()
                        }
                    }
                };
            }
            Some((f, v, _, result)) => {
                let line = if *f != "read" && rng.random_bool(p_info) {
                    procs[s] = next_proc;
                    next_proc += 1;
                    format!("{{:process {p}, :type :info, :f :{f}, :value {v}}}")
                } else if *f == "read" {
                    let mut r = result.clone();
                    if bad_read && out.len() > events / 2 {
                        r = "99".into();
                        bad_read = false;
                    }
                    format!("{{:process {p}, :type :ok, :f :read, :value {r}}}")
                } else if result == "fail" {
                    format!("{{:process {p}, :type :fail, :f :{f}, :value {v}}}")
                } else {
                    format!("{{:process {p}, :type :ok, :f :{f}, :value {v}}}")
                };
                out.push(line);
                pending[s] = None;
            }
        }
    }
    format!("[{}]", out.join("\n"))
}

fn run(text: &str, max_cache: usize) -> (checker::CheckResult, Duration) {
    let (h, _) = formats::parse_auto(text).unwrap();
    let infos = h
        .ops
        .iter()
        .filter(|o| o.kind == checker::OpType::Info)
        .count();
    assert!(infos > 300, "{infos} infos: not the hard case");
    let opts = Options {
        initial: json!(0),
        max_cache_entries: max_cache,
        timeout: Some(Duration::from_secs(120)),
        ..Options::default()
    };
    let start = Instant::now();
    let r = check(&h, ModelKind::CasRegister, &opts);
    (r, start.elapsed())
}

/// About 400 `:info` writes and cas among 2500 events, 20 clients at a
/// time. Without subsumption in the search cache (an entry with the same
/// known-outcome calls and state and a subset of the unknown ones prunes)
/// this ran into a 2 million entry memory bound (after 2.3 s, release
/// build); with it, it is linearizable in 0.14 s.
#[test]
fn many_infos_still_get_a_verdict() {
    let text = jepsen_history(10, 2500, 20, 0.5, false);
    let (r, took) = run(&text, 2_000_000);
    println!("verdict {:?} in {took:?}", r.verdict);
    assert_eq!(r.verdict, Verdict::Linearizable, "{:?}", r.unknown_reason);
}

/// Refuting such a history can take exponential time in any checker: the
/// memory bound ends it, with the reason.
#[test]
fn a_hopeless_search_ends_with_the_reason() {
    let text = jepsen_history(10, 2500, 20, 0.5, true);
    let (r, took) = run(&text, 100_000);
    println!("verdict {:?} in {took:?}", r.verdict);
    match r.verdict {
        Verdict::NotLinearizable => {}
        Verdict::Unknown => {
            let why = r.unknown_reason.unwrap();
            assert!(why.contains("memory limit"), "{why}");
        }
        Verdict::Linearizable => panic!("a read of a value never written"),
    }
    assert!(took < Duration::from_secs(60), "{took:?}");
}
