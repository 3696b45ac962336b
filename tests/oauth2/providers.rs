//! The provider presets against their emulators, over loopback through a real
//! hyper-util client: first call, expiry and refresh, a burst (one token), a 401
//! storm (one refresh), wrong credentials (the lock is never reached), and the
//! wire format of each token request.

use crate::common;

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};
use tower_client_auth::providers::{agrello, algoreg, altrata, generic};
use tower_client_auth::testing::algoreg::Algoreg;
use tower_client_auth::testing::altrata::Altrata;
use tower_client_auth::testing::oauth::OAuthServer;
use tower_client_auth::testing::Failure;
use tower_client_auth::{AuthLayer, AuthService, BoxError, Credential, Error, ReplayBody};

type Http = Client<HttpConnector, ReplayBody<Full<Bytes>>>;

/// One hyper-util client for token endpoint and API alike.
fn http() -> Http {
    Client::builder(TokioExecutor::new()).build_http()
}

fn api(cred: Credential) -> AuthService<Http> {
    AuthLayer::new(cred).layer(http())
}

async fn call(
    svc: &AuthService<Http>,
    method: Method,
    uri: &str,
) -> Result<(StatusCode, String), BoxError> {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"query":"{ me { id } }"}"#,
        )))?;
    let res = svc.clone().oneshot(req).await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

async fn burst(svc: &AuthService<Http>, method: Method, uri: &str, n: usize) -> Vec<StatusCode> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let svc = svc.clone();
            let (m, u) = (method.clone(), uri.to_owned());
            tokio::spawn(async move { call(&svc, m, &u).await.map(|r| r.0) })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap().unwrap());
    }
    out
}

fn error(e: BoxError) -> Error {
    *e.downcast::<Error>().expect("a tower_client_auth::Error")
}

// ---------------------------------------------------------------- Algoreg

#[tokio::test]
async fn algoreg_basic_on_every_call() {
    let emu = Algoreg::start("api@acme.com", "my_password", 5).await;
    let svc = api(algoreg::basic(&emu.base_url(), "api@acme.com", "my_password").unwrap());
    let (status, body) = call(&svc, Method::GET, &format!("{}/api/v1/me", emu.base_url()))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("basic"));
    assert_eq!(emu.token_requests(), 0);
}

#[tokio::test]
async fn algoreg_oauth2_first_call_burst_storm_and_expiry() {
    let emu = Algoreg::start("api@acme.com", "my_password", 5).await;
    let cred = algoreg::oauth2(&emu.base_url(), "api@acme.com", "my_password", http()).unwrap();
    let svc = api(cred.clone());
    let uri = format!("{}/api/v1/cases", emu.base_url());

    // A burst on an empty cache: one token request.
    let statuses = burst(&svc, Method::GET, &uri, 200).await;
    assert!(statuses.iter().all(|s| *s == 200));
    assert_eq!(emu.token_requests(), 1);
    // No expires_in in Algoreg's answer: the documented hour is assumed.
    let expires = cred.stats().unwrap().expires_at.unwrap();
    let left = expires - tokio::time::Instant::now();
    assert!(left > Duration::from_secs(3590) && left <= Duration::from_secs(3600));

    // The server expires tokens sooner than the client thinks (2 s): the first
    // 401 after that refreshes once, and every request still succeeds.
    emu.set_token_lifetime(Duration::from_secs(2));
    emu.revoke_all();
    let statuses = burst(&svc, Method::POST, &uri, 200).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(emu.token_requests(), 2, "one refresh for the 401 storm");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, _) = call(&svc, Method::GET, &uri).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        emu.token_requests(),
        3,
        "expired token: one refresh on its 401"
    );
    assert_eq!(emu.wrong_passwords(), 0);
}

#[tokio::test]
async fn algoreg_wrong_password_never_reaches_the_lock() {
    let emu = Algoreg::start("api@acme.com", "my_password", 3).await;
    let cred = algoreg::oauth2(&emu.base_url(), "api@acme.com", "WRONG", http()).unwrap();
    let svc = api(cred);
    let uri = format!("{}/api/v1/cases", emu.base_url());
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let svc = svc.clone();
            let uri = uri.clone();
            tokio::spawn(async move { call(&svc, Method::GET, &uri).await })
        })
        .collect();
    for t in tasks {
        let e = error(t.await.unwrap().unwrap_err());
        assert!(e.is_invalid_grant(), "{e}");
    }
    // Keep calling for a while: the cool-down answers, the server hears nothing.
    for _ in 0..20 {
        let e = error(call(&svc, Method::GET, &uri).await.unwrap_err());
        assert!(e.is_cooling_down() && e.cause_of_cooldown().unwrap().is_invalid_grant());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(emu.token_requests(), 1);
    assert_eq!(emu.wrong_passwords(), 1);
    assert!(!emu.is_locked());
}

#[tokio::test]
async fn algoreg_token_request_wire_format() {
    let (base, log) =
        common::logging_server(|_, _| common::json(200, r#"{"access_token":"a"}"#)).await;
    let cred = algoreg::oauth2(&base, "api@acme.com", "pa\"ss", http()).unwrap();
    cred.token().await.unwrap();
    let seen = log.get(0);
    assert_eq!(seen.method(), "POST");
    assert_eq!(seen.uri().path(), "/api/v1/token");
    assert_eq!(
        common::header(&seen, "content-type"),
        Some("application/json")
    );
    assert_eq!(common::header(&seen, "authorization"), None);
    assert_eq!(
        log.body(0),
        r#"{"grant_type":"password","password":"pa\"ss","username":"api@acme.com"}"#
    );
}

#[test]
fn algoreg_instances() {
    assert_eq!(
        algoreg::instance_base("acme").unwrap(),
        "https://api.acme.algoreg.com"
    );
    for bad in ["", "Acme", "a.b", "-x", "a/b"] {
        assert!(
            algoreg::instance_base(bad).unwrap_err().is_config(),
            "{bad}"
        );
    }
}

// ---------------------------------------------------------------- Altrata

async fn altrata_setup(lifetime: Option<Duration>) -> (Altrata, Credential, AuthService<Http>) {
    let emu = Altrata::start("KEY-1", "user", "pass").await;
    if let Some(l) = lifetime {
        emu.set_token_lifetime(l);
    }
    let cred = altrata::client_credentials("KEY-1", "user", "pass")
        .token_url(emu.token_url())
        .api_origin(emu.api_base())
        .build(http())
        .unwrap();
    let svc = api(cred.clone());
    (emu, cred, svc)
}

#[tokio::test]
async fn altrata_first_call_burst_and_401_storm_one_token_each() {
    let (emu, _cred, svc) = altrata_setup(None).await;
    let statuses = burst(&svc, Method::POST, &emu.graphql_url(), 300).await;
    assert!(statuses.iter().all(|s| *s == 200));
    assert_eq!(emu.token_requests(), 1);
    // Another client of the same account took a new token: ours is dead.
    emu.revoke_all();
    let statuses = burst(&svc, Method::POST, &emu.graphql_url(), 300).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(emu.token_requests(), 2, "one token for the whole 401 storm");
    assert_eq!(emu.terminated_valid_tokens(), 0);
}

#[tokio::test]
async fn altrata_expiry_never_requests_a_second_token_while_one_is_valid() {
    let (emu, _cred, svc) = altrata_setup(Some(Duration::from_secs(1))).await;
    let start = tokio::time::Instant::now();
    let mut ok = 0;
    while start.elapsed() < Duration::from_millis(3_500) {
        let (status, _) = call(&svc, Method::POST, &emu.graphql_url()).await.unwrap();
        assert_eq!(status, 200);
        ok += 1;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(ok > 50);
    let n = emu.token_requests();
    assert!(
        (3..=5).contains(&n),
        "about one token per 1 s lifetime: {n}"
    );
    assert_eq!(
        emu.terminated_valid_tokens(),
        0,
        "no valid token was ever replaced"
    );
}

#[tokio::test]
async fn altrata_api_calls_carry_api_key_and_bearer_and_wrong_credentials_cool_down() {
    let (emu, _cred, svc) = altrata_setup(None).await;
    let (status, _) = call(&svc, Method::POST, &emu.graphql_url()).await.unwrap();
    assert_eq!(status, 200, "the emulator requires x-api-key and Bearer");

    let bad = altrata::client_credentials("KEY-1", "user", "WRONG")
        .token_url(emu.token_url())
        .api_origin(emu.api_base())
        .build(http())
        .unwrap();
    let bad = api(bad);
    let before = emu.token_requests();
    for _ in 0..10 {
        let e = error(
            call(&bad, Method::POST, &emu.graphql_url())
                .await
                .unwrap_err(),
        );
        assert!(e.is_invalid_client() || e.is_cooling_down());
    }
    assert_eq!(emu.token_requests() - before, 1);
}

#[tokio::test]
async fn altrata_transient_failures_are_retried() {
    let (emu, _cred, svc) = altrata_setup(None).await;
    emu.fail_next(Failure::ServerError);
    emu.fail_next(Failure::TooManyRequests {
        retry_after_secs: 1,
    });
    let started = std::time::Instant::now();
    let (status, _) = call(&svc, Method::POST, &emu.graphql_url()).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(emu.token_requests(), 3);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
}

#[tokio::test]
async fn altrata_token_request_wire_format() {
    use base64::Engine as _;
    let (base, log) = common::logging_server(|_, _| {
        common::json(
            200,
            r#"{"access_token":"a","expires_in":28800,"token_type":"bearer"}"#,
        )
    })
    .await;
    let cred = altrata::client_credentials("KEY-1", "user", "p@ss")
        .token_url(format!("{base}/oauth2/token"))
        .build(http())
        .unwrap();
    cred.token().await.unwrap();
    let seen = log.get(0);
    assert_eq!(seen.method(), "POST");
    assert_eq!(
        seen.uri().path_and_query().unwrap(),
        "/oauth2/token?grant_type=client_credentials"
    );
    assert_eq!(
        common::header(&seen, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(common::header(&seen, "x-api-key"), Some("KEY-1"));
    let basic = base64::engine::general_purpose::STANDARD.encode("user:p@ss");
    assert_eq!(
        common::header(&seen, "authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    assert!(seen.body().is_empty());
    // The default API origin is Altrata's Profile API.
    assert_eq!(cred.origins()[0].host(), "profile.altrata.com");
}

// ---------------------------------------------------------------- Agrello

#[tokio::test]
async fn agrello_code_flow_refresh_rotation_burst_and_storm() {
    let emu = OAuthServer::start("agrello-app", "s3cret").await;
    emu.set_token_lifetime(Duration::from_secs(1));
    let token_client =
        agrello::token_client_at(&emu.token_url(), "agrello-app", "s3cret", http()).unwrap();

    // The browser part, headless: authorize, approve, come back with code + state.
    let request = tower_client_auth::oauth2::AuthorizationUrl::new(
        emu.authorize_url(),
        "agrello-app",
        "http://127.0.0.1/callback",
    )
    .scope("documents")
    .build()
    .unwrap();
    let callback = emu.approve(request.url()).await.unwrap();
    assert!(request
        .verify_callback("code=x&state=forged")
        .unwrap_err()
        .is_state_mismatch());
    let code = request.verify_callback(&callback).unwrap();
    let token = token_client
        .exchange_code(code.code, Some(request.redirect_uri()), request.verifier())
        .await
        .unwrap();
    assert_eq!(token.scope(), Some("documents"));
    let first_refresh_token = token.refresh_token().unwrap().clone();
    // Only the first token is short; the refreshed one lives an hour, so a slow
    // machine cannot squeeze a second refresh into the test.
    emu.set_token_lifetime(Duration::from_secs(3600));

    let cred = agrello::credential(&emu.base_url(), token_client.clone(), token).unwrap();
    let svc = api(cred.clone());
    let uri = format!("{}/api/v1/documents", emu.base_url());
    let (status, _) = call(&svc, Method::GET, &uri).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(emu.token_requests(), 1, "only the code exchange so far");

    // Let the 1 s token expire (the layer refreshes ahead at 0.9 s), then a burst.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let statuses = burst(&svc, Method::GET, &uri, 100).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let after_expiry = emu.token_requests();
    assert_eq!(after_expiry, 2, "one refresh for the lifetime");
    assert_eq!(emu.refresh_tokens_used(), 1);
    // Rotation: the first refresh token is dead now.
    let e = token_client
        .refresh(&first_refresh_token, &[])
        .await
        .unwrap_err();
    assert!(e.is_invalid_grant());

    // 401 storm: one refresh, with the rotated refresh token.
    let before = emu.token_requests();
    emu.revoke_all();
    let statuses = burst(&svc, Method::GET, &uri, 100).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(emu.token_requests() - before, 1);
    assert_eq!(emu.refresh_tokens_used(), 2);
}

#[tokio::test]
async fn agrello_wrong_secret_is_invalid_client_once() {
    let emu = OAuthServer::start("agrello-app", "s3cret").await;
    let bad = agrello::token_client_at(&emu.token_url(), "agrello-app", "WRONG", http()).unwrap();
    let e = bad
        .exchange_code("whatever", Some("http://127.0.0.1/cb"), None)
        .await
        .unwrap_err();
    assert!(e.is_invalid_client());
    assert_eq!(emu.token_requests(), 1);
}

#[tokio::test]
async fn agrello_token_url_default_is_the_authorize_sibling() {
    assert_eq!(
        agrello::TOKEN_URL.rsplit_once('/').unwrap().0,
        agrello::AUTHORIZE_URL.rsplit_once('/').unwrap().0
    );
    let r = agrello::authorization_url("MYAPP_CLIENT_ID", "http://myapp.io/auth/agrello")
        .build()
        .unwrap();
    assert!(r.url().starts_with(
        "https://service.agrello.org/identity/auth/oauth/authorize?response_type=code&client_id=MYAPP_CLIENT_ID&redirect_uri=http%3A%2F%2Fmyapp.io%2Fauth%2Fagrello"
    ));
}

// ---------------------------------------------------------------- generic

#[tokio::test]
async fn generic_personal_access_token() {
    let emu = OAuthServer::start("app", "secret").await;
    let pat = emu.issue_personal_access_token(Duration::from_secs(86_400));
    let svc = api(generic::personal_access_token(&emu.base_url(), pat).unwrap());
    let (status, _) = call(&svc, Method::GET, &format!("{}/api/v1/me", emu.base_url()))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let svc = api(generic::personal_access_token(&emu.base_url(), "pat_wrong").unwrap());
    let (status, _) = call(&svc, Method::GET, &format!("{}/api/v1/me", emu.base_url()))
        .await
        .unwrap();
    assert_eq!(status, 401, "a static PAT's 401 comes back as it is");
    assert_eq!(emu.token_requests(), 0);
}
