//! Tests of the request-body tee: the primary always gets exactly the client's bytes.

use std::convert::Infallible;

use http_body_util::{BodyExt, Empty, Full, StreamBody};

use super::*;

fn chunked(
    body: &[u8],
    chunk: usize,
) -> StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> + use<>> {
    let chunks: Vec<Result<Frame<Bytes>, Infallible>> = body
        .chunks(chunk.max(1))
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    StreamBody::new(futures_util::stream::iter(chunks))
}

fn body_of(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Below, at and above the bound, in any chunking, the primary receives exactly the original
/// bytes; the copy is the whole body when it fits and abandoned when it does not.
#[tokio::test]
async fn primary_gets_exact_bytes_below_and_above_the_bound() {
    let limit = 1_000;
    let cases = [
        (0, 7),
        (1, 1),
        (999, 100),
        (1_000, 1_000),
        (1_000, 3),
        (1_001, 1_001),
        (1_001, 10),
        (10_000, 4_096),
        (100_000, 65_536),
    ];
    for (len, chunk) in cases {
        let original = body_of(len);
        let (primary, copy) = tee(chunked(&original, chunk), limit);
        let received = primary.collect().await.expect("infallible").to_bytes();
        assert_eq!(
            received.as_ref(),
            original.as_slice(),
            "len {len} chunk {chunk}"
        );
        let want = if len <= limit {
            TeeOutcome::Complete(Bytes::from(original.clone()))
        } else {
            TeeOutcome::OverBound { limit }
        };
        assert_eq!(copy.outcome().await, want, "len {len} chunk {chunk}");
    }
}

/// The copy is abandoned as soon as the bound is crossed, while the primary is still streaming.
#[tokio::test]
async fn over_bound_is_known_before_the_primary_ends() {
    let original = body_of(400);
    let (mut primary, mut copy) = tee(chunked(&original, 100), 250);
    let mut received = Vec::new();
    for expected in [None, None, Some(TeeOutcome::OverBound { limit: 250 })] {
        let frame = primary
            .frame()
            .await
            .expect("more frames")
            .expect("infallible");
        received.extend_from_slice(frame.data_ref().expect("data frame"));
        assert_eq!(
            copy.try_outcome(),
            expected,
            "after {} bytes",
            received.len()
        );
    }
    while let Some(frame) = primary.frame().await {
        received.extend_from_slice(frame.expect("infallible").data_ref().expect("data"));
    }
    assert_eq!(received, original);
}

/// A body whose exact size exceeds the bound is abandoned before a byte flows.
#[tokio::test]
async fn known_oversized_body_is_skipped_up_front() {
    let (primary, mut copy) = tee(Full::new(Bytes::from(body_of(2_000))), 1_000);
    assert_eq!(
        copy.try_outcome(),
        Some(TeeOutcome::OverBound { limit: 1_000 })
    );
    let received = primary.collect().await.expect("infallible").to_bytes();
    assert_eq!(received.as_ref(), body_of(2_000).as_slice());
}

/// An empty body completes at once, since hyper never polls a body that is already at its end.
#[tokio::test]
async fn empty_body_completes_without_polling() {
    let (_primary, mut copy) = tee(Empty::<Bytes>::new(), 10);
    assert_eq!(copy.try_outcome(), Some(TeeOutcome::Complete(Bytes::new())));
}

/// A single-chunk body completes when its last frame is read, without waiting for a final poll.
#[tokio::test]
async fn completes_on_the_last_frame() {
    let (mut primary, mut copy) = tee(Full::new(Bytes::from_static(b"hello")), 10);
    let _ = primary.frame().await;
    assert_eq!(
        copy.try_outcome(),
        Some(TeeOutcome::Complete(Bytes::from_static(b"hello")))
    );
}

/// A primary body dropped half-way or failing tells the shadow to skip, and the error still
/// reaches the primary.
#[tokio::test]
async fn aborted_primary_aborts_the_copy() {
    let (mut primary, copy) = tee(chunked(&body_of(300), 100), 1_000);
    let _ = primary.frame().await;
    drop(primary);
    assert_eq!(copy.outcome().await, TeeOutcome::Aborted);

    let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
        Ok(Frame::data(Bytes::from_static(b"abc"))),
        Err(std::io::Error::other("client reset")),
    ];
    let (primary, copy) = tee(StreamBody::new(futures_util::stream::iter(frames)), 1_000);
    let err = primary.collect().await.expect_err("error passed through");
    assert_eq!(err.to_string(), "client reset");
    assert_eq!(copy.outcome().await, TeeOutcome::Aborted);
}

/// The primary's size hint and trailers are passed through untouched.
#[tokio::test]
async fn size_hint_and_trailers_pass_through() {
    let (primary, _copy) = tee(Full::new(Bytes::from_static(b"12345")), 10);
    assert_eq!(primary.size_hint().exact(), Some(5));
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-checksum", "abc".parse().expect("value"));
    let frames: Vec<Result<Frame<Bytes>, Infallible>> = vec![
        Ok(Frame::data(Bytes::from_static(b"ab"))),
        Ok(Frame::trailers(trailers.clone())),
    ];
    let (primary, copy) = tee(StreamBody::new(futures_util::stream::iter(frames)), 10);
    let collected = primary.collect().await.expect("infallible");
    assert_eq!(collected.trailers(), Some(&trailers));
    assert_eq!(
        copy.outcome().await,
        TeeOutcome::Complete(Bytes::from_static(b"ab"))
    );
}

/// Starts a real HTTP/1.1 server on 127.0.0.1:0 that answers each request with its own body.
async fn echo_server() -> std::net::SocketAddr {
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let echo = service_fn(|request: http::Request<hyper::body::Incoming>| async move {
                    let body = request.into_body().collect().await?.to_bytes();
                    Ok::<_, hyper::Error>(http::Response::new(Full::new(body)))
                });
                let io = TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, echo)
                    .await;
            });
        }
    });
    addr
}

/// Sends `body` to `addr` over a fresh HTTP/1.1 connection and returns the echoed bytes.
async fn send<B>(addr: std::net::SocketAddr, body: B) -> Bytes
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let request = http::Request::post("/echo").body(body).expect("request");
    let response = sender.send_request(request).await.expect("response");
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
}

/// Through a real hyper client and server, the primary upstream receives exactly the client's
/// bytes for fixed-size and chunked bodies below and above the bound, and the copy matches.
#[tokio::test]
async fn real_http_primary_receives_original_bytes() {
    let addr = echo_server().await;
    let limit = 1_000;
    for (len, chunk) in [
        (0, 0),
        (10, 0),
        (1_000, 0),
        (5_000, 0),
        (999, 64),
        (50_000, 4_096),
    ] {
        let original = body_of(len);
        let (echoed, outcome) = if chunk == 0 {
            let (primary, copy) = tee(Full::new(Bytes::from(original.clone())), limit);
            (send(addr, primary).await, copy.outcome().await)
        } else {
            let (primary, copy) = tee(chunked(&original, chunk), limit);
            (send(addr, primary).await, copy.outcome().await)
        };
        assert_eq!(
            echoed.as_ref(),
            original.as_slice(),
            "len {len} chunk {chunk}"
        );
        let want = if len <= limit {
            TeeOutcome::Complete(Bytes::from(original))
        } else {
            TeeOutcome::OverBound { limit }
        };
        assert_eq!(outcome, want, "len {len} chunk {chunk}");
    }
}

/// Each tee outcome maps to the shadow body or to the skip reason that gets counted.
#[test]
fn outcome_maps_to_body_or_skip_reason() {
    let cases = [
        (
            TeeOutcome::Complete(Bytes::from_static(b"x")),
            Ok(Bytes::from_static(b"x")),
        ),
        (
            TeeOutcome::OverBound { limit: 1 },
            Err(SkipReason::BodyOverBound),
        ),
        (TeeOutcome::Aborted, Err(SkipReason::BodyAborted)),
    ];
    for (outcome, want) in cases {
        assert_eq!(outcome.clone().into_body(), want, "{outcome:?}");
    }
}

proptest::proptest! {
    /// For any body, chunking and bound, the primary gets the original bytes unchanged and the
    /// copy is the whole body exactly when it fits.
    #[test]
    fn any_body_any_chunking_any_bound(
        len in 0usize..6_000,
        chunk in 1usize..2_000,
        limit in 0usize..4_000,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let original = body_of(len);
        let (received, outcome) = runtime.block_on(async {
            let (primary, copy) = tee(chunked(&original, chunk), limit);
            let received = primary.collect().await.expect("infallible").to_bytes();
            (received, copy.outcome().await)
        });
        proptest::prop_assert_eq!(received.as_ref(), original.as_slice());
        let want = if len <= limit {
            TeeOutcome::Complete(Bytes::from(original.clone()))
        } else {
            TeeOutcome::OverBound { limit }
        };
        proptest::prop_assert_eq!(outcome, want);
    }
}
