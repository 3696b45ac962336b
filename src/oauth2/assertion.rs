//! Assertions that come from elsewhere and rotate: a Kubernetes projected
//! service account token, a SPIFFE JWT-SVID, a CI system's OIDC token
//! (workload identity federation). The client does not sign them; it reads
//! the current one before each token request, as a client assertion
//! (RFC 7523 §2.2, [`TokenClientBuilder::client_assertion`]) or as a JWT
//! bearer grant (RFC 7523 §2.1, [`Grant::jwt_bearer_from`]).
//!
//! An assertion that is a JWT whose own `exp` has passed is never sent: the
//! request fails with [`Error::is_assertion_expired`] (transient: the source
//! is expected to rotate it).
//!
//! [`TokenClientBuilder::client_assertion`]: super::TokenClientBuilder::client_assertion
//! [`Grant::jwt_bearer_from`]: super::Grant::jwt_bearer_from

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use secrecy::{ExposeSecret, SecretString};

use crate::error::lifecycle::Lifecycle;
use crate::error::{BoxError, Error};
use crate::token::jwt::{lifetime, JwtLifetime};

/// Assertion files larger than this are refused: a JWT is a few kilobytes.
const MAX_ASSERTION_FILE: u64 = 256 * 1024;

/// Where an assertion comes from: a file re-read when it changes, or a
/// closure asked each time. Cheap to clone.
///
/// ```
/// use tower_client_auth::oauth2::{AssertionSource, Grant, TokenClient};
///
/// # fn main() -> Result<(), tower_client_auth::BoxError> {
/// # let dir = std::env::temp_dir().join(format!("tca-doc-assertion-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// # let path = dir.join("token");
/// # std::fs::write(&path, "header.payload.signature\n")?;
/// // The token the kubelet projects into the pod and rotates.
/// let projected = AssertionSource::file(&path);
/// assert_eq!(projected.path(), Some(path.as_path()));
///
/// // Or any function that returns the current assertion.
/// let from_env = AssertionSource::from_fn(|| Ok(std::env::var("CI_OIDC_TOKEN")?));
/// let grant = Grant::jwt_bearer_from(from_env);
/// assert_eq!(grant.grant_type(), "urn:ietf:params:oauth:grant-type:jwt-bearer");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AssertionSource {
    from: Arc<Supplier>,
}

type AssertionFn = dyn Fn() -> Result<String, BoxError> + Send + Sync;

enum Supplier {
    File {
        path: PathBuf,
        /// The assertion last read, with what the file looked like then.
        last: Mutex<Option<(FileStamp, SecretString)>>,
    },
    Fn(Box<AssertionFn>),
}

/// What tells a file was replaced: its modification time and length, and
/// on Unix its inode and change time (an atomic rename or a symlink swap, as
/// the kubelet does, gives a new inode even within the clock's resolution).
#[derive(Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: (u64, u64, i64, i64),
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> FileStamp {
        #[cfg(unix)]
        let inode = {
            use std::os::unix::fs::MetadataExt as _;
            (meta.dev(), meta.ino(), meta.ctime(), meta.ctime_nsec())
        };
        #[cfg(not(unix))]
        let inode = (0, 0, 0, 0);
        FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode,
        }
    }
}

impl AssertionSource {
    /// The assertion in the file at `path`, trimmed of surrounding
    /// whitespace. The file is read again whenever its modification time or
    /// length changes, or when the assertion last read has expired; nothing
    /// is read until the first token request.
    pub fn file(path: impl AsRef<Path>) -> AssertionSource {
        AssertionSource {
            from: Arc::new(Supplier::File {
                path: path.as_ref().to_owned(),
                last: Mutex::new(None),
            }),
        }
    }

    /// The assertion `f` returns, asked before each token request. `f` runs
    /// on the task that makes the request: keep it quick (cache in it if
    /// getting an assertion is slow).
    pub fn from_fn<F>(f: F) -> AssertionSource
    where
        F: Fn() -> Result<String, BoxError> + Send + Sync + 'static,
    {
        AssertionSource {
            from: Arc::new(Supplier::Fn(Box::new(f))),
        }
    }

    /// The file this source reads, if it is one.
    pub fn path(&self) -> Option<&Path> {
        match &*self.from {
            Supplier::File { path, .. } => Some(path),
            Supplier::Fn(_) => None,
        }
    }

    /// The current assertion, checked: not empty, and not a JWT whose `exp`
    /// has passed.
    pub(crate) fn current(&self) -> Result<SecretString, Error> {
        let assertion = match &*self.from {
            Supplier::File { path, last } => read_file(path, last)?,
            Supplier::Fn(f) => {
                let text = f().map_err(|e| {
                    Error::lifecycle_from(Lifecycle::AssertionUnavailable("the source failed"), e)
                })?;
                SecretString::from(text.trim().to_owned())
            }
        };
        check(&assertion)?;
        Ok(assertion)
    }
}

/// Refuses an empty assertion, and a JWT one whose own `exp` has passed.
fn check(assertion: &SecretString) -> Result<(), Error> {
    let text = assertion.expose_secret();
    if text.is_empty() {
        return Err(Error::lifecycle(Lifecycle::AssertionUnavailable(
            "the assertion is empty",
        )));
    }
    match lifetime(text, SystemTime::now()) {
        JwtLifetime::Expired => Err(Error::lifecycle(Lifecycle::AssertionExpired)),
        JwtLifetime::Left(_) | JwtLifetime::Unknown => Ok(()),
    }
}

fn read_file(
    path: &Path,
    last: &Mutex<Option<(FileStamp, SecretString)>>,
) -> Result<SecretString, Error> {
    let unreadable = |e: std::io::Error| {
        Error::lifecycle_from(Lifecycle::AssertionUnavailable("cannot read the file"), e)
    };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    let stamp = FileStamp::of(&meta);
    let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((seen, assertion)) = &*last {
        // Unchanged, and not expired (a file rewritten within the clock's
        // resolution with the same length looks unchanged: read it again
        // once what we hold has expired).
        if *seen == stamp && check(assertion).is_ok() {
            return Ok(assertion.clone());
        }
    }
    if stamp.len > MAX_ASSERTION_FILE {
        return Err(Error::lifecycle(Lifecycle::AssertionUnavailable(
            "the file is too large for an assertion",
        )));
    }
    let text = std::fs::read_to_string(path).map_err(unreadable)?;
    let assertion = SecretString::from(text.trim().to_owned());
    *last = Some((stamp, assertion.clone()));
    Ok(assertion)
}

impl fmt::Debug for AssertionSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.from {
            Supplier::File { path, .. } => {
                f.debug_tuple("AssertionSource::File").field(path).finish()
            }
            Supplier::Fn(_) => f.write_str("AssertionSource::Fn"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::jwt::tests::jwt;

    fn unix_now() -> u64 {
        SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn a_replaced_file_is_read_again() {
        let dir = std::env::temp_dir().join(format!("tca-assertion-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        let first = jwt(&format!(r#"{{"sub":"a","exp":{}}}"#, unix_now() + 600));
        std::fs::write(&path, format!("{first}\n")).unwrap();
        let source = AssertionSource::file(&path);
        assert_eq!(source.current().unwrap().expose_secret(), first);
        // Renamed over it, as the kubelet does: seen even with the same
        // length within the clock's resolution.
        let second = jwt(&format!(r#"{{"sub":"bb","exp":{}}}"#, unix_now() + 600));
        let tmp = dir.join("token.new");
        std::fs::write(&tmp, &second).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert_eq!(source.current().unwrap().expose_secret(), second);
        // Expired in the file: refused, never returned.
        let expired = jwt(&format!(r#"{{"sub":"ccc","exp":{}}}"#, unix_now() - 5));
        std::fs::write(&path, &expired).unwrap();
        assert!(source.current().unwrap_err().is_assertion_expired());
        // Gone: unavailable, with the I/O error as the cause.
        std::fs::remove_file(&path).unwrap();
        let err = source.current().unwrap_err();
        assert!(
            err.is_assertion_unavailable() && err.is_transient(),
            "{err}"
        );
        assert!(std::error::Error::source(&err).is_some());
        assert!(format!("{source:?}").contains("token"));
    }

    #[test]
    fn closures_are_checked_the_same_way() {
        let ok = AssertionSource::from_fn(|| Ok("opaque-saml-ish".to_owned()));
        assert_eq!(ok.current().unwrap().expose_secret(), "opaque-saml-ish");
        let empty = AssertionSource::from_fn(|| Ok("  \n".to_owned()));
        assert!(empty.current().unwrap_err().is_assertion_unavailable());
        let failing = AssertionSource::from_fn(|| Err("no token yet".into()));
        assert!(failing.current().unwrap_err().is_assertion_unavailable());
        let expired = jwt(&format!(r#"{{"exp":{}}}"#, unix_now() - 1));
        let stale = AssertionSource::from_fn(move || Ok(expired.clone()));
        let err = stale.current().unwrap_err();
        assert!(err.is_assertion_expired() && err.is_transient());
        assert!(!err.to_string().contains("ey"), "{err}");
    }

    /// The client assertion on the wire, read again after rotation, and an
    /// expired one never sent.
    #[tokio::test]
    async fn client_assertion_is_sent_fresh_and_never_expired() {
        use std::sync::atomic::{AtomicUsize, Ordering};

        use bytes::Bytes;
        use http_body_util::{BodyExt, Full};

        let sent = Arc::new(Mutex::new(Vec::<String>::new()));
        let endpoint = {
            let sent = sent.clone();
            tower::service_fn(move |req: http::Request<Full<Bytes>>| {
                let sent = sent.clone();
                async move {
                    assert!(!req.headers().contains_key("authorization"));
                    let form = req.into_body().collect().await.unwrap().to_bytes();
                    sent.lock()
                        .unwrap()
                        .push(String::from_utf8(form.to_vec()).unwrap());
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                        Bytes::from_static(br#"{"access_token":"t","expires_in":60}"#),
                    )))
                }
            })
        };
        let current = Arc::new(Mutex::new(jwt(&format!(
            r#"{{"n":1,"exp":{}}}"#,
            unix_now() + 60
        ))));
        let calls = Arc::new(AtomicUsize::new(0));
        let source = {
            let (current, calls) = (current.clone(), calls.clone());
            AssertionSource::from_fn(move || {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(current.lock().unwrap().clone())
            })
        };
        let tokens = crate::oauth2::TokenClient::builder("https://login.example.com/token")
            .client_id("workload")
            .client_assertion(source)
            .build(endpoint)
            .unwrap();
        tokens.client_credentials(&[]).await.unwrap();
        let first = current.lock().unwrap().clone();
        *current.lock().unwrap() = jwt(&format!(r#"{{"n":2,"exp":{}}}"#, unix_now() + 60));
        let second = current.lock().unwrap().clone();
        tokens.client_credentials(&[]).await.unwrap();
        *current.lock().unwrap() = jwt(&format!(r#"{{"n":3,"exp":{}}}"#, unix_now() - 60));
        let err = tokens.client_credentials(&[]).await.unwrap_err();
        assert!(err.is_assertion_expired(), "{err}");
        let sent = sent.lock().unwrap();
        assert_eq!(sent.len(), 2, "the expired assertion was sent");
        let expect = |a: &str| {
            format!(
                "grant_type=client_credentials&client_id=workload&client_assertion_type=\
                 urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={a}"
            )
        };
        assert_eq!(sent[0], expect(&first));
        assert_eq!(sent[1], expect(&second));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
