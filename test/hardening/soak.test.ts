// The rotation soak: for DSO_HARDENING_SOAK_SECONDS (600 under `npm run test:hardening`, 60 by
// default), secrets change at a Vault backend again and again while the compiled agent rotates a
// compose project that uses every strategy (rolling with replicas and a health check, restart,
// signal; dsofile:// and dso://; depends_on), and the agent is killed with SIGKILL at random
// moments (right after a change, in the middle of rotations, twice in a row, during quiet time)
// and started again. At the end the agent is restarted once more and must converge by itself:
// every replica of every service serves the newest value of each of its secrets and no older
// one, exactly the expected containers exist, running, healthy and seen by Compose, no rotation
// is left unfinished, no holder or secret volume outlives its use, and no value is in the agent's
// logs or metrics, in a label, or on disk. The schedule comes from a seeded PRNG whose seed is
// printed (DSO_HARDENING_SOAK_SEED replays it, as far as the machine's timing allows).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { startFakeVault, type FakeVault } from '../fakes/vault/server.ts';
import { DATA_ROOT, DOCKER_HOST, DSO_BIN, TEST_ROOT, canary, docker, dockerOk, waitFor, dso, projectOf, sandbox, scanForLeaks, writeFiles, type Sandbox } from '../integration/support.ts';

const SOAK_MS = Number(process.env.DSO_HARDENING_SOAK_SECONDS ?? 60) * 1000;
const SEED = Number(process.env.DSO_HARDENING_SOAK_SEED ?? Math.floor(Math.random() * 2 ** 31));
/** Time for the final convergence: rotations of every container, on a busy two-core machine. */
const CONVERGE_MS = 6 * 60_000;

/** mulberry32: a small seeded PRNG, so a failing schedule can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rnd = prng(SEED);
const between = (lo: number, hi: number) => Math.floor(lo + rnd() * (hi - lo));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;

// Three secrets, two of them through a provider in a Worker (vault) and one through a provider
// in a child process (vaultp, isolation: process), both on the same fake Vault.
const SECRETS = {
  'vault:app/db#password': { path: 'app/db', field: 'password' },
  'vault:app/api#key': { path: 'app/api', field: 'key' },
  'vaultp:app/shared#token': { path: 'app/shared', field: 'token' },
} as const;
type SecretId = keyof typeof SECRETS;
const IDS = Object.keys(SECRETS) as SecretId[];

// db: rolling blue-green, two replicas, behind a HEALTHCHECK that needs a canary-shaped password.
// worker: signal (files replaced in place, then SIGHUP). api: a dso:// variable, so restart;
// depends on db. web: rolling, two replicas, a probe from a label, depends on api. cache:
// restart by label.
const COMPOSE = `
services:
  db:
    image: dso-test/busybox:latest
    init: true
    command: ["sleep", "36000"]
    deploy: { replicas: 2 }
    healthcheck: { test: ["CMD-SHELL", "grep -q '^DSOCANARY_' /run/secrets/vault/app/db#password"], interval: 1s, timeout: 2s, retries: 3 }
    environment:
      DB_PASSWORD_FILE: dsofile://vault:app/db#password
    labels: { dso.strategy: rolling }
  worker:
    image: dso-test/busybox:latest
    init: true
    command: ["sh", "-c", "trap 'echo reloaded' HUP; echo started; while :; do sleep 1 & wait $$!; done"]
    environment:
      DB_PASSWORD_FILE: dsofile://vault:app/db#password
      TOKEN_FILE: dsofile://vaultp:app/shared#token
    labels: { dso.strategy: signal }
  api:
    image: dso-test/busybox:latest
    init: true
    command: ["sleep", "36000"]
    depends_on: [db]
    environment:
      DB_PASSWORD_FILE: dsofile://vault:app/db#password
      API_KEY: dso://vault:app/api#key
  web:
    image: dso-test/busybox:latest
    init: true
    command: ["sleep", "36000"]
    deploy: { replicas: 2 }
    depends_on: [api]
    environment:
      API_KEY_FILE: dsofile://vault:app/api#key
      TOKEN_FILE: dsofile://vaultp:app/shared#token
    labels:
      dso.strategy: rolling
      dso.healthcheck.cmd: "test -s /run/secrets/vault/app/api#key"
  cache:
    image: dso-test/busybox:latest
    init: true
    command: ["sleep", "36000"]
    environment:
      TOKEN_FILE: dsofile://vaultp:app/shared#token
    labels: { dso.strategy: restart }
`;

/** What the end state must be: replicas per service, and the secrets each one uses. */
const EXPECTED: Record<string, { replicas: number; ids: SecretId[]; healthcheck: boolean }> = {
  db: { replicas: 2, ids: ['vault:app/db#password'], healthcheck: true },
  worker: { replicas: 1, ids: ['vault:app/db#password', 'vaultp:app/shared#token'], healthcheck: false },
  api: { replicas: 1, ids: ['vault:app/api#key', 'vault:app/db#password'], healthcheck: false },
  web: { replicas: 2, ids: ['vault:app/api#key', 'vaultp:app/shared#token'], healthcheck: false },
  cache: { replicas: 1, ids: ['vaultp:app/shared#token'], healthcheck: false },
};

const config = (url: string) => `providers:
  vault:
    addr: ${url}
    auth: { method: token, token_env: VAULT_TOKEN }
  vaultp:
    type: vault
    isolation: process
    addr: ${url}
    auth: { method: token, token_env: VAULT_TOKEN }
agent:
  watch: { polling_interval: 4s, debounce_window: 500ms }
  health_check: { timeout: 60s, interval: 1s, retries: 3 }
  cache: { ttl: 1s }
  rotation: { strategy: restart, jitter: 0s, concurrency: 3 }
`;

let sb: Sandbox;
let project: string;
let vault: FakeVault;
let token: string;
let socket: string;
let logDir: string;
let failed = false;

const latest = new Map<SecretId, string>();
const older = new Set<string>();
/** Every value each secret had, oldest first. */
const history = new Map<SecretId, string[]>(IDS.map((id) => [id, []]));
/** The one secret delivered as a dso:// variable (to api), which the engine stores in its configuration. */
const ENV_ID: SecretId = 'vault:app/api#key';
const counts = { changes: 0, webhooks: 0, kills: 0, doubleKills: 0, agentRuns: 0 };

interface AgentRun {
  n: number;
  proc: ReturnType<typeof Bun.spawn>;
  text: string[];
  file: WriteStream;
  done: Promise<void>;
  metricsUrl?: string;
}
let agent: AgentRun | undefined;
/** Every run's output, for the leak check and the counts. */
const runs: AgentRun[] = [];
/** Provider processes of killed agents: each must end by itself (its parent's pipes closed). */
const orphanCandidates: number[] = [];
const BIN = realpathSync(DSO_BIN);

function setSecret(id: SecretId): string {
  const value = canary(`soak${counts.changes}`);
  const previous = latest.get(id);
  if (previous) older.add(previous);
  latest.set(id, value);
  history.get(id)!.push(value);
  vault.putSecret(SECRETS[id].path, { [SECRETS[id].field]: value });
  counts.changes++;
  return value;
}

async function startAgent(): Promise<AgentRun> {
  const n = ++counts.agentRuns;
  const proc = Bun.spawn([DSO_BIN, 'agent', '--config', join(sb.dir, 'agent.yaml'), '--socket', socket, '--metrics-address', '127.0.0.1:0', '--state-dir', join(sb.dir, 'state')], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', VAULT_TOKEN: token, DOCKER_HOST },
    stdout: 'ignore',
    stderr: 'pipe',
  });
  const run: AgentRun = { n, proc, text: [], file: createWriteStream(join(logDir, `agent-${String(n).padStart(3, '0')}.log`)), done: Promise.resolve() };
  run.done = (async () => {
    for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) {
      const text = new TextDecoder().decode(chunk);
      run.text.push(text);
      run.file.write(text);
      run.metricsUrl ??= /"metrics":"(http:[^"]+)"/.exec(text)?.[1];
    }
    run.file.end();
  })();
  runs.push(run);
  agent = run;
  await until(`agent run ${n} to answer`, async () => (await fetch('http://dso-agent/v1/health', { unix: socket } as RequestInit)).ok, 30_000);
  return run;
}

/** The processes of the binary whose parent is `pid` (the agent's providers with isolation: process). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid && realpathSync(`/proc/${p}/exe`) === BIN) out.push(Number(p));
    } catch {}
  }
  return out;
}

/** Whether `pid` still runs the binary (and is not a reused pid). */
function runsBinary(pid: number): boolean {
  try {
    return realpathSync(`/proc/${pid}/exe`) === BIN;
  } catch {
    return false;
  }
}

async function killAgent(): Promise<void> {
  if (!agent) return;
  orphanCandidates.push(...childrenOf(agent.proc.pid));
  agent.proc.kill('SIGKILL');
  await agent.proc.exited;
  await agent.done;
  agent = undefined;
  counts.kills++;
}

async function webhook(ids: SecretId[]): Promise<void> {
  // The agent may be down (killed a moment ago): then its next start finds the change itself.
  try {
    const r = await fetch('http://dso-agent/v1/webhook', { method: 'POST', unix: socket, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ secrets: ids }), signal: AbortSignal.timeout(10_000) } as RequestInit);
    if (r.status === 202) counts.webhooks++;
  } catch {}
}

function until(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  return waitFor(what, check, { ms, everyMs: 500, hangMs: 30_000, context: () => notYet });
}

/** Log lines of every run, parsed. */
function logLines(): Array<Record<string, unknown> & { msg: string; run: number }> {
  const out: Array<Record<string, unknown> & { msg: string; run: number }> = [];
  for (const r of runs) {
    for (const line of r.text.join('').split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push({ ...(JSON.parse(line) as { msg: string }), run: r.n });
      } catch {}
    }
  }
  return out;
}

interface Inspect {
  Id: string;
  Name: string;
  State: { Running: boolean; Status: string; Health?: { Status: string } };
  Config: { Labels: Record<string, string>; Env: string[] };
  Mounts: Array<{ Type: string; Name?: string; Destination: string }>;
}

async function inspectAll(ids: string[]): Promise<Inspect[]> {
  if (ids.length === 0) return [];
  return JSON.parse(await dockerOk(['inspect', ...ids])) as Inspect[];
}

async function projectContainers(): Promise<Inspect[]> {
  const ids = (await dockerOk(['ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`])).split('\n').filter(Boolean);
  return inspectAll(ids);
}

/** Why the last convergence check failed, for the time-out message. */
let notYet = '';

/**
 * Everything the end state must be, checked from the engine (and the state file), returning what
 * is still wrong, or nothing. Used to wait for convergence and then, once more, as the assertion.
 */
async function problems(): Promise<string[]> {
  const out: string[] = [];
  const containers = await projectContainers();
  // Exactly the expected containers, under Compose's names, running, healthy where they have a check.
  const expectedNames = Object.entries(EXPECTED)
    .flatMap(([s, e]) => Array.from({ length: e.replicas }, (_, i) => `${project}-${s}-${i + 1}`))
    .sort();
  const names = containers.map((c) => c.Name.replace(/^\//, '')).sort();
  if (JSON.stringify(names) !== JSON.stringify(expectedNames)) out.push(`containers are [${names.join(', ')}], expected [${expectedNames.join(', ')}]`);
  for (const c of containers) {
    const name = c.Name.replace(/^\//, '');
    const labels = c.Config.Labels;
    const service = labels['com.docker.compose.service'] ?? '';
    const e = EXPECTED[service];
    if (!e) {
      out.push(`${name}: unknown service ${service}`);
      continue;
    }
    if (!c.State.Running) out.push(`${name}: ${c.State.Status}`);
    if (e.healthcheck && c.State.Health?.Status !== 'healthy') out.push(`${name}: health ${c.State.Health?.Status}`);
    if (name !== `${project}-${service}-${labels['com.docker.compose.container-number']}`) out.push(`${name}: container-number label ${labels['com.docker.compose.container-number']}`);
    for (const l of ['com.docker.compose.project', 'com.docker.compose.config-hash', 'com.docker.compose.oneoff', 'dso.managed', 'dso.versions']) if (!labels[l]) out.push(`${name}: label ${l} missing`);
    if (!c.State.Running) continue;
    // Each secret: the file (and the dso:// variable) holds the newest value.
    for (const id of e.ids) {
      const [provider, rest] = [id.slice(0, id.indexOf(':')), id.slice(id.indexOf(':') + 1)];
      const want = latest.get(id)!;
      if (id === 'vault:app/api#key' && service === 'api') {
        const env = c.Config.Env.find((x) => x.startsWith('API_KEY='))?.slice('API_KEY='.length);
        if (env !== want) out.push(`${name}: API_KEY is ${describeValue(env)}, not the newest`);
        continue;
      }
      const r = await docker(['exec', c.Id, 'cat', `/run/secrets/${provider}/${rest}`]);
      if (r.stdout !== want) out.push(`${name}: ${id} is ${r.code === 0 ? describeValue(r.stdout) : `unreadable (${r.stderr.trim()})`}, not the newest`);
    }
  }
  if (out.length > 0) return out;
  // No rotation left unfinished.
  const state = readState();
  for (const r of state.rotations.filter((x) => x.status === 'in_progress' || x.status === 'stuck')) out.push(`rotation ${r.id} of ${r.container.name} is ${r.status} at ${r.step}`);
  // No leftover rotation container anywhere on the engine.
  const all = (await dockerOk(['ps', '-a', '--format', '{{.Names}}'])).split('\n').filter(Boolean);
  for (const n of all.filter((x) => x.includes('-dso-new-') || x.includes('-dso-old-'))) out.push(`leftover container ${n}`);
  // Holders and secret volumes: only the current generations. A secret volume is the base one
  // (named by the compose model) or mounted by a container; a holder holds one of those; every
  // mounted secret volume is held by a running holder (else a restart of its user empties it).
  const mounted = new Set(containers.flatMap((c) => c.Mounts.filter((m) => m.Type === 'volume' && m.Name).map((m) => m.Name!)));
  const volumes = (await dockerOk(['volume', 'ls', '--format', '{{.Name}}\t{{.Label "dso.generation"}}', '--filter', `label=dso.project=${project}`, '--filter', 'label=dso.role=secret-volume'])).split('\n').filter(Boolean).map((l) => l.split('\t') as [string, string]);
  for (const [v, generation] of volumes) if (generation !== 'base' && !mounted.has(v)) out.push(`secret volume ${v} (generation ${generation}) is used by no container`);
  const holderIds = (await dockerOk(['ps', '-aq', '--filter', 'label=dso.role=holder', '--filter', `label=dso.project=${project}`])).split('\n').filter(Boolean);
  const holders = await inspectAll(holderIds);
  const held = new Map<string, boolean>();
  for (const h of holders) {
    const vs = h.Mounts.filter((m) => m.Type === 'volume' && m.Name).map((m) => m.Name!);
    const base = vs.every((v) => volumes.find(([n]) => n === v)?.[1] === 'base');
    if (!base && !vs.some((v) => mounted.has(v))) out.push(`holder ${h.Name} holds only volumes nobody uses`);
    if (!h.State.Running) out.push(`holder ${h.Name} is ${h.State.Status}`);
    for (const v of vs) held.set(v, held.get(v) === true || h.State.Running);
  }
  for (const v of mounted) if (volumes.some(([n]) => n === v) && !held.get(v)) out.push(`secret volume ${v} is mounted but no running holder keeps it`);
  return out;
}

/** Which value this is, by its place in its secret's history: never the value itself. */
function describeValue(v: string | undefined): string {
  if (v === undefined) return 'missing';
  for (const [id, vs] of history) if (vs.includes(v)) return `value ${vs.indexOf(v) + 1} of ${vs.length} of ${id}`;
  return `something else (${v.length} bytes)`;
}

/** Marks the run failed (the sandbox and its logs are kept) when `fn` throws. */
function guarded(fn: () => Promise<void> | void): () => Promise<void> {
  return async () => {
    try {
      await fn();
    } catch (e) {
      failed = true;
      throw e;
    }
  };
}

interface StateRecord {
  id: string;
  status: string;
  step: string;
  container: { name: string };
}
function readState(): { rotations: StateRecord[] } {
  const path = join(sb.dir, 'state', 'rotations.json');
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as { rotations: StateRecord[] }) : { rotations: [] };
}

/** What a person needs to see when the soak fails: the last lines of the last runs, the engine's view. */
async function diagnose(): Promise<void> {
  failed = true;
  console.error(`soak seed ${SEED}; logs in ${logDir}`);
  for (const r of runs.slice(-3)) console.error(`--- agent run ${r.n}, last lines:\n${r.text.join('').split('\n').slice(-40).join('\n')}`);
  console.error(`--- docker ps -a:\n${(await docker(['ps', '-a', '--format', '{{.Names}}\t{{.Status}}'])).stdout}`);
  console.error(`--- unfinished rotations: ${JSON.stringify(readState().rotations.filter((x) => x.status !== 'done'))}`);
}

beforeAll(async () => {
  sb = sandbox('soak');
  project = projectOf(sb);
  logDir = join(sb.dir, 'logs');
  mkdirSync(logDir, { recursive: true });
  vault = await startFakeVault();
  token = vault.createToken({ root: true });
  for (const id of IDS) setSecret(id);
  counts.changes = 0;
  writeFiles(sb.dir, { 'compose.yaml': COMPOSE, 'agent.yaml': config(vault.url) });
  socket = join(sb.dir, 'run', 'dso.sock');
  console.log(`rotation soak: ${SOAK_MS / 1000} s, seed ${SEED} (DSO_HARDENING_SOAK_SEED=${SEED} replays the schedule)`);
  await startAgent();
  const up = await dso(sb, ['up', '-d', '--wait'], { env: { DSO_MODE: 'cloud', DSO_AGENT_SOCKET: socket } });
  expect(up.code, up.stderr).toBe(0);
});

afterAll(async () => {
  await killAgent().catch(() => {});
  await startAgent().catch(() => {});
  await dso(sb, ['down', '-t', '1'], { env: { DSO_MODE: 'cloud', DSO_AGENT_SOCKET: socket } }).catch(() => {});
  if (agent) {
    agent.proc.kill('SIGTERM');
    await agent.proc.exited;
  }
  vault?.stop();
  // Kept after a failure: the agent's logs (JSON, one file per run) are what explains it.
  if (!failed) sb.cleanup();
});

describe('rotation soak: the agent killed at random moments', () => {
  test(
    'changes and SIGKILLs until the deadline',
    guarded(async () => {
      const deadline = Date.now() + SOAK_MS;
      const modes = ['right-after-change', 'during-rotation', 'during-rotation', 'twice', 'quiet', 'none'] as const;
      while (Date.now() < deadline) {
        const changed = IDS.filter(() => rnd() < 0.5);
        if (changed.length === 0) changed.push(pick(IDS));
        for (const id of changed) setSecret(id);
        // Half by webhook, half left to the agent's polling (or its next start's drift check).
        if (rnd() < 0.5) await webhook(changed);
        const mode = pick(modes);
        if (mode === 'right-after-change') await Bun.sleep(between(0, 400));
        else if (mode === 'during-rotation' || mode === 'twice') await Bun.sleep(between(500, 9000));
        else if (mode === 'quiet') await until('the rotations to settle', async () => (await problems()).length === 0, 90_000).catch(() => {});
        if (mode !== 'none' && agent) {
          await killAgent();
          await Bun.sleep(between(0, 1500));
          await startAgent();
          if (mode === 'twice') {
            // Again while the new run recovers what the last one left.
            await Bun.sleep(between(0, 3000));
            await killAgent();
            counts.doubleKills++;
            await startAgent();
          }
        }
        await Bun.sleep(between(0, 5000));
      }
    }),
    SOAK_MS + 15 * 60_000,
  );

  test(
    'a last restart: the agent converges by itself, every replica on the newest value',
    guarded(async () => {
      try {
        await killAgent();
        await startAgent();
        await until(
          'convergence',
          async () => {
            const p = await problems();
            notYet = p.slice(0, 6).join('; ');
            return p.length === 0;
          },
          CONVERGE_MS,
        );
        // Quiescent: the state shows nothing under way, and a check a moment later still agrees.
        await Bun.sleep(3000);
        expect(await problems()).toEqual([]);
      } catch (e) {
        await diagnose();
        throw e;
      }
    }),
    CONVERGE_MS + 120_000,
  );

  test('no provider process outlived the agent that was killed', guarded(async () => {
    expect(orphanCandidates.length).toBeGreaterThan(0);
    await until('the killed agents\' provider processes to end', async () => orphanCandidates.every((pid) => !runsBinary(pid)), 30_000).catch(() => {});
    expect(orphanCandidates.filter(runsBinary)).toEqual([]);
  }));

  test('Compose sees each service with its replicas', guarded(async () => {
    const ps = (await dockerOk(['compose', '-p', project, 'ps', '--format', '{{.Service}} {{.State}}'])).split('\n').filter(Boolean).sort();
    const expected = Object.entries(EXPECTED)
      .flatMap(([s, e]) => Array.from({ length: e.replicas }, () => `${s} running`))
      .sort();
    expect(ps).toEqual(expected);
  }));

  test('no older value anywhere in a container: files, environment, inspect', guarded(async () => {
    const all = [...older];
    const containers = await projectContainers();
    const holders = (await dockerOk(['ps', '-q', '--filter', 'label=dso.role=holder', '--filter', `label=dso.project=${project}`])).split('\n').filter(Boolean);
    for (const c of containers) {
      const inside = await dockerOk(['exec', c.Id, 'sh', '-c', 'find /run/secrets -type f -exec cat {} + 2>/dev/null; env']);
      const inspect = JSON.stringify(c);
      for (const v of all) {
        expect(inside.includes(v) ? `${c.Name} holds an older value in a file or variable` : '').toBe('');
        expect(inspect.includes(v) ? `${c.Name}'s inspect shows an older value` : '').toBe('');
      }
      // File secrets never show in inspect; the dso:// one does, as documented.
      for (const [id, v] of latest) if (id !== 'vault:app/api#key') expect(inspect.includes(v) ? `${c.Name}'s inspect shows ${id}` : '').toBe('');
    }
    // The holders' volumes (what Compose mounts into a new replica) hold no older value either.
    for (const h of holders) {
      const vols = (JSON.parse(await dockerOk(['inspect', '-f', '{{json .Mounts}}', h])) as Array<{ Name?: string }>).map((m) => m.Name).filter(Boolean) as string[];
      for (const v of vols) {
        // One line per file: its path, a tab, its content (canaries hold no line breaks).
        const r = await docker(['run', '--rm', '--network', 'none', '-v', `${v}:/v:ro`, 'dso-test/busybox:latest', 'sh', '-c', 'find /v -type f | while read -r f; do printf "%s\\t" "$f"; cat "$f"; echo; done']);
        for (const line of r.stdout.split('\n').filter(Boolean)) {
          const [path, content] = line.split('\t') as [string, string];
          expect(older.has(content) ? `secret volume ${v} holds ${describeValue(content)} in ${path}` : '').toBe('');
          expect(path.includes('/.dso-staging') ? `secret volume ${v} keeps an unpublished staging file ${path}` : '').toBe('');
        }
      }
    }
  }));

  test('no value in the agent\'s output, its metrics, a label, or on disk', guarded(async () => {
    const values = [...older, ...latest.values()];
    const metrics = agent?.metricsUrl ? await (await fetch(agent.metricsUrl)).text() : '';
    expect(metrics).toContain('dso_rotation_total');
    for (const v of values) {
      expect(metrics.includes(v)).toBe(false);
      for (const r of runs) expect(r.text.join('').includes(v) ? `agent run ${r.n}'s output` : '').toBe('');
    }
    const labels = await dockerOk(['ps', '-a', '--format', '{{.Names}} {{.Labels}}']);
    for (const v of values) expect(labels.includes(v)).toBe(false);
    // The engine's data root (tmpfs mounts, RAM by design, are not crossed), the state, the work
    // directory, /tmp and /var/tmp (other engines' roots included: nothing of this run belongs there).
    // A dso:// value is in its container's configuration, which the engine keeps on disk (its
    // data and exec roots): documented, so those are not searched for it.
    const envValues = history.get(ENV_ID)!;
    const engineRoots = [DATA_ROOT, join(TEST_ROOT, 'exec')];
    const hits = [
      ...scanForLeaks([DATA_ROOT, sb.dir, '/tmp', '/var/tmp'], values.filter((v) => !envValues.includes(v))),
      ...scanForLeaks([sb.dir, '/tmp', '/var/tmp'], envValues, { skip: (p) => engineRoots.some((r) => p === r || p.startsWith(`${r}/`)) }),
    ];
    expect(hits).toEqual([]);
  }));

  test('the counts', guarded(() => {
    const lines = logLines();
    const count = (msg: string) => lines.filter((l) => l.msg === msg).length;
    const report = {
      seed: SEED,
      seconds: SOAK_MS / 1000,
      changes: counts.changes,
      webhooks: counts.webhooks,
      kills: counts.kills,
      doubleKills: counts.doubleKills,
      agentRuns: counts.agentRuns,
      rotationsCompleted: count('Rotation completed'),
      rollbacks: count('ROTATION ROLLBACK'),
      failed: count('Rotation failed'),
      recoveredForward: count('Recovered a rotation forward'),
      recoveredUndone: count('Recovered a rotation by undoing it'),
      stuck: count('Rotation needs a person'),
    };
    console.log(`rotation soak: ${JSON.stringify(report)}`);
    expect(report.kills).toBeGreaterThan(0);
    expect(report.rotationsCompleted).toBeGreaterThan(0);
    expect(report.stuck).toBe(0);
  }));
});
