// An exclusive, cross-process lock on a lock file (for the vault: `vault.enc.lock` next to `vault.enc`).
//
// Primary mechanism: flock(2) through bun:ffi with LOCK_EX|LOCK_NB, retried with backoff until a timeout.
// The kernel drops a flock when its holder dies, so a crash never leaves a stale lock; the lock file itself
// stays (empty) because deleting a flock'ed file lets two processes lock two different inodes.
// Fallback, when libc or flock cannot be used: create the lock file with O_EXCL holding our pid, and break
// it only when that pid is no longer alive on this host. All processes sharing a lock file must use the same
// mechanism; the fallback is chosen by platform, so on one host they do.

import { closeSync, constants, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { DsoError, fsReason } from '../errors.ts';

export type LockStrategy = 'auto' | 'flock' | 'pidfile';

export interface LockOptions {
  /** How long to keep retrying before VAULT_LOCKED. Default 30 s. */
  timeoutMs?: number;
  /** 'auto' uses flock when it can be loaded, else the pid file. The others exist for tests. */
  strategy?: LockStrategy;
}

export const DEFAULT_LOCK_TIMEOUT_MS = 30_000;

/**
 * Runs `fn` while holding the lock on `lockPath`, releasing it however `fn` ends. Not re-entrant: calling
 * withLock on the same path from inside `fn` waits for itself and times out.
 */
export async function withLock<T>(lockPath: string, fn: () => Promise<T> | T, opts: LockOptions = {}): Promise<T> {
  const release = await acquire(lockPath, opts);
  try {
    return await fn();
  } finally {
    release();
  }
}

type Release = () => void;
type Attempt = { kind: 'held'; release: Release } | { kind: 'busy' } | { kind: 'unsupported' };

async function acquire(lockPath: string, opts: LockOptions): Promise<Release> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  const strategy = opts.strategy ?? 'auto';
  const deadline = Date.now() + timeoutMs;
  let flock = strategy === 'pidfile' ? undefined : loadFlock();
  if (strategy === 'flock' && flock === undefined) throw new Error('flock(2) is not available through bun:ffi here');

  let delay = 5;
  for (;;) {
    let attempt: Attempt = flock === undefined ? tryPidFile(lockPath) : tryFlock(lockPath, flock);
    if (attempt.kind === 'unsupported' && strategy === 'auto') {
      // The filesystem refuses flock (some network mounts do): use the pid file for this lock.
      flock = undefined;
      attempt = tryPidFile(lockPath);
    }
    if (attempt.kind === 'unsupported') {
      throw new DsoError('VAULT_IO', `cannot lock ${lockPath}: the filesystem does not support flock`, {
        hint: 'keep the vault on a local filesystem',
      });
    }
    if (attempt.kind === 'held') return attempt.release;

    const left = deadline - Date.now();
    if (left <= 0) {
      throw new DsoError('VAULT_LOCKED', `another DSO process holds the vault lock ${lockPath}`, {
        hint:
          'wait for it to finish and retry (the lock is held only while a change is written); ' +
          'if this persists, look for a hung `docker dso` process',
      });
    }
    // Jittered exponential backoff: waiters started together do not retry in lockstep.
    await Bun.sleep(Math.min(left, delay * (0.5 + Math.random())));
    delay = Math.min(delay * 2, 100);
  }
}

// ---- flock(2) through bun:ffi ----

const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;

interface Flock {
  flock(fd: number, op: number): number;
  /** errno after the last failed call, or undefined when it cannot be read. */
  errno(): number | undefined;
  /** errno values meaning "this filesystem does not do flock". */
  unsupported: ReadonlySet<number>;
}

let flockCache: Flock | null | undefined;

/** Loads libc's flock once per process; null is cached too, so a missing libc is probed only once. */
function loadFlock(): Flock | undefined {
  if (flockCache !== undefined) return flockCache ?? undefined;
  flockCache = null;
  try {
    // Required lazily: a runtime without bun:ffi (or a build that strips it) must still load this module.
    const ffi = require('bun:ffi') as typeof import('bun:ffi');
    const darwin = process.platform === 'darwin';
    const candidates = darwin
      ? ['libc.dylib', '/usr/lib/libSystem.B.dylib']
      : ['libc.so.6', 'libc.so', `libc.musl-${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}.so.1`];
    const errnoSymbol = darwin ? '__error' : '__errno_location';
    for (const name of candidates) {
      try {
        const lib = ffi.dlopen(name, {
          flock: { args: [ffi.FFIType.i32, ffi.FFIType.i32], returns: ffi.FFIType.i32 },
          [errnoSymbol]: { args: [], returns: ffi.FFIType.ptr },
        });
        const errnoLocation = lib.symbols[errnoSymbol] as () => number | null;
        flockCache = {
          flock: (fd, op) => lib.symbols.flock(fd, op) as number,
          errno: () => {
            const at = errnoLocation();
            return at ? ffi.read.i32(at as import('bun:ffi').Pointer, 0) : undefined;
          },
          // EINVAL, ENOLCK, EOPNOTSUPP
          unsupported: new Set(darwin ? [22, 77, 102] : [22, 37, 95]),
        };
        return flockCache;
      } catch {
        // try the next name
      }
    }
  } catch {
    // no bun:ffi: fall back to the pid file
  }
  return undefined;
}

function tryFlock(lockPath: string, flock: Flock): Attempt {
  const fd = openLockFile(lockPath, constants.O_RDWR | constants.O_CREAT);
  if (flock.flock(fd, LOCK_EX | LOCK_NB) === 0) {
    return {
      kind: 'held',
      release: () => {
        flock.flock(fd, LOCK_UN);
        closeSync(fd);
      },
    };
  }
  const errno = flock.errno();
  closeSync(fd);
  // Anything but "not supported" (EWOULDBLOCK, EINTR) means: someone holds it, try again.
  return errno !== undefined && flock.unsupported.has(errno) ? { kind: 'unsupported' } : { kind: 'busy' };
}

// ---- O_EXCL pid file fallback ----

/** An empty or unreadable pid file older than this was left by a crash between create and write. */
const UNWRITTEN_PIDFILE_GRACE_MS = 10_000;
/** Pid files this process holds now. Containers reuse low pids, so "it has my pid" alone does not mean "mine". */
const heldTokens = new Set<string>();

function tryPidFile(lockPath: string): Attempt {
  const token = `${process.pid} ${hostname()} ${crypto.randomUUID()}\n`;
  let fd: number;
  try {
    fd = openLockFile(lockPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    if (!isStalePidFile(lockPath)) return { kind: 'busy' };
    // A small race remains: two waiters can both judge the same file stale and the slower one may remove
    // the faster one's fresh lock. flock has no such gap, which is why it is the primary mechanism.
    try {
      unlinkSync(lockPath);
    } catch {
      // someone else removed it first
    }
    return { kind: 'busy' };
  }
  try {
    writeSync(fd, token);
  } finally {
    closeSync(fd);
  }
  heldTokens.add(token);
  return {
    kind: 'held',
    release: () => {
      heldTokens.delete(token);
      // Remove only our own lock: if it was broken and retaken, the file is someone else's now.
      if (readText(lockPath) === token) unlinkSync(lockPath);
    },
  };
}

function isStalePidFile(lockPath: string): boolean {
  const content = readText(lockPath);
  if (content === undefined) return false; // gone already: the next attempt will take it
  const [pidText, host] = content.trim().split(' ');
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0 || host === undefined) {
    try {
      return Date.now() - statSync(lockPath).mtimeMs > UNWRITTEN_PIDFILE_GRACE_MS;
    } catch {
      return false;
    }
  }
  // A pid from another host (a shared filesystem) cannot be checked: treat it as alive.
  if (host !== hostname()) return false;
  if (pid === process.pid) return !heldTokens.has(content);
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

function openLockFile(lockPath: string, flags: number): number {
  try {
    // O_NOFOLLOW: a symlink planted at the lock path must not make us create or truncate another file.
    return openSync(lockPath, flags | constants.O_NOFOLLOW, 0o600);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw error;
    throw new DsoError('VAULT_IO', `cannot open the lock file ${lockPath}: ${fsReason(error)}`, {
      hint: 'check that the vault directory exists and that you own it',
      cause: error,
    });
  }
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
