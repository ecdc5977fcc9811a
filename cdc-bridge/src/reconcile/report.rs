//! What a reconciliation found, in business language: a table for people, JSON for tools, and
//! the exit status (non-zero when anything diverges).

use std::fmt::Write as _;

use super::status::OrderStatus;

/// Where the comparison's other side came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The state folded from the domain events in Kafka.
    Events,
    /// The new service's read model.
    ReadModel,
}

impl Side {
    /// (subject, "say" verb, "have" verb) in agreement with the subject.
    fn words(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Side::Events => ("events", "say", "have"),
            Side::ReadModel => ("the read model", "says", "has"),
        }
    }
}

/// What kind of finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// Legacy has the order; the other side does not.
    Missing,
    /// The other side has an order legacy does not.
    Extra,
    /// Both have it, in different states.
    Divergent,
    /// Legacy changed it after what the bridge has published: not (yet) a divergence.
    InFlight,
}

/// A status and since when, as one side says it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StatusAt {
    /// The business status.
    pub status: OrderStatus,
    /// The legacy code, e.g. `S`.
    pub code: char,
    /// Since when (µs since the epoch), when known.
    pub since_micros: Option<i64>,
}

impl StatusAt {
    /// A status since a time (0 or less = unknown).
    pub fn new(status: OrderStatus, since_micros: i64) -> StatusAt {
        StatusAt {
            status,
            code: status.legacy_code(),
            since_micros: (since_micros > 0).then_some(since_micros),
        }
    }

    fn says(&self) -> String {
        match self.since_micros {
            Some(t) => format!("{} since {}", self.status.name(), when(t)),
            None => self.status.name().to_string(),
        }
    }
}

/// One order that does not agree.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The order number.
    pub order: i64,
    /// What is wrong.
    pub kind: FindingKind,
    /// Compared with what.
    pub side: Side,
    /// What legacy says (none for extras).
    pub legacy: Option<StatusAt>,
    /// What the other side says (none for missing).
    pub other: Option<StatusAt>,
    /// The sentence for people.
    pub message: String,
}

impl Finding {
    /// A finding, with its sentence.
    pub fn new(
        order: i64,
        kind: FindingKind,
        side: Side,
        legacy: Option<StatusAt>,
        other: Option<StatusAt>,
    ) -> Finding {
        let (who, say, have) = side.words();
        let legacy_says = legacy.as_ref().map(StatusAt::says).unwrap_or_default();
        let other_says = other.as_ref().map(StatusAt::says).unwrap_or_default();
        let message = match kind {
            FindingKind::Missing => {
                format!("order {order}: legacy says {legacy_says}, {who} {have} no trace of it")
            }
            FindingKind::Extra => {
                format!("order {order}: {who} {say} {other_says}, legacy has no such order")
            }
            FindingKind::Divergent => {
                format!("order {order}: legacy says {legacy_says}, {who} {say} {other_says}")
            }
            FindingKind::InFlight => match &other {
                Some(_) => format!(
                    "order {order}: legacy says {legacy_says}, {who} still {say} {other_says}; \
                     changed after the bridge's last published position"
                ),
                None => format!(
                    "order {order}: legacy says {legacy_says}, not in {who} yet; \
                     changed after the bridge's last published position"
                ),
            },
        };
        Finding {
            order,
            kind,
            side,
            legacy,
            other,
            message,
        }
    }
}

/// An order sitting in a pending state longer than allowed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StuckOrder {
    /// The order number.
    pub order: i64,
    /// Its status.
    pub status: StatusAt,
    /// How long it has been there, seconds.
    pub age_seconds: i64,
    /// The sentence for people.
    pub message: String,
}

impl StuckOrder {
    /// A stuck order, with its sentence.
    pub fn new(order: i64, status: OrderStatus, since_micros: i64, now_micros: i64) -> StuckOrder {
        let age_seconds = (now_micros - since_micros).max(0) / 1_000_000;
        let status = StatusAt::new(status, since_micros);
        let message = format!("order {order}: {} for {}", status.says(), age(age_seconds));
        StuckOrder {
            order,
            status,
            age_seconds,
            message,
        }
    }
}

/// Where the comparison was made.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Position {
    /// The legacy snapshot's WAL position (`pg_current_wal_lsn()`), `X/Y`.
    pub snapshot_lsn: String,
    /// The legacy snapshot (`txid_current_snapshot()`).
    pub txid_snapshot: String,
    /// When the snapshot was taken (UTC).
    pub taken_at: String,
    /// The bridge's last committed source LSN (its checkpoint), when known.
    pub bridge_checkpoint: Option<String>,
    /// Legacy commit time up to which events are published; later changes count as in flight.
    pub published_until: Option<String>,
}

/// How many of each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Legacy orders read.
    pub legacy_orders: u64,
    /// Orders that agree everywhere.
    pub matching: u64,
    /// Missing on the other side.
    pub missing: u64,
    /// Only on the other side.
    pub extra: u64,
    /// In different states.
    pub divergent: u64,
    /// Changed after the bridge's published position (not divergence).
    pub in_flight: u64,
    /// Pending longer than allowed.
    pub stuck: u64,
    /// Messages read from the order topic.
    pub event_messages: u64,
    /// Order events folded.
    pub events_applied: u64,
    /// Events of legacy transactions newer than the snapshot (not divergence).
    pub events_after_snapshot: u64,
    /// Other events on the topic (outbox messages), left alone.
    pub events_ignored: u64,
    /// Messages that could not be read: nothing can be said about their orders.
    pub unreadable: u64,
    /// Rows of the read model, when one is configured.
    pub read_model_rows: Option<u64>,
}

/// The result of one reconciliation of orders.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Where.
    pub position: Position,
    /// How many.
    pub counts: Counts,
    /// Missing, extra and divergent orders (at most `listed_limit`).
    pub divergences: Vec<Finding>,
    /// Orders in flight (at most `listed_limit`).
    pub in_flight: Vec<Finding>,
    /// Orders pending too long (at most `listed_limit`).
    pub stuck: Vec<StuckOrder>,
    /// Messages that could not be read, with where and why (at most `listed_limit`).
    pub unreadable: Vec<String>,
    /// The cap on each list; counts are always complete.
    pub listed_limit: usize,
    /// How long the run took, ms.
    pub elapsed_ms: u64,
}

/// Appends `item` to `list` unless the list is at `limit`.
pub(crate) fn push_capped<T>(list: &mut Vec<T>, limit: usize, item: T) {
    if list.len() < limit {
        list.push(item);
    }
}

impl Report {
    /// Whether legacy and the other sides agree (in-flight and stuck orders do not count).
    pub fn is_clean(&self) -> bool {
        let c = &self.counts;
        c.missing + c.extra + c.divergent + c.unreadable == 0
    }

    /// The process exit status: 0 when clean, 1 when anything diverges.
    pub fn exit_code(&self) -> i32 {
        if self.is_clean() { 0 } else { 1 }
    }

    /// Listed orders a re-drive would repair: missing from or divergent in the events.
    pub fn orders_to_redrive(&self) -> Vec<i64> {
        self.divergences
            .iter()
            .filter(|f| f.side == Side::Events)
            .filter(|f| matches!(f.kind, FindingKind::Missing | FindingKind::Divergent))
            .map(|f| f.order)
            .collect()
    }

    /// JSON for tools.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// A table for people.
    pub fn to_table(&self) -> String {
        let c = &self.counts;
        let p = &self.position;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Reconciliation of orders at legacy snapshot {} (txid {}), taken {}",
            p.snapshot_lsn, p.txid_snapshot, p.taken_at
        );
        if let Some(cp) = &p.bridge_checkpoint {
            let _ = writeln!(out, "Bridge committed up to {cp}");
        }
        if let Some(t) = &p.published_until {
            let _ = writeln!(out, "Events published up to legacy commits of {t}");
        }
        let _ = writeln!(
            out,
            "Legacy orders {} · events read {} (folded {}, newer than the snapshot {}, other {})",
            c.legacy_orders,
            c.event_messages,
            c.events_applied,
            c.events_after_snapshot,
            c.events_ignored
        );
        if let Some(n) = c.read_model_rows {
            let _ = writeln!(out, "Read model rows {n}");
        }
        let _ = writeln!(
            out,
            "Matching {} · missing {} · extra {} · divergent {} · unreadable {} · in flight {} · stuck {}",
            c.matching, c.missing, c.extra, c.divergent, c.unreadable, c.in_flight, c.stuck
        );
        let verdict = if self.is_clean() {
            "RESULT: legacy and events agree"
        } else {
            "RESULT: DIVERGENCE FOUND"
        };
        let _ = writeln!(out, "{verdict}");
        section(
            &mut out,
            "Divergences",
            c.missing + c.extra + c.divergent,
            &self.divergences,
            |f| {
                format!(
                    "{:<10} {:<10} {}",
                    kind_word(f.kind),
                    side_word(f.side),
                    f.message
                )
            },
        );
        section(
            &mut out,
            "Unreadable messages",
            c.unreadable,
            &self.unreadable,
            Clone::clone,
        );
        section(
            &mut out,
            "In flight (not divergence)",
            c.in_flight,
            &self.in_flight,
            |f| f.message.clone(),
        );
        section(
            &mut out,
            "Stuck (pending too long)",
            c.stuck,
            &self.stuck,
            |s| s.message.clone(),
        );
        out
    }
}

fn section<T>(out: &mut String, title: &str, total: u64, items: &[T], line: impl Fn(&T) -> String) {
    if total == 0 {
        return;
    }
    let _ = writeln!(out, "\n{title} ({total})");
    for item in items {
        let _ = writeln!(out, "  {}", line(item));
    }
    let shown = items.len() as u64;
    if total > shown {
        let _ = writeln!(
            out,
            "  … and {} more (see --json or raise max_listed)",
            total - shown
        );
    }
}

fn kind_word(kind: FindingKind) -> &'static str {
    match kind {
        FindingKind::Missing => "missing",
        FindingKind::Extra => "extra",
        FindingKind::Divergent => "divergent",
        FindingKind::InFlight => "in flight",
    }
}

fn side_word(side: Side) -> &'static str {
    match side {
        Side::Events => "events",
        Side::ReadModel => "read model",
    }
}

/// A legacy time (µs since the epoch, UTC) for people.
pub fn when(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| format!("{micros}µs"))
}

fn age(seconds: i64) -> String {
    let (d, h, m) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
    );
    match (d, h) {
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_764_763_380_000_000; // 2025-12-03 12:03:00 UTC

    /// Findings read as business sentences naming the order, both states and since when.
    #[test]
    fn findings_speak_business_language() {
        let f = Finding::new(
            1042,
            FindingKind::Divergent,
            Side::Events,
            Some(StatusAt::new(OrderStatus::Secured, T + 240_000_000)),
            Some(StatusAt::new(OrderStatus::Accepted, T)),
        );
        assert_eq!(
            f.message,
            "order 1042: legacy says Secured since 2025-12-03 12:07:00 UTC, \
             events say Accepted since 2025-12-03 12:03:00 UTC"
        );
        let m = Finding::new(
            7,
            FindingKind::Missing,
            Side::ReadModel,
            Some(StatusAt::new(OrderStatus::PaymentPending, 0)),
            None,
        );
        assert_eq!(
            m.message,
            "order 7: legacy says Payment pending, the read model has no trace of it"
        );
        let s = StuckOrder::new(9, OrderStatus::PaymentPending, T, T + 7_380_000_000);
        assert_eq!(
            s.message,
            "order 9: Payment pending since 2025-12-03 12:03:00 UTC for 2h 3m"
        );
    }

    /// Only missing, extra, divergent and unreadable make the run fail; the table says so.
    #[test]
    fn exit_status_and_table_follow_the_counts() {
        let mut r = Report {
            listed_limit: 10,
            ..Report::default()
        };
        r.counts.in_flight = 3;
        r.counts.stuck = 1;
        assert_eq!(r.exit_code(), 0);
        assert!(r.to_table().contains("RESULT: legacy and events agree"));
        r.counts.divergent = 2;
        r.divergences.push(Finding::new(
            5,
            FindingKind::Divergent,
            Side::Events,
            Some(StatusAt::new(OrderStatus::Secured, 0)),
            Some(StatusAt::new(OrderStatus::Accepted, 0)),
        ));
        assert_eq!(r.exit_code(), 1);
        assert_eq!(r.orders_to_redrive(), vec![5]);
        let table = r.to_table();
        assert!(table.contains("Divergences (2)"), "{table}");
        assert!(
            table.contains("order 5: legacy says Secured, events say Accepted"),
            "{table}"
        );
        assert!(table.contains("and 1 more"), "{table}");
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).expect("json");
        assert_eq!(json["counts"]["divergent"], 2);
        assert_eq!(json["divergences"][0]["kind"], "divergent");
        assert_eq!(json["divergences"][0]["legacy"]["status"], "Secured");
    }
}
