// The vault's errors read like every other DSO error (`error: <what failed>` then `hint: <what to
// do>`): lower case, no full stop, so the CLI prints them in one style whatever module threw.
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MAX_VALUE_BYTES } from '../../../src/vault/format.ts';
import { LocalVault } from '../../../src/vault/vault.ts';
import { bytes, dsoErrorOf, FAST_KDF, scratchDir } from './fixtures/helpers.ts';

let scratch: ReturnType<typeof scratchDir>;
let path: string;
const PASS = bytes('correct horse battery staple');

beforeAll(async () => {
  scratch = scratchDir('messages');
  path = join(scratch.dir, 'vault.enc');
  const vault = await LocalVault.create(path, PASS, { kdf: FAST_KDF });
  await vault.set('app/a', bytes('1'));
  vault.close();
});
afterAll(() => scratch.cleanup());

test('every vault error: lower case, no full stop, in the message and the hint', async () => {
  const whole = readFileSync(path);
  const errors = [
    await dsoErrorOf(() => LocalVault.open(path, bytes('wrong passphrase'))),
    await dsoErrorOf(() => LocalVault.open(join(scratch.dir, 'none.enc'), PASS)),
    await dsoErrorOf(() => LocalVault.create(path, PASS, { kdf: FAST_KDF })),
    await dsoErrorOf(async () => {
      const vault = await LocalVault.open(path, PASS);
      try {
        vault.get('app/missing');
      } finally {
        vault.close();
      }
    }),
    await dsoErrorOf(async () => {
      const vault = await LocalVault.open(path, PASS);
      try {
        await vault.set('../x', bytes('1'));
      } finally {
        vault.close();
      }
    }),
    await dsoErrorOf(async () => {
      const vault = await LocalVault.open(path, PASS);
      try {
        await vault.set('app/big', new Uint8Array(MAX_VALUE_BYTES + 1));
      } finally {
        vault.close();
      }
    }),
  ];
  writeFileSync(path, whole.subarray(0, 20));
  errors.push(await dsoErrorOf(() => LocalVault.open(path, PASS)));
  writeFileSync(path, '{"secrets": {}}\n');
  errors.push(await dsoErrorOf(() => LocalVault.open(path, PASS)));
  const tampered = Buffer.from(whole);
  tampered[tampered.length - 1]! ^= 1;
  writeFileSync(path, tampered);
  errors.push(await dsoErrorOf(() => LocalVault.open(path, PASS)));
  writeFileSync(path, whole);

  expect(errors.map((e) => e.code)).toEqual(['VAULT_WRONG_PASSPHRASE', 'VAULT_NOT_FOUND', 'VAULT_EXISTS', 'SECRET_NOT_FOUND', 'INVALID_SECRET_NAME', 'USAGE', 'VAULT_TRUNCATED', 'VAULT_CORRUPT', 'VAULT_TAMPERED']);
  for (const e of errors) {
    for (const text of [e.message, e.hint ?? 'x']) {
      expect(text, `${e.code}: ${text}`).toMatch(/^[a-z`]/);
      expect(text, `${e.code}: ${text}`).not.toMatch(/\.$/);
    }
  }
});
