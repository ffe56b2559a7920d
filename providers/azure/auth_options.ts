// The options every Entra ID credential of this provider shares: the cloud's login host, the HTTP
// client that trusts the configured CA, and the retries, so that each auth method behaves alike.
import type { TokenCredentialOptions } from '@azure/identity';
import type { HttpClient } from '@azure/core-rest-pipeline';
import { isKnownLoginHost } from './clouds.ts';

export interface CredentialOptions extends TokenCredentialOptions {
  disableInstanceDiscovery?: boolean;
}

export function credentialOptions(authorityHost: string, httpClient: HttpClient): CredentialOptions {
  return {
    authorityHost,
    httpClient,
    // MSAL validates an authority it does not know by asking login.microsoftonline.com about it
    // (instance discovery). A private or test authority cannot be validated that way, and asking
    // would leak its name to the public cloud: only the clouds' own login hosts keep the check.
    ...(isKnownLoginHost(authorityHost) ? {} : { disableInstanceDiscovery: true }),
    // A failed login is retried twice; DSO's own timeout bounds the whole call.
    retryOptions: { maxRetries: 2 },
  };
}
