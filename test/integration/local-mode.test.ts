// Local Mode end to end against the real engine and Compose v2: a stack with dso://, dsofile://
// and x-dso secrets comes up, every app sees its values, and no file secret leaks anywhere.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import { DATA_ROOT, canary, docker, dockerOk, dso, projectObjects, sandbox, scanForLeaks, writeFiles, type Sandbox, projectOf } from './support.ts';

const ENV_SECRET = canary('env');
const FILE_SECRET = canary('file');
const XDSO_SECRET = canary('xdso');
const NONROOT_SECRET = canary('nonroot');
const NOSHELL_SECRET = canary('noshell');
const FILE_CANARIES = [FILE_SECRET, XDSO_SECRET, NONROOT_SECRET, NOSHELL_SECRET];

// Apps print nothing secret: logs are files on disk. They sleep under an init so `down` is quick.
const COMPOSE = `
services:
  web:
    image: dso-test/busybox:latest
    init: true
    command: ["sleep", "3600"]
    environment:
      API_KEY: dso://app/api_key
      DB_PASSWORD_FILE: dsofile://app/db_password
      PLAIN: "not a secret, costs $$5"
    secrets:
      - source: tls_key
        target: tls/key.pem
        uid: "0"
        gid: "0"
        mode: 0440
  worker:
    image: dso-test/busybox:latest
    init: true
    user: "1000:1000"
    command: ["sleep", "3600"]
    environment:
      - TOKEN_FILE=dsofile://worker/token
  plain:
    image: dso-test/busybox:latest
    init: true
    command: ["sleep", "3600"]
secrets:
  tls_key:
    x-dso: app/tls_key
`;

let sb: Sandbox;
let project: string;

async function exec(service: string, script: string, user?: string): Promise<string> {
  const args = ['exec', ...(user ? ['-u', user] : []), `${project}-${service}-1`, 'sh', '-c', script];
  return dockerOk(args);
}

beforeAll(async () => {
  sb = sandbox('local');
  project = projectOf(sb);
  writeFiles(sb.dir, { 'compose.yaml': COMPOSE });
  expect((await dso(sb, ['init'])).code).toBe(0);
  for (const [name, value] of [
    ['app/api_key', ENV_SECRET],
    ['app/db_password', FILE_SECRET],
    ['app/tls_key', XDSO_SECRET],
    ['worker/token', NONROOT_SECRET],
  ] as const) {
    const r = await dso(sb, ['secret', 'set', name], { input: `${value}\n` });
    expect(r.code, r.stderr).toBe(0);
  }
  const up = await dso(sb, ['up', '-d']);
  expect(up.code, up.stderr).toBe(0);
});

afterAll(async () => {
  await dso(sb, ['down', '-t', '1']).catch(() => {});
  sb.cleanup();
});

describe('docker dso up -d', () => {
  test('dso:// reaches the app as an environment variable, with a warning', async () => {
    expect(await exec('web', 'printf %s "$API_KEY"')).toBe(ENV_SECRET);
    expect(await exec('web', 'printf %s "$PLAIN"')).toBe('not a secret, costs $5');
  });

  test('dsofile:// is a file in RAM at /run/secrets/NAME, and the variable holds its path', async () => {
    expect(await exec('web', 'printf %s "$DB_PASSWORD_FILE"')).toBe('/run/secrets/app/db_password');
    expect(await exec('web', 'cat "$DB_PASSWORD_FILE"')).toBe(FILE_SECRET);
    expect((await exec('web', 'stat -c "%u %g %a" /run/secrets/app/db_password')).trim()).toBe('0 0 400');
    expect(await exec('web', 'grep " /run/secrets " /proc/mounts')).toContain('tmpfs');
  });

  test('x-dso secrets honour target, uid, gid and mode', async () => {
    expect(await exec('web', 'cat /run/secrets/tls/key.pem')).toBe(XDSO_SECRET);
    expect((await exec('web', 'stat -c "%u %g %a" /run/secrets/tls/key.pem')).trim()).toBe('0 0 440');
  });

  test('a non-root container user reads its file (owned by the service user)', async () => {
    expect((await exec('worker', 'id -u'))).toBe('1000\n');
    expect(await exec('worker', 'cat "$TOKEN_FILE"')).toBe(NONROOT_SECRET);
    expect((await exec('worker', 'stat -c "%u %g %a" "$TOKEN_FILE"')).trim()).toBe('1000 1000 400');
    // ...and another non-root user in the same container cannot.
    const other = await docker(['exec', '-u', '2000', `${project}-worker-1`, 'cat', '/run/secrets/worker/token']);
    expect(other.code).not.toBe(0);
  });

  test('services see only their own secrets', async () => {
    const r = await docker(['exec', `${project}-worker-1`, 'ls', '/run/secrets/app']);
    expect(r.code).not.toBe(0);
    expect((await exec('plain', 'ls /run/secrets 2>&1 || true'))).not.toContain('app');
  });

  test('docker inspect shows no file secret; dso:// values are there, as documented', async () => {
    const ids = (await projectObjects(project)).containers;
    const inspect = await dockerOk(['inspect', ...ids]);
    for (const c of FILE_CANARIES) expect(inspect).not.toContain(c);
    expect(inspect).toContain(ENV_SECRET);
    const volumes = await dockerOk(['volume', 'inspect', ...(await projectObjects(project)).volumes]);
    for (const c of [...FILE_CANARIES, ENV_SECRET]) expect(volumes).not.toContain(c);
  });

  test('containers carry DSO labels with secret names, never values', async () => {
    const labels = JSON.parse(await dockerOk(['inspect', '-f', '{{json .Config.Labels}}', `${project}-web-1`])) as Record<string, string>;
    expect(labels['dso.managed']).toBe('true');
    expect(labels['dso.secrets']).toBe('app/api_key,app/db_password,app/tls_key');
    expect(labels['com.docker.compose.project']).toBe(project);
    expect(JSON.stringify(labels)).not.toContain('DSOCANARY');
  });

  test('no file secret on disk: engine data root, DSO_HOME, the project directory, /tmp', () => {
    const hits = scanForLeaks([DATA_ROOT, sb.dir, '/tmp', '/var/tmp'], FILE_CANARIES, {
      skip: (p) => p === join(sb.home, 'vault.enc'),
    });
    expect(hits).toEqual([]);
  });

  test('a dso:// value is on disk only in the engine\'s own container records (as the warning says)', () => {
    const hits = scanForLeaks([DATA_ROOT, sb.dir, '/tmp'], [ENV_SECRET], { skip: (p) => p === join(sb.home, 'vault.enc') });
    expect(hits.length).toBeGreaterThan(0);
    for (const h of hits) {
      // dockerd's container config, and containerd's copy of the OCI spec in its metadata store.
      expect(h.file).toMatch(/\/containers\/[0-9a-f]{64}\/config\.v2\.json$|\/containerd\/daemon\/io\.containerd\.metadata\.v1\.bolt\/meta\.db$/);
    }
  });

  test('the vault file holds no plaintext', async () => {
    const hits = scanForLeaks([join(sb.home, 'vault.enc')], [...FILE_CANARIES, ENV_SECRET, 'app/api_key']);
    expect(hits).toEqual([]);
  });
});

describe('the leak scan itself', () => {
  test('finds a secret copied into a tmpfs mount of a container (the disk leak DSO avoids)', async () => {
    const value = canary('control');
    const name = `dso-scan-control-${Date.now()}`;
    await dockerOk(['run', '-d', '--name', name, '--network', 'none', '--tmpfs', '/run/secrets', 'dso-test/busybox:latest', 'sleep', '60']);
    try {
      const src = join(sb.dir, 'control.txt');
      writeFiles(sb.dir, { 'control.txt': value });
      await dockerOk(['cp', src, `${name}:/run/secrets/control.txt`]);
      const hits = scanForLeaks([DATA_ROOT], [value]);
      expect(hits.some((h) => h.file.includes('/overlay2/'))).toBe(true);
    } finally {
      await docker(['rm', '-f', name]);
    }
  });
});

describe('a shell-less image', () => {
  test('reads its secret file as its entrypoint starts', async () => {
    const s = sandbox('noshell');
    try {
      writeFiles(s.dir, {
        'compose.yaml': `
services:
  app:
    image: dso-test/noshell:latest
    command: ["/run/secrets/app/key"]
    logging: { driver: none }
    environment:
      KEY_FILE: dsofile://app/key
      CATWAIT_EXIT: "1"
`,
      });
      expect((await dso(s, ['init'])).code).toBe(0);
      expect((await dso(s, ['secret', 'set', 'app/key'], { input: NOSHELL_SECRET })).code).toBe(0);
      // Attached `up`: Compose shows the output live; the none log driver keeps it off disk.
      const r = await dso(s, ['up', '--abort-on-container-exit']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`/run/secrets/app/key=${NOSHELL_SECRET}`);
      expect(scanForLeaks([DATA_ROOT, s.dir, '/tmp'], [NOSHELL_SECRET], { skip: (p) => p.endsWith('vault.enc') })).toEqual([]);
      expect((await dso(s, ['down'])).code).toBe(0);
    } finally {
      s.cleanup();
    }
  });
});

describe('secret rm of a secret that containers use', () => {
  const names = async () => (JSON.parse((await dso(sb, ['secret', 'list', '--json'])).stdout) as Array<{ name: string }>).map((e) => e.name);

  test('refuses, names the containers (running and stopped), removes nothing', async () => {
    const r = await dso(sb, ['secret', 'rm', 'app/db_password']);
    expect(r.code).toBe(9);
    expect(r.stderr).toContain(`error: app/db_password is used by a container: ${project}-web-1; nothing was removed`);
    expect(r.stderr).toContain('--force');
    await dockerOk(['stop', '-t', '1', `${project}-worker-1`]);
    const stopped = await dso(sb, ['secret', 'rm', 'worker/token']);
    expect(stopped.code).toBe(9);
    expect(stopped.stderr).toContain(`${project}-worker-1 (stopped)`);
    expect(await names()).toEqual(expect.arrayContaining(['app/db_password', 'worker/token']));
  });

  test('a secret nobody uses, or the same name in another vault, is removed at once', async () => {
    expect((await dso(sb, ['secret', 'set', 'app/unused'], { input: canary('unused') })).code).toBe(0);
    const r = await dso(sb, ['secret', 'rm', 'app/unused']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('Removed app/unused\n');
    const other = sandbox('other-vault');
    try {
      expect((await dso(other, ['init'])).code).toBe(0);
      expect((await dso(other, ['secret', 'set', 'app/db_password'], { input: canary('other') })).code).toBe(0);
      const mine = await dso(other, ['secret', 'rm', 'app/db_password']);
      expect(mine.code, mine.stderr).toBe(0);
    } finally {
      other.cleanup();
    }
  });

  test('--force removes it without the check', async () => {
    const r = await dso(sb, ['secret', 'rm', 'worker/token', '--force']);
    expect(r.code, r.stderr).toBe(0);
    expect(await names()).not.toContain('worker/token');
  });
});

describe('docker dso down', () => {
  test('removes the containers, the holder and the secret volumes', async () => {
    const r = await dso(sb, ['down', '-t', '1']);
    expect(r.code, r.stderr).toBe(0);
    expect(await projectObjects(project)).toEqual({ containers: [], volumes: [] });
  });
});
