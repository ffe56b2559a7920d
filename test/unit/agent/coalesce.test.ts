// The coalesced check behind the agent's restore of secret volumes: a storm of events for
// replicas that share one volume must not cost one engine exec each (it cost about 250 ms of
// engine time each, and 500 containers restarted at once left events waiting for a minute), and
// no caller may get an answer from a check that started before it asked.
import { expect, test } from 'bun:test';
import { Coalescer } from '../../../src/agent/coalesce.ts';

/** A check whose runs the test finishes by hand, each answering its own run number. */
function manualCheck() {
  const runs: Array<() => void> = [];
  let started = 0;
  const check = () => {
    const n = ++started;
    return new Promise<number>((resolve) => runs.push(() => resolve(n)));
  };
  return { check, runs, started: () => started };
}

test('callers during a run share one next run, which starts after they asked', async () => {
  const c = new Coalescer<number>();
  const m = manualCheck();
  const first = c.run('vol', m.check);
  const storm = Array.from({ length: 500 }, () => c.run('vol', m.check));
  expect(m.started()).toBe(1);
  m.runs[0]!();
  expect(await first).toBe(1);
  await Bun.sleep(0);
  expect(m.started()).toBe(2); // one more run for all 500, started after every one of them asked
  m.runs[1]!();
  expect(new Set(await Promise.all(storm))).toEqual(new Set([2]));
  expect(m.started()).toBe(2);
});

test('a caller after the runs are over gets a run of its own; keys do not share', async () => {
  const c = new Coalescer<number>();
  const m = manualCheck();
  const a = c.run('a', m.check);
  const b = c.run('b', m.check);
  expect(m.started()).toBe(2);
  m.runs[0]!();
  m.runs[1]!();
  expect([await a, await b]).toEqual([1, 2]);
  const later = c.run('a', m.check);
  expect(m.started()).toBe(3);
  m.runs[2]!();
  expect(await later).toBe(3);
});

test('a failed run fails its callers only; the next run still happens', async () => {
  const c = new Coalescer<number>();
  let n = 0;
  let fail!: (e: Error) => void;
  const first = c.run('vol', () => new Promise<number>((_, reject) => (fail = reject)));
  const waiting = c.run('vol', async () => ++n);
  fail(new Error('engine away'));
  expect(first).rejects.toThrow('engine away');
  expect(await waiting).toBe(1);
});
