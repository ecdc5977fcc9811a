//! `acl::Mapper::map` with the reference mapping (`acl/mappings/order_to_cash.toml`) on arbitrary
//! rows of its tables, and `map_message` on arbitrary outbox messages: every row either maps to
//! events the contracts can encode or yields a `MapError` naming the table; never a panic.

#![no_main]

use acl::{Cell, Mapper, OldImage, Op, Origin, RowChange, SourcePosition};
use arbitrary::Arbitrary;
use contracts::SubjectStrategy;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

const REFERENCE_MAPPING: &str = include_str!("../../../acl/mappings/order_to_cash.toml");

/// Values the legacy schema really holds, so the fuzzer reaches the conversions past the code
/// tables quickly; arbitrary text covers the rest.
const PLAUSIBLE: &[&str] = &[
    "",
    "0",
    "1",
    "42",
    "-1",
    "A",
    "S",
    "N",
    "P",
    "C",
    "X",
    "E",
    "W",
    "R",
    "L",
    "F",
    "B",
    "00",
    "05",
    "51",
    "91",
    "zz",
    "12.50",
    "0.00",
    "-3.10",
    "99999999999999999999.99",
    "1e400",
    "NaN",
    "2024-03-01 12:00:00+00",
    "2024-03-01 12:00:00.123456+02",
    "2024-02-30 25:61:00+00",
    "infinity",
    "-infinity",
    "EUR",
    "USD",
    "t",
    "f",
    "{}",
    "null",
    "9223372036854775808",
];

#[derive(Debug, Arbitrary)]
enum FuzzCell {
    Null,
    Unchanged,
    Plausible(u8),
    Text(String),
}

impl FuzzCell {
    fn cell(&self) -> Cell {
        match self {
            FuzzCell::Null => Cell::Null,
            FuzzCell::Unchanged => Cell::Unchanged,
            FuzzCell::Plausible(i) => {
                Cell::Text(PLAUSIBLE[usize::from(*i) % PLAUSIBLE.len()].to_string())
            }
            FuzzCell::Text(s) => Cell::Text(s.clone()),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum FuzzOp {
    Insert,
    Update,
    Delete,
}

#[derive(Debug, Arbitrary)]
enum FuzzImage {
    None,
    Key,
    Full,
}

#[derive(Debug, Arbitrary)]
struct FuzzRow {
    table: u8,
    op: FuzzOp,
    old_image: FuzzImage,
    /// Drop this column of the relation (a column dropped in the legacy table).
    drop_column: Option<u8>,
    /// Rotate the relation's column order.
    rotate: u8,
    extra_column: Option<String>,
    new: Vec<FuzzCell>,
    old: Vec<FuzzCell>,
    /// Keep the tuples exactly as long as the relation (otherwise a row-shape mismatch).
    exact_width: bool,
    commit_lsn: u64,
    xid: u32,
    seq: u32,
    commit_ts_micros: i64,
    snapshot: bool,
    message: Option<(bool, Vec<u8>)>,
}

fn mapper() -> &'static Mapper {
    static MAPPER: OnceLock<Mapper> = OnceLock::new();
    MAPPER.get_or_init(|| Mapper::from_toml(REFERENCE_MAPPING).expect("reference mapping is valid"))
}

fn tuple(cells: &[FuzzCell], width: usize, exact: bool) -> Vec<Cell> {
    let mut out: Vec<Cell> = cells.iter().map(FuzzCell::cell).collect();
    if exact {
        out.resize(width, Cell::Null);
    }
    out
}

fn change(row: &FuzzRow) -> RowChange {
    let specs = mapper().tables();
    let spec = &specs[usize::from(row.table) % specs.len()];
    let mut columns: Vec<String> = Vec::new();
    for c in spec.key_columns.iter().chain(&spec.mapped_columns) {
        if !columns.contains(c) {
            columns.push(c.clone());
        }
    }
    if let Some(extra) = &row.extra_column {
        columns.push(extra.clone());
    }
    if let Some(i) = row.drop_column
        && !columns.is_empty()
    {
        columns.remove(usize::from(i) % columns.len());
    }
    if !columns.is_empty() {
        let by = usize::from(row.rotate) % columns.len();
        columns.rotate_left(by);
    }
    let width = columns.len();
    let op = match row.op {
        FuzzOp::Insert => Op::Insert,
        FuzzOp::Update => Op::Update,
        FuzzOp::Delete => Op::Delete,
    };
    let old_image = match row.old_image {
        FuzzImage::None => OldImage::None,
        FuzzImage::Key => OldImage::Key,
        FuzzImage::Full => OldImage::Full,
    };
    let new = if op == Op::Delete {
        Vec::new()
    } else {
        tuple(&row.new, width, row.exact_width)
    };
    let old = if old_image == OldImage::None {
        Vec::new()
    } else {
        tuple(&row.old, width, row.exact_width)
    };
    RowChange {
        schema: spec.schema.clone(),
        table: spec.table.clone(),
        op,
        columns: Arc::from(columns),
        new,
        old,
        old_image,
        position: SourcePosition {
            commit_lsn: row.commit_lsn,
            xid: row.xid,
            seq: row.seq,
        },
        commit_ts_micros: row.commit_ts_micros,
        origin: if row.snapshot {
            Origin::Snapshot
        } else {
            Origin::Stream
        },
    }
}

fn check_encodable(events: &[acl::DomainEvent]) {
    let mut out = Vec::new();
    for event in events {
        out.clear();
        if let Err(e) = event.encode(SubjectStrategy::TopicName, &mut out) {
            panic!(
                "mapped {} for {} {} cannot be encoded: {e}",
                event.event_type(),
                event.aggregate_type(),
                event.aggregate_id()
            );
        }
    }
}

fuzz_target!(|row: FuzzRow| {
    let change = change(&row);
    match mapper().map(&change) {
        Ok(events) => check_encodable(&events),
        Err(e) => assert!(
            e.table().ends_with(change.table.as_str()),
            "a MapError names the row's table, not `{}`",
            e.table()
        ),
    }
    if let Some((right_prefix, content)) = &row.message {
        let prefix = if *right_prefix {
            mapper().message_prefix().unwrap_or("fig.outbox")
        } else {
            "other"
        };
        if let Ok(events) =
            mapper().map_message(prefix, content, change.position, change.commit_ts_micros)
        {
            check_encodable(&events);
        }
    }
});
