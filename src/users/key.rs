//! [`UserKey`]: which user a request acts for, with its hash computed once.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Which user a request acts for: put it in the request's extensions. A user id
/// of your application, never a secret (it appears in errors and logs).
///
/// Its hash is computed once, when it is made (SipHash with this process's
/// random keys, so that chosen user ids cannot flood one bucket): cloning a key
/// and looking it up per request costs no hashing.
///
/// ```
/// use tower_client_auth::users::UserKey;
///
/// let mut req = http::Request::get("https://api.example.com/v1/me").body(()).unwrap();
/// // From your session: the user this request acts for.
/// req.extensions_mut().insert(UserKey::new("user-42"));
/// assert_eq!(req.extensions().get::<UserKey>().unwrap().as_str(), "user-42");
/// ```
#[derive(Clone)]
pub struct UserKey {
    pub(super) key: Arc<str>,
    pub(super) hash: u64,
}

impl UserKey {
    /// A user key.
    pub fn new(key: impl Into<Arc<str>>) -> UserKey {
        use std::hash::BuildHasher;
        static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
            std::sync::OnceLock::new();
        let key = key.into();
        let hash = KEYS.get_or_init(Default::default).hash_one(&*key);
        UserKey { key, hash }
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.key
    }
}

impl PartialEq for UserKey {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.key == other.key
    }
}

impl Eq for UserKey {}

impl std::hash::Hash for UserKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl fmt::Debug for UserKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserKey({:?})", &*self.key)
    }
}

/// The map's hasher: a `UserKey` brings its hash along.
#[derive(Default)]
pub(super) struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `UserKey`; fold anything else in.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub(super) type KeyMap<V> = HashMap<UserKey, V, std::hash::BuildHasherDefault<KeyHasher>>;
