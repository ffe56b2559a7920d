// CLI start-up: the compiled `dso version` and `dso secret list` (a vault of 20 secrets with the
// default argon2id parameters, unlocked with DSO_PASSPHRASE, so the figure includes the key
// derivation a user waits for), against the Docker CLI: `docker --version` (the Go client alone)
// and `docker version` (the Go client talking to the engine). Median of BENCH_STARTUP_ROUNDS runs
// after one warm-up each. Writes ${BENCH_OUT_DIR:-dist/bench}/startup.json.
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { LocalVault } from '../../src/vault/vault.ts';
import { baseEnv, median, percentile, printRows, requireBin, row, timeCommand, writeResult } from './result.ts';

const BIN = requireBin();
const ROUNDS = Number(process.env.BENCH_STARTUP_ROUNDS ?? 30);
const SECRETS = 20;
const PASS = 'startup benchmark passphrase';

const dir = mkdtempSync(join(process.env.DSO_TEST_ROOT ?? '/var/tmp', 'dso-bench-startup-'));
try {
  const home = join(dir, '.dso');
  const vault = await LocalVault.create(join(home, 'vault.enc'), new TextEncoder().encode(PASS));
  await vault.setMany(Array.from({ length: SECRETS }, (_, i) => [`app/secret-${i}`, crypto.getRandomValues(new Uint8Array(32))] as const));
  vault.close();
  const dsoEnv = baseEnv({ DSO_HOME: home, DSO_PASSPHRASE: PASS });

  const sample = (cmd: string[], env = baseEnv()) => {
    timeCommand(cmd, { env, cwd: dir }); // warm-up: page cache
    return Array.from({ length: ROUNDS }, () => timeCommand(cmd, { env, cwd: dir }));
  };
  const version = sample([BIN, 'version'], dsoEnv);
  const list = sample([BIN, 'secret', 'list'], dsoEnv);
  const dockerVersion = sample(['docker', 'version']);
  const dockerDashVersion = sample(['docker', '--version']);

  const g = 'CLI start-up';
  const dockerRef = { measure: 'docker version (Go client + engine)', value: median(dockerVersion) };
  const dashRef = { measure: 'docker --version (Go client)', value: median(dockerDashVersion) };
  const rows = [
    row(g, 'dso version', median(version), 'ms', dashRef),
    row(g, 'dso version', median(version), 'ms', dockerRef),
    row(g, `dso secret list (${SECRETS} secrets, argon2id unlock)`, median(list), 'ms', dockerRef),
    row(g, 'unlock + read (secret list - version)', median(list) - median(version), 'ms'),
    row(g, 'docker version (Go client + engine)', median(dockerVersion), 'ms'),
    row(g, 'docker --version (Go client)', median(dockerDashVersion), 'ms'),
  ];
  const spread = (xs: number[]) => ({ median: median(xs), p95: percentile(xs, 95), min: Math.min(...xs), max: Math.max(...xs) });
  const path = writeResult('startup', rows, {
    rounds: ROUNDS,
    secrets: SECRETS,
    kdf: 'default (argon2id, 64 MiB, t=3, p=4)',
    ms: { dsoVersion: spread(version), dsoSecretList: spread(list), dockerVersion: spread(dockerVersion), dockerDashVersion: spread(dockerDashVersion) },
  });
  console.log(`CLI start-up (median of ${ROUNDS} runs after a warm-up)`);
  printRows(rows);
  console.log(`written to ${path}\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
