//! pgoutput messages → owned [`WalEvent`]s, as plain synchronous functions.
//!
//! The decoder keeps the Relation cache: PostgreSQL sends a Relation message before the first
//! change that uses a new or altered table definition, so a column added, dropped or retyped
//! mid-stream is picked up before any row written under it is read.
//!
//! Unchanged TOAST values (the `'u'` marker) are filled from the before-image when the table
//! has REPLICA IDENTITY FULL; otherwise they stay [`Cell::Unchanged`], never NULL.

use acl::{Cell, OldImage, Op, Origin, RowChange, SourcePosition};
use bytes::Bytes;
use pg_walstream::{ColumnData, LogicalReplicationMessage, TupleData};
use std::collections::HashMap;
use std::sync::Arc;

/// Microseconds between the PostgreSQL epoch (2000-01-01) and the Unix epoch.
pub const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// A PostgreSQL timestamp (µs since 2000-01-01) as µs since the Unix epoch. The value comes off
/// the wire, so one outside the representable range is a decode error, never an overflow.
fn unix_micros(pg_micros: i64, what: &str) -> Result<i64, DecodeError> {
    pg_micros
        .checked_add(PG_EPOCH_OFFSET_MICROS)
        .ok_or_else(|| DecodeError(format!("{what} timestamp {pg_micros} is out of range")))
}

/// One thing the publisher needs to know, in stream order.
#[derive(Debug, Clone)]
pub enum WalEvent {
    /// A legacy transaction starts; it commits at `final_lsn`.
    Begin {
        /// Transaction id.
        xid: u32,
        /// Its commit LSN.
        final_lsn: u64,
        /// Its commit time, µs since the Unix epoch.
        commit_ts_micros: i64,
    },
    /// A row change inside the open transaction.
    Change(RowChange),
    /// Tables emptied inside the open transaction.
    Truncate {
        /// `(schema, table)` of each.
        tables: Vec<(String, String)>,
        /// Where.
        position: SourcePosition,
    },
    /// A `pg_logical_emit_message`.
    Message {
        /// Inside a transaction (true) or on its own.
        transactional: bool,
        /// The message prefix.
        prefix: String,
        /// The content.
        content: Bytes,
        /// Where; for a non-transactional message `commit_lsn` is the message's LSN.
        position: SourcePosition,
        /// Commit (or, for a non-transactional message, send) time, µs since the Unix epoch.
        ts_micros: i64,
    },
    /// The open transaction commits.
    Commit {
        /// Commit LSN (equals Begin's `final_lsn`).
        commit_lsn: u64,
        /// End LSN: where the stream resumes after it.
        end_lsn: u64,
        /// Commit time, µs since the Unix epoch.
        commit_ts_micros: i64,
    },
}

/// A malformed or out-of-protocol stream.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct DecodeError(pub String);

struct Relation {
    schema: String,
    table: String,
    columns: Arc<[String]>,
}

struct OpenTxn {
    xid: u32,
    final_lsn: u64,
    commit_ts_micros: i64,
    seq: u32,
}

/// Turns pgoutput messages into [`WalEvent`]s, keeping the Relation cache and the open
/// transaction's position counter.
#[derive(Default)]
pub struct Decoder {
    relations: HashMap<u32, Relation>,
    txn: Option<OpenTxn>,
}

impl Decoder {
    /// A decoder with an empty Relation cache (a new replication connection always resends
    /// Relation messages before use).
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Whether a transaction is open (Begin seen, Commit not yet).
    pub fn in_transaction(&self) -> bool {
        self.txn.is_some()
    }

    /// Decodes one message. `None` for messages that only update state (Relation, Type, Origin).
    pub fn decode(
        &mut self,
        message: LogicalReplicationMessage,
        server_time_micros: i64,
    ) -> Result<Option<WalEvent>, DecodeError> {
        use LogicalReplicationMessage as M;
        Ok(match message {
            M::Begin {
                final_lsn,
                timestamp,
                xid,
            } => {
                if self.txn.is_some() {
                    return Err(DecodeError("BEGIN inside an open transaction".into()));
                }
                let commit_ts_micros = unix_micros(timestamp, "BEGIN")?;
                self.txn = Some(OpenTxn {
                    xid,
                    final_lsn,
                    commit_ts_micros,
                    seq: 0,
                });
                Some(WalEvent::Begin {
                    xid,
                    final_lsn,
                    commit_ts_micros,
                })
            }
            M::Commit {
                commit_lsn,
                end_lsn,
                timestamp,
                ..
            } => {
                let txn = self
                    .txn
                    .take()
                    .ok_or_else(|| DecodeError("COMMIT without BEGIN".into()))?;
                if txn.final_lsn != commit_lsn {
                    return Err(DecodeError(format!(
                        "COMMIT at {commit_lsn:X} for a transaction announced at {:X}",
                        txn.final_lsn
                    )));
                }
                Some(WalEvent::Commit {
                    commit_lsn,
                    end_lsn,
                    commit_ts_micros: unix_micros(timestamp, "COMMIT")?,
                })
            }
            M::Relation {
                relation_id,
                namespace,
                relation_name,
                columns,
                ..
            } => {
                let names: Vec<String> = columns.iter().map(|c| c.name.to_string()).collect();
                self.relations.insert(
                    relation_id,
                    Relation {
                        schema: namespace.to_string(),
                        table: relation_name.to_string(),
                        columns: names.into(),
                    },
                );
                None
            }
            M::Insert { relation_id, tuple } => {
                Some(self.change(relation_id, Op::Insert, Some(tuple), None, OldImage::None)?)
            }
            M::Update {
                relation_id,
                old_tuple,
                new_tuple,
                key_type,
            } => {
                let image = match (key_type, &old_tuple) {
                    (_, None) => OldImage::None,
                    (Some('O'), Some(_)) => OldImage::Full,
                    (_, Some(_)) => OldImage::Key,
                };
                Some(self.change(relation_id, Op::Update, Some(new_tuple), old_tuple, image)?)
            }
            M::Delete {
                relation_id,
                old_tuple,
                key_type,
            } => {
                let image = if key_type == 'O' {
                    OldImage::Full
                } else {
                    OldImage::Key
                };
                Some(self.change(relation_id, Op::Delete, None, Some(old_tuple), image)?)
            }
            M::Truncate { relation_ids, .. } => {
                let position = self.next_position("TRUNCATE")?;
                let tables = relation_ids
                    .iter()
                    .map(|id| {
                        self.relation(*id)
                            .map(|r| (r.schema.clone(), r.table.clone()))
                    })
                    .collect::<Result<_, _>>()?;
                Some(WalEvent::Truncate { tables, position })
            }
            M::Message {
                flags,
                lsn,
                prefix,
                content,
            } => {
                let transactional = flags & 1 == 1;
                let (position, ts_micros) = if transactional {
                    let ts = self.txn.as_ref().map_or(0, |t| t.commit_ts_micros);
                    (self.next_position("transactional MESSAGE")?, ts)
                } else {
                    (
                        SourcePosition {
                            commit_lsn: lsn,
                            xid: 0,
                            seq: 0,
                        },
                        unix_micros(server_time_micros, "MESSAGE server")?,
                    )
                };
                Some(WalEvent::Message {
                    transactional,
                    prefix,
                    content,
                    position,
                    ts_micros,
                })
            }
            M::Type { .. } | M::Origin { .. } => None,
            other => {
                return Err(DecodeError(format!(
                    "unexpected message {other:?}; the bridge reads without streaming or two-phase"
                )));
            }
        })
    }

    fn relation(&self, id: u32) -> Result<&Relation, DecodeError> {
        self.relations.get(&id).ok_or_else(|| {
            DecodeError(format!(
                "change for relation {id} before its RELATION message"
            ))
        })
    }

    fn next_position(&mut self, what: &str) -> Result<SourcePosition, DecodeError> {
        let txn = self
            .txn
            .as_mut()
            .ok_or_else(|| DecodeError(format!("{what} outside a transaction")))?;
        let position = SourcePosition {
            commit_lsn: txn.final_lsn,
            xid: txn.xid,
            seq: txn.seq,
        };
        txn.seq = txn.seq.saturating_add(1);
        Ok(position)
    }

    fn change(
        &mut self,
        relation_id: u32,
        op: Op,
        new: Option<TupleData>,
        old: Option<TupleData>,
        old_image: OldImage,
    ) -> Result<WalEvent, DecodeError> {
        let position = self.next_position("row change")?;
        let commit_ts_micros = self.txn.as_ref().map_or(0, |t| t.commit_ts_micros);
        let rel = self.relation(relation_id)?;
        let width = rel.columns.len();
        let old_cells = old
            .map(|t| cells(&t, width))
            .transpose()?
            .unwrap_or_default();
        let mut new_cells = new
            .map(|t| cells(&t, width))
            .transpose()?
            .unwrap_or_default();
        if old_image == OldImage::Full {
            fill_unchanged_from_before_image(&mut new_cells, &old_cells);
        }
        Ok(WalEvent::Change(RowChange {
            schema: rel.schema.clone(),
            table: rel.table.clone(),
            op,
            columns: Arc::clone(&rel.columns),
            new: new_cells,
            old: old_cells,
            old_image,
            position,
            commit_ts_micros,
            origin: Origin::Stream,
        }))
    }
}

/// Unchanged TOAST cells of the new image take the before-image's value when it carries one.
pub fn fill_unchanged_from_before_image(new: &mut [Cell], old: &[Cell]) {
    for (n, o) in new.iter_mut().zip(old) {
        if *n == Cell::Unchanged && matches!(o, Cell::Text(_) | Cell::Null) {
            *n = o.clone();
        }
    }
}

fn cells(tuple: &TupleData, width: usize) -> Result<Vec<Cell>, DecodeError> {
    if tuple.columns.len() != width {
        return Err(DecodeError(format!(
            "tuple has {} columns, its relation {width}",
            tuple.columns.len()
        )));
    }
    // Sized once: collecting through `Result` gives no size hint, and growing the vector
    // several times per row showed up in profiles of big transactions.
    let mut out = Vec::with_capacity(width);
    for c in &tuple.columns {
        out.push(cell(c)?);
    }
    Ok(out)
}

fn cell(c: &ColumnData) -> Result<Cell, DecodeError> {
    if c.is_null() {
        Ok(Cell::Null)
    } else if c.is_unchanged() {
        Ok(Cell::Unchanged)
    } else {
        c.as_string()
            .map(Cell::Text)
            .ok_or_else(|| DecodeError("a column value is not UTF-8 text".into()))
    }
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
