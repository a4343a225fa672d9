//! A scenario: what a user of the harness writes to test their system. It
//! says what it draws from a seed, runs the system and its clients on
//! simulated hosts under the nemesis, and judges the recorded history. The
//! CLI ([`crate::cli`]) reads a list of them; nothing else in the harness
//! knows any scenario by name.

use crate::nemesis::Triggers;
use crate::recorder::Recorder;
use crate::runner::RunResult;
use crate::schedule::{Fault, FaultSelection, Schedule};
use checker::history::History;
use checker::linear::CheckResult;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// A scenario option the CLI accepts as `--NAME VALUE` and writes into the
/// schedule (see [`Scenario::set_param`]).
#[derive(Clone, Copy, Debug)]
pub struct Param {
    pub name: &'static str,
    pub help: &'static str,
}

/// A coverage floor: in a sweep, at least `min_share` of the seeds it
/// applies to must reach counter `counter`, or the sweep fails naming it.
/// A counter may have several floors over different seeds (e.g. one per
/// workload, where one workload reaches it far more often than another):
/// each is checked and printed on its own, with the name of its seeds.
#[derive(Clone, Copy, Debug)]
pub struct Floor {
    pub counter: &'static str,
    /// 0.0..=1.0.
    pub min_share: f64,
    /// Which seeds it applies to (e.g. only the 2PC ones); `None`: all.
    pub applies: Option<fn(&Schedule) -> bool>,
    /// What those seeds are, for the table (e.g. "mix"); `None`: unnamed.
    pub seeds: Option<&'static str>,
}

impl Floor {
    pub fn new(counter: &'static str, min_share: f64) -> Floor {
        Floor {
            counter,
            min_share,
            applies: None,
            seeds: None,
        }
    }

    /// The floor counts only the seeds for which `f` holds.
    pub fn when(self, f: fn(&Schedule) -> bool) -> Floor {
        Floor {
            applies: Some(f),
            ..self
        }
    }

    /// Names the seeds the floor applies to in the table and the failure
    /// message ("floor 15 % of 120 mix seeds").
    pub fn of(self, seeds: &'static str) -> Floor {
        Floor {
            seeds: Some(seeds),
            ..self
        }
    }

    pub fn applies_to(&self, s: &Schedule) -> bool {
        self.applies.is_none_or(|f| f(s))
    }
}

pub use crate::failure::Failure;

/// What the history check found.
#[derive(Default)]
pub struct Verdicts {
    pub failures: Vec<Failure>,
    /// A linearizability result, if the scenario checked one (the default
    /// report draws it).
    pub lin: Option<CheckResult>,
}

impl Verdicts {
    /// Linearizability of the client operations against `model`, every
    /// object starting at `initial` (one thread: safe inside madsim).
    pub fn linearizability(
        history: &History,
        model: checker::ModelKind,
        initial: serde_json::Value,
    ) -> Verdicts {
        let opts = checker::linear::Options {
            timeout: Some(std::time::Duration::from_secs(60)),
            threads: 1,
            initial,
            ..Default::default()
        };
        let r = checker::linear::check(history, model, &opts);
        let failure = match r.verdict {
            checker::Verdict::Linearizable => None,
            checker::Verdict::NotLinearizable => Some(
                r.explanation
                    .clone()
                    .unwrap_or_else(|| "not linearizable".into()),
            ),
            checker::Verdict::Unknown => Some(format!(
                "checker gave no verdict: {}",
                r.unknown_reason.clone().unwrap_or_default()
            )),
        };
        Verdicts {
            failures: failure
                .map(|m| Failure::new("linearizability", m))
                .into_iter()
                .collect(),
            lin: Some(r),
        }
    }
}

type CheckFn = Box<dyn Fn() -> Vec<String> + Send>;

/// Checks that follow the system's events during the run (e.g. at most one
/// leader per term) and report after it, even when the run panicked.
#[derive(Clone, Default)]
pub struct Checks(Arc<Mutex<Vec<(&'static str, CheckFn)>>>);

impl Checks {
    /// `violations` is asked once the run is over; each string it returns
    /// is a failure of check `name`.
    pub fn add(&self, name: &'static str, violations: impl Fn() -> Vec<String> + Send + 'static) {
        self.0.lock().unwrap().push((name, Box::new(violations)));
    }

    /// Every violation, check by check in the order they were added.
    pub fn failures(&self) -> Vec<Failure> {
        let g = self.0.lock().unwrap();
        g.iter()
            .flat_map(|(name, f)| f().into_iter().map(|m| Failure::new(name, m)))
            .collect()
    }
}

/// What a scenario's run gets from the harness.
#[derive(Clone)]
pub struct RunCtx {
    /// Client operations, nemesis and the system's events go here.
    pub rec: Recorder,
    /// Fault triggers: fire them from the system's events.
    pub triggers: Triggers,
    /// Checks that follow events; reported after the run.
    pub checks: Checks,
}

/// The future a scenario's run returns: the liveness failures it saw.
pub type RunFuture<'a> = Pin<Box<dyn Future<Output = Vec<String>> + 'a>>;

/// One scenario. Implement it, list it in the registry given to
/// [`crate::cli::main`], and every subcommand (run, sweep, shrink, replay,
/// bench) works for it.
pub trait Scenario: Send + Sync {
    /// Its `--scenario` name.
    fn name(&self) -> &'static str;
    /// One line for `--help`.
    fn about(&self) -> &'static str;
    /// Its fault kinds, in the order seeds draw them: the harness's own
    /// ([`crate::schedule::HOST_KINDS`]) and its plugin's.
    fn fault_kinds(&self) -> Vec<&'static str> {
        crate::schedule::HOST_KINDS.to_vec()
    }
    /// Planted bugs it can switch on (`--bug NAME`).
    fn bugs(&self) -> Vec<&'static str> {
        Vec::new()
    }
    /// Its options (`--NAME VALUE`).
    fn params(&self) -> Vec<Param> {
        Vec::new()
    }
    /// Draws everything from the seed (see [`crate::schedule::Draw`]).
    fn generate(&self, seed: u64, bug: Option<&str>, faults: &FaultSelection) -> Schedule;
    /// Applies option `--NAME VALUE` to a drawn schedule; a clear error if
    /// the value is wrong.
    fn set_param(&self, s: &mut Schedule, name: &str, value: &str) -> Result<(), String> {
        let _ = (s, value);
        Err(format!("scenario {} has no option --{name}", self.name()))
    }
    /// Lines `run` prints about a schedule, beyond the common ones.
    fn describe(&self, s: &Schedule) -> Vec<String> {
        let _ = s;
        Vec::new()
    }
    /// Runs the schedule inside the simulation: hosts, clients, nemesis,
    /// then liveness after healing. Returns the liveness failures.
    fn run<'a>(&'a self, s: &'a Schedule, ctx: RunCtx) -> RunFuture<'a>;
    /// Judges the recorded history.
    fn check(&self, s: &Schedule, history: &History) -> Verdicts;
    /// Coverage counters read from the recorded history (what is easier to
    /// see there than in the code: e.g. a read served during a partition),
    /// added to those the code bumped.
    fn coverage(&self, s: &Schedule, history: &History) -> Vec<(String, u64)> {
        let _ = (s, history);
        Vec::new()
    }
    /// Coverage floors a sweep must reach (see [`Floor`]).
    fn floors(&self) -> Vec<Floor> {
        Vec::new()
    }
    /// Simpler versions of one of its own faults ([`Fault::Custom`]) for
    /// `sim shrink` to try in order, each with the words its progress
    /// prints (e.g. the same leader churn without the disk damage it
    /// carries: "without its bad disk"). The shrinker keeps the first
    /// that still fails the same check and asks again, as it does with the
    /// harness's own kinds' ([`Fault::simpler`]). Default: none.
    fn simpler(&self, fault: &Fault) -> Vec<(Fault, &'static str)> {
        let _ = fault;
        Vec::new()
    }
    /// An HTML page that explains a run (default: the linearizability
    /// report when there is a linearizability result, else
    /// [`report::failures_page`](crate::report::failures_page): the failed
    /// checks, the clients' operations and the faults, with
    /// [`Scenario::about`] as what ran). `None` writes no page.
    fn report(&self, r: &RunResult, title: &str) -> Option<String> {
        Some(match &r.lin {
            Some(lin) => checker::report::html(&r.history, lin, title),
            None => {
                let failures: Vec<(&str, &str)> = r
                    .failures
                    .iter()
                    .map(|f| (f.check, f.message.as_str()))
                    .collect();
                crate::report::failures_page(&failures, &r.history, title, self.about())
            }
        })
    }
}
