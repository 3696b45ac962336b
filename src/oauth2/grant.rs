//! Grants: what a token request asks with (RFC 6749 §4, RFC 8628, RFC 7523,
//! RFC 8693). [`OAuth2Source`](super::OAuth2Source) runs them for the layer.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use crate::error::Error;

/// An OAuth2 grant: what is exchanged for an access token.
///
/// ```
/// use tower_client_auth::oauth2::{Grant, TokenClient};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::Error> {
/// # let endpoint = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
/// #         bytes::Bytes::from_static(br#"{"access_token":"my-token","token_type":"Bearer","expires_in":3600}"#),
/// #     )))
/// # });
/// let grant = Grant::password("jane", "her-password");
/// assert_eq!(grant.grant_type(), "password");
/// assert!(!format!("{grant:?}").contains("her-password"));
///
/// let tokens = TokenClient::builder("https://auth.example.com/token")
///     .client_id("my-client")
///     .build(endpoint)?;
/// let token = tokens.request_token(&grant, &["read"]).await?;
/// # let _ = token;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum Grant {
    /// Client credentials (RFC 6749 §4.4): the client acts for itself.
    ClientCredentials,
    /// Resource owner password credentials (RFC 6749 §4.3).
    Password {
        /// The user name (an e-mail address for Algoreg).
        username: String,
        /// The password.
        password: SecretString,
    },
    /// Authorization code (RFC 6749 §4.1.3). Single use: a source built on it
    /// refreshes with the refresh token afterwards.
    AuthorizationCode {
        /// The code from the redirect.
        code: SecretString,
        /// The redirect URI used in the authorization request, if any.
        redirect_uri: Option<String>,
        /// The PKCE verifier, if PKCE was used.
        pkce_verifier: Option<SecretString>,
    },
    /// Refresh token (RFC 6749 §6).
    RefreshToken {
        /// The refresh token.
        refresh_token: SecretString,
    },
    /// Device code (RFC 8628 §3.4): what [`TokenClient::device_flow`]
    /// polls with.
    ///
    /// [`TokenClient::device_flow`]: super::TokenClient::device_flow
    DeviceCode {
        /// The `device_code` from the device authorization response.
        device_code: SecretString,
    },
    /// Token exchange (RFC 8693 §2.1): a token for another token, to act for
    /// a user at another service or to narrow a token's audience.
    TokenExchange(TokenExchange),
    /// JWT bearer assertion as an authorization grant (RFC 7523 §2.1).
    JwtBearer {
        /// The signed JWT (from an identity provider, or signed by you).
        assertion: SecretString,
    },
    /// JWT bearer grant (RFC 7523 §2.1) whose assertion is read from a
    /// source before each token request (a rotating workload identity
    /// token): see [`Grant::jwt_bearer_from`].
    JwtBearerFrom(super::AssertionSource),
}

/// The parameters of a token exchange (RFC 8693 §2.1).
///
/// ```
/// use tower_client_auth::oauth2::{Grant, TokenExchange, ACCESS_TOKEN_TYPE};
///
/// let grant = Grant::TokenExchange(
///     TokenExchange::new("the-users-token", ACCESS_TOKEN_TYPE).audience("billing-api"),
/// );
/// assert_eq!(grant.grant_type(), "urn:ietf:params:oauth:grant-type:token-exchange");
/// ```
#[derive(Clone)]
pub struct TokenExchange {
    pub(crate) subject_token: SecretString,
    pub(crate) subject_token_type: String,
    pub(crate) actor: Option<(SecretString, String)>,
    pub(crate) requested_token_type: Option<String>,
    pub(crate) audience: Vec<String>,
    pub(crate) resource: Vec<String>,
}

/// `urn:ietf:params:oauth:token-type:access_token`.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// `urn:ietf:params:oauth:token-type:refresh_token`.
pub const REFRESH_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:refresh_token";
/// `urn:ietf:params:oauth:token-type:id_token`.
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
/// `urn:ietf:params:oauth:token-type:jwt`.
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

impl TokenExchange {
    /// Exchanges `subject_token` of `subject_token_type` (such as
    /// [`ACCESS_TOKEN_TYPE`]).
    pub fn new(subject_token: impl Into<SecretString>, subject_token_type: &str) -> Self {
        TokenExchange {
            subject_token: subject_token.into(),
            subject_token_type: subject_token_type.to_owned(),
            actor: None,
            requested_token_type: None,
            audience: Vec::new(),
            resource: Vec::new(),
        }
    }

    /// The party acting for the subject (delegation, RFC 8693 §1.1).
    #[must_use]
    pub fn actor(mut self, actor_token: impl Into<SecretString>, actor_token_type: &str) -> Self {
        self.actor = Some((actor_token.into(), actor_token_type.to_owned()));
        self
    }

    /// The token type wanted back.
    #[must_use]
    pub fn requested_token_type(mut self, token_type: &str) -> Self {
        self.requested_token_type = Some(token_type.to_owned());
        self
    }

    /// A logical name of the service the token is for (repeatable).
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience.push(audience.into());
        self
    }

    /// A URI of the resource the token is for (RFC 8707, repeatable).
    #[must_use]
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource.push(resource.into());
        self
    }
}

impl fmt::Debug for TokenExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenExchange")
            .field("subject_token", &"[redacted]")
            .field("subject_token_type", &self.subject_token_type)
            .field("actor", &self.actor.as_ref().map(|(_, t)| t))
            .field("requested_token_type", &self.requested_token_type)
            .field("audience", &self.audience)
            .field("resource", &self.resource)
            .finish()
    }
}

impl Grant {
    /// A password grant.
    pub fn password(username: impl Into<String>, password: impl Into<SecretString>) -> Grant {
        Grant::Password {
            username: username.into(),
            password: password.into(),
        }
    }

    /// A JWT bearer grant (RFC 7523 §2.1) with the current assertion of
    /// `source`, read before each token request; an assertion whose own
    /// `exp` has passed is not sent ([`Error::is_assertion_expired`](crate::Error::is_assertion_expired)).
    pub fn jwt_bearer_from(source: super::AssertionSource) -> Grant {
        Grant::JwtBearerFrom(source)
    }

    /// The `grant_type` parameter.
    pub fn grant_type(&self) -> &'static str {
        match self {
            Grant::ClientCredentials => "client_credentials",
            Grant::Password { .. } => "password",
            Grant::AuthorizationCode { .. } => "authorization_code",
            Grant::RefreshToken { .. } => "refresh_token",
            Grant::DeviceCode { .. } => "urn:ietf:params:oauth:grant-type:device_code",
            Grant::TokenExchange(_) => "urn:ietf:params:oauth:grant-type:token-exchange",
            Grant::JwtBearer { .. } | Grant::JwtBearerFrom(_) => {
                "urn:ietf:params:oauth:grant-type:jwt-bearer"
            }
        }
    }

    /// Pushes the grant's own parameters (all but `grant_type`) to `params`;
    /// whether any is secret. An assertion read from its source for this
    /// request is kept in `sourced`, so that `params` can borrow it.
    pub(super) fn push_params<'a>(
        &'a self,
        params: &mut Vec<(&'a str, &'a str)>,
        sourced: &'a mut Option<SecretString>,
    ) -> Result<bool, Error> {
        let mut secret = true;
        match self {
            Grant::ClientCredentials => secret = false,
            Grant::Password { username, password } => {
                params.push(("username", username));
                params.push(("password", password.expose_secret()));
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
            }
            Grant::RefreshToken { refresh_token } => {
                params.push(("refresh_token", refresh_token.expose_secret()));
            }
            Grant::DeviceCode { device_code } => {
                params.push(("device_code", device_code.expose_secret()));
            }
            Grant::JwtBearer { assertion } => {
                params.push(("assertion", assertion.expose_secret()));
            }
            Grant::JwtBearerFrom(source) => {
                let sourced = sourced.insert(source.current()?);
                params.push(("assertion", sourced.expose_secret()));
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
            }
        }
        Ok(secret)
    }
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grant::Password { username, .. } => f
                .debug_struct("Password")
                .field("username", username)
                .field("password", &"[redacted]")
                .finish(),
            Grant::TokenExchange(x) => x.fmt(f),
            other => write!(f, "{}", other.grant_type()),
        }
    }
}
