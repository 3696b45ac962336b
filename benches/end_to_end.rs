//! hyper-util client -> real hyper server on loopback, with and without the
//! layer (managed token, cached, 401 retry on): requests per second.
//!
//! `cargo bench --bench end_to_end`

mod support;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::future::BoxFuture;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tower::{Layer, Service, ServiceExt};
use tower_client_auth::token::{ManagedOptions, Token, TokenSource};
use tower_client_auth::{AuthLayer, Credential, Error, ReplayBody};

const BATCH: u64 = 400;
const CONCURRENCY: u64 = 16;

struct Fixed;

impl TokenSource for Fixed {
    fn fetch(&self, _: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>> {
        Box::pin(async { Ok(Token::bearer("e2e-token", Some(Duration::from_secs(3600)))) })
    }
}

async fn server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let ok = req.headers().get("authorization").is_some();
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(if ok {
                        b"ok"
                    } else {
                        b"anonymous"
                    }))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

async fn batch<S>(svc: S, base: &str) -> Duration
where
    S: Service<Request<Full<Bytes>>, Response = Response<Incoming>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    let start = Instant::now();
    let per = BATCH / CONCURRENCY;
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let mut svc = svc.clone();
            let uri = format!("{base}/v1/items?limit=10");
            tokio::spawn(async move {
                for _ in 0..per {
                    let req = Request::get(&uri)
                        .header("accept", "application/json")
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    let res = svc.ready().await.unwrap().call(req).await.unwrap();
                    res.into_body().collect().await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

fn end_to_end(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let base = rt.block_on(server());
    let bare: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let inner: Client<_, ReplayBody<Full<Bytes>>> =
        Client::builder(TokioExecutor::new()).build_http();
    let cred = Credential::builder()
        .origin(&base)
        .token_source_with(Fixed, ManagedOptions::default())
        .build()
        .unwrap();
    rt.block_on(cred.token()).unwrap();
    let layered = AuthLayer::new(cred.clone()).layer(inner.clone());
    let layered_no_retry = AuthLayer::new(cred).without_retry().layer(bare.clone());

    // Paired measurement: batches with and without the layer alternate, so drift
    // on a shared machine hits both alike; the median of per-pair ratios is printed.
    fn paired<S, T>(
        rt: &tokio::runtime::Runtime,
        with: &S,
        without: &T,
        base: &str,
    ) -> (f64, f64, f64)
    where
        S: Service<Request<Full<Bytes>>, Response = Response<Incoming>> + Clone + Send + 'static,
        S::Future: Send,
        S::Error: std::fmt::Debug,
        T: Service<Request<Full<Bytes>>, Response = Response<Incoming>> + Clone + Send + 'static,
        T::Future: Send,
        T::Error: std::fmt::Debug,
    {
        let mut ratios: Vec<f64> = (0..200)
            .map(|i| {
                let (w, wo) = if i % 2 == 0 {
                    let w = rt.block_on(batch(with.clone(), base));
                    (w, rt.block_on(batch(without.clone(), base)))
                } else {
                    let wo = rt.block_on(batch(without.clone(), base));
                    (rt.block_on(batch(with.clone(), base)), wo)
                };
                wo.as_secs_f64() / w.as_secs_f64()
            })
            .collect();
        ratios.sort_by(f64::total_cmp);
        (ratios[50], ratios[100], ratios[150])
    }
    let (p25, p50, p75) = paired(&rt, &layered, &bare, &base);
    println!("end_to_end/paired (retry on): throughput with layer / without, median of 200 alternating pairs = {p50:.3} (p25 {p25:.3}, p75 {p75:.3})");
    let (p25, p50, p75) = paired(&rt, &layered_no_retry, &bare, &base);
    println!("end_to_end/paired (retry off): throughput with layer / without, median of 200 alternating pairs = {p50:.3} (p25 {p25:.3}, p75 {p75:.3})");
    // The cost of sending a header at all, for reference: tower-http's static one.
    let add_auth = tower_http::auth::AddAuthorizationLayer::bearer("e2e-token").layer(bare.clone());
    let (p25, p50, p75) = paired(&rt, &add_auth, &bare, &base);
    println!("end_to_end/paired (tower-http AddAuthorization): throughput with / without, median of 200 alternating pairs = {p50:.3} (p25 {p25:.3}, p75 {p75:.3})");
    // What a 401 retry costs with stock parts: tower's RetryLayer cloning each request.
    let retry = tower::retry::RetryLayer::new(support::variants::RetryOnce401::default())
        .layer(add_auth.clone());
    let (p25, p50, p75) = paired(&rt, &retry, &bare, &base);
    println!("end_to_end/paired (tower RetryLayer + AddAuthorization): throughput with / without, median of 200 alternating pairs = {p50:.3} (p25 {p25:.3}, p75 {p75:.3})");
    let (p25, p50, p75) = paired(&rt, &layered, &add_auth, &base);
    println!("end_to_end/paired (retry on vs AddAuthorization): throughput ours / tower-http, median of 200 alternating pairs = {p50:.3} (p25 {p25:.3}, p75 {p75:.3})");

    let mut g = c.benchmark_group("end_to_end");
    g.throughput(Throughput::Elements(BATCH));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("without_layer", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(batch(bare.clone(), &base)))
                .sum()
        })
    });
    g.bench_function("with_layer", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(batch(layered.clone(), &base)))
                .sum()
        })
    });
    g.finish();
}

criterion_group!(benches, end_to_end);
criterion_main!(benches);
