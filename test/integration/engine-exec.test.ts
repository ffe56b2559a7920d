// The engine adapter's exec against the real engine, as a health probe uses it: its output is
// capped, a command that prints without end does not grow this process's memory, and a command
// that never ends is abandoned at its deadline with its connection closed (Docker cannot kill
// it: it runs on inside the container until the container goes).
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { readdirSync, readlinkSync } from 'node:fs';
import { connectEngine, type Engine } from '../../src/docker/engine.ts';
import { DsoError } from '../../src/errors.ts';
import { DOCKER_HOST, docker, dockerOk } from './support.ts';

let engine: Engine;
const name = `dso-exec-test-${process.pid}`;

beforeAll(async () => {
  engine = await connectEngine({ DOCKER_HOST });
  await dockerOk(['run', '-d', '--init', '--name', name, 'dso-test/busybox:latest', 'sleep', '3600']);
});

afterAll(async () => {
  await docker(['rm', '-f', name]);
});

/** Unix sockets this process has open (its connections to the engine among them). */
function sockets(): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:');
    } catch {
      return false;
    }
  }).length;
}

async function settles(expected: number): Promise<number> {
  for (let i = 0; i < 50 && sockets() > expected; i++) await Bun.sleep(100);
  return sockets();
}

test('an exec keeps at most the output it is allowed, reads the rest, and still reports the exit code', async () => {
  const r = await engine.exec(name, ['sh', '-c', 'head -c 1000000 /dev/zero | tr "\\0" x; exit 3'], { maxOutputBytes: 1000 });
  expect(r.exitCode).toBe(3);
  expect(r.output).toBe('x'.repeat(1000));
  const none = await engine.exec(name, ['sh', '-c', 'echo something private'], { maxOutputBytes: 0 });
  expect(none).toEqual({ exitCode: 0, output: '' });
  // By default 64 KiB.
  const big = await engine.exec(name, ['sh', '-c', 'head -c 300000 /dev/zero | tr "\\0" y']);
  expect(big.output.length).toBe(64 * 1024);
});

test('a health command that prints without end is abandoned at its deadline without growing memory', async () => {
  const before = sockets();
  Bun.gc(true);
  const rss = process.memoryUsage().rss;
  const started = Date.now();
  const error = await engine
    .bounded({ callMs: 4000 })
    .exec(name, ['yes', 'a line of output that never ends'], { maxOutputBytes: 0 })
    .catch((e: unknown) => e);
  expect(Date.now() - started).toBeLessThan(8000);
  expect((error as DsoError).code).toBe('DOCKER_API');
  expect((error as DsoError).message).toContain('did not run yes in container');
  Bun.gc(true);
  // Several hundred MiB went past in 4 s; what stays is a few MiB of noise.
  expect(process.memoryUsage().rss - rss).toBeLessThan(48 * 1024 * 1024);
  expect(await settles(before)).toBeLessThanOrEqual(before);
});

test("a command that never ends is abandoned at the caller's deadline, and no connection stays open", async () => {
  const before = sockets();
  const stop = new AbortController();
  setTimeout(() => stop.abort(new Error('the health check ran out of time')), 1500);
  const started = Date.now();
  const error = await engine.exec(name, ['sleep', '100000'], { signal: stop.signal }).catch((e: unknown) => e);
  expect(Date.now() - started).toBeLessThan(4000);
  expect((error as Error).message).toBe('the health check ran out of time');
  expect(await settles(before)).toBeLessThanOrEqual(before);
  // Docker cannot kill it: the command runs on in the container (removed with it).
  expect(await dockerOk(['exec', name, 'ps', '-o', 'args'])).toContain('sleep 100000');
});
