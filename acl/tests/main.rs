//! The ACL's tests that need no services: the reference mapping against fixture rows of the
//! reference legacy schema, mapping-file errors, and property tests.

mod aggregates;
mod mapping_file;
mod order_to_cash;
mod outbox;
mod properties;
mod support;
