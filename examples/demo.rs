//! A tour of tower-client-auth with no credentials and no network: a test
//! token server and APIs on 127.0.0.1, the ready HTTPS client, and the layer.
//!
//! Run with `cargo run --example demo`. Each step prints what happened and
//! what the numbers mean; the code of each step is what you would write.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::retry::RetryLayer;
use tower::{BoxError, Layer, Service, ServiceBuilder, ServiceExt};
use tower_client_auth::providers::generic;
use tower_client_auth::retry_policy::RetryTransient;
use tower_client_auth::testing::token_server::TokenServer;
use tower_client_auth::{https, AuthLayer, Credential};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    static_credentials().await?;
    client_credentials().await?;
    composed_with_timeout_and_retry().await?;
    errors_that_say_where().await;
    println!("\nNext: the README's quick start, and `cargo run --example <name>` for");
    println!("axum_backend, reqwest_client, many_users, algoreg, altrata, agrello, generic.");
    Ok(())
}

/// An API on loopback that answers with the credential headers it received.
async fn echo_api() -> String {
    let server = tower_client_auth::testing::serve(|req| async move {
        let seen: Vec<String> = ["authorization", "x-api-key"]
            .iter()
            .filter_map(|h| req.headers().get(*h).map(|v| format!("{h}: {}", mask(v))))
            .collect();
        Response::new(Full::new(Bytes::from(if seen.is_empty() {
            "no credentials".to_owned()
        } else {
            seen.join(", ")
        })))
    })
    .await;
    server.detach().to_string()
}

/// The first characters of a header value: enough to recognise, not to use.
fn mask(value: &http::HeaderValue) -> String {
    let v = value.to_str().unwrap_or("?");
    format!("{}…", &v[..v.len().min(12)])
}

async fn get<S>(api: &S, url: &str) -> Result<(StatusCode, String), BoxError>
where
    S: Service<Request<Full<Bytes>>, Response = Response<hyper::body::Incoming>> + Clone,
    S::Error: Into<BoxError>,
{
    let req = Request::get(url).body(Full::new(Bytes::new()))?;
    let res = api.clone().oneshot(req).await.map_err(Into::into)?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

async fn static_credentials() -> Result<(), BoxError> {
    println!("== 1. A static credential stays on its origin ==");
    let (api, elsewhere) = (echo_api().await, echo_api().await);
    let credential = Credential::builder()
        .origin(format!("http://{api}"))
        .api_key("x-api-key", "ak_live_0123456789")
        .bearer("pat_0123456789abcdef")
        .build()?;
    println!("{credential:?}");
    let client = AuthLayer::new(credential.clone()).layer(https::guarded(credential));
    let (_, seen) = get(&client, &format!("http://{api}/v1/me")).await?;
    println!("  its API saw:         {seen}");
    let (_, seen) = get(&client, &format!("http://{elsewhere}/collect")).await?;
    println!("  another origin saw:  {seen}");
    Ok(())
}

async fn client_credentials() -> Result<(), BoxError> {
    println!("\n== 2. OAuth2 client credentials in one expression ==");
    let server = TokenServer::builder()
        .client("demo-client", "demo-secret")
        .token_lifetime(Duration::from_secs(2))
        .start()
        .await;
    let api = generic::client_credentials(server.token_url(), "demo-client", "demo-secret")
        .api_origin(server.base_url())
        .https()?;
    let credential = api.credential().clone();
    let url = server.api_url("items");

    // 100 requests at once on an empty cache.
    let burst = futures_util::future::join_all((0..100).map(|_| get(&api, &url))).await;
    let ok = burst
        .iter()
        .filter(|r| matches!(r, Ok((s, _)) if s.is_success()))
        .count();
    let stats = credential.stats().expect("a managed token");
    println!("100 concurrent requests, nothing cached: {ok} answered 200");
    println!(
        "  token requests: {} (single flight: the first request fetched, the other {} waited for it)",
        stats.token_requests, stats.coalesced_waiters
    );

    // Steady traffic over several 2-second token lifetimes.
    let mut sent = 0;
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < until {
        assert!(get(&api, &url).await?.0.is_success());
        sent += 1;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let stats = credential.stats().expect("a managed token");
    println!("{sent} requests over 5 s of 2 s tokens:");
    println!(
        "  token requests: {} in all, {} of them refreshes ahead of expiry (in the background: no request waited), 401s: {}",
        stats.token_requests,
        stats.refreshes_ahead,
        server.counts().api_rejections
    );

    // The provider revokes the token under our feet.
    server.revoke_access_tokens();
    let before = credential.stats().expect("a managed token").token_requests;
    let (status, _) = get(&api, &url).await?;
    let stats = credential.stats().expect("a managed token");
    println!("the server revokes every token; the next request:");
    println!(
        "  the caller sees {status}: the API said 401, the layer fetched a new token (+{}) and re-sent the request once (401 retries: {})",
        stats.token_requests - before,
        stats.retries_on_401
    );
    Ok(())
}

async fn composed_with_timeout_and_retry() -> Result<(), BoxError> {
    println!("\n== 3. Composed: a timeout, retries of transient failures, the layer, the guard ==");
    let server = TokenServer::builder()
        .client("demo-client", "demo-secret")
        .start()
        .await;
    // An upstream that is overloaded for two requests, then answers.
    let overloaded = Arc::new(AtomicU32::new(2));
    let left = overloaded.clone();
    let upstream = tower_client_auth::testing::serve(move |_req| {
        let busy = left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        async move {
            let status = if busy { 503 } else { 200 };
            Response::builder()
                .status(status)
                .body(Full::new(Bytes::new()))
                .unwrap()
        }
    })
    .await;
    let credential = generic::client_credentials(server.token_url(), "demo-client", "demo-secret")
        .api_origin(upstream.base_url())
        .build(https::client())?;
    let auth = AuthLayer::new(credential);
    let api = ServiceBuilder::new()
        .timeout(Duration::from_secs(10)) // the whole call: token wait, retries, their waits
        .layer(RetryLayer::new(RetryTransient::new())) // 503 → wait 50–100 ms, 100–200 ms, ...
        .layer(auth.clone())
        .concurrency_limit(32)
        .layer(auth.guard())
        .service(https::client());
    let started = tokio::time::Instant::now();
    let req =
        Request::get(format!("{}/v1/items", upstream.base_url())).body(Full::new(Bytes::new()))?;
    let status = api.oneshot(req).await?.status();
    println!(
        "the upstream answered 503 twice: the caller sees {status} after {} ms (two retries with backoff and jitter)",
        started.elapsed().as_millis()
    );
    Ok(())
}

async fn errors_that_say_where() {
    println!("\n== 4. Errors say what and where ==");
    let html = tower_client_auth::testing::serve(|_req| async {
        Response::builder()
            .status(404)
            .header("content-type", "text/html")
            .body(Full::new(Bytes::from_static(
                b"<!doctype html><h1>Not found</h1>",
            )))
            .unwrap()
    })
    .await;
    let api = generic::client_credentials(format!("{}/oauth/tokn", html.base_url()), "c", "s")
        .api_origin("https://api.example.com")
        .https()
        .expect("valid settings");
    let err = get(&api, "https://api.example.com/v1/me")
        .await
        .unwrap_err();
    println!("a mistyped token URL: {err}");
    let mut source = err.source();
    while let Some(cause) = source {
        println!("  caused by: {cause}");
        source = cause.source();
    }
}
