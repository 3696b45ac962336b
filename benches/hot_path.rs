//! The cost of authenticating one request with a valid credential, side by side
//! with what users compose from stock parts. See BENCHMARKS.md.
//!
//! `cargo bench --bench hot_path`

mod support;

use criterion::{criterion_group, criterion_main, Criterion};

use support::variants::{variant, NAMES};

fn hot_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("hot_path");
    for name in NAMES {
        let mut step = variant(name, &rt);
        g.bench_function(*name, |b| b.iter(&mut step));
    }
    g.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
