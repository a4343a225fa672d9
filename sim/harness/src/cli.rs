//! The command line every harness binary gets: `run` (one seed or a
//! schedule file, `--check-determinism`), `sweep` (many seeds, on worker
//! processes, `--jobs`, `--shard`, `--time-budget`), `shrink`,
//! `schedule` and `bench`, for every scenario in the registry it is given.
//! A scenario's options become flags (`--NAME VALUE`) of every subcommand.
//!
//! ```no_run
//! # use harness::scenario::Scenario;
//! # fn scenarios() -> Vec<&'static dyn Scenario> { vec![] }
//! fn main() -> std::process::ExitCode {
//!     harness::cli::main(harness::cli::App {
//!         name: "mysim",
//!         about: "my service under faults",
//!         replay: "cargo run --bin mysim --",
//!         scenarios: scenarios(),
//!     })
//! }
//! ```

use crate::report::SHOWN_PER_CHECK;
use crate::runner::{self, RunResult};
use crate::scenario::{Param, Scenario};
use crate::schedule::{FaultSelection, Schedule};
use crate::sh_quote;
use clap::{Arg, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A harness binary: its name, what it is about, the command that replays
/// a seed (printed with every failure), and its scenarios (the first is
/// the default).
pub struct App {
    pub name: &'static str,
    pub about: &'static str,
    /// Prefix of a replay command, e.g. `cargo sim`.
    pub replay: &'static str,
    pub scenarios: Vec<&'static dyn Scenario>,
}

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct CommonArgs {
    /// Scenario to run (default: the first one listed in --help).
    #[arg(long)]
    scenario: Option<String>,
    /// Turn on a planted bug of the scenario (see --help for their names;
    /// `none`: no bug).
    #[arg(long)]
    bug: Option<String>,
    /// Fault kinds: `swarm` (each seed draws a subset), `all`, `none`, or a
    /// comma-separated list of the scenario's kinds.
    #[arg(long, default_value = "swarm")]
    faults: String,
    /// Where failing runs write their history, report and schedule
    /// (default: sim-out). `schedule` and `bench` write nothing.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one seed (or a schedule file) and check it.
    Run {
        #[command(flatten)]
        common: CommonArgs,
        /// The seed: it draws the run's faults, workload and options.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Replay a schedule written by `shrink` (or by a failing run). The
        /// file says what the run is: --seed, --scenario, --faults and the
        /// scenario's options cannot be given with it; --bug NAME (or
        /// --bug none) replaces the file's bug.
        #[arg(long)]
        schedule: Option<PathBuf>,
        /// Run twice and compare the hashes of the whole trace.
        #[arg(long)]
        check_determinism: bool,
        /// Write history, report and schedule even if the run passes.
        #[arg(long)]
        write: bool,
        /// Print only a one-line JSON summary: what a sweep's worker
        /// answers for a seed (see --worker).
        #[arg(long, hide = true)]
        summary: bool,
        /// Run the seeds read from stdin, one per line, one after the
        /// other in this process, each as `--summary` would (`sweep`'s
        /// worker processes; --seed is ignored).
        #[arg(long, hide = true)]
        worker: bool,
    },
    /// Run many seeds; list the failing ones with their replay commands.
    Sweep {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        opts: SweepOpts,
    },
    /// Minimise a failing seed's schedule while the same check still fails.
    Shrink {
        #[command(flatten)]
        common: CommonArgs,
        /// The failing seed to shrink.
        #[arg(long)]
        seed: u64,
        /// Most candidate runs to try (at least 1).
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
        max_runs: u64,
    },
    /// Print the schedules seeds draw (JSON, one per line), without running them.
    Schedule {
        #[command(flatten)]
        common: CommonArgs,
        /// Seed range A..B (B excluded).
        #[arg(long, default_value = "0..1")]
        seeds: String,
    },
    /// Throughput: simulated seconds per wall-clock second, seeds per minute (one core).
    Bench {
        #[command(flatten)]
        common: CommonArgs,
        /// Seeds to run: a number N (seeds 0..N) or a range A..B (B excluded).
        #[arg(long, default_value = "20")]
        seeds: String,
    },
}

/// The common flags, resolved against the registry: the scenario, the
/// fault selection and the scenario's options.
#[derive(Clone)]
struct Common {
    app: &'static App,
    scenario: &'static dyn Scenario,
    bug: Option<String>,
    faults: String,
    selection: FaultSelection,
    out: PathBuf,
    /// `--NAME VALUE` options, in the scenario's order.
    set: Vec<(String, String)>,
}

impl Common {
    /// Whether the scenario's floors apply: they are set for the fault
    /// kinds seeds draw (`swarm`) or for every kind (`all`). With `none`
    /// or a chosen list, a path those kinds cannot reach would miss its
    /// floor with nothing wrong.
    fn floors_apply(&self) -> bool {
        match &self.selection {
            FaultSelection::Swarm => true,
            FaultSelection::Only(k) => k.len() == self.scenario.fault_kinds().len(),
        }
    }

    fn resolve(
        app: &'static App,
        mut a: CommonArgs,
        set: Vec<(String, String)>,
    ) -> Result<Common, String> {
        if a.bug.as_deref() == Some("none") {
            a.bug = None;
        }
        let names: Vec<&str> = app.scenarios.iter().map(|s| s.name()).collect();
        let scenario = match &a.scenario {
            None => *app.scenarios.first().ok_or("no scenario registered")?,
            Some(n) => *app
                .scenarios
                .iter()
                .find(|s| s.name() == n)
                .ok_or_else(|| format!("unknown scenario '{n}'; known: {}", names.join(", ")))?,
        };
        if let Some(b) = &a.bug {
            check_bug(app, scenario, b)?;
        }
        let own: Vec<&str> = scenario.params().iter().map(|p| p.name).collect();
        for (name, _) in &set {
            if !own.contains(&name.as_str()) {
                let owners: Vec<&str> = app
                    .scenarios
                    .iter()
                    .filter(|s| s.params().iter().any(|p| p.name == name))
                    .map(|s| s.name())
                    .collect();
                return Err(format!(
                    "--{name} applies to --scenario {} only",
                    owners.join(" or ")
                ));
            }
        }
        let kinds = scenario.fault_kinds();
        let selection = FaultSelection::parse(&a.faults, &kinds).map_err(|e| {
            // A kind of another scenario: say whose.
            for k in a.faults.split(',').map(str::trim) {
                let owners = owners(app, |s| s.fault_kinds().contains(&k));
                if !kinds.contains(&k) && !owners.is_empty() {
                    return format!(
                        "fault kind '{k}' is one of --scenario {}'s, not of {}'s (its kinds: {})",
                        owners.join(" or "),
                        scenario.name(),
                        kinds.join(", ")
                    );
                }
            }
            e
        })?;
        // A list as the replay command and the sweep print it back:
        // `crash, pause` is `crash,pause`.
        let faults = match a.faults.as_str() {
            "swarm" | "all" | "none" => a.faults,
            list => list.split(',').map(str::trim).collect::<Vec<_>>().join(","),
        };
        let out = a.out.unwrap_or_else(|| PathBuf::from("sim-out"));
        check_dir("--out", &out)?;
        let c = Common {
            app,
            scenario,
            bug: a.bug,
            faults,
            selection,
            out,
            set,
        };
        // A bad option value is an error now, not in the middle of a sweep.
        c.schedule(0)?;
        Ok(c)
    }

    fn schedule(&self, seed: u64) -> Result<Schedule, String> {
        let mut s = self
            .scenario
            .generate(seed, self.bug.as_deref(), &self.selection);
        for (name, value) in &self.set {
            self.scenario
                .set_param(&mut s, name, value)
                .map_err(|e| format!("--{name} {value}: {e}"))?;
        }
        Ok(s)
    }

    /// The flags that choose what a seed runs, as `run` takes them.
    fn args(&self) -> Vec<String> {
        let mut args = vec!["--scenario".to_string(), self.scenario.name().to_string()];
        if let Some(b) = &self.bug {
            args.extend(["--bug".into(), b.clone()]);
        }
        if self.faults != "swarm" {
            args.extend(["--faults".into(), self.faults.clone()]);
        }
        for (name, value) in &self.set {
            args.extend([format!("--{name}"), value.clone()]);
        }
        args
    }

    fn replay(&self, seed: u64) -> String {
        self.command("run", seed)
    }

    /// The command line of `sub` (run, shrink) for `seed` with these flags.
    fn command(&self, sub: &str, seed: u64) -> String {
        let args: Vec<String> = self.args().iter().map(|a| sh_quote(a)).collect();
        format!("{} {sub} {} --seed {seed}", self.app.replay, args.join(" "))
    }
}

/// The scenarios of `app` for which `has` holds, by name.
fn owners(app: &App, has: impl Fn(&dyn Scenario) -> bool) -> Vec<&'static str> {
    let mut names = Vec::new();
    for &s in &app.scenarios {
        if has(s) {
            names.push(s.name());
        }
    }
    names
}

/// `--bug NAME` must be one of the scenario's bugs; one of another
/// scenario's is named as such.
fn check_bug(app: &App, scenario: &dyn Scenario, b: &str) -> Result<(), String> {
    let bugs = scenario.bugs();
    if bugs.contains(&b) {
        return Ok(());
    }
    let owners = owners(app, |s| s.bugs().contains(&b));
    if !owners.is_empty() {
        return Err(format!(
            "'{b}' is a bug of --scenario {}, not of {}: add --scenario {}",
            owners.join(" or "),
            scenario.name(),
            owners[0]
        ));
    }
    Err(format!(
        "unknown bug '{b}' for scenario {}; known: {}",
        scenario.name(),
        if bugs.is_empty() {
            "none".to_string()
        } else {
            bugs.join(", ")
        }
    ))
}

/// That `path` can be the directory a command writes into: it is one, or
/// the nearest of its ancestors that exists is one. Checked before any
/// run, so that a long sweep or shrink does not end on it.
fn check_dir(flag: &str, path: &Path) -> Result<(), String> {
    let mut p = Some(path);
    while let Some(q) = p.filter(|q| !q.as_os_str().is_empty()) {
        match std::fs::metadata(q) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => {
                return Err(format!(
                    "{flag} {}: {} is a file, not a directory",
                    path.display(),
                    q.display()
                ))
            }
            // Not there, or under a file (ENOTDIR): the parent tells.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                p = q.parent()
            }
            Err(e) => return Err(format!("{flag} {}: {}: {e}", path.display(), q.display())),
        }
    }
    Ok(())
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num
        .parse()
        .map_err(|_| format!("bad duration '{s}': use e.g. 90s, 10m, 1h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("bad duration unit in '{s}': use s, m or h")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("bad duration '{s}': too long"))
}

fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let err = || format!("bad seed range '{s}': use A..B, e.g. 0..1000 (seeds are 0 or more)");
    let (a, b) = s.split_once("..").ok_or_else(err)?;
    let (a, b): (u64, u64) = (a.parse().map_err(|_| err())?, b.parse().map_err(|_| err())?);
    if a >= b {
        return Err(format!(
            "seed range '{s}' has no seed: B is excluded, so A must be below B (e.g. {a}..{})",
            a.saturating_add(1)
        ));
    }
    Ok((a, b))
}

/// The seeds of `a..b` that shard `i/n` runs (those with s % n == i), as
/// the first one and how many: a sweep never lists them, so any range
/// costs nothing before its first seed.
fn shard_seeds(a: u64, b: u64, i: u64, n: u64) -> (u64, u64) {
    let first = a as u128 + (i as u128 + n as u128 - (a % n) as u128) % n as u128;
    if first >= b as u128 {
        return (a, 0);
    }
    let first = first as u64;
    (first, (b - 1 - first) / n + 1)
}

fn parse_shard(s: &str) -> Result<(u64, u64), String> {
    let err = || format!("bad shard '{s}': use I/N with 0 <= I < N, e.g. 0/4");
    let (i, n) = s.split_once('/').ok_or_else(err)?;
    let (i, n): (u64, u64) = (i.parse().map_err(|_| err())?, n.parse().map_err(|_| err())?);
    if n == 0 || i >= n {
        return Err(err());
    }
    Ok((i, n))
}

/// A run's name in `--out`: scenario, seed and bug.
fn run_name(s: &Schedule) -> String {
    let mut name = format!("{}-seed-{}", s.scenario, s.seed);
    if let Some(b) = &s.bug {
        name += &format!("-{b}");
    }
    name
}

/// `std::fs::write`, with the path in its error.
fn write_file(path: &Path, contents: impl AsRef<[u8]>) -> Result<(), String> {
    std::fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The files [`write_failure`] wrote into `dir`, as `dir/{a,b,...}`.
fn written(dir: &Path) -> String {
    let files: Vec<&str> = [
        "history.jsonl",
        "report.html",
        "schedule.json",
        "failure.txt",
        "replay.txt",
    ]
    .into_iter()
    .filter(|f| dir.join(f).exists())
    .collect();
    format!("{}/{{{}}}", dir.display(), files.join(","))
}

/// The faults a schedule plays, counted by kind: after a shrink or an
/// edit they are fewer than the drawn configuration's kinds suggest.
fn scheduled(s: &Schedule) -> String {
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &s.faults {
        *kinds.entry(f.fault.kind()).or_default() += 1;
    }
    let each: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    match s.faults.len() {
        0 => "0 faults scheduled".to_string(),
        1 => format!("1 fault scheduled: {}", each.join(", ")),
        n => format!("{n} faults scheduled: {}", each.join(", ")),
    }
}

/// Writes history, report (if the scenario draws one), schedule, failures
/// and replay command into OUT/NAME (NAME from [`run_name`], then
/// `suffix`); returns the directory.
fn write_failure(
    c: &Common,
    out: &Path,
    suffix: &str,
    r: &RunResult,
    replay: &str,
) -> Result<PathBuf, String> {
    let s = &r.schedule;
    let dir = out.join(run_name(s) + suffix);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // A report of an earlier run there is not this run's.
    let _ = std::fs::remove_file(dir.join("report.html"));
    write_file(&dir.join("history.jsonl"), r.history.to_jsonl())?;
    write_file(
        &dir.join("schedule.json"),
        serde_json::to_string_pretty(s).unwrap(),
    )?;
    let title = format!(
        "{} seed {}: {}",
        s.scenario,
        s.seed,
        r.failures.first().map_or("passed", |f| f.check)
    );
    if let Some(page) = c.scenario.report(r, &title) {
        write_file(&dir.join("report.html"), with_verdict(&page, r))?;
    }
    let failures: Vec<String> = r
        .failures
        .iter()
        .map(|f| format!("[{}] {}", f.check, f.message))
        .collect();
    write_file(&dir.join("failure.txt"), failures.join("\n") + "\n")?;
    write_file(&dir.join("replay.txt"), format!("{replay}\n"))?;
    Ok(dir)
}

/// The page with the run's verdict on top (see
/// [`report::with_verdict`](crate::report::with_verdict)).
pub fn with_verdict(page: &str, r: &RunResult) -> String {
    let failures: Vec<(&str, &str)> = r
        .failures
        .iter()
        .map(|f| (f.check, f.message.as_str()))
        .collect();
    crate::report::with_verdict(page, &failures, r.lin.is_some())
}

/// A child process (`run --worker`) that runs a sweep's seeds one after
/// the other. A fresh process per seed spent a few per cent of a checkout
/// seed's time starting and having the kernel zero the pages it touched
/// (README, "Scenario checkout", step 13); a worker reuses its pages. Its
/// runs are the ones a fresh process gives (`sim run --check-determinism`
/// and the test `a_worker_runs_each_seed_as_a_fresh_process_does`), and to
/// keep whatever a run might leave behind from reaching many others, a
/// worker is replaced after a seed that failed, after it died, and after
/// [`Worker::SEEDS`] seeds.
struct Worker {
    proc: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    /// What the process wrote on stderr since its current seed began (at
    /// most [`Worker::STDERR`] bytes).
    stderr: std::sync::Arc<Mutex<Vec<u8>>>,
    drain: Option<std::thread::JoinHandle<()>>,
    seeds: u32,
}

impl Worker {
    /// Seeds a worker runs before a fresh one takes over.
    const SEEDS: u32 = 64;
    const STDERR: usize = 16 << 10;

    fn start(c: &Common) -> std::io::Result<Worker> {
        use std::io::Read;
        use std::process::Stdio;
        let exe = std::env::current_exe()?;
        let mut proc = std::process::Command::new(exe)
            .arg("run")
            .arg("--worker")
            .args(c.args())
            .arg("--out")
            .arg(&c.out)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let (stdin, stdout, mut err) = (
            proc.stdin.take(),
            proc.stdout.take().expect("piped stdout"),
            proc.stderr.take().expect("piped stderr"),
        );
        let stderr = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        // Drained as it comes, so a chatty run never blocks on a full pipe.
        let drain = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut buf) {
                let mut v = sink.lock().unwrap();
                let room = Worker::STDERR.saturating_sub(v.len());
                v.extend_from_slice(&buf[..n.min(room)]);
            }
        });
        Ok(Worker {
            proc,
            stdin,
            stdout: std::io::BufReader::new(stdout),
            stderr,
            drain: Some(drain),
            seeds: 0,
        })
    }

    /// Runs `seed`; `Err` with why if the process died (or could not be
    /// written to) before answering.
    fn run(&mut self, seed: u64) -> Result<Child, String> {
        use std::io::{BufRead, Write};
        self.seeds += 1;
        self.stderr.lock().unwrap().clear();
        let stdin = self.stdin.as_mut().expect("open until dropped");
        if writeln!(stdin, "{seed}")
            .and_then(|_| stdin.flush())
            .is_ok()
        {
            let mut line = String::new();
            while matches!(self.stdout.read_line(&mut line), Ok(1..)) {
                // Anything else a run printed on stdout is not an answer.
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if v["seed"].as_u64() == Some(seed) {
                        return Ok(Child::from_summary(&v));
                    }
                }
                line.clear();
            }
        }
        Err(self.died())
    }

    /// Why the process ended: its exit status and the start of what it
    /// wrote on stderr for the seed it was running.
    fn died(&mut self) -> String {
        self.stdin.take();
        let status = match self.proc.wait() {
            Ok(s) => s.to_string(),
            Err(e) => format!("status unknown: {e}"),
        };
        if let Some(d) = self.drain.take() {
            let _ = d.join();
        }
        let err = String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned();
        // It may have died of what an earlier seed left behind.
        let earlier = match self.seeds - 1 {
            0 => String::new(),
            n => format!(
                " (after {n} earlier seed{} in its worker: run it alone to see if it dies by itself)",
                if n == 1 { "" } else { "s" }
            ),
        };
        format!(
            "the child run died ({status}){earlier}: {}",
            err.chars().take(300).collect::<String>()
        )
    }
}

impl Drop for Worker {
    /// Closes its stdin, so it ends once its current seed is answered.
    fn drop(&mut self) {
        if self.stdin.take().is_some() {
            let _ = self.proc.wait();
        }
        if let Some(d) = self.drain.take() {
            let _ = d.join();
        }
    }
}

/// Runs `seed` on the job's worker, starting one if there is none, and
/// retires the worker when it should be (see [`Worker`]).
fn run_on_worker(c: &Common, worker: &mut Option<Worker>, seed: u64) -> Child {
    let died = |why: String| Child {
        sim_ms: 0,
        failure: Some(("harness".into(), why)),
        coverage: BTreeMap::new(),
        unwritten: None,
    };
    if worker.is_none() {
        match Worker::start(c) {
            Ok(w) => *worker = Some(w),
            Err(e) => return died(format!("cannot start a child run: {e}")),
        }
    }
    let w = worker.as_mut().expect("started above");
    match w.run(seed) {
        Ok(child) => {
            if child.failure.is_some() || w.seeds >= Worker::SEEDS {
                *worker = None;
            }
            child
        }
        Err(why) => {
            *worker = None;
            died(why)
        }
    }
}

/// What one seed of a sweep gave.
struct Child {
    sim_ms: u64,
    failure: Option<(String, String)>,
    coverage: BTreeMap<String, u64>,
    /// Why its files could not be written, if they could not.
    unwritten: Option<String>,
}

impl Child {
    /// From a [`summary`] line.
    fn from_summary(v: &serde_json::Value) -> Child {
        Child {
            sim_ms: v["sim_ms"].as_u64().unwrap_or(0),
            failure: v["failure"].as_array().map(|a| {
                (
                    a[0].as_str().unwrap_or("?").to_string(),
                    a[1].as_str().unwrap_or("").to_string(),
                )
            }),
            coverage: serde_json::from_value(v["coverage"].clone()).unwrap_or_default(),
            unwritten: v["unwritten"].as_str().map(str::to_string),
        }
    }
}

/// At most `n` bytes of `s`, cut at a character boundary.
fn clip(s: &mut String, n: usize) {
    s.truncate(s.floor_char_boundary(n));
}

fn print_result(r: &RunResult, wall: Duration) {
    println!(
        "verdict: {} ({} client ops, {} events, {:.1} s simulated in {:.2} s, trace {:016x})",
        if r.passed() { "PASS" } else { "FAIL" },
        r.client_ops,
        r.history.ops.len(),
        r.sim_ms as f64 / 1e3,
        wall.as_secs_f64(),
        r.trace_hash()
    );
    print_failures(r);
    let reached: Vec<String> = r
        .coverage
        .iter()
        .map(|(name, n)| format!("{name} x{n}"))
        .collect();
    println!(
        "coverage: {}",
        if reached.is_empty() {
            "nothing counted".to_string()
        } else {
            reached.join(", ")
        }
    );
}

/// A run's failures, one line each; the same line again (e.g. one check
/// failing the same way for several clients) is counted, not repeated;
/// past [`SHOWN_PER_CHECK`] lines of one check, the rest are counted.
fn print_failures(r: &RunResult) {
    for line in failure_lines(r) {
        println!("  {line}");
    }
}

fn failure_lines(r: &RunResult) -> Vec<String> {
    let mut lines: Vec<(&str, String, usize)> = Vec::new();
    for f in &r.failures {
        let line = format!("[{}] {}", f.check, f.message);
        match lines.iter_mut().find(|(_, l, _)| *l == line) {
            Some((_, _, n)) => *n += 1,
            None => lines.push((f.check, line, 1)),
        }
    }
    let mut out = Vec::new();
    let mut hidden: Vec<(&str, usize)> = Vec::new();
    for (check, line, n) in &lines {
        let shown = out
            .iter()
            .filter(|(c, _): &&(&str, String)| c == check)
            .count();
        if shown < SHOWN_PER_CHECK {
            let l = if *n == 1 {
                line.clone()
            } else {
                format!("{line} (x{n})")
            };
            out.push((*check, l));
        } else {
            match hidden.iter_mut().find(|(c, _)| c == check) {
                Some((_, k)) => *k += n,
                None => hidden.push((check, *n)),
            }
        }
    }
    let mut text: Vec<String> = out.into_iter().map(|(_, l)| l).collect();
    for (check, k) in hidden {
        text.push(format!(
            "[{check}] ... and {k} more (failure.txt and the report list them all)"
        ));
    }
    text
}

/// Every scenario's options, once each (a name two scenarios share is one
/// flag).
fn all_params(app: &App) -> Vec<(Param, Vec<&'static str>)> {
    let mut out: Vec<(Param, Vec<&'static str>)> = Vec::new();
    for s in &app.scenarios {
        for p in s.params() {
            match out.iter_mut().find(|(q, _)| q.name == p.name) {
                Some((_, owners)) => owners.push(s.name()),
                None => out.push((p, vec![s.name()])),
            }
        }
    }
    out
}

/// Parses the command line and runs the subcommand. Exit status: 0 passed
/// (`shrink`: shrunk; `schedule`, `bench`: done); 1 a check failed, a
/// coverage floor was missed, or `--check-determinism` found two traces;
/// 2 the command could not do what was asked (bad usage, a file it cannot
/// read or write, `shrink` of a seed that passes).
pub fn main(app: App) -> ExitCode {
    let app: &'static App = Box::leak(Box::new(app));
    let params = all_params(app);
    let scenarios: Vec<String> = app
        .scenarios
        .iter()
        .map(|s| {
            let bugs = s.bugs();
            format!(
                "  {}: {}\n      faults: {}{}",
                s.name(),
                s.about(),
                s.fault_kinds().join(","),
                if bugs.is_empty() {
                    String::new()
                } else {
                    format!("\n      bugs: {}", bugs.join(", "))
                }
            )
        })
        .collect();
    let mut cmd = Cli::command()
        .name(app.name)
        .about(app.about)
        .after_help(format!(
            "Scenarios:\n{}\n\nExit status: 0 passed; 1 a check failed, a coverage floor was missed, or --check-determinism found two traces; 2 the command could not do what was asked (bad usage, a file it cannot read or write, shrink of a seed that passes).",
            scenarios.join("\n")
        ));
    for sub in ["run", "sweep", "shrink", "schedule", "bench"] {
        let params = params.clone();
        cmd = cmd.mut_subcommand(sub, move |mut sc| {
            for (p, owners) in &params {
                sc = sc.arg(
                    Arg::new(p.name)
                        .long(p.name)
                        .value_name("VALUE")
                        .help(format!("Scenario {}: {}", owners.join(", "), p.help)),
                );
            }
            sc
        });
    }
    let matches = cmd.get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let (_, sub) = matches.subcommand().expect("a subcommand is required");
    let set: Vec<(String, String)> = params
        .iter()
        .filter_map(|(p, _)| {
            sub.get_one::<String>(p.name)
                .map(|v| (p.name.to_string(), v.clone()))
        })
        .collect();
    let result = match cli.cmd {
        Cmd::Run {
            common,
            schedule: Some(path),
            check_determinism,
            write,
            ..
        } => run_schedule(app, sub, common, &set, &path, check_determinism, write),
        Cmd::Run {
            common,
            seed,
            schedule: None,
            check_determinism,
            write,
            summary,
            worker,
        } => Common::resolve(app, common, set).and_then(|c| {
            if worker {
                cmd_worker(&c)
            } else if summary {
                cmd_summary(&c, seed)
            } else {
                cmd_run(
                    &c,
                    c.schedule(seed)?,
                    c.replay(seed),
                    "",
                    check_determinism,
                    write,
                )
            }
        }),
        Cmd::Sweep { common, opts } => {
            Common::resolve(app, common, set).and_then(|c| cmd_sweep(&c, &opts))
        }
        Cmd::Shrink {
            common,
            seed,
            max_runs,
        } => Common::resolve(app, common, set)
            .and_then(|c| cmd_shrink(&c, seed, max_runs.try_into().unwrap_or(usize::MAX))),
        Cmd::Schedule { common, seeds } => no_out("schedule", "prints the schedules", &common)
            .and_then(|_| Common::resolve(app, common, set))
            .and_then(|c| cmd_schedule(&c, &seeds)),
        Cmd::Bench { common, seeds } => {
            no_out("bench", "prints figures and the failing seeds", &common)
                .and_then(|_| Common::resolve(app, common, set))
                .and_then(|c| cmd_bench(&c, &seeds))
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// `run --summary`: one line of JSON for `sweep`.
fn cmd_summary(c: &Common, seed: u64) -> Result<ExitCode, String> {
    runner::quiet_panics();
    println!("{}", summary(c, seed)?);
    Ok(ExitCode::SUCCESS)
}

/// `run --worker`: the seeds on stdin, one per line, each answered with its
/// summary line as soon as it has run; ends at the end of stdin.
fn cmd_worker(c: &Common) -> Result<ExitCode, String> {
    use std::io::{BufRead, Write};
    runner::quiet_panics();
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("worker: cannot read stdin: {e}"))?;
        let seed: u64 = line
            .trim()
            .parse()
            .map_err(|_| format!("worker: {line:?} is not a seed"))?;
        // For the test of a worker that dies mid-seed.
        if std::env::var("SIM_TEST_WORKER_ABORT").is_ok_and(|v| v == seed.to_string()) {
            eprintln!("worker: aborting at seed {seed} (SIM_TEST_WORKER_ABORT)");
            std::process::abort();
        }
        let v = summary(c, seed)?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{v}")
            .and_then(|_| out.flush())
            .map_err(|e| format!("worker: cannot write stdout: {e}"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A seed's verdict run (and, if it fails, its run with every event, whose
/// files it writes): what `sweep` needs of it, as JSON.
fn summary(c: &Common, seed: u64) -> Result<serde_json::Value, String> {
    let r = runner::run_verdict(c.scenario, &c.schedule(seed)?);
    let (mut first, mut unwritten) = (None, None);
    if !r.passed() {
        let full = runner::rerun_with_detail(c.scenario, &r);
        first = full.failures.first().map(|f| (f.check, f.message.clone()));
        unwritten = write_failure(c, &c.out, "", &full, &c.replay(seed)).err();
    }
    Ok(serde_json::json!({
        "seed": seed,
        "sim_ms": r.sim_ms,
        "client_ops": r.client_ops,
        "events": r.history.ops.len(),
        "failure": first,
        "coverage": r.coverage,
        "unwritten": unwritten,
    }))
}

/// A schedule file, of one of `app`'s scenarios.
fn read_schedule(app: &App, path: &Path) -> Result<Schedule, String> {
    if path.is_dir() {
        let inside = path.join("schedule.json");
        return Err(if inside.is_file() {
            format!(
                "{} is a directory: did you mean {}?",
                path.display(),
                inside.display()
            )
        } else {
            format!("{} is a directory, not a schedule file", path.display())
        });
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let s: Schedule = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a schedule: {e}", path.display()))?;
    if !app.scenarios.iter().any(|x| x.name() == s.scenario) {
        return Err(format!(
            "{} is a schedule of scenario '{}', which this binary does not have",
            path.display(),
            s.scenario
        ));
    }
    Ok(s)
}

/// `run --schedule FILE`: the file says what the run is, so the flags that
/// choose a run are refused rather than ignored; `--bug` replaces its bug
/// (`--bug none` replays it without).
fn run_schedule(
    app: &'static App,
    sub: &clap::ArgMatches,
    mut common: CommonArgs,
    set: &[(String, String)],
    path: &Path,
    check_determinism: bool,
    write: bool,
) -> Result<ExitCode, String> {
    use clap::parser::ValueSource;
    let mut given: Vec<String> = ["seed", "scenario", "faults"]
        .into_iter()
        .filter(|n| sub.value_source(n) == Some(ValueSource::CommandLine))
        .map(|n| format!("--{n}"))
        .collect();
    given.extend(set.iter().map(|(n, _)| format!("--{n}")));
    if !given.is_empty() {
        return Err(format!(
            "{} cannot be given with --schedule: the file says what the run is (edit a copy to change it); only --bug NAME, or --bug none, replaces the file's bug",
            given.join(", ")
        ));
    }
    let mut sched = read_schedule(app, path)?;
    let bug = common.bug.take();
    common.scenario = Some(sched.scenario.clone());
    let c = Common::resolve(app, common, Vec::new())?;
    let mut replay = format!(
        "{} run --schedule {}",
        app.replay,
        sh_quote(&path.display().to_string())
    );
    if let Some(b) = bug {
        sched.bug = (b != "none").then(|| b.clone());
        replay += &format!(" --bug {}", sh_quote(&b));
    }
    sched
        .check(&c.scenario.fault_kinds(), &c.scenario.bugs())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    // Not over the seed's own folder: a shrunk schedule's run goes where
    // `shrink` wrote it, any other file's beside the seed's.
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let suffix = if stem.ends_with(".shrunk") {
        ".shrunk"
    } else {
        ".replay"
    };
    cmd_run(&c, sched, replay, suffix, check_determinism, write)
}

/// `suffix` names the folder a failing run writes (see [`write_failure`]):
/// "" for a seed, ".shrunk" or ".replay" for a schedule file.
fn cmd_run(
    c: &Common,
    sched: Schedule,
    replay: String,
    suffix: &str,
    check_determinism: bool,
    write: bool,
) -> Result<ExitCode, String> {
    let scenario = c.scenario;
    println!(
        "scenario {} seed {} bug {}",
        sched.scenario,
        sched.seed,
        sched.bug.as_deref().unwrap_or("none")
    );
    println!(
        "{} hosts, {} clients, {} ms; {}",
        sched.nodes, sched.clients, sched.duration_ms, sched.config
    );
    for line in scenario.describe(&sched) {
        println!("{line}");
    }
    println!("{}", scheduled(&sched));
    runner::quiet_panics();
    let t = Instant::now();
    let r = runner::run(scenario, &sched);
    print_result(&r, t.elapsed());
    if check_determinism && !same_trace_again(c, &sched, &r) {
        return Ok(ExitCode::from(1));
    }
    if r.passed() && !write {
        return Ok(ExitCode::SUCCESS);
    }
    let dir = match write_failure(c, &c.out, suffix, &r, &replay) {
        Ok(dir) => {
            println!("wrote {}", written(&dir));
            Some(dir)
        }
        // A failed check stays exit 1: the files are not the verdict.
        Err(e) if !r.passed() => {
            eprintln!("error: {e}");
            None
        }
        Err(e) => return Err(e),
    };
    println!("replay: {replay}");
    if let Some(report) = dir.map(|d| d.join("report.html")).filter(|p| p.exists()) {
        println!("report: {} (open it in a browser)", report.display());
    }
    // A seed's failure (not a file's) with faults to leave out.
    if !r.passed() && suffix.is_empty() && !sched.faults.is_empty() {
        println!(
            "shrink: {} (the fewest faults, clients and operations that still fail)",
            c.command("shrink", sched.seed)
        );
    }
    Ok(if r.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `--check-determinism`: runs the schedule again and compares traces; on
/// divergence writes both histories, to find where they part.
fn same_trace_again(c: &Common, sched: &Schedule, r: &RunResult) -> bool {
    let again = runner::run(c.scenario, sched);
    // Each hash serializes a whole history: take them once.
    let (first, second) = (r.trace_hash(), again.trace_hash());
    if first == second {
        println!("determinism: OK (two runs, trace {first:016x})");
        return true;
    }
    println!("determinism: FAILED: trace {first:016x} then {second:016x}");
    let _ = std::fs::create_dir_all(&c.out);
    for (name, h) in [("first", &r.history), ("second", &again.history)] {
        let path = c.out.join(format!("determinism-{name}.jsonl"));
        if std::fs::write(&path, h.to_jsonl()).is_ok() {
            println!("wrote {}", path.display());
        }
    }
    false
}

fn parse_jobs(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "'{s}' is not a number of workers: use 1 or more (e.g. --jobs 2 on 2 cores)"
        )),
    }
}

#[derive(clap::Args)]
struct SweepOpts {
    /// Seed range A..B (B excluded).
    #[arg(long, default_value = "0..100")]
    seeds: String,
    /// Parallel jobs, each a worker process running its seeds one after
    /// another [default: the machine's cores]
    #[arg(long, value_parser = parse_jobs)]
    jobs: Option<usize>,
    /// Run only the seeds s with s % N == I (I/N), to split a sweep across machines.
    #[arg(long)]
    shard: Option<String>,
    /// Stop starting seeds after this long (e.g. 90s, 10m).
    #[arg(long)]
    time_budget: Option<String>,
    /// Stop at the first failing seed.
    #[arg(long)]
    stop_on_failure: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Add or change a coverage floor: COUNTER=PERCENT of the seeds (repeatable;
    /// enforced whatever --faults, the scenario's own floors only with swarm or all).
    #[arg(long = "floor")]
    floors: Vec<String>,
    /// Report the scenario's coverage floors without enforcing them.
    #[arg(long)]
    no_floors: bool,
    /// Where to write the coverage table as JSON (default OUT/coverage-SCENARIO.json).
    #[arg(long)]
    coverage_out: Option<PathBuf>,
}

fn cmd_sweep(c: &Common, o: &SweepOpts) -> Result<ExitCode, String> {
    let (a, b) = parse_range(&o.seeds)?;
    let (si, sn) = o
        .shard
        .as_deref()
        .map(parse_shard)
        .transpose()?
        .unwrap_or((0, 1));
    let budget = o.time_budget.as_deref().map(parse_duration).transpose()?;
    if budget == Some(Duration::ZERO) {
        return Err("--time-budget 0 would run no seed: give a positive time, e.g. 10m".into());
    }
    let (first, count) = shard_seeds(a, b, si, sn);
    if count == 0 {
        return Err(format!("--shard {si}/{sn} leaves no seed of {a}..{b}"));
    }
    if let Some(p) = &o.coverage_out {
        if p.is_dir() {
            return Err(format!(
                "--coverage-out {}: a directory; name a file, e.g. {}",
                p.display(),
                p.join("coverage.json").display()
            ));
        }
        if let Some(dir) = p.parent() {
            check_dir("--coverage-out", dir)?;
        }
    }
    let mut floors = c.scenario.floors();
    for f in &o.floors {
        crate::coverage::set_floor(&mut floors, f)?;
    }
    let tally = Mutex::new(crate::coverage::Tally::new(&floors));
    // The sweep's own threads, outside any simulation: each runs its seeds
    // on a worker process (see `Worker`).
    let jobs = o.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    println!(
        "sweep {} seeds {a}..{b}{} bug {} faults {} with {jobs} job{}",
        c.scenario.name(),
        if sn > 1 {
            format!(" shard {si}/{sn} ({count} seeds)")
        } else {
            String::new()
        },
        c.bug.as_deref().unwrap_or("none"),
        c.faults,
        if jobs == 1 { "" } else { "s" }
    );
    runner::quiet_panics();
    let bar = if o.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(count)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} seeds, {msg} [{elapsed} / ~{eta}]",
        )
        .unwrap(),
    );
    let start = Instant::now();
    let next = AtomicU64::new(0);
    let failed: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());
    let done = AtomicU64::new(0);
    let sim_ms = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                let mut worker: Option<Worker> = None;
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    // The first seed always runs: a sweep that ran none
                    // would pass having tested nothing.
                    if i >= count
                        || stop.load(Ordering::SeqCst)
                        || (i > 0 && budget.is_some_and(|b| start.elapsed() >= b))
                    {
                        return;
                    }
                    let seed = first + i * sn;
                    let child = run_on_worker(c, &mut worker, seed);
                    sim_ms.fetch_add(child.sim_ms, Ordering::Relaxed);
                    if let Ok(s) = c.schedule(seed) {
                        tally.lock().unwrap().add(&floors, &s, &child.coverage);
                    }
                    if let Some((check, mut msg)) = child.failure {
                        clip(&mut msg, 200);
                        let unwritten = child
                            .unwritten
                            .map(|e| format!("\n    its files were not written: {e}"))
                            .unwrap_or_default();
                        failed.lock().unwrap().push((
                            seed,
                            format!("[{check}] {msg}\n    replay: {}{unwritten}", c.replay(seed)),
                        ));
                        if o.stop_on_failure {
                            stop.store(true, Ordering::SeqCst);
                        }
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                    bar.inc(1);
                    bar.set_message(format!("{} failed", failed.lock().unwrap().len()));
                }
            });
        }
    });
    bar.finish_and_clear();
    let mut failed = failed.into_inner().unwrap();
    failed.sort();
    let (n, wall) = (done.load(Ordering::SeqCst), start.elapsed().as_secs_f64());
    println!(
        "{n} seeds run in {wall:.1} s ({:.0} seeds/min, {:.0}x real time); {} failed",
        n as f64 * 60.0 / wall,
        sim_ms.load(Ordering::Relaxed) as f64 / 1e3 / wall,
        failed.len()
    );
    if n < count {
        println!(
            "stopped early: {} of {count} seeds not run (time budget or --stop-on-failure)",
            count - n
        );
    }
    for (seed, msg) in &failed {
        println!("seed {seed}: {msg}");
    }
    if let Some((first, _)) = failed.first() {
        println!("first failing seed: {first}");
    }
    let floors_ok = report_coverage(c, o, &floors, &tally.into_inner().unwrap(), n == count)?;
    Ok(if failed.is_empty() && floors_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Prints the coverage table, writes it as JSON, and checks the floors;
/// false if a floor that is enforced (see `enforced` below) was missed.
fn report_coverage(
    c: &Common,
    o: &SweepOpts,
    floors: &[crate::scenario::Floor],
    tally: &crate::coverage::Tally,
    complete: bool,
) -> Result<bool, String> {
    use crate::coverage::Row;
    let rows = tally.rows(floors);
    print!("{}", crate::coverage::table(&rows, tally.seeds()));
    let sweep_counts =
        !o.no_floors && complete && tally.seeds() >= crate::coverage::MIN_SEEDS_FOR_FLOORS;
    // Floors given with --floor are enforced whatever the fault kinds
    // (over the seeds they apply to: one that replaces a scenario's floor
    // keeps its seeds).
    let flagged: Vec<String> = o
        .floors
        .iter()
        .filter_map(|f| crate::coverage::parse_floor(f).ok().map(|(name, _)| name))
        .collect();
    let enforced = |r: &Row| {
        r.floor.is_some() && sweep_counts && (c.floors_apply() || flagged.contains(&r.counter))
    };
    let path = o
        .coverage_out
        .clone()
        .unwrap_or_else(|| c.out.join(format!("coverage-{}.json", c.scenario.name())));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut counters = serde_json::to_value(&rows).expect("rows serialize");
    for (v, r) in counters
        .as_array_mut()
        .expect("an array")
        .iter_mut()
        .zip(&rows)
    {
        if let Some(floor) = v.get_mut("floor") {
            floor["enforced"] = serde_json::Value::Bool(enforced(r));
        }
    }
    let json = serde_json::json!({
        "scenario": c.scenario.name(),
        "args": c.args(),
        "seeds": tally.seeds(),
        "counters": counters,
    });
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("coverage written to {}", path.display());
    // A --floor on a counter nothing reached and the scenario does not
    // know is most likely a misspelt name: say so, since a small floor
    // over few seeds is not missed.
    let declared = c.scenario.floors();
    for name in &flagged {
        let reached = rows.iter().any(|r| &r.counter == name && r.seeds > 0);
        if !reached && !declared.iter().any(|f| f.counter == name) {
            println!(
                "--floor '{name}': no seed reached this counter, and the scenario declares no floor on it; check its name (`{} run` prints the counters a seed reached)",
                c.app.name
            );
        }
    }
    for r in &rows {
        if let Some(f) = r.floor.as_ref().filter(|f| f.below_by_chance()) {
            println!(
                "below its floor, within chance: {}",
                f.shortfall_text(&r.counter, "; more seeds would tell")
            );
        }
    }
    let missed: Vec<&Row> = rows
        .iter()
        .filter(|r| r.floor.as_ref().is_some_and(|f| !f.holds))
        .collect();
    for r in &missed {
        let f = r.floor.as_ref().unwrap();
        println!(
            "{}coverage floor missed: {}",
            if enforced(r) { "" } else { "(not enforced) " },
            f.shortfall_text(&r.counter, "")
        );
    }
    if missed.iter().any(|r| !enforced(r)) {
        println!(
            "floors not enforced: {}",
            if o.no_floors {
                "--no-floors".to_string()
            } else if !complete {
                "the sweep stopped early".to_string()
            } else if !sweep_counts {
                format!("fewer than {} seeds", crate::coverage::MIN_SEEDS_FOR_FLOORS)
            } else {
                format!(
                    "--faults {}: the scenario's floors are set for the kinds seeds draw (swarm) or every kind (all); --floor COUNTER=PCT enforces one",
                    c.faults
                )
            }
        );
    }
    Ok(!missed.iter().any(|r| enforced(r)))
}

fn cmd_shrink(c: &Common, seed: u64, max_runs: usize) -> Result<ExitCode, String> {
    runner::quiet_panics();
    let original = runner::run(c.scenario, &c.schedule(seed)?);
    if original.passed() {
        return Err(format!(
            "seed {seed} passes: nothing to shrink (try `sweep` to find a failing seed)"
        ));
    }
    println!(
        "seed {seed} fails [{}] with {} faults, {} clients, {} client ops; shrinking",
        original.first_check().unwrap(),
        original.schedule.faults.len(),
        original.schedule.clients,
        original.client_ops
    );
    let shrunk = crate::shrink::shrink(c.scenario, original, max_runs, |m| println!("  {m}"));
    let s = &shrunk.schedule;
    // Beside the seed's own files (a run of the seed wrote OUT/NAME), not
    // over them.
    let name = run_name(s) + ".shrunk";
    let path = c.out.join(format!("{name}.json"));
    std::fs::create_dir_all(&c.out)
        .map_err(|e| format!("cannot create {}: {e}", c.out.display()))?;
    write_file(&path, serde_json::to_string_pretty(s).unwrap())?;
    let replay = format!(
        "{} run --schedule {}",
        c.app.replay,
        sh_quote(&path.display().to_string())
    );
    let fdir = write_failure(c, &c.out, ".shrunk", &shrunk.result, &replay)?;
    let what = format!(
        "{} faults, {} clients, {} ops per client, {} ms, {} client ops",
        s.faults.len(),
        s.clients,
        if s.ops_per_client == u64::MAX {
            "unlimited".to_string()
        } else {
            s.ops_per_client.to_string()
        },
        s.duration_ms,
        shrunk.result.client_ops
    );
    if shrunk.complete {
        println!("minimal schedule after {} runs: {what}", shrunk.runs);
    } else {
        println!(
            "stopped by --max-runs {max_runs} (not minimal: more runs would shrink further): {what}"
        );
    }
    for f in &s.faults {
        println!(
            "  at {} ms for {} ms: {}",
            f.at_ms,
            f.duration_ms,
            serde_json::to_string(&f.fault).unwrap()
        );
    }
    print_failures(&shrunk.result);
    println!("wrote {} and {}", path.display(), written(&fdir));
    println!("replay: {replay}");
    Ok(ExitCode::SUCCESS)
}

/// `--out` where a command writes no file: an error, not silently ignored.
fn no_out(cmd: &str, what: &str, common: &CommonArgs) -> Result<(), String> {
    match &common.out {
        Some(dir) => Err(format!(
            "--out {}: `{cmd}` writes no files (it {what}); leave --out out, or use `run` \
             to write a seed's history, report and schedule",
            dir.display()
        )),
        None => Ok(()),
    }
}

fn cmd_schedule(c: &Common, seeds: &str) -> Result<ExitCode, String> {
    let (a, b) = parse_range(seeds)?;
    for seed in a..b {
        println!("{}", serde_json::to_string(&c.schedule(seed)?).unwrap());
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_bench(c: &Common, seeds: &str) -> Result<ExitCode, String> {
    let (a, b) = if seeds.contains("..") {
        parse_range(seeds)?
    } else {
        match seeds.parse::<u64>() {
            Ok(n) if n > 0 => (0, n),
            _ => {
                return Err(format!(
                    "bad --seeds '{seeds}': a number of seeds N (seeds 0..N) or a range A..B"
                ))
            }
        }
    };
    runner::quiet_panics();
    let start = Instant::now();
    let (mut sim_ms, mut ops, mut events) = (0u64, 0usize, 0usize);
    let mut failed = Vec::new();
    let mut check = Duration::ZERO;
    for seed in a..b {
        let r = runner::run(c.scenario, &c.schedule(seed)?);
        sim_ms += r.sim_ms;
        ops += r.client_ops;
        events += r.history.ops.len();
        if !r.passed() {
            failed.push(seed.to_string());
        }
        check += r.check_wall;
    }
    let wall = start.elapsed().as_secs_f64();
    let n = b - a;
    println!(
        "{n} seeds of {} on one core: {:.1} simulated s in {wall:.2} wall s ({:.2} s of it checking)",
        c.scenario.name(),
        sim_ms as f64 / 1e3,
        check.as_secs_f64()
    );
    println!(
        "  {:.0}x real time, {:.0} seeds/min, {:.0} client ops/s, {:.0} history events/s, {} failed{}",
        sim_ms as f64 / 1e3 / wall,
        n as f64 * 60.0 / wall,
        ops as f64 / wall,
        events as f64 / wall,
        failed.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(" (seeds {}: `run --seed N` replays one)", failed.join(", "))
        }
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Failure;
    use crate::schedule::{FaultSelection, HOST_KINDS};

    fn result(failures: Vec<Failure>) -> RunResult {
        let sel = FaultSelection::Only(vec![]);
        RunResult {
            schedule: Schedule::draw("x", 1, None, &HOST_KINDS, &sel, 3, 1_000),
            failures,
            history: checker::history::History::new(vec![]),
            lin: None,
            sim_ms: 0,
            client_ops: 0,
            check_wall: Duration::ZERO,
            coverage: BTreeMap::new(),
        }
    }

    #[test]
    fn replay_arguments_are_quoted_for_a_shell() {
        assert_eq!(sh_quote("pause-leader,partition"), "pause-leader,partition");
        assert_eq!(sh_quote("sim-out/kv-seed-4.json"), "sim-out/kv-seed-4.json");
        assert_eq!(sh_quote("my dir/s.json"), "'my dir/s.json'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert_eq!(sh_quote(""), "''");
    }

    #[test]
    fn a_shard_of_a_range_is_counted_not_listed() {
        let list =
            |a: u64, b: u64, i: u64, n: u64| (a..b).filter(|s| s % n == i).collect::<Vec<_>>();
        for (a, b, i, n) in [
            (0, 10, 0, 1),
            (0, 10, 1, 3),
            (5, 6, 2, 3),
            (7, 100, 3, 4),
            (0, 1, 1, 3),
        ] {
            let (first, count) = shard_seeds(a, b, i, n);
            let got: Vec<u64> = (0..count).map(|k| first + k * n).collect();
            assert_eq!(got, list(a, b, i, n), "{a}..{b} {i}/{n}");
        }
        assert_eq!(shard_seeds(0, u64::MAX, 0, 1), (0, u64::MAX));
        assert_eq!(
            shard_seeds(u64::MAX - 1, u64::MAX, 1, u64::MAX),
            (u64::MAX - 1, 0)
        );
    }

    #[test]
    fn seed_ranges_say_what_is_wrong() {
        assert_eq!(parse_range("0..10"), Ok((0, 10)));
        let e = parse_range("5..5").unwrap_err();
        assert!(e.contains("no seed") && e.contains("5..6"), "{e}");
        assert!(parse_range("10..5")
            .unwrap_err()
            .contains("A must be below B"));
        assert!(parse_range("-1..5").unwrap_err().contains("0 or more"));
        assert!(parse_duration("99999999999999999999s")
            .unwrap_err()
            .contains("too long"));
    }

    #[test]
    fn the_out_directory_is_checked_before_any_run() {
        let d = std::env::temp_dir().join(format!("harness-check-dir-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let file = d.join("afile");
        std::fs::write(&file, "x").unwrap();
        assert_eq!(check_dir("--out", &d), Ok(()));
        assert_eq!(check_dir("--out", &d.join("new/deeper")), Ok(()));
        assert_eq!(check_dir("--out", Path::new("relative-new-dir")), Ok(()));
        let e = check_dir("--out", &file.join("out")).unwrap_err();
        assert!(e.contains("afile is a file, not a directory"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn clipping_keeps_whole_characters() {
        let mut s = "ab→c".to_string();
        clip(&mut s, 3);
        assert_eq!(s, "ab");
        let mut s = "abc".to_string();
        clip(&mut s, 200);
        assert_eq!(s, "abc");
    }

    #[test]
    fn jobs_must_be_at_least_one() {
        assert_eq!(parse_jobs("2"), Ok(2));
        for bad in ["0", "-1", "two"] {
            let e = parse_jobs(bad).unwrap_err();
            assert!(e.contains("use 1 or more"), "{e}");
        }
    }

    #[test]
    fn the_terminal_shows_ten_failures_of_a_check_and_counts_the_rest() {
        let mut fs: Vec<Failure> = (0..14)
            .map(|i| Failure::new("vclock", format!("violation {i}")))
            .collect();
        fs.push(Failure::new("vclock", "violation 0"));
        fs.push(Failure::new("liveness", "stuck"));
        let lines = failure_lines(&result(fs));
        assert_eq!(lines.len(), 12, "{lines:#?}");
        assert_eq!(lines[0], "[vclock] violation 0 (x2)");
        assert_eq!(lines[9], "[vclock] violation 9");
        assert_eq!(lines[10], "[liveness] stuck");
        assert_eq!(
            lines[11],
            "[vclock] ... and 4 more (failure.txt and the report list them all)"
        );
    }

    #[test]
    fn a_report_opens_with_the_failed_checks_in_red() {
        let page = "<html><head></head><body class=\"x\"><h1>linearizable</h1></body></html>";
        let r = result(vec![
            Failure::new("raft", "two leaders in term 3 <n1, n2>"),
            Failure::new("liveness", "no write"),
        ]);
        let out = with_verdict(page, &r);
        let banner = out.find("id=\"sim-verdict\"").expect("a banner");
        assert!(
            banner > out.find("<body class=\"x\">").unwrap(),
            "inside the body"
        );
        assert!(
            banner < out.find("<h1>").unwrap(),
            "before the page's own verdict"
        );
        assert!(out.contains("FAILED: raft") && out.contains("#b00020"));
        assert!(
            out.contains("two leaders in term 3 &lt;n1, n2&gt;"),
            "escaped: {out}"
        );
        assert!(out.contains("[liveness]"));
        let ok = with_verdict(page, &result(vec![]));
        assert!(ok.contains("PASS: every check of this run held"));
    }
}
