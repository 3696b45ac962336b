//! Agrello: the authorization code flow with `state` and PKCE, the code
//! exchanged and refreshed with Basic client authentication, refresh tokens
//! rotated on every use.
//!
//! `cargo run --example agrello` runs against the local emulator (which
//! approves at once); with `AGRELLO_CLIENT_ID`, `AGRELLO_CLIENT_SECRET`,
//! `AGRELLO_REDIRECT_URI` and `AGRELLO_API_URL` set it prints the real
//! authorization URL and reads the callback's query string from stdin.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tower::{Layer, Service, ServiceExt};
use tower_client_auth::oauth2::AuthorizationUrl;
use tower_client_auth::providers::agrello;
use tower_client_auth::testing::oauth::OAuthServer;
use tower_client_auth::{https, AuthLayer, BoxError};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    if let (Some(id), Some(secret), Some(redirect), Some(api_url)) = (
        env("AGRELLO_CLIENT_ID"),
        env("AGRELLO_CLIENT_SECRET"),
        env("AGRELLO_REDIRECT_URI"),
        env("AGRELLO_API_URL"),
    ) {
        let request = agrello::authorization_url(&id, &redirect).build()?;
        println!(
            "Open this URL, approve, then paste the redirect's query string:\n{}",
            request.url()
        );
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        let code = request.verify_callback(line.trim())?; // checks `state`
        let tokens = agrello::token_client(id, secret, https::client())?;
        let token = tokens
            .exchange_code(code.code, Some(&redirect), request.verifier())
            .await?;
        let uri: http::Uri = api_url.parse()?;
        let origin = format!("https://{}", uri.authority().map_or("", |a| a.as_str()));
        let credential = agrello::credential(&origin, tokens, token)?;
        let api = AuthLayer::new(credential.clone()).layer(https::guarded(credential));
        send(&api, Method::GET, &api_url, "").await?;
        return Ok(());
    }

    let emulator = OAuthServer::start("agrello-app", "agrello-secret").await;
    emulator.set_token_lifetime(Duration::from_secs(1));
    println!(
        "Agrello emulator at {} (set AGRELLO_* for the real one)",
        emulator.base_url()
    );
    let request = AuthorizationUrl::new(
        emulator.authorize_url(),
        "agrello-app",
        "http://127.0.0.1/callback",
    )
    .scope("documents")
    .build()?;
    println!("  authorization URL: {}", request.url());
    let callback = emulator.approve(request.url()).await?; // a user approving in a browser
    let code = request.verify_callback(&callback)?;
    let tokens = agrello::token_client_at(
        &emulator.token_url(),
        "agrello-app",
        "agrello-secret",
        https::client(),
    )?;
    let token = tokens
        .exchange_code(code.code, Some(request.redirect_uri()), request.verifier())
        .await?;
    let credential = agrello::credential(&emulator.base_url(), tokens, token)?;
    let api = AuthLayer::new(credential.clone()).layer(https::guarded(credential));
    for _ in 0..3 {
        send(
            &api,
            Method::GET,
            &format!("{}/api/v1/documents", emulator.base_url()),
            "",
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    println!(
        "  1 s tokens over 2 s: token requests {} (the code exchange, then refreshes), refresh tokens used {} (each once)",
        emulator.token_requests(),
        emulator.refresh_tokens_used()
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
