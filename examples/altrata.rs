//! Altrata: client credentials with `x-api-key` and Basic at the token
//! endpoint, `x-api-key` and the bearer token on every GraphQL call, and
//! never a second token while one is valid (a new one terminates the old).
//!
//! `cargo run --example altrata` runs against the local emulator; with
//! `ALTRATA_API_KEY`, `ALTRATA_USERNAME` and `ALTRATA_PASSWORD` set (and
//! optionally `ALTRATA_QUERY`, a GraphQL body), against the real Altrata.

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tower::{Layer, Service, ServiceExt};
use tower_client_auth::providers::altrata;
use tower_client_auth::testing::altrata::Altrata;
use tower_client_auth::{https, AuthLayer, BoxError};

const QUERY: &str = r#"{"query":"{ me { id } }"}"#;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    if let (Some(key), Some(user), Some(password)) = (
        env("ALTRATA_API_KEY"),
        env("ALTRATA_USERNAME"),
        env("ALTRATA_PASSWORD"),
    ) {
        println!("Altrata: client credentials, x-api-key + Bearer on GraphQL");
        let credential = altrata::client_credentials(key, user, password).build(https::client())?;
        let api = AuthLayer::new(credential.clone()).layer(https::guarded(credential));
        let query: &'static str = env("ALTRATA_QUERY").map_or(QUERY, |q| q.leak());
        let url = format!("{}/v1/graphql", altrata::PROFILE_API);
        send(&api, Method::POST, &url, query).await?;
        return Ok(());
    }

    let emulator = Altrata::start("KEY-1", "user", "pass").await;
    println!(
        "Altrata emulator at {} (set ALTRATA_API_KEY, ALTRATA_USERNAME, ALTRATA_PASSWORD for the real one)",
        emulator.api_base()
    );
    let credential = altrata::client_credentials("KEY-1", "user", "pass")
        .token_url(emulator.token_url())
        .api_origin(emulator.api_base())
        .build(https::client())?;
    let api = AuthLayer::new(credential.clone()).layer(https::guarded(credential));
    send(&api, Method::POST, &emulator.graphql_url(), QUERY).await?;

    println!("another client takes a token (ours is terminated), then 50 calls at once:");
    emulator.revoke_all();
    let calls = (0..50).map(|_| {
        let (api, url) = (api.clone(), emulator.graphql_url());
        async move {
            let req = Request::post(url).body(Full::new(Bytes::from_static(QUERY.as_bytes())))?;
            api.oneshot(req).await
        }
    });
    let ok = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .filter(|r| matches!(r, Ok(res) if res.status() == 200))
        .count();
    println!(
        "  {ok}/50 OK; token requests in all: {} (one for the whole storm of 401s); valid tokens we terminated: {}",
        emulator.token_requests(),
        emulator.terminated_valid_tokens()
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
