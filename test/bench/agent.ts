// The compiled agent's footprint and API latency: resident memory at idle (providers started,
// nothing cached) and with 1,000 cached secrets, and the latency of a resolve of 50 secrets
// over the unix socket, from the cache (warm) and through the provider (cold). The provider is
// the local vault in a Worker, so the figures are DSO's own costs, not a network's.
// Needs DSO_BIN (scripts/bench.sh sets it). Prints a table (`--json`: the JSON) and writes
// ${BENCH_OUT_DIR:-dist/bench}/agent.json.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LocalVault } from '../../src/vault/vault.ts';
import { row, writeResult } from './result.ts';

const BIN = process.env.DSO_BIN;
if (!BIN) throw new Error('DSO_BIN is not set: run through scripts/bench.sh (npm run bench)');
const SECRETS = 1000;
const BATCH = 50;
const WARM_REQUESTS = 400;
const PASS = 'agent-bench-passphrase';

const dir = mkdtempSync(join(process.env.DSO_TEST_ROOT ?? '/var/tmp', 'dso-bench-agent-'));
const vaultPath = join(dir, 'vault.enc');
const socket = join(dir, 'dso.sock');

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? NaN);
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

async function resolve(ids: string[]): Promise<number> {
  const started = performance.now();
  const r = await fetch('http://dso-agent/v1/resolve', { method: 'POST', unix: socket, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ secrets: ids }) } as RequestInit);
  const body = new Uint8Array(await r.arrayBuffer());
  const ms = performance.now() - started;
  body.fill(0);
  if (r.status !== 200) throw new Error(`resolve answered ${r.status}`);
  return ms;
}

const names = Array.from({ length: SECRETS }, (_, i) => `bench/secret-${String(i).padStart(4, '0')}`);
const vault = await LocalVault.create(vaultPath, new TextEncoder().encode(PASS), { kdf: { memoryKiB: 1024, iterations: 1, parallelism: 1 } });
await vault.setMany(names.map((name) => [name, crypto.getRandomValues(new Uint8Array(64))] as const));
vault.close();
writeFileSync(join(dir, 'dso.yaml'), `providers:\n  local:\n    path: ${vaultPath}\n    passphrase_env: BENCH_PASS\nagent:\n  cache:\n    ttl: 1h\n`);

const agent = Bun.spawn([BIN, 'agent', '--config', join(dir, 'dso.yaml'), '--socket', socket, '--metrics-address', 'off', '--state-dir', join(dir, 'state')], {
  env: { PATH: process.env.PATH ?? '/usr/bin:/bin', BENCH_PASS: PASS, ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}) },
  stdout: 'ignore',
  stderr: 'ignore',
});
try {
  for (let i = 0; i < 200; i++) {
    try {
      const r = await fetch('http://dso-agent/v1/health', { unix: socket } as RequestInit);
      if (r.ok) break;
    } catch {}
    await Bun.sleep(25);
  }
  // Providers log in in the background at start: let that and the first GC settle.
  await Bun.sleep(1500);
  const idleKiB = rssKiB(agent.pid);

  const cold: number[] = [];
  for (let i = 0; i < SECRETS; i += BATCH) cold.push(await resolve(names.slice(i, i + BATCH).map((n) => `local:${n}`)));
  await Bun.sleep(500);
  const cachedKiB = rssKiB(agent.pid);

  const warm: number[] = [];
  for (let i = 0; i < WARM_REQUESTS; i++) {
    const start = (i * BATCH) % SECRETS;
    warm.push(await resolve(names.slice(start, start + BATCH).map((n) => `local:${n}`)));
  }
  const afterKiB = rssKiB(agent.pid);

  const result = {
    secrets: SECRETS,
    valueBytes: 64,
    batch: BATCH,
    rssIdleMiB: idleKiB / 1024,
    rssWith1000CachedMiB: cachedKiB / 1024,
    rssAfterWarmRequestsMiB: afterKiB / 1024,
    resolve50: {
      cold: { requests: cold.length, p50Ms: percentile(cold, 50), p99Ms: percentile(cold, 99) },
      warm: { requests: warm.length, p50Ms: percentile(warm, 50), p99Ms: percentile(warm, 99) },
    },
  };
  const g = 'agent';
  const written = writeResult(
    'agent',
    [
      row(g, 'RSS idle, providers started', result.rssIdleMiB, 'MiB'),
      row(g, `RSS with ${SECRETS} cached secrets`, result.rssWith1000CachedMiB, 'MiB'),
      row(g, `RSS after ${WARM_REQUESTS} more requests`, result.rssAfterWarmRequestsMiB, 'MiB'),
      row(g, `resolve of ${BATCH} over the socket, cold (provider), p50`, result.resolve50.cold.p50Ms, 'ms'),
      row(g, `resolve of ${BATCH} over the socket, cold (provider), p99`, result.resolve50.cold.p99Ms, 'ms'),
      row(g, `resolve of ${BATCH} over the socket, warm (cache), p50`, result.resolve50.warm.p50Ms, 'ms', { measure: 'cold p50', value: result.resolve50.cold.p50Ms }),
      row(g, `resolve of ${BATCH} over the socket, warm (cache), p99`, result.resolve50.warm.p99Ms, 'ms'),
    ],
    result,
  );
  if (process.argv.includes('--json')) {
    console.log(JSON.stringify(result, null, 2));
  } else {
    console.log(`Agent (compiled, local provider in a Worker, ${SECRETS} secrets of 64 bytes)`);
    console.log(`  RSS idle, providers started:         ${result.rssIdleMiB.toFixed(1)} MiB`);
    console.log(`  RSS with ${SECRETS} cached secrets:       ${result.rssWith1000CachedMiB.toFixed(1)} MiB`);
    console.log(`  RSS after ${WARM_REQUESTS} more requests:        ${result.rssAfterWarmRequestsMiB.toFixed(1)} MiB`);
    console.log(`  resolve of ${BATCH}, cold (provider):   p50 ${result.resolve50.cold.p50Ms.toFixed(2)} ms, p99 ${result.resolve50.cold.p99Ms.toFixed(2)} ms (${cold.length} requests)`);
    console.log(`  resolve of ${BATCH}, warm (cache):      p50 ${result.resolve50.warm.p50Ms.toFixed(2)} ms, p99 ${result.resolve50.warm.p99Ms.toFixed(2)} ms (${warm.length} requests)`);
  }
  (process.argv.includes('--json') ? console.error : console.log)(`written to ${written}\n`);
} finally {
  agent.kill('SIGTERM');
  await agent.exited;
  rmSync(dir, { recursive: true, force: true });
}
