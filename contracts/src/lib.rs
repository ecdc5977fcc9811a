//! Versioned Avro contracts of the domain events that the CDC bridge publishes.
//!
//! Schemas live as data under `contracts/schemas/<event>/vN.avsc` and are append-only.
