//! Runs one hot-path variant N times, for counting instructions under callgrind:
//! a repeatable cross-check of the criterion timings on a noisy machine.
//!
//! `bash benches/icount.sh` runs every variant and prints instructions per request.
//! By hand: `ICOUNT_VARIANT=bare ICOUNT_N=20000 valgrind --tool=callgrind <this bench binary>`.

mod support;

use support::variants::{variant, NAMES};

fn main() {
    // `cargo bench` passes `--bench`; with no variant set, just check they run.
    let n: usize = std::env::var("ICOUNT_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let names: Vec<String> = match std::env::var("ICOUNT_VARIANT") {
        Ok(v) => vec![v],
        Err(_) => NAMES.iter().map(|s| s.to_string()).collect(),
    };
    if std::env::var("ICOUNT_SIZES").is_ok() {
        sizes();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for name in names {
        let mut step = variant(&name, &rt);
        for _ in 0..n {
            step();
        }
    }
}

#[allow(dead_code)]
fn sizes() {
    use bytes::Bytes;
    use http::Request;
    use http_body_util::Full;
    type F = tower_client_auth::ResponseFuture<support::Noop, Full<Bytes>>;
    type G = tower_client_auth::ResponseFuture<
        support::Noop,
        Full<Bytes>,
        tower_client_auth::layer::NoRetry,
    >;
    type Inner = <support::Noop as tower::Service<Request<Full<Bytes>>>>::Future;
    eprintln!("ResponseFuture (retry): {} bytes", std::mem::size_of::<F>());
    eprintln!(
        "ResponseFuture (no retry): {} bytes",
        std::mem::size_of::<G>()
    );
    eprintln!("inner future: {} bytes", std::mem::size_of::<Inner>());
    eprintln!("Request<()>: {} bytes", std::mem::size_of::<Request<()>>());
    eprintln!(
        "Request<ReplayBody<Full>>: {} bytes",
        std::mem::size_of::<Request<tower_client_auth::ReplayBody<Full<Bytes>>>>()
    );
}
