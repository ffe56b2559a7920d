// Provider resolution throughput: 1,000 secrets for one `up` from one provider, through the
// resolver, with the provider called directly, in a Worker, and in a child process. The test
// provider answers at once, so the figures are the cost of DSO's side: the boundary, the
// validation, the copies. Median of BENCH_PROVIDER_ROUNDS (5). Prints a table (`--json`: the
// JSON) and writes ${BENCH_OUT_DIR:-dist/bench}/providers.json.
import { defaultAgentConfig } from '../../src/config/agent.ts';
import type { DsoConfig } from '../../src/config/load.ts';
import type { ProviderSettings } from '../../src/config/providers.ts';
import { parseSecretId } from '../../src/compose/references.ts';
import { ProviderSet, resolveProviderSecrets, type Wanted } from '../../src/providers/resolver.ts';
import { testModules } from '../fixtures/providers/test-kind.ts';
import { row, writeResult } from './result.ts';

const N = Number(process.env.BENCH_PROVIDER_SECRETS ?? process.env.DSO_BENCH_SECRETS ?? 1000);
const ROUNDS = Number(process.env.BENCH_PROVIDER_ROUNDS ?? 5);
const WORKER = new URL('../fixtures/providers/worker.ts', import.meta.url).href;
const PROCESS = [process.execPath, new URL('../fixtures/providers/process.ts', import.meta.url).pathname];

const wanted: Wanted[] = Array.from({ length: N }, (_, i) => ({ id: parseSecretId(`bench:app/secret-${i}`, 'bench'), uses: [`service "s${i % 50}"`] }));

function settings(isolation: 'worker' | 'process'): ProviderSettings {
  return { name: 'bench', kind: 'test', isolation, timeoutMs: 30_000, env: [], optionalEnv: [], fixedEnv: {}, config: {} };
}

async function direct(): Promise<number> {
  const create = await testModules.loadClient('test');
  const provider = await create({}, { name: 'bench', env: {}, log: () => {} });
  const started = performance.now();
  await Promise.all(
    wanted.map(async (w) => {
      const got = await provider.get(w.id.path, { maxBytes: 1 << 20, signal: AbortSignal.timeout(30_000) });
      got.value.fill(0);
    }),
  );
  return performance.now() - started;
}

async function hosted(isolation: 'worker' | 'process'): Promise<{ firstMs: number; warmMs: number }> {
  const config = { path: 'bench', providers: new Map([['bench', settings(isolation)]]), maxSecretBytes: 1 << 20, agent: defaultAgentConfig(), defaults: {} as DsoConfig['defaults'] };
  const set = new ProviderSet(config, { env: {}, hostOverrides: { workerUrl: WORKER, processCommand: PROCESS } });
  try {
    let started = performance.now();
    let values = await resolveProviderSecrets(set, wanted);
    const firstMs = performance.now() - started;
    if (values.size !== N) throw new Error(`resolved ${values.size} of ${N}`);
    for (const v of values.values()) v.wipe();
    started = performance.now();
    values = await resolveProviderSecrets(set, wanted);
    const warmMs = performance.now() - started;
    for (const v of values.values()) v.wipe();
    return { firstMs, warmMs };
  } finally {
    await set.close();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const rows: Array<{ path: string; coldMs: number; warmMs: number; secretsPerSecond: number; perSecretUs: number }> = [];
const directRuns: number[] = [];
for (let i = 0; i < ROUNDS; i++) directRuns.push(await direct());
const d = median(directRuns);
rows.push({ path: 'direct call (no boundary)', coldMs: d, warmMs: d, secretsPerSecond: (N / d) * 1000, perSecretUs: (d * 1000) / N });
for (const isolation of ['worker', 'process'] as const) {
  const runs: Array<{ firstMs: number; warmMs: number }> = [];
  for (let i = 0; i < ROUNDS; i++) runs.push(await hosted(isolation));
  const cold = median(runs.map((r) => r.firstMs));
  const warm = median(runs.map((r) => r.warmMs));
  rows.push({ path: `isolation: ${isolation}`, coldMs: cold, warmMs: warm, secretsPerSecond: (N / warm) * 1000, perSecretUs: (warm * 1000) / N });
}

const result = {
  secrets: N,
  rounds: ROUNDS,
  arch: process.arch,
  rows: rows.map((r) => ({ ...r, boundaryCostUsPerSecret: r.perSecretUs - rows[0]!.perSecretUs })),
};
const g = 'provider resolution';
const direct0 = { measure: 'direct call, no boundary', value: rows[0]!.warmMs };
const benchRows = [
  row(g, `direct call (no boundary), ${N} secrets`, rows[0]!.warmMs, 'ms'),
  ...rows.slice(1).flatMap((r) => [
    row(g, `${r.path}, ${N} secrets, warm`, r.warmMs, 'ms', direct0),
    row(g, `${r.path}, ${N} secrets, first (starts the provider)`, r.coldMs, 'ms'),
    row(g, `${r.path}, throughput`, r.secretsPerSecond, 'secrets/s'),
  ]),
];
const written = writeResult('providers', benchRows, { secrets: N, rounds: ROUNDS, paths: result.rows });
if (process.argv.includes('--json')) {
  console.log(JSON.stringify(result, null, 2));
} else {
  console.log(`Provider resolution, ${N} secrets from one provider (median of ${ROUNDS}; cold includes starting the provider)`);
  console.log(`${'path'.padEnd(28)}${'cold ms'.padStart(10)}${'warm ms'.padStart(10)}${'secrets/s'.padStart(12)}${'µs/secret'.padStart(12)}${'boundary µs'.padStart(13)}`);
  for (const r of result.rows) {
    console.log(`${r.path.padEnd(28)}${r.coldMs.toFixed(1).padStart(10)}${r.warmMs.toFixed(1).padStart(10)}${Math.round(r.secretsPerSecond).toString().padStart(12)}${r.perSecretUs.toFixed(1).padStart(12)}${r.boundaryCostUsPerSecret.toFixed(1).padStart(13)}`);
  }
}
(process.argv.includes('--json') ? console.error : console.log)(`written to ${written}\n`);
