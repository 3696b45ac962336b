//! A client configured with nothing but an API's URL, against servers nobody
//! here wrote (tests/mcp/server.mjs, on Node, installed by
//! `npm ci --prefix tests/mcp`): the Model Context Protocol TypeScript SDK's
//! bearer-auth middleware and protected resource metadata router as the
//! resource, oidc-provider (dynamic registration, resource indicators, JWT
//! access tokens) as its authorization server. A service registers and gets
//! client credentials bound to the resource; a user logs in (authorization
//! code + PKCE, approved by the test on the provider's own pages); step-up
//! for a wider scope (one retry with the union, never a loop) and for a
//! stronger user authentication (the typed error and the authorization URL
//! asking for it); a fleet on Redis registers once. Never skipped: without
//! Node, the packages or Redis it fails. The fleet is eight processes: this
//! binary run again, one test as a member.

use crate::common;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::process::Command;
use tower::{Layer, ServiceExt};
use tower_client_auth::oauth2::{OAuth2Source, ProtectedResource};
use tower_client_auth::store::{MemoryStore, SharedStore};
use tower_client_auth::users::{UserKey, Users};
use tower_client_auth::{AuthLayer, BoxError, Credential, ReplayBody};

use common::{start_server, ServerProcess};

type Http = Client<HttpConnector, ReplayBody<Full<Bytes>>>;

/// Where the test's user is sent back to: never reached, the test reads the
/// redirect's `Location`.
const REDIRECT: &str = "http://127.0.0.1:9/callback";

struct Server {
    /// The API's URL: `http://127.0.0.1:PORT/mcp`.
    resource: String,
    /// `http://127.0.0.1:PORT`.
    origin: String,
    _process: ServerProcess,
}

async fn start() -> Server {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp");
    assert!(
        std::path::Path::new(dir)
            .join("node_modules/@modelcontextprotocol/sdk")
            .exists(),
        "run `npm ci --prefix tests/mcp` first (.ci/run does)"
    );
    let mut command = Command::new("node");
    command.arg("server.mjs").current_dir(dir);
    let (process, resource) = start_server(command, "tca-mcp-server.log").await;
    let origin = resource.trim_end_matches("/mcp").to_owned();
    Server {
        resource,
        origin,
        _process: process,
    }
}

fn http() -> Http {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn stats(http: &Http, origin: &str) -> serde_json::Value {
    let req = Request::get(format!("{origin}/control/stats"))
        .body(ReplayBody::passthrough(Full::new(Bytes::new())))
        .unwrap();
    let body = http.request(req).await.unwrap().into_body();
    serde_json::from_slice(&body.collect().await.unwrap().to_bytes()).unwrap()
}

fn n(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"))
}

fn get(url: &str) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::new(Bytes::new())).unwrap()
}

async fn json(res: http::Response<hyper::body::Incoming>) -> serde_json::Value {
    let body = res.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap_or_else(|_| serde_json::json!({}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_configured_with_the_api_url_alone_reaches_200_and_steps_up_once_in_the_layer(
) -> Result<(), BoxError> {
    let server = start().await;
    let http = http();
    let api = ProtectedResource::builder(&server.resource)
        .client_name("mcp-service-test")
        .build(http.clone())?;
    let credential = Credential::builder()
        .origin(&server.origin)
        .token_source(api.clone())
        .build()?;
    let client = AuthLayer::new(credential.clone()).layer(http.clone());

    // Metadata, the server's metadata, registration, a token with `resource`.
    let res = client.clone().oneshot(get(&server.resource)).await?;
    assert_eq!(res.status(), 200);
    let answer = json(res).await;
    assert_eq!(answer["scopes"], serde_json::json!(["mcp:read"]));
    let s = stats(&http, &server.origin).await;
    assert_eq!(s["registrations"], 1, "{s}");
    assert_eq!(s["token_requests"], 1, "{s}");
    assert_eq!(
        s["last_registration"]["grant_types"][0],
        "client_credentials"
    );
    assert_eq!(s["last_token_request"]["grant_type"], "client_credentials");
    assert_eq!(
        s["last_token_request"]["resource"],
        server.resource.as_str()
    );
    assert_eq!(s["last_token_request"]["scope"], "mcp:read");
    assert!(answer["client_id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));

    // Again: nothing discovered, registered or fetched anew.
    let res = client.clone().oneshot(get(&server.resource)).await?;
    assert_eq!(res.status(), 200);
    let s = stats(&http, &server.origin).await;
    assert_eq!(
        (s["registrations"].as_u64(), s["token_requests"].as_u64()),
        (Some(1), Some(1))
    );

    // Step-up: the SDK's 403 insufficient_scope names mcp:admin. The layer
    // asks for a token with the union and sends the request once more: 200.
    let admin = format!("{}/admin", server.resource);
    let before = stats(&http, &server.origin).await;
    let res = client.clone().oneshot(get(&admin)).await?;
    let status = res.status();
    let seen = stats(&http, &server.origin).await;
    assert_eq!(status, 200, "{seen}");
    let answer = json(res).await;
    assert_eq!(
        answer["scopes"],
        serde_json::json!(["mcp:read", "mcp:admin"])
    );
    let s = stats(&http, &server.origin).await;
    assert_eq!(s["token_requests"], 2, "{s}");
    assert_eq!(s["last_token_request"]["scope"], "mcp:read mcp:admin");
    assert_eq!(s["registrations"], 1, "{s}");
    assert_eq!(
        n(&s, "resource_requests") - n(&before, "resource_requests"),
        2
    );

    // A resource that keeps asking for more: one retry with the union, then
    // its 403 stands; asked again for nothing new, no retry at all.
    let stubborn = format!("{}/stubborn", server.resource);
    let res = client.clone().oneshot(get(&stubborn)).await?;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let refusal = res.headers().clone();
    let s2 = stats(&http, &server.origin).await;
    assert_eq!(
        n(&s2, "resource_requests") - n(&s, "resource_requests"),
        2,
        "one retry"
    );
    assert_eq!(n(&s2, "token_requests"), 3, "{s2}");
    assert_eq!(
        s2["last_token_request"]["scope"],
        "mcp:read mcp:admin mcp:write"
    );
    let res = client.clone().oneshot(get(&stubborn)).await?;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let s3 = stats(&http, &server.origin).await;
    assert_eq!(
        n(&s3, "resource_requests") - n(&s2, "resource_requests"),
        1,
        "no retry"
    );
    assert_eq!(n(&s3, "token_requests"), 3, "{s3}");
    // What the resource asks for is a typed error to the caller.
    let e = api.step_up(StatusCode::FORBIDDEN, &refusal).unwrap_err();
    assert!(e.is_step_up() && e.is_insufficient_scope(), "{e}");
    assert_eq!(
        e.step_up_scopes().unwrap(),
        ["mcp:read", "mcp:admin", "mcp:write"]
    );
    // The admin route still works with the wider token.
    let res = client.clone().oneshot(get(&admin)).await?;
    assert_eq!(res.status(), 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_logs_in_with_pkce_and_is_asked_for_a_stronger_authentication(
) -> Result<(), BoxError> {
    let server = start().await;
    let http = http();
    let api = ProtectedResource::builder(&server.resource)
        .client_name("mcp-user-test")
        .build(http.clone())?;

    // Registered as a public client for the redirect URI; the URL asks for
    // the resource, its scopes and a PKCE challenge.
    let request = api.authorization_url(REDIRECT, None).await?;
    let url = request.url().to_owned();
    let encoded: String = form_urlencoded::byte_serialize(server.resource.as_bytes()).collect();
    assert!(url.contains(&format!("resource={encoded}")), "{url}");
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    assert!(url.contains("scope=mcp%3Aread"), "{url}");
    let s = stats(&http, &server.origin).await;
    assert_eq!(s["registrations"], 1, "{s}");
    assert_eq!(s["last_registration"]["token_endpoint_auth_method"], "none");
    let issuer = s["issuer"].as_str().unwrap().to_owned();

    // The user logs in and consents on the provider's own pages.
    let callback = Browser::default().authorize(&issuer, &url, REDIRECT).await;
    let token = api.exchange_code(&request, &callback).await?;
    let s = stats(&http, &server.origin).await;
    assert_eq!(s["last_token_request"]["grant_type"], "authorization_code");
    assert_eq!(
        s["last_token_request"]["resource"],
        server.resource.as_str()
    );
    assert_eq!(s["registrations"], 1, "{s}");

    // Many users: the same registered client refreshes their tokens in
    // `Users`, whose login stores the token.
    let (user_client, _) = api.user_client(REDIRECT).await?;
    let users = Users::builder(&server.origin, user_client)
        .store(SharedStore::new(MemoryStore::new()))
        .build()?;
    let alice = UserKey::new("alice");
    users.login(&alice, token.clone()).await?;
    let client = AuthLayer::new(users.credential(&alice)?).layer(http.clone());
    let res = client.clone().oneshot(get(&server.resource)).await?;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await["scopes"], serde_json::json!(["mcp:read"]));

    // One user alone: a token source refreshing through the same client.
    let source: OAuth2Source = api.user_source(REDIRECT, token).await?;
    let credential = Credential::builder()
        .origin(&server.origin)
        .token_source(source)
        .build()?;
    let client = AuthLayer::new(credential).layer(http.clone());
    let res = client.clone().oneshot(get(&server.resource)).await?;
    assert_eq!(res.status(), 200);

    // RFC 9470: the resource wants a multi-factor login within 300 s.
    let sensitive = format!("{}/sensitive", server.resource);
    let res = client.clone().oneshot(get(&sensitive)).await?;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let e = api
        .step_up(res.status(), res.headers())
        .expect_err("a step-up the user must do");
    assert!(e.is_step_up() && e.is_user_authentication_required(), "{e}");
    assert_eq!(e.acr_values().unwrap(), ["urn:example:mfa"]);
    assert_eq!(e.max_age(), Some(300));
    let again = api.authorization_url(REDIRECT, Some(&e)).await?;
    assert!(
        again.url().contains("acr_values=urn%3Aexample%3Amfa"),
        "{}",
        again.url()
    );
    assert!(again.url().contains("max_age=300"), "{}", again.url());
    assert!(again.url().contains(&format!("resource={encoded}")));
    let s = stats(&http, &server.origin).await;
    assert_eq!(s["registrations"], 1, "the registration is kept: {s}");
    Ok(())
}

/// Set in a fleet member's environment: the API's URL, the store
/// namespace and the instant (Unix milliseconds) all members start at.
const FLEET_MEMBER: &str = "TCA_MCP_FLEET_MEMBER";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_on_redis_registers_once() -> Result<(), BoxError> {
    if let Ok(member) = std::env::var(FLEET_MEMBER) {
        return fleet_member(&member).await;
    }
    let server = start().await;
    let http = http();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    // A namespace of this run's own: Redis outlives the test.
    let namespace = format!("tca-mcp-fleet-{}-{}", std::process::id(), now.as_nanos());
    // Eight processes (this test binary again, running this test as a
    // member), each with its own Redis connection, discovery and
    // credential, told to send their first request at the same instant
    // (a member ready after it fails: the race is the test).
    let start_at = now.as_millis() + 3_000;
    let exe = std::env::current_exe()?;
    let members: Vec<_> = (0..8)
        .map(|_| {
            let mut command = Command::new(&exe);
            command
                .args([
                    "--exact",
                    "mcp_resource::a_fleet_on_redis_registers_once",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(
                    FLEET_MEMBER,
                    format!("{} {namespace} {start_at}", server.resource),
                )
                .kill_on_drop(true);
            tokio::spawn(async move { command.output().await })
        })
        .collect();
    let mut pids = std::collections::BTreeSet::new();
    for member in members {
        let out = member.await??;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "a member failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pid = stdout
            .lines()
            // The harness may print its `test … ...` on the same line.
            .find_map(|l| {
                l.split_once("fleet member reached 200: pid ")
                    .map(|(_, pid)| pid)
            })
            .unwrap_or_else(|| panic!("no member ran: {stdout}"));
        pids.insert(pid.to_owned());
    }
    assert_eq!(pids.len(), 8, "eight processes: {pids:?}");
    let s = stats(&http, &server.origin).await;
    assert_eq!(s["registrations"], 1, "the fleet registered once: {s}");
    assert_eq!(s["token_requests"], 1, "and fetched one token: {s}");
    assert_eq!(s["resource_ok"], 8, "{s}");
    Ok(())
}

/// One process of the fleet: configured with the API's URL and the shared
/// store alone, it waits for the common instant and asks once.
async fn fleet_member(member: &str) -> Result<(), BoxError> {
    use tower_client_auth::store::RedisStore;

    let mut parts = member.split(' ');
    let (Some(resource), Some(namespace), Some(start_at)) =
        (parts.next(), parts.next(), parts.next())
    else {
        panic!("{FLEET_MEMBER}={member}: want `URL NAMESPACE START_MS`");
    };
    let origin = resource.trim_end_matches("/mcp");
    let http = http();
    let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
    let shared = SharedStore::new(store)
        .namespace(namespace)
        .encrypt_with([9u8; 32]);
    let api = ProtectedResource::builder(resource)
        .client_name("mcp-fleet-test")
        .shared_store(shared.clone())
        .build(http.clone())?;
    let credential = Credential::builder()
        .origin(origin)
        .token_source(api)
        .shared_store(shared)
        .build()?;
    let client = AuthLayer::new(credential).layer(http);
    let start_at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(start_at.parse()?);
    // A member that came after the instant would not race the others.
    let wait = start_at.duration_since(std::time::SystemTime::now())?;
    tokio::time::sleep(wait).await;
    let res = client.oneshot(get(resource)).await?;
    assert_eq!(res.status(), 200);
    println!("fleet member reached 200: pid {}", std::process::id());
    Ok(())
}

/// A user at a browser, as far as the provider's pages need one: cookies,
/// redirects, forms filled in (any login and password).
#[derive(Default)]
struct Browser {
    cookies: std::collections::BTreeMap<String, String>,
}

impl Browser {
    /// Follows the pages from `start` until a redirect to `redirect`;
    /// returns its query.
    async fn authorize(&mut self, issuer: &str, start: &str, redirect: &str) -> String {
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let mut next = (http::Method::GET, start.to_owned(), String::new());
        let mut seen = Vec::new();
        for _ in 0..16 {
            let (method, url, form) = next;
            if let Some(query) = url.strip_prefix(&format!("{redirect}?")) {
                return query.to_owned();
            }
            let url = if url.starts_with('/') {
                format!("{issuer}{url}")
            } else {
                url
            };
            let mut req = Request::builder().method(method.clone()).uri(&url);
            if !self.cookies.is_empty() {
                let jar: Vec<String> = self
                    .cookies
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                req = req.header("cookie", jar.join("; "));
            }
            if method == http::Method::POST {
                req = req.header("content-type", "application/x-www-form-urlencoded");
            }
            let res = client
                .request(req.body(Full::new(Bytes::from(form))).unwrap())
                .await
                .unwrap();
            for c in res.headers().get_all("set-cookie") {
                let pair = c.to_str().unwrap().split(';').next().unwrap();
                if let Some((k, v)) = pair.split_once('=') {
                    self.cookies.insert(k.trim().to_owned(), v.to_owned());
                }
            }
            if res.status().is_redirection() {
                let location = res.headers()["location"].to_str().unwrap().to_owned();
                seen.push(format!("redirect {location}"));
                next = (http::Method::GET, location, String::new());
                continue;
            }
            let status = res.status();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            let page = String::from_utf8_lossy(&body).into_owned();
            assert!(status.is_success(), "{status}: {page}");
            let form_at = page
                .find("<form")
                .unwrap_or_else(|| panic!("no form and no redirect: {page}"));
            let form_html = &page[form_at
                ..page[form_at..]
                    .find("</form>")
                    .map_or(page.len(), |e| form_at + e)];
            let action = attr(form_html, "action").expect("a form action");
            let mut fields = form_urlencoded::Serializer::new(String::new());
            for input in form_html.split("<input").skip(1) {
                let Some(name) = attr(input, "name") else {
                    continue;
                };
                let value = match name.as_str() {
                    "login" => "alice".to_owned(),
                    "password" => "any-password".to_owned(),
                    _ => attr(input, "value").unwrap_or_default(),
                };
                fields.append_pair(&name, &value);
            }
            seen.push("form".to_owned());
            next = (http::Method::POST, action, fields.finish());
        }
        panic!("no redirect to {redirect}: {seen:?}");
    }
}

/// The value of `name="…"` in an HTML tag.
fn attr(tag: &str, name: &str) -> Option<String> {
    let at = tag.find(&format!("{name}=\""))? + name.len() + 2;
    let end = tag[at..].find('"')? + at;
    Some(tag[at..end].to_owned())
}
