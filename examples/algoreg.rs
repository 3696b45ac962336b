//! Algoreg: HTTP Basic `email:password`, or the JSON password grant with
//! 1-hour bearer tokens, never locking the account with a wrong password.
//!
//! `cargo run --example algoreg` runs against the local emulator; with
//! `ALGOREG_EMAIL`, `ALGOREG_PASSWORD` and `ALGOREG_URL` (an API URL to GET)
//! set, and optionally `ALGOREG_BASE`, against the real Algoreg.

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tower::{Layer, Service, ServiceExt};
use tower_client_auth::providers::algoreg;
use tower_client_auth::testing::algoreg::Algoreg;
use tower_client_auth::{https, AuthLayer, BoxError, Error};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    if let (Some(email), Some(password), Some(url)) = (
        env("ALGOREG_EMAIL"),
        env("ALGOREG_PASSWORD"),
        env("ALGOREG_URL"),
    ) {
        let base = env("ALGOREG_BASE").unwrap_or_else(|| algoreg::API_BASE.to_owned());
        println!("Algoreg at {base}: password grant, then Bearer");
        let credential = algoreg::oauth2(&base, email, password, https::client())?;
        let api = AuthLayer::new(credential.clone()).layer(https::guarded(credential));
        send(&api, Method::GET, &url, "").await?;
        return Ok(());
    }

    let emulator = Algoreg::start("api@acme.com", "my_password", 3).await;
    let base = emulator.base_url();
    let cases = format!("{base}/api/v1/cases");
    println!("Algoreg emulator at {base} (set ALGOREG_EMAIL, ALGOREG_PASSWORD, ALGOREG_URL for the real one)");

    println!("Basic email:password:");
    let credential = algoreg::basic(&base, "api@acme.com", "my_password")?;
    let api = AuthLayer::new(credential.clone()).layer(https::guarded(credential));
    send(&api, Method::GET, &cases, "").await?;

    println!("the password grant (a JSON body), then Bearer, 20 calls at once:");
    let credential = algoreg::oauth2(&base, "api@acme.com", "my_password", https::client())?;
    let api = AuthLayer::new(credential.clone()).layer(https::guarded(credential));
    let calls = (0..20).map(|_| {
        let (api, url) = (api.clone(), cases.clone());
        async move {
            api.oneshot(Request::get(url).body(Full::new(Bytes::new()))?)
                .await
        }
    });
    let ok = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .filter(|r| matches!(r, Ok(res) if res.status() == 200))
        .count();
    println!(
        "  {ok}/20 OK with {} token request(s)",
        emulator.token_requests()
    );

    println!("a wrong password, 10 calls (the account locks after 3 wrong passwords):");
    let wrong = algoreg::oauth2(&base, "api@acme.com", "not-my-password", https::client())?;
    let api = AuthLayer::new(wrong.clone()).layer(https::guarded(wrong));
    for _ in 0..10 {
        let req = Request::get(&cases).body(Full::new(Bytes::new()))?;
        let err = api
            .clone()
            .oneshot(req)
            .await
            .unwrap_err()
            .downcast::<Error>()?;
        assert!(err.is_invalid_grant() || err.is_cooling_down(), "{err}");
    }
    println!(
        "  wrong passwords the server saw: {} (the rest waited out the cool-down); locked: {}",
        emulator.wrong_passwords(),
        emulator.is_locked()
    );
    Ok(())
}

/// Sends one request and prints its status and the start of its answer.
async fn send<S>(api: &S, method: Method, url: &str, body: &'static str) -> Result<u16, BoxError>
where
    S: Service<Request<Full<Bytes>>, Response = Response<Incoming>, Error = BoxError> + Clone,
{
    let req = Request::builder()
        .method(method.clone())
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))?;
    let res = api.clone().oneshot(req).await?;
    let status = res.status().as_u16();
    let text = res.into_body().collect().await?.to_bytes();
    let text: String = String::from_utf8_lossy(&text).chars().take(80).collect();
    println!("  {method} {url} -> {status} {text}");
    Ok(status)
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}
