//! Drives legacy transactions into Kafka transactions: the skip rule, batching, and the commit
//! that carries the progress record. The rule it implements is written, with its diagram, in
//! [`crate::checkpoint`].
//!
//! Rows are produced into the open Kafka transaction as they arrive, so a million-row legacy
//! transaction never sits in memory. Several small legacy transactions share one Kafka
//! transaction (group commit): it is committed at a legacy commit boundary as soon as no more
//! input is waiting, or once the batch is `max_batch_latency` old or holds `max_batch_rows`
//! rows. Whatever arrives while a commit is in flight forms the next batch, so batches grow
//! with the load by themselves and a quiet stream is never held back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use acl::{DomainEvent, MapError, Op, RowChange, SourcePosition, TableSpec};
use tokio::sync::{mpsc, watch};

use super::producer::TransactionalProducer;
use super::record::{self, OutgoingRecord, Rejection};
use super::topics::{self, TopicSpec};
use crate::checkpoint::{Checkpoint, Progress, TableProgress};
use crate::config::HEARTBEAT_PREFIX;
use crate::error::BridgeError;
use crate::session::Shared;
use crate::source::WalEvent;

/// Chunks of events taken from the reader's channel at once.
const RECEIVE_BULK: usize = 16;

/// Publishes one session's stream; owns the transactional producer.
pub struct Publisher {
    shared: Arc<Shared>,
    /// table → [(schema, index into the mapper's tables)]
    tables: HashMap<String, Vec<(String, usize)>>,
    producer: TransactionalProducer,
    checkpoint: Checkpoint,
    batch: Batch,
    txn: Option<OpenTxn>,
    datum: Vec<u8>,
    record_progress: bool,
    /// aggregate type → its topic (created when missing and allowed).
    topics: HashMap<String, Arc<str>>,
    /// (topic address, writer schema address) → registry id: one look-up per pair and session.
    schema_ids: HashMap<(usize, usize), u32>,
    /// Per mapped table (mapper index): (commit LSN, commit time) of its newest published
    /// change, written into every progress record.
    table_marks: Vec<Option<(u64, i64)>>,
}

#[derive(Default)]
struct Batch {
    started: Option<Instant>,
    rows: usize,
    legacy_txns: u64,
    last: Option<Checkpoint>,
    commit_ts_micros: Vec<i64>,
}

struct OpenTxn {
    skip: bool,
}

impl Publisher {
    /// A publisher that resumes after `progress` (its checkpoint and per-table marks).
    pub fn new(shared: Arc<Shared>, producer: TransactionalProducer, progress: Progress) -> Self {
        let mut tables: HashMap<String, Vec<(String, usize)>> = HashMap::new();
        for (i, t) in shared.mapper.tables().iter().enumerate() {
            tables
                .entry(t.table.clone())
                .or_default()
                .push((t.schema.clone(), i));
        }
        let table_marks = shared
            .mapper
            .tables()
            .iter()
            .map(|t| {
                let name = format!("{}.{}", t.schema, t.table);
                progress
                    .tables
                    .iter()
                    .find(|m| m.table == name)
                    .map(|m| (m.commit_lsn, m.commit_ts_micros))
            })
            .collect();
        Publisher {
            shared,
            tables,
            producer,
            checkpoint: progress.checkpoint,
            table_marks,
            batch: Batch::default(),
            txn: None,
            datum: Vec::with_capacity(1024),
            record_progress: true,
            topics: HashMap::new(),
            schema_ids: HashMap::new(),
        }
    }

    /// A publisher for an on-demand re-snapshot beside a streaming bridge: it must not move the
    /// streaming bridge's checkpoint.
    pub fn without_progress(mut self) -> Self {
        self.record_progress = false;
        self
    }

    /// Consumes `input` until it closes, publishing every transaction after the checkpoint and
    /// sending each committed end LSN on `acked`. On error the open Kafka transaction is
    /// aborted; nothing of it becomes visible, and nothing of it was acknowledged.
    pub async fn run(
        mut self,
        mut input: mpsc::Receiver<Vec<WalEvent>>,
        acked: watch::Sender<u64>,
    ) -> Result<(), BridgeError> {
        let result = self.pump(&mut input, &acked).await;
        if result.is_err()
            && let Err(e) = self.producer.abort().await
        {
            tracing::warn!(error = %e, "aborting the open Kafka transaction failed; it will time out or be fenced");
        }
        result
    }

    async fn pump(
        &mut self,
        input: &mut mpsc::Receiver<Vec<WalEvent>>,
        acked: &watch::Sender<u64>,
    ) -> Result<(), BridgeError> {
        let mut bulk = Vec::with_capacity(RECEIVE_BULK);
        loop {
            // Taking chunks in bulk wakes the reader once per bulk rather than once per chunk.
            if input.recv_many(&mut bulk, RECEIVE_BULK).await == 0 {
                return match self.txn {
                    // The reader stopped inside a legacy transaction: abort what is open.
                    Some(_) => Err(BridgeError::Shutdown),
                    None => self.commit(acked, true).await,
                };
            }
            for event in bulk.drain(..).flatten() {
                self.handle(event, acked).await?;
            }
            // Caught up at a legacy commit boundary: nothing else is waiting, so holding the
            // batch open could only add latency. What arrives during this commit forms the
            // next batch (group commit); under a backlog the input never runs dry and the
            // latency and row bounds cut the batches instead.
            if self.txn.is_none() && input.is_empty() {
                self.commit(acked, true).await?;
            }
        }
    }

    async fn handle(
        &mut self,
        event: WalEvent,
        acked: &watch::Sender<u64>,
    ) -> Result<(), BridgeError> {
        match event {
            WalEvent::Begin { final_lsn, .. } => {
                let skip = self.checkpoint.covers(final_lsn);
                if !skip {
                    if self.batch.last.is_some() && self.batch_is_old() {
                        self.commit(acked, false).await?;
                    }
                    self.open_batch()?;
                }
                self.txn = Some(OpenTxn { skip });
            }
            WalEvent::Change(change) => {
                if !self.skipping() {
                    self.publish_change(&change).await?;
                }
            }
            WalEvent::Truncate { tables, position } => {
                if !self.skipping() {
                    for (schema, table) in tables {
                        if self.spec(&schema, &table).is_some() {
                            let rejection = Rejection {
                                reason: "truncate",
                                table: format!("{schema}.{table}"),
                                key: String::new(),
                                column: None,
                                error: "TRUNCATE of a mapped table has no domain event; downstream state may need a re-snapshot".into(),
                                position,
                            };
                            self.dead_letter(&rejection, b"{}".to_vec()).await?;
                        }
                    }
                }
            }
            WalEvent::Message {
                transactional,
                prefix,
                content,
                position,
                ts_micros,
            } => {
                if prefix == HEARTBEAT_PREFIX {
                    return Ok(());
                }
                if !transactional {
                    if self.checkpoint.covers(position.commit_lsn)
                        || self.shared.mapper.message_prefix() != Some(prefix.as_str())
                    {
                        // Nothing of ours: the position may be acknowledged once nothing before
                        // it waits for a Kafka commit.
                        if self.batch.last.is_none() {
                            acked.send_replace(position.commit_lsn);
                        }
                        return Ok(());
                    }
                    self.open_batch()?;
                    self.publish_message(&prefix, &content, position, ts_micros)
                        .await?;
                    self.complete(position.commit_lsn, position.commit_lsn, ts_micros, acked)
                        .await?;
                } else if !self.skipping()
                    && self.shared.mapper.message_prefix() == Some(prefix.as_str())
                {
                    self.publish_message(&prefix, &content, position, ts_micros)
                        .await?;
                }
            }
            WalEvent::Commit {
                commit_lsn,
                end_lsn,
                commit_ts_micros,
            } => {
                let txn = self.txn.take().ok_or_else(|| BridgeError::Protocol {
                    lsn: crate::checkpoint::format_lsn(commit_lsn),
                    what: "COMMIT without BEGIN".into(),
                })?;
                if txn.skip {
                    self.shared.telemetry.transaction_skipped(commit_lsn);
                    if self.batch.last.is_none() {
                        acked.send_replace(end_lsn);
                    }
                } else {
                    self.complete(commit_lsn, end_lsn, commit_ts_micros, acked)
                        .await?;
                }
            }
        }
        Ok(())
    }

    fn spec(&self, schema: &str, table: &str) -> Option<&TableSpec> {
        self.spec_in(&self.shared, schema, table)
    }

    fn spec_in<'s>(&self, shared: &'s Shared, schema: &str, table: &str) -> Option<&'s TableSpec> {
        shared.mapper.tables().get(self.spec_index(schema, table)?)
    }

    fn spec_index(&self, schema: &str, table: &str) -> Option<usize> {
        let (_, i) = self.tables.get(table)?.iter().find(|(s, _)| s == schema)?;
        Some(*i)
    }

    /// The progress record's content: the checkpoint and every table's newest mark.
    fn progress(&self, checkpoint: Checkpoint) -> Progress {
        let tables = self
            .shared
            .mapper
            .tables()
            .iter()
            .zip(&self.table_marks)
            .filter_map(|(spec, mark)| {
                mark.map(|(commit_lsn, commit_ts_micros)| TableProgress {
                    table: format!("{}.{}", spec.schema, spec.table),
                    commit_lsn,
                    commit_ts_micros,
                })
            })
            .collect();
        Progress { checkpoint, tables }
    }

    fn skipping(&self) -> bool {
        self.txn.as_ref().is_none_or(|t| t.skip)
    }

    fn open_batch(&mut self) -> Result<(), BridgeError> {
        if !self.producer.is_open() {
            self.producer.begin()?;
            self.batch.started = Some(Instant::now());
        }
        Ok(())
    }

    /// A legacy transaction is complete in the open Kafka transaction; commit if a bound is hit.
    async fn complete(
        &mut self,
        commit_lsn: u64,
        end_lsn: u64,
        commit_ts_micros: i64,
        acked: &watch::Sender<u64>,
    ) -> Result<(), BridgeError> {
        self.batch.last = Some(Checkpoint {
            commit_lsn,
            end_lsn,
        });
        self.batch.legacy_txns += 1;
        self.batch.commit_ts_micros.push(commit_ts_micros);
        if self.batch_is_old() || self.batch.rows >= self.shared.config.kafka.max_batch_rows {
            self.commit(acked, false).await?;
        }
        Ok(())
    }

    fn batch_is_old(&self) -> bool {
        self.batch
            .started
            .is_some_and(|s| s.elapsed() >= self.shared.config.kafka.max_batch_latency)
    }

    /// Writes the progress record into the open transaction, commits, then acknowledges.
    /// `caught_up`: the input was drained (see [`TransactionalProducer::commit`]).
    async fn commit(
        &mut self,
        acked: &watch::Sender<u64>,
        caught_up: bool,
    ) -> Result<(), BridgeError> {
        let Some(last) = self.batch.last else {
            return Ok(());
        };
        if self.record_progress {
            let progress = record::progress(
                &self.shared.config.kafka.progress_topic,
                &self.shared.config.postgres.slot,
                &self.progress(last),
            );
            self.producer.send(&progress).await?;
        }
        let committing = Instant::now();
        self.producer.commit(caught_up).await?;
        let commit_seconds = committing.elapsed().as_secs_f64();
        self.checkpoint = last;
        let now = now_micros();
        let ages: Vec<f64> = self
            .batch
            .commit_ts_micros
            .iter()
            .map(|ts| (now - ts).max(0) as f64 / 1e6)
            .collect();
        self.shared.telemetry.kafka_committed(
            self.batch.legacy_txns,
            last.commit_lsn,
            commit_seconds,
            &ages,
        );
        self.batch = Batch::default();
        acked.send_replace(last.end_lsn);
        Ok(())
    }

    async fn publish_change(&mut self, change: &RowChange) -> Result<(), BridgeError> {
        let shared = Arc::clone(&self.shared);
        let Some(index) = self.spec_index(&change.schema, &change.table) else {
            tracing::debug!(table = %change.table, "change to a table outside the mapping");
            return Ok(());
        };
        let Some(spec) = shared.mapper.tables().get(index) else {
            return Ok(());
        };
        self.batch.rows += 1;
        // Committed (or aborted) with everything this change produces below.
        if let Some(mark) = self.table_marks.get_mut(index) {
            *mark = Some((change.position.commit_lsn, change.commit_ts_micros));
        }
        if spec.is_outbox && change.op != Op::Insert {
            tracing::warn!(table = %change.table, op = ?change.op, lsn = %crate::checkpoint::format_lsn(change.position.commit_lsn), "update or delete of an outbox row ignored");
            return Ok(());
        }
        match self.shared.mapper.map(change) {
            Ok(events) => {
                for event in &events {
                    if let Err(rejection) = self.publish_event(event).await? {
                        let rejection = Rejection {
                            table: format!("{}.{}", change.schema, change.table),
                            key: record::row_key(change, &spec.key_columns),
                            ..rejection
                        };
                        self.dead_letter(&rejection, record::row_body(change))
                            .await?;
                    } else if change.op == Op::Delete && self.shared.config.kafka.tombstones {
                        let topic = self.topic(event.aggregate_type()).await?;
                        self.producer
                            .send(&record::tombstone(&topic, event.aggregate_id()))
                            .await?;
                    }
                }
            }
            Err(e) => {
                let rejection = map_rejection(&e, change.position);
                self.dead_letter(&rejection, record::row_body(change))
                    .await?;
            }
        }
        Ok(())
    }

    async fn publish_message(
        &mut self,
        prefix: &str,
        content: &[u8],
        position: SourcePosition,
        ts_micros: i64,
    ) -> Result<(), BridgeError> {
        self.batch.rows += 1;
        match self
            .shared
            .mapper
            .map_message(prefix, content, position, ts_micros)
        {
            Ok(events) => {
                for event in &events {
                    if let Err(rejection) = self.publish_event(event).await? {
                        let rejection = Rejection {
                            table: prefix.to_string(),
                            ..rejection
                        };
                        self.dead_letter(&rejection, content.to_vec()).await?;
                    }
                }
            }
            Err(e) => {
                let rejection = map_rejection(&e, position);
                self.dead_letter(&rejection, content.to_vec()).await?;
            }
        }
        Ok(())
    }

    /// Encodes and produces one event. The outer error stops the session (Kafka, registry); the
    /// inner one is a rejection for the dead-letter topic (the encoder refused the event).
    async fn publish_event(
        &mut self,
        event: &DomainEvent,
    ) -> Result<Result<(), Rejection<'static>>, BridgeError> {
        let strategy = self.shared.config.registry.subject_strategy;
        let topic = self.topic(event.aggregate_type()).await?;
        self.datum.clear();
        if let Err(e) = event.encode(strategy, &mut self.datum) {
            return Ok(Err(Rejection {
                reason: "encode",
                table: String::new(),
                key: event.aggregate_id().to_string(),
                column: None,
                error: e.to_string(),
                position: event.envelope.source,
            }));
        }
        let writer = event.writer(strategy);
        let cache_key = (
            topic.as_ptr() as usize,
            writer.schema_json.as_ptr() as usize,
        );
        let schema_id = match self.schema_ids.get(&cache_key) {
            Some(id) => *id,
            None => {
                let subject = strategy.subject(&topic, writer.record_name);
                let id = self
                    .shared
                    .registry
                    .id_for(&subject, writer.schema_json)
                    .await?;
                self.schema_ids.insert(cache_key, id);
                id
            }
        };
        let mut frame = Vec::with_capacity(self.datum.len() + 5);
        contracts::wire::frame(schema_id, &self.datum, &mut frame);
        self.producer
            .send(&record::event_record(&topic, event, frame))
            .await?;
        self.shared.telemetry.event_published(event.event_type());
        Ok(Ok(()))
    }

    /// The topic of `aggregate_type`, created on first use when missing and allowed (outbox
    /// rows route to aggregates the mapping does not list).
    async fn topic(&mut self, aggregate_type: &str) -> Result<Arc<str>, BridgeError> {
        if let Some(t) = self.topics.get(aggregate_type) {
            return Ok(Arc::clone(t));
        }
        let cfg = &self.shared.config;
        let name = cfg.topic_for(aggregate_type);
        let spec = TopicSpec {
            name: name.clone(),
            partitions: cfg.kafka.topic_partitions,
            compacted: false,
        };
        if cfg.kafka.create_topics {
            topics::ensure(&self.shared.kafka, std::slice::from_ref(&spec)).await?;
        } else if !topics::missing(&self.shared.kafka, std::slice::from_ref(&spec))
            .await?
            .is_empty()
        {
            return Err(BridgeError::definite(
                format!("topic `{name}` for aggregate `{aggregate_type}` does not exist"),
                format!(
                    "kafka-topics.sh --create --topic {name}, or set kafka.create_topics = true"
                ),
            ));
        }
        let topic: Arc<str> = name.into();
        self.topics
            .insert(aggregate_type.to_string(), Arc::clone(&topic));
        Ok(topic)
    }

    async fn dead_letter(
        &mut self,
        rejection: &Rejection<'_>,
        body: Vec<u8>,
    ) -> Result<(), BridgeError> {
        let r: OutgoingRecord =
            record::dead_letter(&self.shared.config.kafka.dead_letter_topic, rejection, body);
        self.producer.send(&r).await?;
        self.shared.telemetry.dead_lettered(
            rejection.reason,
            &rejection.table,
            rejection.position.commit_lsn,
        );
        Ok(())
    }
}

fn map_rejection(e: &MapError, position: SourcePosition) -> Rejection<'static> {
    Rejection {
        reason: e.reason_code(),
        table: e.table().to_string(),
        key: e.key().to_string(),
        column: e.column().map(str::to_string),
        error: e.to_string(),
        position,
    }
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
