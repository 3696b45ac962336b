//! One token request on the wire: sent (with a DPoP proof, once more for a
//! new nonce), the answer read up to its cap and parsed.

//! The token endpoint client: builds a grant request the way the server wants it
//! and sends it through the HTTP service you give.

use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;

use super::endpoint::Endpoint;
use super::response::parse_token_response;
use super::transport::HttpService;
use crate::error::{Error, Kind};
use crate::token::Token;
use crate::BoxError;

pub(super) async fn exchange(
    http: HttpService,
    request: Request<Full<Bytes>>,
    rebuild: impl FnOnce() -> Result<Request<Full<Bytes>>, Error>,
    endpoint: Arc<Endpoint>,
) -> Result<Token, Error> {
    #[cfg(feature = "jose")]
    if let Some(dpop) = endpoint.jose.dpop.clone() {
        return exchange_with_dpop(http, request, rebuild, endpoint, &dpop).await;
    }
    #[cfg(not(feature = "jose"))]
    let _ = rebuild;
    send_and_parse(http, request, &endpoint).await.1
}

/// A token request with a DPoP proof; sent once more when the endpoint asks
/// for a new nonce (RFC 9449 §8).
#[cfg(feature = "jose")]
pub(super) async fn exchange_with_dpop(
    http: HttpService,
    request: Request<Full<Bytes>>,
    rebuild: impl FnOnce() -> Result<Request<Full<Bytes>>, Error>,
    endpoint: Arc<Endpoint>,
    dpop: &super::Dpop,
) -> Result<Token, Error> {
    let endpoint = &*endpoint;
    let prove = |mut req: Request<Full<Bytes>>| -> Result<Request<Full<Bytes>>, Error> {
        let proof = dpop.proof(req.method(), req.uri(), None)?;
        req.headers_mut().insert(crate::jose::dpop::DPOP, proof);
        Ok(req)
    };
    let (answer, result) = send_and_parse(http.clone(), prove(request)?, endpoint).await;
    // Kept from any answer, under the origin that sent it (a guard below
    // says which, after a redirect); a request asked for a nonce by the token
    // endpoint is sent once more (whether its own nonce or a concurrent
    // request's was the stale one). Asked again after that, the error stands
    // and is permanent: a server that never accepts our nonces gets a
    // cool-down, not a stream of requests.
    let learn = |answer: &http::response::Parts| {
        let from = answer
            .extensions
            .get::<crate::wire::marks::HopUri>()
            .map_or(&endpoint.url, |hop| &hop.0);
        dpop.remember_nonce(from, &answer.headers);
        crate::wire::origin::same_origin(from, &endpoint.url)
            && answer.headers.contains_key(crate::jose::dpop::DPOP_NONCE)
    };
    let with_nonce = answer.as_ref().is_some_and(learn);
    match result {
        Err(e) if with_nonce && e.oauth2_code() == Some("use_dpop_nonce") => {
            let (answer, result) = send_and_parse(http, prove(rebuild()?)?, endpoint).await;
            if let Some(answer) = &answer {
                learn(answer);
            }
            result
        }
        other => other,
    }
}

/// Sends a token request and parses the answer; gives back the response's
/// head too (DPoP nonces, and where they came from), when there was a response.
pub(super) async fn send_and_parse(
    http: HttpService,
    request: Request<Full<Bytes>>,
    endpoint: &Endpoint,
) -> (Option<http::response::Parts>, Result<Token, Error>) {
    let response = match http.oneshot(request).await {
        Ok(r) => r,
        Err(e) => return (None, Err(Error::with_source(Kind::Transport, e))),
    };
    let (parts, body) = response.into_parts();
    let result = read_and_parse(&parts, body, endpoint).await;
    (Some(parts), result)
}

pub(super) async fn read_and_parse(
    parts: &http::response::Parts,
    body: UnsyncBoxBody<Bytes, BoxError>,
    endpoint: &Endpoint,
) -> Result<Token, Error> {
    let bytes = read_body(body, endpoint).await?;
    parse_token_response(parts.status, &parts.headers, &bytes)
}

/// Reads a response body up to the endpoint's cap.
pub(super) async fn read_body(
    mut body: UnsyncBoxBody<Bytes, BoxError>,
    endpoint: &Endpoint,
) -> Result<Bytes, Error> {
    // Read the body frame by frame up to the cap: a huge answer is an error, not an OOM.
    let mut bytes = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e: BoxError| Error::with_source(Kind::Transport, e))?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > endpoint.max_response {
                return Err(Error::new(Kind::ResponseTooLarge(endpoint.max_response)));
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes.freeze())
}
