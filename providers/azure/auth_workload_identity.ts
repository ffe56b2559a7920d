// Logging in with a federated token from a file, as on AKS with workload identity: Kubernetes
// projects a service account token into the pod, and Entra ID exchanges it for an access token.
import { accessSync, constants } from 'node:fs';
import { WorkloadIdentityCredential, type TokenCredential } from '@azure/identity';
import { ProviderError } from '../../src/providers/contract.ts';
import type { CredentialOptions } from './auth_options.ts';

export interface WorkloadIdentityAuth {
  tenant_id?: string;
  client_id?: string;
  token_file?: string;
}

/** Keys dso.yaml leaves out come from what the AKS webhook injects (AZURE_TENANT_ID...). */
export function workloadIdentityCredential(auth: WorkloadIdentityAuth, env: Readonly<Record<string, string>>, options: CredentialOptions): TokenCredential {
  const tenantId = auth.tenant_id ?? required(env, 'AZURE_TENANT_ID');
  const clientId = auth.client_id ?? required(env, 'AZURE_CLIENT_ID');
  const tokenFilePath = auth.token_file ?? required(env, 'AZURE_FEDERATED_TOKEN_FILE');
  try {
    accessSync(tokenFilePath, constants.R_OK);
  } catch (e) {
    throw new ProviderError('config', `cannot read the federated token file ${tokenFilePath}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  // The SDK re-reads the file when its cached assertion is older than five minutes, so the token
  // Kubernetes rotates in place keeps working.
  return new WorkloadIdentityCredential({ ...options, tenantId, clientId, tokenFilePath });
}

function required(env: Readonly<Record<string, string>>, name: string): string {
  const value = env[name];
  if (!value) throw new ProviderError('auth', `workload identity needs ${name} (or the matching key in dso.yaml), and it is not set`);
  return value;
}
