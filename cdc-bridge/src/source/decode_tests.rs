//! Table-driven tests of the pgoutput decoder.

use super::*;
use pg_walstream::{ColumnData, ColumnInfo, LogicalReplicationMessage as M, TupleData};

fn relation(id: u32, cols: &[&str]) -> M {
    M::Relation {
        relation_id: id,
        namespace: "public".into(),
        relation_name: "ord_hdr".into(),
        replica_identity: b'f',
        columns: cols
            .iter()
            .enumerate()
            .map(|(i, c)| ColumnInfo::new(u8::from(i == 0), (*c).to_string(), 25, -1))
            .collect(),
    }
}

fn tuple(cells: &[Option<&str>]) -> TupleData {
    TupleData::new(
        cells
            .iter()
            .map(|c| match c {
                Some("<u>") => ColumnData::unchanged(),
                Some(t) => ColumnData::text(t.as_bytes().to_vec()),
                None => ColumnData::null(),
            })
            .collect(),
    )
}

fn begin(d: &mut Decoder, lsn: u64) {
    d.decode(
        M::Begin {
            final_lsn: lsn,
            timestamp: 1_000_000,
            xid: 7,
        },
        0,
    )
    .expect("begin");
}

fn change(ev: Option<WalEvent>) -> RowChange {
    match ev {
        Some(WalEvent::Change(c)) => c,
        other => panic!("expected a change, got {other:?}"),
    }
}

/// An insert becomes a RowChange with names from the Relation, the transaction's commit LSN and
/// 0-based sequence numbers, and the commit time moved to the Unix epoch.
#[test]
fn insert_carries_position_and_names() {
    let mut d = Decoder::new();
    d.decode(relation(1, &["ord_no", "ord_stat_cd"]), 0)
        .expect("relation");
    begin(&mut d, 0x500);
    let a = change(
        d.decode(
            M::Insert {
                relation_id: 1,
                tuple: tuple(&[Some("1"), Some("N")]),
            },
            0,
        )
        .expect("insert"),
    );
    let b = change(
        d.decode(
            M::Insert {
                relation_id: 1,
                tuple: tuple(&[Some("2"), None]),
            },
            0,
        )
        .expect("insert"),
    );
    assert_eq!(
        &*a.columns,
        &["ord_no".to_string(), "ord_stat_cd".to_string()]
    );
    assert_eq!(a.new, vec![Cell::Text("1".into()), Cell::Text("N".into())]);
    assert_eq!(b.new[1], Cell::Null);
    assert_eq!(
        (a.position.commit_lsn, a.position.xid, a.position.seq),
        (0x500, 7, 0)
    );
    assert_eq!(b.position.seq, 1);
    assert_eq!(a.commit_ts_micros, 1_000_000 + PG_EPOCH_OFFSET_MICROS);
    assert_eq!(a.op, Op::Insert);
    assert_eq!(a.old_image, OldImage::None);
}

/// Under REPLICA IDENTITY FULL an unchanged TOAST value is filled from the before-image;
/// with a key-only old image it stays Unchanged, never NULL.
#[test]
fn unchanged_toast_is_filled_only_from_a_full_before_image() {
    let mut d = Decoder::new();
    d.decode(relation(1, &["id", "notes"]), 0)
        .expect("relation");
    begin(&mut d, 0x10);
    let full = change(
        d.decode(
            M::Update {
                relation_id: 1,
                old_tuple: Some(tuple(&[Some("1"), Some("long")])),
                new_tuple: tuple(&[Some("1"), Some("<u>")]),
                key_type: Some('O'),
            },
            0,
        )
        .expect("update"),
    );
    assert_eq!(full.new[1], Cell::Text("long".into()));
    assert_eq!(full.old_image, OldImage::Full);
    let keyed = change(
        d.decode(
            M::Update {
                relation_id: 1,
                old_tuple: None,
                new_tuple: tuple(&[Some("1"), Some("<u>")]),
                key_type: None,
            },
            0,
        )
        .expect("update"),
    );
    assert_eq!(keyed.new[1], Cell::Unchanged);
    assert_eq!(keyed.old_image, OldImage::None);
}

/// A delete under REPLICA IDENTITY DEFAULT is marked as a key-only old image.
#[test]
fn key_only_delete_is_marked() {
    let mut d = Decoder::new();
    d.decode(relation(1, &["id", "x"]), 0).expect("relation");
    begin(&mut d, 0x10);
    let del = change(
        d.decode(
            M::Delete {
                relation_id: 1,
                old_tuple: tuple(&[Some("1"), None]),
                key_type: 'K',
            },
            0,
        )
        .expect("delete"),
    );
    assert_eq!(del.op, Op::Delete);
    assert_eq!(del.old_image, OldImage::Key);
    assert!(del.new.is_empty());
}

/// A Relation message mid-stream (a column added) changes how later rows are read.
#[test]
fn relation_change_mid_stream_is_picked_up() {
    let mut d = Decoder::new();
    d.decode(relation(1, &["id"]), 0).expect("relation");
    begin(&mut d, 0x10);
    let before = change(
        d.decode(
            M::Insert {
                relation_id: 1,
                tuple: tuple(&[Some("1")]),
            },
            0,
        )
        .expect("insert"),
    );
    d.decode(relation(1, &["id", "added"]), 0)
        .expect("relation");
    let after = change(
        d.decode(
            M::Insert {
                relation_id: 1,
                tuple: tuple(&[Some("2"), Some("x")]),
            },
            0,
        )
        .expect("insert"),
    );
    assert_eq!(before.columns.len(), 1);
    assert_eq!(&*after.columns, &["id".to_string(), "added".to_string()]);
    assert_eq!(after.new[1], Cell::Text("x".into()));
}

/// Out-of-protocol input is an error that says what was wrong, never a panic.
#[test]
fn out_of_protocol_input_is_an_error() {
    let mut d = Decoder::new();
    let err = d
        .decode(
            M::Insert {
                relation_id: 1,
                tuple: tuple(&[Some("1")]),
            },
            0,
        )
        .expect_err("no txn");
    assert!(err.0.contains("outside a transaction"), "{err}");
    begin(&mut d, 0x10);
    let err = d
        .decode(
            M::Insert {
                relation_id: 9,
                tuple: tuple(&[Some("1")]),
            },
            0,
        )
        .expect_err("no relation");
    assert!(err.0.contains("relation 9"), "{err}");
    d.decode(relation(1, &["id", "x"]), 0).expect("relation");
    let err = d
        .decode(
            M::Insert {
                relation_id: 1,
                tuple: tuple(&[Some("1")]),
            },
            0,
        )
        .expect_err("width");
    assert!(err.0.contains("columns"), "{err}");
    let err = d
        .decode(
            M::Commit {
                flags: 0,
                commit_lsn: 0x99,
                end_lsn: 0xA0,
                timestamp: 0,
            },
            0,
        )
        .expect_err("mismatched commit");
    assert!(err.0.contains("COMMIT"), "{err}");
}

/// Commit closes the transaction; messages keep their transactional flag and position.
#[test]
fn commit_and_messages() {
    let mut d = Decoder::new();
    let standalone = d
        .decode(
            M::Message {
                flags: 0,
                lsn: 0x40,
                prefix: "p".into(),
                content: Bytes::from_static(b"{}"),
            },
            5,
        )
        .expect("message");
    assert!(matches!(
        standalone,
        Some(WalEvent::Message {
            transactional: false,
            position: SourcePosition {
                commit_lsn: 0x40,
                ..
            },
            ..
        })
    ));
    begin(&mut d, 0x50);
    let inside = d
        .decode(
            M::Message {
                flags: 1,
                lsn: 0x48,
                prefix: "p".into(),
                content: Bytes::from_static(b"{}"),
            },
            5,
        )
        .expect("message");
    assert!(matches!(
        inside,
        Some(WalEvent::Message {
            transactional: true,
            position: SourcePosition {
                commit_lsn: 0x50,
                seq: 0,
                ..
            },
            ..
        })
    ));
    assert!(d.in_transaction());
    let commit = d
        .decode(
            M::Commit {
                flags: 0,
                commit_lsn: 0x50,
                end_lsn: 0x58,
                timestamp: 0,
            },
            0,
        )
        .expect("commit");
    assert!(matches!(
        commit,
        Some(WalEvent::Commit {
            commit_lsn: 0x50,
            end_lsn: 0x58,
            ..
        })
    ));
    assert!(!d.in_transaction());
}

/// A BEGIN, COMMIT or message timestamp at the edge of i64 (found by fuzzing) is a decode error,
/// not an arithmetic overflow.
#[test]
fn out_of_range_timestamps_are_decode_errors() {
    let mut d = Decoder::new();
    let begin = M::Begin {
        final_lsn: 0x500,
        timestamp: i64::MAX,
        xid: 7,
    };
    let err = d
        .decode(begin, 0)
        .expect_err("BEGIN at i64::MAX must not decode");
    assert!(
        err.0.contains("BEGIN timestamp"),
        "unexpected error: {}",
        err.0
    );
    assert_eq!(unix_micros(i64::MAX, "x").ok(), None);
    assert_eq!(unix_micros(0, "x").ok(), Some(PG_EPOCH_OFFSET_MICROS));
}
