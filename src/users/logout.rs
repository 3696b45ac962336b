//! Logging a user out: their refresh token revoked at the server (RFC 7009)
//! and their stored entry replaced by a "log in again" mark, for every
//! process on the store.

use super::{UserKey, Users};
use crate::error::Error;

impl Users {
    /// Logs `user` out: replaces their stored token with a "log in again"
    /// mark (read and replaced in one compare-and-set, so no process
    /// refreshes with it afterwards), forgets them in this process, then
    /// revokes what was stored at the server's revocation endpoint (RFC 7009:
    /// the refresh token, else the access token), when the token client has
    /// one ([`TokenClientBuilder::revocation_url`](crate::oauth2::TokenClientBuilder::revocation_url)
    /// or discovery).
    ///
    /// Every process on the store then fails that user's next token request
    /// with [`Error::is_login_required`]: at once when it holds no access
    /// token, else at its next refresh or 401 (servers that revoke a grant's
    /// access tokens with its refresh token, as most do, answer 401 at
    /// once). A revocation that fails after its retries is returned as an
    /// error ([`Error::is_revocation_failed`], the cause the server's
    /// answer); the user is logged out here all the same.
    ///
    /// ```
    /// use tower_client_auth::store::{MemoryStore, SharedStore};
    /// use tower_client_auth::token::Token;
    /// use tower_client_auth::users::{UserKey, Users};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// # let token_client = tower_client_auth::oauth2::TokenClient::builder("https://auth.example.com/oauth/token")
    /// #     .client_id("my-app")
    /// #     .build(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #         Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::<bytes::Bytes>::default()))
    /// #     }))?;
    /// let users = Users::builder("https://api.example.com", token_client)
    ///     .store(SharedStore::new(MemoryStore::new()))
    ///     .build()?;
    /// let alice = UserKey::new("alice");
    /// users.login(&alice, Token::bearer("at", None).with_refresh_token("rt")).await?;
    /// users.logout(&alice).await?; // no revocation endpoint here: only forgotten
    /// let err = users.credential(&alice)?.token().await.unwrap_err();
    /// assert!(err.is_login_required());
    /// # Ok(()) }
    /// ```
    pub async fn logout(&self, user: &UserKey) -> Result<(), Error> {
        let key = self.store_key(user);
        let held = self
            .find(user)
            .and_then(|c| c.manager().and_then(|m| m.current_token()));
        let stored = self
            .inner
            .shared
            .put_logged_out(&key, user.as_str())
            .await?;
        self.evict(user);
        tracing::debug!(
            credential = &*self.inner.name,
            user = user.as_str(),
            "logout stored"
        );
        let client = &self.inner.client;
        if client.revocation_url().is_none() {
            return Ok(());
        }
        let token = match (stored, held) {
            (Some(token), _) => token,
            (None, Some(held)) => (*held).clone(),
            (None, None) => return Ok(()),
        };
        match &token.refresh_token {
            Some(rt) => client.revoke(rt, Some("refresh_token")).await,
            None => {
                client
                    .revoke(&token.access_token, Some("access_token"))
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};

    use super::*;
    use crate::oauth2::TokenClient;
    use crate::store::{MemoryStore, SharedStore};
    use crate::token::Token;

    /// A revocation endpoint that is down: logout still takes effect, and
    /// says the revocation failed after its retries (never dropped quietly).
    #[tokio::test(start_paused = true)]
    async fn a_failed_revocation_is_reported_and_the_user_still_logged_out() {
        let calls = Arc::new(AtomicU32::new(0));
        let seen = calls.clone();
        let http = tower::service_fn(move |req: http::Request<Full<Bytes>>| {
            let seen = seen.clone();
            async move {
                let form = req.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(form, "token=alice-rt&token_type_hint=refresh_token");
                seen.fetch_add(1, Ordering::SeqCst);
                let mut res = http::Response::new(Full::new(Bytes::new()));
                *res.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                Ok::<_, std::convert::Infallible>(res)
            }
        });
        let tokens = TokenClient::builder("https://as.example/token")
            .client_id("app")
            .client_secret("s3cret")
            .revocation_url("https://as.example/revoke")
            .build(http)
            .unwrap();
        let users = Users::builder("https://api.example.com", tokens)
            .store(SharedStore::new(MemoryStore::new()))
            .build()
            .unwrap();
        let alice = UserKey::new("alice");
        let token = Token::bearer("alice-at", None).with_refresh_token("alice-rt");
        users.login(&alice, token).await.unwrap();
        users.credential(&alice).unwrap().token().await.unwrap();

        let err = users.logout(&alice).await.unwrap_err();
        assert!(err.is_revocation_failed() && err.is_transient(), "{err}");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(!err.to_string().contains("alice-rt"));
        let again = users.credential(&alice).unwrap().token().await.unwrap_err();
        assert!(again.is_login_required(), "{again}");
        // Nothing stored any more: a second logout has nothing to revoke.
        users.logout(&alice).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
