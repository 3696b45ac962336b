//! What a token that is a JWT says about its own lifetime: `exp` and `iat`
//! (RFC 7519 §4.1.4, §4.1.6; RFC 9068 §2.2 for access tokens), read from the
//! payload without verifying the signature and without trusting any other
//! claim. A client cannot verify an access token (it is for the resource
//! server), and needs nothing from it but a hint of when to refresh.
//!
//! Anything that is not a compact JWS with a JSON object as header and as
//! payload (an opaque token, a JWE, a malformed JWT) says nothing: the caller
//! keeps the behaviour it has for tokens without a lifetime.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde_json::Value;

use super::MAX_LIFETIME;

/// base64url, with or without padding (some issuers pad).
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Tokens longer than this are not decoded: no real access token or
/// assertion is that large, and decoding is work done for every token.
const MAX_JWT_LEN: usize = 64 * 1024;

/// The time claims of a JWT, in seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TimeClaims {
    pub(crate) exp: Option<f64>,
    pub(crate) iat: Option<f64>,
}

/// What a JWT's claims say about how long it has left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum JwtLifetime {
    /// Not a JWT, or a JWT without a usable `exp`: nothing is known.
    Unknown,
    /// `exp` has passed (or `iat` is not before `exp`).
    Expired,
    /// Time left before `exp`, at most `exp - iat` when `iat` is given (so a
    /// clock behind the issuer's does not stretch the token's life), at most
    /// [`MAX_LIFETIME`].
    Left(Duration),
}

/// `exp` and `iat` of `token` if it is a compact JWS whose header and
/// payload are JSON objects; `None` otherwise. A time claim that is not a
/// finite, non-negative number is taken as absent.
pub(crate) fn time_claims(token: &str) -> Option<TimeClaims> {
    if token.len() > MAX_JWT_LEN {
        return None;
    }
    let mut parts = token.split('.');
    let (header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || header.is_empty() || payload.is_empty() {
        return None;
    }
    let object = |part: &str| match serde_json::from_slice::<Value>(&B64.decode(part).ok()?) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    };
    object(header)?;
    let claims = object(payload)?;
    let time = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_f64)
            .filter(|t| t.is_finite() && *t >= 0.0)
    };
    Some(TimeClaims {
        exp: time("exp"),
        iat: time("iat"),
    })
}

/// How long `token` has left at `now`, by its own claims.
pub(crate) fn lifetime(token: &str, now: SystemTime) -> JwtLifetime {
    let Some(TimeClaims {
        exp: Some(exp),
        iat,
    }) = time_claims(token)
    else {
        return JwtLifetime::Unknown;
    };
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut left = exp - now;
    if let Some(iat) = iat {
        left = left.min(exp - iat);
    }
    // Under a millisecond is as good as gone.
    if left < 0.001 {
        return JwtLifetime::Expired;
    }
    JwtLifetime::Left(Duration::from_secs_f64(
        left.min(MAX_LIFETIME.as_secs_f64()),
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An unsigned compact JWS with `claims` as its payload.
    pub(crate) fn jwt(claims: &str) -> String {
        let b64 = |s: &str| B64.encode(s);
        format!(
            "{}.{}.c2lnbmF0dXJl",
            b64(r#"{"alg":"ES256","typ":"at+jwt"}"#),
            b64(claims)
        )
    }

    const NOW: u64 = 1_800_000_000;

    fn at_now(token: &str) -> JwtLifetime {
        lifetime(token, UNIX_EPOCH + Duration::from_secs(NOW))
    }

    #[test]
    fn lifetimes_by_claims_table() {
        let s = Duration::from_secs;
        let table: Vec<(String, JwtLifetime)> = vec![
            // exp alone: time left.
            (
                jwt(&format!(r#"{{"exp":{}}}"#, NOW + 600)),
                JwtLifetime::Left(s(600)),
            ),
            // exp and iat agreeing with our clock.
            (
                jwt(&format!(r#"{{"iat":{NOW},"exp":{}}}"#, NOW + 300)),
                JwtLifetime::Left(s(300)),
            ),
            // iat in our future (our clock is behind): exp - iat, not exp - now.
            (
                jwt(&format!(r#"{{"iat":{},"exp":{}}}"#, NOW + 100, NOW + 400)),
                JwtLifetime::Left(s(300)),
            ),
            // exp as a float.
            (
                jwt(&format!(r#"{{"exp":{}.5}}"#, NOW + 10)),
                JwtLifetime::Left(Duration::from_millis(10_500)),
            ),
            // exp in the past, or now.
            (
                jwt(&format!(r#"{{"exp":{}}}"#, NOW - 1)),
                JwtLifetime::Expired,
            ),
            (jwt(&format!(r#"{{"exp":{NOW}}}"#)), JwtLifetime::Expired),
            // iat after exp: nonsense, as good as expired.
            (
                jwt(&format!(r#"{{"iat":{},"exp":{}}}"#, NOW + 900, NOW + 600)),
                JwtLifetime::Expired,
            ),
            // Far future: clamped.
            (
                jwt(r#"{"exp":99999999999999}"#),
                JwtLifetime::Left(MAX_LIFETIME),
            ),
            // No exp, or an unusable one.
            (jwt(r#"{"sub":"me"}"#), JwtLifetime::Unknown),
            (jwt(r#"{"exp":"1800000600"}"#), JwtLifetime::Unknown),
            (jwt(r#"{"exp":-5}"#), JwtLifetime::Unknown),
            (jwt(r#"{"exp":null}"#), JwtLifetime::Unknown),
            // Not JSON objects.
            (jwt("[1,2]"), JwtLifetime::Unknown),
            (jwt("not json"), JwtLifetime::Unknown),
            // Opaque tokens and malformed JWTs.
            ("2YotnFZFEjr1zCsicMWpAA".to_owned(), JwtLifetime::Unknown),
            ("a.b".to_owned(), JwtLifetime::Unknown),
            ("a.b.c.d".to_owned(), JwtLifetime::Unknown),
            ("..".to_owned(), JwtLifetime::Unknown),
            ("!!!.###.$$$".to_owned(), JwtLifetime::Unknown),
            (
                format!("e30.{}.", B64.encode(r#"{"exp":1}"#)),
                JwtLifetime::Expired,
            ),
            // Five parts: a JWE, whose payload is encrypted.
            (format!("{}.x.y.z.w", jwt("{}")), JwtLifetime::Unknown),
        ];
        for (token, expected) in table {
            assert_eq!(at_now(&token), expected, "{token}");
        }
    }

    #[test]
    fn padded_base64_is_read_and_huge_tokens_are_not() {
        let padded = format!(
            "{}.{}.sig",
            base64::engine::general_purpose::URL_SAFE.encode("{}"),
            base64::engine::general_purpose::URL_SAFE.encode(format!(r#"{{"exp":{}}}"#, NOW + 60))
        );
        assert_eq!(at_now(&padded), JwtLifetime::Left(Duration::from_secs(60)));
        let huge = jwt(&format!(
            r#"{{"exp":{},"pad":"{}"}}"#,
            NOW + 60,
            "x".repeat(MAX_JWT_LEN)
        ));
        assert_eq!(at_now(&huge), JwtLifetime::Unknown);
    }
}

/// The lifetime a credential gives a token, end to end through the cache.
#[cfg(test)]
mod cache_tests {
    use std::time::Duration;

    use futures_util::future::BoxFuture;

    use super::tests::jwt;
    use crate::token::{ManagedOptions, Token, TokenSource};
    use crate::{Credential, Error};

    struct Fixed(String, Option<Duration>);

    impl TokenSource for Fixed {
        fn fetch(&self, _: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>> {
            let token = Token::bearer(self.0.clone(), self.1);
            Box::pin(async move { Ok(token) })
        }
    }

    fn unix_now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    /// The lifetime the credential gave the token it fetched: `Err` if it
    /// refused the token.
    async fn lifetime_of(
        token: String,
        expires_in: Option<Duration>,
        options: ManagedOptions,
    ) -> Result<Option<Duration>, Error> {
        let credential = Credential::builder()
            .origin("https://api.example.com")
            .token_source_with(Fixed(token, expires_in), options)
            .build()?;
        let token = credential.token().await?;
        Ok(token.expires_in())
    }

    #[tokio::test]
    async fn precedence_expires_in_then_exp_capped_then_default() {
        let s = Duration::from_secs;
        let in_10_min = jwt(&format!(r#"{{"exp":{}}}"#, unix_now() + 600));
        let near = |got: Option<Duration>, want: u64| {
            let got = got.expect("a lifetime").as_secs_f64();
            assert!((got - want as f64).abs() < 3.0, "{got} vs {want}");
        };
        // 1. expires_in wins.
        let got = lifetime_of(in_10_min.clone(), Some(s(60)), ManagedOptions::new()).await;
        assert_eq!(got.unwrap(), Some(s(60)));
        // 2. exp, with no default.
        near(
            lifetime_of(in_10_min.clone(), None, ManagedOptions::new())
                .await
                .unwrap(),
            600,
        );
        // 2. exp, capped by the default.
        let capped = ManagedOptions::new().default_lifetime(Some(s(120)));
        assert_eq!(
            lifetime_of(in_10_min.clone(), None, capped.clone())
                .await
                .unwrap(),
            Some(s(120))
        );
        // exp shorter than the default: exp.
        let long = ManagedOptions::new().default_lifetime(Some(s(3600)));
        near(
            lifetime_of(in_10_min.clone(), None, long).await.unwrap(),
            600,
        );
        // Turned off: the default, or nothing.
        let off = ManagedOptions::new().jwt_expiry(false);
        assert_eq!(
            lifetime_of(in_10_min.clone(), None, off.clone())
                .await
                .unwrap(),
            None
        );
        let off_default = off.default_lifetime(Some(s(3600)));
        assert_eq!(
            lifetime_of(in_10_min, None, off_default).await.unwrap(),
            Some(s(3600))
        );
        // 3./4. No exp, a malformed JWT, an opaque token: unchanged.
        for token in [
            jwt(r#"{"sub":"me"}"#),
            "a.b.c".to_owned(),
            "opaque-token".to_owned(),
        ] {
            assert_eq!(
                lifetime_of(token.clone(), None, ManagedOptions::new())
                    .await
                    .unwrap(),
                None
            );
            assert_eq!(
                lifetime_of(token, None, capped.clone()).await.unwrap(),
                Some(s(120))
            );
        }
    }

    #[tokio::test]
    async fn a_jwt_already_expired_is_refused() {
        let expired = jwt(&format!(r#"{{"exp":{}}}"#, unix_now() - 30));
        let err = lifetime_of(expired.clone(), None, ManagedOptions::new())
            .await
            .unwrap_err();
        assert!(err.is_invalid_response() && !err.is_transient(), "{err}");
        assert!(!err.to_string().contains(&expired));
        // With expires_in the server's word stands, as before.
        let ok = lifetime_of(
            expired,
            Some(Duration::from_secs(60)),
            ManagedOptions::new(),
        )
        .await;
        assert_eq!(ok.unwrap(), Some(Duration::from_secs(60)));
    }
}
