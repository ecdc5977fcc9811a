//! `gateway` command line: `run --config FILE` and `check-config FILE`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "gateway",
    about = "fig edge gateway: capability routing with runtime toggles"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the public listener and the admin API.
    Run {
        /// Configuration file (TOML).
        #[arg(long, env = "FIG_GATEWAY_CONFIG")]
        config: PathBuf,
    },
    /// Validate a configuration file; prints every problem with its key path.
    CheckConfig {
        /// Configuration file (TOML).
        file: PathBuf,
    },
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => Ok(check_config(&file)),
        Command::Run { config } => run(&config),
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    let problems = match gateway::Config::load(file) {
        Ok(config) => config.validate(),
        Err(problems) => problems,
    };
    if problems.is_empty() {
        println!("{}: ok", file.display());
        return ExitCode::SUCCESS;
    }
    for p in &problems {
        println!("{}: {p}", file.display());
    }
    ExitCode::FAILURE
}

fn run(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    init_tracing();
    let config = gateway::Config::load(path).map_err(gateway::GatewayError::Config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let public = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| gateway::GatewayError::Bind {
                addr: config.listen,
                source,
            })?;
        let admin = tokio::net::TcpListener::bind(config.admin.listen)
            .await
            .map_err(|source| gateway::GatewayError::Bind {
                addr: config.admin.listen,
                source,
            })?;
        gateway::serve(config, public, admin, shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Logs to stderr; `RUST_LOG` filters (default `info`), `FIG_LOG_FORMAT=json` for JSON lines.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("FIG_LOG_FORMAT").is_ok_and(|v| v == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
