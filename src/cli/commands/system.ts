// `dso system setup|enable|disable|restart|status|logs`: the agent as a systemd service.
// Wires flags to src/system/ (setup's plan and executor, the unit, systemctl) and prints.
import { existsSync } from 'node:fs';
import type { DsoConfig } from '../../config/load.ts';
import { DsoError } from '../../errors.ts';
import type { HostCommands, UnitState } from '../../system/systemctl.ts';
import { SYSTEM_LAYOUT, UNIT_NAME, type SystemLayout } from '../../system/layout.ts';
import { VERSION } from '../../version.ts';
import type { CompletionSpec } from '../completion.ts';
import type { Cli } from '../context.ts';
import type { FlagSpec } from '../flags.ts';
import { warn } from '../output.ts';
import { runSubcommand, type Subcommand } from '../subcommands.ts';

export const SETUP_FLAGS: FlagSpec[] = [
  { name: 'enable-nonroot', type: 'boolean', description: 'Run the agent as the system user dso (created if absent) in the Docker socket\'s group' },
  { name: 'disable-nonroot', type: 'boolean', description: 'Run the agent as root again (the default for a new installation)' },
  { name: 'binary', type: 'string', valueName: 'FILE', description: 'Install FILE as /usr/local/bin/dso (default: the running dso binary)' },
  { name: 'dry-run', type: 'boolean', description: 'Print the steps setup would take, change nothing' },
];

const SETUP_DETAILS = `Installs /usr/local/bin/dso (and the dso-agent link), writes ${SYSTEM_LAYOUT.unitFile}
(a hardened unit, see docs/agent.md), enables and starts it, and waits until the agent answers.
/etc/dso/dso.yaml must exist (\`bootstrap agent\` writes one). Only the steps that change something
run, so setup can be run again at any time: after an upgrade, or to give new credentials.

Credentials: the variables the providers of dso.yaml name (token_env: VAULT_TOKEN, ...) are
taken from setup's environment and stored in ${SYSTEM_LAYOUT.envFile} (mode 0600), never in the
unit or a command line:
  sudo VAULT_TOKEN=... docker dso system setup`;

const SUBS: Record<string, Subcommand> = {
  setup: {
    usage: 'system setup [--enable-nonroot | --disable-nonroot] [--binary FILE] [--dry-run]',
    summary: 'Install the agent as the systemd service dso-agent and start it (as root).',
    details: SETUP_DETAILS,
    flags: SETUP_FLAGS,
    run: (cli, flags) => runSetup(cli, flags),
  },
  enable: {
    usage: 'system enable',
    summary: 'Start the agent now and at every boot (as root).',
    flags: [],
    run: enable,
  },
  disable: {
    usage: 'system disable',
    summary: 'Stop the agent and no longer start it at boot (as root).',
    flags: [],
    run: disable,
  },
  restart: {
    usage: 'system restart',
    summary: 'Restart the agent: dso.yaml and the credentials are read again, the cache starts empty.',
    flags: [],
    run: restart,
  },
  status: {
    usage: 'system status [--json]',
    summary: 'Show the service\'s state (systemd) and the agent\'s own status.',
    details: 'Exits 0 when the service is active, 3 when it is not (like systemctl status).',
    flags: [{ name: 'json', type: 'boolean', description: 'Print JSON' }],
    run: status,
  },
  logs: {
    usage: 'system logs [-f] [-n N]',
    summary: 'Show the agent\'s log (journalctl -u dso-agent).',
    details: 'Reading the system journal may need root or membership of the systemd-journal group.',
    flags: [
      { name: 'follow', short: 'f', type: 'boolean', description: 'Keep printing new lines until interrupted' },
      { name: 'lines', short: 'n', type: 'string', valueName: 'N', description: 'Show the last N lines (default 100)' },
    ],
    run: logs,
  },
};

export const completion: CompletionSpec = { subcommands: SUBS };

export async function run(cli: Cli, argv: string[]): Promise<number> {
  return runSubcommand(cli, argv, {
    name: 'system',
    description: `Manage the DSO agent as the systemd service ${UNIT_NAME} (Cloud Mode on a production host).`,
    subs: SUBS,
  });
}

function requireRoot(cli: Cli, what: string): void {
  if (process.getuid?.() !== 0) {
    throw new DsoError('PERMISSION_DENIED', `${what} must run as root`, { hint: `sudo ${cli.prog} ${what}` });
  }
}

async function commands(cli: Cli): Promise<HostCommands> {
  const { hostCommands } = await import('../../system/systemctl.ts');
  return hostCommands(cli.env);
}

async function systemConfig(cli: Cli, layout: SystemLayout): Promise<DsoConfig> {
  if (!existsSync(layout.configFile)) {
    throw new DsoError('CONFIG_NOT_FOUND', `no ${layout.configFile}: the agent needs its configuration first`, { hint: `sudo ${cli.prog} bootstrap agent writes a commented one` });
  }
  const { loadConfig } = await import('../../config/load.ts');
  return loadConfig(layout.configFile);
}

/** The compiled dso binary this process runs from; undefined when Bun runs the sources. */
function runningBinary(): string | undefined {
  return Bun.main.startsWith('/$bunfs/') ? process.execPath : undefined;
}

/** `system setup`, also the second half of `bootstrap agent`. */
export async function runSetup(cli: Cli, flags: Record<string, unknown>, layout: SystemLayout = SYSTEM_LAYOUT): Promise<number> {
  if (flags['enable-nonroot'] && flags['disable-nonroot']) throw new DsoError('USAGE', '--enable-nonroot and --disable-nonroot contradict each other');
  // Even a dry run reads the credentials file (root's alone) to see what would change.
  requireRoot(cli, 'system setup');
  const config = await systemConfig(cli, layout);
  const binary = (flags.binary as string | undefined) ?? runningBinary();
  if (binary === undefined) {
    throw new DsoError('USAGE', 'setup installs the dso binary it runs from, and this is Bun running the sources', { hint: 'build it (npm run build) and run that, or pass --binary dist/dso-linux-x64' });
  }
  if (!existsSync(binary)) throw new DsoError('USAGE', `--binary ${binary}: no such file`);
  const { observeHost, planSetup, describePlan, executeSetup } = await import('../../system/setup.ts');
  const cmds = await commands(cli);
  const facts = await observeHost(layout, cmds, binary, config.agent.socket.path);
  const nonroot = flags['enable-nonroot'] ? true : flags['disable-nonroot'] ? false : undefined;
  const plan = planSetup(config, facts, layout, { ...(nonroot === undefined ? {} : { nonroot }), binary, version: VERSION, env: cli.env });
  for (const w of plan.warnings) warn(cli, w);
  if (flags['dry-run']) {
    cli.stdout.write(`system setup would (as ${plan.nonroot ? 'user dso' : 'root'}):\n${describePlan(plan)}\n`);
    return 0;
  }
  cli.stderr.write(`Setting up the DSO agent (running as ${plan.nonroot ? 'user dso' : 'root'}):\n`);
  const { unit } = await executeSetup(plan, { cmds, progress: cli.stderr });
  const who = plan.nonroot ? 'user dso' : 'root';
  const lines = [`The DSO agent runs as ${who} (pid ${unit.mainPid ?? '?'}), ${unit.unitFileState === 'enabled' ? 'starts at boot' : unit.unitFileState}, and answers on ${plan.socket}.`];
  if (plan.captured.length) lines.push(`Stored in ${layout.envFile}: ${plan.captured.join(', ')}.`);
  const group = config.agent.socket.group ?? (plan.nonroot ? 'dso' : undefined);
  // Said, not done: joining the group is the permission to read every secret (docs/agent.md).
  const member = cli.env.SUDO_USER && cli.env.SUDO_USER !== 'root' ? cli.env.SUDO_USER : 'NAME';
  lines.push(
    group
      ? `Members of the group ${group} may use the agent, that is read every secret its providers can (sudo usermod -aG ${group} ${member}).`
      : 'Only root may use the agent\'s socket; set agent.socket.group in dso.yaml to let a group use it, then run setup again.',
  );
  lines.push(`Logs: ${cli.prog} system logs -f    Status: ${cli.prog} system status`);
  cli.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

async function requireInstalled(cli: Cli, layout: SystemLayout): Promise<void> {
  if (!existsSync(layout.unitFile)) {
    throw new DsoError('SYSTEMD_FAILED', `the agent is not installed as a service (no ${layout.unitFile})`, { hint: `sudo ${cli.prog} system setup` });
  }
}

async function systemctl(cmds: HostCommands, args: string[]): Promise<void> {
  const r = await cmds.run(['systemctl', ...args]);
  if (r.code !== 0) {
    const { firstLine } = await import('../../system/systemctl.ts');
    throw new DsoError('SYSTEMD_FAILED', `\`systemctl ${args.join(' ')}\` exited with ${r.code}: ${firstLine(r.stderr) || 'no message'}`, { hint: `see \`systemctl status ${UNIT_NAME}\` and \`docker dso system logs\`` });
  }
}

/** Starts (or restarts) and waits for the agent to answer, then says so. */
async function startAndWait(cli: Cli, cmds: HostCommands, args: string[], verb: string): Promise<number> {
  const config = await systemConfig(cli, SYSTEM_LAYOUT);
  const { unitState, recentLog } = await import('../../system/systemctl.ts');
  // A unit that hit its start limit refuses to start until its failure is reset.
  if ((await unitState(cmds)).activeState === 'failed') await systemctl(cmds, ['reset-failed', UNIT_NAME]);
  await systemctl(cmds, args);
  const { waitForAgent } = await import('../../system/wait.ts');
  const outcome = await waitForAgent({ socket: config.agent.socket.path, timeoutMs: 30_000, cmds, progress: cli.stderr });
  if (!outcome.ok) {
    const log = await recentLog(cmds);
    throw new DsoError('SYSTEMD_FAILED', `the agent does not answer: ${outcome.reason}${log ? `\nIts last log lines:\n${log.replace(/^/gm, '    ')}` : ''}`, { hint: `fix the cause (often /etc/dso/dso.yaml or a credential), then \`sudo ${cli.prog} system restart\`` });
  }
  const state = await unitState(cmds);
  cli.stdout.write(`The DSO agent ${verb} (pid ${state.mainPid ?? '?'}) and answers on ${config.agent.socket.path}.\n`);
  return 0;
}

async function enable(cli: Cli): Promise<number> {
  requireRoot(cli, 'system enable');
  await requireInstalled(cli, SYSTEM_LAYOUT);
  const cmds = await commands(cli);
  await systemctl(cmds, ['enable', UNIT_NAME]);
  return startAndWait(cli, cmds, ['start', UNIT_NAME], 'is enabled at boot, runs');
}

async function disable(cli: Cli): Promise<number> {
  requireRoot(cli, 'system disable');
  const cmds = await commands(cli);
  await systemctl(cmds, ['disable', '--now', UNIT_NAME]);
  const { unitState } = await import('../../system/systemctl.ts');
  const state = await unitState(cmds);
  cli.stdout.write(`The DSO agent is stopped (${state.activeState}) and ${state.unitFileState || 'not installed'}: it will not start at boot.\n`);
  return 0;
}

async function restart(cli: Cli): Promise<number> {
  requireRoot(cli, 'system restart');
  await requireInstalled(cli, SYSTEM_LAYOUT);
  const cmds = await commands(cli);
  return startAndWait(cli, cmds, ['restart', UNIT_NAME], 'restarted');
}

export interface SystemStatus {
  unit: { name: string; installed: boolean; load: string; active: string; sub: string; enabled: string; mainPid?: number; since?: string; result: string; restarts: number };
  agent: { socket: string; reachable: boolean; error?: string; status?: Record<string, unknown> };
}

async function status(cli: Cli, flags: Record<string, unknown>): Promise<number> {
  const cmds = await commands(cli);
  const { unitState } = await import('../../system/systemctl.ts');
  let state: UnitState;
  try {
    state = await unitState(cmds);
  } catch (e) {
    throw new DsoError('SYSTEMD_FAILED', `cannot ask systemd about ${UNIT_NAME}: ${(e as Error).message}`, { hint: 'is this a host with systemd? Without it, run `dso agent` under your own supervisor' });
  }
  const { agentSocketPath, DEFAULT_AGENT_SOCKET } = await import('../../config/find.ts');
  const socket = await agentSocketPath(cli.env).catch(() => DEFAULT_AGENT_SOCKET);
  const report: SystemStatus = {
    unit: {
      name: UNIT_NAME,
      installed: state.loadState !== 'not-found',
      load: state.loadState,
      active: state.activeState,
      sub: state.subState,
      enabled: state.unitFileState,
      ...(state.mainPid ? { mainPid: state.mainPid } : {}),
      ...(state.since ? { since: state.since } : {}),
      result: state.result,
      restarts: state.restarts,
    },
    agent: { socket, reachable: false },
  };
  try {
    const { agentStatus } = await import('../../agent/client.ts');
    report.agent = { socket, reachable: true, status: await agentStatus(socket) };
  } catch (e) {
    report.agent.error = e instanceof Error ? e.message : String(e);
  }
  cli.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : renderStatus(report, cli.prog));
  return state.activeState === 'active' ? 0 : 3;
}

export function renderStatus(r: SystemStatus, prog: string): string {
  const u = r.unit;
  const out: string[] = [];
  if (!u.installed) out.push(`${u.name}: not installed (run \`sudo ${prog} system setup\`)`);
  else {
    out.push(`${u.name}: ${u.active} (${u.sub})${u.since && u.active === 'active' ? ` since ${u.since}` : ''}, ${u.enabled || 'unknown'} at boot`);
    if (u.mainPid) out.push(`  Main PID: ${u.mainPid}`);
    if (u.restarts) out.push(`  Restarts: ${u.restarts}`);
    if (u.result && u.result !== 'success') out.push(`  Last result: ${u.result}`);
  }
  if (r.agent.reachable) {
    const s = (r.agent.status ?? {}) as { version?: string; uptimeSeconds?: number; providers?: Array<{ name: string; state: string; lastError?: string }> };
    const providers = s.providers ?? [];
    out.push(`Agent: answers on ${r.agent.socket} (version ${s.version ?? '?'}, up ${Math.round((s.uptimeSeconds ?? 0) / 60)} min)`);
    out.push(`  Providers: ${providers.length ? providers.map((p) => `${p.name} ${p.lastError ? 'unhealthy' : p.state}`).join(', ') : 'none configured'}`);
  } else {
    out.push(`Agent: not reachable on ${r.agent.socket}`, `  ${r.agent.error ?? ''}`);
  }
  return `${out.join('\n')}\n`;
}

async function logs(cli: Cli, flags: Record<string, unknown>): Promise<number> {
  const raw = (flags.lines as string | undefined) ?? '100';
  if (!/^\d{1,7}$/.test(raw)) throw new DsoError('USAGE', `-n takes a number of lines, like -n 50`);
  const cmds = await commands(cli);
  const argv = ['journalctl', '--no-pager', '-u', UNIT_NAME, '-n', raw, ...(flags.follow ? ['-f'] : [])];
  const code = await cmds.interactive(argv);
  if (code === 127) throw new DsoError('SYSTEMD_FAILED', 'journalctl was not found', { hint: 'is this a host with systemd?' });
  return code;
}
