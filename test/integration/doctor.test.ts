// `dso doctor` with the compiled binary against the private engine: a healthy Local Mode host
// passes with a JSON report that matches its documented schema; each broken thing (home
// permissions, an unreachable engine, an invalid dso.yaml, a provider that cannot log in) fails
// its own check with a fix, and the exit status says so. The full level's RAM probe leaves
// nothing behind. Cloud Mode doctor is tested with a running agent in agent.test.ts.
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as v from 'valibot';
import { doctorReportSchema, type DoctorReport } from '../../src/doctor/report.ts';
import { DOCKER_HOST, DSO_BIN, canary, dockerOk, dso, sandbox, type Sandbox } from './support.ts';

const SECRET = canary('doctor');
let sb: Sandbox;

async function doctor(args: string[] = [], env: Record<string, string> = {}): Promise<{ code: number; report: DoctorReport; stderr: string }> {
  const r = await dso(sb, ['doctor', '--json', ...args], { env: { DSO_MODE: 'local', ...env } });
  const parsed = v.safeParse(doctorReportSchema, JSON.parse(r.stdout));
  if (!parsed.success) throw new Error(`doctor --json does not match its schema: ${JSON.stringify(parsed.issues.map((i) => i.path?.map((p) => p.key).join('.')))}`);
  return { code: r.code, report: parsed.output, stderr: r.stderr };
}

function check(report: DoctorReport, id: string) {
  const c = report.checks.find((x) => x.id === id);
  if (!c) throw new Error(`no check ${id} in ${report.checks.map((x) => x.id).join(', ')}`);
  return c;
}

beforeAll(async () => {
  sb = sandbox('doctor');
  expect((await dso(sb, ['init'])).code).toBe(0);
  expect((await dso(sb, ['secret', 'set', 'app/token'], { input: SECRET })).code).toBe(0);
});

afterAll(() => sb.cleanup());

test('a healthy Local Mode host: exit 0, every basic check present, the documented schema', async () => {
  const { code, report } = await doctor();
  expect(code).toBe(0);
  expect(report).toMatchObject({ schema: 'dso.doctor/v1', level: 'basic', mode: 'local', ok: true });
  for (const id of ['mode', 'docker.engine', 'docker.compose', 'vault', 'permissions.home', 'clock', 'disk']) expect(check(report, id).status).toBe('pass');
  expect(check(report, 'docker.engine').detail).toContain('API 1.');
  expect(check(report, 'storage.ram').status).toBe('skip');
  expect(report.summary.fail).toBe(0);
  expect(JSON.stringify(report)).not.toContain(SECRET);
});

test('the human form lists each check and its fix, and says how to run more', async () => {
  chmodSync(sb.home, 0o755);
  try {
    const r = await dso(sb, ['doctor'], { env: { DSO_MODE: 'local' } });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/\[FAIL\] Permissions of the DSO home/);
    expect(r.stdout).toContain(`fix: chmod 700 ${sb.home}`);
    expect(r.stdout).toMatch(/\[ok {2}\] Docker engine/);
    expect(r.stdout).toContain('--level full');
  } finally {
    chmodSync(sb.home, 0o700);
  }
});

test('a vault readable by others fails, naming the file and the chmod that fixes it', async () => {
  const vault = join(sb.home, 'vault.enc');
  chmodSync(vault, 0o644);
  try {
    const { code, report } = await doctor();
    expect(code).toBe(1);
    const c = check(report, 'permissions.home');
    expect(c).toMatchObject({ status: 'fail' });
    expect(c.detail).toContain(`${vault} is mode 0644`);
    expect(c.fix).toContain(`chmod 600 ${vault}`);
  } finally {
    chmodSync(vault, 0o600);
  }
});

test('--level full proves RAM-backed storage on the engine host and leaves nothing behind', async () => {
  const { code, report } = await doctor(['--level', 'full']);
  expect(code).toBe(0);
  expect(check(report, 'storage.ram')).toMatchObject({ status: 'pass' });
  expect(await dockerOk(['ps', '-aq', '--filter', 'label=dso.role=doctor-probe'])).toBe('');
  expect(await dockerOk(['volume', 'ls', '-q', '--filter', 'label=dso.role=doctor-probe'])).toBe('');
});

test('an unreachable engine fails its check with a fix; checks that need it are skipped, not failed', async () => {
  const { code, report } = await doctor(['--level', 'full'], { DOCKER_HOST: `unix://${join(sb.dir, 'no-engine.sock')}` });
  expect(code).toBe(1);
  expect(check(report, 'docker.engine')).toMatchObject({ status: 'fail' });
  expect(check(report, 'docker.engine').fix).toContain('DOCKER_HOST');
  expect(check(report, 'storage.ram').status).toBe('skip');
  expect(check(report, 'vault').status).toBe('pass');
});

test('an invalid dso.yaml fails the config check with its line, never the value found', async () => {
  const leaked = canary('misplaced');
  writeFileSync(join(sb.dir, 'dso.yaml'), `providers:\n  home:\n    type: local\n    passphrase_env: "hvs.${leaked}"\n`);
  try {
    const { code, report } = await doctor();
    expect(code).toBe(1);
    const c = check(report, 'config');
    expect(c.status).toBe('fail');
    expect(c.detail).toMatch(/dso\.yaml:4:\d+: providers\.home\.passphrase_env/);
    expect(JSON.stringify(report)).not.toContain(leaked);
  } finally {
    rmSync(join(sb.dir, 'dso.yaml'), { force: true });
  }
});

test('providers: skipped at the basic level; at full, each logs in, and a bad credential fails with its kind and a fix', async () => {
  writeFileSync(
    join(sb.dir, 'dso.yaml'),
    `providers:
  good:
    type: local
    path: ${join(sb.home, 'vault.enc')}
    passphrase_env: DSO_PASSPHRASE
  bad:
    type: local
    isolation: process
    path: ${join(sb.home, 'vault.enc')}
    passphrase_env: WRONG_PASSPHRASE
`,
  );
  try {
    const basic = await doctor();
    expect(check(basic.report, 'provider.good').status).toBe('skip');
    const wrong = canary('wrong-pass');
    const { code, report } = await doctor(['--level', 'full'], { WRONG_PASSPHRASE: wrong });
    expect(code).toBe(1);
    expect(check(report, 'provider.good')).toMatchObject({ status: 'pass' });
    const bad = check(report, 'provider.bad');
    expect(bad.status).toBe('fail');
    expect(bad.detail).toContain('auth');
    expect(bad.fix).toContain('credentials');
    expect(JSON.stringify(report)).not.toContain(wrong);
    expect(JSON.stringify(report)).not.toContain(SECRET);
  } finally {
    rmSync(join(sb.dir, 'dso.yaml'), { force: true });
  }
});

test('usage errors exit 2', async () => {
  const r = await dso(sb, ['doctor', '--level', 'deep']);
  expect(r.code).toBe(2);
  expect(r.stderr).toContain('--level must be basic or full');
});

test('Cloud Mode: a rotation the agent could not decide on fails the rotations check, with its reason', async () => {
  const dir = `${sb.dir}/stuck-agent`;
  mkdirSync(`${dir}/state`, { recursive: true, mode: 0o700 });
  const at = new Date().toISOString();
  writeFileSync(`${dir}/agent.yaml`, 'providers: {}\n');
  writeFileSync(
    `${dir}/state/rotations.json`,
    JSON.stringify({
      version: 1,
      inPlace: {},
      rotations: [{ id: 'rstuck1', container: { id: 'f'.repeat(64), name: 'shop-db-1', running: true }, strategy: 'rolling', ids: ['vault:db#password'], startedAt: at, updatedAt: at, step: 'original-renamed', status: 'stuck', reason: 'another container (abc) now has the name shop-db-1', history: [{ step: 'planned', at }] }],
    }),
    { mode: 0o600 },
  );
  const socket = `${dir}/dso.sock`;
  const agent = Bun.spawn([DSO_BIN, 'agent', '--config', `${dir}/agent.yaml`, '--socket', socket, '--metrics-address', 'off', '--state-dir', `${dir}/state`], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', DOCKER_HOST }, stdout: 'ignore', stderr: 'ignore' });
  try {
    for (let i = 0; i < 100 && !existsSync(socket); i++) await Bun.sleep(50);
    const { code, report } = await doctor([], { DSO_MODE: 'cloud', DSO_AGENT_SOCKET: socket });
    expect(code).toBe(1);
    const c = check(report, 'rotations');
    expect(c.status).toBe('fail');
    expect(c.detail).toContain('shop-db-1: stuck at original-renamed: another container (abc) now has the name shop-db-1');
    const status = await dso(sb, ['status'], { env: { DSO_MODE: 'cloud', DSO_AGENT_SOCKET: socket } });
    expect(status.stdout).toContain('shop-db-1 (rolling, STUCK: another container (abc) now has the name shop-db-1');
  } finally {
    agent.kill('SIGTERM');
    await agent.exited;
  }
});
