// Replaces a file so that readers, and the disk after a crash, see either the old content or the new, never a mix.
//
// Protocol: create a temp file next to the target (O_EXCL, exact mode), write it fully, fsync it, rename it
// over the target, fsync the directory so the rename itself is durable. On any failure before the rename the
// temp file is removed and the target is untouched. Errors are the underlying fs errors: callers know which
// file they were writing and map them to their own error.

import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface AtomicWriteOptions {
  /** Mode of the new file, set exactly (the umask does not apply). Default 0600. */
  mode?: number;
}

export async function writeFileAtomic(path: string, data: Uint8Array, opts: AtomicWriteOptions = {}): Promise<void> {
  const mode = opts.mode ?? 0o600;
  const dir = dirname(path);
  // Same directory, so the rename never crosses a filesystem; dot-prefixed so directory listings skip it.
  const suffix = Buffer.from(crypto.getRandomValues(new Uint8Array(6))).toString('hex');
  const temp = join(dir, `.${basename(path)}.${process.pid}.${suffix}.tmp`);

  let handle: FileHandle | undefined = await open(temp, 'wx', mode);
  try {
    await handle.chmod(mode);
    await writeAll(handle, data);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temp, path);
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  await syncDirectory(dir);
}

/**
 * write(2) may write less than asked (a file size limit, a nearly full disk). Keep going, so the next call
 * reports the real error instead of us renaming a cut file into place.
 */
async function writeAll(handle: FileHandle, data: Uint8Array): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await handle.write(data, done, data.length - done);
    if (bytesWritten <= 0) throw new Error(`write made no progress after ${done} of ${data.length} bytes`);
    done += bytesWritten;
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch (error) {
    // Some filesystems cannot fsync a directory; the rename has happened, and there is nothing more to do.
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EISDIR') throw error;
  } finally {
    await handle.close();
  }
}
