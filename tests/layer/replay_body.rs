//! Re-sending request bodies after a 401: byte-identical replays, the cap,
//! empty bodies, trailers, size hints, early 401s and a superseded first body.

use crate::common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use tower::{service_fn, Layer, ServiceExt};
use tower_client_auth::token::ManagedOptions;
use tower_client_auth::{AuthLayer, Credential, ReplayBody};

use common::source::Scripted;

const API: &str = "https://api.example.com";

#[derive(Default, Clone, Debug, PartialEq)]
struct Attempt {
    auth: String,
    bytes: Vec<u8>,
    trailers: Option<HeaderMap>,
    size_hint: (u64, Option<u64>),
}

/// An API that reads each body whole (data and trailers), records it, and answers
/// 401 to `tok-1`.
fn recording_api<B>(
    log: Arc<Mutex<Vec<Attempt>>>,
) -> impl tower::Service<
    Request<ReplayBody<B>>,
    Response = Response<String>,
    Error = Infallible,
    Future = impl Send,
> + Clone
where
    B: Body + Send + 'static,
    B::Error: Into<tower_client_auth::BoxError>,
{
    service_fn(move |req: Request<ReplayBody<B>>| {
        let log = log.clone();
        async move {
            let auth = req.headers()["authorization"].to_str().unwrap().to_owned();
            let hint = req.body().size_hint();
            let collected = req.into_body().collect().await.expect("body readable");
            let trailers = collected.trailers().cloned();
            let bytes = collected.to_bytes().to_vec();
            log.lock().unwrap().push(Attempt {
                auth: auth.clone(),
                bytes,
                trailers,
                size_hint: (hint.lower(), hint.upper()),
            });
            let status = if auth == "Bearer tok-1" { 401 } else { 200 };
            Ok(Response::builder().status(status).body(auth).unwrap())
        }
    })
}

fn credential() -> (Credential, Scripted) {
    let source = Scripted::tokens(Some(Duration::from_secs(3600)), Duration::ZERO);
    let cred = Credential::builder()
        .origin(API)
        .token_source_with(source.clone(), ManagedOptions::default())
        .build()
        .unwrap();
    (cred, source)
}

fn post<B>(body: B) -> Request<B> {
    Request::post(format!("{API}/graphql")).body(body).unwrap()
}

fn chunks(total: usize) -> Vec<Bytes> {
    // Uneven chunk sizes, distinct bytes: a duplicated or lost chunk shows.
    let mut out = Vec::new();
    let mut n = 0usize;
    let mut size = 1;
    while n < total {
        let len = size.min(total - n);
        out.push(Bytes::from(
            (n..n + len).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
        ));
        n += len;
        size = size * 3 % 997 + 1;
    }
    out
}

fn streamed(
    parts: Vec<Bytes>,
    trailers: Option<HeaderMap>,
) -> StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>>> {
    let frames = parts
        .into_iter()
        .map(Frame::data)
        .chain(trailers.map(Frame::trailers))
        .map(Ok);
    StreamBody::new(stream::iter(frames))
}

#[tokio::test]
async fn a_streamed_body_under_the_cap_is_replayed_byte_identical() {
    let (cred, source) = credential();
    let log = Arc::default();
    let svc = AuthLayer::new(cred.clone()).layer(recording_api(Arc::clone(&log)));
    let parts = chunks(60 * 1024);
    let expected: Vec<u8> = parts.iter().flatten().copied().collect();
    let res = svc.oneshot(post(streamed(parts, None))).await.unwrap();
    assert_eq!(res.status(), 200);
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].auth, "Bearer tok-1");
    assert_eq!(log[1].auth, "Bearer tok-2");
    assert_eq!(log[0].bytes, expected);
    assert_eq!(
        log[1].bytes, expected,
        "replay identical: nothing lost or doubled"
    );
    assert_eq!(
        log[1].size_hint,
        (expected.len() as u64, Some(expected.len() as u64))
    );
    assert_eq!(source.calls(), 2);
}

#[tokio::test]
async fn any_data_type_works_and_size_hints_survive() {
    let (cred, _) = credential();
    let log = Arc::default();
    let svc = AuthLayer::new(cred).layer(recording_api::<Full<&'static [u8]>>(Arc::clone(&log)));
    let res = svc
        .oneshot(post(Full::new(&b"{\"query\":\"{ me }\"}"[..])))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let log = log.lock().unwrap();
    assert_eq!(log[0].bytes, b"{\"query\":\"{ me }\"}");
    assert_eq!(log[1].bytes, log[0].bytes);
    assert_eq!(log[0].size_hint, (18, Some(18)));
    assert_eq!(log[1].size_hint, (18, Some(18)));
}

#[tokio::test]
async fn over_the_cap_the_original_401_comes_back_and_the_token_is_stale() {
    let (cred, source) = credential();
    let log = Arc::default();
    let svc = AuthLayer::new(cred.clone()).layer(recording_api(Arc::clone(&log)));
    // Streamed with no size hint, so the cap is found while streaming.
    let res = svc
        .clone()
        .oneshot(post(streamed(chunks(70 * 1024), None)))
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.into_body(),
        "Bearer tok-1",
        "the original 401, unchanged"
    );
    assert_eq!(log.lock().unwrap().len(), 1, "not re-sent");
    // A known-large body is not even recorded.
    let big = Full::new(Bytes::from(vec![7u8; 65 * 1024]));
    let svc_full = AuthLayer::new(cred.clone()).layer(recording_api::<Full<Bytes>>(Arc::default()));
    tokio::task::yield_now().await;
    let res = svc_full.oneshot(post(big)).await.unwrap();
    // The token was marked stale by the first 401, so this one already used tok-2.
    assert_eq!(res.status(), 200);
    assert_eq!(source.calls(), 2);
    // A custom cap.
    let log2 = Arc::default();
    let small = AuthLayer::new(cred)
        .max_replay_body(1024)
        .layer(recording_api(Arc::clone(&log2)));
    let res = small
        .oneshot(post(streamed(chunks(512), None)))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn empty_bodies_are_replayed_for_free() {
    let (cred, _) = credential();
    let log = Arc::default();
    let svc = AuthLayer::new(cred).layer(recording_api::<Empty<Bytes>>(Arc::clone(&log)));
    let res = svc.oneshot(post(Empty::new())).await.unwrap();
    assert_eq!(res.status(), 200);
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 2);
    assert!(log[0].bytes.is_empty() && log[1].bytes.is_empty());
    assert_eq!(log[1].size_hint, (0, Some(0)));
}

#[tokio::test]
async fn trailers_are_replayed() {
    let (cred, _) = credential();
    let log = Arc::default();
    let svc = AuthLayer::new(cred).layer(recording_api(Arc::clone(&log)));
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    trailers.insert("x-checksum", "abc123".parse().unwrap());
    let body = streamed(chunks(3000), Some(trailers.clone()));
    let res = svc.oneshot(post(body)).await.unwrap();
    assert_eq!(res.status(), 200);
    let log = log.lock().unwrap();
    assert_eq!(log[0].trailers.as_ref(), Some(&trailers));
    assert_eq!(log[1].trailers.as_ref(), Some(&trailers));
    assert_eq!(log[0].bytes, log[1].bytes);
}

#[tokio::test]
async fn a_401_before_the_body_was_read_replays_all_of_it_once() {
    let (cred, _) = credential();
    let log: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let l = log.clone();
    // Reads only the first frame of the first attempt, then answers 401.
    let api = service_fn(move |req: Request<ReplayBody<_>>| {
        let log = l.clone();
        async move {
            let auth = req.headers()["authorization"].to_str().unwrap().to_owned();
            let mut body = req.into_body();
            let bytes = if auth == "Bearer tok-1" {
                let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
                first.to_vec()
            } else {
                body.collect().await.unwrap().to_bytes().to_vec()
            };
            log.lock().unwrap().push(bytes);
            let status = if auth == "Bearer tok-1" { 401 } else { 200 };
            Ok::<_, Infallible>(Response::builder().status(status).body(()).unwrap())
        }
    });
    let svc = AuthLayer::new(cred).layer(api);
    let parts = chunks(10_000);
    let expected: Vec<u8> = parts.iter().flatten().copied().collect();
    let first_len = parts[0].len();
    let res = svc.oneshot(post(streamed(parts, None))).await.unwrap();
    assert_eq!(res.status(), 200);
    let log = log.lock().unwrap();
    assert_eq!(log[0].len(), first_len);
    assert_eq!(log[1], expected);
}

#[tokio::test]
async fn a_first_body_polled_after_the_replay_started_errors_instead_of_panicking() {
    let (cred, _) = credential();
    type Kept = Arc<Mutex<Option<ReplayBody<Full<Bytes>>>>>;
    let kept: Kept = Arc::default();
    let k = kept.clone();
    let api = service_fn(move |req: Request<ReplayBody<Full<Bytes>>>| {
        let kept = k.clone();
        async move {
            let auth = req.headers()["authorization"].to_str().unwrap().to_owned();
            if auth == "Bearer tok-1" {
                // Keep the first body unread and say 401.
                *kept.lock().unwrap() = Some(req.into_body());
                return Ok::<_, Infallible>(
                    Response::builder().status(401).body(Vec::new()).unwrap(),
                );
            }
            // During the retry, poll the superseded first body.
            let old = kept.lock().unwrap().take().unwrap();
            assert!(
                old.collect().await.is_err(),
                "superseded body must not yield data"
            );
            let bytes = req.into_body().collect().await.unwrap().to_bytes().to_vec();
            Ok(Response::new(bytes))
        }
    });
    let svc = AuthLayer::new(cred).layer(api);
    let res = svc
        .oneshot(post(Full::new(Bytes::from_static(b"payload"))))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.into_body(), b"payload");
}
