//! 10,000 concurrent requests arriving on an empty (expired) cache, and 10,000
//! that all get 401 for the same token: wall time to complete all of them, and
//! the number of token requests made (printed; 1 expected for each storm).
//!
//! `cargo bench --bench refresh_storm`

mod support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::future::BoxFuture;
use http::{Request, Response};
use http_body_util::Full;
use tower::{service_fn, Layer, ServiceExt};
use tower_client_auth::token::{ManagedOptions, Token, TokenSource};
use tower_client_auth::{AuthLayer, Credential, Error, ReplayBody};

use support::request;

const N: usize = 10_000;

/// Issues `tok-1`, `tok-2`, ... after a short await, counting requests.
#[derive(Clone, Default)]
struct Counting(Arc<AtomicU64>);

impl TokenSource for Counting {
    fn fetch(&self, _: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>> {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move {
            tokio::task::yield_now().await;
            Ok(Token::bearer(
                format!("tok-{n}"),
                Some(Duration::from_secs(3600)),
            ))
        })
    }
}

fn credential(source: Counting) -> Credential {
    Credential::builder()
        .origin("https://api.example.com")
        .token_source_with(source, ManagedOptions::default())
        .build()
        .unwrap()
}

type ApiReq = Request<ReplayBody<Full<Bytes>>>;

/// One storm on an empty cache; returns (wall time, token requests).
async fn empty_cache_storm() -> (Duration, u64) {
    let source = Counting::default();
    let svc = AuthLayer::new(credential(source.clone())).layer(service_fn(|_: ApiReq| async {
        Ok::<_, Infallible>(Response::new(()))
    }));
    let start = Instant::now();
    let tasks: Vec<_> = (0..N)
        .map(|_| tokio::spawn(svc.clone().oneshot(request())))
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    (start.elapsed(), source.0.load(Ordering::SeqCst))
}

/// One storm of 401s on `tok-1`: every request is held until all have arrived,
/// then rejected; returns (wall time, token requests after the first).
async fn unauthorized_storm() -> (Duration, u64) {
    let source = Counting::default();
    let cred = credential(source.clone());
    cred.token().await.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(N));
    let api = service_fn(move |req: ApiReq| {
        let barrier = barrier.clone();
        async move {
            if req.headers()["authorization"] == "Bearer tok-1" {
                barrier.wait().await;
                return Ok::<_, Infallible>(Response::builder().status(401).body(()).unwrap());
            }
            Ok(Response::new(()))
        }
    });
    let svc = AuthLayer::new(cred).layer(api);
    let start = Instant::now();
    let tasks: Vec<_> = (0..N)
        .map(|_| tokio::spawn(svc.clone().oneshot(request())))
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().status(), 200);
    }
    (start.elapsed(), source.0.load(Ordering::SeqCst) - 1)
}

fn storms(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("refresh_storm");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));

    let (_, fetched) = rt.block_on(empty_cache_storm());
    println!("refresh_storm/empty_cache_10k: token requests per storm = {fetched}");
    assert_eq!(fetched, 1);
    g.bench_function("empty_cache_10k", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| rt.block_on(empty_cache_storm()).0).sum())
    });

    let (_, refreshed) = rt.block_on(unauthorized_storm());
    println!("refresh_storm/all_401_10k: refreshes per storm = {refreshed}");
    assert_eq!(refreshed, 1);
    g.bench_function("all_401_10k", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(unauthorized_storm()).0)
                .sum()
        })
    });
    g.finish();
}

criterion_group!(benches, storms);
criterion_main!(benches);
