//! What an operator sees (feature `metrics`): a recording `metrics` recorder and
//! a capturing tracing layer across a first fetch with a coalesced waiter, a
//! refresh ahead of expiry, a 401 retry, a transient failure and a rejected
//! password. Every event names its credential (in its own fields or a span
//! around it), events during a request sit inside the caller's span, no event,
//! span or metric label carries a secret, and the metrics count what happened.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;
use tower::{service_fn, Layer, ServiceExt};
use tower_client_auth::oauth2::{OAuth2Source, TokenClient};
use tower_client_auth::token::ManagedOptions;
use tower_client_auth::{AuthLayer, Credential, ReplayBody};
use tracing::field::{Field, Visit};
use tracing::Instrument;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

const SECRETS: &[&str] = &[
    "CLIENT-SECRET-1",
    "PASSWORD-2",
    "ACCESS-3",
    "ACCESS-4",
    "ACCESS-5",
    "REFRESH-6",
    "APIKEY-7",
];

/// An event as captured: its own fields and those of every span around it,
/// innermost first.
#[derive(Debug, Clone)]
struct Seen {
    level: tracing::Level,
    target: String,
    fields: Vec<(String, String)>,
    spans: Vec<(String, Vec<(String, String)>)>,
}

impl Seen {
    fn message(&self) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == "message")
            .map_or("", |(_, v)| v.as_str())
    }
    fn everything(&self) -> impl Iterator<Item = &(String, String)> {
        self.fields
            .iter()
            .chain(self.spans.iter().flat_map(|(_, f)| f.iter()))
    }
    fn in_span(&self, name: &str) -> bool {
        self.spans.iter().any(|(n, _)| n == name)
    }
}

#[derive(Default)]
struct Fields(Vec<(String, String)>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Seen>>>);

impl<S> tracing_subscriber::Layer<S> for Capture
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let spans = ctx
            .event_scope(event)
            .map(|scope| {
                scope
                    .map(|span| {
                        let f = span
                            .extensions()
                            .get::<Fields>()
                            .map(|f| f.0.clone())
                            .unwrap_or_default();
                        (span.name().to_owned(), f)
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.0.lock().unwrap().push(Seen {
            level: *event.metadata().level(),
            target: event.metadata().target().to_owned(),
            fields: fields.0,
            spans,
        });
    }
}

fn json(status: u16, body: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn metrics_and_events_across_fetch_refresh_retry_and_failure() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder in this test binary");
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    // The token endpoint: password grant -> ACCESS-3 (60 s, refresh token);
    // refresh ahead -> 503, then ACCESS-4; after the 401 -> ACCESS-5.
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let endpoint = service_fn(move |_req: Request<Full<Bytes>>| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            // Slow enough that a second request joins the first fetch.
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<_, Infallible>(match n {
                0 => json(
                    200,
                    r#"{"access_token":"ACCESS-3","token_type":"Bearer","expires_in":60,"refresh_token":"REFRESH-6"}"#,
                ),
                1 => json(503, r#"{"error":"temporarily_unavailable"}"#),
                2 => json(
                    200,
                    r#"{"access_token":"ACCESS-4","token_type":"Bearer","expires_in":60,"refresh_token":"REFRESH-6"}"#,
                ),
                _ => json(
                    200,
                    r#"{"access_token":"ACCESS-5","token_type":"Bearer","expires_in":60,"refresh_token":"REFRESH-6"}"#,
                ),
            })
        }
    });
    let tokens = TokenClient::builder("https://auth.example.com/token?tenant=t1")
        .client_id("cid")
        .client_secret("CLIENT-SECRET-1")
        .build(endpoint)
        .unwrap();
    let options =
        ManagedOptions::default().backoff(Duration::from_millis(10), Duration::from_millis(20));
    let credential = Credential::builder()
        .origin("https://api.example.com")
        .api_key("x-api-key", "APIKEY-7")
        .token_source_with(
            OAuth2Source::password(tokens, "user", "PASSWORD-2"),
            options,
        )
        .build()
        .unwrap();
    let name = "https://api.example.com:443 via https://auth.example.com/token";

    // The API rejects ACCESS-4 once when told to (as if revoked), so the layer
    // retries.
    let revoke = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let r = revoke.clone();
    let api = service_fn(move |req: Request<ReplayBody<Full<Bytes>>>| {
        let reject =
            req.headers()["authorization"] == "Bearer ACCESS-4" && r.swap(false, Ordering::SeqCst);
        async move {
            let status = if reject { 401 } else { 200 };
            Ok::<_, Infallible>(Response::builder().status(status).body(()).unwrap())
        }
    });
    let client = AuthLayer::new(credential.clone()).layer(api);
    let get = || {
        Request::get("https://api.example.com/x")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };

    // 1. First fetch, with a second request joining it; each in its caller's span.
    let first = client
        .clone()
        .oneshot(get())
        .instrument(tracing::info_span!("caller", request = 1));
    let second = client
        .clone()
        .oneshot(get())
        .instrument(tracing::info_span!("caller", request = 2));
    let (a, b) = tokio::join!(first, second);
    assert_eq!(a.unwrap().status(), 200);
    assert_eq!(b.unwrap().status(), 200);

    // 2. Refresh ahead of expiry: one transient failure, then ACCESS-4.
    tokio::time::sleep(Duration::from_secs(55)).await;
    let res = client.clone().oneshot(get()).await.unwrap();
    assert_eq!(res.status(), 200);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(credential.stats().unwrap().generation, 2, "refreshed");

    // 3. A 401 on ACCESS-4: one retry with ACCESS-5.
    revoke.store(true, Ordering::SeqCst);
    let res = client
        .clone()
        .oneshot(get())
        .instrument(tracing::info_span!("caller", request = 3))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // 4. A rejected password: a permanent failure and a cool-down.
    let rejecting = service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(json(
            400,
            r#"{"error":"invalid_grant","error_description":"bad"}"#,
        ))
    });
    let tokens = TokenClient::builder("https://auth.example.com/token")
        .client_id("cid")
        .client_secret("CLIENT-SECRET-1")
        .build(rejecting)
        .unwrap();
    let wrong = Credential::builder()
        .origin("https://api.example.com")
        .name("wrong-password")
        .token_source(OAuth2Source::password(tokens, "user", "PASSWORD-2"))
        .build()
        .unwrap();
    let client = AuthLayer::new(wrong.clone()).layer(service_fn(
        |_: Request<ReplayBody<Full<Bytes>>>| async { Ok::<_, Infallible>(Response::new(())) },
    ));
    let e = client.clone().oneshot(get()).await.unwrap_err();
    assert!(e.to_string().contains("invalid_grant") || format!("{e:?}").contains("invalid_grant"));
    // During the cool-down nothing is sent.
    assert!(client.oneshot(get()).await.is_err());

    // ---- tracing
    let events = capture.0.lock().unwrap().clone();
    let crate_events: Vec<&Seen> = events
        .iter()
        .filter(|e| e.target.starts_with("tower_client_auth"))
        .collect();
    assert!(!crate_events.is_empty());
    for e in &crate_events {
        assert!(
            e.everything().any(|(k, _)| k == "credential"),
            "an event that does not name its credential: {e:?}"
        );
        // A WARN filter drops the DEBUG span around it: a warning names its
        // credential itself.
        if e.level <= tracing::Level::WARN {
            assert!(
                e.fields.iter().any(|(k, _)| k == "credential"),
                "a warning without its credential in its own fields: {e:?}"
            );
        }
        for (k, v) in e.everything() {
            for secret in SECRETS {
                assert!(!v.contains(secret), "{k}={v} leaks {secret} in {e:?}");
            }
        }
    }
    let find = |message: &str| -> Vec<&Seen> {
        crate_events
            .iter()
            .copied()
            .filter(|e| e.message().contains(message))
            .collect()
    };
    let fetched = find("token fetched");
    assert_eq!(fetched.len(), 3, "{crate_events:#?}");
    let first_fetch = fetched[0];
    assert!(first_fetch.in_span("token_request"));
    assert!(
        first_fetch.in_span("caller"),
        "the first fetch runs inside the span of the request that started it: {first_fetch:?}"
    );
    assert!(
        first_fetch
            .everything()
            .any(|(k, v)| k == "credential" && v == name),
        "{first_fetch:?}"
    );
    assert_eq!(fetched[0].level, tracing::Level::DEBUG);
    assert!(!find("refreshing token ahead of expiry").is_empty());
    let retried = find("token request failed, retrying");
    assert_eq!(retried.len(), 1);
    let retry = find("retrying request after 401");
    assert_eq!(retry.len(), 1);
    assert!(retry[0].in_span("caller"), "{:?}", retry[0]);
    let failed = find("token request failed");
    assert!(failed.iter().any(|e| e.level == tracing::Level::WARN
        && e.everything()
            .any(|(k, v)| k == "credential" && v == "wrong-password")));

    // ---- metrics
    let snapshot = snapshotter.snapshot().into_vec();
    let mut metrics: HashMap<(String, Vec<(String, String)>), DebugValue> = HashMap::new();
    for (key, _, _, value) in snapshot {
        let (kind, key) = key.into_parts();
        let labels: Vec<(String, String)> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        for (_, v) in &labels {
            for secret in SECRETS {
                assert!(!v.contains(secret), "metric label leaks {secret}");
            }
        }
        let _ = kind == MetricKind::Counter;
        metrics.insert((key.name().to_owned(), labels), value);
    }
    let get = |metric: &str, credential: &str, outcome: Option<&str>| -> Option<&DebugValue> {
        let mut labels = vec![("credential".to_owned(), credential.to_owned())];
        if let Some(o) = outcome {
            labels.push(("outcome".to_owned(), o.to_owned()));
        }
        metrics.get(&(metric.to_owned(), labels))
    };
    let counter = |metric: &str, credential: &str, outcome: Option<&str>| match get(
        metric, credential, outcome,
    ) {
        Some(DebugValue::Counter(n)) => *n,
        None => 0,
        other => panic!("{metric}: {other:?}"),
    };
    let requests = "tower_client_auth_token_requests_total";
    assert_eq!(counter(requests, name, Some("success")), 3);
    assert_eq!(counter(requests, name, Some("transient_error")), 1);
    assert_eq!(counter(requests, name, Some("permanent_error")), 0);
    assert_eq!(
        counter(requests, "wrong-password", Some("permanent_error")),
        1
    );
    assert_eq!(
        counter("tower_client_auth_retries_on_401_total", name, None),
        1
    );
    assert_eq!(
        counter("tower_client_auth_coalesced_waiters_total", name, None),
        1
    );
    assert_eq!(
        counter("tower_client_auth_refreshes_ahead_total", name, None),
        1
    );
    assert_eq!(counter("tower_client_auth_cooldowns_total", name, None), 0);
    assert_eq!(
        counter("tower_client_auth_cooldowns_total", "wrong-password", None),
        1
    );
    match get(
        "tower_client_auth_token_fetch_duration_seconds",
        name,
        Some("success"),
    ) {
        Some(DebugValue::Histogram(v)) => {
            assert_eq!(v.len(), 3);
            // Paused time: each fetch took the endpoint's 50 ms (the refresh
            // also its backoff after the 503).
            assert!(v.iter().all(|s| s.0 >= 0.05), "{v:?}");
        }
        other => panic!("fetch duration: {other:?}"),
    }
    match get(
        "tower_client_auth_token_expiry_timestamp_seconds",
        name,
        None,
    ) {
        Some(DebugValue::Gauge(at)) => {
            // Paused Tokio time does not move the wall clock: the last token
            // (60 s) expires about a minute from now.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            assert!(at.0 > now + 50.0 && at.0 <= now + 61.0, "{at:?} vs {now}");
        }
        other => panic!("expiry: {other:?}"),
    }
}
