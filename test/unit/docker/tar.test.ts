// The archives DSO sends to the engine carry every owner exactly: ids above what seven octal
// digits hold (2,097,151: OpenShift-style uids like 1000680000, up to 4294967294) and paths
// longer than ustar's fields reach a reader through PAX records. Checked with two independent
// readers: tar-stream, and GNU tar as a user would run it.
import { expect, test } from 'bun:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { extract } from 'tar-stream';
import { buildTar, tarSize, type TarEntry } from '../../../src/docker/tar.ts';

interface Read {
  name: string;
  type: string;
  uid: number;
  gid: number;
  mode: number;
  data: string;
}

async function readWithTarStream(archive: Uint8Array): Promise<Read[]> {
  const out: Read[] = [];
  const ex = extract();
  const done = new Promise<void>((resolve, reject) => {
    ex.on('entry', (h, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => chunks.push(c as Buffer));
      stream.on('end', () => {
        // tar-stream applies a PAX path itself and hands the other records over as they are.
        const pax = (h.pax ?? {}) as Record<string, string | undefined>;
        const id = (key: 'uid' | 'gid', field: number | undefined) => Number(pax[key] ?? field ?? -1);
        out.push({ name: h.name, type: h.type ?? 'file', uid: id('uid', h.uid), gid: id('gid', h.gid), mode: h.mode ?? -1, data: Buffer.concat(chunks).toString() });
        next();
      });
      stream.resume();
    });
    ex.on('finish', resolve);
    ex.on('error', reject);
  });
  Readable.from([Buffer.from(archive)]).pipe(ex);
  await done;
  return out;
}

/** `tar -tv --numeric-owner`: one line per member, owner as uid/gid. */
async function listWithGnuTar(archive: Uint8Array): Promise<string[]> {
  const dir = mkdtempSync('/dev/shm/dso-tar-test-');
  try {
    const file = join(dir, 'a.tar');
    writeFileSync(file, archive);
    const p = Bun.spawn(['tar', '-tv', '--numeric-owner', '-f', file], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' }, stdout: 'pipe', stderr: 'pipe' });
    const [code, stdout, stderr] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    return stdout.split('\n').filter(Boolean);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const file = (path: string, uid: number, gid: number, data = 'x'): TarEntry => ({ path, type: 'file', mode: 0o400, uid, gid, data: new TextEncoder().encode(data) });

test('an owner above 2,097,151 arrives exactly (1000680000 and 4294967294), read by tar-stream', async () => {
  const archive = buildTar([file('a/openshift', 1000680000, 1000680000, 'one'), file('b/max', 4294967294, 4294967294, 'two'), file('c/small', 1000, 1001, 'three')]);
  const entries = await readWithTarStream(archive);
  expect(entries.map((e) => [e.name, e.type, e.uid, e.gid, e.mode, e.data])).toEqual([
    ['a/openshift', 'file', 1000680000, 1000680000, 0o400, 'one'],
    ['b/max', 'file', 4294967294, 4294967294, 0o400, 'two'],
    ['c/small', 'file', 1000, 1001, 0o400, 'three'],
  ]);
});

test('an owner above 2,097,151 arrives exactly, listed by GNU tar', async () => {
  const lines = await listWithGnuTar(buildTar([file('a/openshift', 1000680000, 7), file('b/max', 4294967294, 4294967294), { path: 'dir', type: 'dir', mode: 0o755, uid: 2097152, gid: 0 }]));
  expect(lines.map((l) => l.split(/\s+/).slice(0, 2).concat(l.split(/\s+/).at(-1)!))).toEqual([
    ['-r--------', '1000680000/7', 'a/openshift'],
    ['-r--------', '4294967294/4294967294', 'b/max'],
    ['drwxr-xr-x', '2097152/0', 'dir/'],
  ]);
});

test('small owners stay plain ustar: no extended header, the same bytes as before', () => {
  const entries = [file('a/b', 2097151, 0, 'v')];
  const archive = buildTar(entries);
  expect(archive.length).toBe(512 * 4); // header, one data block, two end blocks
  expect(archive.length).toBe(tarSize(entries));
  expect(archive[156]).toBe(0x30); // a regular file, not an 'x' header
  expect(new TextDecoder().decode(archive.subarray(108, 115))).toBe('7777777');
});

test('a reader that ignored the PAX record would see root as the owner, not some other user', () => {
  const archive = buildTar([file('a', 1000680000, 4294967294)]);
  expect(archive[156]).toBe(0x78); // the 'x' extended header comes first
  const header = archive.subarray(1024, 1536); // after the 'x' header and its one block of records
  expect(new TextDecoder().decode(header.subarray(108, 115))).toBe('0000000');
  expect(new TextDecoder().decode(header.subarray(116, 123))).toBe('0000000');
});

test('a path longer than ustar can split arrives whole, through a PAX path record', async () => {
  const long = `${'d'.repeat(120)}/${'f'.repeat(120)}`;
  const entries = await readWithTarStream(buildTar([file(long, 0, 0, 'p')]));
  expect(entries.map((e) => [e.name, e.data])).toEqual([[long, 'p']]);
});

test('the archive is one buffer of exactly tarSize bytes, whatever extended headers it needs', () => {
  const entries = [file('a', 4294967294, 3), file(`${'x'.repeat(200)}/${'y'.repeat(150)}`, 5, 4294967294), file('b', 1, 1)];
  expect(buildTar(entries).length).toBe(tarSize(entries));
});

test('ids outside 0..4294967294 are refused (4294967295 would mean "leave the owner unchanged")', () => {
  for (const uid of [-1, 4294967295, 2 ** 40, 1.5, Number.NaN]) {
    expect(() => buildTar([file('a', uid, 0)])).toThrow(/owner/);
    expect(() => buildTar([file('a', 0, uid)])).toThrow(/owner/);
  }
});
