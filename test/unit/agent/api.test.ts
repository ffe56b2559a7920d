// The agent API in-process (hono's app.request, no socket): resolve returns values as frames
// of bytes and failures by reference, status describes providers and cache, bad bodies are
// 400s, and metrics carry every documented name without a value in them.
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { createApi, FRAMES_TYPE } from '../../../src/agent/api.ts';
import { SecretCache } from '../../../src/agent/cache.ts';
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
