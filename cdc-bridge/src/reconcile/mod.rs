//! Reconciliation (`cdc-bridge reconcile`): proves nothing was lost, finds what diverged, and
//! repairs it.
//!
//! ```text
//! legacy ord_hdr ── one REPEATABLE READ snapshot (LSN + txid snapshot) ── cursor, key order ─┐
//! bridge progress topic ── last committed source LSN ─┐                                      ▼
//! order topic (read_committed) ── unframe ─ registry ─ decode ─ fold ─▶ HashMap<order, 16 B> ─ compare ─▶ Report
//! read model (optional SQL) ───────────────────────────────────────────▶ HashMap<order, status> ┘
//! ```
//!
//! - [`fold`]: events → latest status per order, leaving out what the snapshot cannot see
//!   (events of legacy transactions newer than it are in flight, not divergence).
//! - [`compare`]: per-order rules (matching, missing, extra, divergent, in flight, stuck).
//! - [`report`]: business sentences, a table for people, JSON for tools, the exit status.
//! - [`legacy`], [`events`], [`read_model`]: the I/O of each side.
//! - [`redrive`]: republish chosen orders' legacy state as reconciliation events.
//!
//! Memory is bounded by the number of orders, never by row or event size: rows stream in chunks
//! and are dropped once compared; each event is decoded, folded and dropped.

pub mod compare;
pub mod error;
pub mod events;
pub mod fold;
pub mod legacy;
pub mod options;
pub mod read_model;
pub mod redrive;
pub mod report;
pub mod status;

use std::time::{Duration, Instant};

pub use error::ReconcileError;
pub use options::{ReadModelSettings, ReconcileOptions, ReconcileSettings};
pub use redrive::{RedriveOutcome, redrive};
pub use report::{Finding, FindingKind, Report, Side};
pub use status::OrderStatus;

use crate::checkpoint::{format_lsn, read_checkpoint};
use crate::sink::producer::client_config;
use compare::{Comparison, Rules};
use fold::OrderFold;
use legacy::LegacySnapshot;
use report::when;

/// How often the legacy pass logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Compares legacy orders, at one snapshot, with the events in Kafka (and the read model when
/// configured). Divergence is in the report (see [`Report::exit_code`]), not an error.
pub async fn reconcile(opts: &ReconcileOptions) -> Result<Report, ReconcileError> {
    let started = Instant::now();
    let mut legacy = LegacySnapshot::open(&opts.legacy_conn).await?;
    let (view, now_micros) = (legacy.view.clone(), legacy.now_micros);
    let checkpoint = match &opts.progress {
        Some((topic, key)) => {
            let (client, topic, key) = (
                client_config(&opts.brokers, &opts.kafka_properties),
                topic.clone(),
                key.clone(),
            );
            tokio::task::spawn_blocking(move || read_checkpoint(&client, &topic, &key))
                .await
                .map_err(|_| ReconcileError::Interrupted {
                    what: "reading the bridge's progress topic",
                })??
        }
        None => None,
    };
    let mut fold = OrderFold::new(checkpoint.map(|c| c.commit_lsn));
    let read = events::fold_order_topic(opts, &view, &mut fold).await?;
    let mut read_model = match &opts.settings.read_model {
        Some(settings) => Some(read_model::load(settings).await?),
        None => None,
    };
    let read_model_rows = read_model.as_ref().map(|m| m.len() as u64);
    let settings = &opts.settings;
    let published_until = fold.published_until_micros();
    let rules = Rules {
        published_until_micros: published_until,
        in_flight_grace_micros: micros(settings.in_flight_grace),
        now_micros,
        stuck_after_micros: micros(settings.stuck_after),
        pending_codes: settings.pending_codes.clone(),
    };
    let mut comparison = Comparison::new(rules, settings.max_listed);
    for what in &read.unreadable {
        comparison.unreadable(what.clone());
    }
    let (mut logged, legacy_started) = (Instant::now(), Instant::now());
    let total = legacy.total_orders;
    loop {
        let chunk = legacy.next_orders(settings.chunk_rows).await?;
        if chunk.is_empty() {
            break;
        }
        for row in &chunk {
            let model = read_model.as_mut().map(|m| m.remove(&row.id));
            comparison.legacy_order(row, fold.take(row.id), model);
        }
        if logged.elapsed() >= PROGRESS_EVERY {
            logged = Instant::now();
            events::log_progress(
                "legacy orders",
                comparison.compared(),
                total,
                legacy_started,
            );
        }
    }
    events::log_progress(
        "legacy orders",
        comparison.compared(),
        total,
        legacy_started,
    );
    legacy.close().await?;
    let fold_counts = fold.counts();
    for (id, folded) in fold.into_remaining() {
        comparison.extra_in_events(id, folded);
    }
    if let Some(model) = read_model {
        let mut rest: Vec<(i64, OrderStatus)> = model.into_iter().collect();
        rest.sort_unstable_by_key(|(id, _)| *id);
        for (id, status) in rest {
            comparison.extra_in_read_model(id, status);
        }
    }
    let mut report = comparison.into_report();
    let counts = &mut report.counts;
    counts.event_messages = read.messages;
    counts.events_applied = fold_counts.applied;
    counts.events_after_snapshot = fold_counts.after_snapshot;
    counts.events_ignored = fold_counts.ignored;
    counts.unreadable = read.unreadable_count;
    counts.read_model_rows = read_model_rows;
    report.position = report::Position {
        snapshot_lsn: format_lsn(view.lsn),
        txid_snapshot: view.txid_snapshot(),
        taken_at: when(now_micros),
        bridge_checkpoint: checkpoint.map(|c| format_lsn(c.commit_lsn)),
        published_until: (published_until > 0).then(|| when(published_until)),
    };
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}
