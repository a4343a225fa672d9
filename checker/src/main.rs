//! `checker`: check, benchmark and convert histories from the command line.
//!
//! Exit codes of `check`: 0 linearizable, 1 not linearizable, 2 unknown
//! (time or memory bound), 3 bad input or usage. With `--isolation MODEL`
//! (transactional histories, see `checker::isolation`): 0 valid, 1 invalid,
//! 2 unknown, 3 bad input. `vclock` (vector-clock logs against a
//! happens-before scheme, see `checker::vclock`): 0 valid, 1 violations,
//! 2 nothing to check (no event), 3 bad input.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use checker::formats::{self, Format};
use checker::history::{History, OpType, Semantics};
use checker::isolation::{self, gen, Consistency, IsoOptions, IsoVerdict, TxnModel};
use checker::linear::{self, Options, Verdict};
use checker::model::ModelKind;
use checker::stdout::out;
use checker::vclock;

#[derive(Parser)]
#[command(
    name = "checker",
    version,
    about = "Linearizability and transactional isolation checker for Jepsen/Porcupine-style histories"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check one history. Exit 0 linearizable, 1 not, 2 unknown, 3 bad input.
    Check {
        file: PathBuf,
        /// auto | native | edn | etcd | porcupine-kv
        #[arg(long, default_value = "auto")]
        format: String,
        /// register | cas-register | kv | mutex | multi-register (default: inferred from the history)
        #[arg(long)]
        model: Option<String>,
        /// Initial value as JSON (e.g. `null`, `0`, `""`; for multi-register an
        /// object such as `{"x":0,"y":0}` gives each register's); default from the format.
        /// Not for mutex, which starts free.
        #[arg(long)]
        initial: Option<String>,
        /// What the events mean: native (also Porcupine's) or jepsen (also
        /// Knossos's); default from the format (EDN: jepsen, others: native).
        #[arg(long)]
        semantics: Option<String>,
        /// Give up (exit 2) after this many seconds (linearizability only).
        #[arg(long, conflicts_with = "isolation")]
        timeout: Option<f64>,
        /// Worker threads for independent partitions (0 = one per core).
        #[arg(long, default_value_t = 0, conflicts_with = "isolation")]
        threads: usize,
        /// Give up (exit 2) after this many cached search states per partition.
        #[arg(long, default_value_t = 10_000_000, conflicts_with = "isolation")]
        max_cache: usize,
        /// Write a self-contained HTML report here.
        #[arg(long, alias = "html")]
        report: Option<PathBuf>,
        /// Check transactional isolation instead of linearizability: the
        /// consistency model the history must satisfy (read-uncommitted,
        /// read-committed, repeatable-read, snapshot-isolation, serializable,
        /// strong-session-snapshot-isolation, strong-snapshot-isolation,
        /// strong-session-serializable, strict-serializable).
        #[arg(long)]
        isolation: Option<String>,
        /// With --isolation: list-append | rw-register (default: list-append
        /// if any micro-op is an append).
        #[arg(long)]
        txn_model: Option<String>,
        /// With --isolation, rw-register: assume writes follow reads within a
        /// transaction (Elle's wfr-keys) to infer more version orders.
        #[arg(long)]
        wfr_keys: bool,
        /// With --isolation, rw-register: assume each process sees each key's
        /// versions in order (Elle's sequential-keys).
        #[arg(long)]
        sequential_keys: bool,
        /// With --isolation, rw-register: assume each key is linearizable
        /// (Elle's linearizable-keys).
        #[arg(long)]
        linearizable_keys: bool,
        /// With --isolation: search steps per strongly connected component
        /// before giving up on it (exit 2 unless an anomaly is found anyway).
        #[arg(long, default_value_t = 20_000_000, requires = "isolation")]
        max_search_steps: u64,
        /// With --isolation: print the result as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Generate a list-append history, check it for strict serializability
    /// and print transactions per second, wall time and peak memory.
    BenchIsolation {
        /// Transactions to generate.
        #[arg(long, default_value_t = 100_000)]
        txns: usize,
        /// Plant one anomaly: stale-read, future-read, aborted-read,
        /// intermediate-read, garbage, incompatible-order, duplicate-elements,
        /// internal.
        #[arg(long)]
        anomaly: Option<String>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Concurrent client processes.
        #[arg(long, default_value_t = 5)]
        processes: usize,
        /// Keys in use at any time.
        #[arg(long, default_value_t = 8)]
        keys: usize,
        /// list-append | rw-register
        #[arg(long, default_value = "list-append")]
        txn_model: String,
        /// Also time the check from a `History` of JSON events (what
        /// `isolation::check` takes), not only from the compact form.
        #[arg(long)]
        through_history: bool,
    },
    /// Check every history listed in DIR/expected.csv and compare verdicts.
    Bench {
        dir: PathBuf,
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Repeat each check N times and report the fastest (less noise).
        #[arg(long, default_value_t = 1)]
        repeat: usize,
    },
    /// Check logs of vector-clock stamped events (JSON Lines) against a
    /// happens-before scheme (JSON). Exit 0 valid, 1 violations, 2 nothing
    /// to check (the logs hold no event), 3 bad input.
    #[command(
        after_help = "Scheme: {\"name\": \"s\", \"happens_before\": [[\"x\",\"y\"], ...], \"concurrent\": [[\"x\",\"z\"], ...], \"final\": \"done\"}\n\
Log line: {\"group\": \"run-1\", \"source\": \"worker-1\", \"process\": \"worker\", \"event\": \"y\", \"clock\": {\"worker\": 2, \"boss\": 1}}\n\
Checks: order (some x before each y; missing-predecessor if no x), concurrency, own-clock (each process's own entry >= 1 and strictly increasing per group and source), final (dominates its group), unknown-event."
    )]
    Vclock {
        /// The happens-before scheme (JSON).
        #[arg(long)]
        scheme: PathBuf,
        /// Log files (JSON Lines), read in this order; each keeps its line order.
        #[arg(required = true, value_name = "LOG.jsonl")]
        logs: Vec<PathBuf>,
        /// Print the result as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Convert a history to another format.
    Convert {
        file: PathBuf,
        /// edn | native
        #[arg(long)]
        to: String,
        #[arg(long, default_value = "auto")]
        format: String,
    },
}

/// A usage or input problem: exit code 3 with a message.
struct BadInput(String);

fn read_history(file: &Path, format: &str) -> Result<(History, Format), BadInput> {
    // `-` is standard input, as for most tools.
    let text = if file == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(file)
    }
    .map_err(|e| BadInput(format!("cannot read {}: {e}", file.display())))?;
    // A byte-order mark some editors write is not part of the history.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let parsed = if format == "auto" {
        formats::parse_auto(text)
    } else {
        let f = Format::by_name(format).ok_or_else(|| {
            BadInput(format!(
                "unknown --format {format:?}: use auto, native, edn, etcd or porcupine-kv"
            ))
        })?;
        formats::parse(text, f).map(|h| (h, f))
    };
    parsed.map_err(|e| {
        BadInput(format!(
            "{}:{}: {} (fix the file{})",
            file.display(),
            e.line,
            e.message,
            if format == "auto" {
                ", or pass --format if it was detected wrongly"
            } else {
                ""
            }
        ))
    })
}

macro_rules! outln {
    ($($arg:tt)*) => { out(&format!("{}\n", format_args!($($arg)*))) };
}

fn main() -> ExitCode {
    // A usage error exits 3 (bad input), not clap's 2: 2 means "unknown" or
    // "nothing to check" here.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 3 } else { 0 });
        }
    };
    let r = match cli.cmd {
        Cmd::Check {
            file,
            format,
            model,
            initial,
            semantics,
            timeout,
            threads,
            max_cache,
            report,
            isolation: Some(model_name),
            txn_model,
            wfr_keys,
            sequential_keys,
            linearizable_keys,
            max_search_steps,
            json,
        } => {
            // clap refuses them with --isolation.
            let _ = (timeout, threads, max_cache);
            if model.is_some() || initial.is_some() {
                eprintln!(
                    "error: --model and --initial are for linearizability; with --isolation \
                     use --txn-model list-append|rw-register"
                );
                return ExitCode::from(3);
            }
            cmd_isolation(
                &file,
                &format,
                semantics,
                &model_name,
                txn_model,
                [wfr_keys, sequential_keys, linearizable_keys],
                max_search_steps,
                json,
                report,
            )
        }
        Cmd::Check {
            file,
            format,
            model,
            initial,
            semantics,
            timeout,
            threads,
            max_cache,
            report,
            isolation: None,
            json,
            txn_model,
            wfr_keys,
            sequential_keys,
            linearizable_keys,
            ..
        } => {
            if json || txn_model.is_some() || wfr_keys || sequential_keys || linearizable_keys {
                eprintln!(
                    "error: --json, --txn-model and --wfr-keys/--sequential-keys/\
                     --linearizable-keys are only for --isolation checks (add --isolation \
                     MODEL, e.g. --isolation serializable)"
                );
                return ExitCode::from(3);
            }
            cmd_check(
                &file, &format, model, initial, semantics, timeout, threads, max_cache, report,
            )
        }
        Cmd::BenchIsolation {
            txns,
            anomaly,
            seed,
            processes,
            keys,
            txn_model,
            through_history,
        } => cmd_bench_isolation(
            txns,
            anomaly,
            seed,
            processes,
            keys,
            &txn_model,
            through_history,
        ),
        Cmd::Bench {
            dir,
            threads,
            repeat,
        } => cmd_bench(&dir, threads, repeat.max(1)),
        Cmd::Convert { file, to, format } => cmd_convert(&file, &to, &format),
        Cmd::Vclock { scheme, logs, json } => cmd_vclock(&scheme, &logs, json),
    };
    match r {
        Ok(code) => code,
        Err(BadInput(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(3)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn cmd_check(
    file: &Path,
    format: &str,
    model: Option<String>,
    initial: Option<String>,
    semantics: Option<String>,
    timeout: Option<f64>,
    threads: usize,
    max_cache: usize,
    report: Option<PathBuf>,
) -> Result<ExitCode, BadInput> {
    let (mut history, format) = read_history(file, format)?;
    if let Some(s) = semantics {
        history.semantics = Semantics::by_name(&s)
            .ok_or_else(|| BadInput(format!("unknown --semantics {s:?}: use native or jepsen")))?;
    }
    let model = parse_model(model.as_deref(), format, &history)?;
    let initial = parse_initial(initial.as_deref(), format, model)?;
    let timeout = timeout
        .map(|t| {
            if t.is_nan() || t <= 0.0 {
                return Err(BadInput(format!(
                    "--timeout {t}: must be a positive number of seconds"
                )));
            }
            // Beyond what a Duration holds (`inf` included): no time limit.
            Ok(Duration::try_from_secs_f64(t).unwrap_or(Duration::MAX))
        })
        .transpose()?;
    let opts = Options {
        timeout,
        threads,
        max_cache_entries: max_cache,
        initial,
    };
    let calls = history
        .ops
        .iter()
        .filter(|o| o.is_client() && o.kind == OpType::Invoke)
        .count();
    if calls == 0 {
        let named = history.ops.len();
        outln!(
            "{}: nothing to check: no client operation{}",
            file.display(),
            if named == 0 {
                " (the history is empty)".to_string()
            } else {
                format!(
                    " among its {named} events: a client's process is a number; events of \
                     named processes (\"nemesis\", \"c1\"...) are not checked"
                )
            }
        );
        return Ok(ExitCode::from(2));
    }
    let start = Instant::now();
    let result = linear::try_check(&history, model, &opts).map_err(|e| {
        BadInput(format!(
            "{}: event {}: {} ({})",
            file.display(),
            e.line,
            e.message,
            // An error of the history's structure is not the model's.
            if e.message.contains("never invoked") {
                "fix the history"
            } else {
                "pick another --model, or fix the history"
            }
        ))
    })?;
    let elapsed = start.elapsed();
    outln!(
        "{}: {} ({} format, {} semantics, {} model, {} operations, {} partitions, {:.1} ms)",
        file.display(),
        result.verdict.name(),
        format.name(),
        history.semantics.name(),
        model.name(),
        calls,
        result.partitions,
        elapsed.as_secs_f64() * 1e3
    );
    if let Some(e) = &result.explanation {
        outln!("{e}");
    }
    if let Some(r) = &result.unknown_reason {
        outln!("unknown: {r}");
    }
    if let Some(path) = report {
        let title = format!("{} ({})", file.display(), model.name());
        std::fs::write(&path, checker::report::html(&history, &result, &title))
            .map_err(|e| BadInput(format!("cannot write report {}: {e}", path.display())))?;
        outln!("report written to {}", path.display());
    }
    Ok(ExitCode::from(match result.verdict {
        Verdict::Linearizable => 0,
        Verdict::NotLinearizable => 1,
        Verdict::Unknown => 2,
    }))
}

#[allow(clippy::too_many_arguments)]
fn cmd_isolation(
    file: &Path,
    format: &str,
    semantics: Option<String>,
    model_name: &str,
    txn_model: Option<String>,
    [wfr_keys, sequential_keys, linearizable_keys]: [bool; 3],
    max_search_steps: u64,
    json: bool,
    report: Option<PathBuf>,
) -> Result<ExitCode, BadInput> {
    let consistency = Consistency::by_name(model_name).ok_or_else(|| {
        BadInput(format!(
            "unknown --isolation {model_name:?}: use one of {}",
            Consistency::ALL.map(|c| c.name()).join(", ")
        ))
    })?;
    let txn_model = match txn_model {
        None => None,
        Some(m) => Some(TxnModel::by_name(&m).ok_or_else(|| {
            BadInput(format!(
                "unknown --txn-model {m:?}: use list-append or rw-register"
            ))
        })?),
    };
    let (mut history, format) = read_history(file, format)?;
    if let Some(s) = semantics {
        history.semantics = Semantics::by_name(&s)
            .ok_or_else(|| BadInput(format!("unknown --semantics {s:?}: use native or jepsen")))?;
    }
    let opts = IsoOptions {
        consistency,
        txn_model,
        wfr_keys,
        sequential_keys,
        linearizable_keys,
        max_search_steps,
    };
    let start = Instant::now();
    let r = isolation::check(&history, &opts).map_err(|e| {
        BadInput(format!(
            "{}: event {}: {} (fix the history, or pass --txn-model)",
            file.display(),
            e.line,
            e.message
        ))
    })?;
    let elapsed = start.elapsed();
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&r).expect("an IsoResult always serializes")
        );
    } else {
        outln!(
            "{}: {} ({} format, {}, {:.1} ms)",
            file.display(),
            r.verdict.name(),
            format.name(),
            r.txn_model.name(),
            elapsed.as_secs_f64() * 1e3
        );
        out(&r.explain());
    }
    if let Some(path) = report {
        let title = format!("{} ({})", file.display(), consistency.name());
        std::fs::write(&path, isolation::html(&history, &r, &title))
            .map_err(|e| BadInput(format!("cannot write report {}: {e}", path.display())))?;
        if !json {
            outln!("report written to {}", path.display());
        }
    }
    Ok(ExitCode::from(match r.verdict {
        IsoVerdict::Valid => 0,
        IsoVerdict::Invalid => 1,
        IsoVerdict::Unknown => 2,
    }))
}

/// CPU time (user + system) of this process so far, in seconds (Linux
/// `/proc/self/stat`, in clock ticks of 1/100 s): on a shared machine it
/// shows the work done, whatever else runs.
fn cpu_secs() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Peak resident memory of this process (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> Option<f64> {
    status_mib("VmHWM:")
}

/// A memory figure of this process from `/proc/self/status`, in MiB.
fn status_mib(field: &str) -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn cmd_bench_isolation(
    txns: usize,
    anomaly: Option<String>,
    seed: u64,
    processes: usize,
    keys: usize,
    txn_model: &str,
    through_history: bool,
) -> Result<ExitCode, BadInput> {
    let model = TxnModel::by_name(txn_model).ok_or_else(|| {
        BadInput(format!(
            "unknown --txn-model {txn_model:?}: use list-append or rw-register"
        ))
    })?;
    let plant = match &anomaly {
        None => None,
        Some(a) => Some(gen::Plant::by_name(a).ok_or_else(|| {
            BadInput(format!(
                "unknown --anomaly {a:?}: use one of {}",
                gen::Plant::ALL.map(|p| p.name()).join(", ")
            ))
        })?),
    };
    let g0 = Instant::now();
    let mut t = gen::generate(&gen::GenOptions {
        model,
        txns,
        processes,
        live_keys: keys,
        seed,
        ..gen::GenOptions::default()
    });
    if let Some(p) = plant {
        if !gen::plant(&mut t, p, seed) {
            return Err(BadInput(format!(
                "no place to plant {} in this history; try another --seed",
                p.name()
            )));
        }
    }
    let gen_time = g0.elapsed();
    let opts = IsoOptions::default();
    let history_mib = status_mib("VmRSS:");
    let cpu0 = cpu_secs();
    let c0 = Instant::now();
    let r = isolation::check_txns(&t, &opts);
    let check_time = c0.elapsed();
    let cpu = cpu_secs().zip(cpu0).map(|(b, a)| b - a);
    let secs = check_time.as_secs_f64();
    outln!(
        "{} {} txns ({} ok, {} info, {} fail), {} mops; generated in {:.2} s",
        model.name(),
        r.stats.txns,
        r.stats.ok,
        r.stats.info,
        r.stats.fail,
        t.mops.len(),
        gen_time.as_secs_f64()
    );
    outln!(
        "check: {:.3} s wall, {:.0} txns/s ({}), {} edges, {} cycle candidates, {} components",
        secs,
        r.stats.txns as f64 / secs.max(1e-9),
        match cpu {
            Some(c) => format!(
                "{c:.2} s CPU, {:.0} txns per CPU second",
                r.stats.txns as f64 / c.max(0.01)
            ),
            None => "CPU time unknown".into(),
        },
        r.stats.edges,
        r.stats.cycle_candidates,
        r.stats.components
    );
    if through_history {
        let h = gen::to_history(&t);
        let c0 = Instant::now();
        let r2 =
            isolation::check(&h, &opts).map_err(|e| BadInput(format!("generated history: {e}")))?;
        let secs = c0.elapsed().as_secs_f64();
        outln!(
            "check from a History of {} JSON events: {:.3} s wall, {:.0} txns/s (verdict {})",
            h.ops.len(),
            secs,
            r2.stats.txns as f64 / secs.max(1e-9),
            r2.verdict.name()
        );
    }
    match peak_rss_mib() {
        Some(m) => outln!(
            "peak RSS {:.0} MiB ({:.0} MiB per million txns), of which the generated history \
             {:.0} MiB before the check",
            m,
            m / (r.stats.txns.max(1) as f64 / 1e6),
            history_mib.unwrap_or(f64::NAN)
        ),
        None => outln!("peak RSS unknown (no /proc/self/status)"),
    }
    outln!(
        "verdict: {}; anomalies: {}",
        r.verdict.name(),
        if r.counts.is_empty() {
            "none".to_string()
        } else {
            r.counts
                .iter()
                .map(|(k, v)| format!("{k} x{v}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    if let Some(p) = plant {
        let found = r.has(p.expected());
        outln!(
            "planted {}: expected {} {}",
            p.name(),
            p.expected(),
            if found { "found" } else { "NOT FOUND" }
        );
        if !found {
            return Ok(ExitCode::from(1));
        }
        return Ok(ExitCode::SUCCESS);
    }
    Ok(match r.verdict {
        IsoVerdict::Valid => ExitCode::SUCCESS,
        IsoVerdict::Invalid => ExitCode::from(1),
        IsoVerdict::Unknown => ExitCode::from(2),
    })
}

fn parse_model(
    model: Option<&str>,
    format: Format,
    history: &History,
) -> Result<ModelKind, BadInput> {
    match model {
        Some(m) => ModelKind::by_name(m).ok_or_else(|| {
            BadInput(format!(
                "unknown --model {m:?}: use register, cas-register, kv, mutex or multi-register"
            ))
        }),
        None => Ok(format.default_model(history)),
    }
}

fn parse_initial(
    initial: Option<&str>,
    format: Format,
    model: ModelKind,
) -> Result<serde_json::Value, BadInput> {
    match initial {
        Some(s) if model == ModelKind::Mutex => Err(BadInput(format!(
            "--initial {s} does not apply to the mutex model: a mutex starts free"
        ))),
        Some(s) => serde_json::from_str(s).map_err(|e| {
            BadInput(format!(
                "--initial must be a JSON value such as null, 0 or '\"\"' (got {s:?}: {e})"
            ))
        }),
        None => Ok(format.default_initial()),
    }
}

fn cmd_bench(dir: &Path, threads: usize, repeat: usize) -> Result<ExitCode, BadInput> {
    let csv_path = dir.join("expected.csv");
    let csv = std::fs::read_to_string(&csv_path)
        .map_err(|e| BadInput(format!("cannot read {}: {e}", csv_path.display())))?;
    let mut mismatches = 0;
    let mut totals: Vec<(String, Duration, usize)> = Vec::new();
    let mut grand = Duration::ZERO;
    const VERDICTS: [&str; 3] = ["linearizable", "not-linearizable", "none"];
    // A first line whose second column is not a verdict is a header.
    let header = csv
        .lines()
        .next()
        .is_some_and(|l| !VERDICTS.contains(&l.split(',').nth(1).map_or("", str::trim)));
    let skip = usize::from(header);
    let width = csv
        .lines()
        .skip(skip)
        .map(|l| l.split(',').next().unwrap_or("").len())
        .max()
        .unwrap_or(0)
        .max(22);
    for (i, line) in csv.lines().enumerate().skip(skip) {
        if line.trim().is_empty() {
            continue;
        }
        // file,expected[,model[,initial]]: the initial value (JSON) is
        // the rest of the line, so it may contain commas.
        let cols: Vec<&str> = line.splitn(4, ',').map(str::trim).collect();
        let [file, expected, rest @ ..] = cols.as_slice() else {
            return Err(BadInput(format!(
                "{}:{}: expected `file,verdict[,model[,initial]]`",
                csv_path.display(),
                i + 1
            )));
        };
        let (file, expected) = (*file, *expected);
        if !VERDICTS.contains(&expected) {
            return Err(BadInput(format!(
                "{}:{}: expected verdict {expected:?}: use linearizable, not-linearizable or none",
                csv_path.display(),
                i + 1
            )));
        }
        let (history, format) = read_history(&dir.join(file), "auto")?;
        let at = |e: BadInput| BadInput(format!("{}:{}: {}", csv_path.display(), i + 1, e.0));
        let model = rest.first().filter(|m| !m.is_empty()).copied();
        let model = parse_model(model, format, &history).map_err(at)?;
        let initial = rest.get(1).filter(|s| !s.is_empty()).copied();
        let initial = parse_initial(initial, format, model).map_err(at)?;
        let opts = Options {
            threads,
            initial,
            ..Options::default()
        };
        let mut best = Duration::MAX;
        let mut verdict = Verdict::Unknown;
        for _ in 0..repeat {
            let start = Instant::now();
            let r = linear::try_check(&history, model, &opts)
                .map_err(|e| BadInput(format!("{file}: {e}")))?;
            best = best.min(start.elapsed());
            verdict = r.verdict;
        }
        let ok = expected == "none" || expected == verdict.name();
        if !ok {
            mismatches += 1;
        }
        outln!(
            "{file:<width$} {:>9.3} ms  {:<17} {}",
            best.as_secs_f64() * 1e3,
            verdict.name(),
            if ok {
                "ok".to_string()
            } else {
                format!("MISMATCH (expected {expected})")
            }
        );
        let group = file.split('/').next().unwrap_or("").to_string();
        match totals.iter_mut().find(|t| t.0 == group) {
            Some(t) => {
                t.1 += best;
                t.2 += 1;
            }
            None => totals.push((group, best, 1)),
        }
        grand += best;
    }
    if totals.is_empty() {
        return Err(BadInput(format!(
            "{}: lists no file (one `file,verdict[,model[,initial]]` per line)",
            csv_path.display()
        )));
    }
    for (group, d, n) in &totals {
        outln!(
            "total {group:<16} {:>9.3} ms  ({n} files)",
            d.as_secs_f64() * 1e3
        );
    }
    outln!(
        "total {:<16} {:>9.3} ms  (check time only, parsing excluded; {} mismatches)",
        "all",
        grand.as_secs_f64() * 1e3,
        mismatches
    );
    Ok(if mismatches == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn cmd_vclock(scheme_file: &Path, logs: &[PathBuf], json: bool) -> Result<ExitCode, BadInput> {
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .map_err(|e| BadInput(format!("cannot read {}: {e}", p.display())))
    };
    let scheme = vclock::Scheme::from_json(&read(scheme_file)?)
        .map_err(|e| BadInput(format!("{}: {e}", scheme_file.display())))?;
    let mut events = Vec::new();
    for log in logs {
        let name = log.display().to_string();
        events.extend(vclock::parse_log(&read(log)?, &name).map_err(BadInput)?);
    }
    let start = Instant::now();
    let r = vclock::check(&scheme, &events);
    let elapsed = start.elapsed();
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&r).expect("a VcResult always serializes")
        );
    } else {
        outln!(
            "{}: {} ({} log files, {:.1} ms)",
            if scheme.name.is_empty() {
                scheme_file.display().to_string()
            } else {
                scheme.name.clone()
            },
            r.verdict.name(),
            logs.len(),
            elapsed.as_secs_f64() * 1e3
        );
        out(&r.explain());
    }
    Ok(ExitCode::from(match r.verdict {
        vclock::VcVerdict::Valid => 0,
        vclock::VcVerdict::Invalid => 1,
        vclock::VcVerdict::NothingChecked => 2,
    }))
}

fn cmd_convert(file: &Path, to: &str, format: &str) -> Result<ExitCode, BadInput> {
    let (history, source) = read_history(file, format)?;
    let (text, target) = match to {
        "edn" => (history.to_edn(), Format::Edn),
        "native" | "jsonl" => (history.to_jsonl(), Format::Native),
        other => {
            return Err(BadInput(format!(
                "unknown --to {other:?}: use edn or native"
            )))
        }
    };
    // The events are copied as they are; what they mean follows the format
    // they are read in: its semantics and the state every key starts from.
    let mut keep = Vec::new();
    if history.semantics != target.semantics() {
        eprintln!(
            "note: the events are copied unchanged, but {} histories are read with the {} \
             meaning and this one had the {} meaning (a fail, a read of null and the order \
             differ: see checker/README.md)",
            target.name(),
            target.semantics().name(),
            history.semantics.name(),
        );
        keep.push(format!("--semantics {}", history.semantics.name()));
    }
    let initial = source.default_initial();
    if initial != target.default_initial() {
        eprintln!(
            "note: {} histories start from {initial} in every register or key, {} ones from {}",
            source.name(),
            target.name(),
            target.default_initial()
        );
        keep.push(format!("--initial '{initial}'"));
    }
    if !keep.is_empty() {
        eprintln!(
            "note: to keep the verdict, check the output with {}",
            keep.join(" ")
        );
    }
    out(&text);
    Ok(ExitCode::SUCCESS)
}
