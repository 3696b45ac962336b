//! A ready [`tower::retry::Policy`] for transient failures, so that the
//! recommended stack needs no hand-written policy: [`RetryTransient`] re-sends
//! a request after a transport error or timeout, a `500`/`502`/`503`/`504`,
//! or a `429 Too Many Requests` (waiting what its `Retry-After` asks), a few
//! times with exponential backoff and jitter.
//!
//! It goes **above** [`AuthLayer`](crate::AuthLayer): every attempt then goes
//! through the layer and is stamped afresh (a token that expired while the
//! policy waited is renewed, and the layer's own 401 retry stays the layer's).
//! Bodies it can copy are those of [`CloneBody`]: `Full<D>`, `Empty<D>`,
//! `String`, a [`ReplayBody`] the layer has not recorded, and a
//! `reqwest::Body` made from bytes (feature `reqwest`).
//!
//! ```
//! use std::time::Duration;
//!
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::retry::RetryLayer;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_client_auth::retry_policy::RetryTransient;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), tower_client_auth::BoxError> {
//! // An upstream that is overloaded once, then answers.
//! let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
//! let counter = calls.clone();
//! let upstream = service_fn(move |_req: Request<Full<Bytes>>| {
//!     let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
//!     async move {
//!         let status = if n == 0 { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
//!         let res = Response::builder().status(status).body(Full::new(Bytes::new()))?;
//!         Ok::<_, tower_client_auth::BoxError>(res)
//!     }
//! });
//! let client = ServiceBuilder::new()
//!     .timeout(Duration::from_secs(30))
//!     .layer(RetryLayer::new(RetryTransient::new()))
//!     // .layer(auth) and .layer(auth.guard()) go here, as in the crate docs
//!     .service(upstream);
//!
//! let req = Request::get("https://api.example.com/v1/items").body(Full::new(Bytes::new()))?;
//! assert_eq!(client.oneshot(req).await?.status(), 200);
//! assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
//! # Ok(())
//! # }
//! ```

use std::error::Error as StdError;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use http_body_util::{Empty, Full};

use crate::error::Error;
use crate::rng::{Jitter, SplitMix};
use crate::wire::replay::ReplayBody;
use crate::wire::retry_after::retry_after;

/// Retries transient failures: see the [module docs](self). Each request gets
/// its own copy (tower's `Retry` clones the policy per request), so the
/// retries are counted per request.
///
/// What is re-sent:
///
/// | outcome | methods |
/// |---|---|
/// | `429 Too Many Requests` | every method (the server did not act on it) |
/// | `500`, `502`, `503`, `504` | idempotent methods (`GET`, `HEAD`, `OPTIONS`, `TRACE`, `PUT`, `DELETE`), or all with [`all_methods`](Self::all_methods) |
/// | an error: transport, timeout, a token endpoint that is down ([`Error::is_transient`]) | idempotent methods, or all with [`all_methods`](Self::all_methods) |
///
/// Never re-sent: other statuses (a `401` is the layer's to retry, once), and
/// errors of this crate that are permanent (wrong client secret, a cool-down,
/// a configuration error). The delay before retry `n` is a backoff doubling
/// from [`backoff`](Self::backoff)'s base up to its cap, with jitter in its
/// upper half; a `Retry-After` longer than that is waited for, and one longer
/// than [`max_retry_after`](Self::max_retry_after) ends the retries at once
/// (the caller gets that `429`/`503` and decides).
#[derive(Debug, Clone)]
#[must_use]
pub struct RetryTransient {
    retries_left: u32,
    attempt: u32,
    base: Duration,
    max_delay: Duration,
    max_retry_after: Duration,
    all_methods: bool,
    jitter: Option<SplitMix>,
}

impl Default for RetryTransient {
    fn default() -> Self {
        Self::new()
    }
}

impl RetryTransient {
    /// Up to 3 retries, backoff from 100 ms up to 5 s, a `Retry-After` of up
    /// to 30 s honoured, idempotent methods only for errors and 5xx.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::Full;
    /// use tower::retry::Policy;
    /// use tower_client_auth::retry_policy::RetryTransient;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), http::Error> {
    /// let mut policy = RetryTransient::new();
    /// let mut req = Request::get("https://api.example.com/v1").body(Full::new(Bytes::new()))?;
    /// let mut overloaded: Result<_, tower_client_auth::BoxError> =
    ///     Ok(Response::builder().status(503).body(Full::new(Bytes::new()))?);
    /// assert!(policy.retry(&mut req, &mut overloaded).is_some());
    /// let mut not_found: Result<_, tower_client_auth::BoxError> =
    ///     Ok(Response::builder().status(404).body(Full::new(Bytes::new()))?);
    /// assert!(policy.retry(&mut req, &mut not_found).is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn new() -> Self {
        RetryTransient {
            retries_left: 3,
            attempt: 0,
            base: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
            all_methods: false,
            jitter: Some(SplitMix::default()),
        }
    }

    /// How many times a request is re-sent at most (0: never).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::Full;
    /// use tower::retry::Policy;
    /// use tower_client_auth::retry_policy::RetryTransient;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), http::Error> {
    /// let mut policy = RetryTransient::new().max_retries(1);
    /// let mut req = Request::get("https://api.example.com/v1").body(Full::new(Bytes::new()))?;
    /// let mut res: Result<_, tower_client_auth::BoxError> =
    ///     Ok(Response::builder().status(502).body(Full::new(Bytes::new()))?);
    /// assert!(policy.retry(&mut req, &mut res).is_some()); // the one retry
    /// assert!(policy.retry(&mut req, &mut res).is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.retries_left = retries;
        self
    }

    /// The first delay, doubled each retry up to `max`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::Full;
    /// use tower::retry::Policy;
    /// use tower_client_auth::retry_policy::RetryTransient;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// let mut policy = RetryTransient::new()
    ///     .backoff(Duration::from_millis(200), Duration::from_millis(300))
    ///     .without_jitter();
    /// let mut req = Request::get("https://api.example.com/v1").body(Full::new(Bytes::new()))?;
    /// let mut res: Result<_, tower_client_auth::BoxError> =
    ///     Ok(Response::builder().status(503).body(Full::new(Bytes::new()))?);
    /// for expected in [200, 300] { // doubled, then capped
    ///     let start = tokio::time::Instant::now();
    ///     policy.retry(&mut req, &mut res).unwrap().await;
    ///     assert_eq!(start.elapsed(), Duration::from_millis(expected));
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.base = base;
        self.max_delay = max.max(base);
        self
    }

    /// The longest `Retry-After` to wait for; a longer one ends the retries.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::Full;
    /// use tower::retry::Policy;
    /// use tower_client_auth::retry_policy::RetryTransient;
    ///
    /// let mut policy = RetryTransient::new().max_retry_after(Duration::from_secs(60));
    /// let mut req = Request::get("https://api.example.com/v1").body(Full::new(Bytes::new()))?;
    /// // Asked to come back in two minutes: too long, the caller gets the 429.
    /// let mut res: Result<_, tower_client_auth::BoxError> = Ok(Response::builder()
    ///     .status(429)
    ///     .header("retry-after", "120")
    ///     .body(Full::new(Bytes::new()))?);
    /// assert!(policy.retry(&mut req, &mut res).is_none());
    /// # Ok::<(), http::Error>(())
    /// ```
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// Re-send after errors and 5xx whatever the method. Only for APIs whose
    /// `POST`s are safe to repeat (an idempotency key, say): a transport
    /// error can come after the server acted on the request.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::Full;
    /// use tower::retry::Policy;
    /// use tower_client_auth::retry_policy::RetryTransient;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), http::Error> {
    /// let mut req = Request::post("https://api.example.com/v1/orders").body(Full::new(Bytes::new()))?;
    /// let mut res: Result<_, tower_client_auth::BoxError> =
    ///     Ok(Response::builder().status(503).body(Full::new(Bytes::new()))?);
    /// // A POST may have been acted on: not re-sent, unless the API makes that safe.
    /// assert!(RetryTransient::new().retry(&mut req, &mut res).is_none());
    /// assert!(RetryTransient::new().all_methods().retry(&mut req, &mut res).is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn all_methods(mut self) -> Self {
        self.all_methods = true;
        self
    }

    /// Delays without jitter: exactly the doubling backoff (for tests; in
    /// production jitter keeps replicas from retrying in step).
    ///
    /// ```
    /// use std::time::Duration;
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::Full;
    /// use tower::retry::Policy;
    /// use tower_client_auth::retry_policy::RetryTransient;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// let mut policy = RetryTransient::new().without_jitter(); // the first delay: 100 ms
    /// let mut req = Request::get("https://api.example.com/v1").body(Full::new(Bytes::new()))?;
    /// let mut res: Result<_, tower_client_auth::BoxError> =
    ///     Ok(Response::builder().status(500).body(Full::new(Bytes::new()))?);
    /// let start = tokio::time::Instant::now();
    /// policy.retry(&mut req, &mut res).unwrap().await;
    /// assert_eq!(start.elapsed(), Duration::from_millis(100));
    /// # Ok(())
    /// # }
    /// ```
    pub fn without_jitter(mut self) -> Self {
        self.jitter = None;
        self
    }

    /// The delay before the next retry, or `None` for no retry.
    fn next_delay(&mut self, asked: Option<Duration>) -> Option<Duration> {
        if self.retries_left == 0 || asked.is_some_and(|d| d > self.max_retry_after) {
            return None;
        }
        self.retries_left -= 1;
        self.attempt += 1;
        let exp = self
            .base
            .saturating_mul(1 << (self.attempt - 1).min(20))
            .min(self.max_delay);
        let delay = match &mut self.jitter {
            Some(j) => exp / 2 + exp.mul_f64(j.next_unit().clamp(0.0, 1.0) / 2.0),
            None => exp,
        };
        Some(delay.max(asked.unwrap_or(Duration::ZERO)))
    }

    fn may_repeat(&self, method: &Method) -> bool {
        self.all_methods || method.is_idempotent()
    }
}

/// Whether an error is worth another attempt: anything but a permanent error
/// of this crate found in its chain.
fn transient(error: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(ours) = e.downcast_ref::<Error>() {
            return ours.is_transient();
        }
        next = e.source();
    }
    true
}

impl<B, ResB, E> tower::retry::Policy<Request<B>, Response<ResB>, E> for RetryTransient
where
    B: CloneBody,
    E: AsRef<dyn StdError + Send + Sync + 'static>,
{
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        req: &mut Request<B>,
        result: &mut Result<Response<ResB>, E>,
    ) -> Option<Self::Future> {
        let asked = match result {
            Ok(res) => match res.status() {
                StatusCode::TOO_MANY_REQUESTS => retry_after(res.headers()),
                StatusCode::INTERNAL_SERVER_ERROR
                | StatusCode::BAD_GATEWAY
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::GATEWAY_TIMEOUT
                    if self.may_repeat(req.method()) =>
                {
                    retry_after(res.headers())
                }
                _ => return None,
            },
            Err(e) if self.may_repeat(req.method()) && transient(e.as_ref()) => None,
            Err(_) => return None,
        };
        self.next_delay(asked).map(tokio::time::sleep)
    }

    fn clone_request(&mut self, req: &Request<B>) -> Option<Request<B>> {
        if self.retries_left == 0 {
            return None;
        }
        let mut copy = Request::new(req.body().clone_body()?);
        *copy.method_mut() = req.method().clone();
        *copy.uri_mut() = req.uri().clone();
        *copy.version_mut() = req.version();
        *copy.headers_mut() = req.headers().clone();
        *copy.extensions_mut() = req.extensions().clone();
        Some(copy)
    }
}

/// A request body [`RetryTransient`] can send again: a copy of it, or `None`
/// when it cannot be copied (a stream; the request is then sent once).
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use tower_client_auth::retry_policy::CloneBody;
///
/// let body = Full::new(Bytes::from_static(b"{\"name\":\"x\"}"));
/// assert!(body.clone_body().is_some()); // a request with it can go again
/// ```
pub trait CloneBody: Sized {
    /// A copy of the body, not yet read.
    ///
    /// ```
    /// use tower_client_auth::retry_policy::CloneBody;
    ///
    /// /// A body made of the parts of a multipart upload, all in memory.
    /// struct Parts(Vec<bytes::Bytes>);
    /// impl CloneBody for Parts {
    ///     fn clone_body(&self) -> Option<Self> {
    ///         Some(Parts(self.0.clone()))
    ///     }
    /// }
    /// assert_eq!(Parts(vec![bytes::Bytes::from_static(b"a")]).clone_body().unwrap().0.len(), 1);
    /// ```
    fn clone_body(&self) -> Option<Self>;
}

impl<D: Clone> CloneBody for Full<D> {
    fn clone_body(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl<D> CloneBody for Empty<D> {
    fn clone_body(&self) -> Option<Self> {
        Some(Empty::new())
    }
}

impl CloneBody for String {
    fn clone_body(&self) -> Option<Self> {
        Some(self.clone())
    }
}

/// Below the layer: a body the layer passed through (or an empty one) is
/// copied; one it is recording for its own 401 retry is not.
impl<B: Clone> CloneBody for ReplayBody<B> {
    fn clone_body(&self) -> Option<Self> {
        self.try_clone()
    }
}

/// A body made from bytes (`reqwest::Body::from(..)`); a stream is not copied.
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
impl CloneBody for ::reqwest::Body {
    fn clone_body(&self) -> Option<Self> {
        self.as_bytes()
            .map(|b| ::reqwest::Body::from(bytes::Bytes::copy_from_slice(b)))
    }
}

#[cfg(test)]
mod tests;
