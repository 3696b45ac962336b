//! Lifecycle and edge inputs of managed tokens: seeds that survive failures,
//! expiry that survives the runtime that fetched the token, background tasks that
//! end with the credential, no runtime at all, long `Retry-After`, every duration
//! option at its maximum, unsupported token types, and operator control.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_client_auth::oauth2::{OAuth2Source, TokenClient};
use tower_client_auth::token::{ManagedOptions, Token, TokenSource};
use tower_client_auth::{AuthLayer, BoxError, Credential, Error};

const API: &str = "https://api.example.com";

/// `tok-1`, `tok-2`, ... with the given lifetime.
struct Counting {
    calls: Arc<AtomicUsize>,
    lifetime: Option<Duration>,
}

impl TokenSource for Counting {
    fn fetch(&self, _: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let lifetime = self.lifetime;
        Box::pin(async move { Ok(Token::bearer(format!("tok-{n}"), lifetime)) })
    }
}

fn counting(lifetime: Option<Duration>) -> (Credential, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let cred = Credential::builder()
        .origin(API)
        .token_source(Counting {
            calls: calls.clone(),
            lifetime,
        })
        .build()
        .unwrap();
    (cred, calls)
}

/// An API that answers with the `Authorization` it received.
fn echo() -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<String>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    service_fn(|req: Request<Full<Bytes>>| async move {
        let auth = req
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        Ok::<_, Infallible>(Response::new(auth))
    })
}

fn get() -> Request<Full<Bytes>> {
    Request::get(format!("{API}/v1"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

async fn send<S>(svc: &S) -> Result<String, BoxError>
where
    S: Service<Request<Full<Bytes>>, Response = Response<String>, Error = BoxError> + Clone,
{
    Ok(svc.clone().oneshot(get()).await?.into_body())
}

fn typed(e: BoxError) -> Error {
    *e.downcast::<Error>().expect("the crate's own error")
}

/// A token endpoint that answers each request with the next canned response,
/// and records the request bodies.
type Answer = (u16, &'static [(&'static str, &'static str)], &'static str);

fn endpoint(answers: Vec<Answer>) -> (TokenClient, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let answers = Arc::new(Mutex::new(answers.into_iter()));
    let http = service_fn(move |req: Request<Full<Bytes>>| {
        let log = log.clone();
        let next = answers.lock().unwrap().next();
        async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            log.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&body).into_owned());
            let (status, headers, body) = next.expect("no more canned answers");
            let mut res = Response::builder()
                .status(status)
                .header("content-type", "application/json");
            for (n, v) in headers {
                res = res.header(*n, *v);
            }
            Ok::<_, Infallible>(
                res.body(Full::new(Bytes::from_static(body.as_bytes())))
                    .unwrap(),
            )
        }
    });
    let client = TokenClient::builder("https://auth.example.com/token")
        .client_id("id")
        .client_secret("secret")
        .build(http)
        .unwrap();
    (client, seen)
}

const TOKEN_RT2: &str =
    r#"{"access_token":"tok-a","token_type":"Bearer","expires_in":3600,"refresh_token":"rt-2"}"#;

#[tokio::test(start_paused = true)]
async fn a_seeded_refresh_token_survives_a_503_within_one_token_request() {
    let (client, seen) = endpoint(vec![(503, &[], "{}"), (200, &[], TOKEN_RT2)]);
    let cred = Credential::builder()
        .origin(API)
        .token_source(OAuth2Source::from_refresh_token(client, "rt-1"))
        .build()
        .unwrap();
    let svc = AuthLayer::new(cred).without_retry().layer(echo());
    assert_eq!(send(&svc).await.unwrap(), "Bearer tok-a");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter().all(|b| b.contains("refresh_token=rt-1")),
        "{seen:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_seeded_refresh_token_survives_a_failed_token_request() {
    let (client, seen) = endpoint(vec![(503, &[], "{}"), (200, &[], TOKEN_RT2)]);
    let options = ManagedOptions::new().max_attempts(1);
    let cred = Credential::builder()
        .origin(API)
        .token_source_with(OAuth2Source::from_refresh_token(client, "rt-1"), options)
        .build()
        .unwrap();
    let svc = AuthLayer::new(cred).without_retry().layer(echo());
    let err = typed(send(&svc).await.unwrap_err());
    assert!(err.is_transient(), "{err}");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(send(&svc).await.unwrap(), "Bearer tok-a");
    assert!(seen.lock().unwrap()[1].contains("refresh_token=rt-1"));
}

#[test]
fn expiry_does_not_depend_on_the_runtime_that_fetched_the_token() {
    let (cred, calls) = counting(Some(Duration::from_secs(10)));
    let svc = AuthLayer::new(cred).without_retry().layer(echo());
    let paused = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
    };
    let first = paused();
    assert_eq!(first.block_on(send(&svc)).unwrap(), "Bearer tok-1");
    // The runtime whose task watched the token's expiry goes away.
    drop(first);

    let second = paused();
    second.block_on(async {
        // Still valid by the clock: used, and watched again from this runtime.
        assert_eq!(send(&svc).await.unwrap(), "Bearer tok-1");
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(send(&svc).await.unwrap(), "Bearer tok-2");
    });
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // The same with no request between the runtimes' lives: expiry is checked
    // by the request itself.
    let (cred, calls) = counting(Some(Duration::from_secs(10)));
    let svc = AuthLayer::new(cred).without_retry().layer(echo());
    let first = paused();
    assert_eq!(first.block_on(send(&svc)).unwrap(), "Bearer tok-1");
    drop(first);
    paused().block_on(async {
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(send(&svc).await.unwrap(), "Bearer tok-2");
    });
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn dropping_every_clone_of_a_credential_ends_its_task() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let settle = || async {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    };
    let base = metrics.num_alive_tasks();

    let (cred, _) = counting(Some(Duration::from_secs(3600)));
    let svc = AuthLayer::new(cred.clone()).without_retry().layer(echo());
    send(&svc).await.unwrap();
    settle().await;
    assert_eq!(
        metrics.num_alive_tasks(),
        base + 1,
        "one driver per credential"
    );
    let clone = svc.clone();
    drop((svc, cred));
    settle().await;
    assert_eq!(metrics.num_alive_tasks(), base + 1, "a clone keeps it");
    drop(clone);
    settle().await;
    assert_eq!(
        metrics.num_alive_tasks(),
        base,
        "the driver ended with the credential"
    );

    // A token without expiry needs no task at all.
    let (cred, _) = counting(None);
    let svc = AuthLayer::new(cred).without_retry().layer(echo());
    send(&svc).await.unwrap();
    settle().await;
    assert_eq!(metrics.num_alive_tasks(), base);
}

#[test]
fn a_request_outside_a_runtime_gets_a_typed_error() {
    let (cred, calls) = counting(Some(Duration::from_secs(60)));
    let mut svc = AuthLayer::new(cred).without_retry().layer(echo());
    let ready = svc.ready().now_or_never().unwrap().unwrap();
    let err = ready
        .call(get())
        .now_or_never()
        .expect("answers at once")
        .unwrap_err();
    let err = typed(err);
    assert!(err.is_no_runtime(), "{err}");
    assert!(err.to_string().contains("Tokio runtime"));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_long_retry_after_fails_callers_within_the_backoff_cap_and_holds_the_gate() {
    let (client, seen) = endpoint(vec![
        (503, &[("retry-after", "3600")], "{}"),
        (200, &[], TOKEN_RT2),
    ]);
    let cred = Credential::builder()
        .origin(API)
        .token_source(OAuth2Source::client_credentials(client))
        .build()
        .unwrap();
    let svc = AuthLayer::new(cred).without_retry().layer(echo());
    let started = tokio::time::Instant::now();
    let err = typed(send(&svc).await.unwrap_err());
    // Paused time: had the request slept for Retry-After, this would say 3600 s.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(err.is_transient());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3600)));
    assert_eq!(seen.lock().unwrap().len(), 1);

    // Within the server's wait no token request is made.
    tokio::time::advance(Duration::from_secs(600)).await;
    assert!(send(&svc).await.is_err());
    assert_eq!(seen.lock().unwrap().len(), 1);
    tokio::time::advance(Duration::from_secs(3001)).await;
    assert_eq!(send(&svc).await.unwrap(), "Bearer tok-a");
    assert_eq!(seen.lock().unwrap().len(), 2);
}

fn maximal() -> ManagedOptions {
    ManagedOptions::new()
        .max_refresh_ahead(Duration::MAX)
        .max_expiry_margin(Duration::MAX)
        .default_lifetime(Some(Duration::MAX))
        .backoff(Duration::MAX, Duration::MAX)
        .cooldown(Duration::MAX, Duration::MAX)
        .max_attempts(u32::MAX)
}

#[tokio::test(start_paused = true)]
async fn every_duration_option_at_its_maximum_without_a_panic() {
    // A wrong password: tried once, then the cool-down holds for good.
    let (client, seen) = endpoint(vec![(400, &[], r#"{"error":"invalid_grant"}"#)]);
    let cred = Credential::builder()
        .origin(API)
        .token_source_with(OAuth2Source::password(client, "me", "wrong"), maximal())
        .build()
        .unwrap();
    let svc = AuthLayer::new(cred).without_retry().layer(echo());
    assert!(typed(send(&svc).await.unwrap_err()).is_invalid_grant());
    for _ in 0..20 {
        tokio::time::advance(Duration::from_secs(86_400)).await;
        let err = typed(send(&svc).await.unwrap_err());
        assert!(err.is_cooling_down() && err.is_invalid_grant(), "{err}");
    }
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "one wrong password per cool-down"
    );

    // A Retry-After of u64::MAX seconds.
    let (client, seen) = endpoint(vec![(
        503,
        &[("retry-after", "18446744073709551615")],
        "{}",
    )]);
    let cred = Credential::builder()
        .origin(API)
        .token_source_with(OAuth2Source::client_credentials(client), maximal())
        .build()
        .unwrap();
    let svc = AuthLayer::new(cred).without_retry().layer(echo());
    assert!(typed(send(&svc).await.unwrap_err()).is_transient());
    assert!(send(&svc).await.is_err());
    assert_eq!(seen.lock().unwrap().len(), 1);

    // A token without `expires_in` under a default lifetime of Duration::MAX.
    let (client, _) = endpoint(vec![(200, &[], r#"{"access_token":"tok-a"}"#)]);
    let cred = Credential::builder()
        .origin(API)
        .token_source_with(OAuth2Source::client_credentials(client), maximal())
        .build()
        .unwrap();
    let svc = AuthLayer::new(cred.clone()).without_retry().layer(echo());
    assert_eq!(send(&svc).await.unwrap(), "Bearer tok-a");
    assert!(cred.stats().unwrap().expires_at.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_lifetime_that_rounds_to_zero_does_not_refresh_on_every_request() {
    let (client, seen) = endpoint(vec![(
        200,
        &[],
        r#"{"access_token":"tok-a","expires_in":1e-10}"#,
    )]);
    let cred = Credential::builder()
        .origin(API)
        .token_source(OAuth2Source::client_credentials(client))
        .build()
        .unwrap();
    let svc = AuthLayer::new(cred).without_retry().layer(echo());
    for _ in 0..5 {
        assert_eq!(send(&svc).await.unwrap(), "Bearer tok-a");
    }
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_token_type_the_crate_does_not_send_is_a_typed_error_never_stamped() {
    for token_type in ["DPoP", "mac", "N_A"] {
        let body: &'static str = Box::leak(
            format!(r#"{{"access_token":"tok-a","token_type":"{token_type}"}}"#).into_boxed_str(),
        );
        let (client, _) = endpoint(vec![(200, &[], body)]);
        let cred = Credential::builder()
            .origin(API)
            .token_source(OAuth2Source::client_credentials(client))
            .build()
            .unwrap();
        let api_calls = Arc::new(AtomicUsize::new(0));
        let counter = api_calls.clone();
        let api = service_fn(move |_: Request<Full<Bytes>>| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new(String::new())) }
        });
        let svc = AuthLayer::new(cred).without_retry().layer(api);
        let err = typed(send(&svc).await.unwrap_err());
        assert!(err.is_unsupported_token_type(), "{err}");
        assert!(!err.is_transient());
        assert!(err.to_string().contains(token_type));
        assert_eq!(api_calls.load(Ordering::SeqCst), 0);
    }
}

#[tokio::test(start_paused = true)]
async fn invalidate_drops_the_token_and_end_cooldown_lifts_the_gate() {
    let (cred, calls) = counting(Some(Duration::from_secs(3600)));
    let svc = AuthLayer::new(cred.clone()).without_retry().layer(echo());
    assert_eq!(send(&svc).await.unwrap(), "Bearer tok-1");
    assert_eq!(send(&svc).await.unwrap(), "Bearer tok-1");
    cred.invalidate();
    assert_eq!(send(&svc).await.unwrap(), "Bearer tok-2");
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let (client, seen) = endpoint(vec![
        (401, &[], r#"{"error":"invalid_client"}"#),
        (200, &[], TOKEN_RT2),
    ]);
    let cred = Credential::builder()
        .origin(API)
        .token_source(OAuth2Source::client_credentials(client))
        .build()
        .unwrap();
    let svc = AuthLayer::new(cred.clone()).without_retry().layer(echo());
    assert!(typed(send(&svc).await.unwrap_err()).is_invalid_client());
    assert!(typed(send(&svc).await.unwrap_err()).is_cooling_down());
    assert_eq!(seen.lock().unwrap().len(), 1);
    // The operator fixed the secret.
    cred.end_cooldown();
    assert_eq!(send(&svc).await.unwrap(), "Bearer tok-a");
    assert_eq!(seen.lock().unwrap().len(), 2);
}
