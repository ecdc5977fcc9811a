//! The comparison rules, per order, as pure functions over one legacy row and what the other
//! sides say about it: matching, missing, extra, divergent, in flight, stuck.

use super::fold::Folded;
use super::report::{Finding, FindingKind, Report, Side, StatusAt, StuckOrder, push_capped};
use super::status::OrderStatus;

/// One legacy order as the snapshot shows it: only what is compared, never the whole row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegacyOrder {
    /// `ord_no`.
    pub id: i64,
    /// From `ord_stat_cd`.
    pub status: OrderStatus,
    /// `upd_ts`, µs since the epoch (UTC).
    pub changed_at_micros: i64,
}

/// What decides in-flight and stuck.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Legacy commit time up to which the bridge has published (0 = nothing published).
    pub published_until_micros: i64,
    /// How far before that a change still counts as possibly in flight (`upd_ts` is written
    /// before its transaction commits).
    pub in_flight_grace_micros: i64,
    /// The snapshot's clock, µs since the epoch.
    pub now_micros: i64,
    /// Pending orders older than this are stuck, µs.
    pub stuck_after_micros: i64,
    /// Legacy codes that mean "pending", e.g. `NAP`.
    pub pending_codes: String,
}

impl Rules {
    /// Whether legacy changed the order after what the bridge is known to have published.
    fn in_flight(&self, row: &LegacyOrder) -> bool {
        self.published_until_micros > 0
            && row.changed_at_micros > self.published_until_micros - self.in_flight_grace_micros
    }
}

/// Accumulates findings into a [`Report`], one legacy row at a time.
#[derive(Debug)]
pub struct Comparison {
    rules: Rules,
    report: Report,
}

impl Comparison {
    /// A comparison under `rules`, listing at most `listed_limit` orders per list.
    pub fn new(rules: Rules, listed_limit: usize) -> Comparison {
        Comparison {
            rules,
            report: Report {
                listed_limit,
                ..Report::default()
            },
        }
    }

    /// Compares one legacy order with what the events (and the read model, when configured:
    /// `Some(None)` = it does not have the order) say.
    pub fn legacy_order(
        &mut self,
        row: &LegacyOrder,
        events: Option<Folded>,
        read_model: Option<Option<OrderStatus>>,
    ) {
        self.report.counts.legacy_orders += 1;
        let limit = self.report.listed_limit;
        if row.status.is_pending(&self.rules.pending_codes)
            && row.changed_at_micros < self.rules.now_micros - self.rules.stuck_after_micros
        {
            self.report.counts.stuck += 1;
            let stuck = StuckOrder::new(
                row.id,
                row.status,
                row.changed_at_micros,
                self.rules.now_micros,
            );
            push_capped(&mut self.report.stuck, limit, stuck);
        }
        let legacy = StatusAt::new(row.status, row.changed_at_micros);
        let from_events = events.map(|f| StatusAt::new(f.status, f.since_micros));
        let mut agrees = self.side(row, &legacy, from_events, Side::Events);
        if let Some(rm) = read_model {
            let from_model = rm.map(|s| StatusAt::new(s, 0));
            agrees &= self.side(row, &legacy, from_model, Side::ReadModel);
        }
        if agrees {
            self.report.counts.matching += 1;
        }
    }

    /// One side of one order; `true` when it agrees.
    fn side(
        &mut self,
        row: &LegacyOrder,
        legacy: &StatusAt,
        other: Option<StatusAt>,
        side: Side,
    ) -> bool {
        let kind = match &other {
            Some(o) if o.status == row.status => return true,
            _ if self.rules.in_flight(row) => FindingKind::InFlight,
            Some(_) => FindingKind::Divergent,
            None => FindingKind::Missing,
        };
        self.record(Finding::new(
            row.id,
            kind,
            side,
            Some(legacy.clone()),
            other,
        ));
        false
    }

    /// An order the events know and legacy does not.
    pub fn extra_in_events(&mut self, id: i64, folded: Folded) {
        let other = StatusAt::new(folded.status, folded.since_micros);
        self.record(Finding::new(
            id,
            FindingKind::Extra,
            Side::Events,
            None,
            Some(other),
        ));
    }

    /// An order the read model has and legacy does not.
    pub fn extra_in_read_model(&mut self, id: i64, status: OrderStatus) {
        let other = StatusAt::new(status, 0);
        self.record(Finding::new(
            id,
            FindingKind::Extra,
            Side::ReadModel,
            None,
            Some(other),
        ));
    }

    /// A message that could not be read (where and why, no values).
    pub fn unreadable(&mut self, what: String) {
        self.report.counts.unreadable += 1;
        let limit = self.report.listed_limit;
        push_capped(&mut self.report.unreadable, limit, what);
    }

    fn record(&mut self, finding: Finding) {
        let limit = self.report.listed_limit;
        let c = &mut self.report.counts;
        match finding.kind {
            FindingKind::Missing => c.missing += 1,
            FindingKind::Extra => c.extra += 1,
            FindingKind::Divergent => c.divergent += 1,
            FindingKind::InFlight => c.in_flight += 1,
        }
        let list = if finding.kind == FindingKind::InFlight {
            &mut self.report.in_flight
        } else {
            &mut self.report.divergences
        };
        push_capped(list, limit, finding);
    }

    /// Legacy orders compared so far.
    pub fn compared(&self) -> u64 {
        self.report.counts.legacy_orders
    }

    /// The report so far, for the caller to complete (position, event counts, timing).
    pub fn into_report(self) -> Report {
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000;
    const NOW: i64 = 1_000 * MIN;

    fn rules() -> Rules {
        Rules {
            published_until_micros: NOW - 10 * MIN,
            in_flight_grace_micros: MIN,
            now_micros: NOW,
            stuck_after_micros: 60 * MIN,
            pending_codes: "NAP".into(),
        }
    }

    fn row(id: i64, status: OrderStatus, minutes_ago: i64) -> LegacyOrder {
        LegacyOrder {
            id,
            status,
            changed_at_micros: NOW - minutes_ago * MIN,
        }
    }

    fn folded(status: OrderStatus) -> Option<Folded> {
        Some(Folded {
            status,
            since_micros: NOW - 30 * MIN,
        })
    }

    /// Agreement, absence, difference and extras are each classified as such.
    #[test]
    fn classifies_matching_missing_divergent_and_extra() {
        let mut c = Comparison::new(rules(), 10);
        c.legacy_order(
            &row(1, OrderStatus::Secured, 30),
            folded(OrderStatus::Secured),
            None,
        );
        c.legacy_order(&row(2, OrderStatus::Secured, 30), None, None);
        c.legacy_order(
            &row(3, OrderStatus::Secured, 30),
            folded(OrderStatus::Accepted),
            None,
        );
        c.extra_in_events(
            4,
            Folded {
                status: OrderStatus::Accepted,
                since_micros: 0,
            },
        );
        let r = c.into_report();
        let k = r.counts;
        assert_eq!(
            (k.legacy_orders, k.matching, k.missing, k.divergent, k.extra),
            (3, 1, 1, 1, 1)
        );
        let kinds: Vec<_> = r.divergences.iter().map(|f| (f.order, f.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                (2, FindingKind::Missing),
                (3, FindingKind::Divergent),
                (4, FindingKind::Extra)
            ]
        );
        assert_eq!(r.exit_code(), 1);
    }

    /// A legacy change newer than what the bridge published is in flight, not divergence.
    #[test]
    fn changes_after_the_published_position_are_in_flight() {
        let mut c = Comparison::new(rules(), 10);
        c.legacy_order(
            &row(1, OrderStatus::Secured, 5),
            folded(OrderStatus::Accepted),
            None,
        );
        c.legacy_order(&row(2, OrderStatus::Submitted, 10), None, None);
        c.legacy_order(&row(3, OrderStatus::Submitted, 12), None, None);
        let r = c.into_report();
        assert_eq!((r.counts.in_flight, r.counts.missing), (2, 1));
        assert!(
            r.in_flight[0].message.contains("in flight")
                || r.in_flight[0].message.contains("after the bridge")
        );
        let mut none = rules();
        none.published_until_micros = 0;
        let mut c = Comparison::new(none, 10);
        c.legacy_order(&row(1, OrderStatus::Secured, 5), None, None);
        assert_eq!(
            c.into_report().counts.missing,
            1,
            "nothing published: missing, not in flight"
        );
    }

    /// Pending orders older than the limit are listed as stuck; others are not.
    #[test]
    fn pending_orders_past_the_limit_are_stuck() {
        let mut c = Comparison::new(rules(), 10);
        c.legacy_order(
            &row(1, OrderStatus::PaymentPending, 61),
            folded(OrderStatus::PaymentPending),
            None,
        );
        c.legacy_order(
            &row(2, OrderStatus::PaymentPending, 59),
            folded(OrderStatus::PaymentPending),
            None,
        );
        c.legacy_order(
            &row(3, OrderStatus::Confirmed, 600),
            folded(OrderStatus::Confirmed),
            None,
        );
        let r = c.into_report();
        assert_eq!(r.counts.stuck, 1);
        assert_eq!(r.stuck[0].order, 1);
        assert_eq!(r.exit_code(), 0, "stuck is not divergence");
    }

    /// The read model is compared beside the events; lists are capped but counts are complete.
    #[test]
    fn read_model_side_and_caps() {
        let mut c = Comparison::new(rules(), 1);
        c.legacy_order(
            &row(1, OrderStatus::Secured, 30),
            folded(OrderStatus::Secured),
            Some(Some(OrderStatus::Accepted)),
        );
        c.legacy_order(
            &row(2, OrderStatus::Secured, 30),
            folded(OrderStatus::Secured),
            Some(None),
        );
        c.extra_in_read_model(3, OrderStatus::Confirmed);
        let r = c.into_report();
        assert_eq!(
            (
                r.counts.divergent,
                r.counts.missing,
                r.counts.extra,
                r.counts.matching
            ),
            (1, 1, 1, 0)
        );
        assert_eq!(r.divergences.len(), 1);
        assert_eq!(r.divergences[0].side, Side::ReadModel);
        assert!(
            r.divergences[0]
                .message
                .contains("the read model says Accepted")
        );
    }
}
