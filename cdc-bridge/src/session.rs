//! One streaming session and the supervisor that restarts it.
//!
//! A session: take the slot (or wait as standby), start the transactional producer (fencing any
//! zombie of ours), read the checkpoint, then run two tasks joined by a bounded channel —
//! the reader (replication stream → [`WalEvent`]s, and acknowledgements back to PostgreSQL)
//! and the [`Publisher`] (events → Kafka transactions). Any error ends the session; the
//! supervisor restarts it from committed progress (transient), waits as standby (another
//! instance is active), or stops (definite).

use std::sync::Arc;
use std::time::{Duration, Instant};

use acl::Mapper;
use futures_util::FutureExt;
use rdkafka::ClientConfig;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::checkpoint::{self, Progress, format_lsn};
use crate::config::{Config, HEARTBEAT_PREFIX};
use crate::error::{Backoff, BridgeError, Recovery};
use crate::observability::Telemetry;
use crate::registry::SchemaRegistry;
use crate::sink::producer::TransactionalProducer;
use crate::sink::publisher::Publisher;
use crate::source::{WalEvent, WalSource};
use crate::{pg, preflight, snapshot};

/// Chunks buffered between reader and publisher; with [`CHUNK_EVENTS`] this bounds memory
/// (at most 4096 events in flight) whatever the transaction size.
const CHANNEL_CAPACITY: usize = 32;
/// Most events the reader hands over at once: what the connection already holds is decoded
/// and sent as one chunk, so the publisher wakes once per burst rather than once per event
/// (waking it per event cost more CPU in context switches than decoding did).
const CHUNK_EVENTS: usize = 128;
/// A session that ran this long resets the backoff.
const HEALTHY_SESSION: Duration = Duration::from_secs(30);

/// What every task of the bridge shares, read-only.
pub struct Shared {
    /// Configuration.
    pub config: Config,
    /// The ACL.
    pub mapper: Mapper,
    /// Schema registry client with its id cache.
    pub registry: SchemaRegistry,
    /// Metrics and readiness.
    pub telemetry: Telemetry,
    /// Kafka client settings.
    pub kafka: ClientConfig,
}

impl Shared {
    /// Builds the shared state from a validated configuration and a loaded mapping.
    pub fn new(config: Config, mapper: Mapper, telemetry: Telemetry) -> Shared {
        let registry = SchemaRegistry::new(&config.registry.url, &config.registry.compatibility);
        let kafka =
            crate::sink::producer::client_config(&config.kafka.brokers, &config.kafka.properties);
        Shared {
            config,
            mapper,
            registry,
            telemetry,
            kafka,
        }
    }
}

/// Runs sessions until `shutdown` fires or a definite error occurs.
pub async fn supervise(
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), BridgeError> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
    let mut prepared = false;
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let started = Instant::now();
        let outcome = async {
            if !prepared {
                preflight::prepare(&shared).await?;
                prepared = true;
            }
            wait_for_slot(&shared, &mut shutdown).await?;
            session(&shared, &mut shutdown).await
        }
        .await;
        shared.telemetry.set_streaming(false);
        let error = match outcome {
            Ok(()) | Err(BridgeError::Shutdown) => return Ok(()),
            Err(e) => e,
        };
        if started.elapsed() > HEALTHY_SESSION {
            backoff.reset();
        }
        match error.recovery() {
            Recovery::Stop => return Err(error),
            Recovery::Standby => {
                tracing::info!(reason = %error, "another instance is active; waiting as standby");
            }
            Recovery::Retry => {
                shared.telemetry.session_restarted();
                let delay = backoff.next_delay();
                tracing::warn!(error = %error_chain(&error), retry_in = ?delay, "session failed; restarting from committed progress");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
            }
        }
    }
}

/// Waits while another walsender holds the slot (this instance is the standby).
async fn wait_for_slot(
    shared: &Shared,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), BridgeError> {
    let mut logged = false;
    loop {
        let holder =
            pg::slot_holder(&shared.config.postgres.conn, &shared.config.postgres.slot).await?;
        let Some(pid) = holder else { return Ok(()) };
        if !logged {
            tracing::info!(slot = %shared.config.postgres.slot, holder_pid = pid, "slot held by another instance; standing by");
            logged = true;
        }
        tokio::select! {
            _ = tokio::time::sleep(shared.config.postgres.standby_poll) => {}
            _ = shutdown.changed() => return Err(BridgeError::Shutdown),
        }
    }
}

/// Aborts the wrapped task when dropped, so a session's helpers die with it.
struct Helper(JoinHandle<()>);

impl Drop for Helper {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn session(
    shared: &Arc<Shared>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), BridgeError> {
    let cfg = &shared.config;
    let producer = TransactionalProducer::start(
        &shared.kafka,
        &cfg.kafka.transactional_id,
        cfg.kafka.transaction_timeout,
    )
    .await?;
    let progress = read_progress(shared).await?;
    let slot_exists = pg::slot_exists(&cfg.postgres.conn, &cfg.postgres.slot).await?;
    // No checkpoint means nothing was ever committed from this slot: a snapshot that died
    // half-way left only an aborted Kafka transaction, so start it over with a fresh slot.
    let want_snapshot = cfg.snapshot.initial && (!slot_exists || progress.is_none());
    if want_snapshot && slot_exists {
        tracing::warn!(slot = %cfg.postgres.slot, "no committed snapshot for this slot; dropping it to snapshot again");
        pg::drop_slot(&cfg.postgres.conn, &cfg.postgres.slot).await?;
    }
    // Creating a logical slot waits for every transaction running in the cluster to end; say
    // which ones, so a forgotten "idle in transaction" session is found quickly.
    let blockers = (!slot_exists || want_snapshot).then(|| {
        Helper(tokio::spawn(pg::report_slot_creation_blockers(
            cfg.postgres.conn.clone(),
        )))
    });
    let (mut source, opening) = WalSource::connect(
        &cfg.replication_conn(),
        &cfg.postgres.slot,
        &cfg.postgres.publication,
        cfg.postgres.status_interval,
        want_snapshot,
    )
    .await?;
    drop(blockers);
    let progress = progress.unwrap_or_default();
    let checkpoint = progress.checkpoint;

    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let (ack_tx, ack_rx) = watch::channel(0u64);
    let publisher = Publisher::new(Arc::clone(shared), producer, progress);
    let mut publishing = tokio::spawn(publisher.run(rx, ack_tx));

    if want_snapshot {
        let Some(name) = opening.exported_snapshot.as_deref() else {
            return Err(BridgeError::definite(
                "the slot was created without an exported snapshot",
                "drop the slot and start again",
            ));
        };
        let consistent = pg::confirmed_flush(&cfg.postgres.conn, &cfg.postgres.slot).await?;
        if let Err(e) = snapshot::run_initial(shared, name, consistent, &tx).await {
            drop(tx);
            return Err(joined(publishing.await).err().unwrap_or(e));
        }
    }
    source.start(None).await?;
    tracing::info!(slot = %cfg.postgres.slot, checkpoint = %format_lsn(checkpoint.commit_lsn), "streaming");
    shared.telemetry.set_streaming(true);

    let _monitor = Helper(tokio::spawn(pg::monitor_slot(Arc::clone(shared))));
    let _heartbeat = cfg
        .postgres
        .heartbeat_interval
        .map(|every| Helper(tokio::spawn(pg::heartbeat(Arc::clone(shared), every))));

    let committed = ack_rx.clone();
    let mut reading = Box::pin(read(
        &mut source,
        tx,
        ack_rx,
        cfg.postgres.status_interval,
        shutdown,
    ));
    let first = tokio::select! {
        r = &mut reading => Ended::Reader(r),
        r = &mut publishing => Ended::Publisher(joined(r)),
    };
    // Dropping the reader closes the publisher's input: it commits the legacy transactions it
    // holds complete, or aborts a partial one.
    drop(reading);
    match first {
        Ended::Publisher(Ok(())) => Err(publisher_gone()),
        Ended::Publisher(Err(e)) => Err(e),
        Ended::Reader(r) => {
            let published = joined(publishing.await);
            if matches!(r, Err(BridgeError::Shutdown)) && published.is_ok() {
                let last = *committed.borrow();
                acknowledge_on_stop(&mut source, last).await;
            }
            match (r, published) {
                (Err(BridgeError::Unavailable(_)), Err(publisher_error)) => Err(publisher_error),
                (r, Err(publisher_error)) => {
                    tracing::warn!(error = %error_chain(&publisher_error), "publisher stopped with an error");
                    r
                }
                (r, Ok(())) => r,
            }
        }
    }
}

/// On a clean stop the publisher has committed everything complete: acknowledge it now rather
/// than at the next status tick that will never come, so the next start does not make
/// PostgreSQL decode and resend transactions Kafka already has (they would only be skipped).
async fn acknowledge_on_stop(source: &mut WalSource, committed: u64) {
    if let Err(e) = source.acknowledge(committed).await {
        tracing::warn!(error = %error_chain(&e), "acknowledging on stop failed; the next start re-reads and skips what Kafka already has");
    }
}

enum Ended {
    Reader(Result<(), BridgeError>),
    Publisher(Result<(), BridgeError>),
}

fn joined(r: Result<Result<(), BridgeError>, tokio::task::JoinError>) -> Result<(), BridgeError> {
    r.unwrap_or_else(|join| {
        Err(BridgeError::definite(
            format!("publisher task failed: {join}"),
            "report a bug with the log",
        ))
    })
}

fn publisher_gone() -> BridgeError {
    BridgeError::Unavailable("the publisher stopped".into())
}

async fn read_progress(shared: &Shared) -> Result<Option<Progress>, BridgeError> {
    let client = shared.kafka.clone();
    let topic = shared.config.kafka.progress_topic.clone();
    let key = shared.config.postgres.slot.clone();
    let cp = tokio::task::spawn_blocking(move || checkpoint::read_progress(&client, &topic, &key))
        .await
        .map_err(|_| BridgeError::Shutdown)??;
    Ok(cp)
}

/// The reader: hands events to the publisher and, every `status_interval`, acknowledges what the
/// publisher reports committed — or, while nothing is in flight, the stream's position, so idle
/// slots do not pile up WAL.
async fn read(
    source: &mut WalSource,
    tx: mpsc::Sender<Vec<WalEvent>>,
    mut acked: watch::Receiver<u64>,
    status_interval: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), BridgeError> {
    let mut handed_over = 0u64;
    let mut tick = tokio::time::interval(status_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => return Err(BridgeError::Shutdown),
            _ = tick.tick() => {
                if acked.has_changed().is_err() {
                    return Err(publisher_gone());
                }
                let committed = *acked.borrow_and_update();
                // Idle (nothing handed over is uncommitted, no transaction open): everything the
                // server sent so far is either in Kafka or not ours, so its position may go too.
                let idle = !source.in_transaction() && committed >= handed_over;
                source.acknowledge(if idle { source.received_lsn().max(committed) } else { committed }).await?;
            }
            event = source.next() => {
                let mut chunk = Vec::with_capacity(CHUNK_EVENTS);
                let mut next = Some(event);
                // Take what is ready now (`next` is cancel-safe), without waiting for more.
                while let Some(event) = next.take() {
                    let event = event?;
                    match &event {
                        WalEvent::Commit { end_lsn, .. } => handed_over = *end_lsn,
                        WalEvent::Message { prefix, .. } if prefix == HEARTBEAT_PREFIX => {}
                        WalEvent::Message { transactional: false, position, .. } => {
                            handed_over = position.commit_lsn;
                        }
                        _ => {}
                    }
                    if !matches!(&event, WalEvent::Message { prefix, .. } if prefix == HEARTBEAT_PREFIX) {
                        chunk.push(event);
                    }
                    if chunk.len() < CHUNK_EVENTS {
                        next = source.next().now_or_never();
                    }
                }
                if !chunk.is_empty() {
                    hand_over(chunk, &tx, source, &mut acked, &mut tick, shutdown).await?;
                }
            }
        }
    }
}

/// Hands a chunk to the publisher. While it has no room (Kafka slow or away), answers PostgreSQL
/// on every tick with what is committed, so the server does not end the replication connection
/// for silence (`wal_sender_timeout`) while the bridge waits; nothing new is acknowledged.
async fn hand_over(
    chunk: Vec<WalEvent>,
    tx: &mpsc::Sender<Vec<WalEvent>>,
    source: &mut WalSource,
    acked: &mut watch::Receiver<u64>,
    tick: &mut tokio::time::Interval,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), BridgeError> {
    let mut chunk = Some(chunk);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => return Err(BridgeError::Shutdown),
            permit = tx.reserve() => {
                let permit = permit.map_err(|_| publisher_gone())?;
                if let Some(chunk) = chunk.take() {
                    permit.send(chunk);
                }
                return Ok(());
            }
            _ = tick.tick() => {
                if acked.has_changed().is_err() {
                    return Err(publisher_gone());
                }
                let committed = *acked.borrow_and_update();
                source.keep_alive(committed).await?;
            }
        }
    }
}

/// The full cause chain of an error, for one log field.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
