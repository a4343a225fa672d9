//! `register-sim`: the harness's CLI for the register example
//! (`cargo simrun -p register-example -- sweep --bug ack-before-sync`).

#[cfg(madsim)]
fn main() -> std::process::ExitCode {
    harness::cli::main(harness::cli::App {
        name: "register-sim",
        about: "A tonic register service under seeded faults",
        replay: "cargo simrun -p register-example --",
        scenarios: vec![&register_example::scenario::RegisterScenario],
    })
}

#[cfg(not(madsim))]
fn main() {
    eprintln!("build with --cfg madsim: cargo simrun -p register-example -- --help");
}
