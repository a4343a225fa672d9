//! What a run does, as data: the cluster size, the workload's bounds and the
//! fault schedule. Drawn from the seed (swarm testing: each seed picks which
//! fault kinds are on and their rates), printed at start, written to a file
//! on failure, shrunk by dropping and shortening faults, and replayed with
//! `sim run --schedule FILE`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// One fault. Each is undone ("healed") when its duration ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fault {
    /// Kill the node (unsynced writes are lost; `torn_write` may keep part
    /// of the last unsynced write), restart it when the fault ends.
    Crash { node: u64, torn_write: bool },
    /// Freeze the node (it keeps its state), resume it at the end.
    Pause { node: u64 },
    /// Nodes in different groups cannot talk.
    Partition { groups: Vec<Vec<u64>> },
    /// Cut the current leader off from every other node.
    IsolateLeader,
    /// Messages from `from` to `to` are lost; the other direction works.
    OneWay { from: u64, to: u64 },
    /// `left` and `right` cannot talk; `bridge` talks to both.
    Bridge {
        bridge: u64,
        left: Vec<u64>,
        right: Vec<u64>,
    },
    /// Every message is lost with this probability.
    Loss { rate: f64 },
    /// Every message is delayed by a uniform latency in this range.
    Latency { min_ms: u64, max_ms: u64 },
    /// The node's clock is moved by `offset_ms` (a step), then back.
    ClockJump { node: u64, offset_ms: i64 },
    /// The node's clock runs `ppm` parts per million fast (or slow).
    ClockDrift { node: u64, ppm: i64 },
    /// Freeze the current leader (a long GC pause), resume it at the end:
    /// when it wakes it still believes it leads.
    PauseLeader,
    /// A crash in an election's most fragile moment: crash the current
    /// leader, then crash the first node that grants a vote in the election
    /// that follows, `delay_ms` after it granted it. Both restart when the
    /// fault ends.
    CrashVoter { delay_ms: u64, torn_write: bool },
    /// Leader churn, for Figure 8's interleavings of terms: while the fault
    /// lasts, whoever leads is cut off from the other nodes, either at the
    /// instant it is elected (before its first messages leave: it keeps
    /// taking writes it cannot replicate) or at its first commit (before
    /// the messages of that step leave), drawn per leader, for a hold drawn
    /// from `hold_ms / 2..=hold_ms * 3 / 2`; a leader that outlives its cut
    /// is cut again. Draws come from an RNG seeded with `seed`.
    LeaderChurn { seed: u64, hold_ms: u64 },
    /// A partition that strands the current leader with some clients: the
    /// leader and the clients listed (by number; absent ones are ignored)
    /// on one side, every other node and client on the other. The
    /// stranded clients can only reach the old leader, which believes it
    /// leads until its check-quorum fires; its clock runs `slow_ppm` parts
    /// per million slow meanwhile (a late lease timer).
    LeaderIsland { clients: Vec<u64>, slow_ppm: i64 },
    /// What a `leader-island` did: `node` and `clients` on one side.
    Island {
        node: u64,
        clients: Vec<u64>,
        slow_ppm: i64,
    },
}

impl Fault {
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Crash { .. } => FaultKind::Crash,
            Fault::Pause { .. } => FaultKind::Pause,
            Fault::Partition { .. } => FaultKind::Partition,
            Fault::IsolateLeader => FaultKind::IsolateLeader,
            Fault::OneWay { .. } => FaultKind::OneWay,
            Fault::Bridge { .. } => FaultKind::Bridge,
            Fault::Loss { .. } => FaultKind::Loss,
            Fault::Latency { .. } => FaultKind::Latency,
            Fault::ClockJump { .. } | Fault::ClockDrift { .. } => FaultKind::Clock,
            Fault::PauseLeader => FaultKind::PauseLeader,
            Fault::CrashVoter { .. } => FaultKind::CrashVoter,
            Fault::LeaderChurn { .. } => FaultKind::LeaderChurn,
            Fault::LeaderIsland { .. } | Fault::Island { .. } => FaultKind::LeaderIsland,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    Crash,
    Pause,
    Partition,
    IsolateLeader,
    OneWay,
    Bridge,
    Loss,
    Latency,
    Clock,
    PauseLeader,
    CrashVoter,
    LeaderChurn,
    LeaderIsland,
}

pub const ALL_KINDS: [FaultKind; 13] = [
    FaultKind::Crash,
    FaultKind::Pause,
    FaultKind::Partition,
    FaultKind::IsolateLeader,
    FaultKind::OneWay,
    FaultKind::Bridge,
    FaultKind::Loss,
    FaultKind::Latency,
    FaultKind::Clock,
    FaultKind::PauseLeader,
    FaultKind::CrashVoter,
    FaultKind::LeaderChurn,
    FaultKind::LeaderIsland,
];

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::IsolateLeader => "isolate-leader",
            FaultKind::OneWay => "one-way",
            FaultKind::Bridge => "bridge",
            FaultKind::Loss => "loss",
            FaultKind::Latency => "latency",
            FaultKind::Clock => "clock",
            FaultKind::PauseLeader => "pause-leader",
            FaultKind::CrashVoter => "crash-voter",
            FaultKind::LeaderChurn => "leader-churn",
            FaultKind::LeaderIsland => "leader-island",
        }
    }

    pub fn by_name(s: &str) -> Option<FaultKind> {
        ALL_KINDS.iter().copied().find(|k| k.name() == s)
    }
}

/// Which fault kinds a run may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultSelection {
    /// Each seed draws its own subset (swarm testing).
    Swarm,
    /// Exactly these, on every seed.
    Only(BTreeSet<FaultKind>),
}

impl FaultSelection {
    /// Parses `swarm`, `all`, `none` or a comma-separated list of kinds.
    pub fn parse(s: &str) -> Result<FaultSelection, String> {
        match s {
            "swarm" => Ok(FaultSelection::Swarm),
            "all" => Ok(FaultSelection::Only(ALL_KINDS.into_iter().collect())),
            "none" => Ok(FaultSelection::Only(BTreeSet::new())),
            list => list
                .split(',')
                .map(|k| {
                    FaultKind::by_name(k.trim()).ok_or_else(|| {
                        let names: Vec<&str> = ALL_KINDS.iter().map(|k| k.name()).collect();
                        format!(
                            "unknown fault kind '{k}': use swarm, all, none or a list of {}",
                            names.join(", ")
                        )
                    })
                })
                .collect::<Result<_, _>>()
                .map(FaultSelection::Only),
        }
    }
}

/// The fault rates a seed drew.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultConfig {
    pub kinds: BTreeSet<FaultKind>,
    /// Mean time between the starts of two faults.
    pub mean_interval_ms: u64,
    /// Mean duration of a fault.
    pub mean_duration_ms: u64,
    pub max_loss_rate: f64,
    pub max_latency_ms: u64,
    pub max_clock_jump_ms: i64,
    pub max_drift_ppm: i64,
}

impl fmt::Display for FaultConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds: Vec<&str> = self.kinds.iter().map(|k| k.name()).collect();
        write!(
            f,
            "faults [{}] every ~{} ms for ~{} ms; loss <= {:.2}, latency <= {} ms, clock jumps <= {} ms, drift <= {} ppm",
            kinds.join(" "),
            self.mean_interval_ms,
            self.mean_duration_ms,
            self.max_loss_rate,
            self.max_latency_ms,
            self.max_clock_jump_ms,
            self.max_drift_ppm
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultEvent {
    pub at_ms: u64,
    pub duration_ms: u64,
    pub fault: Fault,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub scenario: String,
    pub seed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bug: Option<String>,
    pub nodes: u64,
    pub clients: u64,
    pub keys: u64,
    /// Each client stops after this many operations (or at the end of the
    /// workload phase).
    pub ops_per_client: u64,
    /// Length of the workload phase, during which faults happen.
    pub duration_ms: u64,
    /// Most entries in one Raft Append message. Drawn per seed: the system
    /// must be correct with any, and small batches let a follower
    /// acknowledge a new leader's older entries before its no-op (Figure 8).
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    pub config: FaultConfig,
    pub faults: Vec<FaultEvent>,
    /// Scenario `kv`: how fast clients issue operations. Absent in schedules
    /// written before it was drawn: back to back.
    #[serde(default, skip_serializing_if = "Pacing::is_back_to_back")]
    pub pacing: Pacing,
    /// Scenario `checkout`: `saga` or `2pc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Scenario `checkout`: `consistency` or `mix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
}

/// Hosts of scenario `checkout`: three store groups of three (1-3 stock,
/// 4-6 payment, 7-9 orders), then two replicas of each service (10-11
/// stock, 12-13 payment, 14-15 orders). Faults pick among all of them.
pub const CHECKOUT_HOSTS: u64 = 15;

impl Schedule {
    /// Draws everything from the seed.
    pub fn generate(
        scenario: &str,
        seed: u64,
        bug: Option<&str>,
        selection: &FaultSelection,
    ) -> Schedule {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_5c4e_du64);
        let nodes = if rng.random_bool(0.7) { 3 } else { 5 };
        let nodes = if scenario == "checkout" {
            CHECKOUT_HOSTS
        } else {
            nodes
        };
        let kinds: BTreeSet<FaultKind> = match selection {
            FaultSelection::Only(k) => k.clone(),
            FaultSelection::Swarm => loop {
                let k: BTreeSet<FaultKind> = ALL_KINDS
                    .into_iter()
                    .filter(|_| rng.random_bool(0.5))
                    .collect();
                if !k.is_empty() {
                    break k;
                }
            },
        };
        let config = FaultConfig {
            kinds: kinds.clone(),
            mean_interval_ms: rng.random_range(300..2_000),
            mean_duration_ms: rng.random_range(200..3_000),
            max_loss_rate: rng.random_range(0.02..0.3),
            max_latency_ms: rng.random_range(10..300),
            max_clock_jump_ms: rng.random_range(100..5_000),
            max_drift_ppm: rng.random_range(1_000..200_000),
        };
        let duration_ms = 20_000;
        let kinds: Vec<FaultKind> = kinds.into_iter().collect();
        let mut faults = Vec::new();
        let mut t = 500u64;
        while !kinds.is_empty() {
            // Exponential gaps: bursts and lulls.
            let u: f64 = rng.random_range(0.0001..1.0);
            t += (-(u.ln()) * config.mean_interval_ms as f64) as u64;
            if t >= duration_ms {
                break;
            }
            let mut d = rng.random_range(config.mean_duration_ms / 2..=config.mean_duration_ms * 2);
            let kind = kinds[rng.random_range(0..kinds.len())];
            let fault = draw_fault(kind, nodes, &config, &mut rng);
            if kind == FaultKind::LeaderChurn {
                // Long enough for several elections.
                d = rng.random_range(3_000..=8_000);
            }
            faults.push(FaultEvent {
                at_ms: t,
                duration_ms: d,
                fault,
            });
        }
        let clients = rng.random_range(3..=6);
        let (mode, workload, clients) = if scenario == "checkout" {
            let mode = if rng.random_bool(0.5) { "saga" } else { "2pc" };
            let workload = if rng.random_bool(0.5) {
                "consistency"
            } else {
                "mix"
            };
            // 1000 checkouts need enough concurrency to finish in time.
            let clients = if workload == "consistency" {
                rng.random_range(16..=64)
            } else {
                rng.random_range(4..=24)
            };
            (Some(mode.to_string()), Some(workload.to_string()), clients)
        } else {
            (None, None, clients)
        };
        let pacing = if scenario == "kv" {
            Pacing::draw(seed, duration_ms)
        } else {
            Pacing::default()
        };
        Schedule {
            scenario: scenario.to_string(),
            seed,
            pacing,
            bug: bug.map(str::to_string),
            nodes,
            mode,
            workload,
            clients,
            keys: rng.random_range(1..=4),
            ops_per_client: 10_000,
            duration_ms,
            max_batch: [1, 2, 4, 64][rng.random_range(0..4)],
            config,
            faults,
        }
    }
}

/// How fast the clients of scenario `kv` issue operations (Jepsen's
/// `stagger`, with load spikes). Outside the busy windows a client pauses
/// for a time drawn uniformly from 0 to twice `think_ms` before each
/// operation; inside them, and everywhere when `think_ms` is 0, clients work
/// back to back. Drawn per seed: sparse load explores more fault schedules
/// per wall-clock second, the bursts keep contention, queueing and retry
/// storms in every seed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Pacing {
    /// Mean pause before an operation outside busy windows; 0: no pauses.
    pub think_ms: u64,
    /// Windows of back-to-back load, by start, as `[at_ms, duration_ms]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub busy: Vec<(u64, u64)>,
}

impl Pacing {
    /// Clients that never pause (`Pacing::default()`).
    pub fn is_back_to_back(&self) -> bool {
        self.think_ms == 0
    }

    /// From the seed's own stream, so that adding it left every other draw
    /// of a seed as it was.
    fn draw(seed: u64, duration_ms: u64) -> Pacing {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7410_c11e_a7u64);
        let log_uniform = |rng: &mut ChaCha8Rng, lo: f64, hi: f64| {
            (lo * (hi / lo).powf(rng.random_range(0.0..1.0))) as u64
        };
        let think_ms = log_uniform(&mut rng, 300.0, 5_000.0);
        let mean_gap = log_uniform(&mut rng, 5_000.0, 20_000.0) as f64;
        let mut busy = Vec::new();
        let mut t = 0u64;
        loop {
            let u: f64 = rng.random_range(0.0001..1.0);
            t += (-(u.ln()) * mean_gap) as u64;
            if t >= duration_ms {
                break;
            }
            let d = rng.random_range(200..=1_500);
            busy.push((t, d));
            t += d;
        }
        Pacing { think_ms, busy }
    }

    /// How long a client at `now_ms` (since the workload began) pauses
    /// before its next operation, given a drawn pause `drawn_ms`: not at all
    /// inside a busy window, and never past the start of the next one.
    pub fn pause_ms(&self, now_ms: u64, drawn_ms: u64) -> u64 {
        if self.think_ms == 0 {
            return 0;
        }
        let mut pause = drawn_ms;
        for &(at, d) in &self.busy {
            if now_ms >= at && now_ms < at + d {
                return 0;
            }
            if at > now_ms {
                pause = pause.min(at - now_ms);
                break;
            }
        }
        pause
    }
}

impl fmt::Display for Pacing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.think_ms == 0 {
            return write!(f, "clients back to back");
        }
        write!(
            f,
            "clients pause 0..{} ms (mean {}) before each operation, back to back in {} busy windows",
            2 * self.think_ms,
            self.think_ms,
            self.busy.len()
        )?;
        let w: Vec<String> = self
            .busy
            .iter()
            .map(|(at, d)| format!("{at}+{d}"))
            .collect();
        if !w.is_empty() {
            write!(f, " (ms: {})", w.join(" "))?;
        }
        Ok(())
    }
}

/// What schedules written before `max_batch` was drawn ran with.
pub fn default_max_batch() -> usize {
    64
}

fn draw_fault(kind: FaultKind, nodes: u64, c: &FaultConfig, rng: &mut ChaCha8Rng) -> Fault {
    let node = |rng: &mut ChaCha8Rng| rng.random_range(1..=nodes);
    let shuffled = |rng: &mut ChaCha8Rng| {
        let mut ids: Vec<u64> = (1..=nodes).collect();
        for i in (1..ids.len()).rev() {
            ids.swap(i, rng.random_range(0..=i));
        }
        ids
    };
    match kind {
        FaultKind::Crash => Fault::Crash {
            node: node(rng),
            torn_write: rng.random_bool(0.5),
        },
        FaultKind::Pause => Fault::Pause { node: node(rng) },
        FaultKind::Partition => {
            let ids = shuffled(rng);
            let cut = rng.random_range(1..ids.len());
            let (a, b) = ids.split_at(cut);
            let (mut a, mut b) = (a.to_vec(), b.to_vec());
            a.sort();
            b.sort();
            Fault::Partition { groups: vec![a, b] }
        }
        FaultKind::IsolateLeader => Fault::IsolateLeader,
        FaultKind::OneWay => {
            let ids = shuffled(rng);
            Fault::OneWay {
                from: ids[0],
                to: ids[1],
            }
        }
        FaultKind::Bridge => {
            let ids = shuffled(rng);
            let rest = &ids[1..];
            let (l, r) = rest.split_at(rest.len() / 2);
            let (mut l, mut r) = (l.to_vec(), r.to_vec());
            l.sort();
            r.sort();
            Fault::Bridge {
                bridge: ids[0],
                left: l,
                right: r,
            }
        }
        FaultKind::Loss => Fault::Loss {
            rate: (rng.random_range(0.2..1.0) * c.max_loss_rate * 100.0).round() / 100.0,
        },
        FaultKind::Latency => {
            let max = rng.random_range(5..=c.max_latency_ms.max(6));
            Fault::Latency {
                min_ms: max / 4,
                max_ms: max,
            }
        }
        FaultKind::PauseLeader => Fault::PauseLeader,
        FaultKind::CrashVoter => Fault::CrashVoter {
            delay_ms: rng.random_range(0..=10),
            torn_write: rng.random_bool(0.5),
        },
        FaultKind::LeaderChurn => Fault::LeaderChurn {
            seed: rng.random(),
            hold_ms: rng.random_range(800..=2_500),
        },
        FaultKind::LeaderIsland => {
            let clients: Vec<u64> = loop {
                let c: Vec<u64> = (1..=6).filter(|_| rng.random_bool(0.5)).collect();
                if !c.is_empty() {
                    break c;
                }
            };
            Fault::LeaderIsland {
                clients,
                slow_ppm: if rng.random_bool(0.5) {
                    0
                } else {
                    rng.random_range(100_000..=500_000)
                },
            }
        }
        FaultKind::Clock => {
            if rng.random_bool(0.5) {
                let m = c.max_clock_jump_ms;
                Fault::ClockJump {
                    node: node(rng),
                    offset_ms: rng.random_range(-m..=m),
                }
            } else {
                let m = c.max_drift_ppm;
                Fault::ClockDrift {
                    node: node(rng),
                    ppm: rng.random_range(-m.min(400_000)..=m),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_schedule_and_others_differ() {
        let a = Schedule::generate("kv", 7, None, &FaultSelection::Swarm);
        assert_eq!(a, Schedule::generate("kv", 7, None, &FaultSelection::Swarm));
        assert_ne!(a, Schedule::generate("kv", 8, None, &FaultSelection::Swarm));
    }

    #[test]
    fn all_selects_every_kind_and_the_schedule_round_trips_through_json() {
        let s = Schedule::generate(
            "kv",
            3,
            Some("stale-read"),
            &FaultSelection::parse("all").unwrap(),
        );
        assert_eq!(s.config.kinds.len(), ALL_KINDS.len());
        let kinds: BTreeSet<FaultKind> = s.faults.iter().map(|f| f.fault.kind()).collect();
        assert!(
            kinds.len() >= 3,
            "a 20 s run with every kind on draws several kinds: {kinds:?}"
        );
        let json = serde_json::to_string_pretty(&s).unwrap();
        assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), s);
    }

    /// Share of the workload phase inside busy windows.
    fn busy_share(p: &Pacing, duration_ms: u64) -> f64 {
        let busy: u64 = p
            .busy
            .iter()
            .map(|&(at, d)| d.min(duration_ms.saturating_sub(at)))
            .sum();
        busy as f64 / duration_ms.max(1) as f64
    }

    #[test]
    fn clients_pause_outside_busy_windows_only_and_never_past_the_next_one() {
        let p = Pacing {
            think_ms: 1_000,
            busy: vec![(5_000, 1_000), (9_000, 500)],
        };
        assert_eq!(p.pause_ms(0, 1_700), 1_700, "quiet: the drawn pause");
        assert_eq!(p.pause_ms(4_000, 1_700), 1_000, "cut at the window's start");
        assert_eq!(p.pause_ms(5_000, 1_700), 0, "inside a window: back to back");
        assert_eq!(p.pause_ms(5_999, 1_700), 0);
        assert_eq!(p.pause_ms(6_000, 1_700), 1_700, "the window is over");
        assert_eq!(p.pause_ms(8_500, 1_700), 500);
        assert_eq!(p.pause_ms(9_600, 1_700), 1_700, "after the last window");
        assert_eq!(Pacing::default().pause_ms(4_000, 1_700), 0);
        assert!((busy_share(&p, 20_000) - 0.075).abs() < 1e-9);
    }

    #[test]
    fn kv_seeds_draw_their_pacing_and_old_schedule_files_run_back_to_back() {
        let seeds: Vec<Schedule> = (0..200)
            .map(|seed| Schedule::generate("kv", seed, None, &FaultSelection::Swarm))
            .collect();
        for s in &seeds {
            assert!((300..=5_000).contains(&s.pacing.think_ms), "{}", s.pacing);
            assert!(s.pacing.busy.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0));
        }
        let share: f64 = seeds
            .iter()
            .map(|s| busy_share(&s.pacing, s.duration_ms))
            .sum::<f64>()
            / 200.0;
        assert!((0.03..0.2).contains(&share), "mean busy share {share}");
        // Pacing has its own stream: the rest of a seed's draws did not move.
        let json = serde_json::to_value(&seeds[7]).unwrap();
        let mut old = json.clone();
        old.as_object_mut().unwrap().remove("pacing");
        let old: Schedule = serde_json::from_value(old).unwrap();
        assert!(old.pacing.is_back_to_back());
        assert_eq!(
            Schedule {
                pacing: seeds[7].pacing.clone(),
                ..old
            },
            seeds[7]
        );
        // Scenario checkout has no pacing and writes none.
        let c = Schedule::generate("checkout", 7, None, &FaultSelection::Swarm);
        assert!(c.pacing.is_back_to_back());
        assert!(!serde_json::to_string(&c).unwrap().contains("pacing"));
    }

    #[test]
    fn bad_fault_names_are_explained() {
        let e = FaultSelection::parse("crash,flood").unwrap_err();
        assert!(
            e.contains("unknown fault kind 'flood'") && e.contains("isolate-leader"),
            "{e}"
        );
    }
}
