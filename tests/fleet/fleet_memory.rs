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
use tower_client_auth::store::{
    MemoryStore, SharedStore, StoreKey, StoredEntry, TokenStore, WhenUnavailable,
};
use tower_client_auth::token::{Token, TokenSource};
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
        _: Option<&'a str>,
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
    fn load_cooldown<'a>(
        &'a self,
        _: &'a StoreKey,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, Error>> {
        Box::pin(async { Err(Error::store("connection refused")) })
    }
    fn set_cooldown<'a>(
        &'a self,
        _: &'a StoreKey,
        _: Vec<u8>,
        _: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async { Err(Error::store("connection refused")) })
    }
    fn clear_cooldown<'a>(&'a self, _: &'a StoreKey) -> BoxFuture<'a, Result<(), Error>> {
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

// ------------------------------------------------------------ store faults
//
// The same faults as tests/fleet_redis.rs injects with a TCP proxy in front of
// a real Redis, here in paused time with a store that fails on command: every
// rule of the fleet protocol (src/token/fleet.rs) seen from the outside.

/// A `MemoryStore` that fails on command: writes that error, a stall (every
/// operation hangs), or a wipe (everything gone, as after an empty restart).
#[derive(Default)]
struct Faulty {
    inner: Mutex<Arc<MemoryStore>>,
    /// The next this-many writes fail.
    failing_writes: std::sync::atomic::AtomicU32,
    stalled: std::sync::atomic::AtomicBool,
}

impl Faulty {
    fn store(&self) -> Arc<MemoryStore> {
        self.inner.lock().unwrap().clone()
    }

    fn wipe(&self) {
        *self.inner.lock().unwrap() = Arc::new(MemoryStore::new());
    }

    fn stall(&self, on: bool) {
        self.stalled.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    fn fail_writes(&self, n: u32) {
        self.failing_writes
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// `op` on the current store, unless stalled.
    fn run<'a, T: Send + 'a>(
        &'a self,
        op: impl FnOnce(Arc<MemoryStore>) -> BoxFuture<'static, Result<T, Error>> + Send + 'a,
    ) -> BoxFuture<'a, Result<T, Error>> {
        if self.stalled.load(std::sync::atomic::Ordering::SeqCst) {
            return Box::pin(futures_util::future::pending());
        }
        op(self.store())
    }
}

struct FaultyStore(Arc<Faulty>);

impl TokenStore for FaultyStore {
    fn load<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<Option<StoredEntry>, Error>> {
        let key = key.clone();
        self.0
            .run(move |s| Box::pin(async move { s.load(&key).await }))
    }
    fn compare_and_set<'a>(
        &'a self,
        key: &'a StoreKey,
        expected: u64,
        owner: Option<&'a str>,
        entry: StoredEntry,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        use std::sync::atomic::Ordering;
        let failing = &self.0.failing_writes;
        if failing
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Box::pin(async { Err(Error::store("write timed out")) });
        }
        let (key, owner) = (key.clone(), owner.map(str::to_owned));
        self.0.run(move |s| {
            Box::pin(async move {
                s.compare_and_set(&key, expected, owner.as_deref(), entry)
                    .await
            })
        })
    }
    fn try_lease<'a>(
        &'a self,
        key: &'a StoreKey,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        let (key, owner) = (key.clone(), owner.to_owned());
        self.0
            .run(move |s| Box::pin(async move { s.try_lease(&key, &owner, ttl).await }))
    }
    fn renew_lease<'a>(
        &'a self,
        key: &'a StoreKey,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        let (key, owner) = (key.clone(), owner.to_owned());
        self.0
            .run(move |s| Box::pin(async move { s.renew_lease(&key, &owner, ttl).await }))
    }
    fn release_lease<'a>(
        &'a self,
        key: &'a StoreKey,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let (key, owner) = (key.clone(), owner.to_owned());
        self.0
            .run(move |s| Box::pin(async move { s.release_lease(&key, &owner).await }))
    }
    fn wait_change<'a>(
        &'a self,
        key: &'a StoreKey,
        seen: u64,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let key = key.clone();
        self.0
            .run(move |s| Box::pin(async move { s.wait_change(&key, seen, timeout).await }))
    }
    fn load_cooldown<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, Error>> {
        let key = key.clone();
        self.0
            .run(move |s| Box::pin(async move { s.load_cooldown(&key).await }))
    }
    fn set_cooldown<'a>(
        &'a self,
        key: &'a StoreKey,
        record: Vec<u8>,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let key = key.clone();
        self.0
            .run(move |s| Box::pin(async move { s.set_cooldown(&key, record, ttl).await }))
    }
    fn clear_cooldown<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), Error>> {
        let key = key.clone();
        self.0
            .run(move |s| Box::pin(async move { s.clear_cooldown(&key).await }))
    }
}

/// A provider that rotates refresh tokens (one use each) and counts reuses.
#[derive(Default)]
struct Rotating {
    issued: Mutex<u32>,
    live: Mutex<Option<String>>,
    spent: Mutex<Vec<String>>,
    reuses: Mutex<u32>,
}

struct RotatingSource(Arc<Rotating>);

impl TokenSource for RotatingSource {
    fn fetch(&self, previous: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>> {
        use tower_client_auth::secrecy::ExposeSecret;
        let p = self.0.clone();
        let sent = previous
            .and_then(|t| t.refresh_token())
            .map(|r| r.expose_secret().to_owned());
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Some(rt) = &sent {
                let mut spent = p.spent.lock().unwrap();
                if spent.contains(rt) {
                    *p.reuses.lock().unwrap() += 1;
                }
                spent.push(rt.clone());
                if p.live.lock().unwrap().as_ref() != Some(rt) {
                    return Err(Error::permanent("refresh token invalid"));
                }
            }
            let mut n = p.issued.lock().unwrap();
            *n += 1;
            let rt = format!("rt-{n}");
            *p.live.lock().unwrap() = Some(rt.clone());
            Ok(Token::bearer(format!("at-{n}"), Some(LIFETIME)).with_refresh_token(rt))
        })
    }
}

fn on_faulty<S: TokenSource>(
    faulty: &Arc<Faulty>,
    source: S,
    policy: WhenUnavailable,
) -> Credential {
    Credential::builder()
        .origin(API)
        .token_source(source)
        .shared_store(
            SharedStore::new(FaultyStore(faulty.clone()))
                .identity("faulty")
                .when_unavailable(policy)
                .lease_ttl(Duration::from_secs(6))
                .store_timeout(Duration::from_millis(500))
                .poll_interval(Duration::from_millis(20)),
        )
        .build()
        .unwrap()
}

/// The write after a rotation fails (every try under the lease): the new
/// token is served, kept, and written once the store takes writes again; the
/// other replica, whose token expires meanwhile, waits for it and never sends
/// the old refresh token.
#[tokio::test(start_paused = true)]
async fn a_failed_write_after_a_rotation_loses_nothing_and_reuses_nothing() {
    let provider = Arc::new(Rotating::default());
    let faulty = Arc::new(Faulty::default());
    let policy = WhenUnavailable::FailClosed;
    let a = on_faulty(&faulty, RotatingSource(provider.clone()), policy);
    let b = on_faulty(&faulty, RotatingSource(provider.clone()), policy);
    a.token().await.unwrap();
    b.token().await.unwrap();
    assert_eq!(*provider.issued.lock().unwrap(), 1, "b adopted a's token");

    tokio::time::sleep(LIFETIME).await;
    faulty.fail_writes(3);
    let rotated = a.token().await.unwrap();
    // b's token expired too; it must not refresh from the stored, spent one.
    let (b_token, _) = tokio::join!(b.token(), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
    });
    let b_token = b_token.unwrap();
    use tower_client_auth::secrecy::ExposeSecret;
    assert_eq!(
        b_token.access_token().expose_secret(),
        rotated.access_token().expose_secret(),
        "b got a's rotated token from the store"
    );
    assert_eq!(
        *provider.reuses.lock().unwrap(),
        0,
        "a refresh token was sent twice"
    );
    assert_eq!(*provider.issued.lock().unwrap(), 2);
}

/// A store that accepts commands and never answers: every caller is answered
/// within a few store timeouts (fetching locally, or failing closed), and the
/// store is used again once it answers.
#[tokio::test(start_paused = true)]
async fn a_stalled_store_answers_every_caller_in_bounded_time() {
    let provider = Arc::new(Provider::default());
    let faulty = Arc::new(Faulty::default());
    let open = on_faulty(
        &faulty,
        Source(provider.clone()),
        WhenUnavailable::FetchLocally,
    );
    let closed = on_faulty(
        &faulty,
        Source(provider.clone()),
        WhenUnavailable::FailClosed,
    );
    faulty.stall(true);
    let started = Instant::now();
    open.token().await.unwrap();
    let err = closed.token().await.unwrap_err();
    assert!(err.is_store_unavailable(), "{err}");
    // A few store timeouts (the cache's own retries included), not minutes.
    assert!(
        started.elapsed() <= Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        provider.count(),
        1,
        "only the fetch-locally replica fetched"
    );
    faulty.stall(false);
    closed.end_cooldown();
    tokio::time::sleep(Duration::from_secs(60)).await;
    closed.token().await.unwrap();
}

/// A rotating refresh token is never refreshed locally while the store is
/// down under the default policy; the opt-in policy does, and writes the
/// rotated token back when the store answers.
#[tokio::test(start_paused = true)]
async fn the_default_outage_mode_never_refreshes_a_refresh_token_locally() {
    let provider = Arc::new(Rotating::default());
    let faulty = Arc::new(Faulty::default());
    let a = on_faulty(
        &faulty,
        RotatingSource(provider.clone()),
        WhenUnavailable::FetchLocally,
    );
    let b = on_faulty(
        &faulty,
        RotatingSource(provider.clone()),
        WhenUnavailable::FetchLocally,
    );
    a.token().await.unwrap();
    b.token().await.unwrap();
    // The store stalls; the tokens expire (refreshes ahead fail meanwhile).
    faulty.stall(true);
    tokio::time::sleep(LIFETIME).await;
    let ea = a.token().await.unwrap_err();
    let eb = b.token().await.unwrap_err();
    assert!(
        ea.is_store_unavailable() && eb.is_store_unavailable(),
        "{ea} / {eb}"
    );
    assert_eq!(
        *provider.issued.lock().unwrap(),
        1,
        "nothing refreshed locally"
    );
    assert_eq!(*provider.reuses.lock().unwrap(), 0);
}

/// A wrong password: one attempt for the whole fleet per cool-down, and
/// `end_cooldown` on one replica ends it for every replica.
#[tokio::test(start_paused = true)]
async fn a_wrong_password_cools_the_whole_fleet_down() {
    #[derive(Default)]
    struct Wrong(std::sync::atomic::AtomicU32);
    struct WrongSource(Arc<Wrong>);
    impl TokenSource for WrongSource {
        fn fetch(&self, _: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>> {
            self.0 .0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async { Err(Error::permanent("wrong password")) })
        }
    }
    let attempts = Arc::new(Wrong::default());
    let faulty = Arc::new(Faulty::default());
    let fleet: Vec<Credential> = (0..5)
        .map(|_| {
            on_faulty(
                &faulty,
                WrongSource(attempts.clone()),
                WhenUnavailable::FailClosed,
            )
        })
        .collect();
    let count = || attempts.0.load(std::sync::atomic::Ordering::SeqCst);
    // Every replica asks, again and again, for ten minutes (cool-down 60 s,
    // doubling): the fleet as a whole tries once per cool-down.
    let end = Instant::now() + Duration::from_secs(600);
    let started = Instant::now();
    while Instant::now() < end {
        for c in &fleet {
            let before = count();
            let err = c.token().await.unwrap_err();
            if count() > before {
                eprintln!("attempt at {:?}: {err}", started.elapsed());
            }
            assert!(!err.is_transient(), "{err}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // 60 s, then 120 s, then 240 s: attempts at 0, 60, 180, 420 s.
    assert_eq!(count(), 4, "attempts for the fleet in ten minutes");
    let err = fleet[3].token().await.unwrap_err();
    assert!(err.is_cooling_down(), "{err}");
    assert!(err.to_string().contains("whole fleet"), "{err}");

    // One operator ends it: every replica may try again within seconds.
    fleet[0].end_cooldown();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let before = count();
    fleet[4].token().await.unwrap_err();
    assert_eq!(
        count(),
        before + 1,
        "the cool-down ended for the others too"
    );
}

/// After the store restarts empty, the replicas' next need is served by one
/// token for all of them, not one each.
#[tokio::test(start_paused = true)]
async fn an_empty_restart_resumes_one_token_for_the_fleet() {
    let provider = Arc::new(Provider::default());
    let faulty = Arc::new(Faulty::default());
    let fleet: Vec<Credential> = (0..4)
        .map(|_| {
            on_faulty(
                &faulty,
                Source(provider.clone()),
                WhenUnavailable::FailClosed,
            )
        })
        .collect();
    // Several lifetimes, so that the store's generation is well past 1 (each
    // lifetime: one refresh ahead for the fleet).
    for _ in 0..3 {
        for c in &fleet {
            c.token().await.unwrap();
        }
        tokio::time::sleep(LIFETIME).await;
    }
    let before = provider.count();
    assert!(before <= 4, "{before} tokens in three lifetimes");
    // The store restarts empty; the next lifetime needs one token for all.
    faulty.wipe();
    tokio::time::sleep(LIFETIME).await;
    for c in &fleet {
        c.token().await.unwrap();
    }
    assert_eq!(
        provider.count(),
        before + 1,
        "one token for the fleet after the restart"
    );
}

/// Errors print each message once down the chain.
#[test]
fn store_errors_print_their_cause_once() {
    let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
    let err = Error::store(Error::store(io));
    let mut chain = vec![err.to_string()];
    let mut next = std::error::Error::source(&err);
    while let Some(e) = next {
        chain.push(e.to_string());
        next = e.source();
    }
    let text = chain.join(": ");
    assert_eq!(text, "shared token store unavailable: connection refused");
}

/// The store loses its last write (a failover to a replica that lagged): it
/// offers the entry before, whose refresh token is spent. The replicas hold
/// the newer one and refresh from it; nothing is sent twice.
#[tokio::test(start_paused = true)]
async fn a_store_that_rolls_back_a_write_never_makes_a_reuse() {
    let provider = Arc::new(Rotating::default());
    let faulty = Arc::new(Faulty::default());
    let policy = WhenUnavailable::FailClosed;
    let a = on_faulty(&faulty, RotatingSource(provider.clone()), policy);
    let b = on_faulty(&faulty, RotatingSource(provider.clone()), policy);
    a.token().await.unwrap();
    b.token().await.unwrap();
    let store = faulty.store();
    // The entry of the first token, kept to be written back.
    let first = snapshot(&store).await;
    tokio::time::sleep(LIFETIME).await;
    a.token().await.unwrap();
    b.token().await.unwrap();
    assert_eq!(*provider.issued.lock().unwrap(), 2, "a rotated, b adopted");
    // The rollback: the first entry back, under its own generation.
    restore(&store, first).await;
    tokio::time::sleep(LIFETIME).await;
    a.token().await.unwrap();
    b.token().await.unwrap();
    assert_eq!(
        *provider.reuses.lock().unwrap(),
        0,
        "a spent refresh token was sent"
    );
    assert_eq!(*provider.issued.lock().unwrap(), 3);
}

/// With `FetchLocallyReusingRefreshTokens`, a token refreshed during an
/// outage is written back when the store answers, so a replica that comes
/// later takes it rather than refresh from the stored, spent one.
#[tokio::test(start_paused = true)]
async fn the_reusing_mode_writes_the_rotated_token_back() {
    let provider = Arc::new(Rotating::default());
    let faulty = Arc::new(Faulty::default());
    let policy = WhenUnavailable::FetchLocallyReusingRefreshTokens;
    let a = on_faulty(&faulty, RotatingSource(provider.clone()), policy);
    a.token().await.unwrap();
    faulty.stall(true);
    // a's token expires during the outage: it refreshes on its own.
    tokio::time::sleep(LIFETIME + Duration::from_millis(100)).await;
    a.token().await.unwrap();
    assert_eq!(*provider.issued.lock().unwrap(), 2);
    faulty.stall(false);
    // The store answers again: the rotated token is written back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let b = on_faulty(&faulty, RotatingSource(provider.clone()), policy);
    b.token().await.unwrap();
    assert_eq!(*provider.issued.lock().unwrap(), 2, "b took a's token");
    assert_eq!(
        *provider.reuses.lock().unwrap(),
        0,
        "a spent refresh token was sent"
    );
}

/// The one entry of the store, raw.
async fn snapshot(store: &MemoryStore) -> StoredEntry {
    let key = only_key(store);
    store.load(&key).await.unwrap().unwrap()
}

/// Writes `entry` back over whatever is stored, as a store that lost writes.
async fn restore(store: &MemoryStore, entry: StoredEntry) {
    let key = only_key(store);
    let current = store.load(&key).await.unwrap().map_or(0, |e| e.generation);
    assert!(store
        .compare_and_set(&key, current, None, entry)
        .await
        .unwrap());
}

fn only_key(_: &MemoryStore) -> StoreKey {
    // `on_faulty`'s namespace and identity.
    StoreKey::for_identity("tower-client-auth", "faulty")
}
