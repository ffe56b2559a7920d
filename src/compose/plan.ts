// Observe -> plan: from the resolved Compose model, the plain-data plan of which secret goes to
// which service, how (environment or file), where, owned by whom. Pure: no I/O, no values.
import { posix } from 'node:path';
import { secretVolumeName } from '../docker/storage-names.ts';
import { MAX_ID } from '../docker/tar.ts';
import { DsoError } from '../errors.ts';
import { defaultFilePath, isReference, parseReference, parseSecretId, type SecretReference } from './references.ts';

export const DEFAULT_SECRETS_DIR = '/run/secrets';
export const DEFAULT_FILE_MODE = 0o400;

export interface EnvSecret {
  variable: string;
  name: string;
  raw: string;
}

export interface FileSecret {
  name: string;
  /** Absolute path inside the container. */
  path: string;
  uid: number;
  gid: number;
  mode: number;
  /** The environment variable that receives the path (dsofile://), if any. */
  variable?: string;
  /** The Compose secret key, for x-dso secrets. */
  secretKey?: string;
}

export interface SecretMount {
  /** Directory inside the container, backed by one tmpfs volume. */
  dir: string;
  volume: string;
  /** The key under the model's top-level `volumes:`. */
  volumeKey: string;
}

export interface ServicePlan {
  service: string;
  env: EnvSecret[];
  files: FileSecret[];
  mounts: SecretMount[];
}

export interface SecretPlan {
  project: string;
  services: ServicePlan[];
  /** Top-level secret keys that are x-dso secrets (removed from the model). */
  xdsoKeys: string[];
}

type Json = Record<string, unknown>;

/** Directories that must never be replaced by a secrets mount. */
const FORBIDDEN_DIRS = new Set(['/', '/bin', '/boot', '/dev', '/etc', '/home', '/lib', '/lib32', '/lib64', '/opt', '/proc', '/root', '/run', '/sbin', '/srv', '/sys', '/tmp', '/usr', '/var']);

export function planSecrets(
  model: Json,
  xdso: ReadonlyMap<string, string>,
  project: string,
  opts: { imageUser?: (service: string) => string | undefined } = {},
): SecretPlan {
  const services = (model.services ?? {}) as Record<string, Json>;
  const xdsoKeys = [...xdso.keys()].sort();
  // x-dso values are secret ids (a vault name or PROVIDER:PATH#KEY); plans use their canonical form.
  const xdsoIds = new Map<string, string>();
  for (const key of xdsoKeys) xdsoIds.set(key, parseSecretId(xdso.get(key)!, `secrets.${key} (x-dso)`).id);
  const plans: ServicePlan[] = [];
  for (const service of Object.keys(services).sort()) {
    const def = services[service];
    // Compose hands over a checked model; a hand-made or future one still gets a message, not a TypeError.
    if (!def || typeof def !== 'object' || Array.isArray(def)) {
      throw new DsoError('COMPOSE_FILE', `service "${service}" is not a mapping of settings`, { hint: 'check the file with `docker compose config`' });
    }
    const owner = defaultOwner(service, def.user, opts.imageUser?.(service));
    const env: EnvSecret[] = [];
    const files: FileSecret[] = [];
    for (const [variable, value] of environmentEntries(def.environment)) {
      if (!isReference(value)) continue;
      const ref: SecretReference = parseReference(value, `service "${service}", variable ${variable}`);
      if (ref.delivery === 'env') {
        env.push({ variable, name: ref.name, raw: ref.raw });
      } else {
        files.push({
          name: ref.name,
          path: defaultFilePath(DEFAULT_SECRETS_DIR, ref),
          uid: ref.file.uid ?? owner.uid,
          gid: ref.file.gid ?? ref.file.uid ?? owner.gid,
          mode: ref.file.mode ?? DEFAULT_FILE_MODE,
          variable,
        });
      }
    }
    for (const use of serviceSecrets(def.secrets, service)) {
      const name = xdsoIds.get(use.source);
      if (name === undefined) continue;
      const target = use.target ?? use.source;
      const path = target.startsWith('/') ? posix.normalize(target) : posix.join(DEFAULT_SECRETS_DIR, target);
      if (!target.startsWith('/') && (target.split('/').includes('..') || path === DEFAULT_SECRETS_DIR)) {
        throw new DsoError('INVALID_REFERENCE', `service "${service}": secret ${use.source} has an invalid target "${target}"`, {
          hint: 'use a file name like db_password or an absolute path like /run/secrets/db_password',
        });
      }
      files.push({
        name,
        path,
        uid: parseId(use.uid, service, use.source, 'uid') ?? owner.uid,
        gid: parseId(use.gid, service, use.source, 'gid') ?? parseId(use.uid, service, use.source, 'uid') ?? owner.gid,
        mode: parseMode(use.mode, service, use.source) ?? DEFAULT_FILE_MODE,
        secretKey: use.source,
      });
    }
    if (env.length === 0 && files.length === 0) continue;
    checkPaths(service, files);
    plans.push({ service, env, files, mounts: mountsFor(project, service, files) });
  }
  return { project, services: plans, xdsoKeys };
}

/** `environment` as Compose allows it: a map, or a list of `KEY=VALUE`. */
export function environmentEntries(environment: unknown): Array<[string, unknown]> {
  if (Array.isArray(environment)) {
    return environment.map((item) => {
      const s = String(item);
      const eq = s.indexOf('=');
      return eq === -1 ? [s, null] : [s.slice(0, eq), s.slice(eq + 1)];
    });
  }
  if (environment && typeof environment === 'object') return Object.entries(environment as Json);
  return [];
}

interface SecretUse {
  source: string;
  target?: string;
  uid?: unknown;
  gid?: unknown;
  mode?: unknown;
}

function serviceSecrets(secrets: unknown, service: string): SecretUse[] {
  if (!Array.isArray(secrets)) return [];
  return secrets.map((s, i) => {
    if (typeof s === 'string') return { source: s };
    const use = s as Partial<SecretUse> | null;
    if (typeof use !== 'object' || use === null || typeof use.source !== 'string' || (use.target !== undefined && typeof use.target !== 'string')) {
      throw new DsoError('COMPOSE_FILE', `service "${service}": secrets[${i}] must be a secret name or a mapping with source (and target) names`, {
        hint: 'write `- db_password` or `- source: db_password` with `target: db_password`',
      });
    }
    return use as SecretUse;
  });
}

function parseId(v: unknown, service: string, key: string, what: string): number | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const s = String(v);
  if (!/^\d{1,10}$/.test(s) || Number(s) > MAX_ID) {
    throw new DsoError('INVALID_REFERENCE', `service "${service}": secret ${key} has ${what} "${s}"; it must be a number from 0 to ${MAX_ID}`, {
      hint: `write ${what}: "1000"`,
    });
  }
  return Number(s);
}

function parseMode(v: unknown, service: string, key: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  const n = typeof v === 'number' ? v : /^0?[0-7]{3}$/.test(String(v)) ? parseInt(String(v), 8) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 0o777) {
    throw new DsoError('INVALID_REFERENCE', `service "${service}": secret ${key} has an invalid mode`, {
      hint: 'write mode: 0400 (octal)',
    });
  }
  return n;
}

/**
 * The owner of secret files when the reference does not say: the service's numeric user (from the
 * compose file, else the image), else root. An id no Linux user can have is refused: the engine
 * would cut it to 32 bits and give the file to someone else.
 */
function defaultOwner(service: string, composeUser: unknown, imageUser: string | undefined): { uid: number; gid: number } {
  const user = composeUser ?? imageUser;
  const m = typeof user === 'string' || typeof user === 'number' ? /^(\d+)(?::(\d+))?$/.exec(String(user)) : null;
  if (!m) return { uid: 0, gid: 0 };
  const uid = Number(m[1]);
  const gid = m[2] === undefined ? uid : Number(m[2]);
  if (uid > MAX_ID || gid > MAX_ID) {
    throw new DsoError('INVALID_REFERENCE', `service "${service}": its user "${String(user)}"${composeUser === undefined ? ' (from its image)' : ''} is not a uid[:gid] from 0 to ${MAX_ID}`, {
      hint: 'give the service a valid numeric user:, or ?uid= and ?gid= on its dsofile:// references',
    });
  }
  return { uid, gid };
}

function checkPaths(service: string, files: FileSecret[]): void {
  const byPath = new Map<string, FileSecret>();
  for (const f of files) {
    const prev = byPath.get(f.path);
    if (prev && (prev.name !== f.name || prev.uid !== f.uid || prev.gid !== f.gid || prev.mode !== f.mode)) {
      throw new DsoError('INVALID_REFERENCE', `service "${service}": two secrets want the same file ${f.path} (${prev.name} and ${f.name})`, {
        hint: 'give one of them another target',
      });
    }
    byPath.set(f.path, f);
  }
  for (const a of byPath.keys()) {
    for (const b of byPath.keys()) {
      if (a !== b && b.startsWith(`${a}/`)) {
        throw new DsoError('INVALID_REFERENCE', `service "${service}": secret file ${a} would also have to be the directory of ${b}`, {
          hint: 'rename one of the secrets or give it another target',
        });
      }
    }
  }
}

function mountsFor(project: string, service: string, files: FileSecret[]): SecretMount[] {
  const dirs = new Set<string>();
  for (const f of files) {
    if (f.path.startsWith(`${DEFAULT_SECRETS_DIR}/`)) {
      dirs.add(DEFAULT_SECRETS_DIR);
      continue;
    }
    const dir = posix.dirname(f.path);
    if (FORBIDDEN_DIRS.has(dir)) {
      throw new DsoError('INVALID_REFERENCE', `service "${service}": secret target ${f.path} would replace the system directory ${dir}`, {
        hint: `DSO mounts a RAM-backed directory over a target's directory; put the target under ${DEFAULT_SECRETS_DIR}/ or in a directory of its own`,
      });
    }
    dirs.add(dir);
  }
  for (const d of dirs) {
    for (const e of dirs) {
      if (d !== e && e.startsWith(`${d}/`)) {
        throw new DsoError('INVALID_REFERENCE', `service "${service}": secret directories ${d} and ${e} are nested`, {
          hint: 'put the secret targets in one directory or in unrelated ones',
        });
      }
    }
  }
  return [...dirs].sort().map((dir) => {
    const volume = secretVolumeName(project, service, dir);
    return { dir, volume, volumeKey: volume };
  });
}
