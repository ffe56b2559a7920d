// Secret references in compose files: `dso://NAME` (the value, as an environment variable) and
// `dsofile://NAME[?uid=U&gid=G&mode=0400]` (a file in RAM-backed storage; the variable gets its path).
import { DsoError } from '../errors.ts';
import { validateSecretName } from '../vault/names.ts';

export type Delivery = 'env' | 'file';

export interface FileOptions {
  uid?: number;
  gid?: number;
  mode?: number;
}

export interface SecretReference {
  delivery: Delivery;
  /** The secret's name in the local vault. */
  name: string;
  file: FileOptions;
  /** The reference as written, for messages (it holds no value). */
  raw: string;
}

const SCHEMES: Record<string, Delivery> = { 'dso://': 'env', 'dsofile://': 'file' };

export function isReference(value: unknown): value is string {
  return typeof value === 'string' && (value.startsWith('dso://') || value.startsWith('dsofile://'));
}

/** Parses one reference; `where` names its place (service and variable) for error messages. */
export function parseReference(raw: string, where: string): SecretReference {
  const scheme = raw.startsWith('dso://') ? 'dso://' : 'dsofile://';
  const delivery = SCHEMES[scheme]!;
  const rest = raw.slice(scheme.length);
  const q = rest.indexOf('?');
  const name = q === -1 ? rest : rest.slice(0, q);
  const query = q === -1 ? '' : rest.slice(q + 1);
  const fail = (why: string, hint: string) =>
    new DsoError('INVALID_REFERENCE', `${where}: malformed secret reference "${raw}": ${why}`, { hint });

  if (name === '') throw fail('no secret name', `write it as ${scheme}app/db_password`);
  if (name.includes('#')) {
    throw fail('selecting a key with #KEY is not supported for local vault secrets', 'store the field as its own secret');
  }
  if (/^[A-Za-z][A-Za-z0-9_-]*:/.test(name)) {
    throw fail(
      `provider references (${name.split(':')[0]}:...) need Cloud Mode, which this version does not have`,
      'use a secret of the local vault: store it with `docker dso secret set NAME`',
    );
  }
  try {
    validateSecretName(name);
  } catch (e) {
    if (e instanceof DsoError) throw fail(e.message, e.hint ?? 'use a name like app/db_password');
    throw e;
  }
  const file: FileOptions = {};
  if (query !== '') {
    if (delivery === 'env') throw fail('options (?...) only apply to dsofile:// references', `remove "?${query}"`);
    for (const part of query.split('&')) {
      const [k, v = ''] = part.split('=', 2) as [string, string?];
      if (k === 'uid' || k === 'gid') {
        if (!/^\d{1,10}$/.test(v) || Number(v) > 0xffffffff) throw fail(`${k} must be a numeric id`, `for example ?${k}=1000`);
        file[k] = Number(v);
      } else if (k === 'mode') {
        if (!/^0?[0-7]{3}$/.test(v)) throw fail('mode must be octal like 0400 or 0440', 'for example ?mode=0440');
        file.mode = parseInt(v, 8);
      } else {
        throw fail(`unknown option "${k}"`, 'the options are uid, gid and mode');
      }
    }
  }
  return { delivery, name, file, raw };
}
