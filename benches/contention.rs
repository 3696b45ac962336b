//! The cached path called from many tasks at once on a multi-thread runtime
//! (1 and 2 worker threads): the layer must scale, not serialise on a lock.
//!
//! `cargo bench --bench contention`

mod support;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tower::{Layer, Service, ServiceExt};
use tower_client_auth::AuthLayer;
use tower_http::auth::AddAuthorizationLayer;

use support::{request, warm_credential, NaiveAuth, Noop};

const TASKS: usize = 8;
const PER_BATCH: u64 = 8_000;

/// Sends `n` requests split over `TASKS` tasks; returns the wall time.
async fn run<S>(svc: S, n: u64) -> Duration
where
    S: Service<http::Request<http_body_util::Full<bytes::Bytes>>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    let per_task = n.div_ceil(TASKS as u64);
    let start = Instant::now();
    let handles: Vec<_> = (0..TASKS)
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

fn contention(c: &mut Criterion) {
    let mut g = c.benchmark_group("contention");
    g.throughput(Throughput::Elements(PER_BATCH));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(4));
    for workers in [1usize, 2] {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .unwrap();
        let token = "eyJhbGciOiJSUzI1NiJ9.bench-access-token.c2lnbmF0dXJl";
        let add_auth = AddAuthorizationLayer::bearer(token)
            .as_sensitive(true)
            .layer(Noop);
        let cached = AuthLayer::new(warm_credential(&rt, false)).layer(Noop);
        let cached_no_retry = AuthLayer::new(warm_credential(&rt, false))
            .without_retry()
            .layer(Noop);
        let naive = NaiveAuth::new(Noop);

        let id = |name: &str| BenchmarkId::new(name, format!("{workers}_threads"));
        g.bench_function(id("bare"), |b| {
            b.iter_custom(|iters| rt.block_on(run(Noop, iters * PER_BATCH)))
        });
        g.bench_function(id("tower_http_add_authorization"), |b| {
            b.iter_custom(|iters| rt.block_on(run(add_auth.clone(), iters * PER_BATCH)))
        });
        g.bench_function(id("oauth2_cached"), |b| {
            b.iter_custom(|iters| rt.block_on(run(cached.clone(), iters * PER_BATCH)))
        });
        g.bench_function(id("oauth2_cached_no_retry"), |b| {
            b.iter_custom(|iters| rt.block_on(run(cached_no_retry.clone(), iters * PER_BATCH)))
        });
        g.bench_function(id("naive_rwlock"), |b| {
            b.iter_custom(|iters| rt.block_on(run(naive.clone(), iters * PER_BATCH)))
        });
    }
    g.finish();
}

criterion_group!(benches, contention);
criterion_main!(benches);
