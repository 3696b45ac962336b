//! Authorization server metadata (RFC 8414, OpenID Connect Discovery 1.0):
//! configure a [`TokenClient`] from an issuer URL.
//!
//! The metadata is fetched from `{issuer}/.well-known/openid-configuration`,
//! else from the RFC 8414 location, and refused unless its `issuer` is exactly
//! the one asked for (RFC 8414 §3.3: otherwise a server could speak for
//! another). [`Discovery`] caches what it fetched per issuer for an hour.
//!
//! ```no_run
//! use tower_client_auth::oauth2::Discovery;
//!
//! # async fn f(http: tower_client_auth::oauth2::HttpService) -> Result<(), tower_client_auth::Error> {
//! let discovery = Discovery::new(http.clone());
//! let metadata = discovery.metadata("https://login.example.com").await?;
//! assert!(metadata.supports_auth_method("client_secret_basic"));
//! let tokens = metadata
//!     .token_client()
//!     .client_id("my-client")
//!     .client_secret("secret")
//!     .build(http)?;
//! # let _ = tokens; Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::Full;
use tokio::time::Instant;
use tower::ServiceExt;

use super::builder::TokenClientBuilder;
use super::transport::{HttpService, IntoHttpService};
use super::TokenClient;
use crate::error::{escape, Error, Kind};

/// How long fetched metadata is used before it is fetched again.
pub const METADATA_TTL: Duration = Duration::from_secs(3600);
/// The largest metadata document read.
const MAX_METADATA: usize = 256 * 1024;

/// An authorization server's metadata: the endpoints and what it supports.
///
/// ```
/// use tower_client_auth::oauth2::ProviderMetadata;
///
/// let m = ProviderMetadata::from_json(
///     "https://login.example.com",
///     br#"{"issuer":"https://login.example.com",
///          "token_endpoint":"https://login.example.com/oauth/token",
///          "device_authorization_endpoint":"https://login.example.com/device"}"#,
/// )?;
/// assert_eq!(m.endpoint("device_authorization_endpoint"), Some("https://login.example.com/device"));
/// # Ok::<_, tower_client_auth::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ProviderMetadata {
    issuer: String,
    token_endpoint: String,
    allow_http: bool,
    document: serde_json::Map<String, serde_json::Value>,
}

impl ProviderMetadata {
    /// Parses a metadata document fetched for `issuer`, checking that it names
    /// that issuer and has a token endpoint.
    pub fn from_json(issuer: &str, body: &[u8]) -> Result<Self, Error> {
        let document: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
            .map_err(|_| Error::invalid_response("metadata is not a JSON object"))?;
        let named = document
            .get("issuer")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        if named != issuer {
            return Err(Error::invalid_response(format!(
                "metadata names issuer \"{}\", not the one asked for",
                escape(named, 200)
            )));
        }
        let token_endpoint = document
            .get("token_endpoint")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::invalid_response("metadata has no token_endpoint"))?
            .to_owned();
        Ok(ProviderMetadata {
            issuer: issuer.to_owned(),
            token_endpoint,
            allow_http: false,
            document,
        })
    }

    /// The issuer identifier.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The token endpoint.
    pub fn token_endpoint(&self) -> &str {
        &self.token_endpoint
    }

    /// Another endpoint by its metadata name (`authorization_endpoint`,
    /// `device_authorization_endpoint`, `jwks_uri`, ...).
    pub fn endpoint(&self, name: &str) -> Option<&str> {
        self.document.get(name).and_then(|v| v.as_str())
    }

    /// The endpoint a client with a TLS certificate uses (RFC 8705 §5: the
    /// `mtls_endpoint_aliases` entry when the server has one, else the
    /// endpoint itself).
    pub fn mtls_endpoint(&self, name: &str) -> Option<&str> {
        self.document
            .get("mtls_endpoint_aliases")
            .and_then(|a| a.get(name))
            .and_then(|v| v.as_str())
            .or_else(|| self.endpoint(name))
    }

    /// A token client builder for the mutual-TLS token endpoint (see
    /// [`mtls_endpoint`](Self::mtls_endpoint)).
    pub fn mtls_token_client(&self) -> TokenClientBuilder {
        let url = self
            .mtls_endpoint("token_endpoint")
            .unwrap_or(&self.token_endpoint)
            .to_owned();
        let b = TokenClient::builder(url);
        if self.allow_http {
            b.allow_http()
        } else {
            b
        }
    }

    fn list(&self, name: &str) -> impl Iterator<Item = &str> {
        self.document
            .get(name)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
    }

    /// Whether the token endpoint accepts this client authentication method
    /// (`client_secret_basic` when the server does not say, as RFC 8414 §2).
    pub fn supports_auth_method(&self, method: &str) -> bool {
        if self
            .document
            .contains_key("token_endpoint_auth_methods_supported")
        {
            self.list("token_endpoint_auth_methods_supported")
                .any(|m| m == method)
        } else {
            method == "client_secret_basic"
        }
    }

    /// Whether DPoP proofs signed with `alg` are accepted (RFC 9449 §5.1).
    pub fn supports_dpop_alg(&self, alg: &str) -> bool {
        self.list("dpop_signing_alg_values_supported")
            .any(|a| a == alg)
    }

    /// Whether the server lists `grant_type` as supported.
    pub fn supports_grant(&self, grant_type: &str) -> bool {
        self.list("grant_types_supported").any(|g| g == grant_type)
    }

    /// The whole document.
    pub fn document(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.document
    }

    /// A token client builder for the token endpoint (`allow_http` carried
    /// over when the issuer was plain `http://`), with the
    /// `revocation_endpoint`, if the server has one, and the
    /// `pushed_authorization_request_endpoint` when the server requires
    /// pushed authorization requests (RFC 9126 §5).
    pub fn token_client(&self) -> TokenClientBuilder {
        let mut b = TokenClient::builder(self.token_endpoint.clone());
        if let Some(url) = self.endpoint("revocation_endpoint") {
            b = b.revocation_url(url);
        }
        let par_required = self.document.get("require_pushed_authorization_requests")
            == Some(&serde_json::Value::Bool(true));
        if let (true, Some(url)) = (
            par_required,
            self.endpoint("pushed_authorization_request_endpoint"),
        ) {
            b = b.pushed_authorization_url(url);
        }
        if self.allow_http {
            b.allow_http()
        } else {
            b
        }
    }
}

/// Fetches and caches [`ProviderMetadata`] per issuer.
///
/// ```
/// use std::time::Duration;
/// use tower_client_auth::oauth2::Discovery;
///
/// # fn f(http: tower_client_auth::oauth2::HttpService) {
/// let discovery = Discovery::new(http).ttl(Duration::from_secs(600));
/// # let _ = discovery; }
/// ```
#[derive(Clone)]
pub struct Discovery {
    http: HttpService,
    ttl: Duration,
    allow_http: bool,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
}

/// Metadata with when it was fetched.
type Cached = (Instant, Arc<ProviderMetadata>);

impl Discovery {
    /// Discovery through `http` (any client a [`TokenClient`] accepts).
    pub fn new<H, M>(http: H) -> Self
    where
        H: IntoHttpService<M>,
    {
        Discovery {
            http: http.into_http_service(),
            ttl: METADATA_TTL,
            allow_http: false,
            cache: Arc::default(),
        }
    }

    /// How long metadata is kept (default [`METADATA_TTL`]).
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Allows plain `http://` issuers (loopback tests).
    #[must_use]
    pub fn allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// The metadata of `issuer`, from the cache or fetched. `issuer` is held
    /// to the rule of [`Origin`](crate::Origin) (`https://`, loopback, or
    /// [`allow_http`](Self::allow_http); no user information) before anything
    /// is sent; the endpoints the metadata names are checked in turn by the
    /// clients built on them ([`TokenClientBuilder::build`],
    /// [`TokenClient::device_authorization`]).
    pub async fn metadata(&self, issuer: &str) -> Result<Arc<ProviderMetadata>, Error> {
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, m)) = cache.get(issuer) {
                if at.elapsed() < self.ttl {
                    return Ok(m.clone());
                }
            }
        }
        let fetched = Arc::new(self.fetch(issuer).await?);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= 64 {
            cache.clear();
        }
        cache.insert(issuer.to_owned(), (Instant::now(), fetched.clone()));
        Ok(fetched)
    }

    async fn fetch(&self, issuer: &str) -> Result<ProviderMetadata, Error> {
        // The rule of every URL the crate sends credentials to: the metadata
        // names where they will go.
        let (uri, _) = crate::wire::origin::parse_url(issuer, self.allow_http, "issuer")?;
        let trimmed = issuer.trim_end_matches('/');
        // OpenID Connect appends; RFC 8414 inserts the well-known part
        // before the issuer's path.
        let origin = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("https"),
            uri.authority().map_or("", |a| a.as_str())
        );
        let path = uri.path().trim_end_matches('/');
        let candidates = [
            format!("{trimmed}/.well-known/openid-configuration"),
            format!("{origin}/.well-known/oauth-authorization-server{path}"),
        ];
        let mut last = None;
        for url in candidates {
            match self.get(&url).await {
                Ok(Some(body)) => {
                    let mut m = ProviderMetadata::from_json(issuer, &body)?;
                    m.allow_http = self.allow_http;
                    return Ok(m);
                }
                Ok(None) => continue,
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::new(Kind::Status(StatusCode::NOT_FOUND, None))))
    }

    /// GETs `url`: `Some(body)` on 200, `None` on 404, an error otherwise.
    async fn get(&self, url: &str) -> Result<Option<Bytes>, Error> {
        let mut req = Request::new(Full::new(Bytes::new()));
        *req.method_mut() = Method::GET;
        *req.uri_mut() = url
            .parse()
            .map_err(|_| Error::config("metadata URL is not a URL"))?;
        req.headers_mut().insert(
            header::ACCEPT,
            http::HeaderValue::from_static("application/json"),
        );
        let res = tokio::time::timeout(super::DEFAULT_TIMEOUT, self.http.clone().oneshot(req))
            .await
            .map_err(|_| Error::new(Kind::Timeout))?
            .map_err(|e| Error::with_source(Kind::Transport, e))?;
        let status = res.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(Error::new(Kind::Status(status, None)));
        }
        let body = super::transport::read_capped(res.into_body(), MAX_METADATA)
            .await?
            .ok_or_else(|| Error::new(Kind::ResponseTooLarge(MAX_METADATA)))?;
        Ok(Some(body))
    }
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuer_must_match_exactly() {
        let doc = br#"{"issuer":"https://a.example","token_endpoint":"https://a.example/token",
            "token_endpoint_auth_methods_supported":["private_key_jwt"],
            "dpop_signing_alg_values_supported":["ES256"]}"#;
        let m = ProviderMetadata::from_json("https://a.example", doc).unwrap();
        assert_eq!(m.token_endpoint(), "https://a.example/token");
        assert!(m.supports_auth_method("private_key_jwt"));
        assert!(!m.supports_auth_method("client_secret_basic"));
        assert!(m.supports_dpop_alg("ES256"));
        let e = ProviderMetadata::from_json("https://b.example", doc).unwrap_err();
        assert!(e.is_invalid_response());
        let e = ProviderMetadata::from_json("https://a.example/", doc).unwrap_err();
        assert!(
            e.is_invalid_response(),
            "a trailing slash is another issuer"
        );
        let none =
            ProviderMetadata::from_json("https://a.example", br#"{"issuer":"https://a.example"}"#)
                .unwrap_err();
        assert!(none.is_invalid_response());
        let aliased = ProviderMetadata::from_json(
            "https://a.example",
            br#"{"issuer":"https://a.example","token_endpoint":"https://a.example/token",
                "mtls_endpoint_aliases":{"token_endpoint":"https://mtls.a.example/token"}}"#,
        )
        .unwrap();
        assert_eq!(
            aliased.mtls_endpoint("token_endpoint"),
            Some("https://mtls.a.example/token")
        );
        assert_eq!(
            m.mtls_endpoint("token_endpoint"),
            Some("https://a.example/token")
        );
        let defaults = ProviderMetadata::from_json(
            "https://a.example",
            br#"{"issuer":"https://a.example","token_endpoint":"https://a.example/t"}"#,
        )
        .unwrap();
        assert!(defaults.supports_auth_method("client_secret_basic"));
    }
}
