//! Rules that cannot be declarative: a trait the application implements and registers with
//! [`crate::Mapper::with_rule`]. A rule runs after the table's declarative rules, on every change
//! of its table except updates that touch no mapped column.

use contracts::{DomainEvent, EventKind, FieldValue, Payload};

use crate::error::{MapError, MapReason};
use crate::evaluate::{Image, RowEval};
use crate::row::{Op, RowChange};

/// A non-declarative mapping rule for one table.
pub trait Rule: Send + Sync {
    /// A short name, used in errors.
    fn name(&self) -> &str;
    /// Appends zero or more events for the change, or fails with an error naming the row.
    fn apply(&self, row: &RowView<'_>, events: &mut Vec<DomainEvent>) -> Result<(), MapError>;
}

/// What a rule sees of a row change: its domain fields, by name, already converted.
pub struct RowView<'a> {
    pub(crate) eval: &'a RowEval<'a>,
}

impl RowView<'_> {
    /// The operation.
    pub fn op(&self) -> Op {
        self.eval.change.op
    }

    /// The raw change.
    pub fn change(&self) -> &RowChange {
        self.eval.change
    }

    fn field(&self, name: &str) -> Result<usize, MapError> {
        self.eval
            .table
            .fields
            .iter()
            .position(|f| f.name == name)
            .ok_or_else(|| {
                self.error(
                    None,
                    MapReason::UnknownField {
                        field: name.to_owned(),
                    },
                )
            })
    }

    /// A domain field of the current image (old image for deletes).
    pub fn value(&self, field: &str) -> Result<FieldValue, MapError> {
        self.eval.value(self.eval.image(), self.field(field)?)
    }

    /// A domain field of the old image (needs REPLICA IDENTITY FULL for non-key fields).
    pub fn old_value(&self, field: &str) -> Result<FieldValue, MapError> {
        self.eval.value(Image::Old, self.field(field)?)
    }

    /// A domain event of this change, with the table's aggregate and a deterministic id.
    pub fn event(&self, payload: Payload) -> Result<DomainEvent, MapError> {
        let kind: EventKind = payload.kind();
        self.eval.event(kind, kind.latest_version(), payload)
    }

    /// An error naming this row (and the column, if given).
    pub fn error(&self, column: Option<&str>, reason: MapReason) -> MapError {
        MapError::new(
            &self.eval.table.qualified,
            self.eval.key_text(),
            column,
            reason,
        )
    }
}
