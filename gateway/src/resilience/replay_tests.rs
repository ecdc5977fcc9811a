//! Tests of request-body buffering for retries and fallbacks.

use super::*;
use futures_util::stream;
use http_body_util::{Full, StreamBody};

fn full(bytes: &'static [u8]) -> AttemptBody {
    Full::new(Bytes::from_static(bytes))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A chunked body (no size hint) made of `chunks`, optionally failing at the end.
fn chunked(chunks: &[&'static [u8]], fail: bool) -> AttemptBody {
    let mut frames: Vec<Result<Frame<Bytes>, BoxError>> = chunks
        .iter()
        .map(|c| Ok(Frame::data(Bytes::from_static(c))))
        .collect();
    if fail {
        frames.push(Err("client went away".into()));
    }
    StreamBody::new(stream::iter(frames)).boxed_unsync()
}

async fn collect(body: AttemptBody) -> Result<Bytes, BoxError> {
    Ok(body.collect().await?.to_bytes())
}

const PATIENCE: Duration = Duration::from_secs(5);

/// A body within the limit is sent whole to every attempt, with its exact length.
#[tokio::test]
async fn small_body_is_replayed_to_every_attempt() {
    let mut body =
        ReplayableBody::read(chunked(&[b"hello ", b"world"], false), Some(64), PATIENCE).await;
    assert!(body.replayable());
    for _ in 0..3 {
        let attempt = body.for_attempt();
        assert_eq!(attempt.size_hint().exact(), Some(11));
        assert_eq!(collect(attempt).await.expect("body"), "hello world");
    }
}

/// A body whose declared length is over the limit is not read: it streams once, unchanged.
#[tokio::test]
async fn declared_length_over_limit_streams_once() {
    let mut body = ReplayableBody::read(full(b"0123456789"), Some(4), PATIENCE).await;
    assert!(!body.replayable());
    assert_eq!(
        body.not_buffered(),
        Some(NotBuffered::OverLimit { limit: 4 })
    );
    let first = body.for_attempt();
    assert_eq!(first.size_hint().exact(), Some(10));
    assert_eq!(collect(first).await.expect("body"), "0123456789");
    assert_eq!(collect(body.for_attempt()).await.expect("empty"), "");
}

/// A chunked body that passes the limit while being read keeps every byte, in order, for its
/// single attempt.
#[tokio::test]
async fn chunked_body_over_limit_keeps_what_was_read_in_front() {
    let mut body =
        ReplayableBody::read(chunked(&[b"abc", b"def", b"ghi"], false), Some(5), PATIENCE).await;
    assert_eq!(
        body.not_buffered(),
        Some(NotBuffered::OverLimit { limit: 5 })
    );
    assert_eq!(
        collect(body.for_attempt()).await.expect("body"),
        "abcdefghi"
    );
}

/// A client's body error is not swallowed: the attempt reports it after the bytes read.
#[tokio::test]
async fn client_error_reaches_the_attempt() {
    let mut body = ReplayableBody::read(chunked(&[b"abc"], true), Some(64), PATIENCE).await;
    assert_eq!(body.not_buffered(), Some(NotBuffered::ReadFailed));
    let err = collect(body.for_attempt()).await.expect_err("the error");
    assert_eq!(err.to_string(), "client went away");
}

/// A request no rule may resend is streamed without reading anything.
#[tokio::test]
async fn never_resent_requests_are_not_buffered() {
    let mut body = ReplayableBody::read(full(b"payload"), None, PATIENCE).await;
    assert_eq!(body.not_buffered(), Some(NotBuffered::NeverResent));
    assert_eq!(collect(body.for_attempt()).await.expect("body"), "payload");
}

/// No body: replayable, and every attempt sends an empty body.
#[tokio::test]
async fn empty_body_is_replayable() {
    let mut body = ReplayableBody::read(full(b""), None, PATIENCE).await;
    assert!(body.replayable());
    for _ in 0..2 {
        let attempt = body.for_attempt();
        assert!(attempt.is_end_stream());
        assert_eq!(collect(attempt).await.expect("empty"), "");
    }
}

/// A client slower than the patience is not waited for: its body streams once, whole.
#[tokio::test(start_paused = true)]
async fn slow_client_body_streams_once() {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
    tx.send(Ok(Frame::data(Bytes::from_static(b"first "))))
        .await
        .expect("send");
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    let client = StreamBody::new(stream).boxed_unsync();
    let mut body = ReplayableBody::read(client, Some(1024), Duration::from_millis(100)).await;
    assert_eq!(body.not_buffered(), Some(NotBuffered::TooSlow));
    tx.send(Ok(Frame::data(Bytes::from_static(b"second"))))
        .await
        .expect("send");
    drop(tx);
    assert_eq!(
        collect(body.for_attempt()).await.expect("body"),
        "first second"
    );
}

/// Trailers are kept and sent after the data on every attempt.
#[tokio::test]
async fn trailers_are_replayed() {
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", "abc".parse().expect("value"));
    let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
        Ok(Frame::data(Bytes::from_static(b"data"))),
        Ok(Frame::trailers(trailers.clone())),
    ];
    let mut body = ReplayableBody::read(
        StreamBody::new(stream::iter(frames)).boxed_unsync(),
        Some(64),
        PATIENCE,
    )
    .await;
    for _ in 0..2 {
        let collected = body.for_attempt().collect().await.expect("body");
        assert_eq!(collected.trailers(), Some(&trailers));
        assert_eq!(collected.to_bytes(), "data");
    }
}
