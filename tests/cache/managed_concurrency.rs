//! Single flight under load, against a counting token server on loopback:
//! 10,000 concurrent requests on an empty or expired cache make one token
//! request; 10,000 requests that all get 401 make one refresh and are each
//! retried exactly once; a cancelled initiator wedges nobody.

use crate::common;

use std::convert::Infallible;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower::{service_fn, Layer, ServiceExt};
use tower_client_auth::oauth2::{OAuth2Source, TokenClient};
use tower_client_auth::{AuthLayer, Credential, ReplayBody};

use common::{client, json, serve, Seen};

const N: usize = 10_000;
const API: &str = "https://api.example.com";

/// A token server that counts requests and issues `at-1`, `at-2`, ...; the first
/// lives `lifetime_secs`, later ones an hour.
async fn token_server(delay: Duration, lifetime_secs: u64) -> (String, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let addr = serve(move |_req: Seen| {
        let n = c.fetch_add(1, Ordering::SeqCst) + 1;
        let lifetime_secs = if n == 1 { lifetime_secs } else { 3600 };
        async move {
            tokio::time::sleep(delay).await;
            json(
                200,
                &format!(r#"{{"access_token":"at-{n}","token_type":"bearer","expires_in":{lifetime_secs}}}"#),
            )
        }
    })
    .await;
    (format!("http://{addr}/token"), count)
}

fn credential(token_url: &str) -> Credential {
    let tc = TokenClient::builder(token_url)
        .client_id("cid")
        .client_secret("cs")
        .build(client::<Full<Bytes>>())
        .unwrap();
    Credential::builder()
        .origin(API)
        .token_source(OAuth2Source::client_credentials(tc))
        .build()
        .unwrap()
}

type ApiReq = Request<ReplayBody<Full<Bytes>>>;

fn auth_of(req: &ApiReq) -> String {
    req.headers()["authorization"].to_str().unwrap().to_owned()
}

fn request(i: usize) -> Request<Full<Bytes>> {
    Request::get(format!("{API}/v1/items/{i}"))
        .header("x-req", i.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_requests_on_an_empty_cache_make_one_token_request() {
    let (url, count) = token_server(Duration::from_millis(50), 3600).await;
    let cred = credential(&url);
    let api =
        service_fn(|req: ApiReq| async move { Ok::<_, Infallible>(Response::new(auth_of(&req))) });
    let svc = AuthLayer::new(cred.clone()).layer(api);
    let tasks: Vec<_> = (0..N)
        .map(|i| tokio::spawn(svc.clone().oneshot(request(i))))
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().into_body(), "Bearer at-1");
    }
    assert_eq!(count.load(Ordering::SeqCst), 1);
    let stats = cred.stats().unwrap();
    assert_eq!(stats.token_requests, 1);
    assert!(stats.coalesced_waiters >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_requests_on_an_expired_cache_make_one_token_request() {
    // A one-second first token and no refresh ahead: the cache really expires
    // (retired at 0.95 s). The next token lives an hour, so a slow burst still sees
    // one token request.
    let (url, count) = token_server(Duration::from_millis(20), 1).await;
    let tc = TokenClient::builder(&url)
        .client_id("cid")
        .client_secret("cs")
        .build(client::<Full<Bytes>>())
        .unwrap();
    let options =
        tower_client_auth::token::ManagedOptions::default().max_refresh_ahead(Duration::ZERO);
    let cred = Credential::builder()
        .origin(API)
        .token_source_with(OAuth2Source::client_credentials(tc), options)
        .build()
        .unwrap();
    let api =
        service_fn(|req: ApiReq| async move { Ok::<_, Infallible>(Response::new(auth_of(&req))) });
    let svc = AuthLayer::new(cred.clone()).layer(api);
    cred.token().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(count.load(Ordering::SeqCst), 1, "nothing refreshed ahead");
    let tasks: Vec<_> = (0..N)
        .map(|i| tokio::spawn(svc.clone().oneshot(request(i))))
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().into_body(), "Bearer at-2");
    }
    assert_eq!(
        count.load(Ordering::SeqCst),
        2,
        "one token request for the burst"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_401s_make_one_refresh_and_one_retry_each() {
    let (url, count) = token_server(Duration::from_millis(20), 3600).await;
    let cred = credential(&url);
    cred.token().await.unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1);

    let attempts: Arc<Vec<AtomicU8>> = Arc::new((0..N).map(|_| AtomicU8::new(0)).collect());
    // Every request with at-1 is held until all N have arrived, then all get 401:
    // a true storm on one token.
    let barrier = Arc::new(tokio::sync::Barrier::new(N));
    let a = attempts.clone();
    let api = service_fn(move |req: ApiReq| {
        let attempts = a.clone();
        let barrier = barrier.clone();
        async move {
            let i: usize = req.headers()["x-req"].to_str().unwrap().parse().unwrap();
            attempts[i].fetch_add(1, Ordering::SeqCst);
            let auth = auth_of(&req);
            if auth == "Bearer at-1" {
                barrier.wait().await;
                return Ok::<_, Infallible>(
                    Response::builder().status(401).body(String::new()).unwrap(),
                );
            }
            Ok(Response::new(auth))
        }
    });
    let svc = AuthLayer::new(cred.clone()).layer(api);
    let tasks: Vec<_> = (0..N)
        .map(|i| tokio::spawn(svc.clone().oneshot(request(i))))
        .collect();
    for t in tasks {
        let res = t.await.unwrap().unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.into_body(), "Bearer at-2");
    }
    assert_eq!(count.load(Ordering::SeqCst), 2, "exactly one refresh");
    for (i, a) in attempts.iter().enumerate() {
        assert_eq!(a.load(Ordering::SeqCst), 2, "request {i} sent twice");
    }
    assert_eq!(cred.stats().unwrap().retries_on_401, N as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_initiator_does_not_wedge_the_rest() {
    let (url, count) = token_server(Duration::from_millis(300), 3600).await;
    let cred = credential(&url);
    let api =
        service_fn(|req: ApiReq| async move { Ok::<_, Infallible>(Response::new(auth_of(&req))) });
    let svc = AuthLayer::new(cred.clone()).layer(api);
    let initiator = tokio::spawn(svc.clone().oneshot(request(0)));
    tokio::time::sleep(Duration::from_millis(50)).await;
    initiator.abort();
    assert!(initiator.await.unwrap_err().is_cancelled());
    let rest: Vec<_> = (1..1000)
        .map(|i| tokio::spawn(svc.clone().oneshot(request(i))))
        .collect();
    for t in rest {
        assert_eq!(t.await.unwrap().unwrap().into_body(), "Bearer at-1");
    }
    assert_eq!(count.load(Ordering::SeqCst), 1);
}
