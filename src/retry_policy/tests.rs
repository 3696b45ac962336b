//! Tests of the retry policy, poll by poll on paused Tokio time: what is
//! retried (429 after Retry-After, 5xx and transport errors for idempotent
//! methods), how often, and after how long.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tokio::time::Instant;
use tower::retry::RetryLayer;
use tower::{service_fn, BoxError, Layer, Service, ServiceExt};

use super::*;

type Answer = Result<Response<Full<Bytes>>, BoxError>;
/// A request as the upstream saw it: method, `x-request-id`, when.
type Seen = (String, Option<String>, Instant);

/// An upstream answering from a script, recording each request's method and
/// a header, and when it came.
#[derive(Clone, Default)]
struct Script {
    answers: Arc<Mutex<VecDeque<Answer>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Script {
    fn new(answers: Vec<Answer>) -> Self {
        Script {
            answers: Arc::new(Mutex::new(answers.into())),
            ..Default::default()
        }
    }

    fn service(
        &self,
    ) -> impl Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = BoxError> + Clone
    {
        let this = self.clone();
        service_fn(move |req: Request<Full<Bytes>>| {
            let header = req
                .headers()
                .get("x-request-id")
                .map(|v| v.to_str().unwrap().to_owned());
            this.seen
                .lock()
                .unwrap()
                .push((req.method().to_string(), header, Instant::now()));
            let answer = this.answers.lock().unwrap().pop_front();
            async move { answer.unwrap_or_else(|| Ok(status(200))) }
        })
    }

    fn calls(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn gaps(&self) -> Vec<Duration> {
        let seen = self.seen.lock().unwrap();
        seen.windows(2).map(|w| w[1].2 - w[0].2).collect()
    }
}

fn status(code: u16) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn with_retry_after(code: u16, value: &str) -> Response<Full<Bytes>> {
    let mut res = status(code);
    res.headers_mut()
        .insert("retry-after", value.parse().unwrap());
    res
}

fn request(method: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri("https://api.example.com/v1/items")
        .header("x-request-id", "r-1")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap()
}

async fn send(policy: RetryTransient, script: &Script, method: &str) -> Answer {
    RetryLayer::new(policy)
        .layer(script.service())
        .oneshot(request(method))
        .await
}

#[tokio::test(start_paused = true)]
async fn a_503_is_retried_after_the_backoff_with_the_same_request() {
    let script = Script::new(vec![Ok(status(503)), Ok(status(502))]);
    let policy = RetryTransient::new()
        .without_jitter()
        .backoff(Duration::from_millis(100), Duration::from_secs(5));
    let res = send(policy, &script, "GET").await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(script.calls(), 3);
    assert_eq!(
        script.gaps(),
        [Duration::from_millis(100), Duration::from_millis(200)]
    );
    let seen = script.seen.lock().unwrap();
    assert!(seen
        .iter()
        .all(|(m, h, _)| m == "GET" && h.as_deref() == Some("r-1")));
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_the_limit_and_the_last_answer_is_returned() {
    let script = Script::new((0..10).map(|_| Ok(status(500))).collect());
    let res = send(RetryTransient::new().max_retries(2), &script, "GET")
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    assert_eq!(script.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_429_is_retried_for_a_post_after_its_retry_after() {
    let script = Script::new(vec![Ok(with_retry_after(429, "2"))]);
    let res = send(RetryTransient::new(), &script, "POST").await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(script.calls(), 2);
    assert_eq!(script.gaps(), [Duration::from_secs(2)]);
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_beyond_the_cap_is_handed_to_the_caller() {
    let script = Script::new(vec![Ok(with_retry_after(429, "120"))]);
    let res = send(RetryTransient::new(), &script, "GET").await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(script.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_post_is_not_repeated_after_a_5xx_or_an_error_unless_allowed() {
    let script = Script::new(vec![Ok(status(503))]);
    let res = send(RetryTransient::new(), &script, "POST").await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(script.calls(), 1);

    let script = Script::new(vec![Err("connection reset".into())]);
    assert!(send(RetryTransient::new(), &script, "POST").await.is_err());
    assert_eq!(script.calls(), 1);

    let script = Script::new(vec![Ok(status(503)), Err("connection reset".into())]);
    let res = send(RetryTransient::new().all_methods(), &script, "POST")
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(script.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn transport_errors_are_retried_permanent_auth_errors_are_not() {
    let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    let script = Script::new(vec![Err(io.into())]);
    let res = send(RetryTransient::new(), &script, "GET").await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(script.calls(), 2);

    // A configuration error stays one: the layer's permanent error is not retried.
    let permanent = Error::config("no origin");
    assert!(!permanent.is_transient());
    let script = Script::new(vec![Err(permanent.into())]);
    let err = send(RetryTransient::new(), &script, "GET")
        .await
        .unwrap_err();
    assert!(err.downcast_ref::<Error>().unwrap().is_config());
    assert_eq!(script.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn other_statuses_are_answers() {
    for code in [200, 201, 400, 401, 403, 404, 409, 501] {
        let script = Script::new(vec![Ok(status(code))]);
        let res = send(RetryTransient::new(), &script, "GET").await.unwrap();
        assert_eq!(res.status(), StatusCode::from_u16(code).unwrap());
        assert_eq!(script.calls(), 1, "{code}");
    }
}

#[test]
fn jittered_delays_stay_in_the_upper_half_of_the_backoff() {
    let mut policy = RetryTransient::new()
        .max_retries(40)
        .backoff(Duration::from_millis(100), Duration::from_secs(5));
    for attempt in 1..=40u32 {
        let exp = (Duration::from_millis(100) * 2u32.pow((attempt - 1).min(20)))
            .min(Duration::from_secs(5));
        let d = policy.next_delay(None).unwrap();
        assert!(d >= exp / 2 && d <= exp, "{attempt}: {d:?}");
    }
    assert_eq!(policy.next_delay(None), None);
}

#[test]
fn bodies_are_copied_when_they_can_be() {
    let full = Full::new(Bytes::from_static(b"x"));
    assert!(full.clone_body().is_some());
    assert!(String::from("x").clone_body().is_some());
    assert!(ReplayBody::passthrough(full).clone_body().is_some());
}
