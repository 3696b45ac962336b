//! A whole DPoP proof against the bare signature it contains, per algorithm,
//! in one run: what a proof costs beyond signing (claims, JSON, base64,
//! `jti`, `ath`). Target: a proof within 1.5× the bare signature of the
//! backend used (ring). The pure-Rust signatures (p256, ed25519-dalek, the
//! previous backend) are timed alongside for comparison.
//!
//! Robust to a busy shared machine as `hot_path_paired` is: every round times
//! one batch of every variant, in a rotating order; a ratio is the median over
//! rounds of that round's ratio.
//!
//! `cargo bench --features jose --bench dpop_speed`

use std::time::Instant;

use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use tower_client_auth::oauth2::{Dpop, PrivateKey};

const ROUNDS: usize = 60;
const BATCH: usize = 300;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

type Step = Box<dyn FnMut() -> usize>;

struct Variant {
    name: &'static str,
    step: Step,
}

fn variants(alg: &str) -> Vec<Variant> {
    let rng = SystemRandom::new();
    let key = match alg {
        "ES256" => PrivateKey::generate_es256().unwrap(),
        _ => PrivateKey::generate_ed25519().unwrap(),
    };
    let dpop = Dpop::new(key);
    let method = http::Method::GET;
    let uri: http::Uri = "https://api.example.com/v1/accounts/12345/transactions?page=2"
        .parse()
        .unwrap();
    let token =
        "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MTgwMDAwMDAwMH0.c2lnbmF0dXJlLWJ5dGVz";
    // What a proof signs: its first two parts; the bare signatures sign as
    // many bytes.
    let sample = dpop.proof(&method, &uri, Some(token)).unwrap();
    let sample = sample.to_str().unwrap();
    let signed_len = sample.rfind('.').unwrap();
    let message = vec![b'a'; signed_len];

    let proof: Step = Box::new(move || {
        dpop.proof(&method, &uri, Some(token))
            .unwrap()
            .as_bytes()
            .len()
    });
    let (ring_sign, pure_sign): (Step, Step) = match alg {
        "ES256" => {
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap();
            let _ = pair.public_key();
            let m = message.clone();
            let ring_sign: Step =
                Box::new(move || pair.sign(&SystemRandom::new(), &m).unwrap().as_ref().len());
            let pure = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
            let pure_sign: Step = Box::new(move || {
                use p256::ecdsa::signature::Signer as _;
                let s: p256::ecdsa::Signature = pure.sign(&message);
                s.to_bytes().len()
            });
            (ring_sign, pure_sign)
        }
        _ => {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
            let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
            let m = message.clone();
            let ring_sign: Step = Box::new(move || pair.sign(&m).as_ref().len());
            let pure = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
            let pure_sign: Step = Box::new(move || {
                use ed25519_dalek::Signer as _;
                pure.sign(&message).to_bytes().len()
            });
            (ring_sign, pure_sign)
        }
    };
    vec![
        Variant {
            name: "whole proof (this crate)",
            step: proof,
        },
        Variant {
            name: "bare signature, ring",
            step: ring_sign,
        },
        Variant {
            name: "bare signature, pure Rust",
            step: pure_sign,
        },
    ]
}

fn main() {
    println!("| algorithm | variant | µs per operation (median) | × ring's bare signature (median of rounds) |");
    println!("|---|---|---|---|");
    for alg in ["ES256", "EdDSA"] {
        let mut vs = variants(alg);
        let mut sink = 0usize;
        for v in vs.iter_mut() {
            for _ in 0..BATCH {
                sink += (v.step)();
            }
        }
        let n = vs.len();
        let mut per_round = vec![vec![0f64; n]; ROUNDS];
        for (round, times) in per_round.iter_mut().enumerate() {
            for k in 0..n {
                let i = (round + k) % n;
                let start = Instant::now();
                for _ in 0..BATCH {
                    sink += (vs[i].step)();
                }
                times[i] = start.elapsed().as_secs_f64() * 1e6 / BATCH as f64;
            }
        }
        for (i, v) in vs.iter().enumerate() {
            let us = median(per_round.iter().map(|t| t[i]).collect());
            let ratio = median(per_round.iter().map(|t| t[i] / t[1]).collect());
            println!("| {alg} | {} | {us:.1} | {ratio:.2}× |", v.name);
        }
        assert!(sink > 0);
    }
}
