//! The hot-path variants, each a closure that sends one request: used by the
//! criterion group (benches/hot_path.rs) and by the instruction counter
//! (benches/hot_path_icount.rs), so both measure exactly the same code.

use std::hint::black_box;

use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use http::{Request, Response};
use tower::retry::{Policy, RetryLayer};
use tower::{Layer, Service};
use tower_client_auth::{AuthLayer, Credential};
use tower_http::auth::AddAuthorizationLayer;
use tower_http::set_header::SetRequestHeaderLayer;

use super::{now, request, warm_credential, NaiveAuth, Noop};

pub const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.bench-access-token.c2lnbmF0dXJl";

pub const NAMES: &[&str] = &[
    "bare",
    "tower_http_add_authorization",
    "add_auth_plus_request_clone",
    "tower_retry_add_authorization",
    "static_bearer",
    "static_bearer_no_retry",
    "oauth2_cached",
    "oauth2_cached_no_retry",
    "two_headers_cached",
    "two_headers_cached_retry",
    "two_headers_tower_http",
    "naive_rwlock",
    "users_cached",
    "users_cached_no_retry",
    "oauth2_cached_with_user_ext",
    "oauth2_cached_no_retry_with_user_ext",
];

/// Retries one 401, cloning the request like any retry policy must.
#[derive(Clone, Default)]
pub struct RetryOnce401(bool);

impl<B: Clone, Res, E> Policy<Request<B>, Response<Res>, E> for RetryOnce401 {
    type Future = std::future::Ready<()>;

    fn retry(
        &mut self,
        _req: &mut Request<B>,
        result: &mut Result<Response<Res>, E>,
    ) -> Option<Self::Future> {
        match result {
            Ok(res) if res.status() == 401 && !self.0 => {
                self.0 = true;
                Some(std::future::ready(()))
            }
            _ => None,
        }
    }

    fn clone_request(&mut self, req: &Request<B>) -> Option<Request<B>> {
        Some(req.clone())
    }
}

pub fn call<S, B>(svc: &mut S, req: Request<B>)
where
    S: Service<Request<B>>,
    S::Error: std::fmt::Debug,
{
    now(std::future::poll_fn(|cx| svc.poll_ready(cx))).unwrap();
    black_box(now(svc.call(req)).unwrap());
}

fn auth_value() -> HeaderValue {
    let mut v = HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap();
    v.set_sensitive(true);
    v
}

/// One request through the named variant, as a closure.
pub fn variant(name: &str, rt: &tokio::runtime::Runtime) -> Box<dyn FnMut()> {
    match name {
        "bare" => {
            let mut svc = Noop;
            Box::new(move || call(&mut svc, request()))
        }
        "tower_http_add_authorization" => {
            let mut svc = AddAuthorizationLayer::bearer(TOKEN)
                .as_sensitive(true)
                .layer(Noop);
            Box::new(move || call(&mut svc, request()))
        }
        "add_auth_plus_request_clone" => {
            let mut svc = AddAuthorizationLayer::bearer(TOKEN)
                .as_sensitive(true)
                .layer(Noop);
            Box::new(move || {
                let req = request();
                let copy = req.clone();
                call(&mut svc, req);
                black_box(copy);
            })
        }
        "tower_retry_add_authorization" => {
            let mut svc = RetryLayer::new(RetryOnce401::default()).layer(
                AddAuthorizationLayer::bearer(TOKEN)
                    .as_sensitive(true)
                    .layer(Noop),
            );
            Box::new(move || call(&mut svc, request()))
        }
        "static_bearer" => {
            let pat = Credential::bearer("https://api.example.com", TOKEN).unwrap();
            let mut svc = AuthLayer::new(pat).layer(Noop);
            Box::new(move || call(&mut svc, request()))
        }
        "static_bearer_no_retry" => {
            let pat = Credential::bearer("https://api.example.com", TOKEN).unwrap();
            let mut svc = AuthLayer::new(pat).without_retry().layer(Noop);
            Box::new(move || call(&mut svc, request()))
        }
        "oauth2_cached" => {
            let mut svc = AuthLayer::new(warm_credential(rt, false)).layer(Noop);
            Box::new(move || call(&mut svc, request()))
        }
        "oauth2_cached_no_retry" => {
            let mut svc = AuthLayer::new(warm_credential(rt, false))
                .without_retry()
                .layer(Noop);
            Box::new(move || call(&mut svc, request()))
        }
        "two_headers_cached" => {
            let mut svc = AuthLayer::new(warm_credential(rt, true))
                .without_retry()
                .layer(Noop);
            Box::new(move || call(&mut svc, request()))
        }
        "two_headers_cached_retry" => {
            let mut svc = AuthLayer::new(warm_credential(rt, true)).layer(Noop);
            Box::new(move || call(&mut svc, request()))
        }
        "two_headers_tower_http" => {
            let mut key = HeaderValue::from_static("ak_live_0123456789abcdef");
            key.set_sensitive(true);
            let mut svc = SetRequestHeaderLayer::if_not_present(AUTHORIZATION, auth_value()).layer(
                SetRequestHeaderLayer::if_not_present(HeaderName::from_static("x-api-key"), key)
                    .layer(Noop),
            );
            Box::new(move || call(&mut svc, request()))
        }
        // Not in the criterion group: a DPoP-bound token, a new proof signed per
        // request (`FEATURES=jose EXTRA=oauth2_cached_dpop bash benches/icount.sh`).
        #[cfg(feature = "jose")]
        "oauth2_cached_dpop" | "oauth2_cached_dpop_ed25519" => {
            let ed25519 = name.ends_with("ed25519");
            let mut svc = AuthLayer::new(super::warm_dpop_credential(rt, ed25519)).layer(Noop);
            Box::new(move || call(&mut svc, request()))
        }
        // Not in the criterion group: the cached path on a Redis-shared credential
        // (`FEATURES=redis EXTRA=oauth2_cached_redis_store bash benches/icount.sh`).
        #[cfg(feature = "redis")]
        "oauth2_cached_redis_store" => {
            let mut svc = AuthLayer::new(super::warm_credential_on_redis(rt)).layer(Noop);
            Box::new(move || call(&mut svc, request()))
        }
        // Not in the criterion group: the wrapper's cost alone, for profiling.
        "passthrough_other_origin" => {
            let pat = Credential::bearer("https://other.example.com", TOKEN).unwrap();
            let mut svc = AuthLayer::new(pat).layer(Noop);
            Box::new(move || call(&mut svc, request()))
        }
        // Per-request selection: the request carries a `UserKey` (inserting it
        // into the extensions is counted: it is part of selecting per request).
        "users_cached" | "users_cached_no_retry" => {
            use tower_client_auth::users::{UserKey, UsersLayer};
            let users = super::warm_users(rt);
            let user = UserKey::new("user-42");
            let with_user = move || {
                let mut req = request();
                req.extensions_mut().insert(user.clone());
                req
            };
            if name == "users_cached" {
                let mut svc = UsersLayer::new(users).layer(Noop);
                Box::new(move || call(&mut svc, with_user()))
            } else {
                let mut svc = UsersLayer::new(users).without_retry().layer(Noop);
                Box::new(move || call(&mut svc, with_user()))
            }
        }
        // The single credential with the same `UserKey` extension on the request
        // (unused): what per-request selection costs beyond carrying the key.
        "oauth2_cached_with_user_ext" | "oauth2_cached_no_retry_with_user_ext" => {
            use tower_client_auth::users::UserKey;
            let user = UserKey::new("user-42");
            let with_user = move || {
                let mut req = request();
                req.extensions_mut().insert(user.clone());
                req
            };
            if name == "oauth2_cached_with_user_ext" {
                let mut svc = AuthLayer::new(warm_credential(rt, false)).layer(Noop);
                Box::new(move || call(&mut svc, with_user()))
            } else {
                let mut svc = AuthLayer::new(warm_credential(rt, false))
                    .without_retry()
                    .layer(Noop);
                Box::new(move || call(&mut svc, with_user()))
            }
        }
        "naive_rwlock" => {
            let mut svc = NaiveAuth::new(Noop);
            Box::new(move || call(&mut svc, request()))
        }
        other => panic!("unknown variant {other}"),
    }
}
