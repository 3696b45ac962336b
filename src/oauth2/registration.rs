//! Dynamic client registration (RFC 7591): a client id (and secret) from the
//! authorization server's `registration_endpoint`, for a client configured
//! with nothing but an API URL.
//!
//! The registration is kept like a token: in a [`SharedStore`] when there is
//! one (sealed with its key, under a lease, so that a fleet registers once),
//! else in the process. The client secret and the registration access token
//! (RFC 7592) are secrets: never in `Debug`, errors or logs.
//!
//! ```
//! use secrecy::ExposeSecret;
//! use tower_client_auth::oauth2::{ClientRegistration, RegistrationRequest};
//!
//! let request = RegistrationRequest::service("billing-agent");
//! assert_eq!(request.document()["grant_types"][0], "client_credentials");
//! let registered = ClientRegistration::from_json(
//!     br#"{"client_id":"c-1","client_secret":"s3cret","registration_access_token":"rat"}"#,
//! )?;
//! assert_eq!(registered.client_id(), "c-1");
//! assert_eq!(registered.client_secret().unwrap().expose_secret(), "s3cret");
//! assert!(!format!("{registered:?}").contains("s3cret"));
//! # Ok::<_, tower_client_auth::Error>(())
//! ```

use std::fmt;

use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::Full;
use secrecy::SecretString;
use tower::ServiceExt;

use super::discovery::ProviderMetadata;
use super::transport::HttpService;
use super::{ClientAuth, TokenClientBuilder};
use crate::error::{escape, Error, Kind, ResourceError};
use crate::wire::origin::describe_url;

/// The largest registration response read.
const MAX_REGISTRATION: usize = 64 * 1024;

fn registration_error(msg: impl Into<String>) -> Error {
    Error::resource(ResourceError::Registration(msg.into()))
}

/// The client metadata sent to a registration endpoint (RFC 7591 §2).
#[must_use]
#[derive(Debug, Clone)]
pub struct RegistrationRequest {
    document: serde_json::Map<String, serde_json::Value>,
}

impl RegistrationRequest {
    /// A confidential service: client credentials, authenticated with a
    /// client secret (`client_secret_basic`).
    pub fn service(client_name: impl Into<String>) -> Self {
        let document = serde_json::json!({
            "client_name": client_name.into(),
            "grant_types": ["client_credentials"],
            "response_types": [],
            "redirect_uris": [],
            "token_endpoint_auth_method": "client_secret_basic",
        });
        RegistrationRequest {
            document: document.as_object().cloned().unwrap_or_default(),
        }
    }

    /// A public client for users: the authorization code with PKCE and
    /// refresh tokens, redirected to `redirect_uri`, no client secret.
    pub fn user(client_name: impl Into<String>, redirect_uri: impl Into<String>) -> Self {
        let document = serde_json::json!({
            "client_name": client_name.into(),
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "redirect_uris": [redirect_uri.into()],
            "token_endpoint_auth_method": "none",
        });
        RegistrationRequest {
            document: document.as_object().cloned().unwrap_or_default(),
        }
    }

    /// Sets another client metadata field (`scope`, `software_id`, ...).
    pub fn field(mut self, name: impl Into<String>, value: serde_json::Value) -> Self {
        self.document.insert(name.into(), value);
        self
    }

    /// The metadata as sent.
    pub fn document(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.document
    }

    /// What tells this registration from another of the same server (the
    /// metadata, fields sorted): part of its key in a shared store.
    pub(crate) fn fingerprint(&self) -> String {
        let sorted: std::collections::BTreeMap<_, _> = self.document.iter().collect();
        serde_json::to_string(&sorted).unwrap_or_default()
    }
}

/// What a registration endpoint answered (RFC 7591 §3.2.1).
#[derive(Clone)]
pub struct ClientRegistration {
    client_id: String,
    client_secret: Option<SecretString>,
    registration_access_token: Option<SecretString>,
    registration_client_uri: Option<String>,
    token_endpoint_auth_method: Option<String>,
}

impl ClientRegistration {
    /// Parses a registration response: `client_id` is required.
    pub fn from_json(body: &[u8]) -> Result<Self, Error> {
        let v: serde_json::Value = serde_json::from_slice(body)
            .map_err(|_| registration_error("the response is not JSON"))?;
        let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
        let client_id = text("client_id")
            .filter(|id| !id.is_empty() && id.len() <= 1024)
            .ok_or_else(|| registration_error("the response has no usable client_id"))?;
        Ok(ClientRegistration {
            client_id,
            client_secret: text("client_secret").map(SecretString::from),
            registration_access_token: text("registration_access_token").map(SecretString::from),
            registration_client_uri: text("registration_client_uri"),
            token_endpoint_auth_method: text("token_endpoint_auth_method"),
        })
    }

    /// A client id (and secret) of the caller's own, as if registered.
    pub(crate) fn configured(client_id: String, client_secret: Option<SecretString>) -> Self {
        ClientRegistration {
            client_id,
            client_secret,
            registration_access_token: None,
            registration_client_uri: None,
            token_endpoint_auth_method: None,
        }
    }

    /// The client id issued.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The client secret issued, if any (a public client has none).
    pub fn client_secret(&self) -> Option<&SecretString> {
        self.client_secret.as_ref()
    }

    /// The registration access token (RFC 7592), to read or update the
    /// registration later.
    pub fn registration_access_token(&self) -> Option<&SecretString> {
        self.registration_access_token.as_ref()
    }

    /// Where the registration can be read or updated (RFC 7592).
    pub fn registration_client_uri(&self) -> Option<&str> {
        self.registration_client_uri.as_deref()
    }

    /// A token client builder for `metadata`'s token endpoint with this
    /// client id, and its secret when there is one (else no client
    /// authentication: a public client).
    pub fn token_client(&self, metadata: &ProviderMetadata) -> TokenClientBuilder {
        let builder = metadata.token_client().client_id(self.client_id.clone());
        match (
            &self.client_secret,
            self.token_endpoint_auth_method.as_deref(),
        ) {
            (Some(secret), Some("client_secret_post")) => builder
                .client_secret(secret.clone())
                .client_auth(ClientAuth::Body),
            (Some(secret), _) => builder.client_secret(secret.clone()),
            (None, _) => builder.client_auth(ClientAuth::None),
        }
    }

    /// The registration as kept in a shared store (secrets included: the
    /// store seals it when it has a key).
    #[cfg(feature = "store")]
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "client_id": self.client_id,
            "client_secret": self.client_secret.as_ref().map(secrecy::ExposeSecret::expose_secret),
            "registration_access_token": self.registration_access_token.as_ref().map(secrecy::ExposeSecret::expose_secret),
            "registration_client_uri": self.registration_client_uri,
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
        })
    }
}

impl fmt::Debug for ClientRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientRegistration")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "registration_access_token",
                &self
                    .registration_access_token
                    .as_ref()
                    .map(|_| "[redacted]"),
            )
            .field("registration_client_uri", &self.registration_client_uri)
            .finish()
    }
}

/// Registers `request` at `endpoint` (held to the rule of every URL the crate
/// sends to: `https://`, loopback, or `allow_http`).
pub async fn register(
    http: HttpService,
    endpoint: &str,
    request: &RegistrationRequest,
    allow_http: bool,
) -> Result<ClientRegistration, Error> {
    let (uri, _) = crate::wire::origin::parse_url(endpoint, allow_http, "registration endpoint")?;
    let body = serde_json::to_vec(&request.document)
        .map_err(|_| Error::config("registration metadata cannot be encoded"))?;
    let mut req = Request::new(Full::new(Bytes::from(body)));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = uri.clone();
    let headers = req.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::ACCEPT,
        http::HeaderValue::from_static("application/json"),
    );
    let res = tokio::time::timeout(super::DEFAULT_TIMEOUT, http.oneshot(req))
        .await
        .map_err(|_| Error::new(Kind::Timeout).at_endpoint(describe_url(&uri)))?
        .map_err(|e| Error::with_source(Kind::Transport, e).at_endpoint(describe_url(&uri)))?;
    let status = res.status();
    let body = super::transport::read_capped(res.into_body(), MAX_REGISTRATION)
        .await
        .map_err(|e| e.at_endpoint(describe_url(&uri)))?
        .ok_or_else(|| {
            registration_error(format!(
                "the response is larger than {MAX_REGISTRATION} bytes"
            ))
        })?;
    if !status.is_success() {
        let code = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("error")
                    .and_then(|e| e.as_str())
                    .map(|e| escape(e, 64))
            });
        return Err(registration_error(match code {
            Some(code) => format!("HTTP {status}, error `{code}`"),
            None => format!("HTTP {status}"),
        }));
    }
    ClientRegistration::from_json(&body)
}

/// Keeps one registration per server and metadata in a shared store: the
/// first process to hold the lease registers; the others wait for what it
/// stores.
#[cfg(feature = "store")]
pub(crate) async fn register_once(
    shared: crate::store::SharedStore,
    identity: String,
    register: futures_util::future::BoxFuture<'static, Result<ClientRegistration, Error>>,
) -> Result<ClientRegistration, Error> {
    use crate::store::{open_document, seal_document, within, StoreKey, StoredEntry};
    const DOMAIN: &[u8] = b"tower-client-auth registration v1";

    let key = StoreKey::new(&shared.namespace, &format!("registration|{identity}"));
    let cipher = shared.cipher.as_deref();
    let limit = shared.store_timeout;
    let store = &shared.store;
    let decode = |entry: StoredEntry| -> Result<ClientRegistration, Error> {
        let json = open_document(DOMAIN, &entry.data, &key, cipher)?;
        let body = serde_json::to_vec(&json).map_err(|_| Error::store_codec("cannot decode"))?;
        ClientRegistration::from_json(&body)
    };
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|_| Error::store_codec("no randomness for an owner"))?;
    let owner: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    // Waiting longer than a lease means its holder died: take it then.
    let deadline = tokio::time::Instant::now() + shared.lease_ttl * 2;
    let mut register = Some(register);
    loop {
        if let Some(entry) = within(limit, store.load(&key)).await? {
            return decode(entry);
        }
        if within(limit, store.try_lease(&key, &owner, shared.lease_ttl)).await? {
            let result = async {
                // Someone may have stored it between the read and the lease.
                if let Some(entry) = within(limit, store.load(&key)).await? {
                    return decode(entry);
                }
                let register = register
                    .take()
                    .ok_or_else(|| registration_error("registration already attempted"))?;
                let registered = register.await?;
                let data = seal_document(DOMAIN, &registered.to_json(), &key, cipher)?;
                let entry = StoredEntry {
                    generation: 1,
                    data,
                };
                if !within(limit, store.compare_and_set(&key, 0, Some(&owner), entry)).await? {
                    tracing::warn!("client registration not stored: the lease was lost");
                }
                Ok(registered)
            }
            .await;
            let _ = within(limit, store.release_lease(&key, &owner)).await;
            return result;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(registration_error(
                "another process holds the registration lease and stored nothing",
            ));
        }
        within(limit, store.wait_change(&key, 0, shared.poll_interval)).await?;
    }
}

#[cfg(all(test, feature = "store"))]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use secrecy::ExposeSecret;

    use super::*;
    use crate::store::{MemoryStore, SharedStore};

    #[tokio::test]
    async fn a_fleet_registers_once_and_reads_it_sealed() {
        let shared = SharedStore::new(MemoryStore::new()).encrypt_with([3u8; 32]);
        let count = Arc::new(AtomicU32::new(0));
        let tasks = (0..8).map(|_| {
            let (shared, count) = (shared.clone(), count.clone());
            let register: futures_util::future::BoxFuture<'static, _> = Box::pin(async move {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                ClientRegistration::from_json(br#"{"client_id":"c-1","client_secret":"s"}"#)
            });
            tokio::spawn(register_once(shared, "as|meta".to_owned(), register))
        });
        for t in tasks {
            let r = t.await.unwrap().unwrap();
            assert_eq!(r.client_id(), "c-1");
            assert_eq!(r.client_secret().unwrap().expose_secret(), "s");
        }
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_response_without_client_id_is_refused() {
        for body in [&b"{}"[..], b"[]", b"{\"client_id\":\"\"}", b"nope"] {
            let e = ClientRegistration::from_json(body).unwrap_err();
            assert!(e.is_registration(), "{e}");
        }
    }
}
