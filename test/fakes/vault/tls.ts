// The fake Vault's certificate authority: the shared test CA, with one more name in the server
// certificate that no resolver knows, reached only through tls.server_name.
import { makeTestCa, type TestCa } from '../tls.ts';

export const CERT_ONLY_NAME = 'vault.dso.test';

export type VaultTestCa = TestCa;

export function makeVaultTestCa(): VaultTestCa {
  return makeTestCa({ extraNames: [CERT_ONLY_NAME] });
}
