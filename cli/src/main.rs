//! `tower-client-auth`: checks an OAuth2 credential, runs the
//! authorization-code login, and sends one authenticated request, with the
//! library's own token client and layer, through its public API only (the
//! workspace member `tower-client-auth-cli`). `--help` says how.

mod commands;
mod config;
mod progress;
mod refresh_file;

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;

const HELP: &str = "\
tower-client-auth: check an OAuth2 credential, log in, send one authenticated request

USAGE:
    tower-client-auth [--config FILE] check [--show-token]
    tower-client-auth [--config FILE] login
    tower-client-auth [--config FILE] request [METHOD] URL [-H 'Name: value']... [--data-file FILE]
    tower-client-auth serve-test

COMMANDS:
    check     Fetch a token with the configured grant (authorization_code: with the
              stored refresh token) and show its type, scopes, expiry and how long
              the fetch took. One token request, never retried: a wrong password
              is tried once, so no account gets locked. The token itself is shown
              only with --show-token.
    login     Authorization code with PKCE: listen on 127.0.0.1:PORT/callback, print
              the URL to open in a browser, exchange the code and store the refresh
              token in the refresh token file (mode 0600).
    request   Send one request through the crate's AuthLayer with a managed token
              (refreshed and retried once on a 401). The body goes to stdout, the
              status to stderr. A rotated refresh token is stored again.
    serve-test
              Start a test token server on 127.0.0.1 and print the settings that
              reach it: try the other commands without a real provider.

CONFIGURATION (a TOML file; each key also as an environment variable, which wins):
    token_url            TCA_TOKEN_URL          token endpoint (required)
    grant                TCA_GRANT              client_credentials (default), password,
                                                authorization_code
    client_id            TCA_CLIENT_ID
    client_auth          TCA_CLIENT_AUTH        basic (default), basic_raw, post, none
    scopes = [..]        TCA_SCOPES             space-separated in the variable
    username             TCA_USERNAME           password grant
    authorize_url        TCA_AUTHORIZE_URL      authorization_code
    redirect_port        TCA_REDIRECT_PORT      login listener port (default 8765; 0: any)
    refresh_token_file   TCA_REFRESH_TOKEN_FILE default $XDG_STATE_HOME or
                                                ~/.local/state/tower-client-auth/refresh_token.json
    api_origin           TCA_API_ORIGIN         request: the origin the token is for
                                                (default: the URL's)
    allow_http           TCA_ALLOW_HTTP         1 to allow plain http:// (loopback tests)
    timeout_secs         TCA_TIMEOUT_SECS       per HTTP request (default 30)
    login_timeout_secs   TCA_LOGIN_TIMEOUT_SECS waiting for the browser (default 300)
  The file comes from --config FILE or TCA_CONFIG.

SECRETS (never on the command line, never in the TOML file):
    client secret    TCA_CLIENT_SECRET, or client_secret_env = \"VAR\", or client_secret_file = \"PATH\"
    password         TCA_PASSWORD, or password_env = \"VAR\", or password_file = \"PATH\"

EXIT CODES:
    0  success
    1  request: the API answered with a status other than 2xx
    2  usage or configuration error
    3  the credentials, grant or scope were refused (or a login is needed)
    4  the token endpoint or API is unreachable or timed out, or the token
       endpoint is failing (5xx, 429); an API's own 5xx is exit 1
    5  the token endpoint answered something unusable
    6  login failed: state mismatch, denied in the browser, or no callback in time
    7  the token URL is not a token endpoint: it answered 404, 405 or 410, a
       redirect, or a web page (check token_url)
";

/// The process's exit codes (see `HELP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Status = 1,
    Usage = 2,
    Refused = 3,
    Unavailable = 4,
    BadResponse = 5,
    Login = 6,
    WrongEndpoint = 7,
}

/// A failure to report: what the user reads and the exit code.
#[derive(Debug)]
pub struct Failure {
    exit: Exit,
    message: String,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Failure {
            exit,
            message: message.into(),
        }
    }

    /// The same failure under another exit code.
    pub fn exit_as(&mut self, exit: Exit) {
        self.exit = exit;
    }

    /// A failure from the crate, classified by its predicates, with its
    /// chain of causes (none of which carries a secret).
    pub fn from_error(context: &str, e: &(dyn std::error::Error + 'static)) -> Self {
        let exit = match e.downcast_ref::<tower_client_auth::Error>() {
            Some(e) if e.is_config() => Exit::Usage,
            // Before the rest: a 404 or a login page is a wrong URL, not a
            // refused credential nor an unusable token response.
            Some(e) if e.is_wrong_endpoint() => Exit::WrongEndpoint,
            Some(e) if e.is_state_mismatch() => Exit::Login,
            Some(e) if e.is_login_required() || e.is_no_token() => Exit::Refused,
            Some(e) if e.is_transient() => Exit::Unavailable,
            Some(e)
                if e.is_invalid_response()
                    || e.is_response_too_large()
                    || e.is_unsupported_token_type() =>
            {
                Exit::BadResponse
            }
            Some(_) => Exit::Refused,
            // The HTTP client's own errors: connection refused, timeouts.
            None => Exit::Unavailable,
        };
        let mut message = format!("{context}: {e}");
        let mut source = e.source();
        while let Some(cause) = source {
            message.push_str(&format!("\n  caused by: {cause}"));
            source = cause.source();
        }
        Failure::new(exit, message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The command line, parsed. Secrets are refused here by name.
#[derive(Debug)]
enum Command {
    Help,
    Version,
    Check {
        show_token: bool,
    },
    Login,
    ServeTest,
    Request {
        method: http::Method,
        url: String,
        headers: Vec<(String, String)>,
        data_file: Option<PathBuf>,
    },
}

fn parse_args(args: &[String]) -> Result<(Option<PathBuf>, Command), Failure> {
    let usage = |m: String| Failure::new(Exit::Usage, format!("{m}\n(see --help)"));
    for a in args {
        let flag = a.split('=').next().unwrap_or(a);
        if matches!(
            flag,
            "--client-secret" | "--secret" | "--password" | "--token" | "--refresh-token"
        ) {
            return Err(usage(format!(
                "{flag}: secrets are never taken from the command line; \
                 use the environment (TCA_CLIENT_SECRET, TCA_PASSWORD) or a file"
            )));
        }
    }
    let mut config = None;
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok((None, Command::Help)),
            "-V" | "--version" => return Ok((None, Command::Version)),
            "--config" => {
                let path = it
                    .next()
                    .ok_or_else(|| usage("--config needs a file".into()))?;
                config = Some(PathBuf::from(path));
            }
            _ => rest.push(a.clone()),
        }
    }
    let mut rest = rest.into_iter();
    let command = match rest.next().as_deref() {
        None => return Err(usage("no command given".into())),
        Some("check") => {
            let mut show_token = false;
            for a in rest {
                match a.as_str() {
                    "--show-token" => show_token = true,
                    other => return Err(usage(format!("check: unexpected {other:?}"))),
                }
            }
            Command::Check { show_token }
        }
        Some("serve-test") => {
            if let Some(other) = rest.next() {
                return Err(usage(format!("serve-test: unexpected {other:?}")));
            }
            Command::ServeTest
        }
        Some("login") => {
            if let Some(other) = rest.next() {
                return Err(usage(format!("login: unexpected {other:?}")));
            }
            Command::Login
        }
        Some("request") => {
            let mut positional = Vec::new();
            let mut headers = Vec::new();
            let mut data_file = None;
            while let Some(a) = rest.next() {
                match a.as_str() {
                    "-H" | "--header" => {
                        let h = rest
                            .next()
                            .ok_or_else(|| usage("-H needs 'Name: value'".into()))?;
                        let Some((name, value)) = h.split_once(':') else {
                            return Err(usage("-H: expected 'Name: value'".into()));
                        };
                        // A credential in a header is a secret on the command
                        // line; the point of this command is that it adds them.
                        let lower = name.trim().to_ascii_lowercase();
                        if matches!(
                            lower.as_str(),
                            "authorization" | "proxy-authorization" | "cookie" | "dpop"
                        ) || lower.contains("api-key")
                            || lower.contains("apikey")
                            || lower.ends_with("-key")
                            || lower.contains("token")
                            || lower.contains("secret")
                            || lower.starts_with("x-auth")
                        {
                            return Err(usage(format!(
                                "-H {}: credentials are never taken from the command line; \
                                 the configured credential is added to the request",
                                name.trim()
                            )));
                        }
                        headers.push((name.trim().to_owned(), value.trim().to_owned()));
                    }
                    "--data-file" => {
                        let f = rest
                            .next()
                            .ok_or_else(|| usage("--data-file needs a file".into()))?;
                        data_file = Some(PathBuf::from(f));
                    }
                    _ => positional.push(a),
                }
            }
            let (method, url) = match positional.as_slice() {
                [url] => (http::Method::GET, url.clone()),
                [method, url] => (
                    http::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                        .map_err(|_| usage(format!("not an HTTP method: {method:?}")))?,
                    url.clone(),
                ),
                _ => return Err(usage("request: expected [METHOD] URL".into())),
            };
            Command::Request {
                method,
                url,
                headers,
                data_file,
            }
        }
        Some(other) => return Err(usage(format!("unknown command {other:?}"))),
    };
    Ok((config, command))
}

async fn run(args: Vec<String>) -> Result<(), Failure> {
    let (file, command) = parse_args(&args)?;
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let file = file.or_else(|| env("TCA_CONFIG").map(PathBuf::from));
    let load = || config::load(file.as_deref(), &env);
    match command {
        Command::Help => {
            print!("{HELP}");
            Ok(())
        }
        Command::Version => {
            println!("tower-client-auth {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Check { show_token } => commands::check(&load()?, show_token).await,
        Command::Login => commands::login(&load()?).await,
        Command::ServeTest => commands::serve_test().await,
        Command::Request {
            method,
            url,
            headers,
            data_file,
        } => commands::request(&load()?, method, &url, &headers, data_file.as_deref()).await,
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(Exit::Unavailable as u8);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if failure.exit != Exit::Status {
                eprintln!("error: {failure}");
            }
            ExitCode::from(failure.exit as u8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn secrets_on_the_command_line_are_refused() {
        for a in [
            "check --client-secret s3cr3t",
            "--password=s3cr3t check",
            "request --token s3cr3t http://h",
            "request http://h -H Authorization:s3cr3t",
            "request http://h -H x-api-key:s3cr3t",
        ] {
            let e = parse_args(&args(a)).unwrap_err();
            assert_eq!(e.exit, Exit::Usage, "{a}");
            assert!(
                !e.message.contains("s3cr3t"),
                "the value is not echoed: {e}"
            );
        }
    }

    #[test]
    fn commands_parse() {
        let (cfg, c) = parse_args(&args("--config f.toml request post http://h/x -H a:b")).unwrap();
        assert_eq!(cfg, Some(PathBuf::from("f.toml")));
        match c {
            Command::Request {
                method, headers, ..
            } => {
                assert_eq!(method, http::Method::POST);
                assert_eq!(headers, vec![("a".to_owned(), "b".to_owned())]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_args(&args("check --show-token")).unwrap().1,
            Command::Check { show_token: true }
        ));
        assert_eq!(
            parse_args(&args("frobnicate")).unwrap_err().exit,
            Exit::Usage
        );
        assert_eq!(parse_args(&args("")).unwrap_err().exit, Exit::Usage);
    }
}
