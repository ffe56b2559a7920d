// The passphrase in a file: its first line, copied out before the file's bytes are wiped.
import { expect, test } from 'bun:test';
import { passphraseFromFileContent } from '../../../src/vault/passphrase.ts';

const text = (b: Uint8Array) => new TextDecoder().decode(b);

test('the first line, from a Buffer or a Uint8Array, survives wiping the input', () => {
  for (const make of [(s: string) => Buffer.from(s), (s: string) => new TextEncoder().encode(s)]) {
    const raw = make('correct horse\r\nsecond line\n');
    expect(text(passphraseFromFileContent(raw))).toBe('correct horse');
    expect(raw.every((b) => b === 0)).toBe(true);
    expect(text(passphraseFromFileContent(make('no newline')))).toBe('no newline');
  }
});
