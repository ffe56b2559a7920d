// How DSO runs systemctl, journalctl and useradd: a narrow interface (so tests put a fake in its
// place) and the real one, which starts each program with a fixed PATH and environment of its
// own. Setup runs as root: the caller's PATH, and any credential in its environment, stay out.
import { UNIT_NAME } from './layout.ts';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface HostCommands {
  /** Runs a command to completion, output captured. */
  run(argv: string[]): Promise<CommandResult>;
  /** Runs a command on the caller's terminal (journalctl -f), returning its exit code. */
  interactive(argv: string[]): Promise<number>;
}

const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function hostCommands(callerEnv: Readonly<Record<string, string | undefined>>): HostCommands {
  // Only what these programs need to behave and to look right on a terminal.
  const env: Record<string, string> = { PATH: SYSTEM_PATH, LC_ALL: 'C.UTF-8', SYSTEMD_PAGER: '', SYSTEMD_COLORS: '0' };
  const terminalEnv: Record<string, string> = { PATH: SYSTEM_PATH, SYSTEMD_PAGER: '' };
  for (const name of ['TERM', 'LANG', 'NO_COLOR', 'SYSTEMD_COLORS']) {
    const v = callerEnv[name];
    if (v !== undefined) terminalEnv[name] = v;
  }
  return {
    async run(argv) {
      let proc;
      try {
        proc = Bun.spawn(argv, { env, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' });
      } catch (e) {
        return { code: 127, stdout: '', stderr: `${argv[0]}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
      }
      const [code, stdout, stderr] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
      return { code, stdout, stderr };
    },
    async interactive(argv) {
      let proc;
      try {
        proc = Bun.spawn(argv, { env: terminalEnv, stdin: 'inherit', stdout: 'inherit', stderr: 'inherit' });
      } catch {
        return 127;
      }
      // Ctrl-C reaches journalctl through the terminal's process group; we only wait for it.
      const ignore = () => {};
      process.on('SIGINT', ignore);
      try {
        return await proc.exited;
      } finally {
        process.off('SIGINT', ignore);
      }
    },
  };
}

export interface UnitState {
  /** loaded, not-found, ... */
  loadState: string;
  /** active, inactive, failed, activating, ... */
  activeState: string;
  subState: string;
  /** enabled, disabled, ... ('' when not installed) */
  unitFileState: string;
  mainPid?: number;
  /** When it last became active, as systemctl prints it. */
  since?: string;
  /** success, exit-code, start-limit-hit, ... */
  result: string;
  restarts: number;
}

const SHOW_PROPERTIES = ['LoadState', 'ActiveState', 'SubState', 'UnitFileState', 'MainPID', 'ActiveEnterTimestamp', 'Result', 'NRestarts'];

/** Parses `systemctl show -p ...` output (KEY=VALUE lines). */
export function parseShow(text: string): UnitState {
  const p = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) p.set(line.slice(0, i), line.slice(i + 1));
  }
  const pid = Number(p.get('MainPID') ?? '0');
  const since = p.get('ActiveEnterTimestamp') ?? '';
  return {
    loadState: p.get('LoadState') ?? 'unknown',
    activeState: p.get('ActiveState') ?? 'unknown',
    subState: p.get('SubState') ?? 'unknown',
    unitFileState: p.get('UnitFileState') ?? '',
    ...(Number.isInteger(pid) && pid > 0 ? { mainPid: pid } : {}),
    ...(since && since !== 'n/a' ? { since } : {}),
    result: p.get('Result') ?? '',
    restarts: Number(p.get('NRestarts') ?? '0') || 0,
  };
}

export async function unitState(cmds: HostCommands): Promise<UnitState> {
  const r = await cmds.run(['systemctl', 'show', '--no-pager', ...SHOW_PROPERTIES.flatMap((n) => ['-p', n]), UNIT_NAME]);
  if (r.code !== 0) throw new Error(`systemctl show ${UNIT_NAME} failed (exit ${r.code}): ${firstLine(r.stderr)}`);
  return parseShow(r.stdout);
}

/** The last lines the agent logged, for an error message when it does not come up. */
export async function recentLog(cmds: HostCommands, lines = 15): Promise<string> {
  const r = await cmds.run(['journalctl', '--no-pager', '-o', 'cat', '-u', UNIT_NAME, '-n', String(lines)]);
  return r.code === 0 ? r.stdout.trimEnd() : '';
}

export function firstLine(text: string): string {
  return text.trim().split('\n')[0] ?? '';
}
