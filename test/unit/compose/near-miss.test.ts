// Near-miss references: what counts as a mistyped dso:// or dsofile:// reference or x-dso key,
// what does not, and that a message never shows more of a value than a scheme and a name.
import { describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { splitAnywhere, splitLeading } from '../../../src/compose/args.ts';
import { looksLikeXDsoKey, readXDso } from '../../../src/compose/files.ts';
import { describeNearMisses, findNearMisses, nearMissScheme } from '../../../src/compose/near-miss.ts';
import { parseSecretId } from '../../../src/compose/references.ts';
import { DsoError } from '../../../src/errors.ts';

describe('nearMissScheme', () => {
  test.each([
    ['dsofile:/app/x', 'dsofile://'],
    ['dsofile:app/x', 'dsofile://'],
    ['DSOFILE://app/x', 'dsofile://'],
    ['DsoFile://app/x', 'dsofile://'],
    ['dsofile///app/x', 'dsofile://'],
    ['dsofile//app/x', 'dsofile://'],
    ['DSOFILE:///app/x', 'dsofile://'],
    ['dso:app/x', 'dso://'],
    ['dso:/app/x', 'dso://'],
    ['DSO://app/x', 'dso://'],
    ['Dso:vault:db#password', 'dso://'],
    ['dso//app/x', 'dso://'],
    ['dso-file://app/x', 'dsofile://'],
    ['dso_file:app/x', 'dsofile://'],
    ['dsofle://app/x', 'dsofile://'],
    ['dsofiles://app/x', 'dsofile://'],
    ['dos://app/x', 'dso://'],
    ['dsoo://app/x', 'dso://'],
  ])('%p is a near miss of %p', (value, scheme) => {
    expect(nearMissScheme(value)?.scheme).toBe(scheme as never);
  });

  test.each([
    'dso://app/x', // a reference (a malformed one is an error elsewhere)
    'dsofile://app/x',
    'dso:', // nothing after the scheme
    'dsofile:',
    'dso:6379', // a host named dso and its port
    'dso:8080/health',
    'dos:app/x', // a typo of the word needs the full ://
    'do://app/x', // too short to be a typo
    'postgres://user@db/app',
    'https://example.com/x',
    'redis:6379',
    'file:///etc/passwd',
    'dsotoken',
    'DSO_ENABLED=1',
    'a plain value: dso://app/x inside',
  ])('%p is not', (value) => {
    expect(nearMissScheme(value)).toBeUndefined();
  });
});

describe('findNearMisses', () => {
  const model = (environment: unknown) => ({ services: { web: { image: 'x', environment }, db: { image: 'y', environment: ['PASSWORD_FILE=dsofile:/db/password'] } } });

  test('names the service, the variable and what was meant, map and list forms, sorted by service', () => {
    const misses = findNearMisses(model({ A: 'DSOFILE://app/a', B: 'dso:app/b', C: 'fine', D: 'dso://app/d' }));
    expect(misses).toEqual([
      { where: 'service "db", variable PASSWORD_FILE', written: '"dsofile:/db/password"', meant: 'dsofile://db/password' },
      { where: 'service "web", variable A', written: '"DSOFILE://app/a"', meant: 'dsofile://app/a' },
      { where: 'service "web", variable B', written: '"dso:app/b"', meant: 'dso://app/b' },
    ]);
    expect(describeNearMisses(misses)).toBe(
      '    service "db", variable PASSWORD_FILE: "dsofile:/db/password", did you mean dsofile://db/password?\n' +
        '    service "web", variable A: "DSOFILE://app/a", did you mean dsofile://app/a?\n' +
        '    service "web", variable B: "dso:app/b", did you mean dso://app/b?',
    );
  });

  test('a rest that is not a secret name is never shown: only the scheme part', () => {
    const value = 'dso:Zq8#not a name, maybe a password!';
    const [miss] = findNearMisses({ services: { web: { environment: { TOKEN: value } } } });
    expect(miss).toEqual({ where: 'service "web", variable TOKEN', written: '"dso:…"', meant: 'a dso:// reference' });
    expect(describeNearMisses([miss!])).not.toContain('Zq8');
  });

  test('mistyped x-dso keys, with the name only when it parses as one', () => {
    const misses = findNearMisses({ services: {} }, [
      { secret: 'tls', key: 'x-dos', value: 'app/tls_key' },
      { secret: 'api', key: 'X-DSO', value: 'not a name!' },
    ]);
    expect(misses).toEqual([
      { where: 'secrets.api', written: '"X-DSO"', meant: 'x-dso' },
      { where: 'secrets.tls', written: '"x-dos"', meant: 'x-dso: app/tls_key' },
    ]);
  });
});

describe('x-dso in the raw files', () => {
  test('mistyped keys are found; an x-dso secret with its own Compose source is marked', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dso-near-miss-'));
    try {
      const file = join(dir, 'compose.yaml');
      writeFileSync(
        file,
        'services: {}\nsecrets:\n  a:\n    x-dso: app/a\n    environment: DSO_X_DSO_PLACEHOLDER\n  b:\n    x-dso: app/b\n  c:\n    X_DSO: app/c\n    file: /dev/null\n  d:\n    x-dso-version: "2"\n    file: ./d.txt\n',
      );
      const x = readXDso([file]);
      expect([...x.ids]).toEqual([['a', 'app/a'], ['b', 'app/b']]);
      expect([...x.sourced].sort()).toEqual(['a', 'c', 'd']);
      expect(x.mistyped).toEqual([{ secret: 'c', key: 'X_DSO', value: 'app/c' }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test.each([['X-DSO', true], ['x_dso', true], ['xdso', true], ['dso', true], ['x-dos', true], ['x-dsp', true], ['x-dso-version', false], ['x-foo', false], ['external', false], ['file', false]])('%p looks like x-dso: %p', (key, expected) => {
    expect(looksLikeXDsoKey(key as string)).toBe(expected as boolean);
  });

  test('an x-dso value written as a reference says to write the name alone', () => {
    let error: unknown;
    try {
      parseSecretId('dsofile://app/tls_key', 'secrets.tls (x-dso)');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DsoError);
    expect((error as DsoError).message).toContain('"dsofile://" belongs in an environment value; here the secret is named alone');
    expect(() => parseSecretId('dso:app/x', 'w')).not.toThrow(); // a provider named dso stays possible
  });
});

test('--strict: anywhere on up and down, before the command on compose (after it, it is the command\'s)', () => {
  const up = splitAnywhere(['-d', '--strict', 'web']);
  expect(up.globals.strict).toBe(true);
  expect(up.rest).toEqual(['-d', 'web']);
  const compose = splitLeading(['--strict', '-f', 'x.yaml', 'run', 'app', 'pytest', '--strict']);
  expect(compose).toMatchObject({ command: 'run', rest: ['app', 'pytest', '--strict'] });
  expect(compose.globals).toMatchObject({ strict: true, files: ['x.yaml'] });
  expect(splitLeading(['run', 'app', '--strict']).globals.strict).toBeUndefined();
});
