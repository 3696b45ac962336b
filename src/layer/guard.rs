//! The guard that sits directly above the HTTP client.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{Extensions, HeaderMap, Request, Response, Uri};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::credential::Credential;
use crate::wire::marks::{HopUri, TokenEndpoint, TokenRequestMarker};
use crate::wire::origin::same_origin;

/// Layer that applies [`Guard`]: the last line before the wire. Removes everything
/// a credential's layer added (its headers, and the DPoP proof of a DPoP-bound
/// token) from any request to an origin the credential is not for.
///
/// [`AuthLayer`](crate::AuthLayer) stamps only requests to a credential's
/// origins, but it cannot see what happens below it: a redirect follower under
/// the layer (tower-http's `FollowRedirect`, or a client that follows redirects
/// itself) re-sends the stamped headers to the next hop. tower-http's policy
/// strips `Authorization` and `Cookie` when the host changes, but not an API key
/// such as `x-api-key`, nor a `DPoP` proof (which names the token, the URL and
/// the key). The guard sits directly above the HTTP client and checks every
/// request that reaches it, hop by hop. Get it from the layer it goes with,
/// [`AuthLayer::guard`](crate::AuthLayer::guard) or, for many users,
/// [`UsersLayer::guard`](crate::users::UsersLayer::guard).
///
/// It recognises a credential's headers by name **and value**: the static
/// values the credential was built with, the latest `Authorization` values
/// of its managed token, and `DPoP` proofs signed with its key (feature
/// `jose`). A header the caller set themselves to another origin, with another
/// value, is left alone. It does not rely on request extensions, which
/// redirect policies drop across origins.
///
/// **DPoP nonces.** A response that carries a `DPoP-Nonce` is marked with the
/// URI of the hop it answers, so that the layer above files the nonce under the
/// origin that sent it, not under the origin of the request a follower
/// redirected (and does not take another origin's `use_dpop_nonce` for its own).
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower::{service_fn, Layer, ServiceExt};
/// use tower_client_auth::layer::GuardLayer;
/// use tower_client_auth::Credential;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::BoxError> {
/// let credential = Credential::api_key("https://api.example.com", "x-api-key", "k3y")?;
/// let client = GuardLayer::new(credential).layer(service_fn(|req: Request<Full<Bytes>>| async move {
///     // Stands in for the HTTP client.
///     Ok::<_, std::convert::Infallible>(Response::new(req.headers().contains_key("x-api-key")))
/// }));
///
/// // A hop to another origin that carries the key, as a redirect follower makes it:
/// let hop = Request::get("https://elsewhere.example/")
///     .header("x-api-key", "k3y")
///     .body(Full::new(Bytes::new()))?;
/// assert!(!client.clone().oneshot(hop).await?.into_body());
///
/// // The credential's own origin keeps it.
/// let own = Request::get("https://api.example.com/v1")
///     .header("x-api-key", "k3y")
///     .body(Full::new(Bytes::new()))?;
/// assert!(client.oneshot(own).await?.into_body());
/// # Ok(())
/// # }
/// ```
#[must_use]
#[derive(Clone)]
pub struct GuardLayer {
    guarded: Arc<[Box<dyn Guarded>]>,
    /// Whether a guarded credential signs DPoP proofs: only then is each hop's
    /// URI kept, to mark a response's nonce with where it came from.
    dpop: bool,
}

/// What a guard keeps on its origins: one credential, or (implemented by
/// `users`) every user's token. The guard knows nothing else of either.
pub(crate) trait Guarded: fmt::Debug + Send + Sync + 'static {
    /// Whether `uri` is an origin this is sent to.
    fn applies_to(&self, uri: &Uri) -> bool;

    /// Removes what this stamps from a request to another origin; returns how
    /// many headers it removed.
    fn remove_stamped(&self, headers: &mut HeaderMap, extensions: &Extensions) -> usize;

    /// The name in events.
    fn name(&self) -> &str;

    /// Whether it signs DPoP proofs.
    fn signs_dpop_proofs(&self) -> bool;
}

impl Guarded for Credential {
    #[inline]
    fn applies_to(&self, uri: &Uri) -> bool {
        Credential::applies_to(self, uri)
    }

    fn remove_stamped(&self, headers: &mut HeaderMap, _: &Extensions) -> usize {
        Credential::remove_stamped(self, headers)
    }

    fn name(&self) -> &str {
        Credential::name(self)
    }

    fn signs_dpop_proofs(&self) -> bool {
        #[cfg(feature = "jose")]
        return self.manager().is_some_and(|m| m.dpop().is_some());
        #[cfg(not(feature = "jose"))]
        false
    }
}

impl GuardLayer {
    /// A guard for one credential.
    pub fn new(credential: Credential) -> Self {
        GuardLayer::for_all([credential])
    }

    /// A guard for several credentials (one client serving several APIs).
    pub fn for_all(credentials: impl IntoIterator<Item = Credential>) -> Self {
        GuardLayer::guarding(
            credentials
                .into_iter()
                .map(|c| Box::new(c) as Box<dyn Guarded>)
                .collect(),
        )
    }

    pub(crate) fn guarding(guarded: Arc<[Box<dyn Guarded>]>) -> Self {
        GuardLayer {
            dpop: guarded.iter().any(|g| g.signs_dpop_proofs()),
            guarded,
        }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            guarded: self.guarded.clone(),
            dpop: self.dpop,
        }
    }
}

/// Middleware that removes a credential's headers from requests to origins the
/// credential is not for. See [`GuardLayer`].
///
/// ```
/// use http::{Request, Response};
/// use tower::{service_fn, ServiceExt};
/// use tower_client_auth::layer::Guard;
/// use tower_client_auth::Credential;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::BoxError> {
/// let credential = Credential::api_key("https://api.example.com", "x-api-key", "my-api-key")?;
/// let http_client = service_fn(|req: Request<()>| async move {
///     Ok::<_, std::convert::Infallible>(Response::new(req.headers().contains_key("x-api-key")))
/// });
/// let guarded = Guard::new(http_client, credential);
///
/// // A redirect hop to another host, carrying the key: it goes out without it.
/// let hop = Request::get("https://cdn.example.net/file")
///     .header("x-api-key", "my-api-key")
///     .body(())?;
/// assert!(!guarded.oneshot(hop).await?.into_body());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    guarded: Arc<[Box<dyn Guarded>]>,
    dpop: bool,
}

impl<S> Guard<S> {
    /// Wraps `inner` with a guard for `credential`.
    pub fn new(inner: S, credential: Credential) -> Self {
        GuardLayer::new(credential).layer(inner)
    }

    super::inner_accessors!();
}

impl<S, B, ResBody> Service<Request<B>> for Guard<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = GuardFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> GuardFuture<S::Future> {
        // The URI of this hop, for a DPoP nonce in its answer.
        let hop = self.dpop.then(|| req.uri().clone());
        // A token request carries its own client authentication (Altrata's
        // includes the API key) to its token endpoint, and to it alone: a hop
        // elsewhere (a follower that keeps extensions across origins) is
        // checked like any other request.
        let extensions = req.extensions();
        let token_request = extensions.get::<TokenRequestMarker>().is_some()
            && extensions
                .get::<TokenEndpoint>()
                .is_none_or(|e| same_origin(&e.0, req.uri()));
        if !token_request {
            for guarded in self.guarded.iter() {
                if !guarded.applies_to(req.uri()) {
                    // Headers out and back (no allocation), to lend the
                    // extensions alongside.
                    let mut headers = std::mem::take(req.headers_mut());
                    let removed = guarded.remove_stamped(&mut headers, req.extensions());
                    *req.headers_mut() = headers;
                    if removed > 0 {
                        tracing::debug!(
                            credential = guarded.name(),
                            removed,
                            "credential headers removed from a request to another origin"
                        );
                    }
                }
            }
        }
        GuardFuture {
            inner: self.inner.call(req),
            hop,
        }
    }
}

pin_project! {
    /// The response future of a [`Guard`]: the inner service's, with a
    /// response that carries a `DPoP-Nonce` marked with the URI of the hop it
    /// answers (see [`GuardLayer`]).
    #[must_use = "futures do nothing unless polled"]
    pub struct GuardFuture<F> {
        #[pin]
        inner: F,
        hop: Option<Uri>,
    }
}

impl<F, ResBody, E> Future for GuardFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(hop) = this.hop.take() {
            if response.headers().contains_key("dpop-nonce") {
                response.extensions_mut().insert(HopUri(hop));
            }
        }
        Poll::Ready(Ok(response))
    }
}

impl<F> fmt::Debug for GuardFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardFuture").finish_non_exhaustive()
    }
}

impl fmt::Debug for GuardLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardLayer")
            .field("guarded", &self.guarded)
            .finish()
    }
}

impl<S: fmt::Debug> fmt::Debug for Guard<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("inner", &self.inner)
            .field("guarded", &self.guarded)
            .finish()
    }
}
