//! Unit tests of the layer: per-clone copies (no shared reference count on
//! the cached path) and the service's accessors.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{HeaderMap, HeaderValue};
use http_body_util::Full;
use tower::{service_fn, ServiceExt};

use super::*;
use crate::error::Error;
use crate::token::{Token, TokenSource};

struct Fixed;

impl TokenSource for Fixed {
    fn fetch(&self, _: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>> {
        Box::pin(async { Ok(Token::bearer("tok", Some(Duration::from_secs(3600)))) })
    }
}

/// The data pointer of a header value: equal pointers, one shared buffer.
fn ptr(v: &HeaderValue) -> *const u8 {
    v.as_bytes().as_ptr()
}

/// Sends 1,000 requests through a clone that has served a couple, keeping
/// every request's headers and every response future alive, and checks that
/// no reference count shared with the parent service or the credential moved,
/// and that every stamped value is in the clone's own buffers.
async fn no_shared_refcount<M, B>(layer: AuthLayer<M>, cred: Credential)
where
    M: Mode,
    B: Send + 'static,
    AuthService<tower::util::BoxCloneSyncService<Request<B>, Response<()>, Infallible>, M>:
        Service<Request<Full<Bytes>>, Error = BoxError>,
{
    let kept: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let keep = kept.clone();
    let inner = tower::util::BoxCloneSyncService::new(service_fn(move |req: Request<B>| {
        keep.lock().unwrap().push(req.headers().clone());
        std::future::ready(Ok::<_, Infallible>(Response::new(())))
    }));
    let request = || {
        Request::get("https://api.example.com/v1")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let parent = layer.layer(inner);
    let mut clone = parent.clone();
    for _ in 0..2 {
        clone.ready().await.unwrap();
        let _ = clone.call(request()).await;
    }
    let manager = cred.manager().unwrap().clone();
    let counts = || {
        (
            cred.strong_count(),
            Arc::strong_count(&parent.slot.stamp),
            manager.current_strong_count(),
        )
    };
    let before = counts();
    let mut in_flight = Vec::new();
    for _ in 0..1_000 {
        clone.ready().await.unwrap();
        in_flight.push(clone.call(request()));
    }
    assert_eq!(counts(), before, "a shared refcount moved");

    let shared_auth = manager.current_authorization().unwrap();
    let own_auth = clone.slot.token.as_ref().unwrap().1.clone();
    assert_ne!(ptr(&own_auth), ptr(&shared_auth));
    let shared_key = ptr(&cred.static_headers()[0].1);
    let own_key = ptr(clone.slot.stamp.static_values().next().unwrap());
    assert_ne!(own_key, shared_key);
    let kept = kept.lock().unwrap();
    for headers in kept.iter().skip(2) {
        assert_eq!(ptr(&headers["authorization"]), ptr(&own_auth));
        assert_eq!(ptr(&headers["x-api-key"]), own_key);
    }
    drop(in_flight);
}

fn credential() -> Credential {
    Credential::builder()
        .origin("https://api.example.com")
        .api_key("x-api-key", "k3y")
        .token_source(Fixed)
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_cached_path_bumps_no_refcount_shared_with_another_clone() {
    let cred = credential();
    cred.token().await.unwrap();
    no_shared_refcount::<NoRetry, Full<Bytes>>(AuthLayer::new(cred.clone()).without_retry(), cred)
        .await;
    let cred = credential();
    cred.token().await.unwrap();
    no_shared_refcount::<Retry, ReplayBody<Full<Bytes>>>(AuthLayer::new(cred.clone()), cred).await;
}

/// A clone made for one request keeps sharing its parent's copies.
#[tokio::test]
async fn a_clone_for_one_request_copies_nothing() {
    let cred = credential();
    cred.token().await.unwrap();
    let inner =
        service_fn(|_: Request<Full<Bytes>>| async { Ok::<_, Infallible>(Response::new(())) });
    let parent = AuthLayer::new(cred).without_retry().layer(inner);
    let req = Request::get("https://api.example.com/v1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let mut clone = parent.clone();
    clone.ready().await.unwrap();
    let _ = clone.call(req).await;
    assert!(Arc::ptr_eq(&clone.slot.stamp, &parent.slot.stamp));
    assert!(clone.slot.token.is_none());
}
