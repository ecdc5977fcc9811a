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
    reader
        .read_until("two OrderSubmitted events", CATCH_UP, |r| {
            order_ids(r, "OrderSubmitted").len() >= 2
        })
        .await;
    let submitted: Vec<&Received> = reader
        .received
        .iter()
        .filter(|r| {
            r.event
                .as_ref()
                .is_some_and(|e| e.event_type() == "OrderSubmitted")
        })
        .collect();
    assert_eq!(submitted[0].key, "42");
    assert_eq!(submitted[1].key, "43");
    let first = submitted[0].event.as_ref().expect("decoded");
    assert_eq!(header(submitted[0], "event_id"), first.envelope.event_id);
    assert_eq!(header(submitted[0], "event_type"), "OrderSubmitted");
    assert_eq!(
        header(submitted[0], "source_lsn"),
        cdc_bridge::checkpoint::format_lsn(first.envelope.source.commit_lsn)
    );
    assert_eq!(
        header(submitted[0], "source_xid"),
        first.envelope.source.xid.to_string()
    );
    assert_eq!(first.envelope.origin, contracts::Origin::Stream);
    // Both rows came from one legacy transaction: same commit LSN, consecutive positions.
    let second = submitted[1].event.as_ref().expect("decoded");
    assert_eq!(
        first.envelope.source.commit_lsn,
        second.envelope.source.commit_lsn
    );
    assert_eq!(first.envelope.source.seq + 1, second.envelope.source.seq);
}

fn event_types_for_key(received: &[Received], key: &str) -> Vec<String> {
    received
        .iter()
        .filter(|r| r.key == key)
        .filter_map(|r| r.event.as_ref())
        .map(|e| e.event_type().to_string())
        .collect()
}

/// Inserts, updates, deletes and a truncate of legacy rows become, in order per aggregate, the
/// domain events of the mapping; the truncate (which has no domain event) goes to the
/// dead-letter topic instead of vanishing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_update_delete_and_truncate_become_the_expected_events() {
    let setup = Setup::new("brops", "", "").await;
    let bridge = setup.start_bridge(0);
    setup.wait_streaming(&bridge).await;
    let db = &setup.legacy;
    insert_customer(db, "C7").await;
    insert_orders(db, "C7", &[42]).await;
    db.batch_execute(
        "INSERT INTO ord_ln (ord_no, ln_no, sku_cd, ord_qty, unit_prc_amt, curr_cd) VALUES (42, 1, 'SKU-1', 2, 10.00, 'CHF'), (42, 2, 'SKU-2', 1, 79.50, 'CHF');
         UPDATE ord_hdr SET ord_stat_cd = 'A' WHERE ord_no = 42;
         UPDATE ord_hdr SET ord_stat_cd = 'S' WHERE ord_no = 42;
         DELETE FROM ord_ln WHERE ord_no = 42 AND ln_no = 2;
         UPDATE cust_mstr SET city_nm = 'Basel', post_cd = '4000' WHERE cust_no = 'C7';
         TRUNCATE ord_ln;",
    )
    .await
    .expect("legacy changes");

    let expected = [
        "OrderSubmitted",
        "OrderLineAdded",
        "OrderLineAdded",
        "OrderAccepted",
        "OrderSecured",
        "OrderLineRemoved",
    ];
    let mut orders = setup.reader(&setup.topic("order"));
    orders
        .read_until("the order's six events", CATCH_UP, |r| {
            event_types_for_key(r, "42").len() >= expected.len()
        })
        .await;
    orders.read_to_end().await;
    assert_eq!(
        event_types_for_key(&orders.received, "42"),
        expected,
        "events of order 42, in order"
    );

    let mut customers = setup.reader(&setup.topic("customer"));
    customers
        .read_until("the customer's two events", CATCH_UP, |r| {
            event_types_for_key(r, "C7").len() >= 2
        })
        .await;
    assert_eq!(
        event_types_for_key(&customers.received, "C7"),
        ["CustomerRegistered", "CustomerAddressChanged"]
    );

    let mut dead = setup.reader(&setup.dead_letter_topic());
    dead.read_until("the truncate's dead letter", CATCH_UP, |r| !r.is_empty())
        .await;
    assert_eq!(header(&dead.received[0], "reason"), "truncate");
    assert_eq!(header(&dead.received[0], "table"), "public.ord_ln");
    assert!(!header(&dead.received[0], "lsn").is_empty());
}

/// A row the ACL rejects (a currency the contract cannot carry) goes to the dead-letter topic
/// with reason, table, key and LSN, and the rows after it still become events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_row_goes_to_the_dead_letter_topic_and_later_rows_still_flow() {
    let setup = Setup::new("brpoison", "", "").await;
    insert_customer(&setup.legacy, "C1").await;
    let bridge = setup.start_bridge(0);
    setup.wait_streaming(&bridge).await;
    setup
        .legacy
        .batch_execute(
            "INSERT INTO ord_hdr (ord_no, cust_no, cust_nm, ship_addr_ln1, ship_city_nm, ship_post_cd, ship_ctry_cd, ord_tot_amt, curr_cd)
             VALUES (7, 'C1', 'Ada', 'Main St 1', 'Bern', '3000', 'CH', 10.00, 'chf')",
        )
        .await
        .expect("poison row");
    insert_orders(&setup.legacy, "C1", &[8]).await;

    let mut orders = setup.reader(&setup.topic("order"));
    orders
        .read_until("the order after the poison row", CATCH_UP, |r| {
            order_ids(r, "OrderSubmitted").contains(&"8".to_string())
        })
        .await;
    orders.read_to_end().await;
    assert_eq!(
        order_ids(&orders.received, "OrderSubmitted"),
        ["8"],
        "the poison row has no event, the next one has"
    );

    let mut dead = setup.reader(&setup.dead_letter_topic());
    dead.read_until("the poison row's dead letter", CATCH_UP, |r| !r.is_empty())
        .await;
    let letter = &dead.received[0];
    assert_eq!(header(letter, "reason"), "bad_money");
    assert_eq!(header(letter, "table"), "public.ord_hdr");
    assert_eq!(header(letter, "key"), "7");
    assert!(
        cdc_bridge::checkpoint::parse_lsn(header(letter, "lsn")).is_some(),
        "LSN header: {:?}",
        letter.headers
    );
    let body: serde_json::Value =
        serde_json::from_slice(letter.value.as_deref().unwrap_or_default())
            .expect("dead letter body is JSON");
    assert_eq!(
        body["new"]["ord_no"], "7",
        "the row travels with its dead letter for repair"
    );
}

/// A column added to a legacy table while the bridge streams is picked up from the new Relation
/// message: rows before and after it are read right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_added_mid_stream_is_read_correctly() {
    let setup = Setup::new("brddl", "", "").await;
    insert_customer(&setup.legacy, "C1").await;
    let bridge = setup.start_bridge(0);
    setup.wait_streaming(&bridge).await;
    insert_orders(&setup.legacy, "C1", &[1]).await;
    setup
        .legacy
        .batch_execute("ALTER TABLE ord_hdr ADD COLUMN loyalty_tier text DEFAULT 'gold'")
        .await
        .expect("add column");
    setup
        .legacy
        .batch_execute(
            "INSERT INTO ord_hdr (ord_no, cust_no, cust_nm, ship_addr_ln1, ship_city_nm, ship_post_cd, ship_ctry_cd, ord_tot_amt, curr_cd, loyalty_tier)
             VALUES (2, 'C1', 'Grace Hopper', 'Main St 1', 'Bern', '3000', 'CH', 5.25, 'EUR', 'silver')",
        )
        .await
        .expect("insert after the DDL");

    let mut orders = setup.reader(&setup.topic("order"));
    orders
        .read_until("orders before and after the DDL", CATCH_UP, |r| {
            order_ids(r, "OrderSubmitted").len() >= 2
        })
        .await;
    let names: Vec<(String, String)> = orders
        .events()
        .iter()
        .filter_map(|e| match &e.payload {
            contracts::Payload::OrderSubmitted(p) => {
                Some((p.order_id.clone(), p.customer_name.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        names,
        [
            ("1".to_string(), "Ada Lovelace".to_string()),
            ("2".to_string(), "Grace Hopper".to_string())
        ]
    );
}

/// Outbox rows and `pg_logical_emit_message` outbox messages become `OutboxMessage` events on
/// the topic of their aggregate type (created on first use), the outbox row id as event id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_rows_and_logical_messages_become_outbox_events() {
    let setup = Setup::new("broutbox", "", "").await;
    let bridge = setup.start_bridge(0);
    setup.wait_streaming(&bridge).await;
    let id = "5a0c1d36-3b8e-4ad4-9a53-3b1f0d2a9c11";
    setup
        .legacy
        .batch_execute(&format!(
            "INSERT INTO evt_outbox (id, aggregate_type, aggregate_id, event_type, payload) VALUES ('{id}', 'invoice', 'INV-1', 'InvoiceIssued', '{{\"amount\": 10}}');
             SELECT pg_logical_emit_message(true, 'fig.outbox', '{{\"aggregate_type\":\"invoice\",\"aggregate_id\":\"INV-2\",\"event_type\":\"InvoiceIssued\",\"payload\":{{\"amount\":20}}}}');"
        ))
        .await
        .expect("outbox writes");
    let topic = setup.topic("invoice");
    wait_for_topic(&topic).await;
    let mut invoices = setup.reader(&topic);
    invoices
        .read_until("two outbox events", CATCH_UP, |r| {
            r.iter().filter(|x| x.event.is_some()).count() >= 2
        })
        .await;
    let events = invoices.events();
    assert!(events.iter().all(|e| e.event_type() == "OutboxMessage"));
    let from_row = events
        .iter()
        .find(|e| e.aggregate_id() == "INV-1")
        .expect("event of the outbox row");
    assert_eq!(
        from_row.envelope.event_id, id,
        "the outbox row id is the event id"
    );
    assert!(
        events.iter().any(|e| e.aggregate_id() == "INV-2"),
        "event of the logical message"
    );
}

async fn wait_for_topic(topic: &str) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let brokers = e2e::Stack::from_env().kafka_brokers;
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("metadata client");
    e2e::wait_for(
        &format!("topic {topic} created by the bridge"),
        CATCH_UP,
        || {
            let found = consumer
                .fetch_metadata(Some(topic), std::time::Duration::from_secs(2))
                .ok()
                .filter(|md| {
                    md.topics()
                        .iter()
                        .any(|t| t.name() == topic && !t.partitions().is_empty())
                });
            async move { found.map(drop) }
        },
    )
    .await;
}

/// `cdc-bridge check` says, one line per problem, what to run: here a table whose REPLICA
/// IDENTITY is too weak for its rules and a table the publication does not cover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_names_each_problem_with_the_command_that_fixes_it() {
    let setup = Setup::new("brcheck", "", "").await;
    setup
        .legacy
        .batch_execute(&format!(
            "ALTER TABLE ord_hdr REPLICA IDENTITY DEFAULT;
             CREATE PUBLICATION {} FOR TABLE ord_hdr, ord_ln, pmt_txn, inv_rsv, evt_outbox;",
            setup.prefix
        ))
        .await
        .expect("break the setup");
    let config = cdc_bridge::config::Config::load(&setup.config_path).expect("config");
    let mapper = acl::Mapper::load(&config.mapping.path).expect("mapping");
    let shared = cdc_bridge::session::Shared::new(
        config,
        mapper,
        cdc_bridge::observability::Telemetry::new(),
    );
    let lines: Vec<String> = cdc_bridge::preflight::check(&shared)
        .await
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines.iter().all(|l| !l.contains('\n')),
        "one line each: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("ALTER TABLE public.ord_hdr REPLICA IDENTITY FULL")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains(&format!(
            "ALTER PUBLICATION {} ADD TABLE public.cust_mstr",
            setup.prefix
        ))),
        "{lines:#?}"
    );
}
