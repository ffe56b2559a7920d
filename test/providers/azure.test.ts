// The Azure Key Vault provider against a fake Key Vault and a fake Entra ID over HTTPS with a CA
// made for the test: every auth method, the bearer challenge, versions, disabled secrets, each kind
// of failure, the CA given to the SDK's HTTP client (so that it works in a Worker), the provider
// across the Worker and process boundaries, and no credential, token or value in any message.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as v from 'valibot';
import { createProvider } from '../../providers/azure/client.ts';
import { isKeyVaultHost, isKeyVaultScope } from '../../providers/azure/clouds.ts';
import { definition, type AzureConfig } from '../../providers/azure/config.ts';
import { parseConfig } from '../../src/config/load.ts';
import { parseSecretId } from '../../src/compose/references.ts';
import { DsoError } from '../../src/errors.ts';
import { ProviderError, type Provider } from '../../src/providers/contract.ts';
import { ProviderHost } from '../../src/providers/host.ts';
import { ProviderSet, resolveProviderSecrets } from '../../src/providers/resolver.ts';
import { selectKey } from '../../src/providers/select-key.ts';
import { startConnectProxy, startFakeAzure, type FakeAzure } from '../fakes/azure/index.ts';

const SP_CLIENT = '0a1b2c3d-0000-4000-8000-000000000001';
const SP_SECRET = 'sp-client-secret-Q7w9~e2R_t5Y';
const CERT_CLIENT = '0a1b2c3d-0000-4000-8000-000000000002';
const WI_CLIENT = '0a1b2c3d-0000-4000-8000-000000000003';
const MI_SYSTEM = '0a1b2c3d-0000-4000-8000-000000000004';
const MI_USER = '0a1b2c3d-0000-4000-8000-000000000005';
const DENIED_CLIENT = '0a1b2c3d-0000-4000-8000-000000000006';
const DENIED_SECRET = 'denied-client-secret-Zx81~pq';
const EXAMPLE_TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const K8S_ISSUER = 'https://oidc.prod-aks.azure.com/fake-issuer/';
const K8S_SUBJECT = 'system:serviceaccount:apps:dso';

const VALUES = {
  plain: 'plain-value-Hq2v9sL0',
  json: '{"username":"app","password":"json-password-Jk37xZ"}',
  v1: 'version-one-value-Wb4n',
  v2: 'version-two-value-Pt8m',
  disabled: 'disabled-value-Yr5c',
  big: 'B'.repeat(2000),
};

let azure: FakeAzure;
let dir: string;
let certFile: string;
let wrongCertFile: string;
let federatedFile: string;
let federatedToken: string;
let v1: string;
let v2: string;
let olderEnabled: string;
/** Every error message seen, checked at the end for credentials, tokens and values. */
const messages: string[] = [];

beforeAll(async () => {
  azure = await startFakeAzure();
  dir = mkdtempSync(join(tmpdir(), 'dso-azure-test-'));
  const { entra, vault } = azure;
  entra.addClientSecret(SP_CLIENT, SP_SECRET);
  entra.addClientSecret(DENIED_CLIENT, DENIED_SECRET);
  const cert = azure.ca.clientCertificate('dso-app');
  certFile = cert.pemFile;
  entra.addClientCertificate(CERT_CLIENT, cert.certPem);
  wrongCertFile = azure.ca.clientCertificate('someone-else').pemFile;
  entra.addFederatedCredential(WI_CLIENT, K8S_ISSUER, K8S_SUBJECT);
  federatedToken = entra.federatedToken(K8S_ISSUER, K8S_SUBJECT);
  federatedFile = join(dir, 'azure-identity-token');
  writeFileSync(federatedFile, federatedToken);
  entra.setManagedIdentities(MI_SYSTEM, [MI_USER]);
  vault.deny(DENIED_CLIENT);
  vault.setSecret('plain', VALUES.plain);
  vault.setSecret('app-db', VALUES.json, { contentType: 'application/json' });
  v1 = vault.setSecret('versioned', VALUES.v1);
  v2 = vault.setSecret('versioned', VALUES.v2);
  olderEnabled = vault.setSecret('switched-off', 'older-enabled-value-Gd3k');
  vault.setSecret('switched-off', VALUES.disabled, { enabled: false });
  vault.setSecret('big', VALUES.big);
});

afterAll(() => {
  azure?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

type Auth = AzureConfig['auth'];
const spAuth: Auth = { method: 'client_secret', tenant_id: '', client_id: SP_CLIENT, client_secret_env: 'AZ_SECRET' };

/** An entry for the fake: its vault, login host and CA; a `tenant_id` key gets the fake's tenant. */
function config(auth: Record<string, unknown>, over: Record<string, unknown> = {}): AzureConfig {
  const withTenant = 'tenant_id' in auth ? { ...auth, tenant_id: azure.tenantId } : auth;
  return v.parse(definition.schema, { vault_url: azure.vaultUrl, authority_host: azure.authorityHost, tls: { ca_cert: azure.caFile }, auth: withTenant, ...over });
}

async function provider(auth: Record<string, unknown> = spAuth, env: Record<string, string> = { AZ_SECRET: SP_SECRET }, over: Record<string, unknown> = {}): Promise<Provider> {
  return createProvider(config(auth, over), { name: 'azure', env, log: () => {} });
}

const opts = (maxBytes = 1 << 20, ms = 10_000) => ({ maxBytes, signal: AbortSignal.timeout(ms) });
const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** The kind and message of the ProviderError `p` fails with; the message is kept for the leak check. */
async function failure(p: Promise<unknown>): Promise<{ kind: string; message: string }> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ProviderError);
    messages.push((e as Error).message);
    return { kind: (e as ProviderError).kind, message: (e as Error).message };
  }
  throw new Error('expected a ProviderError');
}

describe('configuration', () => {
  test('each auth method is accepted with its keys and names the variables it reads', () => {
    const base = { vault_url: 'https://dso-prod.vault.azure.net' };
    const parse = (auth: unknown, extra = {}) => v.parse(definition.schema, { ...base, auth, ...extra });
    const tenant = EXAMPLE_TENANT;
    const mi = parse({ method: 'managed_identity' });
    expect(definition.environment(mi)).toEqual([]);
    expect(definition.optionalEnvironment!(mi)).toEqual(['IDENTITY_ENDPOINT', 'IDENTITY_HEADER', 'IDENTITY_SERVER_THUMBPRINT', 'IMDS_ENDPOINT', 'MSI_ENDPOINT', 'MSI_SECRET', 'DEFAULT_IDENTITY_CLIENT_ID', 'AZURE_POD_IDENTITY_AUTHORITY_HOST']);
    expect(definition.environment(parse({ method: 'managed_identity', client_id: MI_USER }))).toEqual([]);
    const cs = parse({ method: 'client_secret', tenant_id: tenant, client_id: SP_CLIENT, client_secret_env: 'AZURE_CLIENT_SECRET' });
    expect(definition.environment(cs)).toEqual(['AZURE_CLIENT_SECRET']);
    expect(definition.optionalEnvironment!(cs)).toEqual([]);
    expect(definition.environment(parse({ method: 'client_secret', tenant_id: tenant, client_id: SP_CLIENT, client_secret_file: '/run/secrets/sp' }))).toEqual([]);
    expect(definition.environment(parse({ method: 'client_certificate', tenant_id: tenant, client_id: SP_CLIENT, certificate_file: '/etc/dso/sp.pem', certificate_password_env: 'CERT_PASS' }))).toEqual(['CERT_PASS']);
    expect(definition.environment(parse({ method: 'workload_identity' }))).toEqual(['AZURE_TENANT_ID', 'AZURE_CLIENT_ID', 'AZURE_FEDERATED_TOKEN_FILE']);
    expect(definition.environment(parse({ method: 'workload_identity', tenant_id: tenant, client_id: WI_CLIENT, token_file: '/var/run/token' }))).toEqual([]);
    const dflt = parse({ method: 'default' });
    expect(definition.optionalEnvironment!(dflt)).toContain('AZURE_CLIENT_SECRET');
    expect(definition.optionalEnvironment!(dflt)).toContain('IDENTITY_ENDPOINT');
    // The CA goes to the HTTP client, not to NODE_EXTRA_CA_CERTS: nothing forces a process.
    expect(definition.fixedEnvironment).toBeUndefined();
    expect(definition.defaultIsolation).toBe('worker');
    expect(parse({ method: 'default' }, { authority_host: 'https://login.microsoftonline.us', tls: { ca_cert: '/etc/ssl/corp.pem' } }).tls?.ca_cert).toBe('/etc/ssl/corp.pem');
  });

  test('bad entries are refused with messages that name the form and never quote the value', () => {
    const pasted = 'pasted-secret-value-9f8e7d';
    const bad: unknown[] = [
      { vault_url: 'http://dso.vault.azure.net', auth: { method: 'default' } },
      { vault_url: 'https://dso.vault.azure.net/secrets/x', auth: { method: 'default' } },
      { vault_url: pasted, auth: { method: 'default' } },
      { vault_url: 'https://dso.vault.azure.net' },
      { vault_url: 'https://dso.vault.azure.net', auth: { method: 'password' } },
      { vault_url: 'https://dso.vault.azure.net', auth: { method: 'client_secret', tenant_id: pasted, client_id: SP_CLIENT, client_secret_env: 'X' } },
      { vault_url: 'https://dso.vault.azure.net', auth: { method: 'client_secret', tenant_id: EXAMPLE_TENANT, client_id: SP_CLIENT } },
      { vault_url: 'https://dso.vault.azure.net', auth: { method: 'client_secret', tenant_id: EXAMPLE_TENANT, client_id: SP_CLIENT, client_secret_env: 'X', client_secret_file: '/x' } },
      { vault_url: 'https://dso.vault.azure.net', auth: { method: 'client_secret', tenant_id: EXAMPLE_TENANT, client_id: SP_CLIENT, client_secret: pasted } },
      { vault_url: 'https://dso.vault.azure.net', auth: { method: 'managed_identity', client_id: pasted } },
      { vault_url: 'https://dso.vault.azure.net', auth: { method: 'default' }, authority_host: 'http://login.example' },
      { vault_url: 'https://dso.vault.azure.net', auth: { method: 'default' }, tls: { ca: '/x' } },
    ];
    for (const entry of bad) {
      const r = v.safeParse(definition.schema, entry);
      expect(r.success).toBe(false);
      const text = r.issues!.map((i) => i.message).join('\n');
      expect(text).not.toContain(pasted);
      expect(text.length).toBeGreaterThan(0);
    }
    const r = v.safeParse(definition.schema, { vault_url: 'ftp://x', auth: { method: 'default' } });
    expect(r.issues![0]!.message).toContain('https://NAME.vault.azure.net');
  });

  test('the SDK\'s challenge check stays on for Key Vault hosts; tokens are only ever for Key Vault', () => {
    for (const host of ['dso.vault.azure.net', 'DSO.Vault.Azure.Net', 'dso.vault.azure.cn', 'dso.vault.usgovcloudapi.net']) expect(isKeyVaultHost(host)).toBe(true);
    for (const host of ['127.0.0.1', 'vault.azure.net', 'dso.vault.azure.net.example.com', 'dsovault.azure.net', 'kv.corp.example']) expect(isKeyVaultHost(host)).toBe(false);
    expect(isKeyVaultScope('https://vault.azure.net/.default', '127.0.0.1')).toBe(true);
    expect(isKeyVaultScope('https://vault.azure.cn/.default', 'dso.vault.azure.cn')).toBe(true);
    expect(isKeyVaultScope('https://vault.local.azurestack.external/.default', 'dso.vault.local.azurestack.external')).toBe(true);
    expect(isKeyVaultScope('https://management.azure.com/.default', '127.0.0.1')).toBe(false);
    expect(isKeyVaultScope('https://graph.microsoft.com/.default', 'dso.vault.azure.net')).toBe(false);
    expect(isKeyVaultScope('https://vault.azure.net', '127.0.0.1')).toBe(false);
  });

  test('a dso.yaml entry of type azure becomes settings that run in a Worker', async () => {
    const c = await parseConfig(`providers:\n  kv:\n    type: azure\n    vault_url: https://dso-prod.vault.azure.net\n    auth: { method: client_secret, tenant_id: ${EXAMPLE_TENANT}, client_id: ${SP_CLIENT}, client_secret_env: KV_SECRET }\n    tls: { ca_cert: /etc/ssl/corp.pem }\n`, 'dso.yaml');
    expect(c.providers.get('kv')).toMatchObject({ kind: 'azure', isolation: 'worker', env: ['KV_SECRET'], optionalEnv: [], fixedEnv: {} });
  });
});

describe('client secret', () => {
  test('reads a plain and a JSON secret after answering the bearer challenge once', async () => {
    const before = { ...azure.vault.stats, tokens: azure.entra.stats.tokenRequests };
    const p = await provider();
    const plain = await p.get('plain', opts());
    expect(text(plain.value)).toBe(VALUES.plain);
    expect(plain.version).toMatch(/^[0-9a-f]{32}$/);
    // The first request went without a token and got Key Vault's 401 challenge; the SDK then
    // logged in and repeated it with the token.
    expect(azure.vault.stats.challenges).toBe(before.challenges + 1);
    expect(azure.entra.stats.tokenRequests).toBe(before.tokens + 1);
    const json = await p.get('app-db', opts());
    expect(JSON.parse(text(json.value))).toEqual({ username: 'app', password: 'json-password-Jk37xZ' });
    expect(text(selectKey(json.value, 'password'))).toBe('json-password-Jk37xZ');
    // The token is reused: no second challenge, no second login.
    expect(azure.vault.stats.challenges).toBe(before.challenges + 1);
    expect(azure.entra.stats.tokenRequests).toBe(before.tokens + 1);
    expect([...azure.vault.stats.apiVersions]).toEqual(['2025-07-01']);
    // The authority is not Microsoft's: MSAL must not ask login.microsoftonline.com about it.
    expect(azure.entra.stats.instanceDiscovery).toBe(0);
  });

  test('a pinned version gives that version; without one, the latest', async () => {
    const p = await provider();
    const latest = await p.get('versioned', opts());
    expect(text(latest.value)).toBe(VALUES.v2);
    expect(latest.version).toBe(v2);
    const pinned = await p.get('versioned', { ...opts(), version: v1 });
    expect(text(pinned.value)).toBe(VALUES.v1);
    expect(pinned.version).toBe(v1);
    const none = await failure(p.get('versioned', { ...opts(), version: 'f'.repeat(32) }));
    expect(none.kind).toBe('not_found');
  });

  test('the secret can come from a file', async () => {
    const file = join(dir, 'sp-secret');
    writeFileSync(file, `${SP_SECRET}\n`, { mode: 0o600 });
    const p = await provider({ method: 'client_secret', tenant_id: '', client_id: SP_CLIENT, client_secret_file: file }, {});
    expect(text((await p.get('plain', opts())).value)).toBe(VALUES.plain);
    const missing = await failure(provider({ method: 'client_secret', tenant_id: '', client_id: SP_CLIENT, client_secret_file: join(dir, 'nope') }, {}));
    expect(missing.kind).toBe('config');
    expect(missing.message).toContain('ENOENT');
  });

  test('a wrong or missing client secret is an auth error that does not repeat the secret', async () => {
    const wrong = 'wrong-client-secret-Lm92~vv';
    const p = await provider(spAuth, { AZ_SECRET: wrong });
    const e = await failure(p.get('plain', opts()));
    expect(e.kind).toBe('auth');
    expect(e.message).toContain('AADSTS7000215');
    expect(e.message).not.toContain(wrong);
    const unset = await failure(provider(spAuth, {}));
    expect(unset.kind).toBe('auth');
    expect(unset.message).toContain('AZ_SECRET');
    const unknownApp = await failure((await provider({ ...spAuth, client_id: '0a1b2c3d-0000-4000-8000-0000000000ff' })).get('plain', opts()));
    expect(unknownApp.kind).toBe('auth');
    expect(unknownApp.message).toContain('AADSTS700016');
  });

  test('another tenant or a login host without Entra ID is auth; a login host that cannot be reached is unavailable', async () => {
    const p = await createProvider(v.parse(definition.schema, { vault_url: azure.vaultUrl, authority_host: azure.authorityHost, tls: { ca_cert: azure.caFile }, auth: { ...spAuth, tenant_id: '0a1b2c3d-0000-4000-8000-00000000dead' } }), { name: 'azure', env: { AZ_SECRET: SP_SECRET }, log: () => {} });
    // The vault's challenge names the vault's own tenant, which the credential refuses to switch to.
    const otherTenant = await failure(p.get('plain', opts()));
    expect(otherTenant.kind).toBe('auth');
    expect(otherTenant.message).toContain('fix tenant_id');
    // A host that answers, but not as Entra ID (here: the vault itself), is a configuration
    // mistake, not an outage, although MSAL reports both alike.
    const notEntra = await createProvider(v.parse(definition.schema, { vault_url: azure.vaultUrl, authority_host: azure.vaultUrl, tls: { ca_cert: azure.caFile }, auth: { ...spAuth, tenant_id: azure.tenantId } }), { name: 'azure', env: { AZ_SECRET: SP_SECRET }, log: () => {} });
    const wrongHost = await failure(notEntra.get('plain', opts()));
    expect(wrongHost.kind).toBe('auth');
    expect(wrongHost.message).toContain('authority_host');
    const down = await createProvider(v.parse(definition.schema, { vault_url: azure.vaultUrl, authority_host: `https://127.0.0.1:${await freePort()}`, tls: { ca_cert: azure.caFile }, auth: { ...spAuth, tenant_id: azure.tenantId } }), { name: 'azure', env: { AZ_SECRET: SP_SECRET }, log: () => {} });
    const e = await failure(down.get('plain', opts()));
    expect(e.kind).toBe('unavailable');
  });

  test('a login service that fails (503) is unavailable', async () => {
    azure.entra.failTokens(503);
    try {
      const e = await failure((await provider()).get('plain', opts()));
      expect(e.kind).toBe('unavailable');
    } finally {
      azure.entra.failTokens(null);
    }
  });
});

describe('client certificate', () => {
  test('logs in with a signed assertion; a certificate the app does not have is refused', async () => {
    const p = await provider({ method: 'client_certificate', tenant_id: '', client_id: CERT_CLIENT, certificate_file: certFile }, {});
    expect(text((await p.get('plain', opts())).value)).toBe(VALUES.plain);
    const other = await provider({ method: 'client_certificate', tenant_id: '', client_id: CERT_CLIENT, certificate_file: wrongCertFile }, {});
    const e = await failure(other.get('plain', opts()));
    expect(e.kind).toBe('auth');
    expect(e.message).toContain('AADSTS700027');
    const notPem = join(dir, 'not-a-cert');
    writeFileSync(notPem, 'hello');
    expect((await failure(provider({ method: 'client_certificate', tenant_id: '', client_id: CERT_CLIENT, certificate_file: notPem }, {}))).kind).toBe('config');
  });
});

describe('workload identity', () => {
  test('exchanges the projected token from the file for a Key Vault token', async () => {
    const p = await provider({ method: 'workload_identity', tenant_id: '', client_id: WI_CLIENT, token_file: federatedFile }, {});
    expect(text((await p.get('plain', opts())).value)).toBe(VALUES.plain);
  });

  test('takes tenant, client and file from the variables AKS injects when dso.yaml leaves them out', async () => {
    const env = { AZURE_TENANT_ID: azure.tenantId, AZURE_CLIENT_ID: WI_CLIENT, AZURE_FEDERATED_TOKEN_FILE: federatedFile };
    const p = await provider({ method: 'workload_identity' }, env);
    expect(text((await p.get('plain', opts())).value)).toBe(VALUES.plain);
    expect((await failure(provider({ method: 'workload_identity' }, { AZURE_TENANT_ID: azure.tenantId }))).kind).toBe('auth');
  });

  test('a token from another subject is refused, a missing file is a config error', async () => {
    const stranger = join(dir, 'stranger-token');
    writeFileSync(stranger, azure.entra.federatedToken(K8S_ISSUER, 'system:serviceaccount:other:intruder'));
    const e = await failure((await provider({ method: 'workload_identity', tenant_id: '', client_id: WI_CLIENT, token_file: stranger }, {})).get('plain', opts()));
    expect(e.kind).toBe('auth');
    expect(e.message).toContain('AADSTS70021');
    expect((await failure(provider({ method: 'workload_identity', tenant_id: '', client_id: WI_CLIENT, token_file: join(dir, 'absent') }, {}))).kind).toBe('config');
  });
});

describe('default', () => {
  test('uses a service principal from the AZURE_* variables it is given', async () => {
    const p = await provider({ method: 'default' }, { AZURE_TENANT_ID: azure.tenantId, AZURE_CLIENT_ID: SP_CLIENT, AZURE_CLIENT_SECRET: SP_SECRET });
    expect(text((await p.get('plain', opts())).value)).toBe(VALUES.plain);
  });
});

describe('what Key Vault refuses', () => {
  test('a missing secret is not_found; a name Key Vault cannot hold says the rule without asking', async () => {
    const p = await provider();
    const missing = await failure(p.get('no-such-secret', opts()));
    expect(missing.kind).toBe('not_found');
    expect(missing.message).toContain('no-such-secret');
    expect(missing.message).toContain('SecretNotFound');
    const requests = azure.vault.stats.requests;
    const badName = await failure(p.get('db/password', opts()));
    expect(badName.kind).toBe('not_found');
    expect(badName.message).toContain('1 to 127 letters, digits and "-"');
    expect((await failure(p.get('x'.repeat(128), opts()))).kind).toBe('not_found');
    const badVersion = await failure(p.get('plain', { ...opts(), version: '../plain' }));
    expect(badVersion.kind).toBe('not_found');
    expect(badVersion.message).toContain('32 hexadecimal characters');
    expect(azure.vault.stats.requests).toBe(requests);
  });

  test('a disabled secret is denied with a message that says so; an enabled older version still reads', async () => {
    const p = await provider();
    const e = await failure(p.get('switched-off', opts()));
    expect(e.kind).toBe('denied');
    expect(e.message).toContain('disabled');
    expect(e.message).toContain('switched-off');
    expect(text((await p.get('switched-off', { ...opts(), version: olderEnabled })).value)).toBe('older-enabled-value-Gd3k');
  });

  test('an identity without access gets denied (403)', async () => {
    const denied = await provider({ ...spAuth, client_id: DENIED_CLIENT }, { AZ_SECRET: DENIED_SECRET });
    const d = await failure(denied.get('plain', opts()));
    expect(d.kind).toBe('denied');
    expect(d.message).toContain('Key Vault Secrets User');
    expect(d.message).toContain('403');
  });

  test('a token Key Vault no longer accepts (expired) is an auth error', async () => {
    const p = await provider();
    await p.get('plain', opts());
    azure.entra.tokens.expireAll();
    const e = await failure(p.get('plain', opts()));
    expect(e.kind).toBe('auth');
    expect(e.message).toContain('401');
  });

  test('a value over the size limit is too_large', async () => {
    const e = await failure((await provider()).get('big', opts(1000)));
    expect(e.kind).toBe('too_large');
    expect(e.message).toContain('2000 bytes');
  });

  test('a vault whose challenge names another resource gets no token for it', async () => {
    const p = await provider();
    const tokens = azure.entra.stats.tokenRequests;
    azure.vault.challengeResource = 'https://management.azure.com';
    try {
      const e = await failure(p.get('plain', opts()));
      expect(e.kind).toBe('invalid_response');
      expect(e.message).toContain('https://management.azure.com/.default');
      expect(azure.entra.stats.tokenRequests).toBe(tokens);
    } finally {
      azure.vault.challengeResource = 'https://vault.azure.net';
    }
  });
});

describe('when the vault is down, slow or failing', () => {
  test('nothing listening is unavailable', async () => {
    const p = await provider(spAuth, { AZ_SECRET: SP_SECRET }, { vault_url: `https://127.0.0.1:${await freePort()}` });
    const e = await failure(p.get('plain', opts()));
    expect(e.kind).toBe('unavailable');
  });

  test('a slow vault is cut off by the signal as a timeout', async () => {
    const p = await provider();
    await p.get('plain', opts());
    azure.vault.slow(5000);
    try {
      const started = Date.now();
      const e = await failure(p.get('plain', opts(1 << 20, 400)));
      expect(e.kind).toBe('timeout');
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      azure.vault.slow(0);
    }
  });

  test('a login that hangs is cut off by the signal too', async () => {
    azure.entra.slowTokens(5000);
    try {
      const started = Date.now();
      const e = await failure((await provider()).get('plain', opts(1 << 20, 400)));
      expect(e.kind).toBe('timeout');
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      azure.entra.slowTokens(0);
    }
  });

  test('a vault answering 503 is unavailable', async () => {
    const p = await provider();
    azure.vault.fail(503);
    try {
      const e = await failure(p.get('plain', opts()));
      expect(e.kind).toBe('unavailable');
      expect(e.message).toContain('503');
    } finally {
      azure.vault.fail(null);
    }
  });

  test('without the CA the vault is not trusted; the CA file goes to the HTTP client', async () => {
    expect(process.env.NODE_EXTRA_CA_CERTS ?? '').not.toContain(azure.caFile);
    const untrusting = await createProvider(v.parse(definition.schema, { vault_url: azure.vaultUrl, authority_host: azure.authorityHost, auth: { ...spAuth, tenant_id: azure.tenantId } }), { name: 'azure', env: { AZ_SECRET: SP_SECRET }, log: () => {} });
    const e = await failure(untrusting.get('plain', opts()));
    expect(e.kind).toBe('unavailable');
    expect((await failure(provider(spAuth, { AZ_SECRET: SP_SECRET }, { tls: { ca_cert: join(dir, 'no-ca.pem') } }))).kind).toBe('config');
  });
});

describe('proxies', () => {
  test('with tls.ca_cert, HTTPS_PROXY from the provider\'s environment carries the login and the vault; NO_PROXY skips it', async () => {
    const proxy = await startConnectProxy();
    try {
      const p = await provider(spAuth, { AZ_SECRET: SP_SECRET, HTTPS_PROXY: proxy.url });
      expect(text((await p.get('plain', opts())).value)).toBe(VALUES.plain);
      const hosts = new Set(proxy.tunnels);
      expect(hosts).toEqual(new Set([new URL(azure.vaultUrl).host, new URL(azure.authorityHost).host]));
      const tunnels = proxy.tunnels.length;
      const direct = await provider(spAuth, { AZ_SECRET: SP_SECRET, HTTPS_PROXY: proxy.url, NO_PROXY: 'localhost,127.0.0.1' });
      expect(text((await direct.get('plain', opts())).value)).toBe(VALUES.plain);
      expect(proxy.tunnels.length).toBe(tunnels);
    } finally {
      proxy.stop();
    }
  });
});

describe('list', () => {
  test('lists the names under a prefix across pages, without disabled secrets', async () => {
    const p = await provider();
    azure.vault.pageSize = 2;
    try {
      const pages = azure.vault.stats.listPages;
      expect(await p.list!('', { signal: AbortSignal.timeout(10_000) })).toEqual(['app-db', 'big', 'plain', 'versioned']);
      // Five secrets, two per page: the SDK followed nextLink twice.
      expect(azure.vault.stats.listPages - pages).toBe(3);
      expect(await p.list!('v', { signal: AbortSignal.timeout(10_000) })).toEqual(['versioned']);
      expect(await p.list!('switched', { signal: AbortSignal.timeout(10_000) })).toEqual([]);
    } finally {
      azure.vault.pageSize = 25;
    }
  });
});

describe('across the provider boundary', () => {
  const hosts: ProviderHost[] = [];
  afterAll(async () => {
    await Promise.all(hosts.map((h) => h.close()));
  });

  function host(isolation: 'worker' | 'process', cfg: AzureConfig, env: Record<string, string | undefined>): ProviderHost {
    const h = new ProviderHost({
      settings: {
        name: 'azure',
        kind: 'azure',
        isolation,
        timeoutMs: 10_000,
        env: definition.environment(cfg),
        optionalEnv: definition.optionalEnvironment?.(cfg) ?? [],
        fixedEnv: definition.fixedEnvironment?.(cfg) ?? {},
        config: cfg,
      },
      env,
      maxBytes: 1 << 20,
      backoff: { initialMs: 50, maxMs: 200 },
    });
    hosts.push(h);
    return h;
  }

  test('in a Worker: managed identity (App Service endpoint) and the custom CA, with no NODE_EXTRA_CA_CERTS', async () => {
    const cfg = config({ method: 'managed_identity' });
    // The Worker shares this process, started long before the CA existed: only the HTTP client
    // built from tls.ca_cert can make the fake's certificate trusted in it.
    expect(process.env.NODE_EXTRA_CA_CERTS ?? '').not.toContain(azure.caFile);
    const env = { IDENTITY_ENDPOINT: azure.entra.identityEndpoint, IDENTITY_HEADER: azure.entra.identityHeader };
    const h = host('worker', cfg, env);
    const got = await h.get('plain');
    expect(text(got.value.expose())).toBe(VALUES.plain);
    got.value.wipe();
    const pinned = await h.get('versioned', { version: v1 });
    expect(text(pinned.value.expose())).toBe(VALUES.v1);
    expect(pinned.version).toBe(v1);
    const e = await failure(h.get('no-such-secret'));
    expect(e.kind).toBe('not_found');
  });

  test('in a Worker: a user-assigned identity; a wrong IDENTITY_HEADER is auth, an endpoint that is down unavailable', async () => {
    const user = host('worker', config({ method: 'managed_identity', client_id: MI_USER }), { IDENTITY_ENDPOINT: azure.entra.identityEndpoint, IDENTITY_HEADER: azure.entra.identityHeader });
    expect(text((await user.get('plain')).value.expose())).toBe(VALUES.plain);
    const wrong = host('worker', config({ method: 'managed_identity' }), { IDENTITY_ENDPOINT: azure.entra.identityEndpoint, IDENTITY_HEADER: 'not-the-identity-header' });
    const e = await failure(wrong.get('plain'));
    expect(e.kind).toBe('auth');
    const down = host('worker', config({ method: 'managed_identity' }), { IDENTITY_ENDPOINT: `http://127.0.0.1:${await freePort()}/msi/token`, IDENTITY_HEADER: azure.entra.identityHeader });
    expect((await failure(down.get('plain'))).kind).toBe('unavailable');
  });

  test('isolation: process, managed identity through IMDS (AZURE_POD_IDENTITY_AUTHORITY_HOST), and the child sees only its variables', async () => {
    const cfg = config({ method: 'managed_identity' });
    const h = host('process', cfg, { AZURE_POD_IDENTITY_AUTHORITY_HOST: azure.entra.imdsHost, AZ_SECRET: SP_SECRET, PATH: process.env.PATH });
    const got = await h.get('app-db');
    expect(JSON.parse(text(got.value.expose())).password).toBe('json-password-Jk37xZ');
    // MSAL read AZURE_POD_IDENTITY_AUTHORITY_HOST from process.env, where it arrived over the
    // pipe (test/unit/providers/host.test.ts: exactly the declared variables); /proc shows none.
    const environ = await Bun.file(`/proc/${h.status().pid}/environ`).text();
    expect(environ.split('\0').filter(Boolean)).toEqual([]);
  });

  test('without tls.ca_cert the SDK\'s own HTTP client is used, trusting what the process trusts', async () => {
    const cfg = v.parse(definition.schema, { vault_url: azure.vaultUrl, authority_host: azure.authorityHost, auth: { ...spAuth, tenant_id: azure.tenantId } });
    // NODE_EXTRA_CA_CERTS, which Bun reads when a process starts, set for the child only; and the
    // SDK's own proxy support, fed by HTTPS_PROXY listed under env:.
    const proxy = await startConnectProxy();
    try {
      const h = new ProviderHost({
        settings: { name: 'azure', kind: 'azure', isolation: 'process', timeoutMs: 10_000, env: ['AZ_SECRET', 'HTTPS_PROXY'], optionalEnv: [], fixedEnv: { NODE_EXTRA_CA_CERTS: azure.caFile }, config: cfg },
        env: { AZ_SECRET: SP_SECRET, HTTPS_PROXY: proxy.url },
        maxBytes: 1 << 20,
      });
      hosts.push(h);
      expect(text((await h.get('plain')).value.expose())).toBe(VALUES.plain);
      expect(new Set(proxy.tunnels)).toEqual(new Set([new URL(azure.vaultUrl).host, new URL(azure.authorityHost).host]));
    } finally {
      proxy.stop();
    }
  });

  test('dso.yaml to value: #KEY through resolveProviderSecrets, and a missing key is key_not_found', async () => {
    // The default isolation, a Worker: the login and the vault both go through the CA's client.
    const yaml = `providers:\n  kv:\n    type: azure\n    vault_url: ${azure.vaultUrl}\n    authority_host: ${azure.authorityHost}\n    tls: { ca_cert: ${azure.caFile} }\n    auth: { method: client_secret, tenant_id: ${azure.tenantId}, client_id: ${SP_CLIENT}, client_secret_env: KV_SP_SECRET }\n`;
    const set = new ProviderSet(await parseConfig(yaml, join(dir, 'dso.yaml')), { env: { KV_SP_SECRET: SP_SECRET } });
    try {
      expect(set.config.providers.get('kv')).toMatchObject({ isolation: 'worker', fixedEnv: {} });
      const wanted = (id: string) => ({ id: parseSecretId(id, 'test', { allowVersion: true }), uses: ['service "api", variable X'] });
      const values = await resolveProviderSecrets(set, [wanted('kv:app-db#password'), wanted('kv:plain')]);
      expect(text(values.get('kv:app-db#password')!.expose())).toBe('json-password-Jk37xZ');
      expect(text(values.get('kv:plain')!.expose())).toBe(VALUES.plain);
      for (const x of values.values()) x.wipe();
      const e = await resolveProviderSecrets(set, [wanted('kv:app-db#token')]).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(DsoError);
      messages.push((e as Error).message);
      expect((e as Error).message).toContain('key not found');
      expect((e as Error).message).toContain('"password"');
    } finally {
      await set.close();
    }
  });
});

test('no error message carried a credential, a token or a secret value', () => {
  expect(messages.length).toBeGreaterThan(20);
  const forbidden = [SP_SECRET, DENIED_SECRET, federatedToken, azure.entra.identityHeader, ...Object.values(VALUES), 'json-password-Jk37xZ', 'older-enabled-value-Gd3k', ...azure.entra.tokens.all()];
  for (const m of messages) for (const f of forbidden) expect(m).not.toContain(f);
  // A JWT of any kind (an access token, an assertion) would start like this.
  for (const m of messages) expect(m).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
});

async function freePort(): Promise<number> {
  const s = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('') });
  const port = s.port!;
  s.stop(true);
  return port;
}
