//! The token endpoint client against a real HTTP server on loopback: exact wire
//! format per grant and provider shape, and DESIGN.md's conformance checklist
//! items that need a server (the parsing items are unit tests in
//! src/oauth2/response.rs, PKCE in src/oauth2/pkce.rs).

use crate::common;

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use secrecy::{ExposeSecret, SecretString};
use tower::ServiceExt;
use tower_client_auth::oauth2::{ClientAuth, Grant, OAuth2Source, ParamStyle, TokenClient};
use tower_client_auth::token::{Token, TokenSource};
use tower_client_auth::{AuthLayer, Credential};

use common::{client, header, json, logging_server, text};

const TOKEN_OK: &str = r#"{"access_token":"at-1","token_type":"bearer","expires_in":3600}"#;

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A client for `{base}/token` with these client credentials.
fn token_client(base: &str, id: &str, secret: &str, auth: ClientAuth) -> TokenClient {
    TokenClient::builder(format!("{base}/token"))
        .client_id(id)
        .client_secret(secret.to_owned())
        .client_auth(auth)
        .build(client::<Full<Bytes>>())
        .unwrap()
}

async fn ok_server() -> (String, common::Log) {
    logging_server(|_, _| json(200, TOKEN_OK)).await
}

#[tokio::test]
async fn checklist_7_basic_client_auth_is_form_urlencoded_first() {
    let (base, log) = ok_server().await;
    let tc = token_client(&base, "special client", "p@ss:w/rd+%&=", ClientAuth::Basic);
    tc.client_credentials(&[]).await.unwrap();
    let seen = log.get(0);
    assert_eq!(
        header(&seen, "authorization").unwrap(),
        format!(
            "Basic {}",
            b64("special+client:p%40ss%3Aw%2Frd%2B%25%26%3D")
        )
    );
    assert_eq!(log.body(0), "grant_type=client_credentials");
    assert_eq!(seen.method(), "POST");
    assert_eq!(
        header(&seen, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(header(&seen, "accept"), Some("application/json"));
}

#[tokio::test]
async fn checklist_7_raw_basic_and_body_auth_never_both() {
    let (base, log) = ok_server().await;
    let raw = token_client(
        &base,
        "special client",
        "p@ss:w/rd+%&=",
        ClientAuth::BasicRaw,
    );
    raw.client_credentials(&[]).await.unwrap();
    assert_eq!(
        header(&log.get(0), "authorization").unwrap(),
        format!("Basic {}", b64("special client:p@ss:w/rd+%&="))
    );

    let body = token_client(&base, "special client", "p@ss:w/rd+%&=", ClientAuth::Body);
    body.client_credentials(&[]).await.unwrap();
    assert!(header(&log.get(1), "authorization").is_none());
    assert_eq!(
        log.body(1),
        "grant_type=client_credentials&client_id=special+client&client_secret=p%40ss%3Aw%2Frd%2B%25%26%3D"
    );

    let empty_secret = token_client(&base, "cid", "", ClientAuth::Body);
    empty_secret.client_credentials(&[]).await.unwrap();
    assert_eq!(log.body(2), "grant_type=client_credentials&client_id=cid");

    let public = TokenClient::builder(format!("{base}/token"))
        .client_id("cid")
        .client_auth(ClientAuth::None)
        .build(client::<Full<Bytes>>())
        .unwrap();
    public.client_credentials(&[]).await.unwrap();
    assert!(header(&log.get(3), "authorization").is_none());
    assert_eq!(log.body(3), "grant_type=client_credentials&client_id=cid");
}

#[tokio::test]
async fn checklist_8_password_grant_form_body_exact() {
    let (base, log) = ok_server().await;
    let tc = token_client(&base, "cid", "cs", ClientAuth::Basic);
    let scopes = ["a", "b"];
    tc.password("jane doe", "p&ss=wörd", &scopes).await.unwrap();
    assert_eq!(
        log.body(0),
        "grant_type=password&username=jane+doe&password=p%26ss%3Dw%C3%B6rd&scope=a+b"
    );
}

#[tokio::test]
async fn algoreg_password_grant_json_body() {
    let (base, log) =
        logging_server(|_, _| json(200, r#"{"access_token":"algo-at","expires_in":null}"#)).await;
    let tc = TokenClient::builder(format!("{base}/api/v1/token"))
        .client_auth(ClientAuth::None)
        .params_in(ParamStyle::Json)
        .build(client::<Full<Bytes>>())
        .unwrap();
    let token = tc.password("me@example.com", "pw\"1", &[]).await.unwrap();
    assert_eq!(token.expires_in(), None);
    let seen = log.get(0);
    assert_eq!(seen.uri().path(), "/api/v1/token");
    assert_eq!(header(&seen, "content-type"), Some("application/json"));
    assert!(header(&seen, "authorization").is_none());
    let body: serde_json::Value = serde_json::from_str(&log.body(0)).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"grant_type":"password","username":"me@example.com","password":"pw\"1"})
    );
}

#[tokio::test]
async fn altrata_query_string_grant_with_basic_and_api_key() {
    let (base, log) = logging_server(|_, _| {
        json(
            200,
            r#"{"access_token":"alt-at","expires_in":28800,"token_type":"Bearer"}"#,
        )
    })
    .await;
    let tc = TokenClient::builder(format!("{base}/oauth2/token"))
        .client_id("user")
        .client_secret("pass")
        .client_auth(ClientAuth::BasicRaw)
        .params_in(ParamStyle::Query)
        .header("x-api-key", "KEY")
        .build(client::<Full<Bytes>>())
        .unwrap();
    let token = tc.client_credentials(&[]).await.unwrap();
    assert_eq!(token.expires_in(), Some(Duration::from_secs(28800)));
    let seen = log.get(0);
    assert_eq!(seen.method(), "POST");
    assert_eq!(
        seen.uri().path_and_query().unwrap().as_str(),
        "/oauth2/token?grant_type=client_credentials"
    );
    assert_eq!(
        header(&seen, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(header(&seen, "x-api-key"), Some("KEY"));
    assert_eq!(
        header(&seen, "authorization").unwrap(),
        format!("Basic {}", b64("user:pass"))
    );
    assert!(seen.body().is_empty());
}

#[tokio::test]
async fn checklist_13_secrets_never_in_a_query_string() {
    let (base, log) = ok_server().await;
    let tc = TokenClient::builder(format!("{base}/token"))
        .client_id("cid")
        .client_secret("cs")
        .params_in(ParamStyle::Query)
        .build(client::<Full<Bytes>>())
        .unwrap();
    let err = tc.password("u", "p", &[]).await.unwrap_err();
    assert!(err.is_config());
    let rt: SecretString = "rt".into();
    assert!(tc.refresh(&rt, &[]).await.unwrap_err().is_config());
    assert_eq!(log.len(), 0, "nothing sent");

    // The layer puts access tokens in a header, never in the URI.
    let (api, api_log) = logging_server(|_, _| text(200, "ok")).await;
    let tc = token_client(&base, "cid", "cs", ClientAuth::Basic);
    let cred = Credential::builder()
        .origin(&api)
        .token_source(OAuth2Source::client_credentials(tc))
        .build()
        .unwrap();
    let svc = AuthLayer::new(cred).layer_client();
    let req = Request::get(format!("{api}/x?a=1"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    svc.oneshot(req).await.unwrap();
    let seen = api_log.get(0);
    assert_eq!(seen.uri().path_and_query().unwrap().as_str(), "/x?a=1");
    assert_eq!(header(&seen, "authorization"), Some("Bearer at-1"));
}

trait LayerClient {
    fn layer_client(
        self,
    ) -> tower_client_auth::AuthService<
        hyper_util::client::legacy::Client<
            hyper_util::client::legacy::connect::HttpConnector,
            tower_client_auth::ReplayBody<Full<Bytes>>,
        >,
    >;
}

impl LayerClient for AuthLayer {
    fn layer_client(
        self,
    ) -> tower_client_auth::AuthService<
        hyper_util::client::legacy::Client<
            hyper_util::client::legacy::connect::HttpConnector,
            tower_client_auth::ReplayBody<Full<Bytes>>,
        >,
    > {
        tower::Layer::layer(&self, client())
    }
}

#[tokio::test]
async fn agrello_code_exchange_then_refresh_rotation() {
    let (base, log) = logging_server(|req, n| {
        let body = String::from_utf8(req.body().to_vec()).unwrap();
        match n {
            1 => {
                assert!(body.starts_with("grant_type=authorization_code&code=the-code"));
                json(
                    200,
                    r#"{"access_token":"at-1","expires_in":60,"refresh_token":"rt-1"}"#,
                )
            }
            2 => {
                assert_eq!(body, "grant_type=refresh_token&refresh_token=rt-1");
                json(
                    200,
                    r#"{"access_token":"at-2","expires_in":60,"refresh_token":"rt-2"}"#,
                )
            }
            3 => {
                assert_eq!(body, "grant_type=refresh_token&refresh_token=rt-2");
                // No new refresh token: the old one is kept.
                json(200, r#"{"access_token":"at-3","expires_in":60}"#)
            }
            _ => json(400, r#"{"error":"invalid_grant"}"#),
        }
    })
    .await;
    let tc = TokenClient::builder(format!("{base}/identity/auth/oauth/token"))
        .client_id("agrello-client")
        .client_secret("agrello-secret")
        .client_auth(ClientAuth::BasicRaw)
        .build(client::<Full<Bytes>>())
        .unwrap();
    let verifier = tower_client_auth::oauth2::PkceVerifier::generate().unwrap();
    let t1 = tc
        .exchange_code("the-code", Some("https://my.app/cb"), Some(&verifier))
        .await
        .unwrap();
    assert_eq!(
        log.body(0),
        format!(
            "grant_type=authorization_code&code=the-code&redirect_uri=https%3A%2F%2Fmy.app%2Fcb&code_verifier={}",
            verifier.secret().expose_secret()
        )
    );
    assert_eq!(
        header(&log.get(0), "authorization").unwrap(),
        format!("Basic {}", b64("agrello-client:agrello-secret"))
    );

    // checklist 9: a new refresh token replaces the old; none returned keeps the old.
    let source = OAuth2Source::from_token(tc, t1);
    let first = source.fetch(None).await.unwrap();
    assert_eq!(
        first.access_token().expose_secret(),
        "at-1",
        "seed used, no request"
    );
    assert_eq!(log.len(), 1);
    let t2 = source.fetch(Some(&first)).await.unwrap();
    assert_eq!(t2.refresh_token().unwrap().expose_secret(), "rt-2");
    let t3 = source.fetch(Some(&t2)).await.unwrap();
    assert_eq!(t3.access_token().expose_secret(), "at-3");
    assert_eq!(t3.refresh_token().unwrap().expose_secret(), "rt-2");
    // A rejected refresh token with no grant to fall back on: typed error.
    let err = source.fetch(Some(&t3)).await.unwrap_err();
    assert!(err.is_invalid_grant());
    assert_eq!(err.status().unwrap(), 400);
}

#[tokio::test]
async fn checklist_10_expired_without_refresh_token_sends_nothing() {
    let (base, log) = ok_server().await;
    let tc = TokenClient::builder(format!("{base}/token"))
        .client_id("cid")
        .build(client::<Full<Bytes>>())
        .unwrap();
    let expired = Token::bearer("old", Some(Duration::from_nanos(1)));
    tokio::time::sleep(Duration::from_millis(2)).await;
    let source = OAuth2Source::from_token(tc, expired);
    let err = source.fetch(None).await.unwrap_err();
    assert!(err.is_no_token());
    assert_eq!(log.len(), 0);
}

#[tokio::test]
async fn checklist_15_client_credentials_rerun_and_refresh_fallback() {
    let (base, log) = logging_server(|req, _| {
        let body = String::from_utf8(req.body().to_vec()).unwrap();
        if body.starts_with("grant_type=refresh_token") {
            json(
                400,
                r#"{"error":"invalid_grant","error_description":"expired"}"#,
            )
        } else {
            json(200, TOKEN_OK)
        }
    })
    .await;
    let tc = token_client(&base, "cid", "cs", ClientAuth::Basic);
    let source = OAuth2Source::client_credentials(tc.clone());
    let t1 = source.fetch(None).await.unwrap();
    let _t2 = source.fetch(Some(&t1)).await.unwrap();
    assert_eq!(log.body(0), "grant_type=client_credentials");
    assert_eq!(log.body(1), "grant_type=client_credentials");

    // Password grant holding a refresh token that is rejected: falls back to the grant.
    let source = OAuth2Source::password(tc, "u", "p").with_refresh_token("stale-rt");
    let t = source.fetch(None).await.unwrap();
    assert_eq!(t.access_token().expose_secret(), "at-1");
    assert_eq!(
        log.body(2),
        "grant_type=refresh_token&refresh_token=stale-rt"
    );
    assert_eq!(log.body(3), "grant_type=password&username=u&password=p");
}

#[tokio::test]
async fn checklist_6_errors_over_the_wire() {
    let (base, _log) = logging_server(|req, _| match req.uri().path() {
        "/200-error" => json(
            200,
            r#"{"error":"invalid_client","error_description":"who?"}"#,
        ),
        "/401" => text(401, ""),
        "/429" => {
            let mut r = text(429, "slow down");
            r.headers_mut().insert("retry-after", "3".parse().unwrap());
            r
        }
        "/503" => json(503, r#"{"error":"temporarily_unavailable"}"#),
        "/html" => text(200, "<html>hi</html>"),
        _ => text(404, ""),
    })
    .await;
    let tc = |path: &str| {
        TokenClient::builder(format!("{base}{path}"))
            .client_id("cid")
            .client_secret("cs")
            .build(client::<Full<Bytes>>())
            .unwrap()
    };
    let e = tc("/200-error").client_credentials(&[]).await.unwrap_err();
    assert!(e.is_invalid_client() && !e.is_transient());
    assert_eq!(e.oauth2_description(), Some("who?"));
    assert_eq!(e.status().unwrap(), 200);
    let e = tc("/401").client_credentials(&[]).await.unwrap_err();
    assert!(e.is_invalid_client() && !e.is_transient());
    let e = tc("/429").client_credentials(&[]).await.unwrap_err();
    assert!(e.is_transient());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
    let e = tc("/503").client_credentials(&[]).await.unwrap_err();
    assert!(e.is_transient());
    assert_eq!(e.oauth2_code(), Some("temporarily_unavailable"));
    let e = tc("/html").client_credentials(&[]).await.unwrap_err();
    assert!(e.is_invalid_response());
    assert!(
        !format!("{e} {e:?}").contains("Y2lkOmNz"),
        "no client credentials in errors"
    );
}

#[tokio::test]
async fn checklist_11_response_body_capped() {
    let big = format!(r#"{{"access_token":"{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let (base, _log) = logging_server(move |_, _| json(200, &big)).await;
    let tc = TokenClient::builder(format!("{base}/token"))
        .client_id("cid")
        .build(client::<Full<Bytes>>())
        .unwrap();
    let e = tc.client_credentials(&[]).await.unwrap_err();
    assert!(e.is_response_too_large());
    assert!(!e.is_transient());
}

#[tokio::test]
async fn timeout_and_connection_errors_are_transient() {
    let slow = common::serve(|_| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        json(200, TOKEN_OK)
    })
    .await;
    let tc = TokenClient::builder(format!("http://{slow}/token"))
        .client_id("cid")
        .timeout(Duration::from_millis(200))
        .build(client::<Full<Bytes>>())
        .unwrap();
    let e = tc.client_credentials(&[]).await.unwrap_err();
    assert!(e.is_timeout() && e.is_transient());

    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = listener.local_addr().unwrap();
    drop(listener);
    let tc = TokenClient::builder(format!("http://{dead}/token"))
        .client_id("cid")
        .build(client::<Full<Bytes>>())
        .unwrap();
    let e = tc.client_credentials(&[]).await.unwrap_err();
    assert!(e.is_transport() && e.is_transient());
}

#[tokio::test]
async fn plain_http_token_url_refused_unless_loopback_or_allowed() {
    let e = TokenClient::builder("http://auth.example.com/token")
        .client_id("cid")
        .build(client::<Full<Bytes>>())
        .unwrap_err();
    assert!(e.is_config());
    assert!(TokenClient::builder("http://auth.example.com/token")
        .client_id("cid")
        .allow_http()
        .build(client::<Full<Bytes>>())
        .is_ok());
}

#[tokio::test]
async fn token_requests_are_never_stamped_by_the_layer() {
    // The user wrongly gives the token client an authenticated client for the same
    // origin: the token request still goes out with client auth only.
    let (base, log) = ok_server().await;
    let pat = Credential::bearer(&base, "api-pat").unwrap();
    let authed = AuthLayer::new(pat).layer_client();
    let tc = TokenClient::builder(format!("{base}/token"))
        .client_id("cid")
        .client_secret("cs")
        .client_auth(ClientAuth::Body)
        .build(authed)
        .unwrap();
    tc.request_token(&Grant::ClientCredentials, &[])
        .await
        .unwrap();
    assert_eq!(header(&log.get(0), "authorization"), None);
    assert_eq!(
        log.body(0),
        "grant_type=client_credentials&client_id=cid&client_secret=cs"
    );
}

/// Every endpoint that gets the client's authentication follows the token
/// URL's rule: the device authorization endpoint over plain http to a host
/// that is not loopback sends nothing (not the Basic header, not a secret in
/// the body) and is a configuration error, unless the client allows http.
#[tokio::test]
async fn plain_http_device_endpoint_sends_nothing() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let sent = Arc::new(AtomicUsize::new(0));
    let counted = sent.clone();
    let http = tower::service_fn(move |_req: Request<Full<Bytes>>| {
        counted.fetch_add(1, Ordering::SeqCst);
        async {
            Ok::<_, std::convert::Infallible>(json(
                200,
                r#"{"device_code":"d","user_code":"u","verification_uri":"https://auth.example.com/activate","expires_in":60}"#,
            ))
        }
    });
    for auth in [ClientAuth::Basic, ClientAuth::Body] {
        let tc = TokenClient::builder("https://auth.example.com/token")
            .client_id("cid")
            .client_secret("DEVICE-SECRET")
            .client_auth(auth)
            .build(http.clone())
            .unwrap();
        let e = tc
            .device_authorization("http://auth.example.com/device", &[])
            .await
            .unwrap_err();
        assert!(e.is_config(), "{auth:?}: {e}");
        assert!(!e.to_string().contains("DEVICE-SECRET"));
        // User information is refused there as in the token URL.
        let e = tc
            .device_authorization("https://cid:DEVICE-SECRET@auth.example.com/device", &[])
            .await
            .unwrap_err();
        assert!(e.is_config(), "{auth:?}: {e}");
        assert!(e.to_string().contains("user information"), "{e}");
        assert!(!format!("{e} {e:?}").contains("DEVICE-SECRET"));
        assert_eq!(sent.load(Ordering::SeqCst), 0, "{auth:?}: nothing sent");
    }
    // Loopback, https, or http allowed explicitly: sent.
    let tc = TokenClient::builder("https://auth.example.com/token")
        .client_id("cid")
        .build(http.clone())
        .unwrap();
    tc.device_authorization("http://127.0.0.1:9/device", &[])
        .await
        .unwrap();
    tc.device_authorization("https://auth.example.com/device", &[])
        .await
        .unwrap();
    assert_eq!(sent.load(Ordering::SeqCst), 2);
    let tc = TokenClient::builder("https://auth.example.com/token")
        .client_id("cid")
        .allow_http()
        .build(http)
        .unwrap();
    tc.device_authorization("http://auth.example.com/device", &[])
        .await
        .unwrap();
    assert_eq!(sent.load(Ordering::SeqCst), 3);
}

/// User information in a token URL is refused when the client is built, so
/// that its password can show nowhere: not in the error, nor in the builder's
/// `Debug`. The same for a credential's origin and a discovery issuer.
#[tokio::test]
async fn user_information_in_a_url_is_refused() {
    let url = "https://client:URL-PASSWORD@auth.example.com/token";
    let builder = TokenClient::builder(url).client_id("cid");
    assert!(!format!("{builder:?}").contains("URL-PASSWORD"));
    let e = builder.build(client::<Full<Bytes>>()).unwrap_err();
    assert!(e.is_config());
    assert!(e.to_string().contains("user information"), "{e}");
    assert!(!format!("{e} {e:?}").contains("URL-PASSWORD"));
    // Without a password, and with plain http allowed, still refused.
    let e = TokenClient::builder("http://client@10.0.0.1/token")
        .client_id("cid")
        .allow_http()
        .build(client::<Full<Bytes>>())
        .unwrap_err();
    assert!(e.is_config() && e.to_string().contains("user information"));

    let builder = Credential::builder()
        .origin("https://user:URL-PASSWORD@api.example.com")
        .bearer("t");
    assert!(!format!("{builder:?}").contains("URL-PASSWORD"));
    let e = builder.build().unwrap_err();
    assert!(e.is_config() && e.to_string().contains("user information"));
    assert!(!format!("{e} {e:?}").contains("URL-PASSWORD"));
    let e =
        tower_client_auth::Origin::parse("https://user:URL-PASSWORD@api.example.com").unwrap_err();
    assert!(e.is_config() && !format!("{e:?}").contains("URL-PASSWORD"));

    let discovery = tower_client_auth::oauth2::Discovery::new(client::<Full<Bytes>>());
    let e = discovery
        .metadata("https://user:URL-PASSWORD@login.example.com")
        .await
        .unwrap_err();
    assert!(e.is_config() && e.to_string().contains("user information"));
    assert!(!format!("{e} {e:?}").contains("URL-PASSWORD"));
}
