//! Readiness is never held across a token wait: poll by poll with `tower_test`,
//! and a cold burst of 50 through one `ConcurrencyLimit(1)` shared by the token
//! client and the API (a real hyper-util client on loopback).

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{join_all, BoxFuture};
use futures_util::FutureExt;
use http::{Request, Response};
use http_body_util::Full;
use tokio::sync::oneshot;
use tokio_test::{assert_pending, assert_ready_ok, task};
use tower::limit::ConcurrencyLimitLayer;
use tower::{Layer, Service, ServiceExt};
use tower_client_auth::oauth2::{OAuth2Source, TokenClient};
use tower_client_auth::token::{Token, TokenSource};
use tower_client_auth::{AuthLayer, Credential, Error, ReplayBody};

use common::{client, header, json, serve, text};

/// A token source that answers only when the test says so.
struct Gated(Mutex<Option<oneshot::Receiver<()>>>);

impl TokenSource for Gated {
    fn fetch(&self, _: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>> {
        let gate = self.0.lock().unwrap().take();
        Box::pin(async move {
            if let Some(gate) = gate {
                let _ = gate.await;
            }
            Ok(Token::bearer("tok-1", Some(Duration::from_secs(3600))))
        })
    }
}

/// Counts `poll_ready` calls on the service below it.
#[derive(Clone)]
struct CountReady<S> {
    inner: S,
    polls: Arc<AtomicUsize>,
}

impl<S: Service<R>, R> Service<R> for CountReady<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> S::Future {
        self.inner.call(req)
    }
}

#[tokio::test]
async fn the_inner_service_is_not_polled_ready_while_the_token_is_fetched() {
    let (open, gate) = oneshot::channel();
    let cred = Credential::builder()
        .origin("https://api.example.com")
        .token_source(Gated(Mutex::new(Some(gate))))
        .build()
        .unwrap();
    let (mock, mut handle) = tower_test::mock::pair::<Request<Full<Bytes>>, Response<()>>();
    handle.allow(10);
    let limited = ConcurrencyLimitLayer::new(1).layer(mock);
    let polls = Arc::new(AtomicUsize::new(0));
    let counted = CountReady {
        inner: limited.clone(),
        polls: polls.clone(),
    };
    let mut svc = AuthLayer::new(cred).without_retry().layer(counted);

    // The caller drives the layer to readiness: that takes the one permit.
    let mut ready = task::spawn(());
    assert_ready_ok!(ready.enter(|cx, _| svc.poll_ready(cx)));
    assert_eq!(polls.load(Ordering::SeqCst), 1);
    let req = Request::get("https://api.example.com/v1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let mut fut = task::spawn(svc.call(req));
    assert_pending!(fut.poll());

    // While the token is fetched, the permit is free for anyone else (the token
    // request itself, other origins) ...
    let mut other = limited.clone();
    assert_ready_ok!(ready.enter(|cx, _| other.poll_ready(cx)));
    drop(other);
    // ... and the waiting request does not poll the inner service at all.
    for _ in 0..5 {
        tokio::task::yield_now().await;
        assert_pending!(fut.poll());
    }
    assert_eq!(
        polls.load(Ordering::SeqCst),
        1,
        "polled ready during the token wait"
    );

    // The token arrives: only now is a clone driven to readiness, then called.
    open.send(()).unwrap();
    let mut sent = None;
    for _ in 0..20 {
        tokio::task::yield_now().await;
        assert_pending!(fut.poll());
        if let Some(Some(r)) = handle.next_request().now_or_never() {
            sent = Some(r);
            break;
        }
    }
    let (req, respond) = sent.expect("request sent once the token came");
    assert_eq!(polls.load(Ordering::SeqCst), 2);
    assert_eq!(req.headers()["authorization"], "Bearer tok-1");
    respond.send_response(Response::new(()));
    assert_ready_ok!(fut.poll());
}

#[tokio::test]
async fn a_cold_burst_through_one_concurrency_limit_shared_with_the_token_client() {
    let token_requests = Arc::new(AtomicUsize::new(0));
    let counter = token_requests.clone();
    let addr = serve(move |req| {
        let counter = counter.clone();
        async move {
            if req.uri().path() == "/token" {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                return json(
                    200,
                    r#"{"access_token":"tok-1","token_type":"Bearer","expires_in":3600}"#,
                );
            }
            match header(&req, "authorization") {
                Some("Bearer tok-1") => text(200, "ok"),
                _ => text(401, ""),
            }
        }
    })
    .await;
    let base = format!("http://{addr}");
    // One client, one permit, for the token endpoint and the API alike.
    let http = ConcurrencyLimitLayer::new(1).layer(client::<ReplayBody<Full<Bytes>>>());
    let token_client = TokenClient::builder(format!("{base}/token"))
        .client_id("id")
        .client_secret("secret")
        .build(http.clone())
        .unwrap();
    let cred = Credential::builder()
        .origin(&base)
        .token_source(OAuth2Source::client_credentials(token_client))
        .build()
        .unwrap();
    let api = AuthLayer::new(cred.clone()).layer(http);
    let burst = (0..50).map(|i| {
        let req = Request::get(format!("{base}/v1/items/{i}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        api.clone().oneshot(req)
    });
    let results = tokio::time::timeout(Duration::from_secs(20), join_all(burst))
        .await
        .expect("the burst stalled");
    let ok = results
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|r| r.status() == 200))
        .count();
    assert_eq!(ok, 50, "{results:?}");
    assert_eq!(token_requests.load(Ordering::SeqCst), 1);
    assert_eq!(cred.stats().unwrap().token_requests, 1);
}

/// `tok-1` (after a gate), `tok-2`, ...
struct GatedCounting {
    gate: Mutex<Option<oneshot::Receiver<()>>>,
    calls: AtomicUsize,
}

impl TokenSource for GatedCounting {
    fn fetch(&self, _: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>> {
        let gate = self.gate.lock().unwrap().take();
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move {
            if let Some(gate) = gate {
                let _ = gate.await;
            }
            Ok(Token::bearer(
                format!("tok-{n}"),
                Some(Duration::from_secs(3600)),
            ))
        })
    }
}

#[tokio::test]
async fn a_token_retired_while_the_service_gets_ready_is_not_sent() {
    let (open, gate) = oneshot::channel();
    let cred = Credential::builder()
        .origin("https://api.example.com")
        .token_source(GatedCounting {
            gate: Mutex::new(Some(gate)),
            calls: AtomicUsize::new(0),
        })
        .build()
        .unwrap();
    let (mock, mut handle) = tower_test::mock::pair::<Request<Full<Bytes>>, Response<()>>();
    handle.allow(10);
    let limited = ConcurrencyLimitLayer::new(1).layer(mock);
    let mut svc = AuthLayer::new(cred.clone())
        .without_retry()
        .layer(limited.clone());
    let mut cx = task::spawn(());
    assert_ready_ok!(cx.enter(|cx, _| svc.poll_ready(cx)));
    let req = Request::get("https://api.example.com/v1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let mut fut = task::spawn(svc.call(req));
    assert_pending!(fut.poll());
    // Someone else holds the only permit when the token arrives.
    let mut blocker = limited.clone();
    assert_ready_ok!(cx.enter(|cx, _| blocker.poll_ready(cx)));
    open.send(()).unwrap();
    for _ in 0..5 {
        tokio::task::yield_now().await;
        assert_pending!(fut.poll());
    }
    // The token is revoked while the request waits for the permit.
    cred.invalidate();
    drop(blocker);
    let mut sent = None;
    for _ in 0..20 {
        tokio::task::yield_now().await;
        assert_pending!(fut.poll());
        if let Some(Some(r)) = handle.next_request().now_or_never() {
            sent = Some(r);
            break;
        }
    }
    let (req, respond) = sent.expect("sent with the next token");
    assert_eq!(req.headers()["authorization"], "Bearer tok-2");
    respond.send_response(Response::new(()));
    assert_ready_ok!(fut.poll());
}
