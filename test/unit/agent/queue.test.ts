// The rotation event queue on a fake clock: one entry per container however many events, ready
// after the debounce window (or the maximum wait in a storm), in arrival order, bounded with
// drops counted and a reconcile asked for; and the three documented metrics move with it.
import { describe, expect, test } from 'bun:test';
import { RotationQueue, type QueueEvent } from '../../../src/agent/queue.ts';
import { createMetrics } from '../../../src/observe/metrics.ts';

const EMPTY_CACHE = { entries: 0, bytes: 0, hits: 0, misses: 0, staleServed: 0, evictions: 0 };

function setup(options: { debounceMs?: number; capacity?: number; maxWaitMs?: number } = {}) {
  const clock = { now: 1_000 };
  const metrics = createMetrics({ version: 'test', cacheStats: () => EMPTY_CACHE });
  const queue = new RotationQueue({ debounceMs: options.debounceMs ?? 5000, capacity: options.capacity ?? 2000, ...(options.maxWaitMs === undefined ? {} : { maxWaitMs: options.maxWaitMs }), now: () => clock.now, metrics });
  const value = async (metric: { get(): Promise<{ values: Array<{ value: number; labels: Record<string, unknown> }> }> }, labels: Record<string, string> = {}) =>
    (await metric.get()).values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value ?? 0;
  const read = async () => ({
    size: await value(metrics.eventQueueSize),
    drops: await value(metrics.eventQueueDrops, { reason: 'full' }),
    batches: await value(metrics.eventDebounceBatches),
  });
  return { clock, queue, metrics, read };
}

const ev = (containerId: string, refs: string[] = ['vault:app/db'], reason = 'changed'): QueueEvent => ({ containerId, refs, reason });

test('a burst of events for one container within the window is one entry, with every ref once', () => {
  const { clock, queue } = setup();
  expect(queue.push(ev('c1', ['vault:app/db']))).toBe('queued');
  for (let i = 0; i < 99; i++) {
    clock.now += 10;
    expect(queue.push(ev('c1', i % 2 ? ['vault:app/db', 'aws:api#key'] : ['vault:app/db'], i === 50 ? 'restore' : 'changed'))).toBe('merged');
  }
  expect(queue.size).toBe(1);
  expect(queue.takeReady(clock.now + 4999)).toEqual([]);
  const ready = queue.takeReady(clock.now + 5000);
  expect(ready).toEqual([{ containerId: 'c1', refs: ['vault:app/db', 'aws:api#key'], reasons: ['changed', 'restore'], events: 100, firstAt: 1000, lastAt: 1000 + 990 }]);
  expect(queue.size).toBe(0);
  expect(queue.nextReadyAt()).toBeUndefined();
});

test('an entry is ready debounce_window after its LAST event; nextReadyAt says when', () => {
  const { clock, queue } = setup();
  queue.push(ev('c1'));
  expect(queue.nextReadyAt()).toBe(6000);
  clock.now = 4000;
  queue.push(ev('c1'));
  expect(queue.nextReadyAt()).toBe(9000);
  expect(queue.takeReady(8999)).toEqual([]);
  expect(queue.takeReady(9000).map((e) => e.containerId)).toEqual(['c1']);
});

test('a continuous storm cannot starve an entry: it is ready 10 × debounce after its first event', () => {
  const { clock, queue } = setup({ debounceMs: 1000 });
  const taken: number[] = [];
  // An event every 500 ms, for 31 s: the debounce alone would never let it go. Each entry goes
  // 10 s after its first event, and the next event starts a new one.
  for (; clock.now <= 32_000; clock.now += 500) {
    queue.push(ev('busy'));
    if (queue.takeReady(clock.now).length > 0) taken.push(clock.now);
  }
  expect(taken).toEqual([11_000, 21_500, 32_000]);
});

test('maxWaitMs can be set, and a zero debounce makes every entry ready at once', () => {
  const a = setup({ debounceMs: 1000, maxWaitMs: 2500 });
  a.queue.push(ev('c'));
  a.clock.now += 900;
  a.queue.push(ev('c'));
  a.clock.now += 900;
  a.queue.push(ev('c'));
  expect(a.queue.nextReadyAt()).toBe(1000 + 2500);

  const b = setup({ debounceMs: 0 });
  b.queue.push(ev('c'));
  expect(b.queue.nextReadyAt()).toBe(b.clock.now);
  expect(b.queue.takeReady()).toHaveLength(1);
});

test('takeReady returns the ready entries in the order their containers first arrived, and leaves the rest', () => {
  const { clock, queue } = setup({ debounceMs: 100 });
  queue.push(ev('a'));
  clock.now += 10;
  queue.push(ev('b'));
  clock.now += 10;
  queue.push(ev('c'));
  clock.now += 10;
  queue.push(ev('a')); // a's window starts again, but it keeps its place
  clock.now += 10;
  queue.push(ev('d'));
  // b and c ready at 1110 and 1120; a at 1130; d at 1140.
  expect(queue.nextReadyAt()).toBe(1110);
  expect(queue.takeReady(1130).map((e) => e.containerId)).toEqual(['a', 'b', 'c']);
  expect(queue.size).toBe(1);
  expect(queue.nextReadyAt()).toBe(1140);
  clock.now += 1;
  queue.push(ev('e')); // ready 1141
  queue.push(ev('d')); // d moves to 1141 too
  expect(queue.nextReadyAt()).toBe(1141);
  expect(queue.takeReady(1141).map((e) => e.containerId)).toEqual(['d', 'e']);
});

test('when full, an event for another container is dropped and counted, and a reconcile is asked for; merges still work', async () => {
  const { queue, read } = setup({ capacity: 2 });
  expect(queue.push(ev('a'))).toBe('queued');
  expect(queue.push(ev('b'))).toBe('queued');
  expect(queue.reconcileNeeded).toBe(false);
  expect(queue.push(ev('c'))).toBe('dropped');
  expect(queue.push(ev('d'))).toBe('dropped');
  expect(queue.push(ev('a', ['vault:other']))).toBe('merged');
  expect(queue.size).toBe(2);
  expect(queue.reconcileNeeded).toBe(true);
  expect(await read()).toEqual({ size: 2, drops: 2, batches: 0 });
  // The owner drains the queue, starts its reconcile and clears the flag.
  expect(queue.takeReady(Number.MAX_SAFE_INTEGER).map((e) => [e.containerId, e.refs])).toEqual([
    ['a', ['vault:app/db', 'vault:other']],
    ['b', ['vault:app/db']],
  ]);
  queue.clearReconcileFlag();
  expect(queue.reconcileNeeded).toBe(false);
  expect(queue.push(ev('c'))).toBe('queued');
});

test('the metrics: size follows the queue, drops by reason, one batch per takeReady that returns entries', async () => {
  const { clock, queue, metrics, read } = setup({ debounceMs: 100, capacity: 3 });
  expect(await read()).toEqual({ size: 0, drops: 0, batches: 0 });
  queue.push(ev('a'));
  queue.push(ev('b'));
  expect((await read()).size).toBe(2);
  queue.takeReady(clock.now); // nothing ready: not a batch
  expect((await read()).batches).toBe(0);
  clock.now += 100;
  queue.push(ev('c'));
  expect(queue.takeReady()).toHaveLength(2);
  expect(await read()).toEqual({ size: 1, drops: 0, batches: 1 });
  queue.push(ev('d'));
  queue.push(ev('e'));
  queue.push(ev('f'));
  expect(await read()).toEqual({ size: 3, drops: 1, batches: 1 });
  clock.now += 100;
  expect(queue.takeReady()).toHaveLength(3);
  expect(await read()).toEqual({ size: 0, drops: 1, batches: 2 });
  const text = await metrics.registry.metrics();
  expect(text).toContain('dso_event_queue_drops_total{reason="full"} 1');
  expect(text).toContain('dso_event_debounce_batches_total 2');
  expect(text).toContain('dso_event_queue_size 0');
  queue.push(ev('g'));
  queue.clear();
  expect(queue.size).toBe(0);
  expect((await read()).size).toBe(0);
});

test('pending() shows what waits, oldest first, as copies', () => {
  const { queue } = setup();
  queue.push(ev('a', ['x:1']));
  queue.push(ev('b', ['x:2']));
  const shown = queue.pending();
  expect(shown.map((e) => [e.containerId, e.refs])).toEqual([
    ['a', ['x:1']],
    ['b', ['x:2']],
  ]);
  shown[0]!.refs.push('tampered');
  expect(queue.pending()[0]!.refs).toEqual(['x:1']);
});

test('a capacity below 1 is refused', () => {
  expect(() => new RotationQueue({ debounceMs: 0, capacity: 0 })).toThrow('at least 1');
});

describe('a storm of 10,000 events over 500 containers', () => {
  const storm = (queue: RotationQueue, clock: { now: number }) => {
    const results = { queued: 0, merged: 0, dropped: 0 };
    for (let i = 0; i < 10_000; i++) {
      clock.now += 1;
      results[queue.push(ev(`container-${i % 500}`, [`vault:app/secret-${i % 7}`]))]++;
    }
    return results;
  };

  test('under the default capacity of 2000: deduplicated to 500 entries, nothing dropped, one batch', async () => {
    const { clock, queue, read } = setup();
    const started = performance.now();
    expect(storm(queue, clock)).toEqual({ queued: 500, merged: 9500, dropped: 0 });
    expect(queue.size).toBe(500);
    expect(queue.reconcileNeeded).toBe(false);
    expect(await read()).toEqual({ size: 500, drops: 0, batches: 0 });
    // The storm lasted 10 s: every container's window is 5 s after its last event.
    const ready = queue.takeReady(clock.now + 5000);
    expect(ready).toHaveLength(500);
    expect(ready[0]!.containerId).toBe('container-0');
    expect(ready[0]!.events).toBe(20);
    expect(ready[0]!.refs).toHaveLength(7);
    expect(await read()).toEqual({ size: 0, drops: 0, batches: 1 });
    expect(performance.now() - started).toBeLessThan(1000);
  });

  test('over a capacity of 200: the first 200 containers are kept, every event of the others is dropped and counted, and a reconcile is asked for', async () => {
    const { clock, queue, read } = setup({ capacity: 200 });
    expect(storm(queue, clock)).toEqual({ queued: 200, merged: 200 * 19, dropped: 300 * 20 });
    expect(queue.size).toBe(200);
    expect(queue.reconcileNeeded).toBe(true);
    expect(await read()).toEqual({ size: 200, drops: 6000, batches: 0 });
  });

  test('nextReadyAt stays cheap and right while the storm runs', () => {
    const { clock, queue } = setup({ debounceMs: 50 });
    let taken = 0;
    for (let i = 0; i < 10_000; i++) {
      clock.now += 1;
      queue.push(ev(`container-${i % 500}`));
      const next = queue.nextReadyAt();
      expect(next).toBeDefined();
      if (next! <= clock.now) taken += queue.takeReady(clock.now).length;
    }
    taken += queue.takeReady(clock.now + 500).length;
    // 500 containers, each seen every 500 ms, windows of 50 ms and waits of at most 500 ms: each
    // entry is released before its container's next event, 20 times over.
    expect(taken).toBe(10_000);
  });
});
