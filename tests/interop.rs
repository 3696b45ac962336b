//! Interop against a real authorization server, django-oauth-toolkit, for every
//! grant. Run by `tests/interop/run.sh` (and so by `.ci/run`), which starts the
//! server and sets `DOT_BASE` and `DOT_SESSION`. A `test = false` target, so a
//! plain `cargo test` needs no Python; `cargo test --test interop` runs it.
//!
//! The protected resource is a hyper server in this file that checks bearer
//! tokens with the server's introspection endpoint, so an expired or revoked
//! token really gets 401.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use secrecy::ExposeSecret;
use tower::{Layer, ServiceBuilder, ServiceExt};
use tower_client_auth::oauth2::{AuthorizationUrl, ClientAuth, OAuth2Source, TokenClient};
use tower_client_auth::token::{ManagedOptions, Token, TokenSource};
use tower_client_auth::{AuthLayer, AuthService, BoxError, Credential, Error, ReplayBody};

fn dot() -> String {
    std::env::var("DOT_BASE").expect("DOT_BASE is not set: run tests/interop/run.sh")
}

fn token_url() -> String {
    format!("{}/o/token/", dot())
}

fn lifetime() -> Duration {
    let secs = std::env::var("DOT_TOKEN_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    Duration::from_secs(secs)
}

type Plain = Client<HttpConnector, Full<Bytes>>;

fn plain() -> Plain {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A client for the token endpoint that counts token requests.
fn counting() -> (
    impl tower::Service<
            Request<Full<Bytes>>,
            Response = Response<hyper::body::Incoming>,
            Error = hyper_util::client::legacy::Error,
            Future = impl Send,
        > + Clone
        + Send
        + Sync
        + 'static,
    Arc<AtomicUsize>,
) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let svc = ServiceBuilder::new()
        .map_request(move |req: Request<Full<Bytes>>| {
            if req.uri().path() == "/o/token/" {
                c.fetch_add(1, Ordering::SeqCst);
            }
            req
        })
        .service(plain());
    (svc, count)
}

/// A protected resource on loopback: 200 if django-oauth-toolkit's introspection
/// says the bearer token is active, 401 otherwise.
async fn resource() -> String {
    let addr = common::serve(|req: common::Seen| async move {
        let token = common::header(&req, "authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .unwrap_or("")
            .to_owned();
        if token.is_empty() || !introspect(&token).await {
            return Response::builder()
                .status(401)
                .header("www-authenticate", r#"Bearer error="invalid_token""#)
                .body(Full::new(Bytes::new()))
                .unwrap();
        }
        common::text(200, "protected data")
    })
    .await;
    format!("http://{addr}")
}

async fn introspect(token: &str) -> bool {
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("rs-client:rs-secret");
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("token", token)
        .finish();
    let req = Request::post(format!("{}/o/introspect/", dot()))
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    // One client for all introspections: reused connections keep the load on the
    // authorization server low.
    static CLIENT: std::sync::OnceLock<Plain> = std::sync::OnceLock::new();
    let Ok(res) = CLIENT.get_or_init(plain).request(req).await else {
        return false;
    };
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    v["active"] == true
}

/// A client-credentials credential of `cc-client` for the resource at `rs`, and
/// the count of its token requests.
fn cc_credential(
    rs: &str,
    secret: &str,
    options: ManagedOptions,
) -> (Credential, Arc<AtomicUsize>) {
    let (http, count) = counting();
    let tc = TokenClient::builder(token_url())
        .client_id("cc-client")
        .client_secret(secret.to_owned())
        .build(http)
        .unwrap();
    let cred = Credential::builder()
        .origin(rs)
        .token_source_with(OAuth2Source::client_credentials(tc), options)
        .build()
        .unwrap();
    (cred, count)
}

type Api = AuthService<Client<HttpConnector, ReplayBody<Full<Bytes>>>>;

fn api(cred: Credential) -> Api {
    AuthLayer::new(cred).layer(Client::builder(TokioExecutor::new()).build_http())
}

async fn get(svc: &Api, uri: &str) -> Result<u16, BoxError> {
    let req = Request::get(uri).body(Full::new(Bytes::new()))?;
    let res = svc.clone().oneshot(req).await?;
    let status = res.status().as_u16();
    res.into_body().collect().await?;
    Ok(status)
}

fn error(e: BoxError) -> Error {
    *e.downcast::<Error>().expect("a tower_client_auth::Error")
}

#[tokio::test]
async fn client_credentials_basic_with_reserved_characters_and_body_auth() {
    let rs = resource().await;
    // RFC 6749 §2.3.1: id and secret form-urlencoded before base64.
    let tc = TokenClient::builder(token_url())
        .client_id("special client")
        .client_secret("p@ss:w/rd+%&=")
        .build(plain())
        .unwrap();
    let token = tc.client_credentials(&["read"]).await.unwrap();
    assert_eq!(token.token_type(), "Bearer");
    assert!(introspect(token.access_token().expose_secret()).await);

    // Sent raw, `+` decodes to a space on the server: wrong secret.
    let raw = TokenClient::builder(token_url())
        .client_id("special client")
        .client_secret("p@ss:w/rd+%&=")
        .client_auth(ClientAuth::BasicRaw)
        .build(plain())
        .unwrap();
    assert!(raw
        .client_credentials(&[])
        .await
        .unwrap_err()
        .is_invalid_client());

    // Credentials in the body.
    let body = TokenClient::builder(token_url())
        .client_id("cc-client")
        .client_secret("cc-secret")
        .client_auth(ClientAuth::Body)
        .build(plain())
        .unwrap();
    let cred = Credential::builder()
        .origin(&rs)
        .token_source(OAuth2Source::client_credentials(body))
        .build()
        .unwrap();
    assert_eq!(get(&api(cred), &format!("{rs}/data")).await.unwrap(), 200);
}

#[tokio::test]
async fn password_grant_and_wrong_password_cools_down_after_one_attempt() {
    let rs = resource().await;
    let (http, count) = counting();
    let tc = TokenClient::builder(token_url())
        .client_id("pw-client")
        .client_secret("pw-secret")
        .build(http)
        .unwrap();
    let good = Credential::builder()
        .origin(&rs)
        .token_source(OAuth2Source::password(tc.clone(), "alice", "wonderland-pw"))
        .build()
        .unwrap();
    assert_eq!(get(&api(good), &format!("{rs}/data")).await.unwrap(), 200);
    assert_eq!(count.load(Ordering::SeqCst), 1);

    let bad = Credential::builder()
        .origin(&rs)
        .token_source(OAuth2Source::password(tc, "alice", "not-the-password"))
        .build()
        .unwrap();
    let svc = api(bad);
    let first = error(get(&svc, &format!("{rs}/data")).await.unwrap_err());
    assert!(first.is_invalid_grant(), "{first:?}");
    for _ in 0..10 {
        let e = error(get(&svc, &format!("{rs}/data")).await.unwrap_err());
        assert!(e.is_cooling_down());
    }
    assert_eq!(
        count.load(Ordering::SeqCst),
        2,
        "one attempt with the wrong password"
    );
}

#[tokio::test]
async fn authorization_code_with_pkce_then_refresh_rotation() {
    let rs = resource().await;
    let request = AuthorizationUrl::new(
        format!("{}/o/authorize/", dot()),
        "code-client",
        "http://127.0.0.1/callback",
    )
    .scope("read")
    .build()
    .unwrap();
    // Headless browser: alice's session cookie, and the app skips the consent page.
    let session = std::env::var("DOT_SESSION").expect("DOT_SESSION");
    let req = Request::get(request.url())
        .header("cookie", format!("sessionid={session}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = plain().request(req).await.unwrap();
    assert_eq!(res.status(), 302, "authorize redirects with a code");
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let query = location.split_once('?').unwrap().1;
    let code = request.verify_callback(query).unwrap();

    let (http, count) = counting();
    let tc = TokenClient::builder(token_url())
        .client_id("code-client")
        .client_secret("code-secret")
        .build(http)
        .unwrap();
    let token = tc
        .exchange_code(
            code.code.clone(),
            Some(request.redirect_uri()),
            request.verifier(),
        )
        .await
        .unwrap();
    let rt1 = token.refresh_token().expect("a refresh token").clone();
    // The code is single use.
    let again = tc
        .exchange_code(code.code, Some(request.redirect_uri()), request.verifier())
        .await;
    assert!(again.unwrap_err().is_invalid_grant());

    // Through the layer: wait for expiry, the layer refreshes with rt1, gets rt2.
    let cred = Credential::builder()
        .origin(&rs)
        .token_source(OAuth2Source::from_token(tc.clone(), token))
        .build()
        .unwrap();
    let svc = api(cred.clone());
    assert_eq!(get(&svc, &format!("{rs}/data")).await.unwrap(), 200);
    tokio::time::sleep(lifetime() + Duration::from_millis(300)).await;
    assert_eq!(get(&svc, &format!("{rs}/data")).await.unwrap(), 200);
    let current = cred.token().await.unwrap();
    let rt2 = current.refresh_token().unwrap().clone();
    assert_ne!(rt1.expose_secret(), rt2.expose_secret(), "rotated");
    // The old refresh token is dead; the new one is the one in use.
    assert!(tc.refresh(&rt1, &[]).await.unwrap_err().is_invalid_grant());
    assert!(count.load(Ordering::SeqCst) >= 3);
}

#[tokio::test]
async fn short_tokens_one_request_per_lifetime_under_concurrency() {
    let rs = resource().await;
    // A request that takes longer than half a token's life (a starved machine:
    // the server itself is on these two cores) can legitimately see its token
    // expire twice; such a run proves nothing either way and is run again, at
    // most three times. In a run without such delays every request must succeed
    // and there is one token request per lifetime.
    for attempt in 1..=3 {
        let (cred, count) = cc_credential(&rs, "cc-secret", ManagedOptions::default());
        let svc = api(cred.clone());
        let span = lifetime() * 3 + Duration::from_millis(500);
        let start = tokio::time::Instant::now();
        let mut results = Vec::new();
        while start.elapsed() < span {
            let burst: Vec<_> = (0..10)
                .map(|_| {
                    let svc = svc.clone();
                    let uri = format!("{rs}/data");
                    tokio::spawn(async move {
                        let sent = tokio::time::Instant::now();
                        let status = get(&svc, &uri).await.unwrap();
                        (status, sent.elapsed())
                    })
                })
                .collect();
            for b in burst {
                results.push(b.await.unwrap());
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        let slowest = results.iter().map(|r| r.1).max().unwrap_or_default();
        if slowest > lifetime() / 2 && attempt < 3 {
            println!(
                "attempt {attempt}: a request took {slowest:?}; machine starved, running again"
            );
            continue;
        }
        let failed: Vec<_> = results.iter().filter(|r| r.0 != 200).collect();
        assert!(
            failed.is_empty(),
            "{failed:?}; slowest {slowest:?}; {:?}",
            cred.stats()
        );
        let n = count.load(Ordering::SeqCst);
        let lifetimes = (span.as_secs_f64() / (lifetime().as_secs_f64() * 0.9)).ceil() as usize;
        println!(
            "{} requests over {span:?}: {n} token requests (at most {lifetimes} lifetimes)",
            results.len()
        );
        assert!(n >= 3 && n <= lifetimes + 1, "{n} token requests");
        assert_eq!(cred.stats().unwrap().token_requests as usize, n);
        return;
    }
}

/// The server's tokens as if they had no `expires_in`: they live until a 401, so
/// only the revocation (or the server's own expiry) can end them, however slow
/// the machine is.
struct UntilRejected(OAuth2Source);

impl TokenSource for UntilRejected {
    fn fetch(&self, previous: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>> {
        let fetch = self.0.fetch(previous);
        Box::pin(async move {
            fetch
                .await
                .map(|t| Token::bearer(t.access_token().clone(), None))
        })
    }
}

#[tokio::test]
async fn a_revoked_token_gets_401_then_one_refresh_and_success() {
    use base64::Engine as _;
    let rs = resource().await;
    let (http, count) = counting();
    let tc = TokenClient::builder(token_url())
        .client_id("cc-client")
        .client_secret("cc-secret")
        .build(http)
        .unwrap();
    let cred = Credential::builder()
        .origin(&rs)
        .token_source(UntilRejected(OAuth2Source::client_credentials(tc)))
        .build()
        .unwrap();
    let svc = api(cred.clone());
    assert_eq!(get(&svc, &format!("{rs}/data")).await.unwrap(), 200);
    let token = cred.token().await.unwrap();

    let basic = base64::engine::general_purpose::STANDARD.encode("cc-client:cc-secret");
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("token", token.access_token().expose_secret())
        .finish();
    let revoke = Request::post(format!("{}/o/revoke_token/", dot()))
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    assert_eq!(plain().request(revoke).await.unwrap().status(), 200);
    assert!(!introspect(token.access_token().expose_secret()).await);

    let before = count.load(Ordering::SeqCst);
    assert_eq!(get(&svc, &format!("{rs}/data")).await.unwrap(), 200);
    assert_eq!(count.load(Ordering::SeqCst) - before, 1, "one refresh");
    assert_eq!(cred.stats().unwrap().retries_on_401, 1, "one retry");
}

#[tokio::test]
async fn wrong_client_secret_is_invalid_client_without_a_retry_loop() {
    let rs = resource().await;
    let (cred, count) = cc_credential(&rs, "wrong-secret", ManagedOptions::default());
    let svc = api(cred);
    let e = error(get(&svc, &format!("{rs}/data")).await.unwrap_err());
    assert!(e.is_invalid_client() && !e.is_transient(), "{e:?}");
    assert_eq!(e.status().unwrap(), 401);
    for _ in 0..5 {
        assert!(error(get(&svc, &format!("{rs}/data")).await.unwrap_err()).is_cooling_down());
    }
    assert_eq!(count.load(Ordering::SeqCst), 1);
}
