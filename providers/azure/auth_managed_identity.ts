// Logging in as the Azure resource DSO runs on (a VM, App Service, Container Apps, AKS...):
// system-assigned, or the user-assigned identity named by its client id.
import { ManagedIdentityCredential, type TokenCredential } from '@azure/identity';
import type { CredentialOptions } from './auth_options.ts';

/** The Instance Metadata Service of an Azure VM, where MSAL asks when no variable says otherwise. */
const IMDS_HOST = 'http://169.254.169.254';

/**
 * Where the SDK will ask for a token, by the same variables and in the same order MSAL Node
 * reads them (Service Fabric, App Service and Arc's IDENTITY_ENDPOINT, Cloud Shell's and Machine
 * Learning's MSI_ENDPOINT, else IMDS or the pod identity host standing in for it): the host whose
 * answers tell a broken endpoint from a refusal.
 */
export function identityEndpointHost(env: Readonly<Record<string, string>>): string {
  const endpoint = env.IDENTITY_ENDPOINT || env.MSI_ENDPOINT || env.AZURE_POD_IDENTITY_AUTHORITY_HOST || IMDS_HOST;
  try {
    return new URL(endpoint).host;
  } catch {
    return endpoint;
  }
}

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
