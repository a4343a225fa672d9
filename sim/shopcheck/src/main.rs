//! `shopcheck FILE [--json] [--report PATH]`: check the checkout-transaction
//! invariants of a bookstore history (native JSON Lines).
//!
//! Exit codes: 0 valid, 1 invalid, 3 bad input or usage (`error: ...` on
//! stderr). The report is written for bad input too (the page shows the
//! error); exit codes are unchanged by it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use checker::formats::{self, Format};
use checker::history::History;
use checker::stdout::out;
use shopcheck::invariants::{check_checkout, Verdict};

#[derive(Parser)]
#[command(
    name = "shopcheck",
    version,
    about = "Check the checkout-transaction invariants of a bookstore history \
             (native JSON Lines). Exit 0 valid, 1 invalid, 3 bad input."
)]
struct Cli {
    file: PathBuf,
    /// Print the result as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Write a self-contained HTML report here (also for bad input).
    #[arg(long)]
    report: Option<PathBuf>,
}

/// A usage or input problem: exit code 3 with a message.
struct BadInput(String);

fn read_history(file: &Path) -> Result<History, BadInput> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| BadInput(format!("cannot read {}: {e}", file.display())))?;
    formats::parse(&text, Format::Native).map_err(|e| {
        BadInput(format!(
            "{}:{}: {} (the history must be native JSON Lines)",
            file.display(),
            e.line,
            e.message
        ))
    })
}

macro_rules! outln {
    ($($arg:tt)*) => { out(&format!("{}\n", format_args!($($arg)*))) };
}

fn main() -> ExitCode {
    // clap's own exit code for a usage error is 2; here it is 3 like any
    // other bad input (`--help` and `--version` still exit 0).
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 3 } else { 0 });
        }
    };
    match run(&cli.file, cli.json, cli.report) {
        Ok(code) => code,
        Err(BadInput(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(3)
        }
    }
}

fn run(file: &Path, json: bool, report: Option<PathBuf>) -> Result<ExitCode, BadInput> {
    let history = read_history(file)?;
    let result = check_checkout(&history);
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&result).expect("a result always serializes")
        );
    }
    // Written also for bad input (the page shows the error), after the text.
    let write_report = || -> Result<(), BadInput> {
        let Some(path) = &report else { return Ok(()) };
        let title = format!("{} (checkout invariants)", file.display());
        std::fs::write(path, shopcheck::invariants_html(&history, &result, &title))
            .map_err(|e| BadInput(format!("cannot write report {}: {e}", path.display())))?;
        // Keep stdout pure JSON with --json.
        if json {
            eprintln!("report written to {}", path.display());
        } else {
            outln!("report written to {}", path.display());
        }
        Ok(())
    };
    if let Some(e) = &result.error {
        write_report()?;
        return Err(BadInput(format!("{}: {e}", file.display())));
    }
    if !json {
        let s = &result.stats;
        outln!(
            "{}: {} ({} violations; {} items, {} users, {} orders, {} paid; checkouts {} ok, \
             {} failed, {} unknown; {} unknown updates)",
            file.display(),
            result.verdict.name(),
            result.violations.len(),
            s.items,
            s.users,
            s.orders,
            s.paid_orders,
            s.checkouts_ok,
            s.checkouts_failed,
            s.checkouts_unknown,
            s.unknown_updates
        );
        for v in &result.violations {
            const SHOWN: usize = 8;
            let mut ops: Vec<String> = v.ops.iter().take(SHOWN).map(|i| format!("#{i}")).collect();
            if v.ops.len() > SHOWN {
                ops.push(format!("and {} more", v.ops.len() - SHOWN));
            }
            outln!(
                "  [{}] {} (events {})",
                v.kind.name(),
                v.message,
                ops.join(", ")
            );
        }
    }
    write_report()?;
    Ok(ExitCode::from(match result.verdict {
        Verdict::Valid => 0,
        Verdict::Invalid => 1,
        Verdict::BadInput => 3,
    }))
}
