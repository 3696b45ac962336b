//! Asymmetric keys for OAuth2 (feature `jose`): ES256 and EdDSA keys and the
//! JWTs they sign ([`PrivateKey`]: `private_key_jwt` client assertions, RFC
//! 7523), and DPoP proofs with their nonces ([`Dpop`], RFC 9449). Below both
//! the token client and the layer, which use them; they know neither.

pub(crate) mod dpop;
pub(crate) mod keys;

pub use dpop::Dpop;
pub use keys::PrivateKey;
