//! A whole DPoP proof against the bare signature it contains, per algorithm,
//! in one run: what a proof costs beyond signing (claims, JSON, base64,
//! `jti`, `ath`). Target: a proof within 1.5× the bare signature of the
//! backend used (ring). The pure-Rust signatures (p256, ed25519-dalek, the
//! previous backend) are timed alongside for comparison.
//!
//! With the `huskarl` feature, huskarl's own resource-server proof
//! (`ResourceDPoP::proof`: same method, URL and access token, so the same
//! `ath`; its own fresh `jti` and `iat` per proof) runs in the same rounds.
//! Its API returns a boxed future; it never waits, so it is polled once with
//! a no-op waker (no runtime), which costs a few nanoseconds.
//!
//! Robust to a busy shared machine as `hot_path_paired` is: every round times
//! one batch of every variant, in a rotating order; a ratio is the median over
//! rounds of that round's ratio.
//!
//! `cargo bench -p tower-client-auth-benches --features jose,huskarl --bench dpop_speed`

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

    #[cfg(feature = "huskarl")]
    let theirs = huskarl_proof(alg, &method, &uri, token, sample);

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
    #[cfg_attr(not(feature = "huskarl"), allow(unused_mut))]
    let mut vs = vec![
        Variant {
            name: OURS,
            step: proof,
        },
        Variant {
            name: RING,
            step: ring_sign,
        },
        Variant {
            name: PURE,
            step: pure_sign,
        },
    ];
    #[cfg(feature = "huskarl")]
    vs.push(Variant {
        name: HUSKARL,
        step: theirs,
    });
    vs
}

const OURS: &str = "whole proof (this crate)";
const RING: &str = "bare signature, ring";
const PURE: &str = "bare signature, pure Rust";
#[cfg(feature = "huskarl")]
const HUSKARL: &str = "whole proof (huskarl 0.11)";

/// huskarl's proof for the same request as ours, checked once to carry the
/// same `htm`, `htu`, `ath` and a `jti`/`iat` of its own.
#[cfg(feature = "huskarl")]
fn huskarl_proof(
    alg: &str,
    method: &http::Method,
    uri: &http::Uri,
    token: &str,
    ours: &str,
) -> Step {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    use huskarl::core::dpop::{ResourceDPoP, ResourceServerDPoP as _};
    use huskarl::core::secrets::SecretString;
    use huskarl_crypto_native::asymmetric::signer::{GenerateAlgorithm, PrivateKey};

    /// Polls a future that never waits (huskarl's in-memory key signs
    /// synchronously inside its boxed future).
    fn ready<T>(future: impl Future<Output = T>) -> T {
        let mut future = std::pin::pin!(future);
        match future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(out) => out,
            Poll::Pending => panic!("huskarl's proof waited"),
        }
    }

    let key = match alg {
        "ES256" => PrivateKey::generate(GenerateAlgorithm::Es256, None),
        _ => PrivateKey::generate(GenerateAlgorithm::EdDsa, None),
    }
    .unwrap();
    let jkt = key.as_private_jwk().thumbprint();
    let dpop = ResourceDPoP::builder().signer(key).build();
    let method = method.clone();
    let uri = uri.clone();
    let token = SecretString::new(token);

    let sample = ready(dpop.proof(&method, &uri, &token, &jkt))
        .unwrap()
        .unwrap();
    let claims = |jws: &str| -> serde_json::Value {
        use base64::Engine as _;
        let part = jws.split('.').nth(1).unwrap();
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap();
        serde_json::from_slice(&json).unwrap()
    };
    let (theirs, ours) = (claims(sample.expose_secret()), claims(ours));
    for same in ["htm", "htu", "ath"] {
        assert_eq!(theirs[same], ours[same], "{same}");
    }
    assert!(theirs["jti"].is_string() && theirs["iat"].is_number());
    let header = sample.expose_secret().split('.').next().unwrap().to_owned();
    assert!(header.len() > 20, "{alg}");

    Box::new(move || {
        ready(dpop.proof(&method, &uri, &token, &jkt))
            .unwrap()
            .unwrap()
            .expose_secret()
            .len()
    })
}

fn main() {
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
        assert!(sink > 0);
        let at = |name: &str| vs.iter().position(|v| v.name == name);
        // The median over rounds of one round's ratio of variant i to j.
        let ratio = |i: usize, j: usize| median(per_round.iter().map(|t| t[i] / t[j]).collect());
        let ring = at(RING).unwrap();
        println!("\n{alg}\n");
        println!("| variant | µs per operation (median) | × ring's bare signature |");
        println!("|---|---|---|");
        for (i, v) in vs.iter().enumerate() {
            let us = median(per_round.iter().map(|t| t[i]).collect());
            println!("| {} | {us:.1} | {:.2}× |", v.name, ratio(i, ring));
        }
        #[cfg(feature = "huskarl")]
        {
            // huskarl signs with p256 / ed25519-dalek: the pure-Rust row is
            // its own backend's bare signature.
            let (ours, theirs) = (at(OURS).unwrap(), at(HUSKARL).unwrap());
            let pure = at(PURE).unwrap();
            println!(
                "\n{alg}: ours/ring {:.2}×, huskarl/ring {:.2}×, ours/huskarl {:.2}×, \
                 huskarl/its own backend (pure Rust) {:.2}× (medians of per-round ratios)",
                ratio(ours, ring),
                ratio(theirs, ring),
                ratio(ours, theirs),
                ratio(theirs, pure),
            );
        }
    }
}
