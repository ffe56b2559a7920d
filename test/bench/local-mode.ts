// Local Mode figures: compiled start-up, and `dso up -d` against plain `docker compose up -d` on
// the same stack in the same run (secrets given to plain Compose through an env file and a file
// secret, the way teams do it without DSO). Prints a table and writes JSON.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const BIN = process.env.DSO_BIN!;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const env: Record<string, string> = {
  PATH: process.env.PATH ?? '',
  HOME: process.env.HOME ?? '/root',
  DOCKER_HOST: process.env.DOCKER_HOST ?? '',
  DOCKER_CONFIG: process.env.DOCKER_CONFIG ?? '',
};

function time(cmd: string[], cwd?: string, extra: Record<string, string> = {}, input?: string): number {
  const t = performance.now();
  const r = Bun.spawnSync(cmd, { cwd, env: { ...env, ...extra }, stdin: input === undefined ? 'ignore' : new Blob([input]), stdout: 'pipe', stderr: 'pipe' });
  const ms = performance.now() - t;
  if (r.exitCode !== 0) throw new Error(`${cmd.join(' ')} failed: ${r.stderr.toString()}`);
  return ms;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil(xs.length * 0.95) - 1)]!;

// --- start-up
const startup = Array.from({ length: 30 }, () => time([BIN, 'version']));
const help = Array.from({ length: 30 }, () => time([BIN, '--help']));
const dockerClient = Array.from({ length: 30 }, () => time(['docker', '--version']));

// --- up -d: DSO vs plain Compose, same services
const dir = mkdtempSync(join(process.env.DSO_TEST_ROOT ?? '/var/tmp', 'bench-'));
const home = join(dir, '.dso');
const dsoEnv = { DSO_HOME: home, DSO_PASSPHRASE: 'benchmark passphrase' };
const SERVICES = 3;
const services = (kind: 'dso' | 'plain') =>
  Array.from({ length: SERVICES }, (_, i) => {
    const envs = kind === 'dso' ? `      API_KEY: dso://bench/api_${i}\n      DB_PASSWORD_FILE: dsofile://bench/db_${i}\n` : `      API_KEY: \${API_${i}}\n      DB_PASSWORD_FILE: /run/secrets/db_${i}\n`;
    const secrets = kind === 'plain' ? `    secrets: [db_${i}]\n` : '';
    return `  s${i}:\n    image: dso-test/busybox:latest\n    init: true\n    command: ["sleep", "3600"]\n    environment:\n${envs}${secrets}`;
  }).join('');
mkdirSync(join(dir, 'dso'));
mkdirSync(join(dir, 'plain'));
writeFileSync(join(dir, 'dso', 'compose.yaml'), `services:\n${services('dso')}`);
const plainSecrets = Array.from({ length: SERVICES }, (_, i) => `  db_${i}:\n    file: ./db_${i}.txt\n`).join('');
writeFileSync(join(dir, 'plain', 'compose.yaml'), `services:\n${services('plain')}secrets:\n${plainSecrets}`);
writeFileSync(join(dir, 'plain', '.env'), Array.from({ length: SERVICES }, (_, i) => `API_${i}=api-value-${i}\n`).join(''));
for (let i = 0; i < SERVICES; i++) writeFileSync(join(dir, 'plain', `db_${i}.txt`), `db-value-${i}`);
time([BIN, 'init'], dir, dsoEnv);
for (let i = 0; i < SERVICES; i++) {
  time([BIN, 'secret', 'set', `bench/api_${i}`], dir, dsoEnv, `api-value-${i}`);
  time([BIN, 'secret', 'set', `bench/db_${i}`], dir, dsoEnv, `db-value-${i}`);
}

const dsoUp: number[] = [];
const plainUp: number[] = [];
try {
  // Warm-up: holder image import, networks, page cache.
  time([BIN, 'up', '-d'], join(dir, 'dso'), dsoEnv);
  time([BIN, 'down', '-t', '0'], join(dir, 'dso'), dsoEnv);
  time(['docker', 'compose', 'up', '-d'], join(dir, 'plain'));
  time(['docker', 'compose', 'down', '-t', '0'], join(dir, 'plain'));
  for (let r = 0; r < ROUNDS; r++) {
    dsoUp.push(time([BIN, 'up', '-d'], join(dir, 'dso'), dsoEnv));
    time([BIN, 'down', '-t', '0'], join(dir, 'dso'), dsoEnv);
    plainUp.push(time(['docker', 'compose', 'up', '-d'], join(dir, 'plain')));
    time(['docker', 'compose', 'down', '-t', '0'], join(dir, 'plain'));
  }
} finally {
  Bun.spawnSync([BIN, 'down', '-t', '0'], { cwd: join(dir, 'dso'), env: { ...env, ...dsoEnv } });
  Bun.spawnSync(['docker', 'compose', 'down', '-t', '0'], { cwd: join(dir, 'plain'), env });
  rmSync(dir, { recursive: true, force: true });
}

const rows: Array<[string, number, number | undefined, string]> = [
  ['dso version (compiled, start-up)', median(startup), p95(startup), 'ms'],
  ['dso --help', median(help), p95(help), 'ms'],
  ['docker --version (Go client, reference)', median(dockerClient), p95(dockerClient), 'ms'],
  [`dso up -d (${SERVICES} services, ${SERVICES * 2} secrets)`, median(dsoUp), p95(dsoUp), 'ms'],
  [`docker compose up -d (same stack, env file + file secrets)`, median(plainUp), p95(plainUp), 'ms'],
];
const ratio = median(dsoUp) / median(plainUp);
console.log(`\nLocal Mode benchmark (${ROUNDS} rounds of up/down, 30 start-ups)\n`);
console.log(`${'measure'.padEnd(62)}${'median'.padStart(10)}${'p95'.padStart(10)}`);
for (const [name, med, p, unit] of rows) console.log(`${name.padEnd(62)}${`${med.toFixed(1)} ${unit}`.padStart(10)}${p === undefined ? '' : `${p.toFixed(1)} ${unit}`.padStart(10)}`);
console.log(`\ndso up -d / docker compose up -d = ${ratio.toFixed(2)}x  (dso start-up / docker client start-up = ${(median(startup) / median(dockerClient)).toFixed(2)}x)`);
const out = process.env.BENCH_JSON ?? 'dist/bench-local-mode.json';
writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), rounds: ROUNDS, startupMs: { median: median(startup), p95: p95(startup) }, helpMs: median(help), dockerClientMs: median(dockerClient), dsoUpMs: dsoUp, plainUpMs: plainUp, ratio }, null, 2));
console.log(`JSON written to ${out}`);
