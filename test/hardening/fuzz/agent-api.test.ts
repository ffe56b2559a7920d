// Fuzzing the agent's HTTP API in-process (hono's app.request, no socket): arbitrary JSON,
// non-JSON, huge and deeply nested bodies and arbitrary headers on every route, the webhook's
// signatures on its TCP app included. No request gets a 500; a refusal is a 4xx whose JSON error
// names what is wrong and never repeats the body, whose canary also stays out of logs and metrics.
// The rotator behind /v1/rotate and the socket webhook is a recording stand-in: it needs a Docker
// engine, and what is fuzzed here is the HTTP edge in front of it. With an admin socket, no
// request to the API socket reaches the rotator, however its path is spelt.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createHmac } from 'node:crypto';
import * as fc from 'fast-check';
import { createApi } from '../../../src/agent/api.ts';
import { parseSecretId } from '../../../src/compose/references.ts';
import { SecretCache } from '../../../src/agent/cache.ts';
import type { Rotator } from '../../../src/agent/rotator.ts';
import { AgentService } from '../../../src/agent/service.ts';
import { createWebhookApp, WebhookKey } from '../../../src/agent/webhook.ts';
import { defaultAgentConfig } from '../../../src/config/agent.ts';
import type { DsoConfig } from '../../../src/config/load.ts';
import { createLogger } from '../../../src/observe/log.ts';
import { createMetrics } from '../../../src/observe/metrics.ts';
import { Redactor } from '../../../src/observe/redact.ts';
import { FrameDecoder } from '../../../src/providers/frames.ts';
import { ProviderSet } from '../../../src/providers/resolver.ts';
import { CANARY, expectClearMessage, params, withCanary, withinDeadline } from './support.ts';

const WORKER = new URL('../../fixtures/providers/worker.ts', import.meta.url).href;
const logs: string[] = [];
const rotations: string[] = [];
let service: AgentService;
let app: ReturnType<typeof createApi>;
/** The two surfaces with an admin socket (agent.socket.admin), the first with a rotator that must never be reached. */
let readApp: ReturnType<typeof createApi>;
let adminApp: ReturnType<typeof createApi>;
const reachedFromRead: string[] = [];
let signedApp: ReturnType<typeof createWebhookApp>;
const KEY = 'fuzz-webhook-key-0123456789abcdef';
const NOW = Date.UTC(2030, 0, 1);

beforeAll(() => {
  const config: DsoConfig = {
    path: 'fuzz.yaml',
    providers: new Map([['fake', { name: 'fake', kind: 'test', isolation: 'worker', timeoutMs: 5000, env: [], optionalEnv: [], fixedEnv: {}, config: {} }]]),
    maxSecretBytes: 1 << 20,
    agent: defaultAgentConfig(),
    defaults: { rotation: { signal: 'SIGHUP' } },
  };
  const redactor = new Redactor();
  const cache = new SecretCache({ ttlMs: 60_000, maxBytes: 1 << 20, maxSecretBytes: 1 << 20, maxStaleMs: 60_000, onStore: (id, v) => redactor.remember(id, v), onDrop: (id) => redactor.forget(id) });
  const log = createLogger({ level: 'debug', format: 'json', redactor, write: (b) => logs.push(new TextDecoder().decode(b)) });
  const providers = new ProviderSet(config, { env: {}, hostOverrides: { workerUrl: WORKER } });
  service = new AgentService(config, providers, cache, createMetrics({ version: 'fuzz', cacheStats: () => cache.stats() }), log, 'fuzz');
  const rotator = {
    async rotateNow(secret: string) {
      rotations.push(secret);
      return { plan: { rotations: [], skipped: [] }, outcomes: [] };
    },
    async checkSecrets(ids?: readonly string[]) {
      return { checked: ids?.length ?? 0, queued: 0 };
    },
  } as unknown as Rotator;
  app = createApi(service, rotator);
  const untouchable = {
    async rotateNow(secret: string) {
      reachedFromRead.push(`rotate ${secret}`);
      return { plan: { rotations: [], skipped: [] }, outcomes: [] };
    },
    async checkSecrets(ids?: readonly string[]) {
      reachedFromRead.push(`check ${ids?.join(',')}`);
      return { checked: 0, queued: 0 };
    },
  } as unknown as Rotator;
  readApp = createApi(service, untouchable, { serves: 'read', adminSocket: '/run/dso/admin.sock' });
  adminApp = createApi(service, rotator, { serves: 'admin', adminSocket: '/run/dso/admin.sock' });
  signedApp = createWebhookApp({ trigger: async (ids) => ({ accepted: ids.length }), log, auth: WebhookKey.fromEnv({ HOOK: KEY }, 'HOOK'), now: () => NOW });
});
afterAll(async () => {
  await service.close();
  // Whatever was sent, the canary never reached the agent's metrics, nor its log except as what
  // logs are for: the name of a secret asked for (a well-formed reference, in the `secret` field).
  // Names are not values; anything else of a request in the log would be an echo.
  for (const line of logs.filter((l) => l.includes(CANARY))) {
    const { secret, ...rest } = JSON.parse(line) as { secret?: unknown };
    expect(JSON.stringify(rest), line).not.toContain(CANARY);
    expect(typeof secret, line).toBe('string');
    expect(() => parseSecretId(secret as string, 'log'), line).not.toThrow();
  }
  expect(await service.metrics.registry.metrics()).not.toContain(CANARY);
});

const ROUTES: Array<[string, string]> = [
  ['GET', '/v1/health'],
  ['GET', '/v1/status'],
  ['POST', '/v1/providers/check'],
  ['POST', '/v1/resolve'],
  ['POST', '/v1/rotate'],
  ['POST', '/v1/webhook'],
  ['PUT', '/v1/resolve'],
  ['DELETE', '/v1/status'],
  ['POST', '/v1/nope'],
];

// Bodies: JSON of the right shape with wrong contents, any JSON, text, bytes, and nesting.
const id = fc.oneof(fc.constantFrom('fake:app/db', 'fake:denied', 'nope:x', 'app/local', 'fake:a#k?version=2'), withCanary(), fc.string({ maxLength: 30 }));
const json = fc.oneof(
  fc.record({ secrets: fc.oneof(fc.array(id, { maxLength: 5 }), fc.jsonValue({ maxDepth: 2 }), withCanary()) }, { requiredKeys: [] }),
  fc.record({ secret: fc.oneof(id, fc.jsonValue({ maxDepth: 2 })), dryRun: fc.oneof(fc.boolean(), fc.jsonValue({ maxDepth: 1 })) }, { requiredKeys: [] }),
  fc.jsonValue({ maxDepth: 3 }),
  withCanary().map((s) => ({ value: s, [s]: [s] })),
);
const body = fc.oneof(
  json.map((j) => JSON.stringify(j)),
  withCanary(fc.string({ maxLength: 50 })),
  fc.uint8Array({ maxLength: 200 }).map((b) => new Uint8Array([...new TextEncoder().encode(CANARY), ...b])),
  fc.integer({ min: 1, max: 5000 }).map((depth) => `${'['.repeat(depth)}"${CANARY}"${']'.repeat(depth)}`),
  fc.integer({ min: 1, max: 3000 }).map((depth) => `${'{"a":'.repeat(depth)}"${CANARY}"${'}'.repeat(depth)}`),
  fc.constant(''),
);
// Header values as a client can send them: visible ASCII and spaces.
const headerText = withCanary(fc.string({ maxLength: 20 }).map((s) => s.replace(/[^\x21-\x7e]/g, '')));
const headers = fc.record(
  {
    'content-type': fc.oneof(fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=latin1'), headerText),
    'x-dso-signature': fc.oneof(headerText, fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 64, maxLength: 64 }).map((h) => `sha256=${h}`)),
    'x-dso-timestamp': fc.oneof(fc.nat().map(String), headerText),
    'x-anything': headerText,
    accept: fc.constantFrom('*/*', 'application/vnd.dso.frames'),
  },
  { requiredKeys: [] },
);

/** The contract of every answer to a bad request: below 500, JSON error, nothing of the request in it. */
async function expectSafeAnswer(r: Response, what: string): Promise<void> {
  expect(r.status, `${what} answered ${r.status}`).toBeLessThan(500);
  const bytes = new Uint8Array(await withinDeadline(r.arrayBuffer(), 30_000, `${what} body`));
  const text = new TextDecoder().decode(bytes);
  for (const [, v] of r.headers) expect(v).not.toContain(CANARY);
  // A 200 from resolve names the ids asked for (that is its answer); a refusal repeats nothing.
  if (r.status >= 400) {
    expect(text).not.toContain(CANARY);
    const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    expect(typeof parsed.error?.code).toBe('string');
    expect(typeof parsed.error?.message).toBe('string');
    expectClearMessage(parsed.error!.message as string);
  }
}

async function request(target: { request: typeof app.request }, method: string, path: string, b: string | Uint8Array | undefined, h: Record<string, string>): Promise<Response> {
  return withinDeadline(target.request(path, { method, headers: h, ...(method === 'GET' || method === 'HEAD' ? {} : { body: b }) }), 30_000, `${method} ${path}`);
}

describe('agent API', () => {
  test('every route, any body and headers: below 500, a JSON error that does not echo the request', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...ROUTES), body, headers, async ([method, path], b, h) => {
        await expectSafeAnswer(await request(app, method, path, b, h), `${method} ${path}`);
      }),
      params(0.25),
    );
  });

  test('with an admin socket, on either socket: every route, any body and headers, below 500 and no echo; the API socket never reaches the rotator', async () => {
    const paths = fc.oneof(fc.constantFrom(...ROUTES), fc.tuple(fc.constantFrom('POST', 'GET'), fc.constantFrom('/v1/rotate/', '//v1/rotate', '/v1/%72otate', '/v1/./webhook', '/V1/webhook', '/v1/webhook?x=1', '/v1/rotate#x')));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(readApp, adminApp), paths, body, headers, async (target, [method, path], b, h) => {
        await expectSafeAnswer(await request(target, method, path, b, h), `${method} ${path}`);
      }),
      params(0.25),
    );
    expect(reachedFromRead).toEqual([]);
  });

  test('resolve: valid references come back as frames, one per id, values as bytes', async () => {
    const path = fc.array(fc.string({ unit: fc.constantFrom(...'abcXYZ019_.-'), minLength: 1, maxLength: 10 }).filter((s) => s !== '.' && s !== '..'), { minLength: 1, maxLength: 3 }).map((s) => s.join('/'));
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(path, { minLength: 1, maxLength: 5 }), async (paths) => {
        const ids = paths.map((p) => `fake:${p}`);
        const r = await request(app, 'POST', '/v1/resolve', JSON.stringify({ secrets: ids }), { 'content-type': 'application/json' });
        expect(r.status).toBe(200);
        const frames = new FrameDecoder().push(new Uint8Array(await r.arrayBuffer()));
        const values = frames.filter((f) => f.type === 'value');
        expect(values.map((f) => f.id).sort()).toEqual([...ids].sort());
        for (const f of values) expect(new TextDecoder().decode(f.value as Uint8Array)).toBe(`value-of:${(f.id as string).slice('fake:'.length)}`);
        expect(frames.at(-1)).toEqual({ type: 'end', values: ids.length, failures: 0 });
      }),
      params(3),
    );
  });

  test('huge bodies are refused without a 500', async () => {
    for (const size of [1 << 20, 24 << 20, 80 << 20]) {
      const big = `{"secrets":["${CANARY}${'a'.repeat(size)}"]}`;
      for (const path of ['/v1/resolve', '/v1/rotate', '/v1/webhook']) await expectSafeAnswer(await request(app, 'POST', path, big, { 'content-type': 'application/json' }), `POST ${path} (${size} bytes)`);
    }
  });

  test('regression: a malformed reference in a body was repeated in the 400', async () => {
    for (const [path, b] of [['/v1/resolve', { secrets: [`vault:${CANARY} x`] }], ['/v1/rotate', { secret: `${CANARY}:x` }]] as const) {
      const r = await request(app, 'POST', path, JSON.stringify(b), { 'content-type': 'application/json' });
      expect(r.status).toBe(400);
      await expectSafeAnswer(r, path);
    }
  });
});

describe('signed webhook (TCP app)', () => {
  const sign = (b: string | Uint8Array, ts: string) => `sha256=${createHmac('sha256', KEY).update(`${ts}.`).update(b).digest('hex')}`;

  test('any unsigned or wrongly signed request is a 401 that says only "bad signature"', async () => {
    await fc.assert(
      fc.asyncProperty(body, headers, async (b, h) => {
        const r = await request(signedApp, 'POST', '/v1/webhook', b, h);
        expect([401, 413]).toContain(r.status);
        await expectSafeAnswer(r, 'webhook');
      }),
      params(),
    );
  });

  test('a correctly signed request with any body is accepted or a 4xx that does not echo it', async () => {
    await fc.assert(
      fc.asyncProperty(body, fc.integer({ min: -400, max: 400 }), async (b, skewSeconds) => {
        const ts = String(Math.floor(NOW / 1000) + skewSeconds);
        const r = await request(signedApp, 'POST', '/v1/webhook', b, { 'content-type': 'application/json', 'x-dso-timestamp': ts, 'x-dso-signature': sign(b, ts) });
        if (Math.abs(skewSeconds) > 300) expect(r.status).toBe(401);
        await expectSafeAnswer(r, 'signed webhook');
      }),
      params(),
    );
  });

  test('other routes on the TCP app are JSON 404s', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...ROUTES), body, async ([method, path], b) => {
        const r = await request(signedApp, method, path, b, {});
        await expectSafeAnswer(r, `${method} ${path} on the webhook app`);
      }),
      params(3),
    );
  });
});
