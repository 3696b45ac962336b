//! No stamped header reaches another origin, whatever follows redirects: tower-http's
//! `FollowRedirect` under the layer and over it, and a careless redirecting service
//! of our own, each with the `GuardLayer` directly above a real hyper-util client,
//! for Basic, Bearer + `x-api-key`, and a managed token + `x-api-key`.

mod common;

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
        .insert(tower_client_auth::oauth2::TokenRequestMarker);
    svc.oneshot(req).await.unwrap();
    assert_eq!(header(&seen.get(0), "x-api-key"), Some("k3y"));
}
