//! Row changes in, domain events out: what a downstream consumer sees.

use tokio_postgres::Client;

use super::fixture::{CATCH_UP, Received, Setup};

/// Inserts customer `cust_no`.
pub async fn insert_customer(db: &Client, cust_no: &str) {
    db.execute(
        "INSERT INTO cust_mstr (cust_no, cust_nm, email_addr, addr_ln1, city_nm, post_cd, ctry_cd) \
         VALUES ($1, 'Ada Lovelace', 'ada@example.com', 'Main St 1', 'Bern', '3000', 'CH')",
        &[&cust_no],
    )
    .await
    .expect("insert customer");
}

/// Inserts one order per id for `cust_no`, all in one legacy transaction.
pub async fn insert_orders(db: &Client, cust_no: &str, ids: &[i64]) {
    db.execute(
        "INSERT INTO ord_hdr (ord_no, cust_no, cust_nm, cust_email, ship_addr_ln1, ship_city_nm, ship_post_cd, ship_ctry_cd, ord_tot_amt, curr_cd) \
         SELECT id, $1, 'Ada Lovelace', 'ada@example.com', 'Main St 1', 'Bern', '3000', 'CH', 99.50, 'CHF' FROM unnest($2::bigint[]) AS id",
        &[&cust_no, &ids],
    )
    .await
    .expect("insert orders");
}

/// Aggregate ids of the events of `event_type` read so far, in reading order.
pub fn order_ids(received: &[Received], event_type: &str) -> Vec<String> {
    received
        .iter()
        .filter_map(|r| r.event.as_ref())
        .filter(|e| e.event_type() == event_type)
        .map(|e| e.aggregate_id().to_string())
        .collect()
}

fn header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.headers.get(name).map_or("", String::as_str)
}

/// An inserted order becomes an `OrderSubmitted` event a Confluent-style consumer can decode,
/// keyed by the order id, with event id, type, source LSN and transaction id in its headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inserted_order_becomes_a_decodable_order_submitted_event() {
    let setup = Setup::new("brflow", "", "").await;
    insert_customer(&setup.legacy, "C1").await;
    let bridge = setup.start_bridge(0);
    setup.wait_streaming(&bridge).await;
    insert_orders(&setup.legacy, "C1", &[42, 43]).await;

    let mut reader = setup.reader(&setup.topic("order"));
    reader.read_until("two OrderSubmitted events", CATCH_UP, |r| order_ids(r, "OrderSubmitted").len() >= 2).await;
    let submitted: Vec<&Received> = reader.received.iter().filter(|r| r.event.as_ref().is_some_and(|e| e.event_type() == "OrderSubmitted")).collect();
    assert_eq!(submitted[0].key, "42");
    assert_eq!(submitted[1].key, "43");
    let first = submitted[0].event.as_ref().expect("decoded");
    assert_eq!(header(submitted[0], "event_id"), first.envelope.event_id);
    assert_eq!(header(submitted[0], "event_type"), "OrderSubmitted");
    assert_eq!(header(submitted[0], "source_lsn"), cdc_bridge::checkpoint::format_lsn(first.envelope.source.commit_lsn));
    assert_eq!(header(submitted[0], "source_xid"), first.envelope.source.xid.to_string());
    assert_eq!(first.envelope.origin, contracts::Origin::Stream);
    // Both rows came from one legacy transaction: same commit LSN, consecutive positions.
    let second = submitted[1].event.as_ref().expect("decoded");
    assert_eq!(first.envelope.source.commit_lsn, second.envelope.source.commit_lsn);
    assert_eq!(first.envelope.source.seq + 1, second.envelope.source.seq);
}
