// The create call of a rotated container's replacement, from `docker inspect` documents: each
// secret directory on its new volume, however Compose mounted the old one (Compose 2.26 passes
// named volumes as Mounts, Compose 2.40 and v1 as Binds), every other mount kept as it was.
import { expect, test } from 'bun:test';
import type { ContainerDetails } from '../../../src/docker/engine.ts';
import { recreateSpec } from '../../../src/rotation/recreate.ts';

const ID = 'c'.repeat(64);

/** A container as the engine describes it, with its secret directory mounted through `hostConfig`. */
function details(hostConfig: Record<string, unknown>, mounts: Array<Record<string, unknown>>): ContainerDetails {
  return {
    Id: ID,
    Image: 'sha256:' + 'e'.repeat(64),
    Config: { Hostname: ID.slice(0, 12), Image: 'app:latest', Env: ['TOKEN_FILE=/run/secrets/app/token'], Labels: { 'com.docker.compose.service': 'db' }, Cmd: ['sleep', '3600'] },
    HostConfig: { NetworkMode: 'shop_default', ...hostConfig },
    NetworkSettings: { Networks: { shop_default: { Aliases: ['db'] } } },
    Mounts: mounts,
  } as unknown as ContainerDetails;
}

const options = { name: 'shop-db-1-dso-new', env: new Map<string, string>(), volumes: new Map([['/run/secrets', 'dso_shop_db_2']]), labels: {}, image: 'sha256:' + 'e'.repeat(64), rotation: 'r1' };

const mounted = (spec: ReturnType<typeof recreateSpec>['spec']) => ((spec.HostConfig?.Mounts ?? []) as Array<{ Source?: string; Target?: string; ReadOnly?: boolean }>).map((m) => `${m.Source}:${m.Target}:${m.ReadOnly ? 'ro' : 'rw'}`);

test('a secret directory Compose mounted as a Bind (Compose 2.40, v1) gets the new volume, and the old bind goes', () => {
  const d = details(
    { Binds: ['dso_shop_db:/run/secrets:ro', 'dso-bin-2-abc:/run/dso-bin:ro', 'data:/var/lib/data:rw'] },
    [
      { Type: 'volume', Name: 'dso_shop_db', Destination: '/run/secrets', RW: false },
      { Type: 'volume', Name: 'dso-bin-2-abc', Destination: '/run/dso-bin', RW: false },
      { Type: 'volume', Name: 'data', Destination: '/var/lib/data', RW: true },
    ],
  );
  const { spec } = recreateSpec(d, options);
  expect(mounted(spec)).toEqual(['dso_shop_db_2:/run/secrets:ro']);
  expect(spec.HostConfig?.Binds).toEqual(['dso-bin-2-abc:/run/dso-bin:ro', 'data:/var/lib/data:rw']);
});

test('a secret directory Compose mounted as a Mount (Compose 2.26) gets the new volume in its place', () => {
  const d = details(
    {
      Mounts: [
        { Type: 'volume', Source: 'dso_shop_db', Target: '/run/secrets', ReadOnly: true },
        { Type: 'volume', Source: 'data', Target: '/var/lib/data' },
      ],
    },
    [
      { Type: 'volume', Name: 'dso_shop_db', Destination: '/run/secrets', RW: false },
      { Type: 'volume', Name: 'data', Destination: '/var/lib/data', RW: true },
    ],
  );
  const { spec } = recreateSpec(d, options);
  expect(mounted(spec)).toEqual(['dso_shop_db_2:/run/secrets:ro', 'data:/var/lib/data:rw']);
  expect(spec.HostConfig?.Binds).toBeUndefined();
});

test('an anonymous volume of the image is passed on; a directory not yet mounted gets its secret volume', () => {
  const anonymous = 'f'.repeat(64);
  const d = details({ Binds: ['data:/var/lib/data:rw'] }, [
    { Type: 'volume', Name: anonymous, Destination: '/cache', RW: true },
    { Type: 'volume', Name: 'data', Destination: '/var/lib/data', RW: true },
  ]);
  const { spec } = recreateSpec(d, options);
  expect(mounted(spec)).toEqual(['dso_shop_db_2:/run/secrets:ro', `${anonymous}:/cache:rw`]);
  expect(spec.HostConfig?.Binds).toEqual(['data:/var/lib/data:rw']);
});
