// Fingerprints of values: stable for one key, different for another value or another key (so a
// label read from `docker inspect` cannot be checked against guesses without the agent's key),
// and the key file made once, private, and reused.
import { afterAll, expect, test } from 'bun:test';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Fingerprinter, loadFingerprintKey } from '../../../src/rotation/fingerprint.ts';

const dir = mkdtempSync(join(tmpdir(), 'dso-fingerprint-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const enc = (s: string) => new TextEncoder().encode(s);

test('the key is made once, 0600 in a 0700 directory, and the same key is read back', () => {
  const state = join(dir, 'state');
  const a = loadFingerprintKey(state);
  const b = loadFingerprintKey(state);
  expect(a.length).toBe(32);
  expect(Buffer.from(b).equals(Buffer.from(a))).toBe(true);
  expect(statSync(join(state, 'fingerprint.key')).mode & 0o777).toBe(0o600);
  expect(statSync(state).mode & 0o777).toBe(0o700);
});

test('a fingerprint is keyed: stable for a key, different for another value or another key, never a plain hash', () => {
  const one = new Fingerprinter(crypto.getRandomValues(new Uint8Array(32)));
  const other = new Fingerprinter(crypto.getRandomValues(new Uint8Array(32)));
  const f = one.of(enc('hunter2'));
  expect(f).toMatch(/^f1:[0-9a-f]{8}:[0-9a-f]{32}$/);
  expect(one.of(enc('hunter2'))).toBe(f);
  expect(one.of(enc('hunter3'))).not.toBe(f);
  expect(other.of(enc('hunter2'))).not.toBe(f);
  expect(f).not.toContain(createHash('sha256').update('hunter2').digest('hex').slice(0, 32));
  expect(one.owns(f)).toBe(true);
  expect(other.owns(f)).toBe(false);
});

test('the caller key buffer can be wiped after construction; wipe() ends the Fingerprinter own copy', () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const fp = new Fingerprinter(key);
  const before = fp.of(enc('v'));
  key.fill(0);
  expect(fp.of(enc('v'))).toBe(before);
  fp.wipe();
  expect(fp.of(enc('v'))).not.toBe(before);
});
