//! The command line every harness binary gets: `run` (one seed or a
//! schedule file, `--check-determinism`), `sweep` (many seeds, each in its
//! own process, `--jobs`, `--shard`, `--time-budget`), `shrink`,
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

use crate::runner::{self, RunResult};
use crate::scenario::{Param, Scenario};
use crate::schedule::{FaultSelection, Schedule};
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
    /// Turn on a planted bug of the scenario (see --help for their names).
    #[arg(long)]
    bug: Option<String>,
    /// Fault kinds: `swarm` (each seed draws a subset), `all`, `none`, or a
    /// comma-separated list of the scenario's kinds.
    #[arg(long, default_value = "swarm")]
    faults: String,
    /// Where failing runs write their history, report and schedule.
    #[arg(long, default_value = "sim-out")]
    out: PathBuf,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one seed (or a schedule file) and check it.
    Run {
        #[command(flatten)]
        common: CommonArgs,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Replay a schedule written by `shrink` (or by a failing run).
        #[arg(long)]
        schedule: Option<PathBuf>,
        /// Run twice and compare the hashes of the whole trace.
        #[arg(long)]
        check_determinism: bool,
        /// Write history, report and schedule even if the run passes.
        #[arg(long)]
        write: bool,
        /// Print only a one-line JSON summary (used by `sweep`, which runs
        /// each seed in its own process).
        #[arg(long, hide = true)]
        summary: bool,
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
        #[arg(long)]
        seed: u64,
        /// Most candidate runs to try.
        #[arg(long, default_value_t = 200)]
        max_runs: usize,
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
        #[arg(long, default_value_t = 20)]
        seeds: u64,
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
        a: CommonArgs,
        set: Vec<(String, String)>,
    ) -> Result<Common, String> {
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
            let bugs = scenario.bugs();
            if !bugs.contains(&b.as_str()) {
                return Err(format!(
                    "unknown bug '{b}' for scenario {}; known: {}",
                    scenario.name(),
                    if bugs.is_empty() {
                        "none".to_string()
                    } else {
                        bugs.join(", ")
                    }
                ));
            }
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
        let selection = FaultSelection::parse(&a.faults, &scenario.fault_kinds())?;
        let c = Common {
            app,
            scenario,
            bug: a.bug,
            faults: a.faults,
            selection,
            out: a.out,
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
        format!(
            "{} run {} --seed {seed}",
            self.app.replay,
            self.args().join(" ")
        )
    }
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
    Ok(Duration::from_secs_f64(secs))
}

fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let err = || format!("bad seed range '{s}': use A..B, e.g. 0..1000");
    let (a, b) = s.split_once("..").ok_or_else(err)?;
    let (a, b) = (a.parse().map_err(|_| err())?, b.parse().map_err(|_| err())?);
    if a >= b {
        return Err(err());
    }
    Ok((a, b))
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

/// Writes history, report, schedule and replay command; returns the directory.
fn write_failure(c: &Common, out: &Path, r: &RunResult, replay: &str) -> std::io::Result<PathBuf> {
    let s = &r.schedule;
    let mut name = format!("{}-seed-{}", s.scenario, s.seed);
    if let Some(b) = &s.bug {
        name += &format!("-{b}");
    }
    let dir = out.join(name);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("history.jsonl"), r.history.to_jsonl())?;
    std::fs::write(
        dir.join("schedule.json"),
        serde_json::to_string_pretty(s).unwrap(),
    )?;
    let title = format!(
        "{} seed {}: {}",
        s.scenario,
        s.seed,
        r.failures.first().map_or("passed", |f| f.check)
    );
    if let Some(page) = c.scenario.report(r, &title) {
        std::fs::write(dir.join("report.html"), with_verdict(&page, r))?;
    }
    let failures: Vec<String> = r
        .failures
        .iter()
        .map(|f| format!("[{}] {}", f.check, f.message))
        .collect();
    std::fs::write(dir.join("failure.txt"), failures.join("\n") + "\n")?;
    std::fs::write(dir.join("replay.txt"), format!("{replay}\n"))?;
    Ok(dir)
}

/// The page with the run's verdict on top: every failed check in red with
/// its message (a page drawn by one check, e.g. the linearizability
/// timeline, would otherwise show that check's verdict only, green while
/// the Raft check failed), or a green line when the run passed.
pub fn with_verdict(page: &str, r: &RunResult) -> String {
    let esc = checker::report::escape_html;
    let banner = if r.failures.is_empty() {
        "<div id=\"sim-verdict\" style=\"background:#1b7f3b;color:#fff;padding:10px 16px;font:15px sans-serif\">PASS: every check of this run held</div>".to_string()
    } else {
        let items: Vec<String> = r
            .failures
            .iter()
            .map(|f| {
                format!(
                    "<li><b>[{}]</b> {}</li>",
                    esc(f.check),
                    esc(&f.message).replace('\n', "<br>")
                )
            })
            .collect();
        format!(
            "<div id=\"sim-verdict\" style=\"background:#b00020;color:#fff;padding:10px 16px;font:15px sans-serif\"><div style=\"font-size:18px;font-weight:bold\">FAILED: {}</div><ul style=\"margin:6px 0 0 0;padding-left:20px\">{}</ul><div style=\"margin-top:6px;opacity:.85\">Below, the scenario's report: its sections on the failed checks, if it has any, then the page of the {} check.</div></div>",
            esc(r.failures[0].check),
            items.join(""),
            if r.lin.is_some() { "linearizability" } else { "scenario's" }
        )
    };
    match page
        .find("<body")
        .and_then(|i| page[i..].find('>').map(|j| i + j + 1))
    {
        Some(at) => format!("{}{banner}{}", &page[..at], &page[at..]),
        None => format!("{banner}{page}"),
    }
}

/// Runs one seed in a child process (`run --summary`), so that what one
/// simulated run leaves behind in memory (madsim does not free every task
/// of a finished runtime) dies with its process. Returns the simulated
/// milliseconds, the first failure and the coverage.
fn run_in_child(c: &Common, seed: u64) -> Child {
    let exe = std::env::current_exe().expect("the harness binary's path");
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("run")
        .arg("--summary")
        .args(c.args())
        .arg("--seed")
        .arg(seed.to_string())
        .arg("--out")
        .arg(&c.out);
    let died = |why: String| Child {
        sim_ms: 0,
        failure: Some(("harness".into(), why)),
        coverage: BTreeMap::new(),
    };
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => return died(format!("cannot start a child run: {e}")),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or("");
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(v) => Child {
            sim_ms: v["sim_ms"].as_u64().unwrap_or(0),
            failure: v["failure"].as_array().map(|a| {
                (
                    a[0].as_str().unwrap_or("?").to_string(),
                    a[1].as_str().unwrap_or("").to_string(),
                )
            }),
            coverage: serde_json::from_value(v["coverage"].clone()).unwrap_or_default(),
        },
        Err(_) => died(format!(
            "the child run died ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .chars()
                .take(300)
                .collect::<String>()
        )),
    }
}

/// What one seed of a sweep gave.
struct Child {
    sim_ms: u64,
    failure: Option<(String, String)>,
    coverage: BTreeMap<String, u64>,
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
    for f in &r.failures {
        println!("  [{}] {}", f.check, f.message);
    }
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

fn quiet_panics() {
    // SIM_PANICS=1 keeps the default hook (messages and backtraces).
    if std::env::var_os("SIM_PANICS").is_some() {
        return;
    }
    std::panic::set_hook(Box::new(|_| {}));
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

/// Parses the command line and runs the subcommand; exit code 0 passed,
/// 1 a check failed, 2 bad usage.
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
        .after_help(format!("Scenarios:\n{}", scenarios.join("\n")));
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
            seed,
            schedule,
            check_determinism,
            write,
            summary,
        } => Common::resolve(app, common, set).and_then(|c| {
            if summary {
                cmd_summary(&c, seed)
            } else {
                cmd_run(&c, seed, schedule.as_deref(), check_determinism, write)
            }
        }),
        Cmd::Sweep { common, opts } => {
            Common::resolve(app, common, set).and_then(|c| cmd_sweep(&c, &opts))
        }
        Cmd::Shrink {
            common,
            seed,
            max_runs,
        } => Common::resolve(app, common, set).and_then(|c| cmd_shrink(&c, seed, max_runs)),
        Cmd::Schedule { common, seeds } => {
            Common::resolve(app, common, set).and_then(|c| cmd_schedule(&c, &seeds))
        }
        Cmd::Bench { common, seeds } => {
            Common::resolve(app, common, set).and_then(|c| cmd_bench(&c, seeds))
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
    quiet_panics();
    let r = runner::run_verdict(c.scenario, &c.schedule(seed)?);
    let mut first = None;
    if !r.passed() {
        let full = runner::rerun_with_detail(c.scenario, &r);
        first = full.failures.first().map(|f| (f.check, f.message.clone()));
        write_failure(c, &c.out, &full, &c.replay(seed))
            .map_err(|e| format!("cannot write results: {e}"))?;
    }
    println!(
        "{}",
        serde_json::json!({"sim_ms": r.sim_ms, "failure": first, "coverage": r.coverage})
    );
    Ok(ExitCode::SUCCESS)
}

fn read_schedule(c: &Common, path: &Path) -> Result<Schedule, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let s: Schedule = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a schedule: {e}", path.display()))?;
    if s.scenario != c.scenario.name() {
        let known = c.app.scenarios.iter().any(|x| x.name() == s.scenario);
        if !known {
            return Err(format!(
                "{} is a schedule of scenario '{}', which this binary does not have",
                path.display(),
                s.scenario
            ));
        }
    }
    Ok(s)
}

fn cmd_run(
    c: &Common,
    seed: u64,
    schedule: Option<&Path>,
    check_determinism: bool,
    write: bool,
) -> Result<ExitCode, String> {
    let (sched, replay) = match schedule {
        Some(path) => (
            read_schedule(c, path)?,
            format!("{} run --schedule {}", c.app.replay, path.display()),
        ),
        None => (c.schedule(seed)?, c.replay(seed)),
    };
    let scenario = *c
        .app
        .scenarios
        .iter()
        .find(|s| s.name() == sched.scenario)
        .expect("checked by read_schedule");
    let c = &Common {
        scenario,
        ..c.clone()
    };
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
    println!("{} faults scheduled", sched.faults.len());
    quiet_panics();
    let t = Instant::now();
    let r = runner::run(scenario, &sched);
    print_result(&r, t.elapsed());
    if check_determinism && !same_trace_again(c, &sched, &r) {
        return Ok(ExitCode::from(1));
    }
    if r.passed() && !write {
        return Ok(ExitCode::SUCCESS);
    }
    let dir =
        write_failure(c, &c.out, &r, &replay).map_err(|e| format!("cannot write results: {e}"))?;
    println!(
        "wrote {}/{{history.jsonl,report.html,schedule.json,failure.txt}}",
        dir.display()
    );
    println!("replay: {replay}");
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
    /// Parallel workers (each seed runs in its own process) [default: the
    /// machine's cores]
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
    let mut floors = c.scenario.floors();
    for f in &o.floors {
        crate::coverage::set_floor(&mut floors, f)?;
    }
    let tally = Mutex::new(crate::coverage::Tally::new(&floors));
    // The sweep's own threads, outside any simulation: each seed runs in a
    // child process.
    let jobs = o.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let list: Vec<u64> = (a..b).filter(|s| s % sn == si).collect();
    println!(
        "sweep {} seeds {a}..{b}{} bug {} faults {} with {jobs} job{}",
        c.scenario.name(),
        if sn > 1 {
            format!(" shard {si}/{sn} ({} seeds)", list.len())
        } else {
            String::new()
        },
        c.bug.as_deref().unwrap_or("none"),
        c.faults,
        if jobs == 1 { "" } else { "s" }
    );
    quiet_panics();
    let bar = if o.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(list.len() as u64)
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
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst) as usize;
                if i >= list.len()
                    || stop.load(Ordering::SeqCst)
                    || budget.is_some_and(|b| start.elapsed() >= b)
                {
                    return;
                }
                let seed = list[i];
                let child = run_in_child(c, seed);
                sim_ms.fetch_add(child.sim_ms, Ordering::Relaxed);
                if let Ok(s) = c.schedule(seed) {
                    tally.lock().unwrap().add(&floors, &s, &child.coverage);
                }
                if let Some((check, mut msg)) = child.failure {
                    msg.truncate(200);
                    failed.lock().unwrap().push((
                        seed,
                        format!("[{check}] {msg}\n    replay: {}", c.replay(seed)),
                    ));
                    if o.stop_on_failure {
                        stop.store(true, Ordering::SeqCst);
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
                bar.inc(1);
                bar.set_message(format!("{} failed", failed.lock().unwrap().len()));
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
    if (n as usize) < list.len() {
        println!(
            "stopped early: {} of {} seeds not run (time budget or --stop-on-failure)",
            list.len() - n as usize,
            list.len()
        );
    }
    for (seed, msg) in &failed {
        println!("seed {seed}: {msg}");
    }
    if let Some((first, _)) = failed.first() {
        println!("first failing seed: {first}");
    }
    let floors_ok = report_coverage(
        c,
        o,
        &floors,
        &tally.into_inner().unwrap(),
        n == list.len() as u64,
    )?;
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
                "--floor '{name}': no seed reached this counter, and the scenario declares no floor on it; check its name (`sim run` prints the counters a seed reached)"
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
    quiet_panics();
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
    std::fs::create_dir_all(&c.out).map_err(|e| e.to_string())?;
    let mut name = format!("{}-seed-{seed}", s.scenario);
    if let Some(b) = &s.bug {
        name += &format!("-{b}");
    }
    let path = c.out.join(format!("{name}.shrunk.json"));
    std::fs::write(&path, serde_json::to_string_pretty(s).unwrap()).map_err(|e| e.to_string())?;
    let replay = format!("{} run --schedule {}", c.app.replay, path.display());
    let fdir = write_failure(c, &c.out, &shrunk.result, &replay).map_err(|e| e.to_string())?;
    println!(
        "minimal schedule after {} runs: {} faults, {} clients, {} ops per client, {} ms, {} client ops",
        shrunk.runs,
        s.faults.len(),
        s.clients,
        s.ops_per_client,
        s.duration_ms,
        shrunk.result.client_ops
    );
    for f in &s.faults {
        println!(
            "  at {} ms for {} ms: {}",
            f.at_ms,
            f.duration_ms,
            serde_json::to_string(&f.fault).unwrap()
        );
    }
    for f in &shrunk.result.failures {
        println!("  [{}] {}", f.check, f.message);
    }
    println!("wrote {} and {}", path.display(), fdir.display());
    println!("replay: {replay}");
    Ok(ExitCode::SUCCESS)
}

fn cmd_schedule(c: &Common, seeds: &str) -> Result<ExitCode, String> {
    let (a, b) = parse_range(seeds)?;
    for seed in a..b {
        println!("{}", serde_json::to_string(&c.schedule(seed)?).unwrap());
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_bench(c: &Common, seeds: u64) -> Result<ExitCode, String> {
    quiet_panics();
    let start = Instant::now();
    let (mut sim_ms, mut ops, mut events, mut failed) = (0u64, 0usize, 0usize, 0);
    let mut check = Duration::ZERO;
    for seed in 0..seeds {
        let r = runner::run(c.scenario, &c.schedule(seed)?);
        sim_ms += r.sim_ms;
        ops += r.client_ops;
        events += r.history.ops.len();
        failed += (!r.passed()) as usize;
        check += r.check_wall;
    }
    let wall = start.elapsed().as_secs_f64();
    println!(
        "{seeds} seeds of {} on one core: {:.1} simulated s in {wall:.2} wall s ({:.2} s of it checking)",
        c.scenario.name(),
        sim_ms as f64 / 1e3,
        check.as_secs_f64()
    );
    println!(
        "  {:.0}x real time, {:.0} seeds/min, {:.0} client ops/s, {:.0} history events/s, {failed} failed",
        sim_ms as f64 / 1e3 / wall,
        seeds as f64 * 60.0 / wall,
        ops as f64 / wall,
        events as f64 / wall
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
    fn jobs_must_be_at_least_one() {
        assert_eq!(parse_jobs("2"), Ok(2));
        for bad in ["0", "-1", "two"] {
            let e = parse_jobs(bad).unwrap_err();
            assert!(e.contains("use 1 or more"), "{e}");
        }
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
