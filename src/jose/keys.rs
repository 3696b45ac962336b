//! Signing keys and compact JWS (feature `jose`), for DPoP proofs and
//! `private_key_jwt` client assertions.
//!
//! The signatures come from RustCrypto: `p256` (ES256, RFC 6979 deterministic
//! ECDSA) and `ed25519-dalek` (EdDSA). What is written here is only the JWS
//! compact serialisation (RFC 7515 §7.1: base64url JSON, a dot, base64url
//! JSON, a dot, base64url signature) and the RFC 7638 thumbprint: no
//! cryptography of our own. RS256 is not offered: the `rsa` crate that fits
//! these digests is not released yet.
//!
//! ```
//! use tower_client_auth::oauth2::PrivateKey;
//!
//! let key = PrivateKey::generate_es256()?;
//! assert_eq!(key.algorithm(), "ES256");
//! assert_eq!(key.public_jwk()["kty"], "EC");
//! assert_eq!(key.thumbprint().len(), 43); // base64url of a SHA-256
//! # Ok::<_, tower_client_auth::Error>(())
//! ```

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::error::Error;

/// A private key that signs JWTs: ES256 (P-256) or EdDSA (Ed25519). Cheap to
/// clone; `Debug` shows the algorithm and the thumbprint, never the key.
///
/// ```
/// use tower_client_auth::oauth2::PrivateKey;
///
/// let key = PrivateKey::generate_ed25519()?.with_kid("2026-11");
/// assert_eq!(key.algorithm(), "EdDSA");
/// assert_eq!(key.public_jwk()["crv"], "Ed25519"); // register this with the server
/// assert!(!format!("{key:?}").contains("\"d\""));
/// # Ok::<_, tower_client_auth::Error>(())
/// ```
#[derive(Clone)]
pub struct PrivateKey {
    inner: Arc<Inner>,
}

struct Inner {
    key: Kind,
    /// The same key in ring, which signs with the platform's best code
    /// (assembly P-256 and Ed25519, about three times the pure-Rust speed):
    /// what every signature uses. `None` only if ring refused the key.
    fast: Option<Fast>,
    kid: Option<String>,
    /// The public JWK, computed once.
    jwk: serde_json::Value,
    thumbprint: String,
}

enum Kind {
    Es256(p256::ecdsa::SigningKey),
    EdDsa(ed25519_dalek::SigningKey),
}

enum Fast {
    Es256(ring::signature::EcdsaKeyPair),
    EdDsa(ring::signature::Ed25519KeyPair),
}

impl Fast {
    fn of(key: &Kind) -> Option<Fast> {
        match key {
            Kind::Es256(k) => {
                let public = k.verifying_key().to_sec1_point(false);
                ring::signature::EcdsaKeyPair::from_private_key_and_public_key(
                    &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &k.to_bytes(),
                    public.as_bytes(),
                    &ring::rand::SystemRandom::new(),
                )
                .ok()
                .map(Fast::Es256)
            }
            Kind::EdDsa(k) => ring::signature::Ed25519KeyPair::from_seed_and_public_key(
                &k.to_bytes(),
                k.verifying_key().as_bytes(),
            )
            .ok()
            .map(Fast::EdDsa),
        }
    }
}

impl PrivateKey {
    fn new(key: Kind, kid: Option<String>) -> Self {
        let (jwk, thumbprint) = match &key {
            Kind::Es256(k) => {
                let point = k.verifying_key().to_sec1_point(false);
                let bytes = point.as_bytes();
                // Uncompressed SEC1: 0x04 || X (32) || Y (32).
                ec_p256_jwk(&bytes[1..33], &bytes[33..65])
            }
            Kind::EdDsa(k) => ed25519_jwk(k.verifying_key().as_bytes()),
        };
        PrivateKey {
            inner: Arc::new(Inner {
                fast: Fast::of(&key),
                key,
                kid,
                jwk,
                thumbprint,
            }),
        }
    }

    fn random32() -> Result<[u8; 32], Error> {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).map_err(|_| Error::config("system random source failed"))?;
        Ok(b)
    }

    /// A new random P-256 key (ES256), as DPoP servers universally accept.
    pub fn generate_es256() -> Result<Self, Error> {
        // A random 32-byte string is a valid scalar but with probability
        // about 2^-32; try again in that case.
        for _ in 0..8 {
            let bytes = Self::random32()?;
            if let Ok(k) = p256::ecdsa::SigningKey::from_slice(&bytes) {
                return Ok(Self::new(Kind::Es256(k), None));
            }
        }
        Err(Error::config("could not generate a P-256 key"))
    }

    /// A new random Ed25519 key (EdDSA).
    pub fn generate_ed25519() -> Result<Self, Error> {
        let bytes = Self::random32()?;
        Ok(Self::new(
            Kind::EdDsa(ed25519_dalek::SigningKey::from_bytes(&bytes)),
            None,
        ))
    }

    /// A key from a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`): P-256 or
    /// Ed25519. The error says which were tried, never what the file holds.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, Error> {
        use ed25519_dalek::pkcs8::DecodePrivateKey as _;
        if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_pem(pem) {
            return Ok(Self::new(Kind::Es256(k), None));
        }
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            return Ok(Self::new(Kind::EdDsa(k), None));
        }
        Err(Error::config(
            "not a PKCS#8 PEM private key for P-256 or Ed25519",
        ))
    }

    /// A P-256 key from its 32-byte private scalar (the JWK's `d`, decoded).
    pub fn es256_from_bytes(d: &[u8]) -> Result<Self, Error> {
        p256::ecdsa::SigningKey::from_slice(d)
            .map(|k| Self::new(Kind::Es256(k), None))
            .map_err(|_| Error::config("not a P-256 private key"))
    }

    /// An Ed25519 key from its 32-byte seed (the JWK's `d`, decoded).
    pub fn ed25519_from_bytes(d: &[u8]) -> Result<Self, Error> {
        let seed: [u8; 32] = d
            .try_into()
            .map_err(|_| Error::config("an Ed25519 private key is 32 bytes"))?;
        Ok(Self::new(
            Kind::EdDsa(ed25519_dalek::SigningKey::from_bytes(&seed)),
            None,
        ))
    }

    /// The same key with a key id, sent as `kid` in the JWS header of client
    /// assertions (servers with several registered keys use it to pick one).
    #[must_use]
    pub fn with_kid(self, kid: impl Into<String>) -> Self {
        let inner = &self.inner;
        let key = match &inner.key {
            Kind::Es256(k) => Kind::Es256(k.clone()),
            Kind::EdDsa(k) => Kind::EdDsa(k.clone()),
        };
        Self::new(key, Some(kid.into()))
    }

    /// The JWS `alg`: `ES256` or `EdDSA`.
    pub fn algorithm(&self) -> &'static str {
        match self.inner.key {
            Kind::Es256(_) => "ES256",
            Kind::EdDsa(_) => "EdDSA",
        }
    }

    /// The key id, if one was given.
    pub fn kid(&self) -> Option<&str> {
        self.inner.kid.as_deref()
    }

    /// The public key as a JWK (RFC 7517), to register with a server.
    pub fn public_jwk(&self) -> &serde_json::Value {
        &self.inner.jwk
    }

    /// The RFC 7638 JWK SHA-256 thumbprint of the public key (DPoP's `jkt`).
    pub fn thumbprint(&self) -> &str {
        &self.inner.thumbprint
    }

    /// Signs `claims` as a JWT (header `typ` `JWT`, `alg`, and `kid` when
    /// set): an assertion for [`Grant::JwtBearer`](crate::oauth2::Grant::JwtBearer)
    /// when you are the issuer. Set `iss`, `sub`, `aud` and `exp` as the
    /// server expects (RFC 7523 §3).
    ///
    /// ```
    /// use tower_client_auth::oauth2::PrivateKey;
    ///
    /// let key = PrivateKey::generate_es256()?;
    /// let jwt = key.sign_jwt(&serde_json::json!({
    ///     "iss": "my-idp", "sub": "alice", "aud": "https://auth.example.com/token", "exp": 4102444800u64,
    /// }));
    /// assert_eq!(jwt.split('.').count(), 3);
    /// # Ok::<_, tower_client_auth::Error>(())
    /// ```
    pub fn sign_jwt(&self, claims: &serde_json::Value) -> String {
        let mut header = serde_json::Map::new();
        header.insert("typ".into(), "JWT".into());
        if let Some(kid) = self.kid() {
            header.insert("kid".into(), kid.into());
        }
        self.sign(header, claims)
    }

    /// Signs `claims` as a compact JWS with `header` (to which `alg` is added).
    pub(crate) fn sign(
        &self,
        header: serde_json::Map<String, serde_json::Value>,
        claims: &serde_json::Value,
    ) -> String {
        self.sign_with_encoded_header(&self.encode_header(header), claims)
    }

    /// `header` with `alg` added, as the first part of a compact JWS.
    pub(crate) fn encode_header(
        &self,
        mut header: serde_json::Map<String, serde_json::Value>,
    ) -> String {
        header.insert("alg".into(), self.algorithm().into());
        B64.encode(serde_json::Value::Object(header).to_string())
    }

    /// Signs `claims` as a compact JWS whose first part is `encoded_header`
    /// (from [`encode_header`](Self::encode_header)).
    pub(crate) fn sign_with_encoded_header(
        &self,
        encoded_header: &str,
        claims: &serde_json::Value,
    ) -> String {
        self.sign_encoded_claims(encoded_header, claims.to_string().as_bytes())
    }

    /// Signs the claims already serialized as JSON (`claims_json`) as a
    /// compact JWS whose first part is `encoded_header`.
    pub(crate) fn sign_encoded_claims(&self, encoded_header: &str, claims_json: &[u8]) -> String {
        // header . claims . signature (86 characters), in one allocation.
        let mut out = String::with_capacity(encoded_header.len() + claims_json.len() * 4 / 3 + 96);
        out.push_str(encoded_header);
        out.push('.');
        B64.encode_string(claims_json, &mut out);
        let mut fixed = [0u8; 64];
        let signature: &[u8] = match (&self.inner.fast, &self.inner.key) {
            (Some(Fast::Es256(k)), _) => {
                match k.sign(&ring::rand::SystemRandom::new(), out.as_bytes()) {
                    Ok(s) => {
                        fixed.copy_from_slice(s.as_ref());
                        &fixed
                    }
                    // The system's random source failed: the deterministic
                    // signature (RFC 6979) needs none.
                    Err(_) => {
                        use p256::ecdsa::signature::Signer as _;
                        let Kind::Es256(k) = &self.inner.key else {
                            unreachable!("the same key in both")
                        };
                        let s: p256::ecdsa::Signature = k.sign(out.as_bytes());
                        fixed.copy_from_slice(&s.to_bytes());
                        &fixed
                    }
                }
            }
            (Some(Fast::EdDsa(k)), _) => {
                fixed.copy_from_slice(k.sign(out.as_bytes()).as_ref());
                &fixed
            }
            (None, Kind::Es256(k)) => {
                use p256::ecdsa::signature::Signer as _;
                let s: p256::ecdsa::Signature = k.sign(out.as_bytes());
                fixed.copy_from_slice(&s.to_bytes());
                &fixed
            }
            (None, Kind::EdDsa(k)) => {
                use ed25519_dalek::Signer as _;
                fixed.copy_from_slice(&k.sign(out.as_bytes()).to_bytes());
                &fixed
            }
        };
        out.push('.');
        B64.encode_string(signature, &mut out);
        out
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("alg", &self.algorithm())
            .field("kid", &self.inner.kid)
            .field("thumbprint", &self.inner.thumbprint)
            .finish_non_exhaustive()
    }
}

/// The public JWK of a P-256 point and its RFC 7638 thumbprint.
fn ec_p256_jwk(x: &[u8], y: &[u8]) -> (serde_json::Value, String) {
    let (x, y) = (B64.encode(x), B64.encode(y));
    // RFC 7638 §3.2: the required members only, in lexicographic order.
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    (
        serde_json::json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y }),
        B64.encode(Sha256::digest(canonical.as_bytes())),
    )
}

/// The public JWK of an Ed25519 key and its RFC 7638 thumbprint.
fn ed25519_jwk(x: &[u8]) -> (serde_json::Value, String) {
    let x = B64.encode(x);
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    (
        serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "x": x }),
        B64.encode(Sha256::digest(canonical.as_bytes())),
    )
}

/// Seconds since the Unix epoch (for `iat` and `exp`).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A random `jti`: 128 bits, base64url.
pub(crate) fn new_jti() -> Result<String, Error> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|_| Error::config("system random source failed"))?;
    Ok(B64.encode(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> Vec<u8> {
        B64.decode(s).unwrap()
    }

    /// RFC 8037 Appendix A: the Ed25519 key, its thumbprint (A.3) and the
    /// signature of "Example of Ed25519 signing" (A.4; EdDSA is deterministic).
    #[test]
    fn rfc8037_ed25519_vectors() {
        let key =
            PrivateKey::ed25519_from_bytes(&b64("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"))
                .unwrap();
        assert_eq!(
            key.public_jwk()["x"],
            "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        );
        assert_eq!(
            key.thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
        // The JWS of A.4: header {"alg":"EdDSA"} and the payload as bytes.
        use ed25519_dalek::Signer as _;
        let signing_input = format!(
            "{}.{}",
            B64.encode(r#"{"alg":"EdDSA"}"#),
            B64.encode("Example of Ed25519 signing")
        );
        assert_eq!(
            signing_input,
            "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
        );
        let Kind::EdDsa(k) = &key.inner.key else {
            unreachable!()
        };
        let sig = k.sign(signing_input.as_bytes());
        assert_eq!(
            B64.encode(sig.to_bytes()),
            "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
        );
    }

    /// RFC 9449's example key (§4.1 proof header, §6.1): our JWK and
    /// thumbprint code gives the `jkt` the RFC's token examples carry.
    #[test]
    fn rfc9449_example_key_thumbprint() {
        let x = b64("l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs");
        let y = b64("9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA");
        let (jwk, thumbprint) = ec_p256_jwk(&x, &y);
        assert_eq!(thumbprint, "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
        assert_eq!(jwk["x"], "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs");
        assert_eq!(jwk["kty"], "EC");
    }

    #[test]
    fn es256_signatures_verify_and_the_jwk_matches() {
        use p256::ecdsa::signature::Verifier as _;
        let key = PrivateKey::generate_es256().unwrap();
        let jws = key.sign(
            serde_json::Map::from_iter([("typ".to_owned(), "dpop+jwt".into())]),
            &serde_json::json!({"htm": "GET"}),
        );
        let parts: Vec<&str> = jws.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value = serde_json::from_slice(&b64(parts[0])).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["typ"], "dpop+jwt");
        // Rebuild the public key from the JWK alone and verify.
        let jwk = key.public_jwk();
        let mut sec1 = vec![4u8];
        sec1.extend(b64(jwk["x"].as_str().unwrap()));
        sec1.extend(b64(jwk["y"].as_str().unwrap()));
        let public = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
        let sig = p256::ecdsa::Signature::from_slice(&b64(parts[2])).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        public.verify(input.as_bytes(), &sig).unwrap();
        assert!(public.verify(b"tampered", &sig).is_err());
        assert!(
            !format!("{key:?}").contains(&B64.encode(match &key.inner.key {
                Kind::Es256(k) => k.to_bytes().to_vec(),
                Kind::EdDsa(_) => unreachable!(),
            }))
        );
    }

    #[test]
    fn pem_keys_load_and_garbage_is_a_config_error() {
        use p256::pkcs8::EncodePrivateKey as _;
        let Kind::Es256(k) = &PrivateKey::generate_es256().unwrap().inner.key else {
            unreachable!()
        };
        let pem = k.to_pkcs8_pem(Default::default()).unwrap();
        let loaded = PrivateKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(loaded.algorithm(), "ES256");
        let e = PrivateKey::from_pkcs8_pem(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap_err();
        assert!(e.is_config());
    }
}
