// Scale on one host: as many real managed containers as the machine holds (500 by default,
// DSO_BENCH_SCALE_CONTAINERS), started by `dso up -d` through the compiled agent, then
//   (a) a Docker event storm: every managed container paused and unpaused, then restarted, while
//       unmanaged containers are created, started and removed beside them;
//   (b) a secret change that touches all of them (the webhook), rotated by the agent.
// Measured from outside the agent: its queue depth (sampled /v1/status), drops, time from event
// to handled (dso_event_handle_seconds on its /metrics), time for the change to reach every
// container, its resident memory (VmHWM, VmRSS) and CPU (utime+stime from /proc/PID/stat), and
// the engine's containers, holders and volumes before and after (nothing may be left over).
// Everything it makes is removed however it ends. Writes `${BENCH_OUT_DIR:-dist/bench}/scale.json`
// and prints a table. Knobs: DSO_BENCH_SCALE_CONTAINERS, DSO_BENCH_SCALE_STRATEGY (signal, restart
// or rolling; signal by default), DSO_BENCH_SCALE_CONCURRENCY (8), DSO_BENCH_SCALE_UNMANAGED (N/5),
// DSO_BENCH_SCALE_LOG=FILE (keep the agent's log there), DSO_BENCH_SCALE_KEEP=1 (keep the work
// directory after a failure).
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LocalVault } from '../../src/vault/vault.ts';
import { baseEnv, percentile, printRows, requireBin, row, writeResult, type Row } from './result.ts';

const BIN = requireBin();
const N = Number(process.env.DSO_BENCH_SCALE_CONTAINERS ?? 500);
const STRATEGY = process.env.DSO_BENCH_SCALE_STRATEGY ?? 'signal';
const CONCURRENCY = Number(process.env.DSO_BENCH_SCALE_CONCURRENCY ?? 8);
const UNMANAGED = Number(process.env.DSO_BENCH_SCALE_UNMANAGED ?? Math.ceil(N / 5));
const PER_SERVICE = 50;
const SERVICES = Math.max(1, Math.ceil(N / PER_SERVICE));
const IMAGE = process.env.DSO_TEST_IMAGE_BUSYBOX ?? 'dso-test/busybox:latest';
const PASS = 'scale-bench-passphrase';
const SECRET_FILE = '/run/secrets/home/bench/token';
const CLK_TCK = 100; // Linux's USER_HZ on every architecture Bun runs on
const enc = (s: string) => new TextEncoder().encode(s);

const dir = join(process.env.DSO_TEST_ROOT ?? '/var/tmp', `dso-bench-scale-${process.pid}`);
const project = `dsobenchscale${process.pid}`;
const unmanagedLabel = `dso.bench.scale=${process.pid}`;
mkdirSync(dir, { recursive: true });
const vaultPath = join(dir, 'vault.enc');
const socket = join(dir, 'dso.sock');
const stateDir = join(dir, 'state');
const cliEnv = baseEnv({ DSO_MODE: 'cloud', DSO_AGENT_SOCKET: socket });

function progress(msg: string): void {
  console.error(`[scale ${new Date().toISOString().slice(11, 19)}] ${msg}`);
}

function run(cmd: string[], opts: { allowFail?: boolean } = {}): string {
  const r = Bun.spawnSync(cmd, { cwd: dir, env: cliEnv, stdout: 'pipe', stderr: 'pipe' });
  if (r.exitCode !== 0 && !opts.allowFail) throw new Error(`${cmd.slice(0, 4).join(' ')}... failed (${r.exitCode}): ${r.stderr.toString().slice(-800)}`);
  return r.stdout.toString();
}

/** Runs `cmd`; with allowFail, returns how many lines of errors it printed instead of throwing. */
async function runAsync(cmd: string[], opts: { allowFail?: boolean } = {}): Promise<number> {
  const p = Bun.spawn(cmd, { cwd: dir, env: cliEnv, stdin: 'ignore', stdout: 'ignore', stderr: 'pipe' });
  const err = await new Response(p.stderr).text();
  if ((await p.exited) === 0) return 0;
  if (opts.allowFail) return lines(err).filter((l) => l.startsWith('Error')).length || 1;
  throw new Error(`${cmd.slice(0, 4).join(' ')}... failed: ${err.slice(-800)}`);
}

const lines = (s: string) => s.split('\n').filter(Boolean);
const docker = (...args: string[]) => lines(run(['docker', ...args]));
const appIds = () => docker('ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`, '--filter', 'label=dso.managed=true');

/** What DSO and this bench have on the engine: every container, DSO's holders, every volume. */
function engineCounts(): { containers: number; running: number; holders: number; volumes: number; secretVolumes: number } {
  return {
    containers: docker('ps', '-aq').length,
    running: docker('ps', '-q').length,
    holders: docker('ps', '-aq', '--filter', 'label=dso.role=holder').length,
    // The dso-bin volume (the holder program, shared by every project) is kept on purpose.
    volumes: docker('volume', 'ls', '-q').filter((v) => !v.startsWith('dso-bin-')).length,
    secretVolumes: docker('volume', 'ls', '-q', '--filter', 'label=dso.role=secret-volume').length,
  };
}

/**
 * Runs `cmd` on `args` in chunks, `parallel` commands at a time (one docker CLI per chunk), and
 * returns how many of them failed (the engine's pause fails now and then under load: "unable to
 * freeze"; the events that did happen are counted from the engine, so a failure skews nothing).
 */
async function inChunks(cmd: string[], args: string[], chunk: number, parallel: number): Promise<number> {
  const chunks: string[][] = [];
  for (let i = 0; i < args.length; i += chunk) chunks.push(args.slice(i, i + chunk));
  let next = 0;
  let failed = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < chunks.length && !stopping) failed += await runAsync([...cmd, ...chunks[next++]!], { allowFail: true });
    }),
  );
  return failed;
}

// ---- The agent, and what is sampled from it.

async function setSecret(value: string): Promise<void> {
  const v = await LocalVault.open(vaultPath, enc(PASS));
  await v.set('bench/token', enc(value));
  v.close();
}

const vault = await LocalVault.create(vaultPath, enc(PASS), { kdf: { memoryKiB: 1024, iterations: 1, parallelism: 1 } });
await vault.set('bench/token', enc(`v0-${crypto.randomUUID()}`));
vault.close();
writeFileSync(
  join(dir, 'agent.yaml'),
  `providers:\n  home:\n    type: local\n    path: ${vaultPath}\n    passphrase_env: BENCH_PASS\nagent:\n  watch: { polling_interval: 1h, debounce_window: 1s }\n  health_check: { timeout: 60s, interval: 1s, retries: 3 }\n  rotation: { strategy: ${STRATEGY}, concurrency: ${CONCURRENCY}, jitter: 0s }\n`,
);
// sh as PID 1 with a HUP trap: the signal strategy's SIGHUP is the reload, not an exit.
// network_mode none: one bridge network holds 254 addresses, and the figures are DSO's, not veth's.
const services = Array.from({ length: SERVICES }, (_, i) => {
  const replicas = Math.min(PER_SERVICE, N - i * PER_SERVICE);
  return `  s${i}:\n    image: ${IMAGE}\n    network_mode: none\n    command: ["sh", "-c", "trap : HUP; while sleep 1; do :; done"]\n    deploy: { replicas: ${replicas} }\n    environment:\n      TOKEN_FILE: dsofile://home:bench/token\n`;
});
writeFileSync(join(dir, 'compose.yaml'), `services:\n${services.join('')}`);

const agent = Bun.spawn([BIN, 'agent', '--config', join(dir, 'agent.yaml'), '--socket', socket, '--metrics-address', '127.0.0.1:0', '--state-dir', stateDir], {
  env: { PATH: process.env.PATH ?? '/usr/bin:/bin', BENCH_PASS: PASS, DOCKER_HOST: process.env.DOCKER_HOST ?? '' },
  stdout: 'ignore',
  stderr: 'pipe',
});
const log: Array<{ t: number; line: string }> = [];
let metricsUrl: string | undefined;
const logDone = (async () => {
  let rest = '';
  for await (const chunk of agent.stderr as ReadableStream<Uint8Array>) {
    rest += new TextDecoder().decode(chunk);
    const parts = rest.split('\n');
    rest = parts.pop()!;
    for (const line of parts) {
      log.push({ t: Date.parse(/"ts":"([^"]+)"/.exec(line)?.[1] ?? '') || Date.now(), line });
      metricsUrl ??= /"metrics":"(http:[^"]+)"/.exec(line)?.[1];
    }
  }
})();

interface ProcSample {
  t: number;
  cpuTicks: number;
  rssKiB: number;
  hwmKiB: number;
}
function procSample(): ProcSample {
  const stat = readFileSync(`/proc/${agent.pid}/stat`, 'utf8');
  // Fields after the command name, which may hold spaces: utime and stime are the 12th and 13th.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const status = readFileSync(`/proc/${agent.pid}/status`, 'utf8');
  return {
    t: performance.now(),
    cpuTicks: Number(f[11]) + Number(f[12]),
    rssKiB: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]),
    hwmKiB: Number(/VmHWM:\s+(\d+)/.exec(status)?.[1]),
  };
}

async function agentStatus(): Promise<{ queue: { depth: number; drops: number } }> {
  const r = await fetch('http://dso-agent/v1/status', { unix: socket } as RequestInit);
  return (await r.json()) as { queue: { depth: number; drops: number } };
}

async function scrape(): Promise<string> {
  if (!metricsUrl) throw new Error('the agent did not say where its metrics are');
  return await (await fetch(metricsUrl)).text();
}

/** One metric's value (summed over its label sets) from a Prometheus text exposition. */
function metric(text: string, name: string): number {
  let sum = 0;
  for (const l of text.split('\n')) if (l.startsWith(`${name} `) || l.startsWith(`${name}{`)) sum += Number(l.slice(l.lastIndexOf(' ') + 1));
  return sum;
}

/** The histogram's cumulative bucket counts (le -> count), summed over label sets (or those with `label`). */
function buckets(text: string, name: string, label = ''): Map<number, number> {
  const out = new Map<number, number>();
  for (const l of text.split('\n')) {
    if (!l.includes(label)) continue;
    const m = new RegExp(`^${name}_bucket\\{.*le="([^"]+)".*\\} (\\S+)$`).exec(l);
    if (m) {
      const le = m[1] === '+Inf' ? Infinity : Number(m[1]);
      out.set(le, (out.get(le) ?? 0) + Number(m[2]));
    }
  }
  return out;
}

/** A quantile of the observations made between two scrapes, as the bucket bound it falls under. */
function bucketQuantile(before: Map<number, number>, after: Map<number, number>, q: number): number {
  const les = [...after.keys()].sort((a, b) => a - b);
  const total = (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0);
  if (total === 0) return Number.NaN;
  for (const le of les) if ((after.get(le) ?? 0) - (before.get(le) ?? 0) >= q * total) return le;
  return Infinity;
}

/** Samples the agent every 250 ms during a phase: CPU, memory, queue depth. */
class PhaseSampler {
  readonly #start: ProcSample;
  #last: ProcSample;
  #maxDepth = 0;
  #maxRssKiB = 0;
  #timer: ReturnType<typeof setInterval>;
  #busy = false;
  constructor() {
    this.#start = procSample();
    this.#last = this.#start;
    this.#maxRssKiB = this.#start.rssKiB;
    this.#timer = setInterval(() => void this.#tick(), 250);
  }
  async #tick(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      this.#last = procSample();
      this.#maxRssKiB = Math.max(this.#maxRssKiB, this.#last.rssKiB);
      this.#maxDepth = Math.max(this.#maxDepth, (await agentStatus()).queue.depth);
    } catch {
    } finally {
      this.#busy = false;
    }
  }
  async stop(): Promise<{ seconds: number; cpuPercent: number; maxQueueDepth: number; maxRssMiB: number; hwmMiB: number; rssEndMiB: number }> {
    clearInterval(this.#timer);
    while (this.#busy) await Bun.sleep(10);
    await this.#tick();
    const end = this.#last;
    const seconds = (end.t - this.#start.t) / 1000;
    return {
      seconds,
      cpuPercent: ((end.cpuTicks - this.#start.cpuTicks) / CLK_TCK / seconds) * 100,
      maxQueueDepth: this.#maxDepth,
      maxRssMiB: this.#maxRssKiB / 1024,
      hwmMiB: end.hwmKiB / 1024,
      rssEndMiB: end.rssKiB / 1024,
    };
  }
}

/**
 * Counts, live, the events the agent subscribes to (managed, not DSO's own; start, restart,
 * unpause). Live because the engine replays only its last 256 events to a late subscriber.
 */
function countEngineEvents(): { stop(): Promise<Record<string, number>> } {
  const p = Bun.spawn(['docker', 'events', '--filter', 'type=container', '--filter', 'label=dso.managed=true', '--filter', 'event=start', '--filter', 'event=restart', '--filter', 'event=unpause', '--format', '{{.Action}} x{{index .Actor.Attributes "dso.role"}}'], { env: cliEnv, stdout: 'pipe', stderr: 'ignore' });
  const text = new Response(p.stdout).text();
  return {
    async stop() {
      await Bun.sleep(1000); // the last events reach the CLI
      p.kill('SIGTERM');
      const counts: Record<string, number> = {};
      for (const l of (await text).split('\n')) {
        const [action, role] = l.split(' ');
        if (action && role === 'x') counts[action] = (counts[action] ?? 0) + 1;
      }
      return counts;
    },
  };
}

/** Observations per label set of a histogram's _count between two scrapes. */
function countsByLabel(before: string, after: string, name: string): Record<string, number> {
  const read = (text: string) => new Map(text.split('\n').filter((l) => l.startsWith(`${name}_count{`)).map((l) => [l.slice(name.length + 6, l.lastIndexOf('}')), Number(l.slice(l.lastIndexOf(' ') + 1))]));
  const b = read(before);
  return Object.fromEntries([...read(after)].map(([k, v]) => [k, v - (b.get(k) ?? 0)]));
}

// ---- The run.

const rows: Row[] = [];
const details: Record<string, unknown> = { containers: N, services: SERVICES, strategy: STRATEGY, concurrency: CONCURRENCY, unmanagedChurn: UNMANAGED };
let cleanedUp = false;
/** Set when the run ends: loops still making load stop, and are awaited before the clean-up. */
let stopping = false;
const background: Array<Promise<unknown>> = [];

async function cleanUp(): Promise<Record<string, unknown>> {
  if (cleanedUp) return {};
  cleanedUp = true;
  stopping = true;
  await Promise.allSettled(background);
  const report: Record<string, unknown> = {};
  progress('cleaning up: dso down');
  const t = performance.now();
  const down = Bun.spawnSync([BIN, 'down', '-p', project, '-t', '1'], { cwd: dir, env: cliEnv, stdout: 'pipe', stderr: 'pipe' });
  report.downSeconds = (performance.now() - t) / 1000;
  report.downExit = down.exitCode;
  if (down.exitCode !== 0) progress(`dso down failed: ${down.stderr.toString().slice(-400)}`);
  // What `dso down` left behind is a finding; then it is removed by force, whatever it is.
  const leftContainers = docker('ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`);
  const leftHolders = docker('ps', '-aq', '--filter', 'label=dso.role=holder', '--filter', `label=dso.project=${project}`);
  const leftVolumes = docker('volume', 'ls', '-q', '--filter', `label=dso.project=${project}`);
  const leftUnmanaged = docker('ps', '-aq', '--filter', `label=${unmanagedLabel}`);
  report.leftByDown = { containers: leftContainers.length, holders: leftHolders.length, volumes: leftVolumes.length };
  const force = [...new Set([...leftContainers, ...leftHolders, ...leftUnmanaged])];
  if (force.length > 0) run(['docker', 'rm', '-f', '-v', ...force], { allowFail: true });
  if (leftVolumes.length > 0) run(['docker', 'volume', 'rm', '-f', ...leftVolumes], { allowFail: true });
  return report;
}

let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = true;
    progress(`${sig}: cleaning up before exiting`);
    void cleanUp().finally(async () => {
      agent.kill('SIGTERM');
      await agent.exited; // it writes into `dir` until it has stopped
      rmSync(dir, { recursive: true, force: true });
      process.exit(130);
    });
  });
}

let failure: unknown;
try {
  const before = engineCounts();
  details.engineBefore = before;
  for (let i = 0; i < 200 && !metricsUrl; i++) await Bun.sleep(50);
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch('http://dso-agent/v1/health', { unix: socket } as RequestInit)).ok) break;
    } catch {}
    await Bun.sleep(50);
  }
  const idle = procSample();

  // 1. N containers, through the agent.
  progress(`dso up -d: ${N} containers in ${SERVICES} services (this takes minutes)`);
  const upSampler = new PhaseSampler();
  const upStarted = performance.now();
  const runningApps = () => docker('ps', '-q', '--filter', `label=com.docker.compose.project=${project}`, '--filter', 'label=dso.managed=true').length;
  const ticker = setInterval(() => progress(`  up: ${appIds().length} of ${N} containers created, ${runningApps()} running`), 15_000);
  try {
    await runAsync([BIN, 'up', '-d', '-p', project]);
  } finally {
    clearInterval(ticker);
  }
  const upSeconds = (performance.now() - upStarted) / 1000;
  const up = await upSampler.stop();
  const ids = appIds();
  const running = runningApps();
  progress(`up done in ${upSeconds.toFixed(0)} s: ${ids.length} containers, ${running} running`);
  if (running !== N) throw new Error(`expected ${N} running managed containers, found ${running}`);
  const loaded = engineCounts();
  details.engineLoaded = loaded;
  // Let the agent see them (its start-up reconcile and adoption), then a quiet baseline.
  await Bun.sleep(3000);
  const loadedIdle = procSample();

  // 2a. Event storm.
  progress(`event storm: pause+unpause of ${N}, restart of ${N}, ${UNMANAGED} unmanaged containers created, started and removed`);
  const m0 = await scrape();
  const counter = countEngineEvents();
  await Bun.sleep(500);
  const stormSampler = new PhaseSampler();
  const stormFrom = Date.now();
  const unmanaged = (async () => {
    const names = Array.from({ length: UNMANAGED }, (_, i) => `${project}-unmanaged-${i}`);
    let next = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next < names.length && !stopping) {
          const name = names[next++]!;
          await runAsync(['docker', 'run', '-d', '--network', 'none', '--label', unmanagedLabel, '--name', name, IMAGE, 'sleep', '30']);
        }
      }),
    );
    await inChunks(['docker', 'rm', '-f'], names, 50, 2);
  })();
  background.push(unmanaged);
  const commandFailures = {
    pause: await inChunks(['docker', 'pause'], ids, 25, 4),
    unpause: await inChunks(['docker', 'unpause'], ids, 25, 4),
    restart: await inChunks(['docker', 'restart', '-t', '0'], ids, 10, 4),
  };
  await unmanaged;
  const stormSent = Date.now();
  const engineEvents = await counter.stop();
  const expected = Object.values(engineEvents).reduce((a, b) => a + b, 0);
  progress(`storm sent in ${((stormSent - stormFrom) / 1000).toFixed(1)} s (${JSON.stringify(engineEvents)}); waiting for the agent to handle every event`);
  let handled = 0;
  let lastChange = Date.now();
  let m1 = m0;
  for (;;) {
    await Bun.sleep(500);
    m1 = await scrape();
    const h = metric(m1, 'dso_event_handle_seconds_count') - metric(m0, 'dso_event_handle_seconds_count');
    if (h !== handled) {
      handled = h;
      lastChange = Date.now();
    }
    if (handled >= expected || Date.now() - lastChange > 30_000) break;
  }
  const stormDone = Date.now();
  const storm = await stormSampler.stop();
  const b0 = buckets(m0, 'dso_event_handle_seconds');
  const b1 = buckets(m1, 'dso_event_handle_seconds');
  const stormResult = {
    engineEvents,
    commandFailures,
    handledByAction: countsByLabel(m0, m1, 'dso_event_handle_seconds'),
    handled,
    notHandled: Math.max(0, expected - handled),
    handleSecondsSum: metric(m1, 'dso_event_handle_seconds_sum') - metric(m0, 'dso_event_handle_seconds_sum'),
    histogram: Object.fromEntries([...b1].map(([le, n]) => [String(le), n - (b0.get(le) ?? 0)])),
    byAction: Object.fromEntries(
      ['start', 'restart', 'unpause'].map((a) => {
        const [x, y] = [buckets(m0, 'dso_event_handle_seconds', `action="${a}"`), buckets(m1, 'dso_event_handle_seconds', `action="${a}"`)];
        return [a, { p50Le: bucketQuantile(x, y, 0.5), p99Le: bucketQuantile(x, y, 0.99) }];
      }),
    ),
    p50Le: bucketQuantile(b0, b1, 0.5),
    p99Le: bucketQuantile(b0, b1, 0.99),
    sendSeconds: (stormSent - stormFrom) / 1000,
    toAllHandledSeconds: (stormDone - stormFrom) / 1000,
    restoreWarnings: log.filter((l) => l.t >= stormFrom && l.line.includes('Could not restore')).length,
    ...storm,
  };
  details.storm = stormResult;
  progress(`storm: ${handled} of ${expected} events handled, p50 <= ${stormResult.p50Le} s, p99 <= ${stormResult.p99Le} s`);

  // 2b. A secret change that touches all of them.
  progress(`secret change: webhook, then ${STRATEGY} rotation of ${N} containers`);
  const m2 = await scrape();
  const changeSampler = new PhaseSampler();
  const newValue = `v1-${crypto.randomUUID()}`;
  await setSecret(newValue);
  const t0 = Date.now();
  const r = await fetch('http://dso-agent/v1/webhook', { method: 'POST', unix: socket, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ secrets: ['home:bench/token'] }) } as RequestInit);
  if (r.status !== 202) throw new Error(`webhook answered ${r.status}`);
  const completed = () => log.filter((l) => l.t >= t0 - 5 && l.line.includes('"Rotation completed"'));
  const failed = () => log.filter((l) => l.t >= t0 - 5 && (l.line.includes('"Rotation failed"') || l.line.includes('"ROTATION ROLLBACK"')));
  let last = 0;
  let lastAt = Date.now();
  while (completed().length + failed().length < N) {
    await Bun.sleep(1000);
    const n = completed().length + failed().length;
    if (n !== last) {
      if (Math.floor(n / 50) !== Math.floor(last / 50)) progress(`  rotated ${n} of ${N}`);
      last = n;
      lastAt = Date.now();
    }
    if (Date.now() - lastAt > 120_000) {
      progress('no rotation finished for 2 minutes: giving up');
      break;
    }
  }
  const done = completed();
  const change = await changeSampler.stop();
  const m3 = await scrape();
  const perContainer = done.map((l) => l.t - t0);
  // Every container must serve the new value: read the file in a sample of them (and count the rest by the log).
  const current = docker('ps', '-q', '--filter', `label=com.docker.compose.project=${project}`, '--filter', 'label=dso.managed=true');
  const sample = current.filter((_, i) => i % Math.max(1, Math.floor(current.length / 20)) === 0);
  let serving = 0;
  for (const id of sample) {
    const out = Bun.spawnSync(['docker', 'exec', id, 'cat', SECRET_FILE], { env: cliEnv, stdout: 'pipe', stderr: 'pipe' }).stdout.toString();
    if (out === newValue) serving++;
  }
  const changeResult = {
    rotated: done.length,
    failed: failed().length,
    toAllSeconds: (Math.max(0, ...perContainer)) / 1000,
    p50Seconds: percentile(perContainer, 50) / 1000,
    p99Seconds: percentile(perContainer, 99) / 1000,
    sampledServingNew: serving,
    sampled: sample.length,
    queueDrops: metric(m3, 'dso_event_queue_drops_total') - metric(m2, 'dso_event_queue_drops_total'),
    debounceBatches: metric(m3, 'dso_event_debounce_batches_total') - metric(m2, 'dso_event_debounce_batches_total'),
    ...change,
  };
  details.change = changeResult;
  progress(`change: ${done.length} of ${N} rotated in ${changeResult.toAllSeconds.toFixed(1)} s; ${serving} of ${changeResult.sampled} sampled serve the new value`);

  const end = procSample();
  const idleRss = idle.rssKiB / 1024;
  rows.push(
    row('scale', `managed containers running (dso up -d, ${SERVICES} services)`, running, 'containers'),
    row('scale', `dso up -d of ${N} containers`, upSeconds, 's'),
    row('scale', 'storm: events the agent subscribes to', expected, 'events'),
    row('scale', 'storm: events handled', handled, 'events'),
    row('scale', 'storm: event -> handled, p50 (bucket bound)', stormResult.p50Le, 's'),
    row('scale', 'storm: event -> handled, p99 (bucket bound)', stormResult.p99Le, 's'),
    row('scale', 'storm: event -> handled, mean', handled > 0 ? stormResult.handleSecondsSum / handled : Number.NaN, 's'),
    row('scale', 'storm: start of storm -> all handled', stormResult.toAllHandledSeconds, 's'),
    row('scale', 'storm: agent CPU', storm.cpuPercent, '% of a core'),
    row('scale', `change: containers rotated (${STRATEGY}, concurrency ${CONCURRENCY})`, done.length, 'containers'),
    row('scale', 'change: queue depth, max', change.maxQueueDepth, 'containers'),
    row('scale', 'change: queue drops', changeResult.queueDrops, 'events'),
    row('scale', 'change: webhook -> container rotated, p50', changeResult.p50Seconds, 's'),
    row('scale', 'change: webhook -> container rotated, p99', changeResult.p99Seconds, 's'),
    row('scale', 'change: webhook -> all containers rotated', changeResult.toAllSeconds, 's'),
    row('scale', 'change: agent CPU', change.cpuPercent, '% of a core'),
    row('scale', 'agent RSS idle, before up', idleRss, 'MiB'),
    row('scale', `agent RSS idle, ${N} containers`, loadedIdle.rssKiB / 1024, 'MiB'),
    row('scale', 'agent RSS peak (VmHWM)', end.hwmKiB / 1024, 'MiB'),
    row('scale', 'agent RSS at end', end.rssKiB / 1024, 'MiB'),
    row('scale', 'agent CPU during up', up.cpuPercent, '% of a core'),
  );
  details.agent = { idleRssMiB: idleRss, loadedIdleRssMiB: loadedIdle.rssKiB / 1024, peakRssMiB: end.hwmKiB / 1024, endRssMiB: end.rssKiB / 1024, upPhase: up };
} catch (e) {
  failure = e;
  progress(`FAILED: ${e instanceof Error ? e.message : String(e)}`);
} finally {
  const report = await cleanUp();
  details.cleanup = report;
  agent.kill('SIGTERM');
  await agent.exited;
  await logDone.catch(() => {});
  const afterCounts = engineCounts();
  details.engineAfter = afterCounts;
  const before = details.engineBefore as ReturnType<typeof engineCounts> | undefined;
  if (before) {
    // Engine-wide difference (others' containers on a shared engine show here), and what this run made that is still there.
    details.engineDiff = { containers: afterCounts.containers - before.containers, holders: afterCounts.holders - before.holders, volumes: afterCounts.volumes - before.volumes };
    const left = {
      containers: new Set([...docker('ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`), ...docker('ps', '-aq', '--filter', `label=${unmanagedLabel}`)]).size,
      holders: docker('ps', '-aq', '--filter', 'label=dso.role=holder', '--filter', `label=dso.project=${project}`).length,
      volumes: docker('volume', 'ls', '-q', '--filter', `label=dso.project=${project}`).length,
    };
    details.leftOver = left;
    const byDown = report.leftByDown as { containers: number; holders: number; volumes: number } | undefined;
    rows.push(row('scale', 'left by dso down: containers + holders + volumes', (byDown?.containers ?? 0) + (byDown?.holders ?? 0) + (byDown?.volumes ?? 0), 'objects'));
    rows.push(row('scale', 'left on the engine after clean-up', left.containers + left.holders + left.volumes, 'objects'));
  }
  const warnings: Record<string, number> = {};
  for (const l of log) {
    if (!/"level":"(warn|error)"/.test(l.line)) continue;
    const msg = /"msg":"([^"]*)"/.exec(l.line)?.[1] ?? '?';
    warnings[msg] = (warnings[msg] ?? 0) + 1;
  }
  details.agentLogWarnings = warnings;
  // For looking into a run: the agent's log (names, ids and timings; never a value).
  if (process.env.DSO_BENCH_SCALE_LOG) writeFileSync(process.env.DSO_BENCH_SCALE_LOG, log.map((l) => l.line).join('\n'));
  if (!failure || process.env.DSO_BENCH_SCALE_KEEP !== '1') rmSync(dir, { recursive: true, force: true });
}

if (rows.length > 0) {
  const path = writeResult('scale', rows, { ...details, ...(failure ? { error: failure instanceof Error ? failure.message : String(failure) } : {}) });
  console.log(`Scale on one host: ${N} managed containers (machine: ${(details.engineLoaded as { running?: number } | undefined)?.running ?? '?'} containers running at peak)`);
  printRows(rows);
  console.log(`written to ${path}`);
}
if (failure) {
  console.error(failure);
  process.exit(1);
}
