// `system setup` without a host: the plan for a fresh host, for a second run (nothing but a
// reload), for an upgrade, for --enable-nonroot; the refusals that come before any change; and
// the executor on a temporary directory with a fake systemctl and a fake agent socket: files
// land with their modes, and a failing step is reported with what was done, what was not, and
// how to undo it. No credential value appears in any title, warning or message.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Output } from '../../../src/cli/context.ts';
import { parseConfig, type DsoConfig } from '../../../src/config/load.ts';
import { DsoError } from '../../../src/errors.ts';
import type { Accounts } from '../../../src/system/accounts.ts';
import type { SystemLayout } from '../../../src/system/layout.ts';
import { describePlan, executeSetup, planSetup, type HostFacts, type SetupOptions } from '../../../src/system/setup.ts';
import type { CommandResult, HostCommands } from '../../../src/system/systemctl.ts';
import { agentConfigTemplate } from '../../../src/system/config-template.ts';
import { renderUnit } from '../../../src/system/unit.ts';

const TOKEN = 'SETUP_TEST_SECRET_value_1234';
const LAYOUT: SystemLayout = {
  unitFile: '/etc/systemd/system/dso-agent.service',
  binDir: '/usr/local/bin',
  configFile: '/etc/dso/dso.yaml',
  envFile: '/etc/dso/agent.env',
  runDir: '/run',
  systemdMarker: '/run/systemd/system',
  dockerSocket: '/var/run/docker.sock',
  passwdFile: '/etc/passwd',
  groupFile: '/etc/group',
};

const YAML = `providers:
  home:
    type: local
    path: /var/lib/dso/vault.enc
    passphrase_env: HOME_PASS
  files:
    type: local
    path: /var/lib/dso/other.enc
    passphrase_file: /etc/dso/vault.pass
    env: [HTTPS_PROXY]
`;

let config: DsoConfig;
beforeAll(async () => {
  config = await parseConfig(YAML, 'dso.yaml');
});

function accounts(extra: Partial<{ users: Array<[string, number, number]>; groups: Array<[string, number]> }> = {}): Accounts {
  return {
    users: new Map([['root', { uid: 0, gid: 0 }], ...(extra.users ?? []).map(([n, uid, gid]) => [n, { uid, gid }] as [string, { uid: number; gid: number }])]),
    groups: new Map([['root', { gid: 0, members: [] }], ['docker', { gid: 998, members: [] }], ...(extra.groups ?? []).map(([n, gid]) => [n, { gid, members: [] }] as [string, { gid: number; members: string[] }])]),
  };
}

function freshHost(over: Partial<HostFacts> = {}): HostFacts {
  return {
    uid: 0,
    systemd: true,
    sameBinary: false,
    binaryInstalled: false,
    accounts: accounts(),
    dockerSocketGid: 998,
    nologinShell: '/usr/sbin/nologin',
    unit: { loadState: 'not-found', activeState: 'inactive', subState: 'dead', unitFileState: '', result: 'success', restarts: 0 },
    agentAnswers: false,
    killExists: true,
    stat: () => undefined,
    ...over,
  };
}

const OPTIONS: SetupOptions = { binary: '/tmp/dso-linux-x64', version: '9.9.9', env: { HOME_PASS: TOKEN, PATH: '/usr/bin', HOME: '/root', UNRELATED_SECRET: 'nope' } };

/** The host after a successful setup with `options`: what a second run observes. */
function installedHost(options: SetupOptions = OPTIONS, over: Partial<HostFacts> = {}): HostFacts {
  const plan = planSetup(config, freshHost(), LAYOUT, options);
  const env = plan.steps.find((s) => s.action.kind === 'write' && s.action.secret)?.action as { text: string } | undefined;
  return freshHost({
    sameBinary: true,
    binaryInstalled: true,
    agentLink: 'dso',
    unitText: plan.unitText,
    ...(env ? { envFile: { text: env.text, mode: 0o600 } } : {}),
    unit: { loadState: 'loaded', activeState: 'active', subState: 'running', unitFileState: 'enabled', mainPid: 42, result: 'success', restarts: 0 },
    agentAnswers: true,
    ...over,
  });
}

const titles = (p: { steps: Array<{ title: string }> }) => p.steps.map((s) => s.title);

describe('the plan', () => {
  test('a fresh host: install, link, credentials, unit, reload, enable, start, wait', () => {
    const plan = planSetup(config, freshHost(), LAYOUT, OPTIONS);
    expect(titles(plan)).toEqual([
      'install /usr/local/bin/dso',
      'link /usr/local/bin/dso-agent -> dso',
      'write /etc/dso/agent.env (mode 0600: HOME_PASS)',
      'write /etc/systemd/system/dso-agent.service',
      'systemctl daemon-reload',
      'enable dso-agent.service (start at boot)',
      'start dso-agent.service',
      'wait for the agent on /run/dso/dso.sock',
    ]);
    expect(plan.nonroot).toBe(false);
    expect(plan.captured).toEqual(['HOME_PASS']);
    // HTTPS_PROXY (in files' env:) was not given: said, by name.
    expect(plan.missing).toEqual([{ name: 'HTTPS_PROXY', providers: ['files'] }]);
    expect(plan.warnings.join('\n')).toContain('HTTPS_PROXY (needed by files)');
    const env = plan.steps[2]!.action as { kind: string; text: string; mode: number; secret: boolean };
    expect(env).toMatchObject({ kind: 'write', mode: 0o600, secret: true });
    expect(env.text).toContain(`HOME_PASS='${TOKEN}'`);
    // Only the providers' variables: not PATH, HOME, nor anything else in setup's environment.
    expect(env.text).not.toContain('UNRELATED_SECRET');
    expect(env.text).not.toMatch(/^(PATH|HOME)=/m);
    expect(plan.unitText).toBe(
      renderUnit({ version: '9.9.9', agentPath: '/usr/local/bin/dso-agent', configPath: '/etc/dso/dso.yaml', envFile: '/etc/dso/agent.env', runtimeDirectories: ['dso'], readWritePaths: [], supplementaryGroups: [], chownSocket: false, stopTimeoutSec: 150 }),
    );
    // A stop waits out a rotation under way (agent.rotation.timeout, 2 minutes by default): systemd
    // must not kill the agent before that.
    expect(plan.unitText).toContain('TimeoutStopSec=150s\n');
    const shown = `${describePlan(plan)}\n${plan.warnings.join('\n')}\n${plan.unitText}`;
    expect(shown).not.toContain(TOKEN);
  });

  test('running it again changes nothing: the agent only re-reads dso.yaml', () => {
    const plan = planSetup(config, installedHost(), LAYOUT, OPTIONS);
    expect(titles(plan)).toEqual(['reload dso-agent.service (the agent re-reads dso.yaml)', 'wait for the agent on /run/dso/dso.sock']);
  });

  test('no /bin/kill for the unit\'s ExecReload: restarted instead, and said', () => {
    const plan = planSetup(config, installedHost(OPTIONS, { killExists: false }), LAYOUT, OPTIONS);
    expect(titles(plan)).toEqual(['restart dso-agent.service', 'wait for the agent on /run/dso/dso.sock']);
    expect(plan.warnings.join('\n')).toContain('no /bin/kill');
  });

  test('again without the variables in the environment: the stored ones are kept', () => {
    const plan = planSetup(config, installedHost(), LAYOUT, { ...OPTIONS, env: {} });
    expect(titles(plan)).toEqual(['reload dso-agent.service (the agent re-reads dso.yaml)', 'wait for the agent on /run/dso/dso.sock']);
    expect(plan.missing.map((m) => m.name)).toEqual(['HTTPS_PROXY']);
  });

  test('a new binary: installed, then the service restarted', () => {
    const plan = planSetup(config, installedHost(OPTIONS, { sameBinary: false }), LAYOUT, OPTIONS);
    expect(titles(plan)).toEqual(['install /usr/local/bin/dso', 'restart dso-agent.service', 'wait for the agent on /run/dso/dso.sock']);
    // Replacing an installed binary has no undo to offer (the old one is gone).
    expect(plan.steps[0]!.undo).toBeUndefined();
  });

  test('a new credential: the file rewritten, the service restarted to read it', () => {
    const plan = planSetup(config, installedHost(), LAYOUT, { ...OPTIONS, env: { HOME_PASS: `${TOKEN}-rotated` } });
    expect(titles(plan)).toEqual(['write /etc/dso/agent.env (mode 0600: HOME_PASS)', 'restart dso-agent.service', 'wait for the agent on /run/dso/dso.sock']);
  });

  test('active but not answering on the configured socket (agent.socket.path changed): restarted', () => {
    expect(titles(planSetup(config, installedHost(OPTIONS, { agentAnswers: false }), LAYOUT, OPTIONS))).toContain('restart dso-agent.service');
  });

  test('a unit that hit its start limit is reset before it is started', () => {
    const plan = planSetup(config, installedHost(OPTIONS, { unit: { loadState: 'loaded', activeState: 'failed', subState: 'failed', unitFileState: 'enabled', result: 'start-limit-hit', restarts: 5 }, agentAnswers: false }), LAYOUT, OPTIONS);
    expect(titles(plan)).toEqual(['reset the failed state of dso-agent.service', 'start dso-agent.service', 'wait for the agent on /run/dso/dso.sock']);
  });

  test('--enable-nonroot on a fresh host: the user first, in the Docker socket\'s group', () => {
    const plan = planSetup(config, freshHost(), LAYOUT, { ...OPTIONS, nonroot: true });
    expect(plan.steps[0]!.title).toBe('create the system user dso (no home, no login)');
    expect(plan.steps[0]!.action).toEqual({ kind: 'run', argv: ['useradd', '--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', '--comment', 'DSO agent', 'dso'] });
    expect(plan.unitText).toMatch(/^User=dso$/m);
    expect(plan.unitText).toMatch(/^Group=dso$/m);
    expect(plan.unitText).toMatch(/^SupplementaryGroups=docker$/m);
  });

  test('--enable-nonroot when a group dso exists already: useradd joins it', () => {
    const plan = planSetup(config, freshHost({ accounts: accounts({ groups: [['dso', 1500]] }) }), LAYOUT, { ...OPTIONS, nonroot: true });
    expect((plan.steps[0]!.action as { argv: string[] }).argv).toContain('--gid');
  });

  test('without a flag, a non-root installation stays non-root (and says so)', () => {
    const installed = installedHost({ ...OPTIONS, nonroot: true }, { accounts: accounts({ users: [['dso', 999, 999]], groups: [['dso', 999]] }) });
    const plan = planSetup(config, installed, LAYOUT, OPTIONS);
    expect(plan.nonroot).toBe(true);
    expect(plan.warnings.join('\n')).toContain('kept (--disable-nonroot runs it as root)');
    expect(titles(plan)).toEqual(['reload dso-agent.service (the agent re-reads dso.yaml)', 'wait for the agent on /run/dso/dso.sock']);
    expect(planSetup(config, installed, LAYOUT, { ...OPTIONS, nonroot: false }).unitText).not.toMatch(/^User=/m);
  });

  test('non-root: files the dso user cannot read are named, with the fix', () => {
    const stat = (p: string) => (p === '/etc/dso/vault.pass' ? { uid: 0, gid: 0, mode: 0o600, isDirectory: false } : p === '/var/lib/dso/vault.enc' ? { uid: 0, gid: 0, mode: 0o644, isDirectory: false } : undefined);
    const plan = planSetup(config, freshHost({ stat }), LAYOUT, { ...OPTIONS, nonroot: true });
    const w = plan.warnings.join('\n');
    expect(w).toContain('cannot read /etc/dso/vault.pass: chgrp dso /etc/dso/vault.pass && chmod g+r /etc/dso/vault.pass');
    expect(w).not.toContain('cannot read /var/lib/dso/vault.enc');
  });

  test('no Docker group: a warning, the agent still set up', () => {
    const plan = planSetup(config, freshHost({ accounts: { users: accounts().users, groups: new Map([['root', { gid: 0, members: [] }]]) }, dockerSocketGid: undefined }), LAYOUT, { ...OPTIONS, nonroot: true });
    expect(plan.warnings.join('\n')).toContain('cannot reach Docker');
    expect(plan.unitText).not.toMatch(/^SupplementaryGroups=/m);
  });

  test('files under a home directory or /tmp, and a provider that reads $HOME, are warned about', async () => {
    const c = await parseConfig(`providers:\n  a: { type: local, path: /root/.dso/vault.enc, passphrase_file: /tmp/pass }\n  b: { type: local, passphrase_env: P }\n`, 'dso.yaml');
    const w = planSetup(c, freshHost(), LAYOUT, OPTIONS).warnings.join('\n');
    expect(w).toContain('/root/.dso/vault.enc is under a home directory');
    expect(w).toContain('/tmp/pass is in /tmp');
    expect(w).toContain('provider b finds its files under $HOME');
  });

  test('a socket group: joined, and it must exist', async () => {
    const c = await parseConfig(`agent:\n  socket: { group: dso-users }\n`, 'dso.yaml');
    expect(() => planSetup(c, freshHost(), LAYOUT, OPTIONS)).toThrow(/no group "dso-users"/);
    const plan = planSetup(c, freshHost({ accounts: accounts({ groups: [['dso-users', 1200]] }) }), LAYOUT, OPTIONS);
    expect(plan.unitText).toMatch(/^SupplementaryGroups=dso-users$/m);
    expect(plan.unitText).toMatch(/^SystemCallFilter=@chown$/m);
  });

  test('the admin socket and a metrics socket: their directories are the agent\'s, their groups joined, and each group must exist', async () => {
    const c = await parseConfig(`agent:\n  socket: { group: dso-users, admin: { path: /run/dso/admin.sock, group: dso-admins } }\n  metrics: { address: "unix:/run/dso-metrics/metrics.sock", group: prometheus }\n`, 'dso.yaml');
    expect(() => planSetup(c, freshHost({ accounts: accounts({ groups: [['dso-users', 1200], ['prometheus', 1202]] }) }), LAYOUT, OPTIONS)).toThrow('agent.socket.admin.group: there is no group "dso-admins" on this host');
    expect(() => planSetup(c, freshHost({ accounts: accounts({ groups: [['dso-users', 1200], ['dso-admins', 1201]] }) }), LAYOUT, OPTIONS)).toThrow('agent.metrics.group: there is no group "prometheus" on this host');
    const plan = planSetup(c, freshHost({ accounts: accounts({ groups: [['dso-users', 1200], ['dso-admins', 1201], ['prometheus', 1202]] }) }), LAYOUT, OPTIONS);
    expect(plan.unitText).toMatch(/^SupplementaryGroups=dso-users dso-admins prometheus$/m);
    expect(plan.unitText).toMatch(/^RuntimeDirectory=dso dso-metrics$/m);
    expect(plan.unitText).toMatch(/^SystemCallFilter=@chown$/m);
    const inRun = await parseConfig(`agent:\n  socket: { admin: { path: /run/admin.sock } }\n`, 'dso.yaml');
    expect(() => planSetup(inRun, freshHost(), LAYOUT, OPTIONS)).toThrow('agent.socket.admin.path /run/admin.sock is directly in /run');
  });

  test('the dso.yaml `bootstrap agent` writes is valid, and so are its admin and metrics sockets once uncommented', async () => {
    const text = agentConfigTemplate({ nonroot: true });
    expect((await parseConfig(text, 'dso.yaml')).agent.socket.admin).toBeUndefined();
    const uncommented = text.replace('    # admin: {', '    admin: {').replace('  # metrics: {', '  metrics: {');
    const c = await parseConfig(uncommented, 'dso.yaml');
    expect(c.agent.socket.admin).toEqual({ path: '/run/dso/admin.sock', group: 'dso-admins', mode: 0o660 });
    expect(c.agent.metrics.address).toBe('unix:/run/dso/metrics.sock');
  });

  test('refused before any change: not root, no systemd, a socket directly in /run', async () => {
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        return (e as DsoError).code;
      }
      return 'no error';
    };
    expect(code(() => planSetup(config, freshHost({ uid: 1000 }), LAYOUT, OPTIONS))).toBe('PERMISSION_DENIED');
    expect(code(() => planSetup(config, freshHost({ systemd: false }), LAYOUT, OPTIONS))).toBe('SYSTEMD_FAILED');
    const c = await parseConfig(`agent:\n  socket: { path: /var/run/dso.sock }\n`, 'dso.yaml');
    expect(code(() => planSetup(c, freshHost(), LAYOUT, OPTIONS))).toBe('CONFIG_INVALID');
  });

  test('an environment file others could read is rewritten with mode 0600', () => {
    const host = installedHost();
    const plan = planSetup(config, { ...host, envFile: { text: host.envFile!.text, mode: 0o644 } }, LAYOUT, OPTIONS);
    expect(titles(plan)[0]).toBe('write /etc/dso/agent.env (mode 0600: HOME_PASS)');
    expect(plan.warnings.join('\n')).toContain('was mode 0644');
  });
});

describe('the executor, on a temporary root with a fake systemctl and agent', () => {
  let root: string;
  let layout: SystemLayout;
  let agent: ReturnType<typeof Bun.serve> | undefined;
  let socket: string;

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'dso-setup-'));
    for (const d of ['bin', 'etc/dso', 'etc/systemd/system', 'run']) mkdirSync(join(root, d), { recursive: true });
    layout = { ...LAYOUT, unitFile: join(root, 'etc/systemd/system/dso-agent.service'), binDir: join(root, 'bin'), configFile: join(root, 'etc/dso/dso.yaml'), envFile: join(root, 'etc/dso/agent.env'), runDir: join(root, 'run') };
    writeFileSync(join(root, 'dso-build'), '#!/bin/sh\necho fake dso\n');
    socket = join(root, 'run', 'dso', 'dso.sock');
  });
  afterAll(() => {
    agent?.stop(true);
    rmSync(root, { recursive: true, force: true });
  });

  function fakeSystemctl(fail?: string[]): { cmds: HostCommands; calls: string[][] } {
    const calls: string[][] = [];
    let active = false;
    const cmds: HostCommands = {
      async run(argv): Promise<CommandResult> {
        calls.push(argv);
        if (fail && argv.join(' ') === fail.join(' ')) return { code: 1, stdout: '', stderr: 'Failed to start dso-agent.service: Unit dso-agent.service has a bad setting.\nSee system logs.' };
        if (argv[1] === 'start' || argv[1] === 'restart') {
          active = true;
          // What systemd would do: create the runtime directory, start the agent.
          mkdirSync(join(root, 'run', 'dso'), { recursive: true });
          agent ??= Bun.serve({ unix: socket, fetch: (req) => (new URL(req.url).pathname === '/v1/health' ? Response.json({ status: 'ok' }) : new Response('no', { status: 404 })) });
        }
        if (argv[1] === 'show') return { code: 0, stdout: `LoadState=loaded\nActiveState=${active ? 'active' : 'inactive'}\nSubState=${active ? 'running' : 'dead'}\nUnitFileState=enabled\nMainPID=${active ? 4242 : 0}\nResult=success\nNRestarts=0\n`, stderr: '' };
        return { code: 0, stdout: '', stderr: '' };
      },
      interactive: async () => 0,
    };
    return { cmds, calls };
  }

  const sink: Output = { write: () => {}, isTTY: false };
  function plan() {
    const c = { ...config, agent: { ...config.agent, socket: { ...config.agent.socket, path: socket } } };
    return planSetup(c, freshHost(), layout, { ...OPTIONS, binary: join(root, 'dso-build') });
  }

  test('a failing systemctl: the error says what was done, what was not, the state, and how to undo', async () => {
    const { cmds } = fakeSystemctl(['systemctl', 'start', 'dso-agent.service']);
    const p = plan();
    let error: DsoError | undefined;
    try {
      await executeSetup(p, { cmds, progress: sink, waitTimeoutMs: 2000 });
    } catch (e) {
      error = e as DsoError;
    }
    expect(error).toBeInstanceOf(DsoError);
    expect(error!.code).toBe('SYSTEMD_FAILED');
    expect(error!.message).toContain('system setup stopped at step 7 of 8, "start dso-agent.service": `systemctl start dso-agent.service` exited with 1: Failed to start dso-agent.service');
    expect(error!.message).toContain('Done before it:\n  - install');
    expect(error!.message).toContain('Not done:\n  - wait for the agent');
    expect(error!.message).toContain('dso-agent.service is now inactive (dead), enabled.');
    // Undo in reverse order: disable before removing the unit, the binary last.
    expect(error!.hint).toContain(`systemctl disable dso-agent.service && rm ${layout.unitFile} && systemctl daemon-reload && rm ${layout.envFile} && rm ${join(layout.binDir, 'dso-agent')} && rm ${join(layout.binDir, 'dso')}`);
    expect(`${error!.message} ${error!.hint}`).not.toContain(TOKEN);
    // Everything before the failure is in place, whole.
    expect(readFileSync(join(layout.binDir, 'dso'), 'utf8')).toContain('fake dso');
  });

  test('the same plan, run again when systemctl works: files with their modes, the agent answering', async () => {
    for (const f of [join(layout.binDir, 'dso'), join(layout.binDir, 'dso-agent'), layout.unitFile, layout.envFile]) rmSync(f, { force: true });
    const { cmds, calls } = fakeSystemctl();
    const p = plan();
    const { unit } = await executeSetup(p, { cmds, progress: sink, waitTimeoutMs: 5000 });
    expect(unit.mainPid).toBe(4242);
    expect(statSync(join(layout.binDir, 'dso')).mode & 0o777).toBe(0o755);
    expect(readlinkSync(join(layout.binDir, 'dso-agent'))).toBe('dso');
    expect(lstatSync(join(layout.binDir, 'dso-agent')).isSymbolicLink()).toBe(true);
    expect(statSync(layout.envFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(layout.envFile, 'utf8')).toContain(`HOME_PASS='${TOKEN}'`);
    expect(statSync(layout.unitFile).mode & 0o777).toBe(0o644);
    expect(readFileSync(layout.unitFile, 'utf8')).toBe(p.unitText);
    expect(calls.filter((c) => c[1] !== 'show').map((c) => c.join(' '))).toEqual(['systemctl daemon-reload', 'systemctl enable dso-agent.service', 'systemctl start dso-agent.service']);
    // No temp files left beside what was written.
    for (const dir of [layout.binDir, join(root, 'etc/dso'), join(root, 'etc/systemd/system')]) {
      expect(readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    }
    expect(existsSync(socket)).toBe(true);
  });
});
