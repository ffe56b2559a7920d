// Fuzzing the vault file format: every truncation length and random bit flips of a real vault
// file, arbitrary files, crafted headers with valid checksums, and authentic bodies holding
// malformed records. Each must be refused with its own typed error, never half-read (open either
// returns every secret or nothing), never a crash, and never with a value or the passphrase in
// the message. Valid names and values round-trip through set, get and a reopen.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gcm } from '@noble/ciphers/aes.js';
import { sha256 } from '@noble/hashes/sha2.js';
import * as fc from 'fast-check';
import type { ErrorCode } from '../../../src/errors.ts';
import { decodeRecords, encodeHeader, encodeRecords, HEADER_LENGTH, MAGIC, NONCE_LENGTH, parseVaultFile, SALT_LENGTH, TAG_LENGTH } from '../../../src/vault/format.ts';
import { deriveKeys, type KdfParams } from '../../../src/vault/kdf.ts';
import { LocalVault } from '../../../src/vault/vault.ts';
import { CANARY, expectClearDsoError, outcome, params, withinDeadline } from './support.ts';

const FAST_KDF: KdfParams = { memoryKiB: 1024, iterations: 1, parallelism: 1 };
const PASSPHRASE = new TextEncoder().encode(`pass-${CANARY}`);
const DAMAGED: ErrorCode[] = ['VAULT_CORRUPT', 'VAULT_TRUNCATED', 'VAULT_TAMPERED', 'VAULT_VERSION_UNSUPPORTED', 'VAULT_WRONG_PASSPHRASE'];
const enc = new TextEncoder();

let dir: string;
let vaultPath: string;
let original: Uint8Array;
const secrets = new Map<string, Uint8Array>();
let n = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dso-fuzz-vault-'));
  vaultPath = join(dir, 'vault.enc');
  const vault = await LocalVault.create(vaultPath, PASSPHRASE, { kdf: FAST_KDF });
  for (const [name, value] of [['app/db_password', `${CANARY}-db`], ['prod.api-key', `${CANARY}-api`], ['x', ''], ['bin/blob', '\u0000\u00ff']] as const) {
    secrets.set(name, enc.encode(value));
    await vault.set(name, enc.encode(value));
  }
  vault.close();
  original = new Uint8Array(readFileSync(vaultPath));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Writes `bytes` as a vault file of its own and opens it with `passphrase`. */
async function openBytes(bytes: Uint8Array, passphrase = PASSPHRASE) {
  const path = join(dir, `v${n++}.enc`);
  writeFileSync(path, bytes);
  return withinDeadline(
    outcome(async () => {
      const v = await LocalVault.open(path, passphrase, { lockTimeoutMs: 1000 });
      const all = v.list().map((e) => [e.name, v.get(e.name).expose().slice()] as const);
      v.close();
      return all;
    }),
    30_000,
    'LocalVault.open',
  );
}

/** A refusal with a typed error that says what is wrong and shows no value and no passphrase. */
function expectRefused(r: Awaited<ReturnType<typeof openBytes>>, codes: ErrorCode[] = DAMAGED): void {
  if (r.ok) throw new Error(`a damaged vault was opened and gave ${r.value.length} secrets`);
  expectClearDsoError(r.error, codes, CANARY);
}

describe('vault file damage', () => {
  test('the untouched file opens with every secret (the baseline the damage is measured against)', async () => {
    const r = await openBytes(original);
    expect(r.ok).toBe(true);
    if (r.ok) expect(new Map<string, Uint8Array>(r.value)).toEqual(secrets);
  });

  test('every truncation length is refused as truncated or corrupt', async () => {
    for (let length = 0; length < original.length; length++) {
      const r = await openBytes(original.slice(0, length));
      expectRefused(r, ['VAULT_TRUNCATED', 'VAULT_CORRUPT']);
      if (!r.ok && length >= HEADER_LENGTH) expect((r.error as Error).message).toMatch(/truncated|corrupt/);
    }
  });

  test('extra bytes after the body are refused', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 64 }), async (tail) => {
        expectRefused(await openBytes(new Uint8Array([...original, ...tail])), ['VAULT_CORRUPT']);
      }),
      params(5),
    );
  });

  test('random bit flips anywhere are detected; nothing is half-read', async () => {
    const positions = fc.uniqueArray(fc.integer({ min: 0, max: original.length * 8 - 1 }), { minLength: 1, maxLength: 8 });
    await fc.assert(
      fc.asyncProperty(positions, async (bits) => {
        const damaged = original.slice();
        for (const bit of bits) damaged[bit >> 3]! ^= 1 << (bit & 7);
        expectRefused(await openBytes(damaged));
      }),
      params(3),
    );
  });

  test('one flipped bit in each byte of the header and the body gets the error of its region', async () => {
    const expectedFor = (offset: number): ErrorCode[] => {
      if (offset < 8) return ['VAULT_CORRUPT']; // magic
      if (offset < 10) return ['VAULT_CORRUPT', 'VAULT_VERSION_UNSUPPORTED']; // version
      if (offset < HEADER_LENGTH) return ['VAULT_CORRUPT', 'VAULT_TRUNCATED']; // checksummed fields, checksum
      return ['VAULT_TAMPERED']; // ciphertext and tag: authenticated
    };
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: original.length - 1 }), fc.integer({ min: 0, max: 7 }), async (offset, bit) => {
        const damaged = original.slice();
        damaged[offset]! ^= 1 << bit;
        expectRefused(await openBytes(damaged), expectedFor(offset));
      }),
      params(3),
    );
  });

  test('arbitrary bytes, and bytes behind the right magic and version, are refused', async () => {
    const prefix = new Uint8Array([...MAGIC, 0, 1]);
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 400 }), fc.boolean(), async (bytes, withPrefix) => {
        const file = withPrefix ? new Uint8Array([...prefix, ...bytes]) : bytes;
        expectRefused(await openBytes(file), ['VAULT_CORRUPT', 'VAULT_TRUNCATED', 'VAULT_VERSION_UNSUPPORTED']);
      }),
      params(2),
    );
  });

  test('a header with random fields and a valid checksum is refused before any key derivation it would not survive', async () => {
    // Past the checksum: the KDF parameters and the body length are what the parser must bound.
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: HEADER_LENGTH, maxLength: HEADER_LENGTH }), fc.nat({ max: 300 }), async (header, bodyLength) => {
        header.set(MAGIC, 0);
        header[8] = 0;
        header[9] = 1;
        header.set(sha256(header.subarray(0, HEADER_LENGTH - 32)), HEADER_LENGTH - 32);
        const file = new Uint8Array(HEADER_LENGTH + bodyLength);
        file.set(header);
        const r = await outcome(() => parseVaultFile(file, 'crafted.enc'));
        if (r.ok) {
          // Only a header whose parameters are within the limits and whose length matches gets here.
          expect(file.length).toBe(HEADER_LENGTH + r.value.header.ciphertextLength + TAG_LENGTH);
        } else expectClearDsoError(r.error, ['VAULT_CORRUPT', 'VAULT_TRUNCATED'], CANARY);
      }),
      params(),
    );
  });
});

describe('authentic files with malformed records', () => {
  // A file encrypted with the right key but holding records DSO never writes: the decoder is the
  // last line, and must refuse rather than return part of the vault.
  let key: Uint8Array;
  let keyCheck: Uint8Array;
  const salt = new Uint8Array(SALT_LENGTH).fill(7);
  beforeAll(async () => {
    ({ key, keyCheck } = await deriveKeys(PASSPHRASE, salt, FAST_KDF));
  });

  function seal(plaintext: Uint8Array): Uint8Array {
    const nonce = crypto.getRandomValues(new Uint8Array(NONCE_LENGTH));
    const header = encodeHeader({ kdf: FAST_KDF, salt, keyCheck, nonce, ciphertextLength: plaintext.length });
    return new Uint8Array([...header, ...gcm(key, nonce, header).encrypt(plaintext)]);
  }

  const valid = encodeRecords([...secrets].map(([name, value]) => ({ name, createdMs: 1, updatedMs: 2, value })));

  test('the sealing used here is DSO\'s own: the unmodified records open', async () => {
    const r = await openBytes(seal(valid));
    expect(r.ok).toBe(true);
  });

  test('mutated record bytes open completely or are refused as corrupt', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), fc.nat({ max: 8 }), async (edits, cut) => {
        const plaintext = valid.slice(0, Math.max(0, valid.length - cut));
        for (const [at, byte] of edits) if (plaintext.length) plaintext[at % plaintext.length] = byte;
        const r = await openBytes(seal(plaintext));
        if (r.ok) {
          // Whatever opened is exactly what the records say, no more and no less.
          expect(r.value.map(([name, value]) => ({ name, value }))).toEqual(decodeRecords(plaintext, 'x').map(({ name, value }) => ({ name, value: value.slice() })));
        } else expectClearDsoError(r.error, ['VAULT_CORRUPT'], CANARY);
      }),
      params(3),
    );
  });

  test('arbitrary plaintext: decodeRecords returns records that fit, or VAULT_CORRUPT', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 300 }).map((b) => new Uint8Array([0, 0, 0, 1, 0, 3, 0x61, 0x2f, 0x62, ...b]))), (plaintext) => {
        const r = (() => {
          try {
            return { ok: true as const, records: decodeRecords(plaintext, 'x.enc') };
          } catch (error) {
            return { ok: false as const, error };
          }
        })();
        if (r.ok) {
          // Views into the plaintext only, never past it.
          for (const rec of r.records) expect(rec.value.byteOffset + rec.value.length).toBeLessThanOrEqual(plaintext.byteOffset + plaintext.length);
        } else expectClearDsoError(r.error, ['VAULT_CORRUPT'], CANARY);
      }),
      params(),
    );
  });
});

describe('passphrases and round trips', () => {
  test('a wrong passphrase is VAULT_WRONG_PASSPHRASE and the message holds no passphrase', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 64 }), async (tail) => {
        const wrong = new Uint8Array([...enc.encode(CANARY), ...tail]);
        expectRefused(await openBytes(original, wrong), ['VAULT_WRONG_PASSPHRASE']);
      }),
      params(10),
    );
  });

  test('an empty passphrase is PASSPHRASE_REQUIRED', async () => {
    expectRefused(await openBytes(original, new Uint8Array(0)), ['PASSPHRASE_REQUIRED']);
  });

  test('set then get returns the bytes, and a reopened vault has exactly what was set', async () => {
    const segment = fc.tuple(fc.constantFrom(...'abcXYZ019'), fc.string({ unit: fc.constantFrom(...'abz09._-'), maxLength: 12 })).map(([a, b]) => a + b);
    const name = fc.array(segment, { minLength: 1, maxLength: 3 }).map((s) => s.join('/'));
    const path = join(dir, 'roundtrip.enc');
    const vault = await LocalVault.create(path, PASSPHRASE, { kdf: FAST_KDF });
    const expected = new Map<string, Uint8Array>();
    try {
      await fc.assert(
        fc.asyncProperty(name, fc.uint8Array({ maxLength: 2048 }), async (nm, value) => {
          await vault.set(nm, value);
          expected.set(nm, value.slice());
          const got = vault.get(nm);
          expect(got.expose()).toEqual(value);
          got.wipe();
        }),
        params(3),
      );
    } finally {
      vault.close();
    }
    const reopened = await openBytes(new Uint8Array(readFileSync(path)));
    expect(reopened.ok).toBe(true);
    if (reopened.ok) expect(new Map<string, Uint8Array>(reopened.value)).toEqual(expected);
  });
});
