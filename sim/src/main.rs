//! `sim`: the simulation CLI. Build and run it with `cargo sim ...` (the
//! optimised `--cfg madsim` build); see `cargo sim --help`.

#[cfg(not(madsim))]
fn main() -> std::process::ExitCode {
    eprintln!("the sim CLI runs inside the deterministic simulator: use `cargo sim <command>` (see README.md)");
    std::process::ExitCode::from(2)
}

// A simulated run allocates for every message, task and timer; mimalloc
// makes the simulator about 15 % faster than glibc's malloc
// (`cargo sim bench`). Allocation addresses never reach behaviour.
#[cfg(madsim)]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(madsim)]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(madsim)]
mod cli {
    use clap::{Parser, Subcommand};
    use sim::runner::{self, RunResult};
    use sim::schedule::{FaultSelection, Schedule};
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    #[derive(Parser)]
    #[command(
        name = "sim",
        about = "Deterministic simulation of the bookstore: seeded faults, checked histories, replay, shrinking"
    )]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(clap::Args, Clone)]
    struct Common {
        /// Scenario to run.
        #[arg(long, default_value = "kv")]
        scenario: String,
        /// Turn on a planted bug (see system/src/bugs.rs): vote-no-log-check,
        /// figure8, stale-read, unsynced-vote, duplicate-apply, unsynced-log;
        /// scenario checkout: no-compensation, non-idempotent-payment, unguarded-stock.
        #[arg(long)]
        bug: Option<String>,
        /// Fault kinds: `swarm` (each seed draws a subset), `all`, `none`, or
        /// a list of crash,pause,partition,isolate-leader,one-way,bridge,loss,latency,clock,
        /// pause-leader,crash-voter,leader-churn,leader-island.
        #[arg(long, default_value = "swarm")]
        faults: String,
        /// Where failing runs write their history, report and schedule.
        #[arg(long, default_value = "sim-out")]
        out: PathBuf,
        /// Scenario `checkout`: `saga` or `2pc` (default: drawn from the seed).
        #[arg(long)]
        mode: Option<String>,
        /// Scenario `checkout`: `consistency` or `mix` (default: drawn from the seed).
        #[arg(long)]
        workload: Option<String>,
        /// Scenario `kv`: mean pause in ms before each client operation
        /// outside the busy windows (drawn from 0 to twice this); 0 = back
        /// to back all the time (default: drawn from the seed).
        #[arg(long)]
        think_ms: Option<u64>,
    }

    impl Common {
        fn validate(&self) -> Result<FaultSelection, String> {
            if !sim::scenarios::NAMES.contains(&self.scenario.as_str()) {
                return Err(format!(
                    "unknown scenario '{}'; known: {}",
                    self.scenario,
                    sim::scenarios::NAMES.join(", ")
                ));
            }
            if let Some(b) = &self.bug {
                bookstore::bugs::Bugs::from_name(b)?;
            }
            if let Some(m) = &self.mode {
                bookstore::shop::Mode::by_name(m)?;
            }
            if let Some(w) = &self.workload {
                if w != "consistency" && w != "mix" {
                    return Err(format!(
                        "unknown workload '{w}': expected consistency or mix"
                    ));
                }
            }
            if self.scenario != "checkout" && (self.mode.is_some() || self.workload.is_some()) {
                return Err("--mode and --workload apply to --scenario checkout only".into());
            }
            if self.scenario != "kv" && self.think_ms.is_some() {
                return Err("--think-ms applies to --scenario kv only".into());
            }
            FaultSelection::parse(&self.faults)
        }

        fn schedule(&self, seed: u64, sel: &FaultSelection) -> Schedule {
            let mut s = Schedule::generate(&self.scenario, seed, self.bug.as_deref(), sel);
            if let Some(t) = self.think_ms {
                s.pacing.think_ms = t;
            }
            if self.mode.is_some() {
                s.mode = self.mode.clone();
            }
            if self.workload.is_some() {
                s.workload = self.workload.clone();
            }
            s
        }

        /// The flags that choose what a seed runs, as `run` takes them.
        fn args(&self) -> Vec<String> {
            let mut args = vec!["--scenario".to_string(), self.scenario.clone()];
            if let Some(b) = &self.bug {
                args.extend(["--bug".into(), b.clone()]);
            }
            if self.faults != "swarm" {
                args.extend(["--faults".into(), self.faults.clone()]);
            }
            if let Some(m) = &self.mode {
                args.extend(["--mode".into(), m.clone()]);
            }
            if let Some(w) = &self.workload {
                args.extend(["--workload".into(), w.clone()]);
            }
            if let Some(t) = self.think_ms {
                args.extend(["--think-ms".into(), t.to_string()]);
            }
            args
        }

        fn replay(&self, seed: u64) -> String {
            format!("cargo sim run {} --seed {seed}", self.args().join(" "))
        }
    }

    #[derive(Subcommand)]
    enum Cmd {
        /// Run one seed (or a schedule file) and check it.
        Run {
            #[command(flatten)]
            common: Common,
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
            common: Common,
            /// Seed range A..B (B excluded).
            #[arg(long, default_value = "0..100")]
            seeds: String,
            /// Parallel workers (threads, one runtime each).
            #[arg(long, default_value_t = 1)]
            jobs: usize,
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
        },
        /// Minimise a failing seed's schedule while the same check still fails.
        Shrink {
            #[command(flatten)]
            common: Common,
            #[arg(long)]
            seed: u64,
            /// Most candidate runs to try.
            #[arg(long, default_value_t = 200)]
            max_runs: usize,
        },
        /// Print the schedules seeds draw (JSON, one per line), without running them.
        Schedule {
            #[command(flatten)]
            common: Common,
            /// Seed range A..B (B excluded).
            #[arg(long, default_value = "0..1")]
            seeds: String,
        },
        /// Throughput: simulated seconds per wall-clock second, seeds per minute (one core).
        Bench {
            #[command(flatten)]
            common: Common,
            #[arg(long, default_value_t = 20)]
            seeds: u64,
        },
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
    fn write_failure(out: &Path, r: &RunResult, replay: &str) -> std::io::Result<PathBuf> {
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
        if let Some(lin) = &r.lin {
            std::fs::write(
                dir.join("report.html"),
                checker::report::html(&r.history, lin, &title),
            )?;
        } else if s.scenario == "checkout" {
            let inv = checker::invariants::check_checkout(&r.history);
            std::fs::write(
                dir.join("report.html"),
                checker::report::invariants_html(&r.history, &inv, &title),
            )?;
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

    /// Runs one seed in a child process (`run --summary`), so that what one
    /// simulated run leaves behind in memory (madsim does not free every
    /// task of a finished runtime) dies with its process: a 1000-seed sweep
    /// of `checkout` in one process grew past 20 GB. Returns the simulated
    /// milliseconds and the first failure.
    fn run_in_child(c: &Common, seed: u64) -> (u64, Option<(String, String)>) {
        let exe = std::env::current_exe().expect("the sim binary's path");
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("run")
            .arg("--summary")
            .args(c.args())
            .arg("--seed")
            .arg(seed.to_string())
            .arg("--out")
            .arg(&c.out);
        let out = match cmd.output() {
            Ok(o) => o,
            Err(e) => {
                return (
                    0,
                    Some(("harness".into(), format!("cannot start a child run: {e}"))),
                )
            }
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().last().unwrap_or("");
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) => {
                let ms = v["sim_ms"].as_u64().unwrap_or(0);
                let failure = v["failure"].as_array().map(|a| {
                    (
                        a[0].as_str().unwrap_or("?").to_string(),
                        a[1].as_str().unwrap_or("").to_string(),
                    )
                });
                (ms, failure)
            }
            Err(_) => (
                0,
                Some((
                    "harness".into(),
                    format!(
                        "the child run died ({}): {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr)
                            .chars()
                            .take(300)
                            .collect::<String>()
                    ),
                )),
            ),
        }
    }

    fn print_result(r: &RunResult, wall: Duration) {
        println!(
            "verdict: {} ({} client ops, {} events, {:.1} s simulated in {:.2} s, trace {:016x})",
            if r.passed() { "PASS" } else { "FAIL" },
            r.client_ops,
            r.history.ops.len(),
            r.sim_ms as f64 / 1e3,
            wall.as_secs_f64(),
            r.trace_hash
        );
        for f in &r.failures {
            println!("  [{}] {}", f.check, f.message);
        }
    }

    fn quiet_panics() {
        // SIM_PANICS=1 keeps the default hook (messages and backtraces).
        if std::env::var_os("SIM_PANICS").is_some() {
            return;
        }
        std::panic::set_hook(Box::new(|_| {}));
    }

    pub fn main() -> ExitCode {
        let cli = Cli::parse();
        match run(cli) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        }
    }

    fn run(cli: Cli) -> Result<ExitCode, String> {
        match cli.cmd {
            Cmd::Run {
                common,
                seed,
                schedule,
                check_determinism,
                write,
                summary,
            } => {
                let sel = common.validate()?;
                if summary {
                    quiet_panics();
                    let r = runner::run(&common.schedule(seed, &sel));
                    if !r.passed() {
                        let replay = common.replay(seed);
                        write_failure(&common.out, &r, &replay)
                            .map_err(|e| format!("cannot write results: {e}"))?;
                    }
                    let first = r.failures.first().map(|f| (f.check, f.message.clone()));
                    println!(
                        "{}",
                        serde_json::json!({"sim_ms": r.sim_ms, "failure": first})
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                let (sched, replay) = match &schedule {
                    Some(path) => {
                        let text = std::fs::read_to_string(path)
                            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                        let s: Schedule = serde_json::from_str(&text)
                            .map_err(|e| format!("{} is not a schedule: {e}", path.display()))?;
                        (s, format!("cargo sim run --schedule {}", path.display()))
                    }
                    None => (common.schedule(seed, &sel), common.replay(seed)),
                };
                println!(
                    "scenario {} seed {} bug {}",
                    sched.scenario,
                    sched.seed,
                    sched.bug.as_deref().unwrap_or("none")
                );
                println!(
                    "{} nodes, {} clients, {} keys, {} ms; {}",
                    sched.nodes, sched.clients, sched.keys, sched.duration_ms, sched.config
                );
                if let (Some(m), Some(w)) = (&sched.mode, &sched.workload) {
                    println!("checkout mode {m}, workload {w}");
                }
                if sched.scenario == "kv" {
                    println!("{}", sched.pacing);
                }
                println!("{} faults scheduled", sched.faults.len());
                quiet_panics();
                let t = Instant::now();
                let r = runner::run(&sched);
                print_result(&r, t.elapsed());
                if check_determinism {
                    let again = runner::run(&sched);
                    if again.trace_hash == r.trace_hash {
                        println!("determinism: OK (two runs, trace {:016x})", r.trace_hash);
                    } else {
                        println!(
                            "determinism: FAILED: trace {:016x} then {:016x}",
                            r.trace_hash, again.trace_hash
                        );
                        // Both histories, to find where they part.
                        let _ = std::fs::create_dir_all(&common.out);
                        for (name, h) in [("first", &r.history), ("second", &again.history)] {
                            let path = common.out.join(format!("determinism-{name}.jsonl"));
                            if std::fs::write(&path, h.to_jsonl()).is_ok() {
                                println!("wrote {}", path.display());
                            }
                        }
                        return Ok(ExitCode::from(1));
                    }
                }
                if r.passed() && !write {
                    return Ok(ExitCode::SUCCESS);
                }
                let dir = write_failure(&common.out, &r, &replay)
                    .map_err(|e| format!("cannot write results: {e}"))?;
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
            Cmd::Sweep {
                common,
                seeds,
                jobs,
                shard,
                time_budget,
                stop_on_failure,
                quiet,
            } => {
                common.validate()?;
                let (a, b) = parse_range(&seeds)?;
                let (si, sn) = shard
                    .as_deref()
                    .map(parse_shard)
                    .transpose()?
                    .unwrap_or((0, 1));
                let budget = time_budget.as_deref().map(parse_duration).transpose()?;
                let list: Vec<u64> = (a..b).filter(|s| s % sn == si).collect();
                println!(
                    "sweep {} seeds {a}..{b}{} bug {} faults {} with {} jobs",
                    common.scenario,
                    if sn > 1 {
                        format!(" shard {si}/{sn} ({} seeds)", list.len())
                    } else {
                        String::new()
                    },
                    common.bug.as_deref().unwrap_or("none"),
                    common.faults,
                    jobs
                );
                quiet_panics();
                let bar = if quiet {
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
                let stop = std::sync::atomic::AtomicBool::new(false);
                std::thread::scope(|scope| {
                    for _ in 0..jobs.max(1) {
                        scope.spawn(|| loop {
                            let i = next.fetch_add(1, Ordering::SeqCst) as usize;
                            if i >= list.len()
                                || stop.load(Ordering::SeqCst)
                                || budget.is_some_and(|b| start.elapsed() >= b)
                            {
                                return;
                            }
                            let seed = list[i];
                            let (ms, failure) = run_in_child(&common, seed);
                            sim_ms.fetch_add(ms, Ordering::Relaxed);
                            if let Some((check, mut msg)) = failure {
                                let replay = common.replay(seed);
                                msg.truncate(200);
                                failed
                                    .lock()
                                    .unwrap()
                                    .push((seed, format!("[{check}] {msg}\n    replay: {replay}")));
                                if stop_on_failure {
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
                Ok(if failed.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                })
            }
            Cmd::Shrink {
                common,
                seed,
                max_runs,
            } => {
                let sel = common.validate()?;
                quiet_panics();
                let original = runner::run(&common.schedule(seed, &sel));
                if original.passed() {
                    return Err(format!("seed {seed} passes: nothing to shrink (try `sim sweep` to find a failing seed)"));
                }
                println!(
                    "seed {seed} fails [{}] with {} faults, {} clients, {} client ops; shrinking",
                    original.first_check().unwrap(),
                    original.schedule.faults.len(),
                    original.schedule.clients,
                    original.client_ops
                );
                let shrunk = sim::shrink::shrink(original, max_runs, |m| println!("  {m}"));
                let s = &shrunk.schedule;
                let dir = common.out.clone();
                std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
                let mut name = format!("{}-seed-{seed}", s.scenario);
                if let Some(b) = &s.bug {
                    name += &format!("-{b}");
                }
                let path = dir.join(format!("{name}.shrunk.json"));
                std::fs::write(&path, serde_json::to_string_pretty(s).unwrap())
                    .map_err(|e| e.to_string())?;
                let replay = format!("cargo sim run --schedule {}", path.display());
                let fdir =
                    write_failure(&dir, &shrunk.result, &replay).map_err(|e| e.to_string())?;
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
            Cmd::Schedule { common, seeds } => {
                let sel = common.validate()?;
                let (a, b) = parse_range(&seeds)?;
                for seed in a..b {
                    println!(
                        "{}",
                        serde_json::to_string(&common.schedule(seed, &sel)).unwrap()
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            Cmd::Bench { common, seeds } => {
                let sel = common.validate()?;
                quiet_panics();
                let start = Instant::now();
                let (mut sim_ms, mut ops, mut events, mut failed) = (0u64, 0usize, 0usize, 0);
                let mut check = Duration::ZERO;
                for seed in 0..seeds {
                    let r = runner::run(&common.schedule(seed, &sel));
                    sim_ms += r.sim_ms;
                    ops += r.client_ops;
                    events += r.history.ops.len();
                    failed += (!r.passed()) as usize;
                    check += r.check_wall;
                }
                let wall = start.elapsed().as_secs_f64();
                println!(
                    "{seeds} seeds of {} on one core: {:.1} simulated s in {wall:.2} wall s ({:.2} s of it checking)",
                    common.scenario,
                    sim_ms as f64 / 1e3,
                    check.as_secs_f64()
                );
                println!("  {:.0}x real time, {:.0} seeds/min, {:.0} client ops/s, {:.0} history events/s, {failed} failed", sim_ms as f64 / 1e3 / wall, seeds as f64 * 60.0 / wall, ops as f64 / wall, events as f64 / wall);
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}
