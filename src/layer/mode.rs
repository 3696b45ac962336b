//! Whether a layer can re-send a request after a 401, at the type level: that
//! decides which body type the inner service receives.

use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

pub use super::retry_state::Recording;
use super::retry_state::RetryCtx;
use crate::wire::replay::ReplayBody;

/// What body the inner service receives, by layer mode: [`Retry`] wraps the
/// caller's body in [`ReplayBody`] so that a request can be sent twice;
/// [`NoRetry`] passes the caller's body through untouched, like tower-http's
/// `AddAuthorization`. Sealed: these two are the modes.
///
/// ```
/// use bytes::Bytes;
/// use http_body::Body as _;
/// use http_body_util::Full;
/// use tower_client_auth::layer::{Mode, NoRetry, Retry};
/// use tower_client_auth::ReplayBody;
///
/// // What the HTTP client under the layer receives for a caller's `Full<Bytes>`:
/// let retry: <Retry as Mode>::Body<Full<Bytes>> = ReplayBody::passthrough(Full::from("{}"));
/// let no_retry: <NoRetry as Mode>::Body<Full<Bytes>> = Full::from("{}");
/// assert_eq!(retry.size_hint().exact(), no_retry.size_hint().exact());
/// ```
pub trait Mode: sealed::Sealed {
    /// The body type the inner service receives for a caller's body `B`.
    type Body<B>;
}

/// The default mode: a request that carried a managed token and got a 401 is
/// re-sent once with a newer token. The inner service receives
/// `Request<ReplayBody<B>>`.
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower::{service_fn, Layer};
/// use tower_client_auth::layer::Retry;
/// use tower_client_auth::{AuthLayer, Credential, ReplayBody};
///
/// let credential = Credential::bearer("https://api.example.com", "my-token")?;
/// let layer: AuthLayer<Retry> = AuthLayer::new(credential);
/// // The client under it is built for the replayable body.
/// let api = layer.layer(service_fn(|_: Request<ReplayBody<Full<Bytes>>>| async {
///     Ok::<_, std::convert::Infallible>(Response::new(()))
/// }));
/// # let _ = api;
/// # Ok::<(), tower_client_auth::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Retry;

/// No 401 retry: the inner service receives the caller's `Request<B>` unchanged
/// (see [`AuthLayer::without_retry`](crate::AuthLayer::without_retry)).
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower::{service_fn, Layer};
/// use tower_client_auth::layer::NoRetry;
/// use tower_client_auth::{AuthLayer, Credential};
///
/// let credential = Credential::bearer("https://api.example.com", "my-token")?;
/// let layer: AuthLayer<NoRetry> = AuthLayer::new(credential).without_retry();
/// // The client under it gets the caller's own body type.
/// let api = layer.layer(service_fn(|_: Request<Full<Bytes>>| async {
///     Ok::<_, std::convert::Infallible>(Response::new(()))
/// }));
/// # let _ = api;
/// # Ok::<(), tower_client_auth::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRetry;

impl Mode for Retry {
    type Body<B> = ReplayBody<B>;
}

impl Mode for NoRetry {
    type Body<B> = B;
}

/// What an [`AuthService`](crate::AuthService) in mode `M` needs below it for
/// a caller's body `B`: a `Service<Request<M::Body<B>>>`, that is
/// `Request<ReplayBody<B>>` with 401 retry on and `Request<B>` with
/// [`without_retry`](crate::AuthLayer::without_retry). Every such service
/// implements it; it is here so that the compiler's message for a client
/// built for another body type names the two ways out.
///
/// ```compile_fail,E0277
/// use bytes::Bytes;
/// use http::Request;
/// use http_body_util::Full;
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
/// use tower::{Layer, Service};
/// use tower_client_auth::{AuthLayer, Credential};
///
/// fn send_full_bytes<S: Service<Request<Full<Bytes>>>>(_: S) {}
///
/// let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
/// let api = AuthLayer::new(Credential::bearer("https://api.example.com", "t")?).layer(client);
/// // error[E0277]: `Client<HttpConnector, Full<Bytes>>` cannot be the inner service of
/// // `AuthService<_, Retry>` for `Request<Full<Bytes>>` ... build the client for
/// // `ReplayBody<Full<Bytes>>` ... or turn 401 retry off with `AuthLayer::without_retry()`
/// send_full_bytes(api);
/// # Ok::<(), tower_client_auth::Error>(())
/// ```
///
/// A method call (`api.oneshot(req)`) reports only that the method's bounds
/// are not met (E0599, rustc lists the outer bound alone); a function call
/// (`tower::ServiceExt::oneshot(api, req)`) shows this message.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the inner service of `AuthService<_, {M}>` for `Request<{B}>`",
    label = "the inner service does not take the body type the layer sends it",
    note = "with 401 retry on (the default), the service under `AuthLayer` receives `Request<ReplayBody<{B}>>`: build the client for `ReplayBody<{B}>` (`https::client()` is, or `Client::builder(..).build::<_, ReplayBody<Full<Bytes>>>(..)`)",
    note = "or turn 401 retry off with `AuthLayer::without_retry()`: the service then receives the caller's `Request<{B}>` unchanged"
)]
pub trait InnerService<M: Mode, B>:
    Service<Request<M::Body<B>>, Response = Response<Self::ResponseBody>, Error = Self::Failure>
{
    /// The body of the inner service's responses.
    type ResponseBody;
    /// The inner service's error.
    type Failure: Into<crate::error::BoxError>;
}

#[diagnostic::do_not_recommend]
impl<S, M: Mode, B, R> InnerService<M, B> for S
where
    S: Service<Request<M::Body<B>>, Response = Response<R>>,
    S::Error: Into<crate::error::BoxError>,
{
    type ResponseBody = R;
    type Failure = S::Error;
}

/// No value: what a [`NoRetry`] future keeps to re-send a request. Being
/// uninhabited, `Option<Nothing>` takes no space, so that mode's future is not
/// larger than the inner future by a retry context it never uses.
pub enum Nothing {}

pub(crate) mod sealed {
    use super::*;

    pub trait Sealed: Send + Sync + 'static {
        /// Whether requests may be re-sent.
        const RETRY: bool;
        /// What a sent request keeps to be re-sent (`R`: the response type).
        type Kept<S, B, R>;
        /// A 401 response kept while a newer token is fetched.
        type Held<R>;
        /// Holds a 401, in the mode that retries.
        fn hold<R>(response: R) -> Option<Self::Held<R>>;
        /// The 401 held.
        fn unhold<R>(held: Self::Held<R>) -> R;
        /// Keeps `ctx`, in the mode that retries.
        fn keep<S, B, R>(
            ctx: RetryCtx<S, B, <Self as Mode>::Body<B>>,
        ) -> Option<Self::Kept<S, B, R>>
        where
            Self: Mode;
        /// The retry context kept.
        fn kept<S, B, R>(
            kept: &mut Self::Kept<S, B, R>,
        ) -> &mut RetryCtx<S, B, <Self as Mode>::Body<B>>
        where
            Self: Mode;
        /// The request sent as it is.
        fn wrap_request<B: Body>(req: http::Request<B>) -> http::Request<<Self as Mode>::Body<B>>
        where
            Self: Mode;
        /// The body sent once more may follow: record it (up to `cap` bytes).
        fn record<B: Body>(body: B, cap: usize) -> (<Self as Mode>::Body<B>, Option<Recording<B>>)
        where
            Self: Mode;
        /// The second body, if what was sent can be replayed.
        fn replay<B>(recording: Recording<B>) -> Option<<Self as Mode>::Body<B>>
        where
            Self: Mode;
    }

    impl Sealed for Retry {
        const RETRY: bool = true;
        type Kept<S, B, R> = RetryCtx<S, B, ReplayBody<B>>;
        type Held<R> = R;

        #[inline(always)]
        fn hold<R>(response: R) -> Option<R> {
            Some(response)
        }

        #[inline(always)]
        fn unhold<R>(held: R) -> R {
            held
        }

        #[inline(always)]
        fn keep<S, B, R>(ctx: RetryCtx<S, B, ReplayBody<B>>) -> Option<Self::Kept<S, B, R>> {
            Some(ctx)
        }

        #[inline(always)]
        fn kept<S, B, R>(kept: &mut Self::Kept<S, B, R>) -> &mut RetryCtx<S, B, ReplayBody<B>> {
            kept
        }

        #[inline(always)]
        fn wrap_request<B: Body>(req: http::Request<B>) -> http::Request<ReplayBody<B>> {
            req.map(ReplayBody::passthrough)
        }

        #[inline]
        fn record<B: Body>(body: B, cap: usize) -> (ReplayBody<B>, Option<Recording<B>>) {
            let (body, handle) = ReplayBody::recorded(body, cap);
            (body, handle.map(Recording))
        }

        fn replay<B>(recording: Recording<B>) -> Option<ReplayBody<B>> {
            recording.0.replay()
        }
    }

    impl Sealed for NoRetry {
        const RETRY: bool = false;
        type Kept<S, B, R> = Nothing;
        type Held<R> = Nothing;

        fn hold<R>(_response: R) -> Option<Nothing> {
            None
        }

        fn unhold<R>(held: Nothing) -> R {
            match held {}
        }

        // Never called with a context (`RETRY` is false): nothing is kept.
        #[inline(always)]
        fn keep<S, B, R>(_ctx: RetryCtx<S, B, B>) -> Option<Nothing> {
            None
        }

        fn kept<S, B, R>(kept: &mut Nothing) -> &mut RetryCtx<S, B, B> {
            match *kept {}
        }

        /// The caller's request, untouched: not even taken apart and put back.
        #[inline(always)]
        fn wrap_request<B: Body>(req: http::Request<B>) -> http::Request<B> {
            req
        }

        // Never called (`RETRY` is false); nothing is recorded.
        fn record<B: Body>(body: B, _cap: usize) -> (B, Option<Recording<B>>) {
            (body, None)
        }

        fn replay<B>(_recording: Recording<B>) -> Option<B> {
            None
        }
    }
}
