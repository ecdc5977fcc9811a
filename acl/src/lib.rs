//! The anti-corruption layer: legacy rows in, domain events out, no I/O.
