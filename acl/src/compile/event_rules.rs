//! Compiling event rules: the event type against the contracts, each payload field to its
//! source (domain field, old image or null) with matching types, and conditions to tests.

use contracts::EventKind;

use super::{Condition, EventRule, Field, Source, Test};
use crate::config::{ConditionConfig, EventRuleConfig, OLD_PREFIX, OnOp};
use crate::error::ConfigError;
use crate::row::Op;

pub(super) fn compile_rule(
    rule: &EventRuleConfig,
    key: &str,
    aggregate: &str,
    fields: &[Field],
) -> Result<EventRule, ConfigError> {
    let kind = EventKind::from_name(&rule.event).ok_or_else(|| {
        ConfigError::invalid(
            format!("{key}.event"),
            format!("`{}` is not an event type of the contracts", rule.event),
        )
    })?;
    if kind.aggregate_type() != Some(aggregate) {
        return Err(ConfigError::invalid(
            format!("{key}.event"),
            format!(
                "{} belongs to aggregate {:?}, this table feeds `{aggregate}`",
                kind.name(),
                kind.aggregate_type()
            ),
        ));
    }
    let on = match rule.on {
        OnOp::Insert => Op::Insert,
        OnOp::Update => Op::Update,
        OnOp::Delete => Op::Delete,
    };
    let field_id = |name: &str, at: String| {
        fields.iter().position(|f| f.name == name).ok_or_else(|| {
            ConfigError::invalid(at, format!("no domain field `{name}` under fields"))
        })
    };
    let mut conditions = Vec::new();
    for (i, c) in rule.when.iter().enumerate() {
        compile_condition(
            c,
            &format!("{key}.when[{i}]"),
            on,
            &field_id,
            &mut conditions,
        )?;
    }
    let names = kind.field_names();
    if let Some(unknown) = rule.fields.keys().find(|k| !names.contains(&k.as_str())) {
        return Err(ConfigError::invalid(
            format!("{key}.fields.{unknown}"),
            format!(
                "{} has no payload field `{unknown}`; it has {names:?}",
                kind.name()
            ),
        ));
    }
    let mut sources = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let at = format!("{key}.fields.{name}");
        let (expects, optional) = (kind.field_expects()[i], kind.field_optional()[i]);
        let source = match rule.fields.get(*name) {
            Some(from) => match from.strip_prefix(OLD_PREFIX) {
                Some(_) if on == Op::Insert => {
                    return Err(ConfigError::invalid(at, "inserts have no old image"));
                }
                Some(old) => Source::Old(field_id(old, at.clone())?),
                None if on == Op::Delete => Source::Old(field_id(from, at.clone())?),
                None => Source::New(field_id(from, at.clone())?),
            },
            None => match fields.iter().position(|f| f.name == *name) {
                Some(f) if on == Op::Delete => Source::Old(f),
                Some(f) => Source::New(f),
                None if optional => Source::Null,
                None => {
                    return Err(ConfigError::invalid(
                        at,
                        format!(
                            "required payload field of {} has no source: add a domain field `{name}` or `fields = {{ {name} = \"<domain field>\" }}`",
                            kind.name()
                        ),
                    ));
                }
            },
        };
        if let Source::New(f) | Source::Old(f) = source {
            let has = fields[f].source.expects();
            if has != expects && !(expects == "text" && has == "int") {
                return Err(ConfigError::invalid(
                    at,
                    format!(
                        "payload field takes {expects}, domain field `{}` is {has}",
                        fields[f].name
                    ),
                ));
            }
        }
        sources.push(source);
    }
    Ok(EventRule {
        on,
        kind,
        version: kind.latest_version(),
        conditions,
        sources,
    })
}

fn compile_condition(
    c: &ConditionConfig,
    key: &str,
    on: Op,
    field_id: &dyn Fn(&str, String) -> Result<usize, ConfigError>,
    out: &mut Vec<Condition>,
) -> Result<(), ConfigError> {
    let needs_update = |what: &str| {
        if on == Op::Update {
            Ok(())
        } else {
            Err(ConfigError::invalid(
                format!("{key}.{what}"),
                "only on update rules",
            ))
        }
    };
    if let Some(names) = &c.any_changed {
        needs_update("any_changed")?;
        if c.field.is_some() || names.is_empty() {
            return Err(ConfigError::invalid(
                format!("{key}.any_changed"),
                "a non-empty list, in a condition without `field`",
            ));
        }
        let ids = names
            .iter()
            .map(|n| field_id(n, format!("{key}.any_changed")))
            .collect::<Result<_, _>>()?;
        out.push(Condition::AnyChanged(ids));
    }
    let mut tests = Vec::new();
    if let Some(v) = &c.equals {
        tests.push(Test::Equals(v.clone()));
    }
    if let Some(v) = &c.one_of {
        tests.push(Test::OneOf(v.clone()));
    }
    if let Some(v) = &c.not_one_of {
        tests.push(Test::NotOneOf(v.clone()));
    }
    if let Some(v) = c.is_null {
        tests.push(Test::IsNull(v));
    }
    if let Some(v) = c.changed {
        needs_update("changed")?;
        tests.push(Test::Changed(v));
    }
    match (&c.field, tests.is_empty()) {
        (Some(name), false) => {
            let field = field_id(name, format!("{key}.field"))?;
            out.extend(
                tests
                    .into_iter()
                    .map(|test| Condition::Field { field, test }),
            );
            Ok(())
        }
        (Some(_), true) => Err(ConfigError::invalid(
            key,
            "tests nothing: add equals, one_of, not_one_of, is_null or changed",
        )),
        (None, false) => Err(ConfigError::invalid(
            format!("{key}.field"),
            "required by equals, one_of, not_one_of, is_null and changed",
        )),
        (None, true) if c.any_changed.is_some() => Ok(()),
        (None, true) => Err(ConfigError::invalid(key, "empty condition")),
    }
}
