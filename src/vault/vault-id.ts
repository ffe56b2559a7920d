// A local vault's identity, without its passphrase: a hash of its random salt, which is fixed for
// the vault's life and public in its header. Containers are labelled with it, so that rotating
// `app/token` touches only containers whose `app/token` came from this vault, not another user's
// vault that happens to use the same name on the same engine.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseVaultFile } from './format.ts';

export function vaultIdOf(path: string): string {
  const file = new Uint8Array(readFileSync(path));
  const { header } = parseVaultFile(file, path);
  return createHash('sha256').update('dso-vault-id\0').update(header.salt).digest('hex').slice(0, 16);
}
