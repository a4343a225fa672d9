//! The bookstore's Raft groups on the harness's hosts: starting a Raft KV
//! group, the nodes' events (into the history, the Raft checks and the
//! fault triggers), and the Raft-targeted fault kinds (pause or isolate
//! whoever leads, crash a voter, leader churn, leader islands) as a
//! [`FaultPlugin`]. Everything here uses the harness's public API only.

use crate::checks::RaftChecker;
use bookstore::bugs::Bugs;
use bookstore::node::{serve, EventSink, NodeConfig, NodeEvent};
use harness::events::Bus;
use harness::nemesis::{Arm, FaultPlugin, OnFire, Started};
use harness::recorder::Recorder;
use harness::scenario::Floor;
use harness::scenario::RunCtx;
use harness::schedule::{Draw, Fault, FaultConfig, FaultEvent, FaultSelection, Schedule, Targets};
use harness::sim::{addr, Sim};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The port every node and service listens on (each host has its own address).
pub const PORT: u16 = 7000;

/// The fault kinds of the bookstore's scenarios, in the order seeds draw
/// them: the harness's own and the Raft-targeted ones.
pub const KINDS: [&str; 15] = [
    "crash",
    "pause",
    "partition",
    "isolate-leader",
    "one-way",
    "bridge",
    "loss",
    "latency",
    "clock",
    "pause-leader",
    "crash-voter",
    "leader-churn",
    "leader-island",
    "reorder",
    "disk-error",
];

/// Fault triggers fired from node events.
const VOTE_GRANTED: &str = "vote-granted";
const NEW_LEADER: &str = "new-leader";
const LEADER_COMMIT: &str = "leader-commit";

/// Faults aimed at Raft's roles.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RaftFault {
    /// Cut the current leader off from every other host.
    IsolateLeader,
    /// Freeze the current leader (a long GC pause), resume it at the end:
    /// when it wakes it still believes it leads.
    PauseLeader,
    /// A crash in an election's most fragile moment: crash the current
    /// leader, then crash the first node that grants a vote in the election
    /// that follows, `delay_ms` after it granted it. Both restart when the
    /// fault ends.
    CrashVoter {
        delay_ms: u64,
        torn_write: bool,
        /// Its torn writes reach the disk damaged (drawn from the seed's
        /// corruption stream, see [`draw_faults`]).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        corrupt: bool,
        /// The seed's bad disk: if the leader or the voter it crashes is
        /// that host, its disk also damages a synced write, as a `crash`
        /// fault's `damage` does (drawn with the seed's damage rate, from a
        /// stream of its own, see [`draw_faults`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bad_disk: Option<BadDisk>,
    },
    /// Leader churn, for Figure 8's interleavings of terms: while the fault
    /// lasts, whoever leads is cut off from the other hosts, either at the
    /// instant it is elected (before its first messages leave: it keeps
    /// taking writes it cannot replicate) or at its first commit (before
    /// the messages of that step leave), drawn per leader, for a hold drawn
    /// from `hold_ms / 2..=hold_ms * 3 / 2`; a leader that outlives its cut
    /// is cut again. Draws come from an RNG seeded with `seed`. With
    /// `bad_disk` (a drawn share of churn faults, see [`draw_faults`]), a
    /// leader that is the seed's bad disk is crashed instead of cut off,
    /// and its disk damages a synced write; like a cut, the next cut ends
    /// its crash.
    LeaderChurn {
        seed: u64,
        hold_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bad_disk: Option<BadDisk>,
    },
    /// A partition that strands the current leader with some clients (an
    /// island, see [`Fault::Island`]): the stranded clients can only reach
    /// the old leader, which believes it leads until its check-quorum
    /// fires; its clock runs `slow_ppm` parts per million slow meanwhile
    /// (a late lease timer).
    LeaderIsland { clients: Vec<u64>, slow_ppm: i64 },
}

/// The one host of a seed whose disk damages synced writes when it
/// crashes, and how (`rot`, `lost-write` or `misdirected-write`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BadDisk {
    pub host: u64,
    pub damage: String,
}

impl BadDisk {
    /// The damage of a crash of `node`.
    fn of(bad: &Option<BadDisk>, node: u64) -> Option<String> {
        bad.as_ref()
            .filter(|b| b.host == node)
            .map(|b| b.damage.clone())
    }
}

/// Draws a Raft-targeted fault of `kind` (the harness draws its own).
pub fn draw_fault(
    kind: &str,
    _: &Targets,
    _: &FaultConfig,
    rng: &mut ChaCha8Rng,
) -> (Fault, Option<u64>) {
    let (f, duration) = match kind {
        "isolate-leader" => (RaftFault::IsolateLeader, None),
        "pause-leader" => (RaftFault::PauseLeader, None),
        "crash-voter" => (
            RaftFault::CrashVoter {
                delay_ms: rng.random_range(0..=10),
                torn_write: rng.random_bool(0.5),
                corrupt: false,
                bad_disk: None,
            },
            None,
        ),
        "leader-churn" => {
            let f = RaftFault::LeaderChurn {
                seed: rng.random(),
                hold_ms: rng.random_range(800..=2_500),
                bad_disk: None,
            };
            // Long enough for several elections.
            (f, Some(rng.random_range(3_000..=8_000)))
        }
        "leader-island" => {
            let clients: Vec<u64> = loop {
                let c: Vec<u64> = (1..=6).filter(|_| rng.random_bool(0.5)).collect();
                if !c.is_empty() {
                    break c;
                }
            };
            let slow_ppm = if rng.random_bool(0.5) {
                0
            } else {
                rng.random_range(100_000..=500_000)
            };
            (RaftFault::LeaderIsland { clients, slow_ppm }, None)
        }
        other => panic!("no such fault kind {other}"),
    };
    (Fault::custom(&f), duration)
}

/// Simpler versions of a Raft-targeted fault, for the shrinker
/// ([`harness::Scenario::simpler`]): a crash-voter or leader-churn fault
/// without the seed's bad disk, a crash-voter without corruption or torn
/// write, a leader island without its slow clock. Each drops one thing, so
/// a shrunk schedule keeps only what its failure needs.
pub fn simpler(fault: &Fault) -> Vec<(Fault, &'static str)> {
    let Some(f) = fault.as_custom::<RaftFault>() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    match f {
        RaftFault::CrashVoter {
            delay_ms,
            torn_write,
            corrupt,
            bad_disk,
        } => {
            let voter = |torn_write, corrupt, bad_disk| RaftFault::CrashVoter {
                delay_ms,
                torn_write,
                corrupt,
                bad_disk,
            };
            if bad_disk.is_some() {
                out.push((voter(torn_write, corrupt, None), "without its bad disk"));
            }
            if corrupt {
                let v = voter(torn_write, false, bad_disk.clone());
                out.push((v, "without corruption"));
            }
            if torn_write {
                let what = if corrupt {
                    "without its torn, corrupt write"
                } else {
                    "without its torn write"
                };
                out.push((voter(false, false, bad_disk), what));
            }
        }
        RaftFault::LeaderChurn {
            seed,
            hold_ms,
            bad_disk: Some(_),
        } => {
            let plain = RaftFault::LeaderChurn {
                seed,
                hold_ms,
                bad_disk: None,
            };
            out.push((plain, "without its bad disk"));
        }
        RaftFault::LeaderIsland { clients, slow_ppm } if slow_ppm != 0 => {
            let plain = RaftFault::LeaderIsland {
                clients,
                slow_ppm: 0,
            };
            out.push((plain, "without its slow clock"));
        }
        _ => {}
    }
    out.into_iter()
        .map(|(f, w)| (Fault::custom(&f), w))
        .collect()
}

/// What the Raft groups of a run report, and what is known from it.
#[derive(Clone)]
pub struct Raft {
    bus: Bus<(u64, NodeEvent)>,
    state: Arc<Mutex<State>>,
    rec: Recorder,
}

#[derive(Default)]
struct State {
    /// One checker per Raft group (terms and indexes are per group).
    checkers: BTreeMap<u64, RaftChecker>,
    /// host -> its Raft group.
    groups: BTreeMap<u64, u64>,
    /// Latest (term, role) per host, for faults aimed at the leader.
    roles: BTreeMap<u64, (u64, raft::Role)>,
}

/// A node's events that come by the thousand in a run (nine in ten of a
/// checkout seed's): every commit, applied entry and read. Only reports and
/// trace hashes read them from the history (the Raft checks follow them on
/// the bus), so a run without detail does not record them
/// (`Recorder::keeps_detail`).
fn bulky(ev: &NodeEvent) -> bool {
    matches!(
        ev,
        NodeEvent::Commit { .. }
            | NodeEvent::Applied { .. }
            | NodeEvent::ReadArrived { .. }
            | NodeEvent::ReadServed { .. }
    )
}

impl Raft {
    /// Node events of this run go, in this order, to the fault triggers,
    /// the Raft checks (reported as check `raft`) and the history.
    pub fn new(ctx: &RunCtx) -> Raft {
        let r = Raft {
            bus: Bus::new(),
            state: Arc::default(),
            rec: ctx.rec.clone(),
        };
        let (state, triggers) = (r.state.clone(), ctx.triggers.clone());
        r.bus.subscribe(move |(node, ev)| {
            let fire = |what| triggers.fire(what, *node);
            match ev {
                NodeEvent::Role { term, role, .. } => {
                    state.lock().unwrap().roles.insert(*node, (*term, *role));
                    if *role == raft::Role::Leader {
                        fire(NEW_LEADER);
                    }
                }
                NodeEvent::Promised { vote, .. } if vote.is_some_and(|v| v != *node) => {
                    fire(VOTE_GRANTED)
                }
                NodeEvent::Commit { .. } => {
                    let leads = state
                        .lock()
                        .unwrap()
                        .roles
                        .get(node)
                        .is_some_and(|(_, r)| *r == raft::Role::Leader);
                    if leads {
                        fire(LEADER_COMMIT);
                    }
                }
                _ => {}
            }
        });
        let state = r.state.clone();
        r.bus.subscribe(move |(node, ev)| {
            let mut g = state.lock().unwrap();
            let group = g.groups.get(node).copied().unwrap_or(0);
            let checker = g.checkers.entry(group).or_default();
            count(checker, ev);
            checker.observe(*node, ev);
        });
        let rec = ctx.rec.clone();
        let detail = rec.keeps_detail();
        r.bus.subscribe(move |(node, ev)| {
            if !detail && bulky(ev) {
                return;
            }
            let (f, value) = ev.to_json();
            rec.event(&format!("n{node}"), f, value);
        });
        let state = r.state.clone();
        ctx.checks.add("raft", move || {
            let g = state.lock().unwrap();
            g.checkers
                .values()
                .flat_map(|c| c.violations.iter().cloned())
                .collect()
        });
        r
    }

    /// The host that most recently became leader of the highest term.
    pub fn leader(&self) -> Option<u64> {
        let g = self.state.lock().unwrap();
        g.roles
            .iter()
            .filter(|(_, (_, r))| *r == raft::Role::Leader)
            .max_by_key(|(_, (t, _))| *t)
            .map(|(n, _)| *n)
    }

    /// Adds one Raft KV group on the hosts `ids`; inside the group its
    /// replicas are numbered 1, 2, ... Returns the group's peer map
    /// (group-local id -> address), what a client needs.
    pub fn add_group(
        &self,
        sim: &mut Sim,
        ids: &[u64],
        bugs: Bugs,
        seed: u64,
        max_batch: usize,
        snapshot_every: u64,
    ) -> BTreeMap<u64, String> {
        let peers: BTreeMap<u64, String> = ids
            .iter()
            .enumerate()
            .map(|(i, &g)| (i as u64 + 1, addr(g, PORT)))
            .collect();
        for (i, &global) in ids.iter().enumerate() {
            let id = i as u64 + 1;
            self.state.lock().unwrap().groups.insert(global, ids[0]);
            let mut cfg = NodeConfig::new(id, peers.clone(), seed.wrapping_add(global));
            cfg.bugs = bugs;
            cfg.snapshot_every = snapshot_every;
            cfg.rpc_timeout = Duration::from_millis(200);
            cfg.max_batch = max_batch;
            // Events carry the host's id.
            let (bus, offset) = (self.bus.clone(), global - id);
            let sink: EventSink = Arc::new(move |local, ev| bus.emit(&(local + offset, ev)));
            let rec = self.rec.clone();
            sim.host(global, format!("n{global}"), move |env| {
                let (mut cfg, sink, rec) = (cfg.clone(), sink.clone(), rec.clone());
                cfg.net = env.net.clone();
                async move {
                    let r = serve(
                        cfg,
                        Arc::new(env.disk),
                        env.clock,
                        Some(sink),
                        std::future::pending(),
                    )
                    .await;
                    let Err(e) = r else { return };
                    // An I/O error, not data the node cannot read (that
                    // one stops it for good).
                    let io = e.chain().any(|c| {
                        c.downcast_ref::<std::io::Error>()
                            .is_some_and(|e| e.kind() != std::io::ErrorKind::InvalidData)
                    });
                    if !io {
                        panic!("node {global} stopped: {e:#}");
                    }
                    // Fail-stop on an I/O error (after a failed fsync the
                    // page cache is in an unknown state); the supervisor
                    // starts the node again from its disk.
                    harness::hostio::coverage::hit("node: stopped on an I/O error, restarted");
                    rec.event(
                        &format!("n{global}"),
                        "stopped",
                        serde_json::json!({ "error": format!("{e:#}") }),
                    );
                    env.supervisor.restart_after(Duration::from_secs(1));
                    std::future::pending::<()>().await;
                }
            });
        }
        peers
    }
}

/// The fault schedule of a bookstore seed: [`Draw::faults`] over
/// [`KINDS`], then damaged torn writes for `crash-voter` faults too, as the
/// harness draws them for `crash` (`FaultConfig::corrupt_rate`), from a
/// stream of the seed of their own, so every other draw stays as it was;
/// and damaged synced writes (`FaultConfig::damage_rate`) for the crashes
/// of the seed's one bad disk, the host whose `crash` faults the harness
/// damaged (or, without one, a host drawn), from a stream of their own.
pub fn draw_faults(
    d: &mut Draw,
    seed: u64,
    selection: &FaultSelection,
    targets: &Targets,
    duration_ms: u64,
) -> (FaultConfig, Vec<FaultEvent>) {
    draw_faults_with(
        d,
        seed,
        selection,
        targets,
        duration_ms,
        &KINDS,
        &draw_fault,
    )
}

/// [`draw_faults`] for a scenario with kinds of its own beyond [`KINDS`]:
/// `kinds` lists them all, `custom` draws the scenario's (and passes the
/// Raft ones to [`draw_fault`]).
pub fn draw_faults_with(
    d: &mut Draw,
    seed: u64,
    selection: &FaultSelection,
    targets: &Targets,
    duration_ms: u64,
    kinds: &[&str],
    custom: harness::schedule::DrawCustom<'_>,
) -> (FaultConfig, Vec<FaultEvent>) {
    let (config, mut faults) = d.faults(kinds, selection, targets, duration_ms, custom);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x00c0_4407_e570_u64);
    for f in faults.iter_mut() {
        if let Some(RaftFault::CrashVoter {
            delay_ms,
            torn_write: true,
            ..
        }) = f.fault.as_custom::<RaftFault>()
        {
            let corrupt = rng.random_bool(config.corrupt_rate);
            f.fault = Fault::custom(&RaftFault::CrashVoter {
                delay_ms,
                torn_write: true,
                corrupt,
                bad_disk: None,
            });
        }
    }
    // Crash-voter and leader-churn faults crash whoever leads (and votes)
    // then: in a drawn share of them, if that is the seed's bad disk, its
    // synced writes are damaged too (only that host's, so a majority of
    // every group stays healthy). A node whose acknowledged entries are
    // lost this way votes in the elections that follow, with its floor.
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0000_bad0_d15c_u64);
    if config.damage_rate > 0.0 && targets.hosts > 0 {
        let damaged = faults.iter().find_map(|f| match &f.fault {
            Fault::Crash {
                node,
                damage: Some(_),
                ..
            } => Some(*node),
            _ => None,
        });
        let host = damaged.unwrap_or_else(|| rng.random_range(1..=targets.hosts));
        for f in faults.iter_mut() {
            let Some(mut rf) = f.fault.as_custom::<RaftFault>() else {
                continue;
            };
            if let RaftFault::CrashVoter {
                bad_disk: slot @ None,
                ..
            }
            | RaftFault::LeaderChurn {
                bad_disk: slot @ None,
                ..
            } = &mut rf
            {
                if rng.random_bool(config.damage_rate) {
                    let kinds = harness::hostio::disk::Damage::ALL;
                    let damage = kinds[rng.random_range(0..kinds.len())].name().to_string();
                    *slot = Some(BadDisk { host, damage });
                    f.fault = Fault::custom(&rf);
                }
            }
        }
    }
    (config, faults)
}

/// Whether seed `s` draws faults of any of `kinds`.
pub fn has_kind(s: &Schedule, kinds: &[&str]) -> bool {
    s.config.kinds.iter().any(|k| kinds.contains(&k.as_str()))
}

fn crashes(s: &Schedule) -> bool {
    has_kind(s, &["crash", "crash-voter"])
}

fn corrupts(s: &Schedule) -> bool {
    crashes(s) && s.config.corrupt_rate > 0.0
}

/// Seeds whose crashes may damage synced data (a seed with leader churn
/// but no crash kind is left out, as before churn could crash: a floor
/// over fewer seeds than reach it is conservative).
fn damages(s: &Schedule) -> bool {
    crashes(s) && s.config.damage_rate > 0.0
}

/// Coverage floors of the Raft and KV paths, shared by the bookstore's
/// scenarios: each is about half the share measured on a sweep of every
/// fault kind, and applies only to seeds whose faults can reach it.
pub fn floors() -> Vec<Floor> {
    vec![
        Floor::new("raft: a snapshot taken", 0.4),
        Floor::new("raft: a snapshot installed on a follower", 0.25),
        Floor::new("raft: a node restarted from its snapshot", 0.2).when(crashes),
        Floor::new("raft: a torn WAL tail cut on recovery", 0.1).when(crashes),
        Floor::new("storage: a corrupt WAL record cut on recovery", 0.05).when(corrupts),
        Floor::new(
            "raft: a node lost acknowledged entries to damage (votes with a floor)",
            0.15,
        )
        .when(damages),
        Floor::new("raft: a new leader with entries not yet committed", 0.5),
        // A deposed leader's proposals answered when a snapshot overtakes
        // them (kv 24 %, txn 35 %, checkout 22-27 % of the seeds).
        Floor::new("raft: a proposal overtaken by an installed snapshot", 0.1),
        Floor::new("kv: a retried write answered from the session table", 0.35),
        Floor::new(
            "client: a write of unknown outcome settled by its retry",
            0.5,
        ),
        Floor::new(
            "raft: a stale Append (duplicated or overtaken) on a longer log",
            0.4,
        )
        .when(|s| has_kind(s, &["reorder"])),
        Floor::new("node: stopped on an I/O error, restarted", 0.3)
            .when(|s| has_kind(s, &["disk-error"])),
        // The faults themselves, so that a fault no longer injected shows
        // (about half the lowest share of kv, txn and checkout: 300 seeds
        // per checkout mode with every kind, EIO 34-36 %, ENOSPC 11-12 %,
        // rot 9 %, lost 7 %, misdirected 12-13 % of the seeds with damage,
        // duplicated and held back 68-69 %; kv and txn reach each more).
        Floor::new("disk: EIO returned to a write or sync", 0.15)
            .when(|s| has_kind(s, &["disk-error"])),
        Floor::new("disk: ENOSPC returned to a write", 0.05).when(|s| has_kind(s, &["disk-error"])),
        Floor::new("disk: a bit of a synced write rotted", 0.03).when(damages),
        Floor::new("disk: a synced write lost", 0.03).when(damages),
        Floor::new("disk: a synced write misdirected", 0.05).when(damages),
        Floor::new("net: a message duplicated", 0.3).when(|s| has_kind(s, &["reorder"])),
        Floor::new("net: a message held back, later ones overtaking it", 0.3)
            .when(|s| has_kind(s, &["reorder"])),
    ]
}

/// Coverage: the Raft paths worth reaching, as the events show them
/// (`checker` holds what the group committed before this event).
fn count(checker: &RaftChecker, ev: &NodeEvent) {
    use harness::hostio::coverage::{hit, sometimes};
    match ev {
        NodeEvent::SnapshotInstalled { .. } => hit("raft: a snapshot installed on a follower"),
        NodeEvent::Recovered {
            snapshot_index,
            cut_bytes,
            damaged,
            floor,
            ..
        } => {
            sometimes(
                *snapshot_index > 0,
                "raft: a node restarted from its snapshot",
            );
            sometimes(*cut_bytes > 0, "raft: a torn WAL tail cut on recovery");
            sometimes(
                *damaged,
                "raft: a node recovered from damaged synced records",
            );
            sometimes(
                floor.is_some(),
                "raft: a node lost acknowledged entries to damage (votes with a floor)",
            );
        }
        NodeEvent::Elected { last_index, .. } => {
            sometimes(
                *last_index > checker.max_commit(),
                "raft: a new leader with entries not yet committed",
            );
        }
        _ => {}
    }
}

/// Plays [`RaftFault`]s: each turns into one of the harness's faults aimed
/// at whoever leads when it starts, or waits for node events.
pub struct RaftFaults(pub Raft);

/// Leader churn's trigger: each leader is cut off at the instant of its
/// election or at its first commit, half and half.
fn churn_hook(sim: &Sim, seed: u64, hold_ms: u64) -> OnFire {
    // Leaders waiting for their first commit, with their holds.
    let state = Mutex::new((ChaCha8Rng::seed_from_u64(seed), BTreeMap::<u64, u64>::new()));
    let isolate = sim.isolate_now();
    Arc::new(move |what, node| {
        let mut g = state.lock().unwrap();
        let (rng, at_commit) = &mut *g;
        match what {
            NEW_LEADER => {
                let hold = rng.random_range(hold_ms / 2..=hold_ms * 3 / 2);
                if rng.random_bool(0.5) {
                    isolate(node);
                    Some((0, Some(hold)))
                } else {
                    at_commit.insert(node, hold);
                    None
                }
            }
            LEADER_COMMIT => {
                let hold = at_commit.remove(&node)?;
                isolate(node);
                Some((0, Some(hold)))
            }
            _ => None,
        }
    })
}

impl FaultPlugin for RaftFaults {
    fn start(&self, _fid: usize, fault: &Fault, sim: &Sim) -> Started {
        let leader = self.0.leader();
        let nothing = Started {
            apply: None,
            arm: None,
        };
        let Some(f) = fault.as_custom::<RaftFault>() else {
            return nothing;
        };
        match f {
            RaftFault::IsolateLeader => Started {
                apply: Some(match leader {
                    Some(l) => sim.isolation(l),
                    None => Fault::Partition { groups: vec![] },
                }),
                arm: None,
            },
            RaftFault::PauseLeader => Started {
                apply: leader.map(|l| Fault::Pause { node: l }),
                arm: None,
            },
            RaftFault::CrashVoter {
                delay_ms,
                torn_write,
                corrupt,
                bad_disk,
            } => Started {
                // The leader now; the voter when it votes (see `part`).
                apply: leader.map(|l| Fault::Crash {
                    node: l,
                    torn_write,
                    corrupt,
                    damage: BadDisk::of(&bad_disk, l),
                }),
                arm: Some(Arm {
                    on: vec![VOTE_GRANTED],
                    hook: Arc::new(move |_, _| Some((delay_ms, None))),
                    once: true,
                    one_part_at_a_time: false,
                    fire_now: None,
                }),
            },
            RaftFault::LeaderChurn { seed, hold_ms, .. } => Started {
                apply: None,
                arm: Some(Arm {
                    on: vec![NEW_LEADER, LEADER_COMMIT],
                    hook: churn_hook(sim, seed, hold_ms),
                    once: false,
                    // A churn cuts one leader at a time: the next cut
                    // releases the previous one.
                    one_part_at_a_time: true,
                    // It starts with the current leader (unless an
                    // earlier churn has it).
                    fire_now: leader.map(|l| (NEW_LEADER, l)),
                }),
            },
            RaftFault::LeaderIsland { clients, slow_ppm } => Started {
                apply: leader.map(|l| Fault::Island {
                    node: l,
                    clients,
                    slow_ppm,
                }),
                arm: None,
            },
        }
    }

    fn part(&self, fault: &Fault, node: u64, sim: &Sim) -> Option<Fault> {
        match fault.as_custom::<RaftFault>()? {
            RaftFault::CrashVoter {
                torn_write,
                corrupt,
                bad_disk,
                ..
            } => Some(Fault::Crash {
                node,
                torn_write,
                corrupt,
                damage: BadDisk::of(&bad_disk, node),
            }),
            RaftFault::LeaderChurn { bad_disk, .. } => match BadDisk::of(&bad_disk, node) {
                Some(damage) => Some(Fault::Crash {
                    node,
                    torn_write: false,
                    corrupt: false,
                    damage: Some(damage),
                }),
                None => Some(sim.isolation(node)),
            },
            _ => None,
        }
    }

    fn refire(&self, fault: &Fault, node: u64) -> Option<&'static str> {
        // A leader that outlived its cut (not a crashed one: it restarts a
        // follower).
        let cut = matches!(
            fault.as_custom::<RaftFault>(),
            Some(RaftFault::LeaderChurn { bad_disk, .. }) if BadDisk::of(&bad_disk, node).is_none()
        );
        (cut && self.0.leader() == Some(node)).then_some(NEW_LEADER)
    }
}

/// The bugs `--bug` accepts in the bookstore's scenarios.
pub fn bugs_of(s: &Schedule) -> Bugs {
    match &s.bug {
        Some(b) => Bugs::from_name(b).expect("bug names are validated by the CLI"),
        None => Bugs::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each option drops one thing, comes back as the same kind, never
    /// leaves corruption without its torn write, and following the first
    /// option again and again ends with nothing left to drop.
    #[test]
    fn simpler_raft_faults_drop_one_thing_at_a_time() {
        let bad = Some(BadDisk {
            host: 2,
            damage: "rot".into(),
        });
        let faults = [
            RaftFault::CrashVoter {
                delay_ms: 3,
                torn_write: true,
                corrupt: true,
                bad_disk: bad.clone(),
            },
            RaftFault::LeaderChurn {
                seed: 7,
                hold_ms: 900,
                bad_disk: bad,
            },
            RaftFault::LeaderIsland {
                clients: vec![1, 3],
                slow_ppm: 200_000,
            },
        ];
        let counts: Vec<usize> = faults
            .iter()
            .map(|f| simpler(&Fault::custom(f)).len())
            .collect();
        assert_eq!(counts, [3, 1, 1]);
        for f in faults {
            let mut fault = Fault::custom(&f);
            let mut steps = 0;
            loop {
                let options = simpler(&fault);
                for (g, _) in &options {
                    let back: RaftFault = g.as_custom().expect("a Raft fault");
                    assert_eq!(g.kind(), fault.kind());
                    assert_ne!(*g, fault);
                    if let RaftFault::CrashVoter {
                        torn_write,
                        corrupt,
                        ..
                    } = back
                    {
                        assert!(torn_write || !corrupt, "{g:?}");
                    }
                }
                let Some((next, _)) = options.into_iter().next() else {
                    break;
                };
                fault = next;
                steps += 1;
            }
            let last: RaftFault = fault.as_custom().unwrap();
            let plain = match &last {
                RaftFault::CrashVoter {
                    torn_write,
                    corrupt,
                    bad_disk,
                    ..
                } => !torn_write && !corrupt && bad_disk.is_none(),
                RaftFault::LeaderChurn { bad_disk, .. } => bad_disk.is_none(),
                RaftFault::LeaderIsland { slow_ppm, .. } => *slow_ppm == 0,
                _ => false,
            };
            assert!(plain && steps >= 1, "{last:?} after {steps} steps");
        }
    }
}
