//! Managed tokens under paused tokio time: cache, refresh ahead, expiry, backoff,
//! cool-down, and the 401 retry rules. Deterministic: no real sleeping.

use crate::common;

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tokio::time::Instant;
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_client_auth::token::{ManagedOptions, Token};
use tower_client_auth::{AuthLayer, BoxError, Credential, Error, ReplayBody};

use common::source::Scripted;

const API: &str = "https://api.example.com";
const S: fn(u64) -> Duration = Duration::from_secs;

type ApiReq = Request<ReplayBody<Full<Bytes>>>;

/// An API that answers 200 with the Authorization it got, or what `reject` says.
#[derive(Clone)]
struct Api {
    calls: Arc<AtomicUsize>,
    rejected: Arc<Mutex<HashSet<String>>>,
}

impl Api {
    fn new() -> Self {
        Api {
            calls: Arc::new(AtomicUsize::new(0)),
            rejected: Arc::default(),
        }
    }

    fn reject(&self, auth: &str) {
        self.rejected.lock().unwrap().insert(auth.to_owned());
    }

    fn service(
        &self,
        reply: fn(&str) -> Response<String>,
    ) -> impl Service<ApiReq, Response = Response<String>, Error = Infallible, Future = impl Send> + Clone
    {
        let api = self.clone();
        service_fn(move |req: ApiReq| {
            let api = api.clone();
            async move {
                api.calls.fetch_add(1, Ordering::SeqCst);
                let auth = req
                    .headers()
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                if api.rejected.lock().unwrap().contains(&auth) {
                    return Ok::<_, Infallible>(reply(&auth));
                }
                Ok(Response::new(auth))
            }
        })
    }
}

fn unauthorized(_: &str) -> Response<String> {
    Response::builder()
        .status(401)
        .header("www-authenticate", r#"Bearer error="invalid_token""#)
        .body("rejected".into())
        .unwrap()
}

fn managed(source: Scripted, options: ManagedOptions) -> Credential {
    Credential::builder()
        .origin(API)
        .api_key("x-api-key", "KEY")
        .token_source_with(source, options)
        .build()
        .unwrap()
}

async fn get<S>(svc: &S) -> Result<Response<String>, BoxError>
where
    S: Service<Request<Full<Bytes>>, Response = Response<String>, Error = BoxError> + Clone,
{
    let req = Request::get(format!("{API}/v1/x"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    svc.clone().oneshot(req).await
}

async fn body(
    svc: &(impl Service<Request<Full<Bytes>>, Response = Response<String>, Error = BoxError> + Clone),
) -> String {
    get(svc).await.unwrap().into_body()
}

fn error(e: BoxError) -> Error {
    *e.downcast::<Error>().expect("a tower_client_auth::Error")
}

#[tokio::test(start_paused = true)]
async fn first_request_fetches_then_every_request_hits_the_cache() {
    let source = Scripted::tokens(Some(S(3600)), Duration::from_millis(50));
    let cred = managed(source.clone(), ManagedOptions::default());
    let api = Api::new();
    let svc = AuthLayer::new(cred.clone()).layer(api.service(unauthorized));
    for _ in 0..100 {
        assert_eq!(body(&svc).await, "Bearer tok-1");
    }
    assert_eq!(source.calls(), 1);
    let stats = cred.stats().unwrap();
    assert_eq!(stats.token_requests, 1);
    assert_eq!(stats.generation, 1);
    assert!(stats.expires_at.unwrap() > Instant::now() + S(3500));
}

#[tokio::test(start_paused = true)]
async fn two_second_tokens_refresh_once_per_lifetime_not_per_request() {
    let source = Scripted::tokens(Some(S(2)), Duration::ZERO);
    let cred = managed(source.clone(), ManagedOptions::default());
    let svc = AuthLayer::new(cred.clone()).layer(Api::new().service(unauthorized));
    let start = Instant::now();
    let mut seen = Vec::new();
    // A request every 100 ms for 10 s.
    while start.elapsed() < S(10) {
        let b = body(&svc).await;
        if seen.last() != Some(&b) {
            seen.push(b);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Fetched at 0, then refreshed ahead at 1.8 s intervals: 1.8, 3.6, 5.4, 7.2, 9.0.
    assert_eq!(source.calls(), 6, "{seen:?}");
    assert_eq!(seen.len(), 6);
    let stats = cred.stats().unwrap();
    assert_eq!(stats.refreshes_ahead, 5);
    assert_eq!(stats.token_requests, 6);
}

#[tokio::test(start_paused = true)]
async fn refresh_ahead_keeps_serving_the_valid_token_meanwhile() {
    // The refresh takes 3 s; the token lives 100 s (refresh at 90 s, retired at 95 s).
    let source = Scripted::tokens(Some(S(100)), S(3));
    let cred = managed(source.clone(), ManagedOptions::default());
    let svc = AuthLayer::new(cred).layer(Api::new().service(unauthorized));
    assert_eq!(body(&svc).await, "Bearer tok-1");
    let fetched_at = Instant::now();
    tokio::time::sleep_until(fetched_at + Duration::from_millis(90_500)).await;
    assert_eq!(source.calls(), 2, "refresh started in the background");
    let before = Instant::now();
    assert_eq!(body(&svc).await, "Bearer tok-1");
    assert_eq!(
        before.elapsed(),
        Duration::ZERO,
        "no waiting for the refresh"
    );
    tokio::time::sleep(S(3)).await;
    assert_eq!(body(&svc).await, "Bearer tok-2");
    assert_eq!(source.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn failed_refresh_ahead_keeps_the_token_and_backs_off_then_recovers() {
    let fail_until = Arc::new(AtomicUsize::new(6));
    let f = fail_until.clone();
    let source = Scripted::new(move |n| {
        if n == 1 || n > f.load(Ordering::SeqCst) {
            (
                Duration::ZERO,
                Ok(Token::bearer(format!("tok-{n}"), Some(S(100)))),
            )
        } else {
            (
                Duration::ZERO,
                Err(Error::from_source("backend unavailable")),
            )
        }
    });
    let options = ManagedOptions::default()
        .max_attempts(1)
        .backoff(S(1), S(8));
    let cred = managed(source.clone(), options);
    let svc = AuthLayer::new(cred.clone()).layer(Api::new().service(unauthorized));
    assert_eq!(body(&svc).await, "Bearer tok-1");
    let t0 = Instant::now();
    // Refresh ahead starts at 90 s and fails; it is retried with growing backoff
    // (~0.5-1 s, 1-2 s, 2-4 s), and the valid token keeps being used.
    tokio::time::sleep_until(t0 + S(94)).await;
    let attempts = source.calls() - 1;
    assert!(
        (2..=5).contains(&attempts),
        "refresh attempts by 94 s: {attempts}"
    );
    assert_eq!(body(&svc).await, "Bearer tok-1");
    let failures = cred.stats().unwrap().token_failures;
    assert_eq!(failures as usize, attempts);
    // Let the source recover: the next backoff retry succeeds before expiry or
    // the next request after retirement fetches. The gate set by the last
    // failure is jittered and can reach 8 s past it (up to ~102 s here): ask
    // at 110 s, when it is open whatever the jitter drew.
    fail_until.store(0, Ordering::SeqCst);
    tokio::time::sleep_until(t0 + S(110)).await;
    let b = body(&svc).await;
    assert_ne!(b, "Bearer tok-1");
    assert!(source.calls() <= attempts + 3);
}

#[tokio::test(start_paused = true)]
async fn a_token_is_retired_before_expiry_without_a_clock_read_per_request() {
    // Only the first fetch succeeds.
    let source = Scripted::new(|n| {
        if n == 1 {
            (Duration::ZERO, Ok(Token::bearer("tok-1", Some(S(10)))))
        } else {
            (Duration::ZERO, Err(Error::from_source("down")))
        }
    });
    let options = ManagedOptions::default().max_attempts(1);
    let cred = managed(source.clone(), options);
    let svc = AuthLayer::new(cred).layer(Api::new().service(unauthorized));
    assert_eq!(body(&svc).await, "Bearer tok-1");
    let t0 = Instant::now();
    tokio::time::sleep_until(t0 + Duration::from_millis(9_400)).await;
    assert_eq!(body(&svc).await, "Bearer tok-1");
    // Retired at 9.5 s (margin: a twentieth of 10 s): no request goes out with it.
    tokio::time::sleep_until(t0 + Duration::from_millis(9_600)).await;
    let e = error(get(&svc).await.unwrap_err());
    assert!(e.is_source() && e.is_transient(), "{e:?}");
}

#[tokio::test(start_paused = true)]
async fn transient_errors_are_retried_within_one_request_honouring_retry_after() {
    let source = Scripted::new(|n| match n {
        1 | 2 => (Duration::ZERO, Err(Error::from_source("503"))),
        _ => (Duration::ZERO, Ok(Token::bearer("tok-3", Some(S(3600))))),
    });
    let options = ManagedOptions::default().backoff(S(2), S(30));
    let cred = managed(source.clone(), options);
    let svc = AuthLayer::new(cred).layer(Api::new().service(unauthorized));
    let t0 = Instant::now();
    assert_eq!(body(&svc).await, "Bearer tok-3");
    let waited = t0.elapsed();
    // Two backoffs: 1-2 s then 2-4 s.
    assert!(waited >= S(3) && waited <= S(6), "{waited:?}");
    assert_eq!(source.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn retry_after_from_the_token_endpoint_is_honoured() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let http = service_fn(move |_req: Request<Full<Bytes>>| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            let res = if n == 0 {
                Response::builder()
                    .status(429)
                    .header("retry-after", "7")
                    .body(Full::new(Bytes::new()))
                    .unwrap()
            } else {
                Response::builder()
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from_static(
                        br#"{"access_token":"ok","expires_in":60}"#,
                    )))
                    .unwrap()
            };
            Ok::<_, std::convert::Infallible>(res)
        }
    });
    let tc = tower_client_auth::oauth2::TokenClient::builder("https://auth.example.com/token")
        .client_id("cid")
        .client_secret("cs")
        .build(http)
        .unwrap();
    let cred = Credential::builder()
        .origin(API)
        .token_source(tower_client_auth::oauth2::OAuth2Source::client_credentials(
            tc,
        ))
        .build()
        .unwrap();
    let svc = AuthLayer::new(cred).layer(Api::new().service(unauthorized));
    let t0 = Instant::now();
    assert_eq!(body(&svc).await, "Bearer ok");
    assert!(t0.elapsed() >= S(7), "{:?}", t0.elapsed());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn permanent_failure_fails_all_waiters_and_cools_down() {
    let source = Scripted::new(|_| {
        (
            Duration::from_millis(200),
            Err(Error::permanent("wrong password")),
        )
    });
    let options = ManagedOptions::default().cooldown(S(60), S(600));
    let cred = managed(source.clone(), options);
    let svc = AuthLayer::new(cred.clone()).layer(Api::new().service(unauthorized));
    // 50 concurrent requests: one token request, 50 typed errors.
    let results = futures_util::future::join_all((0..50).map(|_| get(&svc))).await;
    assert_eq!(source.calls(), 1);
    for r in results {
        let e = error(r.unwrap_err());
        assert!(e.is_source() && !e.is_transient());
    }
    // During the cool-down: no token request at all.
    for _ in 0..20 {
        tokio::time::sleep(S(2)).await;
        let e = error(get(&svc).await.unwrap_err());
        assert!(e.is_cooling_down(), "{e}");
        assert!(e.cause_of_cooldown().unwrap().is_source());
    }
    assert_eq!(source.calls(), 1);
    tokio::time::sleep(S(25)).await; // past 60 s
    assert!(!error(get(&svc).await.unwrap_err()).is_cooling_down());
    assert_eq!(source.calls(), 2);
    // The second cool-down is twice as long.
    tokio::time::sleep(S(100)).await;
    assert!(error(get(&svc).await.unwrap_err()).is_cooling_down());
    tokio::time::sleep(S(21)).await;
    get(&svc).await.unwrap_err();
    assert_eq!(source.calls(), 3);
    assert_eq!(cred.stats().unwrap().token_failures, 3);
}

#[tokio::test(start_paused = true)]
async fn unknown_lifetime_uses_default_or_lives_until_401() {
    let source = Scripted::tokens(None, Duration::ZERO);
    let cred = managed(source.clone(), ManagedOptions::default());
    let svc = AuthLayer::new(cred).layer(Api::new().service(unauthorized));
    assert_eq!(body(&svc).await, "Bearer tok-1");
    tokio::time::sleep(S(86_400)).await;
    assert_eq!(body(&svc).await, "Bearer tok-1");
    assert_eq!(source.calls(), 1);

    let source = Scripted::tokens(None, Duration::ZERO);
    let options = ManagedOptions::default().default_lifetime(Some(S(3600)));
    let cred = managed(source.clone(), options);
    let svc = AuthLayer::new(cred).layer(Api::new().service(unauthorized));
    assert_eq!(body(&svc).await, "Bearer tok-1");
    tokio::time::sleep(S(3_400)).await;
    assert_eq!(body(&svc).await, "Bearer tok-2");
}

#[tokio::test(start_paused = true)]
async fn a_401_refreshes_once_and_retries_once_with_static_headers() {
    let source = Scripted::tokens(Some(S(3600)), Duration::ZERO);
    let cred = managed(source.clone(), ManagedOptions::default());
    let api = Api::new();
    let seen_keys = Arc::new(AtomicUsize::new(0));
    let k = seen_keys.clone();
    let inner = api.service(unauthorized);
    let inner = tower::ServiceBuilder::new()
        .map_request(move |req: ApiReq| {
            if req.headers().get("x-api-key").is_some_and(|v| v == "KEY") {
                k.fetch_add(1, Ordering::SeqCst);
            }
            req
        })
        .service(inner);
    let svc = AuthLayer::new(cred.clone()).layer(inner);
    assert_eq!(body(&svc).await, "Bearer tok-1");
    api.reject("Bearer tok-1");
    assert_eq!(body(&svc).await, "Bearer tok-2");
    assert_eq!(source.calls(), 2);
    assert_eq!(api.calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        seen_keys.load(Ordering::SeqCst),
        3,
        "x-api-key on every attempt"
    );
    assert_eq!(cred.stats().unwrap().retries_on_401, 1);

    // Rejecting every token: retried once, then the 401 comes back.
    api.reject("Bearer tok-2");
    api.reject("Bearer tok-3");
    let res = get(&svc).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(api.calls.load(Ordering::SeqCst), 5);
    assert_eq!(source.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_401_for_an_older_token_retries_with_the_current_one_without_refreshing() {
    let source = Scripted::tokens(Some(S(3600)), Duration::ZERO);
    let cred = managed(source.clone(), ManagedOptions::default());
    let api = Api::new();
    api.reject("Bearer tok-1");
    // The API holds the first request until released, so a second request can
    // 401, refresh and finish in between.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let release = gate.clone();
    let first = Arc::new(AtomicUsize::new(0));
    let inner = service_fn(move |req: ApiReq| {
        let gate = gate.clone();
        let hold = first.fetch_add(1, Ordering::SeqCst) == 0;
        let auth = req.headers()["authorization"].to_str().unwrap().to_owned();
        let rejected = api.rejected.lock().unwrap().contains(&auth);
        async move {
            if hold {
                gate.acquire().await.unwrap().forget();
            }
            let res = if rejected {
                unauthorized(&auth)
            } else {
                Response::new(auth)
            };
            Ok::<_, Infallible>(res)
        }
    });
    let svc = AuthLayer::new(cred.clone()).layer(inner);
    cred.token().await.unwrap();
    let held = tokio::spawn({
        let svc = svc.clone();
        async move { get(&svc).await.unwrap().into_body() }
    });
    tokio::task::yield_now().await;
    // Second request: 401 on tok-1, refresh to tok-2, success.
    assert_eq!(body(&svc).await, "Bearer tok-2");
    assert_eq!(source.calls(), 2);
    // Release the first: its 401 (tok-1) finds tok-2 already current.
    release.add_permits(1);
    assert_eq!(held.await.unwrap(), "Bearer tok-2");
    assert_eq!(source.calls(), 2, "no second refresh");
    assert_eq!(cred.stats().unwrap().retries_on_401, 2);
}

#[tokio::test(start_paused = true)]
async fn no_retry_on_403_insufficient_scope_caller_auth_or_when_off() {
    let source = Scripted::tokens(Some(S(3600)), Duration::ZERO);
    let cred = managed(source.clone(), ManagedOptions::default());
    let api = Api::new();
    api.reject("Bearer tok-1");
    api.reject("Bearer caller");
    let forbidden = |_: &str| Response::builder().status(403).body(String::new()).unwrap();
    let scope = |_: &str| {
        Response::builder()
            .status(401)
            .header(
                "www-authenticate",
                r#"Bearer error="insufficient_scope", scope="admin""#,
            )
            .body(String::new())
            .unwrap()
    };
    let svc = AuthLayer::new(cred.clone()).layer(api.service(forbidden));
    assert_eq!(get(&svc).await.unwrap().status(), 403);
    let svc = AuthLayer::new(cred.clone()).layer(api.service(scope));
    assert_eq!(get(&svc).await.unwrap().status(), 401);
    let svc = AuthLayer::new(cred.clone()).layer(api.service(unauthorized));
    let mut req = Request::get(format!("{API}/x"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    req.headers_mut()
        .insert("authorization", "Bearer caller".parse().unwrap());
    assert_eq!(svc.clone().oneshot(req).await.unwrap().status(), 401);
    let svc = AuthLayer::new(cred.clone()).without_retry().layer(
        // Without retry the inner service gets the caller's body type as is.
        api.service(unauthorized)
            .map_request(|r: Request<Full<Bytes>>| r.map(ReplayBody::passthrough)),
    );
    assert_eq!(get(&svc).await.unwrap().status(), 401);
    assert_eq!(
        api.calls.load(Ordering::SeqCst),
        4,
        "each sent exactly once"
    );
    assert_eq!(source.calls(), 1);
    assert_eq!(cred.stats().unwrap().retries_on_401, 0);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_initiator_neither_fails_nor_wedges_the_others() {
    let source = Scripted::tokens(Some(S(3600)), S(5));
    let cred = managed(source.clone(), ManagedOptions::default());
    let svc = AuthLayer::new(cred.clone()).layer(Api::new().service(unauthorized));
    let initiator = tokio::spawn({
        let svc = svc.clone();
        async move { get(&svc).await }
    });
    tokio::time::sleep(S(1)).await;
    initiator.abort();
    assert!(initiator.await.unwrap_err().is_cancelled());
    let others: Vec<_> = (0..10)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move { body(&svc).await })
        })
        .collect();
    for o in others {
        assert_eq!(o.await.unwrap(), "Bearer tok-1");
    }
    assert_eq!(source.calls(), 1);
    assert_eq!(cred.stats().unwrap().coalesced_waiters, 10);
}

#[tokio::test(start_paused = true)]
async fn coalescing_is_per_credential() {
    let a = Scripted::tokens(Some(S(3600)), S(1));
    let b = Scripted::tokens(Some(S(3600)), S(1));
    let ca = managed(a.clone(), ManagedOptions::default());
    let cb = managed(b.clone(), ManagedOptions::default());
    let api = Api::new();
    let sa = AuthLayer::new(ca).layer(api.service(unauthorized));
    let sb = AuthLayer::new(cb).layer(api.service(unauthorized));
    let (ra, rb) = tokio::join!(
        futures_util::future::join_all((0..20).map(|_| body(&sa))),
        futures_util::future::join_all((0..20).map(|_| body(&sb))),
    );
    assert!(ra.iter().chain(&rb).all(|b| b == "Bearer tok-1"));
    assert_eq!((a.calls(), b.calls()), (1, 1));
}
