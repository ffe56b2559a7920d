// The dso-agent.service unit, rendered from options as plain text so that it can be compared,
// linted (`systemd-analyze verify`, `security`) and tested without a host. Every hardening line
// is explained where it is written; docs/agent.md explains the whole.
import { posix } from 'node:path';
import { DsoError } from '../errors.ts';

export interface UnitOptions {
  /** The DSO version, named in the header so a new binary rewrites (and restarts) the unit. */
  version: string;
  /** The agent executable: the `dso-agent` link, so `ps` and the journal say what runs. */
  agentPath: string;
  configPath: string;
  /** systemd reads it as root before dropping privileges; a missing file is no error ("-"). */
  envFile: string;
  /** Directories relative to /run that systemd creates for the agent (its socket's). */
  runtimeDirectories: string[];
  /** Directories outside /run the agent must write (a socket placed there). Usually none. */
  readWritePaths: string[];
  /** Run as this user and group instead of root (`--enable-nonroot`). */
  user?: { name: string; group: string };
  /** The Docker socket's group (non-root), the sockets' groups (agent.socket.group, agent.socket.admin.group, agent.metrics.group). */
  supplementaryGroups: string[];
  /** A socket has a group: the agent chowns the socket to it, so chown(2) stays allowed. */
  chownSocket: boolean;
  /**
   * How long systemd waits for the agent to stop before it kills it (default 30 s). A stop lets a
   * rotation under way run out its agent.rotation.timeout, so setup gives that plus 30 s.
   */
  stopTimeoutSec?: number;
}

/** Characters a path may have to be written in a unit without quoting or escaping. */
const PLAIN_PATH = /^\/[A-Za-z0-9._+\-@/]*$/;
const NAME = /^[a-z_][a-z0-9_-]{0,31}$/;

export function renderUnit(o: UnitOptions): string {
  for (const [what, p] of [
    ['the agent executable', o.agentPath],
    ['the configuration file', o.configPath],
    ['the environment file', o.envFile],
    ...o.readWritePaths.map((p) => ['a writable path', p] as const),
  ] as const) {
    if (!PLAIN_PATH.test(p) || p.split('/').includes('..')) {
      throw new DsoError('USAGE', `${what} ${JSON.stringify(p)} cannot go in the unit: use an absolute path of letters, digits and . _ + - @ /`);
    }
  }
  for (const d of o.runtimeDirectories) {
    if (!/^[A-Za-z0-9._+\-@][A-Za-z0-9._+\-@/]*$/.test(d) || d.split('/').includes('..')) throw new DsoError('USAGE', `${JSON.stringify(d)} is not a directory under /run the unit can name`);
  }
  for (const g of [...o.supplementaryGroups, ...(o.user ? [o.user.name, o.user.group] : [])]) {
    if (!NAME.test(g)) throw new DsoError('USAGE', `${JSON.stringify(g)} is not a user or group name the unit can name`);
  }
  const groups = [...new Set(o.supplementaryGroups)].filter((g) => g !== o.user?.group);

  const lines = [
    `# ${UNIT_HEADER} (DSO ${o.version}).`,
    '# `system setup` rewrites this file: put local changes in a drop-in (systemctl edit dso-agent).',
    '# The hardening is explained in docs/agent.md ("Production deployment").',
    '[Unit]',
    'Description=DSO agent: provider secrets for docker dso (Cloud Mode)',
    // Providers talk to Vault and cloud APIs over the network; rotation talks to Docker.
    'Wants=network-online.target',
    'After=network-online.target docker.service',
    // Five failed starts within five minutes and systemd gives up (status shows it) instead of
    // looping on a broken dso.yaml or a revoked credential.
    'StartLimitIntervalSec=300',
    'StartLimitBurst=5',
    '',
    '[Service]',
    // The agent runs in the foreground and serves its socket; no sd_notify.
    'Type=simple',
    `ExecStart=${o.agentPath} --config ${o.configPath}`,
    // SIGHUP re-reads dso.yaml; an invalid file is refused and the running configuration stays.
    'ExecReload=/bin/kill -HUP $MAINPID',
    // Provider credentials (VAULT_TOKEN...): never in this file, never in argv.
    `EnvironmentFile=-${o.envFile}`,
    'Restart=on-failure',
    'RestartSec=5s',
    // SIGTERM: requests in flight finish, the cache is zeroed, the socket removed. mixed: only the
    // agent gets SIGTERM (it closes its provider processes in order), leftovers get SIGKILL.
    'KillSignal=SIGTERM',
    'KillMode=mixed',
    `TimeoutStopSec=${o.stopTimeoutSec ?? 30}s`,
    'SyslogIdentifier=dso-agent',
    ...(o.user ? [`User=${o.user.name}`, `Group=${o.user.group}`] : []),
    // The groups whose sockets the agent opens or hands its own socket to. With them chown(2) of
    // the socket to its group needs no capability.
    ...(groups.length ? [`SupplementaryGroups=${groups.join(' ')}`] : []),
    '',
    '# Files and directories',
    // Files the agent creates (its socket, before the chmod to agent.socket.mode) are private.
    'UMask=0077',
    // The socket's directory, on /run (tmpfs), created at start and removed at stop. 0755 so the
    // CLI's users reach the socket; the socket's own mode and group decide who may use it.
    `RuntimeDirectory=${o.runtimeDirectories.join(' ')}`,
    'RuntimeDirectoryMode=0755',
    // Rotation state and the fingerprint key (no secret values): /var/lib/dso, private, kept.
    'StateDirectory=dso',
    'StateDirectoryMode=0700',
    // The whole file system is read-only for the agent, except its runtime directory (and the
    // paths below). Connecting to the Docker socket needs no write access to /run.
    'ProtectSystem=strict',
    ...(o.readWritePaths.length ? [`ReadWritePaths=${o.readWritePaths.join(' ')}`] : []),
    // The agent needs no home: /home, /root and /run/user are empty. Keep vaults, passphrase and
    // token files elsewhere (/etc/dso, /var/lib/dso).
    'ProtectHome=yes',
    'PrivateTmp=yes',
    'PrivateDevices=yes',
    'PrivateMounts=yes',
    // /proc shows the agent its own processes only (for a root service systemd cannot hide the
    // others: systemd.exec(5)), and no kernel or hardware files.
    'ProtectProc=invisible',
    'ProcSubset=pid',
    '',
    '# Privileges',
    'NoNewPrivileges=yes',
    // The agent opens sockets it may open by owner or group, and reads files it owns or whose
    // group it is in: no capability for that. As root it keeps exactly two, to start each
    // provider process and plugin as the provider's own user (dso.yaml user:, default nobody),
    // which drops them before it is given anything (src/system/process-guard.ts). As `dso`, it
    // has none and cannot change users.
    `CapabilityBoundingSet=${o.user ? '' : 'CAP_SETUID CAP_SETGID'}`,
    'AmbientCapabilities=',
    'RestrictSUIDSGID=yes',
    'RemoveIPC=yes',
    '',
    '# Kernel',
    'ProtectKernelTunables=yes',
    'ProtectKernelModules=yes',
    'ProtectKernelLogs=yes',
    'ProtectControlGroups=yes',
    'ProtectClock=yes',
    'ProtectHostname=yes',
    'RestrictNamespaces=yes',
    'RestrictRealtime=yes',
    'LockPersonality=yes',
    // Measured in this unit's sandbox; test/integration/systemd.test.ts checks both sides (with
    // it the agent answers and has no JIT memory, without it the JIT memory is there).
    '# MemoryDenyWriteExecute= is left out: the JIT of Bun (JavaScriptCore) needs memory that is',
    '# written, then executed. With it the agent runs, interpreted: JavaScript 8 times slower and',
    '# the Argon2id key derivation (WebAssembly) 16 times slower.',
    '',
    '# System calls and sockets',
    'SystemCallArchitectures=native',
    'SystemCallFilter=@system-service',
    'SystemCallFilter=~@privileged @resources',
    // Given back after ~@privileged: the agent sets its socket's group (agent.socket.group).
    ...(o.chownSocket ? ['SystemCallFilter=@chown'] : []),
    // Given back as root: a provider process's setgroups(0), setresgid and setresuid.
    ...(o.user ? [] : ['SystemCallFilter=@setuid']),
    // A refused call fails with EPERM, which Bun reports, rather than killing the agent.
    'SystemCallErrorNumber=EPERM',
    // Unix sockets (its API, Docker), TCP to providers and the metrics port. No netlink, no raw.
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
  ];
  return `${lines.join('\n')}\n`;
}

/** The first line of every unit DSO writes, so setup can tell its own unit from someone else's. */
export const UNIT_HEADER = 'dso-agent.service, written by `dso system setup`';

/**
 * Where the unit lets the agent create its socket. Under /run: a RuntimeDirectory (tmpfs,
 * created at every start, so it exists after a reboot). Elsewhere: a ReadWritePaths entry for
 * the socket's directory, which must exist. Directly in /run: refused, since that would make
 * all of /run writable for the agent.
 */
export function socketPlacement(socketPath: string, runDir = '/run', key = 'agent.socket.path'): { runtimeDirectories: string[]; readWritePaths: string[]; socketDir: string } {
  const normal = posix.normalize(socketPath.replace(/^\/var\/run\//, `${runDir}/`));
  const dir = posix.dirname(normal);
  if (dir === runDir) {
    throw new DsoError('CONFIG_INVALID', `${key} ${socketPath} is directly in ${runDir}: the unit would have to make all of ${runDir} writable for the agent`, {
      hint: key === 'agent.socket.path' ? 'use a directory of its own: /run/dso/dso.sock (the default), or remove agent.socket.path' : `put it in the agent's directory, like /run/dso/${posix.basename(normal)}`,
    });
  }
  if (dir.startsWith(`${runDir}/`)) {
    const rel = dir.slice(runDir.length + 1);
    // /run/dso is always there; another directory under /run is added beside it.
    return { runtimeDirectories: rel === 'dso' || rel.startsWith('dso/') ? ['dso'] : ['dso', rel], readWritePaths: [], socketDir: dir };
  }
  return { runtimeDirectories: ['dso'], readWritePaths: [dir], socketDir: dir };
}
