//! Protected resource metadata (RFC 9728) and what a resource says when a
//! token is not enough (RFC 6750 §3.1 `insufficient_scope`, RFC 9470
//! `insufficient_user_authentication`).
//!
//! A resource that follows RFC 9728 (the Model Context Protocol's
//! authorization does) answers an unauthenticated request with
//! `401` and `WWW-Authenticate: Bearer resource_metadata="…"`, or serves its
//! metadata ahead of time at `/.well-known/oauth-protected-resource` followed
//! by its path. [`ResourceDiscovery`] fetches it from either place, never
//! following a redirect, reading at most [`MAX_RESOURCE_METADATA`] bytes, and
//! refuses a document whose `resource` is not the one it was fetched for (an
//! attacker's metadata could otherwise send the client to its own
//! authorization server) or that lists no authorization server.
//!
//! ```
//! use tower_client_auth::oauth2::{well_known_resource_metadata, ResourceMetadata};
//!
//! assert_eq!(
//!     well_known_resource_metadata("https://api.example.com/mcp")?,
//!     "https://api.example.com/.well-known/oauth-protected-resource/mcp"
//! );
//! let m = ResourceMetadata::from_json(
//!     "https://api.example.com/mcp/tools",
//!     br#"{"resource":"https://api.example.com/mcp",
//!          "authorization_servers":["https://login.example.com"],
//!          "scopes_supported":["mcp:read"]}"#,
//! )?;
//! assert_eq!(m.authorization_servers(), ["https://login.example.com"]);
//! // Another resource's metadata is refused.
//! let e = ResourceMetadata::from_json(
//!     "https://api.example.com/mcp",
//!     br#"{"resource":"https://evil.example/mcp","authorization_servers":["https://evil.example"]}"#,
//! ).unwrap_err();
//! assert!(e.is_resource_metadata());
//! # Ok::<_, tower_client_auth::Error>(())
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::Full;
use tokio::time::Instant;
use tower::ServiceExt;

use super::transport::{HttpService, IntoHttpService};
use crate::error::{escape, Error, Kind, ResourceError};
use crate::wire::challenge::parse_challenges;
use crate::wire::origin::describe_url;

/// The largest protected resource metadata document read.
pub const MAX_RESOURCE_METADATA: usize = 64 * 1024;
/// The most authorization servers a resource may list.
pub const MAX_AUTHORIZATION_SERVERS: usize = 16;
/// How many resources' metadata a [`ResourceDiscovery`] keeps by default.
pub const MAX_CACHED_RESOURCES: usize = 64;

fn metadata_error(msg: impl Into<String>) -> Error {
    Error::resource(ResourceError::Metadata(msg.into()))
}

/// The well-known location of `resource`'s metadata (RFC 9728 §3.1): the
/// well-known part between the origin and the path; no query.
pub fn well_known_resource_metadata(resource: &str) -> Result<String, Error> {
    let uri: Uri = resource
        .parse()
        .map_err(|_| Error::config("resource is not a valid absolute URL"))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(Error::config("resource is not a valid absolute URL"));
    };
    let path = uri.path().trim_end_matches('/');
    Ok(format!(
        "{scheme}://{authority}/.well-known/oauth-protected-resource{path}"
    ))
}

/// Whether `resource` (from metadata) speaks for `url`: the same scheme,
/// host and port, and a path that is `url`'s or a whole-segment prefix of it.
pub(super) fn covers(resource: &Uri, url: &Uri) -> bool {
    if resource.query().is_some() || !crate::wire::origin::same_origin(resource, url) {
        return false;
    }
    let prefix = resource.path().trim_end_matches('/');
    let path = url.path();
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// A protected resource's metadata (RFC 9728 §2), checked against the URL it
/// was fetched for.
#[derive(Debug, Clone)]
pub struct ResourceMetadata {
    resource: String,
    authorization_servers: Vec<String>,
    scopes_supported: Vec<String>,
    document: serde_json::Map<String, serde_json::Value>,
}

impl ResourceMetadata {
    /// Parses a metadata document fetched for `url` (the API URL, or the
    /// resource identifier the well-known URL was built from): its
    /// `resource` must have `url`'s origin and a path `url` starts with, and
    /// it must list between one and [`MAX_AUTHORIZATION_SERVERS`]
    /// authorization servers.
    pub fn from_json(url: &str, body: &[u8]) -> Result<Self, Error> {
        let document: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
            .map_err(|_| metadata_error("the document is not a JSON object"))?;
        let resource = document
            .get("resource")
            .and_then(|v| v.as_str())
            .ok_or_else(|| metadata_error("the document has no `resource`"))?
            .to_owned();
        let wanted: Uri = url
            .parse()
            .map_err(|_| Error::config("resource URL is not a valid absolute URL"))?;
        let named: Option<Uri> = resource.parse().ok();
        if !named.is_some_and(|named| covers(&named, &wanted)) {
            return Err(metadata_error(format!(
                "the document is for resource \"{}\", not the one it was fetched for",
                escape(&resource, 200)
            )));
        }
        let strings = |name: &str| -> Result<Vec<String>, Error> {
            match document.get(name) {
                None => Ok(Vec::new()),
                Some(serde_json::Value::Array(items)) => items
                    .iter()
                    .map(|v| {
                        v.as_str().map(str::to_owned).ok_or_else(|| {
                            metadata_error(format!("`{name}` holds something not a string"))
                        })
                    })
                    .collect(),
                Some(_) => Err(metadata_error(format!("`{name}` is not an array"))),
            }
        };
        let authorization_servers = strings("authorization_servers")?;
        if authorization_servers.is_empty() {
            return Err(metadata_error("the document lists no authorization server"));
        }
        if authorization_servers.len() > MAX_AUTHORIZATION_SERVERS {
            return Err(metadata_error(format!(
                "the document lists more than {MAX_AUTHORIZATION_SERVERS} authorization servers"
            )));
        }
        let scopes_supported = strings("scopes_supported")?;
        Ok(ResourceMetadata {
            resource,
            authorization_servers,
            scopes_supported,
            document,
        })
    }

    /// The resource identifier: what tokens are asked for with `resource`
    /// (RFC 8707).
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The issuers of the authorization servers that issue tokens for it.
    pub fn authorization_servers(&self) -> &[String] {
        &self.authorization_servers
    }

    /// The scopes the resource says it uses (may be empty).
    pub fn scopes_supported(&self) -> &[String] {
        &self.scopes_supported
    }

    /// The whole document.
    pub fn document(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.document
    }
}

/// The parameters of a resource's `Bearer` challenge that configure or step
/// up a client.
///
/// ```
/// use http::HeaderMap;
/// use tower_client_auth::oauth2::ResourceChallenge;
///
/// let mut headers = HeaderMap::new();
/// headers.insert(
///     "www-authenticate",
///     r#"Bearer error="insufficient_scope", scope="files:read files:write", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource""#
///         .parse()
///         .unwrap(),
/// );
/// let c = ResourceChallenge::from_headers(&headers).unwrap();
/// assert_eq!(c.error(), Some("insufficient_scope"));
/// assert_eq!(c.scopes(), ["files:read", "files:write"]);
/// assert!(c.resource_metadata().unwrap().ends_with("/oauth-protected-resource"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceChallenge {
    error: Option<String>,
    resource_metadata: Option<String>,
    scopes: Vec<String>,
    acr_values: Vec<String>,
    max_age: Option<u64>,
}

impl ResourceChallenge {
    /// The first `Bearer` (or `DPoP`) challenge of the `WWW-Authenticate`
    /// fields, if there is one.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let challenge = headers
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_challenges)
            .find(|c| {
                c.scheme.eq_ignore_ascii_case("bearer") || c.scheme.eq_ignore_ascii_case("dpop")
            })?;
        let words = |name: &str| -> Vec<String> {
            challenge
                .param(name)
                .map(|v| v.split_ascii_whitespace().map(str::to_owned).collect())
                .unwrap_or_default()
        };
        Some(ResourceChallenge {
            error: challenge.param("error").map(str::to_owned),
            resource_metadata: challenge.param("resource_metadata").map(str::to_owned),
            scopes: words("scope"),
            acr_values: words("acr_values"),
            max_age: challenge.param("max_age").and_then(|v| v.parse().ok()),
        })
    }

    /// The `error` code (`invalid_token`, `insufficient_scope`, ...).
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The metadata URL (`resource_metadata`, RFC 9728 §5.1).
    pub fn resource_metadata(&self) -> Option<&str> {
        self.resource_metadata.as_deref()
    }

    /// The scopes the resource names (`scope`).
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The authentication context classes asked for (`acr_values`, RFC 9470).
    pub fn acr_values(&self) -> &[String] {
        &self.acr_values
    }

    /// The greatest age of the user's authentication accepted (`max_age`).
    pub fn max_age(&self) -> Option<u64> {
        self.max_age
    }
}

/// What a refusal asks for, as a typed error: `403 insufficient_scope` (the
/// scopes of `held` and those the resource names, together) or
/// `401 insufficient_user_authentication` (its `acr_values` and `max_age`).
/// `None` for any other answer.
///
/// ```
/// use http::{HeaderMap, StatusCode};
/// use tower_client_auth::oauth2::step_up;
///
/// let mut headers = HeaderMap::new();
/// headers.insert(
///     "www-authenticate",
///     r#"Bearer error="insufficient_user_authentication", acr_values="urn:example:mfa", max_age=300"#.parse().unwrap(),
/// );
/// let e = step_up(StatusCode::UNAUTHORIZED, &headers, &[]).unwrap();
/// assert!(e.is_user_authentication_required());
/// assert_eq!(e.acr_values().unwrap(), ["urn:example:mfa"]);
/// assert_eq!(e.max_age(), Some(300));
/// ```
pub fn step_up(status: StatusCode, headers: &HeaderMap, held: &[String]) -> Option<Error> {
    let challenge = ResourceChallenge::from_headers(headers)?;
    match (status.as_u16(), challenge.error()?) {
        (403, "insufficient_scope") => {
            let mut scopes = held.to_vec();
            for s in challenge.scopes {
                if !scopes.contains(&s) {
                    scopes.push(s);
                }
            }
            Some(Error::resource(ResourceError::InsufficientScope(scopes)))
        }
        (401, "insufficient_user_authentication") => {
            Some(Error::resource(ResourceError::UserAuthentication {
                acr_values: challenge.acr_values,
                max_age: challenge.max_age,
            }))
        }
        _ => None,
    }
}

/// Fetches, checks and caches [`ResourceMetadata`], at most
/// [`MAX_CACHED_RESOURCES`] resources (by default) for an hour each.
///
/// ```no_run
/// use tower_client_auth::oauth2::ResourceDiscovery;
///
/// # async fn f(http: tower_client_auth::oauth2::HttpService) -> Result<(), tower_client_auth::Error> {
/// let resources = ResourceDiscovery::new(http);
/// let metadata = resources.metadata("https://api.example.com/mcp").await?;
/// println!("tokens from {:?}", metadata.authorization_servers());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ResourceDiscovery {
    http: HttpService,
    ttl: Duration,
    max_resources: usize,
    allow_http: bool,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
}

/// Metadata with when it was fetched.
type Cached = (Instant, Arc<ResourceMetadata>);

impl ResourceDiscovery {
    /// Discovery through `http` (any client a token client accepts; it must
    /// not follow redirects, as hyper-util's does not).
    pub fn new<H, M>(http: H) -> Self
    where
        H: IntoHttpService<M>,
    {
        ResourceDiscovery {
            http: http.into_http_service(),
            ttl: super::METADATA_TTL,
            max_resources: MAX_CACHED_RESOURCES,
            allow_http: false,
            cache: Arc::default(),
        }
    }

    /// How long metadata is kept (default [`METADATA_TTL`](super::METADATA_TTL)).
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How many resources are kept (default [`MAX_CACHED_RESOURCES`]); the
    /// oldest goes first.
    #[must_use]
    pub fn max_resources(mut self, n: usize) -> Self {
        self.max_resources = n.max(1);
        self
    }

    /// Allows plain `http://` metadata URLs beyond loopback.
    #[must_use]
    pub fn allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// The metadata for `url`, from its well-known location (cached).
    pub async fn metadata(&self, url: &str) -> Result<Arc<ResourceMetadata>, Error> {
        self.metadata_at(url, &well_known_resource_metadata(url)?)
            .await
    }

    /// The metadata for `url` named by a refusal's challenge
    /// (`resource_metadata`), else from the well-known location.
    pub async fn from_challenge(
        &self,
        url: &str,
        headers: &HeaderMap,
    ) -> Result<Arc<ResourceMetadata>, Error> {
        match ResourceChallenge::from_headers(headers).and_then(|c| c.resource_metadata) {
            Some(at) => self.metadata_at(url, &at).await,
            None => self.metadata(url).await,
        }
    }

    /// The metadata for `url` fetched from `metadata_url` (cached per pair).
    pub async fn metadata_at(
        &self,
        url: &str,
        metadata_url: &str,
    ) -> Result<Arc<ResourceMetadata>, Error> {
        let key = format!("{url} {metadata_url}");
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, m)) = cache.get(&key) {
                if at.elapsed() < self.ttl {
                    return Ok(m.clone());
                }
            }
        }
        let body = self.get(metadata_url).await?;
        let metadata = Arc::new(ResourceMetadata::from_json(url, &body)?);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|_, (at, _)| at.elapsed() < self.ttl);
        while cache.len() >= self.max_resources {
            let oldest = cache
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => cache.remove(&k),
                None => break,
            };
        }
        cache.insert(key, (Instant::now(), metadata.clone()));
        Ok(metadata)
    }

    /// Asks `url` without credentials, as RFC 9728 §5 expects a client to:
    /// the challenge of its `401`, if it answers one (the body is not read).
    pub async fn probe(&self, url: &str) -> Result<Option<ResourceChallenge>, Error> {
        let (uri, _) = crate::wire::origin::parse_url(url, self.allow_http, "resource URL")?;
        let mut req = Request::new(Full::new(Bytes::new()));
        *req.uri_mut() = uri.clone();
        let res = tokio::time::timeout(super::DEFAULT_TIMEOUT, self.http.clone().oneshot(req))
            .await
            .map_err(|_| Error::new(Kind::Timeout).at_endpoint(describe_url(&uri)))?
            .map_err(|e| Error::with_source(Kind::Transport, e).at_endpoint(describe_url(&uri)))?;
        if res.status() != StatusCode::UNAUTHORIZED {
            return Ok(None);
        }
        Ok(ResourceChallenge::from_headers(res.headers()))
    }

    async fn get(&self, url: &str) -> Result<Bytes, Error> {
        let (uri, _) = crate::wire::origin::parse_url(url, self.allow_http, "metadata URL")?;
        let mut req = Request::new(Full::new(Bytes::new()));
        *req.method_mut() = Method::GET;
        *req.uri_mut() = uri.clone();
        req.headers_mut().insert(
            header::ACCEPT,
            http::HeaderValue::from_static("application/json"),
        );
        let res = tokio::time::timeout(super::DEFAULT_TIMEOUT, self.http.clone().oneshot(req))
            .await
            .map_err(|_| Error::new(Kind::Timeout).at_endpoint(describe_url(&uri)))?
            .map_err(|e| Error::with_source(Kind::Transport, e).at_endpoint(describe_url(&uri)))?;
        let status = res.status();
        if status.is_redirection() {
            return Err(Error::resource(ResourceError::Redirect(status.as_u16())));
        }
        if !status.is_success() {
            return Err(Error::resource(ResourceError::Unavailable(format!(
                "{} answered HTTP {status}",
                escape(&crate::wire::origin::describe_url(&uri), 160)
            ))));
        }
        let too_large = || {
            metadata_error(format!(
                "the document is larger than {MAX_RESOURCE_METADATA} bytes"
            ))
        };
        let declared = res
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_RESOURCE_METADATA as u64) {
            return Err(too_large());
        }
        super::transport::read_capped(res.into_body(), MAX_RESOURCE_METADATA)
            .await
            .map_err(|e| e.at_endpoint(describe_url(&uri)))?
            .ok_or_else(too_large)
    }
}

impl std::fmt::Debug for ResourceDiscovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceDiscovery")
            .field("ttl", &self.ttl)
            .field("max_resources", &self.max_resources)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AS: &str = r#""authorization_servers":["https://as.example"]"#;

    fn doc(resource: &str) -> Vec<u8> {
        format!(r#"{{"resource":"{resource}",{AS}}}"#).into_bytes()
    }

    #[test]
    fn the_resource_must_be_the_one_fetched_for() {
        let ok = |url: &str, r: &str| ResourceMetadata::from_json(url, &doc(r)).is_ok();
        assert!(ok("https://api.example/mcp", "https://api.example/mcp"));
        assert!(ok("https://api.example/mcp/x", "https://api.example/mcp"));
        assert!(ok("https://api.example/mcp", "https://api.example/"));
        assert!(ok("https://api.example/mcp", "https://api.example"));
        assert!(!ok("https://api.example/mcpx", "https://api.example/mcp"));
        assert!(!ok("https://api.example/mcp", "https://api.example/mcp/x"));
        assert!(!ok("https://api.example/mcp", "http://api.example/mcp"));
        assert!(!ok(
            "https://api.example/mcp",
            "https://api.example:8443/mcp"
        ));
        assert!(!ok("https://api.example/mcp", "https://other.example/mcp"));
        assert!(!ok("https://api.example/mcp", "not a url"));
        let e = ResourceMetadata::from_json("https://api.example/", &doc("https://x.example/"))
            .unwrap_err();
        assert!(e.is_resource_metadata() && !e.is_transient(), "{e}");
    }

    #[test]
    fn authorization_servers_are_required_and_bounded() {
        let with = |list: &str| {
            ResourceMetadata::from_json(
                "https://a.example",
                format!(r#"{{"resource":"https://a.example","authorization_servers":{list}}}"#)
                    .as_bytes(),
            )
        };
        assert!(with("[]").unwrap_err().is_resource_metadata());
        assert!(with(r#""https://as""#).unwrap_err().is_resource_metadata());
        assert!(with("[1]").unwrap_err().is_resource_metadata());
        let many: Vec<String> = (0..=MAX_AUTHORIZATION_SERVERS)
            .map(|i| format!("\"https://as{i}.example\""))
            .collect();
        assert!(with(&format!("[{}]", many.join(",")))
            .unwrap_err()
            .is_resource_metadata());
        assert!(with(r#"["https://as.example"]"#).is_ok());
        assert!(ResourceMetadata::from_json("https://a.example", b"[]")
            .unwrap_err()
            .is_resource_metadata());
    }

    #[test]
    fn well_known_goes_between_origin_and_path() {
        assert_eq!(
            well_known_resource_metadata("https://a.example").unwrap(),
            "https://a.example/.well-known/oauth-protected-resource"
        );
        assert_eq!(
            well_known_resource_metadata("http://127.0.0.1:8080/v1/mcp/?q=1").unwrap(),
            "http://127.0.0.1:8080/.well-known/oauth-protected-resource/v1/mcp"
        );
        assert!(well_known_resource_metadata("/relative").is_err());
    }

    #[test]
    fn step_up_asks_for_the_union_or_the_acr() {
        let headers = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::WWW_AUTHENTICATE, v.parse().unwrap());
            h
        };
        let held = ["a".to_owned(), "b".to_owned()];
        let e = step_up(
            StatusCode::FORBIDDEN,
            &headers(r#"Bearer error="insufficient_scope", scope="b c""#),
            &held,
        )
        .unwrap();
        assert!(e.is_step_up() && e.is_insufficient_scope());
        assert_eq!(e.step_up_scopes().unwrap(), ["a", "b", "c"]);
        assert!(e.to_string().contains("a b c"), "{e}");
        let e = step_up(
            StatusCode::UNAUTHORIZED,
            &headers(
                r#"Basic realm="x", Bearer error="insufficient_user_authentication", acr_values="mfa phr", max_age=5"#,
            ),
            &held,
        )
        .unwrap();
        assert!(e.is_user_authentication_required() && !e.is_insufficient_scope());
        assert_eq!(e.acr_values().unwrap(), ["mfa", "phr"]);
        assert_eq!(e.max_age(), Some(5));
        assert!(step_up(
            StatusCode::UNAUTHORIZED,
            &headers(r#"Bearer error="invalid_token""#),
            &held
        )
        .is_none());
        assert!(step_up(StatusCode::FORBIDDEN, &HeaderMap::new(), &held).is_none());
    }
}
