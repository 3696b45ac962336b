//! Token exchange (RFC 8693) against a real server that has it built in:
//! IdentityPython's idpyoidc (tests/idpy/server.py, in the virtualenv
//! `tests/python-venv.sh idpy` makes; idpyoidc's own token endpoint and
//! token-exchange helper behind a few lines of WSGI). A user's access token,
//! issued to the app, is exchanged by a gateway client for a token of its own,
//! once directly and once as the grant of a managed credential; a token the
//! server did not issue and a wrong client secret are refused. A `test = false`
//! target (like the django-oauth-toolkit suite): run by
//! `cargo test --test idpy_token_exchange`, never skipped in CI.

mod common;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::process::Command;

use common::start_server;
use tower_client_auth::oauth2::{
    Grant, OAuth2Source, TokenClient, TokenExchange, ACCESS_TOKEN_TYPE,
};
use tower_client_auth::secrecy::ExposeSecret;
use tower_client_auth::{BoxError, Credential};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_exchange_against_idpyoidc() -> Result<(), BoxError> {
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/target/idpy-venv/bin/python");
    assert!(
        std::path::Path::new(python).exists(),
        "run `tests/python-venv.sh idpy` first (.ci/run does)"
    );
    let mut command = Command::new(python);
    command.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/idpy/server.py"));
    let (_server, listening) = start_server(command, "tca-idpy.log").await;
    let (issuer, subject) = listening
        .split_once(' ')
        .map(|(i, t)| (i.to_owned(), t.to_owned()))
        .expect("issuer and subject token");

    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let gateway = TokenClient::builder(format!("{issuer}/token"))
        .client_id("gateway")
        .client_secret("gateway-secret")
        .allow_http()
        .build(http.clone())?;
    let exchange = |token: &str| {
        Grant::TokenExchange(
            TokenExchange::new(token.to_owned(), ACCESS_TOKEN_TYPE)
                .requested_token_type(ACCESS_TOKEN_TYPE),
        )
    };

    // Directly: a new token, of the type asked for, not the subject token.
    let token = gateway.request_token(&exchange(&subject), &[]).await?;
    assert_eq!(token.token_type(), "Bearer");
    assert_eq!(token.extra()["issued_token_type"], ACCESS_TOKEN_TYPE);
    assert_ne!(token.access_token().expose_secret(), subject);
    // The new token was issued to the gateway (its payload says so).
    let payload = token
        .access_token()
        .expose_secret()
        .split('.')
        .nth(1)
        .unwrap()
        .to_owned();
    use base64::Engine as _;
    let claims: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?)?;
    assert_eq!(claims["client_id"], "gateway");

    // As the grant of a managed credential.
    let credential = Credential::builder()
        .origin("https://api.example.com")
        .token_source(OAuth2Source::new(gateway.clone(), Some(exchange(&subject))))
        .build()?;
    let managed = credential.token().await?;
    assert_eq!(managed.token_type(), "Bearer");
    assert_eq!(credential.stats().unwrap().token_requests, 1);

    // A token the server never issued: refused, not retried as transient.
    let e = gateway
        .request_token(&exchange("eyJhbGciOiJub25lIn0.e30.x"), &[])
        .await
        .unwrap_err();
    assert!(e.is_oauth2() && !e.is_transient(), "{e}");
    // A wrong client secret: invalid_client.
    let impostor = TokenClient::builder(format!("{issuer}/token"))
        .client_id("gateway")
        .client_secret("not-the-secret")
        .allow_http()
        .build(http)?;
    let e = impostor
        .request_token(&exchange(&subject), &[])
        .await
        .unwrap_err();
    assert!(e.is_invalid_client(), "{e}");
    Ok(())
}
