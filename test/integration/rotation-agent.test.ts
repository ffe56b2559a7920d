// Automatic rotation by the compiled agent (Cloud Mode), against a Vault backend and the real
// engine and Compose: a secret changed in Vault reaches every container that uses it, after a
// webhook or by polling, each by its strategy (db blue-green behind its health check, worker
// rewritten in place and sent SIGHUP, api recreated for its dso:// variable); a bad value is
// refused by db's health check and kept from api, which depends on db; a container whose
// secret volumes a restart emptied gets its files back from the agent before its application
// starts; status and metrics say what happened; nothing leaks.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createHash } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startFakeVault, type FakeVault } from '../fakes/vault/server.ts';
import { DATA_ROOT, DOCKER_HOST, DSO_BIN, canary, docker, dockerOk, dso, sandbox, scanForLeaks, writeFiles, type Sandbox, projectOf } from './support.ts';

let sb: Sandbox;
let project: string;
let vault: FakeVault;
let token: string;
let agent: ReturnType<typeof Bun.spawn>;
let socket: string;
let metricsUrl = '';
const agentLog: string[] = [];
const P = [canary('p1'), canary('p2'), canary('p3'), canary('p4')] as const;
const API_KEYS = [canary('k1'), canary('k2')] as const;
const sha = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 16);

const COMPOSE = `
services:
  db:
    image: dso-test/busybox:latest
    init: true
    command: ["sleep", "3600"]
    healthcheck: { test: ["CMD-SHELL", "grep -q '^DSOCANARY_' /run/secrets/vault/app/db#password"], interval: 1s, timeout: 1s, retries: 2 }
    environment:
      DB_PASSWORD_FILE: dsofile://vault:app/db#password
    labels: { dso.strategy: rolling }
  worker:
    image: dso-test/busybox:latest
    init: true
    command: ["sh", "-c", "trap 'echo reloaded $$(sha256sum < $$DB_PASSWORD_FILE | cut -c1-16)' HUP; echo started; while :; do sleep 1 & wait $$!; done"]
    environment:
      DB_PASSWORD_FILE: dsofile://vault:app/db#password
    labels: { dso.strategy: signal }
  api:
    image: dso-test/busybox:latest
    init: true
    command: ["sleep", "3600"]
    depends_on: [db]
    environment:
      DB_PASSWORD_FILE: dsofile://vault:app/db#password
      API_KEY: dso://vault:app/api#key
`;

function config(pollingInterval: string): string {
  return `providers:
  vault:
    addr: ${vault.url}
    auth: { method: token, token_env: VAULT_TOKEN }
agent:
  watch: { polling_interval: ${pollingInterval}, debounce_window: 1s }
  health_check: { timeout: 15s, interval: 1s, retries: 3 }
  rotation: { strategy: restart, jitter: 0s }
`;
}

const cloud = () => ({ DSO_MODE: 'cloud', DSO_AGENT_SOCKET: socket });
const id = (c: string) => dockerOk(['inspect', '-f', '{{.Id}}', `${project}-${c}-1`]).then((s) => s.trim());
const file = (c: string) => dockerOk(['exec', `${project}-${c}-1`, 'cat', '/run/secrets/vault/app/db#password']);

async function until(what: string, check: () => Promise<boolean>, ms = 40_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; agent log tail:\n${agentLog.join('').split('\n').slice(-15).join('\n')}`);
    await Bun.sleep(250);
  }
}

async function webhook(ids: string[]): Promise<Response> {
  return fetch('http://dso-agent/v1/webhook', { method: 'POST', unix: socket, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ secrets: ids }) } as RequestInit);
}

beforeAll(async () => {
  sb = sandbox('rotation-agent');
  project = projectOf(sb);
  vault = await startFakeVault();
  token = vault.createToken({ root: true });
  vault.putSecret('app/db', { password: P[0] });
  vault.putSecret('app/api', { key: API_KEYS[0] });
  writeFiles(sb.dir, { 'compose.yaml': COMPOSE, 'agent.yaml': config('1h') });
  socket = join(sb.dir, 'run', 'dso.sock');
  agent = Bun.spawn([DSO_BIN, 'agent', '--config', join(sb.dir, 'agent.yaml'), '--socket', socket, '--metrics-address', '127.0.0.1:0', '--state-dir', join(sb.dir, 'state')], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', VAULT_TOKEN: token, DOCKER_HOST },
    stdout: 'ignore',
    stderr: 'pipe',
  });
  void (async () => {
    for await (const chunk of agent.stderr as ReadableStream<Uint8Array>) {
      const text = new TextDecoder().decode(chunk);
      agentLog.push(text);
      metricsUrl ||= /"metrics":"(http:[^"]+)"/.exec(text)?.[1] ?? '';
    }
  })();
  await until('the agent socket', async () => existsSync(socket), 10_000);
  const up = await dso(sb, ['up', '-d', '--wait'], { env: cloud() });
  expect(up.code, up.stderr).toBe(0);
});

afterAll(async () => {
  await dso(sb, ['down'], { env: cloud() }).catch(() => {});
  agent?.kill('SIGTERM');
  await agent?.exited;
  vault?.stop();
  sb.cleanup();
});

describe('the agent rotates what changes at the provider', () => {
  test('containers resolved through the agent carry its fingerprints, not values', async () => {
    const labels = JSON.parse(await dockerOk(['inspect', '-f', '{{json .Config.Labels}}', `${project}-db-1`]));
    expect(labels['dso.config']).toBe('agent');
    expect(Object.keys(JSON.parse(labels['dso.versions']))).toEqual(['vault:app/db#password']);
    expect(JSON.parse(labels['dso.versions'])['vault:app/db#password']).toMatch(/^f1:[0-9a-f]{8}:[0-9a-f]{32}$/);
    expect(JSON.stringify(labels)).not.toContain(P[0]);
  });

  test('a webhook after a change in Vault: db blue-green, worker signalled in place, api recreated after db', async () => {
    const before = { db: await id('db'), worker: await id('worker'), api: await id('api') };
    vault.putSecret('app/db', { password: P[1] });
    expect((await webhook(['vault:app/db#password'])).status).toBe(202);
    await until('every container on the new value', async () => (await file('db')) === P[1] && (await file('worker')) === P[1] && (await file('api')) === P[1]);
    await until('the worker to reload', async () => (await docker(['logs', `${project}-worker-1`])).stdout.includes(`reloaded ${sha(P[1])}`));
    expect(await id('worker')).toBe(before.worker); // signal: the same container, files replaced
    expect(await id('db')).not.toBe(before.db); // rolling: a new one took over
    expect(await id('api')).not.toBe(before.api);
    expect((await dockerOk(['inspect', '-f', '{{.State.Health.Status}}', `${project}-db-1`])).trim()).toBe('healthy');
    const ps = (await dockerOk(['compose', '-p', project, 'ps', '--format', '{{.Service}}'])).split('\n').filter(Boolean).sort();
    expect(ps).toEqual(['api', 'db', 'worker']);
    expect(await dockerOk(['exec', `${project}-api-1`, 'sh', '-c', 'printf %s "$API_KEY"'])).toBe(API_KEYS[0]);
  });

  test('status shows the rotations; the seed\'s rotation metrics moved', async () => {
    const s = JSON.parse((await dso(sb, ['status', '--json'], { env: cloud() })).stdout).agent.status;
    await until('three finished rotations in status', async () => JSON.parse((await dso(sb, ['status', '--json'], { env: cloud() })).stdout).agent.status.recentRotations.filter((r: { status: string }) => r.status === 'done').length >= 3);
    expect(s.queue.capacity).toBe(2000);
    const metrics = await (await fetch(`${metricsUrl}`)).text();
    expect(metrics).toMatch(/dso_rotation_total\{secret="vault:app\/db#password",status="success"\} [3-9]/);
    expect(metrics).toMatch(/dso_rotation_duration_seconds_count\{secret="vault:app\/db#password",status="success"\} [3-9]/);
    expect(metrics).toMatch(/dso_rotation_health_check_duration_seconds_count\{secret="vault:app\/db#password"\} [1-9]/);
    expect(metrics).toMatch(/dso_container_rotation_duration_seconds_count\{container="[^"]+-db-1"\} 1/);
    // The Event section: the three containers' events became one debounced batch; the queue is empty again.
    expect(metrics).toMatch(/dso_event_debounce_batches_total [1-9]/);
    expect(metrics).toMatch(/dso_event_queue_size 0/);
    expect(metrics).not.toMatch(/dso_event_queue_drops_total\{reason="full"\} [1-9]/);
    expect(metrics).not.toContain(P[1]);
  });

  test('rotate --dry-run in Cloud Mode shows the agent\'s plan', async () => {
    const r = await dso(sb, ['rotate', 'vault:app/db#password', '--dry-run'], { env: cloud() });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Rotation plan for secret vault:app/db#password: 3 containers');
    expect(r.stdout).toContain(`${project}-worker-1: signal (files rewritten, then SIGHUP)`);
  });

  test('a bad value: db\'s new container is unhealthy, db keeps serving, api (which depends on db) is spared', async () => {
    const before = { db: await id('db'), api: await id('api') };
    vault.putSecret('app/db', { password: 'not-a-valid-password' });
    expect((await webhook(['vault:app/db#password'])).status).toBe(202);
    await until('the rollback in the log', async () => agentLog.join('').includes('ROTATION ROLLBACK'));
    await until('api spared in the log', async () => agentLog.join('').includes('refused the new value'));
    expect(await id('db')).toBe(before.db);
    expect(await file('db')).toBe(P[1]);
    expect(await id('api')).toBe(before.api);
    expect(await file('api')).toBe(P[1]);
    // The same refused value is not tried again at the next check: no rollback loop.
    await until('the refusal remembered', async () => agentLog.join('').includes('Not retrying this value'));
    const rollbacks = agentLog.join('').split('ROTATION ROLLBACK').length;
    expect((await webhook(['vault:app/db#password'])).status).toBe(202);
    await Bun.sleep(2500);
    expect(agentLog.join('').split('ROTATION ROLLBACK').length).toBe(rollbacks);
    expect(await id('db')).toBe(before.db);
  });

  test('with polling (reloaded by SIGHUP), a change reaches every container without any webhook', async () => {
    writeFileSync(join(sb.dir, 'agent.yaml'), config('2s'));
    vault.putSecret('app/db', { password: P[2] });
    agent.kill('SIGHUP');
    await until('every container on the polled value', async () => (await file('db')) === P[2] && (await file('worker')) === P[2] && (await file('api')) === P[2]);
    // Back to webhook-only, so nothing moves behind the next tests' backs.
    writeFileSync(join(sb.dir, 'agent.yaml'), config('1h'));
    agent.kill('SIGHUP');
    await until('the reload', async () => agentLog.join('').split('Configuration reloaded').length >= 3);
  });

  test('a container whose secret volume a restart emptied waits, and the agent puts its files back', async () => {
    const holders = JSON.parse(await dockerOk(['inspect', '-f', '{{json .Mounts}}', `${project}-db-1`])).filter((m: { Destination: string }) => m.Destination === '/run/secrets').map((m: { Name: string }) => m.Name);
    const holder = (await dockerOk(['ps', '-aq', '--filter', 'label=dso.role=holder', '--filter', `volume=${holders[0]}`])).trim();
    // With no running container mounting it, a tmpfs volume is unmounted and its files are gone:
    // what a reboot does. Then, as at boot, the holder's restart policy starts it (empty), and db.
    await dockerOk(['stop', '-t', '1', `${project}-db-1`]);
    await dockerOk(['stop', '-t', '1', holder]);
    await dockerOk(['start', holder]);
    await dockerOk(['start', `${project}-db-1`]);
    await until('db healthy on its restored secret', async () => (await dockerOk(['inspect', '-f', '{{.State.Health.Status}}', `${project}-db-1`])).trim() === 'healthy', 30_000);
    expect(await file('db')).toBe(P[2]);
  });

  test('no file secret in docker inspect, on disk, in the agent\'s log or its metrics', async () => {
    const all = [...P, 'not-a-valid-password'];
    for (const c of ['db', 'worker', 'api']) {
      const inspect = await dockerOk(['inspect', `${project}-${c}-1`]);
      for (const v of all) expect(inspect).not.toContain(v);
    }
    expect(scanForLeaks([DATA_ROOT, sb.dir], [...P])).toEqual([]);
    const log = agentLog.join('');
    for (const v of [...all, ...API_KEYS, token]) expect(log).not.toContain(v);
    const metrics = await (await fetch(metricsUrl)).text();
    for (const v of [...all, ...API_KEYS]) expect(metrics).not.toContain(v);
  });
});
