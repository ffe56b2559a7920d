// The local vault on a full disk, with the compiled binary: DSO_HOME is a small tmpfs filled to
// the last block (then to the last inode, then to a few blocks short of a new vault file). Every
// `secret set`, `secret rm` and `init` fails with a clear error naming the file and the cause,
// without the value; the vault stays byte for byte what it was, every earlier secret readable,
// no temporary file left; once space returns, writes work again.
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { canary, dso, sandbox, type Sandbox } from '../../integration/support.ts';
import { mountSmallDisk, type SmallDisk } from './full-disk.ts';

let sb: Sandbox;
let disk: SmallDisk;
const stored = new Map<string, string>();
const sha = () => createHash('sha256').update(readFileSync(join(disk.dir, 'vault.enc'))).digest('hex');
/** Files in DSO_HOME besides the filler: the vault and its lock file, nothing half-written. */
const leftovers = () => readdirSync(disk.dir).filter((f) => !['vault.enc', 'vault.enc.lock', '.filler', 'second'].includes(f));

beforeAll(async () => {
  sb = sandbox('disk-full-vault');
  disk = mountSmallDisk(join(sb.dir, 'home'), { size: '2m', inodes: 64 });
  sb.env.DSO_HOME = disk.dir;
  expect((await dso(sb, ['init'])).code).toBe(0);
  // Values of about 20 KiB: the vault spans several pages, so a nearly full disk can take part of a new one.
  for (let i = 0; i < 4; i++) {
    const value = `${canary(`full${i}`)}${'x'.repeat(20_000)}`;
    const r = await dso(sb, ['secret', 'set', `app/s${i}`], { input: value });
    expect(r.code, r.stderr).toBe(0);
    stored.set(`app/s${i}`, value);
  }
});

afterAll(() => {
  disk?.free();
  disk?.unmount();
  sb?.cleanup();
});

/** Byte for byte the file it was, nothing beside it, and readable: `all` reads every secret back (else one, the file being identical). */
async function expectVaultAsBefore(hash: string, all = false): Promise<void> {
  expect(sha()).toBe(hash);
  expect(leftovers()).toEqual([]);
  for (const [name, value] of all ? stored : [...stored].slice(0, 1)) {
    const r = await dso(sb, ['secret', 'get', name]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(value);
  }
}

for (const [how, fill] of [
  ['no block free', (d: SmallDisk) => d.fill()],
  ['a few blocks free, fewer than the new vault needs', (d: SmallDisk) => d.fill(16 * 1024)],
  ['no inode free', (d: SmallDisk) => d.fillInodes()],
] as const) {
  test(`${how}: set and rm fail clearly, the vault is exactly as before`, async () => {
    const hash = sha();
    fill(disk);
    try {
      const value = canary('never-stored');
      const set = await dso(sb, ['secret', 'set', 'app/new'], { input: `${value}${'y'.repeat(30_000)}` });
      expect(set.code).not.toBe(0);
      expect(set.stderr).toContain(`cannot write vault ${join(disk.dir, 'vault.enc')}: no space left on the device`);
      expect(set.stderr).toContain('the vault on disk is unchanged');
      expect(set.stderr).toContain('free disk space');
      expect(`${set.stdout}${set.stderr}`).not.toContain(value);
      const overwrite = await dso(sb, ['secret', 'set', 'app/s0'], { input: canary('overwrite') });
      expect(overwrite.code).not.toBe(0);
      const rm = await dso(sb, ['secret', 'rm', 'app/s1']);
      expect(rm.code).not.toBe(0);
      expect(rm.stderr).toContain('no space left on the device');
      await expectVaultAsBefore(hash);
      const list = await dso(sb, ['secret', 'list', '--json']);
      expect(list.code, list.stderr).toBe(0);
      expect((JSON.parse(list.stdout) as Array<{ name: string }>).map((s) => s.name).sort()).toEqual([...stored.keys()].sort());
    } finally {
      disk.free();
    }
  });
}

test('init on a full disk creates nothing; once space returns, writes work again', async () => {
  disk.fill();
  const other = { ...sb, env: { ...sb.env, DSO_HOME: join(disk.dir, 'second') } };
  const init = await dso(other, ['init']);
  expect(init.code).not.toBe(0);
  expect(init.stderr).toContain('no space left on the device');
  expect(readdirSync(join(disk.dir, 'second')).filter((f) => f !== 'vault.enc.lock')).toEqual([]);
  disk.free();
  const again = await dso(other, ['init']);
  expect(again.code, again.stderr).toBe(0);

  const value = canary('after-space');
  const set = await dso(sb, ['secret', 'set', 'app/new'], { input: value });
  expect(set.code, set.stderr).toBe(0);
  stored.set('app/new', value);
  await expectVaultAsBefore(sha(), true);
});
