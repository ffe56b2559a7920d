// `rotate` through the agent, both ends of the stream with a stand-in rotator: the API keeps a
// long rotation's connection alive with lines of its own, a client that goes away fails nothing
// (the rotation ends once, and what it would have said is dropped), and the CLI's client skips
// those lines, shows progress, and names a broken connection as one instead of crashing.
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApi } from '../../../src/agent/api.ts';
import { agentRotate } from '../../../src/agent/client.ts';
import { SecretCache } from '../../../src/agent/cache.ts';
import type { Rotator } from '../../../src/agent/rotator.ts';
import { AgentService } from '../../../src/agent/service.ts';
import { defaultAgentConfig } from '../../../src/config/agent.ts';
import type { DsoConfig } from '../../../src/config/load.ts';
import { DsoError } from '../../../src/errors.ts';
import { createLogger } from '../../../src/observe/log.ts';
import { createMetrics } from '../../../src/observe/metrics.ts';
import { Redactor } from '../../../src/observe/redact.ts';
import { ProviderSet } from '../../../src/providers/resolver.ts';

let service: AgentService;
let dir: string;

beforeAll(() => {
  const config: DsoConfig = { path: 'test.yaml', providers: new Map(), maxSecretBytes: 1 << 20, agent: defaultAgentConfig(), defaults: { rotation: { signal: 'SIGHUP' } } };
  const redactor = new Redactor();
  const cache = new SecretCache({ ttlMs: 60_000, maxBytes: 1 << 20, maxSecretBytes: 1 << 20, maxStaleMs: 60_000 });
  const log = createLogger({ level: 'error', format: 'json', redactor, write: () => {} });
  service = new AgentService(config, new ProviderSet(config, { env: {} }), cache, createMetrics({ version: 'test', cacheStats: () => cache.stats() }), log, 'test');
  dir = mkdtempSync(join(tmpdir(), 'dso-rotate-stream-'));
});
afterAll(async () => {
  await service.close();
  rmSync(dir, { recursive: true, force: true });
});

const OUTCOME = { rotation: 'r1', container: 'app-1', strategy: 'rolling', status: 'done', durationMs: 900 };

/** A rotator whose rotation takes `ms`, reporting progress before and after. */
function slowRotator(ms: number) {
  const seen = { ended: 0, progressThrew: false };
  const rotator = {
    async rotateNow(_secret: string, _dryRun: boolean, progress: (line: string) => void) {
      const say = (line: string) => {
        try {
          progress(line);
        } catch {
          seen.progressThrew = true;
        }
      };
      say('app-1: rolling...');
      await Bun.sleep(ms);
      say('app-1: done in 0.9 s');
      seen.ended++;
      return { plan: { rotations: [], skipped: [] }, outcomes: [OUTCOME] };
    },
    async checkSecrets() {
      return { checked: 0, queued: 0 };
    },
  } as unknown as Rotator;
  return { rotator, seen };
}

const post = (app: ReturnType<typeof createApi>) => app.request('/v1/rotate', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ secret: 'vault:app/db#password' }) });

test('a rotation with nothing to say for a while still sends a line every keepalive interval', async () => {
  const { rotator } = slowRotator(300);
  const r = await post(createApi(service, rotator, { serves: 'all' }, { keepaliveMs: 50 }));
  const lines = (await r.text()).trim().split('\n').map((l) => JSON.parse(l) as { type: string });
  expect(lines[0]).toEqual({ type: 'progress', line: 'app-1: rolling...' } as never);
  expect(lines.filter((l) => l.type === 'alive').length).toBeGreaterThanOrEqual(3);
  expect(lines.at(-1)).toMatchObject({ type: 'result', outcomes: [OUTCOME] });
});

test('a client that goes away fails nothing: the rotation ends once, what it would have said is dropped', async () => {
  const { rotator, seen } = slowRotator(150);
  const r = await post(createApi(service, rotator, { serves: 'all' }, { keepaliveMs: 20 }));
  const reader = r.body!.getReader();
  await reader.read();
  await reader.cancel();
  await Bun.sleep(300);
  expect(seen.ended).toBe(1);
  expect(seen.progressThrew).toBe(false);
});

/** Serves `answer` for /v1/rotate on a unix socket. */
function serve(answer: () => Response): { socket: string; stop(): void } {
  const socket = join(dir, `${Math.random().toString(36).slice(2)}.sock`);
  const server = Bun.serve({ unix: socket, fetch: answer });
  return { socket, stop: () => server.stop(true) };
}

test("the CLI's client skips keepalive lines, shows progress, and returns the result", async () => {
  const lines = [{ type: 'progress', line: 'app-1: rolling...' }, { type: 'alive' }, { type: 'alive' }, { type: 'progress', line: 'app-1: done in 0.9 s' }, { type: 'result', plan: { rotations: [], skipped: [] }, outcomes: [OUTCOME] }];
  const agent = serve(() => new Response(lines.map((l) => `${JSON.stringify(l)}\n`).join('')));
  try {
    const shown: string[] = [];
    const result = await agentRotate(agent.socket, { secret: 'vault:app/db#password', dryRun: false }, (l) => shown.push(l));
    expect(shown).toEqual(['app-1: rolling...', 'app-1: done in 0.9 s']);
    expect(result.outcomes).toEqual([OUTCOME] as never);
  } finally {
    agent.stop();
  }
});

test('a connection that breaks mid-rotation is reported as such, with where to look, not as a crash', async () => {
  const encoder = new TextEncoder();
  let cut!: () => void;
  const agent = serve(
    () =>
      new Response(
        new ReadableStream({
          start(controller) {
            controller.enqueue(encoder.encode(`${JSON.stringify({ type: 'progress', line: 'app-1: rolling...' })}\n`));
            cut = () => controller.error(new Error('agent went away'));
          },
        }),
      ),
  );
  try {
    const shown: string[] = [];
    const pending = agentRotate(agent.socket, { secret: 'vault:app/db#password', dryRun: false }, (l) => {
      shown.push(l);
      setTimeout(() => {
        cut();
        agent.stop();
      }, 20);
    });
    const error = await pending.catch((e: unknown) => e);
    expect(shown).toEqual(['app-1: rolling...']);
    expect(error).toBeInstanceOf(DsoError);
    expect((error as DsoError).code).toBe('AGENT_UNREACHABLE');
    expect((error as DsoError).message).toContain('the connection to the agent at');
    expect((error as DsoError).message).toContain('broke during the rotation of vault:app/db#password');
    expect((error as DsoError).hint).toContain('`docker dso status` shows the outcome');
  } finally {
    agent.stop();
  }
});
