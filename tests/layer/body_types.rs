//! Compile-time checks that the caller's body type goes through untouched where
//! nothing is replayed: an existing hyper-util client typed for `Full<Bytes>`
//! works unchanged under a static credential and under a managed one without
//! retry; with retry the client takes `ReplayBody<Full<Bytes>>`. Each function is
//! also run once against a loopback server.

use crate::common;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_client_auth::layer::{NoRetry, Retry};
use tower_client_auth::{AuthLayer, AuthService, Credential, ReplayBody};

use common::{client, header, serve, text};

fn takes_full<S>(_: &S)
where
    S: Service<Request<Full<Bytes>>, Response = Response<Incoming>>,
{
}

#[tokio::test]
async fn an_existing_full_bytes_client_works_unchanged() {
    let addr = serve(|req| {
        let auth = header(&req, "authorization").unwrap_or("").to_owned();
        async move { text(200, &auth) }
    })
    .await;
    let origin = format!("http://{addr}");
    let existing: Client<HttpConnector, Full<Bytes>> = client();

    // Static credential.
    let pat = Credential::bearer(&origin, "pat").unwrap();
    let svc: AuthService<Client<HttpConnector, Full<Bytes>>, NoRetry> =
        AuthLayer::new(pat).without_retry().layer(existing.clone());
    takes_full(&svc);
    let req = Request::get(format!("{origin}/"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(svc.oneshot(req).await.unwrap().status(), 200);

    // Managed credential, retry off, behind the guard, in a ServiceBuilder.
    let managed = Credential::builder()
        .origin(&origin)
        .token_source(Static)
        .build()
        .unwrap();
    let auth = AuthLayer::new(managed).without_retry();
    let svc = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.guard())
        .service(existing);
    takes_full(&svc);
    let req = Request::get(format!("{origin}/"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(svc.oneshot(req).await.unwrap().status(), 200);

    // Retry on: the client is built for the replayable body; the caller still
    // sends `Full<Bytes>`.
    let replayable: Client<HttpConnector, ReplayBody<Full<Bytes>>> = client();
    let pat = Credential::bearer(&origin, "pat").unwrap();
    let svc: AuthService<_, Retry> = AuthLayer::new(pat).layer(replayable);
    takes_full(&svc);
}

struct Static;

impl tower_client_auth::token::TokenSource for Static {
    fn fetch(
        &self,
        _: Option<&tower_client_auth::token::Token>,
    ) -> futures_util::future::BoxFuture<
        'static,
        Result<tower_client_auth::token::Token, tower_client_auth::Error>,
    > {
        Box::pin(async { Ok(tower_client_auth::token::Token::bearer("tok", None)) })
    }
}

/// The compiler's message for a client built for the caller's body under a
/// layer with 401 retry on names `ReplayBody` and `without_retry`
/// (`tests/ui/body_type_mistake.stderr` holds it whole).
#[test]
fn the_body_type_mistake_names_replay_body_and_without_retry() {
    trybuild::TestCases::new().compile_fail("tests/ui/body_type_mistake.rs");
}
