//! Static credentials through the layer, with tower-test's mock service.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tokio_test::{assert_pending, assert_ready_ok};
use tower::Layer;
use tower_client_auth::{AuthLayer, Credential, ReplayBody};
use tower_test::mock;

type Body = ReplayBody<Full<Bytes>>;

fn req(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri).body(Full::new(Bytes::new())).unwrap()
}

/// Sends `request` through the layer and returns what the inner service received.
async fn through(layer: AuthLayer, request: Request<Full<Bytes>>) -> Request<Body> {
    let (mut svc, mut handle) = mock::spawn_layer::<Request<Body>, Response<()>, _>(layer);
    assert_ready_ok!(svc.poll_ready());
    let mut fut = tokio_test::task::spawn(svc.call(request));
    assert_pending!(fut.poll());
    let (seen, send) = handle.next_request().await.unwrap();
    send.send_response(Response::new(()));
    assert_ready_ok!(fut.poll());
    seen
}

#[tokio::test]
async fn basic_bearer_and_api_key_headers() {
    let basic = Credential::basic("https://api.algoreg.com", "me@example.com", "pw").unwrap();
    let seen = through(
        AuthLayer::new(basic),
        req("https://api.algoreg.com/api/v1/x"),
    )
    .await;
    let auth = &seen.headers()["authorization"];
    assert_eq!(auth, "Basic bWVAZXhhbXBsZS5jb206cHc=");
    assert!(auth.is_sensitive());

    let pat = Credential::bearer("https://api.example.com", "ghp_pat").unwrap();
    let seen = through(AuthLayer::new(pat), req("https://api.example.com/me")).await;
    assert_eq!(seen.headers()["authorization"], "Bearer ghp_pat");
    assert!(seen.headers()["authorization"].is_sensitive());

    let both = Credential::builder()
        .origin("https://profile.altrata.com")
        .api_key("x-api-key", "KEY")
        .bearer("tok")
        .header("x-tenant", "acme")
        .build()
        .unwrap();
    let seen = through(
        AuthLayer::new(both),
        req("https://profile.altrata.com/v1/graphql"),
    )
    .await;
    assert_eq!(seen.headers()["x-api-key"], "KEY");
    assert_eq!(seen.headers()["authorization"], "Bearer tok");
    assert_eq!(seen.headers()["x-tenant"], "acme");
    for name in ["x-api-key", "authorization", "x-tenant"] {
        assert!(seen.headers()[name].is_sensitive(), "{name}");
    }
}

#[tokio::test]
async fn other_origins_get_nothing() {
    let cred = Credential::builder()
        .origin("https://api.example.com")
        .origin("https://eu.api.example.com:8443")
        .api_key("x-api-key", "KEY")
        .bearer("tok")
        .build()
        .unwrap();
    let layer = AuthLayer::new(cred);
    for uri in [
        "https://evil.example.com/",
        "http://api.example.com/",
        "https://api.example.com:8443/",
        "https://eu.api.example.com/",
        "https://api.example.com.evil.net/",
        "/relative/path",
    ] {
        let seen = through(layer.clone(), req(uri)).await;
        assert!(seen.headers().get("authorization").is_none(), "{uri}");
        assert!(seen.headers().get("x-api-key").is_none(), "{uri}");
    }
    for uri in [
        "https://api.example.com/x?y=1",
        "https://API.EXAMPLE.COM:443/",
        "https://eu.api.example.com:8443/v1",
    ] {
        let seen = through(layer.clone(), req(uri)).await;
        assert_eq!(seen.headers()["authorization"], "Bearer tok", "{uri}");
    }
}

#[tokio::test]
async fn caller_headers_win() {
    let cred = Credential::builder()
        .origin("https://api.example.com")
        .api_key("x-api-key", "KEY")
        .bearer("tok")
        .build()
        .unwrap();
    let mut request = req("https://api.example.com/");
    request
        .headers_mut()
        .insert("authorization", "Bearer caller".parse().unwrap());
    let seen = through(AuthLayer::new(cred.clone()), request).await;
    assert_eq!(seen.headers()["authorization"], "Bearer caller");
    assert_eq!(seen.headers()["x-api-key"], "KEY");

    let mut request = req("https://api.example.com/");
    request
        .headers_mut()
        .insert("x-api-key", "caller-key".parse().unwrap());
    let seen = through(AuthLayer::new(cred), request).await;
    assert_eq!(seen.headers()["x-api-key"], "caller-key");
    assert_eq!(seen.headers()["authorization"], "Bearer tok");
}

#[tokio::test]
async fn static_credential_hands_back_401() {
    let cred = Credential::bearer("https://api.example.com", "tok").unwrap();
    let (mut svc, mut handle) =
        mock::spawn_layer::<Request<Body>, Response<()>, _>(AuthLayer::new(cred));
    assert_ready_ok!(svc.poll_ready());
    let mut fut = tokio_test::task::spawn(svc.call(req("https://api.example.com/")));
    assert_pending!(fut.poll());
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(Response::builder().status(401).body(()).unwrap());
    let res = assert_ready_ok!(fut.poll());
    assert_eq!(res.status(), 401);
    // Never re-sent.
    assert_pending!(tokio_test::task::spawn(handle.next_request()).poll());
}

#[tokio::test]
async fn poll_ready_forwards_to_inner() {
    let cred = Credential::bearer("https://api.example.com", "tok").unwrap();
    let (mut svc, mut handle) =
        mock::spawn_layer::<Request<Body>, Response<()>, _>(AuthLayer::new(cred));
    handle.allow(0);
    tokio_test::assert_pending!(svc.poll_ready());
    handle.allow(1);
    assert_ready_ok!(svc.poll_ready());
}

#[test]
fn layer_and_service_accessors() {
    let cred = Credential::bearer("https://api.example.com", "tok").unwrap();
    let layer = AuthLayer::new(cred);
    let mut svc = layer.layer(7u8);
    assert_eq!(*svc.get_ref(), 7);
    *svc.get_mut() = 8;
    assert_eq!(svc.credential().origins().len(), 1);
    assert_eq!(svc.into_inner(), 8);
}
