//! The authorization code flow's front half: the authorization URL with `state`
//! and PKCE (RFC 7636), and the check of the callback.

use std::fmt;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::error::{Error, Kind};

/// A PKCE code verifier (RFC 7636 §4.1): 43 to 128 characters of
/// `[A-Za-z0-9-._~]`.
///
/// ```
/// use tower_client_auth::oauth2::PkceVerifier;
/// use tower_client_auth::secrecy::ExposeSecret;
///
/// // The example of RFC 7636, appendix B:
/// let verifier = PkceVerifier::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")?;
/// assert_eq!(verifier.challenge_s256(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
///
/// let fresh = PkceVerifier::generate()?;
/// assert_eq!(fresh.secret().expose_secret().len(), 43);
/// assert!(PkceVerifier::new("too-short").is_err());
/// # Ok::<(), tower_client_auth::Error>(())
/// ```
#[derive(Clone)]
pub struct PkceVerifier(SecretString);

impl PkceVerifier {
    /// A new verifier from 32 random bytes (43 characters).
    pub fn generate() -> Result<Self, Error> {
        Ok(PkceVerifier(random_urlsafe(32)?.into()))
    }

    /// A verifier you already have; checked for length and characters.
    pub fn new(verifier: impl Into<SecretString>) -> Result<Self, Error> {
        let verifier = verifier.into();
        let v = verifier.expose_secret();
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~');
        if !(43..=128).contains(&v.len()) || !v.chars().all(ok_char) {
            return Err(Error::config(
                "PKCE verifier must be 43 to 128 characters of [A-Za-z0-9-._~]",
            ));
        }
        Ok(PkceVerifier(verifier))
    }

    /// The S256 challenge: `BASE64URL(SHA256(verifier))` without padding.
    pub fn challenge_s256(&self) -> String {
        let digest = Sha256::digest(self.0.expose_secret().as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    }

    /// The verifier, to send with the code exchange.
    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

impl fmt::Debug for PkceVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PkceVerifier([redacted])")
    }
}

/// How the PKCE challenge is derived.
///
/// ```
/// use tower_client_auth::oauth2::{AuthorizationUrl, PkceMethod};
///
/// // Only for a server that cannot do S256:
/// let request = AuthorizationUrl::new("https://auth.example.com/authorize", "my-client", "https://my.app/cb")
///     .pkce(Some(PkceMethod::Plain))
///     .build()?;
/// assert!(request.url().contains("code_challenge_method=plain"));
/// # Ok::<(), tower_client_auth::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PkceMethod {
    /// SHA-256 (the default, and the only one to use when the server supports it).
    S256,
    /// The verifier itself: only for servers that cannot do S256.
    Plain,
}

/// Builds the URL the user's browser is sent to, with a fresh `state` and PKCE.
///
/// ```
/// use tower_client_auth::oauth2::AuthorizationUrl;
///
/// let request = AuthorizationUrl::new(
///     "https://service.agrello.org/identity/auth/oauth/authorize",
///     "my-client-id",
///     "https://my.app/callback",
/// )
/// .scope("profile")
/// .build()?;
/// assert!(request.url().contains("response_type=code"));
/// assert!(request.url().contains("code_challenge_method=S256"));
/// // Later, on the callback `?code=...&state=...`:
/// let callback = format!("code=abc&state={}", request.state());
/// let code = request.verify_callback(&callback)?;
/// # let _ = code;
/// # Ok::<(), tower_client_auth::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct AuthorizationUrl {
    endpoint: String,
    client_id: String,
    redirect_uri: String,
    scopes: Vec<String>,
    pkce: Option<PkceMethod>,
    extra: Vec<(String, String)>,
}

impl AuthorizationUrl {
    /// For the authorization endpoint, a client id and the redirect URI.
    pub fn new(
        endpoint: impl Into<String>,
        client_id: impl Into<String>,
        redirect_uri: impl Into<String>,
    ) -> Self {
        AuthorizationUrl {
            endpoint: endpoint.into(),
            client_id: client_id.into(),
            redirect_uri: redirect_uri.into(),
            scopes: Vec::new(),
            pkce: Some(PkceMethod::S256),
            extra: Vec::new(),
        }
    }

    /// Adds a scope.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }

    /// The PKCE method, or `None` to leave PKCE out (default S256).
    pub fn pkce(mut self, method: Option<PkceMethod>) -> Self {
        self.pkce = method;
        self
    }

    /// Rich authorization request (RFC 9396): `details` (a JSON array of
    /// objects, each with a `type`) as the `authorization_details`
    /// parameter. The granted details come back on the token
    /// ([`Token::authorization_details`](crate::token::Token::authorization_details)).
    ///
    /// ```
    /// use tower_client_auth::oauth2::AuthorizationUrl;
    ///
    /// let request = AuthorizationUrl::new("https://as.example/authorize", "app", "https://app/cb")
    ///     .authorization_details(serde_json::json!([
    ///         {"type": "payment_initiation", "instructedAmount": {"currency": "EUR", "amount": "12.00"}}
    ///     ]))
    ///     .build()?;
    /// assert!(request.url().contains("&authorization_details=%5B%7B%22"));
    /// # Ok::<(), tower_client_auth::Error>(())
    /// ```
    pub fn authorization_details(self, details: serde_json::Value) -> Self {
        self.param("authorization_details", details.to_string())
    }

    /// Adds another query parameter.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.push((name.into(), value.into()));
        self
    }

    /// Makes the URL with a new random `state` (and verifier).
    pub fn build(self) -> Result<AuthorizationRequest, Error> {
        let state = random_urlsafe(16)?;
        let verifier = match self.pkce {
            Some(_) => Some(PkceVerifier::generate()?),
            None => None,
        };
        let mut params: Vec<(String, String)> = vec![
            ("response_type".into(), "code".into()),
            ("client_id".into(), self.client_id.clone()),
            ("redirect_uri".into(), self.redirect_uri.clone()),
        ];
        if !self.scopes.is_empty() {
            params.push(("scope".into(), self.scopes.join(" ")));
        }
        params.push(("state".into(), state.clone()));
        if let (Some(method), Some(v)) = (self.pkce, &verifier) {
            let (challenge, method) = match method {
                PkceMethod::S256 => (v.challenge_s256(), "S256"),
                PkceMethod::Plain => (v.secret().expose_secret().to_owned(), "plain"),
            };
            params.push(("code_challenge".into(), challenge));
            params.push(("code_challenge_method".into(), method.into()));
        }
        params.extend(self.extra);
        let url = url_with(&self.endpoint, &params)?;
        Ok(AuthorizationRequest {
            url,
            state,
            verifier,
            redirect_uri: self.redirect_uri,
            endpoint: self.endpoint,
            client_id: self.client_id,
            params,
        })
    }
}

/// `endpoint` with `params` added to its query, checked to be a URL.
pub(super) fn url_with(endpoint: &str, params: &[(String, String)]) -> Result<String, Error> {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        ser.append_pair(k, v);
    }
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    let url = format!("{endpoint}{sep}{}", ser.finish());
    url.parse::<http::Uri>()
        .map_err(|_| Error::config("authorization endpoint is not a valid URL"))?;
    Ok(url)
}

/// An authorization request in progress: keep it (server-side, per user) until the
/// callback arrives.
///
/// ```
/// use tower_client_auth::oauth2::AuthorizationUrl;
///
/// let request = AuthorizationUrl::new("https://auth.example.com/authorize", "my-client", "https://my.app/cb")
///     .build()?;
/// // Send the browser to `request.url()`; the callback must bring the same state.
/// let forged = request.verify_callback("code=abc&state=not-ours").unwrap_err();
/// assert!(forged.is_state_mismatch());
/// let code = request.verify_callback(&format!("code=abc&state={}", request.state()))?;
/// // Then: `token_client.exchange_code(code.code, Some(request.redirect_uri()), request.verifier())`.
/// # let _ = code;
/// # Ok::<(), tower_client_auth::Error>(())
/// ```
pub struct AuthorizationRequest {
    pub(super) url: String,
    state: String,
    verifier: Option<PkceVerifier>,
    redirect_uri: String,
    /// The authorization endpoint, the client, and every parameter of the
    /// request: what a pushed or signed request carries instead of the URL.
    pub(super) endpoint: String,
    pub(super) client_id: String,
    pub(super) params: Vec<(String, String)>,
}

/// What the callback gave: the code to exchange.
///
/// ```
/// use tower_client_auth::oauth2::{AuthorizationCode, AuthorizationUrl};
/// use tower_client_auth::secrecy::ExposeSecret;
///
/// let request = AuthorizationUrl::new("https://auth.example.com/authorize", "my-client", "https://my.app/cb")
///     .build()?;
/// let callback = format!("code=the-code&state={}", request.state());
/// let code: AuthorizationCode = request.verify_callback(&callback)?;
/// assert_eq!(code.code.expose_secret(), "the-code");
/// assert_eq!(format!("{code:?}"), "AuthorizationCode([redacted])");
/// # Ok::<(), tower_client_auth::Error>(())
/// ```
#[derive(Clone)]
pub struct AuthorizationCode {
    /// The authorization code.
    pub code: SecretString,
}

impl fmt::Debug for AuthorizationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthorizationCode([redacted])")
    }
}

impl AuthorizationRequest {
    /// The same request (state, verifier, redirect URI) carried by `params`
    /// instead: a request object, or a pushed request's `request_uri`.
    pub(super) fn carried_by(mut self, params: Vec<(String, String)>) -> Result<Self, Error> {
        self.url = url_with(&self.endpoint, &params)?;
        self.params = params;
        Ok(self)
    }

    /// The URL to send the browser to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `state` value sent.
    pub fn state(&self) -> &str {
        &self.state
    }

    /// The PKCE verifier, for the code exchange.
    pub fn verifier(&self) -> Option<&PkceVerifier> {
        self.verifier.as_ref()
    }

    /// The redirect URI, for the code exchange.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Checks the callback's query string: `state` must match (compared in constant
    /// time), an `error` is returned typed, and the `code` is handed back.
    pub fn verify_callback(&self, query: &str) -> Result<AuthorizationCode, Error> {
        let mut code = None;
        let mut state = None;
        let mut error = None;
        let mut description = None;
        for (k, v) in form_urlencoded::parse(query.trim_start_matches('?').as_bytes()) {
            match &*k {
                "code" => code = Some(v.into_owned()),
                "state" => state = Some(v.into_owned()),
                "error" => error = Some(v.into_owned()),
                "error_description" => description = Some(v.into_owned()),
                _ => {}
            }
        }
        let matches = state
            .as_deref()
            .is_some_and(|s| constant_time_eq(s.as_bytes(), self.state.as_bytes()));
        if !matches {
            return Err(Error::new(Kind::StateMismatch));
        }
        if let Some(code) = error {
            return Err(Error::new(Kind::OAuth2(crate::error::OAuth2Error {
                code,
                description,
                uri: None,
                status: http::StatusCode::OK,
                retry_after: None,
            })));
        }
        match code {
            Some(c) if !c.is_empty() => Ok(AuthorizationCode { code: c.into() }),
            _ => Err(Error::invalid_response("callback has no code")),
        }
    }
}

impl fmt::Debug for AuthorizationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationRequest")
            .field("redirect_uri", &self.redirect_uri)
            .field("state", &"[redacted]")
            .field("verifier", &self.verifier)
            .finish()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_urlsafe(bytes: usize) -> Result<String, Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|_| Error::config("system random source failed"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checklist_12_rfc7636_appendix_b() {
        let v = PkceVerifier::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap();
        assert_eq!(
            v.challenge_s256(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn checklist_12_verifier_rules() {
        assert!(PkceVerifier::new("a".repeat(42)).is_err());
        assert!(PkceVerifier::new("a".repeat(43)).is_ok());
        assert!(PkceVerifier::new("a".repeat(128)).is_ok());
        assert!(PkceVerifier::new("a".repeat(129)).is_err());
        assert!(PkceVerifier::new(format!("{}+", "a".repeat(43))).is_err());
        let g = PkceVerifier::generate().unwrap();
        assert_eq!(g.secret().expose_secret().len(), 43);
        assert!(PkceVerifier::new(g.secret().expose_secret().to_owned()).is_ok());
    }

    #[test]
    fn checklist_12_state_checked_on_callback() {
        let req = AuthorizationUrl::new("https://as.example/authorize", "cid", "https://app/cb")
            .scope("a")
            .scope("b")
            .build()
            .unwrap();
        assert!(req.url().starts_with("https://as.example/authorize?response_type=code&client_id=cid&redirect_uri=https%3A%2F%2Fapp%2Fcb&scope=a+b&state="));
        let ok = format!("code=xyz&state={}", req.state());
        assert!(req.verify_callback(&ok).is_ok());
        assert!(req
            .verify_callback("code=xyz&state=forged")
            .unwrap_err()
            .is_state_mismatch());
        assert!(req
            .verify_callback("code=xyz")
            .unwrap_err()
            .is_state_mismatch());
        let denied = format!("error=access_denied&state={}", req.state());
        assert_eq!(
            req.verify_callback(&denied).unwrap_err().oauth2_code(),
            Some("access_denied")
        );
        let other = AuthorizationUrl::new("https://as.example/authorize", "cid", "https://app/cb")
            .build()
            .unwrap();
        assert_ne!(other.state(), req.state());
    }
}
