// DSO as a Compose front end: global flags, profiles, env files and exit codes pass through, other
// commands see the resolved model without values, and Compose v1 works as well as v2.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createHash } from 'node:crypto';
import { canary, docker, dockerOk, dso, projectObjects, run, sandbox, writeFiles, type Sandbox } from './support.ts';

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

describe('a file written for DSO still loads in plain Compose', () => {
  // x-dso secrets with the documented placeholder source (docs/local-mode.md): plain Compose v2
  // needs `environment:` or `file:` on every top-level secret.
  const XDSO_SECRET = canary('xdso-plain');
  const COMPOSE_FILE = `
services:
  app:
    image: dso-test/busybox:latest
    init: true
    command: ["sleep", "3600"]
    secrets: [tls_key, ca]
secrets:
  tls_key:
    x-dso: shared/tls_key
    environment: DSO_X_DSO_PLACEHOLDER
  ca:
    x-dso: shared/tls_key
    file: /dev/null
`;

  test('docker dso up ignores the placeholders; plain ps, logs, exec and config load the file; plain up fails on the unset variable', async () => {
    const s = sandbox('xdso-plain');
    const plain = (args: string[]) => docker(['compose', '-f', `${s.dir}/compose.yaml`, ...args]);
    try {
      writeFiles(s.dir, { 'compose.yaml': COMPOSE_FILE });
      expect((await dso(s, ['init'])).code).toBe(0);
      expect((await dso(s, ['secret', 'set', 'shared/tls_key'], { input: XDSO_SECRET })).code).toBe(0);
      const up = await dso(s, ['up', '-d']);
      expect(up.code, up.stderr).toBe(0);
      const project = s.dir.split('/').pop()!.toLowerCase().replace(/[^a-z0-9_-]/g, '');
      const app = `${project}-app-1`;
      expect(await dockerOk(['exec', app, 'sh', '-c', 'sha256sum < /run/secrets/tls_key | cut -d" " -f1; sha256sum < /run/secrets/ca | cut -d" " -f1'])).toBe(`${sha(XDSO_SECRET)}\n${sha(XDSO_SECRET)}\n`);

      const ps = await plain(['ps', '--format', '{{.Name}}']);
      expect(ps.code, ps.stderr).toBe(0);
      expect(ps.stdout.trim()).toBe(app);
      const logs = await plain(['logs']);
      expect(logs.code, logs.stderr).toBe(0);
      const exec = await plain(['exec', '-T', 'app', 'sh', '-c', 'sha256sum < /run/secrets/tls_key | cut -d" " -f1']);
      expect(exec.code, exec.stderr).toBe(0);
      expect(exec.stdout).toBe(`${sha(XDSO_SECRET)}\n`);
      const config = await plain(['config']);
      expect(config.code, config.stderr).toBe(0);
      expect(config.stdout).not.toContain(XDSO_SECRET);

      // Plain `up` of the same file, as another project: it cannot start without DSO, and says why.
      const start = await docker(['compose', '-f', `${s.dir}/compose.yaml`, '-p', `${project}-plain`, 'up', '-d']);
      expect(start.code).not.toBe(0);
      // Compose 2.26 refuses while loading ("required by file"); 2.40 creates the container, then
      // refuses to start it ("required by secret"): either way nothing runs without DSO.
      expect(start.stderr).toMatch(/environment variable "DSO_X_DSO_PLACEHOLDER" required by (file|secret)/);
      expect(await dockerOk(['ps', '-q', '--filter', `label=com.docker.compose.project=${project}-plain`])).toBe('');
      await docker(['compose', '-f', `${s.dir}/compose.yaml`, '-p', `${project}-plain`, 'down', '-t', '0']);

      expect((await dso(s, ['down', '-t', '1'])).code).toBe(0);
      expect(await projectObjects(project)).toEqual({ containers: [], volumes: [] });
    } finally {
      s.cleanup();
    }
  });

  test('without a placeholder, plain Compose v2 refuses the file (what the placeholder is for); v1 is the other way round', async () => {
    const s = sandbox('xdso-bare');
    const v1 = process.env.DSO_TEST_COMPOSE_V1 ?? 'docker-compose';
    try {
      writeFiles(s.dir, { 'bare.yaml': COMPOSE_FILE.replace('    environment: DSO_X_DSO_PLACEHOLDER\n', ''), 'placeholder.yaml': COMPOSE_FILE });
      const ps = await docker(['compose', '-f', `${s.dir}/bare.yaml`, 'ps']);
      expect(ps.code).not.toBe(0);
      expect(ps.stderr).toContain('secrets.tls_key: one of file|environment must be set');
      const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', DOCKER_HOST: sb.env.DOCKER_HOST! };
      expect((await run([v1, '-f', `${s.dir}/bare.yaml`, 'config', '-q'], { env })).code).toBe(0);
      const refused = await run([v1, '-f', `${s.dir}/placeholder.yaml`, 'config', '-q'], { env });
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain("secrets.tls_key value 'environment' does not match");
    } finally {
      s.cleanup();
    }
  });
});
