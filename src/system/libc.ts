// The C library of this process, opened through bun:ffi for the few system calls Bun does not
// offer (prctl, setgroups, setresuid...). The names cover glibc, musl (the *-musl builds) and
// macOS; without bun:ffi, or with a libc under another name, the caller learns why not.
import type { ConvertFns, Symbols } from 'bun:ffi';

/** The names under which libc can be opened here, in the order they are tried. */
export function libcNames(): string[] {
  if (process.platform === 'darwin') return ['libc.dylib', '/usr/lib/libSystem.B.dylib'];
  return ['libc.so.6', `libc.musl-${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}.so.1`, 'libc.so'];
}

export interface Libc<S extends Symbols> {
  symbols: ConvertFns<S>;
  /** errno after the last failed call (0 when it cannot be read). */
  errno(): number;
}

/** libc with `symbols` bound, or why it could not be opened. */
export function openLibc<S extends Symbols>(symbols: S): Libc<S> | { why: string } {
  let ffi: typeof import('bun:ffi');
  try {
    // Required lazily: a runtime without bun:ffi must still load this module.
    ffi = require('bun:ffi') as typeof import('bun:ffi');
  } catch {
    return { why: 'bun:ffi is not available' };
  }
  const errnoSymbol = process.platform === 'darwin' ? '__error' : '__errno_location';
  const failures: string[] = [];
  for (const name of libcNames()) {
    try {
      const lib = ffi.dlopen(name, symbols);
      const errnoLib = ffi.dlopen(name, { [errnoSymbol]: { args: [], returns: ffi.FFIType.ptr } });
      const location = errnoLib.symbols[errnoSymbol] as () => number | null;
      return {
        symbols: lib.symbols,
        errno: () => {
          const at = location();
          return at ? ffi.read.i32(at as import('bun:ffi').Pointer, 0) : 0;
        },
      };
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      // Without the JIT (MemoryDenyWriteExecute=yes), bun:ffi cannot bind anything: say only that.
      if (/requires the JIT/.test(why)) return { why: `bun:ffi is not available (${why})` };
      failures.push(`${name}: ${why}`);
    }
  }
  return { why: `libc could not be opened (${failures.join('; ')})` };
}
