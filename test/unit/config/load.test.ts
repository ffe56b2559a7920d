// dso.yaml loading: the providers section, generic keys, and errors that give file:line:column and
// never the value found.
import { describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
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

  test('user: the account a provider runs as under root; nobody by default, DSO\'s own for the local vault', async () => {
    const plugin = (user: string) => `  p:\n    type: plugin\n    plugin: x\n    sha256: "${'a'.repeat(64)}"\n${user ? `    user: ${user}\n` : ''}`;
    const c = await parseConfig(`providers:\n${plugin('')}  local:\n    passphrase_file: /etc/dso/pass\n  pinned:\n    type: local\n    passphrase_file: /etc/dso/pass\n    user: "4000001:4000002"\n`, 'dso.yaml');
    expect(c.providers.get('p')!.user).toEqual({ uid: 65534, gid: 65534 });
    expect(c.providers.get('local')!.user).toBeUndefined();
    expect(c.providers.get('pinned')!.user).toEqual({ uid: 4000001, gid: 4000002 });
    const one = async (user: string) => (await parseConfig(`providers:\n${plugin(user)}`, 'dso.yaml')).providers.get('p')!.user;
    // A name is looked up in /etc/passwd (with its primary group) and /etc/group.
    const nobody = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('nobody:'))!.split(':');
    expect(await one('nobody')).toEqual({ uid: Number(nobody[2]), gid: Number(nobody[3]) });
    expect(await one('nobody:root')).toEqual({ uid: Number(nobody[2]), gid: 0 });
    // A bare uid that /etc/passwd does not list keeps its number as gid; root means "as DSO".
    expect(await one('4000001')).toEqual({ uid: 4000001, gid: 4000001 });
    expect(await one('root')).toBeUndefined();
    expect(await one('"0:0"')).toBeUndefined();
  });

  test('user: an unknown account or a malformed one is a problem on its line, never echoed', async () => {
    const entry = (user: string) => `providers:\n  p:\n    type: plugin\n    plugin: x\n    sha256: "${'a'.repeat(64)}"\n    user: ${user}\n`;
    const unknown = await problems(entry('no-such-user-x7q'));
    expect(unknown).toMatch(/dso\.yaml:6:5: providers\.p\.user: this host has no such user in \/etc\/passwd/);
    expect(unknown).not.toContain('no-such-user-x7q');
    expect(await problems(entry('nobody:no-such-group-x7q'))).toContain('no such group in /etc/group');
    for (const bad of ['"a:b:c"', '"-1"', '"x y"', '[1]']) expect(await problems(entry(bad))).toContain('providers.p.user: user must be a user name or uid');
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
