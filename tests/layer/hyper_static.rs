//! A real hyper server on 127.0.0.1, a hyper-util client and the layer: the
//! server checks the headers it received.

use crate::common;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tower::{ServiceBuilder, ServiceExt};
use tower_client_auth::{AuthLayer, Credential};

use common::{client, header, serve, text, Seen};

/// A server that records the auth headers of every request it gets.
async fn recording_server() -> (String, Arc<Mutex<Vec<(Option<String>, Option<String>)>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let addr = serve(move |req: Seen| {
        let log = log.clone();
        async move {
            log.lock().unwrap().push((
                header(&req, "authorization").map(str::to_owned),
                header(&req, "x-api-key").map(str::to_owned),
            ));
            text(200, "ok")
        }
    })
    .await;
    (format!("http://{addr}"), seen)
}

async fn get<S>(svc: S, uri: &str) -> u16
where
    S: tower::Service<Request<Full<Bytes>>, Response = http::Response<hyper::body::Incoming>>,
    S::Error: std::fmt::Debug,
{
    let req = Request::get(uri).body(Full::new(Bytes::new())).unwrap();
    svc.oneshot(req).await.unwrap().status().as_u16()
}

#[tokio::test]
async fn headers_reach_the_server_and_only_the_right_origin() {
    let (api, api_seen) = recording_server().await;
    let (other, other_seen) = recording_server().await;

    let basic = Credential::basic(&api, "me@example.com", "s3cret").unwrap();
    let bearer = Credential::bearer(&api, "pat_123").unwrap();
    let both = Credential::builder()
        .origin(&api)
        .api_key("x-api-key", "KEY-1")
        .bearer("tok-1")
        .build()
        .unwrap();

    for cred in [basic, bearer, both.clone()] {
        let svc = ServiceBuilder::new()
            .layer(AuthLayer::new(cred))
            .service(client());
        assert_eq!(get(svc.clone(), &format!("{api}/v1/x?q=1")).await, 200);
        assert_eq!(get(svc, &format!("{other}/v1/x")).await, 200);
    }

    let api_seen = api_seen.lock().unwrap().clone();
    assert_eq!(
        api_seen,
        vec![
            (Some("Basic bWVAZXhhbXBsZS5jb206czNjcmV0".to_owned()), None),
            (Some("Bearer pat_123".to_owned()), None),
            (Some("Bearer tok-1".to_owned()), Some("KEY-1".to_owned())),
        ]
    );
    // The other local origin (another port) received no credential at all.
    assert_eq!(*other_seen.lock().unwrap(), vec![(None, None); 3]);
}

/// tower-http's redirect filter strips `Authorization` but not `x-api-key`; with
/// the auth layer inside `FollowRedirect`, every hop is checked against the
/// credential's origins, so a redirect to another host carries neither.
#[tokio::test]
async fn redirects_to_another_origin_carry_no_credential() {
    use tower_http::follow_redirect::FollowRedirectLayer;

    let (elsewhere, elsewhere_seen) = recording_server().await;
    let target = format!("{elsewhere}/landing");
    let api_seen = std::sync::Arc::new(Mutex::new(Vec::new()));
    let log = api_seen.clone();
    let api = serve(move |req: Seen| {
        let log = log.clone();
        let target = target.clone();
        async move {
            log.lock().unwrap().push((
                header(&req, "authorization").map(str::to_owned),
                header(&req, "x-api-key").map(str::to_owned),
            ));
            http::Response::builder()
                .status(302)
                .header("location", target)
                .body(Full::new(Bytes::new()))
                .unwrap()
        }
    })
    .await;
    let api = format!("http://{api}");
    let cred = Credential::builder()
        .origin(&api)
        .api_key("x-api-key", "KEY-1")
        .bearer("tok-1")
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(FollowRedirectLayer::new())
        .layer(AuthLayer::new(cred))
        .service(client());
    let req = Request::get(format!("{api}/start"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200, "followed to the other origin");
    assert_eq!(
        *api_seen.lock().unwrap(),
        vec![(Some("Bearer tok-1".to_owned()), Some("KEY-1".to_owned()))]
    );
    assert_eq!(
        *elsewhere_seen.lock().unwrap(),
        vec![(None, None)],
        "no credential after the redirect"
    );
}
