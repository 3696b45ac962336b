//! reqwest under the layer (feature `reqwest`), against real loopback servers:
//! a managed OAuth2 token fetched through the same reqwest client, a 401 retried
//! once with the body sent again, and redirects: a stock reqwest client re-sends
//! an API key to another origin, a `ReqwestService` does not.

use crate::common;

use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, Layer, ServiceBuilder, ServiceExt};
use tower_client_auth::oauth2::{OAuth2Source, TokenClient};
use tower_client_auth::reqwest::{ReqwestService, SendRequest};
use tower_client_auth::{AuthLayer, BoxError, Credential};
use tower_http::follow_redirect::FollowRedirectLayer;

use common::{header, json, redirecting_origins, serve, text, Log, RedirectingOrigins};

/// A token endpoint (client_credentials, Basic `id:secret`) issuing `tok-1`,
/// `tok-2`, ... and an API on the same origin whose `/echo` answers 401 to its
/// first request and then echoes the body and the `Authorization` it got.
async fn oauth_and_api() -> (String, Arc<AtomicU32>, Log) {
    let issued = Arc::new(AtomicU32::new(0));
    let log = Log::default();
    let (n, l) = (issued.clone(), log.clone());
    let rejected_once = Arc::new(AtomicU32::new(0));
    let addr = serve(move |req| {
        let (n, l, r) = (n.clone(), l.clone(), rejected_once.clone());
        async move {
            match req.uri().path() {
                "/token" => {
                    let basic_ok = header(&req, "authorization") == Some("Basic aWQ6c2VjcmV0");
                    let body = std::str::from_utf8(req.body()).unwrap_or("");
                    if !basic_ok || !body.contains("grant_type=client_credentials") {
                        return json(401, r#"{"error":"invalid_client"}"#);
                    }
                    let k = n.fetch_add(1, Ordering::SeqCst) + 1;
                    json(
                        200,
                        &format!(
                            r#"{{"access_token":"tok-{k}","token_type":"Bearer","expires_in":3600}}"#
                        ),
                    )
                }
                "/echo" => {
                    l.push(&req);
                    if r.fetch_add(1, Ordering::SeqCst) == 0 {
                        return Response::builder()
                            .status(401)
                            .header("www-authenticate", r#"Bearer error="invalid_token""#)
                            .body(Full::new(Bytes::new()))
                            .unwrap();
                    }
                    let auth = header(&req, "authorization").unwrap_or("-").to_owned();
                    let body = String::from_utf8_lossy(req.body()).into_owned();
                    text(200, &format!("{auth}|{body}"))
                }
                _ => text(404, "not found"),
            }
        }
    })
    .await;
    (format!("http://{addr}"), issued, log)
}

#[tokio::test]
async fn managed_token_through_reqwest_and_a_401_retried_with_the_body() -> Result<(), BoxError> {
    let (base, issued, log) = oauth_and_api().await;
    let http = ReqwestService::new()?;
    // The token endpoint through the same reqwest client (by reference).
    let tokens = TokenClient::builder(format!("{base}/token"))
        .client_id("id")
        .client_secret("secret")
        .allow_http()
        .build(&http)?;
    let credential = Credential::builder()
        .origin(&base)
        .allow_http()
        .token_source(OAuth2Source::client_credentials(tokens))
        .build()?;
    let client = AuthLayer::new(credential).layer(http.clone());

    // A streaming body from the caller: the layer records it for the retry.
    let body = http_body_util::StreamBody::new(futures_util::stream::iter(vec![
        Ok::<_, Infallible>(http_body::Frame::data(Bytes::from_static(b"hello "))),
        Ok(http_body::Frame::data(Bytes::from_static(b"world"))),
    ]));
    let req = Request::post(format!("{base}/echo")).body(body)?;
    let res = client.clone().oneshot(req).await?;
    assert_eq!(res.status(), 200);
    let text = res.into_body().collect().await?.to_bytes();
    assert_eq!(&text[..], b"Bearer tok-2|hello world");
    assert_eq!(
        issued.load(Ordering::SeqCst),
        2,
        "one fetch, one after the 401"
    );
    let seen = log.take();
    assert_eq!(seen.len(), 2);
    assert_eq!(header(&seen[0], "authorization"), Some("Bearer tok-1"));
    assert_eq!(
        &seen[0].body()[..],
        b"hello world",
        "first attempt had the body"
    );

    // reqwest's own request builder, through the layer: the cached token.
    let res = client
        .send(http.client().post(format!("{base}/echo")).body("again"))
        .await?;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await?, "Bearer tok-2|again");
    assert_eq!(issued.load(Ordering::SeqCst), 2);
    Ok(())
}

fn api_key_credential(origin: &str) -> Credential {
    Credential::builder()
        .origin(origin)
        .allow_http()
        .api_key("x-api-key", "k3y-secret")
        .bearer("pat-secret")
        .build()
        .unwrap()
}

fn get(url: String) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::new(Bytes::new())).unwrap()
}

/// The failure this feature exists for: a stock `reqwest::Client` (default
/// redirect policy) under the layer follows the redirect itself and re-sends
/// `x-api-key` to the other origin (it drops only `Authorization`).
#[tokio::test]
async fn a_stock_reqwest_client_under_the_layer_leaks_the_api_key() -> Result<(), BoxError> {
    let RedirectingOrigins { own, other_log, .. } = redirecting_origins(307).await;
    let stock = reqwest::Client::new();
    let stock = service_fn(move |req: Request<_>| {
        let stock = stock.clone();
        async move {
            let req = reqwest::Request::try_from(req.map(reqwest::Body::wrap))?;
            let res = stock.execute(req).await?;
            Ok::<_, BoxError>(http::Response::<reqwest::Body>::from(res))
        }
    });
    let client = AuthLayer::new(api_key_credential(&own)).layer(stock);
    let res = client.oneshot(get(format!("{own}/cross"))).await?;
    assert_eq!(res.status(), 200);
    let seen = other_log.take();
    assert_eq!(seen.len(), 1);
    assert_eq!(header(&seen[0], "x-api-key"), Some("k3y-secret"), "leaked");
    assert_eq!(header(&seen[0], "authorization"), None);
    Ok(())
}

#[tokio::test]
async fn a_redirect_to_another_origin_comes_back_unfollowed() -> Result<(), BoxError> {
    let RedirectingOrigins {
        own,
        other,
        own_log,
        other_log,
    } = redirecting_origins(307).await;
    let client = AuthLayer::new(api_key_credential(&own)).layer(ReqwestService::new()?);
    let res = client.oneshot(get(format!("{own}/cross"))).await?;
    assert_eq!(res.status(), 307);
    assert_eq!(
        res.headers()["location"].to_str()?,
        format!("{other}/landing")
    );
    assert!(
        other_log.take().is_empty(),
        "nothing went to the other origin"
    );
    assert_eq!(
        header(&own_log.take()[0], "x-api-key"),
        Some("k3y-secret"),
        "the own origin got the key"
    );
    Ok(())
}

#[tokio::test]
async fn a_redirect_within_the_origin_is_followed_with_the_credential() -> Result<(), BoxError> {
    let RedirectingOrigins { own, own_log, .. } = redirecting_origins(307).await;
    let client = AuthLayer::new(api_key_credential(&own)).layer(ReqwestService::new()?);
    let res = client.oneshot(get(format!("{own}/same"))).await?;
    assert_eq!(res.status(), 200);
    let seen = own_log.take();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].uri().path(), "/landing");
    assert_eq!(header(&seen[1], "x-api-key"), Some("k3y-secret"));
    assert_eq!(header(&seen[1], "authorization"), Some("Bearer pat-secret"));
    Ok(())
}

/// tower-http's follower above the layer follows the foreign hop too; the layer
/// stamps each hop for its own origin, so the other origin gets nothing.
#[tokio::test]
async fn a_follower_above_the_layer_reaches_the_other_origin_without_the_credential(
) -> Result<(), BoxError> {
    let RedirectingOrigins { own, other_log, .. } = redirecting_origins(307).await;
    let client = ServiceBuilder::new()
        .layer(FollowRedirectLayer::new())
        .layer(AuthLayer::new(api_key_credential(&own)))
        .service(ReqwestService::new()?);
    let res = client.oneshot(get(format!("{own}/cross"))).await?;
    assert_eq!(res.status(), 200);
    let seen = other_log.take();
    assert_eq!(seen.len(), 1);
    assert_eq!(header(&seen[0], "x-api-key"), None);
    assert_eq!(header(&seen[0], "authorization"), None);
    Ok(())
}

#[tokio::test]
async fn send_request_keeps_the_final_url() -> Result<(), BoxError> {
    let RedirectingOrigins { own, .. } = redirecting_origins(307).await;
    let http = ReqwestService::new()?;
    let client = AuthLayer::new(api_key_credential(&own)).layer(http.clone());
    let res = client
        .send(http.client().get(format!("{own}/same")))
        .await?;
    assert_eq!(res.url().as_str(), format!("{own}/landing"));
    Ok(())
}

/// Many users over a `ReqwestService`: its redirect policy needs no guard, for
/// users' tokens as for one credential. A foreign redirect comes back
/// unfollowed; a same-origin one keeps the user's token.
#[tokio::test]
async fn users_tokens_stay_on_their_origin_through_reqwest() -> Result<(), BoxError> {
    use std::time::Duration;
    use tower_client_auth::store::{MemoryStore, SharedStore};
    use tower_client_auth::token::Token;
    use tower_client_auth::users::{UserKey, Users, UsersLayer};

    let RedirectingOrigins {
        own,
        own_log,
        other_log,
        ..
    } = redirecting_origins(307).await;
    let http = ReqwestService::new()?;
    let tokens = TokenClient::builder("https://auth.example.com/token")
        .client_id("app")
        .build(&http)?;
    let users = Users::builder(&own, tokens)
        .store(SharedStore::new(MemoryStore::new()))
        .build()?;
    let login = Token::bearer("ALICE-TOKEN", Some(Duration::from_secs(3600)))
        .with_refresh_token("ALICE-REFRESH");
    users.login(&UserKey::new("alice"), login).await?;
    let client = UsersLayer::new(users).layer(http);
    let as_alice = |path: &str| {
        let mut req = get(format!("{own}/{path}"));
        req.extensions_mut().insert(UserKey::new("alice"));
        req
    };
    assert_eq!(
        client.clone().oneshot(as_alice("cross")).await?.status(),
        307
    );
    assert!(
        other_log.take().is_empty(),
        "nothing went to the other origin"
    );
    assert_eq!(client.oneshot(as_alice("same")).await?.status(), 200);
    let seen = own_log.take();
    assert_eq!(seen[2].uri().path(), "/landing");
    assert_eq!(
        header(&seen[2], "authorization"),
        Some("Bearer ALICE-TOKEN")
    );
    Ok(())
}
