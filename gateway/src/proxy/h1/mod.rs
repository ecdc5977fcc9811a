//! The gateway's own HTTP/1.1 engine, on both ends of the common request: a client connection
//! speaking plain HTTP/1.1 in, a keep-alive upstream connection out.
//!
//! Why not hyper here too: a proxy request through hyper's server and client costs two parses
//! into header maps, two serialisations, a connection task on the upstream side and channels
//! between the tasks; on the benchmark that was twice nginx's CPU per request. Here the request
//! is parsed once (header values stay slices of the read buffer), written upstream from the same
//! task, and the response body is read from the upstream socket by the task that writes it to the
//! client. Everything else (HTTP/2 to clients, unusual requests) is still served by hyper, with
//! the same [`super::Proxy::handle`] in the middle; HTTP/2 upstreams use hyper's client.

pub mod client;
pub mod codec;
pub mod io;
pub mod server;
