// The combined benchmark report: reads every result file in ${BENCH_OUT_DIR:-dist/bench} (written
// by the other scripts of test/bench through result.ts), prints one table (group, measure, value,
// reference, ratio) and writes summary.json beside them.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { machine, outDir, printRows, type BenchResult, type Row } from './result.ts';

const dir = outDir();
const results: BenchResult[] = [];
for (const file of readdirSync(dir).filter((f) => f.endsWith('.json') && f !== 'summary.json').sort()) {
  try {
    const r = JSON.parse(readFileSync(join(dir, file), 'utf8')) as BenchResult;
    if (typeof r.name === 'string' && Array.isArray(r.rows)) results.push(r);
    else console.error(`skipped ${file}: not a bench result`);
  } catch (error) {
    console.error(`skipped ${file}: ${String(error)}`);
  }
}
if (results.length === 0) {
  console.error(`no bench results in ${dir}`);
  process.exit(1);
}

// The order scripts/bench.sh runs them in; anything else after, by name.
const ORDER = ['startup', 'local-mode', 'vault', 'providers', 'agent', 'rotation', 'scale'];
const rank = (name: string) => (ORDER.includes(name) ? ORDER.indexOf(name) : ORDER.length);
results.sort((a, b) => rank(a.name) - rank(b.name) || a.name.localeCompare(b.name));
const rows: Row[] = results.flatMap((r) => r.rows);
console.log(`\nDSO benchmarks: ${results.map((r) => `${r.name} (${r.date})`).join(', ')}`);
const m = results[0]!.machine;
console.log(`machine: ${m.cpus} CPUs, ${m.memGiB} GiB, Linux ${m.kernel}, ${m.arch}${results.some((r) => (r.machine.loadAverage1m ?? 0) > r.machine.cpus) ? ' (busy: the load average exceeded the CPU count during a part; figures are not final)' : ''}\n`);
printRows(rows);
const summary = {
  date: new Date().toISOString(),
  machine: machine(),
  parts: results.map((r) => ({ name: r.name, date: r.date, machine: r.machine })),
  rows,
};
const path = join(dir, 'summary.json');
writeFileSync(path, `${JSON.stringify(summary, null, 2)}\n`);
console.log(`\nsummary written to ${path}`);
