import { describe, expect, test } from 'bun:test';
import { validateSecretName } from '../../../src/vault/names.ts';
import { dsoErrorOf } from './fixtures/helpers.ts';

describe('validateSecretName', () => {
  const valid = ['app/db_password', 'prod.api-key', 'a/b/c', 'a', '0', 'A.b_c-d/e..f', 'x'.repeat(255), 'a/b.'];
  for (const name of valid) {
    test(`accepts ${JSON.stringify(name.length > 20 ? `${name.slice(0, 20)}…` : name)}`, () => {
      expect(() => validateSecretName(name)).not.toThrow();
    });
  }

  const invalid: Array<[string, RegExp]> = [
    ['', /empty/],
    ['../x', /"\.\." segment/],
    ['/abs', /starts with "\/"/],
    ['a/', /ends with "\/"/],
    ['a//b', /empty segment/],
    ['a/../b', /"\.\." segment/],
    ['a/./b', /"\." segment/],
    ['.', /"\." segment/],
    ['-x', /does not start with a letter or digit/],
    ['_x', /does not start with a letter or digit/],
    ['with space', /character other than/],
    ['tab\there', /character other than/],
    ['new\nline', /character other than/],
    ['ünïcode', /does not start|character other than/],
    ['a\\b', /character other than/],
    ['x'.repeat(256), /256 characters long/],
  ];
  for (const [name, why] of invalid) {
    test(`refuses ${JSON.stringify(name.length > 20 ? `${name.slice(0, 20)}…` : name)}`, async () => {
      const error = await dsoErrorOf(() => validateSecretName(name));
      expect(error.code).toBe('INVALID_SECRET_NAME');
      expect(error.message).toMatch(why);
      expect(error.hint).toContain('app/db_password');
    });
  }

  test('escapes control characters in the message instead of printing them', async () => {
    const error = await dsoErrorOf(() => validateSecretName('a\nFAKE LOG LINE'));
    expect(error.message).not.toContain('\n');
    expect(error.message).toContain('\\n');
  });
});
