// Keeps other processes out of DSO's memory and environment. A non-dumpable process
// (prctl PR_SET_DUMPABLE 0) refuses /proc/PID/environ, /proc/PID/mem and ptrace to every
// process without CAP_SYS_PTRACE, its own user's included: the CLI, the agent and each provider
// process make themselves so first thing. A provider process started by root then drops to the
// provider's own user (no supplementary groups, no capabilities, no_new_privs) before it is given
// any credential. Linux only, through libc (src/system/libc.ts); elsewhere it says it cannot.
import { readdirSync, readFileSync } from 'node:fs';
import { openLibc, type Libc } from './libc.ts';

const PR_GET_DUMPABLE = 3;
const PR_SET_DUMPABLE = 4;
const PR_SET_NO_NEW_PRIVS = 38;

/** An account to run as: what dso.yaml's `user:` resolves to. */
export interface RunAs {
  uid: number;
  gid: number;
}

export type GuardOutcome = { ok: true } | { ok: false; unsupported: boolean; why: string };

const PRCTL = { prctl: { args: ['i32', 'u64', 'u64', 'u64', 'u64'], returns: 'i32' } } as const;
const SET_IDS = {
  ...PRCTL,
  setgroups: { args: ['u64', 'ptr'], returns: 'i32' },
  setresgid: { args: ['u32', 'u32', 'u32'], returns: 'i32' },
  setresuid: { args: ['u32', 'u32', 'u32'], returns: 'i32' },
} as const;

// Each binding costs a compiled trampoline: the CLI, which only needs prctl, binds only that.
let prctlOnly: Libc<typeof PRCTL> | { why: string } | undefined;
let setIds: Libc<typeof SET_IDS> | { why: string } | undefined;

function unsupported(): { why: string } | undefined {
  return process.platform === 'linux' ? undefined : { why: `${process.platform} has no prctl; DSO cannot keep processes of the same user out of its memory there` };
}

function linuxLibc(): Libc<typeof PRCTL> | { why: string } {
  return unsupported() ?? (prctlOnly ??= openLibc(PRCTL));
}

const ERRNO_NAMES: Record<number, string> = { 1: 'EPERM', 14: 'EFAULT', 22: 'EINVAL', 38: 'ENOSYS' };
const errnoText = (n: number) => `errno ${n}${ERRNO_NAMES[n] ? ` ${ERRNO_NAMES[n]}` : ''}`;

/**
 * Makes this process non-dumpable, for its whole life (until it executes another program).
 * Never throws: the caller decides whether going on without it is acceptable.
 */
export function makeNonDumpable(): GuardOutcome {
  const c = linuxLibc();
  if ('why' in c) return { ok: false, unsupported: process.platform !== 'linux', why: c.why };
  if (c.symbols.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) !== 0) return { ok: false, unsupported: false, why: `prctl(PR_SET_DUMPABLE, 0) failed (${errnoText(c.errno())})` };
  if (c.symbols.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) !== 0) return { ok: false, unsupported: false, why: 'prctl(PR_SET_DUMPABLE, 0) returned success but the process is still dumpable' };
  return { ok: true };
}

/** What the kernel says about this process now (for `doctor`). */
export function dumpableState(): { state: 'non-dumpable' | 'dumpable' | 'unknown'; why?: string } {
  const c = linuxLibc();
  if ('why' in c) return { state: 'unknown', why: c.why };
  const r = c.symbols.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
  if (r < 0) return { state: 'unknown', why: `prctl(PR_GET_DUMPABLE) failed (${errnoText(c.errno())})` };
  return { state: r === 0 ? 'non-dumpable' : 'dumpable' };
}

/**
 * Turns this root process into `to`: no supplementary groups, real, effective and saved ids all
 * `to`, hence no capabilities (the kernel clears them when every uid leaves 0), and no_new_privs,
 * so that nothing it executes can gain privileges (setuid programs, file capabilities). glibc and
 * musl apply the id changes to every thread. Checked afterwards on every thread, as the kernel
 * reports it; throws an Error saying what did not happen.
 */
export function dropPrivileges(to: RunAs): void {
  if (!validId(to.uid) || !validId(to.gid) || to.uid === 0) throw new Error(`cannot run as ${to.uid}:${to.gid}: not an unprivileged uid and gid`);
  const c = unsupported() ?? (setIds ??= openLibc(SET_IDS));
  if ('why' in c) throw new Error(`cannot drop privileges: ${c.why}`);
  const call = (what: string, r: number) => {
    if (r !== 0) throw new Error(`cannot drop privileges: ${what} failed (${errnoText(c.errno())})`);
  };
  call('setgroups(0)', c.symbols.setgroups(0, null));
  call(`setresgid(${to.gid})`, c.symbols.setresgid(to.gid, to.gid, to.gid));
  call(`setresuid(${to.uid})`, c.symbols.setresuid(to.uid, to.uid, to.uid));
  call('prctl(PR_SET_NO_NEW_PRIVS)', c.symbols.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
  const wrong = threadsNotRunningAs(to);
  if (wrong) throw new Error(`privileges were not dropped: ${wrong}`);
}

function validId(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n < 0xffffffff;
}

/** Why some thread of this process is not `to` without privileges, or undefined when all are. */
function threadsNotRunningAs(to: RunAs): string | undefined {
  let tasks: string[];
  try {
    tasks = readdirSync('/proc/self/task');
  } catch (e) {
    return `cannot list /proc/self/task (${(e as NodeJS.ErrnoException).code ?? 'error'})`;
  }
  for (const task of tasks) {
    let text: string;
    try {
      text = readFileSync(`/proc/self/task/${task}/status`, 'latin1');
    } catch {
      continue; // the thread ended
    }
    const why = identityProblem(parseStatus(text), to);
    if (why) return `thread ${task}: ${why}`;
  }
  const own = parseStatus(readFileSync('/proc/self/status', 'latin1'));
  return own.noNewPrivs ? undefined : 'no_new_privs is not set';
}

export interface StatusIdentity {
  uids: number[];
  gids: number[];
  groups: number[];
  /** CapPrm, CapEff, CapAmb, as the hex the kernel prints ('' when the kernel has no such line). */
  caps: Record<string, string>;
  noNewPrivs: boolean;
}

/** The identity lines of a /proc/PID/status. */
export function parseStatus(text: string): StatusIdentity {
  // [ \t]*, not \s*: an empty field (Groups: with none) must not run into the next line.
  const field = (name: string) => text.match(new RegExp(`^${name}:[ \\t]*(.*)$`, 'm'))?.[1]?.trim() ?? '';
  const numbers = (s: string) => s.split(/\s+/).filter(Boolean).map(Number);
  const caps: Record<string, string> = {};
  // CapInh is left out: without a permitted set, no_new_privs keeps it from ever granting anything.
  for (const name of ['CapPrm', 'CapEff', 'CapAmb']) caps[name] = field(name);
  return { uids: numbers(field('Uid')), gids: numbers(field('Gid')), groups: numbers(field('Groups')), caps, noNewPrivs: field('NoNewPrivs') === '1' };
}

/** Why `s` is not exactly `to` with no groups and no capabilities, or undefined. */
export function identityProblem(s: StatusIdentity, to: RunAs): string | undefined {
  if (s.uids.length !== 4 || s.uids.some((u) => u !== to.uid)) return `uids are ${s.uids.join(' ')}, not ${to.uid}`;
  if (s.gids.length !== 4 || s.gids.some((g) => g !== to.gid)) return `gids are ${s.gids.join(' ')}, not ${to.gid}`;
  if (s.groups.length > 0) return `supplementary groups ${s.groups.join(' ')} remain`;
  for (const [name, hex] of Object.entries(s.caps)) if (hex !== '' && !/^0+$/.test(hex)) return `${name} is ${hex}`;
  return undefined;
}
