// The webhook in-process (hono's app.request): a signed request triggers a check of the named
// secrets; a missing, wrong, stale or replayed signature does not, and says no more than "bad
// signature"; bad bodies are 400s that do not echo them, big ones 413s. A replay is refused by
// another app sharing the agent's memory (the listener after a reload) and by one reading it from
// the state directory (after a restart). The TCP listener refuses to start without a key, and
// serves the same route when it has one.
import { describe, expect, test } from 'bun:test';
import { createHmac } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPLAY_FILE, ReplayMemory } from '../../../src/agent/replay.ts';
import { createWebhookApp, MAX_SIGNATURE_AGE_MS, MAX_WEBHOOK_BODY, startWebhookServer, WebhookKey, webhookRoutes } from '../../../src/agent/webhook.ts';
import { DsoError } from '../../../src/errors.ts';
import { createLogger } from '../../../src/observe/log.ts';
import { Redactor } from '../../../src/observe/redact.ts';

const KEY = 'test-webhook-key-0123456789abcdef';
const NOW = Date.UTC(2030, 0, 1, 12, 0, 0);

function setup(options: { socket?: boolean; fail?: boolean; replay?: ReplayMemory } = {}) {
  const calls: string[][] = [];
  const logs: string[] = [];
  const clock = { now: NOW };
  const log = createLogger({ level: 'debug', format: 'json', redactor: new Redactor(), write: (b) => logs.push(new TextDecoder().decode(b)) });
  const trigger = async (ids: string[]) => {
    if (options.fail) throw new Error('queue is closed');
    calls.push(ids);
    return { accepted: ids.length };
  };
  const app = options.socket
    ? webhookRoutes({ trigger, log, auth: 'socket' })
    : createWebhookApp({ trigger, log, auth: WebhookKey.fromEnv({ HOOK: KEY }, 'HOOK'), now: () => clock.now, ...(options.replay ? { replay: options.replay } : {}) });
  return { app, calls, logs, clock };
}

function sign(body: string, opts: { key?: string; at?: number } = {}): Record<string, string> {
  const ts = String(Math.floor((opts.at ?? NOW) / 1000));
  const mac = createHmac('sha256', opts.key ?? KEY).update(`${ts}.${body}`).digest('hex');
  return { 'x-dso-timestamp': ts, 'x-dso-signature': `sha256=${mac}` };
}

function signBytes(body: Uint8Array): Record<string, string> {
  const ts = String(Math.floor(NOW / 1000));
  const mac = createHmac('sha256', KEY).update(`${ts}.`).update(body).digest('hex');
  return { 'x-dso-timestamp': ts, 'x-dso-signature': `sha256=${mac}` };
}

const post = (app: { request: (path: string, init: RequestInit) => Response | Promise<Response> }, body: string | Uint8Array | ReadableStream, headers: Record<string, string> = {}) =>
  app.request('/v1/webhook', { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });

test('a signed request triggers a check of the named secrets, each once, in canonical form; 202', async () => {
  const t = setup();
  const body = JSON.stringify({ secrets: ['vault:app/db', 'aws:prod/api#token', 'vault:app/db', 'vault:app/db?version=3'] });
  const r = await post(t.app, body, sign(body));
  expect(r.status).toBe(202);
  expect(await r.json()).toEqual({ accepted: 3 });
  expect(t.calls).toEqual([['vault:app/db', 'aws:prod/api#token', 'vault:app/db?version=3']]);
  expect(t.logs.join('')).toContain('Webhook: checking secrets now');
});

describe('an unsigned or badly signed request is a 401 "bad signature", the trigger untouched, the body never logged', () => {
  const body = JSON.stringify({ secrets: ['vault:app/CANARY_BODY_TEXT'] });
  const good = sign(body);
  test.each([
    ['no headers', {}],
    ['no timestamp', { 'x-dso-signature': good['x-dso-signature']! }],
    ['no signature', { 'x-dso-timestamp': good['x-dso-timestamp']! }],
    ['the wrong key', sign(body, { key: 'another-key-0123456789abcdef0000' })],
    ['not sha256=', { ...good, 'x-dso-signature': good['x-dso-signature']!.replace('sha256=', 'sha1=') }],
    ['a short signature', { ...good, 'x-dso-signature': good['x-dso-signature']!.slice(0, -2) }],
    ['another timestamp than was signed', { ...good, 'x-dso-timestamp': String(Number(good['x-dso-timestamp']) + 1) }],
    ['a timestamp that is not a number', { ...good, 'x-dso-timestamp': 'soon' }],
    ['a signature of another body', sign(body.replace('CANARY', 'OTHER'))],
  ] as Array<[string, Record<string, string>]>)('%s', async (_what, headers) => {
    const t = setup();
    const r = await post(t.app, body, headers);
    expect(r.status).toBe(401);
    expect(await r.json()).toEqual({ error: { code: 'BAD_SIGNATURE', message: 'bad signature' } });
    expect(t.calls).toEqual([]);
    const log = t.logs.join('');
    expect(log).toContain('Refused a webhook request: bad signature');
    expect(log).not.toContain('CANARY_BODY_TEXT');
    expect(log).not.toContain(KEY);
  });
});

test('a timestamp more than 5 minutes from the clock is refused, even with a good MAC; within 5 minutes it is accepted', async () => {
  const t = setup();
  const body = JSON.stringify({ secrets: ['vault:app/db'] });
  expect((await post(t.app, body, sign(body, { at: NOW - 5 * 60_000 - 1000 }))).status).toBe(401);
  expect((await post(t.app, body, sign(body, { at: NOW + 5 * 60_000 + 1000 }))).status).toBe(401);
  expect(t.logs.join('')).toContain("s from the agent's clock");
  expect(t.calls).toEqual([]);
  expect((await post(t.app, body, sign(body, { at: NOW - 4 * 60_000 }))).status).toBe(202);
  expect(t.calls).toHaveLength(1);
});

test('a replayed request is accepted once: the copy gets a 202 marked duplicate and triggers nothing', async () => {
  const t = setup();
  const body = JSON.stringify({ secrets: ['vault:app/db'] });
  const headers = sign(body);
  expect((await post(t.app, body, headers)).status).toBe(202);
  const again = await post(t.app, body, headers);
  expect(again.status).toBe(202);
  expect(await again.json()).toEqual({ accepted: 0, duplicate: true });
  expect(t.calls).toHaveLength(1);
  expect(t.logs.join('')).toContain('Ignored a replayed webhook request');
  // After the window the copy is refused as stale anyway.
  t.clock.now += 5 * 60_000 + 1000;
  expect((await post(t.app, body, headers)).status).toBe(401);
  // A new signature (a new timestamp) for the same body is a new request.
  expect((await post(t.app, body, sign(body, { at: t.clock.now }))).status).toBe(202);
  expect(t.calls).toHaveLength(2);
});

describe('the replay memory outlives the app that accepted the request', () => {
  let dir: string;
  const memory = (now: () => number) => ReplayMemory.open(join(dir, 'state'), { windowMs: MAX_SIGNATURE_AGE_MS, now, log: () => {} });
  const body = JSON.stringify({ secrets: ['vault:app/db'] });

  test('another app sharing the memory (the listener rebuilt by a reload) and one reading it back (a restart) refuse the copy', async () => {
    dir = mkdtempSync(join(tmpdir(), 'dso-webhook-'));
    try {
      const shared = memory(() => NOW);
      const first = setup({ replay: shared });
      const headers = sign(body);
      expect((await post(first.app, body, headers)).status).toBe(202);
      const reloaded = setup({ replay: shared });
      expect(await (await post(reloaded.app, body, headers)).json()).toEqual({ accepted: 0, duplicate: true });
      // The 202 above was answered after the memory was on disk.
      const restarted = setup({ replay: memory(() => NOW + 60_000) });
      restarted.clock.now = NOW + 60_000;
      expect(await (await post(restarted.app, body, headers)).json()).toEqual({ accepted: 0, duplicate: true });
      expect([first.calls, reloaded.calls, restarted.calls]).toEqual([[['vault:app/db']], [], []]);
      // Past the window the copy is refused by its timestamp, as before.
      restarted.clock.now = NOW + MAX_SIGNATURE_AGE_MS + 1000;
      expect((await post(restarted.app, body, headers)).status).toBe(401);
      expect(restarted.logs.join('')).toContain("s from the agent's clock");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('after a start whose memory could not be read: a signed request is a 503 to retry, an unsigned one still a 401, and the trigger untouched', async () => {
    dir = mkdtempSync(join(tmpdir(), 'dso-webhook-'));
    try {
      mkdirSync(join(dir, 'state'));
      writeFileSync(join(dir, 'state', REPLAY_FILE), 'not json');
      const t = setup({ replay: memory(() => NOW) });
      const r = await post(t.app, body, sign(body));
      expect(r.status).toBe(503);
      expect(r.headers.get('retry-after')).toBe('60');
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe('UNAVAILABLE');
      expect((await post(t.app, body)).status).toBe(401);
      expect(t.calls).toEqual([]);
      // Signed once the lost memory's window is over: accepted.
      t.clock.now = NOW + MAX_SIGNATURE_AGE_MS + 1000;
      expect((await post(t.app, body, sign(body, { at: t.clock.now }))).status).toBe(202);
      expect(t.calls).toHaveLength(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a malformed body is a 400 that does not echo it', () => {
  const canary = 'ECHO_CANARY_1234';
  test.each([
    ['not JSON', `{secrets: ${canary}`],
    ['not UTF-8', new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])],
    ['no secrets', JSON.stringify({ names: [canary] })],
    ['secrets not a list', JSON.stringify({ secrets: canary })],
    ['an empty list', JSON.stringify({ secrets: [] })],
    ['more than 1000', JSON.stringify({ secrets: Array.from({ length: 1001 }, (_, i) => `vault:s${i}`) })],
    ['a number in the list', JSON.stringify({ secrets: [42] })],
    ['a malformed reference', JSON.stringify({ secrets: ['vault:app/db', `vault:../${canary}`] })],
    ['a local vault name', JSON.stringify({ secrets: [`app/${canary}`] })],
    ['a bad provider name', JSON.stringify({ secrets: [`Vault:${canary}`] })],
    ['an array', JSON.stringify([canary])],
  ] as Array<[string, string | Uint8Array]>)('%s', async (_what, body) => {
    const t = setup();
    const r = await post(t.app, body, typeof body === 'string' ? sign(body) : signBytes(body));
    expect(r.status).toBe(400);
    const text = await r.text();
    expect(JSON.parse(text).error.code).toBe('USAGE');
    expect(text).not.toContain(canary);
    expect(text).not.toContain('42');
    expect(t.calls).toEqual([]);
  });

  test('the answer names the entry at fault by index', async () => {
    const t = setup();
    const body = JSON.stringify({ secrets: ['vault:ok', 'nope'] });
    const r = await post(t.app, body, sign(body));
    expect(((await r.json()) as { error: { message: string } }).error.message).toBe('secrets[1] is not a provider secret reference (PROVIDER:PATH[#KEY][?version=V])');
  });
});

test('exactly 1000 references are accepted', async () => {
  const t = setup();
  const body = JSON.stringify({ secrets: Array.from({ length: 1000 }, (_, i) => `vault:app/s${i}`) });
  const r = await post(t.app, body, sign(body));
  expect(r.status).toBe(202);
  expect(t.calls[0]).toHaveLength(1000);
});

test('a body over 64 KiB is a 413, whether its length is declared or streamed', async () => {
  const t = setup();
  const big = JSON.stringify({ secrets: ['vault:a'], pad: 'x'.repeat(MAX_WEBHOOK_BODY) });
  const declared = await post(t.app, big, sign(big));
  expect(declared.status).toBe(413);
  expect(((await declared.json()) as { error: { code: string } }).error.code).toBe('TOO_LARGE');
  const chunk = new TextEncoder().encode('x'.repeat(16 * 1024));
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent++ < 10) controller.enqueue(chunk);
      else controller.close();
    },
  });
  const streamed = await post(t.app, stream, sign('whatever'));
  expect(streamed.status).toBe(413);
  expect(t.calls).toEqual([]);
});

test('on the unix socket no signature is needed: its permissions authorise', async () => {
  const t = setup({ socket: true });
  const body = JSON.stringify({ secrets: ['vault:app/db'] });
  const r = await post(t.app, body);
  expect(r.status).toBe(202);
  expect(t.calls).toEqual([['vault:app/db']]);
  // Still validated.
  expect((await post(t.app, '{"secrets":[]}')).status).toBe(400);
});

test('a failing trigger is a 500 that says only to read the log', async () => {
  const t = setup({ fail: true });
  const body = JSON.stringify({ secrets: ['vault:app/db'] });
  const r = await post(t.app, body, sign(body));
  expect(r.status).toBe(500);
  expect(await r.json()).toEqual({ error: { code: 'INTERNAL', message: 'internal error; see the agent log' } });
  expect(t.logs.join('')).toContain('queue is closed');
});

test('other routes and methods on the TCP app are JSON 404s', async () => {
  const t = setup();
  expect((await t.app.request('/v1/resolve', { method: 'POST', body: '{}' })).status).toBe(404);
  expect((await t.app.request('/v1/webhook')).status).toBe(404);
});

describe('the key', () => {
  test('missing or empty: a clear error naming the variable, before anything listens', () => {
    for (const env of [{}, { HOOK: '' }]) {
      let err: unknown;
      try {
        WebhookKey.fromEnv(env, 'HOOK');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(DsoError);
      expect((err as DsoError).code).toBe('CONFIG_INVALID');
      expect((err as DsoError).message).toContain('HOOK');
      expect((err as DsoError).message).toContain('webhook_address');
    }
  });

  test('shorter than 16 bytes is refused, without showing it', () => {
    expect(() => WebhookKey.fromEnv({ HOOK: 'short-key' }, 'HOOK')).toThrow('shorter than 16 bytes');
    try {
      WebhookKey.fromEnv({ HOOK: 'short-key' }, 'HOOK');
    } catch (e) {
      expect((e as Error).message).not.toContain('short-key');
    }
  });

  test('signs `${timestamp}.${body}` with HMAC-SHA256, from bytes as from the environment', () => {
    const body = new TextEncoder().encode('{"secrets":["vault:a"]}');
    const expected = createHmac('sha256', KEY).update('1700000000.').update(body).digest('hex');
    expect(WebhookKey.fromBytes(new TextEncoder().encode(KEY)).mac('1700000000', body).toString('hex')).toBe(expected);
    expect(WebhookKey.fromEnv({ HOOK: KEY }, 'HOOK').mac('1700000000', body).toString('hex')).toBe(expected);
  });
});

describe('startWebhookServer', () => {
  const log = createLogger({ level: 'error', format: 'json', redactor: new Redactor(), write: () => {} });
  const trigger = async (ids: string[]) => ({ accepted: ids.length });

  test('refuses to listen when webhook_secret_env is not set, or its variable is empty', () => {
    expect(() => startWebhookServer({ address: '127.0.0.1:0', secretEnv: undefined, env: {}, trigger, log })).toThrow('without agent.watch.webhook_secret_env');
    expect(() => startWebhookServer({ address: '127.0.0.1:0', secretEnv: 'HOOK', env: {}, trigger, log })).toThrow('HOOK');
  });

  test('serves the signed route over TCP; an oversized body is refused there too', async () => {
    const ids: string[][] = [];
    const server = startWebhookServer({
      address: '127.0.0.1:0',
      secretEnv: 'HOOK',
      env: { HOOK: KEY },
      trigger: async (x) => {
        ids.push(x);
        return { accepted: x.length };
      },
      log,
    });
    try {
      expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1\/webhook$/);
      const body = JSON.stringify({ secrets: ['vault:app/db'] });
      const ok = await fetch(server.url, { method: 'POST', body, headers: sign(body, { at: Date.now() }) });
      expect(ok.status).toBe(202);
      expect(ids).toEqual([['vault:app/db']]);
      const unsigned = await fetch(server.url, { method: 'POST', body });
      expect(unsigned.status).toBe(401);
      const big = 'x'.repeat(MAX_WEBHOOK_BODY + 1);
      const tooBig = await fetch(server.url, { method: 'POST', body: big, headers: sign(big, { at: Date.now() }) });
      expect(tooBig.status).toBe(413);
      expect(ids).toHaveLength(1);
    } finally {
      await server.stop();
    }
  });

  test('an address already in use is a clear error', async () => {
    const other = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('') });
    try {
      expect(() => startWebhookServer({ address: `127.0.0.1:${other.port}`, secretEnv: 'HOOK', env: { HOOK: KEY }, trigger, log })).toThrow('cannot serve the webhook on');
    } finally {
      other.stop(true);
    }
  });
});
