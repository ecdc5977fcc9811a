//! Fixture rows of the reference legacy schema: the column order is read from
//! `deploy/legacy/schema.sql`, so the fixtures break when the schema and the mapping drift apart.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use acl::{Cell, Mapper, OldImage, Op, Origin, RowChange, SourcePosition};

pub const SCHEMA_SQL: &str = include_str!("../../deploy/legacy/schema.sql");
pub const MAPPING: &str = include_str!("../mappings/order_to_cash.toml");

pub static MAPPER: LazyLock<Mapper> =
    LazyLock::new(|| Mapper::from_toml(MAPPING).unwrap_or_else(|e| panic!("{e}: {e:?}")));

/// Columns of every table in schema.sql, in order, with its replica identity.
pub struct LegacyTable {
    pub columns: Arc<[String]>,
    pub replica_identity_full: bool,
}

pub static LEGACY: LazyLock<BTreeMap<String, LegacyTable>> =
    LazyLock::new(|| parse_schema(SCHEMA_SQL));

fn parse_schema(sql: &str) -> BTreeMap<String, LegacyTable> {
    let mut tables = BTreeMap::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in sql.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("create table ") {
            let name = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            current = Some((name, Vec::new()));
        } else if line.starts_with(");") {
            if let Some((name, columns)) = current.take() {
                tables.insert(
                    name,
                    LegacyTable {
                        columns: columns.into(),
                        replica_identity_full: false,
                    },
                );
            }
        } else if let Some((_, columns)) = current.as_mut() {
            let first = line.split_whitespace().next().unwrap_or_default();
            let is_column = !first.is_empty()
                && !first.starts_with("--")
                && !["primary", "constraint", "check", "unique", "foreign"].contains(&first)
                && first
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if is_column {
                columns.push(first.to_owned());
            }
        } else if let Some(rest) = line.strip_prefix("alter table ")
            && rest.ends_with("replica identity full;")
        {
            let name = rest.split_whitespace().next().unwrap_or_default();
            if let Some(t) = tables.get_mut(name) {
                t.replica_identity_full = true;
            }
        }
    }
    tables
}

pub const COMMIT_TS: i64 = 1_796_317_700_000_000;

/// A position; `seq` varies per fixture so ids differ.
pub fn position(seq: u32) -> SourcePosition {
    SourcePosition {
        commit_lsn: 0x0000_0001_6B37_4D48,
        xid: 7_301,
        seq,
    }
}

/// A full tuple of `table` with the given values; other columns NULL.
pub fn tuple(table: &str, values: &[(&str, &str)]) -> Vec<Cell> {
    let columns = &LEGACY[table].columns;
    for (name, _) in values {
        assert!(
            columns.iter().any(|c| c == name),
            "fixture column {table}.{name} is not in schema.sql"
        );
    }
    columns
        .iter()
        .map(|c| match values.iter().find(|(n, _)| n == c) {
            Some((_, "<unchanged>")) => Cell::Unchanged,
            Some((_, v)) => Cell::Text((*v).to_owned()),
            None => Cell::Null,
        })
        .collect()
}

/// Replaces some values of a tuple (for the new image of an update).
pub fn with(
    table: &str,
    base: &[(&'static str, &'static str)],
    changes: &[(&'static str, &'static str)],
) -> Vec<(&'static str, &'static str)> {
    let _ = table;
    let mut out: Vec<(&str, &str)> = base
        .iter()
        .filter(|(n, _)| !changes.iter().any(|(c, _)| c == n))
        .copied()
        .collect();
    out.extend_from_slice(changes);
    out
}

pub fn insert(table: &str, values: &[(&str, &str)]) -> RowChange {
    change(
        table,
        Op::Insert,
        tuple(table, values),
        Vec::new(),
        OldImage::None,
    )
}

pub fn update_full(table: &str, old: &[(&str, &str)], new: &[(&str, &str)]) -> RowChange {
    change(
        table,
        Op::Update,
        tuple(table, new),
        tuple(table, old),
        OldImage::Full,
    )
}

pub fn change(
    table: &str,
    op: Op,
    new: Vec<Cell>,
    old: Vec<Cell>,
    old_image: OldImage,
) -> RowChange {
    RowChange {
        schema: "public".into(),
        table: table.into(),
        op,
        columns: Arc::clone(&LEGACY[table].columns),
        new,
        old,
        old_image,
        position: position(4),
        commit_ts_micros: COMMIT_TS,
        origin: Origin::Stream,
    }
}

pub const ORDER: &[(&str, &str)] = &[
    ("ord_no", "100001"),
    ("cust_no", "C-000042"),
    ("cust_nm", "Ada Lovelace"),
    ("cust_email", "ada@example.com"),
    ("ship_addr_ln1", "12 St James's Square"),
    ("ship_city_nm", "London"),
    ("ship_post_cd", "SW1Y 4JH"),
    ("ship_ctry_cd", "GB"),
    ("ord_stat_cd", "N"),
    ("chnl_cd", "W"),
    ("ord_tot_amt", "129.50"),
    ("curr_cd", "GBP"),
    ("ord_dt", "2026-12-03"),
    ("crt_ts", "2026-12-03 17:08:20.123456"),
    ("upd_ts", "2026-12-03 17:08:20.123456"),
    ("upd_usr_id", "WEBSHOP"),
];

/// An ord_hdr update from `from` to `to` status, with the full old image.
pub fn status_change(from: &'static str, to: &'static str) -> RowChange {
    let old = with("ord_hdr", ORDER, &[("ord_stat_cd", from)]);
    let new = with(
        "ord_hdr",
        ORDER,
        &[("ord_stat_cd", to), ("upd_ts", "2026-12-03 17:09:00")],
    );
    update_full("ord_hdr", &old, &new)
}
