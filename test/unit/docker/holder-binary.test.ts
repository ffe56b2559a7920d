// Checks the embedded dso-holder binaries decode to what build.sh produced, and runs them: amd64
// natively on an x86_64 Linux host, arm64 through qemu-aarch64-static when that is installed.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { chmod, mkdir, mkdtemp, open, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { existsSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HOLDER_SHA256, HOLDER_VERSION, holderBinary, type HolderArch } from '../../../src/docker/holder-binary.ts';

const TMPFS_MAGIC = 0x01021994;
const EM_X86_64 = 62;
const EM_AARCH64 = 183;
const expectedMachine: Record<HolderArch, number> = { amd64: EM_X86_64, arm64: EM_AARCH64 };
const arches: HolderArch[] = ['amd64', 'arm64'];
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

describe.each(arches)('holderBinary(%s)', (arch) => {
  const binary = holderBinary(arch);
  const header = new DataView(binary.buffer, binary.byteOffset, binary.byteLength);

  test('is a static little-endian ELF64 executable for its machine', () => {
    expect([...binary.subarray(0, 4)]).toEqual([0x7f, 0x45, 0x4c, 0x46]);
    expect(binary[4]).toBe(2); // ELFCLASS64
    expect(binary[5]).toBe(1); // ELFDATA2LSB
    expect(header.getUint16(16, true)).toBe(2); // ET_EXEC: no interpreter, no PIE
    expect(header.getUint16(18, true)).toBe(expectedMachine[arch]);
  });

  test('is one read+execute segment and nothing to load from elsewhere', () => {
    const phoff = Number(header.getBigUint64(32, true));
    const phentsize = header.getUint16(54, true);
    const phnum = header.getUint16(56, true);
    const segments = Array.from({ length: phnum }, (_, i) => ({
      type: header.getUint32(phoff + i * phentsize, true),
      flags: header.getUint32(phoff + i * phentsize + 4, true),
    }));
    const PT_LOAD = 1;
    const PT_INTERP = 3;
    const PF_X = 1;
    const PF_W = 2;
    const PF_R = 4;
    expect(segments.filter((s) => s.type === PT_INTERP)).toEqual([]);
    expect(segments.filter((s) => s.type === PT_LOAD)).toEqual([{ type: PT_LOAD, flags: PF_R | PF_X }]);
    expect(segments.some((s) => s.type === PT_LOAD && (s.flags & PF_W) !== 0)).toBe(false);
  });

  test('stays small', () => {
    expect(binary.byteLength).toBeLessThan(8192);
  });

  test('matches its recorded SHA-256', () => {
    const digest = new Bun.CryptoHasher('sha256').update(binary).digest('hex');
    expect(digest).toBe(HOLDER_SHA256[arch]);
  });

  test('is a fresh copy on every call', () => {
    const first = holderBinary(arch);
    first[0] = 0;
    expect(holderBinary(arch)[0]).toBe(0x7f);
  });
});

function isTmpfs(path: string): boolean {
  try {
    return statfsSync(path).type === TMPFS_MAGIC;
  } catch {
    return false;
  }
}

function commandWorks(argv: string[]): boolean {
  try {
    return Bun.spawnSync(argv, { env: { PATH: SYSTEM_PATH }, stdout: 'ignore', stderr: 'ignore' }).exitCode === 0;
  } catch {
    return false;
  }
}

const onLinux = process.platform === 'linux';
const qemuAarch64 = onLinux ? Bun.which('qemu-aarch64-static', { PATH: SYSTEM_PATH }) : null;
/** How to start each holder here, or null: natively, or under user-mode emulation. */
const launchers: Record<HolderArch, string[] | null> = {
  amd64: onLinux && process.arch === 'x64' ? [] : null,
  arm64: onLinux && process.arch === 'arm64' ? [] : qemuAarch64 ? [qemuAarch64] : null,
};
const shmIsTmpfs = onLinux && isTmpfs('/dev/shm');
/** Secret volumes are tmpfs: test on tmpfs when this host has one to hand. */
const scratchRoot = shmIsTmpfs ? '/dev/shm' : tmpdir();
const isRoot = process.getuid?.() === 0;
const perl = onLinux ? Bun.which('perl', { PATH: SYSTEM_PATH }) : null;
const canUnsharePid = onLinux && isRoot && commandWorks(['unshare', '--pid', '--fork', 'true']);
const canMakeImmutable = isRoot && shmIsTmpfs && commandWorks(['sh', '-c', 'f=$(mktemp /dev/shm/dso-chattr-XXXXXX) && chattr +i "$f" && chattr -i "$f"; s=$?; rm -f "$f"; exit $s']);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  pid: number;
}

for (const arch of arches) {
  const launcher = launchers[arch];
  describe.if(launcher !== null)(`${arch} holder on this host${launcher?.length ? ' (qemu-user)' : ''}`, () => {
    let workDir = '';
    let holderPath = '';
    let caseNumber = 0;
    beforeAll(async () => {
      workDir = await mkdtemp(join(scratchRoot, `dso-holder-test-${arch}-`));
      holderPath = join(workDir, 'dso-holder');
      await writeFile(holderPath, holderBinary(arch));
      await chmod(holderPath, 0o755);
    });
    afterAll(async () => {
      if (workDir === '') return;
      if (canMakeImmutable) Bun.spawnSync(['chattr', '-R', '-i', workDir], { env: { PATH: SYSTEM_PATH }, stderr: 'ignore' });
      await rm(workDir, { recursive: true, force: true });
    });

    function holderCommand(args: string[]): string[] {
      return [...(launcher ?? []), holderPath, ...args];
    }

    function start(argv: string[], env: Record<string, string> = { PATH: SYSTEM_PATH }) {
      return Bun.spawn(argv, { env, stdout: 'pipe', stderr: 'pipe' });
    }

    async function finish(child: ReturnType<typeof start>): Promise<Run> {
      const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
      return { code, stdout, stderr, pid: child.pid };
    }

    function runHolder(args: string[], env?: Record<string, string>): Promise<Run> {
      return finish(start(holderCommand(args), env));
    }

    /** True if the child is still running after ms milliseconds. */
    async function stillRunningAfter(child: { exited: Promise<number> }, ms: number): Promise<boolean> {
      return Promise.race([child.exited.then(() => false), Bun.sleep(ms).then(() => true)]);
    }

    /** A fresh volume directory: TARGET, with STAGING inside it, as DSO lays them out. */
    async function newVolume(): Promise<{ target: string; staging: string }> {
      const target = join(workDir, `volume-${++caseNumber}`);
      const staging = join(target, `.dso-staging-${caseNumber}`);
      await mkdir(staging, { recursive: true });
      return { target, staging };
    }

    async function put(path: string, content: string | Uint8Array, mode = 0o644): Promise<void> {
      await mkdir(join(path, '..'), { recursive: true });
      await writeFile(path, content);
      await chmod(path, mode);
    }

    test('version prints the embedded version', async () => {
      expect(await runHolder(['version'])).toMatchObject({ code: 0, stdout: `dso-holder ${HOLDER_VERSION}\n` });
    });

    test.if(shmIsTmpfs)('check reports tmpfs for /dev/shm', async () => {
      expect(await runHolder(['check', '/dev/shm'])).toMatchObject({ code: 0, stdout: '/dev/shm tmpfs\n' });
    });

    test('check reports a missing path as an error', async () => {
      expect(await runHolder(['check', '/nonexistent-dso-holder-path'])).toMatchObject({
        code: 2,
        stdout: '/nonexistent-dso-holder-path error 2\n',
      });
    });

    describe('publish', () => {
      test('moves a nested tree into place by rename, the ready marker last, and removes STAGING', async () => {
        const { target, staging } = await newVolume();
        await put(join(target, 'a'), 'old a');
        await put(join(target, 'untouched'), 'kept');
        await put(join(target, 'old/sub/b'), 'old b');
        const oldA = await stat(join(target, 'a'));
        // The marker is staged between files, so a walk in directory order (oldest or newest
        // first) would meet it before some file.
        await put(join(staging, 'a'), 'new a');
        await put(join(staging, '.dso-ready'), '', 0o444);
        await put(join(staging, 'old/sub/b'), 'new b');
        await put(join(staging, 'new/deep/c'), 'new c');
        const stagedA = await stat(join(staging, 'a'));

        const r = await runHolder(['publish', staging, target]);

        expect(r.code).toBe(0);
        expect(r.stderr).toBe('');
        const lines = r.stdout.trimEnd().split('\n');
        expect(lines.at(-1)).toBe('published .dso-ready');
        expect(lines.slice(0, -1).sort()).toEqual(['published a', 'published new/deep/c', 'published old/sub/b']);
        expect(await readFile(join(target, 'a'), 'utf8')).toBe('new a');
        expect(await readFile(join(target, 'old/sub/b'), 'utf8')).toBe('new b');
        expect(await readFile(join(target, 'new/deep/c'), 'utf8')).toBe('new c');
        expect(await readFile(join(target, 'untouched'), 'utf8')).toBe('kept');
        // A rename, not a copy: TARGET/a is now the staged inode, and the old one is gone from view.
        const newA = await stat(join(target, 'a'));
        expect(newA.ino).toBe(stagedA.ino);
        expect(newA.ino).not.toBe(oldA.ino);
        expect(existsSync(staging)).toBe(false);
        expect((await readdir(target)).sort()).toEqual(['.dso-ready', 'a', 'new', 'old', 'untouched']);
      });

      test.if(isRoot)('creates missing directories with the mode, uid and gid they have in STAGING', async () => {
        const { target, staging } = await newVolume();
        await mkdir(join(target, 'existing'), { mode: 0o755 });
        await put(join(staging, 'app/conf/key'), 'k', 0o640);
        await put(join(staging, 'existing/f'), 'f', 0o600);
        await chmod(join(staging, 'app'), 0o750);
        await chmod(join(staging, 'app/conf'), 0o2711);
        await chmod(join(staging, 'existing'), 0o700);
        Bun.spawnSync(['chown', '1000:1001', join(staging, 'app'), join(staging, 'app/conf/key')], { env: { PATH: SYSTEM_PATH } });
        Bun.spawnSync(['chown', '0:1002', join(staging, 'app/conf')], { env: { PATH: SYSTEM_PATH } });

        const r = await runHolder(['publish', staging, target]);

        expect(r.code).toBe(0);
        const app = await stat(join(target, 'app'));
        const conf = await stat(join(target, 'app/conf'));
        const key = await stat(join(target, 'app/conf/key'));
        expect({ mode: app.mode & 0o7777, uid: app.uid, gid: app.gid }).toEqual({ mode: 0o750, uid: 1000, gid: 1001 });
        expect({ mode: conf.mode & 0o7777, uid: conf.uid, gid: conf.gid }).toEqual({ mode: 0o2711, uid: 0, gid: 1002 });
        expect({ mode: key.mode & 0o7777, uid: key.uid, gid: key.gid }).toEqual({ mode: 0o640, uid: 1000, gid: 1001 });
        // A directory that already exists is left as it is.
        expect((await stat(join(target, 'existing'))).mode & 0o7777).toBe(0o755);
      });

      test('refuses a symlink in STAGING before moving anything', async () => {
        const { target, staging } = await newVolume();
        await put(join(target, 'a'), 'old a');
        await put(join(staging, 'a'), 'new a');
        await put(join(staging, 'd/f'), 'f');
        await put(join(staging, '.dso-ready'), '');
        await symlink('/etc/passwd', join(staging, 'd/link'));
        const before = await stat(join(target, 'a'));

        const r = await runHolder(['publish', staging, target]);

        expect(r.code).toBe(2);
        expect(r.stdout).toBe('');
        expect(r.stderr).toBe('dso-holder publish: refusing, not a regular file or directory: d/link\n');
        expect(await readFile(join(target, 'a'), 'utf8')).toBe('old a');
        expect((await stat(join(target, 'a'))).ino).toBe(before.ino);
        expect((await readdir(target)).sort()).toEqual(['.dso-staging-' + caseNumber, 'a']);
        expect((await readdir(staging)).sort()).toEqual(['.dso-ready', 'a', 'd']);
      });

      test('refuses a FIFO in STAGING', async () => {
        const { target, staging } = await newVolume();
        await put(join(staging, 'a'), 'a');
        expect(commandWorks(['mkfifo', join(staging, 'pipe')])).toBe(true);
        const r = await runHolder(['publish', staging, target]);
        expect(r.code).toBe(2);
        expect(r.stderr).toContain('not a regular file or directory: pipe');
        expect(existsSync(join(target, 'a'))).toBe(false);
      });

      test('refuses a symlink or a file where TARGET needs a directory, and follows neither', async () => {
        const { target, staging } = await newVolume();
        const outside = join(workDir, `outside-${caseNumber}`);
        await mkdir(outside);
        await symlink(outside, join(target, 'd'));
        await put(join(target, 'plain'), 'not a dir');
        await put(join(staging, 'a'), 'a');
        await put(join(staging, 'd/f'), 'would escape');

        const viaSymlink = await runHolder(['publish', staging, target]);
        expect(viaSymlink.code).toBe(2);
        expect(viaSymlink.stderr).toBe('dso-holder publish: refusing, TARGET has a symlink or non-directory at d\n');
        expect(await readdir(outside)).toEqual([]);
        expect(existsSync(join(target, 'a'))).toBe(false);

        await rm(join(staging, 'd'), { recursive: true });
        await put(join(staging, 'plain/f'), 'f');
        const viaFile = await runHolder(['publish', staging, target]);
        expect(viaFile.code).toBe(2);
        expect(viaFile.stderr).toBe('dso-holder publish: refusing, TARGET has a symlink or non-directory at plain\n');
        expect(await readFile(join(target, 'plain'), 'utf8')).toBe('not a dir');
        expect(existsSync(join(target, 'a'))).toBe(false);
      });

      test('refuses to replace a symlink or directory in TARGET with a file', async () => {
        const { target, staging } = await newVolume();
        await symlink('/etc/passwd', join(target, 'a'));
        await put(join(staging, 'a'), 'a');
        const r = await runHolder(['publish', staging, target]);
        expect(r.code).toBe(2);
        expect(r.stderr).toBe('dso-holder publish: refusing, TARGET has a symlink, directory or special file at a\n');
        expect(existsSync(join(staging, 'a'))).toBe(true);
      });

      test('refuses relative paths, ".." components, a missing STAGING and STAGING = TARGET', async () => {
        const { target, staging } = await newVolume();
        await put(join(staging, 'a'), 'a');
        for (const args of [
          ['publish', 'relative', target],
          ['publish', staging, 'relative'],
          ['publish', `${target}/../${target.split('/').at(-1)}/${staging.split('/').at(-1)}`, target],
          ['publish', staging, `${target}/..`],
        ]) {
          expect(await runHolder(args)).toMatchObject({ code: 2, stdout: '', stderr: "dso-holder publish: STAGING and TARGET must be absolute paths without '..'\n" });
        }
        expect(await runHolder(['publish', join(target, 'missing'), target])).toMatchObject({
          code: 2,
          stderr: `dso-holder publish: cannot open STAGING ${join(target, 'missing')}: errno 2\n`,
        });
        expect((await runHolder(['publish', staging, staging])).code).toBe(2);
        expect((await runHolder(['publish', staging])).code).toBe(2);
        expect(existsSync(join(staging, 'a'))).toBe(true);
      });

      test.if(canMakeImmutable)('does not publish the ready marker when a rename fails part-way, and says so with exit 1', async () => {
        const { target, staging } = await newVolume();
        await mkdir(join(target, 'locked'));
        await put(join(staging, 'first/a'), 'a');
        await put(join(staging, 'locked/b'), 'b');
        await put(join(staging, 'last/c'), 'c');
        await put(join(staging, '.dso-ready'), '');
        // Every check of the first pass succeeds; only the rename into the immutable directory fails.
        expect(commandWorks(['chattr', '+i', join(target, 'locked')])).toBe(true);
        try {
          const r = await runHolder(['publish', staging, target]);
          expect([1, 2]).toContain(r.code);
          expect(r.stderr).toBe('dso-holder publish: cannot rename locked/b: errno 1\n');
          expect(r.stdout).not.toContain('.dso-ready');
          expect(existsSync(join(target, '.dso-ready'))).toBe(false);
          expect(existsSync(join(staging, '.dso-ready'))).toBe(true);
          // Exit 1 exactly when something was already published before the failure.
          expect(r.code === 1).toBe(r.stdout !== '' || existsSync(join(target, 'first')) || existsSync(join(target, 'last')));
        } finally {
          commandWorks(['chattr', '-i', join(target, 'locked')]);
        }
      });

      test('a reader never sees a partial file while versions are published over it', async () => {
        const { target } = await newVolume();
        const size = 256 * 1024;
        const versions = 40;
        const file = join(target, 'x');
        await put(file, new Uint8Array(size).fill(1));
        const stopFile = join(workDir, `stop-${caseNumber}`);
        const readyFile = join(workDir, `reader-ready-${caseNumber}`);
        const reader = Bun.spawn([process.execPath, '-e', readerScript, file, stopFile, readyFile, String(size)], {
          env: { PATH: SYSTEM_PATH },
          stdout: 'pipe',
          stderr: 'pipe',
        });
        while (!existsSync(readyFile)) await Bun.sleep(5);
        for (let v = 2; v <= versions; v++) {
          const staging = join(target, `.dso-staging-v${v}`);
          await put(join(staging, 'x'), new Uint8Array(size).fill(v));
          await put(join(staging, '.dso-ready'), '');
          const r = await runHolder(['publish', staging, target]);
          expect(r).toMatchObject({ code: 0, stdout: 'published x\npublished .dso-ready\n' });
          await Bun.sleep(2);
        }
        await writeFile(stopFile, '');
        const result = await finish(reader);
        expect(result.stderr).toBe('');
        const seen = JSON.parse(result.stdout) as { reads: number; bad: string[]; versions: number[] };
        expect(seen.bad).toEqual([]);
        // Proof the reader ran alongside: it saw several versions, not just the first or the last.
        expect(seen.versions.length).toBeGreaterThan(2);
        expect(seen.reads).toBeGreaterThan(versions);
        expect((await readFile(file)).every((b) => b === versions)).toBe(true);
      }, 30_000);

      test('the same reader does catch a file rewritten in place (control for the test above)', async () => {
        const { target } = await newVolume();
        const size = 256 * 1024;
        const file = join(target, 'x');
        await put(file, new Uint8Array(size).fill(1));
        const stopFile = join(workDir, `stop-${caseNumber}`);
        const readyFile = join(workDir, `reader-ready-${caseNumber}`);
        const reader = Bun.spawn([process.execPath, '-e', readerScript, file, stopFile, readyFile, String(size)], {
          env: { PATH: SYSTEM_PATH },
          stdout: 'pipe',
          stderr: 'pipe',
        });
        while (!existsSync(readyFile)) await Bun.sleep(5);
        for (let v = 2; v <= 10; v++) {
          const handle = await open(file, 'r+');
          await handle.truncate(0);
          for (let part = 0; part < 4; part++) {
            await handle.write(new Uint8Array(size / 4).fill(v), 0, size / 4, (part * size) / 4);
            await Bun.sleep(2);
          }
          await handle.close();
        }
        await writeFile(stopFile, '');
        const seen = JSON.parse((await finish(reader)).stdout) as { bad: string[] };
        expect(seen.bad.length).toBeGreaterThan(0);
      }, 30_000);
    });

    describe('await', () => {
      test('waits for the file, says so once on stderr, then becomes the program (same PID)', async () => {
        const file = join(workDir, `ready-${++caseNumber}`);
        const child = start(holderCommand(['await', file, '--', '/bin/sh', '-c', 'echo $$']));
        expect(await stillRunningAfter(child, 400)).toBe(true);
        await writeFile(file, '');
        const r = await finish(child);
        expect(r.code).toBe(0);
        expect(r.stdout).toBe(`${child.pid}\n`);
        expect(r.stderr).toBe(`dso: waiting for secrets (${file}); they are restored by \`docker dso up\` or the DSO agent\n`);
      });

      test('waits for every FILE; --quiet says nothing; exits with the program\'s code', async () => {
        const first = join(workDir, `ready-${++caseNumber}-a`);
        const second = join(workDir, `ready-${caseNumber}-b`);
        const child = start(holderCommand(['await', '--quiet', first, second, '--', '/bin/sh', '-c', 'exit 7']));
        await writeFile(second, '');
        expect(await stillRunningAfter(child, 300)).toBe(true);
        await writeFile(first, '');
        expect(await finish(child)).toMatchObject({ code: 7, stdout: '', stderr: '' });
      });

      test('runs at once, with exactly the given environment, when the files are there', async () => {
        const file = join(workDir, `ready-${++caseNumber}`);
        await writeFile(file, '');
        const env = { A: '1', B: 'two words', PATH: '/nonexistent' };
        const r = await runHolder(['await', file, '--', '/usr/bin/env'], env);
        expect(r).toMatchObject({ code: 0, stderr: '' });
        expect(r.stdout.trimEnd().split('\n').sort()).toEqual(['A=1', 'B=two words', 'PATH=/nonexistent']);
      });

      test('searches PATH for a CMD without a slash, and a default PATH when there is none', async () => {
        const withPath = await runHolder(['await', '--', 'sh', '-c', 'echo "$0 $1"', 'zero', 'one'], { PATH: '/nonexistent:/usr/bin:/bin' });
        expect(withPath).toMatchObject({ code: 0, stdout: 'zero one\n', stderr: '' });
        const withoutPath = await runHolder(['await', '--', 'sh', '-c', 'echo ok'], {});
        expect(withoutPath).toMatchObject({ code: 0, stdout: 'ok\n', stderr: '' });
      });

      test('exits 127 for a missing program and 126 for one it may not run, as shells do', async () => {
        expect(await runHolder(['await', '--', 'dso-no-such-program'])).toMatchObject({
          code: 127,
          stderr: 'dso: cannot run dso-no-such-program: errno 2\n',
        });
        expect(await runHolder(['await', '--', '/nonexistent/program'])).toMatchObject({ code: 127 });
        const notExecutable = join(workDir, `not-executable-${++caseNumber}`);
        await put(notExecutable, '#!/bin/sh\n', 0o644);
        expect(await runHolder(['await', '--', notExecutable])).toMatchObject({
          code: 126,
          stderr: `dso: cannot run ${notExecutable}: errno 13\n`,
        });
        // In PATH: a non-executable match is remembered, and reported if nothing better is found.
        expect(await runHolder(['await', '--', notExecutable.split('/').at(-1) ?? ''], { PATH: `${workDir}:/nonexistent` })).toMatchObject({ code: 126 });
      });

      test('rejects a command line without "-- CMD"', async () => {
        expect((await runHolder(['await', '/x'])).code).toBe(2);
        expect((await runHolder(['await', '/x', '--'])).code).toBe(2);
      });

      // `exec grep`: a waiting dash blocks signals itself, so it must not be the one inspected.
      const showMask = ['/bin/sh', '-c', 'exec grep SigBlk /proc/self/status'];

      test('leaves the program the signal mask it would have had without the wrapper', async () => {
        const direct = await finish(start(showMask));
        const wrapped = await runHolder(['await', '--', ...showMask]);
        expect(wrapped.stdout).toBe(direct.stdout);
        expect(wrapped.stdout).toMatch(/^SigBlk:\s+[0-9a-f]{16}\n$/);
      });

      test.if(perl !== null)('restores the inherited mask exactly: SIGUSR1 stays blocked, SIGTERM and SIGINT do not', async () => {
        const blockOnlyUsr1 = [perl ?? '', '-MPOSIX', '-e', 'sigprocmask(SIG_SETMASK, POSIX::SigSet->new(SIGUSR1)) or die; exec @ARGV or die', '--'];
        const r = await finish(start([...blockOnlyUsr1, ...holderCommand(['await', '--', ...showMask])]));
        expect(r).toMatchObject({ code: 0, stdout: 'SigBlk:\t0000000000000200\n' });
      });

      test.each([
        ['SIGTERM', 143],
        ['SIGINT', 130],
      ] as const)('exits promptly on %s while waiting', async (signal, code) => {
        const child = start(holderCommand(['await', '/nonexistent-dso-ready', '--', '/bin/true']));
        expect(await stillRunningAfter(child, 300)).toBe(true);
        const sent = performance.now();
        child.kill(signal);
        expect((await finish(child)).code).toBe(code);
        expect(performance.now() - sent).toBeLessThan(1000);
      });

      describe.if(canUnsharePid)('as PID 1 of a PID namespace, as in a container', () => {
        test('the program becomes PID 1', async () => {
          const r = await finish(start(['unshare', '--pid', '--fork', ...holderCommand(['await', '--', '/bin/sh', '-c', 'echo $$'])]));
          expect(r).toMatchObject({ code: 0, stdout: '1\n' });
        });

        test('SIGTERM while waiting still stops it (PID 1 ignores signals it does not handle)', async () => {
          const unshare = start(['unshare', '--pid', '--fork', ...holderCommand(['await', '/nonexistent-dso-ready', '--', '/bin/true'])]);
          expect(await stillRunningAfter(unshare, 300)).toBe(true);
          const children = (await readFile(`/proc/${unshare.pid}/task/${unshare.pid}/children`, 'utf8')).trim();
          expect(children).toMatch(/^\d+$/);
          const status = await readFile(`/proc/${children}/status`, 'utf8');
          expect(status).toMatch(/^NSpid:\s+\d+\s+1$/m);
          process.kill(Number(children), 'SIGTERM');
          expect((await finish(unshare)).code).toBe(143);
        });
      });
    });
  });
}

/**
 * Reads FILE in a loop until STOP exists; every read must be SIZE bytes of one repeated value.
 * Prints {reads, bad, versions}. Runs as its own process so it reads while publish renames.
 */
const readerScript = `
const { readFileSync, existsSync, writeFileSync } = require('node:fs');
const [file, stop, ready, sizeText] = process.argv.slice(-4);
const size = Number(sizeText);
let reads = 0;
const bad = [];
const versions = new Set();
for (;;) {
  const done = existsSync(stop);
  const data = readFileSync(file);
  reads++;
  const first = data[0];
  let uniform = data.length === size;
  for (let i = 0; uniform && i < data.length; i += 1) if (data[i] !== first) uniform = false;
  if (!uniform) { if (bad.length < 20) bad.push('length ' + data.length + ' first ' + first + ' last ' + data[data.length - 1]); }
  else versions.add(first);
  if (reads === 1) writeFileSync(ready, '');
  if (done) break;
}
process.stdout.write(JSON.stringify({ reads, bad, versions: [...versions].sort((a, b) => a - b) }));
`;
