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
    // `RUST_LOG=bookstore::tartu=info cargo sim run ...`: the services'
    // logs on stderr (they do not change what a run does).
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .without_time()
            .init();
    }
    bookstore::pad::graphql::warm_up();
    harness::cli::main(sim::app())
}
