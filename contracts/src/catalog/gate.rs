//! The compatibility gate: every `vN` reads data written with every earlier version (backward,
//! transitive), at the payload level and as registered under both subject layouts; and the same
//! check of our writers against what a live registry holds.

use std::fmt;

use apache_avro::Schema;

use super::{Catalog, EventSchema, assembly, catalog, resolution};
use crate::domain_event::Writer;
use crate::events::EventKind;

/// A reader that cannot read data of an earlier writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatibility {
    /// Which reader and writer, e.g. "OrderSubmitted v2 reading v1".
    pub what: String,
    /// Why, as apache-avro's checker explains it.
    pub reason: String,
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.reason)
    }
}

impl std::error::Error for Incompatibility {}

/// Runs the gate over the embedded catalog.
pub fn check_backward_transitive() -> Result<(), Vec<Incompatibility>> {
    catalog().check_backward_transitive()
}

/// Checks that `ours` can read data written with a schema the registry already holds (the latest
/// version under the subject we are about to write to). Run before a deploy.
pub fn check_against_registered(
    registered_json: &str,
    ours: &Writer,
) -> Result<(), Incompatibility> {
    let registered = Schema::parse_str(registered_json).map_err(|e| Incompatibility {
        what: format!("registered schema for {}", ours.record_name),
        reason: format!("not an Avro schema: {e}"),
    })?;
    can_read(&registered, ours.schema, || {
        format!("{} reading the registered schema", ours.record_name)
    })
}

fn can_read(
    writer: &Schema,
    reader: &Schema,
    what: impl FnOnce() -> String,
) -> Result<(), Incompatibility> {
    resolution::can_read(writer, reader).map_err(|reason| Incompatibility {
        what: what(),
        reason,
    })
}

impl Catalog {
    /// Every version of every event reads every earlier version's data, as a payload, as the
    /// event's own record and inside its aggregate's record.
    pub fn check_backward_transitive(&self) -> Result<(), Vec<Incompatibility>> {
        let mut failures = Vec::new();
        for &kind in EventKind::ALL {
            let versions: Vec<&EventSchema> = self.versions(kind.name()).collect();
            for (j, reader) in versions.iter().enumerate() {
                for writer in &versions[..j] {
                    let what = || {
                        format!(
                            "{} v{} reading v{}",
                            kind.name(),
                            reader.version,
                            writer.version
                        )
                    };
                    if let Err(e) = can_read(&writer.schema, &reader.schema, what) {
                        failures.push(e);
                    }
                }
            }
            let Some((_, older)) = versions.split_last() else {
                continue;
            };
            for old in older {
                if let Err(e) = self.check_writers_with(kind, old) {
                    failures.push(e);
                }
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures)
        }
    }

    /// The latest event and aggregate writers read data written when `kind` was at `old`.
    fn check_writers_with(
        &self,
        kind: EventKind,
        old: &EventSchema,
    ) -> Result<(), Incompatibility> {
        let parse = |json: serde_json::Value| {
            Schema::parse_str(&json.to_string()).map_err(|e| Incompatibility {
                what: format!("{} v{} writer", kind.name(), old.version),
                reason: e.to_string(),
            })
        };
        let built = |e: String| Incompatibility {
            what: format!("{} v{} writer", kind.name(), old.version),
            reason: e,
        };

        let event_json =
            assembly::event_record(kind.name(), &self.envelope, &old.json).map_err(built)?;
        let latest_event = &self.event_writers[kind as usize];
        can_read(&parse(event_json)?, &latest_event.schema, || {
            format!(
                "{} reading {} v{} data",
                latest_event.record_name,
                kind.name(),
                old.version
            )
        })?;

        for aggregate in self.aggregates.iter().filter(|a| a.members.contains(&kind)) {
            let payloads: Vec<&serde_json::Value> = aggregate
                .members
                .iter()
                .map(|&m| {
                    if m == kind {
                        &old.json
                    } else {
                        self.latest(m.name()).map_or(&old.json, |s| &s.json)
                    }
                })
                .collect();
            let name = assembly::aggregate_record_name(&aggregate.aggregate_type);
            let json =
                assembly::aggregate_record(&name, &self.envelope, &payloads).map_err(built)?;
            can_read(&parse(json)?, &aggregate.data.schema, || {
                format!(
                    "{} reading {} v{} data",
                    aggregate.data.record_name,
                    kind.name(),
                    old.version
                )
            })?;
        }
        Ok(())
    }
}
