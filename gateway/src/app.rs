//! Wiring: [`serve`] runs the public proxy and the admin API on injected listeners until the
//! injected shutdown future completes, then drains in-flight requests up to the deadline.

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::{self, AdminState, auth::Tokens};
use crate::config::{Config, TOKENS_ENV};
use crate::control::{Actor, ChangeError, ControlPlane};
use crate::error::GatewayError;
use crate::observability::Metrics;
use crate::proxy::guard::{Guards, SloBreach};
use crate::proxy::upstream::Upstreams;
use crate::proxy::{ClientConnection, Proxy, h1};
use crate::route::RouteTable;
use crate::store::Store;
use crate::toggle::ToggleState;

/// How long a client may take to send a request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the gateway until `shutdown` completes: stops accepting, lets in-flight requests finish
/// within `drain_timeout`, then returns.
pub async fn serve(
    config: Config,
    public: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), GatewayError> {
    let problems = config.validate();
    if !problems.is_empty() {
        return Err(GatewayError::Config(problems));
    }
    let table = Arc::new(RouteTable::build(&config).map_err(GatewayError::Config)?);
    let tokens = Arc::new(load_tokens(&config)?);
    if tokens.is_empty() {
        tracing::warn!("no admin tokens configured: every admin API call will be refused");
    }
    let metrics = Arc::new(Metrics::new(&table));
    let resilience: Vec<_> = config
        .capabilities
        .iter()
        .map(|c| (c.resilience.clone(), c.shadow.clone()))
        .collect();
    let (breaches_tx, breaches) = tokio::sync::mpsc::channel(SLO_BREACH_QUEUE);
    let guards = Arc::new(Guards::new(&table, &resilience).with_breaches(breaches_tx));
    let store = Store::open(&config.store).await?;
    let stored = store.load().await?;
    let changes = match &store {
        Store::Postgres(p) => Some(p.subscribe()),
        Store::File(_) => None,
    };
    let control = Arc::new(ControlPlane::new(table, &stored, store, metrics.clone()));
    let roll_backer = tokio::spawn(roll_back_on_breach(
        control.clone(),
        metrics.clone(),
        breaches,
    ));
    let watcher = changes.map(|mut rx| {
        let control = control.clone();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                if let Err(e) = control.reload().await {
                    tracing::warn!(error = %e, "could not reload toggles from the store; keeping the current table");
                }
            }
        })
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let admin_app = admin::app(AdminState {
        control: control.clone(),
        tokens,
        metrics: metrics.clone(),
    })
    .layer(axum::Extension(guards.clone()))
    .layer(axum::Extension(config.console.clone()));
    let admin_addr = admin.local_addr().ok();
    let admin_task = tokio::spawn(
        axum::serve(
            admin,
            admin_app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(h1::server::stopping(stop_rx))
        .into_future(),
    );
    let proxy = ProxySettings {
        live: control.live(),
        metrics,
        guards: guards.clone(),
        expose_side_header: config.expose_side_header,
        max_header_bytes: config.max_header_bytes,
    };
    tracing::info!(public = ?public.local_addr().ok(), admin = ?admin_addr, "gateway serving");
    let served = run_public(
        public,
        proxy,
        shutdown,
        config.drain_timeout,
        config.workers,
    )
    .await;
    let _ = stop_tx.send(true);
    roll_backer.abort();
    if let Some(w) = watcher {
        w.abort();
    }
    served?;
    match admin_task.await {
        Ok(Ok(())) | Err(_) => Ok(()),
        Ok(Err(e)) => Err(GatewayError::Admin(e)),
    }
}

/// Admin tokens from `[admin] tokens_file` and the `FIG_GATEWAY_TOKENS` environment variable.
fn load_tokens(config: &Config) -> Result<Tokens, GatewayError> {
    let mut tokens = Tokens::default();
    if let Some(path) = &config.admin.tokens_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| GatewayError::Tokens(format!("cannot read {}: {e}", path.display())))?;
        tokens.extend(
            Tokens::parse(&text, &path.display().to_string()).map_err(GatewayError::Tokens)?,
        );
    }
    if let Ok(text) = std::env::var(TOKENS_ENV) {
        tokens.extend(Tokens::parse(&text, TOKENS_ENV).map_err(GatewayError::Tokens)?);
    }
    Ok(tokens)
}

/// SLO breaches waiting for the rollback task; more are dropped (a rollback is pending).
const SLO_BREACH_QUEUE: usize = 16;
/// The actor named in the audit log for automatic rollbacks.
pub const SLO_GUARD_ACTOR: &str = "system:slo-guard";

/// Rolls a capability back when its SLO guard reports a breach: to its previous state, or to
/// legacy when it has none; audited as a system action with the figures, counted, and logged
/// at error level. A capability no longer on new (already rolled back) is left alone.
async fn roll_back_on_breach(
    control: Arc<ControlPlane>,
    metrics: Arc<Metrics>,
    mut breaches: tokio::sync::mpsc::Receiver<SloBreach>,
) {
    let actor = Actor {
        name: SLO_GUARD_ACTOR.to_string(),
        role: "system".to_string(),
        remote: None,
    };
    while let Some(SloBreach { capability, breach }) = breaches.recv().await {
        let live = control.live().load_full();
        let name = live.table.capabilities[capability].name.to_string();
        let state = live.toggles.state(capability);
        if !matches!(state, ToggleState::New | ToggleState::Percent { .. }) {
            continue;
        }
        let figures = serde_json::to_string(&breach.figures).unwrap_or_default();
        tracing::error!(capability = %name, breach = %breach, figures = %figures, "SLO guard breach: rolling the capability back");
        let reason = format!("automatic rollback: {breach}; figures {figures}");
        let done = match control.rollback(&actor, &name, &reason).await {
            Err(ChangeError::NothingToRollBack(_)) => {
                control
                    .set(&actor, &name, ToggleState::Legacy, &reason)
                    .await
            }
            other => other,
        };
        match done {
            Ok(_) => metrics.count_auto_rollback(capability),
            Err(e) => {
                tracing::error!(capability = %name, error = %e, "automatic rollback failed")
            }
        }
    }
}

/// What each public worker builds its [`Proxy`] from.
struct ProxySettings {
    live: Arc<arc_swap::ArcSwap<crate::control::Live>>,
    metrics: Arc<Metrics>,
    guards: Arc<Guards>,
    expose_side_header: bool,
    max_header_bytes: usize,
}

impl ProxySettings {
    /// A proxy with its own upstream pools (created on the runtime that will use them).
    fn proxy(&self) -> Arc<Proxy> {
        Arc::new(Proxy {
            live: self.live.clone(),
            upstreams: Upstreams::new(self.guards.connect_timeouts()),
            guards: self.guards.clone(),
            metrics: self.metrics.clone(),
            expose_side_header: self.expose_side_header,
            max_header_bytes: self.max_header_bytes,
        })
    }
}

/// Serves the public listener until `shutdown`: on this runtime when `workers` is 0, else on
/// `workers` threads, each with a single-threaded runtime accepting from the same socket, so a
/// request and its upstream call never hop between threads.
async fn run_public(
    listener: TcpListener,
    settings: ProxySettings,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
    workers: usize,
) -> Result<(), GatewayError> {
    if workers == 0 {
        accept_loop(listener, settings.proxy(), shutdown, drain).await;
        return Ok(());
    }
    let listener = listener.into_std().map_err(GatewayError::Listener)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
    let settings = Arc::new(settings);
    for i in 0..workers {
        let listener = listener.try_clone().map_err(GatewayError::Listener)?;
        let (settings, stop_rx, done_tx) = (settings.clone(), stop_rx.clone(), done_tx.clone());
        std::thread::Builder::new()
            .name(format!("fig-gw-worker-{i}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => return tracing::error!(error = %e, "cannot start a worker runtime"),
                };
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(l) => {
                            accept_loop(l, settings.proxy(), h1::server::stopping(stop_rx), drain)
                                .await
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "worker cannot use the public listener")
                        }
                    }
                });
                drop(done_tx);
            })
            .map_err(GatewayError::Listener)?;
    }
    drop(done_tx);
    shutdown.await;
    let _ = stop_tx.send(true);
    // Every worker drops its sender when drained; `recv` then returns `None`.
    while done_rx.recv().await.is_some() {}
    Ok(())
}

/// Accepts on the public listener until `shutdown`, then drains: connections finish the request
/// under way and close, up to the `drain` deadline.
async fn accept_loop(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let general = Arc::new(builder);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (drain_tx, mut drained) = tokio::sync::mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let conn = h1::server::Connection {
                    proxy: proxy.clone(),
                    client: Arc::new(ClientConnection::new(peer)),
                    general: general.clone(),
                    stop: stop_rx.clone(),
                    head_timeout: HEADER_READ_TIMEOUT,
                };
                tokio::spawn(conn.serve(stream, drain_tx.clone()));
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    drop(drain_tx);
    let _ = stop_tx.send(true);
    tracing::info!(deadline = ?drain, "shutting down: draining in-flight requests");
    tokio::select! {
        // Every connection task holds a sender; `recv` returns `None` once all have ended.
        _ = drained.recv() => tracing::info!("drained"),
        () = tokio::time::sleep(drain) => tracing::warn!("drain deadline passed; closing remaining connections"),
    }
}
