// Crash recovery, against the compiled agent and the real engine: the agent is killed with
// SIGKILL at every step of a rolling rotation and of a restart rotation in turn (a test-only
// hook, DSO_TEST_PAUSE_AT, holds it still at the step), then started again, and must converge by
// itself each time: exactly one container per service instance, under its original name,
// healthy, with the newest secret, and no shadow, no `-old` container and no orphaned volume or
// holder. Then the Docker engine is restarted in the middle of a rotation while the agent runs:
// same result.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startFakeVault, type FakeVault } from '../fakes/vault/server.ts';
import { DOCKER_HOST, DSO_BIN, canary, dockerOk, dso, restartEngine, sandbox, writeFiles, type Sandbox, projectOf } from './support.ts';

let sb: Sandbox;
let project: string;
let vault: FakeVault;
let token: string;
let socket: string;
let agent: { proc: ReturnType<typeof Bun.spawn>; log: string[] } | undefined;
const values: Record<string, string> = {};

// db rolls blue-green behind its health check; api publishes a host port, so it restarts. Each
// uses a secret of its own, so a change reaches exactly one of them.
const PORT = 19000 + Math.floor(Math.random() * 1000);
const COMPOSE = `
services:
  db:
    image: dso-test/busybox:latest
    init: true
    restart: unless-stopped
    command: ["sh", "-c", "sleep $$SLOW; touch /tmp/ready; exec sleep 3600"]
    healthcheck: { test: ["CMD-SHELL", "test -f /tmp/ready && grep -q '^DSOCANARY_' /run/secrets/vault/app/db#password"], interval: 1s, timeout: 1s, retries: 2, start_period: 15s }
    environment:
      SLOW: "0"
      DB_PASSWORD_FILE: dsofile://vault:app/db#password
    labels: { dso.strategy: rolling }
  api:
    image: dso-test/busybox:latest
    init: true
    restart: unless-stopped
    command: ["httpd", "-f", "-p", "80", "-h", "/run/secrets/vault/app"]
    ports: ["127.0.0.1:${PORT}:80"]
    environment:
      API_KEY_FILE: dsofile://vault:app/api#key
    labels: { dso.strategy: rolling }
`;

const CONFIG = (vaultUrl: string) => `providers:
  vault:
    addr: ${vaultUrl}
    auth: { method: token, token_env: VAULT_TOKEN }
agent:
  watch: { polling_interval: 1h, debounce_window: 500ms }
  health_check: { timeout: 20s, interval: 1s, retries: 3 }
  cache: { ttl: 1s }
  rotation: { strategy: restart, jitter: 0s }
`;

async function until(what: string, check: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${notYet ? ` (${notYet})` : ''}${last ? ` (last error: ${last})` : ''}; agent log tail:\n${(agent?.log.join('') ?? '').split('\n').slice(-12).join('\n')}`);
    await Bun.sleep(300);
  }
}

async function startAgent(pauseAt?: string): Promise<void> {
  const log: string[] = [];
  const proc = Bun.spawn([DSO_BIN, 'agent', '--config', join(sb.dir, 'agent.yaml'), '--socket', socket, '--metrics-address', 'off', '--state-dir', join(sb.dir, 'state')], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', VAULT_TOKEN: token, DOCKER_HOST, ...(pauseAt ? { DSO_TEST_PAUSE_AT: pauseAt } : {}) },
    stdout: 'ignore',
    stderr: 'pipe',
  });
  void (async () => {
    for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) log.push(new TextDecoder().decode(chunk));
  })();
  agent = { proc, log };
  await until('the agent socket', async () => existsSync(socket), 10_000);
}

async function killAgent(signal: 'SIGKILL' | 'SIGTERM'): Promise<void> {
  if (!agent) return;
  agent.proc.kill(signal);
  await agent.proc.exited;
  // A killed agent leaves its socket behind: the next one replaces it (tested in agent.test.ts).
  if (signal === 'SIGKILL') rmSync(socket, { force: true });
  agent = undefined;
}

async function change(service: 'db' | 'api'): Promise<string> {
  const value = canary(`${service}-${Object.keys(values).length}`);
  values[service] = value;
  if (service === 'db') vault.putSecret('app/db', { password: value });
  else vault.putSecret('app/api', { key: value });
  const r = await fetch('http://dso-agent/v1/webhook', { method: 'POST', unix: socket, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ secrets: [service === 'db' ? 'vault:app/db#password' : 'vault:app/api#key'] }) } as RequestInit);
  expect(r.status).toBe(202);
  return value;
}

/** Why the last check of the end state failed, for the timeout message. */
let notYet = '';

/** The end state every scenario must reach, checked together. */
async function converged(): Promise<boolean> {
  const no = (why: string) => {
    notYet = why;
    return false;
  };
  const names = (await dockerOk(['ps', '-a', '--format', '{{.Names}} {{.State}}', '--filter', `label=com.docker.compose.project=${project}`])).split('\n').filter(Boolean).sort();
  if (JSON.stringify(names) !== JSON.stringify([`${project}-api-1 running`, `${project}-db-1 running`])) {
    const details = await Promise.all(names.filter((n) => !n.endsWith(' running')).map(async (n) => `${n}: ${(await dockerOk(['inspect', '-f', '{{.State.ExitCode}} {{.State.Error}} restarts={{.RestartCount}} policy={{.HostConfig.RestartPolicy.Name}}', n.split(' ')[0]!])).trim()} logs: ${(await dockerOk(['logs', '--tail', '3', n.split(' ')[0]!]).catch(() => '')).trim()}`));
    return no(`containers: ${names.join(', ')} ${details.join('; ')}`);
  }
  if ((await dockerOk(['inspect', '-f', '{{.State.Health.Status}}', `${project}-db-1`])).trim() !== 'healthy') return no('db not healthy');
  if ((await dockerOk(['exec', `${project}-db-1`, 'cat', '/run/secrets/vault/app/db#password'])) !== values.db) return no('db not on the newest value');
  if ((await dockerOk(['exec', `${project}-api-1`, 'cat', '/run/secrets/vault/app/api#key'])) !== values.api) return no('api not on the newest value');
  // Every secret volume is either a base one or mounted by a container; every holder holds one in use.
  const mounted = new Set(
    (await dockerOk(['ps', '-q', '--filter', `label=com.docker.compose.project=${project}`]))
      .split('\n')
      .filter(Boolean)
      .map(async (cid) => JSON.parse(await dockerOk(['inspect', '-f', '{{json .Mounts}}', cid])) as Array<{ Name?: string }>),
  );
  const used = new Set((await Promise.all([...mounted])).flat().map((m) => m.Name));
  const volumes = (await dockerOk(['volume', 'ls', '--format', '{{.Name}} {{.Labels}}', '--filter', `label=dso.project=${project}`])).split('\n').filter(Boolean);
  for (const v of volumes) {
    const [name] = v.split(' ');
    if (!v.includes('dso.generation=base') && !used.has(name)) return no(`orphaned volume ${name}`);
  }
  const holders = (await dockerOk(['ps', '-a', '--format', '{{.Names}}', '--filter', 'label=dso.role=holder', '--filter', `label=dso.project=${project}`])).split('\n').filter(Boolean);
  if (holders.length > 3) return no(`holders: ${holders.join(', ')}`);
  const all = await dockerOk(['ps', '-a', '--format', '{{.Names}}']);
  if (all.includes('-dso-')) return no(`leftovers: ${all.split('\n').filter((n) => n.includes('-dso-')).join(', ')}`);
  return true;
}

beforeAll(async () => {
  sb = sandbox('rotation-crash');
  project = projectOf(sb);
  vault = await startFakeVault();
  token = vault.createToken({ root: true });
  values.db = canary('db-initial');
  values.api = canary('api-initial');
  vault.putSecret('app/db', { password: values.db });
  vault.putSecret('app/api', { key: values.api });
  writeFiles(sb.dir, { 'compose.yaml': COMPOSE, 'agent.yaml': CONFIG(vault.url) });
  socket = join(sb.dir, 'run', 'dso.sock');
  await startAgent();
  const up = await dso(sb, ['up', '-d', '--wait'], { env: { DSO_MODE: 'cloud', DSO_AGENT_SOCKET: socket } });
  expect(up.code, up.stderr).toBe(0);
  await killAgent('SIGTERM');
});

afterAll(async () => {
  await killAgent('SIGKILL').catch(() => {});
  await startAgent().catch(() => {});
  await dso(sb, ['down'], { env: { DSO_MODE: 'cloud', DSO_AGENT_SOCKET: socket } }).catch(() => {});
  await killAgent('SIGTERM').catch(() => {});
  vault?.stop();
  sb.cleanup();
});

const ROLLING = ['planned', 'volumes-ready', 'created', 'started', 'healthy', 'original-renamed', 'swapped', 'original-stopped', 'original-removed'];
const RESTART = ['original-stopped', 'original-renamed', 'created', 'started', 'healthy', 'original-removed'];

describe('SIGKILL at every step, then a fresh agent converges by itself', () => {
  for (const [service, steps, strategy] of [['db', ROLLING, 'rolling'], ['api', RESTART, 'restart']] as const) {
    for (const step of steps) {
      test(`${strategy}: killed at ${step}`, async () => {
        await startAgent(step);
        await change(service);
        await until(`the pause at ${step}`, async () => agent!.log.join('').includes(`"step":"${step}"`) && agent!.log.join('').includes('Paused at a rotation step'));
        await killAgent('SIGKILL');
        await startAgent();
        await until('convergence', converged, 90_000);
        await killAgent('SIGTERM');
      });
    }
  }
});

describe('the engine restarts in the middle of a rotation', () => {
  test('while db\'s new container waits for health, the engine restarts; the running agent reconnects and converges', async () => {
    await startAgent();
    // A slow start: the new container takes 4 s to become healthy, time enough to pull the rug.
    const composeSlow = COMPOSE.replace('SLOW: "0"', 'SLOW: "4"');
    writeFiles(sb.dir, { 'compose.yaml': composeSlow });
    const up = await dso(sb, ['up', '-d', '--wait'], { env: { DSO_MODE: 'cloud', DSO_AGENT_SOCKET: socket } });
    expect(up.code, up.stderr).toBe(0);
    await change('db');
    await until('the rotation to start', async () => agent!.log.join('').includes('"strategy":"rolling"') && agent!.log.join('').split('Rotation started').length > 1);
    await Bun.sleep(1500);
    await restartEngine();
    await until('the agent to reconnect', async () => agent!.log.join('').includes('Reconnected to the Docker engine'), 60_000);
    await until('convergence after the engine restart', converged, 120_000);
    await killAgent('SIGTERM');
  });
});
