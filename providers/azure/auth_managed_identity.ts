// Logging in as the Azure resource DSO runs on (a VM, App Service, Container Apps, AKS...):
// system-assigned, or the user-assigned identity named by its client id.
import { ManagedIdentityCredential, type TokenCredential } from '@azure/identity';
import type { CredentialOptions } from './auth_options.ts';

/**
 * The SDK (MSAL Node) finds the identity endpoint through IDENTITY_ENDPOINT, IDENTITY_HEADER,
 * AZURE_POD_IDENTITY_AUTHORITY_HOST... in the process environment, and cannot be given them
 * otherwise. Inside the provider's Worker or child process that environment is exactly the
 * provider's own (config.ts passes MANAGED_IDENTITY_VARIABLES through when they are set), so
 * what the SDK sees there is what ctx.env holds.
 */
export function managedIdentityCredential(clientId: string | undefined, options: CredentialOptions): TokenCredential {
  const { disableInstanceDiscovery: _unused, ...rest } = options;
  return new ManagedIdentityCredential({ ...rest, ...(clientId === undefined ? {} : { clientId }) });
}
