// Regressions the rotation soak (soak.test.ts) found, each replayed deterministically: the
// compiled agent is held still at one rotation step (DSO_TEST_PAUSE_AT), killed with SIGKILL,
// started again, and what it converges to is checked against the real engine.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import { startFakeVault, type FakeVault } from '../fakes/vault/server.ts';
import { buildTar } from '../../src/docker/tar.ts';
import { DOCKER_HOST, DSO_BIN, canary, docker, dockerOk, waitFor, dso, projectOf, run, sandbox, writeFiles, type Sandbox } from '../integration/support.ts';

let sb: Sandbox;
let project: string;
let vault: FakeVault;
let token: string;
let socket: string;
let agent: { proc: ReturnType<typeof Bun.spawn>; log: string[] } | undefined;
let value = '';

const COMPOSE = `
services:
  db:
    image: dso-test/busybox:latest
    init: true
    command: ["sleep", "36000"]
    healthcheck: { test: ["CMD-SHELL", "grep -q '^DSOCANARY_' /run/secrets/vault/app/db#password"], interval: 1s, timeout: 2s, retries: 3 }
    environment:
      DB_PASSWORD_FILE: dsofile://vault:app/db#password
    labels: { dso.strategy: rolling }
  worker:
    image: dso-test/busybox:latest
    init: true
    command: ["sh", "-c", "trap 'echo reloaded' HUP; while :; do sleep 1 & wait $$!; done"]
    environment:
      DB_PASSWORD_FILE: dsofile://vault:app/db#password
    labels: { dso.strategy: signal }
`;

const CONFIG = (url: string) => `providers:
  vault:
    addr: ${url}
    auth: { method: token, token_env: VAULT_TOKEN }
agent:
  watch: { polling_interval: 1h, debounce_window: 300ms }
  health_check: { timeout: 60s, interval: 1s, retries: 3 }
  cache: { ttl: 1s }
  rotation: { jitter: 0s }
`;

const log = () => agent?.log.join('') ?? '';

function until(what: string, check: () => Promise<boolean>, ms = 90_000): Promise<void> {
  return waitFor(what, check, { ms, hangMs: 20_000, context: () => `agent log tail:\n${log().split('\n').slice(-15).join('\n')}` });
}

async function startAgent(pauseAt?: string): Promise<void> {
  const lines: string[] = [];
  const proc = Bun.spawn([DSO_BIN, 'agent', '--config', join(sb.dir, 'agent.yaml'), '--socket', socket, '--metrics-address', 'off', '--state-dir', join(sb.dir, 'state')], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', VAULT_TOKEN: token, DOCKER_HOST, ...(pauseAt ? { DSO_TEST_PAUSE_AT: pauseAt } : {}) },
    stdout: 'ignore',
    stderr: 'pipe',
  });
  void (async () => {
    for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) lines.push(new TextDecoder().decode(chunk));
  })();
  agent = { proc, log: lines };
  await until('the agent to answer', async () => (await fetch('http://dso-agent/v1/health', { unix: socket } as RequestInit)).ok, 30_000);
}

async function stopAgent(signal: 'SIGKILL' | 'SIGTERM'): Promise<void> {
  if (!agent) return;
  agent.proc.kill(signal);
  await agent.proc.exited;
  agent = undefined;
}

async function change(): Promise<void> {
  value = canary('recovery');
  vault.putSecret('app/db', { password: value });
  const r = await fetch('http://dso-agent/v1/webhook', { method: 'POST', unix: socket, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ secrets: ['vault:app/db#password'] }) } as RequestInit);
  expect(r.status).toBe(202);
}

/** Every file of a secret volume, as `path<TAB>content` lines, read by a throwaway container that mounts it. */
async function volumeFiles(volume: string): Promise<string[]> {
  const r = await docker(['run', '--rm', '--network', 'none', '-v', `${volume}:/v:ro`, 'dso-test/busybox:latest', 'sh', '-c', 'find /v -type f | while read -r f; do printf "%s\\t" "$f"; cat "$f"; echo; done']);
  return r.stdout.split('\n').filter(Boolean);
}

/** What a secret volume holds, read by a throwaway container that mounts it. */
async function volumeContent(volume: string): Promise<string> {
  return (await docker(['run', '--rm', '--network', 'none', '-v', `${volume}:/v:ro`, 'dso-test/busybox:latest', 'sh', '-c', 'cat /v/vault/app/db#password'])).stdout;
}

beforeAll(async () => {
  sb = sandbox('rotation-recovery');
  project = projectOf(sb);
  vault = await startFakeVault();
  token = vault.createToken({ root: true });
  value = canary('recovery-initial');
  vault.putSecret('app/db', { password: value });
  writeFiles(sb.dir, { 'compose.yaml': COMPOSE, 'agent.yaml': CONFIG(vault.url) });
  socket = join(sb.dir, 'run', 'dso.sock');
  await startAgent();
  const up = await dso(sb, ['up', '-d', '--wait'], { env: { DSO_MODE: 'cloud', DSO_AGENT_SOCKET: socket } });
  expect(up.code, up.stderr).toBe(0);
  await stopAgent('SIGTERM');
});

afterAll(async () => {
  await stopAgent('SIGKILL').catch(() => {});
  await startAgent().catch(() => {});
  await dso(sb, ['down', '-t', '1'], { env: { DSO_MODE: 'cloud', DSO_AGENT_SOCKET: socket } }).catch(() => {});
  await stopAgent('SIGTERM').catch(() => {});
  vault?.stop();
  sb.cleanup();
});

describe('a rotation finished by recovery', () => {
  test('killed after the original was removed: recovered forward, and the compose model\'s secret volume gets the new value too', async () => {
    await startAgent('original-removed');
    await change();
    await until('the pause', async () => log().includes('Paused at a rotation step'));
    await stopAgent('SIGKILL');
    await startAgent();
    await until('the recovery', async () => log().includes('Recovered a rotation forward'));
    await until('db on the new value', async () => (await dockerOk(['exec', `${project}-db-1`, 'cat', '/run/secrets/vault/app/db#password'])) === value);
    // The base volume is what Compose mounts into a container it creates from the model (a
    // scale-up): it must not keep the old value, in RAM, for the next one.
    const base = (await dockerOk(['volume', 'ls', '-q', '--filter', `label=dso.project=${project}`, '--filter', 'label=dso.service=db', '--filter', 'label=dso.generation=base'])).trim();
    expect(base).not.toBe('');
    await until('the base volume on the new value', async () => (await volumeContent(base)) === value, 30_000);
    await stopAgent('SIGTERM');
  });
});

describe('a rotation whose original is gone', () => {
  test('the new container, all that is left of the instance, is kept and started, never removed', async () => {
    await startAgent('started');
    const original = (await dockerOk(['inspect', '-f', '{{.Id}}', `${project}-db-1`])).trim();
    await change();
    await until('the pause', async () => log().includes('Paused at a rotation step'));
    await stopAgent('SIGKILL');
    // What an interrupted forward recovery leaves (the original already stopped and removed),
    // with the new container not passing its check at the moment the next recovery looks.
    const shadow = (await dockerOk(['ps', '-aq', '--filter', `name=${project}-db-1-dso-new-`])).trim();
    expect(shadow).not.toBe('');
    await dockerOk(['rm', '-f', original]);
    await dockerOk(['stop', '-t', '1', shadow]);
    await startAgent();
    await until('the recovery', async () => log().includes('Recovered a rotation'));
    await until('db serving the new value under its name', async () => (await dockerOk(['exec', `${project}-db-1`, 'cat', '/run/secrets/vault/app/db#password'])) === value);
    const names = (await dockerOk(['ps', '-a', '--format', '{{.Names}} {{.State}}', '--filter', `label=com.docker.compose.service=db`, '--filter', `label=com.docker.compose.project=${project}`])).trim().split('\n');
    expect(names).toEqual([`${project}-db-1 running`]);
    await stopAgent('SIGTERM');
  });
});

describe('a publish cut short', () => {
  test('the files an interrupted publish left in a volume are taken by the next publish, not left there with their value', async () => {
    await startAgent();
    // The earlier tests changed the value and stopped the agent once db had it: the new agent's
    // start-up check may still be publishing it into worker's volume (through the same staging
    // directory). Plant the leftover only once that is over.
    await until('worker on the current value', async () => (await dockerOk(['exec', `${project}-worker-1`, 'cat', '/run/secrets/vault/app/db#password'])) === value);
    const count = (text: string, what: string) => text.split(what).length - 1;
    const ended = (text: string) => count(text, 'Rotation completed') + count(text, 'Rotation failed') + count(text, 'ROTATION ROLLBACK');
    await until('no rotation under way or about to start', async () => {
      const before = count(log(), 'Rotation started');
      await Bun.sleep(3000); // longer than the debounce window: a queued rotation would have started
      const now = log();
      return count(now, 'Rotation started') === before && ended(now) === before;
    });
    const mounts = JSON.parse(await dockerOk(['inspect', '-f', '{{json .Mounts}}', `${project}-worker-1`])) as Array<{ Name: string; Destination: string }>;
    const volume = mounts.find((m) => m.Destination === '/run/secrets')!.Name;
    const holder = (await dockerOk(['ps', '-q', '--filter', 'label=dso.role=holder', '--filter', `volume=${volume}`])).trim().split('\n')[0]!;
    // What the agent leaves when it is killed between copying new files into the volume's staging
    // directory and renaming them into place: the copy, with a value, and no rename.
    const stale = canary('stale');
    const enc = new TextEncoder();
    const tar = buildTar([
      { path: '.dso-staging', type: 'dir', mode: 0o700, uid: 0, gid: 0 },
      { path: '.dso-staging/vault', type: 'dir', mode: 0o755, uid: 0, gid: 0 },
      { path: '.dso-staging/vault/app', type: 'dir', mode: 0o755, uid: 0, gid: 0 },
      { path: '.dso-staging/vault/app/db#password', type: 'file', mode: 0o444, uid: 0, gid: 0, data: enc.encode(stale) },
      { path: '.dso-staging/.dso-ready', type: 'file', mode: 0o444, uid: 0, gid: 0, data: new Uint8Array(0) },
    ]);
    const cp = await run(['docker', 'cp', '-', `${holder}:/v/${volume}`], { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', DOCKER_HOST: process.env.DOCKER_HOST!, DOCKER_CONFIG: process.env.DOCKER_CONFIG! }, input: tar });
    expect(cp.code, cp.stderr).toBe(0);
    expect((await volumeFiles(volume)).some((l) => l.endsWith(stale))).toBe(true);
    await change();
    await until('worker on the new value', async () => (await dockerOk(['exec', `${project}-worker-1`, 'cat', '/run/secrets/vault/app/db#password'])) === value);
    const files = await volumeFiles(volume);
    expect(files.filter((l) => l.includes('/.dso-staging'))).toEqual([]);
    expect(files.filter((l) => l.endsWith(stale))).toEqual([]);
    await stopAgent('SIGTERM');
  });
});
