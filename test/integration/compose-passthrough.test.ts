// DSO as a Compose front end: global flags, profiles, env files and exit codes pass through, other
// commands see the resolved model without values, and Compose v1 works as well as v2.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createHash } from 'node:crypto';
import { canary, docker, dockerOk, dso, projectObjects, sandbox, writeFiles, type Sandbox } from './support.ts';

const SECRET = canary('passthrough');
const sha = (s: string) => createHash('sha256').update(s).digest('hex');
let sb: Sandbox;

beforeAll(async () => {
  sb = sandbox('passthrough');
  writeFiles(sb.dir, {
    'base.yaml': `
services:
  app:
    image: dso-test/busybox:latest
    init: true
    command: ["sleep", "3600"]
    environment:
      GREETING: \${GREETING:-unset}
      KEY_FILE: dsofile://shared/key
`,
    'extra.yaml': `
services:
  app:
    environment:
      FROM_OVERRIDE: "yes"
  debug:
    image: dso-test/busybox:latest
    init: true
    profiles: [debug]
    command: ["sleep", "3600"]
    environment:
      - KEY=dso://shared/key
`,
    'vars.env': 'GREETING=hello-from-env-file\n',
  });
  expect((await dso(sb, ['init'])).code).toBe(0);
  expect((await dso(sb, ['secret', 'set', 'shared/key'], { input: SECRET })).code).toBe(0);
});

afterAll(async () => {
  await dso(sb, ['down', '-f', 'base.yaml', '-f', 'extra.yaml', '-p', 'dsoflags', '--profile', 'debug', '-t', '1']);
  sb.cleanup();
});

const FLAGS = ['-f', 'base.yaml', '-f', 'extra.yaml', '-p', 'dsoflags', '--profile', 'debug', '--env-file', 'vars.env'];

describe('Compose flags', () => {
  test('-f (several), -p, --profile and --env-file are honoured by up', async () => {
    const r = await dso(sb, ['up', ...FLAGS, '-d']);
    expect(r.code, r.stderr).toBe(0);
    expect(await dockerOk(['exec', 'dsoflags-app-1', 'sh', '-c', 'printf "%s %s" "$GREETING" "$FROM_OVERRIDE"'])).toBe('hello-from-env-file yes');
    expect(await dockerOk(['exec', 'dsoflags-app-1', 'sh', '-c', 'sha256sum < "$KEY_FILE" | cut -d" " -f1'])).toBe(`${sha(SECRET)}\n`);
    expect(await dockerOk(['exec', 'dsoflags-debug-1', 'sh', '-c', 'printf %s "$KEY" | sha256sum | cut -d" " -f1'])).toBe(`${sha(SECRET)}\n`);
  });

  test('other commands run on the model with no values in it', async () => {
    const ps = await dso(sb, ['compose', ...FLAGS, 'ps', '--format', 'json']);
    expect(ps.code, ps.stderr).toBe(0);
    expect(ps.stdout).toContain('dsoflags-app-1');
    const config = await dso(sb, ['compose', ...FLAGS, 'config']);
    expect(config.code, config.stderr).toBe(0);
    expect(config.stdout).not.toContain(SECRET);
    expect(config.stdout).toContain('/run/secrets/shared/key');
  });

  test("Compose's exit code and output pass through", async () => {
    const r = await dso(sb, ['compose', ...FLAGS, 'exec', '-T', 'app', 'sh', '-c', 'echo out-line; exit 7']);
    expect(r.code).toBe(7);
    expect(r.stdout).toContain('out-line');
    const bad = await dso(sb, ['compose', ...FLAGS, 'no-such-command']);
    expect(bad.code).not.toBe(0);
  });

  test('compose run gets the secrets too', async () => {
    const r = await dso(sb, ['compose', ...FLAGS, 'run', '--rm', '-T', 'app', 'sh', '-c', 'sha256sum < "$KEY_FILE" | cut -d" " -f1']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(sha(SECRET));
  });

  test('down with the same flags removes everything', async () => {
    const r = await dso(sb, ['down', ...FLAGS, '-t', '1']);
    expect(r.code, r.stderr).toBe(0);
    expect(await projectObjects('dsoflags')).toEqual({ containers: [], volumes: [] });
  });
});

describe('Compose v1 (docker-compose)', () => {
  test('up, secrets in place, down', async () => {
    const v1 = process.env.DSO_TEST_COMPOSE_V1 ?? 'docker-compose';
    const env = { DSO_COMPOSE: v1 };
    const up = await dso(sb, ['up', '-f', 'base.yaml', '-p', 'dsov1', '-d'], { env });
    expect(up.code, up.stderr).toBe(0);
    const name = (await dockerOk(['ps', '--filter', 'label=com.docker.compose.project=dsov1', '--format', '{{.Names}}'])).trim();
    expect(name).toMatch(/^dsov1[_-]app[_-]1$/);
    expect(await dockerOk(['exec', name, 'sh', '-c', 'sha256sum < "$KEY_FILE" | cut -d" " -f1'])).toBe(`${sha(SECRET)}\n`);
    const down = await dso(sb, ['down', '-f', 'base.yaml', '-p', 'dsov1', '-t', '1'], { env });
    expect(down.code, down.stderr).toBe(0);
    expect(await projectObjects('dsov1')).toEqual({ containers: [], volumes: [] });
  });
});

describe('repeated up', () => {
  test('a second up with a changed secret refreshes the file without leaving extra holders', async () => {
    const first = await dso(sb, ['up', '-f', 'base.yaml', '-p', 'dsoagain', '-d']);
    expect(first.code, first.stderr).toBe(0);
    const updated = canary('updated');
    // Only stored: this test is about `up` refreshing the file (secret set would rotate it itself).
    expect((await dso(sb, ['secret', 'set', 'shared/key', '--no-rotate'], { input: updated })).code).toBe(0);
    const second = await dso(sb, ['up', '-f', 'base.yaml', '-p', 'dsoagain', '-d']);
    expect(second.code, second.stderr).toBe(0);
    expect(await dockerOk(['exec', 'dsoagain-app-1', 'sh', '-c', 'sha256sum < "$KEY_FILE" | cut -d" " -f1'])).toBe(`${sha(updated)}\n`);
    const holders = (await docker(['ps', '-aq', '--filter', 'label=dso.role=holder', '--filter', 'label=dso.project=dsoagain'])).stdout.trim().split('\n');
    expect(holders.length).toBe(1);
    expect((await dso(sb, ['down', '-f', 'base.yaml', '-p', 'dsoagain', '-t', '1'])).code).toBe(0);
    expect((await dso(sb, ['secret', 'set', 'shared/key'], { input: SECRET })).code).toBe(0);
  });
});
