//! PostgreSQL side of the bridge: the replication stream ([`stream`]) and the pure pgoutput
//! decoder with its Relation cache ([`decode`]), producing owned `acl::RowChange`s.

pub mod decode;
pub mod stream;

pub use decode::{Decoder, WalEvent};
pub use stream::WalSource;
