//! The HTTP service a token client sends through, type-erased: any
//! `tower::Service` over `http` with a body a token request can use.

//! The token endpoint client: builds a grant request the way the server wants it
//! and sends it through the HTTP service you give.

use std::sync::Arc;

use bytes::{Buf, Bytes};
use http::{Request, Response};
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

use crate::BoxError;

/// The HTTP service a [`TokenClient`](super::TokenClient) sends through, type-erased.
///
/// Box a client once with [`IntoHttpService`], then share it:
///
/// ```
/// use tower::ServiceExt;
/// use tower_client_auth::oauth2::{HttpService, IntoHttpService, TokenClient};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::BoxError> {
/// # let endpoint = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
/// #         bytes::Bytes::from_static(br#"{"access_token":"my-token","token_type":"Bearer","expires_in":3600}"#),
/// #     )))
/// # });
/// let http: HttpService = endpoint.into_http_service();
/// let reader = TokenClient::builder("https://auth.example.com/token")
///     .client_id("reader")
///     .build(http.clone())?;
/// let writer = TokenClient::builder("https://auth.example.com/token")
///     .client_id("writer")
///     .build(http.clone())?;
/// # let _ = (reader, writer);
/// let res = http.oneshot(http::Request::post("https://auth.example.com/token").body(Default::default())?).await?;
/// assert_eq!(res.status(), 200);
/// # Ok(())
/// # }
/// ```
pub type HttpService =
    BoxCloneSyncService<Request<Full<Bytes>>, Response<UnsyncBoxBody<Bytes, BoxError>>, BoxError>;

/// A request body type a token request can be sent with: `Full<Bytes>`, or
/// [`ReplayBody<Full<Bytes>>`](crate::ReplayBody) so that one hyper-util client can
/// serve both the token endpoint and, behind an [`AuthLayer`](crate::AuthLayer),
/// the API.
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
/// use tower::Layer;
/// use tower_client_auth::oauth2::{OAuth2Source, TokenClient};
/// use tower_client_auth::{AuthLayer, Credential, ReplayBody};
///
/// // One client, one connection pool, for the token endpoint and the API.
/// let http = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
/// let tokens = TokenClient::builder("https://auth.example.com/token")
///     .client_id("my-client")
///     .client_secret("my-secret")
///     .build(http.clone())?;
/// let credential = Credential::builder()
///     .origin("https://api.example.com")
///     .token_source(OAuth2Source::client_credentials(tokens))
///     .build()?;
/// let api = AuthLayer::new(credential).layer(http);
/// # let _ = api;
/// # Ok::<(), tower_client_auth::Error>(())
/// ```
pub trait TokenRequestBody: sealed::Sealed + Send + 'static {
    /// Wraps the token request's body.
    fn from_full(body: Full<Bytes>) -> Self;
}

impl TokenRequestBody for Full<Bytes> {
    fn from_full(body: Full<Bytes>) -> Self {
        body
    }
}

impl TokenRequestBody for crate::ReplayBody<Full<Bytes>> {
    fn from_full(body: Full<Bytes>) -> Self {
        crate::ReplayBody::passthrough(body)
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for http_body_util::Full<bytes::Bytes> {}
    impl Sealed for crate::ReplayBody<http_body_util::Full<bytes::Bytes>> {}
}

/// An HTTP client a [`TokenClient`](super::TokenClient) can send through: any cloneable `Send`
/// service (it need not be `Sync`: a `ConcurrencyLimit` or `Buffer` around your
/// client fits, and may be the same one the API requests go through) taking `Request<Full<Bytes>>` or `Request<ReplayBody<Full<Bytes>>>` (see
/// [`TokenRequestBody`]), such as a hyper-util client. `M` is inferred; it only
/// lets one blanket implementation cover every body type.
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_client_auth::oauth2::TokenClient;
/// # use tower_client_auth::secrecy::ExposeSecret;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::Error> {
/// # let endpoint = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
/// #         bytes::Bytes::from_static(br#"{"access_token":"my-token","token_type":"Bearer","expires_in":3600}"#),
/// #     )))
/// # });
/// // A concurrency limit makes the client `!Sync`: it is accepted all the same.
/// let limited = ServiceBuilder::new().concurrency_limit(8).service(endpoint);
/// let tokens = TokenClient::builder("https://auth.example.com/token")
///     .client_id("my-client")
///     .client_secret("my-secret")
///     .build(limited)?;
/// let token = tokens.client_credentials(&[]).await?;
/// assert_eq!(token.access_token().expose_secret(), "my-token");
/// # Ok(())
/// # }
/// ```
pub trait IntoHttpService<M> {
    /// Boxes the client for the token endpoint.
    fn into_http_service(self) -> HttpService;
}

impl<S, ReqBody, B> IntoHttpService<(ReqBody, B)> for S
where
    S: Service<Request<ReqBody>, Response = Response<B>> + Clone + Send + 'static,
    ReqBody: TokenRequestBody,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    fn into_http_service(self) -> HttpService {
        // Services such as tower's `ConcurrencyLimit` or `Buffer` are `Send` but
        // not `Sync`: keep the one given behind a lock and send each token request
        // through a fresh clone of it, driven to readiness by `oneshot`.
        let proto = Arc::new(std::sync::Mutex::new(self));
        let http = tower::service_fn(move |req: Request<Full<Bytes>>| {
            let service = proto.lock().unwrap_or_else(|e| e.into_inner()).clone();
            service
                .map_request(|req: Request<Full<Bytes>>| req.map(ReqBody::from_full))
                .map_response(|res: Response<B>| {
                    res.map(|body| {
                        body.map_frame(|f| f.map_data(|mut d| d.copy_to_bytes(d.remaining())))
                            .map_err(Into::into)
                            .boxed_unsync()
                    })
                })
                .map_err(Into::into)
                .oneshot(req)
        });
        BoxCloneSyncService::new(http)
    }
}

/// Reads a response body whole, frame by frame, at most `cap` bytes:
/// `Ok(None)` when it is larger. (Frame by frame rather than through
/// `Limited`, whose error conversion keeps the future from being `Send` for
/// every lifetime, which a boxed token source needs.)
pub(crate) async fn read_capped(
    mut body: UnsyncBoxBody<Bytes, BoxError>,
    cap: usize,
) -> Result<Option<Bytes>, crate::Error> {
    let mut bytes = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e: BoxError| crate::Error::with_source(crate::error::Kind::Transport, e))?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > cap {
                return Ok(None);
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(Some(bytes.freeze()))
}
