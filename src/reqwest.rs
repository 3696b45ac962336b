//! reqwest under the layer (feature `reqwest`).
//!
//! [`ReqwestService`] is a `reqwest::Client` as a tower service of `http`
//! requests and responses: it goes under [`AuthLayer`](crate::AuthLayer), and
//! `&ReqwestService` serves a [`TokenClient`](crate::oauth2::TokenClient) as
//! its HTTP client, so one connection pool carries both.
//!
//! **Redirects.** reqwest follows redirects inside `Client::execute`, below the
//! layer, where nothing can take a stamped header off again: its default policy
//! drops `Authorization` and `Cookie` on a change of host but re-sends an API
//! key such as `x-api-key` to wherever the `Location` points. A
//! `ReqwestService` is therefore always built with [`same_origin_redirects`]:
//! hops that stay on the request's origin (scheme, host and port) are followed,
//! and a redirect to any other origin comes back to the caller as the 3xx
//! response. To follow those too, put tower-http's `FollowRedirectLayer`
//! *above* the [`AuthLayer`](crate::AuthLayer): each hop is then stamped, or
//! not, for its own origin. The policy does not depend on the credential, so
//! it covers a [`UsersLayer`](crate::users::UsersLayer)'s tokens (and DPoP
//! proofs) in the same way: no guard is needed under either.
//!
//! **reqwest's request builder** stays usable through [`SendRequest::send`]:
//! build a request with `reqwest::Client::get(..).header(..).body(..)` as
//! usual and send it through the authenticated stack.
//!
//! Built for reqwest 0.13 with no features of its own turned on: add reqwest to
//! your own dependencies with the TLS and other features you want, and cargo
//! builds one reqwest for both.
//!
//! ```
//! use tower::{Layer, ServiceExt};
//! use tower_client_auth::reqwest::{ReqwestService, SendRequest};
//! use tower_client_auth::{AuthLayer, Credential};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_client_auth::BoxError> {
//! # let api = tower_client_auth::testing::serve(|_| async {
//! #     http::Response::new(http_body_util::Full::new(bytes::Bytes::new()))
//! # }).await;
//! # let base = api.base_url();
//! let http = ReqwestService::new()?;
//! let credential = Credential::builder()
//!     .origin(&base)
//! #   .allow_http() // e.g. "https://api.example.com"
//!     .api_key("x-api-key", "k3y")
//!     .build()?;
//! let client = AuthLayer::new(credential).layer(http.clone());
//!
//! // reqwest's own builder, sent through the layer:
//! let res = client
//!     .send(http.client().get(format!("{base}/anything?page=2")).header("accept", "application/json"))
//!     .await?;
//! # let _ = res.status();
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower::ServiceExt;
use tower_service::Service;

use crate::error::{BoxError, Error, Kind};
#[cfg(feature = "oauth2")]
use crate::oauth2::{HttpService, IntoHttpService};

/// The most redirects a [`ReqwestService`] follows within one origin, as
/// reqwest's own default.
pub const MAX_REDIRECTS: usize = 10;

/// A `reqwest::Client` as a tower service: `http::Request<B>` in,
/// `http::Response<reqwest::Body>` out, with redirects limited to the
/// request's own origin (see the [module docs](self)).
///
/// Cloning shares the connection pool.
///
/// ```
/// use tower_client_auth::oauth2::TokenClient;
/// use tower_client_auth::reqwest::ReqwestService;
///
/// # fn f() -> Result<(), tower_client_auth::Error> {
/// let http = ReqwestService::from_builder(
///     reqwest::Client::builder().timeout(std::time::Duration::from_secs(20)),
/// )?;
/// // The token endpoint through the same pool: pass it by reference.
/// let tokens = TokenClient::builder("https://auth.example.com/oauth/token")
///     .client_id("id")
///     .client_secret("secret")
///     .build(&http)?;
/// # let _ = tokens; Ok(()) }
/// ```
#[derive(Clone)]
pub struct ReqwestService {
    client: ::reqwest::Client,
}

impl ReqwestService {
    /// A service over a new `reqwest::Client` with reqwest's defaults, except
    /// redirects.
    pub fn new() -> Result<Self, Error> {
        Self::from_builder(::reqwest::Client::builder())
    }

    /// A service over the client `builder` builds, with its redirect policy
    /// replaced by [`same_origin_redirects`]. (A ready-made `reqwest::Client`
    /// is not accepted: its redirect policy cannot be read, and the default
    /// one leaks API keys.)
    pub fn from_builder(builder: ::reqwest::ClientBuilder) -> Result<Self, Error> {
        let client = builder
            .redirect(same_origin_redirects(MAX_REDIRECTS))
            .build()
            .map_err(|e| {
                Error::with_source(
                    Kind::Config("the reqwest client could not be built".into()),
                    e,
                )
            })?;
        Ok(ReqwestService { client })
    }

    /// The underlying client, for building requests to pass to
    /// [`SendRequest::send`]. Requests sent with it directly are not
    /// authenticated.
    pub fn client(&self) -> &::reqwest::Client {
        &self.client
    }
}

impl fmt::Debug for ReqwestService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReqwestService").finish_non_exhaustive()
    }
}

/// A reqwest redirect policy that follows up to `max` redirects as long as
/// each stays on the origin (scheme, host, port) of the hop before it, and
/// otherwise stops, handing the 3xx response back unfollowed.
///
/// ```
/// let client = reqwest::Client::builder()
///     .redirect(tower_client_auth::reqwest::same_origin_redirects(5))
///     .build()?;
/// # let _ = client; Ok::<_, reqwest::Error>(())
/// ```
pub fn same_origin_redirects(max: usize) -> ::reqwest::redirect::Policy {
    ::reqwest::redirect::Policy::custom(move |attempt| {
        let same_origin = attempt
            .previous()
            .last()
            .is_some_and(|prev| prev.origin() == attempt.url().origin());
        if !same_origin || attempt.previous().len() > max {
            attempt.stop()
        } else {
            attempt.follow()
        }
    })
}

impl<B> Service<Request<B>> for ReqwestService
where
    B: Body + Send + Sync + 'static,
    B::Data: Into<Bytes>,
    B::Error: Into<BoxError>,
{
    type Response = Response<::reqwest::Body>;
    type Error = ::reqwest::Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let req = req.map(::reqwest::Body::wrap);
        match ::reqwest::Request::try_from(req) {
            Ok(req) => ResponseFuture {
                pending: Some(Service::call(&mut self.client, req)),
                failed: None,
            },
            Err(e) => ResponseFuture {
                pending: None,
                failed: Some(e),
            },
        }
    }
}

/// reqwest's own future for a request (its type is not exported by name).
type Pending = <::reqwest::Client as Service<::reqwest::Request>>::Future;

pin_project_lite::pin_project! {
    /// The future of a [`ReqwestService`] request.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::Request;
    /// use http_body_util::Full;
    /// use tower::{Service, ServiceExt};
    /// use tower_client_auth::reqwest::{ReqwestService, ResponseFuture};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// # let server = tower_client_auth::testing::serve(|_| async { http::Response::new(Full::new(Bytes::new())) }).await;
    /// # let base_url = server.base_url();
    /// let mut http = ReqwestService::new()?;
    /// let req = Request::get(format!("{base_url}/health")).body(Full::new(Bytes::new()))?;
    /// // It serves many body types: say which one `ready` is for.
    /// let ready = ServiceExt::<Request<Full<Bytes>>>::ready(&mut http).await?;
    /// let future: ResponseFuture = ready.call(req);
    /// assert_eq!(future.await?.status(), 200);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture {
        #[pin]
        pending: Option<Pending>,
        failed: Option<::reqwest::Error>,
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<::reqwest::Body>, ::reqwest::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.pending.as_pin_mut() {
            Some(pending) => pending.poll(cx).map_ok(into_http),
            None => Poll::Ready(Err(this.failed.take().expect("polled after completion"))),
        }
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

/// reqwest's response as an `http` one, keeping the final URL where
/// `reqwest::Response::from` finds it again.
fn into_http(res: ::reqwest::Response) -> Response<::reqwest::Body> {
    use ::reqwest::ResponseBuilderExt;
    let url = res.url().clone();
    let mut res: Response<::reqwest::Body> = res.into();
    if let Ok(carrier) = Response::builder().url(url).body(()) {
        res.extensions_mut()
            .extend(carrier.into_parts().0.extensions);
    }
    res
}

#[cfg(feature = "oauth2")]
/// `&ReqwestService` as a token endpoint client: pass `&http` to
/// [`TokenClientBuilder::build`](crate::oauth2::TokenClientBuilder::build) or a
/// preset's `build`.
impl IntoHttpService<ReqwestService> for &ReqwestService {
    fn into_http_service(self) -> HttpService {
        let service: ForTokens = ForTokens(self.clone());
        service.into_http_service()
    }
}

#[cfg(feature = "oauth2")]
/// A `ReqwestService` that takes token requests' bodies only, so that the
/// blanket [`IntoHttpService`] impl picks one body type.
#[derive(Clone)]
struct ForTokens(ReqwestService);

#[cfg(feature = "oauth2")]
impl Service<Request<http_body_util::Full<Bytes>>> for ForTokens {
    type Response = Response<::reqwest::Body>;
    type Error = ::reqwest::Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<http_body_util::Full<Bytes>>) -> Self::Future {
        self.0.call(req)
    }
}

/// Sends a request built with reqwest's `RequestBuilder` through any service
/// that takes `http::Request<reqwest::Body>`, such as an
/// [`AuthService`](crate::AuthService) over a [`ReqwestService`], and gives
/// back a `reqwest::Response` (with `json()`, `text()`, `error_for_status()`).
///
/// ```
/// use tower::Layer;
/// use tower_client_auth::reqwest::{ReqwestService, SendRequest};
/// use tower_client_auth::{AuthLayer, Credential};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::BoxError> {
/// # let server = tower_client_auth::testing::serve(|req| async move {
/// #     let auth = req.headers().get("authorization").cloned().unwrap_or(http::HeaderValue::from_static(""));
/// #     http::Response::new(http_body_util::Full::new(bytes::Bytes::copy_from_slice(auth.as_bytes())))
/// # })
/// # .await;
/// # let base_url = server.base_url(); // "https://api.example.com" in real life
/// let http = ReqwestService::new()?;
/// let api = AuthLayer::new(Credential::bearer(&base_url, "my-token")?).layer(http.clone());
///
/// let res = api.send(http.client().get(format!("{base_url}/v1/me"))).await?;
/// assert_eq!(res.error_for_status()?.text().await?, "Bearer my-token");
/// # Ok(())
/// # }
/// ```
pub trait SendRequest {
    /// Builds `request` and sends it through this service (a clone of it,
    /// driven to readiness first).
    fn send(
        &self,
        request: ::reqwest::RequestBuilder,
    ) -> Pin<Box<dyn Future<Output = Result<::reqwest::Response, BoxError>> + Send + 'static>>;
}

impl<S, ResBody> SendRequest for S
where
    S: Service<Request<::reqwest::Body>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ResBody: Into<::reqwest::Body>,
{
    fn send(
        &self,
        request: ::reqwest::RequestBuilder,
    ) -> Pin<Box<dyn Future<Output = Result<::reqwest::Response, BoxError>> + Send + 'static>> {
        let service = self.clone();
        Box::pin(async move {
            let request = request.build()?;
            let request = Request::<::reqwest::Body>::try_from(request)?;
            let res = service.oneshot(request).await.map_err(Into::into)?;
            Ok(::reqwest::Response::from(res))
        })
    }
}
