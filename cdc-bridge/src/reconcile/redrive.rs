//! Re-drive: republish the current legacy state of chosen orders as domain events marked
//! [`Origin::Reconciliation`], through the same contracts, wire format, registry subjects,
//! headers and transactional producer as the bridge, so consumers repair themselves.
//!
//! Each order becomes `OrderSubmitted` (its header data) followed by the event announcing its
//! current status, which folds to the legacy state. Ids are deterministic per legacy row version:
//! the event id is derived from (xid that last wrote the row, event type, order), so re-driving
//! an unchanged row twice yields the same ids and consumers deduplicate; the envelope's source
//! carries the snapshot's LSN, so consumers that order by position treat it as current.

use std::str::FromStr;
use std::time::Duration;

use contracts::events::{
    OrderAccepted, OrderCancelled, OrderConfirmed, OrderException, OrderPaymentPending,
    OrderSecured, OrderSubmitted,
};
use contracts::{
    DomainEvent, Envelope, Money, Origin, Payload, SourcePosition, TimestampMicros, event_id,
};
use rust_decimal::Decimal;

use super::error::ReconcileError;
use super::legacy::LegacySnapshot;
use super::options::{ORDER_AGGREGATE, ReconcileOptions};
use super::status::OrderStatus;
use crate::checkpoint::format_lsn;
use crate::registry::SchemaRegistry;
use crate::sink::producer::{TransactionalProducer, client_config};
use crate::sink::record::event_record;

/// Orders per Kafka transaction.
const ORDERS_PER_TRANSACTION: usize = 5_000;
/// Kafka transaction timeout of a re-drive.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(300);

/// The legacy header of one order, as a re-drive needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderHeader {
    /// `ord_no`.
    pub id: i64,
    /// `cust_no`.
    pub customer_id: String,
    /// `cust_nm`.
    pub customer_name: String,
    /// `cust_email`.
    pub customer_email: Option<String>,
    /// `chnl_cd`.
    pub channel_code: String,
    /// `ord_tot_amt` as text.
    pub total: String,
    /// `curr_cd`.
    pub currency: String,
    /// `ship_ctry_cd`.
    pub ship_country: String,
    /// `ord_stat_cd`.
    pub status_code: String,
    /// `excp_rsn_txt`.
    pub reason: Option<String>,
    /// `crt_ts`, µs.
    pub created_micros: i64,
    /// `upd_ts`, µs.
    pub changed_micros: i64,
    /// `xmin`: the legacy transaction that last wrote the row.
    pub xmin: u32,
}

/// What a re-drive did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RedriveOutcome {
    /// The legacy snapshot the state was read at, `X/Y`.
    pub snapshot_lsn: String,
    /// Orders republished.
    pub republished: Vec<i64>,
    /// Orders asked for that legacy does not have (nothing to publish).
    pub not_in_legacy: Vec<i64>,
    /// Events published.
    pub events: u64,
}

/// The events that carry an order's current legacy state (pure).
pub fn order_events(
    header: &OrderHeader,
    snapshot_lsn: u64,
) -> Result<Vec<DomainEvent>, ReconcileError> {
    let bad = |problem: String| ReconcileError::Redrive {
        order: header.id,
        problem,
    };
    let status = OrderStatus::from_legacy_code(&header.status_code)
        .ok_or_else(|| bad("ord_stat_cd is not one of the codes N A P S C X E".into()))?;
    let amount = Decimal::from_str(header.total.trim())
        .map_err(|_| bad("ord_tot_amt is not a decimal number".into()))?;
    let total = Money::new(amount, &header.currency)
        .map_err(|e| bad(format!("ord_tot_amt / curr_cd: {e}")))?;
    let order_id = header.id.to_string();
    let at = TimestampMicros(header.changed_micros);
    let mut payloads: Vec<Payload> = vec![
        OrderSubmitted {
            order_id: order_id.clone(),
            customer_id: header.customer_id.trim_end().to_string(),
            customer_name: header.customer_name.clone(),
            customer_email: header.customer_email.clone(),
            channel: channel(&header.channel_code).to_string(),
            total: total.clone(),
            submitted_at: TimestampMicros(header.created_micros),
            ship_to_country: Some(header.ship_country.trim_end().to_string()),
        }
        .into(),
    ];
    let previous_status = "unknown".to_string();
    let id = order_id.clone();
    let status_payload: Option<Payload> = match status {
        OrderStatus::Submitted | OrderStatus::Unknown => None,
        OrderStatus::Accepted => Some(
            OrderAccepted {
                order_id: id,
                customer_id: header.customer_id.trim_end().into(),
                accepted_at: at,
            }
            .into(),
        ),
        OrderStatus::PaymentPending => Some(
            OrderPaymentPending {
                order_id: id,
                total,
                pending_since: at,
            }
            .into(),
        ),
        OrderStatus::Secured => Some(
            OrderSecured {
                order_id: id,
                total,
                secured_at: at,
            }
            .into(),
        ),
        OrderStatus::Confirmed => Some(
            OrderConfirmed {
                order_id: id,
                confirmed_at: at,
            }
            .into(),
        ),
        OrderStatus::Cancelled => Some(
            OrderCancelled {
                order_id: id,
                previous_status,
                reason: header.reason.clone(),
                cancelled_at: at,
            }
            .into(),
        ),
        OrderStatus::Exception => Some(
            OrderException {
                order_id: id,
                previous_status,
                reason: header.reason.clone(),
                raised_at: at,
            }
            .into(),
        ),
    };
    payloads.extend(status_payload);
    Ok(payloads
        .into_iter()
        .enumerate()
        .map(|(seq, payload)| {
            let kind = payload.kind();
            let seq = seq as u32;
            let identity = SourcePosition {
                commit_lsn: 0,
                xid: header.xmin,
                seq,
            };
            DomainEvent {
                envelope: Envelope {
                    event_id: event_id(&identity, kind.name(), &order_id),
                    event_type: kind.name().to_string(),
                    schema_version: kind.latest_version(),
                    occurred_at_micros: header.changed_micros,
                    aggregate_type: ORDER_AGGREGATE.to_string(),
                    aggregate_id: order_id.clone(),
                    source: SourcePosition {
                        commit_lsn: snapshot_lsn,
                        xid: header.xmin,
                        seq,
                    },
                    origin: Origin::Reconciliation,
                    correlation_id: Some(format!("reconcile-{}", format_lsn(snapshot_lsn))),
                    causation_id: None,
                },
                payload,
            }
        })
        .collect())
}

fn channel(code: &str) -> &'static str {
    match code.trim_end() {
        "W" => "web",
        "S" => "store",
        "P" => "phone",
        "E" => "edi",
        _ => "unknown",
    }
}

/// Republishes the current legacy state of `orders` (read at one snapshot) to the order topic.
pub async fn redrive(
    opts: &ReconcileOptions,
    orders: &[i64],
) -> Result<RedriveOutcome, ReconcileError> {
    let mut legacy = LegacySnapshot::open(&opts.legacy_conn).await?;
    let lsn = legacy.view.lsn;
    let registry = SchemaRegistry::new(&opts.registry_url, &opts.registry_compatibility);
    let client = client_config(&opts.brokers, &opts.kafka_properties);
    let mut producer =
        TransactionalProducer::start(&client, &opts.redrive_transactional_id, TRANSACTION_TIMEOUT)
            .await?;
    let mut outcome = RedriveOutcome {
        snapshot_lsn: format_lsn(lsn),
        ..RedriveOutcome::default()
    };
    let mut wanted: Vec<i64> = orders.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    for chunk in wanted.chunks(ORDERS_PER_TRANSACTION) {
        let headers = legacy.order_headers(chunk).await?;
        producer.begin()?;
        let mut datum = Vec::new();
        for header in &headers {
            for event in order_events(header, lsn)? {
                let writer = event.writer(opts.subject_strategy);
                let subject = opts
                    .subject_strategy
                    .subject(&opts.order_topic, writer.record_name);
                let schema_id = registry
                    .id_for(&subject, writer.schema_json)
                    .await
                    .map_err(|source| ReconcileError::Registry {
                        context: format!("registering the writer schema under {subject}"),
                        source,
                    })?;
                datum.clear();
                event
                    .encode(opts.subject_strategy, &mut datum)
                    .map_err(|e| ReconcileError::Redrive {
                        order: header.id,
                        problem: crate::session::error_chain(&e),
                    })?;
                let mut framed = Vec::with_capacity(datum.len() + contracts::wire::HEADER_LEN);
                contracts::wire::frame(schema_id, &datum, &mut framed);
                if let Err(e) = producer
                    .send(&event_record(&opts.order_topic, &event, framed))
                    .await
                {
                    let _ = producer.abort().await;
                    return Err(e.into());
                }
                outcome.events += 1;
            }
            outcome.republished.push(header.id);
        }
        producer.commit(false).await?;
        let found: std::collections::HashSet<i64> = headers.iter().map(|h| h.id).collect();
        outcome
            .not_in_legacy
            .extend(chunk.iter().filter(|id| !found.contains(id)));
        tracing::info!(
            orders = outcome.republished.len(),
            events = outcome.events,
            "re-drive committed"
        );
    }
    legacy.close().await?;
    Ok(outcome)
}

impl LegacySnapshot {
    /// The headers of `orders` that exist, in key order.
    pub async fn order_headers(
        &mut self,
        orders: &[i64],
    ) -> Result<Vec<OrderHeader>, ReconcileError> {
        let rows = self
            .client()
            .query(
                "SELECT ord_no, cust_no, cust_nm, cust_email, chnl_cd::text, ord_tot_amt::text, \
                 curr_cd::text, ship_ctry_cd::text, ord_stat_cd::text, excp_rsn_txt, \
                 (extract(epoch FROM crt_ts) * 1000000)::int8, \
                 (extract(epoch FROM upd_ts) * 1000000)::int8, xmin::text::int8 \
                 FROM ord_hdr WHERE ord_no = ANY($1) ORDER BY ord_no",
                &[&orders],
            )
            .await
            .map_err(|e| ReconcileError::postgres("reading ord_hdr rows to re-drive", e))?;
        Ok(rows
            .iter()
            .map(|r| OrderHeader {
                id: r.get(0),
                customer_id: r.get(1),
                customer_name: r.get(2),
                customer_email: r.get(3),
                channel_code: r.get(4),
                total: r.get(5),
                currency: r.get(6),
                ship_country: r.get(7),
                status_code: r.get(8),
                reason: r.get(9),
                created_micros: r.get(10),
                changed_micros: r.get(11),
                xmin: u32::try_from(r.get::<_, i64>(12)).unwrap_or(0),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::fold::{OrderFold, SnapshotView};

    fn header(code: &str) -> OrderHeader {
        OrderHeader {
            id: 1042,
            customer_id: "C1".into(),
            customer_name: "Ada".into(),
            customer_email: None,
            channel_code: "W".into(),
            total: "12.50".into(),
            currency: "EUR".into(),
            ship_country: "NL".into(),
            status_code: code.into(),
            reason: None,
            created_micros: 1,
            changed_micros: 2,
            xmin: 700,
        }
    }

    /// Re-driven events of every status fold back to that status, marked as reconciliation.
    #[test]
    fn redriven_events_fold_to_the_legacy_status() {
        let view = SnapshotView::parse(10_000, "800:800:").expect("view");
        for code in ["N", "A", "P", "S", "C", "X", "E"] {
            let events = order_events(&header(code), 9_000).expect(code);
            assert!(
                events
                    .iter()
                    .all(|e| e.envelope.origin == Origin::Reconciliation)
            );
            let mut fold = OrderFold::new(None);
            for e in &events {
                let mut out = Vec::new();
                e.encode(contracts::SubjectStrategy::TopicName, &mut out)
                    .expect("encodes");
                fold.apply(&view, e).expect("order id");
            }
            let want = OrderStatus::from_legacy_code(code);
            assert_eq!(fold.take(1042).map(|f| f.status), want, "{code}");
        }
    }

    /// The same row version always yields the same ids, whatever the snapshot; a new version not.
    #[test]
    fn ids_are_deterministic_per_row_version() {
        let ids = |h: &OrderHeader, lsn| -> Vec<String> {
            order_events(h, lsn)
                .expect("events")
                .into_iter()
                .map(|e| e.envelope.event_id)
                .collect()
        };
        let h = header("S");
        assert_eq!(ids(&h, 1), ids(&h, 2));
        let newer = OrderHeader {
            xmin: 701,
            ..h.clone()
        };
        assert_ne!(ids(&h, 1), ids(&newer, 1));
    }

    /// A row the contracts cannot carry is refused, naming the order and the column.
    #[test]
    fn bad_rows_are_named() {
        let h = OrderHeader {
            total: "twelve".into(),
            ..header("S")
        };
        let err = order_events(&h, 1).expect_err("bad amount");
        assert!(
            err.to_string().contains("order 1042") && err.to_string().contains("ord_tot_amt"),
            "{err}"
        );
    }
}
