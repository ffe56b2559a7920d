// Running Docker Compose: finding it (the v2 `docker compose` plugin first, else v1
// `docker-compose`), loading the user's model through `compose config`, and running a command
// on a model DSO hands over on stdin, with Compose's output and exit code passed through.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { parse } from 'yaml';
import { DsoError } from '../errors.ts';
import { loadingGlobals, type ComposeGlobals } from './args.ts';
import { discoverComposeFiles, readXDso, type MistypedXDso } from './files.ts';
import { openModelChannel } from './model-fd.ts';

export type Env = Readonly<Record<string, string | undefined>>;

/**
 * The variable an `x-dso` secret names as its Compose source: never set, so plain `docker
 * compose up` fails on it instead of starting without the secret, while `ps`, `logs`, `exec` and
 * `config` load the file (docs/local-mode.md). DSO removes the secret before Compose runs.
 */
export const X_DSO_PLACEHOLDER = 'DSO_X_DSO_PLACEHOLDER';

export interface ComposeTool {
  /** argv prefix: ['docker', 'compose'] or ['docker-compose']. */
  argv: string[];
  major: 1 | 2;
  version: string;
}

export interface LoadedProject {
  name: string;
  directory: string;
  files: string[];
  model: Record<string, unknown>;
  xdso: Map<string, string>;
  /** Secret keys that look like a mistyped `x-dso`, for the near-miss check. */
  xdsoMistyped: MistypedXDso[];
}

/** The environment Compose runs with: the user's, minus DSO's own secrets. */
export function composeEnv(env: Env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && k !== 'DSO_PASSPHRASE') out[k] = v;
  return out;
}

function dockerCli(env: Env): string {
  return env.DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND || 'docker';
}

function probe(argv: string[], env: Env): string | undefined {
  try {
    const r = Bun.spawnSync([...argv, 'version'], { env: composeEnv(env), stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' });
    return r.exitCode === 0 ? r.stdout.toString() : undefined;
  } catch {
    return undefined; // not installed
  }
}

function toolFrom(argv: string[], out: string): ComposeTool {
  const m = /version\s+v?(\d+)\.(\d+)\.(\d+)\S*/i.exec(out);
  const version = m ? m[0].split(/\s+/).pop()!.replace(/^v/, '').replace(/,$/, '') : 'unknown';
  return { argv, major: m && m[1] === '1' ? 1 : 2, version };
}

/** The directories the docker CLI searches for plugins, in its order. */
function pluginDirs(env: Env): string[] {
  const config = env.DOCKER_CONFIG || join(env.HOME || homedir(), '.docker');
  const dirs = [join(config, 'cli-plugins')];
  try {
    const extra = JSON.parse(readFileSync(join(config, 'config.json'), 'utf8'))?.cliPluginsExtraDirs;
    if (Array.isArray(extra)) dirs.push(...extra.filter((d): d is string => typeof d === 'string'));
  } catch {
    // no config.json: only the defaults
  }
  dirs.push('/usr/local/lib/docker/cli-plugins', '/usr/local/libexec/docker/cli-plugins', '/usr/lib/docker/cli-plugins', '/usr/libexec/docker/cli-plugins');
  return dirs;
}

/**
 * `DSO_COMPOSE` may name the command explicitly (e.g. "docker-compose"). Otherwise the v2 plugin
 * is found on disk where the docker CLI looks for it (no process to start: this is on the path
 * of every `dso up`), else whatever `docker compose` or `docker-compose` answers.
 */
export function findCompose(env: Env): ComposeTool {
  const forced = env.DSO_COMPOSE?.trim();
  if (!forced && pluginDirs(env).some((d) => existsSync(join(d, 'docker-compose')))) {
    return { argv: [dockerCli(env), 'compose'], major: 2, version: 'plugin' };
  }
  const candidates = forced ? [forced.split(/\s+/)] : [[dockerCli(env), 'compose'], ['docker-compose']];
  for (const argv of candidates) {
    const out = probe(argv, env);
    if (out !== undefined) return toolFrom(argv, out);
  }
  throw new DsoError('COMPOSE_NOT_FOUND', forced ? `DSO_COMPOSE="${forced}" does not run` : 'Docker Compose is not installed: neither `docker compose` nor `docker-compose` runs', {
    hint: 'install the Compose plugin (Debian/Ubuntu: apt install docker-compose-plugin or docker-compose) and check `docker compose version`',
  });
}

/** Loads the model as Compose resolves it (files merged, variables interpolated, paths absolute). */
export function loadProject(tool: ComposeTool, g: ComposeGlobals, cwd: string, env: Env): LoadedProject {
  const files = discoverComposeFiles(g, cwd, env);
  const { ids: xdso, sourced, mistyped } = readXDso(files);
  const globals = loadingGlobals({ ...g, files });
  let stdin: Uint8Array | undefined;
  const unsourced = [...xdso.keys()].filter((k) => !sourced.has(k));
  if (tool.major === 2 && unsourced.length > 0) {
    // Compose v2 refuses a secret with no source; give each x-dso secret without one (the file
    // may give its own placeholder, for plain Compose) a harmless placeholder source in an
    // override read from stdin. DSO removes these secrets before anything runs.
    const override = { secrets: Object.fromEntries(unsourced.map((k) => [k, { environment: X_DSO_PLACEHOLDER }])) };
    globals.push('-f', '-');
    stdin = new TextEncoder().encode(JSON.stringify(override));
  }
  const args = [...tool.argv, ...globals, 'config', ...(tool.major === 2 ? ['--format', 'json'] : [])];
  const r = Bun.spawnSync(args, { cwd, env: composeEnv(env), stdin: stdin ?? 'ignore', stdout: 'pipe', stderr: 'pipe' });
  if (r.exitCode !== 0) {
    const msg = r.stderr.toString().trim() || `exit code ${r.exitCode}`;
    throw new DsoError('COMPOSE_FILE', `Compose could not load the project: ${msg}`, {
      hint: `fix the compose file(s) (${files.map((f) => basename(f)).join(', ')}); \`docker compose config\` shows the same error`,
    });
  }
  const model = (tool.major === 2 ? JSON.parse(r.stdout.toString()) : parse(r.stdout.toString())) as Record<string, unknown>;
  const directory = g.projectDirectory ? resolveFrom(cwd, g.projectDirectory) : dirname(files[0]!);
  const name = typeof model.name === 'string' && model.name ? model.name : projectNameV1(g, env, directory);
  if (tool.major === 1 && model.secrets && typeof model.secrets === 'object') {
    // v1 keeps x-dso in its output; the raw-file reading above already has it.
    for (const def of Object.values(model.secrets as Record<string, Record<string, unknown>>)) delete def?.['x-dso'];
  }
  return { name, directory, files, model, xdso, xdsoMistyped: mistyped };
}

function resolveFrom(cwd: string, p: string): string {
  return p.startsWith('/') ? p : `${cwd}/${p}`;
}

function projectNameV1(g: ComposeGlobals, env: Env, directory: string): string {
  const raw = g.projectName || env.COMPOSE_PROJECT_NAME || basename(directory);
  return raw.toLowerCase().replace(/[^-_a-z0-9]/g, '');
}

/**
 * Runs `compose <globals> -f <model> <command...>`. Compose's stdout and stderr go straight to the
 * user; the model bytes are wiped by the caller once this returns.
 */
export async function runWithModel(tool: ComposeTool, globals: string[], command: string[], model: Uint8Array, cwd: string, env: Env): Promise<number> {
  const channel = openModelChannel(model);
  try {
    const proc = Bun.spawn([...tool.argv, ...globals, '-f', channel.path, ...command], {
      cwd,
      env: composeEnv(env),
      stdio: channel.stdio as never,
    });
    // Ctrl-C reaches Compose directly (same process group): only keep DSO alive meanwhile, since
    // a second SIGINT would make Compose kill containers instead of stopping them.
    const onInt = () => {};
    const onTerm = () => proc.kill('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    try {
      if (channel.viaStdin) {
        const stdin = proc.stdin as unknown as import("bun").FileSink;
        stdin.write(channel.viaStdin);
        await stdin.end();
      }
      return await proc.exited;
    } finally {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
    }
  } finally {
    channel.close();
  }
}
