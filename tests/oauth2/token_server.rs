//! The plain authorization server of the testing kit, as a client sees it.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_client_auth::oauth2::{ClientAuth, TokenClient};
use tower_client_auth::secrecy::ExposeSecret;
use tower_client_auth::testing::token_server::TokenServer;
use tower_client_auth::testing::Failure;

fn tokens(server: &TokenServer, secret: &str, auth: ClientAuth) -> TokenClient {
    TokenClient::builder(server.token_url())
        .client_id("cid")
        .client_secret(secret.to_owned())
        .client_auth(auth)
        .allow_http()
        .build(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>())
        .unwrap()
}

#[tokio::test]
async fn grants_client_auth_and_counters() {
    let server = TokenServer::builder()
        .client("cid", "cs")
        .user("alice", "pw")
        .token_lifetime(Duration::from_secs(90))
        .start()
        .await;
    let basic = tokens(&server, "cs", ClientAuth::Basic);
    let form = tokens(&server, "cs", ClientAuth::Body);

    let t = basic.client_credentials(&["read"]).await.unwrap();
    assert_eq!(t.expires_in(), Some(Duration::from_secs(90)));
    assert!(t.refresh_token().is_none());
    assert_eq!(t.scope(), Some("read"));

    let t = form.password("alice", "pw", &[]).await.unwrap();
    let rt = t.refresh_token().unwrap().expose_secret().to_owned();
    let again = basic.refresh(&rt.clone().into(), &[]).await.unwrap();
    assert!(again.refresh_token().is_some());
    // Without rotation the refresh token keeps working.
    basic.refresh(&rt.clone().into(), &[]).await.unwrap();

    let wrong_client = tokens(&server, "nope", ClientAuth::Basic);
    assert!(wrong_client
        .client_credentials(&[])
        .await
        .unwrap_err()
        .is_invalid_client());
    assert!(form
        .password("alice", "bad", &[])
        .await
        .unwrap_err()
        .is_invalid_grant());

    assert_eq!(server.grants("client_credentials"), 1);
    assert_eq!(server.grants("password"), 1);
    assert_eq!(server.grants("refresh_token"), 2);
    assert_eq!(server.refused(), 2);
    assert_eq!(server.wrong_passwords("alice"), 1);
    assert_eq!(server.token_requests(), 6);
}

#[tokio::test]
async fn rotation_lockout_revocation_and_failures() {
    let server = TokenServer::builder()
        .client("cid", "cs")
        .user("bob", "pw")
        .rotate_refresh_tokens(true)
        .lock_after_wrong_passwords(2)
        .start()
        .await;
    let c = tokens(&server, "cs", ClientAuth::Basic);
    let rt = c
        .password("bob", "pw", &[])
        .await
        .unwrap()
        .refresh_token()
        .unwrap()
        .clone();
    c.refresh(&rt, &[]).await.unwrap();
    assert!(
        c.refresh(&rt, &[]).await.unwrap_err().is_invalid_grant(),
        "rotated"
    );
    assert_eq!(server.spent_refresh_tokens(), 1);

    let rt = c
        .password("bob", "pw", &[])
        .await
        .unwrap()
        .refresh_token()
        .unwrap()
        .clone();
    server.revoke_refresh_tokens();
    assert!(c.refresh(&rt, &[]).await.unwrap_err().is_invalid_grant());

    server.fail_next(Failure::TooManyRequests {
        retry_after_secs: 7,
    });
    let e = c.client_credentials(&[]).await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    server.fail_next(Failure::MalformedJson);
    assert!(c
        .client_credentials(&[])
        .await
        .unwrap_err()
        .is_invalid_response());

    for _ in 0..2 {
        assert!(c
            .password("bob", "bad", &[])
            .await
            .unwrap_err()
            .is_invalid_grant());
    }
    // Locked: the right password is refused too, and no longer counted.
    assert!(c
        .password("bob", "pw", &[])
        .await
        .unwrap_err()
        .is_invalid_grant());
    assert_eq!(server.wrong_passwords("bob"), 2);
}

#[tokio::test]
async fn the_api_accepts_its_tokens_until_revoked() {
    let server = TokenServer::builder().client("cid", "cs").start().await;
    let c = tokens(&server, "cs", ClientAuth::Basic);
    let t = c.client_credentials(&[]).await.unwrap();
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let get = |token: String| {
        let req = http::Request::get(server.api_url("me"))
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        http.request(req)
    };
    let token = t.access_token().expose_secret().to_owned();
    assert_eq!(get(token.clone()).await.unwrap().status(), 200);
    server.revoke_access_tokens();
    assert_eq!(get(token).await.unwrap().status(), 401);
    assert_eq!(server.counts().api_rejections, 1);
}
