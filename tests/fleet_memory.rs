//! The cross-process protocol in one process: several credentials ("replicas"),
//! each with its own lease owner, share a `MemoryStore`, against a provider that
//! revokes every older token when it issues one (Altrata). Paused time. The same
//! protocol over Redis with real processes: tests/fleet_redis.rs.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{join_all, BoxFuture};
use http::{Request, Response};
use http_body_util::Full;
use tokio::time::Instant;
use tower::{service_fn, Layer, ServiceExt};
use tower_client_auth::token::{
    MemoryStore, SharedStore, StoreKey, StoredEntry, Token, TokenSource, TokenStore,
    WhenUnavailable,
};
use tower_client_auth::{AuthLayer, BoxError, Credential, Error, ReplayBody};

const API: &str = "https://api.example.com";
const LIFETIME: Duration = Duration::from_secs(2);

/// A provider where a new token revokes all others; records when each was issued.
#[derive(Default)]
struct Provider {
    issued: Mutex<Vec<Instant>>,
    valid: Mutex<Option<String>>,
}

impl Provider {
    fn issue(&self) -> String {
        let mut issued = self.issued.lock().unwrap();
        issued.push(Instant::now());
        let token = format!("tok-{}", issued.len());
        *self.valid.lock().unwrap() = Some(token.clone());
        token
    }

    fn count(&self) -> usize {
        self.issued.lock().unwrap().len()
    }
}

struct Source(Arc<Provider>);

impl TokenSource for Source {
    fn fetch(&self, _: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>> {
        let provider = self.0.clone();
        Box::pin(async move {
            // The token endpoint takes a moment: long enough for others to pile up.
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(Token::bearer(provider.issue(), Some(LIFETIME)))
        })
    }
}

type Api = tower::util::BoxCloneService<Request<Full<Bytes>>, Response<()>, BoxError>;

/// A replica: its own credential on the shared store, its own layer.
fn replica(provider: &Arc<Provider>, store: &Arc<MemoryStore>, rejected: &Arc<Mutex<u32>>) -> Api {
    let cred = Credential::builder()
        .origin(API)
        .token_source(Source(provider.clone()))
        .shared_store(
            SharedStore::from_arc(store.clone())
                .identity("fleet-test")
                .poll_interval(Duration::from_millis(20)),
        )
        .build()
        .unwrap();
    let provider = provider.clone();
    let rejected = rejected.clone();
    let api = service_fn(move |req: Request<ReplayBody<Full<Bytes>>>| {
        let valid = provider.valid.lock().unwrap().clone();
        let ok = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            == valid.map(|v| format!("Bearer {v}")).as_deref();
        if !ok {
            *rejected.lock().unwrap() += 1;
        }
        let mut res = Response::new(());
        *res.status_mut() = if ok {
            200.try_into().unwrap()
        } else {
            401.try_into().unwrap()
        };
        std::future::ready(Ok::<_, Infallible>(res))
    });
    // 401 retry on: a rejected token is replaced and the request re-sent.
    let svc = AuthLayer::new(cred).layer(api).map_err(|e: BoxError| e);
    tower::util::BoxCloneService::new(svc)
}

fn get() -> Request<Full<Bytes>> {
    Request::get(format!("{API}/v1"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn eight_replicas_fetch_one_token_per_lifetime() {
    let provider = Arc::new(Provider::default());
    let store = Arc::new(MemoryStore::new());
    let rejected = Arc::new(Mutex::new(0));
    let replicas: Vec<Api> = (0..8)
        .map(|_| replica(&provider, &store, &rejected))
        .collect();
    let lifetimes = 10;
    let end = Instant::now() + LIFETIME * lifetimes;
    let runs = replicas.into_iter().enumerate().map(|(i, svc)| async move {
        // Staggered start, then a request every 100 ms.
        tokio::time::sleep(Duration::from_millis(13 * i as u64)).await;
        let mut ok = 0;
        while Instant::now() < end {
            let res = svc.clone().oneshot(get()).await.unwrap();
            assert_eq!(res.status(), 200);
            ok += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ok
    });
    let ok: usize = join_all(runs).await.into_iter().sum();
    assert!(ok > 8 * 150, "{ok}");
    assert_eq!(
        *rejected.lock().unwrap(),
        0,
        "a replica used a revoked token"
    );
    let issued = provider.issued.lock().unwrap().clone();
    // Refreshed ahead at 90 % of each 2 s lifetime: 20 s / 1.8 s.
    assert!(
        issued.len() <= 12,
        "{} tokens in {lifetimes} lifetimes",
        issued.len()
    );
    assert!(issued.len() >= lifetimes as usize);
    for pair in issued.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= LIFETIME * 8 / 10, "two tokens {gap:?} apart");
    }
}

#[tokio::test(start_paused = true)]
async fn a_401_storm_across_replicas_makes_one_replacement_token() {
    let provider = Arc::new(Provider::default());
    let store = Arc::new(MemoryStore::new());
    let rejected = Arc::new(Mutex::new(0));
    let replicas: Vec<Api> = (0..8)
        .map(|_| replica(&provider, &store, &rejected))
        .collect();
    for svc in &replicas {
        assert_eq!(svc.clone().oneshot(get()).await.unwrap().status(), 200);
    }
    assert_eq!(provider.count(), 1);
    // Someone outside the fleet asks for a token: every replica's is now dead.
    provider.issue();
    let storm = replicas.iter().map(|svc| svc.clone().oneshot(get()));
    for r in join_all(storm).await {
        // Each replica's request got a 401, and was re-sent with the one
        // replacement token: no 401 reaches a caller.
        assert_eq!(r.unwrap().status(), 200);
    }
    assert_eq!(
        *rejected.lock().unwrap(),
        8,
        "each replica's dead token, once"
    );
    assert_eq!(provider.count(), 3, "initial, outside, one replacement");
}

/// A store that is down.
struct Down;

impl TokenStore for Down {
    fn load<'a>(&'a self, _: &'a StoreKey) -> BoxFuture<'a, Result<Option<StoredEntry>, Error>> {
        Box::pin(async { Err(Error::store("connection refused")) })
    }
    fn compare_and_set<'a>(
        &'a self,
        _: &'a StoreKey,
        _: u64,
        _: StoredEntry,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async { Err(Error::store("connection refused")) })
    }
    fn try_lease<'a>(
        &'a self,
        _: &'a StoreKey,
        _: &'a str,
        _: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async { Err(Error::store("connection refused")) })
    }
    fn renew_lease<'a>(
        &'a self,
        _: &'a StoreKey,
        _: &'a str,
        _: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async { Err(Error::store("connection refused")) })
    }
    fn release_lease<'a>(
        &'a self,
        _: &'a StoreKey,
        _: &'a str,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async { Err(Error::store("connection refused")) })
    }
    fn wait_change<'a>(
        &'a self,
        _: &'a StoreKey,
        _: u64,
        _: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async { Err(Error::store("connection refused")) })
    }
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_store_fetches_locally_or_fails_closed() {
    let provider = Arc::new(Provider::default());
    let build = |policy| {
        Credential::builder()
            .origin(API)
            .token_source(Source(provider.clone()))
            .shared_store(
                SharedStore::new(Down)
                    .identity("down")
                    .when_unavailable(policy),
            )
            .build()
            .unwrap()
    };
    let echo =
        service_fn(|_: Request<Full<Bytes>>| async { Ok::<_, Infallible>(Response::new(())) });
    let open = AuthLayer::new(build(WhenUnavailable::FetchLocally))
        .without_retry()
        .layer(echo);
    assert_eq!(open.oneshot(get()).await.unwrap().status(), 200);
    assert_eq!(provider.count(), 1);

    let closed = AuthLayer::new(build(WhenUnavailable::FailClosed))
        .without_retry()
        .layer(echo);
    let err = closed.clone().oneshot(get()).await.unwrap_err();
    let err = err.downcast::<Error>().unwrap();
    assert!(err.is_store_unavailable() && err.is_transient(), "{err}");
    assert_eq!(provider.count(), 1, "no token request without the lease");
}

#[test]
fn a_source_without_identity_needs_one() {
    let provider = Arc::new(Provider::default());
    let err = Credential::builder()
        .origin(API)
        .token_source(Source(provider))
        .shared_store(SharedStore::new(MemoryStore::new()))
        .build()
        .unwrap_err();
    assert!(err.is_config(), "{err}");
}

/// A stored token this replica cannot read (sealed with another key, say) does
/// not stop it: it fetches and replaces it.
#[tokio::test(start_paused = true)]
async fn an_unreadable_stored_token_is_replaced_not_fatal() {
    let provider = Arc::new(Provider::default());
    let store = Arc::new(MemoryStore::new());
    let build = |key: [u8; 32]| {
        Credential::builder()
            .origin(API)
            .token_source(Source(provider.clone()))
            .shared_store(
                SharedStore::from_arc(store.clone())
                    .identity("k")
                    .encrypt_with(key),
            )
            .build()
            .unwrap()
    };
    let a = build([1; 32]);
    a.token().await.unwrap();
    let b = build([2; 32]);
    b.token().await.unwrap();
    assert_eq!(provider.count(), 2);
}
