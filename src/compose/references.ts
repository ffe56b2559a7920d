// Secret references in compose files: `dso://ID` (the value, as an environment variable) and
// `dsofile://ID[?uid=U&gid=G&mode=0400]` (a file in RAM-backed storage; the variable gets its path),
// where ID is a local vault name (`app/db_password`) or a provider reference
// `PROVIDER:PATH[#KEY]` (`vault:database/creds#password`), optionally pinned with `?version=V`.
// The grammar is documented in docs/providers.md (References).
import { DsoError } from '../errors.ts';
import { validateSecretName } from '../vault/names.ts';

export type Delivery = 'env' | 'file';

export interface FileOptions {
  uid?: number;
  gid?: number;
  mode?: number;
}

/** Which secret, from where: the part of a reference that says what to fetch. */
export interface SecretId {
  /** A provider's name in dso.yaml; undefined for the local vault. */
  provider?: string;
  /** The secret's name in the local vault, or its path at the provider. */
  path: string;
  /** A field of a JSON (or KEY=VALUE lines) secret. */
  key?: string;
  /** A version pinned by `?version=`. */
  version?: string;
  /**
   * The canonical form, `[PROVIDER:]PATH[#KEY][?version=V]`: the identity of the secret in plans,
   * labels and messages. It names a secret, never holds a value.
   */
  id: string;
}

export interface SecretReference extends SecretId {
  delivery: Delivery;
  /** Same as `id`; kept as the name plans and labels use. */
  name: string;
  file: FileOptions;
  /** The reference as written, for messages (it holds no value). */
  raw: string;
}

const PROVIDER_NAME = /^[a-z][a-z0-9_-]{0,62}$/;
// Wide enough for Vault paths, AWS names (`/_+=.@-`), Azure names and Huawei names; no `,` (labels
// list ids separated by commas), no `?`/`#` (the reference's own delimiters), no spaces.
const PATH_SEGMENT = /^[A-Za-z0-9_+=@.-]+$/;
const KEY = /^[A-Za-z0-9_.-]{1,128}$/;
const VERSION = /^[A-Za-z0-9_.-]{1,128}$/;

export function isReference(value: unknown): value is string {
  return typeof value === 'string' && (value.startsWith('dso://') || value.startsWith('dsofile://'));
}

class ReferenceProblem extends Error {
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }
}

/**
 * Parses the ID part of a reference (also the value of an `x-dso:` secret). Throws
 * INVALID_REFERENCE naming `where` and what is wrong.
 */
export function parseSecretId(text: string, where: string, options: { allowVersion?: boolean } = {}): SecretId {
  try {
    const scheme = /^(dso|dsofile):\/+/i.exec(text)?.[0]; // never valid: a path cannot start with "/"
    if (scheme !== undefined) {
      throw new ReferenceProblem(`"${scheme}" belongs in an environment value; here the secret is named alone`, 'write the name without it, like app/db_password or vault:database/creds#password');
    }
    const { fragment, query, base } = splitDelimiters(text);
    const id = parseId(base, fragment);
    if (query !== undefined) {
      const version = parseQuery(query, 'id').version;
      if (version !== undefined) id.version = version;
    }
    if (id.version !== undefined && options.allowVersion === false) throw new ReferenceProblem('a version cannot be pinned here', 'remove "?version=..."');
    return withCanonicalId(id);
  } catch (e) {
    if (e instanceof ReferenceProblem) throw invalid(where, text, e.message, e.hint);
    throw e;
  }
}

/** Parses one reference; `where` names its place (service and variable) for error messages. */
export function parseReference(raw: string, where: string): SecretReference {
  const scheme = raw.startsWith('dso://') ? 'dso://' : 'dsofile://';
  const delivery: Delivery = scheme === 'dso://' ? 'env' : 'file';
  try {
    const { base, fragment, query } = splitDelimiters(raw.slice(scheme.length));
    const id = parseId(base, fragment, scheme);
    const file: FileOptions = {};
    if (query !== undefined) {
      const options = parseQuery(query, delivery);
      if (options.version !== undefined) id.version = options.version;
      Object.assign(file, options.file);
    }
    const full = withCanonicalId(id);
    return { ...full, delivery, name: full.id, file, raw };
  } catch (e) {
    if (e instanceof ReferenceProblem) throw invalid(where, raw, e.message, e.hint);
    throw e;
  }
}

function invalid(where: string, raw: string, why: string, hint: string): DsoError {
  // A reference names a secret, but a runaway one (a pasted blob) must not flood the message.
  return new DsoError('INVALID_REFERENCE', `${where}: malformed secret reference ${JSON.stringify(clip(raw, 120))}: ${clip(why, 300)}`, { hint: clip(hint, 300) });
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** `BASE[#KEY][?QUERY]` or `BASE[?QUERY][#KEY]`: both orders are accepted. */
function splitDelimiters(text: string): { base: string; fragment?: string; query?: string } {
  const hash = text.indexOf('#');
  const q = text.indexOf('?');
  const end = (from: number, other: number) => (other > from ? other : text.length);
  const base = text.slice(0, Math.min(hash === -1 ? text.length : hash, q === -1 ? text.length : q));
  const fragment = hash === -1 ? undefined : text.slice(hash + 1, end(hash, q));
  const query = q === -1 ? undefined : text.slice(q + 1, end(q, hash));
  if (text.indexOf('#', hash + 1) !== -1 && hash !== -1) throw new ReferenceProblem('more than one "#"', 'select one key: PROVIDER:PATH#KEY');
  if (q !== -1 && text.indexOf('?', q + 1) !== -1) throw new ReferenceProblem('more than one "?"', 'join options with "&": ?uid=1000&mode=0440');
  return { base, fragment, query };
}

function parseId(base: string, fragment: string | undefined, scheme = ''): Omit<SecretId, 'id'> {
  const colon = base.indexOf(':');
  if (colon === -1) {
    // The local vault.
    if (base === '') throw new ReferenceProblem('no secret name', `write it as ${scheme}app/db_password or ${scheme}PROVIDER:PATH`);
    if (fragment !== undefined) {
      throw new ReferenceProblem('selecting a key with #KEY only applies to provider secrets', 'store the field as its own secret in the local vault');
    }
    try {
      validateSecretName(base);
    } catch (e) {
      if (e instanceof DsoError) throw new ReferenceProblem(e.message, e.hint ?? 'use a name like app/db_password');
      throw e;
    }
    return { path: base };
  }
  const provider = base.slice(0, colon);
  const path = base.slice(colon + 1);
  if (!PROVIDER_NAME.test(provider)) {
    throw new ReferenceProblem(
      `${JSON.stringify(provider)} is not a provider name`,
      'provider names (the keys under `providers:` in dso.yaml) are lowercase letters, digits, "_" and "-", starting with a letter',
    );
  }
  checkPath(path, provider);
  const id: Omit<SecretId, 'id'> = { provider, path };
  if (fragment !== undefined) {
    if (!KEY.test(fragment)) {
      throw new ReferenceProblem(
        fragment === '' ? 'an empty #KEY' : `#${JSON.stringify(fragment)} is not a valid key`,
        'a key is 1 to 128 letters, digits, "_", "." or "-" naming a top-level field of a JSON secret',
      );
    }
    id.key = fragment;
  }
  return id;
}

function checkPath(path: string, provider: string): void {
  const hint = `write the secret's path at ${provider}, like ${provider}:app/db_password`;
  if (path === '') throw new ReferenceProblem(`no secret path after "${provider}:"`, hint);
  if (path.length > 512) throw new ReferenceProblem(`the path is ${path.length} characters long, the limit is 512`, hint);
  if (path.startsWith('/') || path.endsWith('/')) throw new ReferenceProblem('the path starts or ends with "/"', hint);
  for (const segment of path.split('/')) {
    if (segment === '') throw new ReferenceProblem('the path contains an empty segment ("//")', hint);
    if (segment === '.' || segment === '..') throw new ReferenceProblem(`the path contains a "${segment}" segment`, 'paths cannot climb out of a provider\'s mount');
    if (!PATH_SEGMENT.test(segment)) {
      throw new ReferenceProblem(
        `path segment ${JSON.stringify(segment.length > 40 ? `${segment.slice(0, 40)}…` : segment)} has a character other than letters, digits and _ + = @ . -`,
        hint,
      );
    }
  }
}

function parseQuery(query: string, context: Delivery | 'id'): { version?: string; file: FileOptions } {
  const file: FileOptions = {};
  let version: string | undefined;
  const seen = new Set<string>();
  for (const part of query.split('&')) {
    const eq = part.indexOf('=');
    const k = eq === -1 ? part : part.slice(0, eq);
    const v = eq === -1 ? '' : part.slice(eq + 1);
    if (seen.has(k)) throw new ReferenceProblem(`option "${k}" is given twice`, 'give each option once');
    seen.add(k);
    if (k === 'version') {
      if (!VERSION.test(v)) throw new ReferenceProblem('version must be 1 to 128 letters, digits, "_", "." or "-"', 'for example ?version=3 or ?version=AWSPREVIOUS');
      version = v;
    } else if (context !== 'file' && (k === 'uid' || k === 'gid' || k === 'mode')) {
      throw new ReferenceProblem(`option "${k}" only applies to dsofile:// references`, `remove "${k}=${v}"`);
    } else if (k === 'uid' || k === 'gid') {
      if (!/^\d{1,10}$/.test(v) || Number(v) > 0xfffffffe) throw new ReferenceProblem(`${k} must be a numeric id from 0 to 4294967294`, `for example ?${k}=1000`);
      file[k] = Number(v);
    } else if (k === 'mode') {
      if (!/^0?[0-7]{3}$/.test(v)) throw new ReferenceProblem('mode must be octal like 0400 or 0440', 'for example ?mode=0440');
      file.mode = parseInt(v, 8);
    } else {
      throw new ReferenceProblem(`unknown option "${k}"`, context === 'file' ? 'the options are uid, gid, mode and version' : 'the only option here is version');
    }
  }
  return version === undefined ? { file } : { version, file };
}

function withCanonicalId(id: Omit<SecretId, 'id'>): SecretId {
  if (id.version !== undefined && id.provider === undefined) {
    throw new ReferenceProblem('the local vault keeps one version of each secret', 'remove "?version=..."');
  }
  let canonical = id.provider === undefined ? id.path : `${id.provider}:${id.path}`;
  if (id.key !== undefined) canonical += `#${id.key}`;
  if (id.version !== undefined) canonical += `?version=${id.version}`;
  return { ...id, id: canonical };
}

/** Parses a canonical id back (from a label): the inverse of `SecretId.id`. */
export function secretIdFromCanonical(id: string): SecretId {
  return parseSecretId(id, 'label');
}

/** The default in-container file path for a secret under `dir` (`/run/secrets`). */
export function defaultFilePath(dir: string, id: SecretId): string {
  const base = id.provider === undefined ? id.path : `${id.provider}/${id.path}`;
  return `${dir}/${base}${id.key === undefined ? '' : `#${id.key}`}`;
}
