// Local Mode: `dso up -d` against plain `docker compose up -d` on the same stack in the same run,
// for 1, 10 and 50 services (BENCH_SERVICES). Each service has one secret as an environment
// variable and one as a file: DSO gets them from its vault (dso:// and dsofile://, the file in a
// RAM-backed volume); plain Compose gets the same values the way teams do without DSO, through an
// env file and a file secret. Median of BENCH_ROUNDS up/down rounds per size, after a warm-up;
// then one traced `dso up` per size (DSO_TRACE=1) says where DSO's time goes.
// Writes ${BENCH_OUT_DIR:-dist/bench}/local-mode.json.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LocalVault } from '../../src/vault/vault.ts';
import { baseEnv, median, percentile, printRows, requireBin, row, timeCommand, writeResult, type Row } from './result.ts';

const BIN = requireBin();
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const SIZES = (process.env.BENCH_SERVICES ?? '1,10,50').split(',').map(Number);
const PASS = 'local mode benchmark passphrase';
const IMAGE = process.env.DSO_TEST_IMAGE_BUSYBOX ?? 'dso-test/busybox:latest';

const dir = mkdtempSync(join(process.env.DSO_TEST_ROOT ?? '/var/tmp', 'dso-bench-local-'));
const home = join(dir, '.dso');
const dsoEnv = baseEnv({ DSO_HOME: home, DSO_PASSPHRASE: PASS });

function service(i: number, kind: 'dso' | 'plain'): string {
  const env = kind === 'dso' ? `      API_KEY: dso://bench/api_${i}\n      DB_PASSWORD_FILE: dsofile://bench/db_${i}\n` : `      API_KEY: \${API_${i}}\n      DB_PASSWORD_FILE: /run/secrets/db_${i}\n`;
  const secrets = kind === 'plain' ? `    secrets: [db_${i}]\n` : '';
  return `  s${i}:\n    image: ${IMAGE}\n    init: true\n    command: ["sleep", "3600"]\n    environment:\n${env}${secrets}`;
}

/** Writes the two projects for `n` services; returns their directories. */
function stacks(n: number): { dso: string; plain: string } {
  const dso = join(dir, `dso-${n}`);
  const plain = join(dir, `plain-${n}`);
  mkdirSync(dso);
  mkdirSync(plain);
  const all = Array.from({ length: n }, (_, i) => i);
  writeFileSync(join(dso, 'compose.yaml'), `name: dsobench${n}\nservices:\n${all.map((i) => service(i, 'dso')).join('')}`);
  writeFileSync(join(plain, 'compose.yaml'), `name: plainbench${n}\nservices:\n${all.map((i) => service(i, 'plain')).join('')}secrets:\n${all.map((i) => `  db_${i}:\n    file: ./db_${i}.txt\n`).join('')}`);
  writeFileSync(join(plain, '.env'), all.map((i) => `API_${i}=api-value-${i}\n`).join(''));
  for (const i of all) writeFileSync(join(plain, `db_${i}.txt`), `db-value-${i}`);
  return { dso, plain };
}

/**
 * Engine 20.10 sometimes refuses to remove a network whose containers are gone ("has active
 * endpoints", a stale endpoint in its store that can stay for good): try again, then leave the
 * network; the next `up` of the project reuses it.
 */
function retried(fn: () => unknown): void {
  for (let attempt = 1; ; attempt++) {
    try {
      fn();
      return;
    } catch (error) {
      if (attempt === 3 && String(error).includes('has active endpoints')) return;
      if (attempt === 3) throw error;
      Bun.sleepSync(1000);
    }
  }
}

/** `[trace] name   +12.3 ms  (45.6 ms)` lines of a DSO_TRACE=1 run, as phase -> ms. */
function tracedUp(cwd: string): Record<string, number> {
  const r = Bun.spawnSync([BIN, 'up', '-d'], { cwd, env: { ...dsoEnv, DSO_TRACE: '1' }, stdout: 'pipe', stderr: 'pipe' });
  if (r.exitCode !== 0) throw new Error(`traced dso up failed: ${r.stderr.toString().slice(-800)}`);
  const phases: Record<string, number> = {};
  for (const m of r.stderr.toString().matchAll(/^\[trace\] (.+?)\s+\+([\d.]+) ms/gm)) phases[m[1]!] = Number(m[2]);
  return phases;
}

const vault = await LocalVault.create(join(home, 'vault.enc'), new TextEncoder().encode(PASS));
const largest = Math.max(...SIZES);
await vault.setMany(
  Array.from({ length: largest }, (_, i) => [
    [`bench/api_${i}`, new TextEncoder().encode(`api-value-${i}`)] as const,
    [`bench/db_${i}`, new TextEncoder().encode(`db-value-${i}`)] as const,
  ]).flat(),
);
vault.close();

const rows: Row[] = [];
const details: Record<string, unknown> = {};
try {
  for (const n of SIZES) {
    const s = stacks(n);
    const down = () => {
      retried(() => timeCommand([BIN, 'down', '-t', '0'], { cwd: s.dso, env: dsoEnv }));
      retried(() => timeCommand(['docker', 'compose', 'down', '-t', '0'], { cwd: s.plain }));
    };
    try {
      // Warm-up: holder image and bin volume, networks, page cache.
      timeCommand([BIN, 'up', '-d'], { cwd: s.dso, env: dsoEnv });
      timeCommand(['docker', 'compose', 'up', '-d'], { cwd: s.plain });
      down();
      const dso: number[] = [];
      const plain: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        // Alternate who goes first, so neither always meets a freshly cleaned engine.
        if (r % 2 === 0) {
          dso.push(timeCommand([BIN, 'up', '-d'], { cwd: s.dso, env: dsoEnv }));
          plain.push(timeCommand(['docker', 'compose', 'up', '-d'], { cwd: s.plain }));
        } else {
          plain.push(timeCommand(['docker', 'compose', 'up', '-d'], { cwd: s.plain }));
          dso.push(timeCommand([BIN, 'up', '-d'], { cwd: s.dso, env: dsoEnv }));
        }
        down();
      }
      const trace = tracedUp(s.dso);
      down();
      rows.push(
        row('up -d', `dso up -d, ${n} service${n === 1 ? '' : 's'} (${2 * n} secrets)`, median(dso), 'ms', { measure: 'docker compose up -d, env file + file secrets', value: median(plain) }),
      );
      details[`services${n}`] = { dsoMs: dso, plainMs: plain, dsoP95Ms: percentile(dso, 95), plainP95Ms: percentile(plain, 95), dsoTracePhasesMs: trace };
    } finally {
      Bun.spawnSync([BIN, 'down', '-t', '0'], { cwd: s.dso, env: dsoEnv, stdout: 'ignore', stderr: 'ignore' });
      Bun.spawnSync(['docker', 'compose', 'down', '-t', '0'], { cwd: s.plain, env: baseEnv(), stdout: 'ignore', stderr: 'ignore' });
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const path = writeResult('local-mode', rows, { rounds: ROUNDS, sizes: SIZES, kdf: 'default (argon2id, 64 MiB, t=3, p=4)', ...details });
console.log(`Local Mode, up -d (median of ${ROUNDS} rounds per size; each dso up includes one argon2id unlock)`);
printRows(rows);
for (const n of SIZES) {
  const t = (details[`services${n}`] as { dsoTracePhasesMs: Record<string, number> }).dsoTracePhasesMs;
  console.log(`  where dso up's time goes, ${n} services: ${Object.entries(t).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')} (ms)`);
}
console.log(`written to ${path}\n`);
