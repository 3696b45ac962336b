//! The JWT bearer grant (RFC 7523 §2.1) against a real server that has it
//! built in: Authlib's `JWTBearerGrant` (tests/authlib/server.py, in the
//! virtualenv `tests/python-venv.sh authlib` makes). An assertion signed by our key
//! as the identity provider is traded for a token the API accepts, through a
//! managed credential; an assertion signed by another key is refused.
//! Never skipped: without the virtualenv it fails.

use crate::common;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::process::Command;

use common::start_server;
use tower::{Layer, ServiceExt};
use tower_client_auth::oauth2::{AssertionSource, Grant, OAuth2Source, PrivateKey, TokenClient};
use tower_client_auth::{AuthLayer, BoxError, Credential, ReplayBody};

fn assertion(key: &PrivateKey, token_url: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    key.sign_jwt(&serde_json::json!({
        "iss": "tca-test-idp",
        "sub": "alice",
        "aud": token_url,
        "iat": now,
        "exp": now + 300,
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_bearer_grant_against_authlib() -> Result<(), BoxError> {
    let python = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/authlib-venv/bin/python"
    );
    assert!(
        std::path::Path::new(python).exists(),
        "run `tests/python-venv.sh authlib` first (.ci/run does)"
    );
    let idp = PrivateKey::generate_es256()?;
    let mut command = Command::new(python);
    command
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/authlib/server.py"
        ))
        .env("IDP_JWK", idp.public_jwk().to_string());
    let (_server, base) = start_server(command, "tca-authlib.log").await;

    let http = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let token_url = format!("{base}/token");
    let tokens = TokenClient::builder(&token_url)
        .client_id("jwt-client")
        .client_secret("jwt-secret")
        .allow_http()
        .build(http.clone())?;

    // Directly: one token.
    let grant = Grant::JwtBearer {
        assertion: assertion(&idp, &token_url).into(),
    };
    let token = tokens.request_token(&grant, &[]).await?;
    assert_eq!(token.token_type(), "Bearer");

    // Through a managed credential and the layer.
    let credential = Credential::builder()
        .origin(&base)
        .allow_http()
        .token_source(OAuth2Source::new(
            tokens.clone(),
            Some(Grant::JwtBearer {
                assertion: assertion(&idp, &token_url).into(),
            }),
        ))
        .build()?;
    let api = AuthLayer::new(credential).layer(http.clone());
    let req = Request::get(format!("{base}/api/me")).body(Full::new(Bytes::new()))?;
    let res = api.oneshot(req).await?;
    assert_eq!(res.status(), 200);
    let me: serde_json::Value =
        serde_json::from_slice(&res.into_body().collect().await?.to_bytes())?;
    assert_eq!(me["sub"], "alice");

    // An assertion from someone else's key: refused.
    let stranger = PrivateKey::generate_es256()?;
    let e = tokens
        .request_token(
            &Grant::JwtBearer {
                assertion: assertion(&stranger, &token_url).into(),
            },
            &[],
        )
        .await
        .unwrap_err();
    assert!(e.is_invalid_grant(), "{e}");
    assert!(!e.is_transient(), "{e}");
    Ok(())
}

type Http = Client<hyper_util::client::legacy::connect::HttpConnector, ReplayBody<Full<Bytes>>>;

async fn token_requests(http: &Http, base: &str) -> Result<u64, BoxError> {
    let req = Request::get(format!("{base}/control/stats"))
        .body(ReplayBody::passthrough(Full::new(Bytes::new())))?;
    let body = http
        .request(req)
        .await?
        .into_body()
        .collect()
        .await?
        .to_bytes();
    let stats: serde_json::Value = serde_json::from_slice(&body)?;
    Ok(stats["token_requests"].as_u64().unwrap_or(0))
}

/// Whom the API takes the credential's token for.
async fn subject(credential: &Credential, http: &Http, base: &str) -> Result<String, BoxError> {
    let api = AuthLayer::new(credential.clone()).layer(http.clone());
    let req = Request::get(format!("{base}/api/me")).body(Full::new(Bytes::new()))?;
    let res = api.oneshot(req).await?;
    assert_eq!(res.status(), 200);
    let me: serde_json::Value =
        serde_json::from_slice(&res.into_body().collect().await?.to_bytes())?;
    Ok(me["sub"].as_str().unwrap_or_default().to_owned())
}

/// A rotating assertion (a projected service account token, say): the file
/// is replaced between two token requests and Authlib sees the new one (a
/// token for its new subject); an expired one in the file is never sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_bearer_grant_from_a_rotating_file_against_authlib() -> Result<(), BoxError> {
    let python = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/authlib-venv/bin/python"
    );
    assert!(
        std::path::Path::new(python).exists(),
        "run `tests/python-venv.sh authlib` first (.ci/run does)"
    );
    let idp = PrivateKey::generate_es256()?;
    let mut command = Command::new(python);
    command
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/authlib/server.py"
        ))
        .env("IDP_JWK", idp.public_jwk().to_string());
    let (_server, base) = start_server(command, "tca-authlib-rotating.log").await;
    let http = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let token_url = format!("{base}/token");
    let tokens = TokenClient::builder(&token_url)
        .client_id("jwt-client")
        .client_secret("jwt-secret")
        .allow_http()
        .build(http.clone())?;

    let dir = std::env::temp_dir().join(format!("tca-rotating-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("token");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let signed = |sub: &str, exp: u64| {
        idp.sign_jwt(&serde_json::json!({
            "iss": "tca-test-idp", "sub": sub, "aud": token_url, "iat": now, "exp": exp,
        }))
    };
    // As the kubelet does: write aside, then rename over.
    let rotate = |assertion: String| -> std::io::Result<()> {
        let aside = dir.join("token.new");
        std::fs::write(&aside, format!("{assertion}\n"))?;
        std::fs::rename(&aside, &path)
    };
    rotate(signed("alice", now + 300))?;
    let credential = Credential::builder()
        .origin(&base)
        .allow_http()
        .token_source(OAuth2Source::new(
            tokens.clone(),
            Some(Grant::jwt_bearer_from(AssertionSource::file(&path))),
        ))
        .build()?;
    assert_eq!(subject(&credential, &http, &base).await?, "alice");

    // Rotated: the next token request carries the new assertion.
    rotate(signed("bob-the-rotated", now + 300))?;
    credential.invalidate();
    assert_eq!(subject(&credential, &http, &base).await?, "bob-the-rotated");

    // Expired in the file: refused here, never sent to the server.
    rotate(signed("carol", now - 10))?;
    let before = token_requests(&http, &base).await?;
    let err = tokens
        .request_token(&Grant::jwt_bearer_from(AssertionSource::file(&path)), &[])
        .await
        .unwrap_err();
    assert!(err.is_assertion_expired(), "{err}");
    credential.invalidate();
    let err = credential.token().await.unwrap_err();
    assert!(err.is_assertion_expired(), "{err}");
    assert_eq!(
        token_requests(&http, &base).await?,
        before,
        "an expired assertion was sent"
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
