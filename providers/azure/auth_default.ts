// `method: default`: whatever the environment offers, in the order DefaultAzureCredential tries
// its non-developer credentials: a service principal from AZURE_* variables, then workload
// identity, then managed identity. Developer logins (Azure CLI, azd, PowerShell, VS Code) are left
// out: they run other programs, and a secrets daemon should not depend on someone's shell login.
import { ChainedTokenCredential, ClientCertificateCredential, ClientSecretCredential, WorkloadIdentityCredential, type TokenCredential } from '@azure/identity';
import { managedIdentityCredential } from './auth_managed_identity.ts';
import type { CredentialOptions } from './auth_options.ts';

export function defaultCredential(env: Readonly<Record<string, string>>, options: CredentialOptions): { credential: TokenCredential; secrets: string[] } {
  const chain: TokenCredential[] = [];
  const secrets: string[] = [];
  const tenantId = env.AZURE_TENANT_ID;
  const clientId = env.AZURE_CLIENT_ID;
  if (tenantId && clientId && env.AZURE_CLIENT_SECRET) {
    chain.push(new ClientSecretCredential(tenantId, clientId, env.AZURE_CLIENT_SECRET, options));
    secrets.push(env.AZURE_CLIENT_SECRET);
  } else if (tenantId && clientId && env.AZURE_CLIENT_CERTIFICATE_PATH) {
    const password = env.AZURE_CLIENT_CERTIFICATE_PASSWORD;
    chain.push(new ClientCertificateCredential(tenantId, clientId, { certificatePath: env.AZURE_CLIENT_CERTIFICATE_PATH, ...(password ? { certificatePassword: password } : {}) }, options));
    if (password) secrets.push(password);
  }
  if (tenantId && clientId && env.AZURE_FEDERATED_TOKEN_FILE) {
    chain.push(new WorkloadIdentityCredential({ ...options, tenantId, clientId, tokenFilePath: env.AZURE_FEDERATED_TOKEN_FILE }));
  }
  chain.push(managedIdentityCredential(clientId || undefined, options));
  return { credential: chain.length === 1 ? chain[0]! : new ChainedTokenCredential(...chain), secrets };
}
