//! A tour of tower-client-auth with no credentials and no network: a local API and
//! token server on 127.0.0.1, a real hyper-util client, and the layer.
//!
//! Run with `cargo run --example demo`.

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::show;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};
use tower_client_auth::oauth2::{OAuth2Source, TokenClient};
use tower_client_auth::{AuthLayer, Credential, ReplayBody};

/// Starts an HTTP server on loopback (the crate's `testing::serve`); `handler`
/// sees each request.
async fn start<F>(handler: F) -> SocketAddr
where
    F: Fn(Request<Bytes>) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    tower_client_auth::testing::serve(move |req| std::future::ready(handler(req)))
        .await
        .detach()
}

async fn send<S>(client: &mut S, uri: String) -> Result<(StatusCode, String), BoxError>
where
    S: Service<Request<Full<Bytes>>, Response = Response<Incoming>, Error = BoxError>,
{
    let req = Request::get(uri).body(Full::new(Bytes::new()))?;
    let res = client.ready().await?.call(req).await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // The local API answers with what credentials it received (masked).
    let calls = Arc::new(AtomicU64::new(0));
    let counter = calls.clone();
    let api = start(move |req| {
        counter.fetch_add(1, Ordering::Relaxed);
        Response::new(Full::new(Bytes::from(show(req.headers()))))
    })
    .await;
    let elsewhere = start(|req| Response::new(Full::new(Bytes::from(show(req.headers()))))).await;
    let api = format!("http://{api}");
    let elsewhere = format!("http://{elsewhere}");
    println!("local API on {api}, another origin on {elsewhere}\n");

    println!("== static credentials ==");
    let credentials = [
        (
            "Basic (Algoreg e-mail + password)",
            Credential::basic(&api, "me@example.com", "correct horse")?,
        ),
        (
            "Bearer personal access token",
            Credential::bearer(&api, "pat_0123456789abcdef")?,
        ),
        (
            "x-api-key + Bearer (Altrata's API shape)",
            Credential::builder()
                .origin(&api)
                .api_key("x-api-key", "ak_live_42424242")
                .bearer("eyJhbGciOi.static.token")
                .build()?,
        ),
    ];
    for (what, credential) in credentials {
        println!("{what}: {credential:?}");
        let mut client = ServiceBuilder::new()
            .layer(AuthLayer::new(credential))
            .service(Client::builder(TokioExecutor::new()).build_http())
            .map_err(BoxError::from);
        let (status, seen) = send(&mut client, format!("{api}/v1/me?fields=id")).await?;
        println!("  -> {api}/v1/me      {status}  server saw: {seen}");
        let (status, seen) = send(&mut client, format!("{elsewhere}/collect")).await?;
        println!("  -> {elsewhere}/collect  {status}  server saw: {seen}");
    }
    println!("\nAPI calls served: {}", calls.load(Ordering::Relaxed));

    managed_tokens().await?;

    println!("\n== the four providers, on their local emulators ==");
    common::tours::algoreg(false).await?;
    common::tours::altrata(false).await?;
    common::tours::agrello(false).await?;
    common::tours::generic(false).await?;
    Ok(())
}

/// A local OAuth2 server issuing 2-second tokens, and an API that checks them.
struct Issuer {
    issued: Mutex<HashMap<String, Instant>>,
    token_requests: AtomicU64,
}

impl Issuer {
    fn valid(&self, auth: Option<&str>) -> bool {
        let Some(token) = auth.and_then(|a| a.strip_prefix("Bearer ")) else {
            return false;
        };
        let issued = self.issued.lock().unwrap();
        issued
            .get(token)
            .is_some_and(|at| at.elapsed() < Duration::from_secs(2))
    }
}

async fn managed_tokens() -> Result<(), BoxError> {
    println!("\n== managed OAuth2 token (client_credentials, 2-second tokens) ==");
    let issuer = Arc::new(Issuer {
        issued: Mutex::new(HashMap::new()),
        token_requests: AtomicU64::new(0),
    });
    let i = issuer.clone();
    let auth_server = start(move |req| {
        let n = i.token_requests.fetch_add(1, Ordering::SeqCst) + 1;
        let basic_ok = req
            .headers()
            .get("authorization")
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("Basic "));
        if !basic_ok {
            return json(401, r#"{"error":"invalid_client"}"#);
        }
        let token = format!("demo-token-{n}-{:08x}", n.wrapping_mul(0x9E37_79B9));
        i.issued
            .lock()
            .unwrap()
            .insert(token.clone(), Instant::now());
        json(
            200,
            &format!(r#"{{"access_token":"{token}","token_type":"bearer","expires_in":2}}"#),
        )
    })
    .await;
    let i = issuer.clone();
    let api = start(move |req| {
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if i.valid(auth) {
            Response::new(Full::new(Bytes::from(show(req.headers()))))
        } else {
            let mut res = json(401, "");
            res.headers_mut().insert(
                "www-authenticate",
                http::HeaderValue::from_static(r#"Bearer error="invalid_token""#),
            );
            res
        }
    })
    .await;
    let api = format!("http://{api}");
    println!("token endpoint http://{auth_server}/oauth/token, API {api}");

    // One hyper-util client serves both the token endpoint and the API.
    let http = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let token_client = TokenClient::builder(format!("http://{auth_server}/oauth/token"))
        .client_id("demo-client")
        .client_secret("demo-secret")
        .build(http.clone())?;
    let credential = Credential::builder()
        .origin(&api)
        .token_source(OAuth2Source::client_credentials(token_client))
        .build()?;
    let client = ServiceBuilder::new()
        .layer(AuthLayer::new(credential.clone()))
        .service(http)
        .map_err(BoxError::from);

    // 1. A burst on an empty cache: one token request for all of them.
    let burst = futures_util::future::join_all((0..200).map(|_| {
        let mut c = client.clone();
        let uri = format!("{api}/v1/items");
        async move { send(&mut c, uri).await }
    }))
    .await;
    let ok = burst
        .iter()
        .filter(|r| matches!(r, Ok((s, _)) if s.is_success()))
        .count();
    let stats = credential.stats().expect("managed");
    println!(
        "200 concurrent requests on an empty cache: {ok} OK, token requests {}, waiters coalesced {}",
        stats.token_requests, stats.coalesced_waiters
    );

    // 2. Steady traffic across several token lifetimes: refreshed ahead, no 401.
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_millis(5_000) {
        let (status, _) = send(&mut client.clone(), format!("{api}/v1/items")).await?;
        assert!(status.is_success(), "{status}");
        sent += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = credential.stats().expect("managed");
    println!(
        "{sent} requests over 5 s of 2 s tokens: token requests {} (refreshed ahead {}), 401 retries {}",
        stats.token_requests, stats.refreshes_ahead, stats.retries_on_401
    );

    // 3. The server revokes every token: the next request gets 401, the layer
    //    refreshes once and retries once, and the caller sees 200.
    issuer.issued.lock().unwrap().clear();
    let before = credential.stats().expect("managed").token_requests;
    let (status, seen) = send(&mut client.clone(), format!("{api}/v1/items")).await?;
    let stats = credential.stats().expect("managed");
    println!(
        "after revocation: {status}, server saw {seen}; token requests +{}, 401 retries {}",
        stats.token_requests - before,
        stats.retries_on_401
    );
    println!(
        "token endpoint served {} requests in all",
        issuer.token_requests.load(Ordering::SeqCst)
    );
    Ok(())
}

fn json(status: u16, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("valid response")
}
