//! Property tests: any row of any mapped table, with any cells, either maps or errors — never
//! panics — and whatever maps also encodes.

use std::sync::Arc;

use acl::{Cell, OldImage, Op, Origin, RowChange, SourcePosition};
use contracts::SubjectStrategy;
use proptest::prelude::*;

use crate::support::*;

fn cell() -> impl Strategy<Value = Cell> {
    prop_oneof![
        Just(Cell::Null),
        Just(Cell::Unchanged),
        "[A-Z]{1}".prop_map(Cell::Text),
        "-?[0-9]{1,20}(\\.[0-9]{0,6})?".prop_map(Cell::Text),
        "(19|20)[0-9]{2}-[01][0-9]-[0-3][0-9]( [0-2][0-9]:[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?)?"
            .prop_map(Cell::Text),
        "[A-Z]{3}".prop_map(Cell::Text),
        "\\PC{0,12}".prop_map(Cell::Text),
        "\\{\"[a-z]{1,3}\": ?[0-9]{1,3}\\}".prop_map(Cell::Text),
    ]
}

fn table() -> impl Strategy<Value = String> {
    prop::sample::select(
        MAPPER
            .tables()
            .iter()
            .map(|t| t.table.clone())
            .collect::<Vec<_>>(),
    )
}

fn change() -> impl Strategy<Value = RowChange> {
    (
        table(),
        0..3usize,
        0..3usize,
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(cell(), 40),
        prop::collection::vec(cell(), 40),
    )
        .prop_map(|(table, op, image, drop_one, add_one, new, old)| {
            let mut columns: Vec<String> = LEGACY[&table].columns.to_vec();
            if drop_one && columns.len() > 1 {
                columns.remove(new.len() % columns.len());
            }
            if add_one {
                columns.push("new_legacy_col".into());
            }
            let n = columns.len();
            let op = [Op::Insert, Op::Update, Op::Delete][op];
            let old_image = if op == Op::Insert {
                OldImage::None
            } else {
                [OldImage::None, OldImage::Key, OldImage::Full][image]
            };
            RowChange {
                schema: "public".into(),
                table,
                op,
                columns: Arc::from(columns),
                new: if op == Op::Delete {
                    Vec::new()
                } else {
                    new[..n].to_vec()
                },
                old: if old_image == OldImage::None {
                    Vec::new()
                } else {
                    old[..n].to_vec()
                },
                old_image,
                position: SourcePosition {
                    commit_lsn: 1,
                    xid: 2,
                    seq: 3,
                },
                commit_ts_micros: 0,
                origin: Origin::Stream,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Any row maps to events that encode, or to an error naming its table and a reason.
    #[test]
    fn any_row_maps_or_errors(change in change()) {
        match MAPPER.map(&change) {
            Ok(events) => {
                for event in events {
                    let mut out = Vec::new();
                    prop_assert!(event.encode(SubjectStrategy::TopicName, &mut out).is_ok());
                }
            }
            Err(e) => {
                prop_assert_eq!(e.table(), format!("public.{}", change.table));
                prop_assert!(!e.reason_code().is_empty());
            }
        }
    }

    /// Any logical message content maps or errors, never panics.
    #[test]
    fn any_message_maps_or_errors(content in prop::collection::vec(any::<u8>(), 0..200), json in "\\{\"aggregate_type\":\"[a-z]{0,3}\",\"aggregate_id\":[0-9]{1,3},\"event_type\":\"[A-Za-z]{0,5}\",\"payload\":[0-9]\\}") {
        let pos = SourcePosition { commit_lsn: 1, xid: 1, seq: 1 };
        let _ = MAPPER.map_message("fig.outbox", &content, pos, 0);
        if let Ok(events) = MAPPER.map_message("fig.outbox", json.as_bytes(), pos, 0) {
            prop_assert_eq!(events.len(), 1);
        }
    }
}

/// Old and new tuples shorter than the column list are a row-shape error, not a panic.
#[test]
fn short_tuples_are_errors() {
    let mut row = insert("ord_hdr", ORDER);
    row.new.truncate(3);
    assert_eq!(
        MAPPER.map(&row).expect_err("short").reason_code(),
        "row_shape"
    );
    let mut row = status_change("A", "S");
    row.old.truncate(3);
    assert_eq!(
        MAPPER.map(&row).expect_err("short").reason_code(),
        "row_shape"
    );
}
