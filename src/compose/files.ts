// Which compose files a command uses (Compose's own discovery rules), and the `x-dso` secrets
// they declare, read from the raw files because Compose v2 drops unknown secret sources.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parse } from 'yaml';
import { DsoError, fsReason } from '../errors.ts';
import { editDistance } from '../cli/suggest.ts';
import type { ComposeGlobals } from './args.ts';

const DEFAULT_FILES = ['compose.yaml', 'compose.yml', 'docker-compose.yaml', 'docker-compose.yml'];
const OVERRIDE_FILES = [
  'compose.override.yaml',
  'compose.override.yml',
  'docker-compose.override.yaml',
  'docker-compose.override.yml',
];

export function discoverComposeFiles(g: ComposeGlobals, cwd: string, env: Readonly<Record<string, string | undefined>>): string[] {
  if (g.files.length > 0) {
    if (g.files.includes('-')) {
      throw new DsoError('USAGE', 'reading the compose file from stdin (-f -) is not supported by dso', {
        hint: 'pass the compose file by path with -f FILE',
      });
    }
    return g.files.map((f) => resolve(cwd, f));
  }
  const start = g.projectDirectory ? resolve(cwd, g.projectDirectory) : cwd;
  const fromEnv = env.COMPOSE_FILE ?? dotEnvValue(start, 'COMPOSE_FILE');
  if (fromEnv) {
    const sep = env.COMPOSE_PATH_SEPARATOR || (process.platform === 'win32' ? ';' : ':');
    return fromEnv
      .split(sep)
      .filter(Boolean)
      .map((f) => resolve(start, f));
  }
  for (let dir = start; ; dir = dirname(dir)) {
    const main = DEFAULT_FILES.map((f) => join(dir, f)).find((f) => existsSync(f));
    if (main) {
      const override = OVERRIDE_FILES.map((f) => join(dir, f)).find((f) => existsSync(f));
      return override ? [main, override] : [main];
    }
    if (dirname(dir) === dir) break;
  }
  throw new DsoError('COMPOSE_FILE', `no compose file found in ${start} or its parent directories`, {
    hint: `create compose.yaml there, or name one with -f FILE (looked for ${DEFAULT_FILES.join(', ')})`,
  });
}

/** One variable from a `.env` file, for the few Compose settings that may live there. */
function dotEnvValue(dir: string, key: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(join(dir, '.env'), 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (m && m[1] === key) return m[2]!.replace(/^(['"])(.*)\1$/, '$2');
  }
  return undefined;
}

/** What the compose files say about `x-dso` secrets, read from the raw files. */
export interface XDsoSecrets {
  /** Top-level `secrets: {KEY: {x-dso: NAME}}`; later files win, as in Compose. */
  ids: Map<string, string>;
  /** Keys of those that also name a Compose source (`environment:` or `file:`), as plain Compose needs. */
  sourced: Set<string>;
  /** Keys of secrets that look like a mistyped `x-dso` (`X-DSO`, `x_dso`, `x-dos`...), for near-miss warnings. */
  mistyped: MistypedXDso[];
}

export interface MistypedXDso {
  secret: string;
  /** The key as written, e.g. `x-dos`. */
  key: string;
  /** Its value when it is a string (a secret name, or whatever was written). */
  value?: string;
}

/** The `x-dso` secrets of the files: see XDsoSecrets. */
export function readXDso(files: readonly string[]): XDsoSecrets {
  const ids = new Map<string, string>();
  const sourced = new Set<string>();
  const mistyped = new Map<string, MistypedXDso>();
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new DsoError('COMPOSE_FILE', `cannot read ${file}: ${fsReason(e)}`, {
        hint: 'check the path given with -f (or COMPOSE_FILE)',
      });
    }
    let doc: unknown;
    try {
      doc = parse(text);
    } catch {
      continue; // Compose reports YAML errors itself, in the words users know, when it loads the file
    }
    const secrets = (doc as { secrets?: unknown } | null)?.secrets;
    if (!secrets || typeof secrets !== 'object') continue;
    for (const [key, def] of Object.entries(secrets as Record<string, unknown>)) {
      if (!def || typeof def !== 'object') continue;
      const fields = def as Record<string, unknown>;
      if (fields.file !== undefined || fields.environment !== undefined) sourced.add(key);
      for (const [field, value] of Object.entries(fields)) {
        if (field !== 'x-dso' && looksLikeXDsoKey(field)) mistyped.set(`${key}\0${field}`, { secret: key, key: field, ...(typeof value === 'string' ? { value } : {}) });
      }
      const name = fields['x-dso'];
      if (name === undefined) {
        ids.delete(key);
        continue;
      }
      if (typeof name !== 'string') {
        throw new DsoError('INVALID_REFERENCE', `secrets.${key}.x-dso in ${file} must be a secret name string`, {
          hint: 'write it as `x-dso: app/db_password`',
        });
      }
      ids.set(key, name);
    }
  }
  return { ids, sourced, mistyped: [...mistyped.values()] };
}

/** Top-level `secrets: {KEY: {x-dso: NAME}}` across the files; later files win, as in Compose. */
export function collectXDso(files: readonly string[]): Map<string, string> {
  return readXDso(files).ids;
}

/**
 * A secret's key that was probably meant to be `x-dso`: another case or separator (`X-DSO`,
 * `x_dso`, `xdso`), one letter off after the `x` (`x-dos`, `x-dsp`), or the bare `dso`.
 */
export function looksLikeXDsoKey(key: string): boolean {
  const word = key.toLowerCase().replace(/[^a-z0-9]/g, '');
  if (word === 'xdso' || word === 'dso') return true;
  return word.startsWith('x') && word.length >= 4 && word.length <= 5 && editDistance(word.slice(1), 'dso') === 1;
}

/** The service names the compose files define (for shell completion); unreadable files add none. */
export function serviceNames(files: readonly string[]): string[] {
  const names = new Set<string>();
  for (const file of files) {
    try {
      const services = (parse(readFileSync(file, 'utf8')) as { services?: unknown } | null)?.services;
      if (services && typeof services === 'object') for (const name of Object.keys(services)) names.add(name);
    } catch {
      // completion offers what it can read
    }
  }
  return [...names].sort();
}
