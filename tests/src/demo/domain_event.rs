//! Building domain events the way the bridge would, for the demo's tests and fixtures: a stream
//! event at a given position of a legacy transaction, its envelope filled in from the payload.

use contracts::{DomainEvent, Envelope, Origin, Payload, SourcePosition};

/// The event `payload` about `aggregate_id`, as the `seq`-th change of a legacy transaction
/// committed at `commit_lsn`, `occurred_at_micros` after the epoch.
pub fn stream_event(
    commit_lsn: u64,
    seq: u32,
    occurred_at_micros: i64,
    aggregate_id: &str,
    payload: impl Into<Payload>,
) -> DomainEvent {
    let payload = payload.into();
    let kind = payload.kind();
    let source = SourcePosition {
        commit_lsn,
        xid: 42,
        seq,
    };
    DomainEvent {
        envelope: Envelope {
            event_id: contracts::event_id(&source, kind.name(), aggregate_id),
            event_type: kind.name().into(),
            schema_version: kind.latest_version(),
            occurred_at_micros,
            aggregate_type: kind.aggregate_type().unwrap_or("order").into(),
            aggregate_id: aggregate_id.into(),
            source,
            origin: Origin::Stream,
            correlation_id: None,
            causation_id: None,
        },
        payload,
    }
}
