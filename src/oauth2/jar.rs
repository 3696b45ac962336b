//! JWT-secured authorization requests (RFC 9101): the authorization
//! request's parameters signed by the client as a request object, so that
//! nobody on the way (the browser, an extension) can change them.

use serde_json::{Map, Value};

use super::{AuthorizationRequest, PrivateKey};
use crate::error::Error;
use crate::jose::keys::{new_jti, unix_now};

/// How long a request object is valid: the user has this long to get from
/// the client to the authorization page.
const REQUEST_OBJECT_LIFETIME: u64 = 300;

/// `request` carried by a request object signed with `key` for `audience`
/// (the server's issuer): `client_id` and `request` (and, for OpenID
/// Connect servers, `response_type` and `scope` repeated, as OpenID Connect
/// Core §6.1 asks; RFC 9101 §5 lets a server ignore them).
pub(super) fn sign(
    request: AuthorizationRequest,
    key: &PrivateKey,
    audience: &str,
) -> Result<AuthorizationRequest, Error> {
    let now = unix_now();
    let mut claims = Map::new();
    for (k, v) in &request.params {
        // JSON-valued parameters (RFC 9396 §3, OpenID Connect `claims`) go
        // in as JSON, as the RFCs ask.
        let value = match k.as_str() {
            "authorization_details" | "claims" => {
                serde_json::from_str(v).unwrap_or_else(|_| Value::from(v.as_str()))
            }
            _ => Value::from(v.as_str()),
        };
        claims.insert(k.clone(), value);
    }
    claims.insert("iss".into(), request.client_id.clone().into());
    claims.insert("aud".into(), audience.into());
    claims.insert("iat".into(), now.into());
    claims.insert("nbf".into(), now.into());
    claims.insert("exp".into(), (now + REQUEST_OBJECT_LIFETIME).into());
    claims.insert("jti".into(), new_jti()?.into());
    let mut header = Map::new();
    header.insert("typ".into(), "oauth-authz-req+jwt".into());
    if let Some(kid) = key.kid() {
        header.insert("kid".into(), kid.into());
    }
    let object = key.sign(header, &Value::Object(claims));
    let mut params = vec![("client_id".to_owned(), request.client_id.clone())];
    for name in ["response_type", "scope"] {
        if let Some((k, v)) = request.params.iter().find(|(k, _)| k == name) {
            params.push((k.clone(), v.clone()));
        }
    }
    params.push(("request".to_owned(), object));
    request.carried_by(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth2::AuthorizationUrl;
    use crate::token::jwt::time_claims;

    #[test]
    fn the_parameters_travel_signed() {
        let key = PrivateKey::generate_es256().unwrap();
        let request =
            AuthorizationUrl::new("https://as.example/authorize", "app", "https://app/cb")
                .scope("openid")
                .authorization_details(serde_json::json!([{"type": "account_information"}]))
                .build()
                .unwrap();
        let state = request.state().to_owned();
        let signed = sign(request, &key, "https://as.example").unwrap();
        assert_eq!(signed.state(), state);
        let url = signed.url();
        assert!(url.starts_with("https://as.example/authorize?client_id=app&response_type=code&scope=openid&request=ey"), "{url}");
        assert!(
            !url.contains("state=") && !url.contains("redirect_uri="),
            "{url}"
        );
        let object = &signed.params.last().unwrap().1;
        let times = time_claims(object).unwrap();
        assert_eq!(
            times.exp.unwrap() - times.iat.unwrap(),
            REQUEST_OBJECT_LIFETIME as f64
        );
        use base64::Engine as _;
        let payload = object.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["state"], state);
        assert_eq!(claims["iss"], "app");
        assert_eq!(claims["aud"], "https://as.example");
        assert_eq!(
            claims["authorization_details"][0]["type"],
            "account_information"
        );
    }
}
