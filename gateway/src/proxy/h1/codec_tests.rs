use super::*;

fn head(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

fn request_head_len(buf: &[u8]) -> Result<Option<usize>, HeadError> {
    find_request(buf).map(|found| found.map(|f| f.len))
}

fn request(text: &str) -> Result<RequestHead, HeadError> {
    let bytes = head(text);
    let found = find_request(&bytes)?.expect("a complete head");
    assert_eq!(found.len, bytes.len(), "{text:?}");
    build_request(&bytes, found)
}

fn response(text: &str, method: Method) -> ResponseHead {
    let bytes = head(text);
    let found = find_response(&bytes)
        .expect("a valid response head")
        .expect("a complete head");
    assert_eq!(found.len, bytes.len(), "{text:?}");
    build_response(&bytes, found, &method).expect("a valid response head")
}

/// A request head is found only once complete, and its parts come out as sent.
#[test]
fn parses_a_plain_request_once_complete() {
    let full = "GET /orders/7?x=1 HTTP/1.1\r\nHost: shop\r\nX-A: 1\r\nX-A: 2\r\n\r\n";
    for cut in 1..full.len() {
        assert_eq!(
            request_head_len(&full.as_bytes()[..cut]),
            Ok(None),
            "cut at {cut}"
        );
    }
    let req = request(full).expect("valid");
    assert_eq!(req.parts.method, Method::GET);
    assert_eq!(req.parts.uri.path(), "/orders/7");
    assert_eq!(req.parts.uri.query(), Some("x=1"));
    assert_eq!(req.parts.version, Version::HTTP_11);
    let values: Vec<_> = req.parts.headers.get_all("x-a").iter().collect();
    assert_eq!(values, ["1", "2"]);
    assert_eq!(req.framing, Framing::Empty);
    assert!(req.keep_alive && req.plain);
}

/// Framing by the headers; what this engine leaves to the general server is marked not plain.
#[test]
fn request_framing_and_plainness() {
    let cases = [
        (
            "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
            Framing::Length(5),
            true,
        ),
        (
            "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
            Framing::Length(5),
            true,
        ),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            Framing::Chunked,
            false,
        ),
        (
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
            Framing::Length(5),
            false,
        ),
        (
            "GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            Framing::Empty,
            false,
        ),
        ("GET / HTTP/1.0\r\n\r\n", Framing::Empty, false),
        ("CONNECT db:5432 HTTP/1.1\r\n\r\n", Framing::Empty, false),
    ];
    for (text, framing, plain) in cases {
        let req = request(text).expect(text);
        assert_eq!((req.framing, req.plain), (framing, plain), "{text:?}");
    }
    let close = request("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").expect("valid");
    assert!(!close.keep_alive);
}

/// The request-smuggling shapes and broken lengths are refused with the reason.
#[test]
fn refuses_ambiguous_request_framing() {
    let cases = [
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    ];
    for text in cases {
        assert!(
            matches!(request(text), Err(HeadError::Framing(_))),
            "{text:?} was accepted"
        );
    }
    assert!(matches!(
        request_head_len(b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n"),
        Err(HeadError::Syntax(_))
    ));
}

/// Response framing depends on the request method and the status, then on the headers.
#[test]
fn response_framing() {
    let r = response("HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n", Method::GET);
    assert_eq!((r.framing, r.keep_alive), (Framing::Length(13), true));
    let r = response(
        "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n",
        Method::HEAD,
    );
    assert_eq!(r.framing, Framing::Empty);
    let r = response(
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 13\r\n\r\n",
        Method::GET,
    );
    assert_eq!(r.framing, Framing::Empty);
    let r = response(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        Method::GET,
    );
    assert_eq!((r.framing, r.keep_alive), (Framing::Chunked, true));
    // No length: the body runs to the close, and the connection cannot be reused.
    let r = response("HTTP/1.1 200 OK\r\n\r\n", Method::GET);
    assert_eq!((r.framing, r.keep_alive), (Framing::Close, false));
    let r = response(
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
        Method::GET,
    );
    assert!(!r.keep_alive);
    let r = response("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", Method::GET);
    assert!(!r.keep_alive);
    let r = response(
        "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n",
        Method::GET,
    );
    assert!(r.keep_alive);
}

/// The upstream gets the origin form, the upstream's Host, the headers and its own framing.
#[test]
fn writes_request_heads() {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("client.example"));
    headers.insert("content-length", HeaderValue::from_static("999"));
    headers.insert("x-request-id", HeaderValue::from_static("abc"));
    let uri: Uri = "http://10.0.0.1:8080/a/b?c=d".parse().expect("uri");
    let host = HeaderValue::from_static("10.0.0.1:8080");
    let mut out = Vec::new();
    write_request_head(&mut out, &Method::POST, &uri, &host, &headers, Some(3));
    assert_eq!(
        String::from_utf8(out).expect("ascii"),
        "POST /a/b?c=d HTTP/1.1\r\nhost: 10.0.0.1:8080\r\nx-request-id: abc\r\ncontent-length: 3\r\n\r\n"
    );
    let mut out = Vec::new();
    write_request_head(
        &mut out,
        &Method::GET,
        &uri,
        &host,
        &HeaderMap::new(),
        Some(0),
    );
    assert_eq!(out, b"GET /a/b?c=d HTTP/1.1\r\nhost: 10.0.0.1:8080\r\n\r\n");
    let mut out = Vec::new();
    write_request_head(&mut out, &Method::PUT, &uri, &host, &HeaderMap::new(), None);
    assert!(out.ends_with(b"transfer-encoding: chunked\r\n\r\n"));
}

/// Response heads: the status line, the given headers, the framing chosen, a Date when absent.
#[test]
fn writes_response_heads() {
    let mut headers = HeaderMap::new();
    headers.insert("content-length", HeaderValue::from_static("5"));
    headers.insert("x-fig-side", HeaderValue::from_static("new"));
    let date = b"Fri, 04 Dec 2026 10:00:00 GMT";
    let mut out = Vec::new();
    write_response_head(
        &mut out,
        StatusCode::OK,
        &headers,
        ResponseFraming::Length(5),
        false,
        date,
    );
    assert_eq!(
        String::from_utf8(out).expect("ascii"),
        "HTTP/1.1 200 OK\r\nx-fig-side: new\r\ncontent-length: 5\r\ndate: Fri, 04 Dec 2026 10:00:00 GMT\r\n\r\n"
    );
    let mut out = Vec::new();
    write_response_head(
        &mut out,
        StatusCode::BAD_GATEWAY,
        &HeaderMap::new(),
        ResponseFraming::Chunked,
        true,
        date,
    );
    let text = String::from_utf8(out).expect("ascii");
    assert!(text.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{text}");
    assert!(
        text.contains("transfer-encoding: chunked\r\n") && text.contains("connection: close\r\n")
    );
    // A HEAD answer keeps the upstream's length as it is.
    let mut out = Vec::new();
    write_response_head(
        &mut out,
        StatusCode::OK,
        &headers,
        ResponseFraming::Bodiless,
        false,
        date,
    );
    assert!(
        String::from_utf8(out)
            .expect("ascii")
            .contains("content-length: 5\r\n")
    );
}

/// Decodes every chunk however the bytes arrive, skips trailers, and stops at the end.
#[test]
fn decodes_chunked_bodies_in_any_split() {
    let wire = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nx-trailer: t\r\n\r\nNEXT";
    for split in 1..wire.len() {
        let mut state = ChunkState::Size;
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            match state.step(&mut buf).expect("valid framing") {
                ChunkStep::Data(d) => body.extend_from_slice(&d),
                ChunkStep::Progress => {}
                ChunkStep::Done => break,
                ChunkStep::NeedMore => {
                    let end = (fed + split).min(wire.len());
                    assert!(fed < end, "ran out of input at split {split}");
                    buf.extend_from_slice(&wire[fed..end]);
                    fed = end;
                }
            }
        }
        assert_eq!(body, b"hello, world", "split {split}");
        let mut rest = buf.to_vec();
        rest.extend_from_slice(&wire[fed..]);
        assert_eq!(rest, b"NEXT", "split {split}");
    }
}

/// Broken chunk framing is an error, not a guess.
#[test]
fn refuses_broken_chunks() {
    for wire in [&b"zz\r\n"[..], b"3\r\nabcX\r\n"] {
        let mut state = ChunkState::Size;
        let mut buf = BytesMut::from(wire);
        let failed = (0..10).any(|_| state.step(&mut buf).is_err());
        assert!(failed, "{:?} was accepted", String::from_utf8_lossy(wire));
    }
}

/// Chunks are framed in hex, and an empty one is never written (it would end the body).
#[test]
fn writes_chunks() {
    let mut out = Vec::new();
    write_chunk(&mut out, &[b'a'; 26]);
    write_chunk(&mut out, b"");
    out.extend_from_slice(LAST_CHUNK);
    let mut expected = b"1a\r\n".to_vec();
    expected.extend_from_slice(&[b'a'; 26]);
    expected.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_eq!(out, expected);
}
