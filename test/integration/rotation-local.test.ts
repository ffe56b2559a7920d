// Rotation in Local Mode, with the compiled binary and the real engine and Compose: `secret set`
// of a secret that running containers use rotates them (db blue-green behind its health check,
// api restarted because it publishes a host port, after db as depends_on says), `rotate
// --dry-run` only plans, a bad value makes the new db unhealthy and the original keeps serving,
// DNS by service name follows the swap, Compose still sees every rotated container, and nothing
// leaks or is left over.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { DATA_ROOT, canary, docker, dockerOk, dso, sandbox, scanForLeaks, writeFiles, type Sandbox, projectOf } from './support.ts';

let sb: Sandbox;
let project: string;
const V1 = canary('rot-v1');
const V2 = canary('rot-v2');
const V3 = canary('rot-v3');
const KEY1 = canary('rot-key1');
const KEY2 = canary('rot-key2');
const PORT = 18000 + Math.floor(Math.random() * 1000);

// db is healthy only when its secret file starts with "DSOCANARY_": an empty or wrong value
// makes a new db unhealthy. api serves its secret file over HTTP on a published port.
const COMPOSE = `
services:
  db:
    image: dso-test/busybox:latest
    init: true
    command: ["sleep", "3600"]
    healthcheck: { test: ["CMD-SHELL", "grep -q '^DSOCANARY_' /run/secrets/app/token"], interval: 1s, timeout: 1s, retries: 2 }
    environment:
      TOKEN_FILE: dsofile://app/token
    labels: { dso.strategy: rolling }
  api:
    image: dso-test/busybox:latest
    init: true
    command: ["httpd", "-f", "-p", "80", "-h", "/run/secrets/app"]
    depends_on: { db: { condition: service_healthy } }
    ports: ["127.0.0.1:${PORT}:80"]
    environment:
      TOKEN_FILE: dsofile://app/token
      API_KEY: dso://app/api_key
    labels: { dso.strategy: rolling }
  client:
    image: dso-test/busybox:latest
    init: true
    command: ["sleep", "3600"]
`;

async function cat(service: string, path: string): Promise<string> {
  return dockerOk(['exec', `${project}-${service}-1`, 'cat', path]);
}

async function objects(): Promise<{ containers: string[]; volumes: string[] }> {
  const names = (await dockerOk(['ps', '-a', '--format', '{{.Names}}', '--filter', `label=com.docker.compose.project=${project}`])).split('\n').filter(Boolean).sort();
  const holders = (await dockerOk(['ps', '-a', '--format', '{{.Names}}', '--filter', `label=dso.project=${project}`])).split('\n').filter(Boolean).sort();
  const volumes = (await dockerOk(['volume', 'ls', '-q', '--filter', `label=dso.project=${project}`])).split('\n').filter(Boolean).sort();
  return { containers: [...names, ...holders], volumes };
}

beforeAll(async () => {
  sb = sandbox('rotation');
  project = projectOf(sb);
  writeFiles(sb.dir, { 'compose.yaml': COMPOSE });
  expect((await dso(sb, ['init'])).code).toBe(0);
  expect((await dso(sb, ['secret', 'set', 'app/token'], { input: V1 })).code).toBe(0);
  expect((await dso(sb, ['secret', 'set', 'app/api_key'], { input: KEY1 })).code).toBe(0);
  const up = await dso(sb, ['up', '-d', '--wait']);
  expect(up.code, up.stderr).toBe(0);
});

afterAll(async () => {
  await dso(sb, ['down']).catch(() => {});
  sb.cleanup();
});

describe('Local Mode rotation', () => {
  const outputs: string[] = [];

  test('rotate --dry-run prints the plan in depends_on order, with why api cannot overlap, and changes nothing', async () => {
    const before = await objects();
    const r = await dso(sb, ['rotate', 'app/token', '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Rotation plan for secret app/token: 2 containers');
    expect(r.stdout).toMatch(new RegExp(`1\\. ${project}-db-1: rolling`));
    expect(r.stdout).toMatch(new RegExp(`2\\. ${project}-api-1 \\[after wave 0\\]: restart`));
    expect(r.stdout).toContain(`it publishes host port 127.0.0.1:${PORT}->80/tcp`);
    expect(await objects()).toEqual(before);
    const json = JSON.parse((await dso(sb, ['rotate', 'app/token', '--dry-run', '--json'])).stdout);
    expect(json.plan.rotations.map((x: { service: string; strategy: string }) => [x.service, x.strategy])).toEqual([['db', 'rolling'], ['api', 'restart']]);
  });

  test('secret set rotates both containers: db blue-green, then api restarted, the downtime reported', async () => {
    const oldDb = (await dockerOk(['inspect', '-f', '{{.Id}}', `${project}-db-1`])).trim();
    const r = await dso(sb, ['secret', 'set', 'app/token'], { input: V2 });
    outputs.push(r.stdout, r.stderr);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`${project}-db-1: done`);
    expect(r.stderr).toMatch(new RegExp(`${project}-api-1: done in [0-9.]+ s, [0-9.]+ s without service`));
    expect(r.stderr).toContain('Rotated 2 of 2 containers');
    expect(await cat('db', '/run/secrets/app/token')).toBe(V2);
    expect(await cat('api', '/run/secrets/app/token')).toBe(V2);
    // The published port answers with the new value.
    expect(await (await fetch(`http://127.0.0.1:${PORT}/token`)).text()).toBe(V2);
    expect((await dockerOk(['inspect', '-f', '{{.Id}}', `${project}-db-1`])).trim()).not.toBe(oldDb);
  });

  test('Compose still sees exactly one container per service, with the same labels it put there', async () => {
    const ps = (await dockerOk(['compose', '-p', project, 'ps', '--format', '{{.Service}} {{.Name}} {{.State}}'])).split('\n').filter(Boolean).sort();
    expect(ps).toEqual([`api ${project}-api-1 running`, `client ${project}-client-1 running`, `db ${project}-db-1 running`]);
    const labels = JSON.parse(await dockerOk(['inspect', '-f', '{{json .Config.Labels}}', `${project}-db-1`]));
    expect(labels['com.docker.compose.project']).toBe(project);
    expect(labels['com.docker.compose.service']).toBe('db');
    expect(labels['com.docker.compose.config-hash']).toMatch(/^[0-9a-f]{64}$/);
    expect(labels['dso.rotation']).toMatch(/^r/);
    // A later `docker dso up` finds nothing to recreate: the rotated containers are up to date.
    const up = await dso(sb, ['up', '-d']);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stderr).not.toMatch(/Recreat/);
  });

  test('DNS by service name points at the new db', async () => {
    const ip = (await dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${project}_default").IPAddress}}`, `${project}-db-1`])).trim();
    const lookup = await dockerOk(['exec', `${project}-client-1`, 'nslookup', 'db']);
    expect(lookup).toContain(ip);
  });

  test('a bad value makes the new db unhealthy: rolled back, the original keeps serving, api is not given it', async () => {
    const dbBefore = (await dockerOk(['inspect', '-f', '{{.Id}}', `${project}-db-1`])).trim();
    const apiBefore = (await dockerOk(['inspect', '-f', '{{.Id}}', `${project}-api-1`])).trim();
    const r = await dso(sb, ['secret', 'set', 'app/token'], { input: 'not-a-canary-value' });
    outputs.push(r.stdout, r.stderr);
    expect(r.code).toBe(14);
    expect(r.stderr).toContain('rolled back, the original keeps serving');
    expect(r.stderr).toContain('its health check reports unhealthy');
    expect(r.stderr).toContain(`${project}-db-1 refused the new value of app/token`);
    expect((await dockerOk(['inspect', '-f', '{{.Id}} {{.State.Health.Status}}', `${project}-db-1`])).trim()).toBe(`${dbBefore} healthy`);
    expect((await dockerOk(['inspect', '-f', '{{.Id}}', `${project}-api-1`])).trim()).toBe(apiBefore);
    expect(await cat('db', '/run/secrets/app/token')).toBe(V2);
    const left = await objects();
    expect(left.containers.filter((n) => n.includes('-dso-'))).toEqual([]);
  });

  test('a dso:// variable changes by recreating its container: only api, which uses it, is touched', async () => {
    const dbBefore = (await dockerOk(['inspect', '-f', '{{.Id}}', `${project}-db-1`])).trim();
    const r = await dso(sb, ['secret', 'set', 'app/api_key'], { input: KEY2 });
    outputs.push(r.stdout, r.stderr);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('Rotated 1 of 1 container using secret app/api_key');
    expect(await dockerOk(['exec', `${project}-api-1`, 'sh', '-c', 'printf %s "$API_KEY"'])).toBe(KEY2);
    expect((await dockerOk(['inspect', '-f', '{{.Id}}', `${project}-db-1`])).trim()).toBe(dbBefore);
  });

  test('another vault\'s app/token on the same engine is another secret: its containers are left alone', async () => {
    const other = sandbox('rotation-other');
    const otherProject = projectOf(other);
    const mine = canary('other-vault');
    try {
      writeFiles(other.dir, { 'compose.yaml': 'services:\n  app:\n    image: dso-test/busybox:latest\n    init: true\n    command: ["sleep", "3600"]\n    environment:\n      TOKEN_FILE: dsofile://app/token\n' });
      expect((await dso(other, ['init'])).code).toBe(0);
      expect((await dso(other, ['secret', 'set', 'app/token'], { input: mine })).code).toBe(0);
      expect((await dso(other, ['up', '-d'])).code).toBe(0);
      const dry = await dso(sb, ['rotate', 'app/token', '--dry-run']);
      expect(dry.stdout).not.toContain(otherProject);
      expect(await dockerOk(['exec', `${otherProject}-app-1`, 'cat', '/run/secrets/app/token'])).toBe(mine);
    } finally {
      await dso(other, ['down']);
      other.cleanup();
    }
  });

  test('rotate NAME puts the current value back everywhere; --no-rotate only stores', async () => {
    expect((await dso(sb, ['secret', 'set', 'app/token', '--no-rotate'], { input: V3 })).code).toBe(0);
    expect(await cat('db', '/run/secrets/app/token')).toBe(V2);
    const r = await dso(sb, ['rotate', 'app/token']);
    outputs.push(r.stdout, r.stderr);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Rotated 2 of 2 containers');
    expect(await cat('db', '/run/secrets/app/token')).toBe(V3);
    expect(await (await fetch(`http://127.0.0.1:${PORT}/token`)).text()).toBe(V3);
  });

  test('no leftovers: one secret volume generation per container plus the base ones, holders to match', async () => {
    const { containers } = await objects();
    expect(containers.filter((n) => n.includes('-dso-old-') || n.includes('-dso-new-'))).toEqual([]);
    // base volumes (db, api) + the live generation of each rotated service, told apart by their labels.
    const generations = (await dockerOk(['volume', 'ls', '--format', '{{.Label "dso.generation"}}', '--filter', `label=dso.project=${project}`])).split('\n').filter(Boolean);
    expect(generations.filter((g) => g === 'base').length).toBe(2);
    expect(generations.filter((g) => /^r[0-9a-z]+$/.test(g)).length).toBe(2);
  });

  test('no file secret in docker inspect, on disk, or in what DSO printed', async () => {
    for (const c of ['db', 'api']) {
      const inspect = await dockerOk(['inspect', `${project}-${c}-1`]);
      for (const v of [V1, V2, V3]) expect(inspect).not.toContain(v);
    }
    expect(scanForLeaks([DATA_ROOT, sb.dir], [V1, V2, V3])).toEqual([]);
    for (const out of outputs) for (const v of [V1, V2, V3, KEY1, KEY2]) expect(out).not.toContain(v);
  });

  test('docker dso down removes every container, holder and volume, rotated ones included', async () => {
    expect((await dso(sb, ['down'])).code).toBe(0);
    expect(await objects()).toEqual({ containers: [], volumes: [] });
    expect((await docker(['ps', '-aq', '--filter', `name=${project}`])).stdout.trim()).toBe('');
  });
});
