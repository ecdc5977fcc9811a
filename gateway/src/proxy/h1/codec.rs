//! HTTP/1.1 message heads and body framing, pure: bytes in, parts out, and parts in, bytes out.
//!
//! Parsing is [`httparse`]; header values are slices of the head's [`Bytes`] (no copy). Framing
//! follows RFC 9112 §6: `Transfer-Encoding: chunked` wins, then `Content-Length`, else a request
//! has no body and a response runs until the connection closes. A message that sends both, or
//! several different lengths, is refused (the classic request-smuggling shapes).

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode, Uri, Version};
use std::ops::Range;

/// Most headers a message may carry.
pub const MAX_HEADERS: usize = 128;

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the connection closes (responses only).
    Close,
}

/// Why a head could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// httparse refused it.
    #[error("malformed message head: {0}")]
    Syntax(&'static str),
    /// Conflicting or unparsable body length.
    #[error("invalid body framing: {0}")]
    Framing(&'static str),
    /// The head is larger than allowed.
    #[error("message head larger than {0} bytes")]
    TooLarge(usize),
}

/// A request head, and what the connection needs to know about it.
#[derive(Debug)]
pub struct RequestHead {
    /// Method, URI, version and headers.
    pub parts: http::request::Parts,
    /// How its body is delimited.
    pub framing: Framing,
    /// Whether the client wants the connection kept open after the response.
    pub keep_alive: bool,
    /// Whether this engine forwards it itself; when false (HTTP/1.0, `Expect`, `Upgrade`,
    /// `CONNECT`, a chunked body) the connection goes to the general server from here on.
    pub plain: bool,
}

/// A complete request head found in a buffer by one parse: its length, and where its parts
/// lie, for [`build_request`] once the head is split off the buffer.
#[derive(Debug)]
pub struct FoundRequest {
    /// Bytes of the head, final empty line included.
    pub len: usize,
    method: Method,
    target: Range<usize>,
    version: Version,
    headers: Vec<(HeaderName, Range<usize>)>,
}

/// Finds a complete request head at the start of `buf`; `None` while it is incomplete.
pub fn find_request(buf: &[u8]) -> Result<Option<FoundRequest>, HeadError> {
    let mut slots = header_slots();
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HeadError::Syntax(parse_error(e))),
    };
    // A complete parse always has both; the check keeps `span` within `buf` regardless.
    let (Some(method), Some(path)) = (req.method, req.path) else {
        return Err(HeadError::Syntax("no request line"));
    };
    let method =
        Method::from_bytes(method.as_bytes()).map_err(|_| HeadError::Syntax("invalid method"))?;
    Ok(Some(FoundRequest {
        len,
        method,
        target: span(buf, path.as_bytes()),
        version: version(req.version),
        headers: header_spans(buf, req.headers)?,
    }))
}

/// The request head `found` in `head` (the buffer's first `found.len` bytes, split off).
pub fn build_request(head: &Bytes, found: FoundRequest) -> Result<RequestHead, HeadError> {
    let FoundRequest {
        method,
        target,
        version,
        headers,
        ..
    } = found;
    let uri = Uri::from_maybe_shared(head.slice(target))
        .map_err(|_| HeadError::Syntax("invalid request target"))?;
    let map = header_map(head, headers)?;
    let framing = framing(&map, false)?;
    let tokens = ConnectionTokens::of(&map);
    let plain = version == Version::HTTP_11
        && method != Method::CONNECT
        && !tokens.upgrade
        && !map.contains_key(header::UPGRADE)
        && !map.contains_key(header::EXPECT)
        && framing != Framing::Chunked;
    let mut parts = http::Request::new(()).into_parts().0;
    parts.method = method;
    parts.uri = uri;
    parts.version = version;
    parts.headers = map;
    Ok(RequestHead {
        parts,
        framing,
        keep_alive: !tokens.close,
        plain,
    })
}

/// A response head.
#[derive(Debug)]
pub struct ResponseHead {
    /// Status, version and headers.
    pub parts: http::response::Parts,
    /// How its body is delimited (given the request's method).
    pub framing: Framing,
    /// Whether the upstream keeps the connection open afterwards.
    pub keep_alive: bool,
}

/// A complete response head found in a buffer by one parse (see [`FoundRequest`]).
#[derive(Debug)]
pub struct FoundResponse {
    /// Bytes of the head, final empty line included.
    pub len: usize,
    status: StatusCode,
    version: Version,
    headers: Vec<(HeaderName, Range<usize>)>,
}

impl FoundResponse {
    /// An interim (`1xx`) head, to be skipped.
    pub fn is_informational(&self) -> bool {
        self.status.is_informational()
    }
}

/// Finds a complete response head at the start of `buf`; `None` while it is incomplete.
pub fn find_response(buf: &[u8]) -> Result<Option<FoundResponse>, HeadError> {
    let mut slots = header_slots();
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HeadError::Syntax(parse_error(e))),
    };
    let status = StatusCode::from_u16(resp.code.unwrap_or_default())
        .map_err(|_| HeadError::Syntax("invalid status code"))?;
    Ok(Some(FoundResponse {
        len,
        status,
        version: version(resp.version),
        headers: header_spans(buf, resp.headers)?,
    }))
}

/// The response head `found` in `head`, answering a request made with `request_method`.
pub fn build_response(
    head: &Bytes,
    found: FoundResponse,
    request_method: &Method,
) -> Result<ResponseHead, HeadError> {
    let FoundResponse {
        status,
        version,
        headers,
        ..
    } = found;
    let map = header_map(head, headers)?;
    let framing = if is_bodiless(request_method, status) {
        Framing::Empty
    } else {
        match framing(&map, true)? {
            Framing::Empty => Framing::Close,
            f => f,
        }
    };
    let tokens = ConnectionTokens::of(&map);
    let keep_alive = match version {
        Version::HTTP_11 => !tokens.close,
        _ => tokens.keep_alive,
    } && framing != Framing::Close;
    let mut parts = http::Response::new(()).into_parts().0;
    parts.status = status;
    parts.version = version;
    parts.headers = map;
    Ok(ResponseHead {
        parts,
        framing,
        keep_alive,
    })
}

/// Whether a response with `status` to a `request_method` request has no body, whatever its
/// headers say (RFC 9112 §6.3).
pub fn is_bodiless(request_method: &Method, status: StatusCode) -> bool {
    *request_method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

fn version(minor: Option<u8>) -> Version {
    match minor {
        Some(1) => Version::HTTP_11,
        _ => Version::HTTP_10,
    }
}

/// Where `part`, a slice that httparse took from `buf`, lies in `buf`.
fn span(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize).saturating_sub(buf.as_ptr() as usize);
    let start = start.min(buf.len());
    start..(start + part.len()).min(buf.len())
}

/// The header names, and where each value lies in `buf`.
fn header_spans(
    buf: &[u8],
    headers: &[httparse::Header<'_>],
) -> Result<Vec<(HeaderName, Range<usize>)>, HeadError> {
    headers
        .iter()
        .map(|h| {
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| HeadError::Syntax("invalid header name"))?;
            Ok((name, span(buf, h.value)))
        })
        .collect()
}

/// Room for httparse's header slices, left uninitialised: zeroing 128 slots (4 KiB) for every
/// head cost more than parsing a short one.
fn header_slots<'b>() -> [std::mem::MaybeUninit<httparse::Header<'b>>; MAX_HEADERS] {
    [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS]
}

fn header_map(
    head: &Bytes,
    headers: Vec<(HeaderName, Range<usize>)>,
) -> Result<HeaderMap, HeadError> {
    let mut map = HeaderMap::with_capacity(headers.len() + 6);
    for (name, value) in headers {
        let value = HeaderValue::from_maybe_shared(head.slice(value))
            .map_err(|_| HeadError::Syntax("invalid header value"))?;
        map.append(name, value);
    }
    Ok(map)
}

/// Body framing from the headers (RFC 9112 §6.3); `Empty` when neither header is present.
fn framing(map: &HeaderMap, response: bool) -> Result<Framing, HeadError> {
    if let Some(te) = map.get(header::TRANSFER_ENCODING) {
        if map.contains_key(header::CONTENT_LENGTH) {
            return Err(HeadError::Framing(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        let last = te
            .as_bytes()
            .rsplit(|b| *b == b',')
            .next()
            .unwrap_or_default();
        if map.get_all(header::TRANSFER_ENCODING).iter().count() == 1
            && last.trim_ascii().eq_ignore_ascii_case(b"chunked")
        {
            return Ok(Framing::Chunked);
        }
        return if response {
            Ok(Framing::Close)
        } else {
            Err(HeadError::Framing(
                "a request's last transfer coding must be chunked",
            ))
        };
    }
    let mut length = None;
    for v in map.get_all(header::CONTENT_LENGTH) {
        for part in v.as_bytes().split(|b| *b == b',') {
            let n = parse_length(part.trim_ascii())
                .ok_or(HeadError::Framing("Content-Length is not a number"))?;
            if length.is_some_and(|l| l != n) {
                return Err(HeadError::Framing(
                    "several different Content-Length values",
                ));
            }
            length = Some(n);
        }
    }
    Ok(length.map_or(Framing::Empty, Framing::Length))
}

fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// What the `Connection` header says.
#[derive(Debug, Default)]
struct ConnectionTokens {
    close: bool,
    keep_alive: bool,
    upgrade: bool,
}

impl ConnectionTokens {
    fn of(map: &HeaderMap) -> ConnectionTokens {
        let mut t = ConnectionTokens::default();
        for v in map.get_all(header::CONNECTION) {
            for token in v.as_bytes().split(|b| *b == b',') {
                let token = token.trim_ascii();
                t.close |= token.eq_ignore_ascii_case(b"close");
                t.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                t.upgrade |= token.eq_ignore_ascii_case(b"upgrade");
            }
        }
        t
    }
}

fn parse_error(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status line",
        httparse::Error::Token => "invalid token",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "unsupported HTTP version",
    }
}

/// Writes a request head for an upstream: origin-form target, `host`, the headers as given
/// except `Host` and any framing header, and the framing of a body of `length` bytes (`None`:
/// chunked).
pub fn write_request_head(
    out: &mut Vec<u8>,
    method: &Method,
    uri: &Uri,
    host: &HeaderValue,
    headers: &HeaderMap,
    length: Option<u64>,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        uri.path_and_query()
            .map_or("/", |pq| pq.as_str())
            .as_bytes(),
    );
    out.extend_from_slice(b" HTTP/1.1\r\n");
    write_header(out, b"host", host.as_bytes());
    for (name, value) in headers {
        if name == header::HOST
            || name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
        {
            continue;
        }
        write_header(out, name.as_str().as_bytes(), value.as_bytes());
    }
    match length {
        // A bodiless GET needs no length; a write method says 0 so the upstream does not wait.
        Some(0) if !matches!(*method, Method::POST | Method::PUT | Method::PATCH) => {}
        Some(n) => write_length(out, n),
        None => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// How a response body goes to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body bytes (HEAD, 1xx, 204, 304): the headers go as they are.
    Bodiless,
    /// `Content-Length`.
    Length(u64),
    /// Chunked, the length being unknown.
    Chunked,
}

/// Writes a response head for the client.
pub fn write_response_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    framing: ResponseFraming,
    close: bool,
    date: &[u8],
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    match framing {
        ResponseFraming::Bodiless => {
            for (name, value) in headers {
                write_header(out, name.as_str().as_bytes(), value.as_bytes());
            }
        }
        ResponseFraming::Length(n) => {
            write_headers(out, headers);
            write_length(out, n);
        }
        ResponseFraming::Chunked => {
            write_headers(out, headers);
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
    }
    if !headers.contains_key(header::DATE) {
        write_header(out, b"date", date);
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Every header but the framing ones.
fn write_headers(out: &mut Vec<u8>, headers: &HeaderMap) {
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        write_header(out, name.as_str().as_bytes(), value.as_bytes());
    }
}

fn write_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn write_length(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(b"content-length: ");
    push_number(out, n, 10);
    out.extend_from_slice(b"\r\n");
}

/// Appends `n` in base 10 or 16 without allocating.
fn push_number(out: &mut Vec<u8>, mut n: u64, radix: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[(n % radix) as usize];
        n /= radix;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Frames one chunk of a chunked body.
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    push_number(out, data.len() as u64, 16);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Ends a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Decodes a chunked body from a read buffer, one step at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkState {
    /// Expecting a size line.
    Size,
    /// Inside a chunk, this many bytes left.
    Data(u64),
    /// After a chunk's data, expecting CRLF.
    DataEnd,
    /// After the last chunk, reading trailer lines until an empty one.
    Trailers,
    /// The body is complete.
    Done,
}

/// What one decoding step produced.
#[derive(Debug, PartialEq, Eq)]
pub enum ChunkStep {
    /// Body bytes.
    Data(Bytes),
    /// Consumed framing; call again.
    Progress,
    /// More input is needed.
    NeedMore,
    /// The body is complete.
    Done,
}

/// Longest chunk-size or trailer line accepted.
const MAX_CHUNK_LINE: usize = 8 * 1024;

impl ChunkState {
    /// One step over `buf` (consumed bytes are removed from it).
    pub fn step(&mut self, buf: &mut BytesMut) -> Result<ChunkStep, HeadError> {
        match *self {
            ChunkState::Size => match httparse::parse_chunk_size(buf) {
                Ok(httparse::Status::Complete((n, size))) => {
                    let _ = buf.split_to(n);
                    *self = if size == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data(size)
                    };
                    Ok(ChunkStep::Progress)
                }
                Ok(httparse::Status::Partial) if buf.len() > MAX_CHUNK_LINE => {
                    Err(HeadError::Framing("chunk size line too long"))
                }
                Ok(httparse::Status::Partial) => Ok(ChunkStep::NeedMore),
                Err(_) => Err(HeadError::Framing("invalid chunk size")),
            },
            ChunkState::Data(left) => {
                if buf.is_empty() {
                    return Ok(ChunkStep::NeedMore);
                }
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                let data = buf.split_to(take).freeze();
                let left = left - take as u64;
                *self = if left == 0 {
                    ChunkState::DataEnd
                } else {
                    ChunkState::Data(left)
                };
                Ok(ChunkStep::Data(data))
            }
            ChunkState::DataEnd => {
                if buf.len() < 2 {
                    return Ok(ChunkStep::NeedMore);
                }
                if &buf[..2] != b"\r\n" {
                    return Err(HeadError::Framing("chunk data not followed by CRLF"));
                }
                let _ = buf.split_to(2);
                *self = ChunkState::Size;
                Ok(ChunkStep::Progress)
            }
            ChunkState::Trailers => match buf.windows(2).position(|w| w == b"\r\n") {
                Some(0) => {
                    let _ = buf.split_to(2);
                    *self = ChunkState::Done;
                    Ok(ChunkStep::Done)
                }
                // Trailer fields are not forwarded.
                Some(end) => {
                    let _ = buf.split_to(end + 2);
                    Ok(ChunkStep::Progress)
                }
                None if buf.len() > MAX_CHUNK_LINE => {
                    Err(HeadError::Framing("trailer line too long"))
                }
                None => Ok(ChunkStep::NeedMore),
            },
            ChunkState::Done => Ok(ChunkStep::Done),
        }
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
