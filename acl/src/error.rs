//! Errors: a mapping file that cannot be used (`ConfigError`) and a row that cannot be mapped
//! (`MapError`, destined for the dead-letter topic, never dropped).
//!
//! Messages name table, key, column and reason but never carry row values.

use std::fmt;
use std::path::PathBuf;

/// A mapping file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read mapping file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TOML does not parse into the mapping tree (unknown keys are refused).
    #[error("mapping file does not parse")]
    Toml {
        /// The parser's message, with line, column and key.
        #[source]
        source: toml::de::Error,
    },
    /// A value is not usable; `key` is its path in the file.
    #[error("mapping key `{key}`: {reason}")]
    Invalid {
        /// Path of the offending key, e.g. `table[ord_hdr].events[2].when[0].field`.
        key: String,
        /// What is wrong and what would be right.
        reason: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// Why a row could not be mapped. `code()` is a short stable word for the dead-letter header.
#[derive(Debug, thiserror::Error)]
pub enum MapReason {
    /// A mapped column is not in the row: it was dropped or renamed in the legacy table.
    #[error(
        "mapped column is missing from the row (dropped or renamed in the legacy table?); update the mapping"
    )]
    MissingColumn,
    /// The row has a different number of cells than columns.
    #[error("row has {cells} cells for {columns} columns")]
    RowShape {
        /// Cells in the tuple.
        cells: usize,
        /// Columns of the relation.
        columns: usize,
    },
    /// A code is not in its code table.
    #[error("code is not in code table `{code_table}`; add it to the mapping")]
    UnmappedCode {
        /// The code table.
        code_table: String,
    },
    /// The value was not sent (unchanged TOAST) and no full old image holds it.
    #[error("value was not sent (unchanged TOAST); set REPLICA IDENTITY FULL on the table")]
    UnchangedToast,
    /// The old value is needed but the old image does not carry it.
    #[error(
        "old value needed but the old image does not carry it; set REPLICA IDENTITY FULL on the table"
    )]
    MissingOldImage,
    /// Not a whole number that fits.
    #[error("not a whole number in range")]
    BadNumber,
    /// Not a timestamp in PostgreSQL's text format.
    #[error("not a finite timestamp in PostgreSQL text format")]
    BadTimestamp,
    /// Not an amount of money the contract can carry.
    #[error("not an amount of money the contract can carry")]
    BadMoney {
        /// Why.
        #[source]
        source: Option<contracts::MoneyError>,
    },
    /// A required field is NULL.
    #[error("value is NULL but event field `{field}` of {event_type} is required")]
    NullValue {
        /// The event type.
        event_type: &'static str,
        /// The payload field.
        field: &'static str,
    },
    /// A value does not fit the event field (e.g. an int out of range).
    #[error("value does not fit the event field")]
    FieldType {
        /// Which field and why.
        #[source]
        source: contracts::FieldError,
    },
    /// An outbox row or logical message is not what the outbox contract requires.
    #[error("outbox message unusable: {what}")]
    BadOutbox {
        /// What is wrong (no values).
        what: &'static str,
    },
    /// A logical message with a prefix the mapping does not know.
    #[error("logical message prefix is not the mapping's message_prefix")]
    UnknownPrefix,
    /// The table is not in the mapping.
    #[error("table is not in the mapping")]
    UnknownTable,
    /// A non-declarative rule asked for a domain field the table does not have.
    #[error("no domain field `{field}` in the table's mapping")]
    UnknownField {
        /// The field asked for.
        field: String,
    },
    /// A non-declarative rule failed.
    #[error("rule `{rule}` failed")]
    Rule {
        /// The rule's name.
        rule: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl MapReason {
    /// A short stable word for the dead-letter header.
    pub fn code(&self) -> &'static str {
        match self {
            MapReason::MissingColumn => "missing_column",
            MapReason::RowShape { .. } => "row_shape",
            MapReason::UnmappedCode { .. } => "unmapped_code",
            MapReason::UnchangedToast => "unchanged_toast",
            MapReason::MissingOldImage => "missing_old_image",
            MapReason::BadNumber => "bad_number",
            MapReason::BadTimestamp => "bad_timestamp",
            MapReason::BadMoney { .. } => "bad_money",
            MapReason::NullValue { .. } => "null_value",
            MapReason::FieldType { .. } => "field_type",
            MapReason::BadOutbox { .. } => "bad_outbox",
            MapReason::UnknownPrefix => "unknown_prefix",
            MapReason::UnknownTable => "unknown_table",
            MapReason::UnknownField { .. } => "unknown_field",
            MapReason::Rule { .. } => "rule_failed",
        }
    }
}

/// A row that cannot be mapped: names table, primary key (as text), column (if any) and reason.
#[derive(Debug)]
pub struct MapError(Box<Fault>);

/// The parts of a `MapError`, boxed so results stay small on the hot path.
#[derive(Debug)]
struct Fault {
    table: String,
    key: String,
    column: Option<String>,
    reason: MapReason,
}

impl MapError {
    /// A mapping error of `table` (qualified, e.g. `public.ord_hdr`) at `key`.
    pub fn new(
        table: impl Into<String>,
        key: impl Into<String>,
        column: Option<&str>,
        reason: MapReason,
    ) -> MapError {
        MapError(Box::new(Fault {
            table: table.into(),
            key: key.into(),
            column: column.map(str::to_owned),
            reason,
        }))
    }

    /// The qualified legacy table, e.g. `public.ord_hdr` (or `message:<prefix>`).
    pub fn table(&self) -> &str {
        &self.0.table
    }

    /// The primary key of the row as text (`a,b` for composite keys; empty if unknown).
    pub fn key(&self) -> &str {
        &self.0.key
    }

    /// The column at fault, if one is.
    pub fn column(&self) -> Option<&str> {
        self.0.column.as_deref()
    }

    /// A short stable word for the dead-letter header.
    pub fn reason_code(&self) -> &'static str {
        self.0.reason.code()
    }

    /// The reason in full.
    pub fn reason(&self) -> &MapReason {
        &self.0.reason
    }
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} key [{}]", self.0.table, self.0.key)?;
        if let Some(column) = &self.0.column {
            write!(f, " column {column}")?;
        }
        write!(f, ": {} ({})", self.0.reason, self.0.reason.code())
    }
}

impl std::error::Error for MapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0.reason)
    }
}
