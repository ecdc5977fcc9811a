//! The command line: `run` (stream, with metrics and health), `check` (pre-flight, one line per
//! failure), `snapshot` (re-copy one table on demand), `status` (slot lag, committed LSN and
//! each table's newest committed change), `reconcile` (legacy tables against the events in
//! Kafka, with optional re-drive).

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tokio::sync::watch;

use crate::checkpoint::{self, format_lsn};
use crate::config::{Config, ConfigError};
use crate::error::BridgeError;
use crate::observability::Telemetry;
use crate::session::{self, Shared, error_chain};
use crate::{http, pg, preflight, reconcile, snapshot};

/// Streams the legacy database's committed transactions into Kafka as Avro domain events.
#[derive(Debug, Parser)]
#[command(name = "cdc-bridge", version)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(
        long,
        short,
        global = true,
        env = "FIG_BRIDGE_CONFIG",
        default_value = "cdc-bridge.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Stream (or wait as standby while another instance holds the slot).
    Run,
    /// Pre-flight checks; each failure is one line saying what to run.
    Check,
    /// Re-copy one mapped table into Kafka (events marked as snapshot), for repairs and new
    /// consumers. Runs beside a streaming bridge.
    Snapshot {
        /// The table, `schema.table` or `table`.
        #[arg(long)]
        table: String,
    },
    /// Slot lag, WAL status, the last LSN committed to Kafka, and per legacy table the newest
    /// change committed to Kafka with its age.
    Status,
    /// Compare legacy orders (one consistent snapshot) with the state folded from the events in
    /// Kafka; exit status 1 when anything diverges.
    Reconcile {
        /// Reconciliation settings (TOML); built-in defaults when absent.
        #[arg(long, env = "FIG_RECONCILE_SETTINGS")]
        settings: Option<PathBuf>,
        /// Print the report as JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Republish the current legacy state of these orders (comma-separated ids) as
        /// reconciliation events, instead of comparing.
        #[arg(long, value_delimiter = ',')]
        redrive: Vec<i64>,
        /// Compare, then republish every order found divergent or missing.
        #[arg(long, conflicts_with = "redrive")]
        redrive_divergent: bool,
    },
}

/// Why the command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad configuration.
    #[error("configuration")]
    Config(#[from] ConfigError),
    /// The mapping file is invalid.
    #[error("ACL mapping {path}: {message}")]
    Mapping {
        /// Its path.
        path: PathBuf,
        /// The ACL's message (names the key path).
        message: String,
    },
    /// The bridge stopped.
    #[error(transparent)]
    Bridge(#[from] BridgeError),
    /// `check` found problems.
    #[error("{0} pre-flight check(s) failed")]
    ChecksFailed(usize),
    /// Reconciliation could not run.
    #[error("reconciliation")]
    Reconcile(#[from] crate::reconcile::ReconcileError),
    /// Reconciliation found differences.
    #[error(
        "legacy and events disagree (see the report); repair with `cdc-bridge reconcile --redrive-divergent`"
    )]
    Diverged,
    /// Usage or I/O.
    #[error("{0}")]
    Other(String),
}

/// Parses `args` and runs the command on a new runtime.
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> Result<(), CliError> {
    let cli = Cli::try_parse_from(args).map_err(|e| match e.kind() {
        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
            print!("{e}");
            std::process::exit(0)
        }
        _ => CliError::Other(e.to_string()),
    })?;
    init_tracing();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Other(format!("starting the runtime: {e}")))?;
    runtime.block_on(dispatch(cli))
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,pg_walstream=warn,rdkafka=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if std::env::var("FIG_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

async fn dispatch(cli: Cli) -> Result<(), CliError> {
    let config = Config::load(&cli.config)?;
    let mapper = acl::Mapper::load(&config.mapping.path).map_err(|e| CliError::Mapping {
        path: config.mapping.path.clone(),
        message: error_chain(&e),
    })?;
    let shared = Arc::new(Shared::new(config, mapper, Telemetry::new()));
    match cli.command {
        Command::Run => run(shared).await,
        Command::Check => check(&shared).await,
        Command::Status => status(&shared).await,
        Command::Snapshot { table } => Ok(snapshot::run_on_demand(&shared, &table).await?),
        Command::Reconcile {
            settings,
            json,
            redrive,
            redrive_divergent,
        } => {
            let settings = match settings {
                Some(path) => reconcile::ReconcileSettings::load(&path)?,
                None => reconcile::ReconcileSettings::default(),
            };
            let opts = reconcile::ReconcileOptions::from_bridge(&shared.config, settings);
            reconcile_command(&opts, json, &redrive, redrive_divergent).await
        }
    }
}

async fn reconcile_command(
    opts: &reconcile::ReconcileOptions,
    json: bool,
    redrive: &[i64],
    redrive_divergent: bool,
) -> Result<(), CliError> {
    if !redrive.is_empty() {
        return print_redrive(&reconcile::redrive(opts, redrive).await?, json);
    }
    let report = reconcile::reconcile(opts).await?;
    if json {
        println!("{}", report.to_json());
    } else {
        println!("{}", report.to_table());
    }
    if redrive_divergent {
        let orders = report.orders_to_redrive();
        if !orders.is_empty() {
            print_redrive(&reconcile::redrive(opts, &orders).await?, json)?;
        }
    }
    if report.exit_code() == 0 {
        Ok(())
    } else {
        Err(CliError::Diverged)
    }
}

fn print_redrive(outcome: &reconcile::RedriveOutcome, json: bool) -> Result<(), CliError> {
    if json {
        let text =
            serde_json::to_string_pretty(outcome).map_err(|e| CliError::Other(e.to_string()))?;
        println!("{text}");
    } else {
        println!(
            "re-drove {} order(s) as {} reconciliation event(s) at legacy snapshot {}; not in legacy: {:?}",
            outcome.republished.len(),
            outcome.events,
            outcome.snapshot_lsn,
            outcome.not_in_legacy
        );
    }
    Ok(())
}

async fn run(shared: Arc<Shared>) -> Result<(), CliError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let listener = tokio::net::TcpListener::bind(&shared.config.http.listen)
        .await
        .map_err(|e| CliError::Other(format!("http.listen {}: {e}", shared.config.http.listen)))?;
    tracing::info!(listen = %shared.config.http.listen, "serving /metrics and /health");
    let mut http_stop = stop_rx.clone();
    let server = tokio::spawn(http::serve(
        listener,
        shared.telemetry.clone(),
        async move {
            let _ = http_stop.wait_for(|s| *s).await;
        },
    ));
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stopping: committing what is complete, aborting the rest");
        let _ = stop_tx.send(true);
    });
    let result = session::supervise(shared, stop_rx).await;
    server.abort();
    if let Err(e) = &result {
        tracing::error!(error = %error_chain(e), "bridge stopped");
    }
    Ok(result?)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

async fn check(shared: &Shared) -> Result<(), CliError> {
    let findings = preflight::check(shared).await;
    for f in &findings {
        println!("{f}");
    }
    if findings.is_empty() {
        println!("ok: PostgreSQL, Kafka and the registry are ready for the bridge");
        Ok(())
    } else {
        Err(CliError::ChecksFailed(findings.len()))
    }
}

async fn status(shared: &Shared) -> Result<(), CliError> {
    let cfg = &shared.config;
    let client = pg::connect(&cfg.postgres.conn).await?;
    match pg::slot_status(&client, &cfg.postgres.slot).await? {
        None => println!("slot {}: missing", cfg.postgres.slot),
        Some(s) => println!(
            "slot {}: confirmed_flush {} lag {} bytes, retained {} bytes, wal_status {}, {}",
            cfg.postgres.slot,
            s.confirmed_flush,
            s.lag_bytes,
            s.retained_bytes,
            s.wal_status,
            s.active_pid.map_or("inactive".to_string(), |p| format!(
                "streaming (walsender pid {p})"
            )),
        ),
    }
    let kafka = shared.kafka.clone();
    let (topic, key) = (cfg.kafka.progress_topic.clone(), cfg.postgres.slot.clone());
    let progress =
        tokio::task::spawn_blocking(move || checkpoint::read_progress(&kafka, &topic, &key))
            .await
            .map_err(|e| CliError::Other(e.to_string()))??;
    match progress {
        None => println!(
            "kafka: nothing committed yet for slot {}",
            cfg.postgres.slot
        ),
        Some(p) => {
            println!(
                "kafka: last committed legacy transaction at {} (resume after {})",
                format_lsn(p.checkpoint.commit_lsn),
                format_lsn(p.checkpoint.end_lsn)
            );
            for line in table_lag_lines(&p.tables, snapshot::now_micros()) {
                println!("{line}");
            }
        }
    }
    Ok(())
}

/// One line per legacy table: the newest change Kafka has committed, its legacy commit LSN and
/// time, and how long ago that commit was. For a table that keeps changing this age is its lag;
/// for a quiet table it is the time since its last change (the slot lag above says whether
/// anything is still unread).
fn table_lag_lines(tables: &[checkpoint::TableProgress], now_micros: i64) -> Vec<String> {
    tables
        .iter()
        .map(|t| {
            let at = chrono::DateTime::from_timestamp_micros(t.commit_ts_micros).map_or_else(
                || "an unknown time".to_string(),
                |d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            );
            let age = (now_micros.saturating_sub(t.commit_ts_micros)).max(0) as f64 / 1e6;
            format!(
                "table {}: newest change in Kafka is from legacy commit {} at {at}, {age:.1} s ago",
                t.table,
                format_lsn(t.commit_lsn)
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each table's line names the table, its newest committed LSN and time, and the age.
    #[test]
    fn status_reports_each_tables_newest_commit_and_age() {
        let tables = vec![
            checkpoint::TableProgress {
                table: "public.ord_hdr".into(),
                commit_lsn: 0x1_0000_0010,
                commit_ts_micros: 1_764_786_000_000_000,
            },
            checkpoint::TableProgress {
                table: "public.ord_ln".into(),
                commit_lsn: 0x20,
                commit_ts_micros: 1_764_785_990_500_000,
            },
        ];
        let lines = table_lag_lines(&tables, 1_764_786_002_500_000);
        assert_eq!(
            lines,
            vec![
                "table public.ord_hdr: newest change in Kafka is from legacy commit 1/10 at 2025-12-03T18:20:00.000Z, 2.5 s ago",
                "table public.ord_ln: newest change in Kafka is from legacy commit 0/20 at 2025-12-03T18:19:50.500Z, 12.0 s ago",
            ]
        );
    }
}
