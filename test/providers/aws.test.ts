// The AWS Secrets Manager provider against moto_server (a real emulator, with IAM enforced: every
// request is signed and checked against the caller's policies): values as strings, JSON and
// binary, versions and stages, deleted secrets, each kind of failure, every auth method (static
// keys, a credentials file, profiles, SSO, the default chain and the instance role through a fake
// instance metadata service), the provider across the Worker and process boundaries, and no
// credential or secret value in any message.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as v from 'valibot';
import { createProvider } from '../../providers/aws/client.ts';
import { DEFAULT_CHAIN_VARIABLES, definition, type AwsConfig } from '../../providers/aws/config.ts';
import { parseSecretId } from '../../src/compose/references.ts';
import { parseConfig } from '../../src/config/load.ts';
import { SAFE_MESSAGES } from '../../src/config/issues.ts';
import { DsoError } from '../../src/errors.ts';
import { ProviderError, type Provider } from '../../src/providers/contract.ts';
import { ProviderHost } from '../../src/providers/host.ts';
import { ProviderSet, resolveProviderSecrets } from '../../src/providers/resolver.ts';
import { awsJsonError, deadUrl, startContainerCredentials, startImds, startMoto, startProxy, type AwsKeys, type ContainerCredentials, type Imds, type Moto, type Proxy, type SessionKeys } from '../fakes/aws/moto.ts';
import { startSsoPortal, writeSsoTokenCache, type SsoPortal } from '../fakes/aws/sso-portal.ts';

const canary = (label: string) => `${label}-${randomBytes(10).toString('hex')}`;
const VALUES = {
  plain: canary('plain-value'),
  password: canary('db-password'),
  v1: canary('rotating-v1'),
  v2: canary('rotating-v2'),
  deleted: canary('deleted-value'),
  unicode: `pässwörd-✓-${canary('u')}`,
};
const BINARY = new Uint8Array([0, 1, 2, 0x7f, 0x80, 0xfe, 0xff, ...randomBytes(32)]);
const JSON_SECRET = JSON.stringify({ user: 'app_user', password: VALUES.password });
const READ_POLICY = [{ Effect: 'Allow' as const, Action: ['secretsmanager:GetSecretValue', 'secretsmanager:ListSecrets'], Resource: '*' }];

let moto: Moto;
let proxy: Proxy;
let imds: Imds;
let pod: ContainerCredentials;
let sso: SsoPortal;
let dir: string;
let reader: AwsKeys;
let lister: AwsKeys;
let roleSession: SessionKeys;
let rotatingV1: string;
let rotatingV2: string;
/** Every error message seen, checked at the end for credentials and values. */
const messages: string[] = [];

beforeAll(async () => {
  moto = await startMoto();
  dir = mkdtempSync(join(tmpdir(), 'dso-aws-test-'));
  reader = await moto.createUser('dso-reader', READ_POLICY);
  // May list secrets but not read them: GetSecretValue is denied.
  lister = await moto.createUser('dso-lister', [{ Effect: 'Allow', Action: 'secretsmanager:ListSecrets', Resource: '*' }]);
  roleSession = await moto.createRoleSession('dso-instance-role', READ_POLICY);
  await moto.putSecret('app/plain', VALUES.plain);
  await moto.putSecret('app/db', JSON_SECRET);
  await moto.putSecret('app/binary', BINARY);
  await moto.putSecret('app/unicode', VALUES.unicode);
  rotatingV1 = (await moto.putSecret('app/rotating', VALUES.v1)).versionId;
  rotatingV2 = (await moto.putSecret('app/rotating', VALUES.v2)).versionId;
  await moto.stageVersion('app/rotating', 'BLUE', rotatingV1);
  await moto.putSecret('app/deleted', VALUES.deleted);
  await moto.deleteSecret('app/deleted');
  await moto.putSecret('app/gone', canary('gone'));
  await moto.deleteSecret('app/gone', { force: true });
  await moto.putSecret('app/big', 'B'.repeat(2000));
  await moto.putSecret('app/huge', 'H'.repeat(80_000));
  await moto.putSecret('other/thing', canary('other'));
  await moto.enforceIam();
  proxy = startProxy(moto.url);
  imds = startImds(roleSession);
  pod = startContainerCredentials(roleSession);
  sso = startSsoPortal(roleSession, { roleName: 'DsoReader' });
});

afterAll(async () => {
  await Promise.all([proxy?.stop(), imds?.stop(), pod?.stop(), sso?.stop()]);
  await moto?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const opts = (over: { version?: string; maxBytes?: number; timeoutMs?: number } = {}) => ({
  ...(over.version === undefined ? {} : { version: over.version }),
  maxBytes: over.maxBytes ?? 1024,
  signal: AbortSignal.timeout(over.timeoutMs ?? 10_000),
});

function parse(entry: unknown): AwsConfig {
  return v.parse(definition.schema, entry);
}

/** A provider with static keys from K and S (the reader's, unless given) against moto or `endpoint`. */
async function provider(keys: AwsKeys = reader, over: Partial<AwsConfig> = {}): Promise<Provider> {
  const env: Record<string, string> = { K: keys.accessKeyId, S: keys.secretAccessKey, ...(keys.sessionToken ? { T: keys.sessionToken } : {}) };
  const config = parse({ region: moto.region, endpoint: moto.url, auth: { method: 'static', access_key_id_env: 'K', secret_access_key_env: 'S', ...(keys.sessionToken ? { session_token_env: 'T' } : {}) }, ...over });
  return createProvider(config, { name: 'aws', env, log: () => {} });
}

/** The ProviderError `p` fails with; its message is kept for the final check. */
async function failure(p: Promise<unknown>): Promise<ProviderError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(ProviderError);
  messages.push((e as Error).message);
  return e as ProviderError;
}

function host(isolation: 'worker' | 'process', entry: Record<string, unknown>, env: Record<string, string | undefined>, maxBytes = 1024): Promise<ProviderHost> {
  return parseConfig(JSON.stringify({ providers: { aws: { isolation, timeout: '10s', ...entry } } }), join(dir, 'dso.yaml')).then((cfg) => {
    const h = new ProviderHost({ settings: cfg.providers.get('aws')!, env, maxBytes, backoff: { initialMs: 10, maxMs: 50 } });
    hosts.push(h);
    return h;
  });
}
const hosts: ProviderHost[] = [];
afterAll(async () => {
  await Promise.all(hosts.map((h) => h.close()));
});

describe('configuration', () => {
  test('each auth method parses; static keys take only the variables they name', () => {
    expect(parse({ region: 'eu-west-1' }).auth).toBeUndefined();
    for (const method of ['default', 'iam']) expect(parse({ region: 'eu-west-1', auth: { method } }).auth).toEqual({ method } as never);
    const s = parse({ region: 'eu-west-1', auth: { method: 'static', access_key_id_env: 'AK', secret_access_key_env: 'SK', session_token_env: 'ST' } });
    expect(definition.environment(s)).toEqual(['AK', 'SK', 'ST']);
    expect(definition.optionalEnvironment!(s)).toEqual([]);
    const f = parse({ region: 'eu-west-1', auth: { method: 'static', credentials_file: '/etc/dso/aws', profile: 'dso' } });
    expect(definition.environment(f)).toEqual([]);
    const p = parse({ auth: { method: 'profile', profile: 'prod' } });
    expect(definition.optionalEnvironment!(p)).toEqual(['HOME', 'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE', 'AWS_REGION', 'AWS_DEFAULT_REGION']);
    expect(definition.optionalEnvironment!(parse({ region: 'eu-west-1', auth: { method: 'sso', profile: 'dev' } }))).toEqual(['HOME', 'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE']);
    expect(parse({ region: 'us-east-1', endpoint: 'https://vpce-1.secretsmanager.us-east-1.vpce.amazonaws.com', version_stage: 'AWSPREVIOUS' }).version_stage).toBe('AWSPREVIOUS');
  });

  test('the default chain and the instance role pass through exactly the AWS variables the SDK reads', () => {
    const all = definition.optionalEnvironment!(parse({ region: 'eu-west-1', auth: { method: 'default' } }));
    expect(all).toEqual(DEFAULT_CHAIN_VARIABLES);
    expect(all.every((n) => n.startsWith('AWS_') || n === 'HOME')).toBe(true);
    expect(all).toContain('AWS_EC2_METADATA_SERVICE_ENDPOINT');
    expect(all).toContain('AWS_WEB_IDENTITY_TOKEN_FILE');
    expect(all).not.toContain('AWS_ENDPOINT_URL');
    const iam = definition.optionalEnvironment!(parse({ region: 'eu-west-1', auth: { method: 'iam' } }));
    expect(iam.every((n) => n.startsWith('AWS_CONTAINER_') || n.startsWith('AWS_EC2_METADATA_'))).toBe(true);
    expect(iam).not.toContain('AWS_ACCESS_KEY_ID');
  });

  test('bad entries are refused with messages that never quote what was written', async () => {
    const pasted = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
    const bad: unknown[] = [
      { region: 'eu-west-1', auth: { method: 'static', access_key_id_env: 'AK', secret_access_key: pasted } },
      { region: 'eu-west-1', auth: { method: 'static', access_key_id_env: 'AK' } },
      { region: 'eu-west-1', auth: { method: 'static', access_key_id_env: 'AK', secret_access_key_env: 'SK', credentials_file: '/x' } },
      { region: 'eu-west-1', auth: { method: 'static', credentials_file: '/x', session_token_env: 'ST' } },
      { region: 'eu-west-1', auth: { method: 'profile' } },
      { region: 'eu-west-1', auth: { method: 'kerberos' } },
      { region: pasted },
      { region: 'eu-west-1', endpoint: `https://user:${pasted}@example.com` },
      { region: 'eu-west-1', version_stage: `${pasted} with spaces` },
      { region: 'eu-west-1', secret_access_key: pasted },
    ];
    for (const entry of bad) {
      const r = v.safeParse(definition.schema, entry, SAFE_MESSAGES);
      expect(r.success).toBe(false);
      for (const issue of r.issues ?? []) expect(issue.message).not.toContain(pasted);
    }
    const e = await parseConfig(`providers:\n  aws:\n    region: eu-west-1\n    auth: { method: static, access_key_id_env: AK, secret_access_key: ${pasted} }\n`, 'dso.yaml').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DsoError);
    expect((e as Error).message).toContain('secret_access_key');
    expect((e as Error).message).not.toContain(pasted);
  });

  test('no region anywhere is a config error that says where to set one', async () => {
    const config = parse({ auth: { method: 'static', access_key_id_env: 'K', secret_access_key_env: 'S' } });
    const e = await failure(createProvider(config, { name: 'aws', env: { K: reader.accessKeyId, S: reader.secretAccessKey }, log: () => {} }));
    expect(e.kind).toBe('config');
    expect(e.message).toContain('region');
    // AWS_REGION, passed through when dso.yaml has no region, is enough.
    const p = await createProvider(config, { name: 'aws', env: { K: reader.accessKeyId, S: reader.secretAccessKey, AWS_REGION: moto.region }, log: () => {} });
    await p.close!();
  });
});

describe('reading secrets (static keys from the environment)', () => {
  test('a string, a JSON and a binary secret come back as their exact bytes, with the version id', async () => {
    const p = await provider();
    const plain = await p.get('app/plain', opts());
    expect(text(plain.value)).toBe(VALUES.plain);
    expect(plain.version).toMatch(/^[0-9a-f-]{36}$/);
    expect(text((await p.get('app/db', opts())).value)).toBe(JSON_SECRET);
    const binary = await p.get('app/binary', opts());
    expect(binary.value).toEqual(BINARY);
    expect(binary.value.byteOffset).toBe(0);
    expect(binary.value.byteLength).toBe(binary.value.buffer.byteLength);
    const unicode = await p.get('app/unicode', opts());
    expect(unicode.value).toEqual(new TextEncoder().encode(VALUES.unicode));
    await p.close!();
  });

  test('a version id, AWSPREVIOUS, a custom stage and the configured default stage pick the right version', async () => {
    const p = await provider();
    const current = await p.get('app/rotating', opts());
    expect(text(current.value)).toBe(VALUES.v2);
    expect(current.version).toBe(rotatingV2);
    const byId = await p.get('app/rotating', opts({ version: rotatingV1 }));
    expect(text(byId.value)).toBe(VALUES.v1);
    expect(byId.version).toBe(rotatingV1);
    expect(text((await p.get('app/rotating', opts({ version: 'AWSPREVIOUS' }))).value)).toBe(VALUES.v1);
    expect(text((await p.get('app/rotating', opts({ version: 'AWSCURRENT' }))).value)).toBe(VALUES.v2);
    expect(text((await p.get('app/rotating', opts({ version: 'BLUE' }))).value)).toBe(VALUES.v1);
    const previousByDefault = await provider(reader, { version_stage: 'AWSPREVIOUS' });
    expect(text((await previousByDefault.get('app/rotating', opts())).value)).toBe(VALUES.v1);
    // A reference's own version wins over the default stage.
    expect(text((await previousByDefault.get('app/rotating', opts({ version: rotatingV2 }))).value)).toBe(VALUES.v2);
    expect((await failure(p.get('app/rotating', opts({ version: '01234567-89ab-4def-8123-456789abcdef' })))).kind).toBe('not_found');
    expect((await failure(p.get('app/rotating', opts({ version: 'NO_SUCH_STAGE' })))).kind).toBe('not_found');
    await Promise.all([p.close!(), previousByDefault.close!()]);
  });

  test('a missing secret, one scheduled for deletion and one deleted for good are not_found', async () => {
    const p = await provider();
    const missing = await failure(p.get('app/no-such-secret', opts()));
    expect(missing.kind).toBe('not_found');
    expect(missing.message).toContain('app/no-such-secret');
    const scheduled = await failure(p.get('app/deleted', opts()));
    expect(scheduled.kind).toBe('not_found');
    expect(scheduled.message).toContain('scheduled for deletion');
    expect((await failure(p.get('app/gone', opts()))).kind).toBe('not_found');
    await p.close!();
  });

  test('a value over the limit is too_large: after reading it, or unread when the answer alone is too big', async () => {
    const p = await provider();
    const big = await failure(p.get('app/big', opts({ maxBytes: 1024 })));
    expect(big.kind).toBe('too_large');
    expect(big.message).toContain('2000 bytes');
    expect(text((await p.get('app/big', opts({ maxBytes: 2000 }))).value)).toBe('B'.repeat(2000));
    // 80,000 bytes of answer cannot hold a value of at most 1,024 bytes, however it is encoded.
    const huge = await failure(p.get('app/huge', opts({ maxBytes: 1024 })));
    expect(huge.kind).toBe('too_large');
    expect(huge.message).toContain('not read');
    await p.close!();
  });

  test('list gives the names under a prefix, exactly, without deleted secrets', async () => {
    const p = await provider();
    expect(await p.list!('app/rot', { signal: AbortSignal.timeout(5000) })).toEqual(['app/rotating']);
    const all = await p.list!('app/', { signal: AbortSignal.timeout(5000) });
    expect(all).toEqual(['app/big', 'app/binary', 'app/db', 'app/huge', 'app/plain', 'app/rotating', 'app/unicode']);
    expect(await p.list!('', { signal: AbortSignal.timeout(5000) })).toContain('other/thing');
    await p.close!();
  });

  test('a missing #KEY in a JSON secret is key_not_found, naming the fields (dso.yaml, resolver, Worker)', async () => {
    const yaml = `providers:\n  aws:\n    region: ${moto.region}\n    endpoint: ${moto.url}\n    auth: { method: static, access_key_id_env: AWS_ACCESS_KEY_ID, secret_access_key_env: AWS_SECRET_ACCESS_KEY }\n`;
    const set = new ProviderSet(await parseConfig(yaml, join(dir, 'dso.yaml')), { env: { AWS_ACCESS_KEY_ID: reader.accessKeyId, AWS_SECRET_ACCESS_KEY: reader.secretAccessKey } });
    try {
      const wanted = (id: string) => ({ id: parseSecretId(id, 'test', { allowVersion: true }), uses: ['service "api", variable X'] });
      const values = await resolveProviderSecrets(set, [wanted('aws:app/db#password'), wanted('aws:app/db#user'), wanted(`aws:app/rotating?version=AWSPREVIOUS`)]);
      expect(text(values.get('aws:app/db#password')!.expose())).toBe(VALUES.password);
      expect(text(values.get('aws:app/db#user')!.expose())).toBe('app_user');
      expect(text(values.get('aws:app/rotating?version=AWSPREVIOUS')!.expose())).toBe(VALUES.v1);
      for (const x of values.values()) x.wipe();
      const e = await resolveProviderSecrets(set, [wanted('aws:app/db#token'), wanted('aws:app/nope')]).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(DsoError);
      const message = (e as Error).message;
      messages.push(message);
      expect(message).toContain('aws:app/db#token');
      expect(message).toContain('key not found');
      expect(message).toContain('"password"');
      expect(message).toContain('aws:app/nope');
      expect(message).toContain('not found');
    } finally {
      await set.close();
    }
  });
});

describe('failures', () => {
  test('valid credentials whose policy does not allow GetSecretValue are denied', async () => {
    const p = await provider(lister);
    const e = await failure(p.get('app/plain', opts()));
    expect(e.kind).toBe('denied');
    expect(e.message).toContain('app/plain');
    // The same keys may list: the denial is about the action, not the credentials.
    expect(await p.list!('app/plain', { signal: AbortSignal.timeout(5000) })).toEqual(['app/plain']);
    await p.close!();
  });

  test('an unknown key, a wrong secret key, a session token the key does not have, and an expired token are auth', async () => {
    const unknown = await provider({ accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'not-a-real-secret-key-0123456789' });
    expect((await failure(unknown.get('app/plain', opts()))).kind).toBe('auth');
    const wrongSecret = await provider({ accessKeyId: reader.accessKeyId, secretAccessKey: 'the-wrong-secret-key-0123456789' });
    expect((await failure(wrongSecret.get('app/plain', opts()))).kind).toBe('auth');
    const strayToken = await provider({ ...reader, sessionToken: 'a-session-token-this-user-never-had' });
    expect((await failure(strayToken.get('app/plain', opts()))).kind).toBe('auth');
    const forgedSession = await provider({ ...roleSession, sessionToken: `${roleSession.sessionToken}x` });
    expect((await failure(forgedSession.get('app/plain', opts()))).kind).toBe('auth');
    // moto does not expire STS sessions: the proxy answers what AWS does for an expired token.
    const viaProxy = await provider(roleSession, { endpoint: proxy.url });
    expect(text((await viaProxy.get('app/plain', opts())).value)).toBe(VALUES.plain);
    proxy.failWith(awsJsonError(400, 'ExpiredTokenException', 'The security token included in the request is expired'));
    try {
      const expired = await failure(viaProxy.get('app/plain', opts()));
      expect(expired.kind).toBe('auth');
      expect(expired.message).toContain('ExpiredTokenException');
    } finally {
      proxy.failWith(undefined);
    }
    await Promise.all([unknown, wrongSecret, strayToken, forgedSession, viaProxy].map((p) => p.close!()));
  });

  test('AWS JSON errors for denial, decryption, throttling and bad input map to their kinds', async () => {
    const p = await provider(reader, { endpoint: proxy.url });
    const cases: Array<[number, string, string]> = [
      [400, 'AccessDeniedException', 'denied'],
      [400, 'DecryptionFailure', 'denied'],
      [400, 'UnrecognizedClientException', 'auth'],
      [400, 'InvalidSignatureException', 'auth'],
      [400, 'InvalidParameterException', 'config'],
      [400, 'ThrottlingException', 'unavailable'],
      [500, 'InternalServiceError', 'unavailable'],
    ];
    try {
      for (const [status, type, kind] of cases) {
        proxy.failWith(awsJsonError(status, type, `${type} from the proxy`));
        const e = await failure(p.get('app/plain', opts()));
        expect([type, e.kind]).toEqual([type, kind]);
      }
      // A proxy's HTML page is not Secrets Manager's JSON: its status decides.
      proxy.failWith({ status: 502, headers: { 'content-type': 'text/html' }, body: '<html><body>Bad Gateway</body></html>' });
      expect((await failure(p.get('app/plain', opts()))).kind).toBe('unavailable');
      proxy.failWith({ status: 200, headers: { 'content-type': 'text/html' }, body: '<html>captive portal</html>' });
      expect((await failure(p.get('app/plain', opts()))).kind).toBe('invalid_response');
    } finally {
      proxy.failWith(undefined);
    }
    await p.close!();
  });

  test('nothing listening is unavailable, at once', async () => {
    const p = await provider(reader, { endpoint: await deadUrl() });
    const started = Date.now();
    const e = await failure(p.get('app/plain', opts()));
    expect(e.kind).toBe('unavailable');
    expect(e.message).toContain('cannot connect (ECONNREFUSED)');
    expect(Date.now() - started).toBeLessThan(3000);
    await p.close!();
  });

  test('a backend slower than the deadline is a timeout when the signal fires, not later', async () => {
    const p = await provider(reader, { endpoint: proxy.url });
    proxy.setDelay(5000);
    try {
      const started = Date.now();
      const e = await failure(p.get('app/plain', opts({ timeoutMs: 400 })));
      const took = Date.now() - started;
      expect(e.kind).toBe('timeout');
      expect(took).toBeGreaterThanOrEqual(350);
      expect(took).toBeLessThan(2000);
    } finally {
      proxy.setDelay(0);
    }
    expect(text((await p.get('app/plain', opts())).value)).toBe(VALUES.plain);
    await p.close!();
  });
});

describe('auth methods', () => {
  test('static: session credentials (an STS role session) from three variables', async () => {
    const p = await provider(roleSession);
    expect(text((await p.get('app/plain', opts())).value)).toBe(VALUES.plain);
    await p.close!();
  });

  test('static: a credentials file, its default or a named section; a missing file or section is config', async () => {
    const file = join(dir, 'static-credentials');
    writeFileSync(
      file,
      `# written by the test\n[default]\naws_access_key_id = ${lister.accessKeyId}\naws_secret_access_key = ${lister.secretAccessKey}\n\n[dso]\naws_access_key_id=${roleSession.accessKeyId}\naws_secret_access_key=${roleSession.secretAccessKey}\naws_session_token = ${roleSession.sessionToken}\n`,
      { mode: 0o600 },
    );
    const make = (auth: Record<string, unknown>) => createProvider(parse({ region: moto.region, endpoint: moto.url, auth: { method: 'static', ...auth } }), { name: 'aws', env: {}, log: () => {} });
    const named = await make({ credentials_file: file, profile: 'dso' });
    expect(text((await named.get('app/plain', opts())).value)).toBe(VALUES.plain);
    const byDefault = await make({ credentials_file: file });
    expect((await failure(byDefault.get('app/plain', opts()))).kind).toBe('denied');
    expect((await failure(make({ credentials_file: file, profile: 'nope' }))).kind).toBe('config');
    expect((await failure(make({ credentials_file: join(dir, 'no-such-file') }))).kind).toBe('config');
    await Promise.all([named.close!(), byDefault.close!()]);
  });

  test('profile: from ~/.aws/credentials under HOME, or the files AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE name', async () => {
    const home = join(dir, 'home-profile');
    mkdirSync(join(home, '.aws'), { recursive: true });
    writeFileSync(join(home, '.aws', 'credentials'), `[prod]\naws_access_key_id = ${reader.accessKeyId}\naws_secret_access_key = ${reader.secretAccessKey}\n`, { mode: 0o600 });
    const config = parse({ region: moto.region, endpoint: moto.url, auth: { method: 'profile', profile: 'prod' } });
    const p = await createProvider(config, { name: 'aws', env: { HOME: home }, log: () => {} });
    expect(text((await p.get('app/plain', opts())).value)).toBe(VALUES.plain);
    // Elsewhere, named by the standard variables; a profile defined in the config file.
    const other = join(dir, 'elsewhere');
    mkdirSync(other, { recursive: true });
    writeFileSync(join(other, 'creds'), `[base]\naws_access_key_id = ${reader.accessKeyId}\naws_secret_access_key = ${reader.secretAccessKey}\n`, { mode: 0o600 });
    writeFileSync(join(other, 'config'), `[profile cfg]\naws_access_key_id = ${reader.accessKeyId}\naws_secret_access_key = ${reader.secretAccessKey}\n`, { mode: 0o600 });
    const env = { HOME: join(dir, 'empty-home'), AWS_SHARED_CREDENTIALS_FILE: join(other, 'creds'), AWS_CONFIG_FILE: join(other, 'config') };
    const base = await createProvider(parse({ region: moto.region, endpoint: moto.url, auth: { method: 'profile', profile: 'base' } }), { name: 'aws', env, log: () => {} });
    expect(text((await base.get('app/db', opts())).value)).toBe(JSON_SECRET);
    const cfg = await createProvider(parse({ region: moto.region, endpoint: moto.url, auth: { method: 'profile', profile: 'cfg' } }), { name: 'aws', env, log: () => {} });
    expect(text((await cfg.get('app/db', opts())).value)).toBe(JSON_SECRET);
    const missing = await createProvider(parse({ region: moto.region, endpoint: moto.url, auth: { method: 'profile', profile: 'nope' } }), { name: 'aws', env, log: () => {} });
    const e = await failure(missing.get('app/plain', opts()));
    expect(e.kind).toBe('auth');
    expect(e.message).toContain('nope');
    await Promise.all([p, base, cfg, missing].map((x) => x.close!()));
  });

  test('sso, in a Worker: the cached `aws sso login` token buys role credentials from the portal; an expired token is auth', async () => {
    const home = join(dir, 'home-sso');
    const startUrl = 'https://dso-test.awsapps.com/start';
    mkdirSync(join(home, '.aws'), { recursive: true });
    writeFileSync(join(home, '.aws', 'config'), `[profile dev]\nsso_start_url = ${startUrl}\nsso_region = ${moto.region}\nsso_account_id = ${sso.accountId}\nsso_role_name = ${sso.roleName}\n`);
    writeSsoTokenCache(home, startUrl, moto.region, sso.accessToken, new Date(Date.now() + 3600_000));
    const entry = { region: moto.region, endpoint: moto.url, auth: { method: 'sso', profile: 'dev' }, env: ['AWS_ENDPOINT_URL_SSO'] };
    const h = await host('worker', entry, { HOME: home, AWS_ENDPOINT_URL_SSO: sso.url });
    expect(text((await h.get('app/plain')).value.expose())).toBe(VALUES.plain);
    expect(sso.requests).toBeGreaterThan(0);

    const stale = join(dir, 'home-sso-expired');
    mkdirSync(join(stale, '.aws'), { recursive: true });
    writeFileSync(join(stale, '.aws', 'config'), `[profile dev]\nsso_start_url = ${startUrl}\nsso_region = ${moto.region}\nsso_account_id = ${sso.accountId}\nsso_role_name = ${sso.roleName}\n`);
    writeSsoTokenCache(stale, startUrl, moto.region, sso.accessToken, new Date(Date.now() - 60_000));
    const expired = await host('worker', entry, { HOME: stale, AWS_ENDPOINT_URL_SSO: sso.url });
    const e = await failure(expired.get('app/plain'));
    expect(e.kind).toBe('auth');
    expect(e.message).toContain('aws sso login');

    const portalDown = await host('worker', entry, { HOME: home, AWS_ENDPOINT_URL_SSO: await deadUrl() });
    const down = await failure(portalDown.get('app/plain'));
    expect(down.kind).toBe('unavailable');
    expect(down.message).toContain('SSO profile dev');
  });

  test('default chain, in a Worker: no variables, no files, so the instance role from IMDSv2', async () => {
    const before = imds.requests.length;
    const env = { AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url, HOME: join(dir, 'empty-home'), VAULT_TOKEN: 'hvs.not-for-the-aws-provider-000000', PATH: process.env.PATH };
    const h = await host('worker', { region: moto.region, endpoint: moto.url }, env);
    const got = await h.get('app/rotating', { version: 'AWSPREVIOUS' });
    expect(text(got.value.expose())).toBe(VALUES.v1);
    expect(got.version).toBe(rotatingV1);
    const asked = imds.requests.slice(before);
    expect(asked).toContain('PUT /latest/api/token');
    expect(asked).toContain(`GET /latest/meta-data/iam/security-credentials/${imds.role}`);
    expect((await failure(h.get('app/no-such-secret'))).kind).toBe('not_found');
  });

  test('default chain, in a Worker: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY come first', async () => {
    const before = imds.requests.length;
    const env = { AWS_ACCESS_KEY_ID: lister.accessKeyId, AWS_SECRET_ACCESS_KEY: lister.secretAccessKey, AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url, HOME: join(dir, 'empty-home') };
    const h = await host('worker', { region: moto.region, endpoint: moto.url, auth: { method: 'default' } }, env);
    // The lister's keys, not the instance role: denied.
    expect((await failure(h.get('app/plain'))).kind).toBe('denied');
    expect(imds.requests.length).toBe(before);
  });

  test('default chain with nothing to find is auth', async () => {
    const env = { AWS_EC2_METADATA_DISABLED: 'true', HOME: join(dir, 'empty-home') };
    const h = await host('worker', { region: moto.region, endpoint: moto.url, auth: { method: 'default' } }, env);
    const e = await failure(h.get('app/plain'));
    expect(e.kind).toBe('auth');
    expect(e.message).toContain('credentials');
  });

  test('iam, isolation: process: the instance role through IMDS, and the child sees only its variables', async () => {
    const env = { AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url, AWS_ACCESS_KEY_ID: lister.accessKeyId, AWS_SECRET_ACCESS_KEY: lister.secretAccessKey, VAULT_TOKEN: 'hvs.not-for-the-aws-provider-000000' };
    const h = await host('process', { region: moto.region, endpoint: moto.url, auth: { method: 'iam' } }, env);
    // iam ignores static keys in the environment (they are not even passed): the role reads.
    const got = await h.get('app/db');
    expect(JSON.parse(text(got.value.expose())).password).toBe(VALUES.password);
    // Its variables reached it over its pipe (test/unit/providers/host.test.ts checks they are
    // exactly the declared ones): its exec environment, all /proc shows, is empty.
    const environ = (await Bun.file(`/proc/${h.status().pid}/environ`).text()).split('\0').filter(Boolean);
    expect(environ).toEqual([]);
    expect((await failure(h.get('app/big'))).kind).toBe('too_large');
    const binary = await h.get('app/binary');
    expect(binary.value.expose()).toEqual(BINARY);
  });

  test('iam with the metadata service down is unavailable, and says it was the metadata service', async () => {
    const h = await host('worker', { region: moto.region, endpoint: moto.url, auth: { method: 'iam' } }, { AWS_EC2_METADATA_SERVICE_ENDPOINT: await deadUrl() });
    const e = await failure(h.get('app/plain'));
    expect(e.kind).toBe('unavailable');
    expect(e.message).toContain('cannot reach the instance metadata service');
  });
});

describe('the container credentials endpoint (ECS, EKS Pod Identity)', () => {
  const iam = () => parse({ region: moto.region, endpoint: moto.url, auth: { method: 'iam' } });
  const start = (config: AwsConfig, env: Record<string, string>) => createProvider(config, { name: 'aws', env, log: () => {} });

  test('iam: the token file wins over the variable, as in the SDK; a wrong token is auth and the token is not quoted', async () => {
    const tokenFile = join(dir, 'pod-identity-token');
    writeFileSync(tokenFile, pod.token);
    const before = pod.requests.length;
    const p = await start(iam(), { AWS_CONTAINER_CREDENTIALS_FULL_URI: pod.url, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: tokenFile, AWS_CONTAINER_AUTHORIZATION_TOKEN: 'not-the-pod-token-0000' });
    expect(text((await p.get('app/plain', opts())).value)).toBe(VALUES.plain);
    expect(pod.requests.slice(before)).toEqual([`GET ${new URL(pod.url).pathname}`]);
    const wrong = await start(iam(), { AWS_CONTAINER_CREDENTIALS_FULL_URI: pod.url, AWS_CONTAINER_AUTHORIZATION_TOKEN: 'not-the-pod-token-0000' });
    const e = await failure(wrong.get('app/plain', opts()));
    expect(e.kind).toBe('auth');
    expect(e.message).toContain('the container credentials endpoint refused to give credentials (HTTP 401)');
    expect(e.message).not.toContain('not-the-pod-token-0000');
    const missing = await start(iam(), { AWS_CONTAINER_CREDENTIALS_FULL_URI: pod.url, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: join(dir, 'no-such-token') });
    expect((await failure(missing.get('app/plain', opts()))).kind).toBe('auth');
  });

  test('a FULL_URI over http to a host the SDK does not allow is config; https, loopback and the ECS and EKS hosts are taken', async () => {
    for (const url of ['http://10.0.0.5/creds', 'http://example.com/creds', 'http://169.254.169.254/creds', 'ftp://127.0.0.1/creds']) {
      const e = await failure(start(iam(), { AWS_CONTAINER_CREDENTIALS_FULL_URI: url }));
      expect(e.kind).toBe('config');
      expect(e.message).toContain('AWS_CONTAINER_CREDENTIALS_FULL_URI must be https');
    }
    for (const url of ['https://creds.example.com/v1', 'http://127.0.0.2:8080/v1', 'http://localhost/v1', 'http://[::1]/v1', 'http://169.254.170.2/v2/creds', 'http://169.254.170.23/v1/credentials', 'http://[fd00:ec2::23]/v1/credentials']) {
      const p = await start(iam(), { AWS_CONTAINER_CREDENTIALS_FULL_URI: url });
      await p.close!();
    }
    const e = await failure(start(iam(), { AWS_CONTAINER_CREDENTIALS_FULL_URI: pod.url, AWS_CONTAINER_AUTHORIZATION_TOKEN: 'a\r\nX-Injected: 1' }).then((p) => p.get('app/plain', opts())));
    expect(e.kind).toBe('config');
  });

  test('default chain, in a Worker: no keys or files, so the container endpoint, before the instance metadata service', async () => {
    const before = imds.requests.length;
    const env = { AWS_CONTAINER_CREDENTIALS_FULL_URI: pod.url, AWS_CONTAINER_AUTHORIZATION_TOKEN: pod.token, AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url, HOME: join(dir, 'empty-home') };
    const h = await host('worker', { region: moto.region, endpoint: moto.url, auth: { method: 'default' } }, env);
    expect(text((await h.get('app/plain')).value.expose())).toBe(VALUES.plain);
    expect(imds.requests.length).toBe(before);
    const down = await host('worker', { region: moto.region, endpoint: moto.url, auth: { method: 'default' } }, { ...env, AWS_CONTAINER_CREDENTIALS_FULL_URI: `${await deadUrl()}/v1/credentials` });
    const e = await failure(down.get('app/plain'));
    expect(e.kind).toBe('unavailable');
    expect(e.message).toContain('cannot reach the container credentials endpoint');
  });
});

describe('across the boundary', () => {
  test('static keys in a Worker and in a process: values, errors and timeouts keep their kinds', async () => {
    for (const isolation of ['worker', 'process'] as const) {
      const entry = { region: moto.region, endpoint: proxy.url, timeout: '1500ms', auth: { method: 'static', access_key_id_env: 'DSO_AWS_KEY', secret_access_key_env: 'DSO_AWS_SECRET' } };
      const h = await host(isolation, entry, { DSO_AWS_KEY: reader.accessKeyId, DSO_AWS_SECRET: reader.secretAccessKey });
      expect(text((await h.get('app/plain')).value.expose())).toBe(VALUES.plain);
      expect(await h.list('app/rot')).toEqual(['app/rotating']);
      expect(h.capabilities).toEqual({ list: true, watch: false, versions: true });
      expect((await failure(h.get('app/deleted'))).kind).toBe('not_found');
      proxy.setDelay(4000);
      try {
        expect((await failure(h.get('app/plain'))).kind).toBe('timeout');
      } finally {
        proxy.setDelay(0);
      }
      expect(h.status().restarts).toBe(0);
      const wrong = await host(isolation, entry, { DSO_AWS_KEY: reader.accessKeyId, DSO_AWS_SECRET: 'a-wrong-secret-access-key-000000' });
      expect((await failure(wrong.get('app/plain'))).kind).toBe('auth');
      const missing = await host(isolation, entry, { DSO_AWS_KEY: reader.accessKeyId });
      const e = await failure(missing.get('app/plain'));
      expect(e.kind).toBe('auth');
      expect(e.message).toContain('DSO_AWS_SECRET');
    }
  });
});

test('no error message carried a credential or a secret value', () => {
  expect(messages.length).toBeGreaterThan(30);
  const forbidden = [
    ...Object.values(VALUES),
    reader.secretAccessKey,
    lister.secretAccessKey,
    moto.admin.secretAccessKey,
    roleSession.secretAccessKey,
    roleSession.sessionToken,
    sso.accessToken,
    pod.token,
    'not-the-pod-token-0000',
    'a-wrong-secret-access-key-000000',
    'the-wrong-secret-key-0123456789',
    'not-a-real-secret-key-0123456789',
    'a-session-token-this-user-never-had',
  ];
  for (const m of messages) for (const f of forbidden) expect(m).not.toContain(f);
});
