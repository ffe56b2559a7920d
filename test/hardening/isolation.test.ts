// Provider isolation, attacked (docs/providers.md#isolation): a pinned plugin that walks up its
// DSO ancestors (its provider process, the CLI or the agent) and through every process DSO
// started (other provider processes, other plugins), reading /proc/PID/environ, cmdline and mem,
// finds none of the canaries that DSO holds: its passphrase and an unrelated variable in its
// environment, another provider's credential, the values it fetched. So with DSO as root (the
// plugin then runs as nobody, without groups or capabilities) and as a normal user, in Local Mode
// and through the agent, with the plugin under a provider process and under a Worker. As root,
// a plugin given a user of its own cannot be read by the spy either; one that shares the spy's
// user can, as the docs say.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, lchownSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DATA_ROOT, DOCKER_CONFIG, DOCKER_HOST, DSO_BIN, canary, dockerOk, projectOf, run, sandbox, scanForLeaks, spawnAgent, waitFor, writeFiles, type RunResult, type Sandbox } from '../integration/support.ts';

const SPY = new URL('../fixtures/providers/dso-provider-spy', import.meta.url).pathname;
const FILES = new URL('../../providers/plugin/examples/dso-provider-files', import.meta.url).pathname;
const NOBODY = 65534;
const PATH = process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin';

/** What DSO holds and no plugin may read. */
const HELD = {
  passphrase: canary('iso-passphrase'),
  unrelated: canary('iso-unrelated'),
  otherPassphrase: canary('iso-other-provider-credential'),
  twinToken: canary('iso-twin-credential'),
  homeValue: canary('iso-home-value'),
  otherValue: canary('iso-other-value'),
  twinValue: canary('iso-twin-value'),
  localValue: canary('iso-local-value'),
};
/** Each spy's own variable: it must find it in itself (the scan works), and nowhere else matters. */
const SPY_OWN = canary('iso-spy-own');
const SPYW_OWN = canary('iso-spyw-own');
/** The variable of a plugin that shares the spy's user (nobody), when DSO is root. */
const SHARED_TOKEN = canary('iso-shared-credential');

interface Account {
  name: string;
  uid: number;
  gid: number;
}

const accounts: Account[] = [];
async function account(prefix: string): Promise<Account> {
  const name = `${prefix}${process.pid}`.slice(0, 31);
  const r = await run(['useradd', '--system', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', '--user-group', name], { env: { PATH } });
  expect(r.code, r.stderr).toBe(0);
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${name}:`))!;
  const [, , uid, gid] = line.split(':');
  const a = { name, uid: Number(uid), gid: Number(gid) };
  accounts.push(a);
  return a;
}

const sha256 = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
const dockerGid = () => statSync(DOCKER_HOST.replace(/^unix:\/\//, '')).gid;

/** chown -R that never follows a symbolic link (the test's Docker configuration links Compose). */
function chownTree(path: string, uid: number, gid: number): void {
  lchownSync(path, uid, gid);
  if (lstatSync(path).isDirectory()) for (const name of readdirSync(path)) chownTree(join(path, name), uid, gid);
}

/** argv run as `who` (with only the groups given), or as root. */
function as(who: Pick<Account, 'uid' | 'gid'> | undefined, argv: string[], groups: number[] = []): string[] {
  if (!who) return argv;
  return ['setpriv', `--reuid=${who.uid}`, `--regid=${who.gid}`, groups.length ? `--groups=${groups.join(',')}` : '--clear-groups', ...argv];
}

interface Scenario {
  name: string;
  /** DSO runs as a normal user (made for the test) rather than root. */
  asUser: boolean;
  agent: boolean;
}

interface Report {
  self: Record<string, string>;
  own: string[];
  ancestors: Array<{ pid: number; cmd: string; environ: string; cmdline: string; mem: string }>;
  family: Array<{ pid: number; cmd: string; uid: string; environ: string; cmdline: string; mem: string }>;
  seen: { provider_processes: number; plugins: number };
  found: string[];
}

let dsoUser: Account;
let twinUser: Account;
let spywUser: Account;
let plugins: string;
const sandboxes: Sandbox[] = [];
const agents: Array<ReturnType<typeof spawnAgent>> = [];

beforeAll(async () => {
  dsoUser = await account('dsoiso');
  twinUser = await account('dsotwin');
  spywUser = await account('dsospyw');
  // The plugin directory, root's and 0755 down from /, as verification wants; readable by all.
  const pluginsBox = sandbox('isolation-plugins');
  sandboxes.push(pluginsBox);
  chmodSync(pluginsBox.dir, 0o755);
  plugins = join(pluginsBox.dir, 'plugins');
  mkdirSync(plugins, { mode: 0o755 });
  chmodSync(plugins, 0o755);
  for (const [from, name] of [
    [SPY, 'spy'],
    [FILES, 'files'],
  ] as const) {
    copyFileSync(from, join(plugins, `dso-provider-${name}`));
    chmodSync(join(plugins, `dso-provider-${name}`), 0o755);
  }
});

afterAll(async () => {
  for (const agent of agents) agent.kill('SIGKILL');
  await Promise.all(agents.map((a) => a.exited));
  for (const sb of sandboxes) sb.cleanup();
  for (const a of accounts) await run(['userdel', a.name], { env: { PATH } });
});

/** The stack, dso.yaml and vaults of one scenario, in a sandbox its DSO user owns. */
async function prepare(s: Scenario): Promise<{ sb: Sandbox; env: Record<string, string>; user?: Account; dso(args: string[], extra?: { env?: Record<string, string>; input?: string }): Promise<RunResult> }> {
  const sb = sandbox(`isolation-${s.name}`);
  sandboxes.push(sb);
  chmodSync(sb.dir, 0o755);
  const user = s.asUser ? dsoUser : undefined;
  const groups = [dockerGid()];
  const home = join(sb.dir, 'home');
  const otherHome = join(sb.dir, 'other-home');
  const twinDir = join(sb.dir, 'twin-secrets');
  const sharedDir = join(sb.dir, 'shared-secrets');
  for (const d of [join(twinDir, 'app'), join(sharedDir, 'app'), home, otherHome]) mkdirSync(d, { recursive: true });
  writeFileSync(join(twinDir, 'app/twin'), HELD.twinValue);
  writeFileSync(join(sharedDir, 'app/shared'), 'not-a-secret');

  // A normal user has a Docker configuration of its own: the test environment's lists root's
  // plugin directory (cliPluginsExtraDirs), which the Docker CLI refuses to search as another user.
  const userConfig = join(sb.dir, 'docker-config');
  if (s.asUser) {
    mkdirSync(join(userConfig, 'cli-plugins'), { recursive: true });
    symlinkSync(readlinkSync(join(DOCKER_CONFIG, 'cli-plugins', 'docker-compose')), join(userConfig, 'cli-plugins', 'docker-compose'));
    writeFileSync(join(userConfig, 'config.json'), '{}\n');
  }

  // DSO's environment: everything it holds, and a variable no provider declares.
  const env: Record<string, string> = {
    PATH,
    HOME: home,
    DOCKER_HOST,
    DOCKER_CONFIG: s.asUser ? userConfig : DOCKER_CONFIG,
    DSO_HOME: join(home, '.dso'),
    DSO_PASSPHRASE: HELD.passphrase,
    OTHER_PASSPHRASE: HELD.otherPassphrase,
    UNRELATED_SECRET: HELD.unrelated,
    SPY_OWN,
    SPYW_OWN,
    ...(s.asUser ? {} : { TWIN_TOKEN: HELD.twinToken, SHARED_TOKEN }),
    NO_COLOR: '1',
  };
  const dso = (args: string[], extra: { env?: Record<string, string>; input?: string } = {}) =>
    run(as(user, [DSO_BIN, ...args], groups), { cwd: sb.dir, env: { ...env, ...extra.env }, ...(extra.input === undefined ? {} : { input: extra.input }) });

  // The other provider's process, and its vault, belong to nobody when DSO is root (the spy's own
  // user: only non-dumpability keeps the spy out of it), else to DSO's user.
  const other: Account = user ?? { name: 'nobody', uid: NOBODY, gid: NOBODY };
  chownTree(sb.dir, user?.uid ?? 0, user?.gid ?? 0);
  chownTree(otherHome, other.uid, other.gid);
  chownTree(twinDir, twinUser.uid, twinUser.gid);
  chmodSync(twinDir, 0o700);
  const otherEnv = { ...env, DSO_HOME: otherHome, DSO_PASSPHRASE: HELD.otherPassphrase };
  for (const [args, input] of [[['init'], undefined], [['secret', 'set', 'app/other'], HELD.otherValue]] as const) {
    const r = await run(as(other, [DSO_BIN, ...args]), { cwd: otherHome, env: otherEnv, ...(input === undefined ? {} : { input }) });
    expect(r.code, r.stderr).toBe(0);
  }
  for (const [args, input] of [[['init'], undefined], [['secret', 'set', 'app/home'], HELD.homeValue], [['secret', 'set', 'app/local'], HELD.localValue]] as const) {
    const r = await dso([...args], input === undefined ? {} : { input });
    expect(r.code, r.stderr).toBe(0);
  }

  // The spies wait for every provider process and plugin of the scenario before they look. As
  // root: spy as nobody (the default), spyw and twin each as a user of its own, shared as
  // nobody, other as nobody (the owner of its vault).
  const count = s.asUser ? { providers: 2, plugins: 2 } : { providers: 4, plugins: 4 };
  const spySettings = `{ dso: "${DSO_BIN}", provider_processes: ${count.providers}, plugins: ${count.plugins}, wait_s: 30 }`;
  const pin = (name: string) => `sha256: "${sha256(join(plugins, `dso-provider-${name}`))}"\n    plugin_dir: ${plugins}`;
  const yaml = `providers:
  home:
    type: local
    passphrase_env: DSO_PASSPHRASE
  other:
    type: local
    isolation: process
    path: ${join(otherHome, 'vault.enc')}
    passphrase_env: OTHER_PASSPHRASE
    user: "${other.uid}:${other.gid}"
  spy:
    type: plugin
    plugin: spy
    ${pin('spy')}
    env: [SPY_OWN]
    timeout: 90s
    settings: ${spySettings}
  spyw:
    type: plugin
    plugin: spy
    isolation: worker
    ${pin('spy')}
    env: [SPYW_OWN]
    timeout: 90s
    user: ${spywUser.name}
    settings: ${spySettings}
${
  s.asUser
    ? ''
    : `  twin:
    type: plugin
    plugin: files
    ${pin('files')}
    env: [TWIN_TOKEN]
    user: ${twinUser.name}
    settings: { dir: ${twinDir} }
  shared:
    type: plugin
    plugin: files
    ${pin('files')}
    env: [SHARED_TOKEN]
    settings: { dir: ${sharedDir} }
`
}`;
  const compose = `services:
  app:
    image: dso-test/busybox:latest
    init: true
    command: ["sleep", "3600"]
    environment:
      SPY_FILE: dsofile://spy:report
      SPYW_FILE: dsofile://spyw:report
      HOME_FILE: dsofile://home:app/home
      OTHER_FILE: dsofile://other:app/other
${s.asUser ? '' : '      TWIN_FILE: dsofile://twin:app/twin\n      SHARED_FILE: dsofile://shared:app/shared\n'}${s.agent ? '' : '      LOCAL_FILE: dsofile://app/local\n'}`;
  writeFiles(sb.dir, { 'dso.yaml': yaml, 'compose.yaml': compose });
  for (const f of ['dso.yaml', 'compose.yaml']) chownSync(join(sb.dir, f), user?.uid ?? 0, user?.gid ?? 0);
  return { sb, env, dso, ...(user ? { user } : {}) };
}

const SCENARIOS: Scenario[] = [
  { name: 'root-local', asUser: false, agent: false },
  { name: 'root-agent', asUser: false, agent: true },
  { name: 'user-local', asUser: true, agent: false },
  { name: 'user-agent', asUser: true, agent: true },
];

for (const scenario of SCENARIOS) {
  const asUser = scenario.asUser;
  describe(`DSO as ${asUser ? 'a normal user' : 'root'}, ${scenario.agent ? 'through the agent' : 'in Local Mode'}`, () => {
    let reports: { spy: Report; spyw: Report };
    let container: string;

    beforeAll(async () => {
      const { sb, env, dso, user } = await prepare(scenario);
      container = `${projectOf(sb)}-app-1`;
      let up: RunResult;
      if (scenario.agent) {
        const log: string[] = [];
        const socket = join(sb.dir, 'agent.sock');
        const agent = spawnAgent({ config: join(sb.dir, 'dso.yaml'), socket, stateDir: join(sb.dir, 'agent-state'), env, log, wrap: as(user, [], [dockerGid()]) });
        agents.push(agent);
        await waitFor('the agent\'s socket', async () => {
          try {
            statSync(socket);
            return true;
          } catch {
            return false;
          }
        }, { context: () => log.join('') });
        // The CLI holds nothing of the providers' here: the agent runs them.
        up = await dso(['up', '-d'], { env: { DSO_MODE: 'cloud', DSO_AGENT_SOCKET: socket } });
        if (up.code !== 0) up.stderr += `\nagent log:\n${log.join('')}`;
      } else {
        up = await dso(['up', '-d']);
      }
      expect(up.code, up.stderr).toBe(0);
      const read = async (v: string) => JSON.parse(await dockerOk(['exec', container, 'sh', '-c', `cat "$${v}"`])) as Report;
      reports = { spy: await read('SPY_FILE'), spyw: await read('SPYW_FILE') };
    });

    afterAll(async () => {
      await dockerOk(['rm', '-f', container]).catch(() => {});
    });

    test('the providers served their values', async () => {
      const cat = async (v: string) => dockerOk(['exec', container, 'sh', '-c', `cat "$${v}"`]);
      expect(await cat('HOME_FILE')).toBe(HELD.homeValue);
      expect(await cat('OTHER_FILE')).toBe(HELD.otherValue);
      if (!asUser) expect(await cat('TWIN_FILE')).toBe(HELD.twinValue);
      if (!scenario.agent) expect(await cat('LOCAL_FILE')).toBe(HELD.localValue);
    });

    for (const which of ['spy', 'spyw'] as const) {
      test(`${which} (${which === 'spy' ? 'under a provider process' : 'under a Worker'}): its own variable is all it finds of its own; DSO's processes refuse it`, () => {
        const r = reports[which];
        // The scan works: the plugin reads its own environment, and it saw the processes it waited for.
        expect(r.own).toEqual([which === 'spy' ? SPY_OWN : SPYW_OWN]);
        expect(r.seen.provider_processes).toBeGreaterThanOrEqual(asUser ? 2 : 4);
        expect(r.seen.plugins).toBeGreaterThanOrEqual(asUser ? 2 : 4);
        // It walked up to the CLI or the agent, and could read none of them.
        expect(r.ancestors.length).toBeGreaterThanOrEqual(which === 'spy' ? 2 : 1);
        expect(r.ancestors.at(-1)!.cmd).toContain(scenario.agent ? ' agent' : ' up');
        const dsoProcesses = [...r.ancestors, ...r.family.filter((p) => p.cmd.startsWith(DSO_BIN))];
        expect(dsoProcesses.length).toBeGreaterThanOrEqual(asUser ? 2 : 4);
        for (const p of dsoProcesses) expect({ cmd: p.cmd, environ: p.environ, mem: p.mem }).toEqual({ cmd: p.cmd, environ: 'PermissionError', mem: 'PermissionError' });
        // Nothing DSO holds, anywhere it looked, not even a piece of it.
        for (const held of Object.values(HELD)) expect(r.found.filter((f) => held.startsWith(f) || f.startsWith(held))).toEqual([]);
      });
    }

    if (!asUser) {
      test('as root, each plugin runs as its user, with no groups, no capabilities; under a provider process, no_new_privs', () => {
        const spy = reports.spy.self;
        expect(spy.Uid).toBe(`${NOBODY}\t${NOBODY}\t${NOBODY}\t${NOBODY}`);
        expect(spy.Gid).toBe(`${NOBODY}\t${NOBODY}\t${NOBODY}\t${NOBODY}`);
        expect({ groups: spy.Groups, prm: spy.CapPrm, eff: spy.CapEff, amb: spy.CapAmb, nnp: spy.NoNewPrivs }).toEqual({ groups: '', prm: '0000000000000000', eff: '0000000000000000', amb: '0000000000000000', nnp: '1' });
        const spyw = reports.spyw.self;
        expect(spyw.Uid).toBe(`${spywUser.uid}\t${spywUser.uid}\t${spywUser.uid}\t${spywUser.uid}`);
        expect({ groups: spyw.Groups, prm: spyw.CapPrm, eff: spyw.CapEff, amb: spyw.CapAmb }).toEqual({ groups: '', prm: '0000000000000000', eff: '0000000000000000', amb: '0000000000000000' });
      });

      test('as root, a plugin with a user of its own is out of reach; one sharing the spy\'s user is not (docs/providers.md)', () => {
        // spyw and twin run as users of their own; shared, like spy, as nobody: the documented
        // limit is that plugins sharing a user can read each other.
        expect(reports.spy.found).toContain(SHARED_TOKEN);
        expect(reports.spy.found.filter((f) => !SHARED_TOKEN.startsWith(f))).toEqual([]);
        expect(reports.spyw.found).toEqual([]);
      });
    } else {
      test('as a normal user, each plugin runs as DSO\'s user, with its groups (Docker\'s included: the documented limit)', () => {
        for (const r of [reports.spy, reports.spyw]) {
          expect(r.self.Uid).toBe(`${dsoUser.uid}\t${dsoUser.uid}\t${dsoUser.uid}\t${dsoUser.uid}`);
          expect(r.self.Groups!.split(/\s+/)).toContain(String(dockerGid()));
        }
      });

      test('as a normal user, the two spies, sharing DSO\'s user, can read each other (the documented limit), and nothing else', () => {
        // Each reads the other's variable, and then finds its own in the other's memory too.
        const spies = (f: string) => SPY_OWN.startsWith(f) || SPYW_OWN.startsWith(f);
        expect(reports.spy.found).toContain(SPYW_OWN);
        expect(reports.spyw.found).toContain(SPY_OWN);
        expect([...reports.spy.found, ...reports.spyw.found].filter((f) => !spies(f))).toEqual([]);
      });
    }

    test('no value on disk', () => {
      const hits = scanForLeaks([DATA_ROOT], [HELD.homeValue, HELD.otherValue, HELD.twinValue, HELD.localValue, HELD.passphrase, HELD.otherPassphrase]);
      expect(hits).toEqual([]);
    });
  });
}
