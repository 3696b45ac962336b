//! A fleet of real processes sharing credentials through a real Redis.
//!
//! `harness = false`: `main` runs the scenarios, and re-executes this same binary
//! as the worker processes (`FLEET_ROLE=worker`), each a separate OS process with
//! its own runtime, credential and lease owner. Needs Redis on
//! `REDIS_URL` (default `redis://127.0.0.1:6379/`) and `redis-server` /
//! `redis-cli` on the PATH (for the cluster and the server stopped mid-run);
//! `.ci/run` starts Redis and runs this with `--features redis,testing`. Every
//! scenario uses its own key prefix and deletes its keys afterwards.
//!
//! `cargo test --features redis,testing --test fleet_redis [scenario]`

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};
use tower_client_auth::oauth2::{AuthorizationUrl, OAuth2Source, TokenClient};
use tower_client_auth::providers::altrata;
use tower_client_auth::testing;
use tower_client_auth::testing::altrata::Altrata;
use tower_client_auth::testing::oauth::OAuthServer;
use tower_client_auth::token::{ManagedOptions, RedisStore, SharedStore, WhenUnavailable};
use tower_client_auth::{AuthLayer, Credential, Error, ReplayBody};

const PROCESSES: usize = 8;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

type Http = Client<hyper_util::client::legacy::connect::HttpConnector, ReplayBody<Full<Bytes>>>;

fn http() -> Http {
    Client::builder(TokioExecutor::new()).build_http()
}

// ---------------------------------------------------------------- the worker

/// One process of the fleet: builds its credential from the environment, sends a
/// request every `FLEET_EVERY_MS` for `FLEET_RUN_MS`, prints a summary line.
fn worker() {
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let ms = |k: &str, d: u64| env(k).parse().unwrap_or(d);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let redis = env("FLEET_REDIS");
        let store = match redis.strip_prefix("cluster:") {
            Some(nodes) => {
                let nodes: Vec<&str> = nodes.split(',').collect();
                RedisStore::cluster(&nodes).await
            }
            None => RedisStore::connect(&redis).await,
        }
        .expect("redis");
        let mut shared = SharedStore::new(store);
        if env("FLEET_ENCRYPT") == "1" {
            shared = shared.encrypt_with(*b"fleet-test-key-32-bytes-long!!!!");
        }
        let shared = shared
            .namespace(env("FLEET_NS"))
            .lease_ttl(Duration::from_millis(ms("FLEET_LEASE_MS", 5_000)))
            .poll_interval(Duration::from_millis(50));
        let api = env("FLEET_API");
        let http = http();
        let cred = match env("FLEET_MODE").as_str() {
            "altrata" => altrata::client_credentials("key", "user", "pass")
                .token_url(env("FLEET_TOKEN_URL"))
                .api_origin(&api)
                .shared_store(shared)
                .build(http.clone())
                .unwrap(),
            mode => {
                let client = TokenClient::builder(env("FLEET_TOKEN_URL"))
                    .client_id("app")
                    .client_secret("s3cret")
                    .build(http.clone())
                    .unwrap();
                let source = if mode == "refresh" {
                    OAuth2Source::from_refresh_token(client, env("FLEET_RT"))
                } else {
                    OAuth2Source::client_credentials(client)
                };
                Credential::builder()
                    .origin(&api)
                    .token_source_with(source, ManagedOptions::new())
                    .shared_store(shared)
                    .build()
                    .unwrap()
            }
        };
        let svc = AuthLayer::new(cred).layer(http);
        let end = Instant::now() + Duration::from_millis(ms("FLEET_RUN_MS", 5_000));
        let every = Duration::from_millis(ms("FLEET_EVERY_MS", 100));
        let path = env("FLEET_PATH");
        let (mut ok, mut unauthorized, mut other, mut errors) = (0, 0, 0, 0);
        println!("ready {}", std::process::id());
        while Instant::now() < end {
            // Altrata's API is GraphQL over POST: the 401 retry re-sends the body.
            let req = if env("FLEET_MODE") == "altrata" {
                Request::post(format!("{api}{path}"))
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from_static(
                        br#"{"query":"{ me { id } }"}"#,
                    )))
                    .unwrap()
            } else {
                Request::get(format!("{api}{path}"))
                    .body(Full::new(Bytes::new()))
                    .unwrap()
            };
            match svc.clone().oneshot(req).await {
                Ok(res) if res.status() == 200 => ok += 1,
                Ok(res) if res.status() == 401 => unauthorized += 1,
                Ok(_) => other += 1,
                Err(e) => {
                    errors += 1;
                    eprintln!("worker {}: {e}", std::process::id());
                }
            }
            tokio::time::sleep(every).await;
        }
        println!("done ok={ok} unauthorized={unauthorized} other={other} errors={errors}");
    });
}

// ---------------------------------------------------------------- the fleet

struct Summary {
    ok: u64,
    unauthorized: u64,
    other: u64,
    errors: u64,
}

struct Fleet {
    children: Vec<Child>,
}

impl Fleet {
    fn spawn(n: usize, env: &[(&str, String)]) -> Fleet {
        let exe = std::env::current_exe().unwrap();
        let children = (0..n)
            .map(|_| {
                let mut cmd = Command::new(&exe);
                cmd.env("FLEET_ROLE", "worker")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit());
                for (k, v) in env {
                    cmd.env(k, v);
                }
                cmd.spawn().unwrap()
            })
            .collect();
        Fleet { children }
    }

    /// Waits for every process (each within `limit`), returns the summaries of
    /// those that finished.
    fn wait(mut self, limit: Duration) -> Vec<Summary> {
        let deadline = Instant::now() + limit;
        let mut out = Vec::new();
        for child in &mut self.children {
            loop {
                match child.try_wait().unwrap() {
                    Some(status) => {
                        let stdout = child.stdout.take().unwrap();
                        let last = BufReader::new(stdout)
                            .lines()
                            .map_while(Result::ok)
                            .filter(|l| l.starts_with("done"))
                            .last();
                        if let (true, Some(line)) = (status.success(), last) {
                            out.push(parse(&line));
                        }
                        break;
                    }
                    None if Instant::now() > deadline => {
                        let _ = child.kill();
                        panic!("a fleet process hung");
                    }
                    None => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        out
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn parse(line: &str) -> Summary {
    let v: HashMap<&str, u64> = line
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k, v.parse().unwrap()))
        .collect();
    Summary {
        ok: v["ok"],
        unauthorized: v["unauthorized"],
        other: v["other"],
        errors: v["errors"],
    }
}

/// Deletes a scenario's keys.
fn cleanup(url: &str, ns: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{ns}:*"))
        .query(&mut c)
        .unwrap();
    for k in keys {
        let _: () = redis::cmd("DEL").arg(k).query(&mut c).unwrap();
    }
}

fn namespace(scenario: &str) -> String {
    format!("tca-test-{scenario}-{}", std::process::id())
}

// ---------------------------------------------------------------- the servers

/// A token endpoint that counts the tokens it delivers (a request whose client
/// went away before the answer is not delivered) and an API that accepts only
/// the latest token, unexpired.
#[derive(Clone, Default)]
struct Counting {
    delivered: Arc<Mutex<Vec<Instant>>>,
    latest: Arc<Mutex<Option<(String, Instant)>>>,
    rejected: Arc<Mutex<u64>>,
}

async fn counting_server(lifetime: Duration, delay: Duration) -> (String, Counting) {
    let c = Counting::default();
    let state = c.clone();
    let addr = testing::serve(move |req| {
        let c = state.clone();
        async move {
            if req.uri().path() == "/token" {
                tokio::time::sleep(delay).await;
                let mut delivered = c.delivered.lock().unwrap();
                delivered.push(Instant::now());
                let token = format!("tok-{}", delivered.len());
                *c.latest.lock().unwrap() = Some((token.clone(), Instant::now() + lifetime));
                return json(&format!(
                    r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{}}}"#,
                    lifetime.as_secs_f64()
                ));
            }
            let auth = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let valid = c.latest.lock().unwrap().clone().is_some_and(|(t, until)| {
                auth.as_deref() == Some(&format!("Bearer {t}")) && Instant::now() < until
            });
            if valid {
                json(r#"{"ok":true}"#)
            } else {
                *c.rejected.lock().unwrap() += 1;
                let mut r = json(r#"{"error":"invalid_token"}"#);
                *r.status_mut() = http::StatusCode::UNAUTHORIZED;
                r
            }
        }
    })
    .await
    .detach();
    (format!("http://{addr}"), c)
}

fn json(body: &str) -> http::Response<Full<Bytes>> {
    let mut r = http::Response::new(Full::new(Bytes::from(body.to_owned())));
    r.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// Tokens delivered are one per lifetime: never two closer than 80 % of it.
fn one_per_lifetime(delivered: &[Instant], lifetime: Duration, run: Duration) {
    assert!(!delivered.is_empty());
    for pair in delivered.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= lifetime * 8 / 10,
            "two tokens {gap:?} apart (lifetime {lifetime:?}): {delivered:?}"
        );
    }
    let most = (run.as_secs_f64() / (lifetime.as_secs_f64() * 0.9)).ceil() as usize + 1;
    assert!(
        delivered.len() <= most,
        "{} tokens in {run:?}",
        delivered.len()
    );
}

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
    assert!(data.starts_with(b"x1"), "not sealed");
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
    let scenarios: [(&str, Scenario); 6] = [
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
