//! `jepsen`: the simulator's `kv`, `checkout` and `tartu` workloads and
//! checks against real `bookstore` processes on loopback, with faults drawn from a seed
//! (see `sim::jepsen`). `ci/jepsen --seconds 60 --seed 1` builds and runs it.

#[cfg(not(madsim))]
mod real {
    use clap::{CommandFactory, FromArgMatches, Parser};
    use harness::sh_quote;
    use std::path::PathBuf;

    #[derive(Parser)]
    #[command(
        name = "jepsen",
        about = "Jepsen mode: the simulator's workloads (kv, checkout, tartu) against real bookstore processes on loopback, faults drawn from a seed (SIGKILL and restart, SIGSTOP/SIGCONT, clock drift and jumps, and partitions, one-way cuts, loss and latency through TCP proxies on every link); checks linearizability (kv), the checkout invariants (checkout), 2PC, conservation, vector clocks and the executors' mutual exclusion (tartu), the Raft invariants from the nodes' event logs, liveness and convergence; exits 0 valid, 1 invalid, 2 unknown or could not run"
    )]
    struct Cli {
        /// The workload: kv (a Raft KV group), checkout (the whole shop)
        /// or tartu (the whole Tartu bookstore).
        #[arg(long, default_value = "kv")]
        workload: String,
        /// checkout: saga or 2pc [default: drawn from the seed].
        #[arg(long)]
        mode: Option<String>,
        /// checkout: consistency (1000 checkouts of one item with stock
        /// 100 by 1000 users with credit 1, 32 clients) or mix (every
        /// operation, 8 clients) [default: drawn from the seed].
        #[arg(long)]
        shop_workload: Option<String>,
        /// Draws the fault schedule (and the clients' choices).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// How long clients and faults run before everything heals (1 to
        /// 86400).
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        seconds: u64,
        /// kv: the nodes (3 to 7).
        #[arg(long, default_value_t = 3)]
        nodes: u64,
        /// kv: the clients; tartu: the clients posting checkouts.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
        clients: u64,
        /// kv: the keys.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        keys: u64,
        /// kv, checkout (mix): mean pause of a client before each operation (0..2x), in ms
        /// (at most 100000).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=sim::pacing::MAX_THINK_MS))]
        think_ms: u64,
        /// Fault kinds, comma-separated, or `all` (kill, pause, clock,
        /// partition, one-way, loss, latency), or `none`.
        #[arg(long, default_value = "all")]
        faults: String,
        /// A planted bug every process runs with (see system/src/bugs.rs).
        #[arg(long)]
        bug: Option<String>,
        /// Ports from here: process i on base+i, its users' proxy on
        /// base+500+i, the link from a to b on base+1000+20a+b (tartu: up
        /// to base+1189; space parallel runs 1200 apart).
        #[arg(long, default_value_t = 27000)]
        base_port: u16,
        /// Output folder, emptied first: it must be new, empty, or a jepsen
        /// output (with its .jepsen-out file) [default:
        /// target/jepsen/WORKLOAD-seed-SEED].
        #[arg(long)]
        out: Option<PathBuf>,
        /// The bookstore binary [default: beside this one].
        #[arg(long)]
        bookstore: Option<PathBuf>,
        /// Nodes snapshot every N applied entries, N at least 1 (small:
        /// snapshots and their transfer happen in a short run).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
        snapshot_every: u64,
        /// Run seeds SEED, SEED+1, ... up to this many runs, stopping at
        /// the first that is not valid (each in its own output folder).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        runs: u64,
        /// kv: the clients share one connection per node and pipeline
        /// their gets and puts on its stream (what `bookstore bench` does).
        #[arg(long)]
        pipeline: bool,
    }

    pub fn main() -> std::process::ExitCode {
        let matches = Cli::command().get_matches();
        let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        // Options of another workload would be ignored: refused instead.
        let given =
            |id: &str| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
        for (id, flag, owners) in [
            ("mode", "--mode", &["checkout"][..]),
            ("shop_workload", "--shop-workload", &["checkout"]),
            ("nodes", "--nodes", &["kv"]),
            ("keys", "--keys", &["kv"]),
            ("pipeline", "--pipeline", &["kv"]),
            ("think_ms", "--think-ms", &["kv", "checkout"]),
            ("clients", "--clients", &["kv", "tartu"]),
        ] {
            if given(id) && !owners.contains(&cli.workload.as_str()) {
                eprintln!(
                    "jepsen: {flag} applies to --workload {} only",
                    owners.join(" or ")
                );
                return std::process::ExitCode::from(2);
            }
        }
        if cli.seed.checked_add(cli.runs - 1).is_none() {
            eprintln!(
                "jepsen: --seed {} with --runs {}: the seeds pass 2^64",
                cli.seed, cli.runs
            );
            return std::process::ExitCode::from(2);
        }
        let kinds = sim::jepsen::KINDS;
        let faults: Vec<String> = match cli.faults.as_str() {
            "all" => kinds.iter().map(|k| k.to_string()).collect(),
            "none" => Vec::new(),
            list => {
                let mut out = Vec::new();
                for k in list.split(',').map(str::trim) {
                    if !kinds.contains(&k) {
                        eprintln!(
                            "jepsen: unknown fault kind '{k}' in --faults; kinds: {}, or all, or none",
                            kinds.join(", ")
                        );
                        return std::process::ExitCode::from(2);
                    }
                    out.push(k.to_string());
                }
                out
            }
        };
        if cli.nodes < 3 || cli.nodes > 7 {
            eprintln!("jepsen: --nodes must be from 3 to 7");
            return std::process::ExitCode::from(2);
        }
        if !["kv", "checkout", "tartu"].contains(&cli.workload.as_str()) {
            eprintln!(
                "jepsen: unknown --workload '{}': expected kv, checkout or tartu",
                cli.workload
            );
            return std::process::ExitCode::from(2);
        }
        if let Some(m) = &cli.mode {
            if m != "saga" && m != "2pc" {
                eprintln!("jepsen: unknown --mode '{m}': expected saga or 2pc");
                return std::process::ExitCode::from(2);
            }
        }
        if let Some(w) = &cli.shop_workload {
            if w != "consistency" && w != "mix" {
                eprintln!("jepsen: unknown --shop-workload '{w}': expected consistency or mix");
                return std::process::ExitCode::from(2);
            }
        }
        if let Some(b) = &cli.bug {
            if let Err(e) = bookstore::bugs::Bugs::from_name(b) {
                eprintln!("jepsen: {e}");
                return std::process::ExitCode::from(2);
            }
        }
        let bookstore = cli.bookstore.unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(|d| d.join("bookstore")))
                .unwrap_or_else(|| PathBuf::from("bookstore"))
        });
        let runs = cli.runs;
        for k in 0..runs {
            let seed = cli.seed + k;
            let out = match &cli.out {
                Some(o) if runs == 1 => o.clone(),
                Some(o) => o.join(format!("seed-{seed}")),
                None => PathBuf::from(format!("target/jepsen/{}-seed-{seed}", cli.workload)),
            };
            let o = sim::jepsen::Options {
                workload: cli.workload.clone(),
                seed,
                seconds: cli.seconds,
                nodes: cli.nodes,
                clients: cli.clients,
                keys: cli.keys,
                think_ms: cli.think_ms,
                faults: faults.clone(),
                bug: cli.bug.clone(),
                base_port: cli.base_port,
                out,
                bookstore: bookstore.clone(),
                snapshot_every: cli.snapshot_every,
                mode: cli.mode.clone(),
                shop_workload: cli.shop_workload.clone(),
                pipeline: cli.pipeline,
            };
            // A runtime per run: dropping it closes the run's proxies.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            let code = rt.block_on(sim::jepsen::main(o));
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
            if code != 0 {
                if runs > 1 {
                    println!(
                        "run {} of {runs} (seed {seed}) ended with exit code {code}; replay: {}",
                        k + 1,
                        replay(seed, runs > 1)
                    );
                } else if code == 1 {
                    println!("replay: {}", replay(seed, false));
                }
                return std::process::ExitCode::from(code);
            }
        }
        if runs > 1 {
            println!("{runs} runs, all valid");
        }
        std::process::ExitCode::SUCCESS
    }

    /// The command that runs `seed` again as this run did: every flag
    /// given, but `--runs`, and `--seed` set to this seed; of several runs
    /// (`several`), `--out DIR` is the run's own `DIR/seed-N` (a folder
    /// of several runs is not one run's output, and is refused).
    fn replay(seed: u64, several: bool) -> String {
        let mut out = vec!["ci/jepsen".to_string()];
        let mut args = std::env::args().skip(1);
        let own = |dir: &str| {
            if several {
                PathBuf::from(dir)
                    .join(format!("seed-{seed}"))
                    .display()
                    .to_string()
            } else {
                dir.to_string()
            }
        };
        while let Some(a) = args.next() {
            if a == "--runs" || a == "--seed" {
                args.next();
            } else if a == "--out" {
                out.push(a);
                if let Some(dir) = args.next() {
                    out.push(sh_quote(&own(&dir)));
                }
            } else if let Some(dir) = a.strip_prefix("--out=") {
                out.push(format!("--out={}", sh_quote(&own(dir))));
            } else if !a.starts_with("--runs=") && !a.starts_with("--seed=") {
                out.push(sh_quote(&a));
            }
        }
        out.push(format!("--seed {seed}"));
        format!(
            "{} (same schedule; the run itself is real time, not replayed bit for bit)",
            out.join(" ")
        )
    }
}

#[cfg(not(madsim))]
fn main() -> std::process::ExitCode {
    real::main()
}

#[cfg(madsim)]
fn main() {
    eprintln!("jepsen runs real processes: build it without --cfg madsim (ci/jepsen)");
    std::process::exit(2);
}
