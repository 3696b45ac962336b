//! DPoP (RFC 9449, feature `jose`): sender-constrained tokens. The token
//! client proves possession of a key when it asks for a token, the server binds
//! the token to that key (`token_type` `DPoP`), and every request that carries
//! the token carries a fresh proof for its method and URL, hashed to the token
//! (`ath`).
//!
//! Servers may demand a nonce of their choosing in proofs (`DPoP-Nonce`), and
//! change it whenever they like: a request with a stale nonce gets a
//! `use_dpop_nonce` error and is sent once more with the new one. Nonces are
//! kept per origin (the token endpoint's and each API's are separate).
//!
//! ```
//! use tower_client_auth::oauth2::{Dpop, PrivateKey, TokenClient};
//!
//! # fn f(http: tower_client_auth::oauth2::HttpService) -> Result<(), tower_client_auth::Error> {
//! let dpop = Dpop::new(PrivateKey::generate_es256()?);
//! let tokens = TokenClient::builder("https://auth.example.com/token")
//!     .client_id("my-client")
//!     .client_secret("secret")
//!     .dpop(dpop.clone()) // token requests carry proofs; tokens come back bound
//!     .build(http)?;
//! // A credential built on an OAuth2Source of this client sends
//! // `Authorization: DPoP …` with a new `DPoP` proof on every request.
//! # let _ = tokens; Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use http::{HeaderMap, HeaderValue, Method, Uri};
use sha2::{Digest, Sha256};

use super::keys::{new_jti, unix_now, PrivateKey};
use crate::error::Error;

/// The `DPoP` request header.
pub const DPOP: &str = "dpop";
/// The `DPoP-Nonce` response header.
pub const DPOP_NONCE: &str = "dpop-nonce";

/// A DPoP key with the nonces servers gave for it. Cheap to clone; clones
/// share the nonces. Give the same `Dpop` to the token client and nothing
/// else: the credential picks it up from its token source.
///
/// ```
/// use tower_client_auth::oauth2::{Dpop, PrivateKey};
///
/// let dpop = Dpop::new(PrivateKey::generate_es256()?);
/// let uri: http::Uri = "https://api.example.com/v1/items?page=2".parse().unwrap();
/// let proof = dpop.proof(&http::Method::GET, &uri, Some("the-access-token"))?;
/// assert_eq!(proof.to_str().unwrap().split('.').count(), 3); // a compact JWS
/// # Ok::<_, tower_client_auth::Error>(())
/// ```
#[derive(Clone)]
pub struct Dpop {
    inner: Arc<Inner>,
}

struct Inner {
    key: PrivateKey,
    /// The first part of every proof, encoded once: the header with `typ`,
    /// `alg` and `jwk`. Also how the guard knows this key's proofs.
    encoded_header: Box<str>,
    /// Latest nonce per origin (`scheme://host:port`).
    nonces: Mutex<HashMap<String, String>>,
}

impl Dpop {
    /// Proofs signed with `key` (ES256 is what servers universally accept).
    pub fn new(key: PrivateKey) -> Self {
        let header = serde_json::Map::from_iter([
            ("typ".to_owned(), "dpop+jwt".into()),
            ("jwk".to_owned(), key.public_jwk().clone()),
        ]);
        let encoded_header = key.encode_header(header).into_boxed_str();
        Dpop {
            inner: Arc::new(Inner {
                key,
                encoded_header,
                nonces: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The key proofs are signed with.
    pub fn key(&self) -> &PrivateKey {
        &self.inner.key
    }

    /// The key's thumbprint: the `jkt` a bound token's `cnf` names.
    pub fn thumbprint(&self) -> &str {
        self.inner.key.thumbprint()
    }

    /// A proof for a request with `method` to `uri`, for an access token
    /// (`ath`) or for a token request (`None`), with the origin's latest nonce.
    pub fn proof(
        &self,
        method: &Method,
        uri: &Uri,
        access_token: Option<&str>,
    ) -> Result<HeaderValue, Error> {
        // The claims written straight into one buffer: a proof costs its
        // signature and little else (see benches/dpop_speed.rs).
        let mut claims = Vec::with_capacity(256);
        claims.extend_from_slice(br#"{"jti":""#);
        // base64url and digits below need no JSON escaping.
        claims.extend_from_slice(new_jti()?.as_bytes());
        claims.extend_from_slice(br#"","htm":"#);
        push_json_str(&mut claims, method.as_str());
        claims.extend_from_slice(br#","htu":"#);
        push_json_str(&mut claims, &htu(uri));
        claims.extend_from_slice(br#","iat":"#);
        claims.extend_from_slice(unix_now().to_string().as_bytes());
        if let Some(token) = access_token {
            claims.extend_from_slice(br#","ath":""#);
            let mut ath = [0u8; 43];
            let n = B64
                .encode_slice(Sha256::digest(token.as_bytes()), &mut ath)
                .unwrap_or(0);
            claims.extend_from_slice(&ath[..n]);
            claims.push(b'"');
        }
        if let Some(nonce) = self.nonce_for(uri) {
            claims.extend_from_slice(br#","nonce":"#);
            push_json_str(&mut claims, &nonce);
        }
        claims.push(b'}');
        let jws = self
            .inner
            .key
            .sign_encoded_claims(&self.inner.encoded_header, &claims);
        let mut proof = HeaderValue::try_from(jws)
            .map_err(|_| Error::config("DPoP proof is not a header value"))?;
        // It names the token (`ath`) and the URL: kept out of `Debug` like a credential.
        proof.set_sensitive(true);
        Ok(proof)
    }

    /// Whether `value` is a proof signed with this key (its header names
    /// this key): how the guard finds the proofs it must keep from other
    /// origins without touching a proof of someone else's.
    pub(crate) fn is_own_proof(&self, value: &HeaderValue) -> bool {
        let header = self.inner.encoded_header.as_bytes();
        value
            .as_bytes()
            .strip_prefix(header)
            .is_some_and(|rest| rest.first() == Some(&b'.'))
    }

    fn nonce_for(&self, uri: &Uri) -> Option<String> {
        let nonces = self.inner.nonces.lock().unwrap_or_else(|e| e.into_inner());
        // No nonce yet from anywhere (the common case until a server asks):
        // no origin key to build.
        if nonces.is_empty() {
            return None;
        }
        nonces.get(&origin_key(uri)).cloned()
    }

    /// Keeps the `DPoP-Nonce` of a response from `uri`'s origin; returns
    /// whether it was new. `uri` must be where the response came from: after a
    /// redirect, the last hop's URI, not the first request's (the layer
    /// learns it from the [`GuardLayer`](crate::GuardLayer) below it).
    pub fn remember_nonce(&self, uri: &Uri, headers: &HeaderMap) -> bool {
        let Some(nonce) = headers.get(DPOP_NONCE).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        // A nonce is an opaque NQCHAR string (RFC 9449 §8.1); keep what fits.
        if nonce.is_empty() || nonce.len() > 1024 {
            return false;
        }
        let origin = origin_key(uri);
        let mut nonces = self.inner.nonces.lock().unwrap_or_else(|e| e.into_inner());
        if nonces.get(&origin).map(String::as_str) == Some(nonce) {
            return false;
        }
        // Bounded: one entry per origin this credential talks to.
        if nonces.len() >= 64 && !nonces.contains_key(&origin) {
            nonces.clear();
        }
        nonces.insert(origin, nonce.to_owned());
        true
    }
}

/// `s` as a JSON string (quoted, escaped) at the end of `out`.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// `scheme://host:port`, lower-cased, the port explicit: the key nonces are
/// kept under (never user information).
fn origin_key(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
    let default_port = if scheme == "http" { 80 } else { 443 };
    let port = uri.port_u16().unwrap_or(default_port);
    format!("{scheme}://{}:{port}", uri.host().unwrap_or("")).to_ascii_lowercase()
}

/// The proof's `htu`: the request URI without query and fragment (RFC 9449
/// §4.2), and without user information.
fn htu(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("https");
    let host = uri.host().unwrap_or("");
    match uri.port() {
        Some(port) => format!("{scheme}://{host}:{port}{}", uri.path()),
        None => format!("{scheme}://{host}{}", uri.path()),
    }
}

/// Whether a response asks for a (new) nonce: `error="use_dpop_nonce"`, in the
/// JSON body of a token endpoint (checked by the caller) or in a `DPoP`
/// challenge at a resource.
pub(crate) fn asks_for_nonce(headers: &HeaderMap) -> bool {
    headers.contains_key(DPOP_NONCE)
        && headers
            .get_all(http::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(crate::wire::challenge::parse_challenges)
            .any(|c| {
                c.scheme.eq_ignore_ascii_case("dpop") && c.param("error") == Some("use_dpop_nonce")
            })
}

impl fmt::Debug for Dpop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origins = self
            .inner
            .nonces
            .lock()
            .map(|n| n.len())
            .unwrap_or_default();
        f.debug_struct("Dpop")
            .field("key", &self.inner.key)
            .field("origins_with_nonce", &origins)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(part: &str) -> serde_json::Value {
        serde_json::from_slice(&B64.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn proof_claims_and_header() {
        let dpop = Dpop::new(PrivateKey::generate_es256().unwrap());
        let uri: Uri = "https://API.example.com:8443/v1/things?page=2#frag"
            .parse()
            .unwrap();
        let proof = dpop.proof(&Method::POST, &uri, Some("tok")).unwrap();
        let parts: Vec<&str> = proof.to_str().unwrap().split('.').collect();
        let (header, claims) = (decode(parts[0]), decode(parts[1]));
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["jwk"], *dpop.key().public_jwk());
        assert!(header["jwk"].get("d").is_none(), "no private part");
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["htu"], "https://API.example.com:8443/v1/things");
        assert!(claims["iat"].as_u64().unwrap() > 1_700_000_000);
        assert!(claims.get("nonce").is_none());
        // Two proofs never share a jti.
        let again = dpop.proof(&Method::POST, &uri, Some("tok")).unwrap();
        let again = decode(again.to_str().unwrap().split('.').nth(1).unwrap());
        assert_ne!(claims["jti"], again["jti"]);
    }

    /// RFC 9449 §7.1: the `ath` of its example access token.
    #[test]
    fn ath_matches_the_rfc_example() {
        let dpop = Dpop::new(PrivateKey::generate_es256().unwrap());
        let uri: Uri = "https://resource.example.org/protectedresource"
            .parse()
            .unwrap();
        let proof = dpop
            .proof(
                &Method::GET,
                &uri,
                Some("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            )
            .unwrap();
        let claims = decode(proof.to_str().unwrap().split('.').nth(1).unwrap());
        assert_eq!(claims["ath"], "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo");
    }

    #[test]
    fn nonces_are_kept_per_origin() {
        let dpop = Dpop::new(PrivateKey::generate_es256().unwrap());
        let api: Uri = "https://api.example.com/x".parse().unwrap();
        let auth: Uri = "https://auth.example.com/token".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert(DPOP_NONCE, HeaderValue::from_static("n-1"));
        assert!(dpop.remember_nonce(&api, &h));
        assert!(!dpop.remember_nonce(&api, &h), "the same nonce again");
        let claims = |uri: &Uri| {
            let p = dpop.proof(&Method::GET, uri, None).unwrap();
            decode(p.to_str().unwrap().split('.').nth(1).unwrap())
        };
        assert_eq!(claims(&api)["nonce"], "n-1");
        assert!(claims(&auth).get("nonce").is_none());
        h.insert(DPOP_NONCE, HeaderValue::from_static("n-2"));
        assert!(dpop.remember_nonce(&"HTTPS://api.EXAMPLE.com/y".parse().unwrap(), &h));
        assert_eq!(claims(&api)["nonce"], "n-2");
    }

    /// User information never reaches a proof's `htu` nor the nonce map, and
    /// `:443` or none is one origin for nonces.
    #[test]
    fn user_information_is_left_out_of_proofs_and_nonce_keys() {
        let dpop = Dpop::new(PrivateKey::generate_es256().unwrap());
        let uri: Uri = "https://client:PROOF-SECRET@auth.example.com/token?x=1"
            .parse()
            .unwrap();
        let proof = dpop.proof(&Method::POST, &uri, None).unwrap();
        let claims = decode(proof.to_str().unwrap().split('.').nth(1).unwrap());
        assert_eq!(claims["htu"], "https://auth.example.com/token");
        assert!(!proof.to_str().unwrap().contains("PROOF-SECRET"));
        assert!(proof.is_sensitive());
        assert_eq!(origin_key(&uri), "https://auth.example.com:443");
        let mut h = HeaderMap::new();
        h.insert(DPOP_NONCE, HeaderValue::from_static("n-1"));
        assert!(dpop.remember_nonce(&uri, &h));
        let plain: Uri = "https://auth.example.com:443/other".parse().unwrap();
        let claims = decode(
            dpop.proof(&Method::GET, &plain, None)
                .unwrap()
                .to_str()
                .unwrap()
                .split('.')
                .nth(1)
                .unwrap(),
        );
        assert_eq!(claims["nonce"], "n-1");
    }

    #[test]
    fn own_proofs_are_recognised_by_their_key() {
        let dpop = Dpop::new(PrivateKey::generate_es256().unwrap());
        let other = Dpop::new(PrivateKey::generate_es256().unwrap());
        let uri: Uri = "https://api.example.com/x".parse().unwrap();
        let ours = dpop.proof(&Method::GET, &uri, Some("t")).unwrap();
        let theirs = other.proof(&Method::GET, &uri, Some("t")).unwrap();
        assert!(dpop.is_own_proof(&ours));
        assert!(!dpop.is_own_proof(&theirs));
        assert!(!dpop.is_own_proof(&HeaderValue::from_static("not-a-proof")));
        let header = HeaderValue::from_str(&dpop.inner.encoded_header).unwrap();
        assert!(!dpop.is_own_proof(&header), "a header alone is no proof");
    }

    #[test]
    fn use_dpop_nonce_challenges() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#),
        );
        assert!(!asks_for_nonce(&h), "no nonce given");
        h.insert(
            DPOP_NONCE,
            HeaderValue::from_static("eyJ7S_zG.eyJH0-Z.HX4w-7v"),
        );
        assert!(asks_for_nonce(&h));
        h.insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"DPoP error="invalid_token""#),
        );
        assert!(!asks_for_nonce(&h));
    }
}
