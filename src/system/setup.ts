// `system setup`, as observe -> plan -> execute: what the host has now (files, user, unit state),
// the steps that bring it to the wanted state (plain data: printed by --dry-run, compared by
// tests), and an executor that carries no decisions. Only the steps that change something are
// planned, so running setup again is idempotent; when a step fails, the error says which steps
// were done, which were not, and how to undo or retry.
import { existsSync, lstatSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Output } from '../cli/context.ts';
import type { DsoConfig } from '../config/load.ts';
import { DsoError } from '../errors.ts';
import { UNIX_ADDRESS } from '../config/agent.ts';
import { writeFileAtomic } from '../vault/atomic-write.ts';
import { groupNameOf, readAccounts, useraddArgs, userNameOf, type Accounts } from './accounts.ts';
import { assignedNames, mergeEnvFile, providerVariables } from './env-file.ts';
import { copyFileAtomic, makeDirectory, sameContent, symlinkAtomic } from './files.ts';
import { AGENT_USER, UNIT_NAME, type SystemLayout } from './layout.ts';
import { firstLine, recentLog, unitState, type HostCommands, type UnitState } from './systemctl.ts';
import { renderUnit, socketPlacement, UNIT_HEADER } from './unit.ts';
import { agentHealthy, waitForAgent } from './wait.ts';

export interface FileFacts {
  uid: number;
  gid: number;
  mode: number;
  isDirectory: boolean;
}

/** What setup needs to know about the host, gathered in one place (observeHost). */
export interface HostFacts {
  uid: number;
  /** systemd is PID 1. */
  systemd: boolean;
  /** The installed `dso` holds the same bytes as the binary to install. */
  sameBinary: boolean;
  binaryInstalled: boolean;
  /** Where binDir/dso-agent points, when it is a link. */
  agentLink?: string;
  unitText?: string;
  envFile?: { text: string; mode: number };
  accounts: Accounts;
  dockerSocketGid?: number;
  nologinShell: string;
  unit: UnitState;
  /** An agent answers on the configured socket now. */
  agentAnswers: boolean;
  /** /bin/kill exists (procps, util-linux): the unit's ExecReload needs it. */
  killExists: boolean;
  stat(path: string): FileFacts | undefined;
}

export interface SetupOptions {
  /** true: run as the `dso` user; false: as root; undefined: as the installed unit does (root for a new one). */
  nonroot?: boolean;
  /** The file installed as binDir/dso. */
  binary: string;
  version: string;
  /** Setup's own environment: the providers' variables are taken from it. */
  env: Readonly<Record<string, string | undefined>>;
}

export type SetupAction =
  | { kind: 'run'; argv: string[] }
  | { kind: 'mkdir'; path: string; mode: number }
  | { kind: 'copy'; from: string; to: string; mode: number }
  | { kind: 'symlink'; path: string; target: string }
  /** `secret`: the text holds credentials; it is never printed. */
  | { kind: 'write'; path: string; mode: number; text: string; secret: boolean }
  | { kind: 'wait'; socket: string };

export interface SetupStep {
  /** What it does, in words ("install /usr/local/bin/dso"). */
  title: string;
  action: SetupAction;
  /** A shell command that takes it back, when there is one worth giving. */
  undo?: string;
}

export interface SetupPlan {
  steps: SetupStep[];
  warnings: string[];
  /** Variables written to the environment file by this run (names only). */
  captured: string[];
  /** Required variables in neither setup's environment nor the file. */
  missing: Array<{ name: string; providers: string[] }>;
  nonroot: boolean;
  socket: string;
  unitText: string;
}

export async function observeHost(layout: SystemLayout, cmds: HostCommands, binary: string, socket: string): Promise<HostFacts> {
  const installed = join(layout.binDir, 'dso');
  const link = join(layout.binDir, 'dso-agent');
  let agentLink: string | undefined;
  try {
    if (lstatSync(link).isSymbolicLink()) agentLink = readlinkSync(link);
  } catch {}
  let envFile: HostFacts['envFile'];
  if (existsSync(layout.envFile)) envFile = { text: readFileSync(layout.envFile, 'utf8'), mode: statSync(layout.envFile).mode & 0o777 };
  const systemd = existsSync(layout.systemdMarker);
  return {
    uid: process.getuid?.() ?? -1,
    systemd,
    sameBinary: sameContent(binary, installed),
    binaryInstalled: existsSync(installed),
    ...(agentLink === undefined ? {} : { agentLink }),
    ...(existsSync(layout.unitFile) ? { unitText: readFileSync(layout.unitFile, 'utf8') } : {}),
    ...(envFile ? { envFile } : {}),
    accounts: readAccounts(layout.passwdFile, layout.groupFile),
    ...(existsSync(layout.dockerSocket) ? { dockerSocketGid: statSync(layout.dockerSocket).gid } : {}),
    nologinShell: ['/usr/sbin/nologin', '/sbin/nologin'].find((p) => existsSync(p)) ?? '/bin/false',
    unit: systemd ? await unitState(cmds) : { loadState: 'not-found', activeState: 'inactive', subState: 'dead', unitFileState: '', result: 'success', restarts: 0 },
    agentAnswers: await agentHealthy(socket),
    killExists: existsSync('/bin/kill'),
    stat: (p) => {
      try {
        const s = statSync(p);
        return { uid: s.uid, gid: s.gid, mode: s.mode & 0o7777, isDirectory: s.isDirectory() };
      } catch {
        return undefined;
      }
    },
  };
}

/** The steps that bring the host to the wanted state; throws before any change when that cannot work. */
export function planSetup(config: DsoConfig, facts: HostFacts, layout: SystemLayout, options: SetupOptions): SetupPlan {
  if (facts.uid !== 0) {
    throw new DsoError('PERMISSION_DENIED', 'system setup changes /etc, /usr/local/bin and systemd: it must run as root', { hint: 'run it with sudo, giving the providers\' variables on the same line: sudo VAULT_TOKEN=... docker dso system setup' });
  }
  if (!facts.systemd) {
    throw new DsoError('SYSTEMD_FAILED', `systemd is not running on this host (no ${layout.systemdMarker})`, { hint: 'run `dso agent --config /etc/dso/dso.yaml` under the supervisor this host uses' });
  }
  const warnings: string[] = [];
  const steps: SetupStep[] = [];
  const nonroot = options.nonroot ?? (facts.unitText !== undefined && new RegExp(`^User=${AGENT_USER}$`, 'm').test(facts.unitText));
  if (options.nonroot === undefined && nonroot) warnings.push(`the installed unit runs the agent as ${AGENT_USER}: kept (--disable-nonroot runs it as root)`);

  // Every unix socket the agent makes: its API, the admin socket, metrics on unix:/PATH.
  const sockets = agentSockets(config);
  const placements = sockets.map((s) => socketPlacement(s.path, layout.runDir, s.key === 'agent.metrics' ? 'agent.metrics.address' : `${s.key}.path`));
  const placement = {
    runtimeDirectories: [...new Set(placements.flatMap((p) => p.runtimeDirectories))],
    readWritePaths: [...new Set(placements.flatMap((p) => p.readWritePaths))],
  };
  for (const { key, group, who } of sockets) {
    if (group !== undefined && !facts.accounts.groups.has(group)) {
      throw new DsoError('CONFIG_INVALID', `${key}.group: there is no group "${group}" on this host`, { hint: `create it (groupadd ${group}) and add the people who may ${who}, or remove ${key}.group` });
    }
  }
  const socketGroups = sockets.flatMap((s) => (s.group === undefined ? [] : [s.group]));
  const groups: string[] = [];
  if (nonroot) {
    const docker = dockerGroup(facts);
    if (docker) groups.push(docker);
    else warnings.push(`no group owns ${layout.dockerSocket} and there is no "docker" group: the agent (user ${AGENT_USER}) cannot reach Docker; run setup again once Docker is installed`);
  }
  groups.push(...socketGroups);

  // The user comes first: the unit names it, and systemd refuses to start a unit whose user is missing.
  const existingUser = facts.accounts.users.get(AGENT_USER);
  const userCreated = nonroot && !existingUser;
  if (userCreated) {
    const groupExists = facts.accounts.groups.has(AGENT_USER);
    steps.push({ title: `create the system user ${AGENT_USER} (no home, no login)`, action: { kind: 'run', argv: useraddArgs(AGENT_USER, facts.nologinShell, groupExists) }, undo: groupExists ? `userdel ${AGENT_USER}` : `userdel ${AGENT_USER} && (groupdel ${AGENT_USER} 2>/dev/null || true)` });
  }
  const agentGroup = (existingUser && groupNameOf(facts.accounts, existingUser.gid)) || AGENT_USER;

  for (const dir of placement.readWritePaths) {
    warnings.push(`a socket of the agent is outside /run: the unit lets the agent write ${dir} (ReadWritePaths); /run/dso/dso.sock needs no such exception`);
    if (!facts.stat(dir)) steps.push({ title: `create ${dir} for the agent's socket`, action: { kind: 'mkdir', path: dir, mode: 0o755 }, undo: `rmdir ${dir}` });
  }

  const installed = join(layout.binDir, 'dso');
  const binaryChanged = !facts.sameBinary;
  if (binaryChanged) {
    steps.push({ title: `install ${installed}`, action: { kind: 'copy', from: options.binary, to: installed, mode: 0o755 }, ...(facts.binaryInstalled ? {} : { undo: `rm ${installed}` }) });
  }
  const agentPath = join(layout.binDir, 'dso-agent');
  if (facts.agentLink !== 'dso') steps.push({ title: `link ${agentPath} -> dso`, action: { kind: 'symlink', path: agentPath, target: 'dso' }, undo: `rm ${agentPath}` });

  // Provider credentials: only the variables the providers name, from setup's own environment.
  const vars = providerVariables(config);
  const updates = new Map<string, string>();
  for (const name of vars.names) {
    const value = options.env[name];
    if (value !== undefined && value !== '') updates.set(name, value);
  }
  const inFile = facts.envFile ? assignedNames(facts.envFile.text) : new Set<string>();
  const missing = [...vars.required].filter(([n]) => !updates.has(n) && !inFile.has(n)).map(([name, providers]) => ({ name, providers }));
  for (const m of missing) warnings.push(`${m.name} (needed by ${m.providers.join(', ')}) is neither in setup's environment nor in ${layout.envFile}: that provider will fail; run \`sudo ${m.name}=... docker dso system setup\` again`);
  const envText = mergeEnvFile(facts.envFile?.text, updates);
  const envChanged = envText !== undefined && (envText !== facts.envFile?.text || facts.envFile.mode !== 0o600);
  if (facts.envFile && facts.envFile.mode !== 0o600) warnings.push(`${layout.envFile} was mode 0${facts.envFile.mode.toString(8)}; it is rewritten with mode 0600`);
  if (envText !== undefined && envChanged) {
    steps.push({ title: `write ${layout.envFile} (mode 0600${updates.size ? `: ${[...updates.keys()].join(', ')}` : ''})`, action: { kind: 'write', path: layout.envFile, mode: 0o600, text: envText, secret: true }, ...(facts.envFile ? {} : { undo: `rm ${layout.envFile}` }) });
  }

  for (const p of vars.readHome) warnings.push(`provider ${p} finds its files under $HOME, which the unit hides (ProtectHome=yes): give it a path outside /home and /root`);
  warnings.push(...pathWarnings(config, facts, nonroot ? [agentGroup, ...groups] : undefined));

  const unitText = renderUnit({
    version: options.version,
    agentPath,
    configPath: layout.configFile,
    envFile: layout.envFile,
    runtimeDirectories: placement.runtimeDirectories,
    readWritePaths: placement.readWritePaths,
    ...(nonroot ? { user: { name: AGENT_USER, group: agentGroup } } : {}),
    supplementaryGroups: groups,
    chownSocket: socketGroups.length > 0,
    stopTimeoutSec: Math.ceil(config.agent.rotation.timeout / 1000) + 30,
  });
  const unitChanged = unitText !== facts.unitText;
  if (facts.unitText !== undefined && unitChanged && !facts.unitText.includes(UNIT_HEADER)) warnings.push(`${layout.unitFile} was not written by DSO; it is replaced (local changes belong in a drop-in: systemctl edit dso-agent)`);
  if (unitChanged) {
    steps.push({ title: `write ${layout.unitFile}`, action: { kind: 'write', path: layout.unitFile, mode: 0o644, text: unitText, secret: false }, ...(facts.unitText === undefined ? { undo: `rm ${layout.unitFile} && systemctl daemon-reload` } : {}) });
    steps.push({ title: 'systemctl daemon-reload', action: { kind: 'run', argv: ['systemctl', 'daemon-reload'] } });
  }
  if (facts.unit.unitFileState !== 'enabled') {
    steps.push({ title: `enable ${UNIT_NAME} (start at boot)`, action: { kind: 'run', argv: ['systemctl', 'enable', UNIT_NAME] }, undo: `systemctl disable ${UNIT_NAME}` });
  }
  // A unit that hit its start limit refuses to start until its failure is reset.
  if (facts.unit.activeState === 'failed') steps.push({ title: `reset the failed state of ${UNIT_NAME}`, action: { kind: 'run', argv: ['systemctl', 'reset-failed', UNIT_NAME] } });
  const running = facts.unit.activeState === 'active' || facts.unit.activeState === 'reloading';
  // Not answering on the configured socket while active: agent.socket.path changed, or it hangs.
  if (binaryChanged || unitChanged || envChanged || userCreated || !running || !facts.agentAnswers) {
    steps.push({ title: `${running ? 'restart' : 'start'} ${UNIT_NAME}`, action: { kind: 'run', argv: ['systemctl', running ? 'restart' : 'start', UNIT_NAME] }, undo: `systemctl stop ${UNIT_NAME}` });
  } else if (!facts.killExists) {
    warnings.push('there is no /bin/kill (package procps): `systemctl reload dso-agent` cannot work here, so setup restarts the agent instead');
    steps.push({ title: `restart ${UNIT_NAME}`, action: { kind: 'run', argv: ['systemctl', 'restart', UNIT_NAME] } });
  } else {
    // Nothing of the service changed: SIGHUP makes the agent re-read dso.yaml.
    steps.push({ title: `reload ${UNIT_NAME} (the agent re-reads dso.yaml)`, action: { kind: 'run', argv: ['systemctl', 'reload', UNIT_NAME] } });
  }
  steps.push({ title: `wait for the agent on ${config.agent.socket.path}`, action: { kind: 'wait', socket: config.agent.socket.path } });
  return { steps, warnings, captured: [...updates.keys()], missing, nonroot, socket: config.agent.socket.path, unitText };
}

/** The unix sockets the agent makes, with the dso.yaml key that sets each and its group. */
function agentSockets(config: DsoConfig): Array<{ key: string; path: string; group?: string; who: string }> {
  const { socket, metrics } = config.agent;
  const out: Array<{ key: string; path: string; group?: string; who: string }> = [{ key: 'agent.socket', path: socket.path, ...(socket.group ? { group: socket.group } : {}), who: 'read secrets through the agent' }];
  if (socket.admin) out.push({ key: 'agent.socket.admin', path: socket.admin.path, ...(socket.admin.group ? { group: socket.admin.group } : {}), who: 'rotate containers through the agent' });
  const metricsPath = metrics.enabled ? UNIX_ADDRESS.exec(metrics.address)?.[1] : undefined;
  if (metricsPath !== undefined) out.push({ key: 'agent.metrics', path: metricsPath, ...(metrics.group ? { group: metrics.group } : {}), who: 'read the agent\'s metrics' });
  return out;
}

/** The group of the Docker socket (the one that grants Docker), else a group named docker. */
function dockerGroup(facts: HostFacts): string | undefined {
  if (facts.dockerSocketGid !== undefined) {
    if (facts.dockerSocketGid === 0) return undefined;
    const name = groupNameOf(facts.accounts, facts.dockerSocketGid);
    if (name) return name;
  }
  return facts.accounts.groups.has('docker') ? 'docker' : undefined;
}

/** Paths in provider settings that the unit hides, or (non-root) that the agent's user cannot read. */
function pathWarnings(config: DsoConfig, facts: HostFacts, agentIdentity: string[] | undefined): string[] {
  const out: string[] = [];
  for (const p of config.providers.values()) {
    for (const path of absolutePaths(p.config)) {
      if (/^\/(home|root|run\/user)(\/|$)/.test(path)) out.push(`provider ${p.name}: ${path} is under a home directory, which the unit hides (ProtectHome=yes): move it (to /etc/dso or /var/lib/dso)`);
      else if (/^\/(var\/)?tmp(\/|$)/.test(path)) out.push(`provider ${p.name}: ${path} is in /tmp, and the unit has a private /tmp (PrivateTmp=yes): move it`);
      else if (agentIdentity) {
        const st = facts.stat(path);
        if (!st || st.isDirectory) continue;
        const owner = userNameOf(facts.accounts, st.uid);
        const group = groupNameOf(facts.accounts, st.gid);
        const readable = st.mode & 0o004 || (owner === AGENT_USER && st.mode & 0o400) || (group !== undefined && agentIdentity.includes(group) && st.mode & 0o040);
        if (!readable) out.push(`provider ${p.name}: the agent runs as ${AGENT_USER} and cannot read ${path}: chgrp ${AGENT_USER} ${path} && chmod g+r ${path}`);
      }
    }
  }
  return out;
}

function absolutePaths(value: unknown): string[] {
  if (typeof value === 'string') return value.startsWith('/') ? [value] : [];
  if (Array.isArray(value)) return value.flatMap(absolutePaths);
  if (value && typeof value === 'object') return Object.values(value).flatMap(absolutePaths);
  return [];
}

/** How the plan reads, for --dry-run: titles only, never a credential. */
export function describePlan(plan: SetupPlan): string {
  return plan.steps.map((s, i) => `  ${i + 1}. ${s.title}`).join('\n');
}

export interface ExecuteDeps {
  cmds: HostCommands;
  progress: Output;
  waitTimeoutMs?: number;
}

export interface SetupResult {
  unit: UnitState;
}

export async function executeSetup(plan: SetupPlan, deps: ExecuteDeps): Promise<SetupResult> {
  for (let i = 0; i < plan.steps.length; i++) {
    const step = plan.steps[i]!;
    if (step.action.kind !== 'wait') deps.progress.write(`  ${step.title}\n`);
    try {
      await apply(step.action, deps);
    } catch (e) {
      throw await stepFailed(plan, i, e, deps.cmds);
    }
  }
  return { unit: await unitState(deps.cmds) };
}

async function apply(a: SetupAction, deps: ExecuteDeps): Promise<void> {
  switch (a.kind) {
    case 'run': {
      const r = await deps.cmds.run(a.argv);
      if (r.code !== 0) throw new Error(`\`${a.argv.join(' ')}\` exited with ${r.code}: ${firstLine(r.stderr) || firstLine(r.stdout) || 'no message'}`);
      return;
    }
    case 'mkdir':
      makeDirectory(a.path, a.mode);
      return;
    case 'copy':
      copyFileAtomic(a.from, a.to, a.mode);
      return;
    case 'symlink':
      symlinkAtomic(a.target, a.path);
      return;
    case 'write': {
      const bytes = new TextEncoder().encode(a.text);
      try {
        await writeFileAtomic(a.path, bytes, { mode: a.mode });
      } finally {
        // The credentials' string copies remain (they came from the environment as strings).
        bytes.fill(0);
      }
      return;
    }
    case 'wait': {
      const outcome = await waitForAgent({ socket: a.socket, timeoutMs: deps.waitTimeoutMs ?? 30_000, cmds: deps.cmds, progress: deps.progress });
      if (!outcome.ok) {
        const log = await recentLog(deps.cmds);
        throw new Error(`the agent does not answer: ${outcome.reason}${log ? `\nIts last log lines:\n${log.replace(/^/gm, '    ')}` : ''}`);
      }
    }
  }
}

async function stepFailed(plan: SetupPlan, index: number, e: unknown, cmds: HostCommands): Promise<DsoError> {
  const step = plan.steps[index]!;
  const fsCode = (e as NodeJS.ErrnoException).code;
  const why = e instanceof Error ? (fsCode && !e.message.includes(fsCode) ? `${fsCode}: ${e.message}` : e.message) : String(e);
  const done = plan.steps.slice(0, index);
  const notDone = plan.steps.slice(index + 1);
  const lines = [`system setup stopped at step ${index + 1} of ${plan.steps.length}, "${step.title}": ${why}`];
  if (done.length) lines.push('Done before it:', ...done.map((s) => `  - ${s.title}`));
  if (notDone.length) lines.push('Not done:', ...notDone.map((s) => `  - ${s.title}`));
  const state = await unitState(cmds).catch(() => undefined);
  if (state) lines.push(`${UNIT_NAME} is now ${state.loadState === 'not-found' ? 'not installed' : `${state.activeState} (${state.subState}), ${state.unitFileState || 'not enabled'}`}.`);
  const undo = done
    .map((s) => s.undo)
    .filter((u): u is string => u !== undefined)
    .reverse();
  const hint = `fix the cause and run \`sudo docker dso system setup\` again: it redoes only what is missing${undo.length ? `. To take back what this run did instead: ${undo.join(' && ')}` : ''}`;
  return new DsoError('SYSTEMD_FAILED', lines.join('\n'), { hint, cause: e });
}
