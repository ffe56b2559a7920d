// Which secret volume `up` names in the model for a service after rotations: the newer generation
// every container of the service mounts (held by a holder), else the base one. Against an
// in-process engine that answers the two list calls the function makes.
import { expect, test } from 'bun:test';
import { planSecrets } from '../../../src/compose/plan.ts';
import type { ContainerInfo, Engine, VolumeInfo } from '../../../src/docker/engine.ts';
import { mountedGenerations } from '../../../src/docker/secret-volumes.ts';

const model = { services: { db: { image: 'app', environment: { TOKEN_FILE: 'dsofile://app/token' } }, api: { image: 'app', environment: { KEY_FILE: 'dsofile://app/key' } } } };
const plan = planSecrets(model, new Map(), 'shop');
const base = (service: string) => plan.services.find((s) => s.service === service)!.mounts[0]!;

const volume = (name: string, service: string, generation: string): VolumeInfo => ({
  name,
  driver: 'local',
  options: {},
  labels: { 'dso.role': 'secret-volume', 'dso.project': 'shop', 'dso.service': service, 'dso.mount-dir': base(service).dir, 'dso.generation': generation },
});
const container = (name: string, labels: Record<string, string>, volumes: string[]): ContainerInfo => ({ id: name, name, running: true, image: 'app', labels, volumes });
const app = (service: string, n: number, volumes: string[], extra: Record<string, string> = {}) => container(`shop-${service}-${n}`, { 'com.docker.compose.project': 'shop', 'com.docker.compose.service': service, ...extra }, volumes);
const holder = (name: string, volumes: string[]) => container(name, { 'dso.role': 'holder', 'dso.project': 'shop' }, volumes);

/** Answers listVolumes and listContainers by label filters, as the engine does; counts the calls. */
function engine(volumes: VolumeInfo[], containers: ContainerInfo[]): Engine & { calls: number } {
  const matches = (labels: Record<string, string>, filters: string[]) => filters.every((f) => labels[f.slice(0, f.indexOf('='))] === f.slice(f.indexOf('=') + 1));
  const fake = {
    calls: 0,
    async listVolumes(filters: string[]) {
      fake.calls++;
      return volumes.filter((v) => matches(v.labels, filters));
    },
    async listContainers(filters: string[]) {
      fake.calls++;
      return containers.filter((c) => matches(c.labels, filters));
    },
  };
  return fake as unknown as Engine & { calls: number };
}

test('every container of a service on one held generation: that generation is named; a service on its base volume keeps it', async () => {
  const db = base('db').volume;
  const e = engine(
    [volume(db, 'db', 'base'), volume(`${db}_r1`, 'db', 'r1'), volume(base('api').volume, 'api', 'base')],
    [app('db', 1, [`${db}_r1`]), app('db', 2, [`${db}_r1`]), app('api', 1, [base('api').volume]), holder('dso-holder-shop-r1', [`${db}_r1`]), holder('dso-holder-shop-1', [db, base('api').volume])],
  );
  expect([...(await mountedGenerations(e, plan))]).toEqual([[db, `${db}_r1`]]);
});

test('containers of one service on different generations, or on one no holder keeps: the base volume stays', async () => {
  const db = base('db').volume;
  const mixed = engine(
    [volume(db, 'db', 'base'), volume(`${db}_r1`, 'db', 'r1'), volume(`${db}_r2`, 'db', 'r2')],
    [app('db', 1, [`${db}_r1`]), app('db', 2, [`${db}_r2`]), holder('h1', [`${db}_r1`]), holder('h2', [`${db}_r2`])],
  );
  expect((await mountedGenerations(mixed, plan)).size).toBe(0);
  const unheld = engine([volume(db, 'db', 'base'), volume(`${db}_r1`, 'db', 'r1')], [app('db', 1, [`${db}_r1`])]);
  expect((await mountedGenerations(unheld, plan)).size).toBe(0);
});

test('a one-off container (`compose run`) does not count; without any rotation, one call', async () => {
  const db = base('db').volume;
  const e = engine(
    [volume(db, 'db', 'base'), volume(`${db}_r1`, 'db', 'r1')],
    [app('db', 1, [`${db}_r1`]), app('db', 9, [db], { 'com.docker.compose.oneoff': 'True' }), holder('h1', [`${db}_r1`])],
  );
  expect([...(await mountedGenerations(e, plan))]).toEqual([[db, `${db}_r1`]]);
  const quiet = engine([volume(db, 'db', 'base')], [app('db', 1, [db])]);
  expect((await mountedGenerations(quiet, plan)).size).toBe(0);
  expect(quiet.calls).toBe(1);
});
