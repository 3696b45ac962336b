//! The refresh token file: JSON with the token URL and client id it belongs
//! to (so that one file is never sent to another server), written atomically
//! with mode 0600.

use std::io::Write;
use std::path::Path;

use tower_client_auth::secrecy::{ExposeSecret, SecretString};

use crate::{Exit, Failure};

pub fn store(
    path: &Path,
    token_url: &str,
    client_id: Option<&str>,
    refresh_token: &SecretString,
) -> Result<(), Failure> {
    let fail = |what: &str, e: std::io::Error| {
        Failure::new(
            Exit::Usage,
            format!("cannot {what} {}: {e}", path.display()),
        )
    };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).map_err(|e| fail("create the directory of", e))?;
    }
    let body = serde_json::json!({
        "token_url": token_url,
        "client_id": client_id,
        "refresh_token": refresh_token.expose_secret(),
    })
    .to_string();
    // A new file of our own next to the target (never an existing file or a
    // symlink someone left there), readable by us alone, then renamed over it.
    let mut suffix = [0u8; 8];
    let _ = getrandom_suffix(&mut suffix);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{name}.{}.{:016x}.tmp",
        std::process::id(),
        u64::from_le_bytes(suffix)
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(&tmp).map_err(|e| fail("write", e))?;
    let written = f.write_all(body.as_bytes()).and_then(|()| f.sync_all());
    drop(f);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail("write", e));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail("replace", e));
    }
    // The rename itself is durable once the directory is.
    if let Some(dir) = dir {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Random bytes for a temporary file's name (the time if the system has none).
fn getrandom_suffix(out: &mut [u8; 8]) -> std::io::Result<()> {
    use std::io::Read;
    match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(out)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            *out = nanos.to_le_bytes();
            Err(e)
        }
    }
}

pub fn load(
    path: &Path,
    token_url: &str,
    client_id: Option<&str>,
) -> Result<SecretString, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::new(
            Exit::Refused,
            format!(
                "no stored refresh token in {} ({e}): run `tower-client-auth login` first",
                path.display()
            ),
        )
    })?;
    let bad = || {
        Failure::new(
            Exit::Usage,
            format!("{} is not a refresh token file", path.display()),
        )
    };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|_| bad())?;
    if v["token_url"].as_str() != Some(token_url) || v["client_id"].as_str() != client_id {
        return Err(Failure::new(
            Exit::Usage,
            format!(
                "the refresh token in {} belongs to another token URL or client; \
                 run `tower-client-auth login` again",
                path.display()
            ),
        ));
    }
    v["refresh_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(|t| SecretString::from(t.to_owned()))
        .ok_or_else(bad)
}
