//! The legacy row change as the ACL sees it: owned, driver-free, in pgoutput's text format.

use std::sync::Arc;

use contracts::{Origin, SourcePosition};

/// What happened to the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A new row (also every row of a snapshot).
    Insert,
    /// A changed row.
    Update,
    /// A removed row.
    Delete,
}

/// One column value as pgoutput delivers it in text format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// TOAST 'u' marker: the value exists but was not sent.
    Unchanged,
    /// The value in PostgreSQL's text output format.
    Text(String),
}

/// What the old tuple is: none, key columns only (REPLICA IDENTITY DEFAULT: non-key cells are
/// Null placeholders that are NOT data), or the full before-image (REPLICA IDENTITY FULL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldImage {
    /// No old tuple (inserts; updates that did not change the key under DEFAULT identity).
    None,
    /// Only the replica-identity key columns carry data.
    Key,
    /// Every column carries its value before the change.
    Full,
}

/// One row change of one legacy table.
#[derive(Debug, Clone)]
pub struct RowChange {
    /// PostgreSQL schema, e.g. "public".
    pub schema: String,
    /// Table name, e.g. "ord_hdr".
    pub table: String,
    /// Insert, update or delete.
    pub op: Op,
    /// Column names in relation order (from the Relation message).
    pub columns: Arc<[String]>,
    /// New tuple, one cell per column; empty for Delete.
    pub new: Vec<Cell>,
    /// Old tuple, one cell per column; empty when `old_image` is `None`.
    pub old: Vec<Cell>,
    /// What `old` holds.
    pub old_image: OldImage,
    /// Where the change sits in the WAL.
    pub position: SourcePosition,
    /// Commit time of the transaction, µs since the Unix epoch.
    pub commit_ts_micros: i64,
    /// Stream, snapshot or reconciliation.
    pub origin: Origin,
}
