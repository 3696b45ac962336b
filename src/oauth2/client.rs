//! The token endpoint client: builds a grant request the way the server wants it
//! and sends it through the HTTP service you give.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::{Buf, Bytes};
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, Uri};
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use secrecy::{ExposeSecret, SecretString};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

use super::grant::Grant;
use super::response::parse_token_response;
use crate::error::{Error, Kind};
use crate::token::Token;
use crate::BoxError;

/// The default cap on a token response body: 1 MiB.
pub const DEFAULT_MAX_RESPONSE: usize = 1024 * 1024;
/// The default timeout for one token request, connection to last body byte.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The HTTP service a [`TokenClient`] sends through, type-erased.
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

/// An HTTP client a [`TokenClient`] can send through: any cloneable `Send`
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

use crate::wire::marks::TokenRequestMarker;

/// How the client authenticates to the token endpoint (RFC 6749 §2.3.1).
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::{BodyExt, Full};
/// use tower::service_fn;
/// use tower_client_auth::oauth2::{ClientAuth, TokenClient};
/// use tower_client_auth::BoxError;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), BoxError> {
/// // A token endpoint that wants the client's id and secret in the form.
/// let endpoint = service_fn(|req: Request<Full<Bytes>>| async move {
///     assert!(!req.headers().contains_key("authorization"));
///     let form = req.into_body().collect().await?.to_bytes();
///     assert_eq!(form, "grant_type=client_credentials&client_id=my-client&client_secret=my-secret");
///     Ok::<_, BoxError>(Response::new(Full::new(Bytes::from_static(br#"{"access_token":"my-token"}"#))))
/// });
/// let tokens = TokenClient::builder("https://auth.example.com/token")
///     .client_id("my-client")
///     .client_secret("my-secret")
///     .client_auth(ClientAuth::Body)
///     .build(endpoint)?;
/// tokens.client_credentials(&[]).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// `Authorization: Basic` with id and secret form-urlencoded first, as §2.3.1
    /// says. The default.
    Basic,
    /// `Authorization: Basic` with id and secret as they are, for servers that do
    /// not decode them.
    BasicRaw,
    /// `client_id` and `client_secret` in the request parameters (an empty secret
    /// is left out).
    Body,
    /// A public client: only `client_id` in the parameters.
    None,
    /// A JWT signed with the client's private key (`private_key_jwt`); set by
    /// [`TokenClientBuilder::private_key_jwt`], which also gives the key.
    #[cfg(feature = "jose")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jose")))]
    PrivateKeyJwt,
}

/// Where the grant parameters go.
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower::service_fn;
/// use tower_client_auth::oauth2::{ParamStyle, TokenClient};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::Error> {
/// let endpoint = service_fn(|req: Request<Full<Bytes>>| async move {
///     assert_eq!(req.uri().query(), Some("grant_type=client_credentials"));
///     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(br#"{"access_token":"my-token"}"#))))
/// });
/// let tokens = TokenClient::builder("https://auth.example.com/oauth2/token")
///     .client_id("my-user")
///     .client_secret("my-password")
///     .params_in(ParamStyle::Query)
///     .build(endpoint)?;
/// tokens.client_credentials(&[]).await?;
/// // Secret parameters never go into a URL.
/// assert!(tokens.password("jane", "her-password", &[]).await.unwrap_err().is_config());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParamStyle {
    /// `application/x-www-form-urlencoded` body, as RFC 6749 says. The default.
    Form,
    /// A JSON object body (Algoreg's `/api/v1/token`).
    Json,
    /// The query string, with an empty form-typed body (Altrata's
    /// `?grant_type=client_credentials`). Refused for grants whose parameters
    /// are secret (password, code, refresh token, client secret).
    Query,
}

/// Sends grant requests to one token endpoint. Cheap to clone.
///
/// ```
/// # use tower_client_auth::oauth2::{ClientAuth, TokenClient};
/// # fn client<S>(http: S) -> Result<TokenClient, tower_client_auth::Error>
/// # where S: tower::Service<http::Request<http_body_util::Full<bytes::Bytes>>, Response = http::Response<http_body_util::Full<bytes::Bytes>>, Error = std::convert::Infallible> + Clone + Send + Sync + 'static, S::Future: Send {
/// let client = TokenClient::builder("https://auth.example.com/oauth/token")
///     .client_id("my-client")
///     .client_secret("my-secret")
///     .client_auth(ClientAuth::Basic)
///     .build(http)?;
/// # Ok(client) }
/// ```
#[derive(Clone)]
pub struct TokenClient {
    http: HttpService,
    endpoint: Arc<Endpoint>,
}

struct Endpoint {
    url: Uri,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    auth: ClientAuth,
    style: ParamStyle,
    headers: Vec<(HeaderName, HeaderValue)>,
    params: Vec<(String, String)>,
    timeout: Duration,
    max_response: usize,
    /// Plain `http://` allowed to any host, for every endpoint of this client.
    allow_http: bool,
    #[cfg(feature = "jose")]
    jose: Jose,
}

/// What the `jose` feature adds to a token endpoint: DPoP proofs and
/// `private_key_jwt` client assertions.
#[cfg(feature = "jose")]
#[derive(Clone, Default)]
struct Jose {
    dpop: Option<super::Dpop>,
    assertion_key: Option<super::PrivateKey>,
    /// The assertion's `aud` (default: the token URL).
    audience: Option<String>,
}

impl TokenClient {
    /// Starts a client for the token endpoint at `token_url`, checked by
    /// [`build`](TokenClientBuilder::build) with the rule of
    /// [`Origin`](crate::Origin): `https://` (or loopback, or
    /// [`allow_http`](TokenClientBuilder::allow_http)), no user information.
    pub fn builder(token_url: impl Into<String>) -> TokenClientBuilder {
        TokenClientBuilder {
            url: token_url.into(),
            client_id: None,
            client_secret: None,
            auth: ClientAuth::Basic,
            style: ParamStyle::Form,
            headers: Vec::new(),
            params: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            max_response: DEFAULT_MAX_RESPONSE,
            allow_http: false,
            #[cfg(feature = "jose")]
            jose: Jose::default(),
            error: None,
        }
    }

    /// What binds this client's tokens to a key, for store identities: a DPoP
    /// key's thumbprint (a token bound to one key is useless to a process
    /// holding another, so such processes must not share it).
    pub(crate) fn key_binding(&self) -> String {
        #[cfg(feature = "jose")]
        if let Some(dpop) = &self.endpoint.jose.dpop {
            return format!("|dpop:{}", dpop.thumbprint());
        }
        String::new()
    }

    /// The DPoP key and nonces this client proves possession with, if any.
    #[cfg(feature = "jose")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jose")))]
    pub fn dpop(&self) -> Option<&super::Dpop> {
        self.endpoint.jose.dpop.as_ref()
    }

    /// The token endpoint URL.
    pub fn token_url(&self) -> &Uri {
        &self.endpoint.url
    }

    /// The extra, non-secret parameters (audience, resource, ...) as they
    /// enter a shared store's key: names and values, sorted.
    pub(crate) fn identity_params(&self) -> String {
        let mut params: Vec<String> = self
            .endpoint
            .params
            .iter()
            .map(|(k, v)| {
                let special = ['|', '&', '='];
                format!(
                    "{}={}",
                    crate::token::identity_field(k, &special),
                    crate::token::identity_field(v, &special)
                )
            })
            .collect();
        params.sort();
        params.join("&")
    }

    /// The client id, if one is set.
    pub fn client_id(&self) -> Option<&str> {
        self.endpoint.client_id.as_deref()
    }

    /// Requests a token with `grant`, asking for `scopes` (none: the server's default).
    pub fn request_token(
        &self,
        grant: &Grant,
        scopes: &[String],
    ) -> impl std::future::Future<Output = Result<Token, Error>> + Send + 'static {
        let request = self.build_request(grant, scopes);
        // A second request, if the endpoint asks for a new DPoP nonce, is
        // built afresh: a client assertion must not be sent twice.
        #[cfg(feature = "jose")]
        let rebuild = {
            let (this, grant, scopes) = (self.clone(), grant.clone(), scopes.to_vec());
            move || this.build_request(&grant, &scopes)
        };
        #[cfg(not(feature = "jose"))]
        let rebuild = || unreachable!("only DPoP sends a token request twice");
        let endpoint = self.endpoint.clone();
        let http = self.http.clone();
        async move {
            let timeout = endpoint.timeout;
            match tokio::time::timeout(timeout, exchange(http, request?, rebuild, endpoint)).await {
                Ok(result) => result,
                Err(_) => Err(Error::new(Kind::Timeout)),
            }
        }
    }

    /// Client credentials grant (RFC 6749 §4.4).
    pub async fn client_credentials(&self, scopes: &[String]) -> Result<Token, Error> {
        self.request_token(&Grant::ClientCredentials, scopes).await
    }

    /// Resource owner password grant (RFC 6749 §4.3).
    pub async fn password(
        &self,
        username: impl Into<String>,
        password: impl Into<SecretString>,
        scopes: &[String],
    ) -> Result<Token, Error> {
        self.request_token(&Grant::password(username, password), scopes)
            .await
    }

    /// Exchanges an authorization code (RFC 6749 §4.1.3), with the PKCE verifier if
    /// one was used.
    pub async fn exchange_code(
        &self,
        code: impl Into<SecretString>,
        redirect_uri: Option<&str>,
        pkce_verifier: Option<&super::PkceVerifier>,
    ) -> Result<Token, Error> {
        let grant = Grant::AuthorizationCode {
            code: code.into(),
            redirect_uri: redirect_uri.map(str::to_owned),
            pkce_verifier: pkce_verifier.map(|v| v.secret().clone()),
        };
        self.request_token(&grant, &[]).await
    }

    /// Refresh token grant (RFC 6749 §6). When the answer has no refresh token,
    /// the one sent is kept in the returned token.
    pub async fn refresh(
        &self,
        refresh_token: &SecretString,
        scopes: &[String],
    ) -> Result<Token, Error> {
        let grant = Grant::RefreshToken {
            refresh_token: refresh_token.clone(),
        };
        let mut token = self.request_token(&grant, scopes).await?;
        if token.refresh_token.is_none() {
            token.refresh_token = Some(refresh_token.clone());
        }
        Ok(token)
    }

    pub(crate) fn build_request(
        &self,
        grant: &Grant,
        scopes: &[String],
    ) -> Result<Request<Full<Bytes>>, Error> {
        self.build_request_to(&self.endpoint.url, Some(grant), scopes)
    }

    /// A request to `url` (the token endpoint, or another endpoint that takes
    /// the same client authentication, like the device authorization
    /// endpoint) with `grant`'s parameters, if any.
    pub(crate) fn build_request_to(
        &self,
        url: &Uri,
        grant: Option<&Grant>,
        scopes: &[String],
    ) -> Result<Request<Full<Bytes>>, Error> {
        let e = &*self.endpoint;
        let mut params: Vec<(&str, &str)> = Vec::with_capacity(8);
        let mut secret_params = false;
        if let Some(grant) = grant {
            params.push(("grant_type", grant.grant_type()));
        }
        match grant.unwrap_or(&Grant::ClientCredentials) {
            Grant::ClientCredentials => {}
            Grant::Password { username, password } => {
                params.push(("username", username));
                params.push(("password", password.expose_secret()));
                secret_params = true;
            }
            Grant::AuthorizationCode {
                code,
                redirect_uri,
                pkce_verifier,
            } => {
                params.push(("code", code.expose_secret()));
                if let Some(uri) = redirect_uri {
                    params.push(("redirect_uri", uri));
                }
                if let Some(v) = pkce_verifier {
                    params.push(("code_verifier", v.expose_secret()));
                }
                secret_params = true;
            }
            Grant::RefreshToken { refresh_token } => {
                params.push(("refresh_token", refresh_token.expose_secret()));
                secret_params = true;
            }
            Grant::DeviceCode { device_code } => {
                params.push(("device_code", device_code.expose_secret()));
                secret_params = true;
            }
            Grant::JwtBearer { assertion } => {
                params.push(("assertion", assertion.expose_secret()));
                secret_params = true;
            }
            Grant::TokenExchange(x) => {
                params.push(("subject_token", x.subject_token.expose_secret()));
                params.push(("subject_token_type", &x.subject_token_type));
                if let Some((token, token_type)) = &x.actor {
                    params.push(("actor_token", token.expose_secret()));
                    params.push(("actor_token_type", token_type));
                }
                if let Some(t) = &x.requested_token_type {
                    params.push(("requested_token_type", t));
                }
                for a in &x.audience {
                    params.push(("audience", a));
                }
                for r in &x.resource {
                    params.push(("resource", r));
                }
                secret_params = true;
            }
        }
        let scope = scopes.join(" ");
        if !scope.is_empty() {
            params.push(("scope", &scope));
        }
        for (k, v) in &e.params {
            params.push((k, v));
        }
        let mut authorization = None;
        #[cfg(feature = "jose")]
        let assertion: String;
        match e.auth {
            ClientAuth::Basic | ClientAuth::BasicRaw => {
                let id = e.client_id.as_deref().unwrap_or("");
                let secret = e.client_secret.as_ref().map_or("", |s| s.expose_secret());
                let raw = if e.auth == ClientAuth::Basic {
                    format!("{}:{}", form_encode(id), form_encode(secret))
                } else {
                    format!("{id}:{secret}")
                };
                let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
                let mut v = HeaderValue::try_from(format!("Basic {encoded}"))
                    .map_err(|_| Error::config("client credentials are not a valid header"))?;
                v.set_sensitive(true);
                authorization = Some(v);
            }
            ClientAuth::Body => {
                if let Some(id) = &e.client_id {
                    params.push(("client_id", id));
                }
                if let Some(secret) = &e.client_secret {
                    if !secret.expose_secret().is_empty() {
                        params.push(("client_secret", secret.expose_secret()));
                        secret_params = true;
                    }
                }
            }
            ClientAuth::None => {
                if let Some(id) = &e.client_id {
                    params.push(("client_id", id));
                }
            }
            #[cfg(feature = "jose")]
            ClientAuth::PrivateKeyJwt => {
                let (Some(id), Some(key)) = (&e.client_id, &e.jose.assertion_key) else {
                    return Err(Error::config("private_key_jwt needs a client id and a key"));
                };
                let now = crate::jose::keys::unix_now();
                let audience = match &e.jose.audience {
                    Some(a) => a.clone(),
                    None => url.to_string(),
                };
                let mut header = serde_json::Map::new();
                header.insert("typ".into(), "JWT".into());
                if let Some(kid) = key.kid() {
                    header.insert("kid".into(), kid.into());
                }
                let claims = serde_json::json!({
                    "iss": id,
                    "sub": id,
                    "aud": audience,
                    "jti": crate::jose::keys::new_jti()?,
                    "iat": now,
                    "exp": now + 60,
                });
                assertion = key.sign(header, &claims);
                params.push(("client_id", id));
                params.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ));
                params.push(("client_assertion", &assertion));
                secret_params = true;
            }
        }

        let (uri, content_type, body) = match e.style {
            ParamStyle::Form => (
                url.clone(),
                "application/x-www-form-urlencoded",
                Bytes::from(form_body(&params)),
            ),
            ParamStyle::Json => {
                let map: serde_json::Map<String, serde_json::Value> = params
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
                    .collect();
                let body = serde_json::to_vec(&map)
                    .map_err(|_| Error::config("cannot encode token request as JSON"))?;
                (url.clone(), "application/json", Bytes::from(body))
            }
            ParamStyle::Query => {
                if secret_params {
                    return Err(Error::config(
                        "refusing to put secret grant parameters in a query string",
                    ));
                }
                let query = form_body(&params);
                let base = url.to_string();
                let sep = if url.query().is_some() { '&' } else { '?' };
                let uri: Uri = format!("{base}{sep}{query}")
                    .parse()
                    .map_err(|_| Error::config("token URL with parameters is not a valid URI"))?;
                (uri, "application/x-www-form-urlencoded", Bytes::new())
            }
        };

        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(v) = authorization {
            headers.insert(header::AUTHORIZATION, v);
        }
        for (name, value) in &e.headers {
            headers.insert(name.clone(), value.clone());
        }
        request.extensions_mut().insert(TokenRequestMarker);
        Ok(request)
    }
}

async fn exchange(
    http: HttpService,
    request: Request<Full<Bytes>>,
    rebuild: impl FnOnce() -> Result<Request<Full<Bytes>>, Error>,
    endpoint: Arc<Endpoint>,
) -> Result<Token, Error> {
    #[cfg(feature = "jose")]
    if let Some(dpop) = endpoint.jose.dpop.clone() {
        return exchange_with_dpop(http, request, rebuild, endpoint, &dpop).await;
    }
    #[cfg(not(feature = "jose"))]
    let _ = rebuild;
    send_and_parse(http, request, &endpoint).await.1
}

/// A token request with a DPoP proof; sent once more when the endpoint asks
/// for a new nonce (RFC 9449 §8).
#[cfg(feature = "jose")]
async fn exchange_with_dpop(
    http: HttpService,
    request: Request<Full<Bytes>>,
    rebuild: impl FnOnce() -> Result<Request<Full<Bytes>>, Error>,
    endpoint: Arc<Endpoint>,
    dpop: &super::Dpop,
) -> Result<Token, Error> {
    let endpoint = &*endpoint;
    let prove = |mut req: Request<Full<Bytes>>| -> Result<Request<Full<Bytes>>, Error> {
        let proof = dpop.proof(req.method(), req.uri(), None)?;
        req.headers_mut().insert(crate::jose::dpop::DPOP, proof);
        Ok(req)
    };
    let (answer, result) = send_and_parse(http.clone(), prove(request)?, endpoint).await;
    // Kept from any answer, under the origin that sent it (a guard below
    // says which, after a redirect); a request asked for a nonce by the token
    // endpoint is sent once more (whether its own nonce or a concurrent
    // request's was the stale one). Asked again after that, the error stands
    // and is permanent: a server that never accepts our nonces gets a
    // cool-down, not a stream of requests.
    let learn = |answer: &http::response::Parts| {
        let from = answer
            .extensions
            .get::<crate::wire::marks::HopUri>()
            .map_or(&endpoint.url, |hop| &hop.0);
        dpop.remember_nonce(from, &answer.headers);
        crate::wire::origin::same_origin(from, &endpoint.url)
            && answer.headers.contains_key(crate::jose::dpop::DPOP_NONCE)
    };
    let with_nonce = answer.as_ref().is_some_and(learn);
    match result {
        Err(e) if with_nonce && e.oauth2_code() == Some("use_dpop_nonce") => {
            let (answer, result) = send_and_parse(http, prove(rebuild()?)?, endpoint).await;
            if let Some(answer) = &answer {
                learn(answer);
            }
            result
        }
        other => other,
    }
}

/// Sends a token request and parses the answer; gives back the response's
/// head too (DPoP nonces, and where they came from), when there was a response.
async fn send_and_parse(
    http: HttpService,
    request: Request<Full<Bytes>>,
    endpoint: &Endpoint,
) -> (Option<http::response::Parts>, Result<Token, Error>) {
    let response = match http.oneshot(request).await {
        Ok(r) => r,
        Err(e) => return (None, Err(Error::with_source(Kind::Transport, e))),
    };
    let (parts, body) = response.into_parts();
    let result = read_and_parse(&parts, body, endpoint).await;
    (Some(parts), result)
}

async fn read_and_parse(
    parts: &http::response::Parts,
    body: UnsyncBoxBody<Bytes, BoxError>,
    endpoint: &Endpoint,
) -> Result<Token, Error> {
    let bytes = read_body(body, endpoint).await?;
    parse_token_response(parts.status, &parts.headers, &bytes)
}

/// Reads a response body up to the endpoint's cap.
async fn read_body(
    mut body: UnsyncBoxBody<Bytes, BoxError>,
    endpoint: &Endpoint,
) -> Result<Bytes, Error> {
    // Read the body frame by frame up to the cap: a huge answer is an error, not an OOM.
    let mut bytes = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e: BoxError| Error::with_source(Kind::Transport, e))?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > endpoint.max_response {
                return Err(Error::new(Kind::ResponseTooLarge(endpoint.max_response)));
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes.freeze())
}

impl TokenClient {
    /// Starts a device authorization (RFC 8628 §3.1) at `endpoint` (the
    /// server's `device_authorization_endpoint`), with this client's
    /// authentication. Show the answer's user code and verification URI to the
    /// user, then [`poll_device_token`](Self::poll_device_token).
    ///
    /// `endpoint` is held to the token URL's rule (see [`Origin`](crate::Origin)):
    /// `https://`, loopback, or plain `http://` only if the client was built
    /// with [`allow_http`](TokenClientBuilder::allow_http), and no user
    /// information. Otherwise nothing is sent and the error is a
    /// [configuration error](Error::is_config).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::Error> {
    /// # let http = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::<bytes::Bytes>::default()))
    /// # });
    /// let tokens = tower_client_auth::oauth2::TokenClient::builder("https://auth.example.com/token")
    ///     .client_id("tv")
    ///     .client_secret("secret")
    ///     .build(http)?;
    /// let err = tokens.device_authorization("http://auth.example.com/device", &[]).await.unwrap_err();
    /// assert!(err.is_config()); // and the client's secret was not sent
    /// # Ok(()) }
    /// ```
    pub async fn device_authorization(
        &self,
        endpoint: &str,
        scopes: &[String],
    ) -> Result<super::DeviceAuthorization, Error> {
        // The token URL's rule: nothing is sent to a URL it refuses.
        let (url, _) = crate::wire::origin::parse_url(
            endpoint,
            self.endpoint.allow_http,
            "device authorization endpoint",
        )?;
        let request = self.build_request_to(&url, None, scopes)?;
        let e = self.endpoint.clone();
        let http = self.http.clone();
        let answer = async move {
            let response = http
                .oneshot(request)
                .await
                .map_err(|e| Error::with_source(Kind::Transport, e))?;
            let (parts, body) = response.into_parts();
            let bytes = read_body(body, &e).await?;
            super::device::parse_device_authorization(&parts, &bytes)
        };
        match tokio::time::timeout(self.endpoint.timeout, answer).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(Kind::Timeout)),
        }
    }
}

fn form_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn form_body(params: &[(&str, &str)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        ser.append_pair(k, v);
    }
    ser.finish()
}

impl fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &*self.endpoint;
        let headers: Vec<&str> = e.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("TokenClient")
            .field("token_url", &e.url)
            .field("client_id", &e.client_id)
            .field(
                "client_secret",
                &e.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("client_auth", &e.auth)
            .field("params_in", &e.style)
            .field("headers", &headers)
            .field("timeout", &e.timeout)
            .finish()
    }
}

/// Builds a [`TokenClient`]; errors are reported by [`build`](Self::build).
///
/// ```
/// use std::time::Duration;
/// use tower_client_auth::oauth2::{ClientAuth, TokenClient};
///
/// # let endpoint = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
/// #         bytes::Bytes::from_static(br#"{"access_token":"my-token","token_type":"Bearer","expires_in":3600}"#),
/// #     )))
/// # });
/// let tokens = TokenClient::builder("https://auth.example.com/oauth/token")
///     .client_id("my-client")
///     .client_secret("my-secret")
///     .client_auth(ClientAuth::Body)
///     .param("audience", "https://api.example.com")
///     .timeout(Duration::from_secs(10))
///     .build(endpoint.clone())?;
/// assert_eq!(tokens.client_id(), Some("my-client"));
///
/// // Plain http to a host that is not loopback is refused, at `build`.
/// let err = TokenClient::builder("http://auth.example.com/token")
///     .client_id("my-client")
///     .build(endpoint.clone())
///     .unwrap_err();
/// assert!(err.is_config());
///
/// // So is user information: give the client's credentials to the builder.
/// let err = TokenClient::builder("https://my-client:my-secret@auth.example.com/token")
///     .build(endpoint)
///     .unwrap_err();
/// assert!(err.is_config() && !err.to_string().contains("my-secret"));
/// # Ok::<(), tower_client_auth::Error>(())
/// ```
pub struct TokenClientBuilder {
    url: String,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    auth: ClientAuth,
    style: ParamStyle,
    headers: Vec<(HeaderName, HeaderValue)>,
    params: Vec<(String, String)>,
    timeout: Duration,
    max_response: usize,
    allow_http: bool,
    #[cfg(feature = "jose")]
    jose: Jose,
    error: Option<Error>,
}

impl TokenClientBuilder {
    /// The client id.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }

    /// The client secret.
    pub fn client_secret(mut self, secret: impl Into<SecretString>) -> Self {
        self.client_secret = Some(secret.into());
        self
    }

    /// How the client authenticates (default [`ClientAuth::Basic`]).
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Where the parameters go (default [`ParamStyle::Form`]).
    pub fn params_in(mut self, style: ParamStyle) -> Self {
        self.style = style;
        self
    }

    /// A header sent on every token request, such as Altrata's `x-api-key`. Its value
    /// is treated as a secret.
    pub fn header(mut self, name: &str, value: impl Into<SecretString>) -> Self {
        let value = value.into();
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value.expose_secret()),
        ) {
            (Ok(n), Ok(mut v)) if value.expose_secret().is_ascii() => {
                v.set_sensitive(true);
                self.headers.push((n, v));
            }
            _ => {
                self.error
                    .get_or_insert(Error::config("invalid token request header"));
            }
        }
        self
    }

    /// An extra parameter sent on every token request (`audience`, `resource`, ...).
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    /// The timeout for one token request (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The cap on a token response body (default 1 MiB).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response = bytes;
        self
    }

    /// Proves possession of `dpop`'s key at the token endpoint (RFC 9449), so
    /// that the server binds the tokens it issues to the key. A credential
    /// built on this client then sends `Authorization: DPoP …` with a fresh
    /// proof on every request. Nonces the endpoint asks for are used, with one
    /// more round trip when it asks for a new one.
    #[cfg(feature = "jose")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jose")))]
    pub fn dpop(mut self, dpop: super::Dpop) -> Self {
        self.jose.dpop = Some(dpop);
        self
    }

    /// Authenticates the client with a JWT signed by `key` (`private_key_jwt`,
    /// RFC 7523 §2.2 and OpenID Connect Core §9): no shared secret. Each token
    /// request gets a new assertion: `iss` and `sub` the client id, `aud` the
    /// token URL (see [`client_assertion_audience`](Self::client_assertion_audience)),
    /// a fresh `jti`, and `exp` a minute ahead. Register the key's
    /// [`public_jwk`](super::PrivateKey::public_jwk) with the server.
    #[cfg(feature = "jose")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jose")))]
    pub fn private_key_jwt(mut self, key: super::PrivateKey) -> Self {
        self.jose.assertion_key = Some(key);
        self.auth = ClientAuth::PrivateKeyJwt;
        self
    }

    /// The `aud` of client assertions, for servers that want their issuer
    /// identifier rather than the token URL.
    #[cfg(feature = "jose")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jose")))]
    pub fn client_assertion_audience(mut self, audience: impl Into<String>) -> Self {
        self.jose.audience = Some(audience.into());
        self
    }

    /// Allows a plain `http://` token URL that is not loopback, and the same
    /// for the other endpoints this client authenticates to (the device
    /// authorization endpoint). Client credentials sent over plain http can be
    /// read by anyone on the path: use only on trusted networks.
    pub fn allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// Builds the client, sending through `http`: any service that takes
    /// `Request<Full<Bytes>>` or `Request<ReplayBody<Full<Bytes>>>`, such as a
    /// hyper-util client. Give it the bare client, not one wrapped in an
    /// [`AuthLayer`](crate::AuthLayer) (if you do, token requests pass through it
    /// unstamped).
    pub fn build<H, M>(self, http: H) -> Result<TokenClient, Error>
    where
        H: IntoHttpService<M>,
    {
        if let Some(e) = self.error {
            return Err(e);
        }
        let (url, _) = crate::wire::origin::parse_url(&self.url, self.allow_http, "token URL")?;
        if matches!(self.auth, ClientAuth::Basic | ClientAuth::BasicRaw) && self.client_id.is_none()
        {
            return Err(Error::config(
                "Basic client authentication needs a client id",
            ));
        }
        Ok(TokenClient {
            http: http.into_http_service(),
            endpoint: Arc::new(Endpoint {
                url,
                client_id: self.client_id,
                client_secret: self.client_secret,
                auth: self.auth,
                style: self.style,
                headers: self.headers,
                params: self.params,
                timeout: self.timeout,
                max_response: self.max_response,
                allow_http: self.allow_http,
                #[cfg(feature = "jose")]
                jose: self.jose,
            }),
        })
    }
}

impl fmt::Debug for TokenClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenClientBuilder")
            // Not checked yet: it may still hold user information.
            .field(
                "token_url",
                &crate::wire::origin::redact_user_info(&self.url),
            )
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}
