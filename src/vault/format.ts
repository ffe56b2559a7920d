// The vault file format (version 1) as pure functions: header encode/parse and the plaintext record codec.
// docs/vault-format.md describes the same layout byte by byte; change both together.
//
// All integers are big-endian. Parsing checks, in order: length, magic, version, header checksum, KDF
// parameters, body length, so each failure gets its own error before any expensive work (the KDF) runs.

import { sha256 } from '@noble/hashes/sha2.js';
import { DsoError } from '../errors.ts';
import { isValidSecretName, MAX_SECRET_NAME_LENGTH } from './names.ts';
import { KEY_CHECK_LENGTH, kdfParamsProblem, type KdfParams } from './kdf.ts';

export const MAGIC = new TextEncoder().encode('DSOVAULT');
export const FORMAT_VERSION = 1;
/** KDF id 1: argon2id, Argon2 version 0x13, 64-byte output split into key and key check. */
export const KDF_ARGON2ID = 1;
export const SALT_LENGTH = 16;
export const NONCE_LENGTH = 12;
export const TAG_LENGTH = 16;
export const CHECKSUM_LENGTH = 32;

// Offsets of the version 1 header.
const OFF_VERSION = 8;
const OFF_KDF_ID = 10;
const OFF_MEMORY = 11;
const OFF_ITERATIONS = 15;
const OFF_PARALLELISM = 19;
const OFF_SALT = 20;
const OFF_KEY_CHECK = OFF_SALT + SALT_LENGTH; // 36
const OFF_NONCE = OFF_KEY_CHECK + KEY_CHECK_LENGTH; // 68
const OFF_CIPHERTEXT_LENGTH = OFF_NONCE + NONCE_LENGTH; // 80
const OFF_CHECKSUM = OFF_CIPHERTEXT_LENGTH + 4; // 84
export const HEADER_LENGTH = OFF_CHECKSUM + CHECKSUM_LENGTH; // 116

/**
 * Largest plaintext (and so ciphertext) a vault may hold. Far above what a secrets vault needs, and it
 * bounds what a crafted length field can make us read or allocate.
 */
export const MAX_PLAINTEXT_BYTES = 64 * 1024 * 1024;
export const MAX_FILE_BYTES = HEADER_LENGTH + MAX_PLAINTEXT_BYTES + TAG_LENGTH;
/** Largest single secret value. Docker's own secrets stop at 500 KiB; this leaves room for bundles. */
export const MAX_VALUE_BYTES = 10 * 1024 * 1024; // the seed's default max_secret_size

export interface VaultHeader {
  version: number;
  kdf: KdfParams;
  salt: Uint8Array;
  keyCheck: Uint8Array;
  nonce: Uint8Array;
  ciphertextLength: number;
}

export interface ParsedVaultFile {
  header: VaultHeader;
  /** The exact header bytes from the file, checksum included: the AES-GCM additional authenticated data. */
  headerBytes: Uint8Array;
  /** ciphertext || tag. */
  sealed: Uint8Array;
}

/** Encodes a version 1 header, checksum included. The result is also the AAD for the body it precedes. */
export function encodeHeader(fields: Omit<VaultHeader, 'version'>): Uint8Array {
  if (fields.salt.length !== SALT_LENGTH) throw new RangeError('salt must be 16 bytes');
  if (fields.keyCheck.length !== KEY_CHECK_LENGTH) throw new RangeError('key check must be 32 bytes');
  if (fields.nonce.length !== NONCE_LENGTH) throw new RangeError('nonce must be 12 bytes');
  if (fields.ciphertextLength > MAX_PLAINTEXT_BYTES) throw new RangeError('ciphertext too long');

  const out = new Uint8Array(HEADER_LENGTH);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  view.setUint16(OFF_VERSION, FORMAT_VERSION);
  out[OFF_KDF_ID] = KDF_ARGON2ID;
  view.setUint32(OFF_MEMORY, fields.kdf.memoryKiB);
  view.setUint32(OFF_ITERATIONS, fields.kdf.iterations);
  out[OFF_PARALLELISM] = fields.kdf.parallelism;
  out.set(fields.salt, OFF_SALT);
  out.set(fields.keyCheck, OFF_KEY_CHECK);
  out.set(fields.nonce, OFF_NONCE);
  view.setUint32(OFF_CIPHERTEXT_LENGTH, fields.ciphertextLength);
  out.set(sha256(out.subarray(0, OFF_CHECKSUM)), OFF_CHECKSUM);
  return out;
}

/**
 * Splits a whole vault file into header and sealed body, checking everything that can be checked without
 * the passphrase. `source` names the file in error messages.
 */
export function parseVaultFile(file: Uint8Array, source: string): ParsedVaultFile {
  const prefix = Math.min(file.length, MAGIC.length);
  if (!equalBytes(file.subarray(0, prefix), MAGIC.subarray(0, prefix))) {
    throw corrupt(source, 'it does not start with the DSO vault magic bytes, so it is not a DSO vault');
  }
  if (file.length < OFF_VERSION + 2) throw truncated(source, file.length, HEADER_LENGTH);

  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  // The version comes before the checksum: a newer DSO may lay out (and checksum) its header differently.
  const version = view.getUint16(OFF_VERSION);
  if (version > FORMAT_VERSION) {
    throw new DsoError(
      'VAULT_VERSION_UNSUPPORTED',
      `vault ${source} uses format version ${version}: it was written by a newer DSO ` +
        `(this DSO reads version ${FORMAT_VERSION})`,
      { hint: 'upgrade DSO to open this vault' },
    );
  }
  if (version !== FORMAT_VERSION) throw corrupt(source, `its format version ${version} does not exist`);
  if (file.length < HEADER_LENGTH) throw truncated(source, file.length, HEADER_LENGTH);

  const headerBytes = file.subarray(0, HEADER_LENGTH);
  const expected = sha256(headerBytes.subarray(0, OFF_CHECKSUM));
  if (!equalBytes(expected, headerBytes.subarray(OFF_CHECKSUM))) {
    throw corrupt(source, 'its header checksum does not match, so the header was modified or damaged');
  }

  const kdfId = file[OFF_KDF_ID];
  if (kdfId !== KDF_ARGON2ID) throw corrupt(source, `it names an unknown key derivation function (id ${kdfId})`);
  const kdf: KdfParams = {
    memoryKiB: view.getUint32(OFF_MEMORY),
    iterations: view.getUint32(OFF_ITERATIONS),
    parallelism: view.getUint8(OFF_PARALLELISM),
  };
  const kdfProblem = kdfParamsProblem(kdf);
  if (kdfProblem !== undefined) {
    throw corrupt(source, `its argon2id parameters are refused (${kdfProblem}); DSO never writes such values`);
  }

  const ciphertextLength = view.getUint32(OFF_CIPHERTEXT_LENGTH);
  if (ciphertextLength > MAX_PLAINTEXT_BYTES) {
    throw corrupt(source, `it declares a ${ciphertextLength}-byte body, above the ${MAX_PLAINTEXT_BYTES}-byte limit`);
  }
  const fileLength = HEADER_LENGTH + ciphertextLength + TAG_LENGTH;
  if (file.length < fileLength) throw truncated(source, file.length, fileLength);
  if (file.length > fileLength) {
    throw corrupt(source, `it has ${file.length - fileLength} unexpected bytes after the encrypted body`);
  }

  return {
    header: {
      version,
      kdf,
      salt: file.slice(OFF_SALT, OFF_SALT + SALT_LENGTH),
      keyCheck: file.slice(OFF_KEY_CHECK, OFF_KEY_CHECK + KEY_CHECK_LENGTH),
      nonce: file.slice(OFF_NONCE, OFF_NONCE + NONCE_LENGTH),
      ciphertextLength,
    },
    headerBytes,
    sealed: file.subarray(HEADER_LENGTH),
  };
}

/** One secret in the decrypted body. `value` is usually a view into the plaintext buffer, not a copy. */
export interface VaultRecord {
  name: string;
  createdMs: number;
  updatedMs: number;
  value: Uint8Array;
}

// count u32, then per record: name length u16, name (UTF-8), created ms u64, updated ms u64,
// value length u32, value.
const RECORD_FIXED_BYTES = 2 + 8 + 8 + 4;
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Encodes records, sorted by name, into one fresh buffer: the plaintext to encrypt.
 * The result holds every value, so the caller wipes it when done.
 */
export function encodeRecords(records: readonly VaultRecord[]): Uint8Array {
  const sorted = [...records].sort((a, b) => compareNames(a.name, b.name));
  const names = sorted.map((r) => textEncoder.encode(r.name));
  const total = encodedSize(records);
  if (total > MAX_PLAINTEXT_BYTES) throw new RangeError('vault plaintext too large');

  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let at = 0;
  view.setUint32(at, sorted.length);
  at += 4;
  for (const [i, r] of sorted.entries()) {
    const name = names[i];
    if (name === undefined) throw new Error('unreachable: one encoded name per record');
    view.setUint16(at, name.length);
    out.set(name, at + 2);
    at += 2 + name.length;
    view.setBigUint64(at, BigInt(r.createdMs));
    view.setBigUint64(at + 8, BigInt(r.updatedMs));
    view.setUint32(at + 16, r.value.length);
    at += 20;
    out.set(r.value, at);
    at += r.value.length;
  }
  return out;
}

/**
 * Decodes the plaintext written by encodeRecords. Values are views into `plaintext`, so wiping that one
 * buffer wipes them all. Every length is checked against what is left before it is used.
 */
export function decodeRecords(plaintext: Uint8Array, source: string): VaultRecord[] {
  const view = new DataView(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength);
  const bad = (what: string): DsoError => corrupt(source, `its decrypted records are malformed (${what})`);
  let at = 0;
  const need = (n: number, what: string): void => {
    if (plaintext.length - at < n) throw bad(`${what} runs past the end`);
  };

  need(4, 'record count');
  const count = view.getUint32(at);
  at += 4;
  if (count > (plaintext.length - at) / (RECORD_FIXED_BYTES + 1)) throw bad(`count ${count} cannot fit`);

  const records: VaultRecord[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < count; i++) {
    need(2, `name length of record ${i}`);
    const nameLength = view.getUint16(at);
    at += 2;
    if (nameLength === 0 || nameLength > MAX_SECRET_NAME_LENGTH) throw bad(`name length ${nameLength} of record ${i}`);
    need(nameLength, `name of record ${i}`);
    let name: string;
    try {
      name = textDecoder.decode(plaintext.subarray(at, at + nameLength));
    } catch {
      throw bad(`name of record ${i} is not UTF-8`);
    }
    at += nameLength;
    if (!isValidSecretName(name)) throw bad(`record ${i} has an invalid name`);
    if (seen.has(name)) throw bad(`name ${JSON.stringify(name)} appears twice`);
    seen.add(name);

    need(20, `timestamps and value length of ${JSON.stringify(name)}`);
    const createdMs = readTimestamp(view, at);
    const updatedMs = readTimestamp(view, at + 8);
    if (createdMs === undefined || updatedMs === undefined) throw bad(`timestamp of ${JSON.stringify(name)}`);
    const valueLength = view.getUint32(at + 16);
    at += 20;
    if (valueLength > MAX_VALUE_BYTES) throw bad(`value of ${JSON.stringify(name)} is over the size limit`);
    need(valueLength, `value of ${JSON.stringify(name)}`);
    records.push({ name, createdMs, updatedMs, value: plaintext.subarray(at, at + valueLength) });
    at += valueLength;
  }
  if (at !== plaintext.length) throw bad(`${plaintext.length - at} bytes after the last record`);
  return records;
}

/** The size encodeRecords would produce, to refuse an oversized vault before building it. */
export function encodedSize(records: Iterable<VaultRecord>): number {
  let total = 4;
  for (const r of records) total += RECORD_FIXED_BYTES + textEncoder.encode(r.name).length + r.value.length;
  return total;
}

/** Byte-wise (UTF-16 code unit) order: the same on every machine, unlike localeCompare. */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Constant-time comparison, for the key check. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

function readTimestamp(view: DataView, at: number): number | undefined {
  const ms = view.getBigUint64(at);
  return ms <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(ms) : undefined;
}

function corrupt(source: string, why: string): DsoError {
  return new DsoError('VAULT_CORRUPT', `vault ${source} is corrupt: ${why}`, {
    hint: 'restore the vault file from a backup; do not edit it by hand',
  });
}

function truncated(source: string, actual: number, expected: number): DsoError {
  return new DsoError(
    'VAULT_TRUNCATED',
    `vault ${source} is truncated: it has ${actual} bytes, its format needs at least ${expected}`,
    { hint: 'the file was cut short (an interrupted copy or a full disk); restore it from a backup' },
  );
}
