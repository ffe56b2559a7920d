// A fake Microsoft Entra ID (Azure AD) for tests: the v2.0 OpenID configuration and token endpoint
// of a tenant (client secret, certificate assertion, federated assertion), the App Service
// managed identity endpoint, and the book of access tokens it issued, which the fake Key Vault
// checks. Status codes, error bodies and AADSTS codes follow what Entra ID answers.
import { createPublicKey, createVerify, randomBytes, randomUUID, verify as verifySignature, constants as cryptoConstants } from 'node:crypto';
import type { Server } from 'bun';
import type { TestCa } from '../tls.ts';

export interface IssuedToken {
  /** The client id of the application or managed identity the token was issued to. */
  principal: string;
  /** The resource the token is for (`https://vault.azure.net`). */
  audience: string;
  tenantId: string;
  expiresAt: number;
}

/** Tokens issued by the fake Entra ID, looked up by the fake Key Vault. */
export class TokenBook {
  readonly #tokens = new Map<string, IssuedToken>();

  issue(principal: string, audience: string, tenantId: string, lifetimeSeconds = 3599): string {
    const now = Math.floor(Date.now() / 1000);
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    // Shaped like an Entra access token (a JWT); the signature is random: only this book vouches for it.
    const token = `${b64({ typ: 'JWT', alg: 'RS256', kid: 'fake-entra' })}.${b64({ aud: audience, iss: `https://sts.windows.net/${tenantId}/`, iat: now, nbf: now, exp: now + lifetimeSeconds, appid: principal, tid: tenantId, oid: principal })}.${randomBytes(32).toString('base64url')}`;
    this.#tokens.set(token, { principal, audience, tenantId, expiresAt: Date.now() + lifetimeSeconds * 1000 });
    return token;
  }

  lookup(token: string): IssuedToken | undefined {
    return this.#tokens.get(token);
  }

  /** Makes every token issued so far expired, as if time had passed. */
  expireAll(): void {
    for (const t of this.#tokens.values()) t.expiresAt = 0;
  }

  all(): string[] {
    return [...this.#tokens.keys()];
  }
}

type Principal =
  | { kind: 'secret'; secret: string }
  | { kind: 'certificate'; certPem: string }
  | { kind: 'federated'; issuer: string; subject: string; audience: string };

export interface FakeEntraStats {
  openidConfiguration: number;
  instanceDiscovery: number;
  tokenRequests: number;
  managedIdentityRequests: number;
}

export interface FakeEntra {
  /** `https://127.0.0.1:PORT`: the authority host (dso.yaml `authority_host`). */
  authorityHost: string;
  tenantId: string;
  /** The App Service managed identity endpoint (IDENTITY_ENDPOINT) and its secret header (IDENTITY_HEADER). */
  identityEndpoint: string;
  identityHeader: string;
  /** Where the IMDS token path is served (AZURE_POD_IDENTITY_AUTHORITY_HOST). */
  imdsHost: string;
  tokens: TokenBook;
  stats: FakeEntraStats;
  addClientSecret(clientId: string, secret: string): void;
  addClientCertificate(clientId: string, certPem: string): void;
  /** A federated identity credential: assertions from `issuer` about `subject` log in as `clientId`. */
  addFederatedCredential(clientId: string, issuer: string, subject: string): void;
  /** A JWT as a Kubernetes service account token projected for workload identity would be. */
  federatedToken(issuer: string, subject: string, options?: { audience?: string; expiresInSeconds?: number }): string;
  /** The system-assigned managed identity (client id) and user-assigned ones. */
  setManagedIdentities(systemAssigned: string | undefined, userAssigned: string[]): void;
  /** Answer every token request with this HTTP status (500, 503...), or null for normal service. */
  failTokens(status: number | null): void;
  /** Answer token requests (Entra ID and managed identity) this many milliseconds late. */
  slowTokens(ms: number): void;
  stop(): void;
}

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store, no-cache' };

function aadError(status: number, error: string, code: number, description: string): Response {
  const timestamp = new Date().toISOString().replace('T', ' ').slice(0, 19) + 'Z';
  const traceId = randomUUID();
  const correlationId = randomUUID();
  return new Response(
    JSON.stringify({
      error,
      error_description: `AADSTS${code}: ${description}\r\nTrace ID: ${traceId}\r\nCorrelation ID: ${correlationId}\r\nTimestamp: ${timestamp}`,
      error_codes: [code],
      timestamp,
      trace_id: traceId,
      correlation_id: correlationId,
      error_uri: `https://login.microsoftonline.com/error?code=${code}`,
    }),
    { status, headers: JSON_HEADERS },
  );
}

function decodeJwt(jwt: string): { header: Record<string, unknown>; payload: Record<string, unknown>; signed: string; signature: Buffer } | undefined {
  const parts = jwt.split('.');
  if (parts.length !== 3) return undefined;
  try {
    return {
      header: JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8')),
      payload: JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')),
      signed: `${parts[0]}.${parts[1]}`,
      signature: Buffer.from(parts[2]!, 'base64url'),
    };
  } catch {
    return undefined;
  }
}

/** A client assertion signed with the private key of `certPem` (RS256 or PS256, as MSAL signs). */
function assertionSignedBy(jwt: ReturnType<typeof decodeJwt>, certPem: string): boolean {
  if (!jwt) return false;
  const key = createPublicKey(certPem);
  if (jwt.header.alg === 'RS256') return createVerify('RSA-SHA256').update(jwt.signed).verify(key, jwt.signature);
  if (jwt.header.alg === 'PS256') {
    return verifySignature('sha256', Buffer.from(jwt.signed), { key, padding: cryptoConstants.RSA_PKCS1_PSS_PADDING, saltLength: cryptoConstants.RSA_PSS_SALTLEN_DIGEST }, jwt.signature);
  }
  return false;
}

export function startFakeEntra(ca: TestCa, options: { tenantId?: string } = {}): FakeEntra {
  const tenantId = options.tenantId ?? randomUUID();
  const tokens = new TokenBook();
  const principals = new Map<string, Principal>();
  const stats: FakeEntraStats = { openidConfiguration: 0, instanceDiscovery: 0, tokenRequests: 0, managedIdentityRequests: 0 };
  const identityHeader = randomBytes(18).toString('hex');
  let systemAssigned: string | undefined;
  let userAssigned = new Set<string>();
  let failStatus: number | null = null;
  let tokenDelayMs = 0;

  const login: Server<undefined> = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    tls: { cert: ca.serverCert, key: ca.serverKey },
    async fetch(req) {
      const url = new URL(req.url);
      const origin = `https://127.0.0.1:${login.port}`;
      const parts = url.pathname.split('/').filter(Boolean);
      // Instance discovery is what MSAL calls unless told not to (disableInstanceDiscovery).
      if (parts[0] === 'common' && parts[1] === 'discovery' && parts[2] === 'instance') {
        stats.instanceDiscovery++;
        return new Response(JSON.stringify({ tenant_discovery_endpoint: `${origin}/${tenantId}/v2.0/.well-known/openid-configuration`, 'api-version': '1.1', metadata: [{ preferred_network: url.host, preferred_cache: url.host, aliases: [url.host] }] }), { headers: JSON_HEADERS });
      }
      const tenant = parts[0];
      if (tenant !== tenantId && tenant !== 'organizations' && tenant !== 'common') {
        return aadError(400, 'invalid_request', 90002, `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`);
      }
      if (req.method === 'GET' && url.pathname === `/${tenant}/v2.0/.well-known/openid-configuration`) {
        stats.openidConfiguration++;
        const base = `${origin}/${tenantId}`;
        return new Response(
          JSON.stringify({
            token_endpoint: `${base}/oauth2/v2.0/token`,
            token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
            jwks_uri: `${base}/discovery/v2.0/keys`,
            response_modes_supported: ['query', 'fragment', 'form_post'],
            subject_types_supported: ['pairwise'],
            id_token_signing_alg_values_supported: ['RS256'],
            response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
            scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
            issuer: `${base}/v2.0`,
            request_uri_parameter_supported: false,
            userinfo_endpoint: 'https://graph.microsoft.com/oidc/userinfo',
            authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
            device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
            http_logout_supported: true,
            frontchannel_logout_supported: true,
            end_session_endpoint: `${base}/oauth2/v2.0/logout`,
            claims_supported: ['sub', 'iss', 'cloud_instance_name', 'cloud_instance_host_name', 'cloud_graph_host_name', 'msgraph_host', 'aud', 'exp', 'iat', 'auth_time', 'acr', 'nonce', 'preferred_username', 'name', 'tid', 'ver', 'at_hash', 'c_hash', 'email'],
            kerberos_endpoint: `${base}/kerberos`,
            tenant_region_scope: 'EU',
            cloud_instance_name: 'microsoftonline.com',
            cloud_graph_host_name: 'graph.windows.net',
            msgraph_host: 'graph.microsoft.com',
            rbac_url: 'https://pas.windows.net',
          }),
          { headers: JSON_HEADERS },
        );
      }
      if (url.pathname === `/${tenant}/oauth2/v2.0/token`) {
        if (req.method !== 'POST') return aadError(405, 'invalid_request', 900561, 'The endpoint only accepts POST requests.');
        stats.tokenRequests++;
        if (tokenDelayMs > 0) await Bun.sleep(tokenDelayMs);
        if (failStatus !== null) return new Response(`<html><body>Service unavailable (${failStatus})</body></html>`, { status: failStatus, headers: { 'content-type': 'text/html' } });
        const form = new URLSearchParams(await req.text());
        return tokenResponse(form, `${origin}/${tenantId}/oauth2/v2.0/token`);
      }
      return new Response('', { status: 404 });
    },
  });

  function tokenResponse(form: URLSearchParams, tokenEndpoint: string): Response {
    if (form.get('grant_type') !== 'client_credentials') return aadError(400, 'unsupported_grant_type', 70003, 'The app requested an unsupported grant type.');
    const clientId = form.get('client_id') ?? '';
    const scope = form.get('scope') ?? '';
    const resource = scope.split(' ').find((s) => s.endsWith('/.default'))?.slice(0, -'/.default'.length);
    if (!resource) return aadError(400, 'invalid_scope', 1002012, `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`);
    const principal = principals.get(clientId);
    if (!principal) return aadError(400, 'unauthorized_client', 700016, `Application with identifier '${clientId}' was not found in the directory '${tenantId}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.`);
    const secret = form.get('client_secret');
    const assertion = form.get('client_assertion');
    if (principal.kind === 'secret') {
      if (secret === null) return aadError(401, 'invalid_client', 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.");
      if (secret !== principal.secret) return aadError(401, 'invalid_client', 7000215, `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${clientId}'.`);
    } else {
      if (assertion === null || form.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') {
        return aadError(401, 'invalid_client', 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.");
      }
      const jwt = decodeJwt(assertion);
      const now = Date.now() / 1000;
      if (!jwt) return aadError(401, 'invalid_client', 50027, 'JWT token is invalid or malformed.');
      if (typeof jwt.payload.exp !== 'number' || jwt.payload.exp < now) return aadError(400, 'invalid_client', 700024, 'Client assertion is not within its valid time range.');
      if (principal.kind === 'certificate') {
        if (jwt.payload.aud !== tokenEndpoint || jwt.payload.iss !== clientId || jwt.payload.sub !== clientId) return aadError(401, 'invalid_client', 700021, 'Client assertion application identifier doesn\'t match \'client_id\' parameter.');
        if (!assertionSignedBy(jwt, principal.certPem)) return aadError(401, 'invalid_client', 700027, 'Client assertion failed signature validation.');
      } else if (jwt.payload.iss !== principal.issuer || jwt.payload.sub !== principal.subject || ![jwt.payload.aud].flat().includes(principal.audience)) {
        return aadError(400, 'invalid_request', 70021, `No matching federated identity record found for presented assertion. Assertion Issuer: '${String(jwt.payload.iss)}'. Assertion Subject: '${String(jwt.payload.sub)}'. Assertion Audience: '${String(jwt.payload.aud)}'.`);
      }
    }
    const accessToken = tokens.issue(clientId, resource, tenantId);
    return new Response(JSON.stringify({ token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: accessToken }), { headers: JSON_HEADERS });
  }

  // App Service / Functions / Container Apps: plain HTTP on the host, guarded by a header only the
  // platform and the app know (IDENTITY_HEADER).
  const identity: Server<undefined> = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(req) {
      if (tokenDelayMs > 0) await Bun.sleep(tokenDelayMs);
      const url = new URL(req.url);
      const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: JSON_HEADERS });
      // MSAL asks IMDS for ".../oauth2/token/", with a slash at the end; IMDS answers either form.
      const path = url.pathname.replace(/\/$/, '');
      if (path === '/metadata/identity/oauth2/token') return imds(req, url, json);
      if (path !== '/msi/token') return json(404, { statusCode: 404, message: 'Not found' });
      stats.managedIdentityRequests++;
      if (req.headers.get('x-identity-header') !== identityHeader) return json(401, { statusCode: 401, message: 'Unauthorized: the X-IDENTITY-HEADER header is missing or not valid.', correlationId: randomUUID() });
      if (url.searchParams.get('api-version') !== '2019-08-01') return json(400, { statusCode: 400, message: 'The api-version is missing or not supported.', correlationId: randomUUID() });
      const resource = url.searchParams.get('resource');
      if (!resource) return json(400, { statusCode: 400, message: 'The resource parameter is missing.', correlationId: randomUUID() });
      if (failStatus !== null) return json(failStatus, { statusCode: failStatus, message: 'The managed identity service is unavailable.', correlationId: randomUUID() });
      const requested = url.searchParams.get('client_id') ?? undefined;
      const principal = requested === undefined ? systemAssigned : userAssigned.has(requested) ? requested : undefined;
      if (!principal) return json(400, { statusCode: 400, message: 'No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId.', correlationId: randomUUID() });
      const expiresOn = Math.floor(Date.now() / 1000) + 86_399;
      return json(200, { access_token: tokens.issue(principal, resource, tenantId, 86_399), expires_on: String(expiresOn), resource, token_type: 'Bearer', client_id: principal });
    },
  });

  // The Instance Metadata Service of a VM (or AAD Pod Identity's NMI, which
  // AZURE_POD_IDENTITY_AUTHORITY_HOST points at): no secret, only the Metadata header.
  function imds(req: Request, url: URL, json: (status: number, body: unknown) => Response): Response {
    stats.managedIdentityRequests++;
    if (req.headers.get('metadata') !== 'true') return json(400, { error: 'invalid_request', error_description: 'Required metadata header not specified' });
    const resource = url.searchParams.get('resource');
    if (url.searchParams.get('api-version') !== '2018-02-01' || !resource) return json(400, { error: 'invalid_request', error_description: 'Required query variable \'api-version\' or \'resource\' is missing or not supported' });
    if (failStatus !== null) return json(failStatus, { error: 'service_unavailable', error_description: 'The managed identity service is unavailable.' });
    const requested = url.searchParams.get('client_id') ?? undefined;
    const principal = requested === undefined ? systemAssigned : userAssigned.has(requested) ? requested : undefined;
    if (!principal) return json(400, { error: 'invalid_request', error_description: 'Identity not found' });
    const now = Math.floor(Date.now() / 1000);
    return json(200, { access_token: tokens.issue(principal, resource, tenantId, 86_399), client_id: principal, expires_in: '86399', expires_on: String(now + 86_399), ext_expires_in: '86399', not_before: String(now), resource, token_type: 'Bearer' });
  }

  return {
    authorityHost: `https://127.0.0.1:${login.port}`,
    imdsHost: `http://127.0.0.1:${identity.port}`,
    tenantId,
    identityEndpoint: `http://127.0.0.1:${identity.port}/msi/token`,
    identityHeader,
    tokens,
    stats,
    addClientSecret: (clientId, secret) => void principals.set(clientId, { kind: 'secret', secret }),
    addClientCertificate: (clientId, certPem) => void principals.set(clientId, { kind: 'certificate', certPem }),
    addFederatedCredential: (clientId, issuer, subject) => void principals.set(clientId, { kind: 'federated', issuer, subject, audience: 'api://AzureADTokenExchange' }),
    federatedToken(issuer, subject, opts = {}) {
      const now = Math.floor(Date.now() / 1000);
      const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
      return `${b64({ alg: 'RS256', kid: 'fake-k8s' })}.${b64({ aud: [opts.audience ?? 'api://AzureADTokenExchange'], iss: issuer, sub: subject, iat: now, nbf: now, exp: now + (opts.expiresInSeconds ?? 3600) })}.${randomBytes(64).toString('base64url')}`;
    },
    setManagedIdentities(system, user) {
      systemAssigned = system;
      userAssigned = new Set(user);
    },
    failTokens(status) {
      failStatus = status;
    },
    slowTokens(ms) {
      tokenDelayMs = ms;
    },
    stop() {
      login.stop(true);
      identity.stop(true);
    },
  };
}
