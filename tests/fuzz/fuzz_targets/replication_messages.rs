//! The bridge's replication message handling on arbitrary bytes: each frame goes through
//! `pg_walstream`'s pgoutput parser and the bridge's `source::Decoder` (Relation cache, open
//! transaction), exactly as `WalSource::next` does, and every decoded row change through the
//! reference mapping. Out-of-protocol input must be an error, never a panic.
//!
//! Input layout: frames of `[u16 big-endian length][pgoutput message]`; the first 8 bytes are the
//! server clock in µs.

#![no_main]

use bytes::Bytes;
use cdc_bridge::source::{Decoder, WalEvent};
use libfuzzer_sys::fuzz_target;
use pg_walstream::LogicalReplicationParser;
use std::sync::OnceLock;

/// The protocol version the bridge asks for (`source::stream`).
const PROTOCOL_VERSION: u32 = 1;
const REFERENCE_MAPPING: &str = include_str!("../../../acl/mappings/order_to_cash.toml");

fn mapper() -> &'static acl::Mapper {
    static MAPPER: OnceLock<acl::Mapper> = OnceLock::new();
    MAPPER.get_or_init(|| {
        acl::Mapper::from_toml(REFERENCE_MAPPING).expect("reference mapping is valid")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((clock, mut rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let server_time_micros = i64::from_be_bytes(*clock);
    let mut parser = LogicalReplicationParser::with_protocol_version(PROTOCOL_VERSION);
    let mut decoder = Decoder::new();
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len)).min(tail.len());
        let (frame, tail) = tail.split_at(len);
        rest = tail;
        if frame.is_empty() {
            continue;
        }
        let Ok(parsed) = parser.parse_wal_message_bytes(Bytes::copy_from_slice(frame)) else {
            continue;
        };
        match decoder.decode(parsed.message, server_time_micros) {
            Ok(Some(WalEvent::Change(change))) => {
                let _ = mapper().map(&change);
            }
            Ok(Some(WalEvent::Message {
                prefix,
                content,
                position,
                ts_micros,
                ..
            })) => {
                let _ = mapper().map_message(&prefix, &content, position, ts_micros);
            }
            Ok(_) => {}
            Err(e) => assert!(!e.0.is_empty(), "a decode error must say what is wrong"),
        }
    }
});
