//! A ready HTTPS client (feature `https`): hyper-util over rustls with the
//! Mozilla roots (`webpki-roots`, so it behaves the same in a scratch container
//! as on a laptop), for the token endpoint and the API alike, with the
//! [`GuardLayer`] built in so that no stamped header reaches another origin:
//! [`guarded`] for one credential, [`guarded_for_all`] for several,
//! `guarded_for_users` for many users' tokens (feature `users`).
//!
//! Why `hyper-rustls` with webpki roots rather than the platform verifier: no
//! system dependency, the same trust on every host the service runs on, and
//! the same client the crate's examples use; a service that must trust a
//! private CA builds its own connector and adds the guard itself (one line).
//!
//! ```no_run
//! use tower::{Layer, ServiceExt};
//! use tower_client_auth::providers::altrata;
//! use tower_client_auth::{https, AuthLayer};
//!
//! # async fn f() -> Result<(), tower_client_auth::BoxError> {
//! let credential = altrata::client_credentials("api-key", "user", "password")
//!     .build(https::client())?; // the token endpoint, through the same client
//! let api = AuthLayer::new(credential.clone()).layer(https::guarded(credential));
//! let req = http::Request::post("https://profile.altrata.com/v1/graphql")
//!     .header("content-type", "application/json")
//!     .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{\"query\":\"{ me { id } }\"}")))?;
//! let res = api.oneshot(req).await?;
//! # let _ = res; Ok(()) }
//! ```

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_layer::Layer;

use crate::layer::{Guard, GuardLayer};
use crate::{Credential, ReplayBody};

/// The HTTPS client: hyper-util's pooled client over rustls (webpki roots,
/// HTTP/1.1), sending `ReplayBody<Full<Bytes>>` so that it serves both the token
/// client and an [`AuthLayer`](crate::AuthLayer) with 401 retry. Plain `http://`
/// is allowed at the connector; the crate refuses credentials over it except to
/// loopback.
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower::{Layer, ServiceExt};
/// use tower_client_auth::https::{self, HttpsClient};
/// use tower_client_auth::{AuthLayer, AuthService, Credential};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::BoxError> {
/// # let server = tower_client_auth::testing::serve(|req| async move {
/// #     Response::new(Full::new(Bytes::from(req.headers().contains_key("authorization").to_string())))
/// # })
/// # .await;
/// # let base_url = server.base_url(); // "https://api.example.com" in real life
/// let credential = Credential::bearer(&base_url, "my-token")?;
/// let api: AuthService<HttpsClient> = AuthLayer::new(credential).layer(https::client());
/// let req = Request::get(format!("{base_url}/v1/me")).body(Full::new(Bytes::new()))?;
/// assert_eq!(api.oneshot(req).await?.status(), 200);
/// # Ok(())
/// # }
/// ```
pub type HttpsClient = Client<HttpsConnector<HttpConnector>, ReplayBody<Full<Bytes>>>;

/// A new [`HttpsClient`]. Clone it to share its connection pool.
pub fn client() -> HttpsClient {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(https)
}

/// A new [`HttpsClient`] behind a [`GuardLayer`] for `credential`: what goes
/// under [`AuthLayer`](crate::AuthLayer), whatever follows redirects in between.
pub fn guarded(credential: Credential) -> Guard<HttpsClient> {
    GuardLayer::new(credential).layer(client())
}

/// TLS settings for an [`HttpsClient`] other than [`client`]'s: a private CA
/// to trust besides the Mozilla roots, and a client certificate for mutual
/// TLS (RFC 8705: `tls_client_auth` or `self_signed_tls_client_auth` at the
/// token endpoint; the tokens it issues are then bound to the certificate,
/// and API requests through the same client present it, so nothing else
/// is needed at the API). Processes that share certificate-bound tokens
/// through a [`SharedStore`](crate::store::SharedStore) must share the
/// certificate too: name it in
/// [`SharedStore::identity`](crate::store::SharedStore::identity), which the
/// token client cannot do for you (it never sees the TLS identity).
///
/// ```no_run
/// use tower_client_auth::https::TlsSettings;
/// use tower_client_auth::oauth2::{ClientAuth, TokenClient};
///
/// # fn f() -> Result<(), tower_client_auth::Error> {
/// let http = TlsSettings::new()
///     .identity_pem(
///         &std::fs::read("client.pem").unwrap(),
///         &std::fs::read("client.key").unwrap(),
///     )?
///     .client()?;
/// let tokens = TokenClient::builder("https://mtls.auth.example.com/token")
///     .client_id("my-client")
///     .client_auth(ClientAuth::None) // the certificate authenticates the client
///     .build(http.clone())?;
/// # let _ = tokens; Ok(()) }
/// ```
#[derive(Debug)]
#[must_use]
pub struct TlsSettings {
    roots: rustls::RootCertStore,
    identity: Option<(
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    )>,
}

impl TlsSettings {
    /// The Mozilla roots (`webpki-roots`), no client certificate.
    pub fn new() -> Self {
        TlsSettings {
            roots: rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
            identity: None,
        }
    }

    /// Also trusts the CA certificates in `pem`.
    pub fn add_roots_pem(mut self, pem: &[u8]) -> Result<Self, crate::Error> {
        use rustls::pki_types::pem::PemObject as _;
        let mut added = 0;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|_| crate::Error::config("not a PEM certificate"))?;
            self.roots
                .add(cert)
                .map_err(|_| crate::Error::config("not a usable CA certificate"))?;
            added += 1;
        }
        if added == 0 {
            return Err(crate::Error::config("no certificate in the PEM"));
        }
        Ok(self)
    }

    /// Presents `cert_chain_pem` (leaf first) with `key_pem` (PKCS#8, SEC1 or
    /// PKCS#1) to servers that ask for a client certificate.
    pub fn identity_pem(
        mut self,
        cert_chain_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<Self, crate::Error> {
        use rustls::pki_types::pem::PemObject as _;
        let chain = rustls::pki_types::CertificateDer::pem_slice_iter(cert_chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| crate::Error::config("not a PEM certificate chain"))?;
        if chain.is_empty() {
            return Err(crate::Error::config("no certificate in the chain"));
        }
        // The error never echoes the key.
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|_| crate::Error::config("not a PEM private key"))?;
        self.identity = Some((chain, key));
        Ok(self)
    }

    /// A client with these settings (ring, TLS 1.2 and 1.3, HTTP/1.1).
    pub fn client(self) -> Result<HttpsClient, crate::Error> {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|_| crate::Error::config("TLS versions"))?
            .with_root_certificates(self.roots);
        let config = match self.identity {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|_| crate::Error::config("the client certificate and key do not fit"))?,
            None => builder.with_no_client_auth(),
        };
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Client::builder(TokioExecutor::new()).build(https))
    }
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self::new()
    }
}

/// Like [`guarded`], for several credentials sharing one client.
pub fn guarded_for_all(credentials: impl IntoIterator<Item = Credential>) -> Guard<HttpsClient> {
    GuardLayer::for_all(credentials).layer(client())
}

/// Like [`guarded`], for many users' tokens: what goes under a
/// [`UsersLayer`](crate::users::UsersLayer) (the guard of
/// [`UsersLayer::guard`](crate::users::UsersLayer::guard), built in).
///
/// ```no_run
/// use tower::Layer;
/// use tower_client_auth::https;
/// use tower_client_auth::users::{Users, UsersLayer};
///
/// # fn f(users: Users) {
/// let api = UsersLayer::new(users.clone()).layer(https::guarded_for_users(users));
/// # let _ = api; }
/// ```
#[cfg(feature = "users")]
#[cfg_attr(docsrs, doc(cfg(feature = "users")))]
pub fn guarded_for_users(users: crate::users::Users) -> Guard<HttpsClient> {
    users.guard_layer().layer(client())
}
