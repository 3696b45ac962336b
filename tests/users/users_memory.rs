//! Many users in one process, against the code-flow emulator (real HTTP on
//! loopback) with a `MemoryStore`: one refresh per user in a burst, a rejected
//! refresh token failing that user only (and never sent again), the token-change
//! hook, idle eviction with its tasks counted, requests without a user. The
//! durable store across restarts and processes: tests/users_postgres.rs.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use http::Request;
use http_body_util::Full;
use secrecy::ExposeSecret;
use tower::{Layer, ServiceExt};
use tower_client_auth::oauth2::TokenClient;
use tower_client_auth::store::{MemoryStore, SharedStore};
use tower_client_auth::testing::oauth::OAuthServer;
use tower_client_auth::token::Token;
use tower_client_auth::users::{UserKey, Users, UsersLayer, WithoutUser};
use tower_client_auth::{Error, ReplayBody};

use common::client;

async fn setup(
    emu: &OAuthServer,
    builder: impl FnOnce(
        tower_client_auth::users::UsersBuilder,
    ) -> tower_client_auth::users::UsersBuilder,
) -> Users {
    let token_client = TokenClient::builder(emu.token_url())
        .client_id("app")
        .client_secret("s3cret")
        .build(client::<ReplayBody<Full<Bytes>>>())
        .unwrap();
    builder(
        Users::builder(emu.base_url(), token_client).store(SharedStore::new(MemoryStore::new())),
    )
    .build()
    .unwrap()
}

/// Logs `n` users in with a fresh refresh token each and an expired access token.
async fn seed(emu: &OAuthServer, users: &Users, n: usize) -> Vec<String> {
    let mut refresh_tokens = Vec::new();
    for i in 0..n {
        let rt = emu.issue_refresh_token();
        let token =
            Token::bearer("expired", Some(Duration::from_millis(1))).with_refresh_token(rt.clone());
        users
            .login(&UserKey::new(format!("user-{i}")), token)
            .await
            .unwrap();
        refresh_tokens.push(rt);
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    refresh_tokens
}

fn as_user(emu: &OAuthServer, user: &str) -> Request<Full<Bytes>> {
    let mut req = Request::get(format!("{}/api/me", emu.base_url()))
        .body(Full::new(Bytes::new()))
        .unwrap();
    req.extensions_mut().insert(UserKey::new(user));
    req
}

#[tokio::test]
async fn a_burst_for_many_users_refreshes_each_once() {
    let emu = OAuthServer::start("app", "s3cret").await;
    let users = setup(&emu, |b| b.allow_http()).await;
    seed(&emu, &users, 200).await;
    let api = UsersLayer::new(users.clone()).layer(client::<ReplayBody<Full<Bytes>>>());
    // Five concurrent requests per user.
    let burst = (0..1_000).map(|i| {
        api.clone()
            .oneshot(as_user(&emu, &format!("user-{}", i % 200)))
    });
    for r in join_all(burst).await {
        assert_eq!(r.unwrap().status(), 200);
    }
    assert_eq!(emu.refresh_tokens_used(), 200, "one refresh per user");
    assert_eq!(emu.refresh_token_reuses(), 0);
    assert_eq!(users.len(), 200);
}

#[tokio::test]
async fn a_rejected_refresh_token_requires_that_user_to_log_in_again() {
    let emu = OAuthServer::start("app", "s3cret").await;
    let users = setup(&emu, |b| b.allow_http()).await;
    let rts = seed(&emu, &users, 3).await;
    emu.revoke_refresh_token(&rts[1]);
    let api = UsersLayer::new(users.clone()).layer(client::<ReplayBody<Full<Bytes>>>());
    let err = api
        .clone()
        .oneshot(as_user(&emu, "user-1"))
        .await
        .unwrap_err();
    let err = err.downcast::<Error>().unwrap();
    assert!(err.is_login_required(), "{err}");
    assert_eq!(err.user_key(), Some("user-1"));
    assert!(!err.to_string().contains(&rts[1]));
    // The others are unaffected.
    for u in ["user-0", "user-2"] {
        assert_eq!(
            api.clone()
                .oneshot(as_user(&emu, u))
                .await
                .unwrap()
                .status(),
            200
        );
    }
    // The dead refresh token is never sent again, even by a fresh entry (a
    // restart, another replica): the store says "log in again".
    let before = emu.token_requests();
    users.evict(&UserKey::new("user-1"));
    let err = api
        .clone()
        .oneshot(as_user(&emu, "user-1"))
        .await
        .unwrap_err();
    assert!(err.downcast::<Error>().unwrap().is_login_required());
    assert_eq!(emu.token_requests(), before);
    // A new login brings the user back.
    let rt = emu.issue_refresh_token();
    users
        .login(
            &UserKey::new("user-1"),
            Token::bearer("expired", Some(Duration::from_millis(1))).with_refresh_token(rt),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        api.clone()
            .oneshot(as_user(&emu, "user-1"))
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn the_token_change_hook_sees_each_rotated_token() {
    let emu = OAuthServer::start("app", "s3cret").await;
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let log = seen.clone();
    let users = setup(&emu, move |b| {
        b.allow_http().on_token_change(move |user, token| {
            let rt = token.refresh_token().unwrap().expose_secret().to_owned();
            log.lock().unwrap().push((user.as_str().to_owned(), rt));
        })
    })
    .await;
    let rts = seed(&emu, &users, 2).await;
    let api = UsersLayer::new(users.clone()).layer(client::<ReplayBody<Full<Bytes>>>());
    for u in ["user-0", "user-1"] {
        assert_eq!(
            api.clone()
                .oneshot(as_user(&emu, u))
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    for (user, rt) in seen.iter() {
        assert!(user.starts_with("user-"));
        assert!(!rts.contains(rt), "the hook got the rotated refresh token");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn idle_users_are_evicted_with_their_tasks() {
    let emu = OAuthServer::start("app", "s3cret").await;
    let users = setup(&emu, |b| {
        b.allow_http().idle_timeout(Duration::from_millis(300))
    })
    .await;
    seed(&emu, &users, 20).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let api = UsersLayer::new(users.clone()).layer(client::<ReplayBody<Full<Bytes>>>());
    for i in 0..20 {
        let r = api
            .clone()
            .oneshot(as_user(&emu, &format!("user-{i}")))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(users.len(), 20);
    let busy = metrics.num_alive_tasks();
    assert!(busy >= 20, "one refresh driver per user: {busy}");
    // Only user-0 stays in use: its requests alone sweep the others out (a
    // sweep rides on every 1,024th request), no call needed.
    tokio::time::sleep(Duration::from_millis(400)).await;
    for _ in 0..1_024 {
        api.clone().oneshot(as_user(&emu, "user-0")).await.unwrap();
    }
    assert_eq!(users.len(), 1);
    assert_eq!(users.evict_idle(), 1);
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    let left = metrics.num_alive_tasks();
    assert!(left <= busy - 19, "tasks: {busy} before, {left} after");
}

#[tokio::test]
async fn requests_without_a_user_pass_through_or_fail() {
    let emu = OAuthServer::start("app", "s3cret").await;
    let open = setup(&emu, |b| b.allow_http()).await;
    let strict = setup(&emu, |b| b.allow_http().without_user(WithoutUser::Fail)).await;
    let plain = || {
        Request::get(format!("{}/api/me", emu.base_url()))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let api = UsersLayer::new(open)
        .without_retry()
        .layer(client::<Full<Bytes>>());
    assert_eq!(
        api.oneshot(plain()).await.unwrap().status(),
        401,
        "sent unauthenticated"
    );
    let api = UsersLayer::new(strict)
        .without_retry()
        .layer(client::<Full<Bytes>>());
    let err = api.oneshot(plain()).await.unwrap_err();
    assert!(err.downcast::<Error>().unwrap().is_config());
}

/// Two replicas: the user's refresh token is rejected, both say "log in again";
/// the user logs in through one, and the other serves them again soon after
/// (the login-required state is retried with backoff, not a long cool-down).
#[tokio::test]
async fn a_login_through_one_replica_reaches_the_others() {
    let emu = OAuthServer::start("app", "s3cret").await;
    let store = Arc::new(MemoryStore::new());
    let replica = |store: Arc<MemoryStore>| {
        let token_client = TokenClient::builder(emu.token_url())
            .client_id("app")
            .client_secret("s3cret")
            .build(client::<ReplayBody<Full<Bytes>>>())
            .unwrap();
        Users::builder(emu.base_url(), token_client)
            .allow_http()
            .store(SharedStore::from_arc(store))
            .build()
            .unwrap()
    };
    let (a, b) = (replica(store.clone()), replica(store));
    let rt = emu.issue_refresh_token();
    let expired = |rt: String| {
        Token::bearer("expired", Some(Duration::from_millis(1))).with_refresh_token(rt)
    };
    a.login(&UserKey::new("user-0"), expired(rt.clone()))
        .await
        .unwrap();
    emu.revoke_refresh_token(&rt);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let api_a = UsersLayer::new(a.clone()).layer(client::<ReplayBody<Full<Bytes>>>());
    let api_b = UsersLayer::new(b.clone()).layer(client::<ReplayBody<Full<Bytes>>>());
    for api in [&api_a, &api_b] {
        let err = api
            .clone()
            .oneshot(as_user(&emu, "user-0"))
            .await
            .unwrap_err();
        assert!(err.downcast::<Error>().unwrap().is_login_required());
    }
    // Logged in again through replica A.
    a.login(&UserKey::new("user-0"), expired(emu.issue_refresh_token()))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match api_b.clone().oneshot(as_user(&emu, "user-0")).await {
            Ok(res) if res.status() == 200 => break,
            _ => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "replica B never saw the login"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert_eq!(emu.refresh_token_reuses(), 0);
}

/// Idle entries go on the sweep's own timer, with no traffic at all: 70 users
/// idle for a 2 s idle timeout are all gone within the idle time plus two
/// sweeps (an eighth of it each), and `stats` keeps what they counted.
#[tokio::test(start_paused = true)]
async fn idle_users_are_evicted_without_traffic() {
    let idle = Duration::from_secs(2);
    let token_client = TokenClient::builder("https://auth.example.com/token")
        .client_id("app")
        .build(client::<ReplayBody<Full<Bytes>>>())
        .unwrap();
    let users = Users::builder("https://api.example.com", token_client)
        .store(SharedStore::new(MemoryStore::new()))
        .idle_timeout(idle)
        .build()
        .unwrap();
    for i in 0..70 {
        let user = UserKey::new(format!("user-{i}"));
        users.login(&user, Token::bearer("t", None)).await.unwrap();
        users.credential(&user).unwrap().token().await.unwrap();
    }
    assert_eq!(users.len(), 70);
    let counted = users.stats();
    // Seventy logins adopted from the store; no refresh.
    assert_eq!(
        (counted.users, counted.token_requests, counted.refreshes),
        (70, 70, 0)
    );
    assert!(users.find(&UserKey::new("user-3")).is_some());
    assert!(users.find(&UserKey::new("nobody")).is_none());
    assert_eq!(users.len(), 70, "a look-up creates no entry");
    // No request, no call: the timer alone.
    tokio::time::sleep(idle + idle / 4 + Duration::from_millis(1)).await;
    assert_eq!(users.len(), 0, "idle entries still alive");
    let after = users.stats();
    assert_eq!((after.users, after.token_requests), (0, 70));
}

/// A `|` in a user key or a client id cannot make another user's store key:
/// client `app|x` with user `y` and client `app` with user `x|y` are two users.
#[tokio::test]
async fn identities_with_a_bar_are_distinct() {
    let store = std::sync::Arc::new(MemoryStore::new());
    let users_of = |client_id: &str| {
        let token_client = TokenClient::builder("https://auth.example.com/token")
            .client_id(client_id)
            .build(client::<ReplayBody<Full<Bytes>>>())
            .unwrap();
        Users::builder("https://api.example.com", token_client)
            .store(SharedStore::from_arc(store.clone()))
            .build()
            .unwrap()
    };
    let (a, b) = (users_of("app|x"), users_of("app"));
    a.login(&UserKey::new("y"), Token::bearer("a-token", None))
        .await
        .unwrap();
    let err = b
        .credential(&UserKey::new("x|y"))
        .unwrap()
        .token()
        .await
        .unwrap_err();
    assert!(err.is_login_required(), "{err}");
    let token = a
        .credential(&UserKey::new("y"))
        .unwrap()
        .token()
        .await
        .unwrap();
    assert_eq!(token.access_token().expose_secret(), "a-token");
}
