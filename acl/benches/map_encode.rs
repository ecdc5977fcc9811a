//! Mapping plus Avro encoding of a typical order-header status change (`ord_hdr` 'A' → 'S',
//! REPLICA IDENTITY FULL, yielding `OrderSecured` written with the `fig.events.OrderEvent`
//! aggregate writer), on one core. Target: ≥ 500,000 events/s.
//!
//! Run: `cargo bench -p acl --bench map_encode`. Besides the end-to-end figure it measures the
//! parts (map only, encode only) and apache-avro's `Value` path for comparison.

use std::hint::black_box;
use std::sync::Arc;

use acl::{Cell, Mapper, OldImage, Op, Origin, RowChange, SourcePosition};
use contracts::SubjectStrategy;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const MAPPING: &str = include_str!("../mappings/order_to_cash.toml");

/// `ord_hdr` as in deploy/legacy/schema.sql, with values of a typical order.
const ORDER: [(&str, &str); 17] = [
    ("ord_no", "100001"),
    ("cust_no", "C-000042"),
    ("cust_nm", "Ada Lovelace"),
    ("cust_email", "ada@example.com"),
    ("ship_addr_ln1", "12 St James's Square"),
    ("ship_city_nm", "London"),
    ("ship_post_cd", "SW1Y 4JH"),
    ("ship_ctry_cd", "GB"),
    ("ord_stat_cd", "A"),
    ("chnl_cd", "W"),
    ("ord_tot_amt", "129.50"),
    ("curr_cd", "GBP"),
    ("excp_rsn_txt", ""),
    ("ord_dt", "2026-12-03"),
    ("crt_ts", "2026-12-03 17:08:20.123456"),
    ("upd_ts", "2026-12-03 17:08:20.123456"),
    ("upd_usr_id", "WEBSHOP"),
];

fn status_change() -> RowChange {
    let columns: Arc<[String]> = ORDER.iter().map(|(c, _)| (*c).to_owned()).collect();
    let cells = |status: &str, upd_ts: &str| -> Vec<Cell> {
        ORDER
            .iter()
            .map(|(c, v)| match *c {
                "ord_stat_cd" => Cell::Text(status.to_owned()),
                "upd_ts" => Cell::Text(upd_ts.to_owned()),
                "excp_rsn_txt" => Cell::Null,
                _ => Cell::Text((*v).to_owned()),
            })
            .collect()
    };
    RowChange {
        schema: "public".into(),
        table: "ord_hdr".into(),
        op: Op::Update,
        columns,
        new: cells("S", "2026-12-03 17:09:00.5"),
        old: cells("A", "2026-12-03 17:08:20.123456"),
        old_image: OldImage::Full,
        position: SourcePosition {
            commit_lsn: 0x16_B374_D848,
            xid: 7301,
            seq: 0,
        },
        commit_ts_micros: 1_796_317_740_500_000,
        origin: Origin::Stream,
    }
}

fn map_encode(c: &mut Criterion) {
    let mapper = Mapper::from_toml(MAPPING).unwrap_or_else(|e| panic!("mapping: {e}"));
    let change = status_change();
    let events = mapper.map(&change).unwrap_or_else(|e| panic!("map: {e}"));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type(), "OrderSecured");
    let event = events[0].clone();

    let mut group = c.benchmark_group("ord_hdr_status_change");
    group.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(256);
    group.bench_function("map_and_encode", |b| {
        b.iter(|| {
            out.clear();
            for event in mapper.map(black_box(&change)).unwrap_or_default() {
                let _ = event.encode(SubjectStrategy::TopicName, &mut out);
            }
            black_box(out.len())
        })
    });
    group.bench_function("map_only", |b| {
        b.iter(|| mapper.map(black_box(&change)).map(|e| e.len()))
    });
    group.bench_function("encode_only", |b| {
        b.iter(|| {
            out.clear();
            let _ = black_box(&event).encode(SubjectStrategy::TopicName, &mut out);
            black_box(out.len())
        })
    });
    let writer = event.writer(SubjectStrategy::TopicName);
    group.bench_function("encode_via_apache_avro_value", |b| {
        b.iter(|| {
            apache_avro::to_avro_datum(
                writer.schema,
                black_box(&event).to_value(SubjectStrategy::TopicName),
            )
            .map(|d| d.len())
        })
    });
    group.finish();
}

criterion_group!(benches, map_encode);
criterion_main!(benches);
