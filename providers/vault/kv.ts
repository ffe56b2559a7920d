// The KV secrets engine, versions 1 and 2: where a secret and a listing are read, and what of
// Vault's answer is the value. A KV v2 secret is `data.data` with its version in
// `data.metadata.version`; a KV v1 secret is `data`. The value DSO hands on is that object's JSON
// text, so `#KEY` (selected by DSO) picks one of its fields.
import { ProviderError } from '../../src/providers/contract.ts';

/** A reference's PATH, as docs/providers.md defines it; checked again here before it goes in a URL. */
const SEGMENT = /^[A-Za-z0-9_+=@.-]+$/;

export function checkPath(path: string, what = 'path'): void {
  const parts = path.split('/');
  if (path === '' || parts.some((p) => p === '' || p === '.' || p === '..' || !SEGMENT.test(p))) {
    throw new ProviderError('config', `${JSON.stringify(path.slice(0, 200))} is not a valid Vault ${what}: /-separated segments of letters, digits and _ + = @ . -`);
  }
}

const encode = (path: string) => path.split('/').map(encodeURIComponent).join('/');

/** What node-vault's read() takes for `path` (and a pinned version). */
export function readPath(mount: string, kvVersion: 1 | 2, path: string, version?: string): string {
  if (kvVersion === 1) {
    if (version !== undefined) throw new ProviderError('config', `KV version 1 (mount ${mount}) keeps no versions: remove ?version=${version.slice(0, 40)} from the reference, or use a KV v2 mount`);
    return `${mount}/${encode(path)}`;
  }
  if (version !== undefined && !/^[1-9][0-9]{0,18}$/.test(version)) throw new ProviderError('config', `a KV v2 version is a number like 3, not ${JSON.stringify(version.slice(0, 40))}`);
  return `${mount}/data/${encode(path)}${version === undefined ? '' : `?version=${version}`}`;
}

/** What node-vault's list() takes for the folder `folder` ('' or ending in '/'). */
export function listPath(mount: string, kvVersion: 1 | 2, folder: string): string {
  const f = folder === '' ? '' : encode(folder.slice(0, -1)) + '/';
  return kvVersion === 2 ? `${mount}/metadata/${f}` : `${mount}/${f}`;
}

export interface KvSecret {
  /** The object whose JSON is the value. */
  data: Record<string, unknown>;
  version?: string;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** The secret in a 200 answer. Throws not_found for a deleted version, invalid_response for anything undocumented. */
export function secretFromAnswer(body: unknown, kvVersion: 1 | 2, path: string): KvSecret {
  const data = isObject(body) ? body.data : undefined;
  if (kvVersion === 1) {
    if (!isObject(data)) throw new ProviderError('invalid_response', `Vault's answer for ${path} has no data object`);
    return { data };
  }
  if (!isObject(data)) throw new ProviderError('invalid_response', `Vault's answer for ${path} has no data object`);
  const metadata = isObject(data.metadata) ? data.metadata : undefined;
  if (data.data === null && metadata) throw deletedError(path, metadata);
  if (!isObject(data.data)) {
    throw new ProviderError('invalid_response', `Vault's answer for ${path} has no data.data object: is the mount a KV version 2 engine? (for KV version 1, set kv_version: 1)`);
  }
  const version = metadata?.version;
  return { data: data.data, ...(typeof version === 'number' && Number.isSafeInteger(version) ? { version: String(version) } : {}) };
}

/** A 404: Vault answers it for a missing path or version, and, with the metadata, for a deleted or destroyed version. */
export function notFoundError(body: unknown, path: string, version?: string): ProviderError {
  const metadata = isObject(body) && isObject(body.data) && isObject(body.data.metadata) ? body.data.metadata : undefined;
  if (metadata && (metadata.destroyed === true || (typeof metadata.deletion_time === 'string' && metadata.deletion_time !== ''))) return deletedError(path, metadata);
  return new ProviderError('not_found', `no secret ${path}${version === undefined ? '' : ` version ${version}`} in Vault (HTTP 404)`);
}

function deletedError(path: string, metadata: Record<string, unknown>): ProviderError {
  const version = typeof metadata.version === 'number' ? ` version ${metadata.version}` : '';
  const how = metadata.destroyed === true ? 'was destroyed' : 'was deleted (it can be undeleted in Vault)';
  return new ProviderError('not_found', `secret ${path}${version} ${how}`);
}

/** The keys of a LIST answer (`data.keys`; folders end in '/'). */
export function keysFromAnswer(body: unknown, folder: string): string[] {
  const keys = isObject(body) && isObject(body.data) ? body.data.keys : undefined;
  if (!Array.isArray(keys) || keys.some((k) => typeof k !== 'string')) throw new ProviderError('invalid_response', `Vault's list of ${folder || 'the mount'} has no data.keys`);
  return keys as string[];
}
