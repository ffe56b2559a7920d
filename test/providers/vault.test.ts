// The HashiCorp Vault provider against a fake Vault that answers the documented HTTP API: KV v2
// and v1 reads, every auth method, token renewal and re-login, namespaces, TLS, the failures an
// operator meets (denied, bad credentials, sealed, down, slow, oversized), and the same provider
// through DSO's real Worker and child process. No error message or log line may hold a token, a
// credential or a value.
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as v from 'valibot';
import { createProvider } from '../../providers/vault/client.ts';
import { definition, type VaultConfig } from '../../providers/vault/config.ts';
import { parseSecretId } from '../../src/compose/references.ts';
import { ConfigInvalidError, parseConfig } from '../../src/config/load.ts';
import { DsoError } from '../../src/errors.ts';
import { ProviderError, type Provider } from '../../src/providers/contract.ts';
import { ProviderSet, resolveProviderSecrets } from '../../src/providers/resolver.ts';
import { selectKey } from '../../src/providers/select-key.ts';
import { startFakeVault, type FakeVault } from '../fakes/vault/server.ts';
import { CERT_ONLY_NAME, makeVaultTestCa, type VaultTestCa } from '../fakes/vault/tls.ts';

const dir = mkdtempSync(join(tmpdir(), 'dso-vault-provider-'));
let vault: FakeVault;
let ca: VaultTestCa;
let tlsVault: FakeVault;
const others: FakeVault[] = [];
const open: Provider[] = [];
const logs: string[] = [];
/** Every value, credential and token used: none may appear in an error message or a log line. */
const secrets = new Set<string>();

beforeAll(async () => {
  vault = await startFakeVault();
  ca = makeVaultTestCa();
  tlsVault = await startFakeVault({ tls: ca });
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((p) => p.close?.()));
  vault.slow(0);
  vault.fail(null);
  vault.seal(false);
  vault.chunked(false);
  vault.errorStyle = 'plain';
});
afterAll(() => {
  for (const f of [vault, tlsVault, ...others]) {
    f.stop();
    for (const t of f.issuedTokens()) secrets.add(t);
  }
  const leaked = logs.filter((line) => [...secrets].some((s) => line.includes(s)));
  expect(leaked).toEqual([]);
  ca.remove();
  rmSync(dir, { recursive: true, force: true });
});

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const opts = (over: { maxBytes?: number; ms?: number; version?: string } = {}) => ({
  maxBytes: over.maxBytes ?? 1 << 20,
  signal: AbortSignal.timeout(over.ms ?? 5000),
  ...(over.version === undefined ? {} : { version: over.version }),
});

function put(path: string, data: Record<string, string>, at?: { mount?: string; namespace?: string }, on: FakeVault = vault): number {
  for (const value of Object.values(data)) {
    // Short values would match innocent words in messages: every test value is distinctive.
    if (value.length < 8) throw new Error(`test value for ${path} is too short to search for`);
    secrets.add(value);
  }
  return on.putSecret(path, data, at);
}

function token(spec: Parameters<FakeVault['createToken']>[0] = { root: true }, on: FakeVault = vault): string {
  const t = on.createToken(spec);
  secrets.add(t);
  return t;
}

function file(name: string, content: string, remember = true): string {
  if (remember) secrets.add(content.trim());
  const path = join(dir, name);
  writeFileSync(path, content, { mode: 0o600 });
  return path;
}

function jwtLike(subject: string): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64({ sub: subject, iss: 'https://issuer.example', aud: 'vault', exp: 4102444800 })}.${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64url')}`;
}

function config(entry: Record<string, unknown>, on: FakeVault = vault): VaultConfig {
  return v.parse(definition.schema, { addr: on.url, ...entry });
}

async function start(entry: Record<string, unknown>, env: Record<string, string> = {}, on: FakeVault = vault): Promise<Provider> {
  for (const value of Object.values(env)) secrets.add(value);
  const p = await createProvider(config(entry, on), { name: 'vault', env, log: (level, message) => logs.push(`${level}: ${message}`) });
  open.push(p);
  return p;
}

/** The ProviderError `p` fails with, after checking that its message holds no secret. */
async function failure(p: Promise<unknown>): Promise<ProviderError> {
  let error: unknown;
  try {
    await p;
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(ProviderError);
  const message = (error as ProviderError).message;
  for (const t of vault.issuedTokens()) secrets.add(t);
  for (const s of secrets) expect(message).not.toContain(s);
  return error as ProviderError;
}

const tokenAuth = (name = 'VAULT_TOKEN') => ({ auth: { method: 'token', token_env: name } });

describe('dso.yaml entry', () => {
  test('the seed form and the mount form become one canonical entry, which parses again to itself', () => {
    const seed = config({ mount_path: 'secret/data', ...tokenAuth() });
    expect(seed).toMatchObject({ mount: 'secret', kv_version: 2 });
    expect(seed).not.toHaveProperty('mount_path');
    expect(config({ mount: '/kv/', kv_version: 1, ...tokenAuth() })).toMatchObject({ mount: 'kv', kv_version: 1 });
    expect(config({ mount_path: 'team/kv', kv_version: 1, ...tokenAuth() })).toMatchObject({ mount: 'team/kv', kv_version: 1 });
    expect(config({ ...tokenAuth() })).toMatchObject({ mount: 'secret', kv_version: 2 });
    const full = v.parse(definition.schema, { addr: 'https://vault.example.com:8200/', namespace: '/admin/team-a/', tls: { ca_cert: '/etc/dso/ca.pem', server_name: 'vault.internal' }, mount_path: 'apps/data', auth: { method: 'kubernetes', role: 'dso' } });
    expect(full).toEqual({ addr: 'https://vault.example.com:8200', namespace: 'admin/team-a', tls: { ca_cert: '/etc/dso/ca.pem', server_name: 'vault.internal' }, mount: 'apps', kv_version: 2, auth: { method: 'kubernetes', role: 'dso', jwt_file: '/var/run/secrets/kubernetes.io/serviceaccount/token', mount: 'kubernetes' } });
    // The provider's Worker checks the parsed entry again with the same schema.
    expect(v.parse(definition.schema, full)).toEqual(full);
  });

  test('names the variables each auth method reads', () => {
    expect(definition.environment(config(tokenAuth('MY_TOKEN')))).toEqual(['MY_TOKEN']);
    expect(definition.environment(config({ auth: { method: 'token', token_file: '/run/vault-token' } }))).toEqual([]);
    expect(definition.environment(config({ auth: { method: 'approle', role_id_env: 'ROLE', secret_id_env: 'SECRET' } }))).toEqual(['ROLE', 'SECRET']);
    expect(definition.environment(config({ auth: { method: 'approle', role_id: 'r-1', secret_id_file: '/x' } }))).toEqual([]);
    expect(definition.environment(config({ auth: { method: 'jwt', role: 'ci', jwt_env: 'CI_JWT' } }))).toEqual(['CI_JWT']);
    expect(definition.environment(config({ auth: { method: 'kubernetes', role: 'dso' } }))).toEqual([]);
    expect(definition.defaultIsolation).toBe('worker');
    expect(definition.fixedEnvironment).toBeUndefined();
  });

  test('refuses inline credentials, unclear mounts and TLS over http, never quoting what was written', async () => {
    const inline = 'hvs.INLINEtokenPASTEDintoTHEfile0123';
    const inlineSecretId = 'a1b2c3d4-inline-secret-id-5e6f';
    const yaml = `providers:
  vault:
    addr: http://127.0.0.1:8200
    auth: { method: token, token: ${inline} }
  vault-approle:
    type: vault
    addr: http://127.0.0.1:8200
    auth: { method: approle, role_id: r-1, secret_id: ${inlineSecretId} }
  vault-mount:
    type: vault
    addr: http://127.0.0.1:8200
    mount_path: secret
    auth: { method: token, token_env: T }
  vault-tls:
    type: vault
    addr: http://127.0.0.1:8200
    tls: { insecure: true }
    auth: { method: token, token_env: T, token_file: /x }
  vault-method:
    type: vault
    addr: ftp://vault
    auth: { method: ldap }
`;
    const error = await parseConfig(yaml, 'dso.yaml').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigInvalidError);
    const problems = (error as ConfigInvalidError).problems.map((p) => `${p.path}: ${p.message}`);
    const all = problems.join('\n');
    expect(all).not.toContain(inline);
    expect(all).not.toContain(inlineSecretId);
    expect(problems).toContainEqual(expect.stringMatching(/^providers\.vault\.auth\.token: .*token_env: VAULT_TOKEN or token_file/));
    expect(problems).toContainEqual(expect.stringMatching(/^providers\.vault-approle\.auth\.secret_id: .*secret_id_env or secret_id_file/));
    expect(problems).toContainEqual(expect.stringMatching(/^providers\.vault-mount: mount_path is the KV v2 read prefix like secret\/data/));
    expect(problems).toContainEqual(expect.stringMatching(/^providers\.vault-tls\.auth: give exactly one of token_env and token_file/));
    expect(problems).toContainEqual(expect.stringMatching(/^providers\.vault-method\.addr: addr must be Vault's http\(s\) URL/));
    expect(problems).toContainEqual(expect.stringMatching(/^providers\.vault-method\.auth\.method: auth\.method must be token, approle, kubernetes or jwt/));
    const tlsOverHttp = v.safeParse(definition.schema, { addr: 'http://127.0.0.1:8200', tls: { insecure: true }, ...tokenAuth() });
    expect(tlsOverHttp.success).toBe(false);
    expect(tlsOverHttp.issues?.[0]?.message).toContain('tls applies to an https addr');
    expect(v.safeParse(definition.schema, { addr: 'https://user:pw@vault', ...tokenAuth() }).success).toBe(false);
  });
});

describe('reading KV secrets with a token', () => {
  test('the value is the JSON of the secret\'s fields, with its version; a pinned version and #KEY work', async () => {
    put('app/db', { password: 'db-password-version-1', user: 'app-user-c41d' });
    put('app/db', { password: 'db-password-version-2', user: 'app-user-c41d' });
    put('app/api-token', { value: 'plain-api-token-8f2e1d' });
    const p = await start(tokenAuth(), { VAULT_TOKEN: token() });
    expect(p.capabilities).toEqual({ list: true, watch: false, versions: true });
    const latest = await p.get('app/db', opts());
    expect(JSON.parse(text(latest.value))).toEqual({ password: 'db-password-version-2', user: 'app-user-c41d' });
    expect(latest.version).toBe('2');
    const first = await p.get('app/db', opts({ version: '1' }));
    expect(text(selectKey(first.value, 'password'))).toBe('db-password-version-1');
    expect(first.version).toBe('1');
    // A "plain" secret is one field: `vault:app/api-token#value` gives its text.
    expect(text(selectKey((await p.get('app/api-token', opts())).value, 'value'))).toBe('plain-api-token-8f2e1d');
    const noKey = (() => {
      try {
        selectKey(latest.value, 'pasword');
      } catch (e) {
        return e as ProviderError;
      }
    })();
    expect(noKey?.kind).toBe('key_not_found');
    expect(noKey?.message).toContain('"password", "user"');
    expect(noKey?.message).not.toContain('db-password-version-2');
    // The request was a KV v2 data read with the version as a query parameter.
    expect(vault.stats.requests.some((r) => r.path === '/v1/secret/data/app/db' && r.query === '?version=1')).toBe(true);
  });

  test('a missing secret or version, and a deleted or destroyed version, are not_found', async () => {
    put('app/rotated', { key: 'rotated-key-old' });
    put('app/rotated', { key: 'rotated-key-new' });
    put('app/rotated', { key: 'rotated-key-newest' });
    vault.deleteVersion('app/rotated', 1);
    vault.deleteVersion('app/rotated', 2, { destroy: true });
    const p = await start(tokenAuth(), { VAULT_TOKEN: token() });
    const missing = await failure(p.get('app/nothing-here', opts()));
    expect([missing.kind, missing.message]).toEqual(['not_found', 'no secret app/nothing-here in Vault (HTTP 404)']);
    expect((await failure(p.get('app/rotated', opts({ version: '9' })))).kind).toBe('not_found');
    const deleted = await failure(p.get('app/rotated', opts({ version: '1' })));
    expect(deleted.kind).toBe('not_found');
    expect(deleted.message).toContain('version 1 was deleted');
    const destroyed = await failure(p.get('app/rotated', opts({ version: '2' })));
    expect(destroyed.message).toContain('version 2 was destroyed');
    expect(JSON.parse(text((await p.get('app/rotated', opts())).value))).toEqual({ key: 'rotated-key-newest' });
    expect((await failure(p.get('app/rotated', opts({ version: 'latest' })))).kind).toBe('config');
    expect((await failure(p.get('../etc/passwd', opts()))).kind).toBe('config');
  });

  test('lists names under a prefix; an empty folder lists nothing', async () => {
    put('team/one', { v: 'list-value-one' });
    put('team/two', { v: 'list-value-two' });
    put('team/sub/three', { v: 'list-value-three' });
    const p = await start(tokenAuth(), { VAULT_TOKEN: token() });
    expect(await p.list!('team/', { signal: AbortSignal.timeout(5000) })).toEqual(['team/one', 'team/sub/', 'team/two']);
    expect(await p.list!('team/t', { signal: AbortSignal.timeout(5000) })).toEqual(['team/two']);
    expect(await p.list!('nobody/', { signal: AbortSignal.timeout(5000) })).toEqual([]);
    expect(vault.stats.requests.some((r) => r.path === '/v1/secret/metadata/team/' && r.query === '?list=1')).toBe(true);
  });

  test('KV version 1: the value is the JSON of data, with no version; a pinned version is refused', async () => {
    put('legacy/db', { password: 'kv1-password-33aa' }, { mount: 'kv' });
    const p = await start({ mount: 'kv', kv_version: 1, ...tokenAuth() }, { VAULT_TOKEN: token() });
    expect(p.capabilities.versions).toBe(false);
    const got = await p.get('legacy/db', opts());
    expect(JSON.parse(text(got.value))).toEqual({ password: 'kv1-password-33aa' });
    expect(got.version).toBeUndefined();
    const pinned = await failure(p.get('legacy/db', opts({ version: '2' })));
    expect(pinned.kind).toBe('config');
    expect(pinned.message).toContain('KV version 1');
    expect(await p.list!('legacy/', { signal: AbortSignal.timeout(5000) })).toEqual(['legacy/db']);
    expect((await failure(p.get('legacy/none', opts()))).kind).toBe('not_found');
  });

  for (const style of ['plain', 'multierror'] as const) {
    test(`a valid token on a path its policy does not allow is denied, without a new login (${style} 403 body)`, async () => {
      vault.errorStyle = style;
      put('app/allowed', { v: 'allowed-value-1' });
      put('other/forbidden', { v: 'forbidden-value-1' });
      const limited = token({ paths: ['secret/data/app/*', 'secret/metadata/app/*'] });
      const p = await start(tokenAuth(), { VAULT_TOKEN: limited });
      expect(JSON.parse(text((await p.get('app/allowed', opts())).value))).toEqual({ v: 'allowed-value-1' });
      const lookups = vault.stats.lookups;
      const denied = await failure(p.get('other/forbidden', opts()));
      expect(denied.kind).toBe('denied');
      expect(denied.message).toContain('permission denied (HTTP 403)');
      // The 403 was checked with lookup-self (the token is fine), and the read was not retried.
      expect(vault.stats.lookups).toBe(lookups + 1);
      expect((await failure(p.list!('other/', { signal: AbortSignal.timeout(5000) }))).kind).toBe('denied');
    });
  }

  test('a bad or missing token fails at start as auth; a token revoked later fails as auth', async () => {
    const bad = await failure(start(tokenAuth(), { VAULT_TOKEN: 'hvs.not-a-token-vault-knows-123456' }));
    expect(bad.kind).toBe('auth');
    expect(bad.message).toContain('VAULT_TOKEN');
    expect(bad.message).toContain('invalid, expired or revoked');
    const unset = await failure(start(tokenAuth('NOT_SET'), {}));
    expect([unset.kind, unset.message]).toEqual(['auth', 'the Vault token is missing: the variable NOT_SET (token_env) is not set or empty']);
    expect((await failure(start({ auth: { method: 'token', token_file: join(dir, 'no-such-file') } }))).kind).toBe('config');

    put('app/live', { v: 'live-value-77' });
    const t = token();
    const p = await start(tokenAuth(), { VAULT_TOKEN: t });
    await p.get('app/live', opts());
    vault.revokeToken(t);
    const revoked = await failure(p.get('app/live', opts()));
    expect(revoked.kind).toBe('auth');
    expect(revoked.message).toContain('no longer valid');
  });

  test('a token file rewritten with a new token (as Vault Agent does) is read again when the old token dies', async () => {
    put('app/agent', { v: 'agent-value-5' });
    const first = token();
    const path = file('agent-token', `${first}\n`);
    const p = await start({ auth: { method: 'token', token_file: path } });
    await p.get('app/agent', opts());
    vault.revokeToken(first);
    file('agent-token', `${token()}\n`);
    expect(JSON.parse(text((await p.get('app/agent', opts())).value))).toEqual({ v: 'agent-value-5' });
  });

  test('a namespace is sent as X-Vault-Namespace on every request, login included', async () => {
    vault.enableKv('secret', 2, 'team-a');
    put('app/ns-only', { v: 'namespaced-value-41' }, { namespace: 'team-a' });
    vault.addAppRole({ roleId: 'ns-role', secretId: 'ns-secret-id-0f0f0f', namespace: 'team-a', token: { paths: ['secret/data/*'] } });
    const from = vault.stats.requests.length;
    const p = await start({ namespace: 'team-a', auth: { method: 'approle', role_id: 'ns-role', secret_id_env: 'SID' } }, { SID: 'ns-secret-id-0f0f0f' });
    expect(JSON.parse(text((await p.get('app/ns-only', opts())).value))).toEqual({ v: 'namespaced-value-41' });
    const sent = vault.stats.requests.slice(from);
    expect(sent.map((r) => r.path)).toEqual(['/v1/auth/approle/login', '/v1/secret/data/app/ns-only']);
    expect(sent.every((r) => r.namespace === 'team-a')).toBe(true);
    // The same role and secret outside the namespace do not exist.
    expect((await failure(start({ auth: { method: 'approle', role_id: 'ns-role', secret_id_env: 'SID' } }, { SID: 'ns-secret-id-0f0f0f' }))).kind).toBe('auth');
    // A root-namespace token reads a child namespace's secret through the header.
    const root = await start({ namespace: 'team-a', ...tokenAuth() }, { VAULT_TOKEN: token() });
    expect(JSON.parse(text((await root.get('app/ns-only', opts())).value))).toEqual({ v: 'namespaced-value-41' });
    const plain = await start(tokenAuth(), { VAULT_TOKEN: token() });
    expect((await failure(plain.get('app/ns-only', opts()))).kind).toBe('not_found');
  });
});

describe('auth methods', () => {
  test('approle: role id inline or from a variable or file, secret id from a variable or file, custom mount', async () => {
    put('app/approle', { v: 'approle-value-9' });
    vault.addAppRole({ roleId: 'role-id-1234', secretId: 'secret-id-abcd-0001', token: { paths: ['secret/data/app/*'] } });
    vault.addAppRole({ roleId: 'role-id-ci', secretId: 'secret-id-ci-0002', mount: 'ci-approle', token: { paths: ['secret/data/app/*'] } });
    const logins = vault.stats.logins.approle ?? 0;
    const a = await start({ auth: { method: 'approle', role_id: 'role-id-1234', secret_id_env: 'VAULT_SECRET_ID' } }, { VAULT_SECRET_ID: 'secret-id-abcd-0001' });
    expect(JSON.parse(text((await a.get('app/approle', opts())).value))).toEqual({ v: 'approle-value-9' });
    expect(vault.stats.logins.approle).toBe(logins + 1);
    const b = await start({ auth: { method: 'approle', role_id_file: file('role-id', 'role-id-ci\n', false), secret_id_file: file('secret-id', 'secret-id-ci-0002\n'), mount: 'ci-approle' } });
    expect(JSON.parse(text((await b.get('app/approle', opts())).value))).toEqual({ v: 'approle-value-9' });
    expect(vault.stats.logins['ci-approle']).toBe(1);
    const c = await start({ auth: { method: 'approle', role_id_env: 'ROLE', secret_id_env: 'SID' } }, { ROLE: 'role-id-1234', SID: 'secret-id-abcd-0001' });
    await c.get('app/approle', opts());
    // Login requests carry no token.
    expect(vault.stats.requests.filter((r) => r.path.endsWith('/login')).every((r) => !r.withToken)).toBe(true);

    const wrong = await failure(start({ auth: { method: 'approle', role_id: 'role-id-1234', secret_id_env: 'SID' } }, { SID: 'secret-id-WRONG-9999' }));
    expect([wrong.kind, wrong.message]).toEqual(['auth', 'logging in to Vault with AppRole at auth/approle: invalid role or secret ID (HTTP 400)']);
    expect((await failure(start({ auth: { method: 'approle', role_id: 'no-such-role', secret_id_env: 'SID' } }, { SID: 'secret-id-abcd-0001' }))).kind).toBe('auth');
    const noSecret = await failure(start({ auth: { method: 'approle', role_id: 'role-id-1234', secret_id_env: 'UNSET_SID' } }, {}));
    expect(noSecret.message).toContain('UNSET_SID');
    expect((await failure(start({ auth: { method: 'approle', role_id: 'role-id-1234' } }))).message).toContain('missing secret_id');
  });

  test('kubernetes: the service account token file; a rejected token or unknown role fails as auth', async () => {
    put('app/k8s', { v: 'k8s-value-3' });
    const jwt = jwtLike('system:serviceaccount:apps:dso');
    vault.addKubernetesRole({ role: 'dso', jwt, token: { paths: ['secret/data/app/*'] } });
    const jwtFile = file('sa-token', jwt);
    const p = await start({ auth: { method: 'kubernetes', role: 'dso', jwt_file: jwtFile } });
    expect(JSON.parse(text((await p.get('app/k8s', opts())).value))).toEqual({ v: 'k8s-value-3' });
    expect(vault.stats.logins.kubernetes).toBe(1);
    // Vault answers 403 to a service account token the TokenReview API rejects: at login that is auth, not denied.
    const rejected = await failure(start({ auth: { method: 'kubernetes', role: 'dso', jwt_file: file('other-sa-token', jwtLike('system:serviceaccount:apps:other')) } }));
    expect([rejected.kind, rejected.message]).toEqual(['auth', 'logging in to Vault with Kubernetes auth at auth/kubernetes as role dso: permission denied (HTTP 403)']);
    const role = await failure(start({ auth: { method: 'kubernetes', role: 'nope', jwt_file: jwtFile } }));
    expect(role.message).toContain('invalid role name "nope" (HTTP 400)');
    expect((await failure(start({ auth: { method: 'kubernetes', role: 'dso', jwt_file: join(dir, 'not-in-a-pod') } }))).kind).toBe('config');
  });

  test('jwt: the token from a variable or a file; a bad token or unknown role fails as auth', async () => {
    put('app/ci', { v: 'ci-value-12' });
    const jwt = jwtLike('repo:example/app:ref:refs/heads/main');
    vault.addJwtRole({ role: 'ci', jwt, mount: 'jwt', token: { paths: ['secret/data/app/*'] } });
    const fromEnv = await start({ auth: { method: 'jwt', role: 'ci', jwt_env: 'CI_JWT' } }, { CI_JWT: jwt });
    expect(JSON.parse(text((await fromEnv.get('app/ci', opts())).value))).toEqual({ v: 'ci-value-12' });
    const fromFile = await start({ auth: { method: 'jwt', role: 'ci', jwt_file: file('ci-jwt', jwt) } });
    await fromFile.get('app/ci', opts());
    expect(vault.stats.logins.jwt).toBe(2);
    const bad = await failure(start({ auth: { method: 'jwt', role: 'ci', jwt_env: 'CI_JWT' } }, { CI_JWT: jwtLike('someone-else') }));
    expect(bad.kind).toBe('auth');
    expect(bad.message).toContain('error validating token');
    expect((await failure(start({ auth: { method: 'jwt', role: 'deploy', jwt_env: 'CI_JWT' } }, { CI_JWT: jwt }))).message).toContain('role "deploy" could not be found');
  });
});

describe('token lifetime', () => {
  test('a renewable login token is renewed before its TTL ends and keeps working without a new login', async () => {
    put('app/renew', { v: 'renew-value-1' });
    vault.addAppRole({ roleId: 'short-renewable', secretId: 'short-secret-1', mount: 'renewable', token: { paths: ['secret/data/app/*'], ttl: 3, renewable: true } });
    const renewals = vault.stats.renewals;
    const p = await start({ auth: { method: 'approle', role_id: 'short-renewable', secret_id_env: 'SID', mount: 'renewable' } }, { SID: 'short-secret-1' });
    await p.get('app/renew', opts());
    await Bun.sleep(3600);
    // Past the 3 s TTL of the token: renewed at about 2 s, and still the one login.
    expect(vault.stats.renewals - renewals).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(text((await p.get('app/renew', opts())).value))).toEqual({ v: 'renew-value-1' });
    expect(vault.stats.logins.renewable).toBe(1);
  });

  test('a token that cannot be renewed is replaced by a new login before it expires', async () => {
    put('app/relogin', { v: 'relogin-value-1' });
    vault.addAppRole({ roleId: 'short-fixed', secretId: 'short-secret-2', mount: 'fixed', token: { paths: ['secret/data/app/*'], ttl: 2, renewable: false } });
    const renewals = vault.stats.renewals;
    const p = await start({ auth: { method: 'approle', role_id: 'short-fixed', secret_id_env: 'SID', mount: 'fixed' } }, { SID: 'short-secret-2' });
    await Bun.sleep(3300);
    // Logged in again by the timer (at about 1.3 s and 2.7 s), before any read found the token dead.
    expect(vault.stats.logins.fixed).toBeGreaterThanOrEqual(2);
    expect(JSON.parse(text((await p.get('app/relogin', opts())).value))).toEqual({ v: 'relogin-value-1' });
    expect(vault.stats.renewals).toBe(renewals);
  });

  test('renewals capped by the max TTL lead to a new login', async () => {
    put('app/capped', { v: 'capped-value-1' });
    vault.addAppRole({ roleId: 'capped', secretId: 'capped-secret', mount: 'capped', token: { paths: ['secret/data/app/*'], ttl: 2, renewable: true, maxTtl: 3 } });
    const p = await start({ auth: { method: 'approle', role_id: 'capped', secret_id_env: 'SID', mount: 'capped' } }, { SID: 'capped-secret' });
    const renewals = vault.stats.renewals;
    await Bun.sleep(3600);
    // Renewed once at about 1.3 s, capped to 1 s by the 3 s max TTL, so logged in again at about 2 s.
    expect(vault.stats.renewals).toBeGreaterThan(renewals);
    expect(vault.stats.logins.capped).toBeGreaterThanOrEqual(2);
    expect(JSON.parse(text((await p.get('app/capped', opts())).value))).toEqual({ v: 'capped-value-1' });
  });

  test('a renewable operator token is renewed with renew-self', async () => {
    put('app/op', { v: 'operator-value-1' });
    const renewals = vault.stats.renewals;
    const p = await start(tokenAuth(), { VAULT_TOKEN: token({ root: true, ttl: 3, renewable: true }) });
    await Bun.sleep(3500);
    expect(JSON.parse(text((await p.get('app/op', opts())).value))).toEqual({ v: 'operator-value-1' });
    expect(vault.stats.renewals).toBeGreaterThan(renewals);
  });

  test('a login token that died (expired or revoked) is replaced by a new login and the read retried once', async () => {
    put('app/dead', { v: 'dead-token-value' });
    vault.addAppRole({ roleId: 'long', secretId: 'long-secret', mount: 'long', token: { paths: ['secret/data/app/*'], ttl: 3600 } });
    const p = await start({ auth: { method: 'approle', role_id: 'long', secret_id_env: 'SID', mount: 'long' } }, { SID: 'long-secret' });
    await p.get('app/dead', opts());
    vault.expireTokens();
    vault.errorStyle = 'multierror';
    expect(JSON.parse(text((await p.get('app/dead', opts())).value))).toEqual({ v: 'dead-token-value' });
    expect(vault.stats.logins.long).toBe(2);
    // Concurrent reads that all find the token dead share one new login.
    vault.expireTokens();
    await Promise.all([1, 2, 3, 4].map(() => p.get('app/dead', opts())));
    expect(vault.stats.logins.long).toBe(3);
    // When the new login fails too, the error is auth.
    vault.expireTokens();
    vault.addAppRole({ roleId: 'long', secretId: 'rotated-away', mount: 'long', token: { paths: ['secret/data/app/*'] } });
    const failed = await failure(p.get('app/dead', opts()));
    expect(failed.kind).toBe('auth');
    expect(failed.message).toContain('invalid role or secret ID');
  });

  test('close() stops renewals and drops the token', async () => {
    vault.addAppRole({ roleId: 'closing', secretId: 'closing-secret', mount: 'closing', token: { paths: ['secret/data/app/*'], ttl: 1, renewable: true } });
    const p = await createProvider(config({ auth: { method: 'approle', role_id: 'closing', secret_id_env: 'SID', mount: 'closing' } }), { name: 'vault', env: { SID: 'closing-secret' }, log: () => {} });
    await p.close!();
    const renewals = vault.stats.renewals;
    const requests = vault.stats.requests.length;
    await Bun.sleep(1200);
    expect(vault.stats.renewals).toBe(renewals);
    expect(vault.stats.requests.length).toBe(requests);
    expect((await failure(p.get('app/x', opts()))).kind).toBe('unavailable');
  });
});

describe('failures', () => {
  test('a sealed Vault is unavailable, at start and later', async () => {
    vault.seal();
    const health = await fetch(`${vault.url}/v1/sys/health`);
    expect([health.status, ((await health.json()) as { sealed: boolean }).sealed]).toEqual([503, true]);
    const atStart = await failure(start(tokenAuth(), { VAULT_TOKEN: token() }));
    expect(atStart.kind).toBe('unavailable');
    expect(atStart.message).toContain('Vault is sealed');
    vault.seal(false);
    expect((await fetch(`${vault.url}/v1/sys/health`)).status).toBe(200);
    put('app/sealed', { v: 'sealed-value' });
    const p = await start(tokenAuth(), { VAULT_TOKEN: token() });
    vault.seal();
    const later = await failure(p.get('app/sealed', opts()));
    expect([later.kind, later.message]).toEqual(['unavailable', 'reading app/sealed from Vault: Vault is sealed (HTTP 503); it answers again once it is unsealed']);
  });

  test('a 5xx answer is unavailable and says what Vault said', async () => {
    put('app/five', { v: 'five-value' });
    const p = await start(tokenAuth(), { VAULT_TOKEN: token() });
    vault.fail(500, 'internal error');
    const e = await failure(p.get('app/five', opts()));
    expect([e.kind, e.message]).toEqual(['unavailable', 'reading app/five from Vault: internal error (HTTP 500)']);
  });

  test('nothing listening is unavailable, at start and after', async () => {
    const gone = await startFakeVault();
    const url = gone.url;
    const t = token({ root: true }, gone);
    gone.putSecret('app/x', { v: 'gone-value' });
    const p = await start(tokenAuth(), { VAULT_TOKEN: t }, gone);
    gone.stop();
    const later = await failure(p.get('app/x', opts()));
    expect(later.kind).toBe('unavailable');
    expect(later.message).toContain(`cannot reach Vault at ${url}`);
    const atStart = await failure(createProvider(v.parse(definition.schema, { addr: url, ...tokenAuth() }), { name: 'vault', env: { VAULT_TOKEN: t }, log: () => {} }));
    expect(atStart.kind).toBe('unavailable');
  });

  test('a slow Vault ends in timeout at the call\'s deadline', async () => {
    put('app/slow', { v: 'slow-value' });
    const p = await start(tokenAuth(), { VAULT_TOKEN: token() });
    vault.slow(3000);
    const started = performance.now();
    const e = await failure(p.get('app/slow', opts({ ms: 300 })));
    expect(e.kind).toBe('timeout');
    expect(performance.now() - started).toBeLessThan(2000);
  });

  test('a value over the limit is too_large: by Content-Length before reading, while streaming, and exactly', async () => {
    put('app/big', { blob: 'x'.repeat(400_000) });
    put('app/just-over', { v: 'y'.repeat(1000) });
    const p = await start(tokenAuth(), { VAULT_TOKEN: token() });
    const declared = await failure(p.get('app/big', opts({ maxBytes: 1000 })));
    expect(declared.kind).toBe('too_large');
    expect(declared.message).toContain('more than a value within the size limit can take');
    // Without a Content-Length, reading stops once the answer passes the cap.
    put('app/huge', { blob: 'z'.repeat(20_000_000) });
    vault.chunked(true);
    const before = vault.stats.bytesStreamed;
    const streamed = await failure(p.get('app/huge', opts({ maxBytes: 1000, ms: 20000 })));
    expect(streamed.kind).toBe('too_large');
    expect(vault.stats.bytesStreamed - before).toBeLessThan(10_000_000);
    vault.chunked(false);
    // The exact check: the value ({"v":"yyy..."}, 1008 bytes) fits the answer's cap but not the limit.
    const exact = await failure(p.get('app/just-over', opts({ maxBytes: 1007 })));
    expect([exact.kind, exact.message]).toEqual(['too_large', 'reading app/just-over from Vault: the value is 1008 bytes, over the 1007-byte limit']);
    expect((await p.get('app/just-over', opts({ maxBytes: 1008 }))).value.length).toBe(1008);
  });
});

describe('TLS', () => {
  test('tls.ca_cert is trusted without NODE_EXTRA_CA_CERTS; without it the certificate is refused', async () => {
    put('app/tls', { v: 'tls-value-1' }, undefined, tlsVault);
    const t = token({ root: true }, tlsVault);
    const trusted = await start({ tls: { ca_cert: ca.caFile }, ...tokenAuth() }, { VAULT_TOKEN: t }, tlsVault);
    expect(JSON.parse(text((await trusted.get('app/tls', opts())).value))).toEqual({ v: 'tls-value-1' });
    // Trusted from dso.yaml alone: the test CA is in no environment variable.
    expect(Object.values(process.env).some((x) => x?.includes(ca.dir))).toBe(false);
    const untrusted = await failure(start(tokenAuth(), { VAULT_TOKEN: t }, tlsVault));
    expect(untrusted.kind).toBe('config');
    expect(untrusted.message).toContain('set tls.ca_cert');
    expect((await failure(start({ tls: { ca_cert: join(dir, 'missing-ca.pem') }, ...tokenAuth() }, { VAULT_TOKEN: t }, tlsVault))).kind).toBe('config');
  });

  test('tls.insecure skips verification; tls.server_name is the name verified', async () => {
    put('app/tls2', { v: 'tls-value-2' }, undefined, tlsVault);
    const t = token({ root: true }, tlsVault);
    const insecure = await start({ tls: { insecure: true }, ...tokenAuth() }, { VAULT_TOKEN: t }, tlsVault);
    expect(JSON.parse(text((await insecure.get('app/tls2', opts())).value))).toEqual({ v: 'tls-value-2' });
    const named = await start({ tls: { ca_cert: ca.caFile, server_name: CERT_ONLY_NAME }, ...tokenAuth() }, { VAULT_TOKEN: t }, tlsVault);
    await named.get('app/tls2', opts());
    const wrongName = await failure(start({ tls: { ca_cert: ca.caFile, server_name: 'other.dso.test' }, ...tokenAuth() }, { VAULT_TOKEN: t }, tlsVault));
    expect(wrongName.kind).toBe('config');
    expect(wrongName.message).toContain('ERR_TLS_CERT_ALTNAME_INVALID');
  });
});

describe('through DSO\'s provider host', () => {
  for (const isolation of ['worker', 'process'] as const) {
    // The child process gets HTTPS: its environment is the token variable alone, so the CA can
    // only come from tls.ca_cert.
    const https = isolation === 'process';
    test(`isolation: ${isolation}${https ? ' over HTTPS' : ''}: references resolve, #KEY selects, and failures name the reference without values`, async () => {
      const on = https ? tlsVault : vault;
      put('host/db', { password: `host-db-password-${isolation}`, user: 'app-user-c41d' }, undefined, on);
      put('other/secret', { v: `host-forbidden-${isolation}` }, undefined, on);
      const t = token({ paths: ['secret/data/host/*'] }, on);
      const yaml = `providers:
  vault:
    addr: ${on.url}
    mount_path: secret/data
    isolation: ${isolation}
    timeout: 5s
    auth: { method: token, token_env: DSO_TEST_VAULT_TOKEN }
${https ? `    tls: { ca_cert: ${ca.caFile} }\n` : ''}`;
      const set = new ProviderSet(await parseConfig(yaml, 'dso.yaml'), { env: { DSO_TEST_VAULT_TOKEN: t } });
      try {
        const want = (id: string) => ({ id: parseSecretId(id, 'test'), uses: [`test ${id}`] });
        const values = await resolveProviderSecrets(set, [want('vault:host/db#password'), want('vault:host/db')]);
        expect(text(values.get('vault:host/db#password')!.expose())).toBe(`host-db-password-${isolation}`);
        expect(JSON.parse(text(values.get('vault:host/db')!.expose()))).toEqual({ password: `host-db-password-${isolation}`, user: 'app-user-c41d' });
        for (const value of values.values()) value.wipe();
        const host = set.host('vault');
        expect(host.status().isolation).toBe(isolation);
        expect((await host.get('host/db', { version: '1' })).version).toBe('1');

        const error = await resolveProviderSecrets(set, [want('vault:host/db#nope'), want('vault:other/secret'), want('vault:host/missing')]).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(DsoError);
        const message = (error as DsoError).message;
        expect(message).toContain('vault:host/db#nope (test vault:host/db#nope): key not found');
        expect(message).toContain('vault:other/secret (test vault:other/secret): denied');
        expect(message).toContain('vault:host/missing (test vault:host/missing): not found');
        for (const s of [...secrets, t]) expect(message).not.toContain(s);
      } finally {
        await set.close();
      }
    });
  }
});
