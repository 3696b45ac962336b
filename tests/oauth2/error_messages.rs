//! What a newcomer reads when a token request fails: each message names the
//! endpoint (scheme, host, path; never a query or a secret), an unusable
//! answer says its status, content type and first bytes, and a cool-down
//! says how long is left and keeps its cause as the source. Each test prints
//! the message it checks (`--nocapture` shows them).

use crate::common;

use std::error::Error as _;

use bytes::Bytes;
use http_body_util::Full;
use tower_client_auth::oauth2::{OAuth2Source, TokenClient};
use tower_client_auth::{Credential, Error};

use common::{client, json, logging_server};

fn token_client(url: &str) -> TokenClient {
    TokenClient::builder(url)
        .client_id("my-client")
        .client_secret("s3cret-value")
        .allow_http()
        .build(client::<Full<Bytes>>())
        .unwrap()
}

fn html(status: u16) -> http::Response<Full<Bytes>> {
    http::Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8")
        .body(Full::new(Bytes::from_static(
            b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>...</body></html>",
        )))
        .unwrap()
}

fn assert_no_secret(message: &str) {
    assert!(!message.contains("s3cret"), "a secret in {message:?}");
    assert!(!message.contains("next="), "a query in {message:?}");
}

#[tokio::test]
async fn nothing_listening_names_the_endpoint() {
    // Before: "token endpoint request failed" (no URL; the cause only via source()).
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/oauth/token?next=/");
    let err = token_client(&url)
        .client_credentials(&[])
        .await
        .unwrap_err();
    let message = err.to_string();
    println!("{message}");
    assert!(err.is_transport());
    assert_eq!(
        message,
        format!("token endpoint request to http://127.0.0.1:{port}/oauth/token failed")
    );
    assert_eq!(
        err.endpoint(),
        Some(format!("http://127.0.0.1:{port}/oauth/token").as_str())
    );
    // The cause (connection refused) is one level down, printed once.
    assert!(err.source().is_some());
    assert_no_secret(&message);
}

#[tokio::test]
async fn an_html_page_with_200_says_status_type_and_first_bytes() {
    // Before: "invalid token response: body is neither a JSON object nor
    // form-encoded" (no status, content type, first bytes, nor a hint).
    let (base, _log) = logging_server(|_, _| html(200)).await;
    let err = token_client(&format!("{base}/login?next=/"))
        .client_credentials(&[])
        .await
        .unwrap_err();
    let message = err.to_string();
    println!("{message}");
    assert!(err.is_invalid_response());
    assert!(
        err.is_wrong_endpoint(),
        "a web page where a token response belongs"
    );
    assert_eq!(
        message,
        format!(
            "invalid token response from {base}/login: body is neither a JSON object nor \
             form-encoded (HTTP 200 OK, text/html; charset=utf-8, body begins \
             `<!DOCTYPE html>\\n<html><head><title>Sign in</titl…`): \
             is the token URL right?"
        )
    );
    assert_no_secret(&message);
}

#[tokio::test]
async fn an_html_404_is_a_status_with_what_came_back() {
    // Before: "token endpoint answered HTTP 404 Not Found", and the CLI's exit 3
    // ("credentials refused"); now `is_wrong_endpoint()` and the CLI's exit 7.
    let (base, _log) = logging_server(|_, _| html(404)).await;
    let err = token_client(&format!("{base}/oauth/tokn"))
        .client_credentials(&[])
        .await
        .unwrap_err();
    let message = err.to_string();
    println!("{message}");
    assert_eq!(err.status(), Some(http::StatusCode::NOT_FOUND));
    assert!(!err.is_invalid_client() && !err.is_oauth2());
    assert!(err.is_wrong_endpoint());
    assert!(message.starts_with(&format!(
        "token endpoint {base}/oauth/tokn answered HTTP 404 Not Found (text/html; charset=utf-8, body begins `<!DOCTYPE"
    )));
    assert!(message.ends_with("is the token URL right?"));
}

#[tokio::test]
async fn a_cooldown_says_how_long_and_keeps_its_cause() {
    // Before: "no token request made during cool-down after a permanent
    // failure" (the reason and the time left gone).
    let (base, log) = logging_server(|_, _| json(401, r#"{"error":"invalid_client"}"#)).await;
    let credential = Credential::builder()
        .origin("https://api.example.com")
        .token_source(OAuth2Source::client_credentials(token_client(&format!(
            "{base}/token"
        ))))
        .build()
        .unwrap();
    let first = credential.token().await.unwrap_err();
    assert!(first.is_invalid_client());
    let err: Error = credential.token().await.unwrap_err();
    let message = err.to_string();
    println!("{message}");
    assert!(err.is_cooling_down());
    assert_eq!(log.len(), 1, "no token request during the cool-down");
    // 60 s by default, rounded up: just under a minute is left.
    let left = err.cooldown_left().expect("the time left");
    assert!(
        left > std::time::Duration::from_secs(55) && left <= std::time::Duration::from_secs(60)
    );
    assert!(
        message.starts_with("no token request made: cooling down after a permanent failure ("),
        "{message}"
    );
    assert!(message.ends_with(" s left)"), "{message}");
    // The reason is the source: the first failure, with its endpoint.
    let cause = err.source().expect("the cause").to_string();
    println!("  caused by: {cause}");
    assert_eq!(
        cause,
        format!(
            "token endpoint {base}/token answered error `invalid_client` (HTTP 401 Unauthorized)"
        )
    );
}
