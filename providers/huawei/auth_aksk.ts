// `auth: { method: aksk }`: a permanent AK/SK (or a temporary one with its security token) from
// environment variables or files. Files are read again when one of them changes, so that a tool
// rotating temporary credentials on disk is followed without restarting DSO.
import { readFileSync, statSync } from 'node:fs';
import { ProviderError } from '../../src/providers/contract.ts';
import type { AkskAuth } from './config.ts';
import { keyBytes, redactionsOf, type CredentialSource } from './credentials.ts';
import type { SigningCredentials } from './signer.ts';

export function akskCredentials(auth: AkskAuth, env: Readonly<Record<string, string>>): CredentialSource {
  const files = [auth.access_key_file, auth.secret_key_file, auth.security_token_file].filter((f): f is string => f !== undefined);
  let current: SigningCredentials | undefined;
  // The credentials replaced last: a call may still be signing with them, so they are zeroed
  // one replacement later (or on close).
  let retired: SigningCredentials | undefined;
  let stamp = '';

  const load = (): SigningCredentials => {
    const accessKey = readText(auth.access_key_env, auth.access_key_file, env, 'access key');
    const secret = readText(auth.secret_key_env, auth.secret_key_file, env, 'secret key');
    const token = auth.security_token_env === undefined && auth.security_token_file === undefined ? undefined : readText(auth.security_token_env, auth.security_token_file, env, 'security token');
    return { accessKey, secretKey: keyBytes(secret), ...(token === undefined ? {} : { securityToken: token }) };
  };

  return {
    async get() {
      // Files: reload when any of them changed (size and mtime), else keep what was read.
      const now = files.length === 0 ? 'env' : files.map(fileStamp).join('|');
      if (!current || now !== stamp) {
        const next = load();
        retired?.secretKey.fill(0);
        retired = current;
        current = next;
        stamp = now;
      }
      return current;
    },
    refused: () => false,
    redactions: () => redactionsOf(current, retired),
    close() {
      retired?.secretKey.fill(0);
      current?.secretKey.fill(0);
      retired = current = undefined;
    },
  };
}

function readText(envName: string | undefined, file: string | undefined, env: Readonly<Record<string, string>>, what: string): string {
  if (envName !== undefined) {
    const value = env[envName]?.trim();
    if (!value) throw new ProviderError('auth', `the ${what} variable ${envName} is not set`);
    return value;
  }
  let raw: Buffer;
  try {
    raw = readFileSync(file!);
  } catch (e) {
    throw new ProviderError('config', `cannot read the ${what} file ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  // AKs, SKs and tokens never hold whitespace: a trailing newline from `echo` is dropped.
  const value = raw.toString('utf8').trim();
  raw.fill(0);
  if (!value) throw new ProviderError('auth', `the ${what} file ${file} is empty`);
  return value;
}

function fileStamp(path: string): string {
  try {
    const s = statSync(path);
    return `${s.size}:${s.mtimeMs}`;
  } catch {
    return 'missing';
  }
}
