import { afterEach, describe, expect, test } from 'bun:test';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../../src/vault/atomic-write.ts';
import { bytes, runUnderFileSizeLimit, scratchDir } from './fixtures/helpers.ts';

let scratch: ReturnType<typeof scratchDir>;
afterEach(() => scratch.cleanup());

describe('writeFileAtomic', () => {
  test('creates a file with mode 0600 by default, whatever the umask', async () => {
    scratch = scratchDir('atomic');
    const target = join(scratch.dir, 'state.bin');
    const oldUmask = process.umask(0);
    try {
      await writeFileAtomic(target, bytes('one'));
    } finally {
      process.umask(oldUmask);
    }
    expect(readFileSync(target, 'utf8')).toBe('one');
    expect(statSync(target).mode & 0o777).toBe(0o600);
    expect(readdirSync(scratch.dir)).toEqual(['state.bin']);
  });

  test('replaces an existing file and applies the requested mode', async () => {
    scratch = scratchDir('atomic');
    const target = join(scratch.dir, 'state.json');
    writeFileSync(target, 'old', { mode: 0o600 });
    await writeFileAtomic(target, bytes('new'), { mode: 0o640 });
    expect(readFileSync(target, 'utf8')).toBe('new');
    expect(statSync(target).mode & 0o777).toBe(0o640);
  });

  test('a failed rename removes the temp file and leaves the target as it was', async () => {
    scratch = scratchDir('atomic');
    const target = join(scratch.dir, 'is-a-directory');
    mkdirSync(target);
    writeFileSync(join(target, 'keep'), 'x');
    await expect(writeFileAtomic(target, bytes('data'))).rejects.toThrow();
    expect(readdirSync(scratch.dir)).toEqual(['is-a-directory']);
    expect(readdirSync(target)).toEqual(['keep']);
  });

  test('a write cut short by the file size limit fails and leaves the old file intact', async () => {
    scratch = scratchDir('atomic');
    const target = join(scratch.dir, 'state.bin');
    writeFileSync(target, 'old content', { mode: 0o600 });
    const result = await runUnderFileSizeLimit(['atomic', target, String(256 * 1024)]);
    expect(result).toEqual({ failed: true, code: 'EFBIG' });
    expect(readFileSync(target, 'utf8')).toBe('old content');
    expect(readdirSync(scratch.dir)).toEqual(['state.bin']);
  });
});
