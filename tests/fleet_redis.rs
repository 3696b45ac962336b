//! A fleet of real processes sharing credentials through a real Redis.
//!
//! `harness = false`: `main` runs the scenarios, and re-executes this same binary
//! as the worker processes (`FLEET_ROLE=worker`), each a separate OS process with
//! its own runtime, credential and lease owner. Needs Redis on
//! `REDIS_URL` (default `redis://127.0.0.1:6379/`) and `redis-server` /
//! `redis-cli` on the PATH (for the cluster and the server stopped mid-run);
//! `.ci/run` starts Redis and runs this with `--all-features`. Every
//! scenario uses its own key prefix and deletes its keys afterwards.
//!
//! `cargo test --features redis,testing --test fleet_redis [scenario]`
//!
//! The `fault_*` scenarios (issue 19) put tests/fleet_support/fault_proxy.rs
//! between the crate and Redis and break the store on purpose: they live in
//! tests/fleet_support/store_faults.rs, and those about many users in
//! tests/fleet_support/users_store.rs (shared with tests/users_postgres.rs).

mod fleet_support;
#[path = "fleet_support/store_faults.rs"]
mod store_faults;
#[path = "fleet_support/users_store.rs"]
mod users_store;

use fleet_support::fault_proxy;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tower::{Layer, ServiceExt};
use tower_client_auth::oauth2::{AuthorizationUrl, OAuth2Source, TokenClient};
use tower_client_auth::providers::altrata;
use tower_client_auth::store::{RedisStore, SharedStore, WhenUnavailable};
use tower_client_auth::testing::altrata::Altrata;
use tower_client_auth::testing::oauth::OAuthServer;
use tower_client_auth::{AuthLayer, Credential, Error};

use fleet_support::{
    cleanup, counting_server, http, namespace, one_per_lifetime, redis_url, worker, Fleet, Http,
};

const PROCESSES: usize = 8;

// ---------------------------------------------------------------- scenarios

async fn one_token_per_lifetime_on(redis: &str, ns: &str) {
    let lifetime = Duration::from_secs(2);
    let run = Duration::from_secs(7);
    let (base, c) = counting_server(lifetime, Duration::from_millis(30)).await;
    let fleet = Fleet::spawn(
        PROCESSES,
        &[
            ("FLEET_REDIS", redis.to_owned()),
            ("FLEET_NS", ns.to_owned()),
            ("FLEET_MODE", "cc".into()),
            ("FLEET_TOKEN_URL", format!("{base}/token")),
            ("FLEET_API", base.clone()),
            ("FLEET_PATH", "/api".into()),
            ("FLEET_RUN_MS", run.as_millis().to_string()),
        ],
    );
    let summaries = tokio::task::spawn_blocking(move || fleet.wait(run + Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(summaries.len(), PROCESSES, "every process finished cleanly");
    for s in &summaries {
        assert!(s.ok > 20, "a process made little progress");
        assert_eq!((s.unauthorized, s.other, s.errors), (0, 0, 0));
    }
    let delivered = c.delivered.lock().unwrap().clone();
    println!(
        "  {PROCESSES} processes, {run:?} of {lifetime:?} tokens: {} token requests, {} API requests",
        delivered.len(),
        summaries.iter().map(|s| s.ok).sum::<u64>()
    );
    one_per_lifetime(&delivered, lifetime, run);
}

async fn one_token_per_lifetime() {
    let ns = namespace("lifetime");
    one_token_per_lifetime_on(&redis_url(), &ns).await;
    cleanup(&redis_url(), &ns);
}

async fn altrata_401_storm() {
    let ns = namespace("altrata");
    let emu = Altrata::start("key", "user", "pass").await;
    let run = Duration::from_secs(5);
    let fleet = Fleet::spawn(
        PROCESSES,
        &[
            ("FLEET_REDIS", redis_url()),
            ("FLEET_NS", ns.clone()),
            ("FLEET_MODE", "altrata".into()),
            ("FLEET_TOKEN_URL", emu.token_url()),
            ("FLEET_API", emu.api_base()),
            (
                "FLEET_PATH",
                emu.graphql_url()
                    .trim_start_matches(&emu.api_base())
                    .to_owned(),
            ),
            ("FLEET_RUN_MS", run.as_millis().to_string()),
        ],
    );
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(emu.token_requests(), 1, "one token for the whole fleet");
    // Someone outside the fleet asks for a token: the fleet's dies.
    let outside = altrata::client_credentials("key", "user", "pass")
        .token_url(emu.token_url())
        .api_origin(emu.api_base())
        .build(http())
        .unwrap();
    outside.token().await.unwrap();
    let summaries = tokio::task::spawn_blocking(move || fleet.wait(run + Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(summaries.len(), PROCESSES);
    for s in &summaries {
        assert_eq!(s.unauthorized, 0, "a 401 reached a caller");
        assert_eq!((s.other, s.errors), (0, 0));
    }
    println!(
        "  token requests: {} (fleet, outside, one replacement); API 401s absorbed: {}",
        emu.token_requests(),
        emu.counts().api_rejections
    );
    assert_eq!(emu.token_requests(), 3);
    assert!(emu.counts().api_rejections >= 1);
    cleanup(&redis_url(), &ns);
}

async fn rotation_without_reuse() {
    let ns = namespace("rotation");
    let emu = OAuthServer::start("app", "s3cret").await;
    emu.set_token_lifetime(Duration::from_secs(2));
    // One login, then the fleet lives on its refresh token.
    let client = TokenClient::builder(emu.token_url())
        .client_id("app")
        .client_secret("s3cret")
        .build(http())
        .unwrap();
    let request = AuthorizationUrl::new(emu.authorize_url(), "app", "http://127.0.0.1/cb")
        .build()
        .unwrap();
    let callback = emu.approve(request.url()).await.unwrap();
    let code = request.verify_callback(&callback).unwrap();
    let first = client
        .exchange_code(code.code, Some(request.redirect_uri()), request.verifier())
        .await
        .unwrap();
    use secrecy::ExposeSecret;
    let rt0 = first.refresh_token().unwrap().expose_secret().to_owned();
    let run = Duration::from_secs(7);
    let fleet = Fleet::spawn(
        PROCESSES,
        &[
            ("FLEET_REDIS", redis_url()),
            ("FLEET_NS", ns.clone()),
            ("FLEET_MODE", "refresh".into()),
            ("FLEET_ENCRYPT", "1".into()),
            ("FLEET_RT", rt0),
            ("FLEET_TOKEN_URL", emu.token_url()),
            ("FLEET_API", emu.base_url()),
            ("FLEET_PATH", "/api/me".into()),
            ("FLEET_RUN_MS", run.as_millis().to_string()),
        ],
    );
    let summaries = tokio::task::spawn_blocking(move || fleet.wait(run + Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(summaries.len(), PROCESSES);
    for s in &summaries {
        assert_eq!((s.unauthorized, s.other, s.errors), (0, 0, 0));
    }
    println!(
        "  refresh tokens used: {}, reused: {}",
        emu.refresh_tokens_used(),
        emu.refresh_token_reuses()
    );
    assert_eq!(
        emu.refresh_token_reuses(),
        0,
        "a refresh token was sent twice"
    );
    // Stored encrypted: neither token appears in Redis.
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{ns}:*:token"))
        .query(&mut conn)
        .unwrap();
    assert_eq!(keys.len(), 1);
    let data: Vec<u8> = redis::cmd("HGET")
        .arg(&keys[0])
        .arg("d")
        .query(&mut conn)
        .unwrap();
    assert!(data.starts_with(b"x2"), "not sealed");
    assert!(!String::from_utf8_lossy(&data).contains("refresh"));
    assert!(
        emu.refresh_tokens_used() >= 3,
        "the fleet refreshed over several lifetimes"
    );
    assert!(emu.refresh_tokens_used() <= 6);
    cleanup(&redis_url(), &ns);
}

async fn kill_the_lease_holder() {
    let ns = namespace("kill");
    let lifetime = Duration::from_secs(4);
    let run = Duration::from_secs(10);
    // A slow token endpoint: the holder is mid-request when it dies.
    let (base, c) = counting_server(lifetime, Duration::from_millis(1_500)).await;
    let mut fleet = Fleet::spawn(
        PROCESSES,
        &[
            ("FLEET_REDIS", redis_url()),
            ("FLEET_NS", ns.clone()),
            ("FLEET_MODE", "cc".into()),
            ("FLEET_TOKEN_URL", format!("{base}/token")),
            ("FLEET_API", base.clone()),
            ("FLEET_PATH", "/api".into()),
            ("FLEET_RUN_MS", run.as_millis().to_string()),
            ("FLEET_LEASE_MS", "3000".into()),
        ],
    );
    // Find the lease holder (its owner token starts with its pid) and kill -9 it.
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let owner: String = loop {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{ns}:*:lease"))
            .query(&mut conn)
            .unwrap();
        if let Some(k) = keys.first() {
            let owner: Option<String> = redis::cmd("GET").arg(k).query(&mut conn).unwrap();
            if let Some(o) = owner {
                break o;
            }
        }
        assert!(Instant::now() < deadline, "nobody took the lease");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let pid: u32 = owner.split('-').next().unwrap().parse().unwrap();
    let victim = fleet
        .children
        .iter()
        .position(|c| c.id() == pid)
        .expect("holder is ours");
    let mut holder = fleet.children.remove(victim);
    holder.kill().unwrap(); // SIGKILL
    holder.wait().unwrap();
    let killed_at = Instant::now();
    let summaries = tokio::task::spawn_blocking(move || fleet.wait(run + Duration::from_secs(25)))
        .await
        .unwrap();
    assert_eq!(summaries.len(), PROCESSES - 1, "no survivor hung or failed");
    for s in &summaries {
        assert!(s.ok > 0);
        assert_eq!((s.unauthorized, s.other, s.errors), (0, 0, 0));
    }
    let delivered = c.delivered.lock().unwrap().clone();
    println!(
        "  holder {pid} killed; next token after {:?}; {} tokens delivered",
        delivered
            .first()
            .map(|t| t.saturating_duration_since(killed_at)),
        delivered.len()
    );
    one_per_lifetime(&delivered, lifetime, run);
    cleanup(&redis_url(), &ns);
}

/// A `redis-server` child, stopped when dropped (also when a scenario panics).
struct RedisServer(Child);

impl RedisServer {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts `redis-server` on `port` as a child (no persistence).
fn redis_server(port: u16, dir: &std::path::Path, extra: &[&str]) -> RedisServer {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server on the PATH");
    let child = RedisServer(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server on {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

async fn redis_cluster() {
    let dir = std::env::temp_dir().join(format!("tca-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ports = [17_301u16, 17_302, 17_303];
    let nodes: Vec<RedisServer> = ports
        .iter()
        .map(|p| {
            let conf = dir.join(format!("nodes-{p}.conf"));
            redis_server(
                *p,
                &dir,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    conf.to_str().unwrap(),
                ],
            )
        })
        .collect();
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let status = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("redis-cli on the PATH");
    assert!(status.success(), "redis-cli --cluster create failed");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = Command::new("redis-cli")
            .args(["-p", &ports[0].to_string(), "cluster", "info"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
            break;
        }
        assert!(Instant::now() < deadline, "the cluster did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let spec = format!(
        "cluster:{}",
        addrs
            .iter()
            .map(|a| format!("redis://{a}/"))
            .collect::<Vec<_>>()
            .join(",")
    );
    one_token_per_lifetime_on(&spec, &namespace("cluster")).await;
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
}

async fn redis_stopped_mid_run() {
    let dir = std::env::temp_dir().join(format!("tca-stop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = 17_391u16;
    let url = format!("redis://127.0.0.1:{port}/");
    let mut server = redis_server(port, &dir, &[]);
    let lifetime = Duration::from_secs(2);
    let (base, c) = counting_server(lifetime, Duration::ZERO).await;
    let store = RedisStore::connect(&url).await.unwrap();
    let build = |policy| {
        let client = TokenClient::builder(format!("{base}/token"))
            .client_id("app")
            .client_secret("s3cret")
            .build(http())
            .unwrap();
        let cred = Credential::builder()
            .origin(&base)
            .token_source(OAuth2Source::client_credentials(client))
            .shared_store(
                SharedStore::new(store.clone())
                    .namespace(namespace("stopped"))
                    .identity(format!("{policy:?}"))
                    .when_unavailable(policy),
            )
            .build()
            .unwrap();
        AuthLayer::new(cred).layer(http())
    };
    let open = build(WhenUnavailable::FetchLocally);
    let closed = build(WhenUnavailable::FailClosed);
    let get = |svc: &tower_client_auth::AuthService<Http>| {
        svc.clone().oneshot(
            Request::get(format!("{base}/api"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
    };
    assert_eq!(get(&open).await.unwrap().status(), 200);
    assert_eq!(get(&closed).await.unwrap().status(), 200);

    // Redis goes away; the tokens expire.
    server.stop();
    tokio::time::sleep(lifetime + Duration::from_millis(200)).await;
    assert_eq!(get(&open).await.unwrap().status(), 200, "fetches locally");
    let err = get(&closed).await.unwrap_err().downcast::<Error>().unwrap();
    assert!(err.is_store_unavailable(), "{err}");
    // Each level of the error says its own part, once.
    let mut chain = vec![err.to_string()];
    let mut next = std::error::Error::source(&*err);
    while let Some(e) = next {
        chain.push(e.to_string());
        next = e.source();
    }
    for (i, level) in chain.iter().enumerate() {
        for later in &chain[i + 1..] {
            assert!(!later.contains(level.as_str()), "printed twice: {chain:?}");
        }
    }
    println!("  the error, down its chain: {}", chain.join(": "));
    let before = c.delivered.lock().unwrap().len();

    // Redis comes back on the same port: the fail-closed credential recovers.
    let server = redis_server(port, &dir, &[]);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match get(&closed).await {
            Ok(res) if res.status() == 200 => break,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "did not recover: {:?}",
                    other.map(|r| r.status())
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    assert_eq!(get(&open).await.unwrap().status(), 200);
    assert!(c.delivered.lock().unwrap().len() > before);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The Redis store also serves as a per-user store: 200 users, a burst of five
/// requests each, one refresh per user, nothing reused.
async fn users_on_redis() {
    use tower_client_auth::token::Token;
    use tower_client_auth::users::{UserKey, Users, UsersLayer};
    let ns = namespace("users");
    let emu = OAuthServer::start("app", "s3cret").await;
    let client = TokenClient::builder(emu.token_url())
        .client_id("app")
        .client_secret("s3cret")
        .build(http())
        .unwrap();
    let store = RedisStore::connect(&redis_url()).await.unwrap();
    let users = Users::builder(emu.base_url(), client)
        .allow_http()
        .store(SharedStore::new(store).namespace(&ns))
        .build()
        .unwrap();
    for i in 0..200 {
        let token = Token::bearer("expired", Some(Duration::from_millis(1)))
            .with_refresh_token(emu.issue_refresh_token());
        users
            .login(&UserKey::new(format!("u{i}")), token)
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let api = UsersLayer::new(users).layer(http());
    let burst = (0..1_000).map(|i| {
        let mut req = Request::get(format!("{}/api/me", emu.base_url()))
            .body(Full::new(Bytes::new()))
            .unwrap();
        req.extensions_mut()
            .insert(UserKey::new(format!("u{}", i % 200)));
        api.clone().oneshot(req)
    });
    for r in futures_util::future::join_all(burst).await {
        assert_eq!(r.unwrap().status(), 200);
    }
    assert_eq!(emu.refresh_tokens_used(), 200);
    assert_eq!(emu.refresh_token_reuses(), 0);
    cleanup(&redis_url(), &ns);
}

fn main() {
    if std::env::var("FLEET_ROLE").as_deref() == Ok("worker") {
        return worker();
    }
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Fail, never skip, when Redis is not there.
    rt.block_on(async {
        RedisStore::connect(&redis_url())
            .await
            .unwrap_or_else(|e| panic!("Redis at {} is required: {e}", redis_url()));
    });
    type Scenario = fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
    let scenarios: Vec<(&str, Scenario)> = vec![
        ("one_token_per_lifetime", || {
            Box::pin(one_token_per_lifetime())
        }),
        ("altrata_401_storm", || Box::pin(altrata_401_storm())),
        ("rotation_without_reuse", || {
            Box::pin(rotation_without_reuse())
        }),
        (
            "kill_the_lease_holder",
            || Box::pin(kill_the_lease_holder()),
        ),
        ("redis_cluster", || Box::pin(redis_cluster())),
        (
            "redis_stopped_mid_run",
            || Box::pin(redis_stopped_mid_run()),
        ),
        ("users_on_redis", || Box::pin(users_on_redis())),
        // Issue 19: store faults, through the fault-injecting proxy.
        ("fault_proxy_self_test", || {
            Box::pin(store_faults::fault_proxy_self_test())
        }),
        ("fault_failed_write_after_rotation", || {
            Box::pin(store_faults::failed_write_after_rotation())
        }),
        ("fault_stale_lease_holder_altrata", || {
            Box::pin(store_faults::stale_lease_holder_altrata())
        }),
        ("fault_stalled_redis", || {
            Box::pin(store_faults::stalled_redis())
        }),
        ("fault_connections_constant_over_waits", || {
            Box::pin(store_faults::connections_constant_over_waits())
        }),
        ("fault_empty_restart", || {
            Box::pin(store_faults::empty_restart())
        }),
        ("fault_wrong_password_fleet", || {
            Box::pin(store_faults::wrong_password_fleet())
        }),
        ("fault_outage_with_rotation", || {
            Box::pin(store_faults::outage_with_rotation())
        }),
        ("fault_sealed_store_scan", || {
            Box::pin(store_faults::sealed_store_scan())
        }),
        ("fault_replayed_entry", || {
            Box::pin(store_faults::replayed_entry())
        }),
    ];
    let mut ran = 0;
    for (name, run) in scenarios {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        println!("test {name} ...");
        let started = Instant::now();
        rt.block_on(run());
        println!(
            "test {name} ... ok ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
        ran += 1;
    }
    println!("fleet_redis: {ran} scenarios passed");
}
