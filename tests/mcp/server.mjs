// A protected resource and its authorization server, for
// tests/oauth2/mcp_resource.rs, both written by others:
//
// - the resource: an Express app with the Model Context Protocol SDK's own
//   bearer-auth middleware (`requireBearerAuth`, which answers 401 with
//   `resource_metadata` and 403 `insufficient_scope` with the scope it needs)
//   and its protected resource metadata router (`mcpAuthMetadataRouter`,
//   RFC 9728), at http://127.0.0.1:PORT/mcp;
// - the authorization server: panva's oidc-provider on another port, with
//   dynamic client registration (RFC 7591), resource indicators (RFC 8707)
//   issuing JWT access tokens for the resource, client credentials, PKCE and
//   its own login and consent pages (which the test fills in).
//
// The resource verifies tokens as the SDK expects a verifier to: the JWT's
// signature against the server's JWKS, its issuer and audience (the
// resource), its scopes and expiry.
//
// Routes of the resource: /mcp (scope mcp:read), /mcp/admin (mcp:admin: a
// step-up), /mcp/sensitive (always 401 insufficient_user_authentication,
// RFC 9470, asking for acr urn:example:mfa within 300 s), /mcp/stubborn
// (always 403 insufficient_scope naming mcp:write), /control/stats.
//
// Prints `listening http://127.0.0.1:PORT/mcp` on stdout once ready.
import http from 'node:http';

import express from 'express';
import * as jose from 'jose';
import Provider from 'oidc-provider';
import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js';
import { InvalidTokenError } from '@modelcontextprotocol/sdk/server/auth/errors.js';
import {
  getOAuthProtectedResourceMetadataUrl,
  mcpAuthMetadataRouter,
} from '@modelcontextprotocol/sdk/server/auth/router.js';

process.stdout.on('error', () => {});

const listen = async (server) => {
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server.address().port;
};

const stats = {
  registrations: 0,
  token_requests: 0,
  resource_requests: 0,
  resource_ok: 0,
  metadata_requests: 0,
  last_registration: null,
  last_token_request: null,
};

// ---- The authorization server.
const asServer = http.createServer();
const asPort = await listen(asServer);
const issuer = `http://127.0.0.1:${asPort}`;

// The resource's port is known before the provider is configured: its
// resource indicator must be.
const rsServer = http.createServer();
const rsPort = await listen(rsServer);
const resourceUrl = `http://127.0.0.1:${rsPort}/mcp`;

const provider = new Provider(issuer, {
  findAccount: (ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
  clients: [],
  clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'none'],
  scopes: ['openid', 'offline_access', 'mcp:read', 'mcp:write', 'mcp:admin'],
  acrValues: ['urn:example:password', 'urn:example:mfa'],
  pkce: { required: () => true },
  features: {
    clientCredentials: { enabled: true },
    registration: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo(ctx, indicator) {
        if (indicator !== resourceUrl) {
          throw new Provider.errors.InvalidTarget(`unknown resource ${indicator}`);
        }
        return {
          scope: 'mcp:read mcp:write mcp:admin',
          audience: resourceUrl,
          accessTokenTTL: 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
    devInteractions: { enabled: true },
  },
  ttl: { ClientCredentials: 600, AccessToken: 600 },
});
provider.proxy = false;
provider.on('registration_create.success', (ctx, client) => {
  stats.registrations += 1;
  stats.last_registration = {
    grant_types: client.grantTypes,
    token_endpoint_auth_method: client.tokenEndpointAuthMethod,
    redirect_uris: client.redirectUris,
  };
});
// What each token request asked for (never its secrets).
provider.on('grant.success', (ctx) => {
  const p = ctx.oidc.params;
  stats.last_token_request = { grant_type: p.grant_type, resource: p.resource, scope: p.scope };
});

const callback = provider.callback();
asServer.on('request', (req, res) => {
  const path = new URL(req.url, issuer).pathname;
  if (path === '/token') stats.token_requests += 1;
  callback(req, res);
});

// ---- The protected resource, with the SDK's middleware.
const discovery = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
const jwks = jose.createRemoteJWKSet(new URL(discovery.jwks_uri));
const verifier = {
  async verifyAccessToken(token) {
    try {
      const { payload } = await jose.jwtVerify(token, jwks, { issuer, audience: resourceUrl });
      const aud = Array.isArray(payload.aud) ? payload.aud[0] : payload.aud;
      return {
        token,
        clientId: payload.client_id,
        scopes: String(payload.scope || '').split(' ').filter(Boolean),
        expiresAt: payload.exp,
        resource: new URL(aud),
      };
    } catch (e) {
      throw new InvalidTokenError(`token rejected: ${e.code || e.message}`);
    }
  },
};
const metadataUrl = getOAuthProtectedResourceMetadataUrl(new URL(resourceUrl));
const bearer = (requiredScopes) => requireBearerAuth({
  verifier,
  requiredScopes,
  resourceMetadataUrl: metadataUrl,
  expectedResource: new URL(resourceUrl),
});

const app = express();
app.use((req, res, next) => {
  if (req.path.startsWith('/.well-known/oauth-protected-resource')) stats.metadata_requests += 1;
  else if (req.path.startsWith('/mcp')) stats.resource_requests += 1;
  next();
});
app.use(mcpAuthMetadataRouter({
  oauthMetadata: discovery,
  resourceServerUrl: new URL(resourceUrl),
  // The least a client needs; /mcp/admin asks for more by a step-up.
  scopesSupported: ['mcp:read'],
  resourceName: 'tower-client-auth test resource',
}));
const ok = (req, res) => {
  stats.resource_ok += 1;
  res.json({ ok: true, client_id: req.auth.clientId, scopes: req.auth.scopes });
};
app.all('/mcp', bearer(['mcp:read']), ok);
app.all('/mcp/admin', bearer(['mcp:admin']), ok);
app.all('/mcp/sensitive', bearer(['mcp:read']), (req, res) => {
  res.set('WWW-Authenticate', 'Bearer error="insufficient_user_authentication", '
    + 'error_description="A multi-factor authentication is required", '
    + `acr_values="urn:example:mfa", max_age=300, resource_metadata="${metadataUrl}"`);
  res.status(401).json({ error: 'insufficient_user_authentication' });
});
// A resource that keeps asking for more, whatever the token holds: a client
// must retry once, never loop.
app.all('/mcp/stubborn', bearer(['mcp:read']), (req, res) => {
  res.set('WWW-Authenticate', 'Bearer error="insufficient_scope", '
    + `error_description="Insufficient scope", scope="mcp:write", resource_metadata="${metadataUrl}"`);
  res.status(403).json({ error: 'insufficient_scope' });
});
app.get('/control/stats', (req, res) => res.json({ ...stats, issuer, resource: resourceUrl }));
rsServer.on('request', app);

console.log(`listening ${resourceUrl}`);
