//! A user's refresh token as a [`TokenSource`](crate::token::TokenSource).

use futures_util::future::BoxFuture;

use crate::oauth2::TokenClient;
use crate::token::{Token, TokenSource};
use crate::Error;

use super::*;

/// A user's refresh token as a [`TokenSource`]: the store hands in the latest
/// stored token; its refresh token is used, and a rejection means a new login.
pub(super) struct UserSource {
    pub(super) client: TokenClient,
    pub(super) user: UserKey,
}

impl TokenSource for UserSource {
    fn needs_previous(&self) -> bool {
        true
    }

    #[cfg(feature = "jose")]
    fn dpop(&self) -> Option<crate::jose::Dpop> {
        self.client.dpop().cloned()
    }

    fn fetch(&self, previous: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>> {
        let refresh = previous.and_then(|p| p.refresh_token().cloned());
        let (client, user) = (self.client.clone(), self.user.clone());
        Box::pin(async move {
            let Some(refresh) = refresh else {
                return Err(Error::login_required(user.as_str()));
            };
            match client.refresh(&refresh, &[]).await {
                Err(e) if e.is_invalid_grant() => {
                    tracing::info!(
                        user = user.as_str(),
                        "refresh token rejected: login required"
                    );
                    Err(Error::login_required(user.as_str()))
                }
                other => other,
            }
        })
    }
}
