//! The fault suite: faults injected into a **private** stack while the product runs under load,
//! each case asserting that nothing is lost (tests/faults/README.md).
//!
//! This binary has no libtest harness. Run as `cargo test -p e2e --test faults [-- CASE...]`, it
//! is a supervisor: it starts a private PostgreSQL, Kafka and registry with `deploy/local/up` on
//! free ports, re-executes itself as the runner with the `FIG_*` variables pointing there (the
//! harness reads them; changing our own environment would need `unsafe`), waits, and stops the
//! stack whatever happened to the runner. The runner runs the cases one after another (they
//! inject faults into shared private services), prints one row per case and writes
//! `faults.json`. The same binary is also the bridge and gateway child processes the cases kill.

#[allow(dead_code)]
#[path = "../tests/bridge/fixture.rs"]
mod fixture;
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../tests/gateway/support.rs"]
mod support;

mod bridge_cases;
mod gateway_cases;
mod legacy_writer;
mod report;
mod settings;
mod tally;
mod upstream;

use std::process::ExitCode;

use report::CaseReport;
use settings::Settings;

/// Set in the runner process (the supervisor's child).
const RUNNER_ENV: &str = "FIG_FAULTS_RUNNER";

/// One fault case.
struct Case {
    name: &'static str,
    needs_stack: bool,
}

/// Every case, in the order they run.
const CASES: &[Case] = &[
    Case {
        name: "bridge_sigkill",
        needs_stack: true,
    },
    Case {
        name: "kafka_restart",
        needs_stack: true,
    },
    Case {
        name: "postgres_restart",
        needs_stack: true,
    },
    Case {
        name: "registry_pause",
        needs_stack: true,
    },
    Case {
        name: "gateway_upstream",
        needs_stack: false,
    },
    Case {
        name: "gateway_replica_kill",
        needs_stack: true,
    },
];

fn main() -> ExitCode {
    if let Ok(config) = std::env::var(fixture::CHILD_CONFIG_ENV) {
        exit_with_parent();
        return bridge_child(&config);
    }
    if let Ok(config) = std::env::var(gateway_cases::CHILD_CONFIG_ENV) {
        exit_with_parent();
        return gateway_cases::gateway_child(&config);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for c in CASES {
            println!("{}: test", c.name);
        }
        return ExitCode::SUCCESS;
    }
    // Like libtest: names are substring filters, `--skip NAME` leaves cases out, other flags
    // (--nocapture, --test-threads=1, ...) mean nothing here.
    let (mut filters, mut skips) = (Vec::new(), Vec::new());
    let mut words = args.iter();
    while let Some(a) = words.next() {
        if a == "--skip" {
            skips.extend(words.next());
        } else if !a.starts_with('-') {
            filters.push(a);
        }
    }
    let selected: Vec<&Case> = CASES
        .iter()
        .filter(|c| filters.is_empty() || filters.iter().any(|f| c.name.contains(f.as_str())))
        .filter(|c| !skips.iter().any(|s| c.name.contains(s.as_str())))
        .collect();
    if std::env::var_os(RUNNER_ENV).is_some() {
        exit_with_parent();
        return runner(&selected);
    }
    supervisor(&args, &selected)
}

/// Starts the private stack, runs the cases in a child process pointed at it, stops the stack.
fn supervisor(args: &[String], selected: &[&Case]) -> ExitCode {
    if selected.is_empty() {
        eprintln!("faults: no case matches {args:?}");
        return ExitCode::SUCCESS;
    }
    let stack = if selected.iter().any(|c| c.needs_stack) {
        eprintln!("faults: starting a private stack (deploy/local/up on free ports)");
        match e2e::PrivateStack::start() {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("faults: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let exe = std::env::current_exe().expect("current executable");
    let mut runner = std::process::Command::new(exe);
    runner.args(args).env(RUNNER_ENV, "1");
    match &stack {
        Some(s) => {
            runner.envs(s.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            eprintln!("faults: private stack in {}", s.state_dir().display());
        }
        // A FIG_STATE_DIR inherited from the shared stack's stack.env must never be a target.
        None => {
            runner.env_remove("FIG_STATE_DIR");
        }
    }
    let status = runner.status();
    drop(stack);
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("faults: the runner ended with {s}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("faults: cannot start the runner: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the selected cases one after another, each on a runtime of its own; a failing case is
/// reported and the next one runs.
fn runner(selected: &[&Case]) -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("faults: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stack = e2e::PrivateStack::attach();
    let mut rows = Vec::new();
    for case in selected {
        eprintln!("faults: {} ...", case.name);
        let started = std::time::Instant::now();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(run_case(case.name, &stack, &settings))
        }));
        let row = match outcome {
            Ok(row) => row,
            Err(panic) => {
                // A case that failed mid-fault may have left a service stopped or paused.
                if case.needs_stack
                    && let Err(e) = stack.heal()
                {
                    eprintln!("faults: could not restore the private stack: {e}");
                }
                CaseReport::failed(case.name, panic_text(&*panic))
            }
        };
        eprintln!(
            "faults: {} {} in {:?}",
            case.name,
            if row.passed { "passed" } else { "FAILED" },
            started.elapsed()
        );
        rows.push(row);
    }
    println!("\n{}", report::table(&rows));
    match report::write_json(&rows) {
        Ok(path) => println!("faults: report written to {}", path.display()),
        Err(e) => eprintln!("faults: cannot write faults.json: {e}"),
    }
    let failed = rows.iter().filter(|r| !r.passed).count();
    println!(
        "test result: {}. {} passed; {failed} failed",
        if failed == 0 { "ok" } else { "FAILED" },
        rows.len() - failed
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn run_case(name: &str, stack: &e2e::PrivateStack, settings: &Settings) -> CaseReport {
    match name {
        "bridge_sigkill" => bridge_cases::bridge_sigkill(settings).await,
        "kafka_restart" => bridge_cases::kafka_restart(stack, settings).await,
        "postgres_restart" => bridge_cases::postgres_restart(stack, settings).await,
        "registry_pause" => bridge_cases::registry_pause(stack, settings).await,
        "gateway_upstream" => gateway_cases::gateway_upstream(settings).await,
        "gateway_replica_kill" => gateway_cases::gateway_replica_kill(settings).await,
        other => panic!("unknown case {other}"),
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "panicked".to_string())
}

/// The bridge child process the bridge cases start and kill: the same entry point as the
/// `cdc-bridge` binary.
fn bridge_child(config: &str) -> ExitCode {
    let args = ["cdc-bridge", "--config", config, "run"].map(std::ffi::OsString::from);
    match cdc_bridge::cli::main_with_args(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "bridge child stopped: {}",
                cdc_bridge::session::error_chain(&e)
            );
            ExitCode::FAILURE
        }
    }
}

/// Ends this child process as soon as its parent is gone (killed supervisor, runner or test),
/// so that nothing keeps running against a private stack that is being removed. The parent's
/// death is seen as a new parent id; `prctl(PR_SET_PDEATHSIG)` would need `unsafe`.
fn exit_with_parent() {
    let parent = std::os::unix::process::parent_id();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(std::time::Duration::from_millis(500));
            if std::os::unix::process::parent_id() != parent {
                std::process::exit(3);
            }
        }
    });
}

/// A connection to `conn`, or `None` while PostgreSQL does not accept one.
pub async fn connect_quietly(conn: &str) -> Option<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(conn, tokio_postgres::NoTls)
        .await
        .ok()?;
    tokio::spawn(connection);
    Some(client)
}
