// Atomic replacement of the installed binary and of the `dso-agent` link, and creation of a file
// that must never replace an existing one (dso.yaml): each appears whole or not at all (a temp
// file or link in the same directory, then rename or link), so a failed setup never leaves a cut
// binary that systemd would start; and directories with an exact mode, whatever the umask.
// Replacing files with content: src/vault/atomic-write.ts.
import { chmodSync, closeSync, constants, copyFileSync, fchmodSync, fsyncSync, linkSync, mkdirSync, openSync, readSync, renameSync, rmSync, statSync, symlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * `mkdir -p` with `mode` exactly on every directory it creates; existing ones are left as they
 * are. mkdir's mode passes through the umask: under root's umask 077 (a common hardening) a
 * directory meant to be 0755 becomes 0700, and users can no longer reach what it holds.
 */
export function makeDirectory(path: string, mode: number): void {
  const first = mkdirSync(path, { recursive: true, mode });
  if (first === undefined) return;
  for (let dir = path; ; dir = dirname(dir)) {
    chmodSync(dir, mode);
    if (dir === first || dir === dirname(dir)) return;
  }
}

function tempBeside(path: string): string {
  const suffix = Buffer.from(crypto.getRandomValues(new Uint8Array(6))).toString('hex');
  return join(dirname(path), `.${basename(path)}.${process.pid}.${suffix}.tmp`);
}

function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } catch {
    // Some filesystems cannot fsync a directory; the rename has happened.
  } finally {
    closeSync(fd);
  }
}

/** Copies `from` to `to` with `mode`, replacing `to` in one rename. */
export function copyFileAtomic(from: string, to: string, mode: number): void {
  const temp = tempBeside(to);
  try {
    copyFileSync(from, temp, constants.COPYFILE_EXCL);
    const fd = openSync(temp, 'r+');
    try {
      // fchmod through the open descriptor: the umask does not apply.
      fchmodSync(fd, mode);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, to);
  } catch (e) {
    rmSync(temp, { force: true });
    throw e;
  }
  syncDir(dirname(to));
}

/** Points the symlink `path` at `target`, replacing whatever `path` was in one rename. */
export function symlinkAtomic(target: string, path: string): void {
  const temp = tempBeside(path);
  try {
    symlinkSync(target, temp);
    renameSync(temp, path);
  } catch (e) {
    rmSync(temp, { force: true });
    throw e;
  }
  syncDir(dirname(path));
}

/** Whether two files hold the same bytes; stops at the first difference. */
export function sameContent(a: string, b: string): boolean {
  let sa, sb;
  try {
    sa = statSync(a);
    sb = statSync(b);
  } catch {
    return false;
  }
  if (sa.size !== sb.size) return false;
  if (sa.dev === sb.dev && sa.ino === sb.ino) return true;
  const fa = openSync(a, 'r');
  const fb = openSync(b, 'r');
  const ba = Buffer.alloc(1 << 20);
  const bb = Buffer.alloc(1 << 20);
  try {
    for (;;) {
      const na = readSync(fa, ba, 0, ba.length, null);
      const nb = readSync(fb, bb, 0, bb.length, null);
      if (na !== nb) return false;
      if (na === 0) return true;
      if (ba.compare(bb, 0, nb, 0, na) !== 0) return false;
    }
  } finally {
    closeSync(fa);
    closeSync(fb);
  }
}

/**
 * Creates `path` with `text` unless something is already there (then returns false and changes
 * nothing): the temp file is linked into place, which fails rather than replace.
 */
export function createFileExclusive(path: string, text: string, mode: number): boolean {
  const temp = tempBeside(path);
  const fd = openSync(temp, 'wx', mode);
  try {
    try {
      fchmodSync(fd, mode);
      const bytes = Buffer.from(text);
      let done = 0;
      while (done < bytes.length) done += writeSync(fd, bytes, done);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(temp, path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    }
  } finally {
    rmSync(temp, { force: true });
  }
  syncDir(dirname(path));
  return true;
}
