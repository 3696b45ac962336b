//! Token requests per token lifetime for a fleet of 1, 2, 4 and 8 processes
//! sharing one credential through Redis (the goal: 1 for every fleet size),
//! against a counting loopback token endpoint. Each process sends a request
//! every 50 ms for 6 lifetimes of 1 s.
//!
//! `cargo bench --features redis,testing --bench fleet` (Redis on `REDIS_URL`,
//! default `redis://127.0.0.1:6379/`).

#[path = "../tests/fleet_support/mod.rs"]
mod fleet_support;

use std::time::Duration;

use fleet_support::{cleanup, counting_server, namespace, redis_url, worker, Fleet};

fn main() {
    if std::env::var("FLEET_ROLE").as_deref() == Ok("worker") {
        return worker();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let lifetime = Duration::from_secs(1);
    let lifetimes = 6u32;
    let run = lifetime * lifetimes;
    println!("fleet: {lifetimes} lifetimes of {lifetime:?}, a request per process every 50 ms");
    println!(
        "{:>10} {:>15} {:>13} {:>22}",
        "processes", "token requests", "API requests", "token requests/lifetime"
    );
    for n in [1usize, 2, 4, 8] {
        let ns = namespace(&format!("bench-{n}"));
        let (base, c) = rt.block_on(counting_server(lifetime, Duration::from_millis(20)));
        let fleet = Fleet::spawn(
            n,
            &[
                ("FLEET_REDIS", redis_url()),
                ("FLEET_NS", ns.clone()),
                ("FLEET_MODE", "cc".into()),
                ("FLEET_TOKEN_URL", format!("{base}/token")),
                ("FLEET_API", base.clone()),
                ("FLEET_PATH", "/api".into()),
                ("FLEET_RUN_MS", run.as_millis().to_string()),
                ("FLEET_EVERY_MS", "50".into()),
            ],
        );
        let summaries = fleet.wait(run + Duration::from_secs(20));
        let requests: u64 = summaries.iter().map(|s| s.ok).sum();
        let tokens = c.delivered.lock().unwrap().len();
        println!(
            "{n:>10} {tokens:>15} {requests:>13} {:>22.2}",
            tokens as f64 / lifetimes as f64
        );
        cleanup(&redis_url(), &ns);
    }
}
