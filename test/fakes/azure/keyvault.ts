// A fake Azure Key Vault (secrets data plane) over HTTPS, as the documented REST API behaves: the
// bearer challenge on an unauthenticated request, tokens checked against what the fake Entra ID
// issued (audience, expiry, access), GET /secrets/{name}[/{version}], GET /secrets with nextLink
// paging, and Key Vault's error bodies ({"error":{"code","message","innererror"}}).
import { randomUUID } from 'node:crypto';
import type { Server } from 'bun';
import type { TokenBook } from './entra.ts';
import type { TestCa } from '../tls.ts';

/** The resource Key Vault tokens are for, in Azure's public cloud. */
export const KEY_VAULT_RESOURCE = 'https://vault.azure.net';

interface SecretVersion {
  version: string;
  value: string;
  enabled: boolean;
  contentType?: string;
  created: number;
  updated: number;
}

export interface FakeKeyVaultStats {
  /** 401 answers with a bearer challenge to requests that carried no token. */
  challenges: number;
  /** Requests that carried a token the vault accepted. */
  authorized: number;
  requests: number;
  /** Pages of GET /secrets served. */
  listPages: number;
  /** Every api-version the client sent. */
  apiVersions: Set<string>;
}

export interface FakeKeyVault {
  /** `https://127.0.0.1:PORT` (dso.yaml `vault_url`). */
  vaultUrl: string;
  stats: FakeKeyVaultStats;
  /** Adds a new version of `name` (the latest from now on) and returns its version id. */
  setSecret(name: string, value: string, options?: { enabled?: boolean; contentType?: string }): string;
  /** Enables or disables one version (by default the latest). */
  setEnabled(name: string, enabled: boolean, version?: string): void;
  deleteSecret(name: string): void;
  /** Principals (client ids) whose valid tokens get 403, as without an access policy or role. */
  deny(principal: string): void;
  allow(principal: string): void;
  /** Answer every request this many milliseconds late (0: at once). */
  slow(ms: number): void;
  /** Answer every request with this status (500, 503...) and Key Vault's error body, or null. */
  fail(status: number | null): void;
  /** Page size of GET /secrets when the client does not send maxresults. */
  pageSize: number;
  /** The resource the 401 challenge names (a vault that is not what it claims names another). */
  challengeResource: string;
  stop(): void;
}

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-cache', 'x-ms-keyvault-service-version': '1.9.0.0-fake' };

function kvError(status: number, code: string, message: string, inner?: string, extra: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ error: { code, message, ...(inner === undefined ? {} : { innererror: { code: inner } }) } }), { status, headers: { ...JSON_HEADERS, 'x-ms-request-id': randomUUID(), ...extra } });
}

export function startFakeKeyVault(ca: TestCa, tokens: TokenBook, tenantId: string): FakeKeyVault {
  const secrets = new Map<string, SecretVersion[]>();
  const denied = new Set<string>();
  const stats: FakeKeyVaultStats = { challenges: 0, authorized: 0, requests: 0, listPages: 0, apiVersions: new Set() };
  let delayMs = 0;
  let failStatus: number | null = null;
  // Key Vault names the tenant's authority and the resource to ask a token for.
  const challenge = () => `Bearer authorization="https://login.windows.net/${tenantId}", resource="${fake.challengeResource}"`;
  const unauthorized = (message: string) => kvError(401, 'Unauthorized', message, undefined, { 'www-authenticate': challenge() });

  const fake: FakeKeyVault = {
    vaultUrl: '',
    stats,
    pageSize: 25,
    challengeResource: KEY_VAULT_RESOURCE,
    setSecret(name, value, options = {}) {
      const now = Math.floor(Date.now() / 1000);
      const version = randomUUID().replaceAll('-', '');
      const versions = secrets.get(name) ?? [];
      versions.push({ version, value, enabled: options.enabled ?? true, created: now, updated: now, ...(options.contentType === undefined ? {} : { contentType: options.contentType }) });
      secrets.set(name, versions);
      return version;
    },
    setEnabled(name, enabled, version) {
      const versions = secrets.get(name) ?? [];
      const v = version === undefined ? versions.at(-1) : versions.find((x) => x.version === version);
      if (!v) throw new Error(`fake key vault: no secret ${name} ${version ?? ''}`);
      v.enabled = enabled;
      v.updated = Math.floor(Date.now() / 1000);
    },
    deleteSecret: (name) => void secrets.delete(name),
    deny: (p) => void denied.add(p),
    allow: (p) => void denied.delete(p),
    slow(ms) {
      delayMs = ms;
    },
    fail(status) {
      failStatus = status;
    },
    stop: () => server.stop(true),
  };

  const server: Server<undefined> = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    tls: { cert: ca.serverCert, key: ca.serverKey },
    async fetch(req) {
      stats.requests++;
      if (delayMs > 0) await Bun.sleep(delayMs);
      if (failStatus !== null) return kvError(failStatus, 'InternalServerError', 'The service encountered an internal error. Please try again.');
      const url = new URL(req.url);
      const auth = req.headers.get('authorization');
      if (!auth) {
        stats.challenges++;
        return unauthorized('AKV10000: Request is missing a Bearer or PoP token.');
      }
      const token = /^Bearer (.+)$/.exec(auth)?.[1];
      const issued = token === undefined ? undefined : tokens.lookup(token);
      if (!issued) return unauthorized("[BearerReadAccessTokenFailed] Error validating token: 'S2S12005'.");
      if (issued.expiresAt <= Date.now()) return unauthorized("[TokenExpired] Error validating token: 'S2S12086'.");
      if (issued.audience !== KEY_VAULT_RESOURCE) return unauthorized(`AKV10022: Invalid audience. Expected ${KEY_VAULT_RESOURCE}, found: ${issued.audience}.`);
      if (issued.tenantId !== tenantId) return unauthorized(`AKV10032: Invalid issuer. Expected one of https://sts.windows.net/${tenantId}/, found https://sts.windows.net/${issued.tenantId}/.`);
      stats.authorized++;

      const apiVersion = url.searchParams.get('api-version');
      if (!apiVersion) return kvError(400, 'BadParameter', 'The request URI contains an invalid or missing api-version query parameter.');
      stats.apiVersions.add(apiVersion);
      const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
      if (parts[0] !== 'secrets' || parts.length > 3 || req.method !== 'GET') return kvError(404, 'NotFound', 'The requested resource was not found.');

      if (denied.has(issued.principal)) {
        return kvError(403, 'Forbidden', `Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid=${issued.principal};oid=${issued.principal};iss=https://sts.windows.net/${tenantId}/\r\nAction: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\nResource: '/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/dso/providers/microsoft.keyvault/vaults/fake/secrets/${parts[1] ?? ''}'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: null \r\nVault: fake;location=westeurope\r\n`, 'ForbiddenByRbac');
      }

      if (parts.length === 1) return listPage(url, apiVersion);
      const name = parts[1]!;
      const versions = secrets.get(name) ?? [];
      const version = parts[2];
      const found = version === undefined ? versions.at(-1) : versions.find((v) => v.version === version);
      if (!found) {
        return kvError(404, 'SecretNotFound', `A secret with (name/id) ${version === undefined ? name : `${name}/${version}`} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`);
      }
      if (!found.enabled) return kvError(403, 'Forbidden', 'Operation get is not allowed on a disabled secret.', 'SecretDisabled');
      return new Response(
        JSON.stringify({
          value: found.value,
          ...(found.contentType === undefined ? {} : { contentType: found.contentType }),
          id: `${fake.vaultUrl}/secrets/${name}/${found.version}`,
          attributes: { enabled: true, created: found.created, updated: found.updated, recoveryLevel: 'Recoverable+Purgeable', recoverableDays: 90 },
          tags: {},
        }),
        { headers: { ...JSON_HEADERS, 'x-ms-request-id': randomUUID() } },
      );
    },
  });
  fake.vaultUrl = `https://127.0.0.1:${server.port}`;

  function listPage(url: URL, apiVersion: string): Response {
    const max = Number(url.searchParams.get('maxresults') ?? fake.pageSize);
    if (!Number.isInteger(max) || max < 1 || max > 25) return kvError(400, 'BadParameter', 'The value of maxresults must be between 1 and 25.');
    stats.listPages++;
    const skip = url.searchParams.get('$skiptoken');
    const start = skip === null ? 0 : Number(Buffer.from(skip, 'base64url').toString('utf8'));
    const names = [...secrets.keys()].sort();
    const page = names.slice(start, start + max).map((name) => {
      const latest = secrets.get(name)!.at(-1)!;
      return { id: `${fake.vaultUrl}/secrets/${name}`, attributes: { enabled: latest.enabled, created: latest.created, updated: latest.updated, recoveryLevel: 'Recoverable+Purgeable', recoverableDays: 90 }, tags: {}, ...(latest.contentType === undefined ? {} : { contentType: latest.contentType }) };
    });
    const next = start + max < names.length ? `${fake.vaultUrl}/secrets?api-version=${apiVersion}&$skiptoken=${Buffer.from(String(start + max)).toString('base64url')}&maxresults=${max}` : null;
    return new Response(JSON.stringify({ value: page, nextLink: next }), { headers: { ...JSON_HEADERS, 'x-ms-request-id': randomUUID() } });
  }

  return fake;
}
