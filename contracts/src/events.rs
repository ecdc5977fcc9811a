//! The Rust types of the domain events: one struct per event type, shaped like the latest
//! `schemas/<EventType>/vN.avsc`, and the `Payload` enum over all of them.
//!
//! The `events!` macro writes, from one field list per event, the struct, its hand-written Avro
//! encoder, its conversion to and from apache-avro values and its positional constructor from
//! [`FieldValue`]s. Contract tests prove every struct matches its latest schema field by field.

use std::collections::BTreeMap;

use apache_avro::types::Value;

use crate::datum::{AvroField, FieldValue};
use crate::money::{Money, TimestampMicros};

/// A field value that does not fit the event field it was given for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}` of {event_type} expects {expects}, got {got}")]
pub struct FieldError {
    /// The event type.
    pub event_type: &'static str,
    /// The payload field.
    pub field: &'static str,
    /// What the field takes.
    pub expects: &'static str,
    /// What it was given.
    pub got: &'static str,
}

macro_rules! events {
    ($( $(#[$doc:meta])* $name:ident ($agg:expr) { $( $field:ident : $ty:ty ),* $(,)? } )*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, PartialEq)]
            #[allow(missing_docs)]
            pub struct $name { $( pub $field: $ty, )* }

            impl From<$name> for Payload {
                fn from(event: $name) -> Payload { Payload::$name(event) }
            }
        )*

        /// Which event a payload is.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventKind { $( $(#[$doc])* $name, )* }

        impl EventKind {
            /// Every event kind, in declaration order (also the order of aggregate unions).
            pub const ALL: &'static [EventKind] = &[ $( EventKind::$name, )* ];

            /// The event type, e.g. "OrderSecured" (also the schema folder name).
            pub fn name(self) -> &'static str {
                match self { $( EventKind::$name => stringify!($name), )* }
            }

            /// The aggregate type the event belongs to; `None` when it is taken from the source
            /// (outbox messages).
            pub fn aggregate_type(self) -> Option<&'static str> {
                match self { $( EventKind::$name => $agg, )* }
            }

            /// The kind of an event type name.
            pub fn from_name(name: &str) -> Option<EventKind> {
                match name { $( stringify!($name) => Some(EventKind::$name), )* _ => None }
            }

            /// The payload field names, in schema order.
            pub fn field_names(self) -> &'static [&'static str] {
                match self { $( EventKind::$name => &[ $( stringify!($field), )* ], )* }
            }

            /// Whether each payload field is optional (may be null).
            pub fn field_optional(self) -> &'static [bool] {
                match self { $( EventKind::$name => &[ $( <$ty as AvroField>::OPTIONAL, )* ], )* }
            }

            /// What each payload field takes: "text", "int", "timestamp", "money" or "map".
            pub fn field_expects(self) -> &'static [&'static str] {
                match self { $( EventKind::$name => &[ $( <$ty as AvroField>::EXPECTS, )* ], )* }
            }
        }

        /// The payload of a domain event: one variant per event type.
        #[derive(Debug, Clone, PartialEq)]
        #[allow(missing_docs)]
        pub enum Payload { $( $name($name), )* }

        impl Payload {
            /// Which event this is.
            pub fn kind(&self) -> EventKind {
                match self { $( Payload::$name(_) => EventKind::$name, )* }
            }

            /// Appends the payload record's Avro datum.
            pub(crate) fn write(&self, out: &mut Vec<u8>) {
                match self { $( Payload::$name(e) => { $( e.$field.write(out); )* } )* }
            }

            /// The payload record as an apache-avro value.
            pub(crate) fn to_value(&self) -> Value {
                match self {
                    $( Payload::$name(e) => Value::Record(vec![
                        $( (stringify!($field).to_owned(), e.$field.to_value()), )*
                    ]), )*
                }
            }

            /// The payload from a record decoded with our latest schema; `Err` names the field.
            pub(crate) fn from_value(kind: EventKind, value: Value) -> Result<Payload, &'static str> {
                let Value::Record(fields) = value else { return Err("payload") };
                let mut fields = fields.into_iter();
                match kind {
                    $( EventKind::$name => Ok(Payload::$name($name { $(
                        $field: match fields.next() {
                            Some((n, v)) if n == stringify!($field) =>
                                <$ty as AvroField>::from_value(v).ok_or(stringify!($field))?,
                            _ => return Err(stringify!($field)),
                        },
                    )* })), )*
                }
            }

            /// Builds a payload from field values given in [`EventKind::field_names`] order;
            /// missing trailing values count as null.
            pub fn from_fields(
                kind: EventKind,
                values: impl IntoIterator<Item = FieldValue>,
            ) -> Result<Payload, FieldError> {
                let mut values = values.into_iter();
                match kind {
                    $( EventKind::$name => Ok(Payload::$name($name { $(
                        $field: {
                            let v = values.next().unwrap_or(FieldValue::Null);
                            let got = v.kind();
                            <$ty as AvroField>::from_field(v).ok_or(FieldError {
                                event_type: stringify!($name),
                                field: stringify!($field),
                                expects: <$ty as AvroField>::EXPECTS,
                                got,
                            })?
                        },
                    )* })), )*
                }
            }

            /// A representative payload of the kind, for contract tests.
            #[doc(hidden)]
            pub fn sample(kind: EventKind) -> Payload {
                match kind {
                    $( EventKind::$name => Payload::$name($name { $( $field: <$ty as AvroField>::sample(), )* }), )*
                }
            }
        }
    };
}

events! {
    /// A customer submitted an order (`ord_hdr` insert).
    OrderSubmitted(Some("order")) {
        order_id: String, customer_id: String, customer_name: String, customer_email: Option<String>,
        channel: String, total: Money, submitted_at: TimestampMicros, ship_to_country: Option<String>,
    }
    /// The order passed validation.
    OrderAccepted(Some("order")) { order_id: String, customer_id: String, accepted_at: TimestampMicros }
    /// The order waits for a payment authorisation.
    OrderPaymentPending(Some("order")) { order_id: String, total: Money, pending_since: TimestampMicros }
    /// Payment is authorised and stock reserved for the order.
    OrderSecured(Some("order")) { order_id: String, total: Money, secured_at: TimestampMicros }
    /// The customer has been told; fulfilment may start.
    OrderConfirmed(Some("order")) { order_id: String, confirmed_at: TimestampMicros }
    /// The order was cancelled.
    OrderCancelled(Some("order")) {
        order_id: String, previous_status: String, reason: Option<String>, cancelled_at: TimestampMicros,
    }
    /// The order is stuck and needs a human.
    OrderException(Some("order")) {
        order_id: String, previous_status: String, reason: Option<String>, raised_at: TimestampMicros,
    }
    /// A line was added to an order.
    OrderLineAdded(Some("order")) {
        order_id: String, line_number: i32, sku: String, quantity: i32, unit_price: Money,
    }
    /// A line was removed from an order.
    OrderLineRemoved(Some("order")) { order_id: String, line_number: i32 }
    /// The payment provider authorised an amount.
    PaymentAuthorized(Some("payment")) {
        payment_id: String, order_id: String, amount: Money, provider: String,
        provider_reference: Option<String>, authorized_at: TimestampMicros,
    }
    /// The payment provider declined or could not answer an authorisation.
    PaymentAuthorizationFailed(Some("payment")) {
        payment_id: String, order_id: String, amount: Money, provider: String,
        decline_reason: String, provider_result_code: String, failed_at: TimestampMicros,
    }
    /// An authorised amount was captured.
    PaymentCaptured(Some("payment")) {
        payment_id: String, order_id: String, amount: Money, provider: String, captured_at: TimestampMicros,
    }
    /// An amount was refunded to the customer.
    PaymentRefunded(Some("payment")) {
        payment_id: String, order_id: String, amount: Money, provider: String,
        original_payment_id: Option<String>, refunded_at: TimestampMicros,
    }
    /// Stock was reserved for an order line.
    StockReserved(Some("reservation")) {
        reservation_id: String, order_id: String, line_number: i32, sku: String, warehouse: String,
        quantity: i32, expires_at: Option<TimestampMicros>,
    }
    /// A stock reservation was released.
    ReservationReleased(Some("reservation")) {
        reservation_id: String, order_id: String, sku: String, quantity: i32, released_at: TimestampMicros,
    }
    /// A customer was registered.
    CustomerRegistered(Some("customer")) {
        customer_id: String, name: String, customer_type: String, email: Option<String>,
        address_line1: String, address_line2: Option<String>, city: String, postal_code: String,
        country: String, registered_at: TimestampMicros,
    }
    /// A customer's postal address changed.
    CustomerAddressChanged(Some("customer")) {
        customer_id: String, address_line1: String, address_line2: Option<String>, city: String,
        postal_code: String, country: String, changed_at: TimestampMicros,
    }
    /// A message the legacy application wrote to its outbox (table or logical message).
    OutboxMessage(None) { message_type: String, payload_json: String, headers: BTreeMap<String, String> }
}
