//! The CDC bridge: legacy WAL (pgoutput) → anti-corruption layer → Avro → Kafka, exactly once.
