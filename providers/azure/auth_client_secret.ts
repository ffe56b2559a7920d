// Logging in as an application (service principal) with its client secret, read from the variable
// or the file that dso.yaml names.
import { readFileSync } from 'node:fs';
import { ClientSecretCredential, type TokenCredential } from '@azure/identity';
import { ProviderError } from '../../src/providers/contract.ts';
import type { CredentialOptions } from './auth_options.ts';

export interface ClientSecretAuth {
  tenant_id: string;
  client_id: string;
  client_secret_env?: string;
  client_secret_file?: string;
}

/** The credential, and the secret itself so that error messages can be scrubbed of it. */
export function clientSecretCredential(auth: ClientSecretAuth, env: Readonly<Record<string, string>>, options: CredentialOptions): { credential: TokenCredential; secrets: string[] } {
  // The SDK takes the secret as a string and keeps it for the provider's lifetime: it cannot be
  // wiped. It stays inside the provider's Worker or process.
  const secret = auth.client_secret_env !== undefined ? fromEnv(auth.client_secret_env, env) : fromFile(auth.client_secret_file!);
  return { credential: new ClientSecretCredential(auth.tenant_id, auth.client_id, secret, options), secrets: [secret] };
}

function fromEnv(name: string, env: Readonly<Record<string, string>>): string {
  const value = env[name];
  if (!value) throw new ProviderError('auth', `the client secret variable ${name} is not set`);
  return value;
}

function fromFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ProviderError('config', `cannot read the client secret file ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  // Files written by editors and `echo` end with a newline that is not part of the secret.
  const secret = text.replace(/\r?\n$/, '');
  if (secret === '' || /[\r\n]/.test(secret)) throw new ProviderError('config', `the client secret file ${path} must hold the secret on one line`);
  return secret;
}
