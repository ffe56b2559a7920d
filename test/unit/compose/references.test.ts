// The reference grammar: local names, PROVIDER:PATH#KEY, options, and the errors for bad input.
import { describe, expect, test } from 'bun:test';
import { defaultFilePath, parseReference, parseSecretId } from '../../../src/compose/references.ts';
import { DsoError } from '../../../src/errors.ts';

function error(f: () => unknown): DsoError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(DsoError);
    return e as DsoError;
  }
  throw new Error('expected an error');
}

describe('parseReference', () => {
  test('local vault names keep meaning the local vault', () => {
    const r = parseReference('dso://app/db_password', 'here');
    expect(r).toMatchObject({ delivery: 'env', path: 'app/db_password', id: 'app/db_password', name: 'app/db_password' });
    expect(r.provider).toBeUndefined();
  });

  test('provider references with a path, a key and file options in either order', () => {
    expect(parseReference('dso://vault:database/url', 'w')).toMatchObject({ provider: 'vault', path: 'database/url', id: 'vault:database/url' });
    const a = parseReference('dsofile://aws:prod/db#password?uid=1000&mode=0440', 'w');
    const b = parseReference('dsofile://aws:prod/db?uid=1000&mode=0440#password', 'w');
    for (const r of [a, b]) {
      expect(r).toMatchObject({ delivery: 'file', provider: 'aws', path: 'prod/db', key: 'password', id: 'aws:prod/db#password', file: { uid: 1000, mode: 0o440 } });
    }
    expect(parseReference('dso://azure:api-key', 'w').id).toBe('azure:api-key');
  });

  test('a pinned version is part of the identity', () => {
    const r = parseReference('dso://aws:prod/db?version=AWSPREVIOUS#password', 'w');
    expect(r.version).toBe('AWSPREVIOUS');
    expect(r.id).toBe('aws:prod/db#password?version=AWSPREVIOUS');
    expect(parseSecretId(r.id, 'label')).toMatchObject({ provider: 'aws', path: 'prod/db', key: 'password', version: 'AWSPREVIOUS' });
  });

  test('AWS-style names with + = @ . - are accepted', () => {
    expect(parseReference('dso://aws:team+a/db=main@eu.x-y', 'w').path).toBe('team+a/db=main@eu.x-y');
  });

  test.each([
    ['dso://vault:../sys/policy', '".." segment'],
    ['dso://vault:a/../../b', '".." segment'],
    ['dso://vault:/abs', 'starts or ends with "/"'],
    ['dso://vault:a//b', 'empty segment'],
    ['dso://vault:', 'no secret path'],
    ['dso://Vault:x', 'not a provider name'],
    ['dso://vault:a b', 'character other than'],
    ['dso://vault:a,b', 'character other than'],
    ['dso://vault:x#', 'empty #KEY'],
    ['dso://vault:x#a#b', 'more than one "#"'],
    ['dso://vault:x?version=1?x', 'more than one "?"'],
    ['dso://app/db#key', 'only applies to provider secrets'],
    ['dso://app/db?version=2', 'one version'],
    ['dso://vault:x?uid=1', 'only applies to dsofile://'],
    ['dsofile://vault:x?owner=1', 'unknown option'],
    ['dsofile://vault:x?mode=999', 'octal'],
    ['dsofile://vault:x?uid=1&uid=2', 'given twice'],
    ['dso://', 'no secret name'],
    ['dso://../etc/passwd', '".." segment'],
  ])('%s is refused: %s', (raw, why) => {
    const e = error(() => parseReference(raw, 'service "app", variable X'));
    expect(e.code).toBe('INVALID_REFERENCE');
    expect(e.message).toContain('service "app", variable X');
    expect(e.message).toContain(why);
    expect(e.hint).toBeTruthy();
  });
});

test('x-dso ids use the same grammar', () => {
  expect(parseSecretId('vault:db/creds#password', 'secrets.db (x-dso)')).toMatchObject({ provider: 'vault', key: 'password' });
  expect(error(() => parseSecretId('vault:db?uid=1', 'secrets.db (x-dso)')).message).toContain('secrets.db (x-dso)');
});

test('default file paths mirror the reference under /run/secrets', () => {
  expect(defaultFilePath('/run/secrets', parseSecretId('app/db', 'x'))).toBe('/run/secrets/app/db');
  expect(defaultFilePath('/run/secrets', parseSecretId('aws:prod/db#password', 'x'))).toBe('/run/secrets/aws/prod/db#password');
  expect(defaultFilePath('/run/secrets', parseSecretId('vault:x?version=2', 'x'))).toBe('/run/secrets/vault/x');
});
