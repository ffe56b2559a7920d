// Bad input through `docker dso up`: each case gets a clear message naming what is wrong, a
// non-zero exit, no secret value in the output, and nothing started or left behind.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { canary, dockerOk, dso, projectObjects, sandbox, writeFiles, type Sandbox, projectOf } from './support.ts';

const VALUE = canary('errors');
let sb: Sandbox;
let project: string;

function compose(env: Record<string, string>, extra = ''): string {
  const lines = Object.entries(env).map(([k, v]) => `      ${k}: "${v}"`).join('\n');
  return `services:\n  app:\n    image: dso-test/busybox:latest\n    command: ["sleep", "60"]\n    environment:\n${lines}\n${extra}`;
}

async function expectNothingStarted(): Promise<void> {
  expect(await projectObjects(project)).toEqual({ containers: [], volumes: [] });
}

async function upFails(files: Record<string, string>, opts: { env?: Record<string, string>; args?: string[] } = {}) {
  writeFiles(sb.dir, files);
  const r = await dso(sb, opts.args ?? ['up', '-d'], opts);
  expect(r.code).not.toBe(0);
  expect(r.stdout + r.stderr).not.toContain(VALUE);
  await expectNothingStarted();
  return r;
}

beforeAll(async () => {
  sb = sandbox('errors');
  project = projectOf(sb);
  expect((await dso(sb, ['init'])).code).toBe(0);
  expect((await dso(sb, ['secret', 'set', 'app/known'], { input: VALUE })).code).toBe(0);
});

afterAll(() => sb.cleanup());

describe('docker dso up refuses, names the problem and starts nothing', () => {
  test('unknown secret: names the secret, the service and the variable', async () => {
    const r = await upFails({ 'compose.yaml': compose({ KNOWN: 'dsofile://app/known', DB: 'dsofile://app/missing' }) });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('app/missing (service "app", variable DB)');
    expect(r.stderr).toContain('secret set');
  });

  test('malformed reference', async () => {
    const r = await upFails({ 'compose.yaml': compose({ X: 'dso://' }) });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('service "app", variable X: malformed secret reference "dso://"');
  });

  test('path traversal in a name', async () => {
    const r = await upFails({ 'compose.yaml': compose({ X: 'dsofile://../../etc/shadow' }) });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('".."');
  });

  test('x-dso secret with a traversal name', async () => {
    const extra = '    secrets: [k]\nsecrets:\n  k:\n    x-dso: /etc/passwd\n';
    const r = await upFails({ 'compose.yaml': compose({ A: 'plain' }, extra) });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('secrets.k');
  });

  test('no vault', async () => {
    const r = await upFails({ 'compose.yaml': compose({ X: 'dso://app/known' }) }, { env: { DSO_HOME: join(sb.dir, 'nowhere') } });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('no local vault at');
    expect(r.stderr).toContain('init');
  });

  test('wrong passphrase', async () => {
    const r = await upFails({ 'compose.yaml': compose({ X: 'dso://app/known' }) }, { env: { DSO_PASSPHRASE: 'not-the-passphrase' } });
    expect(r.code).toBe(4);
    expect(r.stderr.toLowerCase()).toContain('passphrase');
  });

  test('Compose not found', async () => {
    const r = await upFails({ 'compose.yaml': compose({ X: 'dso://app/known' }) }, { env: { DSO_COMPOSE: 'no-such-compose-binary' } });
    expect(r.code).toBe(7);
    expect(r.stderr).toContain('no-such-compose-binary');
  });

  test('Docker engine unreachable', async () => {
    const r = await upFails({ 'compose.yaml': compose({ X: 'dsofile://app/known' }) }, { env: { DOCKER_HOST: `unix://${join(sb.dir, 'no.sock')}` } });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Docker engine|Cannot connect to the Docker daemon/);
  });

  test('an invalid compose file is reported by Compose, through DSO', async () => {
    const r = await upFails({ 'compose.yaml': 'services:\n  app:\n    image: [unclosed\n' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Compose could not load the project');
  });

  test('a dso:// value that is not text is refused before anything starts', async () => {
    expect((await dso(sb, ['secret', 'set', 'app/binary', '--from-file', '/bin/true'])).code).toBe(0);
    const r = await upFails({ 'compose.yaml': compose({ BIN: 'dso://app/binary' }) });
    expect(r.stderr).toContain('dsofile://');
  });
});

describe('near-miss references', () => {
  const files = () => ({
    'compose.yaml': compose({ KEY_FILE: 'dsofile:/app/known', TOKEN: 'DSO://app/known', LITERAL: `dso:${VALUE} !`, FINE: 'dso://app/known' }, '    env_file: [near.env]\n'),
    'near.env': 'FROM_ENV_FILE=dso:app/known\n',
  });

  test('up warns, naming service, variable and the probable reference, never a value; the literal reaches the container', async () => {
    writeFiles(sb.dir, files());
    const r = await dso(sb, ['up', '-d']);
    try {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain('warning: 4 values look like mistyped secret references and reach the containers as written:\n');
      expect(r.stderr).toContain('    service "app", variable FROM_ENV_FILE: "dso:app/known", did you mean dso://app/known?\n');
      expect(r.stderr).toContain('    service "app", variable KEY_FILE: "dsofile:/app/known", did you mean dsofile://app/known?\n');
      expect(r.stderr).toContain('    service "app", variable LITERAL: "dso:…", did you mean a dso:// reference?\n');
      expect(r.stderr).toContain('    service "app", variable TOKEN: "DSO://app/known", did you mean dso://app/known?\n');
      expect(r.stdout + r.stderr).not.toContain(VALUE);
      const env = await dockerOk(['exec', `${project}-app-1`, 'sh', '-c', 'printf "%s|%s" "$KEY_FILE" "$TOKEN"']);
      expect(env).toBe('dsofile:/app/known|DSO://app/known');
    } finally {
      expect((await dso(sb, ['down', '-t', '1'])).code).toBe(0);
    }
  });

  test('--strict refuses before anything starts, on up and on compose (before the command)', async () => {
    const r = await upFails(files(), { args: ['up', '-d', '--strict'] });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('error: 4 values look like mistyped secret references; --strict refuses them, so nothing was run:');
    const config = await dso(sb, ['compose', '--strict', 'config']);
    expect(config.code).toBe(2);
    expect(config.stdout + config.stderr).not.toContain(VALUE);
    await expectNothingStarted();
  });
});

describe('no compose file', () => {
  test('says where it looked', async () => {
    rmSync(join(sb.dir, 'compose.yaml'), { force: true });
    const r = await dso(sb, ['up', '-d']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('no compose file found');
  });
});
