//! The gateway's HTTP/1.1 head parser and chunk decoder (`gateway::proxy::h1::codec`) on
//! arbitrary bytes: what the public listener reads from clients and upstream connections read
//! from services. Bad input is an error, never a panic, and:
//! - a head found is never longer than the input;
//! - a request head that builds writes back out (as the gateway forwards it) to a head that
//!   parses to the same method, target and headers;
//! - a chunked body decodes to the same bytes whether it arrives whole or in two reads.
//!
//! Input layout: the first byte picks the response's request method and the split point of the
//! chunked body; the rest is the message.

#![no_main]

use axum::http::{HeaderMap, HeaderValue, Method, header};
use bytes::{Bytes, BytesMut};
use gateway::proxy::h1::codec::{self, ChunkState, ChunkStep};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, message)) = data.split_first() else {
        return;
    };
    request_round_trip(message);
    response(message, if pick & 1 == 0 { Method::GET } else { Method::HEAD });
    chunks_split_anywhere(message, usize::from(pick));
});

fn request_round_trip(input: &[u8]) {
    let Ok(Some(found)) = codec::find_request(input) else {
        return;
    };
    assert!(found.len <= input.len(), "head longer than the input");
    let head = Bytes::copy_from_slice(&input[..found.len]);
    let Ok(req) = codec::build_request(&head, found) else {
        return;
    };
    // Only origin-form targets are forwarded as they came; and the writer adds `Host` and may
    // add `Content-Length`, which may take a head at the header limit over it.
    if !req.parts.uri.to_string().starts_with('/')
        || req.parts.headers.len() + 2 > codec::MAX_HEADERS
    {
        return;
    }
    let host = HeaderValue::from_static("upstream.test");
    let mut out = Vec::new();
    codec::write_request_head(
        &mut out,
        &req.parts.method,
        &req.parts.uri,
        &host,
        &req.parts.headers,
        Some(0),
    );
    let again = codec::find_request(&out)
        .expect("a written head parses")
        .expect("a written head is complete");
    assert_eq!(again.len, out.len(), "the written head has trailing bytes");
    let again = codec::build_request(&Bytes::from(out), again).expect("a written head builds");
    assert_eq!(again.parts.method, req.parts.method);
    assert_eq!(again.parts.uri, req.parts.uri);
    assert_eq!(forwarded(&again.parts.headers), forwarded(&req.parts.headers));
    assert_eq!(again.parts.headers.get(header::HOST), Some(&host));
}

/// The headers a forwarded request keeps as they were (the writer sets `Host` and framing).
fn forwarded(headers: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .filter(|(name, _)| {
            ![header::HOST, header::CONTENT_LENGTH, header::TRANSFER_ENCODING].contains(name)
        })
        .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
        .collect()
}

fn response(input: &[u8], method: Method) {
    let Ok(Some(found)) = codec::find_response(input) else {
        return;
    };
    assert!(found.len <= input.len(), "head longer than the input");
    let head = Bytes::copy_from_slice(&input[..found.len]);
    let _ = codec::build_response(&head, found, &method);
}

fn chunks_split_anywhere(input: &[u8], at: usize) {
    let at = at.min(input.len());
    let whole = decode(&[input]);
    let split = decode(&[&input[..at], &input[at..]]);
    // A line over the length limit may be refused only when it arrives in pieces.
    if let (Ok(whole), Ok(split)) = (whole, split) {
        assert_eq!(whole, split, "the body depends on how it was read");
    }
}

/// The decoded bytes and whether the body ended, reading `reads` in turn.
fn decode(reads: &[&[u8]]) -> Result<(Vec<u8>, bool), codec::HeadError> {
    let mut state = ChunkState::Size;
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    for read in reads {
        buf.extend_from_slice(read);
        loop {
            match state.step(&mut buf)? {
                ChunkStep::Data(data) => body.extend_from_slice(&data),
                ChunkStep::Progress => {}
                ChunkStep::NeedMore => break,
                ChunkStep::Done => return Ok((body, true)),
            }
        }
    }
    Ok((body, false))
}
