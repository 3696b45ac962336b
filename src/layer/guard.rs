//! The guard that sits directly above the HTTP client.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use super::TokenRequestMarker;
use crate::credential::Credential;

/// Layer that applies [`Guard`]: the last line before the wire. Removes every header a
/// credential stamped from any request to an origin the credential is not for.
///
/// [`AuthLayer`](crate::AuthLayer) stamps only requests to a credential's
/// origins, but it cannot see what happens below it: a redirect follower under
/// the layer (tower-http's `FollowRedirect`, or a client that follows redirects
/// itself) re-sends the stamped headers to the next hop. tower-http's policy
/// strips `Authorization` and `Cookie` when the host changes, but not an API key
/// such as `x-api-key`. The guard sits directly above the HTTP client and checks
/// every request that reaches it, hop by hop.
///
/// It recognises a credential's headers by name **and value**: the static
/// values the credential was built with, and the latest `Authorization` values
/// of its managed token. A header the caller set themselves to another origin,
/// with another value, is left alone. It does not rely on request extensions,
/// which redirect policies drop across origins.
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
#[derive(Clone)]
pub struct GuardLayer {
    credentials: Arc<[Credential]>,
}

impl GuardLayer {
    /// A guard for one credential.
    pub fn new(credential: Credential) -> Self {
        GuardLayer {
            credentials: Arc::from(vec![credential]),
        }
    }

    /// A guard for several credentials (one client serving several APIs).
    pub fn for_all(credentials: impl IntoIterator<Item = Credential>) -> Self {
        GuardLayer {
            credentials: credentials.into_iter().collect(),
        }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            credentials: self.credentials.clone(),
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
    credentials: Arc<[Credential]>,
}

impl<S> Guard<S> {
    /// Wraps `inner` with a guard for `credential`.
    pub fn new(inner: S, credential: Credential) -> Self {
        GuardLayer::new(credential).layer(inner)
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
}

impl<S, B> Service<Request<B>> for Guard<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> S::Future {
        // A token request carries its own client authentication (Altrata's
        // includes the API key) to its token endpoint; a redirect policy drops
        // the marker across origins, so a hop elsewhere is still checked.
        if req.extensions().get::<TokenRequestMarker>().is_some() {
            return self.inner.call(req);
        }
        for credential in self.credentials.iter() {
            if !credential.applies_to(req.uri()) {
                let removed = credential.remove_stamped(req.headers_mut());
                if removed > 0 {
                    tracing::debug!(
                        credential = credential.name(),
                        removed,
                        "credential headers removed from a request to another origin"
                    );
                }
            }
        }
        self.inner.call(req)
    }
}

impl fmt::Debug for GuardLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardLayer")
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl<S: fmt::Debug> fmt::Debug for Guard<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("inner", &self.inner)
            .field("credentials", &self.credentials)
            .finish()
    }
}
