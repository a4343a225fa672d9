//! Plays a fault schedule against the hosts: each fault starts at its time
//! and ends after its duration; every start and end is recorded in the
//! history. At the end of the phase every fault still active is ended.
//!
//! The harness plays its own kinds ([`Fault`]'s variants) itself. A
//! scenario's kinds ([`Fault::Custom`]) are played by its [`FaultPlugin`]:
//! at its start a custom fault turns into one of the harness's faults (or
//! nothing), and it may wait for the system's events (triggers, fired by
//! the scenario through [`Triggers::fire`]): each time one fires, the
//! plugin says what the fault does to the host that fired it. What
//! triggers do is recorded as parts of the fault (`"part"` in the nemesis
//! events, with the host that triggered them), and all of it ends with the
//! fault. A run is still deterministic: triggers fire on simulated events
//! at simulated times, so a schedule replays bit for bit.

use crate::recorder::Recorder;
use crate::schedule::{Fault, FaultEvent};
use crate::sim::Sim;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Runs at the instant a trigger fires for a host, inside the event that
/// fired it (so before any message the host has just queued leaves):
/// returns whether the fault acts on that host, after what delay and for
/// how long (hold; `None`: until the fault ends). It may act at once itself.
pub type OnFire = Arc<dyn Fn(&str, u64) -> Option<(u64, Option<u64>)> + Send + Sync>;

/// A trigger that fired: fault `fid` acts on `node` after `delay_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fired {
    pub fid: usize,
    pub node: u64,
    pub delay_ms: u64,
    pub hold_ms: Option<u64>,
}

/// What a fault waits for.
#[derive(Clone)]
pub struct Arm {
    /// Trigger names (the scenario's: e.g. "new-leader").
    pub on: Vec<&'static str>,
    pub hook: OnFire,
    /// `true`: fires once, for the first event, then disarms. `false`:
    /// fires for every event, but when several faults wait for the same
    /// trigger only the one with the lowest id takes it.
    pub once: bool,
    /// At most one part at a time: a new part ends the previous ones.
    pub one_part_at_a_time: bool,
    /// Fire this trigger for this host right after arming (if this fault
    /// is the one that takes it).
    pub fire_now: Option<(&'static str, u64)>,
}

/// Armed triggers: the scenario fires them from its events, the nemesis
/// learns what they decided.
#[derive(Clone, Default)]
pub struct Triggers(Arc<Mutex<TriggersInner>>);

#[derive(Default)]
struct TriggersInner {
    armed: BTreeMap<usize, (Vec<&'static str>, OnFire, bool)>,
    fired: Vec<Fired>,
    notify: Arc<tokio::sync::Notify>,
}

impl Triggers {
    pub fn new() -> Triggers {
        Triggers::default()
    }

    /// The system reports event `what` of host `node`: runs the hooks of
    /// the faults waiting for it.
    pub fn fire(&self, what: &str, node: u64) {
        let hit: Vec<(usize, OnFire)> = {
            let mut g = self.0.lock().unwrap();
            let hits: Vec<(usize, OnFire, bool)> = g
                .armed
                .iter()
                .filter(|(_, (t, _, _))| t.contains(&what))
                .map(|(f, (_, h, once))| (*f, h.clone(), *once))
                .collect();
            let mut out = Vec::new();
            let mut took = false;
            for (fid, hook, once) in hits {
                if once {
                    g.armed.remove(&fid);
                    out.push((fid, hook));
                } else if !took {
                    took = true;
                    out.push((fid, hook));
                }
            }
            out
        };
        for (fid, hook) in hit {
            self.fire_now(fid, what, node, &hook);
        }
    }

    fn arm(&self, fid: usize, arm: &Arm) {
        self.0
            .lock()
            .unwrap()
            .armed
            .insert(fid, (arm.on.clone(), arm.hook.clone(), arm.once));
    }

    /// Whether fault `fid` is the one with the lowest id waiting for `what`.
    fn first_armed(&self, fid: usize, what: &str) -> bool {
        let g = self.0.lock().unwrap();
        g.armed
            .iter()
            .find(|(_, (t, _, _))| t.contains(&what))
            .is_some_and(|(f, _)| *f == fid)
    }

    fn disarm(&self, fid: usize) {
        let mut g = self.0.lock().unwrap();
        g.armed.remove(&fid);
        g.fired.retain(|f| f.fid != fid);
    }

    /// Fires fault `fid`'s trigger `what` for `node` now (runs its hook).
    fn fire_now(&self, fid: usize, what: &str, node: u64, on_fire: &OnFire) {
        let Some((delay_ms, hold_ms)) = on_fire(what, node) else {
            return;
        };
        let mut g = self.0.lock().unwrap();
        g.fired.push(Fired {
            fid,
            node,
            delay_ms,
            hold_ms,
        });
        g.notify.notify_one();
    }

    fn take_fired(&self) -> Vec<Fired> {
        std::mem::take(&mut self.0.lock().unwrap().fired)
    }

    fn notify(&self) -> Arc<tokio::sync::Notify> {
        self.0.lock().unwrap().notify.clone()
    }
}

/// What a custom fault does when it starts.
pub struct Started {
    /// One of the harness's faults to apply now, recorded as what the fault
    /// did; `None`: nothing now (the custom fault is recorded as is).
    pub apply: Option<Fault>,
    /// Events it waits for, if any.
    pub arm: Option<Arm>,
}

/// A scenario's own fault kinds, played by the nemesis.
pub trait FaultPlugin {
    /// A custom fault starts (fault id `fid`).
    fn start(&self, fid: usize, fault: &Fault, sim: &Sim) -> Started;
    /// A trigger that `fault` armed fired for `node`: the harness fault to
    /// apply as a part of it (`None`: nothing).
    fn part(&self, fault: &Fault, node: u64, sim: &Sim) -> Option<Fault>;
    /// A part of `fault` acting on `node` ended: a trigger to fire for
    /// `node` again (e.g. a leader that outlived its cut is cut again).
    fn refire(&self, _fault: &Fault, _node: u64) -> Option<&'static str> {
        None
    }
}

/// A scenario without kinds of its own.
pub struct NoPlugin;

impl FaultPlugin for NoPlugin {
    fn start(&self, _: usize, _: &Fault, _: &Sim) -> Started {
        Started {
            apply: None,
            arm: None,
        }
    }
    fn part(&self, _: &Fault, _: u64, _: &Sim) -> Option<Fault> {
        None
    }
}

#[derive(Clone, Debug)]
enum Action {
    Start(usize),
    End(usize),
    /// Start a part of fault `fid` that host `node`'s event triggered.
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
    /// What the fault did at its start.
    applied: Fault,
    /// Parts started by triggers and not yet ended, with their host.
    parts: BTreeMap<u32, (u64, Fault)>,
    next_part: u32,
    /// Its triggers, if it waits for events.
    arm: Option<Arm>,
}

impl Active {
    fn one_part_at_a_time(&self) -> bool {
        self.arm.as_ref().is_some_and(|a| a.one_part_at_a_time)
    }
}

/// Plays `faults` during a phase of `phase_ms` from now, for a scenario
/// with no fault kinds of its own; ends every fault still active at its end.
pub async fn play(
    sim: &mut Sim,
    ctx: &crate::scenario::RunCtx,
    faults: &[FaultEvent],
    phase_ms: u64,
) {
    let mut n = Nemesis {
        sim,
        rec: &ctx.rec,
        triggers: &ctx.triggers,
        plugin: &NoPlugin,
    };
    n.play(faults, phase_ms).await
}

/// The nemesis of one run.
pub struct Nemesis<'a> {
    pub sim: &'a mut Sim,
    pub rec: &'a Recorder,
    pub triggers: &'a Triggers,
    pub plugin: &'a dyn FaultPlugin,
}

/// The nemesis's queue: (time, order, seq) -> action. Ends (order 0) come
/// before starts at the same instant; scheduled actions are ordered by
/// fault id, triggered ones after them in the order they were scheduled.
type Queue = BTreeMap<(u64, u8, usize), Action>;

impl Nemesis<'_> {
    /// Plays `faults` during a phase of `phase_ms` from now; ends every
    /// fault still active at its end.
    pub async fn play(&mut self, faults: &[FaultEvent], phase_ms: u64) {
        let start = Instant::now();
        let mut queue: Queue = BTreeMap::new();
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
        let notify = self.triggers.notify();
        let mut active: BTreeMap<usize, Active> = BTreeMap::new();
        while let Some((&(at, _, _), _)) = queue.first_key_value() {
            let fired = tokio::select! {
                biased;
                _ = notify.notified() => true,
                _ = tokio::time::sleep_until(start + Duration::from_millis(at)) => false,
            };
            if fired {
                let now = start.elapsed().as_millis() as u64;
                self.schedule_parts(faults, phase_ms, now, &mut active, &mut queue, &mut seq);
            } else {
                let (_, action) = queue.pop_first().unwrap();
                self.act(faults, action, &mut active);
            }
        }
        tokio::time::sleep_until(start + Duration::from_millis(phase_ms)).await;
        for (i, a) in std::mem::take(&mut active) {
            self.triggers.disarm(i);
            self.end_all(i, a);
        }
    }

    /// Queues the parts that the triggers which fired decided on.
    fn schedule_parts(
        &mut self,
        faults: &[FaultEvent],
        phase_ms: u64,
        now: u64,
        active: &mut BTreeMap<usize, Active>,
        queue: &mut Queue,
        seq: &mut usize,
    ) {
        for f in self.triggers.take_fired() {
            let Some(a) = active.get_mut(&f.fid) else {
                continue;
            };
            let Some(fault) = self.plugin.part(&faults[f.fid].fault, f.node, self.sim) else {
                continue;
            };
            let part = a.next_part;
            a.next_part += 1;
            let end = (faults[f.fid].at_ms + faults[f.fid].duration_ms).min(phase_ms);
            let t = now + f.delay_ms;
            if t >= end {
                // Too late; undo a cut the hook may have made already.
                self.sim.refresh_network();
                continue;
            }
            *seq += 1;
            let (fid, node) = (f.fid, f.node);
            let start = Action::StartPart {
                fid,
                part,
                node,
                fault,
            };
            queue.insert((t, 1, *seq), start);
            if let Some(h) = f.hold_ms {
                *seq += 1;
                queue.insert(((t + h).min(end), 0, *seq), Action::EndPart { fid, part });
            }
        }
    }

    /// Carries out one queued action.
    fn act(&mut self, faults: &[FaultEvent], action: Action, active: &mut BTreeMap<usize, Active>) {
        match action {
            Action::Start(i) => {
                let a = self.start(i, &faults[i].fault);
                active.insert(i, a);
            }
            Action::End(i) => {
                self.triggers.disarm(i);
                if let Some(a) = active.remove(&i) {
                    self.end_all(i, a);
                }
            }
            Action::StartPart {
                fid,
                part,
                node,
                fault,
            } => {
                let Some(a) = active.get_mut(&fid) else {
                    return;
                };
                if a.one_part_at_a_time() {
                    for (p, (_, f)) in std::mem::take(&mut a.parts) {
                        self.sim.end_part(fid, p, &f);
                        self.rec
                            .nemesis("end", json!({"id": fid, "part": p, "fault": f}));
                    }
                }
                self.sim.start_part(fid, part, &fault);
                self.rec.nemesis(
                    "start",
                    json!({"id": fid, "part": part, "trigger": node, "fault": fault}),
                );
                a.parts.insert(part, (node, fault));
            }
            Action::EndPart { fid, part } => {
                let Some(a) = active.get_mut(&fid) else {
                    return;
                };
                let Some((node, f)) = a.parts.remove(&part) else {
                    return;
                };
                self.sim.end_part(fid, part, &f);
                self.rec
                    .nemesis("end", json!({"id": fid, "part": part, "fault": f}));
                if let Some(arm) = a.arm.as_ref().filter(|a| a.one_part_at_a_time) {
                    if let Some(t) = self.plugin.refire(&faults[fid].fault, node) {
                        self.triggers.fire_now(fid, t, node, &arm.hook);
                    }
                }
            }
        }
    }

    fn start(&mut self, i: usize, f: &Fault) -> Active {
        let (applied, arm) = match f {
            Fault::Custom(_) => {
                let s = self.plugin.start(i, f, self.sim);
                (s.apply.unwrap_or_else(|| f.clone()), s.arm)
            }
            _ => (f.clone(), None),
        };
        if !matches!(applied, Fault::Custom(_)) {
            self.sim.start_part(i, 0, &applied);
        }
        self.rec
            .nemesis("start", json!({"id": i, "fault": applied}));
        if let Some(arm) = &arm {
            self.triggers.arm(i, arm);
            if let Some((what, node)) = arm.fire_now {
                if self.triggers.first_armed(i, what) {
                    self.triggers.fire_now(i, what, node, &arm.hook);
                }
            }
        }
        Active {
            applied,
            parts: BTreeMap::new(),
            next_part: 1,
            arm,
        }
    }

    /// Ends a fault and every part it started.
    fn end_all(&mut self, fid: usize, a: Active) {
        let one_at_a_time = a.one_part_at_a_time();
        for (part, (_, f)) in a.parts {
            self.sim.end_part(fid, part, &f);
            self.rec
                .nemesis("end", json!({"id": fid, "part": part, "fault": f}));
        }
        if !matches!(a.applied, Fault::Custom(_)) {
            self.sim.end_part(fid, 0, &a.applied);
        }
        if one_at_a_time {
            // A cut its trigger made at once, if the fault ended before the
            // nemesis took it over.
            self.sim.refresh_network();
        }
        self.rec
            .nemesis("end", json!({"id": fid, "fault": a.applied}));
    }
}
