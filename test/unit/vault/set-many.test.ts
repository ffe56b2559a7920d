// LocalVault.setMany: many secrets in one write (used to fill large vaults, e.g. by the benchmarks).
import { afterEach, expect, test } from 'bun:test';
import { join } from 'node:path';
import { MAX_VALUE_BYTES } from '../../../src/vault/format.ts';
import { LocalVault } from '../../../src/vault/vault.ts';
import { bytes, expectCode, FAST_KDF, scratchDir } from './fixtures/helpers.ts';

let scratch: ReturnType<typeof scratchDir>;
afterEach(() => scratch.cleanup());
const PASS = bytes('correct horse battery staple');

test('setMany stores every entry in one write, keeps creation times, and another process sees them', async () => {
  scratch = scratchDir('vault-setmany');
  const path = join(scratch.dir, 'vault.enc');
  let clock = 1_700_000_000_000;
  const vault = await LocalVault.create(path, PASS, { kdf: FAST_KDF, now: () => clock });
  await vault.set('app/a', bytes('old'));
  clock += 1000;
  const values = Array.from({ length: 500 }, (_, i) => [`bulk/s-${i}`, bytes(`value-${i}`)] as const);
  await vault.setMany([...values, ['app/a', bytes('new')]]);
  vault.close();

  const again = await LocalVault.open(path, PASS);
  expect(again.list().length).toBe(501);
  expect(new TextDecoder().decode(again.get('bulk/s-321').expose())).toBe('value-321');
  expect(new TextDecoder().decode(again.get('app/a').expose())).toBe('new');
  const a = again.list().find((e) => e.name === 'app/a')!;
  expect(a.createdAt).toEqual(new Date(1_700_000_000_000));
  expect(a.updatedAt).toEqual(new Date(1_700_000_001_000));
  again.close();
});

test('setMany is all or nothing: one bad name or oversized value stores none of them', async () => {
  scratch = scratchDir('vault-setmany');
  const path = join(scratch.dir, 'vault.enc');
  const vault = await LocalVault.create(path, PASS, { kdf: FAST_KDF });
  await expectCode(() => vault.setMany([['ok/one', bytes('1')], ['bad name', bytes('2')]]), 'INVALID_SECRET_NAME');
  await expectCode(() => vault.setMany([['ok/one', bytes('1')], ['ok/big', new Uint8Array(MAX_VALUE_BYTES + 1)]]), 'USAGE');
  vault.close();
  const again = await LocalVault.open(path, PASS);
  expect(again.list()).toEqual([]);
  again.close();
});
