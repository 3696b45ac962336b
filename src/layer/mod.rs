//! [`AuthLayer`] and [`AuthService`]: stamp a credential on every request to its
//! origins, and re-send once on a 401 with a refreshed managed token;
//! [`GuardLayer`]: keep stamped headers from reaching other origins below it.
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_client_auth::{AuthLayer, Credential};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_client_auth::BoxError> {
//! let credential = Credential::bearer("https://api.example.com", "my-personal-access-token")?;
//! let client = ServiceBuilder::new()
//!     // A static credential never retries: keep the client's own body type.
//!     .layer(AuthLayer::new(credential).without_retry())
//!     .service(service_fn(|req: Request<Full<Bytes>>| async move {
//!         // Stands in for a hyper-util client.
//!         let auth = req.headers()["authorization"].clone();
//!         assert!(auth.is_sensitive());
//!         Ok::<_, std::convert::Infallible>(Response::new(auth.to_str().unwrap().to_owned()))
//!     }));
//!
//! let req = Request::get("https://api.example.com/v1/me").body(Full::new(Bytes::new()))?;
//! let res = client.oneshot(req).await?;
//! assert_eq!(res.body(), "Bearer my-personal-access-token");
//! # Ok(())
//! # }
//! ```
//!
//! # What gets stamped
//!
//! * Only requests whose URI is absolute and at one of the credential's origins
//!   (scheme, host, port) get the credential. Any other request passes through
//!   untouched. Hops made *below* the layer (a redirect follower under it) are
//!   out of its sight: put a [`GuardLayer`] directly above the HTTP client (see
//!   [composing](crate#composing-with-other-middleware)).
//! * A header the caller already set on the request is left alone. A request that
//!   already has an `Authorization` header is sent as it is and never retried.
//!
//! # Retry on 401, and the body type
//!
//! In the default mode ([`Retry`]), a request that carried the managed token and
//! got `401 Unauthorized` is sent once more with a newer token: the current one if
//! it is already newer than the rejected one, otherwise one from a refresh
//! (joined with any refresh in flight). Not retried: any other status (403,
//! 400, ...), a 401 whose `WWW-Authenticate` names an error other than
//! `invalid_token` (such as `insufficient_scope`), a body larger than the replay
//! cap. In those cases the 401 comes back unchanged. Sending a body twice needs a
//! copy of it, so in this mode the inner service receives
//! `Request<ReplayBody<B>>` for the caller's `Request<B>`: build your client for
//! that body type (`Client::builder(..).build::<_, ReplayBody<Full<Bytes>>>(..)`).
//!
//! [`AuthLayer::without_retry`] ([`NoRetry`]) never re-sends, and passes the
//! caller's `Request<B>` to the inner service unchanged, like tower-http's
//! `AddAuthorization`: use it for static credentials, or when you prefer the bare
//! minimum.
//!
//! Retrying costs one copy of the request head and, per request, one clone of the
//! inner service (like `tower::retry`).
//!
//! # Readiness
//!
//! `poll_ready` forwards to the inner service. A request that must wait for a
//! token gives that readiness back at once (a `ConcurrencyLimit` permit, a
//! `Buffer` slot) and drives a clone of the inner service to readiness only once
//! the token is there, so token requests through the same limited client always
//! make progress.

pub(crate) mod future;
pub(crate) mod guard;
pub(crate) mod local;
pub(crate) mod mode;
pub(crate) mod policy;
mod retry_state;
pub(crate) mod select;

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{header, HeaderMap, HeaderValue, Request, Response};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use crate::credential::Credential;
use crate::error::BoxError;
#[cfg(test)]
use crate::wire::replay::ReplayBody;
use crate::wire::replay::DEFAULT_MAX_REPLAY_BODY;
use future::{Replay, RetryCtx};
use local::{has_header, Stamp};

pub use crate::wire::marks::TokenRequestMarker;
pub use future::ResponseFuture;
pub use guard::{Guard, GuardFuture, GuardLayer};
pub use mode::{InnerService, Mode, NoRetry, Retry};
pub use select::Select;

/// `get_ref`, `get_mut` and `into_inner` for a middleware whose inner service
/// is its field `inner`: written once for every service of the crate.
macro_rules! inner_accessors {
    () => {
        /// The inner service.
        pub fn get_ref(&self) -> &S {
            &self.inner
        }

        /// The inner service, mutably.
        pub fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// Consumes `self`, returning the inner service.
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}
pub(crate) use inner_accessors;

/// Layer that applies [`AuthService`]. `M` is [`Retry`] (the default) or
/// [`NoRetry`]; `P`, what is stamped, is a [`Credential`] (the default) or,
/// for many users, [`Users`](crate::users::Users) (see [`Select`]). See the
/// [module docs](self).
///
/// ```
/// use tower_client_auth::{AuthLayer, Credential};
///
/// let credential = Credential::bearer("https://api.example.com", "pat")?;
/// let retrying = AuthLayer::new(credential.clone()).max_replay_body(16 * 1024);
/// let plain = AuthLayer::new(credential).without_retry();
/// let guard = plain.guard(); // goes directly above the HTTP client
/// # let _ = (retrying, guard);
/// # Ok::<(), tower_client_auth::Error>(())
/// ```
#[must_use]
pub struct AuthLayer<M = Retry, P = Credential> {
    select: P,
    max_replay_body: usize,
    _mode: PhantomData<fn() -> M>,
}

impl<M, P: Clone> Clone for AuthLayer<M, P> {
    fn clone(&self) -> Self {
        AuthLayer {
            select: self.select.clone(),
            max_replay_body: self.max_replay_body,
            _mode: PhantomData,
        }
    }
}

impl<P: Select> AuthLayer<Retry, P> {
    /// A layer that stamps `select` on requests to its origins, a
    /// [`Credential`] or [`Users`](crate::users::Users), with 401 retry on and
    /// a replay cap of 64 KiB.
    ///
    /// The inner service must take `Request<ReplayBody<B>>` for the caller's
    /// `Request<B>` (a replayable body is what lets a request go twice). If the
    /// compiler says your client "cannot be the inner service of `AuthService`"
    /// (see [`InnerService`]), or that `oneshot` or `call` "exists for
    /// `AuthService<..>` but its trait bounds were not satisfied", this is why:
    /// either build the client
    /// for that body type (`Client::builder(..).build::<_, ReplayBody<Full<Bytes>>>(..)`),
    /// or use [`without_retry`](Self::without_retry) to pass your `Request<B>`
    /// through unchanged. Static credentials never retry, so `without_retry` costs
    /// them nothing.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::Full;
    /// use tower::{service_fn, ServiceBuilder, ServiceExt};
    /// use tower_client_auth::{AuthLayer, Credential, ReplayBody};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// let credential = Credential::bearer("https://api.example.com", "my-token")?;
    /// // With retry on, the client below takes `ReplayBody<B>` for the caller's `B`.
    /// let client = ServiceBuilder::new()
    ///     .layer(AuthLayer::new(credential))
    ///     .service(service_fn(|req: Request<ReplayBody<Full<Bytes>>>| async move {
    ///         Ok::<_, std::convert::Infallible>(Response::new(req.headers().contains_key("authorization")))
    ///     }));
    /// let req = Request::get("https://api.example.com/v1/me").body(Full::new(Bytes::new()))?;
    /// assert!(client.oneshot(req).await?.into_body());
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(select: P) -> Self {
        AuthLayer {
            select,
            max_replay_body: DEFAULT_MAX_REPLAY_BODY,
            _mode: PhantomData,
        }
    }

    /// Never re-sends after a 401, and passes the caller's request body type
    /// through unchanged (no [`ReplayBody`](crate::ReplayBody)).
    ///
    /// A DPoP-bound credential (feature `jose`) still signs a proof per
    /// request, but without retry it neither learns an API's `DPoP-Nonce` nor
    /// sends again on `use_dpop_nonce`: for an API that demands nonces, keep
    /// retry on.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::Full;
    /// use tower::{service_fn, ServiceBuilder, ServiceExt};
    /// use tower_client_auth::{AuthLayer, Credential};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// let credential = Credential::api_key("https://api.example.com", "x-api-key", "my-key")?;
    /// // The client keeps the caller's body type: `Full<Bytes>`.
    /// let client = ServiceBuilder::new()
    ///     .layer(AuthLayer::new(credential).without_retry())
    ///     .service(service_fn(|req: Request<Full<Bytes>>| async move {
    ///         Ok::<_, std::convert::Infallible>(Response::new(req.headers().contains_key("x-api-key")))
    ///     }));
    /// let req = Request::get("https://api.example.com/v1").body(Full::new(Bytes::new()))?;
    /// assert!(client.oneshot(req).await?.into_body());
    /// # Ok(())
    /// # }
    /// ```
    pub fn without_retry(self) -> AuthLayer<NoRetry, P> {
        AuthLayer {
            select: self.select,
            max_replay_body: self.max_replay_body,
            _mode: PhantomData,
        }
    }

    /// The most request-body bytes kept to re-send after a 401 (default 64 KiB).
    /// A larger body is sent normally and its 401 is handed back unchanged.
    ///
    /// ```
    /// use tower_client_auth::{AuthLayer, Credential};
    ///
    /// let credential = Credential::bearer("https://api.example.com", "my-token")?;
    /// // Uploads of up to 1 MiB are kept, so that a 401 can be answered by sending them again.
    /// let layer = AuthLayer::new(credential).max_replay_body(1024 * 1024);
    /// assert_eq!(layer.credential().name(), "https://api.example.com:443");
    /// # Ok::<(), tower_client_auth::Error>(())
    /// ```
    pub fn max_replay_body(mut self, bytes: usize) -> Self {
        self.max_replay_body = bytes;
        self
    }
}

impl<M, P: Select> AuthLayer<M, P> {
    /// The [`GuardLayer`] for what this layer stamps, to put directly above the
    /// HTTP client: on a hop to another origin it removes everything this layer
    /// added (the credential's headers and, for a DPoP-bound token, the `DPoP`
    /// proof), and it tells this layer which origin a `DPoP-Nonce` came from.
    ///
    /// For [`Users`](crate::users::Users), it knows a user's token by value
    /// among the users in memory (the request's own
    /// [`UserKey`](crate::users::UserKey) first, when its extensions came
    /// along), so a caller's own `Authorization` to another origin is left
    /// alone.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::Full;
    /// use tower::{service_fn, ServiceBuilder, ServiceExt};
    /// use tower_client_auth::{AuthLayer, Credential};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// let auth = AuthLayer::new(Credential::bearer("https://api.example.com", "my-token")?).without_retry();
    /// let client = ServiceBuilder::new()
    ///     .layer(auth.clone())
    ///     .layer(auth.guard()) // directly above the HTTP client
    ///     .service(service_fn(|req: Request<Full<Bytes>>| async move {
    ///         Ok::<_, std::convert::Infallible>(Response::new(req.headers().contains_key("authorization")))
    ///     }));
    /// // The credential's value on its way to another host is taken off.
    /// let leak = Request::get("https://elsewhere.example.org/")
    ///     .header("authorization", "Bearer my-token")
    ///     .body(Full::new(Bytes::new()))?;
    /// assert!(!client.clone().oneshot(leak).await?.into_body());
    /// let own = Request::get("https://api.example.com/v1").body(Full::new(Bytes::new()))?;
    /// assert!(client.oneshot(own).await?.into_body());
    /// # Ok(())
    /// # }
    /// ```
    pub fn guard(&self) -> GuardLayer {
        self.select.guard_layer()
    }

    /// What this layer stamps.
    ///
    /// ```
    /// use tower_client_auth::{AuthLayer, Credential};
    ///
    /// let layer = AuthLayer::new(Credential::bearer("https://api.example.com", "my-token")?);
    /// assert_eq!(layer.selector().origins()[0].host(), "api.example.com");
    /// # Ok::<(), tower_client_auth::Error>(())
    /// ```
    pub fn selector(&self) -> &P {
        &self.select
    }
}

impl<M> AuthLayer<M, Credential> {
    /// The credential this layer stamps.
    ///
    /// ```
    /// use tower_client_auth::{AuthLayer, Credential};
    ///
    /// let layer = AuthLayer::new(Credential::bearer("https://api.example.com", "my-token")?);
    /// // Keep the layer, and still reach the credential (to warm or revoke its token).
    /// assert!(!layer.credential().is_managed());
    /// # Ok::<(), tower_client_auth::Error>(())
    /// ```
    pub fn credential(&self) -> &Credential {
        &self.select
    }
}

impl<S, M, P: Select> Layer<S> for AuthLayer<M, P> {
    type Service = AuthService<S, M, P>;

    fn layer(&self, inner: S) -> AuthService<S, M, P> {
        AuthService {
            inner,
            slot: self.select.slot(),
            select: self.select.clone(),
            max_replay_body: self.max_replay_body,
            _mode: PhantomData,
        }
    }
}

/// Middleware that authenticates requests with a [`Credential`] (or, as
/// [`UsersService`](crate::users::UsersService), each with its user's token).
/// See the [module docs](self).
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower::{service_fn, ServiceExt};
/// use tower_client_auth::{AuthService, Credential, ReplayBody};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::BoxError> {
/// let credential = Credential::api_key("https://api.example.com", "x-api-key", "my-api-key")?;
/// let http_client = service_fn(|req: Request<ReplayBody<Full<Bytes>>>| async move {
///     Ok::<_, std::convert::Infallible>(Response::new(req.headers().contains_key("x-api-key")))
/// });
/// let api = AuthService::new(http_client, credential);
///
/// // Only requests to the credential's origin get the key.
/// let own = Request::get("https://api.example.com/v1").body(Full::new(Bytes::new()))?;
/// assert!(api.clone().oneshot(own).await?.into_body());
/// let other = Request::get("https://example.org/").body(Full::new(Bytes::new()))?;
/// assert!(!api.oneshot(other).await?.into_body());
/// # Ok(())
/// # }
/// ```
pub struct AuthService<S, M = Retry, P: Select = Credential> {
    inner: S,
    select: P,
    // This clone's own copies of what it stamps and its view of the token
    // (see `local`).
    slot: P::Slot,
    max_replay_body: usize,
    _mode: PhantomData<fn() -> M>,
}

impl<S: Clone, M, P: Select> Clone for AuthService<S, M, P> {
    fn clone(&self) -> Self {
        AuthService {
            inner: self.inner.clone(),
            select: self.select.clone(),
            slot: self.slot.clone(),
            max_replay_body: self.max_replay_body,
            _mode: PhantomData,
        }
    }
}

impl<S, P: Select> AuthService<S, Retry, P> {
    /// Wraps `inner` with the defaults of [`AuthLayer::new`].
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::Full;
    /// use tower::{service_fn, ServiceExt};
    /// use tower_client_auth::{AuthService, Credential, ReplayBody};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// let http_client = service_fn(|req: Request<ReplayBody<Full<Bytes>>>| async move {
    ///     Ok::<_, std::convert::Infallible>(Response::new(req.headers()["authorization"].clone()))
    /// });
    /// let api = AuthService::new(http_client, Credential::bearer("https://api.example.com", "t0k")?);
    /// let req = Request::get("https://api.example.com/").body(Full::new(Bytes::new()))?;
    /// assert_eq!(api.oneshot(req).await?.into_body(), "Bearer t0k");
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(inner: S, select: P) -> Self {
        AuthLayer::new(select).layer(inner)
    }

    /// Returns a [`Layer`] that wraps services with this middleware.
    ///
    /// ```
    /// use tower::ServiceBuilder;
    /// use tower_client_auth::{AuthService, Credential};
    ///
    /// let credential = Credential::bearer("https://api.example.com", "my-token")?;
    /// // The same as `AuthLayer::new(credential)`.
    /// let layer = AuthService::<()>::layer(credential);
    /// assert_eq!(layer.credential().name(), "https://api.example.com:443");
    /// let builder = ServiceBuilder::new().layer(layer);
    /// # let _ = builder;
    /// # Ok::<(), tower_client_auth::Error>(())
    /// ```
    pub fn layer(select: P) -> AuthLayer<Retry, P> {
        AuthLayer::new(select)
    }
}

impl<S, M, P: Select> AuthService<S, M, P> {
    inner_accessors!();

    /// What this service stamps.
    ///
    /// ```
    /// use tower::service_fn;
    /// use tower_client_auth::{AuthService, Credential};
    ///
    /// let api = AuthService::new(
    ///     service_fn(|_: http::Request<tower_client_auth::ReplayBody<String>>| async { Ok::<_, std::io::Error>(http::Response::new(())) }),
    ///     Credential::bearer("https://api.example.com", "my-token")?,
    /// );
    /// assert_eq!(api.selector().origins().len(), 1);
    /// # Ok::<(), tower_client_auth::Error>(())
    /// ```
    pub fn selector(&self) -> &P {
        &self.select
    }
}

impl<S, M> AuthService<S, M, Credential> {
    /// The credential this service stamps.
    ///
    /// ```
    /// use tower::service_fn;
    /// use tower_client_auth::{AuthService, Credential};
    ///
    /// let api = AuthService::new(
    ///     service_fn(|_: http::Request<tower_client_auth::ReplayBody<String>>| async { Ok::<_, std::io::Error>(http::Response::new(())) }),
    ///     Credential::bearer("https://api.example.com", "my-token")?,
    /// );
    /// assert_eq!(api.credential().name(), "https://api.example.com:443");
    /// assert!(api.credential().stats().is_none()); // static: no token counters
    /// # Ok::<(), tower_client_auth::Error>(())
    /// ```
    pub fn credential(&self) -> &Credential {
        &self.select
    }
}

impl<S, M, P, ReqBody> Service<Request<ReqBody>> for AuthService<S, M, P>
where
    M: Mode,
    P: Select,
    S: InnerService<M, ReqBody> + Clone,
    ReqBody: Body,
{
    type Response = Response<S::ResponseBody>;
    type Error = BoxError;
    type Future = ResponseFuture<S, ReqBody, M>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // A token request (see `TokenRequestMarker`) is never stamped: it carries its
        // own client authentication, and waiting on our own token would deadlock.
        if req.extensions().get::<TokenRequestMarker>().is_some() {
            return ResponseFuture::direct(self.inner.call(M::wrap_request(req)));
        }
        let local = match self.select.select(&mut self.slot, &req) {
            Ok(Some(local)) => local,
            Ok(None) => return ResponseFuture::direct(self.inner.call(M::wrap_request(req))),
            Err(e) => return ResponseFuture::failed(e),
        };
        local.on_request();
        let cap = self.max_replay_body;
        if let Some((token, stamp)) = local.fresh_token() {
            return stamp_and_send(&mut self.inner, req, token, stamp, cap);
        }
        let stamp = &local.stamp;
        let manager = match stamp.credential.manager() {
            // The caller chose its own Authorization: theirs to handle.
            Some(m) if !has_header(req.headers(), &header::AUTHORIZATION) => m,
            _ => {
                stamp.stamp_statics(req.headers_mut());
                return ResponseFuture::direct(self.inner.call(M::wrap_request(req)));
            }
        };
        send_when_not_fresh(&mut self.inner, req, manager, stamp, cap)
    }
}

/// The DPoP proof for a request carrying `authorization`, when the
/// credential's tokens are DPoP-bound (RFC 9449 §7): a new one per request,
/// for its method and URL, hashed to the token.
#[cfg(feature = "jose")]
#[inline]
pub(crate) fn dpop_proof(
    stamp: &Stamp,
    method: &http::Method,
    uri: &http::Uri,
    authorization: &HeaderValue,
) -> Option<HeaderValue> {
    let dpop = stamp.dpop.as_ref()?;
    let token = authorization.as_bytes().strip_prefix(b"DPoP ")?;
    let token = std::str::from_utf8(token).ok()?;
    match dpop.proof(method, uri, Some(token)) {
        Ok(proof) => Some(proof),
        Err(e) => {
            tracing::warn!(credential = stamp.credential.name(), error = %e, "no DPoP proof");
            None
        }
    }
}

/// The one place headers are stamped: the managed token's `Authorization` (when
/// given), then each static header the caller has not set.
#[inline(always)]
pub(crate) fn stamp_headers(
    headers: &mut HeaderMap,
    authorization: Option<&HeaderValue>,
    stamp: &Stamp,
) {
    if let Some(value) = authorization {
        headers.insert(header::AUTHORIZATION, value.clone());
    }
    stamp.stamp_statics(headers);
}

impl<M, P: Select> fmt::Debug for AuthLayer<M, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field(P::NAME, &self.select)
            .field("mode", &std::any::type_name::<M>().rsplit("::").next())
            .field("max_replay_body", &self.max_replay_body)
            .finish()
    }
}

impl<S: fmt::Debug, M, P: Select> fmt::Debug for AuthService<S, M, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthService")
            .field("inner", &self.inner)
            .field(P::NAME, &self.select)
            .field("mode", &std::any::type_name::<M>().rsplit("::").next())
            .finish()
    }
}

/// The path for a token that is not fresh, shared by every layer that stamps
/// managed tokens: a token whose driver task is gone but that the clock says
/// is valid is sent at once; otherwise the readiness this call was granted (a
/// concurrency permit, a buffer slot) is given back and the request waits for
/// its token with an unready clone, driven to readiness only once it is here.
#[cold]
pub(crate) fn send_when_not_fresh<S, B, M>(
    service: &mut S,
    req: Request<B>,
    manager: &Arc<crate::cache::TokenManager>,
    stamp: &Arc<Stamp>,
    max_replay_body: usize,
) -> ResponseFuture<S, B, M>
where
    M: Mode,
    S: Service<Request<M::Body<B>>> + Clone,
    B: Body,
{
    if let Some(current) = manager.usable_now() {
        let token = (&current.authorization, current.generation);
        return stamp_and_send(service, req, token, stamp, max_replay_body);
    }
    let waiting = service.clone();
    drop(std::mem::replace(service, waiting.clone()));
    ResponseFuture::acquire(
        manager.acquire(None),
        req,
        waiting,
        stamp.clone(),
        max_replay_body,
    )
}

/// The one place a request is stamped with a token and sent, through the ready
/// `service`: on the hot path, and by a request that waited for its token.
///
/// A request that carries the managed token (the caller set no `Authorization`)
/// may be retried in [`Retry`] mode: a copy of its head is taken *before* stamping
/// (a retry stamps afresh), its body is recorded, and the ready service goes with
/// it, leaving a clone in its place (see tower-service's docs on cloning), to
/// re-send through later. Written out rather than split into helpers that return
/// the request: moving it through a return value costs ~150 instructions.
#[inline(always)]
pub(crate) fn stamp_and_send<S, B, M>(
    service: &mut S,
    mut req: Request<B>,
    (authorization, generation): (&HeaderValue, u64),
    stamp: &Arc<Stamp>,
    max_replay_body: usize,
) -> ResponseFuture<S, B, M>
where
    M: Mode,
    S: Service<Request<M::Body<B>>> + Clone,
    B: Body,
{
    let carried = !has_header(req.headers(), &header::AUTHORIZATION);
    if !(M::RETRY && carried) {
        #[cfg(feature = "jose")]
        let proof = if carried && stamp.dpop.is_some() {
            dpop_proof(stamp, req.method(), req.uri(), authorization)
        } else {
            None
        };
        stamp_headers(req.headers_mut(), carried.then_some(authorization), stamp);
        #[cfg(feature = "jose")]
        if let Some(proof) = proof {
            req.headers_mut().insert(crate::jose::dpop::DPOP, proof);
        }
        return ResponseFuture::direct(service.call(M::wrap_request(req)));
    }
    let (mut parts, body) = req.into_parts();
    let head = parts.clone();
    stamp_headers(&mut parts.headers, Some(authorization), stamp);
    #[cfg(feature = "jose")]
    if stamp.dpop.is_some() {
        if let Some(proof) = dpop_proof(stamp, &parts.method, &parts.uri, authorization) {
            parts.headers.insert(crate::jose::dpop::DPOP, proof);
        }
    }
    let (body, recording) = M::record(body, max_replay_body);
    let clone = service.clone();
    let mut service = std::mem::replace(service, clone);
    let fut = service.call(Request::from_parts(parts, body));
    ResponseFuture::sent(
        fut,
        RetryCtx {
            replay: Replay {
                head: Some(head),
                recording,
                generation,
            },
            body: None,
            service,
            stamp: stamp.clone(),
            #[cfg(feature = "jose")]
            dpop_nonce: false,
            #[cfg(feature = "jose")]
            resent_to: None,
        },
    )
}

#[cfg(test)]
mod tests;
