//! `sim`: the simulation CLI. Build and run it with `cargo sim ...` (the
//! optimised `--cfg madsim` build); see `cargo sim --help`.

#[cfg(not(madsim))]
fn main() -> std::process::ExitCode {
    eprintln!("the sim CLI runs inside the deterministic simulator: use `cargo sim <command>` (see README.md)");
    std::process::ExitCode::from(2)
}

// A simulated run allocates for every message, task and timer; mimalloc
// makes the simulator about 15 % faster than glibc's malloc
// (`cargo sim bench`), and its version 2 (`sim/Cargo.toml`) touches less
// fresh memory than its version 3. Allocation addresses never reach
// behaviour.
#[cfg(madsim)]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h (v2 and v3).
#[cfg(madsim)]
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

#[cfg(madsim)]
extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

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
    // mimalloc returns freed pages to the OS 10 ms after they empty, and
    // each reuse faults them in again, zeroed by the kernel: checkout seed 3
    // took 9,386 page faults instead of 573, 15 % of its time. A seed's
    // process is short-lived, so it keeps them (`MIMALLOC_PURGE_DELAY=-1`).
    // SAFETY: sets an option of the allocator this binary links; any value
    // is valid.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    bookstore::pad::graphql::warm_up();
    harness::cli::main(sim::app())
}
