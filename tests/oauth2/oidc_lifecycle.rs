//! Authorization requests and the token lifecycle against a real
//! authorization server (feature `jose`): panva's oidc-provider
//! (tests/oidc/server.mjs with `LIFECYCLE=1`), logins through its own pages.
//! A pushed authorization request (RFC 9126) reaches a token; a server that
//! requires pushed requests (discovery says so) gets them without being
//! asked, and refuses a plain one; a signed request object (RFC 9101), alone
//! and pushed;
//! authorization details (RFC 9396) round-trip to the token; a revoked
//! refresh token (RFC 7009) is refused afterwards, also through
//! `Credential::revoke`; a DPoP client's code is bound to its key
//! (`dpop_jkt`, RFC 9449 §10) and refused with another. Never skipped: without Node or the packages it fails.

use crate::common;
use crate::oidc_provider::Browser;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::process::Command;
use tower_client_auth::oauth2::{
    AuthorizationRequest, AuthorizationUrl, Discovery, OAuth2Source, PrivateKey, ProviderMetadata,
    TokenClient,
};
use tower_client_auth::secrecy::ExposeSecret;
use tower_client_auth::token::Token;
use tower_client_auth::{BoxError, Credential, ReplayBody};

use common::{start_server, ServerProcess};

type Http = Client<HttpConnector, ReplayBody<Full<Bytes>>>;

const REDIRECT: &str = "http://127.0.0.1:9/cb";

async fn start(jar_public: &serde_json::Value, require_par: bool) -> (ServerProcess, String) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc");
    assert!(
        std::path::Path::new(dir)
            .join("node_modules/oidc-provider")
            .exists(),
        "run `npm ci --prefix tests/oidc` first (.ci/run does)"
    );
    let mut command = Command::new("node");
    command
        .arg("server.mjs")
        .current_dir(dir)
        .env("LIFECYCLE", "1")
        .env("JAR_JWK", jar_public.to_string())
        .env("REQUIRE_PAR", if require_par { "1" } else { "0" });
    let log = if require_par {
        "tca-oidc-lifecycle-par.log"
    } else {
        "tca-oidc-lifecycle.log"
    };
    start_server(command, log).await
}

fn payment() -> serde_json::Value {
    serde_json::json!([{
        "type": "payment_initiation",
        "instructedAmount": {"currency": "EUR", "amount": "123.50"},
        "creditorName": "Merchant A",
    }])
}

fn authorization(metadata: &ProviderMetadata) -> AuthorizationUrl {
    let endpoint = metadata
        .endpoint("authorization_endpoint")
        .expect("advertised");
    AuthorizationUrl::new(endpoint, "code-client", REDIRECT).scope("openid")
}

/// Logs in through the provider's pages and exchanges the code.
async fn login(
    issuer: &str,
    tokens: &TokenClient,
    request: &AuthorizationRequest,
) -> Result<Token, BoxError> {
    let mut browser = Browser::default();
    browser.stop_at = Some(REDIRECT.to_owned());
    let pages = browser.approve(issuer, request.url()).await;
    let callback = pages.last().expect("a callback");
    let code = request.verify_callback(callback)?;
    Ok(tokens
        .exchange_code(code.code, Some(request.redirect_uri()), request.verifier())
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn par_jar_rar_and_revocation_against_oidc_provider() -> Result<(), BoxError> {
    let jar_key = PrivateKey::generate_es256()?;
    let (_server, issuer) = start(jar_key.public_jwk(), false).await;
    let http: Http = Client::builder(TokioExecutor::new()).build_http();
    let metadata = Discovery::new(http.clone())
        .allow_http()
        .metadata(&issuer)
        .await?;
    let par_endpoint = metadata
        .endpoint("pushed_authorization_request_endpoint")
        .expect("PAR advertised")
        .to_owned();
    let client = || {
        metadata
            .token_client()
            .client_id("code-client")
            .client_secret("code-secret")
    };
    // Offered, not required: discovery does not push on its own.
    let plain = client().build(http.clone())?;
    assert!(plain.pushed_authorization_url().is_none());
    assert!(plain.revocation_url().is_some(), "from discovery");

    // ---- PAR with RAR: the browser sees only client_id and request_uri.
    let pushing = client()
        .pushed_authorization_url(&par_endpoint)
        .build(http.clone())?;
    let request = pushing
        .authorization_request(authorization(&metadata).authorization_details(payment()))
        .await?;
    assert!(request.url().contains("request_uri="), "{}", request.url());
    for hidden in [
        "redirect_uri",
        "state=",
        "code_challenge",
        "authorization_details",
    ] {
        assert!(!request.url().contains(hidden), "{}", request.url());
    }
    let token = login(&issuer, &pushing, &request).await?;
    assert!(token.refresh_token().is_some());
    // RAR: the granted details come back on the token.
    assert_eq!(token.authorization_details(), Some(&payment()));

    // ---- Revocation: the refresh token is refused afterwards.
    let refresh_token = token.refresh_token().unwrap().clone();
    pushing
        .revoke(&refresh_token, Some("refresh_token"))
        .await?;
    let err = pushing.refresh(&refresh_token, &[]).await.unwrap_err();
    assert!(err.is_invalid_grant(), "{err}");
    // Revoking again is no error (RFC 7009 §2.2).
    pushing
        .revoke(&refresh_token, Some("refresh_token"))
        .await?;

    // ---- JAR: the parameters in a signed request object, then Credential::revoke.
    let signing = client()
        .request_object(jar_key.clone(), metadata.issuer())
        .build(http.clone())?;
    let request = signing
        .authorization_request(authorization(&metadata))
        .await?;
    assert!(request.url().contains("&request=ey"), "{}", request.url());
    assert!(!request.url().contains("redirect_uri"), "{}", request.url());
    let token = login(&issuer, &signing, &request).await?;
    let refresh_token = token.refresh_token().unwrap().clone();
    let credential = Credential::builder()
        .origin(&issuer)
        .allow_http()
        .token_source(OAuth2Source::from_token(signing.clone(), token))
        .build()?;
    credential.token().await?;
    credential.revoke().await?;
    let err = signing.refresh(&refresh_token, &[]).await.unwrap_err();
    assert!(err.is_invalid_grant(), "{err}");

    // JAR and PAR together: the request object is what is pushed.
    let both = client()
        .request_object(jar_key.clone(), metadata.issuer())
        .pushed_authorization_url(&par_endpoint)
        .build(http.clone())?;
    let request = both
        .authorization_request(authorization(&metadata).authorization_details(payment()))
        .await?;
    assert!(request.url().contains("request_uri="), "{}", request.url());
    assert!(!request.url().contains("request=ey"), "{}", request.url());
    let token = login(&issuer, &both, &request).await?;
    assert_eq!(token.authorization_details(), Some(&payment()));

    // JAR signed by another key: refused by the server, on its page or
    // redirect (never a code).
    let stranger = client()
        .request_object(PrivateKey::generate_es256()?, metadata.issuer())
        .build(http.clone())?;
    let request = stranger
        .authorization_request(authorization(&metadata))
        .await?;
    let mut browser = Browser::default();
    browser.stop_at = Some(REDIRECT.to_owned());
    let refused = std::panic::AssertUnwindSafe(browser.approve(&issuer, request.url()));
    use futures_util::FutureExt as _;
    if let Ok(pages) = refused.catch_unwind().await {
        let last = pages.last().unwrap();
        assert!(last.contains("error="), "{pages:?}");
        assert!(request.verify_callback(last).is_err());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_requires_par_gets_pushed_requests() -> Result<(), BoxError> {
    let jar_key = PrivateKey::generate_es256()?;
    let (_server, issuer) = start(jar_key.public_jwk(), true).await;
    let http: Http = Client::builder(TokioExecutor::new()).build_http();
    let metadata = Discovery::new(http.clone())
        .allow_http()
        .metadata(&issuer)
        .await?;
    assert_eq!(
        metadata.document()["require_pushed_authorization_requests"],
        true
    );
    // Discovery sets the PAR endpoint: pushed without being asked.
    let tokens = metadata
        .token_client()
        .client_id("code-client")
        .client_secret("code-secret")
        .build(http.clone())?;
    assert!(tokens.pushed_authorization_url().is_some());
    let request = tokens
        .authorization_request(authorization(&metadata).authorization_details(payment()))
        .await?;
    assert!(request.url().contains("request_uri="), "{}", request.url());
    let token = login(&issuer, &tokens, &request).await?;
    assert!(!token.access_token().expose_secret().is_empty());
    assert_eq!(token.authorization_details(), Some(&payment()));
    // The refresh keeps the details.
    let refreshed = tokens.refresh(token.refresh_token().unwrap(), &[]).await?;
    assert_eq!(refreshed.authorization_details(), Some(&payment()));

    // A plain request (not pushed) is refused by this server.
    let plain = authorization(&metadata).build()?;
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let res = client
        .request(
            http::Request::get(plain.url())
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await?;
    let location = res
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap_or("").to_owned())
        .unwrap_or_default();
    assert!(
        res.status().is_client_error() || location.contains("error=invalid_request"),
        "{} {location}",
        res.status()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_client_binds_the_code_to_its_key() -> Result<(), BoxError> {
    use tower_client_auth::oauth2::Dpop;

    let jar_key = PrivateKey::generate_es256()?;
    let (_server, issuer) = start(jar_key.public_jwk(), false).await;
    let http: Http = Client::builder(TokioExecutor::new()).build_http();
    let metadata = Discovery::new(http.clone())
        .allow_http()
        .metadata(&issuer)
        .await?;
    let client = |dpop: Dpop| {
        metadata
            .token_client()
            .client_id("code-client")
            .client_secret("code-secret")
            .dpop(dpop)
            .build(http.clone())
    };
    let key = Dpop::new(PrivateKey::generate_es256()?);
    let tokens = client(key.clone())?;
    let request = tokens
        .authorization_request(authorization(&metadata))
        .await?;
    assert!(
        request
            .url()
            .contains(&format!("dpop_jkt={}", key.thumbprint())),
        "{}",
        request.url()
    );
    // Redeemed with the key it names: a DPoP-bound token.
    let token = login(&issuer, &tokens, &request).await?;
    assert_eq!(token.token_type(), "DPoP");

    // A code redeemed with another key is refused by the server.
    let request = tokens
        .authorization_request(authorization(&metadata))
        .await?;
    let mut browser = Browser::default();
    browser.stop_at = Some(REDIRECT.to_owned());
    let pages = browser.approve(&issuer, request.url()).await;
    let code = request.verify_callback(pages.last().expect("a callback"))?;
    let thief = client(Dpop::new(PrivateKey::generate_es256()?))?;
    let e = thief
        .exchange_code(code.code, Some(request.redirect_uri()), request.verifier())
        .await
        .unwrap_err();
    // (Without `dpop_jkt` in the authorization request, this exchange
    // succeeds: the binding is what refuses it.)
    assert!(e.is_invalid_grant(), "{e}");
    Ok(())
}
