// The engine event watcher against the real private engine: events of labelled containers
// arrive and others do not; a stream cut in the middle resumes from its last event, so what
// happened in the gap is replayed and nothing twice; and when the engine itself restarts, the
// watcher backs off, reconnects, says it was a reconnect, and events flow again.
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { randomBytes } from 'node:crypto';
import type { Engine, EngineEvent } from '../../src/docker/engine.ts';
import { connectEngine } from '../../src/docker/engine.ts';
import { EngineEventStream, type Connected } from '../../src/docker/event-stream.ts';
import { createLogger } from '../../src/observe/log.ts';
import { Redactor } from '../../src/observe/redact.ts';
import { DOCKER_HOST, dockerOk, restartEngine } from './support.ts';

const IMAGE = process.env.DSO_TEST_IMAGE_BUSYBOX ?? 'dso-test/busybox:latest';
const RUN = randomBytes(4).toString('hex');
const LABEL = `dso.test.events=${RUN}`;
const FILTERS = { type: ['container'], label: [LABEL] };

let engine: Engine;
beforeAll(async () => {
  engine = await connectEngine({ DOCKER_HOST });
});
afterAll(async () => {
  const ids = (await dockerOk(['ps', '-aq', '--filter', `label=${LABEL}`])).split('\n').filter(Boolean);
  if (ids.length > 0) await dockerOk(['rm', '-f', ...ids]);
});

async function until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await Bun.sleep(20);
  }
}

/** `docker create` (a create event, nothing running); returns the container id. */
async function createContainer(labelled = true): Promise<string> {
  const args = ['create', ...(labelled ? ['--label', LABEL] : []), '--label', `dso.test.events.any=${RUN}`, IMAGE, 'true'];
  return (await dockerOk(args)).trim();
}

function watch(source: Pick<Engine, 'events' | 'info'>, options: { sleep?: (ms: number, signal: AbortSignal) => Promise<void>; initialMs?: number; maxMs?: number } = {}) {
  const events: EngineEvent[] = [];
  const connections: Connected[] = [];
  const logs: string[] = [];
  let reconnects = 0;
  const stream = new EngineEventStream({
    engine: source,
    filters: FILTERS,
    onEvent: (e) => events.push(e),
    onConnected: (c) => {
      connections.push(c);
    },
    log: createLogger({ level: 'debug', format: 'json', redactor: new Redactor(), write: (b) => logs.push(new TextDecoder().decode(b)) }),
    backoff: { initialMs: options.initialMs ?? 200, maxMs: options.maxMs ?? 2000 },
    random: () => 0,
    ...(options.sleep ? { sleep: options.sleep } : {}),
    metrics: { reconnects: { inc: () => reconnects++ } },
  });
  const created = () => events.filter((e) => e.action === 'create').map((e) => e.id);
  return { stream, events, connections, logs, created, reconnects: () => reconnects };
}

test('events of labelled containers arrive, from the moment the watcher says it is connected; others do not', async () => {
  const w = watch(engine);
  w.stream.start();
  try {
    await until(() => w.connections.length === 1, 'the first connection');
    expect(w.connections[0]!.reconnect).toBe(false);
    // At once: the stream starts at the engine's clock as of the connection, so an event racing
    // the subscription is not lost.
    const mine = await createContainer();
    const other = await createContainer(false);
    await until(() => w.created().includes(mine), 'the create event');
    const e = w.events.find((x) => x.id === mine)!;
    expect(e.type).toBe('container');
    expect(e.attributes['dso.test.events']).toBe(RUN);
    expect(e.timeNano).toBeGreaterThan(1e18);
    await dockerOk(['rm', mine]);
    await until(() => w.events.some((x) => x.id === mine && x.action === 'destroy'), 'the destroy event');
    expect(w.events.some((x) => x.id === other)).toBe(false);
    await dockerOk(['rm', other]);
  } finally {
    await w.stream.stop();
  }
  expect(w.stream.connected).toBe(false);
});

test('a stream cut in the middle resumes from its last event: the gap is replayed, nothing is delivered twice', async () => {
  // The real engine, with a stream this test can cut.
  let cut: AbortController | undefined;
  const sinces: Array<string | undefined> = [];
  const cuttable: Pick<Engine, 'events' | 'info'> = {
    info: () => engine.info(),
    events: (filters, signal, options) => {
      const own = new AbortController();
      signal.addEventListener('abort', () => own.abort(), { once: true });
      cut = own;
      sinces.push(options?.since);
      return engine.events(filters, own.signal, options);
    },
  };
  // Reconnection waits until the test has made its gap.
  const gates: Array<() => void> = [];
  const sleep = (_ms: number, signal: AbortSignal) =>
    new Promise<void>((resolve) => {
      gates.push(resolve);
      signal.addEventListener('abort', () => resolve(), { once: true });
    });
  const w = watch(cuttable, { sleep });
  w.stream.start();
  try {
    await until(() => w.connections.length === 1, 'the first connection');
    const before = await createContainer();
    await until(() => w.created().includes(before), 'the first event');
    cut!.abort();
    await until(() => gates.length === 1, 'the watcher to wait before reconnecting');
    expect(w.stream.connected).toBe(false);
    const gap1 = await createContainer();
    const gap2 = await createContainer();
    gates.shift()!();
    await until(() => w.connections.length === 2, 'the reconnection');
    expect(w.connections[1]!.reconnect).toBe(true);
    expect(w.reconnects()).toBe(1);
    await until(() => w.created().includes(gap2), 'the replayed gap');
    const after = await createContainer();
    await until(() => w.created().includes(after), 'an event after the reconnection');
    expect(w.created()).toEqual([before, gap1, gap2, after]);
    // It asked for the events since the last one it had seen.
    const lastBefore = w.events.find((e) => e.id === before)!;
    expect(Number(sinces[1]!.split('.')[0])).toBe(Math.floor(lastBefore.timeNano / 1e9));
  } finally {
    await w.stream.stop();
  }
});

test('when the engine restarts, the watcher backs off, reconnects (reconnect=true), and events flow again', async () => {
  const sleeps: number[] = [];
  const realSleep = (ms: number, signal: AbortSignal) => {
    sleeps.push(ms);
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      signal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });
  };
  const w = watch(engine, { sleep: realSleep, initialMs: 200, maxMs: 2000 });
  w.stream.start();
  try {
    await until(() => w.connections.length === 1, 'the first connection');
    const before = await createContainer();
    await until(() => w.created().includes(before), 'an event before the restart');

    const restartedAt = Date.now();
    await restartEngine();
    const restartMs = Date.now() - restartedAt;

    await until(() => w.connections.length >= 2, 'the reconnection', 60_000);
    // Once, as a rule; twice if a retry caught the old engine still answering as it stopped.
    expect(w.connections.slice(1).every((c) => c.reconnect)).toBe(true);
    expect(w.reconnects()).toBe(w.connections.length - 1);
    const again = w.connections.at(-1)!;
    expect(again.downtimeMs).toBeGreaterThan(0);
    expect(again.downtimeMs).toBeLessThan(restartMs + 5000);
    // While the engine was away: waits doubling from 200 ms, capped at 2 s.
    const expected = [200, 400, 800, 1600, 2000, 2000, 2000, 2000, 2000, 2000, 2000, 2000, 2000, 2000, 2000];
    expect(sleeps.length).toBeGreaterThanOrEqual(2);
    expect(sleeps).toEqual(expected.slice(0, sleeps.length));
    const log = w.logs.join('');
    expect(log).toContain('Cannot reach the Docker engine for its events');
    expect(log).toContain('Reconnected to the Docker event stream');

    const after = await createContainer();
    await until(() => w.created().includes(after), 'an event after the restart');
    expect(w.created().filter((id) => id === before)).toHaveLength(1);
  } finally {
    await w.stream.stop();
  }
});
