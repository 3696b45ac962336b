//! The token endpoint client: builds a grant request the way the server wants it
//! and sends it through the HTTP service you give.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::Full;
use secrecy::{ExposeSecret, SecretString};
use tower::ServiceExt;

use super::grant::Grant;
use crate::error::{Error, Kind};
use crate::token::Token;
use crate::wire::origin::describe_url;

use super::endpoint::{ClientAuth, Endpoint, ParamStyle};
use super::exchange::{exchange, read_body};
use super::transport::HttpService;
/// The default cap on a token response body: 1 MiB.
pub const DEFAULT_MAX_RESPONSE: usize = 1024 * 1024;
/// The default timeout for one token request, connection to last body byte.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

use crate::wire::marks::{TokenEndpoint, TokenRequestMarker};

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
    pub(super) http: HttpService,
    pub(super) endpoint: Arc<Endpoint>,
}

impl TokenClient {
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

    /// What narrows this client's tokens to authorization details (RFC
    /// 9396), for store identities that do not hold every parameter (a
    /// user's): empty without any, so that existing keys stay as they were.
    #[cfg(feature = "users")]
    pub(crate) fn details_binding(&self) -> String {
        self.endpoint
            .params
            .iter()
            .filter(|(k, _)| k == "authorization_details")
            .map(|(_, v)| format!("|rar:{}", crate::token::identity_field(v, &['|'])))
            .collect()
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
        scopes: &[&str],
    ) -> impl std::future::Future<Output = Result<Token, Error>> + Send + 'static {
        let request = self.build_request(grant, scopes);
        // A second request, if the endpoint asks for a new DPoP nonce, is
        // built afresh: a client assertion must not be sent twice.
        #[cfg(feature = "jose")]
        let rebuild = {
            let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
            let (this, grant) = (self.clone(), grant.clone());
            move || {
                this.build_request(
                    &grant,
                    &scopes.iter().map(String::as_str).collect::<Vec<_>>(),
                )
            }
        };
        #[cfg(not(feature = "jose"))]
        let rebuild = || unreachable!("only DPoP sends a token request twice");
        let endpoint = self.endpoint.clone();
        let http = self.http.clone();
        async move {
            let (timeout, url) = (endpoint.timeout, endpoint.url.clone());
            let result =
                match tokio::time::timeout(timeout, exchange(http, request?, rebuild, endpoint))
                    .await
                {
                    Ok(result) => result,
                    Err(_) => Err(Error::new(Kind::Timeout)),
                };
            // Every failure names where it went, as a reqwest error names its URL.
            result.map_err(|e| e.at_endpoint(describe_url(&url)))
        }
    }

    /// Client credentials grant (RFC 6749 §4.4).
    pub async fn client_credentials(&self, scopes: &[&str]) -> Result<Token, Error> {
        self.request_token(&Grant::ClientCredentials, scopes).await
    }

    /// Resource owner password grant (RFC 6749 §4.3).
    pub async fn password(
        &self,
        username: impl Into<String>,
        password: impl Into<SecretString>,
        scopes: &[&str],
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
        scopes: &[&str],
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
        scopes: &[&str],
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
        scopes: &[&str],
    ) -> Result<Request<Full<Bytes>>, Error> {
        self.build_request_with(url, grant, scopes, &[])
    }

    /// As [`build_request_to`](Self::build_request_to), with `secret`
    /// parameters of the request's own first (a token to revoke, an
    /// authorization request to push).
    pub(crate) fn build_request_with(
        &self,
        url: &Uri,
        grant: Option<&Grant>,
        scopes: &[&str],
        secret: &[(&str, &str)],
    ) -> Result<Request<Full<Bytes>>, Error> {
        let e = &*self.endpoint;
        let mut params: Vec<(&str, &str)> = Vec::with_capacity(8 + secret.len());
        params.extend_from_slice(secret);
        // Read before each request, so they live as long as `params`.
        let (mut sourced_grant, mut sourced_client, mut signed) = (None, None, None);
        let mut secret_params = !secret.is_empty();
        if let Some(grant) = grant {
            params.push(("grant_type", grant.grant_type()));
        }
        secret_params |= grant
            .unwrap_or(&Grant::ClientCredentials)
            .push_params(&mut params, &mut sourced_grant)?;
        let scope = scopes.join(" ");
        if !scope.is_empty() {
            params.push(("scope", &scope));
        }
        for (k, v) in &e.params {
            params.push((k, v));
        }
        let (authorization, secret_auth) =
            authenticate(e, url, &mut params, &mut sourced_client, &mut signed)?;
        secret_params |= secret_auth;
        let (uri, content_type, body) = encode(e.style, url, &params, secret_params)?;

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
        let endpoint = TokenEndpoint(request.uri().clone());
        request.extensions_mut().insert(TokenRequestMarker);
        request.extensions_mut().insert(endpoint);
        Ok(request)
    }
}

impl TokenClient {
    /// Starts a device authorization (RFC 8628 §3.1) at `endpoint` (the
    /// server's `device_authorization_endpoint`), with this client's
    /// authentication. Show the answer's user code and verification URI to the
    /// user, then [`poll_device_token`](Self::poll_device_token).
    ///
    /// `endpoint` is held to the token URL's rule (see [`Origin`](crate::Origin)):
    /// `https://`, loopback, or plain `http://` only if the client was built
    /// with [`allow_http`](super::TokenClientBuilder::allow_http), and no user
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
        scopes: &[&str],
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
        .map_err(|e| e.at_endpoint(describe_url(&url)))
    }
}

pub(super) fn form_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub(super) fn form_body(params: &[(&str, &str)]) -> String {
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

/// How the client authenticates (RFC 6749 §2.3.1, RFC 7523, `private_key_jwt`):
/// an `Authorization` header, or parameters pushed to `params`; and whether
/// any of them is secret. What is read or signed for this request is kept in
/// `sourced` and `signed`, so that `params` can borrow it.
#[cfg_attr(not(feature = "jose"), allow(unused_variables))]
fn authenticate<'a>(
    e: &'a Endpoint,
    url: &Uri,
    params: &mut Vec<(&'a str, &'a str)>,
    sourced: &'a mut Option<SecretString>,
    signed: &'a mut Option<String>,
) -> Result<(Option<HeaderValue>, bool), Error> {
    let mut authorization = None;
    let mut secret_params = false;
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
        ClientAuth::ClientAssertion => {
            let Some(source) = &e.assertion else {
                return Err(Error::config("a client assertion needs a source"));
            };
            let sourced = sourced.insert(source.current()?);
            if let Some(id) = &e.client_id {
                params.push(("client_id", id));
            }
            params.push((
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ));
            params.push(("client_assertion", sourced.expose_secret()));
            secret_params = true;
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
            let assertion = signed.insert(key.sign(header, &claims));
            params.push(("client_id", id));
            params.push((
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ));
            params.push(("client_assertion", assertion));
            secret_params = true;
        }
    }
    Ok((authorization, secret_params))
}

/// The parameters as the endpoint wants them: a form body, a JSON body, or the
/// query string (never with a secret in it).
fn encode(
    style: ParamStyle,
    url: &Uri,
    params: &[(&str, &str)],
    secret_params: bool,
) -> Result<(Uri, &'static str, Bytes), Error> {
    let encoded = match style {
        ParamStyle::Form => (
            url.clone(),
            "application/x-www-form-urlencoded",
            Bytes::from(form_body(params)),
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
            let query = form_body(params);
            let base = url.to_string();
            let sep = if url.query().is_some() { '&' } else { '?' };
            let uri: Uri = format!("{base}{sep}{query}")
                .parse()
                .map_err(|_| Error::config("token URL with parameters is not a valid URI"))?;
            (uri, "application/x-www-form-urlencoded", Bytes::new())
        }
    };
    Ok(encoded)
}
