//! Cross-check against a brute-force reference: for small random histories
//! (any mix of outcomes, so both verdicts occur), enumerate every subset of
//! unknown-outcome calls and every real-time-consistent order, and compare
//! the verdict with the checker's. This guards the search's shortcuts
//! (omitted reads, equal unknown calls, collapsed kv strings).

use checker::history::{History, Op, OpType, Process};
use checker::linear::{check, Options, Verdict};
use checker::model::ModelKind;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

#[derive(Clone, Debug)]
struct RefCall {
    f: &'static str,
    arg: Value,
    /// "ok" (with result), "fail", or "unknown".
    outcome: &'static str,
    result: Value,
    call: usize,
    ret: Option<usize>,
}

fn random_history(seed: u64, append: bool) -> (History, Vec<RefCall>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let procs = rng.random_range(1..=3usize);
    let n = rng.random_range(1..=6usize);
    let vals = |rng: &mut ChaCha8Rng| -> Value {
        if append {
            [
                json!(null),
                json!("a"),
                json!("b"),
                json!("ab"),
                json!("ba"),
                json!("aa"),
            ][rng.random_range(0..6)]
            .clone()
        } else {
            [json!(null), json!(1), json!(2)][rng.random_range(0..3)].clone()
        }
    };
    let mut events: Vec<(usize, bool, usize)> = Vec::new(); // (proc, is_invoke, call idx)
    let mut calls: Vec<RefCall> = Vec::new();
    let mut open: Vec<Option<usize>> = vec![None; procs];
    while calls.len() < n || open.iter().any(|o| o.is_some()) {
        let p = rng.random_range(0..procs);
        match open[p] {
            None if calls.len() < n => {
                let f = if append {
                    ["read", "write", "append"][rng.random_range(0..3)]
                } else {
                    ["read", "write", "cas"][rng.random_range(0..3)]
                };
                let arg = match f {
                    "read" => Value::Null,
                    "cas" => json!([vals(&mut rng), vals(&mut rng)]),
                    "append" => [json!("a"), json!("b")][rng.random_range(0..2)].clone(),
                    _ => vals(&mut rng),
                };
                let outcome =
                    ["ok", "ok", "ok", "fail", "unknown", "missing"][rng.random_range(0..6)];
                let result = if f == "read" {
                    vals(&mut rng)
                } else {
                    arg.clone()
                };
                open[p] = Some(calls.len());
                events.push((p, true, calls.len()));
                calls.push(RefCall {
                    f,
                    arg,
                    outcome,
                    result,
                    call: 0,
                    ret: None,
                });
            }
            None => {}
            Some(c) => {
                open[p] = None;
                if calls[c].outcome != "missing" {
                    events.push((p, false, c));
                }
            }
        }
    }
    let mut ops = Vec::new();
    for (pos, &(p, inv, c)) in events.iter().enumerate() {
        let rc = &mut calls[c];
        let (kind, value) = if inv {
            rc.call = pos;
            (OpType::Invoke, rc.arg.clone())
        } else {
            match rc.outcome {
                "ok" => {
                    rc.ret = Some(pos);
                    (OpType::Ok, rc.result.clone())
                }
                "fail" => {
                    rc.ret = Some(pos);
                    (OpType::Fail, rc.arg.clone())
                }
                _ => (OpType::Info, rc.arg.clone()),
            }
        };
        ops.push(Op {
            index: pos,
            process: Process::Client(p as u64),
            kind,
            f: rc.f.to_string(),
            key: None,
            value,
            time: None,
            extra: Map::new(),
        });
    }
    for c in &mut calls {
        if c.outcome == "missing" {
            c.outcome = "unknown";
        }
    }
    (History::new(ops), calls)
}

fn as_str(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        o => o.to_string(),
    }
}

/// Applies `c` to `state`; `None` if impossible.
fn apply(state: &Value, c: &RefCall) -> Option<Value> {
    match (c.f, c.outcome) {
        ("read", "ok") => (state == &c.result).then(|| state.clone()),
        ("read", _) => Some(state.clone()),
        ("write", "fail") | ("append", "fail") => Some(state.clone()),
        ("write", _) => Some(c.arg.clone()),
        ("append", _) => Some(Value::String(as_str(state) + &as_str(&c.arg))),
        ("cas", "fail") => (state != &c.arg[0]).then(|| state.clone()),
        ("cas", "ok") => (state == &c.arg[0]).then(|| c.arg[1].clone()),
        // unknown cas, if it happened, either swapped or changed nothing
        ("cas", _) => Some(if state == &c.arg[0] {
            c.arg[1].clone()
        } else {
            state.clone()
        }),
        _ => unreachable!(),
    }
}

/// Depth-first over orders; unknown calls may be skipped.
fn reference(calls: &[RefCall]) -> bool {
    fn go(calls: &[RefCall], done: &mut Vec<bool>, state: Value) -> bool {
        if (0..calls.len()).all(|i| done[i] || calls[i].outcome == "unknown") {
            return true;
        }
        for i in 0..calls.len() {
            if done[i] {
                continue;
            }
            // i can go next only if every not-yet-placed definite call j
            // did not return before i was invoked.
            let blocked = (0..calls.len()).any(|j| {
                j != i
                    && !done[j]
                    && calls[j].outcome != "unknown"
                    && calls[j].ret.unwrap() < calls[i].call
            });
            if blocked {
                continue;
            }
            if let Some(s) = apply(&state, &calls[i]) {
                done[i] = true;
                if go(calls, done, s) {
                    return true;
                }
                done[i] = false;
            }
        }
        false
    }
    go(calls, &mut vec![false; calls.len()], Value::Null)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn cas_register_agrees_with_brute_force(seed in any::<u64>()) {
        let (h, calls) = random_history(seed, false);
        let want = if reference(&calls) { Verdict::Linearizable } else { Verdict::NotLinearizable };
        let got = check(&h, ModelKind::CasRegister, &Options::default());
        prop_assert_eq!(got.verdict, want, "{}", h.to_jsonl());
    }

    #[test]
    fn kv_append_agrees_with_brute_force(seed in any::<u64>()) {
        let (h, calls) = random_history(seed, true);
        let want = if reference(&calls) { Verdict::Linearizable } else { Verdict::NotLinearizable };
        let got = check(&h, ModelKind::Kv, &Options::default());
        prop_assert_eq!(got.verdict, want, "{}", h.to_jsonl());
    }
}

#[test]
fn both_verdicts_occur() {
    let mut seen = [0usize; 2];
    for seed in 0..500 {
        let (_, calls) = random_history(seed, false);
        seen[reference(&calls) as usize] += 1;
    }
    assert!(seen[0] > 50 && seen[1] > 50, "{seen:?}");
}
