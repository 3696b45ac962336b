//! Hostile protected resource metadata (RFC 9728), from loopback servers
//! that log what reaches them: a `resource` that is not the API's, an
//! authorization server other than the one configured, an oversized
//! document, a redirect, an authorization server whose metadata names
//! another issuer. Each is a typed error, and nothing (no registration, no
//! token request, no credential) reaches a server the metadata should not
//! have sent the client to. Also what a resource asks of a client that
//! behaves: a step-up refused, a client ID metadata document.

use crate::common;

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use tower_client_auth::oauth2::{IntoHttpService, ProtectedResource, MAX_RESOURCE_METADATA};
use tower_client_auth::{BoxError, Credential};

use common::{json, logging_server, Log};

/// An authorization server that would take anything: every request it gets
/// is logged, so a test can say none came.
async fn attacker() -> (String, Log) {
    logging_server(|req, _| {
        let issuer = format!("http://{}", req.headers()["host"].to_str().unwrap());
        json(
            200,
            &serde_json::json!({
                "issuer": issuer,
                "token_endpoint": format!("{issuer}/token"),
                "registration_endpoint": format!("{issuer}/reg"),
                "client_id": "evil",
                "client_secret": "evil",
                "access_token": "evil",
                "token_type": "Bearer",
            })
            .to_string(),
        )
    })
    .await
}

/// A resource whose metadata at the well-known URL is `metadata(its own
/// origin)`; other paths answer 401 with a challenge pointing there.
async fn resource(
    metadata: impl Fn(&str) -> Response<Full<Bytes>> + Send + Sync + 'static,
) -> (String, Log) {
    logging_server(move |req, _| {
        let origin = format!("http://{}", req.headers()["host"].to_str().unwrap());
        if req.uri().path().starts_with("/.well-known/oauth-protected-resource") {
            metadata(&origin)
        } else {
            let mut res = json(401, r#"{"error":"invalid_token"}"#);
            res.headers_mut().insert(
                "www-authenticate",
                format!(
                    r#"Bearer resource_metadata="{origin}/.well-known/oauth-protected-resource/mcp""#
                )
                .parse()
                .unwrap(),
            );
            res
        }
    })
    .await
}

fn document(resource: &str, servers: &[&str]) -> Response<Full<Bytes>> {
    json(
        200,
        &serde_json::json!({ "resource": resource, "authorization_servers": servers }).to_string(),
    )
}

fn api(url: &str) -> ProtectedResource {
    ProtectedResource::builder(url)
        .build(common::client::<Full<Bytes>>().into_http_service())
        .unwrap()
}

#[tokio::test]
async fn another_resources_metadata_is_refused() -> Result<(), BoxError> {
    let (evil, evil_log) = attacker().await;
    let e2 = evil.clone();
    let (origin, _) = resource(move |_| document("http://127.0.0.1:1/mcp", &[&e2])).await;
    let e = api(&format!("{origin}/mcp"))
        .client_credentials()
        .await
        .unwrap_err();
    assert!(e.is_resource_metadata() && !e.is_transient(), "{e}");
    assert!(
        e.to_string().contains("not the one it was fetched for"),
        "{e}"
    );
    assert_eq!(evil_log.len(), 0, "nothing sent to {evil}");

    // A longer path than the API's is another resource too.
    let e3 = evil.clone();
    let (origin, _) = resource(move |o| document(&format!("{o}/mcp/admin"), &[&e3])).await;
    let e = api(&format!("{origin}/mcp"))
        .client_credentials()
        .await
        .unwrap_err();
    assert!(e.is_resource_metadata(), "{e}");
    assert_eq!(evil_log.len(), 0);
    Ok(())
}

#[tokio::test]
async fn an_authorization_server_not_listed_gets_nothing() -> Result<(), BoxError> {
    let (evil, evil_log) = attacker().await;
    let (pinned, pinned_log) = attacker().await;
    let e2 = evil.clone();
    let (origin, _) = resource(move |o| document(&format!("{o}/mcp"), &[&e2])).await;
    let api = ProtectedResource::builder(format!("{origin}/mcp"))
        .authorization_server(pinned.clone())
        .build(common::client::<Full<Bytes>>().into_http_service())?;
    let e = api.client_credentials().await.unwrap_err();
    assert!(e.is_resource_metadata(), "{e}");
    assert!(
        e.to_string().contains("configured authorization server"),
        "{e}"
    );
    assert_eq!(evil_log.len(), 0, "the listed one is not ours");
    assert_eq!(pinned_log.len(), 0, "and ours is not listed");
    Ok(())
}

#[tokio::test]
async fn an_oversized_document_is_refused() -> Result<(), BoxError> {
    let (evil, evil_log) = attacker().await;
    let e2 = evil.clone();
    let (origin, _) = resource(move |o| {
        let padding = "x".repeat(MAX_RESOURCE_METADATA);
        json(
            200,
            &serde_json::json!({
                "resource": format!("{o}/mcp"),
                "authorization_servers": [e2],
                "padding": padding,
            })
            .to_string(),
        )
    })
    .await;
    let e = api(&format!("{origin}/mcp"))
        .client_credentials()
        .await
        .unwrap_err();
    assert!(e.is_resource_metadata(), "{e}");
    assert!(e.to_string().contains("larger than"), "{e}");
    assert_eq!(evil_log.len(), 0);
    Ok(())
}

#[tokio::test]
async fn a_redirect_is_not_followed() -> Result<(), BoxError> {
    let (evil, evil_log) = attacker().await;
    let target = format!("{evil}/.well-known/oauth-protected-resource/mcp");
    let (origin, log) = resource(move |_| {
        Response::builder()
            .status(302)
            .header("location", target.clone())
            .body(Full::new(Bytes::new()))
            .unwrap()
    })
    .await;
    let e = api(&format!("{origin}/mcp"))
        .client_credentials()
        .await
        .unwrap_err();
    assert!(e.is_resource_metadata() && e.is_metadata_redirect(), "{e}");
    assert_eq!(log.len(), 1, "one metadata request");
    assert_eq!(evil_log.len(), 0, "the redirect was not followed");
    Ok(())
}

#[tokio::test]
async fn an_issuer_mismatch_is_refused_before_registration() -> Result<(), BoxError> {
    // The listed server's metadata names the attacker as issuer, with the
    // attacker's registration and token endpoints.
    let (evil, evil_log) = attacker().await;
    let e2 = evil.clone();
    let (listed, listed_log) = logging_server(move |_, _| {
        json(
            200,
            &serde_json::json!({
                "issuer": e2,
                "token_endpoint": format!("{e2}/token"),
                "registration_endpoint": format!("{e2}/reg"),
            })
            .to_string(),
        )
    })
    .await;
    let l2 = listed.clone();
    let (origin, _) = resource(move |o| document(&format!("{o}/mcp"), &[&l2])).await;
    let e = api(&format!("{origin}/mcp"))
        .client_credentials()
        .await
        .unwrap_err();
    assert!(e.is_invalid_response(), "{e}");
    assert!(e.to_string().contains("not the one asked for"), "{e}");
    assert_eq!(evil_log.len(), 0, "no registration, no token request");
    assert!(
        listed_log
            .take()
            .iter()
            .all(|r| r.method() == http::Method::GET),
        "only its metadata was read"
    );
    Ok(())
}

#[tokio::test]
async fn a_hostile_challenge_sends_no_credential() -> Result<(), BoxError> {
    // The API's 401 points at metadata naming another resource: the
    // credential's token fails with the typed error, no token is fetched.
    let (evil, evil_log) = attacker().await;
    let e2 = evil.clone();
    let (origin, log) = resource(move |_| document("http://127.0.0.1:1/mcp", &[&e2])).await;
    let url = format!("{origin}/mcp");
    let api = api(&url);
    let credential = Credential::builder()
        .origin(&origin)
        .token_source(api.clone())
        .build()?;
    let e = credential.token().await.unwrap_err();
    assert!(e.is_resource_metadata(), "{e}");
    // Learning the challenge's metadata URL changes nothing.
    let res = common::client::<Full<Bytes>>()
        .request(
            http::Request::get(&url)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await?;
    assert_eq!(res.status(), 401);
    api.learn(res.headers());
    let e = api.client_credentials().await.unwrap_err();
    assert!(e.is_resource_metadata(), "{e}");
    assert_eq!(evil_log.len(), 0);
    assert!(log
        .take()
        .iter()
        .all(|r| r.headers().get("authorization").is_none()));
    Ok(())
}

#[tokio::test]
async fn a_step_up_the_server_refuses_is_not_asked_for_again() -> Result<(), BoxError> {
    // One origin as resource and authorization server; the token endpoint
    // refuses the scope `mcp:root`.
    let (origin, log) = logging_server(|req, _| {
        let o = format!("http://{}", req.headers()["host"].to_str().unwrap());
        let body = String::from_utf8_lossy(req.body()).into_owned();
        match req.uri().path() {
            "/.well-known/oauth-protected-resource/mcp" => json(
                200,
                &serde_json::json!({
                    "resource": format!("{o}/mcp"),
                    "authorization_servers": [o],
                    "scopes_supported": ["mcp:read"],
                })
                .to_string(),
            ),
            "/.well-known/openid-configuration" => json(
                200,
                &serde_json::json!({
                    "issuer": o,
                    "token_endpoint": format!("{o}/token"),
                    "registration_endpoint": format!("{o}/reg"),
                })
                .to_string(),
            ),
            "/reg" => json(201, r#"{"client_id":"c-1","client_secret":"s-1"}"#),
            "/token" if body.contains("mcp%3Aroot") => json(400, r#"{"error":"invalid_scope"}"#),
            "/token" => json(
                200,
                r#"{"access_token":"t","token_type":"Bearer","expires_in":600}"#,
            ),
            _ => json(404, "{}"),
        }
    })
    .await;
    let api = api(&format!("{origin}/mcp"));
    api.client_credentials().await?;
    let mut refusal = http::HeaderMap::new();
    refusal.insert(
        "www-authenticate",
        r#"Bearer error="insufficient_scope", scope="mcp:root""#.parse()?,
    );
    assert!(api.step_up(http::StatusCode::FORBIDDEN, &refusal)?);
    let e = api.client_credentials().await.unwrap_err();
    assert!(e.is_invalid_scope(), "{e}");
    // Refused once: the same step-up is now the caller's typed error.
    let e = api
        .step_up(http::StatusCode::FORBIDDEN, &refusal)
        .unwrap_err();
    assert!(e.is_insufficient_scope(), "{e}");
    api.client_credentials().await?;
    let tokens: Vec<String> = log
        .take()
        .iter()
        .filter(|r| r.uri().path() == "/token")
        .map(|r| String::from_utf8_lossy(r.body()).into_owned())
        .collect();
    assert_eq!(tokens.len(), 3);
    assert!(tokens[0].contains("scope=mcp%3Aread&") || tokens[0].ends_with("scope=mcp%3Aread"));
    assert!(tokens[1].contains("mcp%3Aread+mcp%3Aroot"), "{}", tokens[1]);
    assert!(
        !tokens[2].contains("mcp%3Aroot"),
        "back to what was granted: {}",
        tokens[2]
    );
    assert!(tokens.iter().all(|t| t.contains("resource=http")));
    Ok(())
}

#[tokio::test]
async fn a_refused_step_up_in_the_layer_hands_back_the_403_and_cools_nothing_down(
) -> Result<(), BoxError> {
    use tower::{Layer, ServiceExt};
    use tower_client_auth::{AuthLayer, ReplayBody};

    // `/mcp/root` needs `mcp:root`, which the token endpoint refuses
    // (`invalid_scope`); `/mcp` takes the token the client starts with.
    let (origin, log) = logging_server(|req, _| {
        let o = format!("http://{}", req.headers()["host"].to_str().unwrap());
        let body = String::from_utf8_lossy(req.body()).into_owned();
        match req.uri().path() {
            "/.well-known/oauth-protected-resource/mcp" => json(
                200,
                &serde_json::json!({
                    "resource": format!("{o}/mcp"),
                    "authorization_servers": [o],
                    "scopes_supported": ["mcp:read"],
                })
                .to_string(),
            ),
            "/.well-known/openid-configuration" => json(
                200,
                &serde_json::json!({
                    "issuer": o,
                    "token_endpoint": format!("{o}/token"),
                    "registration_endpoint": format!("{o}/reg"),
                })
                .to_string(),
            ),
            "/reg" => json(201, r#"{"client_id":"c-1","client_secret":"s-1"}"#),
            "/token" if body.contains("mcp%3Aroot") => json(400, r#"{"error":"invalid_scope"}"#),
            "/token" => json(
                200,
                r#"{"access_token":"t","token_type":"Bearer","expires_in":600}"#,
            ),
            "/mcp/root" => {
                let mut res = json(403, r#"{"error":"insufficient_scope"}"#);
                res.headers_mut().insert(
                    "www-authenticate",
                    r#"Bearer error="insufficient_scope", scope="mcp:root""#
                        .parse()
                        .unwrap(),
                );
                res
            }
            "/mcp" => json(200, "{}"),
            _ => json(404, "{}"),
        }
    })
    .await;
    let api = ProtectedResource::builder(format!("{origin}/mcp"))
        .build(common::client::<Full<Bytes>>().into_http_service())?;
    let credential = Credential::builder()
        .origin(&origin)
        .token_source(api)
        .build()?;
    let client = AuthLayer::new(credential).layer(common::client::<ReplayBody<Full<Bytes>>>());
    let get = |path: &str| {
        http::Request::get(format!("{origin}{path}"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };

    // The widened token is refused: the caller gets the API's own 403.
    let res = client.clone().oneshot(get("/mcp/root")).await?;
    assert_eq!(res.status(), 403);
    // And the credential still works: no cool-down from the refusal.
    let res = client.clone().oneshot(get("/mcp")).await?;
    assert_eq!(res.status(), 200);
    let tokens: Vec<String> = log
        .take()
        .iter()
        .filter(|r| r.uri().path() == "/token")
        .map(|r| String::from_utf8_lossy(r.body()).into_owned())
        .collect();
    // The first token and the widened one, refused: the first token is
    // kept (still valid), not asked for again.
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    assert!(tokens[1].contains("mcp%3Aroot"), "{}", tokens[1]);
    // Asked again: the refused set is known, so no token request and no
    // retry, the API asked once.
    let res = client.clone().oneshot(get("/mcp/root")).await?;
    assert_eq!(res.status(), 403);
    let again: Vec<String> = log
        .take()
        .iter()
        .map(|r| r.uri().path().to_owned())
        .collect();
    assert_eq!(again, ["/mcp/root"]);
    Ok(())
}

#[tokio::test]
async fn no_metadata_says_where_it_looked() -> Result<(), BoxError> {
    let (origin, _) = resource(|_| json(404, "{}")).await;
    let e = api(&format!("{origin}/mcp"))
        .client_credentials()
        .await
        .unwrap_err();
    assert!(e.is_resource_metadata() && !e.is_transient(), "{e}");
    assert!(
        e.to_string()
            .contains("/.well-known/oauth-protected-resource/mcp answered HTTP 404"),
        "{e}"
    );
    Ok(())
}

#[tokio::test]
async fn metadata_elsewhere_is_found_through_the_apis_401() -> Result<(), BoxError> {
    // Nothing at the well-known location: the API's 401 names the metadata
    // URL, which is read, checked and followed to the authorization server.
    let (origin, log) = logging_server(|req, _| {
        let o = format!("http://{}", req.headers()["host"].to_str().unwrap());
        match req.uri().path() {
            "/mcp" => {
                let mut res = json(401, "{}");
                res.headers_mut().insert(
                    "www-authenticate",
                    format!(r#"Bearer resource_metadata="{o}/meta/prm", scope="files:read""#)
                        .parse()
                        .unwrap(),
                );
                res
            }
            "/meta/prm" => json(
                200,
                &serde_json::json!({
                    "resource": format!("{o}/mcp"),
                    "authorization_servers": [o],
                })
                .to_string(),
            ),
            "/.well-known/openid-configuration" => json(
                200,
                &serde_json::json!({
                    "issuer": o,
                    "token_endpoint": format!("{o}/token"),
                    "registration_endpoint": format!("{o}/reg"),
                })
                .to_string(),
            ),
            "/reg" => json(201, r#"{"client_id":"c-1","client_secret":"s-1"}"#),
            "/token" => json(
                200,
                r#"{"access_token":"t","token_type":"Bearer","expires_in":600}"#,
            ),
            _ => json(404, "{}"),
        }
    })
    .await;
    api(&format!("{origin}/mcp")).client_credentials().await?;
    let requests = log.take();
    let seen: Vec<(String, String)> = requests
        .iter()
        .map(|r| {
            (
                r.uri().path().to_owned(),
                common::header(r, "authorization").unwrap_or("").to_owned(),
            )
        })
        .collect();
    let paths: Vec<&str> = seen.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/.well-known/oauth-protected-resource/mcp",
            "/mcp",
            "/meta/prm",
            "/.well-known/openid-configuration",
            "/reg",
            "/token"
        ]
    );
    assert_eq!(seen[1].1, "", "the API was asked without credentials");
    // The scope the 401 named is what the token is asked for.
    let token_request = String::from_utf8_lossy(requests[5].body()).into_owned();
    assert!(
        token_request.contains("scope=files%3Aread"),
        "{token_request}"
    );
    Ok(())
}

/// A resource and its authorization server on one origin, the server
/// advertising client ID metadata documents or not.
async fn user_login_server(documents_supported: bool) -> (String, Log) {
    logging_server(move |req, _| {
        let o = format!("http://{}", req.headers()["host"].to_str().unwrap());
        match req.uri().path() {
            "/.well-known/oauth-protected-resource/mcp" => json(
                200,
                &serde_json::json!({
                    "resource": format!("{o}/mcp"),
                    "authorization_servers": [o],
                    "scopes_supported": ["mcp:read"],
                })
                .to_string(),
            ),
            "/.well-known/openid-configuration" => json(
                200,
                &serde_json::json!({
                    "issuer": o,
                    "authorization_endpoint": format!("{o}/authorize"),
                    "token_endpoint": format!("{o}/token"),
                    "registration_endpoint": format!("{o}/reg"),
                    "client_id_metadata_document_supported": documents_supported,
                })
                .to_string(),
            ),
            "/reg" => json(201, r#"{"client_id":"registered-1"}"#),
            "/token" => json(
                200,
                r#"{"access_token":"t","token_type":"Bearer","expires_in":600}"#,
            ),
            _ => json(404, "{}"),
        }
    })
    .await
}

#[tokio::test]
async fn a_client_metadata_document_is_the_client_id_where_the_server_supports_it(
) -> Result<(), BoxError> {
    const DOCUMENT: &str = "https://app.example.com/oauth/client.json";
    const REDIRECT: &str = "http://127.0.0.1:9/callback";
    for supported in [true, false] {
        let (origin, log) = user_login_server(supported).await;
        let api = ProtectedResource::builder(format!("{origin}/mcp"))
            .client_metadata_document(DOCUMENT)
            .build(common::client::<Full<Bytes>>().into_http_service())?;
        let request = api.authorization_url(REDIRECT, None).await?;
        let callback = format!("code=c-1&state={}", request.state());
        api.exchange_code(&request, &callback).await?;
        let seen = log.take();
        let registrations = seen.iter().filter(|r| r.uri().path() == "/reg").count();
        let token = seen
            .iter()
            .find(|r| r.uri().path() == "/token")
            .map(|r| String::from_utf8_lossy(r.body()).into_owned())
            .expect("a token request");
        let encoded = "client_id=https%3A%2F%2Fapp.example.com%2Foauth%2Fclient.json";
        if supported {
            // The document's URL is the client id: nothing registered.
            assert_eq!(registrations, 0);
            assert!(request.url().contains(encoded), "{}", request.url());
            assert!(token.contains(encoded), "{token}");
        } else {
            // Not advertised: registered as before.
            assert_eq!(registrations, 1);
            assert!(
                request.url().contains("client_id=registered-1"),
                "{}",
                request.url()
            );
            assert!(token.contains("client_id=registered-1"), "{token}");
        }
        assert!(token.contains("code_verifier="), "{token}");
    }
    Ok(())
}

/// An authorization server on its own origin that registers anyone and
/// issues `token`.
async fn authorization_server(token: &'static str) -> (String, Log) {
    logging_server(move |req, _| {
        let o = format!("http://{}", req.headers()["host"].to_str().unwrap());
        match req.uri().path() {
            "/.well-known/openid-configuration" => json(
                200,
                &serde_json::json!({
                    "issuer": o,
                    "token_endpoint": format!("{o}/token"),
                    "registration_endpoint": format!("{o}/reg"),
                })
                .to_string(),
            ),
            "/reg" => json(201, r#"{"client_id":"c","client_secret":"s"}"#),
            "/token" => json(
                200,
                &format!(r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":600}}"#),
            ),
            _ => json(404, "{}"),
        }
    })
    .await
}

#[tokio::test]
async fn a_401_naming_new_metadata_moves_the_layer_to_the_new_authorization_server(
) -> Result<(), BoxError> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use tower::{Layer, ServiceExt};
    use tower_client_auth::{AuthLayer, ReplayBody};

    let (first, first_log) = authorization_server("from-first").await;
    let (second, second_log) = authorization_server("from-second").await;
    // The resource moves to the second server: tokens of the first are then
    // refused with a 401 whose challenge names the new metadata.
    let moved = Arc::new(AtomicBool::new(false));
    let m = moved.clone();
    let (origin, _) = logging_server(move |req, _| {
        let o = format!("http://{}", req.headers()["host"].to_str().unwrap());
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        match req.uri().path() {
            "/.well-known/oauth-protected-resource/mcp" => {
                document(&format!("{o}/mcp"), &[first.as_str()])
            }
            "/metadata-now" => document(&format!("{o}/mcp"), &[second.as_str()]),
            "/mcp" if auth == "Bearer from-second" => json(200, "{}"),
            "/mcp" if auth == "Bearer from-first" && !m.load(Ordering::SeqCst) => json(200, "{}"),
            _ => {
                let mut res = json(401, r#"{"error":"invalid_token"}"#);
                res.headers_mut().insert(
                    "www-authenticate",
                    format!(
                        r#"Bearer error="invalid_token", resource_metadata="{o}/metadata-now""#
                    )
                    .parse()
                    .unwrap(),
                );
                res
            }
        }
    })
    .await;
    let api = ProtectedResource::builder(format!("{origin}/mcp"))
        .build(common::client::<Full<Bytes>>().into_http_service())?;
    let credential = Credential::builder()
        .origin(&origin)
        .token_source(api)
        .build()?;
    let client = AuthLayer::new(credential).layer(common::client::<ReplayBody<Full<Bytes>>>());
    let get = || {
        http::Request::get(format!("{origin}/mcp"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    assert_eq!(client.clone().oneshot(get()).await?.status(), 200);
    moved.store(true, Ordering::SeqCst);
    // One 401, read by the token source: the new metadata, the new server,
    // a registration there, its token, the request sent once more.
    assert_eq!(client.clone().oneshot(get()).await?.status(), 200);
    let paths = |log: &Log| -> Vec<String> {
        log.take()
            .iter()
            .map(|r| r.uri().path().to_owned())
            .collect()
    };
    let first_seen = paths(&first_log);
    assert_eq!(
        first_seen.iter().filter(|p| *p == "/token").count(),
        1,
        "{first_seen:?}"
    );
    let second_seen = paths(&second_log);
    assert_eq!(
        second_seen.iter().filter(|p| *p == "/reg").count(),
        1,
        "{second_seen:?}"
    );
    assert_eq!(
        second_seen.iter().filter(|p| *p == "/token").count(),
        1,
        "{second_seen:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_401_cannot_disable_the_client_or_send_it_elsewhere() -> Result<(), BoxError> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tower::{Layer, ServiceExt};
    use tower_client_auth::{AuthLayer, ReplayBody};

    let (first, first_log) = authorization_server("from-first").await;
    let (second, second_log) = authorization_server("from-second").await;
    let (evil, evil_log) = attacker().await;
    // What the next 401 of `/mcp` names: 0 accepts the first server's token.
    let mode = Arc::new(AtomicUsize::new(0));
    let m = mode.clone();
    let (origin, _) = logging_server(move |req, _| {
        let o = format!("http://{}", req.headers()["host"].to_str().unwrap());
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let refuse = |metadata: String| {
            let mut res = json(401, r#"{"error":"invalid_token"}"#);
            res.headers_mut().insert(
                "www-authenticate",
                format!(r#"Bearer error="invalid_token", resource_metadata="{metadata}""#)
                    .parse()
                    .unwrap(),
            );
            res
        };
        match (req.uri().path(), m.load(Ordering::SeqCst)) {
            ("/.well-known/oauth-protected-resource/mcp", _) => {
                document(&format!("{o}/mcp"), &[first.as_str()])
            }
            // Same origin, but another resource's metadata.
            ("/other-metadata", _) => document(&format!("{o}/other"), &[second.as_str()]),
            // Same origin, and it would move the client: only a 401 of this
            // resource may say so.
            ("/moved-metadata", _) => document(&format!("{o}/mcp"), &[second.as_str()]),
            ("/mcp", 0) if auth == "Bearer from-first" => json(200, "{}"),
            ("/mcp", 1) => refuse(format!("{o}/other-metadata")),
            ("/mcp", 2) => refuse(format!("{evil}/.well-known/oauth-protected-resource/mcp")),
            // Another API on the origin: its 401 speaks for itself only.
            ("/elsewhere", _) => refuse(format!("{o}/moved-metadata")),
            _ => json(404, "{}"),
        }
    })
    .await;
    let api = ProtectedResource::builder(format!("{origin}/mcp"))
        .build(common::client::<Full<Bytes>>().into_http_service())?;
    let credential = Credential::builder()
        .origin(&origin)
        .token_source(api)
        .build()?;
    let client = AuthLayer::new(credential).layer(common::client::<ReplayBody<Full<Bytes>>>());
    let get = |path: &str| {
        http::Request::get(format!("{origin}{path}"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    assert_eq!(client.clone().oneshot(get("/mcp")).await?.status(), 200);

    // Another resource's metadata: tried once, dropped; the 401 stands and
    // the next request works as before (no cool-down, no stuck URL).
    mode.store(1, Ordering::SeqCst);
    assert_eq!(client.clone().oneshot(get("/mcp")).await?.status(), 401);
    mode.store(0, Ordering::SeqCst);
    assert_eq!(client.clone().oneshot(get("/mcp")).await?.status(), 200);

    // Metadata on another origin: never fetched.
    mode.store(2, Ordering::SeqCst);
    assert_eq!(client.clone().oneshot(get("/mcp")).await?.status(), 401);
    mode.store(0, Ordering::SeqCst);
    assert_eq!(client.clone().oneshot(get("/mcp")).await?.status(), 200);

    // Another path's 401 does not move this resource's client.
    assert_eq!(
        client.clone().oneshot(get("/elsewhere")).await?.status(),
        401
    );
    assert_eq!(client.clone().oneshot(get("/mcp")).await?.status(), 200);

    assert_eq!(evil_log.len(), 0, "nothing reached the other origin");
    assert_eq!(second_log.len(), 0, "nothing reached the other server");
    let tokens = first_log
        .take()
        .iter()
        .filter(|r| r.uri().path() == "/token")
        .count();
    // The first token, and one newer token per retried 401.
    assert_eq!(tokens, 4, "{tokens}");
    Ok(())
}

#[test]
fn client_metadata_document_urls_that_are_not_client_ids_are_refused() {
    let http = || common::client::<Full<Bytes>>().into_http_service();
    for url in [
        "http://app.example.com/client.json",
        "HTTPS://app.example.com/client.json",
        "https://app.example.com/",
        "https://app.example.com/client.json?v=1",
        "https://app.example.com/client.json#x",
        "https://app.example.com/a/../client.json",
        "https://app.example.com/a/%2E%2e/client.json",
        "https://user@app.example.com/client.json",
        "https://127.0.0.1:8443/../client.json",
    ] {
        let e = ProtectedResource::builder("https://api.example.com/mcp")
            .client_metadata_document(url)
            .build(http())
            .unwrap_err();
        assert!(e.is_config(), "{url}: {e}");
    }
    // A client of your own and a document: one or the other.
    let e = ProtectedResource::builder("https://api.example.com/mcp")
        .client("my-client", None)
        .client_metadata_document("https://app.example.com/client.json")
        .build(http())
        .unwrap_err();
    assert!(e.is_config(), "{e}");
    assert!(ProtectedResource::builder("https://api.example.com/mcp")
        .client_metadata_document("https://app.example.com/oauth/client.json")
        .build(http())
        .is_ok());
}
