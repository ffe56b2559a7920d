// Fingerprints of secret values: how the agent tells that a value changed, and which containers
// hold an outdated one, without keeping values. An HMAC-SHA-256 keyed with the agent's own random
// key, not a plain hash: fingerprints are stamped on containers as labels, which anyone who can
// run `docker inspect` reads, and a plain SHA-256 of a weak secret (a short password) can be
// brute-forced from it. The key never leaves the agent's state directory (0600).
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, openSync, readFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';

const KEY_BYTES = 32;

export class Fingerprinter {
  readonly #key: Uint8Array;
  /** Names the key, so fingerprints made with another key are recognised as incomparable. */
  readonly keyId: string;

  constructor(key: Uint8Array) {
    if (key.length !== KEY_BYTES) throw new Error('internal: a fingerprint key is 32 bytes');
    this.#key = new Uint8Array(key);
    this.keyId = createHash('sha256').update(this.#key).digest('hex').slice(0, 8);
  }

  /** `f1:<key id>:<128-bit HMAC of the bytes>`: the exact bytes, so any change is a change. */
  of(value: Uint8Array): string {
    return `f1:${this.keyId}:${createHmac('sha256', this.#key).update(value).digest('hex').slice(0, 32)}`;
  }

  /** Whether a fingerprint was made with this key (else it cannot be compared, and proves nothing). */
  owns(fingerprint: string): boolean {
    return fingerprint.startsWith(`f1:${this.keyId}:`);
  }

  wipe(): void {
    this.#key.fill(0);
  }
}

/** The agent's fingerprint key from `dir` (0700), made on first use (0600, never replaced). */
export function loadFingerprintKey(dir: string): Uint8Array {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, 'fingerprint.key');
  try {
    const key = new Uint8Array(readFileSync(path));
    if (key.length === KEY_BYTES) return key;
    throw new Error(`${path} is not a DSO fingerprint key (${key.length} bytes); move it aside and restart`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const key = new Uint8Array(randomBytes(KEY_BYTES));
  // O_EXCL: two agents starting at once cannot each write a different key.
  try {
    const fd = openSync(path, 'wx', 0o600);
    try {
      writeSync(fd, key);
    } finally {
      closeSync(fd);
    }
    chmodSync(path, 0o600);
    return key;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return loadFingerprintKey(dir);
    throw e;
  }
}
