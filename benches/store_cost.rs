//! What a fleet costs its Redis: commands and connections per token lifetime
//! per replica, as replicas (1 to 64, each with its own `RedisStore`, in one
//! process) and credentials (1 to 100 per replica) grow.
//!
//! Each replica asks each of its credentials for a token every 200 ms for five
//! lifetimes of 1 s; tokens come from an in-process source that takes 20 ms.
//! Counted on a private `redis-server` (started here on port 17_399, so that
//! nothing else's commands are counted): `INFO commandstats` for commands,
//! `total_connections_received` for connections opened, `connected_clients`
//! sampled every 20 ms for the peak.
//!
//! `cargo bench --features redis --bench store_cost` (`redis-server` on the
//! PATH); `cargo test --features redis --bench store_cost` runs the same in
//! the test profile (the counts do not depend on the build's speed, little). A number per cell, no timing:
//! instruction-free, it depends on the protocol only (and on scheduling, a
//! little: a waiter may poll once more or less).

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use tower_client_auth::store::{RedisStore, SharedStore};
use tower_client_auth::token::{Token, TokenSource};
use tower_client_auth::{Credential, Error};

const PORT: u16 = 17_399;
const LIFETIME: Duration = Duration::from_secs(1);
const LIFETIMES: u32 = 5;

struct Source(Arc<AtomicU64>);

impl TokenSource for Source {
    fn fetch(&self, _: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>> {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(Token::bearer(format!("tok-{n}"), Some(LIFETIME)))
        })
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `INFO section` through one connection of the bench's own (a new
/// connection per look would count as the fleet's).
fn info(conn: &mut redis::Connection, section: &str) -> String {
    redis::cmd("INFO").arg(section).query(conn).expect("INFO")
}

fn info_number(conn: &mut redis::Connection, section: &str, field: &str) -> u64 {
    info(conn, section)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Commands run so far, all kinds (`INFO commandstats` sums, commands inside
/// scripts included), minus the `INFO` calls of this bench itself.
fn commands(conn: &mut redis::Connection) -> u64 {
    info(conn, "commandstats")
        .lines()
        .filter(|l| !l.starts_with("cmdstat_info:"))
        .filter_map(|l| {
            let calls = l.split("calls=").nth(1)?;
            calls.split(',').next()?.parse::<u64>().ok()
        })
        .sum()
}

fn connect() -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{PORT}/"))
        .and_then(|c| c.get_connection())
        .expect("redis")
}

async fn cell(replicas: usize, credentials: usize, run: u32) -> (f64, f64, u64, u64) {
    let url = format!("redis://127.0.0.1:{PORT}/");
    let issued = Arc::new(AtomicU64::new(0));
    let mut fleet = Vec::new();
    for _ in 0..replicas {
        let store = RedisStore::connect(&url).await.expect("redis");
        let creds: Vec<Credential> = (0..credentials)
            .map(|c| {
                Credential::builder()
                    .origin("https://api.example.com")
                    .token_source(Source(issued.clone()))
                    .shared_store(
                        SharedStore::new(store.clone())
                            .namespace(format!("bench-{run}"))
                            .identity(format!("credential-{c}")),
                    )
                    .build()
                    .expect("credential")
            })
            .collect();
        fleet.push(creds);
    }
    let mut conn = connect();
    let commands_before = commands(&mut conn);
    let connections_before = info_number(&mut conn, "stats", "total_connections_received");
    let peak = Arc::new(AtomicU64::new(0));
    let sampling = {
        let peak = peak.clone();
        tokio::task::spawn_blocking(move || {
            let end = Instant::now() + LIFETIME * LIFETIMES;
            while Instant::now() < end {
                // Less this bench's own connection.
                let now = info_number(&mut conn, "clients", "connected_clients") - 1;
                peak.fetch_max(now, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
            conn
        })
    };
    let end = tokio::time::Instant::now() + LIFETIME * LIFETIMES;
    let tasks: Vec<_> = fleet
        .into_iter()
        .map(|creds| {
            tokio::spawn(async move {
                while tokio::time::Instant::now() < end {
                    for c in &creds {
                        c.token().await.expect("token");
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                creds
            })
        })
        .collect();
    let mut kept = Vec::new();
    for t in tasks {
        kept.push(t.await.expect("replica"));
    }
    let mut conn = sampling.await.expect("sampler");
    let used = commands(&mut conn) - commands_before;
    let opened = info_number(&mut conn, "stats", "total_connections_received") - connections_before;
    drop(kept);
    let per = |n: u64| n as f64 / f64::from(LIFETIMES) / replicas as f64;
    (
        per(used),
        opened as f64 / replicas as f64,
        peak.load(Ordering::Relaxed),
        issued.load(Ordering::Relaxed),
    )
}

fn main() {
    let dir = std::env::temp_dir().join(format!("tca-store-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let server = Server(
        Command::new("redis-server")
            .args(["--port", &PORT.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--maxclients", "20000"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on the PATH"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", PORT)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "store cost: {LIFETIMES} lifetimes of {LIFETIME:?}, each credential asked every 200 ms"
    );
    println!(
        "{:>9} {:>12} {:>26} {:>24} {:>13} {:>7}",
        "replicas",
        "credentials",
        "commands/lifetime/replica",
        "connections opened/replica",
        "peak clients",
        "tokens"
    );
    let mut run = 0;
    for replicas in [1usize, 4, 16, 64] {
        for credentials in [1usize, 10, 100] {
            run += 1;
            let (commands, opened, peak, tokens) = rt.block_on(cell(replicas, credentials, run));
            println!(
                "{replicas:>9} {credentials:>12} {commands:>26.1} {opened:>24.1} {peak:>13} {tokens:>7}"
            );
        }
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
