// Permissions, end to end with the compiled binary, every DSO process run under umask 000 (the
// worst a caller can hand it): `~/.dso` and its files, the vault, the Local Mode rotation state,
// the agent's socket, state directory, state file and fingerprint key have exactly the modes and
// owners the docs promise (docs/security.md, docs/agent.md, docs/vault-format.md,
// docs/configuration.md). Through the socket, a user outside `agent.socket.group` is refused
// with "permission denied" (also in the moment between the socket's creation and its chmod, held
// open with strace), while a member reads a secret. A plugin whose file changed after its hash
// was pinned is refused, named, and never run: at `up` in Local Mode, and when swapped between
// two calls while the agent runs; so is one that became group-writable. With an admin socket and
// metrics on a unix socket, each of three groups may do its own part only: read secrets, rotate,
// read metrics.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeDirectory } from '../../src/system/files.ts';
import { startFakeVault, type FakeVault } from '../fakes/vault/server.ts';
import { DOCKER_HOST, DSO_BIN, canary, dockerOk, dso, projectOf, run, sandbox, writeFiles, type RunResult, type Sandbox } from '../integration/support.ts';

const NOBODY = 65534;
const STRACE = Bun.which('strace');
/** Runs argv under umask 000. */
const umask000 = (argv: string[]) => ['sh', '-c', 'umask 000 && exec "$@"', 'sh', ...argv];
/** Runs argv as the unprivileged user nobody, with only the supplementary groups given. */
const asNobody = (argv: string[], groups: number[] = []) => ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, groups.length ? `--groups=${groups.join(',')}` : '--clear-groups', ...argv];
const mode = (p: string) => lstatSync(p).mode & 0o7777;
const owner = (p: string) => `${lstatSync(p).uid}:${lstatSync(p).gid}`;
const sha256 = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

let sb: Sandbox;
let vault: FakeVault;
let token: string;
let group: { name: string; gid: number };
const SECRET = canary('perm');
const PLUGIN_VALUE = canary('plugin');

/** Every file and directory under `dir` (itself included) with its mode and owner. */
function tree(dir: string): Array<{ path: string; dir: boolean; mode: number; owner: string }> {
  const out = [{ path: dir, dir: true, mode: mode(dir), owner: owner(dir) }];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (lstatSync(p).isDirectory()) out.push(...tree(p));
    else out.push({ path: p, dir: false, mode: mode(p), owner: owner(p) });
  }
  return out;
}

/** Private: directories 0700, files 0600, all owned by `who`. */
function expectPrivate(dir: string, who: string): void {
  const entries = tree(dir);
  for (const e of entries) expect({ path: e.path, mode: e.mode.toString(8), owner: e.owner }).toEqual({ path: e.path, mode: e.dir ? '700' : '600', owner: who });
}

beforeAll(async () => {
  sb = sandbox('permissions');
  // Others may pass through the sandbox to the agent's socket, and to nobody's home below.
  chmodSync(sb.dir, 0o711);
  vault = await startFakeVault();
  token = vault.createToken({ root: true });
  vault.putSecret('app/db', { password: SECRET });
  const name = `dsoperm${process.pid}`;
  const add = await run(['groupadd', name], { env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' } });
  expect(add.code, add.stderr).toBe(0);
  const line = readFileSync('/etc/group', 'utf8').split('\n').find((l) => l.startsWith(`${name}:`))!;
  group = { name, gid: Number(line.split(':')[2]) };
});

afterAll(async () => {
  if (group) await run(['groupdel', group.name], { env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' } });
  vault?.stop();
  sb.cleanup();
});

describe('DSO_HOME and the vault', () => {
  test('~/.dso of an unprivileged user: 0700, vault and lock 0600, all the user\'s', async () => {
    const home = join(sb.dir, 'nobody-home');
    mkdirSync(home, { mode: 0o755 });
    chownSync(home, NOBODY, NOBODY);
    const env = { PATH: sb.env.PATH!, HOME: home, DSO_PASSPHRASE: 'a passphrase for nobody', NO_COLOR: '1' };
    for (const [args, input] of [[['init'], undefined], [['secret', 'set', 'app/x'], `${SECRET}\n`]] as const) {
      const r = await run(asNobody(umask000([DSO_BIN, ...args])), { cwd: home, env, ...(input ? { input } : {}) });
      expect(r.code, r.stderr).toBe(0);
    }
    const dot = join(home, '.dso');
    expect(readdirSync(dot).sort()).toEqual(['vault.enc', 'vault.enc.lock']);
    expectPrivate(dot, `${NOBODY}:${NOBODY}`);
  });

  test('Local Mode: the vault, and the rotation state a `secret set` writes, under umask 000', async () => {
    const dsoU = (args: string[], input?: string) => run(umask000([DSO_BIN, ...args]), { cwd: sb.dir, env: sb.env, ...(input ? { input } : {}) });
    writeFiles(sb.dir, { 'compose.yaml': 'services:\n  app:\n    image: dso-test/busybox:latest\n    init: true\n    command: ["sleep", "3600"]\n    environment:\n      TOKEN_FILE: dsofile://app/token\n' });
    try {
      expect((await dsoU(['init'])).code).toBe(0);
      expect((await dsoU(['secret', 'set', 'app/token'], canary('t1'))).code).toBe(0);
      const up = await dsoU(['up', '-d']);
      expect(up.code, up.stderr).toBe(0);
      const set = await dsoU(['secret', 'set', 'app/token'], canary('t2'));
      expect(set.code, set.stderr).toBe(0);
      expect(existsSync(join(sb.home, 'state', 'rotations.json'))).toBe(true);
      expect(readdirSync(join(sb.home, 'state', 'locks')).length).toBeGreaterThan(0);
      expectPrivate(sb.home, '0:0');
    } finally {
      await dso(sb, ['down', '-t', '1']);
    }
  });
});

describe('directories DSO makes for others to reach', () => {
  test('keep their documented mode under a umask that would narrow it (system setup, bootstrap, the agent)', () => {
    const old = process.umask(0o077);
    try {
      makeDirectory(join(sb.dir, 'made', 'etc', 'dso'), 0o755);
      mkdirSync(join(sb.dir, 'made', 'kept'), { mode: 0o700 });
      makeDirectory(join(sb.dir, 'made', 'kept', 'run'), 0o755);
    } finally {
      process.umask(old);
    }
    for (const d of ['made', 'made/etc', 'made/etc/dso', 'made/kept/run']) expect([d, mode(join(sb.dir, d)).toString(8)]).toEqual([d, '755']);
    // A directory that was there already is not DSO's to change.
    expect(mode(join(sb.dir, 'made', 'kept')).toString(8)).toBe('700');
  });
});

describe('the agent', () => {
  let agent: ReturnType<typeof Bun.spawn> | undefined;
  const log: string[] = [];
  let socket: string;
  const stateDir = () => join(sb.dir, 'agent-state');
  const pluginDir = () => join(sb.dir, 'plugins');
  const plugin = () => join(pluginDir(), 'dso-provider-oneshot');
  const runs = () => join(sb.dir, 'plugin-runs');

  /** A plugin that answers one call and exits, so that every call starts (and checks) it anew. */
  const pluginScript = (version: string) => `#!/bin/sh
PATH=/usr/bin:/bin
read -r hello || exit 0
echo ${version} >>${runs()}
printf '{"type":"ready","capabilities":{"list":false,"versions":false}}\\n'
read -r line || exit 0
id=$(printf '%s\\n' "$line" | sed -n 's/.*"id":\\([0-9][0-9]*\\).*/\\1/p')
printf '{"id":%s,"type":"value","value_base64":"%s"}\\n' "$id" "$(base64 -w0 <${join(sb.dir, 'plugin-store')})"
`;

  const config = (hash: string) => `providers:
  vault:
    addr: ${vault.url}
    auth: { method: token, token_env: VAULT_TOKEN }
  oneshot:
    type: plugin
    plugin: oneshot
    plugin_dir: ${pluginDir()}
    sha256: "${hash}"
agent:
  socket: { group: ${group.name}, mode: "0660" }
  watch: { polling_interval: 1h, debounce_window: 200ms }
  cache: { ttl: 1s }
`;

  /** POST /v1/resolve through curl, as nobody with the given groups (-v: curl names the errno). */
  const resolveAs = (groups: number[], ids: string[]): Promise<RunResult> =>
    run(asNobody(['curl', '-v', '-sS', '--unix-socket', socket, '-X', 'POST', '-H', 'content-type: application/json', '--data', JSON.stringify({ secrets: ids }), 'http://dso-agent/v1/resolve'], groups), { env: { PATH: sb.env.PATH! } });
  const resolve = async (ids: string[]): Promise<string> => {
    const r = await fetch('http://dso-agent/v1/resolve', { method: 'POST', unix: socket, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ secrets: ids }) } as RequestInit);
    return Buffer.from(await r.arrayBuffer()).toString('latin1');
  };

  beforeAll(() => {
    socket = join(sb.dir, 'run', 'dso.sock');
    mkdirSync(pluginDir(), { mode: 0o755 });
    chmodSync(pluginDir(), 0o755);
    writeFileSync(plugin(), pluginScript('v1'), { mode: 0o755 });
    chmodSync(plugin(), 0o755);
    writeFileSync(join(sb.dir, 'plugin-store'), PLUGIN_VALUE, { mode: 0o600 });
    // Run by a root agent, the plugin is nobody (docs/providers.md): its files are nobody's.
    writeFileSync(runs(), '', { mode: 0o600 });
    for (const p of [join(sb.dir, 'plugin-store'), runs()]) chownSync(p, NOBODY, NOBODY);
    writeFileSync(join(sb.dir, 'agent.yaml'), config(sha256(plugin())));
  });

  afterAll(async () => {
    // strace blocks fatal signals while it runs a program: stop the agent itself, by its pid.
    const status = await fetch('http://dso-agent/v1/status', { unix: socket } as RequestInit).then((r) => r.json() as Promise<{ pid: number }>).catch(() => undefined);
    if (status) process.kill(status.pid, 'SIGTERM');
    else agent?.kill('SIGKILL');
    await agent?.exited;
  });

  test('started under umask 000, its socket never lets an outsider in, even while its chmod is held up', async () => {
    if (!STRACE) throw new Error('strace is needed (scripts/test-env.sh installs it)');
    // strace holds the agent in its chmod of the socket for 3 s: the moment in which a socket
    // created with the umask's mode would be open to everyone.
    const argv = [STRACE, '-f', '-qq', '-o', '/dev/null', '-P', socket, '-e', 'trace=chmod,fchmodat', '-e', 'inject=chmod,fchmodat:delay_enter=3000000', ...umask000([DSO_BIN, 'agent', '--config', join(sb.dir, 'agent.yaml'), '--socket', socket, '--metrics-address', 'off', '--state-dir', stateDir()])];
    agent = Bun.spawn(argv, { cwd: sb.dir, env: { PATH: sb.env.PATH!, VAULT_TOKEN: token, DOCKER_HOST }, stdout: 'ignore', stderr: 'pipe' });
    void (async () => {
      for await (const chunk of agent!.stderr as ReadableStream<Uint8Array>) log.push(new TextDecoder().decode(chunk));
    })();
    for (let i = 0; i < 200 && !existsSync(socket); i++) await Bun.sleep(25);
    expect(existsSync(socket)).toBe(true);
    const early = await resolveAs([], ['vault:app/db#password']);
    expect(early.code).not.toBe(0);
    expect(early.stdout).not.toContain(SECRET);
    expect(early.stderr.toLowerCase()).toContain('permission denied');
    for (let i = 0; i < 600 && !log.join('').includes('Agent started'); i++) await Bun.sleep(50);
    expect(log.join('')).toContain('Agent started');
  });

  test('the socket: 0660, owned by agent.socket.group; its directory 0755', () => {
    const st = statSync(socket);
    expect(st.isSocket()).toBe(true);
    expect((st.mode & 0o7777).toString(8)).toBe('660');
    expect(st.gid).toBe(group.gid);
    expect(mode(join(sb.dir, 'run')).toString(8)).toBe('755');
  });

  test('outside the group: permission denied; in the group: the secret', async () => {
    const outsider = await resolveAs([], ['vault:app/db#password']);
    expect(outsider.code).not.toBe(0);
    expect(outsider.stderr.toLowerCase()).toContain('permission denied');
    expect(outsider.stdout).not.toContain(SECRET);
    const member = await resolveAs([group.gid], ['vault:app/db#password']);
    expect(member.code, member.stderr).toBe(0);
    expect(member.stdout).toContain(SECRET);
  });

  test('the state directory (0700), fingerprint key and state file (0600), after a rotation', async () => {
    const project = projectOf(sb);
    writeFiles(sb.dir, { 'compose.yaml': 'services:\n  worker:\n    image: dso-test/busybox:latest\n    init: true\n    command: ["sh", "-c", "trap : HUP; while :; do sleep 1 & wait $$!; done"]\n    environment:\n      DB_FILE: dsofile://vault:app/db#password\n    labels: { dso.strategy: signal }\n' });
    const env = { DSO_MODE: 'cloud', DSO_AGENT_SOCKET: socket };
    try {
      const up = await dso(sb, ['up', '-d'], { env });
      expect(up.code, up.stderr).toBe(0);
      const next = canary('perm-next');
      vault.putSecret('app/db', { password: next });
      const r = await fetch('http://dso-agent/v1/webhook', { method: 'POST', unix: socket, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ secrets: ['vault:app/db#password'] }) } as RequestInit);
      expect(r.status).toBe(202);
      for (let i = 0; i < 240; i++) {
        if ((await dockerOk(['exec', `${project}-worker-1`, 'cat', '/run/secrets/vault/app/db#password']).catch(() => '')) === next && existsSync(join(stateDir(), 'rotations.json')) && readFileSync(join(stateDir(), 'rotations.json'), 'utf8').includes('"status": "done"')) break;
        await Bun.sleep(250);
      }
      expect(readFileSync(join(stateDir(), 'rotations.json'), 'utf8')).toContain('"status": "done"');
      expect(statSync(join(stateDir(), 'fingerprint.key')).size).toBe(32);
      expectPrivate(stateDir(), '0:0');
    } finally {
      await dso(sb, ['down', '-t', '1'], { env });
    }
  });

  test('started under root\'s umask 077, it makes its socket\'s directories 0755, so the group can still reach it', async () => {
    const deep = join(sb.dir, 'deep', 'run', 'dso.sock');
    const proc = Bun.spawn(['sh', '-c', 'umask 077 && exec "$@"', 'sh', DSO_BIN, 'agent', '--config', join(sb.dir, 'agent.yaml'), '--socket', deep, '--metrics-address', 'off', '--state-dir', join(sb.dir, 'agent-state-077')], { cwd: sb.dir, env: { PATH: sb.env.PATH!, VAULT_TOKEN: token, DOCKER_HOST }, stdout: 'ignore', stderr: 'ignore' });
    try {
      for (let i = 0; i < 400 && !(existsSync(deep) && mode(deep) === 0o660); i++) await Bun.sleep(25);
      expect(mode(join(sb.dir, 'deep')).toString(8)).toBe('755');
      expect(mode(join(sb.dir, 'deep', 'run')).toString(8)).toBe('755');
      expect(mode(deep).toString(8)).toBe('660');
      const member = await run(asNobody(['curl', '-sS', '--unix-socket', deep, 'http://dso-agent/v1/health'], [group.gid]), { env: { PATH: sb.env.PATH! } });
      expect(member.code, member.stderr).toBe(0);
      expect(member.stdout).toContain('ok');
      expectPrivate(join(sb.dir, 'agent-state-077'), '0:0');
    } finally {
      proc.kill('SIGTERM');
      await proc.exited;
    }
  });

  test('a plugin swapped after its hash was pinned is refused at its next start, named, and never run', async () => {
    expect(await resolve(['oneshot:app/a'])).toContain(PLUGIN_VALUE);
    // An upgrade as a package manager does it: a new file renamed over the old one.
    writeFileSync(`${plugin()}.new`, pluginScript('v2'), { mode: 0o755 });
    chmodSync(`${plugin()}.new`, 0o755);
    renameSync(`${plugin()}.new`, plugin());
    await Bun.sleep(1500); // past the cache's ttl
    const refused = await resolve(['oneshot:app/b']);
    expect(refused).not.toContain(PLUGIN_VALUE);
    expect(refused).toContain('"kind":"config"');
    expect(refused).toContain(`plugin ${plugin()} does not match its pin and was not run`);
    expect(readFileSync(runs(), 'utf8')).not.toContain('v2');
    // Through `up` in Cloud Mode: a clear error naming the plugin, and nothing created.
    const project = projectOf(sb);
    writeFiles(sb.dir, { 'compose.yaml': 'services:\n  app:\n    image: dso-test/busybox:latest\n    command: ["sleep", "3600"]\n    environment:\n      X_FILE: dsofile://oneshot:app/c\n' });
    const up = await dso(sb, ['up', '-d'], { env: { DSO_MODE: 'cloud', DSO_AGENT_SOCKET: socket } });
    expect(up.code).not.toBe(0);
    expect(up.stderr).toContain('oneshot:app/c');
    expect(up.stderr).toContain(`plugin ${plugin()} does not match its pin`);
    expect(await dockerOk(['ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`])).toBe('');
    expect(await dockerOk(['ps', '-aq', '--filter', `label=dso.project=${project}`])).toBe('');
    expect(readFileSync(runs(), 'utf8')).not.toContain('v2');
  });

  test('the pinned plugin made group-writable is refused with the fix; put back, it runs again', async () => {
    writeFileSync(plugin(), pluginScript('v1'), { mode: 0o755 });
    chmodSync(plugin(), 0o775);
    const refused = await resolve(['oneshot:app/d']);
    expect(refused).not.toContain(PLUGIN_VALUE);
    expect(refused).toContain('chmod go-w');
    chmodSync(plugin(), 0o755);
    expect(await resolve(['oneshot:app/e'])).toContain(PLUGIN_VALUE);
  });

  test('Local Mode: `up` with a plugin that does not match its pin starts nothing and names it', async () => {
    writeFileSync(plugin(), pluginScript('v3'), { mode: 0o755 });
    const before = readFileSync(runs(), 'utf8');
    writeFileSync(join(sb.dir, 'local-dso.yaml'), `providers:\n  oneshot:\n    type: plugin\n    plugin: oneshot\n    plugin_dir: ${pluginDir()}\n    sha256: "${'0'.repeat(64)}"\n`);
    const up = await run(umask000([DSO_BIN, 'up', '-d']), { cwd: sb.dir, env: { ...sb.env, DSO_MODE: 'local', DSO_CONFIG: join(sb.dir, 'local-dso.yaml') } });
    expect(up.code).not.toBe(0);
    expect(up.stderr).toContain(`plugin ${plugin()} does not match its pin and was not run`);
    expect(up.stderr).toContain(`sha256sum ${plugin()}`);
    expect(await dockerOk(['ps', '-aq', '--filter', `label=com.docker.compose.project=${projectOf(sb)}`])).toBe('');
    expect(readFileSync(runs(), 'utf8')).toBe(before);
    rmSync(join(sb.dir, 'local-dso.yaml'));
  });
});

describe('the admin socket and the metrics socket: who may rotate, who may read metrics', () => {
  let agent: ReturnType<typeof Bun.spawn> | undefined;
  const log: string[] = [];
  const PATH = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' };
  let admins: { name: string; gid: number };
  let scrapers: { name: string; gid: number };
  const dir = () => join(sb.dir, 'run2');
  const api = () => join(dir(), 'dso.sock');
  const admin = () => join(dir(), 'admin.sock');
  const metrics = () => join(dir(), 'metrics.sock');
  const ADMIN_SECRET = canary('perm-admin');

  const addGroup = async (name: string) => {
    const r = await run(['groupadd', name], { env: PATH });
    expect(r.code, r.stderr).toBe(0);
    const line = readFileSync('/etc/group', 'utf8').split('\n').find((l) => l.startsWith(`${name}:`))!;
    return { name, gid: Number(line.split(':')[2]) };
  };
  /** curl as nobody with `groups`, on `socket`: -v so that a refusal names its errno. */
  const curlAs = (groups: number[], socket: string, path: string, body?: unknown): Promise<RunResult> =>
    run(asNobody(['curl', '-v', '-sS', '--unix-socket', socket, ...(body === undefined ? [] : ['-X', 'POST', '-H', 'content-type: application/json', '--data', JSON.stringify(body)]), `http://dso-agent${path}`], groups), { env: { PATH: sb.env.PATH! } });
  const start = () => {
    agent = Bun.spawn(umask000([DSO_BIN, 'agent', '--config', join(sb.dir, 'agent-admin.yaml'), '--state-dir', join(sb.dir, 'agent-state-admin')]), { cwd: sb.dir, env: { PATH: sb.env.PATH!, VAULT_TOKEN: token, DOCKER_HOST }, stdout: 'ignore', stderr: 'pipe' });
    void (async () => {
      for await (const chunk of agent!.stderr as ReadableStream<Uint8Array>) log.push(new TextDecoder().decode(chunk));
    })();
  };
  const started = async () => {
    for (let i = 0; i < 400 && !log.join('').includes('"msg":"Agent started"'); i++) await Bun.sleep(25);
    expect(log.join('')).toContain('"msg":"Agent started"');
  };

  beforeAll(async () => {
    admins = await addGroup(`dsoadm${process.pid}`);
    scrapers = await addGroup(`dsomet${process.pid}`);
    vault.putSecret('app/admin', { password: ADMIN_SECRET });
    writeFileSync(
      join(sb.dir, 'agent-admin.yaml'),
      `providers:
  vault:
    addr: ${vault.url}
    auth: { method: token, token_env: VAULT_TOKEN }
agent:
  socket: { path: ${api()}, group: ${group.name}, admin: { path: ${admin()}, group: ${admins.name} } }
  metrics: { address: "unix:${metrics()}", group: ${scrapers.name} }
  watch: { polling_interval: 1h }
`,
    );
    start();
    await started();
  });

  afterAll(async () => {
    agent?.kill('SIGTERM');
    await agent?.exited;
    for (const g of [admins, scrapers]) if (g) await run(['groupdel', g.name], { env: PATH });
  });

  test('made under umask 000, each socket has its mode and its group', () => {
    for (const [path, gid] of [[api(), group.gid], [admin(), admins.gid], [metrics(), scrapers.gid]] as const) {
      const st = statSync(path);
      expect([path, st.isSocket(), (st.mode & 0o7777).toString(8), st.gid]).toEqual([path, true, '660', gid]);
    }
  });

  test('a reader resolves, is refused rotate and the webhook (403, naming the admin socket), and cannot open the admin or metrics socket', async () => {
    const member = await curlAs([group.gid], api(), '/v1/resolve', { secrets: ['vault:app/admin#password'] });
    expect(member.code, member.stderr).toBe(0);
    expect(member.stdout).toContain(ADMIN_SECRET);
    for (const [path, body] of [['/v1/rotate', { secret: 'vault:app/admin#password', dryRun: true }], ['/v1/webhook', { secrets: ['vault:app/admin#password'] }]] as const) {
      const r = await curlAs([group.gid], api(), path, body);
      expect(r.stdout).toContain('"code":"PERMISSION_DENIED"');
      expect(r.stdout).toContain(`the agent serves it on its admin socket ${admin()}`);
      expect(r.stderr).toContain('HTTP/1.1 403');
    }
    for (const socket of [admin(), metrics()]) {
      const r = await curlAs([group.gid], socket, '/v1/health');
      expect(r.code).not.toBe(0);
      expect(r.stderr.toLowerCase()).toContain('permission denied');
    }
  });

  test('an admin rotates and triggers checks on the admin socket, and can neither read a secret nor open the API socket', async () => {
    const rotate = await curlAs([admins.gid], admin(), '/v1/rotate', { secret: 'vault:app/admin#password', dryRun: true });
    expect(rotate.code, rotate.stderr).toBe(0);
    expect(rotate.stdout).toContain('"type":"result"');
    const hook = await curlAs([admins.gid], admin(), '/v1/webhook', { secrets: ['vault:app/admin#password'] });
    expect(hook.stderr).toContain('HTTP/1.1 202');
    const resolve = await curlAs([admins.gid], admin(), '/v1/resolve', { secrets: ['vault:app/admin#password'] });
    expect(resolve.stderr).toContain('HTTP/1.1 404');
    expect(resolve.stdout).not.toContain(ADMIN_SECRET);
    const outside = await curlAs([admins.gid], api(), '/v1/resolve', { secrets: ['vault:app/admin#password'] });
    expect(outside.code).not.toBe(0);
    expect(outside.stderr.toLowerCase()).toContain('permission denied');
  });

  test('`docker dso rotate`: through the admin socket for an admin; for a reader, a clear refusal that names it', async () => {
    const env = { PATH: sb.env.PATH!, HOME: '/nonexistent', NO_COLOR: '1', DSO_MODE: 'cloud' };
    const asAdmin = await run(asNobody([DSO_BIN, 'rotate', 'vault:app/admin#password', '--dry-run'], [admins.gid]), { env: { ...env, DSO_AGENT_ADMIN_SOCKET: admin() } });
    expect(asAdmin.code, asAdmin.stderr).toBe(0);
    const asReader = await run(asNobody([DSO_BIN, 'rotate', 'vault:app/admin#password', '--dry-run'], [group.gid]), { env: { ...env, DSO_AGENT_SOCKET: api() } });
    expect(asReader.code).toBe(14);
    expect(asReader.stderr).toContain(`the agent refused the rotation (403): this socket does not serve POST /v1/rotate: the agent serves it on its admin socket ${admin()}`);
    const readerOnAdmin = await run(asNobody([DSO_BIN, 'rotate', 'vault:app/admin#password', '--dry-run'], [group.gid]), { env: { ...env, DSO_AGENT_ADMIN_SOCKET: admin() } });
    expect(readerOnAdmin.code).toBe(11);
    expect(readerOnAdmin.stderr).toContain('join agent.socket.admin.group');
  });

  test('metrics: a member of agent.metrics.group reads them (names, never a value); others cannot open the socket', async () => {
    const scraper = await curlAs([scrapers.gid], metrics(), '/metrics');
    expect(scraper.code, scraper.stderr).toBe(0);
    expect(scraper.stdout).toContain('dso_build_info');
    expect(scraper.stdout).toContain('dso_api_requests_total');
    expect(scraper.stdout).not.toContain(ADMIN_SECRET);
    for (const groups of [[], [group.gid], [admins.gid]]) {
      const r = await curlAs(groups, metrics(), '/metrics');
      expect(r.code).not.toBe(0);
      expect(r.stderr.toLowerCase()).toContain('permission denied');
    }
  });

  test('SIGTERM removes the three sockets; killed, its sockets are replaced at the next start', async () => {
    agent!.kill('SIGTERM');
    expect(await agent!.exited).toBe(0);
    for (const p of [api(), admin(), metrics()]) expect([p, existsSync(p)]).toEqual([p, false]);
    log.length = 0;
    start();
    await started();
    agent!.kill('SIGKILL');
    await agent!.exited;
    for (const p of [api(), admin(), metrics()]) expect([p, existsSync(p)]).toEqual([p, true]);
    log.length = 0;
    start();
    await started();
    const scraper = await curlAs([scrapers.gid], metrics(), '/metrics');
    expect(scraper.code, scraper.stderr).toBe(0);
    const rotate = await curlAs([admins.gid], admin(), '/v1/rotate', { secret: 'vault:app/admin#password', dryRun: true });
    expect(rotate.stdout).toContain('"type":"result"');
  });
});
