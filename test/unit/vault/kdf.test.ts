import { describe, expect, test } from 'bun:test';
import { DEFAULT_KDF_PARAMS, deriveKeys, kdfParamsProblem } from '../../../src/vault/kdf.ts';
import { bytes, expectCode, FAST_KDF } from './fixtures/helpers.ts';

const salt = Uint8Array.from({ length: 16 }, (_, i) => i);

describe('deriveKeys', () => {
  test('is deterministic, splits 64 bytes into key and key check, and depends on every input', async () => {
    const a = await deriveKeys(bytes('passphrase'), salt, FAST_KDF);
    const again = await deriveKeys(bytes('passphrase'), salt, FAST_KDF);
    expect(a.key.length).toBe(32);
    expect(a.keyCheck.length).toBe(32);
    expect(again).toEqual(a);
    expect(a.key).not.toEqual(a.keyCheck);
    const otherPass = await deriveKeys(bytes('passphrasf'), salt, FAST_KDF);
    const otherSalt = await deriveKeys(bytes('passphrase'), salt.map((b) => b ^ 1), FAST_KDF);
    const otherParams = await deriveKeys(bytes('passphrase'), salt, { ...FAST_KDF, iterations: 2 });
    for (const other of [otherPass, otherSalt, otherParams]) expect(other.key).not.toEqual(a.key);
  });

  test('does not modify the passphrase it is given', async () => {
    const passphrase = bytes('keep me');
    await deriveKeys(passphrase, salt, FAST_KDF);
    expect(new TextDecoder().decode(passphrase)).toBe('keep me');
  });

  test('refuses an empty passphrase with PASSPHRASE_REQUIRED', async () => {
    await expectCode(() => deriveKeys(new Uint8Array(0), salt, FAST_KDF), 'PASSPHRASE_REQUIRED');
  });

  test('the defaults are RFC 9106 option 2 and run in well under the test timeout', async () => {
    expect(DEFAULT_KDF_PARAMS).toEqual({ memoryKiB: 65536, iterations: 3, parallelism: 4 });
    const started = performance.now();
    const { key } = await deriveKeys(bytes('passphrase'), salt, DEFAULT_KDF_PARAMS);
    const elapsed = performance.now() - started;
    expect(key.length).toBe(32);
    // About 400 ms on the project's machines; the bound only catches a pathological slowdown.
    expect(elapsed).toBeLessThan(10_000);
  });
});

describe('kdfParamsProblem', () => {
  test('accepts the defaults and the test parameters', () => {
    expect(kdfParamsProblem(DEFAULT_KDF_PARAMS)).toBeUndefined();
    expect(kdfParamsProblem(FAST_KDF)).toBeUndefined();
    expect(kdfParamsProblem({ memoryKiB: 1024 * 1024, iterations: 16, parallelism: 16 })).toBeUndefined();
  });

  test('names what is out of range', () => {
    expect(kdfParamsProblem({ memoryKiB: 1024 * 1024 + 1, iterations: 1, parallelism: 1 })).toContain('memory');
    expect(kdfParamsProblem({ memoryKiB: 31, iterations: 1, parallelism: 4 })).toContain('memory');
    expect(kdfParamsProblem({ memoryKiB: 1024, iterations: 17, parallelism: 1 })).toContain('iterations');
    expect(kdfParamsProblem({ memoryKiB: 1024, iterations: 1.5, parallelism: 1 })).toContain('iterations');
    expect(kdfParamsProblem({ memoryKiB: 1024, iterations: 1, parallelism: 0 })).toContain('parallelism');
  });
});
