// #KEY selection from JSON objects and KEY=VALUE lines, and its errors (which name fields, never values).
import { expect, test } from 'bun:test';
import { ProviderError } from '../../../src/providers/contract.ts';
import { selectKey } from '../../../src/providers/select-key.ts';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

test('a JSON field: strings as text, other values as JSON', () => {
  const secret = enc(JSON.stringify({ password: 'p@ss "w0rd"', port: 5432, tls: true, opts: { a: 1 } }));
  expect(dec(selectKey(secret, 'password'))).toBe('p@ss "w0rd"');
  expect(dec(selectKey(secret, 'port'))).toBe('5432');
  expect(dec(selectKey(secret, 'tls'))).toBe('true');
  expect(dec(selectKey(secret, 'opts'))).toBe('{"a":1}');
});

test('KEY=VALUE lines', () => {
  const secret = enc('# db\nUSER=app\nPASSWORD=s3cr=t\n');
  expect(dec(selectKey(secret, 'PASSWORD'))).toBe('s3cr=t');
});

test.each([
  ['{"user":"hidden-value-1"}', 'password', 'has no field "password" (it has the field "user")'],
  ['{"a":1', 'a', 'not valid JSON'],
  ['[1,2]', 'a', 'neither a JSON object'],
  ['just a password hidden-value-1', 'a', 'neither a JSON object nor KEY=VALUE'],
  ['{"a":null}', 'a', 'is null'],
])('%s #%s fails: %s', (text, key, why) => {
  try {
    selectKey(enc(text), key);
    throw new Error('expected an error');
  } catch (e) {
    expect(e).toBeInstanceOf(ProviderError);
    expect((e as ProviderError).kind).toBe('key_not_found');
    expect((e as Error).message).toContain(why);
    expect((e as Error).message).not.toContain('hidden-value-1');
  }
});

test('binary secrets cannot be selected from', () => {
  expect(() => selectKey(new Uint8Array([0xff, 0xfe, 0x00]), 'a')).toThrow('not text');
});
