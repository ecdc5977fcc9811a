//! Kafka side of the bridge, split the way vector's Kafka sink is: [`record`] builds what goes
//! on the wire (pure), [`producer`] is the transactional producer (I/O), [`topics`] creates
//! topics, and [`publisher`] drives the stream of legacy transactions into Kafka transactions.

pub mod producer;
pub mod publisher;
pub mod record;
pub mod topics;
