// Hands a model to Compose without a file on disk: on Linux an anonymous RAM file (memfd) passed
// as fd 3 and read by Compose as /dev/fd/3, which keeps stdin free for `run` and `exec`;
// elsewhere Compose's stdin.
import { writeSync, closeSync } from 'node:fs';

export interface ModelChannel {
  /** The value for Compose's -f. */
  path: string;
  /** The child's stdio: stdin, stdout, stderr and, for a memfd, fd 3. */
  stdio: Array<'inherit' | 'pipe' | number>;
  /** Bytes to write to the child's stdin, when the model travels that way. */
  viaStdin?: Uint8Array;
  /** Overwrites and releases the RAM file. */
  close(): void;
}

let memfdCreate: ((name: Uint8Array, flags: number) => number) | null | undefined;

function loadMemfd(): typeof memfdCreate {
  if (memfdCreate !== undefined) return memfdCreate;
  memfdCreate = null;
  if (process.platform !== 'linux') return memfdCreate;
  try {
    const { dlopen, FFIType } = require('bun:ffi') as typeof import('bun:ffi');
    const lib = dlopen('libc.so.6', { memfd_create: { args: [FFIType.ptr, FFIType.u32], returns: FFIType.i32 } });
    memfdCreate = (name, flags) => lib.symbols.memfd_create(name, flags) as number;
  } catch {
    memfdCreate = null; // musl or an odd libc: fall back to stdin
  }
  return memfdCreate;
}

const MFD_CLOEXEC = 1;

export function openModelChannel(model: Uint8Array): ModelChannel {
  const create = loadMemfd();
  const fd = create ? create(new TextEncoder().encode('dso-compose-model\0'), MFD_CLOEXEC) : -1;
  if (fd < 0) {
    return { path: '-', stdio: ['pipe', 'inherit', 'inherit'], viaStdin: model, close() {} };
  }
  let written = 0;
  while (written < model.length) written += writeSync(fd, model, written, model.length - written, written);
  return {
    path: '/dev/fd/3',
    stdio: ['inherit', 'inherit', 'inherit', fd],
    close() {
      try {
        writeSync(fd, new Uint8Array(model.length), 0, model.length, 0);
      } finally {
        closeSync(fd);
      }
    },
  };
}
