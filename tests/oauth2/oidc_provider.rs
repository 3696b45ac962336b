//! Against a real authorization server (feature `jose`): panva's oidc-provider
//! (tests/oidc/server.mjs, on Node, installed by `npm ci --prefix tests/oidc`)
//! with a protected resource that verifies DPoP proofs. Discovery from the
//! issuer URL; a DPoP-bound token used at the resource (nonces required at
//! both the token endpoint and the resource); a nonce rotation mid-traffic
//! costing one extra round trip; a replayed proof rejected; private_key_jwt
//! with no client secret. Never skipped: without Node or the packages it fails.

use crate::common;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::process::Command;
use tower::{service_fn, Layer, ServiceExt};
use tower_client_auth::oauth2::{Discovery, Dpop, OAuth2Source, PrivateKey, TokenClient};
use tower_client_auth::{AuthLayer, BoxError, Credential, ReplayBody};

use common::{start_server, ServerProcess};

type Http = Client<HttpConnector, ReplayBody<Full<Bytes>>>;

struct Server {
    issuer: String,
    _process: ServerProcess,
}

async fn start(pkjwt_public: &serde_json::Value) -> Server {
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
        .env("PKJWT_JWK", pkjwt_public.to_string());
    let (process, issuer) = start_server(command, "tca-oidc-provider.log").await;
    Server {
        issuer,
        _process: process,
    }
}

async fn stats(http: &Http, issuer: &str) -> serde_json::Value {
    let req = Request::get(format!("{issuer}/control/stats"))
        .body(ReplayBody::passthrough(Full::new(Bytes::new())))
        .unwrap();
    let body = http
        .request(req)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap();
    serde_json::from_slice(&body.to_bytes()).unwrap()
}

fn n(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_private_key_jwt_and_discovery_against_oidc_provider() -> Result<(), BoxError> {
    let assertion_key = PrivateKey::generate_es256()?;
    let server = start(assertion_key.public_jwk()).await;
    let issuer = server.issuer.clone();
    let http: Http = Client::builder(TokioExecutor::new()).build_http();

    // ---- Discovery from the issuer URL, the issuer checked.
    let discovery = Discovery::new(http.clone()).allow_http();
    let metadata = discovery.metadata(&issuer).await?;
    assert_eq!(metadata.issuer(), issuer);
    assert_eq!(metadata.token_endpoint(), format!("{issuer}/token"));
    assert!(metadata.supports_dpop_alg("ES256"));
    assert!(metadata.supports_auth_method("private_key_jwt"));
    assert!(metadata.supports_grant("client_credentials"));
    let again = discovery.metadata(&issuer).await?;
    assert!(Arc::ptr_eq(&metadata, &again), "cached");
    let other = Discovery::new(http.clone()).allow_http();
    let e = other.metadata(&format!("{issuer}/")).await.unwrap_err();
    assert!(
        e.is_invalid_response(),
        "another issuer's metadata is refused: {e}"
    );

    // ---- A DPoP-bound token, used at a resource that verifies the proofs.
    let dpop = Dpop::new(PrivateKey::generate_es256()?);
    let tokens = metadata
        .token_client()
        .client_id("dpop-client")
        .client_secret("dpop-secret")
        .dpop(dpop.clone())
        .build(http.clone())?;
    let credential = Credential::builder()
        .origin(&issuer)
        .allow_http()
        .token_source(OAuth2Source::client_credentials(tokens))
        .build()?;
    // Keep the last request sent, to replay its proof later.
    let last_sent: Arc<Mutex<Option<http::HeaderMap>>> = Arc::default();
    let seen = last_sent.clone();
    let client = http.clone();
    let recording = service_fn(move |req: Request<ReplayBody<Full<Bytes>>>| {
        *seen.lock().unwrap() = Some(req.headers().clone());
        let client = client.clone();
        async move { client.request(req).await.map(|r| r.map(|b| b.boxed())) }
    });
    let api = AuthLayer::new(credential.clone()).layer(recording);
    let get = || {
        Request::get(format!("{issuer}/resource?page=1"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let body = |res: Response<http_body_util::combinators::BoxBody<Bytes, hyper::Error>>| async {
        let b = res.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice::<serde_json::Value>(&b).unwrap()
    };

    let res = api.clone().oneshot(get()).await?;
    assert_eq!(res.status(), 200);
    let answer = body(res).await;
    assert_eq!(answer["client_id"], "dpop-client");
    assert_eq!(
        answer["jkt"],
        dpop.thumbprint(),
        "the token is bound to our key"
    );
    let s = stats(&http, &issuer).await;
    // The token endpoint demands a nonce: one more round trip for the first token.
    assert_eq!(n(&s, "token_requests"), 2, "{s}");
    // The resource demands its own nonce: one more round trip, counted apart.
    assert_eq!(n(&s, "nonce_challenges"), 1, "{s}");
    let st = credential.stats().unwrap();
    assert_eq!(st.dpop_nonce_retries, 1);
    assert_eq!(st.retries_on_401, 0);
    let token = credential.token().await?;
    assert_eq!(token.token_type(), "DPoP");

    // Steady traffic: a new proof each time, no more challenges.
    for _ in 0..5 {
        assert_eq!(api.clone().oneshot(get()).await?.status(), 200);
    }
    let s = stats(&http, &issuer).await;
    assert_eq!(n(&s, "resource_ok"), 6, "{s}");
    assert_eq!(n(&s, "nonce_challenges"), 1, "{s}");
    assert_eq!(n(&s, "bad_proofs"), 0, "{s}");

    // ---- The resource rotates its nonce mid-traffic: one extra round trip.
    let rotate = Request::post(format!("{issuer}/control/rotate-nonce"))
        .body(ReplayBody::passthrough(Full::new(Bytes::new())))?;
    assert_eq!(http.request(rotate).await?.status(), 200);
    for _ in 0..3 {
        assert_eq!(api.clone().oneshot(get()).await?.status(), 200);
    }
    let s = stats(&http, &issuer).await;
    assert_eq!(n(&s, "nonce_challenges"), 2, "{s}");
    assert_eq!(n(&s, "resource_ok"), 9, "{s}");
    assert_eq!(n(&s, "token_requests"), 2, "no new token for a new nonce");
    assert_eq!(credential.stats().unwrap().dpop_nonce_retries, 2);

    // A rotation under concurrent traffic: every request that carried the
    // stale nonce gets one more round trip, none fails, no new token.
    let rotate = Request::post(format!("{issuer}/control/rotate-nonce"))
        .body(ReplayBody::passthrough(Full::new(Bytes::new())))?;
    assert_eq!(http.request(rotate).await?.status(), 200);
    let burst: Vec<_> = (0..8)
        .map(|_| tokio::spawn(api.clone().oneshot(get())))
        .collect();
    for r in burst {
        assert_eq!(r.await??.status(), 200);
    }
    let s = stats(&http, &issuer).await;
    let challenged = n(&s, "nonce_challenges") - 2;
    assert!((1..=8).contains(&challenged), "{s}");
    assert_eq!(n(&s, "resource_ok"), 17, "{s}");
    assert_eq!(n(&s, "token_requests"), 2, "{s}");
    assert_eq!(
        credential.stats().unwrap().dpop_nonce_retries,
        2 + challenged
    );

    // ---- A replayed proof is rejected.
    let headers = last_sent.lock().unwrap().clone().unwrap();
    let mut replay = Request::get(format!("{issuer}/resource?page=1"))
        .body(ReplayBody::passthrough(Full::new(Bytes::new())))?;
    for name in ["authorization", "dpop"] {
        replay
            .headers_mut()
            .insert(name, headers.get(name).unwrap().clone());
    }
    let res = http.request(replay).await?;
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"].to_str()?.to_owned();
    assert!(challenge.contains("invalid_dpop_proof"), "{challenge}");
    let s = stats(&http, &issuer).await;
    assert_eq!(n(&s, "replays_rejected"), 1, "{s}");

    // ---- private_key_jwt: no client secret anywhere.
    let pkjwt = metadata
        .token_client()
        .client_id("pkjwt-client")
        .private_key_jwt(assertion_key.clone())
        .build(http.clone())?;
    let t = pkjwt.client_credentials(&[]).await?;
    assert_eq!(t.token_type(), "Bearer");
    // Each request a new assertion (a replayed jti would be refused).
    pkjwt.client_credentials(&[]).await?;
    // Another key is refused.
    let impostor = metadata
        .token_client()
        .client_id("pkjwt-client")
        .private_key_jwt(PrivateKey::generate_es256()?)
        .build(http.clone())?;
    let e = impostor.client_credentials(&[]).await.unwrap_err();
    assert!(e.is_invalid_client(), "{e}");

    // A DPoP token client without the nonce dance is also fine with
    // private_key_jwt: both at once.
    let both = TokenClient::builder(metadata.token_endpoint())
        .allow_http()
        .client_id("pkjwt-client")
        .private_key_jwt(assertion_key)
        .dpop(Dpop::new(PrivateKey::generate_es256()?))
        .build(http.clone())?;
    let t = both.client_credentials(&[]).await?;
    assert_eq!(t.token_type(), "DPoP");

    // ---- The device flow, approved by the test through the provider's own
    // pages (user code, confirmation, login, consent) while the client polls.
    let device_endpoint = metadata
        .endpoint("device_authorization_endpoint")
        .expect("advertised")
        .to_owned();
    let tv = metadata
        .token_client()
        .client_id("device-client")
        .client_auth(tower_client_auth::oauth2::ClientAuth::None)
        .build(http.clone())?;
    let (shown_tx, shown_rx) = tokio::sync::oneshot::channel();
    let polling = tokio::spawn(async move {
        tv.device_flow(&device_endpoint, &["openid"], move |auth| {
            let _ = shown_tx.send((
                auth.user_code().to_owned(),
                auth.verification_uri_complete().map(str::to_owned),
            ));
        })
        .await
    });
    let (user_code, complete) = shown_rx.await?;
    let complete = complete.expect("oidc-provider gives verification_uri_complete");
    assert!(complete.contains(&user_code));
    let pages = Browser::default().approve(&issuer, &complete).await;
    let token = polling.await??;
    assert_eq!(token.token_type(), "Bearer");
    assert!(pages.iter().any(|p| p.contains("login")), "{pages:?}");
    Ok(())
}

/// A user at a browser, as far as these pages need one: cookies, redirects,
/// and forms filled in with their hidden fields (and any login and password).
#[derive(Default)]
pub(crate) struct Browser {
    cookies: std::collections::BTreeMap<String, String>,
    /// A redirect to a URL starting with this ends the walk (the client's
    /// redirect URI, with the code): `approve` returns its query last.
    pub(crate) stop_at: Option<String>,
}

impl Browser {
    /// Follows the pages from `start` until one has no form left (the
    /// provider's success page); returns what each page was.
    pub(crate) async fn approve(&mut self, issuer: &str, start: &str) -> Vec<String> {
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let mut next = (http::Method::GET, start.to_owned(), String::new());
        let mut seen = Vec::new();
        for _ in 0..12 {
            let (method, url, form) = next;
            let url = if url.starts_with('/') {
                format!("{issuer}{url}")
            } else {
                url
            };
            let mut req = Request::builder().method(method.clone()).uri(&url);
            if !self.cookies.is_empty() {
                let jar: Vec<String> = self
                    .cookies
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                req = req.header("cookie", jar.join("; "));
            }
            if method == http::Method::POST {
                req = req.header("content-type", "application/x-www-form-urlencoded");
            }
            let res = client
                .request(req.body(Full::new(Bytes::from(form))).unwrap())
                .await
                .unwrap();
            for c in res.headers().get_all("set-cookie") {
                let pair = c.to_str().unwrap().split(';').next().unwrap();
                if let Some((k, v)) = pair.split_once('=') {
                    self.cookies.insert(k.trim().to_owned(), v.to_owned());
                }
            }
            if res.status().is_redirection() {
                let location = res.headers()["location"].to_str().unwrap().to_owned();
                seen.push(format!("redirect {location}"));
                if let Some(stop) = &self.stop_at {
                    if location.starts_with(stop.as_str()) {
                        seen.push(location.split_once('?').map_or("", |(_, q)| q).to_owned());
                        return seen;
                    }
                }
                next = (http::Method::GET, location, String::new());
                continue;
            }
            let status = res.status();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            let page = String::from_utf8_lossy(&body).into_owned();
            assert!(status.is_success(), "{status}: {page}");
            let Some(form_at) = page.find("<form") else {
                assert!(page.to_lowercase().contains("success"), "ended on: {page}");
                seen.push("success".to_owned());
                return seen;
            };
            let form_html = &page[form_at
                ..page[form_at..]
                    .find("</form>")
                    .map_or(page.len(), |e| form_at + e)];
            let action = attr(form_html, "action").expect("a form action");
            let mut fields = form_urlencoded::Serializer::new(String::new());
            let mut kind = "form";
            for input in form_html.split("<input").skip(1) {
                let Some(name) = attr(input, "name") else {
                    continue;
                };
                let value = match name.as_str() {
                    "login" => {
                        kind = "login";
                        "alice".to_owned()
                    }
                    "password" => "any-password".to_owned(),
                    _ => attr(input, "value").unwrap_or_default(),
                };
                fields.append_pair(&name, &value);
            }
            seen.push(kind.to_owned());
            next = (http::Method::POST, action, fields.finish());
        }
        panic!("no end to the pages: {seen:?}");
    }
}

/// The value of `name="…"` in an HTML tag.
fn attr(tag: &str, name: &str) -> Option<String> {
    let at = tag.find(&format!("{name}=\""))? + name.len() + 2;
    let end = tag[at..].find('"')? + at;
    Some(tag[at..end].to_owned())
}
