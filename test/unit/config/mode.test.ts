// Mode detection order: --mode, DSO_MODE/DSO_FORCE_MODE, /etc/dso/dso.yaml, else local; with
// the conflict warnings.
import { afterAll, expect, test } from 'bun:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { detectMode } from '../../../src/config/mode.ts';

const dir = mkdtempSync(join(tmpdir(), 'dso-mode-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const system = join(dir, 'etc-dso.yaml');
const local = join(dir, 'dso.yaml');

test('the order: flag, then DSO_MODE, then DSO_FORCE_MODE, then the system config, else local', () => {
  writeFileSync(system, '');
  const files = { systemConfig: system, localConfig: local };
  expect(detectMode({ DSO_MODE: 'cloud' }, { ...files, flag: 'local' })).toMatchObject({ mode: 'local', reason: 'chosen with --mode' });
  expect(detectMode({ DSO_MODE: 'local' }, files)).toMatchObject({ mode: 'local', reason: 'chosen with DSO_MODE' });
  expect(detectMode({ DSO_FORCE_MODE: 'local' }, files)).toMatchObject({ mode: 'local', reason: 'chosen with DSO_FORCE_MODE' });
  expect(detectMode({}, files)).toMatchObject({ mode: 'cloud', reason: `${system} exists`, warnings: [] });
  rmSync(system);
  expect(detectMode({}, files)).toMatchObject({ mode: 'local', warnings: [] });
});

test('conflicts are warned about', () => {
  writeFileSync(system, '');
  writeFileSync(local, '');
  expect(detectMode({}, { systemConfig: system, localConfig: local }).warnings[0]).toContain('is ignored');
  expect(detectMode({ DSO_MODE: 'local', DSO_FORCE_MODE: 'cloud' }, { systemConfig: system }).warnings[0]).toContain('disagree');
});

test('a bad mode is a usage error', () => {
  expect(() => detectMode({ DSO_MODE: 'hybrid' })).toThrow('DSO_MODE must be local or cloud');
  expect(() => detectMode({}, { flag: 'x' })).toThrow('--mode must be local or cloud');
});
