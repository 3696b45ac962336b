//! [`TokenClientBuilder`]: a token client's endpoint, client authentication,
//! and options, checked when it is built.

//! The token endpoint client: builds a grant request the way the server wants it
//! and sends it through the HTTP service you give.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};

use crate::error::Error;

use super::client::{TokenClient, DEFAULT_MAX_RESPONSE, DEFAULT_TIMEOUT};
#[cfg(feature = "jose")]
use super::endpoint::Jose;
use super::endpoint::{ClientAuth, Endpoint, ParamStyle};
use super::transport::IntoHttpService;

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
            assertion: None,
            revocation_url: None,
            par_url: None,
            #[cfg(feature = "jose")]
            jose: Jose::default(),
            error: None,
        }
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
#[must_use]
pub struct TokenClientBuilder {
    pub(super) url: String,
    pub(super) client_id: Option<String>,
    pub(super) client_secret: Option<SecretString>,
    pub(super) auth: ClientAuth,
    pub(super) style: ParamStyle,
    pub(super) headers: Vec<(HeaderName, HeaderValue)>,
    pub(super) params: Vec<(String, String)>,
    pub(super) timeout: Duration,
    pub(super) max_response: usize,
    pub(super) allow_http: bool,
    pub(super) assertion: Option<super::AssertionSource>,
    pub(super) revocation_url: Option<String>,
    pub(super) par_url: Option<String>,
    #[cfg(feature = "jose")]
    pub(super) jose: Jose,
    pub(super) error: Option<Error>,
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

    /// Authenticates the client with an assertion from `source` (RFC 7523
    /// §2.2): a token another party issued and rotates, such as a Kubernetes
    /// projected service account token or a SPIFFE JWT-SVID, for workload
    /// identity federation. The current assertion is read before each token
    /// request; one whose own `exp` has passed is not sent.
    ///
    /// ```
    /// use tower_client_auth::oauth2::{AssertionSource, TokenClient};
    /// # fn client<S>(http: S) -> Result<TokenClient, tower_client_auth::Error>
    /// # where S: tower::Service<http::Request<http_body_util::Full<bytes::Bytes>>, Response = http::Response<http_body_util::Full<bytes::Bytes>>, Error = std::convert::Infallible> + Clone + Send + Sync + 'static, S::Future: Send {
    /// let tokens = TokenClient::builder("https://login.example.com/oauth2/token")
    ///     .client_id("my-workload")
    ///     .client_assertion(AssertionSource::file(
    ///         "/var/run/secrets/tokens/azure-identity-token",
    ///     ))
    ///     .build(http)?;
    /// # Ok(tokens) }
    /// ```
    pub fn client_assertion(mut self, source: super::AssertionSource) -> Self {
        self.assertion = Some(source);
        self.auth = ClientAuth::ClientAssertion;
        self
    }

    /// Rich authorization request (RFC 9396 §6): `details` as the
    /// `authorization_details` parameter of every token request. Like every
    /// extra parameter it is part of the shared store identity: tokens for
    /// other details are never shared.
    pub fn authorization_details(self, details: serde_json::Value) -> Self {
        self.param("authorization_details", details.to_string())
    }

    /// The pushed authorization request endpoint (RFC 9126): with it,
    /// [`TokenClient::authorization_request`](super::TokenClient::authorization_request)
    /// pushes every authorization request there and sends the browser with
    /// only `client_id` and `request_uri`. Set from discovery by
    /// [`ProviderMetadata::token_client`](super::ProviderMetadata::token_client)
    /// when the server requires pushed requests.
    pub fn pushed_authorization_url(mut self, url: impl Into<String>) -> Self {
        self.par_url = Some(url.into());
        self
    }

    /// Signs authorization requests with `key` (JAR, RFC 9101): the
    /// parameters travel as a request object, `iss` the client id and `aud`
    /// `audience` (the server's issuer identifier). Register the key's
    /// [`public_jwk`](super::PrivateKey::public_jwk) with the server.
    #[cfg(feature = "jose")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jose")))]
    pub fn request_object(mut self, key: super::PrivateKey, audience: impl Into<String>) -> Self {
        self.jose.request_object = Some((key, audience.into()));
        self
    }

    /// The token revocation endpoint (RFC 7009) that
    /// [`TokenClient::revoke`](super::TokenClient::revoke) sends to, with
    /// this client's authentication. Set from discovery's
    /// `revocation_endpoint` by
    /// [`ProviderMetadata::token_client`](super::ProviderMetadata::token_client).
    /// Held to the token URL's rule (`https://` or loopback, unless
    /// [`allow_http`](Self::allow_http)).
    pub fn revocation_url(mut self, url: impl Into<String>) -> Self {
        self.revocation_url = Some(url.into());
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
        let revocation_url = match &self.revocation_url {
            Some(u) => {
                Some(crate::wire::origin::parse_url(u, self.allow_http, "revocation endpoint")?.0)
            }
            None => None,
        };
        let par_url = match &self.par_url {
            Some(u) => Some(
                crate::wire::origin::parse_url(
                    u,
                    self.allow_http,
                    "pushed authorization request endpoint",
                )?
                .0,
            ),
            None => None,
        };
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
                assertion: self.assertion,
                revocation_url,
                par_url,
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
