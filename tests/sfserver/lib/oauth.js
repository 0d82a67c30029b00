'use strict';
// OAuth 2.0 token endpoint (JWT bearer, client credentials, username-password, refresh token),
// token revocation, the identity URL, and access-token validation for REST and CometD.

const crypto = require('node:crypto');

const JWT_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

class OAuthError extends Error {
  constructor(error, description) {
    super(`${error}: ${description}`);
    this.body = { error, error_description: description };
  }
}

class OAuth {
  /**
   * @param {import('./state').State} state
   * @param {() => string} baseUrl  this server's own URL (instance_url and identity URLs)
   */
  constructor(state, baseUrl) {
    this.state = state;
    this.baseUrl = baseUrl;
  }

  get data() {
    return this.state.data;
  }

  /** {userId, clientId} for a live access token, else null. */
  validate(token) {
    return (token && this.data.accessTokens[token]) || null;
  }

  user(username) {
    return this.data.users.find((u) => u.username === username) || null;
  }

  userById(id) {
    return this.data.users.find((u) => u.id === id) || null;
  }

  client(clientId) {
    return this.data.clients.find((c) => c.clientId === clientId) || null;
  }

  /** POST /services/oauth2/token with form fields `params` (URLSearchParams). */
  token(params) {
    const grant = params.get('grant_type');
    switch (grant) {
      case 'password':
        return this.passwordGrant(params);
      case 'client_credentials':
        return this.clientCredentialsGrant(params);
      case 'refresh_token':
        return this.refreshGrant(params);
      case JWT_GRANT:
        return this.jwtGrant(params);
      default:
        throw new OAuthError('unsupported_grant_type', 'grant type not supported');
    }
  }

  /** Client by id whose secret must match (secret optional only where `secretOptional`). */
  authenticateClient(params, secretOptional = false) {
    const client = this.client(params.get('client_id'));
    if (!client) throw new OAuthError('invalid_client_id', 'client identifier invalid');
    const secret = params.get('client_secret');
    if (secret === null && secretOptional) return client;
    if (secret !== client.clientSecret) throw new OAuthError('invalid_client', 'invalid client credentials');
    return client;
  }

  passwordGrant(params) {
    const client = this.authenticateClient(params);
    const user = this.user(params.get('username'));
    // Salesforce expects password + security token concatenated.
    if (!user || params.get('password') !== user.password + (user.securityToken || '')) {
      throw new OAuthError('invalid_grant', 'authentication failure');
    }
    return this.issue(user, client, {});
  }

  clientCredentialsGrant(params) {
    const client = this.authenticateClient(params);
    const user = client.runAs && this.user(client.runAs);
    if (!user) throw new OAuthError('invalid_grant', 'no client credentials user enabled');
    return this.issue(user, client, {});
  }

  refreshGrant(params) {
    const client = this.authenticateClient(params, true);
    const old = params.get('refresh_token');
    const entry = old && this.data.refreshTokens[old];
    if (!entry || entry.clientId !== client.clientId) {
      throw new OAuthError('invalid_grant', 'expired access/refresh token');
    }
    const user = this.userById(entry.userId);
    if (!user) throw new OAuthError('invalid_grant', 'inactive user');
    let refreshToken;
    if (client.rotateRefreshTokens) {
      delete this.data.refreshTokens[old];
      refreshToken = this.newRefreshToken(user, client);
    }
    return this.issue(user, client, { refreshToken, scope: 'refresh_token api' });
  }

  jwtGrant(params) {
    const parts = (params.get('assertion') || '').split('.');
    if (parts.length !== 3) throw new OAuthError('invalid_grant', 'invalid assertion');
    let header;
    let claims;
    try {
      header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
      claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    } catch {
      throw new OAuthError('invalid_grant', 'invalid assertion');
    }
    if (header.alg !== 'RS256') throw new OAuthError('invalid_grant', 'invalid assertion');
    const client = this.client(claims.iss);
    if (!client) throw new OAuthError('invalid_client_id', 'client identifier invalid');
    const signed = Buffer.from(`${parts[0]}.${parts[1]}`);
    const signature = Buffer.from(parts[2], 'base64url');
    const ok = (client.publicKeys || []).some((pem) => {
      try {
        return crypto.verify('RSA-SHA256', signed, publicKeyOf(pem), signature);
      } catch {
        return false;
      }
    });
    if (!ok) throw new OAuthError('invalid_grant', 'invalid assertion');
    const audiences = [].concat(this.data.config.audience);
    const aud = [].concat(claims.aud);
    if (!aud.some((a) => audiences.includes(a))) throw new OAuthError('invalid_grant', 'audience is invalid');
    if (typeof claims.exp !== 'number' || claims.exp * 1000 <= Date.now()) {
      throw new OAuthError('invalid_grant', 'expired authorization code');
    }
    const user = this.user(claims.sub);
    if (!user) throw new OAuthError('invalid_grant', "user hasn't approved this consumer");
    return this.issue(user, client, {});
  }

  newRefreshToken(user, client) {
    const token = `5Aep861${crypto.randomBytes(32).toString('base64url')}`;
    this.data.refreshTokens[token] = { userId: user.id, clientId: client.clientId };
    return token;
  }

  /** Token response in Salesforce's field order. */
  issue(user, client, { refreshToken, scope = 'api' }) {
    const orgId15 = this.data.config.orgId.slice(0, 15);
    const accessToken = `${orgId15}!${crypto.randomBytes(36).toString('base64url')}`;
    const issuedAt = String(Date.now());
    this.data.accessTokens[accessToken] = { userId: user.id, clientId: client.clientId, issuedAt };
    const id = `${this.baseUrl()}/id/${this.data.config.orgId}/${user.id}`;
    const signature = crypto
      .createHmac('sha256', client.clientSecret || '')
      .update(id + issuedAt)
      .digest('base64');
    const body = { access_token: accessToken };
    if (refreshToken) body.refresh_token = refreshToken;
    Object.assign(body, {
      signature,
      scope,
      instance_url: this.baseUrl(),
      id,
      token_type: 'Bearer',
      issued_at: issuedAt,
    });
    return body;
  }

  /** Control API: issue a refresh token as the web-server flow would have. */
  grantRefreshToken(clientId, username) {
    const client = this.client(clientId || this.data.clients[0].clientId);
    const user = this.user(username || this.data.users[0].username);
    if (!client || !user) throw new Error('unknown client or user');
    return this.newRefreshToken(user, client);
  }

  /** POST /services/oauth2/revoke: revoke one access or refresh token. */
  revoke(token) {
    const known = token in this.data.accessTokens || token in this.data.refreshTokens;
    delete this.data.accessTokens[token];
    delete this.data.refreshTokens[token];
    return known;
  }

  /** Control API: revoke every access token (and refresh tokens if asked). */
  revokeAll(refreshTokens = false) {
    const n = Object.keys(this.data.accessTokens).length;
    this.data.accessTokens = {};
    if (refreshTokens) this.data.refreshTokens = {};
    return n;
  }

  /** GET /id/<org>/<user> identity response (subset). */
  identity(orgId, userId) {
    const user = this.userById(userId);
    if (!user || orgId !== this.data.config.orgId) return null;
    return {
      id: `${this.baseUrl()}/id/${orgId}/${user.id}`,
      user_id: user.id,
      organization_id: orgId,
      username: user.username,
      display_name: user.name,
      email: user.email,
      active: true,
      user_type: 'STANDARD',
    };
  }
}

/** Accept a PEM public key, RSA private key (its public half) or X.509 certificate. */
function publicKeyOf(pem) {
  if (pem.includes('BEGIN CERTIFICATE')) return new crypto.X509Certificate(pem).publicKey;
  return crypto.createPublicKey(pem);
}

module.exports = { OAuth, OAuthError, publicKeyOf };
