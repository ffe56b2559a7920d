// Checks the embedded dso-holder binaries decode to what build.sh produced, and that the amd64 one runs.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HOLDER_SHA256, HOLDER_VERSION, holderBinary, type HolderArch } from '../../../src/docker/holder-binary.ts';

const TMPFS_MAGIC = 0x01021994;
const EM_X86_64 = 62;
const EM_AARCH64 = 183;
const expectedMachine: Record<HolderArch, number> = { amd64: EM_X86_64, arm64: EM_AARCH64 };
const arches: HolderArch[] = ['amd64', 'arm64'];

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

  test('stays tiny', () => {
    expect(binary.byteLength).toBeLessThan(4096);
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

const canRunAmd64 = process.platform === 'linux' && process.arch === 'x64';
const shmIsTmpfs = canRunAmd64 && isTmpfs('/dev/shm');

function isTmpfs(path: string): boolean {
  try {
    return statfsSync(path).type === TMPFS_MAGIC;
  } catch {
    return false;
  }
}

describe.if(canRunAmd64)('amd64 holder on this host', () => {
  let workDir = '';
  let holderPath = '';
  beforeAll(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'dso-holder-test-'));
    holderPath = join(workDir, 'dso-holder');
    await writeFile(holderPath, holderBinary('amd64'));
    await chmod(holderPath, 0o755);
  });
  afterAll(async () => {
    if (workDir !== '') await rm(workDir, { recursive: true, force: true });
  });

  async function runHolder(...args: string[]): Promise<{ code: number; stdout: string }> {
    const child = Bun.spawn([holderPath, ...args], {
      env: { PATH: process.env.PATH ?? '' },
      stdout: 'pipe',
      stderr: 'ignore',
    });
    const [stdout, code] = await Promise.all([new Response(child.stdout).text(), child.exited]);
    return { code, stdout };
  }

  test('version prints the embedded version', async () => {
    expect(await runHolder('version')).toEqual({ code: 0, stdout: `dso-holder ${HOLDER_VERSION}\n` });
  });

  test.if(shmIsTmpfs)('check reports tmpfs for /dev/shm', async () => {
    expect(await runHolder('check', '/dev/shm')).toEqual({ code: 0, stdout: '/dev/shm tmpfs\n' });
  });

  test('check reports a missing path as an error', async () => {
    expect(await runHolder('check', '/nonexistent-dso-holder-path')).toEqual({
      code: 2,
      stdout: '/nonexistent-dso-holder-path error 2\n',
    });
  });
});
