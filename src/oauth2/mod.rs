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
//! let token = client.client_credentials(&["read".to_owned()]).await?;
//! assert_eq!(token.access_token().expose_secret(), "t0k3n");
//! # Ok(())
//! # }
//! ```
//!
//! The password grant with a JSON body (Algoreg), the refresh grant and the code
//! exchange work the same way: [`TokenClient::password`], [`TokenClient::refresh`],
//! [`TokenClient::exchange_code`]; [`AuthorizationUrl`] makes the URL the browser
//! goes to and checks `state` on the way back.

mod client;
mod grant;
mod pkce;
mod response;

pub use client::{
    ClientAuth, HttpService, ParamStyle, TokenClient, TokenClientBuilder, TokenRequestBody,
    TokenRequestMarker, DEFAULT_MAX_RESPONSE, DEFAULT_TIMEOUT,
};
pub use grant::{Grant, OAuth2Source};
pub use pkce::{
    AuthorizationCode, AuthorizationRequest, AuthorizationUrl, PkceMethod, PkceVerifier,
};
