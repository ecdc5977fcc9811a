//! Mapping one row change of a declaratively mapped table: read cells through the cached column
//! positions, evaluate each rule's conditions without allocating, and build the payload and
//! envelope of every rule that holds.

use std::cell::{Cell as Memo, OnceCell};

use contracts::{DomainEvent, Envelope, EventKind, FieldError, FieldValue, Payload, event_id};

use crate::compile::{CodeTable, CompiledTable, Condition, EventRule, FieldSource, Source, Test};
use crate::convert;
use crate::error::{MapError, MapReason};
use crate::row::{Cell, OldImage, Op, RowChange};

/// Which tuple a value is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Image {
    New,
    Old,
}

/// One row change, seen through its table's compiled mapping.
pub(crate) struct RowEval<'a> {
    pub(crate) table: &'a CompiledTable,
    pub(crate) change: &'a RowChange,
    pub(crate) positions: &'a [Option<usize>],
    pub(crate) code_tables: &'a [CodeTable],
    aggregate_id: OnceCell<String>,
    /// Per-field results of condition tests, shared by the rules of one change.
    text_memo: [Memo<Option<Option<&'a str>>>; MEMO_FIELDS],
    changed_memo: [Memo<Option<bool>>; MEMO_FIELDS],
}

/// Fields whose condition values are memoised per change (later ones are recomputed).
const MEMO_FIELDS: usize = 32;

impl<'a> RowEval<'a> {
    pub(crate) fn new(
        table: &'a CompiledTable,
        change: &'a RowChange,
        positions: &'a [Option<usize>],
        code_tables: &'a [CodeTable],
    ) -> RowEval<'a> {
        RowEval {
            table,
            change,
            positions,
            code_tables,
            aggregate_id: OnceCell::new(),
            text_memo: std::array::from_fn(|_| Memo::new(None)),
            changed_memo: std::array::from_fn(|_| Memo::new(None)),
        }
    }

    /// The image values are read from: the old one for deletes, the new one otherwise.
    pub(crate) fn image(&self) -> Image {
        if self.change.op == Op::Delete {
            Image::Old
        } else {
            Image::New
        }
    }

    /// An error naming this row's table, key and (if given) column.
    pub(crate) fn error(&self, column: Option<usize>, reason: MapReason) -> MapError {
        MapError::new(
            &self.table.qualified,
            self.key_text(),
            column.map(|c| self.table.columns[c].as_str()),
            reason,
        )
    }

    /// The primary key as text, for error messages: `a,b`; NULL, unsent or missing parts as `?`.
    pub(crate) fn key_text(&self) -> String {
        let cells = if self.change.op == Op::Delete {
            &self.change.old
        } else {
            &self.change.new
        };
        let mut key = String::new();
        for (i, &col) in self.table.key.iter().enumerate() {
            if i > 0 {
                key.push(',');
            }
            match self
                .positions
                .get(col)
                .copied()
                .flatten()
                .and_then(|p| cells.get(p))
            {
                Some(Cell::Text(t)) => key.push_str(t),
                _ => key.push('?'),
            }
        }
        key
    }

    /// Checks the tuples have one cell per column.
    pub(crate) fn check_shape(&self) -> Result<(), MapError> {
        let columns = self.change.columns.len();
        let new_ok = self.change.op == Op::Delete || self.change.new.len() == columns;
        let old_ok = self.change.old_image == OldImage::None || self.change.old.len() == columns;
        let cells = if new_ok {
            self.change.old.len()
        } else {
            self.change.new.len()
        };
        if new_ok && old_ok {
            Ok(())
        } else {
            Err(self.error(None, MapReason::RowShape { cells, columns }))
        }
    }

    fn position(&self, col: usize) -> Result<usize, MapError> {
        self.positions
            .get(col)
            .copied()
            .flatten()
            .ok_or_else(|| self.error(Some(col), MapReason::MissingColumn))
    }

    /// A column's text in an image; `None` for NULL.
    pub(crate) fn cell(&self, image: Image, col: usize) -> Result<Option<&'a str>, MapError> {
        let p = self.position(col)?;
        let change = self.change;
        let from_old = |p: usize| match change.old.get(p) {
            Some(Cell::Text(t)) => Ok(Some(t.as_str())),
            Some(Cell::Null) => Ok(None),
            Some(Cell::Unchanged) | None => Err(self.error(Some(col), MapReason::UnchangedToast)),
        };
        match image {
            Image::New => match change.new.get(p) {
                Some(Cell::Text(t)) => Ok(Some(t.as_str())),
                Some(Cell::Null) => Ok(None),
                // Unsent TOAST value: the full old image holds the same value.
                Some(Cell::Unchanged) if change.old_image == OldImage::Full => from_old(p),
                Some(Cell::Unchanged) => Err(self.error(Some(col), MapReason::UnchangedToast)),
                None => Err(self.error(Some(col), MapReason::MissingColumn)),
            },
            Image::Old => match change.old_image {
                OldImage::Full => from_old(p),
                OldImage::Key if self.table.key.contains(&col) => from_old(p),
                OldImage::Key | OldImage::None => {
                    Err(self.error(Some(col), MapReason::MissingOldImage))
                }
            },
        }
    }

    /// Whether an update changed a column (an unsent TOAST value did not change).
    pub(crate) fn column_changed(&self, col: usize) -> Result<bool, MapError> {
        if self.change.old_image != OldImage::Full {
            return Err(self.error(Some(col), MapReason::MissingOldImage));
        }
        let p = self.position(col)?;
        match (self.change.new.get(p), self.change.old.get(p)) {
            (Some(Cell::Unchanged), _) => Ok(false),
            (Some(new), Some(old)) => Ok(new != old),
            _ => Err(self.error(Some(col), MapReason::MissingColumn)),
        }
    }

    fn field_changed(&self, field: usize) -> Result<bool, MapError> {
        if let Some(known) = self.changed_memo.get(field).and_then(Memo::get) {
            return Ok(known);
        }
        let mut changed = false;
        for col in self.table.fields[field].source.columns() {
            if self.column_changed(col)? {
                changed = true;
                break;
            }
        }
        if let Some(memo) = self.changed_memo.get(field) {
            memo.set(Some(changed));
        }
        Ok(changed)
    }

    /// A field's text in the image conditions test, memoised per change.
    fn condition_text(&self, field: usize) -> Result<Option<&'a str>, MapError> {
        if let Some(known) = self.text_memo.get(field).and_then(Memo::get) {
            return Ok(known);
        }
        let text = self.text(self.image(), field)?;
        if let Some(memo) = self.text_memo.get(field) {
            memo.set(Some(text));
        }
        Ok(text)
    }

    /// A domain field as text for conditions: codes translated, other values as sent.
    fn text(&self, image: Image, field: usize) -> Result<Option<&'a str>, MapError> {
        match self.table.fields[field].source {
            FieldSource::Code { column, table } => match self.cell(image, column)? {
                None => Ok(None),
                Some(code) => {
                    let codes = &self.code_tables[table];
                    codes.get(code).map(Some).ok_or_else(|| {
                        self.error(
                            Some(column),
                            MapReason::UnmappedCode {
                                code_table: codes.name.clone(),
                            },
                        )
                    })
                }
            },
            FieldSource::Text(c) | FieldSource::Int(c) | FieldSource::Timestamp(c) => {
                self.cell(image, c)
            }
            FieldSource::Money { amount, .. } => self.cell(image, amount),
        }
    }

    /// A domain field's value for a payload.
    pub(crate) fn value(&self, image: Image, field: usize) -> Result<FieldValue, MapError> {
        let source = self.table.fields[field].source;
        let convert = |col: usize,
                       f: fn(&str) -> Result<FieldValue, MapReason>|
         -> Result<FieldValue, MapError> {
            match self.cell(image, col)? {
                None => Ok(FieldValue::Null),
                Some(text) => f(text).map_err(|reason| self.error(Some(col), reason)),
            }
        };
        match source {
            FieldSource::Text(c) => convert(c, |t| Ok(FieldValue::Text(t.to_owned()))),
            FieldSource::Int(c) => convert(c, |t| convert::int(t).map(FieldValue::Int)),
            FieldSource::Timestamp(c) => convert(c, |t| {
                convert::timestamp_micros(t).map(FieldValue::Timestamp)
            }),
            FieldSource::Code { .. } => Ok(self
                .text(image, field)?
                .map_or(FieldValue::Null, |w| FieldValue::Text(w.to_owned()))),
            FieldSource::Money { amount, currency } => {
                match (self.cell(image, amount)?, self.cell(image, currency)?) {
                    (Some(a), Some(c)) => convert::money(a, c)
                        .map(FieldValue::Money)
                        .map_err(|r| self.error(Some(amount), r)),
                    (Some(_), None) => {
                        Err(self.error(Some(currency), MapReason::BadMoney { source: None }))
                    }
                    (None, _) => Ok(FieldValue::Null),
                }
            }
        }
    }

    fn holds(&self, condition: &Condition) -> Result<bool, MapError> {
        match condition {
            Condition::AnyChanged(fields) => {
                for &f in fields {
                    if self.field_changed(f)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Condition::Field {
                field,
                test: Test::Changed(want),
            } => Ok(self.field_changed(*field)? == *want),
            Condition::Field { field, test } => {
                let value = self.condition_text(*field)?;
                Ok(match (test, value) {
                    (Test::IsNull(want), v) => v.is_none() == *want,
                    (_, None) => false,
                    (Test::Equals(x), Some(v)) => v == x,
                    (Test::OneOf(xs), Some(v)) => xs.iter().any(|x| x == v),
                    (Test::NotOneOf(xs), Some(v)) => xs.iter().all(|x| x != v),
                    (Test::Changed(_), Some(_)) => false,
                })
            }
        }
    }

    /// An update, with a full old image, that changed no mapped column: it yields no event.
    pub(crate) fn touches_nothing_mapped(&self) -> Result<bool, MapError> {
        if self.change.op != Op::Update || self.change.old_image != OldImage::Full {
            return Ok(false);
        }
        for &col in &self.table.mapped {
            if self.column_changed(col)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Appends the events of every rule that holds for this change.
    pub(crate) fn map_rules(&self, out: &mut Vec<DomainEvent>) -> Result<(), MapError> {
        let change = self.change;
        let mut emitted = 0u64; // rules with the same event and operation are alternatives
        for rule in self.table.rules.iter().filter(|r| r.on == change.op) {
            let bit = 1u64 << (rule.kind as u32 % 64);
            if emitted & bit != 0 {
                continue;
            }
            let mut all = true;
            for condition in &rule.conditions {
                if !self.holds(condition)? {
                    all = false;
                    break;
                }
            }
            if all {
                out.push(self.build(rule)?);
                emitted |= bit;
            }
        }
        Ok(())
    }

    fn build(&self, rule: &EventRule) -> Result<DomainEvent, MapError> {
        let mut values = Vec::with_capacity(rule.sources.len());
        for source in &rule.sources {
            values.push(match *source {
                Source::New(f) => self.value(Image::New, f)?,
                Source::Old(f) => self.value(Image::Old, f)?,
                Source::Null => FieldValue::Null,
            });
        }
        let payload =
            Payload::from_fields(rule.kind, values).map_err(|e| self.field_error(rule, e))?;
        self.event(rule.kind, rule.version, payload)
    }

    fn field_error(&self, rule: &EventRule, e: FieldError) -> MapError {
        let index = rule.kind.field_names().iter().position(|n| *n == e.field);
        let column = index.and_then(|i| match rule.sources[i] {
            Source::New(f) | Source::Old(f) => self.table.fields[f].source.columns().next(),
            Source::Null => None,
        });
        let reason = if e.got == "null" {
            MapReason::NullValue {
                event_type: e.event_type,
                field: e.field,
            }
        } else {
            MapReason::FieldType { source: e }
        };
        self.error(column, reason)
    }

    /// The aggregate id: the configured domain field, as text.
    pub(crate) fn aggregate_id(&self, kind: EventKind) -> Result<&str, MapError> {
        if let Some(id) = self.aggregate_id.get() {
            return Ok(id);
        }
        let field = self.table.aggregate_id;
        let id = self.text(self.image(), field)?.ok_or_else(|| {
            let column = self.table.fields[field].source.columns().next();
            self.error(
                column,
                MapReason::NullValue {
                    event_type: kind.name(),
                    field: "aggregate_id",
                },
            )
        })?;
        Ok(self.aggregate_id.get_or_init(|| id.to_owned()))
    }

    /// A domain event of this change with the table's aggregate.
    pub(crate) fn event(
        &self,
        kind: EventKind,
        version: u32,
        payload: Payload,
    ) -> Result<DomainEvent, MapError> {
        let aggregate_id = self.aggregate_id(kind)?.to_owned();
        let change = self.change;
        Ok(DomainEvent {
            envelope: Envelope {
                event_id: event_id(&change.position, kind.name(), &aggregate_id),
                event_type: kind.name().to_owned(),
                schema_version: version,
                occurred_at_micros: change.commit_ts_micros,
                aggregate_type: self.table.aggregate_type.clone(),
                aggregate_id,
                source: change.position,
                origin: change.origin,
                correlation_id: None,
                causation_id: None,
            },
            payload,
        })
    }
}
