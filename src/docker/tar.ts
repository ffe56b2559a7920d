// A minimal ustar writer into one buffer we own, so secret file contents can be wiped after the
// archive is sent (a streaming library keeps copies we cannot reach). What ustar's fields cannot
// hold (an owner above 2,097,151, the most seven octal digits give; a path longer than its name
// and prefix fields) goes into a PAX extended header before the entry (POSIX.1-2001, read by
// Docker's Go archive/tar, GNU tar and bsdtar), so every owner arrives exactly.
import { DsoError } from '../errors.ts';

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
/** The largest number seven octal digits (an id field of a ustar header) can hold. */
const USTAR_MAX_ID = 0o7777777;
/** The largest Linux uid or gid: 2^32 - 1 is (uid_t)-1, which chown(2) reads as "leave unchanged". */
export const MAX_ID = 4294967294;

const enc = new TextEncoder();
const blocks = (n: number) => Math.ceil(n / BLOCK) * BLOCK;

/** Where ustar puts a path: name, or prefix '/' name split at a '/'; undefined when it does not fit. */
function ustarPath(path: string): { name: string; prefix: string } | undefined {
  if (enc.encode(path).length <= 100) return { name: path, prefix: '' };
  const cut = path.lastIndexOf('/', path.length - 2);
  if (cut <= 0) return undefined;
  const name = path.slice(cut + 1);
  const prefix = path.slice(0, cut);
  return enc.encode(name).length > 100 || enc.encode(prefix).length > 155 ? undefined : { name, prefix };
}

function archivePath(e: TarEntry): string {
  return e.type === 'dir' && !e.path.endsWith('/') ? `${e.path}/` : e.path;
}

/** One PAX record, `LEN KEY=VALUE\n`, where LEN counts the whole record, its own digits included. */
function paxRecord(key: string, value: string): string {
  const rest = ` ${key}=${value}\n`;
  const restLength = enc.encode(rest).length;
  let length = restLength + 1;
  while (String(length).length + restLength !== length) length = String(length).length + restLength;
  return `${length}${rest}`;
}

/** The PAX records an entry needs, or '' when its ustar header holds everything. */
function paxRecords(e: TarEntry): string {
  for (const [what, id] of [['uid', e.uid], ['gid', e.gid]] as const) {
    if (!Number.isInteger(id) || id < 0 || id > MAX_ID) {
      throw new DsoError('INVALID_REFERENCE', `secret file ${e.path}: the owner's ${what} ${id} is not an id from 0 to ${MAX_ID}`, { hint: `give a ${what} from 0 to ${MAX_ID}` });
    }
  }
  let records = '';
  if (e.uid > USTAR_MAX_ID) records += paxRecord('uid', String(e.uid));
  if (e.gid > USTAR_MAX_ID) records += paxRecord('gid', String(e.gid));
  if (!ustarPath(archivePath(e))) records += paxRecord('path', archivePath(e));
  return records;
}

export function tarSize(entries: readonly TarEntry[]): number {
  let n = 2 * BLOCK;
  for (const e of entries) {
    const pax = enc.encode(paxRecords(e)).length;
    if (pax > 0) n += BLOCK + blocks(pax);
    n += BLOCK + blocks(e.data?.length ?? 0);
  }
  return n;
}

/** Builds the archive; the caller wipes the result when done. */
export function buildTar(entries: readonly TarEntry[]): Uint8Array {
  const out = new Uint8Array(tarSize(entries));
  let off = 0;
  for (const e of entries) {
    const pax = enc.encode(paxRecords(e));
    const mtime = e.mtime ?? Date.now();
    if (pax.length > 0) {
      const base = archivePath(e).replace(/\/$/, '').split('/').pop()!;
      writeHeader(out.subarray(off, off + BLOCK), { path: `PaxHeaders/${base}`, type: 'x', mode: 0o644, uid: 0, gid: 0, size: pax.length, mtime });
      off += BLOCK;
      out.set(pax, off);
      off += blocks(pax.length);
    }
    writeHeader(out.subarray(off, off + BLOCK), { path: archivePath(e), type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, size: e.type === 'file' ? (e.data?.length ?? 0) : 0, mtime });
    off += BLOCK;
    if (e.type === 'file' && e.data) {
      out.set(e.data, off);
      off += blocks(e.data.length);
    }
  }
  return out;
}

interface Header {
  path: string;
  type: 'file' | 'dir' | 'x';
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
}

const TYPEFLAG = { file: 0x30, dir: 0x35, x: 0x78 } as const;

/**
 * A ustar header. Fields a PAX record carries get what fits: the start of the path, and owner 0
 * for an id above the field's range, so a reader that ignored the record would give the file to
 * root (who can read it anyway), not to some unrelated user whose id happens to fit.
 */
function writeHeader(h: Uint8Array, e: Header): void {
  const split = ustarPath(e.path);
  const str = (s: string, at: number, len: number) => h.set(enc.encode(s).subarray(0, len), at);
  const oct = (n: number, at: number, len: number) => str(n.toString(8).padStart(len - 1, '0'), at, len - 1);
  str(split?.name ?? e.path, 0, 100);
  oct(e.mode & 0o7777, 100, 8);
  oct(e.uid > USTAR_MAX_ID ? 0 : e.uid, 108, 8);
  oct(e.gid > USTAR_MAX_ID ? 0 : e.gid, 116, 8);
  oct(e.size, 124, 12);
  oct(Math.floor(e.mtime / 1000), 136, 12);
  h.fill(0x20, 148, 156); // checksum is computed with its own field as spaces
  h[156] = TYPEFLAG[e.type];
  str('ustar', 257, 6);
  str('00', 263, 2);
  str(split?.prefix ?? '', 345, 155);
  let sum = 0;
  for (const b of h) sum += b;
  str(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
}
