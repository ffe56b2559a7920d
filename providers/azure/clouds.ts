// What DSO knows of Azure's clouds: the DNS suffixes of Key Vault in the public and sovereign
// clouds and the resource their tokens are for, and the clouds' Entra ID login hosts. Used to
// decide which SDK safety checks can stay on, and which tokens DSO may ever ask for.

/** Key Vault's DNS suffix and token resource, per cloud (public, China, US Government). */
const KEY_VAULT_CLOUDS = [
  { suffix: 'vault.azure.net', resource: 'https://vault.azure.net' },
  { suffix: 'vault.azure.cn', resource: 'https://vault.azure.cn' },
  { suffix: 'vault.usgovcloudapi.net', resource: 'https://vault.usgovcloudapi.net' },
  { suffix: 'vault.microsoftazure.de', resource: 'https://vault.microsoftazure.de' },
] as const;

/** Entra ID login hosts of the same clouds. */
const LOGIN_HOSTS = ['login.microsoftonline.com', 'login.chinacloudapi.cn', 'login.microsoftonline.us', 'login.microsoftonline.de'];

export const PUBLIC_AUTHORITY_HOST = 'https://login.microsoftonline.com';

/** True for NAME.vault.azure.net and its sovereign-cloud twins. */
export function isKeyVaultHost(hostname: string): boolean {
  const h = hostname.toLowerCase();
  return KEY_VAULT_CLOUDS.some((c) => h.endsWith(`.${c.suffix}`));
}

export function isKnownLoginHost(authorityHost: string): boolean {
  return LOGIN_HOSTS.includes(new URL(authorityHost).hostname.toLowerCase());
}

/**
 * Whether a token for `scope` may be requested for a vault at `vaultHost`: the Key Vault resource
 * of a known cloud, or a resource whose host the vault's host sits under (the SDK's own rule,
 * which also covers Azure Stack Hub's `NAME.vault.REGION.FQDN`).
 */
export function isKeyVaultScope(scope: string, vaultHost: string): boolean {
  if (!scope.endsWith('/.default')) return false;
  const resource = scope.slice(0, -'/.default'.length);
  if (KEY_VAULT_CLOUDS.some((c) => c.resource === resource)) return true;
  try {
    const u = new URL(resource);
    return u.protocol === 'https:' && vaultHost.toLowerCase().endsWith(`.${u.hostname.toLowerCase()}`);
  } catch {
    return false;
  }
}
