//! A token endpoint as a token client sees it: its URL, how the client
//! authenticates (RFC 6749 §2.3.1, `private_key_jwt`), where the grant's
//! parameters go, extra headers and parameters, and limits.

use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::Uri;
use secrecy::SecretString;

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
    /// [`TokenClientBuilder::private_key_jwt`](super::TokenClientBuilder::private_key_jwt), which also gives the key.
    #[cfg(feature = "jose")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jose")))]
    PrivateKeyJwt,
    /// A client assertion read from a source before each token request (a
    /// rotating workload identity token, RFC 7523 §2.2); set by
    /// [`TokenClientBuilder::client_assertion`](super::TokenClientBuilder::client_assertion),
    /// which also gives the source.
    ClientAssertion,
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

pub(super) struct Endpoint {
    pub(super) url: Uri,
    pub(super) client_id: Option<String>,
    pub(super) client_secret: Option<SecretString>,
    pub(super) auth: ClientAuth,
    pub(super) style: ParamStyle,
    pub(super) headers: Vec<(HeaderName, HeaderValue)>,
    pub(super) params: Vec<(String, String)>,
    pub(super) timeout: Duration,
    pub(super) max_response: usize,
    /// Plain `http://` allowed to any host, for every endpoint of this client.
    pub(super) allow_http: bool,
    /// Where `ClientAuth::ClientAssertion` reads its assertions.
    pub(super) assertion: Option<super::AssertionSource>,
    /// Where `TokenClient::revoke` sends (RFC 7009).
    pub(super) revocation_url: Option<Uri>,
    /// Where authorization requests are pushed (RFC 9126).
    pub(super) par_url: Option<Uri>,
    #[cfg(feature = "jose")]
    pub(super) jose: Jose,
}

/// What the `jose` feature adds to a token endpoint: DPoP proofs and
/// `private_key_jwt` client assertions.
#[cfg(feature = "jose")]
#[derive(Clone, Default)]
pub(super) struct Jose {
    pub(super) dpop: Option<super::Dpop>,
    pub(super) assertion_key: Option<super::PrivateKey>,
    /// The assertion's `aud` (default: the token URL).
    pub(super) audience: Option<String>,
    /// The key authorization requests are signed with (JAR) and their `aud`.
    pub(super) request_object: Option<(super::PrivateKey, String)>,
}
