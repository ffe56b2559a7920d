// Azure Key Vault as a provider (`azure:db-password`): which vault, how DSO logs in to Microsoft
// Entra ID (managed identity, client secret, client certificate, workload identity, or what the
// environment offers), which cloud, and which CA to trust; and the variables each choice reads.
import * as v from 'valibot';
import type { ProviderDefinition } from '../../src/providers/contract.ts';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
// Entra ID tenant and client ids are GUIDs. A tenant named by its domain is refused: Key Vault's
// challenge names the tenant by GUID, and the SDK would refuse a token for a tenant it does not
// recognise as the configured one.
const GUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/**
 * The variables through which Azure's managed identity endpoints are found, as @azure/identity
 * 4.13 (through MSAL Node 5) reads them from the process environment: App Service, Functions and
 * Container Apps (IDENTITY_ENDPOINT, IDENTITY_HEADER), Service Fabric (IDENTITY_SERVER_THUMBPRINT
 * too), Azure Arc (IMDS_ENDPOINT), Cloud Shell and Azure ML (MSI_ENDPOINT, MSI_SECRET,
 * DEFAULT_IDENTITY_CLIENT_ID), and the IMDS address override (AZURE_POD_IDENTITY_AUTHORITY_HOST).
 * On a VM none is set and IMDS is at its fixed link-local address.
 */
export const MANAGED_IDENTITY_VARIABLES = [
  'IDENTITY_ENDPOINT',
  'IDENTITY_HEADER',
  'IDENTITY_SERVER_THUMBPRINT',
  'IMDS_ENDPOINT',
  'MSI_ENDPOINT',
  'MSI_SECRET',
  'DEFAULT_IDENTITY_CLIENT_ID',
  'AZURE_POD_IDENTITY_AUTHORITY_HOST',
] as const;

/** What `method: default` reads, like DefaultAzureCredential's non-developer credentials. */
export const DEFAULT_AUTH_VARIABLES = [
  'AZURE_TENANT_ID',
  'AZURE_CLIENT_ID',
  'AZURE_CLIENT_SECRET',
  'AZURE_CLIENT_CERTIFICATE_PATH',
  'AZURE_CLIENT_CERTIFICATE_PASSWORD',
  'AZURE_FEDERATED_TOKEN_FILE',
  'AZURE_AUTHORITY_HOST',
  ...MANAGED_IDENTITY_VARIABLES,
] as const;

const envName = (key: string, example: string) => v.pipe(v.string(`${key} must name an environment variable`), v.regex(ENV_NAME, `${key} must be a variable name like ${example}`));
const filePath = (key: string) => v.pipe(v.string(`${key} must be a file path`), v.minLength(1, `${key} must not be empty`));
const tenantId = v.pipe(v.string('tenant_id must be the directory (tenant) id'), v.regex(GUID, 'tenant_id must be the directory (tenant) id, a GUID like 00000000-0000-0000-0000-000000000000'));
const clientId = v.pipe(v.string('client_id must be the application (client) id'), v.regex(GUID, 'client_id must be a GUID like 00000000-0000-0000-0000-000000000000'));

/** An https:// origin: no path, query, fragment or user info (a vault or a login host). */
function httpsOrigin(key: string, example: string) {
  const message = `${key} must be an https:// address like ${example}, without a path`;
  return v.pipe(
    v.string(message),
    v.check((s) => {
      try {
        const u = new URL(s);
        return u.protocol === 'https:' && u.username === '' && u.password === '' && u.search === '' && u.hash === '' && (u.pathname === '/' || u.pathname === '') && !s.includes('?') && !s.includes('#');
      } catch {
        return false;
      }
    }, message),
  );
}

const managedIdentity = v.strictObject(
  {
    method: v.literal('managed_identity'),
    client_id: v.optional(clientId),
  },
  'auth with method managed_identity takes client_id (a user-assigned identity) and nothing else',
);

const clientSecret = v.pipe(
  v.strictObject(
    {
      method: v.literal('client_secret'),
      tenant_id: tenantId,
      client_id: clientId,
      client_secret_env: v.optional(envName('client_secret_env', 'AZURE_CLIENT_SECRET')),
      client_secret_file: v.optional(filePath('client_secret_file')),
    },
    'auth with method client_secret takes tenant_id, client_id, and client_secret_env or client_secret_file',
  ),
  v.check((a) => (a.client_secret_env === undefined) !== (a.client_secret_file === undefined), 'give exactly one of client_secret_env and client_secret_file'),
);

const clientCertificate = v.strictObject(
  {
    method: v.literal('client_certificate'),
    tenant_id: tenantId,
    client_id: clientId,
    certificate_file: filePath('certificate_file'),
    certificate_password_env: v.optional(envName('certificate_password_env', 'AZURE_CLIENT_CERTIFICATE_PASSWORD')),
  },
  'auth with method client_certificate takes tenant_id, client_id, certificate_file and certificate_password_env',
);

const workloadIdentity = v.strictObject(
  {
    method: v.literal('workload_identity'),
    tenant_id: v.optional(tenantId),
    client_id: v.optional(clientId),
    token_file: v.optional(filePath('token_file')),
  },
  'auth with method workload_identity takes tenant_id, client_id and token_file',
);

const defaultChain = v.strictObject({ method: v.literal('default') }, 'auth with method default takes no other keys');

const authSchema = v.variant('method', [managedIdentity, clientSecret, clientCertificate, workloadIdentity, defaultChain], 'auth.method must be managed_identity, client_secret, client_certificate, workload_identity or default');

export const azureSchema = v.strictObject(
  {
    vault_url: httpsOrigin('vault_url', 'https://NAME.vault.azure.net'),
    auth: authSchema,
    authority_host: v.optional(httpsOrigin('authority_host', 'https://login.microsoftonline.com')),
    tls: v.optional(
      v.strictObject({ ca_cert: filePath('tls.ca_cert') }, 'tls takes ca_cert (a PEM file of CA certificates to trust)'),
    ),
  },
  'the azure provider takes the keys vault_url, auth, authority_host and tls',
);

export type AzureConfig = v.InferOutput<typeof azureSchema>;
export type AzureAuth = AzureConfig['auth'];

export const definition: ProviderDefinition<AzureConfig> = {
  kind: 'azure',
  schema: azureSchema,
  environment(c) {
    const a = c.auth;
    switch (a.method) {
      case 'client_secret':
        return a.client_secret_env === undefined ? [] : [a.client_secret_env];
      case 'client_certificate':
        return a.certificate_password_env === undefined ? [] : [a.certificate_password_env];
      case 'workload_identity':
        // What the AKS workload identity webhook injects, for the keys dso.yaml leaves out.
        return [
          ...(a.tenant_id === undefined ? ['AZURE_TENANT_ID'] : []),
          ...(a.client_id === undefined ? ['AZURE_CLIENT_ID'] : []),
          ...(a.token_file === undefined ? ['AZURE_FEDERATED_TOKEN_FILE'] : []),
        ];
      default:
        return [];
    }
  },
  optionalEnvironment(c) {
    if (c.auth.method === 'managed_identity') return [...MANAGED_IDENTITY_VARIABLES];
    if (c.auth.method === 'default') return [...DEFAULT_AUTH_VARIABLES];
    return [];
  },
  // A custom CA is handed to the HTTP client itself (see http-client.ts), so no NODE_EXTRA_CA_CERTS
  // is needed and the provider can run in a Worker.
  defaultIsolation: 'worker',
};
