//! Which 401 responses are worth one retry with a newer token, from their
//! `WWW-Authenticate` challenges (parsed by [`crate::wire::challenge`]).
//!
//! A 401 is retried when no challenge names an `error`, or when the error is
//! `invalid_token` (RFC 6750 §3.1). `insufficient_scope` or `invalid_request`
//! will not get better with a new token.

use http::{header, Response, StatusCode};

use crate::wire::challenge::parse_challenges;

/// Whether `response` is a 401 that a newer token may fix.
#[inline(always)]
pub(crate) fn retryable_401<B>(response: &Response<B>) -> bool {
    response.status() == StatusCode::UNAUTHORIZED && no_other_error(response)
}

/// Whether `response` is a 403 that the credential's source says a token
/// asked for differently would fix (it then asks for that token).
#[inline]
pub(crate) fn step_up<B>(
    response: &Response<B>,
    manager: Option<&std::sync::Arc<crate::cache::TokenManager>>,
) -> bool {
    response.status() == StatusCode::FORBIDDEN
        && manager.is_some_and(|m| m.step_up(response.status(), response.headers()))
}

/// Whether no challenge of a 401 names an error other than `invalid_token`.
fn no_other_error<B>(response: &Response<B>) -> bool {
    for value in response.headers().get_all(header::WWW_AUTHENTICATE) {
        // Not visible ASCII: not a challenge we can read; it names no error.
        let Ok(value) = value.to_str() else { continue };
        for challenge in parse_challenges(value) {
            if let Some(code) = challenge.param("error") {
                if code != "invalid_token" {
                    return false;
                }
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r401(values: &[&str]) -> Response<()> {
        let mut b = Response::builder().status(401);
        for v in values {
            b = b.header("www-authenticate", *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn retry_decision() {
        assert!(retryable_401(&r401(&[])));
        assert!(retryable_401(&r401(&[r#"Bearer error="invalid_token""#])));
        assert!(!retryable_401(&r401(&[
            r#"Bearer error="insufficient_scope""#
        ])));
        assert!(!retryable_401(&r401(&[
            r#"Bearer error="invalid_request""#
        ])));
        // `error=` inside a quoted string is not a parameter.
        assert!(retryable_401(&r401(&[
            r#"Bearer realm="api, error=insufficient_scope""#
        ])));
        // Parameter names are case-insensitive.
        assert!(!retryable_401(&r401(&[
            r#"Bearer ERROR="insufficient_scope""#
        ])));
        // Any challenge, in any header line.
        assert!(!retryable_401(&r401(&[
            r#"Basic realm="x""#,
            r#"Bearer realm="y", error="insufficient_scope""#
        ])));
        assert!(!retryable_401(&r401(&[
            r#"Basic realm="x", Bearer error="insufficient_scope""#
        ])));
        // Not a 401.
        let forbidden = Response::builder().status(403).body(()).unwrap();
        assert!(!retryable_401(&forbidden));
    }
}
