// Rotations that take long or never end, with the compiled binary, the real engine and Compose
// (the outside review, issue 12, items 3, 4 and 8). In Cloud Mode: a health command that never
// ends fails its own rotation at the health timeout and is rolled back, while another project's
// rotation (and `docker dso rotate` of it) goes on meanwhile, in depends_on order; `docker dso
// rotate` through the agent waits out a service that needs 15 s to become healthy, showing
// progress, and reports the real outcome, a failure included; the agent logs one end per
// rotation. In Local Mode: `secret set` returns within the health timeout even with a health
// command that never ends, and agent.rotation.timeout bounds the whole rotation of a container
// (a stop that waits out a long grace period). Nothing leaks.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startFakeVault, type FakeVault } from '../fakes/vault/server.ts';
import { DATA_ROOT, canary, dockerOk, dso, projectOf, sandbox, scanForLeaks, spawnAgent, waitFor, writeFiles, type Sandbox } from './support.ts';

const HEALTH_TIMEOUT_S = 25;

describe('Cloud Mode: slow and endless rotations', () => {
  let vault: FakeVault;
  let token: string;
  let a: Sandbox; // the project whose health command never ends
  let b: Sandbox; // the other project: web, worker after web, and slow (15 s to become healthy)
  let pa: string;
  let pb: string;
  let agent: ReturnType<typeof Bun.spawn>;
  let socket: string;
  const log: string[] = [];
  const A = [canary('a1'), canary('a2'), canary('a3')] as const;
  const B = [canary('b1'), canary('b2')] as const;
  const S = [canary('s1'), canary('s2'), canary('s3')] as const;

  const COMPOSE_A = `
services:
  hang:
    image: dso-test/busybox:latest
    init: true
    command: ["sleep", "3600"]
    environment:
      TOKEN_FILE: dsofile://vault:app/a#v
    labels: { dso.strategy: rolling, dso.healthcheck.cmd: "sleep 100000" }
`;
  const COMPOSE_B = `
services:
  web:
    image: dso-test/busybox:latest
    init: true
    command: ["sleep", "3600"]
    environment:
      TOKEN_FILE: dsofile://vault:app/b#v
    labels: { dso.strategy: rolling, dso.healthcheck.cmd: "grep -q '^DSOCANARY_' '/run/secrets/vault/app/b#v'" }
  worker:
    image: dso-test/busybox:latest
    init: true
    command: ["sleep", "3600"]
    depends_on: [web]
    environment:
      TOKEN_FILE: dsofile://vault:app/b#v
    labels: { dso.strategy: rolling }
  slow:
    image: dso-test/busybox:latest
    init: true
    command: ["sh", "-c", "sleep 15; touch /tmp/ready; exec sleep 3600"]
    healthcheck: { test: ["CMD", "test", "-f", "/tmp/ready"], interval: 1s, timeout: 1s, retries: 3, start_period: 60s }
    environment:
      TOKEN_FILE: dsofile://vault:app/slow#v
    labels: { dso.strategy: rolling }
`;

  const cloud = () => ({ DSO_MODE: 'cloud', DSO_AGENT_SOCKET: socket });
  const id = (project: string, c: string) => dockerOk(['inspect', '-f', '{{.Id}}', `${project}-${c}-1`]).then((s) => s.trim());
  const file = (project: string, c: string, path: string) => dockerOk(['exec', `${project}-${c}-1`, 'cat', `/run/secrets/vault/${path}`]);
  const entries = () =>
    log
      .join('')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; container?: string; rotation?: string; reason?: string });
  const about = (msg: string, container: string) => entries().filter((e) => e.msg === msg && e.container === container);
  const tail = () => log.join('').split('\n').slice(-20).join('\n');

  beforeAll(async () => {
    vault = await startFakeVault();
    token = vault.createToken({ root: true });
    vault.putSecret('app/a', { v: A[0] });
    vault.putSecret('app/b', { v: B[0] });
    vault.putSecret('app/slow', { v: S[0] });
    a = sandbox('deadline-a');
    b = sandbox('deadline-b');
    pa = projectOf(a);
    pb = projectOf(b);
    writeFiles(a.dir, {
      'compose.yaml': COMPOSE_A,
      'agent.yaml': `providers:
  vault:
    addr: ${vault.url}
    auth: { method: token, token_env: VAULT_TOKEN }
agent:
  watch: { polling_interval: 1h, debounce_window: 1s }
  health_check: { timeout: ${HEALTH_TIMEOUT_S}s, interval: 1s, retries: 3 }
  rotation: { strategy: rolling, jitter: 0s, concurrency: 4 }
`,
    });
    writeFiles(b.dir, { 'compose.yaml': COMPOSE_B });
    socket = join(a.dir, 'run', 'dso.sock');
    agent = spawnAgent({ config: join(a.dir, 'agent.yaml'), socket, stateDir: join(a.dir, 'state'), env: { VAULT_TOKEN: token }, log });
    await waitFor('the agent socket', async () => existsSync(socket), { ms: 10_000 });
    for (const sb of [a, b]) {
      const up = await dso(sb, ['up', '-d', '--wait'], { env: cloud() });
      expect(up.code, up.stderr).toBe(0);
    }
  });

  afterAll(async () => {
    for (const sb of [a, b]) await dso(sb, ['down'], { env: cloud() }).catch(() => {});
    agent?.kill('SIGTERM');
    await agent?.exited;
    vault?.stop();
    a?.cleanup();
    b?.cleanup();
  });

  test("a health command that never ends holds up no other project: B rotates (and `rotate` answers) while A waits, then A is rolled back at the health timeout", async () => {
    const aBefore = await id(pa, 'hang');
    vault.putSecret('app/a', { v: A[1] });
    const hook = await fetch('http://dso-agent/v1/webhook', { method: 'POST', unix: socket, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ secrets: ['vault:app/a#v'] }) } as RequestInit);
    expect(hook.status).toBe(202);
    await waitFor("A's rotation to start", async () => about('Rotation started', `${pa}-hang-1`).length === 1, { ms: 30_000, context: tail });
    const aStarted = Date.now();

    // Meanwhile, the other project, through the agent's socket: it must not wait for A.
    vault.putSecret('app/b', { v: B[1] });
    const started = Date.now();
    const r = await dso(b, ['rotate', 'vault:app/b#v'], { env: cloud() });
    const took = Date.now() - started;
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toContain('Rotated 2 of 2 containers using secret vault:app/b#v.');
    expect(await file(pb, 'web', 'app/b#v')).toBe(B[1]);
    expect(await file(pb, 'worker', 'app/b#v')).toBe(B[1]);
    // Done while A was still being checked (its health timeout is 25 s).
    expect(about('ROTATION ROLLBACK', `${pa}-hang-1`)).toEqual([]);
    expect(took).toBeLessThan(HEALTH_TIMEOUT_S * 1000 - (Date.now() - aStarted - took));
    // depends_on order inside project B: worker started only once web was done.
    const order = entries().filter((e) => (e.msg === 'Rotation started' || e.msg === 'Rotation completed') && e.container?.startsWith(pb));
    expect(order.map((e) => `${e.msg} ${e.container}`)).toEqual([`Rotation started ${pb}-web-1`, `Rotation completed ${pb}-web-1`, `Rotation started ${pb}-worker-1`, `Rotation completed ${pb}-worker-1`]);

    // A: rolled back at its health timeout, and says why; the original never stopped serving.
    await waitFor("A's rollback", async () => about('ROTATION ROLLBACK', `${pa}-hang-1`).length === 1, { ms: 60_000, context: tail });
    const rollback = about('ROTATION ROLLBACK', `${pa}-hang-1`)[0]!;
    expect(rollback.reason).toBe(`the new container was not healthy: not healthy within ${HEALTH_TIMEOUT_S} s (the health command had not answered)`);
    expect(Date.now() - aStarted).toBeLessThan((HEALTH_TIMEOUT_S + 20) * 1000);
    expect(await id(pa, 'hang')).toBe(aBefore);
    expect(await file(pa, 'hang', 'app/a#v')).toBe(A[0]);
    expect((await dockerOk(['ps', '-a', '--format', '{{.Names}}', '--filter', `label=com.docker.compose.project=${pa}`])).trim()).toBe(`${pa}-hang-1`);
    const status = JSON.parse((await dso(a, ['status', '--json'], { env: cloud() })).stdout).agent.status;
    expect(status.recentRotations.find((x: { rotation: string }) => x.rotation === rollback.rotation)).toMatchObject({ status: 'rolled_back', reason: rollback.reason });
    expect(status.pendingRotations).toEqual([]);
  });

  test('`docker dso rotate` through the agent waits out a service that takes 15 s to become healthy: progress shown, exit 0, one completion', async () => {
    vault.putSecret('app/slow', { v: S[1] });
    const started = Date.now();
    const r = await dso(b, ['rotate', 'vault:app/slow#v'], { env: cloud() });
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(15_000);
    expect(r.stderr).toContain(`${pb}-slow-1: rolling...`);
    expect(r.stderr).toMatch(new RegExp(`${pb}-slow-1: done in \\d+\\.\\d s`));
    expect(r.stdout).toBe('Rotated 1 of 1 container using secret vault:app/slow#v.\n');
    expect(await file(pb, 'slow', 'app/slow#v')).toBe(S[1]);
    expect(about('Rotation completed', `${pb}-slow-1`).length).toBe(1);
    expect(about('Rotation failed', `${pb}-slow-1`)).toEqual([]);
  });

  test('a change that comes while its container is being rotated waits for that rotation, then the new container gets it: one rotation at a time', async () => {
    const hook = () => fetch('http://dso-agent/v1/webhook', { method: 'POST', unix: socket, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ secrets: ['vault:app/slow#v'] }) } as RequestInit);
    const starts = about('Rotation started', `${pb}-slow-1`).length;
    vault.putSecret('app/slow', { v: S[2] });
    expect((await hook()).status).toBe(202);
    await waitFor('the rotation of slow to start', async () => about('Rotation started', `${pb}-slow-1`).length === starts + 1, { ms: 30_000, context: tail });
    // While its new container waits 15 s for health, the value changes again (back to S[1]).
    vault.putSecret('app/slow', { v: S[1] });
    expect((await hook()).status).toBe(202);
    await waitFor('slow on the newest value, from one rotation after the other', async () => about('Rotation completed', `${pb}-slow-1`).length === starts + 2, { ms: 90_000, context: tail });
    const events = entries()
      .filter((e) => e.container === `${pb}-slow-1` && ['Rotation started', 'Rotation completed', 'ROTATION ROLLBACK', 'Rotation failed'].includes(e.msg))
      .slice(starts * 2)
      .map((e) => e.msg);
    expect(events).toEqual(['Rotation started', 'Rotation completed', 'Rotation started', 'Rotation completed']);
    expect(await file(pb, 'slow', 'app/slow#v')).toBe(S[1]);
    expect((await dockerOk(['ps', '-a', '--format', '{{.Names}}'])).includes('-dso-')).toBe(false);
  });

  test('`rotate` of a container under rotation waits for that rotation, then fails after 25 s of its own: exit 14 with the real reason, one end of each in the log', async () => {
    const before = await id(pa, 'hang');
    const starts = about('Rotation started', `${pa}-hang-1`).length;
    const rollbacks = about('ROTATION ROLLBACK', `${pa}-hang-1`).length;
    // A new value at the provider: the agent starts rotating A by itself...
    vault.putSecret('app/a', { v: A[2] });
    const hook = await fetch('http://dso-agent/v1/webhook', { method: 'POST', unix: socket, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ secrets: ['vault:app/a#v'] }) } as RequestInit);
    expect(hook.status).toBe(202);
    await waitFor("the agent's own rotation of A", async () => about('Rotation started', `${pa}-hang-1`).length === starts + 1, { ms: 30_000, context: tail });
    // ...and `rotate` asks for the same container meanwhile: it waits, then rotates it itself.
    const r = await dso(a, ['rotate', 'vault:app/a#v'], { env: cloud() });
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(14);
    expect(r.stderr).toContain(`waiting for a rotation under way of ${pa}-hang-1`);
    expect(r.stdout).toContain(`Rotated 0 of 1 container using secret vault:app/a#v.\n  ${pa}-hang-1: rolled back: the new container was not healthy: not healthy within ${HEALTH_TIMEOUT_S} s (the health command had not answered)`);
    expect(r.stderr).toContain(`${pa}-hang-1: rolled back, the original keeps serving`);
    expect(r.stderr).not.toContain('bug in DSO');
    // Two rotations of A, one after the other, each with one end.
    const a1 = entries().filter((e) => e.container === `${pa}-hang-1` && ['Rotation started', 'ROTATION ROLLBACK', 'Rotation failed', 'Rotation completed'].includes(e.msg)).slice(starts + rollbacks);
    expect(a1.map((e) => e.msg)).toEqual(['Rotation started', 'ROTATION ROLLBACK', 'Rotation started', 'ROTATION ROLLBACK']);
    expect(await id(pa, 'hang')).toBe(before);
    expect(await file(pa, 'hang', 'app/a#v')).toBe(A[0]);
  });

  test('no value in docker inspect, on disk or in the agent log', async () => {
    const all = [...A, ...B, ...S];
    for (const [project, c] of [
      [pa, 'hang'],
      [pb, 'web'],
      [pb, 'worker'],
      [pb, 'slow'],
    ] as const) {
      const inspect = await dockerOk(['inspect', `${project}-${c}-1`]);
      for (const v of all) expect(inspect).not.toContain(v);
    }
    expect(scanForLeaks([DATA_ROOT, a.dir, b.dir], all)).toEqual([]);
    for (const v of [...all, token]) expect(log.join('')).not.toContain(v);
  });
});

describe('Local Mode: secret set within its deadlines', () => {
  let sb: Sandbox;
  let project: string;
  const T = [canary('t1'), canary('t2')] as const;
  const O = [canary('o1'), canary('o2')] as const;

  // hang: a health command that never ends. stubborn: PID 1 without init ignores SIGTERM, so a
  // stop waits out its 30 s grace period, longer than the 15 s a whole rotation may take.
  const COMPOSE = `
services:
  hang:
    image: dso-test/busybox:latest
    init: true
    command: ["sleep", "3600"]
    environment:
      TOKEN_FILE: dsofile://app/token
    labels: { dso.strategy: rolling, dso.healthcheck.cmd: "sleep 100000" }
  stubborn:
    image: dso-test/busybox:latest
    command: ["sleep", "3600"]
    stop_grace_period: 30s
    environment:
      TOKEN_FILE: dsofile://app/other
    labels: { dso.strategy: restart }
`;

  beforeAll(async () => {
    sb = sandbox('deadline-local');
    project = projectOf(sb);
    writeFiles(sb.dir, {
      'compose.yaml': COMPOSE,
      'dso.yaml': `agent:
  health_check: { timeout: 5s, interval: 1s, retries: 3 }
  rotation: { timeout: 15s }
`,
    });
    expect((await dso(sb, ['init'])).code).toBe(0);
    expect((await dso(sb, ['secret', 'set', 'app/token'], { input: T[0] })).code).toBe(0);
    expect((await dso(sb, ['secret', 'set', 'app/other'], { input: O[0] })).code).toBe(0);
    const up = await dso(sb, ['up', '-d', '--wait']);
    expect(up.code, up.stderr).toBe(0);
  });

  afterAll(async () => {
    await dso(sb, ['down']).catch(() => {});
    sb?.cleanup();
  });

  const cat = (c: string, path: string) => dockerOk(['exec', `${project}-${c}-1`, 'cat', path]);
  const id = (c: string) => dockerOk(['inspect', '-f', '{{.Id}}', `${project}-${c}-1`]).then((s) => s.trim());

  test('secret set returns within the health timeout (plus a bounded margin) when the health command never ends', async () => {
    const before = await id('hang');
    const started = Date.now();
    const r = await dso(sb, ['secret', 'set', 'app/token'], { input: T[1] });
    const took = Date.now() - started;
    expect(r.code, r.stderr).toBe(14);
    expect(r.stderr).toContain(`${project}-hang-1: rolled back: the new container was not healthy: not healthy within 5 s (the health command had not answered)`);
    expect(took).toBeLessThan(5_000 + 15_000);
    // The value is stored; the container kept its old one and is the same container.
    expect(r.stderr).toContain('Updated app/token');
    expect(await id('hang')).toBe(before);
    expect(await cat('hang', '/run/secrets/app/token')).toBe(T[0]);
    expect((await dockerOk(['ps', '-a', '--format', '{{.Names}}', '--filter', `label=com.docker.compose.project=${project}`])).split('\n').filter(Boolean).sort()).toEqual([`${project}-hang-1`, `${project}-stubborn-1`]);
  });

  test('agent.rotation.timeout bounds the whole rotation: a stop that waits out a 30 s grace period fails it, and the original is started again', async () => {
    const before = await id('stubborn');
    const r = await dso(sb, ['secret', 'set', 'app/other'], { input: O[1] });
    expect(r.code, r.stderr).toBe(14);
    expect(r.stderr).toContain(`${project}-stubborn-1: rolled back: the original could not be stopped: the rotation took longer than agent.rotation.timeout (15 s)`);
    expect(await id('stubborn')).toBe(before);
    expect((await dockerOk(['inspect', '-f', '{{.State.Running}}', `${project}-stubborn-1`])).trim()).toBe('true');
    expect(await cat('stubborn', '/run/secrets/app/other')).toBe(O[0]);
  });

  test('no value in docker inspect or on disk', async () => {
    for (const c of ['hang', 'stubborn']) {
      const inspect = await dockerOk(['inspect', `${project}-${c}-1`]);
      for (const v of [...T, ...O]) expect(inspect).not.toContain(v);
    }
    expect(scanForLeaks([DATA_ROOT, sb.dir], [...T, ...O])).toEqual([]);
  });
});
