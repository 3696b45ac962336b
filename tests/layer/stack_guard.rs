//! No stamped header reaches another origin, whatever follows redirects: tower-http's
//! `FollowRedirect` under the layer and over it, and a careless redirecting service
//! of our own, each with the `GuardLayer` directly above a real hyper-util client,
//! for Basic, Bearer + `x-api-key`, a managed token + `x-api-key`, many users'
//! tokens (`UsersLayer::guard`) and, with feature `jose`, DPoP-bound tokens and
//! their proofs (run by `.ci/run` with every feature too).

use crate::common;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_client_auth::token::{Token, TokenSource};
use tower_client_auth::{AuthLayer, BoxError, Credential, Error, GuardLayer, ReplayBody};
use tower_http::follow_redirect::FollowRedirectLayer;

use tower_client_auth::oauth2::TokenClient;
use tower_client_auth::store::{MemoryStore, SharedStore};
use tower_client_auth::users::{UserKey, Users, UsersLayer};

use common::{
    client, header, redirecting_origins, serve, text, Log, RedirectingOrigins as Origins,
};

struct Fixed;

impl TokenSource for Fixed {
    fn fetch(&self, _: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>> {
        Box::pin(async {
            Ok(Token::bearer(
                "managed-tok",
                Some(Duration::from_secs(3600)),
            ))
        })
    }
}

async fn origins() -> Origins {
    redirecting_origins(302).await
}

/// The credentials, each bound to `own`, with what each stamps.
fn credentials(own: &str) -> Vec<(&'static str, Credential, Vec<&'static str>)> {
    vec![
        (
            "basic",
            Credential::basic(own, "user", "pw").unwrap(),
            vec!["authorization"],
        ),
        (
            "bearer + api key",
            Credential::builder()
                .origin(own)
                .api_key("x-api-key", "k3y")
                .bearer("pat")
                .build()
                .unwrap(),
            vec!["authorization", "x-api-key"],
        ),
        (
            "managed + api key",
            Credential::builder()
                .origin(own)
                .api_key("x-api-key", "k3y")
                .token_source(Fixed)
                .build()
                .unwrap(),
            vec!["authorization", "x-api-key"],
        ),
    ]
}

fn get(url: String) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::new(Bytes::new())).unwrap()
}

/// Sends `/cross` then `/same` and checks where the headers went.
async fn check<S>(what: &str, svc: S, o: &Origins, stamped: &[&str])
where
    S: Service<Request<Full<Bytes>>, Response = Response<Incoming>> + Clone,
    S::Error: Into<BoxError>,
{
    let before_other = o.other_log.len();
    let res = svc
        .clone()
        .oneshot(get(format!("{}/cross", o.own)))
        .await
        .map_err(Into::into)
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{what}");
    assert_eq!(
        o.other_log.len(),
        before_other + 1,
        "{what}: redirect followed"
    );
    let hop = o.other_log.get(before_other);
    for name in stamped {
        assert_eq!(
            header(&hop, name),
            None,
            "{what}: `{name}` reached the other origin"
        );
    }

    let before_own = o.own_log.len();
    let res = svc
        .oneshot(get(format!("{}/same", o.own)))
        .await
        .map_err(Into::into)
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{what}");
    let landing = o.own_log.get(before_own + 1);
    assert_eq!(landing.uri().path(), "/landing");
    for name in stamped {
        assert!(
            header(&landing, name).is_some(),
            "{what}: `{name}` missing at a same-origin hop"
        );
    }
}

#[tokio::test]
async fn follow_redirect_under_the_layer_with_the_guard() {
    let o = origins().await;
    for (name, cred, stamped) in credentials(&o.own) {
        // Retry mode: the follower sees `ReplayBody` (which is `Default`).
        let svc = ServiceBuilder::new()
            .layer(AuthLayer::new(cred.clone()))
            .layer(FollowRedirectLayer::new())
            .layer(GuardLayer::new(cred.clone()))
            .service(client::<ReplayBody<Full<Bytes>>>());
        check(&format!("{name}, retry"), svc, &o, &stamped).await;
        // Without retry: the client's own body type.
        let svc = ServiceBuilder::new()
            .layer(AuthLayer::new(cred.clone()).without_retry())
            .layer(FollowRedirectLayer::new())
            .layer(GuardLayer::new(cred))
            .service(client::<Full<Bytes>>());
        check(&format!("{name}, no retry"), svc, &o, &stamped).await;
    }
}

#[tokio::test]
async fn follow_redirect_over_the_layer_with_the_guard() {
    let o = origins().await;
    for (name, cred, stamped) in credentials(&o.own) {
        let layer = AuthLayer::new(cred.clone()).without_retry();
        let svc = ServiceBuilder::new()
            .layer(FollowRedirectLayer::new())
            .layer(layer.clone())
            .layer(layer.guard())
            .service(client::<Full<Bytes>>());
        check(name, svc, &o, &stamped).await;
    }
}

/// A redirect follower that copies every header to the next hop, as a careless
/// hand-written one (or a client's built-in one) does.
#[derive(Clone)]
struct CopyAllRedirects<S>(S);

impl<S, B> Service<Request<B>> for CopyAllRedirects<S>
where
    S: Service<Request<B>, Response = Response<Incoming>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Default + Send + 'static,
{
    type Response = Response<Incoming>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Incoming>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let headers = req.headers().clone();
        let origin = format!(
            "{}://{}",
            req.uri().scheme_str().unwrap_or("http"),
            req.uri().authority().map_or("", |a| a.as_str())
        );
        let first = self.0.call(req);
        let mut next = self.0.clone();
        Box::pin(async move {
            let res = first.await.map_err(Into::into)?;
            let Some(location) = res.headers().get("location") else {
                return Ok(res);
            };
            let location = location.to_str()?;
            let location = if location.starts_with('/') {
                format!("{origin}{location}")
            } else {
                location.to_owned()
            };
            let mut hop = Request::get(location).body(B::default())?;
            *hop.headers_mut() = headers;
            next.ready().await.map_err(Into::into)?;
            next.call(hop).await.map_err(Into::into)
        })
    }
}

#[tokio::test]
async fn a_redirecting_service_of_our_own_with_the_guard() {
    let o = origins().await;
    for (name, cred, stamped) in credentials(&o.own) {
        let http = client::<ReplayBody<Full<Bytes>>>();
        let svc =
            AuthLayer::new(cred.clone()).layer(CopyAllRedirects(GuardLayer::new(cred).layer(http)));
        check(name, svc, &o, &stamped).await;
    }
}

/// The guard leaves alone what the credential did not stamp: the caller's own
/// header of the same name with another value, and everything to its origins.
#[tokio::test]
async fn the_guard_removes_only_what_the_credential_stamped() {
    let seen = Log::default();
    let log = seen.clone();
    let other = serve(move |req| {
        log.push(&req);
        async { text(200, "") }
    })
    .await;
    let cred = Credential::builder()
        .origin("https://api.example.com")
        .api_key("x-api-key", "k3y")
        .bearer("pat")
        .build()
        .unwrap();
    let svc = GuardLayer::new(cred).layer(client::<Full<Bytes>>());
    let req = Request::get(format!("http://{other}/"))
        .header("x-api-key", "k3y")
        .header("x-api-key", "someone-elses")
        .header("authorization", "Bearer the-callers-own")
        .body(Full::new(Bytes::new()))
        .unwrap();
    svc.oneshot(req).await.unwrap();
    let hop = seen.get(0);
    let keys: Vec<_> = hop.headers().get_all("x-api-key").iter().collect();
    assert_eq!(keys, ["someone-elses"]);
    assert_eq!(
        header(&hop, "authorization"),
        Some("Bearer the-callers-own")
    );
}

/// What a stack without the guard risks (the composing docs say it): tower-http's
/// follower under the layer strips `Authorization` across origins but copies the
/// API key.
#[tokio::test]
async fn without_the_guard_an_api_key_follows_a_redirect_below_the_layer() {
    let o = origins().await;
    let cred = Credential::builder()
        .origin(&o.own)
        .api_key("x-api-key", "k3y")
        .bearer("pat")
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(AuthLayer::new(cred).without_retry())
        .layer(FollowRedirectLayer::new())
        .service(client::<Full<Bytes>>());
    svc.oneshot(get(format!("{}/cross", o.own))).await.unwrap();
    let hop = o.other_log.get(0);
    assert_eq!(header(&hop, "authorization"), None);
    assert_eq!(header(&hop, "x-api-key"), Some("k3y"));
}

/// A token request (marked by the token client) keeps its client authentication
/// through the guard: Altrata's token call carries the same API key as the API
/// calls, to another origin.
#[tokio::test]
async fn the_guard_leaves_token_requests_alone() {
    let seen = Log::default();
    let log = seen.clone();
    let auth_server = serve(move |req| {
        log.push(&req);
        async { text(200, "") }
    })
    .await;
    let cred = Credential::builder()
        .origin("https://api.example.com")
        .api_key("x-api-key", "k3y")
        .bearer("pat")
        .build()
        .unwrap();
    let svc = GuardLayer::new(cred).layer(client::<Full<Bytes>>());
    let mut req = Request::post(format!("http://{auth_server}/oauth2/token"))
        .header("x-api-key", "k3y")
        .body(Full::new(Bytes::new()))
        .unwrap();
    req.extensions_mut()
        .insert(tower_client_auth::layer::TokenRequestMarker);
    svc.oneshot(req).await.unwrap();
    assert_eq!(header(&seen.get(0), "x-api-key"), Some("k3y"));
}

/// A token request that its endpoint redirects to another origin, under a
/// follower that keeps headers and extensions on every hop: the hop elsewhere
/// is no longer the token request, and carries none of the credential's
/// headers (Altrata sends its API key to the token endpoint).
#[tokio::test]
async fn a_token_request_redirected_elsewhere_keeps_nothing() {
    let Origins {
        own,
        other,
        own_log,
        other_log,
    } = redirecting_origins(303).await;
    let cred = Credential::api_key(&own, "x-api-key", "k3y").unwrap();
    let http = ServiceBuilder::new()
        .layer(FollowRedirectLayer::with_policy(
            tower_http::follow_redirect::policy::Limited::default(),
        ))
        .layer(GuardLayer::new(cred))
        .service(client::<Full<Bytes>>());
    let tokens = TokenClient::builder(format!("{own}/cross"))
        .client_id("app")
        .header("x-api-key", "k3y")
        .allow_http()
        .build(http)
        .unwrap();
    let _ = tokens.client_credentials(&[]).await;
    assert_eq!(
        header(&own_log.get(0), "x-api-key"),
        Some("k3y"),
        "the token endpoint gets it"
    );
    assert_eq!(other_log.len(), 1, "the follower went to {other}");
    assert_eq!(
        header(&other_log.get(0), "x-api-key"),
        None,
        "the key left its origin"
    );
}

/// Requests as `user` (a `UserKey` in their extensions), for `check`.
fn as_user<S>(
    user: &'static str,
    svc: S,
) -> impl Service<Request<Full<Bytes>>, Response = S::Response, Error = S::Error, Future = S::Future>
       + Clone
where
    S: Service<Request<Full<Bytes>>> + Clone,
{
    svc.map_request(move |mut req: Request<Full<Bytes>>| {
        req.extensions_mut().insert(UserKey::new(user));
        req
    })
}

/// Users of `own` (in memory), with `alice` logged in with `token`.
async fn users_of(own: &str, tokens: TokenClient, token: Token) -> Users {
    let users = Users::builder(own, tokens)
        .store(SharedStore::new(MemoryStore::new()))
        .build()
        .unwrap();
    users.login(&UserKey::new("alice"), token).await.unwrap();
    users
}

/// The users' stack with a follower below `UsersLayer` and its guard directly
/// above the client: no user's token at the other origin, everything kept on a
/// same-origin hop. Our careless follower copies `Authorization` across
/// origins (tower-http's strips it itself).
#[tokio::test]
async fn users_stack_with_a_follower_below_the_layer() {
    let o = origins().await;
    let tokens = TokenClient::builder("https://auth.example.com/token")
        .client_id("app")
        .build(client::<Full<Bytes>>())
        .unwrap();
    let login = Token::bearer("ALICE-TOKEN", Some(Duration::from_secs(3600)))
        .with_refresh_token("ALICE-REFRESH");
    let users = users_of(&o.own, tokens, login).await;
    let layer = UsersLayer::new(users.clone());
    let svc = layer.layer(CopyAllRedirects(
        layer.guard().layer(client::<ReplayBody<Full<Bytes>>>()),
    ));
    check(
        "users, our follower",
        as_user("alice", svc),
        &o,
        &["authorization"],
    )
    .await;
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .layer(FollowRedirectLayer::new())
        .layer(layer.guard())
        .service(client::<ReplayBody<Full<Bytes>>>());
    check(
        "users, tower-http",
        as_user("alice", svc),
        &o,
        &["authorization"],
    )
    .await;
    let plain = UsersLayer::new(users).without_retry();
    let svc = plain.layer(CopyAllRedirects(
        plain.guard().layer(client::<Full<Bytes>>()),
    ));
    check(
        "users, no retry",
        as_user("alice", svc),
        &o,
        &["authorization"],
    )
    .await;
    // The caller's own Authorization to another origin is not a user's token.
    let other_log = o.other_log.clone();
    let before = other_log.len();
    let req = Request::get(format!("{}/mine", o.other))
        .header("authorization", "Bearer the-callers-own")
        .body(Full::new(Bytes::new()))
        .unwrap();
    layer
        .guard()
        .layer(client::<Full<Bytes>>())
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(
        header(&other_log.get(before), "authorization"),
        Some("Bearer the-callers-own")
    );
}

#[cfg(feature = "jose")]
mod dpop {
    //! DPoP: the proof (`htu`, `ath`, the public key) is as much the layer's
    //! as the token, and a nonce belongs to the origin that sent it.

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use tower_client_auth::oauth2::{Dpop, OAuth2Source, PrivateKey};

    use super::*;
    use crate::common::{json, OTHER_NONCE};

    const STAMPED: &[&str] = &["authorization", "dpop"];

    /// A token client whose endpoint (on loopback) issues DPoP-bound tokens.
    async fn dpop_token_client() -> (TokenClient, Dpop) {
        let auth = serve(|_req| async {
            json(
                200,
                r#"{"access_token":"DPOP-BOUND-TOKEN","token_type":"DPoP","expires_in":3600}"#,
            )
        })
        .await;
        let dpop = Dpop::new(PrivateKey::generate_es256().unwrap());
        let tokens = TokenClient::builder(format!("http://{auth}/token"))
            .client_id("c")
            .client_secret("s")
            .dpop(dpop.clone())
            .build(client::<Full<Bytes>>())
            .unwrap();
        (tokens, dpop)
    }

    async fn dpop_credential(own: &str) -> (Credential, Dpop) {
        let (tokens, dpop) = dpop_token_client().await;
        let credential = Credential::builder()
            .origin(own)
            .token_source(OAuth2Source::client_credentials(tokens))
            .build()
            .unwrap();
        (credential, dpop)
    }

    /// The nonce a proof for `url` carries.
    fn nonce_for(dpop: &Dpop, url: &str) -> Option<String> {
        let proof = dpop
            .proof(&http::Method::GET, &url.parse().unwrap(), None)
            .unwrap();
        let claims = proof
            .to_str()
            .unwrap()
            .split('.')
            .nth(1)
            .unwrap()
            .to_owned();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
        claims["nonce"].as_str().map(str::to_owned)
    }

    /// The other origin's nonce is filed under the other origin, never under
    /// the origin of the request that was redirected there.
    fn nonce_filed_by_origin(what: &str, dpop: &Dpop, o: &Origins) {
        assert_eq!(
            nonce_for(dpop, &format!("{}/x", o.own)),
            None,
            "{what}: the other origin's nonce filed under the request's"
        );
        assert_eq!(
            nonce_for(dpop, &format!("{}/x", o.other)).as_deref(),
            Some(OTHER_NONCE),
            "{what}"
        );
    }

    #[tokio::test]
    async fn follow_redirect_under_the_layer_removes_the_proof() {
        let o = origins().await;
        let (cred, dpop) = dpop_credential(&o.own).await;
        let svc = ServiceBuilder::new()
            .layer(AuthLayer::new(cred.clone()))
            .layer(FollowRedirectLayer::new())
            .layer(GuardLayer::new(cred.clone()))
            .service(client::<ReplayBody<Full<Bytes>>>());
        check("dpop, retry", svc, &o, STAMPED).await;
        nonce_filed_by_origin("dpop, retry", &dpop, &o);

        let (cred, _) = dpop_credential(&o.own).await;
        let layer = AuthLayer::new(cred).without_retry();
        let svc = ServiceBuilder::new()
            .layer(layer.clone())
            .layer(FollowRedirectLayer::new())
            .layer(layer.guard())
            .service(client::<Full<Bytes>>());
        check("dpop, no retry", svc, &o, STAMPED).await;
    }

    #[tokio::test]
    async fn a_redirecting_service_of_our_own_removes_the_proof() {
        let o = origins().await;
        let (cred, dpop) = dpop_credential(&o.own).await;
        let http = client::<ReplayBody<Full<Bytes>>>();
        let svc =
            AuthLayer::new(cred.clone()).layer(CopyAllRedirects(GuardLayer::new(cred).layer(http)));
        check("dpop, our follower", svc, &o, STAMPED).await;
        nonce_filed_by_origin("dpop, our follower", &dpop, &o);
    }

    /// A DPoP proof of the caller's own (another key) is left alone.
    #[tokio::test]
    async fn the_guard_leaves_another_keys_proof_alone() {
        let o = origins().await;
        let (cred, _) = dpop_credential(&o.own).await;
        cred.token().await.unwrap();
        let theirs = Dpop::new(PrivateKey::generate_es256().unwrap());
        let url = format!("{}/theirs", o.other);
        let proof = theirs
            .proof(&http::Method::GET, &url.parse().unwrap(), None)
            .unwrap();
        let req = Request::get(&url)
            .header("dpop", proof.clone())
            .body(Full::new(Bytes::new()))
            .unwrap();
        GuardLayer::new(cred)
            .layer(client::<Full<Bytes>>())
            .oneshot(req)
            .await
            .unwrap();
        assert_eq!(
            header(&o.other_log.get(0), "dpop"),
            Some(proof.to_str().unwrap())
        );
    }

    /// Many users with DPoP-bound tokens: the proof goes nowhere else either.
    #[tokio::test]
    async fn users_stack_removes_the_proof() {
        let o = origins().await;
        let (tokens, dpop) = dpop_token_client().await;
        let login = Token::bearer("ALICE-DPOP-TOKEN", Some(Duration::from_secs(3600)))
            .with_token_type("DPoP")
            .with_refresh_token("ALICE-REFRESH");
        let users = users_of(&o.own, tokens, login).await;
        let layer = UsersLayer::new(users);
        let svc = layer.layer(CopyAllRedirects(
            layer.guard().layer(client::<ReplayBody<Full<Bytes>>>()),
        ));
        check("users, dpop", as_user("alice", svc), &o, STAMPED).await;
        nonce_filed_by_origin("users, dpop", &dpop, &o);
    }
}
