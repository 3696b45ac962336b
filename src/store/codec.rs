//! What is stored, and how: entries (a token or a "log in again" mark) and
//! the fleet's cool-down record, as JSON, sealed with XChaCha20-Poly1305 when
//! a key is set and bound to the key and the entry's version.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use super::*;
use crate::error::Error;
use crate::token::{Token, Version, MAX_LIFETIME};

/// What an entry holds.
pub(crate) enum Record {
    Token(Token),
    /// The user's refresh token was rejected: no process sends it again, after
    /// any restart, until a new login is stored.
    LoginRequired(String),
}

/// A permanent failure recorded for the whole fleet (see
/// [`TokenStore::set_cooldown`]): what it was, and until when (Unix ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CooldownRecord {
    pub(crate) until_ms: u64,
    /// Permanent failures in a row, this one included: the cool-down doubles.
    pub(crate) count: u32,
    pub(crate) status: Option<u16>,
    pub(crate) code: Option<String>,
    pub(crate) description: Option<String>,
}

const PLAIN_V1: &[u8; 2] = b"p1";
const SEALED_V1: &[u8; 2] = b"x1";
/// Version 1's unsealed "log in again" mark (the user key followed).
const LOGIN_REQUIRED_V1: &[u8; 2] = b"l1";
const PLAIN: &[u8; 2] = b"p2";
const SEALED: &[u8; 2] = b"x2";
/// Tag, epoch; then the JSON, or a nonce and the sealed JSON.
const HEADER: usize = 2 + 8;
const NONCE: usize = 24;

/// Associated data: binds a sealed record to its key, its kind of slot, and
/// (for entries) the version it was written as, so that neither another
/// credential's entry nor an older entry of the same credential passes for it.
fn associated_data(domain: &[u8], key: &StoreKey, version: Version) -> Vec<u8> {
    let mut aad = Vec::with_capacity(domain.len() + key.as_str().len() + 18);
    aad.extend_from_slice(domain);
    aad.push(0);
    aad.extend_from_slice(key.as_str().as_bytes());
    aad.push(0);
    aad.extend_from_slice(&version.epoch.to_le_bytes());
    aad.extend_from_slice(&version.generation.to_le_bytes());
    aad
}

const ENTRY: &[u8] = b"tower-client-auth entry v2";
const COOLDOWN: &[u8] = b"tower-client-auth cooldown v2";

pub(crate) fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().min(u64::MAX as u128) as u64)
}

fn token_json(token: &Token) -> serde_json::Value {
    let now = SystemTime::now();
    let remaining = token
        .expires_at()
        .map(|at| at.saturating_duration_since(Instant::now()));
    serde_json::json!({
        "kind": "token",
        "access_token": token.access_token.expose_secret(),
        "token_type": token.token_type,
        "expires_at_ms": remaining.map(|r| unix_ms(now + r)),
        "refresh_token": token.refresh_token.as_ref().map(|r| r.expose_secret().to_owned()),
        "scope": token.scope,
        "extra": token.extra,
    })
}

fn token_from_json(v: &serde_json::Value) -> Result<Token, Error> {
    let access = v["access_token"]
        .as_str()
        .ok_or_else(|| Error::store_codec("stored token has no access_token"))?;
    let expires_in = match v["expires_at_ms"].as_u64() {
        Some(at) => {
            let now = unix_ms(SystemTime::now());
            Some(Duration::from_millis(at.saturating_sub(now)).min(MAX_LIFETIME))
        }
        None => None,
    };
    Ok(Token {
        access_token: SecretString::from(access.to_owned()),
        token_type: v["token_type"].as_str().unwrap_or("Bearer").to_owned(),
        expires_in,
        received_at: Instant::now(),
        refresh_token: v["refresh_token"]
            .as_str()
            .map(|r| SecretString::from(r.to_owned())),
        scope: v["scope"].as_str().map(str::to_owned),
        extra: v["extra"].as_object().cloned().unwrap_or_default(),
    })
}

/// JSON, sealed when there is a cipher: `p2`/`x2`, the epoch, then the JSON or
/// a nonce and the sealed JSON.
fn seal(
    json: &serde_json::Value,
    epoch: u64,
    aad: &[u8],
    cipher: Option<&XChaCha20Poly1305>,
) -> Result<Vec<u8>, Error> {
    let plain = serde_json::to_vec(json).map_err(|_| Error::store_codec("cannot encode"))?;
    let Some(cipher) = cipher else {
        return Ok([PLAIN.as_slice(), &epoch.to_le_bytes(), &plain].concat());
    };
    let mut nonce = [0u8; NONCE];
    getrandom::fill(&mut nonce).map_err(|_| Error::store_codec("no randomness for a nonce"))?;
    let sealed = cipher
        .encrypt(&XNonce::from(nonce), Payload { msg: &plain, aad })
        .map_err(|_| Error::store_codec("cannot encrypt"))?;
    Ok([SEALED.as_slice(), &epoch.to_le_bytes(), &nonce, &sealed].concat())
}

/// The epoch in a version-2 record's header (it is needed, before opening, to
/// build the associated data).
fn epoch_of(data: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(data.get(2..HEADER)?.try_into().ok()?))
}

/// Opens what [`seal`] wrote. Never panics on bytes from the store.
fn open(
    data: &[u8],
    aad: &[u8],
    cipher: Option<&XChaCha20Poly1305>,
) -> Result<serde_json::Value, Error> {
    let plain = match (data.get(..2), cipher) {
        (Some(tag), None) if tag == PLAIN && data.len() >= HEADER => data[HEADER..].to_vec(),
        (Some(tag), Some(cipher)) if tag == SEALED && data.len() > HEADER + NONCE => {
            let nonce = XNonce::try_from(&data[HEADER..HEADER + NONCE])
                .map_err(|_| Error::store_codec("stored record is cut short"))?;
            cipher
                .decrypt(
                    &nonce,
                    Payload {
                        msg: &data[HEADER + NONCE..],
                        aad,
                    },
                )
                .map_err(|_| {
                    Error::store_codec(
                        "stored record does not open with this key for this credential and version",
                    )
                })?
        }
        (Some(tag), None) if tag == SEALED => {
            return Err(Error::store_codec(
                "stored record is encrypted and no key is set",
            ))
        }
        (Some(tag), Some(_)) if tag == PLAIN => {
            return Err(Error::store_codec(
                "stored record is not encrypted and a key is set: refusing it",
            ))
        }
        _ => return Err(Error::store_codec("stored record has an unknown format")),
    };
    serde_json::from_slice(&plain).map_err(|_| Error::store_codec("stored record is not JSON"))
}

/// Encodes an entry for the store as `version` (JSON with an absolute expiry,
/// as processes share no monotonic clock), sealed when there is a cipher; the
/// seal binds the key and the version.
pub(crate) fn encode(
    record: &Record,
    key: &StoreKey,
    version: Version,
    cipher: Option<&XChaCha20Poly1305>,
) -> Result<Vec<u8>, Error> {
    let json = match record {
        Record::Token(token) => token_json(token),
        Record::LoginRequired(user) => serde_json::json!({"kind": "login_required", "user": user}),
    };
    seal(
        &json,
        version.epoch,
        &associated_data(ENTRY, key, version),
        cipher,
    )
}

/// The version a write outside the lease (a login) gives on top of `stored`:
/// the next generation of its incarnation, or a new incarnation when nothing
/// readable is stored.
pub(crate) fn version_after(
    stored: Option<&StoredEntry>,
    key: &StoreKey,
    shared: &SharedStore,
) -> Result<Version, Error> {
    let mut fresh = [0u8; 8];
    getrandom::fill(&mut fresh).map_err(|_| Error::store_codec("no randomness for an epoch"))?;
    let fresh = u64::from_le_bytes(fresh);
    Ok(match stored {
        Some(e) => Version {
            epoch: decode(&e.data, key, e.generation, shared.cipher.as_deref())
                .map_or(fresh, |(epoch, _)| epoch),
            generation: e.generation.saturating_add(1),
        },
        None => Version {
            epoch: fresh,
            generation: 1,
        },
    })
}

/// Decodes the entry stored as generation `generation`: its epoch and record.
/// Entries of the crate's first format (`p1`, `x1`, `l1`) are read as epoch 0,
/// so that stored logins survive an upgrade; an unsealed `l1` mark is refused
/// when a key is set (anyone could have written it). Never panics on bytes
/// from the store.
pub(crate) fn decode(
    data: &[u8],
    key: &StoreKey,
    generation: u64,
    cipher: Option<&XChaCha20Poly1305>,
) -> Result<(u64, Record), Error> {
    match data.get(..2) {
        Some(tag) if tag == LOGIN_REQUIRED_V1 => {
            if cipher.is_some() {
                return Err(Error::store_codec(
                    "stored login-required mark is not sealed and a key is set: refusing it",
                ));
            }
            let user = String::from_utf8_lossy(&data[2..]).into_owned();
            return Ok((0, Record::LoginRequired(user)));
        }
        Some(tag) if tag == PLAIN_V1 || tag == SEALED_V1 => {
            return decode_v1(data, key, cipher).map(|t| (0, Record::Token(t)));
        }
        _ => {}
    }
    let epoch = epoch_of(data).ok_or_else(|| Error::store_codec("stored record is cut short"))?;
    let aad = associated_data(ENTRY, key, Version { epoch, generation });
    let v = open(data, &aad, cipher)?;
    let record = match v["kind"].as_str() {
        Some("token") => Record::Token(token_from_json(&v)?),
        Some("login_required") => Record::LoginRequired(
            v["user"]
                .as_str()
                .ok_or_else(|| Error::store_codec("stored mark names no user"))?
                .to_owned(),
        ),
        _ => return Err(Error::store_codec("stored record has an unknown kind")),
    };
    Ok((epoch, record))
}

/// The first format: `p1` + JSON, or `x1` + nonce + JSON sealed to the key alone.
fn decode_v1(
    data: &[u8],
    key: &StoreKey,
    cipher: Option<&XChaCha20Poly1305>,
) -> Result<Token, Error> {
    let plain = match (data.get(..2), cipher) {
        (Some(tag), None) if tag == PLAIN_V1 => data[2..].to_vec(),
        (Some(tag), Some(cipher)) if tag == SEALED_V1 && data.len() > 2 + NONCE => {
            let nonce = XNonce::try_from(&data[2..2 + NONCE])
                .map_err(|_| Error::store_codec("stored token is cut short"))?;
            cipher
                .decrypt(
                    &nonce,
                    Payload {
                        msg: &data[2 + NONCE..],
                        aad: key.as_str().as_bytes(),
                    },
                )
                .map_err(|_| Error::store_codec("stored token does not decrypt with this key"))?
        }
        (_, None) => {
            return Err(Error::store_codec(
                "stored token is encrypted and no key is set",
            ))
        }
        (_, Some(_)) => {
            return Err(Error::store_codec(
                "stored token is not encrypted and a key is set: refusing it",
            ))
        }
    };
    let v: serde_json::Value = serde_json::from_slice(&plain)
        .map_err(|_| Error::store_codec("stored token is not JSON"))?;
    token_from_json(&v)
}

/// Another kind of record kept under its own key (a client registration),
/// sealed like the entries under its own `domain`.
#[cfg(feature = "oauth2")]
pub(crate) fn seal_document(
    domain: &[u8],
    json: &serde_json::Value,
    key: &StoreKey,
    cipher: Option<&XChaCha20Poly1305>,
) -> Result<Vec<u8>, Error> {
    seal(
        json,
        0,
        &associated_data(domain, key, Version::default()),
        cipher,
    )
}

/// Opens what [`seal_document`] wrote.
#[cfg(feature = "oauth2")]
pub(crate) fn open_document(
    domain: &[u8],
    data: &[u8],
    key: &StoreKey,
    cipher: Option<&XChaCha20Poly1305>,
) -> Result<serde_json::Value, Error> {
    open(
        data,
        &associated_data(domain, key, Version::default()),
        cipher,
    )
}

/// Encodes the fleet's cool-down record, sealed like the entries.
pub(crate) fn encode_cooldown(
    record: &CooldownRecord,
    key: &StoreKey,
    cipher: Option<&XChaCha20Poly1305>,
) -> Result<Vec<u8>, Error> {
    let json = serde_json::json!({
        "kind": "cooldown",
        "until_ms": record.until_ms,
        "count": record.count,
        "status": record.status,
        "code": record.code,
        "description": record.description,
    });
    seal(
        &json,
        0,
        &associated_data(COOLDOWN, key, Version::default()),
        cipher,
    )
}

/// Decodes what [`encode_cooldown`] wrote.
pub(crate) fn decode_cooldown(
    data: &[u8],
    key: &StoreKey,
    cipher: Option<&XChaCha20Poly1305>,
) -> Result<CooldownRecord, Error> {
    let v = open(
        data,
        &associated_data(COOLDOWN, key, Version::default()),
        cipher,
    )?;
    if v["kind"].as_str() != Some("cooldown") {
        return Err(Error::store_codec("stored cool-down has an unknown kind"));
    }
    let text = |k: &str| v[k].as_str().map(|s| s.chars().take(256).collect());
    Ok(CooldownRecord {
        until_ms: v["until_ms"]
            .as_u64()
            .ok_or_else(|| Error::store_codec("stored cool-down has no end"))?,
        count: v["count"]
            .as_u64()
            .map_or(1, |c| u32::try_from(c).unwrap_or(u32::MAX)),
        status: v["status"].as_u64().and_then(|s| u16::try_from(s).ok()),
        code: text("code"),
        description: text("description"),
    })
}

#[cfg(test)]
mod tests {
    use chacha20poly1305::aead::KeyInit;

    use super::*;

    fn token() -> Token {
        Token::bearer("acc-123", Some(Duration::from_secs(600))).with_refresh_token("ref-456")
    }

    #[test]
    fn keys_share_a_hash_tag_and_carry_no_secret() {
        let k = StoreKey::new("ns", "https://auth/token|client|client_credentials||");
        assert!(k.entry().starts_with("ns:{") && k.entry().ends_with("}:token"));
        let tag = |s: &str| s[s.find('{').unwrap()..=s.find('}').unwrap()].to_owned();
        assert_eq!(tag(&k.entry()), tag(&k.lease()));
        assert_eq!(tag(&k.entry()), tag(&k.channel()));
        assert!(!k.entry().contains("client"));
    }

    const V1: Version = Version {
        epoch: 77,
        generation: 1,
    };

    fn token_of(record: (u64, Record)) -> (u64, Token) {
        match record {
            (epoch, Record::Token(t)) => (epoch, t),
            (_, Record::LoginRequired(_)) => panic!("a mark"),
        }
    }

    #[test]
    fn round_trip_plain_and_sealed() {
        let key = StoreKey::new("ns", "id");
        let record = Record::Token(token());
        let plain = encode(&record, &key, V1, None).unwrap();
        let (epoch, t) = token_of(decode(&plain, &key, 1, None).unwrap());
        assert_eq!(epoch, 77);
        assert_eq!(t.access_token().expose_secret(), "acc-123");
        assert_eq!(t.refresh_token().unwrap().expose_secret(), "ref-456");
        let left = t.expires_in().unwrap();
        assert!(left <= Duration::from_secs(600) && left > Duration::from_secs(590));

        let cipher = XChaCha20Poly1305::new(&[9u8; 32].into());
        let sealed = encode(&record, &key, V1, Some(&cipher)).unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"acc-123"));
        assert!(!sealed.windows(7).any(|w| w == b"ref-456"));
        let (_, t) = token_of(decode(&sealed, &key, 1, Some(&cipher)).unwrap());
        assert_eq!(t.access_token().expose_secret(), "acc-123");
        // Bound to its key, its version, and to the cipher's key.
        assert!(decode(&sealed, &StoreKey::new("ns", "other"), 1, Some(&cipher)).is_err());
        assert!(decode(&sealed, &key, 2, Some(&cipher)).is_err());
        let wrong = XChaCha20Poly1305::new(&[8u8; 32].into());
        assert!(decode(&sealed, &key, 1, Some(&wrong)).is_err());
        assert!(decode(&sealed, &key, 1, None).is_err());
        assert!(decode(&plain, &key, 1, Some(&cipher)).is_err());
    }

    /// An older sealed entry written back (with its own generation, or under
    /// the current one) is refused: the seal binds the version, and the epoch
    /// in the clear header cannot be changed either.
    #[test]
    fn an_old_sealed_entry_written_back_does_not_open() {
        let key = StoreKey::new("ns", "id");
        let cipher = XChaCha20Poly1305::new(&[9u8; 32].into());
        let old = encode(&Record::Token(token()), &key, V1, Some(&cipher)).unwrap();
        // Under a later generation: does not open.
        assert!(decode(&old, &key, 3, Some(&cipher))
            .err()
            .unwrap()
            .is_store());
        // Its epoch rewritten to pass for another incarnation: does not open.
        let mut forged = old.clone();
        forged[2] ^= 1;
        assert!(decode(&forged, &key, 1, Some(&cipher)).is_err());
        // Under its own generation it opens, as what it is: generation 1 of
        // epoch 77, which a process holding a later generation never adopts.
        let (epoch, _) = token_of(decode(&old, &key, 1, Some(&cipher)).unwrap());
        let held = Some(Version {
            epoch,
            generation: 3,
        });
        assert!(!super::super::lease::is_newer(V1, held));
    }

    /// With a key, the "log in again" mark is sealed (no user key in the
    /// clear) and an unsealed one is refused, so nobody can plant it.
    #[test]
    fn marks_are_sealed_and_unsealed_ones_refused() {
        let key = StoreKey::new("ns", "id");
        let cipher = XChaCha20Poly1305::new(&[9u8; 32].into());
        let user = "alice@example.com";
        let mark = encode(
            &Record::LoginRequired(user.to_owned()),
            &key,
            V1,
            Some(&cipher),
        )
        .unwrap();
        assert!(!mark.windows(user.len()).any(|w| w == user.as_bytes()));
        match decode(&mark, &key, 1, Some(&cipher)).unwrap() {
            (_, Record::LoginRequired(u)) => assert_eq!(u, user),
            _ => panic!("not a mark"),
        }
        let planted = [b"l1".as_slice(), user.as_bytes()].concat();
        assert!(decode(&planted, &key, 1, Some(&cipher))
            .err()
            .unwrap()
            .is_store());
        // Without a key the first format's mark still reads (stores written
        // by an earlier version keep their users marked).
        assert!(matches!(
            decode(&planted, &key, 1, None),
            Ok((0, Record::LoginRequired(_)))
        ));
    }

    #[test]
    fn cooldown_records_round_trip_sealed() {
        let key = StoreKey::new("ns", "id");
        let cipher = XChaCha20Poly1305::new(&[9u8; 32].into());
        let record = CooldownRecord {
            until_ms: 1_234,
            count: 2,
            status: Some(400),
            code: Some("invalid_grant".into()),
            description: Some("bad password".into()),
        };
        let data = encode_cooldown(&record, &key, Some(&cipher)).unwrap();
        assert!(!data.windows(12).any(|w| w == b"bad password"));
        assert_eq!(decode_cooldown(&data, &key, Some(&cipher)).unwrap(), record);
        assert!(decode_cooldown(&data, &StoreKey::new("ns", "x"), Some(&cipher)).is_err());
        // An entry does not pass for a cool-down record, nor the reverse.
        let entry = encode(
            &Record::Token(token()),
            &key,
            Version::default(),
            Some(&cipher),
        )
        .unwrap();
        assert!(decode_cooldown(&entry, &key, Some(&cipher)).is_err());
        assert!(decode(&data, &key, 0, Some(&cipher)).is_err());
    }

    /// Entries of the first format (`p1`, `x1`) still read, as epoch 0.
    #[test]
    fn first_format_entries_still_read() {
        let key = StoreKey::new("ns", "id");
        let json = br#"{"access_token":"acc-1","token_type":"Bearer","refresh_token":"ref-1"}"#;
        let plain = [b"p1".as_slice(), json].concat();
        let (epoch, t) = token_of(decode(&plain, &key, 4, None).unwrap());
        assert_eq!((epoch, t.access_token().expose_secret()), (0, "acc-1"));
        let cipher = XChaCha20Poly1305::new(&[9u8; 32].into());
        let nonce = [3u8; 24];
        let sealed = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: json,
                    aad: key.as_str().as_bytes(),
                },
            )
            .unwrap();
        let v1 = [b"x1".as_slice(), &nonce, &sealed].concat();
        let (_, t) = token_of(decode(&v1, &key, 4, Some(&cipher)).unwrap());
        assert_eq!(t.refresh_token().unwrap().expose_secret(), "ref-1");
    }

    /// Identities are escaped field by field: `|` in a field cannot make
    /// another credential's identity, and a field without one is unchanged.
    #[test]
    fn identity_fields_are_unambiguous() {
        use crate::token::identity_field;
        let join = |a: &str, b: &str| {
            format!(
                "{}|{}",
                identity_field(a, &['|']),
                identity_field(b, &['|'])
            )
        };
        assert_ne!(join("a|b", "c"), join("a", "b|c"));
        assert_ne!(join("a\\", "|c"), join("a\\|", "c"));
        assert_eq!(
            join("user-42", "https://auth/token"),
            "user-42|https://auth/token"
        );
        assert_ne!(
            StoreKey::new("ns", &join("a|b", "c")),
            StoreKey::new("ns", &join("a", "b|c"))
        );
    }

    #[test]
    fn garbage_from_the_store_is_an_error_not_a_panic() {
        let key = StoreKey::new("ns", "id");
        let cipher = XChaCha20Poly1305::new(&[9u8; 32].into());
        for data in [
            &b""[..],
            b"p",
            b"p1",
            b"p1{",
            b"x1",
            b"x1short",
            b"zz{}",
            b"p1[]",
            b"p2",
            b"p2\0\0\0\0\0\0\0\0{}",
            b"x2\0\0\0\0\0\0\0\0short",
            b"l",
        ] {
            assert!(decode(data, &key, 1, None).is_err(), "{data:?}");
            assert!(decode(data, &key, 1, Some(&cipher)).is_err(), "{data:?}");
            assert!(decode_cooldown(data, &key, Some(&cipher)).is_err());
        }
        let e = decode(b"p1{}", &key, 1, None).err().unwrap();
        assert!(e.is_store());
    }
}
