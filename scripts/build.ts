// Builds the single-file `dso` binaries into dist/: the host's by default, every release target
// with --all. Compiled binaries never read .env or bunfig.toml from the directory they run in.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dir, '..');
const ALL_TARGETS = ['linux-x64', 'linux-arm64', 'darwin-x64', 'darwin-arm64', 'linux-x64-musl', 'linux-arm64-musl'];

function hostTarget(): string {
  const os = process.platform === 'darwin' ? 'darwin' : 'linux';
  const arch = process.arch === 'arm64' ? 'arm64' : 'x64';
  return `${os}-${arch}`;
}

function entrypoints(): string[] {
  // Worker entrypoints must be compiled in as extra entrypoints to be loadable at run time.
  const workers = existsSync(join(ROOT, 'workers'))
    ? readdirSync(join(ROOT, 'workers'))
        .filter((f) => f.endsWith('.ts'))
        .map((f) => `workers/${f}`)
    : [];
  return ['src/cli/main.ts', ...workers];
}

async function build(target: string): Promise<string> {
  const outfile = `dist/dso-${target}`;
  const args = [
    process.execPath,
    'build',
    '--compile',
    '--minify',
    '--bytecode',
    '--no-compile-autoload-dotenv',
    '--no-compile-autoload-bunfig',
    `--target=bun-${target}`,
    ...entrypoints(),
    '--outfile',
    outfile,
  ];
  const started = performance.now();
  const proc = Bun.spawn(args, { cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' }, stdout: 'pipe', stderr: 'pipe' });
  const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  if (code !== 0) {
    process.stderr.write(out + err);
    throw new Error(`build for ${target} failed (exit ${code})`);
  }
  const size = (readFileSync(join(ROOT, outfile)).length / 1048576).toFixed(1);
  console.error(`built ${outfile} (${size} MiB) in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return outfile;
}

const targets = process.argv.includes('--all') ? ALL_TARGETS : [process.argv.find((a) => a.startsWith('--target='))?.slice(9) ?? hostTarget()];
const built: string[] = [];
for (const t of targets) built.push(await build(t));
const sums = built.map((f) => `${createHash('sha256').update(readFileSync(join(ROOT, f))).digest('hex')}  ${f.replace('dist/', '')}`);
writeFileSync(join(ROOT, 'dist', targets.length > 1 ? 'SHA256SUMS' : `dso-${targets[0]}.sha256`), `${sums.join('\n')}\n`);
