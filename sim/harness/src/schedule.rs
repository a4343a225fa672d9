//! What a run does, as data: how many hosts the faults may target, the
//! workload's bounds, the fault schedule, and the scenario's own parameters.
//! Drawn from the seed (swarm testing: each seed picks which fault kinds are
//! on and their rates), printed at start, written to a file on failure,
//! shrunk by dropping, shortening and simplifying faults, and replayed with
//! `run --schedule FILE`.
//!
//! Faults are data: the harness knows the ones any host can suffer
//! ([`Fault`]'s variants: crash, pause, network cuts, loss, latency, clock
//! jumps and drift); a scenario adds its own kinds as [`Fault::Custom`]
//! (e.g. "pause whoever leads"), drawn by its own function and played by
//! its [`crate::nemesis::FaultPlugin`].

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// One fault. Each is undone ("healed") when its duration ends. Hosts are
/// numbered from 1; clients by their number.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fault {
    /// Kill the host (its disk loses unsynced writes; `torn_write` may keep
    /// part of the last unsynced write, and `corrupt` flips a byte of that
    /// part), restart it when the fault ends. `damage` (`rot`, `lost-write`
    /// or `misdirected-write`) also damages one of the disk's synced writes
    /// meanwhile (see `hostio::disk::Damage`).
    Crash {
        node: u64,
        torn_write: bool,
        #[serde(default, skip_serializing_if = "is_false")]
        corrupt: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        damage: Option<String>,
    },
    /// Freeze the host (it keeps its state), resume it at the end.
    Pause { node: u64 },
    /// Hosts in different groups cannot talk.
    Partition { groups: Vec<Vec<u64>> },
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
    /// The host's clock is moved by `offset_ms` (a step), then back.
    ClockJump { node: u64, offset_ms: i64 },
    /// The host's clock runs `ppm` parts per million fast (or slow).
    ClockDrift { node: u64, ppm: i64 },
    /// An island: host `node` and the clients listed (by number; absent
    /// ones are ignored) on one side, every other host and client on the
    /// other; `node`'s clock runs `slow_ppm` parts per million slow
    /// meanwhile.
    Island {
        node: u64,
        clients: Vec<u64>,
        slow_ppm: i64,
    },
    /// Messages that services send through their host's `hostio::Net`
    /// (e.g. Raft's) are duplicated with probability `duplicate` and held
    /// back, so that later ones overtake them, with probability `reorder`;
    /// copies and held messages arrive 1..=`max_delay_ms` ms late.
    Reorder {
        duplicate: f64,
        reorder: f64,
        max_delay_ms: u64,
    },
    /// The next write of host `node`'s disk fails: `error` is `append`,
    /// `sync` (EIO; the unsynced bytes of that file are dropped, as Linux
    /// does), `write` (any mutating call, EIO) or `nospace` (the next
    /// append or file write, ENOSPC). Disarmed at the end if nothing
    /// wrote meanwhile.
    DiskError { node: u64, error: String },
    /// A scenario's own kind (`{"kind": NAME, ...}`), played by its plugin.
    #[serde(untagged)]
    Custom(CustomFault),
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A fault kind the harness does not know: its name and its fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomFault {
    pub kind: String,
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

impl Fault {
    /// A scenario's own fault from its own type, which must serialize as a
    /// map with a `kind` field (an enum with `#[serde(tag = "kind")]`).
    pub fn custom<T: Serialize>(t: &T) -> Fault {
        serde_json::from_value(serde_json::to_value(t).expect("a fault serializes"))
            .expect("a custom fault is a map with a kind")
    }

    /// This fault as a scenario's own type, if it is one of its kinds.
    pub fn as_custom<T: DeserializeOwned>(&self) -> Option<T> {
        match self {
            Fault::Custom(c) => serde_json::from_value(serde_json::to_value(c).ok()?).ok(),
            _ => None,
        }
    }

    /// Simpler versions of this fault that the shrinker tries, in order,
    /// each with the words its progress prints: a crash without its torn
    /// write (and so without corruption); an island without its slow
    /// clock; a reorder without duplicates or without reordering; loss,
    /// latency, a clock jump or drift at half the size (down to a floor,
    /// so halving ends). A crash's corruption and damage alone are earlier
    /// steps of the shrink. A scenario adds its own kinds'
    /// ([`crate::scenario::Scenario::simpler`]).
    pub fn simpler(&self) -> Vec<(Fault, &'static str)> {
        let mut out = Vec::new();
        match self {
            Fault::Crash {
                node,
                torn_write: true,
                corrupt,
                damage,
            } => {
                let plain = Fault::Crash {
                    node: *node,
                    torn_write: false,
                    corrupt: false,
                    damage: damage.clone(),
                };
                let what = if *corrupt {
                    "without its torn, corrupt write"
                } else {
                    "without its torn write"
                };
                out.push((plain, what));
            }
            Fault::Island {
                node,
                clients,
                slow_ppm,
            } if *slow_ppm != 0 => {
                let plain = Fault::Island {
                    node: *node,
                    clients: clients.clone(),
                    slow_ppm: 0,
                };
                out.push((plain, "without its slow clock"));
            }
            Fault::Reorder {
                duplicate,
                reorder,
                max_delay_ms,
            } if *duplicate > 0.0 && *reorder > 0.0 => {
                let max_delay_ms = *max_delay_ms;
                let dup_only = Fault::Reorder {
                    duplicate: *duplicate,
                    reorder: 0.0,
                    max_delay_ms,
                };
                let reorder_only = Fault::Reorder {
                    duplicate: 0.0,
                    reorder: *reorder,
                    max_delay_ms,
                };
                out.push((dup_only, "without reordering"));
                out.push((reorder_only, "without duplicates"));
            }
            Fault::Loss { rate } if *rate >= 0.01 => {
                out.push((Fault::Loss { rate: rate / 2.0 }, "at half the loss rate"));
            }
            Fault::Latency { min_ms, max_ms } if *max_ms >= 10 => {
                let half = Fault::Latency {
                    min_ms: min_ms / 2,
                    max_ms: max_ms / 2,
                };
                out.push((half, "at half the latency"));
            }
            Fault::ClockJump { node, offset_ms } if offset_ms.abs() >= 100 => {
                let half = Fault::ClockJump {
                    node: *node,
                    offset_ms: offset_ms / 2,
                };
                out.push((half, "with half the clock jump"));
            }
            Fault::ClockDrift { node, ppm } if ppm.abs() >= 1_000 => {
                let half = Fault::ClockDrift {
                    node: *node,
                    ppm: ppm / 2,
                };
                out.push((half, "with half the clock drift"));
            }
            _ => {}
        }
        out
    }

    /// The kind's name, as `--faults` lists it (clock jumps and drift are
    /// both `clock`).
    pub fn kind(&self) -> &str {
        match self {
            Fault::Crash { .. } => "crash",
            Fault::Pause { .. } => "pause",
            Fault::Partition { .. } => "partition",
            Fault::OneWay { .. } => "one-way",
            Fault::Bridge { .. } => "bridge",
            Fault::Loss { .. } => "loss",
            Fault::Latency { .. } => "latency",
            Fault::ClockJump { .. } | Fault::ClockDrift { .. } => "clock",
            Fault::Island { .. } => "island",
            Fault::Reorder { .. } => "reorder",
            Fault::DiskError { .. } => "disk-error",
            Fault::Custom(c) => &c.kind,
        }
    }

    /// Whether the fault changes the network (and is healed by recomputing it).
    pub fn is_network(&self) -> bool {
        matches!(
            self,
            Fault::Partition { .. }
                | Fault::OneWay { .. }
                | Fault::Bridge { .. }
                | Fault::Loss { .. }
                | Fault::Latency { .. }
                | Fault::Island { .. }
                | Fault::Reorder { .. }
        )
    }
}

/// The fault kinds the harness draws by itself, for any host.
pub const HOST_KINDS: [&str; 10] = [
    "crash",
    "pause",
    "partition",
    "one-way",
    "bridge",
    "loss",
    "latency",
    "clock",
    "reorder",
    "disk-error",
];

/// Which fault kinds a run may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultSelection {
    /// Each seed draws its own subset (swarm testing).
    Swarm,
    /// Exactly these, on every seed (names, in the scenario's order).
    Only(Vec<String>),
}

impl FaultSelection {
    /// Parses `swarm`, `all`, `none` or a comma-separated list of the
    /// scenario's kinds (`known`).
    pub fn parse(s: &str, known: &[&str]) -> Result<FaultSelection, String> {
        match s {
            "swarm" => Ok(FaultSelection::Swarm),
            "all" => Ok(FaultSelection::Only(
                known.iter().map(|k| k.to_string()).collect(),
            )),
            "none" => Ok(FaultSelection::Only(Vec::new())),
            list => {
                let mut chosen = Vec::new();
                for k in list.split(',').map(str::trim) {
                    if !known.contains(&k) {
                        return Err(format!(
                            "unknown fault kind '{k}': use swarm, all, none or a list of {}",
                            known.join(", ")
                        ));
                    }
                    chosen.push(k);
                }
                // In the scenario's order, once each.
                Ok(FaultSelection::Only(
                    known
                        .iter()
                        .filter(|k| chosen.contains(k))
                        .map(|k| k.to_string())
                        .collect(),
                ))
            }
        }
    }
}

/// The fault rates a seed drew.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultConfig {
    pub kinds: Vec<String>,
    /// Mean time between the starts of two faults.
    pub mean_interval_ms: u64,
    /// Mean duration of a fault.
    pub mean_duration_ms: u64,
    pub max_loss_rate: f64,
    pub max_latency_ms: u64,
    pub max_clock_jump_ms: i64,
    pub max_drift_ppm: i64,
    /// Share of crashes with a torn write whose kept part is corrupted
    /// (drawn from its own stream; absent in older schedules: none).
    #[serde(default)]
    pub corrupt_rate: f64,
    /// Share of crashes whose disk also loses, misdirects or rots a synced
    /// write (drawn from its own stream; absent in older schedules: none).
    #[serde(default)]
    pub damage_rate: f64,
}

impl fmt::Display for FaultConfig {
    /// The kinds, how often and how long, and the rates of the kinds that
    /// are on (a rate of a kind that is off would read as a fault to come).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kinds.is_empty() {
            return write!(f, "no faults");
        }
        write!(
            f,
            "faults drawn from [{}] every ~{} ms for ~{} ms",
            self.kinds.join(" "),
            self.mean_interval_ms,
            self.mean_duration_ms,
        )?;
        let on = |k: &str| self.kinds.iter().any(|x| x == k);
        let mut rates = Vec::new();
        if on("loss") {
            rates.push(format!("loss <= {:.2}", self.max_loss_rate));
        }
        if on("latency") {
            rates.push(format!("latency <= {} ms", self.max_latency_ms));
        }
        if on("clock") {
            rates.push(format!(
                "clock jumps <= {} ms, drift <= {} ppm",
                self.max_clock_jump_ms, self.max_drift_ppm
            ));
        }
        // A scenario's own crash kinds (e.g. `crash-voter`) may tear and
        // corrupt writes at the same rate.
        if self.kinds.iter().any(|k| k.contains("crash")) {
            rates.push(format!(
                "corrupt torn writes {:.0} %",
                self.corrupt_rate * 100.0
            ));
        }
        if on("crash") {
            rates.push(format!(
                "damaged synced writes {:.0} %",
                self.damage_rate * 100.0
            ));
        }
        if !rates.is_empty() {
            write!(f, "; {}", rates.join(", "))?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultEvent {
    pub at_ms: u64,
    pub duration_ms: u64,
    pub fault: Fault,
}

/// Everything a run does. The fields every scenario has are here; a
/// scenario's own parameters (cluster size, keys, mode, pacing...) are in
/// `params`, written at the top level of the JSON file beside them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub scenario: String,
    pub seed: u64,
    /// A planted bug the scenario switches on (its own names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bug: Option<String>,
    /// Faults target hosts 1..=nodes.
    pub nodes: u64,
    pub clients: u64,
    /// Each client stops after this many operations (or at the end of the
    /// workload phase). `u64::MAX`, no limit, is `null` in the JSON: as a
    /// number it is above 2^53, and tools that read JSON numbers as
    /// doubles (jq, JavaScript) would write it back as another number.
    #[serde(with = "unlimited")]
    pub ops_per_client: u64,
    /// Length of the workload phase, during which faults happen.
    pub duration_ms: u64,
    pub config: FaultConfig,
    pub faults: Vec<FaultEvent>,
    /// The scenario's own parameters.
    #[serde(flatten)]
    pub params: Map<String, Value>,
}

impl Schedule {
    /// A scenario parameter, if present and of type `T`.
    pub fn param<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        self.params
            .get(name)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// Sets a scenario parameter.
    pub fn set_param(&mut self, name: &str, value: impl Serialize) {
        self.params.insert(
            name.to_string(),
            serde_json::to_value(value).expect("a parameter serializes"),
        );
    }
}

/// The longest time a schedule may name (a workload phase, a fault, a
/// clock jump, a delay): a day, far beyond any run, and far from overflow.
pub const MAX_SCHEDULE_MS: u64 = 86_400_000;

impl Schedule {
    /// Checks a schedule read from a file (perhaps edited by hand, or
    /// written by another version) against its scenario: its bug (`bugs`),
    /// each fault's kind (`kinds`, the scenario's; `island` is played for
    /// any scenario), hosts, rates and names, and the times. A fault that
    /// names one of the harness's kinds but lacks its fields is refused
    /// here: it would be read as a scenario's own kind and never played.
    pub fn check(&self, kinds: &[&str], bugs: &[&str]) -> Result<(), String> {
        if let Some(b) = &self.bug {
            if !bugs.contains(&b.as_str()) {
                return Err(format!(
                    "bug '{b}' is not a bug of scenario {} (its bugs: {})",
                    self.scenario,
                    if bugs.is_empty() {
                        "none".to_string()
                    } else {
                        bugs.join(", ")
                    }
                ));
            }
        }
        if self.nodes == 0 {
            return Err("nodes is 0: faults target hosts 1..=nodes".into());
        }
        if self.clients == 0 {
            return Err("clients is 0: a run needs a client".into());
        }
        if self.duration_ms > MAX_SCHEDULE_MS {
            return Err(format!(
                "duration_ms {} is above a day ({MAX_SCHEDULE_MS} ms)",
                self.duration_ms
            ));
        }
        let host = |what: &str, n: u64| -> Result<(), String> {
            if n == 0 || n > self.nodes {
                Err(format!(
                    "{what} {n} is not a host (hosts are 1..={})",
                    self.nodes
                ))
            } else {
                Ok(())
            }
        };
        let rate = |what: &str, r: f64| -> Result<(), String> {
            if (0.0..=1.0).contains(&r) {
                Ok(())
            } else {
                Err(format!("{what} {r} is not a probability (0 to 1)"))
            }
        };
        let ms = |what: &str, n: u64| -> Result<(), String> {
            if n > MAX_SCHEDULE_MS {
                Err(format!("{what} {n} ms is above a day"))
            } else {
                Ok(())
            }
        };
        for (i, e) in self.faults.iter().enumerate() {
            let at = |m: String| format!("fault {i} ({} at {} ms): {m}", e.fault.kind(), e.at_ms);
            ms("at_ms", e.at_ms).map_err(at)?;
            ms("duration_ms", e.duration_ms).map_err(at)?;
            let kind = e.fault.kind();
            if kind != "island" && !kinds.contains(&kind) {
                return Err(at(format!(
                    "scenario {} does not play this kind (its kinds: {})",
                    self.scenario,
                    kinds.join(", ")
                )));
            }
            match &e.fault {
                Fault::Crash { node, damage, .. } => {
                    host("node", *node).map_err(at)?;
                    if let Some(d) = damage {
                        if hostio::disk::Damage::by_name(d).is_none() {
                            return Err(at(format!(
                                "damage '{d}' is not one of rot, lost-write, misdirected-write"
                            )));
                        }
                    }
                }
                Fault::Pause { node } | Fault::ClockDrift { node, .. } => {
                    host("node", *node).map_err(at)?
                }
                Fault::Partition { groups } => {
                    for n in groups.iter().flatten() {
                        host("host", *n).map_err(at)?;
                    }
                }
                Fault::OneWay { from, to } => {
                    host("from", *from).map_err(at)?;
                    host("to", *to).map_err(at)?;
                }
                Fault::Bridge {
                    bridge,
                    left,
                    right,
                } => {
                    host("bridge", *bridge).map_err(at)?;
                    for n in left.iter().chain(right) {
                        host("host", *n).map_err(at)?;
                    }
                }
                Fault::Loss { rate: r } => rate("rate", *r).map_err(at)?,
                Fault::Latency { min_ms, max_ms } => {
                    ms("max_ms", *max_ms).map_err(at)?;
                    if min_ms > max_ms {
                        return Err(at(format!("min_ms {min_ms} is above max_ms {max_ms}")));
                    }
                }
                Fault::ClockJump { node, offset_ms } => {
                    host("node", *node).map_err(at)?;
                    ms("offset_ms", offset_ms.unsigned_abs()).map_err(at)?;
                }
                Fault::Island { node, .. } => host("node", *node).map_err(at)?,
                Fault::Reorder {
                    duplicate,
                    reorder,
                    max_delay_ms,
                } => {
                    rate("duplicate", *duplicate).map_err(at)?;
                    rate("reorder", *reorder).map_err(at)?;
                    ms("max_delay_ms", *max_delay_ms).map_err(at)?;
                }
                Fault::DiskError { node, error } => {
                    host("node", *node).map_err(at)?;
                    if hostio::disk::IoFault::by_name(error).is_none() {
                        return Err(at(format!(
                            "error '{error}' is not one of append, sync, write, nospace"
                        )));
                    }
                }
                Fault::Custom(c) => {
                    if HOST_KINDS.contains(&c.kind.as_str()) || c.kind == "island" {
                        return Err(at(format!(
                            "not a valid {} fault: {} (`schedule` prints faults of each kind with their fields)",
                            c.kind,
                            serde_json::to_string(&c.fields).unwrap_or_default()
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

impl Schedule {
    /// A schedule drawn from `seed` for a scenario with no draws of its own:
    /// `hosts` fault targets, the harness's fault kinds `kinds` (as
    /// `--faults` selected them) over a workload phase of `duration_ms`.
    /// Set `clients`, `ops_per_client` and `params` on the result.
    ///
    /// `crash` faults come as a disk fails: a torn unsynced tail, corrupted
    /// in some seeds, and in about half of the seeds a damaged synced
    /// write (rot, lost or misdirected: see `hostio::disk::Damage`),
    /// which a service with a single copy of its data cannot repair; call
    /// [`Schedule::without_synced_damage`] if yours should not face it.
    pub fn draw(
        scenario: &str,
        seed: u64,
        bug: Option<&str>,
        kinds: &[&str],
        selection: &FaultSelection,
        hosts: u64,
        duration_ms: u64,
    ) -> Schedule {
        Schedule::draw_with(
            scenario,
            seed,
            bug,
            kinds,
            selection,
            hosts,
            duration_ms,
            &no_custom_faults,
        )
    }

    /// [`Schedule::draw`] for a scenario with fault kinds of its own:
    /// `kinds` lists the harness's kinds and yours, and `custom` draws
    /// yours (as a [`Fault::custom`], played by your
    /// [`crate::nemesis::FaultPlugin`]).
    #[allow(clippy::too_many_arguments)]
    pub fn draw_with(
        scenario: &str,
        seed: u64,
        bug: Option<&str>,
        kinds: &[&str],
        selection: &FaultSelection,
        hosts: u64,
        duration_ms: u64,
        custom: DrawCustom<'_>,
    ) -> Schedule {
        let targets = Targets { hosts };
        let (config, faults) =
            Draw::new(seed).faults(kinds, selection, &targets, duration_ms, custom);
        Schedule {
            scenario: scenario.to_string(),
            seed,
            bug: bug.map(str::to_string),
            nodes: hosts,
            clients: 1,
            ops_per_client: u64::MAX,
            duration_ms,
            config,
            faults,
            params: Map::new(),
        }
    }
}

impl Schedule {
    /// The same schedule with no damage to synced writes in its crashes
    /// (each crash still loses what was not synced, and may tear it).
    pub fn without_synced_damage(mut self) -> Schedule {
        for f in &mut self.faults {
            if let Fault::Crash { damage, .. } = &mut f.fault {
                *damage = None;
            }
        }
        self.config.damage_rate = 0.0;
        self
    }
}

/// Where a fault may strike, for the functions that draw one.
pub struct Targets {
    /// Hosts 1..=hosts.
    pub hosts: u64,
}

/// Draws a scenario's own fault of `kind`; may replace the drawn duration.
pub type DrawCustom<'a> =
    &'a dyn Fn(&str, &Targets, &FaultConfig, &mut ChaCha8Rng) -> (Fault, Option<u64>);

/// The random draws of one seed, in a fixed order: a scenario takes what it
/// needs (its own sizes, then [`Draw::faults`], then its workload), so that
/// the same seed always draws the same schedule.
pub struct Draw {
    pub rng: ChaCha8Rng,
    seed: u64,
}

impl Draw {
    pub fn new(seed: u64) -> Draw {
        Draw {
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x0005_eed5_c4ed_u64),
            seed,
        }
    }

    /// Draws the fault rates and the schedule of a workload phase of
    /// `duration_ms` over `targets`, from `kinds` (the scenario's kinds, in
    /// order: the harness's own ones and the scenario's, drawn by `custom`).
    pub fn faults(
        &mut self,
        kinds: &[&str],
        selection: &FaultSelection,
        targets: &Targets,
        duration_ms: u64,
        custom: DrawCustom<'_>,
    ) -> (FaultConfig, Vec<FaultEvent>) {
        for k in kinds {
            let need = match *k {
                "partition" | "one-way" => 2,
                "bridge" => 3,
                _ => 1,
            };
            assert!(
                targets.hosts >= need,
                "fault kind '{k}' needs at least {need} hosts, and this scenario's faults target {}: leave it out of the scenario's fault_kinds()",
                targets.hosts
            );
        }
        let rng = &mut self.rng;
        let kinds: Vec<String> = match selection {
            FaultSelection::Only(k) => k.clone(),
            FaultSelection::Swarm => loop {
                let k: Vec<String> = kinds
                    .iter()
                    .filter(|_| rng.random_bool(0.5))
                    .map(|k| k.to_string())
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
            corrupt_rate: 0.0,
            damage_rate: 0.0,
        };
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
            let kind = &kinds[rng.random_range(0..kinds.len())];
            let fault = match draw_host_fault(kind, targets, &config, rng) {
                Some(f) => f,
                None => {
                    let (f, duration) = custom(kind, targets, &config, rng);
                    if let Some(dur) = duration {
                        d = dur;
                    }
                    f
                }
            };
            faults.push(FaultEvent {
                at_ms: t,
                duration_ms: d,
                fault,
            });
        }
        let mut config = config;
        corrupt_some(self.seed, &mut config, &mut faults);
        damage_some(self.seed, &mut config, &mut faults);
        (config, faults)
    }
}

/// Disk corruption, from the seed's own stream (so every other draw is as
/// it was before it existed): the seed's share of torn writes that are
/// also corrupted (none in half the seeds), and which crashes they are.
fn corrupt_some(seed: u64, config: &mut FaultConfig, faults: &mut [FaultEvent]) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0000_c044_0b75_u64);
    config.corrupt_rate = if rng.random_bool(0.5) {
        0.0
    } else {
        (rng.random_range(0.2..1.0f64) * 100.0).round() / 100.0
    };
    for f in faults {
        if let Fault::Crash {
            torn_write: true,
            corrupt,
            ..
        } = &mut f.fault
        {
            *corrupt = rng.random_bool(config.corrupt_rate);
        }
    }
}

/// Damage to synced data, from the seed's own stream like corruption: the
/// seed's share of crashes whose disk also damages a synced write (none in
/// half the seeds), which crashes, and how (rot, lost or misdirected). One
/// host has the bad disk: only its crashes are damaged, so a majority of
/// every group stays healthy (a group whose majority lost acknowledged
/// writes cannot get them back, and rightly stops).
fn damage_some(seed: u64, config: &mut FaultConfig, faults: &mut [FaultEvent]) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0000_da4a_9ed5_u64);
    config.damage_rate = if rng.random_bool(0.5) {
        0.0
    } else {
        (rng.random_range(0.2..1.0f64) * 100.0).round() / 100.0
    };
    let crashed: std::collections::BTreeSet<u64> = faults
        .iter()
        .filter_map(|f| match f.fault {
            Fault::Crash { node, .. } => Some(node),
            _ => None,
        })
        .collect();
    let Some(&bad) = crashed
        .iter()
        .nth(rng.random_range(0..crashed.len().max(1)))
    else {
        return;
    };
    for f in faults {
        if let Fault::Crash { node, damage, .. } = &mut f.fault {
            if *node == bad && rng.random_bool(config.damage_rate) {
                let kinds = hostio::disk::Damage::ALL;
                *damage = Some(kinds[rng.random_range(0..kinds.len())].name().to_string());
            }
        }
    }
}

/// A scenario without kinds of its own.
pub fn no_custom_faults(
    kind: &str,
    _: &Targets,
    _: &FaultConfig,
    _: &mut ChaCha8Rng,
) -> (Fault, Option<u64>) {
    panic!("fault kind '{kind}' is not one of the harness's and the scenario draws none")
}

/// The harness's own kinds; `None` for a scenario's.
fn draw_host_fault(
    kind: &str,
    t: &Targets,
    c: &FaultConfig,
    rng: &mut ChaCha8Rng,
) -> Option<Fault> {
    let nodes = t.hosts;
    let node = |rng: &mut ChaCha8Rng| rng.random_range(1..=nodes);
    let shuffled = |rng: &mut ChaCha8Rng| {
        let mut ids: Vec<u64> = (1..=nodes).collect();
        for i in (1..ids.len()).rev() {
            ids.swap(i, rng.random_range(0..=i));
        }
        ids
    };
    Some(match kind {
        "crash" => Fault::Crash {
            node: node(rng),
            torn_write: rng.random_bool(0.5),
            corrupt: false,
            damage: None,
        },
        "pause" => Fault::Pause { node: node(rng) },
        "partition" => {
            let ids = shuffled(rng);
            let cut = rng.random_range(1..ids.len());
            let (a, b) = ids.split_at(cut);
            let (mut a, mut b) = (a.to_vec(), b.to_vec());
            a.sort();
            b.sort();
            Fault::Partition { groups: vec![a, b] }
        }
        "one-way" => {
            let ids = shuffled(rng);
            Fault::OneWay {
                from: ids[0],
                to: ids[1],
            }
        }
        "bridge" => {
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
        "disk-error" => Fault::DiskError {
            node: node(rng),
            error: hostio::IoFault::ALL[rng.random_range(0..hostio::IoFault::ALL.len())]
                .name()
                .to_string(),
        },
        "reorder" => {
            let round = |x: f64| (x * 100.0).round() / 100.0;
            Fault::Reorder {
                duplicate: round(rng.random_range(0.0..0.6)),
                reorder: round(rng.random_range(0.05..0.4)),
                max_delay_ms: rng.random_range(5..=300),
            }
        }
        "loss" => Fault::Loss {
            rate: (rng.random_range(0.2..1.0) * c.max_loss_rate * 100.0).round() / 100.0,
        },
        "latency" => {
            let max = rng.random_range(5..=c.max_latency_ms.max(6));
            Fault::Latency {
                min_ms: max / 4,
                max_ms: max,
            }
        }
        "clock" => {
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
        _ => return None,
    })
}

/// `ops_per_client`: `u64::MAX` as `null`; a number otherwise.
mod unlimited {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
        match *n {
            u64::MAX => s.serialize_none(),
            n => s.serialize_u64(n),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draw(seed: u64, sel: &FaultSelection) -> (FaultConfig, Vec<FaultEvent>) {
        Draw::new(seed).faults(
            &HOST_KINDS,
            sel,
            &Targets { hosts: 3 },
            20_000,
            &no_custom_faults,
        )
    }

    /// Every drawn fault's simpler versions differ from it, and taking the
    /// first again and again ends: the shrinker's step cannot loop.
    #[test]
    fn simpler_faults_differ_and_run_out() {
        let mut kinds_simplified = std::collections::BTreeSet::new();
        for seed in 0..200 {
            for f in draw(seed, &FaultSelection::Swarm).1 {
                let mut fault = f.fault;
                for step in 0.. {
                    let options = fault.simpler();
                    assert!(options.iter().all(|(g, _)| *g != fault), "{fault:?}");
                    let Some((next, _)) = options.into_iter().next() else {
                        break;
                    };
                    assert!(step < 20, "{next:?} is still simplified");
                    kinds_simplified.insert(next.kind().to_string());
                    fault = next;
                }
            }
        }
        let kinds: Vec<&str> = kinds_simplified.iter().map(|k| k.as_str()).collect();
        assert_eq!(kinds, ["clock", "crash", "latency", "loss", "reorder"]);
        // Kinds `Draw::faults` does not give: a corrupt torn write, an island.
        let corrupt = Fault::Crash {
            node: 1,
            torn_write: true,
            corrupt: true,
            damage: Some("rot".into()),
        };
        let plain = Fault::Crash {
            node: 1,
            torn_write: false,
            corrupt: false,
            damage: Some("rot".into()),
        };
        assert_eq!(
            corrupt.simpler(),
            [(plain, "without its torn, corrupt write")]
        );
        let island = |slow_ppm| Fault::Island {
            node: 2,
            clients: vec![1],
            slow_ppm,
        };
        assert_eq!(
            island(300_000).simpler(),
            [(island(0), "without its slow clock")]
        );
        assert!(island(0).simpler().is_empty());
    }

    #[test]
    fn a_schedule_file_is_checked_against_its_scenario() {
        let all = FaultSelection::parse("all", &HOST_KINDS).unwrap();
        let mut s = Schedule::draw("x", 3, Some("b1"), &HOST_KINDS, &all, 3, 20_000);
        let (kinds, bugs) = (&HOST_KINDS[..], &["b1"][..]);
        assert_eq!(s.check(kinds, bugs), Ok(()));
        for seed in 0..50 {
            let d = Schedule::draw("x", seed, None, &HOST_KINDS, &all, 3, 20_000);
            assert_eq!(d.check(kinds, bugs), Ok(()), "seed {seed}");
        }
        let bad = |edit: &dyn Fn(&mut Schedule), want: &str| {
            let mut t = s.clone();
            edit(&mut t);
            let e = t.check(kinds, bugs).unwrap_err();
            assert!(e.contains(want), "{e}");
        };
        let at = |f: Fault| FaultEvent {
            at_ms: 5,
            duration_ms: 10,
            fault: f,
        };
        bad(
            &|t| t.bug = Some("other".into()),
            "bug 'other' is not a bug of scenario x",
        );
        bad(&|t| t.nodes = 0, "nodes is 0");
        bad(&|t| t.duration_ms = u64::MAX, "above a day");
        bad(
            &|t| t.faults = vec![at(Fault::Pause { node: 9 })],
            "node 9 is not a host (hosts are 1..=3)",
        );
        bad(
            &|t| t.faults = vec![at(Fault::Loss { rate: 2.0 })],
            "rate 2 is not a probability",
        );
        bad(
            &|t| {
                t.faults = vec![at(Fault::DiskError {
                    node: 1,
                    error: "kaboom".into(),
                })]
            },
            "error 'kaboom' is not one of append, sync, write, nospace",
        );
        bad(
            &|t| {
                t.faults = vec![FaultEvent {
                    at_ms: 5,
                    duration_ms: u64::MAX,
                    fault: Fault::Pause { node: 1 },
                }]
            },
            "fault 0 (pause at 5 ms): duration_ms",
        );
        // A crash without its torn_write is read as a scenario's own kind:
        // refused, not silently never played.
        let half: Fault = serde_json::from_str(r#"{"kind":"crash","node":1}"#).unwrap();
        assert!(matches!(half, Fault::Custom(_)));
        bad(
            &|t| t.faults = vec![at(half.clone())],
            "not a valid crash fault",
        );
        let meteor: Fault = serde_json::from_str(r#"{"kind":"meteor"}"#).unwrap();
        bad(
            &|t| t.faults = vec![at(meteor.clone())],
            "scenario x does not play this kind",
        );
        s.bug = None;
        assert_eq!(s.check(kinds, &[]), Ok(()));
    }

    #[test]
    fn synced_damage_can_be_left_out_and_kinds_need_their_hosts() {
        let all = FaultSelection::parse("all", &HOST_KINDS).unwrap();
        let damaged = (0..50)
            .map(|seed| Schedule::draw("x", seed, None, &HOST_KINDS, &all, 3, 20_000))
            .find(|s| {
                s.faults.iter().any(|f| {
                    matches!(
                        f.fault,
                        Fault::Crash {
                            damage: Some(_),
                            ..
                        }
                    )
                })
            })
            .expect("a seed with damage among 50");
        let kept = damaged.clone().without_synced_damage();
        assert_eq!(kept.config.damage_rate, 0.0);
        assert!(kept.faults.iter().all(|f| !matches!(
            f.fault,
            Fault::Crash {
                damage: Some(_),
                ..
            }
        )));
        assert_eq!(kept.faults.len(), damaged.faults.len());
        let one_host = std::panic::catch_unwind(|| {
            Schedule::draw("x", 1, None, &["crash", "partition"], &all, 1, 20_000)
        });
        let msg = one_host.unwrap_err();
        let msg = msg.downcast_ref::<String>().unwrap();
        assert!(
            msg.contains("fault kind 'partition' needs at least 2 hosts"),
            "{msg}"
        );
    }

    #[test]
    fn the_same_seed_draws_the_same_faults_and_others_differ() {
        assert_eq!(
            draw(7, &FaultSelection::Swarm),
            draw(7, &FaultSelection::Swarm)
        );
        assert_ne!(
            draw(7, &FaultSelection::Swarm),
            draw(8, &FaultSelection::Swarm)
        );
    }

    #[test]
    fn faults_round_trip_through_json_custom_ones_included() {
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        #[serde(tag = "kind", rename_all = "kebab-case")]
        enum Mine {
            FreezeLeader,
            Churn { hold_ms: u64 },
        }
        let all = FaultSelection::parse("all", &HOST_KINDS).unwrap();
        let (_, mut faults) = draw(3, &all);
        faults.push(FaultEvent {
            at_ms: 1,
            duration_ms: 2,
            fault: Fault::custom(&Mine::Churn { hold_ms: 5 }),
        });
        faults.push(FaultEvent {
            at_ms: 1,
            duration_ms: 2,
            fault: Fault::custom(&Mine::FreezeLeader),
        });
        let json = serde_json::to_string(&faults).unwrap();
        assert!(json.contains(r#"{"kind":"freeze-leader"}"#), "{json}");
        assert!(json.contains(r#"{"kind":"churn","hold_ms":5}"#), "{json}");
        let back: Vec<FaultEvent> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, faults);
        assert_eq!(back.last().unwrap().fault.kind(), "freeze-leader");
        assert_eq!(
            back[back.len() - 2].fault.as_custom::<Mine>(),
            Some(Mine::Churn { hold_ms: 5 })
        );
        assert_eq!(back[0].fault.as_custom::<Mine>(), None);
    }

    #[test]
    fn scenario_parameters_sit_beside_the_common_fields() {
        let (config, faults) = draw(1, &FaultSelection::Swarm);
        let mut s = Schedule {
            scenario: "x".into(),
            seed: 1,
            bug: None,
            nodes: 3,
            clients: 2,
            ops_per_client: 10,
            duration_ms: 20_000,
            config,
            faults,
            params: Map::new(),
        };
        s.set_param("keys", 4);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["keys"], 4);
        let back: Schedule = serde_json::from_value(v).unwrap();
        assert_eq!(back.param::<u64>("keys"), Some(4));
        assert_eq!(back, s);
        // No limit is null, which every JSON tool writes back unchanged.
        s.ops_per_client = u64::MAX;
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["ops_per_client"], serde_json::Value::Null);
        let back: Schedule = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains("\"ops_per_client\":null"), "{text}");
        let back: Schedule = serde_json::from_str(&text).unwrap();
        assert_eq!(back.ops_per_client, u64::MAX);
    }

    #[test]
    fn bad_fault_names_are_explained() {
        let e = FaultSelection::parse("crash,flood", &HOST_KINDS).unwrap_err();
        assert!(
            e.contains("unknown fault kind 'flood'") && e.contains("one-way"),
            "{e}"
        );
        assert_eq!(
            FaultSelection::parse("loss,crash", &HOST_KINDS).unwrap(),
            FaultSelection::Only(vec!["crash".into(), "loss".into()])
        );
    }
}
