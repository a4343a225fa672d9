//! Runs one schedule: a fresh madsim runtime seeded with the schedule's
//! seed, the scenario inside it, then the checks over what was recorded. A
//! panic anywhere in the simulation (a process's assertion, a deadlock) is
//! a failure with its message, not a crash of the harness.

use crate::nemesis::Triggers;
use crate::recorder::Recorder;
use crate::scenario::{Checks, Failure, RunCtx, Scenario};
use crate::schedule::Schedule;
use checker::history::{History, OpType};
use checker::linear::CheckResult;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct RunResult {
    pub schedule: Schedule,
    /// Safety failures first (event checks, then history checks), then
    /// panics, then liveness.
    pub failures: Vec<Failure>,
    pub history: History,
    pub lin: Option<CheckResult>,
    /// Simulated time the run took.
    pub sim_ms: u64,
    pub client_ops: usize,
    /// Wall-clock time spent checking (outside the simulation).
    pub check_wall: Duration,
    /// What the run reached: each coverage counter the system or the
    /// scenario bumped, with its count (see `hostio::coverage`).
    pub coverage: BTreeMap<String, u64>,
}

impl RunResult {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    pub fn first_check(&self) -> Option<&'static str> {
        self.failures.first().map(|f| f.check)
    }

    /// The check of each failure, in order.
    pub fn failed_checks(&self) -> Vec<&'static str> {
        self.failures.iter().map(|f| f.check).collect()
    }

    /// FNV-1a of the whole history (client ops, nemesis and the system's
    /// events with their times): two runs with the same hash ran the same.
    /// Computed when asked (a sweep's seeds never ask; it serializes every
    /// event).
    pub fn trace_hash(&self) -> u64 {
        trace_hash(&self.history)
    }
}

/// 64-bit FNV-1a of `data`, continued from `h` (start with [`FNV_OFFSET`]).
pub fn fnv1a(h: u64, data: &[u8]) -> u64 {
    data.iter()
        .fold(h, |h, b| (h ^ *b as u64).wrapping_mul(0x100_0000_01b3))
}

/// FNV-1a's initial value.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a of the history's JSON Lines form (`History::to_jsonl`), hashed as
/// it is written rather than built as one string first.
pub fn trace_hash(h: &History) -> u64 {
    struct Fnv(u64);
    impl std::io::Write for Fnv {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 = fnv1a(self.0, buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut w = Fnv(FNV_OFFSET);
    for op in &h.ops {
        serde_json::to_writer(&mut w, op).expect("an Op always serializes");
        std::io::Write::write_all(&mut w, b"\n").expect("hashing cannot fail");
    }
    w.0
}

thread_local! {
    /// The run's hosts by madsim node name (`Sim::host`), for a panic's
    /// message; a name given to two hosts maps to none.
    static HOST_NAMES: std::cell::RefCell<BTreeMap<String, Option<u64>>> =
        const { std::cell::RefCell::new(BTreeMap::new()) };
    /// The madsim node name of the task that panicked last on this thread.
    static PANICKED_ON: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static HOOK: std::sync::Once = std::sync::Once::new();

/// Records that host `id` runs as the madsim node named `name`.
pub(crate) fn name_host(name: &str, id: u64) {
    HOST_NAMES.with(|m| {
        let mut m = m.borrow_mut();
        let e = m.entry(name.to_string()).or_insert(Some(id));
        if *e != Some(id) {
            *e = None;
        }
    });
}

/// Panics print nothing (a sweep's or a shrink's runs); `SIM_PANICS=1`
/// keeps the default hook's messages and backtraces.
pub fn quiet_panics() {
    if std::env::var_os("SIM_PANICS").is_none() {
        QUIET.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    note_panicking_nodes();
}

/// Installs, once, the panic hook that notes which simulated node a
/// panic happened on (madsim's `gethostname` answers the current task's
/// node name, and the real host's outside a task), then prints as the
/// hook before it did unless [`quiet_panics`].
fn note_panicking_nodes() {
    HOOK.call_once(|| {
        let before = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let mut buf = [0u8; 256];
            // SAFETY: a valid buffer and its length; nothing else is read.
            let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
            if ok {
                let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
                let name = String::from_utf8_lossy(&buf[..end]).into_owned();
                let _ = PANICKED_ON.try_with(|p| *p.borrow_mut() = Some(name));
            }
            if !QUIET.load(std::sync::atomic::Ordering::Relaxed) {
                before(info);
            }
        }));
    });
}

/// The host of the node the last panic on this thread happened on, if it
/// was one of the run's hosts.
fn panicked_host() -> Option<u64> {
    let name = PANICKED_ON.with(|p| p.borrow_mut().take())?;
    HOST_NAMES.with(|m| m.borrow().get(&name).copied().flatten())
}

/// A panic's message, with the host it happened on in front when the
/// message does not say it ("on host 2: assertion failed: ...").
fn panic_failure(msg: String, host: Option<u64>) -> String {
    match host {
        Some(h) if !msg.contains(" stopped: ") => format!("on host {h}: {msg}"),
        _ => msg,
    }
}

/// The message of a caught panic.
fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "non-string panic".into())
}

/// Runs `schedule` with `scenario` and checks it. Deterministic: the same
/// schedule gives the same history, bit for bit.
pub fn run(scenario: &dyn Scenario, schedule: &Schedule) -> RunResult {
    run_with(scenario, schedule, Recorder::new)
}

/// [`run`] for a verdict only (a sweep's seed, a shrink's candidate): the
/// same run, with the same verdict and coverage, but its history leaves out
/// the system's high-volume events (see [`Recorder::keeps_detail`]), so it
/// is not the history to report or hash. 6-13 % faster on `checkout`.
pub fn run_verdict(scenario: &dyn Scenario, schedule: &Schedule) -> RunResult {
    run_with(scenario, schedule, Recorder::without_detail)
}

/// A failing [`run_verdict`] run again with every event, for its report:
/// the same run, so it must fail the same checks (its messages may differ
/// where they cite events by their index in the history). If it does not,
/// a `harness` failure saying so comes first.
pub fn rerun_with_detail(scenario: &dyn Scenario, verdict: &RunResult) -> RunResult {
    let mut full = run(scenario, &verdict.schedule);
    let (before, again) = (verdict.failed_checks(), full.failed_checks());
    if before != again {
        let msg = format!(
            "not deterministic: the schedule failed {before:?} and, run again to record its \
             report, {again:?}"
        );
        full.failures.insert(0, Failure::new("harness", msg));
    }
    full
}

fn run_with(scenario: &dyn Scenario, schedule: &Schedule, recorder: fn() -> Recorder) -> RunResult {
    let mut rt =
        madsim::runtime::Runtime::with_seed_and_config(schedule.seed, madsim::Config::default());
    // Generous: the checks, not this limit, should catch a slow system.
    let limit = Duration::from_millis(schedule.duration_ms) + Duration::from_secs(300);
    rt.set_time_limit(limit);
    let checks = Checks::default();
    let slot: Arc<Mutex<Option<(Recorder, u64)>>> = Arc::new(Mutex::new(None));
    let (slot2, checks2) = (slot.clone(), checks.clone());
    hostio::coverage::start();
    note_panicking_nodes();
    HOST_NAMES.with(|m| m.borrow_mut().clear());
    PANICKED_ON.with(|p| p.borrow_mut().take());
    let runtime = &rt;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        runtime.block_on(async move {
            let rec = recorder();
            *slot2.lock().unwrap() = Some((rec.clone(), 0));
            let ctx = RunCtx {
                rec: rec.clone(),
                triggers: Triggers::new(),
                checks: checks2,
            };
            let live = scenario.run(schedule, ctx).await;
            slot2.lock().unwrap().as_mut().unwrap().1 = rec.elapsed_ms();
            live
        })
    }));
    let (rec, mut sim_ms) = slot.lock().unwrap().take().expect("the runtime started");
    let outcome = outcome.map_err(|p| {
        let msg = panic_message(p);
        // madsim's own limit, not a panic of the system under test.
        if msg.starts_with("time limit exceeded") {
            sim_ms = limit.as_millis() as u64;
            Failure::new(
                "liveness",
                format!(
                    "the run did not end within its simulated time limit ({} s: the workload \
                     phase, {} ms, plus 300 s); its clients or the system never finished",
                    schedule.duration_ms / 1000 + 300,
                    schedule.duration_ms
                ),
            )
        } else {
            Failure::new("panic", panic_failure(msg, panicked_host()))
        }
    });
    let coverage = hostio::coverage::take();
    let result = judge(scenario, schedule, rec, sim_ms, &checks, outcome, coverage);
    // The runtime goes once the run is judged: dropping the futures it left
    // (vendored madsim, change 6) must not add to what the run recorded.
    drop(rt);
    result
}

/// Checks what a run recorded: the checks that followed events, the
/// history's, then a panic, then liveness (safety failures first: they are
/// what a shrink should preserve).
fn judge(
    scenario: &dyn Scenario,
    schedule: &Schedule,
    rec: Recorder,
    sim_ms: u64,
    checks: &Checks,
    outcome: Result<Vec<String>, Failure>,
    mut coverage: BTreeMap<String, u64>,
) -> RunResult {
    let history = rec.take_history();
    // A run that panicked never said how long it ran: at least until its
    // last event.
    let sim_ms = match (&outcome, sim_ms) {
        (Err(_), 0) => history.ops.iter().filter_map(|o| o.time).max().unwrap_or(0) / 1_000_000,
        _ => sim_ms,
    };
    for (name, n) in scenario.coverage(schedule, &history) {
        if n > 0 {
            *coverage.entry(name).or_default() += n;
        }
    }
    let check_start = std::time::Instant::now();
    let verdicts = scenario.check(schedule, &history);
    let mut failures = checks.failures();
    failures.extend(verdicts.failures);
    match outcome {
        Ok(live) => failures.extend(live.into_iter().map(|m| Failure::new("liveness", m))),
        Err(panic) => failures.push(panic),
    }
    let client_ops = history
        .ops
        .iter()
        .filter(|o| o.is_client() && o.kind == OpType::Invoke)
        .count();
    RunResult {
        schedule: schedule.clone(),
        failures,
        history,
        lin: verdicts.lin,
        sim_ms,
        client_ops,
        check_wall: check_start.elapsed(),
        coverage,
    }
}

/// Runs `schedule` inside the runtime that is already running, e.g. in a
/// `#[madsim::test]` (which takes its seed from `MADSIM_TEST_SEED` and
/// prints it when the test fails). A panic fails the test as usual.
pub async fn run_in_current(scenario: &dyn Scenario, schedule: &Schedule) -> RunResult {
    let rec = Recorder::new();
    let ctx = RunCtx {
        rec: rec.clone(),
        triggers: Triggers::new(),
        checks: Checks::default(),
    };
    let checks = ctx.checks.clone();
    hostio::coverage::start();
    let live = scenario.run(schedule, ctx).await;
    let sim_ms = rec.elapsed_ms();
    let coverage = hostio::coverage::take();
    judge(scenario, schedule, rec, sim_ms, &checks, Ok(live), coverage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_hash_is_the_fnv_of_the_jsonl_history() {
        let text = "{\"process\":0,\"type\":\"invoke\",\"f\":\"put\",\"key\":\"k1\",\"value\":1,\"time\":5}\n\
                    {\"process\":0,\"type\":\"ok\",\"f\":\"put\",\"key\":\"k1\",\"value\":1,\"time\":9}\n";
        let h = History::from_jsonl(text).unwrap();
        assert_eq!(trace_hash(&h), fnv1a(FNV_OFFSET, h.to_jsonl().as_bytes()));
        let mut other = h.clone();
        other.ops[1].time = Some(10);
        assert_ne!(trace_hash(&h), trace_hash(&other));
    }
}

/// A run that panics or never ends still says how long it ran.
#[cfg(all(test, madsim))]
mod stuck {
    use super::*;
    use crate::scenario::{RunFuture, Verdicts};
    use crate::schedule::FaultSelection;

    /// Records one event 2 s in, then panics or never ends.
    struct Stuck {
        panic: bool,
    }

    impl Scenario for Stuck {
        fn name(&self) -> &'static str {
            "stuck"
        }
        fn about(&self) -> &'static str {
            "records one event, then panics or hangs"
        }
        fn generate(&self, seed: u64, bug: Option<&str>, faults: &FaultSelection) -> Schedule {
            Schedule::draw("stuck", seed, bug, &[], faults, 1, 1_000)
        }
        fn run<'a>(&'a self, _s: &'a Schedule, ctx: RunCtx) -> RunFuture<'a> {
            Box::pin(async move {
                madsim::time::sleep(Duration::from_secs(2)).await;
                ctx.rec.event("client", "hello", serde_json::Value::Null);
                if self.panic {
                    panic!("the system under test panicked");
                }
                // Busy forever (a deadlock with no timer left is madsim's
                // "all tasks blocked" panic, not its time limit).
                loop {
                    madsim::time::sleep(Duration::from_secs(1)).await;
                }
            })
        }
        fn check(&self, _s: &Schedule, _h: &History) -> Verdicts {
            Verdicts::default()
        }
    }

    #[test]
    fn a_run_past_its_time_limit_or_a_panic_reports_its_simulated_time() {
        let none = FaultSelection::Only(vec![]);
        let hang = Stuck { panic: false };
        let r = run_verdict(&hang, &hang.generate(1, None, &none));
        assert_eq!(r.failed_checks(), vec!["liveness"]);
        assert!(
            r.failures[0].message.contains("time limit"),
            "{:?}",
            r.failures
        );
        assert_eq!(r.sim_ms, 1_000 + 300_000);
        let panics = Stuck { panic: true };
        let r = run_verdict(&panics, &panics.generate(1, None, &none));
        assert_eq!(r.failed_checks(), vec!["panic"]);
        assert_eq!(r.sim_ms, 2_000);
    }
    /// A host whose process panics with a message that names no host.
    struct HostPanics;

    impl Scenario for HostPanics {
        fn name(&self) -> &'static str {
            "host-panics"
        }
        fn about(&self) -> &'static str {
            "host 3's process panics 1 s in"
        }
        fn generate(&self, seed: u64, bug: Option<&str>, faults: &FaultSelection) -> Schedule {
            Schedule::draw("host-panics", seed, bug, &[], faults, 3, 5_000)
        }
        fn run<'a>(&'a self, s: &'a Schedule, _ctx: RunCtx) -> RunFuture<'a> {
            Box::pin(async move {
                let mut sim = crate::sim::Sim::new(s.seed);
                for id in 1..=3 {
                    sim.host(id, format!("box{id}"), move |_env| async move {
                        madsim::time::sleep(Duration::from_secs(1)).await;
                        assert!(id != 3, "the disk is gone");
                        madsim::time::sleep(Duration::from_secs(100)).await;
                    });
                }
                madsim::time::sleep(Duration::from_secs(3)).await;
                Vec::new()
            })
        }
        fn check(&self, _s: &Schedule, _h: &History) -> Verdicts {
            Verdicts::default()
        }
    }

    #[test]
    fn a_panic_on_a_host_names_the_host() {
        let none = FaultSelection::Only(vec![]);
        let r = run_verdict(&HostPanics, &HostPanics.generate(1, None, &none));
        assert_eq!(r.failed_checks(), vec!["panic"]);
        assert_eq!(r.failures[0].message, "on host 3: the disk is gone");
        // A panic outside the hosts keeps its message as it is.
        let panics = Stuck { panic: true };
        let r = run_verdict(&panics, &panics.generate(1, None, &none));
        assert_eq!(r.failures[0].message, "the system under test panicked");
        assert_eq!(
            panic_failure("node 5 stopped: bad record".into(), Some(5)),
            "node 5 stopped: bad record"
        );
    }

    #[test]
    fn a_scenario_without_a_report_of_its_own_gets_the_failures_page() {
        let none = FaultSelection::Only(vec![]);
        let panics = Stuck { panic: true };
        let r = run_verdict(&panics, &panics.generate(1, None, &none));
        assert!(r.lin.is_none());
        let page = panics.report(&r, "stuck seed 1: panic").expect("a page");
        assert!(page.contains("<h3>[panic]</h3>"), "{page}");
        assert!(page.contains("the system under test panicked"), "{page}");
        assert!(
            page.contains("records one event, then panics or hangs"),
            "{page}"
        );
        assert!(page.contains("No fault was played."), "{page}");
    }
}
