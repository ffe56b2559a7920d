// Plan -> the model Compose runs: references replaced (values for dso://, paths for dsofile://),
// secret volumes mounted, x-dso secrets removed, DSO labels added. Environment values are spliced
// in as bytes at the very end, so they never exist as JS strings and the buffer can be wiped.
import { randomBytes } from 'node:crypto';
import { AWAIT_PROGRAM, BIN_DIR, READY_MARKER } from '../docker/in-container.ts';
import { DsoError } from '../errors.ts';
import { LABEL_CONFIG, LABEL_ENV_SECRETS, LABEL_FILES, LABEL_HOLDER, LABEL_MANAGED, LABEL_SECRETS, LABEL_VAULT, LABEL_VERSIONS } from './labels.ts';
import type { SecretPlan } from './plan.ts';

type Json = Record<string, unknown>;

/** Supplies the bytes of a secret for dso:// environment injection; the caller keeps ownership. */
export type ValueSource = (name: string) => Uint8Array;

export interface RewriteOptions {
  holder?: string;
  /** Values for dso:// references. Without it (commands that start nothing), they become "". */
  values?: ValueSource;
  /** Fingerprints of the values by id (from the agent), stamped on each service for rotation. */
  markers?: ReadonlyMap<string, string>;
  /** The local vault's id, for services that use local names. */
  vaultId?: string;
  /** `agent`, or the dso.yaml path, for services that use provider references. */
  configSource?: string;
  /**
   * For services with secret files: what their container runs (its entrypoint and command, from
   * the compose file or the image), to be started through `dso-holder await`, from the bin volume.
   */
  wrap?: { binVolume: string; commands: ReadonlyMap<string, { entrypoint: string[]; command: string[] }> };
  /**
   * A secret volume to name instead of the plan's (its `base` generation): the one a rotation put
   * every container of the service on. Compose 2.3x and later recreate a container whose named
   * volumes are not the model's (2.26 did not), which would restart every rotated container.
   */
  volumeNames?: ReadonlyMap<string, string>;
}

const BIN_VOLUME_KEY = 'dso_bin';

/** Returns the model as UTF-8 JSON bytes. The caller must wipe them after use. */
export function renderModel(model: Json, plan: SecretPlan, opts: RewriteOptions = {}): Uint8Array {
  const out = structuredClone(model);
  const services = (out.services ?? {}) as Record<string, Json>;
  checkShapes(out, plan);
  const token = `dso-value-${randomBytes(12).toString('hex')}`;
  const placeholders = new Map<string, string>();

  for (const name of Object.keys(services)) {
    setLabel(services[name]!, LABEL_MANAGED, 'true');
  }
  for (const sp of plan.services) {
    const svc = services[sp.service]!;
    const env = normaliseEnvironment(svc);
    for (const e of sp.env) {
      if (opts.values) {
        const ph = `${token}-${placeholders.size}`;
        placeholders.set(ph, e.name);
        env[e.variable] = ph;
      } else {
        env[e.variable] = '';
      }
    }
    for (const f of sp.files) if (f.variable) env[f.variable] = f.path;
    if (sp.mounts.length > 0) {
      const volumes = Array.isArray(svc.volumes) ? (svc.volumes as unknown[]) : [];
      for (const m of sp.mounts) {
        const clash = volumes.find((v) => typeof v === 'object' && v !== null && (v as Json).target === m.dir);
        if (clash) {
          throw new DsoError('COMPOSE_FILE', `service "${sp.service}" already mounts something at ${m.dir}, where DSO puts its secret files`, {
            hint: 'remove that mount or give the secrets another target directory',
          });
        }
        volumes.push({ type: 'volume', source: m.volumeKey, target: m.dir, read_only: true });
        const top = ((out.volumes ??= {}) as Json);
        top[m.volumeKey] = { name: opts.volumeNames?.get(m.volume) ?? m.volume, external: true };
      }
      const run = opts.wrap?.commands.get(sp.service);
      if (opts.wrap && run) {
        if (volumes.some((v) => typeof v === 'object' && v !== null && (v as Json).target === BIN_DIR)) {
          throw new DsoError('COMPOSE_FILE', `service "${sp.service}" already mounts something at ${BIN_DIR}, where DSO puts the program that waits for its secrets`, { hint: 'mount it elsewhere' });
        }
        volumes.push({ type: 'volume', source: BIN_VOLUME_KEY, target: BIN_DIR, read_only: true });
        ((out.volumes ??= {}) as Json)[BIN_VOLUME_KEY] = { name: opts.wrap.binVolume, external: true };
        // The application starts only once every secret volume holds its ready marker: after a
        // reboot emptied RAM, it waits for DSO instead of starting without its secrets. A compose
        // entrypoint clears the image's CMD, so the command is always given explicitly.
        svc.entrypoint = [AWAIT_PROGRAM, 'await', ...sp.mounts.map((m) => `${m.dir}/${READY_MARKER}`), '--', ...run.entrypoint];
        svc.command = run.command;
      }
      svc.volumes = volumes;
    }
    if (Array.isArray(svc.secrets)) {
      const keys = new Set(plan.xdsoKeys);
      svc.secrets = (svc.secrets as unknown[]).filter((s) => !keys.has(typeof s === 'string' ? s : String((s as Json).source)));
      if ((svc.secrets as unknown[]).length === 0) delete svc.secrets;
    }
    const names = [...new Set([...sp.env.map((e) => e.name), ...sp.files.map((f) => f.name)])].sort();
    setLabel(svc, LABEL_SECRETS, names.join(','));
    if (sp.env.length) setLabel(svc, LABEL_ENV_SECRETS, sp.env.map((e) => `${e.variable}=${e.name}`).join(','));
    if (sp.files.length) setLabel(svc, LABEL_FILES, JSON.stringify(sp.files.map((f) => ({ path: f.path, id: f.name, uid: f.uid, gid: f.gid, mode: f.mode }))));
    if (opts.holder && sp.mounts.length) setLabel(svc, LABEL_HOLDER, opts.holder);
    if (opts.vaultId && names.some((n) => !n.includes(':'))) setLabel(svc, LABEL_VAULT, opts.vaultId);
    if (opts.configSource && names.some((n) => n.includes(':'))) setLabel(svc, LABEL_CONFIG, opts.configSource);
    const markers = names.filter((n) => opts.markers?.has(n)).map((n) => [n, opts.markers!.get(n)!]);
    if (markers.length > 0) setLabel(svc, LABEL_VERSIONS, JSON.stringify(Object.fromEntries(markers)));
  }
  if (out.secrets && typeof out.secrets === 'object') {
    const secrets = out.secrets as Json;
    for (const key of plan.xdsoKeys) delete secrets[key];
    if (Object.keys(secrets).length === 0) delete out.secrets;
  }

  const text = new TextEncoder().encode(JSON.stringify(out));
  if (placeholders.size === 0) return text;
  return splice(text, token, placeholders, opts.values!);
}

/**
 * The parts of the model this rewrite edits have the shapes Compose gives them. Compose checked
 * them already; a model from elsewhere gets a message rather than a TypeError half-way through.
 */
function checkShapes(model: Json, plan: SecretPlan): void {
  const isMap = (x: unknown) => typeof x === 'object' && x !== null && !Array.isArray(x);
  const wrong = (what: string, form: string) =>
    new DsoError('COMPOSE_FILE', `${what} must be ${form}`, { hint: 'check the file with `docker compose config`' });
  if (model.volumes != null && !isMap(model.volumes)) throw wrong('the top-level volumes', 'a mapping');
  for (const [name, svc] of Object.entries((model.services ?? {}) as Record<string, unknown>)) {
    if (!isMap(svc)) throw wrong(`service "${name}"`, 'a mapping');
    const { labels } = svc as Json;
    if (labels != null && !isMap(labels) && !(Array.isArray(labels) && labels.every((l) => typeof l === 'string'))) throw wrong(`service "${name}": labels`, 'a mapping or a list of KEY=VALUE');
  }
  for (const sp of plan.services) {
    const svc = ((model.services ?? {}) as Record<string, Json>)[sp.service];
    if (svc === undefined) throw new DsoError('INTERNAL', `the plan names service "${sp.service}", which the model does not have`);
    if (svc.environment != null && !isMap(svc.environment) && !Array.isArray(svc.environment)) throw wrong(`service "${sp.service}": environment`, 'a mapping or a list of KEY=VALUE');
    if (svc.volumes != null && !Array.isArray(svc.volumes)) throw wrong(`service "${sp.service}": volumes`, 'a list');
  }
}

function normaliseEnvironment(svc: Json): Json {
  if (Array.isArray(svc.environment)) {
    const env: Json = {};
    for (const item of svc.environment as unknown[]) {
      const s = String(item);
      const eq = s.indexOf('=');
      if (eq === -1) env[s] = null;
      else env[s.slice(0, eq)] = s.slice(eq + 1);
    }
    svc.environment = env;
  }
  return (svc.environment ??= {}) as Json;
}

function setLabel(svc: Json, key: string, value: string): void {
  if (Array.isArray(svc.labels)) {
    const list = (svc.labels as string[]).filter((l) => !l.startsWith(`${key}=`));
    list.push(`${key}=${value}`);
    svc.labels = list;
  } else {
    ((svc.labels ??= {}) as Json)[key] = value;
  }
}

/** Replaces each placeholder with its secret, JSON-escaped and with `$` doubled for Compose interpolation. */
function splice(text: Uint8Array, token: string, placeholders: Map<string, string>, values: ValueSource): Uint8Array {
  const enc = new TextEncoder();
  const tokenBytes = enc.encode(token);
  const parts: Uint8Array[] = [];
  let last = 0;
  let total = 0;
  for (let i = indexOf(text, tokenBytes, 0); i !== -1; i = indexOf(text, tokenBytes, last)) {
    let end = i + tokenBytes.length + 1; // the '-' after the token
    while (end < text.length && text[end]! >= 0x30 && text[end]! <= 0x39) end++;
    const ph = new TextDecoder().decode(text.subarray(i, end));
    const name = placeholders.get(ph);
    if (name === undefined) throw new Error('internal: unknown value placeholder');
    parts.push(text.subarray(last, i));
    const escaped = escapeValue(values(name), name);
    parts.push(escaped);
    total += i - last + escaped.length;
    last = end;
  }
  parts.push(text.subarray(last));
  total += text.length - last;
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  for (let k = 1; k < parts.length; k += 2) parts[k]!.fill(0);
  return out;
}

function indexOf(hay: Uint8Array, needle: Uint8Array, from: number): number {
  outer: for (let i = from; i <= hay.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

const HEX = '0123456789abcdef';

/** JSON string escaping on bytes; refuses what an environment variable cannot hold. */
export function escapeValue(value: Uint8Array, name: string): Uint8Array {
  if (!isUtf8(value)) {
    throw new DsoError('INVALID_REFERENCE', `secret ${name} is not UTF-8 text, so it cannot be an environment variable`, {
      hint: 'deliver it as a file with dsofile:// instead',
    });
  }
  const out: number[] = [];
  for (const b of value) {
    if (b === 0) {
      throw new DsoError('INVALID_REFERENCE', `secret ${name} contains a NUL byte, which an environment variable cannot hold`, {
        hint: 'deliver it as a file with dsofile:// instead',
      });
    }
    if (b === 0x22) out.push(0x5c, 0x22);
    else if (b === 0x5c) out.push(0x5c, 0x5c);
    else if (b === 0x24) out.push(0x24, 0x24);
    else if (b < 0x20) out.push(0x5c, 0x75, 0x30, 0x30, HEX.charCodeAt(b >> 4), HEX.charCodeAt(b & 15));
    else out.push(b);
  }
  const bytes = Uint8Array.from(out);
  out.fill(0);
  return bytes;
}

export function isUtf8(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; ) {
    const c = b[i]!;
    const n = c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : -1;
    if (n < 0 || i + n >= b.length + (n === 0 ? 1 : 0)) return false;
    for (let k = 1; k <= n; k++) if ((b[i + k]! & 0xc0) !== 0x80) return false;
    const c1 = b[i + 1] ?? 0;
    if ((c === 0xe0 && c1 < 0xa0) || (c === 0xed && c1 >= 0xa0) || (c === 0xf0 && c1 < 0x90) || (c === 0xf4 && c1 >= 0x90)) {
      return false; // overlong forms, UTF-16 surrogates, beyond U+10FFFF
    }
    i += n + 1;
  }
  return true;
}
