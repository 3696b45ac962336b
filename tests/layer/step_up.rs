//! A `403` the token source steps up from ([`TokenSource::step_up`]): a
//! newer token and the request sent once more, never twice; a source that
//! does not step up (the default) leaves every 403 as it is.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::Full;
use tower::{Layer, ServiceExt};
use tower_client_auth::token::{Token, TokenSource};
use tower_client_auth::{AuthLayer, Credential, Error, ReplayBody};

/// Tokens `tok-1`, `tok-2`, ...; steps up from an `insufficient_scope`
/// refusal when `widens`.
struct Source {
    fetched: Arc<AtomicUsize>,
    widens: bool,
}

impl TokenSource for Source {
    fn fetch(&self, _: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>> {
        let n = self.fetched.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move { Ok(Token::bearer(format!("tok-{n}"), None)) })
    }

    fn step_up(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        self.widens && status == StatusCode::FORBIDDEN && headers.contains_key("www-authenticate")
    }
}

async fn run(widens: bool, accept: &'static str) -> (StatusCode, Vec<String>, usize) {
    let (origin, log) = common::logging_server(move |req, _| {
        if common::header(req, "authorization") == Some(accept) {
            common::json(200, "{}")
        } else {
            let mut res = common::json(403, r#"{"error":"insufficient_scope"}"#);
            res.headers_mut().insert(
                "www-authenticate",
                r#"Bearer error="insufficient_scope", scope="more""#
                    .parse()
                    .unwrap(),
            );
            res
        }
    })
    .await;
    let fetched = Arc::new(AtomicUsize::new(0));
    let credential = Credential::builder()
        .origin(&origin)
        .token_source(Source {
            fetched: fetched.clone(),
            widens,
        })
        .build()
        .unwrap();
    let http = common::client::<ReplayBody<Full<Bytes>>>();
    let client = AuthLayer::new(credential).layer(http);
    let res = client
        .oneshot(
            Request::post(format!("{origin}/x"))
                .body(Full::new(Bytes::from_static(b"payload")))
                .unwrap(),
        )
        .await
        .unwrap();
    let sent = log
        .take()
        .iter()
        .map(|r| {
            assert_eq!(&r.body()[..], b"payload", "the body is sent again whole");
            common::header(r, "authorization").unwrap_or("").to_owned()
        })
        .collect();
    (res.status(), sent, fetched.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_step_up_gets_a_newer_token_and_resends_once() {
    let (status, sent, fetched) = run(true, "Bearer tok-2").await;
    assert_eq!(status, 200);
    assert_eq!(sent, ["Bearer tok-1", "Bearer tok-2"]);
    assert_eq!(fetched, 2);
}

#[tokio::test]
async fn a_refusal_that_stands_is_resent_once_only() {
    let (status, sent, fetched) = run(true, "never").await;
    assert_eq!(status, 403);
    assert_eq!(sent, ["Bearer tok-1", "Bearer tok-2"], "one retry, no loop");
    assert_eq!(fetched, 2);
}

#[tokio::test]
async fn a_source_that_does_not_step_up_leaves_a_403_alone() {
    let (status, sent, fetched) = run(false, "Bearer tok-2").await;
    assert_eq!(status, 403);
    assert_eq!(sent, ["Bearer tok-1"]);
    assert_eq!(fetched, 1);
}
