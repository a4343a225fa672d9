//! The simulator commands the README shows work as the README says: every
//! `cargo sim ...` and `cargo simrun -p register-example -- ...` line of its
//! `sh` blocks is run with the binaries `cargo simtest` built, and must end
//! with the exit status its command implies (0 for a run or sweep that should
//! pass, 1 when it finds a planted bug, 0 for a shrink), and a comment's
//! "N of M seeds fail" or "0 failed" must be what the sweep prints.
//!
//! Long sweeps are cut to their first 50 seeds, a sweep for a planted bug
//! without a count in its comment stops at its first failing seed, and
//! `bench` runs 20 seeds: the command is checked, not the machine.
#![cfg(madsim)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// One README line: where it is, the program, its arguments, its comment.
struct Line {
    at: usize,
    program: PathBuf,
    args: Vec<String>,
    comment: String,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("sim/ is in the repository")
        .to_path_buf()
}

/// The simulator lines of the README's `sh` blocks.
fn readme_lines() -> Vec<Line> {
    let sim = PathBuf::from(env!("CARGO_BIN_EXE_sim"));
    // Built beside `sim` by `cargo simtest` (the whole workspace).
    let register = sim.with_file_name("register-sim");
    let text = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let mut lines = Vec::new();
    let mut in_sh = false;
    for (i, raw) in text.lines().enumerate() {
        let t = raw.trim();
        if t.starts_with("```") {
            in_sh = !in_sh && t == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let (cmd, comment) = t.split_once(" #").unwrap_or((t, ""));
        let words: Vec<String> = cmd.split_whitespace().map(str::to_string).collect();
        let (program, args) = match words.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["cargo", "sim", ..] => (sim.clone(), words[2..].to_vec()),
            ["cargo", "simrun", "-p", "register-example", "--", ..] => {
                (register.clone(), words[5..].to_vec())
            }
            _ => continue,
        };
        lines.push(Line {
            at: i + 1,
            program,
            args,
            comment: comment.trim().to_string(),
        });
    }
    lines
}

fn has(args: &[String], flag: &str) -> bool {
    args.iter().any(|a| a == flag)
}

fn value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let i = args.iter().position(|a| a == flag)?;
    args.get(i + 1).map(String::as_str)
}

/// "N of M seeds fail" in a comment: (N, M).
fn claimed_failures(comment: &str) -> Option<(u64, u64)> {
    let words: Vec<&str> = comment.split_whitespace().collect();
    words.windows(5).find_map(|w| match w {
        [n, "of", m, "seeds", "fail"] => Some((n.parse().ok()?, m.parse().ok()?)),
        _ => None,
    })
}

/// The arguments the test runs: `line`'s, bounded as the module says.
fn bounded(line: &Line) -> Vec<String> {
    let mut args = line.args.clone();
    let sub = line.args.first().map(String::as_str);
    let set = |args: &mut Vec<String>, flag: &str, v: String| {
        let i = args.iter().position(|a| a == flag).expect("flag present");
        args[i + 1] = v;
    };
    if sub == Some("sweep") && claimed_failures(&line.comment).is_none() {
        if let Some((a, b)) = value(&args, "--seeds").and_then(|r| r.split_once("..")) {
            let (a, b): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
            set(&mut args, "--seeds", format!("{a}..{}", b.min(a + 50)));
        }
        if has(&args, "--bug") {
            args.push("--stop-on-failure".into());
        }
    }
    if sub == Some("bench") && value(&args, "--seeds").is_some() {
        set(&mut args, "--seeds", "20".into());
    }
    args
}

/// The exit status `line` implies: 1 when it runs a planted bug (a `--bug`,
/// or the schedule of one), except `shrink`; 0 otherwise.
fn expected_status(line: &Line) -> i32 {
    let sub = line.args.first().map(String::as_str);
    if sub == Some("shrink") || sub == Some("bench") {
        return 0;
    }
    if has(&line.args, "--bug") {
        return 1;
    }
    if let Some(path) = value(&line.args, "--schedule") {
        let text = std::fs::read_to_string(repo().join(path))
            .unwrap_or_else(|e| panic!("README line {}: schedule {path}: {e}", line.at));
        let s: serde_json::Value = serde_json::from_str(&text).expect("a schedule is JSON");
        return i32::from(s["bug"].is_string());
    }
    0
}

#[test]
fn every_simulator_command_of_the_readme_works_as_it_says() {
    let lines = readme_lines();
    assert!(
        lines.len() >= 10,
        "found only {} simulator lines in README.md: did its sh blocks change?",
        lines.len()
    );
    // Run where the README's relative paths (histories/...) resolve, with
    // their output out of the repository.
    let out = std::env::temp_dir().join(format!("sim-readme-{}", std::process::id()));
    let mut wrong = Vec::new();
    for line in &lines {
        assert!(
            line.program.exists(),
            "README line {}: {} is not built (run `cargo simtest --workspace`)",
            line.at,
            line.program.display()
        );
        let mut args = bounded(line);
        // `schedule` and `bench` write nothing and refuse --out.
        let writes = !matches!(args.first().map(String::as_str), Some("schedule" | "bench"));
        if writes && !has(&args, "--out") {
            args.push("--out".into());
            args.push(out.display().to_string());
        }
        let o = Command::new(&line.program)
            .args(&args)
            .current_dir(repo())
            .output()
            .expect("the binary runs");
        let stdout = String::from_utf8_lossy(&o.stdout);
        let stderr = String::from_utf8_lossy(&o.stderr);
        let status = o.status.code().unwrap_or(-1);
        let shown = format!("README line {}: {}", line.at, line.args.join(" "));
        let expected = expected_status(line);
        if status != expected {
            let tail: Vec<&str> = stdout.lines().rev().take(6).collect();
            wrong.push(format!(
                "{shown}\n  exit {status}, expected {expected}\n  stderr: {}\n  stdout ends: {}",
                stderr.trim(),
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ));
            continue;
        }
        let summary = stdout
            .lines()
            .find(|l| l.contains(" seeds run in "))
            .unwrap_or("");
        let failed = summary
            .rsplit_once("; ")
            .and_then(|(_, f)| f.strip_suffix(" failed"))
            .and_then(|n| n.parse::<u64>().ok());
        let claim = claimed_failures(&line.comment)
            .map(|(n, m)| (n, Some(m)))
            .or_else(|| line.comment.contains("0 failed").then_some((0, None)));
        if let Some((n, m)) = claim {
            let seeds = value(&line.args, "--seeds")
                .and_then(|r| r.split_once(".."))
                .map(|(a, b)| b.parse::<u64>().unwrap() - a.parse::<u64>().unwrap());
            if failed != Some(n) || (m.is_some() && seeds != m) {
                wrong.push(format!(
                    "{shown}\n  the comment says {n} of {} seeds fail; the sweep printed '{summary}'",
                    m.or(seeds).unwrap_or(0)
                ));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&out);
    assert!(
        wrong.is_empty(),
        "{} README command(s) do not do what the README says:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
