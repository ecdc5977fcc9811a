//! The declarative mapping file: one serde tree, unknown keys refused.
//!
//! ```toml
//! message_prefix = "fig.outbox"             # pg_logical_emit_message used as an outbox
//!
//! [code_tables.order_status]                # legacy code → domain word; "*" = any other code
//! N = "new"
//! S = "secured"
//!
//! [[table]]
//! name = "ord_hdr"                          # schema defaults to "public"
//! aggregate = "order"
//! key = ["ord_no"]
//! aggregate_id = "order_id"                 # domain field that is the aggregate id
//! [table.fields]                            # domain field = where it comes from
//! order_id = { column = "ord_no" }
//! status = { column = "ord_stat_cd", codes = "order_status" }
//! total = { money = "ord_tot_amt", currency = "curr_cd" }
//! changed_at = { column = "upd_ts", type = "timestamp" }
//! [[table.events]]
//! on = "update"
//! event = "OrderSecured"
//! when = [{ field = "status", changed = true, equals = "secured" }]
//! fields = { secured_at = "changed_at" }    # payload field = domain field (or "old.<field>")
//! ```
//!
//! Payload fields not listed under `fields` take the domain field of the same name; optional
//! payload fields with no source are null. Every check of the tree against the legacy columns
//! and the contracts happens when the mapper is built, with errors that name the key.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Schema of tables that do not name one.
pub const DEFAULT_SCHEMA: &str = "public";
/// Code-table entry that matches any code not listed.
pub const ANY_CODE: &str = "*";
/// Prefix of a payload source that reads the old image.
pub const OLD_PREFIX: &str = "old.";

/// The whole mapping file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingFile {
    /// Prefix of `pg_logical_emit_message` calls that are outbox messages.
    #[serde(default)]
    pub message_prefix: Option<String>,
    /// Named code tables: legacy code → domain word.
    #[serde(default)]
    pub code_tables: BTreeMap<String, BTreeMap<String, String>>,
    /// The mapped tables.
    #[serde(default, rename = "table")]
    pub tables: Vec<TableConfig>,
}

/// One legacy table and the aggregate it feeds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// PostgreSQL schema.
    #[serde(default = "default_schema")]
    pub schema: String,
    /// Table name.
    pub name: String,
    /// Aggregate type of its events, e.g. "order" (outbox tables: taken from each row).
    #[serde(default)]
    pub aggregate: Option<String>,
    /// Primary key columns.
    #[serde(default)]
    pub key: Vec<String>,
    /// Domain field that is the aggregate id.
    #[serde(default)]
    pub aggregate_id: Option<String>,
    /// A transactional outbox table (id, aggregate_type, aggregate_id, event_type, payload,
    /// headers, created_at): inserts become `OutboxMessage` events.
    #[serde(default)]
    pub outbox: bool,
    /// Domain fields and where they come from.
    #[serde(default)]
    pub fields: BTreeMap<String, FieldConfig>,
    /// Event rules, evaluated in order; every matching rule emits its event.
    #[serde(default)]
    pub events: Vec<EventRuleConfig>,
}

fn default_schema() -> String {
    DEFAULT_SCHEMA.to_owned()
}

/// How a domain field is read from legacy columns.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldConfig {
    /// The column (not with `money`).
    #[serde(default)]
    pub column: Option<String>,
    /// Conversion of the column's text.
    #[serde(default, rename = "type")]
    pub kind: Option<FieldType>,
    /// Code table translating the column's code.
    #[serde(default)]
    pub codes: Option<String>,
    /// Amount column of a money field (with `currency`).
    #[serde(default)]
    pub money: Option<String>,
    /// Currency column of a money field.
    #[serde(default)]
    pub currency: Option<String>,
}

/// Conversion of a column's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// As is.
    Text,
    /// A whole number.
    Int,
    /// `timestamp` (read as UTC), `timestamptz` or `date` → µs since the epoch.
    Timestamp,
}

/// On which operation a rule fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnOp {
    /// Inserts (and snapshot rows).
    Insert,
    /// Updates.
    Update,
    /// Deletes (values from the old image).
    Delete,
}

/// One event rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRuleConfig {
    /// Operation.
    pub on: OnOp,
    /// Event type from the contracts, e.g. "OrderSecured".
    pub event: String,
    /// Conditions, all of which must hold.
    #[serde(default)]
    pub when: Vec<ConditionConfig>,
    /// Payload field → domain field (or `old.<field>`), where the names differ.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

/// One condition. With `field`: tests on its value (new image; old image for deletes), of which
/// `equals`, `one_of`, `not_one_of` never hold for NULL. Without `field`: `any_changed`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionConfig {
    /// Domain field tested.
    #[serde(default)]
    pub field: Option<String>,
    /// The value equals this.
    #[serde(default)]
    pub equals: Option<String>,
    /// The value is one of these.
    #[serde(default)]
    pub one_of: Option<Vec<String>>,
    /// The value is not NULL and none of these.
    #[serde(default)]
    pub not_one_of: Option<Vec<String>>,
    /// The value is (true) or is not (false) NULL.
    #[serde(default)]
    pub is_null: Option<bool>,
    /// Updates: the field's columns changed (true) or did not (false). Needs REPLICA IDENTITY FULL.
    #[serde(default)]
    pub changed: Option<bool>,
    /// Updates: any of these fields changed. Needs REPLICA IDENTITY FULL.
    #[serde(default)]
    pub any_changed: Option<Vec<String>>,
}

impl MappingFile {
    /// Parses the TOML text.
    pub fn parse(text: &str) -> Result<MappingFile, crate::ConfigError> {
        toml::from_str(text).map_err(|source| crate::ConfigError::Toml { source })
    }
}
