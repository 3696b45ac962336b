//! Shared by the examples: an HTTPS-capable hyper-util client, a request helper
//! that prints what happened with secrets masked, and one tour per provider that
//! runs against the real provider or its local emulator.
#![allow(dead_code)]

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Service, ServiceExt};
use tower_client_auth::{BoxError, ReplayBody};

pub type Http = Client<HttpsConnector<HttpConnector>, ReplayBody<Full<Bytes>>>;

/// One client for token endpoints and APIs: https (webpki roots) and plain http
/// (the emulators on 127.0.0.1).
pub fn http() -> Http {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(https)
}

/// The middle of a secret replaced by `***`.
pub fn mask(value: &str) -> String {
    let (scheme, secret) = match value.split_once(' ') {
        Some((s, rest)) => (format!("{s} "), rest),
        None => (String::new(), value),
    };
    if secret.len() <= 6 {
        return format!("{scheme}***");
    }
    format!("{scheme}{}***{}", &secret[..3], &secret[secret.len() - 2..])
}

pub fn show(headers: &HeaderMap) -> String {
    let shown: Vec<String> = ["authorization", "x-api-key"]
        .iter()
        .filter_map(|n| {
            headers
                .get(*n)
                .map(|v| format!("{n}: {}", mask(v.to_str().unwrap_or("?"))))
        })
        .collect();
    if shown.is_empty() {
        "(no credentials)".into()
    } else {
        shown.join(", ")
    }
}

/// Sends one request through `svc`: the status and the start of the body.
async fn exchange<S>(
    svc: &S,
    method: Method,
    uri: &str,
    body: &'static str,
) -> Result<(u16, String), BoxError>
where
    S: Service<
            Request<Full<Bytes>>,
            Response = http::Response<hyper::body::Incoming>,
            Error = BoxError,
        > + Clone,
{
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))?;
    let res = svc.clone().oneshot(req).await?;
    let status = res.status().as_u16();
    let text = res.into_body().collect().await?.to_bytes();
    Ok((
        status,
        String::from_utf8_lossy(&text).chars().take(80).collect(),
    ))
}

/// Sends one request through `svc` and prints the outcome.
pub async fn send<S>(
    svc: &S,
    method: Method,
    uri: &str,
    body: &'static str,
) -> Result<u16, BoxError>
where
    S: Service<
            Request<Full<Bytes>>,
            Response = http::Response<hyper::body::Incoming>,
            Error = BoxError,
        > + Clone,
{
    match exchange(svc, method.clone(), uri, body).await {
        Ok((status, text)) => {
            println!("  {method} {uri} -> {status} {text}");
            Ok(status)
        }
        Err(e) => {
            println!("  {method} {uri} -> error: {e}");
            Err(e)
        }
    }
}

/// Like [`send`], without printing.
pub async fn status<S>(
    svc: &S,
    method: Method,
    uri: &str,
    body: &'static str,
) -> Result<u16, BoxError>
where
    S: Service<
            Request<Full<Bytes>>,
            Response = http::Response<hyper::body::Incoming>,
            Error = BoxError,
        > + Clone,
{
    exchange(svc, method, uri, body)
        .await
        .map(|(status, _)| status)
}

pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

pub mod tours;
