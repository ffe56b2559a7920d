// The one result format every bench script writes, so test/bench/report.ts can put all figures in
// one table: `${BENCH_OUT_DIR:-dist/bench}/<name>.json` holding
//   { name, date, machine: { cpus, memGiB, kernel, arch }, rows: [Row...], ...details }.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';

/** One figure, beside its reference when there is one (ratio = value / reference.value). */
export interface Row {
  group: string;
  measure: string;
  value: number;
  unit: string;
  reference?: { measure: string; value: number };
  ratio?: number;
}

export interface Machine {
  cpus: number;
  memGiB: number;
  kernel: string;
  arch: string;
  /** What else ran: figures from a busy machine are not final. */
  loadAverage1m?: number;
}

export interface BenchResult {
  name: string;
  date: string;
  machine: Machine;
  rows: Row[];
  [detail: string]: unknown;
}

export function outDir(): string {
  return process.env.BENCH_OUT_DIR ?? 'dist/bench';
}

export function machine(): Machine {
  let load: number | undefined;
  try {
    load = Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  } catch {}
  return {
    cpus: cpus().length,
    memGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    arch: process.arch,
    ...(load === undefined ? {} : { loadAverage1m: load }),
  };
}

/** A row with its reference and the ratio filled in. */
export function row(group: string, measure: string, value: number, unit: string, reference?: { measure: string; value: number }): Row {
  return {
    group,
    measure,
    value: round(value),
    unit,
    ...(reference ? { reference: { measure: reference.measure, value: round(reference.value) }, ratio: reference.value > 0 ? round(value / reference.value, 2) : undefined } : {}),
  };
}

/** Writes the result file and returns its path. */
export function writeResult(name: string, rows: Row[], details: Record<string, unknown> = {}): string {
  const dir = outDir();
  mkdirSync(dir, { recursive: true });
  const result: BenchResult = { name, date: new Date().toISOString(), machine: machine(), rows, ...details };
  const path = join(dir, `${name}.json`);
  writeFileSync(path, `${JSON.stringify(result, null, 2)}\n`);
  return path;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Nearest-rank percentile. */
export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export function round(x: number, digits = 3): number {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Formats a number for a table: about four significant figures, no exponent. */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  return a >= 1000 ? Math.round(x).toString() : a >= 100 ? x.toFixed(1) : a >= 1 ? x.toFixed(2) : x.toFixed(3);
}

/** Prints rows as the combined report does: group, measure, value, reference, ratio. */
export function printRows(rows: readonly Row[], out: (line: string) => void = console.log): void {
  const cells = rows.map((r) => [
    r.group,
    r.measure,
    `${fmt(r.value)} ${r.unit}`,
    r.reference ? `${fmt(r.reference.value)} ${r.unit} (${r.reference.measure})` : '',
    r.ratio === undefined ? '' : `${r.ratio.toFixed(2)}x`,
  ]);
  const head = ['group', 'measure', 'value', 'reference', 'ratio'];
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((x, i) => (i === 2 || i === 4 ? x.padStart(widths[i]!) : x.padEnd(widths[i]!))).join('  ').trimEnd();
  out(line(head));
  out(line(widths.map((w) => '-'.repeat(w))));
  for (const c of cells) out(line(c));
}

/** The environment a child CLI gets: only what it needs, never the bench's own. */
export function baseEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}),
    ...(process.env.DOCKER_CONFIG ? { DOCKER_CONFIG: process.env.DOCKER_CONFIG } : {}),
    ...extra,
  };
}

/** Runs a command to completion and returns its wall time in ms; throws with its stderr on failure. */
export function timeCommand(cmd: string[], opts: { cwd?: string; env?: Record<string, string>; input?: string } = {}): number {
  const started = performance.now();
  const r = Bun.spawnSync(cmd, {
    cwd: opts.cwd,
    env: opts.env ?? baseEnv(),
    stdin: opts.input === undefined ? 'ignore' : new Blob([opts.input]),
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const ms = performance.now() - started;
  if (r.exitCode !== 0) throw new Error(`${cmd.join(' ')} failed (${r.exitCode}): ${r.stderr.toString().slice(-800)}`);
  return ms;
}

export function requireBin(): string {
  const bin = process.env.DSO_BIN;
  if (!bin) throw new Error('DSO_BIN is not set: run through scripts/bench.sh (npm run bench)');
  return bin;
}
