// Custom providers: the example plugin serves secrets end to end (directly, and through the real
// Worker and the real provider process), a plugin that fails any check is never run, a plugin
// sees only its declared variables, and every way a plugin can misbehave gives the right error
// kind, never a value, and a fresh plugin on the next call.
import { afterAll, afterEach, describe, expect, test } from 'bun:test';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as v from 'valibot';
import { createProvider } from '../../providers/plugin/client.ts';
import { definition, type PluginConfig } from '../../providers/plugin/config.ts';
import { LineReader } from '../../providers/plugin/lines.ts';
import { getLine, helloLine, idFromHead, listLine } from '../../providers/plugin/protocol.ts';
import { extractValue } from '../../providers/plugin/value-field.ts';
import { parseSecretId } from '../../src/compose/references.ts';
import { parseConfig } from '../../src/config/load.ts';
import { ProviderError, type Provider } from '../../src/providers/contract.ts';
import { ProviderHost } from '../../src/providers/host.ts';
import { ProviderSet, resolveProviderSecrets } from '../../src/providers/resolver.ts';

const EXAMPLES = new URL('../../providers/plugin/examples/', import.meta.url).pathname;
const root = mkdtempSync(join(tmpdir(), 'dso-plugin-test-'));
// Run by root, DSO starts a plugin from dso.yaml as nobody (docs/providers.md#isolation): the
// plugins and the secrets they serve must be within its reach, as in a real installation.
chmodSync(root, 0o755);
const SECRETS = join(root, 'secrets');
const TOKEN = 't0ken-only-for-the-plugin-8213';

// Every value a test plugin can hand out: none may appear in any error message.
const VALUES = ['db-password-value-4411', 'old-db-password-0042', 'json-field-password-77', 'plugin-secret-ok-5517', 'plugin-secret-garbage-9', 'json-user-name-x1', TOKEN];

const enc = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const opts = (maxBytes = 1024, ms = 5000) => ({ maxBytes, signal: AbortSignal.timeout(ms) });

mkdirSync(join(SECRETS, 'app'), { recursive: true });
mkdirSync(join(SECRETS, '.versions/app/db'), { recursive: true });
writeFileSync(join(SECRETS, 'app/db'), 'db-password-value-4411');
writeFileSync(join(SECRETS, '.versions/app/db/1'), 'old-db-password-0042');
writeFileSync(join(SECRETS, 'app/json'), JSON.stringify({ user: 'json-user-name-x1', password: 'json-field-password-77' }));
writeFileSync(join(SECRETS, 'app/binary'), new Uint8Array(256).map((_, i) => i));
writeFileSync(join(SECRETS, 'app/big'), new Uint8Array(2000));

let dirs = 0;
/** A fresh plugin directory, root-owned (the test runs as root or as its owner), mode 0755. */
function pluginDir(): string {
  const dir = join(root, `plugins-${++dirs}`);
  mkdirSync(dir, { mode: 0o755 });
  chmodSync(dir, 0o755);
  return dir;
}

/** Installs `content` as dso-provider-NAME in `dir`, mode 0755; returns its SHA-256. */
function install(dir: string, name: string, content: string | Uint8Array): string {
  const path = join(dir, `dso-provider-${name}`);
  writeFileSync(path, content);
  chmodSync(path, 0o755);
  return sha256(path);
}

function installExample(dir: string, file = 'dso-provider-files', name = 'files'): string {
  const path = join(dir, `dso-provider-${name}`);
  copyFileSync(join(EXAMPLES, file), path);
  chmodSync(path, 0o755);
  return sha256(path);
}

function config(entry: Record<string, unknown>): PluginConfig {
  return v.parse(definition.schema, entry);
}

const logs: string[] = [];
const ctx = (env: Record<string, string> = {}) => ({ name: 'files', env, log: (_level: string, message: string) => void logs.push(message) });

const providers: Provider[] = [];
const hosts: ProviderHost[] = [];
afterEach(async () => {
  await Promise.all(providers.splice(0).map((p) => p.close?.()));
  await Promise.all(hosts.splice(0).map((h) => h.close()));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function start(dir: string, sha: string, name = 'files', more: Record<string, unknown> = {}, env: Record<string, string> = {}): Promise<Provider> {
  const p = await createProvider(config({ plugin: name, sha256: sha, plugin_dir: dir, settings: { dir: SECRETS }, ...more }), ctx(env));
  providers.push(p);
  return p;
}

/** The ProviderError `p` fails with, after checking that its message holds no value. */
async function failure(p: Promise<unknown>): Promise<ProviderError> {
  let error: unknown;
  try {
    await p;
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(ProviderError);
  for (const value of VALUES) expect((error as Error).message).not.toContain(value);
  return error as ProviderError;
}

/** Whether `pid` runs (a zombie waiting for its parent to reap it does not). */
const alive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
};

/** Processes in process group `pgid` (the plugin and whatever it started). */
function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] !== 'Z' && Number(fields[2]) === pgid) out.push(Number(entry));
    } catch {}
  }
  return out;
}

async function until(check: () => boolean, ms = 3000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (check()) return true;
    await Bun.sleep(20);
  }
  return check();
}

// A test plugin: the protocol in a few lines of sh, answering by path. Written by the test into a
// temporary plugin directory, like a user would install one.
const PREAMBLE = String.raw`#!/bin/sh
field() { printf '%s\n' "$2" | sed -n "s/.*\"$1\":\"\([^\"\\\\]*\)\".*/\1/p"; }
number() { printf '%s\n' "$2" | sed -n "s/.*\"$1\":\([0-9][0-9]*\).*/\1/p"; }
value() { printf '{"id":%s,"type":"value","value_base64":"%s"}\n' "$id" "$(printf '%s' "$1" | base64 | tr -d '\n')"; }
`;

const SCRIPTED = `${PREAMBLE}
IFS= read -r hello || exit 0
printf '{"type":"ready","capabilities":{"list":false,"versions":false}}\\n'
while IFS= read -r line; do
  id=$(number id "$line")
  case $(field path "$line") in
    ok) value plugin-secret-ok-5517 ;;
    pid) value $$ ;;
    env) printf '{"id":%s,"type":"value","value_base64":"%s"}\\n' "$id" "$(base64 </proc/$$/environ | tr -d '\\n')" ;;
    crash) exit 3 ;;
    garbage) echo 'not json at all, plugin-secret-garbage-9' ;;
    hang) sleep 30 ;;
    denied) printf '{"id":%s,"type":"error","kind":"denied","message":"the plugin may not read denied"}\\n' "$id" ;;
    missing) printf '{"id":%s,"type":"error","kind":"not_found","message":"no secret missing"}\\n' "$id" ;;
    weird-kind) printf '{"id":%s,"type":"error","kind":"exploded","message":"boom"}\\n' "$id" ;;
    bad-base64) printf '{"id":%s,"type":"value","value_base64":"plugin-secret-ok-5517!"}\\n' "$id" ;;
    wrong-id) printf '{"id":999,"type":"value","value_base64":"cGx1Z2luLXNlY3JldC1vay01NTE3"}\\n' ;;
    twice) printf '{"id":%s,"type":"value","value_base64":"YQ==","value_base64":"Yg=="}\\n' "$id" ;;
    escaped-key) printf '{"id":%s,"type":"value","value\\\\u005fbase64":"YQ=="}\\n' "$id" ;;
    big) printf '{"id":%s,"type":"value","value_base64":"%s"}\\n' "$id" "$(head -c 2000 /dev/zero | base64 | tr -d '\\n')" ;;
    huge) printf '{"id":%s,"type":"value","value_base64":"' "$id"; head -c 300000 /dev/zero | base64 | tr -d '\\n'; printf '"}\\n' ;;
    spaced) printf '{ "value_base64" : "c3BhY2Vk" ,\\t"type" : "value", "version": "v9", "id" : %s }\\n' "$id" ;;
    slashes) printf '{"id":%s,"type":"value","value_base64":"\\\\/\\\\/\\\\/\\\\/"}\\n' "$id" ;;
    stderr) echo "a note from the plugin" >&2; value logged ;;
    *) printf '{"id":%s,"type":"error","kind":"not_found","message":"no such test path"}\\n' "$id" ;;
  esac
done
`;

describe('the example plugin (sh)', () => {
  test('serves plain, JSON, binary and pinned-version secrets, lists names, refuses what it must', async () => {
    const dir = pluginDir();
    const p = await start(dir, installExample(dir));
    expect(p.capabilities).toEqual({ list: true, watch: false, versions: true });
    expect(text((await p.get('app/db', opts())).value)).toBe('db-password-value-4411');
    const json = JSON.parse(text((await p.get('app/json', opts())).value));
    expect(json.password).toBe('json-field-password-77');
    expect([...(await p.get('app/binary', opts())).value]).toEqual([...new Uint8Array(256).map((_, i) => i)]);
    const old = await p.get('app/db', { ...opts(), version: '1' });
    expect(text(old.value)).toBe('old-db-password-0042');
    expect(old.version).toBe('1');
    expect(await p.list!('app/', { signal: AbortSignal.timeout(5000) })).toEqual(['app/big', 'app/binary', 'app/db', 'app/json']);
    expect(await p.list!('app/j', { signal: AbortSignal.timeout(5000) })).toEqual(['app/json']);

    expect((await failure(p.get('app/nope', opts()))).kind).toBe('not_found');
    expect((await failure(p.get('app/db', { ...opts(), version: '7' }))).kind).toBe('not_found');
    expect((await failure(p.get('app/big', opts(1000)))).kind).toBe('too_large');
    expect((await failure(p.get('../secrets/app/db', opts()))).kind).toBe('config');
  });

  test('reads its directory from a declared variable when settings have none', async () => {
    const dir = pluginDir();
    const sha = installExample(dir);
    const p = await createProvider(config({ plugin: 'files', sha256: sha, plugin_dir: dir }), ctx({ DSO_FILES_DIR: SECRETS }));
    providers.push(p);
    expect(text((await p.get('app/db', opts())).value)).toBe('db-password-value-4411');
    const without = await failure(createProvider(config({ plugin: 'files', sha256: sha, plugin_dir: dir }), ctx()));
    expect(without.kind).toBe('config');
    expect(without.message).toContain('settings.dir (or DSO_FILES_DIR) must name an existing directory');
  });

  test.skipIf(!existsSync('/usr/bin/python3'))('the Python example speaks the same protocol', async () => {
    const dir = pluginDir();
    const p = await start(dir, installExample(dir, 'dso-provider-files-py', 'files-py'), 'files-py');
    expect(text((await p.get('app/db', opts())).value)).toBe('db-password-value-4411');
    expect(text((await p.get('app/db', { ...opts(), version: '1' })).value)).toBe('old-db-password-0042');
    expect((await failure(p.get('app/nope', opts()))).kind).toBe('not_found');
    expect((await failure(p.get('app/big', opts(1000)))).kind).toBe('too_large');
    expect(await p.list!('app/d', { signal: AbortSignal.timeout(5000) })).toEqual(['app/db']);
  });

  test('through dso.yaml and resolveProviderSecrets: #KEY, a pinned version, and a missing key', async () => {
    const dir = pluginDir();
    const sha = installExample(dir);
    const cfg = await parseConfig(`providers:\n  files:\n    type: plugin\n    plugin: files\n    sha256: "${sha}"\n    plugin_dir: ${dir}\n    settings: { dir: ${SECRETS} }\n    isolation: worker\n`, 'dso.yaml');
    const set = new ProviderSet(cfg, { env: {} });
    try {
      const wanted = ['files:app/json#password', 'files:app/db?version=1', 'files:app/db'].map((id) => ({ id: parseSecretId(id, 'test'), uses: ['test'] }));
      const values = await resolveProviderSecrets(set, wanted);
      expect(text(values.get('files:app/json#password')!.expose())).toBe('json-field-password-77');
      expect(text(values.get('files:app/db?version=1')!.expose())).toBe('old-db-password-0042');
      expect(text(values.get('files:app/db')!.expose())).toBe('db-password-value-4411');
      const e = await resolveProviderSecrets(set, [{ id: parseSecretId('files:app/json#nokey', 'test'), uses: ['test'] }]).catch((err: Error) => err);
      expect((e as Error).message).toContain('key not found');
      expect((e as Error).message).toContain('"user", "password"');
      for (const value of VALUES) expect((e as Error).message).not.toContain(value);
    } finally {
      await set.close();
    }
  });
});

describe('dso.yaml entry', () => {
  test('defaults to process isolation, takes env: as the plugin\'s variables, and the default plugin_dir', async () => {
    const sha = 'A'.repeat(64);
    const cfg = await parseConfig(`providers:\n  internal:\n    type: plugin\n    plugin: internal\n    sha256: "${sha}"\n    env: [INTERNAL_TOKEN]\n`, 'dso.yaml');
    const s = cfg.providers.get('internal')!;
    expect(s.kind).toBe('plugin');
    expect(s.isolation).toBe('process');
    expect(s.env).toEqual(['INTERNAL_TOKEN']);
    expect(s.config).toEqual({ plugin: 'internal', sha256: 'a'.repeat(64), plugin_dir: '/usr/local/lib/dso/plugins', settings: {} });
  });

  test('refuses bad names, pins, directories and settings without printing what it found', async () => {
    const pasted = 'pasted-secret-value-991';
    const bad = async (entry: string) => {
      const e = await parseConfig(`providers:\n  x:\n    type: plugin\n${entry}`, 'dso.yaml').catch((err: Error) => err);
      expect(e).toBeInstanceOf(Error);
      expect((e as Error).message).not.toContain(pasted);
      return (e as Error).message;
    };
    const sha = `    sha256: "${'0'.repeat(64)}"\n`;
    expect(await bad(`    plugin: ../etc\n${sha}`)).toContain('no "/" or "."');
    expect(await bad(`    plugin: a/b\n${sha}`)).toContain('no "/" or "."');
    expect(await bad(`    plugin: Upper\n${sha}`)).toContain('lowercase');
    expect(await bad(`    plugin: ok\n    sha256: ${pasted}\n`)).toContain('64 hex digits');
    expect(await bad('    plugin: ok\n')).toContain('sha256');
    expect(await bad(`    plugin: ok\n${sha}    plugin_dir: relative/dir\n`)).toContain('absolute');
    expect(await bad(`    plugin: ok\n${sha}    settings: ${pasted}\n`)).toContain('settings must be a mapping');
    expect(await bad(`    plugin: ok\n${sha}    token: ${pasted}\n`)).toContain('takes the keys plugin, sha256, plugin_dir and settings');
  });
});

describe('verification before each start', () => {
  const MARKER_SCRIPT = (marker: string) => `#!/bin/sh\n: > ${marker}\nread -r hello\nprintf '{"type":"ready"}\\n'\nwhile read -r line; do :; done\n`;

  test('a plugin whose hash differs is refused, with both hashes and the fix, and never runs', async () => {
    const dir = pluginDir();
    const marker = join(root, 'ran-wrong-hash');
    const actual = install(dir, 'internal', MARKER_SCRIPT(marker));
    const pinned = 'b'.repeat(64);
    const e = await failure(start(dir, pinned, 'internal'));
    expect(e.kind).toBe('config');
    expect(e.message).toContain(join(dir, 'dso-provider-internal'));
    expect(e.message).toContain(pinned);
    expect(e.message).toContain(actual);
    expect(e.message).toContain(`sha256sum ${join(dir, 'dso-provider-internal')}`);
    expect(e.message).toContain('was not run');
    expect(existsSync(marker)).toBe(false);
    // The right pin runs it: the marker proves the test would have seen a run.
    await start(dir, actual, 'internal');
    expect(existsSync(marker)).toBe(true);
  });

  test('the hash is checked again at every start: a plugin changed after its first start is refused', async () => {
    const dir = pluginDir();
    const sha = install(dir, 'scripted', SCRIPTED);
    const p = await start(dir, sha, 'scripted');
    expect((await failure(p.get('crash', opts()))).kind).toBe('crashed');
    const marker = join(root, 'ran-swapped');
    install(dir, 'scripted', MARKER_SCRIPT(marker));
    const e = await failure(p.get('ok', opts()));
    expect(e.kind).toBe('config');
    expect(e.message).toContain('does not match its pin');
    expect(existsSync(marker)).toBe(false);
  });

  test('group- or world-writable plugins and directories are refused', async () => {
    const dir = pluginDir();
    const marker = join(root, 'ran-writable');
    const sha = install(dir, 'w', MARKER_SCRIPT(marker));
    chmodSync(join(dir, 'dso-provider-w'), 0o775);
    let e = await failure(start(dir, sha, 'w'));
    expect(e.kind).toBe('config');
    expect(e.message).toContain('writable by other users (mode 0775)');
    expect(e.message).toContain('chmod go-w');
    chmodSync(join(dir, 'dso-provider-w'), 0o757);
    expect((await failure(start(dir, sha, 'w'))).message).toContain('writable by other users');
    chmodSync(join(dir, 'dso-provider-w'), 0o755);
    chmodSync(dir, 0o775);
    e = await failure(start(dir, sha, 'w'));
    expect(e.message).toContain(`the directory ${dir} is writable by other users`);
    // Sticky does not make the plugin directory itself acceptable (only directories above it).
    chmodSync(dir, 0o1777);
    expect((await failure(start(dir, sha, 'w'))).message).toContain('writable by other users');
    chmodSync(dir, 0o755);
    expect(existsSync(marker)).toBe(false);
  });

  test('a plugin that is not executable, or not a file, is refused', async () => {
    const dir = pluginDir();
    const sha = install(dir, 'x', MARKER_SCRIPT(join(root, 'ran-x')));
    chmodSync(join(dir, 'dso-provider-x'), 0o644);
    expect((await failure(start(dir, sha, 'x'))).message).toContain('is not executable');
    mkdirSync(join(dir, 'dso-provider-d'));
    expect((await failure(start(dir, sha, 'd'))).message).toContain('is not a regular file');
    const missing = await failure(start(dir, sha, 'missing'));
    expect(missing.kind).toBe('config');
    expect(missing.message).toContain(`plugin ${join(dir, 'dso-provider-missing')} cannot be used (ENOENT)`);
    expect((await failure(start(join(root, 'no-such-dir'), sha, 'x'))).message).toContain('the plugin directory');
  });

  test.skipIf(process.getuid?.() !== 0)('a plugin or directory owned by another user is refused', async () => {
    const dir = pluginDir();
    const marker = join(root, 'ran-owned');
    const sha = install(dir, 'o', MARKER_SCRIPT(marker));
    chownSync(join(dir, 'dso-provider-o'), 65534, 65534);
    const e = await failure(start(dir, sha, 'o'));
    expect(e.message).toContain('is owned by uid 65534');
    chownSync(join(dir, 'dso-provider-o'), 0, 0);
    chownSync(dir, 65534, 65534);
    expect((await failure(start(dir, sha, 'o'))).message).toContain(`the directory ${dir} is owned by uid 65534`);
    chownSync(dir, 0, 0);
    expect(existsSync(marker)).toBe(false);
  });

  test('a symlink out of the plugin directory is refused; one inside it is followed', async () => {
    const dir = pluginDir();
    const outside = pluginDir();
    const marker = join(root, 'ran-symlink');
    const sha = install(outside, 'real', MARKER_SCRIPT(marker));
    symlinkSync(join(outside, 'dso-provider-real'), join(dir, 'dso-provider-linked'));
    const e = await failure(start(dir, sha, 'linked'));
    expect(e.kind).toBe('config');
    expect(e.message).toContain('outside the plugin directory');
    expect(existsSync(marker)).toBe(false);

    const versioned = install(dir, 'files-1.0', readFileSync(join(EXAMPLES, 'dso-provider-files')));
    symlinkSync('dso-provider-files-1.0', join(dir, 'dso-provider-files'));
    const p = await start(dir, versioned);
    expect(text((await p.get('app/db', opts())).value)).toBe('db-password-value-4411');
  });
});

describe('a misbehaving plugin', () => {
  test('not_found and denied keep their kind and the plugin\'s message', async () => {
    const dir = pluginDir();
    const p = await start(dir, install(dir, 'scripted', SCRIPTED), 'scripted');
    const missing = await failure(p.get('missing', opts()));
    expect(missing.kind).toBe('not_found');
    expect(missing.message).toBe('no secret missing');
    const denied = await failure(p.get('denied', opts()));
    expect(denied.kind).toBe('denied');
    expect(denied.message).toBe('the plugin may not read denied');
    expect(text((await p.get('ok', opts())).value)).toBe('plugin-secret-ok-5517');
  });

  test('a plugin that crashes fails the call as crashed and is started again on the next call', async () => {
    const dir = pluginDir();
    const p = await start(dir, install(dir, 'scripted', SCRIPTED), 'scripted');
    const first = Number(text((await p.get('pid', opts())).value));
    const e = await failure(p.get('crash', opts()));
    expect(e.kind).toBe('crashed');
    expect(e.message).toContain('exited with code 3');
    const second = Number(text((await p.get('pid', opts())).value));
    expect(second).not.toBe(first);
    expect(alive(first)).toBe(false);
  });

  test('garbage on stdout is invalid_response, never quoted, and the plugin is replaced', async () => {
    const dir = pluginDir();
    const p = await start(dir, install(dir, 'scripted', SCRIPTED), 'scripted');
    const before = Number(text((await p.get('pid', opts())).value));
    const e = await failure(p.get('garbage', opts()));
    expect(e.kind).toBe('invalid_response');
    expect(e.message).toContain('broke the protocol');
    expect(e.message).not.toContain('not json at all');
    expect(logs.join('\n')).not.toContain('plugin-secret-garbage-9');
    expect(await until(() => !alive(before))).toBe(true);
    expect(text((await p.get('ok', opts())).value)).toBe('plugin-secret-ok-5517');
  });

  test('unknown kinds, bad base64, unasked ids, repeated or disguised values are refused', async () => {
    const dir = pluginDir();
    const p = await start(dir, install(dir, 'scripted', SCRIPTED), 'scripted');
    for (const path of ['weird-kind', 'bad-base64', 'wrong-id', 'twice', 'escaped-key']) {
      const e = await failure(p.get(path, opts()));
      expect([path, e.kind]).toEqual([path, 'invalid_response']);
    }
    expect((await failure(p.get('weird-kind', opts()))).message).toContain('kind must be one of');
    expect((await failure(p.get('wrong-id', opts()))).message).toContain('answered id 999, which DSO did not ask');
  });

  test('any key order and spacing is accepted, and JSON\'s escaped "/" decodes', async () => {
    const dir = pluginDir();
    const p = await start(dir, install(dir, 'scripted', SCRIPTED), 'scripted');
    const spaced = await p.get('spaced', opts());
    expect(text(spaced.value)).toBe('spaced');
    expect(spaced.version).toBe('v9');
    expect([...(await p.get('slashes', opts())).value]).toEqual([0xff, 0xff, 0xff]);
  });

  test('a value over the limit is too_large, whether or not its line fits; the plugin keeps running', async () => {
    const dir = pluginDir();
    const p = await start(dir, install(dir, 'scripted', SCRIPTED), 'scripted');
    const pid = Number(text((await p.get('pid', opts())).value));
    const big = await failure(p.get('big', opts(1024)));
    expect(big.kind).toBe('too_large');
    expect(big.message).toContain('2000 bytes');
    const huge = await failure(p.get('huge', opts(1024)));
    expect(huge.kind).toBe('too_large');
    expect(huge.message).toContain('longer than');
    expect(Number(text((await p.get('pid', opts())).value))).toBe(pid);
  });

  test('a plugin that does not answer times out at the call\'s deadline; it and what it started are killed', async () => {
    const dir = pluginDir();
    const p = await start(dir, install(dir, 'scripted', SCRIPTED), 'scripted');
    const pid = Number(text((await p.get('pid', opts())).value));
    const started = Date.now();
    const e = await failure(p.get('hang', opts(1024, 300)));
    expect(e.kind).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(2000);
    expect(await until(() => groupMembers(pid).length === 0)).toBe(true);
    expect(text((await p.get('ok', opts())).value)).toBe('plugin-secret-ok-5517');
    // A call cancelled for another reason than its deadline is unavailable, not timeout.
    const controller = new AbortController();
    const pending = p.get('hang', { maxBytes: 1024, signal: controller.signal });
    await Bun.sleep(100);
    controller.abort();
    expect((await failure(pending)).kind).toBe('unavailable');
  });

  test('a plugin that refuses to start gives its own kind; one that talks nonsense or dies is reported as such', async () => {
    const dir = pluginDir();
    const auth = install(dir, 'auth', `#!/bin/sh\nread -r hello\nprintf '{"type":"error","kind":"auth","message":"INTERNAL_TOKEN was refused"}\\n'\nexit 1\n`);
    const e = await failure(start(dir, auth, 'auth'));
    expect(e.kind).toBe('auth');
    expect(e.message).toContain('INTERNAL_TOKEN was refused');
    const noise = install(dir, 'noise', `#!/bin/sh\nread -r hello\necho hello there\nsleep 30\n`);
    expect((await failure(start(dir, noise, 'noise'))).kind).toBe('invalid_response');
    const dies = install(dir, 'dies', '#!/bin/sh\nexit 9\n');
    const died = await failure(start(dir, dies, 'dies'));
    expect(died.kind).toBe('crashed');
    expect(died.message).toContain('exited with code 9');
  });

  test('stderr lines reach the provider log', async () => {
    const dir = pluginDir();
    const p = await start(dir, install(dir, 'scripted', SCRIPTED), 'scripted');
    expect(text((await p.get('stderr', opts())).value)).toBe('logged');
    expect(await until(() => logs.some((l) => l === 'plugin scripted: a note from the plugin'))).toBe(true);
  });

  test('close ends the plugin', async () => {
    const dir = pluginDir();
    const p = await start(dir, install(dir, 'scripted', SCRIPTED), 'scripted');
    const pid = Number(text((await p.get('pid', opts())).value));
    await p.close!();
    expect(await until(() => !alive(pid))).toBe(true);
  });
});

describe('environment', () => {
  test('the plugin\'s whole environment is the declared variables, nothing else (not even PATH)', async () => {
    const dir = pluginDir();
    const p = await start(dir, install(dir, 'scripted', SCRIPTED), 'scripted', {}, { INTERNAL_TOKEN: TOKEN });
    const environ = text((await p.get('env', opts())).value).split('\0').filter(Boolean);
    expect(environ).toEqual([`INTERNAL_TOKEN=${TOKEN}`]);
  });
});

for (const isolation of ['process', 'worker'] as const) {
  describe(`through ProviderHost, isolation: ${isolation}`, () => {
    async function host(sha: string, dir: string, plugin: string, extra = ''): Promise<ProviderHost> {
      const cfg = await parseConfig(
        `providers:\n  internal:\n    type: plugin\n    plugin: ${plugin}\n    sha256: "${sha}"\n    plugin_dir: ${dir}\n    settings: { dir: ${SECRETS} }\n    env: [INTERNAL_TOKEN]\n    timeout: 1s\n${isolation === 'worker' ? '    isolation: worker\n' : ''}${extra}`,
        'dso.yaml',
      );
      const settings = cfg.providers.get('internal')!;
      expect(settings.isolation).toBe(isolation);
      const h = new ProviderHost({ settings, env: { ...process.env, INTERNAL_TOKEN: TOKEN, OTHER_SECRET: 'not-for-the-plugin-33' }, maxBytes: 1024, backoff: { initialMs: 50, maxMs: 200 }, hangGraceMs: 500 });
      hosts.push(h);
      return h;
    }

    test('the example plugin serves a secret across the boundary', async () => {
      const dir = pluginDir();
      const h = await host(installExample(dir), dir, 'files');
      expect(text((await h.get('app/db')).value.expose())).toBe('db-password-value-4411');
      expect(text((await h.get('app/db', { version: '1' })).value.expose())).toBe('old-db-password-0042');
      expect(await h.list('app/d')).toEqual(['app/db']);
      expect((await failure(h.get('app/nope'))).kind).toBe('not_found');
      expect((await failure(h.get('app/big'))).kind).toBe('too_large');
    });

    test('the plugin sees exactly its declared variables', async () => {
      const dir = pluginDir();
      const h = await host(install(dir, 'scripted', SCRIPTED), dir, 'scripted');
      const environ = text((await h.get('env')).value.expose()).split('\0').filter(Boolean);
      expect(environ).toEqual([`INTERNAL_TOKEN=${TOKEN}`]);
    });

    test('a wrong hash is refused as config, named, and the plugin never runs', async () => {
      const dir = pluginDir();
      const marker = join(root, `ran-host-${isolation}`);
      install(dir, 'internal', `#!/bin/sh\n: > ${marker}\n`);
      const h = await host('c'.repeat(64), dir, 'internal');
      const e = await failure(h.get('app/db'));
      expect(e.kind).toBe('config');
      expect(e.message).toContain('does not match its pin');
      expect(existsSync(marker)).toBe(false);
    });

    test('a crash, garbage and a hang give crashed, invalid_response and timeout; later calls succeed', async () => {
      const dir = pluginDir();
      const h = await host(install(dir, 'scripted', SCRIPTED), dir, 'scripted');
      expect(text((await h.get('ok')).value.expose())).toBe('plugin-secret-ok-5517');
      expect((await failure(h.get('crash'))).kind).toBe('crashed');
      expect(text((await h.get('ok')).value.expose())).toBe('plugin-secret-ok-5517');
      expect((await failure(h.get('garbage'))).kind).toBe('invalid_response');
      expect(text((await h.get('ok')).value.expose())).toBe('plugin-secret-ok-5517');
      expect((await failure(h.get('hang'))).kind).toBe('timeout');
      expect(text((await h.get('ok')).value.expose())).toBe('plugin-secret-ok-5517');
      expect((await failure(h.get('huge'))).kind).toBe('too_large');
      // None of that took the provider itself down: the plugin failed, the provider answered.
      expect(h.status().restarts).toBe(0);
    });

    test('closing the provider ends the plugin', async () => {
      const dir = pluginDir();
      const h = await host(install(dir, 'scripted', SCRIPTED), dir, 'scripted');
      const pid = Number(text((await h.get('pid')).value.expose()));
      expect(alive(pid)).toBe(true);
      await h.close();
      expect(await until(() => !alive(pid))).toBe(true);
    });
  });
}

test('a provider process killed outright takes its plugin with it (the plugin reads end of input)', async () => {
  const dir = pluginDir();
  const sha = install(dir, 'scripted', SCRIPTED);
  const cfg = await parseConfig(`providers:\n  internal:\n    type: plugin\n    plugin: scripted\n    sha256: "${sha}"\n    plugin_dir: ${dir}\n`, 'dso.yaml');
  const h = new ProviderHost({ settings: cfg.providers.get('internal')!, env: {}, maxBytes: 1024, backoff: { initialMs: 50, maxMs: 200 } });
  hosts.push(h);
  const pid = Number(text((await h.get('pid')).value.expose()));
  process.kill(h.status().pid!, 'SIGKILL');
  expect(await until(() => !alive(pid))).toBe(true);
  // Once the host has seen its provider process die, it starts a new one, with a new plugin.
  expect(await until(() => h.status().state === 'backoff')).toBe(true);
  expect(text((await h.get('ok')).value.expose())).toBe('plugin-secret-ok-5517');
  expect(h.status().restarts).toBe(1);
});

describe('reading answers', () => {
  const decoded = (line: string, max = 1024) => {
    const r = extractValue(enc(line), max);
    return r.kind === 'value' ? { value: text(r.value), rest: text(r.rest) } : r;
  };

  test('the value is cut out of the top-level object, wherever it is, and decoded as bytes', () => {
    expect(decoded('{"id":1,"type":"value","value_base64":"c2VjcmV0"}')).toEqual({ value: 'secret', rest: '{"id":1,"type":"value","value_base64":""}' });
    expect(decoded('{"meta":{"value_base64":"bm90IHRoaXM="},"s":"\\"}{[","value_base64" : "c2VjcmV0","id":2}')).toEqual({
      value: 'secret',
      rest: '{"meta":{"value_base64":"bm90IHRoaXM="},"s":"\\"}{[","value_base64" : "","id":2}',
    });
    expect(decoded('{"id":1,"type":"value","value_base64":""}')).toEqual({ value: '', rest: '{"id":1,"type":"value","value_base64":""}' });
    expect(decoded('{"id":1,"type":"names","names":["value_base64"]}')).toEqual({ kind: 'none' });
  });

  test('anything but standard padded base64 is refused; size is known before decoding', () => {
    for (const bad of ['c2VjcmV', 'c2Vj=mV0', 'c2VjcmV0===', 'c2Vj\\u0041mV0', 'c2Vj cmV0', 'c2VjcmV0_-']) {
      expect([bad, extractValue(enc(`{"value_base64":"${bad}"}`), 1024).kind]).toEqual([bad, 'invalid']);
    }
    expect(extractValue(enc('not json'), 1024).kind).toBe('invalid');
    expect(extractValue(enc('{"value_base64":"c2VjcmV0"'), 1024).kind).toBe('invalid');
    expect(extractValue(enc('{"value_base64":"c2VjcmV0"}'), 5)).toEqual({ kind: 'too_large', size: 6 });
  });

  test('lines are split across chunks; an oversized line is skipped, keeping only its head', () => {
    const lines: string[] = [];
    const heads: string[] = [];
    const r = new LineReader(16, { line: (b) => void lines.push(text(b)), oversized: (h) => void heads.push(text(h)) });
    const chunk = enc('{"a":1}\n{"id":7,"value_base64":"');
    r.push(chunk);
    expect([...chunk].every((b) => b === 0)).toBe(true);
    r.push(enc('AAAAAAAAAAAAAAAAAAAAAAAA'));
    r.push(enc('AAAA"}\n{"b"'));
    r.push(enc(':2}\n'));
    expect(lines).toEqual(['{"a":1}', '{"b":2}']);
    expect(heads).toEqual(['{"id":7,"value_base64":"']);
    expect(idFromHead(enc(heads[0]!))).toBe(7);
    expect(idFromHead(enc('{"type":"value","value_base64":"AAAA'))).toBeUndefined();
    // A line that outgrows the limit after part of it was held keeps its start from the buffer.
    r.push(enc('{"id":9,'));
    r.push(enc('"value_base64":"AAAAAAAA"}\n{"c":3}\n'));
    expect(heads[1]).toBe('{"id":9,"value_base64":"AAAAAAAA"}');
    expect(lines).toEqual(['{"a":1}', '{"b":2}', '{"c":3}']);
  });

  test('DSO writes one compact line per message, keys in the documented order', () => {
    expect(helloLine('internal', { dir: '/srv/s' })).toBe('{"type":"hello","protocol":"dso-provider/1","name":"internal","settings":{"dir":"/srv/s"}}\n');
    expect(getLine(3, 'app/db', 1024)).toBe('{"type":"get","id":3,"path":"app/db","max_bytes":1024}\n');
    expect(getLine(4, 'app/db', 1024, '2')).toBe('{"type":"get","id":4,"path":"app/db","max_bytes":1024,"version":"2"}\n');
    expect(listLine(5, 'app/')).toBe('{"type":"list","id":5,"prefix":"app/"}\n');
  });
});

test('no value reached a log line', () => {
  expect(logs.length).toBeGreaterThan(0);
  for (const value of VALUES) expect(logs.join('\n')).not.toContain(value);
});
