// The process guard: a non-dumpable process keeps a process of its own user out of its
// environment and memory (and one that did not call the guard does not), and a root process that
// drops privileges ends with every thread as the account, no supplementary groups, no
// capabilities and no_new_privs. Each case runs in a child process: the test runner itself must
// stay root and dumpable.
import { afterEach, describe, expect, test } from 'bun:test';
import { dropPrivileges, identityProblem, parseStatus } from '../../../src/system/process-guard.ts';

const CHILD = new URL('../../fixtures/system/guarded.ts', import.meta.url).pathname;
const NOBODY = 65534;
const PATH = process.env.PATH ?? '/usr/bin:/bin';
const asNobody = (argv: string[], groups: number[] = []) => ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, groups.length ? `--groups=${groups.join(',')}` : '--clear-groups', ...argv];
const root = process.getuid?.() === 0;

const children: Array<ReturnType<typeof Bun.spawn>> = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

interface Seen {
  outcome: { ok: boolean; why?: string } | null;
  dumpable: { state: string };
  threads: ReturnType<typeof parseStatus>[];
  main: ReturnType<typeof parseStatus>;
}

/** Starts the fixture with `argv` (wrapped by `wrap`) and its first line of output. */
async function start(args: string[], wrap: (argv: string[]) => string[], env: Record<string, string> = {}): Promise<{ pid: number; seen: Seen }> {
  const child = Bun.spawn(wrap([process.execPath, CHILD, ...args]), { env: { PATH, ...env }, stdin: 'pipe', stdout: 'pipe', stderr: 'inherit' });
  children.push(child);
  const reader = child.stdout.getReader();
  let text = '';
  while (!text.includes('\n')) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the child ended before it answered: ${text}`);
    text += new TextDecoder().decode(value);
  }
  return { pid: child.pid, seen: JSON.parse(text) as Seen };
}

/** What a process of user nobody gets reading /proc/PID/WHAT: its text, or the error. */
async function readAsNobody(pid: number, what: string): Promise<string> {
  const r = Bun.spawnSync(asNobody(['dd', `if=/proc/${pid}/${what}`, 'bs=4096', 'count=1', 'status=none']), { env: { PATH }, stdout: 'pipe', stderr: 'pipe' });
  return r.exitCode === 0 ? r.stdout.toString('latin1') : `error: ${r.stderr.toString()}`;
}

describe.if(root && process.platform === 'linux')('non-dumpable', () => {
  test('another process of the same user can read the environment and memory of a plain process, not of a guarded one', async () => {
    const canary = 'guard-canary-value-2291';
    const plain = await start(['plain'], (a) => asNobody(a), { CANARY: canary });
    expect(plain.seen.dumpable.state).toBe('dumpable');
    expect(await readAsNobody(plain.pid, 'environ')).toContain(canary);

    const guarded = await start(['guard'], (a) => asNobody(a), { CANARY: canary });
    expect(guarded.seen.outcome).toEqual({ ok: true });
    expect(guarded.seen.dumpable.state).toBe('non-dumpable');
    for (const what of ['environ', 'mem', 'maps', 'fd/0']) expect(await readAsNobody(guarded.pid, what)).toContain('Permission denied');
    // The command line stays readable by anyone, which is why DSO never puts a secret in argv.
    expect(await readAsNobody(guarded.pid, 'cmdline')).toContain('guard');
  });
});

describe.if(root && process.platform === 'linux')('dropping privileges', () => {
  test('every thread ends as the account, without supplementary groups or capabilities, with no_new_privs, non-dumpable', async () => {
    // Started with supplementary groups, as a root service in the docker group would be.
    const { seen } = await start(['drop', `${NOBODY}:${NOBODY}`], (a) => ['setpriv', '--groups=10,20', ...a]);
    expect(seen.outcome).toEqual({ ok: true });
    expect(seen.threads.length).toBeGreaterThan(1);
    for (const t of seen.threads) {
      expect(identityProblem(t, { uid: NOBODY, gid: NOBODY })).toBeUndefined();
      expect(t.groups).toEqual([]);
      expect(t.caps).toEqual({ CapPrm: '0000000000000000', CapEff: '0000000000000000', CapAmb: '0000000000000000' });
    }
    // no_new_privs: nothing it executes gains privileges, setuid programs included.
    expect(seen.main.noNewPrivs).toBe(true);
    // The kernel makes a process non-dumpable when its ids change.
    expect(seen.dumpable.state).toBe('non-dumpable');
  });

  test('a process that is not root cannot drop, and says why', async () => {
    const { seen } = await start(['drop', '4000001:4000001'], (a) => asNobody(a));
    expect(seen.outcome).toMatchObject({ ok: false });
    expect(seen.outcome!.why).toContain('setgroups(0) failed (errno 1 EPERM)');
  });
});

// Runs argv with memory that is written never executed (PR_SET_MDWE, as systemd's
// MemoryDenyWriteExecute=yes does): no JIT, hence no bun:ffi.
const withoutJit = (argv: string[]) => ['/usr/bin/python3', '-c', 'import ctypes,os,sys\nif ctypes.CDLL("libc.so.6").prctl(65, 1, 0, 0, 0) != 0: sys.exit("PR_SET_MDWE failed")\nos.execv(sys.argv[1], sys.argv[1:])', ...argv];

describe.if(process.platform === 'linux')('without bun:ffi (MemoryDenyWriteExecute)', () => {
  test('the guard says it could not, rather than pretending', async () => {
    const { seen } = await start(['guard'], withoutJit);
    expect(seen.outcome).toMatchObject({ ok: false, unsupported: false });
    expect(seen.outcome!.why).toContain('bun:ffi is not available');
    expect(seen.dumpable.state).toBe('unknown');
  });

  test('the CLI warns; a provider process refuses to serve', async () => {
    const main = new URL('../../../src/cli/main.ts', import.meta.url).pathname;
    const cli = Bun.spawnSync(withoutJit([process.execPath, main, 'version']), { env: { PATH }, stdout: 'pipe', stderr: 'pipe' });
    expect(cli.exitCode).toBe(0);
    expect(cli.stderr.toString()).toContain("dso: warning: bun:ffi is not available");
    expect(cli.stderr.toString()).toContain("other processes of this user can read DSO's environment and memory");
    const { ProviderHost } = await import('../../../src/providers/host.ts');
    const h = new ProviderHost({
      settings: { name: 'p', kind: 'test', isolation: 'process', timeoutMs: 5000, env: [], optionalEnv: [], fixedEnv: {}, config: {} },
      env: {},
      maxBytes: 1024,
      processCommand: withoutJit([process.execPath, new URL('../../fixtures/providers/process.ts', import.meta.url).pathname]),
    });
    try {
      const e = await h.get('x').catch((err: Error) => err);
      expect(e).toMatchObject({ kind: 'config' });
      expect((e as Error).message).toContain('the provider process could not make itself non-dumpable: bun:ffi is not available');
    } finally {
      await h.close();
    }
  });
});

test('root is never a target: refused before anything changes', () => {
  expect(() => dropPrivileges({ uid: 0, gid: 0 })).toThrow('not an unprivileged uid and gid');
  expect(() => dropPrivileges({ uid: -1, gid: 5 })).toThrow('not an unprivileged uid and gid');
});

test('/proc/PID/status: an empty Groups line is no groups, not the next line', () => {
  const status = 'Name:\tbun\nUid:\t65534\t65534\t65534\t65534\nGid:\t65534\t65534\t65534\t65534\nFDSize:\t64\nGroups:\t\nNStgid:\t20094\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\n';
  const s = parseStatus(status);
  expect(s).toEqual({ uids: [65534, 65534, 65534, 65534], gids: [65534, 65534, 65534, 65534], groups: [], caps: { CapPrm: '0000000000000000', CapEff: '0000000000000000', CapAmb: '0000000000000000' }, noNewPrivs: true });
  expect(identityProblem(s, { uid: 65534, gid: 65534 })).toBeUndefined();
  expect(identityProblem({ ...s, groups: [27] }, { uid: 65534, gid: 65534 })).toBe('supplementary groups 27 remain');
  expect(identityProblem({ ...s, caps: { ...s.caps, CapEff: '0000000000200000' } }, { uid: 65534, gid: 65534 })).toBe('CapEff is 0000000000200000');
  expect(identityProblem({ ...s, uids: [65534, 0, 65534, 65534] }, { uid: 65534, gid: 65534 })).toBe('uids are 65534 0 65534 65534, not 65534');
});
