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
//! // No user information (`user:password@`): it would be a secret in a URL.
//! assert!(Origin::parse("https://user:password@api.example.com").is_err());
//! # Ok::<(), tower_client_auth::Error>(())
//! ```
//!
//! **One rule for every URL a credential goes to.** The API origins of a
//! credential, the token URL, the device authorization endpoint and the issuer
//! a [`Discovery`](crate::oauth2::Discovery) fetches metadata from are all
//! checked the same way when they are given: `https://`, or plain `http://` to
//! a loopback host, or plain `http://` anywhere when `allow_http` was set
//! explicitly; and never with user information, which is refused with a
//! configuration error that does not repeat it.

use std::fmt;

use http::uri::Uri;

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

/// Whether `a` and `b` are the same bytes. A host name is almost always
/// 8 to 16 bytes: two overlapping words compare it without a call to
/// `memcmp` (this runs for every request).
#[inline(always)]
fn same_bytes(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let len = a.len();
    if len != b.len() {
        return false;
    }
    if (8..=16).contains(&len) {
        let word = |s: &[u8], at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&s[at..at + 8]);
            u64::from_ne_bytes(w)
        };
        return word(a, 0) == word(b, 0) && word(a, len - 8) == word(b, len - 8);
    }
    a == b
}

impl Origin {
    /// Parses an origin from a URL such as `https://api.example.com` (a path, if
    /// any, is ignored). Plain `http://` is refused unless the host is loopback;
    /// use [`Origin::parse_allow_http`] to allow it anyway. User information
    /// (`https://user:password@host`) is refused.
    pub fn parse(url: &str) -> Result<Origin, Error> {
        parse_url(url, false, "origin").map(|(_, origin)| origin)
    }

    /// Like [`Origin::parse`], but accepts plain `http://` to any host.
    pub fn parse_allow_http(url: &str) -> Result<Origin, Error> {
        parse_url(url, true, "origin").map(|(_, origin)| origin)
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
    #[inline(always)]
    pub fn matches(&self, uri: &Uri) -> bool {
        // The same test as comparing `Scheme`s: `http` keeps these two as
        // constants, named in lower case, whatever case the URI used.
        let scheme_ok = match uri.scheme_str() {
            // Literals: compared inline, without a call.
            Some(s) if self.https => s == "https",
            Some(s) => s == "http",
            None => false,
        };
        if !scheme_ok {
            return false;
        }
        let Some(authority) = uri.authority() else {
            return false;
        };
        let authority = authority.as_str();
        // Exact bytes first (URIs are almost always lower-case), compared in
        // words where they are short; the case fold only when they differ.
        (self.default_port && same_bytes(authority, &self.host))
            || same_bytes(authority, &self.authority)
            || self.matches_folded(authority)
    }

    #[cold]
    #[inline(never)]
    fn matches_folded(&self, authority: &str) -> bool {
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

/// The one check for every URL the crate sends a credential to (see the
/// [module docs](self)): an absolute `http://` or `https://` URL with a host and
/// no user information, and plain `http://` only to loopback unless
/// `allow_http`. `what` names the URL in errors (`"token URL"`), which never
/// repeat it: it may hold a password.
pub(crate) fn parse_url(url: &str, allow_http: bool, what: &str) -> Result<(Uri, Origin), Error> {
    let invalid = || Error::config(format!("{what} is not a valid absolute URL"));
    let uri: Uri = url.parse().map_err(|_| invalid())?;
    // An `@` before the query is user information, or a password with a `/`
    // in it that moved the rest of the authority into the path.
    let before_query = url.split(['?', '#']).next().unwrap_or("");
    if before_query.contains('@') {
        return Err(Error::config(format!(
            "{what} has user information (user:password@ before the host), which is not \
             allowed in a URL credentials are sent to"
        )));
    }
    let origin = Origin::from_uri(&uri).ok_or_else(|| {
        Error::config(format!(
            "{what} must be an absolute http:// or https:// URL with a host"
        ))
    })?;
    // `http` accepts any port text and then has no port: `host:s3cret` must
    // not be taken for `host` on the default port.
    let authority = uri.authority().map_or("", |a| a.as_str());
    let port_text = authority
        .get(uri.host().map_or(0, str::len)..)
        .unwrap_or("");
    if !port_text.is_empty() && uri.port_u16().is_none() {
        return Err(invalid());
    }
    if !allow_http && !origin.https && !origin.is_loopback() {
        return Err(Error::config(format!(
            "refusing to send credentials over plain http to {origin} ({what}): \
             use https, or allow it explicitly"
        )));
    }
    Ok((uri, origin))
}

/// `url` as it may be shown in a `Debug` before it was checked: any user
/// information replaced with `[redacted]`.
pub(crate) fn redact_user_info(url: &str) -> std::borrow::Cow<'_, str> {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..]
        .find(['?', '#'])
        .map_or(url.len(), |i| start + i);
    // Up to the last `@` before the query, as `parse_url` refuses: a password
    // may hold a `/`.
    match url[start..end].rfind('@') {
        Some(at) => format!("{}[redacted]{}", &url[..start], &url[start + at..]).into(),
        None => url.into(),
    }
}

/// Whether `a` and `b` have the same origin (scheme, host and port), without
/// allocating; false when either is not an absolute http(s) URI.
pub(crate) fn same_origin(a: &Uri, b: &Uri) -> bool {
    let scheme = |u: &Uri| match u.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("https") => Some((true, u.port_u16().unwrap_or(443))),
        Some(s) if s.eq_ignore_ascii_case("http") => Some((false, u.port_u16().unwrap_or(80))),
        _ => None,
    };
    match (scheme(a), scheme(b), a.host(), b.host()) {
        (Some(x), Some(y), Some(ha), Some(hb)) => x == y && ha.eq_ignore_ascii_case(hb),
        _ => false,
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

/// `scheme://host[:port]/path` of `url`: no user information, query or
/// fragment, so it is fit for a span, an event or a metric label.
#[cfg(feature = "oauth2")]
pub(crate) fn describe_url(url: &http::Uri) -> String {
    let host = url.host().unwrap_or("");
    match url.port_u16() {
        Some(port) => format!(
            "{}://{host}:{port}{}",
            url.scheme_str().unwrap_or("https"),
            url.path()
        ),
        None => format!(
            "{}://{host}{}",
            url.scheme_str().unwrap_or("https"),
            url.path()
        ),
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
    fn user_information_is_refused_without_repeating_it() {
        for url in [
            "https://user:s3cret@api.example.com",
            "https://user@api.example.com/v1",
            "http://user:s3cret@127.0.0.1:8080/",
            "https://user:s3/cret@api.example.com/",
            "https://user:443/s3cret@api.example.com/",
        ] {
            let err = Origin::parse_allow_http(url).unwrap_err();
            assert!(err.is_config(), "{url}");
            assert!(!format!("{err} {err:?}").contains("s3cret"));
        }
        let err = Origin::parse("https://user:s3cret@api.example.com").unwrap_err();
        assert!(err.to_string().contains("user information"), "{err}");
        // Not a port: not the default port either.
        assert!(Origin::parse("https://api.example.com:s3cret/").is_err());
        assert!(Origin::parse("https://[::1]:8443/").is_ok());
        assert!(Origin::parse("https://[::1]/").is_ok());
        // Up to the last `@` before the query: more than the user information
        // when the path has one (such a URL is refused anyway).
        assert_eq!(
            redact_user_info("https://user:s3cret@api.example.com/a@b?c=d@e"),
            "https://[redacted]@b?c=d@e"
        );
        assert_eq!(
            redact_user_info("https://api.example.com/a?b@c"),
            "https://api.example.com/a?b@c"
        );
        assert_eq!(redact_user_info("not a url"), "not a url");
        assert_eq!(
            redact_user_info("https://user:s3/cret@api.example.com/x"),
            "https://[redacted]@api.example.com/x"
        );
    }

    #[cfg(feature = "jose")]
    #[test]
    fn same_origin_compares_scheme_host_and_port() {
        let u = |s: &str| s.parse::<Uri>().unwrap();
        assert!(same_origin(
            &u("https://API.example.com/a"),
            &u("https://api.example.com:443/b?c")
        ));
        assert!(!same_origin(
            &u("https://api.example.com/"),
            &u("http://api.example.com/")
        ));
        assert!(!same_origin(
            &u("http://127.0.0.1:1/"),
            &u("http://127.0.0.1:2/")
        ));
        assert!(!same_origin(&u("/relative"), &u("/relative")));
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
