// Opening the local vault for a command: the passphrase from its sources, a clear error when
// there is no vault yet, and the passphrase wiped as soon as the key is derived.
import { existsSync } from 'node:fs';
import { DsoError } from '../errors.ts';
import { wipeAll } from '../secrets/secret-bytes.ts';
import { LocalVault } from '../vault/vault.ts';
import { vaultPath, type Cli } from './context.ts';
import { readPassphrase } from './passphrase.ts';

export async function openVault(cli: Cli, passphraseFile: string | undefined): Promise<LocalVault> {
  const path = vaultPath(cli.env);
  if (!existsSync(path)) {
    throw new DsoError('VAULT_NOT_FOUND', `no local vault at ${path}`, {
      hint: `create one with \`${cli.prog} init\` (or set DSO_HOME to where yours is)`,
    });
  }
  const pass = await readPassphrase(cli, passphraseFile);
  try {
    return await LocalVault.open(path, pass);
  } finally {
    wipeAll(pass);
  }
}
