// Rotation, with the compiled agent and the private engine (scripts/bench.sh sets both up):
//   1. from a secret's change at its backend (the local vault, then the webhook) to the new
//      container serving, for each strategy (signal, restart, rolling), split into its phases:
//      the webhook's check (resolve and fingerprint the secret: "change found"), the debounce and
//      plan, then every step the rotation records in the agent's state file (rotations.json
//      history: volumes-ready, created, started, healthy, swapped, ...), to serving and after.
//      Median of BENCH_ROTATION_ROUNDS rounds per strategy. The services have a 1 s health check
//      interval and the agent a 1 s debounce window: those two phases show the configuration,
//      not DSO's speed.
//   2. BENCH_ROTATION_CONTAINERS containers (100 by default) sharing one secret, rotated rolling
//      with concurrency BENCH_ROTATION_CONCURRENCY (4): total time, and the agent's peak memory.
// Writes ${BENCH_OUT_DIR:-dist/bench}/rotation.json.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LocalVault } from '../../src/vault/vault.ts';
import { median, printRows, requireBin, row, writeResult, type Row } from './result.ts';

const BIN = requireBin();
const N = Number(process.env.BENCH_ROTATION_CONTAINERS ?? process.env.DSO_BENCH_CONTAINERS ?? 100);
const CONCURRENCY = Number(process.env.BENCH_ROTATION_CONCURRENCY ?? process.env.DSO_BENCH_CONCURRENCY ?? 4);
const ROUNDS = Number(process.env.BENCH_ROTATION_ROUNDS ?? 5);
const STRATEGIES = ['signal', 'restart', 'rolling'] as const;
type Strategy = (typeof STRATEGIES)[number];
/** The step at which the new value is being served, by strategy. */
const SERVING: Record<Strategy, string> = { signal: 'signalled', restart: 'healthy', rolling: 'swapped' };
const PASS = 'rotation-bench-passphrase';
const IMAGE = process.env.DSO_TEST_IMAGE_BUSYBOX ?? 'dso-test/busybox:latest';

const dir = join(process.env.DSO_TEST_ROOT ?? '/var/tmp', `dso-bench-rotation-${process.pid}`);
const project = `dsobenchrot${process.pid}`;
mkdirSync(dir, { recursive: true });
const vaultPath = join(dir, 'vault.enc');
const socket = join(dir, 'dso.sock');
const stateDir = join(dir, 'state');
const enc = (s: string) => new TextEncoder().encode(s);
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', DOCKER_HOST: process.env.DOCKER_HOST ?? '', DOCKER_CONFIG: process.env.DOCKER_CONFIG ?? '', DSO_MODE: 'cloud', DSO_AGENT_SOCKET: socket };

function sh(cmd: string[]): string {
  const r = Bun.spawnSync(cmd, { cwd: dir, env, stdout: 'pipe', stderr: 'pipe' });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(' ')} failed: ${r.stderr.toString().slice(-800)}`);
  return r.stdout.toString();
}

async function setSecret(name: string, value: string): Promise<void> {
  const v = await LocalVault.open(vaultPath, enc(PASS));
  await v.set(name, enc(value));
  v.close();
}

async function webhook(ref: string): Promise<number> {
  const t = Date.now();
  const r = await fetch('http://dso-agent/v1/webhook', { method: 'POST', unix: socket, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ secrets: [ref] }) } as RequestInit);
  if (r.status !== 202) throw new Error(`webhook answered ${r.status}`);
  return t;
}

interface Rec {
  id: string;
  container: { name: string };
  strategy: string;
  status: string;
  startedAt: string;
  downtimeMs?: number;
  history: Array<{ step: string; at: string }>;
}
const rotations = (): Rec[] => {
  try {
    return JSON.parse(readFileSync(join(stateDir, 'rotations.json'), 'utf8')).rotations as Rec[];
  } catch {
    return [];
  }
};

function service(strategy: Strategy): string {
  // `signal` needs a process that survives the signal: a shell that traps it (PID 1, no init).
  const command = strategy === 'signal' ? `["sh", "-c", "trap 'echo reloaded' HUP; while true; do sleep 1; done"]` : '["sleep", "3600"]';
  return `  ${strategy}:
    image: ${IMAGE}
    ${strategy === 'signal' ? '' : 'init: true\n    '}command: ${command}
    labels: { dso.strategy: ${strategy} }
    healthcheck: { test: ["CMD", "test", "-s", "/run/secrets/home/bench/${strategy}"], interval: 1s, timeout: 1s, retries: 3 }
    environment:
      TOKEN_FILE: dsofile://home:bench/${strategy}
`;
}

const vault = await LocalVault.create(vaultPath, enc(PASS), { kdf: { memoryKiB: 1024, iterations: 1, parallelism: 1 } });
await vault.setMany([...STRATEGIES.map((s) => [`bench/${s}`, enc('v0-initial-value')] as const), ['bench/fleet', enc('v0-initial-value')]]);
vault.close();
writeFileSync(
  join(dir, 'agent.yaml'),
  `providers:\n  home:\n    type: local\n    path: ${vaultPath}\n    passphrase_env: BENCH_PASS\nagent:\n  watch: { polling_interval: 1h, debounce_window: 1s }\n  health_check: { timeout: 60s, interval: 1s, retries: 3 }\n  rotation: { concurrency: ${CONCURRENCY}, jitter: 0s }\n`,
);
writeFileSync(
  join(dir, 'compose.yaml'),
  `services:\n${STRATEGIES.map(service).join('')}  fleet:\n    image: ${IMAGE}\n    init: true\n    command: ["sleep", "3600"]\n    labels: { dso.strategy: rolling }\n    environment:\n      TOKEN_FILE: dsofile://home:bench/fleet\n`,
);
const agent = Bun.spawn([BIN, 'agent', '--config', join(dir, 'agent.yaml'), '--socket', socket, '--metrics-address', 'off', '--state-dir', stateDir], {
  env: { PATH: env.PATH, BENCH_PASS: PASS, DOCKER_HOST: env.DOCKER_HOST },
  stdout: 'ignore',
  stderr: 'pipe',
});
const log: Array<{ t: number; line: string }> = [];
void (async () => {
  let rest = '';
  for await (const chunk of agent.stderr as ReadableStream<Uint8Array>) {
    rest += new TextDecoder().decode(chunk);
    const lines = rest.split('\n');
    rest = lines.pop()!;
    for (const line of lines) log.push({ t: Date.parse(/"ts":"([^"]+)"/.exec(line)?.[1] ?? '') || Date.now(), line });
  }
})();

const rows: Row[] = [];
const details: Record<string, unknown> = {};
try {
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch('http://dso-agent/v1/health', { unix: socket } as RequestInit)).ok) break;
    } catch {}
    await Bun.sleep(50);
  }
  sh([BIN, 'up', '-d', '--wait', '-p', project, ...STRATEGIES]);

  // 1. One service per strategy, one change at a time, phase by phase.
  for (const strategy of STRATEGIES) {
    const phases = new Map<string, number[]>();
    const add = (k: string, v: number) => phases.set(k, [...(phases.get(k) ?? []), v]);
    const downtimes: number[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const before = new Set(rotations().map((r) => r.id));
      await setSecret(`bench/${strategy}`, `value-${strategy}-${round}-${'x'.repeat(32)}`);
      const t0 = await webhook(`home:bench/${strategy}`);
      let rec: Rec | undefined;
      for (let i = 0; i < 1200 && !rec; i++) {
        await Bun.sleep(50);
        rec = rotations().find((r) => !before.has(r.id) && r.container.name.includes(`-${strategy}-`) && r.status !== 'in_progress');
      }
      if (!rec) throw new Error(`the ${strategy} rotation did not finish`);
      if (rec.status !== 'done') throw new Error(`the ${strategy} rotation ended ${rec.status}`);
      if (rec.strategy !== strategy) throw new Error(`asked for ${strategy}, the agent used ${rec.strategy}`);
      const found = log.find((l) => l.t >= t0 - 5 && l.line.includes('Secrets changed at their providers'))?.t ?? t0;
      const at = (step: string) => Date.parse(rec.history.find((h) => h.step === step)?.at ?? 'x');
      add('webhook -> change found (resolve, fingerprint)', found - t0);
      add('change found -> rotation planned (debounce 1 s, plan)', Date.parse(rec.startedAt) - found);
      for (let k = 1; k < rec.history.length; k++) {
        const [from, to] = [rec.history[k - 1]!, rec.history[k]!];
        add(from.step === to.step ? `${to.step} (its new objects recorded)` : `${from.step} -> ${to.step}`, Date.parse(to.at) - Date.parse(from.at));
      }
      add(`total: webhook -> new value served (${SERVING[strategy]})`, at(SERVING[strategy]) - t0);
      add('total: webhook -> done (old container removed)', at('done') - t0);
      if (rec.downtimeMs !== undefined) downtimes.push(rec.downtimeMs);
    }
    const g = `rotation: ${strategy}`;
    for (const [k, xs] of phases) rows.push(row(g, k, median(xs), 'ms'));
    if (downtimes.length > 0) rows.push(row(g, 'downtime (no container serving)', median(downtimes), 'ms'));
    details[strategy] = Object.fromEntries([...phases].map(([k, xs]) => [k, xs]));
  }

  // 2. N containers sharing one secret.
  if (N > 0) {
    sh([BIN, 'up', '-d', '-p', project, '--scale', `fleet=${N}`, 'fleet']);
    // Counted in the agent's log: the state file keeps only the last 50 finished rotations.
    const completed = () => log.filter((l) => l.line.includes('"Rotation completed"') && l.line.includes('-fleet-')).length;
    const already = completed();
    await setSecret('bench/fleet', `value-fleet-${'y'.repeat(32)}`);
    const t0 = await webhook('home:bench/fleet');
    let done = 0;
    for (let i = 0; i < 30 * 60 * 10 && done < N; i++) {
      await Bun.sleep(100);
      done = completed() - already;
    }
    const fleetMs = Date.now() - t0;
    const status = readFileSync(`/proc/${agent.pid}/status`, 'utf8');
    const peakKiB = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1]);
    const g = `rotation: ${N} containers, one secret`;
    rows.push(
      row(g, `rolling, concurrency ${CONCURRENCY}: all rotated`, fleetMs / 1000, 's'),
      row(g, 'per container', fleetMs / Math.max(1, done), 'ms'),
      row(g, 'containers rotated', done, ''),
      row(g, 'agent peak RSS', peakKiB / 1024, 'MiB'),
    );
    details.fleet = { containers: N, rotated: done, concurrency: CONCURRENCY, totalMs: fleetMs, agentPeakRssMiB: peakKiB / 1024 };
  }
  const path = writeResult('rotation', rows, { rounds: ROUNDS, debounceWindowMs: 1000, healthCheckIntervalMs: 1000, phasesMs: details });
  console.log(`Rotation, webhook to new container serving, by strategy (median of ${ROUNDS}; 1 s health check interval, 1 s debounce)`);
  printRows(rows);
  console.log(`written to ${path}\n`);
} finally {
  try {
    sh([BIN, 'down', '-p', project, '-t', '1']);
  } catch {}
  agent.kill('SIGTERM');
  await agent.exited;
  rmSync(dir, { recursive: true, force: true });
}
