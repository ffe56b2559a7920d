// The Huawei Cloud CSMS provider against a fake CSMS whose signature check is Huawei's own SDK
// code: the signer agrees with the SDK, values come back as the bytes stored (text, JSON, binary)
// at the version or stage asked for, every failure has the right kind, credentials come from
// variables, files or the ECS metadata service, and no value, SK or token is ever in an error.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AKSKSigner } from '@huaweicloud/huaweicloud-sdk-core/auth/AKSKSigner';
import * as v from 'valibot';
import { createProvider } from '../../providers/huawei/client.ts';
import { definition, type HuaweiConfig } from '../../providers/huawei/config.ts';
import { sdkDate, signRequest } from '../../providers/huawei/signer.ts';
import { parseSecretId } from '../../src/compose/references.ts';
import { parseConfig } from '../../src/config/load.ts';
import { DsoError } from '../../src/errors.ts';
import { ProviderError, type Provider } from '../../src/providers/contract.ts';
import { ProviderHost } from '../../src/providers/host.ts';
import { ProviderSet, resolveProviderSecrets } from '../../src/providers/resolver.ts';
import { startCsmsFake, startMetadataFake, type CsmsFake, type MetadataFake } from '../fakes/huawei/index.ts';

const AK = 'HPUAK7XEXAMPLE4ACCESS';
const SK = `hw-sk-${crypto.randomUUID()}-canary`;
const TEMP_AK = 'HPUATEMPEXAMPLE00001';
const TEMP_SK = `hw-temp-sk-${crypto.randomUUID()}-canary`;
const TOKEN = `hw-token-${crypto.randomUUID()}-${'t'.repeat(64)}`;
const VALUE = `hw-value-${crypto.randomUUID()}`;
const OLD_VALUE = `hw-old-value-${crypto.randomUUID()}`;
const DB_PASSWORD = `hw-dbpass-${crypto.randomUUID()}`;
const BINARY = new Uint8Array([0, 255, 1, 254, 0, 0, 7, 128, ...new TextEncoder().encode('bin-canary')]);
/** Everything that must never show in an error. */
const NEVER: string[] = [SK, TEMP_SK, TOKEN, VALUE, OLD_VALUE, DB_PASSWORD, 'bin-canary'];

const dir = mkdtempSync(join(tmpdir(), 'dso-huawei-'));
let csms: CsmsFake;
let metadata: MetadataFake;
const providers: Provider[] = [];
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const opts = (over: { version?: string; maxBytes?: number; timeoutMs?: number } = {}) => ({
  ...(over.version === undefined ? {} : { version: over.version }),
  maxBytes: over.maxBytes ?? 1 << 20,
  signal: AbortSignal.timeout(over.timeoutMs ?? 5000),
});

beforeAll(() => {
  csms = startCsmsFake();
  metadata = startMetadataFake(csms);
  csms.addCredential({ ak: AK, sk: SK, denied: ['locked'] });
  csms.addCredential({ ak: TEMP_AK, sk: TEMP_SK, securityToken: TOKEN, expiresAt: Date.now() + 3600_000 });
  csms.putString('app-token', OLD_VALUE);
  csms.putString('app-token', VALUE);
  csms.putString('app-db', JSON.stringify({ user: 'app_user', password: DB_PASSWORD, port: 5432 }));
  csms.putBinary('tls-key', BINARY);
  csms.putString('locked', VALUE);
  csms.putString('doomed', VALUE);
  csms.scheduleDeletion('doomed');
});

afterAll(async () => {
  await Promise.all(providers.splice(0).map((p) => p.close?.()));
  await csms.stop();
  await metadata.stop();
  rmSync(dir, { recursive: true, force: true });
});

function config(over: Record<string, unknown> = {}): HuaweiConfig {
  return v.parse(definition.schema, {
    region: 'cn-north-4',
    project_id: csms.projectId,
    endpoint: csms.url,
    auth: { method: 'aksk', access_key_env: 'HW_AK', secret_key_env: 'HW_SK' },
    ...over,
  });
}

async function provider(over: Record<string, unknown> = {}, env: Record<string, string> = { HW_AK: AK, HW_SK: SK }): Promise<Provider> {
  const p = await createProvider(config(over), { name: 'hw', env, log: () => {} });
  providers.push(p);
  return p;
}

/** The error's kind, after checking it is a clean ProviderError. */
async function failure(p: Promise<unknown>): Promise<ProviderError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ProviderError);
  expectClean((e as Error).message);
  return e as ProviderError;
}

function expectClean(message: string): void {
  for (const s of NEVER) expect(message).not.toContain(s);
}

describe('the signer', () => {
  // The same request through providers/huawei/signer.ts and the SDK's AKSKSigner.sign.
  const cases: Array<{ name: string; method: string; url: string; headers?: Record<string, string>; data?: unknown; token?: string }> = [
    { name: 'a CSMS read, no query, empty body', method: 'GET', url: 'https://kms.cn-north-4.myhuaweicloud.com/v1/0a1b2c3d4e5f60718293a4b5c6d7e8f9/secrets/app-db/versions/latest' },
    {
      name: 'a query string: repeated keys, spaces, plus signs, reserved and non-ASCII characters, an empty value',
      method: 'GET',
      url: "https://kms.cn-north-4.myhuaweicloud.com/v1/p/secrets?marker=a%20b+c&limit=50&z=%2F&a=2&a=1&q=%C3%BC~*!'()&empty=",
    },
    { name: 'a JSON body, Content-Type and a mixed-case header', method: 'POST', url: 'https://kms.cn-north-4.myhuaweicloud.com/v1/p/secrets', headers: { 'Content-Type': 'application/json', 'X-Project-Id': 'p' }, data: { name: 'x', secret_string: 'a "quoted" value ü' } },
    { name: 'special characters in the path', method: 'GET', url: 'https://kms.cn-north-4.myhuaweicloud.com/v1/p/secrets/na me+ü@:;,=$&/versions/v1/' },
    { name: 'a security token and a port in the host', method: 'GET', url: 'http://127.0.0.1:8443/v1/p/secrets/a/stages/SYSCURRENT', token: TOKEN },
  ];
  for (const c of cases) {
    test(`agrees with the SDK: ${c.name}`, () => {
      const url = new URL(c.url);
      const when = new Date(Date.UTC(2024, 0, 2, 3, 4, 5));
      const body = c.data === undefined ? undefined : JSON.stringify(c.data);
      const ours = signRequest({ method: c.method, url, headers: c.headers ?? {}, ...(body === undefined ? {} : { body }) }, { accessKey: AK, secretKey: new TextEncoder().encode(SK), ...(c.token ? { securityToken: c.token } : {}) }, when);
      const queryParams: Record<string, string | string[]> = {};
      for (const key of new Set(url.searchParams.keys())) {
        const all = url.searchParams.getAll(key);
        queryParams[key] = all.length === 1 ? all[0]! : all;
      }
      const sdkHeaders = { ...c.headers, 'X-Sdk-Date': sdkDate(when), host: url.host, ...(c.token ? { 'X-Security-Token': c.token } : {}) };
      const theirs = AKSKSigner.sign(
        { method: c.method, endpoint: `${url.protocol}//${url.host}${url.pathname}`, queryParams, headers: sdkHeaders, ...(c.data === undefined ? {} : { data: c.data }) } as never,
        { getAk: () => AK, getSk: () => SK } as never,
      ) as Record<string, string>;
      expect(ours.Authorization).toBe(theirs.Authorization!);
      expect(ours['X-Sdk-Date']).toBe('20240102T030405Z');
      expect(ours.Authorization).toStartWith(`SDK-HMAC-SHA256 Access=${AK}, SignedHeaders=`);
      if (c.token) expect(ours['X-Security-Token']).toBe(c.token);
    });
  }

  test('a different SK gives a different signature (the comparison above is not vacuous)', () => {
    const url = new URL(cases[0]!.url);
    const when = new Date();
    const a = signRequest({ method: 'GET', url }, { accessKey: AK, secretKey: new TextEncoder().encode(SK) }, when);
    const b = signRequest({ method: 'GET', url }, { accessKey: AK, secretKey: new TextEncoder().encode(`${SK}x`) }, when);
    expect(a.Authorization).not.toBe(b.Authorization);
  });
});

describe('dso.yaml', () => {
  test('the documented forms validate and name the variables to pass', () => {
    const c = config({ auth: { method: 'aksk', access_key_env: 'A', secret_key_env: 'S', security_token_env: 'T' } });
    expect(definition.environment(c).sort()).toEqual(['A', 'S', 'T']);
    expect(definition.environment(config({ auth: { method: 'metadata' } }))).toEqual([]);
    expect(definition.environment(config({ auth: { method: 'aksk', access_key_file: '/a', secret_key_file: '/s' } }))).toEqual([]);
    expect(v.safeParse(definition.schema, { region: 'eu-west-101', project_id: 'p', auth: { method: 'metadata', endpoint: 'http://169.254.169.254' }, tls: { ca_cert: '/ca.pem' } }).success).toBe(true);
  });

  test('mistakes are refused with the form expected, never the value found', async () => {
    const pasted = 'Zx9-pasted-secret-value-Q7';
    const bad = [
      { auth: { method: 'aksk', access_key_env: 'A', access_key_file: '/a', secret_key_env: 'S' } },
      { auth: { method: 'aksk', access_key_env: 'A' } },
      { auth: { method: 'password' } },
      { endpoint: 'http://kms.example.com' },
      { endpoint: 'https://kms.example.com/v1?x=1' },
      { region: pasted },
      { project_id: `${pasted}/..` },
      { auth: { method: 'aksk', access_key_env: pasted, secret_key_env: 'S' } },
    ];
    for (const over of bad) {
      expect(v.safeParse(definition.schema, { region: 'cn-north-4', project_id: 'p', auth: { method: 'metadata' }, ...over }).success).toBe(false);
    }
    const e = await parseConfig(`providers:\n  hw:\n    type: huawei\n    region: ${pasted}\n    project_id: p\n    auth: { method: metadata }\n`, 'dso.yaml').catch((err: Error) => err);
    expect(e).toBeInstanceOf(DsoError);
    expect((e as Error).message).toContain('providers.hw.region');
    expect((e as Error).message).not.toContain(pasted);
  });
});

describe('reading secrets', () => {
  test('a text secret: its bytes and its version id (latest by default)', async () => {
    const p = await provider();
    const got = await p.get('app-token', opts());
    expect(text(got.value)).toBe(VALUE);
    expect(got.version).toBe('v2');
    // Signed with the AK, never carrying the SK.
    const last = csms.requests.at(-1)!;
    expect(last.path).toBe(`/v1/${csms.projectId}/secrets/app-token/versions/latest`);
    expect(last.headers.authorization).toStartWith(`SDK-HMAC-SHA256 Access=${AK}, SignedHeaders=`);
    expect(JSON.stringify(last.headers)).not.toContain(SK);
  });

  test('a binary secret: secret_binary decoded to the exact bytes', async () => {
    const got = await (await provider()).get('tls-key', opts());
    expect([...got.value]).toEqual([...BINARY]);
    expect(got.version).toBe('v1');
  });

  test('a pinned version id, and stages SYSCURRENT, SYSPREVIOUS and one of yours', async () => {
    const p = await provider();
    expect(text((await p.get('app-token', opts({ version: 'v1' }))).value)).toBe(OLD_VALUE);
    const previous = await p.get('app-token', opts({ version: 'SYSPREVIOUS' }));
    expect([text(previous.value), previous.version]).toEqual([OLD_VALUE, 'v1']);
    const current = await p.get('app-token', opts({ version: 'SYSCURRENT' }));
    expect([text(current.value), current.version]).toEqual([VALUE, 'v2']);
    csms.setStage('app-token', 'blue', 'v1');
    expect((await p.get('app-token', opts({ version: 'blue' }))).version).toBe('v1');
    expect(csms.requests.some((r) => r.path.endsWith('/secrets/app-token/stages/blue'))).toBe(true);
  });

  test('a JSON secret through resolveProviderSecrets: #KEY selects a field; a missing key names the fields, not the values', async () => {
    const cfg = await parseConfig(
      `providers:\n  hw:\n    type: huawei\n    region: cn-north-4\n    project_id: ${csms.projectId}\n    endpoint: ${csms.url}\n    auth: { method: aksk, access_key_env: HW_AK, secret_key_env: HW_SK }\n`,
      'dso.yaml',
    );
    const set = new ProviderSet(cfg, { env: { HW_AK: AK, HW_SK: SK } });
    try {
      const wanted = (id: string) => ({ id: parseSecretId(id, 'test'), uses: ['service "api"'] });
      const values = await resolveProviderSecrets(set, [wanted('hw:app-db#password'), wanted('hw:app-db#port'), wanted('hw:app-token?version=SYSPREVIOUS')]);
      expect(text(values.get('hw:app-db#password')!.expose())).toBe(DB_PASSWORD);
      expect(text(values.get('hw:app-db#port')!.expose())).toBe('5432');
      expect(text(values.get('hw:app-token?version=SYSPREVIOUS')!.expose())).toBe(OLD_VALUE);
      for (const s of values.values()) s.wipe();
      const e = await resolveProviderSecrets(set, [wanted('hw:app-db#nope'), wanted('hw:no-such-secret')]).catch((err: Error) => err);
      expect(e).toBeInstanceOf(DsoError);
      const message = (e as Error).message;
      expect(message).toContain('hw:app-db#nope');
      expect(message).toContain('key not found');
      expect(message).toContain('"password"');
      expect(message).toContain('hw:no-such-secret');
      expect(message).toContain('not found');
      expectClean(message);
    } finally {
      await set.close();
    }
  });

  test('lists secret names across pages, filtered by prefix', async () => {
    for (let i = 0; i < 60; i++) csms.putString(`bulk-${String(i).padStart(2, '0')}`, `bulk value ${i}`);
    csms.pageSize = 25;
    try {
      const p = await provider();
      const before = csms.requests.length;
      const names = await p.list!('bulk-', { signal: AbortSignal.timeout(5000) });
      expect(names.length).toBe(60);
      expect(names[0]).toBe('bulk-00');
      expect(names.at(-1)).toBe('bulk-59');
      // 65 secrets, 25 a page: three pages, each signed and accepted.
      expect(csms.requests.slice(before).map((r) => [r.path.endsWith('/secrets'), r.status])).toEqual([[true, 200], [true, 200], [true, 200]]);
      expect(await p.list!('app-', { signal: AbortSignal.timeout(5000) })).toEqual(['app-db', 'app-token']);
      // A secret pending deletion cannot be read, so it is not listed.
      expect(await p.list!('doomed', { signal: AbortSignal.timeout(5000) })).toEqual([]);
    } finally {
      csms.pageSize = 50;
    }
  });
});

describe('failures, each with its kind and no secret in the message', () => {
  test('missing secret, missing version, missing stage and a secret pending deletion are not_found', async () => {
    const p = await provider();
    const missing = await failure(p.get('no-such-secret', opts()));
    expect(missing.kind).toBe('not_found');
    expect(missing.message).toContain('CSMS.0106');
    expect((await failure(p.get('app-token', opts({ version: 'v9' })))).kind).toBe('not_found');
    expect((await failure(p.get('app-token', opts({ version: 'GREEN' })))).kind).toBe('not_found');
    const doomed = await failure(p.get('doomed', opts()));
    expect(doomed.kind).toBe('not_found');
    expect(doomed.message).toContain('scheduled for deletion');
  });

  test('a name CSMS cannot have, or a version that is neither id nor stage, is a config error before any request', async () => {
    const p = await provider();
    const before = csms.requests.length;
    expect((await failure(p.get('app/token', opts()))).kind).toBe('config');
    expect((await failure(p.get('x'.repeat(65), opts()))).kind).toBe('config');
    expect((await failure(p.get('app-token', opts({ version: '' })))).kind).toBe('config');
    expect(csms.requests.length).toBe(before);
  });

  test('a secret the identity may not read is denied (403)', async () => {
    const e = await failure((await provider()).get('locked', opts()));
    expect(e.kind).toBe('denied');
    expect(e.message).toContain('HTTP 403');
  });

  test('a wrong SK, an unknown AK and a clock far off are auth errors (APIGW.0301)', async () => {
    const wrongSk = await failure((await provider({}, { HW_AK: AK, HW_SK: `${SK}-wrong` })).get('app-token', opts()));
    expect(wrongSk.kind).toBe('auth');
    expect(wrongSk.message).toContain('APIGW.0301');
    expect(wrongSk.message).toContain('verify aksk signature fail');
    expect(wrongSk.message).not.toContain(`${SK}-wrong`);
    expect((await failure((await provider({}, { HW_AK: 'HPUANOSUCHACCESSKEY0', HW_SK: SK })).get('app-token', opts()))).kind).toBe('auth');
    csms.setClockOffset(20 * 60_000);
    try {
      expect((await failure((await provider()).get('app-token', opts()))).kind).toBe('auth');
    } finally {
      csms.setClockOffset(0);
    }
  });

  test('temporary credentials: the security token is sent and signed; an expired or missing one is auth', async () => {
    const env = { HW_AK: TEMP_AK, HW_SK: TEMP_SK, HW_TOKEN: TOKEN };
    const withToken = await provider({ auth: { method: 'aksk', access_key_env: 'HW_AK', secret_key_env: 'HW_SK', security_token_env: 'HW_TOKEN' } }, env);
    expect(text((await withToken.get('app-token', opts())).value)).toBe(VALUE);
    const sent = csms.requests.at(-1)!.headers;
    expect(sent['x-security-token']).toBe(TOKEN);
    expect(sent.authorization).toContain('x-security-token');
    const noToken = await failure((await provider({}, env)).get('app-token', opts()));
    expect(noToken.kind).toBe('auth');
    csms.addCredential({ ak: TEMP_AK, sk: TEMP_SK, securityToken: TOKEN, expiresAt: Date.now() - 1000 });
    try {
      const expired = await failure(withToken.get('app-token', opts()));
      expect(expired.kind).toBe('auth');
      expect(expired.message).toContain('token expires');
    } finally {
      csms.addCredential({ ak: TEMP_AK, sk: TEMP_SK, securityToken: TOKEN, expiresAt: Date.now() + 3600_000 });
    }
  });

  test('missing credential variables fail the start as auth', async () => {
    const e = await failure(createProvider(config(), { name: 'hw', env: { HW_AK: AK }, log: () => {} }));
    expect(e.kind).toBe('auth');
    expect(e.message).toContain('HW_SK');
  });

  test('nothing listening is unavailable; a 5xx is unavailable; a path the gateway does not serve is config', async () => {
    const closed = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response('') });
    const url = `http://127.0.0.1:${closed.port}`;
    await closed.stop(true);
    expect((await failure((await provider({ endpoint: url })).get('app-token', opts()))).kind).toBe('unavailable');
    const p = await provider({ auth: { method: 'aksk', access_key_env: 'HW_AK', secret_key_env: 'HW_SK', security_token_env: 'HW_TOKEN' } }, { HW_AK: TEMP_AK, HW_SK: TEMP_SK, HW_TOKEN: TOKEN });
    // A backend message that echoed a credential would be shown without it.
    csms.setFailure({ status: 503, body: { error_code: 'CSMS.0001', error_msg: `backend busy for ${TOKEN} and ${TEMP_SK}` } });
    try {
      const e = await failure(p.get('app-token', opts()));
      expect(e.kind).toBe('unavailable');
      expect(e.message).toContain('HTTP 503');
      expect(e.message).toContain('backend busy for [redacted]');
      csms.setFailure({ status: 404, body: { error_msg: 'The API does not exist or has not been published in the environment', error_code: 'APIGW.0101', request_id: 'abc' } });
      expect((await failure(p.get('app-token', opts()))).kind).toBe('config');
      csms.setFailure({ status: 502, body: '<html>Bad Gateway</html>' });
      expect((await failure(p.get('app-token', opts()))).kind).toBe('unavailable');
    } finally {
      csms.setFailure(undefined);
    }
  });

  test('a slow backend ends with timeout when the call\'s signal fires', async () => {
    const p = await provider();
    csms.setDelay(3000);
    try {
      const started = Date.now();
      const e = await failure(p.get('app-token', opts({ timeoutMs: 300 })));
      expect(e.kind).toBe('timeout');
      expect(Date.now() - started).toBeLessThan(2500);
    } finally {
      csms.setDelay(0);
    }
  });

  test('oversized: refused by Content-Length before reading, by the bytes received, and by the value\'s size', async () => {
    const p = await provider();
    csms.putString('big', 'b'.repeat(200_000));
    const declared = await failure(p.get('big', opts({ maxBytes: 1024 })));
    expect(declared.kind).toBe('too_large');
    // The message form of the Content-Length check: the declared size is known.
    expect(declared.message).toMatch(/the answer is \d+ bytes, over the \d+-byte limit/);

    csms.setBodyMode('endless');
    try {
      const started = Date.now();
      const streamed = await failure(p.get('app-token', opts({ maxBytes: 1024 })));
      expect(streamed.kind).toBe('too_large');
      expect(streamed.message).toContain('the answer is over the');
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      csms.setBodyMode('normal');
    }

    csms.putString('medium', 'm'.repeat(2000));
    const value = await failure(p.get('medium', opts({ maxBytes: 1024 })));
    expect(value.kind).toBe('too_large');
    expect(value.message).toContain('2000 bytes, over the 1024-byte limit');
    expect(text((await p.get('medium', opts({ maxBytes: 2000 }))).value).length).toBe(2000);
  });
});

describe('auth methods', () => {
  test('aksk from files (a trailing newline is dropped), re-read when they change', async () => {
    const akFile = join(dir, 'ak');
    const skFile = join(dir, 'sk');
    const tokenFile = join(dir, 'token');
    writeFileSync(akFile, `${AK}\n`);
    writeFileSync(skFile, `${SK}\n`);
    const p = await provider({ auth: { method: 'aksk', access_key_file: akFile, secret_key_file: skFile } }, {});
    expect(text((await p.get('app-token', opts())).value)).toBe(VALUE);
    // Rotated on disk to temporary credentials with a token file: the provider follows.
    writeFileSync(tokenFile, TOKEN);
    const q = await provider({ auth: { method: 'aksk', access_key_file: akFile, secret_key_file: skFile, security_token_file: tokenFile } }, {});
    writeFileSync(akFile, TEMP_AK);
    writeFileSync(skFile, `${TEMP_SK}\r\n`);
    await Bun.sleep(20);
    expect(text((await q.get('app-token', opts())).value)).toBe(VALUE);
    expect(csms.requests.at(-1)!.headers.authorization).toContain(`Access=${TEMP_AK},`);
    const missing = await failure(createProvider(config({ auth: { method: 'aksk', access_key_file: join(dir, 'nope'), secret_key_file: skFile } }), { name: 'hw', env: {}, log: () => {} }));
    expect(missing.kind).toBe('config');
    expect(missing.message).toContain('ENOENT');
  });

  test('metadata: a session token, then the agency\'s temporary credentials, signed with their security token', async () => {
    metadata.setRequireToken(true);
    const before = metadata.issued;
    const p = await provider({ auth: { method: 'metadata', endpoint: metadata.url } }, {});
    expect(text((await p.get('app-token', opts())).value)).toBe(VALUE);
    expect(text((await p.get('app-db', opts())).value)).toContain(DB_PASSWORD);
    // Fetched once and kept while they are valid.
    expect(metadata.issued).toBe(before + 1);
    const sent = csms.requests.at(-1)!.headers;
    expect(sent['x-security-token']).toBe(metadata.current!.securitytoken);
    expect(sent.authorization).toContain(`Access=${metadata.current!.access},`);
  });

  test('metadata: a service without the token API, renewal before expiry, and a retry when CSMS refuses rotated credentials', async () => {
    metadata.setRequireToken(false);
    try {
      const p = await provider({ auth: { method: 'metadata', endpoint: metadata.url } }, {});
      const first = metadata.issued;
      expect(text((await p.get('app-token', opts())).value)).toBe(VALUE);
      expect(metadata.issued).toBe(first);
      // Credentials that CSMS no longer accepts: one refusal, fresh credentials, success.
      metadata.expireCurrent();
      expect(text((await p.get('app-token', opts())).value)).toBe(VALUE);
      expect(metadata.issued).toBe(first + 1);
      // Credentials within 5 minutes of expiry are renewed before use.
      metadata.setLifetime(2 * 60_000);
      const q = await provider({ auth: { method: 'metadata', endpoint: metadata.url } }, {});
      const afterStart = metadata.issued;
      await q.get('app-token', opts());
      expect(metadata.issued).toBe(afterStart + 1);
    } finally {
      metadata.setRequireToken(true);
      metadata.setLifetime(60 * 60_000);
    }
  });

  test('metadata: no agency on the instance, or no metadata service, fails the start', async () => {
    metadata.setAgency(false);
    try {
      const e = await failure(createProvider(config({ auth: { method: 'metadata', endpoint: metadata.url } }), { name: 'hw', env: {}, log: () => {} }));
      expect(e.kind).toBe('auth');
      expect(e.message).toContain('agency');
    } finally {
      metadata.setAgency(true);
    }
    const closed = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response('') });
    const url = `http://127.0.0.1:${closed.port}`;
    await closed.stop(true);
    expect((await failure(createProvider(config({ auth: { method: 'metadata', endpoint: url } }), { name: 'hw', env: {}, log: () => {} }))).kind).toBe('unavailable');
  });

  test('tls.ca_cert: https with a private CA works; without the CA the certificate is refused', async () => {
    const secure = startCsmsFake({ tls: true });
    try {
      secure.addCredential({ ak: AK, sk: SK });
      secure.putString('tls-secret', VALUE);
      const p = await provider({ project_id: secure.projectId, endpoint: secure.url, tls: { ca_cert: secure.caPath } });
      expect(text((await p.get('tls-secret', opts())).value)).toBe(VALUE);
      const untrusting = await provider({ project_id: secure.projectId, endpoint: secure.url });
      expect((await failure(untrusting.get('tls-secret', opts()))).kind).toBe('unavailable');
      expect((await failure(createProvider(config({ tls: { ca_cert: join(dir, 'no-ca.pem') } }), { name: 'hw', env: { HW_AK: AK, HW_SK: SK }, log: () => {} }))).kind).toBe('config');
    } finally {
      await secure.stop();
    }
  });
});

describe('across the provider boundary (the real registry)', () => {
  const yaml = (isolation: string) =>
    `providers:\n  hw:\n    type: huawei\n    isolation: ${isolation}\n    timeout: 2s\n    region: cn-north-4\n    project_id: ${csms.projectId}\n    endpoint: ${csms.url}\n    auth: { method: aksk, access_key_env: HW_AK, secret_key_env: HW_SK }\n`;

  for (const isolation of ['worker', 'process'] as const) {
    test(`isolation: ${isolation}: values cross as bytes with their version; errors keep their kind and carry no secret`, async () => {
      const cfg = await parseConfig(yaml(isolation), 'dso.yaml');
      const settings = cfg.providers.get('hw')!;
      expect(settings.isolation).toBe(isolation);
      expect(settings.env).toEqual(['HW_AK', 'HW_SK']);
      const host = new ProviderHost({ settings, env: { ...process.env, HW_AK: AK, HW_SK: SK, OTHER_TOKEN: TOKEN }, maxBytes: cfg.maxSecretBytes, backoff: { initialMs: 50, maxMs: 200 } });
      try {
        const got = await host.get('app-token');
        expect(text(got.value.expose())).toBe(VALUE);
        expect(got.version).toBe('v2');
        got.value.wipe();
        const bin = await host.get('tls-key');
        expect([...bin.value.expose()]).toEqual([...BINARY]);
        const previous = await host.get('app-token', { version: 'SYSPREVIOUS' });
        expect(text(previous.value.expose())).toBe(OLD_VALUE);
        const missing = await host.get('no-such-secret').catch((e: ProviderError) => e);
        expect(missing).toBeInstanceOf(ProviderError);
        expect((missing as ProviderError).kind).toBe('not_found');
        expectClean((missing as Error).message);
        const denied = await host.get('locked').catch((e: ProviderError) => e);
        expect((denied as ProviderError).kind).toBe('denied');
        expectClean((denied as Error).message);
        csms.setDelay(4000);
        try {
          expect(((await host.get('app-token').catch((e: ProviderError) => e)) as ProviderError).kind).toBe('timeout');
        } finally {
          csms.setDelay(0);
        }
        if (isolation === 'process') {
          // The two declared variables reached the child over its pipe (test/unit/providers/
          // host.test.ts: exactly those); its exec environment, all /proc shows, is empty.
          const environ = readFileSync(`/proc/${host.status().pid}/environ`, 'latin1').split('\0').filter(Boolean).sort();
          expect(environ).toEqual([]);
        }
      } finally {
        await host.close();
      }
    });
  }
});
