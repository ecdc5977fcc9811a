//! The Avro binary encoding, written by hand for the hot path, and the field types events use.
//!
//! `AvroField` is implemented for every Rust type an event field may have. Each implementation
//! writes the binary datum directly (no `apache_avro::Value` on the way), converts to a `Value`
//! (so tests can prove the hand-written bytes equal apache-avro's) and reads back from the
//! resolved `Value` apache-avro decodes. `FieldValue` is how the anti-corruption layer hands
//! field values over without knowing the concrete event struct.

use std::collections::BTreeMap;

use apache_avro::types::Value;

use crate::money::{Money, TimestampMicros};

/// Appends a long in Avro's zig-zag varint encoding.
#[inline]
pub fn write_long(n: i64, out: &mut Vec<u8>) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Appends a length-prefixed byte string (Avro `bytes` and `string`).
#[inline]
pub fn write_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    write_long(bytes.len() as i64, out);
    out.extend_from_slice(bytes);
}

/// A field value handed over by name-free position, for building events generically.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// No value (only valid for optional fields).
    Null,
    /// Text.
    Text(String),
    /// A whole number.
    Int(i64),
    /// A point in time, µs since the Unix epoch.
    Timestamp(i64),
    /// Money.
    Money(Money),
    /// A string map.
    Map(BTreeMap<String, String>),
}

impl FieldValue {
    /// A short word for the kind of value, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            FieldValue::Null => "null",
            FieldValue::Text(_) => "text",
            FieldValue::Int(_) => "int",
            FieldValue::Timestamp(_) => "timestamp",
            FieldValue::Money(_) => "money",
            FieldValue::Map(_) => "map",
        }
    }
}

/// A Rust type that can be an event field.
pub trait AvroField: Sized {
    /// What the field takes: "text", "int", "timestamp", "money" or "map".
    const EXPECTS: &'static str;
    /// Whether the field may be null (an optional field, default null).
    const OPTIONAL: bool = false;
    /// Appends the Avro binary datum.
    fn write(&self, out: &mut Vec<u8>);
    /// The apache-avro value of the field (tests and the slow path).
    fn to_value(&self) -> Value;
    /// Reads the field from a value apache-avro decoded and resolved to our schema.
    fn from_value(value: Value) -> Option<Self>;
    /// Takes the field from a generic field value.
    fn from_field(value: FieldValue) -> Option<Self>;
    /// A representative value, for contract tests.
    fn sample() -> Self;
}

impl AvroField for String {
    const EXPECTS: &'static str = "text";
    fn write(&self, out: &mut Vec<u8>) {
        write_bytes(self.as_bytes(), out);
    }
    fn to_value(&self) -> Value {
        Value::String(self.clone())
    }
    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::String(s) => Some(s),
            Value::Uuid(u) => Some(u.hyphenated().to_string()),
            _ => None,
        }
    }
    fn from_field(value: FieldValue) -> Option<Self> {
        match value {
            FieldValue::Text(s) => Some(s),
            FieldValue::Int(n) => Some(n.to_string()),
            _ => None,
        }
    }
    fn sample() -> Self {
        "sample-Ω".to_owned()
    }
}

impl AvroField for i32 {
    const EXPECTS: &'static str = "int";
    fn write(&self, out: &mut Vec<u8>) {
        write_long(i64::from(*self), out);
    }
    fn to_value(&self) -> Value {
        Value::Int(*self)
    }
    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::Int(n) => Some(n),
            _ => None,
        }
    }
    fn from_field(value: FieldValue) -> Option<Self> {
        match value {
            FieldValue::Int(n) => i32::try_from(n).ok(),
            _ => None,
        }
    }
    fn sample() -> Self {
        -4242
    }
}

impl AvroField for TimestampMicros {
    const EXPECTS: &'static str = "timestamp";
    fn write(&self, out: &mut Vec<u8>) {
        write_long(self.0, out);
    }
    fn to_value(&self) -> Value {
        Value::TimestampMicros(self.0)
    }
    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::TimestampMicros(n) | Value::Long(n) => Some(TimestampMicros(n)),
            _ => None,
        }
    }
    fn from_field(value: FieldValue) -> Option<Self> {
        match value {
            FieldValue::Timestamp(n) => Some(TimestampMicros(n)),
            _ => None,
        }
    }
    fn sample() -> Self {
        TimestampMicros(1_796_000_000_123_456)
    }
}

impl AvroField for Money {
    const EXPECTS: &'static str = "money";
    fn write(&self, out: &mut Vec<u8>) {
        write_bytes(&self.unscaled_bytes(), out);
        write_bytes(self.currency.as_bytes(), out);
    }
    fn to_value(&self) -> Value {
        Value::Record(vec![
            (
                "amount".to_owned(),
                Value::Decimal(self.unscaled_bytes().to_vec().into()),
            ),
            ("currency".to_owned(), Value::String(self.currency.clone())),
        ])
    }
    fn from_value(value: Value) -> Option<Self> {
        let Value::Record(fields) = value else {
            return None;
        };
        let mut amount = None;
        let mut currency = None;
        for (name, v) in fields {
            match (name.as_str(), v) {
                ("amount", Value::Decimal(d)) => amount = <Vec<u8>>::try_from(&d).ok(),
                ("amount", Value::Bytes(b)) => amount = Some(b),
                ("currency", Value::String(s)) => currency = Some(s),
                _ => {}
            }
        }
        Money::from_unscaled_bytes(&amount?, currency?)
    }
    fn from_field(value: FieldValue) -> Option<Self> {
        match value {
            FieldValue::Money(m) => Some(m),
            _ => None,
        }
    }
    fn sample() -> Self {
        Money::new(rust_decimal::Decimal::new(-1_234_567, 2), "EUR")
            .unwrap_or_else(|_| Money::zero("EUR"))
    }
}

impl AvroField for BTreeMap<String, String> {
    const EXPECTS: &'static str = "map";
    fn write(&self, out: &mut Vec<u8>) {
        if !self.is_empty() {
            write_long(self.len() as i64, out);
            for (k, v) in self {
                write_bytes(k.as_bytes(), out);
                write_bytes(v.as_bytes(), out);
            }
        }
        out.push(0);
    }
    fn to_value(&self) -> Value {
        Value::Map(
            self.iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        )
    }
    fn from_value(value: Value) -> Option<Self> {
        let Value::Map(map) = value else { return None };
        map.into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Some((k, s)),
                _ => None,
            })
            .collect()
    }
    fn from_field(value: FieldValue) -> Option<Self> {
        match value {
            FieldValue::Map(m) => Some(m),
            _ => None,
        }
    }
    fn sample() -> Self {
        // One entry: apache-avro writes maps in HashMap order, so only one entry compares byte for byte.
        BTreeMap::from([("traceparent".to_owned(), "00-abc-01".to_owned())])
    }
}

/// Optional fields are the union `["null", T]` with default null.
impl<T: AvroField> AvroField for Option<T> {
    const EXPECTS: &'static str = T::EXPECTS;
    const OPTIONAL: bool = true;
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(2); // union branch 1, zig-zag encoded
                v.write(out);
            }
        }
    }
    fn to_value(&self) -> Value {
        match self {
            None => Value::Union(0, Box::new(Value::Null)),
            Some(v) => Value::Union(1, Box::new(v.to_value())),
        }
    }
    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::Union(_, inner) => match *inner {
                Value::Null => Some(None),
                other => T::from_value(other).map(Some),
            },
            Value::Null => Some(None),
            other => T::from_value(other).map(Some),
        }
    }
    fn from_field(value: FieldValue) -> Option<Self> {
        match value {
            FieldValue::Null => Some(None),
            other => T::from_field(other).map(Some),
        }
    }
    fn sample() -> Self {
        Some(T::sample())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Zig-zag varints match the Avro specification's examples.
    #[test]
    fn long_encoding_matches_the_spec() {
        for (n, bytes) in [
            (0i64, vec![0u8]),
            (-1, vec![1]),
            (1, vec![2]),
            (-64, vec![0x7f]),
            (64, vec![0x80, 1]),
        ] {
            let mut out = Vec::new();
            write_long(n, &mut out);
            assert_eq!(out, bytes, "encoding of {n}");
        }
        let mut out = Vec::new();
        write_long(i64::MIN, &mut out);
        assert_eq!(out.len(), 10);
    }
}
