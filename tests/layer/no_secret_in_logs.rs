//! Every tracing event the crate emits, at TRACE level, through a successful
//! fetch, a 401 retry, a transient failure and a rejected password, and
//! through the guard taking a user's token off a hop to another origin and
//! the refusal of URLs with user information or plain http: no secret in any
//! of them.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower::{service_fn, Layer, ServiceExt};
use tower_client_auth::oauth2::{OAuth2Source, TokenClient};
use tower_client_auth::token::ManagedOptions;
use tower_client_auth::{AuthLayer, Credential, ReplayBody};

const SECRETS: &[&str] = &[
    "CLIENT-SECRET-1",
    "PASSWORD-2",
    "ACCESS-3",
    "ACCESS-4",
    "REFRESH-5",
    "APIKEY-6",
];

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn tracing_output_carries_no_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // Token endpoint: 503, then ACCESS-3, then ACCESS-4.
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let endpoint = service_fn(move |_req: Request<Full<Bytes>>| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            let (status, body) = match n {
                0 => (503, r#"{"error":"temporarily_unavailable"}"#.to_owned()),
                1 => (
                    200,
                    r#"{"access_token":"ACCESS-3","expires_in":3600,"refresh_token":"REFRESH-5"}"#
                        .to_owned(),
                ),
                2 => (
                    200,
                    r#"{"access_token":"ACCESS-4","expires_in":3600}"#.to_owned(),
                ),
                _ => (500, String::new()),
            };
            Ok::<_, std::convert::Infallible>(
                Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .unwrap(),
            )
        }
    });
    let tc = TokenClient::builder("https://auth.example.com/token")
        .client_id("cid")
        .client_secret("CLIENT-SECRET-1")
        .build(endpoint)
        .unwrap();
    let options = ManagedOptions::default().backoff(
        std::time::Duration::from_millis(1),
        std::time::Duration::from_millis(2),
    );
    let cred = Credential::builder()
        .origin("https://api.example.com")
        .api_key("x-api-key", "APIKEY-6")
        .token_source_with(OAuth2Source::password(tc, "user", "PASSWORD-2"), options)
        .build()
        .unwrap();

    // The API rejects ACCESS-3 once, so the layer retries with a refreshed token.
    let api = service_fn(|req: Request<ReplayBody<Full<Bytes>>>| async move {
        let status = if req.headers()["authorization"] == "Bearer ACCESS-3" {
            401
        } else {
            200
        };
        Ok::<_, std::convert::Infallible>(Response::builder().status(status).body(()).unwrap())
    });
    let svc = AuthLayer::new(cred.clone()).layer(api);
    let req = || {
        Request::get("https://api.example.com/x")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    assert_eq!(svc.clone().oneshot(req()).await.unwrap().status(), 200);
    assert_eq!(cred.stats().unwrap().retries_on_401, 1);
    // A credential whose password the endpoint rejects (its fourth answer on).
    let rejecting = service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, std::convert::Infallible>(
            Response::builder()
                .status(400)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(
                    br#"{"error":"invalid_grant","error_description":"bad password"}"#,
                )))
                .unwrap(),
        )
    });
    let tc = TokenClient::builder("https://auth.example.com/token")
        .client_id("cid")
        .client_secret("CLIENT-SECRET-1")
        .build(rejecting)
        .unwrap();
    let wrong = Credential::builder()
        .origin("https://api.example.com")
        .name("wrong-password")
        .token_source(OAuth2Source::password(tc, "user", "PASSWORD-2"))
        .build()
        .unwrap();
    assert!(wrong.token().await.unwrap_err().is_invalid_grant());

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("token fetched"),
        "events were captured:\n{text}"
    );
    assert!(text.contains("retrying request after 401"), "{text}");
    assert!(text.contains("token request failed"), "{text}");
    // Every event names its credential: the default name (its origin) or the
    // one given.
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            line.contains("credential"),
            "an event without its credential: {line}"
        );
    }
    assert!(
        text.contains("credential=https://api.example.com"),
        "{text}"
    );
    assert!(text.contains("credential=wrong-password"), "{text}");
    for secret in SECRETS {
        assert!(!text.contains(secret), "log leaks {secret}:\n{text}");
    }
}

/// The guard's paths and the URL rule's refusals.
#[tokio::test]
async fn the_guard_and_refused_urls_log_no_secret() {
    use tower_client_auth::store::{MemoryStore, SharedStore};
    use tower_client_auth::token::Token;
    use tower_client_auth::users::{UserKey, Users, UsersLayer};

    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let endpoint = service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, std::convert::Infallible>(
            Response::builder()
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(
                    br#"{"access_token":"ACCESS-4","expires_in":3600,"refresh_token":"REFRESH-5"}"#,
                )))
                .unwrap(),
        )
    });
    let tc = TokenClient::builder("https://auth.example.com/token")
        .client_id("cid")
        .client_secret("CLIENT-SECRET-1")
        .build(endpoint)
        .unwrap();
    // Refused before anything is sent.
    assert!(tc
        .device_authorization("http://auth.example.com/device", &[])
        .await
        .unwrap_err()
        .is_config());
    assert!(
        TokenClient::builder("https://cid:PASSWORD-2@auth.example.com/token")
            .build(service_fn(|_req: Request<Full<Bytes>>| async {
                Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
            }))
            .unwrap_err()
            .is_config()
    );

    // A user's token on a hop to another origin, as a follower below the
    // layer would send it: the users' guard takes it off, and says so.
    let users = Users::builder("https://api.example.com", tc)
        .store(SharedStore::new(MemoryStore::new()))
        .build()
        .unwrap();
    let alice = UserKey::new("alice");
    let login = Token::bearer("ACCESS-3", None).with_refresh_token("REFRESH-5");
    users.login(&alice, login).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let client = service_fn(move |req: Request<Full<Bytes>>| {
        log.lock().unwrap().push(req.headers().clone());
        async { Ok::<_, std::convert::Infallible>(Response::new(())) }
    });
    let layer = UsersLayer::new(users).without_retry();
    let svc = layer.layer(layer.guard().layer(client));
    let mut own = Request::get("https://api.example.com/x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    own.extensions_mut().insert(alice.clone());
    svc.clone().oneshot(own).await.unwrap();
    let stamped = seen.lock().unwrap()[0]["authorization"].clone();
    let hop = Request::get("https://elsewhere.example/landing")
        .header("authorization", stamped)
        .body(Full::new(Bytes::new()))
        .unwrap();
    svc.oneshot(hop).await.unwrap();
    assert!(!seen.lock().unwrap()[1].contains_key("authorization"));

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("credential headers removed from a request to another origin"),
        "events were captured:\n{text}"
    );
    for secret in SECRETS {
        assert!(!text.contains(secret), "log leaks {secret}:\n{text}");
    }
}
