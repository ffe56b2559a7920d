// The model Compose runs, for secret files: each directory on its external secret volume, the
// plan's own (generation `base`) unless a rotation put the service's containers on a newer one.
import { expect, test } from 'bun:test';
import { planSecrets } from '../../../src/compose/plan.ts';
import { renderModel } from '../../../src/compose/rewrite.ts';

const model = { services: { db: { image: 'app:latest', environment: { TOKEN_FILE: 'dsofile://app/token' } }, web: { image: 'app:latest' } } };
const plan = planSecrets(model, new Map(), 'shop');
const mount = plan.services.find((s) => s.service === 'db')!.mounts[0]!;
const rendered = (bytes: Uint8Array) => JSON.parse(new TextDecoder().decode(bytes)) as { services: Record<string, { volumes?: Array<Record<string, unknown>> }>; volumes: Record<string, { name: string; external: boolean }> };

test('a secret directory is mounted from the plan\'s external volume', () => {
  const out = rendered(renderModel(model, plan));
  expect(out.services.db!.volumes).toContainEqual({ type: 'volume', source: mount.volumeKey, target: mount.dir, read_only: true });
  expect(out.volumes[mount.volumeKey]).toEqual({ name: mount.volume, external: true });
});

test('the volume a rotation put every container of the service on is named instead, under the same key', () => {
  const generation = `${mount.volume}_0a1b2c3d_r1`;
  const out = rendered(renderModel(model, plan, { volumeNames: new Map([[mount.volume, generation]]) }));
  // The service itself is unchanged (its Compose config hash with it): only the volume's name moves.
  expect(out.services.db!.volumes).toContainEqual({ type: 'volume', source: mount.volumeKey, target: mount.dir, read_only: true });
  expect(out.volumes[mount.volumeKey]).toEqual({ name: generation, external: true });
});
