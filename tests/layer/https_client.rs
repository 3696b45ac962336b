//! The ready client of feature `https`: one client for the token endpoint and
//! the API, with the guard built in. Run by `.ci/run` (with every feature).

use crate::common;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tower::{Layer, ServiceExt};
use tower_client_auth::{https, AuthLayer, Credential};
use tower_http::follow_redirect::FollowRedirectLayer;

use common::{header, serve, text, Log};

#[tokio::test]
async fn the_guarded_client_keeps_credentials_on_their_origin() {
    let seen = Log::default();
    let log = seen.clone();
    let other = serve(move |req| {
        log.push(&req);
        async { text(200, "other") }
    })
    .await;
    let own = serve(move |_req| async move {
        http::Response::builder()
            .status(302)
            .header("location", format!("http://{other}/landing"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    })
    .await;
    let own = format!("http://{own}");
    let credential = Credential::builder()
        .origin(&own)
        .api_key("x-api-key", "k3y")
        .bearer("pat")
        .build()
        .unwrap();
    // A follower under the layer: the built-in guard strips the API key too.
    let client = AuthLayer::new(credential.clone())
        .layer(FollowRedirectLayer::new().layer(https::guarded(credential)));
    let req = Request::get(format!("{own}/start"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(client.oneshot(req).await.unwrap().status(), 200);
    let hop = seen.get(0);
    assert_eq!(header(&hop, "x-api-key"), None);
    assert_eq!(header(&hop, "authorization"), None);
}

/// Many users: the users' guard is built in too, so a follower under
/// `UsersLayer` takes no user's token to another origin (and keeps it on a
/// same-origin hop).
#[tokio::test]
async fn the_guarded_client_keeps_users_tokens_on_their_origin() {
    use std::time::Duration;
    use tower_client_auth::oauth2::TokenClient;
    use tower_client_auth::store::{MemoryStore, SharedStore};
    use tower_client_auth::token::Token;
    use tower_client_auth::users::{UserKey, Users, UsersLayer};

    let common::RedirectingOrigins {
        own,
        own_log,
        other_log,
        ..
    } = common::redirecting_origins(302).await;
    let tokens = TokenClient::builder("https://auth.example.com/token")
        .client_id("app")
        .build(https::client())
        .unwrap();
    let users = Users::builder(&own, tokens)
        .store(SharedStore::new(MemoryStore::new()))
        .build()
        .unwrap();
    let login = Token::bearer("ALICE-TOKEN", Some(Duration::from_secs(3600)))
        .with_refresh_token("ALICE-REFRESH");
    users.login(&UserKey::new("alice"), login).await.unwrap();
    // A follower that keeps every header across origins (no credential filter).
    let keep_all = tower_http::follow_redirect::policy::Limited::default();
    let client = UsersLayer::new(users.clone())
        .layer(FollowRedirectLayer::with_policy(keep_all).layer(https::guarded_for_users(users)));
    for path in ["cross", "same"] {
        let mut req = Request::get(format!("{own}/{path}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        req.extensions_mut().insert(UserKey::new("alice"));
        assert_eq!(client.clone().oneshot(req).await.unwrap().status(), 200);
    }
    assert_eq!(header(&other_log.get(0), "authorization"), None);
    let landing = own_log.get(2);
    assert_eq!(landing.uri().path(), "/landing");
    assert_eq!(
        header(&landing, "authorization"),
        Some("Bearer ALICE-TOKEN")
    );
}

/// The common case in one expression: `providers::generic::client_credentials`
/// with `.https()` reaches the test server's API, fetches one token for many
/// requests, renews it once after a 401, and never prints the secret.
#[tokio::test]
async fn client_credentials_in_one_expression() -> Result<(), tower_client_auth::BoxError> {
    use tower::ServiceExt;
    use tower_client_auth::providers::generic;
    use tower_client_auth::testing::token_server::TokenServer;

    let server = TokenServer::builder()
        .client("my-client", "my-secret")
        .start()
        .await;
    let preset = generic::client_credentials(server.token_url(), "my-client", "my-secret")
        .api_origin(server.base_url())
        .scopes(["read", "write"]);
    assert!(!format!("{preset:?}").contains("my-secret"));
    let api = preset.https()?;

    let whoami = || {
        http::Request::get(server.api_url("whoami"))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
    };
    for _ in 0..3 {
        assert_eq!(api.clone().oneshot(whoami()?).await?.status(), 200);
    }
    assert_eq!(server.grants("client_credentials"), 1);
    server.revoke_access_tokens();
    assert_eq!(api.clone().oneshot(whoami()?).await?.status(), 200);
    assert_eq!(server.grants("client_credentials"), 2);

    // Without an API origin there is nothing to send the token to.
    let err = generic::client_credentials(server.token_url(), "my-client", "my-secret")
        .https()
        .unwrap_err();
    assert!(err.is_config(), "{err}");
    Ok(())
}
