// Fuzzing dso.yaml: arbitrary text, and documents with the right keys and wrong values (types,
// units, addresses, provider settings), some holding a planted canary where a user could have
// pasted a secret. The outcome is a config or CONFIG_INVALID listing problems by key and line,
// never another exception, never the value found; valid generated settings come back as numbers.
import { describe, expect, test } from 'bun:test';
import * as fc from 'fast-check';
import { stringify } from 'yaml';
import { parseConfig } from '../../../src/config/load.ts';
import { parseDuration, parseSize, splitAddress } from '../../../src/config/units.ts';
import { CANARY, expectClearDsoError, outcome, params, withCanary, withinDeadline } from './support.ts';

const CODES = ['CONFIG_INVALID'] as const;

async function check(text: string): Promise<void> {
  const r = await withinDeadline(outcome(() => parseConfig(text, '/etc/dso/dso.yaml')), 10_000, 'parseConfig');
  if (r.ok) return;
  // Every problem is listed (config validate shows them all), so the message grows with their
  // number; each line stays short, names the file and never holds the value.
  const e = expectClearDsoError(r.error, CODES, CANARY, Number.POSITIVE_INFINITY);
  expect(e.message).toContain('/etc/dso/dso.yaml');
  for (const line of e.message.split('\n')) expect(line.length).toBeLessThan(600);
}

// A value as a user might write one, right or wrong: the canary stands for a pasted secret.
const secret = withCanary(fc.string({ maxLength: 8 }));
const scalar = fc.oneof(secret, fc.string({ maxLength: 20 }), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.constantFrom('30s', '5m', '1h30m', '0s', '-1s', '100Mi', '1G', '0', '127.0.0.1:9090', '[::1]:9443', 'host:99999', '0660', '0667', 'rolling', 'SIGHUP', '/var/lib/dso', 'relative'));
const value: fc.Arbitrary<unknown> = fc.oneof({ depthSize: 'small' }, scalar, fc.array(scalar, { maxLength: 3 }), fc.dictionary(fc.constantFrom('method', 'token', 'token_env', 'role', 'x'), scalar, { maxKeys: 3 }));

/** A section with some of its real keys (and an odd one), each set to a right or wrong value. */
const section = (keys: string[]) => fc.dictionary(fc.constantFrom(...keys, 'unknown_key'), value, { maxKeys: 5 });

const providerKeys = ['type', 'isolation', 'timeout', 'env', 'addr', 'mount', 'kv_version', 'namespace', 'auth', 'tls', 'region', 'endpoint', 'version_stage', 'vault_url', 'project_id', 'plugin', 'plugin_dir', 'settings', 'path', 'passphrase_env', 'passphrase_file'];
const provider = fc.tuple(section(providerKeys), fc.constantFrom('vault', 'aws', 'azure', 'huawei', 'local', 'plugin', undefined), fc.option(section(['method', 'token', 'token_env', 'token_file', 'role', 'role_id', 'secret_id_env', 'jwt_file', 'profile', 'access_key_id', 'client_id', 'tenant_id']), { nil: undefined })).map(([entry, type, auth]) => ({ ...entry, ...(type === undefined ? {} : { type }), ...(auth === undefined ? {} : { auth }) }));

const agent = fc.record(
  {
    state_dir: value,
    socket: section(['path', 'group', 'mode']),
    metrics: section(['enabled', 'address']),
    log: section(['level', 'format']),
    watch: section(['polling_interval', 'debounce_window', 'queue_size', 'webhook_secret_env', 'webhook_address']),
    health_check: section(['timeout', 'retries', 'interval']),
    cache: section(['ttl', 'max_cache_size', 'max_secret_size', 'max_stale']),
    rotation: section(['strategy', 'timeout', 'rollback_on_failure', 'concurrency', 'jitter']),
  },
  { requiredKeys: [] },
);

const document = fc.record(
  {
    providers: fc.oneof(fc.dictionary(fc.oneof(fc.constantFrom('vault', 'aws', 'azure', 'huawei', 'local', 'plugin', 'home', 'Bad Name'), fc.string({ maxLength: 10 })), provider, { maxKeys: 3 }), value),
    agent: fc.oneof(agent, value),
    defaults: fc.oneof(fc.record({ rotation: section(['strategy', 'signal']) }), value),
  },
  { requiredKeys: [] },
);

describe('dso.yaml', () => {
  test('arbitrary text: a config or CONFIG_INVALID, never a crash', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string({ maxLength: 400 }), fc.string({ unit: 'binary', maxLength: 200 }), fc.jsonValue({ maxDepth: 4 }).map((j) => stringify(j))), check),
      params(),
    );
  });

  test('the right keys with wrong values: every problem by key and line, no value repeated', async () => {
    await fc.assert(fc.asyncProperty(document, (doc) => check(stringify(doc))), params());
  });

  test('the same document in YAML flow style, with anchors, tags and comments', async () => {
    await fc.assert(
      fc.asyncProperty(document, fc.constantFrom('!!str ', '!!binary ', '!custom ', '&x ', ''), async (doc, decoration) => {
        const text = stringify(doc, null, { collectionStyle: 'flow' }).replace(/: /g, `: ${decoration}`);
        await check(`# dso\n${text}\nextra: *x\n`);
      }),
      params(2),
    );
  });

  test('YAML alias bombs, deep nesting and huge documents end quickly with CONFIG_INVALID', async () => {
    const bomb = ['a: &a [x,x,x,x,x,x,x,x,x,x]', ...Array.from({ length: 8 }, (_, i) => `b${i}: &b${i} [${Array(10).fill(i === 0 ? '*a' : `*b${i - 1}`).join(',')}]`), 'agent: *b7'].join('\n');
    for (const text of [bomb, `agent: ${'['.repeat(3000)}${']'.repeat(3000)}`, `agent:\n  state_dir: "${CANARY}${'x'.repeat(1_000_000)}"\n`, `providers:\n${Array.from({ length: 2000 }, (_, i) => `  p${i}: {type: vault, token: ${CANARY}}`).join('\n')}\n`]) {
      const r = await withinDeadline(outcome(() => parseConfig(text, '/etc/dso/dso.yaml')), 30_000, 'parseConfig');
      expect(r.ok).toBe(false);
      if (!r.ok) for (const line of expectClearDsoError(r.error, CODES, CANARY, Number.POSITIVE_INFINITY).message.split('\n')) expect(line.length).toBeLessThan(600);
    }
  });

  test('regression: a YAML alias bomb was a ReferenceError from the yaml library, not CONFIG_INVALID', async () => {
    const bomb = `a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nagent: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n`;
    const r = await outcome(() => parseConfig(bomb, 'dso.yaml'));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(expectClearDsoError(r.error, CODES).message).toContain('aliases');
  });

  test('regression: an unknown provider `type:` value was quoted back in the message', async () => {
    const r = await outcome(() => parseConfig(`providers:\n  db:\n    type: ${CANARY}\n`, 'dso.yaml'));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(expectClearDsoError(r.error, CODES).message).toContain('providers.db.type: unknown provider kind');
  });

  test('valid generated agent settings load, with durations and sizes as numbers', async () => {
    const durationParts = fc.array(fc.tuple(fc.integer({ min: 1, max: 500 }), fc.constantFrom('ms', 's', 'm', 'h')), { minLength: 1, maxLength: 3 });
    const unitMs: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
    await fc.assert(
      fc.asyncProperty(durationParts, fc.integer({ min: 1, max: 1023 }), fc.constantFrom('Ki', 'Mi'), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 65535 }), async (parts, n, unit, concurrency, port) => {
        const ttl = parts.map(([k, u]) => `${k}${u}`).join('');
        const size = `${n}${unit}`;
        const c = await parseConfig(stringify({ agent: { cache: { ttl, max_secret_size: size, max_cache_size: '1Gi' }, rotation: { concurrency }, metrics: { address: `127.0.0.1:${port}` } } }), 'dso.yaml');
        expect(c.agent.cache.ttl).toBe(parts.reduce((t, [k, u]) => t + k * unitMs[u]!, 0));
        expect(c.maxSecretBytes).toBe(n * (unit === 'Ki' ? 1024 : 1024 ** 2));
        expect(c.agent.rotation.concurrency).toBe(concurrency);
        expect(splitAddress(c.agent.metrics.address)).toEqual({ hostname: '127.0.0.1', port });
      }),
      params(2),
    );
  });
});

describe('units', () => {
  test('parseDuration and parseSize never throw: a safe whole number or undefined', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 30 }), fc.stringMatching(/^(\d{1,25}(ms|s|m|h))+$/), fc.stringMatching(/^\d{1,25}(Ki|Mi|Gi|K|M|G|B)?$/)), (text) => {
        for (const n of [parseDuration(text), parseSize(text)]) if (n !== undefined) expect(Number.isSafeInteger(n) && n >= 0).toBe(true);
      }),
      params(),
    );
  });
});

describe('regression: durations a timer cannot wait', () => {
  // setTimeout and setInterval run anything above 2^31 - 1 ms after 1 ms: `polling_interval: 600h`
  // polled providers in a busy loop, a provider `timeout: 600h` timed every call out at once.
  test.each([
    ['agent.watch.polling_interval', 'agent:\n  watch:\n    polling_interval: 600h\n'],
    ['agent.rotation.timeout', 'agent:\n  rotation:\n    timeout: 1000h\n'],
    ['agent.health_check.interval', 'agent:\n  health_check:\n    interval: 597h\n'],
    ['providers.local.timeout', 'providers:\n  local:\n    passphrase_env: P\n    timeout: 600h\n'],
  ])('%s above 596h is refused', async (key, text) => {
    const r = await outcome(() => parseConfig(text, 'dso.yaml'));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(expectClearDsoError(r.error, CODES).message).toContain(`${key}: `);
    if (!r.ok) expect((r.error as Error).message).toContain('596h');
  });

  test('the longest timer duration and long cache durations are still accepted', async () => {
    const c = await parseConfig('agent:\n  watch:\n    polling_interval: 596h\n  cache:\n    ttl: 2000h\n    max_stale: 9000h\n', 'dso.yaml');
    expect(c.agent.watch.polling_interval).toBe(596 * 3_600_000);
    expect(c.agent.cache.max_stale).toBe(9000 * 3_600_000);
  });

  test('generated durations: accepted exactly when a timer can wait them', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 2 ** 33 }), async (ms) => {
        const r = await outcome(() => parseConfig(`agent:\n  watch:\n    polling_interval: ${ms}ms\n`, 'dso.yaml'));
        expect(r.ok).toBe(ms <= 2 ** 31 - 1);
        if (r.ok) expect(r.value.agent.watch.polling_interval).toBe(ms);
      }),
      params(2),
    );
  });
});
