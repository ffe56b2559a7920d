// The reconnecting event watcher against a fake engine whose stream ends or fails on command,
// with a fake clock: the backoff doubles, stops at its cap, starts over after a stable
// connection; every connection is announced; a replay from `since` is not delivered twice;
// stop() is prompt wherever the loop is.
import { describe, expect, test } from 'bun:test';
import type { EngineEvent } from '../../../src/docker/engine.ts';
import { engineTimestamp, EngineEventStream, type Connected } from '../../../src/docker/event-stream.ts';
import { createLogger } from '../../../src/observe/log.ts';
import { Redactor } from '../../../src/observe/redact.ts';

type Item = { event: EngineEvent } | { end: true } | { error: Error };

/** One open stream of the fake engine; the test feeds it, ends it or breaks it. */
class FakeStream {
  readonly #items: Item[] = [];
  #wake: (() => void) | undefined;
  constructor(readonly since: string | undefined) {}
  push(event: EngineEvent) {
    this.#add({ event });
  }
  end() {
    this.#add({ end: true });
  }
  fail(message = 'socket hang up') {
    this.#add({ error: new Error(message) });
  }
  #add(item: Item) {
    this.#items.push(item);
    this.#wake?.();
  }
  async *iterate(signal: AbortSignal, honourAbort: boolean): AsyncIterable<EngineEvent> {
    const aborted = () => honourAbort && signal.aborted;
    for (;;) {
      while (this.#items.length === 0 && !aborted()) {
        await new Promise<void>((r) => {
          this.#wake = r;
          if (honourAbort) signal.addEventListener('abort', () => r(), { once: true });
        });
      }
      if (aborted()) return;
      const item = this.#items.shift()!;
      if ('end' in item) return;
      if ('error' in item) throw item.error;
      yield item.event;
    }
  }
}

class FakeEngine {
  /** While down, info() and events() fail as an unreachable engine does. */
  down = false;
  /** info() never answers (a hung engine). */
  hang = false;
  /** Whether streams end when the caller aborts (the real adapter does). */
  honourAbort = true;
  engineTimeMs = Date.UTC(2030, 0, 1, 0, 0, 0, 7);
  readonly streams: FakeStream[] = [];
  async info() {
    if (this.hang) return new Promise<never>(() => {});
    if (this.down) throw new Error('connect ENOENT /var/run/docker.sock');
    return { systemTime: new Date(this.engineTimeMs), dataRoot: '/var/lib/docker' };
  }
  events(_filters: Record<string, string[]>, signal: AbortSignal, options: { since?: string } = {}): AsyncIterable<EngineEvent> {
    const stream = new FakeStream(options.since);
    const engine = this;
    return (async function* () {
      if (engine.down) throw new Error('connect ENOENT /var/run/docker.sock');
      engine.streams.push(stream);
      yield* stream.iterate(signal, engine.honourAbort);
    })();
  }
  get last(): FakeStream {
    return this.streams.at(-1)!;
  }
}

/** A clock that moves only when a sleep is let go (by the test, or at once with autoAdvance). */
class FakeClock {
  now = 1_000_000;
  readonly sleeps: number[] = [];
  #pending: Array<{ ms: number; resolve: () => void }> = [];
  autoAdvance = false;
  sleep = (ms: number, signal: AbortSignal): Promise<void> => {
    this.sleeps.push(ms);
    if (this.autoAdvance) {
      this.now += ms;
      // A macrotask, not a microtask: the test must get a turn between waits.
      return new Promise((resolve) => setTimeout(resolve, 0));
    }
    return new Promise<void>((resolve) => {
      const entry = { ms, resolve };
      this.#pending.push(entry);
      signal.addEventListener('abort', () => resolve(), { once: true });
    });
  };
  get sleeping(): boolean {
    return this.#pending.length > 0;
  }
  /** Ends the oldest pending sleep, moving the clock by its length. */
  wake(): void {
    const p = this.#pending.shift();
    if (!p) throw new Error('nothing is sleeping');
    this.now += p.ms;
    p.resolve();
  }
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 2000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(1);
  }
}

function event(id: string, timeNano: number, action = 'start'): EngineEvent {
  return { type: 'container', action, id, attributes: { name: id }, timeNano };
}

function setup(options: { random?: () => number; initialMs?: number; maxMs?: number; onEvent?: (e: EngineEvent) => void; onConnected?: (c: Connected) => void | Promise<void> } = {}) {
  const engine = new FakeEngine();
  const clock = new FakeClock();
  const events: EngineEvent[] = [];
  const connections: Connected[] = [];
  const logs: string[] = [];
  let reconnects = 0;
  const stream = new EngineEventStream({
    engine,
    filters: { type: ['container'] },
    onEvent: options.onEvent ?? ((e) => events.push(e)),
    onConnected: (c) => {
      connections.push(c);
      return options.onConnected?.(c);
    },
    log: createLogger({ level: 'debug', format: 'json', redactor: new Redactor(), write: (b) => logs.push(new TextDecoder().decode(b)) }),
    backoff: { initialMs: options.initialMs ?? 500, maxMs: options.maxMs ?? 30_000 },
    now: () => clock.now,
    sleep: clock.sleep,
    random: options.random ?? (() => 0),
    metrics: { reconnects: { inc: () => reconnects++ } },
  });
  return { engine, clock, events, connections, logs, stream, reconnects: () => reconnects };
}

test('engineTimestamp: seconds and nine digits of nanoseconds, as the engine takes `since`', () => {
  expect(engineTimestamp(1_700_000_000_123_456_768)).toBe('1700000000.123456768');
  expect(engineTimestamp(1_700_000_000_000_000_000)).toBe('1700000000.000000000');
});

test('the first connection starts at the engine clock, is announced, and delivers events in order', async () => {
  const t = setup();
  t.stream.start();
  await until(() => t.engine.streams.length === 1, 'the stream');
  expect(t.engine.last.since).toBe(`${Date.UTC(2030, 0, 1) / 1000}.007000000`);
  expect(t.connections).toEqual([{ reconnect: false, downtimeMs: 0 }]);
  expect(t.stream.connected).toBe(true);
  t.engine.last.push(event('a', 10));
  t.engine.last.push(event('b', 20));
  await until(() => t.events.length === 2, 'two events');
  expect(t.events.map((e) => e.id)).toEqual(['a', 'b']);
  expect(t.reconnects()).toBe(0);
  await t.stream.stop();
  expect(t.stream.connected).toBe(false);
});

test('after the stream ends it reconnects from the last event seen, announced as a reconnect, without repeating that event', async () => {
  const t = setup();
  t.stream.start();
  await until(() => t.engine.streams.length === 1, 'the stream');
  const T = 1_800_000_000_000_000_000;
  t.engine.last.push(event('a', T - 1000));
  t.engine.last.push(event('b', T));
  await until(() => t.events.length === 2, 'two events');
  t.engine.last.end();
  await until(() => t.clock.sleeping, 'the backoff');
  expect(t.clock.sleeps).toEqual([500]);
  t.clock.wake();
  await until(() => t.engine.streams.length === 2, 'the second stream');
  expect(t.engine.last.since).toBe(engineTimestamp(T));
  expect(t.connections).toEqual([
    { reconnect: false, downtimeMs: 0 },
    { reconnect: true, downtimeMs: 500 },
  ]);
  expect(t.reconnects()).toBe(1);
  // The engine replays from `since` inclusive: b again, then what happened in the gap.
  t.engine.last.push(event('b', T));
  t.engine.last.push(event('c', T));
  t.engine.last.push(event('d', T + 5));
  await until(() => t.events.length === 4, 'the gap events');
  expect(t.events.map((e) => e.id)).toEqual(['a', 'b', 'c', 'd']);
  expect(t.logs.join('')).toContain('Reconnected to the Docker event stream');
  await t.stream.stop();
});

test('events published out of time order (the engine stamps, then publishes, from many goroutines) are all delivered, and a replay still repeats none', async () => {
  const t = setup();
  t.stream.start();
  await until(() => t.engine.streams.length === 1, 'the stream');
  const T = 1_800_000_000_000_000_000;
  t.engine.last.push(event('a', T + 2048, 'unpause'));
  t.engine.last.push(event('b', T + 1024, 'unpause')); // stamped before a, published after it
  t.engine.last.push(event('c', T + 4096, 'unpause'));
  t.engine.last.push(event('d', T + 3072, 'unpause'));
  await until(() => t.events.length === 4, 'four events');
  expect(t.events.map((e) => e.id)).toEqual(['a', 'b', 'c', 'd']);
  t.engine.last.end();
  await until(() => t.clock.sleeping, 'the backoff');
  t.clock.wake();
  await until(() => t.engine.streams.length === 2, 'the second stream');
  expect(t.engine.last.since).toBe(engineTimestamp(T + 4096));
  t.engine.last.push(event('c', T + 4096, 'unpause'));
  t.engine.last.push(event('e', T + 5120, 'unpause'));
  await until(() => t.events.length === 5, 'the gap event');
  expect(t.events.map((e) => e.id)).toEqual(['a', 'b', 'c', 'd', 'e']);
  await t.stream.stop();
});

test('while the engine is away, nothing is announced: only the connection that works, once', async () => {
  const t = setup();
  t.stream.start();
  await until(() => t.engine.streams.length === 1, 'the stream');
  t.engine.last.push(event('a', 100));
  await until(() => t.events.length === 1, 'an event');
  t.engine.down = true;
  t.engine.last.fail('aborted');
  for (let i = 0; i < 3; i++) {
    await until(() => t.clock.sleeping, `wait ${i + 1}`);
    t.clock.wake();
  }
  await until(() => t.clock.sleeping, 'wait 4');
  expect(t.connections).toHaveLength(1);
  expect(t.engine.streams).toHaveLength(1);
  t.engine.down = false;
  t.clock.wake();
  await until(() => t.engine.streams.length === 2, 'the reconnection');
  expect(t.connections).toEqual([
    { reconnect: false, downtimeMs: 0 },
    { reconnect: true, downtimeMs: 500 + 1000 + 2000 + 4000 },
  ]);
  expect(t.engine.last.since).toBe(engineTimestamp(100));
  expect(t.reconnects()).toBe(1);
  await t.stream.stop();
});

test('backoff: doubles from initialMs, stops at maxMs, starts over after a stable connection, not after a short one', async () => {
  const t = setup();
  t.engine.down = true;
  t.stream.start();
  for (let i = 0; i < 8; i++) {
    await until(() => t.clock.sleeping, `wait ${i + 1}`);
    t.clock.wake();
  }
  await until(() => t.clock.sleeping, 'wait 9');
  expect(t.clock.sleeps).toEqual([500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
  expect(t.connections).toEqual([]);
  expect(t.logs.join('')).toContain('Cannot reach the Docker engine for its events');

  // The engine is back: the first connection, after all that downtime.
  t.engine.down = false;
  t.clock.wake();
  await until(() => t.engine.streams.length === 1, 'the stream');
  expect(t.connections).toEqual([{ reconnect: false, downtimeMs: 500 + 1000 + 2000 + 4000 + 8000 + 16_000 + 30_000 * 3 }]);

  // A short connection does not reset the backoff: the next wait is the next step up.
  t.engine.last.fail();
  await until(() => t.clock.sleeping, 'the wait after a short connection');
  expect(t.clock.sleeps.at(-1)).toBe(30_000);
  t.clock.wake();
  await until(() => t.engine.streams.length === 2, 'the second stream');

  // A connection that held for 10 s does: the next wait is initialMs again.
  t.clock.now += 10_000;
  t.engine.last.fail();
  await until(() => t.clock.sleeps.length === 11, 'the wait after a stable connection');
  expect(t.clock.sleeps.at(-1)).toBe(500);
  t.clock.wake();
  await until(() => t.engine.streams.length === 3, 'the third stream');
  t.engine.last.end();
  await until(() => t.clock.sleeps.length === 12, 'the next wait');
  expect(t.clock.sleeps.at(-1)).toBe(1000);
  expect(t.connections.map((c) => c.reconnect)).toEqual([false, true, true]);
  expect(t.reconnects()).toBe(2);
  await t.stream.stop();
});

test('jitter only ever shortens a wait, by at most a tenth, so the cap holds', async () => {
  const t = setup({ random: () => 0.999999 });
  t.engine.down = true;
  t.clock.autoAdvance = true;
  t.stream.start();
  await until(() => t.clock.sleeps.length >= 12, 'twelve waits');
  await t.stream.stop();
  const base = [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000, 30_000, 30_000, 30_000];
  t.clock.sleeps.slice(0, 12).forEach((ms, i) => {
    expect(ms).toBeLessThanOrEqual(base[i]!);
    expect(ms).toBeGreaterThanOrEqual(Math.floor(base[i]! * 0.9));
  });
});

describe('stop() is prompt', () => {
  test('while waiting to reconnect', async () => {
    const t = setup();
    t.engine.down = true;
    t.stream.start();
    await until(() => t.clock.sleeping, 'the backoff');
    await t.stream.stop();
    expect(t.engine.streams).toHaveLength(0);
  });

  test('while the stream is open, and nothing reconnects afterwards', async () => {
    const t = setup();
    t.stream.start();
    await until(() => t.engine.streams.length === 1, 'the stream');
    await t.stream.stop();
    expect(t.clock.sleeps).toEqual([]);
    expect(t.connections).toHaveLength(1);
    expect(t.logs.join('')).not.toContain('reconnecting');
  });

  test('while an engine that ignores the abort keeps its stream open', async () => {
    const t = setup();
    t.engine.honourAbort = false;
    t.stream.start();
    await until(() => t.engine.streams.length === 1, 'the stream');
    await t.stream.stop();
    expect(t.clock.sleeps).toEqual([]);
  });

  test('while the engine does not answer at all', async () => {
    const t = setup();
    t.engine.hang = true;
    t.stream.start();
    await Bun.sleep(2);
    await t.stream.stop();
    expect(t.connections).toEqual([]);
  });

  test('and start() after stop() follows the stream again', async () => {
    const t = setup();
    t.stream.start();
    await until(() => t.engine.streams.length === 1, 'the stream');
    await t.stream.stop();
    t.stream.start();
    await until(() => t.engine.streams.length === 2, 'the stream again');
    await t.stream.stop();
  });
});

test('a failing handler or reconcile is logged and never ends the loop', async () => {
  let calls = 0;
  const t = setup({
    onEvent: () => {
      calls++;
      throw new Error('handler bug');
    },
    onConnected: async () => {
      throw new Error('reconcile failed');
    },
  });
  t.stream.start();
  await until(() => t.engine.streams.length === 1, 'the stream');
  t.engine.last.push(event('a', 1));
  t.engine.last.push(event('b', 2));
  await until(() => calls === 2, 'both events handled');
  t.engine.last.fail('read ECONNRESET');
  await until(() => t.clock.sleeping, 'the backoff');
  t.clock.wake();
  await until(() => t.engine.streams.length === 2, 'the reconnection');
  await t.stream.stop();
  const log = t.logs.join('');
  expect(log).toContain('Handling a Docker event failed');
  expect(log).toContain('handler bug');
  expect(log).toContain('Reconcile after connecting to the Docker engine failed');
  expect(log).toContain('The Docker event stream failed; reconnecting');
  expect(log).toContain('read ECONNRESET');
});

test('the agent counter dso_event_stream_reconnects_total fits the metrics hook', async () => {
  const { createMetrics } = await import('../../../src/observe/metrics.ts');
  const metrics = createMetrics({ version: 'test', cacheStats: () => ({ entries: 0, bytes: 0, hits: 0, misses: 0, staleServed: 0, evictions: 0 }) });
  const engine = new FakeEngine();
  const clock = new FakeClock();
  const stream = new EngineEventStream({
    engine,
    filters: {},
    onEvent: () => {},
    onConnected: () => {},
    log: createLogger({ level: 'error', format: 'json', redactor: new Redactor(), write: () => {} }),
    now: () => clock.now,
    sleep: clock.sleep,
    metrics: { reconnects: metrics.eventStreamReconnects },
  });
  stream.start();
  await until(() => engine.streams.length === 1, 'the stream');
  engine.last.end();
  await until(() => clock.sleeping, 'the backoff');
  clock.wake();
  await until(() => engine.streams.length === 2, 'the reconnection');
  await stream.stop();
  expect(await metrics.registry.metrics()).toContain('dso_event_stream_reconnects_total 1');
});
