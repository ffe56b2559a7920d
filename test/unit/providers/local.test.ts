// The local vault as a provider: values, changes made by another writer, and its errors.
import { afterAll, expect, test } from 'bun:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as v from 'valibot';
import { createProvider } from '../../../providers/local/client.ts';
import { definition } from '../../../providers/local/config.ts';
import { ProviderError } from '../../../src/providers/contract.ts';
import { LocalVault } from '../../../src/vault/vault.ts';

const dir = mkdtempSync(join(tmpdir(), 'dso-local-provider-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const FAST_KDF = { memoryKiB: 64, iterations: 1, parallelism: 1 };
const PASS = 'local provider passphrase';
const enc = (s: string) => new TextEncoder().encode(s);
const opts = () => ({ maxBytes: 1024, signal: AbortSignal.timeout(5000) });

async function kind(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    expect(e).toBeInstanceOf(ProviderError);
    return (e as ProviderError).kind;
  }
}

test('reads values, sees later writes, lists names, and refuses what it must', async () => {
  const path = join(dir, 'vault.enc');
  const writer = await LocalVault.create(path, enc(PASS), { kdf: FAST_KDF });
  await writer.set('app/token', enc('token-value-1'));
  const config = v.parse(definition.schema, { path, passphrase_env: 'P' });
  expect(definition.environment(config)).toEqual(['P']);
  const p = await createProvider(config, { name: 'home', env: { P: PASS }, log: () => {} });
  expect(new TextDecoder().decode((await p.get('app/token', opts())).value)).toBe('token-value-1');
  await writer.set('app/token', enc('token-value-2'));
  await writer.set('app/big', new Uint8Array(2000));
  writer.close();
  expect(new TextDecoder().decode((await p.get('app/token', opts())).value)).toBe('token-value-2');
  expect(await p.list!('app/', { signal: AbortSignal.timeout(1000) })).toEqual(['app/big', 'app/token']);
  expect(await kind(p.get('app/missing', opts()))).toBe('not_found');
  expect(await kind(p.get('app/big', opts()))).toBe('too_large');
  expect(await kind(p.get('../etc', opts()))).toBe('config');
  await p.close!();
});

test('a wrong passphrase is an auth error; a passphrase file is read like --passphrase-file', async () => {
  const path = join(dir, 'vault2.enc');
  (await LocalVault.create(path, enc(PASS), { kdf: FAST_KDF })).close();
  const wrong = v.parse(definition.schema, { path, passphrase_env: 'P' });
  expect(await kind(createProvider(wrong, { name: 'home', env: { P: 'not the passphrase' }, log: () => {} }))).toBe('auth');
  expect(await kind(createProvider(wrong, { name: 'home', env: {}, log: () => {} }))).toBe('auth');
  writeFileSync(join(dir, 'pass'), `${PASS}\nsecond line ignored\n`);
  const fromFile = v.parse(definition.schema, { path, passphrase_file: join(dir, 'pass') });
  const p = await createProvider(fromFile, { name: 'home', env: {}, log: () => {} });
  await p.close!();
  expect(v.safeParse(definition.schema, { path }).success).toBe(false);
});
