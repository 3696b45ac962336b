//! Where the CLI's settings come from: a TOML file, then `TCA_*` environment
//! variables over it. Secrets come only from the environment or from files
//! named in the configuration, never from the command line or the TOML file
//! itself (which tends to end up in a repository).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tower_client_auth::oauth2::ClientAuth;
use tower_client_auth::secrecy::SecretString;

use crate::{Exit, Failure};

/// The TOML file, as written. Every key is optional here; what a command needs
/// is checked when it asks.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    token_url: Option<String>,
    grant: Option<String>,
    client_id: Option<String>,
    client_secret_env: Option<String>,
    client_secret_file: Option<PathBuf>,
    client_auth: Option<String>,
    scopes: Option<Vec<String>>,
    username: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    authorize_url: Option<String>,
    redirect_port: Option<u16>,
    refresh_token_file: Option<PathBuf>,
    api_origin: Option<String>,
    allow_http: Option<bool>,
    timeout_secs: Option<u64>,
    login_timeout_secs: Option<u64>,
}

/// The grants the CLI runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    ClientCredentials,
    Password,
    AuthorizationCode,
}

impl Grant {
    pub fn as_str(self) -> &'static str {
        match self {
            Grant::ClientCredentials => "client_credentials",
            Grant::Password => "password",
            Grant::AuthorizationCode => "authorization_code",
        }
    }
}

/// Settings resolved from the file and the environment.
pub struct Config {
    pub token_url: String,
    pub grant: Grant,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub client_auth: ClientAuth,
    pub scopes: Vec<String>,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub authorize_url: Option<String>,
    pub redirect_port: u16,
    pub refresh_token_file: PathBuf,
    pub api_origin: Option<String>,
    pub allow_http: bool,
    pub timeout: Duration,
    pub login_timeout: Duration,
}

fn usage(message: impl Into<String>) -> Failure {
    Failure::new(Exit::Usage, message)
}

/// Reads the environment through `env` (the process's, or a test's).
pub fn load(file: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Failure> {
    let file_config = match file {
        Some(path) => parse_file(path)?,
        None => FileConfig::default(),
    };
    resolve(file_config, env)
}

fn parse_file(path: &Path) -> Result<FileConfig, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
    // Say plainly why a secret is refused, before serde calls it unknown.
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        usage(format!(
            "{} is not valid TOML: {}",
            path.display(),
            e.message()
        ))
    })?;
    for key in ["client_secret", "password", "refresh_token", "access_token"] {
        if table.contains_key(key) {
            return Err(usage(format!(
                "{}: `{key}` must not be written in the configuration file; \
                 name an environment variable (`{key}_env`) or a file (`{key}_file`) instead",
                path.display()
            )));
        }
    }
    toml::from_str(&text).map_err(|e| usage(format!("{}: {}", path.display(), e.message())))
}

fn secret(
    what: &str,
    direct_env: &str,
    env_name: Option<&str>,
    file: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<SecretString>, Failure> {
    if let Some(value) = env(direct_env) {
        return Ok(Some(value.into()));
    }
    if let Some(name) = env_name {
        return match env(name) {
            Some(value) => Ok(Some(value.into())),
            None => Err(usage(format!(
                "the {what} is to come from the environment variable {name}, which is not set"
            ))),
        };
    }
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            usage(format!(
                "cannot read the {what} file {}: {e}",
                path.display()
            ))
        })?;
        let value = text.trim_end_matches(['\r', '\n']).to_owned();
        if value.is_empty() {
            return Err(usage(format!(
                "the {what} file {} is empty",
                path.display()
            )));
        }
        return Ok(Some(value.into()));
    }
    Ok(None)
}

fn default_refresh_token_file(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    let base = env("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("tower-client-auth").join("refresh_token.json")
}

fn resolve(f: FileConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Failure> {
    let pick = |var: &str, file: Option<String>| env(var).or(file);
    let token_url = pick("TCA_TOKEN_URL", f.token_url)
        .ok_or_else(|| usage("no token URL: set TCA_TOKEN_URL or `token_url` in the file"))?;
    let grant = match pick("TCA_GRANT", f.grant).as_deref() {
        None | Some("client_credentials") => Grant::ClientCredentials,
        Some("password") => Grant::Password,
        Some("authorization_code") => Grant::AuthorizationCode,
        Some(other) => {
            return Err(usage(format!(
                "unknown grant {other:?}: use client_credentials, password or authorization_code"
            )))
        }
    };
    let client_auth = match pick("TCA_CLIENT_AUTH", f.client_auth).as_deref() {
        None | Some("basic") => ClientAuth::Basic,
        Some("basic_raw") => ClientAuth::BasicRaw,
        Some("post") => ClientAuth::Body,
        Some("none") => ClientAuth::None,
        Some(other) => {
            return Err(usage(format!(
                "unknown client_auth {other:?}: use basic, basic_raw, post or none"
            )))
        }
    };
    let scopes = match env("TCA_SCOPES") {
        Some(s) => s.split_whitespace().map(str::to_owned).collect(),
        None => f.scopes.unwrap_or_default(),
    };
    let redirect_port = match env("TCA_REDIRECT_PORT") {
        Some(p) => p
            .parse()
            .map_err(|_| usage(format!("TCA_REDIRECT_PORT is not a port: {p:?}")))?,
        None => f.redirect_port.unwrap_or(8765),
    };
    let seconds = |var: &str, file: Option<u64>, default: u64| -> Result<Duration, Failure> {
        let secs = match env(var) {
            Some(s) => s
                .parse::<u64>()
                .map_err(|_| usage(format!("{var} is not a number of seconds: {s:?}")))?,
            None => file.unwrap_or(default),
        };
        Ok(Duration::from_secs(secs.clamp(1, 86_400)))
    };
    let allow_http = match env("TCA_ALLOW_HTTP").as_deref() {
        Some("1" | "true" | "yes") => true,
        Some("0" | "false" | "no") => false,
        Some(other) => {
            return Err(usage(format!(
                "TCA_ALLOW_HTTP must be 1 or 0, not {other:?}"
            )))
        }
        None => f.allow_http.unwrap_or(false),
    };
    Ok(Config {
        client_secret: secret(
            "client secret",
            "TCA_CLIENT_SECRET",
            f.client_secret_env.as_deref(),
            f.client_secret_file.as_deref(),
            env,
        )?,
        password: secret(
            "password",
            "TCA_PASSWORD",
            f.password_env.as_deref(),
            f.password_file.as_deref(),
            env,
        )?,
        token_url,
        grant,
        client_id: pick("TCA_CLIENT_ID", f.client_id),
        client_auth,
        scopes,
        username: pick("TCA_USERNAME", f.username),
        authorize_url: pick("TCA_AUTHORIZE_URL", f.authorize_url),
        redirect_port,
        refresh_token_file: env("TCA_REFRESH_TOKEN_FILE")
            .map(PathBuf::from)
            .or(f.refresh_token_file)
            .unwrap_or_else(|| default_refresh_token_file(env)),
        api_origin: pick("TCA_API_ORIGIN", f.api_origin),
        allow_http,
        timeout: seconds("TCA_TIMEOUT_SECS", f.timeout_secs, 30)?,
        login_timeout: seconds("TCA_LOGIN_TIMEOUT_SECS", f.login_timeout_secs, 300)?,
    })
}
