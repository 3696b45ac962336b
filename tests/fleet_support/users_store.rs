//! Store faults for many users (`Users`), the same on Redis and on PostgreSQL:
//! tests/fleet_redis.rs and tests/users_postgres.rs each include this file and
//! hand it their store, a way to read and write the store's raw bytes, and
//! (for the lost write) a store behind a [`FaultProxy`].
//!
//! Every scenario asserts the behaviour issue 19 asks for.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};
use tower_client_auth::oauth2::TokenClient;
use tower_client_auth::secrecy::ExposeSecret;
use tower_client_auth::store::{SharedStore, TokenStore};
use tower_client_auth::testing::oauth::OAuthServer;
use tower_client_auth::token::Token;
use tower_client_auth::users::{UserKey, Users, UsersLayer};
use tower_client_auth::{Error, ReplayBody};

use crate::fault_proxy::{Fault, FaultProxy};

pub const KEY: [u8; 32] = *b"issue-19-users-key-32-bytes-long";

type Http = Client<hyper_util::client::legacy::connect::HttpConnector, ReplayBody<Full<Bytes>>>;

fn http() -> Http {
    Client::builder(TokioExecutor::new()).build_http()
}

/// The store's bytes as an attacker with access to it sees them.
pub trait Raw {
    /// Every key under `ns` with every byte string stored under it (hash
    /// fields and values, string values, columns).
    fn dump<'a>(&'a self, ns: &'a str) -> BoxFuture<'a, Vec<(String, Vec<u8>)>>;
    /// The token entries under `ns`: key, generation, data.
    fn entries<'a>(&'a self, ns: &'a str) -> BoxFuture<'a, Vec<(String, u64, Vec<u8>)>>;
    /// Overwrites an entry, as anyone who can write to the store can.
    fn put<'a>(&'a self, key: &'a str, generation: u64, data: &'a [u8]) -> BoxFuture<'a, ()>;
}

/// `Users` for the emulator's API, on `store`.
fn users_on(
    store: Arc<dyn TokenStore>,
    ns: &str,
    emu: &OAuthServer,
    token_url: &str,
    replica: &str,
    seen: Option<Arc<Mutex<Vec<String>>>>,
) -> Users {
    let client = TokenClient::builder(token_url)
        .client_id("app")
        .client_secret("s3cret")
        // Lets a token-endpoint wrapper tell replicas apart (not part of the
        // store key: every replica shares each user's entry).
        .header("x-replica", replica)
        .build(http())
        .unwrap();
    let mut b = Users::builder(emu.base_url(), client).allow_http().store(
        SharedStore::from_arc(store)
            .namespace(ns)
            .encrypt_with(KEY)
            .lease_ttl(Duration::from_secs(3))
            .poll_interval(Duration::from_millis(50)),
    );
    if let Some(seen) = seen {
        b = b.on_token_change(move |_, t: &Token| {
            let mut seen = seen.lock().unwrap();
            seen.push(t.access_token().expose_secret().to_owned());
            if let Some(r) = t.refresh_token() {
                seen.push(r.expose_secret().to_owned());
            }
        });
    }
    b.build().unwrap()
}

/// One API request as `user`: its status, or the crate's error.
async fn as_user(users: &Users, api: &str, user: &str) -> Result<u16, Error> {
    let svc = UsersLayer::new(users.clone()).layer(http());
    let mut req = Request::get(format!("{api}/api/me"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    req.extensions_mut().insert(UserKey::new(user));
    match svc.oneshot(req).await {
        Ok(res) => Ok(res.status().as_u16()),
        Err(e) => Err(*e.downcast::<Error>().expect("the crate's error")),
    }
}

fn show(r: &Result<u16, Error>) -> String {
    match r {
        Ok(s) => s.to_string(),
        Err(e) if e.is_login_required() => "login-required".into(),
        Err(e) => format!("error ({e})"),
    }
}

/// A login whose access token has expired: the first request refreshes.
fn expired_login(refresh_token: String) -> Token {
    Token::bearer("expired-login-access-token", Some(Duration::from_millis(1)))
        .with_refresh_token(refresh_token)
}

// ------------------------------------------------- a token endpoint wrapper

/// What the wrapper tells its hook about a token request it relayed.
pub struct Relayed {
    /// 1 for the first token request.
    pub n: u64,
    /// The `x-replica` header.
    pub replica: String,
    pub status: u16,
}

pub type Hook = Arc<dyn Fn(Relayed) -> BoxFuture<'static, ()> + Send + Sync>;

/// Relays every request to `upstream` (same path and query), and runs `hook`
/// after the upstream answered, before the answer goes back: a test can break
/// the caller's store right after the provider answered.
pub async fn relay_to(upstream: String, hook: Hook) -> String {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let count = Arc::new(AtomicU64::new(0));
    let server = tower_client_auth::testing::serve(move |req: Request<Bytes>| {
        let (client, upstream, hook, count) = (
            client.clone(),
            upstream.clone(),
            hook.clone(),
            count.clone(),
        );
        async move {
            let (parts, body) = req.into_parts();
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let mut out = Request::builder()
                .method(parts.method.clone())
                .uri(format!("{upstream}{path}"));
            for (k, v) in &parts.headers {
                if k != http::header::HOST {
                    out = out.header(k, v);
                }
            }
            let res = client
                .request(out.body(Full::new(body)).unwrap())
                .await
                .expect("the upstream answers");
            let (rparts, rbody) = res.into_parts();
            let rbody = rbody.collect().await.unwrap().to_bytes();
            let replica = parts
                .headers
                .get("x-replica")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            hook(Relayed {
                n,
                replica,
                status: rparts.status.as_u16(),
            })
            .await;
            http::Response::from_parts(rparts, Full::new(rbody))
        }
    })
    .await;
    format!("http://{}", server.detach())
}

// ------------------------------------------------------------- scenarios

/// How replica A's store write is made to fail right after the provider
/// answered its refresh.
#[derive(Clone, Copy, Debug)]
pub enum BreakWrite {
    /// Redis: the connection stalls past the store's 1 s timeout, then fails
    /// over (the stalled connections are reset: the write is lost), 1.5 s in all.
    StallThenFailover,
    /// The write is cut by a TCP reset; the store answers again 300 ms later.
    Reset,
}

/// Issue 19, 1: a failed write after a rotation, two replicas, a rotating
/// server. Replica A refreshes alice's token; the provider answers (the old
/// refresh token is now spent); A's write to the store fails. Replica B needs
/// a token meanwhile, and later everyone does. Fixed: nobody sends the spent
/// refresh token (reuse 0), alice is never marked "log in again", and every
/// request is served.
pub async fn failed_write_after_rotation(
    upstream: SocketAddr,
    connect: impl Fn(String) -> BoxFuture<'static, Arc<dyn TokenStore>>,
    url_of: impl Fn(&FaultProxy) -> String,
    direct: Arc<dyn TokenStore>,
    ns: &str,
    how: BreakWrite,
) {
    let emu = OAuthServer::start("app", "s3cret").await;
    emu.set_token_lifetime(Duration::from_secs(2));
    let (proxy_a, proxy_b) = (
        Arc::new(FaultProxy::start(upstream).await),
        Arc::new(FaultProxy::start(upstream).await),
    );
    let armed = Arc::new(AtomicBool::new(true));
    let (p, a) = (proxy_a.clone(), armed.clone());
    let hook: Hook = Arc::new(move |r: Relayed| {
        let (p, a) = (p.clone(), a.clone());
        Box::pin(async move {
            if r.replica == "a" && r.status == 200 && a.swap(false, Ordering::SeqCst) {
                match how {
                    BreakWrite::StallThenFailover => {
                        p.set(Fault::Stall);
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(1_500)).await;
                            p.reset_connections();
                            p.set(Fault::Pass);
                        });
                    }
                    BreakWrite::Reset => {
                        p.set(Fault::ResetMidCommand);
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            p.set(Fault::Pass);
                        });
                    }
                }
            }
        })
    });
    let token_url =
        relay_to(emu.base_url(), hook).await + tower_client_auth::testing::oauth::TOKEN_PATH;
    let store_a = connect(url_of(&proxy_a)).await;
    let store_b = connect(url_of(&proxy_b)).await;
    let users_a = users_on(store_a, ns, &emu, &token_url, "a", None);
    let users_b = users_on(store_b, ns, &emu, &token_url, "b", None);
    let users_c = users_on(direct, ns, &emu, &token_url, "c", None);
    let alice = "alice@example.com";
    let api = emu.base_url();
    users_a
        .login(
            &UserKey::new(alice),
            expired_login(emu.issue_refresh_token()),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;

    let started = Instant::now();
    let (ua, api_a) = (users_a.clone(), api.clone());
    let first = tokio::spawn(async move { as_user(&ua, &api_a, alice).await });
    // B needs alice's token while A's write is failing.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let during = as_user(&users_b, &api, alice).await;
    let during_at = started.elapsed();
    let first = first.await.unwrap();
    // Everyone's token has expired: every replica goes through the store.
    tokio::time::sleep(Duration::from_millis(4_500).saturating_sub(started.elapsed())).await;
    let later = [
        as_user(&users_a, &api, alice).await,
        as_user(&users_b, &api, alice).await,
        as_user(&users_c, &api, alice).await,
    ];
    println!(
        "  {how:?}: A {} | B during the fault {} (after {:.1} s) | later A {} B {} new replica {}; \
         refresh tokens used {}, reused {}",
        show(&first),
        show(&during),
        during_at.as_secs_f64(),
        show(&later[0]),
        show(&later[1]),
        show(&later[2]),
        emu.refresh_tokens_used(),
        emu.refresh_token_reuses()
    );
    assert_eq!(
        emu.refresh_token_reuses(),
        0,
        "the spent refresh token was sent again after A's write failed"
    );
    let all = std::iter::once(&first)
        .chain(std::iter::once(&during))
        .chain(later.iter());
    for r in all.clone() {
        assert!(
            !r.as_ref().is_err_and(|e| e.is_login_required()),
            "alice was marked \"log in again\": {}",
            show(r)
        );
    }
    for r in all {
        assert!(
            matches!(r, Ok(200)),
            "a request was not served: {}",
            show(r)
        );
    }
}

/// Issue 19, 7: with a key set, nothing readable in the store: no user key
/// (e-mail addresses here), no access or refresh token, in any key name or
/// value, including the "log in again" mark of a user whose refresh token was
/// rejected.
pub async fn sealed_store_scan(store: Arc<dyn TokenStore>, raw: &impl Raw, ns: &str) {
    let emu = OAuthServer::start("app", "s3cret").await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let users = users_on(store, ns, &emu, &emu.token_url(), "a", Some(seen.clone()));
    let api = emu.base_url();
    let (alice, bob, carol) = (
        "alice@example.com",
        "bob.rejected@example.com",
        "carol.idle@example.org",
    );
    let rt_alice = emu.issue_refresh_token();
    let rt_bob = emu.issue_refresh_token();
    let rt_carol = emu.issue_refresh_token();
    let carol_access = "carol-login-access-token-never-refreshed";
    users
        .login(&UserKey::new(alice), expired_login(rt_alice.clone()))
        .await
        .unwrap();
    users
        .login(&UserKey::new(bob), expired_login(rt_bob.clone()))
        .await
        .unwrap();
    users
        .login(
            &UserKey::new(carol),
            Token::bearer(carol_access, Some(Duration::from_secs(3600)))
                .with_refresh_token(rt_carol.clone()),
        )
        .await
        .unwrap();
    // Bob revoked the app: his refresh is rejected, and he is marked.
    emu.revoke_refresh_token(&rt_bob);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let a = as_user(&users, &api, alice).await;
    let b = as_user(&users, &api, bob).await;
    let c = as_user(&users, &api, carol).await;
    assert!(matches!(a, Ok(200)), "{}", show(&a));
    assert!(
        b.as_ref().is_err_and(|e| e.is_login_required()),
        "{}",
        show(&b)
    );
    assert!(matches!(c, Ok(200)), "{}", show(&c));

    let mut needles: Vec<String> = vec![alice.into(), bob.into(), carol.into()];
    needles.extend([rt_alice, rt_bob, rt_carol, carol_access.to_owned()]);
    needles.extend(seen.lock().unwrap().iter().cloned());
    let dump = raw.dump(ns).await;
    let mut found = Vec::new();
    for (key, bytes) in &dump {
        for n in &needles {
            let hit = key.contains(n.as_str()) || bytes.windows(n.len()).any(|w| w == n.as_bytes());
            if hit {
                found.push(format!("{n:?} in {key}"));
            }
        }
    }
    println!(
        "  {} stored values scanned for {} strings (3 user keys, {} tokens): {} found in clear",
        dump.iter().filter(|(_, b)| !b.is_empty()).count(),
        needles.len(),
        needles.len() - 3,
        found.len()
    );
    assert!(dump.len() >= 3, "the users' entries are there");
    assert!(found.is_empty(), "in clear with a key set: {found:?}");
}

/// Issue 19, 7: an old sealed entry written back. Alice's token is refreshed
/// twice (each rotation spends the refresh token before it); then whoever can
/// write to the store puts the first refresh's sealed bytes back, under the
/// next generation, as if freshly written. Fixed: the replicas do not take it
/// (it no longer opens under its new version): they keep serving and never
/// send the old, spent refresh token.
pub async fn replayed_entry(store: Arc<dyn TokenStore>, raw: &impl Raw, ns: &str) {
    let emu = OAuthServer::start("app", "s3cret").await;
    let lifetime = Duration::from_secs(1);
    emu.set_token_lifetime(lifetime);
    let users_a = users_on(store.clone(), ns, &emu, &emu.token_url(), "a", None);
    let users_b = users_on(store, ns, &emu, &emu.token_url(), "b", None);
    let api = emu.base_url();
    let alice = "alice@example.com";
    users_a
        .login(
            &UserKey::new(alice),
            expired_login(emu.issue_refresh_token()),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut results = Vec::new();
    results.push(as_user(&users_a, &api, alice).await);
    results.push(as_user(&users_b, &api, alice).await);
    let saved = raw.entries(ns).await;
    assert_eq!(saved.len(), 1, "one entry");
    tokio::time::sleep(lifetime + Duration::from_millis(100)).await;
    results.push(as_user(&users_a, &api, alice).await);
    results.push(as_user(&users_b, &api, alice).await);
    let now = raw.entries(ns).await;
    assert!(now[0].1 > saved[0].1, "refreshed since");
    // The replay: the old sealed bytes, under the next generation.
    raw.put(&saved[0].0, now[0].1 + 1, &saved[0].2).await;
    tokio::time::sleep(lifetime + Duration::from_millis(100)).await;
    let after = [
        as_user(&users_a, &api, alice).await,
        as_user(&users_b, &api, alice).await,
        as_user(&users_a, &api, alice).await,
    ];
    println!(
        "  entry of generation {} written back as {} (current {}): then A {} B {} A {}; \
         refresh tokens used {}, reused {}",
        saved[0].1,
        now[0].1 + 1,
        now[0].1,
        show(&after[0]),
        show(&after[1]),
        show(&after[2]),
        emu.refresh_tokens_used(),
        emu.refresh_token_reuses()
    );
    for r in &results {
        assert!(matches!(r, Ok(200)), "before the replay: {}", show(r));
    }
    assert_eq!(
        emu.refresh_token_reuses(),
        0,
        "the replayed entry was adopted: its spent refresh token was sent"
    );
    for r in &after {
        assert!(
            matches!(r, Ok(200)),
            "not served after the replay: {}",
            show(r)
        );
    }
}
