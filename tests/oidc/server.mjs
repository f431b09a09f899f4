// OAuth 2.0 / OpenID Connect authorization server for the requests_refreshauth
// integration tests, built on oidc-provider (pinned in package.json).
//
// Started by tests/_oidc_server.py. Protocol with the parent process:
//   * listens on 127.0.0.1, port chosen by the OS;
//   * once ready, prints exactly one JSON line to stdout:
//       {"issuer": "http://127.0.0.1:<port>", "port": <port>, ...}
//     and never writes to stdout again (all logging goes to stderr);
//   * exits when stdin is closed (the parent died or is done) and on SIGTERM/SIGINT.
//
// Options (CLI flag or environment variable, CLI wins; values in seconds):
//   --access-token-ttl  / OIDC_ACCESS_TOKEN_TTL   (default 60)
//   --refresh-token-ttl / OIDC_REFRESH_TOKEN_TTL  (default 86400)
//
// Extra, non-OAuth routes (answered before the request reaches the provider):
//   GET  /api/whoami     protected resource: 200 {"sub", "client_id", "scope", ...} or 401
//   GET  /api/scoped     401 insufficient_scope (scope="admin") for every *valid* token
//   GET  /__test/stats   JSON counters of what the server actually served
//   POST /__test/reset   zero the counters and clear pending faults
//   POST /__test/fault   {"token_status": 503, "retry_after": 1, "count": 2} or
//                        {"token_body": "<raw text>", "token_status": 200, "count": 1}:
//                        the next `count` token-endpoint requests get that response
//                        and never reach the provider.

import * as crypto from 'node:crypto';
import * as http from 'node:http';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

// stdout is reserved for the ready line, but oidc-provider prints its NOTICEs with
// console.info: send every console method to stderr, minus the messages that are
// expected for a throwaway test server and carry no information here.
const EXPECTED_NOISE = [
  /Unsupported runtime/, // oidc-provider 9 asks for Node >= 22; it runs on Node 20.18+.
  /in-memory adapter/, // intended: every server starts from an empty store.
  /devInteractions is enabled/, // intended: the tests drive these login/consent pages.
  /NOTICE: default \S+ function called/, // the stock device-flow / error pages are fine.
];
const toStderr = console.error.bind(console);
for (const method of ['log', 'info', 'debug', 'warn']) {
  console[method] = (...parts) => {
    const text = parts.map(String).join(' ');
    if (!EXPECTED_NOISE.some((re) => re.test(text))) toStderr(...parts);
  };
}

function positiveInt(name, raw) {
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new Error(`${name} must be a positive integer number of seconds, got ${JSON.stringify(raw)}`);
  }
  return value;
}

const { values: args } = parseArgs({
  options: {
    'access-token-ttl': { type: 'string' },
    'refresh-token-ttl': { type: 'string' },
  },
});
const ACCESS_TOKEN_TTL = positiveInt(
  'access-token-ttl',
  args['access-token-ttl'] ?? process.env.OIDC_ACCESS_TOKEN_TTL ?? '60',
);
const REFRESH_TOKEN_TTL = positiveInt(
  'refresh-token-ttl',
  args['refresh-token-ttl'] ?? process.env.OIDC_REFRESH_TOKEN_TTL ?? String(24 * 60 * 60),
);

// Resolve oidc-provider from the working directory first (the harness runs us with
// cwd = the npm cache dir and NODE_PATH = its node_modules), then next to this file.
// A plain `import 'oidc-provider'` would only look next to this file: ESM ignores NODE_PATH.
const require = createRequire(import.meta.url);
const providerEntry = require.resolve('oidc-provider', {
  paths: [process.cwd(), import.meta.dirname ?? process.cwd()],
});
const { default: Provider } = await import(pathToFileURL(providerEntry).href);
const providerVersion = require(require.resolve('oidc-provider/package.json', {
  paths: [process.cwd(), import.meta.dirname ?? process.cwd()],
})).version;

// ---------------------------------------------------------------- counters ----

function freshStats() {
  return {
    token_requests: 0, // every request that hit the token endpoint (faulted ones included)
    faults_served: 0, // token-endpoint requests answered by an injected fault
    authorization_code_grants: 0,
    device_code_grants: 0,
    client_credentials_grants: 0,
    refresh_success: 0,
    refresh_failure: 0,
    refresh_errors: {}, // error code -> count, refresh_token grant only
    refresh_reuse_detected: 0, // consumed refresh token presented again -> grant revoked
    token_errors: {}, // error code -> count, all grant types (authorization_pending too)
    grants_revoked: 0, // grant.revoked events (reuse detection, revocation endpoint)
    revocations: 0, // revocation endpoint requests answered 200
    resource_ok: 0, // 200s on /api/*
    resource_unauthorized: 0, // 401s on /api/*
  };
}
let stats = freshStats();
let fault = null; // { status, retryAfter, body, contentType, count }

const bump = (counter, key) => {
  counter[key] = (counter[key] ?? 0) + 1;
};
const grantTypeOf = (ctx) => ctx.oidc?.params?.grant_type;

// ------------------------------------------------------------------ server ----

// Listen first so the issuer can carry the real port.
const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(0, '127.0.0.1', resolve);
});
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-es256', alg: 'ES256', use: 'sig' };

const REFRESH_GRANT_TYPES = ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'];

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'test-cli',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: REFRESH_GRANT_TYPES,
      response_types: ['code'],
      // Native client + http loopback host: oidc-provider ignores the port when matching
      // (RFC 8252 section 7.3), so http://127.0.0.1:<any port>/callback is accepted too.
      redirect_uris: ['http://127.0.0.1/callback', 'http://[::1]/callback', 'http://localhost/callback'],
      scope: 'openid profile email offline_access api',
    },
    {
      client_id: 'test-service',
      client_secret: 'test-service-secret',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: 'api',
    },
  ],
  clientDefaults: {
    grant_types: ['authorization_code'],
    id_token_signed_response_alg: 'ES256',
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  },
  jwks: { keys: [signingKey] },
  cookies: { keys: ['requests-refreshauth-test-cookie-key'] },
  scopes: ['openid', 'profile', 'email', 'offline_access', 'api'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
  },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.test`, email_verified: true, name: id, preferred_username: id };
      },
    };
  },
  pkce: { required: () => true }, // oidc-provider 9 only implements S256
  rotateRefreshToken: true,
  // A refresh token whenever the client may use the refresh_token grant, without
  // offline_access / prompt=consent; and it must not die with the browser session.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  expiresWithSession: async () => false,
  ttl: {
    AccessToken: ACCESS_TOKEN_TTL,
    ClientCredentials: ACCESS_TOKEN_TTL,
    RefreshToken: REFRESH_TOKEN_TTL,
    AuthorizationCode: 60,
    DeviceCode: 600,
    IdToken: 3600,
    Interaction: 3600,
    Session: 14 * 24 * 60 * 60,
    Grant: Math.max(REFRESH_TOKEN_TTL, 14 * 24 * 60 * 60),
  },
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    clientCredentials: { enabled: true },
    revocation: {
      enabled: true,
      allowedPolicy: async (ctx, client, token) => token.clientId === client.clientId,
    },
    introspection: {
      enabled: true,
      allowedPolicy: async (ctx, client, token) => client.clientAuthMethod !== 'none' || token.clientId === client.clientId,
    },
    // Opaque tokens only: no resource indicators, so every access token is found by
    // AccessToken.find / ClientCredentials.find below.
    resourceIndicators: { enabled: false },
  },
});

provider.on('grant.success', (ctx) => {
  switch (grantTypeOf(ctx)) {
    case 'refresh_token':
      stats.refresh_success += 1;
      break;
    case 'authorization_code':
      stats.authorization_code_grants += 1;
      break;
    case 'urn:ietf:params:oauth:grant-type:device_code':
      stats.device_code_grants += 1;
      break;
    case 'client_credentials':
      stats.client_credentials_grants += 1;
      break;
    default:
      break;
  }
});

function countTokenError(ctx, code) {
  bump(stats.token_errors, code);
  if (grantTypeOf(ctx) === 'refresh_token') {
    stats.refresh_failure += 1;
    bump(stats.refresh_errors, code);
  }
}
provider.on('grant.error', (ctx, err) => countTokenError(ctx, err.error ?? 'unknown'));
provider.on('server_error', (ctx, err) => {
  console.error('oidc-provider server_error:', err);
  if (ctx.oidc?.route === 'token') countTokenError(ctx, 'server_error');
});
provider.on('grant.revoked', (ctx) => {
  stats.grants_revoked += 1;
  // The refresh_token grant revokes the grant only when a consumed (rotated) refresh
  // token is presented again.
  if (ctx.oidc?.route === 'token' && grantTypeOf(ctx) === 'refresh_token') {
    stats.refresh_reuse_detected += 1;
  }
});
provider.use(async (ctx, next) => {
  await next();
  if (ctx.oidc?.route === 'revocation' && ctx.status === 200) stats.revocations += 1;
});

const providerCallback = provider.callback();

// ------------------------------------------------------- extra routes ----

function send(res, status, body, headers = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

async function findBearerToken(value) {
  const options = { ignoreExpiration: true }; // expiry is checked below, without clock tolerance
  return (await provider.AccessToken.find(value, options))
    ?? (await provider.ClientCredentials.find(value, options));
}

async function protectedResource(req, res, pathname) {
  const unauthorized = (challenge) => {
    stats.resource_unauthorized += 1;
    send(res, 401, { error: 'unauthorized' }, { 'www-authenticate': challenge });
  };

  const match = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '');
  if (!match) {
    unauthorized('Bearer realm="api"');
    return;
  }
  const token = await findBearerToken(match[1]);
  // Sender-constrained (DPoP / mTLS) tokens are not usable as plain bearer tokens.
  if (!token || token.isExpired || token.jkt || token['x5t#S256']) {
    unauthorized('Bearer realm="api", error="invalid_token", error_description="access token is invalid or expired"');
    return;
  }
  if (pathname === '/api/scoped') {
    unauthorized('Bearer realm="api", error="insufficient_scope", scope="admin"');
    return;
  }
  stats.resource_ok += 1;
  send(res, 200, {
    sub: token.accountId ?? null,
    client_id: token.clientId,
    scope: token.scope ?? '',
    kind: token.kind,
    exp: token.exp,
  });
}

async function setFault(req, res) {
  const spec = JSON.parse((await readBody(req)) || '{}');
  const count = spec.count ?? 1;
  const status = spec.token_status ?? (spec.token_body === undefined ? 503 : 200);
  if (!Number.isSafeInteger(count) || count < 0 || !Number.isSafeInteger(status) || status < 200 || status > 599) {
    send(res, 400, { error: 'invalid fault spec' });
    return;
  }
  fault = count === 0 ? null : {
    count,
    status,
    retryAfter: spec.retry_after,
    body: spec.token_body ?? JSON.stringify({ error: 'temporarily_unavailable' }),
    contentType: spec.content_type ?? 'application/json',
  };
  send(res, 200, { fault });
}

// Claims one use of the pending fault synchronously, so concurrent requests can't race.
function takeFault() {
  const taken = fault;
  if (!taken) return null;
  taken.count -= 1;
  if (taken.count <= 0) fault = null;
  stats.faults_served += 1;
  return taken;
}

async function serveFault(req, res, { status, retryAfter, body, contentType }) {
  await readBody(req); // drain the request so the connection stays usable
  const headers = { 'content-type': contentType };
  if (retryAfter !== undefined && retryAfter !== null) headers['retry-after'] = String(retryAfter);
  send(res, status, body, headers);
}

const TOKEN_PATH = new URL(provider.urlFor('token')).pathname;

server.on('request', async (req, res) => {
  try {
    const { pathname } = new URL(req.url, issuer);
    const route = `${req.method} ${pathname}`;

    if (route === 'GET /api/whoami' || route === 'GET /api/scoped') {
      await protectedResource(req, res, pathname);
    } else if (route === 'GET /__test/stats') {
      send(res, 200, stats);
    } else if (route === 'POST /__test/reset') {
      stats = freshStats();
      fault = null;
      send(res, 200, stats);
    } else if (route === 'POST /__test/fault') {
      await setFault(req, res);
    } else {
      if (pathname === TOKEN_PATH) {
        stats.token_requests += 1;
        const pending = req.method === 'POST' ? takeFault() : null;
        if (pending) {
          await serveFault(req, res, pending);
          return;
        }
      }
      providerCallback(req, res);
    }
  } catch (err) {
    console.error('test server error:', err);
    if (!res.headersSent) send(res, 500, { error: 'server_error' });
    else res.destroy();
  }
});

// ------------------------------------------------------------- lifecycle ----

let stopping = false;
function shutdown(reason) {
  if (stopping) return;
  stopping = true;
  console.error(`oidc test server: shutting down (${reason})`);
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
// Stdin is a pipe held by the parent: EOF means the parent is gone or done.
process.stdin.on('end', () => shutdown('stdin closed'));
process.stdin.on('error', () => shutdown('stdin error'));
process.stdin.resume();

console.error(
  `oidc test server: oidc-provider ${providerVersion} on node ${process.version}, issuer ${issuer}, `
  + `access token ttl ${ACCESS_TOKEN_TTL}s, refresh token ttl ${REFRESH_TOKEN_TTL}s`,
);
process.stdout.write(`${JSON.stringify({ issuer, port, oidc_provider: providerVersion })}\n`);
