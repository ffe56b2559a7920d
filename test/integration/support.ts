// Shared pieces of the integration tests: the compiled binary, the private engine started by
// scripts/test.sh, throwaway projects, canary secrets, and the leak scanner.
import { randomBytes } from 'node:crypto';
import { closeSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

function required(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the integration tests through scripts/test.sh (npm test), which starts a private Docker engine`);
  return v;
}

export const DSO_BIN = required('DSO_BIN');
export const DOCKER_HOST = required('DOCKER_HOST');
export const DOCKER_CONFIG = required('DOCKER_CONFIG');
export const DATA_ROOT = required('DSO_TEST_DATA_ROOT');
export const TEST_ROOT = required('DSO_TEST_ROOT');

export const PASSPHRASE = 'integration-test-passphrase';

/** A random value that cannot occur by chance, to search for afterwards. */
export function canary(label: string): string {
  return `DSOCANARY_${label}_${randomBytes(12).toString('hex')}`;
}

export interface Sandbox {
  dir: string;
  home: string;
  env: Record<string, string>;
  cleanup(): void;
}

/** A working directory and a DSO_HOME of its own, outside /tmp so /tmp scans stay meaningful. */
export function sandbox(name: string): Sandbox {
  const base = join(TEST_ROOT, 'work');
  mkdirSync(base, { recursive: true });
  const dir = mkdtempSync(join(base, `${name}-`));
  const home = join(dir, '.dso-home');
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    DOCKER_HOST,
    DOCKER_CONFIG,
    DSO_HOME: home,
    DSO_PASSPHRASE: PASSPHRASE,
    NO_COLOR: '1',
  };
  return { dir, home, env, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The Compose project name `up` gives a sandbox's directory (its name, lowercased, cleaned). */
export function projectOf(sb: Sandbox): string {
  return sb.dir.split('/').pop()!.toLowerCase().replace(/[^a-z0-9_-]/g, '');
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function run(cmd: string[], opts: { cwd?: string; env: Record<string, string>; input?: string | Uint8Array }): Promise<RunResult> {
  const proc = Bun.spawn(cmd, {
    cwd: opts.cwd,
    env: opts.env,
    stdin: opts.input === undefined ? 'ignore' : new Blob([opts.input]),
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const [code, stdout, stderr] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  return { code, stdout, stderr };
}

export function dso(sb: Sandbox, args: string[], opts: { input?: string | Uint8Array; env?: Record<string, string> } = {}): Promise<RunResult> {
  return run([DSO_BIN, ...args], { cwd: sb.dir, env: { ...sb.env, ...opts.env }, input: opts.input });
}

export function docker(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  return run(['docker', ...args], { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', DOCKER_HOST, DOCKER_CONFIG, ...env } });
}

/**
 * Polls `check` until it answers true. A check that throws, or (when `hangMs` is given) hangs past
 * it (a `docker exec` into a container being replaced, say), counts as "not yet". Past `ms` it throws an error naming
 * `what`, the check's last error and `context()` (an agent log's tail, what is not there yet).
 */
export async function waitFor(what: string, check: () => Promise<boolean>, options: { ms?: number; everyMs?: number; hangMs?: number; context?: () => string } = {}): Promise<void> {
  const end = Date.now() + (options.ms ?? 90_000);
  let last: unknown;
  for (;;) {
    try {
      const answer = options.hangMs === undefined ? check() : Promise.race([check(), Bun.sleep(options.hangMs).then(() => false)]);
      if (await answer) return;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) {
      const context = options.context?.() ?? '';
      throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${last})` : ''}${context ? `\n${context}` : ''}`);
    }
    await Bun.sleep(options.everyMs ?? 300);
  }
}

/**
 * Starts the compiled agent with nothing of this process's environment but PATH and DOCKER_HOST
 * (plus `env`: the provider's credentials, say), and collects its stderr (the JSON log) into `log`.
 * `wrap` is put before the agent's argv (`setpriv --reuid=...` to run it as another user).
 */
export function spawnAgent(options: { config: string; socket: string; stateDir: string; env?: Record<string, string>; log: string[]; wrap?: string[] }): ReturnType<typeof Bun.spawn> {
  const proc = Bun.spawn([...(options.wrap ?? []), DSO_BIN, 'agent', '--config', options.config, '--socket', options.socket, '--metrics-address', 'off', '--state-dir', options.stateDir], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', DOCKER_HOST, ...options.env },
    stdout: 'ignore',
    stderr: 'pipe',
  });
  void (async () => {
    for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) options.log.push(new TextDecoder().decode(chunk));
  })();
  return proc;
}

export async function dockerOk(args: string[]): Promise<string> {
  const r = await docker(args);
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/**
 * Restarts the private engine exactly as scripts/test-env.sh starts it (`test-env.sh restart`):
 * stopped as `down` stops it, which kills every container running on it, then started again.
 * Resolves once the engine answers. For tests of what DSO does when the engine goes away.
 */
export async function restartEngine(): Promise<void> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', HOME: process.env.HOME ?? '/root', DSO_TEST_ROOT: TEST_ROOT };
  // The profile and the engine's own settings, when the run gave it any (see the script's
  // "Profiles" and "Settings").
  for (const name of ['DSO_TEST_PROFILE', 'DSO_TEST_CACHE', 'DSO_TEST_BRIDGE', 'DSO_TEST_BIP', 'DSO_TEST_ADDR_POOL', 'DSO_TEST_FORWARD_NET', 'DSO_TEST28_ROOT', 'DSO_TEST28_BRIDGE', 'DSO_TEST28_BIP', 'DSO_TEST28_ADDR_POOL', 'DSO_TEST28_FORWARD_NET', 'DSO_TEST28_SUITE']) {
    const value = process.env[name];
    if (value) env[name] = value;
  }
  const script = resolve(import.meta.dir, '../../scripts/test-env.sh');
  const r = await run(['bash', script, 'restart'], { env });
  if (r.code !== 0) throw new Error(`restarting the private engine failed (exit ${r.code}): ${r.stderr}`);
}

export function writeFiles(dir: string, files: Record<string, string>): void {
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
}

/** Containers and volumes of a Compose project, DSO's holder and volumes included. */
export async function projectObjects(project: string): Promise<{ containers: string[]; volumes: string[] }> {
  const c1 = await dockerOk(['ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`]);
  const c2 = await dockerOk(['ps', '-aq', '--filter', `label=dso.project=${project}`]);
  const v = await dockerOk(['volume', 'ls', '-q', '--filter', `label=dso.project=${project}`]);
  const lines = (s: string) => s.split('\n').filter(Boolean);
  return { containers: [...lines(c1), ...lines(c2)], volumes: lines(v) };
}

export interface Hit {
  file: string;
  needle: string;
}

/**
 * Finds every regular file under `roots` that contains one of `needles`, staying on each root's
 * filesystem (like `find -xdev`): tmpfs mounts under the engine's data root hold secrets in RAM by
 * design, while the disk beneath them must not.
 */
export function scanForLeaks(roots: string[], needles: string[], opts: { skip?: (path: string) => boolean } = {}): Hit[] {
  const hits: Hit[] = [];
  const pats = needles.map((n) => ({ n, b: Buffer.from(n) }));
  const maxLen = Math.max(...pats.map((p) => p.b.length));
  const buf = Buffer.alloc(1 << 20);
  const scanFile = (path: string) => {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch {
      return;
    }
    try {
      let carry = Buffer.alloc(0);
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, null);
        if (n <= 0) break;
        const chunk = Buffer.concat([carry, buf.subarray(0, n)]);
        for (const p of pats) if (chunk.includes(p.b) && !hits.some((h) => h.file === path && h.needle === p.n)) hits.push({ file: path, needle: p.n });
        carry = chunk.subarray(Math.max(0, chunk.length - maxLen));
      }
    } catch {
      // unreadable special files
    } finally {
      closeSync(fd);
    }
  };
  const walk = (dir: string, dev: number) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const p = join(dir, name);
      if (opts.skip?.(p)) continue;
      let st;
      try {
        st = lstatSync(p);
      } catch {
        continue;
      }
      if (st.dev !== dev) continue;
      if (st.isDirectory()) walk(p, dev);
      else if (st.isFile()) scanFile(p);
    }
  };
  for (const root of roots) {
    let st;
    try {
      st = statSync(root);
    } catch {
      continue;
    }
    if (st.isDirectory()) walk(root, st.dev);
    else if (st.isFile()) scanFile(root);
  }
  return hits;
}
