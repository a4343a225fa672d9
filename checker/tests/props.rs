//! Property tests: histories produced by running random concurrent clients
//! against a real sequential register are linearizable (whatever outcomes
//! are hidden as unknown); breaking one read makes them not linearizable.

use checker::history::{History, Op, OpType, Process};
use checker::linear::{check, Options, Verdict};
use checker::model::ModelKind;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

#[derive(Clone, Copy, PartialEq)]
enum Stage {
    Idle,
    /// Invoked, not yet applied.
    Invoked,
    /// Applied; holds the call's slot.
    Applied,
}

struct Pending {
    f: &'static str,
    key: Option<String>,
    value: Value,
    /// Result once applied: Ok(value) or Err(()) for a failed cas.
    result: Option<Result<Value, ()>>,
}

/// Simulates `procs` clients doing `nops` operations on `keys` registers.
/// Every write/cas writes a fresh value, so stale reads are detectable.
/// Some completions are reported as `info` (whether or not the op took
/// effect), some invocations never complete.
fn simulate(seed: u64, procs: usize, nops: usize, keys: usize) -> History {
    simulate_with(seed, procs, nops, keys, 0.1, 0.3)
}

/// `give_up`: the chance, before and after taking effect, that the client
/// gives up (the outcome becomes unknown); `crash`: the chance that a
/// give-up is a crash (the client never completes and stops) rather than
/// an `info`.
fn simulate_with(
    seed: u64,
    procs: usize,
    nops: usize,
    keys: usize,
    give_up: f64,
    crash: f64,
) -> History {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut state: Vec<Value> = vec![Value::Null; keys];
    let mut stage = vec![Stage::Idle; procs];
    let mut pending: Vec<Option<Pending>> = (0..procs).map(|_| None).collect();
    let mut ops = Vec::new();
    let mut fresh = 0i64;
    let mut started = 0;
    let emit =
        |ops: &mut Vec<Op>, p: usize, kind: OpType, f: &str, key: &Option<String>, value: Value| {
            let index = ops.len();
            ops.push(Op {
                index,
                process: Process::Client(p as u64),
                kind,
                f: f.to_string(),
                key: key.clone(),
                value,
                time: Some(index as u64 * 10),
                extra: Map::new(),
            });
        };
    let key_name = |k: usize| {
        if keys == 1 {
            None
        } else {
            Some(format!("k{k}"))
        }
    };
    let mut crashed = vec![false; procs];
    loop {
        let live: Vec<usize> = (0..procs)
            .filter(|&p| !crashed[p] && (stage[p] != Stage::Idle || started < nops))
            .collect();
        if live.is_empty() {
            break;
        }
        let p = live[rng.random_range(0..live.len())];
        match stage[p] {
            Stage::Idle => {
                started += 1;
                let k = rng.random_range(0..keys);
                let (f, value) = match rng.random_range(0..3) {
                    0 => ("read", Value::Null),
                    1 => {
                        fresh += 1;
                        ("write", json!(fresh))
                    }
                    _ => {
                        fresh += 1;
                        // Expect the current value half of the time.
                        let expect = if rng.random_bool(0.5) {
                            state[k].clone()
                        } else {
                            json!(-1)
                        };
                        ("cas", json!([expect, fresh]))
                    }
                };
                let key = key_name(k);
                emit(&mut ops, p, OpType::Invoke, f, &key, value.clone());
                pending[p] = Some(Pending {
                    f,
                    key,
                    value,
                    result: None,
                });
                stage[p] = Stage::Invoked;
            }
            Stage::Invoked => {
                // Either take effect now, or give up without effect.
                let pd = pending[p].as_mut().unwrap();
                if rng.random_bool(give_up) {
                    if rng.random_bool(crash) {
                        crashed[p] = true; // never completes
                    } else {
                        let (f, key, value) = (pd.f, pd.key.clone(), pd.value.clone());
                        emit(&mut ops, p, OpType::Info, f, &key, value);
                        stage[p] = Stage::Idle;
                    }
                    continue;
                }
                let k = pd
                    .key
                    .as_ref()
                    .map_or(0, |s| s[1..].parse::<usize>().unwrap());
                pd.result = Some(match pd.f {
                    "read" => Ok(state[k].clone()),
                    "write" => {
                        state[k] = pd.value.clone();
                        Ok(pd.value.clone())
                    }
                    _ => {
                        if state[k] == pd.value[0] {
                            state[k] = pd.value[1].clone();
                            Ok(pd.value.clone())
                        } else {
                            Err(())
                        }
                    }
                });
                stage[p] = Stage::Applied;
            }
            Stage::Applied => {
                let pd = pending[p].take().unwrap();
                if rng.random_bool(give_up) {
                    if rng.random_bool(crash) {
                        crashed[p] = true;
                    } else {
                        emit(&mut ops, p, OpType::Info, pd.f, &pd.key, pd.value);
                        stage[p] = Stage::Idle;
                    }
                    continue;
                }
                match pd.result.unwrap() {
                    Ok(v) => emit(&mut ops, p, OpType::Ok, pd.f, &pd.key, v),
                    Err(()) => emit(&mut ops, p, OpType::Fail, pd.f, &pd.key, pd.value),
                }
                stage[p] = Stage::Idle;
            }
        }
    }
    History::new(ops)
}

fn model_for(keys: usize) -> ModelKind {
    if keys == 1 {
        ModelKind::CasRegister
    } else {
        ModelKind::Kv
    }
}

fn opts() -> Options {
    Options {
        timeout: Some(std::time::Duration::from_secs(20)),
        ..Options::default()
    }
}

/// Position of the completion of the op invoked at `inv`.
fn completion(h: &History, inv: usize) -> Option<usize> {
    let p = &h.ops[inv].process;
    h.ops[inv + 1..]
        .iter()
        .position(|o| &o.process == p)
        .map(|d| inv + 1 + d)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, max_global_rejects: 1_000_000, ..ProptestConfig::default() })]

    #[test]
    fn simulated_histories_are_linearizable(
        seed in any::<u64>(), procs in 1usize..6, nops in 1usize..40, keys in 1usize..4
    ) {
        let h = simulate(seed, procs, nops, keys);
        let r = check(&h, model_for(keys), &opts());
        prop_assert_eq!(r.verdict, Verdict::Linearizable, "{}", h.to_jsonl());
        // The linearization lists every op that completed ok.
        let oks = h.ops.iter().filter(|o| o.kind == OpType::Ok).count();
        prop_assert!(r.linearization.unwrap().len() >= oks);
        // Threads do not change the verdict.
        let r2 = check(&h, model_for(keys), &Options { threads: 2, ..opts() });
        prop_assert_eq!(r2.verdict, Verdict::Linearizable);
    }

    #[test]
    fn a_read_of_a_never_written_value_is_caught(
        seed in any::<u64>(), procs in 1usize..6, nops in 1usize..40, keys in 1usize..4, pick in any::<prop::sample::Index>()
    ) {
        let mut h = simulate(seed, procs, nops, keys);
        let reads: Vec<usize> = h.ops.iter().enumerate()
            .filter(|(_, o)| o.kind == OpType::Ok && o.f == "read").map(|(i, _)| i).collect();
        prop_assume!(!reads.is_empty());
        let i = reads[pick.index(reads.len())];
        h.ops[i].value = json!(-12345);
        prop_assert_eq!(check(&h, model_for(keys), &opts()).verdict, Verdict::NotLinearizable);
    }

    #[test]
    fn a_stale_read_after_a_completed_later_write_is_caught(
        seed in any::<u64>(), procs in 1usize..6, nops in 1usize..60, keys in 1usize..3, pick in any::<prop::sample::Index>()
    ) {
        let mut h = simulate(seed, procs, nops, keys);
        // Find ok writes w1, w2 on the same key with w1 completed before w2
        // was invoked, and an ok read of that key invoked after w2 completed.
        let writes: Vec<(usize, usize)> = h.ops.iter().enumerate()
            .filter(|(_, o)| o.kind == OpType::Invoke && o.f == "write")
            .filter_map(|(i, _)| completion(&h, i).filter(|&c| h.ops[c].kind == OpType::Ok).map(|c| (i, c)))
            .collect();
        let mut cases = Vec::new();
        for &(i1, c1) in &writes {
            for &(i2, c2) in &writes {
                if h.ops[i1].key != h.ops[i2].key || c1 >= i2 { continue; }
                for (ri, o) in h.ops.iter().enumerate() {
                    if o.kind == OpType::Invoke && o.f == "read" && ri > c2 && o.key == h.ops[i1].key {
                        if let Some(rc) = completion(&h, ri) {
                            if h.ops[rc].kind == OpType::Ok {
                                cases.push((i1, rc));
                            }
                        }
                    }
                }
            }
        }
        prop_assume!(!cases.is_empty());
        let (w1, rc) = cases[pick.index(cases.len())];
        h.ops[rc].value = h.ops[w1].value.clone();
        let r = check(&h, model_for(keys), &opts());
        prop_assert_eq!(r.verdict, Verdict::NotLinearizable, "{}", h.to_jsonl());
        prop_assert!(!r.failing.is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_global_rejects: 1_000_000, ..ProptestConfig::default() })]

    /// Long single-register histories (hundreds of calls: the search then
    /// stores its linearized sets trimmed, see `LinSet`).
    #[test]
    fn long_histories(seed in any::<u64>(), procs in 2usize..8, nops in 300usize..900) {
        // Long histories with many concurrent unknown outcomes are
        // exponentially hard to refute (for any checker); keep them rare.
        let h = simulate_with(seed, procs, nops, 1, 0.01, 0.0);
        let invokes = h.ops.iter().filter(|o| o.kind == OpType::Invoke).count();
        prop_assert!(invokes > 256, "long enough to trim sets: {}", invokes);
        let r = check(&h, ModelKind::CasRegister, &opts());
        prop_assert_eq!(r.verdict, Verdict::Linearizable);
        // Break the last ok read: a value nobody wrote.
        let mut bad = h.clone();
        let last_read = bad.ops.iter().rposition(|o| o.kind == OpType::Ok && o.f == "read");
        prop_assume!(last_read.is_some());
        bad.ops[last_read.unwrap()].value = json!(-7);
        let r = check(&bad, ModelKind::CasRegister, &opts());
        prop_assert_eq!(r.verdict, Verdict::NotLinearizable);
        prop_assert!(r.prefix.len() > invokes / 4, "the prefix reaches far: {}", r.prefix.len());
    }
}
