import { describe, expect, test } from 'bun:test';
import { sha256 } from '@noble/hashes/sha2.js';
import {
  decodeRecords,
  encodeHeader,
  encodeRecords,
  FORMAT_VERSION,
  HEADER_LENGTH,
  MAX_PLAINTEXT_BYTES,
  parseVaultFile,
  TAG_LENGTH,
  type VaultRecord,
} from '../../../src/vault/format.ts';
import { bytes, expectCode, FAST_KDF } from './fixtures/helpers.ts';

const fields = {
  kdf: FAST_KDF,
  salt: Uint8Array.from({ length: 16 }, (_, i) => i),
  keyCheck: Uint8Array.from({ length: 32 }, (_, i) => 100 + i),
  nonce: Uint8Array.from({ length: 12 }, (_, i) => 200 + i),
  ciphertextLength: 5,
};

/** A whole "file": a real header followed by a body of the declared length (content irrelevant here). */
function fileWith(header: Uint8Array, bodyLength = fields.ciphertextLength + TAG_LENGTH): Uint8Array {
  const file = new Uint8Array(header.length + bodyLength);
  file.set(header);
  return file;
}

/** Rewrites the checksum after a deliberate header edit, as an attacker (or a buggy tool) could. */
function reseal(file: Uint8Array): void {
  file.set(sha256(file.subarray(0, HEADER_LENGTH - 32)), HEADER_LENGTH - 32);
}

describe('header', () => {
  test('round-trips every field and is 116 bytes', () => {
    const header = encodeHeader(fields);
    expect(header.length).toBe(116);
    expect(new TextDecoder().decode(header.subarray(0, 8))).toBe('DSOVAULT');
    const parsed = parseVaultFile(fileWith(header), 'v');
    expect(parsed.header).toEqual({ version: FORMAT_VERSION, ...fields });
    expect(parsed.headerBytes).toEqual(header);
    expect(parsed.sealed.length).toBe(fields.ciphertextLength + TAG_LENGTH);
  });

  test('uses big-endian integers at the documented offsets', () => {
    const header = encodeHeader({ ...fields, kdf: { memoryKiB: 65536, iterations: 3, parallelism: 4 } });
    expect([...header.subarray(8, 20)]).toEqual([0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 3, 4]);
    expect([...header.subarray(80, 84)]).toEqual([0, 0, 0, 5]);
  });

  test('reports truncation at every length short of the full file', async () => {
    const file = fileWith(encodeHeader(fields));
    for (const cut of [0, 1, 7, 8, 9, 10, 50, HEADER_LENGTH - 1, HEADER_LENGTH, file.length - 1]) {
      await expectCode(() => parseVaultFile(file.subarray(0, cut), 'v'), 'VAULT_TRUNCATED');
    }
  });

  test('bad magic is corrupt, even in a short file', async () => {
    const file = fileWith(encodeHeader(fields));
    file[0] = 0x45;
    await expectCode(() => parseVaultFile(file, 'v'), 'VAULT_CORRUPT');
    await expectCode(() => parseVaultFile(bytes('{"js'), 'v'), 'VAULT_CORRUPT');
  });

  test('a newer version is unsupported (checked before the checksum), version 0 is corrupt', async () => {
    const file = fileWith(encodeHeader(fields));
    new DataView(file.buffer).setUint16(8, 99);
    const error = await expectCode(() => parseVaultFile(file, 'v'), 'VAULT_VERSION_UNSUPPORTED');
    expect(error.message).toContain('newer DSO');
    expect(error.hint).toContain('upgrade DSO');
    new DataView(file.buffer).setUint16(8, 0);
    await expectCode(() => parseVaultFile(file, 'v'), 'VAULT_CORRUPT');
  });

  test('any flipped header bit after the version fails the checksum', async () => {
    const header = encodeHeader(fields);
    for (let bit = 10 * 8; bit < HEADER_LENGTH * 8; bit += 7) {
      const file = fileWith(header);
      file[bit >> 3]! ^= 1 << (bit & 7);
      const error = await expectCode(() => parseVaultFile(file, 'v'), 'VAULT_CORRUPT');
      expect(error.message).toContain('checksum');
    }
  });

  test('refuses absurd KDF parameters even with a valid checksum', async () => {
    for (const [offset, value, size] of [
      [11, 0xffffffff, 4], // memory
      [11, 0, 4],
      [15, 1000, 4], // iterations
      [15, 0, 4],
      [19, 255, 1], // parallelism
      [19, 0, 1],
    ] as const) {
      const file = fileWith(encodeHeader(fields));
      const view = new DataView(file.buffer);
      if (size === 4) view.setUint32(offset, value);
      else view.setUint8(offset, value);
      reseal(file);
      const error = await expectCode(() => parseVaultFile(file, 'v'), 'VAULT_CORRUPT');
      expect(error.message).toContain('argon2id');
    }
  });

  test('refuses an unknown KDF id, an oversized body and trailing bytes', async () => {
    const unknownKdf = fileWith(encodeHeader(fields));
    unknownKdf[10] = 2;
    reseal(unknownKdf);
    await expectCode(() => parseVaultFile(unknownKdf, 'v'), 'VAULT_CORRUPT');

    const huge = fileWith(encodeHeader(fields));
    new DataView(huge.buffer).setUint32(80, MAX_PLAINTEXT_BYTES + 1);
    reseal(huge);
    await expectCode(() => parseVaultFile(huge, 'v'), 'VAULT_CORRUPT');

    const trailing = fileWith(encodeHeader(fields), fields.ciphertextLength + TAG_LENGTH + 1);
    await expectCode(() => parseVaultFile(trailing, 'v'), 'VAULT_CORRUPT');
  });
});

describe('records', () => {
  const value = Uint8Array.from([0, 1, 2, 0, 255, 10, 13]);
  const records: VaultRecord[] = [
    { name: 'b/second', createdMs: 1_700_000_000_000, updatedMs: 1_700_000_000_500, value },
    { name: 'a.first', createdMs: 0, updatedMs: Number.MAX_SAFE_INTEGER, value: new Uint8Array(0) },
  ];

  test('round-trip, sorted by name, values as views into the one plaintext buffer', () => {
    const plaintext = encodeRecords(records);
    const decoded = decodeRecords(plaintext, 'v');
    expect(decoded.map((r) => r.name)).toEqual(['a.first', 'b/second']);
    expect(decoded[1]).toEqual(records[0]!);
    expect(decoded[0]).toEqual(records[1]!);
    expect(decoded[1]!.value.buffer).toBe(plaintext.buffer);
    plaintext.fill(0);
    expect([...decoded[1]!.value]).toEqual([0, 0, 0, 0, 0, 0, 0]);
  });

  test('an empty list is four zero bytes', () => {
    const plaintext = encodeRecords([]);
    expect([...plaintext]).toEqual([0, 0, 0, 0]);
    expect(decodeRecords(plaintext, 'v')).toEqual([]);
  });

  test('malformed plaintext is corrupt, never an out-of-bounds read', async () => {
    const good = encodeRecords(records);
    const edited = (edit: (copy: Uint8Array, view: DataView) => void): Uint8Array => {
      const copy = good.slice();
      edit(copy, new DataView(copy.buffer));
      return copy;
    };
    const duplicate = encodeRecords([records[0]!, { ...records[0]!, name: 'b/secone' }]);
    duplicate.set(bytes('b/second'), duplicate.lastIndexOf('b'.charCodeAt(0), duplicate.length - value.length - 20));
    // the first record is "a.first" (7 bytes), so its value length sits at 4 + 2 + 7 + 16
    const cases: Array<[Uint8Array, RegExp]> = [
      [new Uint8Array(0), /record count runs past the end/],
      [good.subarray(0, good.length - 1), /value of "b\/second" runs past the end/],
      [new Uint8Array([...good, 0]), /1 bytes after the last record/],
      [edited((_, v) => v.setUint32(0, 0xffffffff)), /count 4294967295 cannot fit/],
      [edited((_, v) => v.setUint16(4, 0)), /name length 0/],
      [edited((_, v) => v.setUint32(4 + 2 + 7 + 16, 0x7fffffff)), /over the size limit/],
      [edited((c) => (c[6] = '/'.charCodeAt(0))), /invalid name/],
      [edited((c) => (c[6] = 0xff)), /not UTF-8/],
      [duplicate, /appears twice/],
    ];
    for (const [plaintext, why] of cases) {
      const error = await expectCode(() => decodeRecords(plaintext, 'v'), 'VAULT_CORRUPT');
      expect(error.message).toMatch(why);
    }
  });
});
