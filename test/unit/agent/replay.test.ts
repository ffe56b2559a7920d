// The webhook's replay memory on disk: what one agent accepted, the next (after a restart) still
// refuses; the file holds digests and expiry times only (0600), drops what left the window, stays
// bounded, and when it cannot be read the agent starts but refuses what the lost memory could
// have covered. A write that fails is said once and fails no request.
import { afterEach, beforeEach, expect, test } from 'bun:test';
import { createHmac } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPLAY_FILE, ReplayMemory } from '../../../src/agent/replay.ts';

const WINDOW = 5 * 60_000;
const NOW = Date.UTC(2030, 0, 1, 12, 0, 0);
let dir: string;
let logs: Array<{ level: string; message: string; fields?: Record<string, unknown> }>;
let clock: { now: number };

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'dso-replay-'));
  logs = [];
  clock = { now: NOW };
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const open = (options: { limit?: number } = {}) => ReplayMemory.open(join(dir, 'state'), { windowMs: WINDOW, now: () => clock.now, log: (level, message, fields) => logs.push({ level, message, ...(fields ? { fields } : {}) }), ...options });
const signature = (n: number) => createHmac('sha256', 'k').update(String(n)).digest();
const file = () => join(dir, 'state', REPLAY_FILE);

test('a signature accepted before a restart is still seen after it; the file holds digests and expiry times only, mode 0600', async () => {
  const first = open();
  const sig = signature(1);
  expect(first.remember(sig, NOW, NOW + WINDOW, clock.now)).toBe('new');
  expect(first.remember(sig, NOW, NOW + WINDOW, clock.now)).toBe('seen');
  await first.flush();
  const text = readFileSync(file(), 'utf8');
  expect(statSync(file()).mode & 0o777).toBe(0o600);
  expect(statSync(join(dir, 'state')).mode & 0o777).toBe(0o700);
  expect(text).not.toContain(sig.toString('hex'));
  expect(text).not.toContain(sig.toString('base64'));
  const parsed = JSON.parse(text) as { version: number; seen: Record<string, number> };
  expect(parsed.version).toBe(1);
  expect(Object.values(parsed.seen)).toEqual([NOW + WINDOW]);
  expect(Object.keys(parsed.seen)[0]).toMatch(/^[0-9a-f]{32}$/);

  clock.now += 60_000;
  const restarted = open();
  expect(restarted.remember(sig, NOW, NOW + WINDOW, clock.now)).toBe('seen');
  expect(restarted.remember(signature(2), clock.now, clock.now + WINDOW, clock.now)).toBe('new');
  expect(logs).toEqual([]);
});

test('what left the window is dropped: at open, and from the file at the next write', async () => {
  const m = open();
  m.remember(signature(1), NOW, NOW + WINDOW, clock.now);
  m.remember(signature(2), NOW + 60_000, NOW + 60_000 + WINDOW, clock.now);
  await m.flush();
  clock.now = NOW + WINDOW + 1000;
  const later = open();
  expect(later.size).toBe(1);
  later.remember(signature(3), clock.now, clock.now + WINDOW, clock.now);
  await later.flush();
  expect(Object.values((JSON.parse(readFileSync(file(), 'utf8')) as { seen: Record<string, number> }).seen).sort()).toEqual([NOW + 60_000 + WINDOW, clock.now + WINDOW]);
});

test('bounded: when full of live signatures a new one is refused ("full"), not an old one forgotten; room comes back as they expire', () => {
  const m = open({ limit: 3 });
  for (let i = 0; i < 3; i++) expect(m.remember(signature(i), NOW, NOW + WINDOW, clock.now)).toBe('new');
  expect(m.remember(signature(9), NOW, NOW + WINDOW, clock.now)).toBe('full');
  expect(m.remember(signature(0), NOW, NOW + WINDOW, clock.now)).toBe('seen');
  clock.now = NOW + WINDOW + 1;
  expect(m.remember(signature(9), clock.now, clock.now + WINDOW, clock.now)).toBe('new');
  expect(m.size).toBe(1);
});

test.each([
  ['not JSON', (p: string) => writeFileSync(p, '{"version":1,"seen":{"abc')],
  ['another form', (p: string) => writeFileSync(p, JSON.stringify({ version: 2, seen: [] }))],
  ['a digest that is not one', (p: string) => writeFileSync(p, JSON.stringify({ version: 1, seen: { 'not-hex': NOW } }))],
  ['a directory in its place', (p: string) => mkdirSync(p)],
])('a memory that cannot be read (%s): the agent starts, says so, and refuses what it could have covered, across another restart too', async (_what, spoil) => {
  mkdirSync(join(dir, 'state'), { recursive: true });
  spoil(file());
  const m = open();
  expect(logs.map((l) => `${l.level}: ${l.message}`)).toEqual(['warn: The webhook replay memory could not be read: signed webhook requests are refused (503) until the requests it may have covered are too old']);
  expect(logs[0]!.fields?.file).toBe(file());
  // Any request signed before now + the window may have been accepted by the agent before.
  expect(m.remember(signature(1), NOW - 60_000, NOW + 4 * 60_000, clock.now)).toBe('unknown');
  expect(m.remember(signature(2), NOW + WINDOW - 1000, NOW + 2 * WINDOW - 1000, clock.now)).toBe('unknown');
  await m.flush();
  // Restarted again within the window: the same limit, though the memory is empty now.
  clock.now += 2 * 60_000;
  if (statSync(file()).isDirectory()) return; // the agent cannot replace a directory; it says so (next test)
  const again = open();
  expect(again.remember(signature(3), clock.now, clock.now + WINDOW, clock.now)).toBe('unknown');
  // Signed after the limit: accepted.
  clock.now = NOW + WINDOW + 1000;
  expect(again.remember(signature(4), clock.now, clock.now + WINDOW, clock.now)).toBe('new');
});

test('a write that fails is logged once, fails nothing, and is said to work again when it does', async () => {
  const m = open();
  rmSync(join(dir, 'state'), { recursive: true });
  writeFileSync(join(dir, 'state'), 'a file where the state directory was');
  for (let i = 0; i < 3; i++) {
    expect(m.remember(signature(i), NOW, NOW + WINDOW, clock.now)).toBe('new');
    await m.flush();
  }
  expect(logs.filter((l) => l.level === 'error').map((l) => l.message)).toEqual(['Cannot write the webhook replay memory: a request accepted now could be accepted again after a restart (within its 5 minutes)']);
  expect(logs[0]!.fields?.error).toBe('ENOTDIR');
  rmSync(join(dir, 'state'));
  mkdirSync(join(dir, 'state'), { mode: 0o700 });
  await m.flush();
  expect(logs.at(-1)?.message).toBe('The webhook replay memory is written again');
  expect(Object.keys((JSON.parse(readFileSync(file(), 'utf8')) as { seen: object }).seen)).toHaveLength(3);
});

test('writes asked for together are made together, and the last one holds every signature', async () => {
  const m = open();
  const writes = Array.from({ length: 50 }, (_, i) => {
    m.remember(signature(i), NOW, NOW + WINDOW, clock.now);
    return m.flush();
  });
  await Promise.all(writes);
  expect(Object.keys((JSON.parse(readFileSync(file(), 'utf8')) as { seen: object }).seen)).toHaveLength(50);
});

test('moved to another state directory (agent.state_dir changed on reload), it writes there', async () => {
  const m = open();
  m.remember(signature(1), NOW, NOW + WINDOW, clock.now);
  await m.flush();
  mkdirSync(join(dir, 'other'), { mode: 0o700 });
  await m.moveTo(join(dir, 'other'));
  expect(Object.keys((JSON.parse(readFileSync(join(dir, 'other', REPLAY_FILE), 'utf8')) as { seen: object }).seen)).toHaveLength(1);
});
