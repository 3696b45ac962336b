//! Many users on a real PostgreSQL, against the code-flow emulator (rotating
//! refresh tokens with reuse detection), with real processes.
//!
//! `harness = false`: `main` runs the scenarios and re-executes this binary as
//! worker processes (`USERS_ROLE=worker`). Needs PostgreSQL at `PG_URL`
//! (default `host=127.0.0.1 user=postgres dbname=test`); `.ci/run` starts it and
//! runs this with `--all-features`. Rows are namespaced per run and
//! deleted afterwards.
//!
//! `cargo test --features postgres,testing --test users_postgres [scenario]`
//!
//! The issue-19 scenarios (store faults for many users) are shared with
//! tests/fleet_redis.rs through tests/fleet_support/users_store.rs; the ones
//! that break the connection go through tests/fleet_support/fault_proxy.rs.

#[path = "fleet_support/fault_proxy.rs"]
mod fault_proxy;
#[path = "fleet_support/users_store.rs"]
mod users_store;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::{self, StreamExt};
use http::Request;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};
use tower_client_auth::oauth2::TokenClient;
use tower_client_auth::store::{PgStore, SharedStore, TokenStore};
use tower_client_auth::testing::oauth::OAuthServer;
use tower_client_auth::token::Token;
use tower_client_auth::users::{UserKey, Users, UsersLayer};
use tower_client_auth::{Error, ReplayBody};

const USERS: usize = 10_000;

type Http = Client<hyper_util::client::legacy::connect::HttpConnector, ReplayBody<Full<Bytes>>>;

fn pg_url() -> String {
    std::env::var("PG_URL").unwrap_or_else(|_| "host=127.0.0.1 user=postgres dbname=test".into())
}

/// `pg_url()` pointing at `addr` (a proxy) instead.
fn pg_url_at(addr: std::net::SocketAddr) -> String {
    let url = pg_url();
    let rest: Vec<&str> = url
        .split_whitespace()
        .filter(|kv| !kv.starts_with("host=") && !kv.starts_with("port="))
        .collect();
    format!("{} host={} port={}", rest.join(" "), addr.ip(), addr.port())
}

/// The server's address in `pg_url()`, for a proxy in front of it.
fn pg_addr() -> std::net::SocketAddr {
    use std::net::ToSocketAddrs;
    let config: tokio_postgres::Config = pg_url().parse().unwrap();
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    (host.as_str(), port)
        .to_socket_addrs()
        .unwrap()
        .next()
        .unwrap()
}

async fn pg_client() -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c
}

/// The table's bytes under a namespace.
struct PgRaw;

impl users_store::Raw for PgRaw {
    fn dump<'a>(&'a self, ns: &'a str) -> BoxFuture<'a, Vec<(String, Vec<u8>)>> {
        Box::pin(async move {
            let rows = pg_client()
                .await
                .query(
                    "SELECT key, data, lease_owner FROM tower_client_auth_tokens WHERE key LIKE $1",
                    &[&format!("{ns}:%")],
                )
                .await
                .unwrap();
            let mut out = Vec::new();
            for r in rows {
                let key: String = r.get(0);
                let data: Option<Vec<u8>> = r.get(1);
                let owner: Option<String> = r.get(2);
                out.push((key.clone(), data.unwrap_or_default()));
                out.push((key, owner.unwrap_or_default().into_bytes()));
            }
            out
        })
    }

    fn entries<'a>(&'a self, ns: &'a str) -> BoxFuture<'a, Vec<(String, u64, Vec<u8>)>> {
        Box::pin(async move {
            let rows = pg_client()
                .await
                .query(
                    "SELECT key, generation, data FROM tower_client_auth_tokens \
                     WHERE key LIKE $1 AND data IS NOT NULL",
                    &[&format!("{ns}:%")],
                )
                .await
                .unwrap();
            rows.iter()
                .map(|r| (r.get(0), r.get::<_, i64>(1) as u64, r.get(2)))
                .collect()
        })
    }

    fn put<'a>(&'a self, key: &'a str, generation: u64, data: &'a [u8]) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let n = pg_client()
                .await
                .execute(
                    "UPDATE tower_client_auth_tokens SET generation = $2, data = $3 WHERE key = $1",
                    &[&key, &(generation as i64), &data],
                )
                .await
                .unwrap();
            assert_eq!(n, 1);
        })
    }
}

async fn delete_rows(ns: &str) -> u64 {
    pg_client()
        .await
        .execute(
            "DELETE FROM tower_client_auth_tokens WHERE key LIKE $1",
            &[&format!("{ns}:%")],
        )
        .await
        .unwrap()
}

/// Issue 19, 1 on PostgreSQL: replica A's write after a rotation is cut by a
/// connection reset (see `users_store::failed_write_after_rotation`).
async fn fault_failed_write_after_rotation(store: &PgStore, ns: &str) {
    users_store::failed_write_after_rotation(
        pg_addr(),
        |url| {
            Box::pin(async move {
                Arc::new(PgStore::connect(&url).await.unwrap()) as Arc<dyn TokenStore>
            })
        },
        |p| pg_url_at(p.addr()),
        Arc::new(store.clone()),
        ns,
        users_store::BreakWrite::Reset,
    )
    .await;
}

/// Issue 24: `Users::logout` in this process revokes the user's stored
/// refresh token at the server (RFC 7009) and marks the entry; a worker
/// process on the same store, started after, finds that user logged out (and
/// the others not), without sending the user's refresh token.
async fn logout_seen_by_another_process(store: &PgStore, ns: &str) {
    let emu = OAuthServer::start("app", "s3cret").await;
    let users = users(store, ns, &emu.token_url(), &emu.base_url()).await;
    for i in 0..3 {
        let token = Token::bearer("expired", Some(Duration::from_millis(1)))
            .with_refresh_token(emu.issue_refresh_token());
        users
            .login(&UserKey::new(format!("user-{i}")), token)
            .await
            .unwrap();
    }
    // The worker uses (and rotates) all three.
    let (ok, login, other) = finish(spawn_worker(ns, &emu, 0, 3), Duration::from_secs(60));
    assert_eq!((ok, login, other), (3, 0, 0));
    // Here: user-1 used, then logged out.
    users
        .credential(&UserKey::new("user-1"))
        .unwrap()
        .token()
        .await
        .unwrap();
    users.logout(&UserKey::new("user-1")).await.unwrap();
    assert!(users.find(&UserKey::new("user-1")).is_none());
    // Its refresh token (the one stored, after rotations) revoked at the server.
    assert_eq!(emu.refresh_tokens_revoked(), 1);
    let used = emu.refresh_tokens_used();
    // Another process: user-1 must log in again, the others go on.
    let (ok, login, other) = finish(spawn_worker(ns, &emu, 0, 3), Duration::from_secs(60));
    assert_eq!((ok, login, other), (2, 1, 0));
    let err = users
        .credential(&UserKey::new("user-1"))
        .unwrap()
        .token()
        .await
        .unwrap_err();
    assert!(err.is_login_required(), "{err}");
    assert_eq!(emu.refresh_token_reuses(), 0);
    // user-1's refresh token was never sent again (the others' may have been
    // refreshed, but not more than once each).
    assert!(emu.refresh_tokens_used() <= used + 2);
}

fn http() -> Http {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn users(store: &PgStore, ns: &str, token_url: &str, api: &str) -> Users {
    let client = TokenClient::builder(token_url)
        .client_id("app")
        .client_secret("s3cret")
        // The emulator's, next to its token path.
        .revocation_url(token_url.replace("/oauth/token", "/oauth/revoke"))
        .build(http())
        .unwrap();
    Users::builder(api, client)
        .allow_http()
        .store(
            SharedStore::new(store.clone())
                .namespace(ns)
                .encrypt_with(*b"users-test-key-is-32-bytes-long!")
                .poll_interval(Duration::from_millis(50)),
        )
        .build()
        .unwrap()
}

/// One request per user in `from..to`, `concurrency` at a time, until done or
/// told to stop (SIGTERM: finish what is in flight, start nothing new).
async fn serve_users(
    users: Users,
    api: &str,
    from: usize,
    to: usize,
    concurrency: usize,
) -> (u64, u64, u64) {
    let svc = UsersLayer::new(users).layer(http());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    tokio::spawn(async move {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            term.recv().await;
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let results: Vec<Result<u16, Error>> = stream::iter(from..to)
        .take_while(|_| {
            let go = !stop.load(std::sync::atomic::Ordering::SeqCst);
            async move { go }
        })
        .map(|i| {
            let svc = svc.clone();
            let mut req = Request::get(format!("{api}/api/me"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            req.extensions_mut()
                .insert(UserKey::new(format!("user-{i}")));
            async move {
                match svc.oneshot(req).await {
                    Ok(res) => Ok(res.status().as_u16()),
                    Err(e) => Err(*e.downcast::<Error>().expect("the crate's error")),
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let ok = results.iter().filter(|r| matches!(r, Ok(200))).count() as u64;
    let login = results
        .iter()
        .filter(|r| r.as_ref().is_err_and(|e| e.is_login_required()))
        .count() as u64;
    (ok, login, results.len() as u64 - ok - login)
}

fn worker() {
    let env = |k: &str| std::env::var(k).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = PgStore::connect(&pg_url()).await.unwrap();
        let users = users(
            &store,
            &env("USERS_NS"),
            &env("USERS_TOKEN_URL"),
            &env("USERS_API"),
        )
        .await;
        let (ok, login, other) = serve_users(
            users,
            &env("USERS_API"),
            env("USERS_FROM").parse().unwrap(),
            env("USERS_TO").parse().unwrap(),
            20,
        )
        .await;
        println!("done ok={ok} login={login} other={other}");
    });
}

fn spawn_worker(ns: &str, emu: &OAuthServer, from: usize, to: usize) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .env("USERS_ROLE", "worker")
        .env("USERS_NS", ns)
        .env("USERS_TOKEN_URL", emu.token_url())
        .env("USERS_API", emu.base_url())
        .env("USERS_FROM", from.to_string())
        .env("USERS_TO", to.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `(ok, login, other)` from a worker's last line; panics if it failed.
fn finish(mut child: Child, limit: Duration) -> (u64, u64, u64) {
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("a worker hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "worker failed: {status}");
    let line = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("done"))
        .expect("a summary");
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|kv| kv.split_once('=').map(|(_, v)| v.parse().unwrap()))
        .collect();
    (v[0], v[1], v[2])
}

async fn count_rows(ns: &str) -> i64 {
    let (c, conn) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c.query_one(
        "SELECT count(*) FROM tower_client_auth_tokens WHERE key LIKE $1",
        &[&format!("{ns}:%")],
    )
    .await
    .unwrap()
    .get(0)
}

fn main() {
    if std::env::var("USERS_ROLE").as_deref() == Ok("worker") {
        return worker();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    rt.block_on(async {
        // Fail, never skip, without PostgreSQL.
        let store = PgStore::connect(&pg_url())
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {} is required: {e}", pg_url()));
        store.migrate().await.unwrap();
        let mut ran = 0;
        // Issue 19: store faults for many users.
        type Scenario = fn(PgStore, String) -> BoxFuture<'static, ()>;
        let faults: [(&str, Scenario); 5] = [
            ("a_logout_is_seen_by_another_process", |store, ns| {
                Box::pin(async move { logout_seen_by_another_process(&store, &ns).await })
            }),
            ("fault_proxy_self_test", |_, _| {
                Box::pin(fault_proxy::self_test())
            }),
            ("fault_failed_write_after_rotation", |store, ns| {
                Box::pin(async move { fault_failed_write_after_rotation(&store, &ns).await })
            }),
            ("fault_sealed_store_scan", |store, ns| {
                Box::pin(async move {
                    users_store::sealed_store_scan(Arc::new(store), &PgRaw, &ns).await
                })
            }),
            ("fault_replayed_entry", |store, ns| {
                Box::pin(
                    async move { users_store::replayed_entry(Arc::new(store), &PgRaw, &ns).await },
                )
            }),
        ];
        for (name, run) in faults {
            if !wanted(name) {
                continue;
            }
            println!("test {name} ...");
            let started = Instant::now();
            let ns = format!("tca-{name}-{}", std::process::id());
            run(store.clone(), ns.clone()).await;
            delete_rows(&ns).await;
            println!(
                "test {name} ... ok ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
            ran += 1;
        }
        let many = [
            "a_burst_for_1000_users_refreshes_each_once",
            "a_restart_keeps_every_user_logged_in",
            "two_processes_refresh_the_same_users_without_reuse",
            "a_rejected_refresh_token_fails_that_user_only",
        ];
        if !many.iter().any(|n| wanted(n)) {
            println!("users_postgres: {ran} scenarios passed");
            return;
        }
        let ns = format!("tca-users-{}", std::process::id());
        let emu = OAuthServer::start("app", "s3cret").await;
        let users = users(&store, &ns, &emu.token_url(), &emu.base_url()).await;

        // 10,000 users logged in: a refresh token each, their access tokens expired.
        let started = Instant::now();
        let rts: Vec<String> = (0..USERS).map(|_| emu.issue_refresh_token()).collect();
        stream::iter(rts.iter().enumerate())
            .map(|(i, rt)| {
                let users = users.clone();
                let token = Token::bearer("expired", Some(Duration::from_millis(1)))
                    .with_refresh_token(rt.clone());
                async move {
                    users
                        .login(&UserKey::new(format!("user-{i}")), token)
                        .await
                        .unwrap()
                }
            })
            .buffer_unordered(64)
            .collect::<Vec<()>>()
            .await;
        println!(
            "seeded {USERS} users in PostgreSQL in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;

        println!("test a_burst_for_1000_users_refreshes_each_once ...");
        let before = emu.refresh_tokens_used();
        // Three concurrent passes over the same 1,000 users.
        let base = emu.base_url();
        let burst: Vec<_> = (0..3)
            .map(|_| serve_users(users.clone(), &base, 0, 1_000, 200))
            .collect();
        for (ok, login, other) in futures_util::future::join_all(burst).await {
            assert_eq!((ok, login, other), (1_000, 0, 0));
        }
        assert_eq!(
            emu.refresh_tokens_used() - before,
            1_000,
            "one refresh per user"
        );
        assert_eq!(emu.refresh_token_reuses(), 0);
        println!("test a_burst_for_1000_users_refreshes_each_once ... ok");

        println!("test a_restart_keeps_every_user_logged_in ...");
        let before = emu.refresh_tokens_used();
        let first = spawn_worker(&ns, &emu, 1_000, 2_000);
        let deadline = Instant::now() + Duration::from_secs(60);
        while emu.refresh_tokens_used() - before < 300 {
            assert!(
                Instant::now() < deadline,
                "the first worker made no progress"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // A restart, as a deploy does it: SIGTERM mid-burst.
        let term = Command::new("kill")
            .args(["-TERM", &first.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success());
        let (ok1, login1, other1) =
            tokio::task::spawn_blocking(move || finish(first, Duration::from_secs(60)))
                .await
                .unwrap();
        assert!(ok1 < 1_000, "stopped in the middle: {ok1}");
        assert_eq!((login1, other1), (0, 0));
        let second = spawn_worker(&ns, &emu, 1_000, 2_000);
        let (ok2, login2, other2) =
            tokio::task::spawn_blocking(move || finish(second, Duration::from_secs(120)))
                .await
                .unwrap();
        assert_eq!(
            (ok2, login2, other2),
            (1_000, 0, 0),
            "every user still logged in"
        );
        assert_eq!(
            emu.refresh_tokens_used() - before,
            1_000,
            "no user refreshed twice"
        );
        assert_eq!(emu.refresh_token_reuses(), 0);
        println!("test a_restart_keeps_every_user_logged_in ... ok (first run served {ok1})");

        println!("test two_processes_refresh_the_same_users_without_reuse ...");
        let before = emu.refresh_tokens_used();
        let a = spawn_worker(&ns, &emu, 2_000, 3_000);
        let b = spawn_worker(&ns, &emu, 2_000, 3_000);
        let (ra, rb) = tokio::task::spawn_blocking(move || {
            (
                finish(a, Duration::from_secs(120)),
                finish(b, Duration::from_secs(120)),
            )
        })
        .await
        .unwrap();
        assert_eq!(ra, (1_000, 0, 0));
        assert_eq!(rb, (1_000, 0, 0));
        assert_eq!(
            emu.refresh_tokens_used() - before,
            1_000,
            "one refresh per user for both"
        );
        assert_eq!(
            emu.refresh_token_reuses(),
            0,
            "a refresh token was sent twice"
        );
        println!("test two_processes_refresh_the_same_users_without_reuse ... ok");

        println!("test a_rejected_refresh_token_fails_that_user_only ...");
        emu.revoke_refresh_token(&rts[3_000]);
        let svc = UsersLayer::new(users.clone()).layer(http());
        let as_user = |i: usize| {
            let mut req = Request::get(format!("{}/api/me", emu.base_url()))
                .body(Full::new(Bytes::new()))
                .unwrap();
            req.extensions_mut()
                .insert(UserKey::new(format!("user-{i}")));
            req
        };
        let err = svc.clone().oneshot(as_user(3_000)).await.unwrap_err();
        let err = err.downcast::<Error>().unwrap();
        assert!(
            err.is_login_required() && err.user_key() == Some("user-3000"),
            "{err}"
        );
        assert_eq!(
            svc.clone().oneshot(as_user(3_001)).await.unwrap().status(),
            200
        );
        // A user who never logged in: "log in again", and nothing written for them.
        let rows_before = count_rows(&ns).await;
        let err = svc.clone().oneshot(as_user(USERS + 7)).await.unwrap_err();
        assert!(err.downcast::<Error>().unwrap().is_login_required());
        assert_eq!(
            count_rows(&ns).await,
            rows_before,
            "a row for an unknown user"
        );
        println!("test a_rejected_refresh_token_fails_that_user_only ... ok");

        let client = {
            let (c, conn) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            c
        };
        let deleted = client
            .execute(
                "DELETE FROM tower_client_auth_tokens WHERE key LIKE $1",
                &[&format!("{ns}:%")],
            )
            .await
            .unwrap();
        println!(
            "users_postgres: {} scenarios passed ({deleted} rows cleaned up)",
            ran + 4
        );
    });
}
