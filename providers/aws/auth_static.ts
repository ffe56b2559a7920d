// `auth: { method: static }`: access keys from the environment variables dso.yaml names, or from
// a credentials file in the format of ~/.aws/credentials (read once, when the provider starts).
import { readFileSync } from 'node:fs';
import { ProviderError } from '../../src/providers/contract.ts';
import type { AwsAuthConfig } from './config.ts';

export interface StaticKeys {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

type StaticAuth = Extract<AwsAuthConfig, { method: 'static' }>;

export function staticKeys(auth: StaticAuth, env: Readonly<Record<string, string>>): StaticKeys {
  if (auth.credentials_file !== undefined) return keysFromFile(auth.credentials_file, auth.profile ?? 'default');
  const read = (name: string) => {
    const value = env[name];
    if (!value) throw new ProviderError('auth', `the variable ${name} is not set`);
    return value.trim();
  };
  const keys: StaticKeys = { accessKeyId: read(auth.access_key_id_env!), secretAccessKey: read(auth.secret_access_key_env!) };
  if (auth.session_token_env !== undefined) keys.sessionToken = read(auth.session_token_env);
  return keys;
}

function keysFromFile(path: string, profile: string): StaticKeys {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ProviderError('config', `cannot read the credentials file ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const section = credentialsSection(text, profile);
  if (!section) throw new ProviderError('config', `the credentials file ${path} has no [${profile}] section`);
  const accessKeyId = section.aws_access_key_id;
  const secretAccessKey = section.aws_secret_access_key;
  if (!accessKeyId || !secretAccessKey) {
    throw new ProviderError('config', `the [${profile}] section of ${path} needs aws_access_key_id and aws_secret_access_key`);
  }
  return { accessKeyId, secretAccessKey, ...(section.aws_session_token ? { sessionToken: section.aws_session_token } : {}) };
}

/**
 * The `key = value` pairs of section `[profile]` of an INI credentials file (keys lowercased;
 * `#` and `;` start comment lines), or undefined when there is no such section.
 */
export function credentialsSection(text: string, profile: string): Record<string, string> | undefined {
  let current: string | undefined;
  let found: Record<string, string> | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[\s*([^\]]+?)\s*\]$/.exec(line);
    if (header) {
      current = header[1];
      if (current === profile) found ??= {};
      continue;
    }
    if (current !== profile || !found) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    found[line.slice(0, eq).trim().toLowerCase()] = line.slice(eq + 1).trim();
  }
  return found;
}
