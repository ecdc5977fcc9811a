//! The Avro schema resolution rules, as a check: can data written with one schema be read with
//! another? Follows the specification's "Schema Resolution" section (promotions, record fields
//! by name with defaults, enum symbols, unions by branch, named types by unqualified name).
//!
//! Written here because apache-avro 0.21's `SchemaCompatibility` refuses every `decimal` and
//! every union of named records, even between identical schemas.

use std::collections::HashSet;

use apache_avro::schema::{Name, NamesRef, ResolvedSchema, Schema, SchemaKind};

/// `Ok` if every datum written with `writer` can be read with `reader`; otherwise where and why not.
pub fn can_read(writer: &Schema, reader: &Schema) -> Result<(), String> {
    let writer_names =
        ResolvedSchema::try_from(writer).map_err(|e| format!("writer schema: {e}"))?;
    let reader_names =
        ResolvedSchema::try_from(reader).map_err(|e| format!("reader schema: {e}"))?;
    let mut checker = Checker {
        writer_names: writer_names.get_names(),
        reader_names: reader_names.get_names(),
        seen: HashSet::new(),
    };
    checker.check(writer, reader, "")
}

struct Checker<'a, 's> {
    writer_names: &'a NamesRef<'s>,
    reader_names: &'a NamesRef<'s>,
    seen: HashSet<(String, String)>,
}

fn deref<'s>(schema: &'s Schema, names: &NamesRef<'s>) -> Result<&'s Schema, String> {
    match schema {
        Schema::Ref { name } => names
            .get(name)
            .copied()
            .ok_or_else(|| format!("unknown type `{}`", name.fullname(None))),
        other => Ok(other),
    }
}

fn at(path: &str) -> &str {
    if path.is_empty() { "the root" } else { path }
}

/// The primitive a logical type is carried in (decimal is compared on its own).
fn underlying(schema: &Schema) -> SchemaKind {
    match schema {
        Schema::Date | Schema::TimeMillis => SchemaKind::Int,
        Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => SchemaKind::Long,
        Schema::Uuid => SchemaKind::String,
        other => SchemaKind::from(other),
    }
}

fn is_logical(schema: &Schema) -> bool {
    underlying(schema) != SchemaKind::from(schema)
}

fn same_name(
    writer: &Name,
    reader: &Name,
    reader_aliases: Option<&Vec<apache_avro::schema::Alias>>,
) -> bool {
    writer.name == reader.name
        || reader_aliases.is_some_and(|aliases| {
            aliases
                .iter()
                .any(|a| a.name() == writer.name || a.fullname(None) == writer.fullname(None))
        })
}

impl Checker<'_, '_> {
    fn check(&mut self, writer: &Schema, reader: &Schema, path: &str) -> Result<(), String> {
        let writer = deref(writer, self.writer_names)?;
        let reader = deref(reader, self.reader_names)?;
        match (writer, reader) {
            (Schema::Union(w), _) => {
                for (i, branch) in w.variants().iter().enumerate() {
                    self.check(branch, reader, &format!("{path}[writer branch {i}]"))?;
                }
                Ok(())
            }
            (_, Schema::Union(r)) => {
                // A record is read by the reader branch of the same name; anything else by the
                // first branch that can read it.
                for branch in r.variants() {
                    let branch = deref(branch, self.reader_names)?;
                    let named_mismatch = match (writer, branch) {
                        (Schema::Record(w), Schema::Record(b)) => {
                            !same_name(&w.name, &b.name, b.aliases.as_ref())
                        }
                        _ => false,
                    };
                    if !named_mismatch && self.check(writer, branch, path).is_ok() {
                        return Ok(());
                    }
                }
                Err(format!(
                    "{}: no branch of the reader's union reads the writer's {:?}",
                    at(path),
                    SchemaKind::from(writer)
                ))
            }
            (Schema::Record(w), Schema::Record(r)) => {
                if !same_name(&w.name, &r.name, r.aliases.as_ref()) {
                    return Err(format!(
                        "{}: record `{}` cannot be read as `{}`",
                        at(path),
                        w.name.fullname(None),
                        r.name.fullname(None)
                    ));
                }
                if !self
                    .seen
                    .insert((w.name.fullname(None), r.name.fullname(None)))
                {
                    return Ok(()); // already being checked further up (recursive type)
                }
                for rf in &r.fields {
                    let field_path = if path.is_empty() {
                        rf.name.clone()
                    } else {
                        format!("{path}.{}", rf.name)
                    };
                    let wf = w.fields.iter().find(|wf| {
                        wf.name == rf.name
                            || rf.aliases.as_ref().is_some_and(|a| a.contains(&wf.name))
                    });
                    match wf {
                        Some(wf) => self.check(&wf.schema, &rf.schema, &field_path)?,
                        None if rf.default.is_some() => {}
                        None => {
                            return Err(format!(
                                "{field_path}: the reader's field has no default and the writer does not write it"
                            ));
                        }
                    }
                }
                Ok(())
            }
            (Schema::Enum(w), Schema::Enum(r)) => {
                if !same_name(&w.name, &r.name, r.aliases.as_ref()) {
                    return Err(format!(
                        "{}: enum `{}` cannot be read as `{}`",
                        at(path),
                        w.name.fullname(None),
                        r.name.fullname(None)
                    ));
                }
                match w.symbols.iter().find(|s| !r.symbols.contains(s)) {
                    Some(missing) if r.default.is_none() => Err(format!(
                        "{}: the reader's enum lacks the writer's symbol `{missing}` and has no default",
                        at(path)
                    )),
                    _ => Ok(()),
                }
            }
            (Schema::Fixed(w), Schema::Fixed(r)) => {
                if w.name.name == r.name.name && w.size == r.size {
                    Ok(())
                } else {
                    Err(format!(
                        "{}: fixed `{}`({}) cannot be read as `{}`({})",
                        at(path),
                        w.name.name,
                        w.size,
                        r.name.name,
                        r.size
                    ))
                }
            }
            (Schema::Array(w), Schema::Array(r)) => {
                self.check(&w.items, &r.items, &format!("{path}[]"))
            }
            (Schema::Map(w), Schema::Map(r)) => {
                self.check(&w.types, &r.types, &format!("{path}{{}}"))
            }
            (Schema::Decimal(w), Schema::Decimal(r)) => {
                if w.precision == r.precision && w.scale == r.scale {
                    self.check(&w.inner, &r.inner, path)
                } else {
                    Err(format!(
                        "{}: decimal({},{}) cannot be read as decimal({},{})",
                        at(path),
                        w.precision,
                        w.scale,
                        r.precision,
                        r.scale
                    ))
                }
            }
            (w, r) => {
                let (wk, rk) = (underlying(w), underlying(r));
                let logical_clash =
                    is_logical(w) && is_logical(r) && SchemaKind::from(w) != SchemaKind::from(r);
                let decimal_clash =
                    matches!(w, Schema::Decimal(_)) != matches!(r, Schema::Decimal(_));
                let promotable = wk == rk
                    || matches!(
                        (wk, rk),
                        (
                            SchemaKind::Int,
                            SchemaKind::Long | SchemaKind::Float | SchemaKind::Double
                        ) | (SchemaKind::Long, SchemaKind::Float | SchemaKind::Double)
                            | (SchemaKind::Float, SchemaKind::Double)
                            | (SchemaKind::String, SchemaKind::Bytes)
                            | (SchemaKind::Bytes, SchemaKind::String)
                    );
                if promotable && !logical_clash && !decimal_clash {
                    Ok(())
                } else {
                    Err(format!(
                        "{}: the writer's {:?} cannot be read as {:?}",
                        at(path),
                        SchemaKind::from(w),
                        SchemaKind::from(r)
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(json: &str) -> Schema {
        Schema::parse_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    /// The specification's rules: promotions, defaults, enum symbols, unions, decimals, names.
    #[test]
    fn resolution_rules() {
        let rec = |fields: &str| {
            schema(&format!(
                r#"{{"type":"record","name":"R","namespace":"a","fields":[{fields}]}}"#
            ))
        };
        let cases = [
            (schema(r#""int""#), schema(r#""long""#), true),
            (schema(r#""long""#), schema(r#""int""#), false),
            (
                schema(r#""string""#),
                schema(r#"{"type":"string","logicalType":"uuid"}"#),
                true,
            ),
            (
                schema(r#"{"type":"long","logicalType":"timestamp-millis"}"#),
                schema(r#"{"type":"long","logicalType":"timestamp-micros"}"#),
                false,
            ),
            (
                rec(r#"{"name":"a","type":"int"}"#),
                rec(r#"{"name":"a","type":"int"},{"name":"b","type":"int","default":0}"#),
                true,
            ),
            (
                rec(r#"{"name":"a","type":"int"}"#),
                rec(r#"{"name":"a","type":"int"},{"name":"b","type":"int"}"#),
                false,
            ),
            (
                rec(r#"{"name":"a","type":"int"},{"name":"b","type":"int"}"#),
                rec(r#"{"name":"a","type":"int"}"#),
                true,
            ),
            (
                schema(r#"{"type":"enum","name":"E","symbols":["A","B"]}"#),
                schema(r#"{"type":"enum","name":"E","symbols":["A"]}"#),
                false,
            ),
            (
                schema(r#"{"type":"enum","name":"E","symbols":["A"]}"#),
                schema(r#"{"type":"enum","name":"E","symbols":["A","B"]}"#),
                true,
            ),
            (schema(r#""string""#), schema(r#"["null","string"]"#), true),
            (schema(r#"["null","string"]"#), schema(r#""string""#), false),
            (
                schema(r#"{"type":"bytes","logicalType":"decimal","precision":18,"scale":4}"#),
                schema(r#"{"type":"bytes","logicalType":"decimal","precision":18,"scale":2}"#),
                false,
            ),
            (
                schema(r#"{"type":"bytes","logicalType":"decimal","precision":18,"scale":4}"#),
                schema(r#"{"type":"bytes","logicalType":"decimal","precision":18,"scale":4}"#),
                true,
            ),
            (
                rec(r#"{"name":"a","type":"int"}"#),
                schema(r#"{"type":"record","name":"S","fields":[]}"#),
                false,
            ),
        ];
        for (i, (writer, reader, ok)) in cases.iter().enumerate() {
            assert_eq!(
                can_read(writer, reader).is_ok(),
                *ok,
                "case {i}: {:?}",
                can_read(writer, reader)
            );
        }
    }

    /// A union of records resolves branch by name, so a new branch or a grown record still reads.
    #[test]
    fn unions_of_records_resolve_by_name() {
        let a1 = r#"{"type":"record","name":"A","fields":[{"name":"x","type":"int"}]}"#;
        let a2 = r#"{"type":"record","name":"A","fields":[{"name":"x","type":"int"},{"name":"y","type":["null","int"],"default":null}]}"#;
        let b = r#"{"type":"record","name":"B","fields":[{"name":"x","type":"int"}]}"#;
        assert_eq!(
            can_read(&schema(&format!("[{a1}]")), &schema(&format!("[{a2},{b}]"))),
            Ok(())
        );
        let err = can_read(&schema(&format!("[{a1},{b}]")), &schema(&format!("[{a2}]")))
            .expect_err("B unreadable");
        assert!(err.contains("writer branch 1"), "{err}");
    }
}
