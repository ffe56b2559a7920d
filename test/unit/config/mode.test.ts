// Mode detection order: --mode, DSO_MODE/DSO_FORCE_MODE, /etc/dso/dso.yaml, ./dso.yaml, the
// local vault, else local with guidance; with the conflict warnings.
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

test('without a system config: ./dso.yaml, then the vault, each named as the reason; with neither, guidance', () => {
  const vault = join(dir, 'vault.enc');
  const files = { systemConfig: join(dir, 'absent.yaml'), localConfig: local, vaultPath: vault };
  writeFileSync(local, '');
  writeFileSync(vault, '');
  expect(detectMode({}, files)).toMatchObject({ mode: 'local', reason: `no ${files.systemConfig}; ${local} configures providers run by this CLI` });
  expect(detectMode({}, files).guidance).toBeUndefined();
  rmSync(local);
  expect(detectMode({}, files)).toMatchObject({ mode: 'local', reason: `no ${files.systemConfig}; the local vault ${vault} exists` });
  rmSync(vault);
  const none = detectMode({}, files);
  expect(none.mode).toBe('local');
  expect(none.guidance).toContain('docker dso init');
  expect(none.guidance).toContain('bootstrap agent');
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
