//! The live-registry compatibility check of `cdc-bridge check`: every subject the bridge will
//! write under must already hold only schemas our writer can read (the registry refuses the
//! rest with 409 at registration, which stops the bridge with the same advice).

use contracts::SubjectStrategy;
use contracts::catalog::{self, check_against_registered};

use crate::preflight::Finding;
use crate::session::Shared;

/// The (subject, writer) pairs the bridge may register under this configuration.
pub fn subjects(shared: &Shared) -> Vec<(String, contracts::Writer)> {
    let strategy = shared.config.registry.subject_strategy;
    let catalog = catalog::catalog();
    match strategy {
        SubjectStrategy::TopicName => catalog
            .aggregate_writers()
            .map(|(aggregate, w)| {
                (
                    strategy.subject(&shared.config.topic_for(aggregate), w.record_name),
                    w,
                )
            })
            .collect(),
        SubjectStrategy::RecordName | SubjectStrategy::TopicRecordName => catalog
            .event_writers()
            .map(|(kind, w)| {
                let aggregate = kind.aggregate_type().unwrap_or(catalog::OUTBOX_AGGREGATE);
                (
                    strategy.subject(&shared.config.topic_for(aggregate), w.record_name),
                    w,
                )
            })
            .collect(),
    }
}

/// One finding per subject whose registered latest schema our writer cannot read.
pub async fn check_registered(shared: &Shared) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (subject, writer) in subjects(shared) {
        match shared.registry.latest(&subject).await {
            Ok(None) => {}
            Ok(Some(registered)) => {
                if let Err(e) = check_against_registered(&registered, &writer) {
                    findings.push(Finding {
                        check: "schemas",
                        problem: format!("subject `{subject}`: {e}"),
                        fix: "add a compatible vN+1 schema in contracts (defaults for new fields), or register under a new topic".into(),
                        transient: false,
                    });
                }
            }
            Err(e) => findings.push(Finding {
                check: "schemas",
                problem: format!("subject `{subject}`: {}", crate::session::error_chain(&e)),
                fix: format!("check the registry at {}", shared.config.registry.url),
                transient: !e.is_definite(),
            }),
        }
    }
    findings
}
