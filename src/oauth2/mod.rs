//! OAuth2 token endpoint client: grants, client authentication, response parsing,
//! and the authorization code flow with PKCE.
//!
//! A [`TokenClient`] talks to one token endpoint through an HTTP service you give
//! (a hyper-util client fits). [`OAuth2Source`] turns a grant into a
//! [`TokenSource`](crate::token::TokenSource) for [`AuthLayer`](crate::AuthLayer).
//!
//! Client credentials against a token endpoint, here a local stand-in:
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use secrecy::ExposeSecret;
//! use tower::service_fn;
//! use tower_client_auth::oauth2::TokenClient;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_client_auth::Error> {
//! let http = service_fn(|req: Request<Full<Bytes>>| async move {
//!     assert_eq!(req.headers()["content-type"], "application/x-www-form-urlencoded");
//!     Ok::<_, std::convert::Infallible>(
//!         Response::builder()
//!             .header("content-type", "application/json")
//!             .body(Full::new(Bytes::from_static(
//!                 br#"{"access_token":"t0k3n","token_type":"bearer","expires_in":3600}"#,
//!             )))
//!             .unwrap(),
//!     )
//! });
//! let client = TokenClient::builder("https://auth.example.com/oauth/token")
//!     .client_id("id")
//!     .client_secret("secret")
//!     .build(http)?;
//! let token = client.client_credentials(&["read"]).await?;
//! assert_eq!(token.access_token().expose_secret(), "t0k3n");
//! # Ok(())
//! # }
//! ```
//!
//! The other grants, against a stand-in endpoint that echoes what it received:
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use secrecy::ExposeSecret;
//! use tower::service_fn;
//! use tower_client_auth::oauth2::{AuthorizationUrl, ClientAuth, ParamStyle, TokenClient};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_client_auth::Error> {
//! // Answers with the request body as the access token, and a refresh token.
//! let echo = service_fn(|req: Request<Full<Bytes>>| async move {
//!     let body = req.into_body().collect().await.unwrap().to_bytes();
//!     let json = serde_json::json!({
//!         "access_token": String::from_utf8_lossy(&body),
//!         "refresh_token": "rt-2",
//!         "expires_in": 3600,
//!     });
//!     Ok::<_, std::convert::Infallible>(
//!         Response::builder()
//!             .header("content-type", "application/json")
//!             .body(Full::new(Bytes::from(json.to_string())))
//!             .unwrap(),
//!     )
//! });
//! let form = TokenClient::builder("https://auth.example.com/token")
//!     .client_id("id")
//!     .client_secret("secret")
//!     .build(echo.clone())?;
//!
//! // Password grant, form-encoded.
//! let t = form.password("jane", "pw", &["read"]).await?;
//! assert_eq!(
//!     t.access_token().expose_secret(),
//!     "grant_type=password&username=jane&password=pw&scope=read"
//! );
//!
//! // Refresh grant: a new refresh token replaces the old one.
//! let t = form.refresh(&"rt-1".into(), &[]).await?;
//! assert_eq!(t.access_token().expose_secret(), "grant_type=refresh_token&refresh_token=rt-1");
//! assert_eq!(t.refresh_token().unwrap().expose_secret(), "rt-2");
//!
//! // Authorization code with PKCE: the URL for the browser, the callback check,
//! // then the exchange.
//! let request = AuthorizationUrl::new("https://auth.example.com/authorize", "id", "https://app/cb")
//!     .build()?;
//! let code = request.verify_callback(&format!("code=abc&state={}", request.state()))?;
//! let t = form
//!     .exchange_code(code.code, Some(request.redirect_uri()), request.verifier())
//!     .await?;
//! assert!(t.access_token().expose_secret().contains("grant_type=authorization_code&code=abc"));
//!
//! // Password grant with a JSON body and no client authentication (Algoreg).
//! let json = TokenClient::builder("https://api.algoreg.com/api/v1/token")
//!     .client_auth(ClientAuth::None)
//!     .params_in(ParamStyle::Json)
//!     .build(echo)?;
//! let t = json.password("api@acme.com", "pw", &[]).await?;
//! assert_eq!(
//!     t.access_token().expose_secret(),
//!     r#"{"grant_type":"password","password":"pw","username":"api@acme.com"}"#
//! );
//! # Ok(())
//! # }
//! ```

mod assertion;
mod builder;
mod client;
mod device;
mod discovery;
mod endpoint;
mod exchange;
mod grant;
#[cfg(feature = "jose")]
mod jar;
mod par;
mod pkce;
mod protected_resource;
mod registration;
mod resource_metadata;
mod response;
mod revocation;
mod source;
mod transport;

#[cfg(feature = "jose")]
#[cfg_attr(docsrs, doc(cfg(feature = "jose")))]
pub use crate::jose::Dpop;
#[cfg(feature = "jose")]
#[cfg_attr(docsrs, doc(cfg(feature = "jose")))]
pub use crate::jose::PrivateKey;
pub use assertion::AssertionSource;
pub use builder::TokenClientBuilder;
pub use client::{TokenClient, DEFAULT_MAX_RESPONSE, DEFAULT_TIMEOUT};
pub use device::{DeviceAuthorization, DEFAULT_DEVICE_INTERVAL};
pub use discovery::{Discovery, ProviderMetadata, METADATA_TTL};
pub use endpoint::{ClientAuth, ParamStyle};
pub use grant::{
    Grant, TokenExchange, ACCESS_TOKEN_TYPE, ID_TOKEN_TYPE, JWT_TOKEN_TYPE, REFRESH_TOKEN_TYPE,
};
pub use pkce::{
    AuthorizationCode, AuthorizationRequest, AuthorizationUrl, PkceMethod, PkceVerifier,
};
pub use protected_resource::{Discovered, ProtectedResource, ProtectedResourceBuilder};
pub use registration::{register, ClientRegistration, RegistrationRequest};
pub use resource_metadata::{
    step_up, well_known_resource_metadata, ResourceChallenge, ResourceDiscovery, ResourceMetadata,
    MAX_AUTHORIZATION_SERVERS, MAX_CACHED_RESOURCES, MAX_RESOURCE_METADATA,
};
pub use source::OAuth2Source;
pub use transport::{HttpService, IntoHttpService, TokenRequestBody};
