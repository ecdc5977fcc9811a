//! End-to-end tests of the CDC bridge against the real PostgreSQL, Kafka and schema registry.
//!
//! Each test gets its own database (with the reference legacy schema), slot, publication,
//! topics (one prefix) and registry subjects (named after those topics), and runs the bridge as
//! a **child process**: this test binary re-executes itself into [`bridge_process`], which runs
//! the same `cdc_bridge::cli` entry point as the `cdc-bridge` binary. A child process is what
//! `kill -9` needs (an aborted in-process task would still run destructors), and re-executing
//! the test binary is always the code under test: `target/debug/cdc-bridge` is not built by
//! `cargo test -p e2e` and could be stale.

#[path = "bridge/fixture.rs"]
mod fixture;
#[path = "bridge/flows.rs"]
mod flows;
#[path = "bridge/resilience.rs"]
mod resilience;
#[path = "bridge/snapshot.rs"]
mod snapshot;

/// Not a test: the entry point of the bridge child processes started by [`fixture::Bridge`].
/// Without `FIG_E2E_BRIDGE_CONFIG` set it does nothing.
#[test]
#[ignore = "entry point of bridge child processes; the tests start it themselves"]
fn bridge_process() {
    let Ok(config) = std::env::var(fixture::CHILD_CONFIG_ENV) else {
        return;
    };
    let args = ["cdc-bridge", "--config", config.as_str(), "run"].map(std::ffi::OsString::from);
    if let Err(e) = cdc_bridge::cli::main_with_args(args) {
        eprintln!(
            "bridge child stopped: {}",
            cdc_bridge::session::error_chain(&e)
        );
        std::process::exit(1);
    }
    std::process::exit(0);
}
