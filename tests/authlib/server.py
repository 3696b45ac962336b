"""A real authorization server with the JWT bearer grant (RFC 7523 section 2.1)
built in: Authlib's JWTBearerGrant behind Flask, for tests/oauth2/authlib_jwt_bearer.rs.

A client (`jwt-client`, Basic `jwt-client:jwt-secret`) trades a JWT signed by
the identity provider `tca-test-idp` (its public JWK in IDP_JWK) for an access
token; `/api/me` answers with the subject of a valid bearer token. Prints
`listening http://127.0.0.1:PORT` once ready.
"""
import json
import os
import secrets
import time

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc7523 import JWTBearerGrant
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

IDP_JWK = json.loads(os.environ["IDP_JWK"])
ISSUER = "tca-test-idp"
TOKENS = {}
STATS = {"token_requests": 0, "issued": 0}

app = Flask(__name__)


class Client(ClientMixin):
    client_id = "jwt-client"

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return None

    def get_allowed_scope(self, scope):
        return scope or ""

    def check_redirect_uri(self, redirect_uri):
        return False

    def check_client_secret(self, client_secret):
        return secrets.compare_digest(client_secret, "jwt-secret")

    def check_endpoint_auth_method(self, method, endpoint):
        return method == "client_secret_basic"

    def check_response_type(self, response_type):
        return False

    def check_grant_type(self, grant_type):
        return grant_type == JWTBearerGrant.GRANT_TYPE


CLIENT = Client()


class Grant(JWTBearerGrant):
    # Authlib ties an assertion's issuer to a registered client.
    def resolve_issuer_client(self, issuer):
        return CLIENT if issuer == ISSUER else None

    def resolve_client_public_key(self, client):
        return IDP_JWK

    def get_audiences(self):
        return [request.url_root.rstrip("/") + "/token"]

    def authenticate_user(self, subject):
        return {"sub": subject}

    def has_granted_permission(self, client, user):
        return True


def save_token(token, req):
    TOKENS[token["access_token"]] = (req.user["sub"], time.time() + token["expires_in"])
    STATS["issued"] += 1


server = AuthorizationServer(
    app,
    query_client=lambda client_id: CLIENT if client_id == "jwt-client" else None,
    save_token=save_token,
)
server.register_grant(Grant)


@app.post("/token")
def token():
    STATS["token_requests"] += 1
    return server.create_token_response()


@app.get("/api/me")
def me():
    auth = request.headers.get("Authorization", "")
    found = TOKENS.get(auth[7:]) if auth.startswith("Bearer ") else None
    if not found or found[1] < time.time():
        return jsonify(error="invalid_token"), 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    return jsonify(sub=found[0])


@app.get("/control/stats")
def stats():
    return jsonify(STATS)


if __name__ == "__main__":
    http = make_server("127.0.0.1", 0, app)
    print(f"listening http://127.0.0.1:{http.server_port}", flush=True)
    http.serve_forever()
