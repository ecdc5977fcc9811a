//! Turns the mapping file into checked, index-based tables: every column, domain field, code
//! table and event field is resolved once here, so mapping a row does no look-ups by name
//! (except matching the row's columns, cached per relation).

mod event_rules;

use std::sync::{Arc, RwLock};

use contracts::EventKind;

use crate::config::{ANY_CODE, FieldConfig, FieldType, MappingFile, TableConfig};
use crate::error::ConfigError;
use crate::outbox::OutboxColumns;
use crate::row::Op;
use crate::rule::Rule as CustomRule;

/// What the bridge needs to know about a mapped table (pre-flight checks, snapshots, topics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// PostgreSQL schema.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// Aggregate type of its events; for outbox tables each event carries its row's own, and
    /// this is `contracts::catalog::OUTBOX_AGGREGATE`.
    pub aggregate_type: String,
    /// Primary key columns.
    pub key_columns: Vec<String>,
    /// Every column the mapping reads (key columns included).
    pub mapped_columns: Vec<String>,
    /// Some rule needs old values (state transitions, updates at all) ⇒ REPLICA IDENTITY FULL.
    pub needs_full_identity: bool,
    /// A transactional outbox table.
    pub is_outbox: bool,
}

/// A code table: legacy code → domain word, with an optional catch-all. Legacy code tables are
/// short, so a linear scan of short strings beats hashing.
#[derive(Debug)]
pub(crate) struct CodeTable {
    pub(crate) name: String,
    pub(crate) codes: Vec<(String, String)>,
    pub(crate) any: Option<String>,
}

impl CodeTable {
    pub(crate) fn get(&self, code: &str) -> Option<&str> {
        let code = code.trim_end();
        self.codes
            .iter()
            .find(|(c, _)| c == code)
            .map(|(_, word)| word)
            .or(self.any.as_ref())
            .map(String::as_str)
    }
}

/// Where a domain field's value comes from (column ids index `CompiledTable::columns`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum FieldSource {
    Text(usize),
    Int(usize),
    Timestamp(usize),
    Code { column: usize, table: usize },
    Money { amount: usize, currency: usize },
}

impl FieldSource {
    pub(crate) fn columns(self) -> impl Iterator<Item = usize> {
        let (a, b) = match self {
            FieldSource::Text(c) | FieldSource::Int(c) | FieldSource::Timestamp(c) => (c, None),
            FieldSource::Code { column, .. } => (column, None),
            FieldSource::Money { amount, currency } => (amount, Some(currency)),
        };
        std::iter::once(a).chain(b)
    }

    pub(crate) fn expects(self) -> &'static str {
        match self {
            FieldSource::Text(_) | FieldSource::Code { .. } => "text",
            FieldSource::Int(_) => "int",
            FieldSource::Timestamp(_) => "timestamp",
            FieldSource::Money { .. } => "money",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Field {
    pub(crate) name: String,
    pub(crate) source: FieldSource,
}

/// Where a payload field's value comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source {
    New(usize),
    Old(usize),
    Null,
}

#[derive(Debug)]
pub(crate) enum Test {
    Equals(String),
    OneOf(Vec<String>),
    NotOneOf(Vec<String>),
    IsNull(bool),
    Changed(bool),
}

#[derive(Debug)]
pub(crate) enum Condition {
    Field { field: usize, test: Test },
    AnyChanged(Vec<usize>),
}

#[derive(Debug)]
pub(crate) struct EventRule {
    pub(crate) on: Op,
    pub(crate) kind: EventKind,
    pub(crate) version: u32,
    pub(crate) conditions: Vec<Condition>,
    pub(crate) sources: Vec<Source>,
}

/// The row's column positions for one relation (same `Arc` ⇒ same layout).
pub(crate) struct Resolution {
    pub(crate) columns: Arc<[String]>,
    pub(crate) positions: Vec<Option<usize>>,
}

pub(crate) struct CompiledTable {
    pub(crate) qualified: String,
    pub(crate) aggregate_type: String,
    pub(crate) columns: Vec<String>,
    pub(crate) key: Vec<usize>,
    pub(crate) fields: Vec<Field>,
    pub(crate) aggregate_id: usize,
    pub(crate) rules: Vec<EventRule>,
    pub(crate) mapped: Vec<usize>,
    pub(crate) outbox: Option<OutboxColumns>,
    pub(crate) resolution: RwLock<Option<Resolution>>,
    pub(crate) custom: Vec<Box<dyn CustomRule>>,
}

/// The checked, compiled mapping file.
pub(crate) struct Compiled {
    pub(crate) tables: Vec<CompiledTable>,
    pub(crate) specs: Vec<TableSpec>,
    pub(crate) code_tables: Vec<CodeTable>,
}

/// Compiles and checks the whole file.
pub(crate) fn compile(file: &MappingFile) -> Result<Compiled, ConfigError> {
    let mut code_tables = Vec::new();
    for (name, codes) in &file.code_tables {
        let key = format!("code_tables.{name}");
        if codes.is_empty() {
            return Err(ConfigError::invalid(key, "code table is empty"));
        }
        let mut map: Vec<(String, String)> = codes.clone().into_iter().collect();
        let any = map
            .iter()
            .position(|(c, _)| c == ANY_CODE)
            .map(|i| map.remove(i).1);
        if let Some((code, _)) = map.iter().find(|(_, word)| word.trim().is_empty()) {
            return Err(ConfigError::invalid(
                format!("{key}.{code}"),
                "domain word is empty",
            ));
        }
        code_tables.push(CodeTable {
            name: name.clone(),
            codes: map,
            any,
        });
    }
    if file.message_prefix.as_ref().is_some_and(String::is_empty) {
        return Err(ConfigError::invalid(
            "message_prefix",
            "must not be empty; leave it out to map no logical messages",
        ));
    }
    let mut tables = Vec::new();
    let mut specs: Vec<TableSpec> = Vec::new();
    for config in &file.tables {
        let key = format!("table[{}]", config.name);
        if config.name.is_empty() || config.schema.is_empty() {
            return Err(ConfigError::invalid(
                key,
                "`name` and `schema` must not be empty",
            ));
        }
        if specs
            .iter()
            .any(|s| s.schema == config.schema && s.table == config.name)
        {
            return Err(ConfigError::invalid(
                key,
                format!("table {}.{} is mapped twice", config.schema, config.name),
            ));
        }
        let (table, spec) = if config.outbox {
            crate::outbox::compile_outbox(config, &key)?
        } else {
            compile_table(config, &key, &code_tables)?
        };
        tables.push(table);
        specs.push(spec);
    }
    Ok(Compiled {
        tables,
        specs,
        code_tables,
    })
}

/// Column ids of one table: each column name once, in order of first use.
#[derive(Default)]
pub(crate) struct Columns(pub(crate) Vec<String>);

impl Columns {
    pub(crate) fn id(&mut self, name: &str) -> usize {
        self.0.iter().position(|c| c == name).unwrap_or_else(|| {
            self.0.push(name.to_owned());
            self.0.len() - 1
        })
    }
}

fn compile_table(
    config: &TableConfig,
    key: &str,
    code_tables: &[CodeTable],
) -> Result<(CompiledTable, TableSpec), ConfigError> {
    let aggregate_type = config
        .aggregate
        .clone()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            ConfigError::invalid(
                format!("{key}.aggregate"),
                "required: the aggregate type its events belong to",
            )
        })?;
    if config.key.is_empty() {
        return Err(ConfigError::invalid(
            format!("{key}.key"),
            "required: the primary key columns",
        ));
    }
    let mut columns = Columns::default();
    let key_ids: Vec<usize> = config.key.iter().map(|c| columns.id(c)).collect();
    let mut fields = Vec::new();
    for (name, field) in &config.fields {
        let source = compile_field(
            field,
            &format!("{key}.fields.{name}"),
            &mut columns,
            code_tables,
        )?;
        fields.push(Field {
            name: name.clone(),
            source,
        });
    }
    let field_id = |name: &str| fields.iter().position(|f| f.name == name);
    let aggregate_id = config
        .aggregate_id
        .as_deref()
        .ok_or_else(|| {
            ConfigError::invalid(
                format!("{key}.aggregate_id"),
                "required: the domain field that is the aggregate id",
            )
        })
        .and_then(|name| {
            field_id(name).ok_or_else(|| {
                ConfigError::invalid(
                    format!("{key}.aggregate_id"),
                    format!("no domain field `{name}` under fields"),
                )
            })
        })?;
    let mut rules = Vec::new();
    for (i, rule) in config.events.iter().enumerate() {
        rules.push(event_rules::compile_rule(
            rule,
            &format!("{key}.events[{i}]"),
            &aggregate_type,
            &fields,
        )?);
    }
    let mapped: Vec<usize> = (0..columns.0.len()).collect();
    let needs_full_identity = rules.iter().any(|r| {
        r.on == Op::Update
            || (r.on != Op::Delete && r.sources.iter().any(|s| matches!(s, Source::Old(_))))
            || (r.on == Op::Delete && reads_non_key(r, &fields, &key_ids))
    });
    let spec = TableSpec {
        schema: config.schema.clone(),
        table: config.name.clone(),
        aggregate_type: aggregate_type.clone(),
        key_columns: config.key.clone(),
        mapped_columns: columns.0.clone(),
        needs_full_identity,
        is_outbox: false,
    };
    let table = CompiledTable {
        qualified: format!("{}.{}", config.schema, config.name),
        aggregate_type,
        columns: columns.0,
        key: key_ids,
        fields,
        aggregate_id,
        rules,
        mapped,
        outbox: None,
        resolution: RwLock::new(None),
        custom: Vec::new(),
    };
    Ok((table, spec))
}

fn reads_non_key(rule: &EventRule, fields: &[Field], key: &[usize]) -> bool {
    let field_ids = rule
        .sources
        .iter()
        .filter_map(|s| match s {
            Source::New(f) | Source::Old(f) => Some(*f),
            Source::Null => None,
        })
        .chain(rule.conditions.iter().filter_map(|c| match c {
            Condition::Field { field, .. } => Some(*field),
            Condition::AnyChanged(_) => None,
        }));
    field_ids
        .into_iter()
        .any(|f| fields[f].source.columns().any(|c| !key.contains(&c)))
}

fn compile_field(
    field: &FieldConfig,
    key: &str,
    columns: &mut Columns,
    code_tables: &[CodeTable],
) -> Result<FieldSource, ConfigError> {
    match (&field.column, &field.money) {
        (Some(column), None) => {
            if field.currency.is_some() {
                return Err(ConfigError::invalid(
                    format!("{key}.currency"),
                    "only with `money`",
                ));
            }
            let id = columns.id(column);
            match (&field.codes, field.kind) {
                (Some(codes), None | Some(FieldType::Text)) => {
                    let table = code_tables
                        .iter()
                        .position(|t| &t.name == codes)
                        .ok_or_else(|| {
                            ConfigError::invalid(
                                format!("{key}.codes"),
                                format!("no code table `{codes}` under [code_tables]"),
                            )
                        })?;
                    Ok(FieldSource::Code { column: id, table })
                }
                (Some(_), Some(_)) => Err(ConfigError::invalid(
                    format!("{key}.type"),
                    "a coded field is text; drop `type`",
                )),
                (None, None | Some(FieldType::Text)) => Ok(FieldSource::Text(id)),
                (None, Some(FieldType::Int)) => Ok(FieldSource::Int(id)),
                (None, Some(FieldType::Timestamp)) => Ok(FieldSource::Timestamp(id)),
            }
        }
        (None, Some(amount)) => {
            let currency = field.currency.as_ref().ok_or_else(|| {
                ConfigError::invalid(
                    format!("{key}.currency"),
                    "required with `money`: the currency column",
                )
            })?;
            if field.kind.is_some() || field.codes.is_some() {
                return Err(ConfigError::invalid(
                    key,
                    "a money field takes only `money` and `currency`",
                ));
            }
            Ok(FieldSource::Money {
                amount: columns.id(amount),
                currency: columns.id(currency),
            })
        }
        (Some(_), Some(_)) => Err(ConfigError::invalid(
            key,
            "give either `column` or `money`, not both",
        )),
        (None, None) => Err(ConfigError::invalid(
            key,
            "needs `column` (or `money` and `currency`)",
        )),
    }
}
