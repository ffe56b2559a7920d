// The leak scan: one full life of a project with random canary values everywhere, then a search
// for every one of them in everything the run could have written or printed. Local Mode (init,
// secret set, up with dso:// and dsofile://, rotation by `secret set`, down), then Cloud Mode
// through the compiled agent against a Vault backend (up; rotation by signal, restart and rolling;
// the agent killed with SIGKILL in the middle of a rotation and started again; down). Old and new
// values are all kept as needles. Searched: the engine's data root and exec root, DSO_HOME (the
// encrypted vault for plaintext), the agent's state directory, the working directory, /tmp and
// /var/tmp; `docker inspect` of every container, volume and network; `docker compose config` and
// `docker dso compose config`; everything DSO printed; the agent's logs and metrics; `status
// --json` and `doctor --json`. File secrets: nowhere. `dso://` values: only where
// docs/security.md says (the container's environment in the engine's records). A control plants
// a leak and checks the scan finds it.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.ts';
import { ProviderError } from '../../src/providers/contract.ts';
import { ProviderSet } from '../../src/providers/resolver.ts';
import { startFakeVault, type FakeVault } from '../fakes/vault/server.ts';
import { DATA_ROOT, DOCKER_HOST, DSO_BIN, TEST_ROOT, canary, docker, dockerOk, waitFor, dso, projectObjects, projectOf, sandbox, scanForLeaks, writeFiles, type Hit, type RunResult, type Sandbox } from '../integration/support.ts';

let sb: Sandbox;
let project: string;
let vault: FakeVault;
let token: string;
let socket: string;
let metricsUrl = '';
let agent: { proc: ReturnType<typeof Bun.spawn>; log: string[] } | undefined;
/** Everything the agents wrote on stdout and stderr, across restarts. */
const agentOutput: string[] = [];
/** Everything DSO, Compose and the agent's endpoints printed or answered. */
const printed: string[] = [];

// Needles, by where they may legitimately be: file secrets nowhere; dso:// values in the
// engine's records of the containers they were given to.
const LOCAL_ENV = [canary('local-env-1'), canary('local-env-2')];
const LOCAL_FILE = [canary('local-file-1'), canary('local-file-2')];
const DB = [canary('db-0'), canary('db-1'), canary('db-2')];
const API_KEY = [canary('api-key-0'), canary('api-key-1')];
const FILE_SECRETS = () => [...LOCAL_FILE, ...DB];
const ENV_SECRETS = () => [...LOCAL_ENV, ...API_KEY];
const ALL = () => [...FILE_SECRETS(), ...ENV_SECRETS(), token];
/** A value also in the forms it travels in: base64 (plugin and frame bodies) and hex. */
const forms = (values: string[]) => values.flatMap((v) => [v, Buffer.from(v).toString('base64').replace(/=+$/, ''), Buffer.from(v).toString('hex')]);
const sha = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 16);

const LOCAL_COMPOSE = `
services:
  web:
    image: dso-test/busybox:latest
    init: true
    command: ["sleep", "3600"]
    environment:
      API_KEY: dso://app/api_key
      DB_PASSWORD_FILE: dsofile://app/db_password
`;

// db rolls blue-green behind its health check, worker is rewritten in place and sent SIGHUP,
// api is stopped and recreated (its dso:// variable can only change that way), and takes 3 s to
// become healthy: a rotation of api is under way long enough to stop the agent in its middle.
const CLOUD_COMPOSE = `
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
    command: ["sh", "-c", "trap 'echo reloaded $$(sha256sum < $$DB_PASSWORD_FILE | cut -c1-16)' HUP; while :; do sleep 1 & wait $$!; done"]
    environment:
      DB_PASSWORD_FILE: dsofile://vault:app/db#password
    labels: { dso.strategy: signal }
  api:
    image: dso-test/busybox:latest
    init: true
    command: ["sh", "-c", "sleep 3; touch /tmp/ready; exec sleep 3600"]
    healthcheck: { test: ["CMD-SHELL", "test -f /tmp/ready"], interval: 1s, timeout: 1s, retries: 2, start_period: 15s }
    environment:
      DB_PASSWORD_FILE: dsofile://vault:app/db#password
      API_KEY: dso://vault:app/api#key
    labels: { dso.strategy: restart }
`;

const agentConfig = () => `providers:
  vault:
    addr: ${vault.url}
    auth: { method: token, token_env: VAULT_TOKEN }
agent:
  watch: { polling_interval: 1h, debounce_window: 500ms }
  health_check: { timeout: 20s, interval: 1s, retries: 3 }
  cache: { ttl: 1s }
  rotation: { strategy: restart, jitter: 0s, timeout: 10m }
`;

const cloud = () => ({ DSO_MODE: 'cloud', DSO_AGENT_SOCKET: socket });

/**
 * Samples every process's command line on the host while the scenario runs: values never travel
 * in argv (to Compose, docker, the holder, a plugin), where any local user can read them.
 */
const argvSeen: string[] = [];
let argvSampler: ReturnType<typeof setTimeout> | undefined;
let argvSamples = 0;
function sampleArgv(): void {
  argvSeen.push(...argvHits(forms(ALL())));
  argvSamples++;
  // One pass reads every /proc/PID/cmdline: tens of ms on a busy host. Never two at once.
  argvSampler = setTimeout(sampleArgv, 200);
}

/** The command lines of the host's processes that hold one of `needles`. */
function argvHits(needles: string[]): string[] {
  const hits: string[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
    } catch {
      continue;
    }
    if (needles.some((n) => cmdline.includes(n))) hits.push(cmdline.replaceAll('\0', ' '));
  }
  return hits;
}

/** Runs DSO and keeps what it printed for the scan. */
async function dsoKept(args: string[], opts: Parameters<typeof dso>[2] = {}): Promise<RunResult> {
  const r = await dso(sb, args, opts);
  printed.push(`$ dso ${args.join(' ')}\n${r.stdout}\n${r.stderr}`);
  return r;
}

function until(what: string, check: () => Promise<boolean>, ms = 90_000): Promise<void> {
  return waitFor(what, check, { ms, context: () => `agent log tail:\n${(agent?.log.join('') ?? '').split('\n').slice(-12).join('\n')}` });
}

async function startAgent(pauseAt?: string): Promise<void> {
  const log: string[] = [];
  const proc = Bun.spawn([DSO_BIN, 'agent', '--config', join(sb.dir, 'agent.yaml'), '--socket', socket, '--metrics-address', '127.0.0.1:0', '--state-dir', join(sb.dir, 'agent-state')], {
    cwd: sb.dir,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', VAULT_TOKEN: token, DOCKER_HOST, ...(pauseAt ? { DSO_TEST_PAUSE_AT: pauseAt } : {}) },
    stdout: 'pipe',
    stderr: 'pipe',
  });
  for (const stream of [proc.stdout, proc.stderr] as ReadableStream<Uint8Array>[]) {
    void (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) {
        const text = decoder.decode(chunk, { stream: true });
        log.push(text);
        agentOutput.push(text);
        const m = /"metrics":"(http:[^"]+)"/.exec(text);
        if (m) metricsUrl = m[1]!;
      }
    })();
  }
  agent = { proc, log };
  await until('the agent socket', async () => existsSync(socket), 15_000);
}

async function stopAgent(signal: 'SIGKILL' | 'SIGTERM'): Promise<void> {
  if (!agent) return;
  agent.proc.kill(signal);
  await agent.proc.exited;
  if (signal === 'SIGKILL') rmSync(socket, { force: true });
  agent = undefined;
}

async function webhook(id: string): Promise<void> {
  const r = await fetch('http://dso-agent/v1/webhook', { method: 'POST', unix: socket, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ secrets: [id] }) } as RequestInit);
  expect(r.status).toBe(202);
}

async function metrics(): Promise<void> {
  printed.push(`metrics:\n${await (await fetch(metricsUrl)).text()}`);
}

/** `status --json` and `doctor --json`: complete reports (kept by dsoKept), whatever their verdict. */
async function reports(env: Record<string, string>): Promise<void> {
  const status = await dsoKept(['status', '--json'], { env });
  expect(status.code, status.stderr).toBe(0);
  expect(JSON.parse(status.stdout).docker.reachable).toBe(true);
  const doctor = await dsoKept(['doctor', '--json'], { env });
  expect(Array.isArray(JSON.parse(doctor.stdout).checks)).toBe(true);
}

const name = (service: string) => `${project}-${service}-1`;
const id = (service: string) => dockerOk(['inspect', '-f', '{{.Id}}', name(service)]).then((s) => s.trim());
const cat = (service: string, path: string) => dockerOk(['exec', name(service), 'cat', path]);
const envOf = (service: string, variable: string) => dockerOk(['exec', name(service), 'sh', '-c', `printf %s "$${variable}"`]);
const DB_PATH = '/run/secrets/vault/app/db#password';

/** Every service on the newest values, db healthy, and nothing left over from a rotation. */
async function converged(): Promise<boolean> {
  const names = (await dockerOk(['ps', '-a', '--format', '{{.Names}} {{.State}}', '--filter', `label=com.docker.compose.project=${project}`])).split('\n').filter(Boolean).sort();
  if (JSON.stringify(names) !== JSON.stringify(['api', 'db', 'worker'].map((s) => `${name(s)} running`))) return false;
  if ((await dockerOk(['inspect', '-f', '{{.State.Health.Status}}', name('db')])).trim() !== 'healthy') return false;
  for (const s of ['db', 'worker', 'api']) if ((await cat(s, DB_PATH)) !== DB.at(-1)) return false;
  if ((await envOf('api', 'API_KEY')) !== API_KEY.at(-1)) return false;
  return !(await dockerOk(['ps', '-a', '--format', '{{.Names}}'])).includes('-dso-');
}

/**
 * `docker inspect` of every container, volume and network of the project. File secrets and the
 * token appear nowhere; a dso:// value appears only in the environment of the container it was
 * given to, as the variable it was given as.
 */
async function checkInspect(envGiven: Record<string, Record<string, string>>): Promise<void> {
  const { containers, volumes } = await projectObjects(project);
  const networks = (await dockerOk(['network', 'ls', '-q', '--filter', `label=com.docker.compose.project=${project}`])).split('\n').filter(Boolean);
  expect(containers.length).toBeGreaterThan(0);
  expect(volumes.length).toBeGreaterThan(0);
  expect(networks.length).toBeGreaterThan(0);
  for (const c of JSON.parse(await dockerOk(['inspect', ...containers])) as Array<{ Name: string; Config: { Env: string[] | null; Labels: Record<string, string> } }>) {
    const service = c.Config.Labels['com.docker.compose.service'];
    const given = Object.entries((service && envGiven[service]) ?? {}).map(([k, v]) => `${k}=${v}`);
    const env = c.Config.Env ?? [];
    for (const g of given) expect(env).toContain(g);
    const rest = JSON.stringify({ ...c, Config: { ...c.Config, Env: env.filter((e) => !given.includes(e)) } });
    for (const v of forms(ALL())) expect(rest, `${c.Name} shows ${v}`).not.toContain(v);
  }
  const others = (await dockerOk(['volume', 'inspect', ...volumes])) + (await dockerOk(['network', 'inspect', ...networks]));
  for (const v of forms(ALL())) expect(others).not.toContain(v);
}

/**
 * Scans the engine's data root, its exec root (containerd's task bundles) and the sandbox while
 * containers run: file secrets nowhere (the disk beneath the tmpfs volumes included); a dso://
 * value only in the engine's records of a container: dockerd's config.v2.json, containerd's
 * metadata store, and the OCI spec of the running task (on a real host under /run, in RAM).
 */
function checkDiskWhileRunning(envNow: string[]): void {
  const roots = outermost([DATA_ROOT, join(TEST_ROOT, 'exec'), sb.dir]);
  const skip = (p: string) => p === join(sb.home, 'vault.enc');
  expect(scanForLeaks(roots, forms([...FILE_SECRETS(), token]), { skip })).toEqual([]);
  const hits = scanForLeaks(roots, forms(ENV_SECRETS()), { skip });
  for (const v of envNow) expect(hits.some((h) => h.needle === v && h.file.endsWith('/config.v2.json'))).toBe(true);
  for (const h of hits) expect(h.file).toMatch(ENGINE_RECORD);
}
/** The roots, without those inside another (TEST_ROOT is usually under /var/tmp): each file is read once. */
function outermost(roots: string[]): string[] {
  return roots.filter((r, i) => !roots.some((o, j) => j !== i && (r.startsWith(`${o}/`) || (r === o && j < i))));
}
const ENGINE_RECORD = /\/containers\/[0-9a-f]{64}\/config\.v2\.json$|\/containerd\/daemon\/io\.containerd\.metadata\.v1\.bolt\/meta\.db$|\/containerd\/daemon\/io\.containerd\.runtime\.v2\.task\/moby\/[0-9a-f]{64}\/config\.json$/;

beforeAll(async () => {
  sb = sandbox('leak-scan');
  project = projectOf(sb);
  socket = join(sb.dir, 'run', 'dso.sock');
  vault = await startFakeVault();
  token = vault.createToken({ root: true });
  vault.putSecret('app/db', { password: DB[0] });
  vault.putSecret('app/api', { key: API_KEY[0] });
  writeFiles(sb.dir, { 'local.yaml': LOCAL_COMPOSE, 'compose.yaml': CLOUD_COMPOSE, 'agent.yaml': agentConfig() });
  sampleArgv();
});

afterAll(async () => {
  clearTimeout(argvSampler);
  if (agent === undefined) await startAgent().catch(() => {});
  await dso(sb, ['down', '-t', '1'], { env: cloud() }).catch(() => {});
  await dso(sb, ['down', '-f', 'local.yaml', '-t', '1']).catch(() => {});
  await stopAgent('SIGTERM').catch(() => {});
  vault?.stop();
  sb.cleanup();
});

describe('one life of a project, with canaries everywhere', () => {
  test('Local Mode: init, secret set, up, rotation by secret set, down', async () => {
    expect((await dsoKept(['init'])).code).toBe(0);
    for (const [secret, value] of [['app/api_key', LOCAL_ENV[0]!], ['app/db_password', LOCAL_FILE[0]!]] as const) {
      const r = await dsoKept(['secret', 'set', secret], { input: `${value}\n` });
      expect(r.code, r.stderr).toBe(0);
    }
    const up = await dsoKept(['up', '-f', 'local.yaml', '-d', '--wait']);
    expect(up.code, up.stderr).toBe(0);
    expect(await envOf('web', 'API_KEY')).toBe(LOCAL_ENV[0]!);
    // secret set of a value a running container uses rotates it, here and now.
    for (const [secret, value] of [['app/db_password', LOCAL_FILE[1]!], ['app/api_key', LOCAL_ENV[1]!]] as const) {
      const r = await dsoKept(['secret', 'set', secret], { input: `${value}\n` });
      expect(r.code, r.stderr).toBe(0);
    }
    expect(await cat('web', '/run/secrets/app/db_password')).toBe(LOCAL_FILE[1]!);
    expect(await envOf('web', 'API_KEY')).toBe(LOCAL_ENV[1]!);
    await reports({});
    for (const args of [['secret', 'list'], ['rotate', 'app/db_password', '--dry-run'], ['compose', '-f', 'local.yaml', 'config'], ['compose', '-f', 'local.yaml', 'ps']]) {
      const r = await dsoKept(args);
      expect(r.code, r.stderr).toBe(0);
    }
    const plain = await docker(['compose', '-f', join(sb.dir, 'local.yaml'), 'config']);
    expect(plain.code, plain.stderr).toBe(0);
    printed.push(plain.stdout, plain.stderr);
    await checkInspect({ web: { API_KEY: LOCAL_ENV[1]! } });
    checkDiskWhileRunning([LOCAL_ENV[1]!]);
    const down = await dsoKept(['down', '-f', 'local.yaml', '-t', '1']);
    expect(down.code, down.stderr).toBe(0);
  });

  test('Cloud Mode: the agent serves up, then rotates by signal, rolling and restart in one change', async () => {
    await startAgent();
    const up = await dsoKept(['up', '-d', '--wait'], { env: cloud() });
    expect(up.code, up.stderr).toBe(0);
    const before = { db: await id('db'), worker: await id('worker'), api: await id('api') };
    vault.putSecret('app/db', { password: DB[1] });
    await webhook('vault:app/db#password');
    await until('every container on the new password', async () => (await cat('db', DB_PATH)) === DB[1] && (await cat('worker', DB_PATH)) === DB[1] && (await cat('api', DB_PATH)) === DB[1]);
    await until('the worker to reload', async () => (await docker(['logs', name('worker')])).stdout.includes(`reloaded ${sha(DB[1]!)}`));
    expect(await id('worker')).toBe(before.worker); // signal: in place
    expect(await id('db')).not.toBe(before.db); // rolling: a new container took over
    expect(await id('api')).not.toBe(before.api); // restart: recreated
    await metrics();
  });

  test('SIGTERM in the middle of a rotation: it finishes, then the agent exits at once', async () => {
    vault.putSecret('app/api', { key: API_KEY[1] });
    await webhook('vault:app/api#key');
    await until('the rotation of api to start', async () => agent!.log.join('').split('\n').some((l) => l.includes('"msg":"Rotation started"') && l.includes('vault:app/api#key')));
    const log = agent!.log;
    const proc = agent!.proc;
    // agent.rotation.timeout is 10 minutes: an agent that waited it out after its rotation ended
    // (as it did) would outlive this test's own time limit.
    await stopAgent('SIGTERM');
    expect(proc.exitCode).toBe(0);
    const lines = log.join('').split('\n');
    const stopping = lines.findIndex((l) => l.includes('"msg":"Agent stopping"'));
    const completed = lines.findIndex((l, i) => i > stopping && l.includes('"msg":"Rotation completed"') && l.includes(name('api')));
    expect(stopping).toBeGreaterThan(-1);
    expect(completed).toBeGreaterThan(stopping);
    expect(lines.findIndex((l) => l.includes('"msg":"Agent stopped"'))).toBeGreaterThan(completed);
    expect(await envOf('api', 'API_KEY')).toBe(API_KEY[1]!);
  });

  test('SIGTERM right after start, while it checks what changed: the agent still exits', async () => {
    await startAgent();
    // Found by this scenario (about one run in two): the check at start went on after the
    // providers had closed, started a new provider that nobody closed, and the agent never
    // exited. The test below pins the cause; this one shows the whole.
    const proc = agent!.proc;
    await stopAgent('SIGTERM');
    expect(proc.exitCode).toBe(0);
    await startAgent();
  });

  test('providers closed at stop cannot be started again by a late caller', async () => {
    const set = new ProviderSet(await parseConfig(agentConfig(), join(sb.dir, 'agent.yaml')), { env: { VAULT_TOKEN: token } });
    expect(set.host('vault').name).toBe('vault');
    await set.close();
    expect(() => set.host('vault')).toThrow(new ProviderError('unavailable', 'DSO is shutting its providers down'));
  });

  test('the agent killed with SIGKILL in the middle of a rotation; the next one finishes it', async () => {
    await stopAgent('SIGTERM');
    await startAgent('created');
    vault.putSecret('app/db', { password: DB[2] });
    await webhook('vault:app/db#password');
    await until('the pause', async () => agent!.log.join('').includes('Paused at a rotation step'));
    await stopAgent('SIGKILL');
    await startAgent();
    await until('convergence on the newest values', converged, 120_000);
    expect(agent!.log.join('')).toMatch(/Recovered a rotation/);
  });

  test('docker inspect, compose config, status, doctor and metrics show no file secret', async () => {
    await checkInspect({ api: { API_KEY: API_KEY.at(-1)! } });
    await reports(cloud());
    for (const args of [['compose', 'config'], ['rotate', 'vault:app/db#password', '--dry-run']]) {
      const r = await dsoKept(args, { env: cloud() });
      expect(r.code, r.stderr).toBe(0);
    }
    const plain = await docker(['compose', '-f', join(sb.dir, 'compose.yaml'), 'config']);
    expect(plain.code, plain.stderr).toBe(0);
    printed.push(plain.stdout, plain.stderr);
    printed.push(await (await fetch('http://dso-agent/v1/status', { unix: socket } as RequestInit)).text());
    await metrics();
    checkDiskWhileRunning([API_KEY.at(-1)!]);
  });

  test('down; the agent stops', async () => {
    const down = await dsoKept(['down', '-t', '1'], { env: cloud() });
    expect(down.code, down.stderr).toBe(0);
    expect(await projectObjects(project)).toEqual({ containers: [], volumes: [] });
    await metrics();
    await stopAgent('SIGTERM');
  });
});

describe('afterwards, no value anywhere', () => {
  test('no process had a value in its command line', () => {
    clearTimeout(argvSampler);
    expect(argvSamples).toBeGreaterThan(50);
    expect(argvSeen).toEqual([]);
  });

  test('nothing DSO printed, nor the agent\'s logs and metrics, holds any value or the token', () => {
    expect(printed.length).toBeGreaterThan(10);
    expect(agentOutput.join('')).toContain('Agent started');
    const text = printed.join('\n') + agentOutput.join('');
    for (const v of forms(ALL())) expect(text).not.toContain(v);
  });

  test('no value on disk: engine roots, DSO_HOME, agent state, working directory, /tmp, /var/tmp', () => {
    expect(existsSync(join(sb.dir, 'agent-state', 'rotations.json'))).toBe(true);
    expect(existsSync(join(sb.home, 'state', 'rotations.json'))).toBe(true);
    const hits: Hit[] = scanForLeaks(outermost([TEST_ROOT, sb.dir, sb.home, '/tmp', '/var/tmp']), forms([...FILE_SECRETS(), token]), { skip: (p) => p === join(sb.home, 'vault.enc') });
    expect(hits).toEqual([]);
    // With every container gone, what is left of a dso:// value is in containerd's metadata
    // store at most (freed pages of its database), and nowhere else.
    for (const h of scanForLeaks(outermost([TEST_ROOT, sb.dir, '/tmp', '/var/tmp']), forms(ENV_SECRETS()), { skip: (p) => p === join(sb.home, 'vault.enc') })) {
      expect(h.file).toMatch(/\/containerd\/daemon\/io\.containerd\.metadata\.v1\.bolt\/meta\.db$/);
    }
  });

  test('the encrypted vault holds no plaintext: no value, no secret name', () => {
    expect(scanForLeaks([join(sb.home, 'vault.enc')], [...forms([...LOCAL_ENV, ...LOCAL_FILE]), 'app/api_key', 'app/db_password'])).toEqual([]);
  });
});

describe('the scan itself', () => {
  test('finds a value planted on disk, in every form it searches for, in a command line, and copied into a container\'s tmpfs mount', async () => {
    const planted = canary('control');
    // One copy in base64 in a small file, one in plain text across the scanner's 1 MiB read boundary.
    const files = [join('/var/tmp', `dso-leak-control-${process.pid}-b64`), join('/var/tmp', `dso-leak-control-${process.pid}-deep`)] as const;
    try {
      writeFileSync(files[0], `x${Buffer.from(planted).toString('base64')}\n`);
      writeFileSync(files[1], Buffer.concat([Buffer.alloc((1 << 20) - 10), Buffer.from(planted), Buffer.alloc(100)]));
      const hits = scanForLeaks(['/var/tmp'], forms([planted]));
      expect(hits.map((h) => h.file).sort()).toEqual([...files].sort());
      expect(hits.find((h) => h.file === files[1])?.needle).toBe(planted);
    } finally {
      for (const f of files) rmSync(f, { force: true });
    }
    const proc = Bun.spawn(['sh', '-c', 'sleep 30', 'sh', planted], { stdout: 'ignore', stderr: 'ignore' });
    try {
      // The shell may briefly run twice (forked, not yet exec'd), and may not have started yet:
      // wait for it, and compare the distinct command lines found.
      await waitFor('the planted command line', async () => argvHits([planted]).length > 0, { ms: 10_000, everyMs: 50 });
      expect([...new Set(argvHits([planted]))]).toEqual([`sh -c sleep 30 sh ${planted} `]);
    } finally {
      proc.kill('SIGKILL');
      await proc.exited;
    }
    const c = `dso-leak-control-${process.pid}`;
    await dockerOk(['run', '-d', '--name', c, '--network', 'none', '--tmpfs', '/run/secrets', 'dso-test/busybox:latest', 'sleep', '60']);
    try {
      writeFileSync(join(sb.dir, 'control.txt'), planted);
      await dockerOk(['cp', join(sb.dir, 'control.txt'), `${c}:/run/secrets/control.txt`]);
      rmSync(join(sb.dir, 'control.txt'));
      expect(scanForLeaks([TEST_ROOT], [planted]).some((h) => h.file.includes('/overlay2/'))).toBe(true);
    } finally {
      await docker(['rm', '-f', c]);
    }
  });
});
