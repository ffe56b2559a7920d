// Provider references end to end with the compiled binary and the real engine: a stack whose
// secrets come from providers configured in dso.yaml (run in a Worker and in a child process)
// comes up with the right values, #KEY selects a field, failures start nothing and name the
// reference, and no file secret leaks.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import { DATA_ROOT, canary, dockerOk, dso, projectObjects, sandbox, scanForLeaks, writeFiles, type Sandbox, projectOf } from './support.ts';

const TOKEN = canary('prov-token');
const PLAIN = canary('prov-plain');
const DB_PASSWORD = canary('prov-dbpass');
const DB_USER = 'app_user';
const FILE_CANARIES = [TOKEN, DB_PASSWORD];

let sb: Sandbox;
let project: string;

const COMPOSE = `
services:
  app:
    image: dso-test/busybox:latest
    init: true
    command: ["sleep", "3600"]
    environment:
      TOKEN_FILE: dsofile://home:app/token
      PLAIN: dso://iso:app/plain
      DB_PASSWORD_FILE: dsofile://iso:app/db#password
      DB_USER: dso://home:app/db#user
    secrets:
      - source: db_password
        target: db.pass
        mode: 0440
secrets:
  db_password:
    x-dso: "home:app/db#password"
`;

function config(dir: string): string {
  return `providers:
  home:
    type: local
    path: ${join(dir, '.dso-home', 'vault.enc')}
    passphrase_env: DSO_PASSPHRASE
  iso:
    type: local
    isolation: process
    timeout: 20s
    path: ${join(dir, '.dso-home', 'vault.enc')}
    passphrase_env: DSO_PASSPHRASE
`;
}

async function exec(script: string): Promise<string> {
  return dockerOk(['exec', `${project}-app-1`, 'sh', '-c', script]);
}

beforeAll(async () => {
  sb = sandbox('providers');
  project = projectOf(sb);
  writeFiles(sb.dir, { 'compose.yaml': COMPOSE, 'dso.yaml': config(sb.dir) });
  expect((await dso(sb, ['init'])).code).toBe(0);
  for (const [name, value] of [
    ['app/token', TOKEN],
    ['app/plain', PLAIN],
    ['app/db', JSON.stringify({ user: DB_USER, password: DB_PASSWORD })],
  ] as const) {
    expect((await dso(sb, ['secret', 'set', name], { input: value })).code).toBe(0);
  }
  const up = await dso(sb, ['up', '-d']);
  expect(up.code, up.stderr).toBe(0);
  expect(up.stderr).toContain('Resolved 5 secrets');
  expect(up.stderr).toContain('from home');
  expect(up.stderr).toContain('from iso');
});

afterAll(async () => {
  await dso(sb, ['down', '-t', '1']).catch(() => {});
  sb.cleanup();
});

describe('secrets from providers in dso.yaml', () => {
  test('the app sees every value, from a Worker provider and a process provider', async () => {
    expect(await exec('cat "$TOKEN_FILE"')).toBe(TOKEN);
    expect(await exec('printf %s "$PLAIN"')).toBe(PLAIN);
    expect(await exec('printf %s "$DB_USER"')).toBe(DB_USER);
  });

  test('#KEY selects one field of a JSON secret, for files and x-dso too', async () => {
    expect(await exec('printf %s "$DB_PASSWORD_FILE"')).toBe('/run/secrets/iso/app/db#password');
    expect(await exec('cat "$DB_PASSWORD_FILE"')).toBe(DB_PASSWORD);
    expect(await exec('cat /run/secrets/db.pass')).toBe(DB_PASSWORD);
    expect((await exec('stat -c "%a" /run/secrets/db.pass')).trim()).toBe('440');
  });

  test('labels name the references, never values', async () => {
    const labels = JSON.parse(await dockerOk(['inspect', '-f', '{{json .Config.Labels}}', `${project}-app-1`])) as Record<string, string>;
    expect(labels['dso.secrets']).toBe('home:app/db#password,home:app/db#user,home:app/token,iso:app/db#password,iso:app/plain');
    expect(JSON.stringify(labels)).not.toContain('DSOCANARY');
  });

  test('no file secret in docker inspect or on disk', async () => {
    const { containers, volumes } = await projectObjects(project);
    const inspect = await dockerOk(['inspect', ...containers, ...volumes]);
    for (const c of FILE_CANARIES) expect(inspect).not.toContain(c);
    const hits = scanForLeaks([DATA_ROOT, sb.dir, '/tmp', '/var/tmp'], FILE_CANARIES, { skip: (p) => p === join(sb.home, 'vault.enc') });
    expect(hits).toEqual([]);
  });
});

describe('failures start nothing and say which reference failed', () => {
  async function failing(name: string, compose: string, dsoYaml: string | undefined, env: Record<string, string> = {}) {
    const other = sandbox(name);
    try {
      writeFiles(other.dir, { 'compose.yaml': compose, ...(dsoYaml === undefined ? {} : { 'dso.yaml': dsoYaml }) });
      expect((await dso(other, ['init'])).code).toBe(0);
      expect((await dso(other, ['secret', 'set', 'app/token'], { input: TOKEN })).code).toBe(0);
      const r = await dso(other, ['up', '-d'], { env });
      const objects = await projectObjects(projectOf(other));
      expect(objects.containers).toEqual([]);
      expect(r.stderr).not.toContain(TOKEN);
      return r;
    } finally {
      other.cleanup();
    }
  }
  const one = (ref: string) => `services:\n  app:\n    image: dso-test/busybox:latest\n    environment:\n      X: ${ref}\n`;
  const local = (dir = '$DSO_HOME') => `providers:\n  home:\n    type: local\n    passphrase_env: DSO_PASSPHRASE\n${dir === '$DSO_HOME' ? '' : `    path: ${dir}\n`}`;

  test('a secret missing at the provider: exit 10, the reference and the service named', async () => {
    const r = await failing('prov-missing', one('dsofile://home:app/nope'), local());
    expect(r.code).toBe(10);
    expect(r.stderr).toContain('home:app/nope (service "app", variable X): not found');
    expect(r.stderr).toContain('nothing was started');
  });

  test('a provider not in dso.yaml: exit 3', async () => {
    const r = await failing('prov-unknown', one('dso://vault:app/x'), local());
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('provider "vault" is not configured');
    expect(r.stderr).toContain('service "app", variable X');
  });

  test('no dso.yaml at all: exit 3, where DSO looked', async () => {
    const r = await failing('prov-noconfig', one('dso://home:app/token'), undefined);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('no dso.yaml');
    expect(r.stderr).toContain('/etc/dso/dso.yaml');
  });

  test('a malformed dso.yaml: exit 2 with the line, and the misplaced value not echoed', async () => {
    const r = await failing('prov-badconfig', one('dso://home:app/token'), `providers:\n  home:\n    type: local\n    passphrase_env: "${TOKEN}"\n`);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/dso\.yaml:4:5: providers\.home\.passphrase_env/);
  });

  test('a missing #KEY lists the fields, not the values', async () => {
    const r = await failing('prov-nokey', one('dso://home:app/token#password'), local());
    expect(r.code).toBe(10);
    expect(r.stderr).toContain('key not found');
  });

  test('a provider whose credentials are not in the environment: auth, the variable named', async () => {
    const r = await failing('prov-noenv', one('dso://home:app/token'), `providers:\n  home:\n    type: local\n    passphrase_env: HOME_VAULT_PASSPHRASE\n`);
    expect(r.code).toBe(10);
    expect(r.stderr).toContain('HOME_VAULT_PASSPHRASE');
  });
});
