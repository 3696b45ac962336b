//! [`UsersLayer`] and [`UsersService`]: the crate's one layer with [`Users`] as
//! its selector, so that each request is stamped with its user's token.

use std::sync::Arc;

use http::Request;

use crate::layer::local::Local;
use crate::layer::select::sealed::Sealed;
use crate::layer::{AuthLayer, AuthService, GuardLayer, Retry, Select};
use crate::Error;

use super::*;

/// [`AuthLayer`] with each request's [`UserKey`] choosing the token: the
/// credential of that user. `M` is [`Retry`] (default) or
/// [`NoRetry`](crate::layer::NoRetry), as for one credential; the guard for
/// every user's token is [`AuthLayer::guard`].
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower::{service_fn, Layer, ServiceExt};
/// use tower_client_auth::token::Token;
/// use tower_client_auth::store::{MemoryStore, SharedStore};
/// use tower_client_auth::users::{UserKey, Users, UsersLayer};
/// use tower_client_auth::ReplayBody;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::BoxError> {
/// # let token_client = tower_client_auth::oauth2::TokenClient::builder("https://auth.example.com/oauth/token")
/// #     .client_id("my-app")
/// #     .build(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
/// #         Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::<bytes::Bytes>::default()))
/// #     }))?;
/// # let users = Users::builder("https://api.example.com", token_client)
/// #     .store(SharedStore::new(MemoryStore::new()))
/// #     .build()?;
/// let login = Token::bearer("alice-access-token", None).with_refresh_token("alice-refresh-token");
/// users.login(&UserKey::new("alice"), login).await?;
///
/// // With 401 retry (the default), the client under the layer gets `ReplayBody`.
/// let api = UsersLayer::new(users).layer(service_fn(|req: Request<ReplayBody<Full<Bytes>>>| async move {
///     Ok::<_, std::convert::Infallible>(Response::new(req.headers().get("authorization").cloned()))
/// }));
/// let mut req = Request::get("https://api.example.com/v1/me").body(Full::new(Bytes::new()))?;
/// req.extensions_mut().insert(UserKey::new("alice"));
/// assert_eq!(api.clone().oneshot(req).await?.into_body().unwrap(), "Bearer alice-access-token");
///
/// // A request for no user goes out as it is (see `WithoutUser`).
/// let anonymous = Request::get("https://api.example.com/v1/status").body(Full::new(Bytes::new()))?;
/// assert!(api.oneshot(anonymous).await?.into_body().is_none());
/// # Ok(())
/// # }
/// ```
pub type UsersLayer<M = Retry> = AuthLayer<M, Users>;

/// [`AuthService`] stamping each request with its [`UserKey`]'s token.
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower::{service_fn, Layer, ServiceExt};
/// use tower_client_auth::layer::NoRetry;
/// use tower_client_auth::token::Token;
/// use tower_client_auth::store::{MemoryStore, SharedStore};
/// use tower_client_auth::users::{UserKey, Users, UsersLayer, UsersService};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::BoxError> {
/// # let token_client = tower_client_auth::oauth2::TokenClient::builder("https://auth.example.com/oauth/token")
/// #     .client_id("my-app")
/// #     .build(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
/// #         Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::<bytes::Bytes>::default()))
/// #     }))?;
/// # let users = Users::builder("https://api.example.com", token_client)
/// #     .store(SharedStore::new(MemoryStore::new()))
/// #     .build()?;
/// for user in ["alice", "bob"] {
///     let login = Token::bearer(format!("{user}-access-token"), None).with_refresh_token("my-refresh-token");
///     users.login(&UserKey::new(user), login).await?;
/// }
/// let client = service_fn(|req: Request<Full<Bytes>>| async move {
///     Ok::<_, std::convert::Infallible>(Response::new(req.headers()["authorization"].clone()))
/// });
/// let api: UsersService<_, NoRetry> = UsersLayer::new(users).without_retry().layer(client);
///
/// // One service, each request stamped for its own user.
/// for user in ["alice", "bob"] {
///     let mut req = Request::get("https://api.example.com/v1/me").body(Full::new(Bytes::new()))?;
///     req.extensions_mut().insert(UserKey::new(user));
///     let authorization = api.clone().oneshot(req).await?.into_body();
///     assert_eq!(authorization.to_str()?, format!("Bearer {user}-access-token"));
/// }
/// # Ok(())
/// # }
/// ```
pub type UsersService<S, M = Retry> = AuthService<S, M, Users>;

impl<M> AuthLayer<M, Users> {
    /// The users this layer stamps for.
    pub fn users(&self) -> &Users {
        self.selector()
    }
}

impl<S, M> AuthService<S, M, Users> {
    /// The users this service stamps for.
    pub fn users(&self) -> &Users {
        self.selector()
    }
}

/// What a service clone keeps between requests: the entry of the user it
/// served last, with its copies, reused while the next request is for the
/// same user and the registry still holds that entry.
#[derive(Clone, Default)]
pub struct LastUser(Option<(Arc<Entry>, Local)>);

impl Select for Users {}

impl Sealed for Users {
    const NAME: &'static str = "users";

    type Slot = LastUser;

    fn slot(&self) -> LastUser {
        LastUser::default()
    }

    fn select<'a, B>(
        &self,
        slot: &'a mut LastUser,
        req: &Request<B>,
    ) -> Result<Option<&'a mut Local>, Error> {
        let Some(user) = req.extensions().get::<UserKey>() else {
            if self.inner.without_user == WithoutUser::Fail {
                return Err(Error::config("request carries no UserKey"));
            }
            return Ok(None);
        };
        let entry = self.entry(user)?;
        if !entry.credential.applies_to(req.uri()) {
            return Ok(None);
        }
        let held = matches!(&slot.0, Some((last, _)) if Arc::ptr_eq(last, &entry));
        if !held {
            let local = Local::new(entry.stamp.clone(), false);
            slot.0 = Some((entry, local));
        }
        Ok(slot.0.as_mut().map(|(_, local)| local))
    }

    fn guard_layer(&self) -> GuardLayer {
        self.guard_layer()
    }
}
