// The agent API in-process (hono's app.request, no socket): resolve returns values as frames
// of bytes and failures by reference, status describes providers and cache, bad bodies are
// 400s, and metrics carry every documented name without a value in them.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createApi, FRAMES_TYPE } from '../../../src/agent/api.ts';
import { SecretCache } from '../../../src/agent/cache.ts';
import type { Rotator } from '../../../src/agent/rotator.ts';
import { AgentService } from '../../../src/agent/service.ts';
import { defaultAgentConfig } from '../../../src/config/agent.ts';
import type { DsoConfig } from '../../../src/config/load.ts';
import { createLogger } from '../../../src/observe/log.ts';
import { createMetrics } from '../../../src/observe/metrics.ts';
import { Redactor } from '../../../src/observe/redact.ts';
import { FrameDecoder } from '../../../src/providers/frames.ts';
import { ProviderSet } from '../../../src/providers/resolver.ts';

const WORKER = new URL('../../fixtures/providers/worker.ts', import.meta.url).href;
const logs: string[] = [];
let service: AgentService;
let app: ReturnType<typeof createApi>;

beforeAll(() => {
  const config: DsoConfig = {
    path: 'test.yaml',
    providers: new Map([
      ['fake', { name: 'fake', kind: 'test', isolation: 'worker', timeoutMs: 2000, env: [], optionalEnv: [], fixedEnv: {}, config: {} }],
      // Its credential variable is not set: it cannot start.
      ['locked', { name: 'locked', kind: 'test', isolation: 'worker', timeoutMs: 2000, env: ['LOCKED_TOKEN'], optionalEnv: [], fixedEnv: {}, config: { token_env: 'LOCKED_TOKEN' } }],
    ]),
    maxSecretBytes: 1 << 20,
    agent: defaultAgentConfig(),
    defaults: { rotation: { signal: 'SIGHUP' } },
  };
  const redactor = new Redactor();
  const cache = new SecretCache({ ttlMs: 60_000, maxBytes: 1 << 20, maxSecretBytes: 1 << 20, maxStaleMs: 60_000, onStore: (id, v) => redactor.remember(id, v), onDrop: (id) => redactor.forget(id) });
  const log = createLogger({ level: 'debug', format: 'json', redactor, write: (b) => logs.push(new TextDecoder().decode(b)) });
  const providers = new ProviderSet(config, { env: {}, hostOverrides: { workerUrl: WORKER } });
  service = new AgentService(config, providers, cache, createMetrics({ version: 'test', cacheStats: () => cache.stats() }), log, 'test');
  app = createApi(service);
});
afterAll(() => service.close());

async function resolve(ids: string[]) {
  const r = await app.request('/v1/resolve', { method: 'POST', body: JSON.stringify({ secrets: ids }), headers: { 'content-type': 'application/json' } });
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toBe(FRAMES_TYPE);
  return new FrameDecoder().push(new Uint8Array(await r.arrayBuffer()));
}

test('resolve: values as bytes, failures by reference, then an end frame', async () => {
  const frames = await resolve(['fake:app/db', 'fake:denied', 'nope:x', 'fake:app/db']);
  const value = frames.find((f) => f.type === 'value')!;
  expect(value.id).toBe('fake:app/db');
  expect(new TextDecoder().decode(value.value as Uint8Array)).toBe('value-of:app/db');
  expect(value.version).toBe('1');
  const failures = frames.filter((f) => f.type === 'failure');
  expect(failures.map((f) => [f.id, f.kind]).sort()).toEqual([['fake:denied', 'denied'], ['nope:x', 'config']]);
  expect(frames.at(-1)).toEqual({ type: 'end', values: 1, failures: 2 });
});

test('the second read is a cache hit; status shows it, and the provider as ready', async () => {
  await resolve(['fake:app/cached']);
  await resolve(['fake:app/cached']);
  const s = (await (await app.request('/v1/status')).json()) as any;
  expect(s.mode).toBe('cloud');
  expect(s.cache.hits).toBeGreaterThanOrEqual(1);
  expect(s.providers[0]).toMatchObject({ name: 'fake', kind: 'test', state: 'ready' });
  expect(s.providers[0].lastContact).toBeTruthy();
});

test('providers/check starts every provider and says which cannot log in, and why', async () => {
  const r = await app.request('/v1/providers/check', { method: 'POST' });
  expect(r.status).toBe(200);
  const { providers } = (await r.json()) as { providers: Array<Record<string, any>> };
  const byName = Object.fromEntries(providers.map((p) => [p.name, p]));
  expect(byName.fake).toMatchObject({ kind: 'test', isolation: 'worker', ok: true });
  expect(byName.locked).toMatchObject({ ok: false, error: { kind: 'auth' } });
  expect(byName.locked.error.message).toContain('LOCKED_TOKEN');
  expect(logs.some((l) => l.includes('A provider could not start') && l.includes('locked'))).toBe(true);
});

test('a provider that cannot reach its backend is unhealthy in status, with why, until it answers again', async () => {
  const health = async () => ((await (await app.request('/v1/status')).json()) as any).providers.find((p: { name: string }) => p.name === 'fake');
  await resolve(['fake:slow']); // the test provider never answers this one: a timeout
  expect(await health()).toMatchObject({ healthy: false, lastError: expect.stringMatching(/^timeout: /) });
  await resolve(['fake:after-outage']);
  const back = await health();
  expect(back.healthy).toBe(true);
  expect(back.lastError).toBeUndefined();
});

test('bad requests are 400 with a message', async () => {
  const notJson = await app.request('/v1/resolve', { method: 'POST', body: 'nope' });
  expect(notJson.status).toBe(400);
  const empty = await app.request('/v1/resolve', { method: 'POST', body: JSON.stringify({ secrets: [] }) });
  expect(empty.status).toBe(400);
  const badRef = await app.request('/v1/resolve', { method: 'POST', body: JSON.stringify({ secrets: ['fake:../x'] }) });
  expect(badRef.status).toBe(400);
  expect(((await badRef.json()) as any).error.code).toBe('INVALID_REFERENCE');
  expect((await app.request('/v2/nothing')).status).toBe(404);
});

test('metrics: every name the seed documents, and no secret value', async () => {
  await resolve(['fake:app/metric-secret', 'fake:denied']);
  const text = await service.metrics.registry.metrics();
  for (const name of [
    'dso_rotation_duration_seconds', 'dso_rotation_total', 'dso_rotation_health_check_duration_seconds', 'dso_event_queue_size',
    'dso_event_queue_drops_total', 'dso_event_debounce_batches_total', 'dso_cache_size_bytes', 'dso_cache_entries', 'dso_cache_hits_total',
    'dso_cache_misses_total', 'dso_provider_request_duration_seconds', 'dso_provider_errors_total', 'dso_container_rotation_duration_seconds',
    'dso_container_rename_failures_total', 'dso_process_resident_memory_bytes',
  ]) {
    expect(text).toContain(`# TYPE ${name} `);
  }
  expect(text).toContain('dso_provider_errors_total{provider="fake",error="denied"} ');
  expect(text).not.toContain('value-of:');
});

test('an accidental log of a cached value is redacted', async () => {
  await resolve(['fake:app/logged']);
  service.log.info('oops: value-of:app/logged was here');
  expect(logs.join('')).not.toContain('value-of:app/logged');
});

describe('with an admin socket, each socket serves its own routes', () => {
  const ADMIN = '/run/dso/admin.sock';
  /** A stand-in for the rotator: records what reaches it. */
  const rotatorFake = () => {
    const calls: string[] = [];
    const rotator = {
      rotateNow: async (id: string) => {
        calls.push(`rotate ${id}`);
        return { plan: [], outcomes: [] };
      },
      checkSecrets: async (ids: string[]) => {
        calls.push(`check ${ids.join(',')}`);
        return { checked: ids.length, queued: 0 };
      },
    };
    return { calls, rotator: rotator as unknown as Rotator };
  };
  const post = (a: ReturnType<typeof createApi>, path: string, body: unknown) => a.request(path, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

  test('the API socket reads (resolve, status, provider check) and refuses rotate and the webhook with 403, naming the admin socket', async () => {
    const { calls, rotator } = rotatorFake();
    const read = createApi(service, rotator, { serves: 'read', adminSocket: ADMIN });
    expect((await read.request('/v1/health')).status).toBe(200);
    expect((await read.request('/v1/status')).status).toBe(200);
    expect((await post(read, '/v1/resolve', { secrets: ['fake:app/db'] })).status).toBe(200);
    for (const [path, body] of [['/v1/rotate', { secret: 'fake:app/db' }], ['/v1/webhook', { secrets: ['fake:app/db'] }]] as const) {
      const r = await post(read, path, body);
      expect(r.status).toBe(403);
      const error = ((await r.json()) as { error: { code: string; message: string; hint: string } }).error;
      expect(error.code).toBe('PERMISSION_DENIED');
      expect(error.message).toBe(`this socket does not serve POST ${path}: the agent serves it on its admin socket ${ADMIN} (agent.socket.admin)`);
      expect(error.hint).toContain('agent.socket.admin.group');
    }
    // Other spellings of the same routes do not reach the rotator either.
    for (const path of ['/v1/rotate/', '//v1/rotate', '/v1/%72otate', '/V1/rotate', '/v1/rotate?x=1', '/v1/./rotate', '/v1/webhook/']) {
      expect([403, 404]).toContain((await post(read, path, { secret: 'fake:app/db' })).status);
    }
    expect(calls).toEqual([]);
  });

  test('the admin socket rotates and takes the webhook, and serves neither values nor status', async () => {
    const { calls, rotator } = rotatorFake();
    const admin = createApi(service, rotator, { serves: 'admin', adminSocket: ADMIN });
    expect((await admin.request('/v1/health')).status).toBe(200);
    const rotated = await post(admin, '/v1/rotate', { secret: 'fake:app/db', dryRun: true });
    expect(rotated.status).toBe(200);
    expect(await rotated.text()).toContain('"type":"result"');
    expect((await post(admin, '/v1/webhook', { secrets: ['fake:app/db'] })).status).toBe(202);
    expect(calls).toEqual(['rotate fake:app/db', 'check fake:app/db']);
    expect((await post(admin, '/v1/resolve', { secrets: ['fake:app/db'] })).status).toBe(404);
    expect((await admin.request('/v1/status')).status).toBe(404);
    expect((await post(admin, '/v1/providers/check', {})).status).toBe(404);
  });

  test('without one, the API socket serves every route (as before)', async () => {
    const { calls, rotator } = rotatorFake();
    const all = createApi(service, rotator);
    expect((await post(all, '/v1/resolve', { secrets: ['fake:app/db'] })).status).toBe(200);
    expect((await post(all, '/v1/rotate', { secret: 'fake:app/db', dryRun: true })).status).toBe(200);
    expect((await post(all, '/v1/webhook', { secrets: ['fake:app/db'] })).status).toBe(202);
    expect(calls).toHaveLength(2);
  });
});

test('the route label of dso_api_requests_total is the route, never the path asked for: unknown paths cannot fill the metrics', async () => {
  await app.request('/v1/no-such-route-CANARY');
  await app.request('/v1/resolve/CANARY2', { method: 'POST' });
  const text = await service.metrics.registry.metrics();
  expect(text).not.toContain('CANARY');
  expect(text).toContain('dso_api_requests_total{route="/*",status="404"}');
});
