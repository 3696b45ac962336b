//! Origins (scheme, host, port): where a credential may be sent.
//!
//! ```
//! use tower_client_auth::Origin;
//!
//! let api = Origin::parse("https://api.example.com")?;
//! assert!(api.matches(&"https://api.example.com:443/v1?q=1".parse().unwrap()));
//! assert!(!api.matches(&"https://api.example.com.evil.net/".parse().unwrap()));
//! // Plain http only to loopback, unless allowed explicitly.
//! assert!(Origin::parse("http://api.example.com").is_err());
//! assert!(Origin::parse("http://127.0.0.1:8080").is_ok());
//! # Ok::<(), tower_client_auth::Error>(())
//! ```

use std::fmt;

use http::uri::{Scheme, Uri};

use crate::error::Error;

/// An origin in the sense of RFC 6454: scheme, host and port.
///
/// A credential is stamped only on requests whose URI has the same origin as one
/// of the credential's origins. Host names compare case-insensitively and an
/// omitted port means the scheme's default, so `https://API.example.com` and
/// `https://api.example.com:443/v1` are the same origin.
///
/// ```
/// use tower_client_auth::Origin;
///
/// let origin = Origin::parse("https://API.example.com/v1")?;
/// assert_eq!((origin.host(), origin.port()), ("api.example.com", 443));
/// assert_eq!(origin.to_string(), "https://api.example.com:443");
/// assert!(origin.matches(&"https://api.example.com:443/users".parse().unwrap()));
/// assert!(!origin.matches(&"http://api.example.com/users".parse().unwrap()));
/// assert!(!origin.matches(&"https://api.example.com:8443/users".parse().unwrap()));
/// # Ok::<(), tower_client_auth::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Origin {
    https: bool,
    host: Box<str>,
    port: u16,
    /// `host:port`, and `host` alone when the port is the scheme's default: the
    /// authority strings a matching request can carry, compared without parsing.
    authority: Box<str>,
    default_port: bool,
}

impl Origin {
    /// Parses an origin from a URL such as `https://api.example.com` (a path, if
    /// any, is ignored). Plain `http://` is refused unless the host is loopback;
    /// use [`Origin::parse_allow_http`] to allow it anyway.
    pub fn parse(url: &str) -> Result<Origin, Error> {
        let origin = Origin::parse_allow_http(url)?;
        if !origin.https && !origin.is_loopback() {
            return Err(Error::config(format!(
                "refusing to send credentials over plain http to {origin}: \
                 use https, or allow it explicitly"
            )));
        }
        Ok(origin)
    }

    /// Like [`Origin::parse`], but accepts plain `http://` to any host.
    pub fn parse_allow_http(url: &str) -> Result<Origin, Error> {
        let uri: Uri = url
            .parse()
            .map_err(|_| Error::config("origin is not a valid absolute URL"))?;
        Origin::from_uri(&uri).ok_or_else(|| {
            Error::config("origin must be an absolute http:// or https:// URL with a host")
        })
    }

    /// The origin of an absolute URI, or `None` for a relative one or another scheme.
    pub fn from_uri(uri: &Uri) -> Option<Origin> {
        let https = match uri.scheme_str()? {
            s if s.eq_ignore_ascii_case("https") => true,
            s if s.eq_ignore_ascii_case("http") => false,
            _ => return None,
        };
        let host = uri.host()?;
        if host.is_empty() {
            return None;
        }
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let host = host.to_ascii_lowercase();
        Some(Origin {
            https,
            authority: format!("{host}:{port}").into_boxed_str(),
            default_port: port == if https { 443 } else { 80 },
            host: host.into_boxed_str(),
            port,
        })
    }

    /// Whether `uri` is at this origin. Called for every request: no allocation,
    /// and no parsing of the authority (an authority with user info never matches).
    #[inline]
    pub fn matches(&self, uri: &Uri) -> bool {
        let scheme_ok = match uri.scheme() {
            Some(s) if self.https => *s == Scheme::HTTPS,
            Some(s) => *s == Scheme::HTTP,
            None => false,
        };
        if !scheme_ok {
            return false;
        }
        let Some(authority) = uri.authority() else {
            return false;
        };
        let authority = authority.as_str();
        // Exact bytes first (URIs are almost always lower-case): a memcmp, not a
        // per-byte case fold.
        if (self.default_port && authority == &*self.host) || authority == &*self.authority {
            return true;
        }
        authority.eq_ignore_ascii_case(&self.authority)
            || (self.default_port && authority.eq_ignore_ascii_case(&self.host))
    }

    /// Whether the scheme is `https`.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The host, lower-cased (IPv6 addresses keep their brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, explicit or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the host is `localhost` or a loopback address.
    pub fn is_loopback(&self) -> bool {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        if host == "localhost" || host.ends_with(".localhost") {
            return true;
        }
        host.parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Origin({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ports_and_case() {
        let o = Origin::parse("https://API.Example.com").unwrap();
        assert!(o.matches(&"https://api.example.com:443/v1?x=1".parse().unwrap()));
        assert!(o.matches(&"HTTPS://api.EXAMPLE.com/".parse().unwrap()));
        assert!(!o.matches(&"https://api.example.com:8443/".parse().unwrap()));
        assert!(!o.matches(&"http://api.example.com/".parse().unwrap()));
        assert!(!o.matches(&"https://evil.example.com/".parse().unwrap()));
        assert!(!o.matches(&"https://api.example.com.evil.net/".parse().unwrap()));
        assert!(!o.matches(&"/relative".parse().unwrap()));
        assert!(!o.matches(&"https://user@api.example.com/".parse().unwrap()));
        let p = Origin::parse("https://api.example.com:8443").unwrap();
        assert!(p.matches(&"https://api.example.com:8443/x".parse().unwrap()));
        assert!(!p.matches(&"https://api.example.com/x".parse().unwrap()));
        let v6 = Origin::parse("http://[::1]:8080").unwrap();
        assert!(v6.matches(&"http://[::1]:8080/x".parse().unwrap()));
        let h = Origin::parse("http://127.0.0.1").unwrap();
        assert!(h.matches(&"http://127.0.0.1:80/".parse().unwrap()));
        assert!(h.matches(&"http://127.0.0.1/".parse().unwrap()));
    }

    #[test]
    fn plain_http_needs_loopback_or_opt_in() {
        assert!(Origin::parse("http://127.0.0.1:8080").is_ok());
        assert!(Origin::parse("http://localhost:8080").is_ok());
        assert!(Origin::parse("http://[::1]:8080").is_ok());
        let err = Origin::parse("http://api.example.com").unwrap_err();
        assert!(err.is_config());
        assert!(Origin::parse_allow_http("http://api.example.com").is_ok());
    }

    #[test]
    fn bad_origins_are_typed_errors() {
        for bad in [
            "",
            "api.example.com",
            "ftp://x.example",
            "https://",
            "not a url",
        ] {
            let err = Origin::parse(bad).unwrap_err();
            assert!(err.is_config(), "{bad}");
        }
    }
}
