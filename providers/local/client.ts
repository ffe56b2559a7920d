// The local vault provider: opens the vault once (one key derivation), then re-reads the file
// whenever it changed, so that `secret set` from another process is seen.
import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { DsoError } from '../../src/errors.ts';
import { ProviderError, type CreateProvider, type Provider } from '../../src/providers/contract.ts';
import { wipeAll } from '../../src/secrets/secret-bytes.ts';
import { isValidSecretName } from '../../src/vault/names.ts';
import { passphraseFromFileContent } from '../../src/vault/passphrase.ts';
import { LocalVault } from '../../src/vault/vault.ts';
import type { LocalConfig } from './config.ts';

export const createProvider: CreateProvider<LocalConfig> = async (config, ctx) => {
  const path = config.path ?? join(ctx.env.DSO_HOME || join(ctx.env.HOME || homedir(), '.dso'), 'vault.enc');
  const passphrase = readPassphrase(config, ctx.env);
  let vault: LocalVault;
  try {
    vault = await LocalVault.open(path, passphrase);
  } catch (e) {
    throw fromVaultError(e, `opening the vault ${path}`);
  } finally {
    wipeAll(passphrase);
  }
  // Every write replaces the file atomically (a new inode, a new ctime), so an unchanged stat
  // means unchanged contents: a get then costs no lock, read or decryption of the whole vault.
  const signature = () => {
    try {
      const st = statSync(path, { bigint: true });
      return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
    } catch {
      return 'missing';
    }
  };
  let loaded = signature();
  const refresh = async () => {
    const now = signature();
    if (now === loaded) return;
    await vault.reload();
    loaded = now;
  };
  const provider: Provider = {
    capabilities: { list: true, watch: false, versions: false },
    async get(name, options) {
      if (!isValidSecretName(name)) throw new ProviderError('config', `${JSON.stringify(name)} is not a valid local vault name`);
      try {
        await refresh();
      } catch (e) {
        throw fromVaultError(e, `reading the vault ${path}`);
      }
      if (!vault.has(name)) throw new ProviderError('not_found', `secret ${name} is not in the vault ${path}`);
      const secret = vault.get(name);
      if (secret.length > options.maxBytes) {
        secret.wipe();
        throw new ProviderError('too_large', `secret ${name} is ${secret.length} bytes, over the ${options.maxBytes}-byte limit`);
      }
      // A fresh buffer the caller owns; the SecretBytes copy is ours to drop.
      const value = new Uint8Array(secret.expose());
      secret.wipe();
      return { value };
    },
    async list(prefix) {
      await refresh();
      return vault.list().map((e) => e.name).filter((n) => n.startsWith(prefix));
    },
    async close() {
      vault.close();
    },
  };
  return provider;
};

function readPassphrase(config: LocalConfig, env: Readonly<Record<string, string>>): Uint8Array {
  if (config.passphrase_env !== undefined) {
    const value = env[config.passphrase_env];
    if (!value) throw new ProviderError('auth', `the passphrase variable ${config.passphrase_env} is not set`);
    return new TextEncoder().encode(value);
  }
  try {
    return passphraseFromFileContent(readFileSync(config.passphrase_file!));
  } catch (e) {
    throw new ProviderError('config', `cannot read the passphrase file ${config.passphrase_file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

function fromVaultError(e: unknown, doing: string): ProviderError {
  if (e instanceof ProviderError) return e;
  if (e instanceof DsoError) {
    const kind = e.code === 'VAULT_WRONG_PASSPHRASE' ? 'auth' : e.code === 'VAULT_NOT_FOUND' ? 'config' : e.code === 'VAULT_LOCKED' ? 'unavailable' : 'invalid_response';
    return new ProviderError(kind, `${doing}: ${e.message}`);
  }
  return new ProviderError('internal', `${doing}: ${e instanceof Error ? e.message : String(e)}`);
}
