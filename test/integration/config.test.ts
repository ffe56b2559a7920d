// `dso config validate|show|edit` with the compiled binary: exit codes and JSON for scripts,
// credentials masked, and an edit that only ever replaces the file with a valid one.
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dso, sandbox, type Sandbox } from './support.ts';

let sb: Sandbox;
const GOOD = 'providers:\n  home:\n    type: local\n    passphrase_env: DSO_PASSPHRASE\nagent:\n  cache:\n    ttl: 10m\n';
const BAD = 'providers:\n  home:\n    type: local\n    isolation: thread\n    passphrase_env: DSO_PASSPHRASE\n';

beforeAll(() => {
  sb = sandbox('config');
});
afterAll(() => sb.cleanup());

test('validate: exit 0 and a summary; exit 2 with every problem, as JSON for scripts', async () => {
  writeFileSync(join(sb.dir, 'good.yaml'), GOOD);
  writeFileSync(join(sb.dir, 'bad.yaml'), BAD);
  const ok = await dso(sb, ['config', 'validate', '--file', 'good.yaml']);
  expect(ok.code).toBe(0);
  expect(ok.stdout).toContain('is valid: 1 provider (home: local)');
  const bad = await dso(sb, ['config', 'validate', '--file', 'bad.yaml', '--json']);
  expect(bad.code).toBe(2);
  const report = JSON.parse(bad.stdout);
  expect(report).toMatchObject({ valid: false, problems: [{ path: 'providers.home.isolation', line: 4, column: 5 }] });
  const missing = await dso(sb, ['config', 'validate', '--file', 'nope.yaml']);
  expect(missing.code).toBe(3);
});

test('validate finds ./dso.yaml, or $DSO_CONFIG', async () => {
  writeFileSync(join(sb.dir, 'dso.yaml'), GOOD);
  expect((await dso(sb, ['config', 'validate'])).stdout).toContain(join(sb.dir, 'dso.yaml'));
  const viaEnv = await dso(sb, ['config', 'validate'], { env: { DSO_CONFIG: join(sb.dir, 'bad.yaml') } });
  expect(viaEnv.code).toBe(2);
});

test('show: defaults filled in, and a credential placed inline is masked', async () => {
  writeFileSync(join(sb.dir, 'good.yaml'), GOOD);
  const r = await dso(sb, ['config', 'show', '--file', 'good.yaml', '--json']);
  expect(r.code).toBe(0);
  const shown = JSON.parse(r.stdout);
  expect(shown.agent.cache.ttl).toBe(600_000);
  expect(shown.agent.socket.mode).toBe('0660');
  expect(shown.providers.home).toMatchObject({ type: 'local', isolation: 'worker', passphrase_env: 'DSO_PASSPHRASE', user: 'as DSO' });
});

test('edit: an invalid result leaves the file as it was; a valid one replaces it, keeping its mode', async () => {
  const path = join(sb.dir, 'edited.yaml');
  writeFileSync(path, GOOD);
  chmodSync(path, 0o640);
  const editor = join(sb.dir, 'editor.sh');
  // A scripted "editor": overwrites the file it is given with the content of $NEW_CONTENT_FILE.
  writeFileSync(editor, '#!/bin/sh\ncat "$NEW_CONTENT_FILE" > "$1"\n');
  chmodSync(editor, 0o755);
  writeFileSync(join(sb.dir, 'next.yaml'), BAD);
  const refused = await dso(sb, ['config', 'edit', '--file', path], { env: { EDITOR: editor, NEW_CONTENT_FILE: join(sb.dir, 'next.yaml') } });
  expect(refused.code).toBe(2);
  expect(refused.stderr).toContain('providers.home.isolation');
  expect(refused.stderr).toContain('was not changed');
  expect(readFileSync(path, 'utf8')).toBe(GOOD);

  const better = GOOD.replace('10m', '20m');
  writeFileSync(join(sb.dir, 'next.yaml'), better);
  const accepted = await dso(sb, ['config', 'edit', '--file', path], { env: { EDITOR: editor, NEW_CONTENT_FILE: join(sb.dir, 'next.yaml') } });
  expect(accepted.code, accepted.stderr).toBe(0);
  expect(readFileSync(path, 'utf8')).toBe(better);
  expect(statSync(path).mode & 0o777).toBe(0o640);
});

test('edit creates a missing file from a template the editor can keep', async () => {
  const path = join(sb.dir, 'new', 'dso.yaml');
  require('node:fs').mkdirSync(join(sb.dir, 'new'));
  const r = await dso(sb, ['config', 'edit', '--file', path], { env: { EDITOR: 'true' } });
  expect(r.code, r.stderr).toBe(0);
  expect(readFileSync(path, 'utf8')).toContain('providers: {}');
});
