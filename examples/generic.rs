//! A generic OAuth2 API: a personal access token as `Bearer`, and client
//! credentials in one expression.
//!
//! `cargo run --example generic` runs against the local test servers; with
//! `GENERIC_API_URL` and `GENERIC_PAT` set, it calls that API with the token.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tower::{Layer, Service, ServiceExt};
use tower_client_auth::providers::generic;
use tower_client_auth::testing::oauth::OAuthServer;
use tower_client_auth::testing::token_server::TokenServer;
use tower_client_auth::{https, AuthLayer, BoxError};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    if let (Some(url), Some(pat)) = (env("GENERIC_API_URL"), env("GENERIC_PAT")) {
        let uri: http::Uri = url.parse()?;
        let origin = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("https"),
            uri.authority().map_or("", |a| a.as_str())
        );
        let credential = generic::personal_access_token(&origin, pat)?;
        let api = AuthLayer::new(credential.clone()).layer(https::guarded(credential));
        send(&api, Method::GET, &url, "").await?;
        return Ok(());
    }

    println!("a personal access token (set GENERIC_API_URL and GENERIC_PAT for a real API):");
    let server = OAuthServer::start("app", "secret").await;
    let pat = server.issue_personal_access_token(Duration::from_secs(86_400));
    let credential = generic::personal_access_token(&server.base_url(), pat)?;
    let api = AuthLayer::new(credential.clone()).layer(https::guarded(credential));
    send(
        &api,
        Method::GET,
        &format!("{}/api/v1/me", server.base_url()),
        "",
    )
    .await?;

    println!("client credentials: a token URL, a client id, a secret:");
    let server = TokenServer::builder()
        .client("my-client", "my-secret")
        .start()
        .await;
    let api = generic::client_credentials(server.token_url(), "my-client", "my-secret")
        .api_origin(server.base_url())
        .scopes(["read"])
        .https()?;
    for _ in 0..3 {
        send(&api, Method::GET, &server.api_url("whoami"), "").await?;
    }
    println!("  token requests: {}", server.token_requests());
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
