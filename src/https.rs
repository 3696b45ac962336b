//! A ready HTTPS client (feature `https`): hyper-util over rustls with the
//! Mozilla roots (`webpki-roots`, so it behaves the same in a scratch container
//! as on a laptop), for the token endpoint and the API alike, with the
//! [`GuardLayer`] built in so that no stamped header reaches another origin.
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

/// Like [`guarded`], for several credentials sharing one client.
pub fn guarded_for_all(credentials: impl IntoIterator<Item = Credential>) -> Guard<HttpsClient> {
    GuardLayer::for_all(credentials).layer(client())
}
