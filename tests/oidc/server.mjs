// A real authorization server for tests/oauth2/oidc_provider.rs: panva's
// oidc-provider (certified OpenID Provider) on 127.0.0.1, with DPoP (nonces
// required at the token endpoint), client_credentials, private_key_jwt and
// discovery; plus a protected resource that verifies DPoP proofs the way
// RFC 9449 §7 and §9 say (signature, typ, htm, htu, iat, jti replay, ath,
// the resource's own nonce, and the token's key binding via the provider).
//
// Prints `listening http://127.0.0.1:PORT` on stdout once ready.
// Environment: PKJWT_JWK: the public JWK registered for the private_key_jwt
// client. LIFECYCLE=1 (tests/oauth2/oidc_lifecycle.rs): a code-flow client
// (`code-client`) with revocation, pushed authorization requests, signed
// request objects (its key in JAR_JWK) and rich authorization requests
// (type `payment_initiation`, returned as granted); REQUIRE_PAR=1 as well:
// a server that requires pushed authorization requests.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';

import * as jose from 'jose';
import Provider from 'oidc-provider';

// Nobody may be reading our output any more: never die of it.
process.stdout.on('error', () => {});

const pkjwtJwk = JSON.parse(process.env.PKJWT_JWK || 'null');
const lifecycle = process.env.LIFECYCLE === '1';
const jarJwk = JSON.parse(process.env.JAR_JWK || 'null');
const requirePar = process.env.REQUIRE_PAR === '1';

// MTLS_DIR: serve https with the certificates there (ca.pem, server.pem,
// server.key), asking for client certificates: mutual TLS (RFC 8705).
const mtlsDir = process.env.MTLS_DIR;
const server = mtlsDir
  ? https.createServer({
    key: fs.readFileSync(`${mtlsDir}/server.key`),
    cert: fs.readFileSync(`${mtlsDir}/server.pem`),
    ca: fs.readFileSync(`${mtlsDir}/ca.pem`),
    requestCert: true,
    rejectUnauthorized: false,
  })
  : http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address();
const issuer = `${mtlsDir ? 'https' : 'http'}://127.0.0.1:${port}`;

const clients = [
  {
    client_id: 'dpop-client',
    client_secret: 'dpop-secret',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
  },
];
// A public client on a TV: the device flow.
clients.push({
  client_id: 'device-client',
  grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
  redirect_uris: [],
  response_types: [],
  token_endpoint_auth_method: 'none',
});
// Mutual TLS: the certificate (issued by our CA to CN=mtls-client) is the
// client authentication, and the tokens are bound to it.
if (mtlsDir) clients.push({
  client_id: 'mtls-client',
  grant_types: ['client_credentials'],
  redirect_uris: [],
  response_types: [],
  token_endpoint_auth_method: 'tls_client_auth',
  tls_client_auth_subject_dn: 'CN=mtls-client',
  tls_client_certificate_bound_access_tokens: true,
});
if (pkjwtJwk) {
  clients.push({
    client_id: 'pkjwt-client',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: pkjwtJwk.crv === 'Ed25519' ? 'EdDSA' : 'ES256',
    jwks: { keys: [pkjwtJwk] },
  });
}

if (lifecycle) {
  clients.push({
    client_id: 'code-client',
    client_secret: 'code-secret',
    grant_types: ['authorization_code', 'refresh_token'],
    redirect_uris: ['http://127.0.0.1:9/cb'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    authorization_details_types: ['payment_initiation'],
    ...(jarJwk ? { jwks: { keys: [jarJwk] }, request_object_signing_alg: 'ES256' } : {}),
  });
}
const rarResource = `${issuer}/api`;
const lifecycleConfig = lifecycle ? {
  // Every code-flow login gets a refresh token (no offline_access dance).
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  features: {
    revocation: { enabled: true },
    pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: requirePar },
    requestObjects: { request: true, requireSignedRequestObject: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: (ctx, client) => (client?.clientId === 'code-client' ? rarResource : undefined),
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({ scope: 'openid', accessTokenFormat: 'opaque' }),
    },
    richAuthorizationRequests: {
      enabled: true,
      ack: 'experimental-01',
      types: { payment_initiation: { validate() {} } },
      // Granted as requested, carried by the code and the refresh token.
      rarForAuthorizationCode: (ctx) => (ctx.oidc.params.authorization_details
        ? JSON.parse(ctx.oidc.params.authorization_details) : undefined),
      rarForCodeResponse: (ctx) => ctx.oidc.authorizationCode.rar,
      rarForRefreshTokenResponse: (ctx) => ctx.oidc.refreshToken.rar,
      rarForIntrospectionResponse: (ctx, token) => token.rar,
    },
  },
} : { features: {} };

const provider = new Provider(issuer, {
  ...(lifecycleConfig.issueRefreshToken ? { issueRefreshToken: lifecycleConfig.issueRefreshToken } : {}),
  findAccount: (ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
  clients,
  clientAuthMethods: ['client_secret_basic', 'private_key_jwt', 'none', ...(mtlsDir ? ['tls_client_auth'] : [])],
  enabledJWA: {
    clientAuthSigningAlgValues: ['ES256', 'EdDSA'],
    dPoPSigningAlgValues: ['ES256', 'EdDSA'],
  },
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    dPoP: {
      enabled: true,
      nonceSecret: crypto.randomBytes(32),
      requireNonce: () => true,
    },
    deviceFlow: { enabled: true },
    mTLS: {
      enabled: Boolean(mtlsDir),
      certificateBoundAccessTokens: true,
      tlsClientAuth: true,
      getCertificate(ctx) {
        const cert = ctx.socket.getPeerX509Certificate?.();
        return cert ? cert.toString() : undefined;
      },
      certificateAuthorized: (ctx) => ctx.socket.authorized === true,
      certificateSubjectMatches(ctx, property, expected) {
        const cert = ctx.socket.getPeerX509Certificate?.();
        return property === 'tls_client_auth_subject_dn' && cert?.subject === expected;
      },
    },
    // The provider's own login and consent pages (any login name, any
    // password), which the test fills in as a user would.
    devInteractions: { enabled: true },
    ...lifecycleConfig.features,
  },
  ttl: { ClientCredentials: 600 },
});
provider.proxy = false;

// The protected resource's own state.
const stats = {
  token_requests: 0,
  resource_requests: 0,
  resource_ok: 0,
  nonce_challenges: 0,
  replays_rejected: 0,
  bad_proofs: 0,
};
let resourceNonce = crypto.randomBytes(16).toString('base64url');
const seenJti = new Set();

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function challenge(res, error, description) {
  send(res, 401, { error }, {
    'www-authenticate': `DPoP error="${error}", error_description="${description}", algs="ES256 EdDSA"`,
    'dpop-nonce': resourceNonce,
  });
}

async function resource(req, res) {
  stats.resource_requests += 1;
  const auth = req.headers.authorization || '';
  const proof = req.headers.dpop;
  if (!auth.startsWith('DPoP ') || !proof) {
    stats.bad_proofs += 1;
    return challenge(res, 'invalid_token', 'DPoP token and proof required');
  }
  const token = auth.slice(5);
  let header;
  let payload;
  try {
    header = jose.decodeProtectedHeader(proof);
    if (header.typ !== 'dpop+jwt' || !header.jwk || header.jwk.d) throw new Error('header');
    const key = await jose.importJWK(header.jwk, header.alg);
    ({ payload } = await jose.jwtVerify(proof, key, {
      typ: 'dpop+jwt',
      algorithms: ['ES256', 'EdDSA'],
    }));
  } catch (e) {
    stats.bad_proofs += 1;
    return challenge(res, 'invalid_dpop_proof', 'bad proof');
  }
  const htu = `${issuer}${new URL(req.url, issuer).pathname}`;
  const now = Math.floor(Date.now() / 1000);
  const ath = crypto.createHash('sha256').update(token).digest('base64url');
  if (payload.htm !== req.method || payload.htu !== htu || Math.abs(now - payload.iat) > 60
      || payload.ath !== ath || typeof payload.jti !== 'string') {
    stats.bad_proofs += 1;
    return challenge(res, 'invalid_dpop_proof', 'proof does not match the request');
  }
  if (payload.nonce !== resourceNonce) {
    stats.nonce_challenges += 1;
    return challenge(res, 'use_dpop_nonce', 'Resource server requires nonce in DPoP proof');
  }
  if (seenJti.has(payload.jti)) {
    stats.replays_rejected += 1;
    return challenge(res, 'invalid_dpop_proof', 'proof replayed');
  }
  seenJti.add(payload.jti);
  const found = await provider.ClientCredentials.find(token);
  if (!found || found.isExpired) {
    return challenge(res, 'invalid_token', 'unknown or expired token');
  }
  const jkt = await jose.calculateJwkThumbprint(header.jwk, 'sha256');
  if (found.jkt !== jkt) {
    stats.bad_proofs += 1;
    return challenge(res, 'invalid_token', 'token not bound to this key');
  }
  stats.resource_ok += 1;
  return send(res, 200, { ok: true, client_id: found.clientId, jkt });
}

// The certificate-bound resource: a bearer token whose `x5t#S256` is the
// thumbprint of the client certificate on this very connection.
async function mtlsResource(req, res) {
  stats.resource_requests += 1;
  const auth = req.headers.authorization || '';
  const token = auth.startsWith('Bearer ') ? auth.slice(7) : '';
  const found = token && await provider.ClientCredentials.find(token);
  const peer = req.socket.getPeerX509Certificate?.();
  if (!found || found.isExpired || !peer) {
    return send(res, 401, { error: 'invalid_token' }, { 'www-authenticate': 'Bearer error="invalid_token"' });
  }
  const thumbprint = crypto.createHash('sha256').update(peer.raw).digest('base64url');
  if (found['x5t#S256'] !== thumbprint) {
    stats.bad_proofs += 1;
    return send(res, 401, { error: 'invalid_token' }, { 'www-authenticate': 'Bearer error="invalid_token", error_description="certificate mismatch"' });
  }
  stats.resource_ok += 1;
  return send(res, 200, { ok: true, client_id: found.clientId, 'x5t#S256': thumbprint });
}

const callback = provider.callback();
server.on('request', (req, res) => {
  const path = new URL(req.url, issuer).pathname;
  if (path === '/mtls-resource') {
    mtlsResource(req, res).catch((e) => send(res, 500, { error: String(e) }));
  } else if (path === '/resource') {
    resource(req, res).catch((e) => send(res, 500, { error: String(e) }));
  } else if (path === '/control/rotate-nonce' && req.method === 'POST') {
    resourceNonce = crypto.randomBytes(16).toString('base64url');
    send(res, 200, { ok: true });
  } else if (path === '/control/stats') {
    send(res, 200, stats);
  } else {
    if (path === '/token') stats.token_requests += 1;
    callback(req, res);
  }
});

console.log(`listening ${issuer}`);
