//! [`CredentialBuilder`]: the headers, origins and token source of a
//! [`Credential`], checked when it is built (the first mistake is the error).

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use http::header::{self, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};

#[cfg(feature = "store")]
use crate::cache::Shared;
use crate::cache::TokenManager;
use crate::error::Error;
#[cfg(feature = "store")]
use crate::store::SharedStore;
use crate::token::{ManagedOptions, TokenSource};
use crate::wire::origin::Origin;

use super::{Credential, Inner};

/// Builds a [`Credential`]. Errors are kept until [`CredentialBuilder::build`],
/// which reports the first one.
///
/// ```
/// use tower_client_auth::Credential;
///
/// let credential = Credential::builder()
///     .origin("https://api.example.com")
///     .origin("https://uploads.example.com")
///     .api_key("x-api-key", "my-api-key")
///     .header("x-tenant", "acme")
///     .name("example-api")
///     .build()?;
/// assert_eq!(credential.origins().len(), 2);
/// assert_eq!(credential.name(), "example-api");
///
/// // Nothing fails before `build`, which reports the first mistake.
/// let err = Credential::builder().bearer("my-token").build().unwrap_err();
/// assert!(err.is_config()); // no origin
/// # Ok::<(), tower_client_auth::Error>(())
/// ```
#[derive(Default)]
#[must_use]
pub struct CredentialBuilder {
    origins: Vec<String>,
    allow_http: bool,
    headers: Vec<(HeaderName, HeaderValue)>,
    source: Option<(Arc<dyn TokenSource>, ManagedOptions)>,
    #[cfg(feature = "store")]
    shared: Option<SharedStore>,
    on_change: Option<crate::token::TokenHook>,
    name: Option<String>,
    error: Option<Error>,
}

impl CredentialBuilder {
    /// Adds an origin (`https://host[:port]`) the credential is sent to. At least one
    /// is required. Plain `http://` is refused unless loopback or
    /// [`allow_http`](Self::allow_http) is set, and so is user information
    /// (`https://user:password@host`): the rule of [`Origin`].
    ///
    /// ```
    /// use tower_client_auth::Credential;
    ///
    /// let builder = || Credential::builder().bearer("my-token");
    /// assert!(builder().origin("https://api.example.com").build().is_ok());
    /// // Credentials never go in the clear to a remote host, nor with user information.
    /// assert!(builder().origin("http://api.example.com").build().unwrap_err().is_config());
    /// assert!(builder().origin("https://me:pw@api.example.com").build().unwrap_err().is_config());
    /// ```
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origins.push(origin.into());
        self
    }

    /// Allows plain `http://` origins that are not loopback. Credentials sent over
    /// plain http can be read by anyone on the path: use only on trusted networks.
    ///
    /// ```
    /// use tower_client_auth::Credential;
    ///
    /// // A service on the cluster's private network.
    /// let credential = Credential::builder()
    ///     .origin("http://billing.internal:8080")
    ///     .allow_http()
    ///     .bearer("my-token")
    ///     .build()?;
    /// assert_eq!(credential.origins()[0].port(), 8080);
    /// # Ok::<(), tower_client_auth::Error>(())
    /// ```
    pub fn allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// `Authorization: Basic base64(user:password)`.
    ///
    /// ```
    /// use tower_client_auth::Credential;
    ///
    /// let credential = Credential::builder()
    ///     .origin("https://api.example.com")
    ///     .basic("me@example.com", "my-password")
    ///     .header("x-tenant", "acme")
    ///     .build()?;
    /// assert!(!format!("{credential:?}").contains("my-password"));
    /// # Ok::<(), tower_client_auth::Error>(())
    /// ```
    pub fn basic(self, user: impl Into<String>, password: impl Into<SecretString>) -> Self {
        let user = user.into();
        let password = password.into();
        if user.contains(':') {
            return self.fail(Error::config("a Basic user name cannot contain ':'"));
        }
        let raw = format!("{user}:{}", password.expose_secret());
        let encoded = base64::engine::general_purpose::STANDARD.encode(raw.as_bytes());
        self.secret_header(header::AUTHORIZATION, format!("Basic {encoded}"), "Basic")
    }

    /// `Authorization: Bearer <token>` with a fixed token, such as a personal access
    /// token.
    ///
    /// ```
    /// use tower_client_auth::Credential;
    ///
    /// let credential = Credential::builder()
    ///     .origin("https://api.example.com")
    ///     .bearer("my-personal-access-token")
    ///     .build()?;
    /// assert!(!credential.is_managed());
    /// // Control characters could split the header: refused.
    /// let err = Credential::builder().origin("https://api.example.com").bearer("t\r\nx: y").build();
    /// assert!(err.unwrap_err().is_config());
    /// # Ok::<(), tower_client_auth::Error>(())
    /// ```
    pub fn bearer(self, token: impl Into<SecretString>) -> Self {
        let token = token.into();
        if token.expose_secret().is_empty() {
            return self.fail(Error::config("bearer token is empty"));
        }
        let value = format!("Bearer {}", token.expose_secret());
        self.secret_header(header::AUTHORIZATION, value, "bearer token")
    }

    /// An API-key header, such as `x-api-key: <key>`.
    ///
    /// ```
    /// use tower_client_auth::Credential;
    ///
    /// let credential = Credential::builder()
    ///     .origin("https://api.example.com")
    ///     .api_key("x-api-key", "my-api-key")
    ///     .build()?;
    /// assert!(format!("{credential:?}").contains("x-api-key")); // the name, never the key
    /// assert!(!format!("{credential:?}").contains("my-api-key"));
    /// # Ok::<(), tower_client_auth::Error>(())
    /// ```
    pub fn api_key(self, header: &str, key: impl Into<SecretString>) -> Self {
        let name = match HeaderName::from_bytes(header.as_bytes()) {
            Ok(n) => n,
            Err(_) => return self.fail(Error::config("invalid API-key header name")),
        };
        let key = key.into();
        if key.expose_secret().is_empty() {
            return self.fail(Error::config("API key is empty"));
        }
        self.secret_header(name, key.expose_secret().to_owned(), "API key")
    }

    /// Any fixed header. Its value is marked sensitive like every other stamped header.
    ///
    /// ```
    /// use tower_client_auth::Credential;
    ///
    /// let credential = Credential::builder()
    ///     .origin("https://api.example.com")
    ///     .header("x-client-id", "my-client")
    ///     .header("x-client-secret", "my-secret")
    ///     .build()?;
    /// assert!(!format!("{credential:?}").contains("my-secret"));
    /// // The same header twice is a mistake.
    /// let twice = Credential::builder().origin("https://api.example.com").header("x-a", "1").header("x-a", "2");
    /// assert!(twice.build().unwrap_err().is_config());
    /// # Ok::<(), tower_client_auth::Error>(())
    /// ```
    pub fn header(self, name: &str, value: impl Into<SecretString>) -> Self {
        let name = match HeaderName::from_bytes(name.as_bytes()) {
            Ok(n) => n,
            Err(_) => return self.fail(Error::config("invalid header name")),
        };
        let value = value.into();
        self.secret_header(name, value.expose_secret().to_owned(), "header")
    }

    /// Takes the `Authorization` header from tokens that `source` fetches and
    /// refreshes (an OAuth2 grant, or a source of your own), with default options.
    ///
    /// ```
    /// use tower_client_auth::oauth2::{OAuth2Source, TokenClient};
    /// use tower_client_auth::Credential;
    ///
    /// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// let tokens = TokenClient::builder("https://auth.example.com/token")
    ///     .client_id("my-client")
    ///     .client_secret("my-secret")
    ///     .build(http)?;
    /// let credential = Credential::builder()
    ///     .origin("https://api.example.com")
    ///     .token_source(OAuth2Source::client_credentials(tokens))
    ///     .build()?;
    /// assert!(credential.is_managed());
    /// assert_eq!(credential.name(), "https://api.example.com:443 via https://auth.example.com/token");
    /// # Ok::<(), tower_client_auth::Error>(())
    /// ```
    pub fn token_source(self, source: impl TokenSource) -> Self {
        self.token_source_with(source, ManagedOptions::default())
    }

    /// Like [`token_source`](Self::token_source), with options for expiry, refresh
    /// and failure handling.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_client_auth::oauth2::{OAuth2Source, TokenClient};
    /// use tower_client_auth::token::ManagedOptions;
    /// use tower_client_auth::Credential;
    ///
    /// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// let tokens = TokenClient::builder("https://auth.example.com/token")
    ///     .client_id("my-client")
    ///     .client_secret("my-secret")
    ///     .build(http)?;
    /// let options = ManagedOptions::default().max_refresh_ahead(Duration::from_secs(120));
    /// let credential = Credential::builder()
    ///     .origin("https://api.example.com")
    ///     .token_source_with(OAuth2Source::client_credentials(tokens), options)
    ///     .build()?;
    /// assert!(credential.is_managed());
    /// # Ok::<(), tower_client_auth::Error>(())
    /// ```
    pub fn token_source_with(mut self, source: impl TokenSource, options: ManagedOptions) -> Self {
        if self.source.is_some() {
            return self.fail(Error::config("a credential has at most one token source"));
        }
        self.source = Some((Arc::new(source), options));
        self
    }

    /// Shares the managed token with every process that builds the same
    /// credential on the same store: one token request per lifetime for the
    /// whole fleet, a lease so that only one process fetches, fencing, and 401s
    /// that never make replicas revoke each other. See [`SharedStore`].
    #[cfg(feature = "store")]
    #[cfg_attr(docsrs, doc(cfg(feature = "store")))]
    pub fn shared_store(mut self, shared: SharedStore) -> Self {
        self.shared = Some(shared);
        self
    }

    /// Calls `hook` with every new token this process fetches (a rotated
    /// refresh token included), before it replaces the old one: keep it in your
    /// own storage there. Not called for a token adopted from a
    /// [`SharedStore`] (another process fetched it and its hook ran).
    ///
    /// ```
    /// use tower_client_auth::Credential;
    /// # fn f(source: impl tower_client_auth::token::TokenSource) -> Result<(), tower_client_auth::Error> {
    /// let credential = Credential::builder()
    ///     .origin("https://api.example.com")
    ///     .token_source(source)
    ///     .on_token_change(|token| {
    ///         // persist token.refresh_token() where you keep it
    ///         let _ = token.refresh_token();
    ///     })
    ///     .build()?;
    /// # let _ = credential; Ok(()) }
    /// ```
    pub fn on_token_change(
        mut self,
        hook: impl Fn(&crate::token::Token) + Send + Sync + 'static,
    ) -> Self {
        self.on_change = Some(Arc::new(hook));
        self
    }

    /// A name for this credential in tracing spans and events (`credential =
    /// …`) and in the `credential` label of its metrics, such as the
    /// provider's. Default: its origins and, for an OAuth2 source, its token
    /// URL (`https://api.example.com:443 via https://auth.example.com/token`).
    /// Never put a secret here, nor anything per user (metrics label values
    /// should be few).
    ///
    /// ```
    /// use tower_client_auth::Credential;
    ///
    /// let credential = Credential::builder()
    ///     .origin("https://api.example.com")
    ///     .api_key("x-api-key", "my-api-key")
    ///     .name("example-api")
    ///     .build()?;
    /// assert_eq!(credential.name(), "example-api"); // in spans, events and metric labels
    /// # Ok::<(), tower_client_auth::Error>(())
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    fn secret_header(self, name: HeaderName, value: String, what: &str) -> Self {
        if self.headers.iter().any(|(n, _)| *n == name) {
            return self.fail(Error::config(format!("header `{name}` is set twice")));
        }
        // HeaderValue accepts visible ASCII, spaces and tabs (and obs-text bytes); we
        // allow only printable ASCII so a credential reads the same on every server.
        if !value
            .bytes()
            .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
        {
            return self.fail(Error::config(format!(
                "{what} contains a character not allowed in a header (control or non-ASCII)"
            )));
        }
        match HeaderValue::from_str(&value) {
            Ok(mut v) => {
                v.set_sensitive(true);
                let mut this = self;
                this.headers.push((name, v));
                this
            }
            Err(_) => self.fail(Error::config(format!("{what} is not a valid header value"))),
        }
    }

    fn fail(mut self, error: Error) -> Self {
        self.error.get_or_insert(error);
        self
    }

    /// Builds the credential, or returns the first configuration error.
    ///
    /// ```
    /// use tower_client_auth::Credential;
    ///
    /// // The first mistake is the one reported.
    /// let err = Credential::builder()
    ///     .origin("https://api.example.com")
    ///     .api_key("bad header", "my-api-key")
    ///     .bearer("")
    ///     .build()
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("header name"));
    /// ```
    pub fn build(self) -> Result<Credential, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.origins.is_empty() {
            return Err(Error::config(
                "a credential needs at least one origin it is sent to",
            ));
        }
        let origins = self
            .origins
            .iter()
            .map(|o| {
                crate::wire::origin::parse_url(o, self.allow_http, "origin")
                    .map(|(_, origin)| origin)
            })
            .collect::<Result<Box<[Origin]>, Error>>()?;
        let origin_names = || {
            origins
                .iter()
                .map(|o| o.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let name: Arc<str> = match (&self.name, &self.source) {
            (Some(name), _) => name.as_str().into(),
            (None, Some((source, _))) => match source.endpoint() {
                Some(endpoint) => format!("{} via {endpoint}", origin_names()).into(),
                None => origin_names().into(),
            },
            (None, None) => origin_names().into(),
        };
        let managed = match self.source {
            Some((source, options)) => {
                if self.headers.iter().any(|(n, _)| n == header::AUTHORIZATION) {
                    return Err(Error::config(
                        "a managed token and a static Authorization header cannot be combined",
                    ));
                }
                #[cfg(feature = "store")]
                let shared = match self.shared {
                    Some(config) => Some(Shared::new(
                        config,
                        source.identity(),
                        &options,
                        Arc::clone(&name),
                    )?),
                    None => None,
                };
                #[cfg(not(feature = "store"))]
                let shared = None;
                Some(TokenManager::new(
                    source,
                    options,
                    shared,
                    self.on_change,
                    Arc::clone(&name),
                ))
            }
            #[cfg(feature = "store")]
            None if self.shared.is_some() => {
                return Err(Error::config("a shared store needs a token source"));
            }
            None => None,
        };
        if self.headers.is_empty() && managed.is_none() {
            return Err(Error::config(
                "a credential needs at least one header or a token source",
            ));
        }
        Ok(Credential {
            inner: Arc::new(Inner {
                name,
                origins,
                headers: self.headers.into_boxed_slice(),
                managed,
            }),
        })
    }
}

impl fmt::Debug for CredentialBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        // Not checked yet: an origin may still hold user information.
        let origins: Vec<_> = self
            .origins
            .iter()
            .map(|o| crate::wire::origin::redact_user_info(o))
            .collect();
        f.debug_struct("CredentialBuilder")
            .field("origins", &origins)
            .field("headers", &names)
            .field("token_source", &self.source.is_some())
            .finish()
    }
}
