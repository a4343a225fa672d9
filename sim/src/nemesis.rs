//! Plays a fault schedule against the cluster: each fault starts at its
//! time and ends after its duration; every start and end is recorded in the
//! history. At the end of the phase every fault still active is ended.
//!
//! Some faults act on node events rather than at fixed times (triggers,
//! armed through the recorder): `crash-voter` crashes the first node that
//! grants a vote, `leader-churn` cuts off each leader at its election or at
//! its first commit. What they do is recorded as parts of the fault
//! (`"part"` in the nemesis events, with the node that triggered them), and
//! all of it ends with the fault. A run is still deterministic: triggers
//! fire on simulated events at simulated times, so a schedule replays bit
//! for bit.

use crate::cluster::SimCluster;
use crate::recorder::{OnFire, Recorder, Trigger};
use crate::schedule::{Fault, FaultEvent};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Clone, Debug)]
enum Action {
    Start(usize),
    End(usize),
    /// Start a part of fault `fid` that node `node`'s event triggered.
    StartPart {
        fid: usize,
        part: u32,
        node: u64,
        fault: Fault,
    },
    EndPart {
        fid: usize,
        part: u32,
    },
}

/// An active fault's state.
struct Active {
    /// What start_fault did.
    applied: Fault,
    /// Parts started by triggers and not yet ended, with their node.
    parts: BTreeMap<u32, (u64, Fault)>,
    next_part: u32,
    /// Leader churn's trigger, to fire again for a leader that outlived
    /// its cut.
    churn: Option<OnFire>,
}

/// Leader churn's trigger (see [`Fault::LeaderChurn`]): each leader is
/// cut off at the instant of its election or at its first commit, half
/// and half.
fn churn_hook(cluster: &SimCluster, seed: u64, hold_ms: u64) -> OnFire {
    // Leaders waiting for their first commit, with their holds.
    let state = Mutex::new((ChaCha8Rng::seed_from_u64(seed), BTreeMap::<u64, u64>::new()));
    let isolate = cluster.isolate_now();
    Arc::new(move |what, node| {
        let mut g = state.lock().unwrap();
        let (rng, at_commit) = &mut *g;
        match what {
            Trigger::NewLeader => {
                let hold = rng.random_range(hold_ms / 2..=hold_ms * 3 / 2);
                if rng.random_bool(0.5) {
                    isolate(node);
                    Some((0, Some(hold)))
                } else {
                    at_commit.insert(node, hold);
                    None
                }
            }
            Trigger::LeaderCommit => {
                let hold = at_commit.remove(&node)?;
                isolate(node);
                Some((0, Some(hold)))
            }
            Trigger::VoteGranted => None,
        }
    })
}

pub async fn play(cluster: &mut SimCluster, rec: &Recorder, faults: &[FaultEvent], phase_ms: u64) {
    let start = Instant::now();
    // (time, order, seq) -> action. Ends (order 0) come before starts at the
    // same instant; scheduled actions are ordered by fault id, triggered
    // ones after them in the order they were scheduled.
    let mut queue: BTreeMap<(u64, u8, usize), Action> = BTreeMap::new();
    for (i, f) in faults.iter().enumerate() {
        if f.at_ms < phase_ms {
            queue.insert((f.at_ms, 1, i), Action::Start(i));
            queue.insert(
                ((f.at_ms + f.duration_ms).min(phase_ms), 0, i),
                Action::End(i),
            );
        }
    }
    let mut seq = faults.len();
    let notify = rec.fired_notify();
    let mut active: BTreeMap<usize, Active> = BTreeMap::new();
    loop {
        let Some((&(at, _, _), _)) = queue.first_key_value() else {
            break;
        };
        let fired = tokio::select! {
            biased;
            _ = notify.notified() => true,
            _ = tokio::time::sleep_until(start + Duration::from_millis(at)) => false,
        };
        let now = start.elapsed().as_millis() as u64;
        if fired {
            for f in rec.take_fired() {
                let Some(a) = active.get_mut(&f.fid) else {
                    continue;
                };
                let fault = match &faults[f.fid].fault {
                    Fault::CrashVoter { torn_write, .. } => Fault::Crash {
                        node: f.node,
                        torn_write: *torn_write,
                    },
                    Fault::LeaderChurn { .. } => cluster.isolation(f.node),
                    _ => continue,
                };
                let part = a.next_part;
                a.next_part += 1;
                let end = (faults[f.fid].at_ms + faults[f.fid].duration_ms).min(phase_ms);
                let t = now + f.delay_ms;
                if t >= end {
                    // Too late; undo a cut the hook may have made already.
                    cluster.refresh_network();
                    continue;
                }
                seq += 1;
                queue.insert(
                    (t, 1, seq),
                    Action::StartPart {
                        fid: f.fid,
                        part,
                        node: f.node,
                        fault,
                    },
                );
                if let Some(h) = f.hold_ms {
                    seq += 1;
                    let part_end = (t + h).min(end);
                    queue.insert((part_end, 0, seq), Action::EndPart { fid: f.fid, part });
                }
            }
            continue;
        }
        let (_, action) = queue.pop_first().unwrap();
        match action {
            Action::Start(i) => {
                let f = &faults[i].fault;
                let applied = cluster.start_fault(i, f);
                rec.nemesis("start", json!({"id": i, "fault": applied}));
                active.insert(
                    i,
                    Active {
                        applied,
                        parts: BTreeMap::new(),
                        next_part: 1,
                        churn: None,
                    },
                );
                match f {
                    Fault::CrashVoter { delay_ms, .. } => {
                        let d = *delay_ms;
                        rec.arm(
                            i,
                            &[Trigger::VoteGranted],
                            Arc::new(move |_, _| Some((d, None))),
                        );
                    }
                    Fault::LeaderChurn { seed, hold_ms } => {
                        let hook = churn_hook(cluster, *seed, *hold_ms);
                        rec.arm(
                            i,
                            &[Trigger::NewLeader, Trigger::LeaderCommit],
                            hook.clone(),
                        );
                        active.get_mut(&i).unwrap().churn = Some(hook.clone());
                        // The churn starts with the current leader (unless
                        // an earlier churn has it).
                        if let Some(l) = cluster
                            .leader()
                            .filter(|_| rec.first_armed(i, Trigger::NewLeader))
                        {
                            rec.fire_now(i, Trigger::NewLeader, l, &hook);
                        }
                    }
                    _ => {}
                }
            }
            Action::End(i) => {
                rec.disarm(i);
                if let Some(a) = active.remove(&i) {
                    end_all(cluster, rec, i, a);
                }
            }
            Action::StartPart {
                fid,
                part,
                node,
                fault,
            } => {
                if let Some(a) = active.get_mut(&fid) {
                    if a.churn.is_some() {
                        // A churn cuts one leader at a time: the next cut
                        // releases the previous one.
                        for (p, (_, f)) in std::mem::take(&mut a.parts) {
                            cluster.end_part(fid, p, &f);
                            rec.nemesis("end", json!({"id": fid, "part": p, "fault": f}));
                        }
                    }
                    let applied = cluster.start_part(fid, part, &fault);
                    rec.nemesis(
                        "start",
                        json!({"id": fid, "part": part, "trigger": node, "fault": applied}),
                    );
                    a.parts.insert(part, (node, applied));
                }
            }
            Action::EndPart { fid, part } => {
                let Some(a) = active.get_mut(&fid) else {
                    continue;
                };
                if let Some((node, f)) = a.parts.remove(&part) {
                    cluster.end_part(fid, part, &f);
                    rec.nemesis("end", json!({"id": fid, "part": part, "fault": f}));
                    // A leader that outlived its cut is cut again.
                    if let Some(hook) = &a.churn {
                        if cluster.leader() == Some(node) {
                            rec.fire_now(fid, Trigger::NewLeader, node, hook);
                        }
                    }
                }
            }
        }
    }
    tokio::time::sleep_until(start + Duration::from_millis(phase_ms)).await;
    for (i, a) in std::mem::take(&mut active) {
        rec.disarm(i);
        end_all(cluster, rec, i, a);
    }
}

/// Ends a fault and every part it started.
fn end_all(cluster: &mut SimCluster, rec: &Recorder, fid: usize, a: Active) {
    for (part, (_, f)) in a.parts {
        cluster.end_part(fid, part, &f);
        rec.nemesis("end", json!({"id": fid, "part": part, "fault": f}));
    }
    cluster.end_fault(fid, &a.applied);
    if matches!(a.applied, Fault::LeaderChurn { .. }) {
        // A cut its trigger made at once, if the fault ended before the
        // nemesis took it over.
        cluster.refresh_network();
    }
    rec.nemesis("end", json!({"id": fid, "fault": a.applied}));
}
