// Observe and plan without an engine: `docker inspect` documents shaped like Compose v2's (see
// the fixture builder) become managed containers, and the plan picks the safest strategy that
// works, says why, and orders rotations by depends_on.
import { expect, test } from 'bun:test';
import type { ContainerDetails } from '../../../src/docker/engine.ts';
import { describeContainer, sameSource } from '../../../src/rotation/inventory.ts';
import { formatPlan, planRotation } from '../../../src/rotation/plan.ts';

interface Fixture {
  service: string;
  number?: number;
  name?: string;
  labels?: Record<string, string>;
  env?: string;
  files?: Array<{ path: string; id: string }>;
  ports?: Record<string, Array<{ HostIp: string; HostPort: string }>>;
  mounts?: Array<{ Type: string; Name?: string; Source?: string; Destination: string; RW: boolean }>;
  running?: boolean;
  healthcheck?: string[];
  dependsOn?: string;
  networkMode?: string;
}

let seq = 0;
function details(f: Fixture): ContainerDetails {
  const id = (++seq).toString(16).padStart(64, 'a');
  const labels: Record<string, string> = {
    'com.docker.compose.project': 'shop',
    'com.docker.compose.service': f.service,
    'com.docker.compose.container-number': String(f.number ?? 1),
    'com.docker.compose.oneoff': 'False',
    'dso.managed': 'true',
    ...(f.env ? { 'dso.env-secrets': f.env } : {}),
    ...(f.files ? { 'dso.files': JSON.stringify(f.files.map((x) => ({ ...x, uid: 0, gid: 0, mode: 0o400 }))) } : {}),
    ...(f.dependsOn ? { 'com.docker.compose.depends_on': f.dependsOn } : {}),
    ...f.labels,
  };
  const secretMounts = f.files ? [{ Type: 'volume', Name: `dso_shop_${f.service}`, Source: '', Destination: '/run/secrets', RW: false }] : [];
  return {
    Id: id,
    Name: `/${f.name ?? `shop-${f.service}-${f.number ?? 1}`}`,
    State: { Running: f.running ?? true, ...(f.healthcheck ? { Health: { Status: 'healthy' } } : {}) },
    Config: { Labels: labels, ...(f.healthcheck ? { Healthcheck: { Test: f.healthcheck } } : {}) },
    HostConfig: { NetworkMode: f.networkMode ?? 'shop_default', PortBindings: f.ports ?? {} },
    NetworkSettings: { Networks: { shop_default: { Aliases: [f.service], IPAMConfig: null } } },
    Mounts: [...secretMounts, ...(f.mounts ?? [])],
  } as unknown as ContainerDetails;
}

const DEFAULTS = { strategy: 'rolling' as const, signal: 'SIGHUP' };

test('labels and mounts become a managed container: secrets, strategy, secret volumes, health probe', () => {
  const c = describeContainer(
    details({ service: 'api', env: 'API_KEY=aws:prod/api#key', files: [{ path: '/run/secrets/vault/app/db', id: 'vault:app/db#password' }], labels: { 'dso.strategy': 'signal', 'dso.signal': 'SIGUSR1', 'dso.versions': '{"aws:prod/api#key":"f1:ab:cd"}' }, healthcheck: ['CMD', 'true'] }),
  );
  expect(c).toMatchObject({
    name: 'shop-api-1',
    project: 'shop',
    service: 'api',
    ids: ['aws:prod/api#key', 'vault:app/db#password'],
    env: [{ variable: 'API_KEY', id: 'aws:prod/api#key' }],
    mounts: [{ dir: '/run/secrets', volume: 'dso_shop_api' }],
    strategy: 'signal',
    signal: 'SIGUSR1',
    markers: { 'aws:prod/api#key': 'f1:ab:cd' },
    probe: { kind: 'healthcheck' },
    overlap: { ok: true, reasons: [] },
  });
  expect(describeContainer(details({ service: 'w', labels: { 'dso.healthcheck.http': ':8080/healthz' } })).probe).toEqual({ kind: 'http', port: 8080, path: '/healthz' });
  expect(describeContainer(details({ service: 'w', labels: { 'dso.healthcheck.cmd': 'wget -q -O- localhost' } })).probe).toEqual({ kind: 'command', command: ['sh', '-c', 'wget -q -O- localhost'] });
  expect(describeContainer(details({ service: 'w', labels: { 'dso.healthcheck.cmd': '["/bin/check","--fast"]' } })).probe).toEqual({ kind: 'command', command: ['/bin/check', '--fast'] });
  expect(describeContainer(details({ service: 'w' })).probe).toEqual({ kind: 'running' });
  // Labels written by hand can be wrong: a malformed one means "nothing", never a crash.
  expect(describeContainer(details({ service: 'w', labels: { 'dso.files': '{not json', 'dso.versions': '[1]' } })).files).toEqual([]);
});

test('a label naming a reference DSO cannot read (edited by hand) skips that container, and only it', () => {
  // Found by fuzzing: the agent parsed every label id with a throwing parser, so one such
  // container made every check fail, for every secret of every container.
  const bad = describeContainer(details({ service: 'bad', env: 'A=vault:app/db#password,B=vault:', files: [{ path: '/run/secrets/x', id: 'not a reference' }] }));
  expect(bad.ids).toEqual(['vault:app/db#password']);
  expect(bad.damaged).toContain('2 secret reference(s) DSO cannot read; recreate it with docker dso up');
  const good = describeContainer(details({ service: 'good', env: 'A=vault:app/db#password' }));
  expect(good.damaged).toBeUndefined();
  const changes = new Map([[bad.id, ['vault:app/db#password']], [good.id, ['vault:app/db#password']]]);
  const plan = planRotation([bad, good], changes, DEFAULTS);
  expect(plan.skipped).toEqual([{ containerId: bad.id, name: 'shop-bad-1', ids: ['vault:app/db#password'], reason: bad.damaged! }]);
  expect(plan.rotations.map((r) => r.name)).toEqual(['shop-good-1']);
});

test('what makes a container unable to run twice: published ports, a fixed name, shared writable storage, host networking', () => {
  const reasons = (f: Fixture) => describeContainer(details(f)).overlap;
  expect(reasons({ service: 'a', ports: { '80/tcp': [{ HostIp: '', HostPort: '8080' }] } }).reasons[0]).toContain('publishes host port 0.0.0.0:8080->80/tcp');
  // A randomly assigned host port does not conflict.
  expect(reasons({ service: 'a', ports: { '80/tcp': [{ HostIp: '', HostPort: '' }] } }).ok).toBe(true);
  expect(reasons({ service: 'a', name: 'my-fixed-name' }).reasons[0]).toContain('container_name: my-fixed-name');
  expect(reasons({ service: 'a', mounts: [{ Type: 'volume', Name: 'shop_pgdata', Destination: '/var/lib/postgresql/data', RW: true }] }).reasons[0]).toContain('volume shop_pgdata at /var/lib/postgresql/data');
  expect(reasons({ service: 'a', mounts: [{ Type: 'volume', Name: 'shop_pgdata', Destination: '/data', RW: true }], labels: { 'dso.overlap': 'allow' } }).ok).toBe(true);
  expect(reasons({ service: 'a', mounts: [{ Type: 'bind', Source: '/srv/conf', Destination: '/conf', RW: false }] }).ok).toBe(true);
  expect(reasons({ service: 'a', networkMode: 'host' }).reasons[0]).toContain('network_mode host');
  // Compose v1 names are recognised as Compose's own.
  expect(reasons({ service: 'a', name: 'shop_a_1' }).ok).toBe(true);
});

test('the plan keeps a strategy that works and says why it changed one', () => {
  const env = describeContainer(details({ service: 'env', env: 'TOKEN=vault:t', labels: { 'dso.strategy': 'signal' } }));
  const files = describeContainer(details({ service: 'files', files: [{ path: '/run/secrets/t', id: 'vault:t' }], labels: { 'dso.strategy': 'signal' } }));
  const ported = describeContainer(details({ service: 'web', files: [{ path: '/run/secrets/t', id: 'vault:t' }], ports: { '80/tcp': [{ HostIp: '', HostPort: '80' }] } }));
  const free = describeContainer(details({ service: 'worker', files: [{ path: '/run/secrets/t', id: 'vault:t' }] }));
  const stopped = describeContainer(details({ service: 'batch', files: [{ path: '/run/secrets/t', id: 'vault:t' }], running: false }));
  const out = describeContainer(details({ service: 'legacy', env: 'TOKEN=vault:t', labels: { 'dso.reloader': 'false' } }));
  const all = [env, files, ported, free, stopped, out];
  const plan = planRotation(all, new Map(all.map((c) => [c.id, ['vault:t']])), DEFAULTS);
  const by = Object.fromEntries(plan.rotations.map((r) => [r.service, r]));
  expect(by.env).toMatchObject({ requested: 'signal', strategy: 'restart', downtime: true });
  expect(by.env!.why[0]).toContain('dso:// variable');
  expect(by.files).toMatchObject({ requested: 'signal', strategy: 'signal', downtime: false, signal: 'SIGHUP', why: [] });
  expect(by.web).toMatchObject({ requested: 'rolling', strategy: 'restart', downtime: true });
  expect(by.web!.why[0]).toContain('cannot run twice at once: it publishes host port');
  expect(by.worker).toMatchObject({ requested: 'rolling', strategy: 'rolling', downtime: false });
  expect(by.batch).toMatchObject({ strategy: 'restart', stopped: true, downtime: false });
  expect(plan.skipped).toEqual([{ containerId: out.id, name: 'shop-legacy-1', ids: ['vault:t'], reason: 'label dso.reloader=false' }]);
  // Only ids a container really uses count.
  expect(planRotation([free], new Map([[free.id, ['vault:other']]]), DEFAULTS).rotations).toEqual([]);
});

test('depends_on orders the waves: databases before the services that use them', () => {
  const db = describeContainer(details({ service: 'db', files: [{ path: '/run/secrets/t', id: 'vault:t' }] }));
  const api = describeContainer(details({ service: 'api', files: [{ path: '/run/secrets/t', id: 'vault:t' }], dependsOn: 'db:service_healthy:false' }));
  const web = describeContainer(details({ service: 'web', files: [{ path: '/run/secrets/t', id: 'vault:t' }], dependsOn: 'api:service_started:false,cache:service_started:false' }));
  const api2 = describeContainer(details({ service: 'api', number: 2, files: [{ path: '/run/secrets/t', id: 'vault:t' }], dependsOn: 'db:service_healthy:false' }));
  const all = [web, api2, api, db];
  const plan = planRotation(all, new Map(all.map((c) => [c.id, ['vault:t']])), DEFAULTS);
  expect(plan.rotations.map((r) => [r.name, r.wave])).toEqual([
    ['shop-db-1', 0],
    ['shop-api-1', 1],
    ['shop-api-2', 1],
    ['shop-web-1', 2],
  ]);
  const text = formatPlan(plan, 'secret vault:t');
  expect(text).toContain('Rotation plan for secret vault:t: 4 containers');
  expect(text).toContain('1. shop-db-1: rolling');
  expect(text).toContain('4. shop-web-1 [after wave 1]: rolling');
  expect(text).toContain('Waves follow depends_on');
});

test('a container is rotated only by the source its secrets came from: its vault, its dso.yaml, or the agent', () => {
  const c = describeContainer(details({ service: 'x', env: 'A=app/token,B=vault:db#pw', labels: { 'dso.vault': 'v1', 'dso.config': '/srv/p/dso.yaml' } }));
  expect(sameSource(c, 'app/token', { vaultId: 'v1' })).toBe(true);
  expect(sameSource(c, 'app/token', { vaultId: 'v2' })).toBe(false);
  expect(sameSource(c, 'vault:db#pw', { config: '/srv/p/dso.yaml' })).toBe(true);
  expect(sameSource(c, 'vault:db#pw', { config: 'agent' })).toBe(false);
  expect(sameSource(c, 'vault:other', { config: '/srv/p/dso.yaml' })).toBe(false);
  // Containers made before these labels existed are nobody's to rotate.
  expect(sameSource(describeContainer(details({ service: 'y', env: 'A=app/token' })), 'app/token', { vaultId: 'v1' })).toBe(false);
});
