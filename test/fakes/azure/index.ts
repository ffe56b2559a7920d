// A fake Azure for tests that use the `azure` provider: one test CA, a fake Entra ID (token
// endpoint, OpenID configuration, managed identity endpoint) and a fake Key Vault that accepts only
// the tokens that Entra issued. Reusable from any test file: `const azure = await startFakeAzure()`,
// then azure.vault.setSecret / slow / fail, azure.entra.addClientSecret..., azure.stop().
import { startFakeEntra, type FakeEntra } from './entra.ts';
import { startFakeKeyVault, type FakeKeyVault } from './keyvault.ts';
import { makeTestCa, type TestCa } from '../tls.ts';

export { startConnectProxy, type ConnectProxy } from './connect-proxy.ts';
export { KEY_VAULT_RESOURCE } from './keyvault.ts';
export { makeTestCa, startFakeEntra, startFakeKeyVault };
export type { FakeEntra, FakeKeyVault, TestCa };

export interface FakeAzure {
  ca: TestCa;
  entra: FakeEntra;
  vault: FakeKeyVault;
  /** The CA file a client must trust (dso.yaml `tls.ca_cert`). */
  caFile: string;
  /** The vault's address (dso.yaml `vault_url`); `url` is the same, as other fakes name it. */
  url: string;
  vaultUrl: string;
  authorityHost: string;
  tenantId: string;
  /** Stops both servers and removes the CA's files. */
  stop(): void;
}

export async function startFakeAzure(options: { tenantId?: string } = {}): Promise<FakeAzure> {
  const ca = makeTestCa();
  const entra = startFakeEntra(ca, options);
  const vault = startFakeKeyVault(ca, entra.tokens, entra.tenantId);
  return {
    ca,
    entra,
    vault,
    caFile: ca.caFile,
    url: vault.vaultUrl,
    vaultUrl: vault.vaultUrl,
    authorityHost: entra.authorityHost,
    tenantId: entra.tenantId,
    stop() {
      vault.stop();
      entra.stop();
      ca.remove();
    },
  };
}
