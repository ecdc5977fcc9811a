//! The mapper: built once from the mapping file, then shared; `map` is a pure function of the
//! row change (plus a per-table cache of the relation's column positions).

use std::path::Path;
use std::sync::Arc;

use contracts::{DomainEvent, SourcePosition};

use crate::compile::{CodeTable, Compiled, CompiledTable, Resolution, TableSpec, compile};
use crate::config::MappingFile;
use crate::error::{ConfigError, MapError, MapReason};
use crate::evaluate::RowEval;
use crate::row::RowChange;
use crate::rule::{RowView, Rule};

/// Legacy rows in, domain events out.
pub struct Mapper {
    tables: Vec<CompiledTable>,
    specs: Vec<TableSpec>,
    code_tables: Vec<CodeTable>,
    message_prefix: Option<String>,
}

impl std::fmt::Debug for Mapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapper")
            .field("tables", &self.specs)
            .field("message_prefix", &self.message_prefix)
            .finish()
    }
}

impl Mapper {
    /// Builds the mapper from the mapping file's text; errors name the key path.
    pub fn from_toml(text: &str) -> Result<Mapper, ConfigError> {
        let file = MappingFile::parse(text)?;
        let Compiled {
            tables,
            specs,
            code_tables,
        } = compile(&file)?;
        Ok(Mapper {
            tables,
            specs,
            code_tables,
            message_prefix: file.message_prefix,
        })
    }

    /// Reads and builds the mapping file at `path`.
    pub fn load(path: &Path) -> Result<Mapper, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Mapper::from_toml(&text)
    }

    /// The mapped tables, for the bridge's pre-flight checks and snapshots.
    pub fn tables(&self) -> &[TableSpec] {
        &self.specs
    }

    /// The prefix of logical messages that are outbox messages, if any.
    pub fn message_prefix(&self) -> Option<&str> {
        self.message_prefix.as_deref()
    }

    /// Adds a non-declarative rule to a mapped (non-outbox) table.
    pub fn with_rule(
        mut self,
        schema: &str,
        table: &str,
        rule: Box<dyn Rule>,
    ) -> Result<Mapper, ConfigError> {
        let key = format!("table[{table}]");
        let i = self
            .specs
            .iter()
            .position(|s| s.schema == schema && s.table == table && !s.is_outbox)
            .ok_or_else(|| {
                ConfigError::invalid(
                    key,
                    format!(
                        "rule `{}`: {schema}.{table} is not a mapped table",
                        rule.name()
                    ),
                )
            })?;
        self.tables[i].custom.push(rule);
        Ok(self)
    }

    /// Zero or more domain events for one row change, or an error naming table, key, column and reason.
    pub fn map(&self, change: &RowChange) -> Result<Vec<DomainEvent>, MapError> {
        let Some(i) = self
            .specs
            .iter()
            .position(|s| s.table == change.table && s.schema == change.schema)
        else {
            return Err(MapError::new(
                format!("{}.{}", change.schema, change.table),
                "",
                None,
                MapReason::UnknownTable,
            ));
        };
        let table = &self.tables[i];
        with_positions(table, &change.columns, |positions| {
            let row = RowEval::new(table, change, positions, &self.code_tables);
            row.check_shape()?;
            if let Some(missing) = table
                .mapped
                .iter()
                .copied()
                .find(|&c| positions.get(c).copied().flatten().is_none())
            {
                return Err(row.error(Some(missing), MapReason::MissingColumn));
            }
            let mut events = Vec::new();
            if table.outbox.is_some() {
                crate::outbox::map_outbox_row(&row, &mut events)?;
                return Ok(events);
            }
            if row.touches_nothing_mapped()? {
                return Ok(events); // an update that touches no mapped column: no event
            }
            row.map_rules(&mut events)?;
            let view = RowView { eval: &row };
            for rule in &table.custom {
                rule.apply(&view, &mut events)?;
            }
            Ok(events)
        })
    }

    /// A `pg_logical_emit_message` used as an outbox (prefix from the mapping file); content is
    /// JSON `{"aggregate_type","aggregate_id","event_type","payload","headers"?}`.
    pub fn map_message(
        &self,
        prefix: &str,
        content: &[u8],
        position: SourcePosition,
        commit_ts_micros: i64,
    ) -> Result<Vec<DomainEvent>, MapError> {
        crate::outbox::map_message(
            self.message_prefix.as_deref(),
            prefix,
            content,
            position,
            commit_ts_micros,
        )
    }
}

/// Runs `f` with the row positions of the table's columns in this relation, cached per relation.
fn with_positions<R>(
    table: &CompiledTable,
    columns: &Arc<[String]>,
    f: impl FnOnce(&[Option<usize>]) -> R,
) -> R {
    if let Ok(guard) = table.resolution.read()
        && let Some(cached) = guard.as_ref().filter(|r| Arc::ptr_eq(&r.columns, columns))
    {
        return f(&cached.positions);
    }
    let positions: Vec<Option<usize>> = table
        .columns
        .iter()
        .map(|name| columns.iter().position(|c| c == name))
        .collect();
    let result = f(&positions);
    if let Ok(mut guard) = table.resolution.write() {
        *guard = Some(Resolution {
            columns: Arc::clone(columns),
            positions,
        });
    }
    result
}

#[cfg(test)]
mod tests {
    /// The mapper can be shared across the bridge's tasks.
    #[test]
    fn mapper_is_send_and_sync() {
        fn shareable<T: Send + Sync>() {}
        shareable::<super::Mapper>();
        shareable::<crate::RowChange>();
        shareable::<crate::MapError>();
    }
}
