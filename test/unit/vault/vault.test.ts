import { afterEach, describe, expect, test } from 'bun:test';
import { copyFileSync, existsSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sha256 } from '@noble/hashes/sha2.js';
import { HEADER_LENGTH, MAX_VALUE_BYTES } from '../../../src/vault/format.ts';
import { DEFAULT_KDF_PARAMS, LocalVault } from '../../../src/vault/vault.ts';
import { bytes, containsBytes, expectCode, FAST_KDF, runUnderFileSizeLimit, scratchDir } from './fixtures/helpers.ts';

let scratch: ReturnType<typeof scratchDir>;
afterEach(() => scratch.cleanup());

const PASS = bytes('correct horse battery staple');

function freshVaultPath(): string {
  scratch = scratchDir('vault');
  return join(scratch.dir, 'dso', 'vault.enc');
}

async function createWith(path: string, entries: Record<string, string> = {}): Promise<void> {
  const vault = await LocalVault.create(path, PASS, { kdf: FAST_KDF });
  for (const [name, value] of Object.entries(entries)) await vault.set(name, bytes(value));
  vault.close();
}

function text(vault: LocalVault, name: string): string {
  const secret = vault.get(name);
  try {
    return new TextDecoder().decode(secret.expose());
  } finally {
    secret.wipe();
  }
}

/** Flips one bit of the vault file in place. */
function flipBit(path: string, offset: number): void {
  const file = readFileSync(path);
  file[offset]! ^= 0x01;
  writeFileSync(path, file);
}

describe('LocalVault basics', () => {
  test('create, set, get, list, has, remove, and reopen', async () => {
    const path = freshVaultPath();
    let clock = 1_700_000_000_000;
    const vault = await LocalVault.create(path, PASS, { kdf: FAST_KDF, now: () => clock });
    expect(vault.list()).toEqual([]);

    await vault.set('app/db_password', bytes('hunter2'));
    clock += 1000;
    await vault.set('prod.api-key', new Uint8Array([0, 1, 2, 255]));
    expect(vault.has('app/db_password')).toBe(true);
    expect(vault.has('nope')).toBe(false);
    expect(text(vault, 'app/db_password')).toBe('hunter2');
    expect([...vault.get('prod.api-key').expose()]).toEqual([0, 1, 2, 255]);

    clock += 1000;
    await vault.set('app/db_password', bytes('hunter3'));
    expect(vault.list()).toEqual([
      { name: 'app/db_password', size: 7, createdAt: new Date(1_700_000_000_000), updatedAt: new Date(1_700_000_002_000) },
      { name: 'prod.api-key', size: 4, createdAt: new Date(1_700_000_001_000), updatedAt: new Date(1_700_000_001_000) },
    ]);

    expect(await vault.remove('prod.api-key')).toBe(true);
    expect(await vault.remove('prod.api-key')).toBe(false);
    vault.close();

    const reopened = await LocalVault.open(path, PASS);
    expect(reopened.list().map((e) => e.name)).toEqual(['app/db_password']);
    expect(text(reopened, 'app/db_password')).toBe('hunter3');
    expect(reopened.list()[0]!.createdAt).toEqual(new Date(1_700_000_000_000));
    reopened.close();
  });

  test('get returns a copy the caller owns, and set does not keep the caller buffer', async () => {
    const path = freshVaultPath();
    const vault = await LocalVault.create(path, PASS, { kdf: FAST_KDF });
    const value = bytes('s3cret');
    const pending = vault.set('a', value);
    value.fill(0); // the caller reuses its buffer before set has finished
    await pending;
    const copy = vault.get('a');
    copy.wipe();
    expect(text(vault, 'a')).toBe('s3cret');
    const kept = vault.get('a');
    vault.close();
    expect(new TextDecoder().decode(kept.expose())).toBe('s3cret'); // close wipes the vault's buffers, not the caller's
    await expectCode(() => vault.get('a'), 'INTERNAL');
  });

  test('unknown names and invalid names give their own errors', async () => {
    const path = freshVaultPath();
    const vault = await LocalVault.create(path, PASS, { kdf: FAST_KDF });
    const missing = await expectCode(() => vault.get('app/missing'), 'SECRET_NOT_FOUND');
    expect(missing.message).toContain('app/missing');
    await expectCode(() => vault.set('../escape', bytes('value-xyz')), 'INVALID_SECRET_NAME');
    await expectCode(() => vault.set('a', new Uint8Array(MAX_VALUE_BYTES + 1)), 'USAGE');
    vault.close();
  });

  test('create refuses an existing vault, bad KDF parameters and an empty passphrase', async () => {
    const path = freshVaultPath();
    await createWith(path, { a: '1' });
    const before = readFileSync(path);
    await expectCode(() => LocalVault.create(path, PASS, { kdf: FAST_KDF }), 'VAULT_EXISTS');
    expect(readFileSync(path)).toEqual(before);
    await expectCode(
      () => LocalVault.create(join(scratch.dir, 'other.enc'), PASS, { kdf: { ...FAST_KDF, iterations: 0 } }),
      'USAGE',
    );
    await expectCode(() => LocalVault.create(join(scratch.dir, 'other.enc'), new Uint8Array(0), { kdf: FAST_KDF }), 'PASSPHRASE_REQUIRED');
    expect(existsSync(join(scratch.dir, 'other.enc'))).toBe(false);
  });

  test('open of a missing vault says to run docker dso init', async () => {
    const path = freshVaultPath();
    const error = await expectCode(() => LocalVault.open(path, PASS), 'VAULT_NOT_FOUND');
    expect(error.message).toContain(path);
    expect(error.hint).toContain('docker dso init');
  });

  test('the vault directory is 0700, the vault and its lock file 0600', async () => {
    const path = freshVaultPath();
    const oldUmask = process.umask(0);
    try {
      await createWith(path, { a: '1' });
    } finally {
      process.umask(oldUmask);
    }
    expect(statSync(join(scratch.dir, 'dso')).mode & 0o777).toBe(0o700);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(`${path}.lock`).mode & 0o777).toBe(0o600);
    expect(readdirSync(join(scratch.dir, 'dso')).sort()).toEqual(['vault.enc', 'vault.enc.lock']);
  });

  test('the file holds neither values nor names in the clear', async () => {
    const path = freshVaultPath();
    const entries = { 'app/db_password': 'PLAINTEXT-VALUE-ONE', 'prod.api-key': 'PLAINTEXT-VALUE-TWO' };
    await createWith(path, entries);
    const raw = new Uint8Array(readFileSync(path));
    for (const [name, value] of Object.entries(entries)) {
      expect(containsBytes(raw, bytes(name))).toBe(false);
      expect(containsBytes(raw, bytes(value))).toBe(false);
    }
    expect(containsBytes(raw, bytes('PLAINTEXT'))).toBe(false);
    expect(containsBytes(raw, bytes('db_password'))).toBe(false);
  });

  test('every write uses a fresh nonce', async () => {
    const path = freshVaultPath();
    const vault = await LocalVault.create(path, PASS, { kdf: FAST_KDF });
    const nonces = new Set<string>();
    for (let i = 0; i < 5; i++) {
      await vault.set('same', bytes('same value'));
      nonces.add(readFileSync(path).subarray(68, 80).toString('hex'));
    }
    vault.close();
    expect(nonces.size).toBe(5);
  });

  test('works with the default KDF parameters', async () => {
    const path = freshVaultPath();
    const vault = await LocalVault.create(path, PASS);
    await vault.set('a', bytes('1'));
    vault.close();
    const header = new DataView(readFileSync(path).buffer);
    expect([header.getUint32(11), header.getUint32(15), header.getUint8(19)]).toEqual([
      DEFAULT_KDF_PARAMS.memoryKiB,
      DEFAULT_KDF_PARAMS.iterations,
      DEFAULT_KDF_PARAMS.parallelism,
    ]);
    const reopened = await LocalVault.open(path, PASS);
    expect(text(reopened, 'a')).toBe('1');
    reopened.close();
  });
});

describe('LocalVault refuses damaged or foreign files', () => {
  test('wrong passphrase', async () => {
    const path = freshVaultPath();
    await createWith(path, { a: '1' });
    const error = await expectCode(() => LocalVault.open(path, bytes('wrong')), 'VAULT_WRONG_PASSPHRASE');
    expect(error.message).toContain(path);
  });

  test('truncated at several points', async () => {
    const path = freshVaultPath();
    await createWith(path, { a: 'some value', b: 'another' });
    const whole = readFileSync(path);
    for (const cut of [0, 5, 9, 40, HEADER_LENGTH - 1, HEADER_LENGTH, HEADER_LENGTH + 3, whole.length - 16, whole.length - 1]) {
      writeFileSync(path, whole.subarray(0, cut));
      await expectCode(() => LocalVault.open(path, PASS), 'VAULT_TRUNCATED');
    }
  });

  test('a flipped bit in the ciphertext or the tag is tampering', async () => {
    const path = freshVaultPath();
    await createWith(path, { a: 'some value' });
    const whole = readFileSync(path);
    for (const offset of [HEADER_LENGTH, HEADER_LENGTH + 7, whole.length - 1]) {
      writeFileSync(path, whole);
      flipBit(path, offset);
      const error = await expectCode(() => LocalVault.open(path, PASS), 'VAULT_TAMPERED');
      expect(error.message).toContain(path);
    }
  });

  test('a flipped bit in the header is corruption, found before the KDF', async () => {
    const path = freshVaultPath();
    await createWith(path, { a: '1' });
    for (const offset of [0, 25 /* salt */, 50 /* key check */, 70 /* nonce */, 82 /* length */, 100 /* checksum */]) {
      const whole = readFileSync(path);
      flipBit(path, offset);
      await expectCode(() => LocalVault.open(path, PASS), 'VAULT_CORRUPT');
      writeFileSync(path, whole);
    }
  });

  test('a header edited with a recomputed checksum still fails authentication', async () => {
    const path = freshVaultPath();
    await createWith(path, { a: '1' });
    const file = readFileSync(path);
    file[70]! ^= 1; // nonce
    file.set(sha256(file.subarray(0, HEADER_LENGTH - 32)), HEADER_LENGTH - 32);
    writeFileSync(path, file);
    await expectCode(() => LocalVault.open(path, PASS), 'VAULT_TAMPERED');
  });

  test('format version 99 is unsupported', async () => {
    const path = freshVaultPath();
    await createWith(path);
    const file = readFileSync(path);
    file.writeUInt16BE(99, 8);
    writeFileSync(path, file);
    const error = await expectCode(() => LocalVault.open(path, PASS), 'VAULT_VERSION_UNSUPPORTED');
    expect(error.message).toContain('newer DSO');
  });

  test('crafted absurd KDF parameters are refused quickly, without running the KDF', async () => {
    const path = freshVaultPath();
    await createWith(path);
    const file = readFileSync(path);
    file.writeUInt32BE(0xffffffff, 11); // 4 TiB of memory
    file.writeUInt32BE(0xffffffff, 15); // and 4 billion passes
    file.set(sha256(file.subarray(0, HEADER_LENGTH - 32)), HEADER_LENGTH - 32);
    writeFileSync(path, file);
    const started = performance.now();
    await expectCode(() => LocalVault.open(path, PASS), 'VAULT_CORRUPT');
    expect(performance.now() - started).toBeLessThan(200);
  });

  test('something that is not a vault is corrupt', async () => {
    const path = freshVaultPath();
    await createWith(path);
    writeFileSync(path, '{"secrets": {}}\n');
    await expectCode(() => LocalVault.open(path, PASS), 'VAULT_CORRUPT');
  });
});

describe('LocalVault writes', () => {
  test('a failed write leaves the old file intact and no temp file behind', async () => {
    const path = freshVaultPath();
    await createWith(path, { keep: 'old value' });
    const before = readFileSync(path);
    // The child runs with a 64 KiB file size limit; a 256 KiB value makes the temp file write fail.
    const result = await runUnderFileSizeLimit(['vault', path, 'big', String(256 * 1024)], Buffer.from(PASS).toString('hex'));
    expect(result).toEqual({ failed: true, code: 'VAULT_IO' });
    expect(readFileSync(path)).toEqual(before);
    expect(readdirSync(join(scratch.dir, 'dso')).sort()).toEqual(['vault.enc', 'vault.enc.lock']);
    const vault = await LocalVault.open(path, PASS);
    expect(vault.list().map((e) => e.name)).toEqual(['keep']);
    vault.close();
  });

  test('removing an absent name writes nothing', async () => {
    const path = freshVaultPath();
    await createWith(path, { a: '1' });
    const before = readFileSync(path);
    const vault = await LocalVault.open(path, PASS);
    expect(await vault.remove('absent')).toBe(false);
    vault.close();
    expect(readFileSync(path)).toEqual(before);
  });

  test('a change applies to the file as it is now, not as it was at open', async () => {
    const path = freshVaultPath();
    await createWith(path, { base: '0' });
    const a = await LocalVault.open(path, PASS);
    const b = await LocalVault.open(path, PASS);
    await b.set('from-b', bytes('b'));
    await a.set('from-a', bytes('a'));
    expect(a.list().map((e) => e.name)).toEqual(['base', 'from-a', 'from-b']);
    expect(await b.remove('from-a')).toBe(true);
    await a.set('from-a-again', bytes('a2'));
    expect(a.list().map((e) => e.name)).toEqual(['base', 'from-a-again', 'from-b']);
    a.close();
    b.close();
  });

  test('a vault replaced since open is re-derived from its own salt; a different passphrase is refused', async () => {
    const path = freshVaultPath();
    await createWith(path, { old: '1' });
    const vault = await LocalVault.open(path, PASS);

    const replacement = join(scratch.dir, 'replacement.enc');
    await createWith(replacement, { fresh: '2' });
    copyFileSync(replacement, path);
    await vault.set('mine', bytes('3'));
    expect(vault.list().map((e) => e.name)).toEqual(['fresh', 'mine']);

    const foreign = join(scratch.dir, 'foreign.enc');
    const other = await LocalVault.create(foreign, bytes('another passphrase'), { kdf: FAST_KDF });
    other.close();
    const before = readFileSync(foreign);
    copyFileSync(foreign, path);
    await expectCode(() => vault.set('mine', bytes('4')), 'VAULT_WRONG_PASSPHRASE');
    expect(readFileSync(path)).toEqual(before);
    vault.close();
  });

  test('a change to a tampered file is refused and does not overwrite the evidence', async () => {
    const path = freshVaultPath();
    await createWith(path, { a: '1' });
    const vault = await LocalVault.open(path, PASS);
    flipBit(path, HEADER_LENGTH + 2);
    const tampered = readFileSync(path);
    await expectCode(() => vault.set('b', bytes('2')), 'VAULT_TAMPERED');
    expect(readFileSync(path)).toEqual(tampered);
    vault.close();
  });

  test('a change to a vault deleted or emptied since open says so', async () => {
    const path = freshVaultPath();
    await createWith(path);
    const vault = await LocalVault.open(path, PASS);
    writeFileSync(path, '');
    await expectCode(() => vault.set('b', bytes('2')), 'VAULT_TRUNCATED');
    unlinkSync(path);
    await expectCode(() => vault.set('b', bytes('2')), 'VAULT_NOT_FOUND');
    vault.close();
  });
});
