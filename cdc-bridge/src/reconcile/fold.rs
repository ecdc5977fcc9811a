//! Folding domain events into the latest business state per order, as of the legacy snapshot.
//! Pure: the Kafka reader feeds it decoded events in partition order.
//!
//! Memory stays small: one [`Folded`] (16 bytes) per order id, never the events themselves.
//! Events the snapshot cannot see (their legacy transaction committed after it) are counted and
//! left out, so the fold describes the same moment as the legacy rows.

use std::collections::HashMap;

use contracts::{DomainEvent, Payload, SourcePosition};

use super::status::OrderStatus;

/// The legacy snapshot the comparison is made at: its WAL position and its transaction snapshot
/// (`txid_current_snapshot()`), which says exactly which legacy transactions it sees.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotView {
    /// `pg_current_wal_lsn()` read inside the snapshot.
    pub lsn: u64,
    /// Oldest transaction still running: every older one is visible.
    pub xmin: u64,
    /// First transaction not yet started: it and every later one are invisible.
    pub xmax: u64,
    /// Transactions running when the snapshot was taken (invisible).
    pub xip: Vec<u64>,
}

impl SnapshotView {
    /// Parses `txid_current_snapshot()` text (`xmin:xmax:xip,xip`) with the snapshot's LSN.
    pub fn parse(lsn: u64, snapshot: &str) -> Option<SnapshotView> {
        let mut parts = snapshot.trim().splitn(3, ':');
        let xmin = parts.next()?.parse().ok()?;
        let xmax = parts.next()?.parse().ok()?;
        let xip = match parts.next()? {
            "" => Vec::new(),
            list => list
                .split(',')
                .map(|x| x.parse().ok())
                .collect::<Option<Vec<u64>>>()?,
        };
        Some(SnapshotView {
            lsn,
            xmin,
            xmax,
            xip,
        })
    }

    /// Whether the legacy change at `source` is visible in this snapshot.
    ///
    /// Events carry 32-bit transaction ids; they are widened against `xmax` (live ids are
    /// always within 2^31 of it). Snapshot-origin events carry xid 0: their commit LSN decides.
    pub fn sees(&self, source: &SourcePosition) -> bool {
        if source.xid == 0 {
            return source.commit_lsn <= self.lsn;
        }
        let distance = i64::from(source.xid.wrapping_sub(self.xmax as u32) as i32);
        let xid = self.xmax as i64 + distance;
        if xid < self.xmin as i64 {
            true
        } else if xid >= self.xmax as i64 {
            false
        } else {
            !self.xip.contains(&(xid as u64))
        }
    }

    /// The text form, for reports.
    pub fn txid_snapshot(&self) -> String {
        let xip: Vec<String> = self.xip.iter().map(u64::to_string).collect();
        format!("{}:{}:{}", self.xmin, self.xmax, xip.join(","))
    }
}

/// What the events say about one order: compact on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Folded {
    /// The status the latest status event set.
    pub status: OrderStatus,
    /// When that happened (legacy commit time, µs since the epoch); 0 when unknown.
    pub since_micros: i64,
}

/// Counts of what the fold saw, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FoldCounts {
    /// Order events applied.
    pub applied: u64,
    /// Events of transactions the snapshot does not see: legitimately in flight.
    pub after_snapshot: u64,
    /// Events of other kinds on the topic (outbox messages), left alone.
    pub ignored: u64,
}

/// The latest business state per order id.
#[derive(Debug, Default)]
pub struct OrderFold {
    orders: HashMap<i64, Folded>,
    counts: FoldCounts,
    /// Newest legacy commit time among applied events at or below `published_lsn`.
    published_until_micros: i64,
    published_lsn: Option<u64>,
}

/// An event whose aggregate id is not an order number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadOrderId(pub String);

impl OrderFold {
    /// An empty fold. `published_lsn` is the last source LSN the bridge committed to Kafka (its
    /// checkpoint), if known: it bounds what counts as published.
    pub fn new(published_lsn: Option<u64>) -> OrderFold {
        OrderFold {
            published_lsn,
            ..OrderFold::default()
        }
    }

    /// Applies one event, if the snapshot sees it. Events are applied in topic order, which is
    /// each order's publication order (one key, one partition).
    pub fn apply(&mut self, view: &SnapshotView, event: &DomainEvent) -> Result<(), BadOrderId> {
        let Some(order_event) = order_event(&event.payload) else {
            self.counts.ignored += 1;
            return Ok(());
        };
        let env = &event.envelope;
        let id: i64 = env
            .aggregate_id
            .parse()
            .map_err(|_| BadOrderId(env.aggregate_id.clone()))?;
        if !view.sees(&env.source) {
            self.counts.after_snapshot += 1;
            return Ok(());
        }
        self.counts.applied += 1;
        if self
            .published_lsn
            .is_none_or(|p| env.source.commit_lsn <= p)
        {
            self.published_until_micros = self.published_until_micros.max(env.occurred_at_micros);
        }
        let entry = self.orders.entry(id).or_insert(Folded {
            status: OrderStatus::Unknown,
            since_micros: 0,
        });
        if let Some(status) = order_event {
            *entry = Folded {
                status,
                since_micros: env.occurred_at_micros,
            };
        }
        Ok(())
    }

    /// Takes the state of order `id` out of the fold (what remains at the end is extra).
    pub fn take(&mut self, id: i64) -> Option<Folded> {
        self.orders.remove(&id)
    }

    /// Orders folded and not yet taken.
    pub fn len(&self) -> usize {
        self.orders.len()
    }

    /// Whether no order is left.
    pub fn is_empty(&self) -> bool {
        self.orders.is_empty()
    }

    /// What the fold saw.
    pub fn counts(&self) -> FoldCounts {
        self.counts
    }

    /// Legacy commit time up to which the bridge has published: a legacy row changed later may
    /// simply not have reached Kafka yet.
    pub fn published_until_micros(&self) -> i64 {
        self.published_until_micros
    }

    /// The orders left, in key order (the extras once every legacy row was taken).
    pub fn into_remaining(self) -> Vec<(i64, Folded)> {
        let mut rest: Vec<(i64, Folded)> = self.orders.into_iter().collect();
        rest.sort_unstable_by_key(|(id, _)| *id);
        rest
    }
}

/// `Some(status change)` for order events (`Some(None)` for lines), `None` for the rest.
fn order_event(payload: &Payload) -> Option<Option<OrderStatus>> {
    let kind = payload.kind();
    if kind.aggregate_type() != Some("order") {
        return None;
    }
    Some(OrderStatus::after(kind))
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::{Envelope, EventKind, Origin, event_id};

    pub(crate) fn event(kind: EventKind, order: &str, lsn: u64, xid: u32, at: i64) -> DomainEvent {
        let source = SourcePosition {
            commit_lsn: lsn,
            xid,
            seq: 0,
        };
        DomainEvent {
            envelope: Envelope {
                event_id: event_id(&source, kind.name(), order),
                event_type: kind.name().into(),
                schema_version: kind.latest_version(),
                occurred_at_micros: at,
                aggregate_type: "order".into(),
                aggregate_id: order.into(),
                source,
                origin: Origin::Stream,
                correlation_id: None,
                causation_id: None,
            },
            payload: Payload::sample(kind),
        }
    }

    fn view() -> SnapshotView {
        SnapshotView::parse(1000, "100:110:103,105").expect("snapshot")
    }

    /// The snapshot sees committed-before transactions only, by xid, and snapshot events by LSN.
    #[test]
    fn snapshot_visibility_follows_the_transaction_snapshot() {
        let v = view();
        let at = |xid, lsn| {
            v.sees(&SourcePosition {
                commit_lsn: lsn,
                xid,
                seq: 0,
            })
        };
        assert!(at(99, 900));
        assert!(at(104, 900));
        assert!(!at(103, 900), "running when the snapshot was taken");
        assert!(!at(110, 900), "started after");
        assert!(!at(1_110, 900), "a later transaction");
        assert!(
            at(4_000_000_000, 900),
            "2^31 or more ahead is the previous epoch: long past"
        );
        assert!(
            at(0, 1000) && !at(0, 1001),
            "snapshot events compare by LSN"
        );
        assert_eq!(v.txid_snapshot(), "100:110:103,105");
        assert_eq!(
            SnapshotView::parse(1, "1:2:"),
            SnapshotView::parse(1, "1:2:")
        );
        assert!(SnapshotView::parse(1, "junk").is_none());
    }

    /// 32-bit xids are widened across an epoch boundary.
    #[test]
    fn visibility_survives_xid_wraparound() {
        let v = SnapshotView::parse(1, "4294967290:4294967300:").expect("snapshot");
        let sees = |xid| {
            v.sees(&SourcePosition {
                commit_lsn: 1,
                xid,
                seq: 0,
            })
        };
        assert!(sees(4_294_967_280));
        assert!(
            sees(1),
            "xid 4294967297 in the new epoch is between xmin and xmax"
        );
        assert!(!sees(5), "xid 4294967301 is after xmax");
    }

    /// The latest status wins, lines keep it, invisible events are counted and left out.
    #[test]
    fn folds_to_the_latest_visible_status() {
        let v = view();
        let mut f = OrderFold::new(None);
        f.apply(&v, &event(EventKind::OrderSubmitted, "7", 10, 50, 1))
            .expect("ok");
        f.apply(&v, &event(EventKind::OrderAccepted, "7", 20, 51, 2))
            .expect("ok");
        f.apply(&v, &event(EventKind::OrderLineAdded, "7", 30, 52, 3))
            .expect("ok");
        f.apply(&v, &event(EventKind::OrderSecured, "7", 40, 120, 4))
            .expect("ok");
        f.apply(&v, &event(EventKind::OrderLineAdded, "8", 30, 52, 3))
            .expect("ok");
        f.apply(&v, &event(EventKind::PaymentCaptured, "P1", 30, 52, 3))
            .expect("ok");
        let c = f.counts();
        assert_eq!((c.applied, c.after_snapshot, c.ignored), (4, 1, 1));
        assert_eq!(f.published_until_micros(), 3);
        assert_eq!(
            f.take(7),
            Some(Folded {
                status: OrderStatus::Accepted,
                since_micros: 2
            })
        );
        assert_eq!(f.take(8).map(|s| s.status), Some(OrderStatus::Unknown));
        assert!(f.is_empty());
    }

    /// The bridge's checkpoint bounds what counts as published; a non-numeric order id is named.
    #[test]
    fn checkpoint_bounds_published_time_and_bad_ids_are_refused() {
        let v = view();
        let mut f = OrderFold::new(Some(15));
        f.apply(&v, &event(EventKind::OrderSubmitted, "7", 10, 50, 1))
            .expect("ok");
        f.apply(&v, &event(EventKind::OrderAccepted, "7", 20, 51, 2))
            .expect("ok");
        assert_eq!(f.published_until_micros(), 1);
        let err = f.apply(&v, &event(EventKind::OrderAccepted, "A-7", 20, 51, 2));
        assert_eq!(err, Err(BadOrderId("A-7".into())));
    }
}
