//! `Retry-After` (RFC 9110 §10.2.3): how long a server asks a client to wait,
//! read the same way for the token endpoint and for the retry policy.

use std::time::Duration;

use http::HeaderMap;

/// `Retry-After` as seconds or as an HTTP date (RFC 9110 §10.2.3); a date in
/// the past means now.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_as_seconds_or_an_http_date() {
        let mut h = HeaderMap::new();
        let in_90s =
            httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(90));
        h.insert("retry-after", in_90s.parse().unwrap());
        let r = retry_after(&h).unwrap();
        assert!(
            r > Duration::from_secs(85) && r <= Duration::from_secs(90),
            "{r:?}"
        );
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "a past date is now");
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", " 120 ".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(120)));
    }
}
