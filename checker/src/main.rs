//! `checker`: check, benchmark and convert histories from the command line.
//!
//! Exit codes of `check`: 0 linearizable, 1 not linearizable, 2 unknown
//! (time or memory bound), 3 bad input or usage.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use checker::formats::{self, Format};
use checker::history::{History, Semantics};
use checker::linear::{self, Options, Verdict};
use checker::model::ModelKind;

#[derive(Parser)]
#[command(
    name = "checker",
    version,
    about = "Linearizability checker for Jepsen/Porcupine-style histories"
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
        #[arg(long)]
        initial: Option<String>,
        /// What the events mean: native (also Porcupine's) or jepsen (also
        /// Knossos's); default from the format (EDN: jepsen, others: native).
        #[arg(long)]
        semantics: Option<String>,
        /// Give up (exit 2) after this many seconds.
        #[arg(long)]
        timeout: Option<f64>,
        /// Worker threads for independent partitions (0 = one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Give up (exit 2) after this many cached search states per partition.
        #[arg(long, default_value_t = 10_000_000)]
        max_cache: usize,
        /// Write a self-contained HTML report here.
        #[arg(long)]
        report: Option<PathBuf>,
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
    let text = std::fs::read_to_string(file)
        .map_err(|e| BadInput(format!("cannot read {}: {e}", file.display())))?;
    let parsed = if format == "auto" {
        formats::parse_auto(&text)
    } else {
        let f = Format::by_name(format).ok_or_else(|| {
            BadInput(format!(
                "unknown --format {format:?}: use auto, native, edn, etcd or porcupine-kv"
            ))
        })?;
        formats::parse(&text, f).map(|h| (h, f))
    };
    parsed.map_err(|e| {
        BadInput(format!(
            "{}:{}: {} (fix the file, or pass --format if it was detected wrongly)",
            file.display(),
            e.line,
            e.message
        ))
    })
}

/// Writes to stdout. A reader that goes away (`checker convert ... | head`)
/// ends the program quietly instead of panicking as `print!` would.
fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(3);
    }
}

macro_rules! outln {
    ($($arg:tt)*) => { out(&format!("{}\n", format_args!($($arg)*))) };
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        } => cmd_check(
            &file, &format, model, initial, semantics, timeout, threads, max_cache, report,
        ),
        Cmd::Bench {
            dir,
            threads,
            repeat,
        } => cmd_bench(&dir, threads, repeat.max(1)),
        Cmd::Convert { file, to, format } => cmd_convert(&file, &to, &format),
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
    let initial = parse_initial(initial.as_deref(), format)?;
    if let Some(t) = timeout {
        if !(t.is_finite() && t > 0.0) {
            return Err(BadInput(
                "--timeout must be a positive number of seconds".into(),
            ));
        }
    }
    let opts = Options {
        timeout: timeout.map(Duration::from_secs_f64),
        threads,
        max_cache_entries: max_cache,
        initial,
    };
    let start = Instant::now();
    let result = linear::try_check(&history, model, &opts).map_err(|e| {
        BadInput(format!(
            "{}: event {}: {} (pick another --model, or fix the history)",
            file.display(),
            e.line,
            e.message
        ))
    })?;
    let elapsed = start.elapsed();
    outln!(
        "{}: {} ({} format, {} semantics, {} model, {} ops, {} partitions, {:.1} ms)",
        file.display(),
        result.verdict.name(),
        format.name(),
        history.semantics.name(),
        model.name(),
        history.ops.len(),
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

fn parse_initial(initial: Option<&str>, format: Format) -> Result<serde_json::Value, BadInput> {
    match initial {
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
    let width = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap_or("").len())
        .max()
        .unwrap_or(0)
        .max(22);
    for (i, line) in csv.lines().enumerate().skip(1) {
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
        let (history, format) = read_history(&dir.join(file), "auto")?;
        let at = |e: BadInput| BadInput(format!("{}:{}: {}", csv_path.display(), i + 1, e.0));
        let model = rest.first().filter(|m| !m.is_empty()).copied();
        let model = parse_model(model, format, &history).map_err(at)?;
        let initial = rest.get(1).filter(|s| !s.is_empty()).copied();
        let initial = parse_initial(initial, format).map_err(at)?;
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

fn cmd_convert(file: &Path, to: &str, format: &str) -> Result<ExitCode, BadInput> {
    let (history, _) = read_history(file, format)?;
    let (text, target) = match to {
        "edn" => (history.to_edn(), Format::Edn),
        "native" | "jsonl" => (history.to_jsonl(), Format::Native),
        other => {
            return Err(BadInput(format!(
                "unknown --to {other:?}: use edn or native"
            )))
        }
    };
    if history.semantics != target.semantics() {
        // The events are copied as they are; what they mean follows the
        // format they are read in.
        eprintln!(
            "note: the events are copied unchanged, but {} histories are read with the {} \
             meaning and this one had the {} meaning (a fail, a read of null and the order \
             differ: see checker/README.md); to keep its meaning, check the output with \
             --semantics {}",
            target.name(),
            target.semantics().name(),
            history.semantics.name(),
            history.semantics.name()
        );
    }
    out(&text);
    Ok(ExitCode::SUCCESS)
}
