import { afterEach, describe, expect, test } from 'bun:test';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { withLock, type LockStrategy } from '../../../src/vault/file-lock.ts';
import { childEnv, expectCode, FIXTURES, scratchDir } from './fixtures/helpers.ts';

let scratch: ReturnType<typeof scratchDir>;
afterEach(() => scratch.cleanup());

/** Starts fixtures/hold-lock.ts and resolves once it reports that it holds the lock. */
async function holdInChild(lockPath: string, strategy: LockStrategy) {
  const child = Bun.spawn([process.execPath, join(FIXTURES, 'hold-lock.ts'), lockPath, strategy], {
    env: childEnv(),
    stdout: 'pipe',
    stderr: 'inherit',
  });
  const reader = child.stdout.getReader();
  const { value } = await reader.read();
  expect(new TextDecoder().decode(value)).toContain('held');
  reader.releaseLock();
  return child;
}

for (const strategy of ['flock', 'pidfile'] as const) {
  describe(`withLock (${strategy})`, () => {
    test('serialises holders in one process and returns what fn returns', async () => {
      scratch = scratchDir('lock');
      const lockPath = join(scratch.dir, 'vault.enc.lock');
      const events: string[] = [];
      const holder = async (id: string) =>
        withLock(
          lockPath,
          async () => {
            events.push(`in ${id}`);
            await Bun.sleep(20);
            events.push(`out ${id}`);
            return id;
          },
          { strategy },
        );
      expect(await Promise.all([holder('a'), holder('b'), holder('c')])).toEqual(['a', 'b', 'c']);
      for (let i = 0; i < events.length; i += 2) {
        expect(events[i]!.slice(3)).toBe(events[i + 1]!.slice(4)); // every "in x" is followed by "out x"
      }
    });

    test('releases the lock when fn throws', async () => {
      scratch = scratchDir('lock');
      const lockPath = join(scratch.dir, 'vault.enc.lock');
      await expect(withLock(lockPath, () => Promise.reject(new Error('boom')), { strategy })).rejects.toThrow('boom');
      expect(await withLock(lockPath, () => 'again', { strategy, timeoutMs: 100 })).toBe('again');
    });

    test('gives VAULT_LOCKED after the timeout while another holds it', async () => {
      scratch = scratchDir('lock');
      const lockPath = join(scratch.dir, 'vault.enc.lock');
      let release!: () => void;
      const held = withLock(lockPath, () => new Promise<void>((r) => (release = r)), { strategy });
      await Bun.sleep(10);
      const started = Date.now();
      const error = await expectCode(() => withLock(lockPath, () => 'never', { strategy, timeoutMs: 150 }), 'VAULT_LOCKED');
      expect(Date.now() - started).toBeGreaterThanOrEqual(140);
      expect(error.message).toContain(lockPath);
      expect(error.hint).toBeDefined();
      release();
      await held;
    });

    test('a holder that is killed does not leave a stale lock', async () => {
      scratch = scratchDir('lock');
      const lockPath = join(scratch.dir, 'vault.enc.lock');
      const child = await holdInChild(lockPath, strategy);
      await expectCode(() => withLock(lockPath, () => 'x', { strategy, timeoutMs: 100 }), 'VAULT_LOCKED');
      child.kill('SIGKILL');
      await child.exited;
      expect(await withLock(lockPath, () => 'taken', { strategy, timeoutMs: 2_000 })).toBe('taken');
    });

    test('the lock file is private (0600)', async () => {
      scratch = scratchDir('lock');
      const lockPath = join(scratch.dir, 'vault.enc.lock');
      await withLock(lockPath, () => expect(statSync(lockPath).mode & 0o777).toBe(0o600), { strategy });
    });
  });
}

describe('withLock pid file details', () => {
  test('the lock file holds our pid while held and is removed after', async () => {
    scratch = scratchDir('lock');
    const lockPath = join(scratch.dir, 'vault.enc.lock');
    await withLock(lockPath, () => expect(readFileSync(lockPath, 'utf8')).toStartWith(`${process.pid} ${hostname()} `), {
      strategy: 'pidfile',
    });
    expect(existsSync(lockPath)).toBe(false);
  });

  test('a pid file naming a live process on this host is respected', async () => {
    scratch = scratchDir('lock');
    const lockPath = join(scratch.dir, 'vault.enc.lock');
    writeFileSync(lockPath, `1 ${hostname()} someone-else\n`); // pid 1 is always alive
    await expectCode(() => withLock(lockPath, () => 'x', { strategy: 'pidfile', timeoutMs: 100 }), 'VAULT_LOCKED');
  });

  test('a pid file with our own pid that we do not hold (pid reuse in a container) is stale', async () => {
    scratch = scratchDir('lock');
    const lockPath = join(scratch.dir, 'vault.enc.lock');
    writeFileSync(lockPath, `${process.pid} ${hostname()} left-by-a-crashed-process\n`);
    expect(await withLock(lockPath, () => 'taken', { strategy: 'pidfile', timeoutMs: 500 })).toBe('taken');
  });

  test('an empty pid file is respected while fresh', async () => {
    scratch = scratchDir('lock');
    const lockPath = join(scratch.dir, 'vault.enc.lock');
    writeFileSync(lockPath, '');
    await expectCode(() => withLock(lockPath, () => 'x', { strategy: 'pidfile', timeoutMs: 100 }), 'VAULT_LOCKED');
  });
});

describe('withLock flock details', () => {
  test('the lock file stays, empty, after release (deleting it would let two holders lock two inodes)', async () => {
    scratch = scratchDir('lock');
    const lockPath = join(scratch.dir, 'vault.enc.lock');
    await withLock(lockPath, () => undefined, { strategy: 'flock' });
    expect(readFileSync(lockPath, 'utf8')).toBe('');
  });

  test('auto picks flock on this platform: a flock holder in another process blocks it', async () => {
    scratch = scratchDir('lock');
    const lockPath = join(scratch.dir, 'vault.enc.lock');
    const child = await holdInChild(lockPath, 'flock');
    try {
      await expectCode(() => withLock(lockPath, () => 'x', { timeoutMs: 100 }), 'VAULT_LOCKED');
    } finally {
      child.kill('SIGKILL');
      await child.exited;
    }
  });
});
