// The agent's rotation state on a full disk, with the compiled agent, the real engine and
// Compose: its --state-dir is a small tmpfs, filled before a rotation and in the middle of one.
// The agent stays up and says why it cannot rotate, the state file is never cut or corrupted,
// the container keeps serving its last value, and once space returns the newest value is
// rotated in with nothing left over.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startFakeVault, type FakeVault } from '../../fakes/vault/server.ts';
import { canary, dockerOk, spawnAgent, waitFor, dso, projectOf, sandbox, writeFiles, type Sandbox } from '../../integration/support.ts';
import { mountSmallDisk, type SmallDisk } from './full-disk.ts';

let sb: Sandbox;
let project: string;
let vault: FakeVault;
let token: string;
let disk: SmallDisk;
let socket: string;
let agent: ReturnType<typeof Bun.spawn>;
const agentLog: string[] = [];
const values: string[] = [];

// db rolls blue-green behind a health check that passes only after SLOW seconds, so the
// rotation waits long enough for the disk to fill under it.
const COMPOSE = `
services:
  db:
    image: dso-test/busybox:latest
    init: true
    command: ["sh", "-c", "sleep 3; touch /tmp/ready; exec sleep 3600"]
    healthcheck: { test: ["CMD-SHELL", "test -f /tmp/ready && grep -q '^DSOCANARY_' /run/secrets/vault/app/db#password"], interval: 1s, timeout: 10s, retries: 5, start_period: 60s }
    environment:
      DB_PASSWORD_FILE: dsofile://vault:app/db#password
    labels: { dso.strategy: rolling }
`;

const cloud = () => ({ DSO_MODE: 'cloud', DSO_AGENT_SOCKET: socket });
const log = () => agentLog.join('');
const stateFile = () => join(disk.dir, 'rotations.json');
const file = () => dockerOk(['exec', `${project}-db-1`, 'cat', '/run/secrets/vault/app/db#password']);

function until(what: string, check: () => Promise<boolean>, ms = 90_000): Promise<void> {
  return waitFor(what, check, { ms, context: () => `agent log tail:\n${log().split('\n').slice(-15).join('\n')}` });
}

async function change(): Promise<string> {
  const value = canary(`df${values.length}`);
  values.push(value);
  vault.putSecret('app/db', { password: value });
  const r = await fetch('http://dso-agent/v1/webhook', { method: 'POST', unix: socket, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ secrets: ['vault:app/db#password'] }) } as RequestInit);
  expect(r.status).toBe(202);
  return value;
}

/** The state file parses, and what it says is whole: every record has its steps. */
function stateIsWhole(): { rotations: Array<{ status: string; step: string }> } {
  if (!existsSync(stateFile())) return { rotations: [] };
  const state = JSON.parse(readFileSync(stateFile(), 'utf8'));
  expect(state.version).toBe(1);
  for (const r of state.rotations) expect(r.history.length).toBeGreaterThan(0);
  return state;
}

/** One db container, healthy, on the newest value; no shadow, no -old, no orphaned volume. */
async function converged(): Promise<boolean> {
  const names = (await dockerOk(['ps', '-a', '--format', '{{.Names}}', '--filter', `label=com.docker.compose.project=${project}`])).split('\n').filter(Boolean);
  if (JSON.stringify(names) !== JSON.stringify([`${project}-db-1`])) return false;
  if ((await dockerOk(['inspect', '-f', '{{.State.Health.Status}}', `${project}-db-1`])).trim() !== 'healthy') return false;
  if ((await file()) !== values.at(-1)) return false;
  const all = await dockerOk(['ps', '-a', '--format', '{{.Names}}']);
  if (all.includes('-dso-')) return false;
  const holders = (await dockerOk(['ps', '-a', '--format', '{{.Names}}', '--filter', 'label=dso.role=holder', '--filter', `label=dso.project=${project}`])).split('\n').filter(Boolean);
  return holders.length <= 2;
}

beforeAll(async () => {
  sb = sandbox('disk-full-agent');
  project = projectOf(sb);
  disk = mountSmallDisk(join(sb.dir, 'state'), { size: '1m' });
  vault = await startFakeVault();
  token = vault.createToken({ root: true });
  values.push(canary('df-initial'));
  vault.putSecret('app/db', { password: values[0] });
  writeFiles(sb.dir, {
    'compose.yaml': COMPOSE,
    'agent.yaml': `providers:\n  vault:\n    addr: ${vault.url}\n    auth: { method: token, token_env: VAULT_TOKEN }\nagent:\n  watch: { polling_interval: 1h, debounce_window: 500ms }\n  cache: { ttl: 1s }\n  health_check: { timeout: 30s, interval: 1s, retries: 3 }\n  rotation: { strategy: restart, jitter: 0s }\n`,
  });
  socket = join(sb.dir, 'run', 'dso.sock');
  agent = spawnAgent({ config: join(sb.dir, 'agent.yaml'), socket, stateDir: disk.dir, env: { VAULT_TOKEN: token }, log: agentLog });
  await until('the agent socket', async () => existsSync(socket), 15_000);
  const up = await dso(sb, ['up', '-d', '--wait'], { env: cloud() });
  expect(up.code, up.stderr).toBe(0);
});

afterAll(async () => {
  disk?.free();
  await dso(sb, ['down', '-t', '1'], { env: cloud() }).catch(() => {});
  agent?.kill('SIGTERM');
  await agent?.exited;
  vault?.stop();
  disk?.unmount();
  sb?.cleanup();
});

describe('the agent\'s rotation state on a full disk', () => {
  test('full before a rotation: it fails clearly, nothing is rotated, the state is intact; with space back, the value is rotated in', async () => {
    const before = existsSync(stateFile()) ? readFileSync(stateFile()) : undefined;
    const id = (await dockerOk(['inspect', '-f', '{{.Id}}', `${project}-db-1`])).trim();
    disk.fill();
    const seen = log().split('ENOSPC').length;
    await change();
    await until('the failure in the log', async () => log().split('ENOSPC').length > seen);
    expect(log()).toContain(`cannot write the rotation state ${stateFile()} (ENOSPC); it keeps its previous content: free disk space there`);
    await Bun.sleep(1000);
    expect((await dockerOk(['inspect', '-f', '{{.Id}}', `${project}-db-1`])).trim()).toBe(id);
    expect(await file()).toBe(values[0]!);
    if (before) expect(readFileSync(stateFile())).toEqual(before);
    stateIsWhole();
    expect(agent.exitCode).toBeNull();

    disk.free();
    await change();
    await until('convergence on the newest value', converged);
    expect(stateIsWhole().rotations.some((r) => r.status === 'done')).toBe(true);
  });

  test('full in the middle of a rotation (while the new container waits for health): with space back, it converges', async () => {
    const seen = log().split('Rotation started').length;
    await change();
    await until('the rotation to start', async () => log().split('Rotation started').length > seen);
    disk.fill();
    // The rotation cannot record its next step: it must stop without corrupting the state.
    await until('the failure in the log', async () => /ENOSPC/.test(log().split('Rotation started').slice(seen).join('')));
    stateIsWhole();
    expect(agent.exitCode).toBeNull();
    disk.free();
    await change();
    await until('convergence on the newest value', converged, 120_000);
    // The rotation the full disk cut short was finished or undone, not left in progress.
    await until('no rotation left in progress', async () => stateIsWhole().rotations.every((r) => r.status !== 'in_progress'));
    expect(agent.exitCode).toBeNull();
  });
});
