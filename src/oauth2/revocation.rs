//! Token revocation (RFC 7009): telling the authorization server that a
//! refresh or access token is no longer needed, with the client's
//! authentication, at the revocation endpoint from configuration
//! ([`TokenClientBuilder::revocation_url`](super::TokenClientBuilder::revocation_url))
//! or discovery (`revocation_endpoint`).
//!
//! A revocation that fails for a transient reason (connection, timeout, 5xx,
//! 429) is tried again, a bounded number of times with a doubling delay; one
//! that still fails, or is refused, is reported as
//! [`Error::is_revocation_failed`] with the last failure as its cause, and
//! logged: never silently dropped.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tower::ServiceExt;

use super::exchange::read_body;
use super::response::parse_token_response;
use super::TokenClient;
use crate::error::lifecycle::Lifecycle;
use crate::error::{Error, Kind};

/// Tries per revocation, the first included.
pub(super) const REVOCATION_ATTEMPTS: u32 = 3;
/// The delay before the second try; doubled before each next one.
const FIRST_DELAY: Duration = Duration::from_millis(250);

impl TokenClient {
    /// The revocation endpoint, if one was set or discovered.
    pub fn revocation_url(&self) -> Option<&http::Uri> {
        self.endpoint.revocation_url.as_ref()
    }

    /// Revokes `token` (RFC 7009 §2.1) at the revocation endpoint, with this
    /// client's authentication; `hint` is the `token_type_hint`
    /// (`refresh_token` or `access_token`). Revoking a token the server does
    /// not know succeeds (§2.2). Transient failures are tried again (3 tries
    /// in all, 250 ms then 500 ms apart); what still fails is an error for
    /// which [`is_revocation_failed`](Error::is_revocation_failed) holds, its
    /// cause the last failure.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::{BodyExt, Full};
    /// use tower::service_fn;
    /// use tower_client_auth::oauth2::TokenClient;
    /// use tower_client_auth::BoxError;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), BoxError> {
    /// let server = service_fn(|req: Request<Full<Bytes>>| async move {
    ///     assert_eq!(req.uri().path(), "/revoke");
    ///     let form = req.into_body().collect().await?.to_bytes();
    ///     assert_eq!(form, "token=my-refresh-token&token_type_hint=refresh_token&client_id=app");
    ///     Ok::<_, BoxError>(Response::new(Full::new(Bytes::new())))
    /// });
    /// let tokens = TokenClient::builder("https://auth.example.com/token")
    ///     .client_id("app")
    ///     .client_auth(tower_client_auth::oauth2::ClientAuth::None)
    ///     .revocation_url("https://auth.example.com/revoke")
    ///     .build(server)?;
    /// tokens.revoke(&"my-refresh-token".into(), Some("refresh_token")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn revoke(&self, token: &SecretString, hint: Option<&str>) -> Result<(), Error> {
        let Some(url) = self.endpoint.revocation_url.clone() else {
            return Err(Error::config(
                "no revocation endpoint: set one, or discover the server's",
            ));
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.revoke_once(&url, token, hint).await;
            match result {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() && attempt < REVOCATION_ATTEMPTS => {
                    tracing::debug!(attempt, error = %e, "token revocation failed; trying again");
                    tokio::time::sleep(FIRST_DELAY * 2u32.pow(attempt - 1)).await;
                }
                Err(e) => {
                    tracing::warn!(attempts = attempt, error = %e, "token revocation failed");
                    return Err(Error::lifecycle_from(
                        Lifecycle::RevocationFailed { attempts: attempt },
                        e,
                    )
                    .at_endpoint(crate::wire::origin::describe_url(&url)));
                }
            }
        }
    }

    async fn revoke_once(
        &self,
        url: &http::Uri,
        token: &SecretString,
        hint: Option<&str>,
    ) -> Result<(), Error> {
        let mut params = vec![("token", token.expose_secret())];
        if let Some(hint) = hint {
            params.push(("token_type_hint", hint));
        }
        let request = self.build_request_with(url, None, &[], &params)?;
        let (endpoint, http) = (self.endpoint.clone(), self.http.clone());
        let answer = async move {
            let response = http
                .oneshot(request)
                .await
                .map_err(|e| Error::with_source(Kind::Transport, e))?;
            let (parts, body) = response.into_parts();
            let bytes = read_body(body, &endpoint).await?;
            if parts.status.is_success() {
                return Ok(());
            }
            // An error answer has the token endpoint's form (RFC 7009 §2.2.1).
            match parse_token_response(parts.status, &parts.headers, &bytes) {
                Err(e) => Err(e),
                Ok(_) => Err(Error::new(Kind::Status(parts.status, None))),
            }
        };
        match tokio::time::timeout(self.endpoint.timeout, answer).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(Kind::Timeout)),
        }
        .map_err(|e| e.at_endpoint(crate::wire::origin::describe_url(url)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use bytes::Bytes;
    use http_body_util::Full;

    use super::*;

    fn server(statuses: Vec<u16>, calls: Arc<AtomicU32>) -> TokenClient {
        let endpoint = tower::service_fn(move |_: http::Request<Full<Bytes>>| {
            let n = calls.fetch_add(1, Ordering::SeqCst) as usize;
            let status = statuses[n.min(statuses.len() - 1)];
            async move {
                let body = if status == 400 {
                    r#"{"error":"unsupported_token_type"}"#
                } else {
                    ""
                };
                Ok::<_, std::convert::Infallible>(
                    http::Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from_static(body.as_bytes())))
                        .unwrap(),
                )
            }
        });
        TokenClient::builder("https://auth.example.com/token")
            .client_id("app")
            .client_secret("s3cret")
            .revocation_url("https://auth.example.com/revoke")
            .build(endpoint)
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_then_reported() {
        let calls = Arc::new(AtomicU32::new(0));
        let tokens = server(vec![503, 200], calls.clone());
        tokens.revoke(&"rt".into(), None).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        let calls = Arc::new(AtomicU32::new(0));
        let tokens = server(vec![503], calls.clone());
        let err = tokens.revoke(&"rt".into(), None).await.unwrap_err();
        assert!(err.is_revocation_failed() && err.is_transient(), "{err}");
        assert_eq!(calls.load(Ordering::SeqCst), REVOCATION_ATTEMPTS);
        assert!(err.to_string().contains("/revoke"), "{err}");
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(cause.contains("503"), "{cause}");
        assert!(!format!("{err:?}{cause}").contains("rt\""));

        // Refused: not retried.
        let calls = Arc::new(AtomicU32::new(0));
        let tokens = server(vec![400], calls.clone());
        let err = tokens.revoke(&"rt".into(), None).await.unwrap_err();
        assert!(err.is_revocation_failed() && !err.is_transient(), "{err}");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn no_endpoint_no_request() {
        let tokens = TokenClient::builder("https://auth.example.com/token")
            .client_id("app")
            .build(tower::service_fn(|_: http::Request<Full<Bytes>>| async {
                unreachable!("nothing is sent");
                #[allow(unreachable_code)]
                Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::new())))
            }))
            .unwrap();
        assert!(tokens
            .revoke(&"t".into(), None)
            .await
            .unwrap_err()
            .is_config());
    }
}
