//! The logical replication connection (pgoutput over the streaming replication protocol, via
//! `pg_walstream`'s raw frames and our own decoder so unchanged TOAST stays visible).
//!
//! Acknowledgement is explicit: [`WalSource::acknowledge`] is the only way the slot's
//! `confirmed_flush_lsn` moves, and the session calls it only with positions Kafka has committed
//! (see [`crate::checkpoint`]).

use pg_walstream::{
    CancellationToken, LogicalReplicationParser, LogicalReplicationStream, ReplicationStreamConfig,
    RetryConfig, StreamingMode,
};
use std::time::Duration;

use super::decode::{Decoder, WalEvent};
use crate::checkpoint::format_lsn;
use crate::error::BridgeError;

/// pgoutput protocol version: 1 is enough without streaming of in-progress transactions, which
/// the bridge does not use (a transaction is read only once it committed).
const PROTOCOL_VERSION: u32 = 1;

/// What the slot looked like when the stream opened.
#[derive(Debug, Clone)]
pub struct SlotOpening {
    /// The exported snapshot, when this stream created the slot with one.
    pub exported_snapshot: Option<String>,
}

/// An open replication stream, positioned at the slot's confirmed flush.
pub struct WalSource {
    stream: LogicalReplicationStream,
    parser: LogicalReplicationParser,
    decoder: Decoder,
    cancel: CancellationToken,
    acknowledged: u64,
}

impl WalSource {
    /// Connects in replication mode. Creates the slot if missing (exporting a snapshot when
    /// `export_snapshot`); call [`WalSource::start`] to begin streaming.
    pub async fn connect(
        replication_conn: &str,
        slot: &str,
        publication: &str,
        feedback_interval: Duration,
        export_snapshot: bool,
    ) -> Result<(WalSource, SlotOpening), BridgeError> {
        let options = pg_walstream::ReplicationSlotOptions {
            snapshot: Some(if export_snapshot { "export" } else { "nothing" }.to_string()),
            ..Default::default()
        };
        let config = ReplicationStreamConfig::builder(slot, publication)
            .with_protocol_version(PROTOCOL_VERSION)
            .with_streaming_mode(StreamingMode::Off)
            .with_messages(true)
            .with_feedback_interval(feedback_interval)
            .with_connection_timeout(Duration::from_secs(10))
            .with_retry_config(RetryConfig::default())
            .with_slot_options(options);
        let mut stream = LogicalReplicationStream::new(replication_conn, config)
            .await
            .map_err(|e| BridgeError::replication("connecting in replication mode", e))?;
        stream.ensure_replication_slot().await.map_err(|e| {
            BridgeError::replication(format!("creating or finding slot `{slot}`"), e)
        })?;
        let exported_snapshot = stream.exported_snapshot_name().map(str::to_string);
        Ok((
            WalSource {
                stream,
                parser: LogicalReplicationParser::with_protocol_version(PROTOCOL_VERSION),
                decoder: Decoder::new(),
                cancel: CancellationToken::new(),
                acknowledged: 0,
            },
            SlotOpening { exported_snapshot },
        ))
    }

    /// Starts streaming from the slot's confirmed flush (or `from`, when later). Fails with
    /// "is active for PID" when another instance holds the slot.
    pub async fn start(&mut self, from: Option<u64>) -> Result<(), BridgeError> {
        self.stream
            .start(from)
            .await
            .map_err(|e| BridgeError::replication("starting replication", e))
    }

    /// The next decoded event. Relation, Type and Origin messages update the decoder and are
    /// not returned. Cancel-safe: a dropped call loses no data (frames stay in the connection's
    /// buffer).
    pub async fn next(&mut self) -> Result<WalEvent, BridgeError> {
        loop {
            let raw = self
                .stream
                .next_raw_event(&self.cancel)
                .await
                .map_err(|e| BridgeError::replication("reading the stream", e))?;
            if raw.data.is_empty() {
                continue;
            }
            let lsn = raw.wal_end.value();
            let parsed = self.parser.parse_wal_message_bytes(raw.data).map_err(|e| {
                BridgeError::Protocol {
                    lsn: format_lsn(lsn),
                    what: e.to_string(),
                }
            })?;
            let event = self
                .decoder
                .decode(parsed.message, raw.server_time)
                .map_err(|e| BridgeError::Protocol {
                    lsn: format_lsn(lsn),
                    what: e.0,
                })?;
            if let Some(event) = event {
                return Ok(event);
            }
        }
    }

    /// Whether a legacy transaction is open on the stream.
    pub fn in_transaction(&self) -> bool {
        self.decoder.in_transaction()
    }

    /// The newest position the server told us about (frames and keepalives).
    pub fn received_lsn(&self) -> u64 {
        self.stream.current_lsn()
    }

    /// The last position acknowledged.
    pub fn acknowledged_lsn(&self) -> u64 {
        self.acknowledged
    }

    /// Acknowledges `lsn` when it is new, and otherwise repeats the last acknowledgement: either
    /// way PostgreSQL gets a status update, which it counts as a sign of life
    /// (`wal_sender_timeout`) while the bridge reads nothing.
    pub async fn keep_alive(&mut self, lsn: u64) -> Result<(), BridgeError> {
        if lsn > self.acknowledged {
            return self.acknowledge(lsn).await;
        }
        self.stream
            .send_feedback()
            .await
            .map_err(|e| BridgeError::replication("sending a status update", e))
    }

    /// Tells PostgreSQL it may forget everything up to `lsn` (flush and apply), now.
    pub async fn acknowledge(&mut self, lsn: u64) -> Result<(), BridgeError> {
        if lsn <= self.acknowledged {
            return Ok(());
        }
        self.stream.shared_lsn_feedback.update_applied_lsn(lsn);
        self.stream
            .send_feedback()
            .await
            .map_err(|e| BridgeError::replication("acknowledging progress", e))?;
        self.acknowledged = lsn;
        tracing::debug!(lsn = %format_lsn(lsn), "acknowledged to PostgreSQL");
        Ok(())
    }
}
