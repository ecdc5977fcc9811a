//! The CDC bridge: legacy WAL (pgoutput) → anti-corruption layer → Avro → Kafka, exactly once.
//!
//! Data flows one way through one session ([`session`]):
//!
//! ```text
//! PostgreSQL slot ─▶ source::stream ─▶ source::decode ─▶ (bounded channel) ─▶ sink::publisher
//!   ▲ acknowledge                        Relation cache      acl::Mapper, contracts encode,
//!   └──────────── only what Kafka committed ◀──────────────  registry ids, Kafka transaction
//! ```
//!
//! - [`config`]: one serde tree, validated, env overrides.
//! - [`source`]: replication stream and the pure pgoutput decoder producing `acl::RowChange`s.
//! - [`sink`]: record building (pure), transactional producer, topics, the publisher.
//! - [`checkpoint`]: the exactly-once rule and the progress topic.
//! - [`registry`], [`schemas`]: schema registry client and the compatibility check.
//! - [`preflight`], [`snapshot`], [`pg`]: checks, initial snapshot, ordinary SQL.
//! - [`observability`], [`http`]: metrics, health.
//! - [`cli`]: `run | check | snapshot | status`; `main.rs` only calls it.

pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod error;
pub mod http;
pub mod observability;
pub mod pg;
pub mod preflight;
pub mod reconcile;
pub mod registry;
pub mod schemas;
pub mod session;
pub mod sink;
pub mod snapshot;
pub mod source;
