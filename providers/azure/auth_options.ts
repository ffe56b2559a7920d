// The options every Entra ID credential of this provider shares: the cloud's login host, the HTTP
// client that trusts the configured CA, and the retries, so that each auth method behaves alike.
import type { TokenCredentialOptions } from '@azure/identity';
import type { HttpClient } from '@azure/core-rest-pipeline';
import { isKnownLoginHost } from './clouds.ts';

export interface CredentialOptions extends TokenCredentialOptions {
  disableInstanceDiscovery?: boolean;
}

/**
 * A failed request (to Key Vault or to a login) is retried twice, soon: with the SDK's default
 * first wait (0.8 s, doubling) two retries alone outlast a timeout of a few seconds, and the call
 * would end as "timed out" instead of saying what the backend answered. DSO's own timeout bounds
 * the whole call; Retry-After on 429 and 503 is still honoured.
 */
export const RETRY_OPTIONS = { maxRetries: 2, retryDelayInMs: 200, maxRetryDelayInMs: 1000 };

export function credentialOptions(authorityHost: string, httpClient: HttpClient): CredentialOptions {
  return {
    authorityHost,
    httpClient,
    // MSAL validates an authority it does not know by asking login.microsoftonline.com about it
    // (instance discovery). A private or test authority cannot be validated that way, and asking
    // would leak its name to the public cloud: only the clouds' own login hosts keep the check.
    ...(isKnownLoginHost(authorityHost) ? {} : { disableInstanceDiscovery: true }),
    retryOptions: RETRY_OPTIONS,
  };
}
