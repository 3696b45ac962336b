//! An axum backend whose handler calls an upstream API with OAuth2 client
//! credentials: the client built once in one expression, kept in the app's
//! state, cloned per request (one connection pool, one token for all).
//!
//! `cargo run --example axum_backend` starts the test token server (the
//! upstream API and its authorization server), the backend on 127.0.0.1, and
//! calls the backend a few times. In production, the token URL, client id and
//! secret come from your configuration and the API origin is the real one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;
use tower_client_auth::https::HttpsClient;
use tower_client_auth::layer::Guard;
use tower_client_auth::providers::generic;
use tower_client_auth::testing::token_server::TokenServer;
use tower_client_auth::{AuthService, BoxError};

/// What every handler shares: the upstream client and where the API is.
#[derive(Clone)]
struct App {
    upstream: AuthService<Guard<HttpsClient>>,
    whoami_url: String,
}

/// `GET /profile`: asks the upstream API who we are, with a token the layer
/// fetched, cached and refreshes on its own.
async fn profile(State(app): State<App>) -> Result<String, (StatusCode, String)> {
    let bad_gateway = |e: BoxError| (StatusCode::BAD_GATEWAY, format!("upstream: {e}"));
    let req = http::Request::get(&app.whoami_url)
        .body(Full::new(Bytes::new()))
        .map_err(|e| bad_gateway(e.into()))?;
    let res = app.upstream.oneshot(req).await.map_err(bad_gateway)?;
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| bad_gateway(e.into()))?;
    Ok(format!(
        "upstream said {status}: {}",
        String::from_utf8_lossy(&body.to_bytes())
    ))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let upstream_api = TokenServer::builder()
        .client("backend", "backend-secret")
        .start()
        .await;

    let upstream =
        generic::client_credentials(upstream_api.token_url(), "backend", "backend-secret")
            .api_origin(upstream_api.base_url())
            .scopes(["profile:read"])
            .https()?;
    let app = Router::new()
        .route("/profile", get(profile))
        .with_state(App {
            upstream,
            whoami_url: upstream_api.api_url("whoami"),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let backend = format!("http://{}/profile", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    // Callers of the backend: five requests, one token fetched upstream.
    let callers = tower_client_auth::https::client();
    for _ in 0..5 {
        let req = http::Request::get(&backend).body(tower_client_auth::ReplayBody::default())?;
        let res = callers.request(req).await?;
        let body = res.into_body().collect().await?.to_bytes();
        println!("GET {backend} -> {}", String::from_utf8_lossy(&body));
    }
    println!(
        "token requests the upstream's authorization server saw: {}",
        upstream_api.token_requests()
    );
    Ok(())
}
