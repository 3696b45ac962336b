//! The ready client of feature `https`: one client for the token endpoint and
//! the API, with the guard built in. Run by `.ci/run` with `--features https`.

mod common;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tower::{Layer, ServiceExt};
use tower_client_auth::{https, AuthLayer, Credential};
use tower_http::follow_redirect::FollowRedirectLayer;

use common::{header, serve, text, Log};

#[tokio::test]
async fn the_guarded_client_keeps_credentials_on_their_origin() {
    let seen = Log::default();
    let log = seen.clone();
    let other = serve(move |req| {
        log.push(&req);
        async { text(200, "other") }
    })
    .await;
    let own = serve(move |_req| async move {
        http::Response::builder()
            .status(302)
            .header("location", format!("http://{other}/landing"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    })
    .await;
    let own = format!("http://{own}");
    let credential = Credential::builder()
        .origin(&own)
        .api_key("x-api-key", "k3y")
        .bearer("pat")
        .build()
        .unwrap();
    // A follower under the layer: the built-in guard strips the API key too.
    let client = AuthLayer::new(credential.clone())
        .layer(FollowRedirectLayer::new().layer(https::guarded(credential)));
    let req = Request::get(format!("{own}/start"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(client.oneshot(req).await.unwrap().status(), 200);
    let hop = seen.get(0);
    assert_eq!(header(&hop, "x-api-key"), None);
    assert_eq!(header(&hop, "authorization"), None);
}
