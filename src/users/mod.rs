//! Many users behind one layer: the credential is chosen per request, and each
//! user's refresh token lives in a durable [`TokenStore`](crate::store::TokenStore) (PostgreSQL, Redis)
//! that survives restarts and is shared by replicas.
//!
//! A backend that acts for its end users (Agrello's API users, the generic
//! OAuth2 API's third-party apps) holds one refresh token per user. [`Users`]
//! keeps them: the login (the authorization-code flow) ends with
//! [`Users::login`], which stores the user's token under their [`UserKey`];
//! every request that carries a `UserKey` extension is then stamped with that
//! user's access token, refreshed through the store's lease (one refresh per user
//! across the fleet, rotation by compare-and-set, nothing sent twice). A user
//! whose refresh token is rejected gets [`Error::is_login_required`](crate::Error::is_login_required) naming
//! their key, in every process, until they log in again. Idle users' entries are
//! dropped after an idle time or beyond a capacity, with their background tasks.
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use tower::{service_fn, Layer, ServiceExt};
//! use tower_client_auth::oauth2::TokenClient;
//! use tower_client_auth::token::Token;
//! use tower_client_auth::store::{MemoryStore, SharedStore};
//! use tower_client_auth::users::{UserKey, Users, UsersLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_client_auth::BoxError> {
//! # let http = service_fn(|_: Request<Full<Bytes>>| async {
//! #     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
//! # });
//! let token_client = TokenClient::builder("https://auth.example.com/oauth/token")
//!     .client_id("my-app")
//!     .client_secret("secret")
//!     .build(http)?;
//! let users = Users::builder("https://api.example.com", token_client)
//!     .store(SharedStore::new(MemoryStore::new())) // PgStore or RedisStore in production
//!     .build()?;
//!
//! // The login's callback route, after exchanging the code:
//! let token = Token::bearer("access", None).with_refresh_token("refresh");
//! users.login(&UserKey::new("user-42"), token).await?;
//!
//! // Every API call as that user:
//! let api = UsersLayer::new(users.clone()).without_retry().layer(service_fn(
//!     |req: Request<Full<Bytes>>| async move {
//!         let auth = req.headers()["authorization"].to_str().unwrap().to_owned();
//!         Ok::<_, std::convert::Infallible>(Response::new(auth))
//!     },
//! ));
//! let mut req = Request::get("https://api.example.com/v1/me").body(Full::new(Bytes::new()))?;
//! req.extensions_mut().insert(UserKey::new("user-42"));
//! assert_eq!(api.oneshot(req).await?.into_body(), "Bearer access");
//! # Ok(())
//! # }
//! ```

mod guard;
mod key;
mod logout;
mod registry;
mod select;
mod source;

use key::KeyMap;
pub use key::UserKey;
use registry::Entry;
pub use registry::{Users, UsersBuilder, UsersStats, WithoutUser};
pub use select::{UsersLayer, UsersService};
use source::UserSource;
