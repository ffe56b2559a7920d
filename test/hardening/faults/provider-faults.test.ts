// A provider backend that is down, hangs, or answers garbage (HTML, a truncated or cut body, an
// endless body, JSON of the wrong shape, a 502 page), put between DSO and the fake Vault by a
// fault proxy, against the compiled binary, the real engine and Compose. `docker dso up` fails
// naming the provider and the secret, and starts and leaves nothing; the running agent stays up,
// says the provider is unhealthy, keeps its containers on the last good value (a recreated one
// gets it from the cache), never rotates to garbage, and rotates once the backend is back. No
// value, and nothing of a broken answer, appears in any message.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startFakeVault, type FakeVault } from '../../fakes/vault/server.ts';
import { DATA_ROOT, canary, dockerOk, dso, spawnAgent, waitFor, projectObjects, projectOf, sandbox, scanForLeaks, writeFiles, type Sandbox } from '../../integration/support.ts';
import { startFaultProxy, type Fault, type FaultProxy } from './fault-proxy.ts';

const GOOD = [canary('pf-good0'), canary('pf-good1')] as const;
/** Put into every broken answer: it must never be echoed, nor delivered as a value. */
const BAIT = canary('pf-bait');
const FAULTS: Fault[] = ['down', 'hang', 'html', 'truncated', 'reset', 'huge', 'wrong-shape', 'bad-gateway'];

let vault: FakeVault;
let proxy: FaultProxy;
let token: string;
const outputs: string[] = [];

const COMPOSE = `
services:
  app:
    image: dso-test/busybox:latest
    init: true
    command: ["sleep", "3600"]
    healthcheck: { test: ["CMD-SHELL", "grep -q '^DSOCANARY_pf-good' /run/secrets/vault/app/db#password"], interval: 1s, timeout: 10s, retries: 5, start_period: 60s }
    environment:
      DB_PASSWORD_FILE: dsofile://vault:app/db#password
    labels: { dso.strategy: restart }
`;

const PROVIDER = (url: string) => `providers:
  vault:
    addr: ${url}
    timeout: 3s
    auth: { method: token, token_env: VAULT_TOKEN }
`;

beforeAll(async () => {
  vault = await startFakeVault();
  token = vault.createToken({ root: true });
  vault.putSecret('app/db', { password: GOOD[0] });
  proxy = await startFaultProxy(vault.url, BAIT);
});

afterAll(async () => {
  await proxy?.set('none');
  proxy?.stop();
  vault?.stop();
});

/** What no message, log or file may hold. */
const NEEDLES = () => [...GOOD, BAIT, token];

describe('docker dso up (Local Mode) against a broken backend', () => {
  let sb: Sandbox;
  beforeAll(() => {
    sb = sandbox('pf-local');
    writeFiles(sb.dir, { 'compose.yaml': COMPOSE, 'dso.yaml': PROVIDER(proxy.url) });
  });
  afterAll(async () => {
    await proxy.set('none');
    await dso(sb, ['down', '-t', '1'], { env: { DSO_MODE: 'local' } }).catch(() => {});
    sb.cleanup();
  });

  for (const fault of FAULTS) {
    test(`${fault}: fails naming the provider and the secret, starts nothing, leaves nothing`, async () => {
      await proxy.set(fault);
      const r = await dso(sb, ['up', '-d'], { env: { DSO_MODE: 'local', VAULT_TOKEN: token } });
      await proxy.set('none');
      outputs.push(r.stdout, r.stderr);
      expect(r.code, r.stderr).not.toBe(0);
      expect(r.stderr).toContain('vault:app/db#password');
      expect(r.stderr).toContain('service "app"');
      expect(r.stderr).toContain('nothing was started');
      // A hang ends at dso.yaml's `timeout` (3 s), even while logging in, not at a fixed limit.
      if (fault === 'hang') expect(r.stderr).toContain('timeout: the provider was not ready (logged in) within 3000 ms');
      for (const n of NEEDLES()) expect(`${r.stdout}${r.stderr}`).not.toContain(n);
      expect(await projectObjects(projectOf(sb))).toEqual({ containers: [], volumes: [] });
    });
  }

  test('once the backend is back, the same up works', async () => {
    const r = await dso(sb, ['up', '-d', '--wait'], { env: { DSO_MODE: 'local', VAULT_TOKEN: token } });
    outputs.push(r.stdout, r.stderr);
    expect(r.code, r.stderr).toBe(0);
    expect(await dockerOk(['exec', `${projectOf(sb)}-app-1`, 'cat', '/run/secrets/vault/app/db#password'])).toBe(GOOD[0]);
  });
});

describe('the agent while its backend is broken', () => {
  let sb: Sandbox;
  let project: string;
  let socket: string;
  let agent: ReturnType<typeof Bun.spawn>;
  const agentLog: string[] = [];
  const cloud = () => ({ DSO_MODE: 'cloud', DSO_AGENT_SOCKET: socket });
  const id = () => dockerOk(['inspect', '-f', '{{.Id}}', `${project}-app-1`]).then((s) => s.trim());
  const file = () => dockerOk(['exec', `${project}-app-1`, 'cat', '/run/secrets/vault/app/db#password']);
  const status = async () => JSON.parse((await dso(sb, ['status', '--json'], { env: cloud() })).stdout).agent.status;
  const vaultHealth = async () => (await status()).providers.find((p: { name: string }) => p.name === 'vault') as { healthy: boolean; lastError?: string };

  function until(what: string, check: () => Promise<boolean>, ms = 60_000): Promise<void> {
    return waitFor(what, check, { ms, context: () => `agent log tail:\n${agentLog.join('').split('\n').slice(-15).join('\n')}` });
  }

  async function webhook(): Promise<void> {
    const r = await fetch('http://dso-agent/v1/webhook', { method: 'POST', unix: socket, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ secrets: ['vault:app/db#password'] }) } as RequestInit);
    expect(r.status).toBe(202);
  }

  beforeAll(async () => {
    sb = sandbox('pf-agent');
    project = projectOf(sb);
    socket = join(sb.dir, 'run', 'dso.sock');
    // A 1 s cache: every check and every resolve goes to the (broken) backend.
    writeFiles(sb.dir, {
      'compose.yaml': COMPOSE,
      'agent.yaml': `${PROVIDER(proxy.url)}agent:\n  watch: { polling_interval: 1h, debounce_window: 500ms }\n  cache: { ttl: 1s }\n  health_check: { timeout: 20s, interval: 1s, retries: 3 }\n  rotation: { strategy: restart, jitter: 0s }\n`,
    });
    agent = spawnAgent({ config: join(sb.dir, 'agent.yaml'), socket, stateDir: join(sb.dir, 'state'), env: { VAULT_TOKEN: token }, log: agentLog });
    await until('the agent socket', async () => existsSync(socket), 15_000);
    const up = await dso(sb, ['up', '-d', '--wait'], { env: cloud() });
    outputs.push(up.stdout, up.stderr);
    expect(up.code, up.stderr).toBe(0);
    expect(await file()).toBe(GOOD[0]);
  });

  afterAll(async () => {
    await proxy.set('none');
    await dso(sb, ['down', '-t', '1'], { env: cloud() }).catch(() => {});
    agent?.kill('SIGTERM');
    await agent?.exited;
    sb.cleanup();
  });

  for (const fault of FAULTS) {
    test(`${fault}: provider unhealthy, the container kept on its last good value, nothing rotated`, async () => {
      const before = await id();
      const seen = agentLog.join('').split('Could not check a secret for changes').length;
      await proxy.set(fault);
      await webhook();
      await until('the failed check in the log', async () => agentLog.join('').split('Could not check a secret for changes').length > seen);
      const health = await vaultHealth();
      expect(health.healthy).toBe(false);
      expect(health.lastError).toBeString();
      for (const n of NEEDLES()) expect(health.lastError).not.toContain(n);
      // A recreated container still gets the last good value, from the cache.
      const r = await dso(sb, ['up', '-d', '--force-recreate'], { env: cloud() });
      outputs.push(r.stdout, r.stderr);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain('vault:app/db#password: the agent served a cached value');
      expect(await file()).toBe(GOOD[0]);
      expect(await id()).not.toBe(before);
      await proxy.set('none');
      expect(agent.exitCode).toBeNull();
    });
  }

  test('no rotation ran while the backend was broken', async () => {
    const s = await status();
    expect(s.recentRotations).toEqual([]);
  });

  test('once the backend is back, the new value is rotated in and the provider is healthy again', async () => {
    vault.putSecret('app/db', { password: GOOD[1] });
    await webhook();
    await until('the new value in the container', async () => (await file()) === GOOD[1]);
    await until('the provider healthy', async () => (await vaultHealth()).healthy);
    await until('the container healthy on it', async () => (await dockerOk(['inspect', '-f', '{{.State.Health.Status}}', `${project}-app-1`])).trim() === 'healthy');
    await until('the rotation recorded as done', async () => (await status()).recentRotations.some((r: { status: string }) => r.status === 'done'));
    expect((await status()).recentRotations.filter((r: { status: string }) => r.status !== 'done')).toEqual([]);
  });

  test('nothing of a value or of a broken answer in the agent\'s log, what DSO printed, or on disk', () => {
    const log = agentLog.join('');
    for (const n of NEEDLES()) expect(log).not.toContain(n);
    for (const out of outputs) for (const n of NEEDLES()) expect(out).not.toContain(n);
    expect(scanForLeaks([DATA_ROOT, sb.dir], [...GOOD, BAIT])).toEqual([]);
  });
});
