//! The cached path called from many tasks at once on a multi-thread runtime: the
//! layer must scale with the cores, not serialise on a lock or a shared refcount.
//!
//! ```sh
//! cargo bench --bench contention                          # 1 and 2 worker threads
//! CONTENTION_WORKERS=1,4,8,16 cargo bench --bench contention   # on a bigger machine
//! ```
//!
//! Each variant sends `CONTENTION_REQUESTS` (default 400,000) requests from
//! 4 tasks per worker thread, each task with its own clone of the service, through
//! a no-op inner service; a run's throughput is requests / wall time, and the
//! figure printed is the median of 5 runs (after one warm-up run), in Mreq/s.

mod support;

use std::time::{Duration, Instant};

use tower::retry::RetryLayer;
use tower::{Layer, Service, ServiceExt};
use tower_client_auth::AuthLayer;
use tower_http::auth::AddAuthorizationLayer;

use support::variants::{RetryOnce401, TOKEN};
use support::{request, warm_credential, NaiveAuth, Noop, PerCloneAuth};

const RUNS: usize = 5;

/// Sends `n` requests split over `tasks` tasks; returns the wall time.
async fn run<S>(svc: S, n: u64, tasks: usize) -> Duration
where
    S: Service<http::Request<http_body_util::Full<bytes::Bytes>>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    let per_task = n.div_ceil(tasks as u64);
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let mut svc = svc.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    let svc = svc.ready().await.unwrap();
                    std::hint::black_box(svc.call(request()).await.unwrap());
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    start.elapsed()
}

fn median_mreqs<S>(rt: &tokio::runtime::Runtime, svc: S, n: u64, tasks: usize) -> f64
where
    S: Service<http::Request<http_body_util::Full<bytes::Bytes>>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    rt.block_on(run(svc.clone(), n / 4, tasks));
    let mut rates: Vec<f64> = (0..RUNS)
        .map(|_| {
            let t = rt.block_on(run(svc.clone(), n, tasks));
            n as f64 / t.as_secs_f64() / 1e6
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[RUNS / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read from the command line.
    let workers: Vec<usize> = std::env::var("CONTENTION_WORKERS")
        .unwrap_or_else(|_| "1,2".into())
        .split(',')
        .map(|w| {
            w.trim()
                .parse()
                .expect("CONTENTION_WORKERS: numbers, comma-separated")
        })
        .collect();
    let n: u64 = std::env::var("CONTENTION_REQUESTS")
        .ok()
        .map(|v| v.parse().expect("CONTENTION_REQUESTS: a number"))
        .unwrap_or(400_000);
    let names = [
        "bare",
        "tower_http_add_authorization",
        "tower_retry_add_authorization",
        "oauth2_cached (retry on)",
        "oauth2_cached_no_retry",
        "naive_rwlock",
        "per_clone_header (floor)",
    ];
    let mut table = vec![Vec::new(); names.len()];
    for &w in &workers {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(w)
            .enable_all()
            .build()
            .unwrap();
        let tasks = 4 * w;
        let add_auth = AddAuthorizationLayer::bearer(TOKEN)
            .as_sensitive(true)
            .layer(Noop);
        let retry_add_auth = RetryLayer::new(RetryOnce401::default()).layer(add_auth.clone());
        let cached = AuthLayer::new(warm_credential(&rt, false)).layer(Noop);
        let cached_no_retry = AuthLayer::new(warm_credential(&rt, false))
            .without_retry()
            .layer(Noop);
        let figures = [
            median_mreqs(&rt, Noop, n, tasks),
            median_mreqs(&rt, add_auth, n, tasks),
            median_mreqs(&rt, retry_add_auth, n, tasks),
            median_mreqs(&rt, cached, n, tasks),
            median_mreqs(&rt, cached_no_retry, n, tasks),
            median_mreqs(&rt, NaiveAuth::new(Noop), n, tasks),
            median_mreqs(&rt, PerCloneAuth::new(Noop, TOKEN), n, tasks),
        ];
        for (row, f) in table.iter_mut().zip(figures) {
            row.push(f);
        }
    }
    println!(
        "contention: Mreq/s, median of {RUNS} runs of {n} requests, 4 tasks per worker thread"
    );
    print!("{:34}", "variant \\ worker threads");
    for w in &workers {
        print!("{w:>8}");
    }
    println!();
    for (name, row) in names.iter().zip(&table) {
        print!("{name:34}");
        for f in row {
            print!("{f:8.2}");
        }
        println!();
    }
}
