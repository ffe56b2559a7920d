// Local vault: set, get and list on vaults of 10, 1,000 and 10,000 secrets (BENCH_VAULT_SIZES),
// two ways. Through the compiled CLI, what a user waits for: start-up, the argon2id unlock with the
// default parameters (64 MiB, t=3, p=4; the passphrase from DSO_PASSPHRASE), the work, the write.
// In the library (LocalVault), to separate the parts: the unlock alone, reading and decrypting
// the file, and each operation after the vault is open. Plus the file size and bytes per secret.
// `set` re-reads, re-encrypts and rewrites the whole file under the lock, so its cost grows with
// the vault (O(n) per set); large vaults are filled here with one setMany (one write).
// Median of BENCH_VAULT_ROUNDS. Writes ${BENCH_OUT_DIR:-dist/bench}/vault.json.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { deriveKeys } from '../../src/vault/kdf.ts';
import { DEFAULT_KDF_PARAMS, LocalVault } from '../../src/vault/vault.ts';
import { baseEnv, median, printRows, requireBin, row, timeCommand, writeResult, type Row } from './result.ts';

const BIN = requireBin();
const SIZES = (process.env.BENCH_VAULT_SIZES ?? '10,1000,10000').split(',').map(Number);
const ROUNDS = Number(process.env.BENCH_VAULT_ROUNDS ?? 5);
const VALUE_BYTES = 32;
const PASS = 'vault benchmark passphrase';
const pass = () => new TextEncoder().encode(PASS);
const name = (i: number) => `app/secret-${String(i).padStart(5, '0')}`;

const dir = mkdtempSync(join(process.env.DSO_TEST_ROOT ?? '/var/tmp', 'dso-bench-vault-'));
const rows: Row[] = [];
const details: Record<string, unknown> = {};

/** Median wall time of `fn` in ms over ROUNDS runs. */
async function timed(fn: () => unknown | Promise<unknown>, rounds = ROUNDS): Promise<number> {
  const xs: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t = performance.now();
    await fn();
    xs.push(performance.now() - t);
  }
  return median(xs);
}

try {
  // Baselines: what every CLI command pays before it touches the vault's contents.
  const env0 = baseEnv();
  timeCommand([BIN, 'version'], { env: env0 });
  const startup = median(Array.from({ length: Math.max(ROUNDS, 10) }, () => timeCommand([BIN, 'version'], { env: env0 })));
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const derive = async () => (await deriveKeys(pass(), salt, DEFAULT_KDF_PARAMS)).key.fill(0);
  await derive(); // warm-up: compiling the WebAssembly module is not part of an unlock the CLI pays twice
  const unlock = await timed(derive, Math.max(ROUNDS, 5));
  const g = 'vault';
  rows.push(row(g, 'dso version (start-up, baseline)', startup, 'ms'));
  rows.push(row(g, 'argon2id unlock, default parameters (in library, warm)', unlock, 'ms'));

  let emptySize = 0;
  const smallest: Record<string, number> = {};
  for (const n of SIZES) {
    const home = join(dir, `home-${n}`);
    const path = join(home, 'vault.enc');
    const created = await LocalVault.create(path, pass());
    if (emptySize === 0) emptySize = statSync(path).size;
    const entries = Array.from({ length: n }, (_, i) => [name(i), crypto.getRandomValues(new Uint8Array(VALUE_BYTES))] as const);
    const t = performance.now();
    await created.setMany(entries);
    const fillMs = performance.now() - t;
    created.close();
    const size = statSync(path).size;

    // In the library.
    const vault = await LocalVault.open(path, pass());
    const openMs = await timed(async () => (await LocalVault.open(path, pass())).close());
    const getUs = (await timed(() => vault.get(name(n >> 1)).wipe(), 1000)) * 1000;
    const listMs = await timed(() => vault.list());
    const value = new Uint8Array(VALUE_BYTES).fill(7);
    const setMs = await timed(() => vault.set(name(n >> 1), value));
    vault.close();

    // Through the CLI.
    const env = baseEnv({ DSO_HOME: home, DSO_PASSPHRASE: PASS });
    const cliSet = median(Array.from({ length: ROUNDS }, () => timeCommand([BIN, 'secret', 'set', '--no-rotate', 'bench/new'], { env, input: 'a new value' })));
    const cliGet = median(Array.from({ length: ROUNDS }, () => timeCommand([BIN, 'secret', 'get', name(n >> 1)], { env })));
    const cliList = median(Array.from({ length: ROUNDS }, () => timeCommand([BIN, 'secret', 'list'], { env })));

    const label = `${n.toLocaleString('en')} secret${n === 1 ? '' : 's'}`;
    const ref = (measure: string, key: string, value: number) => {
      if (smallest[key] === undefined) {
        smallest[key] = value;
        return undefined;
      }
      return { measure: `${measure} at ${SIZES[0]!.toLocaleString('en')} secrets`, value: smallest[key]! };
    };
    rows.push(
      row(g, `dso secret set --no-rotate, ${label}`, cliSet, 'ms', ref('set', 'cliSet', cliSet)),
      row(g, `dso secret get, ${label}`, cliGet, 'ms', ref('get', 'cliGet', cliGet)),
      row(g, `dso secret list, ${label}`, cliList, 'ms', ref('list', 'cliList', cliList)),
      // The 10-secret vault's figure is start-up + unlock + almost no work: what lies above it is the size's cost.
      ...(smallest.cliSet === cliSet ? [] : [row(g, `  set: cost of the size (minus the ${SIZES[0]}-secret figure), ${label}`, cliSet - smallest.cliSet!, 'ms')]),
      ...(smallest.cliList === cliList ? [] : [row(g, `  list: cost of the size (minus the ${SIZES[0]}-secret figure), ${label}`, cliList - smallest.cliList!, 'ms')]),
      row(g, `open (unlock + read + decrypt), ${label}`, openMs, 'ms', { measure: 'argon2id unlock alone', value: unlock }),
      row(g, `set (rewrites the file), open vault, ${label}`, setMs, 'ms', ref('set', 'libSet', setMs)),
      row(g, `get, open vault, ${label}`, getUs, 'µs'),
      row(g, `list, open vault, ${label}`, listMs, 'ms'),
      row(g, `fill with one setMany, ${label}`, fillMs, 'ms'),
      row(g, `file size, ${label}`, size / 1024, 'KiB'),
      row(g, `bytes per secret (${VALUE_BYTES}-byte values, 17-char names), ${label}`, n > 0 ? (size - emptySize) / n : 0, 'B'),
    );
    details[`secrets${n}`] = { fileBytes: size, fillMs, openMs, setMs, getUs, listMs, cli: { setMs: cliSet, getMs: cliGet, listMs: cliList } };
  }
  const path = writeResult('vault', rows, { rounds: ROUNDS, sizes: SIZES, valueBytes: VALUE_BYTES, emptyVaultBytes: emptySize, kdf: DEFAULT_KDF_PARAMS, ...details });
  console.log(`Local vault (median of ${ROUNDS}; CLI figures include start-up and one argon2id unlock)`);
  printRows(rows);
  console.log(`written to ${path}\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
