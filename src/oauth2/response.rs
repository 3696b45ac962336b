//! Token endpoint responses (RFC 6749 §5.1 and §5.2), parsed as real servers send
//! them: JSON, form-encoded or `text/plain`, numbers as strings, errors with 200.

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::error::{Error, Kind, OAuth2Error};
use crate::token::{Token, MAX_LIFETIME};
use crate::wire::retry_after::retry_after;

/// Turns a token endpoint's answer into a [`Token`] or a typed [`Error`].
pub(crate) fn parse_token_response(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Token, Error> {
    let retry_after = retry_after(headers);
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let members = parse_members(&content_type, body);

    // An `error` member means an error whatever the status (some servers send 200).
    if let Some(map) = &members {
        if let Some(code) = map.get("error") {
            let code = match code {
                Value::String(s) if !s.is_empty() => s.clone(),
                _ => return Err(Error::invalid_response("`error` member is not a string")),
            };
            let text = |k: &str| map.get(k).and_then(Value::as_str).map(str::to_owned);
            return Err(Error::new(Kind::OAuth2(OAuth2Error {
                code,
                description: text("error_description"),
                uri: text("error_uri"),
                status,
                retry_after,
            })));
        }
    }
    if !status.is_success() {
        // No OAuth2 error: what came back says more than the status alone
        // (a proxy's page, a login form, a 404).
        return Err(Error::new(Kind::Status(status, retry_after)).with_answer(
            status,
            &content_type,
            body,
        ));
    }
    let Some(mut map) = members else {
        return Err(
            Error::invalid_response("body is neither a JSON object nor form-encoded").with_answer(
                status,
                &content_type,
                body,
            ),
        );
    };

    let access_token = match map.remove("access_token") {
        Some(Value::String(s)) if s.is_empty() => {
            return Err(Error::invalid_response("empty access_token"))
        }
        Some(Value::String(s)) => s,
        Some(_) => return Err(Error::invalid_response("access_token is not a string")),
        None => return Err(Error::invalid_response("missing access_token")),
    };
    let token_type = match map.remove("token_type") {
        None | Some(Value::Null) => "Bearer".to_owned(),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("bearer") || s.is_empty() => {
            "Bearer".to_owned()
        }
        Some(Value::String(s)) => s,
        Some(_) => return Err(Error::invalid_response("token_type is not a string")),
    };
    let expires_in = parse_expires_in(map.remove("expires_in"))?;
    let refresh_token = match map.remove("refresh_token") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.into()),
        Some(_) => return Err(Error::invalid_response("refresh_token is not a string")),
    };
    let scope = match map.remove("scope") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        // Some servers send the granted scopes as an array.
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" "),
        ),
        Some(_) => return Err(Error::invalid_response("scope is not a string")),
    };
    Ok(Token {
        access_token: access_token.into(),
        token_type,
        expires_in,
        received_at: Instant::now(),
        refresh_token,
        scope,
        extra: map,
    })
}

fn parse_members(content_type: &str, body: &[u8]) -> Option<Map<String, Value>> {
    let json = || match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    };
    let form = || {
        let text = std::str::from_utf8(body).ok()?.trim();
        if text.is_empty() || text.starts_with('{') || !text.contains('=') {
            return None;
        }
        let mut map = Map::new();
        for (k, v) in form_urlencoded::parse(text.as_bytes()) {
            map.insert(k.into_owned(), Value::String(v.into_owned()));
        }
        Some(map)
    };
    if content_type.contains("application/x-www-form-urlencoded") {
        form().or_else(json)
    } else {
        // JSON, text/plain (GitHub's old default), or no content type at all.
        json().or_else(form)
    }
}

/// `expires_in` as a number or a numeric string. Absent, null, zero or negative:
/// unknown (the caller's default lifetime applies, so a server saying 0 cannot
/// make us refresh in a loop). Anything else is an error. Huge values are clamped.
fn parse_expires_in(value: Option<Value>) -> Result<Option<Duration>, Error> {
    let seconds: f64 = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .ok_or_else(|| Error::invalid_response("expires_in is not a number"))?,
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| Error::invalid_response("expires_in is not a number"))?,
        Some(_) => return Err(Error::invalid_response("expires_in is not a number")),
    };
    if !seconds.is_finite() {
        return Err(Error::invalid_response("expires_in is not a number"));
    }
    if seconds <= 0.0 {
        return Ok(None);
    }
    let max = MAX_LIFETIME.as_secs_f64();
    let lifetime = Duration::from_secs_f64(seconds.min(max));
    // `1e-10` is positive but rounds to nothing: as unknown as zero.
    Ok(Some(lifetime).filter(|d| !d.is_zero()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn json(body: &str) -> Result<Token, Error> {
        let mut h = HeaderMap::new();
        h.insert("content-type", "application/json".parse().unwrap());
        parse_token_response(StatusCode::OK, &h, body.as_bytes())
    }

    #[test]
    fn checklist_1_access_token_required_nonempty_string() {
        assert!(json(r#"{"access_token":""}"#)
            .unwrap_err()
            .is_invalid_response());
        assert!(json(r#"{"token_type":"bearer"}"#)
            .unwrap_err()
            .is_invalid_response());
        assert!(json(r#"{"access_token":42}"#)
            .unwrap_err()
            .is_invalid_response());
        assert!(json(r#"{"access_token":null}"#)
            .unwrap_err()
            .is_invalid_response());
        let t = json(r#"{"access_token":"abc"}"#).unwrap();
        assert_eq!(t.access_token().expose_secret(), "abc");
    }

    #[test]
    fn checklist_2_token_type_case_insensitive_default_bearer() {
        let t = json(r#"{"access_token":"a","token_type":"beAREr"}"#).unwrap();
        assert_eq!(t.token_type(), "Bearer");
        let t = json(r#"{"access_token":"a"}"#).unwrap();
        assert_eq!(t.token_type(), "Bearer");
        let t = json(r#"{"access_token":"a","token_type":"MAC"}"#).unwrap();
        assert_eq!(t.token_type(), "MAC");
    }

    #[test]
    fn checklist_3_expires_in_forms() {
        let e = |v: &str| json(&format!(r#"{{"access_token":"a","expires_in":{v}}}"#));
        assert_eq!(
            e("3600").unwrap().expires_in(),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            e(r#""3600""#).unwrap().expires_in(),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(e("null").unwrap().expires_in(), None);
        assert_eq!(json(r#"{"access_token":"a"}"#).unwrap().expires_in(), None);
        for bad in ["false", "{}", r#""zzz""#, "[]", "true"] {
            assert!(e(bad).unwrap_err().is_invalid_response(), "{bad}");
        }
        assert_eq!(e("1e300").unwrap().expires_in(), Some(MAX_LIFETIME));
        assert_eq!(
            e("99999999999999999999").unwrap().expires_in(),
            Some(MAX_LIFETIME)
        );
        assert_eq!(e("0").unwrap().expires_in(), None);
        assert_eq!(e("-5").unwrap().expires_in(), None);
        assert_eq!(e("1e-10").unwrap().expires_in(), None);
    }

    #[test]
    fn checklist_4_form_and_text_plain() {
        let mut h = HeaderMap::new();
        h.insert(
            "content-type",
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        let body = b"access_token=a%2Bb&token_type=bearer&expires_in=60&scope=user%20repo";
        let t = parse_token_response(StatusCode::OK, &h, body).unwrap();
        assert_eq!(t.access_token().expose_secret(), "a+b");
        assert_eq!(t.expires_in(), Some(Duration::from_secs(60)));
        assert_eq!(t.scope(), Some("user repo"));

        h.insert("content-type", "text/plain; charset=utf-8".parse().unwrap());
        let t = parse_token_response(StatusCode::OK, &h, b"access_token=x&scope=a").unwrap();
        assert_eq!(t.access_token().expose_secret(), "x");
        let t = parse_token_response(StatusCode::OK, &h, br#"{"access_token":"j"}"#).unwrap();
        assert_eq!(t.access_token().expose_secret(), "j");
    }

    #[test]
    fn checklist_5_unknown_members_kept_scope_may_differ() {
        let t =
            json(r#"{"access_token":"a","scope":"read","id_token":"secret-jwt","n":1}"#).unwrap();
        assert_eq!(t.scope(), Some("read"));
        assert_eq!(t.extra()["n"], 1);
        assert_eq!(t.extra()["id_token"], "secret-jwt");
        assert!(!format!("{t:?}").contains("secret-jwt"));
    }

    #[test]
    fn checklist_6_error_body_typed_even_with_200() {
        let err = json(r#"{"error":"invalid_grant","error_description":"bad password","error_uri":"https://e/x"}"#)
            .unwrap_err();
        assert!(err.is_invalid_grant());
        assert_eq!(err.oauth2_description(), Some("bad password"));
        assert_eq!(err.oauth2_uri(), Some("https://e/x"));
        assert_eq!(err.status(), Some(StatusCode::OK));
        assert!(!err.is_transient());

        let mut h = HeaderMap::new();
        h.insert("content-type", "application/json".parse().unwrap());
        let err = parse_token_response(
            StatusCode::UNAUTHORIZED,
            &h,
            br#"{"error":"invalid_client"}"#,
        )
        .unwrap_err();
        assert!(err.is_invalid_client());
        assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));

        h.insert("retry-after", "7".parse().unwrap());
        let err =
            parse_token_response(StatusCode::TOO_MANY_REQUESTS, &h, b"slow down").unwrap_err();
        assert!(err.is_transient());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
        let err = parse_token_response(StatusCode::BAD_GATEWAY, &h, b"<html>").unwrap_err();
        assert!(err.is_transient());
        assert_eq!(err.status(), Some(StatusCode::BAD_GATEWAY));
    }

    #[test]
    fn refresh_token_and_garbage() {
        let t = json(r#"{"access_token":"a","refresh_token":"r"}"#).unwrap();
        assert_eq!(t.refresh_token().unwrap().expose_secret(), "r");
        assert!(json("not json").unwrap_err().is_invalid_response());
        assert!(json("[1,2]").unwrap_err().is_invalid_response());
        assert!(json(r#"{"access_token":"a","refresh_token":5}"#).is_err());
    }
}
