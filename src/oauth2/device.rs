//! The device authorization grant (RFC 8628): for a client that cannot open a
//! browser (a CLI on a server, a TV), the user approves on another device.
//!
//! [`TokenClient::device_flow`] does it all: asks the device authorization
//! endpoint for a user code, hands it to your callback to show, and polls the
//! token endpoint at the server's `interval`, waiting on
//! `authorization_pending`, slowing down by 5 seconds on `slow_down`, and
//! stopping on `access_denied`, `expired_token` or the code's expiry.
//!
//! ```no_run
//! # async fn f(tokens: tower_client_auth::oauth2::TokenClient) -> Result<(), tower_client_auth::Error> {
//! let token = tokens
//!     .device_flow("https://auth.example.com/device/auth", &["profile"], |auth| {
//!         println!("Go to {} and enter {}", auth.verification_uri(), auth.user_code());
//!     })
//!     .await?;
//! # let _ = token; Ok(()) }
//! ```

use std::fmt;
use std::time::Duration;

use http::StatusCode;
use secrecy::SecretString;
use serde_json::Value;
use tokio::time::Instant;

use super::{Grant, TokenClient};
use crate::error::{Error, Kind, OAuth2Error};
use crate::token::Token;

/// The interval RFC 8628 §3.2 says to use when the server gives none.
pub const DEFAULT_DEVICE_INTERVAL: Duration = Duration::from_secs(5);
/// How much `slow_down` adds to the interval (RFC 8628 §3.5).
const SLOW_DOWN: Duration = Duration::from_secs(5);
/// The longest a transient failure alone stretches the interval to (the
/// server's own interval and `slow_down` are always honoured, however long).
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// An interval beyond this is the server's mistake; it keeps arithmetic sane.
const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// The device authorization endpoint's answer (RFC 8628 §3.2). `Debug` leaves
/// the device code out.
///
/// ```no_run
/// # async fn f(tokens: tower_client_auth::oauth2::TokenClient) -> Result<(), tower_client_auth::Error> {
/// let auth = tokens.device_authorization("https://auth.example.com/device", &[]).await?;
/// println!("Open {} and enter {}", auth.verification_uri(), auth.user_code());
/// let token = tokens.poll_device_token(&auth).await?;
/// # let _ = token; Ok(()) }
/// ```
#[derive(Clone)]
pub struct DeviceAuthorization {
    device_code: SecretString,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: Option<String>,
    expires_in: Duration,
    interval: Duration,
    received_at: Instant,
}

impl DeviceAuthorization {
    /// The code the user enters.
    pub fn user_code(&self) -> &str {
        &self.user_code
    }

    /// Where the user enters it.
    pub fn verification_uri(&self) -> &str {
        &self.verification_uri
    }

    /// The verification URI with the code in it, when the server gives one
    /// (for a QR code).
    pub fn verification_uri_complete(&self) -> Option<&str> {
        self.verification_uri_complete.as_deref()
    }

    /// How long the codes live.
    pub fn expires_in(&self) -> Duration {
        self.expires_in
    }

    /// The polling interval the server asked for.
    pub fn interval(&self) -> Duration {
        self.interval
    }
}

impl fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

pub(crate) fn parse_device_authorization(
    parts: &http::response::Parts,
    body: &[u8],
) -> Result<DeviceAuthorization, Error> {
    let map: Option<serde_json::Map<String, Value>> = serde_json::from_slice(body).ok();
    let is_error = map.as_ref().is_some_and(|m| m.contains_key("error"));
    if is_error || !parts.status.is_success() {
        // The same error shapes as a token endpoint's.
        return match super::response::parse_token_response(parts.status, &parts.headers, body) {
            Err(e) => Err(e),
            Ok(_) => Err(Error::invalid_response("device authorization failed")),
        };
    }
    let map = map.ok_or_else(|| Error::invalid_response("device authorization is not JSON"))?;
    let text = |k: &str| map.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let seconds = |k: &str| match map.get(k) {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    let device_code = text("device_code")
        .ok_or_else(|| Error::invalid_response("device authorization without device_code"))?;
    let user_code = text("user_code")
        .ok_or_else(|| Error::invalid_response("device authorization without user_code"))?;
    // Some servers (Google) say `verification_url`.
    let verification_uri = text("verification_uri")
        .or_else(|| text("verification_url"))
        .ok_or_else(|| Error::invalid_response("device authorization without verification_uri"))?;
    let expires_in = seconds("expires_in")
        .ok_or_else(|| Error::invalid_response("device authorization without expires_in"))?;
    let interval = seconds("interval").map_or(DEFAULT_DEVICE_INTERVAL, Duration::from_secs);
    Ok(DeviceAuthorization {
        device_code: device_code.to_owned().into(),
        user_code: user_code.to_owned(),
        verification_uri: verification_uri.to_owned(),
        verification_uri_complete: text("verification_uri_complete").map(str::to_owned),
        expires_in: Duration::from_secs(expires_in.min(24 * 3600)),
        // Never faster than the server asks (RFC 8628 §3.5), never below 1 s.
        interval: interval.clamp(Duration::from_secs(1), MAX_INTERVAL),
        received_at: Instant::now(),
    })
}

fn expired() -> Error {
    Error::new(Kind::OAuth2(OAuth2Error {
        code: "expired_token".to_owned(),
        description: Some("the device code expired before the user approved".to_owned()),
        uri: None,
        status: StatusCode::BAD_REQUEST,
        retry_after: None,
    }))
}

impl TokenClient {
    /// Polls the token endpoint with `authorization`'s device code until the
    /// user approves (the token), refuses (`access_denied`) or the code
    /// expires (`expired_token`). Waits the server's interval before each
    /// poll, 5 seconds more after each `slow_down`, and twice as long after a
    /// transient failure (up to a minute, or the server's interval if longer).
    pub async fn poll_device_token(
        &self,
        authorization: &DeviceAuthorization,
    ) -> Result<Token, Error> {
        let deadline = authorization.received_at + authorization.expires_in;
        let grant = Grant::DeviceCode {
            device_code: authorization.device_code.clone(),
        };
        let mut interval = authorization.interval;
        loop {
            if Instant::now() + interval >= deadline {
                return Err(expired());
            }
            tokio::time::sleep(interval).await;
            match self.request_token(&grant, &[]).await {
                Ok(token) => return Ok(token),
                Err(e) => match e.oauth2_code() {
                    Some("authorization_pending") => {}
                    Some("slow_down") => interval = (interval + SLOW_DOWN).min(MAX_INTERVAL),
                    _ if e.is_transient() => {
                        interval = (interval * 2).min(MAX_BACKOFF.max(interval));
                    }
                    _ => return Err(e),
                },
            }
        }
    }

    /// The whole device flow: [`device_authorization`](Self::device_authorization),
    /// `show` (print the user code and URI, draw a QR code), then
    /// [`poll_device_token`](Self::poll_device_token).
    pub async fn device_flow(
        &self,
        endpoint: &str,
        scopes: &[&str],
        show: impl FnOnce(&DeviceAuthorization),
    ) -> Result<Token, Error> {
        let authorization = self.device_authorization(endpoint, scopes).await?;
        show(&authorization);
        self.poll_device_token(&authorization).await
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use http::{Request, Response};
    use http_body_util::{BodyExt, Full};

    use super::*;

    fn json(status: u16, body: &str) -> Response<Full<Bytes>> {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap()
    }

    /// When each token request came, and its body.
    type Log = Arc<Mutex<Vec<(Instant, String)>>>;

    /// A device endpoint and a token endpoint answering from `script`, in
    /// order.
    fn server(script: Vec<(u16, &'static str)>) -> (TokenClient, Log) {
        let log: Log = Arc::default();
        let (l, script) = (log.clone(), Arc::new(Mutex::new(script.into_iter())));
        let http = tower::service_fn(move |req: Request<Full<Bytes>>| {
            let (l, script) = (l.clone(), script.clone());
            async move {
                let path = req.uri().path().to_owned();
                let body = req.into_body().collect().await.unwrap().to_bytes();
                let body = String::from_utf8_lossy(&body).into_owned();
                if path == "/device" {
                    assert!(!body.contains("grant_type"), "{body}");
                    return Ok::<_, Infallible>(json(
                        200,
                        r#"{"device_code":"DEV-CODE-SECRET","user_code":"WDJB-MJHT","verification_uri":"https://example.com/device","verification_uri_complete":"https://example.com/device?user_code=WDJB-MJHT","expires_in":60,"interval":2}"#,
                    ));
                }
                l.lock().unwrap().push((Instant::now(), body));
                let (status, text) = script.lock().unwrap().next().unwrap();
                Ok(json(status, text))
            }
        });
        let client = TokenClient::builder("https://auth.example.com/token")
            .client_id("tv")
            .client_auth(super::super::ClientAuth::None)
            .build(http)
            .unwrap();
        (client, log)
    }

    #[tokio::test(start_paused = true)]
    async fn pending_slow_down_then_a_token() {
        let (client, log) = server(vec![
            (400, r#"{"error":"authorization_pending"}"#),
            (400, r#"{"error":"slow_down"}"#),
            (400, r#"{"error":"authorization_pending"}"#),
            (
                200,
                r#"{"access_token":"AT","token_type":"Bearer","expires_in":60}"#,
            ),
        ]);
        let started = Instant::now();
        let mut shown = None;
        let token = client
            .device_flow("https://auth.example.com/device", &[], |a| {
                shown = Some((
                    a.user_code().to_owned(),
                    a.verification_uri_complete().map(str::to_owned),
                ));
                assert!(!format!("{a:?}").contains("DEV-CODE-SECRET"));
            })
            .await
            .unwrap();
        assert_eq!(token.token_type(), "Bearer");
        assert_eq!(shown.unwrap().0, "WDJB-MJHT");
        let log = log.lock().unwrap();
        let at: Vec<u64> = log.iter().map(|(t, _)| (*t - started).as_secs()).collect();
        // Every 2 s, then 7 s after the slow_down.
        assert_eq!(at, vec![2, 4, 11, 18]);
        assert!(log[0]
            .1
            .contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code"));
        assert!(log[0].1.contains("device_code=DEV-CODE-SECRET"));
        assert!(log[0].1.contains("client_id=tv"));
    }

    /// RFC 8693 §2.1's parameters, as sent.
    #[tokio::test]
    async fn token_exchange_parameters() {
        use super::super::{TokenExchange, ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE};
        let (client, log) = server(vec![(
            200,
            r#"{"access_token":"X","token_type":"Bearer","issued_token_type":"urn:ietf:params:oauth:token-type:access_token"}"#,
        )]);
        let grant = Grant::TokenExchange(
            TokenExchange::new("SUBJECT-TOKEN", ACCESS_TOKEN_TYPE)
                .actor("ACTOR-TOKEN", JWT_TOKEN_TYPE)
                .requested_token_type(ACCESS_TOKEN_TYPE)
                .audience("billing")
                .audience("ledger")
                .resource("https://billing.example.com/"),
        );
        assert!(!format!("{grant:?}").contains("SUBJECT-TOKEN"));
        let token = client.request_token(&grant, &["read"]).await.unwrap();
        assert_eq!(
            token.extra()["issued_token_type"],
            "urn:ietf:params:oauth:token-type:access_token"
        );
        let body = log.lock().unwrap()[0].1.clone();
        let params: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let want = [
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", "SUBJECT-TOKEN"),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("actor_token", "ACTOR-TOKEN"),
            ("actor_token_type", JWT_TOKEN_TYPE),
            ("requested_token_type", ACCESS_TOKEN_TYPE),
            ("audience", "billing"),
            ("audience", "ledger"),
            ("resource", "https://billing.example.com/"),
            ("scope", "read"),
            ("client_id", "tv"),
        ];
        for (k, v) in want {
            assert!(
                params.contains(&(k.to_owned(), v.to_owned())),
                "{k}={v} in {params:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_slow_down_adds_five_seconds() {
        let (client, log) = server(
            vec![(400, r#"{"error":"slow_down"}"#); 14]
                .into_iter()
                .chain([(200, r#"{"access_token":"AT","token_type":"Bearer"}"#)])
                .collect(),
        );
        let started = Instant::now();
        // 2 s, then 5 s more after each slow_down: gaps of 7, 12, 17 s.
        let e = client
            .device_flow("https://auth.example.com/device", &[], |_| {})
            .await;
        let log = log.lock().unwrap();
        let at: Vec<u64> = log.iter().map(|(t, _)| (*t - started).as_secs()).collect();
        // The next gap (22 s) would reach the 60 s code's expiry: no poll.
        assert_eq!(at, vec![2, 9, 21, 38]);
        assert_eq!(e.unwrap_err().oauth2_code(), Some("expired_token"));
    }

    #[tokio::test(start_paused = true)]
    async fn denied_and_expired() {
        let (client, _) = server(vec![(400, r#"{"error":"access_denied"}"#)]);
        let e = client
            .device_flow("https://auth.example.com/device", &[], |_| {})
            .await
            .unwrap_err();
        assert_eq!(e.oauth2_code(), Some("access_denied"));

        let (client, log) = server(vec![(400, r#"{"error":"authorization_pending"}"#); 40]);
        let e = client
            .device_flow("https://auth.example.com/device", &[], |_| {})
            .await
            .unwrap_err();
        assert_eq!(e.oauth2_code(), Some("expired_token"));
        // 60 s code, a poll every 2 s: no poll after the code's expiry.
        assert_eq!(log.lock().unwrap().len(), 29);
    }
}
