//! The hot-path ratios from one run, robust to drift: every round times one batch
//! of every variant, in a rotating order, so a busy moment on the shared machine
//! hits all variants alike; each ratio is the median over rounds of that round's
//! ratio. Prints a table; see BENCHMARKS.md.
//!
//! `cargo bench --bench hot_path_paired`

mod support;

use std::time::Instant;

use support::variants::{variant, NAMES};

const ROUNDS: usize = 150;
const BATCH: usize = 5_000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut steps: Vec<_> = NAMES.iter().map(|n| variant(n, &rt)).collect();
    // Warm up.
    for step in steps.iter_mut() {
        for _ in 0..BATCH {
            step();
        }
    }
    let n = NAMES.len();
    let mut per_round = vec![vec![0f64; n]; ROUNDS];
    for (round, times) in per_round.iter_mut().enumerate() {
        for k in 0..n {
            let i = (round + k) % n;
            let start = Instant::now();
            for _ in 0..BATCH {
                (steps[i])();
            }
            times[i] = start.elapsed().as_nanos() as f64 / BATCH as f64;
        }
    }
    let idx = |name: &str| NAMES.iter().position(|n| *n == name).unwrap();
    println!("hot_path_paired: {ROUNDS} rounds x {BATCH} requests per variant");
    for (i, name) in NAMES.iter().enumerate() {
        let t = median(per_round.iter().map(|r| r[i]).collect());
        println!("  {name:32} {t:7.0} ns");
    }
    let ratio =
        |a: &str, b: &str| median(per_round.iter().map(|r| r[idx(a)] / r[idx(b)]).collect());
    let over = |a: &str| {
        median(
            per_round
                .iter()
                .map(|r| r[idx(a)] - r[idx("bare")])
                .collect(),
        )
    };
    println!("ratios (median over rounds):");
    for (a, b) in [
        ("oauth2_cached", "add_auth_plus_request_clone"),
        ("oauth2_cached", "tower_retry_add_authorization"),
        ("oauth2_cached_no_retry", "tower_http_add_authorization"),
        ("static_bearer", "tower_http_add_authorization"),
        ("static_bearer_no_retry", "tower_http_add_authorization"),
        ("two_headers_cached", "two_headers_tower_http"),
        ("naive_rwlock", "oauth2_cached_no_retry"),
    ] {
        println!("  {a} / {b} = {:.3}", ratio(a, b));
    }
    let floor: Vec<f64> = per_round
        .iter()
        .map(|r| {
            r[idx("two_headers_cached_retry")]
                / (r[idx("two_headers_tower_http")] + r[idx("add_auth_plus_request_clone")]
                    - r[idx("tower_http_add_authorization")])
        })
        .collect();
    println!(
        "  two_headers_cached_retry / (two_headers_tower_http + one clone) = {:.3}",
        median(floor)
    );
    println!(
        "  overhead over bare: naive_rwlock {:.0} ns, oauth2_cached_no_retry {:.0} ns",
        over("naive_rwlock"),
        over("oauth2_cached_no_retry")
    );
}
