// A minimal ustar writer into one buffer we own, so secret file contents can be wiped after the
// archive is sent (a streaming library keeps copies we cannot reach).

export interface TarEntry {
  /** Relative path inside the archive, '/'-separated, no leading '/'. */
  path: string;
  type: 'file' | 'dir';
  mode: number;
  uid: number;
  gid: number;
  data?: Uint8Array;
  mtime?: number;
}

const BLOCK = 512;

export function tarSize(entries: readonly TarEntry[]): number {
  let n = 2 * BLOCK;
  for (const e of entries) n += BLOCK + Math.ceil((e.data?.length ?? 0) / BLOCK) * BLOCK;
  return n;
}

/** Builds the archive; the caller wipes the result when done. */
export function buildTar(entries: readonly TarEntry[]): Uint8Array {
  const out = new Uint8Array(tarSize(entries));
  let off = 0;
  for (const e of entries) {
    writeHeader(out.subarray(off, off + BLOCK), e);
    off += BLOCK;
    if (e.type === 'file' && e.data) {
      out.set(e.data, off);
      off += Math.ceil(e.data.length / BLOCK) * BLOCK;
    }
  }
  return out;
}

function writeHeader(h: Uint8Array, e: TarEntry): void {
  const enc = new TextEncoder();
  let name = e.type === 'dir' && !e.path.endsWith('/') ? `${e.path}/` : e.path;
  let prefix = '';
  if (enc.encode(name).length > 100) {
    // ustar splits long paths at a '/' into prefix (155) + name (100).
    const cut = name.lastIndexOf('/', name.length - 2);
    prefix = name.slice(0, cut);
    name = name.slice(cut + 1);
    if (cut <= 0 || enc.encode(name).length > 100 || enc.encode(prefix).length > 155) {
      throw new Error(`path too long for a tar header: ${e.path}`);
    }
  }
  const str = (s: string, at: number, len: number) => h.set(enc.encode(s).subarray(0, len), at);
  const oct = (n: number, at: number, len: number) => str(n.toString(8).padStart(len - 1, '0'), at, len - 1);
  str(name, 0, 100);
  oct(e.mode & 0o7777, 100, 8);
  oct(e.uid, 108, 8);
  oct(e.gid, 116, 8);
  oct(e.type === 'file' ? (e.data?.length ?? 0) : 0, 124, 12);
  oct(Math.floor((e.mtime ?? Date.now()) / 1000), 136, 12);
  h.fill(0x20, 148, 156); // checksum is computed with its own field as spaces
  h[156] = e.type === 'dir' ? 0x35 : 0x30;
  str('ustar', 257, 6);
  str('00', 263, 2);
  str(prefix, 345, 155);
  let sum = 0;
  for (const b of h) sum += b;
  str(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
}
