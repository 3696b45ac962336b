//! A tour of tower-client-auth with no credentials and no network: a local API and
//! token server on 127.0.0.1, a real hyper-util client, and the layer.
//!
//! Run with `cargo run --example demo`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};
use tower_client_auth::{AuthLayer, Credential};

/// Shows a header value with the middle masked: enough to tell values apart.
fn mask(value: &str) -> String {
    let (scheme, secret) = match value.split_once(' ') {
        Some((s, rest)) => (format!("{s} "), rest),
        None => (String::new(), value),
    };
    if secret.len() <= 6 {
        return format!("{scheme}***");
    }
    format!("{scheme}{}***{}", &secret[..3], &secret[secret.len() - 2..])
}

fn show(headers: &HeaderMap) -> String {
    let mut shown = Vec::new();
    for name in ["authorization", "x-api-key"] {
        if let Some(v) = headers.get(name) {
            shown.push(format!("{name}: {}", mask(v.to_str().unwrap_or("?"))));
        }
    }
    if shown.is_empty() {
        "(no credentials)".to_owned()
    } else {
        shown.join(", ")
    }
}

/// Starts an HTTP server on loopback; `handler` sees each request.
async fn start<F>(handler: F) -> SocketAddr
where
    F: Fn(Request<Bytes>) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let handler = handler.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|c| c.to_bytes())
                            .unwrap_or_default();
                        Ok::<_, Infallible>(handler(Request::from_parts(parts, body)))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
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
    Ok(())
}
