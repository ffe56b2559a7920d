// The agent as a systemd service, on a real systemd: a Debian container booting /sbin/init
// (scripts/test-systemd-image.sh) gets the compiled dso, and `bootstrap agent` and `system
// setup` install it as they would on a host. Checked: the agent is active and answers `status`
// and resolves secrets from inside the unit's sandbox (Workers, a provider process, a plugin run
// as nobody, the JIT, the credentials file read back exactly); the sandbox is in force (only the
// capabilities to change users, no new privileges, a syscall filter, a read-only system, no
// /root) and still reaches the Docker socket; `system status|logs|restart|disable|enable` work;
// setup again changes nothing;
// `--enable-nonroot` runs it as the `dso` user in the Docker socket's group; and the reason
// given for leaving MemoryDenyWriteExecute out holds (with it: no JIT; without: JIT).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { agentResolve } from '../../src/agent/client.ts';
import { DOCKER_CONFIG, DOCKER_HOST, DSO_BIN, canary, run, type RunResult } from './support.ts';

const REPO = join(import.meta.dir, '..', '..');
const FILES_PLUGIN = join(REPO, 'providers', 'plugin', 'examples', 'dso-provider-files');
const TOKEN = canary('systemd');
// What the plugin serves: from a file, as plugins of the files example do (so not TOKEN, which
// must be nowhere on disk).
const PLUGIN_VALUE = canary('systemd-plugin');
// Every character the environment file must carry verbatim: quotes, $, %, backslash, spaces.
const VAULT_PASS = `it's a "pass" $HOME %h \\ end`;
const NAME = `dso-systemd-${randomBytes(4).toString('hex')}`;
const DOCKER_ENV = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', DOCKER_HOST, DOCKER_CONFIG };
const UNIT = 'dso-agent.service';

let hostPid = 0;

/** Runs `sh -c script` in the container; `env` names variables passed by name (values stay out of argv). */
async function inside(script: string, opts: { env?: Record<string, string>; input?: string } = {}): Promise<RunResult> {
  const names = Object.keys(opts.env ?? {}).flatMap((n) => ['-e', n]);
  return run(['docker', 'exec', ...(opts.input === undefined ? [] : ['-i']), ...names, NAME, 'sh', '-c', script], { env: { ...DOCKER_ENV, ...opts.env }, ...(opts.input === undefined ? {} : { input: opts.input }) });
}

async function ok(script: string, opts: { env?: Record<string, string>; input?: string } = {}): Promise<string> {
  const r = await inside(script, opts);
  if (r.code !== 0) throw new Error(`\`${script}\` exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout.trim();
}

const mainPid = async () => Number(await ok(`systemctl show -p MainPID --value ${UNIT}`));
/** The agent's socket, reached from this host through the container's root. */
const socket = () => `/proc/${hostPid}/root/run/dso/dso.sock`;

async function resolveAll(ids: string[]): Promise<Record<string, string>> {
  const r = await agentResolve(socket(), ids);
  try {
    expect(r.failures).toEqual([]);
    return Object.fromEntries([...r.values].map(([id, v]) => [id, new TextDecoder().decode(v.value.expose())]));
  } finally {
    for (const v of r.values.values()) v.value.wipe();
  }
}

/** The agent's process status lines (Uid, CapEff, NoNewPrivs, Seccomp...). */
async function processStatus(pid: number): Promise<Record<string, string>> {
  const text = await ok(`cat /proc/${pid}/status`);
  return Object.fromEntries(text.split('\n').map((l) => l.split(':\t').map((s) => s.trim()) as [string, string]));
}

beforeAll(async () => {
  const built = await run(['bash', join(REPO, 'scripts', 'test-systemd-image.sh')], { env: { ...DOCKER_ENV, ...(process.env.DSO_TEST_CACHE ? { DSO_TEST_CACHE: process.env.DSO_TEST_CACHE } : {}) } });
  if (built.code !== 0) throw new Error(`building the systemd image failed:\n${built.stderr}`);
  const image = built.stdout.trim();
  const engineSocket = DOCKER_HOST.replace(/^unix:\/\//, '');
  const start = (caps: string[]) =>
    run(
      [
        'docker', 'run', '-d', '--name', NAME,
        // What systemd needs in a container here (docs in scripts/test-systemd-image.sh).
        '--cgroupns=host', '-v', '/sys/fs/cgroup:/sys/fs/cgroup:rw', '--tmpfs', '/run', '--tmpfs', '/run/lock',
        ...caps, '--stop-signal', 'SIGRTMIN+3', '--network', 'none',
        // The private engine's socket where Docker's would be: the sandbox must reach it.
        '-v', `${engineSocket}:/run/docker.sock`,
        image,
      ],
      { env: DOCKER_ENV },
    );
  // Every capability this host grants. Engine 20.10 takes ALL literally, SYS_RESOURCE included,
  // which this host does not grant: it must be dropped. Engine 28 takes ALL as what the host
  // grants, and refuses to drop a capability it cannot see ("invalid CapDrop").
  let started = await start(['--cap-add', 'ALL', '--cap-drop', 'SYS_RESOURCE']);
  if (started.code !== 0 && started.stderr.includes('invalid CapDrop')) started = await start(['--cap-add', 'ALL']);
  if (started.code !== 0) throw new Error(`docker run failed: ${started.stderr}`);
  // Until systemd listens, systemctl cannot even ask; then --wait waits for the boot to finish.
  let state = '';
  for (let i = 0; i < 120 && !['running', 'degraded'].includes(state); i++) {
    if (i > 0) await Bun.sleep(500);
    state = (await inside('timeout 60 systemctl is-system-running --wait')).stdout.trim();
  }
  expect(['running', 'degraded']).toContain(state);
  hostPid = Number((await run(['docker', 'inspect', '-f', '{{.State.Pid}}', NAME], { env: DOCKER_ENV })).stdout.trim());
  await ok('mkdir -p /opt/dso-build');
  const copied = await run(['docker', 'cp', DSO_BIN, `${NAME}:/opt/dso-build/dso`], { env: DOCKER_ENV });
  if (copied.code !== 0) throw new Error(`docker cp failed: ${copied.stderr}`);
  // The group Docker's socket belongs to, as the docker.io package would create it.
  await ok('groupadd -g "$(stat -c %g /run/docker.sock)" docker');
});

afterAll(async () => {
  await run(['docker', 'rm', '-f', NAME], { env: DOCKER_ENV });
});

describe('dso on a host booted by systemd', () => {
  test('bootstrap agent on a fresh host: a commented dso.yaml, the binary, the hardened unit, an agent answering status', async () => {
    const r = await inside('/opt/dso-build/dso bootstrap agent');
    expect(r.stderr).toContain('Created /etc/dso/dso.yaml (no providers yet).');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('The DSO agent runs as root (pid ');
    expect(r.stdout).toContain('answers on /run/dso/dso.sock');
    expect(await ok('stat -c %a /etc/dso/dso.yaml')).toBe('644');
    expect(await ok('head -1 /etc/dso/dso.yaml')).toContain("the DSO agent's configuration");
    expect(await ok('readlink /usr/local/bin/dso-agent')).toBe('dso');
    expect(await ok(`systemctl is-active ${UNIT}`)).toBe('active');
    expect(await ok(`systemctl is-enabled ${UNIT}`)).toBe('enabled');
    // The unit as installed, with the real paths: systemd's own linter has nothing to say.
    const verify = await inside(`systemd-analyze verify /etc/systemd/system/${UNIT}`);
    expect(`${verify.stdout}${verify.stderr}`.trim()).toBe('');
    expect(verify.code).toBe(0);
    // What systemd runs: the dso-agent link, so the process is named after what it is.
    expect(await ok(`tr '\\0' ' ' </proc/${await mainPid()}/cmdline`)).toBe('/usr/local/bin/dso-agent --config /etc/dso/dso.yaml');
    const status = JSON.parse(await ok('dso status --json'));
    expect(status).toMatchObject({ mode: 'cloud', agent: { socket: '/run/dso/dso.sock', reachable: true, status: { providers: [] } } });
  });

  test('bootstrap agent again keeps dso.yaml and only reloads the agent', async () => {
    const pid = await mainPid();
    const r = await inside('dso bootstrap agent');
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('Keeping /etc/dso/dso.yaml, which exists.');
    expect(r.stderr).toContain('reload dso-agent.service');
    expect(r.stderr).not.toContain('install');
    expect(await mainPid()).toBe(pid);
  });

  test('system setup takes the providers\' variables into agent.env, and the agent resolves in its sandbox', async () => {
    // A vault the agent reads three ways: passphrase from a file, from a variable setup
    // captured, and in a provider process of its own.
    await ok('mkdir -p /var/lib/dso-test && umask 077 && cat >/etc/dso/vault.pass', { input: VAULT_PASS });
    await ok('DSO_HOME=/var/lib/dso-test dso init --passphrase-file /etc/dso/vault.pass');
    await ok('DSO_HOME=/var/lib/dso-test dso secret set app/token --passphrase-file /etc/dso/vault.pass', { input: TOKEN });
    await ok('cat >/etc/dso/dso.yaml', {
      input: `providers:
  local:
    type: local
    path: /var/lib/dso-test/vault.enc
    passphrase_file: /etc/dso/vault.pass
    # Without its JIT (the MemoryDenyWriteExecute test) the key derivation is about 16 times
    # slower; on a loaded CI machine that passed the default 15 s login timeout.
    timeout: 90s
  byenv:
    type: local
    path: /var/lib/dso-test/vault.enc
    passphrase_env: DSO_TEST_VAULT_PASS
  isolated:
    type: local
    isolation: process
    path: /var/lib/dso-test/vault.enc
    passphrase_file: /etc/dso/vault.pass
  plugged:
    type: plugin
    plugin: files
    sha256: "${createHash('sha256').update(readFileSync(FILES_PLUGIN)).digest('hex')}"
    settings: { dir: /var/lib/dso-test/plugin-secrets }
`,
    });
    // A plugin, in a provider process that drops to nobody: its files must be nobody's to read.
    await ok('install -d -m 0755 /usr/local/lib/dso/plugins && cat >/usr/local/lib/dso/plugins/dso-provider-files && chmod 0755 /usr/local/lib/dso/plugins/dso-provider-files', { input: readFileSync(FILES_PLUGIN, 'utf8') });
    await ok('install -d -m 0700 -o nobody /var/lib/dso-test/plugin-secrets/app && cat >/var/lib/dso-test/plugin-secrets/app/value && chown -R nobody /var/lib/dso-test/plugin-secrets && chmod 0700 /var/lib/dso-test/plugin-secrets', { input: PLUGIN_VALUE });
    const r = await inside('dso system setup', { env: { DSO_TEST_VAULT_PASS: VAULT_PASS, UNRELATED_SECRET: 'not-for-the-agent' } });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Stored in /etc/dso/agent.env: DSO_TEST_VAULT_PASS.');
    expect(r.stderr).toContain('restart dso-agent.service');
    expect(`${r.stdout}${r.stderr}`).not.toContain(VAULT_PASS);
    expect(await ok('stat -c "%a %U" /etc/dso/agent.env')).toBe('600 root');
    const envFile = await ok('cat /etc/dso/agent.env');
    expect(envFile).toContain('DSO_TEST_VAULT_PASS=');
    expect(envFile).not.toContain('UNRELATED_SECRET');
    const unit = await ok(`cat /etc/systemd/system/${UNIT}`);
    expect(unit).not.toContain(VAULT_PASS);
    expect(unit).not.toContain('DSO_TEST_VAULT_PASS');
    // byenv opens the vault only if systemd handed it the passphrase exactly as given.
    expect(await resolveAll(['local:app/token', 'byenv:app/token', 'isolated:app/token', 'plugged:app/value'])).toEqual({ 'local:app/token': TOKEN, 'byenv:app/token': TOKEN, 'isolated:app/token': TOKEN, 'plugged:app/value': PLUGIN_VALUE });
  });

  test('under the root unit, a plugin\'s provider process and the plugin run as nobody: no groups, no capabilities, no_new_privs', async () => {
    const agent = await mainPid();
    const children = (await ok(`cat /proc/${agent}/task/*/children`)).split(/\s+/).filter(Boolean).map(Number);
    const cmd = async (pid: number) => ok(`tr '\\0' ' ' </proc/${pid}/cmdline`);
    let provider: number | undefined;
    for (const c of children) if ((await cmd(c)).includes('__provider-process --user=65534:65534')) provider = c;
    expect(provider).toBeDefined();
    const plugin = Number((await ok(`cat /proc/${provider}/task/*/children`)).split(/\s+/).filter(Boolean)[0]);
    expect(await cmd(plugin)).toContain('/proc/self/fd/3');
    for (const pid of [provider!, plugin]) {
      const s = await processStatus(pid);
      expect({ Uid: s.Uid, Gid: s.Gid, Groups: s.Groups, CapEff: s.CapEff, CapPrm: s.CapPrm, NoNewPrivs: s.NoNewPrivs }).toEqual({
        Uid: '65534\t65534\t65534\t65534',
        Gid: '65534\t65534\t65534\t65534',
        Groups: '',
        CapEff: '0000000000000000',
        CapPrm: '0000000000000000',
        NoNewPrivs: '1',
      });
    }
    // The local vault's provider process stays root's, as the vault is (docs/providers.md).
    expect(children.length).toBeGreaterThanOrEqual(2);
  });

  test('the sandbox is in force: only the capabilities to change users, no new privileges, a syscall filter, a read-only system, no /root', async () => {
    const pid = await mainPid();
    const s = await processStatus(pid);
    // CAP_SETGID (6) and CAP_SETUID (7), which its provider processes need to drop to their users.
    expect(s).toMatchObject({ CapEff: '00000000000000c0', CapBnd: '00000000000000c0', CapAmb: '0000000000000000', NoNewPrivs: '1', Seccomp: '2' });
    // Seen from the agent's own mount namespace. /run and /dev/shm are not checked: in this Docker
    // container systemd 252 leaves them writable once ProtectKernelTunables=, ProtectControlGroups=
    // or ProtectProc= is set (measured with one setting at a time), which a host where systemd is
    // PID 1 is not expected to do; everything else is read-only here too.
    const ns = (cmd: string) => inside(`nsenter -t ${pid} -m sh -c '${cmd}'`);
    for (const path of ['/etc/dso/x', '/usr/local/bin/x', '/var/lib/x']) {
      const w = await ns(`touch ${path}`);
      expect(w.code).not.toBe(0);
      expect(w.stderr).toContain('Read-only file system');
    }
    expect((await ns('touch /run/dso/probe && rm /run/dso/probe')).code).toBe(0);
    // The container's /root has files; the agent sees an empty, inaccessible directory.
    expect(await ok('ls -A /root')).not.toBe('');
    expect((await ns('ls -A /root')).stdout.trim()).toBe('');
    // The JIT works inside the sandbox: JavaScriptCore's executable memory is mapped.
    expect(await ok(`grep -c " rwxp " /proc/${pid}/maps`)).not.toBe('0');
  });

  test('a process in the unit\'s sandbox reaches the Docker socket', async () => {
    // The unit's own [Service] settings, minus how to start and stop it, on a transient service.
    const unit = await ok(`cat /etc/systemd/system/${UNIT}`);
    const skip = /^(Type|ExecStart|ExecReload|EnvironmentFile|Restart|RestartSec|KillSignal|KillMode|TimeoutStopSec|SyslogIdentifier|RuntimeDirectory|RuntimeDirectoryMode)=/;
    const service = unit.slice(unit.indexOf('[Service]'), unit.indexOf('[Install]')).split('\n').slice(1);
    const props = service.filter((l) => l && !l.startsWith('#') && !skip.test(l));
    expect(props).toContain('ProtectSystem=strict');
    const quoted = props.map((p) => `-p '${p}'`).join(' ');
    const r = await inside(`systemd-run --quiet --wait --pipe ${quoted} /usr/local/bin/dso status --json --mode local`);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).docker).toMatchObject({ reachable: true });
  });

  test('dso status answers from the agent: the CLI finds its socket through /etc/dso/dso.yaml', async () => {
    const status = JSON.parse(await ok('dso status --json'));
    expect(status.mode).toBe('cloud');
    expect(status.agent.reachable).toBe(true);
    expect(status.agent.status.providers.map((p: { name: string }) => p.name).sort()).toEqual(['byenv', 'isolated', 'local', 'plugged']);
  });

  test('system status shows systemd\'s state and the agent\'s', async () => {
    const pid = await mainPid();
    const text = await inside('dso system status');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^dso-agent\.service: active \(running\) since .+, enabled at boot$/m);
    expect(text.stdout).toContain(`Main PID: ${pid}`);
    expect(text.stdout).toContain('Agent: answers on /run/dso/dso.sock');
    const json = JSON.parse(await ok('dso system status --json'));
    expect(json.unit).toMatchObject({ name: UNIT, installed: true, active: 'active', sub: 'running', enabled: 'enabled', mainPid: pid });
    expect(json.agent).toMatchObject({ socket: '/run/dso/dso.sock', reachable: true });
  });

  test('system logs -n 5 shows the agent\'s last lines from the journal', async () => {
    const r = await inside('dso system logs -n 5');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.length).toBeLessThanOrEqual(5);
    expect(r.stdout).toContain('dso-agent[');
    expect(r.stdout).not.toContain(TOKEN);
  });

  test('system restart gives a new process that answers', async () => {
    const before = await mainPid();
    const r = await inside('dso system restart');
    expect(r.code).toBe(0);
    const after = await mainPid();
    expect(after).not.toBe(before);
    expect(r.stdout).toContain(`The DSO agent restarted (pid ${after}) and answers on /run/dso/dso.sock.`);
    expect((await resolveAll(['byenv:app/token']))['byenv:app/token']).toBe(TOKEN);
  });

  test('setup again, without the variables: nothing rewritten, the stored credential kept, the agent only reloaded', async () => {
    const pid = await mainPid();
    const envBefore = await ok('sha256sum /etc/dso/agent.env /etc/systemd/system/dso-agent.service');
    const r = await inside('dso system setup');
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('reload dso-agent.service (the agent re-reads dso.yaml)');
    expect(r.stderr).not.toMatch(/install|write|restart/);
    expect(await ok('sha256sum /etc/dso/agent.env /etc/systemd/system/dso-agent.service')).toBe(envBefore);
    expect(await mainPid()).toBe(pid);
  });

  test('an invalid dso.yaml is refused before anything changes', async () => {
    const unitBefore = await ok(`sha256sum /etc/systemd/system/${UNIT}`);
    await ok('cp /etc/dso/dso.yaml /etc/dso/dso.yaml.good && printf "providers:\\n  bad:\\n    type: nope\\n" >/etc/dso/dso.yaml');
    try {
      const r = await inside('dso system setup');
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('/etc/dso/dso.yaml is not valid');
      expect(await ok(`sha256sum /etc/systemd/system/${UNIT}`)).toBe(unitBefore);
      expect(await ok(`systemctl is-active ${UNIT}`)).toBe('active');
    } finally {
      await ok('mv /etc/dso/dso.yaml.good /etc/dso/dso.yaml');
    }
  });

  test('MemoryDenyWriteExecute, left out of the unit: with it the agent still answers, without its JIT', async () => {
    await ok(`mkdir -p /etc/systemd/system/${UNIT}.d && printf "[Service]\\nMemoryDenyWriteExecute=yes\\n" >/etc/systemd/system/${UNIT}.d/mdwe.conf && systemctl daemon-reload`);
    try {
      expect((await inside('dso system restart')).code).toBe(0);
      expect((await resolveAll(['local:app/token']))['local:app/token']).toBe(TOKEN);
      expect(await ok(`grep -c " rwxp " /proc/${await mainPid()}/maps || true`)).toBe('0');
    } finally {
      await ok(`rm -r /etc/systemd/system/${UNIT}.d && systemctl daemon-reload`);
    }
    expect((await inside('dso system restart')).code).toBe(0);
    expect(await ok(`grep -c " rwxp " /proc/${await mainPid()}/maps`)).not.toBe('0');
  });

  test('--enable-nonroot: the agent runs as the system user dso, in the Docker socket\'s group', async () => {
    const r = await inside('dso system setup --enable-nonroot');
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('create the system user dso');
    // Files only root can read are named, with the fix.
    expect(r.stderr).toContain('cannot read /etc/dso/vault.pass: chgrp dso /etc/dso/vault.pass && chmod g+r /etc/dso/vault.pass');
    expect(r.stdout).toContain('The DSO agent runs as user dso');
    expect(await ok('getent passwd dso | cut -d: -f6,7')).toBe('/nonexistent:/usr/sbin/nologin');
    expect(await ok('test -e /nonexistent || echo absent')).toBe('absent');
    const unit = await ok(`cat /etc/systemd/system/${UNIT}`);
    expect(unit).toMatch(/^User=dso$/m);
    expect(unit).toMatch(/^SupplementaryGroups=docker$/m);
    await ok('chgrp dso /etc/dso/vault.pass /var/lib/dso-test /var/lib/dso-test/vault.enc && chmod g+r /etc/dso/vault.pass /var/lib/dso-test/vault.enc && chmod g+rx /var/lib/dso-test');
    expect((await inside('dso system restart')).code).toBe(0);
    const s = await processStatus(await mainPid());
    const dsoUid = await ok('id -u dso');
    const dockerGid = await ok('getent group docker | cut -d: -f3');
    expect(s.Uid!.split(/\s+/)).toEqual([dsoUid, dsoUid, dsoUid, dsoUid]);
    expect(s.Groups!.split(/\s+/)).toContain(dockerGid);
    expect(s.CapEff).toBe('0000000000000000');
    expect(await ok('stat -c "%U:%G %a" /run/dso/dso.sock')).toBe('dso:dso 660');
    expect(await resolveAll(['local:app/token', 'byenv:app/token', 'isolated:app/token'])).toEqual({ 'local:app/token': TOKEN, 'byenv:app/token': TOKEN, 'isolated:app/token': TOKEN });
    // Setup without the flag keeps it non-root; --disable-nonroot goes back to root.
    const again = await inside('dso system setup');
    expect(again.stderr).toContain('kept (--disable-nonroot runs it as root)');
    expect((await inside('dso system setup --disable-nonroot')).code).toBe(0);
    expect((await processStatus(await mainPid())).Uid!.split(/\s+/)[0]).toBe('0');
  });

  test('system disable stops the agent and keeps it from starting at boot; enable brings it back', async () => {
    const r = await inside('dso system disable');
    expect(r.code).toBe(0);
    expect((await inside(`systemctl is-active ${UNIT}`)).stdout.trim()).toBe('inactive');
    expect((await inside(`systemctl is-enabled ${UNIT}`)).stdout.trim()).toBe('disabled');
    expect(await ok('test -e /run/dso/dso.sock && echo present || echo gone')).toBe('gone');
    const status = await inside('dso system status');
    expect(status.code).toBe(3);
    expect(status.stdout).toContain('dso-agent.service: inactive (dead)');
    expect(status.stdout).toContain('Agent: not reachable');
    const enabled = await inside('dso system enable');
    expect(enabled.code).toBe(0);
    expect(await ok(`systemctl is-enabled ${UNIT}`)).toBe('enabled');
    expect((await resolveAll(['local:app/token']))['local:app/token']).toBe(TOKEN);
  });

  test('the secret value is nowhere on the container\'s disk or in its journal', async () => {
    // The vault is encrypted; the value went in on stdin and out through the socket only.
    const r = await inside(`grep -rlaF -D skip --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev -e '${TOKEN}' / || true`);
    expect(r.stdout.trim()).toBe('');
  });
});
