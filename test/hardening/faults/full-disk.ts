// A small tmpfs mounted for a test, to fill up: the disk-full faults of the vault and of the
// agent's rotation state. Needs root (CI runs the engine as root anyway).
import { mkdirSync, readdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface SmallDisk {
  dir: string;
  /** Fills every free block, leaving `leaveBytes` (rounded to pages) free. */
  fill(leaveBytes?: number): void;
  /** Uses every free inode (files can then not even be created). */
  fillInodes(): void;
  /** Frees what fill and fillInodes took. */
  free(): void;
  freeBytes(): number;
  unmount(): void;
}

export function mountSmallDisk(dir: string, options: { size: string; inodes?: number }): SmallDisk {
  mkdirSync(dir, { recursive: true });
  const opts = `size=${options.size},mode=0700${options.inodes ? `,nr_inodes=${options.inodes}` : ''}`;
  const r = Bun.spawnSync(['mount', '-t', 'tmpfs', '-o', opts, 'dso-full-disk', dir], { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
  if (r.exitCode !== 0) throw new Error(`mount tmpfs on ${dir} failed (is this root?): ${r.stderr.toString()}`);
  const filler = join(dir, '.filler');
  const freeBytes = () => {
    const s = statfsSync(dir);
    return Number(s.bavail) * Number(s.bsize);
  };
  return {
    dir,
    freeBytes,
    fill(leaveBytes = 0) {
      mkdirSync(filler, { recursive: true });
      const chunk = new Uint8Array(64 * 1024);
      for (let i = 0; ; i++) {
        const want = freeBytes() - leaveBytes;
        if (want <= 0) return;
        try {
          writeFileSync(join(filler, `b${Date.now()}-${i}`), want >= chunk.length ? chunk : chunk.subarray(0, want));
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOSPC') return;
          throw e;
        }
      }
    },
    fillInodes() {
      mkdirSync(filler, { recursive: true });
      for (let i = 0; ; i++) {
        try {
          writeFileSync(join(filler, `i${i}`), '');
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOSPC') return;
          throw e;
        }
      }
    },
    free() {
      rmSync(filler, { recursive: true, force: true });
    },
    unmount() {
      Bun.spawnSync(['umount', '-l', dir], { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
      if (readdirSync(dir).length === 0) rmSync(dir, { recursive: true, force: true });
    },
  };
}
