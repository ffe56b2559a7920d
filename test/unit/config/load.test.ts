// dso.yaml loading: the providers section, generic keys, and errors that give file:line:column and
// never the value found.
import { describe, expect, test } from 'bun:test';
import { parseConfig } from '../../../src/config/load.ts';
import { parseDuration, parseSize } from '../../../src/config/units.ts';
import { DsoError } from '../../../src/errors.ts';

async function problems(text: string): Promise<string> {
  try {
    await parseConfig(text, '/etc/dso/dso.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(DsoError);
    expect((e as DsoError).code).toBe('CONFIG_INVALID');
    return (e as DsoError).message;
  }
  throw new Error('expected the config to be refused');
}

describe('providers', () => {
  test('a local provider entry, with generic keys, becomes settings', async () => {
    const c = await parseConfig(
      `providers:
  home:
    type: local
    isolation: process
    timeout: 2s
    env: [HTTPS_PROXY]
    passphrase_env: DSO_PASSPHRASE
agent:
  cache:
    max_secret_size: 1Mi
`,
      'dso.yaml',
    );
    const p = c.providers.get('home')!;
    expect(p).toMatchObject({ name: 'home', kind: 'local', isolation: 'process', timeoutMs: 2000, env: ['DSO_PASSPHRASE', 'HTTPS_PROXY'] });
    expect(p.optionalEnv).toEqual(['DSO_HOME', 'HOME']);
    expect(c.maxSecretBytes).toBe(1024 * 1024);
  });

  test('the name is the kind unless type says otherwise; defaults apply', async () => {
    const c = await parseConfig('providers:\n  local:\n    passphrase_file: /etc/dso/pass\n', 'dso.yaml');
    expect(c.providers.get('local')).toMatchObject({ kind: 'local', isolation: 'worker', timeoutMs: 15000, env: [] });
    expect(c.maxSecretBytes).toBe(10 * 1024 * 1024);
  });

  test('every problem is listed with its line and column, sorted', async () => {
    const msg = await problems(`providers:
  mystery:
    addr: x
  home:
    type: local
    isolation: thread
    passphrase_env: DSO_PASSPHRASE
  other:
    type: local
    timeout: 5 minutes
    passphrase_env: X
agent:
  cache:
    max_secret_size: lots
`);
    expect(msg).toContain('4 problems');
    expect(msg).toMatch(/dso\.yaml:14:5: agent\.cache\.max_secret_size: max_secret_size must be a size/);
    expect(msg).toMatch(/dso\.yaml:2:3: providers\.mystery: unknown provider kind "mystery"/);
    expect(msg).toMatch(/dso\.yaml:6:5: providers\.home\.isolation: isolation must be worker or process/);
    expect(msg).toMatch(/dso\.yaml:10:5: providers\.other\.timeout: timeout must be a duration/);
    expect(msg.indexOf(':2:3')).toBeLessThan(msg.indexOf(':6:5'));
  });

  test('a provider\'s own schema errors name the key; an unknown key is refused', async () => {
    const msg = await problems('providers:\n  local:\n    passphrase_env: DSO_PASSPHRASE\n    pasword_file: x\n');
    expect(msg).toContain('providers.local');
    expect(msg).toContain(':4:5');
  });

  test('a value placed by mistake is never echoed', async () => {
    const secret = 'hunter2-super-secret-value';
    const msg = await problems(`providers:\n  local:\n    passphrase_env: "${secret}"\n`);
    expect(msg).toContain('providers.local.passphrase_env');
    expect(msg).not.toContain(secret);
    const msg2 = await problems(`providers:\n  home:\n    type: local\n    isolation: "${secret}"\n    passphrase_env: X\n`);
    expect(msg2).not.toContain(secret);
    const msg3 = await problems(`providers: {\n  home: "${secret}`);
    expect(msg3).toContain('YAML syntax error');
    expect(msg3).not.toContain(secret);
  });

  test('unknown top-level keys and bad provider names are refused', async () => {
    const msg = await problems('provider:\n  vault: {}\n');
    expect(msg).toContain(':1:1: provider: unknown top-level key');
    expect(await problems('providers:\n  My_Vault:\n    type: local\n')).toContain('a provider name is lowercase');
  });
});

test('durations and sizes are strict', () => {
  expect(parseDuration('30s')).toBe(30_000);
  expect(parseDuration('1h30m')).toBe(5_400_000);
  expect(parseDuration('500ms')).toBe(500);
  for (const bad of ['', '5', '5 m', '5min', '-1s', '1.5s']) expect(parseDuration(bad)).toBeUndefined();
  expect(parseSize('100Mi')).toBe(100 * 1024 * 1024);
  expect(parseSize('1G')).toBe(1e9);
  expect(parseSize('4096')).toBe(4096);
  for (const bad of ['', '1.5Mi', '10MB', 'Mi', '-1']) expect(parseSize(bad)).toBeUndefined();
});
