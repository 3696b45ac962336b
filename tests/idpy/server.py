"""A real authorization server with token exchange (RFC 8693) built in:
IdentityPython's idpyoidc (`idpyoidc.server`, its own TokenExchangeHelper),
for tests/idpy_token_exchange.rs.

idpyoidc is a library without an HTTP server of its own: a few lines of WSGI
below hand `POST /token` to its token endpoint (`parse_request`,
`process_request`, `do_response`) and nothing else. At start it logs a user in
for the client `app` (a session and an authorization code, made through its
own session manager, as its test suite does) and exchanges the code at its
token endpoint, so that there is a subject token to exchange; it prints
`listening http://127.0.0.1:PORT <subject access token>`.
"""
import json
import sys
import tempfile
from wsgiref.simple_server import WSGIRequestHandler, make_server

from idpyoidc.message.oidc import AuthorizationRequest
from idpyoidc.server import Server
from idpyoidc.server.authn_event import create_authn_event
from idpyoidc.server.authz import AuthzHandling
from idpyoidc.server.client_authn import verify_client
from idpyoidc.server.configure import ASConfiguration
from idpyoidc.server.exception import ClientAuthenticationError, UnAuthorizedClient
from idpyoidc.server.user_authn.authn_context import INTERNETPROTOCOLPASSWORD
from idpyoidc.server.user_info import UserInfo

KEYDEFS = [{"type": "EC", "crv": "P-256", "use": ["sig"]}]
CRYPT = {
    "kwargs": {
        "keys": {
            "key_defs": [
                {"type": "OCT", "use": ["enc"], "kid": "password"},
                {"type": "OCT", "use": ["enc"], "kid": "salt"},
            ]
        },
        "iterations": 1,
    }
}
TE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def build(issuer, workdir):
    conf = {
        "issuer": issuer,
        "httpc_params": {"verify": False, "timeout": 1},
        "keys": {"uri_path": "jwks.json", "key_defs": KEYDEFS},
        "endpoint": {
            "authorization": {
                "path": "authorization",
                "class": "idpyoidc.server.oauth2.authorization.Authorization",
                "kwargs": {},
            },
            "token": {
                "path": "token",
                "class": "idpyoidc.server.oidc.token.Token",
                "kwargs": {"client_authn_method": ["client_secret_basic", "client_secret_post"]},
            },
        },
        "authentication": {
            "anon": {
                "acr": INTERNETPROTOCOLPASSWORD,
                "class": "idpyoidc.server.user_authn.user.NoAuthn",
                "kwargs": {"user": "diana"},
            }
        },
        "userinfo": {"class": UserInfo, "kwargs": {"db": {}}},
        "client_authn": verify_client,
        "template_dir": "template",
        "authz": {
            "class": AuthzHandling,
            "kwargs": {
                "grant_config": {
                    "usage_rules": {
                        "authorization_code": {
                            "supports_minting": ["access_token", "refresh_token"],
                            "max_usage": 1,
                        },
                        "access_token": {
                            "supports_minting": ["access_token"],
                            "expires_in": 600,
                        },
                        "refresh_token": {
                            "supports_minting": ["access_token", "refresh_token"],
                            "expires_in": 43200,
                        },
                    },
                    "expires_in": 43200,
                }
            },
        },
        "token_handler_args": {
            "jwks_def": {
                "private_path": f"{workdir}/token_jwks.json",
                "read_only": False,
                "key_defs": [{"type": "oct", "bytes": "24", "use": ["enc"], "kid": "code"}],
            },
            "code": {"lifetime": 600, "kwargs": {"crypt_conf": CRYPT}},
            "token": {
                "class": "idpyoidc.server.token.jwt_token.JWTToken",
                "kwargs": {"lifetime": 3600, "add_claims_by_scope": True, "aud": ["https://api.example.com"]},
            },
            "refresh": {
                "class": "idpyoidc.server.token.jwt_token.JWTToken",
                "kwargs": {"lifetime": 3600, "aud": ["https://api.example.com"]},
            },
        },
        "session_params": {"encrypter": CRYPT},
    }
    server = Server(ASConfiguration(conf=conf, base_path=workdir), cwd=workdir)
    context = server.context
    context.map_supported_to_preferred()
    for client_id, secret in [("app", "app-secret"), ("gateway", "gateway-secret")]:
        context.cdb[client_id] = {
            "client_id": client_id,
            "client_secret": secret,
            "redirect_uris": [("https://app.example.com/cb", None)],
            "client_salt": "salted",
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types_supported": ["authorization_code", "refresh_token", TE],
            "response_types": ["code"],
            "allowed_scopes": ["openid", "profile", "offline_access"],
        }
    return server


def subject_token(server):
    """A user (diana) logs in for `app`; `app` exchanges the code."""
    context = server.context
    areq = AuthorizationRequest(
        client_id="app",
        redirect_uri="https://app.example.com/cb",
        scope=["openid", "profile"],
        state="STATE",
        response_type="code",
    )
    sm = context.session_manager
    session_id = sm.create_session(
        create_authn_event("diana"), areq, "diana", client_id="app"
    )
    grant = context.authz(session_id, areq)
    token_endpoint = server.get_endpoint("token")
    code = grant.mint_token(
        session_id=session_id,
        context=context,
        token_class="authorization_code",
        token_handler=sm.token_handler["authorization_code"],
        usage_rules=grant.usage_rules.get("authorization_code", {}),
    )
    req = token_endpoint.parse_request(
        {
            "grant_type": "authorization_code",
            "code": code.value,
            "redirect_uri": "https://app.example.com/cb",
            "client_id": "app",
            "client_secret": "app-secret",
            "state": "STATE",
        }
    )
    resp = token_endpoint.process_request(request=req)
    return resp["response_args"]["access_token"]


def error(start_response, message):
    """An OAuth2 error as RFC 6749 section 5.2 says: 401 for the client, else 400."""
    body = message.to_json() if hasattr(message, "to_json") else json.dumps(
        {k: v for k, v in message.items() if isinstance(v, str)}
    )
    headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
    if message.get("error") == "invalid_client":
        status = "401 Unauthorized"
        headers.append(("WWW-Authenticate", 'Basic realm="token"'))
    else:
        status = "400 Bad Request"
    start_response(status, headers)
    return [body.encode()]


def main():
    workdir = tempfile.mkdtemp(prefix="tca-idpy-")
    holder = {}

    def app(environ, start_response):
        if environ["REQUEST_METHOD"] != "POST" or environ["PATH_INFO"] != "/token":
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"error":"not_found"}']
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length).decode()
        endpoint = holder["server"].get_endpoint("token")
        headers = {}
        if environ.get("HTTP_AUTHORIZATION"):
            headers["authorization"] = environ["HTTP_AUTHORIZATION"]
        try:
            req = endpoint.parse_request(body, http_info={"headers": headers})
        except (UnAuthorizedClient, ClientAuthenticationError):
            return error(start_response, {"error": "invalid_client"})
        if "error" in req:
            return error(start_response, req)
        args = endpoint.process_request(request=req)
        if "error" in args:
            return error(start_response, args)
        out = endpoint.do_response(request=req, **args)
        start_response("200 OK", [("Content-Type", "application/json"), ("Cache-Control", "no-store")])
        return [out["response"].encode()]

    http = make_server("127.0.0.1", 0, app, handler_class=Quiet)
    issuer = f"http://127.0.0.1:{http.server_port}"
    holder["server"] = build(issuer, workdir)
    token = subject_token(holder["server"])
    print(f"listening {issuer} {token}", flush=True)
    http.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
