//! Shared by tests/fleet_redis.rs and benches/fleet.rs: the worker process of a
//! fleet (the test or bench binary re-executed with `FLEET_ROLE=worker`), the
//! parent's handle on its processes, and a counting token endpoint.
#![allow(dead_code)]

pub mod fault_proxy;

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
use tower_client_auth::oauth2::{ClientAuth, OAuth2Source, ParamStyle, TokenClient};
use tower_client_auth::providers::{algoreg, altrata};
use tower_client_auth::store::{RedisStore, SharedStore};
use tower_client_auth::testing;
use tower_client_auth::token::ManagedOptions;
use tower_client_auth::{AuthLayer, Credential, ReplayBody};

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

/// The address in [`redis_url`], for a proxy in front of it.
pub fn redis_addr() -> std::net::SocketAddr {
    use std::net::ToSocketAddrs;
    let url = redis_url();
    let rest = url.strip_prefix("redis://").unwrap_or(&url);
    let host = rest.split('/').next().unwrap();
    let host = host.rsplit('@').next().unwrap();
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:6379")
    };
    host.to_socket_addrs().unwrap().next().unwrap()
}

pub type Http = Client<hyper_util::client::legacy::connect::HttpConnector, ReplayBody<Full<Bytes>>>;

pub fn http() -> Http {
    Client::builder(TokioExecutor::new()).build_http()
}

// ---------------------------------------------------------------- the worker

/// One process of the fleet: builds its credential from the environment, sends a
/// request every `FLEET_EVERY_MS` for `FLEET_RUN_MS`, prints a summary line.
pub fn worker() {
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
            // Algoreg's preset (JSON password grant, long cool-down after a
            // rejected password), with the fleet's store.
            "algoreg" => {
                let client = TokenClient::builder(format!("{api}/api/v1/token"))
                    .client_auth(ClientAuth::None)
                    .params_in(ParamStyle::Json)
                    .build(http.clone())
                    .unwrap();
                let options = ManagedOptions::new()
                    .cooldown(Duration::from_secs(15 * 60), Duration::from_secs(6 * 3600))
                    .default_lifetime(Some(algoreg::TOKEN_LIFETIME));
                let source =
                    OAuth2Source::password(client, env("FLEET_USER"), env("FLEET_PASSWORD"));
                Credential::builder()
                    .origin(&api)
                    .token_source_with(source, options)
                    .shared_store(shared)
                    .build()
                    .unwrap()
            }
            mode => {
                let client = TokenClient::builder(env("FLEET_TOKEN_URL"))
                    .client_id("app")
                    .client_secret("s3cret")
                    .build(http.clone())
                    .unwrap();
                let (source, shared) = if mode == "refresh" {
                    // One user's refresh token: the store key must say whose.
                    let source = OAuth2Source::from_refresh_token(client, env("FLEET_RT"));
                    (source, shared.identity("fleet-test-user"))
                } else {
                    (OAuth2Source::client_credentials(client), shared)
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
                    // The first few: a scenario that expects errors stays readable.
                    if errors <= 3 {
                        eprintln!("worker {}: {e}", std::process::id());
                    }
                }
            }
            tokio::time::sleep(every).await;
        }
        println!("done ok={ok} unauthorized={unauthorized} other={other} errors={errors}");
    });
}

// ---------------------------------------------------------------- the fleet

pub struct Summary {
    pub ok: u64,
    pub unauthorized: u64,
    pub other: u64,
    pub errors: u64,
}

pub struct Fleet {
    pub children: Vec<Child>,
}

impl Fleet {
    pub fn spawn(n: usize, env: &[(&str, String)]) -> Fleet {
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
    pub fn wait(mut self, limit: Duration) -> Vec<Summary> {
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

pub fn parse(line: &str) -> Summary {
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
pub fn cleanup(url: &str, ns: &str) {
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

pub fn namespace(scenario: &str) -> String {
    format!("tca-test-{scenario}-{}", std::process::id())
}

// ---------------------------------------------------------------- the servers

/// A token endpoint that counts the tokens it delivers (a request whose client
/// went away before the answer is not delivered) and an API that accepts only
/// the latest token, unexpired.
#[derive(Clone, Default)]
pub struct Counting {
    pub delivered: Arc<Mutex<Vec<Instant>>>,
    latest: Arc<Mutex<Option<(String, Instant)>>>,
    rejected: Arc<Mutex<u64>>,
}

pub async fn counting_server(lifetime: Duration, delay: Duration) -> (String, Counting) {
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

pub fn json(body: &str) -> http::Response<Full<Bytes>> {
    let mut r = http::Response::new(Full::new(Bytes::from(body.to_owned())));
    r.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// Tokens delivered are one per lifetime: never two closer than 80 % of it.
pub fn one_per_lifetime(delivered: &[Instant], lifetime: Duration, run: Duration) {
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
