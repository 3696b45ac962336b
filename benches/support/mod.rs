//! Shared by the benchmarks: the request, the no-op inner services, a managed
//! credential with a warm cache, and the hand-written RwLock baseline.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{HeaderValue, Request, Response};
use http_body_util::Full;
use tower::Service;
use tower_client_auth::token::{ManagedOptions, Token, TokenSource};
use tower_client_auth::{Credential, Error};

pub const URI: &str = "https://api.example.com/v1/accounts/42/transactions?limit=50&cursor=abc123";

/// The request every benchmark sends: https URI with path and query, three
/// ordinary headers, empty body.
pub fn request() -> Request<Full<Bytes>> {
    Request::get(URI)
        .header("accept", "application/json")
        .header("user-agent", "bench/1.0")
        .header("x-request-id", "6f1c2a3b-0d4e-4f5a-9b6c-7d8e9f0a1b2c")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// A ready no-op service.
#[derive(Clone, Copy, Default)]
pub struct Noop;

impl<B> Service<Request<B>> for Noop {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<Response<()>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        std::hint::black_box(&req);
        ready(Ok(Response::new(())))
    }
}

/// Polls a future that is expected to be ready at once (all hot paths are).
pub fn now<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("hot path future was not ready"),
    }
}

/// A token source that hands out one long-lived token.
pub struct Fixed;

impl TokenSource for Fixed {
    fn fetch(&self, _: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>> {
        Box::pin(async {
            Ok(Token::bearer(
                "eyJhbGciOiJSUzI1NiJ9.bench-access-token.c2lnbmF0dXJl",
                Some(Duration::from_secs(24 * 3600)),
            ))
        })
    }
}

/// A managed credential whose cache is already warm.
pub fn warm_credential(rt: &tokio::runtime::Runtime, api_key: bool) -> Credential {
    let mut b = Credential::builder().origin("https://api.example.com");
    if api_key {
        b = b.api_key("x-api-key", "ak_live_0123456789abcdef");
    }
    let cred = b
        .token_source_with(Fixed, ManagedOptions::default())
        .build()
        .unwrap();
    rt.block_on(cred.token()).unwrap();
    cred
}

/// A DPoP-bound managed credential (feature `jose`), cache warm: each request
/// signs a new ES256 (or EdDSA) proof.
#[cfg(feature = "jose")]
pub fn warm_dpop_credential(rt: &tokio::runtime::Runtime, ed25519: bool) -> Credential {
    use tower_client_auth::oauth2::{Dpop, PrivateKey};
    struct FixedDpop(Dpop);
    impl TokenSource for FixedDpop {
        fn fetch(&self, _: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>> {
            Box::pin(async {
                Ok(
                    Token::bearer(variants::TOKEN, Some(Duration::from_secs(24 * 3600)))
                        .with_token_type("DPoP"),
                )
            })
        }
        fn dpop(&self) -> Option<Dpop> {
            Some(self.0.clone())
        }
    }
    let key = if ed25519 {
        PrivateKey::generate_ed25519()
    } else {
        PrivateKey::generate_es256()
    };
    let dpop = Dpop::new(key.unwrap());
    let cred = Credential::builder()
        .origin("https://api.example.com")
        .token_source_with(FixedDpop(dpop), ManagedOptions::default())
        .build()
        .unwrap();
    rt.block_on(cred.token()).unwrap();
    cred
}

/// A managed credential on a shared Redis store (`REDIS_URL`, default the local
/// server), cache warm: the cached path must not notice the store.
#[cfg(feature = "redis")]
pub fn warm_credential_on_redis(rt: &tokio::runtime::Runtime) -> Credential {
    use tower_client_auth::store::{RedisStore, SharedStore};
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let store = rt
        .block_on(RedisStore::connect(&url))
        .expect("Redis for this variant");
    let cred = Credential::builder()
        .origin("https://api.example.com")
        .token_source_with(Fixed, ManagedOptions::default())
        .shared_store(
            SharedStore::new(store)
                .namespace(format!("tca-bench-{}", std::process::id()))
                .identity("hot-path"),
        )
        .build()
        .unwrap();
    rt.block_on(cred.token()).unwrap();
    cred
}

/// A `Users` with one user logged in and their token warm (24-hour token in a
/// `MemoryStore`): the per-request selection's cached path.
pub fn warm_users(rt: &tokio::runtime::Runtime) -> tower_client_auth::users::Users {
    use tower_client_auth::oauth2::TokenClient;
    use tower_client_auth::store::{MemoryStore, SharedStore};
    use tower_client_auth::users::{UserKey, Users};
    let never = tower::service_fn(|_: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    });
    let client = TokenClient::builder("https://auth.example.com/token")
        .client_id("bench")
        .build(never)
        .unwrap();
    let users = Users::builder("https://api.example.com", client)
        .store(SharedStore::new(MemoryStore::new()))
        .build()
        .unwrap();
    let token = Token::bearer(
        "eyJhbGciOiJSUzI1NiJ9.bench-access-token.c2lnbmF0dXJl",
        Some(Duration::from_secs(24 * 3600)),
    );
    let user = UserKey::new("user-42");
    rt.block_on(users.login(&user, token)).unwrap();
    rt.block_on(users.credential(&user).unwrap().token())
        .unwrap();
    users
}

/// What people write by hand: a token behind a `tokio::sync::RwLock`, read and
/// expiry-checked on every request, in a boxed future.
#[derive(Clone)]
pub struct NaiveAuth<S> {
    inner: S,
    token: Arc<tokio::sync::RwLock<Option<(HeaderValue, Instant)>>>,
}

impl<S> NaiveAuth<S> {
    pub fn new(inner: S) -> Self {
        let mut v =
            HeaderValue::from_static("Bearer eyJhbGciOiJSUzI1NiJ9.bench-access-token.c2lnbmF0dXJl");
        v.set_sensitive(true);
        let expires = Instant::now() + Duration::from_secs(24 * 3600);
        NaiveAuth {
            inner,
            token: Arc::new(tokio::sync::RwLock::new(Some((v, expires)))),
        }
    }
}

impl<S, B> Service<Request<B>> for NaiveAuth<S>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let token = self.token.clone();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            {
                let guard = token.read().await;
                if let Some((value, expires)) = &*guard {
                    if Instant::now() < *expires {
                        req.headers_mut()
                            .insert(http::header::AUTHORIZATION, value.clone());
                    }
                }
            }
            inner.call(req).await
        })
    }
}
pub mod variants;

/// The floor for a layer that stamps one header on many cores: every clone owns
/// its own copy of the value (a buffer of its own), so no two clones share a
/// refcount. What a static header costs when no cache line is shared.
pub struct PerCloneAuth<S> {
    inner: S,
    value: http::HeaderValue,
}

impl<S> PerCloneAuth<S> {
    pub fn new(inner: S, token: &str) -> Self {
        let mut value = http::HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
        value.set_sensitive(true);
        PerCloneAuth { inner, value }
    }
}

impl<S: Clone> Clone for PerCloneAuth<S> {
    fn clone(&self) -> Self {
        let mut value =
            http::HeaderValue::from_maybe_shared(Bytes::copy_from_slice(self.value.as_bytes()))
                .unwrap();
        value.set_sensitive(true);
        PerCloneAuth {
            inner: self.inner.clone(),
            value,
        }
    }
}

impl<S, B> Service<Request<B>> for PerCloneAuth<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> S::Future {
        req.headers_mut()
            .insert(http::header::AUTHORIZATION, self.value.clone());
        self.inner.call(req)
    }
}
