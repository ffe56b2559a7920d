// Token auth: a token made elsewhere (by an operator, or written to a file by Vault Agent),
// looked up at start so that a bad token shows as `auth` before any secret is asked for.
import { callOptions, lifetimeFromLookup, type VaultApi } from './api.ts';
import { readCredential, type CredentialSource } from './credentials.ts';
import { loginError } from './errors.ts';
import type { AuthMethod } from './login.ts';
import type { VaultAuthConfig } from './config.ts';

type TokenConfig = Extract<VaultAuthConfig, { method: 'token' }>;

export function tokenAuth(config: TokenConfig, api: VaultApi, env: Readonly<Record<string, string>>): AuthMethod {
  const source: CredentialSource = config.token_env !== undefined ? { env: config.token_env, key: 'token_env' } : { file: config.token_file!, key: 'token_file' };
  const from = 'env' in source ? source.env : source.file;
  return {
    describe: `the Vault token from ${from}`,
    // A token file is read again when the token stops working: Vault Agent's sink rewrites it.
    canReplace: 'file' in source,
    loginBeforeExpiry: false,
    async obtain(signal) {
      const token = readCredential(source, env, 'the Vault token');
      const doing = `checking the Vault token from ${from} (auth/token/lookup-self)`;
      let body: unknown;
      try {
        body = await api.tokenLookupSelf({ requestOptions: callOptions(token, signal) });
      } catch (e) {
        const error = loginError(e, doing, [token]);
        if (error.kind === 'auth') error.message += '; the token is invalid, expired or revoked, or lacks the default policy (which allows lookup-self)';
        throw error;
      }
      return { token, ...lifetimeFromLookup(body, doing) };
    },
  };
}
