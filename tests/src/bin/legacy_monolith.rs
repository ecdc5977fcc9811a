//! `legacy_monolith`: the demo world's order-to-cash monolith (see `e2e::demo::legacy`).

use anyhow::Context;
use clap::Parser;
use e2e::demo::{legacy, pg_pool::PgPool, shutdown_signal};

/// The legacy order-to-cash monolith of the fig demo.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "FIG_DEMO_LEGACY_LISTEN", default_value = "127.0.0.1:8000")]
    listen: std::net::SocketAddr,
    /// Its database (libpq-style), loaded with deploy/legacy/schema.sql.
    #[arg(long, env = "FIG_DEMO_LEGACY_DB")]
    database: String,
    /// Database connections to keep.
    #[arg(long, default_value_t = legacy::DEFAULT_POOL_SIZE)]
    pool_size: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    e2e::demo::init_tracing();
    let args = Args::parse();
    let db = PgPool::connect(&args.database, args.pool_size)
        .await
        .context("connecting to the legacy database")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(listen = %args.listen, "legacy monolith serving");
    legacy::serve(db, listener, shutdown_signal())
        .await
        .context("serving")
}
