// Checks a plugin before each start: it is a regular executable file inside the plugin directory,
// only root or DSO's own user can change it or any directory above it, and its bytes have the
// SHA-256 pinned in dso.yaml. What it returns is an open handle on the very file that was hashed,
// so that DSO executes that file and not whatever the path names a moment later.
import { constants, promises as fsp, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { dirname, join, sep } from 'node:path';
import { ProviderError } from '../../src/providers/contract.ts';
import { PLUGIN_PREFIX } from './config.ts';

export interface PluginLocation {
  plugin: string;
  sha256: string;
  plugin_dir: string;
}

export interface VerifiedPlugin {
  /** The path the configuration names, for messages. */
  path: string;
  /** The real file that was checked and hashed (the same as `path` unless that is a symlink). */
  realPath: string;
  /** The real plugin directory: the plugin's working directory. */
  dir: string;
  /** Read-only, on exactly the bytes that were hashed; the caller closes it once the child runs. */
  handle: FileHandle;
}

const S_ISVTX = 0o1000;
const GROUP_OR_WORLD_WRITABLE = 0o022;
const ANY_EXECUTE = 0o111;

function refuse(message: string): ProviderError {
  return new ProviderError('config', message);
}

const octal = (mode: number) => `0${(mode & 0o7777).toString(8)}`;
const code = (e: unknown) => (e as NodeJS.ErrnoException).code ?? 'error';

/**
 * Verifies the plugin `location` names and opens it. `uid` is the user DSO runs as: files owned
 * by it or by root are trusted, as that user can already change dso.yaml and DSO itself.
 */
export async function verifyPlugin(location: PluginLocation, uid: number = process.getuid?.() ?? 0): Promise<VerifiedPlugin> {
  const trusted = (s: Stats) => s.uid === 0 || s.uid === uid;
  const owners = uid === 0 ? 'root' : `root or uid ${uid} (the user DSO runs as)`;

  let dir: string;
  try {
    dir = await fsp.realpath(location.plugin_dir);
  } catch (e) {
    throw refuse(`the plugin directory ${location.plugin_dir} cannot be used (${code(e)}); create it, owned by root, mode 0755`);
  }
  const path = join(location.plugin_dir, PLUGIN_PREFIX + location.plugin);
  let real: string;
  try {
    real = await fsp.realpath(join(dir, PLUGIN_PREFIX + location.plugin));
  } catch (e) {
    throw refuse(`plugin ${path} cannot be used (${code(e)}); install it there, owned by root, mode 0755`);
  }
  // A symlink may point to another file of the plugin directory (a versioned name), never out of it.
  if (!real.startsWith(dir === sep ? sep : dir + sep)) {
    throw refuse(`plugin ${path} is a symlink to ${real}, outside the plugin directory ${dir}; copy the plugin into ${dir} instead`);
  }

  // Every directory from / down to the file: whoever can write to one of them can swap the plugin
  // (or a directory on the way) after it was checked. A sticky directory such as /tmp is allowed
  // above the plugin directory, as others cannot rename or remove what is not theirs in it.
  for (const d of ancestors(dirname(real))) {
    let s: Stats;
    try {
      s = await fsp.lstat(d);
    } catch (e) {
      throw refuse(`cannot check the directory ${d} above plugin ${path} (${code(e)})`);
    }
    if (!s.isDirectory()) throw refuse(`${d}, on the way to plugin ${path}, is not a directory (it changed while DSO checked it)`);
    if (!trusted(s)) throw refuse(`the directory ${d} is owned by uid ${s.uid}; plugin ${path} is used only when it and every directory above it are owned by ${owners}`);
    const insidePluginDir = d === dir || d.startsWith(dir + sep);
    if ((s.mode & GROUP_OR_WORLD_WRITABLE) !== 0 && (insidePluginDir || (s.mode & S_ISVTX) === 0)) {
      throw refuse(`the directory ${d} is writable by other users (mode ${octal(s.mode)}), so plugin ${path} could be replaced; run chmod go-w ${d}`);
    }
  }

  // O_NOFOLLOW: the last component was resolved above; if it became a symlink since, refuse.
  // O_NONBLOCK: a FIFO swapped in cannot make DSO wait. Bun opens with O_CLOEXEC by default, so
  // the handle leaks into no other child; the plugin gets it only as its fd 3 (see process.ts).
  let handle: FileHandle;
  try {
    handle = await fsp.open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    throw refuse(`plugin ${path} cannot be opened (${code(e)})`);
  }
  try {
    // Checked on the open file itself: whatever happens to the path now, these are its properties.
    const s = await handle.stat();
    if (!s.isFile()) throw refuse(`plugin ${path} is not a regular file`);
    if (!trusted(s)) throw refuse(`plugin ${path} is owned by uid ${s.uid}; it is used only when owned by ${owners}; run chown root: ${real}`);
    if ((s.mode & GROUP_OR_WORLD_WRITABLE) !== 0) throw refuse(`plugin ${path} is writable by other users (mode ${octal(s.mode)}); run chmod go-w ${real}`);
    if ((s.mode & ANY_EXECUTE) === 0) throw refuse(`plugin ${path} is not executable (mode ${octal(s.mode)}); run chmod 0755 ${real}`);
    const actual = await sha256Of(handle);
    if (actual !== location.sha256) {
      throw refuse(
        `plugin ${path} does not match its pin and was not run: dso.yaml says sha256 ${location.sha256}, the file has ${actual}. ` +
          `If you installed this version on purpose, check it, then put the output of \`sha256sum ${real}\` in the entry's sha256`,
      );
    }
    return { path, realPath: real, dir, handle };
  } catch (e) {
    await handle.close().catch(() => {});
    throw e instanceof ProviderError ? e : refuse(`plugin ${path} cannot be read (${code(e)})`);
  }
}

/** `/`, then each directory down to and including `dir`. */
function ancestors(dir: string): string[] {
  const out: string[] = [sep];
  let at = '';
  for (const part of dir.split(sep).filter(Boolean)) {
    at += sep + part;
    out.push(at);
  }
  return out;
}

async function sha256Of(handle: FileHandle): Promise<string> {
  const hash = createHash('sha256');
  const chunk = new Uint8Array(1 << 20);
  let position = 0;
  for (;;) {
    const { bytesRead } = await handle.read(chunk, 0, chunk.length, position);
    if (bytesRead === 0) break;
    hash.update(chunk.subarray(0, bytesRead));
    position += bytesRead;
  }
  return hash.digest('hex');
}
