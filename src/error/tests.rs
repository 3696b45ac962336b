//! The error's texts, predicates and chain.

use std::error::Error as _;

use super::*;

fn oauth2(code: &str, description: &str) -> Error {
    Error::new(Kind::OAuth2(OAuth2Error {
        code: code.into(),
        description: Some(description.into()),
        uri: None,
        status: StatusCode::BAD_REQUEST,
        retry_after: None,
    }))
}

/// hyper's rule: each level prints itself; the chain comes from `source()`.
#[test]
fn display_shows_this_level_only() {
    let cause = oauth2("invalid_grant", "wrong password");
    let cooling = Error::new(Kind::CoolingDown {
        cause: Box::new(cause),
        left: None,
    });
    let shown = cooling.to_string();
    assert!(!shown.contains("invalid_grant"), "{shown}");
    let source = cooling.source().expect("the cause is the source");
    assert!(source.to_string().contains("invalid_grant"));

    let transport = Error::with_source(Kind::Transport, "connection refused");
    assert!(!transport.to_string().contains("refused"));
    assert_eq!(
        transport.source().unwrap().to_string(),
        "connection refused"
    );
}

#[test]
fn server_text_is_escaped_and_cut_short() {
    let e = oauth2("bad\ncode", "line one\nline two \u{1b}[31mred\u{7}");
    let shown = e.to_string();
    assert!(!shown.contains('\n') && !shown.contains('\u{1b}') && !shown.contains('\u{7}'));
    assert!(shown.contains("bad\\ncode"), "{shown}");
    let long = oauth2("invalid_request", &"x".repeat(10_000));
    assert!(long.to_string().len() < 400);
    let t = Error::unsupported_token_type("DPoP\r\nX-Injected: 1");
    assert!(!t.to_string().contains('\r'));
}

#[test]
fn predicates_look_through_a_cool_down() {
    for cause in [
        oauth2("invalid_grant", "x"),
        oauth2("invalid_client", "x"),
        Error::new(Kind::NoToken),
        Error::config("x"),
        Error::unsupported_token_type("mac"),
        Error::permanent("custom"),
    ] {
        let cooling = Error::new(Kind::CoolingDown {
            cause: Box::new(cause.clone()),
            left: None,
        });
        assert!(cooling.is_cooling_down());
        assert!(!cooling.is_transient());
        assert_eq!(cooling.is_invalid_grant(), cause.is_invalid_grant());
        assert_eq!(cooling.is_invalid_client(), cause.is_invalid_client());
        assert_eq!(cooling.is_no_token(), cause.is_no_token());
        assert_eq!(cooling.is_config(), cause.is_config());
        assert_eq!(
            cooling.is_unsupported_token_type(),
            cause.is_unsupported_token_type()
        );
        assert_eq!(cooling.is_source(), cause.is_source());
        assert_eq!(cooling.oauth2_code(), cause.oauth2_code());
    }
}
