// Rotation figures, with the compiled agent and the private engine (scripts/bench.sh sets both up):
//   1. from a secret's change at its backend (the webhook) to the new container serving, for a
//      service with a 1 s health check, split into its phases (median of 5 rounds);
//   2. N containers (100 by default, DSO_BENCH_CONTAINERS) sharing one secret, rotated blue-green
//      with the configured concurrency limit: total time, and the agent's peak resident memory.
// The provider is the local vault, so the figures are DSO's and the engine's, not a network's.
// Prints a table; `--json` prints JSON instead.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LocalVault } from '../../src/vault/vault.ts';

const BIN = process.env.DSO_BIN;
if (!BIN) throw new Error('DSO_BIN is not set: run through scripts/bench.sh (npm run bench)');
const N = Number(process.env.DSO_BENCH_CONTAINERS ?? 100);
const CONCURRENCY = Number(process.env.DSO_BENCH_CONCURRENCY ?? 4);
const ROUNDS = 5;
const PASS = 'rotation-bench-passphrase';
const dir = join(process.env.DSO_TEST_ROOT ?? '/var/tmp', `dso-bench-rotation-${process.pid}`);
const project = `dsobenchrot${process.pid}`;
mkdirSync(dir, { recursive: true });
const vaultPath = join(dir, 'vault.enc');
const socket = join(dir, 'dso.sock');
const stateDir = join(dir, 'state');
const enc = (s: string) => new TextEncoder().encode(s);
const env = { ...process.env, DSO_MODE: 'cloud', DSO_AGENT_SOCKET: socket } as Record<string, string>;

function sh(cmd: string[], extra: Record<string, string> = {}): string {
  const r = Bun.spawnSync(cmd, { cwd: dir, env: { ...env, ...extra }, stdout: 'pipe', stderr: 'pipe' });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(' ')} failed: ${r.stderr.toString().slice(-500)}`);
  return r.stdout.toString();
}

async function setSecret(value: string): Promise<void> {
  const v = await LocalVault.open(vaultPath, enc(PASS));
  await v.set('bench/token', enc(value));
  v.close();
}

async function webhook(): Promise<number> {
  const t = Date.now();
  const r = await fetch('http://dso-agent/v1/webhook', { method: 'POST', unix: socket, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ secrets: ['home:bench/token'] }) } as RequestInit);
  if (r.status !== 202) throw new Error(`webhook answered ${r.status}`);
  return t;
}

interface Rec {
  id: string;
  container: { name: string };
  status: string;
  startedAt: string;
  history: Array<{ step: string; at: string }>;
}
const rotations = (): Rec[] => {
  try {
    return JSON.parse(readFileSync(join(stateDir, 'rotations.json'), 'utf8')).rotations as Rec[];
  } catch {
    return [];
  }
};
const at = (r: Rec, step: string) => Date.parse(r.history.find((h) => h.step === step)?.at ?? 'x');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const vault = await LocalVault.create(vaultPath, enc(PASS), { kdf: { memoryKiB: 1024, iterations: 1, parallelism: 1 } });
await vault.set('bench/token', enc('v0-initial-value'));
vault.close();
writeFileSync(
  join(dir, 'agent.yaml'),
  `providers:\n  home:\n    type: local\n    path: ${vaultPath}\n    passphrase_env: BENCH_PASS\nagent:\n  watch: { polling_interval: 1h, debounce_window: 1s }\n  health_check: { timeout: 60s, interval: 1s, retries: 3 }\n  rotation: { strategy: rolling, concurrency: ${CONCURRENCY}, jitter: 0s }\n`,
);
writeFileSync(
  join(dir, 'compose.yaml'),
  `services:\n  web:\n    image: dso-test/busybox:latest\n    init: true\n    command: ["sleep", "3600"]\n    healthcheck: { test: ["CMD", "test", "-s", "/run/secrets/home/bench/token"], interval: 1s, timeout: 1s, retries: 3 }\n    environment:\n      TOKEN_FILE: dsofile://home:bench/token\n  worker:\n    image: dso-test/busybox:latest\n    init: true\n    command: ["sleep", "3600"]\n    environment:\n      TOKEN_FILE: dsofile://home:bench/token\n`,
);
const agent = Bun.spawn([BIN, 'agent', '--config', join(dir, 'agent.yaml'), '--socket', socket, '--metrics-address', 'off', '--state-dir', stateDir], {
  env: { PATH: process.env.PATH ?? '/usr/bin:/bin', BENCH_PASS: PASS, DOCKER_HOST: process.env.DOCKER_HOST ?? '' },
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

try {
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch('http://dso-agent/v1/health', { unix: socket } as RequestInit)).ok) break;
    } catch {}
    await Bun.sleep(50);
  }
  // 1. One service, one change, phase by phase.
  sh([BIN, 'up', '-d', '--wait', '-p', project, 'web']);
  const phases: Record<string, number[]> = { detection: [], debounce: [], prepare: [], healthWait: [], swap: [], toServing: [], cleanup: [] };
  for (let round = 1; round <= ROUNDS; round++) {
    const before = rotations().length;
    await setSecret(`value-round-${round}-${'x'.repeat(32)}`);
    const t0 = await webhook();
    let rec: Rec | undefined;
    for (let i = 0; i < 600 && !rec; i++) {
      await Bun.sleep(50);
      rec = rotations().slice(before).find((r) => r.status === 'done');
    }
    if (!rec) throw new Error('the rotation did not finish');
    const detected = log.filter((l) => l.t >= t0 - 5 && l.line.includes('Secrets changed at their providers')).at(0)?.t ?? t0;
    const started = Date.parse(rec.startedAt);
    phases.detection!.push(detected - t0);
    phases.debounce!.push(started - detected);
    phases.prepare!.push(at(rec, 'started') - started);
    phases.healthWait!.push(at(rec, 'healthy') - at(rec, 'started'));
    phases.swap!.push(at(rec, 'swapped') - at(rec, 'healthy'));
    phases.toServing!.push(at(rec, 'swapped') - t0);
    phases.cleanup!.push(at(rec, 'done') - at(rec, 'swapped'));
  }

  // 2. N containers sharing the secret.
  sh([BIN, 'up', '-d', '-p', project, '--scale', `worker=${N}`, 'worker']);
  // Counted in the agent's log: the state file keeps only the last 50 finished rotations.
  const completed = () => log.filter((l) => l.line.includes('"Rotation completed"') && l.line.includes('-worker-')).length;
  await setSecret(`value-fleet-${'y'.repeat(32)}`);
  const t0 = await webhook();
  let done = 0;
  for (let i = 0; i < 20 * 60 * 10 && done < N; i++) {
    await Bun.sleep(100);
    done = completed();
  }
  const fleetMs = Date.now() - t0;
  const status = readFileSync(`/proc/${agent.pid}/status`, 'utf8');
  const peakKiB = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1]);
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);

  const result = {
    oneService: Object.fromEntries(Object.entries(phases).map(([k, xs]) => [`${k}Ms`, median(xs)])),
    rounds: ROUNDS,
    debounceWindowMs: 1000,
    healthCheckIntervalMs: 1000,
    fleet: { containers: N, rotated: done, concurrency: CONCURRENCY, totalMs: fleetMs, perContainerMs: fleetMs / Math.max(1, done), agentPeakRssMiB: peakKiB / 1024, agentRssAfterMiB: rssKiB / 1024 },
  };
  if (process.argv.includes('--json')) {
    console.log(JSON.stringify(result, null, 2));
  } else {
    const o = result.oneService as Record<string, number>;
    console.log(`Rotation, webhook to new container serving (rolling, 1 s health check, 1 s debounce; median of ${ROUNDS})`);
    console.log(`  detection (webhook -> change found):      ${o.detectionMs} ms`);
    console.log(`  debounce (found -> rotation starts):      ${o.debounceMs} ms`);
    console.log(`  prepare (values, volumes, create, start): ${o.prepareMs} ms`);
    console.log(`  health wait:                              ${o.healthWaitMs} ms`);
    console.log(`  swap (names):                             ${o.swapMs} ms`);
    console.log(`  total, webhook -> new container serving:  ${o.toServingMs} ms`);
    console.log(`  then: old container stopped and removed:  ${o.cleanupMs} ms`);
    console.log(`${N} containers sharing one secret, rolling, concurrency ${CONCURRENCY}`);
    console.log(`  rotated ${done} of ${N} in ${(fleetMs / 1000).toFixed(1)} s (${(fleetMs / Math.max(1, done)).toFixed(0)} ms per container)`);
    console.log(`  agent peak RSS ${(peakKiB / 1024).toFixed(1)} MiB, after ${(rssKiB / 1024).toFixed(1)} MiB`);
  }
} finally {
  try {
    sh([BIN, 'down', '-p', project, '-t', '1']);
  } catch {}
  agent.kill('SIGTERM');
  await agent.exited;
  rmSync(dir, { recursive: true, force: true });
}
