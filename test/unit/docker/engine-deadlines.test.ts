// A bounded engine view (Engine.bounded) against a hung engine: a unix socket that accepts every
// connection and never answers. Each call ends at its limit with a message naming what the
// engine did not do, a stop gets its stop timeout on top, the caller's own deadline ends every
// call with its own reason, and no connection is left open behind an abandoned call.
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectEngine, type Engine } from '../../../src/docker/engine.ts';
import { DsoError } from '../../../src/errors.ts';

let dir: string;
let server: Server;
const open = new Set<Socket>();
let engine: Engine;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dso-hung-engine-'));
  const path = join(dir, 'docker.sock');
  server = createServer((s) => {
    open.add(s);
    s.on('data', () => {}); // reads the request, never answers
    s.on('close', () => open.delete(s));
    s.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  engine = await connectEngine({ DOCKER_HOST: `unix://${path}` });
});

afterAll(() => {
  for (const s of open) s.destroy();
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

async function timed<T>(p: Promise<T>): Promise<{ ms: number; error: unknown }> {
  const started = Date.now();
  try {
    await p;
    return { ms: Date.now() - started, error: undefined };
  } catch (e) {
    return { ms: Date.now() - started, error: e };
  }
}

async function noConnectionLeft(): Promise<void> {
  for (let i = 0; i < 100 && open.size > 0; i++) await Bun.sleep(20);
  expect(open.size).toBe(0);
}

test('a call the engine never answers ends at the limit, saying what the engine did not do', async () => {
  const { ms, error } = await timed(engine.bounded({ callMs: 300 }).inspectDetails('app-1'));
  expect(ms).toBeGreaterThanOrEqual(280);
  expect(ms).toBeLessThan(2000);
  expect(error).toBeInstanceOf(DsoError);
  expect((error as DsoError).code).toBe('DOCKER_API');
  expect((error as DsoError).message).toBe('the Docker engine did not inspect container app-1 within 0.3 s');
  await noConnectionLeft();
});

test('an exec that never answers ends at the limit too, and its connection is closed', async () => {
  const { ms, error } = await timed(engine.bounded({ callMs: 300 }).exec('app-1', ['sh', '-c', 'sleep 100000']));
  expect(ms).toBeLessThan(2000);
  expect((error as DsoError).message).toBe('the Docker engine did not run sh in container app-1 within 0.3 s');
  await noConnectionLeft();
});

test('a stop gets its stop timeout on top of the limit: the engine waits that long before it kills', async () => {
  const { ms, error } = await timed(engine.bounded({ callMs: 300 }).stopContainer('app-1', 1));
  expect(ms).toBeGreaterThanOrEqual(1250);
  expect(ms).toBeLessThan(3500);
  expect((error as DsoError).message).toBe('the Docker engine did not stop container app-1 within 1.3 s');
  await noConnectionLeft();
});

test("the caller's deadline ends any call first, with the caller's reason", async () => {
  const whole = new AbortController();
  const view = engine.bounded({ callMs: 60_000, signal: whole.signal });
  setTimeout(() => whole.abort(new DsoError('ROTATION_FAILED', 'the rotation took longer than agent.rotation.timeout (1 s)')), 200);
  const { ms, error } = await timed(view.createContainer({ name: 'app-1', Image: 'busybox' }));
  expect(ms).toBeLessThan(2000);
  expect((error as DsoError).message).toBe('the rotation took longer than agent.rotation.timeout (1 s)');
  // Once it has run out, every further call ends at once.
  const next = await timed(view.listContainers([]));
  expect(next.ms).toBeLessThan(100);
  expect((next.error as DsoError).code).toBe('ROTATION_FAILED');
  await noConnectionLeft();
});

test("an exec's own signal ends it, on a view without limits too", async () => {
  const own = new AbortController();
  setTimeout(() => own.abort(new Error('the health check ran out of time')), 200);
  const { ms, error } = await timed(engine.exec('app-1', ['true'], { signal: own.signal }));
  expect(ms).toBeLessThan(2000);
  expect((error as Error).message).toBe('the health check ran out of time');
  await noConnectionLeft();
});

test('a view of a view obeys both: the shorter limit', async () => {
  const { ms } = await timed(engine.bounded({ callMs: 60_000 }).bounded({ callMs: 200 }).ping());
  expect(ms).toBeLessThan(2000);
  const other = await timed(engine.bounded({ callMs: 200 }).bounded({ callMs: 60_000 }).ping());
  expect(other.ms).toBeLessThan(2000);
  await noConnectionLeft();
});
