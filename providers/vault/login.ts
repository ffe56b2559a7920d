// What every auth method gives the session: a way to obtain a token, and whether obtaining one
// again can replace a token that expired or was revoked.
import { leaseFromAuth, type TokenLease } from './api.ts';
import { loginError } from './errors.ts';

export interface AuthMethod {
  /** For messages: "the Vault token from VAULT_TOKEN", "the AppRole login at auth/approle". */
  readonly describe: string;
  /** A token: a login, or the configured token, looked up. Throws `auth` when the credentials do not work. */
  obtain(signal: AbortSignal): Promise<TokenLease>;
  /** Whether obtain() can give a new token: logins can, and so can a token file that Vault Agent rewrites. */
  readonly canReplace: boolean;
  /** Whether to log in again before the TTL ends when the token cannot be renewed (login methods only). */
  readonly loginBeforeExpiry: boolean;
}

/**
 * Sends a login and reads the token from Vault's answer. `known` are the credentials sent, which
 * Vault may echo in an error (AppRole has quoted a secret id it refused) and are removed.
 */
export async function loginWith(doing: string, known: Array<string | undefined>, send: () => Promise<unknown>): Promise<TokenLease> {
  let body: unknown;
  try {
    body = await send();
  } catch (e) {
    throw loginError(e, doing, known.filter((k): k is string => k !== undefined));
  }
  return leaseFromAuth(body, doing);
}
