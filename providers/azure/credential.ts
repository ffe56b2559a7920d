// The Entra ID credential for the configured auth method, wrapped so that it only ever hands out
// Key Vault tokens: whatever resource a vault's challenge names, DSO's identity is not lent to it.
import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/identity';
import type { HttpClient } from '@azure/core-rest-pipeline';
import { ProviderError } from '../../src/providers/contract.ts';
import { clientCertificateCredential } from './auth_client_certificate.ts';
import { clientSecretCredential } from './auth_client_secret.ts';
import { defaultCredential } from './auth_default.ts';
import { identityEndpointHost, managedIdentityCredential } from './auth_managed_identity.ts';
import { credentialOptions } from './auth_options.ts';
import { workloadIdentityCredential } from './auth_workload_identity.ts';
import { isKeyVaultScope, PUBLIC_AUTHORITY_HOST } from './clouds.ts';
import type { AzureConfig } from './config.ts';

export interface BuiltCredential {
  credential: TokenCredential;
  /** Credential values the provider holds (client secret, key password), to scrub from messages. */
  secrets: string[];
  /** The Entra ID host logins go to. */
  authorityHost: string;
  /** The host that answers this method's logins: the authority host, or the managed identity endpoint's. */
  loginHost: string;
  /** What messages call the login service when it is not Entra ID itself. */
  loginService?: string;
  /** Whether a token is being asked for now. */
  loggingIn(): boolean;
}

export function buildCredential(config: AzureConfig, env: Readonly<Record<string, string>>, httpClient: HttpClient): BuiltCredential {
  const auth = config.auth;
  const authorityHost = config.authority_host ?? (auth.method === 'default' ? env.AZURE_AUTHORITY_HOST : undefined) ?? PUBLIC_AUTHORITY_HOST;
  const options = credentialOptions(authorityHost, httpClient);
  let built: Omit<BuiltCredential, 'authorityHost' | 'loginHost' | 'loggingIn'>;
  switch (auth.method) {
    case 'managed_identity':
      built = { credential: managedIdentityCredential(auth.client_id, options), secrets: [], loginService: 'the managed identity endpoint' };
      break;
    case 'client_secret':
      built = clientSecretCredential(auth, env, options);
      break;
    case 'client_certificate':
      built = clientCertificateCredential(auth, env, options);
      break;
    case 'workload_identity':
      built = { credential: workloadIdentityCredential(auth, env, options), secrets: [] };
      break;
    case 'default':
      built = defaultCredential(env, options);
      break;
  }
  let pending = 0;
  const counted: TokenCredential = {
    async getToken(scopes, options) {
      pending++;
      try {
        return await built.credential.getToken(scopes, options);
      } finally {
        pending--;
      }
    },
  };
  return {
    credential: keyVaultOnly(counted, new URL(config.vault_url).hostname),
    secrets: built.secrets,
    authorityHost,
    loginHost: auth.method === 'managed_identity' ? identityEndpointHost(env) : new URL(authorityHost).host,
    ...(built.loginService === undefined ? {} : { loginService: built.loginService }),
    loggingIn: () => pending > 0,
  };
}

/**
 * The Key Vault client asks for a token for the resource named in the vault's 401 challenge. The
 * SDK checks that resource against the vault's host, but that check is off for hosts outside
 * Azure's Key Vault domains (see client.ts); this one stays on for every host.
 */
function keyVaultOnly(inner: TokenCredential, vaultHost: string): TokenCredential {
  return {
    getToken(scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken | null> {
      const list = Array.isArray(scopes) ? scopes : [scopes];
      const foreign = list.find((s) => !isKeyVaultScope(s, vaultHost));
      if (foreign !== undefined) {
        return Promise.reject(new ProviderError('invalid_response', `the vault asked for a token for ${JSON.stringify(foreign.slice(0, 200))}, which is not Azure Key Vault; DSO only requests Key Vault tokens`));
      }
      return inner.getToken(scopes, options).then(usableToken);
    },
  };
}

/**
 * The identity library hands on whatever the login answered in `access_token`: a login service
 * answering garbage must fail here, as the login, not at the vault as a token Key Vault refused.
 */
function usableToken(token: AccessToken | null): AccessToken | null {
  if (token === null) return null;
  if (typeof token.token !== 'string' || !/^[\x21-\x7e]+$/.test(token.token) || !Number.isFinite(token.expiresOnTimestamp)) {
    throw new ProviderError('invalid_response', 'the login service answered something that is not an access token');
  }
  return token;
}
