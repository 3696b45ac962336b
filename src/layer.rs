//! [`AuthLayer`] and [`AuthService`]: stamp a credential on every request to its
//! origins, and re-send once on a 401 with a refreshed managed token.
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_client_auth::{AuthLayer, Credential, ReplayBody};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_client_auth::BoxError> {
//! let credential = Credential::bearer("https://api.example.com", "my-personal-access-token")?;
//! let client = ServiceBuilder::new()
//!     .layer(AuthLayer::new(credential))
//!     .service(service_fn(|req: Request<ReplayBody<Full<Bytes>>>| async move {
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
//!   untouched: a redirect followed to another host, or a request sent to the wrong
//!   base URL, carries no secret, including API-key headers.
//! * A header the caller already set on the request is left alone. A request that
//!   already has an `Authorization` header is sent as it is and never retried.
//!
//! # Retry on 401
//!
//! With a managed credential and retries on (the default), a request that carried
//! the managed token and got `401 Unauthorized` is sent once more with a newer
//! token: the current one if it is already newer than the rejected one, otherwise
//! one from a refresh (joined with any refresh in flight). Not retried: any other
//! status (403, 400, ...), a 401 whose `WWW-Authenticate` names an error other
//! than `invalid_token` (such as `insufficient_scope`), a body larger than the
//! replay cap. In those cases the 401 comes back unchanged.
//!
//! Retrying costs one copy of the request head and, per request, one clone of the
//! inner service (like `tower::retry`): switch it off with
//! [`AuthLayer::retry_on_401`] for the bare minimum.

use std::fmt;
use std::task::{Context, Poll};

use http::{header, Request, Response};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use crate::credential::Credential;
use crate::future::{ResponseFuture, RetryCtx};
use crate::oauth2::TokenRequestMarker;
use crate::replay::{ReplayBody, DEFAULT_MAX_REPLAY_BODY};
use crate::token::TokenCache;
use crate::BoxError;

/// Layer that applies [`AuthService`].
#[derive(Clone)]
pub struct AuthLayer {
    config: Config,
}

#[derive(Clone)]
struct Config {
    credential: Credential,
    retry_on_401: bool,
    max_replay_body: usize,
}

impl AuthLayer {
    /// A layer that stamps `credential` on requests to its origins, with 401 retry
    /// on and a replay cap of 64 KiB.
    pub fn new(credential: Credential) -> Self {
        AuthLayer {
            config: Config {
                credential,
                retry_on_401: true,
                max_replay_body: DEFAULT_MAX_REPLAY_BODY,
            },
        }
    }

    /// Whether to re-send a request once after a 401 (default: on). Only managed
    /// credentials retry; static ones always hand the 401 back.
    pub fn retry_on_401(mut self, on: bool) -> Self {
        self.config.retry_on_401 = on;
        self
    }

    /// The most request-body bytes kept to re-send after a 401 (default 64 KiB).
    /// A larger body is sent normally and its 401 is handed back unchanged.
    pub fn max_replay_body(mut self, bytes: usize) -> Self {
        self.config.max_replay_body = bytes;
        self
    }

    /// The credential this layer stamps.
    pub fn credential(&self) -> &Credential {
        &self.config.credential
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            cache: self
                .config
                .credential
                .inner
                .managed
                .as_ref()
                .map(|m| m.cache()),
            config: self.config.clone(),
        }
    }
}

/// Middleware that authenticates requests with a [`Credential`]. See the
/// [module docs](crate::layer).
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    // This service's view of the managed token (see `TokenManager::cache`).
    cache: Option<TokenCache>,
    config: Config,
}

impl<S> AuthService<S> {
    /// Wraps `inner` with the defaults of [`AuthLayer::new`].
    pub fn new(inner: S, credential: Credential) -> Self {
        AuthLayer::new(credential).layer(inner)
    }

    /// Returns a [`Layer`] that wraps services with this middleware.
    pub fn layer(credential: Credential) -> AuthLayer {
        AuthLayer::new(credential)
    }

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

    /// The credential this service stamps.
    pub fn credential(&self) -> &Credential {
        &self.config.credential
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AuthService<S>
where
    S: Service<Request<ReplayBody<ReqBody>>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
    ReqBody: Body,
    ReqBody::Error: Into<BoxError>,
{
    type Response = Response<ResBody>;
    type Error = BoxError;
    type Future = ResponseFuture<S, ReqBody>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let credential = &self.config.credential;
        // A token request (see `TokenRequestMarker`) is never stamped: it carries its
        // own client authentication, and waiting on our own token would deadlock.
        if !credential.applies_to(req.uri())
            || req.extensions().get::<TokenRequestMarker>().is_some()
        {
            return ResponseFuture::call(self.inner.call(req.map(ReplayBody::passthrough)));
        }
        let Some(manager) = &credential.inner.managed else {
            credential.stamp_static(req.headers_mut());
            return ResponseFuture::call(self.inner.call(req.map(ReplayBody::passthrough)));
        };
        let current = self
            .cache
            .as_mut()
            .and_then(|c| c.load().as_ref())
            .filter(|s| !s.is_stale());
        let Some(stamped) = current else {
            if req.headers().contains_key(header::AUTHORIZATION) {
                // The caller chose its own Authorization: theirs to handle.
                credential.stamp_static(req.headers_mut());
                return ResponseFuture::call(self.inner.call(req.map(ReplayBody::passthrough)));
            }
            // Slow path: no valid token yet. Take the ready service with us and
            // leave a clone in its place (see tower-service's docs on cloning).
            let clone = self.inner.clone();
            let inner = std::mem::replace(&mut self.inner, clone);
            return ResponseFuture::acquire(
                manager.acquire(None),
                req,
                inner,
                self.config.credential.clone(),
                self.config.retry_on_401,
                self.config.max_replay_body,
            );
        };
        // Stamp only if the caller did not set its own Authorization; only then
        // can the request be retried. The copy for a retry is taken before
        // stamping, so a retry stamps afresh.
        let carried = !crate::credential::has_header(req.headers(), &header::AUTHORIZATION);
        let head = (carried && self.config.retry_on_401).then(|| crate::future::copy_head(&req));
        let headers = req.headers_mut();
        if carried {
            headers.insert(header::AUTHORIZATION, stamped.authorization.clone());
        }
        let generation = stamped.generation;
        credential.stamp_static(headers);
        let Some(head) = head else {
            // Retry off, or the caller's own token: send as it is, never retried.
            return ResponseFuture::call(self.inner.call(req.map(ReplayBody::passthrough)));
        };
        let (parts, body) = req.into_parts();
        let (body, handle) = ReplayBody::recorded(body, self.config.max_replay_body);
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let fut = inner.call(Request::from_parts(parts, body));
        ResponseFuture::call_with_retry(
            fut,
            RetryCtx {
                head,
                handle,
                body: None,
                generation,
                service: inner,
                credential: self.config.credential.clone(),
            },
        )
    }
}

impl fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("credential", &self.config.credential)
            .field("retry_on_401", &self.config.retry_on_401)
            .field("max_replay_body", &self.config.max_replay_body)
            .finish()
    }
}

impl<S: fmt::Debug> fmt::Debug for AuthService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthService")
            .field("inner", &self.inner)
            .field("credential", &self.config.credential)
            .field("retry_on_401", &self.config.retry_on_401)
            .finish()
    }
}
